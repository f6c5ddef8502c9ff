/*
 * filter_mutate.c - the `mutate` filter: renames, rewrites, converts and
 * removes fields, with Logstash's mutate semantics and its fixed order of
 * operations (rename, update, replace, convert, gsub, uppercase, lowercase,
 * strip, remove_fields, split, join, add_fields, add_tag, remove_tag), whatever
 * order the options are written in.
 *
 * Everything is compiled at init (field references checked, gsub patterns
 * compiled, %{} templates parsed); filter() only reads the instance, so one
 * instance serves every worker thread. Per-call state (Oniguruma regions,
 * scratch buffers) lives on the caller's stack.
 *
 * Not here: conditions (`when` is the core's), parsing (grok, kv, json).
 */
#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <oniguruma.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include "sluice/json.h"
#include "sluice/plugin.h"
#include "sluice/template.h"

/* Backtracking steps one gsub search may take across the whole string: a
 * pathological pattern then fails (value kept, event tagged) instead of
 * stalling a worker. Oniguruma's own default bounds only each match attempt. */
#define GSUB_RETRY_LIMIT 10000000ul

/* Longest string an operation may produce: gsub or a template can multiply
 * the size of its input, and event data must not grow memory without bound. */
#define MUTATE_MAX_VALUE (16u * 1024 * 1024)

enum conv { CONV_INTEGER, CONV_FLOAT, CONV_BOOLEAN, CONV_STRING };
static const char *const conv_names[] = {"integer", "float", "boolean", "string", NULL};

/* Option values that are two strings: rename {from: to}, split/join {field: separator}. */
struct pair {
    char *ref;
    char *arg;
};

/* update/replace/add_fields: both sides may hold %{} (Logstash renders add_field keys too). */
struct setter {
    struct sl_template *ref;
    struct sl_template *value;
};

struct convert {
    char *ref;
    enum conv to;
};

struct gsub {
    char *ref;
    OnigRegex re;
    struct sl_template *repl;
};

/* A list of templates (remove_fields, add_tag, remove_tag) or of plain refs. */
struct list {
    struct sl_template **t;
    size_t n;
};

struct strs {
    char **v;  /* NULL-terminated */
    size_t n;
};

struct filter_mutate {
    struct pair *rename;
    size_t nrename;
    struct setter *update, *replace, *add;
    size_t nupdate, nreplace, nadd;
    struct convert *convert;
    size_t nconvert;
    struct gsub *gsub;
    size_t ngsub;
    struct strs upper, lower, strip;
    struct list remove;
    struct pair *split, *join;
    size_t nsplit, njoin;
    struct list add_tag, remove_tag;
    struct strs fail_tags;
    locale_t utf8;  /* for Unicode case mapping; (locale_t)0 -> ASCII only */
};

/* Per-call state: nothing here is shared between threads. */
struct call {
    const struct filter_mutate *m;
    struct sl_value *event;
    struct sl_buf a, b;  /* scratch */
    OnigRegion *region;
    OnigMatchParam *mp;  /* bounds the work of one gsub search */
    bool failed;
};

/* ---- value helpers ---- */

/* Ruby's Float#to_s: shortest digits that read back the same, fixed notation for
 * exponents -4..15 and d.de+XX beyond, always with a fraction (5.0, 1.0e+20). */
static void fmt_double(double d, char *out, size_t outlen)
{
    if (!isfinite(d)) {
        snprintf(out, outlen, "%s", isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity");
        return;
    }
    char e[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof(e), "%.*e", p - 1, d);
        if (strtod(e, NULL) == d) {
            break;
        }
    }
    char digits[24];
    int nd = 0;
    const char *s = e + (e[0] == '-');
    for (; *s && *s != 'e' && nd < 20; s++) {
        if (isdigit((unsigned char)*s)) {
            digits[nd++] = *s;
        }
    }
    int exp = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    struct sl_buf b;
    sl_buf_init(&b, 0);
    if (e[0] == '-') {
        sl_buf_putc(&b, '-');
    }
    if (exp >= 16 || exp < -4) {
        sl_buf_printf(&b, "%c.%.*se%c%02d", digits[0], nd > 1 ? nd - 1 : 1,
                      nd > 1 ? digits + 1 : "0", exp < 0 ? '-' : '+', abs(exp));
    } else if (exp >= 0) {
        for (int i = 0; i <= exp; i++) {
            sl_buf_putc(&b, i < nd ? digits[i] : '0');
        }
        sl_buf_putc(&b, '.');
        if (nd > exp + 1) {
            sl_buf_append(&b, digits + exp + 1, (size_t)(nd - exp - 1));
        } else {
            sl_buf_putc(&b, '0');
        }
    } else {
        sl_buf_puts(&b, "0.");
        for (int i = 0; i < -exp - 1; i++) {
            sl_buf_putc(&b, '0');
        }
        sl_buf_append(&b, digits, (size_t)nd);
    }
    snprintf(out, outlen, "%s", sl_buf_cstr(&b));
    sl_buf_free(&b);
}

