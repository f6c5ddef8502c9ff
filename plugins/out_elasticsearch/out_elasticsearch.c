/*
 * out_elasticsearch.c - the `elasticsearch` output: events to the _bulk API of
 * Elasticsearch 7/8 or OpenSearch 1-3, over libcurl.
 *
 * Two threads, one hand-off each way:
 *   - the pipeline's workers encode each event before submit (the core's
 *     sl_encoding: its JSON, its index and _id from es_part), which keeps
 *     that work off the loop thread; submit only copies those bytes into
 *     NDJSON - the action line and the document of every event it takes, in
 *     one buffer owned by the output - so nothing of the batch is read after
 *     submit() returns; the batch goes onto the inbox and the sender is woken;
 *   - the sender thread runs libcurl's multi interface (curl_multi_poll):
 *     it cuts the queued items into _bulk requests of at most
 *     bulk_max_bytes, keeps up to `workers` of them in flight over
 *     keep-alive connections, gzips them, reads the per-item verdicts,
 *     re-queues only the items to retry (429/5xx) behind a jittered
 *     exponential backoff, sends a request answered 413 again as two
 *     halves (recursively; one event refused alone is a dead letter),
 *     files rejected items as dead letters
 *     (sl_batch_dead_letter: the batch is still borrowed then, as it is done
 *     only after its last item), and when every item of a batch is indexed
 *     or dead-lettered moves the batch to the outbox and wakes the loop
 *     through an sl_async handle;
 *   - the loop thread then gives the verdict (sl_batch_done wants it there).
 * Items of several batches share a request when they queue up while every
 * worker is busy; nothing waits to fill a request (the shipper is waiting for
 * the ACK, so holding events back only slows it down).
 *
 * Memory is bounded upstream: a batch is held until its verdict, and the
 * listener stops reading once max_pending_events are in the pipeline, so the
 * inbox, the retry queue and the outbox hold at most that many events.
 *
 * Not here: index lifecycle, ingest pipelines, sniffing of cluster nodes.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "es_bulk.h"
#include "es_template.h"
#include "sluice/backoff.h"
#include "sluice/config.h"
#include "sluice/file.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/plugin.h"
#include "sluice/tls.h"

#define PLUGIN_NAME "elasticsearch"
#define REPLY_MAX ((size_t)64 << 20)       /* a _bulk reply larger than this is refused */
/* A _bulk reply is refused while it arrives once it passes what its request can
 * honestly need: an item's result with a long error reason is ~1-2 KiB. Parsing
 * makes a reply a tree several times its size, so a 60 MB one was expensive. */
#define REPLY_PER_ITEM ((size_t)8 << 10)
#define REPLY_FLOOR ((size_t)1 << 20)
#define MAX_ITEMS_PER_REQUEST 20000        /* keeps replies well under REPLY_MAX */
#define TEMPLATE_FILE_MAX ((size_t)1 << 20)
#define PEM_FILE_MAX ((size_t)4 << 20)
#define POLL_MAX_MS 1000
#define SHOW_MAX 300                       /* bytes of a server reply quoted in a log line */

#define REQ_SECONDS_NAME "sluice_aggregator_es_bulk_request_seconds"
#define REQ_SECONDS_HELP "Duration of each _bulk request, from sending to the parsed reply."
#define REQS_NAME "sluice_aggregator_es_bulk_requests_total"
#define REQS_HELP "_bulk requests by HTTP status of the reply (error: no reply)."

/* A submitted batch, encoded. Loop thread until it is on the inbox, then the
 * sender's until it is on the outbox, then the loop thread's again. */
struct es_batch {
    struct es_batch *next;     /* inbox / outbox / the sender's active list */
    struct es_batch *prev;     /* active list only */
    struct sl_batch *batch;    /* the pipeline's: borrowed until sl_batch_done */
    struct sl_buf lines;       /* every item's action and document lines */
    struct es_item *items;
    size_t n;
    size_t unresolved;         /* items neither indexed nor dead-lettered */
    int status;                /* SL_OK, or why the batch failed */
};

struct es_ref {
    struct es_batch *b;
    size_t i;
    uint32_t part;             /* 0, or the half of a request answered 413 it belongs to:
                                * a part is sent as exactly its items (start_bulk) */
};

/* An item the server refused for good, waiting to be filed (flush_rejected). */
struct es_reject {
    struct es_ref ref;
    int status;                /* the item's HTTP status */
    const char *err;           /* its error object (compact JSON), valid until the flush */
    size_t elen;
};

/* A FIFO of items to send; the array is compacted when the head reaches the end. */
struct refq {
    struct es_ref *v;
    size_t head, len, cap;
};

struct host {
    char *base;                /* "http://h:9200" (no trailing slash) */
    char *bulk_url;            /* base + "/_bulk" */
    uint64_t dead_until;       /* after a connection failure: skipped until then */
    struct sl_backoff down;    /* how long it is skipped after consecutive failures */
};

enum slot_kind { SLOT_IDLE, SLOT_BULK, SLOT_TEMPLATE };

/* One request in flight (or a free place for one). */
struct slot {
    CURL *easy;
    enum slot_kind kind;
    struct es_ref *refs;       /* BULK: the items, in request order */
    size_t nrefs, cap;
    struct sl_buf body;        /* the NDJSON */
    struct sl_buf gz;          /* body gzipped, when compression is on */
    struct sl_buf reply;       /* capped at REPLY_MAX */
    size_t reply_cap;          /* BULK: this request's reply may take this much */
    bool reply_over;           /* on_reply refused bytes past reply_cap */
    size_t host;
    double start;
    char errbuf[CURL_ERROR_SIZE];
};

struct status_metric {
    long code;
    struct sl_metric *m;
};

struct es_backoff_opts {
    uint64_t init_ms, max_ms;
};

struct out_es {
    /* Options, read by the core through es_opts (read-only after init, both threads). */
    struct sl_strv host_urls;
    struct sl_template *index;
    int op;                    /* enum es_op; init settles it against data_stream */
    bool data_stream;
    uint64_t max_bytes;
    uint64_t flush_ms;         /* accepted, unused: requests never wait */
    int64_t workers;
    char *username, *password, *api_key;
    struct sl_plugin_tls ssl;
    bool gzip;
    int64_t level;
    uint64_t timeout_ms;
    struct es_backoff_opts backoff;
    struct sl_cfg_node *tmpl_node; /* template: a file's path, or the earlier {name, file} */
    bool manage_template;
    char *template_name;
    bool template_overwrite;
    int ecs;                   /* enum sl_ecs, when given */

    /* Derived by init; read-only afterwards (both threads). */
    struct sl_plugin_ctx *ctx;
    const char *id;            /* ctx->id */
    struct host *hosts;
    size_t nhosts;
    size_t nslots;             /* workers */
    char *auth_header;         /* "Authorization: ApiKey ..." */
    struct sl_buf ca_pem;      /* certificate_authorities, concatenated */
    struct sl_buf cert_pem, key_pem;
    struct sl_buf tmpl_body;
    char *tmpl_name;           /* the template installed (NULL: none) */
    bool tmpl_check;           /* first ask whether it exists (template_overwrite false) */
    struct curl_slist *headers, *headers_gz, *headers_json;
    struct sl_metric *m_req_seconds;
    struct sl_metric *m_reply_too_large;

    /* Loop thread. */
    struct sl_async *async;
    struct sl_timer *start_timer;
    bool started;
    pthread_t thread;

    /* Shared, under mu. multi is thread-safe only for curl_multi_wakeup(). */
    pthread_mutex_t mu;
    struct es_batch *in_head, *in_tail;
    struct es_batch *out_head, *out_tail;
    bool stop;
    uint64_t deadline;         /* shutdown(): give up at this monotonic ms; 0 = not stopping */
    CURLM *multi;

