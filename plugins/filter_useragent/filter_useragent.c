/*
 * filter_useragent.c - the `useragent` filter: parses a user-agent string
 * with uap-core's rules (uap.h) into the browser, operating system and
 * device, and sets them as fields the way Logstash's useragent filter does:
 * under [user_agent] with ECS names (name, version, os.name, os.version,
 * os.full, device.name, original; the version parts under
 * [@metadata][filter][user_agent]), or as the flat legacy names (name, major,
 * minor, patch, build, os, os_name, os_major ..., device), optionally under
 * `target` and behind `prefix`.
 *
 * Parsing runs about a thousand regular expressions over the string, so
 * results are cached by the string (ua_cache.h), bounded in entries, shared
 * by the instance's worker threads.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/file.h"
#include "sluice/log.h"
#include "sluice/metrics.h"
#include "sluice/plugin.h"
#include "sluice/regex.h"
#include "ua_cache.h"
#include "uap.h"

/* What one output field holds: a parsed part, or one made of parts. */
enum vkind {
    V_NAME, V_VERSION, V_MAJOR, V_MINOR, V_PATCH, V_BUILD,
    V_OS, V_OS_VERSION, V_OS_FULL, V_OS_MAJOR, V_OS_MINOR, V_OS_PATCH,
    V_DEVICE, V_ORIGINAL,
};

struct out {
    struct sl_fieldref ref;
    enum vkind kind;
};

struct filter_useragent {
    /* Options. */
    struct sl_fieldref source;
    struct sl_fieldref target;
    char *regexes;
    int64_t cache_size;
    char *prefix;
    int ecs;

    /* Made by init. */
    struct uap *parser;
    struct ua_cache *cache;
    struct out *out;
    size_t nout;
    bool remove_source;   /* target is source: the string is replaced by the parse */
    struct sl_metric *m_hit, *m_miss;  /* sluice_aggregator_useragent_cache_total */
};

/* A regexes.yaml given by `regexes` larger than this is refused. */
#define UA_MAX_REGEXES_FILE (16u << 20)

static const struct sl_opt useragent_opts[] = {
    {.name = "source", .type = SL_OPT_FIELD, .flags = SL_OPT_REQUIRED | SL_OPT_NONEMPTY,
     .offset = offsetof(struct filter_useragent, source),
     .doc = "the field holding the user-agent string (of an array, the first item)"},
    {.name = "target", .type = SL_OPT_FIELD, .offset = offsetof(struct filter_useragent, target),
     .doc = "where the fields go; default: `user_agent` in ECS mode, the event's root when "
            "ecs_compatibility is disabled"},
    {.name = "regexes", .type = SL_OPT_STRING,
     .offset = offsetof(struct filter_useragent, regexes),
     .doc = "path to a uap-core regexes.yaml used instead of the built-in one (uap-core 0.18.0)"},
    {.name = "lru_cache_size", .type = SL_OPT_INT, .def = "100000", .min = 1, .max = 10000000,
     .offset = offsetof(struct filter_useragent, cache_size),
     .doc = "parsed user agents kept, by string, per instance (strings over 2 KiB are not kept)"},
    {.name = "prefix", .type = SL_OPT_STRING, .offset = offsetof(struct filter_useragent, prefix),
     .doc = "prepended to every field name when ecs_compatibility is disabled (ignored, with a "
            "warning, in ECS mode)"},
    {.name = "ecs_compatibility", .type = SL_OPT_ENUM, .choices = sl_ecs_choices,
     .offset = offsetof(struct filter_useragent, ecs),
     .doc = "v8/v1: ECS field names under `user_agent`; disabled: the legacy flat names; "
            "default: pipeline.ecs_compatibility"},
    {0},
};

/* ---- writing the fields ---- */