/* Appends v as Ruby's to_s would show it (join, convert to string); an object as JSON. */
static int put_text(struct sl_buf *b, const struct sl_value *v, const char *sep)
{
    char tmp[64];
    switch (v->type) {
    case SL_V_NULL:
        return 0;
    case SL_V_BOOL:
        return sl_buf_puts(b, v->u.b ? "true" : "false");
    case SL_V_INT:
        return sl_buf_printf(b, "%lld", (long long)v->u.i);
    case SL_V_DOUBLE:
        fmt_double(v->u.d, tmp, sizeof(tmp));
        return sl_buf_puts(b, tmp);
    case SL_V_STRING:
        return sl_buf_append(b, v->u.s.ptr, v->u.s.len);
    case SL_V_ARRAY:
        /* Array#join flattens nested arrays with the same separator. */
        for (size_t i = 0; i < v->u.a.len; i++) {
            int rc = (i ? sl_buf_puts(b, sep) : 0);
            if (rc == 0) {
                rc = put_text(b, &v->u.a.items[i], sep);
            }
            if (rc != 0) {
                return rc;
            }
        }
        return 0;
    case SL_V_OBJECT:
        return sl_json_write(b, v, NULL);
    }
    return 0;
}

/* Moves b's bytes into v as a string; b is left empty, its maximum kept. */
static void take_buf(struct sl_value *v, struct sl_buf *b)
{
    sl_buf_cstr(b);
    /* Shrunk to fit: the string lives as long as the event, and so would the slack. */
    char *s = sl_realloc(b->data, b->len + 1);
    sl_value_take_str(v, s, b->len);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- rename, update, replace, add_fields ---- */

static void do_rename(struct call *c)
{
    for (size_t i = 0; i < c->m->nrename; i++) {
        const struct pair *p = &c->m->rename[i];
        struct sl_value *src = sl_field_get(c->event, p->ref);
        if (!src) {
            continue;
        }
        /* Detach first: the destination may be the source's parent or child. */
        struct sl_value tmp = {0};
        sl_value_move(&tmp, src);
        sl_field_del(c->event, p->ref);
        struct sl_value *dst = sl_field_put(c->event, p->arg);
        if (dst) {
            sl_value_move(dst, &tmp);
        }
        sl_value_clear(&tmp);
    }
}

/* Renders t into c->a (reset first); false (and the event marked failed) when too long. */
static bool render(struct call *c, const struct sl_template *t)
{
    sl_buf_reset(&c->a);
    if (sl_template_render(t, c->event, &c->a) != 0) {
        c->failed = true;
        return false;
    }
    sl_buf_cstr(&c->a);
    return true;
}

/* The reference a setter's key names for this event: its source, or its rendering. */
static const char *setter_ref(struct call *c, const struct sl_template *ref)
{
    if (sl_template_is_static(ref)) {
        return sl_template_source(ref);
    }
    sl_buf_reset(&c->b);
    if (sl_template_render(ref, c->event, &c->b) != 0) {
        c->failed = true;
        return NULL;
    }
    return sl_buf_cstr(&c->b);
}

static void do_set(struct call *c, const struct setter *s, size_t n, bool only_existing)
{
    for (size_t i = 0; i < n; i++) {
        const char *ref = setter_ref(c, s[i].ref);
        if (!ref || (only_existing && !sl_field_get(c->event, ref))) {
            continue;
        }
        if (!render(c, s[i].value)) {
            continue;
        }
        /* NULL when a rendered key is not a valid reference: nothing to set. */
        struct sl_value *slot = sl_field_put(c->event, ref);
        if (slot) {
            take_buf(slot, &c->a);
        }
    }
}

/* ---- convert ---- */

static bool is_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' || ch == '\f' || ch == '\r';
}

/* Logstash's preparation of numeric text: strip both ends, drop thousands commas. */
static void numeric_text(struct call *c, const char *s, size_t n)
{
    while (n > 0 && is_ws(s[0])) {
        s++;
        n--;
    }
    while (n > 0 && is_ws(s[n - 1])) {
        n--;
    }
    sl_buf_reset(&c->b);
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ',') {
            sl_buf_putc(&c->b, s[i]);
        }
    }
    sl_buf_cstr(&c->b);
}

/* "0x1A", "-0x1a": true with the value. */
static bool parse_hex(const char *s, double *out)
{
    const char *p = s + (*s == '+' || *s == '-');
    if (p[0] != '0' || (p[1] != 'x' && p[1] != 'X') || !isxdigit((unsigned char)p[2])) {
        return false;
    }
    double v = 0;
    for (p += 2; isxdigit((unsigned char)*p); p++) {
        v = v * 16 + (isdigit((unsigned char)*p) ? *p - '0' : (tolower(*p) - 'a' + 10));
    }
    if (*p) {
        return false;
    }
    *out = *s == '-' ? -v : v;
    return true;
}

/* Ruby's Float(): the whole text a decimal number ("1.5", "-2", "1e3", ".5"). */
static bool parse_float(const char *s, double *out)
{
    const char *p = s + (*s == '+' || *s == '-');
    size_t digits = 0;
    while (isdigit((unsigned char)*p)) {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) {
            return false;  /* "1." is not a number to Ruby */
        }
        while (isdigit((unsigned char)*p)) {
            p++;
            digits++;
        }
    }
    if (digits == 0) {
        return false;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        p += *p == '+' || *p == '-';
        if (!isdigit((unsigned char)*p)) {
            return false;
        }
        while (isdigit((unsigned char)*p)) {
            p++;
        }
    }
    if (*p) {
        return false;
    }
    errno = 0;
    double v = strtod(s, NULL);
    if (errno == ERANGE && !isfinite(v)) {
        return false;
    }
    *out = v;
    return true;
}

