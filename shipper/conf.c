/*
 * conf.c - reads the shipper's YAML (docs/configuration.md) into struct shipper_conf. Every
 * map is finished with sl_cfg_check_unknown so that typos are errors. Static
 * parts of the event ("fields", "tags") are encoded to JSON here, once, so the
 * per-line path only copies bytes.
 */
#include "conf.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "container.h"
#include "ndjson.h"
#include "processor.h"
#include "registry.h"
#include "sluice/json.h"
#include "sluice/net.h"
#include "sluice/tls.h"

bool regex_list_match(const struct regex_list *l, const char *s, size_t len)
{
    for (size_t i = 0; i < l->n; i++) {
        enum sl_regex_result r = sl_regex_test(l->re[i], s, len);
        if (r == SL_REGEX_YES || (r == SL_REGEX_TIMEOUT && l->timeout_matches)) {
            return true;
        }
    }
    return false;
}

static void regex_list_free(struct regex_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        sl_regex_free(l->re[i]);
    }
    free(l->re);
    l->re = NULL;
    l->n = 0;
}

static int compile_one(struct sl_cfg *cfg, struct sl_cfg_node *at, const char *where,
                       const char *key, const char *pattern, struct sl_regex **out)
{
    char err[256];
    *out = sl_regex_new(pattern, err, sizeof(err));
    if (!*out) {
        sl_cfg_error(cfg, at, "%s: option '%s': invalid regex '%s': %s", where, key, pattern,
                     err);
        return SL_EINVAL;
    }
    return 0;
}

static int get_regex_list(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                          const char *key, struct regex_list *out)
{
    char **v = NULL;
    size_t n = 0;
    int rc = sl_cfg_strlist(cfg, map, where, key, &v, &n);
    if (rc != 0 || !v) {
        return rc;
    }
    struct sl_cfg_node *at = sl_cfg_get(map, key);
    out->re = sl_calloc(n ? n : 1, sizeof(*out->re));
    for (size_t i = 0; i < n; i++) {
        if (compile_one(cfg, at, where, key, v[i], &out->re[out->n]) != 0) {
            rc = SL_EINVAL;
            continue;
        }
        out->n++;
    }
    sl_cfg_strv_free(v);
    return rc;
}

static bool looks_numeric(const char *s)
{
    char *end;
    if (!*s || isspace((unsigned char)*s)) {
        return false;
    }
    strtod(s, &end);
    return *end == '\0' && strcspn(s, "xXnN") == strlen(s);  /* no hex, inf, nan */
}

/* YAML node -> JSON: unquoted true/false/numbers/null keep their type, as Beats do. */
static void node_json(struct sl_buf *b, const struct sl_cfg_node *n)
{
    if (!n) {
        sl_buf_puts(b, "null");
        return;
    }
    switch (n->type) {
    case SL_CFG_MAP:
        sl_buf_putc(b, '{');
        for (size_t i = 0; i < n->n; i++) {
            if (i) {
                sl_buf_putc(b, ',');
            }
            sl_json_put_str(b, n->keys[i], strlen(n->keys[i]));
            sl_buf_putc(b, ':');
            node_json(b, n->items[i]);
        }
        sl_buf_putc(b, '}');
        break;
    case SL_CFG_SEQ:
        sl_buf_putc(b, '[');
        for (size_t i = 0; i < n->n; i++) {
            if (i) {
                sl_buf_putc(b, ',');
            }
            node_json(b, n->items[i]);
        }
        sl_buf_putc(b, ']');
        break;
    case SL_CFG_SCALAR:
        if (!n->quoted && (strcmp(n->scalar, "true") == 0 || strcmp(n->scalar, "false") == 0)) {
            sl_buf_puts(b, n->scalar);
        } else if (!n->quoted && (strcmp(n->scalar, "~") == 0 || strcmp(n->scalar, "null") == 0 ||
                                  n->scalar[0] == '\0')) {
            sl_buf_puts(b, "null");
        } else if (!n->quoted && looks_numeric(n->scalar)) {
            sl_buf_puts(b, n->scalar);
        } else {
            sl_json_put_str(b, n->scalar, strlen(n->scalar));
        }
        break;
    }
}

