/*
 * out_kafka.c - the `kafka` output: each event as one Kafka message (value =
 * the event's JSON without "@metadata", key and topic rendered from
 * templates), produced with librdkafka's idempotent producer. The pipeline's
 * workers encode each event for us (JSON, topic and key as parts 0 and 1), so
 * the loop thread only copies bytes into librdkafka.
 *
 * Delivery is what makes this output: a batch's verdict is SL_OK only once
 * librdkafka has reported every one of its messages delivered (or the event
 * was dead-lettered after a permanent error - or, without a dead_letter_path,
 * dropped by the core). Retriable failures never reach us: message.timeout.ms
 * defaults to 0 (retry forever), so a broker outage simply holds the verdict -
 * and with it the shipper's ACK - until the broker is back. A full local
 * queue (QUEUE_FULL) pauses producing; events are never dropped for it.
 *
 * Threads: librdkafka runs its own threads, but every callback that touches
 * our state (delivery reports, errors) is served by rd_kafka_poll(), which
 * only the loop thread calls: when librdkafka's main queue becomes non-empty
 * it writes to an eventfd the loop watches, and a slow timer polls too in
 * case a wake-up raced with a poll. So sl_batch_done() and
 * sl_batch_dead_letter() are always called on the loop thread, and a dead
 * letter only for a batch that has no verdict yet. Only log_cb runs on
 * librdkafka's threads (sl_log is thread-safe).
 *
 * Not here: transactions, message headers, explicit partitions, consuming.
 */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "sluice/buf.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/plugin.h"
#include "sluice/template.h"

#define POLL_MS 100             /* safety net under the eventfd wake-ups */
#define TOPIC_CACHE 64          /* topic handles kept (dynamic topics beyond are re-created) */
#define TOPIC_MAX 249           /* Kafka's limit on a topic name */
#define TOPIC_RENDER_MAX 4096   /* longer is invalid anyway: bounds the error line and record */
#define PART_TOPIC 0
#define PART_KEY 1
#define ERROR_LOG_MS 1000       /* per-event error lines: at most one a second */
#define DELIVERY_ERRORS_NAME "sluice_aggregator_kafka_delivery_errors_total"
#define DELIVERY_ERRORS_HELP \
    "Kafka messages whose produce call or delivery report failed, by librdkafka error name."
#define CLIENT_ERRORS_NAME "sluice_aggregator_kafka_client_errors_total"
#define CLIENT_ERRORS_HELP \
    "Errors librdkafka reported about the client (connections, brokers), by error name."
#define OUTQ_NAME "sluice_aggregator_kafka_queue_messages"
#define OUTQ_HELP "Messages in librdkafka's queues waiting to be delivered (all kafka outputs)."

static const char *const COMPRESSIONS[] = {"none", "gzip", "snappy", "lz4", "zstd", NULL};
static const char *const ACKS[] = {"all", "-1", "1", "0", NULL};

/*
 * librdkafka properties that have an option of their own: setting them under
 * `properties` too would make two places disagree, so it is an error that
 * names the option. delivery.report.only.error would starve the batch
 * accounting of the success reports it counts down with.
 */
static const struct {
    const char *prop, *option;
} RESERVED[] = {
    {"bootstrap.servers", "brokers"},
    {"metadata.broker.list", "brokers"},
    {"client.id", "client_id"},
    {"compression.codec", "compression"},
    {"compression.type", "compression"},
    {"compression.level", "compression_level"},
    {"acks", "acks"},
    {"request.required.acks", "acks"},
    {"enable.idempotence", "idempotent"},
    {"message.max.bytes", "message_max_bytes"},
    {"linger.ms", "linger"},
    {"queue.buffering.max.ms", "linger"},
    {"batch.num.messages", "batch_max_events"},
    {"batch.size", "batch_max_bytes"},
    {"message.timeout.ms", "timeout"},
    {"delivery.timeout.ms", "timeout"},
    {"queue.buffering.max.messages", "queue_max_events"},
    {"queue.buffering.max.kbytes", "queue_max_bytes"},
    {"delivery.report.only.error", NULL},
    {"transactional.id", NULL},
};

struct out_kafka;

/* One submit(): its events are produced in order; librdkafka's per-message opaque
 * points here so delivery reports count down `outstanding`. */
struct kbatch {
    struct out_kafka *k;
    struct sl_batch *batch;  /* borrowed until the verdict; NULL afterwards */
    size_t next;             /* next event to produce */
    size_t outstanding;      /* messages in librdkafka (or our retry list), not yet reported */
    int status;              /* SL_OK, or the first permanent failure */
    bool verdict;            /* sl_batch_done() was called */
    struct kbatch *prev, *nextb;
};

/* A message whose delivery failed retriably (only with a finite `timeout`): produced
 * again from this copy, ahead of new events. */
struct retry {
    struct kbatch *kb;
    char *topic;
    char *key;               /* NULL: no key */
    size_t klen;
    char *payload;
    size_t plen;
    struct retry *next;
};

struct topic_slot {
    char *name;
    rd_kafka_topic_t *rkt;
};

struct err_metric {
    rd_kafka_resp_err_t err;
    struct sl_metric *m;
};

struct out_kafka {
    /* options (read by the core through kafka_opts) */
    struct sl_strv brokers;
    struct sl_template *topic;
    struct sl_template *key;  /* NULL: messages have no key */
    int compression;          /* index into COMPRESSIONS */
    int64_t compression_level;
    int acks;                 /* index into ACKS */
    bool idempotent;          /* its default depends on acks: settled in init */
    char *client_id;
    uint64_t message_max_bytes;
    uint64_t linger_ms;
    int64_t batch_max_events;
    uint64_t batch_max_bytes;
    uint64_t timeout_ms;
    int64_t queue_max_events;
    uint64_t queue_max_bytes;
    struct sl_strmap properties;

