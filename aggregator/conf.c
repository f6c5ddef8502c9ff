/*
 * conf.c - reads the aggregator's YAML into struct agg_conf: every section
 * through the typed sl_cfg getters, every map finished by
 * sl_cfg_check_unknown(), plugin names resolved against sl_plugins. Plugin
 * options are not read here (the pipeline hands them to each plugin's init).
 */
#include "conf.h"

#include "instance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/net.h"

#define KIB 1024ull
#define MIB (1024ull * 1024ull)
#define GIB (1024ull * 1024ull * 1024ull)

/* A YAML null: `key:`, `key: ~` or `key: null`, unquoted. */
static bool is_null(const struct sl_cfg_node *n)
{
    if (!n) {
        return true;
    }
    if (n->type != SL_CFG_SCALAR || n->quoted) {
        return false;
    }
    const char *s = n->scalar ? n->scalar : "";
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* A section that must be a map; a null section is treated as absent. */
static struct sl_cfg_node *section(struct sl_cfg *cfg, struct sl_cfg_node *root, const char *key)
{
    struct sl_cfg_node *n = sl_cfg_get(root, key);
    if (is_null(n)) {
        return NULL;
    }
    if (!sl_cfg_is_map(cfg, n, key)) {
        return NULL;
    }
    return n;
}

static void check_listen(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                         const char *key, const char *value)
{
    char host[256];
    int port;
    if (value && sl_net_split(value, host, sizeof(host), &port) != 0) {
        sl_cfg_error(cfg, sl_cfg_get(map, key), "%s: option '%s' must be HOST:PORT, got '%s'",
                     where, key, value);
    }
}

/*
 * Loads the TLS files now, so that `-t`, startup and a reload all refuse a
 * missing file, a key that does not match or an unknown protocol, with the
 * position of the option the message is about.
 */
static void check_ssl_files(struct sl_cfg *cfg, struct sl_cfg_node *ssl, struct agg_conf *c)
{
    struct sl_tls_opts o;
    char err[512] = "";
    agg_conf_tls_opts(c, &o);
    struct sl_tls_ctx *ctx = sl_tls_server_ctx(&o, err, sizeof(err));
    if (ctx) {
        sl_tls_ctx_free(ctx);
        return;
    }
    const char *key = "enabled";
    if (strncmp(err, "cannot load certificate authorities", 35) == 0 ||
        strncmp(err, "certificate_authorities", 23) == 0) {
        key = "certificate_authorities";
    } else if (strncmp(err, "cannot load certificate", 23) == 0) {
        key = "certificate";
    } else if (strncmp(err, "cannot load key", 15) == 0 || strncmp(err, "key ", 4) == 0) {
        key = "key";
    } else if (strncmp(err, "unsupported protocol", 20) == 0) {
        key = "supported_protocols";
    } else if (strncmp(err, "client_authentication", 21) == 0) {
        key = "client_authentication";
    }
    struct sl_cfg_node *at = sl_cfg_get(ssl, key);
    sl_cfg_error(cfg, at ? at : ssl, "input.ssl: %s", err);
}

static void read_ssl(struct sl_cfg *cfg, struct sl_cfg_node *input, struct agg_conf *c)
{
    static const char *const auth[] = {"none", "optional", "required", NULL};
    struct agg_ssl_conf *s = &c->ssl;
    struct sl_cfg_node *ssl = sl_cfg_get(input, "ssl");
    int idx = 0;
    s->handshake_timeout_ms = 10000;
    if (is_null(ssl) || !sl_cfg_is_map(cfg, ssl, "input.ssl")) {
        return;
    }
    sl_cfg_bool(cfg, ssl, "input.ssl", "enabled", false, &s->enabled);
    sl_cfg_str(cfg, ssl, "input.ssl", "certificate", "", &s->certificate);
    sl_cfg_str(cfg, ssl, "input.ssl", "key", "", &s->key);
    sl_cfg_str(cfg, ssl, "input.ssl", "key_passphrase", "", &s->key_passphrase);
    sl_cfg_strlist(cfg, ssl, "input.ssl", "certificate_authorities",
                   &s->certificate_authorities, &s->ncertificate_authorities);
    sl_cfg_enum(cfg, ssl, "input.ssl", "client_authentication", auth, 0, &idx);
    s->client_authentication = (enum sl_tls_client_auth)idx;
    sl_cfg_strlist(cfg, ssl, "input.ssl", "supported_protocols", &s->supported_protocols,
                   &s->nsupported_protocols);
    sl_cfg_duration(cfg, ssl, "input.ssl", "handshake_timeout", 10000, 100, 600000,
                    &s->handshake_timeout_ms);
    sl_cfg_check_unknown(cfg, ssl, "input.ssl");
    if (!s->enabled) {
        return;
    }
    if (!s->certificate || !s->certificate[0]) {
        sl_cfg_error(cfg, sl_cfg_get(ssl, "enabled"),
                     "input.ssl: option 'certificate' is required when TLS is enabled");
    } else if (!s->key || !s->key[0]) {
        sl_cfg_error(cfg, sl_cfg_get(ssl, "enabled"),
                     "input.ssl: option 'key' is required when TLS is enabled");
    } else if (cfg->nerrors == 0) {
        /* Only once the options themselves are right: their errors say more. */
        check_ssl_files(cfg, ssl, c);
    }
}

void agg_conf_tls_opts(const struct agg_conf *c, struct sl_tls_opts *o)
{
    const struct agg_ssl_conf *s = &c->ssl;
    memset(o, 0, sizeof(*o));
    o->certificate_authorities = (const char *const *)s->certificate_authorities;
    o->n_certificate_authorities = s->ncertificate_authorities;
    o->certificate = s->certificate;
    o->key = s->key;
    o->key_passphrase = s->key_passphrase && s->key_passphrase[0] ? s->key_passphrase : NULL;
    o->client_authentication = s->client_authentication;
    o->supported_protocols = (const char *const *)s->supported_protocols;
    o->n_supported_protocols = s->nsupported_protocols;
}

/* The Lumberjack listener's options: the `input:` map or an `inputs: - beats:` entry. */
static void read_input(struct sl_cfg *cfg, struct sl_cfg_node *in, struct agg_conf *c)
{
    int64_t mpw = 4;
    uint64_t mwe = 10000;
    sl_cfg_str(cfg, in, "input", "listen", "0.0.0.0:5044", &c->listen);
    check_listen(cfg, in, "input", "listen", c->listen);
    read_ssl(cfg, in, c);
    sl_cfg_int(cfg, in, "input", "max_connections", 10000, 1, 1000000, &c->max_connections);
    sl_cfg_duration(cfg, in, "input", "client_inactivity_timeout", 60000, 0, 86400000ull,
                    &c->client_inactivity_ms);
    sl_cfg_size(cfg, in, "input", "max_window_events", 10000, 1, 1000000, &mwe);
    c->max_window_events = (uint32_t)mwe;
    sl_cfg_size(cfg, in, "input", "max_frame_bytes", 64 * MIB, 1 * KIB, 1 * GIB,
                &c->max_frame_bytes);
    /* 64 MiB of JSON is 32 KiB per event in a 2048-event Filebeat window; a zip
     * bomb costs at most this much memory per connection before it is refused. */
    sl_cfg_size(cfg, in, "input", "max_window_bytes", 64 * MIB, 1 * KIB, 16 * GIB,
                &c->max_window_bytes);
    sl_cfg_int(cfg, in, "input", "max_pending_windows", mpw, 1, 1024, &c->max_pending_windows);
    sl_cfg_duration(cfg, in, "input", "keepalive", 5000, 100, 30000, &c->keepalive_ms);
    /* go-lumber gives a client 30 s to send a window after its W frame. */
    sl_cfg_duration(cfg, in, "input", "frame_timeout", 30000, 0, 86400000ull,
                    &c->frame_timeout_ms);
    sl_cfg_int(cfg, in, "input", "max_json_depth", 64, 1, 512, &c->max_json_depth);
    /* Per-client series: a bound on their number, and on how long a gone client keeps them. */
    sl_cfg_int(cfg, in, "input", "client_metrics_max", 1000, 0, 100000, &c->client_metrics_max);
    sl_cfg_duration(cfg, in, "input", "client_metrics_forget_after", 3600000, 0, 86400000ull * 30,
                    &c->client_metrics_forget_ms);
    sl_cfg_check_unknown(cfg, in, "input");
}

/*
 * `inputs:`, a list of {beats: {...}} (at most one: one listener) and
 * {kafka: {...}} entries; without it, `input:` is the one beats input.
 */
static void read_inputs(struct sl_cfg *cfg, struct sl_cfg_node *root, struct agg_conf *c)
{
    struct sl_cfg_node *list = sl_cfg_get(root, "inputs");
    struct sl_cfg_node *beats = NULL;
    if (is_null(list)) {
        c->beats = true;
        read_input(cfg, section(cfg, root, "input"), c);
        return;
    }
    if (!is_null(sl_cfg_get(root, "input"))) {
        sl_cfg_error(cfg, list, "inputs: 'input' and 'inputs' cannot both be set (put the "
                     "'input' options under an 'inputs: - beats:' entry)");
    }
    if (list->type != SL_CFG_SEQ || list->n == 0) {
        sl_cfg_error(cfg, list, "inputs: must be a non-empty list of {beats: {...}} or "
                     "{kafka: {...}} maps");
        list = NULL;
    }
    c->kafka = sl_calloc(list ? list->n : 1, sizeof(*c->kafka));
    for (size_t i = 0; list && i < list->n; i++) {
        struct sl_cfg_node *item = list->items[i];
        char where[64];
        snprintf(where, sizeof(where), "inputs[%zu]", i);
        const char *name = item->type == SL_CFG_MAP && item->n == 1 ? item->keys[0] : "";
        struct sl_cfg_node *opts = name[0] ? sl_cfg_get(item, name) : NULL;
        if (!is_null(opts) && !sl_cfg_is_map(cfg, opts, where)) {
            continue;
        }
        opts = is_null(opts) ? NULL : opts;
        if (strcmp(name, "beats") == 0 && !beats) {
            beats = item;
            c->beats = true;
            read_input(cfg, opts, c);
        } else if (strcmp(name, "beats") == 0) {
            sl_cfg_error(cfg, item, "%s: only one beats input may be given", where);
        } else if (strcmp(name, "kafka") == 0) {
            snprintf(where, sizeof(where), "inputs[%zu] (kafka)", i);
            agg_kafka_conf_read(cfg, opts, where, &c->kafka[c->nkafka++]);
        } else {
            sl_cfg_error(cfg, item, "%s: each input is a map with one key, 'beats' or 'kafka' "
                         "(e.g. '- kafka: {topics: [logs]}')", where);
        }
    }
    if (!beats) {
        read_input(cfg, NULL, c);  /* the defaults, so that every field is set */
    }
}

/* "unknown filter 'grk' (did you mean 'grok'? filters: grok, date, ...)" */
static void unknown_plugin(struct sl_cfg *cfg, struct sl_cfg_node *at, const char *where,
                           enum sl_plugin_kind kind, const char *name)
{
    const char *const *names = agg_plugin_names(kind);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    const char *near = sl_cfg_suggest(name, names);
    if (near) {
        sl_buf_printf(&b, "did you mean '%s'? ", near);
    }
    sl_buf_puts(&b, kind == SL_PLUGIN_OUTPUT ? "outputs:" : "filters:");
    for (const char *const *n = names; *n; n++) {
        sl_buf_printf(&b, "%s %s", n == names ? "" : ",", *n);
    }
    sl_cfg_error(cfg, at, "%s: unknown %s '%s' (%s)", where,
                 kind == SL_PLUGIN_OUTPUT ? "output" : "filter", name, sl_buf_cstr(&b));
    sl_buf_free(&b);
}

/*
 * Reads a list of single-key maps ({name: {options}}) into *out, resolving
 * each name among the plugins of kind. list_name is "outputs" or "filters".
 */
static void read_plugins(struct sl_cfg *cfg, struct sl_cfg_node *list, const char *list_name,
                         enum sl_plugin_kind kind, struct agg_plugin_conf **out, size_t *nout)
{
    const char *what = kind == SL_PLUGIN_OUTPUT ? "output" : "filter";
    *out = NULL;
    *nout = 0;
    if (is_null(list)) {
        return;
    }
    if (list->type != SL_CFG_SEQ) {
        sl_cfg_error(cfg, list, "%s: must be a list of {name: {options}} maps", list_name);
        return;
    }
    /* Allocated once: each entry's nullmap must not move after plugins see it. */
    struct agg_plugin_conf *pcs = sl_calloc(list->n ? list->n : 1, sizeof(*pcs));
    size_t n = 0;
    for (size_t i = 0; i < list->n; i++) {
        struct sl_cfg_node *item = list->items[i];
        char where[64];
        snprintf(where, sizeof(where), "%s[%zu]", list_name, i);
        if (item->type != SL_CFG_MAP || item->n != 1) {
            sl_cfg_error(cfg, item, "%s: each %s is a map with one key, the %s's name "
                         "(e.g. '- %s: {...}')", where, what, what,
                         kind == SL_PLUGIN_OUTPUT ? "file" : "grok");
            continue;
        }
        const char *name = item->keys[0];
        struct sl_cfg_node *opts = sl_cfg_get(item, name);
        const struct sl_plugin *p = agg_plugin_find(name, kind);
        if (!p) {
            unknown_plugin(cfg, item->key_nodes[0], where, kind, name);
            continue;
        }
        struct agg_plugin_conf *pc = &pcs[n];
        pc->plugin = p;
        snprintf(pc->id, sizeof(pc->id), "%s (%s)", where, name);
        if (is_null(opts)) {
            pc->nullmap.type = SL_CFG_MAP;
            pc->nullmap.line = opts ? opts->line : item->line;
            pc->nullmap.col = opts ? opts->col : item->col;
            pc->opts = &pc->nullmap;
        } else if (opts->type != SL_CFG_MAP) {
            sl_cfg_error(cfg, opts, "%s: options must be a map", pc->id);
            continue;
        } else {
            pc->opts = opts;
        }
        n++;
    }
    *out = pcs;
    *nout = n;
}

static void read_pipeline(struct sl_cfg *cfg, struct sl_cfg_node *root, struct agg_conf *c)
{
    struct sl_cfg_node *pl = section(cfg, root, "pipeline");
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    sl_cfg_int(cfg, pl, "pipeline", "workers", cores > 0 ? cores : 1, 1, 1024, &c->workers);
    sl_cfg_int(cfg, pl, "pipeline", "batch_size", 512, 1, 1000000, &c->batch_size);
    /* Enough for several full windows in flight, small enough to bound memory: at
     * least two Filebeat connections' worth (bulk_max_size 2048, pipelining 2), so
     * that one worker filters a window while the I/O thread reads the next ones
     * (at one window, reading and filtering took turns; docs/benchmarks.md). */
    int64_t def_pending = SL_MAX(c->batch_size * c->workers * 4, (int64_t)AGG_MIN_PENDING);
    sl_cfg_int(cfg, pl, "pipeline", "max_pending_events", def_pending, 1, 100000000,
               &c->max_pending_events);
    /* Texts only: their parsed trees and encodings come on top (docs/operations.md,
     * "Memory budget"), which this default leaves room for under a 1 GiB limit. */
    sl_cfg_size(cfg, pl, "pipeline", "max_pending_bytes", 128 * MIB, 1 * MIB, 64 * GIB,
                &c->max_pending_bytes);
    sl_cfg_size(cfg, pl, "pipeline", "max_event_memory", 16 * MIB, 64 * KIB, 4 * GIB,
                &c->max_event_memory);
    /* Logstash's pipeline.ecs_compatibility; plugins' own option overrides it. */
    int ecs = SL_ECS_V8;
    sl_cfg_enum(cfg, pl, "pipeline", "ecs_compatibility", sl_ecs_choices, SL_ECS_V8, &ecs);
    c->ecs = (enum sl_ecs)ecs;
    read_plugins(cfg, sl_cfg_get(pl, "filters"), "pipeline.filters", SL_PLUGIN_FILTER, &c->filters,
                 &c->nfilters);
    sl_cfg_check_unknown(cfg, pl, "pipeline");
}

static void read_checkpoint(struct sl_cfg *cfg, struct sl_cfg_node *q, struct agg_conf *c)
{
    struct sl_cfg_node *ck = sl_cfg_get(q, "checkpoint");
    int64_t writes = 1;
    if (is_null(ck) || !sl_cfg_is_map(cfg, ck, "queue.checkpoint")) {
        ck = NULL;
    }
    /* Logstash's names; here they decide when the fsync that ACKs comes (docs/configuration.md). */
    sl_cfg_int(cfg, ck, "queue.checkpoint", "writes", 1, 1, 100000000, &writes);
    c->queue_checkpoint_writes = (uint64_t)writes;
    sl_cfg_duration(cfg, ck, "queue.checkpoint", "interval", 1000, 1, 60000,
                    &c->queue_checkpoint_interval_ms);
    if (ck) {
        sl_cfg_check_unknown(cfg, ck, "queue.checkpoint");
    }
}

static void read_queue(struct sl_cfg *cfg, struct sl_cfg_node *root, struct agg_conf *c)
{
    static const char *const types[] = {"memory", "persisted", NULL};
    struct sl_cfg_node *q = section(cfg, root, "queue");
    int t = AGG_QUEUE_MEMORY;
    sl_cfg_enum(cfg, q, "queue", "type", types, AGG_QUEUE_MEMORY, &t);
    c->queue_type = (enum agg_queue_type)t;
    sl_cfg_str(cfg, q, "queue", "path", "/var/lib/sluice/queue", &c->queue_path);
    sl_cfg_size(cfg, q, "queue", "max_bytes", 1 * GIB, 1 * MIB, UINT64_MAX, &c->queue_max_bytes);
    /* Logstash's default page size, but never more than a quarter of the queue. */
    uint64_t def_page = SL_MIN(64 * MIB, c->queue_max_bytes / 4);
    sl_cfg_size(cfg, q, "queue", "page_capacity", def_page, 64 * KIB, 1 * GIB,
                &c->queue_page_capacity);
    if (c->queue_page_capacity > c->queue_max_bytes) {
        sl_cfg_error(cfg, sl_cfg_get(q, "page_capacity"),
                     "queue: option 'page_capacity' (%llu bytes) must not exceed 'max_bytes' "
                     "(%llu bytes)", (unsigned long long)c->queue_page_capacity,
                     (unsigned long long)c->queue_max_bytes);
    }
    read_checkpoint(cfg, q, c);
    sl_cfg_check_unknown(cfg, q, "queue");
    struct sl_cfg_node *pl = sl_cfg_get(root, "pipeline");
    if (c->queue_type == AGG_QUEUE_PERSISTED &&
        is_null(pl && pl->type == SL_CFG_MAP ? sl_cfg_get(pl, "max_pending_events") : NULL)) {
        /* Windows waiting for the fsync count too: room for several full Filebeat
         * windows (2048 events), or one fsync could never cover more than one. */
        c->max_pending_events = SL_MAX(c->max_pending_events, (int64_t)16384);
    }
    if (c->queue_type == AGG_QUEUE_PERSISTED && (!c->queue_path || !c->queue_path[0])) {
        sl_cfg_error(cfg, sl_cfg_get(q, "path"), "queue: option 'path' must not be empty");
    }
}

static int finish(struct agg_conf *c, int rc)
{
    struct sl_cfg *cfg = &c->cfg;
    struct sl_cfg_node *root = cfg->root;
    if (rc == 0 && root) {
        read_inputs(cfg, root, c);
        read_pipeline(cfg, root, c);
        struct sl_cfg_node *outs = sl_cfg_get(root, "outputs");
        read_plugins(cfg, outs, "outputs", SL_PLUGIN_OUTPUT, &c->outputs, &c->noutputs);
        if (is_null(outs)) {
            sl_cfg_error(cfg, outs, "outputs: at least one output is required");
        } else if (outs->type == SL_CFG_SEQ && outs->n == 0) {
            sl_cfg_error(cfg, outs, "outputs: at least one output is required");
        }
        read_queue(cfg, root, c);
        struct sl_cfg_node *m = section(cfg, root, "metrics");
        sl_cfg_str(cfg, m, "metrics", "listen", "127.0.0.1:9600", &c->metrics_listen);
        check_listen(cfg, m, "metrics", "listen", c->metrics_listen);
        sl_cfg_duration(cfg, m, "metrics", "unhealthy_after", 300000, 1000, 86400000,
                        &c->unhealthy_after_ms);
        sl_cfg_check_unknown(cfg, m, "metrics");
        sl_cfg_duration(cfg, root, "", "shutdown_timeout", 10000, 0, 3600000,
                        &c->shutdown_timeout_ms);
        sl_cfg_check_unknown(cfg, root, "");
    } else if (rc == 0) {
        sl_cfg_error(cfg, NULL, "the configuration is empty (at least one output is required)");
    }
    return cfg->nerrors ? SL_EINVAL : 0;
}

int agg_conf_load(struct agg_conf *c, const char *path)
{
    memset(c, 0, sizeof(*c));
    return finish(c, sl_cfg_load(&c->cfg, path));
}

int agg_conf_load_string(struct agg_conf *c, const char *name, const char *text)
{
    memset(c, 0, sizeof(*c));
    return finish(c, sl_cfg_load_string(&c->cfg, name, text, strlen(text)));
}

void agg_conf_free(struct agg_conf *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; i < c->nkafka; i++) {
        agg_kafka_conf_free(&c->kafka[i]);
    }
    free(c->kafka);
    free(c->listen);
    free(c->ssl.certificate);
    free(c->ssl.key);
    free(c->ssl.key_passphrase);
    sl_cfg_strv_free(c->ssl.certificate_authorities);
    sl_cfg_strv_free(c->ssl.supported_protocols);
    for (size_t i = 0; i < c->nfilters; i++) {
        sl_cfg_strv_free(c->filters[i].nullmap.asked);
    }
    for (size_t i = 0; i < c->noutputs; i++) {
        sl_cfg_strv_free(c->outputs[i].nullmap.asked);
    }
    free(c->filters);
    free(c->outputs);
    free(c->queue_path);
    free(c->metrics_listen);
    sl_cfg_free(&c->cfg);
    memset(c, 0, sizeof(*c));
}
