/*
 * filter_grok.c - the `grok` filter: parses a text field with Logstash-style
 * grok patterns and stores what they capture as event fields. The patterns
 * are expanded and compiled once, in init(); a typo in a pattern is a
 * configuration error naming the pattern, never a runtime surprise.
 *
 * Capture semantics are Logstash's (legacy, non-ECS): a capture into a field
 * that already holds a string turns it into an array [old, new] unless the
 * field is listed in `overwrite`; empty captures are dropped unless
 * keep_empty_captures. No match is a failure (the core adds tag_on_failure,
 * _grokparsefailure by default). A match that exhausts its budget (`timeout`)
 * tags the event tag_on_timeout (_groktimeout) itself and stops, as Logstash
 * does.
 *
 * The engine (expansion, compilation, bounded matching) is grok.c.
 */
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "grok.h"
#include "sluice/arena.h"
#include "sluice/buf.h"
#include "sluice/config.h"
#include "sluice/file.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/plugin.h"
#include "sluice/value.h"

#define GROK_MAX_PATTERN_FILE (4u << 20)  /* one patterns_dir file */
#define GROK_STACK_LIMIT (1u << 22)       /* Oniguruma match stack entries */
#define FG_MAX_NODES 32u                  /* object paths a pattern's captures share */
#define FG_MAX_ROOTS 32u                  /* top-level keys a pattern's captures use */
/* The per-capture steps of a match: one function, no calls, after inlining. */
#define FG_INLINE static inline __attribute__((always_inline))

/* A segment's key in fg_pattern.kblob: where it starts and its sl_key_head. */
struct fg_key {
    uint32_t off;
    uint32_t head;
};

/* Where a capture goes, worked out once: an event costs no reference parsing. */
struct fg_target {
    struct sl_fieldref ref;  /* the capture's field, split into its path */
    enum sl_grok_type type;
    int group;               /* Oniguruma group number */
    bool overwrite;          /* listed in `overwrite` */
    bool planned;            /* nested, and its parents are nodes (plan_paths) */
    uint8_t root;            /* its top-level key among the pattern's roots */
    uint8_t *node;           /* the node of each parent below the top level, or NULL */
    struct fg_key *keys;     /* each segment's key in the pattern's kblob */
};

/* A top-level key some capture of a pattern uses, looked for once per match. */
struct fg_root {
    const char *name;
    size_t len;
    uint32_t head;  /* sl_key_head(name, len) */
};

/* A compiled pattern and its captures' targets (parallel to g->caps). */
struct fg_pattern {
    struct sl_grok *g;
    struct fg_target *tgt;
    size_t nnodes;     /* distinct parent paths below the top level (plan_paths) */
    struct fg_root roots[FG_MAX_ROOTS];
    size_t nroots;     /* 0: captures are looked up one by one */
    /* Distinct keys right below each root and node: an object a match makes
     * there gets room for them all at once (planned patterns only). */
    uint8_t root_kids[FG_MAX_ROOTS], node_kids[FG_MAX_NODES];
    uint64_t root_keys;  /* root_bit of every root */
    bool alias;        /* a capture may replace the source field's text */
    char *kblob;       /* every segment name of the captures, each NUL-terminated */
    size_t kblen;
};

/* One source field and the patterns tried on it, in order. */
struct fg_source {
    struct sl_fieldref ref;
    struct fg_pattern *pats;
    size_t npats;
};

struct filter_grok {
    /* Options (read by the core through grok_opts). */
    struct sl_strv patterns;
    struct sl_cfg_node *match;         /* during init only */
    struct sl_fieldref field;
    struct sl_strmap definitions;
    struct sl_strv patterns_dir;
    struct sl_fieldrefs overwrite;
    char *tag_on_timeout;
    uint64_t timeout_ms;
    bool keep_empty;
    bool break_on_match;
    bool named_only;
    int ecs;                           /* enum sl_ecs, when given */

    /* Derived in init. */
    struct sl_plugin_ctx *ctx;
    struct fg_source *src;
    size_t nsrc;
    struct sl_grok_limits lim;
    struct sl_metric *m_timeouts;
    /* The one thing filter() writes: a log-once latch, atomic so that any
     * number of workers may race on it. */
    atomic_bool warned;
};

/*
 * `match` is a map of field: pattern or [patterns] - values of two shapes,
 * which SL_OPT_MAP (scalars only) cannot say - so it is a node that init()
 * reads, with the field keys checked there.
 */
