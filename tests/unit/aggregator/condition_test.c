/*
 * condition_test.c - lib/condition.c: every operator on every kind of field
 * value (strings, integers, doubles, booleans, null, arrays, objects,
 * missing fields), and/or/not, field reference forms, the exact error text
 * (FILE:LINE:COL) of each malformed condition, and evaluation from several
 * threads on one compiled tree.
 */
#include "condition.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/json.h"
#include "test.h"

static struct sl_cfg g_cfg;

/* Compiles the `when:` of yaml (kept in g_cfg until done()). */
static struct sl_condition *cond(const char *yaml)
{
    sl_cfg_free(&g_cfg);
    if (sl_cfg_load_string(&g_cfg, "t.yml", yaml, strlen(yaml)) != 0) {
        fprintf(stderr, "bad test YAML: %s%s\n", yaml, sl_buf_cstr(&g_cfg.errors));
        abort();
    }
    return sl_condition_new(&g_cfg, sl_cfg_get(g_cfg.root, "when"), "filters[0] (drop): when");
}

/* The errors recorded by the last cond() ("" when none). */
static const char *errs(void)
{
    return g_cfg.errors.data ? sl_buf_cstr(&g_cfg.errors) : "";
}

/* The compile error of yaml; "(compiled)" when it compiled. */
static const char *error_of(const char *yaml)
{
    struct sl_condition *c = cond(yaml);
    if (c) {
        sl_condition_free(c);
        return "(compiled)";
    }
    return errs();
}

static struct sl_value ev_from(const char *json)
{
    struct sl_value v;
    memset(&v, 0, sizeof(v));
    char err[128];
    if (sl_json_parse(json, strlen(json), &v, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "bad test JSON: %s\n", err);
        abort();
    }
    return v;
}

static const char *const EVENT =
    "{\"message\":\"GET /index.html 200\",\"level\":\"DEBUG\",\"code\":\"5\",\"codef\":\"5.0\","
    "\"flag\":\"true\",\"zip\":\"05\","

    "\"status\":200,\"ratio\":0.5,\"whole\":5.0,\"ok\":true,\"bad\":false,\"nil\":null,"
    "\"empty\":\"\",\"tags\":[\"web\",\"prod\"],\"nums\":[1,2,3],"
    "\"fields\":{\"service\":\"web\",\"env\":{\"name\":\"prod\"}},\"obj\":{\"a\":1}}";

/* Evaluates the `when:` of yaml on the event above; -1 when it does not compile. */
static struct sl_value g_ev;

static int eval(const char *yaml)
{
    if (g_ev.type == SL_V_NULL) {
        g_ev = ev_from(EVENT);
    }
    struct sl_condition *c = cond(yaml);
    if (!c) {
        fprintf(stderr, "did not compile: %s", errs());
        return -1;
    }
    int r = sl_condition_eval(c, &g_ev) ? 1 : 0;
    sl_condition_free(c);
    return r;
}

TEST(equals_strings)
{
    CHECK_INT(eval("when: {field: level, equals: DEBUG}"), 1);
    CHECK_INT(eval("when: {field: level, equals: debug}"), 0);  /* case matters */
    CHECK_INT(eval("when: {field: level, equals: \"DEBUG\"}"), 1);
    CHECK_INT(eval("when: {field: fields.service, equals: web}"), 1);
    CHECK_INT(eval("when: {field: \"[fields][env][name]\", equals: prod}"), 1);
    CHECK_INT(eval("when: {field: fields.env.name, equals: dev}"), 0);
    CHECK_INT(eval("when: {field: code, equals: 5}"), 1);       /* string "5" vs YAML 5 */
    CHECK_INT(eval("when: {field: code, equals: 5.0}"), 1);     /* the same number */
    CHECK_INT(eval("when: {field: codef, equals: 5}"), 1);      /* "5.0" is 5, as 5.0 is */
    CHECK_INT(eval("when: {field: codef, equals: '5'}"), 1);    /* quoting does not matter */
    CHECK_INT(eval("when: {field: codef, equals: 6}"), 0);
    CHECK_INT(eval("when: {field: zip, equals: 5}"), 1);        /* "05" reads as 5 */
    CHECK_INT(eval("when: {field: zip, equals: '05'}"), 1);
    CHECK_INT(eval("when: {field: code, equals: five}"), 0);
    CHECK_INT(eval("when: {field: flag, equals: true}"), 1);    /* "true" is true, as true is */
    CHECK_INT(eval("when: {field: flag, equals: yes}"), 1);
    CHECK_INT(eval("when: {field: flag, equals: false}"), 0);
    CHECK_INT(eval("when: {field: level, equals: true}"), 0);
    CHECK_INT(eval("when: {field: codef, in: [4, 5]}"), 1);
    CHECK_INT(eval("when: {field: empty, equals: \"\"}"), 1);
    CHECK_INT(eval("when: {field: empty, equals: ~}"), 0);      /* null is not "" */
    CHECK_INT(eval("when: {field: missing, equals: DEBUG}"), 0);
    CHECK_INT(eval("when: {field: fields, equals: web}"), 0);   /* an object equals nothing */
    CHECK_INT(eval("when: {field: level.sub, equals: DEBUG}"), 0);
}

