/*
 * es_bulk.h - the Elasticsearch output's pure parts, kept apart from libcurl
 * and threads so tests/plugin/out_elasticsearch_test.c can check them byte
 * for byte: the parts of an event the pipeline's workers render (index, _id),
 * the _bulk NDJSON of an encoded event, the parsing of a _bulk
 * reply into one verdict per item, gzip, and the members a dead letter
 * carries besides the event. (The retry schedule is lib's sluice/backoff.h,
 * the dead-letter file the core's: sl_batch_dead_letter.)
 *
 * Plugin-internal: only out_elasticsearch.c and the plugin test include this
 * (the symbols are es_-prefixed because the aggregator links them statically,
 * as Fluent Bit's out_es does with es_bulk.c).
 */
#ifndef SLUICE_ES_BULK_H
#define SLUICE_ES_BULK_H

#include "sluice/buf.h"
#include "sluice/plugin.h"
#include "sluice/template.h"
#include "sluice/value.h"

/* The bulk action; `create` fails with 409 on an existing _id and is the only
 * one data streams accept. */
enum es_op { ES_OP_INDEX, ES_OP_CREATE };

/* One event's slice of its batch buffer: "<action>\n<document>\n". */
struct es_item {
    size_t off;      /* first byte of the action line */
    size_t len;      /* both lines, both newlines included */
    size_t doc;      /* first byte of the document line, relative to off */
};

/*
 * The encoding's parts, which the core renders on the pipeline's workers
 * (sl_encoding.part): the index, and the _id when the event has one.
 */
enum es_part { ES_PART_INDEX, ES_PART_ID, ES_NPARTS };

/*
 * Appends the index for event: index rendered, ASCII lowercased
 * (Elasticsearch rejects upper case; Beats lowercases too). 0, or SL_ELIMIT
 * when out's maximum would be exceeded. Thread-safe (index is only read).
 */
int es_bulk_index(const struct sl_template *index, const struct sl_value *event,
                  struct sl_buf *out);

/*
 * Appends the _id for event: a non-empty string "@metadata._id" (Beats'
 * convention: with op create, a re-sent event is then answered 409 and not
 * duplicated). 0, SL_ENOENT when the event has none (the server picks one),
 * or SL_ELIMIT.
 */
int es_bulk_id(const struct sl_value *event, struct sl_buf *out);

/*
 * Appends the action line and the document line of one encoded event to out
 * and describes them in *it. index and id (NULL: none) are the event's
 * parts as es_bulk_index/es_bulk_id rendered them; json is the event without
 * "@metadata". Returns 0, or SL_ELIMIT when out's maximum would be exceeded
 * (out is then restored to its previous length).
 */
int es_bulk_encode(struct sl_buf *out, enum es_op op, struct sl_bytes index,
                   const struct sl_bytes *id, struct sl_bytes json, struct es_item *it);

/* What a _bulk reply says about one item. */
enum es_verdict {
    ES_V_OK,       /* 2xx, or 409 on create: the document is in the index */
    ES_V_RETRY,    /* 429 or 5xx (or no usable status): send again after backoff */
    ES_V_REJECT,   /* any other status: will never succeed, goes to the dead letters */
};

struct es_result {
    enum es_verdict v;
    int status;       /* the item's HTTP status; 0 when the item had none */
    size_t err_off;   /* REJECT: the item's "error" as compact JSON in errs */
    size_t err_len;
};

/* The verdict for an item status (op: "index" or "create" as answered). */
enum es_verdict es_bulk_verdict(int status, bool is_create);

/*
 * Parses the body of a 200 reply to a _bulk request of n items into res[0..n),
 * in request order. The error object of each rejected item is appended to
 * errs (compact JSON; the object itself, or {"reason":...} when the server
 * sent a string) and located by err_off/err_len.
 * A whole reply {"took":N,"errors":false,"items":[<n objects>]} says every
 * item succeeded: its items are counted, not parsed (the big replies are the
 * successful ones). Anything else - that reply cut short included - is parsed.
 * Returns 0, or SL_EINVAL with a reason in err when the body is not a bulk
 * reply for exactly n items (the caller then retries the whole request: the
 * outcome of its items is unknown).
 */
int es_bulk_parse_reply(const char *body, size_t len, size_t n, struct es_result *res,
                        struct sl_buf *errs, char *err, size_t errlen);

/* gzip (RFC 1952) of in[0..len) at level 1-9, appended to out. 0 or SL_ELIMIT/SL_EIO. */
int es_gzip(const char *in, size_t len, int level, struct sl_buf *out);

/* The document line of item (the event without @metadata), without its newline. */
static inline const char *es_item_doc(const char *lines, const struct es_item *item,
                                      size_t *len)
{
    *len = item->len - item->doc - 1;
    return lines + item->off + item->doc;
}

/*
 * Appends the members a dead letter carries besides the event (the core's
 * writer adds time, output and event around them):
 *   "error":<error>,"status":N,"index":"<index>"
 * item is the event's slice of lines (the action line names the index),
 * error compact JSON (NULL: null).
 */
void es_dead_letter_members(struct sl_buf *out, const char *lines, const struct es_item *item,
                            const char *error, size_t error_len, int status);

/*
 * Appends why the server refused an item, for a log line, from its error
 * object: "<type>: <reason>", then " (caused by <type>: <reason>)" for each
 * caused_by, at most 3 deep; each reason cut at 300 bytes. An error that is
 * not such an object is appended as it is (cut likewise); NULL: "no reason given".
 */
void es_error_summary(struct sl_buf *out, const char *error, size_t error_len);

/* Appends the index named in item's action line ("?" if it cannot be read). */
void es_item_index(const char *lines, const struct es_item *item, struct sl_buf *out);

/* Standard base64 of in[0..len), appended to out (for api_key "id:key"). */
void es_base64(const char *in, size_t len, struct sl_buf *out);

#endif
