/*
 * http_test.c - the /metrics and /healthz server, driven over loopback: the
 * test thread runs the event loop, a client thread speaks HTTP with plain
 * blocking sockets and stops the loop through sl_loop_wake() when it is done.
 */
#include "sluice/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

/* ---- the server side ---- */

struct client {
    void (*fn)(int port, void *arg);
    void *arg;
    int port;
    struct sl_loop *loop;
};

static void stop_loop(struct sl_loop *loop, void *arg)
{
    sl_loop_stop(loop);
}

static void *client_main(void *p)
{
    struct client *c = p;
    c->fn(c->port, c->arg);
    sl_loop_wake(c->loop);
    return NULL;
}

/* Called on the started server before the client runs (limits, /readyz). */
static void (*server_setup)(struct sl_http *h, void *arg);
static struct sl_http *current_server;

/* Serves on an ephemeral port until fn, run in a client thread, returns. */
static void with_server(struct sl_metrics *reg, sl_health_cb health, void *harg,
                        void (*fn)(int port, void *arg), void *arg)
{
    struct sl_loop *loop = sl_loop_new();
    sl_loop_on_wake(loop, stop_loop, NULL);
    struct sl_http *h = sl_http_start(loop, "127.0.0.1:0", reg, health, harg);
    CHECK(h != NULL);
    if (!h) {
        sl_loop_free(loop);
        return;
    }
    CHECK(sl_http_port(h) > 0);
    if (server_setup) {
        server_setup(h, arg);
    }
    current_server = h;
    struct client c = {.fn = fn, .arg = arg, .port = sl_http_port(h), .loop = loop};
    pthread_t t;
    pthread_create(&t, NULL, client_main, &c);
    CHECK_INT(sl_loop_run(loop), 0);
    pthread_join(t, NULL);
    current_server = NULL;
    server_setup = NULL;
    sl_http_stop(h);
    sl_loop_free(loop);
}

/* ---- the client side: blocking sockets, 5 s timeouts ---- */

