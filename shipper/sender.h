/*
 * sender.h - the Lumberjack v2 client: connections to the configured hosts,
 * windows pipelined on each, ACKs (cumulative, partial, keepalive 0) applied
 * to the queue, timeouts, reconnects with equal-jitter backoff, load balancing
 * by weight over the primary hosts and failover to backups when every primary
 * is down.
 */
#ifndef SHIPPER_SENDER_H
#define SHIPPER_SENDER_H

#include "conf.h"
#include "queue.h"
#include "sluice/loop.h"
#include "sluice/metrics.h"

struct sender;

struct sender *sender_new(struct sl_loop *loop, const struct output_conf *conf, struct queue *q,
                          struct sl_metrics *metrics);
void sender_free(struct sender *s);

/* Sends what the queue has sealed, on every connection with a free window slot. */
void sender_pump(struct sender *s);
/* True when some connection could take another window right now. */
bool sender_idle(const struct sender *s);
/* True when no window is waiting for an ACK. */
bool sender_quiet(const struct sender *s);

#endif
