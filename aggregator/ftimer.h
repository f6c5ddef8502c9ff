/*
 * ftimer.h - how long one filter took on each event of a slice, for
 * sluice_aggregator_filter_duration_seconds (docs/operations.md, "Filter
 * duration"), at a few nanoseconds per event.
 *
 * A monotonic clock read per event and filter cost more than the date or the
 * mutate filter they timed (~25 ns through the vDSO, plus a bisection over
 * double bounds). Where the CPU has an invariant time-stamp counter, each
 * event reads only the counter; every AGG_FTIMER_CHUNK events the monotonic
 * clock is read once and the chunk's counter deltas are turned into
 * nanoseconds at the rate that chunk itself measured - so the durations add
 * up to the clock's elapsed time exactly, with no calibration and no
 * assumption about the counter's frequency. Elsewhere the clock is read per
 * event, as before. Buckets are found by integer nanoseconds, from the low
 * end (almost every observation is in the first few buckets).
 *
 * Usage, per filter and slice, on one thread:
 *     agg_ftimer_start(&t);
 *     for each event: run the filter; agg_ftimer_mark(&t, ran);
 *     agg_ftimer_finish(&t, histogram);
 */
#ifndef SLUICE_AGG_FTIMER_H
#define SLUICE_AGG_FTIMER_H

#include <stdbool.h>
#include <stdint.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "instance.h"
#include "sluice/metrics.h"

#define AGG_FTIMER_CHUNK 256

struct agg_ftimer {
    uint64_t counts[AGG_FILTER_SECONDS_NBOUNDS + 1];
    uint64_t total_ns;
    uint64_t chunk_ns;        /* the clock at the chunk's start */
    uint64_t last;            /* counter (or clock) at the previous mark */
    uint64_t chunk_start;     /* counter (or clock) at the chunk's start */
    uint32_t n;               /* deltas held */
    bool tsc;
    uint64_t delta[AGG_FTIMER_CHUNK];  /* UINT64_MAX: an event the filter did not run on */
};

/* Whether this CPU's time-stamp counter can be used (x86 with an invariant TSC). */
bool agg_ftimer_uses_tsc(void);

/* Starts a slice: with the counter when agg_ftimer_uses_tsc(), else the clock. */
void agg_ftimer_start(struct agg_ftimer *t);
/* The same with the choice made by the caller (tests run both). */
void agg_ftimer_begin(struct agg_ftimer *t, bool tsc);
/* Adds the chunk's deltas to the counts (called by mark when the chunk is full). */
void agg_ftimer_flush(struct agg_ftimer *t);
/* Adds the counts and their sum to hist (NULL: forgets them). */
void agg_ftimer_finish(struct agg_ftimer *t, struct sl_metric *hist);
/* The bucket of d nanoseconds: the first bound >= d, past the last +Inf. */
size_t agg_ftimer_bucket(uint64_t d_ns);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t agg_ftimer_clock_ns(void);

static inline uint64_t agg_ftimer_read(bool tsc)
{
#if defined(__x86_64__) || defined(__i386__)
    if (tsc) {
        return __rdtsc();
    }
#else
    (void)tsc;
#endif
    return agg_ftimer_clock_ns();
}

/* One event done: its duration is since the previous mark (or the start);
 * observe says whether it counts (the filter ran on the event). */
static inline void agg_ftimer_mark(struct agg_ftimer *t, bool observe)
{
    uint64_t now = agg_ftimer_read(t->tsc);
    t->delta[t->n++] = observe ? now - t->last : UINT64_MAX;
    t->last = now;
    if (t->n == AGG_FTIMER_CHUNK) {
        agg_ftimer_flush(t);
    }
}

#endif
