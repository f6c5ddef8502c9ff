/*
 * options.c - the one reader of plugin options. Each type is read by the
 * typed getters of sluice/config.h, so a plugin's option and a daemon's
 * top-level key report errors the same way. A default is YAML text in the
 * table; it goes through the very same getter (parsed from a one-line
 * document), so what the docs show is what the code applies.
 */
#include "options.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/log.h"

#define WHERE_MAX 192

const struct sl_opt agg_opts_partial[1];

static void *at(void *base, const struct sl_opt *o)
{
    return (char *)base + o->offset;
}

static bool bounded(const struct sl_opt *o)
{
    return o->min != 0 || o->max != 0;
}

struct sl_cfg_node *agg_opts_node(struct sl_cfg_node *map, const struct sl_opt *o)
{
    struct sl_cfg_node *n = sl_cfg_get(map, o->name);
    if (!n && o->alias) {
        n = sl_cfg_get(map, o->alias);
    }
    return n;
}

static int read_map(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                    const char *key, struct sl_strmap *out)
{
    struct sl_cfg_node *m = sl_cfg_get(map, key);
    if (sl_cfg_is_null(m)) {
        out->keys = sl_calloc(1, sizeof(char *));
        out->vals = sl_calloc(1, sizeof(char *));
        return 0;
    }
    if (m->type != SL_CFG_MAP) {
        sl_cfg_error(cfg, m, "%s: option '%s' must be a map", where, key);
        return SL_EINVAL;
    }
    out->keys = sl_calloc(m->n + 1, sizeof(char *));
    out->vals = sl_calloc(m->n + 1, sizeof(char *));
    int rc = 0;
    for (size_t i = 0; i < m->n; i++) {
        struct sl_cfg_node *v = m->items[i];
        m->used[i] = true;
        if (v->type != SL_CFG_SCALAR) {
            sl_cfg_error(cfg, v, "%s: option '%s': the value of '%s' must be a scalar", where,
                         key, m->keys[i]);
            rc = SL_EINVAL;
            continue;
        }
        out->keys[out->n] = sl_strdup(m->keys[i]);
        out->vals[out->n] = sl_strdup(sl_cfg_is_null(v) ? "" : v->scalar);
        out->n++;
    }
    return rc;
}

static int compile_field(struct sl_cfg *cfg, struct sl_cfg_node *n, const char *where,
                         const char *key, const char *text, struct sl_fieldref *out)
{
    if (sl_fieldref_init(out, text) != 0) {
        sl_cfg_error(cfg, n, "%s: option '%s': '%s' is not a valid field reference", where, key,
                     text);
        return SL_EINVAL;
    }
    return 0;
}

static int read_fields(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                       const char *key, struct sl_fieldrefs *out)
{
    char **v;
    size_t n;
    int rc = sl_cfg_strlist(cfg, map, where, key, &v, &n);
    struct sl_cfg_node *node = sl_cfg_get(map, key);
    out->v = sl_calloc(n + 1, sizeof(*out->v));
    for (size_t i = 0; i < n; i++) {
        struct sl_cfg_node *item = node && node->type == SL_CFG_SEQ ? node->items[i] : node;
        if (compile_field(cfg, item, where, key, v[i], &out->v[out->n]) == 0) {
            out->n++;
        } else {
            rc = SL_EINVAL;
        }
    }
    sl_cfg_strv_free(v);
    return rc;
}

static int read_block(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                      const struct sl_opt *o, void *base)
{
    struct sl_cfg_node *m = sl_cfg_get(map, o->name);
    char sub[WHERE_MAX];
    snprintf(sub, sizeof(sub), "%s: %s", where, o->name);
    if (!sl_cfg_is_null(m) && m->type != SL_CFG_MAP) {
        sl_cfg_error(cfg, m, "%s: must be a map", sub);
        agg_opts_read(cfg, NULL, sub, o->sub, at(base, o), NULL);
        return SL_EINVAL;
    }
    return agg_opts_read(cfg, sl_cfg_is_null(m) ? NULL : m, sub, o->sub, at(base, o), NULL);
}

