/*
 * condition.c - `when:` conditions (see condition.h for the language and
 * how values compare).
 *
 * Compilation does all the work that can be done once: field references are
 * split, regexes compiled, and each YAML value is pre-parsed into the forms
 * it may be compared in (text, integer, double, boolean, null), so evaluation
 * is a walk over an immutable tree with no allocation and no parsing, and
 * worker threads can share one tree without locks.
 */
#include "condition.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sluice/regex.h"
#include "sluice/template.h"

enum op { OP_EQUALS, OP_NOT_EQUALS, OP_MATCHES, OP_EXISTS, OP_IN, OP_AND, OP_OR, OP_NOT };

static const char *const op_names[] = {"equals", "not_equals", "matches", "exists",
                                       "in",     "and",        "or",      "not"};

/* One YAML value, in every form it can be compared in. */
struct cval {
    char *text;
    size_t len;
    bool is_null;   /* unquoted ~, null or empty */
    bool is_int;    /* text is a whole decimal integer (i) */
    bool is_num;    /* text is a finite number (d) */
    int boolean;    /* -1: not a boolean; 0/1 */
    int64_t i;
    double d;
};

struct sl_condition {
    enum op op;
    struct sl_fieldref ref;          /* field operators */
    struct cval *vals;               /* equals/not_equals: 1; in: n */
    size_t nvals;
    struct sl_regex *re;             /* matches */
    bool exists;                     /* exists */
    struct sl_condition **kids;      /* and/or: n; not: 1 */
    size_t nkids;
};

/* Deep enough for any real condition; the YAML loader bounds nesting too. */
#define COND_MAX_DEPTH 32

/* text (NUL-terminated, 1..64 bytes) read as a whole integer and as a number. */
static void read_number(const char *text, struct cval *v)
{
    char *end;
    errno = 0;
    long long ll = strtoll(text, &end, 10);
    if (*end == '\0' && errno == 0) {
        v->is_int = true;
        v->i = ll;
    }
    errno = 0;
    double d = strtod(text, &end);
    /* strtod also reads "nan", "inf" and hex: only plain decimal numbers count. */
    if (*end == '\0' && errno == 0 && isfinite(d) && !strpbrk(text, "xXnN ")) {
        v->is_num = true;
        v->d = d;
    }
}

static void cval_init(struct cval *v, const struct sl_cfg_node *n)
{
    memset(v, 0, sizeof(*v));
    v->text = sl_strdup(n->scalar);
    v->len = strlen(v->text);
    v->is_null = sl_cfg_is_null(n);
    v->boolean = sl_cfg_parse_bool(v->text);
    if (v->len > 0 && v->len <= 64) {
        read_number(v->text, v);
    }
}

static void cond_free(struct sl_condition *c)
{
    if (!c) {
        return;
    }
    sl_fieldref_free(&c->ref);
    for (size_t i = 0; i < c->nvals; i++) {
        free(c->vals[i].text);
    }
    free(c->vals);
    sl_regex_free(c->re);
    for (size_t i = 0; i < c->nkids; i++) {
        cond_free(c->kids[i]);
    }
    free(c->kids);
    free(c);
}

void sl_condition_free(struct sl_condition *c)
{
    cond_free(c);
}

static struct sl_condition *compile(struct sl_cfg *cfg, struct sl_cfg_node *node,
                                    const char *where, int depth);

/* and/or: a non-empty list of conditions, each compiled with "<where>.and[i]". */
static bool compile_list(struct sl_cfg *cfg, struct sl_condition *c, struct sl_cfg_node *v,
                         const char *where, int depth)
{
    const char *name = op_names[c->op];
    if (v->type != SL_CFG_SEQ || v->n == 0) {
        sl_cfg_bad_value(cfg, v, where, name, "a non-empty list of conditions");
        return false;
    }
    bool ok = true;
    c->kids = sl_calloc(v->n, sizeof(*c->kids));
    for (size_t i = 0; i < v->n; i++) {
        char sub[256];
        snprintf(sub, sizeof(sub), "%s.%s[%zu]", where, name, i);
        struct sl_condition *k = compile(cfg, v->items[i], sub, depth + 1);
        if (!k) {
            ok = false;  /* keep going: report the problems of every item */
            continue;
        }
        c->kids[c->nkids++] = k;
    }
    return ok;
}

