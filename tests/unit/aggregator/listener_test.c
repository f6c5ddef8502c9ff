/*
 * agg_listener_test.c - the listener and pipeline with an output that answers
 * later (as Elasticsearch and Kafka will): ACK order across pipelined windows,
 * per-connection and global backpressure, keepalives while a window is
 * pending, failed delivery, and a connection reset while its windows are in
 * flight (run under ASan: any use-after-free or leak fails the build); with
 * filter worker threads: per-connection order in the outputs whatever
 * finishes filtering first, windows cut into batch_size slices; hostile
 * clients: frame_timeout (slow loris), caps counted by reason.
 */
#include <errno.h>
#include <stdatomic.h>
#include <time.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf.h"
#include "listener.h"
#include "pipeline.h"
#include "sluice/log.h"
#include "sluice/lumberjack.h"
#include "test.h"

/* ---- an output that holds every batch until the test answers it ---- */

struct held {
    size_t n;
    int64_t w;                /* the "w" field of its first event: which window */
    struct sl_batch *batch;   /* borrowed until answered */
    bool answered;
};

static struct held held[64];
static size_t nheld;

static void fake_submit(void *inst, struct sl_batch *batch)
{
    struct sl_value *w = batch->n ? sl_obj_getc(&batch->events[0], "w") : NULL;
    held[nheld++] = (struct held){.n = batch->n, .batch = batch,
                                  .w = w && w->type == SL_V_INT ? w->u.i : -1};
}

static const struct sl_plugin fake_output = {
    .name = "fake", .kind = SL_PLUGIN_OUTPUT, .submit = fake_submit,
};

/* ---- a filter that is slow on events with "slow": true (runs on the workers) ---- */

static atomic_int filtered_count;  /* events the fake filter finished */

static enum sl_filter_result ffilter(void *inst, struct sl_value *ev)
{
    struct sl_value *slow = sl_obj_getc(ev, "slow");
    if (slow && slow->type == SL_V_BOOL && slow->u.b) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 150 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    sl_value_set_bool(sl_obj_putc(ev, "filtered"), true);
    atomic_fetch_add(&filtered_count, 1);
    return SL_FILTER_KEEP;
}

static const struct sl_plugin fake_filter = {
    .name = "fakefilter", .kind = SL_PLUGIN_FILTER, .filter = ffilter,
};

static void answer(size_t i, int status)
{
    held[i].answered = true;
    sl_batch_done(held[i].batch, status);
}

/* ---- a world: loop, metrics, pipeline, listener ---- */

struct world {
    struct sl_loop *loop;
    struct sl_metrics *metrics;
    struct agg_conf conf;
    struct agg_pipeline *pipeline;
    struct agg_listener *listener;
};

/* pipeline: the pipeline section, NULL for one without filters. With filters,
 * each is the fake filter above. */
static void world_start2(struct world *w, const char *input_extra, const char *pipeline)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "input:\n  listen: 127.0.0.1:0\n%s"
             "pipeline: %s\n"
             "outputs: [stdout: {}]\n", input_extra,
             pipeline ? pipeline : "{workers: 1, batch_size: 1, max_pending_events: 1000}");
    memset(held, 0, sizeof(held));
    nheld = 0;
    atomic_store(&filtered_count, 0);
    w->loop = sl_loop_new();
    w->metrics = sl_metrics_new();
    CHECK_INT(agg_conf_load_string(&w->conf, "t.yml", text), 0);
    w->conf.outputs[0].plugin = &fake_output;
    for (size_t i = 0; i < w->conf.nfilters; i++) {
        w->conf.filters[i].plugin = &fake_filter;
    }
    w->pipeline = agg_pipeline_new(&w->conf, w->loop, w->metrics);
    w->listener = agg_listener_new(w->loop, &w->conf, w->metrics, w->pipeline);
    CHECK(w->listener != NULL);
}

static void world_start(struct world *w, const char *input_extra)
{
    world_start2(w, input_extra, NULL);
}

static void world_stop(struct world *w)
{
    agg_pipeline_free(w->pipeline);
    agg_listener_free(w->listener);
    agg_conf_free(&w->conf);
    sl_metrics_free(w->metrics);
    sl_loop_free(w->loop);
}