static int parse_fields(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                        struct input_conf *in)
{
    struct sl_cfg_node *f = sl_cfg_get(map, "fields");
    if (!f || (f->type == SL_CFG_SCALAR && !f->quoted && f->scalar[0] == '\0')) {
        return 0;
    }
    if (f->type != SL_CFG_MAP) {
        sl_cfg_error(cfg, f, "%s: option 'fields' must be a map", where);
        return SL_EINVAL;
    }
    if (f->n == 0) {
        return 0;
    }
    struct sl_buf b;
    sl_buf_init(&b, 0);
    node_json(&b, f);
    /* Keep the members only: the event writer places them under "fields" or at the root. */
    in->fields_json = sl_strndup(b.data + 1, b.len - 2);
    sl_buf_free(&b);
    return 0;
}

static int parse_tags(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                      struct input_conf *in)
{
    char **tags = NULL;
    size_t n = 0;
    int rc = sl_cfg_strlist(cfg, map, where, "tags", &tags, &n);
    if (rc != 0 || !tags || n == 0) {
        sl_cfg_strv_free(tags);
        return rc;
    }
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_buf_putc(&b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i) {
            sl_buf_putc(&b, ',');
        }
        sl_json_put_str(&b, tags[i], strlen(tags[i]));
    }
    sl_buf_putc(&b, ']');
    in->tags_json = sl_strndup(b.data, b.len);
    sl_buf_free(&b);
    sl_cfg_strv_free(tags);
    return 0;
}

static int parse_multiline(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                           struct multiline_conf *ml)
{
    struct sl_cfg_node *m = sl_cfg_get(map, "multiline");
    if (!m) {
        return 0;
    }
    char w[128];
    snprintf(w, sizeof(w), "%s.multiline", where);
    if (!sl_cfg_is_map(cfg, m, w)) {
        return SL_EINVAL;
    }
    static const char *const matches[] = {"after", "before", NULL};
    char *pattern = NULL;
    int match = 0;
    int rc = 0;
    rc |= sl_cfg_str(cfg, m, w, "pattern", NULL, &pattern);
    rc |= sl_cfg_bool(cfg, m, w, "negate", false, &ml->negate);
    rc |= sl_cfg_enum(cfg, m, w, "match", matches, 0, &match);
    rc |= sl_cfg_int(cfg, m, w, "max_lines", 500, 1, 1000000, &ml->max_lines);
    rc |= sl_cfg_duration(cfg, m, w, "timeout", 5000, 0, 86400000, &ml->timeout_ms);
    sl_cfg_check_unknown(cfg, m, w);
    ml->match_after = match == 0;
    if (!pattern) {
        sl_cfg_error(cfg, m, "%s: option 'pattern' is required", w);
        rc = SL_EINVAL;
    } else if (compile_one(cfg, sl_cfg_get(m, "pattern"), w, "pattern", pattern,
                           &ml->pattern) == 0) {
        ml->enabled = true;
    } else {
        rc = SL_EINVAL;
    }
    free(pattern);
    return rc ? SL_EINVAL : 0;
}

/*
 * type: Filebeat's names. filestream and log tail plain lines; container reads
 * what a container runtime writes (docs/shipper.md), with Filebeat's stream and
 * format options, which only it takes.
 */
static int parse_type(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                      struct input_conf *in)
{
    static const char *const types[] = {"filestream", "log", "container", NULL};
    static const char *const streams[] = {"all", "stdout", "stderr", NULL};
    static const char *const formats[] = {"auto", "docker", "cri", NULL};
    int type = 0;
    int rc = sl_cfg_enum(cfg, map, where, "type", types, 0, &type);
    in->type = type == 2 ? INPUT_CONTAINER : INPUT_LOG;
    if (in->type != INPUT_CONTAINER) {
        const char *only[] = {"stream", "format"};
        for (size_t i = 0; i < SL_ARRAY_LEN(only); i++) {
            struct sl_cfg_node *n = sl_cfg_get(map, only[i]);
            if (n) {
                sl_cfg_error(cfg, n, "%s: option '%s' is for 'type: container' only", where,
                             only[i]);
                rc = SL_EINVAL;
            }
        }
        return rc;
    }
    rc |= sl_cfg_enum(cfg, map, where, "stream", streams, CTR_STREAM_ALL, &in->ctr_stream);
    rc |= sl_cfg_enum(cfg, map, where, "format", formats, CTR_AUTO, &in->ctr_format);
    return rc;
}

