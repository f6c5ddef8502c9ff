/*
 * out_file.c - the `file` output: each event as one JSON line, appended to a
 * file whose path may depend on the event (a template: %{+yyyy.MM.dd} on
 * @timestamp in UTC, %{[field][ref]} on any field).
 *
 * A batch is grouped by rendered path into one buffer per file and written
 * with one write() per file (more only on short writes), so a window costs a
 * handful of syscalls whatever its size. Open descriptors are cached (LRU,
 * max_open_files) and reopened on SIGHUP, when the file was deleted, or after
 * being idle for IDLE_CLOSE_MS. Writes block the loop thread: local files
 * are fast, and a write that fails is reported, never retried here.
 *
 * Not here: compression, gzip rotation, per-file size limits.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/buf.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/plugin.h"
#include "sluice/template.h"

#define IDLE_CLOSE_MS (5 * 60 * 1000)  /* daily files stop being written: let them go */

/* One piece of the path: literal text and dates, or one field reference. */
struct piece {
    struct sl_template *t;
    bool from_event;      /* a %{field}: its text is cleaned (see clean_field) */
};

struct open_file {
    char *path;
    int fd;
    uint64_t last_used;
};

/* One file's lines of a batch, written where they lie (sl_lines), not copied
 * together first. */
struct group {
    char *path;
    struct sl_lines lines;
};

struct out_file {
    /* options */
    struct sl_template *path;
    bool metadata;
    bool fsync;
    int64_t max_open;

    /* state */
    struct sl_plugin_ctx *ctx;
    struct piece *pieces; /* NULL: no field in the path, render it whole */
    size_t npieces;
    bool fixed;           /* the path reads nothing of the event: rendered once per batch */
    struct open_file *files;
    size_t nfiles;
};

static const struct sl_opt file_opts[] = {
    {.name = "path", .type = SL_OPT_TEMPLATE, .flags = SL_OPT_REQUIRED | SL_OPT_NONEMPTY,
     .offset = offsetof(struct out_file, path),
     .doc = "the file; %{+yyyy.MM.dd} formats @timestamp (UTC), %{[a][b]} a field ('/' in it "
            "becomes '_')"},
    {.name = "metadata", .type = SL_OPT_BOOL, .def = "true",
     .offset = offsetof(struct out_file, metadata),
     .doc = "write the top-level @metadata object; false leaves it out"},
    {.name = "fsync", .type = SL_OPT_BOOL, .def = "false",
     .offset = offsetof(struct out_file, fsync),
     .doc = "fsync every file written before the batch is reported delivered"},
    {.name = "max_open_files", .type = SL_OPT_INT, .def = "16", .min = 1, .max = 4096,
     .offset = offsetof(struct out_file, max_open),
     .doc = "descriptors kept open (the least recently used is closed first)"},
    {0},
};

/* ---- the path ---- */

static int piece_add(struct out_file *o, const char *text, size_t n, bool from_event)
{
    char err[256];
    char *src = sl_strndup(text, n);
    struct sl_template *t = sl_template_new(src, err, sizeof(err));
    free(src);
    if (!t) {
        /* Cannot happen: the whole path compiled, and cuts follow its grammar. */
        sl_plugin_error(o->ctx, "path", "option 'path': %s", err);
        return SL_EINVAL;
    }
    o->pieces = sl_realloc(o->pieces, (o->npieces + 1) * sizeof(*o->pieces));
    o->pieces[o->npieces++] = (struct piece){.t = t, .from_event = from_event};
    return 0;
}

/*
 * Cuts the path where a field is rendered. A field's text comes from the
 * event, so it is cleaned on its own and an event cannot pick a directory,
 * while a '/' written in the path (literal or in a date pattern) stays. The
 * cuts follow sl_template_new's grammar ("%{" up to the next "}"; "%{+" is a
 * date), so each piece means what it meant in the whole path.
 */
static int split_path(struct out_file *o)
{
    const char *src = sl_template_source(o->path);
    const char *chunk = src, *p = src;
    while ((p = strstr(p, "%{")) != NULL) {
        const char *close = strchr(p + 2, '}');
        if (!close) {
            break;  /* the template would not have compiled */
        }
        if (p[2] != '+') {
            if ((p > chunk && piece_add(o, chunk, (size_t)(p - chunk), false) != 0) ||
                piece_add(o, p, (size_t)(close + 1 - p), true) != 0) {
                return SL_EINVAL;
            }
            chunk = close + 1;
        }
        p = close + 1;
    }
    if (o->pieces && *chunk) {
        return piece_add(o, chunk, strlen(chunk), false);
    }
    return 0;
}