static bool (*until_cond)(void);
static uint64_t until_deadline;

static void until_poll(struct sl_loop *loop, void *arg)
{
    if ((until_cond && until_cond()) || sl_now_ms() >= until_deadline) {
        sl_loop_stop(loop);
    }
}

/* Runs the loop until cond() holds (true) or ms pass (false). cond NULL: just ms. */
static bool run_until(struct world *w, bool (*cond)(void), uint64_t ms)
{
    until_cond = cond;
    until_deadline = sl_now_ms() + ms;
    struct sl_timer *t = sl_loop_timer(w->loop, 2, true, until_poll, NULL);
    sl_loop_run(w->loop);
    sl_timer_cancel(t);
    return cond ? cond() : true;
}

static size_t want_held;
static bool have_held(void)
{
    return nheld >= want_held;
}

static int client(struct world *w)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(
                                 (uint16_t)agg_listener_port(w->listener)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_INT(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* How windows are sent: their J frames bare (SL_LJ_NONE) or in one block of that kind. */
static enum sl_lj_compression block_kind;

/* Sends the window b (a W frame, then J frames from body_off on) as block_kind says. */
static void send_built(int fd, struct sl_buf *b, size_t body_off)
{
    if (block_kind != SL_LJ_NONE) {
        struct sl_buf c;
        sl_buf_init(&c, 0);
        sl_buf_append(&c, b->data, body_off);
        CHECK_INT(sl_lj_put_compressed(&c, block_kind, 3, b->data + body_off,
                                       b->len - body_off), 0);
        sl_buf_free(b);
        *b = c;
    }
    CHECK_INT(send(fd, b->data, b->len, 0), (long long)b->len);
    sl_buf_free(b);
}

/* Sends a window of n events (seq 1..n). */
static void send_window(int fd, uint32_t n)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_lj_put_window(&b, SL_LJ_V2, n);
    size_t body = b.len;
    for (uint32_t i = 1; i <= n; i++) {
        sl_lj_put_json(&b, i, "{\"message\":\"x\"}", 15);
    }
    send_built(fd, &b, body);
}

/* A window of n events {"w": tag, "i": 1..n, "slow": slow}. */
static void send_tagged(int fd, int tag, uint32_t n, bool slow)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_lj_put_window(&b, SL_LJ_V2, n);
    size_t body = b.len;
    for (uint32_t i = 1; i <= n; i++) {
        char js[96];
        int len = snprintf(js, sizeof(js), "{\"w\":%d,\"i\":%u,\"slow\":%s}", tag, i,
                           slow ? "true" : "false");
        sl_lj_put_json(&b, i, js, (size_t)len);
    }
    send_built(fd, &b, body);
}

static void send_raw(int fd, const void *p, size_t n)
{
    CHECK_INT(send(fd, p, n, 0), (long long)n);
}

/* Whatever the server sent so far, as "A<seq> A<seq> ..." (or "" / "EOF"). */
static const char *acks(struct world *w, int fd)
{
    static char out[512];
    unsigned char buf[600];
    size_t len = 0;
    out[0] = '\0';
    run_until(w, NULL, 30);  /* let the loop write */
    for (;;) {
        ssize_t r = recv(fd, buf + len, sizeof(buf) - len, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno == ECONNRESET)) {
            strcat(out, "EOF");
            break;
        }
        if (r < 0) {
            break;
        }
        len += (size_t)r;
    }
    char acked[512] = "";
    for (size_t i = 0; i + 6 <= len; i += 6) {
        size_t o = strlen(acked);
        snprintf(acked + o, sizeof(acked) - o, "%c%c%u ", buf[i], buf[i + 1],
                 sl_get_u32be(buf + i + 2));
    }
    bool eof = out[0] != '\0';
    memcpy(out, acked, sizeof(acked));
    if (eof) {
        strcat(out, "EOF");  /* ACKs first, then EOF */
    }
    return out;
}

