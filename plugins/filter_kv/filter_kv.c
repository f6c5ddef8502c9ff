/*
 * filter_kv.c - the `kv` filter: finds key=value pairs in a text field
 * ("a=1 b=\"x y\"") and sets them as fields, with Logstash's kv semantics:
 * the same scan its regular expression performs (keys and values may hold
 * backslash-escaped separators; values may be quoted or bracketed; lenient
 * whitespace around the value separator), the same trimming, filtering and
 * duplicate handling. It does no type conversion: every value is a string
 * (`mutate: {convert: ...}` does that), and it never removes the source field.
 *
 * Separators and trim sets are sets of single ASCII characters, as written in
 * Logstash's character classes; nothing here is a regular expression.
 *
 * A line is handled in time linear in its length, whatever it holds: the
 * scan never goes over the same stretch again and again (struct scan), and
 * the pairs are set through batches of puts (value.h).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/log.h"
#include "sluice/plugin.h"
#include "sluice/template.h"

/* A set of ASCII bytes; an empty set matches nothing. */
struct charset {
    bool has[128];
    bool any;
};

struct filter_kv {
    /* Options. */
    struct sl_fieldref source;  /* the field holding the text */
    struct sl_fieldref target;  /* empty: the root */
    char *field_split, *value_split;
    char *trim_key_s, *trim_value_s, *rm_key_s, *rm_value_s;
    struct sl_strv include;     /* empty: every key */
    struct sl_strv exclude;
    char *prefix;
    bool allow_dup;
    bool brackets;              /* (), [] and <> wrap values like quotes */
    int whitespace;             /* WS_LENIENT: spaces allowed around the value separator */
    struct sl_strmap default_keys;
    int ecs;                    /* enum sl_ecs, when given */

    /* Derived in init. */
    struct charset fs;          /* field_split */
    struct charset vs;          /* value_split */
    struct charset trim_key, trim_value;
    struct charset rm_key, rm_value;
    struct sl_value defaults;   /* default_keys as an object (null when none) */
};

enum { WS_LENIENT, WS_STRICT };
static const char *const ws_modes[] = {"lenient", "strict", NULL};

static const struct sl_opt kv_opts[] = {
    {.name = "field", .alias = "source", .type = SL_OPT_FIELD, .def = "message",
     .flags = SL_OPT_NONEMPTY, .offset = offsetof(struct filter_kv, source),
     .doc = "the field holding the text; the strings of an array are parsed into one set"},
    {.name = "target", .type = SL_OPT_FIELD, .offset = offsetof(struct filter_kv, target),
     .doc = "field that receives an object of the pairs, replacing it; absent or \"\": the root"},
    {.name = "field_split", .type = SL_OPT_STRING, .def = " ", .flags = SL_OPT_NONEMPTY,
     .offset = offsetof(struct filter_kv, field_split),
     .doc = "characters that separate pairs, each one a separator (ASCII)"},
    {.name = "value_split", .type = SL_OPT_STRING, .def = "=", .flags = SL_OPT_NONEMPTY,
     .offset = offsetof(struct filter_kv, value_split),
     .doc = "characters that separate a key from its value (ASCII)"},
    {.name = "trim_key", .type = SL_OPT_STRING,
     .offset = offsetof(struct filter_kv, trim_key_s),
     .doc = "characters removed from both ends of each key"},
    {.name = "trim_value", .type = SL_OPT_STRING,
     .offset = offsetof(struct filter_kv, trim_value_s),
     .doc = "characters removed from both ends of each value"},
    {.name = "remove_char_key", .type = SL_OPT_STRING,
     .offset = offsetof(struct filter_kv, rm_key_s),
     .doc = "characters removed anywhere in each key"},
    {.name = "remove_char_value", .type = SL_OPT_STRING,
     .offset = offsetof(struct filter_kv, rm_value_s),
     .doc = "characters removed anywhere in each value"},
    {.name = "include_keys", .type = SL_OPT_LIST, .def = "[]",
     .offset = offsetof(struct filter_kv, include),
     .doc = "when not empty, only these keys are kept (compared before the prefix)"},
    {.name = "exclude_keys", .type = SL_OPT_LIST, .def = "[]",
     .offset = offsetof(struct filter_kv, exclude),
     .doc = "these keys are dropped (compared before the prefix)"},
    {.name = "prefix", .type = SL_OPT_STRING, .offset = offsetof(struct filter_kv, prefix),
     .doc = "prepended to every key"},
    {.name = "allow_duplicate_values", .type = SL_OPT_BOOL, .def = "true",
     .offset = offsetof(struct filter_kv, allow_dup),
     .doc = "false: a repeated identical key/value pair is kept once"},
    {.name = "include_brackets", .type = SL_OPT_BOOL, .def = "true",
     .offset = offsetof(struct filter_kv, brackets),
     .doc = "(...), [...] and <...> wrap a value like quotes"},
    {.name = "whitespace", .type = SL_OPT_ENUM, .def = "lenient", .choices = ws_modes,
     .offset = offsetof(struct filter_kv, whitespace),
     .doc = "lenient: spaces around the value separator are ignored; strict: they are not"},
    {.name = "default_keys", .type = SL_OPT_MAP,
     .offset = offsetof(struct filter_kv, default_keys),
     .doc = "key: value pairs set when the text does not have them"},
    {.name = "ecs_compatibility", .type = SL_OPT_ENUM, .choices = sl_ecs_choices,
     .offset = offsetof(struct filter_kv, ecs),
     .doc = "v8/v1: warn at start-up when target is not set (root keys may clash with ECS "
            "fields), as Logstash does; disabled: no warning; default: pipeline.ecs_compatibility"},
    {0},
};