TEST(equals_numbers_bools_null)
{
    CHECK_INT(eval("when: {field: status, equals: 200}"), 1);
    CHECK_INT(eval("when: {field: status, equals: \"200\"}"), 1);
    CHECK_INT(eval("when: {field: status, equals: 200.0}"), 1);
    CHECK_INT(eval("when: {field: status, equals: 2e2}"), 1);
    CHECK_INT(eval("when: {field: status, equals: 201}"), 0);
    CHECK_INT(eval("when: {field: status, equals: OK}"), 0);
    CHECK_INT(eval("when: {field: status, equals: 0x_c8}"), 0);
    CHECK_INT(eval("when: {field: ratio, equals: 0.5}"), 1);
    CHECK_INT(eval("when: {field: ratio, equals: .5}"), 1);
    CHECK_INT(eval("when: {field: whole, equals: 5}"), 1);
    CHECK_INT(eval("when: {field: whole, equals: nan}"), 0);
    CHECK_INT(eval("when: {field: ok, equals: true}"), 1);
    CHECK_INT(eval("when: {field: ok, equals: True}"), 1);
    CHECK_INT(eval("when: {field: ok, equals: yes}"), 1);
    CHECK_INT(eval("when: {field: ok, equals: false}"), 0);
    CHECK_INT(eval("when: {field: bad, equals: \"false\"}"), 1);
    CHECK_INT(eval("when: {field: ok, equals: 1}"), 0);
    CHECK_INT(eval("when: {field: nil, equals: null}"), 1);
    CHECK_INT(eval("when: {field: nil, equals: ~}"), 1);
    CHECK_INT(eval("when: {field: nil, equals: \"null\"}"), 0);  /* quoted: the text */
    CHECK_INT(eval("when: {field: nil, equals: \"\"}"), 0);
    CHECK_INT(eval("when: {field: nil, equals: }"), 1);
}

TEST(not_equals)
{
    CHECK_INT(eval("when: {field: level, not_equals: DEBUG}"), 0);
    CHECK_INT(eval("when: {field: level, not_equals: INFO}"), 1);
    CHECK_INT(eval("when: {field: missing, not_equals: INFO}"), 1);  /* Logstash: nil != x */
    CHECK_INT(eval("when: {field: status, not_equals: 200}"), 0);
    CHECK_INT(eval("when: {field: tags, not_equals: web}"), 0);
    CHECK_INT(eval("when: {field: tags, not_equals: dev}"), 1);
}

TEST(arrays)
{
    CHECK_INT(eval("when: {field: tags, equals: prod}"), 1);
    CHECK_INT(eval("when: {field: tags, equals: dev}"), 0);
    CHECK_INT(eval("when: {field: tags, in: [dev, prod]}"), 1);
    CHECK_INT(eval("when: {field: tags, in: [dev, qa]}"), 0);
    CHECK_INT(eval("when: {field: nums, equals: 3}"), 1);
    CHECK_INT(eval("when: {field: nums, matches: '^2$'}"), 1);
    CHECK_INT(eval("when: {field: tags, matches: '^pr'}"), 1);
    CHECK_INT(eval("when: {field: tags, matches: '^x'}"), 0);
}