static bool double_to_int(double d, int64_t *out)
{
    /* 2^63 is exact as a double; anything at or past it does not fit. */
    if (!isfinite(d) || d >= 9223372036854775808.0 || d < -9223372036854775808.0) {
        return false;
    }
    *out = (int64_t)d;  /* truncates toward zero, like Ruby's to_i */
    return true;
}

/*
 * Logstash's convert_integer for text: hex as hex, text with an 'e' through a
 * decimal parse (BigDecimal), anything else by Ruby's to_i, which reads the
 * leading integer ("12.7" -> 12, "12abc" -> 12). Where to_i would invent a 0
 * from text with no digits, this fails instead.
 */
static bool text_to_int(const char *s, int64_t *out)
{
    double d;
    if (parse_hex(s, &d)) {
        return double_to_int(d, out);
    }
    if (strchr(s, 'e')) {
        return parse_float(s, &d) && double_to_int(d, out);
    }
    const char *p = s + (*s == '+' || *s == '-');
    if (!isdigit((unsigned char)*p)) {
        return false;
    }
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE) {
        return false;
    }
    *out = v;
    return true;
}

static bool match_word(const char *s, const char *const *words)
{
    for (; *words; words++) {
        if (strcasecmp(s, *words) == 0) {
            return true;
        }
    }
    return false;
}

/* Converts one (non-object, non-null) value in place; false when it cannot be converted. */
static bool convert_one(struct call *c, struct sl_value *v, enum conv to)
{
    static const char *const yes[] = {"true", "t", "yes", "y", "1", "1.0", NULL};
    static const char *const no[] = {"false", "f", "no", "n", "0", "0.0", NULL};
    int64_t i;
    double d;
    switch (to) {
    case CONV_INTEGER:
        if (v->type == SL_V_BOOL) {
            sl_value_set_int(v, v->u.b ? 1 : 0);
        } else if (v->type == SL_V_DOUBLE) {
            if (!double_to_int(v->u.d, &i)) {
                return false;
            }
            sl_value_set_int(v, i);
        } else if (v->type == SL_V_STRING) {
            numeric_text(c, v->u.s.ptr, v->u.s.len);
            if (!text_to_int(c->b.data, &i)) {
                return false;
            }
            sl_value_set_int(v, i);
        } else if (v->type != SL_V_INT) {
            return false;
        }
        return true;
    case CONV_FLOAT:
        if (v->type == SL_V_BOOL) {
            sl_value_set_double(v, v->u.b ? 1.0 : 0.0);
        } else if (v->type == SL_V_INT) {
            sl_value_set_double(v, (double)v->u.i);
        } else if (v->type == SL_V_STRING) {
            numeric_text(c, v->u.s.ptr, v->u.s.len);
            if (!parse_hex(c->b.data, &d) && !parse_float(c->b.data, &d)) {
                return false;
            }
            sl_value_set_double(v, d);
        } else if (v->type != SL_V_DOUBLE) {
            return false;
        }
        return true;
    case CONV_BOOLEAN:
        if (v->type == SL_V_ARRAY) {
            return false;
        }
        sl_buf_reset(&c->b);
        put_text(&c->b, v, ",");
        sl_buf_cstr(&c->b);
        if (match_word(c->b.data, yes)) {
            sl_value_set_bool(v, true);
        } else if (c->b.len == 0 || match_word(c->b.data, no)) {
            sl_value_set_bool(v, false);
        }
        /* Anything else passes through unchanged, as in Logstash (not a failure). */
        return true;
    case CONV_STRING:
        if (v->type != SL_V_STRING) {
            sl_buf_reset(&c->b);
            put_text(&c->b, v, ",");
            take_buf(v, &c->b);
        }
        return true;
    }
    return false;
}

static void do_convert(struct call *c)
{
    for (size_t k = 0; k < c->m->nconvert; k++) {
        const struct convert *cv = &c->m->convert[k];
        struct sl_value *v = sl_field_get(c->event, cv->ref);
        if (!v || v->type == SL_V_NULL || v->type == SL_V_OBJECT) {
            continue;  /* Logstash leaves nil and hashes alone */
        }
        if (v->type != SL_V_ARRAY) {
            c->failed |= !convert_one(c, v, cv->to);
            continue;
        }
        for (size_t i = 0; i < v->u.a.len; i++) {
            struct sl_value *item = &v->u.a.items[i];
            if (item->type != SL_V_NULL) {
                c->failed |= !convert_one(c, item, cv->to);
            }
        }
    }
}

/* ---- gsub ---- */

static size_t utf8_len(unsigned char lead, size_t left)
{
    size_t n = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return n < left ? n : left;
}

/* Appends the replacement with Ruby's escapes: \0 \& whole match, \1..\9, \k<name>, \\. */
static int put_replacement(struct sl_buf *out, const char *repl, size_t rlen, OnigRegex re,
                           OnigRegion *reg, const char *s)
{
    int rc = 0;
    for (size_t i = 0; i < rlen && rc == 0; i++) {
        if (repl[i] != '\\' || i + 1 == rlen) {
            rc = sl_buf_putc(out, repl[i]);
            continue;
        }
        char e = repl[i + 1];
        int group = -1;
        size_t skip = 1;
        if (e >= '0' && e <= '9') {
            group = e - '0';
        } else if (e == '&') {
            group = 0;
        } else if (e == '\\') {
            rc = sl_buf_putc(out, '\\');
            i++;
            continue;
        } else if (e == 'k' && i + 2 < rlen && repl[i + 2] == '<') {
            const char *name = repl + i + 3;
            const char *close = memchr(name, '>', rlen - (i + 3));
            if (close) {
                group = onig_name_to_backref_number(re, (const OnigUChar *)name,
                                                    (const OnigUChar *)close, reg);
                skip = (size_t)(close - (repl + i));
                if (group < 0) {
                    group = -2;  /* unknown name: renders as nothing */
                }
            }
        }
        if (group == -1) {
            rc = sl_buf_putc(out, '\\');  /* not an escape: literal backslash */
            continue;
        }
        if (group >= 0 && group < reg->num_regs && reg->beg[group] >= 0) {
            rc = sl_buf_append(out, s + reg->beg[group],
                               (size_t)(reg->end[group] - reg->beg[group]));
        }
        i += skip;
    }
    return rc;
}

