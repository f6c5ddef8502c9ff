/*
 * tail.c - file discovery and harvesting.
 *
 * A harvester owns one open file. It reads with read(2) from its own offset,
 * so a file renamed by rotation keeps being read through its fd to the end,
 * while the scanner opens the new file that appeared under the old name.
 * Files are told apart by device + inode, and a registry entry is resumed
 * only when the fingerprint of the file's first bytes still matches.
 *
 * Ready harvesters are read round robin, one chunk each per turn, so one busy
 * file cannot starve the others.
 */
#include "tail.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "container.h"
#include "event.h"
#include "glob.h"
#include "ndjson.h"
#include "processor.h"
#include "shape.h"
#include "sluice/json.h"
#include "sluice/time.h"
#include "sluice/log.h"

#define CHUNK (64u * 1024u)
#define HASH_SIZE 4096u

/* Why a line was not shipped: the reason label of the lines_dropped series. */
enum drop { DROP_INCLUDE, DROP_EXCLUDE, DROP_STREAM, DROP_PROCESSOR, DROP_EMPTY, DROP_N };
static const char *const drop_reasons[DROP_N] = {"include_lines", "exclude_lines", "stream",
                                                 "processor", "empty"};

struct input {
    const struct input_conf *conf;
    struct event_tmpl tmpl;
    bool procs;                /* processors run on its events (its own or global) */
    bool shaped;               /* ... and all of them can run once per shape (shape.h) */
    struct proc_chain *chains[2];  /* its own, then the global one */
    uint64_t next_scan;
    size_t open;               /* harvesters of this input */
    struct sl_metric *m_open;  /* sluice_shipper_input_files_open{input} */
    struct sl_metric *m_lines; /* sluice_shipper_input_lines_read_total{input} */
    struct sl_metric *m_drop[DROP_N];  /* ..._input_lines_dropped_total{input,reason} */
    /* Paths held back by harvester_limit: a FIFO in order of discovery, plus a
     * hash set of the same nodes so admission checks a path in O(1). */
    struct waiter *whead, *wtail;
    struct waiter **wset;
    size_t nwaiting;
    size_t wbuckets;           /* size of wset, a power of two */
};

struct waiter {
    char *path;
    size_t hash;
    struct waiter *next;       /* FIFO */
    struct waiter *hnext;      /* wset chain */
};

/* A container message whose partial lines are being joined, per stream. */
struct part {
    struct sl_buf buf;
    uint64_t off, end;         /* file range of its physical lines */
    int64_t ts_ms;             /* the runtime's time of its first line */
    int kind;                  /* extra[] of the event: stream and format */
    unsigned flags;
    bool pending;
};

/* The members a container event carries after "log", by stream and format
 * (kind = 2 * stream + cri), KIND_BARE for a line that did not parse. */
#define NKINDS 5
#define KIND_BARE 4
#define KIND_PLAIN (-1)        /* not a container input */

/* What a logical line brings besides its bytes. */
struct lmeta {
    int64_t ts_ms;             /* 0: the time it was read */
    int kind;
};

struct harvester {
    struct tail *t;
    struct input *in;
    char *path;
    char *file_json;
    size_t file_json_len;
    int fd;
    uint64_t dev, ino;
    uint64_t buf_off;          /* file offset of buf.data[0] */
    struct sl_buf buf;
    struct registry_entry *entry;
    bool skipping;             /* inside an over-long line, after its cut */
    bool backlog;              /* complete lines wait in buf for room in the queue */
    bool ready;
    bool verify;               /* woken (inotify, scan, end of a pause): check for copytruncate */
    bool at_eof;               /* read to the end and not woken since: its size is what was read */
    uint64_t last_data;        /* monotonic ms of the last byte read */
    /* multiline */
    struct sl_buf ml;
    uint64_t ml_off, ml_end;
    uint32_t ml_lines;
    unsigned ml_flags;
    uint64_t ml_since;
    struct lmeta ml_meta;
    /* container input */
    struct part part[CTR_NSTREAMS];
    char *extra[NKINDS];
    size_t extra_len[NKINDS];
    struct shape_cache *shapes;  /* with processors that run per shape */
    /* Per-file lag series (the first FILE_SERIES_MAX files open; NULL past them). */
    struct sl_metric *m_lag_bytes, *m_lag_seconds;
    uint64_t behind_since;     /* monotonic ms since the ACKed offset fell short of the size */
    int64_t ts_ms;             /* the runtime time formatted in ts */
    char ts[32];
    struct harvester *next;    /* all harvesters */
    struct harvester *rnext;   /* ready list */
    struct harvester *hnext;   /* path hash chain */
};

struct watch {
    int wd;
    char *dir;
};

/* A file read to its end and closed while still under its name: left closed
 * by scans until it changes (see unchanged()). */
struct closed {
    char *path;
    uint64_t dev, ino, size;
    struct timespec mtime, ctime;
    struct closed *next;
};

/* A path that matched but is not harvested (not a regular file, or on a kernel
 * pseudo file system): logged and counted once, until it turns into a regular file. */
struct skipped {
    char *path;
    struct skipped *next;
};

struct tail {
    struct sl_loop *loop;
    const struct shipper_conf *conf;
    struct queue *q;
    struct registry *reg;
    struct input *inputs;
    size_t ninputs;
    struct harvester *all;
    struct harvester *rhead, *rtail;
    struct harvester *by_path[HASH_SIZE];
    struct skipped *skipped[HASH_SIZE];
    struct closed *closed[HASH_SIZE];
    int ifd;
    struct watch *watches;
    size_t nwatches;
    struct sl_timer *timer;
    bool rescan;               /* a directory appeared: scan on the next pump */
    bool check_deleted;        /* a name was deleted: look for harvesters of deleted files */
    bool watch_warned;
    bool stopped;
    bool scanning;             /* inside scan_all: new entries are saved once at its end */
    bool persist_new;          /* a file of a start_position: end input entered the registry */
    char ts[32];
    uint64_t ts_ms;
    size_t open_files;
    struct sl_arena ctr_arena;   /* Docker lines' unescaped content, reset per line */
    struct sl_arena proc_arena;  /* the event tree processors work on, reset per event */
    struct sl_buf scratch;       /* an event's JSON before processors */
    struct sl_metric *m_ctr_invalid;
    struct sl_metric *m_drop_stream;
    struct sl_metric *m_drop_proc;
    struct sl_metric *m_drop_empty;
    struct sl_metric *m_ndjson_err;
    struct sl_metric *m_lines;
    struct sl_metric *m_bytes;
    struct sl_metric *m_files_open;
    struct sl_metrics *metrics;
    struct sl_metric *m_lag_total;
    size_t nfile_series;
    struct sl_metric *m_drop_include;
    struct sl_metric *m_drop_exclude;
    struct sl_metric *m_truncated;
    struct sl_metric *m_skip_special;
    struct sl_metric *m_skip_pseudo;
    struct sl_metric *m_open_err[3];  /* by open_error_reason() */
};

static size_t path_hash(const char *p)
{
    return (size_t)(registry_hash(REGISTRY_FNV_INIT, p, strlen(p)) % HASH_SIZE);
}

static struct harvester *find_by_path(struct tail *t, const char *path)
{
    for (struct harvester *h = t->by_path[path_hash(path)]; h; h = h->hnext) {
        if (strcmp(h->path, path) == 0) {
            return h;
        }
    }
    return NULL;
}

static struct closed **find_closed(struct tail *t, const char *path)
{
    struct closed **pp = &t->closed[path_hash(path)];
    while (*pp && strcmp((*pp)->path, path) != 0) {
        pp = &(*pp)->next;
    }
    return pp;
}

/* h, read to its end, is being closed: remember what its file looked like. */
static void remember_closed(struct tail *t, struct harvester *h, const struct stat *st)
{
    struct closed **pp = find_closed(t, h->path);
    struct closed *c = *pp;
    if (!c) {
        c = sl_calloc(1, sizeof(*c));
        c->path = sl_strdup(h->path);
        *pp = c;
    }
    c->dev = (uint64_t)st->st_dev;
    c->ino = (uint64_t)st->st_ino;
    c->size = (uint64_t)st->st_size;
    c->mtime = st->st_mtim;
    c->ctime = st->st_ctim;
}