    /* derived state */
    struct sl_plugin_ctx *ctx;
    const char *id;           /* ctx->id: for messages */
    struct sl_loop *loop;
    struct sl_metrics *metrics;
    int nerrors;              /* init only: option errors recorded */
    rd_kafka_conf_t *conf;    /* complete configuration; each producer gets a dup */

    /* the producer */
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
    int evfd;
    struct sl_timer *poll_timer;
    struct sl_timer *restart_timer;  /* after a fatal (idempotence) error */
    struct sl_timer *deadline_timer;
    struct topic_slot topics[TOPIC_CACHE];
    size_t ntopics, last_topic;

    /* batches, oldest first */
    struct kbatch *head, *tail;
    struct retry *retries, *retries_tail;
    bool stopping;            /* shutdown() was called */
    bool closed;              /* the shutdown deadline passed: no more verdicts but ECLOSED */
    bool settling, resettle;
    bool restarting;          /* on_restart() is tearing the old producer down */

    /* the current event's topic, NUL-terminated for librdkafka (parts are not) */
    struct sl_buf topic_buf;

    uint64_t last_error_log;
    uint64_t errors_unlogged;

    struct sl_metric *m_outq;
    double outq_reported;      /* this instance's share of the shared gauge */
    struct sl_metrics *own_metrics;  /* when the environment has none (tests) */
    struct err_metric *delivery_errs, *client_errs;
    size_t ndelivery_errs, nclient_errs;
};

/* The option next to its librdkafka property in each doc: the README's table and
 * `properties` name the same knobs. */
static const struct sl_opt kafka_opts[] = {
    {.name = "brokers", .type = SL_OPT_LIST, .offset = offsetof(struct out_kafka, brokers),
     .flags = SL_OPT_REQUIRED | SL_OPT_NONEMPTY,
     .doc = "bootstrap brokers, host:port (bootstrap.servers)"},
    {.name = "topic", .type = SL_OPT_TEMPLATE, .offset = offsetof(struct out_kafka, topic),
     .flags = SL_OPT_REQUIRED | SL_OPT_NONEMPTY,
     .doc = "the topic, a template; a rendering that is not a valid Kafka topic name is a "
            "permanent error for that event"},
    {.name = "key", .type = SL_OPT_TEMPLATE, .offset = offsetof(struct out_kafka, key),
     .doc = "the message key, a template; absent or rendering empty: no key"},
    {.name = "compression", .type = SL_OPT_ENUM, .offset = offsetof(struct out_kafka, compression),
     .def = "zstd", .choices = COMPRESSIONS,
     .doc = "compression.codec (zstd needs Kafka 2.1 or later)"},
    {.name = "compression_level", .type = SL_OPT_INT,
     .offset = offsetof(struct out_kafka, compression_level), .def = "-1", .min = -1, .max = 12,
     .doc = "compression.level; -1: the codec's default"},
    {.name = "acks", .type = SL_OPT_ENUM, .offset = offsetof(struct out_kafka, acks),
     .def = "all", .choices = ACKS,
     .doc = "all (or -1): the in-sync replicas have the message; 1: the leader only; 0: no "
            "answer (1 and 0 can lose ACKed events)"},
    {.name = "idempotent", .type = SL_OPT_BOOL, .offset = offsetof(struct out_kafka, idempotent),
     .doc = "enable.idempotence: the broker de-duplicates retries; needs acks: all; default "
            "true with acks: all, false otherwise"},
    {.name = "client_id", .type = SL_OPT_STRING, .offset = offsetof(struct out_kafka, client_id),
     .def = "sluice-aggregator", .doc = "client.id, shown in broker logs and quotas"},
    {.name = "message_max_bytes", .type = SL_OPT_SIZE,
     .offset = offsetof(struct out_kafka, message_max_bytes), .def = "1000000", .min = 1000,
     .max = 1000000000,
     .doc = "message.max.bytes: a larger event is refused (MSG_SIZE_TOO_LARGE) and dead-lettered"},
    {.name = "linger", .type = SL_OPT_DURATION, .offset = offsetof(struct out_kafka, linger_ms),
     .def = "5ms", .max = 900000,
     .doc = "linger.ms: how long messages wait to fill a produce request"},
    {.name = "batch_max_events", .type = SL_OPT_INT,
     .offset = offsetof(struct out_kafka, batch_max_events), .def = "10000", .min = 1,
     .max = 1000000, .doc = "batch.num.messages: messages per produce request (per partition)"},
    {.name = "batch_max_bytes", .type = SL_OPT_SIZE,
     .offset = offsetof(struct out_kafka, batch_max_bytes), .def = "1000000", .min = 1,
     .max = INT32_MAX, .doc = "batch.size: bytes per produce request (per partition)"},
    {.name = "timeout", .type = SL_OPT_DURATION, .offset = offsetof(struct out_kafka, timeout_ms),
     .def = "0", .max = INT32_MAX,
     .doc = "message.timeout.ms; 0: retry until delivered (the ACK waits); a message that times "
            "out is produced again, never dropped"},
    {.name = "queue_max_events", .type = SL_OPT_INT,
     .offset = offsetof(struct out_kafka, queue_max_events), .def = "1000000", .min = 1,
     .max = INT32_MAX,
     .doc = "queue.buffering.max.messages: librdkafka's local queue; when full, producing pauses"},
    {.name = "queue_max_bytes", .type = SL_OPT_SIZE,
     .offset = offsetof(struct out_kafka, queue_max_bytes), .def = "1gb", .min = 1024,
     .max = (int64_t)INT32_MAX * 1024,
     .doc = "queue.buffering.max.kbytes, in bytes (rounded up to KiB)"},
    {.name = "properties", .type = SL_OPT_MAP, .offset = offsetof(struct out_kafka, properties),
     .doc = "other librdkafka properties (TLS, SASL, socket.*, ...) as written; not those an "
            "option above sets"},
    {0},
};

