/*
 * filter_mutate_test.c - the `mutate` filter driven in-process: every option,
 * Logstash's conversions, gsub with back-references, nested references,
 * templates, the fixed order of operations, failure tags, and config errors
 * with their exact FILE:LINE:COL text.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/json.h"
#include "sluice/plugin.h"
#include "test.h"

#define FILTER_PLUGIN sl_plugin_filter_mutate
#define FILTER_KEY "mutate"
#define FILTER_ID "pipeline.filters[1] (mutate)"
#include "filter_harness.h"

TEST(test_descriptor)
{
    CHECK_STR(P.name, "mutate");
    CHECK_INT(P.kind, SL_PLUGIN_FILTER);
    CHECK_STR(P.failure_tag, "_mutate_error");
}

TEST(test_empty)
{
    WITH("mutate:\n") {
        EXPECT(w.k, "{\"a\":1}", "{\"a\":1}");
    }
    WITH("mutate:\n  rename: {}\n  gsub: []\n  lowercase: []\n  when: {field: a, equals: 1}\n") {
        EXPECT(w.k, "{\"a\":1}", "{\"a\":1}");
    }
}

TEST(test_rename)
{
    WITH("mutate:\n  rename:\n    a: b\n    \"[n][x]\": top\n    flat: \"[deep][er][y]\"\n"
         "    missing: z\n    p: p.child\n") {
        EXPECT(w.k, "{\"a\":1,\"n\":{\"x\":[1],\"k\":2},\"flat\":\"f\",\"b\":\"old\",\"p\":7}",
               "{\"n\":{\"k\":2},\"b\":1,\"top\":[1],\"deep\":{\"er\":{\"y\":\"f\"}},"
               "\"p\":{\"child\":7}}");
        /* A null value is a value: it is moved too. */
        EXPECT(w.k, "{\"a\":null}", "{\"b\":null}");
    }
    /* A parent can take its own child's value. */
    WITH("mutate: {rename: {\"a.b\": a}}\n") {
        EXPECT(w.k, "{\"a\":{\"b\":{\"c\":1},\"d\":2}}", "{\"a\":{\"c\":1}}");
    }
}

TEST(test_update_replace)
{
    WITH("mutate:\n  update: {a: \"new %{b}\", \"[x][y]\": u}\n"
         "  replace: {c: \"%{[n][m]}-%{missing}\", \"[r][s]\": 5}\n") {
        EXPECT(w.k, "{\"a\":1,\"b\":\"B\",\"n\":{\"m\":[1,2]}}",
               "{\"a\":\"new B\",\"b\":\"B\",\"n\":{\"m\":[1,2]},\"c\":\"1,2-%{missing}\","
               "\"r\":{\"s\":\"5\"}}");
        EXPECT(w.k, "{\"x\":{\"y\":null},\"c\":{\"o\":1}}",
               "{\"x\":{\"y\":\"u\"},\"c\":\"%{[n][m]}-%{missing}\",\"r\":{\"s\":\"5\"}}");
    }
    /* A null value in the map is the empty string (the core's reading of maps). */
    WITH("mutate: {replace: {a: ~}}\n") {
        EXPECT(w.k, "{\"a\":1}", "{\"a\":\"\"}");
    }
}

