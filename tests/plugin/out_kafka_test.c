/*
 * out_kafka_test.c - the `kafka` output driven in-process, without a broker:
 * option parsing and every config error with its exact FILE:LINE:COL text,
 * topic/key rendering (observed through the dead letter queue, which gets
 * the rendered topic, key and value of events librdkafka refuses locally),
 * and the delivery contract when no broker answers: no verdict while the
 * broker is away, SL_ECLOSED at the shutdown deadline or at free().
 * What needs a real broker is in tests/e2e/test_kafka.py.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/loop.h"
#include "sluice/metrics.h"
#include "sluice/plugin.h"
#include "test.h"

extern const struct sl_plugin sl_plugin_out_kafka;
#define P sl_plugin_out_kafka

static struct sl_loop *loop;
static struct sl_metrics *metrics;

static const char *errs(struct sl_cfg *cfg)
{
    return cfg->errors.data ? sl_buf_cstr(&cfg->errors) : "";
}

/* Loads text (a map whose key "kafka" holds the options) and initialises the output. */
static void *load(struct sl_cfg *cfg, const char *text)
{
    struct sl_plugin_env env = {.loop = loop, .metrics = metrics, .id = "outputs[0] (kafka)"};
    memset(cfg, 0, sizeof(*cfg));
    if (sl_cfg_load_string(cfg, "t.yml", text, strlen(text)) != 0) {
        return NULL;
    }
    return P.init(cfg, sl_cfg_get(cfg->root, "kafka"), &env);
}

/* init must fail with exactly these error lines. */
#define EXPECT_ERRORS(yaml, want) expect_errors_(yaml, want, __LINE__)
static void expect_errors_(const char *yaml, const char *want, int line)
{
    struct sl_cfg cfg;
    void *k = load(&cfg, yaml);
    if (k || strcmp(errs(&cfg), want) != 0) {
        fprintf(stderr, "%s:%d: init %s; errors:\n%sexpected:\n%s", __FILE__, line,
                k ? "succeeded" : "failed", errs(&cfg), want);
        t_failed_checks++;
    }
    P.free(k);
    sl_cfg_free(&cfg);
}

#define EXPECT_OK(yaml) expect_ok_(yaml, __LINE__)
static void expect_ok_(const char *yaml, int line)
{
    struct sl_cfg cfg;
    void *k = load(&cfg, yaml);
    if (!k) {
        fprintf(stderr, "%s:%d: init failed:\n%s", __FILE__, line, errs(&cfg));
        t_failed_checks++;
    }
    P.free(k);
    sl_cfg_free(&cfg);
}

/* The value of one series in the rendered registry, or -1 when absent. */
static double metric(const char *series)
{
    struct sl_buf b;
    double v = -1;
    sl_buf_init(&b, 0);
    sl_metrics_render(metrics, &b);
    const char *s = sl_buf_cstr(&b);
    size_t n = strlen(series);
    for (const char *p = s; (p = strstr(p, series)) != NULL; p += n) {
        if ((p == s || p[-1] == '\n') && p[n] == ' ') {
            v = strtod(p + n + 1, NULL);
            break;
        }
    }
    sl_buf_free(&b);
    return v;
}

/* ---- verdicts ---- */

struct verdict {
    int calls;
    int status;
};

static void on_done(void *arg, int status)
{
    struct verdict *v = arg;
    v->calls++;
    v->status = status;
}

struct wait {
    struct verdict *v;
    uint64_t until;
};

static void wait_tick(struct sl_loop *l, void *arg)
{
    struct wait *w = arg;
    if ((w->v && w->v->calls > 0) || sl_now_ms() >= w->until) {
        sl_loop_stop(l);
    }
}

/* Runs the loop for up to ms, or until v (if any) got a verdict. */
static void run_loop(struct verdict *v, uint64_t ms)
{
    struct wait w = {.v = v, .until = sl_now_ms() + ms};
    struct sl_timer *t = sl_loop_timer(loop, 10, true, wait_tick, &w);
    sl_loop_run(loop);
    sl_timer_cancel(t);
}

/* A batch of n events parsed from JSON texts. */
static struct sl_batch *batch_new(const char *const *json, size_t n)
{
    struct sl_batch *b = sl_calloc(1, sizeof(*b));
    char err[128];
    b->events = sl_calloc(n ? n : 1, sizeof(*b->events));
    b->n = n;
    for (size_t i = 0; i < n; i++) {
        if (json[i] && sl_json_parse(json[i], strlen(json[i]), &b->events[i], NULL, err,
                                     sizeof(err)) != 0) {
            fprintf(stderr, "bad test event %zu: %s\n", i, err);
            abort();
        }
    }
    return b;
}

