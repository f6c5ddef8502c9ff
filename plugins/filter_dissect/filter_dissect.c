/*
 * filter_dissect.c - the `dissect` filter: splits a text field on the literal
 * delimiters of a pattern ("%{ts} %{+ts} %{host} %{prog}[%{pid}]: %{msg}") and
 * sets the pieces as fields, with Logstash's dissect semantics: normal, skip
 * (%{} %{?name}), append (%{+name}, %{+name/2}) and indirect (%{&name}) fields,
 * right padding (%{name->}), then int/float conversions (convert_datatype).
 *
 * init() compiles every pattern once. filter() only reads the instance: it
 * scans a source into spans kept on the stack, and writes nothing unless the
 * whole pattern matched, so a line that does not match leaves the event as it
 * was. The only memory it takes is that of the values it writes.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/plugin.h"

/* Fields one pattern may hold: the spans of a scan live on a worker's stack. */
#define DISSECT_MAX_FIELDS 128

enum dkind { DK_SKIP, DK_NORMAL, DK_APPEND, DK_INDIRECT };

struct dfield {
    enum dkind kind;
    char *name;               /* without prefix and suffix; "" for %{} */
    struct sl_fieldref ref;   /* NORMAL, APPEND: the target; INDIRECT: where the key may be */
    const char *delim;        /* the delimiter after it (into the option); NULL: none */
    size_t delim_len;
    const char *join;         /* APPEND: put before its value (the delimiter before it, or " ") */
    size_t join_len;
    unsigned order;           /* APPEND: the /N modifier (0 when absent) */
    bool pad;                 /* "->": repeats of the delimiter after it are padding */
    int key;                  /* INDIRECT: the pattern field named like the key, or -1 */
};

/* The append fields of one target, in the order their values are joined. */
struct group {
    size_t *idx;
    size_t n;
};

struct dissector {
    struct sl_fieldref source;
    const char *lead;         /* text before the first field, matched at the start */
    size_t lead_len;
    struct dfield *f;         /* in pattern order */
    size_t n;
    struct group *g;          /* in order of first appearance */
    size_t ng;
};

struct conversion {
    struct sl_fieldref ref;
    bool to_float;
    char *tag_null;           /* _dataconversionnullvalue_<field>_<type> */
    char *tag_bad;            /* _dataconversionuncoercible_<field>_<type> */
};

struct filter_dissect {
    struct sl_strmap mapping;   /* source field -> pattern */
    struct sl_strmap convert;   /* field -> int | float */

    /* Made by init. */
    struct dissector *d;
    size_t nd;
    struct conversion *conv;
    size_t nconv;
};

static const struct sl_opt dissect_opts[] = {
    {.name = "mapping", .type = SL_OPT_MAP, .offset = offsetof(struct filter_dissect, mapping),
     .doc = "`{field: pattern}`: dissects each field's text with its pattern, in file order"},
    {.name = "convert_datatype", .type = SL_OPT_MAP,
     .offset = offsetof(struct filter_dissect, convert),
     .doc = "`{field: int|float}`: converts fields after every mapping matched"},
    {0},
};

/* ---- scanning ---- */

struct span {
    size_t off, len;
};

/*
 * Finds every field of d in s[0..len), left to right: each field ends at the
 * first occurrence of the delimiter after it, the last one (without a
 * trailing delimiter) takes the rest. Text after a trailing delimiter is
 * ignored, as in Logstash. false when a delimiter is missing.
 */
static bool scan(const struct dissector *d, const char *s, size_t len, struct span *sp)
{
    size_t at = 0;
    if (d->lead_len) {
        if (len < d->lead_len || memcmp(s, d->lead, d->lead_len) != 0) {
            return false;
        }
        at = d->lead_len;
    }
    for (size_t i = 0; i < d->n; i++) {
        const struct dfield *f = &d->f[i];
        if (!f->delim_len) {
            sp[i] = (struct span){at, len - at};
            return true;
        }
        const char *hit = memmem(s + at, len - at, f->delim, f->delim_len);
        if (!hit) {
            return false;
        }
        size_t end = (size_t)(hit - s);
        sp[i] = (struct span){at, end - at};
        at = end + f->delim_len;
        while (f->pad && len - at >= f->delim_len && memcmp(s + at, f->delim, f->delim_len) == 0) {
            at += f->delim_len;
        }
    }
    return true;
}

/* ---- writing ---- */

