/*
 * filter_grok.c - the `grok` filter: parses a text field with Logstash-style
 * grok patterns and stores what they capture as event fields. The patterns
 * are expanded and compiled once, in init(); a typo in a pattern is a
 * configuration error at its line and column, never a runtime surprise.
 *
 * Capture semantics are Logstash's (legacy, non-ECS): a capture into a field
 * that already holds a string turns it into an array [old, new] unless the
 * field is listed in `overwrite`; empty captures are dropped unless
 * keep_empty_captures. A match that exhausts its budget (`timeout`) tags the
 * event _groktimeout and stops, as Logstash does.
 *
 * The engine (expansion, compilation, bounded matching) is grok.c.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "grok.h"
#include "sluice/buf.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/plugin.h"

#define GROK_MAX_PATTERN_FILE (4u << 20)  /* one patterns_dir file */
#define GROK_STACK_LIMIT (1u << 22)       /* Oniguruma match stack entries */

/* Where a capture goes, worked out once. */
struct fg_target {
    size_t flen;       /* strlen(field) */
    bool simple;       /* a top-level key: no reference syntax to parse */
    bool overwrite;    /* listed in `overwrite` */
};

/* A compiled pattern and its captures' targets (parallel to g->caps). */
struct fg_pattern {
    struct sl_grok *g;
    struct fg_target *tgt;
    bool alias;        /* a capture may replace the source field's text */
};

/* One source field and the patterns tried on it, in order. */
struct fg_source {
    char *field;
    struct fg_pattern *pats;
    size_t npats;
};

struct filter_grok {
    char *id;
    struct fg_source *src;
    size_t nsrc;
    char **tag_on_failure;
    char *tag_on_timeout;
    bool keep_empty;
    bool break_on_match;
    struct sl_grok_limits lim;
    struct sl_metric *m_timeouts;
    atomic_bool warned;
};

/* ---- configuration ------------------------------------------------------ */

static void grok_free(void *inst)
{
    struct filter_grok *f = inst;
    if (!f) {
        return;
    }
    for (size_t i = 0; i < f->nsrc; i++) {
        for (size_t j = 0; j < f->src[i].npats; j++) {
            sl_grok_free(f->src[i].pats[j].g);
            free(f->src[i].pats[j].tgt);
        }
        free(f->src[i].pats);
        free(f->src[i].field);
    }
    free(f->src);
    sl_cfg_strv_free(f->tag_on_failure);
    free(f->tag_on_timeout);
    free(f->id);
    free(f);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads a whole pattern file (at most GROK_MAX_PATTERN_FILE bytes) into b. */
static int read_file(const char *path, struct sl_buf *b, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        return SL_EIO;
    }
    int rc = 0;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0) {
        if (sl_buf_append(b, chunk, n) != 0) {
            snprintf(err, errlen, "'%s' is larger than %u bytes", path, GROK_MAX_PATTERN_FILE);
            rc = SL_ELIMIT;
            break;
        }
    }
    if (rc == 0 && ferror(fp)) {
        snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        rc = SL_EIO;
    }
    fclose(fp);
    return rc;
}

static int load_pattern_file(struct sl_grok_lib *lib, const char *path, char *err, size_t errlen)
{
    struct sl_buf b;
    sl_buf_init(&b, GROK_MAX_PATTERN_FILE);
    int rc = read_file(path, &b, err, errlen);
    if (rc == 0) {
        rc = sl_grok_lib_add_text(lib, path, b.data ? b.data : "", b.len, err, errlen);
    }
    sl_buf_free(&b);
    return rc;
}

/* A patterns_dir entry: every regular file in a directory (by name, dot-files
 * skipped), or a single file. */
