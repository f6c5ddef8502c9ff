/*
 * deadletter.c - the shared dead-letter writer (deadletter.h): day files,
 * appends that leave whole lines or nothing, and fdatasync before success.
 */
#include "sluice/deadletter.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/time.h"

struct sl_dlq {
    pthread_mutex_t mu;    /* guards everything below */
    char *dir;
    int fd;                /* -1 until the first append, or after a failure */
    char path[PATH_MAX];   /* the file fd was opened as */
};

struct sl_dlq *sl_dlq_new(const char *dir)
{
    struct sl_dlq *d = sl_calloc(1, sizeof(*d));
    pthread_mutex_init(&d->mu, NULL);
    d->dir = sl_strdup(dir);
    d->fd = -1;
    return d;
}

void sl_dlq_free(struct sl_dlq *d)
{
    if (!d) {
        return;
    }
    if (d->fd >= 0) {
        close(d->fd);
    }
    pthread_mutex_destroy(&d->mu);
    free(d->dir);
    free(d);
}

static void close_file(struct sl_dlq *d)
{
    if (d->fd >= 0) {
        close(d->fd);
        d->fd = -1;
    }
    d->path[0] = '\0';
}

/* Best effort, as for the registry: a new file's name (or a new directory's)
 * is durable only once the directory holding it is synced. */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* The parent of dir ("." for a bare name), synced after mkdir -p made dir. */
static void sync_parent(const char *dir)
{
    char parent[PATH_MAX];
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') {
        n--;
    }
    while (n > 0 && dir[n - 1] != '/') {
        n--;
    }
    while (n > 1 && dir[n - 1] == '/') {
        n--;
    }
    if (n == 0) {
        sync_dir(".");
        return;
    }
    if (n >= sizeof(parent)) {
        return;
    }
    memcpy(parent, dir, n);
    parent[n] = '\0';
    sync_dir(parent);
}

/*
 * Makes d->fd the file of today (UTC). The open fd is kept while its day lasts
 * and the name still leads to it: logrotate may rename or delete the file, and
 * records written to a rotated (perhaps already compressed) file are lost.
 * 0 or SL_EIO (logged).
 */
static int open_today(struct sl_dlq *d)
{
    char path[PATH_MAX];
    int64_t y;
    int m, day;
    sl_time_civil_from_days((int64_t)(sl_wall_ms() / 86400000u), &y, &m, &day);
    int n = snprintf(path, sizeof(path), "%s/dlq-%04lld.%02d.%02d.ndjson", d->dir, (long long)y,
                     m, day);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        sl_error("dead letters: path in %s: %s", d->dir, strerror(ENAMETOOLONG));
        return SL_EIO;
    }
    if (d->fd >= 0 && strcmp(path, d->path) == 0) {
        struct stat byname, byfd;
        if (stat(path, &byname) == 0 && fstat(d->fd, &byfd) == 0 &&
            byname.st_dev == byfd.st_dev && byname.st_ino == byfd.st_ino) {
            return 0;
        }
    }
    close_file(d);

    bool made_dir = false;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT) {
        if (sl_mkdir_p(d->dir, 0755) != 0) {
            sl_error("dead letters: mkdir -p %s: %s", d->dir, strerror(errno));
            return SL_EIO;
        }
        made_dir = true;
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    }
    if (fd < 0) {
        sl_error("dead letters: open %s: %s", path, strerror(errno));
        return SL_EIO;
    }
    /* Whether this open created the file or an earlier one did (perhaps one
     * that failed before syncing), syncing once per open covers both. */
    sync_dir(d->dir);
    if (made_dir) {
        sync_parent(d->dir);
    }
    d->fd = fd;
    memcpy(d->path, path, (size_t)n + 1);
    return 0;
}

static int lock_file(int fd, int op)
{
    int rc;
    do {
        rc = flock(fd, op);
    } while (rc != 0 && errno == EINTR);
    return rc;
}

/* Cuts the file back to size after a failed append, so it never ends in half
 * a record (readers would lose the next record too, glued to the half). */
static void truncate_back(struct sl_dlq *d, off_t size)
{
    int rc;
    do {
        rc = ftruncate(d->fd, size);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        sl_error("dead letters: ftruncate %s to %lld bytes: %s", d->path, (long long)size,
                 strerror(errno));
    }
}

int sl_dlq_append(struct sl_dlq *d, const char *records, size_t len)
{
    if (len == 0) {
        return 0;
    }
    if (records[len - 1] != '\n') {
        /* A caller's bug, refused before it can glue the next record to this one. */
        sl_error("dead letters: a record for %s does not end in a newline", d->dir);
        return SL_EINVAL;
    }
    int rc = SL_EIO;
    bool locked = false;
    pthread_mutex_lock(&d->mu);
    if (open_today(d) != 0) {
        goto out;
    }
    /* Outputs sharing the directory write the same file through fds of their
     * own: the lock keeps their appends (and a truncation) from interleaving. */
    if (lock_file(d->fd, LOCK_EX) != 0) {
        sl_error("dead letters: flock %s: %s", d->path, strerror(errno));
        goto fail;
    }
    locked = true;
    struct stat st;
    if (fstat(d->fd, &st) != 0) {
        sl_error("dead letters: fstat %s: %s", d->path, strerror(errno));
        goto fail;
    }
    if (sl_write_all(d->fd, records, len) != 0) {
        sl_error("dead letters: write %s: %s", d->path, strerror(errno));
        truncate_back(d, st.st_size);
        goto fail;
    }
    if (fdatasync(d->fd) != 0) {
        /* Not durable, so not delivered: the caller retries later, and the
         * records are taken back so that retry does not write them twice. */
        sl_error("dead letters: fdatasync %s: %s", d->path, strerror(errno));
        truncate_back(d, st.st_size);
        goto fail;
    }
    rc = 0;
    goto out;
fail:
    /* The next append starts from a fresh open rather than trust this fd. */
    close_file(d);  /* closing releases the lock too */
    locked = false;
out:
    if (locked) {
        lock_file(d->fd, LOCK_UN);
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int sl_dlq_record(struct sl_buf *out, uint64_t time_ms, const char *output_id,
                  const char *event_json, size_t event_len, const char *extra_members)
{
    size_t start = out->len;
    char ts[32];
    sl_timestamp_format((int64_t)time_ms, ts, sizeof(ts));
    int rc = sl_buf_printf(out, "{\"time\":\"%s\",\"output\":", ts);
    rc |= sl_json_put_str(out, output_id, strlen(output_id));
    rc |= sl_buf_puts(out, ",\"event\":");
    if (event_json && event_len) {
        rc |= sl_buf_append(out, event_json, event_len);
    } else {
        rc |= sl_buf_puts(out, "null");
    }
    if (extra_members && extra_members[0]) {
        rc |= sl_buf_putc(out, ',');
        rc |= sl_buf_puts(out, extra_members);
    }
    rc |= sl_buf_puts(out, "}\n");
    if (rc != 0) {
        /* Half a record in out would become half a line in the file. */
        out->len = start;
        return SL_ELIMIT;
    }
    return 0;
}
