/*
 * metrics_test.c - the Prometheus registry: exact text of every metric type,
 * escaping, series identity, lock-free updates from several threads and the
 * process_* metrics read from /proc.
 */
#include "sluice/metrics.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

/* Renders reg and cuts the output before the process_* metrics. */
static char *render_own(struct sl_metrics *reg)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    CHECK_INT(sl_metrics_render(reg, &b), 0);
    char *s = sl_strdup(sl_buf_cstr(&b));
    char *proc = strstr(s, "# HELP process_");
    if (proc) {
        *proc = '\0';
    }
    sl_buf_free(&b);
    return s;
}

TEST(counter_without_labels_renders_zero_from_the_start)
{
    struct sl_metrics *reg = sl_metrics_new();
    struct sl_metric *m = sl_metrics_counter(reg, "sluice_test_lines_total", "Lines read.", NULL);
    char *s = render_own(reg);
    CHECK_STR(s, "# HELP sluice_test_lines_total Lines read.\n"
                 "# TYPE sluice_test_lines_total counter\n"
                 "sluice_test_lines_total 0\n");
    free(s);
    sl_counter_inc(m);
    sl_counter_add(m, 41);
    CHECK(sl_metric_value(m) == 42.0);
    s = render_own(reg);
    CHECK_STR(s, "# HELP sluice_test_lines_total Lines read.\n"
                 "# TYPE sluice_test_lines_total counter\n"
                 "sluice_test_lines_total 42\n");
    free(s);
    sl_metrics_free(reg);
}

TEST(counter_with_labels_in_creation_order)
{
    struct sl_metrics *reg = sl_metrics_new();
    const char *const a[] = {"filter", "grok", "result", "ok", NULL};
    const char *const b[] = {"filter", "grok", "result", "failed", NULL};
    struct sl_metric *ma = sl_metrics_counter(reg, "f_total", "Filtered.", a);
    struct sl_metric *mb = sl_metrics_counter(reg, "f_total", "Filtered.", b);
    CHECK(ma != mb);
    sl_counter_add(ma, 7);
    sl_counter_add(mb, 18446744073709551615ull);
    char *s = render_own(reg);
    CHECK_STR(s, "# HELP f_total Filtered.\n"
                 "# TYPE f_total counter\n"
                 "f_total{filter=\"grok\",result=\"ok\"} 7\n"
                 "f_total{filter=\"grok\",result=\"failed\"} 18446744073709551615\n");
    free(s);
    sl_metrics_free(reg);
}

TEST(removed_series_leave_the_family)
{
    struct sl_metrics *reg = sl_metrics_new();
    const char *const a[] = {"path", "/a", NULL};
    const char *const b[] = {"path", "/b", NULL};
    const char *const c[] = {"path", "/c", NULL};
    struct sl_metric *ma = sl_metrics_gauge(reg, "lag", "Lag.", a);
    struct sl_metric *mb = sl_metrics_gauge(reg, "lag", "Lag.", b);
    sl_gauge_set(ma, 1);
    sl_gauge_set(mb, 2);
    sl_metrics_remove(reg, mb);  /* the last one: the family's tail moves back */
    struct sl_metric *mc = sl_metrics_gauge(reg, "lag", "Lag.", c);
    sl_gauge_set(mc, 3);
    char *s = render_own(reg);
    CHECK_STR(s, "# HELP lag Lag.\n# TYPE lag gauge\nlag{path=\"/a\"} 1\nlag{path=\"/c\"} 3\n");
    free(s);
    sl_metrics_remove(reg, ma);
    sl_metrics_remove(reg, mc);
    sl_metrics_remove(reg, NULL);
    s = render_own(reg);
    CHECK_STR(s, "");  /* a family without series is not written */
    free(s);
    /* The same labels again make a new series, from zero. */
    ma = sl_metrics_gauge(reg, "lag", "Lag.", a);
    s = render_own(reg);
    CHECK_STR(s, "# HELP lag Lag.\n# TYPE lag gauge\nlag{path=\"/a\"} 0\n");
    free(s);
    sl_metrics_free(reg);
}