static bool refs_equal(const struct sl_fieldref *a, const struct sl_fieldref *b)
{
    if (a->nsegs != b->nsegs) {
        return false;
    }
    for (size_t i = 0; i < a->nsegs; i++) {
        if (a->segs[i].len != b->segs[i].len ||
            memcmp(a->segs[i].name, b->segs[i].name, a->segs[i].len) != 0) {
            return false;
        }
    }
    return true;
}

/* What one mapping works on while it writes. */
struct run {
    const struct dissector *d;
    struct sl_value *event;
    struct sl_value src;      /* the source, held aside (see dissect_one) */
    const struct span *sp;
};

static const char *at_span(const struct run *r, size_t i)
{
    return r->src.u.s.ptr + r->sp[i].off;
}

/* The value at ref now; the source reads as itself while it is held aside. */
static const struct sl_value *current(const struct run *r, const struct sl_fieldref *ref)
{
    const struct sl_value *v = sl_fieldref_get(ref, r->event);
    if (v && v->type == SL_V_NULL && refs_equal(ref, &r->d->source)) {
        return &r->src;
    }
    return v;
}

/* A scalar as text (what Logstash's to_s shows); false for null, arrays and objects. */
static bool scalar_text(const struct sl_value *v, char *tmp, size_t tmplen, const char **p,
                        size_t *n)
{
    int k;
    switch (v->type) {
    case SL_V_STRING:
        *p = v->u.s.ptr;
        *n = v->u.s.len;
        return true;
    case SL_V_BOOL:
        *p = v->u.b ? "true" : "false";
        *n = strlen(*p);
        return true;
    case SL_V_INT:
        k = snprintf(tmp, tmplen, "%lld", (long long)v->u.i);
        break;
    case SL_V_DOUBLE:
        /* The shortest digits that read back exactly, as the JSON writer shows them. */
        for (int prec = 15;; prec++) {
            k = snprintf(tmp, tmplen, "%.*g", prec, v->u.d);
            if (prec == 17 || strtod(tmp, NULL) == v->u.d) {
                break;
            }
        }
        break;
    default:
        return false;
    }
    if (k < 0 || (size_t)k >= tmplen) {
        return false;
    }
    *p = tmp;
    *n = (size_t)k;
    return true;
}

static void write_normals(const struct run *r)
{
    const struct dissector *d = r->d;
    for (size_t i = 0; i < d->n; i++) {
        if (d->f[i].kind == DK_NORMAL) {
            struct sl_value *slot = sl_fieldref_put(&d->f[i].ref, r->event);
            if (slot) {
                sl_value_set_str(slot, at_span(r, i), r->sp[i].len);
            }
        }
    }
}

/*
 * One append target: its values joined, each after its join text, onto what
 * the target holds (a normal field of the pattern, or the event before), as
 * Logstash does. The result is built in one allocation: it is the new value.
 */
static void write_group(const struct run *r, const struct group *g)
{
    const struct dissector *d = r->d;
    const struct sl_fieldref *ref = &d->f[g->idx[0]].ref;
    char tmp[48];
    const char *base = NULL;
    size_t nbase = 0;
    const struct sl_value *old = current(r, ref);
    bool has_base = old && scalar_text(old, tmp, sizeof(tmp), &base, &nbase);
    size_t total = nbase;
    for (size_t k = 0; k < g->n; k++) {
        const struct dfield *f = &d->f[g->idx[k]];
        total += (has_base || k ? f->join_len : 0) + r->sp[g->idx[k]].len;
    }
    char *buf = sl_malloc(total + 1);
    size_t at = 0;
    if (has_base) {
        memcpy(buf, base, nbase);
        at = nbase;
    }
    for (size_t k = 0; k < g->n; k++) {
        size_t i = g->idx[k];
        const struct dfield *f = &d->f[i];
        if (has_base || k) {
            memcpy(buf + at, f->join, f->join_len);
            at += f->join_len;
        }
        memcpy(buf + at, at_span(r, i), r->sp[i].len);
        at += r->sp[i].len;
    }
    buf[at] = '\0';
    struct sl_value *slot = sl_fieldref_put(ref, r->event);
    if (slot) {
        sl_value_take_str(slot, buf, at);
    } else {
        free(buf);
    }
}

/*
 * %{&name}: the value goes to the field named by the value of name - the
 * event's field name if it has one (written by this pattern or there
 * before), else the pattern's field called name (a skip field, typically).
 * The name is one literal top-level key, as kv and json write keys: text
 * from the line cannot reach into nested fields. An empty name writes nothing.
 */