static int parse_input(struct sl_cfg *cfg, struct sl_cfg_node *map, size_t idx,
                       struct input_conf *in)
{
    char where[64];
    snprintf(where, sizeof(where), "inputs[%zu]", idx);
    if (!map || map->type != SL_CFG_MAP) {
        sl_cfg_error(cfg, map, "%s: must be a map", where);
        return SL_EINVAL;
    }
    static const char *const starts[] = {"end", "beginning", NULL};
    int start = 0;
    int rc = 0;
    rc |= sl_cfg_strlist(cfg, map, where, "paths", &in->paths, &in->npaths);
    if (rc == 0 && in->npaths == 0) {
        sl_cfg_error(cfg, map, "%s: option 'paths' is required", where);
        rc = SL_EINVAL;
    }
    char defid[32];
    snprintf(defid, sizeof(defid), "input-%zu", idx);
    rc |= sl_cfg_str(cfg, map, where, "id", defid, &in->id);
    rc |= get_regex_list(cfg, map, where, "exclude_files", &in->exclude_files);
    rc |= get_regex_list(cfg, map, where, "include_lines", &in->include_lines);
    in->include_lines.timeout_matches = true;
    rc |= get_regex_list(cfg, map, where, "exclude_lines", &in->exclude_lines);
    rc |= parse_fields(cfg, map, where, in);
    rc |= sl_cfg_bool(cfg, map, where, "fields_under_root", false, &in->fields_under_root);
    rc |= parse_tags(cfg, map, where, in);
    rc |= sl_cfg_enum(cfg, map, where, "start_position", starts, START_END, &start);
    rc |= sl_cfg_size(cfg, map, where, "max_line_bytes", 1 << 20, 64, 256u << 20,
                      &in->max_line_bytes);
    rc |= sl_cfg_duration(cfg, map, where, "close_inactive", 300000, 0, UINT32_MAX,
                          &in->close_inactive_ms);
    rc |= sl_cfg_duration(cfg, map, where, "scan_frequency", 10000, 100, 3600000,
                          &in->scan_frequency_ms);
    rc |= sl_cfg_int(cfg, map, where, "harvester_limit", 0, 0, 1000000, &in->harvester_limit);
    rc |= parse_type(cfg, map, where, in);
    rc |= proc_chain_parse(cfg, sl_cfg_get(map, "processors"), where, &in->processors);
    rc |= ndjson_parse_conf(cfg, sl_cfg_get(map, "parsers"), where, &in->ndjson);
    rc |= parse_multiline(cfg, map, where, &in->multiline);
    in->start = (enum start_position)start;
    sl_cfg_check_unknown(cfg, map, where);
    return rc ? SL_EINVAL : 0;
}

/*
 * Checks addr as the sender will split it ("host:port", "[v6]:port"), so that
 * a bad port is an error of -t at the entry rather than a host that can never
 * be connected to and only says so in the log, at every retry.
 */
static int check_host_addr(struct sl_cfg *cfg, const struct sl_cfg_node *at, const char *where,
                           const char *addr)
{
    const char *port;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':') {
            sl_cfg_error(cfg, at, "%s: must be \"host:port\" or \"[IPv6]:port\", got '%s'",
                         where, addr);
            return SL_EINVAL;
        }
        port = close + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (memchr(addr, ':', (size_t)(colon - addr))) {
            /* "fe80::1:5044" has no one reading: which part is the port? */
            sl_cfg_error(cfg, at, "%s: an IPv6 address needs brackets (\"[::1]:5044\"), got '%s'",
                         where, addr);
            return SL_EINVAL;
        }
        port = colon + 1;
    }
    /* Digits only: strtol would also take " 80" and "+80". */
    long value = 0;
    const char *p = port;
    for (; *p >= '0' && *p <= '9' && value <= 65535; p++) {
        value = value * 10 + (*p - '0');
    }
    if (p == port || *p != '\0' || value < 1 || value > 65535) {
        sl_cfg_error(cfg, at, "%s: port must be 1..65535, got '%s' in '%s'", where, port, addr);
        return SL_EINVAL;
    }
    char host[256];
    int unused;
    if (sl_net_split(addr, host, sizeof(host), &unused) != 0) {
        /* The port is fine by now: only a host part too long for the resolver is left. */
        sl_cfg_error(cfg, at, "%s: host name longer than %zu bytes in '%s'", where,
                     sizeof(host) - 1, addr);
        return SL_EINVAL;
    }
    return 0;
}

