/*
 * grok_bench.c - what the grok filter costs over the Oniguruma search it
 * wraps, on COMBINEDAPACHELOG. Prints ns/line for:
 *   onig      bare onig_search on the expanded regex (region reused)
 *   match     sl_grok_match: the same search with the per-thread region and
 *             the retry budget (the filter's matching path)
 *   filter    the whole filter as the pipeline runs it (agg_instance_filter):
 *             match + every capture stored as a field (events built before
 *             and freed after the clock runs)
 *   miss      filter on a line that does not match (unanchored and anchored)
 * Figures only; nothing is asserted. Build like the plugin test (the plugin,
 * the grok patterns, the aggregator's core and libsluice), with -O2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grok.h"
#include "instance.h"
#include "sluice/config.h"
#include "sluice/plugin.h"

extern const struct sl_plugin sl_plugin_filter_grok;

static const char LINE[] =
    "83.149.9.216 - - [17/May/2015:10:05:03 +0000] \"GET "
    "/presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1\" 200 203023 "
    "\"http://semicomplete.com/presentations/logstash-monitorama-2013/\" \"Mozilla/5.0 "
    "(Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/32.0.1700.77 Safari/537.36\"";
static const char MISS[] =
    "Jan 12 06:25:01 web1 CRON[1234]: (root) CMD (command -v debian-sa1 > /dev/null && "
    "debian-sa1 1 1) and some more text so that the line is about as long as the hit";

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);  /* CPU time: other load does not count */
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static struct sl_instance *make_filter(const char *pattern, struct sl_cfg *cfg)
{
    char yml[512];
    snprintf(yml, sizeof(yml), "grok:\n  patterns: ['%s']\n", pattern);
    sl_cfg_load_string(cfg, "bench.yml", yml, strlen(yml));
    struct agg_instance_args a = {.id = "bench"};
    struct sl_instance *f =
        agg_instance_new(&sl_plugin_filter_grok, cfg, sl_cfg_get(cfg->root, "grok"), &a);
    if (!f) {
        fprintf(stderr, "%s", cfg->errors.data ? sl_buf_cstr(&cfg->errors) : "init failed\n");
        exit(1);
    }
    return f;
}

/* The filter alone: events are prepared before and freed after the clock runs. */
static double bench_filter(struct sl_instance *f, const char *line, int n)
{
    enum { BATCH = 1000 };
    static struct sl_value evs[BATCH];
    double total = 0;
    for (int done = 0; done < n; done += BATCH) {
        for (int i = 0; i < BATCH; i++) {
            sl_value_set_object(&evs[i]);
            sl_value_set_cstr(sl_obj_putc(&evs[i], "message"), line);
        }
        double t0 = now_ns();
        for (int i = 0; i < BATCH; i++) {
            agg_instance_filter(f, &evs[i]);
        }
        total += now_ns() - t0;
        for (int i = 0; i < BATCH; i++) {
            sl_value_clear(&evs[i]);
        }
    }
    return total / ((n + BATCH - 1) / BATCH * BATCH);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200000;
    struct sl_cfg cfg, cfg2;
    struct sl_instance *f = make_filter("%{COMBINEDAPACHELOG}", &cfg);
    struct sl_instance *fa = make_filter("^%{COMBINEDAPACHELOG}$", &cfg2);

    /* The same expanded regex, compiled and searched directly. */
    struct sl_grok_lib *lib = sl_grok_lib_new();
    char err[256];
    for (size_t i = 0; sl_grok_builtin_patterns[i]; i += 2) {
        const char *t = sl_grok_builtin_patterns[i + 1];
        sl_grok_lib_add_text(lib, sl_grok_builtin_patterns[i], t, strlen(t), err, sizeof(err));
    }
    struct sl_grok *g = sl_grok_compile(lib, "%{COMBINEDAPACHELOG}", true, err, sizeof(err));
    if (!g) {
        fprintf(stderr, "compile: %s\n", err);
        return 1;
    }
    OnigRegion *region = onig_region_new();
    const OnigUChar *s = (const OnigUChar *)LINE, *e = s + strlen(LINE);
    int hits = 0;
    double best_onig = 1e18, best_match = 1e18, best_filter = 1e18;
    double best_miss = 1e18, best_miss_a = 1e18;
    struct sl_grok_limits lim = {.retries = 30000ul * sl_grok_retries_per_ms(),
                                 .time_ms = 30000, .stack = 1u << 22};
    /* Many short interleaved rounds, the best of each: the least disturbed. */
    for (int round = 0; round < 20; round++) {
        int k = n / 20 > 1000 ? n / 20 : 1000;
        double t0 = now_ns();
        for (int i = 0; i < k; i++) {
            hits += onig_search(g->re, s, e, s, e, region, ONIG_OPTION_NONE) >= 0;
        }
        best_onig = SL_MIN(best_onig, (now_ns() - t0) / k);
        t0 = now_ns();
        for (int i = 0; i < k; i++) {
            const OnigRegion *r;
            hits += sl_grok_match(g, LINE, strlen(LINE), &lim, &r);
        }
        best_match = SL_MIN(best_match, (now_ns() - t0) / k);
        best_filter = SL_MIN(best_filter, bench_filter(f, LINE, k));
        best_miss = SL_MIN(best_miss, bench_filter(f, MISS, 1000));
        best_miss_a = SL_MIN(best_miss_a, bench_filter(fa, MISS, 1000));
    }
    printf("COMBINEDAPACHELOG, %zu-byte line, best of 20 rounds (hits %d)\n", strlen(LINE), hits);
    printf("  onig_search (bare)           %8.0f ns/line\n", best_onig);
    printf("  sl_grok_match                %8.0f ns/line  (%.2fx bare)\n", best_match,
           best_match / best_onig);
    printf("  filter, 11 fields stored     %8.0f ns/line  (%.2fx bare)\n", best_filter,
           best_filter / best_onig);
    printf("  filter on a miss, unanchored %8.0f ns/line  (%.1fx a hit)\n", best_miss,
           best_miss / best_onig);
    printf("  filter on a miss, ^...$      %8.0f ns/line\n", best_miss_a);
    onig_region_free(region, 1);
    sl_grok_free(g);
    sl_grok_lib_free(lib);
    agg_instance_free(f);
    agg_instance_free(fa);
    sl_cfg_free(&cfg);
    sl_cfg_free(&cfg2);
    return 0;
}
