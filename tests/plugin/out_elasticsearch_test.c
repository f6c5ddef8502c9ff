/*
 * out_elasticsearch_test.c - the `elasticsearch` output's pure parts, byte
 * for byte: the _bulk NDJSON of an event (action line, _id from @metadata,
 * lowercased index, no @metadata in the document), the reading of a _bulk
 * reply into per-item verdicts (what is retried, what is dead-lettered,
 * 409 on create), gzip, the backoff schedule, the dead-letter record, and
 * the option checks with FILE:LINE:COL errors. Then the output driven
 * through the core as the pipeline drives it (oload, osubmit), against a
 * tiny in-process _bulk endpoint on 127.0.0.1: routing, per-item retries,
 * dead letters filed from the sender thread (dropped without a
 * dead_letter_path; a failed write fails the batch), the verdict on the loop
 * thread, the counters, shutdown and teardown. The real-server behaviour is
 * exercised end to end in tests/e2e/test_elasticsearch.py.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "es_bulk.h"
#include "es_template.h"
#include "sluice/backoff.h"
#include "sluice/deadletter.h"
#include "sluice/json.h"
#include "sluice/loop.h"
#include "sluice/metrics.h"
#include "sluice/plugin.h"
#include "test.h"

#define OUTPUT_PLUGIN sl_plugin_out_elasticsearch
#define OUTPUT_KEY "elasticsearch"
#define OUTPUT_ID "outputs[0] (elasticsearch)"
#include "output_harness.h"

/* Encodes json (an event) with index template src as the pipeline does: the
 * workers render the parts and the JSON without @metadata, submit() makes the
 * lines. Returns the lines (owned). */
static char *encode(const char *src, enum es_op op, const char *json, struct es_item *it)
{
    struct sl_value ev = {0};
    struct sl_buf out, index, id, doc;
    char err[128];
    struct sl_template *t = sl_template_new(src, err, sizeof(err));
    CHECK(t != NULL);
    CHECK_INT(sl_json_parse(json, strlen(json), &ev, NULL, err, sizeof(err)), 0);
    sl_buf_init(&out, 0);
    sl_buf_init(&index, 0);
    sl_buf_init(&id, 0);
    sl_buf_init(&doc, 0);
    CHECK_INT(es_bulk_index(t, &ev, &index), 0);
    int idrc = es_bulk_id(&ev, &id);
    CHECK(idrc == 0 || idrc == SL_ENOENT);
    CHECK_INT(sl_json_write(&doc, &ev, "@metadata"), 0);
    struct sl_bytes ib = {index.data, index.len}, db = {doc.data, doc.len};
    struct sl_bytes idb = {id.data, id.len};
    CHECK_INT(es_bulk_encode(&out, op, ib, idrc == 0 ? &idb : NULL, db, it), 0);
    char *r = sl_strdup(sl_buf_cstr(&out));
    sl_buf_free(&out);
    sl_buf_free(&index);
    sl_buf_free(&id);
    sl_buf_free(&doc);
    sl_value_clear(&ev);
    sl_template_free(t);
    return r;
}

TEST(test_descriptor)
{
    CHECK_STR(P.name, "elasticsearch");
    CHECK_INT(P.kind, SL_PLUGIN_OUTPUT);
    CHECK(P.submit != NULL && P.shutdown != NULL && P.init != NULL && P.fini != NULL);
    CHECK(P.options != NULL && P.size > 0 && P.summary != NULL);
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
    struct sl_buf out;
    struct es_item a, b;
    struct sl_bytes index = {"i", 1}, json = {"{\"m\":\"0123456789\"}", 18};
    sl_buf_init(&out, 60);
    CHECK_INT(es_bulk_encode(&out, ES_OP_INDEX, index, NULL, json, &a), 0);
    size_t len = out.len;
    CHECK_INT(a.off, 0);
    CHECK_INT(es_bulk_encode(&out, ES_OP_INDEX, index, NULL, json, &b), SL_ELIMIT);
    CHECK_INT(out.len, len);  /* nothing half-written */
    sl_buf_free(&out);
}

/* The parts the workers render: they append (a worker's buffer holds other
 * events' bytes before them, which must stay as they are), the index is
 * lowercased, the _id is raw bytes (escaped only in the action line). */
TEST(test_parts)
{
    struct sl_value ev = {0};
    struct sl_buf out;
    char err[128];
    struct sl_template *t = sl_template_new("Logs-%{[s]}", err, sizeof(err));
    const char *json = "{\"s\":\"WeB\",\"@metadata\":{\"_id\":\"A\\\"b\"}}";
    CHECK_INT(sl_json_parse(json, strlen(json), &ev, NULL, err, sizeof(err)), 0);
    sl_buf_init(&out, 0);
    sl_buf_puts(&out, "PRE");
    CHECK_INT(es_bulk_index(t, &ev, &out), 0);
    CHECK_STR(sl_buf_cstr(&out), "PRElogs-web");
    CHECK_INT(es_bulk_id(&ev, &out), 0);
    CHECK_STR(sl_buf_cstr(&out), "PRElogs-webA\"b");
    sl_buf_free(&out);
    sl_value_clear(&ev);

    const char *no_id[] = {"{\"m\":1}", "{\"@metadata\":\"x\"}", "{\"@metadata\":{}}",
                           "{\"@metadata\":{\"_id\":5}}", "{\"@metadata\":{\"_id\":\"\"}}"};
    for (size_t i = 0; i < SL_ARRAY_LEN(no_id); i++) {
        CHECK_INT(sl_json_parse(no_id[i], strlen(no_id[i]), &ev, NULL, err, sizeof(err)), 0);
        sl_buf_init(&out, 0);
        CHECK_INT(es_bulk_id(&ev, &out), SL_ENOENT);
        CHECK_INT(out.len, 0);
        sl_buf_free(&out);
        sl_value_clear(&ev);
    }

    /* A worker's buffer at its maximum: the index cannot be rendered. */
    CHECK_INT(sl_json_parse(json, strlen(json), &ev, NULL, err, sizeof(err)), 0);
    sl_buf_init(&out, 4);
    CHECK_INT(es_bulk_index(t, &ev, &out), SL_ELIMIT);
    sl_buf_free(&out);
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
    /* errors:false is the server's word for every item: the items are counted,
     * not read (a 500 in one is not looked at), and brackets, commas and escaped
     * quotes inside strings do not upset the count. */
    const char *r = "{\"took\":12,\"errors\":false,\"items\":[{\"index\":{\"status\":500}},"
                    "{\"create\":{}} , {\"index\":{\"_id\":\"a,]}\\\"[{\",\"status\":201}}]}\n";
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

/* A reply that starts like a success but is not a whole bulk reply for the
 * items sent says nothing about them: the caller must send them again. */
TEST(test_parse_fast_path_needs_the_whole_reply)
{
    static const char *const bad[] = {
        "{\"took\":1,\"errors\":false,",
        "{\"took\":1,\"errors\":false,\"items\":[",
        "{\"took\":1,\"errors\":false,\"items\":[{\"index\":{\"status\":201}},"
        "{\"index\":{\"status\":201}}",
        "{\"took\":1,\"errors\":false,\"items\":[{\"index\":{\"status\":201}},"
        "{\"index\":{\"status\":201}}]",
        "{\"took\":1,\"errors\":false,\"items\":[{\"index\":{\"_id\":\"a\"}},"
        "{\"index\":{\"_id\":\"}]}",                    /* cut in a string that looks closed */
        "{\"took\":1,\"errors\":false,\"items\":[{\"index\":{\"_id\":\"a\"}},"
        "{\"index\":{\"_id\":\"\\\"}]}",                          /* the same, escaped */
        "{\"took\":1,\"errors\":false,\"items\":[{\"index\":{\"status\":201}}]}",  /* 1 of 2 */
        "{\"took\":1,\"errors\":false,\"items\":[{\"index\":{}},{\"index\":{}},"
        "{\"index\":{}}]}",                                                   /* 3 of 2 */
        "{\"took\":1,\"errors\":false,\"items\":[{\"index\":{}},,{\"index\":{}}]}",
        "{\"took\":1,\"errors\":false,\"items\":[{\"index\":{}},{\"index\":{}}]}x",
        "{\"took\":1,\"errors\":false,\"items\":[{\"index\":{}},{\"index\":{}}]}{}",
        "{\"took\":1,\"errors\":false,\"items\":[{\"index\":{}},{\"index\":{]}]}",
        "{\"took\":1,\"errors\":false}",
        "{\"took\":1,\"errors\":false,\"other\":[]}",
    };
    struct es_result res[2];
    struct sl_buf e;
    char err[128];
    sl_buf_init(&e, 0);
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        if (es_bulk_parse_reply(bad[i], strlen(bad[i]), 2, res, &e, err, sizeof(err)) !=
            SL_EINVAL) {
            fprintf(stderr, "accepted as a reply for 2 items: %s\n", bad[i]);
            CHECK(false);
        }
        CHECK(err[0] != '\0');
    }
    const char *cut = "{\"took\":1,\"errors\":false,";
    CHECK_INT(es_bulk_parse_reply(cut, strlen(cut), 2, res, &e, err, sizeof(err)), SL_EINVAL);
    CHECK_STR(err, "reply is not JSON (expected object key at offset 25)");
    /* Items that are not objects: not the fast path; the parser finds no status. */
    const char *odd = "{\"took\":1,\"errors\":false,\"items\":[1,2]}";
    CHECK_INT(es_bulk_parse_reply(odd, strlen(odd), 2, res, &e, err, sizeof(err)), 0);
    CHECK_INT(res[0].v, ES_V_RETRY);
    CHECK_INT(res[1].v, ES_V_RETRY);
    /* A whole reply of another shape (a member after the items) is parsed, not refused. */
    const char *late = "{\"took\":1,\"errors\":false,\"items\":[{\"index\":{\"status\":201}},"
                       "{\"create\":{\"status\":409}}],\"ingest_took\":0}";
    CHECK_INT(es_bulk_parse_reply(late, strlen(late), 2, res, &e, err, sizeof(err)), 0);
    CHECK_INT(res[0].v, ES_V_OK);
    CHECK_INT(res[1].v, ES_V_OK);
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
    /* The output's schedule is lib's: equal jitter, within [d/2, d],
     * d = init * 2^attempt capped at max. */
    CHECK_INT(sl_backoff_delay(1000, 60000, 0, 0), 500);
    CHECK_INT(sl_backoff_delay(1000, 60000, 0, 500), 1000);
    CHECK_INT(sl_backoff_delay(1000, 60000, 0, 501), 500);
    CHECK_INT(sl_backoff_delay(1000, 60000, 3, 0), 4000);
    CHECK_INT(sl_backoff_delay(1000, 60000, 6, 0), 30000);
    CHECK_INT(sl_backoff_delay(1000, 60000, 63, 0xffffffffu), 30000 + 0xffffffffu % 30001);
    CHECK_INT(sl_backoff_delay(1000, 60000, 200, 30000), 60000);
    CHECK_INT(sl_backoff_delay(1, 1, 5, 7), 1);
    for (uint32_t r = 0; r < 5000; r += 7) {
        uint64_t d = sl_backoff_delay(100, 1000, 2, r * 2654435761u);
        CHECK(d >= 200 && d <= 400);
    }
}

