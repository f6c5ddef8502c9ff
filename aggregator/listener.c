/*
 * listener.c - the Lumberjack server: one connection per client, each with its
 * own incremental decoder, a window being assembled (cur) and a FIFO of
 * windows handed to the pipeline (head..tail) whose ACKs must leave in order.
 *
 * Lifetimes. A connection is referenced by the loop while open and by each of
 * its windows while that window is in a pipeline; it is freed when the last
 * reference goes. Closing (protocol error, peer gone, failed delivery) stops
 * all I/O at once, but a window still in a pipeline stays allocated until its
 * completion arrives and finds the connection closed: outputs borrow the
 * window's events until then, so it cannot be freed earlier.
 *
 * Flow control. Nothing is buffered beyond one frame: when a connection has
 * too many windows pending, or the pipeline too many events, its fd loses
 * SL_READ and its decoder is not asked for more frames. When completions bring
 * the counts down, the connections are resumed, and frames the decoder already
 * holds (or bytes OpenSSL decrypted) are decoded from a zero-delay timer (not
 * from inside the completion, which may itself run inside a submit from a
 * decode loop).
 *
 * TLS. With input.ssl each connection gets an sl_tls: the handshake runs on
 * the loop, bounded by input.ssl.handshake_timeout; reads and writes go
 * through sl_tls_read/write, whose "want" (a read may need the fd writable
 * and a write readable) decides the fd's interest. A SIGHUP reloads the
 * context in place: open connections keep the certificate they started with.
 *
 * Hostile clients. Every cap (window events, frame bytes, inflated bytes,
 * window bytes, JSON depth, connections) and every malformed input closes that
 * one connection with a log line and sluice_aggregator_protocol_errors_total
 * {reason}. A client that starts a window (or a frame) and then trickles has
 * input.frame_timeout to finish it; an idle one has client_inactivity_timeout.
 * Memory per idle connection is its struct and socket only: the decoder (and
 * its inflate buffers) is created with the first byte and dropped after
 * IDLE_RELEASE_MS without traffic.
 *
 * Per-client series. Each connection resolves its client's series once
 * (clients.h: its IP address, or its certificate's CN), when it is accepted
 * or its TLS handshake is done, and adds each piece it submits or ACKs.
 *
 * Not here: event enrichment (peer address in @metadata).
 */
#include "listener.h"

#include "clients.h"
#include "queue.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/arena.h"
#include "sluice/buf.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/lumberjack.h"
#include "sluice/net.h"
#include "sluice/tls.h"

#define READ_CHUNK 65536
#define READS_PER_WAKE 16       /* then let other connections have a turn */
#define ACCEPTS_PER_WAKE 64
#define OUT_MAX 65536           /* ACK bytes queued for a client that does not read */
#define ACCEPT_PAUSE_MS 100     /* after EMFILE: level-triggered accept would spin */
#define IDLE_RELEASE_MS 2000 /* no traffic for that long: the decoder's buffers go */

/* The label values of sluice_aggregator_protocol_errors_total (docs/aggregator.md). */
enum reason {
    R_FRAME,         /* decoder: bad version/type/length, bad zlib/zstd */
    R_WINDOW_EVENTS, /* kept for its series: a large window is now cut into pieces */
    R_FRAME_BYTES,   /* one frame over input.max_frame_bytes */
    R_INFLATED,      /* a compressed frame inflates past input.max_window_bytes */
    R_LIMIT,         /* another decoder cap (not expected; kept apart to notice it) */
    R_JSON,          /* a J frame that is not one JSON object */
    R_JSON_DEPTH,    /* nesting deeper than input.max_json_depth */
    R_WINDOW_BYTES,  /* kept for its series: a large window is now cut into pieces */
    R_UNEXPECTED,    /* a data frame outside any window */
    R_ACK_BACKLOG,   /* the client does not read its ACKs */
    R_FRAME_TIMEOUT, /* a window or frame started and not finished within frame_timeout */
    R_TLS,           /* the TLS handshake failed (bad certificate, not TLS, ...) */
    R_TLS_TIMEOUT,   /* the TLS handshake took longer than ssl.handshake_timeout */
    R_MAX_CONN,      /* refused at accept: input.max_connections reached */
    R_COUNT
};

static const char *const reason_names[R_COUNT] = {
    "invalid_frame", "window_events", "frame_bytes", "inflated_bytes", "limit",
    "invalid_json", "json_depth", "window_bytes", "unexpected_frame", "ack_backlog",
    "frame_timeout", "tls_handshake", "tls_handshake_timeout", "max_connections",
};

struct conn;

/* First chunk of a window's arena (it doubles as the window fills): small,
 * because every pending window of every connection holds one, and a window
 * of a few events should not pin 64 KiB. */
#define WINDOW_ARENA_CHUNK (16u * 1024)

struct window {
    struct conn *c;
    struct window *next;
    char version;           /* of the W frame; the ACK carries it back */
    uint32_t expected;      /* N announced by W */
    uint32_t last_seq;      /* seq of the last J frame: what the ACK says */
    uint64_t bytes;         /* JSON bytes so far, for max_window_bytes */
    uint64_t charged;       /* of pipeline.max_pending_bytes, given back when freed */
    struct agg_input in;    /* events[0..n): each the JSON text of one J frame, parsed
                             * by the pipeline's workers; the array is owned */
    uint32_t *seqs;         /* each event's sequence number, for messages */
    struct sl_arena arena;  /* the events' texts: lives as long as the window */
    size_t cap;
    uint64_t submit_ms;
    bool done;
    int status;
    /* A window handed to the pipeline as its one compressed block (unpack). */
    char block_type;             /* SL_LJ_COMPRESSED or SL_LJ_ZSTD; 0: texts as read */
    const char *block;           /* the block's payload, in arena */
    uint32_t block_len;
    uint64_t reserved;           /* of the budget, until the block's texts are counted */
    struct sl_lj_limits limits;  /* the listener's, for the worker (max_inflated is
                                  * input.max_window_bytes) */
    enum reason why_reason;      /* unpack's protocol error */
    char why[128];
    bool continued;              /* the rest of a window whose block went as a piece */
    bool abandoned;              /* its block went back to the connection: never ACKed */
};

struct conn {
    struct agg_listener *l;
    struct conn *prev, *next;
    int fd;
    char peer[INET6_ADDRSTRLEN + 8];
    char ip[INET6_ADDRSTRLEN];  /* the peer's address alone: its client label without mTLS */
    struct agg_client *client;  /* its series; NULL before the handshake and once closed */
    struct sl_lj_decoder *dec;  /* NULL until bytes arrive, and again once idle */
    struct sl_tls *tls;         /* NULL: plaintext */
    bool handshaking;
    unsigned tls_rwant;         /* readiness the last TLS read (or handshake) waits for */
    unsigned tls_wwant;         /* readiness the last TLS write waits for */
    struct agg_order order;     /* keeps this connection's windows in order in the outputs */
    struct sl_buf out;       /* ACK bytes not yet written */
    struct window *cur;      /* being assembled */
    struct window *head;     /* handed to the pipeline, in arrival order */
    struct window *tail;
    struct window *unpacking; /* its block is being inflated: nothing is read meanwhile */
    bool no_handoff;         /* a block of this client had to be read here: read all here */
    size_t npending;         /* windows in the FIFO not yet done */
    int refs;
    unsigned interest;
    bool closed;
    bool zombie;             /* closed, on l->zombies until its windows come back */
    bool eof;                /* the client finished sending; answer, then close */
    bool kick;               /* resumed with frames already in the decoder */
    bool paused;             /* not reading (backpressure): frame_timeout does not run */
    uint64_t dec_charged;    /* the decoder's buffered bytes, as last charged */
    uint64_t accepted_ms;
    uint64_t busy_since;     /* a window or frame is open since then (0: none) */
    uint64_t last_io;
    uint64_t last_write;
};