TEST(matches)
{
    CHECK_INT(eval("when: {field: message, matches: '^GET /\\S+ 2\\d\\d$'}"), 1);
    CHECK_INT(eval("when: {field: message, matches: 'index'}"), 1);  /* anywhere */
    CHECK_INT(eval("when: {field: message, matches: '^index'}"), 0);
    CHECK_INT(eval("when: {field: message, matches: '(?i)get'}"), 1);
    CHECK_INT(eval("when: {field: status, matches: '^2\\d\\d$'}"), 1);
    CHECK_INT(eval("when: {field: ratio, matches: '^0\\.5$'}"), 1);
    CHECK_INT(eval("when: {field: whole, matches: '^5$'}"), 1);
    CHECK_INT(eval("when: {field: ok, matches: '^true$'}"), 1);
    CHECK_INT(eval("when: {field: bad, matches: '^false$'}"), 1);
    CHECK_INT(eval("when: {field: nil, matches: ''}"), 0);
    CHECK_INT(eval("when: {field: obj, matches: 'a'}"), 0);
    CHECK_INT(eval("when: {field: missing, matches: ''}"), 0);
    CHECK_INT(eval("when: {field: empty, matches: '^$'}"), 1);
}

TEST(exists)
{
    CHECK_INT(eval("when: {field: level, exists: true}"), 1);
    CHECK_INT(eval("when: {field: level, exists: false}"), 0);
    CHECK_INT(eval("when: {field: missing, exists: true}"), 0);
    CHECK_INT(eval("when: {field: missing, exists: false}"), 1);
    CHECK_INT(eval("when: {field: nil, exists: true}"), 1);  /* present, even if null */
    CHECK_INT(eval("when: {field: fields.env, exists: yes}"), 1);
    CHECK_INT(eval("when: {field: '[fields][env][zone]', exists: no}"), 1);
    CHECK_INT(eval("when: {field: message.x, exists: true}"), 0);
}

TEST(in)
{
    CHECK_INT(eval("when: {field: level, in: [INFO, DEBUG]}"), 1);
    CHECK_INT(eval("when: {field: level, in: [INFO, WARN]}"), 0);
    CHECK_INT(eval("when: {field: status, in: [404, 200]}"), 1);
    CHECK_INT(eval("when: {field: status, in: [\"200\"]}"), 1);
    CHECK_INT(eval("when: {field: missing, in: [x]}"), 0);
    CHECK_INT(eval("when: {field: nil, in: [a, ~]}"), 1);
    CHECK_INT(eval("when:\n  field: level\n  in:\n    - WARN\n    - DEBUG\n"), 1);
}

TEST(logic)
{
    CHECK_INT(eval("when: {and: [{field: level, equals: DEBUG},"
                   " {field: status, equals: 200}]}"),
              1);
    CHECK_INT(eval("when: {and: [{field: level, equals: DEBUG},"
                   " {field: status, equals: 500}]}"),
              0);
    CHECK_INT(eval("when: {or: [{field: level, equals: INFO}, {field: status, equals: 200}]}"), 1);
    CHECK_INT(eval("when: {or: [{field: level, equals: INFO}, {field: status, equals: 500}]}"), 0);
    CHECK_INT(eval("when: {not: {field: level, equals: DEBUG}}"), 0);
    CHECK_INT(eval("when: {not: {not: {field: level, equals: DEBUG}}}"), 1);
    CHECK_INT(eval("when:\n"
                   "  and:\n"
                   "    - {field: fields.service, equals: web}\n"
                   "    - or:\n"
                   "        - {field: level, in: [WARN, ERROR]}\n"
                   "        - not: {field: tags, equals: prod}\n"),
              0);
    CHECK_INT(eval("when:\n"
                   "  and:\n"
                   "    - {field: fields.service, equals: web}\n"
                   "    - or:\n"
                   "        - {field: level, in: [WARN, ERROR]}\n"
                   "        - not: {field: tags, equals: dev}\n"),
              1);
    CHECK_INT(eval("when: {and: [{field: level, exists: true}]}"), 1);
}

