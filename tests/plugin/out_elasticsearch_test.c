/*
 * out_elasticsearch_test.c - the `elasticsearch` output's pure parts, byte
 * for byte: the _bulk NDJSON of an event (action line, _id from @metadata,
 * lowercased index, no @metadata in the document), the reading of a _bulk
 * reply into per-item verdicts (what is retried, what is dead-lettered,
 * 409 on create), gzip, the backoff schedule, the dead-letter line, and the
 * option checks with FILE:LINE:COL errors. No network: the HTTP side is
 * exercised end to end in tests/e2e/test_elasticsearch.py.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "es_bulk.h"
#include "sluice/json.h"
#include "sluice/loop.h"
#include "sluice/metrics.h"
#include "sluice/plugin.h"
#include "test.h"

extern const struct sl_plugin sl_plugin_out_elasticsearch;
#define P sl_plugin_out_elasticsearch

static const char *errs(struct sl_cfg *cfg)
{
    return cfg->errors.data ? sl_buf_cstr(&cfg->errors) : "";
}

/* Encodes json (an event) with index template src; returns the lines (owned). */
static char *encode(const char *src, enum es_op op, const char *json, struct es_item *it)
{
    struct sl_value ev = {0};
    struct sl_buf out, scratch;
    char err[128];
    struct sl_template *t = sl_template_new(src, err, sizeof(err));
    CHECK(t != NULL);
    CHECK_INT(sl_json_parse(json, strlen(json), &ev, NULL, err, sizeof(err)), 0);
    sl_buf_init(&out, 0);
    sl_buf_init(&scratch, 0);
    CHECK_INT(es_bulk_encode(&out, t, op, &ev, &scratch, it), 0);
    char *r = sl_strdup(sl_buf_cstr(&out));
    sl_buf_free(&out);
    sl_buf_free(&scratch);
    sl_value_clear(&ev);
    sl_template_free(t);
    return r;
}

TEST(test_descriptor)
{
    CHECK_STR(P.name, "elasticsearch");
    CHECK_INT(P.kind, SL_PLUGIN_OUTPUT);
    CHECK(P.submit != NULL && P.shutdown != NULL && P.init != NULL && P.free != NULL);
}

TEST(test_encode_index_op)
{
    struct es_item it;
    char *s = encode("logs-%{[fields][service]}-%{+yyyy.MM.dd}", ES_OP_INDEX,
                     "{\"@timestamp\":\"2026-11-27T06:00:00.123Z\",\"@metadata\":{\"beat\":"
                     "\"sluice\"},\"message\":\"a \\\"q\\\" \\u0001\",\"fields\":{\"service\":"
                     "\"Web\"}}",
                     &it);
    CHECK_STR(s, "{\"index\":{\"_index\":\"logs-web-2026.11.27\"}}\n"
                 "{\"@timestamp\":\"2026-11-27T06:00:00.123Z\",\"message\":\"a \\\"q\\\" "
                 "\\u0001\",\"fields\":{\"service\":\"Web\"}}\n");
    CHECK_INT(it.off, 0);
    CHECK_INT(it.len, strlen(s));
    CHECK_INT(it.doc, strlen("{\"index\":{\"_index\":\"logs-web-2026.11.27\"}}\n"));
    free(s);
}

TEST(test_encode_create_with_metadata_id)
{
    struct es_item it;
    char *s = encode("Logs", ES_OP_CREATE,
                     "{\"@metadata\":{\"_id\":\"abc\\\"1\"},\"message\":\"m\"}", &it);
    CHECK_STR(s, "{\"create\":{\"_index\":\"logs\",\"_id\":\"abc\\\"1\"}}\n"
                 "{\"message\":\"m\"}\n");
    free(s);
    /* A non-string or empty _id is ignored (the server then picks one). */
    s = encode("x", ES_OP_CREATE, "{\"@metadata\":{\"_id\":5},\"m\":1}", &it);
    CHECK_STR(s, "{\"create\":{\"_index\":\"x\"}}\n{\"m\":1}\n");
    free(s);
    s = encode("x", ES_OP_INDEX, "{\"@metadata\":{\"_id\":\"\"},\"m\":1}", &it);
    CHECK_STR(s, "{\"index\":{\"_index\":\"x\"}}\n{\"m\":1}\n");
    free(s);
}