struct agg_listener {
    struct sl_loop *loop;
    struct agg_pipeline *pipeline;
    struct agg_queue *queue;     /* persisted: windows go here instead (ACKed once fsynced) */
    int fd;
    int port;
    struct conn *conns;      /* open */
    size_t nconns;
    struct conn *zombies;    /* closed with windows still in a pipeline */
    bool draining;
    struct sl_timer *tick;
    struct sl_timer *kick_timer;
    struct sl_timer *accept_timer;

    /* settings (agg_listener_apply) */
    int64_t max_connections;
    uint64_t inactivity_ms;
    uint64_t keepalive_ms;
    size_t max_pending_windows;
    uint64_t max_pending_events;
    uint64_t max_pending_bytes;
    uint64_t max_window_bytes;
    uint32_t max_window_events;
    uint64_t frame_timeout_ms;
    int max_json_depth;
    struct sl_lj_limits limits;
    struct sl_tls_ctx *tls_ctx;  /* NULL: plaintext */
    uint64_t handshake_ms;

    uint64_t pending_events;  /* in pipelines, not yet answered */
    size_t pending_windows;
    uint64_t pending_bytes;   /* read and not yet answered: windows' texts, decoders' input */
    uint64_t reserved_bytes;  /* what blocks being inflated may become (not in the gauge) */
    bool budget_blocked;      /* a connection was refused a read for max_pending_bytes */
    const struct conn *favored; /* may_overdraw's pick, while favored_valid */
    bool favored_valid;
    struct sl_timer *resume_timer;

    struct sl_metrics *metrics;
    struct sl_metric *m_conns;
    struct sl_metric *m_rejected;
    struct sl_metric *m_received;
    struct sl_metric *m_acked;
    struct sl_metric *m_last_ack;
    struct sl_metric *m_windows;
    struct sl_metric *m_unpacked;
    struct sl_metric *m_queue;
    struct sl_metric *m_failed;
    struct sl_metric *m_pending_bytes;
    struct sl_metric *m_max_pending_bytes;
    struct sl_metric *m_budget_full;
    struct sl_metric *m_proto[R_COUNT];  /* created on first use */
    struct agg_clients *clients;
};

static void conn_process(struct conn *c);
static void conn_read(struct conn *c);
static void account_decoder(struct conn *c);
static void conn_update(struct conn *c);

/* ---- the memory budget (pipeline.max_pending_bytes) ---- */

static void budget_charge(struct agg_listener *l, uint64_t n)
{
    l->favored_valid = false;
    l->pending_bytes += n;
    sl_gauge_add(l->m_pending_bytes, (double)n);
}

static void resume_fire(struct sl_loop *loop, void *arg);

/* Once reads may go on, every connection is resumed (from a timer: this runs
 * inside window and connection teardown); can_read decides for each. */
static void budget_maybe_resume(struct agg_listener *l)
{
    if (l->budget_blocked && (l->pending_bytes < l->max_pending_bytes ||
                              l->pending_windows == 0)) {
        l->budget_blocked = false;
        if (!l->resume_timer) {
            l->resume_timer = sl_loop_timer(l->loop, 0, false, resume_fire, l);
        }
    }
}

/* Gives n bytes back. */
static void budget_release(struct agg_listener *l, uint64_t n)
{
    n = SL_MIN(n, l->pending_bytes);
    l->favored_valid = false;
    l->pending_bytes -= n;
    sl_gauge_add(l->m_pending_bytes, -(double)n);
    budget_maybe_resume(l);
}

/* ---- windows ---- */

static struct window *window_new(struct conn *c, char version, uint32_t expected)
{
    struct window *w = sl_calloc(1, sizeof(*w));
    w->c = c;
    w->version = version;
    w->expected = expected;
    sl_arena_init(&w->arena, WINDOW_ARENA_CHUNK);
    return w;
}

static void window_free(struct window *w)
{
    if (!w) {
        return;
    }
    if (w->charged) {
        budget_release(w->c->l, w->charged);
    }
    /* The pipeline cleared what it parsed; a window never submitted holds texts. */
    for (size_t i = 0; i < w->in.batch.n; i++) {
        sl_value_clear(&w->in.batch.events[i]);
    }
    free(w->in.batch.events);
    free(w->seqs);
    sl_arena_free(&w->arena);
    free(w);
}

/* Takes ownership of ev (moved into the window). */
static void window_push(struct window *w, struct sl_value *ev, uint32_t seq)
{
    if (w->in.batch.n == w->cap) {
        /* Grow towards N, not to N at once: a W frame alone costs the client nothing. */
        size_t cap = w->cap ? w->cap * 2 : 16;
        if (cap > w->expected) {
            cap = w->expected;
        }
        w->in.batch.events = sl_realloc(w->in.batch.events, cap * sizeof(*w->in.batch.events));
        w->seqs = sl_realloc(w->seqs, cap * sizeof(*w->seqs));
        w->cap = cap;
    }
    w->seqs[w->in.batch.n] = seq;
    w->in.batch.events[w->in.batch.n++] = *ev;
    memset(ev, 0, sizeof(*ev));
}

static void fifo_push(struct conn *c, struct window *w)
{
    w->next = NULL;
    if (c->tail) {
        c->tail->next = w;
    } else {
        c->head = w;
    }
    c->tail = w;
}

static void fifo_remove(struct conn *c, struct window *w)
{
    struct window *prev = NULL;
    for (struct window *x = c->head; x; prev = x, x = x->next) {
        if (x == w) {
            if (prev) {
                prev->next = x->next;
            } else {
                c->head = x->next;
            }
            if (c->tail == x) {
                c->tail = prev;
            }
            return;
        }
    }
}

/* ---- connections ---- */

static void conn_ref(struct conn *c)
{
    c->refs++;
}

static void list_add(struct conn **list, struct conn *c)
{
    c->prev = NULL;
    c->next = *list;
    if (*list) {
        (*list)->prev = c;
    }
    *list = c;
}

static void list_del(struct conn **list, struct conn *c)
{
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        *list = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
}

static void conn_unref(struct conn *c)
{
    if (--c->refs > 0) {
        return;
    }
    /* Only a closed connection loses its last reference (open holds one). */
    if (c->zombie) {
        list_del(&c->l->zombies, c);
    }
    free(c);
}

static void conn_close(struct conn *c)
{
    if (c->closed) {
        return;
    }
    struct agg_listener *l = c->l;
    c->closed = true;
    c->unpacking = NULL;  /* its completion frees it */
    sl_loop_del_fd(l->loop, c->fd);
    if (c->tls) {
        /* Best effort: a client that stopped reading does not get to block us. */
        if (!c->handshaking) {
            (void)sl_tls_shutdown(c->tls);
        }
        sl_tls_free(c->tls);
        c->tls = NULL;
    }
    close(c->fd);
    c->fd = -1;
    sl_lj_decoder_free(c->dec);
    c->dec = NULL;
    account_decoder(c);
    sl_buf_free(&c->out);
    window_free(c->cur);
    c->cur = NULL;
    /* Windows already answered can go; those in a pipeline are freed by their completion. */
    struct window *w = c->head;
    while (w) {
        struct window *next = w->next;
        if (w->done) {
            fifo_remove(c, w);
            window_free(w);
        }
        w = next;
    }
    list_del(&l->conns, c);
    l->favored_valid = false;
    if (c->npending > 0) {
        /* Kept where agg_listener_free can find it, should its windows never come back. */
        c->zombie = true;
        list_add(&l->zombies, c);
    }
    l->nconns--;
    sl_gauge_set(l->m_conns, (double)l->nconns);
    agg_clients_put(l->clients, c->client, sl_now_ms());
    c->client = NULL;
    sl_debug("%s: connection closed", c->peer);
    conn_unref(c);
}

