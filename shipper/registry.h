/*
 * registry.h - the shipper's crash-safe record of how far each file has been
 * delivered. An entry is keyed by device + inode and checked against a
 * fingerprint of the file's first bytes, so a new file on a recycled inode is
 * never resumed at the old file's offset. Offsets advance only on ACKs; the
 * file on disk is replaced atomically (temp, fsync, rename, fsync of the dir).
 */
#ifndef SHIPPER_REGISTRY_H
#define SHIPPER_REGISTRY_H

#include "sluice/common.h"
#include "sluice/metrics.h"

/* Fingerprint: a hash of the first FP_MAX bytes (fewer while the file is smaller). */
#define REGISTRY_FP_MAX 1024

struct registry_entry {
    uint64_t dev, ino;
    uint64_t fp;              /* FNV-1a 64 of the first fp_len bytes */
    uint32_t fp_len;
    char *path;               /* last path the file was seen under (owned) */
    uint64_t offset;          /* delivered (ACKed) up to here */
    uint64_t read_end;        /* in memory only: queued up to here by a closed harvester */
    uint64_t gen;             /* bumped on truncation: ACKs of older generations are ignored */
    uint64_t seen_ms;         /* wall clock of the last activity, for expiry */
    uint32_t refs;            /* open harvester + events in flight; expiry waits for 0 */
    uint64_t q_batch;         /* in memory only: the id of the queue's batch holding this */
    uint32_t q_index;         /* file's latest event, and its index there (0 id: none) */
    bool gone;                /* the file was deleted or replaced */
    struct registry_entry *next;
    struct registry_entry *hnext; /* in memory only: next in the dev+ino index bucket */
};

struct registry;

/*
 * Opens the registry directory (created if missing) and loads registry.json,
 * or the backup of the previous flush (registry.json.bak) when the main file is
 * missing or corrupt. A corrupt file is moved aside (registry.json.corrupt-TIME)
 * and reported; with no usable backup the registry starts empty, loudly.
 * Returns 0, or SL_EIO when the directory or a file cannot be read at all.
 */
int registry_open(const char *dir, struct registry **out);
/*
 * What start-up and -t check before anything is read: dir is created if
 * missing (create; as registry_open does) and a file can be created and
 * removed in it. Without create (-t) nothing is made: a missing dir must be
 * creatable (its nearest existing ancestor a directory a file can be made
 * in). Otherwise the shipper would run, ship and never save an offset. 0, or
 * SL_EIO with the reason in err ("cannot create directory '/x': Not a directory").
 */
int registry_check_dir(const char *dir, bool create, char *err, size_t errlen);
/* True when registry.json was found corrupt at open (for a metric and tests). */
bool registry_was_corrupt(const struct registry *r);
void registry_close(struct registry *r);

struct registry_entry *registry_find(struct registry *r, uint64_t dev, uint64_t ino);
/* Adds a new entry at offset 0 (an existing one for dev+ino is replaced). */
struct registry_entry *registry_add(struct registry *r, uint64_t dev, uint64_t ino,
                                    const char *path);
/* Records delivery up to offset (ignored when gen is stale or offset goes back). */
void registry_ack(struct registry *r, struct registry_entry *e, uint64_t gen, uint64_t offset);
/* Marks the registry changed (path, fingerprint or offset). */
void registry_touch(struct registry *r);
/* Writes the file if anything changed since the last write. 0 or SL_EIO. A
 * directory removed under the running shipper is created again. */
int registry_flush(struct registry *r);
/* Counts writes by result and the time of the last good one (metrics may be NULL). */
void registry_metrics(struct registry *r, struct sl_metrics *metrics);
/* Since when (monotonic ms) every write has failed; 0 while the last one succeeded. */
uint64_t registry_failing_since(const struct registry *r);
/* Drops entries that are gone, unreferenced and older than ttl_ms. */
void registry_expire(struct registry *r, uint64_t ttl_ms);
size_t registry_count(const struct registry *r);

/* FNV-1a 64-bit, continued from h (start with REGISTRY_FNV_INIT). */
#define REGISTRY_FNV_INIT 0xcbf29ce484222325ULL
uint64_t registry_hash(uint64_t h, const void *p, size_t n);

#endif
