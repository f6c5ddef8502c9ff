/*
 * instance.c - a configured plugin as the core holds it (see instance.h), and
 * the core side of sluice/plugin.h: option errors, verdicts, dead letters,
 * retries and every counter a plugin's work shows up in.
 *
 * The core's own options are read here, before the plugin's table, so a
 * plugin can neither forget nor re-interpret them: `when` has one grammar,
 * `tag_on_failure` one meaning (absent or null: the plugin's default tag;
 * []: none), `dead_letter_path` one file format.
 */
#include "instance.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include "options.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/tls.h"

#define FILTER_EVENTS_NAME "sluice_aggregator_filter_events_total"
#define FILTER_EVENTS_HELP "Events through each filter, by result (ok|dropped|error)."
#define FILTER_SECONDS_NAME "sluice_aggregator_filter_duration_seconds"
#define FILTER_SECONDS_HELP \
    "Time each filter took per event it ran on, its when condition included."
#define OUTPUT_EVENTS_NAME "sluice_aggregator_output_events_total"
#define OUTPUT_EVENTS_HELP \
    "Events handled by each output, by result (ok|retry|failed|dead_letter|dropped)."
#define OUTPUT_SECONDS_NAME "sluice_aggregator_output_request_seconds"
#define OUTPUT_SECONDS_HELP "Time from handing a batch to an output to its verdict."

/* The options every instance has: read by the core, documented with every plugin. */
struct core_opts {
    char *id;
    struct sl_cfg_node *when;
    struct sl_cfg_node *tag_on_failure;
    bool is_else;
    char *dead_letter_path;
};

#define CORE_ID                                                                           \
    {.name = "id", .type = SL_OPT_STRING, .offset = offsetof(struct core_opts, id),        \
     .doc = "names the instance in metric labels; default: the plugin's name, then "       \
            "name_2, name_3 ... for later instances of the same plugin"}
#define CORE_WHEN                                                                         \
    {.name = "when", .type = SL_OPT_NODE, .offset = offsetof(struct core_opts, when),      \
     .doc = "a condition (docs/filters.md, Conditions): only events it accepts go through"}

const struct sl_opt agg_filter_core_opts[] = {
    CORE_ID,
    CORE_WHEN,
    {.name = "tag_on_failure", .type = SL_OPT_NODE,
     .offset = offsetof(struct core_opts, tag_on_failure),
     .doc = "tags added when the filter fails; absent or null: the filter's default tag; "
            "[]: none"},
    {0},
};

const struct sl_opt agg_output_core_opts[] = {
    CORE_ID,
    CORE_WHEN,
    {.name = "else", .type = SL_OPT_BOOL, .offset = offsetof(struct core_opts, is_else),
     .def = "false", .doc = "receive the events that no output with a `when` took"},
    {.name = "dead_letter_path", .type = SL_OPT_STRING,
     .offset = offsetof(struct core_opts, dead_letter_path),
     .doc = "directory for events refused for good (dlq-YYYY.MM.DD.ndjson); without it "
            "such an event is dropped, logged and counted result=\"dropped\""},
    {0},
};

static const char *const verify_modes[] = {"full", "certificate", "none", "strict", NULL};

const struct sl_opt sl_plugin_tls_opts[] = {
    {.name = "certificate_authorities", .type = SL_OPT_LIST,
     .offset = offsetof(struct sl_plugin_tls, certificate_authorities),
     .doc = "CA certificates to trust (PEM paths or PEM text); empty: the system store"},
    {.name = "certificate", .type = SL_OPT_STRING,
     .offset = offsetof(struct sl_plugin_tls, certificate),
     .doc = "client certificate for mutual TLS (PEM path or text)"},
    {.name = "key", .type = SL_OPT_STRING, .offset = offsetof(struct sl_plugin_tls, key),
     .doc = "the client certificate's private key"},
    {.name = "key_passphrase", .type = SL_OPT_STRING,
     .offset = offsetof(struct sl_plugin_tls, key_passphrase),
     .doc = "passphrase of an encrypted key"},
    {.name = "verification_mode", .type = SL_OPT_ENUM,
     .offset = offsetof(struct sl_plugin_tls, verification_mode), .def = "full",
     .choices = verify_modes, .doc = "how the server's certificate is checked (as Filebeat)"},
    {0},
};