static void count_error(struct agg_listener *l, enum reason r)
{
    if (!l->m_proto[r]) {
        const char *labels[] = {"reason", reason_names[r], NULL};
        l->m_proto[r] = sl_metrics_counter(l->metrics, "sluice_aggregator_protocol_errors_total",
                                           "Lumberjack protocol errors, by reason; each closed "
                                           "its connection.", labels);
    }
    sl_counter_inc(l->m_proto[r]);
}

/* Which cap a decoder SL_ELIMIT is about, from its message (lumberjack.c's wording). */
static enum reason limit_reason(const char *msg)
{
    if (strstr(msg, "max_window (")) {
        return R_WINDOW_EVENTS;
    }
    if (strstr(msg, "max_inflated")) {
        return R_INFLATED;
    }
    if (strstr(msg, "max_frame")) {
        return R_FRAME_BYTES;
    }
    return R_LIMIT;
}

SL_PRINTF(3, 4)
static void protocol_error(struct conn *c, enum reason r, const char *fmt, ...)
{
    struct agg_listener *l = c->l;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    count_error(l, r);
    sl_warn("%s: protocol error (%s): %s; closing the connection without ACK", c->peer,
            reason_names[r], msg);
    conn_close(c);
}

/* What a connection holds of the budget: its window being read and its decoder. */
static uint64_t conn_held(const struct conn *c)
{
    return (c->cur ? c->cur->charged : 0) + c->dec_charged;
}

/*
 * Over the budget with nothing in the pipeline, all of it is held by windows
 * and frames still being read, and no answer will ever give any back: the
 * connection holding the most may go on, until its window (or a piece of it)
 * goes to the pipeline. So the budget is passed by one piece at most.
 */
static bool may_overdraw(const struct conn *c)
{
    struct agg_listener *l = c->l;
    if (l->pending_windows > 0 || conn_held(c) == 0) {
        return false;
    }
    if (!l->favored_valid) {
        /* Once per change of the budget, not once per connection asking. */
        const struct conn *best = NULL;
        for (const struct conn *o = l->conns; o; o = o->next) {
            if (!best || conn_held(o) > conn_held(best)) {
                best = o;
            }
        }
        l->favored = best;
        l->favored_valid = true;
    }
    return l->favored == c;
}

static bool within_budget(const struct conn *c)
{
    struct agg_listener *l = c->l;
    if (l->pending_bytes + l->reserved_bytes < l->max_pending_bytes || may_overdraw(c)) {
        return true;
    }
    if (!l->budget_blocked) {
        l->budget_blocked = true;
        sl_counter_inc(l->m_budget_full);
    }
    return false;
}

static bool can_read(const struct conn *c)
{
    const struct agg_listener *l = c->l;
    return !c->closed && !c->eof && !l->draining && !c->unpacking &&
           c->npending < l->max_pending_windows &&
           l->pending_events < l->max_pending_events && within_budget(c);
}

/* Charges (or gives back) the change in what the decoder buffers. */
static void account_decoder(struct conn *c)
{
    uint64_t now = c->dec ? sl_lj_decoder_buffered(c->dec) : 0;
    if (now > c->dec_charged) {
        budget_charge(c->l, now - c->dec_charged);
    } else if (now < c->dec_charged) {
        budget_release(c->l, c->dec_charged - now);
    }
    c->dec_charged = now;
}

/* Closes a connection that has nothing left to say once its client is done or we stop. */
static void maybe_finish(struct conn *c)
{
    if (!c->closed && (c->eof || c->l->draining) && c->npending == 0 && !c->head &&
        c->out.len == 0) {
        conn_close(c);
    }
}

/* Writes ACKs through TLS; after SL_EAGAIN the same bytes are offered again (they only grow). */
static void conn_flush_tls(struct conn *c)
{
    while (!c->closed && !c->handshaking && c->out.len > 0) {
        ssize_t r = sl_tls_write(c->tls, c->out.data, c->out.len);
        if (r == SL_EAGAIN) {
            c->tls_wwant = sl_tls_want(c->tls);
            return;
        }
        c->tls_wwant = 0;
        if (r < 0) {
            sl_info("%s: TLS write failed: %s; closing the connection", c->peer,
                    sl_tls_error(c->tls));
            conn_close(c);
            return;
        }
        sl_buf_consume(&c->out, (size_t)r);
        c->last_io = c->last_write = sl_now_ms();
    }
}

static void conn_flush(struct conn *c)
{
    if (c->tls) {
        conn_flush_tls(c);
        return;
    }
    while (!c->closed && c->out.len > 0) {
        ssize_t r = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (r < 0) {
            sl_info("%s: write failed: %s; closing the connection", c->peer, strerror(errno));
            conn_close(c);
            return;
        }
        sl_buf_consume(&c->out, (size_t)r);
        c->last_io = c->last_write = sl_now_ms();
    }
}

static void queue_ack(struct conn *c, char version, uint32_t seq)
{
    if (sl_lj_put_ack(&c->out, version, seq) != 0) {
        protocol_error(c, R_ACK_BACKLOG, "%zu bytes of ACKs not read by the client",
                       c->out.len);
    }
}

/* Sends the ACKs of the windows at the head of the FIFO that are done, in order. */
static void flush_acks(struct conn *c)
{
    struct agg_listener *l = c->l;
    while (!c->closed && c->head && c->head->done) {
        struct window *w = c->head;
        c->head = w->next;
        if (!c->head) {
            c->tail = NULL;
        }
        if (w->status != SL_OK) {
            /* No ACK: closing makes the client resend the window (at least once). */
            sl_warn("%s: a window of %zu events was not delivered; closing the connection so "
                    "the client resends it", c->peer, w->in.batch.n);
            window_free(w);
            conn_close(c);
            return;
        }
        queue_ack(c, w->version, w->last_seq);
        sl_counter_add(l->m_acked, w->in.batch.n);
        agg_client_acked(c->client, w->in.batch.n);
        sl_gauge_set(l->m_last_ack, (double)sl_wall_ms() / 1000.0);
        window_free(w);
    }
    conn_flush(c);
}

static void kick_fire(struct sl_loop *loop, void *arg)
{
    struct agg_listener *l = arg;
    l->kick_timer = NULL;  /* one-shot: the loop frees it after this returns */
    struct conn *next;
    for (struct conn *c = l->conns; c; c = next) {
        conn_ref(c);
        if (c->kick && can_read(c)) {
            c->kick = false;
            if (c->dec) {
                conn_process(c);
            }
            if (c->tls && can_read(c) && sl_tls_pending(c->tls)) {
                conn_read(c);  /* epoll does not report bytes OpenSSL already decrypted */
            }
            conn_update(c);
        }
        next = c->next;  /* read after processing: c may have closed (it keeps next) */
        conn_unref(c);
    }
}

static void conn_resume(struct conn *c);

/* Budget given back: every connection may read again (can_read decides). */
static void resume_fire(struct sl_loop *loop, void *arg)
{
    struct agg_listener *l = arg;
    l->resume_timer = NULL;  /* one-shot: the loop frees it after this returns */
    for (struct conn *c = l->conns; c; c = c->next) {
        conn_resume(c);
    }
}

static void schedule_kick(struct conn *c)
{
    struct agg_listener *l = c->l;
    c->kick = true;
    if (!l->kick_timer) {
        l->kick_timer = sl_loop_timer(l->loop, 0, false, kick_fire, l);
    }
}

/* Re-arms reading when the connection may read again, and decodes what is buffered. */
static void conn_resume(struct conn *c)
{
    if (c->closed) {
        return;
    }
    conn_update(c);
    if (can_read(c) && ((c->dec && sl_lj_decoder_buffered(c->dec) > 0) ||
                        (c->tls && !c->handshaking && sl_tls_pending(c->tls)))) {
        schedule_kick(c);
    }
}