    /* Sender thread. */
    struct slot *slots;
    struct slot tslot;         /* the index template PUT */
    struct es_batch *active;   /* taken from the inbox, not finished */
    struct refq fresh, retry;
    uint64_t paused_until;
    struct sl_backoff pause;   /* consecutive retry rounds */
    size_t rr;                 /* round-robin position in hosts */
    bool tmpl_done;
    bool tmpl_put;             /* the next template request is the PUT (not the check) */
    uint64_t tmpl_next;
    struct sl_backoff tmpl_retry;
    uint32_t last_part;        /* the last es_ref.part given out (split_request) */
    struct es_result *res;
    size_t res_cap;
    struct sl_buf errs, members;
    struct es_reject *rejected;
    size_t nrejected, rejected_cap;
    struct status_metric status_m[16];
    size_t nstatus_m;
};

/* ---- options ----------------------------------------------------------------- */

static const char *const op_types[] = {"index", "create", NULL};

static const struct sl_opt backoff_table[] = {
    {.name = "init", .type = SL_OPT_DURATION, .offset = offsetof(struct es_backoff_opts, init_ms),
     .def = "1s", .min = 1, .max = 3600000, .doc = "delay before the first retry"},
    {.name = "max", .type = SL_OPT_DURATION, .offset = offsetof(struct es_backoff_opts, max_ms),
     .def = "60s", .min = 1, .max = 3600000,
     .doc = "longest delay between retries (not below init)"},
    {0},
};