static const struct sl_opt grok_opts[] = {
    {.name = "patterns", .type = SL_OPT_LIST, .flags = SL_OPT_NONEMPTY,
     .offset = offsetof(struct filter_grok, patterns),
     .doc = "a pattern or a list of them, tried in order on `field`; required unless `match`"},
    {.name = "match", .type = SL_OPT_NODE, .offset = offsetof(struct filter_grok, match),
     .doc = "instead of field + patterns: a map of field: pattern or [patterns]"},
    {.name = "field", .type = SL_OPT_FIELD, .def = "message", .flags = SL_OPT_NONEMPTY,
     .offset = offsetof(struct filter_grok, field),
     .doc = "the field `patterns` parse; missing: \"\", number or boolean: its JSON text, "
            "array: each element"},
    {.name = "pattern_definitions", .type = SL_OPT_MAP,
     .offset = offsetof(struct filter_grok, definitions),
     .doc = "extra NAME: regex definitions; they override the built-in library and "
            "patterns_dir"},
    {.name = "patterns_dir", .type = SL_OPT_LIST,
     .offset = offsetof(struct filter_grok, patterns_dir),
     .doc = "directories (or files) of `NAME regex` lines, read in name order; later "
            "override earlier"},
    {.name = "overwrite", .type = SL_OPT_FIELDS, .offset = offsetof(struct filter_grok, overwrite),
     .doc = "fields a capture replaces; elsewhere an existing string becomes [old, new]"},
    {.name = "keep_empty_captures", .type = SL_OPT_BOOL, .def = "false",
     .offset = offsetof(struct filter_grok, keep_empty),
     .doc = "also store empty captures (as \"\") and groups that did not match (as null)"},
    {.name = "break_on_match", .type = SL_OPT_BOOL, .def = "true",
     .offset = offsetof(struct filter_grok, break_on_match),
     .doc = "stop at the first matching pattern; false: try every one on the original text"},
    {.name = "named_captures_only", .type = SL_OPT_BOOL, .def = "true",
     .offset = offsetof(struct filter_grok, named_only),
     .doc = "false: a bare %{NAME} also captures, into a field called NAME"},
    {.name = "ecs_compatibility", .type = SL_OPT_ENUM, .choices = sl_ecs_choices,
     .offset = offsetof(struct filter_grok, ecs),
     .doc = "field names of the built-in patterns: v8/v1 ECS (source.address, "
            "http.request.method ...), disabled: legacy (clientip, verb ...); default: "
            "pipeline.ecs_compatibility"},
    {.name = "timeout", .type = SL_OPT_DURATION, .def = "30s", .max = 3600000,
     .offset = offsetof(struct filter_grok, timeout_ms),
     .doc = "budget of one pattern on one event (Logstash's timeout_millis); 0: Oniguruma's "
            "own limit"},
    {.name = "tag_on_timeout", .type = SL_OPT_STRING, .def = "_groktimeout",
     .offset = offsetof(struct filter_grok, tag_on_timeout),
     .doc = "tag added when a match runs out of its budget (instead of tag_on_failure)"},
    {0},
};

/* ---- configuration ------------------------------------------------------ */