static int load_pattern_dir(struct sl_grok_lib *lib, const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        snprintf(err, errlen, "cannot open '%s': %s", dir, strerror(errno));
        return SL_EIO;
    }
    if (!S_ISDIR(st.st_mode)) {
        return load_pattern_file(lib, dir, err, errlen);
    }
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot open '%s': %s", dir, strerror(errno));
        return SL_EIO;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = sl_realloc(names, cap * sizeof(*names));
        }
        size_t len = strlen(dir) + strlen(de->d_name) + 2;
        names[n] = sl_malloc(len);
        snprintf(names[n], len, "%s/%s", dir, de->d_name);
        n++;
    }
    closedir(d);
    if (n) {
        qsort(names, n, sizeof(*names), cmp_str);
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
            rc = load_pattern_file(lib, names[i], err, errlen);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static struct sl_grok_lib *build_library(struct sl_cfg *cfg, struct sl_cfg_node *opts,
                                         const char *id)
{
    struct sl_grok_lib *lib = sl_grok_lib_new();
    char err[512];
    for (size_t i = 0; sl_grok_builtin_patterns[i] && sl_grok_builtin_patterns[i + 1]; i += 2) {
        const char *text = sl_grok_builtin_patterns[i + 1];
        if (sl_grok_lib_add_text(lib, sl_grok_builtin_patterns[i], text, strlen(text), err,
                                 sizeof(err)) != 0) {
            sl_cfg_error(cfg, opts, "%s: built-in patterns: %s", id, err);  /* a build bug */
        }
    }

    char **dirs;
    size_t ndirs;
    sl_cfg_strlist(cfg, opts, id, "patterns_dir", &dirs, &ndirs);
    struct sl_cfg_node *dn = sl_cfg_get(opts, "patterns_dir");
    for (size_t i = 0; i < ndirs; i++) {
        if (load_pattern_dir(lib, dirs[i], err, sizeof(err)) != 0) {
            const struct sl_cfg_node *at = dn->type == SL_CFG_SEQ ? dn->items[i] : dn;
            sl_cfg_error(cfg, at, "%s: patterns_dir[%zu]: %s", id, i, err);
        }
    }
    sl_cfg_strv_free(dirs);

    struct sl_cfg_node *defs = sl_cfg_get(opts, "pattern_definitions");
    if (defs && defs->type == SL_CFG_MAP) {
        for (size_t i = 0; i < defs->n; i++) {
            const struct sl_cfg_node *v = defs->items[i];
            if (v->type != SL_CFG_SCALAR) {
                sl_cfg_error(cfg, v, "%s: pattern_definitions: '%s' must be a regex string", id,
                             defs->keys[i]);
            } else if (sl_grok_lib_add(lib, defs->keys[i], v->scalar, cfg->file ? cfg->file : "",
                                       v->line) != 0) {
                sl_cfg_error(cfg, defs->key_nodes[i],
                             "%s: pattern_definitions: invalid pattern name '%s' (A-Z a-z 0-9 _)",
                             id, defs->keys[i]);
            }
        }
    } else if (defs && !(defs->type == SL_CFG_SCALAR && !defs->quoted && !*defs->scalar)) {
        sl_cfg_error(cfg, defs, "%s: option 'pattern_definitions' must be a map of NAME: regex",
                     id);
    }
    return lib;
}

/*
 * A field reference as its path, each segment followed by '\x01', so that
 * "[a][b]" and "a.b" compare equal and prefixes fall on segment boundaries.
 */
static char *ref_path(const char *ref)
{
    size_t n = strlen(ref);
    char *out = sl_malloc(n + 2), *o = out;
    if (ref[0] == '[') {
        for (const char *p = ref; *p; p++) {
            if (*p == ']') {
                *o++ = '\x01';
            } else if (*p != '[') {
                *o++ = *p;
            }
        }
    } else {
        for (const char *p = ref; *p; p++) {
            *o++ = *p == '.' ? '\x01' : *p;
        }
        *o++ = '\x01';
    }
    *o = '\0';
    return out;
}

/* 2: a and b name the same field; 1: one is inside the other (storing into
 * one can change or free the other); 0: unrelated. */
static int refs_overlap(const char *a, const char *b)
{
    char *pa = ref_path(a), *pb = ref_path(b);
    size_t la = strlen(pa), lb = strlen(pb);
    int overlap = strncmp(pa, pb, SL_MIN(la, lb)) != 0 ? 0 : la == lb ? 2 : 1;
    free(pa);
    free(pb);
    return overlap;
}

static bool valid_ref(const char *ref)
{
    struct sl_value scratch = {0};
    sl_value_set_object(&scratch);
    bool ok = sl_field_put(&scratch, ref) != NULL;
    sl_value_clear(&scratch);
    return ok;
}

/* Compiles the patterns of node (a string or a list) for field into s. */
static void compile_source(struct sl_cfg *cfg, struct filter_grok *f, struct sl_grok_lib *lib,
                           const char *field, struct sl_cfg_node *node, const char *what,
                           bool named_only, char **overwrite, struct fg_source *s)
{
    s->field = sl_strdup(field);
    size_t n = node->type == SL_CFG_SEQ ? node->n : 1;
    s->pats = sl_calloc(n ? n : 1, sizeof(*s->pats));
    if (node->type == SL_CFG_MAP || n == 0) {
        sl_cfg_error(cfg, node, "%s: option '%s' must be a pattern or a non-empty list of them",
                     f->id, what);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct sl_cfg_node *pn = node->type == SL_CFG_SEQ ? node->items[i] : node;
        if (pn->type != SL_CFG_SCALAR) {
            sl_cfg_error(cfg, pn, "%s: %s[%zu]: must be a pattern string", f->id, what, i);
            continue;
        }
        char err[768];
        struct sl_grok *g = sl_grok_compile(lib, pn->scalar, named_only, err, sizeof(err));
        if (!g) {
            sl_cfg_error(cfg, pn, "%s: %s[%zu]: %s", f->id, what, i, err);
            continue;
        }
        struct fg_pattern *p = &s->pats[s->npats++];
        p->g = g;
        p->tgt = sl_calloc(g->ncaps ? g->ncaps : 1, sizeof(*p->tgt));
        for (size_t c = 0; c < g->ncaps; c++) {
            const char *fld = g->caps[c].field;
            p->tgt[c].flen = strlen(fld);
            p->tgt[c].simple = strpbrk(fld, ".[]") == NULL;
            p->alias |= refs_overlap(fld, field) != 0;
            for (char **o = overwrite; *o; o++) {
                if (refs_overlap(*o, fld) == 2) {
                    p->tgt[c].overwrite = true;  /* "[a][b]" and "a.b" alike */
                }
            }
        }
    }
}

static void *grok_init(struct sl_cfg *cfg, struct sl_cfg_node *opts, struct sl_plugin_env *env)
{
    struct filter_grok *f = sl_calloc(1, sizeof(*f));
    int errors = cfg->nerrors;
    char *field = NULL;
    char **overwrite = NULL;
    size_t n;
    bool named_only;
    uint64_t timeout_ms;
    f->id = sl_strdup(env->id);
    atomic_init(&f->warned, false);

    sl_cfg_get(opts, "when");  /* the core's */
    sl_cfg_str(cfg, opts, f->id, "field", "message", &field);
    if (!valid_ref(field)) {
        sl_cfg_error(cfg, sl_cfg_get(opts, "field"), "%s: option 'field' must be a field "
                     "reference like message, [a][b] or a.b, got '%s'", f->id, field);
    }
    if (sl_cfg_get(opts, "tag_on_failure")) {
        sl_cfg_strlist(cfg, opts, f->id, "tag_on_failure", &f->tag_on_failure, &n);
    } else {
        f->tag_on_failure = sl_calloc(2, sizeof(char *));
        f->tag_on_failure[0] = sl_strdup("_grokparsefailure");
    }
    sl_cfg_str(cfg, opts, f->id, "tag_on_timeout", "_groktimeout", &f->tag_on_timeout);
    sl_cfg_strlist(cfg, opts, f->id, "overwrite", &overwrite, &n);
    sl_cfg_bool(cfg, opts, f->id, "keep_empty_captures", false, &f->keep_empty);
    sl_cfg_bool(cfg, opts, f->id, "break_on_match", true, &f->break_on_match);
    sl_cfg_bool(cfg, opts, f->id, "named_captures_only", true, &named_only);
    sl_cfg_duration(cfg, opts, f->id, "timeout", 30000, 0, 3600000, &timeout_ms);

    if (timeout_ms > 0) {
        unsigned long rate = sl_grok_retries_per_ms();
        f->lim.retries =
            timeout_ms > ULONG_MAX / rate ? ULONG_MAX : (unsigned long)timeout_ms * rate;
        f->lim.time_ms = timeout_ms;
    }
    f->lim.stack = GROK_STACK_LIMIT;

    int before_lib = cfg->nerrors;
    struct sl_grok_lib *lib = build_library(cfg, opts, f->id);
    struct sl_cfg_node *patterns = sl_cfg_get(opts, "patterns");
    struct sl_cfg_node *match = sl_cfg_get(opts, "match");
    if (cfg->nerrors != before_lib) {
        /* A broken pattern file would only cause "unknown pattern" noise. */
    } else if (patterns && match) {
        sl_cfg_error(cfg, match, "%s: give either 'patterns' (with 'field') or 'match', not both",
                     f->id);
    } else if (match) {
        if (match->type != SL_CFG_MAP || match->n == 0) {
            sl_cfg_error(cfg, match, "%s: option 'match' must be a map of field: [patterns]",
                         f->id);
        } else {
            f->src = sl_calloc(match->n, sizeof(*f->src));
            for (size_t i = 0; i < match->n; i++) {
                if (!valid_ref(match->keys[i])) {
                    sl_cfg_error(cfg, match->key_nodes[i], "%s: match: '%s' is not a field "
                                 "reference", f->id, match->keys[i]);
                }
                char what[300];
                snprintf(what, sizeof(what), "match.%s", match->keys[i]);
                compile_source(cfg, f, lib, match->keys[i], match->items[i], what, named_only,
                               overwrite, &f->src[f->nsrc++]);
            }
        }
    } else if (patterns) {
        f->src = sl_calloc(1, sizeof(*f->src));
        compile_source(cfg, f, lib, field, patterns, "patterns", named_only, overwrite,
                       &f->src[f->nsrc++]);
    } else {
        sl_cfg_error(cfg, opts, "%s: option 'patterns' is required", f->id);
    }
    sl_grok_lib_free(lib);
    sl_cfg_strv_free(overwrite);
    free(field);
    sl_cfg_check_unknown(cfg, opts, f->id);
    if (cfg->nerrors != errors) {
        grok_free(f);
        return NULL;
    }
    if (env->metrics) {
        const char *labels[] = {"filter", f->id, NULL};
        f->m_timeouts = sl_metrics_counter(env->metrics, "sluice_aggregator_grok_timeouts_total",
                                           "Events a grok filter gave up on (match budget spent).",
                                           labels);
    }
    return f;
}

/* ---- filtering ---------------------------------------------------------- */

/* "123" -> 123 and "-1.5e3" -> -1500.0; anything else stays a string. */
static bool parse_int(const char *s, size_t len, int64_t *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    const char *p = buf[0] == '-' || buf[0] == '+' ? buf + 1 : buf;
    if (*p < '0' || *p > '9') {
        return false;
    }
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end || errno) {
        return false;
    }
    *out = v;
    return true;
}