/* Records an option error during init (at an entry of a MAP or LIST option with _AT)
 * and remembers that init failed. */
#define KAFKA_ERROR(k, opt, ...) ((k)->nerrors++, sl_plugin_error((k)->ctx, (opt), __VA_ARGS__))
#define KAFKA_ERROR_AT(k, opt, key, index, ...) \
    ((k)->nerrors++, sl_plugin_error_at((k)->ctx, (opt), (key), (index), __VA_ARGS__))

/* ---- metrics and logging ------------------------------------------------- */

/* The series for one error code, created on first use (errors are rare; the registry's
 * mutex is taken only then). Called on the loop thread only. */
static struct sl_metric *err_metric(struct out_kafka *k, struct err_metric **arr, size_t *n,
                                    const char *name, const char *help, rd_kafka_resp_err_t err)
{
    for (size_t i = 0; i < *n; i++) {
        if ((*arr)[i].err == err) {
            return (*arr)[i].m;
        }
    }
    const char *labels[] = {"error", rd_kafka_err2name(err), NULL};
    *arr = sl_realloc(*arr, (*n + 1) * sizeof(**arr));
    (*arr)[*n].err = err;
    (*arr)[*n].m = sl_metrics_counter(k->metrics, name, help, labels);
    return (*arr)[(*n)++].m;
}

static void count_delivery_error(struct out_kafka *k, rd_kafka_resp_err_t err)
{
    sl_counter_inc(err_metric(k, &k->delivery_errs, &k->ndelivery_errs, DELIVERY_ERRORS_NAME,
                              DELIVERY_ERRORS_HELP, err));
}

/* Per-event failures can come by the thousand (a topic that does not exist, a
 * size limit): one line a second, saying how many were not logged. */
static void event_error(struct out_kafka *k, const char *topic, rd_kafka_resp_err_t err,
                        const char *reason, const char *what)
{
    uint64_t now = sl_now_ms();
    if (k->last_error_log && now - k->last_error_log < ERROR_LOG_MS) {
        k->errors_unlogged++;
        return;
    }
    char more[64] = "";
    if (k->errors_unlogged) {
        snprintf(more, sizeof(more), " (and %llu more error(s) not logged)",
                 (unsigned long long)k->errors_unlogged);
    }
    sl_error("%s: topic %s: %s (%s); the event was %s%s", k->id, topic,
             reason ? reason : rd_kafka_err2str(err), rd_kafka_err2name(err), what, more);
    k->last_error_log = now;
    k->errors_unlogged = 0;
}

/* librdkafka's own log lines, from its threads: syslog levels mapped onto ours. Connection
 * failures are level 3; during an outage they are the interesting lines, so they are kept. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    struct out_kafka *k = rd_kafka_opaque(rk);
    const char *id = k ? k->id : "kafka";
    if (level <= 4) {
        sl_warn("%s: librdkafka %s: %s", id, fac, buf);
    } else if (level <= 6) {
        sl_info("%s: librdkafka %s: %s", id, fac, buf);
    } else {
        sl_debug("%s: librdkafka %s: %s", id, fac, buf);
    }
}

/* ---- batches ------------------------------------------------------------ */

/* Gives kb its verdict (once). The batch is the pipeline's again afterwards. */
static void verdict(struct kbatch *kb, int status)
{
    if (kb->verdict) {
        return;
    }
    struct sl_batch *b = kb->batch;
    kb->verdict = true;
    kb->batch = NULL;
    sl_batch_done(b, status);
}

/* A batch that cannot be completed (a dead letter that could not be written, a
 * purged message, shutdown): it is not ACKed (the shipper resends it). The verdict
 * is given now; messages of the batch still in librdkafka keep kb alive until they
 * report. */
static void batch_fail(struct kbatch *kb, int status)
{
    if (kb->status == SL_OK) {
        kb->status = status;
    }
    verdict(kb, status);
}

static void kbatch_unlink(struct out_kafka *k, struct kbatch *kb)
{
    if (kb->prev) {
        kb->prev->nextb = kb->nextb;
    } else {
        k->head = kb->nextb;
    }
    if (kb->nextb) {
        kb->nextb->prev = kb->prev;
    } else {
        k->tail = kb->prev;
    }
    free(kb);
}

/* The record members besides the event that tell why Kafka refused it:
 * "error":"MSG_SIZE_TOO_LARGE","reason":"...","topic":"...","key":"..." (key null: none). */
static void dead_letter_members(struct sl_buf *out, const char *topic, const char *key,
                                size_t klen, rd_kafka_resp_err_t err, const char *reason)
{
    const char *name = rd_kafka_err2name(err);
    reason = reason ? reason : rd_kafka_err2str(err);
    sl_buf_puts(out, "\"error\":");
    sl_json_put_str(out, name, strlen(name));
    sl_buf_puts(out, ",\"reason\":");
    sl_json_put_str(out, reason, strlen(reason));
    sl_buf_puts(out, ",\"topic\":");
    sl_json_put_str(out, topic, strlen(topic));
    sl_buf_puts(out, ",\"key\":");
    if (key) {
        sl_json_put_str(out, key, klen);
    } else {
        sl_buf_puts(out, "null");
    }
}

/*
 * An event (or message) was refused for good: dead-lettered (or, without a
 * dead_letter_path, dropped by the core); its batch fails only when that fails.
 * topic may be a rendering that is not a valid topic name. The payload is the JSON
 * this output produced (the event without @metadata), filed as the record's event.
 */