/* Frees what init made; the core frees the options. Runs after a failed init too. */
static void grok_fini(void *inst)
{
    struct filter_grok *f = inst;
    for (size_t i = 0; i < f->nsrc; i++) {
        struct fg_source *s = &f->src[i];
        for (size_t j = 0; j < s->npats; j++) {
            for (size_t c = 0; s->pats[j].tgt && c < s->pats[j].g->ncaps; c++) {
                sl_fieldref_free(&s->pats[j].tgt[c].ref);
                free(s->pats[j].tgt[c].node);
                free(s->pats[j].tgt[c].keys);
            }
            free(s->pats[j].kblob);
            sl_grok_free(s->pats[j].g);
            free(s->pats[j].tgt);
        }
        free(s->pats);
        sl_fieldref_free(&s->ref);
    }
    free(f->src);
    f->src = NULL;
    f->nsrc = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads a whole pattern file (at most GROK_MAX_PATTERN_FILE bytes) into b. */
static int read_file(const char *path, struct sl_buf *b, char *err, size_t errlen)
{
    int e = sl_file_read(path, GROK_MAX_PATTERN_FILE, b);
    if (e == EFBIG) {
        snprintf(err, errlen, "'%s' is larger than %u bytes", path, GROK_MAX_PATTERN_FILE);
        return SL_ELIMIT;
    }
    if (e != 0) {
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(e));
        return SL_EIO;
    }
    return 0;
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

/*
 * Whether the built-in file `name` belongs to the set of mode: "ecs-v1/..."
 * in ECS modes, "legacy/..." when disabled, a name without a directory in both.
 */
static bool builtin_in_mode(const char *name, enum sl_ecs mode)
{
    const char *slash = strchr(name, '/');
    if (!slash) {
        return true;
    }
    const char *want = mode == SL_ECS_DISABLED ? "legacy/" : "ecs-v1/";
    return strncmp(name, want, (size_t)(slash - name) + 1) == 0;
}

/*
 * The dictionary: the built-in library of the filter's mode, then
 * patterns_dir, then pattern_definitions (each overrides what came before).
 * Returns 0, or SL_EINVAL with the errors recorded; *out is set either way.
 */
static int build_library(const struct filter_grok *f, enum sl_ecs mode,
                         struct sl_grok_lib **out)
{
    struct sl_grok_lib *lib = sl_grok_lib_new();
    char err[512];
    int rc = 0;
    *out = lib;
    for (size_t i = 0; sl_grok_builtin_patterns[i] && sl_grok_builtin_patterns[i + 1]; i += 2) {
        const char *text = sl_grok_builtin_patterns[i + 1];
        if (!builtin_in_mode(sl_grok_builtin_patterns[i], mode)) {
            continue;
        }
        if (sl_grok_lib_add_text(lib, sl_grok_builtin_patterns[i], text, strlen(text), err,
                                 sizeof(err)) != 0) {
            sl_plugin_error(f->ctx, NULL, "built-in patterns: %s", err);  /* a build bug */
            rc = SL_EINVAL;
        }
    }
    for (size_t i = 0; i < f->patterns_dir.n; i++) {
        if (load_pattern_dir(lib, f->patterns_dir.v[i], err, sizeof(err)) != 0) {
            sl_plugin_error_at(f->ctx, "patterns_dir", NULL, i, "patterns_dir[%zu]: %s", i, err);
            rc = SL_EINVAL;
        }
    }
    const struct sl_strmap *defs = &f->definitions;
    for (size_t i = 0; i < defs->n; i++) {
        /* Line 0: the table hands over text, not positions; messages name the option. */
        if (sl_grok_lib_add(lib, defs->keys[i], defs->vals[i], "pattern_definitions", 0) != 0) {
            sl_plugin_error_at(f->ctx, "pattern_definitions", defs->keys[i], 0,
                               "pattern_definitions: invalid pattern name '%s' (A-Z a-z 0-9 _)",
                               defs->keys[i]);
            rc = SL_EINVAL;
        }
    }
    return rc;
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

/*
 * Compiles pattern (item i of what) for the source field into s->pats (room
 * for it is there). Errors are filed at item i of `patterns`, or (key set) at
 * the entry of `match` for that key.
 */
/* Whether the first n segments of a and b are the same keys. */
static bool same_prefix(const struct sl_fieldref *a, const struct sl_fieldref *b, size_t n)
{
    if (a->nsegs < n || b->nsegs < n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (a->segs[i].len != b->segs[i].len ||
            memcmp(a->segs[i].name, b->segs[i].name, a->segs[i].len) != 0) {
            return false;
        }
    }
    return true;
}

/* A 64-bit filter's bit for a key, from what every member keeps of it. */
static inline uint64_t root_bit(uint32_t head, size_t len)
{
    return 1ull << ((head * 2654435761u + (uint32_t)len) >> 26);
}

static void unplan_paths(struct fg_pattern *p)
{
    for (size_t c = 0; c < p->g->ncaps; c++) {
        free(p->tgt[c].node);
        p->tgt[c].node = NULL;
        p->tgt[c].planned = false;
    }
    p->nnodes = 0;
}

/* The pattern's top-level keys, numbered: a match finds them all in one pass
 * over the event's members (find_roots). More than FG_MAX_ROOTS: none. */
static void plan_roots(struct fg_pattern *p)
{
    size_t nr = 0;
    for (size_t c = 0; c < p->g->ncaps; c++) {
        struct fg_target *t = &p->tgt[c];
        const struct sl_fieldref_seg *top = &t->ref.segs[0];
        size_t j = 0;
        while (j < nr && !(p->roots[j].len == top->len &&
                           memcmp(p->roots[j].name, top->name, top->len) == 0)) {
            j++;
        }
        if (j == nr) {
            if (nr == FG_MAX_ROOTS) {
                p->nroots = 0;
                p->root_keys = 0;
                return;
            }
            p->roots[nr] = (struct fg_root){top->name, top->len, sl_key_head(top->name, top->len)};
            p->root_keys |= root_bit(p->roots[nr].head, top->len);
            nr++;
        }
        t->root = (uint8_t)j;
    }
    p->nroots = nr;
}

/* Whether planned target c's segment k names the same key as an earlier planned
 * target's under the same parent. */
static bool kid_seen(const struct fg_pattern *p, size_t c, size_t k)
{
    const struct fg_target *t = &p->tgt[c];
    for (size_t e = 0; e < c; e++) {
        const struct fg_target *u = &p->tgt[e];
        if (u->planned && u->ref.nsegs > k && same_prefix(&u->ref, &t->ref, k + 1)) {
            return true;
        }
    }
    return false;
}

static void count_kids(struct fg_pattern *p)
{
    memset(p->root_kids, 0, sizeof(p->root_kids));
    memset(p->node_kids, 0, sizeof(p->node_kids));
    for (size_t c = 0; c < p->g->ncaps; c++) {
        const struct fg_target *t = &p->tgt[c];
        for (size_t k = 1; t->planned && k < t->ref.nsegs; k++) {
            uint8_t *kids = k == 1 ? &p->root_kids[t->root] : &p->node_kids[t->node[k - 2]];
            if (*kids < UINT8_MAX && !kid_seen(p, c, k)) {
                (*kids)++;
            }
        }
    }
}

/*
 * Numbers the parent paths below the top level of the pattern's nested
 * captures ([http][request] is a node; [http] a root, [http][request][method]
 * a leaf), so that a match resolves each path once and then steps by member
 * index (apply). Only when no capture's field is another's, or a parent of
 * another's: then a leaf is never a node and, under an object the match made,
 * never already there. Otherwise every nested capture is looked up below its
 * root, as before.
 */
static void plan_paths(struct fg_pattern *p)
{
    size_t n = p->g->ncaps, nn = 0;
    const struct fg_target *owner[FG_MAX_NODES];
    size_t depth[FG_MAX_NODES];
    plan_roots(p);
    if (!p->nroots) {
        return;
    }
    for (size_t a = 0; a < n; a++) {
        for (size_t b = 0; b < n; b++) {
            if (a != b && same_prefix(&p->tgt[a].ref, &p->tgt[b].ref, p->tgt[a].ref.nsegs)) {
                return;
            }
        }
    }
    for (size_t c = 0; c < n; c++) {
        struct fg_target *t = &p->tgt[c];
        if (t->ref.nsegs < 2) {
            continue;
        }
        t->planned = true;
        if (t->ref.nsegs > 2) {
            t->node = sl_calloc(t->ref.nsegs - 2, sizeof(*t->node));
        }
        for (size_t k = 2; k < t->ref.nsegs; k++) {
            size_t j = 0;
            while (j < nn && !(depth[j] == k && same_prefix(&owner[j]->ref, &t->ref, k))) {
                j++;
            }
            if (j == nn) {
                if (nn == FG_MAX_NODES) {
                    unplan_paths(p);
                    return;
                }
                owner[nn] = t;
                depth[nn++] = k;
            }
            t->node[k - 2] = (uint8_t)j;
        }
    }
    p->nnodes = nn;
    count_kids(p);
}

/*
 * The captures' segment names as one blob of NUL-terminated keys (each name
 * once): a match that adds members copies it into the event's arena whole
 * and points their keys into that copy, instead of copying key by key.
 */
static void plan_keys(struct fg_pattern *p)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    for (size_t c = 0; c < p->g->ncaps; c++) {
        struct fg_target *t = &p->tgt[c];
        t->keys = sl_calloc(t->ref.nsegs, sizeof(*t->keys));
        for (size_t i = 0; i < t->ref.nsegs; i++) {
            const struct sl_fieldref_seg *seg = &t->ref.segs[i];
            size_t off = 0;
            while (off < b.len && !(strlen(b.data + off) == seg->len &&
                                    memcmp(b.data + off, seg->name, seg->len) == 0)) {
                off += strlen(b.data + off) + 1;
            }
            if (off == b.len) {
                (void)sl_buf_append(&b, seg->name, seg->len);  /* no maximum: cannot fail */
                (void)sl_buf_putc(&b, '\0');
            }
            t->keys[i] = (struct fg_key){(uint32_t)off, sl_key_head(seg->name, seg->len)};
        }
    }
    p->kblen = b.len;
    p->kblob = sl_malloc(b.len ? b.len : 1);
    if (b.len) {
        memcpy(p->kblob, b.data, b.len);
    }
    sl_buf_free(&b);
}

static int compile_one(const struct filter_grok *f, const struct sl_grok_lib *lib,
                       const char *key, const char *what, size_t i, const char *pattern,
                       const char *field, struct fg_source *s)
{
    char err[768];
    struct sl_grok *g = sl_grok_compile(lib, pattern, f->named_only, err, sizeof(err));
    if (!g) {
        sl_plugin_error_at(f->ctx, key ? "match" : "patterns", key, i, "%s[%zu]: %s", what, i,
                           err);
        return SL_EINVAL;
    }
    struct fg_pattern *p = &s->pats[s->npats++];
    p->g = g;
    p->tgt = sl_calloc(g->ncaps ? g->ncaps : 1, sizeof(*p->tgt));
    for (size_t c = 0; c < g->ncaps; c++) {
        const char *fld = g->caps[c].field;
        /* Cannot fail: the engine accepted fld as a field reference. */
        sl_fieldref_init(&p->tgt[c].ref, fld);
        p->tgt[c].type = g->caps[c].type;
        p->tgt[c].group = g->caps[c].group;
        p->alias |= refs_overlap(fld, field) != 0;
        for (size_t o = 0; o < f->overwrite.n; o++) {
            if (refs_overlap(f->overwrite.v[o].text, fld) == 2) {
                p->tgt[c].overwrite = true;  /* "[a][b]" and "a.b" alike */
            }
        }
    }
    plan_paths(p);
    plan_keys(p);
    return 0;
}

/* `field` + `patterns`: one source. */
static int compile_patterns(struct filter_grok *f, const struct sl_grok_lib *lib)
{
    f->src = sl_calloc(1, sizeof(*f->src));
    struct fg_source *s = &f->src[f->nsrc++];
    sl_fieldref_init(&s->ref, f->field.text);  /* the core compiled the same text */
    s->pats = sl_calloc(f->patterns.n, sizeof(*s->pats));
    int rc = 0;
    for (size_t i = 0; i < f->patterns.n; i++) {
        if (compile_one(f, lib, NULL, "patterns", i, f->patterns.v[i], f->field.text, s) != 0) {
            rc = SL_EINVAL;
        }
    }
    return rc;
}

/* One entry of `match`: field (the key) and a pattern or a list of them. */
static int compile_match_entry(struct filter_grok *f, const struct sl_grok_lib *lib,
                               const char *field, const struct sl_cfg_node *node,
                               struct fg_source *s)
{
    char what[300];
    snprintf(what, sizeof(what), "match.%s", field);
    int rc = 0;
    if (sl_fieldref_init(&s->ref, field) != 0) {
        sl_plugin_error_at(f->ctx, "match", field, 0, "match: '%s' is not a field reference",
                           field);
        rc = SL_EINVAL;  /* its patterns are still checked */
    }
    size_t n = node->type == SL_CFG_SEQ ? node->n : 1;
    if (node->type == SL_CFG_MAP || n == 0) {
        sl_plugin_error_at(f->ctx, "match", field, 0,
                           "option '%s' must be a pattern or a non-empty list of them", what);
        return SL_EINVAL;
    }
    s->pats = sl_calloc(n, sizeof(*s->pats));
    for (size_t i = 0; i < n; i++) {
        const struct sl_cfg_node *pn = node->type == SL_CFG_SEQ ? node->items[i] : node;
        if (pn->type != SL_CFG_SCALAR) {
            sl_plugin_error_at(f->ctx, "match", field, 0, "%s[%zu]: must be a pattern string",
                               what, i);
            rc = SL_EINVAL;
        } else if (compile_one(f, lib, field, what, i, pn->scalar, field, s) != 0) {
            rc = SL_EINVAL;
        }
    }
    return rc;
}

static int compile_match(struct filter_grok *f, const struct sl_grok_lib *lib)
{
    const struct sl_cfg_node *m = f->match;
    if (m->type != SL_CFG_MAP || m->n == 0) {
        sl_plugin_error(f->ctx, "match", "option 'match' must be a map of field: [patterns]");
        return SL_EINVAL;
    }
    f->src = sl_calloc(m->n, sizeof(*f->src));
    int rc = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (compile_match_entry(f, lib, m->keys[i], m->items[i], &f->src[f->nsrc++]) != 0) {
            rc = SL_EINVAL;
        }
    }
    return rc;
}

