/*
 * queue.c - runs the persisted queue (queue.h): a writer thread for appends
 * and group-committed fsyncs, and on the loop thread the reader that feeds
 * the pipeline and acks what every output took.
 *
 * The writer thread owns appends and fsyncs so the loop never waits on the
 * disk. Windows reach it through a list under q->mu; their verdicts come
 * back through another list and an async handle. The group commit: the
 * writer appends every window waiting, and only when none is left (or the
 * queue is full) fsyncs once for all of them - so the more connections
 * send, the more windows one fsync covers.
 */
#include "queue.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pqueue.h"
#include "sluice/arena.h"
#include "sluice/json.h"
#include "sluice/log.h"

#define READ_EVENTS 2048u            /* events per batch read from the queue */
#define READ_BYTES (2u << 20)      /* under glibc's mmap threshold as main.c sets it */
#define RETRY_MS 1000u               /* after an output failed a batch */
#define GAUGE_MS 1000u
#define REPLAY_DEPTH 512u            /* texts were checked against input.max_json_depth
                                      * when they came in; a reload must not refuse them */

struct qwin {
    struct qwin *next;
    struct agg_input *in;
    agg_batch_done done;
    void *arg;
    int status;
};

struct rbatch {
    struct rbatch *next;
    struct agg_queue *q;
    struct pq_batch pb;
    struct agg_input in;
    size_t n;              /* texts still to deliver (one dropped as not JSON is gone) */
    bool submitted;        /* in a pipeline now */
    bool done;             /* every output has it */
    bool retry;            /* failed: submit again after RETRY_MS */
};

struct agg_queue {
    struct sl_loop *loop;
    struct pq_store *st;
    struct agg_pipeline *pipeline;

    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct qwin *in_head, *in_tail;      /* loop -> writer */
    struct qwin *out_head, *out_tail;    /* writer -> loop */
    bool quit;
    uint64_t max_bytes, sync_writes, sync_interval_ms;
    unsigned max_depth;
    size_t max_event_memory;             /* pipeline.max_event_memory */
    struct sl_async *async;
    size_t pushed;                       /* loop: windows not yet answered */

    /* writer thread only */
    struct qwin *uns_head, *uns_tail;    /* appended, not yet fsynced */
    uint64_t uns_events, uns_since;
    const char **texts;
    size_t *lens;
    size_t tcap;
    struct sl_arena arena;

    /* loop thread: reading */
    struct rbatch *rhead, *rtail;
    size_t r_events, max_inflight;
    bool feeding, stopping;
    struct agg_order order;
    struct sl_timer *retry_timer;
    struct sl_timer *gauge_timer;

    struct sl_metric *m_events, *m_bytes, *m_max_bytes, *m_oldest, *m_fsync, *m_write_errors,
        *m_corrupt, *m_dropped, *m_full;
    uint64_t corrupt_seen;
};

static void feed(struct agg_queue *q);

/* ---- writer thread ---- */

static uint64_t mono_ms(void)
{
    return sl_now_ms();
}

/* Every event a JSON object within the nesting limit, as the pipeline's parse wants. */
static bool check_texts(struct agg_queue *q, struct agg_input *in)
{
    struct sl_json_limits lim = {.max_depth = in->max_depth ? in->max_depth : q->max_depth};
    struct sl_json_member members[SL_JSON_SCAN_MEMBERS];
    for (size_t i = 0; i < in->batch.n; i++) {
        const struct sl_value *ev = &in->batch.events[i];
        size_t nm = 0;
        struct sl_json_doc doc;
        if (sl_json_scan(ev->u.s.ptr, ev->u.s.len, &lim, NULL, members, &nm, &doc)) {
            continue;
        }
        struct sl_value v = {0};
        lim.max_bytes = ev->u.s.len + q->max_event_memory;
        int rc = sl_json_parse_arena(ev->u.s.ptr, ev->u.s.len, &v, &q->arena, &lim, in->bad_why,
                                     sizeof(in->bad_why));
        bool object = rc == 0 && v.type == SL_V_OBJECT;
        sl_value_clear(&v);
        sl_arena_reset(&q->arena);
        if (rc == SL_E2BIG) {
            /* Not the client's fault as far as read: kept, and dead-lettered by
             * the pipeline's parse, which stops at the same limit. */
            continue;
        }
        if (!object) {
            if (rc == 0) {
                snprintf(in->bad_why, sizeof(in->bad_why), "not a JSON object");
            }
            in->bad_rc = rc == 0 ? SL_EINVAL : rc;
            in->bad_index = i;
            return false;
        }
    }
    return true;
}

