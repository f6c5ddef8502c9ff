/*
 * sender.c - Lumberjack v2 client connections.
 *
 * Every host gets a connection object. Primaries are always connected (and
 * reconnected with backoff); backups only while no primary is up, as in the
 * nginx upstream model. A sealed batch goes to the up connection picked by
 * smooth weighted round robin (loadbalance: true) or to the first up primary
 * in list order (loadbalance: false). A connection pipelines up to
 * `pipelining` windows; ACKs arrive in window order, so the in-flight windows
 * of a connection form a FIFO.
 *
 * With compression: zstd_stream each connection owns one zstd stream: a
 * window's 'S' block continues the previous one's, and every new connection
 * starts a new stream (so a resend after a reconnect reaches a fresh decoder
 * as a new frame). docs/protocol.md §6.
 */
#include "sender.h"

#include "kafka_out.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/backoff.h"
#include "sluice/log.h"
#include "sluice/lumberjack.h"
#include "sluice/net.h"
#include "sluice/tls.h"

#define MAX_PIPELINE 16
#define TICK_MS 100

enum conn_state { C_DOWN, C_CONNECTING, C_HANDSHAKE, C_UP };

struct inflight {
    struct batch *b;
    uint32_t base;      /* events of b ACKed before this window was sent */
    uint32_t count;     /* events in this window */
    uint64_t sent_ms;
};

struct conn {
    struct sender *s;
    const struct host_conf *host;
    int fd;
    enum conn_state state;
    struct sl_tls *tls;      /* NULL for plain TCP */
    struct sl_lj_zstream *zs;  /* compression: zstd_stream; NULL until the first window */
    struct sl_buf wbuf;
    size_t woff;
    unsigned char rbuf[4096];
    size_t rlen;
    struct inflight fl[MAX_PIPELINE];
    int nfl;
    uint64_t last_progress;  /* monotonic: last ACK (or keepalive) or the first send */
    uint64_t since;          /* monotonic: connect start */
    uint64_t retry_at;
    struct sl_backoff backoff;  /* reset by an ACK: a connect alone proves little */
    bool idle_closed;           /* the last close was the aggregator's idle timeout */
    int64_t cw;              /* smooth weighted round robin */
    struct sl_metric *m_errors;
    struct sl_metric *m_up;
};

struct sender {
    struct sl_loop *loop;
    const struct output_conf *conf;
    struct queue *q;
    struct conn *conns;
    size_t n;
    struct sl_timer *tick;
    struct sl_tls_ctx *tls;  /* NULL unless output.ssl.enabled */
    struct sl_metric *m_sent;
    struct sl_metric *m_wire;
    struct sl_metric *m_ack_seconds;
    struct kafka_out *kafka;  /* output.kafka: every call goes there; no connection */
};

static void conn_connect(struct conn *c);
static void conn_io(struct sl_loop *loop, int fd, unsigned events, void *arg);

/* Closes c; it reconnects after retry_ms. */
static void conn_down(struct conn *c, uint64_t retry_ms)
{
    struct sender *s = c->s;
    sl_tls_free(c->tls);
    c->tls = NULL;
    if (c->fd >= 0) {
        sl_loop_del_fd(s->loop, c->fd);
        close(c->fd);
        c->fd = -1;
    }
    for (int i = 0; i < c->nfl; i++) {
        c->fl[i].b->inflight = false;
    }
    c->nfl = 0;
    sl_buf_reset(&c->wbuf);
    c->woff = 0;
    c->rlen = 0;
    c->state = C_DOWN;
    sl_gauge_set(c->m_up, 0);
    c->retry_at = sl_now_ms() + retry_ms;
}

static void conn_fail(struct conn *c, const char *why)
{
    sl_warn("output %s: %s%s", c->host->addr, why,
            c->nfl ? "; unACKed events will be resent" : "");
    sl_counter_inc(c->m_errors);
    conn_down(c, sl_backoff_next(&c->backoff));
}

static void conn_want(struct conn *c)
{
    unsigned ev = SL_READ;
    if (c->state == C_CONNECTING || c->woff < c->wbuf.len) {
        ev |= SL_WRITE;
    }
    if (c->tls) {
        /* TLS may need the opposite direction to make progress (a handshake
         * or renegotiation record): listen for what OpenSSL asked for. */
        ev |= sl_tls_want(c->tls);
    }
    sl_loop_mod_fd(c->s->loop, c->fd, ev);
}