/* The pipeline's verdict on a window. */
static void window_done(void *arg, int status)
{
    struct window *w = arg;
    struct conn *c = w->c;
    struct agg_listener *l = c->l;
    size_t n = w->in.batch.n;
    bool was_blocked = l->pending_events >= l->max_pending_events;
    bool bad = w->in.bad_rc != 0;
    if (bad && !c->closed) {
        /* Before w is marked done: closing frees the done windows it finds. */
        protocol_error(c, w->in.bad_rc == SL_ELIMIT ? R_JSON_DEPTH : R_JSON, "event seq %u: %s",
                       w->seqs[w->in.bad_index], w->in.bad_why);
    }
    w->done = true;
    w->status = status;
    c->npending--;
    l->pending_windows--;
    l->pending_events -= n;
    if (!l->queue) {
        sl_gauge_add(l->m_queue, -(double)n);  /* the persisted queue keeps its own count */
    }
    if (status != SL_OK && !bad && !w->abandoned) {
        sl_counter_inc(l->m_failed);  /* an abandoned window was never to be delivered */
    }
    if (c->closed || w->abandoned) {
        fifo_remove(c, w);
        window_free(w);
    }
    if (!c->closed) {
        flush_acks(c);  /* frees w when it reaches the head */
        conn_resume(c);
        maybe_finish(c);
    }
    if (was_blocked && l->pending_events < l->max_pending_events) {
        for (struct conn *o = l->conns; o; o = o->next) {
            conn_resume(o);
        }
    }
    conn_unref(c);  /* the window's reference */
}

/* c->cur leaves the connection for the FIFO of windows awaiting their ACK. */
static struct window *window_take(struct conn *c)
{
    struct window *w = c->cur;
    c->cur = NULL;
    fifo_push(c, w);
    w->submit_ms = sl_now_ms();
    return w;
}

/* w goes to the pipeline (or the queue), counted as n events until it is done. */
static void window_in_flight(struct conn *c, struct window *w, uint64_t n)
{
    struct agg_listener *l = c->l;
    c->npending++;
    l->pending_windows++;
    l->pending_events += n;
    conn_ref(c);  /* the window's reference, dropped by window_done */
    w->in.raw = true;
    w->in.max_depth = (unsigned)l->max_json_depth;
}

static void submit_window(struct conn *c)
{
    struct agg_listener *l = c->l;
    struct window *w = window_take(c);
    if (w->in.batch.n == 0) {
        /* A window cut short before its first event: nothing to deliver, ACK 0. */
        w->done = true;
        w->status = SL_OK;
        flush_acks(c);
        return;
    }
    window_in_flight(c, w, w->in.batch.n);
    agg_client_received(c->client, w->in.batch.n);
    if (l->queue) {
        agg_queue_push(l->queue, &w->in, window_done, w);
        return;
    }
    sl_gauge_add(l->m_queue, (double)w->in.batch.n);
    agg_pipeline_submit(l->pipeline, &w->in, &c->order, window_done, w);
}

static void on_window(struct conn *c, const struct sl_lj_frame *f)
{
    sl_counter_inc(c->l->m_windows);
    if (c->cur && c->cur->continued && c->cur->in.batch.n == 0) {
        /* The rest of a window never came; its block was delivered and ACKed as a piece. */
        sl_warn("%s: new window before the previous one was complete (%u events missing)",
                c->peer, c->cur->expected);
        window_free(c->cur);
        c->cur = NULL;
    }
    if (c->cur) {
        /* What Logstash does: the partial window is a batch of its own, ACKed as such. */
        sl_warn("%s: new window before the previous one was complete (%zu of %u events); "
                "delivering the partial window", c->peer, c->cur->in.batch.n, c->cur->expected);
        submit_window(c);
        if (c->closed) {
            return;
        }
    }
    c->cur = window_new(c, f->version, f->value);
    if (f->value == 0) {
        /* W=0: an empty batch, answered with ACK 0 (in order behind pending windows). */
        submit_window(c);
    }
}

/*
 * A window over max_window_events events or max_window_bytes JSON bytes goes
 * to the pipeline in pieces: the piece so far is a batch of its own, ACKed
 * with the sequence number of its last event (a partial ACK, which Beats
 * clients take as progress), and the rest of the window continues in a new
 * piece. Memory stays bounded by the limits while Filebeat's bulk_max_size
 * and line sizes stay whatever Logstash accepts.
 */
/* Whether a text of len bytes must start a new piece of w rather than join it. */
static bool piece_full(const struct window *w, size_t len, uint64_t max_events,
                       uint64_t max_bytes)
{
    return w->in.batch.n > 0 && (w->in.batch.n >= max_events || w->bytes + len > max_bytes);
}

/*
 * Adds a J frame's text to w as it came (on the loop thread, or on a worker
 * that has the window to itself): parsing is the workers' job (pipeline.h),
 * and a text that is not a JSON object fails its window there (window_done).
 */
static void window_add_text(struct window *w, const struct sl_lj_frame *f)
{
    struct sl_value ev = {.type = SL_V_STRING, .flags = SL_VF_ARENA};
    ev.u.s.ptr = sl_arena_strndup(&w->arena, f->data, f->len);
    ev.u.s.len = f->len;
    w->bytes += f->len;
    window_push(w, &ev, f->value);
    w->last_seq = f->value;
}

static struct window *cut_piece(struct conn *c)
{
    struct window *w = c->cur;
    char version = w->version;
    uint32_t rest = w->expected - (uint32_t)w->in.batch.n;
    sl_debug("%s: window of %u events delivered in pieces (%zu events, %llu bytes)", c->peer,
             w->expected, w->in.batch.n, (unsigned long long)w->bytes);
    submit_window(c);
    if (c->closed) {
        return NULL;
    }
    c->cur = window_new(c, version, rest);
    return c->cur;  /* not empty for long: the frame that cut the piece goes into it */
}

static void on_json(struct conn *c, const struct sl_lj_frame *f)
{
    struct agg_listener *l = c->l;
    struct window *w = c->cur;
    if (!w) {
        protocol_error(c, R_UNEXPECTED, "data frame (seq %u) outside a window", f->value);
        return;
    }
    if (piece_full(w, f->len, l->max_window_events, l->max_window_bytes)) {
        w = cut_piece(c);
        if (!w) {
            return;
        }
    }
    w->charged += f->len;
    budget_charge(l, f->len);
    sl_counter_inc(l->m_received);
    window_add_text(w, f);
    if (w->in.batch.n == w->expected) {
        submit_window(c);
    }
}

/* ---- windows inflated by the workers ---- */

/*
 * A window whose events come in a C or Z block right after its W frame (as
 * Filebeat and the shipper send them) goes to the pipeline as that block: a
 * worker inflates it and copies its texts into the window (window_unpack), so
 * this thread only reads, frames and ACKs. How many events the block held
 * decides where the window ends, so the connection reads nothing more until
 * the worker's count is back (window_unpacked): fewer than announced and the
 * rest follows on the wire (the block's events are then a piece, ACKed as
 * such); more is the protocol error it always was; texts past
 * max_window_bytes, or none at all, send the block back to this connection's
 * decoder, which reads it here as before (and the connection stays on that
 * path). While a block is with a worker, the budget holds what it may
 * inflate to: a block is handed off only when that fits.
 */

/* A worker's decoder, kept for its thread's life (one zlib and zstd context each). */
struct unpacker {
    struct sl_lj_decoder *dec;
    struct sl_lj_limits lim;  /* dec's */
};

static pthread_key_t unpacker_key;
static pthread_once_t unpacker_once = PTHREAD_ONCE_INIT;

/* An unpacker keeps buffers up to about one window of this size between windows. */
#define UNPACKER_KEEP (4u * 1024 * 1024)

static void unpacker_free(void *arg)
{
    struct unpacker *u = arg;
    sl_lj_decoder_free(u->dec);
    free(u);
}