/* Under q->mu: hands a verdict to the loop thread. */
static void answer_locked(struct agg_queue *q, struct qwin *w, int status)
{
    w->status = status;
    w->next = NULL;
    if (q->out_tail) {
        q->out_tail->next = w;
    } else {
        q->out_head = w;
    }
    q->out_tail = w;
}

static void write_one(struct agg_queue *q, struct qwin *w)
{
    struct agg_input *in = w->in;
    size_t n = in->batch.n;
    in->bad_rc = 0;
    if (!check_texts(q, in)) {
        pthread_mutex_lock(&q->mu);
        answer_locked(q, w, SL_EPROTO);
        pthread_mutex_unlock(&q->mu);
        sl_async_send(q->async);
        return;
    }
    if (n > q->tcap) {
        q->tcap = n;
        q->texts = sl_realloc(q->texts, n * sizeof(*q->texts));
        q->lens = sl_realloc(q->lens, n * sizeof(*q->lens));
    }
    for (size_t i = 0; i < n; i++) {
        q->texts[i] = in->batch.events[i].u.s.ptr;
        q->lens[i] = in->batch.events[i].u.s.len;
    }
    if (pq_append(q->st, q->texts, q->lens, n, sl_wall_ms()) != 0) {
        sl_error("queue: cannot append a window of %zu events: %s; not ACKed (the client "
                 "resends it)", n, strerror(errno));
        sl_counter_inc(q->m_write_errors);
        pthread_mutex_lock(&q->mu);
        answer_locked(q, w, SL_EIO);
        pthread_mutex_unlock(&q->mu);
        sl_async_send(q->async);
        return;
    }
    if (!q->uns_head) {
        q->uns_since = mono_ms();
    }
    w->next = NULL;
    if (q->uns_tail) {
        q->uns_tail->next = w;
    } else {
        q->uns_head = w;
    }
    q->uns_tail = w;
    q->uns_events += n;
}