static void permanent_error(struct out_kafka *k, struct kbatch *kb, const char *topic,
                            const char *key, size_t klen, const char *payload, size_t plen,
                            rd_kafka_resp_err_t err, const char *reason)
{
    count_delivery_error(k, err);
    if (kb->verdict) {
        return;  /* already failed or closed: nothing more to decide (and b is not ours) */
    }
    struct sl_buf extra;
    sl_buf_init(&extra, 0);
    dead_letter_members(&extra, topic, key, klen, err, reason);
    int rc = sl_batch_dead_letter(kb->batch, payload, plen, sl_buf_cstr(&extra));
    sl_buf_free(&extra);
    event_error(k, topic, err, reason,
                rc == SL_OK            ? "dead-lettered"
                : rc == SL_DLQ_DROPPED ? "dropped (no dead_letter_path)"
                                       : "not delivered and its batch will not be acknowledged");
    if (rc < 0) {
        batch_fail(kb, rc);  /* the dead letter could not be written */
    }
}

/* ---- producing ---------------------------------------------------------- */

static bool valid_topic(const char *s, size_t n)
{
    if (n == 0 || n > TOPIC_MAX || (n == 1 && s[0] == '.') ||
        (n == 2 && s[0] == '.' && s[1] == '.')) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

/* The cached handle for topic, created on a miss (the oldest slot is recycled). */
static rd_kafka_topic_t *topic_get(struct out_kafka *k, const char *name)
{
    if (k->ntopics && strcmp(k->topics[k->last_topic].name, name) == 0) {
        return k->topics[k->last_topic].rkt;
    }
    for (size_t i = 0; i < k->ntopics; i++) {
        if (strcmp(k->topics[i].name, name) == 0) {
            k->last_topic = i;
            return k->topics[i].rkt;
        }
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(k->rk, name, NULL);
    if (!rkt) {
        return NULL;
    }
    size_t i = k->ntopics < TOPIC_CACHE ? k->ntopics++ : (k->last_topic + 1) % TOPIC_CACHE;
    if (k->topics[i].rkt) {
        /* librdkafka keeps its own reference for messages still queued on it. */
        rd_kafka_topic_destroy(k->topics[i].rkt);
        free(k->topics[i].name);
    }
    k->topics[i].name = sl_strdup(name);
    k->topics[i].rkt = rkt;
    k->last_topic = i;
    return rkt;
}

static void topics_clear(struct out_kafka *k)
{
    for (size_t i = 0; i < k->ntopics; i++) {
        rd_kafka_topic_destroy(k->topics[i].rkt);
        free(k->topics[i].name);
        k->topics[i] = (struct topic_slot){0};
    }
    k->ntopics = 0;
    k->last_topic = 0;
}

static void schedule_restart(struct out_kafka *k);

/*
 * Produces one message (librdkafka copies payload and key). Returns 0 when queued,
 * SL_EAGAIN when librdkafka's queue is full (try again later), SL_ECLOSED after a
 * fatal producer error (a restart is scheduled) or SL_EINVAL for a permanent
 * refusal, with its code in *err.
 */
static int produce(struct out_kafka *k, struct kbatch *kb, const char *topic, const char *key,
                   size_t klen, const char *payload, size_t plen, rd_kafka_resp_err_t *err)
{
    rd_kafka_topic_t *rkt = topic_get(k, topic);
    if (!rkt) {
        *err = rd_kafka_last_error();
        return SL_EINVAL;
    }
    if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, (void *)payload, plen,
                         key, key ? klen : 0, kb) == 0) {
        kb->outstanding++;
        return SL_OK;
    }
    *err = rd_kafka_last_error();
    if (*err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        return SL_EAGAIN;
    }
    if (*err == RD_KAFKA_RESP_ERR__FATAL) {
        schedule_restart(k);
        return SL_ECLOSED;
    }
    return SL_EINVAL;
}

/*
 * The encoding's parts, on the pipeline's workers (only the templates are read).
 * A key template is optional: without one the event has no key part.
 */
static int render_part(const void *inst, const struct sl_value *ev, unsigned part,
                       struct sl_buf *out)
{
    const struct out_kafka *k = inst;
    size_t at = out->len;
    if (part == PART_TOPIC) {
        int rc = sl_template_render(k->topic, ev, out);
        return rc != 0 || out->len - at > TOPIC_RENDER_MAX ? SL_ELIMIT : 0;
    }
    if (!k->key) {
        return SL_ENOENT;
    }
    return sl_template_render(k->key, ev, out) != 0 ? SL_ELIMIT : 0;
}

/* Copies event i's topic into topic_buf, NUL-terminated for librdkafka (an invalid one
 * too, for the dead letter); whether it is a valid topic name. */
static bool event_topic(struct out_kafka *k, const struct sl_batch *b, size_t i)
{
    struct sl_bytes t;
    int rc = sl_batch_part(b, i, PART_TOPIC, &t);
    sl_buf_reset(&k->topic_buf);
    if (rc == 0) {
        sl_buf_append(&k->topic_buf, t.p, t.len);
    }
    sl_buf_cstr(&k->topic_buf);
    /* A static topic was checked at init. Checked here: the broker's answer to a bad
     * name is slow and version-dependent. */
    return rc == 0 && (sl_template_is_static(k->topic) || valid_topic(t.p, t.len));
}