static const struct sl_opt es_opts[] = {
    {.name = "hosts", .type = SL_OPT_LIST, .offset = offsetof(struct out_es, host_urls),
     .def = "[\"http://127.0.0.1:9200\"]", .flags = SL_OPT_NONEMPTY,
     .doc = "base URLs (http:// or https://; bare host:port is http://), used round-robin"},
    {.name = "index", .type = SL_OPT_TEMPLATE, .offset = offsetof(struct out_es, index),
     .def = "logs-%{+yyyy.MM.dd}",
     .doc = "index or data stream name, a template (%{[field]}, %{+yyyy.MM.dd}); lowercased"},
    {.name = "op_type", .type = SL_OPT_ENUM, .offset = offsetof(struct out_es, op),
     .choices = op_types,
     .doc = "the bulk action: index (the default), or create (the default with data_stream)"},
    {.name = "data_stream", .type = SL_OPT_BOOL, .offset = offsetof(struct out_es, data_stream),
     .def = "false", .doc = "index names a data stream (which accepts only op_type create)"},
    {.name = "bulk_max_bytes", .type = SL_OPT_SIZE, .offset = offsetof(struct out_es, max_bytes),
     .def = "5mb", .min = 1024, .max = (int64_t)100 << 20,
     .doc = "largest request body before compression (one larger event goes alone)"},
    {.name = "flush_interval", .type = SL_OPT_DURATION, .offset = offsetof(struct out_es, flush_ms),
     .def = "1s", .max = 3600000,
     .doc = "accepted for Beats/Logstash configurations; requests never wait"},
    {.name = "workers", .type = SL_OPT_INT, .offset = offsetof(struct out_es, workers),
     .def = "2", .min = 1, .max = 64, .doc = "_bulk requests in flight"},
    {.name = "username", .type = SL_OPT_STRING, .offset = offsetof(struct out_es, username),
     .doc = "HTTP basic authentication user"},
    {.name = "password", .type = SL_OPT_STRING, .offset = offsetof(struct out_es, password),
     .doc = "HTTP basic authentication password"},
    {.name = "api_key", .type = SL_OPT_STRING, .offset = offsetof(struct out_es, api_key),
     .doc = "sent as Authorization: ApiKey; \"id:key\" is base64-encoded, else sent as given"},
    {.name = "ssl", .type = SL_OPT_BLOCK, .offset = offsetof(struct out_es, ssl),
     .sub = sl_plugin_tls_opts,
     .doc = "TLS for https:// hosts (verification_mode strict is refused: libcurl lacks it)"},
    {.name = "compression", .type = SL_OPT_BOOL, .offset = offsetof(struct out_es, gzip),
     .def = "true", .doc = "gzip request bodies (Content-Encoding: gzip)"},
    {.name = "compression_level", .type = SL_OPT_INT, .offset = offsetof(struct out_es, level),
     .def = "1", .min = 1, .max = 9, .doc = "gzip level"},
    {.name = "timeout", .type = SL_OPT_DURATION, .offset = offsetof(struct out_es, timeout_ms),
     .def = "60s", .min = 100, .max = 3600000,
     .doc = "whole-request timeout (connecting: at most 10s of it); then retried"},
    {.name = "backoff", .type = SL_OPT_BLOCK, .offset = offsetof(struct out_es, backoff),
     .sub = backoff_table,
     .doc = "delay before a retry: init * 2^n capped at max, with equal jitter"},
    {.name = "manage_template", .type = SL_OPT_BOOL, .def = "true",
     .offset = offsetof(struct out_es, manage_template),
     .doc = "install an index template at start-up (sluice's for the mode, or `template`); "
            "no event is sent before it is in place"},
    {.name = "template_name", .type = SL_OPT_STRING,
     .offset = offsetof(struct out_es, template_name),
     .doc = "the index template's name; default: ecs-sluice, or sluice with "
            "ecs_compatibility disabled"},
    {.name = "template_overwrite", .type = SL_OPT_BOOL, .def = "false",
     .offset = offsetof(struct out_es, template_overwrite),
     .doc = "replace a template of that name that is already there; false: leave it"},
    {.name = "template", .type = SL_OPT_NODE, .offset = offsetof(struct out_es, tmpl_node),
     .doc = "path of a JSON file to install instead of sluice's template (the earlier form "
            "{name, file} is still read: it always overwrites)"},
    {.name = "ecs_compatibility", .type = SL_OPT_ENUM, .choices = sl_ecs_choices,
     .offset = offsetof(struct out_es, ecs),
     .doc = "which mapping sluice's template has: v8/v1 ECS names, disabled: legacy names; "
            "default: pipeline.ecs_compatibility"},
    {0},
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- queues ---------------------------------------------------------------- */

static void refq_push(struct refq *q, struct es_ref r)
{
    if (q->len == q->cap) {
        if (q->head > 0) {
            memmove(q->v, q->v + q->head, (q->len - q->head) * sizeof(*q->v));
            q->len -= q->head;
            q->head = 0;
        }
        if (q->len == q->cap) {
            q->cap = q->cap ? q->cap * 2 : 1024;
            q->v = sl_realloc(q->v, q->cap * sizeof(*q->v));
        }
    }
    q->v[q->len++] = r;
}

/* Puts r[0..n) at the head of q, in their order: they are taken next. */
static void refq_push_front(struct refq *q, const struct es_ref *r, size_t n)
{
    if (q->head < n) {
        size_t count = q->len - q->head;
        if (q->cap < n + count) {
            q->cap = SL_MAX(SL_MAX(q->cap * 2, n + count), (size_t)1024);
            q->v = sl_realloc(q->v, q->cap * sizeof(*q->v));
        }
        memmove(q->v + n, q->v + q->head, count * sizeof(*q->v));
        q->head = n;
        q->len = n + count;
    }
    q->head -= n;
    memcpy(q->v + q->head, r, n * sizeof(*r));
}

static size_t refq_count(const struct refq *q)
{
    return q->len - q->head;
}

static struct es_ref *refq_peek(struct refq *q)
{
    return &q->v[q->head];
}

static void refq_pop(struct refq *q)
{
    if (++q->head == q->len) {
        q->head = q->len = 0;
    }
}

static void batch_free(struct es_batch *b)
{
    if (b) {
        sl_buf_free(&b->lines);
        free(b->items);
        free(b);
    }
}

/* ---- sender thread: completion of batches ----------------------------------- */

static void post_done(struct out_es *o, struct es_batch *b)
{
    /* Off the active list first: only the sender thread walks it. */
    if (b->prev) {
        b->prev->next = b->next;
    } else {
        o->active = b->next;
    }
    if (b->next) {
        b->next->prev = b->prev;
    }
    b->next = b->prev = NULL;
    pthread_mutex_lock(&o->mu);
    if (o->out_tail) {
        o->out_tail->next = b;
    } else {
        o->out_head = b;
    }
    o->out_tail = b;
    pthread_mutex_unlock(&o->mu);
    sl_async_send(o->async);
}

/* One item has its final outcome; the batch completes with its last item. */
static void resolve(struct out_es *o, struct es_batch *b, int status)
{
    if (status != SL_OK && b->status == SL_OK) {
        b->status = status;
    }
    if (--b->unresolved == 0) {
        post_done(o, b);
    }
}

/* Gives up on everything (shutdown past the deadline, or the thread exiting):
 * transfers are aborted and every batch not finished completes with status. */
static void abort_all(struct out_es *o, int status)
{
    for (size_t i = 0; i < o->nslots; i++) {
        struct slot *s = &o->slots[i];
        if (s->kind != SLOT_IDLE) {
            curl_multi_remove_handle(o->multi, s->easy);
            s->kind = SLOT_IDLE;
            s->nrefs = 0;
        }
    }
    if (o->tslot.kind != SLOT_IDLE) {
        curl_multi_remove_handle(o->multi, o->tslot.easy);
        o->tslot.kind = SLOT_IDLE;
    }
    o->fresh.head = o->fresh.len = 0;
    o->retry.head = o->retry.len = 0;
    while (o->active) {
        struct es_batch *b = o->active;
        b->status = status;
        post_done(o, b);
    }
}

/* ---- sender thread: dead letters ------------------------------------------------ */

/* Notes an item the server refused for good; flush_rejected files it. err
 * must stay valid until then (it points into o->errs, or is static). */
static void reject(struct out_es *o, struct es_ref r, int status, const char *err, size_t elen)
{
    if (o->nrejected == o->rejected_cap) {
        o->rejected_cap = o->rejected_cap ? o->rejected_cap * 2 : 64;
        o->rejected = sl_realloc(o->rejected, o->rejected_cap * sizeof(*o->rejected));
    }
    o->rejected[o->nrejected++] = (struct es_reject){.ref = r, .status = status, .err = err,
                                                     .elen = elen};
}

/* Files one rejected item as a dead letter: 0, SL_DLQ_DROPPED (no
 * dead_letter_path: the core dropped and counted it) or SL_EIO (the write failed). */
static int file_rejected(struct out_es *o, const struct es_reject *r)
{
    struct es_batch *b = r->ref.b;
    const struct es_item *it = &b->items[r->ref.i];
    size_t dlen;
    const char *doc = es_item_doc(b->lines.data, it, &dlen);
    sl_buf_reset(&o->members);
    es_dead_letter_members(&o->members, b->lines.data, it, r->err, r->elen, r->status);
    /* b->batch is still borrowed: a batch is handed back (post_done) only once
     * its last item resolves, and this item resolves after this call. */
    return sl_batch_dead_letter(b->batch, doc, dlen, sl_buf_cstr(&o->members));
}

/* Files the items collected by reject(), then resolves them. An item whose
 * dead letter could not be written fails its batch: it is not ACKed, and the
 * client sends it again. */
static void flush_rejected(struct out_es *o)
{
    size_t filed = 0, failed = 0;
    if (o->nrejected == 0) {
        return;
    }
    /* Why, from the first one: a mapping conflict is almost always the same
     * field in every event, and the dead-letter file has each one's error. */
    struct sl_buf why;
    sl_buf_init(&why, 0);
    const struct es_reject *r0 = &o->rejected[0];
    const struct es_item *it0 = &r0->ref.b->items[r0->ref.i];
    sl_buf_printf(&why, "status %d, index ", r0->status);
    es_item_index(r0->ref.b->lines.data, it0, &why);
    sl_buf_puts(&why, ": ");
    es_error_summary(&why, r0->err, r0->elen);
    for (size_t i = 0; i < o->nrejected; i++) {
        struct es_reject *r = &o->rejected[i];
        int rc = file_rejected(o, r);
        filed += rc == SL_OK;
        failed += rc < 0;
        /* From here on: the item's outcome, for resolve() below. */
        r->status = rc < 0 ? rc : SL_OK;
    }
    if (filed) {
        sl_warn("%s: %zu event(s) rejected by the server were written to the dead-letter file "
                "(the first: %s)", o->id, filed, sl_buf_cstr(&why));
    }
    if (failed) {
        sl_error("%s: %zu event(s) rejected by the server could not be written to the "
                 "dead-letter file; their batches are not acknowledged (the first: %s)", o->id,
                 failed, sl_buf_cstr(&why));
    }
    sl_buf_free(&why);
    /* Last: resolving an item may hand its batch back to the loop thread. */
    for (size_t i = 0; i < o->nrejected; i++) {
        resolve(o, o->rejected[i].ref.b, o->rejected[i].status);
    }
    o->nrejected = 0;
}

/* ---- sender thread: requests -------------------------------------------------- */

static size_t on_reply(char *p, size_t size, size_t n, void *arg)
{
    struct slot *s = arg;
    /* Returning less than given makes curl fail the transfer: the reply is
     * then handled as a failed request and its items retried. */
    if (s->reply_cap && size * n > s->reply_cap - SL_MIN(s->reply.len, s->reply_cap)) {
        s->reply_over = true;
        return 0;
    }
    return sl_buf_append(&s->reply, p, size * n) == 0 ? size * n : 0;
}

static void count_status(struct out_es *o, long code)
{
    for (size_t i = 0; i < o->nstatus_m; i++) {
        if (o->status_m[i].code == code) {
            sl_counter_inc(o->status_m[i].m);
            return;
        }
    }
    char val[24];
    if (code > 0) {
        snprintf(val, sizeof(val), "%ld", code);
    } else {
        snprintf(val, sizeof(val), "error");
    }
    const char *labels[] = {"status", val, NULL};
    struct sl_metric *m = o->ctx->metrics ? sl_metrics_counter(o->ctx->metrics, REQS_NAME,
                                                               REQS_HELP, labels)
                                          : NULL;
    sl_counter_inc(m);
    if (o->nstatus_m < SL_ARRAY_LEN(o->status_m)) {
        o->status_m[o->nstatus_m++] = (struct status_metric){.code = code, .m = m};
    }
}

/* The next host not marked dead, round-robin; SIZE_MAX when all are. */
static size_t pick_host(struct out_es *o, uint64_t now)
{
    for (size_t k = 0; k < o->nhosts; k++) {
        size_t h = (o->rr + k) % o->nhosts;
        if (o->hosts[h].dead_until <= now) {
            o->rr = h + 1;
            return h;
        }
    }
    return SIZE_MAX;
}

static void pause_sending(struct out_es *o, uint64_t now)
{
    uint64_t d = sl_backoff_next(&o->pause);
    if (now + d > o->paused_until) {
        o->paused_until = now + d;
    }
}

static uint32_t next_part(struct out_es *o)
{
    if (++o->last_part == 0) {
        o->last_part = 1;  /* 0 means "no part"; a wrapped id is long out of the queues */
    }
    return o->last_part;
}

/* The server (or a proxy) refused the request of s as too large (413), and it
 * holds more than one item: its halves are sent next, each as a request of its
 * own (and split again if refused again), so that only an event too large on
 * its own is given up on. bulk_max_bytes is left as configured: later
 * requests are full again (a limit that was raised, or smaller events, cost
 * nothing); a limit that stays costs each request its splits. */
static void split_request(struct out_es *o, struct slot *s)
{
    size_t half = (s->nrefs + 1) / 2;
    uint32_t first = next_part(o);
    uint32_t second = next_part(o);
    for (size_t i = 0; i < s->nrefs; i++) {
        s->refs[i].part = i < half ? first : second;
    }
    refq_push_front(&o->retry, s->refs, s->nrefs);
    sl_output_retried(o->ctx, s->nrefs);
}

/* Puts every item of s back in the retry queue, in order. */
static void requeue_all(struct out_es *o, struct slot *s)
{
    for (size_t i = 0; i < s->nrefs; i++) {
        refq_push(&o->retry, s->refs[i]);
    }
    sl_output_retried(o->ctx, s->nrefs);
}

static void slot_push(struct slot *s, struct es_ref r)
{
    if (s->nrefs == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->refs = sl_realloc(s->refs, s->cap * sizeof(*s->refs));
    }
    s->refs[s->nrefs++] = r;
}

/* Fills s with queued items (retries first: they are the oldest) up to
 * bulk_max_bytes (one item larger than that goes alone) and starts it. The
 * half of a request answered 413 (a part) goes as exactly its items: joined
 * by others it could be refused again for good. */
static void start_bulk(struct out_es *o, struct slot *s, size_t host)
{
    uint32_t part = 0;
    sl_buf_reset(&s->body);
    s->nrefs = 0;
    while (s->nrefs < MAX_ITEMS_PER_REQUEST) {
        struct refq *q = refq_count(&o->retry) ? &o->retry
                         : refq_count(&o->fresh) ? &o->fresh : NULL;
        if (!q) {
            break;
        }
        struct es_ref r = *refq_peek(q);
        const struct es_item *it = &r.b->items[r.i];
        if (s->nrefs == 0) {
            part = r.part;
        } else if (r.part != part || s->body.len + it->len > o->max_bytes) {
            break;
        }
        sl_buf_append(&s->body, r.b->lines.data + it->off, it->len);
        slot_push(s, r);
        refq_pop(q);
    }
    const char *data = s->body.data;
    size_t len = s->body.len;
    struct curl_slist *headers = o->headers;
    if (o->gzip) {
        sl_buf_reset(&s->gz);
        if (es_gzip(s->body.data, s->body.len, (int)o->level, &s->gz) == 0) {
            data = s->gz.data;
            len = s->gz.len;
            headers = o->headers_gz;
        }
    }
    sl_buf_reset(&s->reply);
    s->reply_cap = SL_MIN(REPLY_MAX, REPLY_FLOOR + s->nrefs * REPLY_PER_ITEM);
    s->reply_over = false;
    s->errbuf[0] = '\0';
    s->host = host;
    s->kind = SLOT_BULK;
    s->start = now_seconds();
    curl_easy_setopt(s->easy, CURLOPT_URL, o->hosts[host].bulk_url);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, data);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_multi_add_handle(o->multi, s->easy);
}