/* ---- docs ------------------------------------------------------------------------ */

void agg_plugin_doc(struct sl_buf *out, const struct sl_plugin *p)
{
    bool filter = p->kind == SL_PLUGIN_FILTER;
    sl_buf_printf(out, "`%s` (%s): %s.\n\n", p->name, filter ? "filter" : "output",
                  p->summary ? p->summary : "");
    sl_buf_puts(out, AGG_OPTS_DOC_HEAD);
    agg_opts_doc_rows(out, p->options, "");
    char def[96];
    for (const struct sl_opt *o = filter ? agg_filter_core_opts : agg_output_core_opts; o->name;
         o++) {
        struct sl_opt row = *o;
        if (strcmp(o->name, "tag_on_failure") == 0) {
            if (!p->failure_tag) {
                continue;  /* a filter that never fails */
            }
            snprintf(def, sizeof(def), "[%s]", p->failure_tag);
            row.def = def;
            row.type = SL_OPT_LIST;
        }
        agg_opts_doc_rows(out, (const struct sl_opt[]){row, {0}}, "");
    }
}

/* ---- init-time helpers for plugins ---------------------------------------------- */

static void plugin_verror(struct sl_instance *in, struct sl_cfg_node *at, const char *fmt,
                          va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (!in->cfg) {
        sl_error("%s: %s", in->id, msg);  /* after init: a plugin bug, but not a crash */
        return;
    }
    sl_cfg_error(in->cfg, at, "%s: %s", in->id, msg);
}

/* opt's node (by name, then alias) in the instance's map; the map itself when absent. */
static struct sl_cfg_node *opt_node(struct sl_instance *in, const char *opt)
{
    struct sl_cfg_node *n = opt ? sl_cfg_get(in->opts, opt) : NULL;
    for (const struct sl_opt *o = in->plugin->options; !n && opt && o && o->name; o++) {
        if (strcmp(o->name, opt) == 0 && o->alias) {
            n = sl_cfg_get(in->opts, o->alias);
        }
    }
    return n ? n : in->opts;
}

void sl_plugin_error(struct sl_plugin_ctx *ctx, const char *opt, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    plugin_verror(ctx->core, opt_node(ctx->core, opt), fmt, ap);
    va_end(ap);
}

void sl_plugin_error_node(struct sl_plugin_ctx *ctx, const struct sl_cfg_node *n,
                          const char *fmt, ...)
{
    struct sl_instance *in = ctx->core;
    va_list ap;
    va_start(ap, fmt);
    plugin_verror(in, n ? (struct sl_cfg_node *)n : in->opts, fmt, ap);
    va_end(ap);
}

void sl_plugin_error_at(struct sl_plugin_ctx *ctx, const char *opt, const char *key,
                        size_t index, const char *fmt, ...)
{
    struct sl_cfg_node *n = opt_node(ctx->core, opt), *at = n;
    if (key && n->type == SL_CFG_MAP) {
        for (size_t i = 0; i < n->n; i++) {
            if (strcmp(n->keys[i], key) == 0) {
                at = n->items[i];
                break;
            }
        }
    } else if (!key && n->type == SL_CFG_SEQ && index < n->n) {
        at = n->items[index];
    }
    va_list ap;
    va_start(ap, fmt);
    plugin_verror(ctx->core, at, fmt, ap);
    va_end(ap);
}

bool sl_plugin_given(const struct sl_plugin_ctx *ctx, const char *opt)
{
    const struct sl_instance *in = ctx->core;
    return !sl_cfg_is_null(sl_cfg_get(in->opts, opt));
}