static bool compile_value(struct sl_cfg *cfg, struct sl_condition *c, struct sl_cfg_node *v,
                          const char *where)
{
    const char *name = op_names[c->op];
    switch (c->op) {
    case OP_EQUALS:
    case OP_NOT_EQUALS:
        if (v->type != SL_CFG_SCALAR) {
            sl_cfg_bad_value(cfg, v, where, name, "a single value");
            return false;
        }
        c->vals = sl_calloc(1, sizeof(*c->vals));
        cval_init(&c->vals[0], v);
        c->nvals = 1;
        return true;
    case OP_IN: {
        if (v->type != SL_CFG_SEQ || v->n == 0) {
            sl_cfg_bad_value(cfg, v, where, name, "a non-empty list of values");
            return false;
        }
        bool ok = true;
        c->vals = sl_calloc(v->n, sizeof(*c->vals));
        for (size_t i = 0; i < v->n; i++) {
            if (v->items[i]->type != SL_CFG_SCALAR) {
                char key[32];
                snprintf(key, sizeof(key), "in[%zu]", i);
                sl_cfg_bad_value(cfg, v->items[i], where, key, "a single value");
                ok = false;
                continue;
            }
            cval_init(&c->vals[c->nvals++], v->items[i]);
        }
        return ok;
    }
    case OP_MATCHES: {
        if (v->type != SL_CFG_SCALAR || sl_cfg_is_null(v)) {
            sl_cfg_bad_value(cfg, v, where, name, "a regular expression");
            return false;
        }
        char err[256];
        c->re = sl_regex_new(v->scalar, err, sizeof(err));
        if (!c->re) {
            sl_cfg_error(cfg, v, "%s: option 'matches' is not a valid regular expression: %s",
                         where, err);
            return false;
        }
        return true;
    }
    case OP_EXISTS: {
        int b = v->type == SL_CFG_SCALAR ? sl_cfg_parse_bool(v->scalar) : -1;
        if (b < 0) {
            sl_cfg_bad_value(cfg, v, where, name, "true or false");
            return false;
        }
        c->exists = b == 1;
        return true;
    }
    case OP_AND:
    case OP_OR:
    case OP_NOT:
        break;
    }
    return false;
}

