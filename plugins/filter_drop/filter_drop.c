/*
 * filter_drop.c - the `drop` filter: discards every event it sees. Which
 * events reach it is decided by the core through the filter's `when`
 * condition; this plugin never looks at the event. `percentage` thins a
 * stream instead of cutting it (Logstash's drop { percentage => N }).
 */
#include <stddef.h>

#include "sluice/plugin.h"

struct filter_drop {
    int64_t percentage;  /* 0..100: share of events dropped */
};

static const struct sl_opt drop_opts[] = {
    {.name = "percentage", .type = SL_OPT_INT, .def = "100", .min = 0, .max = 100,
     .offset = offsetof(struct filter_drop, percentage),
     .doc = "share of the events reaching the filter that are dropped, at random; 0: none"},
    {0},
};

/*
 * One xorshift64* state per worker thread: rand() would serialise the workers
 * on glibc's lock, and the quality needed to thin a log stream is low.
 */
static _Thread_local uint64_t rng_state;

static uint64_t rng_next(void)
{
    if (rng_state == 0) {
        /* Seed per thread from the clock and the state's own address, which
         * differs between threads, so two workers do not drop in lockstep. */
        rng_state = (sl_now_ms() * 0x9E3779B97F4A7C15ull) ^ (uint64_t)(uintptr_t)&rng_state;
        rng_state |= 1;
    }
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static enum sl_filter_result drop_filter(void *inst, struct sl_value *event)
{
    const struct filter_drop *d = inst;
    SL_UNUSED(event);
    if (d->percentage >= 100) {
        return SL_FILTER_DROP;
    }
    if (d->percentage <= 0) {
        return SL_FILTER_KEEP;
    }
    /* Uniform in [0, 10000): percentages are whole numbers, so this is exact
     * up to the generator's modulo bias (below 1e-15). */
    return rng_next() % 10000 < (uint64_t)d->percentage * 100 ? SL_FILTER_DROP : SL_FILTER_KEEP;
}

static int drop_init(void *inst, struct sl_plugin_ctx *ctx)
{
    SL_UNUSED(inst);
    sl_filter_touches(ctx, NULL, 0);  /* no field: the core evaluates `when` */
    return 0;
}

const struct sl_plugin sl_plugin_filter_drop = {
    .name = "drop",
    .kind = SL_PLUGIN_FILTER,
    .summary = "discards the events that reach it, or a random share of them",
    .options = drop_opts,
    .size = sizeof(struct filter_drop),
    .init = drop_init,
    .filter = drop_filter,
};