/* The dead-letter record as the core's writer files it: the output's members
 * (error, status, index) after time, output and event. */
static void dead_letter_record(struct sl_buf *out, const char *lines, const struct es_item *it,
                               const char *e, size_t elen, int status, uint64_t wall_ms)
{
    struct sl_buf members;
    size_t dlen;
    const char *doc = es_item_doc(lines, it, &dlen);
    sl_buf_init(&members, 0);
    es_dead_letter_members(&members, lines, it, e, elen, status);
    sl_dlq_record(out, wall_ms, "elasticsearch", doc, dlen, sl_buf_cstr(&members));
    sl_buf_free(&members);
}

TEST(test_dead_letter_line)
{
    struct es_item it;
    char *lines = encode("i-%{[s]}", ES_OP_INDEX, "{\"s\":\"A\",\"n\":{\"x\":1}}", &it);
    struct sl_buf out;
    sl_buf_init(&out, 0);
    const char *e = "{\"type\":\"mapper_parsing_exception\"}";
    dead_letter_record(&out, lines, &it, e, strlen(e), 400, 1795759200123ull);
    CHECK_STR(sl_buf_cstr(&out),
              "{\"time\":\"2026-11-27T06:00:00.123Z\",\"output\":\"elasticsearch\","
              "\"event\":{\"s\":\"A\",\"n\":{\"x\":1}},\"error\":{\"type\":"
              "\"mapper_parsing_exception\"},\"status\":400,\"index\":\"i-a\"}\n");
    sl_buf_reset(&out);
    dead_letter_record(&out, lines, &it, NULL, 0, 413, 0);
    CHECK_STR(sl_buf_cstr(&out),
              "{\"time\":\"1970-01-01T00:00:00.000Z\",\"output\":\"elasticsearch\","
              "\"event\":{\"s\":\"A\",\"n\":{\"x\":1}},\"error\":null,\"status\":413,"
              "\"index\":\"i-a\"}\n");
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

TEST(test_options_ok)
{
    struct sl_loop *loop = sl_loop_new();
    struct sl_metrics *m = sl_metrics_new();
    struct sl_cfg cfg;
    /* Never run: the loop's start timer is what would start the sender thread. */
    struct sl_instance *o = oload(&cfg,
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
                                  "  dead_letter_path: /tmp/dlq\n",
                                  loop, m);
    CHECK(o != NULL);
    CHECK_STR(errs(&cfg), "");
    agg_instance_free(o);
    sl_cfg_free(&cfg);
    o = oload(&cfg, "elasticsearch:\n", loop, m);
    CHECK(o != NULL);
    CHECK_STR(errs(&cfg), "");
    agg_instance_free(o);
    sl_cfg_free(&cfg);
    sl_metrics_free(m);
    sl_loop_free(loop);
}

/*
 * What the option table checks (types, bounds, choices, templates, unknown
 * keys) is reported before init runs, and init runs only on options that
 * read: so the table's errors and init's cross-option checks are two loads.
 */
TEST(test_options_errors)
{
    struct sl_cfg cfg;
    struct sl_instance *o = oload(&cfg,
                                  "elasticsearch:\n"
                                  "  workers: 0\n"
                                  "  ssl: {verification_mode: maybe}\n"
                                  "  index: \"x-%{\"\n"
                                  "  bulkmaxbytes: 1\n",
                                  NULL, NULL);
    CHECK(o == NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:2:12: outputs[0] (elasticsearch): option 'workers' must be between 1 and "
              "64, got '0'\n"
              "t.yml:3:28: outputs[0] (elasticsearch): ssl: option 'verification_mode' must be "
              "one of full, certificate, none, strict, got 'maybe'\n"
              "t.yml:4:10: outputs[0] (elasticsearch): option 'index': unterminated '%{' at "
              "offset 2\n"
              "t.yml:5:3: outputs[0] (elasticsearch): unknown option 'bulkmaxbytes' (did you "
              "mean 'bulk_max_bytes'?)\n");
    sl_cfg_free(&cfg);

    o = oload(&cfg,
              "elasticsearch:\n"
              "  hosts: [\"ftp://x\"]\n"
              "  op_type: index\n"
              "  data_stream: true\n"
              "  ssl: {certificate_authorities: [/nonexistent.pem]}\n"
              "  backoff: {init: 2s, max: 1s}\n"
              "  template: {name: t, file: /nonexistent.json}\n"
              "  username: u\n"
              "  api_key: k\n",
              NULL, NULL);
    CHECK(o == NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:2:11: outputs[0] (elasticsearch): option 'hosts': 'ftp://x' is not an "
              "http:// or https:// URL\n"
              "t.yml:3:12: outputs[0] (elasticsearch): data streams accept only op_type: "
              "create\n"
              "t.yml:5:34: outputs[0] (elasticsearch): ssl: cannot read certificate authority "
              "'/nonexistent.pem': No such file or directory\n"
              "t.yml:6:28: outputs[0] (elasticsearch): backoff: 'max' must not be below "
              "'init'\n"
              "t.yml:7:29: outputs[0] (elasticsearch): template: cannot read "
              "'/nonexistent.json': No such file or directory\n"
              "t.yml:9:12: outputs[0] (elasticsearch): use either username/password or "
              "api_key, not both\n");
    sl_cfg_free(&cfg);
}

TEST(test_options_tls_template_hosts)
{
    char tmpl[] = "/tmp/es_test_tmpl_XXXXXX";
    int fd = mkstemp(tmpl);
    CHECK(fd >= 0);
    CHECK_INT(write(fd, "{nope", 5), 5);
    close(fd);
    struct sl_cfg cfg;
    char text[1024];
    snprintf(text, sizeof(text),
             "elasticsearch:\n"
             "  hosts: []\n"
             "  ssl: {verification_mode: strict, certificate: /c.pem}\n"
             "  template: {file: \"%s\"}\n",
             tmpl);
    struct sl_instance *o = oload(&cfg, text, NULL, NULL);
    CHECK(o == NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:2:10: outputs[0] (elasticsearch): option 'hosts' must not be empty\n");
    sl_cfg_free(&cfg);
    snprintf(text, sizeof(text),
             "elasticsearch:\n"
             "  ssl: {verification_mode: strict, certificate: /c.pem}\n"
             "  template: {file: \"%s\"}\n",
             tmpl);
    o = oload(&cfg, text, NULL, NULL);
    CHECK(o == NULL);
    char want[1024];
    snprintf(want, sizeof(want),
             "t.yml:2:28: outputs[0] (elasticsearch): ssl: verification_mode 'strict' is not "
             "available for this output (libcurl falls back to the certificate's CN); use full\n"
             "t.yml:2:49: outputs[0] (elasticsearch): ssl: 'certificate' and 'key' go together\n"
             "t.yml:3:13: outputs[0] (elasticsearch): template: option 'name' is required\n"
             "t.yml:3:20: outputs[0] (elasticsearch): template: '%s' is not a JSON object "
             "(expected object key at offset 1)\n",
             tmpl);
    CHECK_STR(errs(&cfg), want);
    sl_cfg_free(&cfg);

    /* PEM text is taken as is; -t (check_only) checks everything and opens nothing. */
    fd = open(tmpl, O_WRONLY | O_TRUNC);
    CHECK_INT(write(fd, "{\"index_patterns\":[\"x\"]}", 24), 24);
    close(fd);
    snprintf(text, sizeof(text),
             "elasticsearch:\n"
             "  ssl: {certificate_authorities: [\"-----BEGIN CERTIFICATE-----\\nx\\n\"]}\n"
             "  template: {name: t, file: \"%s\"}\n",
             tmpl);
    struct agg_instance_args a = {.id = OUTPUT_ID, .check_only = true};
    memset(&cfg, 0, sizeof(cfg));
    CHECK_INT(sl_cfg_load_string(&cfg, "t.yml", text, strlen(text)), 0);
    o = agg_instance_new(&P, &cfg, sl_cfg_get(cfg.root, OUTPUT_KEY), &a);
    CHECK(o != NULL);
    CHECK_STR(errs(&cfg), "");
    agg_instance_free(o);
    sl_cfg_free(&cfg);
    unlink(tmpl);
}

/* ---- through the core, against an in-process _bulk endpoint ---------------------- */

#define FAKE_MAX 8

/* Answers up to nreplies HTTP requests, one per connection, with replies[i]
 * (status statuses[i], 200 when 0; JSON), and keeps each request's path and
 * body. eof[i]: no Content-Length, the end of the reply is the connection's
 * (as a proxy that lost its upstream mid-reply may send it). */
struct fake_es {
    int lfd;
    unsigned port;
    pthread_t thread;
    const char *replies[FAKE_MAX];
    int statuses[FAKE_MAX];
    bool eof[FAKE_MAX];
    size_t nreplies;
    char *paths[FAKE_MAX];
    char *bodies[FAKE_MAX];
    size_t nreqs;
};

/* One request from fd: the path and the body (Content-Length). 0, or -1. */
static int fake_read(int fd, char **path, char **body)
{
    struct sl_buf in;
    sl_buf_init(&in, 0);
    char chunk[4096];
    const char *end = NULL;
    size_t need = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t r = poll(&p, 1, 10000) == 1 ? recv(fd, chunk, sizeof(chunk), 0) : -1;
        if (r <= 0) {
            sl_buf_free(&in);
            return -1;
        }
        sl_buf_append(&in, chunk, (size_t)r);
        const char *data = sl_buf_cstr(&in);
        if (!end && (end = strstr(data, "\r\n\r\n"))) {
            const char *cl = strcasestr(data, "\r\nContent-Length:");
            need = (size_t)(end - data) + 4 + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
        }
        if (end && in.len >= need) {
            const char *sp = strchr(data, ' ');
            *path = strndup(sp + 1, strcspn(sp + 1, " "));
            *body = strdup(strstr(data, "\r\n\r\n") + 4);
            sl_buf_free(&in);
            return 0;
        }
        end = NULL;  /* the buffer may have moved: look again next time */
    }
}

static void *fake_main(void *arg)
{
    struct fake_es *f = arg;
    while (f->nreqs < f->nreplies) {
        struct pollfd p = {.fd = f->lfd, .events = POLLIN};
        if (poll(&p, 1, 10000) != 1) {
            break;
        }
        int c = accept(f->lfd, NULL, NULL);
        char *path = NULL, *body = NULL;
        if (c < 0 || fake_read(c, &path, &body) != 0) {
            if (c >= 0) {
                close(c);
            }
            continue;
        }
        const char *reply = f->replies[f->nreqs];
        int status = f->statuses[f->nreqs] ? f->statuses[f->nreqs] : 200;
        char length[64] = "";
        if (!f->eof[f->nreqs]) {
            snprintf(length, sizeof(length), "Content-Length: %zu\r\n", strlen(reply));
        }
        f->paths[f->nreqs] = path;
        f->bodies[f->nreqs++] = body;
        char head[256];
        int hl = snprintf(head, sizeof(head),
                          "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                          "%sConnection: close\r\n\r\n", status,
                          status == 200   ? "OK"
                          : status == 413 ? "Request Entity Too Large"
                                          : "Error",
                          length);
        send(c, head, (size_t)hl, MSG_NOSIGNAL);
        send(c, reply, strlen(reply), MSG_NOSIGNAL);
        close(c);
    }
    return NULL;
}

static void fake_start(struct fake_es *f)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(f->lfd >= 0);
    CHECK_INT(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    CHECK_INT(listen(f->lfd, 16), 0);
    CHECK_INT(getsockname(f->lfd, (struct sockaddr *)&sa, &len), 0);
    f->port = ntohs(sa.sin_port);
    CHECK_INT(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

/* Waits for the server to have answered every reply (or to have given up). */
static void fake_join(struct fake_es *f)
{
    pthread_join(f->thread, NULL);
    close(f->lfd);
}

static void fake_free(struct fake_es *f)
{
    for (size_t i = 0; i < f->nreqs; i++) {
        free(f->paths[i]);
        free(f->bodies[i]);
    }
}

/* A port nothing listens on: connections are refused at once. */
static unsigned closed_port(void)
{
    struct fake_es f = {0};
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    f.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bind(f.lfd, (struct sockaddr *)&sa, sizeof(sa));
    getsockname(f.lfd, (struct sockaddr *)&sa, &len);
    close(f.lfd);
    return ntohs(sa.sin_port);
}

struct waiter {
    const bool *flag;
    struct sl_timer *limit;
};

static void wait_poll(struct sl_loop *loop, void *arg)
{
    struct waiter *w = arg;
    if (*w->flag) {
        sl_loop_stop(loop);
    }
}

static void wait_limit(struct sl_loop *loop, void *arg)
{
    struct waiter *w = arg;
    w->limit = NULL;  /* a one-shot timer is freed after its callback */
    sl_loop_stop(loop);
}

/* Runs loop until *flag (the verdict arrived) or ms passed. */
static void run_until(struct sl_loop *loop, const bool *flag, uint64_t ms)
{
    struct waiter w = {.flag = flag};
    struct sl_timer *t = sl_loop_timer(loop, 5, true, wait_poll, &w);
    w.limit = sl_loop_timer(loop, ms, false, wait_limit, &w);
    sl_loop_run(loop);
    sl_timer_cancel(t);
    sl_timer_cancel(w.limit);
}

/* The value of one series in the rendered registry (-1: absent). */
static long long metric(struct sl_metrics *m, const char *series)
{
    struct sl_buf out;
    sl_buf_init(&out, 0);
    sl_metrics_render(m, &out);
    char key[256];
    snprintf(key, sizeof(key), "\n%s ", series);
    const char *p = strstr(sl_buf_cstr(&out), key);
    long long v = p ? strtoll(p + strlen(key), NULL, 10) : -1;
    sl_buf_free(&out);
    return v;
}

#define OUT_EVENTS "sluice_aggregator_output_events_total{output=\"elasticsearch\",result=\"%s\"}"

static long long out_events(struct sl_metrics *m, const char *result)
{
    char series[160];
    snprintf(series, sizeof(series), OUT_EVENTS, result);
    return metric(m, series);
}

static char *read_all(const char *path)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    FILE *f = fopen(path, "r");
    char chunk[4096];
    size_t r;
    while (f && (r = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        sl_buf_append(&b, chunk, r);
    }
    if (f) {
        fclose(f);
    }
    char *s = sl_strdup(sl_buf_cstr(&b));
    sl_buf_free(&b);
    return s;
}

TEST(test_submit_retry_and_dead_letter)
{
    /* Items A, B, C (a dropped event and one routed elsewhere are not sent): A is
     * created, B refused for good (dead letter), C throttled and sent again. */
    struct fake_es f = {
        .replies = {"{\"took\":1,\"errors\":true,\"items\":["
                    "{\"index\":{\"status\":201}},"
                    "{\"index\":{\"status\":400,\"error\":{\"type\":\"mapper_parsing_exception\","
                    "\"reason\":\"failed to parse field [m]\"}}},"
                    "{\"index\":{\"status\":429,\"error\":{\"type\":\"es_rejected\"}}}]}",
                    "{\"took\":1,\"errors\":false,\"items\":[{\"index\":{\"status\":201}}]}"},
        .nreplies = 2,
    };
    char dir[] = "/tmp/es_test_dlq_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    fake_start(&f);
    sl_wall_pin(1795759200123ull);  /* 2026-11-27T06:00:00.123Z: the file's name and time */
    struct sl_loop *loop = sl_loop_new();
    struct sl_metrics *m = sl_metrics_new();
    struct sl_cfg cfg;
    char text[512];
    snprintf(text, sizeof(text),
             "elasticsearch:\n"
             "  hosts: [\"127.0.0.1:%u\"]\n"
             "  manage_template: false\n"
             "  index: \"i-%%{[s]}\"\n"
             "  compression: false\n"
             "  backoff: {init: 10ms, max: 20ms}\n"
             "  dead_letter_path: \"%s\"\n",
             f.port, dir);
    struct sl_instance *in = oload(&cfg, text, loop, m);
    CHECK(in != NULL);
    CHECK_STR(errs(&cfg), "");
    size_t n;
    struct sl_value *ev = oevents("[{\"s\":\"A\",\"m\":1},"
                                  "{\"s\":\"B\",\"m\":{\"x\":2},\"@metadata\":{\"beat\":\"t\"}},"
                                  "null,{\"s\":\"D\",\"m\":4},{\"s\":\"C\",\"m\":3}]",
                                  &n);
    const uint8_t take[] = {1, 1, 1, 0, 1};
    struct out_run r;
    osubmit(in, &r, ev, n, take);
    CHECK_INT(r.batch.count, 3);
    run_until(loop, &r.done, 10000);
    CHECK(r.done);
    CHECK_INT(r.ndone, 1);
    CHECK_INT(r.status, SL_OK);  /* indexed or dead-lettered: delivered */
    fake_join(&f);
    CHECK_INT(f.nreqs, 2);
    CHECK_STR(f.paths[0], "/_bulk");
    CHECK_STR(f.bodies[0], "{\"index\":{\"_index\":\"i-a\"}}\n{\"s\":\"A\",\"m\":1}\n"
                           "{\"index\":{\"_index\":\"i-b\"}}\n{\"s\":\"B\",\"m\":{\"x\":2}}\n"
                           "{\"index\":{\"_index\":\"i-c\"}}\n{\"s\":\"C\",\"m\":3}\n");
    CHECK_STR(f.bodies[1], "{\"index\":{\"_index\":\"i-c\"}}\n{\"s\":\"C\",\"m\":3}\n");

    char path[128];
    snprintf(path, sizeof(path), "%s/dlq-2026.11.27.ndjson", dir);
    char *dl = read_all(path);
    CHECK_STR(dl, "{\"time\":\"2026-11-27T06:00:00.123Z\",\"output\":\"elasticsearch\","
                  "\"event\":{\"s\":\"B\",\"m\":{\"x\":2}},\"error\":{\"type\":"
                  "\"mapper_parsing_exception\",\"reason\":\"failed to parse field [m]\"},"
                  "\"status\":400,\"index\":\"i-b\"}\n");
    free(dl);
    unlink(path);
    rmdir(dir);
    fake_free(&f);

    /* The core counts what the output reported; the output keeps its own series. */
    CHECK_INT(out_events(m, "ok"), 2);
    CHECK_INT(out_events(m, "dead_letter"), 1);
    CHECK_INT(out_events(m, "retry"), 1);
    CHECK_INT(out_events(m, "failed"), 0);
    CHECK_INT(metric(m, "sluice_aggregator_es_bulk_requests_total{status=\"200\"}"), 2);
    CHECK_INT(metric(m, "sluice_aggregator_es_bulk_request_seconds_count"
                        "{output=\"elasticsearch\"}"), 2);
    sl_wall_unpin();
    agg_instance_free(in);
    ofree_events(ev, n);
    sl_cfg_free(&cfg);
    sl_metrics_free(m);
    sl_loop_free(loop);
}

/* Without a dead_letter_path an item the server refused for good is dropped by
 * the core: counted result="dropped" (not ok, not failed), and its batch is
 * ACKed with the other items, which were indexed. */
TEST(test_submit_rejected_without_dead_letter_path_drops_the_event)
{
    struct fake_es f = {
        .replies = {"{\"took\":1,\"errors\":true,\"items\":[{\"index\":{\"status\":201}},"
                    "{\"index\":{\"status\":400,\"error\":{\"type\":\"x\"}}},"
                    "{\"index\":{\"status\":201}}]}"},
        .nreplies = 1,
    };
    fake_start(&f);
    struct sl_loop *loop = sl_loop_new();
    struct sl_metrics *m = sl_metrics_new();
    struct sl_cfg cfg;
    char text[256];
    snprintf(text, sizeof(text), "elasticsearch:\n  hosts: [\"127.0.0.1:%u\"]\n"
                                 "  manage_template: false\n", f.port);
    struct sl_instance *in = oload(&cfg, text, loop, m);
    CHECK(in != NULL);
    CHECK(in->dlq == NULL);  /* no dead-letter writer: nothing can be filed anywhere */
    size_t n;
    struct sl_value *ev = oevents("[{\"m\":1},{\"m\":2},{\"m\":3}]", &n);
    struct out_run r;
    osubmit(in, &r, ev, n, NULL);
    run_until(loop, &r.done, 10000);
    fake_join(&f);
    CHECK(r.done);
    CHECK_INT(r.ndone, 1);
    CHECK_INT(r.status, SL_OK);  /* the refused event does not hold its batch back */
    CHECK_INT(f.nreqs, 1);       /* and is not sent again */
    CHECK(oevents_total(m, "elasticsearch", "ok") == 2);
    CHECK(oevents_total(m, "elasticsearch", "dropped") == 1);
    CHECK(oevents_total(m, "elasticsearch", "failed") == 0);
    CHECK(oevents_total(m, "elasticsearch", "dead_letter") == 0);
    CHECK(oevents_total(m, "elasticsearch", "retry") == 0);
    fake_free(&f);
    /* Nothing routed to it: an immediate verdict, and no request. */
    const uint8_t none[] = {0, 0, 0};
    osubmit(in, &r, ev, n, none);
    CHECK(r.done);
    CHECK_INT(r.status, SL_OK);
    agg_instance_free(in);
    ofree_events(ev, n);
    sl_cfg_free(&cfg);
    sl_metrics_free(m);
    sl_loop_free(loop);
}

/* A dead letter that cannot be written (the directory lies under a file) fails
 * the batch: the refused event is neither indexed nor filed, so it is not ACKed. */
TEST(test_submit_dead_letter_write_failure_fails_the_batch)
{
    struct fake_es f = {
        .replies = {"{\"took\":1,\"errors\":true,\"items\":[{\"index\":{\"status\":201}},"
                    "{\"index\":{\"status\":400,\"error\":{\"type\":\"x\"}}}]}"},
        .nreplies = 1,
    };
    char dir[] = "/tmp/es_test_dlq_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char blocker[64];
    snprintf(blocker, sizeof(blocker), "%s/blocker", dir);
    FILE *bf = fopen(blocker, "w");
    CHECK(bf != NULL);
    if (bf) {
        fclose(bf);
    }
    fake_start(&f);
    struct sl_loop *loop = sl_loop_new();
    struct sl_metrics *m = sl_metrics_new();
    struct sl_cfg cfg;
    char text[256];
    snprintf(text, sizeof(text),
             "elasticsearch:\n  hosts: [\"127.0.0.1:%u\"]\n"
             "  manage_template: false\n"
             "  dead_letter_path: \"%s/dlq\"\n",
             f.port, blocker);
    struct sl_instance *in = oload(&cfg, text, loop, m);
    CHECK(in != NULL);
    size_t n;
    struct sl_value *ev = oevents("[{\"m\":1},{\"m\":2}]", &n);
    struct out_run r;
    osubmit(in, &r, ev, n, NULL);
    run_until(loop, &r.done, 10000);
    fake_join(&f);
    CHECK(r.done);
    CHECK_INT(r.ndone, 1);
    CHECK_INT(r.status, SL_EIO);
    CHECK(oevents_total(m, "elasticsearch", "failed") == 2);
    CHECK(oevents_total(m, "elasticsearch", "ok") == 0);
    CHECK(oevents_total(m, "elasticsearch", "dead_letter") == 0);
    CHECK(oevents_total(m, "elasticsearch", "dropped") == 0);
    fake_free(&f);
    agg_instance_free(in);
    ofree_events(ev, n);
    sl_cfg_free(&cfg);
    sl_metrics_free(m);
    sl_loop_free(loop);
    unlink(blocker);
    rmdir(dir);
}

/* The bulk reply for n items, all created. */
#define OK1 "{\"took\":1,\"errors\":false,\"items\":[{\"index\":{\"status\":201}}]}"
#define OK3                                                                              \
    "{\"took\":1,\"errors\":false,\"items\":[{\"index\":{\"status\":201}},"             \
    "{\"index\":{\"status\":201}},{\"index\":{\"status\":201}}]}"
#define HTML_413 "<html><head><title>413 Request Entity Too Large</title></head></html>"

/*
 * A proxy's (or the server's http.max_content_length) 413 to a _bulk request:
 * the request goes again as two halves, recursively; one event refused alone
 * is dead-lettered (status 413); bulk_max_bytes is not cut for good - the next
 * batch goes whole. One worker, so the requests come in a known order.
 */
TEST(test_submit_413_splits_in_halves_then_full_size)
{
    struct fake_es f = {
        .replies = {HTML_413, HTML_413, OK1, HTML_413, OK1, OK3},
        .statuses = {413, 413, 200, 413, 200, 200},
        .nreplies = 6,
    };
    char dir[] = "/tmp/es_test_dlq_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    fake_start(&f);
    sl_wall_pin(1795759200123ull);
    struct sl_loop *loop = sl_loop_new();
    struct sl_metrics *m = sl_metrics_new();
    struct sl_cfg cfg;
    char text[512];
    snprintf(text, sizeof(text),
             "elasticsearch:\n"
             "  hosts: [\"127.0.0.1:%u\"]\n"
             "  manage_template: false\n"
             "  index: i\n"
             "  workers: 1\n"
             "  compression: false\n"
             "  backoff: {init: 10ms, max: 20ms}\n"
             "  dead_letter_path: \"%s\"\n",
             f.port, dir);
    struct sl_instance *in = oload(&cfg, text, loop, m);
    CHECK(in != NULL);
    CHECK_STR(errs(&cfg), "");
    size_t n1, n2;
    struct sl_value *ev1 = oevents("[{\"m\":\"A\"},{\"m\":\"B\"},{\"m\":\"C\"}]", &n1);
    struct sl_value *ev2 = oevents("[{\"m\":\"D\"},{\"m\":\"E\"},{\"m\":\"F\"}]", &n2);
    struct out_run r1, r2;
    osubmit(in, &r1, ev1, n1, NULL);
    run_until(loop, &r1.done, 10000);
    CHECK(r1.done);
    CHECK_INT(r1.ndone, 1);
    CHECK_INT(r1.status, SL_OK);  /* A and C indexed, B dead-lettered */
    osubmit(in, &r2, ev2, n2, NULL);
    run_until(loop, &r2.done, 10000);
    CHECK(r2.done);
    CHECK_INT(r2.status, SL_OK);
    fake_join(&f);
#define ITEM(x) "{\"index\":{\"_index\":\"i\"}}\n{\"m\":\"" x "\"}\n"
    CHECK_INT(f.nreqs, 6);
    CHECK_STR(f.bodies[0], ITEM("A") ITEM("B") ITEM("C"));  /* 413 */
    CHECK_STR(f.bodies[1], ITEM("A") ITEM("B"));            /* 413 */
    CHECK_STR(f.bodies[2], ITEM("A"));
    CHECK_STR(f.bodies[3], ITEM("B"));                      /* 413 alone: dead letter */
    CHECK_STR(f.bodies[4], ITEM("C"));
    CHECK_STR(f.bodies[5], ITEM("D") ITEM("E") ITEM("F"));  /* full size again */
#undef ITEM
    char path[128];
    snprintf(path, sizeof(path), "%s/dlq-2026.11.27.ndjson", dir);
    char *dl = read_all(path);
    CHECK_STR(dl, "{\"time\":\"2026-11-27T06:00:00.123Z\",\"output\":\"elasticsearch\","
                  "\"event\":{\"m\":\"B\"},\"error\":{\"type\":\"request_entity_too_large\","
                  "\"reason\":\"the event alone exceeds the server's http.max_content_length\"},"
                  "\"status\":413,\"index\":\"i\"}\n");
    free(dl);
    unlink(path);
    rmdir(dir);
    fake_free(&f);
    CHECK_INT(out_events(m, "ok"), 5);
    CHECK_INT(out_events(m, "dead_letter"), 1);
    CHECK_INT(out_events(m, "retry"), 3 + 2);  /* the items of each split request */
    CHECK_INT(out_events(m, "failed"), 0);
    CHECK_INT(out_events(m, "dropped"), 0);
    CHECK_INT(metric(m, "sluice_aggregator_es_bulk_requests_total{status=\"413\"}"), 3);
    CHECK_INT(metric(m, "sluice_aggregator_es_bulk_requests_total{status=\"200\"}"), 3);
    sl_wall_unpin();
    agg_instance_free(in);
    ofree_events(ev1, n1);
    ofree_events(ev2, n2);
    sl_cfg_free(&cfg);
    sl_metrics_free(m);
    sl_loop_free(loop);
}

/* Without a dead_letter_path, an event refused alone with 413 is dropped by the
 * core (counted "dropped"), never counted indexed. */
TEST(test_submit_413_alone_without_dead_letter_path_is_dropped)
{
    struct fake_es f = {.replies = {HTML_413}, .statuses = {413}, .nreplies = 1};
    fake_start(&f);
    struct sl_loop *loop = sl_loop_new();
    struct sl_metrics *m = sl_metrics_new();
    struct sl_cfg cfg;
    char text[256];
    snprintf(text, sizeof(text), "elasticsearch:\n  hosts: [\"127.0.0.1:%u\"]\n"
                                 "  manage_template: false\n", f.port);
    struct sl_instance *in = oload(&cfg, text, loop, m);
    CHECK(in != NULL);
    size_t n;
    struct sl_value *ev = oevents("[{\"m\":1}]", &n);
    struct out_run r;
    osubmit(in, &r, ev, n, NULL);
    run_until(loop, &r.done, 10000);
    fake_join(&f);
    CHECK(r.done);
    CHECK_INT(r.status, SL_OK);
    CHECK_INT(f.nreqs, 1);
    CHECK(oevents_total(m, "elasticsearch", "dropped") == 1);
    CHECK(oevents_total(m, "elasticsearch", "ok") == 0);
    CHECK(oevents_total(m, "elasticsearch", "retry") == 0);
    fake_free(&f);
    agg_instance_free(in);
    ofree_events(ev, n);
    sl_cfg_free(&cfg);
    sl_metrics_free(m);
    sl_loop_free(loop);
}

/*
 * A 200 whose body is not a whole bulk reply for the items sent - cut off
 * right after "errors":false (a proxy's Content-Length of what it had), cut off
 * by EOF in the items, or with fewer items - is an unknown outcome: the whole
 * request is sent again after backoff, and nothing is counted ok before a
 * real reply.
 */
TEST(test_submit_truncated_reply_is_retried_whole)
{
    struct fake_es f = {
        .replies = {"{\"took\":1,\"errors\":false,",
                    "{\"took\":1,\"errors\":false,\"items\":[{\"index\":{\"status\":201}},"
                    "{\"index\":{\"status\":201}}",
                    OK1,
                    "{\"took\":1,\"errors\":false,\"items\":[{\"index\":{\"status\":201}},"
                    "{\"index\":{\"status\":201}}]}"},
        .eof = {false, true},
        .nreplies = 4,
    };
    fake_start(&f);
    struct sl_loop *loop = sl_loop_new();
    struct sl_metrics *m = sl_metrics_new();
    struct sl_cfg cfg;
    char text[256];
    snprintf(text, sizeof(text),
             "elasticsearch:\n  hosts: [\"127.0.0.1:%u\"]\n"
             "  manage_template: false\n"
             "  index: i\n  compression: false\n"
             "  backoff: {init: 10ms, max: 20ms}\n",
             f.port);
    struct sl_instance *in = oload(&cfg, text, loop, m);
    CHECK(in != NULL);
    size_t n;
    struct sl_value *ev = oevents("[{\"m\":1},{\"m\":2}]", &n);
    struct out_run r;
    osubmit(in, &r, ev, n, NULL);
    run_until(loop, &r.done, 10000);
    fake_join(&f);
    CHECK(r.done);
    CHECK_INT(r.ndone, 1);
    CHECK_INT(r.status, SL_OK);
    CHECK_INT(f.nreqs, 4);
    for (size_t i = 0; i < f.nreqs; i++) {
        CHECK_STR(f.bodies[i], "{\"index\":{\"_index\":\"i\"}}\n{\"m\":1}\n"
                               "{\"index\":{\"_index\":\"i\"}}\n{\"m\":2}\n");
    }
    CHECK_INT(out_events(m, "ok"), 2);
    CHECK_INT(out_events(m, "retry"), 3 * 2);
    CHECK_INT(out_events(m, "failed"), 0);
    CHECK_INT(metric(m, "sluice_aggregator_es_bulk_requests_total{status=\"200\"}"), 4);
    fake_free(&f);
    agg_instance_free(in);
    ofree_events(ev, n);
    sl_cfg_free(&cfg);
    sl_metrics_free(m);
    sl_loop_free(loop);
}

/* The index and _id come from the parts the workers rendered: the index
 * lowercased, the _id from @metadata, which the document leaves out. */
TEST(test_submit_index_and_id_from_the_encoding)
{
    struct fake_es f = {
        .replies = {"{\"took\":1,\"errors\":false,\"items\":[{\"create\":{\"status\":201}},"
                    "{\"create\":{\"status\":201}}]}"},
        .nreplies = 1,
    };
    fake_start(&f);
    struct sl_loop *loop = sl_loop_new();
    struct sl_cfg cfg;
    char text[256];
    snprintf(text, sizeof(text),
             "elasticsearch:\n  hosts: [\"127.0.0.1:%u\"]\n"
             "  manage_template: false\n"
             "  index: \"Logs-%%{[s]}\"\n"
             "  op_type: create\n  compression: false\n",
             f.port);
    struct sl_instance *in = oload(&cfg, text, loop, NULL);
    CHECK(in != NULL);
    CHECK_STR(errs(&cfg), "");
    size_t n;
    struct sl_value *ev = oevents("[{\"s\":\"WeB\",\"@metadata\":{\"_id\":\"k\\\"1\","
                                  "\"beat\":\"b\"},\"m\":1},{\"s\":\"X\",\"m\":2}]",
                                  &n);
    struct out_run r;
    osubmit(in, &r, ev, n, NULL);
    run_until(loop, &r.done, 10000);
    fake_join(&f);
    CHECK(r.done);
    CHECK_INT(r.status, SL_OK);
    CHECK_INT(f.nreqs, 1);
    CHECK_STR(f.bodies[0], "{\"create\":{\"_index\":\"logs-web\",\"_id\":\"k\\\"1\"}}\n"
                           "{\"s\":\"WeB\",\"m\":1}\n"
                           "{\"create\":{\"_index\":\"logs-x\"}}\n{\"s\":\"X\",\"m\":2}\n");
    fake_free(&f);
    agg_instance_free(in);
    ofree_events(ev, n);
    sl_cfg_free(&cfg);
    sl_loop_free(loop);
}

static int (*real_part)(const void *, const struct sl_value *, unsigned, struct sl_buf *);
static unsigned failing_k;

/* The plugin's part(), except that part failing_k cannot be rendered (as when
 * a worker's buffer is full). */
static int failing_part(const void *inst, const struct sl_value *ev, unsigned k,
                        struct sl_buf *out)
{
    return k == failing_k ? SL_ELIMIT : real_part(inst, ev, k, out);
}

/* An event whose index or _id could not be rendered is not sent without it
 * (it would land in another index, or twice): its batch is not acknowledged. */
TEST(test_submit_unrenderable_part_fails_the_batch)
{
    struct sl_loop *loop = sl_loop_new();
    struct sl_cfg cfg;
    char text[256];
    /* Nothing listens: a request would be retried and the verdict held. */
    snprintf(text, sizeof(text), "elasticsearch:\n  hosts: [\"127.0.0.1:%u\"]\n"
                                 "  manage_template: false\n",
             closed_port());
    size_t n;
    struct sl_value *ev = oevents("[{\"@metadata\":{\"_id\":\"a\"},\"m\":1}]", &n);
    for (failing_k = 0; failing_k < 2; failing_k++) {
        struct sl_instance *in = oload(&cfg, text, loop, NULL);
        CHECK(in != NULL);
        CHECK(in->encoded && in->enc.nparts == 2 && !in->enc.metadata);
        real_part = in->enc.part;
        in->enc.part = failing_part;
        struct out_run r;
        osubmit(in, &r, ev, n, NULL);
        CHECK(r.done);  /* at once: nothing to send */
        CHECK_INT(r.ndone, 1);
        CHECK_INT(r.status, SL_ELIMIT);
        agg_instance_free(in);
        sl_cfg_free(&cfg);
    }
    ofree_events(ev, n);
    sl_loop_free(loop);
}

TEST(test_shutdown_and_free_give_up_on_held_batches)
{
    struct sl_loop *loop = sl_loop_new();
    struct sl_cfg cfg;
    char text[256];
    snprintf(text, sizeof(text),
             "elasticsearch:\n  hosts: [\"127.0.0.1:%u\"]\n"
             "  manage_template: false\n"
             "  backoff: {init: 10ms, max: 50ms}\n",
             closed_port());
    struct sl_instance *in = oload(&cfg, text, loop, NULL);
    CHECK(in != NULL);
    size_t n;
    struct sl_value *ev = oevents("[{\"m\":1}]", &n);
    struct out_run r1, r2;
    /* Past the deadline the sender aborts and the batch fails (not acknowledged). */
    osubmit(in, &r1, ev, n, NULL);
    run_until(loop, &r1.done, 100);
    CHECK(!r1.done);  /* nothing answers: retried, held */
    P.shutdown(in->inst, sl_now_ms());
    run_until(loop, &r1.done, 10000);
    CHECK(r1.done);
    CHECK_INT(r1.ndone, 1);
    CHECK_INT(r1.status, SL_ECLOSED);
    agg_instance_free(in);
    sl_cfg_free(&cfg);

    /* Freed with a batch still held: its verdict comes from the teardown. */
    in = oload(&cfg, text, loop, NULL);
    CHECK(in != NULL);
    osubmit(in, &r2, ev, n, NULL);
    run_until(loop, &r2.done, 50);
    CHECK(!r2.done);
    agg_instance_free(in);
    CHECK(r2.done);
    CHECK_INT(r2.ndone, 1);
    CHECK_INT(r2.status, SL_ECLOSED);
    ofree_events(ev, n);
    sl_cfg_free(&cfg);
    sl_loop_free(loop);
}

TEST(test_free_null)
{
    agg_instance_free(NULL);
}

/* ---- index templates --------------------------------------------------------------- */

static void check_pattern(const char *index, const char *want)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    es_template_pattern(index, &b);
    CHECK_STR(sl_buf_cstr(&b), want);
    sl_buf_free(&b);
}

TEST(test_template_index_pattern)
{
    check_pattern("logs-%{+yyyy.MM.dd}", "logs-*");
    check_pattern("logs-%{[fields][service]}-%{+yyyy.MM.dd}", "logs-*-*");
    check_pattern("Web-%{a}%{b}", "web-*");
    check_pattern("plain", "plain");
    check_pattern("x-*%{a}", "x-*");
    check_pattern("x-*-%{a}", "x-*-*");
    check_pattern("odd-%{", "odd-%{");
}

/* The mapping of one field, found by its dotted path in a template body. */
static const struct sl_value *mapping_of(const struct sl_value *tmpl, const char *path)
{
    const struct sl_value *v = sl_obj_getc(tmpl, "template");
    v = v ? sl_obj_getc(v, "mappings") : NULL;
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *seg = strtok(buf, "."); v && seg; seg = strtok(NULL, ".")) {
        v = sl_obj_getc(v, "properties");
        v = v ? sl_obj_getc(v, seg) : NULL;
    }
    return v;
}

static const char *type_of(const struct sl_value *tmpl, const char *path)
{
    const struct sl_value *m = mapping_of(tmpl, path);
    const struct sl_value *t = m ? sl_obj_getc(m, "type") : NULL;
    return t && t->type == SL_V_STRING ? t->u.s.ptr : "(none)";
}

/* Both built-in templates are JSON objects whose mappings fit what the grok
 * library of their mode captures: dates, addresses, counts, searchable text. */
TEST(test_template_builtin_mappings)
{
    struct sl_buf b;
    struct sl_value v = {0};
    char err[128];
    sl_buf_init(&b, 0);
    es_template_builtin(&b, SL_ECS_V8, "logs-*", false);
    CHECK_INT(sl_json_parse(b.data, b.len, &v, NULL, err, sizeof(err)), 0);
    CHECK_STR(sl_obj_getc(&v, "index_patterns")->u.a.items[0].u.s.ptr, "logs-*");
    CHECK_INT(sl_obj_getc(&v, "priority")->u.i, 200);
    CHECK(sl_obj_getc(&v, "data_stream") == NULL);
    CHECK_STR(type_of(&v, "@timestamp"), "date");
    CHECK_STR(type_of(&v, "source.ip"), "ip");
    CHECK_STR(type_of(&v, "source.address"), "keyword");
    CHECK_STR(type_of(&v, "http.response.status_code"), "long");
    CHECK_STR(type_of(&v, "http.response.body.bytes"), "long");
    CHECK_STR(type_of(&v, "url.original"), "keyword");
    CHECK_STR(type_of(&v, "user_agent.original"), "keyword");
    CHECK_STR(type_of(&v, "agent.name"), "keyword");
    CHECK_STR(type_of(&v, "message"), "text");
    CHECK_STR(type_of(&v, "process.pid"), "long");
    const struct sl_value *f = sl_obj_getc(mapping_of(&v, "url.original"), "fields");
    CHECK(f && sl_obj_getc(f, "text") != NULL);
    sl_value_clear(&v);

    sl_buf_reset(&b);
    es_template_builtin(&b, SL_ECS_DISABLED, "web-\"*", true);
    CHECK_INT(sl_json_parse(b.data, b.len, &v, NULL, err, sizeof(err)), 0);
    CHECK_STR(sl_obj_getc(&v, "index_patterns")->u.a.items[0].u.s.ptr, "web-\"*");
    CHECK(sl_obj_getc(&v, "data_stream") != NULL);
    CHECK_STR(type_of(&v, "@timestamp"), "date");
    CHECK_STR(type_of(&v, "clientip"), "ip");
    CHECK_STR(type_of(&v, "response"), "long");
    CHECK_STR(type_of(&v, "bytes"), "long");
    CHECK_STR(type_of(&v, "request"), "text");
    CHECK_STR(type_of(&v, "agent"), "text");      /* grok's user agent string */
    CHECK_STR(type_of(&v, "beat.name"), "keyword"); /* Beats' agent object, renamed */
    CHECK_STR(type_of(&v, "verb"), "keyword");
    sl_value_clear(&v);
    sl_buf_free(&b);
}

TEST(test_error_summary)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    static const char e[] =
        "{\"type\":\"mapper_parsing_exception\",\"reason\":\"failed to parse field [agent]\","
        "\"caused_by\":{\"type\":\"illegal_argument_exception\",\"reason\":\"bad\"}}";
    es_error_summary(&b, e, sizeof(e) - 1);
    CHECK_STR(sl_buf_cstr(&b), "mapper_parsing_exception: failed to parse field [agent] "
                               "(caused by illegal_argument_exception: bad)");
    sl_buf_reset(&b);
    es_error_summary(&b, "\"odd\"", 5);
    CHECK_STR(sl_buf_cstr(&b), "\"odd\"");
    sl_buf_reset(&b);
    es_error_summary(&b, NULL, 0);
    CHECK_STR(sl_buf_cstr(&b), "no reason given");
    sl_buf_free(&b);
}