static struct sl_condition *compile(struct sl_cfg *cfg, struct sl_cfg_node *node,
                                    const char *where, int depth)
{
    if (!node || node->type != SL_CFG_MAP || node->n == 0) {
        sl_cfg_error(cfg, node, "%s: a condition must be a map like {field: F, equals: V}, got %s",
                     where, node && node->type == SL_CFG_MAP ? "an empty map" : sl_cfg_kind(node));
        return NULL;
    }
    if (depth > COND_MAX_DEPTH) {
        sl_cfg_error(cfg, node, "%s: conditions nested deeper than %d levels", where,
                     COND_MAX_DEPTH);
        return NULL;
    }
    /* Exactly one operator per map: a second one is ambiguous (and? or?). */
    int nerrors = cfg->nerrors;  /* any error below (unknown keys too) fails this node */
    int op = -1;
    size_t op_at = 0;
    bool ok = true;
    for (size_t i = 0; i < node->n; i++) {
        for (int k = 0; k < (int)SL_ARRAY_LEN(op_names); k++) {
            if (strcmp(node->keys[i], op_names[k]) != 0) {
                continue;
            }
            node->used[i] = true;
            if (op < 0) {
                op = k;
                op_at = i;
            } else {
                sl_cfg_error(cfg, node->key_nodes[i],
                             "%s: '%s' cannot be combined with '%s' in one condition "
                             "(use and: [...] or or: [...])",
                             where, op_names[k], op_names[op]);
                ok = false;
            }
        }
    }
    struct sl_cfg_node *field = sl_cfg_get(node, "field");
    size_t field_at = 0;
    for (size_t i = 0; field && i < node->n; i++) {
        if (strcmp(node->keys[i], "field") == 0) {
            field_at = i;
        }
    }
    static const char *const known[] = {"field", "equals", "not_equals", "matches", "exists",
                                        "in", "and", "or", "not", NULL};
    sl_cfg_check_unknown_in(cfg, node, where, known);
    if (op < 0) {
        sl_cfg_error(cfg, node,
                     "%s: a condition needs one of equals, not_equals, matches, exists, in, "
                     "and, or, not",
                     where);
        return NULL;
    }

    struct sl_condition *c = sl_calloc(1, sizeof(*c));
    c->op = (enum op)op;
    struct sl_cfg_node *v = node->items[op_at];
    if (c->op == OP_AND || c->op == OP_OR || c->op == OP_NOT) {
        if (field) {
            sl_cfg_error(cfg, node->key_nodes[field_at],
                         "%s: 'field' cannot be used with '%s' (put it in the inner conditions)",
                         where, op_names[op]);
            ok = false;
        }
        if (c->op == OP_NOT) {
            char sub[256];
            snprintf(sub, sizeof(sub), "%s.not", where);
            struct sl_condition *k = compile(cfg, v, sub, depth + 1);
            if (k) {
                c->kids = sl_calloc(1, sizeof(*c->kids));
                c->kids[c->nkids++] = k;
            } else {
                ok = false;
            }
        } else if (!compile_list(cfg, c, v, where, depth)) {
            ok = false;
        }
    } else {
        if (!field) {
            sl_cfg_error(cfg, node->key_nodes[op_at], "%s: '%s' needs a 'field'", where,
                         op_names[op]);
            ok = false;
        } else if (field->type != SL_CFG_SCALAR || sl_cfg_is_null(field)) {
            sl_cfg_bad_value(cfg, field, where, "field", "a field reference");
            ok = false;
        } else if (sl_fieldref_init(&c->ref, field->scalar) != 0) {
            sl_cfg_error(cfg, field, "%s: option 'field' is not a valid field reference: '%s'",
                         where, field->scalar);
            ok = false;
        }
        if (!compile_value(cfg, c, v, where)) {
            ok = false;
        }
    }
    if (!ok || cfg->nerrors != nerrors) {
        cond_free(c);
        return NULL;
    }
    return c;
}

struct sl_condition *sl_condition_new(struct sl_cfg *cfg, struct sl_cfg_node *node,
                                      const char *where)
{
    return compile(cfg, node, where ? where : "when", 0);
}

/* ---- evaluation ----------------------------------------------------------- */

/*
 * A field's text read as the condition's value would be: as a number when
 * the value is one, as a boolean when it is one. One rule in both directions
 * (docs/filters.md): equal text, or the same number, or the same boolean -
 * so `equals: 5` takes "5.0" as it takes 5.0, and `equals: '5'` takes 5.
 */
static bool text_equals(const char *s, size_t len, const struct cval *c)
{
    if (c->is_null) {
        return false;
    }
    if (len == c->len && memcmp(s, c->text, len) == 0) {
        return true;
    }
    if (len == 0 || len > 64) {
        return false;
    }
    char buf[65];
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (c->is_num) {
        struct cval t = {0};
        read_number(buf, &t);
        return t.is_num && (t.is_int && c->is_int ? t.i == c->i : t.d == c->d);
    }
    int b = sl_cfg_parse_bool(buf);
    return c->boolean >= 0 && b >= 0 && b == c->boolean;
}