TEST(same_labels_return_the_same_series)
{
    struct sl_metrics *reg = sl_metrics_new();
    const char *const a[] = {"output", "es", "result", "ok", NULL};
    const char *const reordered[] = {"result", "ok", "output", "es", NULL};
    const char *const other[] = {"output", "es", "result", "retry", NULL};
    struct sl_metric *m1 = sl_metrics_counter(reg, "o_total", "Out.", a);
    struct sl_metric *m2 = sl_metrics_counter(reg, "o_total", "Out.", a);
    struct sl_metric *m3 = sl_metrics_counter(reg, "o_total", "Out.", reordered);
    struct sl_metric *m4 = sl_metrics_counter(reg, "o_total", "Out.", other);
    CHECK(m1 == m2);
    CHECK(m1 == m3);
    CHECK(m1 != m4);
    struct sl_metric *g1 = sl_metrics_gauge(reg, "g", "G.", NULL);
    const char *const empty[] = {NULL};
    CHECK(sl_metrics_gauge(reg, "g", "G.", empty) == g1);
    sl_metrics_free(reg);
}

TEST(label_values_and_help_are_escaped)
{
    struct sl_metrics *reg = sl_metrics_new();
    const char *const l[] = {"path", "C:\\logs\\\"x\"\nnext", NULL};
    sl_metrics_counter(reg, "e_total", "Back\\slash and\nnewline \"quotes\" stay.", l);
    char *s = render_own(reg);
    CHECK_STR(s, "# HELP e_total Back\\\\slash and\\nnewline \"quotes\" stay.\n"
                 "# TYPE e_total counter\n"
                 "e_total{path=\"C:\\\\logs\\\\\\\"x\\\"\\nnext\"} 0\n");
    free(s);
    sl_metrics_free(reg);
}

TEST(gauges_set_and_add)
{
    struct sl_metrics *reg = sl_metrics_new();
    const char *const l[] = {"host", "a", NULL};
    struct sl_metric *g = sl_metrics_gauge(reg, "q_events", "Queued events.", NULL);
    struct sl_metric *h = sl_metrics_gauge(reg, "ratio", "A ratio.", l);
    sl_gauge_set(g, 3);
    sl_gauge_set(h, 0.1);
    char *s = render_own(reg);
    CHECK_STR(s, "# HELP q_events Queued events.\n"
                 "# TYPE q_events gauge\n"
                 "q_events 3\n"
                 "# HELP ratio A ratio.\n"
                 "# TYPE ratio gauge\n"
                 "ratio{host=\"a\"} 0.1\n");
    free(s);
    sl_gauge_add(g, 2.5);
    sl_gauge_add(g, -10);
    CHECK(sl_metric_value(g) == -4.5);
    sl_gauge_add(h, 0.2);  /* 0.30000000000000004: needs all 17 digits */
    s = render_own(reg);
    CHECK(strstr(s, "\nq_events -4.5\n") != NULL);
    CHECK(strstr(s, "\nratio{host=\"a\"} 0.30000000000000004\n") != NULL);
    free(s);
    sl_gauge_set(g, 1e21);
    sl_gauge_set(h, NAN);
    s = render_own(reg);
    CHECK(strstr(s, "\nq_events 1e+21\n") != NULL);
    CHECK(strstr(s, "\nratio{host=\"a\"} NaN\n") != NULL);
    free(s);
    sl_gauge_set(g, INFINITY);
    sl_gauge_set(h, -INFINITY);
    s = render_own(reg);
    CHECK(strstr(s, "\nq_events +Inf\n") != NULL);
    CHECK(strstr(s, "\nratio{host=\"a\"} -Inf\n") != NULL);
    free(s);
    sl_metrics_free(reg);
}

