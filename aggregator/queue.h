/*
 * queue.h - the persisted queue between the listener and the pipeline
 * (queue.type: persisted; docs/operations.md has its guarantees).
 *
 * Windows go in: a writer thread checks each event is a JSON object (as the
 * pipeline would), appends the texts to the on-disk queue (pqueue.h) and
 * fsyncs - one fsync for every window appended before it, from every
 * connection (group commit), at the latest once queue.checkpoint.writes
 * events or queue.checkpoint.interval have gone by. Only then is the window's
 * completion called with SL_OK, and the listener ACKs it. A window that does
 * not fit under queue.max_bytes waits (its connection is not read meanwhile);
 * one that cannot be written (disk full) completes with SL_EIO, unACKed.
 *
 * Events come out: on the loop thread, batches read from the queue (only what
 * was fsynced) go to the pipeline in queue order; when every output has a
 * batch, the ack checkpoint moves past it and the pages it frees are deleted.
 * A batch an output failed is submitted again after a pause: the queue never
 * drops an event it ACKed.
 */
#ifndef SLUICE_AGG_QUEUE_H
#define SLUICE_AGG_QUEUE_H

#include "conf.h"
#include "pipeline.h"
#include "sluice/loop.h"
#include "sluice/metrics.h"

struct agg_queue;

/*
 * Opens (recovering) conf->queue_path and starts its writer thread; events
 * already in it are fed to pipeline at once. NULL (logged) when the directory
 * cannot be opened, locked or recovered.
 */
struct agg_queue *agg_queue_open(struct sl_loop *loop, const struct agg_conf *conf,
                                 struct sl_metrics *metrics, struct agg_pipeline *pipeline);
/* The listener's submit: same contract as agg_pipeline_submit, except that done
 * (on the loop thread, never from inside this call) means "durable", not
 * "delivered". A bad text fails the window with SL_EPROTO and bad_* set. */
void agg_queue_push(struct agg_queue *q, struct agg_input *in, agg_batch_done done, void *arg);
/* Batches read from now on go to p (a reload); those in flight finish where they are. */
void agg_queue_set_pipeline(struct agg_queue *q, struct agg_pipeline *p);
/* Takes a reloaded configuration's limits and fsync policy (not its path). */
void agg_queue_apply(struct agg_queue *q, const struct agg_conf *conf);
/* Stopping: no more reads from the queue; windows already pushed are still persisted. */
void agg_queue_stop(struct agg_queue *q);
/* Nothing is being persisted and no batch read from the queue is in a pipeline. */
bool agg_queue_idle(const struct agg_queue *q);
/* Events in the queue not yet taken by every output. */
uint64_t agg_queue_events(const struct agg_queue *q);
/* Append time (Unix ms) of the oldest event not yet taken by every output; false when none. */
bool agg_queue_oldest(const struct agg_queue *q, uint64_t *wall_ms);
/* Stops the writer (windows it still holds are not completed: only at exit, after
 * the pipelines are freed and before the listener is), writes the checkpoint. */
void agg_queue_free(struct agg_queue *q);

/* `sluice-aggregator --queue-stats PATH`: prints what is in a queue directory, read-only. */
int agg_queue_stats(const char *path);

#endif