static ssize_t conn_send_bytes(struct conn *c, const char *p, size_t n)
{
    if (c->tls) {
        ssize_t w = sl_tls_write(c->tls, p, n);
        if (w == SL_EAGAIN) {
            errno = EAGAIN;
            return -1;
        }
        if (w < 0) {
            errno = EIO;
            return -1;
        }
        return w;
    }
    return send(c->fd, p, n, MSG_NOSIGNAL);
}

static ssize_t conn_recv_bytes(struct conn *c, void *p, size_t n)
{
    if (c->tls) {
        ssize_t r = sl_tls_read(c->tls, p, n);
        if (r == SL_EAGAIN) {
            errno = EAGAIN;
            return -1;
        }
        if (r < 0) {
            errno = r == SL_ECLOSED ? ECONNRESET : EIO;
            return -1;
        }
        return r;
    }
    return recv(c->fd, p, n, 0);
}

static int conn_flush(struct conn *c)
{
    while (c->woff < c->wbuf.len) {
        ssize_t w = conn_send_bytes(c, c->wbuf.data + c->woff, c->wbuf.len - c->woff);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            return SL_EIO;
        }
        c->woff += (size_t)w;
    }
    if (c->woff == c->wbuf.len) {
        sl_buf_reset(&c->wbuf);
        c->woff = 0;
    }
    conn_want(c);
    return 0;
}

static void conn_connect(struct conn *c)
{
    c->fd = sl_net_connect(c->host->addr);
    if (c->fd < 0) {
        conn_fail(c, "cannot connect");
        return;
    }
    c->state = C_CONNECTING;
    c->since = sl_now_ms();
    if (sl_loop_add_fd(c->s->loop, c->fd, SL_WRITE, conn_io, c) != 0) {
        conn_fail(c, "cannot watch the socket");
    }
}

static int enc_kind(enum ship_compression c)
{
    return c == COMP_ZSTD ? SL_LJ_ZSTDC : SL_LJ_ZLIB;
}

/* Appends the window's frames as configured: bare, one C or Z block, or the
 * connection's next S block. */
static int put_frames(struct conn *c, const char *frames, size_t flen)
{
    const struct output_conf *o = c->s->conf;
    int level = (int)o->compression_level;
    switch (o->compression) {
    case COMP_NONE:
        return sl_buf_append(&c->wbuf, frames, flen);
    case COMP_ZSTD_STREAM:
        if (!c->zs && !(c->zs = sl_lj_zstream_new(level))) {
            return SL_EINVAL;
        }
        return sl_lj_put_zstream(&c->wbuf, c->zs, frames, flen);
    case COMP_ZLIB:
        if (level == 0) {
            return sl_buf_append(&c->wbuf, frames, flen);  /* as Filebeat: level 0 = bare */
        }
        break;
    case COMP_ZSTD:
        break;
    }
    return sl_lj_put_compressed(&c->wbuf, enc_kind(o->compression), level, frames, flen);
}

/* The packing that makes a sealed batch's block exactly what put_frames would
 * write for this output: SL_LJ_NONE when the output compresses otherwise. */
static int packing_kind(const struct output_conf *o)
{
    if (o->kafka.enabled) {
        return SL_LJ_NONE;
    }
    switch (o->compression) {
    case COMP_ZSTD:
        return SL_LJ_ZSTDC;
    case COMP_ZLIB:
        return o->compression_level == 0 ? SL_LJ_NONE : SL_LJ_ZLIB;
    case COMP_NONE:
    case COMP_ZSTD_STREAM:
        break;
    }
    return SL_LJ_NONE;
}

/* Window [k, k + count) of b is in the write buffer from byte before on. */
static int conn_sent(struct conn *c, struct batch *b, uint32_t k, uint32_t count, size_t before)
{
    struct sender *s = c->s;
    if (c->nfl == 0) {
        c->last_progress = sl_now_ms();
    }
    c->fl[c->nfl++] = (struct inflight){.b = b, .base = k, .count = count,
                                        .sent_ms = sl_now_ms()};
    b->inflight = true;
    sl_counter_add(s->m_sent, count);
    sl_counter_add(s->m_wire, c->wbuf.len - before);
    return conn_flush(c);
}

