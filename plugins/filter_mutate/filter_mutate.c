/*
 * filter_mutate.c - the `mutate` filter: renames, rewrites, converts and
 * removes fields, with Logstash's mutate semantics and its fixed order of
 * operations (rename, update, replace, convert, gsub, uppercase, lowercase,
 * strip, remove_fields, split, join, add_fields, add_tag, remove_tag), whatever
 * order the options are written in: mutate_filter() calls them in that order.
 *
 * The core reads the options through mutate_opts; init() compiles what they
 * name (field references checked, gsub patterns compiled, %{} templates
 * parsed). filter() only reads the instance, so one instance serves every
 * worker thread. Per-call state (Oniguruma regions, scratch buffers) lives on
 * the caller's stack.
 *
 * Not here: conditions and tag_on_failure (the core's), parsing (grok, kv, json).
 */
#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <oniguruma.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include "sluice/json.h"
#include "sluice/plugin.h"
#include "sluice/regex.h"
#include "sluice/template.h"

/* Backtracking steps one gsub search may take across the whole string: a
 * pathological pattern then fails (value kept, event tagged) instead of
 * stalling a worker. Oniguruma's own default bounds only each match attempt. */

/* Longest string an operation may produce: gsub or a template can multiply
 * the size of its input, and event data must not grow memory without bound. */
#define MUTATE_MAX_VALUE (16u * 1024 * 1024)

enum conv { CONV_INTEGER, CONV_FLOAT, CONV_BOOLEAN, CONV_STRING };
static const char *const conv_names[] = {"integer", "float", "boolean", "string", NULL};

/* update/replace/add_fields: both sides may hold %{} (Logstash renders add_field keys too). */
struct setter {
    struct sl_template *ref;
    struct sl_template *value;
};

struct gsub {
    const char *ref;  /* points into the gsub option */
    OnigRegex re;
    struct sl_template *repl;
};

struct filter_mutate {
    /* Options, in the order they run. */
    struct sl_strmap rename;           /* from -> to */
    struct sl_strmap update, replace;  /* ref (template) -> value (template) */
    struct sl_strmap convert;          /* ref -> one of conv_names */
    struct sl_strv gsub_opt;           /* ref, pattern, replacement, ref, ... */
    struct sl_fieldrefs upper, lower, strip;
    struct sl_strv remove;             /* refs (templates) */
    struct sl_strmap split, join;      /* ref -> separator */
    struct sl_strmap add;              /* add_fields: as update */
    struct sl_strv add_tag, remove_tag;  /* templates */

    /* Made by init, item by item parallel to the options above. */
    struct setter *update_t, *replace_t, *add_t;
    enum conv *conv;
    struct sl_fieldref *conv_ref;  /* convert's fields, compiled */
    struct sl_fieldref *remove_ref;  /* remove_fields without %{}, compiled (else empty) */
    struct gsub *gsub;
    size_t ngsub;
    struct sl_template **remove_t, **add_tag_t, **remove_tag_t;
    locale_t utf8;  /* for Unicode case mapping; (locale_t)0 -> ASCII only */
};

