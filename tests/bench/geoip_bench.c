/*
 * geoip_bench.c - what the geoip filter costs per event: CPU ns per event for
 * a hit (City record written in ECS names) and a miss (a private address,
 * tagged), cycling through a few addresses of the test database that
 * tests/data/geoip/make_test_dbs.py writes. Figures only. Build like the
 * plugin test, -O2, after `make` (docs/benchmarks.md has the line):
 *   python3 tests/data/geoip/make_test_dbs.py build/mmdb
 *   cc -O2 -std=c11 -D_GNU_SOURCE -pthread -Ilib/include -Iaggregator -Iaggregator/include \
 *      -o build/geoip_bench tests/bench/geoip_bench.c build/obj/plugins/filter_geoip/*.o \
 *      build/obj/libsluice-agg.a build/obj/libsluice.a \
 *      $(pkg-config --libs yaml-0.1 libcurl rdkafka libzstd oniguruma zlib openssl \
 *                          libmaxminddb) -lm
 *   build/geoip_bench build/mmdb/City.mmdb [events]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "instance.h"
#include "sluice/config.h"
#include "sluice/plugin.h"

extern const struct sl_plugin sl_plugin_filter_geoip;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double run(struct sl_instance *f, const char *const *ips, int nips, int n)
{
    double total = 0;
    for (int i = 0; i < n; i++) {
        struct sl_value ev = {0};
        sl_value_set_object(&ev);
        struct sl_value *src = sl_obj_putc(&ev, "source");
        sl_value_set_object(src);
        sl_value_set_cstr(sl_obj_putc(src, "ip"), ips[i % nips]);
        double t0 = now_ns();
        agg_instance_filter(f, &ev, &(bool){false});
        total += now_ns() - t0;
        sl_value_clear(&ev);
    }
    return total / n;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: geoip_bench CITY.mmdb [events]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 200000;
    char yml[512];
    snprintf(yml, sizeof(yml), "geoip: {source: '[source][ip]', database: '%s'}\n", argv[1]);
    struct sl_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    sl_cfg_load_string(&cfg, "bench.yml", yml, strlen(yml));
    struct agg_instance_args a = {.id = "bench"};
    struct sl_instance *f =
        agg_instance_new(&sl_plugin_filter_geoip, &cfg, sl_cfg_get(cfg.root, "geoip"), &a);
    if (!f) {
        fprintf(stderr, "%s", cfg.errors.data ? sl_buf_cstr(&cfg.errors) : "init failed\n");
        return 1;
    }
    static const char *const hits[] = {"81.2.69.160", "216.160.83.58", "2001:db8::7"};
    static const char *const misses[] = {"10.1.2.3", "192.168.0.1"};
    printf("hit   %.0f ns/event\n", run(f, hits, 3, n));
    printf("miss  %.0f ns/event\n", run(f, misses, 2, n));
    agg_instance_free(f);
    sl_cfg_free(&cfg);
    return 0;
}