TEST(errors)
{
    CHECK_STR(error_of("when: DEBUG\n"),
              "t.yml:1:7: filters[0] (drop): when: a condition must be a map like "
              "{field: F, equals: V}, got a string\n");
    CHECK_STR(error_of("when: [a]\n"),
              "t.yml:1:7: filters[0] (drop): when: a condition must be a map like "
              "{field: F, equals: V}, got a list\n");
    CHECK_STR(error_of("when: {}\n"),
              "t.yml:1:7: filters[0] (drop): when: a condition must be a map like "
              "{field: F, equals: V}, got an empty map\n");
    CHECK_STR(error_of("when:\n"),
              "t.yml:1:6: filters[0] (drop): when: a condition must be a map like "
              "{field: F, equals: V}, got nothing\n");
    CHECK_STR(error_of("when: {field: level}\n"),
              "t.yml:1:7: filters[0] (drop): when: a condition needs one of equals, not_equals, "
              "matches, exists, in, and, or, not\n");
    CHECK_STR(error_of("when: {field: level, equal: DEBUG}\n"),
              "t.yml:1:7: filters[0] (drop): when: a condition needs one of equals, not_equals, "
              "matches, exists, in, and, or, not\n"
              "t.yml:1:22: filters[0] (drop): when: unknown option 'equal' (did you mean "
              "'equals'?)\n");
    CHECK_STR(error_of("when: {field: level, equals: DEBUG, case: no}\n"),
              "t.yml:1:37: filters[0] (drop): when: unknown option 'case'\n");
    CHECK_STR(error_of("when: {field: level, equals: DEBUG, matches: x}\n"),
              "t.yml:1:37: filters[0] (drop): when: 'matches' cannot be combined with 'equals' "
              "in one condition (use and: [...] or or: [...])\n");
    CHECK_STR(error_of("when: {equals: DEBUG}\n"),
              "t.yml:1:8: filters[0] (drop): when: 'equals' needs a 'field'\n");
    CHECK_STR(error_of("when: {field: [a], equals: DEBUG}\n"),
              "t.yml:1:15: filters[0] (drop): when: option 'field' must be a field reference, "
              "got a list\n");
    CHECK_STR(error_of("when: {field: ~, exists: true}\n"),
              "t.yml:1:15: filters[0] (drop): when: option 'field' must be a field reference, "
              "got nothing\n");
    CHECK_STR(error_of("when: {field: 'a..b', equals: x}\n"),
              "t.yml:1:15: filters[0] (drop): when: option 'field' is not a valid field "
              "reference: 'a..b'\n");
    CHECK_STR(error_of("when: {field: level, equals: [a, b]}\n"),
              "t.yml:1:30: filters[0] (drop): when: option 'equals' must be a single value, "
              "got a list\n");
    CHECK_STR(error_of("when: {field: level, not_equals: {a: b}}\n"),
              "t.yml:1:34: filters[0] (drop): when: option 'not_equals' must be a single value, "
              "got a map\n");
    CHECK_STR(error_of("when: {field: level, in: DEBUG}\n"),
              "t.yml:1:26: filters[0] (drop): when: option 'in' must be a non-empty list of "
              "values, got 'DEBUG'\n");
    CHECK_STR(error_of("when: {field: level, in: []}\n"),
              "t.yml:1:26: filters[0] (drop): when: option 'in' must be a non-empty list of "
              "values, got a list\n");
    CHECK_STR(error_of("when: {field: level, in: [a, [b]]}\n"),
              "t.yml:1:30: filters[0] (drop): when: option 'in[1]' must be a single value, "
              "got a list\n");
    CHECK_STR(error_of("when: {field: level, matches: 'a(b'}\n"),
              "t.yml:1:31: filters[0] (drop): when: option 'matches' is not a valid regular "
              "expression: end pattern with unmatched parenthesis\n");
    CHECK_STR(error_of("when: {field: level, matches: ~}\n"),
              "t.yml:1:31: filters[0] (drop): when: option 'matches' must be a regular "
              "expression, got nothing\n");
    CHECK_STR(error_of("when: {field: level, exists: maybe}\n"),
              "t.yml:1:30: filters[0] (drop): when: option 'exists' must be true or false, "
              "got 'maybe'\n");
    CHECK_STR(error_of("when: {field: level, exists: [true]}\n"),
              "t.yml:1:30: filters[0] (drop): when: option 'exists' must be true or false, "
              "got a list\n");
    CHECK_STR(error_of("when: {and: {field: level, equals: x}}\n"),
              "t.yml:1:13: filters[0] (drop): when: option 'and' must be a non-empty list of "
              "conditions, got a map\n");
    CHECK_STR(error_of("when: {or: []}\n"),
              "t.yml:1:12: filters[0] (drop): when: option 'or' must be a non-empty list of "
              "conditions, got a list\n");
    CHECK_STR(error_of("when: {field: level, and: [{field: a, exists: true}]}\n"),
              "t.yml:1:8: filters[0] (drop): when: 'field' cannot be used with 'and' "
              "(put it in the inner conditions)\n");
    CHECK_STR(error_of("when: {not: DEBUG}\n"),
              "t.yml:1:13: filters[0] (drop): when.not: a condition must be a map like "
              "{field: F, equals: V}, got a string\n");
    /* Every problem of the tree is reported, each with its nested position. */
    CHECK_STR(error_of("when:\n"
                       "  and:\n"
                       "    - {field: level, equals: DEBUG}\n"
                       "    - {field: level, equal: DEBUG}\n"
                       "    - or:\n"
                       "        - {field: '[a', exists: true}\n"
                       "        - not: {matches: x}\n"),
              "t.yml:4:7: filters[0] (drop): when.and[1]: a condition needs one of equals, "
              "not_equals, matches, exists, in, and, or, not\n"
              "t.yml:4:22: filters[0] (drop): when.and[1]: unknown option 'equal' (did you mean "
              "'equals'?)\n"
              "t.yml:6:19: filters[0] (drop): when.and[2].or[0]: option 'field' is not a valid "
              "field reference: '[a'\n"
              "t.yml:7:17: filters[0] (drop): when.and[2].or[1].not: 'matches' needs a "
              "'field'\n");
    CHECK_STR(error_of("when: {field: level, equals: DEBUG}\n"), "(compiled)");
    sl_cfg_free(&g_cfg);
}

