/*
 * kafka_out.c - the shipper's Kafka producer.
 *
 * Each sealed batch gets a tracker: one slot per event, produced in order
 * (a full librdkafka queue leaves the rest for the next pump), and one
 * delivery report per slot. The batch is ACKed to the queue up to the first
 * event whose report has not come, so the registry never passes an event that
 * is not in Kafka, whatever order the partitions answer in. Transient errors
 * are retried by librdkafka without end (message.timeout.ms 0); an event Kafka
 * refuses for good (too large, an unknown topic) is dropped, counted and
 * logged, as Filebeat does, and counts as done.
 *
 * Delivery reports run on the loop thread: librdkafka signals its main queue
 * through a pipe the loop watches, and the callbacks are served by
 * rk_poll() there.
 */
#include "kafka_out.h"

#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/dl.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/lumberjack.h"

/*
 * librdkafka, loaded when a Kafka output is made (sluice/dl.h): a shipper that
 * sends to aggregators never maps it and its dependency tree. Each call goes
 * through rk_NAME, typed from the header's own declaration of rd_kafka_NAME.
 */
static const char *const kafka_syms[] = {
    "rd_kafka_conf_destroy",
    "rd_kafka_conf_new",
    "rd_kafka_conf_set",
    "rd_kafka_conf_set_default_topic_conf",
    "rd_kafka_conf_set_dr_msg_cb",
    "rd_kafka_conf_set_opaque",
    "rd_kafka_destroy",
    "rd_kafka_err2str",
    "rd_kafka_new",
    "rd_kafka_poll",
    "rd_kafka_producev",
    "rd_kafka_purge",
    "rd_kafka_queue_destroy",
    "rd_kafka_queue_get_main",
    "rd_kafka_queue_io_event_enable",
    "rd_kafka_topic_conf_destroy",
    "rd_kafka_topic_conf_new",
    "rd_kafka_topic_conf_set",
    "rd_kafka_topic_conf_set_opaque",
    "rd_kafka_topic_conf_set_partitioner_cb",
};
static void *kafka_fn[SL_ARRAY_LEN(kafka_syms)];
#define rk_conf_destroy ((__typeof__(rd_kafka_conf_destroy) *)kafka_fn[0])
#define rk_conf_new ((__typeof__(rd_kafka_conf_new) *)kafka_fn[1])
#define rk_conf_set ((__typeof__(rd_kafka_conf_set) *)kafka_fn[2])
#define rk_conf_set_default_topic_conf \
    ((__typeof__(rd_kafka_conf_set_default_topic_conf) *)kafka_fn[3])
#define rk_conf_set_dr_msg_cb ((__typeof__(rd_kafka_conf_set_dr_msg_cb) *)kafka_fn[4])
#define rk_conf_set_opaque ((__typeof__(rd_kafka_conf_set_opaque) *)kafka_fn[5])
#define rk_destroy ((__typeof__(rd_kafka_destroy) *)kafka_fn[6])
#define rk_err2str ((__typeof__(rd_kafka_err2str) *)kafka_fn[7])
#define rk_new ((__typeof__(rd_kafka_new) *)kafka_fn[8])
#define rk_poll ((__typeof__(rd_kafka_poll) *)kafka_fn[9])
#define rk_producev ((__typeof__(rd_kafka_producev) *)kafka_fn[10])
#define rk_purge ((__typeof__(rd_kafka_purge) *)kafka_fn[11])
#define rk_queue_destroy ((__typeof__(rd_kafka_queue_destroy) *)kafka_fn[12])
#define rk_queue_get_main ((__typeof__(rd_kafka_queue_get_main) *)kafka_fn[13])
#define rk_queue_io_event_enable ((__typeof__(rd_kafka_queue_io_event_enable) *)kafka_fn[14])
#define rk_topic_conf_destroy ((__typeof__(rd_kafka_topic_conf_destroy) *)kafka_fn[15])
#define rk_topic_conf_new ((__typeof__(rd_kafka_topic_conf_new) *)kafka_fn[16])
#define rk_topic_conf_set ((__typeof__(rd_kafka_topic_conf_set) *)kafka_fn[17])
#define rk_topic_conf_set_opaque ((__typeof__(rd_kafka_topic_conf_set_opaque) *)kafka_fn[18])
#define rk_topic_conf_set_partitioner_cb \
    ((__typeof__(rd_kafka_topic_conf_set_partitioner_cb) *)kafka_fn[19])