TEST(histogram_buckets_sum_and_count)
{
    struct sl_metrics *reg = sl_metrics_new();
    const double bounds[] = {0.005, 0.1, 1, 2.5};
    const char *const l[] = {"output", "es", NULL};
    struct sl_metric *h = sl_metrics_histogram(reg, "req_seconds", "Request time.", l, bounds,
                                               SL_ARRAY_LEN(bounds));
    struct sl_metric *bare =
        sl_metrics_histogram(reg, "ack_seconds", "Ack time.", NULL, bounds, SL_ARRAY_LEN(bounds));
    sl_hist_observe(h, 0.005);  /* upper bounds are inclusive */
    sl_hist_observe(h, 0.05);
    sl_hist_observe(h, 0.5);
    sl_hist_observe(h, 0.5);
    sl_hist_observe(h, 100);
    CHECK(sl_metric_value(h) == 5.0);
    CHECK(sl_metric_value(bare) == 0.0);
    char *s = render_own(reg);
    CHECK_STR(s, "# HELP req_seconds Request time.\n"
                 "# TYPE req_seconds histogram\n"
                 "req_seconds_bucket{output=\"es\",le=\"0.005\"} 1\n"
                 "req_seconds_bucket{output=\"es\",le=\"0.1\"} 2\n"
                 "req_seconds_bucket{output=\"es\",le=\"1\"} 4\n"
                 "req_seconds_bucket{output=\"es\",le=\"2.5\"} 4\n"
                 "req_seconds_bucket{output=\"es\",le=\"+Inf\"} 5\n"
                 "req_seconds_sum{output=\"es\"} 101.055\n"
                 "req_seconds_count{output=\"es\"} 5\n"
                 "# HELP ack_seconds Ack time.\n"
                 "# TYPE ack_seconds histogram\n"
                 "ack_seconds_bucket{le=\"0.005\"} 0\n"
                 "ack_seconds_bucket{le=\"0.1\"} 0\n"
                 "ack_seconds_bucket{le=\"1\"} 0\n"
                 "ack_seconds_bucket{le=\"2.5\"} 0\n"
                 "ack_seconds_bucket{le=\"+Inf\"} 0\n"
                 "ack_seconds_sum 0\n"
                 "ack_seconds_count 0\n");
    free(s);
    sl_metrics_free(reg);
}

/* A worker's local counts added at once render as the same observations one by one. */
TEST(histogram_local_counts_add_like_observations)
{
    struct sl_metrics *reg = sl_metrics_new();
    const double bounds[] = {0.005, 0.1, 1, 2.5};
    struct sl_metric *one = sl_metrics_histogram(reg, "one_seconds", "One.", NULL, bounds,
                                                 SL_ARRAY_LEN(bounds));
    struct sl_metric *many = sl_metrics_histogram(reg, "many_seconds", "Many.", NULL, bounds,
                                                  SL_ARRAY_LEN(bounds));
    CHECK_INT(sl_hist_nbuckets(many), 5);
    CHECK_INT(sl_hist_nbuckets(NULL), 0);
    /* Every bound inclusive, values between, below the first, past the last, NaN. */
    const double vs[] = {0, 0.005, 0.0051, 0.1, 0.5, 1, 2.5, 2.6, 100, NAN};
    const size_t want[] = {0, 0, 1, 1, 2, 2, 3, 4, 4, 4};
    uint64_t counts[5] = {0};
    double sum = 0;
    for (size_t i = 0; i < SL_ARRAY_LEN(vs); i++) {
        CHECK_INT(sl_hist_bucket(many, vs[i]), want[i]);
        if (!isnan(vs[i])) {
            sl_hist_observe(one, vs[i]);
            counts[sl_hist_bucket(many, vs[i])]++;
            sum += vs[i];
        }
    }
    sl_hist_add(many, counts, sum);
    sl_hist_add(many, (const uint64_t[5]){0}, 0);  /* nothing: no change */
    sl_hist_add(NULL, counts, sum);                /* no registry: a no-op */
    CHECK(sl_metric_value(many) == 9.0);
    char *s = render_own(reg);
    /* Cumulative: 0.005 -> 2, 0.1 -> 4, 1 -> 6, 2.5 -> 7, +Inf 9, whichever way counted. */
    CHECK(strstr(s, "many_seconds_bucket{le=\"0.005\"} 2\n"
                    "many_seconds_bucket{le=\"0.1\"} 4\n"
                    "many_seconds_bucket{le=\"1\"} 6\n"
                    "many_seconds_bucket{le=\"2.5\"} 7\n"
                    "many_seconds_bucket{le=\"+Inf\"} 9\n") != NULL);
    CHECK(strstr(s, "many_seconds_count 9\n") != NULL);
    /* The same sum, added in the same order. */
    const char *os = strstr(s, "one_seconds_sum "), *ms = strstr(s, "many_seconds_sum ");
    CHECK(os && ms);
    CHECK(strncmp(os + strlen("one_seconds_sum "), ms + strlen("many_seconds_sum "), 8) == 0);
    CHECK(strncmp(ms + strlen("many_seconds_sum "), "106.7101", 8) == 0);
    CHECK(strstr(s, "one_seconds_bucket{le=\"0.005\"} 2\n"
                    "one_seconds_bucket{le=\"0.1\"} 4\n"
                    "one_seconds_bucket{le=\"1\"} 6\n"
                    "one_seconds_bucket{le=\"2.5\"} 7\n"
                    "one_seconds_bucket{le=\"+Inf\"} 9\n") != NULL);
    free(s);
    sl_metrics_free(reg);
}

