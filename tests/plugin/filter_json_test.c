/*
 * filter_json_test.c - the `json` filter driven in-process: decoding into a
 * target or the root, failure tags, skip_on_invalid_json, the field/source
 * aliases, and config errors with their exact FILE:LINE:COL text.
 */
#include <stdlib.h>
#include <string.h>

#include "sluice/json.h"
#include "sluice/plugin.h"
#include "test.h"

#define FILTER_PLUGIN sl_plugin_filter_json
#define FILTER_KEY "json"
#define FILTER_ID "pipeline.filters[0] (json)"
#include "filter_harness.h"

TEST(test_descriptor)
{
    CHECK_STR(P.name, "json");
    CHECK_INT(P.kind, SL_PLUGIN_FILTER);
}

TEST(test_merge_at_root_by_default)
{
    struct sl_cfg cfg;
    void *j = load(&cfg, "json: {}\n");
    CHECK(j != NULL);
    EXPECT_RC(j, "{\"message\":\"{\\\"a\\\":1,\\\"b\\\":{\\\"c\\\":[true,null]}}\"}",
           "{\"message\":\"{\\\"a\\\":1,\\\"b\\\":{\\\"c\\\":[true,null]}}\",\"a\":1,"
           "\"b\":{\"c\":[true,null]}}",
           SL_FILTER_KEEP);
    /* Existing keys are replaced, not deep-merged; new ones are appended in order. */
    EXPECT_RC(j,
           "{\"x\":{\"keep\":1},\"message\":\"{\\\"x\\\":{\\\"new\\\":2},"
           "\\\"y\\\":\\\"z\\\"}\"}",
           "{\"x\":{\"new\":2},\"message\":\"{\\\"x\\\":{\\\"new\\\":2},\\\"y\\\":\\\"z\\\"}\","
           "\"y\":\"z\"}",
           SL_FILTER_KEEP);
    /* Decoded keys are literal names: "a.b" does not reach into "a". */
    EXPECT_RC(j, "{\"a\":{\"b\":1},\"message\":\"{\\\"a.b\\\":2}\"}",
           "{\"a\":{\"b\":1},\"message\":\"{\\\"a.b\\\":2}\",\"a.b\":2}", SL_FILTER_KEEP);
    /* The message itself can be overwritten by the decoded object. */
    EXPECT_RC(j, "{\"message\":\"{\\\"message\\\":\\\"inner\\\"}\"}", "{\"message\":\"inner\"}",
           SL_FILTER_KEEP);
    /* No source field: nothing to do, no tag. */
    EXPECT_RC(j, "{\"other\":1}", "{\"other\":1}", SL_FILTER_KEEP);
    unload(j);
    sl_cfg_free(&cfg);

    /* target: "" is the root too. */
    j = load(&cfg, "json: {target: \"\"}\n");
    CHECK(j != NULL);
    EXPECT_RC(j, "{\"message\":\"{\\\"k\\\":\\\"v\\\"}\"}",
           "{\"message\":\"{\\\"k\\\":\\\"v\\\"}\",\"k\":\"v\"}", SL_FILTER_KEEP);
    unload(j);
    sl_cfg_free(&cfg);
}

TEST(test_root_needs_an_object)
{
    struct sl_cfg cfg;
    void *j = load(&cfg, "json:\n");
    CHECK(j != NULL);
    EXPECT_RC(j, "{\"message\":\"[1,2]\"}",
           "{\"message\":\"[1,2]\",\"tags\":[\"_jsonparsefailure\"]}", SL_FILTER_FAIL);
    EXPECT_RC(j, "{\"message\":\"42\"}", "{\"message\":\"42\",\"tags\":[\"_jsonparsefailure\"]}",
           SL_FILTER_FAIL);
    unload(j);
    sl_cfg_free(&cfg);
}

TEST(test_timestamp_guard)
{
    struct sl_cfg cfg;
    void *j = load(&cfg, "json: {}\n");
    CHECK(j != NULL);
    EXPECT_RC(j,
           "{\"@timestamp\":\"2026-01-01T00:00:00.000Z\",\"message\":\"{\\\"@timestamp\\\":5}\"}",
           "{\"@timestamp\":\"2026-01-01T00:00:00.000Z\",\"message\":\"{\\\"@timestamp\\\":5}\","
           "\"_@timestamp\":5,\"tags\":[\"_timestampparsefailure\"]}",
           SL_FILTER_KEEP);
    EXPECT_RC(j, "{\"message\":\"{\\\"@timestamp\\\":\\\"2027-02-02T00:00:00Z\\\"}\"}",
           "{\"message\":\"{\\\"@timestamp\\\":\\\"2027-02-02T00:00:00Z\\\"}\","
           "\"@timestamp\":\"2027-02-02T00:00:00Z\"}",
           SL_FILTER_KEEP);
    unload(j);
    sl_cfg_free(&cfg);
}