const char *const sl_ecs_choices[] = {"v8", "v1", "disabled", NULL};

enum sl_ecs sl_plugin_ecs(const struct sl_plugin_ctx *ctx, int value)
{
    return sl_plugin_given(ctx, "ecs_compatibility") ? (enum sl_ecs)value : ctx->ecs;
}

/* ---- the core's options ---------------------------------------------------------- */

const char *agg_instance_given_id(struct sl_cfg_node *opts)
{
    struct sl_cfg_node *n = sl_cfg_get(opts, "id");
    return n && n->type == SL_CFG_SCALAR && !sl_cfg_is_null(n) ? n->scalar : NULL;
}

static void read_fail_tags(struct sl_instance *in, struct sl_cfg_node *t)
{
    size_t n = 0;
    if (sl_cfg_is_null(t)) {
        in->fail_tags = sl_calloc(2, sizeof(char *));
        in->fail_tags[0] = sl_strdup(in->plugin->failure_tag);
        return;
    }
    sl_cfg_strlist(in->cfg, in->opts, in->id, "tag_on_failure", &in->fail_tags, &n);
}

static const struct sl_opt *core_table(const struct sl_plugin *p)
{
    return p->kind == SL_PLUGIN_FILTER ? agg_filter_core_opts : agg_output_core_opts;
}

static void read_core_opts(struct sl_instance *in)
{
    struct sl_cfg *cfg = in->cfg;
    struct core_opts co = {0};
    const struct sl_opt *table = core_table(in->plugin);
    agg_opts_read(cfg, in->opts, in->id, table, &co, AGG_OPTS_PARTIAL);
    if (sl_plugin_given(&in->ctx, "id") && (!co.id || !*co.id)) {
        sl_cfg_error(cfg, sl_cfg_get(in->opts, "id"), "%s: option 'id' must not be empty",
                     in->id);
    }
    if (co.when) {
        char where[192];
        snprintf(where, sizeof(where), "%s: when", in->id);
        in->when = sl_condition_new(cfg, co.when, where);
    }
    if (in->plugin->kind == SL_PLUGIN_FILTER) {
        if (in->plugin->failure_tag) {
            read_fail_tags(in, co.tag_on_failure);
        } else if (co.tag_on_failure) {
            sl_cfg_error(cfg, co.tag_on_failure, "%s: this filter never fails: "
                         "'tag_on_failure' has no effect", in->id);
        }
    } else {
        in->is_else = co.is_else;
        if (co.is_else && co.when) {
            sl_cfg_error(cfg, sl_cfg_get(in->opts, "else"),
                         "%s: an output takes either 'when' or 'else', not both", in->id);
        }
        if (co.dead_letter_path && *co.dead_letter_path) {
            in->dlq = sl_dlq_new(co.dead_letter_path);
        }
    }
    agg_opts_free(table, &co);
}

/* 1 us .. 10 s: a mutate takes a microsecond, a grok on a long line a millisecond, a
 * regex at its time budget seconds. */
const double agg_filter_seconds_buckets[AGG_FILTER_SECONDS_NBOUNDS] = {
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3,
    5e-3, 1e-2, 2.5e-2, 5e-2, 0.1,    0.25,   0.5,  1,    2.5,    5,    10};
const size_t agg_filter_seconds_nbuckets = SL_ARRAY_LEN(agg_filter_seconds_buckets);

