/*
 * out_file.c - the `file` output: each event as one JSON line, appended to a
 * file whose path may depend on the event (%{+yyyy.MM.dd} on @timestamp in
 * UTC, %{[field][ref]} on any field).
 *
 * A batch is grouped by resolved path into one buffer per file and written
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sluice/buf.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/plugin.h"

#define IDLE_CLOSE_MS (5 * 60 * 1000)  /* daily files stop being written: let them go */

enum seg_kind { SEG_LIT, SEG_DATE, SEG_FIELD };

struct seg {
    enum seg_kind kind;
    char *text;      /* LIT: the text; DATE: the Joda-style pattern; FIELD: the reference */
    char *raw;       /* FIELD: "%{...}" as written, used when the field is missing */
};

struct open_file {
    char *path;
    int fd;
    uint64_t last_used;
};

/* One file's share of a batch. */
struct group {
    char *path;
    struct sl_buf lines;
};

struct out_file {
    char *id;
    char *path_src;
    struct seg *segs;
    size_t nsegs;
    bool dynamic;         /* the path depends on the event */
    bool metadata;
    bool fsync;
    size_t max_open;
    struct open_file *files;
    size_t nfiles;
};

/* ---- the path template ---- */

static bool date_letter_ok(char ch)
{
    return strchr("yYxMdHmsSw", ch) != NULL;
}

static void seg_add(struct out_file *o, enum seg_kind kind, const char *s, size_t n,
                    const char *raw, size_t rawn)
{
    o->segs = sl_realloc(o->segs, (o->nsegs + 1) * sizeof(*o->segs));
    struct seg *g = &o->segs[o->nsegs++];
    g->kind = kind;
    g->text = sl_strndup(s, n);
    g->raw = raw ? sl_strndup(raw, rawn) : NULL;
}