/* Produces event i of kb from its encoding. SL_EAGAIN / SL_ECLOSED stop the pump. */
static int produce_event(struct out_kafka *k, struct kbatch *kb, size_t i)
{
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    const char *reason = NULL;
    struct sl_bytes value = sl_batch_json(kb->batch, i), key;
    bool topic_ok = event_topic(k, kb->batch, i);
    const char *topic = k->topic_buf.data;
    int krc = sl_batch_part(kb->batch, i, PART_KEY, &key);
    const char *kp = krc == 0 && key.len > 0 ? key.p : NULL;  /* rendering empty: no key */
    int rc = SL_EINVAL;

    if (!topic_ok) {
        err = RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION;
        reason = "invalid topic name (1-249 of [a-zA-Z0-9._-], not '.' or '..')";
    } else if (krc != 0 && krc != SL_ENOENT) {
        /* Not silently keyless: the key decides the partition, and with it the order. */
        err = RD_KAFKA_RESP_ERR__INVALID_ARG;
        reason = "the key cannot be rendered";
    } else {
        /* produce() copies value and key: they live only as long as the batch. */
        rc = produce(k, kb, topic, kp, key.len, value.p, value.len, &err);
        if (rc == SL_EINVAL && err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
            reason = "the event is larger than message_max_bytes";  /* refused locally */
        }
    }
    if (rc == SL_EINVAL) {
        permanent_error(k, kb, topic, kp, key.len, value.p, value.len, err, reason);
        rc = SL_OK;  /* handled: go on with the next event */
    }
    return rc;
}

/* Produces what waits: retried messages first, then the batches' events in order.
 * Stops at the first QUEUE_FULL; the next poll resumes. */
static void pump(struct out_kafka *k)
{
    if (!k->rk || k->restart_timer || k->closed) {
        return;
    }
    while (k->retries) {
        struct retry *r = k->retries;
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
        int rc = SL_OK;
        if (!r->kb->verdict) {
            r->kb->outstanding--;  /* produce() counts it again */
            rc = produce(k, r->kb, r->topic, r->key, r->klen, r->payload, r->plen, &err);
            if (rc == SL_EAGAIN || rc == SL_ECLOSED) {
                r->kb->outstanding++;
                return;
            }
            if (rc == SL_EINVAL) {
                permanent_error(k, r->kb, r->topic, r->key, r->klen, r->payload, r->plen, err,
                                NULL);
            }
        } else {
            r->kb->outstanding--;
        }
        k->retries = r->next;
        if (!k->retries) {
            k->retries_tail = NULL;
        }
        free(r->topic);
        free(r->key);
        free(r->payload);
        free(r);
    }
    for (struct kbatch *kb = k->head; kb; kb = kb->nextb) {
        while (!kb->verdict && kb->next < kb->batch->n) {
            /* NULL: dropped by a filter, or routed to another output. */
            if (sl_batch_event(kb->batch, kb->next)) {
                int rc = produce_event(k, kb, kb->next);
                if (rc == SL_EAGAIN || rc == SL_ECLOSED) {
                    return;
                }
            }
            kb->next++;
        }
    }
}

/* Verdicts for the batches whose every message reported; frees finished ones. */
static void complete(struct out_kafka *k)
{
    struct kbatch *nx;
    for (struct kbatch *kb = k->head; kb; kb = nx) {
        nx = kb->nextb;
        if (!kb->verdict && kb->outstanding == 0 && kb->next == kb->batch->n) {
            verdict(kb, kb->status);  /* may re-enter submit(): see settle() */
            nx = kb->nextb;
        }
        if (kb->verdict && kb->outstanding == 0) {
            kbatch_unlink(k, kb);
        }
    }
}

/*
 * pump + complete, safe against re-entry: a verdict may lead the pipeline to submit
 * another batch from inside complete(); that nested call only asks for one more
 * round instead of walking the list being walked.
 */
static void settle(struct out_kafka *k)
{
    if (k->settling) {
        k->resettle = true;
        return;
    }
    k->settling = true;
    do {
        k->resettle = false;
        pump(k);
        complete(k);
    } while (k->resettle);
    k->settling = false;
}

/* ---- delivery reports and polling ------------------------------------------- */

static bool retriable(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:     /* only purged when restarting or closing, */
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:  /* and then kb->verdict is already set */
    case RD_KAFKA_RESP_ERR__FATAL:
        return true;
    default:
        return false;
    }
}

/* Delivery report, on the loop thread (inside rd_kafka_poll). Counts down, and files
 * a refused message as a dead letter right here: its batch cannot have had its SL_OK
 * yet, since complete() gives that only once the poll returned and nothing is
 * outstanding. A failed batch has its verdict already; its reports only count down. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct out_kafka *k = opaque;
    struct kbatch *kb = m->_private;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR || kb->verdict) {
        kb->outstanding--;  /* delivered events are counted by the core at the verdict */
        return;
    }
    const char *topic = rd_kafka_topic_name(m->rkt);
    if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT ||
        m->err == RD_KAFKA_RESP_ERR__FATAL) {
        /* A restart fails every open batch before purging; this is not reached then. */
        count_delivery_error(k, m->err);
        kb->outstanding--;
        batch_fail(kb, SL_EIO);
        return;
    }
    if (retriable(m->err) && !k->stopping) {
        /* Only with a finite `timeout`: produce it again rather than lose it. */
        count_delivery_error(k, m->err);
        struct retry *r = sl_calloc(1, sizeof(*r));
        r->kb = kb;
        r->topic = sl_strdup(topic);
        if (m->key) {
            r->key = sl_strndup(m->key, m->key_len);
            r->klen = m->key_len;
        }
        r->payload = sl_strndup(m->payload, m->len);
        r->plen = m->len;
        if (k->retries_tail) {
            k->retries_tail->next = r;
        } else {
            k->retries = r;
        }
        k->retries_tail = r;
        sl_output_retried(k->ctx, 1);
        return;  /* still outstanding: the retry list holds it */
    }
    kb->outstanding--;
    if (retriable(m->err)) {
        count_delivery_error(k, m->err);
        batch_fail(kb, SL_ECLOSED);  /* stopping: no more retries */
        return;
    }
    permanent_error(k, kb, topic, m->key, m->key_len, m->payload, m->len, m->err, NULL);
}

