/*
 * agg_conf_test.c - the aggregator's configuration: defaults, every extension
 * key, and the exact FILE:LINE:COL text of each kind of error, including the
 * errors plugins report when the pipeline instantiates them.
 */
#include <stdlib.h>

#include "conf.h"
#include "pipeline.h"
#include "sluice/log.h"
#include "test.h"

/* Loads text as "t.yml" and returns the errors text ("" when none). */
static const char *errors_of(struct agg_conf *c, const char *text)
{
    agg_conf_load_string(c, "t.yml", text);
    return c->cfg.errors.len ? sl_buf_cstr(&c->cfg.errors) : "";
}

/* Loads and builds the pipeline too (plugins check their own options). */
static const char *all_errors_of(struct agg_conf *c, const char *text)
{
    struct sl_loop *loop = sl_loop_new();
    struct sl_metrics *m = sl_metrics_new();
    agg_conf_load_string(c, "t.yml", text);
    if (c->cfg.root) {
        agg_pipeline_free(agg_pipeline_new(c, loop, m));
    }
    sl_metrics_free(m);
    sl_loop_free(loop);
    return c->cfg.errors.len ? sl_buf_cstr(&c->cfg.errors) : "";
}

TEST(defaults)
{
    struct agg_conf c;
    CHECK_INT(agg_conf_load_string(&c, "t.yml", "outputs:\n  - stdout: {}\n"), 0);
    CHECK_STR(c.listen, "0.0.0.0:5044");
    CHECK(!c.ssl.enabled);
    CHECK_INT(c.ssl.handshake_timeout_ms, 10000);
    CHECK_INT(c.frame_timeout_ms, 30000);
    CHECK_INT(c.max_json_depth, 64);
    CHECK_INT(c.max_connections, 10000);
    CHECK_INT(c.client_inactivity_ms, 60000);
    CHECK_INT(c.max_window_events, 10000);
    CHECK_INT(c.max_frame_bytes, 64ll * 1024 * 1024);
    CHECK_INT(c.max_window_bytes, 64ll * 1024 * 1024);
    CHECK_INT(c.max_pending_windows, 4);
    CHECK_INT(c.keepalive_ms, 5000);
    CHECK_INT(c.client_metrics_max, 1000);
    CHECK_INT(c.client_metrics_forget_ms, 3600000);
    CHECK(c.workers >= 1);
    CHECK_INT(c.batch_size, 512);
    CHECK_INT(c.max_pending_events, SL_MAX(c.batch_size * c.workers * 4, AGG_MIN_PENDING));
    CHECK_INT(c.max_pending_bytes, 128ll << 20);  /* sized for a 1 GiB limit (operations.md) */
    CHECK_INT(c.max_event_memory, 16ll << 20);
    CHECK_INT(c.nfilters, 0);
    CHECK_INT(c.ecs, SL_ECS_V8);  /* as Logstash 8 */
    CHECK_INT(c.noutputs, 1);
    CHECK_STR(c.outputs[0].plugin->name, "stdout");
    CHECK_STR(c.outputs[0].id, "outputs[0] (stdout)");
    CHECK_INT(c.queue_type, AGG_QUEUE_MEMORY);
    CHECK_STR(c.metrics_listen, "127.0.0.1:9600");
    CHECK_INT(c.unhealthy_after_ms, 300000);
    CHECK_INT(c.shutdown_timeout_ms, 10000);
    agg_conf_free(&c);
}

