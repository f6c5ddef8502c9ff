/*
 * clients_test.c - per-client series: one series per label, exact counts,
 * the cap and its "other" series, forgetting idle clients (and only those),
 * and a table that grows past its first size.
 */
#include "clients.h"

#include <stdlib.h>

#include "test.h"

/* The value of `name{client="label"}` in the rendered registry, or -1 without that line. */
static double series(struct sl_metrics *reg, const char *name, const char *label)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    CHECK_INT(sl_metrics_render(reg, &b), 0);
    char key[256];
    snprintf(key, sizeof(key), "\n%s{client=\"%s\"} ", name, label);
    const char *p = strstr(sl_buf_cstr(&b), key);
    double v = p ? strtod(p + strlen(key), NULL) : -1;
    sl_buf_free(&b);
    return v;
}

#define EVENTS "sluice_aggregator_client_events_total"
#define ACKED "sluice_aggregator_client_events_acked_total"
#define CONNS "sluice_aggregator_client_connections"

TEST(one_series_per_label_with_exact_counts)
{
    struct sl_metrics *reg = sl_metrics_new();
    struct agg_clients *cs = agg_clients_new(reg);
    struct agg_client *a1 = agg_clients_get(cs, "127.0.0.1");
    struct agg_client *a2 = agg_clients_get(cs, "127.0.0.1");  /* a second connection */
    struct agg_client *b = agg_clients_get(cs, "127.0.0.2");
    CHECK(a1 == a2);
    CHECK(a1 != b);
    CHECK_STR(agg_client_label(b), "127.0.0.2");
    agg_client_received(a1, 100);
    agg_client_received(a2, 23);
    agg_client_acked(a1, 100);
    agg_client_received(b, 7);
    agg_client_received(NULL, 5);  /* a connection without a client yet: nothing */
    CHECK(series(reg, EVENTS, "127.0.0.1") == 123);
    CHECK(series(reg, ACKED, "127.0.0.1") == 100);
    CHECK(series(reg, CONNS, "127.0.0.1") == 2);
    CHECK(series(reg, EVENTS, "127.0.0.2") == 7);
    CHECK(series(reg, ACKED, "127.0.0.2") == 0);
    CHECK(series(reg, EVENTS, "other") == -1);  /* no "other" below the cap */
    CHECK_INT(agg_clients_count(cs), 2);
    agg_clients_put(cs, a1, 1000);
    CHECK(series(reg, CONNS, "127.0.0.1") == 1);
    agg_clients_free(cs);
    /* Freed with the table: the registry holds none of its series. */
    CHECK(series(reg, EVENTS, "127.0.0.1") == -1);
    sl_metrics_free(reg);
}

TEST(past_the_cap_new_clients_share_other)
{
    struct sl_metrics *reg = sl_metrics_new();
    struct agg_clients *cs = agg_clients_new(reg);
    agg_clients_limits(cs, 2, 0);
    struct agg_client *a = agg_clients_get(cs, "10.0.0.1");
    struct agg_client *b = agg_clients_get(cs, "10.0.0.2");
    struct agg_client *c = agg_clients_get(cs, "10.0.0.3");
    struct agg_client *d = agg_clients_get(cs, "10.0.0.4");
    /* A known client still has its own series once the cap is reached. */
    CHECK(agg_clients_get(cs, "10.0.0.1") == a);
    CHECK(c == d);
    CHECK_STR(agg_client_label(c), "other");
    agg_client_received(a, 1);
    agg_client_received(b, 2);
    agg_client_received(c, 30);
    agg_client_received(d, 400);
    CHECK(series(reg, EVENTS, "10.0.0.1") == 1);
    CHECK(series(reg, EVENTS, "10.0.0.2") == 2);
    CHECK(series(reg, EVENTS, "other") == 430);
    CHECK(series(reg, CONNS, "other") == 2);
    CHECK(series(reg, EVENTS, "10.0.0.3") == -1);
    CHECK_INT(agg_clients_count(cs), 2);
    /* A client calling itself "other" does not pass for the overflow series. */
    agg_clients_limits(cs, 3, 0);
    struct agg_client *o = agg_clients_get(cs, "other");
    CHECK(o != c);
    CHECK_STR(agg_client_label(o), "other_");
    agg_clients_free(cs);
    sl_metrics_free(reg);
}