/* Runs one event through an output made from yaml (%u: the fake's port) and
 * returns when its verdict came. */
static void template_run(struct fake_es *f, const char *yaml, enum sl_ecs pipeline_ecs)
{
    struct sl_loop *loop = sl_loop_new();
    struct sl_cfg cfg;
    char text[512];
    snprintf(text, sizeof(text), yaml, f->port);
    struct agg_instance_args a = {.id = OUTPUT_ID, .loop = loop, .ecs = pipeline_ecs};
    memset(&cfg, 0, sizeof(cfg));
    CHECK_INT(sl_cfg_load_string(&cfg, "t.yml", text, strlen(text)), 0);
    struct sl_instance *in = agg_instance_new(&P, &cfg, sl_cfg_get(cfg.root, OUTPUT_KEY), &a);
    CHECK(in != NULL);
    CHECK_STR(errs(&cfg), "");
    size_t n;
    struct sl_value *ev = oevents("[{\"m\":1}]", &n);
    struct out_run r;
    osubmit(in, &r, ev, n, NULL);
    run_until(loop, &r.done, 10000);
    CHECK(r.done);
    CHECK_INT(r.status, SL_OK);
    fake_join(f);
    agg_instance_free(in);
    ofree_events(ev, n);
    sl_cfg_free(&cfg);
    sl_loop_free(loop);
}