static int parse_host(struct sl_cfg *cfg, struct sl_cfg_node *n, size_t idx,
                      struct host_conf *h)
{
    char where[64];
    snprintf(where, sizeof(where), "output.hosts[%zu]", idx);
    h->weight = 1;
    if (n->type == SL_CFG_SCALAR) {
        h->addr = sl_strdup(n->scalar);
    } else if (n->type == SL_CFG_MAP) {
        int rc = 0;
        rc |= sl_cfg_str(cfg, n, where, "host", NULL, &h->addr);
        rc |= sl_cfg_int(cfg, n, where, "weight", 1, 1, 1000, &h->weight);
        rc |= sl_cfg_bool(cfg, n, where, "backup", false, &h->backup);
        sl_cfg_check_unknown(cfg, n, where);
        if (rc != 0) {
            return SL_EINVAL;
        }
        if (!h->addr) {
            sl_cfg_error(cfg, n, "%s: option 'host' is required", where);
            return SL_EINVAL;
        }
    } else {
        sl_cfg_error(cfg, n, "%s: must be \"host:port\" or a map with 'host'", where);
        return SL_EINVAL;
    }
    size_t alen = strlen(h->addr);
    bool bare_v6 = h->addr[0] == '[' && h->addr[alen - 1] == ']';
    if (!strchr(h->addr, ':') || bare_v6) {
        /* Filebeat's default port for the Logstash output. */
        size_t len = alen + 6;
        char *a = sl_malloc(len);
        snprintf(a, len, "%s:5044", h->addr);
        free(h->addr);
        h->addr = a;
    }
    if (n->type == SL_CFG_MAP) {
        char w[96];
        snprintf(w, sizeof(w), "%s: option 'host'", where);
        return check_host_addr(cfg, sl_cfg_get(n, "host"), w, h->addr);
    }
    return check_host_addr(cfg, n, where, h->addr);
}

struct sl_tls_ctx *shipper_tls_ctx(const struct ssl_conf *ssl, char *err, size_t errlen)
{
    struct sl_tls_opts o = {
        .certificate_authorities = (const char *const *)ssl->cas,
        .n_certificate_authorities = ssl->ncas,
        .certificate = ssl->certificate[0] ? ssl->certificate : NULL,
        .key = ssl->key[0] ? ssl->key : NULL,
        .key_passphrase = ssl->key_passphrase[0] ? ssl->key_passphrase : NULL,
        .verification_mode = (enum sl_tls_verify)ssl->verification_mode,
        .supported_protocols = (const char *const *)ssl->protocols,
        .n_supported_protocols = ssl->nprotocols,
    };
    return sl_tls_client_ctx(&o, err, errlen);
}

static int parse_ssl(struct sl_cfg *cfg, struct sl_cfg_node *map, struct ssl_conf *ssl)
{
    struct sl_cfg_node *m = sl_cfg_get(map, "ssl");
    const char *w = "output.ssl";
    if (!sl_cfg_is_map(cfg, m, w)) {
        return SL_EINVAL;
    }
    /* The same order as enum sl_tls_verify. */
    static const char *const modes[] = {"full", "certificate", "none", "strict", NULL};
    int rc = 0;
    rc |= sl_cfg_bool(cfg, m, w, "enabled", false, &ssl->enabled);
    rc |= sl_cfg_strlist(cfg, m, w, "certificate_authorities", &ssl->cas, &ssl->ncas);
    rc |= sl_cfg_str(cfg, m, w, "certificate", "", &ssl->certificate);
    rc |= sl_cfg_str(cfg, m, w, "key", "", &ssl->key);
    rc |= sl_cfg_str(cfg, m, w, "key_passphrase", "", &ssl->key_passphrase);
    rc |= sl_cfg_enum(cfg, m, w, "verification_mode", modes, 0, &ssl->verification_mode);
    rc |= sl_cfg_strlist(cfg, m, w, "supported_protocols", &ssl->protocols, &ssl->nprotocols);
    sl_cfg_check_unknown(cfg, m, w);
    if (rc == 0 && ssl->enabled) {
        /* Load every file now: a bad path is a configuration error (and -t says so). */
        char err[512];
        struct sl_tls_ctx *ctx = shipper_tls_ctx(ssl, err, sizeof(err));
        if (!ctx) {
            sl_cfg_error(cfg, m, "%s: %s", w, err);
            rc = SL_EINVAL;
        }
        sl_tls_ctx_free(ctx);
    }
    return rc ? SL_EINVAL : 0;
}