/* A series' value, read from the rendered page ("name{labels} value"). */
static double metric(struct world *w, const char *series)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_metrics_render(w->metrics, &b);
    char key[256];
    snprintf(key, sizeof(key), "\n%s ", series);
    const char *p = strstr(sl_buf_cstr(&b), key);
    double v = p ? strtod(p + strlen(key), NULL) : -1;
    sl_buf_free(&b);
    return v;
}

/* ---- tests ---- */

TEST(acks_in_window_order_and_pending_window_limit)
{
    struct world w = {0};
    world_start(&w, "  max_pending_windows: 2\n");
    int fd = client(&w);
    send_window(fd, 1);
    send_window(fd, 2);
    send_window(fd, 3);
    want_held = 2;
    CHECK(run_until(&w, have_held, 2000));
    run_until(&w, NULL, 50);
    CHECK_INT(nheld, 2);  /* the third window waits in the socket: backpressure */
    answer(1, SL_OK);     /* the second window finishes first ... */
    CHECK_STR(acks(&w, fd), "");  /* ... but its ACK must wait for the first */
    answer(0, SL_OK);
    want_held = 3;
    CHECK(run_until(&w, have_held, 2000));
    CHECK_INT(held[2].n, 3);
    answer(2, SL_OK);
    CHECK_STR(acks(&w, fd), "2A1 2A2 2A3 ");
    close(fd);
    world_stop(&w);
}

static struct world *cur_world;
static bool no_connections(void)
{
    return metric(cur_world, "sluice_aggregator_connections") == 0;
}

TEST(reset_while_in_flight_then_completion)
{
    struct world w = {0};
    world_start(&w, "");
    cur_world = &w;
    int fd = client(&w);
    send_window(fd, 2);
    want_held = 1;
    CHECK(run_until(&w, have_held, 2000));
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);  /* RST: the server closes the connection with the window in flight */
    CHECK(run_until(&w, no_connections, 2000));
    answer(0, SL_OK);  /* the output answers after the connection is gone */
    CHECK_INT(metric(&w, "sluice_aggregator_events_acked_total"), 0);
    CHECK_INT(agg_listener_pending(w.listener), 0);
    world_stop(&w);
}

TEST(exit_with_windows_in_flight_frees_them)
{
    struct world w = {0};
    world_start(&w, "");
    int fd = client(&w);
    send_window(fd, 3);
    want_held = 1;
    CHECK(run_until(&w, have_held, 2000));
    world_stop(&w);  /* never answered: pipeline and listener free everything */
    close(fd);
}

TEST(failed_delivery_closes_without_ack)
{
    struct world w = {0};
    world_start(&w, "");
    int fd = client(&w);
    send_window(fd, 2);
    want_held = 1;
    CHECK(run_until(&w, have_held, 2000));
    answer(0, SL_EIO);
    CHECK_STR(acks(&w, fd), "EOF");
    CHECK_INT(metric(&w, "sluice_aggregator_windows_failed_total"), 1);
    close(fd);
    world_stop(&w);
}

/* Two ACK 0 frames (12 bytes) are waiting on ka_fd: condition, not a fixed sleep,
 * so a loaded machine only makes the test slower. */
static int ka_fd;
static bool two_keepalives(void)
{
    char buf[12];
    return recv(ka_fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT) == (ssize_t)sizeof(buf);
}

TEST(keepalive_ack_zero_while_pending)
{
    struct world w = {0};
    world_start(&w, "  keepalive: 100ms\n");
    int fd = client(&w);
    send_window(fd, 1);
    want_held = 1;
    CHECK(run_until(&w, have_held, 2000));
    ka_fd = fd;
    CHECK(run_until(&w, two_keepalives, 5000));  /* two keepalive periods at least */
    answer(0, SL_OK);
    const char *got = acks(&w, fd);
    CHECK(strncmp(got, "2A0 2A0 ", 8) == 0);
    CHECK(strstr(got, "2A1 ") != NULL && strstr(got, "2A1 ")[4] == '\0');
    close(fd);
    world_stop(&w);
}

