/*
 * kafka_out.h - the shipper's `output: {kafka: {...}}` (Filebeat's
 * output.kafka, docs/shipper.md): sealed batches of the queue are produced to
 * Kafka, one message per event (its JSON), and the registry advances only on
 * delivery reports, a batch's events in order, exactly as with Lumberjack ACKs.
 */
#ifndef SHIPPER_KAFKA_OUT_H
#define SHIPPER_KAFKA_OUT_H

#include "conf.h"
#include "queue.h"
#include "sluice/loop.h"
#include "sluice/metrics.h"

struct kafka_out;

/* NULL (logged) when librdkafka refuses the settings. */
struct kafka_out *kafka_out_new(struct sl_loop *loop, const struct kafka_out_conf *conf,
                                struct queue *q, struct sl_metrics *metrics);
/* Waits for nothing: messages not yet delivered are lost to this process (the
 * registry never passed them: they are read again on the next start). */
void kafka_out_free(struct kafka_out *k);
/* Produces what the queue has sealed, while librdkafka's queue takes it. */
void kafka_out_pump(struct kafka_out *k);
/* True when nothing is held back by a full librdkafka queue. */
bool kafka_out_idle(const struct kafka_out *k);
/* True when no message waits for its delivery report. */
bool kafka_out_quiet(const struct kafka_out *k);

#endif