/* The match budget: `timeout` of wall clock for every search (lib/regex.c). */
static void set_limits(struct filter_grok *f)
{
    f->lim.time_ms = f->timeout_ms;
    f->lim.stack = GROK_STACK_LIMIT;
}

/* Its sources, every capture's field (replaced whole when overwritten at the
 * root) and tags (tag_on_timeout). */
static void declare_touches(const struct filter_grok *f, struct sl_plugin_ctx *ctx)
{
    sl_filter_touches(ctx, "tags", strlen("tags"));
    for (size_t i = 0; i < f->nsrc; i++) {
        const struct fg_source *s = &f->src[i];
        sl_filter_touches_field(ctx, &s->ref);
        for (size_t p = 0; p < s->npats; p++) {
            for (size_t c = 0; c < s->pats[p].g->ncaps; c++) {
                const struct fg_target *t = &s->pats[p].tgt[c];
                if (t->overwrite && t->ref.nsegs == 1) {
                    sl_filter_replaces(ctx, t->ref.segs[0].name, t->ref.segs[0].len);
                } else {
                    sl_filter_touches_field(ctx, &t->ref);
                }
            }
        }
    }
}

static int grok_init(void *inst, struct sl_plugin_ctx *ctx)
{
    struct filter_grok *f = inst;
    f->ctx = ctx;
    atomic_init(&f->warned, false);
    set_limits(f);

    struct sl_grok_lib *lib;
    int rc = build_library(f, sl_plugin_ecs(ctx, f->ecs), &lib);
    if (rc != 0) {
        /* A broken pattern file would only cause "unknown pattern" noise. */
    } else if (f->patterns.n && f->match) {
        sl_plugin_error(ctx, "match", "give either 'patterns' (with 'field') or 'match', not "
                        "both");
        rc = SL_EINVAL;
    } else if (f->match) {
        rc = compile_match(f, lib);
    } else if (f->patterns.n) {
        rc = compile_patterns(f, lib);
    } else {
        sl_plugin_error(ctx, NULL, "option 'patterns' is required");
        rc = SL_EINVAL;
    }
    sl_grok_lib_free(lib);
    if (rc != 0) {
        return rc;
    }
    declare_touches(f, ctx);
    if (ctx->metrics) {
        const char *labels[] = {"filter", ctx->label, NULL};
        f->m_timeouts = sl_metrics_counter(ctx->metrics, "sluice_aggregator_grok_timeouts_total",
                                           "Events a grok filter gave up on (match budget spent).",
                                           labels);
    }
    return 0;
}