static void start_template(struct out_es *o, size_t host)
{
    struct slot *s = &o->tslot;
    char *name = curl_easy_escape(s->easy, o->tmpl_name, 0);
    struct sl_buf url;
    sl_buf_init(&url, 0);
    sl_buf_printf(&url, "%s/_index_template/%s", o->hosts[host].base, name ? name : "");
    curl_free(name);
    sl_buf_reset(&s->reply);
    s->reply_cap = 0;  /* REPLY_MAX, the buffer's own */
    s->reply_over = false;
    s->errbuf[0] = '\0';
    s->host = host;
    s->kind = SLOT_TEMPLATE;
    s->start = now_seconds();
    curl_easy_setopt(s->easy, CURLOPT_URL, sl_buf_cstr(&url));  /* curl copies it */
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, o->headers_json);
    if (!o->tmpl_put) {
        /* HEAD _index_template/<name>: 200 there, 404 not (ES 7.8+, OpenSearch 1+). */
        curl_easy_setopt(s->easy, CURLOPT_CUSTOMREQUEST, NULL);
        curl_easy_setopt(s->easy, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(s->easy, CURLOPT_NOBODY, 0L);
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, o->tmpl_body.data);
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->tmpl_body.len);
        curl_easy_setopt(s->easy, CURLOPT_CUSTOMREQUEST, "PUT");
    }
    curl_multi_add_handle(o->multi, s->easy);
    sl_buf_free(&url);
}

static void start_requests(struct out_es *o, uint64_t now)
{
    if (!o->tmpl_done) {
        /* Events wait for the template: an index created before it would keep
         * dynamic mappings for good. */
        if (o->tslot.kind == SLOT_IDLE && now >= o->tmpl_next) {
            size_t h = pick_host(o, now);
            if (h != SIZE_MAX) {
                start_template(o, h);
            }
        }
        return;
    }
    if (now < o->paused_until) {
        return;
    }
    for (size_t i = 0; i < o->nslots; i++) {
        if (refq_count(&o->retry) + refq_count(&o->fresh) == 0) {
            return;
        }
        if (o->slots[i].kind != SLOT_IDLE) {
            continue;
        }
        size_t h = pick_host(o, now);
        if (h == SIZE_MAX) {
            return;
        }
        start_bulk(o, &o->slots[i], h);
    }
}

static const char *failure_text(const struct slot *s, CURLcode code)
{
    return s->errbuf[0] ? s->errbuf : curl_easy_strerror(code);
}

static void finish_template(struct out_es *o, struct slot *s, CURLcode code, long http)
{
    uint64_t now = sl_now_ms();
    s->kind = SLOT_IDLE;
    if (code == CURLE_OK && !o->tmpl_put && http == 200) {
        o->tmpl_done = true;
        sl_info("%s: index template '%s' is already on %s; left as it is (template_overwrite "
                "is false)", o->id, o->tmpl_name, o->hosts[s->host].base);
        return;
    }
    if (code == CURLE_OK && !o->tmpl_put && http == 404) {
        o->tmpl_put = true;  /* not there: put it, now */
        o->tmpl_next = now;
        return;
    }
    if (code == CURLE_OK && o->tmpl_put && http >= 200 && http < 300) {
        o->tmpl_done = true;
        sl_info("%s: index template '%s' installed on %s", o->id, o->tmpl_name,
                o->hosts[s->host].base);
        return;
    }
    uint64_t d = sl_backoff_next(&o->tmpl_retry);
    o->tmpl_next = now + d;
    if (code != CURLE_OK) {
        struct host *h = &o->hosts[s->host];
        h->dead_until = now + sl_backoff_next(&h->down);
        sl_warn("%s: cannot install index template '%s' on %s: %s; retrying in %llu ms",
                o->id, o->tmpl_name, h->base, failure_text(s, code), (unsigned long long)d);
    } else {
        sl_error("%s: %s index template '%s' answered HTTP %ld: %.*s; retrying in "
                 "%llu ms (events wait for it)", o->id, o->tmpl_put ? "installing" : "looking up",
                 o->tmpl_name, http,
                 (int)SL_MIN(s->reply.len, (size_t)SHOW_MAX), s->reply.data ? s->reply.data : "",
                 (unsigned long long)d);
    }
}