/* Replaces every match of g in s[0..n) into c->b. False on a limit or a match error. */
static bool gsub_str(struct call *c, const struct gsub *g, const char *s, size_t n,
                     const struct sl_buf *repl)
{
    const OnigUChar *str = (const OnigUChar *)s, *end = str + n;
    struct sl_buf *out = &c->b;
    size_t pos = 0, last = 0;
    int rc = 0;
    sl_buf_reset(out);
    while (pos <= n && rc == 0) {
        int r = onig_search_with_param(g->re, str, end, str + pos, end, c->region,
                                       ONIG_OPTION_NONE, c->mp);
        if (r == ONIG_MISMATCH) {
            break;
        }
        if (r < 0) {
            return false;  /* e.g. the retry limit: leave the value as it was */
        }
        size_t mb = (size_t)c->region->beg[0], me = (size_t)c->region->end[0];
        rc = sl_buf_append(out, s + last, mb - last);
        if (rc == 0) {
            rc = put_replacement(out, repl->data, repl->len, g->re, c->region, s);
        }
        last = me;
        pos = me;
        if (me == mb) {
            /* An empty match: copy one character and search after it, as Ruby does. */
            if (me >= n) {
                break;
            }
            size_t cl = utf8_len((unsigned char)s[me], n - me);
            if (rc == 0) {
                rc = sl_buf_append(out, s + me, cl);
            }
            last = pos = me + cl;
        }
    }
    if (rc == 0 && last < n) {
        rc = sl_buf_append(out, s + last, n - last);
    }
    return rc == 0;
}

static void gsub_value(struct call *c, const struct gsub *g, struct sl_value *v,
                       const struct sl_buf *repl)
{
    if (v->type != SL_V_STRING) {
        return;  /* only strings, and strings inside arrays, as in Logstash */
    }
    if (!gsub_str(c, g, v->u.s.ptr, v->u.s.len, repl)) {
        c->failed = true;
        return;
    }
    take_buf(v, &c->b);
}

static void do_gsub(struct call *c)
{
    for (size_t k = 0; k < c->m->ngsub; k++) {
        const struct gsub *g = &c->m->gsub[k];
        struct sl_value *v = sl_field_get(c->event, g->ref);
        if (!v || (v->type != SL_V_STRING && v->type != SL_V_ARRAY)) {
            continue;
        }
        /* The replacement may use %{field}: rendered once per event, before matching. */
        if (!render(c, g->repl)) {
            continue;
        }
        if (v->type == SL_V_STRING) {
            gsub_value(c, g, v, &c->a);
        } else {
            for (size_t i = 0; i < v->u.a.len; i++) {
                gsub_value(c, g, &v->u.a.items[i], &c->a);
            }
        }
    }
}

/* ---- uppercase, lowercase, strip ---- */

/* Decodes one UTF-8 sequence; 0 for an invalid one (the byte is then copied as is). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len = utf8_len(s[0], n);
    if (len == 1) {
        *cp = s[0];
        return s[0] < 0x80 ? 1 : 0;
    }
    if (len < (s[0] >= 0xF0 ? 4u : s[0] >= 0xE0 ? 3u : 2u)) {
        return 0;  /* truncated */
    }
    uint32_t v = s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