/* ---- filtering ---------------------------------------------------------- */

/*
 * :int and :float convert as Logstash does (Ruby's to_i / to_f): leading
 * blanks, then the longest number the text starts with; a text that starts
 * with none is 0. "12abc" -> 12, "-" -> 0, "1.5" -> 1 (:int), "1e3" -> 1000.0
 * (:float). An integer beyond 64 bits saturates.
 */
static int64_t lenient_int(const char *s, size_t len)
{
    /* The common case first: 1 to 18 plain digits, which always fit. */
    if (len - 1 < 18) {
        int64_t v = 0;
        size_t i = 0;
        while (i < len && (unsigned char)(s[i] - '0') < 10) {
            v = v * 10 + (s[i++] - '0');
        }
        if (i == len) {
            return v;
        }
    }
    char buf[40];
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' ||
                       s[i] == '\f' || s[i] == '\v')) {
        i++;
    }
    size_t n = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) {
        buf[n++] = s[i++];
    }
    /* Ruby allows '_' between digits ("1_000"). */
    for (; i < len && n < sizeof(buf) - 1; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            buf[n++] = s[i];
        } else if (!(s[i] == '_' && i + 1 < len && s[i + 1] >= '0' && s[i + 1] <= '9' &&
                     n > 0 && buf[n - 1] >= '0' && buf[n - 1] <= '9')) {
            break;
        }
    }
    buf[n] = '\0';
    if (i < len && n == sizeof(buf) - 1 && s[i] >= '0' && s[i] <= '9') {
        return buf[0] == '-' ? INT64_MIN : INT64_MAX;  /* more digits than fit */
    }
    long long v = strtoll(buf, NULL, 10);  /* saturates; "" and "-" are 0 */
    return (int64_t)v;
}

static double lenient_float(const char *s, size_t len)
{
    char buf[64];
    size_t n = SL_MIN(len, sizeof(buf) - 1), k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '_') {
            buf[k++] = s[i];
        }
    }
    buf[k] = '\0';
    /* strtod would also read "inf", "nan" and hex floats, which Ruby's to_f does not. */
    const char *p = buf;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v') {
        p++;
    }
    const char *d = p + (*p == '+' || *p == '-');
    if (!((*d >= '0' && *d <= '9') || (*d == '.' && d[1] >= '0' && d[1] <= '9')) ||
        (d[0] == '0' && (d[1] == 'x' || d[1] == 'X'))) {
        return 0.0;
    }
    double v = strtod(p, NULL);
    return isfinite(v) ? v : (v > 0 ? DBL_MAX : -DBL_MAX);
}

/* A root or a parent path of one match (plan_paths): its member's index in
 * the object above it once resolved (indices stay valid: members are only
 * added while captures are stored), and whether this match made it. */
struct fg_node {
    size_t idx;
    bool made;
};
#define FG_UNRESOLVED SIZE_MAX