/* fsyncs what was appended and answers those windows: SL_OK, or SL_EIO if the fsync failed. */
static void sync_now(struct agg_queue *q)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = pq_sync(q->st);
    clock_gettime(CLOCK_MONOTONIC, &b);
    sl_hist_observe(q->m_fsync, (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
    if (rc != 0) {
        /* Not durable, so not ACKed; the pages may hold them anyway (delivered twice). */
        sl_error("queue: fsync failed: %s; %" PRIu64 " events not ACKed", strerror(errno),
                 q->uns_events);
        sl_counter_inc(q->m_write_errors);
    }
    pthread_mutex_lock(&q->mu);
    for (struct qwin *w = q->uns_head, *next; w; w = next) {
        next = w->next;
        answer_locked(q, w, rc == 0 ? SL_OK : SL_EIO);
    }
    pthread_mutex_unlock(&q->mu);
    q->uns_head = q->uns_tail = NULL;
    q->uns_events = 0;
    sl_async_send(q->async);
}

/* Under q->mu: the window at the head fits (an empty queue takes any window). */
static bool room(struct agg_queue *q)
{
    uint64_t live = pq_live_bytes(q->st);
    if (live == 0) {
        return true;
    }
    const struct sl_batch *b = &q->in_head->in->batch;
    size_t lens_total = 0;
    for (size_t i = 0; i < b->n; i++) {
        lens_total += PQ_RECORD_HEADER + b->events[i].u.s.len;
    }
    return live + lens_total <= q->max_bytes;
}

static void wait_until(struct agg_queue *q, uint64_t due_ms)
{
    uint64_t now = mono_ms();
    if (due_ms <= now) {
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (due_ms - now) * 1000000ull;
    ts.tv_sec += (time_t)(ns / 1000000000ull);
    ts.tv_nsec = (long)(ns % 1000000000ull);
    pthread_cond_timedwait(&q->cv, &q->mu, &ts);
}

static void *writer_main(void *arg)
{
    struct agg_queue *q = arg;
    bool was_full = false;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        if (q->in_head && room(q)) {
            struct qwin *w = q->in_head;
            q->in_head = w->next;
            if (!q->in_head) {
                q->in_tail = NULL;
            }
            was_full = false;
            pthread_mutex_unlock(&q->mu);
            write_one(q, w);
            pthread_mutex_lock(&q->mu);
            continue;
        }
        bool full = q->in_head != NULL;
        if (full && !was_full) {
            sl_counter_inc(q->m_full);
            was_full = true;
        }
        /* Nothing more to append now: the moment for the group's fsync, if it is due. */
        bool due = q->uns_head && (full || q->quit || q->uns_events >= q->sync_writes ||
                                   mono_ms() - q->uns_since >= q->sync_interval_ms);
        if (due) {
            pthread_mutex_unlock(&q->mu);
            sync_now(q);
            pthread_mutex_lock(&q->mu);
            continue;
        }
        if (q->quit) {
            break;
        }
        if (q->uns_head) {
            wait_until(q, q->uns_since + q->sync_interval_ms);
        } else {
            pthread_cond_wait(&q->cv, &q->mu);  /* new windows, room, or quit */
        }
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* ---- loop thread: verdicts ---- */

static void on_verdicts(struct sl_loop *loop, void *arg)
{
    struct agg_queue *q = arg;
    pthread_mutex_lock(&q->mu);
    struct qwin *w = q->out_head;
    q->out_head = q->out_tail = NULL;
    pthread_mutex_unlock(&q->mu);
    while (w) {
        struct qwin *next = w->next;
        q->pushed--;
        w->done(w->arg, w->status);
        free(w);
        w = next;
    }
    sl_gauge_set(q->m_events, (double)pq_live_events(q->st));
    sl_gauge_set(q->m_bytes, (double)pq_live_bytes(q->st));
    feed(q);
}

void agg_queue_push(struct agg_queue *q, struct agg_input *in, agg_batch_done done, void *arg)
{
    struct qwin *w = sl_calloc(1, sizeof(*w));
    w->in = in;
    w->done = done;
    w->arg = arg;
    q->pushed++;
    pthread_mutex_lock(&q->mu);
    if (q->in_tail) {
        q->in_tail->next = w;
    } else {
        q->in_head = w;
    }
    q->in_tail = w;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* ---- loop thread: reading and acking ---- */

static void rbatch_free(struct rbatch *rb)
{
    pq_batch_free(&rb->pb);
    free(rb->in.batch.events);
    free(rb);
}

/* Rebuilds the events from the texts (the pipeline cleared them) and submits. */
static void submit(struct agg_queue *q, struct rbatch *rb);

static void ack_done_prefix(struct agg_queue *q)
{
    struct rbatch *last = NULL;
    while (q->rhead && q->rhead->done) {
        struct rbatch *rb = q->rhead;
        q->rhead = rb->next;
        if (!q->rhead) {
            q->rtail = NULL;
        }
        if (last) {
            rbatch_free(last);
        }
        last = rb;
    }
    if (!last) {
        return;
    }
    uint64_t ms = last->pb.n ? last->pb.texts[last->pb.n - 1].ms : 0;
    if (pq_ack(q->st, last->pb.end_seq, last->pb.end_page, last->pb.end_off, ms) != 0) {
        sl_warn("queue: cannot write the checkpoint: %s (events would be delivered again "
                "after a restart)", strerror(errno));
    }
    rbatch_free(last);
    pthread_mutex_lock(&q->mu);
    pthread_cond_signal(&q->cv);  /* room may have been made */
    pthread_mutex_unlock(&q->mu);
}

/* Drops event i of rb, which the pipeline refused as not JSON. */
static void drop_text(struct agg_queue *q, struct rbatch *rb, size_t i)
{
    struct pq_text *t = &rb->pb.texts[i];
    sl_error("queue: event seq %" PRIu64 " in the queue is not a JSON object (%s); dropped",
             t->seq, rb->in.bad_why);
    sl_counter_inc(q->m_dropped);
    memmove(t, t + 1, (rb->n - i - 1) * sizeof(*t));
    rb->n--;
}

static void retry_fire(struct sl_loop *loop, void *arg)
{
    struct agg_queue *q = arg;
    q->retry_timer = NULL;
    for (struct rbatch *rb = q->rhead; rb; rb = rb->next) {
        if (rb->retry && !q->stopping) {
            rb->retry = false;
            submit(q, rb);
        }
    }
}

static void batch_done(void *arg, int status)
{
    struct rbatch *rb = arg;
    struct agg_queue *q = rb->q;
    rb->submitted = false;
    q->r_events -= rb->in.batch.n;
    if (status == SL_EPROTO && rb->in.bad_rc != 0 && rb->in.bad_index < rb->n) {
        drop_text(q, rb, rb->in.bad_index);
        if (!q->stopping) {
            submit(q, rb);
            return;
        }
    } else if (status == SL_OK) {
        rb->done = true;
        ack_done_prefix(q);
    } else if (!q->stopping) {
        /* An output gave up on it (they retry transient errors themselves): try again. */
        sl_warn("queue: a batch of %zu events was not delivered; retrying in %u ms", rb->n,
                RETRY_MS);
        rb->retry = true;
        if (!q->retry_timer) {
            q->retry_timer = sl_loop_timer(q->loop, RETRY_MS, false, retry_fire, q);
        }
    }
    /* Stopping: what is not delivered stays in the queue for the next start. */
    sl_gauge_set(q->m_events, (double)pq_live_events(q->st));
    sl_gauge_set(q->m_bytes, (double)pq_live_bytes(q->st));
    feed(q);
}

static void submit(struct agg_queue *q, struct rbatch *rb)
{
    rb->in.batch.events = sl_realloc(rb->in.batch.events,
                                     SL_MAX(rb->n, (size_t)1) * sizeof(*rb->in.batch.events));
    for (size_t i = 0; i < rb->n; i++) {
        struct sl_value *ev = &rb->in.batch.events[i];
        *ev = (struct sl_value){.type = SL_V_STRING, .flags = SL_VF_ARENA};
        ev->u.s.ptr = (char *)rb->pb.texts[i].p;
        ev->u.s.len = rb->pb.texts[i].len;
    }
    rb->in.batch.n = rb->n;
    rb->in.raw = true;
    rb->in.max_depth = REPLAY_DEPTH;
    rb->submitted = true;
    q->r_events += rb->n;
    agg_pipeline_submit(q->pipeline, &rb->in, &q->order, batch_done, rb);
}

static void feed(struct agg_queue *q)
{
    if (q->feeding) {
        return;  /* a completion inside agg_pipeline_submit: the outer loop goes on */
    }
    q->feeding = true;
    while (!q->stopping && q->pipeline && q->r_events < q->max_inflight) {
        struct rbatch *rb = sl_calloc(1, sizeof(*rb));
        rb->q = q;
        pq_batch_init(&rb->pb);
        size_t want = SL_MIN((size_t)READ_EVENTS, q->max_inflight - q->r_events);
        size_t n = pq_read(q->st, &rb->pb, SL_MAX(want, (size_t)1), READ_BYTES);
        uint64_t corrupt = pq_corrupt_pages(q->st);
        if (corrupt > q->corrupt_seen) {
            sl_counter_add(q->m_corrupt, corrupt - q->corrupt_seen);
            q->corrupt_seen = corrupt;
        }
        if (n == 0) {
            rbatch_free(rb);
            break;
        }
        rb->n = n;
        if (q->rtail) {
            q->rtail->next = rb;
        } else {
            q->rhead = rb;
        }
        q->rtail = rb;
        submit(q, rb);
    }
    q->feeding = false;
}

static void on_gauges(struct sl_loop *loop, void *arg)
{
    struct agg_queue *q = arg;
    uint64_t ms;
    double age = 0;
    if (agg_queue_oldest(q, &ms)) {
        uint64_t now = sl_wall_ms();
        age = now > ms ? (double)(now - ms) / 1000.0 : 0;
    }
    sl_gauge_set(q->m_oldest, age);
    sl_gauge_set(q->m_events, (double)pq_live_events(q->st));
    sl_gauge_set(q->m_bytes, (double)pq_live_bytes(q->st));
    feed(q);  /* pages synced while no verdict was due (a window of an interval) */
}

/* ---- lifecycle ---- */

static void make_metrics(struct agg_queue *q, struct sl_metrics *m)
{
    static const double fsync_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                          0.05,   0.1,   0.25,   0.5,   1,    2.5};
    q->m_events = sl_metrics_gauge(m, "sluice_aggregator_queue_events",
                                   "Events inside the pipeline, not yet acknowledged.", NULL);
    q->m_bytes = sl_metrics_gauge(m, "sluice_aggregator_queue_bytes",
                                  "Persisted queue: bytes of events not yet taken by every "
                                  "output (what queue.max_bytes bounds).", NULL);
    q->m_max_bytes = sl_metrics_gauge(m, "sluice_aggregator_queue_max_bytes",
                                      "Persisted queue: queue.max_bytes.", NULL);
    q->m_oldest = sl_metrics_gauge(m, "sluice_aggregator_queue_oldest_event_age_seconds",
                                   "Persisted queue: age of the oldest event not yet taken by "
                                   "every output (0: empty).", NULL);
    q->m_fsync = sl_metrics_histogram(m, "sluice_aggregator_queue_fsync_seconds",
                                      "Persisted queue: time one fsync (group commit) took.",
                                      NULL, fsync_bounds, SL_ARRAY_LEN(fsync_bounds));
    q->m_write_errors = sl_metrics_counter(m, "sluice_aggregator_queue_write_errors_total",
                                           "Persisted queue: appends or fsyncs that failed "
                                           "(disk full...); those windows were not ACKed.", NULL);
    q->m_corrupt = sl_metrics_counter(m, "sluice_aggregator_queue_corrupt_pages_total",
                                      "Persisted queue: pages moved aside as page.N.corrupt.",
                                      NULL);
    q->m_dropped = sl_metrics_counter(m, "sluice_aggregator_queue_dropped_events_total",
                                      "Persisted queue: queued events the pipeline refused as "
                                      "not JSON (not expected: they are checked on the way in).",
                                      NULL);
    q->m_full = sl_metrics_counter(m, "sluice_aggregator_queue_full_total",
                                   "Persisted queue: times a window had to wait for room "
                                   "(queue.max_bytes reached).", NULL);
}

void agg_queue_apply(struct agg_queue *q, const struct agg_conf *conf)
{
    pthread_mutex_lock(&q->mu);
    q->max_bytes = conf->queue_max_bytes;
    q->sync_writes = conf->queue_checkpoint_writes;
    q->sync_interval_ms = conf->queue_checkpoint_interval_ms;
    q->max_depth = (unsigned)conf->max_json_depth;
    q->max_event_memory = (size_t)(conf->max_event_memory ? conf->max_event_memory : 16u << 20);
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    /* Four read batches in the pipeline keep the outputs busy; more only costs memory. */
    q->max_inflight = SL_MIN((size_t)conf->max_pending_events, (size_t)READ_EVENTS * 4);
    sl_gauge_set(q->m_max_bytes, (double)conf->queue_max_bytes);
}

struct agg_queue *agg_queue_open(struct sl_loop *loop, const struct agg_conf *conf,
                                 struct sl_metrics *metrics, struct agg_pipeline *pipeline)
{
    char err[512];
    struct pq_recovery rec;
    struct pq_store *st = pq_open(conf->queue_path, conf->queue_page_capacity, &rec, err,
                                  sizeof(err));
    if (!st) {
        sl_error("%s", err);
        return NULL;
    }
    struct agg_queue *q = sl_calloc(1, sizeof(*q));
    q->loop = loop;
    q->st = st;
    q->pipeline = pipeline;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    sl_arena_init(&q->arena, 64 * 1024);
    make_metrics(q, metrics);
    agg_queue_apply(q, conf);
    sl_gauge_set(q->m_events, (double)rec.events);
    sl_gauge_set(q->m_bytes, (double)rec.bytes);
    sl_counter_add(q->m_corrupt, rec.corrupt_pages);
    q->corrupt_seen = rec.corrupt_pages;
    sl_info("queue: %s: %" PRIu64 " events (%" PRIu64 " bytes) in %" PRIu64 " pages to deliver"
            "%s", conf->queue_path, rec.events, rec.bytes, rec.pages,
            rec.events ? "" : " (empty)");
    if (rec.torn_bytes) {
        sl_warn("queue: %s: cut a torn tail of %" PRIu64 " bytes (a write the process did not "
                "finish; never ACKed)", conf->queue_path, rec.torn_bytes);
    }
    if (rec.corrupt_pages) {
        sl_error("queue: %s: %" PRIu64 " corrupt page(s) moved aside as page.N.corrupt "
                 "(at least %" PRIu64 " events not served)", conf->queue_path,
                 rec.corrupt_pages, rec.corrupt_events);
    }
    q->async = sl_async_new(loop, on_verdicts, q);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);  /* signals stay with the loop's signalfd */
    int rc = q->async ? pthread_create(&q->thread, NULL, writer_main, q) : -1;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        sl_error("queue: cannot start the writer thread");
        agg_queue_free(q);
        return NULL;
    }
    q->started = true;
    q->gauge_timer = sl_loop_timer(loop, GAUGE_MS, true, on_gauges, q);
    feed(q);
    return q;
}

void agg_queue_set_pipeline(struct agg_queue *q, struct agg_pipeline *p)
{
    q->pipeline = p;
    feed(q);
}

void agg_queue_stop(struct agg_queue *q)
{
    q->stopping = true;
    sl_timer_cancel(q->retry_timer);
    q->retry_timer = NULL;
}

bool agg_queue_idle(const struct agg_queue *q)
{
    if (q->pushed > 0) {
        return false;
    }
    for (const struct rbatch *rb = q->rhead; rb; rb = rb->next) {
        if (rb->submitted) {
            return false;
        }
    }
    return true;
}

uint64_t agg_queue_events(const struct agg_queue *q)
{
    return pq_live_events(q->st);
}

bool agg_queue_oldest(const struct agg_queue *q, uint64_t *wall_ms)
{
    if (pq_live_events(q->st) == 0) {
        return false;
    }
    uint64_t ms = q->rhead && q->rhead->pb.n ? q->rhead->pb.texts[0].ms : pq_oldest_ms(q->st);
    if (!ms) {
        return false;
    }
    *wall_ms = ms;
    return true;
}

void agg_queue_free(struct agg_queue *q)
{
    if (!q) {
        return;
    }
    if (q->started) {
        pthread_mutex_lock(&q->mu);
        q->quit = true;
        /* Windows not yet appended stay unanswered: the listener frees them. */
        for (struct qwin *w = q->in_head, *next; w; w = next) {
            next = w->next;
            free(w);
        }
        q->in_head = q->in_tail = NULL;
        pthread_cond_signal(&q->cv);
        pthread_mutex_unlock(&q->mu);
        pthread_join(q->thread, NULL);
    }
    for (struct qwin *w = q->out_head, *next; w; w = next) {
        next = w->next;
        free(w);
    }
    for (struct rbatch *rb = q->rhead, *next; rb; rb = next) {
        next = rb->next;
        rbatch_free(rb);
    }
    sl_timer_cancel(q->retry_timer);
    sl_timer_cancel(q->gauge_timer);
    sl_async_free(q->async);
    sl_arena_free(&q->arena);
    pq_close(q->st);
    free(q->texts);
    free(q->lens);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

int agg_queue_stats(const char *path)
{
    struct pq_recovery rec;
    int rc = pq_inspect(path, stdout, &rec);
    if (rc == SL_ENOENT) {
        fprintf(stderr, "no queue at %s\n", path);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "cannot read the queue at %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}
