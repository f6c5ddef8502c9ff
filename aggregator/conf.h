/*
 * conf.h - the aggregator's configuration (docs/aggregator.md, docs/configuration.md): the inputs (Lumberjack
 * listener, Kafka consumers: kafka_conf.h), the pipeline (workers, filters), the outputs, the queue, metrics
 * and shutdown. This module checks structure, types, ranges and unknown keys,
 * and resolves each filter/output name to a compiled-in plugin; the plugins'
 * own options are checked later, when the pipeline instantiates them
 * (agg_pipeline_new), and record their errors into the same sl_cfg, so
 * `-t` reports every problem of the file in one run.
 */
#ifndef SLUICE_AGG_CONF_H
#define SLUICE_AGG_CONF_H

#include "kafka_conf.h"
#include "sluice/config.h"
#include "sluice/plugin.h"
#include "sluice/tls.h"

/* One entry of `pipeline.filters` or `outputs`: a single-key map {name: {options}}. */
struct agg_plugin_conf {
    const struct sl_plugin *plugin;
    struct sl_cfg_node *opts;    /* the options map, borrowed from agg_conf.cfg; never NULL */
    struct sl_cfg_node nullmap;  /* stands in for options written as null (`- stdout:`), so
                                  * plugins still have a position to report errors at */
    char id[96];                 /* "outputs[1] (kafka)": messages and sl_plugin_ctx.id */
};

enum agg_queue_type { AGG_QUEUE_MEMORY = 0, AGG_QUEUE_PERSISTED };

/* The least default pipeline.max_pending_events: two Filebeat connections' windows in flight. */
#define AGG_MIN_PENDING 8192

/* input.ssl, as the Logstash beats input's ssl_* options. */
struct agg_ssl_conf {
    bool enabled;
    char *certificate;             /* path or inline PEM */
    char *key;
    char *key_passphrase;          /* NULL: none */
    char **certificate_authorities;
    size_t ncertificate_authorities;
    enum sl_tls_client_auth client_authentication;
    char **supported_protocols;    /* empty: TLSv1.2 and TLSv1.3 */
    size_t nsupported_protocols;
    uint64_t handshake_timeout_ms; /* extension, Logstash's ssl_handshake_timeout */
};

struct agg_conf {
    struct sl_cfg cfg;             /* the parsed file; errors accumulate in cfg.errors */
    bool check_only;               /* set by main for -t: plugins open no connection */

    /* inputs: the Lumberjack listener (`input:`, or `inputs: - beats:`) and Kafka consumers */
    bool beats;                    /* false: `inputs:` has no beats entry, no listener runs */
    struct agg_kafka_conf *kafka;  /* `inputs: - kafka:` entries */
    size_t nkafka;
    char *listen;                  /* "0.0.0.0:5044" */
    struct agg_ssl_conf ssl;       /* when enabled, its files were loaded and checked */
    int64_t max_connections;
    uint64_t client_inactivity_ms;
    uint32_t max_window_events;    /* extension: events one W frame may announce */
    uint64_t max_frame_bytes;      /* extension: one frame's payload */
    uint64_t max_window_bytes;     /* extension: a window's JSON bytes (after inflating) */
    int64_t max_pending_windows;   /* extension: windows of one connection in the pipeline */
    uint64_t keepalive_ms;         /* extension: ACK 0 period while a window is pending */
    uint64_t frame_timeout_ms;     /* extension: time a started window may take; 0 = none */
    int64_t max_json_depth;        /* extension: nesting of one event */
    int64_t client_metrics_max;    /* extension: clients with series of their own */
    uint64_t client_metrics_forget_ms; /* extension: drop a client's series after idle; 0 never */

    /* pipeline */
    int64_t workers;
    int64_t batch_size;
    int64_t max_pending_events;    /* extension: events in the pipeline before reads pause */
    uint64_t max_pending_bytes;    /* extension: JSON bytes read and not yet ACKed, all
                                    * connections together, before reads pause */
    uint64_t max_event_memory;     /* extension: what one event's parsed tree may take
                                    * beyond its text's length */
    enum sl_ecs ecs;               /* ecs_compatibility: every plugin's default field names */
    size_t nfilters;
    struct agg_plugin_conf *filters;
    size_t noutputs;
    struct agg_plugin_conf *outputs;

    /* queue */
    enum agg_queue_type queue_type;
    char *queue_path;
    uint64_t queue_max_bytes;
    uint64_t queue_page_capacity;
    uint64_t queue_checkpoint_writes;      /* fsync once this many events are unsynced */
    uint64_t queue_checkpoint_interval_ms; /* ... or the oldest of them waited this long */

    char *metrics_listen;          /* "127.0.0.1:9600" */
    uint64_t unhealthy_after_ms;   /* /healthz 503 once a window is pending this long (5m) */
    uint64_t shutdown_timeout_ms;
};

/*
 * Loads and checks path into *c (which need not be initialised). Returns 0,
 * or SL_EINVAL with every problem in c->cfg.errors. Always agg_conf_free().
 */
int agg_conf_load(struct agg_conf *c, const char *path);
/* Same from memory (tests); name appears in messages. */
int agg_conf_load_string(struct agg_conf *c, const char *name, const char *text);
void agg_conf_free(struct agg_conf *c);
/* c->ssl as options for sl_tls_server_ctx(); o borrows c's strings. */
void agg_conf_tls_opts(const struct agg_conf *c, struct sl_tls_opts *o);

#endif
