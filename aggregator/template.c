/*
 * template.c - compiled field references, %{...} templates and the event-time
 * helpers (see template.h).
 *
 * A template is compiled into a list of segments (literal, field, date) and
 * every %{+pattern} into a list of date tokens, so rendering is a walk over
 * arrays: no parsing and no allocation per event beyond the output buffer.
 * Calendar arithmetic is done here (Howard Hinnant's civil-date algorithms)
 * rather than with gmtime/timegm: it is exact for any int64 day, has no
 * locale or TZ dependency and is trivially thread-safe.
 */
#include "sluice/template.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/json.h"

/* ---- templates ------------------------------------------------------------ */

enum seg_kind { SEG_LIT, SEG_FIELD, SEG_DATE, SEG_EPOCH };

struct seg {
    enum seg_kind kind;
    size_t off, len;          /* LIT: text in pool; FIELD: the raw "%{...}" in pool */
    struct sl_fieldref ref;   /* FIELD */
    size_t tok, ntok;         /* DATE: tokens[tok .. tok+ntok) */
};

/* One piece of a date pattern: a letter run ('y' x4) or literal text (letter 0). */
struct dtok {
    char letter;
    unsigned count;
    size_t off, len;          /* literal: text in pool */
};

struct sl_template {
    char *src;
    char *pool;               /* literal text and raw references, unescaped */
    size_t pool_len;
    struct seg *segs;
    size_t nsegs;
    struct dtok *toks;
    size_t ntoks;
    bool has_date;
};

static const char *const month_long[12] = {"January", "February", "March",     "April",
                                           "May",     "June",     "July",      "August",
                                           "September", "October", "November", "December"};
static const char *const day_long[7] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                        "Friday", "Saturday", "Sunday"};

static size_t pool_add(struct sl_buf *pool, const char *s, size_t n)
{
    size_t off = pool->len;
    sl_buf_append(pool, s, n);
    return off;
}

static struct seg *seg_add(struct sl_template *t, enum seg_kind kind, size_t *cap)
{
    if (t->nsegs == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        t->segs = sl_realloc(t->segs, *cap * sizeof(*t->segs));
    }
    struct seg *g = &t->segs[t->nsegs++];
    memset(g, 0, sizeof(*g));
    g->kind = kind;
    return g;
}