/* Reads option o from map under key (its name or alias) into base. */
static int read_one(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                    const struct sl_opt *o, const char *key, void *base)
{
    void *p = at(base, o);
    int64_t imin = bounded(o) ? o->min : INT64_MIN, imax = bounded(o) ? o->max : INT64_MAX;
    uint64_t umin = bounded(o) ? (uint64_t)o->min : 0;
    uint64_t umax = bounded(o) ? (uint64_t)o->max : UINT64_MAX;
    switch (o->type) {
    case SL_OPT_STRING:
        return sl_cfg_str(cfg, map, where, key, NULL, (char **)p);
    case SL_OPT_BOOL:
        return sl_cfg_bool(cfg, map, where, key, false, (bool *)p);
    case SL_OPT_INT:
        return sl_cfg_int(cfg, map, where, key, imin < 0 && imax > 0 ? 0 : imin, imin, imax,
                          (int64_t *)p);
    case SL_OPT_SIZE:
        return sl_cfg_size(cfg, map, where, key, umin, umin, umax, (uint64_t *)p);
    case SL_OPT_DURATION:
        return sl_cfg_duration(cfg, map, where, key, umin, umin, umax, (uint64_t *)p);
    case SL_OPT_ENUM:
        return sl_cfg_enum(cfg, map, where, key, o->choices, 0, (int *)p);
    case SL_OPT_FIELD: {
        char *text = NULL;
        int rc = sl_cfg_str(cfg, map, where, key, NULL, &text);
        /* "" names no field (a target of "" is the root, as in Logstash). */
        if (rc == 0 && text && *text) {
            rc = compile_field(cfg, sl_cfg_get(map, key), where, key, text, (struct sl_fieldref *)p);
        }
        free(text);
        return rc;
    }
    case SL_OPT_TEMPLATE: {
        char *text = NULL;
        int rc = sl_cfg_str(cfg, map, where, key, NULL, &text);
        if (rc == 0 && text) {
            char err[256];
            struct sl_template *t = sl_template_new(text, err, sizeof(err));
            if (!t) {
                sl_cfg_error(cfg, sl_cfg_get(map, key), "%s: option '%s': %s", where, key, err);
                rc = SL_EINVAL;
            }
            *(struct sl_template **)p = t;
        }
        free(text);
        return rc;
    }
    case SL_OPT_LIST: {
        struct sl_strv *v = p;
        return sl_cfg_strlist(cfg, map, where, key, &v->v, &v->n);
    }
    case SL_OPT_FIELDS:
        return read_fields(cfg, map, where, key, (struct sl_fieldrefs *)p);
    case SL_OPT_MAP:
        return read_map(cfg, map, where, key, (struct sl_strmap *)p);
    case SL_OPT_BLOCK:
        return read_block(cfg, map, where, o, base);
    case SL_OPT_NODE: {
        struct sl_cfg_node *n = sl_cfg_get(map, key);
        *(struct sl_cfg_node **)p = sl_cfg_is_null(n) ? NULL : n;
        return 0;
    }
    }
    return SL_EINVAL;
}

/*
 * Applies o's default through the same getter as the file: a scalar type's
 * default is the scalar as written ("[a][b]", "10s"); a list's or a map's is
 * YAML flow text ("[a, b]").
 */