TEST(test_encode_missing_field_and_quotes_in_index)
{
    struct es_item it;
    /* A missing field is left as written (Logstash), then lowercased; a quote in a
     * value cannot break the action line. */
    char *s = encode("i-%{[svc]}-%{[x]}", ES_OP_INDEX, "{\"x\":\"A\\\"B\"}", &it);
    CHECK_STR(s, "{\"index\":{\"_index\":\"i-%{[svc]}-a\\\"b\"}}\n{\"x\":\"A\\\"B\"}\n");
    free(s);
}

TEST(test_encode_appends_and_restores_on_limit)
{
    struct sl_value ev = {0};
    struct sl_buf out, scratch;
    struct es_item a, b;
    char err[64];
    struct sl_template *t = sl_template_new("i", err, sizeof(err));
    sl_json_parse("{\"m\":\"0123456789\"}", 18, &ev, NULL, err, sizeof(err));
    sl_buf_init(&out, 60);
    sl_buf_init(&scratch, 0);
    CHECK_INT(es_bulk_encode(&out, t, ES_OP_INDEX, &ev, &scratch, &a), 0);
    size_t len = out.len;
    CHECK_INT(a.off, 0);
    CHECK_INT(es_bulk_encode(&out, t, ES_OP_INDEX, &ev, &scratch, &b), SL_ELIMIT);
    CHECK_INT(out.len, len);  /* nothing half-written */
    sl_buf_free(&out);
    sl_buf_free(&scratch);
    sl_value_clear(&ev);
    sl_template_free(t);
}

TEST(test_verdicts)
{
    CHECK_INT(es_bulk_verdict(200, false), ES_V_OK);
    CHECK_INT(es_bulk_verdict(201, true), ES_V_OK);
    CHECK_INT(es_bulk_verdict(409, true), ES_V_OK);
    CHECK_INT(es_bulk_verdict(409, false), ES_V_REJECT);
    CHECK_INT(es_bulk_verdict(400, false), ES_V_REJECT);
    CHECK_INT(es_bulk_verdict(404, false), ES_V_REJECT);
    CHECK_INT(es_bulk_verdict(429, false), ES_V_RETRY);
    CHECK_INT(es_bulk_verdict(500, false), ES_V_RETRY);
    CHECK_INT(es_bulk_verdict(503, true), ES_V_RETRY);
    CHECK_INT(es_bulk_verdict(0, false), ES_V_RETRY);
}

TEST(test_parse_all_ok_fast_path)
{
    const char *r = "{\"took\":12,\"errors\":false,\"items\":[garbage not parsed]}";
    struct es_result res[3];
    struct sl_buf e;
    char err[128];
    sl_buf_init(&e, 0);
    CHECK_INT(es_bulk_parse_reply(r, strlen(r), 3, res, &e, err, sizeof(err)), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(res[i].v, ES_V_OK);
    }
    CHECK_INT(e.len, 0);
    sl_buf_free(&e);
}