static void unpacker_key_make(void)
{
    if (pthread_key_create(&unpacker_key, unpacker_free) != 0) {
        sl_error("cannot create a thread key for the workers' decoders");
        abort();  /* as for memory: nothing sensible is left to do */
    }
}

static struct unpacker *unpacker_get(const struct sl_lj_limits *lim)
{
    pthread_once(&unpacker_once, unpacker_key_make);
    struct unpacker *u = pthread_getspecific(unpacker_key);
    if (!u) {
        u = sl_calloc(1, sizeof(*u));
        if (pthread_setspecific(unpacker_key, u) != 0) {
            sl_error("cannot keep a worker's decoder");
            abort();  /* only ENOMEM: as for memory */
        }
    }
    if (u->dec && (u->lim.max_window != lim->max_window || u->lim.max_frame != lim->max_frame ||
                   u->lim.max_inflated != lim->max_inflated)) {
        sl_lj_decoder_free(u->dec);  /* a reload changed the limits */
        u->dec = NULL;
    }
    if (!u->dec) {
        u->dec = sl_lj_decoder_new(lim);
        u->lim = *lim;
    }
    return u;
}

SL_PRINTF(4, 5)
static int unpack_error(struct window *w, int rc, enum reason r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->why, sizeof(w->why), fmt, ap);
    va_end(ap);
    w->why_reason = r;
    return rc;
}

/* Frames the block read from the wire, as on_json would (runs on a worker). */
static int unpack_frames(struct window *w, struct sl_lj_decoder *d)
{
    struct sl_lj_frame f;
    int rc;
    while ((rc = sl_lj_decoder_next(d, &f)) > 0) {
        if (w->in.batch.n == w->expected) {
            return unpack_error(w, SL_EPROTO, R_UNEXPECTED, "data frame (seq %u) outside a window",
                                f.value);
        }
        if (piece_full(w, f.len, w->expected, w->limits.max_inflated)) {
            return SL_EAGAIN;  /* pieces: the connection's decoder cuts them */
        }
        window_add_text(w, &f);
    }
    if (rc < 0) {
        const char *msg = sl_lj_decoder_error(d);
        return unpack_error(w, rc, rc == SL_ELIMIT ? limit_reason(msg) : R_FRAME, "%s", msg);
    }
    return w->in.batch.n > 0 ? SL_OK : SL_EAGAIN;
}

/* agg_unpack_fn: on a worker, with the window to itself until window_unpacked. */
static int window_unpack(void *arg)
{
    struct window *w = arg;
    struct unpacker *u = unpacker_get(&w->limits);
    int rc = sl_lj_decoder_open_block(u->dec, w->block_type, w->block, w->block_len);
    if (rc == 0) {
        rc = unpack_frames(w, u->dec);
    } else {
        rc = unpack_error(w, rc, R_FRAME, "%s", sl_lj_decoder_error(u->dec));
    }
    if (rc != SL_OK) {
        sl_lj_decoder_free(u->dec);  /* failed, or left inside the block */
        u->dec = NULL;
    } else if (w->bytes > UNPACKER_KEEP) {
        sl_lj_decoder_trim(u->dec);
    }
    return rc;
}

/* The block goes back to the connection's decoder, which reads it as if it had just come. */
static void unpack_fall_back(struct conn *c, struct window *w)
{
    fifo_remove(c, w);  /* the tail: nothing was read after it */
    c->no_handoff = true;
    c->cur = window_new(c, w->version, w->expected);
    c->cur->continued = w->continued;
    if (!c->dec) {
        c->dec = sl_lj_decoder_new(&c->l->limits);
    }
    if (sl_lj_decoder_open_block(c->dec, w->block_type, w->block, w->block_len) != 0) {
        protocol_error(c, R_FRAME, "%s", sl_lj_decoder_error(c->dec));
        return;
    }
    schedule_kick(c);  /* nothing is inflated yet: the decoder reports nothing buffered */
}

/* agg_unpacked_fn: on the loop thread, with the worker's verdict on the block. */
static bool window_unpacked(void *arg, int rc)
{
    struct window *w = arg;
    struct conn *c = w->c;
    struct agg_listener *l = c->l;
    bool was_blocked = l->pending_events >= l->max_pending_events;
    size_t n = rc == SL_OK ? w->in.batch.n : 0;
    l->reserved_bytes -= w->reserved;
    w->reserved = 0;
    budget_maybe_resume(l);
    l->pending_events -= w->expected - n;
    bool go = rc == SL_OK && !c->closed;
    if (go) {
        w->charged += w->bytes;
        budget_charge(l, w->bytes);
        sl_counter_inc(l->m_unpacked);
        sl_counter_add(l->m_received, n);
        sl_gauge_add(l->m_queue, (double)n);
        agg_client_received(c->client, n);
        if (n < w->expected) {
            /* The rest follows on the wire; this much is a piece of its own. */
            c->cur = window_new(c, w->version, w->expected - (uint32_t)n);
            c->cur->continued = true;
        }
    } else {
        w->abandoned = true;
        w->in.batch.n = 0;  /* arena texts: nothing to clear */
        if (c->closed) {
            /* Nothing more to do: the connection's end freed the rest. */
        } else if (rc == SL_EAGAIN) {
            unpack_fall_back(c, w);
        } else {
            protocol_error(c, w->why_reason, "%s", w->why);
        }
    }
    c->unpacking = NULL;  /* it was w, or NULL once closed */
    if (!c->closed) {
        conn_resume(c);
    }
    if (was_blocked && l->pending_events < l->max_pending_events) {
        for (struct conn *o = l->conns; o; o = o->next) {
            conn_resume(o);
        }
    }
    return go;
}

/*
 * The window being read may go to a worker as a block, should one come next.
 * Not while the workers have more queued than they can take: then they are the
 * bottleneck and this thread, on a core of its own, inflates for free.
 */
static bool may_hand_off(const struct conn *c)
{
    const struct agg_listener *l = c->l;
    return c->cur && c->cur->in.batch.n == 0 && !c->no_handoff && !l->queue &&
           c->cur->expected <= l->max_window_events && !agg_pipeline_saturated(l->pipeline);
}

/* A C or Z block kept whole: to a worker when the budget holds what it may become. */
static void on_block(struct conn *c, const struct sl_lj_frame *f)
{
    struct agg_listener *l = c->l;
    uint64_t most = SL_MIN(sl_lj_block_content_size(f->type, f->data, f->len),
                           l->max_window_bytes);
    if (l->pending_bytes + l->reserved_bytes + f->len + most > l->max_pending_bytes) {
        if (sl_lj_decoder_open_block(c->dec, f->type, f->data, f->len) != 0) {
            protocol_error(c, R_FRAME, "%s", sl_lj_decoder_error(c->dec));
        }
        return;  /* read here, against the budget as it goes */
    }
    struct window *w = window_take(c);
    w->block_type = f->type;
    char *block = sl_arena_alloc(&w->arena, f->len);
    memcpy(block, f->data, f->len);
    w->block = block;
    w->block_len = (uint32_t)f->len;
    w->charged += f->len;
    budget_charge(l, f->len);
    w->reserved = most;
    l->reserved_bytes += most;
    w->limits = l->limits;
    window_in_flight(c, w, w->expected);  /* the announced count, until the block's is known */
    w->in.unpack = window_unpack;
    w->in.unpacked = window_unpacked;
    c->unpacking = w;
    agg_pipeline_submit(l->pipeline, &w->in, &c->order, window_done, w);
}

static void conn_decode(struct conn *c);

/* Decodes buffered frames while the connection may take more. */
static void conn_process(struct conn *c)
{
    conn_decode(c);
    if (!c->closed) {
        account_decoder(c);
    }
}