static inline bool in_set(const struct charset *cs, char c)
{
    unsigned char u = (unsigned char)c;
    return u < 128 && cs->has[u];
}

/* ---- the scan ---- */

/* Spans of one key=value match; vlen == SIZE_MAX means "no value" (a="" or a=). */
struct kv_pair {
    const char *key;
    size_t klen;
    const char *val;
    size_t vlen;
};

/*
 * The end of a run that starts at p and stops before a character of stop1 or
 * stop2 (either may be NULL); a backslash takes the next character into the
 * run whatever it is, as the `\\.` of Logstash's patterns does.
 */
static size_t run_end(const char *s, size_t n, size_t p, const struct charset *stop1,
                      const struct charset *stop2)
{
    while (p < n) {
        if (s[p] == '\\' && p + 1 < n) {
            p += 2;
        } else if ((stop1 && in_set(stop1, s[p])) || (stop2 && in_set(stop2, s[p]))) {
            break;
        } else {
            p++;
        }
    }
    return p;
}

/* The closing character of a value that s[q] opens, or 0 when it opens none. */
static char closer(const struct filter_kv *k, char c)
{
    switch (c) {
    case '"':
    case '\'':
        return c;
    case '(':
        return k->brackets ? ')' : 0;
    case '[':
        return k->brackets ? ']' : 0;
    case '<':
        return k->brackets ? '>' : 0;
    default:
        return 0;
    }
}

/*
 * What one parse remembers between tries, so that no stretch of the text is
 * scanned again and again: a long line of hostile text (no value separator, or
 * many values opened by a bracket never closed) made the scan quadratic.
 */
struct scan {
    size_t fp, fq;                  /* a failed try's key [fp, fq): see next_try */
    size_t close_from[5], close_at[5];  /* per closer: the first unescaped one at or
                                         * after close_from (n: none) */
};

static void scan_init(struct scan *sc)
{
    memset(sc, 0, sizeof(*sc));
    for (size_t i = 0; i < 5; i++) {
        sc->close_from[i] = 1;  /* from > at: nothing known */
    }
}

/*
 * The first unescaped close at or after start, or n. A value opens at
 * start - 1, so s[start - 1] is no backslash and the escape pairs after start
 * fall as they fall for any earlier start: a later search up to the closer
 * found before finds the same one.
 */
static size_t find_closer(struct scan *sc, const char *s, size_t n, size_t start, char close)
{
    size_t i = close == '"' ? 0 : close == '\'' ? 1 : close == ')' ? 2 : close == ']' ? 3 : 4;
    if (sc->close_from[i] <= start && start <= sc->close_at[i]) {
        return sc->close_at[i];
    }
    size_t r = start;
    while (r < n && s[r] != close) {
        r += (s[r] == '\\' && r + 1 < n) ? 2 : 1;
    }
    sc->close_from[i] = start;
    sc->close_at[i] = r;
    return r;
}

/*
 * Tries one match at p, as Logstash's scan regex would: a key, the value
 * separator, an optional value, then a field separator or the end. Returns the
 * position after the match (past the field separator), or 0 when no match
 * starts at p; then out->klen still tells how far the key ran.
 */