/* Errors about the client (not a message): counted; a fatal one restarts the producer. */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct out_kafka *k = opaque;
    sl_counter_inc(err_metric(k, &k->client_errs, &k->nclient_errs, CLIENT_ERRORS_NAME,
                              CLIENT_ERRORS_HELP, (rd_kafka_resp_err_t)err));
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[512];
        rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, buf, sizeof(buf));
        sl_error("%s: fatal producer error %s: %s; failing the batches in flight (they will "
                 "be resent) and starting a new producer", k->id, rd_kafka_err2name(ferr), buf);
        schedule_restart(k);
    } else if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        sl_warn("%s: all brokers are down (%s); holding %zu message(s) until one is back",
                k->id, reason, (size_t)rd_kafka_outq_len(rk));
    } else {
        sl_debug("%s: %s: %s", k->id, rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
    }
}

static void poll_now(struct out_kafka *k)
{
    if (!k->rk) {
        return;
    }
    /* Reports only count during the poll; verdicts (and the sl_batch_done() calls
     * that may re-enter submit) wait for settle(). */
    bool was = k->settling;
    k->settling = true;
    rd_kafka_poll(k->rk, 0);
    k->settling = was;
    settle(k);
    if (k->rk) {
        double q = (double)rd_kafka_outq_len(k->rk);
        sl_gauge_add(k->m_outq, q - k->outq_reported);
        k->outq_reported = q;
    }
}

static void on_eventfd(struct sl_loop *loop, int fd, unsigned events, void *arg)
{
    uint64_t v;
    /* Drain first: a report queued during the poll below writes again. */
    while (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v)) {
    }
    poll_now(arg);
}

static void on_poll_timer(struct sl_loop *loop, void *arg)
{
    poll_now(arg);
}

/* ---- the producer ------------------------------------------------------- */

static int producer_start(struct out_kafka *k, char *errstr, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(k->conf);
    /* Under -t the producer is built only for librdkafka's own checks: no brokers
     * (so no connection) and no warning about having none. */
    if (k->ctx->check_only &&
        (rd_kafka_conf_set(conf, "bootstrap.servers", "", errstr, errlen) != RD_KAFKA_CONF_OK ||
         rd_kafka_conf_set(conf, "log_level", "3", errstr, errlen) != RD_KAFKA_CONF_OK)) {
        rd_kafka_conf_destroy(conf);
        return SL_EINVAL;
    }
    k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errlen);
    if (!k->rk) {
        rd_kafka_conf_destroy(conf);  /* rd_kafka_new() took it only on success */
        return SL_EINVAL;
    }
    k->mainq = rd_kafka_queue_get_main(k->rk);
    if (k->evfd >= 0) {
        static const uint64_t one = 1;
        rd_kafka_queue_io_event_enable(k->mainq, k->evfd, &one, sizeof(one));
    }
    return SL_OK;
}

static void producer_stop(struct out_kafka *k)
{
    if (!k->rk) {
        return;
    }
    rd_kafka_queue_io_event_enable(k->mainq, -1, NULL, 0);
    rd_kafka_queue_destroy(k->mainq);
    k->mainq = NULL;
    topics_clear(k);
    /* Every batch has its verdict by now: what librdkafka still holds is dropped
     * (and reported, if at all, to batches that no longer wait). */
    rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT |
                              RD_KAFKA_PURGE_F_NON_BLOCKING);
    rd_kafka_poll(k->rk, 0);
    rd_kafka_destroy(k->rk);
    k->rk = NULL;
    /* Reports that destroy() dropped will never come: nothing waits on them now. */
    while (k->retries) {
        struct retry *r = k->retries;
        k->retries = r->next;
        free(r->topic);
        free(r->key);
        free(r->payload);
        free(r);
    }
    k->retries_tail = NULL;
    while (k->head) {
        kbatch_unlink(k, k->head);
    }
}

/* Gives every batch without a verdict the verdict status (no more delivery for them).
 * A verdict that re-enters submit() must not free batches under this walk: hence the
 * settling flag, as in poll_now(). */
static void fail_open_batches(struct out_kafka *k, int status)
{
    bool was = k->settling;
    k->settling = true;
    for (struct kbatch *kb = k->head; kb; kb = kb->nextb) {
        batch_fail(kb, status);
    }
    k->settling = was;
}

static void on_restart(struct sl_loop *loop, void *arg)
{
    struct out_kafka *k = arg;
    char errstr[512];
    k->restart_timer = NULL;  /* one-shot: the loop frees it */
    fail_open_batches(k, SL_EIO);
    k->restarting = true;     /* the old producer's last errors must not schedule another */
    producer_stop(k);
    k->restarting = false;
    if (k->closed) {
        return;
    }
    if (producer_start(k, errstr, sizeof(errstr)) != 0) {
        /* The configuration worked before: retry rather than stay without a producer. */
        sl_error("%s: cannot start a new producer: %s; retrying in 1s", k->id, errstr);
        k->restart_timer = sl_loop_timer(k->loop, 1000, false, on_restart, k);
        return;
    }
    sl_info("%s: new producer started", k->id);
    settle(k);
}

static void schedule_restart(struct out_kafka *k)
{
    if (!k->restart_timer && !k->restarting && !k->closed && k->loop) {
        k->restart_timer = sl_loop_timer(k->loop, 0, false, on_restart, k);
    }
}