/* "major[.minor[.patch[.build]]]" of the four fields from f, into buf; "" without a major. */
static const char *version_of(char *const *f, char *buf, size_t cap)
{
    buf[0] = '\0';
    size_t n = 0;
    for (int k = 0; k < 4 && f[k]; k++) {
        int w = snprintf(buf + n, cap - n, "%s%s", k ? "." : "", f[k]);
        if (w < 0 || (size_t)w >= cap - n) {
            break;
        }
        n += (size_t)w;
    }
    return buf;
}

/* The value of kind k, or NULL when the parse has none. */
static const char *value_of(enum vkind k, const struct uap_result *r, const char *ua, char *buf,
                            size_t cap)
{
    switch (k) {
    case V_NAME: return r->f[UAP_NAME];
    case V_MAJOR: return r->f[UAP_MAJOR];
    case V_MINOR: return r->f[UAP_MINOR];
    case V_PATCH: return r->f[UAP_PATCH];
    case V_BUILD: return r->f[UAP_BUILD];
    case V_OS: return r->f[UAP_OS];
    case V_OS_MAJOR: return r->f[UAP_OS_MAJOR];
    case V_OS_MINOR: return r->f[UAP_OS_MINOR];
    case V_OS_PATCH: return r->f[UAP_OS_PATCH];
    case V_DEVICE: return r->f[UAP_DEVICE];
    case V_ORIGINAL: return ua;
    case V_VERSION: {
        const char *v = version_of(&r->f[UAP_MAJOR], buf, cap);
        return *v ? v : NULL;
    }
    case V_OS_VERSION: {
        const char *v = version_of(&r->f[UAP_OS_MAJOR], buf, cap);
        return *v ? v : NULL;
    }
    case V_OS_FULL: {
        if (!r->f[UAP_OS]) {
            return NULL;
        }
        size_t n = (size_t)snprintf(buf, cap, "%s", r->f[UAP_OS]);
        if (r->f[UAP_OS_MAJOR] && n < cap - 1) {
            buf[n++] = ' ';
            version_of(&r->f[UAP_OS_MAJOR], buf + n, cap - n);
        }
        return buf;
    }
    }
    return NULL;
}

struct write_ctx {
    const struct filter_useragent *u;
    struct sl_value *ev;
    const char *ua;
    size_t ua_len;
};

static void write_fields(const struct uap_result *r, void *arg)
{
    struct write_ctx *w = arg;
    /* As Logstash: the source goes only once there is a parse to put there. */
    if (w->u->remove_source) {
        sl_fieldref_del(&w->u->source, w->ev);
    }
    /* What is joined from parts (versions, os.full) is cut at 1 KiB. */
    char buf[1024];
    for (size_t i = 0; i < w->u->nout; i++) {
        const struct out *o = &w->u->out[i];
        const char *v = value_of(o->kind, r, w->ua, buf, sizeof(buf));
        if (v) {
            struct sl_value *slot = sl_fieldref_put(&o->ref, w->ev);
            if (slot) {
                /* The string as it came, NUL bytes and all. */
                sl_value_set_str(slot, v, o->kind == V_ORIGINAL ? w->ua_len : strlen(v));
            }
        }
    }
}

static enum sl_filter_result useragent_filter(void *inst, struct sl_value *ev)
{
    struct filter_useragent *u = inst;
    const struct sl_value *v = sl_fieldref_get(&u->source, ev);
    if (v && v->type == SL_V_ARRAY) {
        v = v->u.a.len ? &v->u.a.items[0] : NULL;
    }
    if (!v || v->type != SL_V_STRING || v->u.s.len == 0) {
        return SL_FILTER_KEEP;  /* as Logstash: nothing to parse is no failure */
    }
    /* Writing fields may move the source's string: work on a copy. */
    size_t len = v->u.s.len;
    char *ua = sl_strndup(v->u.s.ptr, len);
    struct write_ctx w = {.u = u, .ev = ev, .ua = ua, .ua_len = len};
    enum sl_filter_result res = SL_FILTER_KEEP;
    if (ua_cache_get(u->cache, ua, len, write_fields, &w)) {
        sl_counter_inc(u->m_hit);
    } else {
        sl_counter_inc(u->m_miss);
        struct uap_result r;
        if (uap_parse(u->parser, ua, len, SL_REGEX_BUDGET_MS, &r) != 0) {
            res = SL_FILTER_FAIL;
        } else {
            write_fields(&r, &w);
            ua_cache_put(u->cache, ua, len, &r);
        }
    }
    free(ua);
    return res;
}

