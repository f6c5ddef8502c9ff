/*
 * kafka_input.c - Kafka consumers feeding the pipeline, offsets committed
 * only for what every output has.
 *
 * Threads. Each consumer runs librdkafka's high-level consumer on a thread of
 * its own: it polls messages, turns them into events (trees built on that
 * thread: the metadata goes into the event, and a text that is not JSON
 * becomes a tagged plain event instead of failing its batch), and appends
 * batches to a hand-over list, waking the loop with an async handle. On the
 * loop, batches are submitted to the pipeline and kept in submit order (a
 * FIFO); a completion marks its batch, and the done batches at the head of
 * the FIFO advance each partition's "next offset to commit". The consumer
 * thread commits those every auto_commit_interval_ms. Every librdkafka call
 * is made by the consumer thread; the loop and the consumer share only what
 * sits under the consumer's mutex.
 *
 * Epochs. A batch carries the epoch it was consumed in. A rebalance or a
 * failed batch starts a new epoch: batches of an older one still waiting to be
 * submitted are dropped (their messages are consumed again by whoever owns the
 * partition next), and a failed batch stops older batches after it from
 * advancing offsets (min_commit_epoch), so nothing after it is committed.
 */
#include "kafka_input.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/time.h"

#define POLL_MS 100           /* the longest a consumer thread sleeps in a poll */
#define LAG_EVERY_MS 1000
#define RETRY_PAUSE_MS 1000   /* after a failed batch, before consuming again */
#define SEEK_TIMEOUT_MS 5000
#define ERROR_LOG_EVERY_MS 30000
#define FULL_WAIT_MS 1000     /* a full pipeline this long pauses the partitions */

/* One partition a batch has messages of: its first and last offsets. */
struct kpos {
    char *topic;
    int32_t partition;
    int64_t first, last;
};

struct kbatch {
    struct agg_input in;      /* in.batch.events: heap trees, cleared by the pipeline */
    size_t cap;
    size_t nmsgs;             /* messages, tombstones (no event) included */
    size_t bytes;             /* their values and keys: charged to max_pending_bytes */
    struct kpos *pos;
    size_t npos, cappos;
    uint64_t epoch;
    uint64_t submit_ms;
    bool done;
    int status;
    struct kcons *c;
    struct kbatch *next;
};

/* An assigned partition: the offset to commit next: past the last delivered message, or
 * the first one handed over while none is delivered (-1: nothing consumed yet). */
struct kpart {
    char *topic;
    int32_t partition;
    int64_t next;
    bool dirty;              /* next moved since the last commit */
    struct sl_metric *lag;
};

struct kcons {
    struct agg_kafka *k;
    size_t index;
    rd_kafka_t *rk;
    rd_kafka_queue_t *cq;    /* the consumer queue: async commit results come back here */
    pthread_t thread;
    bool started;

    /* consumer thread only */
    struct kbatch *building;
    bool paused;
    bool reseek;             /* after a cooperative revoke: rewind the partitions kept */
    uint64_t retry_until;    /* paused after a failed batch until then */
    uint64_t last_commit, last_lag, last_err_log;

    /* loop thread only */
    struct kbatch *fhead, *ftail;   /* submitted, in submit order */
    struct agg_order order;

    /* shared, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* outstanding went down, or quit */
    struct kbatch *qhead, *qtail;   /* handed over, not yet submitted */
    size_t pending;          /* messages handed over and not finished */
    size_t pending_bytes;    /* their bytes */
    size_t outstanding;      /* batches handed over and not finished */
    uint64_t epoch, min_commit_epoch;
    bool failed;             /* a batch failed: rewind to what was committed */
    bool draining, quit, closed;
    uint64_t deadline;
    struct kpart *parts;
    size_t nparts;
};

struct agg_kafka {
    struct sl_loop *loop;
    struct agg_pipeline *pipeline;
    struct agg_kafka_conf conf;     /* a copy of the strings the threads read */
    size_t max_pending;
    size_t max_pending_bytes;       /* pipeline.max_pending_bytes, per consumer */
    size_t max_event_memory;        /* pipeline.max_event_memory */
    struct sl_async *async;
    struct sl_metrics *metrics;
    struct sl_metric *m_commits_ok, *m_commits_failed, *m_rebalances;
    struct sl_metric *m_pending_bytes;  /* shared with the Lumberjack listener */
    struct sl_metric *m_consumed, *m_delivered, *m_decode_failed;
    size_t ncons;
    struct kcons *cons;
};

static const char LAG_NAME[] = "sluice_aggregator_kafka_consumer_lag";
static const char LAG_HELP[] =
    "Messages in a partition after the next offset to commit (high watermark - offset), "
    "for the partitions this aggregator is assigned.";

/* ---- batches ----------------------------------------------------------- */