TEST(test_convert_integer)
{
    WITH("mutate:\n  convert: {a: integer, b: integer, c: integer, d: integer, e: integer,\n"
         "            f: integer, g: integer, h: integer, i: integer, j: integer}\n") {
        EXPECT(w.k, "{\"a\":\"12.7\",\"b\":\" 1,234 \",\"c\":\"0x1A\",\"d\":\"1.5e3\","
                    "\"e\":\"12abc\",\"f\":true,\"g\":-3.9,\"h\":7,\"i\":\"-0x10\",\"j\":false}",
               "{\"a\":12,\"b\":1234,\"c\":26,\"d\":1500,\"e\":12,\"f\":1,\"g\":-3,\"h\":7,"
               "\"i\":-16,\"j\":0}");
        /* Text without a number is left as it was, and the event tagged. */
        EXPECT_RC(w.k, "{\"a\":\"abc\",\"b\":\"\",\"c\":\"9223372036854775808\",\"d\":1e30}",
                  "{\"a\":\"abc\",\"b\":\"\",\"c\":\"9223372036854775808\",\"d\":1e+30,"
                  "\"tags\":[\"_mutate_error\"]}",
                  SL_FILTER_FAIL);
        /* Missing fields, nulls and objects are left alone, without a tag. */
        EXPECT(w.k, "{\"a\":null,\"b\":{\"x\":\"1\"}}", "{\"a\":null,\"b\":{\"x\":\"1\"}}");
    }
    /* Arrays are converted item by item; nulls stay; one bad item tags the event. */
    WITH("mutate: {convert: {\"[n][list]\": integer}}\n") {
        EXPECT_RC(w.k, "{\"n\":{\"list\":[\"1\",\"2.5\",null,\"x\",3]}}",
                  "{\"n\":{\"list\":[1,2,null,\"x\",3]},\"tags\":[\"_mutate_error\"]}",
                  SL_FILTER_FAIL);
    }
}

TEST(test_convert_float)
{
    WITH("mutate:\n  convert: {a: float, b: float, c: float, d: float, e: float, f: float,\n"
         "            g: float}\n") {
        EXPECT(w.k, "{\"a\":\"1.5\",\"b\":\"3\",\"c\":2,\"d\":true,\"e\":\"-2.5e-1\","
                    "\"f\":\" 1,000.25\",\"g\":\"0x10\"}",
               "{\"a\":1.5,\"b\":3.0,\"c\":2.0,\"d\":1.0,\"e\":-0.25,\"f\":1000.25,\"g\":16.0}");
        EXPECT_RC(w.k, "{\"a\":\"1.\",\"b\":\"abc\",\"c\":\"1.5x\",\"d\":\"inf\",\"e\":[\"nan\"]}",
                  "{\"a\":\"1.\",\"b\":\"abc\",\"c\":\"1.5x\",\"d\":\"inf\",\"e\":[\"nan\"],"
                  "\"tags\":[\"_mutate_error\"]}",
                  SL_FILTER_FAIL);
    }
}

TEST(test_convert_boolean)
{
    WITH("mutate:\n  convert: {a: boolean, b: boolean, c: boolean, d: boolean, e: boolean,\n"
         "            f: boolean, g: boolean, h: boolean, i: boolean, j: boolean}\n") {
        EXPECT(w.k, "{\"a\":\"yes\",\"b\":\"T\",\"c\":\"1.0\",\"d\":1,\"e\":0,\"f\":\"\","
                    "\"g\":\"No\",\"h\":1.0,\"i\":false,\"j\":[\"y\",\"FALSE\",\"0.0\"]}",
               "{\"a\":true,\"b\":true,\"c\":true,\"d\":true,\"e\":false,\"f\":false,"
               "\"g\":false,\"h\":true,\"i\":false,\"j\":[true,false,false]}");
        /* Anything else passes through unchanged and untagged, as in Logstash. */
        EXPECT(w.k, "{\"a\":\"maybe\",\"b\":2,\"c\":\"truth\"}",
               "{\"a\":\"maybe\",\"b\":2,\"c\":\"truth\"}");
    }
}