static void write_indirect(const struct run *r, size_t i)
{
    const struct dfield *f = &r->d->f[i];
    char tmp[48];
    const char *key = NULL;
    size_t klen = 0;
    const struct sl_value *v = current(r, &f->ref);
    if (v) {
        if (!scalar_text(v, tmp, sizeof(tmp), &key, &klen)) {
            return;
        }
    } else if (f->key >= 0) {
        key = at_span(r, (size_t)f->key);
        klen = r->sp[f->key].len;
    }
    if (!klen) {
        return;
    }
    /* key may point into the event: sl_obj_put copies it before anything moves. */
    struct sl_value *slot = sl_obj_put(r->event, key, klen);
    sl_value_set_str(slot, at_span(r, i), r->sp[i].len);
}

enum outcome { DISSECT_ABSENT, DISSECT_MATCHED, DISSECT_FAILED };

/*
 * One mapping: scan first, write only on a match. While it writes, the
 * source string is held aside in r.src, since a pattern may overwrite the
 * field it reads ("%{message} ...") while the spans still point into it; it
 * goes back unless a write put something else there.
 */
static enum outcome dissect_one(const struct dissector *d, struct sl_value *event)
{
    struct sl_value *slot = sl_fieldref_get(&d->source, event);
    if (!slot) {
        return DISSECT_ABSENT;  /* as in Logstash: nothing to dissect, no tag */
    }
    /* Logstash fails on an empty text too. */
    if (slot->type != SL_V_STRING || slot->u.s.len == 0) {
        return DISSECT_FAILED;
    }
    struct span sp[DISSECT_MAX_FIELDS];
    if (!scan(d, slot->u.s.ptr, slot->u.s.len, sp)) {
        return DISSECT_FAILED;
    }
    struct run r = {.d = d, .event = event, .sp = sp};
    sl_value_move(&r.src, slot);
    /* Logstash's order: normal fields, then appends (onto them), then indirect ones. */
    write_normals(&r);
    for (size_t k = 0; k < d->ng; k++) {
        write_group(&r, &d->g[k]);
    }
    for (size_t i = 0; i < d->n; i++) {
        if (d->f[i].kind == DK_INDIRECT) {
            write_indirect(&r, i);
        }
    }
    slot = sl_fieldref_get(&d->source, event);
    if (slot && slot->type == SL_V_NULL) {
        sl_value_move(slot, &r.src);
    }
    sl_value_clear(&r.src);  /* a no-op once moved back */
    return DISSECT_MATCHED;
}

/* ---- convert_datatype ---- */

/*
 * Logstash reads the text as a Java BigDecimal: [+-] digits [. digits]
 * [e [+-] digits], a point with digits on either side; no spaces, no hex,
 * no inf or nan.
 */
static bool is_decimal(const char *s, size_t len, bool *integral)
{
    size_t i = 0, digits = 0;
    *integral = true;
    if (i < len && (s[i] == '+' || s[i] == '-')) {
        i++;
    }
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        digits++;
    }
    if (i < len && s[i] == '.') {
        *integral = false;
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            digits++;
        }
    }
    if (!digits) {
        return false;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        *integral = false;
        size_t exp = 0;
        if (++i < len && (s[i] == '+' || s[i] == '-')) {
            i++;
        }
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            exp++;
        }
        if (!exp) {
            return false;
        }
    }
    return i == len;
}

/* Truncates toward zero (BigDecimal.toBigInteger); false when it leaves int64. */
static bool double_to_int(double d, int64_t *out)
{
    double t = trunc(d);
    if (!(t >= -9223372036854775808.0 && t < 9223372036854775808.0)) {
        return false;
    }
    *out = (int64_t)t;
    return true;
}

/* Converts v in place; false when it cannot be (it is then left as it was). */
static bool convert_value(struct sl_value *v, bool to_float)
{
    int64_t i;
    switch (v->type) {
    case SL_V_INT:
        if (to_float) {
            sl_value_set_double(v, (double)v->u.i);
        }
        return true;
    case SL_V_DOUBLE:
        if (!to_float) {
            if (!double_to_int(v->u.d, &i)) {
                return false;
            }
            sl_value_set_int(v, i);
        }
        return true;
    case SL_V_STRING:
        break;
    default:
        return false;
    }
    bool integral;
    if (!is_decimal(v->u.s.ptr, v->u.s.len, &integral)) {
        return false;
    }
    /* Strings are NUL-terminated, and the grammar above is all strtod will read. */
    if (!to_float && integral) {
        errno = 0;
        long long ll = strtoll(v->u.s.ptr, NULL, 10);
        if (errno == ERANGE) {
            return false;
        }
        sl_value_set_int(v, (int64_t)ll);
        return true;
    }
    double d = strtod(v->u.s.ptr, NULL);
    if (to_float) {
        if (!isfinite(d)) {
            return false;  /* JSON has no infinity */
        }
        sl_value_set_double(v, d);
        return true;
    }
    if (!double_to_int(d, &i)) {
        return false;
    }
    sl_value_set_int(v, i);
    return true;
}