static void conn_decode(struct conn *c)
{
    while (can_read(c)) {
        struct sl_lj_frame f;
        sl_lj_decoder_keep_blocks(c->dec, may_hand_off(c));
        int rc = sl_lj_decoder_next(c->dec, &f);
        if (rc == 0) {
            return;
        }
        if (rc < 0) {
            const char *msg = sl_lj_decoder_error(c->dec);
            protocol_error(c, rc == SL_ELIMIT ? limit_reason(msg) : R_FRAME, "%s", msg);
            return;
        }
        if (f.type == SL_LJ_WINDOW) {
            on_window(c, &f);
        } else if (f.type == SL_LJ_JSON) {
            on_json(c, &f);
        } else {
            on_block(c, &f);
        }
    }
}

/* recv(2) or sl_tls_read: > 0 bytes, 0 at the end of the stream, SL_EAGAIN, or < 0 (logged). */
static ssize_t conn_recv(struct conn *c, void *buf, size_t n)
{
    if (c->tls) {
        c->tls_rwant = 0;
        ssize_t r = sl_tls_read(c->tls, buf, n);
        if (r == SL_EAGAIN) {
            c->tls_rwant = sl_tls_want(c->tls);
        } else if (r == SL_ECLOSED) {
            /* TCP FIN without close_notify: as with plaintext, the client may
             * still read the ACKs of what it sent. */
            r = 0;
        } else if (r < 0) {
            sl_info("%s: TLS read failed: %s; closing the connection", c->peer,
                    sl_tls_error(c->tls));
        }
        return r;
    }
    for (;;) {
        ssize_t r = recv(c->fd, buf, n, 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return SL_EAGAIN;
        }
        if (r < 0) {
            sl_info("%s: read failed: %s; closing the connection", c->peer, strerror(errno));
            return SL_EIO;
        }
        return r;
    }
}

static void conn_read(struct conn *c)
{
    char buf[READ_CHUNK];
    struct agg_listener *l = c->l;
    size_t feed_max = (size_t)l->limits.max_frame + 16;
    if (!c->dec) {
        c->dec = sl_lj_decoder_new(&l->limits);
    }
    for (int i = 0; i < READS_PER_WAKE && can_read(c); i++) {
        /* Only raw input counts against the feed limit; inflated frames still
         * waiting inside the decoder are bounded by max_inflated instead. */
        size_t buffered = sl_lj_decoder_input(c->dec);
        size_t want = buffered < feed_max ? SL_MIN(sizeof(buf), feed_max - buffered) : 0;
        if (want == 0) {
            /* Cannot happen with a decoder that returns every whole frame. */
            protocol_error(c, R_FRAME_BYTES, "decoder holds %zu bytes without a whole frame",
                           buffered);
            return;
        }
        ssize_t r = conn_recv(c, buf, want);
        if (r == SL_EAGAIN) {
            return;
        }
        if (r < 0) {
            conn_close(c);
            return;
        }
        if (r == 0) {
            /* The client is done sending; windows it waits for still get their ACK. */
            sl_debug("%s: end of stream", c->peer);
            c->eof = true;
            window_free(c->cur);
            c->cur = NULL;
            maybe_finish(c);
            return;
        }
        c->last_io = sl_now_ms();
        int rc = sl_lj_decoder_feed(c->dec, buf, (size_t)r);
        if (rc < 0) {
            const char *msg = sl_lj_decoder_error(c->dec);
            protocol_error(c, limit_reason(msg), "%s", msg);
            return;
        }
        account_decoder(c);
        conn_process(c);
        if (!c->tls && (size_t)r < want) {
            return;  /* the socket is drained (a short TLS read only ends a record) */
        }
    }
    if (c->tls && can_read(c) && sl_tls_pending(c->tls)) {
        schedule_kick(c);  /* out of turns with plaintext left inside OpenSSL */
    }
}

/* Advances the TLS handshake; logs who connected once it is done. */
static void conn_handshake(struct conn *c)
{
    int rc = sl_tls_handshake(c->tls);
    if (rc == SL_EAGAIN) {
        c->tls_rwant = sl_tls_want(c->tls);
        return;
    }
    if (rc == SL_ECLOSED) {
        /* Connect-and-close (a load balancer's health check) is not an attack. */
        sl_debug("%s: closed during the TLS handshake: %s", c->peer, sl_tls_error(c->tls));
        conn_close(c);
        return;
    }
    if (rc < 0) {
        protocol_error(c, R_TLS, "TLS handshake failed: %s", sl_tls_error(c->tls));
        return;
    }
    c->handshaking = false;
    c->tls_rwant = 0;
    c->last_io = sl_now_ms();
    const char *subject = sl_tls_peer_subject(c->tls);
    sl_info("%s: TLS established (%s, %s), client certificate: %s", c->peer,
            sl_tls_protocol(c->tls), sl_tls_cipher(c->tls), subject ? subject : "none");
    char cn[256];
    c->client = agg_clients_get(c->l->clients,
                                sl_tls_peer_cn(c->tls, cn, sizeof(cn)) ? cn : c->ip);
}

/* Sets the fd's interest from the connection's state; starts or stops the frame clock. */
static void conn_update(struct conn *c)
{
    if (c->closed) {
        return;
    }
    bool readable = can_read(c);
    unsigned want;
    if (c->tls && c->handshaking) {
        want = c->tls_rwant ? c->tls_rwant : SL_READ;
    } else if (c->tls) {
        want = (readable ? (c->tls_rwant ? c->tls_rwant : SL_READ) : 0) |
               (c->out.len ? (c->tls_wwant ? c->tls_wwant : SL_WRITE) : 0);
    } else {
        want = (readable ? SL_READ : 0) | (c->out.len ? SL_WRITE : 0);
    }
    if (want != c->interest && sl_loop_mod_fd(c->l->loop, c->fd, want) == 0) {
        c->interest = want;
    }
    /* frame_timeout measures the client, not us: time spent paused by
     * backpressure does not count, the clock restarts on resume. */
    uint64_t now = sl_now_ms();
    bool busy = c->cur || (c->dec && sl_lj_decoder_buffered(c->dec) > 0);
    if (!busy) {
        c->busy_since = 0;
    } else if (!c->busy_since || (c->paused && readable)) {
        c->busy_since = now;
    }
    c->paused = !readable;
}

static void on_conn_io(struct sl_loop *loop, int fd, unsigned events, void *arg)
{
    struct conn *c = arg;
    conn_ref(c);
    if (c->tls) {
        /* Either readiness may be what a TLS read or write waits for: try both. */
        if (c->handshaking) {
            conn_handshake(c);
        }
        if (!c->closed && !c->handshaking) {
            conn_flush(c);
            if (can_read(c)) {
                conn_read(c);
                events |= SL_READ;  /* the read saw any reset */
            }
        }
        if (c->handshaking) {
            events |= SL_READ;
        }
    } else {
        if (events & SL_WRITE) {
            conn_flush(c);
        }
        if ((events & SL_READ) && can_read(c)) {
            conn_read(c);
        }
    }
    if (!(events & SL_READ) && (events & SL_HUP) && !c->closed) {
        /* Reset or error with no read interest: nothing more can be said on it. */
        sl_info("%s: connection reset; closing it", c->peer);
        conn_close(c);
    }
    maybe_finish(c);
    conn_update(c);
    conn_unref(c);
}

/* "ip:port" (or "[ip6]:port") into out, for messages; the address alone into ip
 * (INET6_ADDRSTRLEN bytes), an IPv4-mapped IPv6 address as plain IPv4. */
static void peer_name(int fd, char *out, size_t outlen, char *ip)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int port = 0;
    snprintf(ip, INET6_ADDRSTRLEN, "?");
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, ip, INET6_ADDRSTRLEN);
            port = ntohs(s4->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            port = ntohs(s6->sin6_port);
            if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
                inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], ip, INET6_ADDRSTRLEN);
            } else {
                inet_ntop(AF_INET6, &s6->sin6_addr, ip, INET6_ADDRSTRLEN);
                snprintf(out, outlen, "[%s]:%d", ip, port);
                return;
            }
        }
    }
    snprintf(out, outlen, "%s:%d", ip, port);
}

