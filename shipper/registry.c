/*
 * registry.c - persistence of delivered offsets. The whole registry is small
 * (one entry per file) and rewritten as one JSON document; an append-only log
 * would save bytes but needs compaction, and the write happens at most once
 * per registry.flush.
 */
#include "registry.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/buf.h"
#include "sluice/json.h"
#include "sluice/log.h"

#define REGISTRY_MAX_BYTES (256u << 20)

struct registry {
    char *dir;
    char *file;
    char *tmp;
    char *bak;
    bool corrupt;
    struct registry_entry *head;
    size_t count;
    bool dirty;
    /* Index by dev+ino (what registry_find compares), chained through hnext.
     * Each chain keeps the order of the list at head (newest first), so the
     * first live match is the one a scan of the list would find. */
    struct registry_entry **buckets;
    size_t nbuckets;
    uint64_t failing_since;   /* monotonic ms of the first failed write in a row; 0: fine */
    struct sl_metric *m_ok, *m_error, *m_last_ok;          /* 0 or a power of two: at most 2 * count after adds, 4 * count (or 64) after expiry */
};

#define REGISTRY_MIN_BUCKETS 64

static size_t index_slot(const struct registry *r, uint64_t dev, uint64_t ino)
{
    uint64_t h = ino ^ (dev * 0x9e3779b97f4a7c15ULL);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return (size_t)h & (r->nbuckets - 1);
}

/* Rebuilds the index with nb buckets from the list, keeping the list's order in
 * every chain (pushed in list order, then each chain reversed). */
static void index_rebuild(struct registry *r, size_t nb)
{
    free(r->buckets);
    r->buckets = sl_calloc(nb, sizeof(*r->buckets));
    r->nbuckets = nb;
    for (struct registry_entry *e = r->head; e; e = e->next) {
        size_t i = index_slot(r, e->dev, e->ino);
        e->hnext = r->buckets[i];
        r->buckets[i] = e;
    }
    for (size_t i = 0; i < nb; i++) {
        struct registry_entry *rev = NULL, *e = r->buckets[i];
        while (e) {
            struct registry_entry *n = e->hnext;
            e->hnext = rev;
            rev = e;
            e = n;
        }
        r->buckets[i] = rev;
    }
}

/* e was just pushed at the head of the list: push it at the head of its chain. */
static void index_add(struct registry *r, struct registry_entry *e)
{
    if (r->count > r->nbuckets) {
        index_rebuild(r, r->nbuckets ? r->nbuckets * 2 : REGISTRY_MIN_BUCKETS);
        return;  /* the rebuild indexed e too */
    }
    size_t i = index_slot(r, e->dev, e->ino);
    e->hnext = r->buckets[i];
    r->buckets[i] = e;
}

static void index_remove(struct registry *r, struct registry_entry *e)
{
    for (struct registry_entry **pp = &r->buckets[index_slot(r, e->dev, e->ino)]; *pp;
         pp = &(*pp)->hnext) {
        if (*pp == e) {
            *pp = e->hnext;
            return;
        }
    }
}