static bool parse_float(const char *s, size_t len, double *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof(buf) || strspn(s, "0123456789+-.eE") < len) {
        return false;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    double v = strtod(buf, &end);
    if (*end || end == buf || !isfinite(v)) {
        return false;
    }
    *out = v;
    return true;
}

/* Stores v (moved) in field, the Logstash way (see the file comment). */
static void put_capture(struct sl_value *event, const char *field, const struct fg_target *t,
                        struct sl_value *v)
{
    /* One lookup: the slot is created null when absent, kept when present. */
    struct sl_value *cur = t->simple ? sl_obj_put(event, field, t->flen)
                                     : sl_field_put(event, field);
    if (!cur) {
        /* cannot happen: the event is an object and the reference was checked */
    } else if (t->overwrite || cur->type == SL_V_NULL) {
        sl_value_move(cur, v);
    } else if (cur->type == SL_V_ARRAY) {
        sl_value_move(sl_arr_push(cur), v);
    } else if (cur->type == SL_V_STRING) {
        struct sl_value old = {0};
        sl_value_move(&old, cur);
        sl_value_set_array(cur);
        sl_value_move(sl_arr_push(cur), &old);
        sl_value_move(sl_arr_push(cur), v);
    }
    sl_value_clear(v);  /* not stored: an existing number, bool or object wins */
}