TEST(nesting_limit)
{
    struct sl_buf y;
    sl_buf_init(&y, 0);
    sl_buf_puts(&y, "when: ");
    for (int i = 0; i < 40; i++) {
        sl_buf_puts(&y, "{not: ");
    }
    sl_buf_puts(&y, "{field: a, exists: true}");
    for (int i = 0; i < 40; i++) {
        sl_buf_puts(&y, "}");
    }
    const char *e = error_of(sl_buf_cstr(&y));
    CHECK(strstr(e, "nested deeper than") != NULL);
    sl_buf_free(&y);
    sl_cfg_free(&g_cfg);
}

struct thread_arg {
    const struct sl_condition *c;
    const struct sl_value *hit, *miss;
    int wrong;
};

static void *hammer(void *p)
{
    struct thread_arg *a = p;
    for (int i = 0; i < 20000; i++) {
        if (!sl_condition_eval(a->c, a->hit) || sl_condition_eval(a->c, a->miss)) {
            a->wrong++;
        }
    }
    return NULL;
}

TEST(threads)
{
    struct sl_condition *c = cond("when: {and: [{field: message, matches: '^GET \\S+ 200$'},"
                                  " {field: tags, in: [prod]}, {not: {field: x, exists: true}}]}");
    CHECK(c != NULL);
    struct sl_value hit = ev_from("{\"message\":\"GET / 200\",\"tags\":[\"prod\"]}");
    struct sl_value miss = ev_from("{\"message\":\"GET / 500\",\"tags\":[\"prod\"]}");
    struct thread_arg args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){c, &hit, &miss, 0};
        pthread_create(&th[i], NULL, hammer, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(args[i].wrong, 0);
    }
    sl_condition_free(c);
    sl_condition_free(NULL);
    sl_value_clear(&hit);
    sl_value_clear(&miss);
    sl_cfg_free(&g_cfg);
}

int main(void)
{
    RUN(equals_strings);
    RUN(equals_numbers_bools_null);
    RUN(not_equals);
    RUN(arrays);
    RUN(matches);
    RUN(exists);
    RUN(in);
    RUN(logic);
    RUN(errors);
    RUN(nesting_limit);
    RUN(threads);
    sl_cfg_free(&g_cfg);
    sl_value_clear(&g_ev);
    return TEST_SUMMARY();
}
