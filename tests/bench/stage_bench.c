/*
 * stage_bench.c - what each stage of the aggregator's worker costs per event,
 * next to a memcpy of the bytes it works on (the yardstick: "each
 * within a small multiple of memcpy over the fields it touches"). On a
 * Beats-shaped event of ~500 bytes (the shape ljblast sends), CPU time of the
 * calling thread, inside an arena scope reset every 512 events as the
 * pipeline's workers do. Rows, ns/event:
 *   memcpy text      the event's JSON text copied (the floor of any stage)
 *   scan             sl_json_scan: validation and root members, no tree
 *   parse            sl_json_parse_doc: the whole tree into the arena
 *   date             the date filter on a 26-byte HTTP date field
 *   mutate           convert two fields to integers, remove one
 *   encode copy      an untouched event's JSON for an output (the text copied)
 *   encode merged    a changed partial event: 2 of its members written, the rest copied
 *   encode tree      the same event written whole from its tree
 *   filter timing    what sluice_aggregator_filter_duration_seconds adds per event and
 *                    filter: aggregator/ftimer.h's mark, its share of the chunk's flush
 * `stage_bench N` runs N events per row; `stage_bench N ROW` only that row (and memcpy). Figures only; nothing is asserted.
 * Built by tests/bench/pipeline_bench.py like grok_bench (plugins, core, libsluice), -O2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ftimer.h"
#include "instance.h"
#include "sluice/arena.h"
#include "sluice/config.h"
#include "sluice/json.h"
#include "sluice/metrics.h"
#include "sluice/plugin.h"

extern const struct sl_plugin sl_plugin_filter_date;
extern const struct sl_plugin sl_plugin_filter_mutate;
extern const struct sl_plugin sl_plugin_out_file;

/* What the shipper (and Filebeat) send for an Apache line, after grok ran in the
 * aggregator: the fields date and mutate then work on. */
static const char EVENT[] =
    "{\"@timestamp\":\"2026-11-27T06:00:01.000Z\",\"@metadata\":{\"beat\":\"filebeat\","
    "\"type\":\"_doc\",\"version\":\"8.11.0\"},\"message\":\"10.1.2.3 - - [27/Nov/2026:06:00:01 "
    "+0000] \\\"GET /api/v1/items?id=42 HTTP/1.1\\\" 200 5120 \\\"https://example.com/\\\" "
    "\\\"curl/8.4.0\\\"\",\"log\":{\"file\":{\"path\":\"/var/log/app/access.log\"},\"offset\":"
    "123456},\"input\":{\"type\":\"log\"},\"host\":{\"name\":\"web-1\"},\"agent\":{\"type\":"
    "\"filebeat\",\"version\":\"8.11.0\",\"name\":\"web-1\"},\"ecs\":{\"version\":\"8.0.0\"},"
    "\"timestamp\":\"27/Nov/2026:06:00:01 +0000\",\"response\":\"200\",\"bytes\":\"5120\"}";

#define SLICE 512

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static struct sl_instance *make(const struct sl_plugin *pl, const char *key, const char *yml)
{
    static struct sl_cfg cfgs[8];
    static int ncfg;
    struct sl_cfg *cfg = &cfgs[ncfg++];
    sl_cfg_load_string(cfg, "bench.yml", yml, strlen(yml));
    struct agg_instance_args a = {.id = key, .check_only = true};
    struct sl_instance *in = agg_instance_new(pl, cfg, sl_cfg_get(cfg->root, key), &a);
    if (!in) {
        fprintf(stderr, "%s", cfg->errors.data ? sl_buf_cstr(&cfg->errors) : "init failed\n");
        exit(1);
    }
    return in;
}

enum row { R_MEMCPY, R_SCAN, R_PARSE, R_DATE, R_MUTATE, R_COPY, R_MERGED, R_TREE, R_TIMING,
           R_N };
static const char *const names[R_N] = {"memcpy text", "scan",        "parse",
                                       "date",        "mutate",      "encode copy",
                                       "encode merged", "encode tree", "filter timing"};

struct world {
    struct sl_instance *date, *mutate, *out;
    struct sl_metric *hist;  /* a filter's duration histogram */
    struct sl_arena arena;
    struct sl_buf buf;
    char copy[sizeof(EVENT)];
    struct sl_json_member ms[SL_JSON_SCAN_MEMBERS];
    struct agg_member am[SL_JSON_SCAN_MEMBERS];
    size_t nms;
    struct sl_json_doc doc;
};

/* The event as a partial pipeline builds it: its members parsed only when in keys. */
static void partial(struct world *w, struct sl_value *ev, const char *const *keys)
{
    sl_json_scan(EVENT, sizeof(EVENT) - 1, NULL, "@metadata", w->ms, &w->nms, &w->doc);
    sl_value_set_object(ev);
    for (size_t k = 0; k < w->nms; k++) {
        const char *key = EVENT + w->ms[k].key_off;
        bool want = false;
        for (size_t i = 0; keys[i]; i++) {
            want |= strlen(keys[i]) == w->ms[k].key_len && !memcmp(keys[i], key, w->ms[k].key_len);
        }
        w->am[k] = (struct agg_member){.m = w->ms[k], .parsed = want};
        if (want) {
            struct sl_value v = {0};
            sl_json_parse_arena(EVENT + w->ms[k].val_off, w->ms[k].val_len, &v, &w->arena, NULL,
                                NULL, 0);
            sl_value_move(sl_obj_put(ev, key, w->ms[k].key_len), &v);
        }
    }
}