static size_t match_at(const struct filter_kv *k, struct scan *sc, const char *s, size_t n,
                       size_t p, struct kv_pair *out)
{
    size_t q = run_end(s, n, p, &k->fs, &k->vs);
    out->key = s + p;
    out->klen = q - p;
    if (q == p) {
        return 0;
    }
    if (k->whitespace == WS_LENIENT) {
        while (q < n && s[q] == ' ') {
            q++;
        }
    }
    if (q >= n || !in_set(&k->vs, s[q])) {
        return 0;
    }
    q++;
    if (k->whitespace == WS_LENIENT) {
        while (q < n && s[q] == ' ') {
            q++;
        }
    }
    out->val = NULL;
    out->vlen = SIZE_MAX;
    size_t end = q;
    char close = q < n ? closer(k, s[q]) : 0;
    bool quoted = false;
    if (close) {
        /* Quoted: up to the first unescaped closer, which must end the field. */
        size_t r = find_closer(sc, s, n, q + 1, close);
        if (r < n && (r + 1 == n || in_set(&k->fs, s[r + 1]))) {
            if (r > q + 1) {
                out->val = s + q + 1;
                out->vlen = r - q - 1;
            }
            end = r + 1;
            quoted = true;
        }
        /* Otherwise not a well-formed quoted value: it is read unquoted. */
    }
    if (!quoted) {
        size_t r = run_end(s, n, q, &k->fs, NULL);
        if (r > q) {
            out->val = s + q;
            out->vlen = r - q;
        }
        end = r;
    }
    return end < n ? end + 1 : end;  /* past the field separator */
}

/*
 * A try at p failed after its key ran to q (a separator, or the end) and no
 * value separator followed. A try at a later p2 < q fails the same way when its
 * key runs to q too, and it does unless the escape pairs fall differently:
 * only inside a run of backslashes before a separator j that p's run escaped
 * (j < q; from p2 with an even count of backslashes before j, its key ends at
 * j) or before q itself (with an odd count, p2's key escapes q and runs on).
 * Returns the first such p2 >= from, or q when none is left; the positions in
 * between fail without being tried.
 */
static size_t next_try(const struct filter_kv *k, const char *s, size_t n, size_t p, size_t q,
                       size_t from)
{
    for (size_t j = from; j <= q && j < n; j++) {
        if (!in_set(&k->fs, s[j]) && !in_set(&k->vs, s[j])) {
            continue;
        }
        size_t rs = j;  /* the run of backslashes before j, from p on */
        while (rs > p && s[rs - 1] == '\\') {
            rs--;
        }
        size_t c = rs + 1 > from ? rs + 1 : from;
        bool even = j < q;
        if ((((j - c) % 2) == 0) != even) {
            c++;
        }
        if (c < j) {
            return c;
        }
    }
    return q;
}

/* Where the scan goes on after no match at p, whose key ran klen bytes (see next_try). */
static size_t after_failure(const struct filter_kv *k, struct scan *sc, const char *s, size_t n,
                            size_t p, size_t klen)
{
    if (klen == 0) {
        return p + 1;
    }
    size_t e = p + klen;
    if (p > sc->fp && p < sc->fq) {
        /* One of next_try's positions failed as well. */
        if (e <= sc->fq) {
            /* Its key ended at a separator j inside [fp, fq): so do the others before j. */
            return next_try(k, s, n, sc->fp, sc->fq, e + 1);
        }
        /* Its key escaped fq and ran on to e, as a key from fq + 1 does: go on from there. */
        sc->fp = sc->fq + 1;
        sc->fq = e;
        return next_try(k, s, n, sc->fp, sc->fq, sc->fp + 1);
    }
    sc->fp = p;
    sc->fq = e;
    return next_try(k, s, n, p, e, p + 1);
}

/* Copies s[0..n) into b without the set's characters at both ends (trim) or anywhere (rm). */
static void clean(struct sl_buf *b, const char *s, size_t n, const struct charset *trim,
                  const struct charset *rm)
{
    sl_buf_reset(b);
    if (trim->any) {
        while (n > 0 && in_set(trim, s[0])) {
            s++;
            n--;
        }
        while (n > 0 && in_set(trim, s[n - 1])) {
            n--;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!rm->any || !in_set(rm, s[i])) {
            sl_buf_putc(b, s[i]);
        }
    }
}

