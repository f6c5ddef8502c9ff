/*
 * queue.c - batches of pre-encoded events and in-order offset commits.
 */
#include "queue.h"

#include <stdlib.h>
#include <string.h>

#include "sluice/lumberjack.h"

void queue_init(struct queue *q, size_t max_events, uint32_t bulk_max, struct registry *reg,
                struct sl_metrics *metrics)
{
    memset(q, 0, sizeof(*q));
    q->max_events = max_events;
    q->bulk_max = bulk_max;
    q->registry = reg;
    q->next_id = 1;
    q->pack_kind = SL_LJ_NONE;
    sl_buf_init(&q->spare, 0);
    sl_buf_init(&q->scratch, 0);
    q->m_queue_events = sl_metrics_gauge(metrics, "sluice_shipper_queue_events",
                                         "Events read and not yet ACKed.", NULL);
    q->m_acked = sl_metrics_counter(metrics, "sluice_shipper_events_acked_total",
                                    "Events the aggregator ACKed.", NULL);
    q->m_last_ack = sl_metrics_gauge(metrics, "sluice_shipper_last_ack_timestamp_seconds",
                                     "When the last ACK arrived (Unix time; 0: never).", NULL);
    sl_gauge_set(sl_metrics_gauge(metrics, "sluice_shipper_queue_capacity_events",
                                  "queue.max_events: events read and not yet ACKed, at most.",
                                  NULL),
                 (double)max_events);
}

static void drop_packed(struct batch *b)
{
    free(b->packed);
    b->packed = NULL;
    b->packed_len = 0;
}

static void batch_free(struct batch *b)
{
    sl_buf_free(&b->frames);
    drop_packed(b);
    free(b->ev);
    free(b);
}

/* A window is ~1 MB of frames: growing a fresh buffer to that size for every
 * batch cost as much copying as the events themselves, so settled batches are
 * kept (a few, as many as can be in the queue at once) with their buffers. */
#define POOL_MAX 8

static void batch_recycle(struct queue *q, struct batch *b)
{
    drop_packed(b);
    if (q->npool >= POOL_MAX) {
        batch_free(b);
        return;
    }
    b->next = q->pool;
    q->pool = b;
    q->npool++;
}

void queue_free(struct queue *q)
{
    while (q->pool) {
        struct batch *b = q->pool;
        q->pool = b->next;
        batch_free(b);
    }
    q->npool = 0;
    while (q->head) {
        struct batch *b = q->head;
        q->head = b->next;
        for (uint32_t i = b->committed; i < b->n; i++) {
            b->ev[i].entry->refs--;
        }
        batch_free(b);
    }
    q->tail = NULL;
    sl_buf_free(&q->spare);
    sl_buf_free(&q->scratch);
}

void queue_set_packing(struct queue *q, int kind, int level)
{
    q->pack_kind = kind;
    q->pack_level = level;
}

/* Compresses b's frames into the block its window will carry and lets their
 * buffer go. On failure b stays as it is: the sender compresses when sending
 * (and says so if that fails as well). */
static void pack(struct queue *q, struct batch *b)
{
    sl_buf_reset(&q->scratch);
    if (sl_lj_put_compressed(&q->scratch, (enum sl_lj_compression)q->pack_kind, q->pack_level,
                             b->frames.data, b->frames.len) != 0) {
        return;
    }
    /* An exact copy: the scratch is sized for the worst case, the block is ~1/10. */
    b->packed = sl_malloc(q->scratch.len);
    memcpy(b->packed, q->scratch.data, q->scratch.len);
    b->packed_len = q->scratch.len;
    b->packed_kind = q->pack_kind;
    b->packed_level = q->pack_level;
    b->raw_len = b->frames.len;
    if (q->spare.cap == 0) {
        q->spare = b->frames;
        sl_buf_init(&b->frames, 0);
    } else {
        sl_buf_free(&b->frames);
    }
}

static void seal(struct queue *q, struct batch *b)
{
    b->sealed = true;
    if (q->pack_kind != SL_LJ_NONE) {
        pack(q, b);
    }
}

int batch_unpack(struct batch *b)
{
    if (!b->packed) {
        return 0;
    }
    struct sl_buf raw;
    sl_buf_init(&raw, 0);
    if (sl_buf_reserve(&raw, b->raw_len) != 0 ||
        sl_lj_uncompress(b->packed, b->packed_len, raw.data, b->raw_len) != 0) {
        sl_buf_free(&raw);
        return SL_EIO;
    }
    raw.len = b->raw_len;
    sl_buf_free(&b->frames);
    b->frames = raw;
    drop_packed(b);
    return 0;
}

static struct batch *open_batch(struct queue *q)
{
    if (q->tail && !q->tail->sealed) {
        if (q->tail->n == 0) {
            /* Left empty by queue_cancel_event(): its age (flush_interval, and
             * the events' read times) starts with its first event. */
            q->tail->created_ms = sl_now_ms();
        }
        return q->tail;
    }
    struct batch *b = q->pool;
    if (b) {
        q->pool = b->next;
        q->npool--;
        struct sl_buf frames = b->frames;
        struct batch_event *ev = b->ev;
        uint32_t cap = b->cap;
        memset(b, 0, sizeof(*b));
        b->frames = frames;
        sl_buf_reset(&b->frames);
        b->ev = ev;
        b->cap = cap;
    } else {
        b = sl_calloc(1, sizeof(*b));
        sl_buf_init(&b->frames, 0);
        b->cap = 64;
        b->ev = sl_malloc(b->cap * sizeof(*b->ev));
    }
    if (b->frames.cap == 0 && q->spare.cap != 0) {
        b->frames = q->spare;
        sl_buf_init(&q->spare, 0);
        sl_buf_reset(&b->frames);
    }
    b->id = q->next_id++;
    b->created_ms = sl_now_ms();
    if (q->tail) {
        q->tail->next = b;
    } else {
        q->head = b;
    }
    q->tail = b;
    return b;
}