static void batch_free(struct sl_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        sl_value_clear(&b->events[i]);
    }
    free(b->events);
    free(b);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return sl_strdup("");
    }
    struct sl_buf b;
    char chunk[4096];
    size_t n;
    sl_buf_init(&b, 0);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        sl_buf_append(&b, chunk, n);
    }
    fclose(f);
    char *s = sl_strdup(sl_buf_cstr(&b));
    sl_buf_free(&b);
    return s;
}

/* ---- configuration ---- */

TEST(test_descriptor)
{
    CHECK_STR(P.name, "kafka");
    CHECK(P.kind == SL_PLUGIN_OUTPUT);
    CHECK(P.init && P.free && P.submit && P.shutdown && P.reopen);
    CHECK(P.filter == NULL);
}

TEST(test_minimal_and_full_configs)
{
    EXPECT_OK("kafka:\n  brokers: [\"127.0.0.1:1\"]\n  topic: logs\n");
    EXPECT_OK("kafka:\n  brokers: 127.0.0.1:1\n  topic: \"logs-%{[fields][service]}\"\n");
    EXPECT_OK("kafka:\n"
              "  brokers: [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n"
              "  topic: \"logs-%{[fields][service]}-%{+yyyy.MM.dd}\"\n"
              "  key: \"%{[host][name]}\"\n"
              "  compression: lz4\n"
              "  compression_level: 6\n"
              "  acks: all\n"
              "  idempotent: true\n"
              "  client_id: edge-1\n"
              "  message_max_bytes: 2mb\n"
              "  linger: 20ms\n"
              "  batch_max_events: 5000\n"
              "  batch_max_bytes: 512kb\n"
              "  timeout: 0\n"
              "  queue_max_events: 200000\n"
              "  queue_max_bytes: 256mb\n"
              "  dead_letter_path: /tmp/sluice-kafka-test-dlq\n"
              "  properties:\n"
              "    socket.timeout.ms: 5000\n"
              "    security.protocol: plaintext\n"
              "    reconnect.backoff.max.ms: 2000\n");
    /* acks 1 / 0 turn the idempotent producer off by default (it needs acks=all). */
    EXPECT_OK("kafka: {brokers: [\"127.0.0.1:1\"], topic: t, acks: 1}\n");
    EXPECT_OK("kafka: {brokers: [\"127.0.0.1:1\"], topic: t, acks: 0, compression: none}\n");
    EXPECT_OK("kafka: {brokers: [\"127.0.0.1:1\"], topic: t, idempotent: false}\n");
}

TEST(test_required_options)
{
    EXPECT_ERRORS("kafka:\n  compression: zstd\n",
                  "t.yml:2:3: outputs[0] (kafka): option 'brokers' is required (a list of "
                  "host:port)\n"
                  "t.yml:2:3: outputs[0] (kafka): option 'topic' is required\n");
    EXPECT_ERRORS("kafka:\n  brokers: []\n  topic: \"\"\n",
                  "t.yml:2:12: outputs[0] (kafka): option 'brokers' is required (a list of "
                  "host:port)\n"
                  "t.yml:3:10: outputs[0] (kafka): option 'topic' is required\n");
}