static void hash_del(struct tail *t, struct harvester *h)
{
    for (struct harvester **pp = &t->by_path[path_hash(h->path)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == h) {
            *pp = h->hnext;
            return;
        }
    }
}

static void free_extras(struct harvester *h)
{
    for (size_t k = 0; k < NKINDS; k++) {
        free(h->extra[k]);
        h->extra[k] = NULL;
    }
}

/* The members after "log" of h's events, once per path: the stream, the
 * Kubernetes names the path holds and the runtime the format tells. */
static void build_extras(struct harvester *h)
{
    static const char *const streams[] = {",\"stream\":\"stdout\"", ",\"stream\":\"stderr\""};
    struct k8s_meta m;
    k8s_from_path(h->path, &m);  /* all empty when the path is not the kubelet's */
    free_extras(h);
    for (int k = 0; k < NKINDS; k++) {
        struct sl_buf b;
        sl_buf_init(&b, 0);
        if (k != KIND_BARE) {
            sl_buf_puts(&b, streams[k / 2]);
        }
        k8s_put_json(&b, &m, k == KIND_BARE ? NULL : (k & 1) ? "cri" : "docker");
        h->extra[k] = sl_strndup(b.data ? b.data : "", b.len);
        h->extra_len[k] = b.len;
        sl_buf_free(&b);
    }
}

/* Files with their own lag series: beyond this many open files, only the
 * total (sluice_shipper_lag_bytes) covers the rest - a series per file of
 * 20,000 would drown the scrape. */
#define FILE_SERIES_MAX 1000

/* Another harvester of t with the path of h (a file renamed away under a glob
 * that still matches, and its successor), holding a series (has) or not. */
static struct harvester *same_path(struct harvester *h, bool has)
{
    for (struct harvester *o = h->t->all; o; o = o->next) {
        if (o != h && o->path && (o->m_lag_bytes != NULL) == has && strcmp(o->path, h->path) == 0) {
            return o;
        }
    }
    return NULL;
}

static void file_series_make(struct harvester *h)
{
    struct tail *t = h->t;
    /* One series per path: the registry hands the same one to the same labels. */
    if (!t->metrics || t->nfile_series >= FILE_SERIES_MAX || same_path(h, true)) {
        return;
    }
    const char *lbl[] = {"input", h->in->conf->id, "path", h->path, NULL};
    h->m_lag_bytes = sl_metrics_gauge(t->metrics, "sluice_shipper_file_lag_bytes",
                                      "Bytes of the file not yet ACKed (size - ACKed offset).",
                                      lbl);
    h->m_lag_seconds = sl_metrics_gauge(t->metrics, "sluice_shipper_file_lag_seconds",
                                        "How long the file has had bytes not yet ACKed (0: none).",
                                        lbl);
    t->nfile_series++;
}

static void file_series_drop(struct harvester *h)
{
    if (!h->m_lag_bytes) {
        return;
    }
    sl_metrics_remove(h->t->metrics, h->m_lag_bytes);
    sl_metrics_remove(h->t->metrics, h->m_lag_seconds);
    h->m_lag_bytes = h->m_lag_seconds = NULL;
    h->t->nfile_series--;
    struct harvester *heir = same_path(h, false);
    if (heir) {
        file_series_make(heir);
    }
}

/* Every tick: each open file's size against its ACKed offset. */
static void update_lag(struct tail *t)
{
    uint64_t now = sl_now_ms(), total = 0;
    for (struct harvester *h = t->all; h; h = h->next) {
        /* A file read to its end that nothing has woken since has the size
         * that was read: no fstat for each of thousands of idle files every
         * second. */
        struct stat st;
        uint64_t size;
        if (h->fd < 0) {
            continue;
        } else if (h->at_eof && !h->ready) {
            size = h->buf_off + h->buf.len;
        } else if (fstat(h->fd, &st) == 0) {
            size = (uint64_t)st.st_size;
        } else {
            continue;
        }
        uint64_t acked = h->entry->offset;
        uint64_t lag = size > acked ? size - acked : 0;
        total += lag;
        h->behind_since = lag == 0 ? 0 : h->behind_since ? h->behind_since : now;
        sl_gauge_set(h->m_lag_bytes, (double)lag);
        sl_gauge_set(h->m_lag_seconds, h->behind_since ? (double)(now - h->behind_since) / 1000.0
                                                       : 0.0);
    }
    sl_gauge_set(t->m_lag_total, (double)total);
}

static void set_path(struct harvester *h, const char *path)
{
    struct tail *t = h->t;
    file_series_drop(h);  /* the path is a label; under the old one, an heir may take it */
    if (h->path) {
        hash_del(t, h);
        free(h->path);
        free(h->file_json);
    }
    h->path = sl_strdup(path);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    event_file_json(&b, path, h->dev, h->ino);
    h->file_json = sl_strndup(b.data, b.len);
    h->file_json_len = b.len;
    sl_buf_free(&b);
    size_t i = path_hash(path);
    h->hnext = t->by_path[i];
    t->by_path[i] = h;
    if (h->in->conf->type == INPUT_CONTAINER) {
        build_extras(h);
    }
    shape_cache_clear(h->shapes);  /* the path is part of every shape */
    file_series_make(h);
}

static void make_ready(struct harvester *h)
{
    struct tail *t = h->t;
    h->at_eof = false;
    if (h->ready || h->fd < 0) {
        return;
    }
    h->ready = true;
    h->rnext = NULL;
    if (t->rtail) {
        t->rtail->rnext = h;
    } else {
        t->rhead = h;
    }
    t->rtail = h;
}

/* An outside sign that the file may have changed (inotify, a scan): make h ready
 * and have its next read check first that it is still the same content. */
static void wake(struct harvester *h)
{
    h->verify = true;
    make_ready(h);
}

static struct harvester *pop_ready(struct tail *t)
{
    struct harvester *h = t->rhead;
    if (h) {
        t->rhead = h->rnext;
        if (!t->rhead) {
            t->rtail = NULL;
        }
        h->ready = false;
    }
    return h;
}

static void unlink_ready(struct tail *t, struct harvester *h)
{
    struct harvester *prev = NULL;
    for (struct harvester *x = t->rhead; x; prev = x, x = x->rnext) {
        if (x == h) {
            if (prev) {
                prev->rnext = x->rnext;
            } else {
                t->rhead = x->rnext;
            }
            if (t->rtail == x) {
                t->rtail = prev;
            }
            break;
        }
    }
    h->ready = false;
}

/* @timestamp is the time a chunk was read: every line in it shares one stamp,
 * which keeps clock reads and formatting off the per-line path. */
static void stamp_now(struct tail *t)
{
    uint64_t now = sl_wall_ms();
    if (now != t->ts_ms) {
        t->ts_ms = now;
        sl_timestamp_format((int64_t)now, t->ts, sizeof(t->ts));
    }
}

/* The offset the registry may reach with an event ending at end: never past
 * the first line of a container message still being joined, nor of a
 * multiline group still being gathered. */
static uint64_t safe_end(const struct harvester *h, uint64_t end)
{
    if (h->ml_lines > 0 && h->ml_off < end) {
        end = h->ml_off;
    }
    for (size_t i = 0; i < CTR_NSTREAMS; i++) {
        if (h->part[i].pending && h->part[i].off < end) {
            end = h->part[i].off;
        }
    }
    return end;
}

/* The file's bytes up to end made no event: the registry need not wait for one. */
static void skip(struct harvester *h, uint64_t end)
{
    queue_skip(h->t->q, h->entry, h->entry->gen, safe_end(h, end));
}

/* The @timestamp text of m: the runtime's time, or the time the chunk was read. */
static const char *event_ts(struct harvester *h, const struct lmeta *m)
{
    if (m->ts_ms == 0) {
        return h->t->ts;
    }
    if (m->ts_ms != h->ts_ms &&
        sl_timestamp_format(m->ts_ms, h->ts, sizeof(h->ts)) == 24) {
        h->ts_ms = m->ts_ms;
    }
    return h->ts_ms == m->ts_ms ? h->ts : h->t->ts;
}

/*
 * The event with processors: its JSON as usual, parsed into a tree in the
 * per-event arena, the input's chain then the global one, written again.
 * False when a processor dropped it (or it could not be written).
 */
