/*
 * out_elasticsearch.c - the `elasticsearch` output: events to the _bulk API of
 * Elasticsearch 7/8 or OpenSearch 1-3, over libcurl.
 *
 * Two threads, one hand-off each way:
 *   - the loop thread (submit) encodes a batch into NDJSON at once - the
 *     action line and the document of every event, in one buffer owned by
 *     the output - so nothing the pipeline owns is touched after submit()
 *     returns; the batch goes onto the inbox and the sender is woken;
 *   - the sender thread runs libcurl's multi interface (curl_multi_poll):
 *     it cuts the queued items into _bulk requests of at most
 *     bulk_max_bytes, keeps up to `workers` of them in flight over
 *     keep-alive connections, gzips them, reads the per-item verdicts,
 *     re-queues only the items to retry (429/5xx) behind a jittered
 *     exponential backoff, writes rejected items to the dead-letter file, and
 *     when every item of a batch is indexed or dead-lettered moves the batch
 *     to the outbox and wakes the loop through an sl_async handle;
 *   - the loop thread then calls done() (the plugin contract wants it there).
 * Items of several batches share a request when they queue up while every
 * worker is busy; nothing waits to fill a request (the shipper is waiting for
 * the ACK, so holding events back only slows it down).
 *
 * Memory is bounded upstream: a batch is held until done(), and the
 * listener stops reading once max_pending_events are in the pipeline, so the
 * inbox, the retry queue and the outbox hold at most that many events.
 *
 * Not here: index lifecycle, ingest pipelines, sniffing of cluster nodes.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "es_bulk.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/plugin.h"

#define PLUGIN_NAME "elasticsearch"
#define REPLY_MAX ((size_t)64 << 20)       /* a _bulk reply larger than this is refused */
#define MAX_ITEMS_PER_REQUEST 20000        /* keeps replies well under REPLY_MAX */
#define TEMPLATE_FILE_MAX ((size_t)1 << 20)
#define CA_FILE_MAX ((size_t)4 << 20)
#define POLL_MAX_MS 1000
#define SHOW_MAX 300                       /* bytes of a server reply quoted in a log line */

#define REQ_SECONDS_NAME "sluice_aggregator_es_bulk_request_seconds"
#define REQ_SECONDS_HELP "Duration of each _bulk request, from sending to the parsed reply."
#define REQS_NAME "sluice_aggregator_es_bulk_requests_total"
#define REQS_HELP "_bulk requests by HTTP status of the reply (error: no reply)."

enum verify_mode { VERIFY_FULL, VERIFY_CERTIFICATE, VERIFY_NONE };

/* A submitted batch, encoded. Loop thread until it is on the inbox, then the
 * sender's until it is on the outbox, then the loop thread's again. */
struct es_batch {
    struct es_batch *next;     /* inbox / outbox / the sender's active list */
    struct es_batch *prev;     /* active list only */
    sl_output_done done;
    void *done_arg;
    struct sl_buf lines;       /* every item's action and document lines */
    struct es_item *items;
    size_t n;
    size_t unresolved;         /* items neither indexed nor dead-lettered */
    int status;                /* SL_OK, or why the batch failed */
};

struct es_ref {
    struct es_batch *b;
    size_t i;
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
    unsigned fails;
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
    size_t host;
    double start;
    char errbuf[CURL_ERROR_SIZE];
};

struct status_metric {
    long code;
    struct sl_metric *m;
};

struct out_es {
    /* Configuration: written by init, read-only afterwards (both threads). */
    char *id;
    struct host *hosts;
    size_t nhosts;
    struct sl_template *index;
    enum es_op op;
    size_t max_bytes;
    size_t workers;
    char *username, *password;
    char *auth_header;         /* "Authorization: ApiKey ..." */
    struct sl_buf ca_pem;      /* certificate_authorities, concatenated */
    int verify;
    bool gzip;
    int level;
    uint64_t timeout_ms, backoff_init, backoff_max;
    char *dlq_dir;
    char *tmpl_name;
    struct sl_buf tmpl_body;
    struct curl_slist *headers, *headers_gz, *headers_json;