TEST(test_convert_string)
{
    WITH("mutate:\n  convert: {a: string, b: string, c: string, d: string, e: string,\n"
         "            f: string, g: string, h: string, i: string}\n") {
        EXPECT(w.k, "{\"a\":5,\"b\":1.5,\"c\":3.0,\"d\":1e20,\"e\":0.00001,\"f\":true,"
                    "\"g\":[1,false,null,[2,3]],\"h\":\"s\",\"i\":{\"o\":1}}",
               "{\"a\":\"5\",\"b\":\"1.5\",\"c\":\"3.0\",\"d\":\"1.0e+20\",\"e\":\"1.0e-05\","
               "\"f\":\"true\",\"g\":[\"1\",\"false\",null,\"2,3\"],\"h\":\"s\",\"i\":{\"o\":1}}");
        EXPECT(w.k, "{\"a\":-0.5,\"b\":123456789012345.6,\"c\":1e16,\"d\":0.0001,\"e\":-1e-7}",
               "{\"a\":\"-0.5\",\"b\":\"123456789012345.6\",\"c\":\"1.0e+16\",\"d\":\"0.0001\","
               "\"e\":\"-1.0e-07\"}");
    }
}

TEST(test_gsub)
{
    WITH("mutate:\n  gsub:\n"
         "    - a\n    - \"-\"\n    - \"_\"\n"
         "    - \"[n][mail]\"\n    - '(\\w+)@(\\w+)'\n    - '\\2 at \\1 (\\0)'\n"
         "    - b\n    - '(?<user>\\w+)=(?<v>\\d+)'\n    - '\\k<v>:\\k<user>\\\\'\n"
         "    - c\n    - 'x*'\n    - '-'\n"
         "    - list\n    - '^\\s+|\\s+$'\n    - ''\n"
         "    - d\n    - '.'\n    - '<%{tag}\\&>'\n"
         "    - a\n    - '_b'\n    - '\\9\\z'\n") {
        EXPECT(w.k, "{\"a\":\"a-b-c\",\"n\":{\"mail\":\"bob@example, al@host\"},"
                    "\"b\":\"x=1 y=22\",\"c\":\"abc\",\"list\":[\" p \",7,\"q \"],"
                    "\"d\":\"\xc3\xa9t\",\"tag\":\"T\"}",
               "{\"a\":\"a\\\\z_c\",\"n\":{\"mail\":\"example at bob (bob@example), host at al "
               "(al@host)\"},\"b\":\"1:x\\\\ 22:y\\\\\",\"c\":\"-a-b-c-\",\"list\":[\"p\",7,\"q\"],"
               "\"d\":\"<T\xc3\xa9><Tt>\",\"tag\":\"T\"}");
        /* Not strings: left alone. */
        EXPECT(w.k, "{\"a\":5,\"c\":{\"x\":\"abc\"}}", "{\"a\":5,\"c\":{\"x\":\"abc\"}}");
    }
    /* Ruby's ^ and $ are line anchors. */
    WITH("mutate: {gsub: [m, '^', '> ']}\n") {
        EXPECT(w.k, "{\"m\":\"one\\ntwo\"}", "{\"m\":\"> one\\n> two\"}");
    }
}

TEST(test_case_and_strip)
{
    WITH("mutate:\n  uppercase: [a, \"[n][b]\"]\n  lowercase: c\n  strip: [d, e, f]\n") {
        EXPECT(w.k, "{\"a\":\"Get \xc3\xa9t\xc3\xa9\",\"n\":{\"b\":[\"x\",1,\"y\"]},"
                    "\"c\":\"MiXeD \xc3\x80\xce\xa3\",\"d\":\" \\t a b \\n\",\"e\":[\" x \",2],"
                    "\"f\":3}",
               "{\"a\":\"GET \xc3\x89T\xc3\x89\",\"n\":{\"b\":[\"X\",1,\"Y\"]},"
               "\"c\":\"mixed \xc3\xa0\xcf\x83\",\"d\":\"a b\",\"e\":[\"x\",2],\"f\":3}");
        EXPECT(w.k, "{\"a\":true,\"c\":null}", "{\"a\":true,\"c\":null}");
    }
}

