/*
 * json_bench.c - what an aggregator window costs in lib/json.c + lib/value.c:
 * parse every event of a window, write each back out (as an output does),
 * then clear them all at once (as the listener does when the window is
 * ACKed). 100k Filebeat-shaped events of ~500 bytes, in windows of 2048.
 *   heap    sl_json_parse: every key, string and vector its own malloc
 *   arena   sl_json_parse_arena into one arena, reset after each window
 * and the same two with a filter-like edit of each event between parse and
 * write (two fields added, one renamed, one deleted), which exercises the
 * arena trees' copy-on-grow. Prints CPU ns/event per phase, the best of a
 * few rounds. Figures only; nothing is asserted. Build with -O2:
 *   make build/obj/libsluice.a && cc -std=c11 -D_GNU_SOURCE -O2 -Ilib/include \
 *       tests/bench/json_bench.c build/obj/libsluice.a -lm -o build/json_bench
 * Usage: json_bench [mode [rounds]] - one mode alone ("heap", "arena",
 * "heap+edits", "arena+edits") is handy under perf stat on a busy machine,
 * where instruction counts are steadier than times.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/arena.h"
#include "sluice/json.h"

#define EVENTS 100000
#define WINDOW 2048
#define ROUNDS 7
#define VARIANTS 512 /* distinct texts, so that no two neighbours are byte-identical */

struct phase_ns {
    double parse, edit, write, clear;
};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);  /* CPU time: other load does not count */
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* A Filebeat event as the shipper sends it; offset, time and host vary. */
static char *make_event(unsigned i, size_t *len)
{
    char *p = NULL;
    int n = asprintf(&p,
        "{\"@timestamp\":\"2026-11-27T06:%02u:%02u.%03uZ\",\"@metadata\":{\"beat\":\"sluice\","
        "\"type\":\"_doc\",\"version\":\"0.1.0\"},\"message\":\"127.0.0.%u - - "
        "[27/Nov/2026:06:%02u:%02u +0000] \\\"GET /index.html HTTP/1.1\\\" 200 %u \\\"-\\\" "
        "\\\"curl/8.4.0\\\"\",\"log\":{\"file\":{\"path\":\"/var/log/app/a.log\"},"
        "\"offset\":%u},\"input\":{\"type\":\"filestream\"},\"host\":{\"name\":\"web-%u\"},"
        "\"agent\":{\"type\":\"sluice-shipper\",\"version\":\"0.1.0\",\"name\":\"web-%u\"},"
        "\"ecs\":{\"version\":\"8.0.0\"}}",
        i / 60 % 60, i % 60, i % 1000, i % 250 + 1, i / 60 % 60, i % 60, 1000 + i % 9000,
        i * 117u, i % 16, i % 16);
    if (n < 0) {
        abort();
    }
    *len = (size_t)n;
    return p;
}

/* What a couple of typical filters do to an event. */
static void edit(struct sl_value *ev)
{
    sl_value_set_cstr(sl_field_put(ev, "[event][dataset]"), "app.access");
    sl_value_set_int(sl_field_put(ev, "[http][response][status_code]"), 200);
    struct sl_value tmp = {0};
    struct sl_value *src = sl_field_get(ev, "[host][name]");
    if (src) {
        sl_value_move(&tmp, src);
        sl_field_del(ev, "[host][name]");
        sl_value_move(sl_field_put(ev, "[host][hostname]"), &tmp);
    }
    sl_field_del(ev, "ecs");
}

static int g_rounds = ROUNDS;

static void run(bool use_arena, bool edits, char **texts, const size_t *lens,
                struct phase_ns *best)
{
    struct sl_value *events = calloc(WINDOW, sizeof(*events));
    struct sl_arena arena;
    struct sl_buf out;
    char err[128];
    sl_arena_init(&arena, 0);
    sl_buf_init(&out, 0);
    for (int r = 0; r < g_rounds; r++) {
        struct phase_ns t = {0, 0, 0, 0};
        size_t bytes = 0;
        for (unsigned done = 0; done < EVENTS;) {
            unsigned n = EVENTS - done < WINDOW ? EVENTS - done : WINDOW;
            double t0 = now_ns();
            for (unsigned i = 0; i < n; i++) {
                unsigned k = (done + i) % VARIANTS;
                int rc = use_arena ? sl_json_parse_arena(texts[k], lens[k], &events[i], &arena,
                                                         NULL, err, sizeof(err))
                                   : sl_json_parse(texts[k], lens[k], &events[i], NULL, err,
                                                   sizeof(err));
                if (rc != 0) {
                    fprintf(stderr, "parse: %s\n", err);
                    exit(1);
                }
            }
            double t1 = now_ns();
            if (edits) {
                for (unsigned i = 0; i < n; i++) {
                    edit(&events[i]);
                }
            }
            double t2 = now_ns();
            for (unsigned i = 0; i < n; i++) {
                sl_buf_reset(&out);
                sl_json_write(&out, &events[i], "@metadata");
                bytes += out.len;
            }
            double t3 = now_ns();
            for (unsigned i = 0; i < n; i++) {
                sl_value_clear(&events[i]);
            }
            if (use_arena) {
                sl_arena_reset(&arena);
            }
            double t4 = now_ns();
            t.parse += t1 - t0;
            t.edit += t2 - t1;
            t.write += t3 - t2;
            t.clear += t4 - t3;
            done += n;
        }
        if (bytes == 0) {
            abort();  /* keeps the writes observable */
        }
        double total = t.parse + t.edit + t.write + t.clear;
        double btotal = best->parse + best->edit + best->write + best->clear;
        if (r == 0 || total < btotal) {
            *best = t;
        }
    }
    sl_arena_free(&arena);
    sl_buf_free(&out);
    free(events);
}

static void report(const char *name, const struct phase_ns *t)
{
    double total = t->parse + t->edit + t->write + t->clear;
    printf("%-14s %8.0f %8.0f %8.0f %8.0f %9.0f\n", name, t->parse / EVENTS, t->edit / EVENTS,
           t->write / EVENTS, t->clear / EVENTS, total / EVENTS);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        bool arena, edits;
    } modes[] = {{"heap", false, false}, {"arena", true, false},
                 {"heap+edits", false, true}, {"arena+edits", true, true}};
    const char *only = argc > 1 ? argv[1] : NULL;
    if (argc > 2) {
        g_rounds = atoi(argv[2]) > 0 ? atoi(argv[2]) : 1;
    }
    char *texts[VARIANTS];
    size_t lens[VARIANTS], sum = 0;
    for (unsigned i = 0; i < VARIANTS; i++) {
        texts[i] = make_event(i * 7919u, &lens[i]);
        sum += lens[i];
    }
    printf("%d events of ~%zu bytes, windows of %d, best of %d rounds, CPU ns/event\n", EVENTS,
           sum / VARIANTS, WINDOW, g_rounds);
    printf("%-14s %8s %8s %8s %8s %9s\n", "mode", "parse", "edit", "write", "clear", "total");
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        if (only && strcmp(only, modes[m].name) != 0) {
            continue;
        }
        struct phase_ns t = {0, 0, 0, 0};
        run(modes[m].arena, modes[m].edits, texts, lens, &t);
        report(modes[m].name, &t);
    }
    for (unsigned i = 0; i < VARIANTS; i++) {
        free(texts[i]);
    }
    return 0;
}
