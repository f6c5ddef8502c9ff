/*
 * out_kafka_test.c - the `kafka` output driven in-process, without a broker:
 * option parsing and every config error with its exact FILE:LINE:COL text,
 * topic/key rendering (observed through the core's dead letter file, which
 * gets the rendered topic, key and value of events librdkafka refuses
 * locally), refused events without a dead_letter_path (dropped, the rest of
 * the batch delivered to librdkafka's in-process mock cluster) or with one
 * that cannot be written (the batch fails), and the delivery contract when no
 * broker answers: no verdict while the broker is away, SL_ECLOSED at the
 * shutdown deadline or at free(). The output is made and fed through the core
 * (output_harness.h), as the pipeline does. What needs a real broker is in
 * tests/e2e/test_kafka.py.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/loop.h"
#include "sluice/metrics.h"
#include "sluice/plugin.h"
#include "test.h"

#define OUTPUT_PLUGIN sl_plugin_out_kafka
#define OUTPUT_KEY "kafka"
#define OUTPUT_ID "outputs[0] (kafka)"
#include "output_harness.h"

static struct sl_loop *loop;
static struct sl_metrics *metrics;

/* Loads text (a map whose key "kafka" holds the options) and makes the output. */
static struct sl_instance *load(struct sl_cfg *cfg, const char *text)
{
    return oload(cfg, text, loop, metrics);
}

/* init must fail with exactly these error lines. */
#define EXPECT_ERRORS(yaml, want) expect_errors_(yaml, want, __LINE__)
static void expect_errors_(const char *yaml, const char *want, int line)
{
    struct sl_cfg cfg;
    struct sl_instance *k = load(&cfg, yaml);
    if (k || strcmp(errs(&cfg), want) != 0) {
        fprintf(stderr, "%s:%d: init %s; errors:\n%sexpected:\n%s", __FILE__, line,
                k ? "succeeded" : "failed", errs(&cfg), want);
        t_failed_checks++;
    }
    agg_instance_free(k);
    sl_cfg_free(&cfg);
}