static void finish_bulk(struct out_es *o, struct slot *s, CURLcode code, long http)
{
    uint64_t now = sl_now_ms();
    struct host *h = &o->hosts[s->host];
    char err[160];

    sl_hist_observe(o->m_req_seconds, now_seconds() - s->start);
    count_status(o, code == CURLE_OK ? http : 0);
    s->kind = SLOT_IDLE;
    if (s->reply_over) {
        /* The server is up and answered: like a truncated reply, not a dead host. */
        sl_counter_inc(o->m_reply_too_large);
        sl_warn("%s: _bulk reply from %s passed %zu bytes (%zu event(s) x %zu + %zu) and was "
                "not read further; %zu event(s) will be retried", o->id, h->base, s->reply_cap,
                s->nrefs, REPLY_PER_ITEM, REPLY_FLOOR, s->nrefs);
        requeue_all(o, s);
        pause_sending(o, now);
        goto out;
    }
    if (code != CURLE_OK) {
        /* No answer: the host is skipped for a while; others may take the items now. */
        h->dead_until = now + sl_backoff_next(&h->down);
        sl_warn("%s: _bulk request to %s failed: %s; %zu event(s) will be retried", o->id,
                h->base, failure_text(s, code), s->nrefs);
        requeue_all(o, s);
        goto out;
    }
    sl_backoff_reset(&h->down);
    h->dead_until = 0;
    if (http == 200) {
        if (o->res_cap < s->nrefs) {
            o->res_cap = s->nrefs;
            o->res = sl_realloc(o->res, o->res_cap * sizeof(*o->res));
        }
        sl_buf_reset(&o->errs);
        if (es_bulk_parse_reply(s->reply.data ? s->reply.data : "", s->reply.len, s->nrefs,
                                o->res, &o->errs, err, sizeof(err)) != 0) {
            sl_warn("%s: unusable _bulk reply from %s (%s); %zu event(s) will be retried",
                    o->id, h->base, err, s->nrefs);
            requeue_all(o, s);
            pause_sending(o, now);
            goto out;
        }
        size_t nretry = 0;
        int first_retry_status = 0;
        for (size_t i = 0; i < s->nrefs; i++) {
            struct es_result *r = &o->res[i];
            if (r->v == ES_V_OK) {
                resolve(o, s->refs[i].b, SL_OK);
            } else if (r->v == ES_V_RETRY) {
                refq_push(&o->retry, s->refs[i]);
                first_retry_status = first_retry_status ? first_retry_status : r->status;
                nretry++;
            } else {
                reject(o, s->refs[i], r->status, o->errs.data + r->err_off, r->err_len);
            }
        }
        flush_rejected(o);
        if (nretry > 0) {
            sl_output_retried(o->ctx, nretry);
            sl_warn("%s: %zu of %zu event(s) were refused for now (status %d); retrying them",
                    o->id, nretry, s->nrefs, first_retry_status);
            pause_sending(o, now);
        } else {
            sl_backoff_reset(&o->pause);
        }
    } else if (http == 413 && s->nrefs > 1) {
        /* The server's http.max_content_length (or a proxy's limit) is below
         * bulk_max_bytes. Said once per request as queued: its halves' own
         * splits would repeat it. */
        if (s->refs[0].part == 0) {
            sl_warn("%s: %s refused a %zu-byte _bulk request of %zu event(s) as too large "
                    "(HTTP 413); sending it again in halves (is bulk_max_bytes above the "
                    "server's http.max_content_length or a proxy's limit?)", o->id, h->base,
                    s->body.len, s->nrefs);
        } else {
            sl_debug("%s: %s refused a %zu-byte part of %zu event(s) as too large (HTTP 413); "
                     "splitting it again", o->id, h->base, s->body.len, s->nrefs);
        }
        split_request(o, s);
    } else if (http == 413) {
        static const char too_large[] =
            "{\"type\":\"request_entity_too_large\",\"reason\":\"the event alone exceeds "
            "the server's http.max_content_length\"}";
        reject(o, s->refs[0], 413, too_large, sizeof(too_large) - 1);
        flush_rejected(o);
    } else {
        /* 429 and 5xx are transient; others (401, 403, 404 from a proxy...) need an
         * operator, and retrying keeps every event until one comes. */
        sl_warn("%s: %s answered HTTP %ld to a _bulk request: %.*s; %zu event(s) will be "
                "retried", o->id, h->base, http, (int)SL_MIN(s->reply.len, (size_t)SHOW_MAX),
                s->reply.data ? s->reply.data : "", s->nrefs);
        requeue_all(o, s);
        pause_sending(o, now);
    }
out:
    s->nrefs = 0;
    /* Replies can be large; do not keep a big one around. */
    if (s->reply.cap > ((size_t)1 << 20)) {
        sl_buf_free(&s->reply);
        sl_buf_init(&s->reply, REPLY_MAX);
    }
}

static void reap(struct out_es *o)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(o->multi, &left))) {
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        CURL *easy = m->easy_handle;
        CURLcode code = m->data.result;  /* m is invalid after remove_handle */
        char *priv = NULL;
        long http = 0;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        struct slot *s = (struct slot *)(void *)priv;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &http);
        curl_multi_remove_handle(o->multi, easy);
        if (s->kind == SLOT_TEMPLATE) {
            finish_template(o, s, code, http);
        } else if (s->kind == SLOT_BULK) {
            finish_bulk(o, s, code, http);
        }
    }
}

/* How long curl_multi_poll may sleep: until the next thing we scheduled. */
static int poll_timeout(struct out_es *o, uint64_t now, uint64_t deadline)
{
    uint64_t t = now + POLL_MAX_MS;
    bool work = refq_count(&o->retry) + refq_count(&o->fresh) > 0;
    if (deadline && now >= deadline) {
        return POLL_MAX_MS;  /* everything was given up; only new arrivals (a wake-up) matter */
    }
    if (!o->tmpl_done && o->tslot.kind == SLOT_IDLE) {
        t = SL_MIN(t, SL_MAX(o->tmpl_next, now));
    } else if (work && o->paused_until > now) {
        t = SL_MIN(t, o->paused_until);
    }
    if (work || !o->tmpl_done) {
        for (size_t i = 0; i < o->nhosts; i++) {
            if (o->hosts[i].dead_until > now) {
                t = SL_MIN(t, o->hosts[i].dead_until);
            }
        }
    }
    if (deadline) {
        t = SL_MIN(t, deadline);
    }
    return (int)(t - now);
}

static void *sender_main(void *arg)
{
    struct out_es *o = arg;
    for (;;) {
        pthread_mutex_lock(&o->mu);
        struct es_batch *in = o->in_head;
        o->in_head = o->in_tail = NULL;
        bool stop = o->stop;
        uint64_t deadline = o->deadline;
        pthread_mutex_unlock(&o->mu);
        while (in) {
            struct es_batch *b = in;
            in = b->next;
            b->prev = NULL;
            b->next = o->active;
            if (o->active) {
                o->active->prev = b;
            }
            o->active = b;
            for (size_t i = 0; i < b->n; i++) {
                refq_push(&o->fresh, (struct es_ref){.b = b, .i = i});
            }
        }
        if (stop) {
            break;
        }
        uint64_t now = sl_now_ms();
        if (deadline && now >= deadline) {
            if (o->active) {
                sl_warn("%s: shutdown deadline reached with events not indexed; their "
                        "batches are not acknowledged", o->id);
            }
            abort_all(o, SL_ECLOSED);
        } else {
            int running;
            curl_multi_perform(o->multi, &running);
            reap(o);
            start_requests(o, sl_now_ms());
        }
        now = sl_now_ms();
        curl_multi_poll(o->multi, NULL, 0, poll_timeout(o, now, deadline), NULL);
    }
    abort_all(o, SL_ECLOSED);
    return NULL;
}

/* ---- loop thread --------------------------------------------------------------- */