#define BULK_OK "{\"took\":1,\"errors\":false,\"items\":[{\"index\":{\"status\":201}}]}"

/* manage_template (the default): is it there (HEAD)? Not there: PUT sluice's
 * template for the mode and the index; then, only then, the events. */
TEST(test_template_installed_before_events)
{
    struct fake_es f = {.replies = {"{}", "{\"acknowledged\":true}", BULK_OK},
                        .statuses = {404, 200, 200}, .nreplies = 3};
    fake_start(&f);
    template_run(&f, "elasticsearch:\n  hosts: [\"127.0.0.1:%u\"]\n"
                     "  index: \"web-%%{+yyyy.MM.dd}\"\n", SL_ECS_V8);
    CHECK_INT(f.nreqs, 3);
    CHECK_STR(f.paths[0], "/_index_template/ecs-sluice");
    CHECK_STR(f.bodies[0], "");
    CHECK_STR(f.paths[1], "/_index_template/ecs-sluice");
    struct sl_value v = {0};
    char err[128];
    CHECK_INT(sl_json_parse(f.bodies[1], strlen(f.bodies[1]), &v, NULL, err, sizeof(err)), 0);
    CHECK_STR(sl_obj_getc(&v, "index_patterns")->u.a.items[0].u.s.ptr, "web-*");
    CHECK_STR(type_of(&v, "source.ip"), "ip");
    sl_value_clear(&v);
    CHECK_STR(f.paths[2], "/_bulk");
    fake_free(&f);
}

