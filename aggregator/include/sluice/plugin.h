/*
 * plugin.h - the contract between the aggregator's core and a plugin (a
 * filter or an output). A plugin is one folder under plugins/ that exports
 * exactly one symbol, `const struct sl_plugin sl_plugin_<folder>`, listed in
 * PLUGINS in the Makefile. It compiles against the public headers only
 * (lib/include and aggregator/include): what the core does with it is not its
 * business.
 *
 * A plugin declares its options once, as a table of struct sl_opt. The core
 * reads the YAML map through that table into the instance (a zeroed struct of
 * sl_plugin.size bytes), checks types, bounds, choices and unknown keys
 * (FILE:LINE:COL, with a "did you mean" for typos), applies the defaults,
 * frees what it parsed, and renders the table into the docs
 * (`sluice-aggregator --plugin-docs`). Options every instance has are the
 * core's, never in a plugin's table:
 *   id               names the instance in metric labels and messages
 *   when             a condition: a filter runs, an output receives, only events it accepts
 *   else             (outputs) receives the events that no output with a `when` took
 *   tag_on_failure   (filters with a failure_tag) tags added when the filter returns FAIL
 *   dead_letter_path (outputs) where sl_batch_dead_letter() files events refused for good
 *
 * Filters run on worker threads, several events of one instance at once:
 * filter() only reads the instance, apart from state the plugin guards
 * itself (date's lock-protected zone cache). They return a verdict; the
 * core drops, tags and counts (sluice_aggregator_filter_events_total).
 *
 * Outputs run on the loop thread. submit() borrows a batch until the output
 * gives its verdict with sl_batch_done(); the core counts every result
 * (sluice_aggregator_output_events_total{output,result}) from what the output
 * reports: done, dead letters and retries.
 *
 * Ownership: the pipeline owns every event. A filter changes its event in
 * place. An output copies whatever it needs past sl_batch_done().
 */
#ifndef SLUICE_PLUGIN_H
#define SLUICE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/common.h"
#include "sluice/loop.h"
#include "sluice/metrics.h"
#include "sluice/template.h"
#include "sluice/value.h"

struct sl_cfg_node;

/* ---- options ---------------------------------------------------------------- */

enum sl_opt_type {
    SL_OPT_STRING,   /* char *                   any scalar, as written */
    SL_OPT_BOOL,     /* bool                     true/false/yes/no/on/off */
    SL_OPT_INT,      /* int64_t                  within [min, max] */
    SL_OPT_SIZE,     /* uint64_t bytes           "512kb", "5mb", "1gb", 100 */
    SL_OPT_DURATION, /* uint64_t milliseconds    "250ms", "10s", "5m", "1h" */
    SL_OPT_ENUM,     /* int                      index into choices */
    SL_OPT_FIELD,    /* struct sl_fieldref       "[a][b]" or "a.b", compiled; "": none (nsegs 0) */
    SL_OPT_TEMPLATE, /* struct sl_template *     "logs-%{[service]}-%{+yyyy.MM.dd}", compiled */
    SL_OPT_LIST,     /* struct sl_strv           a list of scalars (one scalar = a list of one) */
    SL_OPT_FIELDS,   /* struct sl_fieldrefs      a list of field references */
    SL_OPT_MAP,      /* struct sl_strmap         a map of scalars to scalars, in file order */
    SL_OPT_BLOCK,    /* a nested struct          a map read through its own table (sub) */
    SL_OPT_NODE,     /* struct sl_cfg_node *     raw, for init() to read; valid during init only */
};

/* sl_opt.flags */
#define SL_OPT_REQUIRED 0x1u  /* absent (or null) is an error */
#define SL_OPT_NONEMPTY 0x2u  /* "" or [] is an error */

/*
 * One option. def is the default as a user would write it ("10s", "message",
 * "[a][b]"; for LIST, FIELDS and MAP YAML flow text: "[a, b]", "{k: v}"); it
 * goes through the same getter as the file, and into the docs as written.
 * NULL: no default (zero, NULL, empty).
 * For INT, SIZE and DURATION, min and max bound the value when either is
 * non-zero. alias is a second accepted name (Logstash's, say); giving both
 * is an error.
 */