static void on_complete(struct sl_loop *loop, void *arg)
{
    struct out_es *o = arg;
    pthread_mutex_lock(&o->mu);
    struct es_batch *b = o->out_head;
    o->out_head = o->out_tail = NULL;
    pthread_mutex_unlock(&o->mu);
    while (b) {
        struct es_batch *next = b->next;
        sl_batch_done(b->batch, b->status);
        batch_free(b);
        b = next;
    }
}

static void ensure_started(struct out_es *o)
{
    if (o->started) {
        return;
    }
    /* The sender must never take the process' signals (they are the loop's). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&o->thread, NULL, sender_main, o);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        sl_error("%s: cannot start the sender thread: %s", o->id, strerror(rc));
        abort();
    }
    o->started = true;
}

/* Fires once the loop runs - never under -t, which must not touch the network -
 * so the index template is installed at start-up, not at the first event. */
static void on_start(struct sl_loop *loop, void *arg)
{
    struct out_es *o = arg;
    o->start_timer = NULL;
    ensure_started(o);
}

/* Event i's action and document lines, from the bytes the workers encoded.
 * 0, or SL_ELIMIT when a part could not be rendered or lines is full: an
 * event sent without its index or _id would land elsewhere or twice. */
static int encode_event(const struct out_es *o, const struct sl_batch *batch, size_t i,
                        struct sl_buf *lines, struct es_item *it)
{
    struct sl_bytes index, id;
    if (sl_batch_part(batch, i, ES_PART_INDEX, &index) != 0) {
        return SL_ELIMIT;
    }
    int rc = sl_batch_part(batch, i, ES_PART_ID, &id);
    if (rc != 0 && rc != SL_ENOENT) {
        return SL_ELIMIT;
    }
    return es_bulk_encode(lines, (enum es_op)o->op, index, rc == 0 ? &id : NULL,
                          sl_batch_json(batch, i), it);
}

static void es_submit(void *inst, struct sl_batch *batch)
{
    struct out_es *o = inst;
    if (batch->count == 0) {
        sl_batch_done(batch, SL_OK);
        return;
    }
    struct es_batch *b = sl_calloc(1, sizeof(*b));
    size_t unencoded = 0;
    /* Unbounded: its input is one window, already capped by the listener. */
    sl_buf_init(&b->lines, 0);
    b->items = sl_calloc(batch->count, sizeof(*b->items));
    b->status = SL_OK;
    for (size_t i = 0; i < batch->n; i++) {
        if (!sl_batch_event(batch, i)) {
            continue;  /* dropped by a filter, or routed to another output */
        }
        if (encode_event(o, batch, i, &b->lines, &b->items[b->n]) == 0) {
            b->n++;
        } else {
            unencoded++;
        }
    }
    if (unencoded) {
        /* Out of memory for the buffers: the batch cannot be reported delivered. */
        sl_error("%s: %zu event(s) could not be encoded; the batch is not acknowledged", o->id,
                 unencoded);
        b->status = SL_ELIMIT;
    }
    if (b->n == 0) {
        int status = b->status;
        batch_free(b);
        sl_batch_done(batch, status);
        return;
    }
    b->unresolved = b->n;
    b->batch = batch;
    ensure_started(o);
    pthread_mutex_lock(&o->mu);
    if (o->in_tail) {
        o->in_tail->next = b;
    } else {
        o->in_head = b;
    }
    o->in_tail = b;
    pthread_mutex_unlock(&o->mu);
    curl_multi_wakeup(o->multi);
}

static void es_shutdown(void *inst, uint64_t deadline_ms)
{
    struct out_es *o = inst;
    pthread_mutex_lock(&o->mu);
    o->deadline = deadline_ms ? deadline_ms : 1;
    pthread_mutex_unlock(&o->mu);
    if (o->multi) {
        curl_multi_wakeup(o->multi);
    }
}

static void slot_free(struct slot *s)
{
    if (s->easy) {
        curl_easy_cleanup(s->easy);
    }
    free(s->refs);
    sl_buf_free(&s->body);
    sl_buf_free(&s->gz);
    sl_buf_free(&s->reply);
}

static void finish_list(struct es_batch *b, int status_override)
{
    while (b) {
        struct es_batch *next = b->next;
        sl_batch_done(b->batch, status_override ? status_override : b->status);
        batch_free(b);
        b = next;
    }
}

/* Frees what init made (the core frees the options and o itself). Also after
 * a failed init: every field is then zero or initialised. */
static void es_fini(void *inst)
{
    struct out_es *o = inst;
    if (o->started) {
        pthread_mutex_lock(&o->mu);
        o->stop = true;
        pthread_mutex_unlock(&o->mu);
        curl_multi_wakeup(o->multi);
        pthread_join(o->thread, NULL);  /* it fails what it held onto the outbox */
    }
    sl_timer_cancel(o->start_timer);
    /* The core lets an output give verdicts while it is freed (at exit). */
    finish_list(o->in_head, SL_ECLOSED);
    finish_list(o->out_head, 0);
    sl_async_free(o->async);
    for (size_t i = 0; o->slots && i < o->nslots; i++) {
        slot_free(&o->slots[i]);
    }
    free(o->slots);
    slot_free(&o->tslot);
    if (o->multi) {
        curl_multi_cleanup(o->multi);
        curl_global_cleanup();
    }
    curl_slist_free_all(o->headers);
    curl_slist_free_all(o->headers_gz);
    curl_slist_free_all(o->headers_json);
    for (size_t i = 0; i < o->nhosts; i++) {
        free(o->hosts[i].base);
        free(o->hosts[i].bulk_url);
    }
    free(o->hosts);
    free(o->auth_header);
    sl_buf_free(&o->ca_pem);
    sl_buf_free(&o->cert_pem);
    sl_buf_free(&o->key_pem);
    sl_buf_free(&o->tmpl_body);
    free(o->tmpl_name);
    free(o->fresh.v);
    free(o->retry.v);
    free(o->res);
    sl_buf_free(&o->errs);
    sl_buf_free(&o->members);
    free(o->rejected);
    pthread_mutex_destroy(&o->mu);
}

/* ---- configuration --------------------------------------------------------------- */

/* certificate_authorities, certificate and key take a PEM file's path, or
 * the PEM text itself (as Filebeat does). Appends it to out; 0, or an errno. */
static int load_pem(const char *path_or_pem, struct sl_buf *out)
{
    if (strncmp(path_or_pem, "-----BEGIN", 10) == 0) {
        sl_buf_puts(out, path_or_pem);
        return 0;
    }
    return sl_file_read(path_or_pem, PEM_FILE_MAX, out);
}

static bool given(const char *s)
{
    return s && s[0];
}

/* "h:9200", "http://h:9200/", "https://h/prefix" -> base URL; NULL if unusable. */
static char *host_base(const char *s)
{
    const char *scheme_end = strstr(s, "://");
    struct sl_buf b;
    sl_buf_init(&b, 0);
    if (!scheme_end) {
        sl_buf_puts(&b, "http://");
    } else if (!((scheme_end - s == 4 && strncmp(s, "http", 4) == 0) ||
                 (scheme_end - s == 5 && strncmp(s, "https", 5) == 0))) {
        sl_buf_free(&b);
        return NULL;
    }
    sl_buf_puts(&b, s);
    while (b.len > 0 && b.data[b.len - 1] == '/') {
        b.len--;
    }
    const char *rest = b.len ? strstr(sl_buf_cstr(&b), "://") : NULL;
    if (!rest || rest[3] == '\0' || rest[3] == '/') {
        sl_buf_free(&b);
        return NULL;
    }
    char *r = sl_strdup(sl_buf_cstr(&b));
    sl_buf_free(&b);
    return r;
}

static int conf_hosts(struct out_es *o)
{
    int rc = 0;
    o->hosts = sl_calloc(o->host_urls.n ? o->host_urls.n : 1, sizeof(*o->hosts));
    for (size_t i = 0; i < o->host_urls.n; i++) {
        char *base = host_base(o->host_urls.v[i]);
        if (!base) {
            sl_plugin_error_at(o->ctx, "hosts", NULL, i,
                               "option 'hosts': '%s' is not an http:// or https:// URL",
                               o->host_urls.v[i]);
            rc = SL_EINVAL;
            continue;
        }
        struct host *h = &o->hosts[o->nhosts++];
        h->base = base;
        size_t blen = strlen(base) + sizeof("/_bulk");
        h->bulk_url = sl_malloc(blen);
        snprintf(h->bulk_url, blen, "%s/_bulk", base);
    }
    return rc;
}

/* op_type's default depends on data_stream, which a table cannot say. */
static int conf_op_type(struct out_es *o)
{
    if (!o->data_stream) {
        return 0;
    }
    if (sl_plugin_given(o->ctx, "op_type") && o->op != ES_OP_CREATE) {
        sl_plugin_error(o->ctx, "op_type", "data streams accept only op_type: create");
        return SL_EINVAL;
    }
    o->op = ES_OP_CREATE;
    return 0;
}

static int conf_auth(struct out_es *o)
{
    if (!given(o->api_key)) {
        return 0;
    }
    if (given(o->username)) {
        sl_plugin_error(o->ctx, "api_key", "use either username/password or api_key, not both");
        return SL_EINVAL;
    }
    /* "id:key" is encoded here; an already encoded key is sent as given. */
    struct sl_buf h;
    sl_buf_init(&h, 0);
    sl_buf_puts(&h, "Authorization: ApiKey ");
    if (strchr(o->api_key, ':')) {
        es_base64(o->api_key, strlen(o->api_key), &h);
    } else {
        sl_buf_puts(&h, o->api_key);
    }
    o->auth_header = sl_strdup(sl_buf_cstr(&h));
    sl_buf_free(&h);
    return 0;
}

/* Everything TLS is read now, so a bad file is a configuration error, not a
 * failing request at run time. */
static int conf_ssl(struct out_es *o)
{
    const struct sl_plugin_tls *t = &o->ssl;
    int rc = 0;
    if (t->verification_mode == SL_TLS_VERIFY_STRICT) {
        /* libcurl checks the host name itself and accepts the subject's CN when the
         * certificate has no SAN of the host's kind: strict cannot be promised. */
        sl_plugin_error_at(o->ctx, "ssl", "verification_mode", 0,
                           "ssl: verification_mode 'strict' is not available for this output "
                           "(libcurl falls back to the certificate's CN); use full");
        rc = SL_EINVAL;
    }
    for (size_t i = 0; i < t->certificate_authorities.n; i++) {
        const char *ca = t->certificate_authorities.v[i];
        int e = load_pem(ca, &o->ca_pem);
        if (e != 0) {
            sl_plugin_error_at(o->ctx, "ssl", "certificate_authorities", 0,
                               "ssl: cannot read certificate authority '%s': %s", ca,
                               strerror(e));
            rc = SL_EINVAL;
        }
        sl_buf_putc(&o->ca_pem, '\n');
    }
    if (given(t->certificate) != given(t->key)) {
        sl_plugin_error_at(o->ctx, "ssl", given(t->key) ? "key" : "certificate", 0,
                           "ssl: 'certificate' and 'key' go together");
        return SL_EINVAL;
    }
    if (!given(t->certificate)) {
        return rc;
    }
    int e = load_pem(t->certificate, &o->cert_pem);
    if (e != 0) {
        sl_plugin_error_at(o->ctx, "ssl", "certificate", 0, "ssl: cannot read certificate "
                           "'%s': %s", t->certificate, strerror(e));
        rc = SL_EINVAL;
    }
    e = load_pem(t->key, &o->key_pem);
    if (e != 0) {
        sl_plugin_error_at(o->ctx, "ssl", "key", 0, "ssl: cannot read key '%s': %s", t->key,
                           strerror(e));
        rc = SL_EINVAL;
    }
    return rc;
}

static int conf_backoff(struct out_es *o)
{
    if (o->backoff.max_ms < o->backoff.init_ms) {
        sl_plugin_error_at(o->ctx, "backoff", "max", 0, "backoff: 'max' must not be below "
                           "'init'");
        return SL_EINVAL;
    }
    return 0;
}

/* Reads a template file into o->tmpl_body and checks it is a JSON object;
 * errors are filed at opt (key: the map entry of the earlier form). */
static int load_template_file(struct out_es *o, const char *file, const char *key)
{
    char jerr[128];
    int e = sl_file_read(file, TEMPLATE_FILE_MAX, &o->tmpl_body);
    if (e != 0) {
        sl_plugin_error_at(o->ctx, "template", key, 0, "template: cannot read '%s': %s", file,
                           strerror(e));
        return SL_EINVAL;
    }
    struct sl_value v = {0};
    int rc = 0;
    if (sl_json_parse(o->tmpl_body.data ? o->tmpl_body.data : "", o->tmpl_body.len, &v, NULL,
                      jerr, sizeof(jerr)) != 0 || v.type != SL_V_OBJECT) {
        sl_plugin_error_at(o->ctx, "template", key, 0,
                           "template: '%s' is not a JSON object (%s)", file,
                           v.type == SL_V_NULL ? jerr : "not an object");
        rc = SL_EINVAL;
    }
    sl_value_clear(&v);
    return rc;
}

/* The earlier form, template: {name, file}: that template, always put. */
static int conf_template_map(struct out_es *o, const struct sl_cfg_node *n)
{
    const char *name = NULL, *file = NULL;
    for (size_t i = 0; i < n->n; i++) {
        const struct sl_cfg_node *v = n->items[i];
        const char *k = n->keys[i];
        if ((strcmp(k, "name") != 0 && strcmp(k, "file") != 0) || v->type != SL_CFG_SCALAR) {
            sl_plugin_error_node(o->ctx, v, "template: '%s' is not an option here (a path, or "
                                 "{name, file})", k);
            return SL_EINVAL;
        }
        *(strcmp(k, "name") == 0 ? &name : &file) = v->scalar;
    }
    int rc = 0;
    if (!given(name)) {
        sl_plugin_error(o->ctx, "template", "template: option 'name' is required");
        rc = SL_EINVAL;
    }
    if (!given(file)) {
        sl_plugin_error(o->ctx, "template", "template: option 'file' is required");
        return SL_EINVAL;
    }
    o->tmpl_name = sl_strdup(given(name) ? name : "");
    o->tmpl_check = false;
    return load_template_file(o, file, "file") != 0 ? SL_EINVAL : rc;
}

/*
 * Which index template goes in before any event (Logstash's manage_template,
 * template, template_name, template_overwrite): the user's file or sluice's
 * for the output's mode, under template_name. Read now, so that a bad file
 * fails the configuration.
 */
static int conf_template(struct out_es *o)
{
    const struct sl_cfg_node *n = o->tmpl_node;
    bool has_file = n && !sl_cfg_is_null(n);
    int rc;
    o->tmpl_done = true;
    if (has_file && n->type == SL_CFG_MAP) {
        rc = conf_template_map(o, n);
    } else if (has_file && n->type != SL_CFG_SCALAR) {
        sl_plugin_error(o->ctx, "template", "option 'template' must be a file's path");
        return SL_EINVAL;
    } else if (!o->manage_template) {
        return 0;
    } else {
        enum sl_ecs mode = sl_plugin_ecs(o->ctx, o->ecs);
        o->tmpl_name = sl_strdup(given(o->template_name) ? o->template_name
                                 : mode == SL_ECS_DISABLED ? ES_TEMPLATE_NAME_LEGACY
                                                           : ES_TEMPLATE_NAME_ECS);
        o->tmpl_check = !o->template_overwrite;
        if (has_file) {
            rc = load_template_file(o, n->scalar, NULL);
        } else {
            struct sl_buf pattern;
            sl_buf_init(&pattern, 0);
            es_template_pattern(sl_template_source(o->index), &pattern);
            es_template_builtin(&o->tmpl_body, mode, sl_buf_cstr(&pattern), o->data_stream);
            sl_buf_free(&pattern);
            rc = 0;
        }
    }
    o->tmpl_put = !o->tmpl_check;
    o->tmpl_done = rc != 0;  /* events wait until the sender has it in place */
    return rc;
}

static void set_tls_curl(struct out_es *o, CURL *easy)
{
    int mode = o->ssl.verification_mode;
    if (o->ca_pem.len) {
        struct curl_blob blob = {.data = o->ca_pem.data, .len = o->ca_pem.len,
                                 .flags = CURL_BLOB_NOCOPY};
        curl_easy_setopt(easy, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (o->cert_pem.len) {
        struct curl_blob cert = {.data = o->cert_pem.data, .len = o->cert_pem.len,
                                 .flags = CURL_BLOB_NOCOPY};
        struct curl_blob key = {.data = o->key_pem.data, .len = o->key_pem.len,
                                .flags = CURL_BLOB_NOCOPY};
        curl_easy_setopt(easy, CURLOPT_SSLCERT_BLOB, &cert);
        curl_easy_setopt(easy, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(easy, CURLOPT_SSLKEY_BLOB, &key);
        curl_easy_setopt(easy, CURLOPT_SSLKEYTYPE, "PEM");
        if (given(o->ssl.key_passphrase)) {
            curl_easy_setopt(easy, CURLOPT_KEYPASSWD, o->ssl.key_passphrase);
        }
    }
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, mode == SL_TLS_VERIFY_NONE ? 0L : 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, mode == SL_TLS_VERIFY_FULL ? 2L : 0L);
}

static void set_common_curl(struct out_es *o, CURL *easy, struct slot *s)
{
    curl_easy_setopt(easy, CURLOPT_PRIVATE, s);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_reply);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)SL_MIN(o->timeout_ms, 10000));
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");  /* gzip'd replies when offered */
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    if (given(o->username)) {
        curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(easy, CURLOPT_USERNAME, o->username);
        curl_easy_setopt(easy, CURLOPT_PASSWORD, o->password ? o->password : "");
    }
    set_tls_curl(o, easy);
}

