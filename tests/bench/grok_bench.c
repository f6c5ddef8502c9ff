/*
 * grok_bench.c - what the grok filter costs over the Oniguruma search it
 * wraps, on COMBINEDAPACHELOG. Prints ns/line for:
 *   onig      bare onig_search on the expanded regex (region reused)
 *   match     sl_grok_match: the same search with the per-thread region and
 *             the retry budget (the filter's matching path)
 *   filter    the whole filter as the pipeline runs it (agg_instance_filter):
 *             match + every capture stored as a field, inside an arena scope
 *             reset every 512 events, as the pipeline's workers do (value.h:
 *             what a filter stores costs a pointer bump, no malloc); events
 *             are built before and forgotten after the clock runs
 *   heap      the same without an arena scope: every stored field mallocs
 *   miss      filter on a line that does not match (unanchored and anchored)
 *   ECS       bare onig_search and the filter again with the ECS names (the
 *             default, ecs_compatibility v8): its COMBINEDAPACHELOG is another
 *             regex (lazy `.*?` for the referrer and the user agent, nested
 *             [source][address]/[source][ip] groups), hence its own rows
 * `grok_bench N filter` (or `onig`, `filter-ecs`, `onig-ecs`) runs that row
 * alone, N lines, for a profiler.
 * Figures only; nothing is asserted. Build like the plugin test (the plugin,
 * the grok patterns, the aggregator's core and libsluice), with -O2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grok.h"
#include "instance.h"
#include "sluice/arena.h"
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

/* SL_MIN is a macro: a bench row inside it would run twice. */
static double min_of(double a, double b)
{
    return a < b ? a : b;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);  /* CPU time: other load does not count */
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static struct sl_instance *make_filter(const char *pattern, bool ecs, struct sl_cfg *cfg)
{
    char yml[512];
    /* Legacy names unless ecs, as the figures of earlier runs had them. */
    snprintf(yml, sizeof(yml), "grok:\n  patterns: ['%s']\n  ecs_compatibility: %s\n",
             pattern, ecs ? "v8" : "disabled");
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

/*
 * The filter alone: events are prepared before and freed after the clock
 * runs. arena: the pipeline's way (value.h), where the events and all a
 * filter stores live in an arena scope that dies with the batch; NULL: the
 * heap. BATCH is the pipeline's default batch_size.
 */
static double bench_filter(struct sl_instance *f, const char *line, int n, struct sl_arena *arena)
{
    enum { BATCH = 512 };
    static struct sl_value evs[BATCH];
    double total = 0;
    int batches = (n + BATCH - 1) / BATCH;
    for (int b = 0; b < batches; b++) {
        struct sl_arena *scope = sl_value_set_arena(arena);
        for (int i = 0; i < BATCH; i++) {
            sl_value_set_object(&evs[i]);
            sl_value_set_cstr(sl_obj_putc(&evs[i], "message"), line);
        }
        double t0 = now_ns();
        for (int i = 0; i < BATCH; i++) {
            agg_instance_filter(f, &evs[i], &(bool){false});
        }
        total += now_ns() - t0;
        for (int i = 0; i < BATCH; i++) {
            sl_value_clear(&evs[i]);  /* before the reset, as the arena's rule says */
        }
        sl_value_set_arena(scope);
        if (arena) {
            sl_arena_reset(arena);
        }
    }
    return total / (batches * BATCH);
}

/* Bare onig_search on g's regex, k times: ns per search. */
static double bench_onig(const struct sl_grok *g, OnigRegion *region, int k, int *hits)
{
    const OnigUChar *s = (const OnigUChar *)LINE, *e = s + strlen(LINE);
    double t0 = now_ns();
    for (int i = 0; i < k; i++) {
        *hits += onig_search(g->re, s, e, s, e, region, ONIG_OPTION_NONE) >= 0;
    }
    return (now_ns() - t0) / k;
}

/* sl_grok_match, k times: ns per match. */
static double bench_match(const struct sl_grok *g, int k, int *hits)
{
    struct sl_grok_limits lim = {.time_ms = 30000, .stack = 1u << 22};
    double t0 = now_ns();
    for (int i = 0; i < k; i++) {
        const OnigRegion *r;
        *hits += sl_grok_match(g, LINE, strlen(LINE), &lim, &r);
    }
    return (now_ns() - t0) / k;
}

/* Every row, n lines in all; f: %{COMBINEDAPACHELOG}, fa: the same anchored. */
static double bench_rows(struct sl_instance *f, struct sl_instance *fa, const struct sl_grok *g,
                         struct sl_arena *arena, int n)
{
    OnigRegion *region = onig_region_new();
    int hits = 0;
    double best_onig = 1e18, best_match = 1e18, best_filter = 1e18, best_heap = 1e18;
    double best_miss = 1e18, best_miss_a = 1e18;
    /* Many short interleaved rounds, the best of each: the least disturbed. */
    for (int round = 0; round < 20; round++) {
        int k = n / 20 > 1000 ? n / 20 : 1000;
        best_onig = min_of(best_onig, bench_onig(g, region, k, &hits));
        best_match = min_of(best_match, bench_match(g, k, &hits));
        best_filter = min_of(best_filter, bench_filter(f, LINE, k, arena));
        best_heap = min_of(best_heap, bench_filter(f, LINE, k, NULL));
        best_miss = min_of(best_miss, bench_filter(f, MISS, 1024, arena));
        best_miss_a = min_of(best_miss_a, bench_filter(fa, MISS, 1024, arena));
    }
    onig_region_free(region, 1);
    printf("COMBINEDAPACHELOG, %zu-byte line, best of 20 rounds (hits %d)\n", strlen(LINE), hits);
    printf("  onig_search (bare)           %8.0f ns/line\n", best_onig);
    printf("  sl_grok_match                %8.0f ns/line  (%.2fx bare)\n", best_match,
           best_match / best_onig);
    printf("  filter, 11 fields stored     %8.0f ns/line  (%.2fx bare; arena scope, as the "
           "pipeline)\n", best_filter, best_filter / best_onig);
    printf("  filter, heap (no arena)      %8.0f ns/line  (%.2fx bare)\n", best_heap,
           best_heap / best_onig);
    printf("  filter on a miss, unanchored %8.0f ns/line  (%.1fx a hit)\n", best_miss,
           best_miss / best_onig);
    printf("  filter on a miss, ^...$      %8.0f ns/line\n", best_miss_a);
    return best_onig;
}

/* The ECS rows: fe the filter with ECS names, ge its expanded regex; legacy_onig the
 * legacy bare search of bench_rows, for the ratio. */
static void bench_ecs_rows(struct sl_instance *fe, const struct sl_grok *ge,
                           struct sl_arena *arena, int n, double legacy_onig)
{
    OnigRegion *region = onig_region_new();
    int hits = 0;
    double best_onig = 1e18, best_filter = 1e18;
    for (int round = 0; round < 20; round++) {
        int k = n / 20 > 1000 ? n / 20 : 1000;
        best_onig = min_of(best_onig, bench_onig(ge, region, k, &hits));
        best_filter = min_of(best_filter, bench_filter(fe, LINE, k, arena));
    }
    onig_region_free(region, 1);
    printf("COMBINEDAPACHELOG with ECS names (ecs_compatibility v8, the default), same line "
           "(hits %d)\n", hits);
    printf("  ECS onig_search (bare)       %8.0f ns/line  (%.2fx the legacy regex's)\n",
           best_onig, best_onig / legacy_onig);
    printf("  ECS filter, fields stored    %8.0f ns/line  (%.2fx bare)\n", best_filter,
           best_filter / best_onig);
}

/* COMBINEDAPACHELOG expanded from the legacy (ecs false) or the ECS pattern set. */
static struct sl_grok *compile_bare(bool ecs, struct sl_grok_lib **lib_out)
{
    struct sl_grok_lib *lib = sl_grok_lib_new();
    char err[256];
    for (size_t i = 0; sl_grok_builtin_patterns[i]; i += 2) {
        const char *t = sl_grok_builtin_patterns[i + 1];
        if ((strncmp(sl_grok_builtin_patterns[i], "ecs-v1/", 7) == 0) == ecs) {
            sl_grok_lib_add_text(lib, sl_grok_builtin_patterns[i], t, strlen(t), err,
                                 sizeof(err));
        }
    }
    struct sl_grok *g = sl_grok_compile(lib, "%{COMBINEDAPACHELOG}", true, err, sizeof(err));
    if (!g) {
        fprintf(stderr, "compile: %s\n", err);
        exit(1);
    }
    *lib_out = lib;
    return g;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200000;
    struct sl_cfg cfg, cfg2, cfg3;
    struct sl_instance *f = make_filter("%{COMBINEDAPACHELOG}", false, &cfg);
    struct sl_instance *fa = make_filter("^%{COMBINEDAPACHELOG}$", false, &cfg2);
    struct sl_instance *fe = make_filter("%{COMBINEDAPACHELOG}", true, &cfg3);

    /* The same expanded regexes, compiled and searched directly. */
    struct sl_grok_lib *lib, *lib_ecs;
    struct sl_grok *g = compile_bare(false, &lib), *ge = compile_bare(true, &lib_ecs);
    struct sl_arena arena;
    sl_arena_init(&arena, 0);
    const char *only = argc > 2 ? argv[2] : "";
    if (strcmp(only, "filter") == 0) {
        /* For a profiler: one row alone, n lines. */
        printf("filter, arena scope: %.0f ns/line\n", bench_filter(f, LINE, n, &arena));
    } else if (strcmp(only, "filter-ecs") == 0) {
        printf("ECS filter, arena scope: %.0f ns/line\n", bench_filter(fe, LINE, n, &arena));
    } else if (strcmp(only, "onig") == 0 || strcmp(only, "onig-ecs") == 0) {
        OnigRegion *region = onig_region_new();
        int hits = 0;
        printf("%sonig_search (bare): %.0f ns/line\n", only[4] ? "ECS " : "",
               bench_onig(only[4] ? ge : g, region, n, &hits));
        onig_region_free(region, 1);
    } else {
        double legacy_onig = bench_rows(f, fa, g, &arena, n);
        bench_ecs_rows(fe, ge, &arena, n, legacy_onig);
    }
    sl_arena_free(&arena);
    sl_grok_free(g);
    sl_grok_free(ge);
    sl_grok_lib_free(lib);
    sl_grok_lib_free(lib_ecs);
    agg_instance_free(f);
    agg_instance_free(fa);
    agg_instance_free(fe);
    sl_cfg_free(&cfg);
    sl_cfg_free(&cfg2);
    sl_cfg_free(&cfg3);
    return 0;
}