/* Already there and template_overwrite false (the default): left alone. The
 * pipeline's mode names the legacy template. */
TEST(test_template_existing_is_kept)
{
    struct fake_es f = {.replies = {"{}", BULK_OK}, .nreplies = 2};
    fake_start(&f);
    template_run(&f, "elasticsearch:\n  hosts: [\"127.0.0.1:%u\"]\n", SL_ECS_DISABLED);
    CHECK_INT(f.nreqs, 2);
    CHECK_STR(f.paths[0], "/_index_template/sluice");
    CHECK_STR(f.paths[1], "/_bulk");
    fake_free(&f);
}

/* template_overwrite: put at once, under template_name; the output's own
 * ecs_compatibility wins over the pipeline's. */
TEST(test_template_overwrite_and_name)
{
    struct fake_es f = {.replies = {"{\"acknowledged\":true}", BULK_OK}, .nreplies = 2};
    fake_start(&f);
    template_run(&f, "elasticsearch:\n  hosts: [\"127.0.0.1:%u\"]\n  template_overwrite: true\n"
                     "  template_name: mine\n  ecs_compatibility: disabled\n", SL_ECS_V8);
    CHECK_INT(f.nreqs, 2);
    CHECK_STR(f.paths[0], "/_index_template/mine");
    struct sl_value v = {0};
    char err[128];
    CHECK_INT(sl_json_parse(f.bodies[0], strlen(f.bodies[0]), &v, NULL, err, sizeof(err)), 0);
    CHECK_STR(type_of(&v, "clientip"), "ip");
    CHECK_STR(sl_obj_getc(&v, "index_patterns")->u.a.items[0].u.s.ptr, "logs-*");
    sl_value_clear(&v);
    CHECK_STR(f.paths[1], "/_bulk");
    fake_free(&f);
}