static pthread_once_t kafka_once = PTHREAD_ONCE_INIT;
static char kafka_err[256];
static int kafka_rc;

static void kafka_load(void)
{
    static const char *const names[] = {"librdkafka.so.1", NULL};
    kafka_rc = sl_dl_load(names, kafka_syms, kafka_fn, SL_ARRAY_LEN(kafka_syms), kafka_err,
                          sizeof(kafka_err));
}

#define TICK_MS 100
#define FIELD_MAX 256

struct tracker;

/* The opaque of one message: where its report goes. */
struct slot {
    struct tracker *t;
};

struct tracker {
    struct batch *b;
    uint32_t next;          /* events produced so far */
    uint32_t acked;         /* a prefix of events reported */
    uint8_t *done;
    struct slot *slots;
    uint64_t start_ms;
    struct tracker *prev, *nextt;
};

struct kafka_out {
    struct sl_loop *loop;
    const struct kafka_out_conf *conf;
    struct queue *q;
    rd_kafka_t *rk;
    int pipe[2];
    struct sl_timer *tick;
    struct tracker *head, *tail;   /* batches being produced or waiting for reports */
    bool blocked;                  /* librdkafka's queue was full */
    bool closing;
    bool templated;                /* topic or key has %{[field]} */
    _Atomic uint32_t rr;           /* round_robin */
    struct sl_buf topic, key;
    struct sl_metric *m_sent, *m_dropped, *m_latency;
};

/* ---- templates --------------------------------------------------------- */

/*
 * The value at ref in ev: "[fields.service]" (Filebeat) or "[fields][service]"
 * (Logstash); strings as they are, numbers and booleans as JSON. False when absent.
 */
static bool field_text(const struct sl_value *ev, const char *ref, size_t len,
                       struct sl_buf *out)
{
    char path[FIELD_MAX];
    if (len < 2 || len >= sizeof(path) || ref[0] != '[' || ref[len - 1] != ']') {
        return false;
    }
    memcpy(path, ref + 1, len - 2);
    path[len - 2] = '\0';
    const struct sl_value *v = ev;
    for (char *p = path, *end; v && *p; p = end) {
        end = p + strcspn(p, ".[]");
        size_t n = (size_t)(end - p);
        v = n ? sl_obj_get(v, p, n) : v;
        while (*end == '.' || *end == '[' || *end == ']') {
            end++;
        }
    }
    if (!v) {
        return false;
    }
    if (v->type == SL_V_STRING) {
        sl_buf_append(out, v->u.s.ptr, v->u.s.len);
        return true;
    }
    if (v->type == SL_V_INT || v->type == SL_V_DOUBLE || v->type == SL_V_BOOL) {
        return sl_json_write(out, v, NULL) == 0;
    }
    return false;
}

/* Expands tmpl's %{[field]} references from ev into out; false if one is missing. */
static bool expand(const char *tmpl, const struct sl_value *ev, struct sl_buf *out)
{
    sl_buf_reset(out);
    for (const char *p = tmpl; *p;) {
        const char *open = strstr(p, "%{");
        const char *close = open ? strchr(open, '}') : NULL;
        if (!close) {
            sl_buf_puts(out, p);
            break;
        }
        sl_buf_append(out, p, (size_t)(open - p));
        if (!ev || !field_text(ev, open + 2, (size_t)(close - open - 2), out)) {
            return false;
        }
        p = close + 1;
    }
    return true;
}

/* ---- delivery ---------------------------------------------------------- */