/* output.kafka.partition: one of {round_robin: {}}, {hash: {}}, {random: {}}. */
static int parse_partition(struct sl_cfg *cfg, struct sl_cfg_node *k, struct kafka_out_conf *o)
{
    static const char *const names[] = {"hash", "round_robin", "random", NULL};
    const char *w = "output.kafka.partition";
    struct sl_cfg_node *p = sl_cfg_get(k, "partition");
    o->partitioner = KAFKA_PART_HASH;  /* Filebeat's default */
    if (!p || sl_cfg_is_null(p)) {
        return 0;
    }
    if (!sl_cfg_is_map(cfg, p, w)) {
        return SL_EINVAL;
    }
    if (p->n != 1) {
        sl_cfg_error(cfg, p, "%s: give one of hash, round_robin, random", w);
        return SL_EINVAL;
    }
    for (int i = 0; names[i]; i++) {
        if (strcmp(p->keys[0], names[i]) == 0) {
            struct sl_cfg_node *opts = sl_cfg_get(p, names[i]);
            if (opts && !sl_cfg_is_null(opts) &&
                (opts->type != SL_CFG_MAP || opts->n != 0)) {
                sl_cfg_error(cfg, opts, "%s.%s: takes no options in sluice", w, names[i]);
                return SL_EINVAL;
            }
            o->partitioner = (enum kafka_partitioner)i;
            return 0;
        }
    }
    sl_cfg_error(cfg, p->key_nodes[0], "%s: unknown partitioner '%s' (hash, round_robin, "
                 "random)", w, p->keys[0]);
    return SL_EINVAL;
}

static int parse_kafka_output(struct sl_cfg *cfg, struct sl_cfg_node *k, struct kafka_out_conf *o)
{
    static const char *const comps[] = {"gzip", "none", "snappy", "lz4", "zstd", NULL};
    const char *w = "output.kafka";
    int rc = 0, comp = 0;
    o->enabled = true;
    if (!sl_cfg_is_map(cfg, k, w)) {
        return SL_EINVAL;
    }
    rc |= sl_cfg_strlist(cfg, k, w, "hosts", &o->hosts, &o->nhosts);
    if (o->nhosts == 0) {
        sl_cfg_error(cfg, k, "%s: option 'hosts' must list at least one broker", w);
        rc = SL_EINVAL;
    }
    rc |= sl_cfg_str(cfg, k, w, "topic", "", &o->topic);
    if (!o->topic || !o->topic[0]) {
        sl_cfg_error(cfg, k, "%s: option 'topic' is required", w);
        rc = SL_EINVAL;
    }
    rc |= sl_cfg_str(cfg, k, w, "key", "", &o->key);
    rc |= parse_partition(cfg, k, o);
    rc |= sl_cfg_int(cfg, k, w, "required_acks", 1, -1, 1, &o->required_acks);
    rc |= sl_cfg_enum(cfg, k, w, "compression", comps, 0, &comp);
    o->compression = sl_strdup(comps[comp]);
    rc |= sl_cfg_int(cfg, k, w, "compression_level", -1, -1, 12, &o->compression_level);
    rc |= sl_cfg_int(cfg, k, w, "max_message_bytes", 1000000, 1000, 1000000000,
                     &o->max_message_bytes);
    rc |= sl_cfg_str(cfg, k, w, "client_id", "beats", &o->client_id);
    sl_cfg_check_unknown(cfg, k, w);
    return rc ? SL_EINVAL : 0;
}

