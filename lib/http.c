/*
 * http.c - the tiny HTTP/1.1 server behind GET /metrics and GET /healthz.
 *
 * One request per connection: read until the end of the headers (at most
 * HTTP_MAX_REQUEST bytes), answer with Content-Length and Connection: close,
 * then shut down the write side and drain what the client still sends until it
 * closes. Closing with unread bytes in the socket would make the kernel send a
 * reset that can destroy the response before the client reads it (a request
 * with a body, an oversize request), hence the drain ("lingering close", as in
 * nginx).
 *
 * Slow and idle clients must not starve the probes. Every connection carries
 * one timer: a request (at most 8 KiB) must be complete within
 * HTTP_HEADER_TIMEOUT_MS of the accept, the response sent within
 * HTTP_WRITE_TIMEOUT_MS, the drain done within HTTP_LINGER_MS. At most
 * HTTP_MAX_CONNS connections are open (each holds at most 8 KiB of request
 * plus the response it is sending); a connection accepted at the cap is not
 * refused: the oldest connection that is lingering, or else still sending its
 * request, is closed to make room (a well-behaved client sends its request at
 * once, so it is the newest, never the oldest of those).
 *
 * Routes: /metrics, /healthz and, once sl_http_set_ready() gave it a callback,
 * /readyz. Not here: keep-alive, chunked encoding, request bodies, TLS.
 */
#include "sluice/http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/log.h"
#include "sluice/net.h"

#define HTTP_MAX_REQUEST 8192       /* request line + headers */
#define HTTP_MAX_CONNS 512
#define HTTP_HEADER_TIMEOUT_MS 2000 /* from accept to a complete request */
#define HTTP_WRITE_TIMEOUT_MS 10000 /* from the request to the response sent */
#define HTTP_LINGER_MS 2000         /* draining after the response */
#define HTTP_MAX_DRAIN (64 * 1024)
#define HTTP_MAX_HEALTH_BODY 4096
#define HTTP_ACCEPT_PAUSE_MS 100    /* after EMFILE and friends */
#define HTTP_ACCEPT_BATCH 64        /* accepts per readiness event */

static const char text_plain[] = "text/plain; charset=utf-8";
static const char prom_text[] = "text/plain; version=0.0.4; charset=utf-8";

enum conn_state { C_READ, C_WRITE, C_LINGER };

struct conn {
    struct sl_http *h;
    int fd;
    enum conn_state state;
    struct sl_buf in;        /* the request, bounded by HTTP_MAX_REQUEST */
    struct sl_buf out;       /* the whole response */
    size_t sent;
    size_t drained;
    struct sl_timer *timer;  /* owned by the loop; NULL once it has fired */
    uint64_t seq;            /* accept order: smaller is older */
    struct conn *prev, *next;
};

struct sl_http {
    struct sl_loop *loop;
    int fd;
    int port;
    struct sl_metrics *reg;
    sl_health_cb health;
    void *arg;
    sl_health_cb ready;      /* NULL: no /readyz (404) */
    void *ready_arg;
    struct conn *conns;      /* newest first */
    size_t nconns;
    size_t max_conns;
    uint64_t header_timeout_ms;
    uint64_t next_seq;
    uint64_t evicted;        /* connections closed to make room (tests, debug) */
    struct sl_timer *accept_timer;  /* set while accepting is paused */
};

static void conn_close(struct conn *c)
{
    struct sl_http *h = c->h;
    sl_loop_del_fd(h->loop, c->fd);
    close(c->fd);
    sl_timer_cancel(c->timer);
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        h->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    h->nconns--;
    sl_buf_free(&c->in);
    sl_buf_free(&c->out);
    free(c);
}

static void on_timeout(struct sl_loop *loop, void *arg)
{
    struct conn *c = arg;
    c->timer = NULL;  /* the loop frees a one-shot timer after this returns */
    sl_debug("http: fd %d timed out", c->fd);
    conn_close(c);
}