static bool encode_processed(struct harvester *h, struct sl_buf *out, const char *ts,
                             const char *line, size_t len, uint64_t off, unsigned flags,
                             int kind, const char *extra, size_t extra_len)
{
    struct tail *t = h->t;
    if (h->in->shaped) {
        struct shape_event se = {
            .tmpl = &h->in->tmpl, .ts = ts, .file_json = h->file_json,
            .file_json_len = h->file_json_len, .line = line, .len = len, .offset = off,
            .flags = flags, .variant = kind + 1, .extra = extra, .extra_len = extra_len,
        };
        int rc = shape_encode(h->shapes, h->in->chains, 2, &se, out);
        if (rc == 0) {
            sl_counter_inc(t->m_drop_proc);
            sl_counter_inc(h->in->m_drop[DROP_PROCESSOR]);
        }
        return rc == 1;
    }
    sl_buf_reset(&t->scratch);
    if (event_encode_ext(&t->scratch, &h->in->tmpl, ts, h->file_json, h->file_json_len, line,
                         len, off, flags, extra, extra_len) != 0) {
        return false;
    }
    struct sl_arena *prev = sl_value_set_arena(&t->proc_arena);
    struct sl_value ev = {0};
    char err[96];
    bool keep = sl_json_parse_arena(t->scratch.data, t->scratch.len, &ev, &t->proc_arena, NULL,
                                    err, sizeof(err)) == 0;
    if (keep && h->in->conf->ndjson && !ndjson_apply(h->in->conf->ndjson, &ev)) {
        sl_counter_inc(t->m_ndjson_err);
    }
    keep = keep && proc_chain_run(h->in->chains[0], &ev) &&
           proc_chain_run(h->in->chains[1], &ev);
    if (!keep) {
        sl_counter_inc(t->m_drop_proc);
        sl_counter_inc(h->in->m_drop[DROP_PROCESSOR]);
    } else if (sl_json_write(out, &ev, NULL) != 0) {
        keep = false;
    }
    sl_value_clear(&ev);
    sl_value_set_arena(prev);
    sl_arena_reset(&t->proc_arena);
    return keep;
}

/* Queues one event; its file offset range is [off, end). A line that makes
 * none (empty, filtered, dropped) lets the registry pass it instead. */
static void emit(struct harvester *h, const char *line, size_t len, uint64_t off, uint64_t end,
                 unsigned flags, const struct lmeta *m)
{
    struct tail *t = h->t;
    const struct input_conf *ic = h->in->conf;
    struct sl_metric *dropped = NULL;
    enum drop why = DROP_N;
    if (len == 0 && (m->kind == KIND_PLAIN || m->kind == KIND_BARE)) {
        /* As Filebeat: no event for an empty line. A container message the
         * runtime wrote empty still has its stream: it stays an event. */
        dropped = t->m_drop_empty;
        why = DROP_EMPTY;
    } else if (ic->include_lines.n && !regex_list_match(&ic->include_lines, line, len)) {
        dropped = t->m_drop_include;
        why = DROP_INCLUDE;
    } else if (ic->exclude_lines.n && regex_list_match(&ic->exclude_lines, line, len)) {
        dropped = t->m_drop_exclude;
        why = DROP_EXCLUDE;
    }
    if (dropped) {
        sl_counter_inc(dropped);
        sl_counter_inc(h->in->m_drop[why]);
        skip(h, end);
        return;
    }
    if (flags & EVENT_FLAG_TRUNCATED) {
        sl_counter_inc(t->m_truncated);
    }
    const char *ts = event_ts(h, m);
    const char *extra = m->kind >= 0 ? h->extra[m->kind] : NULL;
    size_t extra_len = m->kind >= 0 ? h->extra_len[m->kind] : 0;
    struct sl_buf *out = queue_begin_event(t->q);
    bool ok = h->in->procs
                  ? encode_processed(h, out, ts, line, len, off, flags, m->kind, extra,
                                     extra_len)
                  : event_encode_ext(out, &h->in->tmpl, ts, h->file_json, h->file_json_len,
                                     line, len, off, flags, extra, extra_len) == 0;
    if (!ok) {
        queue_cancel_event(t->q);
        skip(h, end);
        return;
    }
    queue_end_event(t->q, h->entry, h->entry->gen, safe_end(h, end));
}

static void ml_flush(struct harvester *h)
{
    if (h->ml_lines == 0) {
        return;
    }
    stamp_now(h->t);
    unsigned flags = h->ml_flags | (h->ml_lines > 1 ? EVENT_FLAG_MULTILINE : 0);
    h->ml_lines = 0;  /* no longer pending: safe_end() lets the registry pass it */
    emit(h, h->ml.data ? h->ml.data : "", h->ml.len, h->ml_off, h->ml_end, flags, &h->ml_meta);
    sl_buf_reset(&h->ml);
    h->ml_flags = 0;
}

static void ml_add(struct harvester *h, const char *line, size_t len, uint64_t off, uint64_t end,
                   unsigned flags, const struct lmeta *m)
{
    const struct multiline_conf *mc = &h->in->conf->multiline;
    if (h->ml_lines == 0) {
        h->ml_meta = *m;
        h->ml_since = sl_now_ms();
    }
    /* As Filebeat, the newline goes between texts only: leading empty lines add
     * nothing, the event starts at the first line with text, and a group of
     * empty lines alone is empty (no event). Empty lines after text stay. */
    if (h->ml.len == 0) {
        h->ml_off = off;
    } else if (h->ml_lines < mc->max_lines) {
        sl_buf_putc(&h->ml, '\n');
    }
    if (h->ml_lines < mc->max_lines) {
        size_t room = h->in->conf->max_line_bytes > h->ml.len
                          ? (size_t)h->in->conf->max_line_bytes - h->ml.len : 0;
        if (len > room) {
            len = room;
            flags |= EVENT_FLAG_TRUNCATED;
        }
        sl_buf_append(&h->ml, line, len);
    } else {
        flags |= EVENT_FLAG_TRUNCATED;
    }
    h->ml_lines++;
    h->ml_flags |= flags;
    h->ml_end = end;
}

/* A complete logical line (a physical one, or a joined container message) at
 * file offset off, ending before end: multiline, then the event. */
static void logical_line(struct harvester *h, const char *line, size_t len, uint64_t off,
                         uint64_t end, unsigned flags, const struct lmeta *m)
{
    const struct multiline_conf *mc = &h->in->conf->multiline;
    if (!mc->enabled) {
        emit(h, line, len, off, end, flags, m);
        return;
    }
    bool match = sl_regex_match(mc->pattern, line, len) != mc->negate;
    if (mc->match_after) {
        /* A matching line continues the event before it. */
        if (!match || h->ml_lines == 0) {
            ml_flush(h);
        }
        ml_add(h, line, len, off, end, flags, m);
    } else {
        /* A matching line continues into the next one; a non-matching one ends the event. */
        ml_add(h, line, len, off, end, flags, m);
        if (!match) {
            ml_flush(h);
        }
    }
}

/* The joined message of stream i is complete (or must go now): on to multiline. */
static void part_flush(struct harvester *h, size_t i)
{
    struct part *p = &h->part[i];
    if (!p->pending) {
        return;
    }
    p->pending = false;
    struct lmeta m = {.ts_ms = p->ts_ms, .kind = p->kind};
    logical_line(h, p->buf.data ? p->buf.data : "", p->buf.len, p->off, p->end, p->flags, &m);
    sl_buf_reset(&p->buf);
}

static void parts_flush(struct harvester *h)
{
    for (size_t i = 0; i < CTR_NSTREAMS; i++) {
        part_flush(h, i);
    }
}

/*
 * A physical line of a container input: parsed, filtered by stream, and
 * joined with the partial lines of its stream before it. A line that is not
 * of the runtime's format is shipped as it is, with the time it was read.
 */