uint64_t registry_hash(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = sl_malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static struct registry_entry *entry_new(struct registry *r, uint64_t dev, uint64_t ino,
                                        const char *path)
{
    struct registry_entry *e = sl_calloc(1, sizeof(*e));
    e->dev = dev;
    e->ino = ino;
    e->path = sl_strdup(path);
    e->seen_ms = sl_wall_ms();
    e->next = r->head;
    r->head = e;
    r->count++;
    index_add(r, e);
    return e;
}

static bool get_u64(const struct sl_value *obj, const char *key, uint64_t *out)
{
    const struct sl_value *v = sl_obj_getc(obj, key);
    if (!v || v->type != SL_V_INT || v->u.i < 0) {
        return false;
    }
    *out = (uint64_t)v->u.i;
    return true;
}

static int load_entry(struct registry *r, const struct sl_value *o)
{
    uint64_t dev, ino, offset, fp_len = 0, seen = 0;
    const struct sl_value *path = sl_obj_getc(o, "path");
    const struct sl_value *fp = sl_obj_getc(o, "fp");
    if (o->type != SL_V_OBJECT || !get_u64(o, "dev", &dev) || !get_u64(o, "ino", &ino) ||
        !get_u64(o, "offset", &offset) || !path || path->type != SL_V_STRING) {
        return SL_EINVAL;
    }
    get_u64(o, "fp_len", &fp_len);
    get_u64(o, "seen", &seen);
    struct registry_entry *e = entry_new(r, dev, ino, path->u.s.ptr);
    e->offset = offset;
    e->seen_ms = seen ? seen : e->seen_ms;
    if (fp && fp->type == SL_V_STRING && fp_len <= REGISTRY_FP_MAX) {
        e->fp = strtoull(fp->u.s.ptr, NULL, 16);
        e->fp_len = (uint32_t)fp_len;
    }
    return 0;
}

/* Drops every loaded entry (a failed load must not leave half a registry). */
static void clear_entries(struct registry *r)
{
    while (r->head) {
        struct registry_entry *e = r->head;
        r->head = e->next;
        free(e->path);
        free(e);
    }
    r->count = 0;
    free(r->buckets);
    r->buckets = NULL;
    r->nbuckets = 0;
}

/* Loads path: 0, SL_ENOENT when it does not exist, SL_EINVAL when corrupt, SL_EIO. */
static int load_file(struct registry *r, const char *path)
{
    int rc = SL_EINVAL;
    struct sl_value doc = {0};
    struct sl_buf b;
    sl_buf_init(&b, REGISTRY_MAX_BYTES);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sl_buf_free(&b);
        if (errno == ENOENT) {
            return SL_ENOENT;
        }
        sl_error("registry: cannot open %s: %s", path, strerror(errno));
        return SL_EIO;
    }
    for (;;) {
        if (sl_buf_reserve(&b, 65536) != 0) {
            sl_error("registry: %s is larger than %u bytes", path, REGISTRY_MAX_BYTES);
            goto out;
        }
        ssize_t n = read(fd, b.data + b.len, 65536);
        if (n < 0) {
            sl_error("registry: cannot read %s: %s", path, strerror(errno));
            rc = SL_EIO;
            goto out;
        }
        if (n == 0) {
            break;
        }
        b.len += (size_t)n;
    }
    char err[128];
    if (sl_json_parse(b.data, b.len, &doc, NULL, err, sizeof(err)) != 0) {
        sl_error("registry: %s is corrupt (%s)", path, err);
        goto out;
    }
    const struct sl_value *entries = sl_obj_getc(&doc, "entries");
    if (doc.type != SL_V_OBJECT || !entries || entries->type != SL_V_ARRAY) {
        sl_error("registry: %s is corrupt (no \"entries\" array)", path);
        goto out;
    }
    for (size_t i = 0; i < entries->u.a.len; i++) {
        if (load_entry(r, &entries->u.a.items[i]) != 0) {
            sl_error("registry: %s is corrupt (entry %zu is malformed)", path, i);
            clear_entries(r);
            goto out;
        }
    }
    sl_info("registry: loaded %zu entries from %s", r->count, path);
    rc = 0;
out:
    close(fd);
    sl_value_clear(&doc);
    sl_buf_free(&b);
    return rc;
}

/*
 * registry.json, else the previous generation kept as registry.json.bak (a
 * crash between the two renames of a flush leaves only the backup). A corrupt
 * file is moved aside, never silently overwritten, and the backup is used: it
 * is at most one registry.flush older, so what is re-sent stays bounded.
 */
static int load(struct registry *r)
{
    int rc = load_file(r, r->file);
    if (rc == 0 || rc == SL_EIO) {
        return rc;
    }
    if (rc == SL_EINVAL) {
        char aside[PATH_MAX];
        snprintf(aside, sizeof(aside), "%s.corrupt-%llu", r->file,
                 (unsigned long long)(sl_wall_ms() / 1000));
        if (rename(r->file, aside) == 0) {
            sl_error("registry: moved the corrupt registry to %s", aside);
        }
        r->corrupt = true;
    }
    int brc = load_file(r, r->bak);
    if (brc == 0) {
        if (r->corrupt) {
            sl_warn("registry: resuming from the backup %s; events after it are sent again",
                    r->bak);
        }
        r->dirty = true;
        return 0;
    }
    if (brc == SL_EIO) {
        return brc;
    }
    if (r->corrupt) {
        sl_error("registry: no usable backup either: every file is treated as never seen "
                 "(start_position applies to each)");
    }
    return 0;
}

/*
 * -t changes nothing on disk: for a directory not made yet, the nearest one
 * that exists must be a directory a file can be created in (then mkdir -p
 * will work at start-up). On success *probe_dir is where to probe.
 */
static int check_creatable(const char *dir, char *probe_dir, size_t len, char *err,
                           size_t errlen)
{
    snprintf(probe_dir, len, "%s", dir);
    struct stat st;
    while (stat(probe_dir, &st) != 0) {
        if (errno != ENOENT) {
            snprintf(err, errlen, "cannot create directory '%s': %s", dir, strerror(errno));
            return SL_EIO;
        }
        char *slash = strrchr(probe_dir, '/');
        if (!slash) {
            snprintf(probe_dir, len, ".");
        } else if (slash == probe_dir) {
            probe_dir[1] = '\0';  /* "/" */
        } else {
            *slash = '\0';
        }
    }
    if (!S_ISDIR(st.st_mode)) {
        if (strcmp(probe_dir, dir) == 0) {
            snprintf(err, errlen, "'%s' is not a directory", dir);
        } else {
            snprintf(err, errlen, "cannot create directory '%s': Not a directory", dir);
        }
        return SL_EIO;
    }
    return 0;
}

