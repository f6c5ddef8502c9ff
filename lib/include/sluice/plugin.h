/*
 * plugin.h - what an aggregator plugin (filter or output) offers the core.
 * A plugin exports exactly one symbol: `const struct sl_plugin sl_plugin_<name>`
 * listed in PLUGINS in the Makefile. The core parses the plugin's option map
 * through init(), runs `when` conditions itself, and owns batches and retries
 * at the pipeline level.
 *
 * Ownership: the pipeline owns every event. A filter changes its event in
 * place. An output borrows a batch from submit() until it calls done(); it
 * must copy whatever it needs to keep past that.
 */
#ifndef SLUICE_PLUGIN_H
#define SLUICE_PLUGIN_H

#include "config.h"
#include "loop.h"
#include "metrics.h"
#include "value.h"

enum sl_plugin_kind { SL_PLUGIN_FILTER, SL_PLUGIN_OUTPUT };

/* What the core lends a plugin instance for its whole life. */
struct sl_plugin_env {
    struct sl_loop *loop;        /* the aggregator's I/O loop (outputs may add fds/timers) */
    struct sl_metrics *metrics;
    const char *id;              /* "outputs[1] (kafka)", for messages and labels */
    bool check_only;             /* -t: check the options, open no connection */
};

/* A batch: consecutive events of one window, in order. */
struct sl_batch {
    struct sl_value *events;     /* n event objects; a dropped event is SL_V_NULL */
    size_t n;
};

/*
 * An output's verdict on a submitted batch, delivered once per submit():
 * SL_OK when every event is delivered (or dead-lettered). Outputs retry
 * transient failures themselves and report only final outcomes; anything
 * other than SL_OK means the batch must not be ACKed.
 * done may be called from submit() itself or later from the loop thread.
 */
typedef void (*sl_output_done)(void *done_arg, int status);

/* sluice_aggregator_output_events_total{output,result}: the core counts ok and
 * failed; an output that counts its own retry / dead_letter results registers
 * the series with exactly this name and help. */
#define SL_OUTPUT_EVENTS_NAME "sluice_aggregator_output_events_total"
#define SL_OUTPUT_EVENTS_HELP \
    "Events handled by each output, by result (ok|retry|failed|dead_letter)."

/* Filter result. */
enum { SL_FILTER_KEEP = 0, SL_FILTER_DROP = 1 };

/* sl_plugin.flags */
/* The output counts result="ok" itself, per event really delivered (so dead-lettered
 * or dropped events are not counted ok); the core then counts only failed batches. */
#define SL_PLUGIN_COUNTS_OK 0x1u

struct sl_plugin {
    const char *name;            /* config key: "grok", "file" ... */
    enum sl_plugin_kind kind;
    unsigned flags;              /* SL_PLUGIN_* */
    /* Reads opts (a map, possibly NULL) through the sl_cfg getters, checking
     * unknown keys; returns the instance, or NULL after recording errors. */
    void *(*init)(struct sl_cfg *cfg, struct sl_cfg_node *opts, struct sl_plugin_env *env);
    void (*free)(void *inst);

    /* Filters: run on worker threads; must be thread-safe for one instance. */
    int (*filter)(void *inst, struct sl_value *event);

    /* Outputs: run on the loop thread. */
    void (*submit)(void *inst, struct sl_batch *batch, sl_output_done done, void *done_arg);
    /* Called when the process is stopping: flush what is buffered, stop retrying
     * after deadline_ms (monotonic); outstanding batches then get done(SL_ECLOSED). */
    void (*shutdown)(void *inst, uint64_t deadline_ms);
    /* Called on SIGHUP-less log rotation requests etc. Optional. */
    void (*reopen)(void *inst);
};

/* The generated table of every compiled-in plugin, NULL-terminated. */
extern const struct sl_plugin *const sl_plugins[];
const struct sl_plugin *sl_plugin_find(const char *name, enum sl_plugin_kind kind);

#endif
