/*
 * backoff_test.c - the shared retry schedule (lib/backoff.c): exact delays at
 * the ends of the jitter range, bounds for attempts 0..40 and any random
 * number, no overflow up to attempt 64 and beyond, odd parameters (init 0,
 * max below init), the stateful schedule agreeing with the pure one, reset,
 * seeds, and the shipper's schedule (1 s doubling to 60 s).
 */
#include "sluice/backoff.h"

#include <limits.h>

#include "test.h"

/* min(max, init * 2^attempt) computed exactly in 128 bits (attempt <= 63). */
static uint64_t capped(uint64_t init, uint64_t max, unsigned attempt)
{
    unsigned __int128 d = (unsigned __int128)(init ? init : 1) << attempt;
    return d < max ? (uint64_t)d : max;
}

TEST(test_delay_exact)
{
    /* rnd 0 gives the bottom of [d - d/2, d], rnd d/2 the top. */
    CHECK_INT(sl_backoff_delay(1000, 60000, 0, 0), 500);
    CHECK_INT(sl_backoff_delay(1000, 60000, 0, 500), 1000);
    CHECK_INT(sl_backoff_delay(1000, 60000, 0, 501), 500);  /* rnd wraps modulo d/2 + 1 */
    CHECK_INT(sl_backoff_delay(1000, 60000, 1, 0), 1000);
    CHECK_INT(sl_backoff_delay(1000, 60000, 1, 1000), 2000);
    CHECK_INT(sl_backoff_delay(1000, 60000, 5, 16000), 32000);
    CHECK_INT(sl_backoff_delay(1000, 60000, 6, 0), 30000);      /* 64 s capped at 60 s */
    CHECK_INT(sl_backoff_delay(1000, 60000, 6, 30000), 60000);
    CHECK_INT(sl_backoff_delay(1000, 60000, 40, 30000), 60000);
    CHECK_INT(sl_backoff_delay(3, 100, 0, 0), 2);  /* odd d: bottom is d - d/2, never below d/2 */
    CHECK_INT(sl_backoff_delay(3, 100, 0, 1), 3);
    CHECK_INT(sl_backoff_delay(1, 100, 0, 12345), 1);  /* d 1: no room to jitter */
}

TEST(test_delay_bounds_attempts_0_to_40)
{
    const uint32_t rnds[] = {0, 1, 2, 7, 499, 500, 501, 65535, 0x7fffffffu, 0x80000000u,
                             0xfffffffeu, UINT32_MAX};
    const uint64_t params[][2] = {
        {1000, 60000}, {1, 1}, {1, 2}, {100, 100}, {250, 30000}, {1, UINT64_MAX},
        {7, UINT64_MAX / 3}, {UINT64_MAX / 4, UINT64_MAX}, {5000, 1000},
    };
    for (size_t p = 0; p < SL_ARRAY_LEN(params); p++) {
        uint64_t init = params[p][0], max = params[p][1];
        for (unsigned a = 0; a <= 40; a++) {
            uint64_t d = capped(init, max, a);
            for (size_t r = 0; r < SL_ARRAY_LEN(rnds); r++) {
                uint64_t got = sl_backoff_delay(init, max, a, rnds[r]);
                if (got > d || got > max || got < d / 2 || got < d - d / 2) {
                    fprintf(stderr, "init %" PRIu64 " max %" PRIu64 " attempt %u rnd %" PRIu32
                            ": %" PRIu64 " outside [%" PRIu64 ", %" PRIu64 "]\n",
                            init, max, a, rnds[r], got, d - d / 2, d);
                    CHECK(0);
                }
            }
        }
    }
}

TEST(test_delay_no_overflow)
{
    /* init * 2^63 fits exactly for init 1; one more doubling must cap, not wrap. */
    CHECK(sl_backoff_delay(1, UINT64_MAX, 63, 0) == (1ull << 62));
    CHECK(sl_backoff_delay(1, UINT64_MAX, 63, UINT32_MAX) == (1ull << 62) + UINT32_MAX);
    CHECK(sl_backoff_delay(1, UINT64_MAX, 64, 0) == UINT64_MAX - UINT64_MAX / 2);
    CHECK(sl_backoff_delay(1, UINT64_MAX, 65, 0) == UINT64_MAX - UINT64_MAX / 2);
    CHECK(sl_backoff_delay(3, UINT64_MAX, 63, 0) == UINT64_MAX - UINT64_MAX / 2);
    CHECK(sl_backoff_delay(UINT64_MAX / 2 + 1, UINT64_MAX, 1, 0) == UINT64_MAX - UINT64_MAX / 2);
    CHECK(sl_backoff_delay(UINT64_MAX, UINT64_MAX, 63, UINT32_MAX) ==
          UINT64_MAX - UINT64_MAX / 2 + UINT32_MAX);
    /* A typical schedule is at its cap long before attempt 63, and stays there. */
    CHECK_INT(sl_backoff_delay(1000, 60000, 63, 30000), 60000);
    CHECK_INT(sl_backoff_delay(1000, 60000, UINT_MAX, 0), 30000);
}

