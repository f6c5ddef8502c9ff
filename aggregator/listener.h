/*
 * listener.h - the Lumberjack v1/v2 server on the aggregator's loop: accepts
 * connections, decodes windows of events, hands each complete window to the
 * pipeline as one batch and ACKs it (the seq of its last frame) only once the
 * pipeline reports every output accepted it, in window order per connection.
 *
 * Hostile input (malformed frames, caps, timeouts) closes only the offending
 * connection, counted in sluice_aggregator_protocol_errors_total{reason}.
 *
 * Backpressure is by not reading: a connection stops being read while it has
 * input.max_pending_windows windows in the pipeline, and every connection
 * stops while the pipeline holds pipeline.max_pending_events events or
 * pipeline.max_pending_bytes bytes of text are read and not yet ACKed (windows
 * and decoders of every connection; one piece more when nothing else could
 * give any back - docs/operations.md, "Memory budget").
 */
#ifndef SLUICE_AGG_LISTENER_H
#define SLUICE_AGG_LISTENER_H

#include "conf.h"
#include "pipeline.h"
#include "sluice/loop.h"
#include "sluice/metrics.h"

struct agg_listener;

/*
 * Listens on conf->listen and starts accepting, over TLS when conf->ssl is
 * enabled. pipeline is borrowed: windows are submitted to it until
 * agg_listener_set_pipeline(). Returns NULL (logged) when the address cannot
 * be bound or the TLS files cannot be loaded.
 */
struct agg_listener *agg_listener_new(struct sl_loop *loop, const struct agg_conf *conf,
                                      struct sl_metrics *metrics, struct agg_pipeline *pipeline);
/* The bound port (the one the OS chose for ":0"). */
int agg_listener_port(const struct agg_listener *l);
/* Windows completed from now on go to p; those in flight finish where they are. */
void agg_listener_set_pipeline(struct agg_listener *l, struct agg_pipeline *p);
/* queue.type persisted: windows go to q instead of a pipeline, and are ACKed
 * once q has them on disk (queue.h). Set before the first connection. */
struct agg_queue;
void agg_listener_set_queue(struct agg_listener *l, struct agg_queue *q);
/* Takes the limits and timeouts of a reloaded configuration (not the address),
 * and re-reads input.ssl's files for connections accepted from now on (open
 * ones keep their certificate); a file that does not load is logged and the
 * previous certificate stays. */
void agg_listener_apply(struct agg_listener *l, const struct agg_conf *conf);
/*
 * Graceful stop: closes the listening socket, stops reading, drops windows not
 * yet complete (their clients resend them) and closes every connection once
 * its last pending window is ACKed.
 */
void agg_listener_drain(struct agg_listener *l);
/* Windows submitted to a pipeline and not yet answered. */
size_t agg_listener_pending(const struct agg_listener *l);
/* When the oldest window still in a pipeline (submitted, not yet answered;
 * closed connections' included) was submitted, in sl_now_ms() time; false when
 * none is pending. Read-only, O(pending windows). */
bool agg_listener_oldest_pending(const struct agg_listener *l, uint64_t *submit_ms);
/* True while the listening socket accepts connections (not draining). */
bool agg_listener_accepting(const struct agg_listener *l);
/* True once draining and every connection is closed. */
bool agg_listener_drained(const struct agg_listener *l);
/* Closes every connection. Windows still in a pipeline are detached: their
 * completions, if any, find a closed connection. Call after the pipelines are
 * freed (agg_pipeline_free drops their jobs), or completions would be lost. */
void agg_listener_free(struct agg_listener *l);

#endif