TEST(test_parse_mixed_items)
{
    /* As OpenSearch 2.19 answers (trimmed): created, conflict on create, mapping
     * error, throttled, unavailable, conflict on index, string error, no status. */
    const char *r =
        "{\"took\":3,\"errors\":true,\"items\":["
        "{\"index\":{\"_index\":\"t\",\"_id\":\"1\",\"status\":201}},"
        "{\"create\":{\"_index\":\"t\",\"_id\":\"x\",\"status\":409,\"error\":{\"type\":"
        "\"version_conflict_engine_exception\"}}},"
        "{\"index\":{\"_index\":\"t\",\"status\":400,\"error\":{\"type\":"
        "\"mapper_parsing_exception\",\"reason\":\"failed to parse field [n] of type [long]\"}}},"
        "{\"index\":{\"_index\":\"t\",\"status\":429,\"error\":{\"type\":"
        "\"es_rejected_execution_exception\"}}},"
        "{\"index\":{\"_index\":\"t\",\"status\":503,\"error\":{\"type\":\"unavailable\"}}},"
        "{\"index\":{\"_index\":\"t\",\"status\":409,\"error\":{\"type\":\"conflict\"}}},"
        "{\"index\":{\"_index\":\"t\",\"status\":400,\"error\":\"plain \\\"text\\\"\"}},"
        "{\"index\":{\"_index\":\"t\"}}"
        "]}";
    struct es_result res[8];
    struct sl_buf e;
    char err[128];
    sl_buf_init(&e, 0);
    CHECK_INT(es_bulk_parse_reply(r, strlen(r), 8, res, &e, err, sizeof(err)), 0);
    CHECK_INT(res[0].v, ES_V_OK);
    CHECK_INT(res[0].status, 201);
    CHECK_INT(res[1].v, ES_V_OK);
    CHECK_INT(res[1].status, 409);
    CHECK_INT(res[2].v, ES_V_REJECT);
    CHECK_INT(res[2].status, 400);
    CHECK_MEM(e.data + res[2].err_off, res[2].err_len,
              "{\"type\":\"mapper_parsing_exception\",\"reason\":\"failed to parse field [n] of "
              "type [long]\"}");
    CHECK_INT(res[3].v, ES_V_RETRY);
    CHECK_INT(res[3].status, 429);
    CHECK_INT(res[4].v, ES_V_RETRY);
    CHECK_INT(res[4].status, 503);
    CHECK_INT(res[5].v, ES_V_REJECT);
    CHECK_MEM(e.data + res[5].err_off, res[5].err_len, "{\"type\":\"conflict\"}");
    CHECK_INT(res[6].v, ES_V_REJECT);
    CHECK_MEM(e.data + res[6].err_off, res[6].err_len, "{\"reason\":\"plain \\\"text\\\"\"}");
    CHECK_INT(res[7].v, ES_V_RETRY);
    CHECK_INT(res[7].status, 0);
    sl_buf_free(&e);
}

TEST(test_parse_bad_replies)
{
    struct es_result res[2];
    struct sl_buf e;
    char err[128];
    sl_buf_init(&e, 0);
    const char *two = "{\"took\":1,\"errors\":true,\"items\":[{\"index\":{\"status\":201}}]}";
    CHECK_INT(es_bulk_parse_reply(two, strlen(two), 2, res, &e, err, sizeof(err)), SL_EINVAL);
    CHECK_STR(err, "reply has 1 items for 2 sent");
    CHECK_INT(es_bulk_parse_reply("<html>", 6, 2, res, &e, err, sizeof(err)), SL_EINVAL);
    CHECK(strncmp(err, "reply is not JSON", 17) == 0);
    CHECK_INT(es_bulk_parse_reply("{\"error\":{}}", 12, 2, res, &e, err, sizeof(err)),
              SL_EINVAL);
    CHECK_STR(err, "reply has no \"items\" array");
    /* errors:false but not at the start: parsed for real. */
    const char *late = "{\"errors\":false,\"items\":[1]}";
    CHECK_INT(es_bulk_parse_reply(late, strlen(late), 2, res, &e, err, sizeof(err)), SL_EINVAL);
    sl_buf_free(&e);
}

TEST(test_gzip_round_trip)
{
    const char *in = "{\"index\":{\"_index\":\"x\"}}\n{\"m\":1}\n";
    struct sl_buf gz;
    sl_buf_init(&gz, 0);
    sl_buf_putc(&gz, 'P');  /* appends after what is there */
    CHECK_INT(es_gzip(in, strlen(in), 1, &gz), 0);
    CHECK(gz.len > 11);
    CHECK_INT((unsigned char)gz.data[1], 0x1f);
    CHECK_INT((unsigned char)gz.data[2], 0x8b);
    char back[128];
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    CHECK_INT(inflateInit2(&zs, 15 + 16), Z_OK);
    zs.next_in = (Bytef *)gz.data + 1;
    zs.avail_in = (uInt)gz.len - 1;
    zs.next_out = (Bytef *)back;
    zs.avail_out = sizeof(back);
    CHECK_INT(inflate(&zs, Z_FINISH), Z_STREAM_END);
    CHECK_MEM(back, sizeof(back) - zs.avail_out, in);
    inflateEnd(&zs);
    sl_buf_free(&gz);
}