static void apply(const struct filter_grok *f, const struct fg_pattern *p, const char *s,
                  const OnigRegion *r, struct sl_value *event)
{
    const struct sl_grok *g = p->g;
    for (size_t i = 0; i < g->ncaps; i++) {
        const struct sl_grok_capture *c = &g->caps[i];
        int beg = r->beg[c->group], end = r->end[c->group];
        struct sl_value v = {0};
        if (beg < 0) {
            if (!f->keep_empty) {
                continue;
            }
        } else if (beg == end && !f->keep_empty) {
            continue;
        } else {
            const char *cs = s + beg;
            size_t len = (size_t)(end - beg);
            int64_t iv;
            double dv;
            if (c->type == SL_GROK_INT && parse_int(cs, len, &iv)) {
                sl_value_set_int(&v, iv);
            } else if (c->type == SL_GROK_FLOAT && parse_float(cs, len, &dv)) {
                sl_value_set_double(&v, dv);
            } else {
                sl_value_set_str(&v, cs, len);
            }
        }
        put_capture(event, c->field, &p->tgt[i], &v);
    }
}

/*
 * Tries src's patterns on one input text: 1 matched, 0 not, SL_ELIMIT.
 * borrowed: s points into the event itself. A pattern that captures into the
 * source field (grok on message into message) may free it, so its captures
 * are taken from a copy; and nothing is tried after the first match.
 */
