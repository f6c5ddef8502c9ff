/*
 * queue.h - the shipper's bounded in-memory queue. Events are encoded once,
 * straight into Lumberjack 'J' frames inside the batch that will carry them,
 * so sending is a compress-and-write with no per-event work. Batches live in
 * creation order; file offsets are committed to the registry strictly in that
 * order, so ACKs arriving out of order from several aggregators can never
 * advance a file past an event that is still unACKed.
 *
 * With packing on (zstd, or zlib at a level above 0, to Lumberjack hosts), a
 * batch is compressed when it is sealed - into the very block its window will
 * carry - and its JSON is freed: a sealed batch waiting for a connection or an
 * ACK then holds about a tenth of the memory, and the JSON buffer passes on to
 * the next open batch. The compression is done once either way.
 */
#ifndef SHIPPER_QUEUE_H
#define SHIPPER_QUEUE_H

#include "registry.h"
#include "sluice/buf.h"
#include "sluice/metrics.h"

struct batch_event {
    uint32_t frame_off;           /* where its 'J' frame starts in frames */
    uint32_t read_delta_ms;       /* read at batch created_ms + this; it fills the padding
                                   * before entry, so /healthz's age costs no memory */
    struct registry_entry *entry; /* the file it came from (a reference is held) */
    uint64_t gen;
    uint64_t end;                 /* file offset just past the event's last line */
};

struct batch {
    uint64_t id;
    struct sl_buf frames;         /* encoded 2J frames, seq 1..n; empty while packed */
    char *packed;                 /* sealed and packed: the frames as one 2C/2Z frame */
    size_t packed_len;
    size_t raw_len;               /* the frames' length, while packed */
    int packed_kind, packed_level;
    struct batch_event *ev;
    uint32_t n, cap;
    uint32_t acked;               /* a prefix of events [0, acked) is ACKed */
    uint32_t committed;           /* a prefix whose offsets reached the registry */
    bool sealed;                  /* no more events will be added */
    bool inflight;                /* a connection is waiting for its ACK */
    uint64_t created_ms;
    struct batch *next;
};

struct queue {
    struct batch *head, *tail;    /* tail is the open batch, if any */
    size_t events;                /* uncommitted events in all batches */
    size_t max_events;
    uint32_t bulk_max;
    uint64_t next_id;
    struct registry *registry;
    struct batch *pool;           /* settled batches kept for reuse, with their buffers */
    size_t npool;
    int pack_kind, pack_level;    /* enum sl_lj_compression, SL_LJ_NONE: no packing */
    struct sl_buf spare;          /* a packed batch's frames buffer, for the next batch */
    struct sl_buf scratch;        /* where a block is compressed before its exact copy */
    struct sl_metric *m_queue_events;
    struct sl_metric *m_acked;
    struct sl_metric *m_last_ack;
};

void queue_init(struct queue *q, size_t max_events, uint32_t bulk_max, struct registry *reg,
                struct sl_metrics *metrics);
void queue_free(struct queue *q);

static inline bool queue_has_room(const struct queue *q) { return q->events < q->max_events; }

/*
 * Starts an event in the open batch (opening one when needed): writes the J
 * frame header and returns the buffer to append the event's JSON to. Finish
 * with queue_end_event().
 */
struct sl_buf *queue_begin_event(struct queue *q);
void queue_end_event(struct queue *q, struct registry_entry *e, uint64_t gen, uint64_t end);
/* Undoes queue_begin_event() (the event was dropped after all). */
void queue_cancel_event(struct queue *q);
/*
 * File e's lines up to end made no event (empty, filtered, dropped): its
 * registry offset may pass them as soon as every event of e read before them
 * is ACKed - at once when none is waiting, else with the ACK of the latest
 * one, which is made to cover them.
 */
void queue_skip(struct queue *q, struct registry_entry *e, uint64_t gen, uint64_t end);

/*
 * Batches sealed from now on are packed as kind (SL_LJ_ZLIB, SL_LJ_ZSTDC) at
 * level, as sl_lj_put_compressed() writes it; SL_LJ_NONE stops packing. The
 * output sets it to what it sends.
 */
void queue_set_packing(struct queue *q, int kind, int level);
/* Whether b holds its window packed exactly as kind at level would write it. */
static inline bool batch_packed_as(const struct batch *b, int kind, int level)
{
    return b->packed && b->packed_kind == kind && b->packed_level == level;
}
/*
 * Brings a packed batch's frames back (a resend that numbers its events
 * again, an output that sends them differently). 0, or SL_EIO when the block
 * does not inflate to the frames it was made of.
 */
int batch_unpack(struct batch *b);

/* Seals the open batch if it holds events. */
void queue_seal(struct queue *q);
/* The open batch (NULL when none or empty). */
struct batch *queue_open_batch(const struct queue *q);
/* The oldest sealed batch that is neither in flight nor fully ACKed. */
struct batch *queue_next_unsent(const struct queue *q);

/* ACK of events [0, upto) of b; commits offsets in batch order and frees settled batches. */
void queue_ack(struct queue *q, struct batch *b, uint32_t upto);

/*
 * When (sl_now_ms) the oldest event not yet ACKed was read, sent or not:
 * false when every event read is ACKed. /healthz measures its age.
 */
bool queue_oldest_unacked(const struct queue *q, uint64_t *read_ms);

#endif
