/*
 * kafka_conf.c - reads one `inputs: - kafka:` entry through the typed
 * sl_cfg getters; the map is finished by sl_cfg_check_unknown() so a typo is
 * an error. Nothing connects here: -t checks the file without a broker.
 */
#include "kafka_conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/buf.h"

#define DAY_MS 86400000ull

/*
 * librdkafka settings an option sets: under `properties` too, two places
 * would disagree. Auto-commit and the offset store are the input's own
 * business (offsets are committed once the outputs have the events).
 */
static const char *const RESERVED[] = {
    "bootstrap.servers", "metadata.broker.list", "group.id", "client.id",
    "auto.offset.reset", "session.timeout.ms", "heartbeat.interval.ms",
    "max.poll.interval.ms", "enable.auto.commit", "enable.auto.offset.store",
    "auto.commit.interval.ms", "security.protocol", "sasl.mechanism", "sasl.mechanisms",
    "sasl.username", "sasl.password", "ssl.ca.location", "ssl.certificate.location",
    "ssl.key.location", NULL,
};

static void read_properties(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                            struct agg_kafka_conf *k)
{
    struct sl_cfg_node *p = sl_cfg_get(map, "properties");
    if (!p || sl_cfg_is_null(p) || !sl_cfg_is_map(cfg, p, "properties")) {
        return;
    }
    k->prop_keys = sl_calloc(p->n + 1, sizeof(char *));
    k->prop_values = sl_calloc(p->n + 1, sizeof(char *));
    for (size_t i = 0; i < p->n; i++) {
        struct sl_cfg_node *v = p->items[i];
        if (v->type != SL_CFG_SCALAR) {
            sl_cfg_bad_value(cfg, v, where, p->keys[i], "a string");
            continue;
        }
        bool reserved = false;
        for (const char *const *r = RESERVED; *r; r++) {
            reserved = reserved || strcmp(*r, p->keys[i]) == 0;
        }
        if (reserved) {
            sl_cfg_error(cfg, p->key_nodes[i], "%s: properties: '%s' is set by an option of "
                         "this input (or by the input itself); use the option", where,
                         p->keys[i]);
            continue;
        }
        k->prop_keys[k->nprops] = sl_strdup(p->keys[i]);
        k->prop_values[k->nprops] = sl_strdup(v->scalar ? v->scalar : "");
        k->nprops++;
    }
}

/* bootstrap_servers: Logstash's "h1:9092,h2:9092" string, or a list. */
static void read_servers(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                         struct agg_kafka_conf *k)
{
    char **v = NULL;
    size_t n = 0;
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_cfg_strlist(cfg, map, where, "bootstrap_servers", &v, &n);
    for (size_t i = 0; i < n; i++) {
        sl_buf_printf(&b, "%s%s", i ? "," : "", v[i]);
    }
    k->bootstrap_servers = sl_strdup(n ? sl_buf_cstr(&b) : "localhost:9092");
    if (n && b.len == 0) {
        sl_cfg_error(cfg, sl_cfg_get(map, "bootstrap_servers"),
                     "%s: option 'bootstrap_servers' must not be empty", where);
    }
    sl_buf_free(&b);
    sl_cfg_strv_free(v);
}

/* Logstash's *_ms options: a number of milliseconds, as there. */
static void read_ms(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                    const char *key, int64_t def, int64_t min, int64_t max, uint64_t *out)
{
    int64_t v = def;
    sl_cfg_int(cfg, map, where, key, def, min, max, &v);
    *out = (uint64_t)v;
}