TEST(global_pending_events_limit)
{
    struct world w = {0};
    world_start(&w, "");
    w.conf.max_pending_events = 2;
    agg_listener_apply(w.listener, &w.conf);
    int a = client(&w);
    int b = client(&w);
    send_window(a, 2);
    want_held = 1;
    CHECK(run_until(&w, have_held, 2000));
    send_window(b, 2);
    run_until(&w, NULL, 80);
    CHECK_INT(nheld, 1);  /* the pipeline is full: b is not read */
    answer(0, SL_OK);
    want_held = 2;
    CHECK(run_until(&w, have_held, 2000));
    answer(1, SL_OK);
    CHECK_STR(acks(&w, a), "2A2 ");
    CHECK_STR(acks(&w, b), "2A2 ");
    close(a);
    close(b);
    world_stop(&w);
}

/* pipeline.max_pending_bytes: a connection is not read while the bytes read and
 * not yet ACKed are at the budget - unless nothing is in the pipeline, when the
 * one holding the most goes on (one piece over), so a budget smaller than a
 * window still makes progress. Every byte is given back once ACKed. */
TEST(global_pending_bytes_limit)
{
    struct world w = {0};
    world_start(&w, "");
    w.conf.max_pending_bytes = 20;  /* less than one window of two 15-byte events */
    agg_listener_apply(w.listener, &w.conf);
    CHECK(metric(&w, "sluice_aggregator_max_pending_bytes") == 20);
    int a = client(&w);
    int b = client(&w);
    send_window(a, 2);
    want_held = 1;
    CHECK(run_until(&w, have_held, 2000));  /* over the budget, but alone: it goes on */
    /* A block is read on this thread then: a worker's share would not fit. */
    CHECK(metric(&w, "sluice_aggregator_pending_bytes") == 30);
    CHECK_INT(metric(&w, "sluice_aggregator_blocks_worker_inflated_total"), 0);
    send_window(b, 2);
    run_until(&w, NULL, 80);
    CHECK_INT(nheld, 1);  /* a's window holds the budget: b is not read */
    CHECK(metric(&w, "sluice_aggregator_pending_bytes_full_total") >= 1);
    answer(0, SL_OK);
    want_held = 2;
    CHECK(run_until(&w, have_held, 2000));
    answer(1, SL_OK);
    CHECK_STR(acks(&w, a), "2A2 ");
    CHECK_STR(acks(&w, b), "2A2 ");
    CHECK(metric(&w, "sluice_aggregator_pending_bytes") == 0);
    close(a);
    close(b);
    world_stop(&w);
}

static bool filtered_one(void)
{
    return atomic_load(&filtered_count) >= 1;
}

TEST(workers_keep_each_connections_window_order)
{
    struct world w = {0};
    world_start2(&w, "", "{workers: 2, batch_size: 100, filters: [drop: {}]}");
    int a = client(&w);
    int b = client(&w);
    send_tagged(a, 1, 1, true);   /* slow to filter */
    run_until(&w, NULL, 20);      /* let a worker take it */
    send_tagged(a, 2, 1, false);  /* filtered first, by the other worker ... */
    CHECK(run_until(&w, filtered_one, 2000));
    run_until(&w, NULL, 20);
    CHECK_INT(atomic_load(&filtered_count), 1);  /* window 1 is still in its filter */
    CHECK_INT(nheld, 0);          /* ... but window 2 waits for window 1 of its connection */
    send_tagged(b, 3, 2, false);  /* another connection is not held up by a's slow window */
    want_held = 1;
    CHECK(run_until(&w, have_held, 2000));
    CHECK_INT(held[0].w, 3);
    want_held = 3;
    CHECK(run_until(&w, have_held, 2000));
    CHECK_INT(held[1].w, 1);
    CHECK_INT(held[2].w, 2);
    for (size_t i = 0; i < 3; i++) {
        answer(i, SL_OK);
    }
    CHECK_STR(acks(&w, a), "2A1 2A1 ");
    CHECK_STR(acks(&w, b), "2A2 ");
    CHECK_INT(metric(&w, "sluice_aggregator_filter_events_total{filter=\"fakefilter\","
                         "result=\"ok\"}"), 4);
    close(a);
    close(b);
    world_stop(&w);
}