static int conn_send(struct conn *c, struct batch *b)
{
    struct sender *s = c->s;
    uint32_t k = b->acked;
    uint32_t count = b->n - k;
    /* Packed as this output packs (sender_new set the queue's packing): sent as it is. */
    bool whole = k == 0 && batch_packed_as(b, s->q->pack_kind, s->q->pack_level);
    if (b->packed && !whole && batch_unpack(b) != 0) {
        sl_error("output: a queued window does not inflate to what was packed");
        return SL_EIO;
    }
    if (whole) {
        size_t before = c->wbuf.len;
        if (sl_lj_put_window(&c->wbuf, SL_LJ_V2, count) != 0 ||
            sl_buf_append(&c->wbuf, b->packed, b->packed_len) != 0) {
            c->wbuf.len = before;
            return SL_EIO;
        }
        return conn_sent(c, b, k, count, before);
    }
    if (k > 0) {
        /* Resending the unACKed tail: its window numbers events from 1 again. */
        for (uint32_t i = k; i < b->n; i++) {
            sl_put_u32be(b->frames.data + b->ev[i].frame_off + 2, i - k + 1);
        }
    }
    size_t before = c->wbuf.len;
    const char *frames = b->frames.data + b->ev[k].frame_off;
    size_t flen = b->frames.len - b->ev[k].frame_off;
    if (sl_lj_put_window(&c->wbuf, SL_LJ_V2, count) != 0 || put_frames(c, frames, flen) != 0) {
        /* A stream that failed midway is out of step with the receiver: the
         * caller closes the connection, and the next one starts a new stream. */
        sl_error("output: cannot encode a window (compression failed)");
        c->wbuf.len = before;
        return SL_EIO;
    }
    return conn_sent(c, b, k, count, before);
}

/* What came instead of an ACK, shown so that an HTTP server or a TLS port
 * answering on the aggregator's address is recognisable in the log. */
static void not_lumberjack(struct conn *c, const uint8_t *p, size_t n)
{
    char shown[64], msg[160];
    size_t k = 0;
    for (size_t i = 0; i < n && i < 24 && k + 5 < sizeof(shown); i++) {
        uint8_t ch = p[i];
        k += (size_t)snprintf(shown + k, sizeof(shown) - k, ch >= 0x20 && ch < 0x7f && ch != '"'
                                                              ? "%c" : "\\x%02x", ch);
    }
    shown[k] = '\0';
    snprintf(msg, sizeof(msg), "not a Lumberjack server? expected an ACK frame, got \"%s\"%s",
             shown, n > 24 ? "..." : "");
    conn_fail(c, msg);
}

static void handle_ack(struct conn *c, uint32_t seq)
{
    struct sender *s = c->s;
    c->last_progress = sl_now_ms();
    if (seq == 0) {
        return;  /* keepalive: the aggregator is still working on the window */
    }
    if (c->nfl == 0 || seq > c->fl[0].count) {
        conn_fail(c, "protocol error: ACK for an unknown sequence number");
        return;
    }
    struct inflight head = c->fl[0];
    sl_backoff_reset(&c->backoff);
    if (seq == head.count) {
        memmove(&c->fl[0], &c->fl[1], (size_t)(c->nfl - 1) * sizeof(c->fl[0]));
        c->nfl--;
        head.b->inflight = false;
        sl_hist_observe(s->m_ack_seconds, (double)(sl_now_ms() - head.sent_ms) / 1000.0);
    }
    /* May free the batch: nothing touches head.b after this. */
    queue_ack(s->q, head.b, head.base + seq);
}

static void conn_read(struct conn *c)
{
    for (;;) {
        ssize_t r = conn_recv_bytes(c, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen);
        if (r == 0 && c->nfl == 0 && c->wbuf.len == 0) {
            /* An idle connection the aggregator let go (client_inactivity_timeout):
             * routine, not an error; reconnect at once, quietly. */
            sl_debug("output %s: idle connection closed by the aggregator; reconnecting",
                     c->host->addr);
            conn_down(c, 0);
            c->idle_closed = true;
            return;
        }
        if (r == 0) {
            conn_fail(c, "connection closed by the aggregator");
            return;
        }
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                conn_fail(c, strerror(errno));
            }
            return;
        }
        c->rlen += (size_t)r;
        size_t off = 0;
        for (;;) {
            char ver;
            uint32_t seq;
            int rc = sl_lj_parse_ack(c->rbuf + off, c->rlen - off, &ver, &seq);
            if (rc == 0) {
                break;
            }
            if (rc < 0) {
                not_lumberjack(c, c->rbuf + off, c->rlen - off);
                return;
            }
            off += (size_t)rc;
            handle_ack(c, seq);
            if (c->state != C_UP) {
                return;
            }
        }
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
}