void agg_kafka_conf_read(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                         struct agg_kafka_conf *k)
{
    static const char *const resets[] = {"latest", "earliest", "none", NULL};
    static const char *const codecs[] = {"plain", "json", NULL};
    static const char *const protocols[] = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL",
                                            NULL};
    int reset = AGG_KAFKA_LATEST, codec = AGG_KAFKA_PLAIN, proto = 0;
    memset(k, 0, sizeof(*k));
    snprintf(k->id, sizeof(k->id), "%s", where);
    read_servers(cfg, map, where, k);
    sl_cfg_strlist(cfg, map, where, "topics", &k->topics, &k->ntopics);
    if (!sl_cfg_get(map, "topics")) {
        /* Logstash's default topic. */
        sl_cfg_strv_free(k->topics);
        k->topics = sl_calloc(2, sizeof(char *));
        k->topics[0] = sl_strdup("logstash");
        k->ntopics = 1;
    }
    sl_cfg_str(cfg, map, where, "topics_pattern", "", &k->topics_pattern);
    /* Logstash's group: sluice can take over a group Logstash consumed, offsets and all. */
    sl_cfg_str(cfg, map, where, "group_id", "logstash", &k->group_id);
    sl_cfg_str(cfg, map, where, "client_id", "sluice", &k->client_id);
    sl_cfg_enum(cfg, map, where, "auto_offset_reset", resets, AGG_KAFKA_LATEST, &reset);
    k->auto_offset_reset = (enum agg_kafka_reset)reset;
    sl_cfg_int(cfg, map, where, "consumer_threads", 1, 1, 128, &k->consumer_threads);
    sl_cfg_enum(cfg, map, where, "codec", codecs, AGG_KAFKA_PLAIN, &codec);
    k->codec = (enum agg_kafka_codec)codec;
    sl_cfg_int(cfg, map, where, "max_poll_records", 500, 1, 100000, &k->max_poll_records);
    read_ms(cfg, map, where, "session_timeout_ms", 10000, 1000, 3600000,
            &k->session_timeout_ms);
    read_ms(cfg, map, where, "heartbeat_interval_ms", 3000, 100, 3600000,
            &k->heartbeat_interval_ms);
    read_ms(cfg, map, where, "max_poll_interval_ms", 300000, 1000, DAY_MS,
            &k->max_poll_interval_ms);
    read_ms(cfg, map, where, "auto_commit_interval_ms", 1000, 10, 3600000,
            &k->auto_commit_interval_ms);
    sl_cfg_int(cfg, map, where, "max_json_depth", 64, 1, 512, &k->max_json_depth);
    sl_cfg_enum(cfg, map, where, "security_protocol", protocols, 0, &proto);
    k->security_protocol = sl_strdup(protocols[proto]);
    sl_cfg_str(cfg, map, where, "sasl_mechanism", "", &k->sasl_mechanism);
    sl_cfg_str(cfg, map, where, "sasl_username", "", &k->sasl_username);
    sl_cfg_str(cfg, map, where, "sasl_password", "", &k->sasl_password);
    sl_cfg_str(cfg, map, where, "ssl_certificate_authorities", "",
               &k->ssl_certificate_authorities);
    sl_cfg_str(cfg, map, where, "ssl_certificate", "", &k->ssl_certificate);
    sl_cfg_str(cfg, map, where, "ssl_key", "", &k->ssl_key);
    read_properties(cfg, map, where, k);
    sl_cfg_check_unknown(cfg, map, where);
    if (k->ntopics == 0 && !k->topics_pattern[0]) {
        sl_cfg_error(cfg, sl_cfg_get(map, "topics"),
                     "%s: option 'topics' must list at least one topic (or set "
                     "'topics_pattern')", where);
    }
    if (k->heartbeat_interval_ms >= k->session_timeout_ms) {
        sl_cfg_error(cfg, sl_cfg_get(map, "heartbeat_interval_ms"),
                     "%s: option 'heartbeat_interval_ms' must be lower than "
                     "'session_timeout_ms'", where);
    }
}

void agg_kafka_conf_free(struct agg_kafka_conf *k)
{
    if (!k) {
        return;
    }
    free(k->bootstrap_servers);
    sl_cfg_strv_free(k->topics);
    free(k->topics_pattern);
    free(k->group_id);
    free(k->client_id);
    free(k->security_protocol);
    free(k->sasl_mechanism);
    free(k->sasl_username);
    free(k->sasl_password);
    free(k->ssl_certificate_authorities);
    free(k->ssl_certificate);
    free(k->ssl_key);
    for (size_t i = 0; i < k->nprops; i++) {
        free(k->prop_keys[i]);
        free(k->prop_values[i]);
    }
    free(k->prop_keys);
    free(k->prop_values);
    memset(k, 0, sizeof(*k));
}