static void make_metrics(struct sl_instance *in, struct sl_metrics *m)
{
    if (!m) {
        return;
    }
    const char *kind = in->plugin->kind == SL_PLUGIN_FILTER ? "filter" : "output";
#define SERIES(name, help, result) \
    sl_metrics_counter(m, name, help, (const char *[]){kind, in->label, "result", result, NULL})
    if (in->plugin->kind == SL_PLUGIN_FILTER) {
        in->m_ok = SERIES(FILTER_EVENTS_NAME, FILTER_EVENTS_HELP, "ok");
        in->m_dropped = SERIES(FILTER_EVENTS_NAME, FILTER_EVENTS_HELP, "dropped");
        in->m_error = SERIES(FILTER_EVENTS_NAME, FILTER_EVENTS_HELP, "error");
        in->m_seconds = sl_metrics_histogram(m, FILTER_SECONDS_NAME, FILTER_SECONDS_HELP,
                                             (const char *[]){"filter", in->label, NULL},
                                             agg_filter_seconds_buckets,
                                             agg_filter_seconds_nbuckets);
        return;
    }
    in->m_ok = SERIES(OUTPUT_EVENTS_NAME, OUTPUT_EVENTS_HELP, "ok");
    in->m_failed = SERIES(OUTPUT_EVENTS_NAME, OUTPUT_EVENTS_HELP, "failed");
    in->m_retry = SERIES(OUTPUT_EVENTS_NAME, OUTPUT_EVENTS_HELP, "retry");
    in->m_dead = SERIES(OUTPUT_EVENTS_NAME, OUTPUT_EVENTS_HELP, "dead_letter");
    in->m_dropped = SERIES(OUTPUT_EVENTS_NAME, OUTPUT_EVENTS_HELP, "dropped");
#undef SERIES
    in->m_seconds = sl_metrics_histogram(m, OUTPUT_SECONDS_NAME, OUTPUT_SECONDS_HELP,
                                         (const char *[]){"output", in->label, NULL},
                                         sl_metrics_latency_buckets, sl_metrics_latency_nbuckets);
}

struct sl_instance *agg_instance_new(const struct sl_plugin *p, struct sl_cfg *cfg,
                                     struct sl_cfg_node *opts, const struct agg_instance_args *a)
{
    struct sl_instance *in = sl_calloc(1, sizeof(*in));
    int errors = cfg->nerrors;
    in->plugin = p;
    in->id = sl_strdup(a->id);
    const char *given = agg_instance_given_id(opts);
    in->label = sl_strdup(given ? given : a->label ? a->label : p->name);
    in->cfg = cfg;
    in->opts = opts;
    in->inst = sl_calloc(1, p->size ? p->size : 1);
    in->ctx = (struct sl_plugin_ctx){.loop = a->loop, .metrics = a->metrics, .id = in->id,
                                     .label = in->label, .check_only = a->check_only, .ecs = a->ecs,
                                     .core = in};
    read_core_opts(in);
    agg_opts_read(cfg, opts, in->id, p->options, in->inst, core_table(p));
    if (cfg->nerrors == errors && p->init) {
        in->initialised = true;
        if (p->init(in->inst, &in->ctx) != 0 && cfg->nerrors == errors) {
            sl_cfg_error(cfg, opts, "%s: cannot start", in->id);
        }
    }
    in->cfg = NULL;
    if (cfg->nerrors != errors) {
        agg_instance_free(in);
        return NULL;
    }
    make_metrics(in, a->metrics);
    return in;
}

void sl_filter_touches(struct sl_plugin_ctx *ctx, const char *key, size_t len)
{
    struct agg_touch *t = &ctx->core->touch;
    t->declared = true;
    if (!key) {
        return;
    }
    for (size_t i = 0; i < t->n; i++) {
        if (strlen(t->keys[i]) == len && memcmp(t->keys[i], key, len) == 0) {
            return;
        }
    }
    t->keys = sl_realloc(t->keys, (t->n + 1) * sizeof(*t->keys));
    t->keys[t->n++] = sl_strndup(key, len);
}

void sl_filter_touches_field(struct sl_plugin_ctx *ctx, const struct sl_fieldref *r)
{
    if (r->nsegs > 0) {
        sl_filter_touches(ctx, r->segs[0].name, r->segs[0].len);
    } else {
        sl_filter_touches(ctx, NULL, 0);
    }
}

static void touch_key(void *arg, const char *key, size_t len)
{
    sl_filter_touches(arg, key, len);
}