static void conn_up(struct conn *c)
{
    if (c->zs) {
        sl_lj_zstream_reset(c->zs);  /* the aggregator's decoder for this connection is new */
    }
    c->state = C_UP;
    sl_gauge_set(c->m_up, 1);
    /* After an idle close this is routine, once a minute: not worth a line. */
    enum sl_log_level lvl = c->idle_closed ? SL_LOG_DEBUG : SL_LOG_INFO;
    c->idle_closed = false;
    if (c->tls) {
        sl_log_write(lvl, "output: connected to %s (%s, %s)", c->host->addr,
                     sl_tls_protocol(c->tls), sl_tls_cipher(c->tls));
    } else {
        sl_log_write(lvl, "output: connected to %s", c->host->addr);
    }
    conn_want(c);
    sender_pump(c->s);
}

static void conn_io(struct sl_loop *loop, int fd, unsigned events, void *arg)
{
    struct conn *c = arg;
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            conn_fail(c, err ? strerror(err) : "connect failed");
            return;
        }
        if (c->s->tls) {
            char host[256], msg[256];
            int port;
            sl_net_split(c->host->addr, host, sizeof(host), &port);
            c->tls = sl_tls_new(c->s->tls, fd, host[0] ? host : NULL, msg, sizeof(msg));
            if (!c->tls) {
                conn_fail(c, msg);
                return;
            }
            c->state = C_HANDSHAKE;
        } else {
            conn_up(c);
            return;
        }
    }
    if (c->state == C_HANDSHAKE) {
        int rc = sl_tls_handshake(c->tls);
        if (rc == SL_EAGAIN) {
            conn_want(c);
            return;
        }
        if (rc != 0) {
            char why[512];
            snprintf(why, sizeof(why), "TLS handshake failed: %s", sl_tls_error(c->tls));
            conn_fail(c, why);
            return;
        }
        conn_up(c);
        return;
    }
    if (events & (SL_READ | SL_WRITE)) {
        /* With TLS a write may be waiting for a read and the other way round,
         * so either readiness tries both directions. */
        conn_read(c);
        if (c->state != C_UP) {
            return;
        }
    }
    if ((events & SL_WRITE) && conn_flush(c) != 0) {
        conn_fail(c, strerror(errno));
        return;
    }
    sender_pump(c->s);
}

static bool primary_up(const struct sender *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (!s->conns[i].host->backup && s->conns[i].state == C_UP) {
            return true;
        }
    }
    return false;
}

static void on_tick(struct sl_loop *loop, void *arg)
{
    struct sender *s = arg;
    uint64_t now = sl_now_ms();
    bool backups_wanted = !primary_up(s);
    for (size_t i = 0; i < s->n; i++) {
        struct conn *c = &s->conns[i];
        switch (c->state) {
        case C_DOWN:
            if ((!c->host->backup || backups_wanted) && now >= c->retry_at) {
                conn_connect(c);
            }
            break;
        case C_CONNECTING:
        case C_HANDSHAKE:
            if (now - c->since > s->conf->timeout_ms) {
                conn_fail(c, "connect timed out");
            }
            break;
        case C_UP:
            if (c->nfl > 0 && now - c->last_progress > s->conf->timeout_ms) {
                conn_fail(c, "no ACK within the timeout");
            }
            break;
        }
    }
    sender_pump(s);
}