TEST(test_option_errors)
{
    EXPECT_ERRORS("kafka:\n  brokers: [a:1]\n  topic: t\n  brokerz: [b:1]\n",
                  "t.yml:4:3: outputs[0] (kafka): unknown option 'brokerz'\n");
    EXPECT_ERRORS("kafka:\n  brokers: [a:1]\n  topic: t\n  compression: brotli\n",
                  "t.yml:4:16: outputs[0] (kafka): option 'compression' must be one of none, "
                  "gzip, snappy, lz4, zstd, got 'brotli'\n");
    EXPECT_ERRORS("kafka:\n  brokers: [a:1]\n  topic: t\n  acks: 2\n",
                  "t.yml:4:9: outputs[0] (kafka): option 'acks' must be one of all, -1, 1, 0, "
                  "got '2'\n");
    EXPECT_ERRORS("kafka:\n  brokers: [a:1]\n  topic: t\n  acks: 1\n  idempotent: true\n",
                  "t.yml:5:15: outputs[0] (kafka): option 'idempotent: true' needs "
                  "'acks: all'\n");
    EXPECT_ERRORS("kafka:\n  brokers: [\"a:1,b:2\"]\n  topic: t\n",
                  "t.yml:2:12: outputs[0] (kafka): option 'brokers': 'a:1,b:2' is not a "
                  "host:port\n");
    EXPECT_ERRORS("kafka:\n  brokers: [a:1]\n  topic: t\n  linger: soon\n",
                  "t.yml:4:11: outputs[0] (kafka): option 'linger' must be a duration like "
                  "500ms, 10s, 5m, got 'soon'\n");
    EXPECT_ERRORS("kafka:\n  brokers: [a:1]\n  topic: t\n  message_max_bytes: 10\n",
                  "t.yml:4:22: outputs[0] (kafka): option 'message_max_bytes' must be "
                  "between 1000b and 1000000000b, got '10'\n");
}

TEST(test_topic_and_key_errors)
{
    EXPECT_ERRORS("kafka:\n  brokers: [a:1]\n  topic: \"bad topic\"\n",
                  "t.yml:3:10: outputs[0] (kafka): option 'topic': 'bad topic' is not a valid "
                  "Kafka topic name (1-249 of [a-zA-Z0-9._-], not '.' or '..')\n");
    EXPECT_ERRORS("kafka:\n  brokers: [a:1]\n  topic: \"..\"\n",
                  "t.yml:3:10: outputs[0] (kafka): option 'topic': '..' is not a valid "
                  "Kafka topic name (1-249 of [a-zA-Z0-9._-], not '.' or '..')\n");
    EXPECT_ERRORS("kafka:\n  brokers: [a:1]\n  topic: \"logs-%{[fields]\"\n",
                  "t.yml:3:10: outputs[0] (kafka): option 'topic': unterminated '%{' at "
                  "offset 5\n");
    EXPECT_ERRORS("kafka:\n  brokers: [a:1]\n  topic: t\n  key: \"%{}\"\n",
                  "t.yml:4:8: outputs[0] (kafka): option 'key': empty '%{}' at offset 0\n");
}

TEST(test_properties_errors)
{
    EXPECT_ERRORS("kafka:\n"
                  "  brokers: [a:1]\n"
                  "  topic: t\n"
                  "  properties:\n"
                  "    bogus.key: 1\n"
                  "    socket.timeout.ms: abc\n"
                  "    acks: 1\n"
                  "    delivery.report.only.error: true\n"
                  "    ssl.key.password: {a: b}\n",
                  "t.yml:5:5: outputs[0] (kafka): properties: No such configuration property: "
                  "\"bogus.key\"\n"
                  "t.yml:6:5: outputs[0] (kafka): properties: Invalid value for configuration "
                  "property \"socket.timeout.ms\"\n"
                  "t.yml:7:5: outputs[0] (kafka): properties: 'acks' is set by option 'acks'; "
                  "use that\n"
                  "t.yml:8:5: outputs[0] (kafka): properties: 'delivery.report.only.error' is "
                  "not supported by this output\n"
                  "t.yml:9:5: outputs[0] (kafka): properties: 'ssl.key.password' must be a "
                  "scalar value\n");
    EXPECT_ERRORS("kafka:\n  brokers: [a:1]\n  topic: t\n  properties: [x]\n",
                  "t.yml:4:15: outputs[0] (kafka): option 'properties' must be a map of "
                  "librdkafka properties\n");
    /* Only rd_kafka_new() checks this combination: still a config error, at `properties`. */
    EXPECT_ERRORS("kafka:\n  brokers: [a:1]\n  topic: t\n  properties:\n"
                  "    security.protocol: sasl_plaintext\n    sasl.mechanisms: BOGUS\n",
                  "t.yml:5:5: outputs[0] (kafka): librdkafka refused the configuration: "
                  "Unsupported SASL mechanism: BOGUS\n");
}

/* ---- rendering, through the dead letter queue ---- */

static char dlq_dir[64];

