/*
 * main.c - sluice-shipper: wires the tailer, the queue, the registry and the
 * Lumberjack sender onto one event loop, and handles signals: SIGTERM/SIGINT
 * drain what is in flight (bounded by shutdown_timeout) and write the
 * registry; SIGHUP re-reads the config and rebuilds the inputs, and the output
 * only when its section changed, around the same queue, so nothing read is lost.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "conf.h"
#include "queue.h"
#include "registry.h"
#include "sender.h"
#include "sluice/cli.h"
#include "sluice/http.h"
#include "sluice/log.h"
#include "sluice/loop.h"
#include "sluice/metrics.h"
#include "sluice/notify.h"
#include "sluice/regex.h"
#include "tail.h"

#define PUMP_BUDGET (4u << 20)

struct shipper {
    struct sl_cli cli;
    struct shipper_conf conf;
    struct sl_loop *loop;
    struct sl_metrics *metrics;
    struct registry *reg;
    struct queue q;
    struct tail *tail;
    struct sender *sender;
    struct sl_http *http;
    struct sl_timer *kick;       /* a 0 ms timer: "come back without sleeping" */
    struct sl_timer *reg_timer;
    bool stopping;
    uint64_t deadline;
    int exit_code;
};

/* check_registry: at start-up and for -t (which creates nothing: create is
 * false), not on reload (registry.path changes only on restart). */
static int load_conf(const char *path, struct shipper_conf *out, bool print_errors,
                     bool check_registry, bool create)
{
    struct sl_cfg cfg = {0};
    memset(out, 0, sizeof(*out));
    int rc = sl_cfg_load(&cfg, path);
    if (rc == 0) {
        rc = shipper_conf_parse(&cfg, out);
    }
    if (rc == 0 && cfg.nerrors == 0 && check_registry) {
        rc = shipper_conf_check_registry(&cfg, out, create);
    }
    if (rc != 0 || cfg.nerrors) {
        if (print_errors) {
            fputs(sl_buf_cstr(&cfg.errors), stderr);
        } else {
            sl_error("configuration errors:\n%s", sl_buf_cstr(&cfg.errors));
        }
        shipper_conf_free(out);
        rc = SL_EINVAL;
    }
    sl_cfg_free(&cfg);
    return rc;
}

static void on_kick(struct sl_loop *loop, void *arg)
{
    struct shipper *s = arg;
    s->kick = NULL;
}

static void before_sleep(struct sl_loop *loop, void *arg)
{
    struct shipper *s = arg;
    bool more = false;
    if (!s->stopping) {
        more = tail_pump(s->tail, PUMP_BUDGET);
    }
    struct batch *open = queue_open_batch(&s->q);
    if (open) {
        /* Send as soon as a connection is free and the files are drained, so a
         * quiet log ships at once; under load batches fill to bulk_max_events. */
        bool aged = sl_now_ms() - open->created_ms >= s->conf.output.flush_interval_ms;
        if (s->stopping || aged || (!more && sender_idle(s->sender))) {
            queue_seal(&s->q);
        }
    }
    sender_pump(s->sender);
    if (s->conf.registry_flush_ms == 0) {
        registry_flush(s->reg);
    }
    if (s->stopping && (s->q.events == 0 || sl_now_ms() >= s->deadline)) {
        if (s->q.events) {
            sl_warn("shutdown_timeout reached with %zu events unACKed: they will be read "
                    "again on the next start", s->q.events);
        }
        sl_loop_stop(loop);
        return;
    }
    if (more && !s->kick) {
        s->kick = sl_loop_timer(loop, 0, false, on_kick, s);
    }
}

static void on_registry_timer(struct sl_loop *loop, void *arg)
{
    struct shipper *s = arg;
    registry_flush(s->reg);
    registry_expire(s->reg, 3600000);
}

static void start_io(struct shipper *s)
{
    s->q.bulk_max = (uint32_t)s->conf.output.bulk_max_events;
    s->q.max_events = (size_t)s->conf.queue_max_events;
    s->sender = sender_new(s->loop, &s->conf.output, &s->q, s->metrics);
    s->tail = tail_new(s->loop, &s->conf, &s->q, s->reg, s->metrics);
}

