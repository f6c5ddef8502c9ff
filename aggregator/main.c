/*
 * main.c - sluice-aggregator: reads the configuration, builds the pipeline
 * (filters and outputs), serves Lumberjack (optionally over TLS) on
 * input.listen and Prometheus metrics on metrics.listen, all on one event
 * loop; only the filters run elsewhere, on each pipeline's worker threads,
 * and the Kafka inputs' consumers on threads of their own (kafka_input.h).
 *
 * Signals: SIGTERM/SIGINT drain (stop reading, let pending windows be
 * delivered and ACKed within shutdown_timeout, then exit 0); a second one
 * exits at once. SIGHUP reopens output files and reloads the configuration:
 * a valid one gets a new pipeline for new windows while windows in flight
 * finish on the old one (freed, its workers joined, once idle) and the TLS
 * certificates are re-read for new connections; an invalid one is logged
 * and the running configuration stays.
 *
 * Health: /healthz is 503 once a window has been in a pipeline longer than
 * metrics.unhealthy_after (an output that cannot deliver); /readyz, for load
 * balancers, is 200 only while the listener accepts, /healthz would be 200 and
 * no SIGTERM is draining.
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "instance.h"
#include "kafka_input.h"
#include "listener.h"
#include "pipeline.h"
#include "queue.h"
#include "testpipe.h"
#include "sluice/cli.h"
#include "sluice/http.h"
#include "sluice/log.h"
#include "sluice/loop.h"
#include "sluice/metrics.h"
#include "sluice/net.h"
#include "sluice/notify.h"
#include "sluice/regex.h"

#define PROGRAM "sluice-aggregator"
#define DEFAULT_CONFIG "/etc/sluice/aggregator.yml"
#define STOP_POLL_MS 20
#define GC_MS 1000

struct agg {
    const char *config_path;
    struct sl_loop *loop;
    struct sl_metrics *metrics;
    struct sl_http *http;
    struct agg_listener *listener;    /* NULL: `inputs:` has no beats entry */
    struct agg_kafka **kafka;         /* one per `inputs: - kafka:` entry */
    size_t nkafka;
    struct agg_queue *queue;          /* queue.type persisted; NULL: memory */
    struct agg_conf conf;             /* the configuration running now */
    char *bound_listen;               /* what the listener and the HTTP server are bound */
    char *bound_metrics;              /*   to: a reload cannot move them */
    struct agg_pipeline *pipeline;    /* gets new windows */
    struct agg_pipeline **retired;    /* replaced by reloads, finishing their batches */
    size_t nretired;
    bool stopping;
    bool check_only;                  /* -t */
    uint64_t deadline;
    struct sl_timer *stop_timer;
    struct sl_timer *gc_timer;
    struct sl_metric *m_reloads_ok;
    struct sl_metric *m_reloads_failed;
};

/* Loads path into *conf and builds its pipeline; NULL with the errors in conf->cfg. */
static struct agg_pipeline *load(struct agg *a, const char *path, struct agg_conf *conf)
{
    int rc = agg_conf_load(conf, path);
    /* Plugins check their options even when the rest has errors, so -t shows them all. */
    if (rc != 0 && !conf->cfg.root) {
        return NULL;
    }
    conf->check_only = a->check_only;
    return agg_pipeline_new(conf, a->loop, a->metrics);
}

static void log_errors(const struct sl_cfg *cfg)
{
    const char *p = cfg->errors.data;
    const char *end = p ? p + cfg->errors.len : NULL;
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        sl_error("%.*s", (int)n, p);
        p += n + 1;
    }
}