struct sender *sender_new(struct sl_loop *loop, const struct output_conf *conf, struct queue *q,
                          struct sl_metrics *metrics)
{
    struct sender *s = sl_calloc(1, sizeof(*s));
    s->loop = loop;
    s->conf = conf;
    s->q = q;
    queue_set_packing(q, packing_kind(conf), (int)conf->compression_level);
    if (conf->kafka.enabled) {
        s->kafka = kafka_out_new(loop, &conf->kafka, q, metrics);
        return s;
    }
    s->n = conf->nhosts;
    s->conns = sl_calloc(s->n, sizeof(*s->conns));
    if (conf->ssl.enabled) {
        char err[512];
        s->tls = shipper_tls_ctx(&conf->ssl, err, sizeof(err));
        if (!s->tls) {
            sl_error("output.ssl: %s", err);
        }
    }
    s->m_sent = sl_metrics_counter(metrics, "sluice_shipper_events_sent_total",
                                   "Events sent in windows (resends included).", NULL);
    s->m_wire = sl_metrics_counter(metrics, "sluice_shipper_wire_bytes_total",
                                   "Bytes written to aggregators, after compression.", NULL);
    s->m_ack_seconds = sl_metrics_histogram(
        metrics, "sluice_shipper_batch_ack_seconds", "Time from sending a window to its ACK.",
        NULL, sl_metrics_latency_buckets, sl_metrics_latency_nbuckets);
    for (size_t i = 0; i < s->n; i++) {
        struct conn *c = &s->conns[i];
        c->s = s;
        c->host = &conf->hosts[i];
        c->fd = -1;
        /* Seeded per process and host, so that shippers restarted together
         * (or reconnecting to the same aggregator) do not retry in step. */
        uint32_t seed = ((uint32_t)getpid() * 2654435761u) ^ (uint32_t)sl_now_ms() ^
                        ((uint32_t)(i + 1) * 0x85ebca6bu);
        sl_backoff_init(&c->backoff, conf->backoff_init_ms, conf->backoff_max_ms, seed);
        sl_buf_init(&c->wbuf, 0);
        const char *labels[] = {"host", c->host->addr, NULL};
        c->m_errors = sl_metrics_counter(metrics, "sluice_shipper_connection_errors_total",
                                         "Connection failures and timeouts, per host.", labels);
        c->m_up = sl_metrics_gauge(metrics, "sluice_shipper_connection_up",
                                   "1 while the connection to the host is established.", labels);
        if (!c->host->backup) {
            conn_connect(c);
        }
    }
    s->tick = sl_loop_timer(loop, TICK_MS, true, on_tick, s);
    return s;
}

void sender_free(struct sender *s)
{
    if (!s) {
        return;
    }
    kafka_out_free(s->kafka);
    queue_set_packing(s->q, SL_LJ_NONE, 0);
    for (size_t i = 0; i < s->n; i++) {
        struct conn *c = &s->conns[i];
        sl_tls_free(c->tls);
        if (c->fd >= 0) {
            sl_loop_del_fd(s->loop, c->fd);
            close(c->fd);
        }
        for (int j = 0; j < c->nfl; j++) {
            c->fl[j].b->inflight = false;
        }
        sl_buf_free(&c->wbuf);
        sl_lj_zstream_free(c->zs);
    }
    sl_timer_cancel(s->tick);
    sl_tls_ctx_free(s->tls);
    free(s->conns);
    free(s);
}

static bool can_take(const struct sender *s, const struct conn *c)
{
    return c->state == C_UP && c->nfl < s->conf->pipelining && c->nfl < MAX_PIPELINE;
}

/* The connection for the next window, or NULL when none has a free slot. */
static struct conn *pick(struct sender *s)
{
    bool use_backups = !primary_up(s);
    struct conn *best = NULL;
    int64_t total = 0;
    for (size_t i = 0; i < s->n; i++) {
        struct conn *c = &s->conns[i];
        if (c->host->backup != use_backups || c->state != C_UP) {
            continue;
        }
        if (!s->conf->loadbalance) {
            /* Failover mode: the first live host takes everything. */
            return can_take(s, c) ? c : NULL;
        }
        if (!can_take(s, c)) {
            continue;
        }
        c->cw += c->host->weight;
        total += c->host->weight;
        if (!best || c->cw > best->cw) {
            best = c;
        }
    }
    if (best) {
        best->cw -= total;
    }
    return best;
}

void sender_pump(struct sender *s)
{
    if (s->conf->kafka.enabled) {
        if (s->kafka) {
            kafka_out_pump(s->kafka);
        }
        return;
    }
    for (;;) {
        struct batch *b = queue_next_unsent(s->q);
        if (!b) {
            return;
        }
        struct conn *c = pick(s);
        if (!c) {
            return;
        }
        if (conn_send(c, b) != 0) {
            conn_fail(c, "write failed");
        }
    }
}

bool sender_idle(const struct sender *s)
{
    if (s->conf->kafka.enabled) {
        return s->kafka && kafka_out_idle(s->kafka);
    }
    for (size_t i = 0; i < s->n; i++) {
        if (can_take(s, &s->conns[i])) {
            return true;
        }
    }
    return false;
}

bool sender_quiet(const struct sender *s)
{
    if (s->conf->kafka.enabled) {
        return !s->kafka || kafka_out_quiet(s->kafka);
    }
    for (size_t i = 0; i < s->n; i++) {
        if (s->conns[i].nfl > 0) {
            return false;
        }
    }
    return true;
}