static bool listed(const struct sl_strv *list, const char *s, size_t n)
{
    for (char **p = list->v; p && *p; p++) {
        if (strlen(*p) == n && memcmp(*p, s, n) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * One run of the filter on an event. Both objects take their puts through a
 * batch (value.h), so a line of many pairs stays linear.
 */
struct kv_run {
    struct sl_obj_batch out;   /* into the object of the pairs found */
    /* allow_duplicate_values: false. Every value under a key was added by this
     * run, so "the key already holds this value" is "this pair was seen": a set
     * of the pairs answers it at once, where searching the key's array made a
     * line repeating one key n times cost n^2. */
    struct sl_value seen;      /* keys: the pairs' encodings; values: true */
    struct sl_obj_batch seen_b;
    struct sl_buf pair;        /* scratch: one pair's encoding */
};

static void kvrun_begin(struct kv_run *r, struct sl_value *kv)
{
    sl_obj_batch_begin(&r->out, kv, 0);
    memset(&r->seen, 0, sizeof(r->seen));
    sl_obj_batch_begin(&r->seen_b, &r->seen, 0);
    sl_buf_init(&r->pair, 0);
}

static void kvrun_end(struct kv_run *r)
{
    sl_obj_batch_end(&r->out);
    sl_obj_batch_end(&r->seen_b);
    sl_value_clear(&r->seen);
    sl_buf_free(&r->pair);
}

/* Whether key=val was added before in this run; records it if not. */
static bool seen_before(struct kv_run *r, const struct sl_buf *key, const struct sl_buf *val)
{
    /* The key's length first: "ab"+"c" and "a"+"bc" are different pairs. */
    sl_buf_reset(&r->pair);
    sl_buf_printf(&r->pair, "%zu:", key->len);
    sl_buf_append(&r->pair, key->data, key->len);
    if (val->len) {
        sl_buf_append(&r->pair, val->data, val->len);
    }
    struct sl_value *slot = sl_obj_batch_put(&r->seen_b, r->pair.data, r->pair.len);
    if (slot->type != SL_V_NULL) {
        return true;
    }
    sl_value_set_bool(slot, true);
    return false;
}

/*
 * Adds key=val to the run's object: a repeated key collects its values into an
 * array; without allow_duplicate_values, only an identical key/value pair is
 * dropped (other values still collect).
 */
static void add_pair(const struct filter_kv *k, struct kv_run *r, struct sl_buf *key,
                     struct sl_buf *val)
{
    if (!k->allow_dup && seen_before(r, key, val)) {
        return;
    }
    struct sl_value *slot = sl_obj_batch_put(&r->out, key->data ? key->data : "", key->len);
    const char *v = val->data ? val->data : "";
    if (slot->type == SL_V_NULL) {
        sl_value_set_str(slot, v, val->len);
        return;
    }
    if (slot->type != SL_V_ARRAY) {
        struct sl_value first = {0};
        sl_value_move(&first, slot);
        sl_value_set_array(slot);
        sl_value_move(sl_arr_push(slot), &first);
    }
    sl_value_set_str(sl_arr_push(slot), v, val->len);
}

static void parse(const struct filter_kv *k, const char *s, size_t n, struct kv_run *r)
{
    struct sl_buf key, val;
    /* Bounded by the event's own text, which the listener already capped. */
    sl_buf_init(&key, 0);
    sl_buf_init(&val, 0);
    size_t plen = k->prefix ? strlen(k->prefix) : 0;
    struct scan sc;
    scan_init(&sc);
    size_t p = 0;
    while (p < n) {
        struct kv_pair m;
        size_t end = match_at(k, &sc, s, n, p, &m);
        if (end == 0) {
            p = after_failure(k, &sc, s, n, p, m.klen);
            continue;
        }
        sc.fp = sc.fq = 0;  /* what a failed try said holds up to a match only */
        p = end;
        if (!m.val) {
            continue;  /* an empty value is no pair, as in Logstash */
        }
        clean(&key, m.key, m.klen, &k->trim_key, &k->rm_key);
        if (key.len == 0) {
            continue;  /* nothing left to name a field with */
        }
        if ((k->include.n && !listed(&k->include, key.data, key.len)) ||
            listed(&k->exclude, key.data, key.len)) {
            continue;
        }
        if (plen) {
            /* The prefix goes in front after the include/exclude test, as in Logstash. */
            sl_buf_reserve(&key, plen);
            memmove(key.data + plen, key.data, key.len);
            memcpy(key.data, k->prefix, plen);
            key.len += plen;
        }
        clean(&val, m.val, m.vlen, &k->trim_value, &k->rm_value);
        add_pair(k, r, &key, &val);
    }
    sl_buf_free(&key);
    sl_buf_free(&val);
}

static enum sl_filter_result kv_filter(void *inst, struct sl_value *event)
{
    const struct filter_kv *k = inst;
    const struct sl_value *src = sl_fieldref_get(&k->source, event);
    struct sl_value kv = {0};
    sl_value_set_object(&kv);
    struct kv_run run;
    kvrun_begin(&run, &kv);
    /* src points into the event: everything is parsed before the event changes. */
    if (src && src->type == SL_V_STRING) {
        parse(k, src->u.s.ptr, src->u.s.len, &run);
    } else if (src && src->type == SL_V_ARRAY) {
        for (size_t i = 0; i < src->u.a.len; i++) {
            const struct sl_value *item = &src->u.a.items[i];
            if (item->type == SL_V_STRING) {
                parse(k, item->u.s.ptr, item->u.s.len, &run);
            }
        }
    }
    kvrun_end(&run);
    if (k->defaults.type == SL_V_OBJECT) {
        /* Defaults first, in their order; parsed values replace them. */
        struct sl_value merged = {0};
        sl_value_copy(&merged, &k->defaults);
        sl_obj_merge(&merged, &kv);
        sl_value_move(&kv, &merged);
    }
    if (kv.u.o.len == 0) {
        sl_value_clear(&kv);
        return SL_FILTER_KEEP;
    }
    if (k->target.nsegs) {
        /* As in Logstash, the target is replaced by the pairs found, not merged. */
        struct sl_value *slot = sl_fieldref_put(&k->target, event);
        if (slot) {
            sl_value_move(slot, &kv);
        }
    } else {
        /* Literal keys: a key "a.b" or "[a][b]" from the text stays one top-level name. */
        sl_obj_merge(event, &kv);
    }
    sl_value_clear(&kv);
    return SL_FILTER_KEEP;
}

/* ---- configuration ---- */

/*
 * A set of single ASCII characters, as Logstash's character classes hold
 * them. The table reads the option as a string; what it may contain is
 * checked here.
 */
static void make_set(struct sl_plugin_ctx *ctx, const char *opt, const char *s,
                     struct charset *cs)
{
    for (const char *p = s; p && *p; p++) {
        unsigned char u = (unsigned char)*p;
        if (u >= 128) {
            sl_plugin_error(ctx, opt, "option '%s' must list ASCII characters", opt);
            return;
        }
        cs->has[u] = true;
        cs->any = true;
    }
}

static int kv_init(void *inst, struct sl_plugin_ctx *ctx)
{
    struct filter_kv *k = inst;
    /* As Logstash: the only difference ECS makes here is this warning. */
    if (!k->target.nsegs && !ctx->check_only && sl_plugin_ecs(ctx, k->ecs) != SL_ECS_DISABLED) {
        sl_warn("%s: without 'target', decoded keys land at the event's root, where they may "
                "clash with ECS fields; set 'target' (or ecs_compatibility: disabled)", ctx->id);
    }
    make_set(ctx, "field_split", k->field_split, &k->fs);
    make_set(ctx, "value_split", k->value_split, &k->vs);
    make_set(ctx, "trim_key", k->trim_key_s, &k->trim_key);
    make_set(ctx, "trim_value", k->trim_value_s, &k->trim_value);
    make_set(ctx, "remove_char_key", k->rm_key_s, &k->rm_key);
    make_set(ctx, "remove_char_value", k->rm_value_s, &k->rm_value);
    if (k->default_keys.n) {
        /* Built once: each event that needs them copies this object. */
        sl_value_set_object(&k->defaults);
        for (size_t i = 0; i < k->default_keys.n; i++) {
            sl_value_set_cstr(sl_obj_putc(&k->defaults, k->default_keys.keys[i]),
                              k->default_keys.vals[i]);
        }
    }
    if (!k->target.nsegs) {
        sl_filter_touches_all(ctx);  /* pairs at the root may be any key */
    } else {
        sl_filter_touches_field(ctx, &k->source);
        sl_filter_touches_field(ctx, &k->target);
    }
    return 0;
}

static void kv_fini(void *inst)
{
    struct filter_kv *k = inst;
    sl_value_clear(&k->defaults);
}

const struct sl_plugin sl_plugin_filter_kv = {
    .name = "kv",
    .kind = SL_PLUGIN_FILTER,
    .summary = "sets the key=value pairs found in a text field as fields",
    .options = kv_opts,
    .size = sizeof(struct filter_kv),
    .init = kv_init,
    .fini = kv_fini,
    .filter = kv_filter,
};