void sl_filter_touches_template(struct sl_plugin_ctx *ctx, const struct sl_template *t)
{
    sl_filter_touches(ctx, NULL, 0);
    if (t) {
        sl_template_root_keys(t, touch_key, ctx);
    }
}

void sl_filter_replaces(struct sl_plugin_ctx *ctx, const char *key, size_t len)
{
    (void)key;
    (void)len;
    /* Nothing to parse: the merged writer lets a member set in the tree win
     * over an unparsed one of the text (write_merged). */
    sl_filter_touches(ctx, NULL, 0);
}

void sl_filter_touches_all(struct sl_plugin_ctx *ctx)
{
    ctx->core->touch.declared = ctx->core->touch.all = true;
}

static void free_touch(struct agg_touch *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->keys[i]);
    }
    free(t->keys);
    *t = (struct agg_touch){0};
}

static void free_reads(struct sl_encoding *e)
{
    for (size_t i = 0; e->reads && e->reads[i]; i++) {
        free((char *)e->reads[i]);
    }
    free((void *)e->reads);
    e->reads = NULL;
}

void agg_instance_free(struct sl_instance *in)
{
    if (!in) {
        return;
    }
    if (in->initialised && in->plugin->fini) {
        in->plugin->fini(in->inst);
    }
    agg_opts_free(in->plugin->options, in->inst);
    free(in->inst);
    sl_condition_free(in->when);
    sl_cfg_strv_free(in->fail_tags);
    sl_dlq_free(in->dlq);
    free_reads(&in->enc);
    free_touch(&in->touch);
    free(in->id);
    free(in->label);
    free(in);
}

/* ---- filters ---------------------------------------------------------------------- */

enum sl_filter_result agg_instance_run(struct sl_instance *in, struct sl_value *ev, bool *ran)
{
    *ran = !in->when || sl_condition_eval(in->when, ev);
    if (!*ran) {
        return SL_FILTER_KEEP;
    }
    enum sl_filter_result r = in->plugin->filter(in->inst, ev);
    switch (r) {
    case SL_FILTER_KEEP:
    case SL_FILTER_FAIL_TAGGED:
        break;
    case SL_FILTER_DROP:
        sl_value_clear(ev);
        break;
    case SL_FILTER_FAIL:
        for (char **t = in->fail_tags; t && *t; t++) {
            sl_event_add_tag(ev, *t);
        }
        break;
    }
    return r;
}

void agg_instance_count(struct sl_instance *in, const uint64_t n[3])
{
    if (n[SL_FILTER_KEEP]) {
        sl_counter_add(in->m_ok, n[SL_FILTER_KEEP]);
    }
    if (n[SL_FILTER_DROP]) {
        sl_counter_add(in->m_dropped, n[SL_FILTER_DROP]);
    }
    if (n[SL_FILTER_FAIL]) {
        sl_counter_add(in->m_error, n[SL_FILTER_FAIL]);
    }
}

enum sl_filter_result agg_instance_filter(struct sl_instance *in, struct sl_value *ev,
                                          bool *ran)
{
    enum sl_filter_result r = agg_instance_run(in, ev, ran);
    if (*ran) {
        uint64_t n[3] = {0};
        n[r == SL_FILTER_FAIL_TAGGED ? SL_FILTER_FAIL : r] = 1;
        agg_instance_count(in, n);
    }
    return r;
}

