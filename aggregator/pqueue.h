/*
 * pqueue.h - the persisted queue's storage: append-only page files of
 * checksummed records in one directory, a crash-safe ack checkpoint, and the
 * recovery that makes a directory left by kill -9 (or a power cut) usable.
 * No threads, no loop: queue.h runs it (a writer thread appends and syncs,
 * the loop thread reads and acks); docs/operations.md has the guarantees.
 *
 * On disk (host byte order; the directory is not portable across
 * architectures):
 *   page.N      a 32-byte header ("SLPQPAGE", N, the seq of its first
 *               event, version, CRC-32C of the header), then records:
 *               u32 length, u32 CRC-32C (of length, time and text), u64 time
 *               appended (Unix ms), the event's JSON text. One event a record.
 *   checkpoint  the ack position: every event with seq < ack_seq has been
 *               taken by every output. Rewritten whole (temp file + rename).
 *   lock        flock()ed while a process owns the directory.
 *
 * Threads: pq_append / pq_sync / pq_live_bytes from one writer thread;
 * pq_read / pq_ack / pq_stats from one reader thread; they share the page
 * list under the store's own lock.
 */
#ifndef SLUICE_AGG_PQUEUE_H
#define SLUICE_AGG_PQUEUE_H

#include <stdio.h>

#include "sluice/buf.h"
#include "sluice/common.h"

#define PQ_PAGE_HEADER 32u
#define PQ_RECORD_HEADER 16u
/* A record longer than this is not one (a length read from a torn or
 * corrupt header must not make recovery allocate gigabytes). */
#define PQ_RECORD_MAX (1024u * 1024u * 1024u)

struct pq_store;

/* What recovery found and did; also what --queue-stats reports. */
struct pq_recovery {
    uint64_t pages;           /* pages kept */
    uint64_t events;          /* events not yet acked */
    uint64_t bytes;           /* their bytes (headers included) */
    uint64_t ack_seq;         /* from the checkpoint (0: none) */
    uint64_t head_seq;        /* seq the next appended event gets */
    uint64_t torn_bytes;      /* cut off the last page's tail (a write cut short) */
    uint64_t corrupt_pages;   /* moved aside as page.N.corrupt */
    uint64_t corrupt_events;  /* events of those pages not served */
    uint64_t oldest_ms;       /* append time of the oldest unacked event (0: none) */
};

/*
 * Opens (creating it if need be) the queue directory dir, owned by this
 * process until pq_close: recovers it (a torn tail is cut, a corrupt page
 * moved aside, pages already acked deleted) and starts a new page for
 * appends. page_capacity: a page is closed once that large (a single larger
 * window still goes into one page). NULL with err filled on failure (the
 * directory cannot be created or locked, an I/O error).
 */
struct pq_store *pq_open(const char *dir, uint64_t page_capacity, struct pq_recovery *rec,
                         char *err, size_t errlen);
/* Writes the checkpoint and closes. NULL is a no-op. */
void pq_close(struct pq_store *s);

/*
 * Writer thread. Appends n event texts as records stamped wall_ms (not yet
 * durable: pq_sync). 0, or SL_EIO with errno set (ENOSPC, EFBIG, EIO): the
 * page is cut back to where it was, so nothing half-written stays behind.
 */
int pq_append(struct pq_store *s, const char *const *texts, const size_t *lens, size_t n,
              uint64_t wall_ms);
/* Bytes a pq_append of these texts takes on disk. */
uint64_t pq_record_bytes(const size_t *lens, size_t n);
/* Makes every appended record durable (fdatasync); readers see them from
 * then on. 0 or SL_EIO. */
int pq_sync(struct pq_store *s);

/* Bytes of events appended and not acked: what queue.max_bytes bounds. */
uint64_t pq_live_bytes(struct pq_store *s);
uint64_t pq_live_events(struct pq_store *s);

/*
 * Reader thread. A batch of durable records in queue order, from where the
 * previous read stopped. Texts point into buf, valid until the batch is
 * reset or freed.
 */
struct pq_text {
    const char *p;
    size_t len;
    uint64_t seq;
    uint64_t ms;     /* appended at (Unix ms) */
};

struct pq_batch {
    struct sl_buf buf;
    struct pq_text *texts;
    size_t n, cap;
    uint64_t end_seq;        /* every event of the queue before this was read by now */
    uint64_t end_page, end_off;
};

void pq_batch_init(struct pq_batch *b);
void pq_batch_free(struct pq_batch *b);
/*
 * Reads up to max_events durable events (and about max_bytes of text) into b
 * (reset first). Returns how many, 0 when none is durable yet. A record that
 * fails its CRC in a closed page moves that page aside (page.N.corrupt,
 * counted in corrupt_pages); the read goes on with the next page.
 */
size_t pq_read(struct pq_store *s, struct pq_batch *b, size_t max_events, size_t max_bytes);
/* Pages moved aside since open (recovery included). */
uint64_t pq_corrupt_pages(struct pq_store *s);

/*
 * Every event before (end_seq, end_page, end_off) of a batch has been taken
 * by every output: checkpoints that, and deletes the pages it frees. last_ms:
 * the append time of the batch's last event (pq_oldest_ms until the next ack).
 */
int pq_ack(struct pq_store *s, uint64_t end_seq, uint64_t end_page, uint64_t end_off,
           uint64_t last_ms);
/* Append time of the oldest event not acked, 0 when none: at most as old as
 * the last event acked (the next one is known only once it is read). */
uint64_t pq_oldest_ms(struct pq_store *s);

/*
 * Read-only inspection of dir for `sluice-aggregator --queue-stats`: changes
 * nothing (a torn tail or a corrupt page is reported, not repaired) and may
 * run beside the process that owns the queue. Writes a JSON report to out.
 * 0, SL_ENOENT (no queue there) or SL_EIO.
 */
int pq_inspect(const char *dir, FILE *out, struct pq_recovery *rec);

#endif