TEST(latency_buckets_render_like_the_go_client)
{
    CHECK_INT(sl_metrics_latency_nbuckets, 15);
    CHECK(sl_metrics_latency_buckets[0] == 0.001);
    CHECK(sl_metrics_latency_buckets[14] == 60);
    struct sl_metrics *reg = sl_metrics_new();
    struct sl_metric *h = sl_metrics_histogram(reg, "lat_seconds", "Latency.", NULL,
                                               sl_metrics_latency_buckets,
                                               sl_metrics_latency_nbuckets);
    sl_hist_observe(h, 0.0025);
    sl_hist_observe(h, 45);
    char *s = render_own(reg);
    CHECK(strstr(s, "lat_seconds_bucket{le=\"0.001\"} 0\n"
                    "lat_seconds_bucket{le=\"0.0025\"} 1\n") != NULL);
    CHECK(strstr(s, "lat_seconds_bucket{le=\"30\"} 1\n"
                    "lat_seconds_bucket{le=\"60\"} 2\n"
                    "lat_seconds_bucket{le=\"+Inf\"} 2\n"
                    "lat_seconds_sum 45.0025\n"
                    "lat_seconds_count 2\n") != NULL);
    free(s);
    /* A trailing +Inf bound is the implicit one, not a second bucket. */
    const double with_inf[] = {1, INFINITY};
    sl_metrics_histogram(reg, "inf_seconds", "Inf.", NULL, with_inf, 2);
    s = render_own(reg);
    CHECK(strstr(s, "inf_seconds_bucket{le=\"1\"} 0\ninf_seconds_bucket{le=\"+Inf\"} 0\n"
                    "inf_seconds_sum 0\n") != NULL);
    free(s);
    sl_metrics_free(reg);
}

struct worker {
    struct sl_metric *counter, *gauge, *hist;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 100000; i++) {
        sl_counter_inc(w->counter);
        sl_gauge_add(w->gauge, 1);
        sl_hist_observe(w->hist, (i & 1) ? 0.5 : 2);
    }
    return NULL;
}

static void *render_loop(void *arg)
{
    struct sl_metrics *reg = arg;
    for (int i = 0; i < 50; i++) {
        struct sl_buf b;
        sl_buf_init(&b, 0);
        sl_metrics_render(reg, &b);
        sl_buf_free(&b);
    }
    return NULL;
}

TEST(concurrent_updates_sum_exactly)
{
    struct sl_metrics *reg = sl_metrics_new();
    const double bounds[] = {1};
    struct worker w = {
        .counter = sl_metrics_counter(reg, "c_total", "C.", NULL),
        .gauge = sl_metrics_gauge(reg, "g", "G.", NULL),
        .hist = sl_metrics_histogram(reg, "h_seconds", "H.", NULL, bounds, 1),
    };
    pthread_t t[5];
    for (int i = 0; i < 4; i++) {
        pthread_create(&t[i], NULL, hammer, &w);
    }
    pthread_create(&t[4], NULL, render_loop, reg);
    for (int i = 0; i < 5; i++) {
        pthread_join(t[i], NULL);
    }
    CHECK(sl_metric_value(w.counter) == 400000.0);
    CHECK(sl_metric_value(w.gauge) == 400000.0);
    CHECK(sl_metric_value(w.hist) == 400000.0);
    char *s = render_own(reg);
    CHECK(strstr(s, "\nc_total 400000\n") != NULL);
    CHECK(strstr(s, "\ng 400000\n") != NULL);
    CHECK(strstr(s, "h_seconds_bucket{le=\"1\"} 200000\n"
                    "h_seconds_bucket{le=\"+Inf\"} 400000\n"
                    "h_seconds_sum 500000\n"
                    "h_seconds_count 400000\n") != NULL);
    free(s);
    sl_metrics_free(reg);
}