static bool value_equals(const struct sl_value *v, const struct cval *c)
{
    switch (v->type) {
    case SL_V_STRING:
        return text_equals(v->u.s.ptr, v->u.s.len, c);
    case SL_V_INT:
        return c->is_int ? v->u.i == c->i : c->is_num && (double)v->u.i == c->d;
    case SL_V_DOUBLE:
        return c->is_num && v->u.d == c->d;
    case SL_V_BOOL:
        return c->boolean >= 0 && v->u.b == (c->boolean == 1);
    case SL_V_NULL:
        return c->is_null;
    case SL_V_ARRAY:
        for (size_t i = 0; i < v->u.a.len; i++) {
            if (value_equals(&v->u.a.items[i], c)) {
                return true;
            }
        }
        return false;
    case SL_V_OBJECT:
        return false;
    }
    return false;
}

static bool value_in(const struct sl_value *v, const struct sl_condition *c)
{
    for (size_t i = 0; i < c->nvals; i++) {
        if (value_equals(v, &c->vals[i])) {
            return true;
        }
    }
    return false;
}

static bool value_matches(const struct sl_value *v, const struct sl_regex *re)
{
    char tmp[40];
    switch (v->type) {
    case SL_V_STRING:
        return sl_regex_match(re, v->u.s.ptr, v->u.s.len);
    case SL_V_INT:
        snprintf(tmp, sizeof(tmp), "%lld", (long long)v->u.i);
        return sl_regex_match(re, tmp, strlen(tmp));
    case SL_V_DOUBLE:
        /* The shortest text that reads back the same: what the user sees in JSON. */
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(tmp, sizeof(tmp), "%.*g", prec, v->u.d);
            if (strtod(tmp, NULL) == v->u.d) {
                break;
            }
        }
        return sl_regex_match(re, tmp, strlen(tmp));
    case SL_V_BOOL:
        return v->u.b ? sl_regex_match(re, "true", 4) : sl_regex_match(re, "false", 5);
    case SL_V_ARRAY:
        for (size_t i = 0; i < v->u.a.len; i++) {
            if (value_matches(&v->u.a.items[i], re)) {
                return true;
            }
        }
        return false;
    case SL_V_NULL:
    case SL_V_OBJECT:
        return false;
    }
    return false;
}

void sl_condition_root_keys(const struct sl_condition *c,
                            void (*fn)(void *arg, const char *key, size_t len), void *arg)
{
    if (c->op <= OP_IN && c->ref.nsegs > 0) {
        fn(arg, c->ref.segs[0].name, c->ref.segs[0].len);
    }
    for (size_t i = 0; i < c->nkids; i++) {
        sl_condition_root_keys(c->kids[i], fn, arg);
    }
}

bool sl_condition_eval(const struct sl_condition *c, const struct sl_value *event)
{
    const struct sl_value *v = NULL;
    if (c->op <= OP_IN) {
        v = sl_fieldref_get(&c->ref, event);
    }
    switch (c->op) {
    case OP_EQUALS:
        return v && value_equals(v, &c->vals[0]);
    case OP_NOT_EQUALS:
        return !(v && value_equals(v, &c->vals[0]));
    case OP_MATCHES:
        return v && value_matches(v, c->re);
    case OP_EXISTS:
        return (v != NULL) == c->exists;
    case OP_IN:
        return v && value_in(v, c);
    case OP_AND:
        for (size_t i = 0; i < c->nkids; i++) {
            if (!sl_condition_eval(c->kids[i], event)) {
                return false;
            }
        }
        return true;
    case OP_OR:
        for (size_t i = 0; i < c->nkids; i++) {
            if (sl_condition_eval(c->kids[i], event)) {
                return true;
            }
        }
        return false;
    case OP_NOT:
        return !sl_condition_eval(c->kids[0], event);
    }
    return false;
}