/*
 * What a match has resolved so far, and - in an arena scope (value.h) - the
 * arena blocks its strings and keys come from: one copy of the subject's
 * captured span (text), in which each string capture becomes a
 * NUL-terminated string in place, and one copy of the pattern's key blob.
 * A capture can share text only if its end (where its NUL goes) lies in no
 * other shared capture: captures are shared in group order while each starts
 * after the last NUL written (or has exactly the last one's range); any other
 * is copied on its own, from the subject, as without an arena.
 */
struct fg_match {
    struct fg_node root[FG_MAX_ROOTS];
    struct fg_node node[FG_MAX_NODES];
    struct sl_arena *arena;     /* NULL: strings and keys are copied one by one */
    const struct fg_pattern *p;
    const char *subj;           /* the subject the region's offsets are in */
    char *text;                 /* subj[lo..hi) + 1 byte, or NULL (none shared) */
    long lo, hi;
    long last_beg, last_end;    /* the last shared capture (-1: none yet) */
    char *keys;                 /* p->kblob in the arena, once a key was needed */
};

/* The capture subj[beg..beg+len) (len > 0) as a NUL-terminated string in m's
 * text, or NULL when it cannot share it (see struct fg_match). */
FG_INLINE char *shared_text(struct fg_match *m, long beg, size_t len)
{
    long end = beg + (long)len;
    if (beg < m->lo || end > m->hi) {
        return NULL;  /* outside the copy: a capture inside a look-around (share_text) */
    }
    if (beg <= m->last_end) {
        if (beg != m->last_beg || end != m->last_end) {
            return NULL;
        }
    } else {
        m->text[end - m->lo] = '\0';
        m->last_beg = beg;
        m->last_end = end;
    }
    return m->text + (beg - m->lo);
}

/* slot := the capture s[0..len), as its type asks (s NULL: a group that did not
 * take part, stored as null). The value is written in place: no temporary to move. */
FG_INLINE void set_capture(struct sl_value *slot, enum sl_grok_type type, const char *s,
                           size_t len, struct fg_match *m)
{
    if (type == SL_GROK_STRING && s) {
        char *sh = m && m->text && len ? shared_text(m, s - m->subj, len) : NULL;
        if (sh) {
            sl_value_set_arena_str(slot, sh, len);
        } else {
            sl_value_set_str(slot, s, len);
        }
    } else if (!s) {
        sl_value_set_null(slot);
    } else if (type == SL_GROK_INT && slot->type == SL_V_NULL) {
        *slot = (struct sl_value){.type = SL_V_INT, .u.i = lenient_int(s, len)};  /* owns nothing */
    } else if (type == SL_GROK_INT) {
        sl_value_set_int(slot, lenient_int(s, len));
    } else {
        sl_value_set_double(slot, lenient_float(s, len));
    }
}

/* Appends t's segment i to obj, known absent: its key from the arena copy of
 * the key blob when there is an arena. */
FG_INLINE struct sl_value *add_key(struct sl_value *obj, const struct fg_target *t, size_t i,
                                   struct fg_match *m)
{
    const struct sl_fieldref_seg *seg = &t->ref.segs[i];
    if (!m->arena) {
        return sl_obj_add(obj, seg->name, seg->len);
    }
    if (!m->keys) {
        m->keys = sl_arena_alloc_aligned(m->arena, m->p->kblen, 1);
        memcpy(m->keys, m->p->kblob, m->p->kblen);
    }
    return sl_obj_add_arena_key(obj, m->keys + t->keys[i].off, seg->len, t->keys[i].head);
}

/* Finds the pattern's roots among the event's members, in one pass: a root
 * not found is absent (captures add it). The first of equal keys, as a lookup.
 * Returns how many were not found. */
static size_t find_roots(const struct fg_pattern *p, const struct sl_value *event,
                         struct fg_match *m)
{
    size_t left = p->nroots;
    for (size_t r = 0; r < p->nroots; r++) {
        m->root[r] = (struct fg_node){FG_UNRESOLVED, false};
    }
    for (size_t i = 0; i < event->u.o.len && left; i++) {
        const struct sl_member *mem = &event->u.o.items[i];
        if (!(p->root_keys & root_bit(mem->khead, mem->klen))) {
            continue;
        }
        for (size_t r = 0; r < p->nroots; r++) {
            const struct fg_root *k = &p->roots[r];
            if (m->root[r].idx == FG_UNRESOLVED && sl_member_is(mem, k->name, k->len, k->head)) {
                m->root[r].idx = i;
                left--;
                break;
            }
        }
    }
    return left;
}

/* The index in obj of the member whose value slot v is. */
static size_t member_index(const struct sl_value *obj, const struct sl_value *v)
{
    return (size_t)((const char *)v - (const char *)&obj->u.o.items[0].v) /
           sizeof(struct sl_member);
}

/*
 * A capture's slot, created null when absent, kept when present. Its root
 * comes from the match's roots; below it a planned capture steps through the
 * match's resolved parents (each parent looked up once per match, a key under
 * an object the match made appended without a lookup), any other is looked up
 * level by level, a non-object on the way replaced by an object.
 */
static struct sl_value *capture_path(struct sl_value *cur, const struct fg_target *t,
                                     struct fg_match *m, bool made);

FG_INLINE struct sl_value *capture_slot(struct sl_value *event, const struct fg_target *t,
                                        struct fg_match *m)
{
    struct fg_node *rn = &m->root[t->root];
    struct sl_value *cur;
    if (rn->idx == FG_UNRESOLVED) {
        cur = add_key(event, t, 0, m);
        *rn = (struct fg_node){event->u.o.len - 1, true};
    } else {
        cur = &event->u.o.items[rn->idx].v;
    }
    return t->ref.nsegs == 1 ? cur : capture_path(cur, t, m, rn->made);
}