TEST(test_target)
{
    struct sl_cfg cfg;
    void *j = load(&cfg, "json: {field: raw, target: \"[parsed][doc]\"}\n");
    CHECK(j != NULL);
    EXPECT_RC(j, "{\"raw\":\"{\\\"a\\\":[1,2.5]}\"}",
           "{\"raw\":\"{\\\"a\\\":[1,2.5]}\",\"parsed\":{\"doc\":{\"a\":[1,2.5]}}}",
           SL_FILTER_KEEP);
    /* Any JSON value can go to a target, and replaces what was there. */
    EXPECT_RC(j, "{\"parsed\":{\"doc\":\"old\",\"keep\":1},\"raw\":\"[\\\"x\\\",null]\"}",
           "{\"parsed\":{\"doc\":[\"x\",null],\"keep\":1},\"raw\":\"[\\\"x\\\",null]\"}",
           SL_FILTER_KEEP);
    EXPECT_RC(j, "{\"raw\":\" \\\"s\\\" \"}", "{\"raw\":\" \\\"s\\\" \",\"parsed\":{\"doc\":\"s\"}}",
           SL_FILTER_KEEP);
    unload(j);
    sl_cfg_free(&cfg);

    /* Decoding a field onto itself, with the Logstash name `source` and a dotted ref. */
    j = load(&cfg, "json: {source: a.b, target: a.b}\n");
    CHECK(j != NULL);
    EXPECT_RC(j, "{\"a\":{\"b\":\"{\\\"n\\\":1}\"}}", "{\"a\":{\"b\":{\"n\":1}}}", SL_FILTER_KEEP);
    unload(j);
    sl_cfg_free(&cfg);
}

TEST(test_failures)
{
    struct sl_cfg cfg;
    void *j = load(&cfg, "json: {target: out}\n");
    CHECK(j != NULL);
    EXPECT_RC(j, "{\"message\":\"{bad\"}", "{\"message\":\"{bad\",\"tags\":[\"_jsonparsefailure\"]}",
           SL_FILTER_FAIL);
    EXPECT_RC(j, "{\"message\":\"\"}", "{\"message\":\"\",\"tags\":[\"_jsonparsefailure\"]}",
           SL_FILTER_FAIL);
    EXPECT_RC(j, "{\"message\":\"{} x\"}", "{\"message\":\"{} x\",\"tags\":[\"_jsonparsefailure\"]}",
           SL_FILTER_FAIL);
    /* A source that is not text cannot be decoded. */
    EXPECT_RC(j, "{\"message\":{\"a\":1}}", "{\"message\":{\"a\":1},\"tags\":[\"_jsonparsefailure\"]}",
           SL_FILTER_FAIL);
    /* The tag joins existing tags once. */
    EXPECT_RC(j, "{\"message\":\"x\",\"tags\":[\"web\",\"_jsonparsefailure\"]}",
           "{\"message\":\"x\",\"tags\":[\"web\",\"_jsonparsefailure\"]}", SL_FILTER_FAIL);
    unload(j);
    sl_cfg_free(&cfg);

    j = load(&cfg, "json:\n  tag_on_failure: [bad_json, also]\n");
    CHECK(j != NULL);
    EXPECT_RC(j, "{\"message\":\"nope\"}", "{\"message\":\"nope\",\"tags\":[\"bad_json\",\"also\"]}",
           SL_FILTER_FAIL);
    unload(j);
    sl_cfg_free(&cfg);

    j = load(&cfg, "json:\n  tag_on_failure: []\n");
    CHECK(j != NULL);
    EXPECT_RC(j, "{\"message\":\"nope\"}", "{\"message\":\"nope\"}", SL_FILTER_FAIL);
    unload(j);
    sl_cfg_free(&cfg);
}