/* ---- outputs ---------------------------------------------------------------------- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void agg_batch_prepare(struct sl_batch *b, struct agg_batch_core *c, struct sl_instance *in,
                       struct sl_value *events, size_t n, const uint8_t *take,
                       void (*done)(struct agg_batch_core *, int))
{
    c->in = in;
    c->enc = NULL;
    c->done = done;
    atomic_init(&c->ndead, 0);
    c->finished = false;
    c->start = now_seconds();
    *b = (struct sl_batch){.events = events, .n = n, .take = take, .core = c};
    for (size_t i = 0; i < n; i++) {
        b->count += sl_batch_event(b, i) != NULL;
    }
}

static bool is_key(const char *k, size_t n, const char *key)
{
    return n == strlen(key) && memcmp(k, key, n) == 0;
}

/* A key's bit in a 64-bit set of keys, from its head and length. */
static inline uint64_t key_bit(uint32_t head, size_t len)
{
    return 1ull << ((head * 2654435761u + (uint32_t)len) >> 26);
}

/* Index of key k[0..n) among obj's members, or SIZE_MAX. */
static size_t member_index(const struct sl_value *obj, const char *k, size_t n)
{
    uint32_t head = sl_key_head(k, n);
    for (size_t i = 0; i < obj->u.o.len; i++) {
        if (sl_member_is(&obj->u.o.items[i], k, n, head)) {
            return i;
        }
    }
    return SIZE_MAX;
}

static const struct agg_member *text_member(const struct agg_text *t, const char *k, size_t n)
{
    for (size_t i = 0; i < t->nmembers; i++) {
        const struct sl_json_member *m = &t->members[i].m;
        if (m->key_len == n && memcmp(t->raw.p + m->key_off, k, n) == 0) {
            return &t->members[i];
        }
    }
    return NULL;
}

/*
 * Whether v is still the scalar or string it was when parsed. In an arena
 * scope a changed string is always a new allocation, so equal pointers and
 * lengths mean equal text; containers are not compared (a change deep inside
 * leaves their own struct alone).
 */
static bool same_scalar(const struct sl_value *v, const struct sl_value *snap)
{
    if (v->type != snap->type) {
        return false;
    }
    switch (v->type) {
    case SL_V_NULL:
        return true;
    case SL_V_BOOL:
        return v->u.b == snap->u.b;
    case SL_V_INT:
        return v->u.i == snap->u.i;
    case SL_V_DOUBLE:
        return memcmp(&v->u.d, &snap->u.d, sizeof(double)) == 0;
    case SL_V_STRING:
        return v->u.s.ptr == snap->u.s.ptr && v->u.s.len == snap->u.s.len;
    default:
        return false;
    }
}

static void put_sep(struct sl_buf *out, bool *first)
{
    if (!*first) {
        (void)sl_buf_putc(out, ',');
    }
    *first = false;
}

/*
 * A partial event a filter ran on: the members it never parsed are copied
 * from the text in their places, the parsed ones still in the tree are
 * written from it, then the members filters added. The result is what
 * writing the whole tree would give, keys in the same order.
 */
static void write_merged(struct sl_buf *out, const struct sl_value *ev,
                         const struct agg_text *t, const char *skip)
{
    /* Tree members the text's loop wrote; past the bitmap, the text is searched. */
    uint64_t written[4] = {0};
    const size_t nbits = sizeof(written) * 8;
    /* The tree's keys, hashed: most unparsed members are not in it. */
    uint64_t in_tree = 0;
    for (size_t i = 0; i < ev->u.o.len; i++) {
        in_tree |= key_bit(ev->u.o.items[i].khead, ev->u.o.items[i].klen);
    }
    bool first = true;
    (void)sl_buf_putc(out, '{');
    for (size_t i = 0; i < t->nmembers; i++) {
        const struct sl_json_member *m = &t->members[i].m;
        const char *k = t->raw.p + m->key_off;
        if (skip && is_key(k, m->key_len, skip)) {
            continue;
        }
        size_t at = in_tree & key_bit(sl_key_head(k, m->key_len), m->key_len)
                        ? member_index(ev, k, m->key_len) : SIZE_MAX;
        const struct sl_value *v = at == SIZE_MAX ? NULL : &ev->u.o.items[at].v;
        if (v && at < nbits) {
            written[at / 64] |= 1ull << (at % 64);
        }
        bool parsed = t->members[i].parsed;
        if (parsed && !v) {
            continue;  /* a filter removed it */
        }
        /* Never parsed, or parsed and still the scalar it was: the text is its JSON. */
        if (!v || (parsed && same_scalar(v, &t->members[i].snap))) {
            put_sep(out, &first);  /* "key":value as sent, quotes included */
            (void)sl_buf_append(out, k - 1, m->val_off + m->val_len - (m->key_off - 1));
            continue;
        }
        /* Changed; or a filter wrote a key it did not declare: the tree wins. */
        (void)sl_json_put_member(out, !first, k, m->key_len, v);
        first = false;
    }
    for (size_t i = 0; i < ev->u.o.len; i++) {
        const struct sl_member *m = &ev->u.o.items[i];
        bool done = i < nbits ? (written[i / 64] >> (i % 64)) & 1
                              : text_member(t, m->key, m->klen) != NULL;
        if (done || (skip && is_key(m->key, m->klen, skip))) {
            continue;  /* written above */
        }
        (void)sl_json_put_member(out, !first, m->key, m->klen, &m->v);
        first = false;
    }
    (void)sl_buf_putc(out, '}');
}

