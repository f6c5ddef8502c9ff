/*
 * processor_test.c - the shipper's processors and their conditions, in
 * Filebeat's semantics: each test compiles a processors: list from YAML, runs
 * it on an event and compares the JSON that comes out.
 */
#include "processor.h"

#include <stdlib.h>

#include "sluice/json.h"
#include "test.h"

static const char *EVENT =
    "{\"@timestamp\":\"2025-03-04T05:06:07.000Z\",\"message\":\"{\\\"a\\\":1,\\\"b\\\":"
    "{\\\"c\\\":\\\"x\\\"}}\",\"log\":{\"file\":{\"path\":"
    "\"/var/log/pods/shop_web-1_u1/app/0.log\"},\"offset\":42},\"http\":{\"code\":404},"
    "\"host\":{\"name\":\"h1\"},\"tags\":[\"web\",\"edge\"]}";

static char result[4096];
static char errors[1024];

/* Runs the chain in yaml on json; result: the event's JSON, or "DROPPED"; errors:
 * what the config parse said ("" when it compiled). */
static void run(const char *yaml, const char *json)
{
    struct sl_cfg cfg = {0};
    struct proc_chain *c = NULL;
    result[0] = errors[0] = '\0';
    /* Unknown options are recorded in cfg without failing the parse, as everywhere. */
    if (sl_cfg_load_string(&cfg, "t.yml", yaml, strlen(yaml)) != 0 ||
        proc_chain_parse(&cfg, sl_cfg_get(cfg.root, "processors"), "", &c) != 0 ||
        cfg.errors.len > 0) {
        snprintf(errors, sizeof(errors), "%s", sl_buf_cstr(&cfg.errors));
        sl_cfg_free(&cfg);
        proc_chain_free(c);
        return;
    }
    sl_cfg_free(&cfg);
    struct sl_arena a;
    sl_arena_init(&a, 0);
    struct sl_arena *prev = sl_value_set_arena(&a);
    struct sl_value ev = {0};
    char err[96];
    if (sl_json_parse_arena(json, strlen(json), &ev, &a, NULL, err, sizeof(err)) != 0) {
        snprintf(result, sizeof(result), "BAD TEST JSON: %s", err);
    } else if (!proc_chain_run(c, &ev)) {
        snprintf(result, sizeof(result), "DROPPED");
    } else {
        struct sl_buf b;
        sl_buf_init(&b, 0);
        sl_json_write(&b, &ev, NULL);
        snprintf(result, sizeof(result), "%s", sl_buf_cstr(&b));
        sl_buf_free(&b);
    }
    sl_value_clear(&ev);
    sl_value_set_arena(prev);
    sl_arena_free(&a);
    proc_chain_free(c);
}

TEST(add_fields_under_fields_root_and_target)
{
    run("processors:\n  - add_fields: {fields: {env: prod, n: 3, ok: true}}\n",
        "{\"message\":\"m\",\"fields\":{\"keep\":1}}");
    CHECK_STR(result, "{\"message\":\"m\",\"fields\":{\"keep\":1,\"env\":\"prod\",\"n\":3,"
                      "\"ok\":true}}");
    run("processors:\n  - add_fields: {target: '', fields: {a: {b: 1}}}\n",
        "{\"a\":{\"c\":2}}");
    CHECK_STR(result, "{\"a\":{\"c\":2,\"b\":1}}");
    run("processors:\n  - add_fields: {target: project, fields: {name: x, id: '7'}}\n", "{}");
    CHECK_STR(result, "{\"project\":{\"name\":\"x\",\"id\":\"7\"}}");
}

TEST(drop_and_include_fields)
{
    run("processors:\n  - drop_fields: {fields: [http.code, tags, '@timestamp', nope], "
        "ignore_missing: true}\n", EVENT);
    CHECK(strstr(result, "\"http\":{}") != NULL);
    CHECK(strstr(result, "tags") == NULL);
    CHECK(strstr(result, "@timestamp") != NULL);  /* never dropped */
    run("processors:\n  - include_fields: {fields: [log.offset, http]}\n", EVENT);
    CHECK_STR(result, "{\"@timestamp\":\"2025-03-04T05:06:07.000Z\",\"log\":{\"offset\":42},"
                      "\"http\":{\"code\":404}}");
}