static int parse_output(struct sl_cfg *cfg, struct sl_cfg_node *m, struct output_conf *o)
{
    const char *w = "output";
    if (!sl_cfg_is_map(cfg, m, w)) {
        return SL_EINVAL;
    }
    int rc = 0;
    struct sl_cfg_node *kafka = sl_cfg_get(m, "kafka");
    if (kafka) {
        /* One output or the other, as Filebeat's output.kafka / output.logstash. */
        if (sl_cfg_get(m, "hosts")) {
            sl_cfg_error(cfg, kafka, "output: 'kafka' and 'hosts' (Lumberjack) cannot both "
                         "be set: a shipper has one output");
            rc = SL_EINVAL;
        }
        rc |= parse_kafka_output(cfg, kafka, &o->kafka);
    }
    struct sl_cfg_node *hosts = sl_cfg_get(m, "hosts");
    if (!hosts) {
        o->hosts = sl_calloc(1, sizeof(*o->hosts));
        o->hosts[0].addr = sl_strdup("127.0.0.1:5044");
        o->hosts[0].weight = 1;
        o->nhosts = 1;
    } else if (hosts->type == SL_CFG_SEQ && hosts->n > 0) {
        o->hosts = sl_calloc(hosts->n, sizeof(*o->hosts));
        for (size_t i = 0; i < hosts->n; i++) {
            rc |= parse_host(cfg, hosts->items[i], i, &o->hosts[i]);
        }
        o->nhosts = hosts->n;
    } else if (hosts->type == SL_CFG_SCALAR) {
        o->hosts = sl_calloc(1, sizeof(*o->hosts));
        o->nhosts = 1;
        rc |= parse_host(cfg, hosts, 0, &o->hosts[0]);
    } else {
        sl_cfg_error(cfg, hosts, "%s: option 'hosts' must be a non-empty list", w);
        rc = SL_EINVAL;
    }
    static const char *const comps[] = {"zstd", "zlib", "none", "zstd_stream", NULL};
    int comp = 0;
    rc |= sl_cfg_bool(cfg, m, w, "loadbalance", true, &o->loadbalance);
    rc |= sl_cfg_enum(cfg, m, w, "compression", comps, COMP_ZSTD, &comp);
    o->compression = (enum ship_compression)comp;
    /* zstd level 1 makes Beats-shaped events both smaller and cheaper than
     * zstd's default 3 (docs/shipper.md); zlib keeps Filebeat's 3. */
    int64_t level = o->compression == COMP_ZLIB ? 3 : 1;
    rc |= sl_cfg_int(cfg, m, w, "compression_level", level, 0, 19, &o->compression_level);
    if (o->compression == COMP_ZLIB && o->compression_level > 9) {
        sl_cfg_error(cfg, sl_cfg_get(m, "compression_level"),
                     "%s: option 'compression_level' must be 0..9 for zlib", w);
        rc = SL_EINVAL;
    }
    rc |= sl_cfg_int(cfg, m, w, "bulk_max_events", 2048, 1, 65536, &o->bulk_max_events);
    rc |= sl_cfg_duration(cfg, m, w, "flush_interval", 1000, 0, 3600000, &o->flush_interval_ms);
    rc |= sl_cfg_duration(cfg, m, w, "timeout", 30000, 100, 3600000, &o->timeout_ms);
    rc |= sl_cfg_int(cfg, m, w, "pipelining", 2, 1, 16, &o->pipelining);
    struct sl_cfg_node *bo = sl_cfg_get(m, "backoff");
    if (sl_cfg_is_map(cfg, bo, "output.backoff")) {
        rc |= sl_cfg_duration(cfg, bo, "output.backoff", "init", 1000, 1, 3600000,
                              &o->backoff_init_ms);
        rc |= sl_cfg_duration(cfg, bo, "output.backoff", "max", 60000, 1, 86400000,
                              &o->backoff_max_ms);
        sl_cfg_check_unknown(cfg, bo, "output.backoff");
    } else {
        rc = SL_EINVAL;
    }
    if (o->backoff_max_ms < o->backoff_init_ms) {
        o->backoff_max_ms = o->backoff_init_ms;
    }
    rc |= parse_ssl(cfg, m, &o->ssl);
    sl_cfg_check_unknown(cfg, m, w);
    return rc ? SL_EINVAL : 0;
}

static char *default_hostname(void)
{
    char h[256];
    if (gethostname(h, sizeof(h)) != 0) {
        return sl_strdup("localhost");
    }
    h[sizeof(h) - 1] = '\0';
    return sl_strdup(h);
}


/* A filebeat.yml pasted as is: where each of its sections goes in sluice. */
static const struct {
    const char *key;   /* a root key, or the start of a dotted one ("output" takes "output.x") */
    const char *hint;
} filebeat_keys[] = {
    {"filebeat.inputs", "Filebeat's inputs: sluice's are 'inputs:', a list of "
                        "{paths: [...], start_position, ...}"},
    {"filebeat", "the 'filebeat:' section is Filebeat's: inputs go under 'inputs:', the "
                 "registry under 'registry: {path: ...}'"},
    {"output.logstash", "Filebeat's output: sluice's is 'output: {hosts: [...]}' "
                        "(compression: zlib to send to Logstash itself)"},
    {"output.kafka", "Filebeat's dotted key: sluice's is 'output: {kafka: {hosts: [...], "
                     "topic: ...}}'"},
    {"output.elasticsearch", "the shipper sends to sluice-aggregator ('output: {hosts: "
                             "[...]}'); Elasticsearch is the aggregator's output"},
    {"path", "Filebeat's paths: sluice keeps its offsets in 'registry: {path: ...}'"},
    {"logging", "logging is set on the command line: --log-level, --log-format"},
    {"http", "the metrics endpoint is 'metrics: {listen: \"127.0.0.1:5066\"}'"},
    {"monitoring", "sluice serves Prometheus metrics at 'metrics: {listen: ...}'"},
    {"setup", "index templates and dashboards are the aggregator's business"},
    {"queue.mem", "sluice's queue is 'queue: {max_events: N}'"},
};