/* Runs every conversion; false when one of them tagged the event. */
static bool convert_all(const struct filter_dissect *fd, struct sl_value *event)
{
    bool ok = true;
    for (size_t i = 0; i < fd->nconv; i++) {
        const struct conversion *c = &fd->conv[i];
        struct sl_value *v = sl_fieldref_get(&c->ref, event);
        if (!v || v->type == SL_V_NULL) {
            sl_event_add_tag(event, c->tag_null);
            ok = false;
        } else if (!convert_value(v, c->to_float)) {
            sl_event_add_tag(event, c->tag_bad);
            ok = false;
        }
    }
    return ok;
}

/*
 * Every mapping runs, in file order, so a later one can dissect what an
 * earlier one wrote; one that fails writes nothing. Conversions follow only
 * when none failed: a failed event keeps its fields as they were.
 */
static enum sl_filter_result dissect_filter(void *inst, struct sl_value *event)
{
    const struct filter_dissect *fd = inst;
    bool failed = false;
    for (size_t i = 0; i < fd->nd; i++) {
        failed |= dissect_one(&fd->d[i], event) == DISSECT_FAILED;
    }
    if (failed) {
        return SL_FILTER_FAIL;
    }
    /* A conversion failure carries its own tags (as in Logstash), not tag_on_failure. */
    return convert_all(fd, event) ? SL_FILTER_KEEP : SL_FILTER_FAIL_TAGGED;
}

/* ---- compiling patterns ---- */

struct compile {
    struct sl_plugin_ctx *ctx;
    const char *source;       /* the mapping's key, for messages */
    bool ok;
};

static void pattern_error(struct compile *c, const char *fmt, ...) SL_PRINTF(2, 3);
static void pattern_error(struct compile *c, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sl_plugin_error_at(c->ctx, "mapping", c->source, 0,
                       "option 'mapping': the pattern for '%s': %s", c->source, msg);
    c->ok = false;
}

/* "/N" at the end of name (N: 1 to 9 digits): the append order. Cuts it off. */
static bool take_order(char *name, unsigned *order)
{
    char *slash = strrchr(name, '/');
    if (!slash || slash == name) {
        return false;
    }
    size_t n = strlen(slash + 1);
    if (n == 0 || n > 9 || strspn(slash + 1, "0123456789") != n) {
        return false;
    }
    *order = (unsigned)strtoul(slash + 1, NULL, 10);
    *slash = '\0';
    return true;
}

/* The text between %{ and }: [prefix] name [/N] [->]. */
static void parse_field(struct compile *c, const char *text, size_t len, struct dfield *f)
{
    int shown = (int)len;  /* the field as written, for messages */
    f->key = -1;
    if (len >= 2 && memcmp(text + len - 2, "->", 2) == 0) {
        f->pad = true;
        len -= 2;
    }
    size_t skip = 0;
    f->kind = DK_NORMAL;
    if (len == 0 || text[0] == '?' || text[0] == '*') {
        /* %{*key} is the key half of Elasticsearch's %{*key} %{&key}: a named skip here. */
        f->kind = DK_SKIP;
        skip = len ? 1 : 0;
    } else if (len >= 2 && (memcmp(text, "+&", 2) == 0 || memcmp(text, "&+", 2) == 0)) {
        pattern_error(c, "'%%{%.*s}': a field cannot be both append (+) and indirect (&)",
                      shown, text);
        return;
    } else if (text[0] == '+' || text[0] == '&') {
        f->kind = text[0] == '+' ? DK_APPEND : DK_INDIRECT;
        skip = 1;
    }
    f->name = sl_malloc(len - skip + 1);
    memcpy(f->name, text + skip, len - skip);
    f->name[len - skip] = '\0';
    unsigned order = 0;
    if (take_order(f->name, &order)) {
        if (f->kind != DK_APPEND) {
            pattern_error(c, "'%%{%.*s}': an order (/%u) applies to append fields only",
                          shown, text, order);
            return;
        }
        f->order = order;
    }
    if (f->kind == DK_SKIP) {
        return;
    }
    if (!*f->name) {
        pattern_error(c, "'%%{%.*s}': '%c' needs a field name after it", shown, text, text[0]);
        return;
    }
    if (sl_fieldref_init(&f->ref, f->name) != 0) {
        pattern_error(c, "'%%{%.*s}': '%s' is not a valid field reference", shown, text, f->name);
    }
}