static void conn_new(struct agg_listener *l, int fd)
{
    struct conn *c = sl_calloc(1, sizeof(*c));
    c->l = l;
    c->fd = fd;
    c->refs = 1;
    peer_name(fd, c->peer, sizeof(c->peer), c->ip);
    sl_buf_init(&c->out, OUT_MAX);  /* allocates nothing until the first ACK */
    c->accepted_ms = c->last_io = c->last_write = sl_now_ms();
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  /* ACKs are tiny and urgent */
    if (l->tls_ctx) {
        char err[256];
        c->tls = sl_tls_new(l->tls_ctx, fd, NULL, err, sizeof(err));
        if (!c->tls) {
            sl_error("%s: %s; closing the connection", c->peer, err);
            close(fd);
            free(c);
            return;
        }
        c->handshaking = true;
    }
    if (sl_loop_add_fd(l->loop, fd, SL_READ, on_conn_io, c) != 0) {
        sl_tls_free(c->tls);
        close(fd);
        free(c);
        return;
    }
    c->interest = SL_READ;
    if (!c->tls) {
        c->client = agg_clients_get(l->clients, c->ip);  /* with TLS: once it has a CN */
    }
    list_add(&l->conns, c);
    l->nconns++;
    sl_gauge_set(l->m_conns, (double)l->nconns);
    sl_debug("%s: connection accepted", c->peer);
}

static void accept_resume(struct sl_loop *loop, void *arg)
{
    struct agg_listener *l = arg;
    l->accept_timer = NULL;
    if (l->fd >= 0) {
        sl_loop_mod_fd(loop, l->fd, SL_READ);
    }
}

static void on_accept(struct sl_loop *loop, int fd, unsigned events, void *arg)
{
    struct agg_listener *l = arg;
    for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                sl_error("accept: %s; pausing accepts for %d ms", strerror(errno),
                         ACCEPT_PAUSE_MS);
                sl_loop_mod_fd(loop, fd, 0);
                if (!l->accept_timer) {
                    l->accept_timer = sl_loop_timer(loop, ACCEPT_PAUSE_MS, false,
                                                    accept_resume, l);
                }
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                sl_error("accept: %s", strerror(errno));
            }
            return;
        }
        if ((int64_t)l->nconns >= l->max_connections) {
            char peer[INET6_ADDRSTRLEN + 8], ip[INET6_ADDRSTRLEN];
            peer_name(cfd, peer, sizeof(peer), ip);
            sl_warn("%s: refused: max_connections (%lld) reached", peer,
                    (long long)l->max_connections);
            sl_counter_inc(l->m_rejected);
            count_error(l, R_MAX_CONN);
            close(cfd);
            continue;
        }
        conn_new(l, cfd);
    }
}

/* Keepalives for connections waiting on the pipeline; idle connections closed. */
static void on_tick(struct sl_loop *loop, void *arg)
{
    struct agg_listener *l = arg;
    uint64_t now = sl_now_ms();
    agg_clients_sweep(l->clients, now);
    struct conn *next;
    for (struct conn *c = l->conns; c; c = next) {
        next = c->next;
        if (c->handshaking) {
            if (now - c->accepted_ms >= l->handshake_ms) {
                protocol_error(c, R_TLS_TIMEOUT, "no TLS handshake within %llu ms "
                               "(ssl.handshake_timeout)", (unsigned long long)l->handshake_ms);
            }
            continue;
        }
        if (l->frame_timeout_ms && c->busy_since && can_read(c) &&
            now - c->busy_since >= l->frame_timeout_ms) {
            protocol_error(c, R_FRAME_TIMEOUT, "a %s started %llu ms ago is still incomplete "
                           "(frame_timeout %llu ms)", c->cur ? "window" : "frame",
                           (unsigned long long)(now - c->busy_since),
                           (unsigned long long)l->frame_timeout_ms);
            continue;
        }
        if (c->dec && !c->cur && !c->unpacking && sl_lj_decoder_buffered(c->dec) == 0 &&
            now - c->last_io >= IDLE_RELEASE_MS) {
            /* Between windows a decoder holds only buffers that may have grown to a
             * whole inflated window: an idle connection gives them back. An open
             * `S` stream is state the next window continues: keep that, trim the rest. */
            if (sl_lj_decoder_stream_open(c->dec)) {
                sl_lj_decoder_trim(c->dec);
            } else {
                sl_lj_decoder_free(c->dec);
                c->dec = NULL;
            }
            account_decoder(c);
        }
        if (c->out.len == 0 && c->out.cap > 0 && now - c->last_io >= IDLE_RELEASE_MS) {
            sl_buf_free(&c->out);
            sl_buf_init(&c->out, OUT_MAX);
        }
        if (c->npending > 0 && c->out.len == 0) {
            uint64_t since = SL_MAX(c->last_write, c->head ? c->head->submit_ms : 0);
            if (now - since >= l->keepalive_ms) {
                /* ACK 0 only resets the client's timeout (docs/protocol.md §2). */
                queue_ack(c, c->head ? c->head->version : SL_LJ_V2, 0);
                conn_ref(c);
                conn_flush(c);
                conn_update(c);
                conn_unref(c);
            }
        } else if (l->inactivity_ms && c->npending == 0 && !c->head &&
                   now - c->last_io >= l->inactivity_ms) {
            sl_info("%s: no traffic for %llu ms (client_inactivity_timeout); closing", c->peer,
                    (unsigned long long)(now - c->last_io));
            conn_close(c);
        }
    }
}

static uint64_t tick_ms(const struct agg_listener *l)
{
    uint64_t t = 1000;
    t = SL_MIN(t, l->keepalive_ms / 2);
    if (l->inactivity_ms) {
        t = SL_MIN(t, l->inactivity_ms / 4);
    }
    if (l->frame_timeout_ms) {
        t = SL_MIN(t, l->frame_timeout_ms / 4);
    }
    if (l->tls_ctx) {
        t = SL_MIN(t, l->handshake_ms / 4);
    }
    return SL_MAX(t, (uint64_t)20);
}

/* Builds, reloads or drops the TLS context for input.ssl. */
static void apply_tls(struct agg_listener *l, const struct agg_conf *conf)
{
    char err[512];
    struct sl_tls_opts o;
    l->handshake_ms = conf->ssl.handshake_timeout_ms;
    if (!conf->ssl.enabled) {
        if (l->tls_ctx) {
            sl_warn("input.ssl disabled: new connections are plaintext (open ones keep TLS)");
            sl_tls_ctx_free(l->tls_ctx);
            l->tls_ctx = NULL;
        }
        return;
    }
    agg_conf_tls_opts(conf, &o);
    if (!l->tls_ctx) {
        l->tls_ctx = sl_tls_server_ctx(&o, err, sizeof(err));
        if (!l->tls_ctx) {
            sl_error("input.ssl: %s", err);
        }
        return;
    }
    /* The certbot case: renewed files, same paths. Open connections keep theirs. */
    if (sl_tls_ctx_reload(l->tls_ctx, &o, err, sizeof(err)) != 0) {
        sl_error("input.ssl: cannot reload the certificates (%s); keeping the previous ones",
                 err);
    } else {
        sl_info("input.ssl: certificates reloaded; new connections use them");
    }
}

