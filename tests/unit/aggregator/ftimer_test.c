/*
 * ftimer_test.c - the filter timer: integer buckets on the histogram's
 * bounds, only observed events counted (across chunk boundaries), and
 * durations that agree with the monotonic clock, with the time-stamp counter
 * (where this CPU has an invariant one) and with the clock alone.
 */
#include "ftimer.h"

#include "test.h"

/* Spins until the clock has moved at least ns past its value on entry. */
static void spin_ns(uint64_t ns)
{
    uint64_t t0 = agg_ftimer_clock_ns();
    while (agg_ftimer_clock_ns() - t0 < ns) {
    }
}

static uint64_t sum(const uint64_t *c)
{
    uint64_t s = 0;
    for (size_t i = 0; i <= AGG_FILTER_SECONDS_NBOUNDS; i++) {
        s += c[i];
    }
    return s;
}

TEST(buckets_are_the_first_bound_at_or_above)
{
    CHECK_INT(agg_ftimer_bucket(0), 0);
    CHECK_INT(agg_ftimer_bucket(1000), 0);      /* 1 us: le="1e-06" */
    CHECK_INT(agg_ftimer_bucket(1001), 1);
    CHECK_INT(agg_ftimer_bucket(2500), 1);
    CHECK_INT(agg_ftimer_bucket(2501), 2);
    CHECK_INT(agg_ftimer_bucket(50000), 5);     /* 50 us */
    CHECK_INT(agg_ftimer_bucket(1000000000), 18);  /* 1 s */
    CHECK_INT(agg_ftimer_bucket(10000000000ull), AGG_FILTER_SECONDS_NBOUNDS - 1);
    CHECK_INT(agg_ftimer_bucket(10000000001ull), AGG_FILTER_SECONDS_NBOUNDS);  /* +Inf */
    for (size_t i = 0; i < AGG_FILTER_SECONDS_NBOUNDS; i++) {
        uint64_t b = (uint64_t)(agg_filter_seconds_buckets[i] * 1e9 + 0.5);
        CHECK_INT(agg_ftimer_bucket(b), (long long)i);
        CHECK_INT(agg_ftimer_bucket(b + 1), (long long)i + 1);
    }
}

/* 3 chunks and a bit, every other event observed: exactly those are counted. */
static void only_observed_events_count(bool tsc)
{
    static struct agg_ftimer t;
    agg_ftimer_begin(&t, tsc);
    size_t n = 3 * AGG_FTIMER_CHUNK + 17, observed = 0;
    for (size_t i = 0; i < n; i++) {
        agg_ftimer_mark(&t, i % 2 == 0);
        observed += i % 2 == 0;
    }
    agg_ftimer_finish(&t, NULL);
    CHECK_INT(sum(t.counts), (long long)observed);
}

/* Each observed event spins 200 us: every one lands at 100 us or above, and
 * all of them add up to no more than the clock saw from start to finish. */
static void durations_agree_with_the_clock(bool tsc)
{
    static struct agg_ftimer t;
    uint64_t t0 = agg_ftimer_clock_ns();
    agg_ftimer_begin(&t, tsc);
    size_t observed = 0;
    for (size_t i = 0; i < AGG_FTIMER_CHUNK + 40; i++) {
        bool slow = i % 50 == 0;
        if (slow) {
            spin_ns(200000);
        }
        agg_ftimer_mark(&t, slow);
        observed += slow;
    }
    agg_ftimer_finish(&t, NULL);
    uint64_t elapsed = agg_ftimer_clock_ns() - t0;
    CHECK_INT(sum(t.counts), (long long)observed);
    uint64_t below = 0;
    for (size_t i = 0; agg_filter_seconds_buckets[i] < 1e-4; i++) {
        below += t.counts[i];
    }
    CHECK_INT(below, 0);
    CHECK(t.total_ns >= observed * 200000u);
    CHECK(t.total_ns <= elapsed);
}

TEST(with_the_clock_only_observed_events_count)
{
    only_observed_events_count(false);
}

TEST(with_the_clock_durations_agree_with_it)
{
    durations_agree_with_the_clock(false);
}

TEST(with_the_counter_only_observed_events_count)
{
    if (!agg_ftimer_uses_tsc()) {
        printf("  (no invariant time-stamp counter here: the clock path is the one used)\n");
        return;
    }
    only_observed_events_count(true);
}

TEST(with_the_counter_durations_agree_with_the_clock)
{
    if (!agg_ftimer_uses_tsc()) {
        return;
    }
    durations_agree_with_the_clock(true);
}

TEST(finish_adds_counts_and_sum_to_the_histogram)
{
    struct sl_metrics *reg = sl_metrics_new();
    struct sl_metric *h = sl_metrics_histogram(reg, "x_seconds", "x", (const char *[]){NULL},
                                               agg_filter_seconds_buckets,
                                               agg_filter_seconds_nbuckets);
    static struct agg_ftimer t;
    agg_ftimer_start(&t);
    for (int i = 0; i < 5; i++) {
        agg_ftimer_mark(&t, true);
    }
    agg_ftimer_finish(&t, h);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    CHECK_INT(sl_metrics_render(reg, &b), 0);
    CHECK(strstr(sl_buf_cstr(&b), "\nx_seconds_count 5\n") != NULL);
    CHECK(strstr(sl_buf_cstr(&b), "x_seconds_bucket{le=\"+Inf\"} 5\n") != NULL);
    sl_buf_free(&b);
    sl_metrics_free(reg);
}

int main(void)
{
    RUN(buckets_are_the_first_bound_at_or_above);
    RUN(with_the_clock_only_observed_events_count);
    RUN(with_the_clock_durations_agree_with_it);
    RUN(with_the_counter_only_observed_events_count);
    RUN(with_the_counter_durations_agree_with_the_clock);
    RUN(finish_adds_counts_and_sum_to_the_histogram);
    return TEST_SUMMARY();
}
