/*
 * kafka_input.h - the aggregator's Kafka input (docs/aggregator.md): consumers
 * in a consumer group, each on a thread of its own, hand batches of events to
 * the pipeline on the loop thread, and commit a partition's offset only once
 * every output has the events before it (at-least-once, as Lumberjack ACKs).
 *
 * A rebalance first lets the batches in flight finish (up to the session
 * timeout), commits, and only then gives the partitions up: duplicates come
 * only from batches still unfinished then, or from a crash (at most what was
 * delivered and not yet committed, auto_commit_interval_ms of events).
 *
 * Backpressure: a consumer pauses its partitions while it has
 * pipeline.max_pending_events events in the pipeline.
 */
#ifndef SLUICE_AGG_KAFKA_INPUT_H
#define SLUICE_AGG_KAFKA_INPUT_H

#include "conf.h"
#include "pipeline.h"
#include "sluice/loop.h"
#include "sluice/metrics.h"

struct agg_kafka;

/* Starts kc->consumer_threads consumers. pipeline is borrowed (see
 * agg_kafka_set_pipeline). NULL (logged) when librdkafka refuses the settings. */
struct agg_kafka *agg_kafka_new(struct sl_loop *loop, const struct agg_kafka_conf *kc,
                                const struct agg_conf *conf, struct sl_metrics *metrics,
                                struct agg_pipeline *pipeline);
/* Batches submitted from now on go to p (a reload); those in flight finish where they are. */
void agg_kafka_set_pipeline(struct agg_kafka *k, struct agg_pipeline *p);
/* Graceful stop: consume nothing more, wait for the batches in flight (until
 * deadline_ms, monotonic), commit, leave the group. */
void agg_kafka_drain(struct agg_kafka *k, uint64_t deadline_ms);
/* True once every consumer has committed and left the group after a drain. */
bool agg_kafka_drained(struct agg_kafka *k);
/* When the oldest batch still in a pipeline was submitted (sl_now_ms()); false if none. */
bool agg_kafka_oldest_pending(const struct agg_kafka *k, uint64_t *submit_ms);
/* Stops the consumers (committing what was delivered), joins their threads and
 * frees what is left. Call after the pipelines are freed. NULL is a no-op. */
void agg_kafka_free(struct agg_kafka *k);

#endif