static void tracker_free(struct kafka_out *k, struct tracker *t)
{
    if (t->prev) {
        t->prev->nextt = t->nextt;
    } else {
        k->head = t->nextt;
    }
    if (t->nextt) {
        t->nextt->prev = t->prev;
    } else {
        k->tail = t->prev;
    }
    free(t->done);
    free(t->slots);
    free(t);
}

/* Event i of t's batch is in Kafka (or dropped for good): ACKs the reported prefix. */
static void settle(struct kafka_out *k, struct tracker *t, uint32_t i)
{
    t->done[i] = 1;
    uint32_t upto = t->acked;
    while (upto < t->b->n && t->done[upto]) {
        upto++;
    }
    if (upto == t->acked) {
        return;
    }
    t->acked = upto;
    struct batch *b = t->b;
    bool last = upto == b->n;
    if (last) {
        sl_hist_observe(k->m_latency, (double)(sl_now_ms() - t->start_ms) / 1000.0);
        tracker_free(k, t);  /* the queue may free b now */
    }
    queue_ack(k->q, b, upto);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct kafka_out *k = opaque;
    struct slot *s = m->_private;
    if (k->closing) {
        return;
    }
    struct tracker *t = s->t;
    if (m->err) {
        sl_counter_inc(k->m_dropped);
        sl_error("output.kafka: an event was refused for good and is dropped: %s",
                 rk_err2str(m->err));
    }
    settle(k, t, (uint32_t)(s - t->slots));
}

static void serve(struct kafka_out *k)
{
    char drain[256];
    while (read(k->pipe[0], drain, sizeof(drain)) > 0) {
    }
    rk_poll(k->rk, 0);
}

static void on_pipe(struct sl_loop *loop, int fd, unsigned events, void *arg)
{
    serve(arg);
}

static void on_tick(struct sl_loop *loop, void *arg)
{
    struct kafka_out *k = arg;
    serve(k);
    kafka_out_pump(k);
}

/* ---- producing --------------------------------------------------------- */