static int read_default(struct sl_cfg *cfg, const char *where, const struct sl_opt *o, void *base)
{
    if (o->type == SL_OPT_BLOCK) {
        return agg_opts_read(cfg, NULL, where, o->sub, at(base, o), NULL);
    }
    if (!o->def) {
        /* No default: read from an empty map, so lists and maps are empty, not NULL. */
        return o->type == SL_OPT_NODE ? 0 : read_one(cfg, NULL, where, o, o->name, base);
    }
    if (o->type != SL_OPT_LIST && o->type != SL_OPT_FIELDS && o->type != SL_OPT_MAP) {
        struct sl_cfg_node val = {.type = SL_CFG_SCALAR, .line = 1, .col = 1,
                                  .scalar = (char *)o->def, .quoted = true};
        struct sl_cfg_node key = val;
        char *keys[] = {(char *)o->name};
        struct sl_cfg_node *key_nodes[] = {&key}, *items[] = {&val};
        bool used[] = {false};
        struct sl_cfg_node map = {.type = SL_CFG_MAP, .line = 1, .col = 1, .n = 1, .keys = keys,
                                  .key_nodes = key_nodes, .items = items, .used = used};
        return read_one(cfg, &map, where, o, o->name, base);
    }
    struct sl_cfg tmp;
    char text[512];
    snprintf(text, sizeof(text), "%s: %s\n", o->name, o->def);
    int rc = sl_cfg_load_string(&tmp, "(default)", text, strlen(text));
    if (rc == 0) {
        rc = read_one(&tmp, tmp.root, where, o, o->name, base);
    }
    if (rc != 0 || tmp.nerrors) {
        /* A bad default is a bug in the plugin: say so loudly, in the user's -t too. */
        sl_cfg_error(cfg, NULL, "%s: internal error: the default of '%s' (%s) does not read: %s",
                     where, o->name, o->def, tmp.errors.data ? sl_buf_cstr(&tmp.errors) : "");
        rc = SL_EINVAL;
    }
    sl_cfg_free(&tmp);
    return rc;
}

static bool is_empty(const struct sl_cfg_node *n)
{
    return (n->type == SL_CFG_SCALAR && n->scalar[0] == '\0') ||
           (n->type != SL_CFG_SCALAR && n->n == 0);
}

int agg_opts_read(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                  const struct sl_opt *table, void *base, const struct sl_opt *extra)
{
    int errors = cfg->nerrors;
    size_t nopts = 0, nextra = 0;
    for (const struct sl_opt *o = table; o && o->name; o++) {
        nopts += o->alias ? 2 : 1;
    }
    for (const struct sl_opt *e = extra; e && e->name; e++) {
        nextra++;
    }
    const char **known = sl_calloc(nopts + nextra + 1, sizeof(*known));
    size_t nk = 0;
    for (const struct sl_opt *o = table; o && o->name; o++) {
        known[nk++] = o->name;
        if (o->alias) {
            known[nk++] = o->alias;
        }
        struct sl_cfg_node *byname = sl_cfg_get(map, o->name);
        struct sl_cfg_node *byalias = o->alias ? sl_cfg_get(map, o->alias) : NULL;
        if (byname && byalias) {
            sl_cfg_error(cfg, byalias, "%s: options '%s' and '%s' name the same thing; give one",
                         where, o->name, o->alias);
        }
        const char *key = byname || !byalias ? o->name : o->alias;
        struct sl_cfg_node *n = byname ? byname : byalias;
        if (sl_cfg_is_null(n)) {
            if (o->flags & SL_OPT_REQUIRED) {
                sl_cfg_error(cfg, n ? n : map, "%s: option '%s' is required", where, o->name);
            }
            read_default(cfg, where, o, base);
            continue;
        }
        if ((o->flags & SL_OPT_NONEMPTY) && is_empty(n)) {
            sl_cfg_error(cfg, n, "%s: option '%s' must not be empty", where, key);
        }
        read_one(cfg, map, where, o, key, base);
    }
    for (const struct sl_opt *e = extra; e && e->name; e++) {
        known[nk++] = e->name;
    }
    if (extra != AGG_OPTS_PARTIAL) {
        sl_cfg_check_unknown_in(cfg, map, where, known);
    }
    free(known);
    return cfg->nerrors == errors ? 0 : SL_EINVAL;
}