struct sl_buf *queue_begin_event(struct queue *q)
{
    struct batch *b = open_batch(q);
    if (b->n == b->cap) {
        b->cap *= 2;
        b->ev = sl_realloc(b->ev, b->cap * sizeof(*b->ev));
    }
    b->ev[b->n].frame_off = (uint32_t)b->frames.len;
    /* Header now, length patched by queue_end_event(): one pass over the JSON. */
    static const char hdr[10] = {'2', 'J'};
    sl_buf_append(&b->frames, hdr, sizeof(hdr));
    sl_put_u32be(b->frames.data + b->frames.len - 8, b->n + 1);
    return &b->frames;
}

void queue_end_event(struct queue *q, struct registry_entry *e, uint64_t gen, uint64_t end)
{
    struct batch *b = q->tail;
    struct batch_event *ev = &b->ev[b->n];
    size_t json_len = b->frames.len - ev->frame_off - 10;
    sl_put_u32be(b->frames.data + ev->frame_off + 6, (uint32_t)json_len);
    ev->entry = e;
    ev->gen = gen;
    ev->end = end;
    /* A batch stays open at most flush_interval (1h at most), so the delta fits;
     * the clamp only guards against a batch held open longer than that. */
    uint64_t delta = sl_now_ms() - b->created_ms;
    ev->read_delta_ms = delta > UINT32_MAX ? UINT32_MAX : (uint32_t)delta;
    e->refs++;
    e->q_batch = b->id;
    e->q_index = b->n;
    b->n++;
    q->events++;
    sl_gauge_set(q->m_queue_events, (double)q->events);
    if (b->n >= q->bulk_max) {
        seal(q, b);
    }
}

void queue_cancel_event(struct queue *q)
{
    struct batch *b = q->tail;
    b->frames.len = b->ev[b->n].frame_off;
}

void queue_skip(struct queue *q, struct registry_entry *e, uint64_t gen, uint64_t end)
{
    /* Batch ids are never reused, so a settled batch is simply not found. */
    for (struct batch *b = q->head; b && e->q_batch; b = b->next) {
        if (b->id != e->q_batch) {
            continue;
        }
        struct batch_event *ev = &b->ev[e->q_index];
        if (e->q_index >= b->committed && ev->entry == e && ev->gen == gen) {
            if (end > ev->end) {
                ev->end = end;
            }
            return;
        }
        break;
    }
    /* Every event of e read before end is committed (or of an older generation,
     * whose ACK the registry ignores). */
    registry_ack(q->registry, e, gen, end);
}

void queue_seal(struct queue *q)
{
    if (q->tail && !q->tail->sealed && q->tail->n > 0) {
        seal(q, q->tail);
    }
}

struct batch *queue_open_batch(const struct queue *q)
{
    if (q->tail && !q->tail->sealed && q->tail->n > 0) {
        return q->tail;
    }
    return NULL;
}

struct batch *queue_next_unsent(const struct queue *q)
{
    for (struct batch *b = q->head; b; b = b->next) {
        if (!b->sealed) {
            return NULL;
        }
        if (!b->inflight && b->acked < b->n) {
            return b;
        }
    }
    return NULL;
}

static void commit(struct queue *q)
{
    while (q->head) {
        struct batch *b = q->head;
        uint32_t upto = b->acked;
        for (uint32_t i = b->committed; i < upto; i++) {
            struct batch_event *ev = &b->ev[i];
            registry_ack(q->registry, ev->entry, ev->gen, ev->end);
            ev->entry->refs--;
        }
        q->events -= upto - b->committed;
        b->committed = upto;
        if (!b->sealed || b->committed < b->n) {
            break;
        }
        q->head = b->next;
        if (q->tail == b) {
            q->tail = NULL;
        }
        batch_recycle(q, b);
    }
    sl_gauge_set(q->m_queue_events, (double)q->events);
}

void queue_ack(struct queue *q, struct batch *b, uint32_t upto)
{
    if (upto > b->n || upto <= b->acked) {
        return;
    }
    sl_counter_add(q->m_acked, upto - b->acked);
    sl_gauge_set(q->m_last_ack, (double)sl_wall_ms() / 1000.0);
    b->acked = upto;
    commit(q);
}

bool queue_oldest_unacked(const struct queue *q, uint64_t *read_ms)
{
    /* Batches are in read order and each one's ACKed events are a prefix, so the
     * first batch with an unACKed event holds the oldest at index acked. A later
     * batch ACKed out of order (several aggregators) does not make it younger. */
    for (const struct batch *b = q->head; b; b = b->next) {
        if (b->acked < b->n) {
            *read_ms = b->created_ms + b->ev[b->acked].read_delta_ms;
            return true;
        }
    }
    return false;
}