void agg_output_encode(const struct sl_instance *in, const struct sl_value *ev,
                       const struct agg_text *txt, struct sl_buf *out, struct agg_enc *r)
{
    size_t at = out->len;
    const char *skip = in->enc.metadata ? NULL : "@metadata";
    if (txt && !txt->touched && txt->doc.verbatim) {
        (void)sl_json_put_doc(out, txt->raw.p, txt->raw.len, &txt->doc, skip != NULL);
    } else if (txt && txt->members && ev->type == SL_V_OBJECT) {
        write_merged(out, ev, txt, skip);
    } else {
        (void)sl_json_write(out, ev, skip);
    }
    /* Offsets ride in the pointers until agg_enc_fix: out may still move. */
    r->json = (struct sl_bytes){(const char *)(uintptr_t)at, out->len - at};
    /* Not part of the JSON: it lets an output write runs of events as they lie. */
    (void)sl_buf_putc(out, '\n');
    for (unsigned k = 0; k < in->enc.nparts; k++) {
        at = out->len;
        r->part_rc[k] = in->enc.part(in->inst, ev, k, out);
        if (r->part_rc[k] != 0) {
            out->len = at;
        }
        r->part[k] = (struct sl_bytes){(const char *)(uintptr_t)at, out->len - at};
    }
}

/* An offset kept in a pointer, made a pointer into b. */
static const char *enc_at(const struct sl_buf *b, const char *off)
{
    return b->data ? b->data + (uintptr_t)off : "";
}

void agg_enc_fix(const struct sl_instance *in, struct agg_enc *r, const struct sl_buf *out)
{
    r->json.p = enc_at(out, r->json.p);
    for (unsigned k = 0; k < in->enc.nparts; k++) {
        r->part[k].p = enc_at(out, r->part[k].p);
    }
}

void sl_output_encoding(struct sl_plugin_ctx *ctx, const struct sl_encoding *e)
{
    struct sl_instance *in = ctx->core;
    free_reads(&in->enc);
    in->enc = *e;
    in->enc.nparts = SL_MIN(e->nparts, SL_ENC_PARTS);
    if (e->reads) {
        /* Copied: a plugin may build the list on its stack. */
        size_t n = 0;
        while (e->reads[n]) {
            n++;
        }
        char **v = sl_calloc(n + 1, sizeof(*v));
        for (size_t i = 0; i < n; i++) {
            v[i] = sl_strdup(e->reads[i]);
        }
        in->enc.reads = (const char *const *)v;
    }
    in->encoded = true;
}

struct sl_bytes sl_batch_json(const struct sl_batch *b, size_t i)
{
    const struct agg_batch_core *c = b->core;
    if (!c->enc || i >= b->n) {
        return (struct sl_bytes){NULL, 0};
    }
    return c->enc[i].json;
}