TEST(idle_clients_are_forgotten_and_free_their_slot)
{
    struct sl_metrics *reg = sl_metrics_new();
    struct agg_clients *cs = agg_clients_new(reg);
    agg_clients_limits(cs, 2, 5000);
    struct agg_client *a = agg_clients_get(cs, "10.0.0.1");
    struct agg_client *b = agg_clients_get(cs, "10.0.0.2");
    agg_client_received(a, 5);
    agg_clients_put(cs, a, 100000);  /* a: gone at t=100 s; b stays connected */
    agg_clients_sweep(cs, 104999);   /* not yet 5 s */
    CHECK(series(reg, EVENTS, "10.0.0.1") == 5);
    agg_clients_sweep(cs, 110000);
    CHECK(series(reg, EVENTS, "10.0.0.1") == -1);
    CHECK(series(reg, CONNS, "10.0.0.1") == -1);
    CHECK(series(reg, CONNS, "10.0.0.2") == 1);
    CHECK_INT(agg_clients_count(cs), 1);
    /* The slot is free: a new client gets its own series, a returning one starts at 0. */
    struct agg_client *c = agg_clients_get(cs, "10.0.0.3");
    CHECK_STR(agg_client_label(c), "10.0.0.3");
    CHECK(series(reg, EVENTS, "10.0.0.1") == -1);
    agg_clients_put(cs, b, 110000);
    agg_clients_put(cs, c, 110000);
    agg_clients_limits(cs, 2, 0);  /* forget_after 0: never */
    agg_clients_sweep(cs, 1000000000);
    CHECK_INT(agg_clients_count(cs), 2);
    agg_clients_free(cs);
    sl_metrics_free(reg);
}

TEST(many_clients_grow_the_table)
{
    struct sl_metrics *reg = sl_metrics_new();
    struct agg_clients *cs = agg_clients_new(reg);
    agg_clients_limits(cs, 5000, 1);
    struct agg_client *first[3000];
    for (int i = 0; i < 3000; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 256, i % 256);
        first[i] = agg_clients_get(cs, ip);
        agg_client_received(first[i], (uint64_t)i);
    }
    CHECK_INT(agg_clients_count(cs), 3000);
    int same = 0;
    for (int i = 0; i < 3000; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 256, i % 256);
        same += agg_clients_get(cs, ip) == first[i];
    }
    CHECK_INT(same, 3000);
    CHECK(series(reg, EVENTS, "10.11.183.1") == 2999);
    for (int i = 0; i < 3000; i++) {
        agg_clients_put(cs, first[i], 10);
        agg_clients_put(cs, first[i], 10);
    }
    agg_clients_sweep(cs, 20);
    CHECK_INT(agg_clients_count(cs), 0);
    agg_clients_free(cs);
    sl_metrics_free(reg);
}

TEST(without_a_registry_nothing_is_counted)
{
    struct agg_clients *cs = agg_clients_new(NULL);
    struct agg_client *a = agg_clients_get(cs, "10.0.0.1");
    agg_client_received(a, 3);
    agg_client_acked(a, 3);
    agg_clients_put(cs, a, 0);
    agg_clients_free(cs);
}

int main(void)
{
    RUN(one_series_per_label_with_exact_counts);
    RUN(past_the_cap_new_clients_share_other);
    RUN(idle_clients_are_forgotten_and_free_their_slot);
    RUN(many_clients_grow_the_table);
    RUN(without_a_registry_nothing_is_counted);
    return TEST_SUMMARY();
}
