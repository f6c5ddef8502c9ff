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
 */
#include <stdlib.h>
#include <string.h>

#include "sluice/plugin.h"
#include "sluice/template.h"

/* A set of ASCII bytes; an empty set matches nothing. */
struct charset {
    bool has[128];
    bool any;
};

struct filter_kv {
    char *source;           /* field reference holding the text */
    char *target;           /* field reference, or NULL for the root */
    struct charset fs;      /* field_split */
    struct charset vs;      /* value_split */
    struct charset trim_key, trim_value;
    struct charset rm_key, rm_value;
    char **include;         /* NULL-terminated; empty: every key */
    char **exclude;
    size_t ninclude;
    char *prefix;
    bool allow_dup;
    bool brackets;          /* (), [] and <> wrap values like quotes */
    bool lenient;           /* spaces allowed around the value separator */
    struct sl_value defaults;  /* default_keys: an object (or null) */
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
 * Tries one match at p, as Logstash's scan regex would: a key, the value
 * separator, an optional value, then a field separator or the end. Returns the
 * position after the match (past the field separator), or 0 when no match
 * starts at p.
 */
static size_t match_at(const struct filter_kv *k, const char *s, size_t n, size_t p,
                       struct kv_pair *out)
{
    size_t q = run_end(s, n, p, &k->fs, &k->vs);
    if (q == p) {
        return 0;
    }
    out->key = s + p;
    out->klen = q - p;
    if (k->lenient) {
        while (q < n && s[q] == ' ') {
            q++;
        }
    }
    if (q >= n || !in_set(&k->vs, s[q])) {
        return 0;
    }
    q++;
    if (k->lenient) {
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
        size_t r = q + 1;
        while (r < n && s[r] != close) {
            r += (s[r] == '\\' && r + 1 < n) ? 2 : 1;
        }
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

static bool listed(char **list, const char *s, size_t n)
{
    for (char **p = list; *p; p++) {
        if (strlen(*p) == n && memcmp(*p, s, n) == 0) {
            return true;
        }
    }
    return false;
}

static bool str_eq(const struct sl_value *v, const char *s, size_t n)
{
    return v->type == SL_V_STRING && v->u.s.len == n && memcmp(v->u.s.ptr, s, n) == 0;
}

/* Adds key=val to kv: a repeated key collects its values into an array. */
static void add_pair(const struct filter_kv *k, struct sl_value *kv, struct sl_buf *key,
                     struct sl_buf *val)
{
    struct sl_value *slot = sl_obj_put(kv, key->data ? key->data : "", key->len);
    const char *v = val->data ? val->data : "";
    if (slot->type == SL_V_NULL) {
        sl_value_set_str(slot, v, val->len);
        return;
    }
    if (!k->allow_dup) {
        /* Only identical key/value pairs are dropped; other values still collect. */
        if (str_eq(slot, v, val->len)) {
            return;
        }
        for (size_t i = 0; slot->type == SL_V_ARRAY && i < slot->u.a.len; i++) {
            if (str_eq(&slot->u.a.items[i], v, val->len)) {
                return;
            }
        }
    }
    if (slot->type != SL_V_ARRAY) {
        struct sl_value first = {0};
        sl_value_move(&first, slot);
        sl_value_set_array(slot);
        sl_value_move(sl_arr_push(slot), &first);
    }
    sl_value_set_str(sl_arr_push(slot), v, val->len);
}

static void parse(const struct filter_kv *k, const char *s, size_t n, struct sl_value *kv)
{
    struct sl_buf key, val;
    /* Bounded by the event's own text, which the listener already capped. */
    sl_buf_init(&key, 0);
    sl_buf_init(&val, 0);
    size_t plen = k->prefix ? strlen(k->prefix) : 0;
    size_t p = 0;
    while (p < n) {
        struct kv_pair m;
        size_t end = match_at(k, s, n, p, &m);
        if (end == 0) {
            p++;
            continue;
        }
        p = end;
        if (!m.val) {
            continue;  /* an empty value is no pair, as in Logstash */
        }
        clean(&key, m.key, m.klen, &k->trim_key, &k->rm_key);
        if (key.len == 0) {
            continue;  /* nothing left to name a field with */
        }
        if ((k->ninclude && !listed(k->include, key.data, key.len)) ||
            listed(k->exclude, key.data, key.len)) {
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
        add_pair(k, kv, &key, &val);
    }
    sl_buf_free(&key);
    sl_buf_free(&val);
}

static int kv_filter(void *inst, struct sl_value *event)
{
    const struct filter_kv *k = inst;
    const struct sl_value *src = sl_field_get(event, k->source);
    struct sl_value kv = {0};
    sl_value_set_object(&kv);
    /* src points into the event: everything is parsed before the event changes. */
    if (src && src->type == SL_V_STRING) {
        parse(k, src->u.s.ptr, src->u.s.len, &kv);
    } else if (src && src->type == SL_V_ARRAY) {
        for (size_t i = 0; i < src->u.a.len; i++) {
            const struct sl_value *item = &src->u.a.items[i];
            if (item->type == SL_V_STRING) {
                parse(k, item->u.s.ptr, item->u.s.len, &kv);
            }
        }
    }
    if (k->defaults.type == SL_V_OBJECT) {
        /* Defaults first, in their order; parsed values replace them. */
        struct sl_value merged = {0};
        sl_value_copy(&merged, &k->defaults);
        for (size_t i = 0; i < kv.u.o.len; i++) {
            struct sl_member *m = &kv.u.o.items[i];
            sl_value_move(sl_obj_put(&merged, m->key, m->klen), &m->v);
        }
        sl_value_move(&kv, &merged);
    }
    if (kv.u.o.len == 0) {
        sl_value_clear(&kv);
        return SL_FILTER_KEEP;
    }
    if (k->target) {
        /* As in Logstash, the target is replaced by the pairs found, not merged. */
        struct sl_value *slot = sl_field_put(event, k->target);
        if (slot) {
            sl_value_move(slot, &kv);
        }
    } else {
        /* Literal keys: a key "a.b" or "[a][b]" from the text stays one top-level name. */
        for (size_t i = 0; i < kv.u.o.len; i++) {
            struct sl_member *m = &kv.u.o.items[i];
            sl_value_move(sl_obj_put(event, m->key, m->klen), &m->v);
        }
    }
    sl_value_clear(&kv);
    return SL_FILTER_KEEP;
}

/* ---- configuration ---- */

static bool ref_ok(const char *ref)
{
    struct sl_fieldref r;
    int rc = sl_fieldref_init(&r, ref);
    sl_fieldref_free(&r);
    return rc == 0;
}

/* Reads a field reference option; `alias` is another accepted name (or NULL). */
static char *get_ref(struct sl_cfg *cfg, struct sl_cfg_node *opts, const char *id,
                     const char *key, const char *alias, const char *def)
{
    struct sl_cfg_node *a = sl_cfg_get(opts, key);
    struct sl_cfg_node *b = alias ? sl_cfg_get(opts, alias) : NULL;
    if (a && b) {
        sl_cfg_error(cfg, b, "%s: options '%s' and '%s' name the same thing; give one", id,
                     key, alias);
    }
    const char *name = b && !a ? alias : key;
    char *ref;
    sl_cfg_str(cfg, opts, id, name, def, &ref);
    if (ref && !*ref && !def) {
        free(ref);  /* "" means "not set" for an optional reference */
        return NULL;
    }
    if (ref && !ref_ok(ref)) {
        sl_cfg_error(cfg, sl_cfg_get(opts, name), "%s: option '%s' is not a valid field reference",
                     id, name);
    }
    return ref;
}

/* Reads a set of single ASCII characters; empty allowed only when allow_empty. */
static void get_set(struct sl_cfg *cfg, struct sl_cfg_node *opts, const char *id, const char *key,
                    const char *def, bool allow_empty, struct charset *cs)
{
    char *s;
    memset(cs, 0, sizeof(*cs));
    if (sl_cfg_str(cfg, opts, id, key, def, &s) != 0 || !s) {
        free(s);
        return;
    }
    if (!*s && !allow_empty) {
        sl_cfg_error(cfg, sl_cfg_get(opts, key), "%s: option '%s' must not be empty", id, key);
    }
    for (const char *p = s; *p; p++) {
        unsigned char u = (unsigned char)*p;
        if (u >= 128) {
            sl_cfg_error(cfg, sl_cfg_get(opts, key),
                         "%s: option '%s' must list ASCII characters", id, key);
            break;
        }
        cs->has[u] = true;
        cs->any = true;
    }
    free(s);
}

/* default_keys: a map of key: string, kept as an object value. */
static void get_defaults(struct sl_cfg *cfg, struct sl_cfg_node *opts, const char *id,
                         struct sl_value *out)
{
    struct sl_cfg_node *m = sl_cfg_get(opts, "default_keys");
    if (!m || (m->type == SL_CFG_SCALAR && !m->quoted && !*m->scalar)) {
        return;
    }
    if (m->type != SL_CFG_MAP) {
        sl_cfg_error(cfg, m, "%s: option 'default_keys' must be a map of key: value", id);
        return;
    }
    sl_value_set_object(out);
    for (size_t i = 0; i < m->n; i++) {
        struct sl_cfg_node *v = m->items[i];
        if (v->type != SL_CFG_SCALAR) {
            sl_cfg_error(cfg, v, "%s: option 'default_keys': value of '%s' must be a string", id,
                         m->keys[i]);
            continue;
        }
        sl_value_set_cstr(sl_obj_putc(out, m->keys[i]), v->scalar);
    }
}

static void kv_free(void *inst)
{
    struct filter_kv *k = inst;
    if (!k) {
        return;
    }
    free(k->source);
    free(k->target);
    sl_cfg_strv_free(k->include);
    sl_cfg_strv_free(k->exclude);
    free(k->prefix);
    sl_value_clear(&k->defaults);
    free(k);
}

static void *kv_init(struct sl_cfg *cfg, struct sl_cfg_node *opts, struct sl_plugin_env *env)
{
    static const char *const ws_modes[] = {"lenient", "strict", NULL};
    struct filter_kv *k = sl_calloc(1, sizeof(*k));
    int errors = cfg->nerrors;
    const char *id = env->id;
    size_t nexclude;
    int ws;

    k->source = get_ref(cfg, opts, id, "field", "source", "message");
    k->target = get_ref(cfg, opts, id, "target", NULL, NULL);
    get_set(cfg, opts, id, "field_split", " ", false, &k->fs);
    get_set(cfg, opts, id, "value_split", "=", false, &k->vs);
    get_set(cfg, opts, id, "trim_key", "", true, &k->trim_key);
    get_set(cfg, opts, id, "trim_value", "", true, &k->trim_value);
    get_set(cfg, opts, id, "remove_char_key", "", true, &k->rm_key);
    get_set(cfg, opts, id, "remove_char_value", "", true, &k->rm_value);
    sl_cfg_strlist(cfg, opts, id, "include_keys", &k->include, &k->ninclude);
    sl_cfg_strlist(cfg, opts, id, "exclude_keys", &k->exclude, &nexclude);
    sl_cfg_str(cfg, opts, id, "prefix", "", &k->prefix);
    sl_cfg_bool(cfg, opts, id, "allow_duplicate_values", true, &k->allow_dup);
    sl_cfg_bool(cfg, opts, id, "include_brackets", true, &k->brackets);
    sl_cfg_enum(cfg, opts, id, "whitespace", ws_modes, 0, &ws);
    k->lenient = ws == 0;
    get_defaults(cfg, opts, id, &k->defaults);
    sl_cfg_get(opts, "when");  /* evaluated by the core */
    sl_cfg_check_unknown(cfg, opts, id);
    if (cfg->nerrors != errors) {
        kv_free(k);
        return NULL;
    }
    return k;
}

const struct sl_plugin sl_plugin_filter_kv = {
    .name = "kv",
    .kind = SL_PLUGIN_FILTER,
    .init = kv_init,
    .free = kv_free,
    .filter = kv_filter,
};