/* Splits the path into literal, date and field segments; 0 or an error text. */
static const char *parse_template(struct out_file *o, const char *p)
{
    const char *lit = p;
    while (*p) {
        if (p[0] != '%' || p[1] != '{') {
            p++;
            continue;
        }
        const char *close = strchr(p + 2, '}');
        if (!close) {
            return "has an unterminated '%{'";
        }
        if (p > lit) {
            seg_add(o, SEG_LIT, lit, (size_t)(p - lit), NULL, 0);
        }
        const char *in = p + 2;
        size_t n = (size_t)(close - in);
        if (n == 0 || (in[0] == '+' && n == 1)) {
            return "has an empty '%{}'";
        }
        if (in[0] == '+') {
            for (size_t i = 1; i < n; i++) {
                if (((in[i] >= 'a' && in[i] <= 'z') || (in[i] >= 'A' && in[i] <= 'Z')) &&
                    !date_letter_ok(in[i])) {
                    return "has an unsupported letter in a %{+date} pattern "
                           "(use y M d H m s S w x)";
                }
            }
            seg_add(o, SEG_DATE, in + 1, n - 1, NULL, 0);
        } else {
            seg_add(o, SEG_FIELD, in, n, p, (size_t)(close + 1 - p));
        }
        o->dynamic = true;
        p = close + 1;
        lit = p;
    }
    if (p > lit) {
        seg_add(o, SEG_LIT, lit, (size_t)(p - lit), NULL, 0);
    }
    return NULL;
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm; no TZ involved). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* ISO8601 "2026-11-27T06:00:00.123Z" (offsets ±HH:MM, no zone = UTC) to epoch ms. */
static bool parse_iso8601(const char *s, size_t len, int64_t *out_ms)
{
    int y, mo, d, h, mi, sec, ms = 0;
    if (len < 19 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != ' ') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &sec)) {
        return false;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return false;
    }
    size_t i = 19;
    if (i < len && (s[i] == '.' || s[i] == ',')) {
        int scale = 100;
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            ms += (s[i] - '0') * scale;
            scale /= 10;
        }
    }
    int64_t offset_min = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) {
        int oh, om = 0;
        int sign = s[i] == '-' ? -1 : 1;
        if (i + 3 > len || !digits(s + i + 1, 2, &oh)) {
            return false;
        }
        i += 3;
        if (i < len && s[i] == ':') {
            i++;
        }
        if (i + 2 <= len && digits(s + i, 2, &om)) {
            i += 2;
        }
        offset_min = sign * (oh * 60 + om);
    } else if (i < len && s[i] == 'Z') {
        i++;
    }
    if (i != len) {
        return false;
    }
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    *out_ms = ((days * 86400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + ms;
    return true;
}

static int64_t event_time_ms(const struct sl_value *ev)
{
    const struct sl_value *ts = sl_obj_getc(ev, "@timestamp");
    int64_t ms;
    if (ts && ts->type == SL_V_STRING && parse_iso8601(ts->u.s.ptr, ts->u.s.len, &ms)) {
        return ms;
    }
    return (int64_t)sl_wall_ms();  /* what Logstash does for an unparseable @timestamp */
}

static void put_date(struct sl_buf *b, const char *pat, int64_t ms)
{
    static const char *const mon[] = {"January", "February", "March",     "April",
                                      "May",     "June",     "July",      "August",
                                      "September", "October", "November", "December"};
    time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int millis = (int)(ms - (int64_t)secs * 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    for (const char *p = pat; *p;) {
        char ch = *p;
        size_t run = 1;
        while (p[run] == ch) {
            run++;
        }
        char tmp[16];
        int w = run >= 2 ? (int)run : 1;  /* zero-pad to the pattern's width */
        switch (ch) {
        case 'y':
        case 'Y':
            if (run == 2) {
                sl_buf_printf(b, "%02d", (tm.tm_year + 1900) % 100);
            } else {
                sl_buf_printf(b, "%0*d", (int)SL_MAX(run, (size_t)4), tm.tm_year + 1900);
            }
            break;
        case 'x':
            strftime(tmp, sizeof(tmp), run == 2 ? "%g" : "%G", &tm);
            sl_buf_puts(b, tmp);
            break;
        case 'w':
            strftime(tmp, sizeof(tmp), "%V", &tm);
            sl_buf_puts(b, run >= 2 || tmp[0] != '0' ? tmp : tmp + 1);
            break;
        case 'M':
            if (run == 3) {
                sl_buf_printf(b, "%.3s", mon[tm.tm_mon]);
            } else if (run >= 4) {
                sl_buf_puts(b, mon[tm.tm_mon]);
            } else {
                sl_buf_printf(b, "%0*d", w, tm.tm_mon + 1);
            }
            break;
        case 'd':
            sl_buf_printf(b, "%0*d", w, tm.tm_mday);
            break;
        case 'H':
            sl_buf_printf(b, "%0*d", w, tm.tm_hour);
            break;
        case 'm':
            sl_buf_printf(b, "%0*d", w, tm.tm_min);
            break;
        case 's':
            sl_buf_printf(b, "%0*d", w, tm.tm_sec);
            break;
        case 'S': {
            /* Fraction of a second, truncated to the pattern's digits. */
            char frac[4];
            snprintf(frac, sizeof(frac), "%03d", millis);
            for (size_t i = 0; i < run; i++) {
                sl_buf_putc(b, i < 3 ? frac[i] : '0');
            }
            break;
        }
        default:
            sl_buf_append(b, p, run);
            break;
        }
        p += run;
    }
}

/* A field's value as path text; '/' cannot come from an event (no directory escapes). */
static void put_field(struct sl_buf *b, const struct seg *g, const struct sl_value *ev)
{
    const struct sl_value *v = sl_field_get(ev, g->text);
    if (!v) {
        sl_buf_puts(b, g->raw);  /* Logstash leaves a missing reference as written */
        return;
    }
    struct sl_buf t;
    sl_buf_init(&t, 0);
    switch (v->type) {
    case SL_V_STRING:
        sl_buf_append(&t, v->u.s.ptr, v->u.s.len);
        break;
    case SL_V_INT:
        sl_buf_printf(&t, "%lld", (long long)v->u.i);
        break;
    case SL_V_NULL:
        break;
    default:
        sl_json_write(&t, v, NULL);
        break;
    }
    const char *s = sl_buf_cstr(&t);
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
        sl_buf_puts(b, "_");
    } else {
        for (size_t i = 0; i < t.len; i++) {
            sl_buf_putc(b, s[i] == '/' || s[i] == '\0' ? '_' : s[i]);
        }
    }
    sl_buf_free(&t);
}

static void render_path(const struct out_file *o, const struct sl_value *ev, struct sl_buf *b)
{
    sl_buf_reset(b);
    int64_t ms = 0;
    bool have_ms = false;
    for (size_t i = 0; i < o->nsegs; i++) {
        const struct seg *g = &o->segs[i];
        if (g->kind == SEG_LIT) {
            sl_buf_puts(b, g->text);
        } else if (g->kind == SEG_DATE) {
            if (!have_ms) {
                ms = event_time_ms(ev);
                have_ms = true;
            }
            put_date(b, g->text, ms);
        } else {
            put_field(b, g, ev);
        }
    }
    sl_buf_cstr(b);
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
        sl_error("%s: cannot open %s: %s", o->id, path, strerror(errno));
        return -1;
    }
    if (o->nfiles == o->max_open) {
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

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- the plugin ---- */

static int write_group(struct out_file *o, struct group *g, uint64_t now)
{
    int fd = file_get(o, g->path, now);
    if (fd < 0) {
        return SL_EIO;
    }
    if (write_all(fd, g->lines.data, g->lines.len) != 0 || (o->fsync && fsync(fd) != 0)) {
        sl_error("%s: cannot write %s: %s", o->id, g->path, strerror(errno));
        file_forget(o, fd);  /* reopen next time: the error may be the file's */
        return SL_EIO;
    }
    return SL_OK;
}

static void file_submit(void *inst, struct sl_batch *batch, sl_output_done done, void *done_arg)
{
    struct out_file *o = inst;
    uint64_t now = sl_now_ms();
    const char *skip = o->metadata ? NULL : "@metadata";
    struct group *groups = NULL;
    size_t ngroups = 0, last = 0;
    struct sl_buf path;
    int status = SL_OK;
    sl_buf_init(&path, PATH_MAX);

    for (size_t i = 0; i < o->nfiles;) {
        if (now - o->files[i].last_used > IDLE_CLOSE_MS) {
            file_close(o, i);
        } else {
            i++;
        }
    }
    for (size_t i = 0; i < batch->n; i++) {
        const struct sl_value *ev = &batch->events[i];
        if (ev->type == SL_V_NULL) {
            continue;  /* dropped by a filter */
        }
        render_path(o, ev, &path);
        if (path.len == 0) {
            sl_warn("%s: the path rendered empty for an event; skipping it", o->id);
            continue;
        }
        /* Consecutive events nearly always share a file: try the last group first. */
        size_t g = ngroups;
        if (ngroups && strcmp(groups[last].path, path.data) == 0) {
            g = last;
        } else {
            for (size_t k = 0; k < ngroups; k++) {
                if (strcmp(groups[k].path, path.data) == 0) {
                    g = k;
                    break;
                }
            }
        }
        if (g == ngroups) {
            groups = sl_realloc(groups, (ngroups + 1) * sizeof(*groups));
            groups[g].path = sl_strdup(path.data);
            /* Unbounded here: its input is one window, already capped by the listener. */
            sl_buf_init(&groups[g].lines, 0);
            ngroups++;
        }
        last = g;
        sl_json_write(&groups[g].lines, ev, skip);
        sl_buf_putc(&groups[g].lines, '\n');
    }
    for (size_t g = 0; g < ngroups && status == SL_OK; g++) {
        status = write_group(o, &groups[g], now);
    }
    for (size_t g = 0; g < ngroups; g++) {
        free(groups[g].path);
        sl_buf_free(&groups[g].lines);
    }
    free(groups);
    sl_buf_free(&path);
    done(done_arg, status);
}

static void file_reopen(void *inst)
{
    struct out_file *o = inst;
    while (o->nfiles > 0) {
        file_close(o, o->nfiles - 1);
    }
}

static void file_free(void *inst)
{
    struct out_file *o = inst;
    if (!o) {
        return;
    }
    file_reopen(o);
    for (size_t i = 0; i < o->nsegs; i++) {
        free(o->segs[i].text);
        free(o->segs[i].raw);
    }
    free(o->segs);
    free(o->files);
    free(o->path_src);
    free(o->id);
    free(o);
}

static void *file_init(struct sl_cfg *cfg, struct sl_cfg_node *opts, struct sl_plugin_env *env)
{
    struct out_file *o = sl_calloc(1, sizeof(*o));
    int64_t max_open = 16;
    int errors = cfg->nerrors;
    o->id = sl_strdup(env->id);
    sl_cfg_str(cfg, opts, env->id, "path", NULL, &o->path_src);
    sl_cfg_bool(cfg, opts, env->id, "metadata", true, &o->metadata);
    sl_cfg_bool(cfg, opts, env->id, "fsync", false, &o->fsync);
    sl_cfg_int(cfg, opts, env->id, "max_open_files", 16, 1, 4096, &max_open);
    sl_cfg_check_unknown(cfg, opts, env->id);
    o->max_open = (size_t)max_open;
    o->files = sl_calloc(o->max_open, sizeof(*o->files));
    if (!o->path_src || !o->path_src[0]) {
        sl_cfg_error(cfg, opts, "%s: option 'path' is required", env->id);
    } else {
        const char *err = parse_template(o, o->path_src);
        if (err) {
            sl_cfg_error(cfg, sl_cfg_get(opts, "path"), "%s: option 'path' %s", env->id, err);
        }
    }
    if (cfg->nerrors != errors) {
        file_free(o);
        return NULL;
    }
    return o;
}

const struct sl_plugin sl_plugin_out_file = {
    .name = "file",
    .kind = SL_PLUGIN_OUTPUT,
    .init = file_init,
    .free = file_free,
    .submit = file_submit,
    .reopen = file_reopen,
};