static const struct sl_opt mutate_opts[] = {
    {.name = "rename", .type = SL_OPT_MAP, .offset = offsetof(struct filter_mutate, rename),
     .doc = "`{old: new}` field references: moves each value (null too) to the new name"},
    {.name = "update", .type = SL_OPT_MAP, .offset = offsetof(struct filter_mutate, update),
     .doc = "`{field: template}`: sets the field to the rendered string, only if it exists"},
    {.name = "replace", .type = SL_OPT_MAP, .offset = offsetof(struct filter_mutate, replace),
     .doc = "`{field: template}`: sets the field to the rendered string, creating it if needed"},
    {.name = "convert", .type = SL_OPT_MAP, .offset = offsetof(struct filter_mutate, convert),
     .doc = "`{field: type}`: converts to integer, float, boolean or string (arrays item by item)"},
    /* Logstash's flat list of triples: the table reads strings, init() groups them. */
    {.name = "gsub", .type = SL_OPT_LIST, .offset = offsetof(struct filter_mutate, gsub_opt),
     .doc = "`[field, regex, replacement, ...]`: replaces every match (Ruby regex syntax)"},
    {.name = "uppercase", .type = SL_OPT_FIELDS, .offset = offsetof(struct filter_mutate, upper),
     .doc = "fields whose strings (or strings in arrays) are upper-cased"},
    {.name = "lowercase", .type = SL_OPT_FIELDS, .offset = offsetof(struct filter_mutate, lower),
     .doc = "fields whose strings (or strings in arrays) are lower-cased"},
    {.name = "strip", .type = SL_OPT_FIELDS, .offset = offsetof(struct filter_mutate, strip),
     .doc = "fields whose strings (or strings in arrays) lose whitespace at both ends"},
    {.name = "remove_fields", .type = SL_OPT_LIST, .alias = "remove_field",
     .offset = offsetof(struct filter_mutate, remove),
     .doc = "fields to remove; a name may hold `%{}` (rendered per event)"},
    {.name = "split", .type = SL_OPT_MAP, .offset = offsetof(struct filter_mutate, split),
     .doc = "`{field: separator}`: turns a string into an array, like Ruby's split"},
    {.name = "join", .type = SL_OPT_MAP, .offset = offsetof(struct filter_mutate, join),
     .doc = "`{field: separator}`: turns an array into a string, like Ruby's join"},
    {.name = "add_fields", .type = SL_OPT_MAP, .alias = "add_field",
     .offset = offsetof(struct filter_mutate, add),
     .doc = "`{field: template}`: sets each field (its name may hold `%{}`), replacing any value"},
    {.name = "add_tag", .type = SL_OPT_LIST, .offset = offsetof(struct filter_mutate, add_tag),
     .doc = "tags (templates) added to `tags` unless present"},
    {.name = "remove_tag", .type = SL_OPT_LIST,
     .offset = offsetof(struct filter_mutate, remove_tag),
     .doc = "tags (templates) removed from `tags`"},
    {0},
};