static void container_line(struct harvester *h, const char *line, size_t len, uint64_t off,
                           uint64_t end, unsigned flags)
{
    struct tail *t = h->t;
    const struct input_conf *ic = h->in->conf;
    struct ctr_line cl;
    sl_arena_reset(&t->ctr_arena);
    if (ctr_parse((enum ctr_format)ic->ctr_format, line, len, &t->ctr_arena, &cl) != 0) {
        sl_counter_inc(t->m_ctr_invalid);
        struct lmeta m = {.ts_ms = 0, .kind = KIND_BARE};
        logical_line(h, line, len, off, end, flags, &m);
        return;
    }
    if (ic->ctr_stream != CTR_STREAM_ALL && (int)cl.stream != ic->ctr_stream - 1) {
        sl_counter_inc(t->m_drop_stream);
        sl_counter_inc(h->in->m_drop[DROP_STREAM]);
        skip(h, end);
        return;
    }
    int kind = 2 * (int)cl.stream + (cl.format == CTR_CRI);
    struct part *p = &h->part[cl.stream];
    if (!p->pending && !cl.partial) {
        struct lmeta m = {.ts_ms = cl.ts_ms, .kind = kind};
        logical_line(h, cl.msg, cl.len, off, end, flags, &m);
        return;
    }
    if (!p->pending) {
        p->pending = true;
        p->off = off;
        p->ts_ms = cl.ts_ms;
        p->kind = kind;
        p->flags = 0;
        sl_buf_reset(&p->buf);
    }
    size_t max = (size_t)ic->max_line_bytes;
    size_t n = cl.len;
    if (p->buf.len + n > max) {
        n = max - p->buf.len;
        p->flags |= EVENT_FLAG_TRUNCATED;
    }
    if (sl_buf_append(&p->buf, cl.msg, n) != 0) {
        p->flags |= EVENT_FLAG_TRUNCATED;  /* cannot happen: n fits the buffer's max */
    }
    p->flags |= flags;
    p->end = end;
    if (!cl.partial) {
        part_flush(h, cl.stream);
    }
}

/* A physical line (without its newline) at file offset off, ending before end. */
static void on_line(struct harvester *h, const char *line, size_t len, uint64_t off,
                    uint64_t end, unsigned flags)
{
    sl_counter_inc(h->t->m_lines);
    sl_counter_inc(h->in->m_lines);
    if (h->in->conf->type == INPUT_CONTAINER) {
        container_line(h, line, len, off, end, flags);
        return;
    }
    static const struct lmeta plain = {.ts_ms = 0, .kind = KIND_PLAIN};
    logical_line(h, line, len, off, end, flags, &plain);
}

/* Splits buffered bytes into lines; keeps a trailing partial line. */
static void split_lines(struct harvester *h)
{
    h->backlog = false;
    size_t max = (size_t)h->in->conf->max_line_bytes;
    char *p = h->buf.data;
    size_t n = h->buf.len;
    size_t start = 0;
    while (start < n) {
        char *nl = memchr(p + start, '\n', n - start);
        if (h->skipping) {
            if (!nl) {
                start = n;
                break;
            }
            h->skipping = false;
            start = (size_t)(nl - p) + 1;
            continue;
        }
        if (!queue_has_room(h->t->q)) {
            /* Backpressure: leave the rest in buf until ACKs free the queue. The
             * file may be rotated meanwhile: check it before reading on. */
            h->backlog = true;
            h->verify = true;
            break;
        }
        if (!nl) {
            if (n - start > max) {
                on_line(h, p + start, max, h->buf_off + start, h->buf_off + start + max,
                        EVENT_FLAG_TRUNCATED);
                h->skipping = true;
                start = n;
            }
            break;
        }
        size_t end = (size_t)(nl - p);
        size_t len = end - start;
        if (len > 0 && p[end - 1] == '\r') {
            len--;
        }
        unsigned flags = 0;
        if (len > max) {
            len = max;
            flags = EVENT_FLAG_TRUNCATED;
        }
        on_line(h, p + start, len, h->buf_off + start, h->buf_off + end + 1, flags);
        start = end + 1;
    }
    h->buf_off += start;
    sl_buf_consume(&h->buf, start);
}

static void harvester_close(struct harvester *h, bool gone)
{
    struct tail *t = h->t;
    struct stat st;
    if (!gone && !t->stopped && h->fd >= 0 && h->buf.len == 0 && !h->skipping &&
        find_by_path(t, h->path) == h && fstat(h->fd, &st) == 0 && st.st_nlink > 0 &&
        (uint64_t)st.st_size == h->buf_off) {
        /* Read to the end and still under its name (not rotated away). */
        remember_closed(t, h, &st);
    }
    if (h->fd >= 0) {
        close(h->fd);
        h->fd = -1;
        t->open_files--;
        sl_gauge_set(t->m_files_open, (double)t->open_files);
    }
    parts_flush(h);
    ml_flush(h);
    if (h->ready) {
        unlink_ready(t, h);
    }
    hash_del(t, h);
    for (struct harvester **pp = &t->all; *pp; pp = &(*pp)->next) {
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    }
    /* Events up to here are queued: a harvester reopening this file in this
     * process continues after them instead of queueing them twice. */
    h->entry->read_end = h->buf_off;
    if (gone) {
        h->entry->gone = true;
        registry_touch(t->reg);
    }
    h->entry->refs--;
    h->in->open--;
    sl_gauge_set(h->in->m_open, (double)h->in->open);
    sl_debug("closed %s%s", h->path, gone ? " (deleted)" : "");
    file_series_drop(h);
    free(h->path);
    free(h->file_json);
    sl_buf_free(&h->buf);
    sl_buf_free(&h->ml);
    for (size_t i = 0; i < CTR_NSTREAMS; i++) {
        sl_buf_free(&h->part[i].buf);
    }
    free_extras(h);
    shape_cache_free(h->shapes);
    free(h);
}

/* Hash of the first len bytes, or false when the file is shorter. */
static bool fingerprint(int fd, uint32_t len, uint64_t *out)
{
    char b[REGISTRY_FP_MAX];
    ssize_t n = pread(fd, b, len, 0);
    if (n != (ssize_t)len) {
        return false;
    }
    *out = registry_hash(REGISTRY_FNV_INIT, b, len);
    return true;
}

static void update_fingerprint(struct harvester *h, uint64_t size)
{
    struct registry_entry *e = h->entry;
    if (e->fp_len >= REGISTRY_FP_MAX || size <= e->fp_len) {
        return;
    }
    uint32_t len = (uint32_t)SL_MIN(size, (uint64_t)REGISTRY_FP_MAX);
    uint64_t fp;
    if (fingerprint(h->fd, len, &fp)) {
        e->fp = fp;
        e->fp_len = len;
        registry_touch(h->t->reg);
    }
}

/* copytruncate: the content we have not read yet starts again at 0. */
static void restart_at_zero(struct harvester *h, const char *why)
{
    sl_info("%s was truncated (%s): reading from the start", h->path, why);
    parts_flush(h);
    ml_flush(h);
    h->entry->gen++;
    h->entry->offset = 0;
    h->entry->read_end = 0;
    h->entry->fp_len = 0;
    registry_touch(h->t->reg);
    h->buf_off = 0;
    sl_buf_reset(&h->buf);
    h->skipping = false;
    if (lseek(h->fd, 0, SEEK_SET) != 0) {
        sl_warn("%s: lseek: %s", h->path, strerror(errno));
    }
}

/*
 * Was the open file truncated (copytruncate) since we last looked? Either it
 * is now shorter than what we read, or it was truncated and grew back past
 * our offset before we looked: then its first bytes no longer match the
 * fingerprint taken of them. One pread of at most REGISTRY_FP_MAX bytes, done
 * at wake-ups and at EOF, never per line. Restarts h at 0 and returns true
 * when it was.
 */
static bool check_truncated(struct harvester *h, const struct stat *st)
{
    uint64_t pos = h->buf_off + h->buf.len;
    uint64_t size = (uint64_t)st->st_size;
    char why[96];
    if (size < pos) {
        snprintf(why, sizeof(why), "size %llu < offset %llu", (unsigned long long)size,
                 (unsigned long long)pos);
        restart_at_zero(h, why);
        return true;
    }
    const struct registry_entry *e = h->entry;
    if (e->fp_len == 0) {
        return false;
    }
    uint64_t fp;
    if (size < e->fp_len || (fingerprint(h->fd, e->fp_len, &fp) && fp != e->fp)) {
        /* Shorter than its fingerprinted prefix, or that prefix changed: new content. */
        snprintf(why, sizeof(why), "its first %u bytes changed, size %llu, offset %llu",
                 (unsigned)e->fp_len, (unsigned long long)size, (unsigned long long)pos);
        restart_at_zero(h, why);
        return true;
    }
    return false;
}