static bool key_is(const char *key, const char *name)
{
    size_t n = strlen(name);
    return strncmp(key, name, n) == 0 && (key[n] == '\0' || key[n] == '.');
}

/* Reports each Filebeat key with where it goes; true when the inputs were Filebeat's. */
static bool filebeat_hints(struct sl_cfg *cfg, struct sl_cfg_node *root)
{
    bool inputs = false;
    for (size_t i = 0; root && root->type == SL_CFG_MAP && i < root->n; i++) {
        const char *key = root->keys[i];
        for (size_t k = 0; k < SL_ARRAY_LEN(filebeat_keys); k++) {
            if (key_is(key, filebeat_keys[k].key)) {
                root->used[i] = true;  /* said here; not "unknown option" again */
                sl_cfg_error(cfg, root->key_nodes[i], "'%s' looks like filebeat.yml: %s (see "
                             "docs/configuration.md)", key, filebeat_keys[k].hint);
                inputs |= k <= 1;
                break;
            }
        }
    }
    return inputs;
}

int shipper_conf_parse(struct sl_cfg *cfg, struct shipper_conf *c)
{
    memset(c, 0, sizeof(*c));
    struct sl_cfg_node *root = cfg->root;
    int rc = 0;
    bool pasted = filebeat_hints(cfg, root);
    struct sl_cfg_node *inputs = sl_cfg_get(root, "inputs");
    if (!inputs || inputs->type != SL_CFG_SEQ || inputs->n == 0) {
        if (!pasted || inputs) {
            sl_cfg_error(cfg, inputs ? inputs : root, "option 'inputs' must be a non-empty list");
        }
        rc = SL_EINVAL;
    } else {
        c->inputs = sl_calloc(inputs->n, sizeof(*c->inputs));
        c->ninputs = inputs->n;
        for (size_t i = 0; i < inputs->n; i++) {
            rc |= parse_input(cfg, inputs->items[i], i, &c->inputs[i]);
        }
        for (size_t i = 0; i < c->ninputs; i++) {
            for (size_t j = 0; j < i; j++) {
                if (c->inputs[i].id && c->inputs[j].id &&
                    strcmp(c->inputs[i].id, c->inputs[j].id) == 0) {
                    sl_cfg_error(cfg, inputs->items[i], "inputs[%zu]: duplicate id '%s'", i,
                                 c->inputs[i].id);
                    rc = SL_EINVAL;
                }
            }
        }
    }
    rc |= parse_output(cfg, sl_cfg_get(root, "output"), &c->output);

    struct sl_cfg_node *q = sl_cfg_get(root, "queue");
    if (sl_cfg_is_map(cfg, q, "queue")) {
        rc |= sl_cfg_int(cfg, q, "queue", "max_events", 4096, 1, 10000000, &c->queue_max_events);
        sl_cfg_check_unknown(cfg, q, "queue");
    } else {
        rc = SL_EINVAL;
    }
    struct sl_cfg_node *reg = sl_cfg_get(root, "registry");
    if (sl_cfg_is_map(cfg, reg, "registry")) {
        rc |= sl_cfg_str(cfg, reg, "registry", "path", "/var/lib/sluice/shipper",
                         &c->registry_path);
        rc |= sl_cfg_duration(cfg, reg, "registry", "flush", 1000, 0, 3600000,
                              &c->registry_flush_ms);
        sl_cfg_check_unknown(cfg, reg, "registry");
    } else {
        rc = SL_EINVAL;
    }
    struct sl_cfg_node *met = sl_cfg_get(root, "metrics");
    if (sl_cfg_is_map(cfg, met, "metrics")) {
        rc |= sl_cfg_str(cfg, met, "metrics", "listen", "127.0.0.1:5066", &c->metrics_listen);
        rc |= sl_cfg_duration(cfg, met, "metrics", "unhealthy_after", 300000, 1000, 86400000,
                              &c->unhealthy_after_ms);
        sl_cfg_check_unknown(cfg, met, "metrics");
    } else {
        rc = SL_EINVAL;
    }
    rc |= sl_cfg_duration(cfg, root, "", "shutdown_timeout", 10000, 0, 3600000,
                          &c->shutdown_timeout_ms);
    rc |= sl_cfg_str(cfg, root, "", "name", NULL, &c->hostname);
    if (!c->hostname) {
        c->hostname = default_hostname();
    }
    rc |= proc_chain_parse(cfg, sl_cfg_get(root, "processors"), "", &c->processors);
    sl_cfg_check_unknown(cfg, root, "shipper");
    if (c->output.bulk_max_events > c->queue_max_events) {
        /* A window larger than the queue could never fill: cap it, as Filebeat does. */
        c->output.bulk_max_events = c->queue_max_events;
    }
    return rc ? SL_EINVAL : 0;
}