TEST(test_depth_limit)
{
    struct sl_cfg cfg;
    void *j = load(&cfg, "json: {target: t}\n");
    CHECK(j != NULL);
    char in[400], out[500];
    /* 65 nested arrays: one past sl_json_parse's default depth. */
    size_t n = 0;
    n += (size_t)snprintf(in + n, sizeof(in) - n, "{\"message\":\"");
    for (int i = 0; i < 65; i++) {
        in[n++] = '[';
    }
    for (int i = 0; i < 65; i++) {
        in[n++] = ']';
    }
    snprintf(in + n, sizeof(in) - n, "\"}");
    snprintf(out, sizeof(out), "%.*s,\"tags\":[\"_jsonparsefailure\"]}", (int)strlen(in) - 1, in);
    EXPECT_RC(j, in, out, SL_FILTER_FAIL);
    unload(j);
    sl_cfg_free(&cfg);
}

/* A text that would expand past its length + 16 MiB fails as invalid: 2 MiB
 * of "0," is a million items, 32 MiB of values. */
TEST(test_memory_limit)
{
    struct sl_cfg cfg;
    void *j = load(&cfg, "json: {target: t}\n");
    CHECK(j != NULL);
    size_t items = 1u << 20, n = 0;
    char *in = malloc(2 * items + 64), *out = malloc(2 * items + 128);
    n += (size_t)sprintf(in, "{\"message\":\"[");
    for (size_t i = 0; i < items; i++) {
        in[n++] = '0';
        in[n++] = i + 1 < items ? ',' : ']';
    }
    strcpy(in + n, "\"}");
    sprintf(out, "%.*s,\"tags\":[\"_jsonparsefailure\"]}", (int)strlen(in) - 1, in);
    EXPECT_RC(j, in, out, SL_FILTER_FAIL);
    free(in);
    free(out);
    unload(j);
    sl_cfg_free(&cfg);
}

TEST(test_skip_on_invalid_json)
{
    struct sl_cfg cfg;
    void *j = load(&cfg, "json: {skip_on_invalid_json: true}\n");
    CHECK(j != NULL);
    EXPECT_RC(j, "{\"message\":\"plain text\"}", "{\"message\":\"plain text\"}", SL_FILTER_KEEP);
    EXPECT_RC(j, "{\"message\":7}", "{\"message\":7}", SL_FILTER_KEEP);
    /* Valid JSON that cannot be merged is still a failure. */
    EXPECT_RC(j, "{\"message\":\"1\"}", "{\"message\":\"1\",\"tags\":[\"_jsonparsefailure\"]}",
           SL_FILTER_FAIL);
    EXPECT_RC(j, "{\"message\":\"{\\\"ok\\\":1}\"}", "{\"message\":\"{\\\"ok\\\":1}\",\"ok\":1}",
           SL_FILTER_KEEP);
    unload(j);
    sl_cfg_free(&cfg);
}

TEST(test_when_is_accepted)
{
    struct sl_cfg cfg;
    void *j = load(&cfg, "json:\n  when: {field: x, equals: y}\n");
    CHECK(j != NULL);
    CHECK_STR(errs(&cfg), "");
    unload(j);
    sl_cfg_free(&cfg);
}

TEST(test_config_errors)
{
    struct sl_cfg cfg;
    CHECK(load(&cfg, "json:\n"
                     "  field: a\n"
                     "  source: b\n"
                     "  target: \"[x]y\"\n"
                     "  tag_on_failure: {a: 1}\n"
                     "  skip_on_invalid_json: sometimes\n"
                     "  fields: x\n") == NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:2:10: pipeline.filters[0] (json): options 'source' and 'field' name the "
              "same thing; give one\n"
              "t.yml:4:11: pipeline.filters[0] (json): option 'target': '[x]y' is not a valid "
              "field reference\n"
              "t.yml:5:19: pipeline.filters[0] (json): option 'tag_on_failure' must be a string "
              "or a list of strings, got a map\n"
              "t.yml:6:25: pipeline.filters[0] (json): option 'skip_on_invalid_json' must be "
              "true or false, got 'sometimes'\n"
              "t.yml:7:3: pipeline.filters[0] (json): unknown option 'fields' (did you mean "
              "'field'?)\n");
    sl_cfg_free(&cfg);

    CHECK(load(&cfg, "json: {field: \"a..b\"}\n") == NULL);
    CHECK_STR(errs(&cfg), "t.yml:1:15: pipeline.filters[0] (json): option 'field': 'a..b' is "
                          "not a valid field reference\n");
    sl_cfg_free(&cfg);

    CHECK(load(&cfg, "json: {source: [a]}\n") == NULL);
    CHECK_STR(errs(&cfg), "t.yml:1:16: pipeline.filters[0] (json): option 'source' must be a "
                          "string, got a list\n");
    sl_cfg_free(&cfg);
}