/* Produces event i of t's batch. False when librdkafka's queue is full. */
static bool produce_one(struct kafka_out *k, struct tracker *t, uint32_t i)
{
    struct batch *b = t->b;
    const char *frame = b->frames.data + b->ev[i].frame_off;
    size_t len = sl_get_u32be(frame + 6);
    const char *json = frame + 10;
    struct sl_value ev = {0};
    if (k->templated) {
        sl_json_parse(json, len, &ev, NULL, NULL, 0);
    }
    bool ok = expand(k->conf->topic, &ev, &k->topic) && expand(k->conf->key, &ev, &k->key);
    sl_value_clear(&ev);
    if (!ok || k->topic.len == 0) {
        sl_counter_inc(k->m_dropped);
        sl_warn("output.kafka: an event lacks a field of the topic or key (%s / %s): dropped",
                k->conf->topic, k->conf->key);
        settle(k, t, i);
        return true;
    }
    rd_kafka_resp_err_t err = rk_producev(
        k->rk, RD_KAFKA_V_TOPIC(sl_buf_cstr(&k->topic)),
        RD_KAFKA_V_VALUE((void *)json, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(k->key.len ? k->key.data : NULL, k->key.len),
        RD_KAFKA_V_OPAQUE(&t->slots[i]), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        return false;
    }
    if (err) {
        sl_counter_inc(k->m_dropped);
        sl_error("output.kafka: an event cannot be produced and is dropped: %s",
                 rk_err2str(err));
        settle(k, t, i);
        return true;
    }
    sl_counter_inc(k->m_sent);
    return true;
}

/* Produces what is left of t; false when librdkafka's queue filled up. t may be
 * freed meanwhile (every event settled at once): then true. */
static bool produce_rest(struct kafka_out *k, struct tracker *t)
{
    uint32_t n = t->b->n;
    while (t->next < n) {
        uint32_t i = t->next++;
        bool last = t->next == n;
        if (!produce_one(k, t, i)) {
            t->next--;
            return false;
        }
        if (last) {
            break;  /* t may be gone */
        }
    }
    return true;
}

void kafka_out_pump(struct kafka_out *k)
{
    k->blocked = false;
    for (struct tracker *t = k->head, *next; t; t = next) {
        next = t->nextt;
        if (t->next < t->b->n && !produce_rest(k, t)) {
            k->blocked = true;
            return;
        }
    }
    for (;;) {
        struct batch *b = queue_next_unsent(k->q);
        if (!b) {
            return;
        }
        if (batch_unpack(b) != 0) {
            /* Packed by a Lumberjack output before a reload; its own block. */
            sl_error("output.kafka: a queued batch does not inflate to what was packed");
            k->blocked = true;
            return;
        }
        b->inflight = true;
        struct tracker *t = sl_calloc(1, sizeof(*t));
        t->b = b;
        t->acked = b->acked;
        t->next = b->acked;
        t->done = sl_calloc(b->n ? b->n : 1, 1);
        memset(t->done, 1, b->acked);
        t->slots = sl_calloc(b->n ? b->n : 1, sizeof(*t->slots));
        for (uint32_t i = 0; i < b->n; i++) {
            t->slots[i].t = t;
        }
        t->start_ms = sl_now_ms();
        t->prev = k->tail;
        if (k->tail) {
            k->tail->nextt = t;
        } else {
            k->head = t;
        }
        k->tail = t;
        if (!produce_rest(k, t)) {
            k->blocked = true;
            return;
        }
    }
}

bool kafka_out_idle(const struct kafka_out *k)
{
    return !k->blocked;
}

bool kafka_out_quiet(const struct kafka_out *k)
{
    return k->head == NULL;
}

/* ---- setup ------------------------------------------------------------- */

static int32_t round_robin(const rd_kafka_topic_t *rkt, const void *key, size_t keylen,
                           int32_t partition_cnt, void *rkt_opaque, void *msg_opaque)
{
    struct kafka_out *k = rkt_opaque;
    return (int32_t)(atomic_fetch_add(&k->rr, 1) % (uint32_t)partition_cnt);
}

static bool set(rd_kafka_conf_t *rc, const char *key, const char *value)
{
    char err[512];
    if (rk_conf_set(rc, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        sl_error("output.kafka: librdkafka refuses %s=%s: %s", key, value, err);
        return false;
    }
    return true;
}

static bool set_topic(rd_kafka_topic_conf_t *tc, const char *key, const char *value)
{
    char err[512];
    if (rk_topic_conf_set(tc, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        sl_error("output.kafka: librdkafka refuses %s=%s: %s", key, value, err);
        return false;
    }
    return true;
}

/* The per-topic settings (acks, compression, partitioner, timeout) go in the
 * default topic configuration: set globally, it would override them. */
static rd_kafka_topic_conf_t *topic_conf(struct kafka_out *k)
{
    const struct kafka_out_conf *c = k->conf;
    rd_kafka_topic_conf_t *tc = rk_topic_conf_new();
    char acks[8], level[8];
    snprintf(acks, sizeof(acks), "%d", (int)c->required_acks);
    snprintf(level, sizeof(level), "%d", (int)c->compression_level);
    /* hash: sarama's FNV-1a, so a key lands where Filebeat put it; no key: random. */
    const char *part = c->partitioner == KAFKA_PART_RANDOM ? "random" : "fnv1a_random";
    bool ok = set_topic(tc, "acks", acks) && set_topic(tc, "compression.codec", c->compression) &&
              set_topic(tc, "compression.level", level) &&
              set_topic(tc, "message.timeout.ms", "0") && set_topic(tc, "partitioner", part);
    if (!ok) {
        rk_topic_conf_destroy(tc);
        return NULL;
    }
    if (c->partitioner == KAFKA_PART_ROUND_ROBIN) {
        rk_topic_conf_set_partitioner_cb(tc, round_robin);
    }
    rk_topic_conf_set_opaque(tc, k);
    return tc;
}

static rd_kafka_conf_t *producer_conf(struct kafka_out *k)
{
    const struct kafka_out_conf *c = k->conf;
    rd_kafka_conf_t *rc = rk_conf_new();
    struct sl_buf hosts;
    sl_buf_init(&hosts, 0);
    for (size_t i = 0; i < c->nhosts; i++) {
        sl_buf_printf(&hosts, "%s%s", i ? "," : "", c->hosts[i]);
    }
    char maxb[24];
    snprintf(maxb, sizeof(maxb), "%lld", (long long)c->max_message_bytes);
    bool ok = set(rc, "bootstrap.servers", sl_buf_cstr(&hosts)) &&
              set(rc, "client.id", c->client_id) && set(rc, "message.max.bytes", maxb);
    sl_buf_free(&hosts);
    rd_kafka_topic_conf_t *tc = ok ? topic_conf(k) : NULL;
    if (!tc) {
        rk_conf_destroy(rc);
        return NULL;
    }
    rk_conf_set_default_topic_conf(rc, tc);
    rk_conf_set_dr_msg_cb(rc, on_delivery);
    rk_conf_set_opaque(rc, k);
    return rc;
}

struct kafka_out *kafka_out_new(struct sl_loop *loop, const struct kafka_out_conf *conf,
                                struct queue *q, struct sl_metrics *metrics)
{
    struct kafka_out *k = sl_calloc(1, sizeof(*k));
    char err[512];
    k->loop = loop;
    k->conf = conf;
    k->q = q;
    k->pipe[0] = k->pipe[1] = -1;
    k->templated = strstr(conf->topic, "%{") || strstr(conf->key, "%{");
    sl_buf_init(&k->topic, 0);
    sl_buf_init(&k->key, 0);
    k->m_sent = sl_metrics_counter(metrics, "sluice_shipper_events_sent_total",
                                   "Events sent in windows (resends included).", NULL);
    k->m_dropped = sl_metrics_counter(metrics, "sluice_shipper_kafka_events_dropped_total",
                                      "output.kafka: events Kafka refused for good, or "
                                      "lacking a topic or key field (dropped).", NULL);
    k->m_latency = sl_metrics_histogram(metrics, "sluice_shipper_kafka_delivery_seconds",
                                        "output.kafka: from a batch's first message produced "
                                        "to its last delivery report.", NULL,
                                        sl_metrics_latency_buckets, sl_metrics_latency_nbuckets);
    pthread_once(&kafka_once, kafka_load);
    if (kafka_rc != 0) {
        sl_error("output.kafka: cannot load librdkafka: %s", kafka_err);
        goto fail;
    }
    rd_kafka_conf_t *rc = producer_conf(k);
    if (!rc) {
        goto fail;
    }
    k->rk = rk_new(RD_KAFKA_PRODUCER, rc, err, sizeof(err));
    if (!k->rk) {
        rk_conf_destroy(rc);
        sl_error("output.kafka: cannot create a producer: %s", err);
        goto fail;
    }
    if (pipe2(k->pipe, O_NONBLOCK | O_CLOEXEC) != 0 ||
        sl_loop_add_fd(loop, k->pipe[0], SL_READ, on_pipe, k) != 0) {
        sl_error("output.kafka: cannot watch the producer's queue");
        goto fail;
    }
    rd_kafka_queue_t *mq = rk_queue_get_main(k->rk);
    rk_queue_io_event_enable(mq, k->pipe[1], "1", 1);
    rk_queue_destroy(mq);
    k->tick = sl_loop_timer(loop, TICK_MS, true, on_tick, k);
    return k;
fail:
    kafka_out_free(k);
    return NULL;
}

void kafka_out_free(struct kafka_out *k)
{
    if (!k) {
        return;
    }
    sl_timer_cancel(k->tick);
    if (k->rk) {
        k->closing = true;  /* reports of purged messages settle nothing */
        rk_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rk_destroy(k->rk);
    }
    if (k->pipe[0] >= 0) {
        sl_loop_del_fd(k->loop, k->pipe[0]);
        close(k->pipe[0]);
        close(k->pipe[1]);
    }
    while (k->head) {
        k->head->b->inflight = false;
        tracker_free(k, k->head);
    }
    sl_buf_free(&k->topic);
    sl_buf_free(&k->key);
    free(k);
}
