/*
 * when.c - processor conditions, with Filebeat's semantics: every field of
 * one equals/contains/regexp/range map must hold; a missing field fails the
 * test; equals compares numbers with numbers, strings with strings and
 * booleans with booleans; contains and regexp look at strings (any string of
 * an array); range compares numbers (lt, lte, gt, gte).
 */
#include "when.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/regex.h"

enum when_kind { W_EQUALS, W_CONTAINS, W_REGEXP, W_RANGE, W_HAS, W_AND, W_OR, W_NOT };
enum range_op { R_LT, R_LTE, R_GT, R_GTE };

struct when_test {
    struct sl_fieldref ref;
    struct sl_value want;     /* equals: the value; contains: the string */
    struct sl_regex *re;      /* regexp */
    enum range_op op;         /* range */
    double bound;
};

struct when {
    enum when_kind kind;
    struct when_test *tests;  /* equals, contains, regexp, range, has_fields */
    size_t ntests;
    struct when **subs;       /* and, or, not */
    size_t nsubs;
};

static bool number_of(const struct sl_value *v, double *out)
{
    if (!v) {
        return false;
    }
    if (v->type == SL_V_INT) {
        *out = (double)v->u.i;
        return true;
    }
    if (v->type == SL_V_DOUBLE) {
        *out = v->u.d;
        return true;
    }
    return false;
}

static bool equals(const struct sl_value *got, const struct sl_value *want)
{
    double a, b;
    if (number_of(want, &b)) {
        return number_of(got, &a) && a == b;
    }
    if (want->type == SL_V_STRING) {
        return got->type == SL_V_STRING && got->u.s.len == want->u.s.len &&
               memcmp(got->u.s.ptr, want->u.s.ptr, got->u.s.len) == 0;
    }
    if (want->type == SL_V_BOOL) {
        return got->type == SL_V_BOOL && got->u.b == want->u.b;
    }
    return got->type == SL_V_NULL && want->type == SL_V_NULL;
}

static bool has_sub(const char *s, size_t n, const char *sub, size_t m)
{
    return m == 0 || (n >= m && memmem(s, n, sub, m) != NULL);
}

/* contains and regexp: the string, or any string of an array. */
static bool string_test(const struct when_test *t, enum when_kind k, const struct sl_value *v)
{
    if (v->type == SL_V_ARRAY) {
        for (size_t i = 0; i < v->u.a.len; i++) {
            if (string_test(t, k, &v->u.a.items[i])) {
                return true;
            }
        }
        return false;
    }
    if (v->type != SL_V_STRING) {
        return false;
    }
    if (k == W_CONTAINS) {
        return has_sub(v->u.s.ptr, v->u.s.len, t->want.u.s.ptr, t->want.u.s.len);
    }
    return sl_regex_match(t->re, v->u.s.ptr, v->u.s.len);
}

static bool test_one(const struct when *w, const struct when_test *t, const struct sl_value *ev)
{
    const struct sl_value *v = sl_fieldref_get(&t->ref, ev);
    if (!v) {
        return false;
    }
    double x;
    switch (w->kind) {
    case W_EQUALS: return equals(v, &t->want);
    case W_CONTAINS:
    case W_REGEXP: return string_test(t, w->kind, v);
    case W_RANGE:
        if (!number_of(v, &x)) {
            return false;
        }
        switch (t->op) {
        case R_LT: return x < t->bound;
        case R_LTE: return x <= t->bound;
        case R_GT: return x > t->bound;
        case R_GTE: return x >= t->bound;
        }
        return false;
    case W_HAS: return true;
    default: return false;
    }
}

bool when_eval(const struct when *w, const struct sl_value *ev)
{
    switch (w->kind) {
    case W_AND:
        for (size_t i = 0; i < w->nsubs; i++) {
            if (!when_eval(w->subs[i], ev)) {
                return false;
            }
        }
        return true;
    case W_OR:
        for (size_t i = 0; i < w->nsubs; i++) {
            if (when_eval(w->subs[i], ev)) {
                return true;
            }
        }
        return false;
    case W_NOT: return !when_eval(w->subs[0], ev);
    default:
        for (size_t i = 0; i < w->ntests; i++) {
            if (!test_one(w, &w->tests[i], ev)) {
                return false;
            }
        }
        return true;
    }
}

bool when_ref_overlaps(const struct sl_fieldref *r, const char *a)
{
    for (size_t i = 0; i < r->nsegs; i++) {
        size_t n = r->segs[i].len;
        if (strncmp(a, r->segs[i].name, n) != 0 || (a[n] != '\0' && a[n] != '.')) {
            return false;
        }
        a += n;
        if (*a == '\0') {
            return true;
        }
        a++;
    }
    return true;
}

bool when_reads(const struct when *w, const char *const *fields)
{
    for (size_t i = 0; i < w->ntests; i++) {
        for (size_t f = 0; fields[f]; f++) {
            if (when_ref_overlaps(&w->tests[i].ref, fields[f])) {
                return true;
            }
        }
    }
    for (size_t i = 0; i < w->nsubs; i++) {
        if (when_reads(w->subs[i], fields)) {
            return true;
        }
    }
    return false;
}