static void stop_io(struct shipper *s)
{
    tail_free(s->tail);
    s->tail = NULL;
    sender_free(s->sender);
    s->sender = NULL;
}

static void reload(struct shipper *s)
{
    struct shipper_conf next;
    if (load_conf(s->cli.config, &next, false, false, false) != 0) {
        sl_error("reload: %s is invalid; keeping the running configuration", s->cli.config);
        return;
    }
    /* One process, one identity: a reload keeps both ids. */
    memcpy(next.agent_id, s->conf.agent_id, sizeof(next.agent_id));
    memcpy(next.ephemeral_id, s->conf.ephemeral_id, sizeof(next.ephemeral_id));
    if (strcmp(next.registry_path, s->conf.registry_path) != 0 ||
        strcmp(next.metrics_listen, s->conf.metrics_listen) != 0) {
        sl_warn("reload: registry.path and metrics.listen change only on restart");
        free(next.registry_path);
        next.registry_path = sl_strdup(s->conf.registry_path);
        free(next.metrics_listen);
        next.metrics_listen = sl_strdup(s->conf.metrics_listen);
    }
    /*
     * An unchanged output keeps the running sender: its connections, windows in
     * flight and pending ACKs, so a reload sends nothing twice. With ssl enabled
     * the sender is rebuilt anyway, since certificate and key files may have
     * been rotated under the same paths and only a new TLS context reads them.
     */
    bool keep_sender = !next.output.ssl.enabled && output_conf_equal(&next.output, &s->conf.output);
    tail_free(s->tail);
    s->tail = NULL;
    if (keep_sender) {
        /* The sender points into s->conf.output (hosts included): keep those
         * very structures and drop the equal copy just parsed. */
        struct output_conf same = next.output;
        next.output = s->conf.output;
        s->conf.output = same;
    } else {
        /* Windows in flight are re-sent on the new connections: at least once, never lost. */
        sender_free(s->sender);
        s->sender = NULL;
    }
    queue_seal(&s->q);
    shipper_conf_free(&s->conf);
    s->conf = next;
    s->q.bulk_max = (uint32_t)s->conf.output.bulk_max_events;
    s->q.max_events = (size_t)s->conf.queue_max_events;
    if (!keep_sender) {
        s->sender = sender_new(s->loop, &s->conf.output, &s->q, s->metrics);
    }
    s->tail = tail_new(s->loop, &s->conf, &s->q, s->reg, s->metrics);
    sl_info("reload: configuration from %s applied (output %s)", s->cli.config,
            keep_sender ? "unchanged: connections kept" : "rebuilt");
}

static void on_signal(struct sl_loop *loop, int signo, void *arg)
{
    struct shipper *s = arg;
    if (signo == SIGHUP) {
        if (!s->stopping) {
            sl_notify("RELOADING=1");
            reload(s);
            sl_notify("READY=1");
        }
        return;
    }
    if (s->stopping) {
        return;
    }
    sl_info("signal %d: stopping (up to %llu ms to deliver %zu events in flight)", signo,
            (unsigned long long)s->conf.shutdown_timeout_ms, s->q.events);
    s->stopping = true;
    sl_notify("STOPPING=1");
    s->deadline = sl_now_ms() + s->conf.shutdown_timeout_ms;
    tail_stop(s->tail);
}

/*
 * Unhealthy once an event has waited longer than unhealthy_after for its ACK,
 * counted from when that event was read. Measuring from the last ACK got two
 * cases wrong: with no ACK ever (aggregator never reachable) it never fired,
 * and a line read after a quiet spell longer than unhealthy_after fired it at
 * once, while its window was merely in flight.
 */
