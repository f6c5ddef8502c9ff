/*
 * kafka_conf.h - the options of one `inputs: - kafka: {...}` entry
 * (docs/configuration.md, "inputs.kafka"), read and checked with the rest of
 * the aggregator's file. Names and defaults are those of Logstash's kafka
 * input where it has them; the differences are documented there.
 */
#ifndef SLUICE_AGG_KAFKA_CONF_H
#define SLUICE_AGG_KAFKA_CONF_H

#include "sluice/config.h"

enum agg_kafka_codec { AGG_KAFKA_PLAIN = 0, AGG_KAFKA_JSON };
enum agg_kafka_reset { AGG_KAFKA_LATEST = 0, AGG_KAFKA_EARLIEST, AGG_KAFKA_NONE };

struct agg_kafka_conf {
    char id[64];                   /* "inputs[1] (kafka)": messages, thread names */
    char *bootstrap_servers;       /* "host:port,host:port" */
    char **topics;                 /* NULL-terminated; unused when topics_pattern is set */
    size_t ntopics;
    char *topics_pattern;          /* "" : none */
    char *group_id;
    char *client_id;
    enum agg_kafka_reset auto_offset_reset;
    int64_t consumer_threads;      /* consumers (each its own thread) in the group */
    enum agg_kafka_codec codec;
    int64_t max_poll_records;      /* messages handed to the pipeline as one batch, at most */
    uint64_t session_timeout_ms;
    uint64_t heartbeat_interval_ms;
    uint64_t max_poll_interval_ms;
    uint64_t auto_commit_interval_ms; /* how often delivered offsets are committed */
    int64_t max_json_depth;
    char *security_protocol;       /* PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL */
    char *sasl_mechanism;          /* "" : librdkafka's default */
    char *sasl_username;
    char *sasl_password;
    char *ssl_certificate_authorities; /* "" : the system's */
    char *ssl_certificate;
    char *ssl_key;
    char **prop_keys;              /* `properties`: other librdkafka settings, as written */
    char **prop_values;
    size_t nprops;
};

/* Reads map (the entry's options) into *k, recording every problem in cfg. */
void agg_kafka_conf_read(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                         struct agg_kafka_conf *k);
void agg_kafka_conf_free(struct agg_kafka_conf *k);

#endif