/* An object of 200k keys merged at the root (once minutes of CPU): exact result. */
TEST(test_merge_many_keys)
{
    enum { N = 200000 };
    struct sl_buf t;
    sl_buf_init(&t, 0);
    sl_buf_putc(&t, '{');
    for (int i = 0; i < N; i++) {
        sl_buf_printf(&t, "\"key%d\":%d,", i, i);
    }
    sl_buf_puts(&t, "\"@timestamp\":5}");
    WITH("json: {}\n") {
        struct sl_value ev = {0};
        char err[128];
        const char *head = "{\"@timestamp\":\"2026-01-01T00:00:00.000Z\",\"key150000\":\"old\"}";
        CHECK_INT(sl_json_parse(head, strlen(head), &ev, NULL, err, sizeof(err)), 0);
        sl_value_set_cstr(sl_obj_putc(&ev, "message"), sl_buf_cstr(&t));
        CHECK_INT(run(w.k, &ev), SL_FILTER_KEEP);
        /* 3 members, 199999 new keys, "_@timestamp" and the tags. */
        CHECK_INT(ev.u.o.len, N + 4);
        if (ev.u.o.len == N + 4) {
            const struct sl_member *m = ev.u.o.items;
            CHECK_STR(m[0].key, "@timestamp");
            CHECK(m[0].v.type == SL_V_STRING);
            CHECK_STR(m[1].key, "key150000");  /* replaced in place */
            CHECK(m[1].v.type == SL_V_INT && m[1].v.u.i == 150000);
            CHECK_STR(m[2].key, "message");
            CHECK_STR(m[3].key, "key0");
            CHECK(m[3].v.type == SL_V_INT && m[3].v.u.i == 0);
            CHECK_STR(m[N + 1].key, "key199999");
            CHECK(m[N + 1].v.type == SL_V_INT && m[N + 1].v.u.i == N - 1);
            CHECK_STR(m[N + 2].key, "_@timestamp");
            CHECK(m[N + 2].v.type == SL_V_INT && m[N + 2].v.u.i == 5);
            CHECK_STR(m[N + 3].key, "tags");
        }
        const struct sl_value *k = sl_obj_getc(&ev, "key123456");
        CHECK(k && k->type == SL_V_INT && k->u.i == 123456);
        sl_value_clear(&ev);
    }
    sl_buf_free(&t);
}

TEST(test_free_null)
{
    unload(NULL);
}

/* As Logstash: in ECS modes (the default) a filter without `target` warns at
 * start-up that root keys may clash with ECS fields; nothing else changes. */
TEST(test_ecs_compatibility_warning)
{
    char *log = log_of_load("json: {}\n", SL_ECS_V8);
    CHECK(strstr(log, "without 'target', decoded keys land at the event's root") != NULL);
    free(log);
    log = log_of_load("json: {ecs_compatibility: v1}\n", SL_ECS_DISABLED);
    CHECK(strstr(log, "without 'target'") != NULL);
    free(log);
    log = log_of_load("json: {target: t}\n", SL_ECS_V8);
    CHECK_STR(log, "");
    free(log);
    log = log_of_load("json: {}\n", SL_ECS_DISABLED);
    CHECK_STR(log, "");
    free(log);
    log = log_of_load("json: {ecs_compatibility: disabled}\n", SL_ECS_V8);
    CHECK_STR(log, "");
    free(log);
}

int main(void)
{
    RUN(test_descriptor);
    RUN(test_ecs_compatibility_warning);
    RUN(test_merge_at_root_by_default);
    RUN(test_root_needs_an_object);
    RUN(test_timestamp_guard);
    RUN(test_target);
    RUN(test_failures);
    RUN(test_depth_limit);
    RUN(test_memory_limit);
    RUN(test_skip_on_invalid_json);
    RUN(test_when_is_accepted);
    RUN(test_config_errors);
    RUN(test_merge_many_keys);
    RUN(test_free_null);
    return TEST_SUMMARY();
}