void agg_opts_free(const struct sl_opt *table, void *base)
{
    for (const struct sl_opt *o = table; o && o->name; o++) {
        void *p = at(base, o);
        switch (o->type) {
        case SL_OPT_STRING:
            free(*(char **)p);
            *(char **)p = NULL;
            break;
        case SL_OPT_FIELD:
            sl_fieldref_free((struct sl_fieldref *)p);
            break;
        case SL_OPT_TEMPLATE:
            sl_template_free(*(struct sl_template **)p);
            *(struct sl_template **)p = NULL;
            break;
        case SL_OPT_LIST: {
            struct sl_strv *v = p;
            sl_cfg_strv_free(v->v);
            *v = (struct sl_strv){0};
            break;
        }
        case SL_OPT_FIELDS: {
            struct sl_fieldrefs *f = p;
            for (size_t i = 0; i < f->n; i++) {
                sl_fieldref_free(&f->v[i]);
            }
            free(f->v);
            *f = (struct sl_fieldrefs){0};
            break;
        }
        case SL_OPT_MAP: {
            struct sl_strmap *m = p;
            sl_cfg_strv_free(m->keys);
            sl_cfg_strv_free(m->vals);
            *m = (struct sl_strmap){0};
            break;
        }
        case SL_OPT_BLOCK:
            agg_opts_free(o->sub, p);
            break;
        default:
            break;
        }
    }
}

/* ---- docs --------------------------------------------------------------------- */

static void doc_type(struct sl_buf *out, const struct sl_opt *o)
{
    static const char *const names[] = {
        [SL_OPT_STRING] = "string",       [SL_OPT_BOOL] = "bool",
        [SL_OPT_INT] = "integer",         [SL_OPT_SIZE] = "size",
        [SL_OPT_DURATION] = "duration",   [SL_OPT_ENUM] = "one of",
        [SL_OPT_FIELD] = "field reference", [SL_OPT_TEMPLATE] = "template",
        [SL_OPT_LIST] = "list of strings", [SL_OPT_FIELDS] = "list of field references",
        [SL_OPT_MAP] = "map",             [SL_OPT_BLOCK] = "map",
        [SL_OPT_NODE] = "see description",
    };
    sl_buf_puts(out, names[o->type]);
    if (o->type == SL_OPT_ENUM) {
        for (const char *const *c = o->choices; *c; c++) {
            sl_buf_printf(out, "%s`%s`", c == o->choices ? " " : ", ", *c);
        }
    }
    if (bounded(o) && o->type == SL_OPT_INT) {
        sl_buf_printf(out, " (%" PRId64 "..%" PRId64 ")", o->min, o->max);
    }
}

void agg_opts_doc_rows(struct sl_buf *out, const struct sl_opt *table, const char *prefix)
{
    for (const struct sl_opt *o = table; o && o->name; o++) {
        char name[128];
        snprintf(name, sizeof(name), "%s%s", prefix, o->name);
        if (o->type == SL_OPT_BLOCK) {
            sl_buf_printf(out, "| `%s` | map | | %s |\n", name, o->doc ? o->doc : "");
            char sub[130];
            snprintf(sub, sizeof(sub), "%s.", name);
            agg_opts_doc_rows(out, o->sub, sub);
            continue;
        }
        sl_buf_printf(out, "| `%s`", name);
        if (o->alias) {
            sl_buf_printf(out, " (or `%s`)", o->alias);
        }
        sl_buf_puts(out, " | ");
        doc_type(out, o);
        sl_buf_puts(out, " | ");
        if (o->flags & SL_OPT_REQUIRED) {
            sl_buf_puts(out, "required");
        } else if (o->def) {
            sl_buf_printf(out, "`%s`", o->def);
        }
        sl_buf_printf(out, " | %s |\n", o->doc ? o->doc : "");
    }
}

void agg_opts_doc(struct sl_buf *out, const struct sl_opt *table)
{
    sl_buf_puts(out, AGG_OPTS_DOC_HEAD);
    agg_opts_doc_rows(out, table, "");
}