void when_free(struct when *w)
{
    if (!w) {
        return;
    }
    for (size_t i = 0; i < w->ntests; i++) {
        sl_fieldref_free(&w->tests[i].ref);
        sl_value_clear(&w->tests[i].want);
        sl_regex_free(w->tests[i].re);
    }
    free(w->tests);
    for (size_t i = 0; i < w->nsubs; i++) {
        when_free(w->subs[i]);
    }
    free(w->subs);
    free(w);
}

static bool is_int(const char *s)
{
    if (*s == '-' || *s == '+') {
        s++;
    }
    if (!*s) {
        return false;
    }
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s)) {
            return false;
        }
    }
    return true;
}

static bool is_decimal(const char *s, double *out)
{
    char *end;
    if (!*s || isspace((unsigned char)*s) || strcspn(s, "xXnNiI") != strlen(s)) {
        return false;
    }
    errno = 0;
    *out = strtod(s, &end);
    return *end == '\0' && errno == 0;
}

void when_node_value(const struct sl_cfg_node *n, struct sl_value *out)
{
    sl_value_clear(out);
    if (!n) {
        return;
    }
    double d;
    switch (n->type) {
    case SL_CFG_MAP:
        sl_value_set_object(out);
        for (size_t i = 0; i < n->n; i++) {
            when_node_value(n->items[i], sl_obj_putc(out, n->keys[i]));
        }
        break;
    case SL_CFG_SEQ:
        sl_value_set_array(out);
        for (size_t i = 0; i < n->n; i++) {
            when_node_value(n->items[i], sl_arr_push(out));
        }
        break;
    case SL_CFG_SCALAR:
        if (n->quoted) {
            sl_value_set_cstr(out, n->scalar);
        } else if (strcmp(n->scalar, "true") == 0 || strcmp(n->scalar, "false") == 0) {
            sl_value_set_bool(out, n->scalar[0] == 't');
        } else if (!n->scalar[0] || strcmp(n->scalar, "~") == 0 ||
                   strcmp(n->scalar, "null") == 0) {
            sl_value_set_null(out);
        } else if (is_int(n->scalar) && strlen(n->scalar) < 19) {
            sl_value_set_int(out, strtoll(n->scalar, NULL, 10));
        } else if (is_decimal(n->scalar, &d)) {
            sl_value_set_double(out, d);
        } else {
            sl_value_set_cstr(out, n->scalar);
        }
        break;
    }
}

static const char *const KINDS[] = {"equals", "contains", "regexp", "range",
                                    "has_fields", "and", "or", "not", NULL};

static int compile_ref(struct sl_cfg *cfg, const struct sl_cfg_node *at, const char *where,
                       const char *name, struct sl_fieldref *ref)
{
    if (sl_fieldref_init(ref, name) != 0) {
        sl_cfg_error(cfg, at, "%s: invalid field name '%s'", where, name);
        return SL_EINVAL;
    }
    return 0;
}

static int range_test(struct sl_cfg *cfg, const struct sl_cfg_node *at, const char *where,
                      const char *field, const char *op, const struct sl_cfg_node *v,
                      struct when_test *t)
{
    static const char *const ops[] = {"lt", "lte", "gt", "gte"};
    double d;
    size_t i = 0;
    while (i < SL_ARRAY_LEN(ops) && strcmp(op, ops[i]) != 0) {
        i++;
    }
    if (i == SL_ARRAY_LEN(ops)) {
        sl_cfg_error(cfg, at, "%s: range of '%s': '%s' is not lt, lte, gt or gte", where, field,
                     op);
        return SL_EINVAL;
    }
    if (!v || v->type != SL_CFG_SCALAR || !is_decimal(v->scalar, &d)) {
        sl_cfg_error(cfg, v ? v : at, "%s: range of '%s': '%s' must be a number", where, field,
                     op);
        return SL_EINVAL;
    }
    t->op = (enum range_op)i;
    t->bound = d;
    return compile_ref(cfg, at, where, field, &t->ref);
}

static struct when_test *add_test(struct when *w)
{
    w->tests = sl_realloc(w->tests, (w->ntests + 1) * sizeof(*w->tests));
    struct when_test *t = &w->tests[w->ntests++];
    memset(t, 0, sizeof(*t));
    return t;
}