static void tok_add(struct sl_template *t, char letter, unsigned count, size_t off, size_t len,
                    size_t *cap)
{
    if (t->ntoks == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        t->toks = sl_realloc(t->toks, *cap * sizeof(*t->toks));
    }
    struct dtok *k = &t->toks[t->ntoks++];
    k->letter = letter;
    k->count = count;
    k->off = off;
    k->len = len;
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Compiles the Joda-style pattern p[0..n) into tokens; NULL or an error text. */
static const char *compile_date(struct sl_template *t, struct sl_buf *pool, const char *p,
                                size_t n, size_t *tcap, char *bad)
{
    size_t i = 0;
    while (i < n) {
        char c = p[i];
        if (c == '\'') {
            /* 'text' is literal; '' (inside or outside quotes) is one quote. */
            size_t off = pool->len;
            if (i + 1 < n && p[i + 1] == '\'') {
                sl_buf_putc(pool, '\'');
                i += 2;
            } else {
                i++;
                for (;;) {
                    if (i >= n) {
                        return "has an unterminated quote in a date pattern";
                    }
                    if (p[i] == '\'') {
                        if (i + 1 < n && p[i + 1] == '\'') {
                            sl_buf_putc(pool, '\'');
                            i += 2;
                            continue;
                        }
                        i++;
                        break;
                    }
                    sl_buf_putc(pool, p[i++]);
                }
            }
            tok_add(t, 0, 0, off, pool->len - off, tcap);
            continue;
        }
        if (is_alpha(c)) {
            size_t run = 1;
            while (i + run < n && p[i + run] == c) {
                run++;
            }
            if (!strchr("yYxwMdDHhkKmsSEaZ", c)) {
                *bad = c;
                return NULL;
            }
            tok_add(t, c, (unsigned)SL_MIN(run, 64), 0, 0, tcap);
            i += run;
            continue;
        }
        size_t start = i;
        while (i < n && !is_alpha(p[i]) && p[i] != '\'') {
            i++;
        }
        tok_add(t, 0, 0, pool_add(pool, p + start, i - start), i - start, tcap);
    }
    return NULL;
}

struct sl_template *sl_template_new(const char *src, char *err, size_t errlen)
{
    struct sl_template *t = sl_calloc(1, sizeof(*t));
    struct sl_buf pool;
    sl_buf_init(&pool, 0);
    size_t scap = 0, tcap = 0;
    t->src = sl_strdup(src ? src : "");
    const char *p = t->src, *lit = p;
    while (*p) {
        if (p[0] != '%' || p[1] != '{') {
            p++;
            continue;
        }
        const char *close = strchr(p + 2, '}');
        size_t at = (size_t)(p - t->src);
        if (!close) {
            snprintf(err, errlen, "unterminated '%%{' at offset %zu", at);
            goto fail;
        }
        if (p > lit) {
            struct seg *g = seg_add(t, SEG_LIT, &scap);
            g->len = (size_t)(p - lit);
            g->off = pool_add(&pool, lit, g->len);
        }
        const char *in = p + 2;
        size_t n = (size_t)(close - in);
        if (n == 0 || (in[0] == '+' && n == 1)) {
            snprintf(err, errlen, "empty '%.*s' at offset %zu", (int)(n + 3), p, at);
            goto fail;
        }
        if (in[0] == '+' && n == 3 && memcmp(in, "+%s", 3) == 0) {
            seg_add(t, SEG_EPOCH, &scap);
            t->has_date = true;
        } else if (in[0] == '+') {
            struct seg *g = seg_add(t, SEG_DATE, &scap);
            g->tok = t->ntoks;
            char bad = 0;
            const char *why = compile_date(t, &pool, in + 1, n - 1, &tcap, &bad);
            if (bad) {
                snprintf(err, errlen, "unsupported letter '%c' in date pattern '%.*s'", bad,
                         (int)(n + 3), p);
                goto fail;
            }
            if (why) {
                snprintf(err, errlen, "'%.*s' %s", (int)(n + 3), p, why);
                goto fail;
            }
            g->ntok = t->ntoks - g->tok;
            t->has_date = true;
        } else {
            struct seg *g = seg_add(t, SEG_FIELD, &scap);
            char *ref = sl_strndup(in, n);
            int rc = sl_fieldref_init(&g->ref, ref);
            free(ref);
            if (rc != 0) {
                snprintf(err, errlen, "invalid field reference '%.*s'", (int)(n + 3), p);
                goto fail;
            }
            g->len = n + 3;
            g->off = pool_add(&pool, p, g->len);
        }
        p = close + 1;
        lit = p;
    }
    if (p > lit) {
        struct seg *g = seg_add(t, SEG_LIT, &scap);
        g->len = (size_t)(p - lit);
        g->off = pool_add(&pool, lit, g->len);
    }
    t->pool = pool.data;  /* the pool moves into the template */
    t->pool_len = pool.len;
    return t;
fail:
    sl_buf_free(&pool);
    sl_template_free(t);
    return NULL;
}

void sl_template_free(struct sl_template *t)
{
    if (!t) {
        return;
    }
    for (size_t i = 0; i < t->nsegs; i++) {
        sl_fieldref_free(&t->segs[i].ref);
    }
    free(t->segs);
    free(t->toks);
    free(t->pool);
    free(t->src);
    free(t);
}

const char *sl_template_source(const struct sl_template *t)
{
    return t->src;
}

bool sl_template_is_static(const struct sl_template *t)
{
    for (size_t i = 0; i < t->nsegs; i++) {
        if (t->segs[i].kind != SEG_LIT) {
            return false;
        }
    }
    return true;
}

static bool listed(const char *const *keys, const char *k, size_t n)
{
    for (size_t i = 0; keys && keys[i]; i++) {
        if (strlen(keys[i]) == n && memcmp(keys[i], k, n) == 0) {
            return true;
        }
    }
    return false;
}

bool sl_template_reads_only(const struct sl_template *t, const char *const *keys)
{
    for (size_t i = 0; i < t->nsegs; i++) {
        const struct seg *g = &t->segs[i];
        if (g->kind == SEG_FIELD && (g->ref.nsegs == 0 ||
                                     !listed(keys, g->ref.segs[0].name, g->ref.segs[0].len))) {
            return false;
        }
        if ((g->kind == SEG_DATE || g->kind == SEG_EPOCH) &&
            !listed(keys, "@timestamp", strlen("@timestamp"))) {
            return false;
        }
    }
    return true;
}

void sl_template_root_keys(const struct sl_template *t,
                           void (*fn)(void *arg, const char *key, size_t len), void *arg)
{
    for (size_t i = 0; i < t->nsegs; i++) {
        const struct seg *g = &t->segs[i];
        if (g->kind == SEG_FIELD && g->ref.nsegs > 0) {
            fn(arg, g->ref.segs[0].name, g->ref.segs[0].len);
        } else if (g->kind == SEG_DATE || g->kind == SEG_EPOCH) {
            fn(arg, "@timestamp", strlen("@timestamp"));
        }
    }
}

/* The broken-down UTC time a date pattern needs, computed once per render. */
struct parts {
    int64_t epoch_s;
    int64_t year, wyear;
    int mon, mday, hour, min, sec, ms, wday /* 1 = Monday */, yday /* 1-based */, week;
};

static void split_time(int64_t ms, struct parts *t)
{
    int64_t days = sl_floor_div(ms, 86400000);
    int64_t rem = ms - days * 86400000;
    t->epoch_s = sl_floor_div(ms, 1000);
    sl_time_civil_from_days(days, &t->year, &t->mon, &t->mday);
    t->hour = (int)(rem / 3600000);
    t->min = (int)(rem / 60000 % 60);
    t->sec = (int)(rem / 1000 % 60);
    t->ms = (int)(rem % 1000);
    t->wday = (int)((days % 7 + 7 + 3) % 7) + 1;  /* 1970-01-01 was a Thursday */
    t->yday = (int)(days - sl_time_days_from_civil(t->year, 1, 1)) + 1;
    /* ISO week: the week belongs to the year its Thursday is in. */
    int64_t thursday = days - (t->wday - 1) + 3;
    int tm_, td_;
    sl_time_civil_from_days(thursday, &t->wyear, &tm_, &td_);
    t->week = (int)((thursday - sl_time_days_from_civil(t->wyear, 1, 1)) / 7) + 1;
}

/* v zero-padded to at least width digits. */
static int put_num(struct sl_buf *b, int64_t v, unsigned width)
{
    char tmp[32];
    size_t n = 0;
    bool neg = v < 0;
    uint64_t u = neg ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u && n < sizeof(tmp) - 1);
    while (n < width && n < sizeof(tmp) - 1) {
        tmp[sizeof(tmp) - 1 - n++] = '0';
    }
    if (neg && sl_buf_putc(b, '-') != 0) {
        return SL_ELIMIT;
    }
    return sl_buf_append(b, tmp + sizeof(tmp) - n, n);
}

