/*
 * backoff.h - the one retry schedule: exponential backoff with "equal jitter".
 * The delay before retry number attempt (0 = the first retry) is
 *   d = min(max_ms, init_ms * 2^attempt)     (computed without overflow)
 * and what is returned is a random pick in [d - d/2, d], so clients that
 * failed together (shippers after an aggregator restart, outputs after a
 * cluster hiccup) spread their retries out instead of arriving in step, yet
 * never wait less than half the schedule.
 *
 * The state is plain data, owned by the caller and used by one thread at a
 * time; it holds no resources and needs no free.
 */
#ifndef SLUICE_BACKOFF_H
#define SLUICE_BACKOFF_H

#include "common.h"

struct sl_backoff {
    uint64_t init_ms, max_ms;
    unsigned attempt;  /* retries handed out since init or the last reset */
    uint32_t rng;      /* xorshift32 state (0, as in a zeroed struct, is replaced) */
};

/*
 * init_ms 0 counts as 1; max_ms below init_ms caps every delay at max_ms.
 * seed picks the jitter sequence: give every client its own (a pid, an index,
 * the clock mixed together), or they jitter in step. Any value, 0 included.
 */
void sl_backoff_init(struct sl_backoff *b, uint64_t init_ms, uint64_t max_ms, uint32_t seed);
/* The delay before the next retry; then counts the attempt. */
uint64_t sl_backoff_next(struct sl_backoff *b);
/* After a success: the next delay is about init_ms again. The rng runs on. */
void sl_backoff_reset(struct sl_backoff *b);

/* The pure schedule sl_backoff_next uses, for callers that count attempts
 * themselves. rnd is any 32-bit random number. */
uint64_t sl_backoff_delay(uint64_t init_ms, uint64_t max_ms, unsigned attempt, uint32_t rnd);

#endif