/* The dead letter file of today (kafka-YYYY.MM.dd.ndjson in dlq_dir), or "" when absent. */
static bool dlq_path(char *path, size_t len)
{
    DIR *d = opendir(dlq_dir);
    struct dirent *e;
    bool found = false;
    while (d && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "kafka-", 6) == 0 && n == 6 + 10 + 7 &&
            strcmp(e->d_name + n - 7, ".ndjson") == 0) {
            snprintf(path, len, "%s/%s", dlq_dir, e->d_name);
            found = true;
            break;
        }
    }
    if (d) {
        closedir(d);
    }
    return found;
}

static char *dlq_contents(void)
{
    char path[512];
    return dlq_path(path, sizeof(path)) ? read_file(path) : sl_strdup("");
}

static void dlq_reset(void)
{
    char path[512];
    while (dlq_path(path, sizeof(path))) {
        unlink(path);
    }
}

/* A payload over message_max_bytes (1000) is refused by librdkafka before any network:
 * the event goes to the dead letter queue with what was rendered for it. */
TEST(test_topic_key_value_rendering)
{
    struct sl_cfg cfg;
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "kafka:\n  brokers: [\"127.0.0.1:1\"]\n"
             "  topic: \"logs-%%{[fields][service]}-%%{+yyyy.MM.dd}\"\n"
             "  key: \"%%{[host][name]}\"\n  message_max_bytes: 1000\n"
             "  dead_letter_path: %s\n",
             dlq_dir);
    void *k = load(&cfg, yaml);
    CHECK(k != NULL);
    if (!k) {
        fprintf(stderr, "%s", errs(&cfg));
        sl_cfg_free(&cfg);
        return;
    }
    char big[1200];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char ev1[1600], ev2[1600], ev3[1600];
    snprintf(ev1, sizeof(ev1),
             "{\"@timestamp\":\"2026-11-27T06:00:00.123Z\",\"@metadata\":{\"beat\":\"sluice\"},"
             "\"message\":\"%s\",\"host\":{\"name\":\"web-1\"},\"fields\":{\"service\":\"web\"}}",
             big);
    /* no host.name: the key renders as the reference, as Logstash does */
    snprintf(ev2, sizeof(ev2),
             "{\"@timestamp\":\"2026-01-02T23:59:59Z\",\"message\":\"%s\","
             "\"fields\":{\"service\":\"db\"}}",
             big);
    /* a key that renders empty: no key at all */
    snprintf(ev3, sizeof(ev3),
             "{\"@timestamp\":\"2026-11-27T06:00:00Z\",\"message\":\"%s\",\"host\":{\"name\":\"\"},"
             "\"fields\":{\"service\":\"web\"}}",
             big);
    const char *evs[] = {ev1, NULL, ev2, ev3};  /* NULL: an event dropped by a filter */
    struct sl_batch *b = batch_new(evs, 4);
    struct verdict v = {0};
    double dl0 = metric("sluice_aggregator_output_events_total{output=\"kafka\","
                        "result=\"dead_letter\"}");
    dlq_reset();
    P.submit(k, b, on_done, &v);
    /* Everything was decided inside submit(): the verdict came at once. */
    CHECK_INT(v.calls, 1);
    CHECK_INT(v.status, SL_OK);
    CHECK(metric("sluice_aggregator_output_events_total{output=\"kafka\","
                 "result=\"dead_letter\"}") == dl0 + 3);
    CHECK(metric("sluice_aggregator_kafka_delivery_errors_total{error=\"MSG_SIZE_TOO_LARGE\"}")
          >= 3);

    char *dlq = dlq_contents();
    struct sl_value lines[3] = {{0}};
    char err[128];
    const char *p = dlq;
    size_t nlines = 0;
    while (*p && nlines < 3) {
        const char *nl = strchr(p, '\n');
        CHECK(nl != NULL);
        if (!nl) {
            break;
        }
        CHECK_INT(sl_json_parse(p, (size_t)(nl - p), &lines[nlines], NULL, err, sizeof(err)), 0);
        nlines++;
        p = nl + 1;
    }
    CHECK_INT(nlines, 3);
    CHECK(*p == '\0');
    if (nlines == 3) {
        struct sl_value *l = &lines[0];
        CHECK_STR(sl_obj_getc(l, "error")->u.s.ptr, "MSG_SIZE_TOO_LARGE");
        CHECK_STR(sl_obj_getc(l, "output")->u.s.ptr, "outputs[0] (kafka)");
        CHECK_STR(sl_obj_getc(l, "topic")->u.s.ptr, "logs-web-2026.11.27");
        CHECK_STR(sl_obj_getc(l, "key")->u.s.ptr, "web-1");
        struct sl_value *e = sl_obj_getc(l, "event");
        CHECK(e && e->type == SL_V_OBJECT);
        CHECK(sl_obj_getc(e, "@metadata") == NULL);  /* the value leaves it out */
        CHECK_INT(sl_obj_getc(e, "message")->u.s.len, sizeof(big) - 1);
        CHECK_STR(sl_field_get(e, "host.name")->u.s.ptr, "web-1");

        CHECK_STR(sl_obj_getc(&lines[1], "topic")->u.s.ptr, "logs-db-2026.01.02");
        CHECK_STR(sl_obj_getc(&lines[1], "key")->u.s.ptr, "%{[host][name]}");
        CHECK_STR(sl_obj_getc(&lines[2], "topic")->u.s.ptr, "logs-web-2026.11.27");
        CHECK(sl_obj_getc(&lines[2], "key")->type == SL_V_NULL);
    }
    for (size_t i = 0; i < 3; i++) {
        sl_value_clear(&lines[i]);
    }
    free(dlq);
    batch_free(b);
    P.free(k);
    sl_cfg_free(&cfg);
}