/* manage_template: false sends events at once. */
TEST(test_template_unmanaged)
{
    struct fake_es f = {.replies = {BULK_OK}, .nreplies = 1};
    fake_start(&f);
    template_run(&f, "elasticsearch:\n  hosts: [\"127.0.0.1:%u\"]\n  manage_template: false\n",
                 SL_ECS_V8);
    CHECK_INT(f.nreqs, 1);
    CHECK_STR(f.paths[0], "/_bulk");
    fake_free(&f);
}

/* template: a path - the user's own file, under template_name, checked first. */
TEST(test_template_from_a_file)
{
    char tmpl[] = "/tmp/es_test_own_XXXXXX";
    int fd = mkstemp(tmpl);
    CHECK(fd >= 0);
    static const char body[] = "{\"index_patterns\":[\"mine-*\"],\"template\":{}}";
    CHECK_INT(write(fd, body, sizeof(body) - 1), (long)sizeof(body) - 1);
    close(fd);
    struct fake_es f = {.replies = {"{}", "{\"acknowledged\":true}", BULK_OK},
                        .statuses = {404, 200, 200}, .nreplies = 3};
    fake_start(&f);
    char yaml[256];
    snprintf(yaml, sizeof(yaml), "elasticsearch:\n  hosts: [\"127.0.0.1:%%u\"]\n"
             "  template: \"%s\"\n  template_name: own\n", tmpl);
    template_run(&f, yaml, SL_ECS_V8);
    CHECK_INT(f.nreqs, 3);
    CHECK_STR(f.paths[0], "/_index_template/own");
    CHECK_STR(f.paths[1], "/_index_template/own");
    CHECK_STR(f.bodies[1], body);
    CHECK_STR(f.paths[2], "/_bulk");
    fake_free(&f);

    /* A path that cannot be read, or a list, is a configuration error there. */
    struct sl_cfg cfg;
    struct sl_instance *o = oload(&cfg, "elasticsearch:\n  template: /nonexistent.json\n",
                                  NULL, NULL);
    CHECK(o == NULL);
    CHECK_STR(errs(&cfg), "t.yml:2:13: outputs[0] (elasticsearch): template: cannot read "
                          "'/nonexistent.json': No such file or directory\n");
    sl_cfg_free(&cfg);
    o = oload(&cfg, "elasticsearch:\n  template: [a]\n", NULL, NULL);
    CHECK(o == NULL);
    CHECK_STR(errs(&cfg), "t.yml:2:13: outputs[0] (elasticsearch): option 'template' must be a "
                          "file's path\n");
    sl_cfg_free(&cfg);
    unlink(tmpl);
}