/* EOF reached: notice truncation and deletion. Returns false when h was closed. */
static bool check_file(struct harvester *h)
{
    struct stat st;
    if (fstat(h->fd, &st) != 0) {
        return true;
    }
    h->verify = false;
    if (check_truncated(h, &st)) {
        make_ready(h);
        return true;
    }
    update_fingerprint(h, (uint64_t)st.st_size);
    if (st.st_nlink == 0) {
        /* Deleted and fully read: a last line without its newline will get none. */
        if (h->buf.len > 0 && !h->skipping) {
            size_t len = SL_MIN(h->buf.len, (size_t)h->in->conf->max_line_bytes);
            on_line(h, h->buf.data, len, h->buf_off, h->buf_off + h->buf.len,
                    len < h->buf.len ? EVENT_FLAG_TRUNCATED : 0);
        }
        harvester_close(h, true);
        return false;
    }
    return true;
}

static void open_file(struct tail *t, struct input *in, const char *path, bool initial);
static bool at_limit(const struct input *in);
static bool excluded(const struct input *in, const char *path);

/* Removes the oldest waiting path of in and returns it (the caller frees it). */
static char *pop_waiting(struct input *in)
{
    struct waiter *w = in->whead;
    in->whead = w->next;
    if (!in->whead) {
        in->wtail = NULL;
    }
    for (struct waiter **pp = &in->wset[w->hash & (in->wbuckets - 1)]; *pp;
         pp = &(*pp)->hnext) {
        if (*pp == w) {
            *pp = w->hnext;
            break;
        }
    }
    in->nwaiting--;
    char *path = w->path;
    free(w);
    return path;
}

/* Opens waiting files of in while it has free slots. */
static void open_waiting(struct tail *t, struct input *in)
{
    while (in->nwaiting > 0 && !at_limit(in)) {
        char *path = pop_waiting(in);
        if (!excluded(in, path) && !find_by_path(t, path)) {
            open_file(t, in, path, false);
        }
        free(path);
    }
}

/* Reads one chunk. Returns bytes read (0 at EOF), or -1 when h was closed. */
static ssize_t harvester_read(struct harvester *h)
{
    struct tail *t = h->t;
    if (h->backlog) {
        size_t before = h->buf.len;
        split_lines(h);
        /* Report progress (or a still-blocked backlog) so h stays ready. */
        return h->backlog ? 1 : (ssize_t)(before - h->buf.len) + 1;
    }
    if (h->verify) {
        /* Woken from outside, or after a pause: the file may have been truncated
         * and rewritten past our offset since the last read. */
        struct stat st;
        h->verify = false;
        if (fstat(h->fd, &st) == 0 && check_truncated(h, &st)) {
            return 1;  /* h stays ready and reads the new content from 0 */
        }
    }
    size_t want = CHUNK;
    if (sl_buf_reserve(&h->buf, want) != 0) {
        want = h->buf.max - h->buf.len;
    }
    ssize_t n = read(h->fd, h->buf.data + h->buf.len, want);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) {
            return 0;
        }
        sl_warn("%s: read: %s", h->path, strerror(errno));
        harvester_close(h, false);
        return -1;
    }
    if (n == 0) {
        if (!check_file(h)) {
            return -1;
        }
        h->at_eof = true;
        if (h->in->nwaiting > 0 && h->buf.len == 0 && h->ml_lines == 0) {
            /* harvester_limit: at EOF, hand the slot to a waiting file; this one
             * is queued again by its next write (inotify) or the next scan. */
            struct input *in = h->in;
            struct tail *tt = h->t;
            harvester_close(h, false);
            open_waiting(tt, in);
            return -1;
        }
        return 0;
    }
    h->buf.len += (size_t)n;
    h->at_eof = false;
    h->last_data = sl_now_ms();
    stamp_now(t);
    sl_counter_add(t->m_bytes, (uint64_t)n);
    split_lines(h);
    return n;
}

static void scan_all(struct tail *t, bool initial);

/* The per-input series, next to the totals: which input reads and drops what. */
static void input_metrics(struct input *in, struct sl_metrics *metrics)
{
    const char *lbl[] = {"input", in->conf->id, NULL};
    in->m_lines = sl_metrics_counter(metrics, "sluice_shipper_input_lines_read_total",
                                     "Lines read from files, per input.", lbl);
    for (size_t r = 0; r < DROP_N; r++) {
        const char *rl[] = {"input", in->conf->id, "reason", drop_reasons[r], NULL};
        in->m_drop[r] = sl_metrics_counter(metrics, "sluice_shipper_input_lines_dropped_total",
                                           "Lines not shipped, per input and reason.", rl);
    }
}

/*
 * Wakes the harvesters whose file was deleted, so they read what is left and
 * close at its end (check_file) instead of holding the disk space until
 * close_inactive. A file renamed away by rotation and deleted later is known by
 * no name we watch: only its fd tells, so this looks at every idle harvester.
 * Run when inotify reports a deletion and after each scan.
 */
static void wake_deleted(struct tail *t)
{
    t->check_deleted = false;
    for (struct harvester *h = t->all; h; h = h->next) {
        struct stat st;
        if (!h->ready && h->fd >= 0 && fstat(h->fd, &st) == 0 && st.st_nlink == 0) {
            wake(h);
        }
    }
}

bool tail_pump(struct tail *t, size_t budget)
{
    size_t done = 0;
    if (t->rescan && !t->stopped) {
        t->rescan = false;
        scan_all(t, false);
    }
    if (t->check_deleted && !t->stopped) {
        wake_deleted(t);
    }
    for (size_t i = 0; i < t->ninputs && !t->stopped; i++) {
        open_waiting(t, &t->inputs[i]);
    }
    while (!t->stopped && done < budget && queue_has_room(t->q)) {
        struct harvester *h = pop_ready(t);
        if (!h) {
            break;
        }
        ssize_t n = harvester_read(h);
        if (n > 0) {
            done += (size_t)n;
            make_ready(h);
        }
    }
    return !t->stopped && t->rhead != NULL && queue_has_room(t->q);
}

static bool excluded(const struct input *in, const char *path)
{
    return in->conf->exclude_files.n &&
           regex_list_match(&in->conf->exclude_files, path, strlen(path));
}

static struct harvester *find_by_inode(struct tail *t, uint64_t dev, uint64_t ino)
{
    for (struct harvester *h = t->all; h; h = h->next) {
        if (h->dev == dev && h->ino == ino) {
            return h;
        }
    }
    return NULL;
}

/* Where a newly opened file starts: its registry offset when the fingerprint matches. */
static struct registry_entry *resume(struct tail *t, struct input *in, int fd,
                                     const struct stat *st, const char *path, bool initial,
                                     uint64_t *offset)
{
    struct registry_entry *e = registry_find(t->reg, st->st_dev, st->st_ino);
    if (e) {
        uint64_t fp;
        if (e->fp_len == 0 || (fingerprint(fd, e->fp_len, &fp) && fp == e->fp)) {
            if ((uint64_t)st->st_size < e->offset) {
                sl_info("%s is shorter than its registry offset %llu: reading from the start",
                        path, (unsigned long long)e->offset);
                e->gen++;
                e->offset = 0;
                e->read_end = 0;
            }
            if (strcmp(e->path, path) != 0) {
                free(e->path);
                e->path = sl_strdup(path);
            }
            registry_touch(t->reg);
            *offset = e->offset;
            if (e->read_end > e->offset && e->read_end <= (uint64_t)st->st_size) {
                *offset = e->read_end;
            }
            return e;
        }
        sl_info("%s: inode %llu was reused by a new file (fingerprint differs)", path,
                (unsigned long long)st->st_ino);
    }
    e = registry_add(t->reg, st->st_dev, st->st_ino, path);
    /* start_position applies to files found at start-up; a file that appears
     * later is new content and is read from its first byte. */
    *offset = (initial && in->conf->start == START_END) ? (uint64_t)st->st_size : 0;
    e->offset = *offset;
    if (in->conf->start == START_END) {
        /* Saved before any of its lines ships: else a crash before the next
         * registry.flush makes the restart take it for a file never seen and
         * skip to its end, over lines written since (persist_new). */
        t->persist_new = true;
    }
    return e;
}