static int put_date(struct sl_buf *b, const struct sl_template *t, const struct seg *g,
                    const struct parts *pt)
{
    int rc = 0;
    for (size_t i = g->tok; i < g->tok + g->ntok && rc == 0; i++) {
        const struct dtok *k = &t->toks[i];
        unsigned n = k->count;
        switch (k->letter) {
        case 0:
            rc = sl_buf_append(b, t->pool + k->off, k->len);
            break;
        case 'y':
        case 'Y':
            rc = n == 2 ? put_num(b, (pt->year % 100 + 100) % 100, 2) : put_num(b, pt->year, n);
            break;
        case 'x':
            rc = n == 2 ? put_num(b, (pt->wyear % 100 + 100) % 100, 2) : put_num(b, pt->wyear, n);
            break;
        case 'w':
            rc = put_num(b, pt->week, n);
            break;
        case 'M':
            if (n >= 4) {
                rc = sl_buf_puts(b, month_long[pt->mon - 1]);
            } else if (n == 3) {
                rc = sl_buf_append(b, month_long[pt->mon - 1], 3);
            } else {
                rc = put_num(b, pt->mon, n);
            }
            break;
        case 'd':
            rc = put_num(b, pt->mday, n);
            break;
        case 'D':
            rc = put_num(b, pt->yday, n);
            break;
        case 'H':
            rc = put_num(b, pt->hour, n);
            break;
        case 'h':
            rc = put_num(b, (pt->hour + 11) % 12 + 1, n);
            break;
        case 'k':
            rc = put_num(b, pt->hour == 0 ? 24 : pt->hour, n);
            break;
        case 'K':
            rc = put_num(b, pt->hour % 12, n);
            break;
        case 'm':
            rc = put_num(b, pt->min, n);
            break;
        case 's':
            rc = put_num(b, pt->sec, n);
            break;
        case 'S': {
            /* A fraction: the first n digits of the milliseconds, zeros after. */
            char frac[3] = {(char)('0' + pt->ms / 100), (char)('0' + pt->ms / 10 % 10),
                            (char)('0' + pt->ms % 10)};
            for (unsigned j = 0; j < n && rc == 0; j++) {
                rc = sl_buf_putc(b, j < 3 ? frac[j] : '0');
            }
            break;
        }
        case 'E':
            rc = n >= 4 ? sl_buf_puts(b, day_long[pt->wday - 1])
                        : sl_buf_append(b, day_long[pt->wday - 1], 3);
            break;
        case 'a':
            rc = sl_buf_puts(b, pt->hour < 12 ? "AM" : "PM");
            break;
        case 'Z':
            rc = sl_buf_puts(b, n == 1 ? "+0000" : n == 2 ? "+00:00" : "UTC");
            break;
        default:
            break;
        }
    }
    return rc;
}