TEST(test_backoff)
{
    /* Equal jitter: within [d/2, d], d = init * 2^attempt capped at max. */
    CHECK_INT(es_backoff_ms(1000, 60000, 0, 0), 500);
    CHECK_INT(es_backoff_ms(1000, 60000, 0, 500), 1000);
    CHECK_INT(es_backoff_ms(1000, 60000, 0, 501), 500);
    CHECK_INT(es_backoff_ms(1000, 60000, 3, 0), 4000);
    CHECK_INT(es_backoff_ms(1000, 60000, 6, 0), 30000);
    CHECK_INT(es_backoff_ms(1000, 60000, 63, 0xffffffffu), 30000 + 0xffffffffu % 30001);
    CHECK_INT(es_backoff_ms(1000, 60000, 200, 30000), 60000);
    CHECK_INT(es_backoff_ms(1, 1, 5, 7), 1);
    for (uint32_t r = 0; r < 5000; r += 7) {
        uint64_t d = es_backoff_ms(100, 1000, 2, r * 2654435761u);
        CHECK(d >= 200 && d <= 400);
    }
}

TEST(test_dead_letter_line)
{
    struct es_item it;
    char *lines = encode("i-%{[s]}", ES_OP_INDEX, "{\"s\":\"A\",\"n\":{\"x\":1}}", &it);
    struct sl_buf out;
    sl_buf_init(&out, 0);
    const char *e = "{\"type\":\"mapper_parsing_exception\"}";
    es_dead_letter_line(&out, lines, &it, e, strlen(e), 400, 1795759200123ull);
    CHECK_STR(sl_buf_cstr(&out),
              "{\"event\":{\"s\":\"A\",\"n\":{\"x\":1}},\"error\":{\"type\":"
              "\"mapper_parsing_exception\"},\"status\":400,\"index\":\"i-a\","
              "\"time\":\"2026-11-27T06:00:00.123Z\"}\n");
    sl_buf_reset(&out);
    es_dead_letter_line(&out, lines, &it, NULL, 0, 413, 0);
    CHECK_STR(sl_buf_cstr(&out),
              "{\"event\":{\"s\":\"A\",\"n\":{\"x\":1}},\"error\":null,\"status\":413,"
              "\"index\":\"i-a\",\"time\":\"1970-01-01T00:00:00.000Z\"}\n");
    sl_buf_free(&out);
    free(lines);
}

TEST(test_base64)
{
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar", "id:key"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy",
                          "aWQ6a2V5"};
    for (size_t i = 0; i < SL_ARRAY_LEN(in); i++) {
        struct sl_buf b;
        sl_buf_init(&b, 0);
        es_base64(in[i], strlen(in[i]), &b);
        CHECK_STR(sl_buf_cstr(&b), want[i]);
        sl_buf_free(&b);
    }
}

/* Loads text (a map with one key, "elasticsearch") and initialises the output. */
static void *load(struct sl_cfg *cfg, struct sl_loop *loop, struct sl_metrics *m,
                  const char *text)
{
    struct sl_plugin_env env = {.loop = loop, .metrics = m, .id = "outputs[0] (elasticsearch)"};
    memset(cfg, 0, sizeof(*cfg));
    if (sl_cfg_load_string(cfg, "t.yml", text, strlen(text)) != 0) {
        return NULL;
    }
    return P.init(cfg, sl_cfg_get(cfg->root, "elasticsearch"), &env);
}