struct creator {
    struct sl_metrics *reg;
    struct sl_metric *got[100];
};

static void *create_series(void *arg)
{
    struct creator *c = arg;
    for (int i = 0; i < 100; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        const char *const l[] = {"n", v, NULL};
        c->got[i] = sl_metrics_counter(c->reg, "s_total", "S.", l);
        sl_counter_inc(c->got[i]);
    }
    return NULL;
}

TEST(concurrent_lookups_agree_on_series)
{
    struct sl_metrics *reg = sl_metrics_new();
    struct creator c[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        c[i].reg = reg;
        pthread_create(&t[i], NULL, create_series, &c[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
    }
    for (int i = 0; i < 100; i++) {
        CHECK(c[0].got[i] == c[1].got[i] && c[1].got[i] == c[2].got[i] &&
              c[2].got[i] == c[3].got[i]);
        CHECK(sl_metric_value(c[0].got[i]) == 4.0);
    }
    sl_metrics_free(reg);
}

/* The value of a label-less sample line "name value". */
static double sample(const char *text, const char *name)
{
    char key[128];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *p = strstr(text, key);
    return p ? strtod(p + strlen(key), NULL) : -1;
}

/* Seconds since the epoch as the kernel counts them: btime + uptime, both from
 * /proc, which an LD_PRELOAD clock faker does not touch. -1 when unreadable. */
static double kernel_now_s(void)
{
    double btime = -1, uptime = -1;
    char line[256];
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        while (fgets(line, sizeof(line), f)) {
            if (sscanf(line, "btime %lf", &btime) == 1) {
                break;
            }
        }
        fclose(f);
    }
    f = fopen("/proc/uptime", "r");
    if (f) {
        if (fscanf(f, "%lf", &uptime) != 1) {
            uptime = -1;
        }
        fclose(f);
    }
    return btime < 0 || uptime < 0 ? -1 : btime + uptime;
}

TEST(process_metrics_are_present_and_plausible)
{
    struct sl_metrics *reg = sl_metrics_new();
    sl_metrics_gauge(reg, "own", "Own.", NULL);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    CHECK_INT(sl_metrics_render(reg, &b), 0);
    const char *s = sl_buf_cstr(&b);
    /* Registry families first, then process_* with the client libraries' help. */
    CHECK(strncmp(s, "# HELP own Own.\n", 16) == 0);
    CHECK(strstr(s, "# HELP process_cpu_seconds_total Total user and system CPU time spent in "
                    "seconds.\n# TYPE process_cpu_seconds_total counter\n") != NULL);
    CHECK(strstr(s, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                    "# TYPE process_resident_memory_bytes gauge\n") != NULL);
    CHECK(strstr(s, "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                    "# TYPE process_virtual_memory_bytes gauge\n") != NULL);
    CHECK(strstr(s, "# HELP process_open_fds Number of open file descriptors.\n"
                    "# TYPE process_open_fds gauge\n") != NULL);
    CHECK(strstr(s, "# HELP process_max_fds Maximum number of open file descriptors.\n"
                    "# TYPE process_max_fds gauge\n") != NULL);
    CHECK(strstr(s, "# HELP process_start_time_seconds Start time of the process since unix "
                    "epoch in seconds.\n# TYPE process_start_time_seconds gauge\n") != NULL);
    CHECK(sample(s, "process_cpu_seconds_total") >= 0);
    CHECK(sample(s, "process_resident_memory_bytes") > 0);
    CHECK(sample(s, "process_virtual_memory_bytes") >= sample(s, "process_resident_memory_bytes"));
    CHECK(sample(s, "process_open_fds") >= 3);
    CHECK(sample(s, "process_max_fds") >= sample(s, "process_open_fds"));
    double start = sample(s, "process_start_time_seconds");
    /* The start time comes from the kernel (boot time + ticks), so compare it
     * with the kernel's clock, not sl_wall_ms(): under a faked wall clock
     * (libfaketime in CI's date sweep) the two legitimately disagree. */
    double now = kernel_now_s();
    CHECK(now > 0);
    CHECK(start > 1.5e9 && start <= now + 1 && start > now - 3600);
    sl_buf_free(&b);
    sl_metrics_free(reg);
}

TEST(render_reports_a_full_buffer)
{
    struct sl_metrics *reg = sl_metrics_new();
    sl_metrics_counter(reg, "x_total", "X.", NULL);
    struct sl_buf b;
    sl_buf_init(&b, 20);
    CHECK_INT(sl_metrics_render(reg, &b), SL_ELIMIT);
    CHECK(b.len <= 20);
    sl_buf_free(&b);
    sl_metrics_free(reg);
    sl_metrics_free(NULL);
}

/* Runs one misuse in a child: it must abort (the message goes to stderr). */
static bool aborts(void (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr)) {
            _exit(2);
        }
        fn();
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static struct sl_metrics *misuse_reg;

static void bad_metric_name(void) { sl_metrics_gauge(misuse_reg, "9lives", "H.", NULL); }
static void bad_char(void) { sl_metrics_gauge(misuse_reg, "a-b", "H.", NULL); }
static void colon_in_label(void)
{
    const char *const l[] = {"a:b", "v", NULL};
    sl_metrics_gauge(misuse_reg, "ok:name", "H.", l);
}
static void reserved_label(void)
{
    const char *const l[] = {"__name", "v", NULL};
    sl_metrics_gauge(misuse_reg, "g", "H.", l);
}
static void le_on_histogram(void)
{
    const char *const l[] = {"le", "1", NULL};
    sl_metrics_histogram(misuse_reg, "h", "H.", l, sl_metrics_latency_buckets, 3);
}
static void label_without_value(void)
{
    const char *const l[] = {"a", NULL};
    sl_metrics_gauge(misuse_reg, "g", "H.", l);
}
static void counter_without_total(void) { sl_metrics_counter(misuse_reg, "lines", "H.", NULL); }
static void type_mismatch(void)
{
    sl_metrics_gauge(misuse_reg, "g", "H.", NULL);
    sl_metrics_histogram(misuse_reg, "g", "H.", NULL, sl_metrics_latency_buckets, 3);
}
static void help_mismatch(void)
{
    sl_metrics_gauge(misuse_reg, "g", "H.", NULL);
    sl_metrics_gauge(misuse_reg, "g", "Other.", NULL);
}
static void unsorted_bounds(void)
{
    const double b[] = {1, 0.5};
    sl_metrics_histogram(misuse_reg, "h", "H.", NULL, b, 2);
}
static void process_name(void) { sl_metrics_gauge(misuse_reg, "process_open_fds", "H.", NULL); }
static void valid_names(void)
{
    const char *const l[] = {"_a1", "", "B_2", "x", NULL};
    sl_metrics_gauge(misuse_reg, "_ok:name_9", "H.", l);
    sl_metrics_counter(misuse_reg, "a:b_total", "H.", NULL);
}

TEST(misuse_aborts_with_a_message)
{
    misuse_reg = sl_metrics_new();
    CHECK(aborts(bad_metric_name));
    CHECK(aborts(bad_char));
    CHECK(aborts(colon_in_label));
    CHECK(aborts(reserved_label));
    CHECK(aborts(le_on_histogram));
    CHECK(aborts(label_without_value));
    CHECK(aborts(counter_without_total));
    CHECK(aborts(type_mismatch));
    CHECK(aborts(help_mismatch));
    CHECK(aborts(unsorted_bounds));
    CHECK(aborts(process_name));
    CHECK(!aborts(valid_names));
    sl_metrics_free(misuse_reg);
}

int main(void)
{
    RUN(counter_without_labels_renders_zero_from_the_start);
    RUN(counter_with_labels_in_creation_order);
    RUN(same_labels_return_the_same_series);
    RUN(removed_series_leave_the_family);
    RUN(label_values_and_help_are_escaped);
    RUN(gauges_set_and_add);
    RUN(histogram_buckets_sum_and_count);
    RUN(histogram_local_counts_add_like_observations);
    RUN(latency_buckets_render_like_the_go_client);
    RUN(concurrent_updates_sum_exactly);
    RUN(concurrent_lookups_agree_on_series);
    RUN(process_metrics_are_present_and_plausible);
    RUN(render_reports_a_full_buffer);
    RUN(misuse_aborts_with_a_message);
    return TEST_SUMMARY();
}