#define EXPECT_OK(yaml) expect_ok_(yaml, __LINE__)
static void expect_ok_(const char *yaml, int line)
{
    struct sl_cfg cfg;
    struct sl_instance *k = load(&cfg, yaml);
    if (!k) {
        fprintf(stderr, "%s:%d: init failed:\n%s", __FILE__, line, errs(&cfg));
        t_failed_checks++;
    }
    agg_instance_free(k);
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

struct wait {
    struct out_run *r;
    uint64_t until;
};

static void wait_tick(struct sl_loop *l, void *arg)
{
    struct wait *w = arg;
    if ((w->r && w->r->ndone > 0) || sl_now_ms() >= w->until) {
        sl_loop_stop(l);
    }
}

/* Runs the loop for up to ms, or until r (if any) got a verdict. */
static void run_loop(struct out_run *r, uint64_t ms)
{
    struct wait w = {.r = r, .until = sl_now_ms() + ms};
    struct sl_timer *t = sl_loop_timer(loop, 10, true, wait_tick, &w);
    sl_loop_run(loop);
    sl_timer_cancel(t);
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
    CHECK(P.options != NULL && P.size > 0);
    CHECK(P.init && P.fini && P.submit && P.shutdown);
    /* The core's dead letter writer follows logrotate by itself: nothing to reopen. */
    CHECK(P.reopen == NULL);
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
    /* An empty key is no key, as a key rendering empty is. */
    EXPECT_OK("kafka: {brokers: [\"127.0.0.1:1\"], topic: t, key: \"\"}\n");
}

TEST(test_required_options)
{
    EXPECT_ERRORS("kafka:\n  compression: zstd\n",
                  "t.yml:2:3: outputs[0] (kafka): option 'brokers' is required\n"
                  "t.yml:2:3: outputs[0] (kafka): option 'topic' is required\n");
    EXPECT_ERRORS("kafka:\n  brokers: []\n  topic: \"\"\n",
                  "t.yml:2:12: outputs[0] (kafka): option 'brokers' must not be empty\n"
                  "t.yml:3:10: outputs[0] (kafka): option 'topic' must not be empty\n");
}

TEST(test_option_errors)
{
    EXPECT_ERRORS("kafka:\n  brokers: [a:1]\n  topic: t\n  brokerz: [b:1]\n",
                  "t.yml:4:3: outputs[0] (kafka): unknown option 'brokerz' (did you mean "
                  "'brokers'?)\n");
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
                  "t.yml:2:13: outputs[0] (kafka): option 'brokers': 'a:1,b:2' is not a "
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
    /* Checked in init, each at its property's value. */
    EXPECT_ERRORS("kafka:\n"
                  "  brokers: [a:1]\n"
                  "  topic: t\n"
                  "  properties:\n"
                  "    bogus.key: 1\n"
                  "    socket.timeout.ms: abc\n"
                  "    acks: 1\n"
                  "    delivery.report.only.error: true\n",
                  "t.yml:5:16: outputs[0] (kafka): properties: No such configuration property: "
                  "\"bogus.key\"\n"
                  "t.yml:6:24: outputs[0] (kafka): properties: Invalid value for configuration "
                  "property \"socket.timeout.ms\"\n"
                  "t.yml:7:11: outputs[0] (kafka): properties: 'acks' is set by option 'acks'; "
                  "use that\n"
                  "t.yml:8:33: outputs[0] (kafka): properties: 'delivery.report.only.error' is "
                  "not supported by this output\n");
    /* A value that is not a scalar is the core's error, at the value; init (and so the
     * checks above) only runs on options the core read without error. */
    EXPECT_ERRORS("kafka:\n"
                  "  brokers: [a:1]\n"
                  "  topic: t\n"
                  "  properties:\n"
                  "    bogus.key: 1\n"
                  "    socket.timeout.ms: abc\n"
                  "    acks: 1\n"
                  "    delivery.report.only.error: true\n"
                  "    ssl.key.password: {a: b}\n",
                  "t.yml:9:23: outputs[0] (kafka): option 'properties': the value of "
                  "'ssl.key.password' must be a scalar\n");
    EXPECT_ERRORS("kafka:\n  brokers: [a:1]\n  topic: t\n  properties: [x]\n",
                  "t.yml:4:15: outputs[0] (kafka): option 'properties' must be a map\n");
    /* Only rd_kafka_new() checks this combination: still a config error, at `properties`. */
    EXPECT_ERRORS("kafka:\n  brokers: [a:1]\n  topic: t\n  properties:\n"
                  "    security.protocol: sasl_plaintext\n    sasl.mechanisms: BOGUS\n",
                  "t.yml:5:5: outputs[0] (kafka): librdkafka refused the configuration: "
                  "Unsupported SASL mechanism: BOGUS\n");
}

/* A listening socket on 127.0.0.1 (non-blocking accept); its port in *port. */
static int listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("listener");
        abort();
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* Whether the instance (check_only or not) dials the broker within 500 ms. */
static bool connects(bool check_only)
{
    int port, fd = listener(&port);
    char yaml[256];
    snprintf(yaml, sizeof(yaml), "kafka: {brokers: [\"127.0.0.1:%d\"], topic: t}\n", port);
    struct sl_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    CHECK_INT(sl_cfg_load_string(&cfg, "t.yml", yaml, strlen(yaml)), 0);
    struct agg_instance_args a = {.id = OUTPUT_ID, .loop = loop, .metrics = metrics,
                                  .check_only = check_only};
    struct sl_instance *k = agg_instance_new(&P, &cfg, sl_cfg_get(cfg.root, OUTPUT_KEY), &a);
    CHECK(k != NULL);
    bool dialled = false;
    for (int i = 0; i < 50 && !dialled; i++) {
        run_loop(NULL, 10);
        int c = accept(fd, NULL, NULL);
        if (c >= 0) {
            close(c);
            dialled = true;
        }
    }
    agg_instance_free(k);
    sl_cfg_free(&cfg);
    close(fd);
    return dialled;
}

/* -t builds the producer for librdkafka's own checks, but with no brokers. */
TEST(test_check_only_opens_no_connection)
{
    CHECK(!connects(true));
    CHECK(connects(false));  /* the probe itself works */
}

/* ---- rendering, through the dead letter file ---- */

static char dlq_dir[64];

/* The core's dead letter file of today (dlq-YYYY.MM.DD.ndjson in dlq_dir), if any. */
static bool dlq_path(char *path, size_t len)
{
    DIR *d = opendir(dlq_dir);
    struct dirent *e;
    bool found = false;
    while (d && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "dlq-", 4) == 0 && n == 4 + 10 + 7 &&
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

/* Parses up to max NDJSON lines of text into lines; returns how many, *rest after them. */
static size_t parse_lines(const char *text, struct sl_value *lines, size_t max, const char **rest)
{
    char err[128];
    const char *p = text;
    size_t n = 0;
    while (*p && n < max) {
        const char *nl = strchr(p, '\n');
        CHECK(nl != NULL);
        if (!nl) {
            break;
        }
        CHECK_INT(sl_json_parse(p, (size_t)(nl - p), &lines[n], NULL, err, sizeof(err)), 0);
        n++;
        p = nl + 1;
    }
    *rest = p;
    return n;
}

/* A payload over message_max_bytes (1000) is refused by librdkafka before any network:
 * the event goes to the dead letter file with what was rendered for it. */
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
    struct sl_instance *k = load(&cfg, yaml);
    CHECK(k != NULL);
    if (!k) {
        fprintf(stderr, "%s", errs(&cfg));
        sl_cfg_free(&cfg);
        return;
    }
    char big[1200];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char evs[5000];
    /* ev1; null: an event dropped by a filter; ev2: no host.name, so the key renders as
     * the reference, as Logstash does; ev3: a key that renders empty, so no key at all. */
    snprintf(evs, sizeof(evs),
             "[{\"@timestamp\":\"2026-11-27T06:00:00.123Z\",\"@metadata\":{\"beat\":\"sluice\"},"
             "\"message\":\"%s\",\"host\":{\"name\":\"web-1\"},\"fields\":{\"service\":\"web\"}},"
             "null,"
             "{\"@timestamp\":\"2026-01-02T23:59:59Z\",\"message\":\"%s\","
             "\"fields\":{\"service\":\"db\"}},"
             "{\"@timestamp\":\"2026-11-27T06:00:00Z\",\"message\":\"%s\",\"host\":{\"name\":\"\"},"
             "\"fields\":{\"service\":\"web\"}}]",
             big, big, big);
    size_t n;
    struct sl_value *events = oevents(evs, &n);
    struct out_run r;
    double dl0 = metric("sluice_aggregator_output_events_total{output=\"kafka\","
                        "result=\"dead_letter\"}");
    dlq_reset();
    osubmit(k, &r, events, n, NULL);
    /* Everything was decided inside submit(): the verdict came at once. */
    CHECK_INT(r.ndone, 1);
    CHECK_INT(r.status, SL_OK);
    CHECK(metric("sluice_aggregator_output_events_total{output=\"kafka\","
                 "result=\"dead_letter\"}") == dl0 + 3);
    CHECK(metric("sluice_aggregator_kafka_delivery_errors_total{error=\"MSG_SIZE_TOO_LARGE\"}")
          >= 3);

    char *dlq = dlq_contents();
    struct sl_value lines[3] = {{0}};
    const char *rest;
    size_t nlines = parse_lines(dlq, lines, 3, &rest);
    CHECK_INT(nlines, 3);
    CHECK(*rest == '\0');
    if (nlines == 3) {
        struct sl_value *l = &lines[0];
        CHECK_STR(sl_obj_getc(l, "error")->u.s.ptr, "MSG_SIZE_TOO_LARGE");
        CHECK_STR(sl_obj_getc(l, "reason")->u.s.ptr,
                  "the event is larger than message_max_bytes");
        /* The core's record names the output by its metric label. */
        CHECK_STR(sl_obj_getc(l, "output")->u.s.ptr, "kafka");
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
    ofree_events(events, n);
    agg_instance_free(k);
    sl_cfg_free(&cfg);
}

/* Events routed to another output (take[i] == 0) are not this output's: not produced,
 * not dead-lettered, not counted. */
TEST(test_take_skips_events_routed_elsewhere)
{
    struct sl_cfg cfg;
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "kafka:\n  brokers: [\"127.0.0.1:1\"]\n  topic: t\n  message_max_bytes: 1000\n"
             "  dead_letter_path: %s\n",
             dlq_dir);
    struct sl_instance *k = load(&cfg, yaml);
    CHECK(k != NULL);
    if (!k) {
        sl_cfg_free(&cfg);
        return;
    }
    char evs[5000];
    snprintf(evs, sizeof(evs), "[{\"message\":\"a%01200d\"},{\"message\":\"b%01200d\"},"
             "{\"message\":\"c%01200d\"}]", 1, 2, 3);
    size_t n;
    struct sl_value *events = oevents(evs, &n);
    static const uint8_t take[] = {1, 0, 1};
    struct out_run r;
    double dl0 = metric("sluice_aggregator_output_events_total{output=\"kafka\","
                        "result=\"dead_letter\"}");
    dlq_reset();
    osubmit(k, &r, events, n, take);
    CHECK_INT(r.batch.count, 2);
    CHECK_INT(r.ndone, 1);
    CHECK_INT(r.status, SL_OK);
    CHECK(metric("sluice_aggregator_output_events_total{output=\"kafka\","
                 "result=\"dead_letter\"}") == dl0 + 2);
    char *dlq = dlq_contents();
    struct sl_value lines[3] = {{0}};
    const char *rest;
    CHECK_INT(parse_lines(dlq, lines, 3, &rest), 2);
    CHECK(strstr(dlq, "\"message\":\"a0") != NULL);
    CHECK(strstr(dlq, "\"message\":\"b0") == NULL);
    CHECK(strstr(dlq, "\"message\":\"c0") != NULL);
    for (size_t i = 0; i < 3; i++) {
        sl_value_clear(&lines[i]);
    }
    free(dlq);
    ofree_events(events, n);
    agg_instance_free(k);
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
    struct sl_instance *k = load(&cfg, yaml);
    CHECK(k != NULL);
    if (!k) {
        sl_cfg_free(&cfg);
        return;
    }
    /* The second renders too long to be encoded at all: invalid too, its topic not kept. */
    char evs[6000], svc[5000];
    memset(svc, 'a', sizeof(svc) - 1);
    svc[sizeof(svc) - 1] = '\0';
    snprintf(evs, sizeof(evs),
             "[{\"message\":\"m\",\"svc\":\"a b/c\"},{\"message\":\"n\",\"svc\":\"%s\"}]",
             svc);
    size_t n;
    struct sl_value *events = oevents(evs, &n);
    struct out_run r;
    dlq_reset();
    osubmit(k, &r, events, n, NULL);
    CHECK_INT(r.ndone, 1);
    CHECK_INT(r.status, SL_OK);
    char *dlq = dlq_contents();
    CHECK(strstr(dlq, "\"error\":\"TOPIC_EXCEPTION\"") != NULL);
    CHECK(strstr(dlq, "\"topic\":\"logs-a b/c\"") != NULL);
    CHECK(strstr(dlq, "\"message\":\"n\"") != NULL);
    CHECK(strstr(dlq, "\"topic\":\"\",\"key\":null}\n") != NULL);
    /* The event is embedded as produced; the core puts the output's members after it. */
    CHECK(strstr(dlq, "\"event\":{\"message\":\"m\",\"svc\":\"a b/c\"},\"error\":") != NULL);
    CHECK(strstr(dlq, ",\"key\":null}\n") != NULL);
    free(dlq);
    ofree_events(events, n);
    agg_instance_free(k);
    sl_cfg_free(&cfg);
}

/*
 * Without a dead_letter_path a refused event is dropped by the core: counted
 * result="dropped" (not ok, not failed), and it does not hold its batch back.
 * The other events go to a broker of librdkafka's own mock cluster
 * (test.mock.num.brokers), are delivered and counted ok, and the batch is ACKed.
 */
TEST(test_refused_without_dead_letter_drops_the_event)
{
    struct sl_metrics *m = sl_metrics_new();
    struct sl_cfg cfg;
    struct sl_instance *k = oload(&cfg,
                                  "kafka:\n  brokers: [\"127.0.0.1:1\"]\n  topic: t\n"
                                  "  message_max_bytes: 1000\n"
                                  "  properties: {test.mock.num.brokers: 1}\n",
                                  loop, m);
    CHECK(k != NULL);
    if (!k) {
        fprintf(stderr, "%s", errs(&cfg));
        sl_cfg_free(&cfg);
        sl_metrics_free(m);
        return;
    }
    CHECK(k->dlq == NULL);  /* no dead-letter writer: nothing can be filed anywhere */
    char evs[1500];
    snprintf(evs, sizeof(evs), "[{\"message\":\"a\"},{\"message\":\"%01200d\"},"
             "{\"message\":\"b\"}]", 7);
    size_t n;
    struct sl_value *events = oevents(evs, &n);
    struct out_run r;
    dlq_reset();
    osubmit(k, &r, events, n, NULL);
    run_loop(&r, 10000);
    CHECK_INT(r.ndone, 1);
    CHECK_INT(r.status, SL_OK);
    CHECK(oevents_total(m, "kafka", "ok") == 2);
    CHECK(oevents_total(m, "kafka", "dropped") == 1);
    CHECK(oevents_total(m, "kafka", "failed") == 0);
    CHECK(oevents_total(m, "kafka", "dead_letter") == 0);
    char path[512];
    CHECK(!dlq_path(path, sizeof(path)));
    ofree_events(events, n);
    agg_instance_free(k);
    sl_cfg_free(&cfg);
    sl_metrics_free(m);
}

/* A dead letter that cannot be written (the directory lies under a file) fails
 * its batch: the event is neither delivered nor filed, so it is not ACKed. */
TEST(test_dead_letter_write_failure_fails_batch)
{
    char blocker[128];
    snprintf(blocker, sizeof(blocker), "%s.blocker", dlq_dir);
    FILE *f = fopen(blocker, "w");
    CHECK(f != NULL);
    if (f) {
        fclose(f);
    }
    struct sl_metrics *m = sl_metrics_new();
    struct sl_cfg cfg;
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "kafka:\n  brokers: [\"127.0.0.1:1\"]\n  topic: t\n  message_max_bytes: 1000\n"
             "  dead_letter_path: %s/dlq\n",
             blocker);
    struct sl_instance *k = oload(&cfg, yaml, loop, m);
    CHECK(k != NULL);
    if (!k) {
        sl_cfg_free(&cfg);
        sl_metrics_free(m);
        unlink(blocker);
        return;
    }
    char big[1500];
    snprintf(big, sizeof(big), "[{\"message\":\"%01200d\"}]", 7);
    size_t n;
    struct sl_value *events = oevents(big, &n);
    struct out_run r;
    osubmit(k, &r, events, n, NULL);
    CHECK_INT(r.ndone, 1);
    CHECK_INT(r.status, SL_EIO);
    CHECK(oevents_total(m, "kafka", "failed") == 1);
    CHECK(oevents_total(m, "kafka", "dead_letter") == 0);
    CHECK(oevents_total(m, "kafka", "dropped") == 0);
    ofree_events(events, n);
    agg_instance_free(k);
    sl_cfg_free(&cfg);
    sl_metrics_free(m);
    unlink(blocker);
}