TEST(every_key_read)
{
    struct agg_conf c;
    const char *text =
        "input:\n"
        "  listen: 127.0.0.1:0\n"
        "  ssl: {enabled: false, certificate: '', key: '', certificate_authorities: [],\n"
        "        client_authentication: none}\n"
        "  max_connections: 5\n"
        "  client_inactivity_timeout: 2m\n"
        "  max_window_events: 100\n"
        "  max_frame_bytes: 1mb\n"
        "  max_window_bytes: 2mb\n"
        "  max_pending_windows: 2\n"
        "  keepalive: 1s\n"
        "  client_metrics_max: 0\n"
        "  client_metrics_forget_after: 10m\n"
        "pipeline: {workers: 3, batch_size: 10, max_pending_events: 77, filters: [],\n"
        "           max_pending_bytes: 32mb, max_event_memory: 1mb,\n"
        "           ecs_compatibility: disabled}\n"
        "outputs:\n"
        "  - file: {path: /tmp/x.ndjson, metadata: false, fsync: true, max_open_files: 2}\n"
        "  - stdout:\n"
        "queue: {type: memory, path: /tmp/q, max_bytes: 2gb}\n"
        "metrics: {listen: '127.0.0.1:0', unhealthy_after: 90s}\n"
        "shutdown_timeout: 3s\n";
    CHECK_STR(all_errors_of(&c, text), "");
    CHECK_STR(c.listen, "127.0.0.1:0");
    CHECK_INT(c.max_connections, 5);
    CHECK_INT(c.client_inactivity_ms, 120000);
    CHECK_INT(c.max_window_events, 100);
    CHECK_INT(c.max_frame_bytes, 1024 * 1024);
    CHECK_INT(c.max_window_bytes, 2 * 1024 * 1024);
    CHECK_INT(c.max_pending_windows, 2);
    CHECK_INT(c.keepalive_ms, 1000);
    CHECK_INT(c.client_metrics_max, 0);
    CHECK_INT(c.client_metrics_forget_ms, 600000);
    CHECK_INT(c.workers, 3);
    CHECK_INT(c.batch_size, 10);
    CHECK_INT(c.max_pending_events, 77);
    CHECK_INT(c.max_pending_bytes, 32ll << 20);
    CHECK_INT(c.max_event_memory, 1ll << 20);
    CHECK_INT(c.ecs, SL_ECS_DISABLED);
    CHECK_INT(c.noutputs, 2);
    CHECK_STR(c.outputs[1].id, "outputs[1] (stdout)");
    CHECK_INT(c.outputs[1].opts->type, SL_CFG_MAP);  /* null options stand in as an empty map */
    CHECK_INT(c.queue_max_bytes, 2ll * 1024 * 1024 * 1024);
    CHECK_STR(c.metrics_listen, "127.0.0.1:0");
    CHECK_INT(c.unhealthy_after_ms, 90000);
    CHECK_INT(c.shutdown_timeout_ms, 3000);
    agg_conf_free(&c);
}

TEST(unknown_keys_everywhere)
{
    struct agg_conf c;
    CHECK_STR(errors_of(&c, "input:\n"
                            "  listn: 1\n"
                            "pipeline: {wrkers: 2}\n"
                            "outputs: [stdout: {}]\n"
                            "metrics: {port: 1}\n"
                            "queue: {size: 1}\n"
                            "shutdown: 1s\n"),
              "t.yml:2:3: input: unknown option 'listn' (did you mean 'listen'?)\n"
              "t.yml:3:12: pipeline: unknown option 'wrkers' (did you mean 'workers'?)\n"
              "t.yml:5:11: metrics: unknown option 'port'\n"
              "t.yml:6:9: queue: unknown option 'size'\n"
              "t.yml:7:1: unknown option 'shutdown' (did you mean 'shutdown_timeout'?)\n");
    agg_conf_free(&c);
}

TEST(unknown_plugins)
{
    struct agg_conf c;
    CHECK_STR(errors_of(&c, "pipeline:\n"
                            "  filters:\n"
                            "    - grokk: {field: message}\n"
                            "outputs:\n"
                            "  - file: {path: /tmp/a}\n"
                            "  - kafkaa: {brokers: [a]}\n"
                            "  - {stdout: {}, file: {}}\n"
                            "  - stdout\n"),
              "t.yml:3:7: pipeline.filters[0]: unknown filter 'grokk' (did you mean 'grok'? "
              "filters: date, mutate, json, kv, drop, grok, dissect, useragent, geoip)\n"
              "t.yml:6:5: outputs[1]: unknown output 'kafkaa' (did you mean 'kafka'? outputs: "
              "file, stdout, kafka, elasticsearch)\n"
              "t.yml:7:5: outputs[2]: each output is a map with one key, the output's name "
              "(e.g. '- file: {...}')\n"
              "t.yml:8:5: outputs[3]: each output is a map with one key, the output's name "
              "(e.g. '- file: {...}')\n");
    CHECK_INT(c.noutputs, 1);
    agg_conf_free(&c);
}