TEST(rename_moves_and_undoes_on_error)
{
    run("processors:\n  - rename: {fields: [{from: http.code, to: status}, "
        "{from: message, to: event.original}]}\n", "{\"message\":\"m\",\"http\":{\"code\":1}}");
    CHECK_STR(result, "{\"http\":{},\"status\":1,\"event\":{\"original\":\"m\"}}");
    /* The second rename fails (target taken): fail_on_error (default) undoes the first. */
    run("processors:\n  - rename: {fields: [{from: a, to: b}, {from: c, to: d}]}\n",
        "{\"a\":1,\"c\":2,\"d\":3}");
    CHECK_STR(result, "{\"c\":2,\"d\":3,\"a\":1,\"error\":{\"message\":\"Failed to rename "
                      "fields in processor: target field already exists 'd'\"}}");
    run("processors:\n  - rename: {fail_on_error: false, fields: [{from: x, to: y}, "
        "{from: a, to: b}]}\n", "{\"a\":1}");
    CHECK_STR(result, "{\"b\":1}");
    run("processors:\n  - rename: {ignore_missing: true, fields: [{from: x, to: y}]}\n",
        "{\"a\":1}");
    CHECK_STR(result, "{\"a\":1}");
}

TEST(drop_event_with_conditions)
{
    run("processors:\n  - drop_event: {when: {equals: {http.code: 404}}}\n", EVENT);
    CHECK_STR(result, "DROPPED");
    run("processors:\n  - drop_event: {when: {equals: {http.code: '404'}}}\n", EVENT);
    CHECK(strcmp(result, "DROPPED") != 0);  /* a string never equals a number */
    run("processors:\n  - drop_event: {when: {contains: {tags: edg}}}\n", EVENT);
    CHECK_STR(result, "DROPPED");
    run("processors:\n  - drop_event: {when: {regexp: {log.file.path: '^/var/log/pods/'}}}\n",
        EVENT);
    CHECK_STR(result, "DROPPED");
    run("processors:\n  - drop_event: {when: {range: {http.code: {gte: 400, lt: 500}}}}\n",
        EVENT);
    CHECK_STR(result, "DROPPED");
    run("processors:\n  - drop_event: {when: {range: {http.code.lt: 400}}}\n", EVENT);
    CHECK(strcmp(result, "DROPPED") != 0);
    run("processors:\n  - drop_event: {when: {has_fields: [http.code, host.name]}}\n", EVENT);
    CHECK_STR(result, "DROPPED");
    run("processors:\n  - drop_event: {when: {has_fields: [http.code, nope]}}\n", EVENT);
    CHECK(strcmp(result, "DROPPED") != 0);
    run("processors:\n  - drop_event:\n      when:\n        and:\n          - equals: "
        "{host.name: h1}\n          - not: {or: [{equals: {http.code: 200}}, "
        "{contains: {message: zzz}}]}\n", EVENT);
    CHECK_STR(result, "DROPPED");
    run("processors:\n  - drop_event: {}\n", "{}");
    CHECK_STR(result, "DROPPED");
    /* when on any processor */
    run("processors:\n  - add_fields: {when: {equals: {x: 1}}, target: '', fields: {y: 2}}\n",
        "{\"x\":2}");
    CHECK_STR(result, "{\"x\":2}");
}