static struct curl_slist *headers_for(struct out_es *o, const char *type, bool gz)
{
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, type);
    if (gz) {
        h = curl_slist_append(h, "Content-Encoding: gzip");
    }
    /* curl waits up to a second for "100 Continue" on big bodies; _bulk never refuses early. */
    h = curl_slist_append(h, "Expect:");
    if (o->auth_header) {
        h = curl_slist_append(h, o->auth_header);
    }
    return h;
}

/* What only a running aggregator needs (never under -t): libcurl, the request
 * slots, the retry schedules, the loop hand-off, and the start-up timer. */
static int open_sender(struct out_es *o)
{
    struct sl_plugin_ctx *ctx = o->ctx;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        sl_plugin_error(ctx, NULL, "libcurl failed to initialise");
        return SL_EIO;
    }
    o->multi = curl_multi_init();
    o->headers = headers_for(o, "Content-Type: application/x-ndjson", false);
    o->headers_gz = headers_for(o, "Content-Type: application/x-ndjson", true);
    o->headers_json = headers_for(o, "Content-Type: application/json", false);
    o->slots = sl_calloc(o->nslots, sizeof(*o->slots));
    for (size_t i = 0; i <= o->nslots; i++) {
        struct slot *s = i < o->nslots ? &o->slots[i] : &o->tslot;
        s->easy = curl_easy_init();
        sl_buf_init(&s->body, 0);
        sl_buf_init(&s->gz, 0);
        sl_buf_init(&s->reply, REPLY_MAX);
        set_common_curl(o, s->easy, s);
    }
    /* Each schedule its own jitter, and each aggregator its own. */
    uint32_t seed = (uint32_t)(sl_wall_ms() ^ (uintptr_t)o ^ ((uint32_t)getpid() << 16));
    uint64_t init = o->backoff.init_ms, max = o->backoff.max_ms;
    sl_backoff_init(&o->pause, init, max, seed);
    sl_backoff_init(&o->tmpl_retry, init, max, seed * 2654435761u + 1);
    for (size_t i = 0; i < o->nhosts; i++) {
        sl_backoff_init(&o->hosts[i].down, init, max, seed ^ (uint32_t)(i + 1) * 0x9e3779b9u);
    }
    if (ctx->metrics) {
        o->m_req_seconds = sl_metrics_histogram(ctx->metrics, REQ_SECONDS_NAME, REQ_SECONDS_HELP,
                                                (const char *[]){"output", ctx->label, NULL},
                                                sl_metrics_latency_buckets,
                                                sl_metrics_latency_nbuckets);
        o->m_reply_too_large = sl_metrics_counter(
            ctx->metrics, "sluice_aggregator_es_bulk_replies_too_large_total",
            "_bulk replies refused while arriving: larger than their request can need "
            "(the request is retried).", (const char *[]){"output", ctx->label, NULL});
    }
    o->async = sl_async_new(ctx->loop, on_complete, o);
    o->start_timer = sl_loop_timer(ctx->loop, 0, false, on_start, o);
    return 0;
}