/* ---- the plugin --------------------------------------------------------- */

static void kafka_submit(void *inst, struct sl_batch *batch)
{
    struct out_kafka *k = inst;
    if (k->closed) {
        sl_batch_done(batch, SL_ECLOSED);
        return;
    }
    struct kbatch *kb = sl_calloc(1, sizeof(*kb));
    kb->k = k;
    kb->batch = batch;
    kb->status = SL_OK;
    kb->prev = k->tail;
    if (k->tail) {
        k->tail->nextb = kb;
    } else {
        k->head = kb;
    }
    k->tail = kb;
    settle(k);
}

static void on_deadline(struct sl_loop *loop, void *arg)
{
    struct out_kafka *k = arg;
    k->deadline_timer = NULL;
    k->closed = true;
    if (!k->head) {
        return;
    }
    size_t n = 0;
    for (struct kbatch *kb = k->head; kb; kb = kb->nextb) {
        n += !kb->verdict;
    }
    if (n) {
        sl_warn("%s: shutdown deadline reached with %zu batch(es) not delivered (%d "
                "message(s) queued); they will not be acknowledged", k->id, n,
                k->rk ? rd_kafka_outq_len(k->rk) : 0);
    }
    fail_open_batches(k, SL_ECLOSED);
    if (k->rk) {
        rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT |
                                  RD_KAFKA_PURGE_F_NON_BLOCKING);
    }
    poll_now(k);
}

static void kafka_shutdown(void *inst, uint64_t deadline_ms)
{
    struct out_kafka *k = inst;
    if (k->stopping) {
        return;
    }
    k->stopping = true;
    if (k->rk) {
        /* Sends what linger holds now instead of after it; returns at once (it serves
         * delivery reports too, hence the settling flag). */
        bool was = k->settling;
        k->settling = true;
        rd_kafka_flush(k->rk, 0);
        k->settling = was;
    }
    poll_now(k);
    uint64_t now = sl_now_ms();
    k->deadline_timer = sl_loop_timer(k->loop, deadline_ms > now ? deadline_ms - now : 0, false,
                                      on_deadline, k);
}

/* Frees what init made (also after a failed init: evfd is -1 from its first line). */
static void kafka_fini(void *inst)
{
    struct out_kafka *k = inst;
    sl_timer_cancel(k->poll_timer);
    sl_timer_cancel(k->restart_timer);
    sl_timer_cancel(k->deadline_timer);
    k->closed = true;
    /* Exiting before everything was delivered: the pipeline still waits for verdicts. */
    fail_open_batches(k, SL_ECLOSED);
    producer_stop(k);
    if (k->m_outq) {
        sl_gauge_add(k->m_outq, -k->outq_reported);  /* the gauge is shared with reloads */
    }
    if (k->evfd >= 0) {
        if (k->loop) {
            sl_loop_del_fd(k->loop, k->evfd);
        }
        close(k->evfd);
    }
    if (k->conf) {
        rd_kafka_conf_destroy(k->conf);
    }
    sl_buf_free(&k->topic_buf);
    free(k->delivery_errs);
    free(k->client_errs);
    sl_metrics_free(k->own_metrics);
}

/* ---- configuration ------------------------------------------------------ */

/* Sets one librdkafka property we derived from an option; a refusal means our own
 * range checks let through something librdkafka does not take. */
static void conf_set(struct out_kafka *k, const char *option, const char *prop, const char *value)
{
    char err[512];
    if (rd_kafka_conf_set(k->conf, prop, value, err, sizeof(err)) == RD_KAFKA_CONF_OK) {
        return;
    }
    if (option) {
        KAFKA_ERROR(k, option, "option '%s': %s", option, err);
    } else {
        KAFKA_ERROR(k, NULL, "librdkafka property '%s': %s", prop, err);
    }
}

static void conf_setu(struct out_kafka *k, const char *option, const char *prop, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    conf_set(k, option, prop, buf);
}

/* Checks what the table cannot: each broker is one host:port, a static topic is a
 * valid name, idempotence (whose default follows acks) has the acks it needs. */
static void check_options(struct out_kafka *k, struct sl_plugin_ctx *ctx)
{
    for (size_t i = 0; i < k->brokers.n; i++) {
        const char *b = k->brokers.v[i];
        if (!b[0] || strpbrk(b, ", \t")) {
            KAFKA_ERROR_AT(k, "brokers", NULL, i, "option 'brokers': '%s' is not a host:port",
                           b);
        }
    }
    if (sl_template_is_static(k->topic)) {
        const char *t = sl_template_source(k->topic);
        if (!valid_topic(t, strlen(t))) {
            KAFKA_ERROR(k, "topic",
                        "option 'topic': '%s' is not a valid Kafka topic name (1-249 of "
                        "[a-zA-Z0-9._-], not '.' or '..')", t);
        }
    }
    bool acks_all = k->acks <= 1;
    if (!sl_plugin_given(ctx, "idempotent")) {
        k->idempotent = acks_all;
    } else if (k->idempotent && !acks_all) {
        KAFKA_ERROR(k, "idempotent", "option 'idempotent: true' needs 'acks: all'");
    }
}

/* `properties`: handed to librdkafka as given, after the options (so they are checked
 * for overlap with them). Errors point at the property's value. */