/* "host:port" with the port the OS actually chose. */
static void describe(const char *addr, int port, char *out, size_t outlen)
{
    char host[256];
    int unused;
    if (sl_net_split(addr, host, sizeof(host), &unused) != 0 || host[0] == '\0') {
        snprintf(host, sizeof(host), "0.0.0.0");
    }
    snprintf(out, outlen, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

static void free_idle_retired(struct agg *a)
{
    size_t keep = 0;
    for (size_t i = 0; i < a->nretired; i++) {
        if (agg_pipeline_idle(a->retired[i])) {
            agg_pipeline_free(a->retired[i]);
            sl_info("the pipeline replaced by a reload finished its last batch and was freed");
        } else {
            a->retired[keep++] = a->retired[i];
        }
    }
    a->nretired = keep;
}

static void on_gc(struct sl_loop *loop, void *arg)
{
    free_idle_retired(arg);
}

static void reopen_all(struct agg *a)
{
    agg_pipeline_reopen(a->pipeline);
    for (size_t i = 0; i < a->nretired; i++) {
        agg_pipeline_reopen(a->retired[i]);
    }
}

static void reload(struct agg *a)
{
    sl_info("SIGHUP: reopening output files and reloading %s", a->config_path);
    reopen_all(a);
    struct agg_conf nc;
    struct agg_pipeline *np = load(a, a->config_path, &nc);
    if (!np) {
        sl_error("reload: %s has %d error(s); keeping the running configuration",
                 a->config_path, nc.cfg.nerrors);
        log_errors(&nc.cfg);
        agg_conf_free(&nc);
        sl_counter_inc(a->m_reloads_failed);
        return;
    }
    if (nc.beats != a->conf.beats || nc.nkafka != a->conf.nkafka) {
        sl_warn("reload: the list of inputs changed; it takes effect after a restart");
    }
    if (strcmp(nc.listen, a->bound_listen) != 0) {
        sl_warn("reload: input.listen changed (%s -> %s); it takes effect after a restart",
                a->bound_listen, nc.listen);
    }
    if (strcmp(nc.metrics_listen, a->bound_metrics) != 0) {
        sl_warn("reload: metrics.listen changed (%s -> %s); it takes effect after a restart",
                a->bound_metrics, nc.metrics_listen);
    }
    a->retired = sl_realloc(a->retired, (a->nretired + 1) * sizeof(*a->retired));
    a->retired[a->nretired++] = a->pipeline;
    a->pipeline = np;
    if (a->listener) {
        agg_listener_set_pipeline(a->listener, np);
        agg_listener_apply(a->listener, &nc);
    }
    for (size_t i = 0; i < a->nkafka; i++) {
        /* The consumers' own options take effect after a restart (docs/aggregator.md). */
        agg_kafka_set_pipeline(a->kafka[i], np);
    }
    if (nc.queue_type != a->conf.queue_type ||
        (a->queue && strcmp(nc.queue_path, a->conf.queue_path) != 0)) {
        sl_warn("reload: queue.type or queue.path changed; it takes effect after a restart");
        /* The running queue's settings stay what they are, path and type included. */
        nc.queue_type = a->conf.queue_type;
        free(nc.queue_path);
        nc.queue_path = sl_strdup(a->conf.queue_path);
    }
    if (a->queue) {
        agg_queue_apply(a->queue, &nc);
        agg_queue_set_pipeline(a->queue, np);
    }
    agg_conf_free(&a->conf);
    a->conf = nc;
    free_idle_retired(a);
    sl_counter_inc(a->m_reloads_ok);
    sl_info("reload: configuration applied (%zu filters, %zu outputs)", nc.nfilters,
            nc.noutputs);
}

static bool all_idle(const struct agg *a)
{
    if (a->queue && !agg_queue_idle(a->queue)) {
        return false;
    }
    if (!agg_pipeline_idle(a->pipeline)) {
        return false;
    }
    for (size_t i = 0; i < a->nretired; i++) {
        if (!agg_pipeline_idle(a->retired[i])) {
            return false;
        }
    }
    return true;
}

static bool inputs_drained(struct agg *a)
{
    bool done = !a->listener || agg_listener_drained(a->listener);
    for (size_t i = 0; i < a->nkafka; i++) {
        done = agg_kafka_drained(a->kafka[i]) && done;
    }
    return done;
}

static void stop_poll(struct sl_loop *loop, void *arg)
{
    struct agg *a = arg;
    if (inputs_drained(a) && all_idle(a)) {
        sl_info("every pending window was delivered and acknowledged; exiting");
        sl_loop_stop(loop);
        return;
    }
    if (sl_now_ms() >= a->deadline) {
        sl_warn("shutdown_timeout reached with %zu window(s) not acknowledged; the clients "
                "will resend them (kafka: what was not committed is consumed again)",
                a->listener ? agg_listener_pending(a->listener) : 0);
        sl_loop_stop(loop);
    }
}

static void start_stop(struct agg *a, int signo)
{
    if (a->stopping) {
        sl_warn("second signal %d: exiting now", signo);
        sl_loop_stop(a->loop);
        return;
    }
    a->stopping = true;
    sl_notify("STOPPING=1");
    a->deadline = sl_now_ms() + a->conf.shutdown_timeout_ms;
    sl_info("signal %d: stopping (waiting up to %llu ms for pending windows)", signo,
            (unsigned long long)a->conf.shutdown_timeout_ms);
    if (a->queue) {
        /* What is in the queue stays there for the next start; windows being
         * persisted are still ACKed. */
        agg_queue_stop(a->queue);
    }
    if (a->listener) {
        agg_listener_drain(a->listener);
    }
    for (size_t i = 0; i < a->nkafka; i++) {
        agg_kafka_drain(a->kafka[i], a->deadline);
    }
    agg_pipeline_shutdown(a->pipeline, a->deadline);
    for (size_t i = 0; i < a->nretired; i++) {
        agg_pipeline_shutdown(a->retired[i], a->deadline);
    }
    a->stop_timer = sl_loop_timer(a->loop, STOP_POLL_MS, true, stop_poll, a);
    stop_poll(a->loop, a);
}

static void on_signal(struct sl_loop *loop, int signo, void *arg)
{
    struct agg *a = arg;
    if (signo == SIGHUP) {
        if (!a->stopping) {
            sl_notify("RELOADING=1");
            reload(a);
            sl_notify("READY=1");
        }
        return;
    }
    start_stop(a, signo);
}

/*
 * Unhealthy once the oldest window not yet answered by the pipeline was
 * submitted more than unhealthy_after ago: an output that cannot deliver
 * (retrying forever) or that delivers more slowly than windows arrive. Counted
 * per window, so a window submitted after a quiet spell is not unhealthy.
 */
static bool health(void *arg, struct sl_buf *body)
{
    struct agg *a = arg;
    uint64_t submit_ms;
    if (a->queue && agg_queue_oldest(a->queue, &submit_ms)) {
        /* Persisted: windows are ACKed at once; what waits on the outputs is in the queue. */
        uint64_t now = sl_wall_ms();
        uint64_t waited = now > submit_ms ? now - submit_ms : 0;
        if (waited > a->conf.unhealthy_after_ms) {
            sl_buf_printf(body,
                          "the oldest event in the persisted queue came in %llu ms ago "
                          "(unhealthy_after %llu ms); %llu events queued\n",
                          (unsigned long long)waited,
                          (unsigned long long)a->conf.unhealthy_after_ms,
                          (unsigned long long)agg_queue_events(a->queue));
            return false;
        }
    }
    bool pending = a->listener && agg_listener_oldest_pending(a->listener, &submit_ms);
    for (size_t i = 0; i < a->nkafka; i++) {
        uint64_t k_ms;
        if (agg_kafka_oldest_pending(a->kafka[i], &k_ms) && (!pending || k_ms < submit_ms)) {
            submit_ms = k_ms;
            pending = true;
        }
    }
    if (pending) {
        uint64_t now = sl_now_ms();
        uint64_t waited = now > submit_ms ? now - submit_ms : 0;
        if (waited > a->conf.unhealthy_after_ms) {
            size_t n = a->listener ? agg_listener_pending(a->listener) : 0;
            sl_buf_printf(body,
                          "the oldest pending window was submitted %llu ms ago (unhealthy_after "
                          "%llu ms); %zu window%s pending\n",
                          (unsigned long long)waited,
                          (unsigned long long)a->conf.unhealthy_after_ms, n, n == 1 ? "" : "s");
            return false;
        }
    }
    sl_buf_puts(body, "ok\n");
    return true;
}

static bool ready(void *arg, struct sl_buf *body)
{
    struct agg *a = arg;
    if (a->stopping) {
        sl_buf_puts(body, "draining: stopping on a signal\n");
        return false;
    }
    if (a->listener && !agg_listener_accepting(a->listener)) {
        sl_buf_puts(body, "the listener is not accepting connections\n");
        return false;
    }
    if (!health(a, body)) {
        return false;
    }
    sl_buf_reset(body);
    return true;
}

/*
 * --plugin-docs [NAME]: every plugin's options (or NAME's) as Markdown, from
 * the plugins' own tables: the docs cannot drift from the code.
 */
static int plugin_docs(const char *only)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    int found = 0;
    for (const struct sl_plugin *const *p = sl_plugins; *p; p++) {
        if (only && strcmp((*p)->name, only) != 0) {
            continue;
        }
        if (found++) {
            sl_buf_putc(&b, '\n');
        }
        agg_plugin_doc(&b, *p);
    }
    if (b.len) {
        fwrite(b.data, 1, b.len, stdout);
    }
    sl_buf_free(&b);
    if (!found) {
        fprintf(stderr, "%s: no plugin named '%s'\n", PROGRAM, only);
        return 2;
    }
    return 0;
}

/*
 * --test-pipeline [-c FILE] [--json]: lines from stdin through the filters,
 * every event that comes out printed as indented JSON (testpipe.h).
 */
static int test_pipeline(int argc, char **argv)
{
    const char *config = DEFAULT_CONFIG;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else {
            fprintf(stderr, "usage: %s --test-pipeline [-c FILE] [--json] < lines\n"
                    "  each line becomes {\"@timestamp\": now, \"message\": line} (--json: the "
                    "line is the event);\n  the configuration's filters run on it and each "
                    "event that comes out is printed\n", PROGRAM);
            return 2;
        }
    }
    sl_log_init(PROGRAM, SL_LOG_WARN, SL_LOG_TEXT);
    return agg_test_pipeline(config, json, stdin, stdout, stderr);
}