static int dial_rcvbuf(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rcvbuf > 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "connect: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int dial(int port)
{
    return dial_rcvbuf(port, 0);
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        /* MSG_NOSIGNAL: a server that hung up must fail the check, not kill the test. */
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Everything until the server closes; NUL-terminated, caller frees. */
static char *read_all(int fd, size_t *lenp)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    char tmp[65536];
    ssize_t n;
    while ((n = read(fd, tmp, sizeof(tmp))) > 0) {
        sl_buf_append(&b, tmp, (size_t)n);
    }
    if (n < 0) {
        fprintf(stderr, "read: %s\n", strerror(errno));
    }
    if (lenp) {
        *lenp = b.len;
    }
    sl_buf_cstr(&b);
    return b.data;
}

static char *http_do(int port, const char *request)
{
    int fd = dial(port);
    if (fd < 0) {
        return sl_strdup("");
    }
    send_all(fd, request, strlen(request));
    char *r = read_all(fd, NULL);
    close(fd);
    return r;
}

static const char *body_of(const char *response)
{
    const char *p = strstr(response, "\r\n\r\n");
    return p ? p + 4 : "";
}

static long content_length(const char *response)
{
    const char *p = strstr(response, "\r\nContent-Length: ");
    return p ? strtol(p + 18, NULL, 10) : -1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- tests ---- */

static void get_metrics(int port, void *arg)
{
    char *r = http_do(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
    const char *head = "HTTP/1.1 200 OK\r\n"
                       "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                       "Content-Length: ";
    CHECK(strncmp(r, head, strlen(head)) == 0);
    CHECK(strstr(r, "\r\nConnection: close\r\n\r\n") != NULL);
    const char *body = body_of(r);
    CHECK_INT(content_length(r), strlen(body));
    const char *own = "# HELP sluice_test_requests_total Requests.\n"
                      "# TYPE sluice_test_requests_total counter\n"
                      "sluice_test_requests_total 5\n";
    CHECK(strncmp(body, own, strlen(own)) == 0);
    CHECK(strstr(body, "\nprocess_open_fds ") != NULL);
    free(r);

    /* A query string does not change the route; HEAD sends the length, not the body. */
    r = http_do(port, "GET /metrics?name[]=x HTTP/1.0\r\n\r\n");
    CHECK(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
    free(r);
    r = http_do(port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(strncmp(r, head, strlen(head)) == 0);
    CHECK(content_length(r) > 100);
    CHECK_STR(body_of(r), "");
    free(r);
}

TEST(get_metrics_serves_the_registry)
{
    struct sl_metrics *reg = sl_metrics_new();
    sl_counter_add(sl_metrics_counter(reg, "sluice_test_requests_total", "Requests.", NULL), 5);
    with_server(reg, NULL, NULL, get_metrics, NULL);
    sl_metrics_free(reg);
}

static const char ok_response[] = "HTTP/1.1 200 OK\r\n"
                                  "Content-Type: text/plain; charset=utf-8\r\n"
                                  "Content-Length: 3\r\n"
                                  "Connection: close\r\n\r\n"
                                  "ok\n";

static void get_healthz_ok(int port, void *arg)
{
    char *r = http_do(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_STR(r, ok_response);
    free(r);
}

static bool healthy(void *arg, struct sl_buf *body)
{
    ++*(int *)arg;
    return true;
}

static bool unhealthy(void *arg, struct sl_buf *body)
{
    ++*(int *)arg;
    sl_buf_puts(body, "queue full\n");
    return false;
}

static void get_healthz_unhealthy(int port, void *arg)
{
    char *r = http_do(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_STR(r, "HTTP/1.1 503 Service Unavailable\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 11\r\n"
                 "Connection: close\r\n\r\n"
                 "queue full\n");
    free(r);
    r = http_do(port, "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_STR(r, "HTTP/1.1 503 Service Unavailable\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 11\r\n"
                 "Connection: close\r\n\r\n");
    free(r);
}

TEST(healthz_follows_the_health_callback)
{
    struct sl_metrics *reg = sl_metrics_new();
    int calls = 0;
    with_server(reg, NULL, NULL, get_healthz_ok, NULL);
    with_server(reg, healthy, &calls, get_healthz_ok, NULL);
    CHECK_INT(calls, 1);
    with_server(reg, unhealthy, &calls, get_healthz_unhealthy, NULL);
    CHECK_INT(calls, 3);
    sl_metrics_free(reg);
}

static void errors(int port, void *arg)
{
    char *r = http_do(port, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_STR(r, "HTTP/1.1 404 Not Found\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 10\r\n"
                 "Connection: close\r\n\r\n"
                 "not found\n");
    free(r);
    r = http_do(port, "GET /metricsx HTTP/1.1\r\n\r\n");
    CHECK(strncmp(r, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    free(r);

    /* The body is never read as a request, and is drained rather than reset. */
    r = http_do(port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    CHECK_STR(r, "HTTP/1.1 405 Method Not Allowed\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 19\r\n"
                 "Allow: GET, HEAD\r\n"
                 "Connection: close\r\n\r\n"
                 "method not allowed\n");
    free(r);
    r = http_do(port, "DELETE /healthz HTTP/1.1\r\n\r\n");
    CHECK(strncmp(r, "HTTP/1.1 405 Method Not Allowed\r\n", 33) == 0);
    free(r);

    const char *bad_request = "HTTP/1.1 400 Bad Request\r\n"
                              "Content-Type: text/plain; charset=utf-8\r\n"
                              "Content-Length: 12\r\n"
                              "Connection: close\r\n\r\n"
                              "bad request\n";
    const char *malformed[] = {
        "garbage\r\n\r\n",
        "GET /metrics\r\n\r\n",
        "GET metrics HTTP/1.1\r\n\r\n",
        "GET  /metrics HTTP/1.1\r\n\r\n",
        "GET /metrics HTTP/1.1 x\r\n\r\n",
        "G(T /metrics HTTP/1.1\r\n\r\n",
        "GET /metrics FTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(malformed); i++) {
        r = http_do(port, malformed[i]);
        CHECK_STR(r, bad_request);
        free(r);
    }
    r = http_do(port, "GET /metrics HTTP/2.0\r\n\r\n");
    CHECK(strncmp(r, "HTTP/1.1 505 HTTP Version Not Supported\r\n", 41) == 0);
    free(r);

    /* Bare LF line ends and leading empty lines are tolerated. */
    r = http_do(port, "\r\nGET /healthz HTTP/1.1\nHost: x\n\n");
    CHECK_STR(r, ok_response);
    free(r);
}

TEST(errors_have_exact_status_lines)
{
    struct sl_metrics *reg = sl_metrics_new();
    with_server(reg, NULL, NULL, errors, NULL);
    sl_metrics_free(reg);
}

static void oversize(int port, void *arg)
{
    /* 10 KiB of headers: answered at 8 KiB, the rest drained so no reset eats the answer. */
    struct sl_buf req;
    sl_buf_init(&req, 0);
    sl_buf_puts(&req, "GET /metrics HTTP/1.1\r\nX-Pad: ");
    for (int i = 0; i < 10000; i++) {
        sl_buf_putc(&req, 'a');
    }
    sl_buf_puts(&req, "\r\n\r\n");
    char *r = http_do(port, sl_buf_cstr(&req));
    CHECK_STR(r, "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 32\r\n"
                 "Connection: close\r\n\r\n"
                 "request header fields too large\n");
    free(r);

    /* Exactly at the limit without an end of headers; the client then waits. */
    int fd = dial(port);
    sl_buf_reset(&req);
    sl_buf_puts(&req, "GET /metrics HTTP/1.1\r\n");
    while (req.len < 8192) {
        sl_buf_putc(&req, 'b');
    }
    send_all(fd, req.data, req.len);
    r = read_all(fd, NULL);
    CHECK(strncmp(r, "HTTP/1.1 431 ", 13) == 0);
    free(r);
    close(fd);
    sl_buf_free(&req);
}

TEST(oversize_requests_get_431)
{
    struct sl_metrics *reg = sl_metrics_new();
    with_server(reg, NULL, NULL, oversize, NULL);
    sl_metrics_free(reg);
}

static void slow_client(int port, void *arg)
{
    /* A request trickling in, in pieces. */
    int fd = dial(port);
    const char *parts[] = {"GE", "T /heal", "thz HTTP/1.1\r", "\nHost: x\r\n", "\r\n"};
    for (size_t i = 0; i < SL_ARRAY_LEN(parts); i++) {
        send_all(fd, parts[i], strlen(parts[i]));
        sleep_ms(20);
    }
    char *r = read_all(fd, NULL);
    CHECK_STR(r, ok_response);
    free(r);
    close(fd);

    /* A client that hangs up mid-request, and one that never reads a big answer. */
    fd = dial(port);
    send_all(fd, "GET /met", 8);
    close(fd);
    fd = dial(port);
    send_all(fd, "GET /metrics HTTP/1.1\r\n\r\n", 25);
    close(fd);

    /* A big answer read late: the server must wait for SL_WRITE and finish it. */
    fd = dial_rcvbuf(port, 8192);
    send_all(fd, "GET /metrics HTTP/1.1\r\n\r\n", 25);
    sleep_ms(200);
    size_t len;
    r = read_all(fd, &len);
    const char *body = body_of(r);
    CHECK(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(len > 6000000);
    CHECK_INT(content_length(r), len - (size_t)(body - r));
    CHECK(strstr(body, "\nprocess_virtual_memory_bytes ") != NULL);
    free(r);
    close(fd);

    r = http_do(port, "GET /healthz HTTP/1.1\r\n\r\n");
    CHECK_STR(r, ok_response);
    free(r);
}

TEST(slow_and_rude_clients)
{
    struct sl_metrics *reg = sl_metrics_new();
    /* About 6 MB of text (tcp_wmem allows a send buffer of 4 MB), read through an
     * 8 KiB receive buffer: the send buffer fills long before the answer is out. */
    char path[1001];
    memset(path, 'p', 1000);
    path[1000] = '\0';
    for (int i = 0; i < 6000; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        const char *const l[] = {"n", v, "file", path, NULL};
        sl_counter_inc(sl_metrics_counter(reg, "sluice_test_bulk_total", "Bulk.", l));
    }
    with_server(reg, NULL, NULL, slow_client, NULL);
    sl_metrics_free(reg);
}

struct held {
    int fds[64];
};

static void cap_64(struct sl_http *h, void *arg)
{
    sl_http_set_limits(h, 64, 0);
}

/* True once fd was closed by the server (EOF or reset), within 5 s. */
static bool closed_by_server(int fd)
{
    char c;
    ssize_t n = read(fd, &c, 1);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static void connection_cap(int port, void *arg)
{
    struct held *held = arg;
    for (int i = 0; i < 64; i++) {
        held->fds[i] = dial(port);
    }
    /* Until the server has accepted all 64 (FIFO), a probe could come before some. */
    send_all(held->fds[63], "G", 1);
    sleep_ms(100);
    /* The 65th is a well-behaved probe: it is served, and the oldest incomplete
     * connection is closed to make room for it, not the probe. */
    char *r = http_do(port, "GET /healthz HTTP/1.1\r\n\r\n");
    CHECK_STR(r, ok_response);
    free(r);
    CHECK(closed_by_server(held->fds[0]));
    close(held->fds[0]);
    held->fds[0] = -1;
    /* Each further probe evicts the next oldest, never a newer one. */
    for (int i = 1; i <= 3; i++) {
        r = http_do(port, "GET /healthz HTTP/1.1\r\n\r\n");
        CHECK_STR(r, ok_response);
        free(r);
    }
    CHECK(sl_http_evicted(current_server) >= 1);
    CHECK(sl_http_evicted(current_server) <= 4);
    CHECK(closed_by_server(held->fds[1]));
    /* The rest stay open: sl_http_stop() must close and free them. */
}

TEST(at_the_cap_the_oldest_incomplete_connection_makes_room)
{
    struct sl_metrics *reg = sl_metrics_new();
    struct held held;
    server_setup = cap_64;
    with_server(reg, NULL, NULL, connection_cap, &held);
    for (int i = 0; i < 64; i++) {
        if (held.fds[i] >= 0) {
            close(held.fds[i]);
        }
    }
    sl_metrics_free(reg);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct trickle {
    int port;
    double closed_after;  /* seconds from connect to the server's close */
};

static void *trickler(void *p)
{
    struct trickle *t = p;
    int fd = dial(t->port);
    double t0 = now_s();
    const char *req = "GET /metrics HTTP/1.1\r\nHost: a-slow-client\r\nX-Pad: aaaaaaaaaaaaaaaaaa\r\n\r\n";
    t->closed_after = -1;
    for (size_t i = 0; req[i]; i++) {
        if (send(fd, req + i, 1, MSG_NOSIGNAL) != 1) {
            break;
        }
        sleep_ms(100);
        /* Has the server closed it? (non-blocking peek) */
        char c;
        ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            break;
        }
    }
    t->closed_after = now_s() - t0;
    close(fd);
    return NULL;
}

static void slow_requests(int port, void *arg)
{
    /* 70 clients sending one byte per 100 ms: each is dropped at the 2 s header
     * deadline, long before its 80-byte request would be complete (8 s), and
     * probes meanwhile are answered at once. */
    enum { N = 70 };
    struct trickle t[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        t[i].port = port;
        pthread_create(&th[i], NULL, trickler, &t[i]);
    }
    int probes = 0;
    int ok = 0;
    for (int i = 0; i < 30; i++) {
        double t0 = now_s();
        char *r = http_do(port, "GET /healthz HTTP/1.1\r\n\r\n");
        probes++;
        ok += strcmp(r, ok_response) == 0 && now_s() - t0 < 1.0;
        free(r);
        sleep_ms(100);
    }
    CHECK_INT(ok, probes);
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
    }
    for (int i = 0; i < N; i++) {
        CHECK(t[i].closed_after > 1.5);
        CHECK(t[i].closed_after < 4.0);
    }
}

TEST(incomplete_requests_are_dropped_after_2s_and_probes_still_answered)
{
    struct sl_metrics *reg = sl_metrics_new();
    with_server(reg, NULL, NULL, slow_requests, NULL);
    sl_metrics_free(reg);
}

static bool not_ready(void *arg, struct sl_buf *body)
{
    sl_buf_puts(body, "draining\n");
    return false;
}

static void set_ready(struct sl_http *h, void *arg)
{
    sl_http_set_ready(h, arg ? not_ready : healthy, &(int){0});
}

static int ready_calls;

static void set_ready_counting(struct sl_http *h, void *arg)
{
    sl_http_set_ready(h, healthy, &ready_calls);
}

static void readyz_404(int port, void *arg)
{
    char *r = http_do(port, "GET /readyz HTTP/1.1\r\n\r\n");
    CHECK(strncmp(r, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    free(r);
}

static void readyz_ok(int port, void *arg)
{
    char *r = http_do(port, "GET /readyz HTTP/1.1\r\n\r\n");
    CHECK_STR(r, "HTTP/1.1 200 OK\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 6\r\n"
                 "Connection: close\r\n\r\n"
                 "ready\n");
    free(r);
    /* /healthz is its own callback (none here: always ok). */
    r = http_do(port, "GET /healthz HTTP/1.1\r\n\r\n");
    CHECK_STR(r, ok_response);
    free(r);
}

static void readyz_503(int port, void *arg)
{
    char *r = http_do(port, "GET /readyz?x=1 HTTP/1.1\r\n\r\n");
    CHECK_STR(r, "HTTP/1.1 503 Service Unavailable\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 9\r\n"
                 "Connection: close\r\n\r\n"
                 "draining\n");
    free(r);
    r = http_do(port, "POST /readyz HTTP/1.1\r\n\r\n");
    CHECK(strncmp(r, "HTTP/1.1 405 ", 13) == 0);
    free(r);
}

TEST(readyz_follows_its_own_callback)
{
    struct sl_metrics *reg = sl_metrics_new();
    with_server(reg, NULL, NULL, readyz_404, NULL);
    server_setup = set_ready_counting;
    with_server(reg, NULL, NULL, readyz_ok, NULL);
    CHECK_INT(ready_calls, 1);
    server_setup = set_ready;
    with_server(reg, NULL, NULL, readyz_503, (void *)1);
    sl_metrics_free(reg);
}

TEST(start_fails_cleanly)
{
    struct sl_loop *loop = sl_loop_new();
    CHECK(sl_http_start(loop, "no-port-here", NULL, NULL, NULL) == NULL);
    sl_http_stop(NULL);
    sl_loop_free(loop);
}

int main(void)
{
    RUN(get_metrics_serves_the_registry);
    RUN(healthz_follows_the_health_callback);
    RUN(errors_have_exact_status_lines);
    RUN(oversize_requests_get_431);
    RUN(slow_and_rude_clients);
    RUN(at_the_cap_the_oldest_incomplete_connection_makes_room);
    RUN(incomplete_requests_are_dropped_after_2s_and_probes_still_answered);
    RUN(readyz_follows_its_own_callback);
    RUN(start_fails_cleanly);
    return TEST_SUMMARY();
}