static void apply_properties(struct out_kafka *k)
{
    const struct sl_strmap *p = &k->properties;
    for (size_t i = 0; i < p->n; i++) {
        const char *key = p->keys[i];
        bool reserved = false;
        for (size_t r = 0; r < SL_ARRAY_LEN(RESERVED); r++) {
            if (strcmp(key, RESERVED[r].prop) != 0) {
                continue;
            }
            reserved = true;
            if (RESERVED[r].option) {
                KAFKA_ERROR_AT(k, "properties", key, 0,
                               "properties: '%s' is set by option '%s'; use that", key,
                               RESERVED[r].option);
            } else {
                KAFKA_ERROR_AT(k, "properties", key, 0,
                               "properties: '%s' is not supported by this output", key);
            }
        }
        if (reserved) {
            continue;
        }
        char err[512];
        if (rd_kafka_conf_set(k->conf, key, p->vals[i], err, sizeof(err)) != RD_KAFKA_CONF_OK) {
            KAFKA_ERROR_AT(k, "properties", key, 0, "properties: %s", err);
        }
    }
}

/* Our defaults first, then the options, then `properties`. */
static void configure(struct out_kafka *k)
{
    struct sl_buf list;
    sl_buf_init(&list, 0);
    for (size_t i = 0; i < k->brokers.n; i++) {
        sl_buf_printf(&list, "%s%s", i ? "," : "", k->brokers.v[i]);
    }
    bool acks_all = k->acks <= 1;
    conf_set(k, "brokers", "bootstrap.servers", list.len ? sl_buf_cstr(&list) : "");
    sl_buf_free(&list);
    conf_set(k, "client_id", "client.id", k->client_id ? k->client_id : "sluice-aggregator");
    conf_set(k, "compression", "compression.codec", COMPRESSIONS[k->compression]);
    if (k->compression_level >= 0) {
        conf_setu(k, "compression_level", "compression.level", (uint64_t)k->compression_level);
    }
    conf_set(k, "acks", "acks", acks_all ? "all" : ACKS[k->acks]);
    conf_set(k, "idempotent", "enable.idempotence", k->idempotent ? "true" : "false");
    conf_setu(k, "message_max_bytes", "message.max.bytes", k->message_max_bytes);
    conf_setu(k, "linger", "linger.ms", k->linger_ms);
    conf_setu(k, "batch_max_events", "batch.num.messages", (uint64_t)k->batch_max_events);
    conf_setu(k, "batch_max_bytes", "batch.size", k->batch_max_bytes);
    conf_setu(k, "timeout", "message.timeout.ms", k->timeout_ms);
    conf_setu(k, "queue_max_events", "queue.buffering.max.messages",
              (uint64_t)k->queue_max_events);
    conf_setu(k, "queue_max_bytes", "queue.buffering.max.kbytes",
              (k->queue_max_bytes + 1023) / 1024);
    /* Idle connections closed by the broker are routine, not news. */
    conf_set(k, NULL, "log.connection.close", "false");
    apply_properties(k);
}

/* The producer and, with a loop, its wake-ups. Made under -t too (with no brokers, so
 * no connection): what only rd_kafka_new() checks (idempotence rules, TLS files, SASL
 * mechanisms) is then a configuration error as well. */
static int start(struct out_kafka *k)
{
    char errstr[512];
    rd_kafka_conf_set_opaque(k->conf, k);
    rd_kafka_conf_set_dr_msg_cb(k->conf, on_delivery);
    rd_kafka_conf_set_error_cb(k->conf, on_error);
    rd_kafka_conf_set_log_cb(k->conf, on_log);
    if (k->loop) {
        k->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (k->evfd < 0) {
            KAFKA_ERROR(k, NULL, "eventfd: %s", strerror(errno));
            return SL_EIO;
        }
    }
    if (producer_start(k, errstr, sizeof(errstr)) != 0) {
        KAFKA_ERROR(k, "properties", "librdkafka refused the configuration: %s", errstr);
        return SL_EINVAL;
    }
    if (k->loop) {
        if (sl_loop_add_fd(k->loop, k->evfd, SL_READ, on_eventfd, k) != 0) {
            KAFKA_ERROR(k, NULL, "cannot watch the producer's eventfd");
            return SL_EIO;
        }
        k->poll_timer = sl_loop_timer(k->loop, POLL_MS, true, on_poll_timer, k);
    }
    k->m_outq = sl_metrics_gauge(k->metrics, OUTQ_NAME, OUTQ_HELP, NULL);
    return SL_OK;
}

static int kafka_init(void *inst, struct sl_plugin_ctx *ctx)
{
    struct out_kafka *k = inst;
    k->evfd = -1;  /* first: kafka_fini() runs after a failed init too */
    k->ctx = ctx;
    k->id = ctx->id;
    k->loop = ctx->loop;
    k->metrics = ctx->metrics;
    if (!k->metrics) {
        k->metrics = k->own_metrics = sl_metrics_new();
    }
    k->conf = rd_kafka_conf_new();
    sl_buf_init(&k->topic_buf, 0);  /* its input is a part, bounded by render_part */
    static const char *const ts_only[] = {"@timestamp", NULL};
    bool dated = (!k->topic || sl_template_reads_only(k->topic, ts_only)) &&
                 (!k->key || sl_template_reads_only(k->key, ts_only));
    sl_output_encoding(ctx, &(struct sl_encoding){.metadata = false, .nparts = 2,
                                                  .part = render_part,
                                                  .reads = dated ? ts_only : NULL});

    check_options(k, ctx);
    configure(k);
    if (k->nerrors) {
        return SL_EINVAL;
    }
    return start(k);
}

const struct sl_plugin sl_plugin_out_kafka = {
    .name = "kafka",
    .kind = SL_PLUGIN_OUTPUT,
    .summary = "produces each event as a Kafka message (librdkafka, idempotent producer)",
    .options = kafka_opts,
    .size = sizeof(struct out_kafka),
    .init = kafka_init,
    .fini = kafka_fini,
    .submit = kafka_submit,
    .shutdown = kafka_shutdown,
};
