/*
 * instance.h - one configured plugin (a filter or an output) as the core
 * holds it: the plugin's options read through its table, the options every
 * instance has (id, when, else, tag_on_failure, dead_letter_path), its
 * metric series, and the verdict bookkeeping of sluice/plugin.h. The pipeline
 * builds its stages from these; the plugin tests drive plugins through the
 * same functions, so a test sees exactly what the pipeline does.
 */
#ifndef SLUICE_AGG_INSTANCE_H
#define SLUICE_AGG_INSTANCE_H

#include <stdatomic.h>

#include "condition.h"
#include "sluice/config.h"
#include "sluice/deadletter.h"
#include "sluice/json.h"
#include "sluice/plugin.h"

/* The compiled-in plugins (generated from PLUGINS in the Makefile), NULL-terminated. */
extern const struct sl_plugin *const sl_plugins[];
const struct sl_plugin *agg_plugin_find(const char *name, enum sl_plugin_kind kind);
/* The names of every plugin of kind, NULL-terminated (static storage). */
const char *const *agg_plugin_names(enum sl_plugin_kind kind);
/* Appends p's reference as Markdown: summary, then one table of its options
 * and the core's (what --plugin-docs prints and the READMEs hold). */
void agg_plugin_doc(struct sl_buf *out, const struct sl_plugin *p);

/* Bounds of sluice_aggregator_filter_duration_seconds: 1 us .. 10 s. */
#define AGG_FILTER_SECONDS_NBOUNDS 22
extern const double agg_filter_seconds_buckets[AGG_FILTER_SECONDS_NBOUNDS];
extern const size_t agg_filter_seconds_nbuckets;

/* The core's own options of every filter / output instance. */
extern const struct sl_opt agg_filter_core_opts[];
extern const struct sl_opt agg_output_core_opts[];

/* The root keys a filter declared it reads or writes (plugin.h). */
struct agg_touch {
    char **keys;
    size_t n;
    bool declared;  /* some sl_filter_touches* call was made */
    bool all;       /* ... and it was sl_filter_touches_all */
};

struct sl_instance {
    const struct sl_plugin *plugin;
    void *inst;                    /* sl_plugin.size bytes: the options, then the plugin's state */
    struct sl_plugin_ctx ctx;
    char *id;                      /* "outputs[1] (kafka)" */
    char *label;                   /* metric label */
    bool initialised;              /* init() ran (so fini() must) */

    /* The core's options. */
    struct sl_condition *when;     /* NULL: every event */
    bool is_else;                  /* outputs: the events no `when` output took */
    char **fail_tags;              /* filters: NULL-terminated; empty: tag nothing */
    struct sl_dlq *dlq;            /* outputs: NULL without dead_letter_path */
    bool encoded;                  /* outputs: sl_output_encoding() was called */
    struct agg_touch touch;        /* filters: what sl_filter_touches*() declared */
    struct sl_encoding enc;
    atomic_uint_least64_t drop_logged_ms; /* last "dropped" warning (monotonic ms) */

    /* Metrics: filters count ok/dropped/error; outputs ok/failed/retry/dead_letter/dropped.
     * m_seconds: an output's request histogram, a filter's per-event duration (the
     * pipeline times filters, agg_instance_filter does not). */
    struct sl_metric *m_ok, *m_dropped, *m_error;
    struct sl_metric *m_failed, *m_retry, *m_dead, *m_seconds;

    /* While init runs only. */
    struct sl_cfg *cfg;
    struct sl_cfg_node *opts;
};

struct agg_instance_args {
    const char *id;                /* for messages */
    const char *label;             /* default metric label (an `id:` option wins) */
    struct sl_loop *loop;
    struct sl_metrics *metrics;    /* NULL: no series (tests) */
    bool check_only;
    enum sl_ecs ecs;               /* pipeline.ecs_compatibility (0: v8, the default) */
};

/*
 * Reads opts (a map, or NULL) through the core's options and p's table, then
 * runs p->init. Returns the instance, or NULL with every problem recorded in
 * cfg (all of them: an instance with a bad `when` still checks its options).
 */