struct sl_opt {
    const char *name;
    enum sl_opt_type type;
    size_t offset;                 /* offsetof() the value in the instance */
    const char *def;
    const char *doc;               /* one line, for the generated docs */
    int64_t min, max;
    const char *const *choices;    /* ENUM: NULL-terminated */
    const struct sl_opt *sub;      /* BLOCK: the nested table */
    const char *alias;
    unsigned flags;                /* SL_OPT_* */
};

/* What LIST, FIELDS and MAP options hold. v (keys, vals) are NULL-terminated. */
struct sl_strv {
    char **v;
    size_t n;
};
struct sl_fieldrefs {
    struct sl_fieldref *v;
    size_t n;
};
struct sl_strmap {
    char **keys, **vals;
    size_t n;
};

/* The nested table of TLS client options shared by every output that
 * dials out (BLOCK, into a struct sl_plugin_tls). */
struct sl_plugin_tls {
    struct sl_strv certificate_authorities;
    char *certificate;
    char *key;
    char *key_passphrase;
    int verification_mode;         /* enum sl_tls_verify: full, certificate, none, strict */
};
extern const struct sl_opt sl_plugin_tls_opts[];

/* ---- ECS compatibility ---------------------------------------------------------- */

/*
 * Which field names a plugin uses (Logstash's ecs_compatibility): the Elastic
 * Common Schema (v8, the default as in Logstash 8; v1 is the same names) or
 * the names before ECS (disabled). Set pipeline-wide (pipeline.ecs_compatibility)
 * and per plugin by an `ecs_compatibility` option, which a plugin declares as
 * SL_OPT_ENUM with sl_ecs_choices and no default, and resolves in init with
 * sl_plugin_ecs(). The zero value is the default.
 */
enum sl_ecs { SL_ECS_V8 = 0, SL_ECS_V1, SL_ECS_DISABLED };
extern const char *const sl_ecs_choices[];   /* "v8", "v1", "disabled", NULL */

/* ---- instances ---------------------------------------------------------------- */

/* What the core lends an instance for its whole life (valid until fini). */
struct sl_plugin_ctx {
    struct sl_loop *loop;        /* the aggregator's I/O loop (outputs may add fds/timers) */
    struct sl_metrics *metrics;  /* for a plugin's own extra series */
    const char *id;              /* "outputs[1] (kafka)": for messages */
    const char *label;           /* the instance's metric label: its `id:`, else the
                                  * plugin's name, made unique ("grok", "grok_2") */
    bool check_only;             /* -t: check everything, open no connection */
    enum sl_ecs ecs;             /* pipeline.ecs_compatibility */
    struct sl_instance *core;    /* the core's; opaque */
};

/* During init only: records "FILE:LINE:COL: <id>: <message>" at option opt
 * (NULL: at the instance's map), which fails the instance. */
void sl_plugin_error(struct sl_plugin_ctx *ctx, const char *opt, const char *fmt, ...)
    SL_PRINTF(3, 4);
/* The same at one entry of a MAP option (key) or of a LIST/FIELDS option
 * (index; key NULL), so the position points at the entry itself. */
void sl_plugin_error_at(struct sl_plugin_ctx *ctx, const char *opt, const char *key,
                        size_t index, const char *fmt, ...) SL_PRINTF(5, 6);
/* The same at any node of an SL_OPT_NODE option (a nested element of it). */
void sl_plugin_error_node(struct sl_plugin_ctx *ctx, const struct sl_cfg_node *n,
                          const char *fmt, ...) SL_PRINTF(3, 4);
/* During init only: whether the user wrote opt (a default applies otherwise). */
bool sl_plugin_given(const struct sl_plugin_ctx *ctx, const char *opt);
/* During init only: the instance's mode - its `ecs_compatibility` option
 * (value, an enum sl_ecs) when the user wrote it, else the pipeline's. */
enum sl_ecs sl_plugin_ecs(const struct sl_plugin_ctx *ctx, int value);

/* ---- filters ------------------------------------------------------------------ */