static double run(struct world *w, enum row r, size_t n)
{
    static const char *const keys[] = {"timestamp", "response", "bytes", "@timestamp", NULL};
    struct sl_value tree = {0};
    struct agg_enc rec;
    struct agg_text txt = {.raw = {EVENT, sizeof(EVENT) - 1}};
    sl_json_parse_doc(EVENT, sizeof(EVENT) - 1, &tree, &w->arena, NULL, "@metadata", &txt.doc,
                      NULL, 0);
    bool ran;
    double ns = 0;
    for (size_t done = 0; done < n; done += SLICE) {
        /* Untimed: the inputs each row needs, as the stages before it leave them. */
        sl_arena_reset(&w->arena);
        struct sl_value evs[SLICE];
        for (size_t i = 0; i < SLICE; i++) {
            evs[i] = (struct sl_value){0};
            if (r == R_DATE || r == R_MUTATE || r == R_TREE || r == R_MERGED) {
                if (r == R_TREE) {
                    sl_json_parse_arena(EVENT, sizeof(EVENT) - 1, &evs[i], &w->arena, NULL, NULL, 0);
                } else {
                    partial(w, &evs[i], keys);
                }
            }
        }
        sl_buf_reset(&w->buf);
        static struct agg_ftimer timer;  /* 2 KB: off the stack */
        agg_ftimer_start(&timer);
        double t0 = now_ns();
        for (size_t i = 0; i < SLICE; i++) {
            switch (r) {
            case R_MEMCPY:
                memcpy(w->copy, EVENT, sizeof(EVENT));
                __asm__ volatile("" : : "r"(w->copy) : "memory");
                break;
            case R_SCAN:
                sl_json_scan(EVENT, sizeof(EVENT) - 1, NULL, "@metadata", w->ms, &w->nms, &w->doc);
                break;
            case R_PARSE:
                sl_json_parse_doc(EVENT, sizeof(EVENT) - 1, &evs[i], &w->arena, NULL, "@metadata",
                                  &w->doc, NULL, 0);
                break;
            case R_DATE:
                agg_instance_filter(w->date, &evs[i], &ran);
                break;
            case R_MUTATE:
                agg_instance_filter(w->mutate, &evs[i], &ran);
                break;
            case R_COPY:
                txt.touched = false;
                agg_output_encode(w->out, &tree, &txt, &w->buf, &rec);
                break;
            case R_MERGED:
                txt.touched = true;
                txt.members = w->am;
                txt.nmembers = w->nms;
                agg_output_encode(w->out, &evs[i], &txt, &w->buf, &rec);
                break;
            case R_TREE:
                agg_output_encode(w->out, &evs[i], NULL, &w->buf, &rec);
                break;
            case R_TIMING:
                agg_ftimer_mark(&timer, true);
                break;
            case R_N:
                break;
            }
        }
        agg_ftimer_finish(&timer, w->hist);
        ns += now_ns() - t0;
        for (size_t i = 0; i < SLICE; i++) {
            evs[i] = (struct sl_value){0};  /* arena memory: forgotten, not freed */
        }
    }
    return ns / (double)((n + SLICE - 1) / SLICE * SLICE);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
    struct world w = {0};
    sl_arena_init(&w.arena, 64 * 1024);
    sl_buf_init(&w.buf, 0);
    sl_value_set_arena(&w.arena);
    w.date = make(&sl_plugin_filter_date, "date",
                  "date:\n  match: [timestamp, \"dd/MMM/yyyy:HH:mm:ss Z\"]\n");
    w.mutate = make(&sl_plugin_filter_mutate, "mutate",
                    "mutate:\n  convert: {response: integer, bytes: integer}\n"
                    "  remove_fields: [timestamp]\n");
    w.out = make(&sl_plugin_out_file, "file", "file:\n  path: /dev/null\n  metadata: false\n");
    struct sl_metrics *reg = sl_metrics_new();
    w.hist = sl_metrics_histogram(reg, "bench_seconds", "Bench.", NULL,
                                  agg_filter_seconds_buckets, AGG_FILTER_SECONDS_NBOUNDS);
    printf("per-stage cost, %zu-byte Beats-shaped event, best of 5 rounds of %zu events "
           "(CPU time, arena scope)\n", sizeof(EVENT) - 1, n);
    double base = 0;
    const char *only = argc > 2 ? argv[2] : NULL;  /* one row alone, for a profiler */
    for (int r = 0; r < R_N; r++) {
        if (only && r != R_MEMCPY && strcmp(only, names[r]) != 0) {
            continue;
        }
        double best = 0;
        for (int round = 0; round < 5; round++) {
            double v = run(&w, (enum row)r, n);
            best = round == 0 || v < best ? v : best;
        }
        if (r == R_MEMCPY) {
            base = best;
        }
        printf("  %-16s %7.0f ns/event  (%5.1fx memcpy of the text)\n", names[r], best,
               base > 0 ? best / base : 0.0);
    }
    sl_value_set_arena(NULL);
    agg_instance_free(w.date);
    agg_instance_free(w.mutate);
    agg_instance_free(w.out);
    sl_metrics_free(reg);
    sl_arena_free(&w.arena);
    sl_buf_free(&w.buf);
    return 0;
}
