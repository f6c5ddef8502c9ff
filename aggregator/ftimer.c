/*
 * ftimer.c - per-event filter durations from the time-stamp counter, scaled
 * per chunk by the monotonic clock (see ftimer.h).
 */
#include "ftimer.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* The histogram's bounds in nanoseconds, from agg_filter_seconds_buckets. */
static uint64_t bounds_ns[AGG_FILTER_SECONDS_NBOUNDS];
static atomic_int ready;  /* 0: not yet, 1: with the counter, 2: with the clock */

uint64_t agg_ftimer_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool invariant_tsc(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    /* CPUID 0x80000007, EDX bit 8: the counter ticks at one rate in every
     * power state and on every core (what Linux calls constant and nonstop). */
    if (__get_cpuid_max(0x80000000u, NULL) < 0x80000007u ||
        !__get_cpuid(0x80000007u, &a, &b, &c, &d)) {
        return false;
    }
    return (d >> 8) & 1u;
#else
    return false;
#endif
}

/* Idempotent: racing threads compute the same table. */
static int setup(void)
{
    int r = atomic_load_explicit(&ready, memory_order_acquire);
    if (r) {
        return r;
    }
    for (size_t i = 0; i < AGG_FILTER_SECONDS_NBOUNDS; i++) {
        bounds_ns[i] = (uint64_t)(agg_filter_seconds_buckets[i] * 1e9 + 0.5);
    }
    r = invariant_tsc() ? 1 : 2;
    atomic_store_explicit(&ready, r, memory_order_release);
    return r;
}

bool agg_ftimer_uses_tsc(void)
{
    return setup() == 1;
}

static inline size_t bucket_of(uint64_t d_ns)
{
    size_t i = 0;
    while (i < AGG_FILTER_SECONDS_NBOUNDS && d_ns > bounds_ns[i]) {
        i++;
    }
    return i;
}

size_t agg_ftimer_bucket(uint64_t d_ns)
{
    setup();
    return bucket_of(d_ns);
}

void agg_ftimer_begin(struct agg_ftimer *t, bool tsc)
{
    setup();
    memset(t->counts, 0, sizeof(t->counts));
    t->total_ns = 0;
    t->n = 0;
    t->tsc = tsc;
    t->chunk_ns = agg_ftimer_clock_ns();
    t->last = t->chunk_start = tsc ? agg_ftimer_read(true) : t->chunk_ns;
}

void agg_ftimer_start(struct agg_ftimer *t)
{
    agg_ftimer_begin(t, agg_ftimer_uses_tsc());
}

void agg_ftimer_flush(struct agg_ftimer *t)
{
    double rate = 1.0;  /* nanoseconds per unit of delta */
    uint64_t now_ns = t->tsc ? agg_ftimer_clock_ns() : t->last;
    if (t->tsc) {
        /* The chunk's own rate: its deltas add up to the clock's elapsed time. */
        uint64_t ticks = t->last - t->chunk_start, ns = now_ns - t->chunk_ns;
        rate = ticks > 0 && ticks < UINT64_MAX / 2 ? (double)ns / (double)ticks : 0.0;
    }
    for (uint32_t i = 0; i < t->n; i++) {
        if (t->delta[i] == UINT64_MAX) {
            continue;
        }
        uint64_t d = t->tsc ? (uint64_t)((double)t->delta[i] * rate) : t->delta[i];
        t->counts[bucket_of(d)]++;
        t->total_ns += d;
    }
    t->n = 0;
    t->chunk_ns = now_ns;
    t->chunk_start = t->last;
}

void agg_ftimer_finish(struct agg_ftimer *t, struct sl_metric *hist)
{
    if (t->n) {
        agg_ftimer_flush(t);
    }
    sl_hist_add(hist, t->counts, (double)t->total_ns * 1e-9);
}