int main(int argc, char **argv)
{
    struct sl_cli cli;
    struct agg a = {0};
    int rc = 1;
    if (argc >= 2 && strcmp(argv[1], "--plugin-docs") == 0) {
        return plugin_docs(argc >= 3 ? argv[2] : NULL);
    }
    if (argc >= 2 && strcmp(argv[1], "--test-pipeline") == 0) {
        return test_pipeline(argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[1], "--queue-stats") == 0) {
        if (argc != 3) {
            fprintf(stderr, "usage: %s --queue-stats PATH\n  prints what the persisted queue "
                    "in PATH (queue.path) holds, as JSON; changes nothing\n", PROGRAM);
            return 2;
        }
        return agg_queue_stats(argv[2]);
    }
    sl_cli_parse(argc, argv, PROGRAM, DEFAULT_CONFIG, &cli);
    /* Every window allocates and frees megabyte-sized buffers (its arena, the
     * inflated block, output batches). Left to glibc's defaults these go to mmap
     * and back to the kernel each time, and page faults cost ~12% of the CPU.
     * Up to 4 MB they now stay in the heap; larger ones (a zip bomb's inflate
     * buffer on its way to max_window_bytes) still use mmap, so mremap grows them
     * without a copy and the memory goes back when they are freed. */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 32 << 20);
    a.config_path = cli.config;
    a.loop = sl_loop_new();
    sl_raise_nofile();
    a.metrics = sl_metrics_new();
    sl_metrics_build_info(a.metrics, "sluice_aggregator");
    sl_regex_count_timeouts_in(sl_metrics_counter(
        a.metrics, "sluice_aggregator_regex_timeouts_total",
        "Regex searches (grok patterns and `matches` conditions) stopped at their time budget.", NULL));
    if (!a.loop) {
        goto out;
    }

    a.check_only = cli.test_config;
    a.pipeline = load(&a, cli.config, &a.conf);
    if (!a.pipeline) {
        fwrite(a.conf.cfg.errors.data, 1, a.conf.cfg.errors.len, stderr);
        if (a.conf.cfg.nerrors == 0) {
            fprintf(stderr, "%s: invalid configuration\n", cli.config);
        }
        rc = 2;
        goto out;
    }
    if (cli.test_config) {
        printf("configuration OK\n");
        rc = 0;
        goto out;
    }

    if (sl_loop_signals(a.loop, on_signal, &a) != 0) {
        goto out;
    }
    a.m_reloads_ok = sl_metrics_counter(a.metrics, "sluice_aggregator_reloads_total",
                                        "Configuration reloads (SIGHUP), by result.",
                                        (const char *const[]){"result", "ok", NULL});
    a.m_reloads_failed = sl_metrics_counter(a.metrics, "sluice_aggregator_reloads_total",
                                            "Configuration reloads (SIGHUP), by result.",
                                            (const char *const[]){"result", "failed", NULL});
    if (a.conf.queue_type == AGG_QUEUE_PERSISTED) {
        a.queue = agg_queue_open(a.loop, &a.conf, a.metrics, a.pipeline);
        if (!a.queue) {
            goto out;
        }
    }
    if (a.conf.beats) {
        a.listener = agg_listener_new(a.loop, &a.conf, a.metrics, a.pipeline);
        if (!a.listener) {
            sl_error("cannot listen on %s", a.conf.listen);
            goto out;
        }
        agg_listener_set_queue(a.listener, a.queue);
    }
    /* Kafka is the buffer: its batches go to the pipeline, never to the persisted queue. */
    a.kafka = sl_calloc(a.conf.nkafka ? a.conf.nkafka : 1, sizeof(*a.kafka));
    for (size_t i = 0; i < a.conf.nkafka; i++) {
        a.kafka[i] = agg_kafka_new(a.loop, &a.conf.kafka[i], &a.conf, a.metrics, a.pipeline);
        if (!a.kafka[i]) {
            goto out;
        }
        a.nkafka++;
    }
    a.http = sl_http_start(a.loop, a.conf.metrics_listen, a.metrics, health, &a);
    if (!a.http) {
        sl_error("cannot serve metrics on %s", a.conf.metrics_listen);
        goto out;
    }
    sl_http_set_ready(a.http, ready, &a);
    a.bound_listen = sl_strdup(a.conf.listen);
    a.bound_metrics = sl_strdup(a.conf.metrics_listen);
    char where[300];
    if (a.listener) {
        describe(a.conf.listen, agg_listener_port(a.listener), where, sizeof(where));
        sl_info("listening on %s (Lumberjack; %zu filters, %zu outputs)", where,
                a.conf.nfilters, a.conf.noutputs);
    }
    describe(a.conf.metrics_listen, sl_http_port(a.http), where, sizeof(where));
    sl_info("metrics on http://%s/metrics", where);
    a.gc_timer = sl_loop_timer(a.loop, GC_MS, true, on_gc, &a);

    sl_notify("READY=1");  /* systemd Type=notify: listeners and /metrics are bound */
    rc = sl_loop_run(a.loop) == 0 ? 0 : 1;
    sl_info("stopped");

out:
    /* A worker in the middle of a long match ends it now, so joining the
     * workers below takes no longer than one clock reading of the budget. */
    sl_regex_abort_all();
    /* Pipelines before the listener: see agg_listener_free(). */
    agg_pipeline_free(a.pipeline);
    for (size_t i = 0; i < a.nretired; i++) {
        agg_pipeline_free(a.retired[i]);
    }
    free(a.retired);
    agg_queue_free(a.queue);  /* after the pipelines (they borrow its batches) */
    agg_listener_free(a.listener);
    /* After the pipelines, as the listener: batches in flight are dropped uncommitted. */
    for (size_t i = 0; i < a.nkafka; i++) {
        agg_kafka_free(a.kafka[i]);
    }
    free(a.kafka);
    if (a.http) {
        sl_http_stop(a.http);
    }
    sl_timer_cancel(a.stop_timer);
    sl_timer_cancel(a.gc_timer);
    agg_conf_free(&a.conf);
    free(a.bound_listen);
    free(a.bound_metrics);
    sl_regex_count_timeouts_in(NULL);
    sl_metrics_free(a.metrics);
    sl_loop_free(a.loop);
    return rc;
}