static void batch_free(struct kbatch *kb)
{
    for (size_t i = 0; i < kb->in.batch.n; i++) {
        sl_value_clear(&kb->in.batch.events[i]);
    }
    for (size_t i = 0; i < kb->npos; i++) {
        free(kb->pos[i].topic);
    }
    free(kb->pos);
    free(kb->in.batch.events);
    free(kb);
}

/* The first message of a partition: where a rewind goes back to while nothing of
 * it is delivered yet. */
static void first_seen(struct kcons *c, const char *topic, int32_t partition, int64_t off)
{
    pthread_mutex_lock(&c->mu);
    for (size_t p = 0; p < c->nparts; p++) {
        struct kpart *kp = &c->parts[p];
        if (kp->next < 0 && kp->partition == partition && strcmp(kp->topic, topic) == 0) {
            kp->next = off;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

static void record_pos(struct kcons *c, struct kbatch *kb, const char *topic,
                       int32_t partition, int64_t off)
{
    for (size_t i = 0; i < kb->npos; i++) {
        if (kb->pos[i].partition == partition && strcmp(kb->pos[i].topic, topic) == 0) {
            kb->pos[i].last = off;
            return;
        }
    }
    if (kb->npos == kb->cappos) {
        kb->cappos = kb->cappos ? kb->cappos * 2 : 4;
        kb->pos = sl_realloc(kb->pos, kb->cappos * sizeof(*kb->pos));
    }
    kb->pos[kb->npos++] = (struct kpos){sl_strdup(topic), partition, off, off};
    first_seen(c, topic, partition, off);
}

/* @metadata.kafka, as Logstash's decorate_events gives it. */
static void put_metadata(struct kcons *c, const rd_kafka_message_t *m, struct sl_value *ev)
{
    struct sl_value *md = sl_obj_getc(ev, "@metadata");
    if (!md || md->type != SL_V_OBJECT) {
        md = sl_obj_putc(ev, "@metadata");
        sl_value_set_object(md);
    }
    struct sl_value *kv = sl_obj_putc(md, "kafka");
    sl_value_set_object(kv);
    sl_value_set_cstr(sl_obj_putc(kv, "topic"), rd_kafka_topic_name(m->rkt));
    sl_value_set_int(sl_obj_putc(kv, "partition"), m->partition);
    sl_value_set_int(sl_obj_putc(kv, "offset"), m->offset);
    if (m->key) {
        sl_value_set_str(sl_obj_putc(kv, "key"), m->key, m->key_len);
    }
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    if (ts >= 0) {
        sl_value_set_int(sl_obj_putc(kv, "timestamp"), ts);
    }
    sl_value_set_cstr(sl_obj_putc(kv, "consumer_group"), c->k->conf.group_id);
}

/* codec json: the value is the event; one that is not a JSON object becomes a
 * plain event tagged _jsonparsefailure, as Logstash's json codec does - and so
 * does one whose tree would take more than its length + max_event_memory. */
static void decode(struct kcons *c, const rd_kafka_message_t *m, struct sl_value *ev)
{
    struct agg_kafka *k = c->k;
    if (k->conf.codec == AGG_KAFKA_JSON) {
        struct sl_json_limits lim = {.max_depth = (unsigned)k->conf.max_json_depth,
                                     .max_bytes = m->len + k->max_event_memory};
        char err[128];
        int rc = sl_json_parse(m->payload, m->len, ev, &lim, err, sizeof(err));
        if (rc == 0 && ev->type == SL_V_OBJECT) {
            return;
        }
        sl_value_clear(ev);
        sl_counter_inc(k->m_decode_failed);
        sl_debug("%s: %s [%d] offset %lld is not a JSON object (%s): taken as plain text",
                 k->conf.id, rd_kafka_topic_name(m->rkt), (int)m->partition,
                 (long long)m->offset, rc == 0 ? "not an object" : err);
        sl_value_set_object(ev);
        sl_value_set_str(sl_obj_putc(ev, "message"), m->payload, m->len);
        sl_event_add_tag(ev, "_jsonparsefailure");
        return;
    }
    sl_value_set_object(ev);
    sl_value_set_str(sl_obj_putc(ev, "message"), m->payload, m->len);
}

static void add_message(struct kcons *c, const rd_kafka_message_t *m)
{
    struct kbatch *kb = c->building;
    if (!kb) {
        kb = c->building = sl_calloc(1, sizeof(*kb));
        kb->c = c;
        kb->in.raw = false;
        pthread_mutex_lock(&c->mu);
        kb->epoch = c->epoch;
        pthread_mutex_unlock(&c->mu);
    }
    record_pos(c, kb, rd_kafka_topic_name(m->rkt), m->partition, m->offset);
    kb->nmsgs++;
    kb->bytes += m->len + m->key_len;
    sl_counter_inc(c->k->m_consumed);
    if (!m->payload) {
        return;  /* a tombstone: no event, but its offset is committed with the rest */
    }
    if (kb->in.batch.n == kb->cap) {
        kb->cap = kb->cap ? kb->cap * 2 : 64;
        kb->in.batch.events = sl_realloc(kb->in.batch.events, kb->cap * sizeof(struct sl_value));
    }
    struct sl_value *ev = &kb->in.batch.events[kb->in.batch.n++];
    *ev = (struct sl_value){0};
    decode(c, m, ev);
    if (!sl_obj_getc(ev, "@timestamp")) {
        char ts[40];
        sl_timestamp_format((int64_t)sl_wall_ms(), ts, sizeof(ts));
        sl_value_set_cstr(sl_obj_putc(ev, "@timestamp"), ts);
    }
    put_metadata(c, m, ev);
}

/* The batch being built goes to the loop. */
static void hand_over(struct kcons *c)
{
    struct kbatch *kb = c->building;
    if (!kb) {
        return;
    }
    c->building = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->qtail) {
        c->qtail->next = kb;
    } else {
        c->qhead = kb;
    }
    c->qtail = kb;
    c->pending += kb->nmsgs;
    c->pending_bytes += kb->bytes;
    c->outstanding++;
    sl_gauge_add(c->k->m_pending_bytes, (double)kb->bytes);
    pthread_mutex_unlock(&c->mu);
    sl_async_send(c->k->async);
}

/* Messages not handed over yet (a rebalance or a stop): consumed again later. */
static void discard_building(struct kcons *c)
{
    if (c->building) {
        batch_free(c->building);
        c->building = NULL;
    }
}

/* ---- the loop thread's side -------------------------------------------- */

/* A batch leaves the input: mu held. */
static void batch_gone_locked(struct kcons *c, struct kbatch *kb)
{
    c->pending -= kb->nmsgs;
    c->pending_bytes -= kb->bytes;
    c->outstanding--;
    sl_gauge_add(c->k->m_pending_bytes, -(double)kb->bytes);
    pthread_cond_broadcast(&c->cv);
}

/* The head of the FIFO is done: its offsets count, unless it failed or is stale. */
static void settle(struct kcons *c, struct kbatch *kb)
{
    pthread_mutex_lock(&c->mu);
    if (kb->epoch >= c->min_commit_epoch && kb->status == SL_OK) {
        for (size_t i = 0; i < kb->npos; i++) {
            for (size_t p = 0; p < c->nparts; p++) {
                struct kpart *kp = &c->parts[p];
                if (kp->partition == kb->pos[i].partition &&
                    strcmp(kp->topic, kb->pos[i].topic) == 0 && kb->pos[i].last + 1 > kp->next) {
                    kp->next = kb->pos[i].last + 1;
                    kp->dirty = true;
                }
            }
        }
        sl_counter_add(c->k->m_delivered, kb->nmsgs);
    } else if (kb->epoch >= c->min_commit_epoch) {
        /* Nothing consumed after it may be committed before it is delivered. */
        c->min_commit_epoch = kb->epoch + 1;
        if (!c->draining && !c->quit) {
            c->failed = true;
            sl_warn("%s: a batch of %zu messages failed (status %d); consuming again from "
                    "the last delivered offset", c->k->conf.id, kb->nmsgs, kb->status);
        }
    }
    batch_gone_locked(c, kb);
    pthread_mutex_unlock(&c->mu);
}

static void on_batch_done(void *arg, int status)
{
    struct kbatch *kb = arg;
    struct kcons *c = kb->c;
    kb->done = true;
    kb->status = status;
    while (c->fhead && c->fhead->done) {
        struct kbatch *h = c->fhead;
        c->fhead = h->next;
        if (!c->fhead) {
            c->ftail = NULL;
        }
        settle(c, h);
        batch_free(h);
    }
}

static void submit_handed_over(struct agg_kafka *k, struct kcons *c)
{
    pthread_mutex_lock(&c->mu);
    struct kbatch *kb = c->qhead;
    c->qhead = c->qtail = NULL;
    uint64_t epoch = c->epoch;
    bool drop = c->failed || c->draining || c->quit;
    pthread_mutex_unlock(&c->mu);
    while (kb) {
        struct kbatch *next = kb->next;
        kb->next = NULL;
        if (drop || kb->epoch != epoch || !k->pipeline) {
            pthread_mutex_lock(&c->mu);
            batch_gone_locked(c, kb);
            pthread_mutex_unlock(&c->mu);
            batch_free(kb);
        } else {
            kb->submit_ms = sl_now_ms();
            if (c->ftail) {
                c->ftail->next = kb;
            } else {
                c->fhead = kb;
            }
            c->ftail = kb;
            agg_pipeline_submit(k->pipeline, &kb->in, &c->order, on_batch_done, kb);
        }
        kb = next;
    }
}

static void on_async(struct sl_loop *loop, void *arg)
{
    struct agg_kafka *k = arg;
    for (size_t i = 0; i < k->ncons; i++) {
        submit_handed_over(k, &k->cons[i]);
    }
}

/* ---- commits and lag (consumer thread) ---------------------------------- */

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    struct kcons *c = opaque;
    bool ok = err == RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; ok && offsets && i < offsets->cnt; i++) {
        ok = offsets->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    sl_counter_inc(ok ? c->k->m_commits_ok : c->k->m_commits_failed);
    if (ok) {
        return;
    }
    sl_warn("%s: offset commit failed: %s", c->k->conf.id, rd_kafka_err2str(err));
    /* Committed again with the next commit, if the partitions are still ours. */
    pthread_mutex_lock(&c->mu);
    for (int i = 0; offsets && i < offsets->cnt; i++) {
        for (size_t p = 0; p < c->nparts; p++) {
            if (c->parts[p].partition == offsets->elems[i].partition &&
                strcmp(c->parts[p].topic, offsets->elems[i].topic) == 0) {
                c->parts[p].dirty = true;
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
}

/* Commits every partition whose next offset moved; sync waits for the answer. */
static void commit(struct kcons *c, bool sync)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    pthread_mutex_lock(&c->mu);
    for (size_t p = 0; p < c->nparts; p++) {
        struct kpart *kp = &c->parts[p];
        if (kp->dirty && kp->next >= 0) {
            rd_kafka_topic_partition_list_add(l, kp->topic, kp->partition)->offset = kp->next;
            kp->dirty = false;
        }
    }
    pthread_mutex_unlock(&c->mu);
    c->last_commit = sl_now_ms();
    if (l->cnt > 0) {
        rd_kafka_resp_err_t err = rd_kafka_commit_queue(c->rk, l, sync ? NULL : c->cq,
                                                        on_commit, c);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR && !sync) {
            on_commit(c->rk, err, l, c);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static void update_lag(struct kcons *c)
{
    c->last_lag = sl_now_ms();
    pthread_mutex_lock(&c->mu);
    for (size_t p = 0; p < c->nparts; p++) {
        struct kpart *kp = &c->parts[p];
        int64_t lo, hi;
        if (kp->next >= 0 &&
            rd_kafka_get_watermark_offsets(c->rk, kp->topic, kp->partition, &lo, &hi) ==
                RD_KAFKA_RESP_ERR_NO_ERROR && hi >= 0) {
            sl_gauge_set(kp->lag, (double)(hi > kp->next ? hi - kp->next : 0));
        }
    }
    pthread_mutex_unlock(&c->mu);
}

/* ---- rebalances (consumer thread, inside a poll) ------------------------- */

static void add_parts(struct kcons *c, const rd_kafka_topic_partition_list_t *l)
{
    pthread_mutex_lock(&c->mu);
    c->parts = sl_realloc(c->parts, (c->nparts + (size_t)l->cnt + 1) * sizeof(*c->parts));
    for (int i = 0; i < l->cnt; i++) {
        char part[16];
        snprintf(part, sizeof(part), "%d", (int)l->elems[i].partition);
        const char *labels[] = {"topic", l->elems[i].topic, "partition", part, NULL};
        c->parts[c->nparts++] = (struct kpart){
            .topic = sl_strdup(l->elems[i].topic), .partition = l->elems[i].partition,
            .next = -1, .lag = sl_metrics_gauge(c->k->metrics, LAG_NAME, LAG_HELP, labels)};
    }
    pthread_mutex_unlock(&c->mu);
}

/* l NULL: every partition. */
static void remove_parts(struct kcons *c, const rd_kafka_topic_partition_list_t *l)
{
    pthread_mutex_lock(&c->mu);
    size_t keep = 0;
    for (size_t p = 0; p < c->nparts; p++) {
        bool gone = l == NULL;
        for (int i = 0; !gone && i < l->cnt; i++) {
            gone = l->elems[i].partition == c->parts[p].partition &&
                   strcmp(l->elems[i].topic, c->parts[p].topic) == 0;
        }
        if (gone) {
            sl_gauge_set(c->parts[p].lag, 0);  /* its new owner reports it */
            free(c->parts[p].topic);
        } else {
            c->parts[keep++] = c->parts[p];
        }
    }
    c->nparts = keep;
    pthread_mutex_unlock(&c->mu);
}

/* Waits on c->cv (mu held) at most ms. */
static void timed_wait(struct kcons *c, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += ms * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
}

/*
 * Before partitions are given up: nothing more is submitted, the batches in
 * flight get until deadline to finish, and what they delivered is committed.
 * Waiting is pointless once the loop is gone (quit).
 */
static void settle_before_revoke(struct kcons *c, uint64_t deadline, bool lost)
{
    discard_building(c);
    pthread_mutex_lock(&c->mu);
    c->epoch++;
    while (c->outstanding > 0 && !c->quit && sl_now_ms() < deadline) {
        timed_wait(c, 20);
    }
    if (c->outstanding > 0) {
        sl_warn("%s: %zu batch(es) still in the pipeline when partitions were revoked; their "
                "messages will be consumed again", c->k->conf.id, c->outstanding);
    }
    c->min_commit_epoch = c->epoch;
    pthread_mutex_unlock(&c->mu);
    if (!lost) {
        commit(c, true);
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct kcons *c = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        sl_counter_inc(c->k->m_rebalances);
        sl_info("%s: consumer %zu assigned %d partition(s)", c->k->conf.id, c->index,
                parts->cnt);
        add_parts(c, parts);
        c->paused = false;  /* new partitions start resumed: backpressure pauses them again */
        if (coop) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
            if (e) {
                sl_error("%s: incremental assign: %s", c->k->conf.id, rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            }
        } else {
            rd_kafka_assign(rk, parts);
        }
        return;
    }
    pthread_mutex_lock(&c->mu);
    uint64_t deadline = c->draining ? c->deadline
                                    : sl_now_ms() + c->k->conf.session_timeout_ms;
    pthread_mutex_unlock(&c->mu);
    sl_info("%s: consumer %zu gives up %d partition(s)", c->k->conf.id, c->index, parts->cnt);
    settle_before_revoke(c, deadline, rd_kafka_assignment_lost(rk));
    if (coop) {
        remove_parts(c, parts);
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
        if (e) {
            sl_error("%s: incremental unassign: %s", c->k->conf.id, rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
        /* Batches of the partitions that stay were dropped with the others. */
        c->reseek = true;
    } else {
        remove_parts(c, NULL);
        rd_kafka_assign(rk, NULL);
    }
}

/* ---- the consumer thread ------------------------------------------------ */

static void set_paused(struct kcons *c, bool pause)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(c->rk, &l) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return;
    }
    if (pause) {
        rd_kafka_pause_partitions(c->rk, l);
    } else {
        rd_kafka_resume_partitions(c->rk, l);
    }
    rd_kafka_topic_partition_list_destroy(l);
    c->paused = pause;
}

/*
 * Consume again from the offset after the last delivered message of every
 * partition still assigned: after a failed batch (then after a pause), and after
 * a cooperative rebalance dropped batches of partitions that stay.
 */
static void rewind_partitions(struct kcons *c, bool after_failure)
{
    discard_building(c);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    pthread_mutex_lock(&c->mu);
    c->epoch++;
    if (after_failure) {
        c->failed = false;
    }
    for (size_t p = 0; p < c->nparts; p++) {
        if (c->parts[p].next >= 0) {
            rd_kafka_topic_partition_list_add(l, c->parts[p].topic, c->parts[p].partition)
                ->offset = c->parts[p].next;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (l->cnt > 0) {
        rd_kafka_error_t *e = rd_kafka_seek_partitions(c->rk, l, SEEK_TIMEOUT_MS);
        if (e) {
            sl_error("%s: seek: %s", c->k->conf.id, rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (after_failure) {
        c->retry_until = sl_now_ms() + RETRY_PAUSE_MS;
    }
}

static void log_consumer_error(struct kcons *c, const rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        return;
    }
    uint64_t now = sl_now_ms();
    if (c->last_err_log && now - c->last_err_log < ERROR_LOG_EVERY_MS) {
        return;
    }
    c->last_err_log = now;
    sl_warn("%s: consumer %zu: %s", c->k->conf.id, c->index, rd_kafka_message_errstr(m));
}

/*
 * Full: waits a little for the pipeline to make room, without polling (pausing
 * would drop what librdkafka prefetched, and fetching it again costs a round
 * trip). Only a longer stall pauses the partitions, so that polling goes on
 * and rebalances are served. Returns the messages pending then.
 */
/* Messages and bytes in the pipeline, beyond which a consumer stops taking more
 * (the batch being built counts: it is handed over before waiting). One batch
 * may pass the byte bound: a message larger than it still goes through. */
static bool is_full(const struct agg_kafka *k, size_t pending, size_t bytes)
{
    return pending >= k->max_pending || bytes >= k->max_pending_bytes;
}

static size_t wait_for_room(struct kcons *c, size_t *bytes)
{
    uint64_t until = sl_now_ms() + FULL_WAIT_MS;
    pthread_mutex_lock(&c->mu);
    while (is_full(c->k, c->pending, c->pending_bytes) && !c->quit && !c->draining &&
           !c->failed && sl_now_ms() < until) {
        timed_wait(c, 20);
    }
    size_t pending = c->pending;
    *bytes = c->pending_bytes;
    pthread_mutex_unlock(&c->mu);
    return pending;
}

/* One round: commit and lag when due, backpressure, then at most one message. */
static void consume_once(struct kcons *c)
{
    struct agg_kafka *k = c->k;
    uint64_t now = sl_now_ms();
    pthread_mutex_lock(&c->mu);
    bool failed = c->failed;
    size_t pending = c->pending, bytes = c->pending_bytes;
    pthread_mutex_unlock(&c->mu);
    if (failed || c->reseek) {
        c->reseek = false;
        rewind_partitions(c, failed);
    }
    if (now - c->last_commit >= k->conf.auto_commit_interval_ms) {
        commit(c, false);
    }
    if (now - c->last_lag >= LAG_EVERY_MS) {
        update_lag(c);
    }
    bool full = is_full(k, pending + (c->building ? c->building->nmsgs : 0),
                        bytes + (c->building ? c->building->bytes : 0));
    if (full && !c->paused) {
        hand_over(c);
        pending = wait_for_room(c, &bytes);
        full = is_full(k, pending, bytes);
    }
    bool want_pause = full || now < c->retry_until;
    if (want_pause != c->paused &&
        (want_pause || (pending <= k->max_pending / 2 && bytes <= k->max_pending_bytes / 2))) {
        hand_over(c);
        set_paused(c, want_pause);
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, c->building ? 0 : POLL_MS);
    if (!m) {
        hand_over(c);
        return;
    }
    if (m->err) {
        log_consumer_error(c, m);
    } else {
        add_message(c, m);
        if (c->building->nmsgs >= (size_t)k->conf.max_poll_records) {
            hand_over(c);
        }
    }
    rd_kafka_message_destroy(m);
}

static void *consumer_main(void *arg)
{
    struct kcons *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        bool stop = c->quit || c->draining;
        uint64_t deadline = c->deadline;
        pthread_mutex_unlock(&c->mu);
        if (stop) {
            settle_before_revoke(c, deadline, false);
            break;
        }
        consume_once(c);
    }
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->rk);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        sl_warn("%s: closing consumer %zu: %s", c->k->conf.id, c->index, rd_kafka_err2str(err));
    }
    pthread_mutex_lock(&c->mu);
    c->closed = true;
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---- setup -------------------------------------------------------------- */

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (level <= 3) {
        sl_error("kafka input: %s: %s", fac, buf);
    } else if (level <= 5) {
        sl_warn("kafka input: %s: %s", fac, buf);
    } else {
        sl_debug("kafka input: %s: %s", fac, buf);
    }
}

static bool set(rd_kafka_conf_t *rc, const char *id, const char *key, const char *value)
{
    char err[512];
    if (rd_kafka_conf_set(rc, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        sl_error("%s: librdkafka refuses %s=%s: %s", id, key, value, err);
        return false;
    }
    return true;
}

static bool set_ms(rd_kafka_conf_t *rc, const char *id, const char *key, uint64_t ms)
{
    char v[32];
    snprintf(v, sizeof(v), "%llu", (unsigned long long)ms);
    return set(rc, id, key, v);
}

static rd_kafka_conf_t *consumer_conf(const struct agg_kafka_conf *kc, struct kcons *c)
{
    static const char *const resets[] = {"latest", "earliest", "error"};
    rd_kafka_conf_t *rc = rd_kafka_conf_new();
    const char *id = kc->id;
    char client_id[300];
    snprintf(client_id, sizeof(client_id), "%s-%zu", kc->client_id, c->index);
    bool ok = set(rc, id, "bootstrap.servers", kc->bootstrap_servers) &&
              set(rc, id, "group.id", kc->group_id) && set(rc, id, "client.id", client_id) &&
              set(rc, id, "auto.offset.reset", resets[kc->auto_offset_reset]) &&
              set(rc, id, "enable.auto.commit", "false") &&
              set(rc, id, "enable.auto.offset.store", "false") &&
              set_ms(rc, id, "session.timeout.ms", kc->session_timeout_ms) &&
              set_ms(rc, id, "heartbeat.interval.ms", kc->heartbeat_interval_ms) &&
              set_ms(rc, id, "max.poll.interval.ms", kc->max_poll_interval_ms) &&
              set(rc, id, "security.protocol", kc->security_protocol);
    ok = ok && (!kc->sasl_mechanism[0] || set(rc, id, "sasl.mechanisms", kc->sasl_mechanism));
    ok = ok && (!kc->sasl_username[0] || set(rc, id, "sasl.username", kc->sasl_username));
    ok = ok && (!kc->sasl_password[0] || set(rc, id, "sasl.password", kc->sasl_password));
    ok = ok && (!kc->ssl_certificate_authorities[0] ||
                set(rc, id, "ssl.ca.location", kc->ssl_certificate_authorities));
    ok = ok && (!kc->ssl_certificate[0] ||
                set(rc, id, "ssl.certificate.location", kc->ssl_certificate));
    ok = ok && (!kc->ssl_key[0] || set(rc, id, "ssl.key.location", kc->ssl_key));
    for (size_t i = 0; ok && i < kc->nprops; i++) {
        ok = set(rc, id, kc->prop_keys[i], kc->prop_values[i]);
    }
    if (!ok) {
        rd_kafka_conf_destroy(rc);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(rc, on_log);
    rd_kafka_conf_set_rebalance_cb(rc, on_rebalance);
    rd_kafka_conf_set_opaque(rc, c);
    return rc;
}

static int subscribe(const struct agg_kafka_conf *kc, rd_kafka_t *rk)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    if (kc->topics_pattern[0]) {
        /* librdkafka takes a regex when the name starts with '^'; Logstash's
         * pattern matches whole names. */
        char *p = sl_calloc(1, strlen(kc->topics_pattern) + 4);
        sprintf(p, "%s%s$", kc->topics_pattern[0] == '^' ? "" : "^", kc->topics_pattern);
        rd_kafka_topic_partition_list_add(l, p, RD_KAFKA_PARTITION_UA);
        free(p);
    } else {
        for (size_t i = 0; i < kc->ntopics; i++) {
            rd_kafka_topic_partition_list_add(l, kc->topics[i], RD_KAFKA_PARTITION_UA);
        }
    }
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        sl_error("%s: subscribe: %s", kc->id, rd_kafka_err2str(err));
        return SL_EINVAL;
    }
    return 0;
}

static void copy_conf(struct agg_kafka_conf *dst, const struct agg_kafka_conf *s)
{
    *dst = *s;
    dst->bootstrap_servers = sl_strdup(s->bootstrap_servers);
    dst->topics = sl_calloc(s->ntopics + 1, sizeof(char *));
    for (size_t i = 0; i < s->ntopics; i++) {
        dst->topics[i] = sl_strdup(s->topics[i]);
    }
    dst->topics_pattern = sl_strdup(s->topics_pattern);
    dst->group_id = sl_strdup(s->group_id);
    dst->client_id = sl_strdup(s->client_id);
    dst->security_protocol = sl_strdup(s->security_protocol);
    dst->sasl_mechanism = sl_strdup(s->sasl_mechanism);
    dst->sasl_username = sl_strdup(s->sasl_username);
    dst->sasl_password = sl_strdup(s->sasl_password);
    dst->ssl_certificate_authorities = sl_strdup(s->ssl_certificate_authorities);
    dst->ssl_certificate = sl_strdup(s->ssl_certificate);
    dst->ssl_key = sl_strdup(s->ssl_key);
    dst->prop_keys = sl_calloc(s->nprops + 1, sizeof(char *));
    dst->prop_values = sl_calloc(s->nprops + 1, sizeof(char *));
    for (size_t i = 0; i < s->nprops; i++) {
        dst->prop_keys[i] = sl_strdup(s->prop_keys[i]);
        dst->prop_values[i] = sl_strdup(s->prop_values[i]);
    }
}

static int start_consumer(struct agg_kafka *k, struct kcons *c)
{
    char err[512];
    rd_kafka_conf_t *rc = consumer_conf(&k->conf, c);
    if (!rc) {
        return SL_EINVAL;
    }
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, rc, err, sizeof(err));
    if (!c->rk) {
        rd_kafka_conf_destroy(rc);
        sl_error("%s: cannot create a consumer: %s", k->conf.id, err);
        return SL_EINVAL;
    }
    rd_kafka_poll_set_consumer(c->rk);
    c->cq = rd_kafka_queue_get_consumer(c->rk);
    if (subscribe(&k->conf, c->rk) != 0) {
        return SL_EINVAL;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);  /* the loop thread takes the signals */
    int rc2 = pthread_create(&c->thread, NULL, consumer_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc2 != 0) {
        sl_error("%s: cannot start consumer thread: %s", k->conf.id, strerror(rc2));
        return SL_EIO;
    }
    c->started = true;
    char name[16];
    snprintf(name, sizeof(name), "sl-kafka-%zu", c->index);
    pthread_setname_np(c->thread, name);
    return 0;
}

struct agg_kafka *agg_kafka_new(struct sl_loop *loop, const struct agg_kafka_conf *kc,
                                const struct agg_conf *conf, struct sl_metrics *metrics,
                                struct agg_pipeline *pipeline)
{
    struct agg_kafka *k = sl_calloc(1, sizeof(*k));
    k->loop = loop;
    k->pipeline = pipeline;
    k->metrics = metrics;
    copy_conf(&k->conf, kc);
    k->max_pending = (size_t)(conf->max_pending_events > 0 ? conf->max_pending_events : 1);
    k->max_event_memory = (size_t)(conf->max_event_memory ? conf->max_event_memory : 16u << 20);
    k->max_pending_bytes = conf->max_pending_bytes ? (size_t)conf->max_pending_bytes : SIZE_MAX;
    static const char commits_help[] = "Offset commits of the kafka inputs, by result.";
    k->m_pending_bytes = sl_metrics_gauge(metrics, "sluice_aggregator_pending_bytes",
                                          AGG_PENDING_BYTES_HELP, NULL);
    k->m_commits_ok = sl_metrics_counter(metrics, "sluice_aggregator_kafka_commits_total",
                                         commits_help, (const char *const[]){"result", "ok",
                                                                             NULL});
    k->m_commits_failed = sl_metrics_counter(metrics, "sluice_aggregator_kafka_commits_total",
                                             commits_help,
                                             (const char *const[]){"result", "failed", NULL});
    k->m_rebalances = sl_metrics_counter(metrics, "sluice_aggregator_kafka_rebalances_total",
                                         "Partition assignments the kafka inputs' consumers "
                                         "received (one per rebalance and consumer).", NULL);
    k->m_consumed = sl_metrics_counter(metrics, "sluice_aggregator_kafka_messages_total",
                                       "Kafka messages consumed, and those delivered to every "
                                       "output (their offsets may be committed).",
                                       (const char *const[]){"result", "consumed", NULL});
    k->m_delivered = sl_metrics_counter(metrics, "sluice_aggregator_kafka_messages_total",
                                        "Kafka messages consumed, and those delivered to every "
                                        "output (their offsets may be committed).",
                                        (const char *const[]){"result", "delivered", NULL});
    k->m_decode_failed = sl_metrics_counter(
        metrics, "sluice_aggregator_kafka_decode_failures_total",
        "codec json: message values that are not a JSON object (taken as plain text, tagged "
        "_jsonparsefailure).", NULL);
    k->async = sl_async_new(loop, on_async, k);
    k->ncons = (size_t)kc->consumer_threads;
    k->cons = sl_calloc(k->ncons, sizeof(*k->cons));
    for (size_t i = 0; i < k->ncons; i++) {
        struct kcons *c = &k->cons[i];
        c->k = k;
        c->index = i;
        pthread_mutex_init(&c->mu, NULL);
        pthread_cond_init(&c->cv, NULL);
    }
    for (size_t i = 0; i < k->ncons; i++) {
        if (start_consumer(k, &k->cons[i]) != 0) {
            agg_kafka_free(k);
            return NULL;
        }
    }
    sl_info("%s: %zu consumer(s) in group '%s' on %s", k->conf.id, k->ncons, k->conf.group_id,
            k->conf.bootstrap_servers);
    return k;
}

void agg_kafka_set_pipeline(struct agg_kafka *k, struct agg_pipeline *p)
{
    k->pipeline = p;
}

void agg_kafka_drain(struct agg_kafka *k, uint64_t deadline_ms)
{
    for (size_t i = 0; i < k->ncons; i++) {
        struct kcons *c = &k->cons[i];
        pthread_mutex_lock(&c->mu);
        c->draining = true;
        c->deadline = deadline_ms;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
    on_async(k->loop, k);  /* what was handed over is dropped now */
}

bool agg_kafka_drained(struct agg_kafka *k)
{
    on_async(k->loop, k);
    bool all = true;
    for (size_t i = 0; i < k->ncons; i++) {
        struct kcons *c = &k->cons[i];
        pthread_mutex_lock(&c->mu);
        all = all && (c->closed || !c->started);
        pthread_mutex_unlock(&c->mu);
    }
    return all;
}

bool agg_kafka_oldest_pending(const struct agg_kafka *k, uint64_t *submit_ms)
{
    bool any = false;
    for (size_t i = 0; i < k->ncons; i++) {
        const struct kbatch *h = k->cons[i].fhead;
        if (h && (!any || h->submit_ms < *submit_ms)) {
            *submit_ms = h->submit_ms;
            any = true;
        }
    }
    return any;
}

void agg_kafka_free(struct agg_kafka *k)
{
    if (!k) {
        return;
    }
    for (size_t i = 0; i < k->ncons; i++) {
        struct kcons *c = &k->cons[i];
        pthread_mutex_lock(&c->mu);
        c->quit = true;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
    for (size_t i = 0; i < k->ncons; i++) {
        struct kcons *c = &k->cons[i];
        if (c->started) {
            pthread_join(c->thread, NULL);
        }
        if (c->cq) {
            rd_kafka_queue_destroy(c->cq);
        }
        if (c->rk) {
            rd_kafka_destroy(c->rk);
        }
        discard_building(c);
        for (struct kbatch *kb = c->qhead, *next; kb; kb = next) {
            next = kb->next;
            batch_free(kb);
        }
        /* The pipelines are gone: these will never complete. */
        for (struct kbatch *kb = c->fhead, *next; kb; kb = next) {
            next = kb->next;
            batch_free(kb);
        }
        for (size_t p = 0; p < c->nparts; p++) {
            free(c->parts[p].topic);
        }
        free(c->parts);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
    }
    free(k->cons);
    sl_async_free(k->async);
    agg_kafka_conf_free(&k->conf);
    free(k);
}