/* ---- init ---- */

static void add_out(struct filter_useragent *u, struct sl_plugin_ctx *ctx, const char *ref,
                    enum vkind k)
{
    u->out = sl_realloc(u->out, (u->nout + 1) * sizeof(*u->out));
    struct out *o = &u->out[u->nout];
    memset(o, 0, sizeof(*o));
    if (sl_fieldref_init(&o->ref, ref) != 0) {
        sl_plugin_error(ctx, "prefix", "the field name '%s' is not a valid field reference", ref);
        return;
    }
    o->kind = k;
    u->nout++;
    sl_filter_touches_field(ctx, &o->ref);
}

/* Adds the field at [target...] + path (a bracketed path: "[os][name]"). */
static void add_under(struct filter_useragent *u, struct sl_plugin_ctx *ctx, const char *path,
                      enum vkind k)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    for (size_t i = 0; i < u->target.nsegs; i++) {
        sl_buf_printf(&b, "[%.*s]", (int)u->target.segs[i].len, u->target.segs[i].name);
    }
    sl_buf_printf(&b, "%s", path);
    add_out(u, ctx, sl_buf_cstr(&b), k);
    sl_buf_free(&b);
}

static bool same_field(const struct sl_fieldref *a, const struct sl_fieldref *b)
{
    if (a->nsegs != b->nsegs) {
        return false;
    }
    for (size_t s = 0; s < a->nsegs; s++) {
        if (a->segs[s].len != b->segs[s].len ||
            memcmp(a->segs[s].name, b->segs[s].name, a->segs[s].len) != 0) {
            return false;
        }
    }
    return true;
}

static void plan_ecs(struct filter_useragent *u, struct sl_plugin_ctx *ctx)
{
    static const struct { const char *path; enum vkind k; } ecs[] = {
        {"[name]", V_NAME}, {"[version]", V_VERSION}, {"[os][name]", V_OS},
        {"[os][version]", V_OS_VERSION}, {"[os][full]", V_OS_FULL},
        {"[device][name]", V_DEVICE}, {"[original]", V_ORIGINAL},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(ecs); i++) {
        add_under(u, ctx, ecs[i].path, ecs[i].k);
    }
    /* The string itself, unless it is already there. */
    if (u->nout && same_field(&u->out[u->nout - 1].ref, &u->source)) {
        sl_fieldref_free(&u->out[--u->nout].ref);
    }
    static const struct { const char *ref; enum vkind k; } meta[] = {
        {"[@metadata][filter][user_agent][version][major]", V_MAJOR},
        {"[@metadata][filter][user_agent][version][minor]", V_MINOR},
        {"[@metadata][filter][user_agent][version][patch]", V_PATCH},
        {"[@metadata][filter][user_agent][os][version][major]", V_OS_MAJOR},
        {"[@metadata][filter][user_agent][os][version][minor]", V_OS_MINOR},
        {"[@metadata][filter][user_agent][os][version][patch]", V_OS_PATCH},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(meta); i++) {
        add_out(u, ctx, meta[i].ref, meta[i].k);
    }
}

static void plan_legacy(struct filter_useragent *u, struct sl_plugin_ctx *ctx)
{
    static const struct { const char *name; enum vkind k; } legacy[] = {
        {"name", V_NAME}, {"version", V_VERSION}, {"major", V_MAJOR}, {"minor", V_MINOR},
        {"patch", V_PATCH}, {"build", V_BUILD}, {"os", V_OS}, {"os_name", V_OS},
        {"os_version", V_OS_VERSION}, {"os_full", V_OS_FULL}, {"os_major", V_OS_MAJOR},
        {"os_minor", V_OS_MINOR}, {"os_patch", V_OS_PATCH}, {"device", V_DEVICE},
    };
    const char *prefix = u->prefix ? u->prefix : "";
    for (size_t i = 0; i < SL_ARRAY_LEN(legacy); i++) {
        char path[256];
        snprintf(path, sizeof(path), "[%.200s%s]", prefix, legacy[i].name);
        add_under(u, ctx, path, legacy[i].k);
    }
}