TEST(decode_json_fields)
{
    run("processors:\n  - decode_json_fields: {fields: [message]}\n", EVENT);
    CHECK(strstr(result, "\"message\":{\"a\":1,\"b\":{\"c\":\"x\"}}") != NULL);
    run("processors:\n  - decode_json_fields: {fields: [message], target: ''}\n",
        "{\"message\":\"{\\\"a\\\":1,\\\"message\\\":\\\"inner\\\"}\"}");
    CHECK_STR(result, "{\"message\":\"{\\\"a\\\":1,\\\"message\\\":\\\"inner\\\"}\",\"a\":1}");
    run("processors:\n  - decode_json_fields: {fields: [message], target: '', "
        "overwrite_keys: true}\n", "{\"message\":\"{\\\"message\\\":\\\"inner\\\"}\"}");
    CHECK_STR(result, "{\"message\":\"inner\"}");
    run("processors:\n  - decode_json_fields: {fields: [m], target: doc, max_depth: 2}\n",
        "{\"m\":\"{\\\"in\\\":\\\"{\\\\\\\"x\\\\\\\":1}\\\"}\"}");
    CHECK(strstr(result, "\"doc\":{\"in\":{\"x\":1}}") != NULL);
    run("processors:\n  - decode_json_fields: {fields: [m], add_error_key: true}\n",
        "{\"m\":\"{bad\"}");
    CHECK_STR(result, "{\"m\":\"{bad\",\"error\":{\"message\":\"parsing input as JSON failed\","
                      "\"type\":\"json\"}}");
    run("processors:\n  - decode_json_fields: {fields: [m]}\n", "{\"m\":\"[1,2]\"}");
    CHECK_STR(result, "{\"m\":\"[1,2]\"}");
    run("processors:\n  - decode_json_fields: {fields: [m], process_array: true}\n",
        "{\"m\":\"[1,2]\"}");
    CHECK_STR(result, "{\"m\":[1,2]}");
}

TEST(add_kubernetes_metadata_from_the_path)
{
    run("processors:\n  - add_kubernetes_metadata: ~\n", EVENT);
    CHECK(strstr(result, "\"kubernetes\":{\"pod\":{\"name\":\"web-1\",\"uid\":\"u1\"},"
                         "\"namespace\":\"shop\",\"container\":{\"name\":\"app\"}}") != NULL);
    run("processors:\n  - add_kubernetes_metadata:\n      matchers:\n        - logs_path: "
        "{logs_path: /var/log/containers/}\n", EVENT);
    CHECK(strstr(result, "kubernetes") == NULL);
}

TEST(add_host_metadata_keeps_the_name)
{
    run("processors:\n  - add_host_metadata: {netinfo.enabled: false}\n", EVENT);
    CHECK(strstr(result, "\"host\":{\"name\":\"h1\",\"hostname\":") != NULL);
    CHECK(strstr(result, "\"os\":{\"type\":\"linux\"") != NULL);
    CHECK(strstr(result, "\"ip\"") == NULL);
    run("processors:\n  - add_host_metadata: {replace_fields: false, cache: {ttl: 1m}}\n",
        "{\"host\":{\"name\":\"h1\",\"architecture\":\"mine\"}}");
    CHECK(strstr(result, "\"architecture\":\"mine\"") != NULL);
}

TEST(config_errors_name_the_place)
{
    run("processors:\n  - add_feilds: {fields: {a: 1}}\n", "{}");
    CHECK_STR(errors, "t.yml:2:5: processors[0]: unknown processor 'add_feilds' (did you mean "
                      "'add_fields'?)\n");
    run("processors:\n  - drop_fields: {}\n", "{}");
    CHECK(strstr(errors, "processors[0].drop_fields: option 'fields' is required") != NULL);
    run("processors:\n  - drop_event: {when: {equal: {a: 1}}}\n", "{}");
    CHECK(strstr(errors, "unknown condition 'equal' (did you mean 'equals'?)") != NULL);
    run("processors:\n  - drop_event: {when: {regexp: {a: '('}}}\n", "{}");
    CHECK(strstr(errors, "invalid regex") != NULL);
    run("processors:\n  - drop_event: {when: {range: {a: {gte: x}}}}\n", "{}");
    CHECK(strstr(errors, "must be a number") != NULL);
    run("processors:\n  - add_kubernetes_metadata: {in_cluster: true}\n", "{}");
    CHECK(strstr(errors, "in_cluster") != NULL);
    run("processors:\n  - rename: {fields: [{from: a}]}\n", "{}");
    CHECK(strstr(errors, "needs both 'from' and 'to'") != NULL);
}

int main(void)
{
    RUN(add_fields_under_fields_root_and_target);
    RUN(drop_and_include_fields);
    RUN(rename_moves_and_undoes_on_error);
    RUN(drop_event_with_conditions);
    RUN(decode_json_fields);
    RUN(add_kubernetes_metadata_from_the_path);
    RUN(add_host_metadata_keeps_the_name);
    RUN(config_errors_name_the_place);
    return TEST_SUMMARY();
}
