/*
 * template.h - strings that depend on the event, as Logstash writes them:
 *     "logs-%{[fields][service]}-%{+yyyy.MM.dd}"
 * compiled once at init and rendered per event without allocating (beyond
 * the output buffer's own growth). Outputs (file path, Elasticsearch index,
 * Kafka topic and key) and mutate's add_fields share this one implementation.
 *
 * Also here, because templates and the date filter both need them: the
 * event-time helpers that read
 * and write sluice's @timestamp ("2026-11-27T06:00:00.123Z") without
 * touching the process time zone (no TZ, no localtime: filters run on
 * several threads).
 *
 * Not here: parsing of arbitrary date formats (that is the date filter's),
 * escaping for a destination (each output sanitises what it renders).
 */
#ifndef SLUICE_TEMPLATE_H
#define SLUICE_TEMPLATE_H

#include "sluice/buf.h"
#include "sluice/common.h"
#include "sluice/time.h"
#include "sluice/value.h"

/* ---- templates ------------------------------------------------------------ */

struct sl_template;

/*
 * Compiles src. Recognised inside src:
 *   %{[a][b]}, %{a.b}, %{name}  the field's value (see sl_template_render)
 *   %{+PATTERN}                 the event's @timestamp in UTC, Joda-style letters:
 *                               yyyy yy (Y as y), xxxx (ISO week-year), ww (ISO week),
 *                               MM M MMM MMMM (English), dd d, DDD (day of year),
 *                               HH H, hh h (1-12), kk, KK, mm m, ss s, S.. (fraction),
 *                               EEE EEEE (English day names), a (AM/PM), Z (+0000),
 *                               ZZ (+00:00), 'quoted text', '' (a quote); any other
 *                               non-letter is literal
 *   %{+%s}                      the @timestamp as epoch seconds
 * Anything else is literal text. Returns the template (owned by the caller), or
 * NULL with a one-line reason in err: an unterminated "%{", an empty "%{}", a
 * malformed field reference or an unsupported date letter.
 */
struct sl_template *sl_template_new(const char *src, char *err, size_t errlen);
void sl_template_free(struct sl_template *t);

/* The source text as given (owned by t). */
const char *sl_template_source(const struct sl_template *t);
/* True when src has no %{...}: the rendering is always the source itself. */
bool sl_template_is_static(const struct sl_template *t);
/* True when every field t renders lies under one of the root keys in keys
 * (NULL-terminated); a date reads "@timestamp". For sl_encoding.reads. */
bool sl_template_reads_only(const struct sl_template *t, const char *const *keys);
/* Calls fn with the root key of every field t renders ("@timestamp" for a date). */
void sl_template_root_keys(const struct sl_template *t,
                           void (*fn)(void *arg, const char *key, size_t len), void *arg);

/*
 * Appends the rendering of t for event to out (out is not reset first).
 * A field that is missing or null renders as the reference as written
 * ("%{[fields][service]}"), as Logstash does. A string renders as its bytes,
 * an integer in decimal, a double in the shortest form that reads back the
 * same (always with a '.' or exponent: 5.0), a boolean as true/false, an
 * object as compact JSON, an array as its items rendered so and joined with
 * "," (Logstash's rendering of tags). An event without a parseable
 * @timestamp renders dates from the wall clock, like Logstash.
 * Thread-safe (t is only read). Returns 0 or SL_ELIMIT (out's maximum).
 */
int sl_template_render(const struct sl_template *t, const struct sl_value *event,
                       struct sl_buf *out);

#endif