enum sl_filter_result {
    SL_FILTER_KEEP = 0,    /* done, or nothing to do: the event flows on */
    SL_FILTER_DROP,        /* the event leaves the pipeline (the core clears it) */
    SL_FILTER_FAIL,        /* could not do its job: the core adds tag_on_failure */
    SL_FILTER_FAIL_TAGGED, /* failed and tagged the event itself (grok's tag_on_timeout) */
};

/*
 * During init, filters: the root keys this instance reads or writes, declared
 * one call at a time ("[log][file][path]" counts as "log"; a condition or
 * template the filter evaluates counts its fields). Once a filter has declared,
 * the core may leave every other root member of an event unparsed and copy it
 * out as the client sent it (docs/architecture.md). A filter that never calls
 * these may touch anything; one that cannot tell (it merges parsed JSON into
 * the root) calls sl_filter_touches_all. sl_filter_touches(ctx, NULL, 0)
 * declares nothing more, so a filter that touches no field still declares.
 */
void sl_filter_touches(struct sl_plugin_ctx *ctx, const char *key, size_t len);
void sl_filter_touches_field(struct sl_plugin_ctx *ctx, const struct sl_fieldref *r);
void sl_filter_touches_template(struct sl_plugin_ctx *ctx, const struct sl_template *t);
void sl_filter_touches_all(struct sl_plugin_ctx *ctx);
/*
 * A root key the filter only ever replaces whole (it sets the member and never
 * reads what was there, e.g. grok's `overwrite` of a top-level capture): it
 * counts as declared, yet the core need not parse the member - the value the
 * filter sets wins over the text's, in the text's place.
 */
void sl_filter_replaces(struct sl_plugin_ctx *ctx, const char *key, size_t len);

/* ---- outputs ------------------------------------------------------------------ */

/*
 * A batch: consecutive events of one window, in order, as one output sees
 * it. An event this output does not take (dropped by a filter, or routed
 * elsewhere by `when`/`else`) reads as NULL through sl_batch_event().
 */
struct sl_batch {
    struct sl_value *events;
    size_t n;
    const uint8_t *take;    /* NULL: every live event; else take[i] != 0 for those it takes */
    size_t count;           /* events this output takes */
    void *core;             /* the core's; opaque */
};

static inline struct sl_value *sl_batch_event(const struct sl_batch *b, size_t i)
{
    struct sl_value *e = &b->events[i];
    if (e->type == SL_V_NULL || (b->take && !b->take[i])) {
        return NULL;
    }
    return e;
}

/*
 * The output's verdict on a submitted batch, exactly once, on the loop thread
 * (from inside submit() is fine). SL_OK: every event it takes is delivered
 * or dead-lettered. Anything else: the window is not acknowledged (the
 * client sends it again). Outputs retry transient failures themselves and
 * give only final verdicts. b must not be touched afterwards.
 */
void sl_batch_done(struct sl_batch *b, int status);

/*
 * Files one event that can never be delivered (a mapping error, a message
 * too large) in the instance's dead_letter_path: one NDJSON record (time,
 * output, event, then extra_members such as "\"status\":400,\"index\":\"x\""),
 * written durably, counted result="dead_letter". Without a dead_letter_path
 * the event is dropped instead, as Logstash does: logged with extra_members
 * and counted result="dropped". Either way the event is settled and must not
 * hold its batch back. event_json is the event as JSON text. Returns 0
 * (filed), SL_DLQ_DROPPED (no dead_letter_path), or SL_EIO when the write
 * failed: then the event has failed and the batch must not be reported
 * SL_OK. Any thread, while b is not yet done.
 */
#define SL_DLQ_DROPPED 1
int sl_batch_dead_letter(struct sl_batch *b, const char *event_json, size_t len,
                         const char *extra_members);

/* Counts nevents as sent again (result="retry"). Any thread. */
void sl_output_retried(struct sl_plugin_ctx *ctx, size_t nevents);

/*
 * Encoded events. Serialising events is most of an output's work, and the
 * loop thread that runs submit() also serves every connection. An output that
 * declares its encoding in init() gets each event it takes already encoded,
 * on the pipeline's workers: the event's JSON, and up to SL_ENC_PARTS short
 * strings of its own (a file path, an index or topic name, a key) rendered by
 * its part() callback. submit() then reads bytes with sl_batch_json() and
 * sl_batch_part() and need not walk the event tree.
 *
 * The JSON of an event that no filter ran on is the text the client sent,
 * copied (it was validated when parsed; see docs/architecture.md); any other
 * event is written from its tree. Either way: compact JSON on one line, keys
 * in order, @metadata left out unless `metadata` is set.
 */