/* A field's text as a path part: '/' and NUL become '_', "." and ".." become "_". */
static void clean_field(struct sl_buf *b, size_t start)
{
    size_t n = b->len - start;
    if (n == 0) {
        return;
    }
    char *s = b->data + start;
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) {
        s[0] = '_';
        b->len = start + 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '/' || s[i] == '\0') {
            s[i] = '_';
        }
    }
}

/*
 * The event's path, appended to b: the encoding's only part, rendered on the
 * pipeline's workers. 0, or SL_ELIMIT when longer than a path can be.
 */
static int render_path(const void *inst, const struct sl_value *ev, unsigned k, struct sl_buf *b)
{
    const struct out_file *o = inst;
    size_t at = b->len;
    if (!o->pieces) {
        if (sl_template_render(o->path, ev, b) != 0) {
            return SL_ELIMIT;
        }
    }
    for (size_t i = 0; i < o->npieces; i++) {
        size_t start = b->len;
        if (sl_template_render(o->pieces[i].t, ev, b) != 0) {
            return SL_ELIMIT;
        }
        if (o->pieces[i].from_event) {
            clean_field(b, start);
        }
    }
    return b->len - at > PATH_MAX - 1 ? SL_ELIMIT : 0;  /* PATH_MAX counts the NUL */
}

/* ---- files ---- */

/* Creates the directories a file path needs. */
static int mkdir_parent_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) {
        return 0;
    }
    char dir[PATH_MAX];
    size_t n = (size_t)(slash - path);
    if (n >= sizeof(dir)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(dir, path, n);
    dir[n] = '\0';
    return sl_mkdir_p(dir, 0755);
}

static void file_close(struct out_file *o, size_t i)
{
    close(o->files[i].fd);
    free(o->files[i].path);
    o->files[i] = o->files[--o->nfiles];
}

static void close_idle(struct out_file *o, uint64_t now)
{
    for (size_t i = 0; i < o->nfiles;) {
        if (now - o->files[i].last_used > IDLE_CLOSE_MS) {
            file_close(o, i);
        } else {
            i++;
        }
    }
}

/* The cached fd for path, opening (and creating directories) when needed; -1 on error. */
static int file_get(struct out_file *o, const char *path, uint64_t now)
{
    for (size_t i = 0; i < o->nfiles; i++) {
        if (strcmp(o->files[i].path, path) == 0) {
            struct stat st;
            /* Deleted under us: writing on would lose every line into an unlinked inode. */
            if (fstat(o->files[i].fd, &st) == 0 && st.st_nlink == 0) {
                file_close(o, i);
                break;
            }
            o->files[i].last_used = now;
            return o->files[i].fd;
        }
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT && mkdir_parent_of(path) == 0) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    }
    if (fd < 0) {
        sl_error("%s: cannot open %s: %s", o->ctx->id, path, strerror(errno));
        return -1;
    }
    if (o->nfiles == (size_t)o->max_open) {
        size_t lru = 0;
        for (size_t i = 1; i < o->nfiles; i++) {
            if (o->files[i].last_used < o->files[lru].last_used) {
                lru = i;
            }
        }
        file_close(o, lru);
    }
    o->files[o->nfiles++] = (struct open_file){.path = sl_strdup(path), .fd = fd,
                                               .last_used = now};
    return fd;
}

static void file_forget(struct out_file *o, int fd)
{
    for (size_t i = 0; i < o->nfiles; i++) {
        if (o->files[i].fd == fd) {
            file_close(o, i);
            return;
        }
    }
}

static int write_group(struct out_file *o, struct group *g, uint64_t now)
{
    int fd = file_get(o, g->path, now);
    if (fd < 0) {
        return SL_EIO;
    }
    /* Where this batch's lines start: a write that fails half way (a full disk)
     * is cut back to here, so the file never holds half a line that the next
     * event would be glued to. The batch is not ACKed and comes again whole. */
    struct stat st;
    off_t before = fstat(fd, &st) == 0 ? st.st_size : -1;
    if (sl_writev_all(fd, g->lines.v, g->lines.n) != 0 || (o->fsync && fsync(fd) != 0)) {
        int e = errno;
        if (before >= 0 && ftruncate(fd, before) != 0) {
            sl_error("%s: cannot cut %s back to its last whole line: %s", o->ctx->id, g->path,
                     strerror(errno));
        }
        sl_error("%s: cannot write %s: %s", o->ctx->id, g->path, strerror(e));
        file_forget(o, fd);  /* reopen next time: the error may be the file's */
        return SL_EIO;
    }
    return SL_OK;
}

/* ---- the plugin ---- */

static bool same_path(const struct group *g, struct sl_bytes path)
{
    return strlen(g->path) == path.len && memcmp(g->path, path.p, path.len) == 0;
}

/* The group for path, made when new. Consecutive events nearly always share a
 * file, so the last one used is tried first. */