    /* Loop thread. */
    struct sl_loop *loop;
    struct sl_async *async;
    struct sl_timer *start_timer;
    struct sl_buf scratch;
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
    unsigned attempt;          /* consecutive retry rounds, for the backoff */
    size_t rr;                 /* round-robin position in hosts */
    bool tmpl_done;
    uint64_t tmpl_next;
    unsigned tmpl_attempt;
    size_t cur_max_bytes;      /* bulk_max_bytes, halved after each 413 */
    uint32_t rng;
    struct es_result *res;
    size_t res_cap;
    struct sl_buf errs, dlq;
    struct es_ref *rejected;
    size_t nrejected, rejected_cap;
    struct status_metric status_m[16];
    size_t nstatus_m;

    struct sl_metrics *metrics;
    struct sl_metric *m_retry, *m_dead, *m_dropped, *m_req_seconds;
    struct sl_metric *m_ok;    /* indexed: counted here, not by the core (SL_PLUGIN_COUNTS_OK) */
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t rnd(struct out_es *o)
{
    uint32_t x = o->rng;  /* xorshift32: jitter needs spread, not secrecy */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return o->rng = x;
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
    for (size_t i = 0; i < o->workers; i++) {
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

/* ---- sender thread: the dead-letter file ------------------------------------- */

/* Appends o->dlq to today's file (UTC) in dead_letter_path. 0 or SL_EIO. */
static int dlq_write(struct out_es *o)
{
    char path[PATH_MAX];
    time_t secs = (time_t)(sl_wall_ms() / 1000);
    struct tm tm;
    int fd = -1, rc = SL_EIO;
    gmtime_r(&secs, &tm);
    if (snprintf(path, sizeof(path), "%s/dlq-%04d.%02d.%02d.ndjson", o->dlq_dir,
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday) >= (int)sizeof(path)) {
        sl_error("%s: dead_letter_path is too long", o->id);
        return SL_EIO;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT && sl_mkdir_p(o->dlq_dir, 0755) == 0) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    }
    if (fd < 0) {
        sl_error("%s: cannot open dead-letter file %s: %s", o->id, path, strerror(errno));
        goto out;
    }
    const char *p = o->dlq.data;
    size_t left = o->dlq.len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            sl_error("%s: cannot write dead-letter file %s: %s", o->id, path, strerror(errno));
            goto out;
        }
        p += w;
        left -= (size_t)w;
    }
    rc = SL_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

static void reject(struct out_es *o, struct es_ref r, int status, const char *err, size_t elen)
{
    if (o->nrejected == o->rejected_cap) {
        o->rejected_cap = o->rejected_cap ? o->rejected_cap * 2 : 64;
        o->rejected = sl_realloc(o->rejected, o->rejected_cap * sizeof(*o->rejected));
    }
    o->rejected[o->nrejected++] = r;
    if (o->dlq_dir) {
        es_dead_letter_line(&o->dlq, r.b->lines.data, &r.b->items[r.i], err, elen, status,
                            sl_wall_ms());
    } else if (o->nrejected == 1) {
        /* Without a dead-letter file the first error of the reply is all we keep. */
        sl_buf_reset(&o->dlq);
        sl_buf_printf(&o->dlq, "status %d: %.*s", status, (int)SL_MIN(elen, SHOW_MAX), err);
    }
}

/* Writes the dead letters collected by reject() at once, then resolves them.
 * A failed write fails their batches: they are not ACKed and come back. */
static void flush_rejected(struct out_es *o)
{
    if (o->nrejected == 0) {
        return;
    }
    int status = SL_OK;
    if (o->dlq_dir) {
        status = dlq_write(o);
        if (status == SL_OK) {
            sl_counter_add(o->m_dead, o->nrejected);
            sl_warn("%s: %zu event(s) rejected by the server were written to the dead-letter "
                    "file in %s", o->id, o->nrejected, o->dlq_dir);
        }
    } else {
        sl_counter_add(o->m_dropped, o->nrejected);
        sl_warn("%s: %zu event(s) rejected by the server are dropped (no dead_letter_path); "
                "first: %.*s", o->id, o->nrejected, (int)o->dlq.len, o->dlq.data);
    }
    sl_buf_reset(&o->dlq);
    for (size_t i = 0; i < o->nrejected; i++) {
        resolve(o, o->rejected[i].b, status);
    }
    o->nrejected = 0;
}

/* ---- sender thread: requests -------------------------------------------------- */

static size_t on_reply(char *p, size_t size, size_t n, void *arg)
{
    struct slot *s = arg;
    /* Returning less than given makes curl fail the transfer: the reply is
     * then handled as a failed request and its items retried. */
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
    struct sl_metric *m = sl_metrics_counter(o->metrics, REQS_NAME, REQS_HELP, labels);
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
    uint64_t d = es_backoff_ms(o->backoff_init, o->backoff_max, o->attempt, rnd(o));
    if (o->attempt < 64) {
        o->attempt++;
    }
    if (now + d > o->paused_until) {
        o->paused_until = now + d;
    }
}

/* Puts every item of s back in the retry queue, in order. */
static void requeue_all(struct out_es *o, struct slot *s)
{
    for (size_t i = 0; i < s->nrefs; i++) {
        refq_push(&o->retry, s->refs[i]);
    }
    sl_counter_add(o->m_retry, s->nrefs);
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
 * cur_max_bytes (one item larger than that goes alone) and starts it. */
static void start_bulk(struct out_es *o, struct slot *s, size_t host)
{
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
        if (s->nrefs > 0 && s->body.len + it->len > o->cur_max_bytes) {
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
        if (es_gzip(s->body.data, s->body.len, o->level, &s->gz) == 0) {
            data = s->gz.data;
            len = s->gz.len;
            headers = o->headers_gz;
        }
    }
    sl_buf_reset(&s->reply);
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
    s->errbuf[0] = '\0';
    s->host = host;
    s->kind = SLOT_TEMPLATE;
    s->start = now_seconds();
    curl_easy_setopt(s->easy, CURLOPT_URL, sl_buf_cstr(&url));  /* curl copies it */
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, o->headers_json);
    curl_easy_setopt(s->easy, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, o->tmpl_body.data);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->tmpl_body.len);
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
    for (size_t i = 0; i < o->workers; i++) {
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
    if (code == CURLE_OK && http >= 200 && http < 300) {
        o->tmpl_done = true;
        sl_info("%s: index template '%s' installed on %s", o->id, o->tmpl_name,
                o->hosts[s->host].base);
        return;
    }
    uint64_t d = es_backoff_ms(o->backoff_init, o->backoff_max, o->tmpl_attempt, rnd(o));
    if (o->tmpl_attempt < 64) {
        o->tmpl_attempt++;
    }
    o->tmpl_next = now + d;
    if (code != CURLE_OK) {
        struct host *h = &o->hosts[s->host];
        h->dead_until = now + es_backoff_ms(o->backoff_init, o->backoff_max, h->fails++, rnd(o));
        sl_warn("%s: cannot install index template '%s' on %s: %s; retrying in %llu ms",
                o->id, o->tmpl_name, h->base, failure_text(s, code), (unsigned long long)d);
    } else {
        sl_error("%s: installing index template '%s' answered HTTP %ld: %.*s; retrying in "
                 "%llu ms (events wait for it)", o->id, o->tmpl_name, http,
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
    if (code != CURLE_OK) {
        /* No answer: the host is skipped for a while; others may take the items now. */
        h->dead_until = now + es_backoff_ms(o->backoff_init, o->backoff_max, h->fails, rnd(o));
        if (h->fails < 64) {
            h->fails++;
        }
        sl_warn("%s: _bulk request to %s failed: %s; %zu event(s) will be retried", o->id,
                h->base, failure_text(s, code), s->nrefs);
        requeue_all(o, s);
        goto out;
    }
    h->fails = 0;
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
                sl_counter_inc(o->m_ok);
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
            sl_counter_add(o->m_retry, nretry);
            sl_warn("%s: %zu of %zu event(s) were refused for now (status %d); retrying them",
                    o->id, nretry, s->nrefs, first_retry_status);
            pause_sending(o, now);
        } else {
            o->attempt = 0;
        }
    } else if (http == 413 && s->nrefs > 1) {
        /* The server's http.max_content_length is below bulk_max_bytes. */
        o->cur_max_bytes = SL_MAX(s->body.len / 2, (size_t)1);
        sl_warn("%s: %s refused a %zu-byte _bulk request as too large; sending requests of "
                "at most %zu bytes from now on", o->id, h->base, s->body.len, o->cur_max_bytes);
        requeue_all(o, s);
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
        b->done(b->done_arg, b->status);
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

static void es_submit(void *inst, struct sl_batch *batch, sl_output_done done, void *done_arg)
{
    struct out_es *o = inst;
    struct es_batch *b = sl_calloc(1, sizeof(*b));
    /* Unbounded: its input is one window, already capped by the listener. */
    sl_buf_init(&b->lines, 0);
    b->items = sl_calloc(batch->n ? batch->n : 1, sizeof(*b->items));
    for (size_t i = 0; i < batch->n; i++) {
        const struct sl_value *ev = &batch->events[i];
        if (ev->type == SL_V_NULL) {
            continue;  /* dropped by a filter */
        }
        if (es_bulk_encode(&b->lines, o->index, o->op, ev, &o->scratch, &b->items[b->n]) == 0) {
            b->n++;
        }
    }
    if (b->n == 0) {
        batch_free(b);
        done(done_arg, SL_OK);
        return;
    }
    b->unresolved = b->n;
    b->status = SL_OK;
    b->done = done;
    b->done_arg = done_arg;
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
    curl_multi_wakeup(o->multi);
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
        b->done(b->done_arg, status_override ? status_override : b->status);
        batch_free(b);
        b = next;
    }
}

static void es_free(void *inst)
{
    struct out_es *o = inst;
    if (!o) {
        return;
    }
    if (o->started) {
        pthread_mutex_lock(&o->mu);
        o->stop = true;
        pthread_mutex_unlock(&o->mu);
        curl_multi_wakeup(o->multi);
        pthread_join(o->thread, NULL);  /* it fails what it held onto the outbox */
    }
    sl_timer_cancel(o->start_timer);
    /* The core lets an output report verdicts while it is freed (at exit). */
    finish_list(o->in_head, SL_ECLOSED);
    finish_list(o->out_head, 0);
    sl_async_free(o->async);
    for (size_t i = 0; o->slots && i < o->workers; i++) {
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
    sl_template_free(o->index);
    free(o->username);
    free(o->password);
    free(o->auth_header);
    sl_buf_free(&o->ca_pem);
    free(o->dlq_dir);
    free(o->tmpl_name);
    sl_buf_free(&o->tmpl_body);
    sl_buf_free(&o->scratch);
    free(o->fresh.v);
    free(o->retry.v);
    free(o->res);
    sl_buf_free(&o->errs);
    sl_buf_free(&o->dlq);
    free(o->rejected);
    pthread_mutex_destroy(&o->mu);
    free(o->id);
    free(o);
}

/* ---- configuration --------------------------------------------------------------- */

/* Reads a whole file of at most max bytes into out; 0, or an errno. */
static int read_file(const char *path, size_t max, struct sl_buf *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno;
    }
    int rc = 0;
    char chunk[65536];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            rc = errno;
            break;
        }
        if (r == 0) {
            break;
        }
        if (out->len + (size_t)r > max) {
            rc = EFBIG;
            break;
        }
        sl_buf_append(out, chunk, (size_t)r);
    }
    close(fd);
    return rc;
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

static void conf_hosts(struct out_es *o, struct sl_cfg *cfg, struct sl_cfg_node *opts)
{
    char **list = NULL;
    size_t n = 0;
    sl_cfg_strlist(cfg, opts, o->id, "hosts", &list, &n);
    struct sl_cfg_node *node = sl_cfg_get(opts, "hosts");
    if (n == 0 && !node) {
        sl_cfg_strv_free(list);
        list = sl_calloc(2, sizeof(*list));
        list[0] = sl_strdup("http://127.0.0.1:9200");
        n = 1;
    } else if (n == 0) {
        sl_cfg_error(cfg, node, "%s: option 'hosts' needs at least one URL", o->id);
    }
    o->hosts = sl_calloc(n ? n : 1, sizeof(*o->hosts));
    for (size_t i = 0; i < n; i++) {
        char *base = host_base(list[i]);
        if (!base) {
            sl_cfg_error(cfg, node, "%s: option 'hosts': '%s' is not an http:// or https:// "
                         "URL", o->id, list[i]);
            continue;
        }
        struct host *h = &o->hosts[o->nhosts++];
        h->base = base;
        size_t blen = strlen(base) + sizeof("/_bulk");
        h->bulk_url = sl_malloc(blen);
        snprintf(h->bulk_url, blen, "%s/_bulk", base);
    }
    sl_cfg_strv_free(list);
}

static void conf_ssl(struct out_es *o, struct sl_cfg *cfg, struct sl_cfg_node *opts)
{
    static const char *const modes[] = {"full", "certificate", "none", NULL};
    struct sl_cfg_node *ssl = sl_cfg_get(opts, "ssl");
    char where[256];
    snprintf(where, sizeof(where), "%s: ssl", o->id);
    if (!sl_cfg_is_map(cfg, ssl, where) || !ssl || ssl->type != SL_CFG_MAP) {
        return;
    }
    char **cas = NULL;
    size_t n = 0;
    sl_cfg_strlist(cfg, ssl, where, "certificate_authorities", &cas, &n);
    sl_cfg_enum(cfg, ssl, where, "verification_mode", modes, VERIFY_FULL, &o->verify);
    for (size_t i = 0; i < n; i++) {
        int e = read_file(cas[i], CA_FILE_MAX, &o->ca_pem);
        if (e != 0) {
            sl_cfg_error(cfg, sl_cfg_get(ssl, "certificate_authorities"),
                         "%s: cannot read certificate authority '%s': %s", where, cas[i],
                         strerror(e));
        }
        sl_buf_putc(&o->ca_pem, '\n');
    }
    sl_cfg_strv_free(cas);
    sl_cfg_check_unknown(cfg, ssl, where);
}

static void conf_backoff(struct out_es *o, struct sl_cfg *cfg, struct sl_cfg_node *opts)
{
    struct sl_cfg_node *bo = sl_cfg_get(opts, "backoff");
    char where[256];
    snprintf(where, sizeof(where), "%s: backoff", o->id);
    o->backoff_init = 1000;
    o->backoff_max = 60000;
    if (!sl_cfg_is_map(cfg, bo, where) || !bo || bo->type != SL_CFG_MAP) {
        return;
    }
    sl_cfg_duration(cfg, bo, where, "init", 1000, 1, 3600000, &o->backoff_init);
    sl_cfg_duration(cfg, bo, where, "max", 60000, 1, 3600000, &o->backoff_max);
    if (o->backoff_max < o->backoff_init) {
        sl_cfg_error(cfg, sl_cfg_get(bo, "max"), "%s: 'max' must not be below 'init'", where);
    }
    sl_cfg_check_unknown(cfg, bo, where);
}

static void conf_template(struct out_es *o, struct sl_cfg *cfg, struct sl_cfg_node *opts)
{
    struct sl_cfg_node *t = sl_cfg_get(opts, "template");
    char where[256], *file = NULL, jerr[128];
    snprintf(where, sizeof(where), "%s: template", o->id);
    o->tmpl_done = true;
    if (!sl_cfg_is_map(cfg, t, where) || !t || t->type != SL_CFG_MAP) {
        return;
    }
    sl_cfg_str(cfg, t, where, "name", NULL, &o->tmpl_name);
    sl_cfg_str(cfg, t, where, "file", NULL, &file);
    sl_cfg_check_unknown(cfg, t, where);
    if (!o->tmpl_name || !o->tmpl_name[0]) {
        sl_cfg_error(cfg, t, "%s: option 'name' is required", where);
    }
    if (!file || !file[0]) {
        sl_cfg_error(cfg, t, "%s: option 'file' is required", where);
    } else {
        int e = read_file(file, TEMPLATE_FILE_MAX, &o->tmpl_body);
        struct sl_value v = {0};
        if (e != 0) {
            sl_cfg_error(cfg, sl_cfg_get(t, "file"), "%s: cannot read '%s': %s", where, file,
                         strerror(e));
        } else if (sl_json_parse(o->tmpl_body.data ? o->tmpl_body.data : "", o->tmpl_body.len,
                                 &v, NULL, jerr, sizeof(jerr)) != 0 || v.type != SL_V_OBJECT) {
            sl_cfg_error(cfg, sl_cfg_get(t, "file"), "%s: '%s' is not a JSON object (%s)",
                         where, file, v.type == SL_V_NULL ? jerr : "not an object");
        }
        sl_value_clear(&v);
    }
    free(file);
    o->tmpl_done = false;
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
    if (o->username && o->username[0]) {
        curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(easy, CURLOPT_USERNAME, o->username);
        curl_easy_setopt(easy, CURLOPT_PASSWORD, o->password ? o->password : "");
    }
    if (o->ca_pem.len) {
        struct curl_blob blob = {.data = o->ca_pem.data, .len = o->ca_pem.len,
                                 .flags = CURL_BLOB_NOCOPY};
        curl_easy_setopt(easy, CURLOPT_CAINFO_BLOB, &blob);
    }
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, o->verify == VERIFY_NONE ? 0L : 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, o->verify == VERIFY_FULL ? 2L : 0L);
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

static void *es_init(struct sl_cfg *cfg, struct sl_cfg_node *opts, struct sl_plugin_env *env)
{
    static const char *const ops[] = {"index", "create", NULL};
    struct out_es *o = sl_calloc(1, sizeof(*o));
    int errors = cfg->nerrors, op = 0;
    char *index_src = NULL, *api_key = NULL, err[200];
    bool data_stream = false;
    uint64_t max_bytes = 0, flush_ms = 0;
    int64_t workers = 2, level = 1;

    o->id = sl_strdup(env->id);
    pthread_mutex_init(&o->mu, NULL);
    sl_buf_init(&o->scratch, 0);
    sl_buf_init(&o->errs, 0);
    sl_buf_init(&o->dlq, 0);
    sl_buf_init(&o->ca_pem, 0);
    sl_buf_init(&o->tmpl_body, 0);

    conf_hosts(o, cfg, opts);
    sl_cfg_str(cfg, opts, o->id, "index", "logs-%{+yyyy.MM.dd}", &index_src);
    sl_cfg_bool(cfg, opts, o->id, "data_stream", false, &data_stream);
    struct sl_cfg_node *op_node = sl_cfg_get(opts, "op_type");
    sl_cfg_enum(cfg, opts, o->id, "op_type", ops, data_stream ? ES_OP_CREATE : ES_OP_INDEX, &op);
    o->op = (enum es_op)op;
    if (data_stream && o->op != ES_OP_CREATE) {
        sl_cfg_error(cfg, op_node, "%s: data streams accept only op_type: create", o->id);
    }
    sl_cfg_size(cfg, opts, o->id, "bulk_max_bytes", 5u << 20, 1024, (uint64_t)100 << 20,
                &max_bytes);
    /* Accepted for Beats/Logstash configs; requests never wait (see the README). */
    sl_cfg_duration(cfg, opts, o->id, "flush_interval", 1000, 0, 3600000, &flush_ms);
    sl_cfg_int(cfg, opts, o->id, "workers", 2, 1, 64, &workers);
    sl_cfg_str(cfg, opts, o->id, "username", NULL, &o->username);
    sl_cfg_str(cfg, opts, o->id, "password", NULL, &o->password);
    sl_cfg_str(cfg, opts, o->id, "api_key", NULL, &api_key);
    conf_ssl(o, cfg, opts);
    sl_cfg_bool(cfg, opts, o->id, "compression", true, &o->gzip);
    sl_cfg_int(cfg, opts, o->id, "compression_level", 1, 1, 9, &level);
    sl_cfg_duration(cfg, opts, o->id, "timeout", 60000, 100, 3600000, &o->timeout_ms);
    conf_backoff(o, cfg, opts);
    sl_cfg_str(cfg, opts, o->id, "dead_letter_path", NULL, &o->dlq_dir);
    conf_template(o, cfg, opts);
    sl_cfg_check_unknown(cfg, opts, o->id);

    o->max_bytes = o->cur_max_bytes = (size_t)max_bytes;
    o->workers = (size_t)workers;
    o->level = (int)level;
    if (o->dlq_dir && !o->dlq_dir[0]) {
        free(o->dlq_dir);
        o->dlq_dir = NULL;
    }
    if (o->username && o->username[0] && api_key && api_key[0]) {
        sl_cfg_error(cfg, sl_cfg_get(opts, "api_key"),
                     "%s: use either username/password or api_key, not both", o->id);
    }
    if (api_key && api_key[0]) {
        /* "id:key" is encoded here; an already encoded key is sent as given. */
        struct sl_buf h;
        sl_buf_init(&h, 0);
        sl_buf_puts(&h, "Authorization: ApiKey ");
        if (strchr(api_key, ':')) {
            es_base64(api_key, strlen(api_key), &h);
        } else {
            sl_buf_puts(&h, api_key);
        }
        o->auth_header = sl_strdup(sl_buf_cstr(&h));
        sl_buf_free(&h);
    }
    free(api_key);
    o->index = sl_template_new(index_src, err, sizeof(err));
    if (!o->index) {
        sl_cfg_error(cfg, sl_cfg_get(opts, "index"), "%s: option 'index' %s", o->id, err);
    }
    free(index_src);
    if (cfg->nerrors != errors) {
        es_free(o);
        return NULL;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        sl_cfg_error(cfg, opts, "%s: libcurl failed to initialise", o->id);
        es_free(o);
        return NULL;
    }
    o->multi = curl_multi_init();
    o->headers = headers_for(o, "Content-Type: application/x-ndjson", false);
    o->headers_gz = headers_for(o, "Content-Type: application/x-ndjson", true);
    o->headers_json = headers_for(o, "Content-Type: application/json", false);
    o->slots = sl_calloc(o->workers, sizeof(*o->slots));
    for (size_t i = 0; i <= o->workers; i++) {
        struct slot *s = i < o->workers ? &o->slots[i] : &o->tslot;
        s->easy = curl_easy_init();
        sl_buf_init(&s->body, 0);
        sl_buf_init(&s->gz, 0);
        sl_buf_init(&s->reply, REPLY_MAX);
        set_common_curl(o, s->easy, s);
    }
    o->rng = (uint32_t)(sl_wall_ms() ^ (uintptr_t)o ^ ((uint32_t)getpid() << 16)) | 1u;

    o->metrics = env->metrics;
    const char *retry[] = {"output", PLUGIN_NAME, "result", "retry", NULL};
    const char *dead[] = {"output", PLUGIN_NAME, "result", "dead_letter", NULL};
    const char *okl[] = {"output", PLUGIN_NAME, "result", "ok", NULL};
    o->m_ok = sl_metrics_counter(o->metrics, SL_OUTPUT_EVENTS_NAME, SL_OUTPUT_EVENTS_HELP, okl);
    const char *dropped[] = {"output", PLUGIN_NAME, "result", "dropped", NULL};
    const char *lbl[] = {"output", PLUGIN_NAME, NULL};
    o->m_retry = sl_metrics_counter(o->metrics, SL_OUTPUT_EVENTS_NAME, SL_OUTPUT_EVENTS_HELP,
                                    retry);
    o->m_dead = sl_metrics_counter(o->metrics, SL_OUTPUT_EVENTS_NAME, SL_OUTPUT_EVENTS_HELP,
                                   dead);
    o->m_dropped = sl_metrics_counter(o->metrics, SL_OUTPUT_EVENTS_NAME, SL_OUTPUT_EVENTS_HELP,
                                      dropped);
    o->m_req_seconds = sl_metrics_histogram(o->metrics, REQ_SECONDS_NAME, REQ_SECONDS_HELP, lbl,
                                            sl_metrics_latency_buckets,
                                            sl_metrics_latency_nbuckets);

    o->loop = env->loop;
    o->async = sl_async_new(o->loop, on_complete, o);
    o->start_timer = sl_loop_timer(o->loop, 0, false, on_start, o);
    return o;
}

const struct sl_plugin sl_plugin_out_elasticsearch = {
    .name = PLUGIN_NAME,
    .kind = SL_PLUGIN_OUTPUT,
    .flags = SL_PLUGIN_COUNTS_OK,
    .init = es_init,
    .free = es_free,
    .submit = es_submit,
    .shutdown = es_shutdown,
};