int registry_check_dir(const char *dir, bool create, char *err, size_t errlen)
{
    char where[PATH_MAX];
    if (dir[0] == '\0') {
        snprintf(err, errlen, "must not be empty");
        return SL_EIO;
    }
    if (strlen(dir) >= sizeof(where)) {
        snprintf(err, errlen, "'%s' is too long", dir);
        return SL_EIO;
    }
    if (!create) {
        if (check_creatable(dir, where, sizeof(where), err, errlen) != 0) {
            return SL_EIO;
        }
        dir = where;
    } else if (sl_mkdir_p(dir, 0750) != 0) {
        snprintf(err, errlen, "cannot create directory '%s': %s", dir, strerror(errno));
        return SL_EIO;
    }
    struct stat st;
    if (stat(dir, &st) != 0) {
        snprintf(err, errlen, "cannot stat '%s': %s", dir, strerror(errno));
        return SL_EIO;
    }
    if (!S_ISDIR(st.st_mode)) {
        /* sl_mkdir_p takes an existing name for done, whatever it is. */
        snprintf(err, errlen, "'%s' is not a directory", dir);
        return SL_EIO;
    }
    /* Create and remove a file, as every flush does, rather than ask access():
     * that answers for the real uid, not the effective one, and knows nothing of
     * a full inode table. The probe has its own name so that -t next to a
     * running shipper never touches that one's registry.json.tmp. */
    char probe[PATH_MAX];
    if ((size_t)snprintf(probe, sizeof(probe), "%s/.registry-check-XXXXXX", dir) >=
        sizeof(probe)) {
        snprintf(err, errlen, "'%s' is too long", dir);
        return SL_EIO;
    }
    int fd = mkostemp(probe, O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a file in directory '%s': %s", dir,
                 strerror(errno));
        return SL_EIO;
    }
    close(fd);
    if (unlink(probe) != 0) {
        snprintf(err, errlen, "cannot remove '%s': %s", probe, strerror(errno));
        return SL_EIO;
    }
    return 0;
}