TEST(test_delay_odd_parameters)
{
    CHECK_INT(sl_backoff_delay(0, 100, 0, 0), 1);  /* init 0 counts as 1 */
    CHECK_INT(sl_backoff_delay(0, 100, 3, 0), 4);  /* d 8 */
    CHECK_INT(sl_backoff_delay(0, 100, 3, 4), 8);
    CHECK_INT(sl_backoff_delay(5000, 1000, 0, 0), 500);  /* max below init caps */
    CHECK_INT(sl_backoff_delay(5000, 1000, 0, 500), 1000);
    CHECK_INT(sl_backoff_delay(100, 0, 0, 99), 0);  /* max 0: retry at once */
}

/* sl_backoff_next is sl_backoff_delay with its own attempt counter and rng. */
TEST(test_stateful_matches_pure)
{
    struct sl_backoff b;
    sl_backoff_init(&b, 250, 30000, 12345);
    CHECK_INT(b.attempt, 0);
    CHECK(b.rng == 12345);
    for (unsigned a = 0; a <= 40; a++) {
        uint32_t before = b.rng;
        uint64_t d = sl_backoff_next(&b);
        CHECK(b.rng != before && b.rng != 0);
        CHECK_INT(d, sl_backoff_delay(250, 30000, a, b.rng));
        CHECK_INT(b.attempt, a + 1);
        uint64_t cap = capped(250, 30000, a);
        CHECK(d >= cap - cap / 2 && d <= cap && d <= 30000);
    }
}

TEST(test_reset)
{
    struct sl_backoff b;
    sl_backoff_init(&b, 1000, 60000, 99);
    for (int i = 0; i < 10; i++) {
        sl_backoff_next(&b);
    }
    CHECK_INT(b.attempt, 10);
    uint64_t d = sl_backoff_next(&b);
    CHECK(d >= 30000 && d <= 60000);
    uint32_t rng = b.rng;
    sl_backoff_reset(&b);
    CHECK_INT(b.attempt, 0);
    CHECK(b.rng == rng);  /* the jitter sequence runs on */
    CHECK(b.init_ms == 1000 && b.max_ms == 60000);
    d = sl_backoff_next(&b);
    CHECK(d >= 500 && d <= 1000);
    d = sl_backoff_next(&b);
    CHECK(d >= 1000 && d <= 2000);
}

TEST(test_seeds)
{
    /* Seed 0 (and a zeroed struct) still jitters: xorshift32 would stay at 0. */
    struct sl_backoff b;
    sl_backoff_init(&b, 1000, 1000, 0);
    CHECK(b.rng != 0);
    struct sl_backoff z = {.init_ms = 1000, .max_ms = 1000};
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 64; i++) {
        uint64_t d = sl_backoff_next(i % 2 ? &b : &z);
        CHECK(d >= 500 && d <= 1000);
        lo = SL_MIN(lo, d);
        hi = SL_MAX(hi, d);
    }
    CHECK(hi - lo > 100);  /* spread out, not one value */

    /* Different seeds, different jitter: what keeps shippers out of step. */
    struct sl_backoff s1, s2;
    sl_backoff_init(&s1, 1000, 60000, 1);
    sl_backoff_init(&s2, 1000, 60000, 2);
    int same = 0;
    for (int i = 0; i < 8; i++) {
        same += sl_backoff_next(&s1) == sl_backoff_next(&s2);
    }
    CHECK(same < 8);
    /* The same seed, the same schedule (reproducible in tests). */
    sl_backoff_init(&s1, 1000, 60000, 7);
    sl_backoff_init(&s2, 1000, 60000, 7);
    for (int i = 0; i < 8; i++) {
        CHECK(sl_backoff_next(&s1) == sl_backoff_next(&s2));
    }
}

TEST(test_attempt_saturates)
{
    struct sl_backoff b;
    sl_backoff_init(&b, 1000, 60000, 5);
    b.attempt = UINT_MAX;
    uint64_t d = sl_backoff_next(&b);
    CHECK(d >= 30000 && d <= 60000);
    CHECK(b.attempt == UINT_MAX);  /* wrapping to 0 would drop back to 1 s */
}

/* The shipper's defaults (output.backoff.init 1s, max 60s): first retry after
 * about a second, doubling, at most a minute apart. */
TEST(test_shipper_schedule)
{
    struct sl_backoff b;
    sl_backoff_init(&b, 1000, 60000, 0xdeadbeefu);
    const uint64_t top[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000};
    for (size_t i = 0; i < SL_ARRAY_LEN(top); i++) {
        uint64_t d = sl_backoff_next(&b);
        CHECK(d >= top[i] / 2 && d <= top[i]);
    }
}

int main(void)
{
    RUN(test_delay_exact);
    RUN(test_delay_bounds_attempts_0_to_40);
    RUN(test_delay_no_overflow);
    RUN(test_delay_odd_parameters);
    RUN(test_stateful_matches_pure);
    RUN(test_reset);
    RUN(test_seeds);
    RUN(test_attempt_saturates);
    RUN(test_shipper_schedule);
    return TEST_SUMMARY();
}