/* Writes the registry now if a start_position: end input added a file to it. */
static void persist_new_entries(struct tail *t)
{
    if (t->persist_new && !t->scanning) {
        t->persist_new = false;
        (void)registry_flush(t->reg);  /* failures are logged and counted there */
    }
}

static bool at_limit(const struct input *in)
{
    return in->conf->harvester_limit > 0 && in->open >= (size_t)in->conf->harvester_limit;
}

/* Queues path behind the files already waiting for a slot of in, unless it is
 * waiting already: one hash lookup, no scan of the queue. */
static void wait_for_slot(struct input *in, const char *path)
{
    size_t len = strlen(path);
    size_t hash = (size_t)registry_hash(REGISTRY_FNV_INIT, path, len);
    if (in->wbuckets) {
        for (struct waiter *w = in->wset[hash & (in->wbuckets - 1)]; w; w = w->hnext) {
            if (w->hash == hash && strcmp(w->path, path) == 0) {
                return;
            }
        }
    }
    if (in->nwaiting >= in->wbuckets) {
        /* Grow to keep chains short; the FIFO order is untouched. */
        size_t nb = in->wbuckets ? in->wbuckets * 2 : 64;
        struct waiter **set = sl_calloc(nb, sizeof(*set));
        for (struct waiter *w = in->whead; w; w = w->next) {
            w->hnext = set[w->hash & (nb - 1)];
            set[w->hash & (nb - 1)] = w;
        }
        free(in->wset);
        in->wset = set;
        in->wbuckets = nb;
    }
    struct waiter *w = sl_calloc(1, sizeof(*w));
    w->path = sl_strndup(path, len);
    w->hash = hash;
    w->hnext = in->wset[hash & (in->wbuckets - 1)];
    in->wset[hash & (in->wbuckets - 1)] = w;
    if (in->wtail) {
        in->wtail->next = w;
    } else {
        in->whead = w;
    }
    in->wtail = w;
    in->nwaiting++;
}

/* Kernel pseudo file systems: their files say size 0 (or a fixed size) yet read
 * data, regenerated on each read, so they would be "truncated" on every EOF. */
#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
#endif
#ifndef SYSFS_MAGIC
#define SYSFS_MAGIC 0x62656572
#endif
#ifndef DEBUGFS_MAGIC
#define DEBUGFS_MAGIC 0x64626720
#endif
#ifndef TRACEFS_MAGIC
#define TRACEFS_MAGIC 0x74726163
#endif
#ifndef CGROUP_SUPER_MAGIC
#define CGROUP_SUPER_MAGIC 0x27e0eb
#endif
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

static const char *pseudo_fs(const struct statfs *sf)
{
    switch ((unsigned long)sf->f_type) {
    case PROC_SUPER_MAGIC: return "procfs";
    case SYSFS_MAGIC: return "sysfs";
    case DEBUGFS_MAGIC: return "debugfs";
    case TRACEFS_MAGIC: return "tracefs";
    case CGROUP_SUPER_MAGIC: return "cgroupfs";
    case CGROUP2_SUPER_MAGIC: return "cgroup2fs";
    default: return NULL;
    }
}

static struct skipped **find_skipped(struct tail *t, const char *path)
{
    struct skipped **pp = &t->skipped[path_hash(path)];
    while (*pp && strcmp((*pp)->path, path) != 0) {
        pp = &(*pp)->next;
    }
    return pp;
}

/* path matched but is not harvested: logged and counted once per path. */
static void skip_file(struct tail *t, const char *path, bool pseudo, const char *what)
{
    struct skipped **pp = find_skipped(t, path);
    if (*pp) {
        return;
    }
    struct skipped *sk = sl_calloc(1, sizeof(*sk));
    sk->path = sl_strdup(path);
    *pp = sk;
    sl_counter_inc(pseudo ? t->m_skip_pseudo : t->m_skip_special);
    sl_warn("skipping %s: %s, not a regular file to tail", path, what);
}

/* path is a regular file again: should it stop being one, say so again. */
static void unskip_file(struct tail *t, const char *path)
{
    struct skipped **pp = find_skipped(t, path);
    if (*pp) {
        struct skipped *sk = *pp;
        *pp = sk->next;
        free(sk->path);
        free(sk);
    }
}

/* Harvest only regular files (after following symlinks) on real file systems:
 * not FIFOs, devices, sockets, nor /proc or /sys files. Checked before open(2),
 * which could block or have side effects on special files. */
static bool harvestable(struct tail *t, const char *path, int fd)
{
    struct stat st;
    if ((fd >= 0 ? fstat(fd, &st) : stat(path, &st)) != 0) {
        return false;  /* gone meanwhile: nothing to say */
    }
    if (!S_ISREG(st.st_mode)) {
        const char *kind = S_ISDIR(st.st_mode)    ? "a directory"
                           : S_ISFIFO(st.st_mode) ? "a FIFO"
                           : S_ISCHR(st.st_mode)  ? "a character device"
                           : S_ISBLK(st.st_mode)  ? "a block device"
                           : S_ISSOCK(st.st_mode) ? "a socket"
                                                  : "not a regular file";
        skip_file(t, path, false, kind);
        return false;
    }
    struct statfs sf;
    const char *fs;
    if ((fd >= 0 ? fstatfs(fd, &sf) : statfs(path, &sf)) == 0 && (fs = pseudo_fs(&sf))) {
        char what[48];
        snprintf(what, sizeof(what), "a file on %s", fs);
        skip_file(t, path, true, what);
        return false;
    }
    return true;
}

/*
 * Is path a file this process read to its end and closed (close_inactive, the
 * harvester_limit hand-off) that has not changed since? Then a scan leaves it
 * closed, as Filebeat does, instead of reopening it only to find nothing new.
 * Same device, inode, size, mtime and ctime as at the close: a hash lookup and
 * a stat, no registry search. Any difference forgets the record and the file is
 * opened as usual (resume() then tells growth, truncation and inode reuse apart).
 */
static bool unchanged(struct tail *t, const char *path)
{
    struct closed **pp = find_closed(t, path);
    struct closed *c = *pp;
    if (!c) {
        return false;
    }
    struct stat st;
    if (stat(path, &st) == 0 && (uint64_t)st.st_dev == c->dev && (uint64_t)st.st_ino == c->ino &&
        (uint64_t)st.st_size == c->size && st.st_mtim.tv_sec == c->mtime.tv_sec &&
        st.st_mtim.tv_nsec == c->mtime.tv_nsec && st.st_ctim.tv_sec == c->ctime.tv_sec &&
        st.st_ctim.tv_nsec == c->ctime.tv_nsec) {
        return true;
    }
    *pp = c->next;
    free(c->path);
    free(c);
    return false;
}


/* Index into tail.m_open_err: what an operator would do about it differs. */
static size_t open_error_reason(int err)
{
    if (err == EACCES || err == EPERM) {
        return 0;
    }
    return err == EMFILE || err == ENFILE ? 1 : 2;
}

static void open_file(struct tail *t, struct input *in, const char *path, bool initial)
{
    if (!initial && unchanged(t, path)) {
        return;
    }
    if (at_limit(in)) {
        wait_for_slot(in, path);
        return;
    }
    if (!harvestable(t, path, -1)) {
        return;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno != ENOENT) {  /* gone between the scan and the open: not an error */
            sl_counter_inc(t->m_open_err[open_error_reason(errno)]);
            sl_warn("cannot open %s: %s", path, strerror(errno));
        }
        return;
    }
    struct stat st;
    if (!harvestable(t, path, fd) || fstat(fd, &st) != 0) {
        /* Replaced by a special file between the checks. */
        close(fd);
        return;
    }
    unskip_file(t, path);
    struct harvester *same = find_by_inode(t, st.st_dev, st.st_ino);
    if (same) {
        /* Renamed into another matching name: same file, new path. */
        close(fd);
        set_path(same, path);
        make_ready(same);
        return;
    }
    uint64_t offset;
    struct registry_entry *e = resume(t, in, fd, &st, path, initial, &offset);
    if (offset > 0 && lseek(fd, (off_t)offset, SEEK_SET) != (off_t)offset) {
        sl_warn("%s: lseek: %s", path, strerror(errno));
        close(fd);
        return;
    }
    struct harvester *h = sl_calloc(1, sizeof(*h));
    h->t = t;
    h->in = in;
    h->fd = fd;
    h->dev = st.st_dev;
    h->ino = st.st_ino;
    h->buf_off = offset;
    h->entry = e;
    e->refs++;
    h->last_data = sl_now_ms();
    sl_buf_init(&h->buf, (size_t)in->conf->max_line_bytes + CHUNK);
    sl_buf_init(&h->ml, 0);
    for (size_t i = 0; i < CTR_NSTREAMS; i++) {
        sl_buf_init(&h->part[i].buf, (size_t)in->conf->max_line_bytes);
    }
    if (in->shaped) {
        h->shapes = shape_cache_new();
    }
    set_path(h, path);
    update_fingerprint(h, (uint64_t)st.st_size);
    h->next = t->all;
    t->all = h;
    in->open++;
    sl_gauge_set(in->m_open, (double)in->open);
    t->open_files++;
    sl_gauge_set(t->m_files_open, (double)t->open_files);
    sl_info("harvesting %s from offset %llu", path, (unsigned long long)offset);
    persist_new_entries(t);
    make_ready(h);
}