/* Splits p into the leading text, then fields each with the delimiter after it. */
static void split_pattern(struct compile *c, const char *p, struct dissector *d)
{
    size_t nmax = 0;
    for (const char *q = strstr(p, "%{"); q; q = strstr(q + 2, "%{")) {
        nmax++;
    }
    if (nmax == 0) {
        pattern_error(c, "no %%{} field");
        return;
    }
    if (nmax > DISSECT_MAX_FIELDS) {
        pattern_error(c, "more than %d fields", DISSECT_MAX_FIELDS);
        return;
    }
    d->f = sl_calloc(nmax, sizeof(*d->f));
    const char *open = strstr(p, "%{");
    d->lead = p;
    d->lead_len = (size_t)(open - p);
    while (open && c->ok) {
        const char *close = strchr(open + 2, '}');
        if (!close) {
            pattern_error(c, "'%.24s' has no closing '}'", open);
            return;
        }
        const char *nested = strstr(open + 2, "%{");
        if (nested && nested < close) {
            pattern_error(c, "'%.*s' opens a field inside a field", (int)(close + 1 - open), open);
            return;
        }
        struct dfield *f = &d->f[d->n++];
        parse_field(c, open + 2, (size_t)(close - open - 2), f);
        const char *next = strstr(close + 1, "%{");
        f->delim = close + 1;
        f->delim_len = next ? (size_t)(next - f->delim) : strlen(f->delim);
        if (next && !f->delim_len) {
            pattern_error(c, "'%.*s' needs a delimiter before the next field",
                          (int)(close + 1 - open), open);
            return;
        }
        open = next;
    }
}

/* Join texts, indirect keys, and the append groups. */
static void link_fields(struct dissector *d)
{
    for (size_t i = 0; i < d->n; i++) {
        struct dfield *f = &d->f[i];
        /* The delimiter before the field; Logstash joins with a space when there is none. */
        f->join = i ? d->f[i - 1].delim : d->lead;
        f->join_len = i ? d->f[i - 1].delim_len : d->lead_len;
        if (!f->join_len) {
            f->join = " ";
            f->join_len = 1;
        }
        for (size_t j = 0; f->kind == DK_INDIRECT && j < d->n && f->key < 0; j++) {
            if (j != i && d->f[j].kind != DK_INDIRECT && *d->f[j].name &&
                strcmp(d->f[j].name, f->name) == 0) {
                f->key = (int)j;
            }
        }
    }
    d->g = sl_calloc(d->n, sizeof(*d->g));
    for (size_t i = 0; i < d->n; i++) {
        if (d->f[i].kind != DK_APPEND) {
            continue;
        }
        struct group *g = NULL;
        for (size_t k = 0; k < d->ng && !g; k++) {
            if (refs_equal(&d->f[d->g[k].idx[0]].ref, &d->f[i].ref)) {
                g = &d->g[k];
            }
        }
        if (!g) {
            g = &d->g[d->ng++];
            g->idx = sl_calloc(d->n, sizeof(*g->idx));
        }
        /* Stable insertion by order: without /N, fields join in pattern order. */
        size_t at = g->n;
        while (at > 0 && d->f[g->idx[at - 1]].order > d->f[i].order) {
            g->idx[at] = g->idx[at - 1];
            at--;
        }
        g->idx[at] = i;
        g->n++;
    }
}

static bool compile_mapping(struct sl_plugin_ctx *ctx, const char *source, const char *pattern,
                            struct dissector *d)
{
    struct compile c = {.ctx = ctx, .source = source, .ok = true};
    if (sl_fieldref_init(&d->source, source) != 0) {
        sl_plugin_error_at(ctx, "mapping", source, 0,
                           "option 'mapping': '%s' is not a valid field reference", source);
        c.ok = false;
    }
    if (!*pattern) {
        pattern_error(&c, "empty");
        return false;
    }
    split_pattern(&c, pattern, d);
    if (c.ok) {
        link_fields(d);
    }
    return c.ok;
}