TEST(outputs_required)
{
    struct agg_conf c;
    CHECK_STR(errors_of(&c, ""),
              "t.yml:1:1: the configuration is empty (at least one output is required)\n");
    agg_conf_free(&c);
    CHECK_STR(errors_of(&c, "input: {listen: ':5044'}\n"),
              "t.yml:1:1: outputs: at least one output is required\n");
    agg_conf_free(&c);
    CHECK_STR(errors_of(&c, "outputs: []\n"),
              "t.yml:1:10: outputs: at least one output is required\n");
    agg_conf_free(&c);
    CHECK_STR(errors_of(&c, "outputs: {file: {}}\n"),
              "t.yml:1:10: outputs: must be a list of {name: {options}} maps\n");
    agg_conf_free(&c);
}

TEST(persisted_queue)
{
    struct agg_conf c;
    CHECK_INT(agg_conf_load_string(&c, "t.yml", "queue:\n"
                                               "  type: persisted\n"
                                               "  path: /tmp/q\n"
                                               "  max_bytes: 8mb\n"
                                               "  checkpoint: {writes: 1024, interval: 250ms}\n"
                                               "outputs: [stdout: {}]\n"), 0);
    CHECK_INT(c.queue_type, AGG_QUEUE_PERSISTED);
    CHECK_STR(c.queue_path, "/tmp/q");
    CHECK_INT(c.queue_max_bytes, 8 << 20);
    CHECK_INT(c.queue_page_capacity, 2 << 20);  /* a quarter of max_bytes, below 64mb */
    CHECK_INT(c.queue_checkpoint_writes, 1024);
    CHECK_INT(c.queue_checkpoint_interval_ms, 250);
    CHECK(c.max_pending_events >= 16384);  /* several windows per fsync */
    agg_conf_free(&c);
    CHECK_INT(agg_conf_load_string(&c, "t.yml", "outputs: [stdout: {}]\n"), 0);
    CHECK_INT(c.queue_type, AGG_QUEUE_MEMORY);
    CHECK_INT(c.queue_page_capacity, 64 << 20);
    CHECK_INT(c.queue_checkpoint_writes, 1);
    CHECK_INT(c.queue_checkpoint_interval_ms, 1000);
    CHECK_INT(c.max_pending_events, SL_MAX(c.batch_size * c.workers * 4, AGG_MIN_PENDING));
    agg_conf_free(&c);
    CHECK_STR(errors_of(&c, "queue:\n"
                            "  type: persisted\n"
                            "  max_bytes: 1mb\n"
                            "  page_capacity: 2mb\n"
                            "  checkpoint: {writes: 0, intervall: 1s}\n"
                            "outputs: [stdout: {}]\n"),
              "t.yml:4:18: queue: option 'page_capacity' (2097152 bytes) must not exceed "
              "'max_bytes' (1048576 bytes)\n"
              "t.yml:5:24: queue.checkpoint: option 'writes' must be between 1 and 100000000, "
              "got '0'\n"
              "t.yml:5:27: queue.checkpoint: unknown option 'intervall' (did you mean "
              "'interval'?)\n");
    agg_conf_free(&c);
}

TEST(ssl_files_are_loaded_and_errors_point_at_the_option)
{
    struct agg_conf c;
    CHECK_STR(errors_of(&c, "input:\n"
                            "  ssl:\n"
                            "    enabled: true\n"
                            "    certificate: /nonexistent/agg.pem\n"
                            "    key: /nonexistent/agg.key\n"
                            "outputs: [stdout: {}]\n"),
              "t.yml:4:18: input.ssl: cannot load certificate /nonexistent/agg.pem: "
              "error:80000002:system library::No such file or directory; "
              "error:10000080:BIO routines::no such file\n");
    agg_conf_free(&c);
    CHECK_STR(errors_of(&c, "input:\n"
                            "  ssl: {enabled: true, certificate: /x.pem, key: /x.key,\n"
                            "        supported_protocols: [TLSv1.9], handshake_timeout: 1ms}\n"
                            "outputs: [stdout: {}]\n"),
              "t.yml:3:60: input.ssl: option 'handshake_timeout' must be between 100ms and "
              "10m, got '1ms'\n");
    agg_conf_free(&c);
}