static int utf8_put(struct sl_buf *b, uint32_t cp)
{
    char e[4];
    size_t n;
    if (cp < 0x80) {
        e[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        e[0] = (char)(0xC0 | (cp >> 6));
        e[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        e[0] = (char)(0xE0 | (cp >> 12));
        e[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        e[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        e[0] = (char)(0xF0 | (cp >> 18));
        e[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        e[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        e[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return sl_buf_append(b, e, n);
}

/* Case-maps a string value in place: Unicode through the C.UTF-8 locale when the
 * system has it (Ruby's upcase is Unicode-aware), ASCII otherwise. */
static void recase_str(struct call *c, struct sl_value *v, bool upper)
{
    const unsigned char *s = (const unsigned char *)v->u.s.ptr;
    size_t n = v->u.s.len;
    locale_t loc = c->m->utf8;
    sl_buf_reset(&c->b);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_decode(s + i, n - i, &cp);
        if (len == 0) {
            sl_buf_putc(&c->b, (char)s[i]);
            i++;
            continue;
        }
        if (cp < 0x80 || !loc) {
            cp = cp < 0x80 ? (uint32_t)(upper ? toupper((int)cp) : tolower((int)cp)) : cp;
        } else {
            wint_t w = upper ? towupper_l((wint_t)cp, loc) : towlower_l((wint_t)cp, loc);
            cp = (uint32_t)w;
        }
        utf8_put(&c->b, cp);
        i += len;
    }
    take_buf(v, &c->b);
}

static void strip_str(struct sl_value *v)
{
    const char *s = v->u.s.ptr;
    size_t n = v->u.s.len, start = 0;
    while (start < n && is_ws(s[start])) {
        start++;
    }
    while (n > start && is_ws(s[n - 1])) {
        n--;
    }
    if (start > 0 || n < v->u.s.len) {
        sl_value_set_str(v, s + start, n - start);
    }
}

enum str_op { OP_UPPER, OP_LOWER, OP_STRIP };

static void str_op_one(struct call *c, struct sl_value *v, enum str_op op)
{
    if (v->type != SL_V_STRING) {
        return;
    }
    if (op == OP_STRIP) {
        strip_str(v);
    } else {
        recase_str(c, v, op == OP_UPPER);
    }
}

static void do_str_op(struct call *c, const struct strs *refs, enum str_op op)
{
    for (size_t k = 0; k < refs->n; k++) {
        struct sl_value *v = sl_field_get(c->event, refs->v[k]);
        if (!v) {
            continue;
        }
        if (v->type == SL_V_ARRAY) {
            for (size_t i = 0; i < v->u.a.len; i++) {
                str_op_one(c, &v->u.a.items[i], op);
            }
        } else {
            str_op_one(c, v, op);
        }
    }
}

/* ---- remove_fields, split, join, tags ---- */

static void do_remove(struct call *c)
{
    for (size_t k = 0; k < c->m->remove.n; k++) {
        const char *ref = setter_ref(c, c->m->remove.t[k]);
        if (ref) {
            sl_field_del(c->event, ref);
        }
    }
}

/* Ruby's String#split(sep): " " splits on runs of whitespace and ignores it at
 * both ends; any other separator splits on each occurrence; trailing empty
 * strings are dropped either way. */
static void split_str(struct sl_value *v, const char *sep)
{
    struct sl_value arr = {0};
    const char *s = v->u.s.ptr;
    size_t n = v->u.s.len, slen = strlen(sep);
    sl_value_set_array(&arr);
    if (strcmp(sep, " ") == 0) {
        size_t i = 0;
        while (i < n) {
            while (i < n && is_ws(s[i])) {
                i++;
            }
            size_t st = i;
            while (i < n && !is_ws(s[i])) {
                i++;
            }
            if (i > st) {
                sl_value_set_str(sl_arr_push(&arr), s + st, i - st);
            }
        }
    } else {
        size_t st = 0;
        for (;;) {
            const char *hit = slen <= n - st ? memmem(s + st, n - st, sep, slen) : NULL;
            size_t e = hit ? (size_t)(hit - s) : n;
            sl_value_set_str(sl_arr_push(&arr), s + st, e - st);
            if (!hit) {
                break;
            }
            st = e + slen;
        }
        while (arr.u.a.len > 0 && arr.u.a.items[arr.u.a.len - 1].u.s.len == 0) {
            sl_value_clear(&arr.u.a.items[--arr.u.a.len]);
        }
    }
    sl_value_move(v, &arr);
}

static void do_split(struct call *c)
{
    for (size_t k = 0; k < c->m->nsplit; k++) {
        struct sl_value *v = sl_field_get(c->event, c->m->split[k].ref);
        if (v && v->type == SL_V_STRING) {
            split_str(v, c->m->split[k].arg);
        }
    }
}

static void do_join(struct call *c)
{
    for (size_t k = 0; k < c->m->njoin; k++) {
        struct sl_value *v = sl_field_get(c->event, c->m->join[k].ref);
        if (!v || v->type != SL_V_ARRAY) {
            continue;
        }
        sl_buf_reset(&c->b);
        if (put_text(&c->b, v, c->m->join[k].arg) != 0) {
            c->failed = true;
            continue;
        }
        take_buf(v, &c->b);
    }
}

static void remove_tag(struct sl_value *event, const char *tag, size_t len)
{
    struct sl_value *tags = sl_obj_getc(event, "tags");
    if (!tags || tags->type != SL_V_ARRAY) {
        return;
    }
    size_t w = 0;
    for (size_t i = 0; i < tags->u.a.len; i++) {
        struct sl_value *t = &tags->u.a.items[i];
        if (t->type == SL_V_STRING && t->u.s.len == len && memcmp(t->u.s.ptr, tag, len) == 0) {
            sl_value_clear(t);
            continue;
        }
        tags->u.a.items[w++] = *t;
    }
    tags->u.a.len = w;
}

static void do_tags(struct call *c)
{
    for (size_t k = 0; k < c->m->add_tag.n; k++) {
        if (render(c, c->m->add_tag.t[k])) {
            sl_event_add_tag(c->event, c->a.data);
        }
    }
    for (size_t k = 0; k < c->m->remove_tag.n; k++) {
        if (render(c, c->m->remove_tag.t[k])) {
            remove_tag(c->event, c->a.data, c->a.len);
        }
    }
}

static int mutate_filter(void *inst, struct sl_value *event)
{
    const struct filter_mutate *m = inst;
    struct call c = {.m = m, .event = event};
    sl_buf_init(&c.a, MUTATE_MAX_VALUE);
    sl_buf_init(&c.b, MUTATE_MAX_VALUE);
    if (m->ngsub) {
        c.region = onig_region_new();
        c.mp = onig_new_match_param();
        onig_set_retry_limit_in_search_of_match_param(c.mp, GSUB_RETRY_LIMIT);
    }
    do_rename(&c);
    do_set(&c, m->update, m->nupdate, true);
    do_set(&c, m->replace, m->nreplace, false);
    do_convert(&c);
    do_gsub(&c);
    do_str_op(&c, &m->upper, OP_UPPER);
    do_str_op(&c, &m->lower, OP_LOWER);
    do_str_op(&c, &m->strip, OP_STRIP);
    do_remove(&c);
    do_split(&c);
    do_join(&c);
    do_set(&c, m->add, m->nadd, false);
    do_tags(&c);
    if (c.failed) {
        for (size_t i = 0; i < m->fail_tags.n; i++) {
            sl_event_add_tag(event, m->fail_tags.v[i]);
        }
    }
    if (c.region) {
        onig_region_free(c.region, 1);
        onig_free_match_param(c.mp);
    }
    sl_buf_free(&c.a);
    sl_buf_free(&c.b);
    return c.failed ? SL_EINVAL : SL_FILTER_KEEP;
}

/* ---- configuration ---- */

/* What a node is, for messages (config.c's wording). */
static const char *kind(const struct sl_cfg_node *n)
{
    if (n->type == SL_CFG_MAP) {
        return "a map";
    }
    if (n->type == SL_CFG_SEQ) {
        return "a list";
    }
    bool null = !n->quoted && (!*n->scalar || strcmp(n->scalar, "~") == 0 ||
                               strcasecmp(n->scalar, "null") == 0);
    return null ? "nothing" : "a string";
}

static bool is_null(const struct sl_cfg_node *n)
{
    return !n || (n->type == SL_CFG_SCALAR && strcmp(kind(n), "nothing") == 0);
}

static bool ref_ok(const char *ref)
{
    struct sl_fieldref r;
    int rc = sl_fieldref_init(&r, ref);
    sl_fieldref_free(&r);
    return rc == 0;
}

/* A ref option entry: records an error at n unless ref is a valid field reference. */
static bool check_ref(struct sl_cfg *cfg, const struct sl_cfg_node *n, const char *id,
                      const char *opt, const char *ref)
{
    if (ref_ok(ref)) {
        return true;
    }
    sl_cfg_error(cfg, n, "%s: option '%s': '%s' is not a valid field reference", id, opt, ref);
    return false;
}

/* Compiles a template, or records an error at n and returns NULL. */
static struct sl_template *tmpl(struct sl_cfg *cfg, const struct sl_cfg_node *n, const char *id,
                                const char *opt, const char *src)
{
    char err[160];
    struct sl_template *t = sl_template_new(src, err, sizeof(err));
    if (!t) {
        sl_cfg_error(cfg, n, "%s: option '%s': '%s': %s", id, opt, src, err);
    }
    return t;
}

/* The option's map node, or NULL when absent/null (an error when it is not a map). */
static struct sl_cfg_node *get_map(struct sl_cfg *cfg, struct sl_cfg_node *opts, const char *id,
                                   const char *opt)
{
    struct sl_cfg_node *n = sl_cfg_get(opts, opt);
    if (is_null(n)) {
        return NULL;
    }
    if (n->type != SL_CFG_MAP) {
        sl_cfg_error(cfg, n, "%s: option '%s' must be a map, got %s", id, opt, kind(n));
        return NULL;
    }
    return n;
}

/* The value of map entry i when it is a string; otherwise records an error. */
static const char *map_str(struct sl_cfg *cfg, struct sl_cfg_node *map, size_t i, const char *id,
                           const char *opt)
{
    struct sl_cfg_node *v = map->items[i];
    if (v->type != SL_CFG_SCALAR || is_null(v)) {
        sl_cfg_error(cfg, v, "%s: option '%s': value of '%s' must be a string, got %s", id, opt,
                     map->keys[i], kind(v));
        return NULL;
    }
    return v->scalar;
}

/* rename, split, join: {ref: string}; the value is a ref too for rename. */
static void get_pairs(struct sl_cfg *cfg, struct sl_cfg_node *opts, const char *id,
                      const char *opt, bool arg_is_ref, struct pair **out, size_t *nout)
{
    struct sl_cfg_node *map = get_map(cfg, opts, id, opt);
    if (!map) {
        return;
    }
    *out = sl_calloc(map->n ? map->n : 1, sizeof(**out));
    for (size_t i = 0; i < map->n; i++) {
        const char *arg = map_str(cfg, map, i, id, opt);
        bool ok = check_ref(cfg, map->key_nodes[i], id, opt, map->keys[i]) && arg;
        if (ok && arg_is_ref) {
            ok = check_ref(cfg, map->items[i], id, opt, arg);
        }
        if (ok && !arg_is_ref && !*arg) {
            sl_cfg_error(cfg, map->items[i], "%s: option '%s': separator of '%s' must not be empty",
                         id, opt, map->keys[i]);
            ok = false;
        }
        if (ok) {
            (*out)[*nout].ref = sl_strdup(map->keys[i]);
            (*out)[(*nout)++].arg = sl_strdup(arg);
        }
    }
}

/* update, replace, add_fields: {ref-template: value-template}. */
static void get_setters(struct sl_cfg *cfg, struct sl_cfg_node *opts, const char *id,
                        const char *opt, struct setter **out, size_t *nout)
{
    struct sl_cfg_node *map = get_map(cfg, opts, id, opt);
    if (!map) {
        return;
    }
    *out = sl_calloc(map->n ? map->n : 1, sizeof(**out));
    for (size_t i = 0; i < map->n; i++) {
        const char *val = map_str(cfg, map, i, id, opt);
        struct sl_template *k = tmpl(cfg, map->key_nodes[i], id, opt, map->keys[i]);
        struct sl_template *v = val ? tmpl(cfg, map->items[i], id, opt, val) : NULL;
        /* A key without %{} must be a valid reference now; a rendered one is checked per event. */
        if (k && sl_template_is_static(k) &&
            !check_ref(cfg, map->key_nodes[i], id, opt, map->keys[i])) {
            sl_template_free(k);
            k = NULL;
        }
        if (!k || !v) {
            sl_template_free(k);
            sl_template_free(v);
            continue;
        }
        (*out)[*nout].ref = k;
        (*out)[(*nout)++].value = v;
    }
}

/* The node of item i of a strlist option (a sequence, or a single scalar). */
static struct sl_cfg_node *list_item(struct sl_cfg_node *n, size_t i)
{
    return n->type == SL_CFG_SEQ ? n->items[i] : n;
}

/* uppercase, lowercase, strip: lists of refs. */
static void get_refs(struct sl_cfg *cfg, struct sl_cfg_node *opts, const char *id,
                     const char *opt, struct strs *out)
{
    struct sl_cfg_node *n = sl_cfg_get(opts, opt);
    if (sl_cfg_strlist(cfg, opts, id, opt, &out->v, &out->n) != 0) {
        return;
    }
    for (size_t i = 0; i < out->n; i++) {
        check_ref(cfg, list_item(n, i), id, opt, out->v[i]);
    }
}

/* remove_fields (refs that may hold %{}), add_tag, remove_tag: lists of templates. */
static void get_templates(struct sl_cfg *cfg, struct sl_cfg_node *opts, const char *id,
                          const char *opt, bool refs, struct list *out)
{
    struct sl_cfg_node *n = sl_cfg_get(opts, opt);
    char **v;
    size_t nv;
    if (sl_cfg_strlist(cfg, opts, id, opt, &v, &nv) != 0) {
        sl_cfg_strv_free(v);
        return;
    }
    out->t = sl_calloc(nv ? nv : 1, sizeof(*out->t));
    for (size_t i = 0; i < nv; i++) {
        struct sl_template *t = tmpl(cfg, list_item(n, i), id, opt, v[i]);
        if (t && refs && sl_template_is_static(t) && !check_ref(cfg, list_item(n, i), id, opt,
                                                                 v[i])) {
            sl_template_free(t);
            t = NULL;
        }
        if (t) {
            out->t[out->n++] = t;
        }
    }
    sl_cfg_strv_free(v);
}

static void get_convert(struct sl_cfg *cfg, struct sl_cfg_node *opts, const char *id,
                        struct filter_mutate *m)
{
    struct sl_cfg_node *map = get_map(cfg, opts, id, "convert");
    if (!map) {
        return;
    }
    m->convert = sl_calloc(map->n ? map->n : 1, sizeof(*m->convert));
    for (size_t i = 0; i < map->n; i++) {
        const char *type = map_str(cfg, map, i, id, "convert");
        bool ok = check_ref(cfg, map->key_nodes[i], id, "convert", map->keys[i]) && type;
        int to = -1;
        for (int k = 0; type && conv_names[k]; k++) {
            if (strcmp(type, conv_names[k]) == 0) {
                to = k;
            }
        }
        if (type && to < 0) {
            sl_cfg_error(cfg, map->items[i],
                         "%s: option 'convert': type of '%s' must be one of integer, float, "
                         "boolean, string, got '%s'", id, map->keys[i], type);
            ok = false;
        }
        if (ok) {
            m->convert[m->nconvert].ref = sl_strdup(map->keys[i]);
            m->convert[m->nconvert++].to = (enum conv)to;
        }
    }
}

static pthread_once_t onig_once = PTHREAD_ONCE_INIT;

static void onig_setup(void)
{
    OnigEncoding enc = ONIG_ENCODING_UTF8;
    onig_initialize(&enc, 1);  /* idempotent: lib/regex.c may have done it already */
}

/* gsub: a flat list [field, pattern, replacement, ...], Logstash's form. */
static void get_gsub(struct sl_cfg *cfg, struct sl_cfg_node *opts, const char *id,
                     struct filter_mutate *m)
{
    struct sl_cfg_node *n = sl_cfg_get(opts, "gsub");
    if (is_null(n)) {
        return;
    }
    if (n->type != SL_CFG_SEQ) {
        sl_cfg_error(cfg, n, "%s: option 'gsub' must be a list of field, pattern, replacement "
                     "triples, got %s", id, kind(n));
        return;
    }
    if (n->n % 3 != 0) {
        sl_cfg_error(cfg, n, "%s: option 'gsub' must be a list of field, pattern, replacement "
                     "triples, got %zu items", id, n->n);
        return;
    }
    for (size_t i = 0; i < n->n; i++) {
        if (n->items[i]->type != SL_CFG_SCALAR || is_null(n->items[i])) {
            sl_cfg_error(cfg, n->items[i], "%s: option 'gsub': item %zu must be a string, got %s",
                         id, i, kind(n->items[i]));
            return;
        }
    }
    pthread_once(&onig_once, onig_setup);
    m->gsub = sl_calloc(n->n / 3 + 1, sizeof(*m->gsub));
    for (size_t i = 0; i < n->n; i += 3) {
        const char *ref = n->items[i]->scalar, *pat = n->items[i + 1]->scalar;
        bool ok = check_ref(cfg, n->items[i], id, "gsub", ref);
        OnigRegex re = NULL;
        OnigErrorInfo einfo;
        /* Ruby syntax: Logstash patterns are Ruby (Joni) regular expressions. */
        int rc = onig_new(&re, (const OnigUChar *)pat, (const OnigUChar *)pat + strlen(pat),
                          ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_RUBY, &einfo);
        if (rc != ONIG_NORMAL) {
            OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
            onig_error_code_to_str(msg, rc, &einfo);
            sl_cfg_error(cfg, n->items[i + 1], "%s: option 'gsub': pattern '%s' does not compile: "
                         "%s", id, pat, (const char *)msg);
            re = NULL;
            ok = false;
        }
        struct sl_template *repl = tmpl(cfg, n->items[i + 2], id, "gsub", n->items[i + 2]->scalar);
        if (!ok || !repl) {
            if (re) {
                onig_free(re);
            }
            sl_template_free(repl);
            continue;
        }
        struct gsub *g = &m->gsub[m->ngsub++];
        g->ref = sl_strdup(ref);
        g->re = re;
        g->repl = repl;
    }
}

static void free_pairs(struct pair *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].ref);
        free(p[i].arg);
    }
    free(p);
}

static void free_setters(struct setter *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sl_template_free(s[i].ref);
        sl_template_free(s[i].value);
    }
    free(s);
}

static void free_list(struct list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        sl_template_free(l->t[i]);
    }
    free(l->t);
}

static void mutate_free(void *inst)
{
    struct filter_mutate *m = inst;
    if (!m) {
        return;
    }
    free_pairs(m->rename, m->nrename);
    free_setters(m->update, m->nupdate);
    free_setters(m->replace, m->nreplace);
    free_setters(m->add, m->nadd);
    for (size_t i = 0; i < m->nconvert; i++) {
        free(m->convert[i].ref);
    }
    free(m->convert);
    for (size_t i = 0; i < m->ngsub; i++) {
        free(m->gsub[i].ref);
        onig_free(m->gsub[i].re);
        sl_template_free(m->gsub[i].repl);
    }
    free(m->gsub);
    sl_cfg_strv_free(m->upper.v);
    sl_cfg_strv_free(m->lower.v);
    sl_cfg_strv_free(m->strip.v);
    free_list(&m->remove);
    free_pairs(m->split, m->nsplit);
    free_pairs(m->join, m->njoin);
    free_list(&m->add_tag);
    free_list(&m->remove_tag);
    sl_cfg_strv_free(m->fail_tags.v);
    if (m->utf8) {
        freelocale(m->utf8);
    }
    free(m);
}

static void *mutate_init(struct sl_cfg *cfg, struct sl_cfg_node *opts, struct sl_plugin_env *env)
{
    struct filter_mutate *m = sl_calloc(1, sizeof(*m));
    int errors = cfg->nerrors;
    const char *id = env->id;

    /* Read in the order they run, so errors come out in that order too. */
    get_pairs(cfg, opts, id, "rename", true, &m->rename, &m->nrename);
    get_setters(cfg, opts, id, "update", &m->update, &m->nupdate);
    get_setters(cfg, opts, id, "replace", &m->replace, &m->nreplace);
    get_convert(cfg, opts, id, m);
    get_gsub(cfg, opts, id, m);
    get_refs(cfg, opts, id, "uppercase", &m->upper);
    get_refs(cfg, opts, id, "lowercase", &m->lower);
    get_refs(cfg, opts, id, "strip", &m->strip);
    get_templates(cfg, opts, id, "remove_fields", true, &m->remove);
    get_pairs(cfg, opts, id, "split", false, &m->split, &m->nsplit);
    get_pairs(cfg, opts, id, "join", false, &m->join, &m->njoin);
    get_setters(cfg, opts, id, "add_fields", &m->add, &m->nadd);
    get_templates(cfg, opts, id, "add_tag", false, &m->add_tag);
    get_templates(cfg, opts, id, "remove_tag", false, &m->remove_tag);

    /* An explicit [] turns tagging off; absent (or null) means the default tag. */
    struct sl_cfg_node *t = sl_cfg_get(opts, "tag_on_failure");
    sl_cfg_strlist(cfg, opts, id, "tag_on_failure", &m->fail_tags.v, &m->fail_tags.n);
    if (m->fail_tags.n == 0 && !(t && t->type == SL_CFG_SEQ)) {
        sl_cfg_strv_free(m->fail_tags.v);
        m->fail_tags.v = sl_calloc(2, sizeof(char *));
        m->fail_tags.v[0] = sl_strdup("_mutate_error");
        m->fail_tags.n = 1;
    }
    sl_cfg_get(opts, "when");  /* evaluated by the core */
    sl_cfg_check_unknown(cfg, opts, id);
    if (cfg->nerrors != errors) {
        mutate_free(m);
        return NULL;
    }
    if (m->upper.n || m->lower.n) {
        /* Read-only once made, so the worker threads can share it. */
        m->utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    }
    return m;
}

const struct sl_plugin sl_plugin_filter_mutate = {
    .name = "mutate",
    .kind = SL_PLUGIN_FILTER,
    .init = mutate_init,
    .free = mutate_free,
    .filter = mutate_filter,
};