/* A path matched one of in's globs: make sure the file behind it is harvested. */
static void consider(struct tail *t, struct input *in, const char *path, bool initial)
{
    if (excluded(in, path)) {
        return;
    }
    struct harvester *h = find_by_path(t, path);
    if (h) {
        struct stat st;
        if (stat(path, &st) == 0 && (uint64_t)st.st_ino == h->ino &&
            (uint64_t)st.st_dev == h->dev) {
            wake(h);  /* the stat-polling fallback when inotify missed a write */
            return;
        }
        /* Another file now has this name (rotation): the old one is read on through
         * its fd, under a name we no longer know. */
        hash_del(t, h);
        h->hnext = NULL;
        wake(h);
    }
    open_file(t, in, path, initial);
}

struct scan_ctx {
    struct tail *t;
    struct input *in;
    bool initial;
};

static void watch_dir(struct tail *t, const char *dir);
static void forget_watch(struct tail *t, int wd);

static void scan_file(void *arg, const char *path)
{
    struct scan_ctx *c = arg;
    consider(c->t, c->in, path, c->initial);
}

static void scan_dir(void *arg, const char *dir)
{
    struct scan_ctx *c = arg;
    if (c->t->ifd >= 0) {
        watch_dir(c->t, dir);
    }
}

/* Evaluates in's globs: harvests matching files and watches every directory the
 * walk read, so files and subdirectories created there later are seen at once. */
static void scan_input(struct tail *t, struct input *in, bool initial)
{
    struct scan_ctx c = {.t = t, .in = in, .initial = initial};
    struct glob_visitor v = {.file = scan_file, .dir = scan_dir, .arg = &c};
    for (size_t j = 0; j < in->conf->npaths; j++) {
        glob_walk(in->conf->paths[j], &v);
    }
}

/* The input whose globs match path, if any. */
static struct input *input_for(struct tail *t, const char *path)
{
    for (size_t i = 0; i < t->ninputs; i++) {
        const struct input_conf *ic = t->inputs[i].conf;
        for (size_t j = 0; j < ic->npaths; j++) {
            if (glob_match(ic->paths[j], path)) {
                return &t->inputs[i];
            }
        }
    }
    return NULL;
}

static void on_inotify(struct sl_loop *loop, int fd, unsigned events, void *arg)
{
    struct tail *t = arg;
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) {
            return;
        }
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof(*ev) + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                sl_warn("inotify queue overflowed: rescanning");
                for (size_t i = 0; i < t->ninputs; i++) {
                    t->inputs[i].next_scan = 0;
                }
                continue;
            }
            if (ev->mask & IN_IGNORED) {
                forget_watch(t, ev->wd);
                continue;
            }
            if (ev->len == 0) {
                continue;
            }
            const char *dir = NULL;
            for (size_t i = 0; i < t->nwatches; i++) {
                if (t->watches[i].wd == ev->wd) {
                    dir = t->watches[i].dir;
                    break;
                }
            }
            if (!dir) {
                continue;
            }
            if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
                /* A new subdirectory may hold matches (globs with ** or a wildcard directory). */
                for (size_t i = 0; i < t->ninputs; i++) {
                    t->inputs[i].next_scan = 0;
                }
                t->rescan = true;
                continue;
            }
            char path[PATH_MAX];
            if (snprintf(path, sizeof(path), "%s/%s", dir, ev->name) >= (int)sizeof(path)) {
                continue;
            }
            struct harvester *h = find_by_path(t, path);
            if (h) {
                wake(h);
            }
            if (ev->mask & (IN_DELETE | IN_MOVED_FROM)) {
                unskip_file(t, path);  /* a skipped special file went away: forget it */
                struct closed **cp = find_closed(t, path);
                if (*cp) {            /* nor is a closed file under this name any more */
                    struct closed *c = *cp;
                    *cp = c->next;
                    free(c->path);
                    free(c);
                }
            }
            if ((ev->mask & IN_DELETE) && !h) {
                t->check_deleted = true;  /* maybe a file we read under an older name */
            }
            if (ev->mask & (IN_CREATE | IN_MOVED_TO | IN_MODIFY)) {
                struct input *in = input_for(t, path);
                if (in && (!h || (ev->mask & (IN_CREATE | IN_MOVED_TO)))) {
                    consider(t, in, path, false);
                }
            }
        }
    }
}

static void forget_watch(struct tail *t, int wd)
{
    for (size_t i = 0; i < t->nwatches; i++) {
        if (t->watches[i].wd == wd) {
            free(t->watches[i].dir);
            t->watches[i] = t->watches[--t->nwatches];
            return;
        }
    }
}

static void watch_dir(struct tail *t, const char *dir)
{
    for (size_t i = 0; i < t->nwatches; i++) {
        if (strcmp(t->watches[i].dir, dir) == 0) {
            return;
        }
    }
    int wd = inotify_add_watch(t->ifd, dir,
                               IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                   IN_CLOSE_WRITE | IN_ATTRIB);
    if (wd < 0) {
        if (!t->watch_warned) {
            sl_warn("cannot watch %s (%s): relying on scan_frequency polling", dir,
                    strerror(errno));
            t->watch_warned = true;
        }
        return;
    }
    for (size_t i = 0; i < t->nwatches; i++) {
        if (t->watches[i].wd == wd) {
            return;  /* the same directory under another spelling */
        }
    }
    t->watches = sl_realloc(t->watches, (t->nwatches + 1) * sizeof(*t->watches));
    t->watches[t->nwatches++] = (struct watch){.wd = wd, .dir = sl_strdup(dir)};
}

/*
 * Closes files that gave no data for close_inactive. A harvester may be on the
 * ready list only because a scan or an inotify event woke it (with
 * scan_frequency <= the tick, every tick does): that does not keep it open. What
 * does is unread data: bytes in its buffer, a pending multiline event, or a file
 * larger than what was read (read first, close later).
 */
static void close_inactive(struct tail *t)
{
    uint64_t now = sl_now_ms();
    for (struct harvester *h = t->all, *next; h; h = next) {
        next = h->next;
        uint64_t limit = h->in->conf->close_inactive_ms;
        if (!limit || h->buf.len != 0 || h->ml_lines != 0 || h->backlog || h->skipping ||
            now - h->last_data < limit) {
            continue;
        }
        struct stat st;
        if (fstat(h->fd, &st) != 0 || (uint64_t)st.st_size != h->buf_off) {
            wake(h);  /* grew, or shrank (truncated): let the read path see to it */
            continue;
        }
        harvester_close(h, st.st_nlink == 0);
    }
    for (size_t i = 0; i < t->ninputs; i++) {
        open_waiting(t, &t->inputs[i]);
    }
}

void tail_tick(struct tail *t)
{
    uint64_t now = sl_now_ms();
    for (struct harvester *h = t->all; h; h = h->next) {
        const struct multiline_conf *mc = &h->in->conf->multiline;
        if (h->ml_lines && mc->timeout_ms && now - h->ml_since >= mc->timeout_ms &&
            queue_has_room(t->q)) {
            ml_flush(h);
        }
    }
}