TEST(test_batch_of_dropped_events)
{
    struct sl_cfg cfg;
    struct sl_instance *k = load(&cfg, "kafka: {brokers: [\"127.0.0.1:1\"], topic: t}\n");
    CHECK(k != NULL);
    if (!k) {
        sl_cfg_free(&cfg);
        return;
    }
    size_t n;
    struct sl_value *events = oevents("[null, null]", &n);
    struct out_run r;
    osubmit(k, &r, events, n, NULL);
    CHECK_INT(r.ndone, 1);
    CHECK_INT(r.status, SL_OK);
    ofree_events(events, n);
    agg_instance_free(k);
    sl_cfg_free(&cfg);
}

/* ---- no broker: hold, then close ---- */

TEST(test_unreachable_broker_holds_until_deadline)
{
    struct sl_cfg cfg;
    struct sl_instance *k = load(&cfg, "kafka:\n  brokers: [\"127.0.0.1:1\"]\n  topic: t\n"
                                       "  properties: {reconnect.backoff.ms: 10}\n");
    CHECK(k != NULL);
    if (!k) {
        sl_cfg_free(&cfg);
        return;
    }
    size_t n;
    struct sl_value *events = oevents("[{\"message\":\"a\"}, {\"message\":\"b\"}]", &n);
    struct out_run r;
    osubmit(k, &r, events, n, NULL);
    run_loop(&r, 500);
    CHECK_INT(r.ndone, 0);  /* held: never ACKed while nothing was delivered */
    uint64_t t0 = sl_now_ms();
    P.shutdown(k->inst, t0 + 200);
    run_loop(&r, 5000);
    CHECK_INT(r.ndone, 1);
    CHECK_INT(r.status, SL_ECLOSED);
    CHECK(sl_now_ms() - t0 >= 190);
    /* After the deadline new batches are refused at once. */
    struct out_run r2;
    osubmit(k, &r2, events, n, NULL);
    CHECK_INT(r2.ndone, 1);
    CHECK_INT(r2.status, SL_ECLOSED);
    agg_instance_free(k);
    CHECK_INT(r.ndone, 1);
    ofree_events(events, n);
    sl_cfg_free(&cfg);
}