/* Shortest %.Ng that reads back as d; integral values keep a ".0" so they
 * still look like the floating-point numbers they are. */
static int put_double(struct sl_buf *b, double d)
{
    if (!isfinite(d)) {
        return sl_buf_puts(b, "null");  /* what sl_json_write writes too */
    }
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (strtod(tmp, NULL) == d) {
            break;
        }
    }
    int rc = sl_buf_puts(b, tmp);
    if (rc == 0 && !strpbrk(tmp, ".eEn")) {
        rc = sl_buf_puts(b, ".0");
    }
    return rc;
}

static int put_value(struct sl_buf *b, const struct sl_value *v, bool top)
{
    switch (v->type) {
    case SL_V_STRING:
        return sl_buf_append(b, v->u.s.ptr, v->u.s.len);
    case SL_V_INT:
        return put_num(b, v->u.i, 1);
    case SL_V_DOUBLE:
        return put_double(b, v->u.d);
    case SL_V_BOOL:
        return sl_buf_puts(b, v->u.b ? "true" : "false");
    case SL_V_ARRAY:
        if (top) {
            /* Logstash joins an array's items with commas ("%{tags}" -> "web,prod"). */
            for (size_t i = 0; i < v->u.a.len; i++) {
                int rc = (i ? sl_buf_putc(b, ',') : 0);
                if (rc == 0) {
                    rc = put_value(b, &v->u.a.items[i], false);
                }
                if (rc != 0) {
                    return rc;
                }
            }
            return 0;
        }
        return sl_json_write(b, v, NULL);
    case SL_V_NULL:
        return top ? 0 : sl_buf_puts(b, "null");
    case SL_V_OBJECT:
        return sl_json_write(b, v, NULL);
    }
    return 0;
}

int sl_template_render(const struct sl_template *t, const struct sl_value *event,
                       struct sl_buf *out)
{
    struct parts pt;
    if (t->has_date) {
        int64_t ms;
        if (sl_timestamp_get(event, &ms) != 0) {
            ms = (int64_t)sl_wall_ms();
        }
        split_time(ms, &pt);
    }
    int rc = 0;
    for (size_t i = 0; i < t->nsegs && rc == 0; i++) {
        const struct seg *g = &t->segs[i];
        switch (g->kind) {
        case SEG_LIT:
            rc = sl_buf_append(out, t->pool + g->off, g->len);
            break;
        case SEG_FIELD: {
            const struct sl_value *v = sl_fieldref_get(&g->ref, event);
            if (!v || v->type == SL_V_NULL) {
                rc = sl_buf_append(out, t->pool + g->off, g->len);
            } else {
                rc = put_value(out, v, true);
            }
            break;
        }
        case SEG_DATE:
            rc = put_date(out, t, g, &pt);
            break;
        case SEG_EPOCH:
            rc = put_num(out, pt.epoch_s, 1);
            break;
        }
    }
    return rc;
}
