/*
 * useragent_bench.c - what the useragent filter costs per event, on six
 * common user-agent strings taken in turn (desktop Chrome, Firefox, Safari on
 * an iPhone, Android Chrome on a Samsung phone, Googlebot, curl). Prints CPU
 * ns per event for:
 *   uncached  the whole filter with lru_cache_size: 1, so every event is a
 *             miss: every rule list searched until a rule matches
 *   cached    the same with the default cache, warmed: a lookup and the
 *             fields written
 * Figures only; nothing is asserted. Build like the plugin test, -O2, after
 * `make` (docs/benchmarks.md has the line):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -pthread -Ilib/include -Iaggregator \
 *      -Iaggregator/include -Iplugins/filter_useragent $(pkg-config --cflags oniguruma yaml-0.1) \
 *      -o build/useragent_bench tests/bench/useragent_bench.c \
 *      build/obj/plugins/filter_useragent/*.o \
 *      build/obj/gen/useragent_regexes.o build/obj/libsluice-agg.a build/obj/libsluice.a \
 *      $(pkg-config --libs yaml-0.1 libcurl rdkafka libzstd oniguruma zlib openssl) -lm
 *   build/useragent_bench [events]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "instance.h"
#include "sluice/config.h"
#include "sluice/plugin.h"

extern const struct sl_plugin sl_plugin_filter_useragent;

static const char *const UAS[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SM-S901B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/112.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.4.0",
};
#define NUAS (sizeof(UAS) / sizeof(UAS[0]))

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static struct sl_instance *make_filter(const char *yml, struct sl_cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    sl_cfg_load_string(cfg, "bench.yml", yml, strlen(yml));
    struct agg_instance_args a = {.id = "bench"};
    struct sl_instance *f = agg_instance_new(&sl_plugin_filter_useragent, cfg,
                                             sl_cfg_get(cfg->root, "useragent"), &a);
    if (!f) {
        fprintf(stderr, "%s", cfg->errors.data ? sl_buf_cstr(&cfg->errors) : "init failed\n");
        exit(1);
    }
    return f;
}

/* ns per event over n events; the events are built and freed off the clock. */
static double run(struct sl_instance *f, int n)
{
    double total = 0;
    for (int i = 0; i < n; i++) {
        struct sl_value ev = {0};
        sl_value_set_object(&ev);
        sl_value_set_cstr(sl_obj_putc(&ev, "message"), UAS[i % NUAS]);
        double t0 = now_ns();
        agg_instance_filter(f, &ev, &(bool){false});
        total += now_ns() - t0;
        sl_value_clear(&ev);
    }
    return total / n;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 3000;
    struct sl_cfg c1, c2;
    double t0 = now_ns();
    struct sl_instance *unc = make_filter("useragent: {source: message, lru_cache_size: 1}\n", &c1);
    double init_ms = (now_ns() - t0) / 1e6;
    struct sl_instance *cac = make_filter("useragent: {source: message}\n", &c2);
    run(cac, (int)NUAS);  /* warm */
    printf("init      %.1f ms (compiling the built-in rules)\n", init_ms);
    printf("uncached  %.0f ns/event\n", run(unc, n));
    printf("cached    %.0f ns/event\n", run(cac, n * 20));
    agg_instance_free(unc);
    agg_instance_free(cac);
    sl_cfg_free(&c1);
    sl_cfg_free(&c2);
    return 0;
}