int registry_open(const char *dir, struct registry **out)
{
    *out = NULL;
    if (sl_mkdir_p(dir, 0750) != 0) {
        sl_error("registry: cannot create %s: %s", dir, strerror(errno));
        return SL_EIO;
    }
    struct registry *r = sl_calloc(1, sizeof(*r));
    r->dir = sl_strdup(dir);
    r->file = path_join(dir, "registry.json");
    r->tmp = path_join(dir, "registry.json.tmp");
    r->bak = path_join(dir, "registry.json.bak");
    int rc = load(r);
    if (rc != 0) {
        registry_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

bool registry_was_corrupt(const struct registry *r)
{
    return r->corrupt;
}

void registry_close(struct registry *r)
{
    if (!r) {
        return;
    }
    clear_entries(r);
    free(r->dir);
    free(r->bak);
    free(r->file);
    free(r->tmp);
    free(r);
}

struct registry_entry *registry_find(struct registry *r, uint64_t dev, uint64_t ino)
{
    if (r->nbuckets == 0) {
        return NULL;
    }
    for (struct registry_entry *e = r->buckets[index_slot(r, dev, ino)]; e; e = e->hnext) {
        if (e->dev == dev && e->ino == ino && !e->gone) {
            return e;
        }
    }
    return NULL;
}

struct registry_entry *registry_add(struct registry *r, uint64_t dev, uint64_t ino,
                                    const char *path)
{
    struct registry_entry *old = registry_find(r, dev, ino);
    if (old) {
        /* Inode reuse: the old entry stays until its events are settled, then expires. */
        old->gone = true;
    }
    r->dirty = true;
    return entry_new(r, dev, ino, path);
}

void registry_ack(struct registry *r, struct registry_entry *e, uint64_t gen, uint64_t offset)
{
    if (gen != e->gen || offset <= e->offset) {
        return;
    }
    e->offset = offset;
    e->seen_ms = sl_wall_ms();
    r->dirty = true;
}

void registry_touch(struct registry *r)
{
    r->dirty = true;
}

size_t registry_count(const struct registry *r)
{
    return r->count;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return SL_EIO;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void encode(struct registry *r, struct sl_buf *b)
{
    sl_buf_puts(b, "{\"version\":1,\"entries\":[");
    bool first = true;
    for (struct registry_entry *e = r->head; e; e = e->next) {
        if (e->gone) {
            continue;  /* deleted or replaced: nothing left to resume */
        }
        if (!first) {
            sl_buf_putc(b, ',');
        }
        first = false;
        sl_buf_printf(b, "\n{\"dev\":%" PRIu64 ",\"ino\":%" PRIu64 ",\"fp\":\"%016" PRIx64
                         "\",\"fp_len\":%u,\"offset\":%" PRIu64 ",\"seen\":%" PRIu64 ",\"path\":",
                      e->dev, e->ino, e->fp, e->fp_len, e->offset, e->seen_ms);
        sl_json_put_str(b, e->path, strlen(e->path));
        sl_buf_putc(b, '}');
    }
    sl_buf_puts(b, "\n]}\n");
}

void registry_metrics(struct registry *r, struct sl_metrics *metrics)
{
    const char *help = "Registry writes, by result (ok|error).";
    r->m_ok = sl_metrics_counter(metrics, "sluice_shipper_registry_writes_total", help,
                                 (const char *[]){"result", "ok", NULL});
    r->m_error = sl_metrics_counter(metrics, "sluice_shipper_registry_writes_total", help,
                                    (const char *[]){"result", "error", NULL});
    r->m_last_ok = sl_metrics_gauge(metrics, "sluice_shipper_registry_last_write_timestamp_seconds",
                                    "When the registry was last written (Unix time; 0: not yet).",
                                    NULL);
}

uint64_t registry_failing_since(const struct registry *r)
{
    return r->failing_since;
}

static int open_tmp(struct registry *r)
{
    int fd = open(r->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0 && errno == ENOENT) {
        /* Its directory was removed under us: offsets must still be saved somewhere. */
        if (sl_mkdir_p(r->dir, 0750) == 0) {
            sl_warn("registry: %s was removed; created it again", r->dir);
            fd = open(r->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        }
    }
    return fd;
}

static int flush_once(struct registry *r);

int registry_flush(struct registry *r)
{
    if (!r->dirty) {
        return 0;
    }
    int rc = flush_once(r);
    if (rc == 0) {
        r->failing_since = 0;
        sl_counter_inc(r->m_ok);
        sl_gauge_set(r->m_last_ok, (double)sl_wall_ms() / 1000.0);
    } else {
        if (!r->failing_since) {
            r->failing_since = sl_now_ms();
        }
        sl_counter_inc(r->m_error);
    }
    return rc;
}

static int flush_once(struct registry *r)
{
    int rc = SL_EIO;
    struct sl_buf b;
    sl_buf_init(&b, 0);
    encode(r, &b);
    int fd = open_tmp(r);
    if (fd < 0) {
        sl_error("registry: cannot create %s: %s", r->tmp, strerror(errno));
        goto out;
    }
    if (write_all(fd, b.data, b.len) != 0 || fsync(fd) != 0) {
        sl_error("registry: cannot write %s: %s", r->tmp, strerror(errno));
        close(fd);
        goto out;
    }
    close(fd);
    /* Keep the previous generation: if this one is ever found corrupt, the
     * backup is at most one flush older. */
    if (rename(r->file, r->bak) != 0 && errno != ENOENT) {
        sl_warn("registry: cannot keep a backup as %s: %s", r->bak, strerror(errno));
    }
    if (rename(r->tmp, r->file) != 0) {
        sl_error("registry: cannot rename %s: %s", r->tmp, strerror(errno));
        goto out;
    }
    /* The rename is durable only once the directory itself is synced. */
    int dfd = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    r->dirty = false;
    rc = 0;
out:
    sl_buf_free(&b);
    return rc;
}

void registry_expire(struct registry *r, uint64_t ttl_ms)
{
    uint64_t now = sl_wall_ms();
    for (struct registry_entry **pp = &r->head; *pp;) {
        struct registry_entry *e = *pp;
        if (e->gone && e->refs == 0 && now - e->seen_ms >= ttl_ms) {
            *pp = e->next;
            index_remove(r, e);
            free(e->path);
            free(e);
            r->count--;
            r->dirty = true;
            continue;
        }
        pp = &e->next;
    }
    /* Keep the index bounded by the entries left. */
    if (r->nbuckets > REGISTRY_MIN_BUCKETS && r->count < r->nbuckets / 4) {
        size_t nb = r->nbuckets;
        while (nb > REGISTRY_MIN_BUCKETS && r->count < nb / 4) {
            nb /= 2;
        }
        index_rebuild(r, nb);
    }
}