/* Per-call state: nothing here is shared between threads. */
struct call {
    const struct filter_mutate *m;
    struct sl_value *event;
    struct sl_buf a, b;  /* scratch */
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
    const struct sl_strmap *r = &c->m->rename;
    for (size_t i = 0; i < r->n; i++) {
        struct sl_value *src = sl_field_get(c->event, r->keys[i]);
        if (!src) {
            continue;
        }
        /* Detach first: the destination may be the source's parent or child. */
        struct sl_value tmp = {0};
        sl_value_move(&tmp, src);
        sl_field_del(c->event, r->keys[i]);
        struct sl_value *dst = sl_field_put(c->event, r->vals[i]);
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

/* A string of 1-18 ASCII digits, with an optional '-': the common case, which
 * needs none of text_to_int's cleaning and cannot overflow. */
static bool plain_int(const char *s, size_t n, int64_t *out)
{
    bool neg = n > 0 && s[0] == '-';
    size_t i = neg;
    if (n == i || n - i > 18) {
        return false;
    }
    int64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return true;
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
            if (plain_int(v->u.s.ptr, v->u.s.len, &i)) {
                sl_value_set_int(v, i);
                return true;
            }
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
    for (size_t k = 0; k < c->m->convert.n; k++) {
        enum conv to = c->m->conv[k];
        struct sl_value *v = sl_fieldref_get(&c->m->conv_ref[k], c->event);
        if (!v || v->type == SL_V_NULL || v->type == SL_V_OBJECT) {
            continue;  /* Logstash leaves nil and hashes alone */
        }
        if (v->type != SL_V_ARRAY) {
            c->failed |= !convert_one(c, v, to);
            continue;
        }
        for (size_t i = 0; i < v->u.a.len; i++) {
            struct sl_value *item = &v->u.a.items[i];
            if (item->type != SL_V_NULL) {
                c->failed |= !convert_one(c, item, to);
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
    struct sl_regex_scratch *t = sl_regex_scratch();
    onig_set_match_stack_limit_size_of_match_param(t->mp, SL_REGEX_STACK_LIMIT);
    size_t pos = 0, last = 0;
    int rc = 0;
    sl_buf_reset(out);
    while (pos <= n && rc == 0) {
        int r = sl_onig_search(g->re, str, end, str + pos, t->region, t->mp,
                               SL_REGEX_BUDGET_MS);
        if (r == ONIG_MISMATCH) {
            break;
        }
        if (r < 0) {
            return false;  /* out of its time budget: leave the value as it was */
        }
        size_t mb = (size_t)t->region->beg[0], me = (size_t)t->region->end[0];
        rc = sl_buf_append(out, s + last, mb - last);
        if (rc == 0) {
            rc = put_replacement(out, repl->data, repl->len, g->re, t->region, s);
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

static void do_str_op(struct call *c, const struct sl_fieldrefs *refs, enum str_op op)
{
    for (size_t k = 0; k < refs->n; k++) {
        struct sl_value *v = sl_fieldref_get(&refs->v[k], c->event);
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
        if (c->m->remove_ref[k].nsegs) {
            sl_fieldref_del(&c->m->remove_ref[k], c->event);
            continue;
        }
        const char *ref = setter_ref(c, c->m->remove_t[k]);
        if (ref) {
            sl_field_del(c->event, ref);
        }
    }
}

/*
 * What one split may create, at most: its values and their bytes. A string
 * of separators is cheap to send and each piece costs a whole value (a 10 MB
 * line of "a," made 5 million), so a split over max(SPLIT_BUDGET_MIN,
 * SPLIT_BUDGET_FACTOR x the string) fails the event (tagged, the string
 * kept) instead of growing. The pieces are counted before any is made.
 */
#define SPLIT_BUDGET_MIN (16u << 20)
#define SPLIT_BUDGET_FACTOR 4u

/* The cost of one piece of len bytes. */
static inline uint64_t piece_cost(size_t len)
{
    return sizeof(struct sl_value) + (uint64_t)len + 1;
}

/* The first sep[0..slen) in s[0..n), or NULL. memchr, not memmem: sanitizers
 * check memmem's whole haystack per call, which makes a split quadratic. */
static const char *find_sep(const char *s, size_t n, const char *sep, size_t slen)
{
    if (slen == 0) {
        return NULL;
    }
    const char *end = s + n;
    while ((size_t)(end - s) >= slen) {
        const char *p = memchr(s, sep[0], (size_t)(end - s) - (slen - 1));
        if (!p || memcmp(p + 1, sep + 1, slen - 1) == 0) {
            return p;
        }
        s = p + 1;
    }
    return NULL;
}

/*
 * Ruby's String#split(sep): " " splits on runs of whitespace and ignores it at
 * both ends; any other separator splits on each occurrence; trailing empty
 * strings are dropped either way. Walks the pieces of s[0..n): pushes the
 * first `keep` to arr when arr is not NULL; returns how many are kept (up to
 * the last non-empty one) and their cost in *cost.
 */
static size_t split_walk(const char *s, size_t n, const char *sep, size_t keep,
                         struct sl_value *arr, uint64_t *cost)
{
    size_t slen = strlen(sep), pieces = 0, kept = 0;
    uint64_t spent = 0;
    *cost = 0;
    bool ws = strcmp(sep, " ") == 0;
    size_t i = 0, st = 0;
    while (pieces < keep) {
        size_t e;
        bool last;
        if (ws) {
            while (i < n && is_ws(s[i])) {
                i++;
            }
            st = i;
            while (i < n && !is_ws(s[i])) {
                i++;
            }
            e = i;
            last = i >= n;
            if (e == st) {
                break;  /* only whitespace was left */
            }
        } else {
            const char *hit = find_sep(s + st, n - st, sep, slen);
            e = hit ? (size_t)(hit - s) : n;
            last = !hit;
        }
        pieces++;
        spent += piece_cost(e - st);
        if (arr) {
            sl_value_set_str(sl_arr_push(arr), s + st, e - st);
        }
        if (e > st) {
            kept = pieces;
            *cost = spent;
        }
        if (last) {
            break;
        }
        if (!ws) {
            st = e + slen;
        }
    }
    return kept;
}

/* Splits v in place; false when the split would pass its budget (v kept). */
static bool split_str(struct sl_value *v, const char *sep)
{
    const char *s = v->u.s.ptr;
    size_t n = v->u.s.len;
    uint64_t cost;
    size_t keep = split_walk(s, n, sep, SIZE_MAX, NULL, &cost);
    if (cost > SL_MAX((uint64_t)SPLIT_BUDGET_MIN, (uint64_t)n * SPLIT_BUDGET_FACTOR)) {
        return false;
    }
    struct sl_value arr = {0};
    sl_value_set_array(&arr);
    (void)split_walk(s, n, sep, keep, &arr, &cost);
    sl_value_move(v, &arr);
    return true;
}

static void do_split(struct call *c)
{
    const struct sl_strmap *sp = &c->m->split;
    for (size_t k = 0; k < sp->n; k++) {
        struct sl_value *v = sl_field_get(c->event, sp->keys[k]);
        if (v && v->type == SL_V_STRING && !split_str(v, sp->vals[k])) {
            c->failed = true;
        }
    }
}

static void do_join(struct call *c)
{
    const struct sl_strmap *j = &c->m->join;
    for (size_t k = 0; k < j->n; k++) {
        struct sl_value *v = sl_field_get(c->event, j->keys[k]);
        if (!v || v->type != SL_V_ARRAY) {
            continue;
        }
        sl_buf_reset(&c->b);
        if (put_text(&c->b, v, j->vals[k]) != 0) {
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
        if (render(c, c->m->add_tag_t[k])) {
            sl_event_add_tag(c->event, c->a.data);
        }
    }
    for (size_t k = 0; k < c->m->remove_tag.n; k++) {
        if (render(c, c->m->remove_tag_t[k])) {
            remove_tag(c->event, c->a.data, c->a.len);
        }
    }
}

/* Logstash's fixed order, whatever order the options were written in. */
static enum sl_filter_result mutate_filter(void *inst, struct sl_value *event)
{
    const struct filter_mutate *m = inst;
    struct call c = {.m = m, .event = event};
    sl_buf_init(&c.a, MUTATE_MAX_VALUE);
    sl_buf_init(&c.b, MUTATE_MAX_VALUE);
    do_rename(&c);
    do_set(&c, m->update_t, m->update.n, true);
    do_set(&c, m->replace_t, m->replace.n, false);
    do_convert(&c);
    do_gsub(&c);
    do_str_op(&c, &m->upper, OP_UPPER);
    do_str_op(&c, &m->lower, OP_LOWER);
    do_str_op(&c, &m->strip, OP_STRIP);
    do_remove(&c);
    do_split(&c);
    do_join(&c);
    do_set(&c, m->add_t, m->add.n, false);
    do_tags(&c);
    sl_buf_free(&c.a);
    sl_buf_free(&c.b);
    return c.failed ? SL_FILTER_FAIL : SL_FILTER_KEEP;
}

/* ---- init: what the table cannot check ---- */

/*
 * One entry of an option, so an error stands at the entry at fault rather
 * than at the whole option: the value of map entry key, or item index of a
 * list (key NULL). The core knows no position for a key itself, so an error
 * about a key stands at its value, on the same line; the message names the
 * text at fault either way.
 */
struct entry {
    const char *opt;
    const char *key;
    size_t index;
};

static struct entry map_entry(const char *opt, const char *key)
{
    return (struct entry){.opt = opt, .key = key};
}

static struct entry list_item(const char *opt, size_t index)
{
    return (struct entry){.opt = opt, .index = index};
}

static bool check_ref(struct sl_plugin_ctx *ctx, struct entry at, const char *ref)
{
    struct sl_fieldref r;
    int rc = sl_fieldref_init(&r, ref);
    sl_fieldref_free(&r);
    if (rc != 0) {
        sl_plugin_error_at(ctx, at.opt, at.key, at.index,
                           "option '%s': '%s' is not a valid field reference", at.opt, ref);
    }
    return rc == 0;
}

/* Compiles src; a ref (is_ref) without %{} must be valid now, a rendered one is
 * checked per event. NULL, with the error recorded, when it does not compile. */
static struct sl_template *compile(struct sl_plugin_ctx *ctx, struct entry at, const char *src,
                                   bool is_ref)
{
    char err[160];
    struct sl_template *t = sl_template_new(src, err, sizeof(err));
    if (!t) {
        sl_plugin_error_at(ctx, at.opt, at.key, at.index, "option '%s': '%s': %s", at.opt, src,
                           err);
    } else if (is_ref && sl_template_is_static(t) && !check_ref(ctx, at, src)) {
        sl_template_free(t);
        t = NULL;
    }
    return t;
}

/* rename {ref: ref}; split, join {ref: separator}. */
static bool check_pairs(struct sl_plugin_ctx *ctx, const char *opt, const struct sl_strmap *map,
                        bool arg_is_ref)
{
    bool ok = true;
    for (size_t i = 0; i < map->n; i++) {
        struct entry at = map_entry(opt, map->keys[i]);
        ok &= check_ref(ctx, at, map->keys[i]);
        if (arg_is_ref) {
            ok &= check_ref(ctx, at, map->vals[i]);
        } else if (!*map->vals[i]) {
            sl_plugin_error_at(ctx, opt, map->keys[i], 0,
                               "option '%s': separator of '%s' must not be empty", opt,
                               map->keys[i]);
            ok = false;
        }
    }
    return ok;
}

/* update, replace, add_fields: {ref template: value template}. */
static bool compile_setters(struct sl_plugin_ctx *ctx, const char *opt,
                            const struct sl_strmap *map, struct setter **out)
{
    bool ok = true;
    *out = sl_calloc(map->n + 1, sizeof(**out));
    for (size_t i = 0; i < map->n; i++) {
        struct entry at = map_entry(opt, map->keys[i]);
        (*out)[i].ref = compile(ctx, at, map->keys[i], true);
        (*out)[i].value = compile(ctx, at, map->vals[i], false);
        ok &= (*out)[i].ref && (*out)[i].value;
    }
    return ok;
}

/* remove_fields (refs that may hold %{}), add_tag, remove_tag. */
static bool compile_list(struct sl_plugin_ctx *ctx, const char *opt, const struct sl_strv *v,
                         bool refs, struct sl_template ***out)
{
    bool ok = true;
    *out = sl_calloc(v->n + 1, sizeof(**out));
    for (size_t i = 0; i < v->n; i++) {
        (*out)[i] = compile(ctx, list_item(opt, i), v->v[i], refs);
        ok &= (*out)[i] != NULL;
    }
    return ok;
}

static bool compile_convert(struct sl_plugin_ctx *ctx, struct filter_mutate *m)
{
    const struct sl_strmap *map = &m->convert;
    bool ok = true;
    m->conv = sl_calloc(map->n + 1, sizeof(*m->conv));
    for (size_t i = 0; i < map->n; i++) {
        int to = 0;
        while (conv_names[to] && strcmp(map->vals[i], conv_names[to]) != 0) {
            to++;
        }
        ok &= check_ref(ctx, map_entry("convert", map->keys[i]), map->keys[i]);
        if (!conv_names[to]) {
            sl_plugin_error_at(ctx, "convert", map->keys[i], 0, "option 'convert': type of '%s' "
                               "must be one of integer, float, boolean, string, got '%s'",
                               map->keys[i], map->vals[i]);
            ok = false;
        }
        m->conv[i] = (enum conv)to;
    }
    m->conv_ref = sl_calloc(map->n + 1, sizeof(*m->conv_ref));
    for (size_t i = 0; ok && i < map->n; i++) {
        ok &= sl_fieldref_init(&m->conv_ref[i], map->keys[i]) == 0;
    }
    return ok;
}

/* remove_fields entries without %{} need no rendering: compiled once. */
static void compile_removes(struct filter_mutate *m)
{
    m->remove_ref = sl_calloc(m->remove.n + 1, sizeof(*m->remove_ref));
    for (size_t i = 0; m->remove_t && i < m->remove.n; i++) {
        if (m->remove_t[i] && sl_template_is_static(m->remove_t[i])) {
            (void)sl_fieldref_init(&m->remove_ref[i], sl_template_source(m->remove_t[i]));
        }
    }
}

/* Compiles gsub item index with Ruby's syntax: Logstash patterns are Ruby (Joni) regular
 * expressions. */
static OnigRegex compile_regex(struct sl_plugin_ctx *ctx, const struct sl_strv *v, size_t index)
{
    const char *pat = v->v[index];
    OnigRegex re = NULL;
    OnigErrorInfo einfo;
    int rc = sl_onig_new(&re, pat, strlen(pat), ONIG_OPTION_NONE, ONIG_SYNTAX_RUBY, &einfo);
    if (rc != 0) {
        OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(msg, rc, &einfo);
        sl_plugin_error_at(ctx, "gsub", NULL, index,
                           "option 'gsub': pattern '%s' does not compile: %s", pat,
                           (const char *)msg);
        return NULL;
    }
    return re;
}

/* gsub: [field, pattern, replacement, ...] in threes. */
static bool compile_gsub(struct sl_plugin_ctx *ctx, struct filter_mutate *m)
{
    const struct sl_strv *v = &m->gsub_opt;
    if (v->n % 3 != 0) {
        /* At the first item of the incomplete triple: the ones before it are whole. */
        sl_plugin_error_at(ctx, "gsub", NULL, v->n - v->n % 3, "option 'gsub' must be a list of "
                           "field, pattern, replacement triples, got %zu item%s", v->n,
                           v->n == 1 ? "" : "s");
        return false;
    }
    bool ok = true;
    m->gsub = sl_calloc(v->n / 3 + 1, sizeof(*m->gsub));
    for (size_t i = 0; i < v->n; i += 3) {
        struct gsub *g = &m->gsub[m->ngsub++];
        g->ref = v->v[i];
        ok &= check_ref(ctx, list_item("gsub", i), g->ref);
        g->re = compile_regex(ctx, v, i + 1);
        g->repl = compile(ctx, list_item("gsub", i + 2), v->v[i + 2], false);
        ok &= g->re && g->repl;
    }
    return ok;
}

/* ---- what the filter touches (plugin.h) ---- */

static void touch_ref(struct sl_plugin_ctx *ctx, const char *text)
{
    struct sl_fieldref r;
    if (sl_fieldref_init(&r, text) == 0) {
        sl_filter_touches_field(ctx, &r);
    }
    sl_fieldref_free(&r);
}

/* A field named by a template: known only when the name is literal text. */
static void touch_named(struct sl_plugin_ctx *ctx, const struct sl_template *t)
{
    if (!sl_template_is_static(t)) {
        sl_filter_touches_all(ctx);
        return;
    }
    touch_ref(ctx, sl_template_source(t));
}

static void touch_setters(struct sl_plugin_ctx *ctx, const struct setter *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++) {
        touch_named(ctx, s[i].ref);
        sl_filter_touches_template(ctx, s[i].value);
    }
}

static void touch_map_keys(struct sl_plugin_ctx *ctx, const struct sl_strmap *map, bool vals)
{
    for (size_t i = 0; i < map->n; i++) {
        touch_ref(ctx, map->keys[i]);
        if (vals) {
            touch_ref(ctx, map->vals[i]);
        }
    }
}

static void touch_refs(struct sl_plugin_ctx *ctx, const struct sl_fieldrefs *r)
{
    for (size_t i = 0; i < r->n; i++) {
        sl_filter_touches_field(ctx, &r->v[i]);
    }
}

static void declare_touches(struct sl_plugin_ctx *ctx, const struct filter_mutate *m)
{
    sl_filter_touches(ctx, NULL, 0);
    touch_map_keys(ctx, &m->rename, true);
    touch_setters(ctx, m->update_t, m->update.n);
    touch_setters(ctx, m->replace_t, m->replace.n);
    touch_setters(ctx, m->add_t, m->add.n);
    touch_map_keys(ctx, &m->convert, false);
    for (size_t i = 0; i < m->ngsub; i++) {
        touch_ref(ctx, m->gsub[i].ref);
        sl_filter_touches_template(ctx, m->gsub[i].repl);
    }
    touch_refs(ctx, &m->upper);
    touch_refs(ctx, &m->lower);
    touch_refs(ctx, &m->strip);
    for (size_t i = 0; i < m->remove.n; i++) {
        touch_named(ctx, m->remove_t[i]);
    }
    touch_map_keys(ctx, &m->split, false);
    touch_map_keys(ctx, &m->join, false);
    if (m->add_tag.n || m->remove_tag.n) {
        sl_filter_touches(ctx, "tags", strlen("tags"));
    }
    for (size_t i = 0; i < m->add_tag.n; i++) {
        sl_filter_touches_template(ctx, m->add_tag_t[i]);
    }
    for (size_t i = 0; i < m->remove_tag.n; i++) {
        sl_filter_touches_template(ctx, m->remove_tag_t[i]);
    }
}

static int mutate_init(void *inst, struct sl_plugin_ctx *ctx)
{
    struct filter_mutate *m = inst;
    /* Each step runs whatever the others found, so one start reports every problem. */
    bool ok = check_pairs(ctx, "rename", &m->rename, true);
    ok &= compile_setters(ctx, "update", &m->update, &m->update_t);
    ok &= compile_setters(ctx, "replace", &m->replace, &m->replace_t);
    ok &= compile_convert(ctx, m);
    ok &= compile_gsub(ctx, m);
    ok &= compile_list(ctx, "remove_fields", &m->remove, true, &m->remove_t);
    compile_removes(m);
    ok &= check_pairs(ctx, "split", &m->split, false);
    ok &= check_pairs(ctx, "join", &m->join, false);
    ok &= compile_setters(ctx, "add_fields", &m->add, &m->add_t);
    ok &= compile_list(ctx, "add_tag", &m->add_tag, false, &m->add_tag_t);
    ok &= compile_list(ctx, "remove_tag", &m->remove_tag, false, &m->remove_tag_t);
    if (ok && (m->upper.n || m->lower.n)) {
        /* Read-only once made, so the worker threads can share it. */
        m->utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    }
    if (ok) {
        declare_touches(ctx, m);
    }
    return ok ? 0 : SL_EINVAL;
}

static void free_setters(struct setter *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++) {
        sl_template_free(s[i].ref);
        sl_template_free(s[i].value);
    }
    free(s);
}

static void free_list(struct sl_template **t, size_t n)
{
    for (size_t i = 0; t && i < n; i++) {
        sl_template_free(t[i]);
    }
    free(t);
}

/* Frees what init made (it may have stopped half-way); the core frees the options. */
static void mutate_fini(void *inst)
{
    struct filter_mutate *m = inst;
    free_setters(m->update_t, m->update.n);
    free_setters(m->replace_t, m->replace.n);
    free_setters(m->add_t, m->add.n);
    free(m->conv);
    for (size_t i = 0; m->conv_ref && i < m->convert.n; i++) {
        sl_fieldref_free(&m->conv_ref[i]);
    }
    free(m->conv_ref);
    for (size_t i = 0; m->remove_ref && i < m->remove.n; i++) {
        sl_fieldref_free(&m->remove_ref[i]);
    }
    free(m->remove_ref);
    for (size_t i = 0; i < m->ngsub; i++) {
        if (m->gsub[i].re) {
            onig_free(m->gsub[i].re);
        }
        sl_template_free(m->gsub[i].repl);
    }
    free(m->gsub);
    free_list(m->remove_t, m->remove.n);
    free_list(m->add_tag_t, m->add_tag.n);
    free_list(m->remove_tag_t, m->remove_tag.n);
    if (m->utf8) {
        freelocale(m->utf8);
    }
}

const struct sl_plugin sl_plugin_filter_mutate = {
    .name = "mutate",
    .kind = SL_PLUGIN_FILTER,
    .summary = "renames, rewrites, converts and removes fields, in Logstash's fixed order",
    .options = mutate_opts,
    .size = sizeof(struct filter_mutate),
    .failure_tag = "_mutate_error",
    .init = mutate_init,
    .fini = mutate_fini,
    .filter = mutate_filter,
};