static bool health(void *arg, struct sl_buf *body)
{
    struct shipper *s = arg;
    uint64_t read_ms;
    if (queue_oldest_unacked(&s->q, &read_ms)) {
        uint64_t waited = sl_now_ms() - read_ms;
        if (waited > s->conf.unhealthy_after_ms) {
            sl_buf_printf(body,
                          "the oldest unACKed event was read %llu ms ago (unhealthy_after %llu "
                          "ms); %zu events queued\n",
                          (unsigned long long)waited,
                          (unsigned long long)s->conf.unhealthy_after_ms, s->q.events);
            return false;
        }
    }
    uint64_t failing = registry_failing_since(s->reg);
    if (failing && sl_now_ms() - failing > s->conf.unhealthy_after_ms) {
        /* ACKs come in but are not saved: a restart would send them all again. */
        sl_buf_printf(body, "registry writes have failed for %llu ms (unhealthy_after %llu ms): "
                            "see the log\n",
                      (unsigned long long)(sl_now_ms() - failing),
                      (unsigned long long)s->conf.unhealthy_after_ms);
        return false;
    }
    sl_buf_puts(body, "ok\n");
    return true;
}

int main(int argc, char **argv)
{
    struct shipper s = {0};
    sl_cli_parse(argc, argv, "sluice-shipper", "/etc/sluice/shipper.yml", &s.cli);
    if (load_conf(s.cli.config, &s.conf, true, true, !s.cli.test_config) != 0) {
        return 2;
    }
    if (s.cli.test_config) {
        puts("configuration OK");
        shipper_conf_free(&s.conf);
        return 0;
    }
    s.exit_code = 1;
    sl_raise_nofile();
    s.metrics = sl_metrics_new();
    sl_metrics_build_info(s.metrics, "sluice_shipper");
    sl_regex_count_timeouts_in(sl_metrics_counter(
        s.metrics, "sluice_shipper_regex_timeouts_total",
        "Regex searches (include_lines, exclude_lines, exclude_files and multiline patterns) stopped at their time budget.", NULL));
    if (registry_open(s.conf.registry_path, &s.reg) != 0) {
        goto out;
    }
    registry_metrics(s.reg, s.metrics);
    if (agent_id_load(s.conf.registry_path, s.conf.agent_id) != 0) {
        goto out;
    }
    if (agent_uuid_v4(s.conf.ephemeral_id) != 0) {
        sl_error("agent: no random bytes for agent.ephemeral_id: %s", strerror(errno));
        goto out;
    }
    s.loop = sl_loop_new();
    if (!s.loop || sl_loop_signals(s.loop, on_signal, &s) != 0) {
        goto out;
    }
    queue_init(&s.q, (size_t)s.conf.queue_max_events, (uint32_t)s.conf.output.bulk_max_events,
               s.reg, s.metrics);
    start_io(&s);
    /* Serving /metrics last makes it a readiness signal: the initial scan (which
     * applies start_position) is done by the time it answers. */
    s.http = sl_http_start(s.loop, s.conf.metrics_listen, s.metrics, health, &s);
    if (!s.http) {
        stop_io(&s);
        goto out;
    }
    if (s.conf.registry_flush_ms) {
        s.reg_timer = sl_loop_timer(s.loop, s.conf.registry_flush_ms, true, on_registry_timer, &s);
    }
    sl_loop_before_sleep(s.loop, before_sleep, &s);
    sl_info("sluice-shipper %s started: %zu inputs, metrics on port %d", SL_VERSION,
            s.conf.ninputs, sl_http_port(s.http));
    sl_notify("READY=1");  /* systemd Type=notify: initial scan done, /metrics bound */
    if (sl_loop_run(s.loop) == 0) {
        s.exit_code = 0;
    }
    if (registry_flush(s.reg) != 0) {
        s.exit_code = 1;
    }
    stop_io(&s);
    sl_info("stopped");
out:
    queue_free(&s.q);
    sl_timer_cancel(s.reg_timer);
    sl_timer_cancel(s.kick);
    sl_http_stop(s.http);
    sl_loop_free(s.loop);
    registry_close(s.reg);
    sl_regex_count_timeouts_in(NULL);
    sl_metrics_free(s.metrics);
    shipper_conf_free(&s.conf);
    return s.exit_code;
}