TEST(test_remove_fields)
{
    WITH("mutate:\n  remove_fields: [a, \"[n][x]\", \"[q][%{which}]\", missing, \"o.p.q\"]\n") {
        EXPECT(w.k, "{\"a\":1,\"n\":{\"x\":1,\"y\":2},\"q\":{\"k\":1,\"j\":2},\"which\":\"k\","
                    "\"o\":{\"p\":3}}",
               "{\"n\":{\"y\":2},\"q\":{\"j\":2},\"which\":\"k\",\"o\":{\"p\":3}}");
    }
}

/* Logstash's names for them: add_field and remove_field. */
TEST(test_logstash_option_names)
{
    WITH("mutate:\n  remove_field: [a]\n  add_field: {b: \"x-%{c}\"}\n") {
        EXPECT(w.k, "{\"a\":1,\"c\":2}", "{\"c\":2,\"b\":\"x-2\"}");
    }
}

TEST(test_split_join)
{
    WITH("mutate:\n  split: {a: \",\", b: \" \", c: \"::\", d: \",\", e: \",\"}\n"
         "  join: {j: \"|\", k: \", \"}\n") {
        EXPECT(w.k, "{\"a\":\",x,,y,,\",\"b\":\"  p  q\\tr \",\"c\":\"1::2::\",\"d\":\"\","
                    "\"e\":5,\"j\":[\"a\",1,true,null,[\"x\",2.5],{\"o\":1}],\"k\":\"s\"}",
               "{\"a\":[\"\",\"x\",\"\",\"y\"],\"b\":[\"p\",\"q\",\"r\"],\"c\":[\"1\",\"2\"],"
               "\"d\":[],\"e\":5,\"j\":\"a|1|true||x|2.5|{\\\"o\\\":1}\",\"k\":\"s\"}");
    }
}

/* A split is counted before it is made: a string of separators becomes [], a
 * string of tiny pieces over the budget fails the event and stays a string. */
TEST(test_split_budget)
{
    size_t n = 4u << 20;
    char *in = malloc(n + 16), *commas = malloc(n + 16), *out = malloc(n + 64);
    strcpy(in, "{\"a\":\"");
    strcpy(commas, "{\"a\":\"");
    size_t h = strlen(in);
    for (size_t i = 0; i < n; i++) {
        in[h + i] = (i % 2) ? ',' : 'a';
        commas[h + i] = ',';
    }
    strcpy(in + h + n, "\"}");
    strcpy(commas + h + n, "\"}");
    WITH("mutate:\n  split: {a: \",\"}\n") {
        /* 2 Mi pieces of one byte: ~70 MB of values for 4 MB of text. */
        snprintf(out, n + 64, "%.*s,\"tags\":[\"_mutate_error\"]}", (int)(h + n + 1), in);
        EXPECT_RC(w.k, in, out, SL_FILTER_FAIL);
        EXPECT(w.k, commas, "{\"a\":[]}");
        /* Under the budget: as before. */
        in[h + 64] = '\0';
        snprintf(out, n, "%s\"}", in);
        EXPECT(w.k, out, "{\"a\":[\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
                         "\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
                         "\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
                         "\"a\"]}");
    }
    free(in);
    free(commas);
    free(out);
}

TEST(test_add_fields)
{
    WITH("mutate:\n  add_fields:\n    greeting: \"hello %{[user][name]}\"\n"
         "    \"[meta][tags]\": \"%{tags}\"\n    \"%{kind}_seen\": \"yes\"\n"
         "    count: 5\n    day: \"%{+yyyy.MM.dd}\"\n    existing: new\n") {
        EXPECT(w.k, "{\"@timestamp\":\"2026-11-27T06:00:00.123Z\",\"user\":{\"name\":\"ann\"},"
                    "\"tags\":[\"a\",\"b\"],\"kind\":\"login\",\"existing\":{\"old\":1}}",
               "{\"@timestamp\":\"2026-11-27T06:00:00.123Z\",\"user\":{\"name\":\"ann\"},"
               "\"tags\":[\"a\",\"b\"],\"kind\":\"login\",\"existing\":\"new\","
               "\"greeting\":\"hello ann\",\"meta\":{\"tags\":\"a,b\"},\"login_seen\":\"yes\","
               "\"count\":\"5\",\"day\":\"2026.11.27\"}");
    }
}