/* range: {field: {gte: 1, lt: 9}} or Filebeat's dotted {field.gte: 1}. */
static int parse_range(struct sl_cfg *cfg, struct sl_cfg_node *m, const char *where,
                       struct when *w)
{
    int rc = 0;
    for (size_t i = 0; i < m->n; i++) {
        m->used[i] = true;
        struct sl_cfg_node *v = m->items[i];
        if (v && v->type == SL_CFG_MAP) {
            for (size_t j = 0; j < v->n; j++) {
                v->used[j] = true;
                rc |= range_test(cfg, v, where, m->keys[i], v->keys[j], v->items[j],
                                 add_test(w));
            }
            continue;
        }
        char field[256];
        const char *dot = strrchr(m->keys[i], '.');
        if (!dot || (size_t)(dot - m->keys[i]) >= sizeof(field)) {
            sl_cfg_error(cfg, m->key_nodes[i], "%s: range needs lt, lte, gt or gte for '%s'",
                         where, m->keys[i]);
            rc = SL_EINVAL;
            continue;
        }
        memcpy(field, m->keys[i], (size_t)(dot - m->keys[i]));
        field[dot - m->keys[i]] = '\0';
        rc |= range_test(cfg, m->key_nodes[i], where, field, dot + 1, v, add_test(w));
    }
    return rc;
}

static int parse_fieldmap(struct sl_cfg *cfg, struct sl_cfg_node *m, const char *where,
                          struct when *w)
{
    int rc = 0;
    for (size_t i = 0; i < m->n; i++) {
        m->used[i] = true;
        struct sl_cfg_node *v = m->items[i];
        struct when_test *t = add_test(w);
        rc |= compile_ref(cfg, m->key_nodes[i], where, m->keys[i], &t->ref);
        if (!v || v->type != SL_CFG_SCALAR) {
            sl_cfg_error(cfg, v ? v : m, "%s: '%s' needs a single value", where, m->keys[i]);
            rc = SL_EINVAL;
            continue;
        }
        if (w->kind == W_EQUALS) {
            when_node_value(v, &t->want);
        } else if (w->kind == W_CONTAINS) {
            sl_value_set_cstr(&t->want, v->scalar);
        } else {
            char err[256];
            t->re = sl_regex_new(v->scalar, err, sizeof(err));
            if (!t->re) {
                sl_cfg_error(cfg, v, "%s: invalid regex '%s': %s", where, v->scalar, err);
                rc = SL_EINVAL;
            }
        }
    }
    return rc;
}

static int parse_subs(struct sl_cfg *cfg, struct sl_cfg_node *v, const char *where,
                      struct when *w)
{
    if (w->kind == W_NOT) {
        w->subs = sl_calloc(1, sizeof(*w->subs));
        w->nsubs = 1;
        return when_parse(cfg, v, where, &w->subs[0]);
    }
    if (!v || v->type != SL_CFG_SEQ || v->n == 0) {
        sl_cfg_error(cfg, v, "%s: needs a list of conditions", where);
        return SL_EINVAL;
    }
    int rc = 0;
    w->subs = sl_calloc(v->n, sizeof(*w->subs));
    for (size_t i = 0; i < v->n; i++) {
        char w2[192];
        snprintf(w2, sizeof(w2), "%s[%zu]", where, i);
        rc |= when_parse(cfg, v->items[i], w2, &w->subs[w->nsubs++]);
    }
    return rc;
}

int when_parse(struct sl_cfg *cfg, struct sl_cfg_node *n, const char *where, struct when **out)
{
    *out = NULL;
    if (!n || n->type != SL_CFG_MAP || n->n != 1) {
        sl_cfg_error(cfg, n, "%s: a condition is a map with one of equals, contains, regexp, "
                     "range, has_fields, and, or, not", where);
        return SL_EINVAL;
    }
    n->used[0] = true;
    size_t k = 0;
    while (KINDS[k] && strcmp(KINDS[k], n->keys[0]) != 0) {
        k++;
    }
    if (!KINDS[k]) {
        const char *s = sl_cfg_suggest(n->keys[0], KINDS);
        sl_cfg_error(cfg, n->key_nodes[0], "%s: unknown condition '%s'%s%s%s", where,
                     n->keys[0], s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
        return SL_EINVAL;
    }
    char w2[160];
    snprintf(w2, sizeof(w2), "%s.%s", where, KINDS[k]);
    struct when *w = sl_calloc(1, sizeof(*w));
    w->kind = (enum when_kind)k;
    struct sl_cfg_node *v = n->items[0];
    int rc = 0;
    if (w->kind == W_AND || w->kind == W_OR || w->kind == W_NOT) {
        rc = parse_subs(cfg, v, w2, w);
    } else if (w->kind == W_HAS) {
        char **names = NULL;
        size_t nn = 0;
        rc = sl_cfg_strlist(cfg, n, where, "has_fields", &names, &nn);
        for (size_t i = 0; rc == 0 && i < nn; i++) {
            rc |= compile_ref(cfg, v, w2, names[i], &add_test(w)->ref);
        }
        sl_cfg_strv_free(names);
    } else if (!v || v->type != SL_CFG_MAP || v->n == 0) {
        sl_cfg_error(cfg, v ? v : n, "%s: needs a map of field: value", w2);
        rc = SL_EINVAL;
    } else if (w->kind == W_RANGE) {
        rc = parse_range(cfg, v, w2, w);
    } else {
        rc = parse_fieldmap(cfg, v, w2, w);
    }
    if (rc != 0) {
        when_free(w);
        return SL_EINVAL;
    }
    *out = w;
    return 0;
}
