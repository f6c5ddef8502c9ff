/*
 * backoff.c - exponential backoff with equal jitter (backoff.h).
 */
#include "sluice/backoff.h"

#include <limits.h>

/* Any nonzero state will do: xorshift32 maps 0 to 0 forever. */
#define SEED_FOR_ZERO 0x9e3779b9u

void sl_backoff_init(struct sl_backoff *b, uint64_t init_ms, uint64_t max_ms, uint32_t seed)
{
    b->init_ms = init_ms;
    b->max_ms = max_ms;
    b->attempt = 0;
    b->rng = seed ? seed : SEED_FOR_ZERO;
}

uint64_t sl_backoff_delay(uint64_t init_ms, uint64_t max_ms, unsigned attempt, uint32_t rnd)
{
    uint64_t d = init_ms ? init_ms : 1;
    /* Doubling stops at the cap, so the loop runs at most 64 times whatever
     * attempt is, and d never wraps. */
    for (unsigned i = 0; i < attempt && d < max_ms; i++) {
        d = d > max_ms / 2 ? max_ms : d * 2;
    }
    if (d > max_ms) {
        d = max_ms;
    }
    uint64_t half = d / 2;  /* half + 1 cannot wrap: half <= UINT64_MAX / 2 */
    return d - half + (half ? rnd % (half + 1) : 0);
}

uint64_t sl_backoff_next(struct sl_backoff *b)
{
    uint32_t x = b->rng ? b->rng : SEED_FOR_ZERO;  /* a zeroed struct still jitters */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b->rng = x;
    uint64_t d = sl_backoff_delay(b->init_ms, b->max_ms, b->attempt, x);
    if (b->attempt < UINT_MAX) {
        b->attempt++;  /* saturates: wrapping to 0 would drop back to init_ms */
    }
    return d;
}

void sl_backoff_reset(struct sl_backoff *b)
{
    b->attempt = 0;
}