/* Reads and discards until the client closes. */
static void conn_drain(struct conn *c)
{
    char tmp[4096];
    for (;;) {
        ssize_t n = read(c->fd, tmp, sizeof(tmp));
        if (n > 0) {
            c->drained += (size_t)n;
            if (c->drained > HTTP_MAX_DRAIN) {
                conn_close(c);
                return;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        conn_close(c);  /* EOF or error */
        return;
    }
}

static void conn_flush(struct conn *c)
{
    while (c->sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->sent, c->out.len - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            sl_loop_mod_fd(c->h->loop, c->fd, SL_WRITE);
            return;
        }
        sl_debug("http: fd %d: send: %s", c->fd, strerror(errno));
        conn_close(c);
        return;
    }
    sl_buf_free(&c->out);
    shutdown(c->fd, SHUT_WR);
    c->state = C_LINGER;
    sl_loop_mod_fd(c->h->loop, c->fd, SL_READ);
    sl_timer_reset(c->timer, HTTP_LINGER_MS);
    conn_drain(c);
}

static void respond(struct conn *c, int status, const char *reason, const char *type,
                    const char *extra_headers, const char *body, size_t len, bool head)
{
    sl_buf_printf(&c->out,
                  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                  "Connection: close\r\n\r\n",
                  status, reason, type, len, extra_headers ? extra_headers : "");
    if (!head) {
        sl_buf_append(&c->out, body, len);
    }
    c->state = C_WRITE;
    sl_timer_reset(c->timer, HTTP_WRITE_TIMEOUT_MS);
    conn_flush(c);
}

static void respond_text(struct conn *c, int status, const char *reason, const char *body,
                         bool head)
{
    respond(c, status, reason, text_plain, NULL, body, strlen(body), head);
}

static void serve_metrics(struct conn *c, bool head)
{
    struct sl_buf body;
    sl_buf_init(&body, 0);
    if (sl_metrics_render(c->h->reg, &body) != 0) {
        respond_text(c, 500, "Internal Server Error", "cannot render metrics\n", head);
    } else {
        respond(c, 200, "OK", prom_text, NULL, body.data ? body.data : "", body.len, head);
    }
    sl_buf_free(&body);
}

static void serve_health(struct conn *c, bool head, sl_health_cb cb, void *arg,
                         const char *ok)
{
    struct sl_buf body;
    sl_buf_init(&body, HTTP_MAX_HEALTH_BODY);
    if (!cb || cb(arg, &body)) {
        respond_text(c, 200, "OK", ok, head);
    } else if (body.len == 0) {
        respond_text(c, 503, "Service Unavailable", "unhealthy\n", head);
    } else {
        respond(c, 503, "Service Unavailable", text_plain, NULL, body.data, body.len, head);
    }
    sl_buf_free(&body);
}

static bool is_tchar(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static bool span_is(const char *p, size_t n, const char *s)
{
    return strlen(s) == n && memcmp(p, s, n) == 0;
}

/* The headers are complete in c->in; only the request line matters. */
static void handle_request(struct conn *c)
{
    const char *p = c->in.data;
    const char *end = p + c->in.len;
    /* RFC 9112 2.2: ignore empty lines before the request line. */
    while (p < end && (*p == '\r' || *p == '\n')) {
        p++;
    }
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) {
        respond_text(c, 400, "Bad Request", "bad request\n", false);
        return;
    }
    if (eol > p && eol[-1] == '\r') {
        eol--;
    }
    /* method SP target SP version */
    const char *method = p;
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    const char *target = sp1 ? sp1 + 1 : NULL;
    const char *sp2 = target ? memchr(target, ' ', (size_t)(eol - target)) : NULL;
    const char *version = sp2 ? sp2 + 1 : NULL;
    if (!sp2 || sp1 == method || sp2 == target || memchr(version, ' ', (size_t)(eol - version))) {
        respond_text(c, 400, "Bad Request", "bad request\n", false);
        return;
    }
    size_t mlen = (size_t)(sp1 - method);
    size_t vlen = (size_t)(eol - version);
    for (size_t i = 0; i < mlen; i++) {
        if (!is_tchar(method[i])) {
            respond_text(c, 400, "Bad Request", "bad request\n", false);
            return;
        }
    }
    if (*target != '/') {
        respond_text(c, 400, "Bad Request", "bad request\n", false);
        return;
    }
    if (!span_is(version, vlen, "HTTP/1.1") && !span_is(version, vlen, "HTTP/1.0")) {
        if (vlen == 8 && memcmp(version, "HTTP/", 5) == 0 && version[6] == '.') {
            respond_text(c, 505, "HTTP Version Not Supported", "HTTP version not supported\n",
                         false);
        } else {
            respond_text(c, 400, "Bad Request", "bad request\n", false);
        }
        return;
    }
    size_t plen = 0;
    while (target + plen < sp2 && target[plen] != '?' && target[plen] != '#') {
        plen++;
    }
    bool metrics = span_is(target, plen, "/metrics");
    bool health = span_is(target, plen, "/healthz");
    bool ready = c->h->ready && span_is(target, plen, "/readyz");
    bool head = span_is(method, mlen, "HEAD");
    bool get = span_is(method, mlen, "GET");
    if (!metrics && !health && !ready) {
        respond_text(c, 404, "Not Found", "not found\n", head);
    } else if (!get && !head) {
        const char *body = "method not allowed\n";
        respond(c, 405, "Method Not Allowed", text_plain, "Allow: GET, HEAD\r\n", body,
                strlen(body), false);
    } else if (metrics) {
        serve_metrics(c, head);
    } else if (health) {
        serve_health(c, head, c->h->health, c->h->arg, "ok\n");
    } else {
        serve_health(c, head, c->h->ready, c->h->ready_arg, "ready\n");
    }
}

static bool headers_complete(const struct sl_buf *in)
{
    return memmem(in->data, in->len, "\r\n\r\n", 4) || memmem(in->data, in->len, "\n\n", 2);
}

static void conn_read(struct conn *c)
{
    for (;;) {
        size_t room = c->in.max - c->in.len;
        if (room == 0) {
            sl_debug("http: fd %d: request exceeds %d bytes", c->fd, HTTP_MAX_REQUEST);
            respond_text(c, 431, "Request Header Fields Too Large",
                         "request header fields too large\n", false);
            return;
        }
        sl_buf_reserve(&c->in, room);
        ssize_t n = read(c->fd, c->in.data + c->in.len, room);
        if (n > 0) {
            c->in.len += (size_t)n;
            if (headers_complete(&c->in)) {
                handle_request(c);
                return;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        conn_close(c);  /* EOF before a whole request, or an error */
        return;
    }
}

/* Readiness is acted on by trying the call: SL_HUP alone proves nothing here. */
static void on_conn(struct sl_loop *loop, int fd, unsigned events, void *arg)
{
    struct conn *c = arg;
    switch (c->state) {
    case C_READ:
        conn_read(c);
        break;
    case C_WRITE:
        conn_flush(c);
        break;
    case C_LINGER:
        conn_drain(c);
        break;
    }
}

static void conn_new(struct sl_http *h, int fd)
{
    struct conn *c = sl_calloc(1, sizeof(*c));
    c->h = h;
    c->fd = fd;
    c->state = C_READ;
    sl_buf_init(&c->in, HTTP_MAX_REQUEST);
    sl_buf_init(&c->out, 0);
    if (sl_loop_add_fd(h->loop, fd, SL_READ, on_conn, c) != 0) {
        close(fd);
        sl_buf_free(&c->in);
        free(c);
        return;
    }
    c->timer = sl_loop_timer(h->loop, h->header_timeout_ms, false, on_timeout, c);
    c->seq = h->next_seq++;
    c->next = h->conns;
    if (h->conns) {
        h->conns->prev = c;
    }
    h->conns = c;
    h->nconns++;
}

/*
 * At the cap: closes the oldest lingering connection (its response is sent),
 * else the oldest one still sending its request. False when every connection
 * is sending a response: then the new one is refused.
 */
static bool evict_one(struct sl_http *h)
{
    struct conn *victim = NULL;
    for (struct conn *c = h->conns; c; c = c->next) {
        if (c->state == C_WRITE) {
            continue;
        }
        if (!victim || (c->state == C_LINGER && victim->state == C_READ) ||
            (c->state == victim->state && c->seq < victim->seq)) {
            victim = c;
        }
    }
    if (!victim) {
        return false;
    }
    sl_debug("http: %zu connections open, closing the oldest %s one (fd %d)", h->nconns,
             victim->state == C_LINGER ? "lingering" : "incomplete", victim->fd);
    h->evicted++;
    conn_close(victim);
    return true;
}

static void resume_accept(struct sl_loop *loop, void *arg)
{
    struct sl_http *h = arg;
    h->accept_timer = NULL;
    sl_loop_mod_fd(loop, h->fd, SL_READ);
}

static void on_accept(struct sl_loop *loop, int fd, unsigned events, void *arg)
{
    struct sl_http *h = arg;
    for (int i = 0; i < HTTP_ACCEPT_BATCH; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                /* EMFILE and the like: the pending connection stays queued and the
                 * listener stays readable, so pause instead of spinning. */
                sl_warn("http: accept: %s", strerror(errno));
                if (!h->accept_timer) {
                    sl_loop_mod_fd(loop, fd, 0);
                    h->accept_timer =
                        sl_loop_timer(loop, HTTP_ACCEPT_PAUSE_MS, false, resume_accept, h);
                }
            }
            return;
        }
        if (h->nconns >= h->max_conns && !evict_one(h)) {
            sl_debug("http: %zu connections open, all sending responses: refusing one",
                     h->nconns);
            close(cfd);
            continue;
        }
        conn_new(h, cfd);
    }
}

struct sl_http *sl_http_start(struct sl_loop *loop, const char *addr, struct sl_metrics *reg,
                              sl_health_cb health, void *arg)
{
    int fd = sl_net_listen(addr, 128);
    if (fd < 0) {
        sl_error("http: cannot listen on '%s'", addr);
        return NULL;
    }
    struct sl_http *h = sl_calloc(1, sizeof(*h));
    h->loop = loop;
    h->fd = fd;
    h->reg = reg;
    h->health = health;
    h->arg = arg;
    h->max_conns = HTTP_MAX_CONNS;
    h->header_timeout_ms = HTTP_HEADER_TIMEOUT_MS;
    h->port = sl_net_local_port(fd);
    if (sl_loop_add_fd(loop, fd, SL_READ, on_accept, h) != 0) {
        close(fd);
        free(h);
        return NULL;
    }
    sl_debug("http: listening on %s (port %d)", addr, h->port);
    return h;
}

int sl_http_port(const struct sl_http *h)
{
    return h->port;
}

void sl_http_set_ready(struct sl_http *h, sl_health_cb ready, void *arg)
{
    h->ready = ready;
    h->ready_arg = arg;
}

void sl_http_set_limits(struct sl_http *h, size_t max_conns, uint64_t header_timeout_ms)
{
    if (max_conns > 0) {
        h->max_conns = max_conns;
    }
    if (header_timeout_ms > 0) {
        h->header_timeout_ms = header_timeout_ms;
    }
}

uint64_t sl_http_evicted(const struct sl_http *h)
{
    return h->evicted;
}

void sl_http_stop(struct sl_http *h)
{
    if (!h) {
        return;
    }
    while (h->conns) {
        conn_close(h->conns);
    }
    sl_timer_cancel(h->accept_timer);
    sl_loop_del_fd(h->loop, h->fd);
    close(h->fd);
    free(h);
}