TEST(bad_values)
{
    struct agg_conf c;
    CHECK_STR(errors_of(&c, "input:\n"
                            "  listen: nohost\n"
                            "  max_connections: 0\n"
                            "  client_inactivity_timeout: soon\n"
                            "  max_frame_bytes: 12zb\n"
                            "  ssl: {client_authentication: maybe}\n"
                            "outputs: [stdout: {}]\n"
                            "metrics: {listen: 'x'}\n"
                            "pipeline: {ecs_compatibility: v7}\n"),
              "t.yml:2:11: input: option 'listen' must be HOST:PORT, got 'nohost'\n"
              "t.yml:3:20: input: option 'max_connections' must be between 1 and 1000000, "
              "got '0'\n"
              "t.yml:4:30: input: option 'client_inactivity_timeout' must be a duration "
              "like 500ms, 10s, 5m, got 'soon'\n"
              "t.yml:5:20: input: option 'max_frame_bytes' must be a size "
              "like 512kb, 5mb, 1gb, got '12zb'\n"
              "t.yml:6:32: input.ssl: option 'client_authentication' must be one of none, "
              "optional, required, got 'maybe'\n"
              "t.yml:8:19: metrics: option 'listen' must be HOST:PORT, got 'x'\n"
              "t.yml:9:31: pipeline: option 'ecs_compatibility' must be one of v8, v1, "
              "disabled, got 'v7'\n");
    agg_conf_free(&c);
}

TEST(plugin_option_errors)
{
    struct agg_conf c;
    CHECK_STR(all_errors_of(&c, "outputs:\n"
                                "  - file:\n"
                                "  - file: {path: '/x/%{+yyyy.qq}'}\n"
                                "  - file: {path: '/x/%{[a]'}\n"
                                "  - stdout: {metadatas: false}\n"
                                "  - file: {path: /x, fsync: maybe}\n"),
              "t.yml:2:10: outputs[0] (file): option 'path' is required\n"
              "t.yml:3:18: outputs[1] (file): option 'path': unsupported letter 'q' in date "
              "pattern '%{+yyyy.qq}'\n"
              "t.yml:4:18: outputs[2] (file): option 'path': unterminated '%{' at offset 3\n"
              "t.yml:5:14: outputs[3] (stdout): unknown option 'metadatas' (did you mean "
              "'metadata'?)\n"
              "t.yml:6:29: outputs[4] (file): option 'fsync' must be true or false, "
              "got 'maybe'\n");
    agg_conf_free(&c);
}

TEST(env_expansion)
{
    struct agg_conf c;
    setenv("AGG_TEST_PORT", "6000", 1);
    CHECK_STR(errors_of(&c, "input: {listen: '127.0.0.1:${AGG_TEST_PORT}'}\n"
                            "outputs: [stdout: {}]\n"
                            "metrics: {listen: '${AGG_TEST_NOPE:-127.0.0.1:1}'}\n"),
              "");
    CHECK_STR(c.listen, "127.0.0.1:6000");
    CHECK_STR(c.metrics_listen, "127.0.0.1:1");
    agg_conf_free(&c);
}