void sl_lines_add(struct sl_lines *l, const struct sl_batch *b, size_t i)
{
    struct sl_bytes json = sl_batch_json(b, i);
    if (!json.p || !sl_batch_event(b, i)) {
        return;
    }
    if (l->n) {
        struct iovec *r = &l->v[l->n - 1];
        if ((const char *)r->iov_base + r->iov_len == json.p) {
            r->iov_len += json.len + 1;  /* agg_output_encode put the newline there */
            return;
        }
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->v = sl_realloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = (struct iovec){(void *)(uintptr_t)json.p, json.len + 1};
}

void sl_lines_free(struct sl_lines *l)
{
    free(l->v);
    *l = (struct sl_lines){0};
}

int sl_batch_part(const struct sl_batch *b, size_t i, unsigned k, struct sl_bytes *out)
{
    const struct agg_batch_core *c = b->core;
    *out = (struct sl_bytes){NULL, 0};
    if (!c->enc || i >= b->n || k >= c->in->enc.nparts) {
        return SL_ENOENT;
    }
    if (c->enc[i].part_rc[k] == 0) {
        *out = c->enc[i].part[k];
    }
    return c->enc[i].part_rc[k];
}

void sl_batch_done(struct sl_batch *b, int status)
{
    struct agg_batch_core *c = b->core;
    struct sl_instance *in = c->in;
    if (c->finished) {
        /* A plugin bug; a second verdict would complete a job still in use. */
        sl_error("%s: reported a verdict twice for one batch (ignored)", in->id);
        return;
    }
    c->finished = true;
    size_t dead = atomic_load(&c->ndead);
    size_t rest = b->count > dead ? b->count - dead : 0;
    sl_hist_observe(in->m_seconds, now_seconds() - c->start);
    if (status == SL_OK) {
        sl_counter_add(in->m_ok, rest);
    } else {
        sl_counter_add(in->m_failed, rest);
        sl_warn("%s: could not deliver a batch of %zu events (error %d); it will not be "
                "acknowledged", in->id, rest, status);
    }
    c->done(c, status);
}

int agg_instance_dead_letter(struct sl_instance *in, const char *event_json, size_t len,
                             const char *extra_members)
{
    if (!in->dlq) {
        /* A poison event must not block its connection forever: dropped, and said so. */
        sl_counter_inc(in->m_dropped);
        /* One line a second at most: a bad mapping can refuse thousands of events
         * a batch; the counter has the exact figure. */
        uint64_t now = sl_now_ms(), last = atomic_load(&in->drop_logged_ms);
        if (now - last >= 1000 && atomic_compare_exchange_strong(&in->drop_logged_ms, &last, now)) {
            sl_warn("%s: dropped an event that can never be delivered (set dead_letter_path to "
                    "keep such events): %s", in->id, extra_members ? extra_members : "");
        }
        return SL_DLQ_DROPPED;
    }
    struct sl_buf rec;
    sl_buf_init(&rec, 0);
    int rc = sl_dlq_record(&rec, sl_wall_ms(), in->label, event_json, len, extra_members);
    rc = rc != 0 ? SL_EIO : sl_dlq_append(in->dlq, rec.data, rec.len);
    sl_buf_free(&rec);
    if (rc == 0) {
        sl_counter_inc(in->m_dead);
    }
    return rc;
}

int sl_batch_dead_letter(struct sl_batch *b, const char *event_json, size_t len,
                         const char *extra_members)
{
    struct agg_batch_core *c = b->core;
    int rc = agg_instance_dead_letter(c->in, event_json, len, extra_members);
    if (rc == 0 || rc == SL_DLQ_DROPPED) {
        atomic_fetch_add(&c->ndead, 1);
    }
    return rc;
}

void sl_output_retried(struct sl_plugin_ctx *ctx, size_t nevents)
{
    struct sl_instance *in = ctx->core;
    sl_counter_add(in->m_retry, nevents);
}
