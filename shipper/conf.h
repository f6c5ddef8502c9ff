/*
 * conf.h - the shipper's configuration (docs/configuration.md), parsed and checked from YAML.
 */
#ifndef SHIPPER_CONF_H
#define SHIPPER_CONF_H

#include "sluice/common.h"
#include "sluice/config.h"
#include "sluice/regex.h"

enum start_position { START_END, START_BEGINNING };
enum input_type { INPUT_LOG, INPUT_CONTAINER };
/* stream: of a container input; CTR_STREAM_ALL or 1 + enum ctr_stream. */
#define CTR_STREAM_ALL 0
/* COMP_ZSTD_STREAM: 'S' blocks, one zstd stream per connection (docs/protocol.md §6). */
enum ship_compression { COMP_ZSTD, COMP_ZLIB, COMP_NONE, COMP_ZSTD_STREAM };

struct regex_list {
    struct sl_regex **re;
    size_t n;
    bool timeout_matches;  /* a search out of time counts as a match (include_lines) */
};

/* True when any regex of l matches s[0..len). A search that runs out of its
 * time budget (lib/regex.h) counts as l->timeout_matches says: either way the
 * line is shipped rather than lost. */
bool regex_list_match(const struct regex_list *l, const char *s, size_t len);

struct multiline_conf {
    bool enabled;
    struct sl_regex *pattern;
    bool negate;
    bool match_after;           /* match: after (true) | before */
    int64_t max_lines;
    uint64_t timeout_ms;
};

struct proc_chain;
struct ndjson;

struct input_conf {
    char *id;
    enum input_type type;
    int ctr_stream;             /* CTR_STREAM_ALL, or 1 + enum ctr_stream (container.h) */
    int ctr_format;             /* enum ctr_format (container.h) */
    struct proc_chain *processors;  /* NULL: none */
    struct ndjson *ndjson;      /* parsers: [{ndjson: ...}]; NULL: none */
    char **paths;               /* NULL-terminated globs */
    size_t npaths;
    struct regex_list exclude_files;
    struct regex_list include_lines;
    struct regex_list exclude_lines;
    char *fields_json;          /* the "fields" map pre-encoded as JSON members (no braces) */
    bool fields_under_root;
    char *tags_json;            /* tags pre-encoded as a JSON array, or NULL */
    enum start_position start;
    uint64_t max_line_bytes;
    uint64_t close_inactive_ms;
    uint64_t scan_frequency_ms;
    int64_t harvester_limit;    /* files open at once for this input; 0 = no limit */
    struct multiline_conf multiline;
};

struct host_conf {
    char *addr;                 /* host:port */
    int64_t weight;
    bool backup;
};

struct ssl_conf {
    bool enabled;
    char **cas;
    size_t ncas;
    char *certificate;
    char *key;
    char *key_passphrase;
    int verification_mode;      /* enum sl_tls_verify: full, certificate, none, strict */
    char **protocols;
    size_t nprotocols;
};

struct sl_tls_ctx;
/* The client TLS context for ssl (NULL with a message in err). */
struct sl_tls_ctx *shipper_tls_ctx(const struct ssl_conf *ssl, char *err, size_t errlen);

enum kafka_partitioner { KAFKA_PART_HASH = 0, KAFKA_PART_ROUND_ROBIN, KAFKA_PART_RANDOM };

/* output.kafka, Filebeat's names: instead of the Lumberjack hosts when enabled. */
struct kafka_out_conf {
    bool enabled;
    char **hosts;                  /* bootstrap brokers, NULL-terminated */
    size_t nhosts;
    char *topic;                   /* may hold %{[field]} */
    char *key;                     /* "" : no key; may hold %{[field]} */
    enum kafka_partitioner partitioner;
    int64_t required_acks;         /* 1, 0 or -1 (all) */
    char *compression;             /* none, gzip, snappy, lz4, zstd */
    int64_t compression_level;     /* -1: the codec's default */
    int64_t max_message_bytes;
    char *client_id;
};

struct output_conf {
    struct kafka_out_conf kafka;
    struct host_conf *hosts;
    size_t nhosts;
    bool loadbalance;
    enum ship_compression compression;
    int64_t compression_level;
    int64_t bulk_max_events;
    uint64_t flush_interval_ms;
    uint64_t timeout_ms;
    uint64_t backoff_init_ms;
    uint64_t backoff_max_ms;
    int64_t pipelining;
    struct ssl_conf ssl;
};

struct shipper_conf {
    struct input_conf *inputs;
    size_t ninputs;
    struct output_conf output;
    int64_t queue_max_events;
    char *registry_path;
    uint64_t registry_flush_ms;
    char *metrics_listen;
    uint64_t unhealthy_after_ms;  /* /healthz fails when events wait this long for an ACK */
    uint64_t shutdown_timeout_ms;
    char *hostname;             /* from the environment, or gethostname() */
    struct proc_chain *processors;  /* global, after each input's own; NULL: none */
    /* Not from the file: set at start-up (agent.h) and kept across reloads;
     * empty: left out of events. */
    char agent_id[37];
    char ephemeral_id[37];
};

/* Parses cfg (already loaded) into *out; errors are recorded in cfg. 0 or SL_EINVAL. */
int shipper_conf_parse(struct sl_cfg *cfg, struct shipper_conf *out);
void shipper_conf_free(struct shipper_conf *c);
/*
 * True when a and b configure the same output, field by field (hosts in order
 * with weight and backup, every option, ssl paths and settings). A reload keeps
 * the running sender, its connections and windows in flight, only when this holds.
 */
bool output_conf_equal(const struct output_conf *a, const struct output_conf *b);
/*
 * Creates registry.path if missing and checks that files can be created in it;
 * a failure is recorded in cfg at the option. For start-up and -t, after a
 * successful parse: a reload keeps the running registry, and a rejected config
 * should not leave directories behind. 0 or SL_EINVAL.
 */
int shipper_conf_check_registry(struct sl_cfg *cfg, const struct shipper_conf *c, bool create);

#endif