TEST(test_tags)
{
    WITH("mutate:\n  add_tag: [seen, \"from_%{src}\"]\n  remove_tag: [old, \"%{drop}\"]\n") {
        EXPECT(w.k, "{\"src\":\"web\",\"drop\":\"x\",\"tags\":[\"old\",\"keep\",\"x\",\"old\"]}",
               "{\"src\":\"web\",\"drop\":\"x\",\"tags\":[\"keep\",\"seen\",\"from_web\"]}");
        EXPECT(w.k, "{}", "{\"tags\":[\"seen\",\"from_%{src}\"]}");
    }
}

TEST(test_order)
{
    /* Written backwards; run as rename, update, replace, convert, gsub, uppercase,
     * lowercase, strip, remove_fields, split, join, add_fields, add_tag, remove_tag. */
    WITH("mutate:\n"
         "  remove_tag: [t1]\n"
         "  add_tag: [t1, t2]\n"
         "  add_fields: {summary: \"%{n}|%{parts}|%{gone}|%{word}\"}\n"
         "  join: {parts: \"+\"}\n"
         "  split: {parts: \",\"}\n"
         "  remove_fields: [gone]\n"
         "  strip: [word]\n"
         "  lowercase: [word]\n"
         "  uppercase: [word]\n"
         "  gsub: [n, '0', '9']\n"
         "  convert: {n: string}\n"
         "  replace: {word: \" MiX \"}\n"
         "  update: {n: \"1%{n}\"}\n"
         "  rename: {old: n}\n") {
        EXPECT(w.k, "{\"old\":100,\"parts\":\"a,b\",\"gone\":1}",
               "{\"parts\":\"a+b\",\"n\":\"1199\",\"word\":\"mix\","
               "\"summary\":\"1199|a+b|%{gone}|mix\",\"tags\":[\"t2\"]}");
    }
}

TEST(test_tag_on_failure)
{
    WITH("mutate:\n  convert: {a: integer}\n  tag_on_failure: [bad, worse]\n") {
        EXPECT_RC(w.k, "{\"a\":\"x\",\"tags\":[\"bad\"]}",
                  "{\"a\":\"x\",\"tags\":[\"bad\",\"worse\"]}", SL_FILTER_FAIL);
    }
    WITH("mutate:\n  convert: {a: float}\n  tag_on_failure: []\n") {
        EXPECT_RC(w.k, "{\"a\":\"x\"}", "{\"a\":\"x\"}", SL_FILTER_FAIL);
    }
}