void agg_listener_apply(struct agg_listener *l, const struct agg_conf *conf)
{
    apply_tls(l, conf);
    l->max_connections = conf->max_connections;
    l->inactivity_ms = conf->client_inactivity_ms;
    l->keepalive_ms = conf->keepalive_ms;
    l->max_pending_windows = (size_t)conf->max_pending_windows;
    l->max_pending_events = (uint64_t)conf->max_pending_events;
    l->max_pending_bytes = conf->max_pending_bytes ? conf->max_pending_bytes : UINT64_MAX;
    sl_gauge_set(l->m_max_pending_bytes, (double)l->max_pending_bytes);
    l->max_window_bytes = conf->max_window_bytes;
    l->frame_timeout_ms = conf->frame_timeout_ms;
    l->max_json_depth = (int)conf->max_json_depth;
    agg_clients_limits(l->clients, (size_t)conf->client_metrics_max,
                       conf->client_metrics_forget_ms);
    /* Decoder limits apply to decoders created from now on (a connection's first
     * bytes, or its first bytes after an idle period). */
    l->max_window_events = conf->max_window_events;
    /* Any announced size: a window larger than max_window_events (or
     * max_window_bytes) is delivered and ACKed in pieces, not refused. */
    l->limits.max_window = UINT32_MAX;
    l->limits.max_frame = (uint32_t)SL_MIN(conf->max_frame_bytes, (uint64_t)UINT32_MAX - 64);
    l->limits.max_inflated = conf->max_window_bytes;
    if (l->tick) {
        sl_timer_reset(l->tick, tick_ms(l));
    }
    for (struct conn *c = l->conns; c; c = c->next) {
        conn_resume(c);  /* the pending limits may have grown */
    }
}

struct agg_listener *agg_listener_new(struct sl_loop *loop, const struct agg_conf *conf,
                                      struct sl_metrics *metrics, struct agg_pipeline *pipeline)
{
    int fd = sl_net_listen(conf->listen, 1024);
    if (fd < 0) {
        return NULL;  /* sl_net_listen logged why */
    }
    struct agg_listener *l = sl_calloc(1, sizeof(*l));
    l->loop = loop;
    l->fd = fd;
    l->port = sl_net_local_port(fd);
    l->pipeline = pipeline;
    l->metrics = metrics;
    l->clients = agg_clients_new(metrics);
    l->m_conns = sl_metrics_gauge(metrics, "sluice_aggregator_connections",
                                  "Open Lumberjack connections.", NULL);
    l->m_rejected = sl_metrics_counter(metrics, "sluice_aggregator_connections_rejected_total",
                                       "Connections closed at once: max_connections reached.",
                                       NULL);
    l->m_received = sl_metrics_counter(metrics, "sluice_aggregator_events_received_total",
                                       "Events decoded from Lumberjack windows.", NULL);
    l->m_last_ack = sl_metrics_gauge(metrics, "sluice_aggregator_last_ack_timestamp_seconds",
                                     "When a window was last ACKed (Unix time; 0: never).",
                                     NULL);
    l->m_acked = sl_metrics_counter(metrics, "sluice_aggregator_events_acked_total",
                                    "Events acknowledged to clients after every output took them.",
                                    NULL);
    l->m_windows = sl_metrics_counter(metrics, "sluice_aggregator_windows_total",
                                      "Lumberjack windows (W frames) received.", NULL);
    l->m_unpacked = sl_metrics_counter(metrics, "sluice_aggregator_blocks_worker_inflated_total",
                                       "Compressed blocks (C, Z) inflated on a pipeline worker "
                                       "instead of the I/O thread.", NULL);
    l->m_queue = sl_metrics_gauge(metrics, "sluice_aggregator_queue_events",
                                  "Events inside the pipeline, not yet acknowledged.", NULL);
    l->m_failed = sl_metrics_counter(metrics, "sluice_aggregator_windows_failed_total",
                                     "Windows an output did not accept (not ACKed; the client "
                                     "resends them).", NULL);
    l->m_pending_bytes = sl_metrics_gauge(metrics, "sluice_aggregator_pending_bytes",
                                          AGG_PENDING_BYTES_HELP, NULL);
    l->m_max_pending_bytes = sl_metrics_gauge(metrics, "sluice_aggregator_max_pending_bytes",
                                              "pipeline.max_pending_bytes: reading stops at it.",
                                              NULL);
    l->m_budget_full = sl_metrics_counter(metrics, "sluice_aggregator_pending_bytes_full_total",
                                          "Times reading stopped because "
                                          "pipeline.max_pending_bytes was reached.", NULL);
    agg_listener_apply(l, conf);
    if ((conf->ssl.enabled && !l->tls_ctx) ||
        sl_loop_add_fd(loop, fd, SL_READ, on_accept, l) != 0) {
        sl_tls_ctx_free(l->tls_ctx);
        agg_clients_free(l->clients);
        close(fd);
        free(l);
        return NULL;
    }
    l->tick = sl_loop_timer(loop, tick_ms(l), true, on_tick, l);
    return l;
}

int agg_listener_port(const struct agg_listener *l)
{
    return l->port;
}

void agg_listener_set_pipeline(struct agg_listener *l, struct agg_pipeline *p)
{
    l->pipeline = p;
}

void agg_listener_set_queue(struct agg_listener *l, struct agg_queue *q)
{
    l->queue = q;
}

void agg_listener_drain(struct agg_listener *l)
{
    if (l->draining) {
        return;
    }
    l->draining = true;
    if (l->fd >= 0) {
        sl_loop_del_fd(l->loop, l->fd);
        close(l->fd);
        l->fd = -1;
    }
    struct conn *next;
    for (struct conn *c = l->conns; c; c = next) {
        next = c->next;
        /* A window not complete is not delivered: the client resends it elsewhere. */
        window_free(c->cur);
        c->cur = NULL;
        conn_update(c);
        maybe_finish(c);
    }
}

size_t agg_listener_pending(const struct agg_listener *l)
{
    return l->pending_windows;
}

static void oldest_in(const struct conn *list, bool *found, uint64_t *oldest)
{
    for (const struct conn *c = list; c; c = c->next) {
        for (const struct window *w = c->head; w; w = w->next) {
            if (!w->done && (!*found || w->submit_ms < *oldest)) {
                *oldest = w->submit_ms;
                *found = true;
            }
        }
    }
}

bool agg_listener_oldest_pending(const struct agg_listener *l, uint64_t *submit_ms)
{
    bool found = false;
    uint64_t oldest = 0;
    if (l->pending_windows > 0) {
        oldest_in(l->conns, &found, &oldest);
        oldest_in(l->zombies, &found, &oldest);
    }
    if (found && submit_ms) {
        *submit_ms = oldest;
    }
    return found;
}

bool agg_listener_accepting(const struct agg_listener *l)
{
    return !l->draining && l->fd >= 0;
}

bool agg_listener_drained(const struct agg_listener *l)
{
    return l->draining && l->nconns == 0;
}

void agg_listener_free(struct agg_listener *l)
{
    if (!l) {
        return;
    }
    /* Windows still pending belong to pipelines already freed (which dropped their jobs
     * without completing them): nothing will answer them, so they are freed here. */
    while (l->conns || l->zombies) {
        struct conn *c = l->conns ? l->conns : l->zombies;
        conn_ref(c);
        conn_close(c);
        struct window *w = c->head;
        int orphans = 0;
        while (w) {
            struct window *next = w->next;
            orphans += !w->done;
            window_free(w);
            w = next;
        }
        c->head = c->tail = NULL;
        c->npending = 0;
        if (c->zombie) {
            c->zombie = false;
            list_del(&l->zombies, c);
        }
        c->refs -= orphans;
        conn_unref(c);
    }
    if (l->fd >= 0) {
        sl_loop_del_fd(l->loop, l->fd);
        close(l->fd);
    }
    sl_timer_cancel(l->tick);
    sl_timer_cancel(l->kick_timer);
    sl_timer_cancel(l->accept_timer);
    sl_timer_cancel(l->resume_timer);
    sl_tls_ctx_free(l->tls_ctx);
    agg_clients_free(l->clients);
    free(l);
}