TEST(inputs_list)
{
    struct agg_conf c;
    /* `input:` alone is one beats input; no kafka. */
    CHECK_STR(errors_of(&c, "input: {listen: '127.0.0.1:7000'}\noutputs:\n  - stdout: {}\n"), "");
    CHECK(c.beats);
    CHECK_INT(c.nkafka, 0);
    CHECK_STR(c.listen, "127.0.0.1:7000");
    agg_conf_free(&c);

    CHECK_STR(errors_of(&c, "inputs:\n"
                            "  - beats: {listen: '127.0.0.1:7001', max_connections: 5}\n"
                            "  - kafka:\n"
                            "      bootstrap_servers: [k1:9092, k2:9092]\n"
                            "      topics: [a, b]\n"
                            "      group_id: g\n"
                            "      codec: json\n"
                            "      auto_offset_reset: earliest\n"
                            "      consumer_threads: 3\n"
                            "      session_timeout_ms: 6000\n"
                            "      properties: {fetch.min.bytes: '1000'}\n"
                            "  - kafka: {topics_pattern: 'logs-.*'}\n"
                            "outputs:\n  - stdout: {}\n"), "");
    CHECK(c.beats);
    CHECK_STR(c.listen, "127.0.0.1:7001");
    CHECK_INT(c.max_connections, 5);
    CHECK_INT(c.nkafka, 2);
    CHECK_STR(c.kafka[0].id, "inputs[1] (kafka)");
    CHECK_STR(c.kafka[0].bootstrap_servers, "k1:9092,k2:9092");
    CHECK_INT(c.kafka[0].ntopics, 2);
    CHECK_STR(c.kafka[0].topics[1], "b");
    CHECK_STR(c.kafka[0].group_id, "g");
    CHECK_INT(c.kafka[0].codec, AGG_KAFKA_JSON);
    CHECK_INT(c.kafka[0].auto_offset_reset, AGG_KAFKA_EARLIEST);
    CHECK_INT(c.kafka[0].consumer_threads, 3);
    CHECK_INT(c.kafka[0].session_timeout_ms, 6000);
    CHECK_INT(c.kafka[0].nprops, 1);
    CHECK_STR(c.kafka[0].prop_keys[0], "fetch.min.bytes");
    CHECK_STR(c.kafka[0].prop_values[0], "1000");
    /* Logstash's defaults */
    CHECK_STR(c.kafka[1].bootstrap_servers, "localhost:9092");
    CHECK_STR(c.kafka[1].group_id, "logstash");
    CHECK_STR(c.kafka[1].topics_pattern, "logs-.*");
    CHECK_INT(c.kafka[1].codec, AGG_KAFKA_PLAIN);
    CHECK_INT(c.kafka[1].auto_offset_reset, AGG_KAFKA_LATEST);
    CHECK_INT(c.kafka[1].consumer_threads, 1);
    CHECK_INT(c.kafka[1].max_poll_records, 500);
    CHECK_INT(c.kafka[1].session_timeout_ms, 10000);
    CHECK_INT(c.kafka[1].auto_commit_interval_ms, 1000);
    CHECK_STR(c.kafka[1].security_protocol, "PLAINTEXT");
    agg_conf_free(&c);

    /* Kafka only: no listener. */
    CHECK_STR(errors_of(&c, "inputs:\n  - kafka: {topics: [x]}\noutputs:\n  - stdout: {}\n"), "");
    CHECK(!c.beats);
    CHECK_INT(c.nkafka, 1);
    agg_conf_free(&c);

    CHECK_STR(errors_of(&c, "inputs:\n  - kafka: {topics: [x], heartbeat_interval_ms: 20000}\n"
                            "outputs:\n  - stdout: {}\n"),
              "t.yml:2:49: inputs[0] (kafka): option 'heartbeat_interval_ms' must be lower "
              "than 'session_timeout_ms'\n");
    agg_conf_free(&c);
    CHECK_STR(errors_of(&c, "inputs: []\noutputs:\n  - stdout: {}\n"),
              "t.yml:1:9: inputs: must be a non-empty list of {beats: {...}} or {kafka: {...}} "
              "maps\n");
    agg_conf_free(&c);
}

int main(void)
{
    sl_log_init("agg_conf_test", SL_LOG_ERROR, SL_LOG_TEXT);
    RUN(defaults);
    RUN(every_key_read);
    RUN(unknown_keys_everywhere);
    RUN(unknown_plugins);
    RUN(outputs_required);
    RUN(persisted_queue);
    RUN(ssl_files_are_loaded_and_errors_point_at_the_option);
    RUN(bad_values);
    RUN(plugin_option_errors);
    RUN(env_expansion);
    RUN(inputs_list);
    return TEST_SUMMARY();
}