TEST(big_window_filtered_in_slices_and_delivered_whole)
{
    struct world w = {0};
    world_start2(&w, "", "{workers: 2, batch_size: 2, filters: [drop: {}, drop: {}]}");
    int fd = client(&w);
    send_tagged(fd, 7, 7, false);
    want_held = 1;
    CHECK(run_until(&w, have_held, 2000));
    CHECK_INT(held[0].n, 7);  /* four slices, one batch for the outputs */
    for (size_t i = 0; i < 7; i++) {
        struct sl_value *ev = &held[0].batch->events[i];
        CHECK_INT(sl_obj_getc(ev, "i")->u.i, (long long)i + 1);
        CHECK(sl_obj_getc(ev, "filtered") != NULL);
    }
    CHECK_INT(atomic_load(&filtered_count), 14);  /* two filters, each event once */
    answer(0, SL_OK);
    CHECK_STR(acks(&w, fd), "2A7 ");
    close(fd);
    world_stop(&w);
}

TEST(exit_while_workers_filter)
{
    struct world w = {0};
    world_start2(&w, "", "{workers: 2, batch_size: 1, filters: [drop: {}]}");
    int fd = client(&w);
    send_tagged(fd, 1, 3, true);
    run_until(&w, NULL, 30);
    world_stop(&w);  /* joins the workers: slices in hand finish, queued ones are dropped */
    close(fd);
}

TEST(frame_timeout_closes_a_trickling_client)
{
    struct world w = {0};
    world_start(&w, "  frame_timeout: 200ms\n");
    int loris = client(&w);
    int half = client(&w);
    int good = client(&w);
    /* A window announced and one of its two events sent; a frame header cut short. */
    send_raw(loris, "2W\0\0\0\2" "2J\0\0\0\1\0\0\0\2{}", 18);
    send_raw(half, "2J\0", 3);
    run_until(&w, NULL, 450);
    CHECK_STR(acks(&w, loris), "EOF");
    CHECK_STR(acks(&w, half), "EOF");
    send_window(good, 1);  /* idle until now: no window open, no timeout */
    want_held = 1;
    CHECK(run_until(&w, have_held, 2000));
    answer(0, SL_OK);
    CHECK_STR(acks(&w, good), "2A1 ");
    CHECK_INT(metric(&w, "sluice_aggregator_protocol_errors_total{reason=\"frame_timeout\"}"),
              2);
    close(loris);
    close(half);
    close(good);
    world_stop(&w);
}

TEST(caps_are_counted_by_reason)
{
    struct world w = {0};
    world_start(&w, "  max_window_events: 5\n  max_frame_bytes: 1kb\n  max_json_depth: 3\n");
    int a = client(&w);
    int b = client(&w);
    int c = client(&w);
    int d = client(&w);
    send_raw(a, "2W\0\0\0\6", 6);  /* 6 > max_window_events: no error, it comes in pieces */
    send_raw(b, "2W\0\0\0\1" "2J\0\0\0\1\xff\xff\xff\xff", 16);  /* 4 GiB frame */
    send_raw(c, "2W\0\0\0\1" "2J\0\0\0\1\0\0\0\x0d{\"a\":[[[1]]]}", 29);
    send_raw(d, "2Q\0\0\0\0", 6);                          /* unknown frame type */
    run_until(&w, NULL, 60);
    CHECK_STR(acks(&w, a), "");  /* still open, waiting for its events */
    CHECK_STR(acks(&w, b), "EOF");
    CHECK_STR(acks(&w, c), "EOF");
    CHECK_STR(acks(&w, d), "EOF");
    CHECK_INT(metric(&w, "sluice_aggregator_protocol_errors_total{reason=\"window_events\"}"),
              -1);
    CHECK_INT(metric(&w, "sluice_aggregator_protocol_errors_total{reason=\"frame_bytes\"}"), 1);
    CHECK_INT(metric(&w, "sluice_aggregator_protocol_errors_total{reason=\"json_depth\"}"), 1);
    CHECK_INT(metric(&w, "sluice_aggregator_protocol_errors_total{reason=\"invalid_frame\"}"),
              1);
    close(a);
    close(b);
    close(c);
    close(d);
    world_stop(&w);
}


static double unpacked(struct world *w)
{
    return metric(w, "sluice_aggregator_blocks_worker_inflated_total");
}