struct sl_instance *agg_instance_new(const struct sl_plugin *p, struct sl_cfg *cfg,
                                     struct sl_cfg_node *opts, const struct agg_instance_args *a);
void agg_instance_free(struct sl_instance *in);

/* The `id:` a map of options gives, or NULL (read before labels are made unique). */
const char *agg_instance_given_id(struct sl_cfg_node *opts);

/*
 * Filters: runs the instance on ev when its condition holds; drops (clears),
 * tags and counts by the verdict. Any thread. Returns the verdict, or
 * SL_FILTER_KEEP when the condition skipped it; *ran says which.
 * agg_instance_run does the same but leaves the counting to the caller (the
 * pipeline adds a slice's verdicts with agg_instance_count, once per slice:
 * an atomic add per event and filter is a shared cache line between workers).
 */
enum sl_filter_result agg_instance_run(struct sl_instance *in, struct sl_value *ev, bool *ran);
/* Adds verdicts to the filter's counters: n[SL_FILTER_KEEP], [DROP], [FAIL]
 * (FAIL_TAGGED counts as FAIL). */
void agg_instance_count(struct sl_instance *in, const uint64_t n[3]);
enum sl_filter_result agg_instance_filter(struct sl_instance *in, struct sl_value *ev,
                                          bool *ran);

/*
 * Outputs: sl_batch_dead_letter for an event outside any batch (one the core
 * itself could not hand to the output, e.g. too large to parse): filed in
 * in's dead_letter_path or dropped, counted the same way, same returns. Any
 * thread.
 */
int agg_instance_dead_letter(struct sl_instance *in, const char *event_json, size_t len,
                             const char *extra_members);

/*
 * Outputs: what sl_batch.core points to. The pipeline (or a test) embeds one
 * per output per batch; sl_batch_done() counts, then calls done(c, status).
 */
/* One event's encoding for one output (plugin.h, "Encoded events"). */
struct agg_enc {
    struct sl_bytes json;
    struct sl_bytes part[SL_ENC_PARTS];
    int part_rc[SL_ENC_PARTS];
};

struct agg_batch_core {
    struct sl_instance *in;
    const struct agg_enc *enc;     /* n records for an encoded output, else NULL */
    void (*done)(struct agg_batch_core *c, int status);
    atomic_size_t ndead;           /* events of this batch dead-lettered */
    bool finished;                 /* done was called (a second call is a plugin bug) */
    double start;                  /* seconds, monotonic: for the request histogram */
};

/* A root member of an event's text, and whether the event's tree holds it. */
struct agg_member {
    struct sl_json_member m;
    bool parsed;  /* in the tree (claimed by a filter or an output); else only in the text */
    struct sl_value snap;  /* parsed: the value as parsed (a scalar or string still equal
                            * to it is unchanged: changing one always makes a new value) */
};

/* What a worker knows of the text an event came as. */
struct agg_text {
    struct sl_bytes raw;
    struct sl_json_doc doc;
    bool touched;                   /* a filter ran on the event */
    /* Partial events: the tree holds only the parsed members; members lists them all. */
    const struct agg_member *members;
    size_t nmembers;
};

/*
 * Encodes ev for in (an output that declared an encoding): its JSON, then
 * its parts, appended to out, with r holding offsets into out; once out no
 * longer grows, agg_enc_fix turns them into pointers. txt (NULL: none) is the
 * text ev came as: an untouched verbatim text is copied instead of written
 * from the tree, and the members a partial event did not parse are copied
 * from it around those written from the tree.
 */
void agg_output_encode(const struct sl_instance *in, const struct sl_value *ev,
                       const struct agg_text *txt, struct sl_buf *out, struct agg_enc *r);
void agg_enc_fix(const struct sl_instance *in, struct agg_enc *r, const struct sl_buf *out);

/* Prepares b (events[0..n), take as in sl_batch) for in's submit(); done gets the verdict. */
void agg_batch_prepare(struct sl_batch *b, struct agg_batch_core *c, struct sl_instance *in,
                       struct sl_value *events, size_t n, const uint8_t *take,
                       void (*done)(struct agg_batch_core *, int));

#endif