/* librdkafka's queue holds one message: the rest wait (QUEUE_FULL is never a drop). */
TEST(test_queue_full_waits)
{
    struct sl_cfg cfg;
    struct sl_instance *k =
        load(&cfg, "kafka: {brokers: [\"127.0.0.1:1\"], topic: t, queue_max_events: 1}\n");
    CHECK(k != NULL);
    if (!k) {
        sl_cfg_free(&cfg);
        return;
    }
    size_t n;
    struct sl_value *events =
        oevents("[{\"message\":\"a\"}, {\"message\":\"b\"}, {\"message\":\"c\"}]", &n);
    struct out_run r;
    osubmit(k, &r, events, n, NULL);
    run_loop(&r, 300);  /* the poll timer retries the two waiting events */
    CHECK_INT(r.ndone, 0);
    CHECK(metric("sluice_aggregator_kafka_queue_messages") == 1);
    P.shutdown(k->inst, sl_now_ms() + 100);
    run_loop(&r, 5000);
    CHECK_INT(r.ndone, 1);
    CHECK_INT(r.status, SL_ECLOSED);
    agg_instance_free(k);
    CHECK(metric("sluice_aggregator_kafka_queue_messages") == 0);
    ofree_events(events, n);
    sl_cfg_free(&cfg);
}

TEST(test_free_with_batch_in_flight)
{
    struct sl_cfg cfg;
    struct sl_instance *k = load(&cfg, "kafka: {brokers: [\"127.0.0.1:1\"], topic: t}\n");
    CHECK(k != NULL);
    if (!k) {
        sl_cfg_free(&cfg);
        return;
    }
    size_t n;
    struct sl_value *events = oevents("[{\"message\":\"a\"}]", &n);
    struct out_run r;
    osubmit(k, &r, events, n, NULL);
    run_loop(&r, 100);
    CHECK_INT(r.ndone, 0);
    agg_instance_free(k);
    CHECK_INT(r.ndone, 1);
    CHECK_INT(r.status, SL_ECLOSED);
    ofree_events(events, n);
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
    RUN(test_check_only_opens_no_connection);
    RUN(test_topic_key_value_rendering);
    RUN(test_take_skips_events_routed_elsewhere);
    RUN(test_invalid_rendered_topic);
    RUN(test_refused_without_dead_letter_drops_the_event);
    RUN(test_dead_letter_write_failure_fails_batch);
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
