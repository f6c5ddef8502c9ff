/*
 * deadletter.h - the dead-letter file every output shares. An event a server
 * refused for good (a mapping error, a message too large, ...) is written here
 * instead of being retried forever or dropped; the output then counts it as
 * delivered and lets its batch be ACKed. So the writer's one promise is
 * durability: when sl_dlq_append returns 0 the records are on disk.
 *
 * Files: <dir>/dlq-YYYY.MM.DD.ndjson, one per UTC day of writing (taken from
 * sl_wall_ms() at each append), so old days can be expired or shipped whole.
 * One JSON object per line, built by sl_dlq_record:
 *   {"time":"<written>","output":"<output id>","event":<the event>,<extra members>}
 * Several outputs may share a directory (and so a file): "output" tells their
 * records apart, and appends to one file are serialised between them (and
 * between processes) with flock(2).
 *
 * Ownership: struct sl_dlq copies dir and owns the fd of the file it last
 * wrote; sl_dlq_new touches no disk. The directory is created (mkdir -p,
 * 0755) the first time a file cannot be opened because it is missing. The fd
 * is reopened when the day changes or the file was renamed or deleted
 * (logrotate), so no reopen hook is needed.
 *
 * Thread-safety: sl_dlq_append may be called from any thread (a mutex inside);
 * an output may write from its sender thread while another writes from the
 * loop thread. sl_dlq_free must not race an append. sl_dlq_record only touches
 * the buffer it is given.
 */
#ifndef SLUICE_DEADLETTER_H
#define SLUICE_DEADLETTER_H

#include "buf.h"
#include "common.h"

struct sl_dlq;

/* dir must not be NULL; it is copied. Never fails (allocation aborts). */
struct sl_dlq *sl_dlq_new(const char *dir);
/* Closes the file and frees d. NULL is fine. */
void sl_dlq_free(struct sl_dlq *d);

/*
 * Appends records[0..len): one or more whole NDJSON lines, the last ending in
 * '\n'. Short writes and EINTR are retried; when a write fails for good (ENOSPC,
 * EFBIG, EIO) the file is truncated back to its size before this call, so it
 * never holds half a line and the caller may simply try again later. Returns
 * 0 once the data is fdatasync()ed (len == 0: nothing to do), SL_EIO after
 * logging the failing call, or SL_EINVAL when records does not end in '\n'.
 */
int sl_dlq_append(struct sl_dlq *d, const char *records, size_t len);

/*
 * Appends one record line to out:
 *   {"time":"2026-11-27T06:00:00.123Z","output":"<output_id>","event":<event_json>}\n
 * time_ms is epoch milliseconds; output_id is JSON-escaped; event_json is one
 * line of JSON embedded verbatim (NULL or empty: null). extra_members, when
 * not NULL or empty, are pre-rendered JSON members written before the closing
 * brace, e.g. "status":400,"error":{"type":"x","reason":"y"},"index":"logs"
 * (the elasticsearch output's members). If out's maximum would be exceeded,
 * out is left as it was and SL_ELIMIT returned (the event is not filed: the
 * caller must not count it delivered); 0 otherwise.
 */
int sl_dlq_record(struct sl_buf *out, uint64_t time_ms, const char *output_id,
                  const char *event_json, size_t event_len, const char *extra_members);

#endif