static bool compile_convert(struct sl_plugin_ctx *ctx, struct filter_dissect *fd)
{
    const struct sl_strmap *map = &fd->convert;
    bool ok = true;
    fd->conv = sl_calloc(map->n + 1, sizeof(*fd->conv));
    for (size_t i = 0; i < map->n; i++) {
        struct conversion *c = &fd->conv[fd->nconv++];
        const char *field = map->keys[i], *type = map->vals[i];
        if (sl_fieldref_init(&c->ref, field) != 0) {
            sl_plugin_error_at(ctx, "convert_datatype", field, 0,
                               "option 'convert_datatype': '%s' is not a valid field reference",
                               field);
            ok = false;
        }
        if (strcmp(type, "int") != 0 && strcmp(type, "float") != 0) {
            sl_plugin_error_at(ctx, "convert_datatype", field, 0,
                               "option 'convert_datatype': type of '%s' must be int or float, "
                               "got '%s'", field, type);
            ok = false;
            continue;
        }
        c->to_float = type[0] == 'f';
        size_t n = strlen(field) + strlen(type) + 32;
        c->tag_null = sl_malloc(n);
        c->tag_bad = sl_malloc(n);
        snprintf(c->tag_null, n, "_dataconversionnullvalue_%s_%s", field, type);
        snprintf(c->tag_bad, n, "_dataconversionuncoercible_%s_%s", field, type);
    }
    return ok;
}

/* Sources, targets, converted fields and tags; an indirect field names its target at run time. */
static void declare_touches(struct sl_plugin_ctx *ctx, const struct filter_dissect *fd)
{
    sl_filter_touches(ctx, "tags", strlen("tags"));
    for (size_t i = 0; i < fd->nd; i++) {
        const struct dissector *d = &fd->d[i];
        sl_filter_touches_field(ctx, &d->source);
        for (size_t k = 0; k < d->n; k++) {
            if (d->f[k].kind == DK_INDIRECT) {
                sl_filter_touches_all(ctx);
                return;
            }
            if (d->f[k].kind != DK_SKIP) {
                sl_filter_touches_field(ctx, &d->f[k].ref);
            }
        }
    }
    for (size_t i = 0; i < fd->nconv; i++) {
        sl_filter_touches_field(ctx, &fd->conv[i].ref);
    }
}

static int dissect_init(void *inst, struct sl_plugin_ctx *ctx)
{
    struct filter_dissect *fd = inst;
    bool ok = true;
    if (!fd->mapping.n && !fd->convert.n) {
        sl_plugin_error(ctx, NULL, "give 'mapping', 'convert_datatype' or both: "
                        "without them the filter does nothing");
        return SL_EINVAL;
    }
    fd->d = sl_calloc(fd->mapping.n + 1, sizeof(*fd->d));
    /* Every mapping is compiled even after an error, so one start reports them all. */
    for (size_t i = 0; i < fd->mapping.n; i++) {
        ok &= compile_mapping(ctx, fd->mapping.keys[i], fd->mapping.vals[i], &fd->d[fd->nd++]);
    }
    ok &= compile_convert(ctx, fd);
    if (ok) {
        declare_touches(ctx, fd);
    }
    return ok ? 0 : SL_EINVAL;
}

/* Frees what init made (it may have stopped half-way); the core frees the options. */
static void dissect_fini(void *inst)
{
    struct filter_dissect *fd = inst;
    for (size_t i = 0; i < fd->nd; i++) {
        struct dissector *d = &fd->d[i];
        sl_fieldref_free(&d->source);
        for (size_t k = 0; d->f && k < d->n; k++) {
            free(d->f[k].name);
            sl_fieldref_free(&d->f[k].ref);
        }
        for (size_t k = 0; k < d->ng; k++) {
            free(d->g[k].idx);
        }
        free(d->f);
        free(d->g);
    }
    free(fd->d);
    for (size_t i = 0; i < fd->nconv; i++) {
        sl_fieldref_free(&fd->conv[i].ref);
        free(fd->conv[i].tag_null);
        free(fd->conv[i].tag_bad);
    }
    free(fd->conv);
}

const struct sl_plugin sl_plugin_filter_dissect = {
    .name = "dissect",
    .kind = SL_PLUGIN_FILTER,
    .summary = "splits text fields on the literal delimiters of a pattern (no regular expressions)",
    .options = dissect_opts,
    .size = sizeof(struct filter_dissect),
    .failure_tag = "_dissectfailure",
    .init = dissect_init,
    .fini = dissect_fini,
    .filter = dissect_filter,
};
