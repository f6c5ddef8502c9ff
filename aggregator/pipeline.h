/*
 * pipeline.h - what happens to a batch between the listener and the ACK:
 * the filters run over it, then every output gets it, and the submitter's
 * completion runs once all outputs have given their verdict.
 *
 * A batch moves through two steps:
 *   1. on `pipeline.workers` threads, a batch larger than pipeline.batch_size
 *      cut into slices done in parallel: events sent as JSON text are parsed,
 *      the filters run, the outputs' `when` conditions pick the events each
 *      output takes, and the events are encoded for the outputs that declared
 *      an encoding (plugin.h). The loop thread does none of it (unless no
 *      worker thread could start);
 *   2. "filtered batch ready" (always on the loop thread): each output gets
 *      the events it takes (all of them; those its `when` accepts; or, for an
 *      `else` output, those no `when` output took); outputs run on the loop
 *      thread. Batches submitted with the same agg_order reach this step in
 *      submit order. The batch completes once every output that took an
 *      event has given its verdict; its events are cleared then.
 *
 * A pipeline is built from one configuration and never changes; a reload
 * builds a new one and the old one finishes the batches it holds. The owner
 * (main) frees a pipeline only when agg_pipeline_idle() says so, or at exit.
 */
#ifndef SLUICE_AGG_PIPELINE_H
#define SLUICE_AGG_PIPELINE_H

#include "conf.h"
#include "sluice/loop.h"
#include "sluice/metrics.h"
#include "sluice/plugin.h"

/* Lumberjack connections and Kafka consumers add to one gauge,
 * sluice_aggregator_pending_bytes: the help text both register it with. */
#define AGG_PENDING_BYTES_HELP                                                          \
    "Bytes read from clients and not yet acknowledged: Lumberjack windows and frames " \
    "being read, Kafka messages handed to the pipeline."

struct agg_pipeline;
struct agg_job;

/*
 * Keeps the batches of one source (a connection) in order: those submitted
 * with the same agg_order reach the outputs in submit order, even when a later
 * one finishes filtering first, and even across pipelines (a reload). The
 * caller zero-initialises it and keeps it valid until every batch submitted
 * with it has completed. The pipeline's business inside.
 */
struct agg_order {
    struct agg_job *head, *tail;
};

/*
 * A batch whose events the submitter cannot list yet (a compressed window):
 * unpack fills in->batch on a worker thread and returns SL_OK or why not;
 * then unpacked gets that status on the loop thread, before any later batch
 * of the same order is released to the outputs. When unpacked returns true
 * the batch goes on as if submitted then; otherwise it completes without
 * reaching an output, and done gets unpack's status (SL_EAGAIN if that was
 * SL_OK). Both get the arg given to agg_pipeline_submit.
 */
typedef int (*agg_unpack_fn)(void *arg);
typedef bool (*agg_unpacked_fn)(void *arg, int status);

/*
 * A batch as submitted. The submitter fills batch (events[0..n), and sets
 * raw when each event is the JSON text of one, a string value whose bytes
 * stay valid until done is called) and owns the struct; the pipeline parses
 * raw texts into trees of its own, and clears every event before done.
 * A raw text that is not one JSON object within max_depth fails the whole
 * batch before any output sees it: done gets SL_EPROTO and bad_* say why.
 */
struct agg_input {
    struct sl_batch batch;
    agg_unpack_fn unpack;      /* NULL: batch is filled in already */
    agg_unpacked_fn unpacked;
    bool raw;
    unsigned max_depth;        /* raw: nesting limit of a text (0: the parser's default) */
    int bad_rc;                /* raw: SL_EINVAL (not JSON, not an object) or SL_ELIMIT (depth) */
    size_t bad_index;          /* raw: which event */
    char bad_why[128];
};

/*
 * Called once per submitted batch, on the loop thread, possibly from inside
 * agg_pipeline_submit() itself. status is SL_OK when every output accepted
 * every (non-dropped) event; anything else means the batch must not be ACKed.
 */
typedef void (*agg_batch_done)(void *arg, int status);

/*
 * Instantiates conf's filters and outputs (each plugin's init() reads and checks
 * its options). Returns NULL when any plugin failed; its errors are recorded in
 * conf->cfg. conf may be freed afterwards: plugins copy what they keep.
 */
struct agg_pipeline *agg_pipeline_new(struct agg_conf *conf, struct sl_loop *loop,
                                      struct sl_metrics *metrics);

/*
 * Runs in's events through the filters and the outputs. The pipeline borrows
 * in (and its events) until done is called; filters change events in place
 * (on worker threads: the caller must not touch the batch meanwhile) and set
 * dropped ones to null. order may be NULL (no ordering constraint).
 */
void agg_pipeline_submit(struct agg_pipeline *p, struct agg_input *in, struct agg_order *order,
                         agg_batch_done done, void *arg);

/* Runs the filters on one event, on the calling thread, as a worker would
 * (conditions, tags, counting; a dropped event is left null). For
 * --test-pipeline. */
void agg_pipeline_filter_one(struct agg_pipeline *p, struct sl_value *ev);

/*
 * True while every worker has a slice waiting for it besides the one in hand:
 * work the submitter could do itself (a compressed window's inflating) is
 * better done there, on a core the workers are not using.
 */
bool agg_pipeline_saturated(struct agg_pipeline *p);

/* Batches submitted and not yet completed. */
size_t agg_pipeline_inflight(const struct agg_pipeline *p);
static inline bool agg_pipeline_idle(const struct agg_pipeline *p)
{
    return agg_pipeline_inflight(p) == 0;
}

/* Asks every output to reopen its files (SIGHUP, after logrotate). */
void agg_pipeline_reopen(struct agg_pipeline *p);
/* The process is stopping: outputs flush and stop retrying after deadline_ms
 * (monotonic). Batches submitted afterwards complete with SL_ECLOSED. */
void agg_pipeline_shutdown(struct agg_pipeline *p, uint64_t deadline_ms);
/* Stops and joins the workers (a slice being filtered is finished first),
 * frees the plugins, then any batch still in flight without calling its
 * completion (only at exit, after the shutdown deadline). NULL is a no-op. */
void agg_pipeline_free(struct agg_pipeline *p);

#endif