/*
 * The tests above again with every window in one zlib or zstd block, which
 * the workers inflate: ACK order, backpressure, a reset or an exit while a
 * block is with a worker, failed delivery, order across workers and slices.
 * Then what only blocks have: a window whose block holds part of it.
 */
TEST(the_same_with_windows_in_blocks)
{
    static const enum sl_lj_compression kinds[] = {SL_LJ_ZLIB, SL_LJ_ZSTDC};
    for (size_t k = 0; k < 2; k++) {
        block_kind = kinds[k];
        acks_in_window_order_and_pending_window_limit();
        reset_while_in_flight_then_completion();
        exit_with_windows_in_flight_frees_them();
        failed_delivery_closes_without_ack();
        keepalive_ack_zero_while_pending();
        global_pending_events_limit();
        global_pending_bytes_limit();
        workers_keep_each_connections_window_order();
        big_window_filtered_in_slices_and_delivered_whole();
        exit_while_workers_filter();
    }
    block_kind = SL_LJ_NONE;
}

TEST(blocks_are_inflated_by_the_workers)
{
    struct world w = {0};
    world_start2(&w, "", "{workers: 2, batch_size: 2, filters: [drop: {}]}");
    int fd = client(&w);
    /* One at a time: a block that comes while every worker has a slice queued is
     * inflated by the I/O thread instead (agg_pipeline_saturated). */
    block_kind = SL_LJ_ZSTDC;
    send_tagged(fd, 1, 5, false);
    want_held = 1;
    CHECK(run_until(&w, have_held, 2000));
    block_kind = SL_LJ_ZLIB;
    send_tagged(fd, 2, 3, false);
    want_held = 2;
    CHECK(run_until(&w, have_held, 2000));
    block_kind = SL_LJ_NONE;
    send_tagged(fd, 3, 2, false);
    want_held = 3;
    CHECK(run_until(&w, have_held, 2000));
    CHECK_INT(held[0].w, 1);
    CHECK_INT(held[1].w, 2);
    CHECK_INT(held[2].w, 3);
    CHECK_INT(held[0].n + held[1].n + held[2].n, 10);
    CHECK_INT(unpacked(&w), 2);
    CHECK_INT(metric(&w, "sluice_aggregator_events_received_total"), 10);
    for (size_t i = 0; i < 3; i++) {
        answer(i, SL_OK);
    }
    CHECK_STR(acks(&w, fd), "2A5 2A3 2A2 ");
    CHECK(metric(&w, "sluice_aggregator_pending_bytes") == 0);
    CHECK_INT(metric(&w, "sluice_aggregator_queue_events"), 0);
    close(fd);
    world_stop(&w);
}

/* W=4, a block of 2, then the other 2 bare: the block is a piece (ACK 2), the rest ACK 4. */
TEST(a_block_holding_part_of_its_window)
{
    struct world w = {0};
    world_start2(&w, "", "{workers: 1, batch_size: 10, filters: [drop: {}]}");
    int fd = client(&w);
    struct sl_buf b, inner;
    sl_buf_init(&b, 0);
    sl_buf_init(&inner, 0);
    sl_lj_put_window(&b, SL_LJ_V2, 4);
    sl_lj_put_json(&inner, 1, "{\"w\":1}", 7);
    sl_lj_put_json(&inner, 2, "{\"w\":1}", 7);
    CHECK_INT(sl_lj_put_compressed(&b, SL_LJ_ZLIB, 1, inner.data, inner.len), 0);
    sl_lj_put_json(&b, 3, "{\"w\":2}", 7);
    sl_lj_put_json(&b, 4, "{\"w\":2}", 7);
    send_raw(fd, b.data, b.len);
    want_held = 2;
    CHECK(run_until(&w, have_held, 2000));
    CHECK_INT(held[0].n, 2);
    CHECK_INT(held[0].w, 1);
    CHECK_INT(held[1].n, 2);
    CHECK_INT(held[1].w, 2);
    CHECK_INT(unpacked(&w), 1);
    answer(1, SL_OK);
    CHECK_STR(acks(&w, fd), "");  /* the piece before it first */
    answer(0, SL_OK);
    CHECK_STR(acks(&w, fd), "2A2 2A4 ");
    close(fd);
    sl_buf_free(&b);
    sl_buf_free(&inner);
    world_stop(&w);
}