TEST(test_options_ok)
{
    struct sl_loop *loop = sl_loop_new();
    struct sl_metrics *m = sl_metrics_new();
    struct sl_cfg cfg;
    /* Never run: the loop's start timer is what would start the sender thread. */
    void *o = load(&cfg, loop, m,
                   "elasticsearch:\n"
                   "  hosts: [\"127.0.0.1:9\", \"https://h.example:9200/prefix/\"]\n"
                   "  index: \"logs-%{[fields][service]}-%{+yyyy.MM.dd}\"\n"
                   "  data_stream: true\n"
                   "  bulk_max_bytes: 1mb\n"
                   "  flush_interval: 1s\n"
                   "  workers: 3\n"
                   "  api_key: \"id:key\"\n"
                   "  ssl: {verification_mode: none}\n"
                   "  compression: false\n"
                   "  timeout: 5s\n"
                   "  backoff: {init: 100ms, max: 2s}\n"
                   "  dead_letter_path: /tmp/dlq\n");
    CHECK(o != NULL);
    CHECK_STR(errs(&cfg), "");
    P.free(o);
    sl_cfg_free(&cfg);
    o = load(&cfg, loop, m, "elasticsearch:\n");
    CHECK(o != NULL);
    CHECK_STR(errs(&cfg), "");
    P.free(o);
    sl_cfg_free(&cfg);
    sl_metrics_free(m);
    sl_loop_free(loop);
}

TEST(test_options_errors)
{
    struct sl_cfg cfg;
    void *o = load(&cfg, NULL, NULL,
                   "elasticsearch:\n"
                   "  hosts: [\"ftp://x\"]\n"
                   "  op_type: index\n"
                   "  data_stream: true\n"
                   "  workers: 0\n"
                   "  ssl: {verification_mode: maybe, certificate_authorities: [/nonexistent.pem]}\n"
                   "  backoff: {init: 2s, max: 1s}\n"
                   "  template: {name: t, file: /nonexistent.json}\n"
                   "  index: \"x-%{\"\n"
                   "  username: u\n"
                   "  api_key: k\n"
                   "  bulkmaxbytes: 1\n");
    CHECK(o == NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:2:10: outputs[0] (elasticsearch): option 'hosts': 'ftp://x' is not an "
              "http:// or https:// URL\n"
              "t.yml:3:12: outputs[0] (elasticsearch): data streams accept only op_type: "
              "create\n"
              "t.yml:5:12: outputs[0] (elasticsearch): option 'workers' must be between 1 and "
              "64, got '0'\n"
              "t.yml:6:28: outputs[0] (elasticsearch): ssl: option 'verification_mode' must be "
              "one of full, certificate, none, got 'maybe'\n"
              "t.yml:6:60: outputs[0] (elasticsearch): ssl: cannot read certificate authority "
              "'/nonexistent.pem': No such file or directory\n"
              "t.yml:7:28: outputs[0] (elasticsearch): backoff: 'max' must not be below "
              "'init'\n"
              "t.yml:8:29: outputs[0] (elasticsearch): template: cannot read "
              "'/nonexistent.json': No such file or directory\n"
              "t.yml:12:3: outputs[0] (elasticsearch): unknown option 'bulkmaxbytes'\n"
              "t.yml:11:12: outputs[0] (elasticsearch): use either username/password or "
              "api_key, not both\n"
              "t.yml:9:10: outputs[0] (elasticsearch): option 'index' unterminated '%{' at "
              "offset 2\n");
    sl_cfg_free(&cfg);
}

TEST(test_free_null)
{
    P.free(NULL);
}

int main(void)
{
    RUN(test_descriptor);
    RUN(test_encode_index_op);
    RUN(test_encode_create_with_metadata_id);
    RUN(test_encode_missing_field_and_quotes_in_index);
    RUN(test_encode_appends_and_restores_on_limit);
    RUN(test_verdicts);
    RUN(test_parse_all_ok_fast_path);
    RUN(test_parse_mixed_items);
    RUN(test_parse_bad_replies);
    RUN(test_gzip_round_trip);
    RUN(test_backoff);
    RUN(test_dead_letter_line);
    RUN(test_base64);
    RUN(test_options_ok);
    RUN(test_options_errors);
    RUN(test_free_null);
    return TEST_SUMMARY();
}