static void scan_all(struct tail *t, bool initial)
{
    uint64_t now = sl_now_ms();
    t->scanning = true;
    for (size_t i = 0; i < t->ninputs; i++) {
        scan_input(t, &t->inputs[i], initial);
        t->inputs[i].next_scan = now + t->inputs[i].conf->scan_frequency_ms;
    }
    t->scanning = false;
    persist_new_entries(t);
}

static void on_timer(struct sl_loop *loop, void *arg)
{
    struct tail *t = arg;
    if (t->stopped) {
        return;
    }
    uint64_t now = sl_now_ms();
    bool scanned = false;
    for (size_t i = 0; i < t->ninputs; i++) {
        struct input *in = &t->inputs[i];
        if (now >= in->next_scan) {
            scan_input(t, in, false);
            in->next_scan = now + in->conf->scan_frequency_ms;
            scanned = true;
        }
    }
    if (scanned || t->check_deleted) {
        wake_deleted(t);
    }
    close_inactive(t);
    update_lag(t);
    tail_tick(t);
}

struct tail *tail_new(struct sl_loop *loop, const struct shipper_conf *conf, struct queue *q,
                      struct registry *reg, struct sl_metrics *metrics)
{
    struct tail *t = sl_calloc(1, sizeof(*t));
    t->loop = loop;
    t->conf = conf;
    t->q = q;
    t->reg = reg;
    t->m_lines = sl_metrics_counter(metrics, "sluice_shipper_lines_read_total",
                                    "Lines read from files.", NULL);
    t->m_bytes = sl_metrics_counter(metrics, "sluice_shipper_bytes_read_total",
                                    "Bytes read from files.", NULL);
    t->m_files_open = sl_metrics_gauge(metrics, "sluice_shipper_files_open",
                                       "Files held open by harvesters.", NULL);
    t->metrics = metrics;
    t->m_lag_total = sl_metrics_gauge(metrics, "sluice_shipper_lag_bytes",
                                      "Bytes of open files not yet ACKed (size - ACKed offset).",
                                      NULL);
    const char *inc[] = {"reason", "include_lines", NULL};
    const char *exc[] = {"reason", "exclude_lines", NULL};
    t->m_drop_include = sl_metrics_counter(metrics, "sluice_shipper_lines_dropped_total",
                                           "Lines not shipped, by reason.", inc);
    t->m_drop_exclude = sl_metrics_counter(metrics, "sluice_shipper_lines_dropped_total",
                                           "Lines not shipped, by reason.", exc);
    t->m_truncated = sl_metrics_counter(metrics, "sluice_shipper_lines_truncated_total",
                                        "Lines cut at max_line_bytes.", NULL);
    const char *sp[] = {"reason", "not_regular", NULL};
    const char *ps[] = {"reason", "pseudo_fs", NULL};
    t->m_skip_special = sl_metrics_counter(metrics, "sluice_shipper_files_skipped_total",
                                           "Matching files not harvested, by reason.", sp);
    t->m_skip_pseudo = sl_metrics_counter(metrics, "sluice_shipper_files_skipped_total",
                                          "Matching files not harvested, by reason.", ps);
    static const char *const open_reasons[] = {"permission", "too_many_open_files", "other"};
    for (size_t i = 0; i < SL_ARRAY_LEN(t->m_open_err); i++) {
        const char *lbl[] = {"reason", open_reasons[i], NULL};
        t->m_open_err[i] = sl_metrics_counter(metrics, "sluice_shipper_file_open_errors_total",
                                              "Matching files that could not be opened, by "
                                              "reason (each attempt counts).", lbl);
    }
    t->m_ctr_invalid = sl_metrics_counter(metrics, "sluice_shipper_container_lines_invalid_total",
                                          "Lines of a container input not in the runtime's "
                                          "format (shipped as they are).", NULL);
    const char *str[] = {"reason", "stream", NULL};
    t->m_drop_stream = sl_metrics_counter(metrics, "sluice_shipper_lines_dropped_total",
                                          "Lines not shipped, by reason.", str);
    const char *prc[] = {"reason", "processor", NULL};
    t->m_drop_proc = sl_metrics_counter(metrics, "sluice_shipper_lines_dropped_total",
                                        "Lines not shipped, by reason.", prc);
    const char *emp[] = {"reason", "empty", NULL};
    t->m_drop_empty = sl_metrics_counter(metrics, "sluice_shipper_lines_dropped_total",
                                         "Lines not shipped, by reason.", emp);
    proc_chain_start(conf->processors, metrics);
    t->m_ndjson_err = sl_metrics_counter(metrics, "sluice_shipper_ndjson_errors_total",
                                         "Messages the ndjson parser could not decode "
                                         "(shipped with their text as message).", NULL);
    sl_arena_init(&t->ctr_arena, 0);
    sl_arena_init(&t->proc_arena, 0);
    sl_buf_init(&t->scratch, 0);
    stamp_now(t);
    t->ninputs = conf->ninputs;
    t->inputs = sl_calloc(t->ninputs, sizeof(*t->inputs));
    const struct event_agent agent = {
        .name = conf->hostname,
        .id = conf->agent_id[0] ? conf->agent_id : NULL,
        .ephemeral_id = conf->ephemeral_id[0] ? conf->ephemeral_id : NULL,
    };
    for (size_t i = 0; i < t->ninputs; i++) {
        t->inputs[i].conf = &conf->inputs[i];
        const char *lbl[] = {"input", conf->inputs[i].id, NULL};
        t->inputs[i].m_open = sl_metrics_gauge(metrics, "sluice_shipper_input_files_open",
                                               "Files held open, per input.", lbl);
        sl_gauge_set(t->inputs[i].m_open, 0);
        input_metrics(&t->inputs[i], metrics);
        event_tmpl_init(&t->inputs[i].tmpl, &conf->inputs[i], &agent);
        struct input *in = &t->inputs[i];
        in->chains[0] = conf->inputs[i].processors;
        in->chains[1] = conf->processors;
        /* The ndjson parser changes every event differently: the tree path. */
        in->procs = in->chains[0] || in->chains[1] || conf->inputs[i].ndjson;
        in->shaped = in->procs && !conf->inputs[i].ndjson && proc_chain_static(in->chains, 2);
        proc_chain_start(conf->inputs[i].processors, metrics);
    }
    t->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (t->ifd < 0) {
        sl_warn("inotify unavailable (%s): polling every scan_frequency", strerror(errno));
    } else {
        sl_loop_add_fd(loop, t->ifd, SL_READ, on_inotify, t);
    }
    scan_all(t, true);
    /* Ticks every second, or every scan_frequency when that is shorter. */
    uint64_t tick = 1000;
    for (size_t i = 0; i < t->ninputs; i++) {
        tick = SL_MIN(tick, (uint64_t)conf->inputs[i].scan_frequency_ms);
    }
    t->timer = sl_loop_timer(loop, tick, true, on_timer, t);
    return t;
}

void tail_stop(struct tail *t)
{
    t->stopped = true;
}

void tail_free(struct tail *t)
{
    if (!t) {
        return;
    }
    while (t->all) {
        harvester_close(t->all, false);
    }
    if (t->ifd >= 0) {
        sl_loop_del_fd(t->loop, t->ifd);
        close(t->ifd);
    }
    for (size_t i = 0; i < t->nwatches; i++) {
        free(t->watches[i].dir);
    }
    free(t->watches);
    for (size_t i = 0; i < HASH_SIZE; i++) {
        for (struct skipped *sk = t->skipped[i], *next; sk; sk = next) {
            next = sk->next;
            free(sk->path);
            free(sk);
        }
        for (struct closed *c = t->closed[i], *next; c; c = next) {
            next = c->next;
            free(c->path);
            free(c);
        }
    }
    for (size_t i = 0; i < t->ninputs; i++) {
        sl_gauge_set(t->inputs[i].m_open, 0);
        event_tmpl_free(&t->inputs[i].tmpl);
        while (t->inputs[i].nwaiting > 0) {
            free(pop_waiting(&t->inputs[i]));
        }
        free(t->inputs[i].wset);
    }
    free(t->inputs);
    sl_timer_cancel(t->timer);
    sl_arena_free(&t->ctr_arena);
    sl_arena_free(&t->proc_arena);
    sl_buf_free(&t->scratch);
    free(t);
}