/* A topic that renders to something Kafka would refuse is decided locally. */
TEST(test_invalid_rendered_topic)
{
    struct sl_cfg cfg;
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "kafka:\n  brokers: [\"127.0.0.1:1\"]\n  topic: \"logs-%%{[svc]}\"\n"
             "  dead_letter_path: %s\n",
             dlq_dir);
    void *k = load(&cfg, yaml);
    CHECK(k != NULL);
    if (!k) {
        sl_cfg_free(&cfg);
        return;
    }
    const char *evs[] = {"{\"message\":\"m\",\"svc\":\"a b/c\"}"};
    struct sl_batch *b = batch_new(evs, 1);
    struct verdict v = {0};
    dlq_reset();
    P.submit(k, b, on_done, &v);
    CHECK_INT(v.calls, 1);
    CHECK_INT(v.status, SL_OK);
    char *dlq = dlq_contents();
    CHECK(strstr(dlq, "\"error\":\"TOPIC_EXCEPTION\"") != NULL);
    CHECK(strstr(dlq, "\"topic\":\"logs-a b/c\"") != NULL);
    CHECK(strstr(dlq, "\"event\":{\"message\":\"m\",\"svc\":\"a b/c\"}}\n") != NULL);
    free(dlq);
    batch_free(b);
    P.free(k);
    sl_cfg_free(&cfg);
}

/* Without a dead letter queue a refused event fails its batch: it is not ACKed. */
TEST(test_refused_without_dead_letter_fails_batch)
{
    struct sl_cfg cfg;
    void *k = load(&cfg, "kafka:\n  brokers: [\"127.0.0.1:1\"]\n  topic: t\n"
                         "  message_max_bytes: 1000\n");
    CHECK(k != NULL);
    if (!k) {
        sl_cfg_free(&cfg);
        return;
    }
    char big[1500];
    snprintf(big, sizeof(big), "{\"message\":\"%01200d\"}", 7);
    const char *evs[] = {big};
    struct sl_batch *b = batch_new(evs, 1);
    struct verdict v = {0};
    P.submit(k, b, on_done, &v);
    CHECK_INT(v.calls, 1);
    CHECK_INT(v.status, SL_EIO);
    batch_free(b);
    P.free(k);
    sl_cfg_free(&cfg);
}

TEST(test_batch_of_dropped_events)
{
    struct sl_cfg cfg;
    void *k = load(&cfg, "kafka: {brokers: [\"127.0.0.1:1\"], topic: t}\n");
    CHECK(k != NULL);
    if (!k) {
        sl_cfg_free(&cfg);
        return;
    }
    const char *evs[] = {NULL, NULL};
    struct sl_batch *b = batch_new(evs, 2);
    struct verdict v = {0};
    P.submit(k, b, on_done, &v);
    CHECK_INT(v.calls, 1);
    CHECK_INT(v.status, SL_OK);
    batch_free(b);
    P.free(k);
    sl_cfg_free(&cfg);
}

/* ---- no broker: hold, then close ---- */