static int useragent_init(void *inst, struct sl_plugin_ctx *ctx)
{
    struct filter_useragent *u = inst;
    char err[512];
    bool ecs = sl_plugin_ecs(ctx, u->ecs) != SL_ECS_DISABLED;
    if (ecs && !sl_plugin_given(ctx, "target")) {
        sl_fieldref_free(&u->target);
        sl_fieldref_init(&u->target, "user_agent");
    }
    if (ecs && u->prefix && *u->prefix && !ctx->check_only) {
        sl_warn("%s: 'prefix' has no effect in ECS mode (ecs_compatibility: disabled uses it)",
                ctx->id);
    }
    if (u->regexes) {
        struct sl_buf text;
        sl_buf_init(&text, 0);
        int e = sl_file_read(u->regexes, UA_MAX_REGEXES_FILE, &text);
        if (e != 0) {
            sl_buf_free(&text);
            if (e == EFBIG) {
                sl_plugin_error(ctx, "regexes", "'%s' is larger than %u bytes", u->regexes,
                                UA_MAX_REGEXES_FILE);
            } else {
                sl_plugin_error(ctx, "regexes", "cannot open '%s': %s", u->regexes, strerror(e));
            }
            return SL_EINVAL;
        }
        u->parser = uap_new(sl_buf_cstr(&text), text.len, u->regexes, err, sizeof(err));
        sl_buf_free(&text);
    } else {
        u->parser = uap_new(sl_useragent_builtin_regexes, strlen(sl_useragent_builtin_regexes),
                            "built-in regexes.yaml", err, sizeof(err));
    }
    if (!u->parser) {
        sl_plugin_error(ctx, u->regexes ? "regexes" : NULL, "%s", err);
        return SL_EINVAL;
    }
    u->remove_source = u->target.nsegs && strcmp(u->target.text, u->source.text) == 0;
    sl_filter_touches_field(ctx, &u->source);
    if (ecs) {
        plan_ecs(u, ctx);
    } else {
        plan_legacy(u, ctx);
    }
    u->cache = ua_cache_new((size_t)u->cache_size);
    if (ctx->metrics) {
        static const char help[] = "User-agent strings a useragent filter found in its cache "
                                   "(hit) or parsed (miss).";
        const char *hit[] = {"filter", ctx->label, "result", "hit", NULL};
        const char *miss[] = {"filter", ctx->label, "result", "miss", NULL};
        u->m_hit = sl_metrics_counter(ctx->metrics, "sluice_aggregator_useragent_cache_total",
                                      help, hit);
        u->m_miss = sl_metrics_counter(ctx->metrics, "sluice_aggregator_useragent_cache_total",
                                       help, miss);
    }
    return 0;
}

static void useragent_fini(void *inst)
{
    struct filter_useragent *u = inst;
    for (size_t i = 0; i < u->nout; i++) {
        sl_fieldref_free(&u->out[i].ref);
    }
    free(u->out);
    uap_free(u->parser);
    ua_cache_free(u->cache);
}

const struct sl_plugin sl_plugin_filter_useragent = {
    .name = "useragent",
    .kind = SL_PLUGIN_FILTER,
    .summary = "parses a user-agent string into browser, operating system and device fields "
               "(uap-core rules)",
    .options = useragent_opts,
    .size = sizeof(struct filter_useragent),
    .failure_tag = "_useragent_timeout",
    .init = useragent_init,
    .fini = useragent_fini,
    .filter = useragent_filter,
};