/* The member seg i of t in object cur (a non-object replaced, null made
 * one), added when absent; made: cur was made by this match, so it is absent
 * without a lookup; afterwards: whether this call added it. */
static inline struct sl_value *path_child(struct sl_value *cur, const struct fg_target *t, size_t i,
                                   struct fg_match *m, bool *made, size_t kids)
{
    if (cur->type != SL_V_OBJECT && cur->type != SL_V_NULL) {
        sl_value_set_object(cur);  /* (a null one becomes one as sl_obj_add adds) */
    }
    if (*made && cur->type == SL_V_NULL) {
        /* A new object: room for the keys the pattern puts in it, in one block
         * the size they need (not 8 members for one). */
        sl_value_set_object(cur);
        sl_obj_reserve(cur, kids ? kids : 1);
    }
    struct sl_value *v = *made ? NULL : sl_obj_get(cur, t->ref.segs[i].name, t->ref.segs[i].len);
    *made = !v;
    return v ? v : add_key(cur, t, i, m);
}

/* capture_slot below the root cur (made: by this match). */
static struct sl_value *capture_path(struct sl_value *cur, const struct fg_target *t,
                                     struct fg_match *m, bool made)
{
    size_t last = t->ref.nsegs - 1;
    if (!t->planned) {
        for (size_t i = 1; i <= last; i++) {
            if (cur->type != SL_V_OBJECT) {
                sl_value_set_object(cur);  /* intermediate non-object: replaced */
            }
            cur = sl_obj_put(cur, t->ref.segs[i].name, t->ref.segs[i].len);
        }
        return cur;
    }
    const struct fg_pattern *p = m->p;
    size_t kids = p->root_kids[t->root];  /* of cur, the parent of segment i */
    for (size_t i = 1; i < last; i++) {
        struct fg_node *nd = &m->node[t->node[i - 1]];
        size_t below = p->node_kids[t->node[i - 1]];
        if (nd->idx != FG_UNRESOLVED) {
            cur = &cur->u.o.items[nd->idx].v;
            made = nd->made;
            kids = below;
            continue;
        }
        struct sl_value *v = path_child(cur, t, i, m, &made, kids);
        *nd = (struct fg_node){member_index(cur, v), made};
        cur = v;
        kids = below;
    }
    return path_child(cur, t, last, m, &made, kids);  /* a leaf is never a node */
}

/* The slot without the match's roots (a pattern with too many of them). */
static struct sl_value *target_slot(struct sl_value *event, const struct fg_target *t)
{
    if (t->ref.nsegs == 1) {
        return sl_obj_put(event, t->ref.segs[0].name, t->ref.segs[0].len);
    }
    return sl_fieldref_put(&t->ref, event);
}

/* Stores a capture in its field, the Logstash way (see the file comment). */
FG_INLINE void put_capture(struct sl_value *event, const struct fg_target *t, struct fg_match *m,
                           const char *s, size_t len)
{
    struct sl_value *cur = m ? capture_slot(event, t, m) : target_slot(event, t);
    if (!cur) {
        /* cannot happen: the event is an object and the reference was checked */
    } else if (t->overwrite || cur->type == SL_V_NULL) {
        set_capture(cur, t->type, s, len, m);
    } else if (cur->type == SL_V_ARRAY) {
        set_capture(sl_arr_push(cur), t->type, s, len, m);
    } else if (cur->type == SL_V_STRING) {
        struct sl_value old = {0};
        sl_value_move(&old, cur);
        sl_value_set_array(cur);
        sl_value_move(sl_arr_push(cur), &old);
        set_capture(sl_arr_push(cur), t->type, s, len, m);
    }
    /* else not stored: an existing number, bool or object wins */
}

/*
 * In an arena scope: the one copy of the subject that the match's string
 * captures share (from the first to the end of the last, plus a byte for the
 * last NUL), unless the captures cover too little of that span to be worth it.
 * A match ending within FG_SHARE_WHOLE bytes is copied whole without looking
 * (the waste is small and bounded): the match, where every capture lies but
 * those inside a look-ahead or look-behind, which shared_text leaves out.
 */
#define FG_SHARE_WHOLE 1024
static void share_text(struct fg_match *m, const struct fg_pattern *p, const char *s,
                       const OnigRegion *r)
{
    long lo = LONG_MAX, hi = -1;
    size_t total = 0;
    m->text = NULL;
    m->last_beg = m->last_end = -1;
    bool whole = r->end[0] <= FG_SHARE_WHOLE;
    if (whole) {
        lo = r->beg[0];  /* the match: every capture lies in it (look-arounds aside) */
        hi = r->end[0];
        total = (size_t)(hi - lo);
    }
    for (size_t i = 0; !whole && i < p->g->ncaps; i++) {
        const struct fg_target *t = &p->tgt[i];
        long beg = r->beg[t->group], end = r->end[t->group];
        if (t->type != SL_GROK_STRING || beg < 0 || beg >= end) {
            continue;
        }
        lo = SL_MIN(lo, beg);
        hi = SL_MAX(hi, end);
        total += (size_t)(end - beg);
    }
    if (hi < 0 || (size_t)(hi - lo) > 2 * total + 64) {
        return;
    }
    m->lo = lo;
    m->hi = hi;
    m->text = sl_arena_alloc_aligned(m->arena, (size_t)(hi - lo) + 1, 1);
    memcpy(m->text, s + lo, (size_t)(hi - lo));
}