TEST(test_unreachable_broker_holds_until_deadline)
{
    struct sl_cfg cfg;
    void *k = load(&cfg, "kafka:\n  brokers: [\"127.0.0.1:1\"]\n  topic: t\n"
                         "  properties: {reconnect.backoff.ms: 10}\n");
    CHECK(k != NULL);
    if (!k) {
        sl_cfg_free(&cfg);
        return;
    }
    const char *evs[] = {"{\"message\":\"a\"}", "{\"message\":\"b\"}"};
    struct sl_batch *b = batch_new(evs, 2);
    struct verdict v = {0};
    P.submit(k, b, on_done, &v);
    run_loop(&v, 500);
    CHECK_INT(v.calls, 0);  /* held: never ACKed while nothing was delivered */
    uint64_t t0 = sl_now_ms();
    P.shutdown(k, t0 + 200);
    run_loop(&v, 5000);
    CHECK_INT(v.calls, 1);
    CHECK_INT(v.status, SL_ECLOSED);
    CHECK(sl_now_ms() - t0 >= 190);
    /* After the deadline new batches are refused at once. */
    struct verdict v2 = {0};
    P.submit(k, b, on_done, &v2);
    CHECK_INT(v2.calls, 1);
    CHECK_INT(v2.status, SL_ECLOSED);
    P.free(k);
    CHECK_INT(v.calls, 1);
    batch_free(b);
    sl_cfg_free(&cfg);
}

/* librdkafka's queue holds one message: the rest wait (QUEUE_FULL is never a drop). */
TEST(test_queue_full_waits)
{
    struct sl_cfg cfg;
    void *k = load(&cfg, "kafka: {brokers: [\"127.0.0.1:1\"], topic: t, queue_max_events: 1}\n");
    CHECK(k != NULL);
    if (!k) {
        sl_cfg_free(&cfg);
        return;
    }
    const char *evs[] = {"{\"message\":\"a\"}", "{\"message\":\"b\"}", "{\"message\":\"c\"}"};
    struct sl_batch *b = batch_new(evs, 3);
    struct verdict v = {0};
    P.submit(k, b, on_done, &v);
    run_loop(&v, 300);  /* the poll timer retries the two waiting events */
    CHECK_INT(v.calls, 0);
    CHECK(metric("sluice_aggregator_kafka_queue_messages") == 1);
    P.shutdown(k, sl_now_ms() + 100);
    run_loop(&v, 5000);
    CHECK_INT(v.calls, 1);
    CHECK_INT(v.status, SL_ECLOSED);
    P.free(k);
    CHECK(metric("sluice_aggregator_kafka_queue_messages") == 0);
    batch_free(b);
    sl_cfg_free(&cfg);
}

TEST(test_free_with_batch_in_flight)
{
    struct sl_cfg cfg;
    void *k = load(&cfg, "kafka: {brokers: [\"127.0.0.1:1\"], topic: t}\n");
    CHECK(k != NULL);
    if (!k) {
        sl_cfg_free(&cfg);
        return;
    }
    const char *evs[] = {"{\"message\":\"a\"}"};
    struct sl_batch *b = batch_new(evs, 1);
    struct verdict v = {0};
    P.submit(k, b, on_done, &v);
    run_loop(&v, 100);
    CHECK_INT(v.calls, 0);
    P.free(k);
    CHECK_INT(v.calls, 1);
    CHECK_INT(v.status, SL_ECLOSED);
    batch_free(b);
    sl_cfg_free(&cfg);
}

int main(void)
{
    /* librdkafka's connection failures (there is no broker here) are expected noise. */
    sl_log_init("out_kafka_test", SL_LOG_ERROR, SL_LOG_TEXT);
    loop = sl_loop_new();
    metrics = sl_metrics_new();
    snprintf(dlq_dir, sizeof(dlq_dir), "/tmp/out_kafka_test.%d", (int)getpid());
    RUN(test_descriptor);
    RUN(test_minimal_and_full_configs);
    RUN(test_required_options);
    RUN(test_option_errors);
    RUN(test_topic_and_key_errors);
    RUN(test_properties_errors);
    RUN(test_topic_key_value_rendering);
    RUN(test_invalid_rendered_topic);
    RUN(test_refused_without_dead_letter_fails_batch);
    RUN(test_batch_of_dropped_events);
    RUN(test_unreachable_broker_holds_until_deadline);
    RUN(test_queue_full_waits);
    RUN(test_free_with_batch_in_flight);
    dlq_reset();
    rmdir(dlq_dir);
    sl_metrics_free(metrics);
    sl_loop_free(loop);
    return TEST_SUMMARY();
}