#define SL_ENC_PARTS 2

struct sl_encoding {
    bool metadata;     /* keep the root "@metadata" member in the JSON */
    unsigned nparts;   /* 0..SL_ENC_PARTS */
    /* Appends part k (< nparts) of ev to out. On a worker thread, concurrently
     * with other workers and with submit(): read inst, write nothing shared.
     * 0; SL_ENOENT when the event has no such part (a key it lacks); any other
     * SL_E* when it cannot be rendered (too long): sl_batch_part() says so. */
    int (*part)(const void *inst, const struct sl_value *ev, unsigned k, struct sl_buf *out);
    /* The root keys part() reads from an event, NULL-terminated ({NULL}: none);
     * NULL, the default: any. When no filter or `when` needs events and every
     * output's parts read only listed keys, the core does not build the event
     * trees: it validates each text and gives part() an object holding just
     * those members (sl_template_reads_only tells what a template reads). */
    const char *const *reads;
};

/* During init: every event this instance takes comes encoded as e says (copied). */
void sl_output_encoding(struct sl_plugin_ctx *ctx, const struct sl_encoding *e);

struct sl_bytes {
    const char *p;  /* not NUL-terminated; valid until the batch is done */
    size_t len;
};

/* The JSON of event i (one the batch takes), without a newline; one '\n'
 * follows it in memory (p[len]), so that where events lie one after the other
 * (p + len + 1 is the next one's p) an output writes the run as it is. For an
 * output that declared an encoding; {NULL, 0} otherwise. */
struct sl_bytes sl_batch_json(const struct sl_batch *b, size_t i);
/* Part k of event i: 0 and *out, or what part() returned (SL_ENOENT, ...). */
int sl_batch_part(const struct sl_batch *b, size_t i, unsigned k, struct sl_bytes *out);

/*
 * Lines to write with writev(2) (sl_writev_all): each event's JSON and the
 * newline after it, runs of adjacent events joined into one iovec. Start
 * zeroed; sl_lines_free() when done.
 */
struct iovec;
struct sl_lines {
    struct iovec *v;
    size_t n, cap;
};
/* Adds event i of b as one line (nothing for an event b does not take). */
void sl_lines_add(struct sl_lines *l, const struct sl_batch *b, size_t i);
void sl_lines_free(struct sl_lines *l);

/* ---- the descriptor ------------------------------------------------------------- */

enum sl_plugin_kind { SL_PLUGIN_FILTER, SL_PLUGIN_OUTPUT };

struct sl_plugin {
    const char *name;              /* config key: "grok", "file" ... */
    enum sl_plugin_kind kind;
    const char *summary;           /* one line, for the docs */
    const struct sl_opt *options;  /* its own options; ends with {0} */
    size_t size;                   /* the instance struct the offsets point into */
    const char *failure_tag;       /* filters: tag_on_failure's default (NULL: never fails) */

    /* After the options are read into inst (zeroed, then filled): derive state,
     * check options against each other (sl_plugin_error), and - unless
     * ctx->check_only - open what the instance needs. 0, or an SL_E* code
     * (errors recorded). Optional. fini() runs on failure too. */
    int (*init)(void *inst, struct sl_plugin_ctx *ctx);
    /* Frees what init made; the core frees the options and inst. Optional. */
    void (*fini)(void *inst);

    /* Filters: on worker threads; inst is shared by them (see above). */
    enum sl_filter_result (*filter)(void *inst, struct sl_value *event);

    /* Outputs: on the loop thread. */
    void (*submit)(void *inst, struct sl_batch *batch);
    /* The process is stopping: flush what is buffered, stop retrying after
     * deadline_ms (monotonic); outstanding batches then get SL_ECLOSED. Optional. */
    void (*shutdown)(void *inst, uint64_t deadline_ms);
    /* SIGHUP: reopen files (after logrotate). Optional. */
    void (*reopen)(void *inst);
};

#endif