TEST(test_config_errors)
{
    struct sl_cfg cfg;
    /* What the option table checks: shapes, item types, field lists, unknown keys. */
    CHECK(load(&cfg, "mutate:\n"
                     "  rename: [a]\n"
                     "  update: {\"a..b\": x, c: [1]}\n"
                     "  replace: {d: \"%{unterminated\"}\n"
                     "  convert: {e: int, \"[f\": float, g: ~}\n"
                     "  gsub: [a, b]\n"
                     "  uppercase: [\"x.\"]\n"
                     "  lowercase: {a: 1}\n"
                     "  strip: [\"[]\"]\n"
                     "  remove_fields: [\"%{}\"]\n"
                     "  split: {h: \"\"}\n"
                     "  join: j\n"
                     "  add_fields: {\"[k\": v}\n"
                     "  add_tag: [[x]]\n"
                     "  tag_on_failure: {a: b}\n"
                     "  renam: {a: b}\n") == NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:2:11: pipeline.filters[1] (mutate): option 'rename' must be a map\n"
              "t.yml:3:26: pipeline.filters[1] (mutate): option 'update': the value of 'c' must "
              "be a scalar\n"
              "t.yml:7:15: pipeline.filters[1] (mutate): option 'uppercase': 'x.' is not a "
              "valid field reference\n"
              "t.yml:8:14: pipeline.filters[1] (mutate): option 'lowercase' must be a string or "
              "a list of strings, got a map\n"
              "t.yml:9:11: pipeline.filters[1] (mutate): option 'strip': '[]' is not a valid "
              "field reference\n"
              "t.yml:12:9: pipeline.filters[1] (mutate): option 'join' must be a map\n"
              "t.yml:14:13: pipeline.filters[1] (mutate): option 'add_tag[0]' must be a string, "
              "got a list\n"
              "t.yml:15:19: pipeline.filters[1] (mutate): option 'tag_on_failure' must be a "
              "string or a list of strings, got a map\n"
              "t.yml:16:3: pipeline.filters[1] (mutate): unknown option 'renam' (did you mean "
              "'rename'?)\n");
    sl_cfg_free(&cfg);

    /* What init checks once the table reads cleanly (the core runs init only then):
     * references in maps, templates, convert types, gsub triples, separators. Errors
     * stand at the entry at fault - a map entry's value (also for a bad key: the core
     * has no key positions), a list's item - and name it. A null map value reads as "". */
    CHECK(load(&cfg, "mutate:\n"
                     "  rename: {a: ~}\n"
                     "  update: {\"a..b\": x, c: y}\n"
                     "  replace: {d: \"%{unterminated\"}\n"
                     "  convert: {e: int, \"[f\": float, g: ~}\n"
                     "  gsub: [a, b]\n"
                     "  remove_fields: [\"%{}\"]\n"
                     "  split: {h: \"\"}\n"
                     "  join: {j: \",\"}\n"
                     "  add_fields: {\"[k\": v}\n") == NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:2:15: pipeline.filters[1] (mutate): option 'rename': '' is not a valid "
              "field reference\n"
              "t.yml:3:20: pipeline.filters[1] (mutate): option 'update': 'a..b' is not a valid "
              "field reference\n"
              "t.yml:4:16: pipeline.filters[1] (mutate): option 'replace': '%{unterminated': "
              "unterminated '%{' at offset 0\n"
              "t.yml:5:16: pipeline.filters[1] (mutate): option 'convert': type of 'e' must be "
              "one of integer, float, boolean, string, got 'int'\n"
              "t.yml:5:27: pipeline.filters[1] (mutate): option 'convert': '[f' is not a valid "
              "field reference\n"
              "t.yml:5:37: pipeline.filters[1] (mutate): option 'convert': type of 'g' must be "
              "one of integer, float, boolean, string, got ''\n"
              "t.yml:6:10: pipeline.filters[1] (mutate): option 'gsub' must be a list of field, "
              "pattern, replacement triples, got 2 items\n"
              "t.yml:7:19: pipeline.filters[1] (mutate): option 'remove_fields': '%{}': empty "
              "'%{}' at offset 0\n"
              "t.yml:8:14: pipeline.filters[1] (mutate): option 'split': separator of 'h' must "
              "not be empty\n"
              "t.yml:10:22: pipeline.filters[1] (mutate): option 'add_fields': '[k' is not a "
              "valid field reference\n");
    sl_cfg_free(&cfg);

    /* gsub: item types, a bad field and a pattern Oniguruma refuses. */
    CHECK(load(&cfg, "mutate:\n  gsub: [a, {x: 1}, c]\n") == NULL);
    CHECK_STR(errs(&cfg), "t.yml:2:13: pipeline.filters[1] (mutate): option 'gsub[1]' must be a "
                          "string, got a map\n");
    sl_cfg_free(&cfg);
    CHECK(load(&cfg, "mutate:\n  gsub: [\"a.\", x, y, b, \"(x\", y, c, z, \"%{\"]\n") == NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:2:10: pipeline.filters[1] (mutate): option 'gsub': 'a.' is not a valid "
              "field reference\n"
              "t.yml:2:25: pipeline.filters[1] (mutate): option 'gsub': pattern '(x' does not "
              "compile: end pattern with unmatched parenthesis\n"
              "t.yml:2:40: pipeline.filters[1] (mutate): option 'gsub': '%{': "
              "unterminated '%{' at offset 0\n");
    sl_cfg_free(&cfg);
    /* A whole triple, then an incomplete one: the error stands at its first item. */
    CHECK(load(&cfg, "mutate: {gsub: [a, b, c, d]}\n") == NULL);
    CHECK_STR(errs(&cfg), "t.yml:1:26: pipeline.filters[1] (mutate): option 'gsub' must be a "
                          "list of field, pattern, replacement triples, got 4 items\n");
    sl_cfg_free(&cfg);
    /* One string is a list of one, with no item node to point at: not a triple. */
    CHECK(load(&cfg, "mutate: {gsub: x}\n") == NULL);
    CHECK_STR(errs(&cfg), "t.yml:1:16: pipeline.filters[1] (mutate): option 'gsub' must be a "
                          "list of field, pattern, replacement triples, got 1 item\n");
    sl_cfg_free(&cfg);
    CHECK(load(&cfg, "mutate: {rename: {a: \"b..\"}}\n") == NULL);
    CHECK_STR(errs(&cfg), "t.yml:1:22: pipeline.filters[1] (mutate): option 'rename': 'b..' is "
                          "not a valid field reference\n");
    sl_cfg_free(&cfg);
}