int shipper_conf_check_registry(struct sl_cfg *cfg, const struct shipper_conf *c, bool create)
{
    char err[PATH_MAX + 128];
    if (registry_check_dir(c->registry_path, create, err, sizeof(err)) == 0) {
        return 0;
    }
    /* At the option when it is written, else at the registry map, else 1:1
     * (the default path): the message names the path either way. */
    struct sl_cfg_node *reg = sl_cfg_get(cfg->root, "registry");
    struct sl_cfg_node *path = sl_cfg_get(reg, "path");
    sl_cfg_error(cfg, path ? path : reg, "registry: option 'path': %s", err);
    return SL_EINVAL;
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool strv_eq(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb) {
        return false;
    }
    for (size_t i = 0; i < na; i++) {
        if (!str_eq(a[i], b[i])) {
            return false;
        }
    }
    return true;
}

static bool kafka_conf_equal(const struct kafka_out_conf *a, const struct kafka_out_conf *b)
{
    return a->enabled == b->enabled && strv_eq(a->hosts, a->nhosts, b->hosts, b->nhosts) &&
           str_eq(a->topic, b->topic) && str_eq(a->key, b->key) &&
           a->partitioner == b->partitioner && a->required_acks == b->required_acks &&
           str_eq(a->compression, b->compression) &&
           a->compression_level == b->compression_level &&
           a->max_message_bytes == b->max_message_bytes && str_eq(a->client_id, b->client_id);
}

bool output_conf_equal(const struct output_conf *a, const struct output_conf *b)
{
    if (a->nhosts != b->nhosts || !kafka_conf_equal(&a->kafka, &b->kafka)) {
        return false;
    }
    for (size_t i = 0; i < a->nhosts; i++) {
        const struct host_conf *x = &a->hosts[i], *y = &b->hosts[i];
        if (!str_eq(x->addr, y->addr) || x->weight != y->weight || x->backup != y->backup) {
            return false;
        }
    }
    const struct ssl_conf *s = &a->ssl, *t = &b->ssl;
    return a->loadbalance == b->loadbalance && a->compression == b->compression &&
           a->compression_level == b->compression_level &&
           a->bulk_max_events == b->bulk_max_events &&
           a->flush_interval_ms == b->flush_interval_ms && a->timeout_ms == b->timeout_ms &&
           a->backoff_init_ms == b->backoff_init_ms && a->backoff_max_ms == b->backoff_max_ms &&
           a->pipelining == b->pipelining && s->enabled == t->enabled &&
           strv_eq(s->cas, s->ncas, t->cas, t->ncas) && str_eq(s->certificate, t->certificate) &&
           str_eq(s->key, t->key) && str_eq(s->key_passphrase, t->key_passphrase) &&
           s->verification_mode == t->verification_mode &&
           strv_eq(s->protocols, s->nprotocols, t->protocols, t->nprotocols);
}

void shipper_conf_free(struct shipper_conf *c)
{
    for (size_t i = 0; i < c->ninputs; i++) {
        struct input_conf *in = &c->inputs[i];
        free(in->id);
        sl_cfg_strv_free(in->paths);
        regex_list_free(&in->exclude_files);
        regex_list_free(&in->include_lines);
        regex_list_free(&in->exclude_lines);
        free(in->fields_json);
        free(in->tags_json);
        sl_regex_free(in->multiline.pattern);
        proc_chain_free(in->processors);
        ndjson_free(in->ndjson);
    }
    proc_chain_free(c->processors);
    free(c->inputs);
    for (size_t i = 0; i < c->output.nhosts; i++) {
        free(c->output.hosts[i].addr);
    }
    sl_cfg_strv_free(c->output.kafka.hosts);
    free(c->output.kafka.topic);
    free(c->output.kafka.key);
    free(c->output.kafka.compression);
    free(c->output.kafka.client_id);
    free(c->output.hosts);
    sl_cfg_strv_free(c->output.ssl.cas);
    free(c->output.ssl.certificate);
    free(c->output.ssl.key);
    free(c->output.ssl.key_passphrase);
    sl_cfg_strv_free(c->output.ssl.protocols);
    free(c->registry_path);
    free(c->metrics_listen);
    free(c->hostname);
    memset(c, 0, sizeof(*c));
}