int main(void)
{
    RUN(test_descriptor);
    RUN(test_encode_index_op);
    RUN(test_encode_create_with_metadata_id);
    RUN(test_encode_missing_field_and_quotes_in_index);
    RUN(test_encode_appends_and_restores_on_limit);
    RUN(test_parts);
    RUN(test_verdicts);
    RUN(test_parse_all_ok_fast_path);
    RUN(test_parse_fast_path_needs_the_whole_reply);
    RUN(test_parse_mixed_items);
    RUN(test_parse_bad_replies);
    RUN(test_gzip_round_trip);
    RUN(test_backoff);
    RUN(test_dead_letter_line);
    RUN(test_base64);
    RUN(test_options_ok);
    RUN(test_options_errors);
    RUN(test_options_tls_template_hosts);
    RUN(test_template_index_pattern);
    RUN(test_template_builtin_mappings);
    RUN(test_error_summary);
    RUN(test_template_installed_before_events);
    RUN(test_template_existing_is_kept);
    RUN(test_template_overwrite_and_name);
    RUN(test_template_unmanaged);
    RUN(test_template_from_a_file);
    RUN(test_submit_retry_and_dead_letter);
    RUN(test_submit_rejected_without_dead_letter_path_drops_the_event);
    RUN(test_submit_dead_letter_write_failure_fails_the_batch);
    RUN(test_submit_413_splits_in_halves_then_full_size);
    RUN(test_submit_413_alone_without_dead_letter_path_is_dropped);
    RUN(test_submit_truncated_reply_is_retried_whole);
    RUN(test_submit_index_and_id_from_the_encoding);
    RUN(test_submit_unrenderable_part_fails_the_batch);
    RUN(test_shutdown_and_free_give_up_on_held_batches);
    RUN(test_free_null);
    return TEST_SUMMARY();
}