static int match_text(const struct filter_grok *f, const struct fg_source *src, const char *s,
                      size_t len, bool borrowed, struct sl_value *event)
{
    int matched = 0;
    for (size_t i = 0; i < src->npats; i++) {
        const OnigRegion *r;
        int rc = sl_grok_match(src->pats[i].g, s, len, &f->lim, &r);
        if (rc < 0) {
            return rc;
        }
        if (rc == 0) {
            continue;
        }
        matched = 1;
        if (borrowed && src->pats[i].alias) {
            char small[2048];
            char *copy = len <= sizeof(small) ? small : sl_malloc(len);
            memcpy(copy, s, len);
            apply(f, &src->pats[i], copy, r, event);
            if (copy != small) {
                free(copy);
            }
        } else {
            apply(f, &src->pats[i], s, r, event);
        }
        if (f->break_on_match || borrowed) {
            break;
        }
    }
    return matched;
}

/* A non-string input as text: numbers and booleans as JSON writes them,
 * null (or a missing field) as "", objects as their JSON. */
static void as_text(const struct sl_value *v, struct sl_buf *b)
{
    sl_buf_reset(b);
    if (v && v->type == SL_V_STRING) {
        sl_buf_append(b, v->u.s.ptr, v->u.s.len);
    } else if (v && v->type != SL_V_NULL) {
        sl_json_write(b, v, NULL);
    }
    sl_buf_cstr(b);
}

static int match_source(const struct filter_grok *f, const struct fg_source *src,
                        struct sl_value *event)
{
    const struct sl_value *v = sl_field_get(event, src->field);
    if (v && v->type == SL_V_STRING && (f->break_on_match || src->npats == 1)) {
        /* The common case: no copy unless something is captured. */
        return match_text(f, src, v->u.s.ptr, v->u.s.len, true, event);
    }
    int matched = 0;
    struct sl_buf text;
    sl_buf_init(&text, 0);
    if (v && v->type == SL_V_ARRAY) {
        /* Each element is matched; any match counts (Logstash). Captures may
         * change the array, so it is looked up again for every element. */
        for (size_t i = 0;; i++) {
            const struct sl_value *arr = sl_field_get(event, src->field);
            if (!arr || arr->type != SL_V_ARRAY || i >= arr->u.a.len) {
                break;
            }
            as_text(&arr->u.a.items[i], &text);
            int rc = match_text(f, src, text.data, text.len, false, event);
            if (rc < 0) {
                matched = rc;
                break;
            }
            matched |= rc;
        }
    } else {
        as_text(v, &text);
        matched = match_text(f, src, text.data, text.len, false, event);
    }
    sl_buf_free(&text);
    return matched;
}

static int grok_filter(void *inst, struct sl_value *event)
{
    struct filter_grok *f = inst;
    bool matched = false;
    for (size_t i = 0; i < f->nsrc; i++) {
        int rc = match_source(f, &f->src[i], event);
        if (rc < 0) {
            sl_event_add_tag(event, f->tag_on_timeout);
            if (f->m_timeouts) {
                sl_counter_inc(f->m_timeouts);
            }
            if (!atomic_exchange(&f->warned, true)) {
                sl_warn("%s: a match ran out of its time budget; event tagged %s (logged once)",
                        f->id, f->tag_on_timeout);
            }
            return SL_ELIMIT;
        }
        if (rc > 0) {
            matched = true;
            if (f->break_on_match) {
                break;
            }
        }
    }
    if (!matched) {
        for (char **t = f->tag_on_failure; *t; t++) {
            sl_event_add_tag(event, *t);
        }
        return SL_EINVAL;  /* kept, and counted as result="error" by the core */
    }
    return SL_FILTER_KEEP;
}

const struct sl_plugin sl_plugin_filter_grok = {
    .name = "grok",
    .kind = SL_PLUGIN_FILTER,
    .init = grok_init,
    .free = grok_free,
    .filter = grok_filter,
};