static void apply(const struct filter_grok *f, const struct fg_pattern *p, const char *s,
                  const OnigRegion *r, struct sl_value *event)
{
    struct fg_match match, *m = NULL;
    if (p->nroots && event->type == SL_V_OBJECT) {
        m = &match;
        size_t missing = find_roots(p, event, m);
        for (size_t i = 0; i < p->nnodes; i++) {
            m->node[i].idx = FG_UNRESOLVED;
        }
        m->p = p;
        m->subj = s;
        m->keys = NULL;
        m->text = NULL;
        m->arena = sl_value_arena();
        if (m->arena) {
            sl_obj_reserve(event, missing);  /* one growth, not a doubling or two */
            share_text(m, p, s, r);
        }
    }
    const struct fg_target *tgt = p->tgt;
    for (size_t i = 0, n = p->g->ncaps; i < n; i++) {
        const struct fg_target *t = &tgt[i];
        int beg = r->beg[t->group], end = r->end[t->group];
        if ((beg < 0 || beg == end) && !f->keep_empty) {
            continue;
        }
        /* One call site: the compiler inlines the whole store. */
        put_capture(event, t, m, beg < 0 ? NULL : s + beg, beg < 0 ? 0 : (size_t)(end - beg));
    }
}

/*
 * A private copy of a text that captures might change or free. Short ones go
 * on the stack; longer ones into the event's arena scope when there is one
 * (they die with the batch, as the event does), the heap otherwise.
 */
struct fg_copy {
    char *p;
    bool heap;
    char small[2048];
};

static const char *copy_text(struct fg_copy *c, const char *s, size_t len)
{
    struct sl_arena *arena = sl_value_arena();
    c->heap = false;
    if (len <= sizeof(c->small)) {
        c->p = c->small;
    } else if (arena) {
        c->p = sl_arena_alloc_aligned(arena, len, 1);
    } else {
        c->p = sl_malloc(len);
        c->heap = true;
    }
    memcpy(c->p, s, len);
    return c->p;
}

static void copy_done(struct fg_copy *c)
{
    if (c->heap) {
        free(c->p);
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
            struct fg_copy copy;
            apply(f, &src->pats[i], copy_text(&copy, s, len), r, event);
            copy_done(&copy);
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

/* Each element of an array field is matched; any match counts (Logstash).
 * Captures may change the array, so it is looked up again for every element. */
static int match_array(const struct filter_grok *f, const struct fg_source *src,
                       struct sl_value *event)
{
    int matched = 0;
    struct sl_buf text;
    sl_buf_init(&text, 0);
    for (size_t i = 0;; i++) {
        const struct sl_value *arr = sl_fieldref_get(&src->ref, event);
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
    sl_buf_free(&text);
    return matched;
}

static int match_source(const struct filter_grok *f, const struct fg_source *src,
                        struct sl_value *event)
{
    const struct sl_value *v = sl_fieldref_get(&src->ref, event);
    if (v && v->type == SL_V_STRING && (f->break_on_match || src->npats == 1)) {
        /* The common case: no copy unless something is captured. */
        return match_text(f, src, v->u.s.ptr, v->u.s.len, true, event);
    }
    if (!v || v->type == SL_V_NULL) {
        return match_text(f, src, "", 0, false, event);  /* missing: "" (Logstash) */
    }
    if (v->type == SL_V_STRING) {
        /* Every pattern sees the original text, whatever earlier ones stored. */
        struct fg_copy copy;
        const char *s = copy_text(&copy, v->u.s.ptr, v->u.s.len);
        int matched = match_text(f, src, s, v->u.s.len, false, event);
        copy_done(&copy);
        return matched;
    }
    if (v->type == SL_V_ARRAY) {
        return match_array(f, src, event);
    }
    struct sl_buf text;
    sl_buf_init(&text, 0);
    as_text(v, &text);
    int matched = match_text(f, src, text.data, text.len, false, event);
    sl_buf_free(&text);
    return matched;
}

/* Out of budget: tag_on_timeout instead of tag_on_failure, counted and logged once. */
static enum sl_filter_result timed_out(struct filter_grok *f, struct sl_value *event)
{
    sl_event_add_tag(event, f->tag_on_timeout);
    sl_counter_inc(f->m_timeouts);
    if (!atomic_exchange(&f->warned, true)) {
        sl_warn("%s: a match ran out of its time budget; event tagged %s (logged once)",
                f->ctx->id, f->tag_on_timeout);
    }
    return SL_FILTER_FAIL_TAGGED;
}

static enum sl_filter_result grok_filter(void *inst, struct sl_value *event)
{
    struct filter_grok *f = inst;
    bool matched = false;
    for (size_t i = 0; i < f->nsrc; i++) {
        int rc = match_source(f, &f->src[i], event);
        if (rc < 0) {
            return timed_out(f, event);
        }
        if (rc > 0) {
            matched = true;
            if (f->break_on_match) {
                break;
            }
        }
    }
    /* No match: the core adds tag_on_failure (default _grokparsefailure). */
    return matched ? SL_FILTER_KEEP : SL_FILTER_FAIL;
}

const struct sl_plugin sl_plugin_filter_grok = {
    .name = "grok",
    .kind = SL_PLUGIN_FILTER,
    .summary = "parses a text field with Logstash-style grok patterns into event fields",
    .options = grok_opts,
    .size = sizeof(struct filter_grok),
    .failure_tag = "_grokparsefailure",
    .init = grok_init,
    .fini = grok_fini,
    .filter = grok_filter,
};
