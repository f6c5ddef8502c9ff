/*
 * tail.h - finds the files of every input (globs, inotify on their directories,
 * a periodic scan as a safety net), follows them through rotation, truncation
 * and deletion, splits them into lines and turns each line into an event in
 * the queue. Reading pauses while the queue is full.
 */
#ifndef SHIPPER_TAIL_H
#define SHIPPER_TAIL_H

#include "conf.h"
#include "queue.h"
#include "registry.h"
#include "sluice/loop.h"
#include "sluice/metrics.h"

struct tail;

struct tail *tail_new(struct sl_loop *loop, const struct shipper_conf *conf, struct queue *q,
                      struct registry *reg, struct sl_metrics *metrics);
void tail_free(struct tail *t);

/*
 * Reads ready files until about budget bytes were consumed or the queue is
 * full. Returns true when more is ready to read (the caller should come back
 * without sleeping).
 */
bool tail_pump(struct tail *t, size_t budget);
/* Stops reading for good (shutdown). */
void tail_stop(struct tail *t);
/* Emits held partial state that timed out (multiline), for the flush hook. */
void tail_tick(struct tail *t);

#endif