/* Windows cut in pieces by max_window_events, and new windows before their end: every
 * piece and partial window ACKed with its last number, in order, never an ACK 0 (a piece
 * is cut by the frame that goes into the next one, so the rest is never empty). */
TEST(pieces_and_partial_windows_ack_their_last_number)
{
    struct world w = {0};
    world_start(&w, "  max_window_events: 2\n");
    int fd = client(&w);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_lj_put_window(&b, SL_LJ_V2, 4);
    sl_lj_put_json(&b, 1, "{\"w\":1}", 7);
    sl_lj_put_json(&b, 2, "{\"w\":1}", 7);
    sl_lj_put_json(&b, 3, "{\"w\":1}", 7);  /* cuts the first piece, starts the second ... */
    sl_lj_put_window(&b, SL_LJ_V2, 1);        /* ... which a new window ends early */
    sl_lj_put_json(&b, 1, "{\"w\":2}", 7);
    send_raw(fd, b.data, b.len);
    want_held = 3;
    CHECK(run_until(&w, have_held, 2000));
    CHECK_INT(held[0].n, 2);
    CHECK_INT(held[1].n, 1);
    CHECK_INT(held[2].n, 1);
    for (size_t i = 0; i < 3; i++) {
        answer(i, SL_OK);
    }
    CHECK_STR(acks(&w, fd), "2A2 2A3 2A1 ");
    sl_buf_free(&b);

    /* A window whose second piece completes it, then one a new window ends early. */
    sl_buf_init(&b, 0);
    sl_lj_put_window(&b, SL_LJ_V2, 4);
    sl_lj_put_json(&b, 1, "{\"w\":3}", 7);
    sl_lj_put_json(&b, 2, "{\"w\":3}", 7);
    sl_lj_put_json(&b, 3, "{\"w\":3}", 7);
    sl_lj_put_json(&b, 4, "{\"w\":3}", 7);
    send_raw(fd, b.data, b.len);
    want_held = 5;
    CHECK(run_until(&w, have_held, 2000));
    answer(3, SL_OK);
    answer(4, SL_OK);
    CHECK_STR(acks(&w, fd), "2A2 2A4 ");
    sl_buf_reset(&b);
    sl_lj_put_window(&b, SL_LJ_V2, 3);
    sl_lj_put_json(&b, 1, "{\"w\":4}", 7);
    sl_lj_put_json(&b, 2, "{\"w\":4}", 7);
    sl_lj_put_window(&b, SL_LJ_V2, 1);
    sl_lj_put_json(&b, 1, "{\"w\":5}", 7);
    send_raw(fd, b.data, b.len);
    want_held = 7;
    CHECK(run_until(&w, have_held, 2000));
    answer(5, SL_OK);
    answer(6, SL_OK);
    CHECK_STR(acks(&w, fd), "2A2 2A1 ");
    close(fd);
    sl_buf_free(&b);
    world_stop(&w);
}

int main(void)
{
    sl_log_init("agg_listener_test", SL_LOG_ERROR, SL_LOG_TEXT);
    RUN(acks_in_window_order_and_pending_window_limit);
    RUN(reset_while_in_flight_then_completion);
    RUN(exit_with_windows_in_flight_frees_them);
    RUN(failed_delivery_closes_without_ack);
    RUN(keepalive_ack_zero_while_pending);
    RUN(global_pending_events_limit);
    RUN(global_pending_bytes_limit);
    RUN(workers_keep_each_connections_window_order);
    RUN(big_window_filtered_in_slices_and_delivered_whole);
    RUN(exit_while_workers_filter);
    RUN(frame_timeout_closes_a_trickling_client);
    RUN(caps_are_counted_by_reason);
    RUN(the_same_with_windows_in_blocks);
    RUN(blocks_are_inflated_by_the_workers);
    RUN(a_block_holding_part_of_its_window);
    RUN(pieces_and_partial_windows_ack_their_last_number);
    return TEST_SUMMARY();
}