/* The encoding's parts (enum es_part), on the pipeline's workers: o is only read. */
static int es_part(const void *inst, const struct sl_value *ev, unsigned k, struct sl_buf *out)
{
    const struct out_es *o = inst;
    return k == ES_PART_INDEX ? es_bulk_index(o->index, ev, out) : es_bulk_id(ev, out);
}

static int es_init(void *inst, struct sl_plugin_ctx *ctx)
{
    struct out_es *o = inst;
    o->ctx = ctx;
    o->id = ctx->id;
    pthread_mutex_init(&o->mu, NULL);
    sl_buf_init(&o->errs, 0);
    sl_buf_init(&o->members, 0);
    sl_buf_init(&o->ca_pem, 0);
    sl_buf_init(&o->cert_pem, 0);
    sl_buf_init(&o->key_pem, 0);
    sl_buf_init(&o->tmpl_body, 0);
    o->nslots = (size_t)o->workers;
    /* The _id is [@metadata][_id]; an index of dates at most reads @timestamp. */
    static const char *const reads[] = {"@timestamp", "@metadata", NULL};
    sl_output_encoding(ctx, &(struct sl_encoding){
        .metadata = false, .nparts = ES_NPARTS, .part = es_part,
        .reads = o->index && sl_template_reads_only(o->index, reads) ? reads : NULL});

    /* Every check runs, so that one load reports every problem. */
    bool bad = conf_hosts(o) != 0;
    bad |= conf_op_type(o) != 0;
    bad |= conf_auth(o) != 0;
    bad |= conf_ssl(o) != 0;
    bad |= conf_backoff(o) != 0;
    bad |= conf_template(o) != 0;
    if (bad) {
        return SL_EINVAL;
    }
    return ctx->check_only ? 0 : open_sender(o);
}

const struct sl_plugin sl_plugin_out_elasticsearch = {
    .name = PLUGIN_NAME,
    .kind = SL_PLUGIN_OUTPUT,
    .summary = "indexes events through the _bulk API of Elasticsearch 7/8 or OpenSearch 1-3",
    .options = es_opts,
    .size = sizeof(struct out_es),
    .init = es_init,
    .fini = es_fini,
    .submit = es_submit,
    .shutdown = es_shutdown,
};