TEST(test_gsub_backtracking_is_bounded)
{
    /* A catastrophic pattern gives up (value kept, event tagged) instead of stalling. */
    WITH("mutate: {gsub: [m, '^(\\w+\\s?)*$', x]}\n") {
        EXPECT_RC(w.k, "{\"m\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\"}",
                  "{\"m\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\","
                  "\"tags\":[\"_mutate_error\"]}",
                  SL_FILTER_FAIL);
    }
}

/* One instance, several threads at once: filter() keeps no state in the instance. */
static void *hammer(void *inst)
{
    for (int i = 0; i < 300; i++) {
        EXPECT(inst, "{\"m\":\" A-B-\xc3\x89 \",\"n\":\"7\"}",
               "{\"m\":\"a_b_\xc3\xa9\",\"n\":7,\"k\":\"7/a_b_\xc3\xa9\"}");
    }
    return NULL;
}

TEST(test_threads)
{
    WITH("mutate:\n  gsub: [m, '(\\w)-', '\\1_']\n  lowercase: [m]\n  strip: [m]\n"
         "  convert: {n: integer}\n  add_fields: {k: \"%{n}/%{m}\"}\n") {
        pthread_t th[4];
        for (int i = 0; i < 4; i++) {
            pthread_create(&th[i], NULL, hammer, w.k);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
        }
    }
}

TEST(test_free_null)
{
    unload(NULL);
}

int main(void)
{
    RUN(test_descriptor);
    RUN(test_empty);
    RUN(test_rename);
    RUN(test_update_replace);
    RUN(test_convert_integer);
    RUN(test_convert_float);
    RUN(test_convert_boolean);
    RUN(test_convert_string);
    RUN(test_gsub);
    RUN(test_case_and_strip);
    RUN(test_remove_fields);
    RUN(test_logstash_option_names);
    RUN(test_split_join);
    RUN(test_split_budget);
    RUN(test_add_fields);
    RUN(test_tags);
    RUN(test_order);
    RUN(test_tag_on_failure);
    RUN(test_config_errors);
    RUN(test_gsub_backtracking_is_bounded);
    RUN(test_threads);
    RUN(test_free_null);
    return TEST_SUMMARY();
}
