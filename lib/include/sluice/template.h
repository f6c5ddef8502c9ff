/*
 * template.h - strings that depend on the event, as Logstash writes them:
 *     "logs-%{[fields][service]}-%{+yyyy.MM.dd}"
 * compiled once at init and rendered per event without allocating (beyond
 * the output buffer's own growth). Outputs (file path, Elasticsearch index,
 * Kafka topic and key) and mutate's add_fields share this one implementation.
 *
 * Also here, because templates and the date filter both need them: compiled
 * field references (struct sl_fieldref) and the event-time helpers that read
 * and write sluice's @timestamp ("2026-11-27T06:00:00.123Z") without
 * touching the process time zone (no TZ, no localtime: filters run on
 * several threads).
 *
 * Not here: parsing of arbitrary date formats (that is the date filter's),
 * escaping for a destination (each output sanitises what it renders).
 */
#ifndef SLUICE_TEMPLATE_H
#define SLUICE_TEMPLATE_H

#include "buf.h"
#include "common.h"
#include "value.h"

/* ---- field references ----------------------------------------------------- */

/*
 * A field reference split into its path once: "[a][b]", "a.b" and "a" name
 * what sl_field_get() names. Lookups then cost one sl_obj_get() per segment.
 */
struct sl_fieldref_seg {
    const char *name;  /* points into sl_fieldref.text; not NUL-terminated */
    size_t len;
};

struct sl_fieldref {
    char *text;                   /* the reference as written (owned, NUL-terminated) */
    struct sl_fieldref_seg *segs; /* owned */
    size_t nsegs;
};

/* Compiles ref into *r. 0, or SL_EINVAL for a malformed reference ("", "[a", "a..b",
 * "a.", "[]"), leaving *r empty. Always sl_fieldref_free() (a no-op on an empty one). */
int sl_fieldref_init(struct sl_fieldref *r, const char *ref);
void sl_fieldref_free(struct sl_fieldref *r);
/* The value r names inside root, or NULL when absent (or a parent is not an object).
 * The pointer is valid until the parent object is next modified. Thread-safe. */
struct sl_value *sl_fieldref_get(const struct sl_fieldref *r, const struct sl_value *root);

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

/* ---- event time ----------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (m 1-12, d 1-31, not checked). */
int64_t sl_time_days_from_civil(int64_t y, int m, int d);
/* The date of a day number (inverse of the above). */
void sl_time_civil_from_days(int64_t days, int64_t *y, int *m, int *d);
/* 28..31; m 1-12. */
int sl_time_days_in_month(int64_t y, int m);

/*
 * Parses an ISO8601 date-time: YYYY-MM-DD, then optionally 'T' or ' ' and
 * HH:MM[:SS[(.|,)F{1,9}]], then optionally a zone: Z, +HH, +HHMM or +HH:MM
 * (or '-'). The wall-clock time, read as if it were UTC, goes to *local_ms
 * (fractions beyond milliseconds are truncated). Returns 1 when the text has a
 * zone (its offset east of UTC in seconds in *offset_s; UTC time is
 * *local_ms - *offset_s * 1000), 0 when it has none (*offset_s = 0), or
 * SL_EINVAL when s[0..len) is not such a date-time (trailing bytes included).
 */
int sl_time_parse_iso8601(const char *s, size_t len, int64_t *local_ms, int *offset_s);

/* The event's "@timestamp" string (sl_time_parse_iso8601, no zone = UTC) as epoch ms.
 * 0, or SL_ENOENT (absent or not a string) or SL_EINVAL (unparseable). */
int sl_timestamp_get(const struct sl_value *event, int64_t *epoch_ms);
/* Parses one ISO8601 timestamp (no zone = UTC) into epoch ms. 0 or SL_EINVAL. */
int sl_timestamp_parse(const char *s, size_t len, int64_t *epoch_ms);
/*
 * Formats epoch ms (negative too) as "2026-11-27T06:00:00.123Z" into out
 * (>= 25 bytes), NUL-terminated. Returns the length (24), or 0 when the year
 * is outside 0000-9999 or out is too small. Unlike sl_format_timestamp it
 * takes signed time and does not call gmtime.
 */
size_t sl_timestamp_format(int64_t epoch_ms, char *out, size_t outlen);

#endif