static struct group *group_for(struct group **groups, size_t *ngroups, size_t *last,
                               struct sl_bytes path)
{
    size_t g = *ngroups;
    if (*ngroups && same_path(&(*groups)[*last], path)) {
        g = *last;
    } else {
        for (size_t k = 0; k < *ngroups; k++) {
            if (same_path(&(*groups)[k], path)) {
                g = k;
                break;
            }
        }
    }
    if (g == *ngroups) {
        *groups = sl_realloc(*groups, (*ngroups + 1) * sizeof(**groups));
        (*groups)[g] = (struct group){.path = sl_strndup(path.p, path.len)};
        (*ngroups)++;
    }
    *last = g;
    return &(*groups)[g];
}

/* An event whose path cannot be a file name: filed as a dead letter (or dropped). */
static int refuse(struct sl_batch *b, struct sl_bytes json, const char *why)
{
    char extra[96];
    snprintf(extra, sizeof(extra), "\"error\":\"%s\"", why);
    int rc = sl_batch_dead_letter(b, json.p, json.len, extra);
    return rc < 0 ? rc : SL_OK;  /* filed, or dropped by the core (no dead_letter_path) */
}

static void file_submit(void *inst, struct sl_batch *b)
{
    struct out_file *o = inst;
    uint64_t now = sl_now_ms();
    struct group *groups = NULL;
    size_t ngroups = 0, last = 0;
    int status = SL_OK;

    close_idle(o, now);
    struct sl_buf fixed;  /* a constant path, rendered at the first event */
    sl_buf_init(&fixed, 0);
    bool rendered = false;
    int fixed_rc = 0;
    for (size_t i = 0; i < b->n; i++) {
        const struct sl_value *ev = sl_batch_event(b, i);
        if (!ev) {
            continue;
        }
        struct sl_bytes path, json = sl_batch_json(b, i);
        int rc;
        if (o->fixed) {
            if (!rendered) {
                fixed_rc = render_path(o, ev, 0, &fixed);
                rendered = true;
            }
            rc = fixed_rc;
            path = (struct sl_bytes){fixed.data, fixed.len};
        } else {
            rc = sl_batch_part(b, i, 0, &path);
        }
        if (rc != 0 || path.len == 0) {
            rc = refuse(b, json, rc != 0 ? "is too long" : "renders empty");
            status = status == SL_OK ? rc : status;
            continue;
        }
        sl_lines_add(&group_for(&groups, &ngroups, &last, path)->lines, b, i);
    }
    /* The first failing file fails the batch: it will be sent again whole. */
    int wrote = SL_OK;
    for (size_t g = 0; g < ngroups && wrote == SL_OK; g++) {
        wrote = write_group(o, &groups[g], now);
    }
    for (size_t g = 0; g < ngroups; g++) {
        free(groups[g].path);
        sl_lines_free(&groups[g].lines);
    }
    free(groups);
    sl_buf_free(&fixed);
    sl_batch_done(b, status != SL_OK ? status : wrote);
}

static void file_reopen(void *inst)
{
    struct out_file *o = inst;
    while (o->nfiles > 0) {
        file_close(o, o->nfiles - 1);
    }
}

static void file_fini(void *inst)
{
    struct out_file *o = inst;
    if (o->files) {
        file_reopen(o);
    }
    for (size_t i = 0; i < o->npieces; i++) {
        sl_template_free(o->pieces[i].t);
    }
    free(o->pieces);
    free(o->files);
}

static int file_init(void *inst, struct sl_plugin_ctx *ctx)
{
    struct out_file *o = inst;
    o->ctx = ctx;
    o->files = sl_calloc((size_t)o->max_open, sizeof(*o->files));
    /* A path of dates at most needs only @timestamp: the core may then skip
     * building event trees (plugin.h, sl_encoding.reads). A constant one is no
     * part of the encoding at all: rendered once per batch, not per event. */
    static const char *const ts_only[] = {"@timestamp", NULL}, *const nothing[] = {NULL};
    o->fixed = sl_template_reads_only(o->path, nothing);
    bool dated = sl_template_reads_only(o->path, ts_only);
    sl_output_encoding(ctx, &(struct sl_encoding){.metadata = o->metadata,
                                                  .nparts = o->fixed ? 0 : 1,
                                                  .part = render_path,
                                                  .reads = dated ? ts_only : NULL});
    return split_path(o);
}

const struct sl_plugin sl_plugin_out_file = {
    .name = "file",
    .kind = SL_PLUGIN_OUTPUT,
    .summary = "appends each event as one JSON line to a file named from the event",
    .options = file_opts,
    .size = sizeof(struct out_file),
    .init = file_init,
    .fini = file_fini,
    .submit = file_submit,
    .reopen = file_reopen,
};
