/*
 * filter_grok_test.c - the grok filter driven through the core, as the
 * pipeline runs it (agg_instance_new, agg_instance_filter): options, exact
 * captures (values and types), Logstash's capture semantics (arrays,
 * overwrite, empty captures), tags (tag_on_failure absent, null, [] or a
 * list), several patterns in order, the pattern sources (built-in,
 * patterns_dir, pattern_definitions), every config error with its exact
 * FILE:LINE:COL text, the match budget (_groktimeout), four threads on one
 * instance, and every pattern of the built-in library on real-world lines.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "grok.h"
#include "sluice/arena.h"
#include "sluice/config.h"
#include "sluice/json.h"
#include "sluice/metrics.h"
#include "sluice/plugin.h"
#include "sluice/regex.h"
#include "test.h"

#define FILTER_PLUGIN sl_plugin_filter_grok
#define FILTER_KEY "grok"
#define FILTER_ID "filters[0] (grok)"
#include "filter_harness.h"

/* ---- helpers ------------------------------------------------------------ */

static struct sl_cfg cfg;
static struct sl_metrics *metrics;

/* Loads "grok:\n<opts>" (opts indented by two spaces) and makes the instance
 * through the core, with the metrics registry when one is set. */
static void *mk(const char *opts)
{
    char yml[8192];
    snprintf(yml, sizeof(yml), "grok:\n%s", opts);
    sl_cfg_free(&cfg);
    memset(&cfg, 0, sizeof(cfg));
    if (sl_cfg_load_string(&cfg, "t.yml", yml, strlen(yml)) != 0) {
        fprintf(stderr, "YAML: %s", sl_buf_cstr(&cfg.errors));
        return NULL;
    }
    struct agg_instance_args a = {.id = FILTER_ID, .metrics = metrics};
    return agg_instance_new(&P, &cfg, sl_cfg_get(cfg.root, FILTER_KEY), &a);
}

/* An event from JSON text. */
static struct sl_value ev_json(const char *json)
{
    struct sl_value v = {0};
    char err[128];
    if (sl_json_parse(json, strlen(json), &v, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "bad test JSON: %s\n", err);
    }
    return v;
}

static struct sl_value ev_msg(const char *msg)
{
    struct sl_value v = {0};
    sl_value_set_object(&v);
    sl_value_set_cstr(sl_obj_putc(&v, "message"), msg);
    return v;
}

/* The event as compact JSON (static buffer: one at a time). */
static const char *js(const struct sl_value *v)
{
    static struct sl_buf b;
    if (b.max == 0) {
        sl_buf_init(&b, 0);
    }
    sl_buf_reset(&b);
    sl_json_write(&b, v, NULL);
    return sl_buf_cstr(&b);
}

/* Runs opts on a JSON event; returns the event's JSON after filtering and the
 * filter's return code in *rc. */
static const char *run_yaml(const char *opts, const char *event_json, int *rc)
{
    void *f = mk(opts);
    if (!f) {
        fprintf(stderr, "init failed: %s", errs(&cfg));
        *rc = 99;
        return "(init failed)";
    }
    struct sl_value ev = ev_json(event_json);
    *rc = run(f, &ev);
    const char *out = js(&ev);
    sl_value_clear(&ev);
    unload(f);
    return out;
}

/* Expects init to fail with exactly this error text. */
static void expect_error(const char *opts, const char *want, int line)
{
    void *f = mk(opts);
    if (f) {
        fprintf(stderr, "%s:%d: init succeeded, expected: %s", __FILE__, line, want);
        t_failed_checks++;
        unload(f);
        return;
    }
    if (strcmp(errs(&cfg), want) != 0) {
        fprintf(stderr, "%s:%d: errors:\n%s\nexpected:\n%s", __FILE__, line, errs(&cfg), want);
        t_failed_checks++;
    }
}
#define EXPECT_ERROR(opts, want) expect_error(opts, want, __LINE__)

/* ---- options and capture semantics -------------------------------------- */

TEST(descriptor)
{
    CHECK_STR(P.name, "grok");
    CHECK_INT(P.kind, SL_PLUGIN_FILTER);
    CHECK_STR(P.failure_tag, "_grokparsefailure");
}

TEST(captures_and_types)
{
    int rc;
    CHECK_STR(run_yaml("  patterns: ['%{IP:client} %{WORD:verb} %{NUMBER:bytes:int} "
                       "%{NUMBER:secs:float} %{NUMBER:raw}']\n",
                       "{\"message\":\"10.0.0.1 GET 512 0.25 7\"}", &rc),
              "{\"message\":\"10.0.0.1 GET 512 0.25 7\",\"client\":\"10.0.0.1\",\"verb\":\"GET\","
              "\"bytes\":512,\"secs\":0.25,\"raw\":\"7\"}");
    CHECK_INT(rc, SL_FILTER_KEEP);
    /* Lenient, as Logstash's to_i / to_f: the number a text starts with, else 0;
     * an integer beyond int64 saturates. */
    CHECK_STR(run_yaml("  patterns: ['^%{NOTSPACE:a:int} %{NOTSPACE:b:float} %{NOTSPACE:c:int} "
                       "%{NOTSPACE:d:float} %{NOTSPACE:e:int}$']\n",
                       "{\"message\":\"12x 1.5.2 99999999999999999999 1e3 -0\"}", &rc),
              "{\"message\":\"12x 1.5.2 99999999999999999999 1e3 -0\",\"a\":12,\"b\":1.5,"
              "\"c\":9223372036854775807,\"d\":1000.0,\"e\":0}");
    CHECK_STR(run_yaml("  patterns: ['^%{NOTSPACE:a:int} %{NOTSPACE:b:float} %{NOTSPACE:c:int} "
                       "%{NOTSPACE:d:float} %{NOTSPACE:e:int} %{NOTSPACE:f:float} "
                       "%{NOTSPACE:g:int} %{NOTSPACE:h:float}$']\n",
                       "{\"message\":\"- abc 1_000 .5 -7.9 inf 0x1F -99999999999999999999\"}", &rc),
              "{\"message\":\"- abc 1_000 .5 -7.9 inf 0x1F -99999999999999999999\",\"a\":0,"
              "\"b\":0.0,\"c\":1000,\"d\":0.5,\"e\":-7,\"f\":0.0,\"g\":0,"
              "\"h\":-1e+20}");
}

TEST(named_groups_and_nested_targets)
{
    int rc;
    CHECK_STR(run_yaml("  patterns: ['^(?<[http][verb]>\\w+) (?<url.path>/\\S*) "
                       "%{INT:[http][status]:int}(?<@tail>.*)$']\n",
                       "{\"message\":\"GET /x 404!\"}", &rc),
              "{\"message\":\"GET /x 404!\",\"http\":{\"verb\":\"GET\",\"status\":404},"
              "\"url\":{\"path\":\"/x\"},\"@tail\":\"!\"}");
    /* A back-reference to a named group, which the engine renames. */
    CHECK_STR(run_yaml("  patterns: ['^(?<q>[\"'']).*?\\k<q> (?<rest>.+)$']\n",
                       "{\"message\":\"'a\\\"b' tail\"}", &rc),
              "{\"message\":\"'a\\\"b' tail\",\"q\":\"'\",\"rest\":\"tail\"}");
    /* (?<= and (?<! are look-behinds, not names; (?# comments ) pass through. */
    CHECK_STR(run_yaml("  patterns: ['(?<=id=)(?<id>\\d+)(?#the id)\\b(?<!0)']\n",
                       "{\"message\":\"x id=120 id=42\"}", &rc),
              "{\"message\":\"x id=120 id=42\",\"id\":\"42\"}");
    /* "%{" and "(?<" inside a character class are plain characters. */
    CHECK_STR(run_yaml("  patterns: ['^(?<a>[%{(?<]+)$']\n", "{\"message\":\"{%<(?\"}", &rc),
              "{\"message\":\"{%<(?\",\"a\":\"{%<(?\"}");
}

TEST(existing_fields_and_overwrite)
{
    int rc;
    /* Without overwrite: a string becomes [old, new], an array grows, a
     * number (or object) wins and the capture is dropped. */
    CHECK_STR(run_yaml("  patterns: ['%{WORD:s} %{WORD:a} %{WORD:n} %{WORD:o}']\n",
                       "{\"message\":\"w1 w2 w3 w4\",\"s\":\"old\",\"a\":[\"x\"],\"n\":5,"
                       "\"o\":{\"k\":1}}",
                       &rc),
              "{\"message\":\"w1 w2 w3 w4\",\"s\":[\"old\",\"w1\"],\"a\":[\"x\",\"w2\"],\"n\":5,"
              "\"o\":{\"k\":1}}");
    /* Capturing into the source field itself: Logstash's [original, capture]. */
    CHECK_STR(run_yaml("  patterns: ['^%{WORD:level} %{GREEDYDATA:message}$']\n",
                       "{\"message\":\"WARN disk 91% full\"}", &rc),
              "{\"message\":[\"WARN disk 91% full\",\"disk 91% full\"],\"level\":\"WARN\"}");
    CHECK_STR(run_yaml("  patterns: ['^%{WORD:level} %{GREEDYDATA:message}$']\n"
                       "  overwrite: [message, n]\n",
                       "{\"message\":\"WARN disk 91% full\",\"n\":5}", &rc),
              "{\"message\":\"disk 91% full\",\"n\":5,\"level\":\"WARN\"}");
    CHECK_STR(run_yaml("  patterns: ['^%{WORD:[n]:int}$']\n  overwrite: n\n",
                       "{\"message\":\"7\",\"n\":{\"deep\":[1]}}", &rc),
              "{\"message\":\"7\",\"n\":7}");
    /* Two groups for one field in one pattern: both values, in order. */
    CHECK_STR(run_yaml("  patterns: ['%{INT:port} -> %{INT:port}']\n",
                       "{\"message\":\"80 -> 8080\"}", &rc),
              "{\"message\":\"80 -> 8080\",\"port\":[\"80\",\"8080\"]}");
    /* Nested source field, captured into a sibling and into itself. */
    CHECK_STR(run_yaml("  field: '[log][line]'\n  patterns: ['^%{WORD:[log][level]} "
                       "%{GREEDYDATA:[log][line]}$']\n  overwrite: ['[log][line]']\n",
                       "{\"log\":{\"line\":\"INFO up\"}}", &rc),
              "{\"log\":{\"line\":\"up\",\"level\":\"INFO\"}}");
}

/* Two groups for one field of which only one takes part: the other is skipped,
 * or (keep_empty_captures) stored as null before the one that matched. */
TEST(alternatives_into_one_field)
{
    int rc;
    const char *pat = "  patterns: ['^(?:%{INT:n:int}|%{WORD:n})$']\n";
    CHECK_STR(run_yaml(pat, "{\"message\":\"12\"}", &rc), "{\"message\":\"12\",\"n\":12}");
    CHECK_STR(run_yaml(pat, "{\"message\":\"ab\"}", &rc), "{\"message\":\"ab\",\"n\":\"ab\"}");
    char opts[256];
    snprintf(opts, sizeof(opts), "%s  keep_empty_captures: true\n", pat);
    /* 12 first, then a null that an existing number does not take... */
    CHECK_STR(run_yaml(opts, "{\"message\":\"12\"}", &rc), "{\"message\":\"12\",\"n\":12}");
    /* ...or a null first, which the string then replaces. */
    CHECK_STR(run_yaml(opts, "{\"message\":\"ab\"}", &rc), "{\"message\":\"ab\",\"n\":\"ab\"}");
    /* A string already there: [old, null, "ab"]. */
    CHECK_STR(run_yaml(opts, "{\"message\":\"ab\",\"n\":\"x\"}", &rc),
              "{\"message\":\"ab\",\"n\":[\"x\",null,\"ab\"]}");
    CHECK_INT(rc, SL_FILTER_KEEP);
}

/* Typed captures meet existing values as strings do: appended, or replaced
 * under overwrite. */
TEST(typed_captures_and_existing_fields)
{
    int rc;
    const char *pat = "  patterns: ['^%{NOTSPACE:n:int} %{NOTSPACE:f:float}$']\n";
    CHECK_STR(run_yaml(pat, "{\"message\":\"5 2.5\",\"n\":\"x\",\"f\":[1]}", &rc),
              "{\"message\":\"5 2.5\",\"n\":[\"x\",5],\"f\":[1,2.5]}");
    CHECK_STR(run_yaml(pat, "{\"message\":\"5x -1e2\",\"n\":[true],\"f\":null}", &rc),
              "{\"message\":\"5x -1e2\",\"n\":[true,5],\"f\":-100.0}");
    char opts[256];
    snprintf(opts, sizeof(opts), "%s  overwrite: [n, '[f]']\n", pat);
    CHECK_STR(run_yaml(opts, "{\"message\":\"5 2.5\",\"n\":\"x\",\"f\":{\"k\":[1]}}", &rc),
              "{\"message\":\"5 2.5\",\"n\":5,\"f\":2.5}");
    /* Not listed in overwrite: a number already there wins. */
    CHECK_STR(run_yaml(pat, "{\"message\":\"5 2.5\",\"n\":7,\"f\":false}", &rc),
              "{\"message\":\"5 2.5\",\"n\":7,\"f\":false}");
}

TEST(nested_field_names)
{
    int rc;
    const char *pat = "  patterns: ['^%{WORD:[a][b]} %{INT:[a][c]:int} %{WORD:a.d.e}$']\n";
    CHECK_STR(run_yaml(pat, "{\"message\":\"w 3 z\"}", &rc),
              "{\"message\":\"w 3 z\",\"a\":{\"b\":\"w\",\"c\":3,\"d\":{\"e\":\"z\"}}}");
    /* An object there keeps its other fields; a string on the way is replaced. */
    CHECK_STR(run_yaml(pat, "{\"message\":\"w 3 z\",\"a\":{\"z\":1,\"d\":\"s\"}}", &rc),
              "{\"message\":\"w 3 z\",\"a\":{\"z\":1,\"d\":{\"e\":\"z\"},\"b\":\"w\",\"c\":3}}");
    CHECK_STR(run_yaml(pat, "{\"message\":\"w 3 z\",\"a\":\"str\"}", &rc),
              "{\"message\":\"w 3 z\",\"a\":{\"b\":\"w\",\"c\":3,\"d\":{\"e\":\"z\"}}}");
    /* "a.b" and "[a][b]" are one field: the second capture appends. */
    CHECK_STR(run_yaml("  patterns: ['^%{WORD:a.b} %{WORD:[a][b]}$']\n",
                       "{\"message\":\"x y\"}", &rc),
              "{\"message\":\"x y\",\"a\":{\"b\":[\"x\",\"y\"]}}");
}

/*
 * Captures that share parent paths, as the ECS patterns' do ([http][request][method],
 * [http][version], [http][response][body][bytes], ...): the parents are resolved once
 * per match, so these pin down that the result is what looking each path up gives.
 */
TEST(shared_parent_paths)
{
    int rc;
    const char *pat = "  patterns: ['^%{WORD:[h][r][m]} %{WORD:[u][o]} %{WORD:[h][v]} "
                      "%{INT:[h][s][c]:int} %{INT:[h][s][b][n]:int} %{WORD:[h][r][f]} "
                      "(?:%{WORD:[h][s][q]}|-) %{WORD:[u][p]}$']\n";
    const char *msg = "{\"message\":\"GET p 1 200 5 ref - z\"";
    char ev[256];
    snprintf(ev, sizeof(ev), "%s}", msg);
    CHECK_STR(run_yaml(pat, ev, &rc),
              "{\"message\":\"GET p 1 200 5 ref - z\",\"h\":{\"r\":{\"m\":\"GET\",\"f\":\"ref\"},"
              "\"v\":\"1\",\"s\":{\"c\":200,\"b\":{\"n\":5}}},\"u\":{\"o\":\"p\",\"p\":\"z\"}}");
    CHECK_INT(rc, SL_FILTER_KEEP);
    /* Objects already there keep their members and get the new ones after them; a
     * string already there becomes an array; a string on the way is replaced. */
    snprintf(ev, sizeof(ev), "%s,\"h\":{\"v\":\"old\",\"r\":{\"x\":1},\"s\":\"str\"},"
             "\"u\":{\"p\":[\"a\"]}}", msg);
    CHECK_STR(run_yaml(pat, ev, &rc),
              "{\"message\":\"GET p 1 200 5 ref - z\",\"h\":{\"v\":[\"old\",\"1\"],"
              "\"r\":{\"x\":1,\"m\":\"GET\",\"f\":\"ref\"},\"s\":{\"c\":200,\"b\":{\"n\":5}}},"
              "\"u\":{\"p\":[\"a\",\"z\"],\"o\":\"p\"}}");
    /* An existing number is left alone; a group that did not take part is null
     * under keep_empty_captures, in the object the match made. */
    char opts[512];
    snprintf(opts, sizeof(opts), "%s  keep_empty_captures: true\n", pat);
    snprintf(ev, sizeof(ev), "%s,\"h\":{\"v\":7}}", msg);
    CHECK_STR(run_yaml(opts, ev, &rc),
              "{\"message\":\"GET p 1 200 5 ref - z\",\"h\":{\"v\":7,\"r\":{\"m\":\"GET\",\"f\":\"ref\"},"
              "\"s\":{\"c\":200,\"b\":{\"n\":5},\"q\":null}},\"u\":{\"o\":\"p\",\"p\":\"z\"}}");
    /* One capture's field is another's parent: each is looked up, as before. */
    CHECK_STR(run_yaml("  patterns: ['^%{WORD:[a]} %{WORD:[a][b]} %{WORD:[a][b][c]}$']\n",
                       "{\"message\":\"x y z\"}", &rc),
              "{\"message\":\"x y z\",\"a\":{\"b\":{\"c\":\"z\"}}}");
}

/*
 * The top-level keys of a pattern's captures are found in one pass over the
 * event (at most 32 of them; beyond, each capture is looked up): both ways
 * give what looking each one up does - an existing string becomes an array,
 * an existing number stays, new keys come after the event's own, in order.
 */
TEST(many_top_level_captures)
{
    for (int n = 3; n <= 40; n += 37) {
        char pat[2048] = "  patterns: ['^", msg[512] = "", want[4096], ev[4096];
        size_t pl = strlen(pat), ml = 0;
        for (int i = 0; i < n; i++) {
            pl += (size_t)snprintf(pat + pl, sizeof(pat) - pl, "%s%%{WORD:k%d}", i ? " " : "", i);
            ml += (size_t)snprintf(msg + ml, sizeof(msg) - ml, "%sw%d", i ? " " : "", i);
        }
        snprintf(pat + pl, sizeof(pat) - pl, "$']\n");
        snprintf(ev, sizeof(ev), "{\"k1\":\"old\",\"message\":\"%s\",\"k2\":7}", msg);
        size_t wl = (size_t)snprintf(want, sizeof(want),
                                     "{\"k1\":[\"old\",\"w1\"],\"message\":\"%s\",\"k2\":7,"
                                     "\"k0\":\"w0\"", msg);
        for (int i = 3; i < n; i++) {
            wl += (size_t)snprintf(want + wl, sizeof(want) - wl, ",\"k%d\":\"w%d\"", i, i);
        }
        snprintf(want + wl, sizeof(want) - wl, "}");
        int rc;
        CHECK_STR(run_yaml(pat, ev, &rc), want);
        CHECK_INT(rc, SL_FILTER_KEEP);
    }
}

/* The reference for capture storage: each capture's field looked up from the
 * top (sl_fieldref_put), then stored the Logstash way. */
static void ref_store(struct sl_value *ev, const char *field, const char *text)
{
    struct sl_fieldref r;
    CHECK_INT(sl_fieldref_init(&r, field), 0);
    struct sl_value *cur = sl_fieldref_put(&r, ev);
    if (cur->type == SL_V_NULL) {
        sl_value_set_cstr(cur, text);
    } else if (cur->type == SL_V_ARRAY) {
        sl_value_set_cstr(sl_arr_push(cur), text);
    } else if (cur->type == SL_V_STRING) {
        struct sl_value old = {0};
        sl_value_move(&old, cur);
        sl_value_set_array(cur);
        sl_value_move(sl_arr_push(cur), &old);
        sl_value_set_cstr(sl_arr_push(cur), text);
    }
    sl_fieldref_free(&r);
}

/* Random events with whatever already sits on the captures' paths (objects,
 * strings, numbers, arrays, null, at any level): the filter stores exactly
 * what looking each capture up from the top stores. */
TEST(captures_match_lookups_on_random_events)
{
    static const char *const fields[] = {"[h][r][m]", "[u][o]", "[h][v]", "[h][s][c]",
                                         "[h][s][b][n]", "z", "[h][r][f]", "[u][p]"};
    static const char *const paths[] = {"h", "u", "z", "h.r", "h.s", "h.v", "h.s.b", "u.o",
                                        "h.r.m", "h.s.b.n", "u.p", "h.x", "y"};
    static const char *const vals[] = {"{}", "\"str\"", "7", "[\"a\"]", "null", "{\"q\":1}"};
    void *f = mk("  patterns: ['^%{WORD:[h][r][m]} %{WORD:[u][o]} %{WORD:[h][v]} "
                 "%{WORD:[h][s][c]} %{WORD:[h][s][b][n]} %{WORD:z} %{WORD:[h][r][f]} "
                 "%{WORD:[u][p]}$']\n");
    CHECK(f != NULL);
    if (!f) {
        return;
    }
    const char *words[] = {"w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7"};
    uint64_t rng = 12345;
    for (int round = 0; round < 3000; round++) {
        /* A few paths set, in a random order, onto an event with the message. */
        struct sl_value ev = ev_msg("w0 w1 w2 w3 w4 w5 w6 w7");
        int n = (int)(rng % 6);
        for (int i = 0; i < n; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            const char *path = paths[(rng >> 33) % SL_ARRAY_LEN(paths)];
            const char *val = vals[(rng >> 45) % SL_ARRAY_LEN(vals)];
            struct sl_fieldref r;
            if (sl_fieldref_init(&r, path) == 0) {
                struct sl_value v = ev_json(val);
                struct sl_value *slot = sl_fieldref_put(&r, &ev);
                if (slot) {
                    sl_value_move(slot, &v);
                }
                sl_value_clear(&v);
            }
            sl_fieldref_free(&r);
        }
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        struct sl_value want = {0};
        sl_value_copy(&want, &ev);
        for (size_t c = 0; c < SL_ARRAY_LEN(fields); c++) {
            ref_store(&want, fields[c], words[c]);
        }
        char expect[4096];
        snprintf(expect, sizeof(expect), "%s", js(&want));
        CHECK_INT(run(f, &ev), SL_FILTER_KEEP);
        CHECK_STR(js(&ev), expect);
        sl_value_clear(&ev);
        sl_value_clear(&want);
        if (t_failed_checks) {
            break;  /* one report is enough */
        }
    }
    unload(f);
}

/* A line no pattern matches leaves the event exactly as it was (bar the tag). */
TEST(miss_leaves_event_alone)
{
    int rc;
    const char *ev = "{\"message\":\"no digits here\",\"n\":\"x\",\"a\":{\"b\":[1,{}]},"
                     "\"tags\":[\"t\"]}";
    CHECK_STR(run_yaml("  patterns: ['^%{INT:n:int}$', '%{INT:[a][b]} %{WORD:z}']\n"
                       "  tag_on_failure: []\n  keep_empty_captures: true\n", ev, &rc), ev);
    CHECK_INT(rc, SL_FILTER_FAIL);
    CHECK_STR(run_yaml("  patterns: ['^%{INT:n}$', '%{INT:z}']\n  break_on_match: false\n"
                       "  overwrite: [n]\n  tag_on_failure: []\n", ev, &rc), ev);
    CHECK_INT(rc, SL_FILTER_FAIL);
    /* A null source is matched as "", as a missing one is. */
    CHECK_STR(run_yaml("  patterns: ['^$']\n", "{\"message\":null}", &rc), "{\"message\":null}");
    CHECK_INT(rc, SL_FILTER_KEEP);
}

TEST(empty_captures)
{
    int rc;
    const char *pat = "  patterns: ['^%{WORD:a}:(?<b>\\d*):(?:%{WORD:c}|-)$']\n";
    CHECK_STR(run_yaml(pat, "{\"message\":\"x::-\"}", &rc), "{\"message\":\"x::-\",\"a\":\"x\"}");
    char opts[256];
    snprintf(opts, sizeof(opts), "%s  keep_empty_captures: true\n", pat);
    CHECK_STR(run_yaml(opts, "{\"message\":\"x::-\"}", &rc),
              "{\"message\":\"x::-\",\"a\":\"x\",\"b\":\"\",\"c\":null}");
}

TEST(failure_tags)
{
    int rc;
    CHECK_STR(run_yaml("  patterns: ['^%{INT:n}$']\n", "{\"message\":\"abc\"}", &rc),
              "{\"message\":\"abc\",\"tags\":[\"_grokparsefailure\"]}");
    CHECK_INT(rc, SL_FILTER_FAIL);
    CHECK_STR(run_yaml("  patterns: ['^%{INT:n}$']\n  tag_on_failure: [bad, _grokparsefailure]\n",
                       "{\"message\":\"abc\",\"tags\":[\"bad\"]}", &rc),
              "{\"message\":\"abc\",\"tags\":[\"bad\",\"_grokparsefailure\"]}");
    CHECK_STR(run_yaml("  patterns: ['^%{INT:n}$']\n  tag_on_failure: []\n",
                       "{\"message\":\"abc\"}", &rc),
              "{\"message\":\"abc\"}");
    CHECK_INT(rc, SL_FILTER_FAIL);
    /* null (written or empty) is the default tag, as absent is; [] is none. */
    CHECK_STR(run_yaml("  patterns: ['^%{INT:n}$']\n  tag_on_failure: null\n",
                       "{\"message\":\"abc\"}", &rc),
              "{\"message\":\"abc\",\"tags\":[\"_grokparsefailure\"]}");
    CHECK_INT(rc, SL_FILTER_FAIL);
    CHECK_STR(run_yaml("  patterns: ['^%{INT:n}$']\n  tag_on_failure: ~\n",
                       "{\"message\":\"abc\",\"tags\":[\"x\"]}", &rc),
              "{\"message\":\"abc\",\"tags\":[\"x\",\"_grokparsefailure\"]}");
    CHECK_STR(run_yaml("  patterns: ['^%{INT:n}$']\n  tag_on_failure:\n",
                       "{\"message\":\"abc\"}", &rc),
              "{\"message\":\"abc\",\"tags\":[\"_grokparsefailure\"]}");
    CHECK_STR(run_yaml("  patterns: ['^%{INT:n}$']\n  tag_on_failure: [one, two]\n",
                       "{\"message\":\"abc\"}", &rc),
              "{\"message\":\"abc\",\"tags\":[\"one\",\"two\"]}");
    CHECK_INT(rc, SL_FILTER_FAIL);
    CHECK_STR(run_yaml("  patterns: ['^%{INT:n}$']\n  tag_on_failure: single\n",
                       "{\"message\":\"abc\"}", &rc),
              "{\"message\":\"abc\",\"tags\":[\"single\"]}");
    /* A match tags nothing, whatever tag_on_failure says. */
    CHECK_STR(run_yaml("  patterns: ['^%{INT:n}$']\n  tag_on_failure: [one]\n",
                       "{\"message\":\"12\"}", &rc),
              "{\"message\":\"12\",\"n\":\"12\"}");
    CHECK_INT(rc, SL_FILTER_KEEP);
    /* A missing field is matched as "" (Logstash), numbers as their text. */
    CHECK_STR(run_yaml("  patterns: ['^$']\n", "{\"other\":1}", &rc), "{\"other\":1}");
    CHECK_INT(rc, SL_FILTER_KEEP);
    CHECK_STR(run_yaml("  field: n\n  patterns: ['^%{INT:i:int}$']\n", "{\"n\":42}", &rc),
              "{\"n\":42,\"i\":42}");
}

TEST(several_patterns_in_order)
{
    int rc;
    const char *opts = "  patterns:\n    - '^%{INT:num:int}$'\n    - '^%{WORD:word}$'\n"
                       "    - '^%{NOTSPACE:any}$'\n";
    CHECK_STR(run_yaml(opts, "{\"message\":\"12\"}", &rc), "{\"message\":\"12\",\"num\":12}");
    CHECK_STR(run_yaml(opts, "{\"message\":\"ab\"}", &rc),
              "{\"message\":\"ab\",\"word\":\"ab\"}");
    CHECK_STR(run_yaml(opts, "{\"message\":\"a-b\"}", &rc),
              "{\"message\":\"a-b\",\"any\":\"a-b\"}");
    /* break_on_match: false - every pattern is tried, on the original text
     * even when an earlier one captured into the source field. */
    CHECK_STR(run_yaml("  patterns: ['^%{WORD:message}', '%{INT:n}$', 'nomatch']\n"
                       "  break_on_match: false\n  overwrite: [message]\n",
                       "{\"message\":\"abc 12\"}", &rc),
              "{\"message\":\"abc\",\"n\":\"12\"}");
    CHECK_INT(rc, SL_FILTER_KEEP);
    /* An array field: each element is matched. A typed capture is not
     * appended to an earlier number (Logstash keeps the first). */
    CHECK_STR(run_yaml("  patterns: ['^%{INT:n}$']\n", "{\"message\":[\"1\",\"x\",\"3\"]}", &rc),
              "{\"message\":[\"1\",\"x\",\"3\"],\"n\":[\"1\",\"3\"]}");
    CHECK_INT(rc, SL_FILTER_KEEP);
    CHECK_STR(run_yaml("  patterns: ['^%{INT:n:int}$']\n", "{\"message\":[\"1\",\"x\",\"3\"]}",
                       &rc),
              "{\"message\":[\"1\",\"x\",\"3\"],\"n\":1}");
}

TEST(match_option)
{
    int rc;
    CHECK_STR(run_yaml("  match: {a: '^%{INT:ai}$', b: ['^%{WORD:bw}[.]$', '^%{INT:bi}$']}\n",
                       "{\"a\":\"x\",\"b\":\"7\"}", &rc),
              "{\"a\":\"x\",\"b\":\"7\",\"bi\":\"7\"}");
    CHECK_INT(rc, SL_FILTER_KEEP);
}

TEST(named_captures_only)
{
    int rc;
    CHECK_STR(run_yaml("  patterns: ['%{WORD} %{INT:n}']\n  named_captures_only: false\n",
                       "{\"message\":\"ab 12\"}", &rc),
              "{\"message\":\"ab 12\",\"WORD\":\"ab\",\"n\":\"12\"}");
}

TEST(pattern_definitions_and_dir)
{
    char dir[] = "/tmp/grok_test_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[300];
    snprintf(path, sizeof(path), "%s/a-app", dir);
    FILE *fp = fopen(path, "w");
    fputs("# my patterns\n\nAPPID app-[0-9]+\n  \tINDENTED x\nWORD override-me\r\n", fp);
    fclose(fp);
    snprintf(path, sizeof(path), "%s/b-later", dir);
    fp = fopen(path, "w");
    fputs("WORD [a-z]+\nREQ %{APPID:app} %{WORD:word}", fp);  /* no final newline */
    fclose(fp);
    snprintf(path, sizeof(path), "%s/.hidden", dir);
    fp = fopen(path, "w");
    fputs("this is not a pattern file\n", fp);
    fclose(fp);

    char opts[1024];
    int rc;
    snprintf(opts, sizeof(opts),
             "  patterns: ['^%%{REQ} %%{HEX:h} %%{INDENTED:i}$']\n"
             "  patterns_dir: ['%s']\n"
             "  pattern_definitions: {HEX: '[0-9a-f]+', APPID: 'svc-[0-9]+'}\n", dir);
    /* b-later's WORD overrides a-app's and the built-in; the definitions
     * override the directory's APPID. */
    CHECK_STR(run_yaml(opts, "{\"message\":\"svc-7 abc ff x\"}", &rc),
              "{\"message\":\"svc-7 abc ff x\",\"app\":\"svc-7\",\"word\":\"abc\",\"h\":\"ff\","
              "\"i\":\"x\"}");
    CHECK_STR(run_yaml(opts, "{\"message\":\"svc-7 ABC ff x\"}", &rc),
              "{\"message\":\"svc-7 ABC ff x\",\"tags\":[\"_grokparsefailure\"]}");

    /* A single file is accepted too; a malformed line is an error. */
    snprintf(path, sizeof(path), "%s/c-bad", dir);
    fp = fopen(path, "w");
    fputs("GOOD x\nBAD-NAME y\n", fp);
    fclose(fp);
    snprintf(opts, sizeof(opts), "  patterns: ['%%{GOOD}']\n  patterns_dir: ['%s']\n", path);
    char want[600];
    snprintf(want, sizeof(want),
             "t.yml:3:18: filters[0] (grok): patterns_dir[0]: %s:2: expected 'NAME regex' "
             "(NAME of A-Z a-z 0-9 _)\n", path);
    EXPECT_ERROR(opts, want);
    snprintf(opts, sizeof(opts), "  patterns: ['%%{GOOD}']\n  patterns_dir: ['%s/none']\n", dir);
    snprintf(want, sizeof(want),
             "t.yml:3:18: filters[0] (grok): patterns_dir[0]: cannot open '%s/none': "
             "No such file or directory\n", dir);
    EXPECT_ERROR(opts, want);

    unlink(path);
    snprintf(path, sizeof(path), "%s/a-app", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/b-later", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/.hidden", dir);
    unlink(path);
    rmdir(dir);
}

TEST(config_errors)
{
    EXPECT_ERROR("  patterns: ['%{IP:ip} %{NOPE:x}']\n",
                 "t.yml:2:14: filters[0] (grok): patterns[0]: unknown pattern 'NOPE' in "
                 "'%{NOPE:x}'\n");
    EXPECT_ERROR("  patterns:\n    - '%{INT}'\n    - '(unclosed'\n",
                 "t.yml:4:7: filters[0] (grok): patterns[1]: invalid regex: end pattern with "
                 "unmatched parenthesis\n");
    /* An error inside a definition says which one, and where it comes from. */
    EXPECT_ERROR("  patterns: ['%{A}']\n  pattern_definitions:\n    A: 'x%{B}'\n    B: '%{A}y'\n",
                 "t.yml:2:14: filters[0] (grok): patterns[0]: in definition of 'B' "
                 "(pattern_definitions): "
                 "pattern 'A' refers to itself: A -> B -> A\n");
    EXPECT_ERROR("  patterns: ['%{A}']\n  pattern_definitions: {A: '%{MISSING}'}\n",
                 "t.yml:2:14: filters[0] (grok): patterns[0]: in definition of 'A' "
                 "(pattern_definitions): "
                 "unknown pattern 'MISSING' in '%{MISSING}'\n");
    EXPECT_ERROR("  patterns: ['%{INT:n:long}']\n",
                 "t.yml:2:14: filters[0] (grok): patterns[0]: unknown type 'long' in "
                 "'%{INT:n:long}' (int or float)\n");
    EXPECT_ERROR("  patterns: ['%{INT:[a]b}']\n",
                 "t.yml:2:14: filters[0] (grok): patterns[0]: invalid field reference '[a]b' in "
                 "'%{INT:[a]b}'\n");
    EXPECT_ERROR("  patterns: ['%{INT:x']\n",
                 "t.yml:2:14: filters[0] (grok): patterns[0]: unterminated '%{' in '%{INT:x'\n");
    EXPECT_ERROR("  patterns: ['%{ INT }']\n",
                 "t.yml:2:14: filters[0] (grok): patterns[0]: malformed reference '%{ INT }' "
                 "(expected %{NAME}, %{NAME:field} or %{NAME:field:int|float})\n");
    EXPECT_ERROR("  patterns: ['(?<>x)']\n",
                 "t.yml:2:14: filters[0] (grok): patterns[0]: malformed named group '(?<>x)'\n");
    EXPECT_ERROR("  pattern_definitions: {'BAD NAME': x}\n  patterns: x\n",
                 "t.yml:2:37: filters[0] (grok): pattern_definitions: invalid pattern name "
                 "'BAD NAME' (A-Z a-z 0-9 _)\n");
    EXPECT_ERROR("  field: message\n",
                 "t.yml:2:3: filters[0] (grok): option 'patterns' is required\n");
    EXPECT_ERROR("  patterns: []\n",
                 "t.yml:2:13: filters[0] (grok): option 'patterns' must not be empty\n");
    EXPECT_ERROR("  patterns: x\n  match: {message: x}\n",
                 "t.yml:3:10: filters[0] (grok): give either 'patterns' (with 'field') or "
                 "'match', not both\n");
    EXPECT_ERROR("  patterns: x\n  timeout: 2h\n  overwrit: [a]\n",
                 "t.yml:3:12: filters[0] (grok): option 'timeout' must be at most 1h, got '2h'\n"
                 "t.yml:4:3: filters[0] (grok): unknown option 'overwrit' (did you mean "
                 "'overwrite'?)\n");
    /* A bad option stops the instance before init(), so the checks of options
     * against each other (patterns with match, above) are not reached. */
    EXPECT_ERROR("  field: '[a'\n  patterns: x\n  match: {'b]': x}\n",
                 "t.yml:2:10: filters[0] (grok): option 'field': '[a' is not a valid field "
                 "reference\n");
    EXPECT_ERROR("  match: {'b]': x}\n",
                 "t.yml:2:17: filters[0] (grok): match: 'b]' is not a field reference\n");
    /* Shapes of match, and what the option table checks now. */
    EXPECT_ERROR("  match: [a, b]\n",
                 "t.yml:2:10: filters[0] (grok): option 'match' must be a map of field: "
                 "[patterns]\n");
    EXPECT_ERROR("  match: {a: [], b: [x, {y: z}]}\n",
                 "t.yml:2:14: filters[0] (grok): option 'match.a' must be a pattern or a "
                 "non-empty list of them\n"
                 "t.yml:2:21: filters[0] (grok): match.b[1]: must be a pattern string\n");
    EXPECT_ERROR("  field: ''\n  patterns: x\n",
                 "t.yml:2:10: filters[0] (grok): option 'field' must not be empty\n");
    EXPECT_ERROR("  patterns: x\n  overwrite: [ok, 'a..b']\n",
                 "t.yml:3:19: filters[0] (grok): option 'overwrite': 'a..b' is not a valid field "
                 "reference\n");
    EXPECT_ERROR("  patterns: x\n  pattern_definitions: [A]\n  patterns_dir: {a: b}\n",
                 "t.yml:3:24: filters[0] (grok): option 'pattern_definitions' must be a map\n"
                 "t.yml:4:17: filters[0] (grok): option 'patterns_dir' must be a string or a "
                 "list of strings, got a map\n");
    /* `when` belongs to the core and is never reported as unknown. */
    void *f = mk("  patterns: x\n  when: {field: a, equals: b}\n");
    CHECK(f != NULL);
    unload(f);
}

/*
 * A possessive pattern never backtracks, so a retry budget never runs out: on
 * a 256 KiB word with no space each start position scans to the end (O(n^2),
 * minutes). The budget's callout, passed at every start, stops it.
 */
TEST(timeout_holds_for_possessive_patterns)
{
    struct sl_metrics *saved = metrics;
    metrics = sl_metrics_new();
    size_t n = 256u << 10;
    char *ev = sl_malloc(n + 32);
    int k = snprintf(ev, n + 32, "{\"message\":\"");
    memset(ev + k, 'a', n);
    strcpy(ev + k + n, "\"}");
    void *f = mk("  patterns: ['(?<x>\\w++\\s)']\n  timeout: 50ms\n");
    CHECK(f != NULL);
    struct sl_value e = ev_json(ev);
    CHECK_INT(run(f, &e), SL_FILTER_FAIL_TAGGED);
    struct sl_value *tags = sl_obj_getc(&e, "tags");
    CHECK(tags && tags->type == SL_V_ARRAY && tags->u.a.len == 1);
    CHECK_STR(tags->u.a.items[0].u.s.ptr, "_groktimeout");
    CHECK(sl_obj_getc(&e, "x") == NULL);
    sl_value_clear(&e);
    unload(f);
    free(ev);
    sl_metrics_free(metrics);
    metrics = saved;
}

TEST(timeout)
{
    struct sl_metrics *saved = metrics;
    metrics = sl_metrics_new();
    char line[64];
    memset(line, 'a', 40);
    strcpy(line + 40, "b");
    char ev[128];
    snprintf(ev, sizeof(ev), "{\"message\":\"%s\"}", line);
    /* Catastrophic backtracking: (a+)+ on a's followed by b is 2^40 steps. */
    void *f = mk("  patterns: ['^(?<x>a+)+$', '%{GREEDYDATA:never}']\n  timeout: 5ms\n");
    CHECK(f != NULL);
    struct sl_value e = ev_json(ev);
    uint64_t t0 = sl_now_ms();
    int rc = run(f, &e);
    uint64_t took = sl_now_ms() - t0;
    CHECK_INT(rc, SL_FILTER_FAIL_TAGGED);
    char want[160];
    snprintf(want, sizeof(want), "{\"message\":\"%s\",\"tags\":[\"_groktimeout\"]}", line);
    CHECK_STR(js(&e), want);
    CHECK(took < 2000);  /* a budget of ~5 ms; generous for sanitizers and busy hosts */
    sl_value_clear(&e);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_metrics_render(metrics, &b);
    /* Labelled like the core's series of the instance: its id, else the plugin's name. The
     * core counts the event as an error, as for any failure. */
    CHECK(strstr(sl_buf_cstr(&b), "sluice_aggregator_grok_timeouts_total{filter=\"grok\"} 1\n")
          != NULL);
    CHECK(strstr(sl_buf_cstr(&b), "sluice_aggregator_filter_events_total{filter=\"grok\","
                                  "result=\"error\"} 1\n") != NULL);
    sl_buf_free(&b);
    unload(f);

    /* With an id, and tag_on_failure, which a timeout does not add. */
    f = mk("  id: slowpoke\n  patterns: ['^(?<x>a+)+$']\n  timeout: 1ms\n"
           "  tag_on_failure: [nomatch]\n");
    CHECK(f != NULL);
    e = ev_json(ev);
    CHECK_INT(run(f, &e), SL_FILTER_FAIL_TAGGED);
    snprintf(want, sizeof(want), "{\"message\":\"%s\",\"tags\":[\"_groktimeout\"]}", line);
    CHECK_STR(js(&e), want);
    sl_value_clear(&e);
    sl_buf_init(&b, 0);
    sl_metrics_render(metrics, &b);
    CHECK(strstr(sl_buf_cstr(&b), "sluice_aggregator_grok_timeouts_total{filter=\"slowpoke\"} "
                                  "1\n") != NULL);
    sl_buf_free(&b);
    unload(f);

    f = mk("  patterns: ['^(?<x>a+)+$']\n  timeout: 1ms\n  tag_on_timeout: slow\n");
    e = ev_json(ev);
    CHECK_INT(run(f, &e), SL_FILTER_FAIL_TAGGED);
    snprintf(want, sizeof(want), "{\"message\":\"%s\",\"tags\":[\"slow\"]}", line);
    CHECK_STR(js(&e), want);
    sl_value_clear(&e);
    /* The same pattern on a short line just fails. */
    e = ev_msg("aaab");
    CHECK_INT(run(f, &e), SL_FILTER_FAIL);
    CHECK_STR(js(&e), "{\"message\":\"aaab\",\"tags\":[\"_grokparsefailure\"]}");
    sl_value_clear(&e);
    unload(f);
    sl_cfg_free(&cfg);
    memset(&cfg, 0, sizeof(cfg));
    sl_metrics_free(metrics);
    metrics = saved;
    CHECK(sl_regex_retries_per_ms() >= 10000);
}

/* A line that spans lines: '^' must still be a line anchor (Ruby syntax). */
TEST(caret_is_a_line_anchor)
{
    int rc;
    const char *opts = "  patterns: ['^%{INT:n}$']\n";
    CHECK_STR(run_yaml(opts, "{\"message\":\"x\\n42\"}", &rc),
              "{\"message\":\"x\\n42\",\"n\":\"42\"}");
    CHECK_STR(run_yaml(opts, "{\"message\":\"x 42\"}", &rc),
              "{\"message\":\"x 42\",\"tags\":[\"_grokparsefailure\"]}");
    CHECK_STR(run_yaml("  patterns: ['[^^]+(?<c>\\^)']\n", "{\"message\":\"ab^\"}", &rc),
              "{\"message\":\"ab^\",\"c\":\"^\"}");
}

/* ---- four threads on one instance --------------------------------------- */

static void *grok_thread_inst;

static void *worker(void *arg)
{
    long id = (long)arg;
    int bad = 0;
    for (int i = 0; i < 300; i++) {
        char line[256];
        struct sl_value e;
        if ((i + id) % 3 == 0) {
            e = ev_msg("not an access log line at all");
            bad += run(grok_thread_inst, &e) != SL_FILTER_FAIL;
            struct sl_value *tags = sl_obj_getc(&e, "tags");
            bad += !(tags && tags->type == SL_V_ARRAY && tags->u.a.len == 1);
        } else {
            snprintf(line, sizeof(line),
                     "10.0.%ld.%d - - [07/Mar/2024:09:15:22 +0000] \"GET /p/%d HTTP/1.1\" %d %d "
                     "\"-\" \"t%ld\"", id, i % 250, i, 200 + i % 3, i * 10, id);
            e = ev_msg(line);
            run(grok_thread_inst, &e);
            char want[64];
            snprintf(want, sizeof(want), "/p/%d", i);
            struct sl_value *r = sl_obj_getc(&e, "request");
            bad += !(r && r->type == SL_V_STRING && strcmp(r->u.s.ptr, want) == 0);
            struct sl_value *b = sl_obj_getc(&e, "bytes");
            bad += !(b && b->type == SL_V_INT && b->u.i == i * 10);
            snprintf(want, sizeof(want), "\"t%ld\"", id);
            struct sl_value *a = sl_obj_getc(&e, "agent");
            bad += !(a && a->type == SL_V_STRING && strcmp(a->u.s.ptr, want) == 0);
        }
        sl_value_clear(&e);
    }
    return (void *)(long)bad;
}

TEST(threads)
{
    grok_thread_inst = mk("  ecs_compatibility: disabled\n"
                          "  patterns: ['^%{IPORHOST:clientip} %{HTTPDUSER:ident} "
                          "%{HTTPDUSER:auth} \\[%{HTTPDATE:timestamp}\\] \"%{HTTPD_REQUEST}\" "
                          "%{INT:response:int} %{INT:bytes:int} %{QS:referrer} %{QS:agent}$']\n");
    CHECK(grok_thread_inst != NULL);
    pthread_t th[4];
    for (long i = 0; i < 4; i++) {
        CHECK_INT(pthread_create(&th[i], NULL, worker, (void *)i), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *bad;
        pthread_join(th[i], &bad);
        CHECK_INT((long)bad, 0);
    }
    unload(grok_thread_inst);
}

/* ---- in an arena scope, as the pipeline's workers run filters ----------- */

/* Whether every buffer of v (strings, keys, vectors) lies in a: nothing went to the heap. */
static bool all_in_arena(const struct sl_value *v, const struct sl_arena *a)
{
    switch (v->type) {
    case SL_V_STRING:
        return sl_arena_contains(a, v->u.s.ptr);
    case SL_V_ARRAY:
        for (size_t i = 0; i < v->u.a.len; i++) {
            if (!all_in_arena(&v->u.a.items[i], a)) {
                return false;
            }
        }
        return v->u.a.cap == 0 || sl_arena_contains(a, v->u.a.items);
    case SL_V_OBJECT:
        for (size_t i = 0; i < v->u.o.len; i++) {
            if (!sl_arena_contains(a, v->u.o.items[i].key) ||
                !all_in_arena(&v->u.o.items[i].v, a)) {
                return false;
            }
        }
        return v->u.o.cap == 0 || sl_arena_contains(a, v->u.o.items);
    default:
        return true;
    }
}

/* Runs f on the event `json`, parsed into a and filtered in a's scope (a NULL:
 * the heap); returns the event's JSON. In a scope, every part of the result
 * must be arena memory. */
static const char *run_scoped(void *f, const char *json, struct sl_arena *a)
{
    struct sl_value ev = {0};
    char err[128];
    if (sl_json_parse_arena(json, strlen(json), &ev, a, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "bad test JSON: %s\n", err);
        return "(bad JSON)";
    }
    struct sl_arena *prev = sl_value_set_arena(a);
    run(f, &ev);
    sl_value_set_arena(prev);
    const char *out = js(&ev);
    if (a && !all_in_arena(&ev, a)) {
        fprintf(stderr, "heap memory in the arena scope's event: %s\n", out);
        t_failed_checks++;
    }
    sl_value_clear(&ev);  /* before the reset: the arena's rule */
    if (a) {
        sl_arena_reset(a);
    }
    return out;
}

/* The same results in an arena scope as on the heap, with no heap memory in the
 * event; texts longer than the filter's stack copy included. */
TEST(arena_scope)
{
    struct sl_arena arena;
    sl_arena_init(&arena, 0);
    struct sl_arena *scopes[] = {NULL, &arena};
    char long_text[3001];
    memset(long_text, 'x', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    struct sl_buf in, want;
    sl_buf_init(&in, 0);
    sl_buf_init(&want, 0);
    for (size_t k = 0; k < SL_ARRAY_LEN(scopes); k++) {
        struct sl_arena *a = scopes[k];
        void *f = mk("  patterns: ['%{COMBINEDAPACHELOG}']\n  overwrite: [agent]\n"
                     "  ecs_compatibility: disabled\n");
        CHECK(f != NULL);
        CHECK_STR(run_scoped(f, "{\"message\":\"1.2.3.4 - - [17/May/2015:10:05:03 +0000] \\\"GET"
                                " / HTTP/1.1\\\" 200 7 \\\"-\\\" \\\"ua\\\"\",\"agent\":{\"x\":1},"
                                "\"bytes\":\"0\"}", a),
                  "{\"message\":\"1.2.3.4 - - [17/May/2015:10:05:03 +0000] \\\"GET / HTTP/1.1"
                  "\\\" 200 7 \\\"-\\\" \\\"ua\\\"\",\"agent\":\"\\\"ua\\\"\",\"bytes\":[\"0\","
                  "\"7\"],\"clientip\":\"1.2.3.4\",\"ident\":\"-\",\"auth\":\"-\",\"timestamp\":"
                  "\"17/May/2015:10:05:03 +0000\",\"verb\":\"GET\",\"request\":\"/\","
                  "\"httpversion\":\"1.1\",\"response\":\"200\",\"referrer\":\"\\\"-\\\"\"}");
        unload(f);

        /* Capturing into the source field: the captures come from a copy. */
        f = mk("  patterns: ['^%{WORD:level} %{GREEDYDATA:message}$']\n  overwrite: [message]\n");
        sl_buf_reset(&in);
        sl_buf_printf(&in, "{\"message\":\"WARN %s\",\"n\":1}", long_text);
        sl_buf_reset(&want);
        sl_buf_printf(&want, "{\"message\":\"%s\",\"n\":1,\"level\":\"WARN\"}", long_text);
        CHECK_STR(run_scoped(f, sl_buf_cstr(&in), a), sl_buf_cstr(&want));
        unload(f);

        /* break_on_match: false - every pattern on a copy of the original text. */
        f = mk("  patterns: ['^%{WORD:message}', '%{INT:n:int}$', '^%{WORD:w}']\n"
               "  break_on_match: false\n  overwrite: [message]\n");
        sl_buf_reset(&in);
        sl_buf_printf(&in, "{\"message\":\"abc %s 12\"}", long_text);
        CHECK_STR(run_scoped(f, sl_buf_cstr(&in), a),
                  "{\"message\":\"abc\",\"n\":12,\"w\":\"abc\"}");
        CHECK_STR(run_scoped(f, "{\"message\":\"abc 12\"}", a),
                  "{\"message\":\"abc\",\"n\":12,\"w\":\"abc\"}");
        unload(f);
    }
    sl_buf_free(&in);
    sl_buf_free(&want);
    sl_arena_free(&arena);
}

static uint64_t ap_rng = 0x9e3779b97f4a7c15ull;

static unsigned ap_rand(unsigned n)
{
    ap_rng = ap_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)(ap_rng >> 33) % n;
}

/* A random subject: tokens the patterns below look for, now and then one
 * long enough to pass the filter's whole-copy size. */
static void ap_subject(struct sl_buf *b)
{
    static const char *const tok[] = {"ab", "x", "12", "007", "-", "a-b", "Q_1",
                                      "\xC3\xA9t\xC3\xA9", "3.5", "1_000", ":", "X", "zz:9",
                                      "99999999999999999999", "-42", "ab12", "12ab", "y"};
    size_t n = ap_rand(8);
    for (size_t i = 0; i < n; i++) {
        if (i) {
            sl_buf_append(b, ap_rand(6) ? " " : ":", 1);
        }
        if (ap_rand(40) == 0) {
            for (unsigned k = 0, m = 300 + ap_rand(900); k < m; k++) {
                sl_buf_append(b, "lorem ", 6);
            }
        }
        const char *t = tok[ap_rand(SL_ARRAY_LEN(tok))];
        sl_buf_append(b, t, strlen(t));
    }
}

/* A random event: the subject as message, and some of the fields the
 * patterns capture into already there, of any type. */
static void ap_event(struct sl_buf *b)
{
    static const char *const fields[] = {"a", "b", "n", "f", "k", "x", "y", "z", "e", "w",
                                         "tags", "rest", "h"};
    static const char *const vals[] = {"\"old\"", "7", "{\"c\":\"o\"}", "[\"a1\"]", "null",
                                       "{}", "2.5", "true", "[]"};
    sl_buf_reset(b);
    sl_buf_append(b, "{\"message\":\"", 12);
    ap_subject(b);
    sl_buf_append(b, "\"", 1);
    for (unsigned i = 0, n = ap_rand(4); i < n; i++) {
        sl_buf_printf(b, ",\"%s\":%s", fields[ap_rand(SL_ARRAY_LEN(fields))],
                      vals[ap_rand(SL_ARRAY_LEN(vals))]);
    }
    sl_buf_append(b, "}", 1);
    sl_buf_cstr(b);
}

/*
 * The arena path (captures share one copy of the subject, keys come from the
 * pattern's key blob, the event's members are reserved once) stores exactly
 * what the heap path stores (every string and key copied on its own), on
 * random subjects and events: captures that nest, touch, share a range, come
 * out of position order, alternate into one field, repeat a field, are typed,
 * replace the source field, are empty, or lie far apart in a long subject.
 */
TEST(arena_path_matches_heap_path)
{
    static const char *const configs[] = {
        "  patterns: ['%{WORD:a} %{INT:b:int} %{WORD:[n][c]}']\n",
        "  patterns: ['(?<x>(?<y>\\w+)-(?<z>\\w+))']\n",
        "  patterns: ['(?<a>\\d+)(?<b>[a-z]+)(?<k>\\d*)']\n  keep_empty_captures: true\n",
        "  patterns: ['(?<f>\\w+) (?<f>\\w+)(?: (?<f>\\w+))?']\n",
        "  patterns: ['^(?<w>\\w+) (?<message>.*)$']\n  overwrite: [message]\n",
        "  patterns: ['^(?<w>\\w+) (?<message>.*)$']\n",
        "  patterns: ['(?<a>(?<b>\\w+))(?<e>)']\n  keep_empty_captures: true\n",
        "  patterns: ['(?:(?<k>\\d+)|(?<k>[a-z]+))(?:(?<x>:)|(?<y>-))?']\n"
        "  keep_empty_captures: true\n",
        "  patterns: ['(?=.*?(?<z>\\d+))(?<y>\\w+)(?<x>.)']\n",
        "  patterns: ['(?<e>\\d*):(?<w>\\w*)(?<h>X)?']\n  keep_empty_captures: true\n",
        "  patterns: ['^(?<h>\\w+) .* (?<z>\\w+)$']\n",
        "  patterns: ['^%{WORD:[n][a]} %{GREEDYDATA:rest}']\n",
        "  patterns: ['%{NUMBER:f:float} %{NOTSPACE:k:int}', '%{INT:[n][i]:int}']\n"
        "  break_on_match: false\n",
        "  patterns: ['(?<a>\\w)(?<b>\\w)(?<a>\\w)']\n  overwrite: [b]\n",
        "  match:\n    message: ['^(?<x>\\S+)', '(?<y>\\d+)$']\n    x: '(?<z>\\w)'\n"
        "  break_on_match: false\n",
    };
    struct sl_arena arena;
    sl_arena_init(&arena, 0);
    struct sl_buf in, heap;
    sl_buf_init(&in, 0);
    sl_buf_init(&heap, 0);
    for (size_t c = 0; c < SL_ARRAY_LEN(configs); c++) {
        void *f = mk(configs[c]);
        CHECK(f != NULL);
        if (!f) {
            fprintf(stderr, "config %zu: %s", c, errs(&cfg));
            continue;
        }
        int changed = 0, failed = t_failed_checks;
        for (int round = 0; round < 600 && t_failed_checks == failed; round++) {
            ap_event(&in);
            sl_buf_reset(&heap);
            const char *h = run_scoped(f, in.data, NULL);
            sl_buf_append(&heap, h, strlen(h));
            changed += strstr(h, "_grokparsefailure") == NULL;
            const char *a = run_scoped(f, in.data, &arena);
            if (strcmp(sl_buf_cstr(&heap), a) != 0) {
                fprintf(stderr, "config %zu on %s:\nheap:  %s\narena: %s\n", c, in.data,
                        sl_buf_cstr(&heap), a);
                t_failed_checks++;
            }
        }
        if (changed < 60) {
            fprintf(stderr, "config %zu matched only %d times\n", c, changed);
            t_failed_checks++;
        }
        unload(f);
    }
    sl_buf_free(&in);
    sl_buf_free(&heap);
    sl_arena_free(&arena);
}

/* :int as Ruby's to_i, the all-digits shortcut included: lengths around where
 * 64 bits run out, signs, blanks, '_' between digits, trailing junk. */
TEST(int_conversion)
{
    void *f = mk("  patterns: ['^%{ANY:n:int}$']\n  pattern_definitions: {ANY: '.*'}\n");
    CHECK(f != NULL);
    if (!f) {
        return;
    }
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"0", "0"}, {"7", "7"}, {"007", "7"}, {"123456789012345678", "123456789012345678"},
        {"999999999999999999", "999999999999999999"},
        {"1234567890123456789", "1234567890123456789"},
        {"9223372036854775807", "9223372036854775807"},
        {"9223372036854775808", "9223372036854775807"},
        {"99999999999999999999999", "9223372036854775807"},
        {"-9223372036854775808", "-9223372036854775808"},
        {"-99999999999999999999", "-9223372036854775808"},
        {"-12", "-12"}, {"+12", "12"}, {" 12", "12"}, {"12 ", "12"}, {"12ab", "12"},
        {"1_000", "1000"}, {"1__0", "1"}, {"_1", "0"}, {"1_", "1"}, {"-", "0"}, {"abc", "0"},
        {"1.9", "1"}, {"\\t3", "3"}, {"0000000000000000000000001", "1"},
    };
    char in[128], want[256];
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        snprintf(in, sizeof(in), "{\"message\":\"%s\"}", cases[i].in);
        snprintf(want, sizeof(want), "{\"message\":\"%s\",\"n\":%s}", cases[i].in, cases[i].out);
        CHECK_STR(run_scoped(f, in, NULL), want);
    }
    unload(f);
}

/* ---- the engine directly -------------------------------------------------- */

TEST(engine)
{
    struct sl_grok_lib *lib = sl_grok_lib_new();
    char err[256];
    CHECK_INT(sl_grok_lib_add(lib, "A", "a+", "x", 1), 0);
    CHECK_INT(sl_grok_lib_add(lib, "bad-name", "a", "x", 1), SL_EINVAL);
    CHECK_INT(sl_grok_lib_add(lib, "A", "b+", "y", 2), 0);  /* redefined: later wins */
    CHECK_STR(sl_grok_lib_get(lib, "A"), "b+");
    CHECK(sl_grok_lib_get(lib, "B") == NULL);
    struct sl_grok *g = sl_grok_compile(lib, "%{A:x}-%{A}-(?<y>c)", true, err, sizeof(err));
    CHECK(g != NULL);
    CHECK_STR(g->expanded, "(?<g1>b+)-(?:b+)-(?<g2>c)");
    CHECK_INT(g->ncaps, 2);
    CHECK_STR(g->caps[1].field, "y");
    const OnigRegion *r;
    CHECK_INT(sl_grok_match(g, "zbb-b-c", 7, NULL, &r), 1);
    CHECK_INT(r->beg[g->caps[0].group], 1);
    CHECK_INT(r->end[g->caps[0].group], 3);
    CHECK_INT(sl_grok_match(g, "bb-b-d", 6, NULL, &r), 0);
    /* Only the fields are groups Oniguruma records: %{A} and plain (...) are not. */
    CHECK_INT(onig_number_of_captures(g->re), 2);
    sl_grok_free(g);
    g = sl_grok_compile(lib, "(b)(?<x>b)(c|d)", true, err, sizeof(err));
    CHECK(g != NULL);
    CHECK_INT(onig_number_of_captures(g->re), 1);
    sl_grok_free(g);
    /* Depth limit: A0 -> A1 -> ... -> A70. */
    for (int i = 0; i < 70; i++) {
        char name[16], def[32];
        snprintf(name, sizeof(name), "D%d", i);
        snprintf(def, sizeof(def), "%%{D%d}", i + 1);
        sl_grok_lib_add(lib, name, def, "deep", i + 1);
    }
    sl_grok_lib_add(lib, "D70", "x", "deep", 71);
    CHECK(sl_grok_compile(lib, "%{D0}", true, err, sizeof(err)) == NULL);
    CHECK_STR(err, "in definition of 'D63' (deep:64): patterns nested more than 64 deep at 'D64'");
    g = sl_grok_compile(lib, "%{D10}", true, err, sizeof(err));
    CHECK(g != NULL);
    sl_grok_free(g);
    sl_grok_free(NULL);
    sl_grok_lib_free(lib);
    sl_grok_lib_free(NULL);
}

/* ---- ECS compatibility and Logstash's engine semantics ------------------ */

/* The filter's own ecs_compatibility wins; else the pipeline's (v8 by default). */
static const char *ecs_run(enum sl_ecs pipeline, const char *opts, const char *line)
{
    static char out[1024];
    char yml[512];
    snprintf(yml, sizeof(yml), "grok:\n  patterns: ['%%{COMMONAPACHELOG}']\n%s", opts);
    struct sl_cfg c;
    memset(&c, 0, sizeof(c));
    CHECK_INT(sl_cfg_load_string(&c, "t.yml", yml, strlen(yml)), 0);
    struct agg_instance_args a = {.id = FILTER_ID, .ecs = pipeline};
    struct sl_instance *in = agg_instance_new(&P, &c, sl_cfg_get(c.root, FILTER_KEY), &a);
    snprintf(out, sizeof(out), "%s", errs(&c));
    if (in) {
        struct sl_value e = ev_msg(line);
        run(in, &e);
        sl_obj_del(&e, "message", 7);
        snprintf(out, sizeof(out), "%s", js(&e));
        sl_value_clear(&e);
        agg_instance_free(in);
    }
    sl_cfg_free(&c);
    return out;
}

TEST(ecs_modes)
{
    static const char line[] = "10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 5";
    static const char ecs[] =
        "{\"source\":{\"address\":\"10.0.0.1\",\"ip\":\"10.0.0.1\"},\"timestamp\":\"10/Oct/2000:"
        "13:55:36 -0700\",\"http\":{\"request\":{\"method\":\"GET\"},\"version\":\"1.0\",\"respons"
        "e\":{\"status_code\":200,\"body\":{\"bytes\":5}}},\"url\":{\"original\":\"/\"}}";
    static const char legacy[] =
        "{\"clientip\":\"10.0.0.1\",\"ident\":\"-\",\"auth\":\"-\",\"timestamp\":\"10/Oct/2000:13:"
        "55:36 -0700\",\"verb\":\"GET\",\"request\":\"/\",\"httpversion\":\"1.0\",\"response\":\"20"
        "0\",\"bytes\":\"5\"}";
    CHECK_STR(ecs_run(SL_ECS_V8, "", line), ecs);
    CHECK_STR(ecs_run(SL_ECS_DISABLED, "", line), legacy);
    CHECK_STR(ecs_run(SL_ECS_DISABLED, "  ecs_compatibility: v8\n", line), ecs);
    CHECK_STR(ecs_run(SL_ECS_V8, "  ecs_compatibility: v1\n", line), ecs);
    CHECK_STR(ecs_run(SL_ECS_V8, "  ecs_compatibility: disabled\n", line), legacy);
    CHECK_STR(ecs_run(SL_ECS_V8, "  ecs_compatibility: v9\n", line),
              "t.yml:3:22: filters[0] (grok): option 'ecs_compatibility' must be one of v8, v1, "
              "disabled, got 'v9'\n");
}

/* '.' matches a newline, as in Logstash (Ruby's MULTILINE): GREEDYDATA takes a
 * whole stack trace. The reference forms of Logstash's own files load. */
TEST(engine_parity)
{
    WITH("grok:\n  patterns: ['^%{WORD:level} %{GREEDYDATA:msg}$']\n") {
        EXPECT(w.k, "{\"message\":\"ERROR boom\\n\\tat a.B.c(B.java:1)\\n\"}",
               "{\"message\":\"ERROR boom\\n\\tat a.B.c(B.java:1)\\n\",\"level\":\"ERROR\","
               "\"msg\":\"boom\\n\\tat a.B.c(B.java:1)\\n\"}");
    }
    WITH("grok:\n  patterns: ['^%{WORD:[a][b]} \\(%{POSINT:[c][d]?}\\)%{NUMBER:[@e]:float}$']\n") {
        EXPECT(w.k, "{\"message\":\"x (7)1.5\"}",
               "{\"message\":\"x (7)1.5\",\"a\":{\"b\":\"x\"},\"c\":{\"d\":\"7\"},\"@e\":1.5}");
    }
}

/* A trailing capture of '.*' is searched as its head and given the rest of the
 * subject: which shapes qualify, and that results equal the full regex's. */
TEST(greedy_tail)
{
    struct sl_grok_lib *lib = sl_grok_lib_new();
    CHECK_INT(sl_grok_lib_add(lib, "GREEDYDATA", ".*", "x", 1), 0);
    CHECK_INT(sl_grok_lib_add(lib, "WORD", "\\b\\w+\\b", "x", 2), 0);
    static const struct {
        const char *pattern;
        bool head;
    } shapes[] = {
        {"^%{WORD:w} %{GREEDYDATA:rest}$", true},
        {"%{WORD:w} %{GREEDYDATA:rest}", true},
        {"^%{WORD:w}[])|(] %{GREEDYDATA:rest}", true},
        {"^%{WORD:w}|%{GREEDYDATA:rest}", false},       /* the tail is one alternative */
        {"^(?:%{WORD:w} %{GREEDYDATA:rest})", false},   /* inside a group */
        {"^(?i)%{WORD:w} %{GREEDYDATA:rest}", false},   /* options may change '.' */
        {"^%{GREEDYDATA:rest} x", false},
        {"%{GREEDYDATA:rest}", false},                  /* no head */
        {"^%{WORD:w} %{GREEDYDATA:rest}\\z", false},
    };
    char err[256];
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        struct sl_grok *g = sl_grok_compile(lib, shapes[i].pattern, true, err, sizeof(err));
        CHECK(g != NULL);
        CHECK_INT(g->re_head != NULL, shapes[i].head);
        sl_grok_free(g);
    }
    sl_grok_lib_free(lib);
    /* Same fields as Logstash would give, with and without a newline (re_line). */
    WITH("grok:\n  patterns: ['^%{WORD:w} %{GREEDYDATA:rest}$']\n") {
        EXPECT(w.k, "{\"message\":\"a b c\"}",
               "{\"message\":\"a b c\",\"w\":\"a\",\"rest\":\"b c\"}");
        EXPECT(w.k, "{\"message\":\"a \\nb\\n\"}",
               "{\"message\":\"a \\nb\\n\",\"w\":\"a\",\"rest\":\"\\nb\\n\"}");
        EXPECT(w.k, "{\"message\":\"a \"}",
               "{\"message\":\"a \",\"w\":\"a\"}");  /* empty captures are not kept */
        EXPECT_RC(w.k, "{\"message\":\" a\"}",
                  "{\"message\":\" a\",\"tags\":[\"_grokparsefailure\"]}", SL_FILTER_FAIL);
    }
    WITH("grok:\n  patterns: ['%{INT:n:int}: %{GREEDYDATA:rest}']\n") {
        EXPECT(w.k, "{\"message\":\"x 12: y: z\"}",
               "{\"message\":\"x 12: y: z\",\"n\":12,\"rest\":\"y: z\"}");
    }
}

/* A lazy '.*?' capture that only a delimiter and closing parentheses follow is
 * compiled as a class loop; on random subjects the groups are those of the
 * same pattern kept as written (an empty group at the end prevents the
 * rewrite without changing what matches). */
TEST(lazy_tail)
{
    struct sl_grok_lib *lib = sl_grok_lib_new();
    CHECK_INT(sl_grok_lib_add(lib, "DATA", ".*?", "x", 1), 0);
    CHECK_INT(sl_grok_lib_add(lib, "WORD", "\\b\\w+\\b", "x", 2), 0);
    static const struct {
        const char *pattern;
        const char *cls;  /* in the compiled regex, or NULL: kept as written */
    } shapes[] = {
        {"\"%{DATA:a}\" \"(?:-|%{DATA:ua})\"", "[^\"]*"},
        {"^%{WORD:w} \"%{DATA:ua}\"", "[^\"]*"},
        {"'%{DATA:q}'", "[^']*"},
        {"\\[%{DATA:q}\\]", "[^\\]]*"},
        {"<%{DATA:q}>", "[^>]*"},
        {"\"%{DATA:ua}\"$", NULL},              /* an anchor after it can fail */
        {"\"(?:%{DATA:ua})?\"", NULL},          /* a quantifier */
        {"(?i)\"%{DATA:ua}\"", NULL},           /* options */
        {"\"%{DATA:ua}\\\"", NULL},            /* an escaped quote is not the delimiter */
        {"\"%{DATA:ua}x", NULL},
        {"\"(?:%{DATA})\"", NULL},              /* not a capture */
    };
    char err[256];
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        struct sl_grok *g = sl_grok_compile(lib, shapes[i].pattern, true, err, sizeof(err));
        CHECK(g != NULL);
        if (!g) {
            continue;
        }
        if (shapes[i].cls) {
            CHECK(strstr(g->expanded, shapes[i].cls) != NULL);
        } else {
            CHECK(strstr(g->expanded, ".*?") != NULL);
        }
        sl_grok_free(g);
    }
    static const char alphabet[] = "ab\"'-> ]\n[<";
    uint64_t rng = 7;
    for (size_t i = 0; i < 5; i++) {
        if (!shapes[i].cls) {
            continue;
        }
        char kept[256];
        snprintf(kept, sizeof(kept), "%s(?:)", shapes[i].pattern);
        struct sl_grok *a = sl_grok_compile(lib, shapes[i].pattern, true, err, sizeof(err));
        struct sl_grok *b = sl_grok_compile(lib, kept, true, err, sizeof(err));
        CHECK(a && b && strstr(b->expanded, ".*?") != NULL);
        for (int n = 0; a && b && n < 20000; n++) {
            char subj[32];
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t len = (size_t)(rng >> 59) + 1;
            for (size_t k = 0; k < len; k++) {
                rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
                subj[k] = alphabet[(rng >> 33) % (sizeof(alphabet) - 1)];
            }
            const OnigRegion *ra, *rb;
            int ma = sl_grok_match(a, subj, len, NULL, &ra);
            int ga = ma == 1 ? ra->num_regs : 0, beg[8] = {0}, end[8] = {0};
            for (int k = 0; k < ga && k < 8; k++) {
                beg[k] = ra->beg[k];
                end[k] = ra->end[k];
            }
            int mb = sl_grok_match(b, subj, len, NULL, &rb);
            CHECK_INT(ma, mb);
            if (ma == 1 && mb == 1) {
                CHECK_INT(ga, rb->num_regs);
                for (int k = 0; k < ga && k < 8; k++) {
                    if (beg[k] != rb->beg[k] || end[k] != rb->end[k]) {
                        fprintf(stderr, "pattern %s, subject '%.*s', group %d: %d-%d vs %d-%d\n",
                                shapes[i].pattern, (int)len, subj, k, beg[k], end[k],
                                rb->beg[k], rb->end[k]);
                        CHECK(0);
                        n = 20000;
                        break;
                    }
                }
            }
        }
        sl_grok_free(a);
        sl_grok_free(b);
    }
    sl_grok_lib_free(lib);
}

/* A legitimate 10 MB line through `... %{GREEDYDATA:x}`: before, the match
 * stack (~30 bytes per character '.*' crosses) hit its limit and the event
 * was tagged _groktimeout. */
TEST(greedy_tail_takes_a_10_mb_line)
{
    size_t n = 10u << 20;
    char *ev = sl_malloc(n + 64);
    int k = snprintf(ev, n + 64, "{\"message\":\"ERROR ");
    for (size_t i = 0; i < n; i++) {
        ev[k + i] = (char)('a' + i % 26);
    }
    strcpy(ev + k + n, "\"}");
    void *f = mk("  patterns: ['^%{LOGLEVEL:level} %{GREEDYDATA:msg}$']\n");
    CHECK(f != NULL);
    struct sl_value e = ev_json(ev);
    CHECK_INT(run(f, &e), SL_FILTER_KEEP);
    struct sl_value *msg = sl_obj_getc(&e, "msg");
    CHECK(msg && msg->type == SL_V_STRING && msg->u.s.len == n);
    CHECK(msg && memcmp(msg->u.s.ptr, ev + k, n) == 0);
    struct sl_value *level = sl_obj_getc(&e, "level");
    CHECK(level && level->type == SL_V_STRING && strcmp(level->u.s.ptr, "ERROR") == 0);
    CHECK(sl_obj_getc(&e, "tags") == NULL);
    sl_value_clear(&e);
    unload(f);
    free(ev);
}

/* ---- the built-in library on real-world lines --------------------------- */

struct lib_case {
    const char *pattern;
    const char *line;
    const char *want;  /* the event after the filter, without its source field */
};

static const struct lib_case lib_cases[] = {
    {"%{COMMONAPACHELOG}",
     "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326",
     "{\"clientip\":\"127.0.0.1\",\"ident\":\"-\",\"auth\":\"frank\",\"timestamp\":\"10/Oct/2000"
     ":13:55:36 -0700\",\"verb\":\"GET\",\"request\":\"/apache_pb.gif\",\"httpversion\":\"1.0\","
     "\"response\":\"200\",\"bytes\":\"2326\"}"},
    {"%{HTTPD_COMMONLOG}",
     "192.168.1.20 - - [28/Jul/2006:10:27:10 -0300] \"-\" 408 -",
     "{\"clientip\":\"192.168.1.20\",\"ident\":\"-\",\"auth\":\"-\",\"timestamp\":\"28/Jul/2006:"
     "10:27:10 -0300\",\"rawrequest\":\"-\",\"response\":\"408\"}"},
    {"%{COMBINEDAPACHELOG}",
     "83.149.9.216 - - [17/May/2015:10:05:03 +0000] \"GET /presentations/logstash-monitorama-2013"
     "/images/kibana-search.png HTTP/1.1\" 200 203023 \"http://semicomplete.com/presentations/log"
     "stash-monitorama-2013/\" \"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.3"
     "6 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36\"",
     "{\"clientip\":\"83.149.9.216\",\"ident\":\"-\",\"auth\":\"-\",\"timestamp\":\"17/May/2015:"
     "10:05:03 +0000\",\"verb\":\"GET\",\"request\":\"/presentations/logstash-monitorama-2013/im"
     "ages/kibana-search.png\",\"httpversion\":\"1.1\",\"response\":\"200\",\"bytes\":\"203023\""
     ",\"referrer\":\"\\\"http://semicomplete.com/presentations/logstash-monitorama-2013/\\\"\","
     "\"agent\":\"\\\"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, "
     "like Gecko) Chrome/32.0.1700.77 Safari/537.36\\\"\"}"},
    {"%{HTTPD_COMBINEDLOG}",
     "2001:db8::1 - alice@example.com [05/Mar/2024:08:01:02 +0100] \"POST /api/v1/items\?id=5 HTT"
     "P/2.0\" 201 - \"-\" \"curl/8.4.0\"",
     "{\"clientip\":\"2001:db8::1\",\"ident\":\"-\",\"auth\":\"alice@example.com\",\"timestamp\""
     ":\"05/Mar/2024:08:01:02 +0100\",\"verb\":\"POST\",\"request\":\"/api/v1/items\?id=5\",\"ht"
     "tpversion\":\"2.0\",\"response\":\"201\",\"referrer\":\"\\\"-\\\"\",\"agent\":\"\\\"curl/8"
     ".4.0\\\"\"}"},
    {"^%{HTTPDUSER:a} %{HTTPDUSER:b}$",
     "frank ops@example.org",
     "{\"a\":\"frank\",\"b\":\"ops@example.org\"}"},
    {"^\"%{HTTPD_REQUEST}\"$",
     "\"OPTIONS * HTTP/1.1\"",
     "{\"verb\":\"OPTIONS\",\"request\":\"*\",\"httpversion\":\"1.1\"}"},
    {"^%{HTTPDERROR_DATE:d}$",
     "Fri Sep 09 10:42:29.902022 2011",
     "{\"d\":\"Fri Sep 09 10:42:29.902022 2011\"}"},
    {"%{HTTPD20_ERRORLOG}",
     "[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied by server configuration"
     ": /export/home/live/ap/htdocs/test",
     "{\"timestamp\":\"Wed Oct 11 14:32:52 2000\",\"loglevel\":\"error\",\"clientip\":\"127.0.0."
     "1\",\"message\":\"client denied by server configuration: /export/home/live/ap/htdocs/test"
     "\"}"},
    {"%{HTTPD24_ERRORLOG}",
     "[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 72.15.99."
     "187:48220] AH00128: File does not exist: /usr/local/apache2/htdocs/favicon.ico",
     "{\"timestamp\":\"Fri Sep 09 10:42:29.902022 2011\",\"module\":\"core\",\"loglevel\":\"erro"
     "r\",\"pid\":\"35708\",\"tid\":\"4328636416\",\"clientip\":\"72.15.99.187\",\"clientport\":"
     "\"48220\",\"errorcode\":\"AH00128\",\"message\":\"File does not exist: /usr/local/apache2/"
     "htdocs/favicon.ico\"}"},
    {"%{HTTPD_ERRORLOG}",
     "[Tue Mar 05 08:00:01.000001 2024] [proxy:error] [pid 4321:tid 139] (111)Connection refused:"
     " AH00957: http: attempt to connect to 127.0.0.1:8080 (localhost) failed",
     "{\"timestamp\":\"Tue Mar 05 08:00:01.000001 2024\",\"module\":\"proxy\",\"loglevel\":\"err"
     "or\",\"pid\":\"4321\",\"tid\":\"139\",\"proxy_errorcode\":\"111\",\"proxy_message\":\"Conn"
     "ection refused\",\"errorcode\":\"AH00957\",\"message\":\"http: attempt to connect to 127.0"
     ".0.1:8080 (localhost) failed\"}"},
    {"%{HTTPD_ERRORLOG}",
     "[Mon Mar 04 10:11:12.345678 2024] [mpm_event:notice] [pid 1234:tid 140398] AH00489: Apache/"
     "2.4.58 (Unix) configured -- resuming normal operations",
     "{\"timestamp\":\"Mon Mar 04 10:11:12.345678 2024\",\"module\":\"mpm_event\",\"loglevel\":"
     "\"notice\",\"pid\":\"1234\",\"tid\":\"140398\",\"errorcode\":\"AH00489\",\"message\":\"Apa"
     "che/2.4.58 (Unix) configured -- resuming normal operations\"}"},
    {"%{SYSLOGLINE}",
     "Mar  7 09:15:22 bastion sshd[20871]: Accepted publickey for deploy from 203.0.113.45 port 5"
     "2144 ssh2: ED25519 SHA256:Hk3aP0yq",
     "{\"timestamp\":\"Mar  7 09:15:22\",\"logsource\":\"bastion\",\"program\":\"sshd\",\"pid\":"
     "\"20871\",\"message\":\"Accepted publickey for deploy from 203.0.113.45 port 52144 ssh2: E"
     "D25519 SHA256:Hk3aP0yq\"}"},
    {"%{SYSLOGLINE}",
     "Feb 28 23:59:59 fw01 kernel: [1234567.890123] IN=eth0 OUT= MAC=00:16:3e:5e:6c:00 SRC=198.51"
     ".100.7 DST=192.0.2.1",
     "{\"timestamp\":\"Feb 28 23:59:59\",\"logsource\":\"fw01\",\"program\":\"kernel\",\"message"
     "\":\"[1234567.890123] IN=eth0 OUT= MAC=00:16:3e:5e:6c:00 SRC=198.51.100.7 DST=192.0.2.1\"}"},
    {"%{SYSLOGLINE}",
     "2024-03-07T09:15:22.123456+01:00 db2 postgres[911]: LOG:  checkpoint starting: time",
     "{\"timestamp8601\":\"2024-03-07T09:15:22.123456+01:00\",\"logsource\":\"db2\",\"program\":"
     "\"postgres\",\"pid\":\"911\",\"message\":\"LOG:  checkpoint starting: time\"}"},
    {"^%{SYSLOGBASE2} %{GREEDYDATA:message}$",
     "Mar  7 09:15:22 host2 systemd[1]: Started Session 42 of User alice.",
     "{\"timestamp\":\"Mar  7 09:15:22\",\"logsource\":\"host2\",\"program\":\"systemd\",\"pid\""
     ":\"1\",\"message\":\"Started Session 42 of User alice.\"}"},
    {"^%{SYSLOGBASE} %{GREEDYDATA:message}$",
     "Mar  7 09:15:22 <4.3> gw1 dhclient[812]: DHCPACK of 10.0.0.12 from 10.0.0.1",
     "{\"timestamp\":\"Mar  7 09:15:22\",\"facility\":\"4\",\"priority\":\"3\",\"logsource\":\"g"
     "w1\",\"program\":\"dhclient\",\"pid\":\"812\",\"message\":\"DHCPACK of 10.0.0.12 from 10.0"
     ".0.1\"}"},
    {"%{SYSLOGPAMSESSION}",
     "Jun 13 21:54:28 web1 sshd[5211]: pam_unix(sshd:session): session opened for user alice(uid="
     "1000) by (uid=0)",
     "{\"timestamp\":\"Jun 13 21:54:28\",\"logsource\":\"web1\",\"program\":\"sshd\",\"pid\":\"5"
     "211\",\"message\":\"pam_unix(sshd:session): session opened for user alice(uid=1000) by (ui"
     "d=0)\",\"pam_module\":\"pam_unix\",\"pam_caller\":\"sshd:session\",\"pam_session_state\":"
     "\"opened\",\"username\":\"alice\"}"},
    {"%{SYSLOGPAMSESSION}",
     "Jun 13 22:10:03 web1 sshd[5211]: pam_unix(sshd:session): session closed for user alice",
     "{\"timestamp\":\"Jun 13 22:10:03\",\"logsource\":\"web1\",\"program\":\"sshd\",\"pid\":\"5"
     "211\",\"message\":\"pam_unix(sshd:session): session closed for user alice\",\"pam_module\""
     ":\"pam_unix\",\"pam_caller\":\"sshd:session\",\"pam_session_state\":\"closed\",\"username"
     "\":\"alice\"}"},
    {"%{CRONLOG}",
     "Jan 12 06:25:01 web1 CRON[1234]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa"
     "1 1 1)",
     "{\"timestamp\":\"Jan 12 06:25:01\",\"logsource\":\"web1\",\"program\":\"CRON\",\"pid\":\"1"
     "234\",\"user\":\"root\",\"action\":\"CMD\",\"message\":\"command -v debian-sa1 > /dev/null"
     " && debian-sa1 1 1\"}"},
    {"^%{CRON_ACTION:a}$",
     "CMD",
     "{\"a\":\"CMD\"}"},
    {"%{SYSLOG5424LINE}",
     "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed for lonvi"
     "ck on /dev/pts/8",
     "{\"syslog5424_pri\":\"34\",\"syslog5424_ver\":\"1\",\"syslog5424_ts\":\"2003-10-11T22:14:1"
     "5.003Z\",\"syslog5424_host\":\"mymachine.example.com\",\"syslog5424_app\":\"su\",\"syslog5"
     "424_msgid\":\"ID47\",\"syslog5424_msg\":\"'su root' failed for lonvick on /dev/pts/8\"}"},
    {"%{SYSLOG5424LINE}",
     "<165>1 2003-10-11T22:14:15.003000-07:00 192.0.2.1 myproc 8710 - [exampleSDID@32473 iut=\"3"
     "\" eventSource=\"Application\" eventID=\"1011\"] An application event log entry...",
     "{\"syslog5424_pri\":\"165\",\"syslog5424_ver\":\"1\",\"syslog5424_ts\":\"2003-10-11T22:14:"
     "15.003000-07:00\",\"syslog5424_host\":\"192.0.2.1\",\"syslog5424_app\":\"myproc\",\"syslog"
     "5424_proc\":\"8710\",\"syslog5424_sd\":\"[exampleSDID@32473 iut=\\\"3\\\" eventSource=\\\""
     "Application\\\" eventID=\\\"1011\\\"]\",\"syslog5424_msg\":\"An application event log entr"
     "y...\"}"},
    {"^%{SYSLOG5424PRI}%{NONNEGINT:v} %{SYSLOG5424PRINTASCII:a} %{SYSLOG5424SD:sd}$",
     "<13>1 app-1 [a@1 x=\"y\\\"z\"][b@2]",
     "{\"syslog5424_pri\":\"13\",\"v\":\"1\",\"a\":\"app-1\",\"sd\":\"[a@1 x=\\\"y\\\\\\\"z\\\"]"
     "[b@2]\"}"},
    {"^%{SYSLOG5424BASE}$",
     "<14>1 - - - - - -",
     "{\"syslog5424_pri\":\"14\",\"syslog5424_ver\":\"1\"}"},
    {"%{NGINXACCESS}",
     "192.0.2.7 - - [11/Oct/2023:12:34:56 +0000] \"GET /index.html HTTP/1.1\" 200 612 \"-\" \"cur"
     "l/8.4.0\" \"-\"",
     "{\"clientip\":\"192.0.2.7\",\"ident\":\"-\",\"auth\":\"-\",\"timestamp\":\"11/Oct/2023:12:"
     "34:56 +0000\",\"verb\":\"GET\",\"request\":\"/index.html\",\"httpversion\":\"1.1\",\"respo"
     "nse\":\"200\",\"bytes\":\"612\",\"referrer\":\"\\\"-\\\"\",\"agent\":\"\\\"curl/8.4.0\\\""
     "\",\"x_forwarded_for\":\"\\\"-\\\"\"}"},
    {"%{NGINXACCESS}",
     "2001:db8:85a3::8a2e:370:7334 - - [07/Mar/2024:09:15:22 +0000] \"GET /health HTTP/1.1\" 200 "
     "2 \"-\" \"kube-probe/1.29\" \"203.0.113.9, 10.0.0.1\" rt=0.003 uct=\"0.001\"",
     "{\"clientip\":\"2001:db8:85a3::8a2e:370:7334\",\"ident\":\"-\",\"auth\":\"-\",\"timestamp"
     "\":\"07/Mar/2024:09:15:22 +0000\",\"verb\":\"GET\",\"request\":\"/health\",\"httpversion\""
     ":\"1.1\",\"response\":\"200\",\"bytes\":\"2\",\"referrer\":\"\\\"-\\\"\",\"agent\":\"\\\"k"
     "ube-probe/1.29\\\"\",\"x_forwarded_for\":\"\\\"203.0.113.9, 10.0.0.1\\\"\",\"extra\":\"rt="
     "0.003 uct=\\\"0.001\\\"\"}"},
    {"^%{NGUSER:u} %{NGUSERNAME:n}$",
     "j.doe%40corp user@host",
     "{\"u\":\"j.doe%40corp\",\"n\":\"user@host\"}"},
    {"%{NGINXERROR}",
     "2023/10/11 12:34:56 [error] 1234#1234: *5 open() \"/usr/share/nginx/html/favicon.ico\" fail"
     "ed (2: No such file or directory), client: 192.0.2.7, server: localhost, request: \"GET /fa"
     "vicon.ico HTTP/1.1\", host: \"example.com\", referrer: \"http://example.com/\"",
     "{\"timestamp\":\"2023/10/11 12:34:56\",\"loglevel\":\"error\",\"pid\":\"1234\",\"tid\":\"1"
     "234\",\"connection_id\":\"5\",\"message\":\"open() \\\"/usr/share/nginx/html/favicon.ico\\"
     "\" failed (2: No such file or directory)\",\"clientip\":\"192.0.2.7\",\"server\":\"localho"
     "st\",\"verb\":\"GET\",\"request\":\"/favicon.ico\",\"httpversion\":\"1.1\",\"host\":\"exam"
     "ple.com\",\"referrer\":\"http://example.com/\"}"},
    {"%{NGINX_ERRORLOG}",
     "2024/03/07 09:15:23 [error] 31#31: *7 connect() failed (111: Connection refused) while conn"
     "ecting to upstream, client: 10.0.0.5, server: api.example.com, request: \"POST /v1/jobs HTT"
     "P/1.1\", upstream: \"http://127.0.0.1:9000/v1/jobs\", host: \"api.example.com\"",
     "{\"timestamp\":\"2024/03/07 09:15:23\",\"loglevel\":\"error\",\"pid\":\"31\",\"tid\":\"31"
     "\",\"connection_id\":\"7\",\"message\":\"connect() failed (111: Connection refused) while "
     "connecting to upstream\",\"clientip\":\"10.0.0.5\",\"server\":\"api.example.com\",\"verb\""
     ":\"POST\",\"request\":\"/v1/jobs\",\"httpversion\":\"1.1\",\"upstream\":\"http://127.0.0.1"
     ":9000/v1/jobs\",\"host\":\"api.example.com\"}"},
    {"%{NGINXERROR}",
     "2024/03/07 09:15:22 [notice] 1#1: start worker processes",
     "{\"timestamp\":\"2024/03/07 09:15:22\",\"loglevel\":\"notice\",\"pid\":\"1\",\"tid\":\"1\""
     ",\"message\":\"start worker processes\"}"},
    {"^%{NGINX_ERROR_DATE:d}%{NGINX_ERROR_CONTEXT}$",
     "2024/03/07 09:15:22, client: 10.0.0.6, server: _",
     "{\"d\":\"2024/03/07 09:15:22\",\"clientip\":\"10.0.0.6\",\"server\":\"_\"}"},
    {"%{JAVASTACKTRACEPART}",
     "\tat org.example.App.main(App.java:42)",
     "{\"class\":\"org.example.App\",\"method\":\"main\",\"file\":\"App.java\",\"line\":\"42\"}"},
    {"%{JAVASTACKTRACEPART}",
     "\tat java.base/java.lang.Thread.run(Thread.java:833)",
     "{\"class\":\"java.lang.Thread\",\"method\":\"run\",\"file\":\"Thread.java\",\"line\":\"833"
     "\"}"},
    {"%{JAVASTACKTRACEPART}",
     "\tat sun.reflect.NativeMethodAccessorImpl.invoke0(Native Method)",
     "{\"class\":\"sun.reflect.NativeMethodAccessorImpl\",\"method\":\"invoke0\",\"file\":\"Nati"
     "ve Method\"}"},
    {"%{JAVASTACKTRACEPART}",
     "\tat com.example.Outer$Inner.<init>(Outer.java:10)",
     "{\"class\":\"com.example.Outer$Inner\",\"method\":\"<init>\",\"file\":\"Outer.java\",\"lin"
     "e\":\"10\"}"},
    {"%{JAVASTACKTRACEPART}",
     "\tat app//org.example.Svc.lambda$run$0(Svc.java:77)",
     "{\"class\":\"org.example.Svc\",\"method\":\"lambda$run$0\",\"file\":\"Svc.java\",\"line\":"
     "\"77\"}"},
    {"^Exception in thread \"%{DATA:thread}\" %{JAVACLASS:exception}: %{JAVALOGMESSAGE:reason}$",
     "Exception in thread \"main\" java.lang.IllegalStateException: queue full",
     "{\"thread\":\"main\",\"exception\":\"java.lang.IllegalStateException\",\"reason\":\"queue "
     "full\"}"},
    {"^%{JAVAMETHOD:m} %{JAVAFILE:f} %{JAVATHREAD:t}$",
     "<clinit> Unknown Source TP-Processor3",
     "{\"m\":\"<clinit>\",\"f\":\"Unknown Source\",\"t\":\"TP-Processor3\"}"},
    {"%{JAVATHREAD:t}",
     "[TP-Processor12] INFO",
     "{\"t\":\"TP-Processor12\"}"},
    {"%{CATALINALOG}",
     "Oct 11, 2023 12:34:56 PM org.apache.catalina.startup.Catalina start",
     "{\"timestamp\":\"Oct 11, 2023 12:34:56 PM\",\"class\":\"org.apache.catalina.startup.Catali"
     "na\",\"logmessage\":\"start\"}"},
    {"^%{CATALINA_DATESTAMP:d}$",
     "Mar 7, 2024 9:15:22 AM",
     "{\"d\":\"Mar 7, 2024 9:15:22 AM\"}"},
    {"%{TOMCATLOG}",
     "2014-01-09 20:03:28,269 -0800 | ERROR | com.example.service.ExampleService - something comp"
     "eletely unexpected happened...",
     "{\"timestamp\":\"2014-01-09 20:03:28,269 -0800\",\"level\":\"ERROR\",\"class\":\"com.examp"
     "le.service.ExampleService\",\"logmessage\":\"something compeletely unexpected happened..."
     "\"}"},
    {"^%{TOMCAT_DATESTAMP:d}$",
     "2024-03-07 09:15:22 +0100",
     "{\"d\":\"2024-03-07 09:15:22 +0100\"}"},
    {"^%{IPV4:a} > %{IPV4:b}$",
     "10.0.0.255 > 192.168.001.010",
     "{\"a\":\"10.0.0.255\",\"b\":\"192.168.001.010\"}"},
    {"^%{IPV4_OCTET:o}$",
     "250",
     "{\"o\":\"250\"}"},
    {"^%{IPV6:a}$",
     "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
     "{\"a\":\"2001:0db8:85a3:0000:0000:8a2e:0370:7334\"}"},
    {"^%{IPV6:a} %{IPV6:b} %{IPV6:c} %{IPV6:d}$",
     "::1 fe80::1ff:fe23:4567:890a%eth0 ::ffff:192.0.2.128 64:ff9b::192.0.2.33",
     "{\"a\":\"::1\",\"b\":\"fe80::1ff:fe23:4567:890a%eth0\",\"c\":\"::ffff:192.0.2.128\",\"d\":"
     "\"64:ff9b::192.0.2.33\"}"},
    {"^%{IPV6_GROUP:g}$",
     "db8",
     "{\"g\":\"db8\"}"},
    {"^%{IPV6_IPV4:v4}$",
     "192.0.2.1",
     "{\"v4\":\"192.0.2.1\"}"},
    {"from %{IP:src} to %{IP:dst}",
     "DROP from 203.0.113.45 to 2001:db8::8:800:200c:417a proto=tcp",
     "{\"src\":\"203.0.113.45\",\"dst\":\"2001:db8::8:800:200c:417a\"}"},
    {"^%{IP:ip}$",
     "256.1.1.1",
     "{\"tags\":[\"_grokparsefailure\"]}"},
    {"^%{MAC:a} %{MAC:b} %{MAC:c}$",
     "00:16:3e:5e:6c:00 00-16-3E-5E-6C-00 0016.3e5e.6c00",
     "{\"a\":\"00:16:3e:5e:6c:00\",\"b\":\"00-16-3E-5E-6C-00\",\"c\":\"0016.3e5e.6c00\"}"},
    {"^%{COMMONMAC:a} %{WINDOWSMAC:b} %{CISCOMAC:c}$",
     "a4:5e:60:e2:1f:7b A4-5E-60-E2-1F-7B a45e.60e2.1f7b",
     "{\"a\":\"a4:5e:60:e2:1f:7b\",\"b\":\"A4-5E-60-E2-1F-7B\",\"c\":\"a45e.60e2.1f7b\"}"},
    {"^%{HOSTNAME:h}$",
     "web-01.prod.example.com",
     "{\"h\":\"web-01.prod.example.com\"}"},
    {"^%{HOSTNAME:h}$",
     "xn--bcher-kva.example.",
     "{\"h\":\"xn--bcher-kva.example.\"}"},
    {"^%{IPORHOST:a} %{IPORHOST:b}$",
     "db.internal 10.1.2.3",
     "{\"a\":\"db.internal\",\"b\":\"10.1.2.3\"}"},
    {"^%{HOSTPORT:a} %{HOSTPORT:b}$",
     "db.example.com:5432 10.0.0.1:80",
     "{\"a\":\"db.example.com:5432\",\"b\":\"10.0.0.1:80\"}"},
    {"^%{URI:u}$",
     "https://user:pa55@example.com:8443/a/b.html\?x=1&y=%20z#frag",
     "{\"u\":\"https://user:pa55@example.com:8443/a/b.html\?x=1&y=%20z#frag\",\"port\":\"8443\"}"},
    {"^%{URI:u}$",
     "http://[2001:db8::1]:8080/metrics",
     "{\"u\":\"http://[2001:db8::1]:8080/metrics\",\"port\":\"8080\"}"},
    {"^%{URIPROTO:p}://%{URIHOST:h}%{URIPATH:path}%{URIPARAM:param}$",
     "svn+ssh://repo.example.org:2222/trunk/src\?rev=42",
     "{\"p\":\"svn+ssh\",\"h\":\"repo.example.org:2222\",\"port\":\"2222\",\"path\":\"/trunk/src"
     "\",\"param\":\"\?rev=42\"}"},
    {"^%{URIPATHPARAM:p} %{URIQUERY:q}$",
     "/search\?q=grok+patterns&page=2 a=1&b[]=2",
     "{\"p\":\"/search\?q=grok+patterns&page=2\",\"q\":\"a=1&b[]=2\"}"},
    {"^%{PATH:a} %{PATH:b}$",
     "/var/log/nginx/access.log C:\\Windows\\System32\\drivers\\etc\\hosts",
     "{\"a\":\"/var/log/nginx/access.log\",\"b\":\"C:\\\\Windows\\\\System32\\\\drivers\\\\etc\\"
     "\\hosts\"}"},
    {"^%{UNIXPATH:a} %{WINPATH:b}$",
     "/home/a~b/x,v1.txt \\\\fileserver\\share\\q3.xlsx",
     "{\"a\":\"/home/a~b/x,v1.txt\",\"b\":\"\\\\\\\\fileserver\\\\share\\\\q3.xlsx\"}"},
    {"^%{TTY:t} %{TTY:u}$",
     "/dev/pts/8 /dev/tty1",
     "{\"t\":\"/dev/pts/8\",\"u\":\"/dev/tty1\"}"},
    {"^%{EMAILADDRESS:e}$",
     "first.last+tag@mail.example.co.uk",
     "{\"e\":\"first.last+tag@mail.example.co.uk\"}"},
    {"^%{EMAILLOCALPART:l}@",
     "o'brien@example.ie",
     "{\"tags\":[\"_grokparsefailure\"]}"},
    {"^%{EMAILLOCALPART:l}@",
     "a.b+c=d:e@example.ie",
     "{\"l\":\"a.b+c=d:e\"}"},
    {"^%{UNIXPATH:p}:%{INT:l}$",
     "/var/log/x.log:42",
     "{\"p\":\"/var/log/x.log\",\"l\":\"42\"}"},
    {"%{QS:q}",
     "x\\\"a\" \"b\"",
     "{\"q\":\"\\\" \\\"\"}"},
    {"^%{TIMESTAMP_CN:t}$",
     "2024-03-07 09:15:22.123",
     "{\"t\":\"2024-03-07 09:15:22.123\"}"},
    {"^%{USER:u} %{USERNAME:n}$",
     "www-data j.doe_1",
     "{\"u\":\"www-data\",\"n\":\"j.doe_1\"}"},
    {"^%{UUID:u}$",
     "123e4567-e89b-12d3-a456-426614174000",
     "{\"u\":\"123e4567-e89b-12d3-a456-426614174000\"}"},
    {"^%{URN:u} %{URN:v}$",
     "urn:isbn:0451450523 urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
     "{\"u\":\"urn:isbn:0451450523\",\"v\":\"urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66\"}"},
    {"^%{NUMBER:n:float} %{INT:i:int} %{BASE10NUM:b} %{NUMBER:s}$",
     "-3.25 -42 .5 +7",
     "{\"n\":-3.25,\"i\":-42,\"b\":\".5\",\"s\":\"+7\"}"},
    {"^%{BASE16NUM:h} %{BASE16FLOAT:f} %{POSINT:p:int} %{NONNEGINT:z:int}$",
     "0x1F 0x1.8 7 0",
     "{\"h\":\"0x1F\",\"f\":\"0x1.8\",\"p\":7,\"z\":0}"},
    {"^%{WORD:w} %{NOTSPACE:ns}%{SPACE}%{DATA:d}: %{GREEDYDATA:rest}$",
     "hello a=b,c   key: value: more",
     "{\"w\":\"hello\",\"ns\":\"a=b,c\",\"d\":\"key\",\"rest\":\"value: more\"}"},
    {"^%{QS:a} %{QUOTEDSTRING:b} %{QS:c}$",
     "\"quoted \\\"inner\\\" text\" 'single' `back`",
     "{\"a\":\"\\\"quoted \\\\\\\"inner\\\\\\\" text\\\"\",\"b\":\"'single'\",\"c\":\"`back`\"}"},
    {"^%{TIMESTAMP_ISO8601:a} %{TIMESTAMP_ISO8601:b} %{TIMESTAMP_ISO8601:c}$",
     "2024-03-07T09:15:22Z 2024-03-07T09:15:22.123456+01:00 2024-03-07 09:15:22,123",
     "{\"a\":\"2024-03-07T09:15:22Z\",\"b\":\"2024-03-07T09:15:22.123456+01:00\",\"c\":\"2024-03"
     "-07 09:15:22,123\"}"},
    {"^%{HTTPDATE:ts}$",
     "07/Mar/2024:09:15:22 +0000",
     "{\"ts\":\"07/Mar/2024:09:15:22 +0000\"}"},
    {"^%{SYSLOGTIMESTAMP:a}, %{SYSLOGTIMESTAMP:b}$",
     "Mar  7 09:15:22, Dec 31 23:59:59",
     "{\"a\":\"Mar  7 09:15:22\",\"b\":\"Dec 31 23:59:59\"}"},
    {"^%{DATESTAMP_RFC822:ts}$",
     "Thu Mar 7 2024 09:15:22 UTC",
     "{\"ts\":\"Thu Mar 7 2024 09:15:22 UTC\"}"},
    {"^%{DATESTAMP_RFC2822:ts}$",
     "Thu, 07 Mar 2024 09:15:22 +0000",
     "{\"ts\":\"Thu, 07 Mar 2024 09:15:22 +0000\"}"},
    {"^%{DATESTAMP_OTHER:ts}$",
     "Thu Mar 7 09:15:22 EST 2024",
     "{\"ts\":\"Thu Mar 7 09:15:22 EST 2024\"}"},
    {"^%{DATESTAMP_EVENTLOG:ts}$",
     "20240307091522",
     "{\"ts\":\"20240307091522\"}"},
    {"^%{DATESTAMP:a} / %{DATESTAMP:b}$",
     "03/07/2024 09:15:22 / 07.03.2024-09:15:22",
     "{\"a\":\"03/07/2024 09:15:22\",\"b\":\"07.03.2024-09:15:22\"}"},
    {"^%{DATE:a} %{DATE_US:b} %{DATE_EU:c}$",
     "1/2/24 12/31/2023 31.12.2023",
     "{\"a\":\"1/2/24\",\"b\":\"12/31/2023\",\"c\":\"31.12.2023\"}"},
    {"^%{TIME:t} %{MONTH:m} %{MONTHNUM:mn} %{MONTHNUM2:m2} %{MONTHDAY:md} %{DAY:d} %{YEAR:y} %{TZ"
     ":z}$",
     "23:59:60 September 9 09 31 Wednesday 2024 PDT",
     "{\"t\":\"23:59:60\",\"m\":\"September\",\"mn\":\"9\",\"m2\":\"09\",\"md\":\"31\",\"d\":\"W"
     "ednesday\",\"y\":\"2024\",\"z\":\"PDT\"}"},
    {"^%{HOUR:h}:%{MINUTE:m}:%{SECOND:s} %{ISO8601_TIMEZONE:z} %{ISO8601_SECOND:s2}$",
     "9:05:07.250 +05:30 59,5",
     "{\"h\":\"9\",\"m\":\"05\",\"s\":\"07.250\",\"z\":\"+05:30\",\"s2\":\"59,5\"}"},
    {"^%{SYSLOGPROG} %{SYSLOGFACILITY} %{PROG:p2}$",
     "postfix/smtpd[4242] <13.6> kernel",
     "{\"program\":\"postfix/smtpd\",\"pid\":\"4242\",\"facility\":\"13\",\"priority\":\"6\",\"p"
     "2\":\"kernel\"}"},
    {"^%{SYSLOGHOST:h}$",
     "mail-gw.example.net",
     "{\"h\":\"mail-gw.example.net\"}"},
    {"^%{LOGLEVEL:a} %{LOGLEVEL:b} %{LOGLEVEL:c} %{LOGLEVEL:d} %{LOGLEVEL:e} %{LOGLEVEL:f}$",
     "INFO warn WARNING Error CRIT emerg",
     "{\"a\":\"INFO\",\"b\":\"warn\",\"c\":\"WARNING\",\"d\":\"Error\",\"e\":\"CRIT\",\"f\":\"em"
     "erg\"}"},
    {"^%{LOGLEVEL:a} %{LOGLEVEL:b} %{LOGLEVEL:c} %{LOGLEVEL:d} %{LOGLEVEL:e}$",
     "debug TRACE FATAL notice Information",
     "{\"a\":\"debug\",\"b\":\"TRACE\",\"c\":\"FATAL\",\"d\":\"notice\",\"e\":\"Information\"}"},
    /* What Logstash's definitions match, where sluice's once differed: level
     * abbreviations, German month names, minutes required in a zone offset,
     * two letters at least in a URI scheme, '-' as an HTTP status. */
    {"^%{LOGLEVEL:a} %{LOGLEVEL:b} %{LOGLEVEL:c} %{LOGLEVEL:d}$",
     "Inf War Err Crit",
     "{\"a\":\"Inf\",\"b\":\"War\",\"c\":\"Err\",\"d\":\"Crit\"}"},
    {"%{LOGLEVEL:l}",
     "[Informational]",
     "{\"l\":\"Information\"}"},
    {"^%{MONTH:a} %{MONTH:b} %{MONTH:c} %{MONTH:d}$",
     "Okt März Mai Dez",
     "{\"a\":\"Okt\",\"b\":\"März\",\"c\":\"Mai\",\"d\":\"Dez\"}"},
    {"^%{MONTH:m}$",
     "JAN",
     "{\"tags\":[\"_grokparsefailure\"]}"},
    {"^%{HTTPDATE:d}$",
     "03/Dez/2024:23:59:59 +0100",
     "{\"d\":\"03/Dez/2024:23:59:59 +0100\"}"},
    {"%{MONTHNUM:m}",
     "12",
     "{\"m\":\"1\"}"},
    {"%{TIME:t}",
     "at 123:45:06",
     "{\"t\":\"23:45:06\"}"},
    {"^%{TIMESTAMP_ISO8601:t}$",
     "2024-03-07T09:15:22+01",
     "{\"tags\":[\"_grokparsefailure\"]}"},
    {"^%{URIPROTO:p}:",
     "x://y",
     "{\"tags\":[\"_grokparsefailure\"]}"},
    {"^%{SYSLOGPROG}",
     "foo:bar[12]",
     "{\"program\":\"foo:bar\",\"pid\":\"12\"}"},
    {"%{HTTPD_COMBINEDLOG}",
     "198.51.100.23 - - [03/Dez/2024:23:59:59 +0100] \"GET /a%20b HTTP/1.1\" - 0 \"-\" \"-\"",
     "{\"clientip\":\"198.51.100.23\",\"ident\":\"-\",\"auth\":\"-\",\"timestamp\":\"03/D"
     "ez/2024:23:59:59 +0100\",\"verb\":\"GET\",\"request\":\"/a%20b\",\"httpversion\":\"1.1"
     "\",\"bytes\":\"0\",\"referrer\":\"\\\"-\\\"\",\"agent\":\"\\\"-\\\"\"}"},
    {"^%{LOGLEVEL:l}$",
     "verbose",
     "{\"tags\":[\"_grokparsefailure\"]}"},
};

/* The same library in ECS mode (ecs_compatibility: v8, the default), for the
 * families whose names differ: httpd, linux-syslog, java, nginx and the syslog
 * pieces of grok-patterns. What Logstash's ecs-v1 patterns capture, plus
 * source.ip (an address that is an IP, for CIDR queries). */
static const struct lib_case ecs_cases[] = {
    {"^%{EMAILLOCALPART:l}@",
     "o'brien@example.ie",
     "{\"l\":\"o'brien\"}"},
    {"^%{URIPROTO:p}://%{URIHOST:h}/",
     "https://example.com:8443/",
     "{\"p\":\"https\",\"h\":\"example.com:8443\"}"},
    {"%{COMMONAPACHELOG}",
     "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 23"
     "26",
     "{\"source\":{\"address\":\"127.0.0.1\",\"ip\":\"127.0.0.1\"},\"user\":{\"name\":\"fra"
     "nk\"},\"timestamp\":\"10/Oct/2000:13:55:36 -0700\",\"http\":{\"request\":{\"method\":"
     "\"GET\"},\"version\":\"1.0\",\"response\":{\"status_code\":200,\"body\":{\"bytes\":23"
     "26}}},\"url\":{\"original\":\"/apache_pb.gif\"}}"},
    {"%{HTTPD_COMMONLOG}",
     "192.168.1.20 - - [28/Jul/2006:10:27:10 -0300] \"-\" 408 -",
     "{\"source\":{\"address\":\"192.168.1.20\",\"ip\":\"192.168.1.20\"},\"timestamp\":\"28"
     "/Jul/2006:10:27:10 -0300\",\"http\":{\"response\":{\"status_code\":408}}}"},
    {"%{COMBINEDAPACHELOG}",
     "83.149.9.216 - - [17/May/2015:10:05:03 +0000] \"GET /presentations/logstash-monitoram"
     "a-2013/images/kibana-search.png HTTP/1.1\" 200 203023 \"http://semicomplete.com/prese"
     "ntations/logstash-monitorama-2013/\" \"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1)"
     " AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36\"",
     "{\"source\":{\"address\":\"83.149.9.216\",\"ip\":\"83.149.9.216\"},\"timestamp\":\"17"
     "/May/2015:10:05:03 +0000\",\"http\":{\"request\":{\"method\":\"GET\",\"referrer\":\"h"
     "ttp://semicomplete.com/presentations/logstash-monitorama-2013/\"},\"version\":\"1.1\""
     ",\"response\":{\"status_code\":200,\"body\":{\"bytes\":203023}}},\"url\":{\"original"
     "\":\"/presentations/logstash-monitorama-2013/images/kibana-search.png\"},\"user_agent"
     "\":{\"original\":\"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36\"}}"},
    {"%{HTTPD_COMBINEDLOG}",
     "2001:db8::1 - alice@example.com [05/Mar/2024:08:01:02 +0100] \"POST /api/v1/items\?id"
     "=5 HTTP/2.0\" 201 - \"-\" \"curl/8.4.0\"",
     "{\"source\":{\"address\":\"2001:db8::1\",\"ip\":\"2001:db8::1\"},\"user\":{\"name\":"
     "\"alice@example.com\"},\"timestamp\":\"05/Mar/2024:08:01:02 +0100\",\"http\":{\"reque"
     "st\":{\"method\":\"POST\"},\"version\":\"2.0\",\"response\":{\"status_code\":201}},\""
     "url\":{\"original\":\"/api/v1/items\?id=5\"},\"user_agent\":{\"original\":\"curl/8.4."
     "0\"}}"},
    {"^%{HTTPDUSER:a} %{HTTPDUSER:b}$",
     "frank ops@example.org",
     "{\"a\":\"frank\",\"b\":\"ops@example.org\"}"},
    {"^\"%{HTTPD_REQUEST}\"$",
     "\"OPTIONS * HTTP/1.1\"",
     "{\"http\":{\"request\":{\"method\":\"OPTIONS\"},\"version\":\"1.1\"},\"url\":{\"origi"
     "nal\":\"*\"}}"},
    {"^%{HTTPDERROR_DATE:d}$",
     "Fri Sep 09 10:42:29.902022 2011",
     "{\"d\":\"Fri Sep 09 10:42:29.902022 2011\"}"},
    {"%{HTTPD20_ERRORLOG}",
     "[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied by server configu"
     "ration: /export/home/live/ap/htdocs/test",
     "{\"timestamp\":\"Wed Oct 11 14:32:52 2000\",\"log\":{\"level\":\"error\"},\"source\":"
     "{\"address\":\"127.0.0.1\",\"ip\":\"127.0.0.1\"},\"message\":\"client denied by serve"
     "r configuration: /export/home/live/ap/htdocs/test\"}"},
    {"%{HTTPD24_ERRORLOG}",
     "[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 72."
     "15.99.187:48220] AH00128: File does not exist: /usr/local/apache2/htdocs/favicon.ico",
     "{\"timestamp\":\"Fri Sep 09 10:42:29.902022 2011\",\"apache\":{\"error\":{\"module\":"
     "\"core\"}},\"log\":{\"level\":\"error\"},\"process\":{\"pid\":35708,\"thread\":{\"id"
     "\":4328636416}},\"source\":{\"address\":\"72.15.99.187\",\"ip\":\"72.15.99.187\",\"po"
     "rt\":48220},\"error\":{\"code\":\"AH00128\"},\"message\":\"File does not exist: /usr/"
     "local/apache2/htdocs/favicon.ico\"}"},
    {"%{HTTPD_ERRORLOG}",
     "[Tue Mar 05 08:00:01.000001 2024] [proxy:error] [pid 4321:tid 139] (111)Connection re"
     "fused: AH00957: http: attempt to connect to 127.0.0.1:8080 (localhost) failed",
     "{\"timestamp\":\"Tue Mar 05 08:00:01.000001 2024\",\"apache\":{\"error\":{\"module\":"
     "\"proxy\",\"proxy\":{\"error\":{\"code\":\"111\",\"message\":\"Connection refused\"}}"
     "}},\"log\":{\"level\":\"error\"},\"process\":{\"pid\":4321,\"thread\":{\"id\":139}},"
     "\"error\":{\"code\":\"AH00957\"},\"message\":\"http: attempt to connect to 127.0.0.1:"
     "8080 (localhost) failed\"}"},
    {"%{HTTPD_ERRORLOG}",
     "[Mon Mar 04 10:11:12.345678 2024] [mpm_event:notice] [pid 1234:tid 140398] AH00489: A"
     "pache/2.4.58 (Unix) configured -- resuming normal operations",
     "{\"timestamp\":\"Mon Mar 04 10:11:12.345678 2024\",\"apache\":{\"error\":{\"module\":"
     "\"mpm_event\"}},\"log\":{\"level\":\"notice\"},\"process\":{\"pid\":1234,\"thread\":{"
     "\"id\":140398}},\"error\":{\"code\":\"AH00489\"},\"message\":\"Apache/2.4.58 (Unix) c"
     "onfigured -- resuming normal operations\"}"},
    {"%{SYSLOGLINE}",
     "Mar  7 09:15:22 bastion sshd[20871]: Accepted publickey for deploy from 203.0.113.45 "
     "port 52144 ssh2: ED25519 SHA256:Hk3aP0yq",
     "{\"timestamp\":\"Mar  7 09:15:22\",\"host\":{\"hostname\":\"bastion\"},\"process\":{"
     "\"name\":\"sshd\",\"pid\":20871},\"message\":\"Accepted publickey for deploy from 203"
     ".0.113.45 port 52144 ssh2: ED25519 SHA256:Hk3aP0yq\"}"},
    {"%{SYSLOGLINE}",
     "Feb 28 23:59:59 fw01 kernel: [1234567.890123] IN=eth0 OUT= MAC=00:16:3e:5e:6c:00 SRC="
     "198.51.100.7 DST=192.0.2.1",
     "{\"timestamp\":\"Feb 28 23:59:59\",\"host\":{\"hostname\":\"fw01\"},\"process\":{\"na"
     "me\":\"kernel\"},\"message\":\"[1234567.890123] IN=eth0 OUT= MAC=00:16:3e:5e:6c:00 SR"
     "C=198.51.100.7 DST=192.0.2.1\"}"},
    {"%{SYSLOGLINE}",
     "2024-03-07T09:15:22.123456+01:00 db2 postgres[911]: LOG:  checkpoint starting: time",
     "{\"timestamp\":\"2024-03-07T09:15:22.123456+01:00\",\"host\":{\"hostname\":\"db2\"},"
     "\"process\":{\"name\":\"postgres\",\"pid\":911},\"message\":\"LOG:  checkpoint starti"
     "ng: time\"}"},
    {"^%{SYSLOGBASE2} %{GREEDYDATA:message}$",
     "Mar  7 09:15:22 host2 systemd[1]: Started Session 42 of User alice.",
     "{\"timestamp\":\"Mar  7 09:15:22\",\"host\":{\"hostname\":\"host2\"},\"process\":{\"n"
     "ame\":\"systemd\",\"pid\":1},\"message\":\"Started Session 42 of User alice.\"}"},
    {"^%{SYSLOGBASE} %{GREEDYDATA:message}$",
     "Mar  7 09:15:22 <4.3> gw1 dhclient[812]: DHCPACK of 10.0.0.12 from 10.0.0.1",
     "{\"timestamp\":\"Mar  7 09:15:22\",\"log\":{\"syslog\":{\"facility\":{\"code\":4},\"p"
     "riority\":3}},\"host\":{\"hostname\":\"gw1\"},\"process\":{\"name\":\"dhclient\",\"pi"
     "d\":812},\"message\":\"DHCPACK of 10.0.0.12 from 10.0.0.1\"}"},
    {"%{SYSLOGPAMSESSION}",
     "Jun 13 21:54:28 web1 sshd[5211]: pam_unix(sshd:session): session opened for user alic"
     "e(uid=1000) by (uid=0)",
     "{\"timestamp\":\"Jun 13 21:54:28\",\"host\":{\"hostname\":\"web1\"},\"process\":{\"na"
     "me\":\"sshd\",\"pid\":5211},\"message\":\"pam_unix(sshd:session): session opened for "
     "user alice(uid=1000) by (uid=0)\",\"system\":{\"auth\":{\"pam\":{\"module\":\"pam_uni"
     "x\",\"origin\":\"sshd:session\",\"session_state\":\"opened\"}}},\"user\":{\"name\":\""
     "alice\"}}"},
    {"%{SYSLOGPAMSESSION}",
     "Jun 13 22:10:03 web1 sshd[5211]: pam_unix(sshd:session): session closed for user alic"
     "e",
     "{\"timestamp\":\"Jun 13 22:10:03\",\"host\":{\"hostname\":\"web1\"},\"process\":{\"na"
     "me\":\"sshd\",\"pid\":5211},\"message\":\"pam_unix(sshd:session): session closed for "
     "user alice\",\"system\":{\"auth\":{\"pam\":{\"module\":\"pam_unix\",\"origin\":\"sshd"
     ":session\",\"session_state\":\"closed\"}}},\"user\":{\"name\":\"alice\"}}"},
    {"%{CRONLOG}",
     "Jan 12 06:25:01 web1 CRON[1234]: (root) CMD (command -v debian-sa1 > /dev/null && deb"
     "ian-sa1 1 1)",
     "{\"timestamp\":\"Jan 12 06:25:01\",\"host\":{\"hostname\":\"web1\"},\"process\":{\"na"
     "me\":\"CRON\",\"pid\":1234},\"user\":{\"name\":\"root\"},\"system\":{\"cron\":{\"acti"
     "on\":\"CMD\"}},\"message\":\"command -v debian-sa1 > /dev/null && debian-sa1 1 1\"}"},
    {"^%{CRON_ACTION:a}$",
     "CMD",
     "{\"a\":\"CMD\"}"},
    {"%{SYSLOG5424LINE}",
     "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed for"
     " lonvick on /dev/pts/8",
     "{\"log\":{\"syslog\":{\"priority\":34}},\"system\":{\"syslog\":{\"version\":\"1\"}},"
     "\"timestamp\":\"2003-10-11T22:14:15.003Z\",\"host\":{\"hostname\":\"mymachine.example"
     ".com\"},\"process\":{\"name\":\"su\"},\"event\":{\"code\":\"ID47\"},\"message\":\"'su"
     " root' failed for lonvick on /dev/pts/8\"}"},
    {"%{SYSLOG5424LINE}",
     "<165>1 2003-10-11T22:14:15.003000-07:00 192.0.2.1 myproc 8710 - [exampleSDID@32473 iu"
     "t=\"3\" eventSource=\"Application\" eventID=\"1011\"] An application event log entry."
     "..",
     "{\"log\":{\"syslog\":{\"priority\":165}},\"system\":{\"syslog\":{\"version\":\"1\",\""
     "structured_data\":\"[exampleSDID@32473 iut=\\\"3\\\" eventSource=\\\"Application\\\" "
     "eventID=\\\"1011\\\"]\"}},\"timestamp\":\"2003-10-11T22:14:15.003000-07:00\",\"host\""
     ":{\"hostname\":\"192.0.2.1\"},\"process\":{\"name\":\"myproc\",\"pid\":8710},\"messag"
     "e\":\"An application event log entry...\"}"},
    {"^%{SYSLOG5424PRI}%{NONNEGINT:v} %{SYSLOG5424PRINTASCII:a} %{SYSLOG5424SD:sd}$",
     "<13>1 app-1 [a@1 x=\"y\\\"z\"][b@2]",
     "{\"log\":{\"syslog\":{\"priority\":13}},\"v\":\"1\",\"a\":\"app-1\",\"sd\":\"[a@1 x="
     "\\\"y\\\\\\\"z\\\"][b@2]\"}"},
    {"^%{SYSLOG5424BASE}$",
     "<14>1 - - - - - -",
     "{\"log\":{\"syslog\":{\"priority\":14}},\"system\":{\"syslog\":{\"version\":\"1\"}}}"},
    {"%{NGINXACCESS}",
     "192.0.2.7 - - [11/Oct/2023:12:34:56 +0000] \"GET /index.html HTTP/1.1\" 200 612 \"-\""
     " \"curl/8.4.0\" \"-\"",
     "{\"source\":{\"address\":\"192.0.2.7\",\"ip\":\"192.0.2.7\"},\"timestamp\":\"11/Oct/2"
     "023:12:34:56 +0000\",\"http\":{\"request\":{\"method\":\"GET\"},\"version\":\"1.1\","
     "\"response\":{\"status_code\":200,\"body\":{\"bytes\":612}}},\"url\":{\"original\":\""
     "/index.html\"},\"user_agent\":{\"original\":\"curl/8.4.0\"}}"},
    {"%{NGINXACCESS}",
     "2001:db8:85a3::8a2e:370:7334 - - [07/Mar/2024:09:15:22 +0000] \"GET /health HTTP/1.1"
     "\" 200 2 \"-\" \"kube-probe/1.29\" \"203.0.113.9, 10.0.0.1\" rt=0.003 uct=\"0.001\"",
     "{\"source\":{\"address\":\"2001:db8:85a3::8a2e:370:7334\",\"ip\":\"2001:db8:85a3::8a2"
     "e:370:7334\"},\"timestamp\":\"07/Mar/2024:09:15:22 +0000\",\"http\":{\"request\":{\"m"
     "ethod\":\"GET\"},\"version\":\"1.1\",\"response\":{\"status_code\":200,\"body\":{\"by"
     "tes\":2}}},\"url\":{\"original\":\"/health\"},\"user_agent\":{\"original\":\"kube-pro"
     "be/1.29\"},\"nginx\":{\"access\":{\"remote_ip_list\":\"203.0.113.9, 10.0.0.1\",\"extr"
     "a\":\"rt=0.003 uct=\\\"0.001\\\"\"}}}"},
    {"^%{NGUSER:u} %{NGUSERNAME:n}$",
     "j.doe%40corp user@host",
     "{\"u\":\"j.doe%40corp\",\"n\":\"user@host\"}"},
    {"%{NGINXERROR}",
     "2023/10/11 12:34:56 [error] 1234#1234: *5 open() \"/usr/share/nginx/html/favicon.ico"
     "\" failed (2: No such file or directory), client: 192.0.2.7, server: localhost, reque"
     "st: \"GET /favicon.ico HTTP/1.1\", host: \"example.com\", referrer: \"http://example."
     "com/\"",
     "{\"timestamp\":\"2023/10/11 12:34:56\",\"log\":{\"level\":\"error\"},\"process\":{\"p"
     "id\":1234,\"thread\":{\"id\":1234}},\"nginx\":{\"error\":{\"connection_id\":5,\"serve"
     "r\":\"localhost\"}},\"message\":\"open() \\\"/usr/share/nginx/html/favicon.ico\\\" fa"
     "iled (2: No such file or directory)\",\"source\":{\"address\":\"192.0.2.7\",\"ip\":\""
     "192.0.2.7\"},\"http\":{\"request\":{\"method\":\"GET\",\"referrer\":\"http://example."
     "com/\"},\"version\":\"1.1\"},\"url\":{\"original\":\"/favicon.ico\",\"domain\":\"exam"
     "ple.com\"}}"},
    {"%{NGINX_ERRORLOG}",
     "2024/03/07 09:15:23 [error] 31#31: *7 connect() failed (111: Connection refused) whil"
     "e connecting to upstream, client: 10.0.0.5, server: api.example.com, request: \"POST "
     "/v1/jobs HTTP/1.1\", upstream: \"http://127.0.0.1:9000/v1/jobs\", host: \"api.example"
     ".com\"",
     "{\"timestamp\":\"2024/03/07 09:15:23\",\"log\":{\"level\":\"error\"},\"process\":{\"p"
     "id\":31,\"thread\":{\"id\":31}},\"nginx\":{\"error\":{\"connection_id\":7,\"server\":"
     "\"api.example.com\",\"upstream\":\"http://127.0.0.1:9000/v1/jobs\"}},\"message\":\"co"
     "nnect() failed (111: Connection refused) while connecting to upstream\",\"source\":{"
     "\"address\":\"10.0.0.5\",\"ip\":\"10.0.0.5\"},\"http\":{\"request\":{\"method\":\"POS"
     "T\"},\"version\":\"1.1\"},\"url\":{\"original\":\"/v1/jobs\",\"domain\":\"api.example"
     ".com\"}}"},
    {"%{NGINXERROR}",
     "2024/03/07 09:15:22 [notice] 1#1: start worker processes",
     "{\"timestamp\":\"2024/03/07 09:15:22\",\"log\":{\"level\":\"notice\"},\"process\":{\""
     "pid\":1,\"thread\":{\"id\":1}},\"message\":\"start worker processes\"}"},
    {"^%{NGINX_ERROR_DATE:d}%{NGINX_ERROR_CONTEXT}$",
     "2024/03/07 09:15:22, client: 10.0.0.6, server: _",
     "{\"d\":\"2024/03/07 09:15:22\",\"source\":{\"address\":\"10.0.0.6\",\"ip\":\"10.0.0.6"
     "\"},\"nginx\":{\"error\":{\"server\":\"_\"}}}"},
    {"%{JAVASTACKTRACEPART}",
     "\tat org.example.App.main(App.java:42)",
     "{\"java\":{\"log\":{\"origin\":{\"class\":{\"name\":\"org.example.App\"}}}},\"log\":{"
     "\"origin\":{\"function\":\"main\",\"file\":{\"name\":\"App.java\",\"line\":42}}}}"},
    {"%{JAVASTACKTRACEPART}",
     "\tat java.base/java.lang.Thread.run(Thread.java:833)",
     "{\"java\":{\"log\":{\"origin\":{\"class\":{\"name\":\"java.lang.Thread\"}}}},\"log\":"
     "{\"origin\":{\"function\":\"run\",\"file\":{\"name\":\"Thread.java\",\"line\":833}}}}"},
    {"%{JAVASTACKTRACEPART}",
     "\tat sun.reflect.NativeMethodAccessorImpl.invoke0(Native Method)",
     "{\"java\":{\"log\":{\"origin\":{\"class\":{\"name\":\"sun.reflect.NativeMethodAccesso"
     "rImpl\"}}}},\"log\":{\"origin\":{\"function\":\"invoke0\",\"file\":{\"name\":\"Native"
     " Method\"}}}}"},
    {"%{JAVASTACKTRACEPART}",
     "\tat com.example.Outer$Inner.<init>(Outer.java:10)",
     "{\"java\":{\"log\":{\"origin\":{\"class\":{\"name\":\"com.example.Outer$Inner\"}}}},"
     "\"log\":{\"origin\":{\"function\":\"<init>\",\"file\":{\"name\":\"Outer.java\",\"line"
     "\":10}}}}"},
    {"%{JAVASTACKTRACEPART}",
     "\tat app//org.example.Svc.lambda$run$0(Svc.java:77)",
     "{\"java\":{\"log\":{\"origin\":{\"class\":{\"name\":\"org.example.Svc\"}}}},\"log\":{"
     "\"origin\":{\"function\":\"lambda$run$0\",\"file\":{\"name\":\"Svc.java\",\"line\":77"
     "}}}}"},
    {"^Exception in thread \"%{DATA:thread}\" %{JAVACLASS:exception}: %{JAVALOGMESSAGE:reas"
     "on}$",
     "Exception in thread \"main\" java.lang.IllegalStateException: queue full",
     "{\"thread\":\"main\",\"exception\":\"java.lang.IllegalStateException\",\"reason\":\"q"
     "ueue full\"}"},
    {"^%{JAVAMETHOD:m} %{JAVAFILE:f} %{JAVATHREAD:t}$",
     "<clinit> Unknown Source TP-Processor3",
     "{\"m\":\"<clinit>\",\"f\":\"Unknown Source\",\"t\":\"TP-Processor3\"}"},
    {"%{JAVATHREAD:t}",
     "[TP-Processor12] INFO",
     "{\"t\":\"TP-Processor12\"}"},
    {"%{CATALINALOG}",
     "Oct 11, 2023 12:34:56 PM org.apache.catalina.startup.Catalina start",
     "{\"timestamp\":\"Oct 11, 2023 12:34:56 PM\",\"java\":{\"log\":{\"origin\":{\"class\":"
     "{\"name\":\"org.apache.catalina.startup.Catalina\"}}}},\"message\":\"start\"}"},
    {"^%{CATALINA_DATESTAMP:d}$",
     "Mar 7, 2024 9:15:22 AM",
     "{\"d\":\"Mar 7, 2024 9:15:22 AM\"}"},
    {"%{TOMCATLOG}",
     "2014-01-09 20:03:28,269 -0800 | ERROR | com.example.service.ExampleService - somethin"
     "g compeletely unexpected happened...",
     "{\"timestamp\":\"2014-01-09 20:03:28,269 -0800\",\"log\":{\"level\":\"ERROR\"},\"java"
     "\":{\"log\":{\"origin\":{\"class\":{\"name\":\"com.example.service.ExampleService\"}}"
     "}},\"message\":\"something compeletely unexpected happened...\"}"},
    {"^%{TOMCAT_DATESTAMP:d}$",
     "2024-03-07 09:15:22 +0100",
     "{\"d\":\"2024-03-07 09:15:22 +0100\"}"},
    {"^%{SYSLOGPROG} %{SYSLOGFACILITY} %{PROG:p2}$",
     "postfix/smtpd[4242] <13.6> kernel",
     "{\"process\":{\"name\":\"postfix/smtpd\",\"pid\":4242},\"log\":{\"syslog\":{\"facilit"
     "y\":{\"code\":13},\"priority\":6}},\"p2\":\"kernel\"}"},
    {"%{COMMONAPACHELOG}",
     "example.com - - [10/Okt/2000:13:55:36 -0700] \"-\" - -",
     "{\"source\":{\"address\":\"example.com\"},\"timestamp\":\"10/Okt/2000:13:55:36 -0700"
     "\"}"},
    {"^%{HTTPD_CLIENTADDRESS} %{HTTPD_CLIENTADDRESS}$",
     "10.1.2.3 proxy.example.net",
     "{\"source\":{\"address\":[\"10.1.2.3\",\"proxy.example.net\"],\"ip\":\"10.1.2.3\"}}"},
    {"%{HTTPD_COMBINEDLOG}",
     "198.51.100.23 - - [03/Dez/2024:23:59:59 +0100] \"GET /a%20b HTTP/1.1\" - 0 \"https://"
     "example.org/\" \"-\"",
     "{\"source\":{\"address\":\"198.51.100.23\",\"ip\":\"198.51.100.23\"},\"timestamp\":\""
     "03/Dez/2024:23:59:59 +0100\",\"http\":{\"request\":{\"method\":\"GET\",\"referrer\":"
     "\"https://example.org/\"},\"version\":\"1.1\",\"response\":{\"body\":{\"bytes\":0}}},"
     "\"url\":{\"original\":\"/a%20b\"}}"},
    {"^%{CATALINA7_DATESTAMP:d}$",
     "Jan 9, 2014 7:13:13 AM",
     "{\"d\":\"Jan 9, 2014 7:13:13 AM\"}"},
    {"%{CATALINA7_LOG}",
     "Jan 9, 2014 7:13:13 AM org.apache.catalina.startup.HostConfig deployDirectory INFO: D"
     "eploying web application directory manager",
     "{\"timestamp\":\"Jan 9, 2014 7:13:13 AM\",\"java\":{\"log\":{\"origin\":{\"class\":{"
     "\"name\":\"org.apache.catalina.startup.HostConfig\"}}}},\"log\":{\"origin\":{\"functi"
     "on\":\"deployDirectory\"},\"level\":\"INFO\"},\"message\":\"Deploying web application"
     " directory manager\"}"},
    {"^%{CATALINA8_DATESTAMP:d}$",
     "31-Jul-2020 16:40:38.578",
     "{\"d\":\"31-Jul-2020 16:40:38.578\"}"},
    {"%{CATALINA8_LOG}",
     "31-Jul-2020 16:40:38.578 INFO [main] org.apache.catalina.startup.Catalina.start Serve"
     "r startup in [1234] milliseconds",
     "{\"timestamp\":\"31-Jul-2020 16:40:38.578\",\"log\":{\"level\":\"INFO\",\"origin\":{"
     "\"function\":\"start\"}},\"java\":{\"log\":{\"origin\":{\"thread\":{\"name\":\"main\""
     "},\"class\":{\"name\":\"org.apache.catalina.startup.Catalina\"}}}},\"message\":\"Serv"
     "er startup in [1234] milliseconds\"}"},
    {"%{CATALINALOG}",
     "31-Jul-2020 16:40:38.578 WARNING [http-nio-8080-exec-1] org.apache.catalina.core.Stan"
     "dardWrapperValve.invoke Servlet failed",
     "{\"timestamp\":\"31-Jul-2020 16:40:38.578\",\"log\":{\"level\":\"WARNING\",\"origin\""
     ":{\"function\":\"invoke\"}},\"java\":{\"log\":{\"origin\":{\"thread\":{\"name\":\"htt"
     "p-nio-8080-exec-1\"},\"class\":{\"name\":\"org.apache.catalina.core.StandardWrapperVa"
     "lve\"}}}},\"message\":\"Servlet failed\"}"},
    {"%{TOMCATLOG}",
     "2014-01-09 20:03:28,269 | ERROR | com.example.Svc - boom\n\tat com.example.Svc.run(Sv"
     "c.java:12)",
     "{\"timestamp\":\"2014-01-09 20:03:28,269\",\"log\":{\"level\":\"ERROR\"},\"java\":{\""
     "log\":{\"origin\":{\"class\":{\"name\":\"com.example.Svc\"}}}},\"message\":\"boom\\n"
     "\\tat com.example.Svc.run(Svc.java:12)\"}"},    {"^%{TOMCAT50_DATESTAMP:d}$",
     "2014-01-09 17:32:25,527 -0800",
     "{\"d\":\"2014-01-09 17:32:25,527 -0800\"}"},
    {"%{TOMCAT50_LOG}",
     "2014-01-09 17:32:25,527 -0800 INFO org.apache.catalina.Foo [localhost]org.apache.catal"
     "ina.core.ContainerBase: addChild(x): Deploying manager",
     "{\"timestamp\":\"2014-01-09 17:32:25,527 -0800\",\"log\":{\"level\":\"INFO\",\"origin\""
     ":{\"function\":\"addChild\"}},\"tomcat\":{\"context\":{\"name\":\"localhost\"}},\"java"
     "\":{\"log\":{\"origin\":{\"class\":{\"name\":\"org.apache.catalina.core.ContainerBase\""
     "}}}},\"message\":\"Deploying manager\"}"},
    {"%{TOMCAT6_LOG}",
     "Jan 9, 2014 7:13:13 AM org.apache.catalina.startup.Catalina start",
     "{\"timestamp\":\"Jan 9, 2014 7:13:13 AM\",\"java\":{\"log\":{\"origin\":{\"class\":{\""
     "name\":\"org.apache.catalina.startup.Catalina\"}}}},\"message\":\"start\"}"},
    {"%{TOMCAT8_LOG}",
     "31-Jul-2020 16:40:38.578 INFO [main] org.apache.catalina.startup.Catalina.start Server"
     " startup in 1 ms",
     "{\"timestamp\":\"31-Jul-2020 16:40:38.578\",\"log\":{\"level\":\"INFO\",\"origin\":{\""
     "function\":\"start\"}},\"java\":{\"log\":{\"origin\":{\"thread\":{\"name\":\"main\"},\""
     "class\":{\"name\":\"org.apache.catalina.startup.Catalina\"}}}},\"message\":\"Server st"
     "artup in 1 ms\"}"},
    {"%{TOMCATLEGACY_LOG}",
     "2014-01-09 20:03:28,269 -0800 | ERROR | com.example.Svc - boom",
     "{\"timestamp\":\"2014-01-09 20:03:28,269 -0800\",\"log\":{\"level\":\"ERROR\"},\"java\""
     ":{\"log\":{\"origin\":{\"class\":{\"name\":\"com.example.Svc\"}}}},\"message\":\"boom\""
     "}"},
    {"%{TOMCATLOG}",
     "2014-01-09 17:32:25 [ctx]: started",
     "{\"timestamp\":\"2014-01-09 17:32:25\",\"tomcat\":{\"context\":{\"name\":\"ctx\"}},\"m"
     "essage\":\"started\"}"},
};

/* Runs table (n cases) with mode_opt ("" or "  ecs_compatibility: disabled\n"). */
static void run_lib_cases(const struct lib_case *table, size_t n, const char *mode_opt,
                          const char *what)
{
    for (size_t i = 0; i < n; i++) {
        const struct lib_case *c = &table[i];
        char opts[1024];
        struct sl_buf pat;
        sl_buf_init(&pat, 0);
        for (const char *p = c->pattern; *p; p++) {  /* YAML single quotes: ' -> '' */
            sl_buf_append(&pat, p, *p == '\'' ? 1 : 0);
            sl_buf_putc(&pat, *p);
        }
        snprintf(opts, sizeof(opts), "  field: __line\n  patterns: ['%s']\n%s",
                 sl_buf_cstr(&pat), mode_opt);
        sl_buf_free(&pat);
        void *f = mk(opts);
        if (!f) {
            fprintf(stderr, "%s[%zu] %s: %s", what, i, c->pattern, errs(&cfg));
            t_failed_checks++;
            continue;
        }
        struct sl_value e = {0};
        sl_value_set_object(&e);
        sl_value_set_cstr(sl_obj_putc(&e, "__line"), c->line);
        run(f, &e);
        sl_obj_del(&e, "__line", 6);
        if (strcmp(js(&e), c->want) != 0) {
            fprintf(stderr, "%s[%zu] %s on\n  %s\ngave     %s\nexpected %s\n", what, i,
                    c->pattern, c->line, js(&e), c->want);
            t_failed_checks++;
        }
        sl_value_clear(&e);
        unload(f);
    }
}

TEST(library_patterns)
{
    run_lib_cases(lib_cases, SL_ARRAY_LEN(lib_cases), "  ecs_compatibility: disabled\n",
                  "lib_cases");
}

TEST(library_patterns_ecs)
{
    run_lib_cases(ecs_cases, SL_ARRAY_LEN(ecs_cases), "", "ecs_cases");
    /* v1 is v8 for patterns, as in Logstash. */
    run_lib_cases(ecs_cases, 3, "  ecs_compatibility: v1\n", "ecs_cases (v1)");
}

/* Whether a built-in file belongs to a mode's set: "<dir>/..." or no directory. */
static bool in_set(const char *file, const char *dir)
{
    const char *slash = strchr(file, '/');
    return !slash || (strncmp(file, dir, (size_t)(slash - file)) == 0 &&
                      dir[slash - file] == '\0');
}

/* Whether table has a case whose pattern refers to name. */
static bool covered(const struct lib_case *table, size_t n, const char *name)
{
    char ref[72];
    snprintf(ref, sizeof(ref), "%%{%s", name);
    for (size_t k = 0; k < n; k++) {
        const char *hit = strstr(table[k].pattern, ref);
        if (hit && (hit[strlen(ref)] == '}' || hit[strlen(ref)] == ':')) {
            return true;
        }
    }
    return false;
}

/* The built-in library of one mode (its directory's files and the shared ones). */
static struct sl_grok_lib *mode_lib(const char *dir)
{
    struct sl_grok_lib *lib = sl_grok_lib_new();
    char err[512];
    for (size_t i = 0; sl_grok_builtin_patterns[i]; i += 2) {
        const char *text = sl_grok_builtin_patterns[i + 1];
        if (in_set(sl_grok_builtin_patterns[i], dir)) {
            CHECK_INT(sl_grok_lib_add_text(lib, sl_grok_builtin_patterns[i], text, strlen(text),
                                           err, sizeof(err)), 0);
        }
    }
    return lib;
}

/* Every pattern of a mode's library compiles on its own, with no group that
 * no field reads, and has a test line: in the mode's table, or - when the
 * other mode defines it the same - in either. Returns the names seen. */
static size_t check_mode(const char *dir, const char *other, const struct lib_case *table,
                         size_t n, const struct lib_case *other_table, size_t other_n)
{
    struct sl_grok_lib *lib = mode_lib(dir), *olib = mode_lib(other);
    char err[512];
    size_t names = 0;
    for (size_t i = 0; sl_grok_builtin_patterns[i]; i += 2) {
        if (!in_set(sl_grok_builtin_patterns[i], dir)) {
            continue;
        }
        /* A family with a conformance file (tests/data/grok/<family>.json, run by
         * tests/e2e/test_grok_patterns.py in both modes) is covered there by
         * whole lines; its names must still compile here. */
        const char *base = strrchr(sl_grok_builtin_patterns[i], '/');
        base = base ? base + 1 : sl_grok_builtin_patterns[i];
        size_t blen = strlen(base), sfx = strlen("-patterns");
        if (blen > sfx && strcmp(base + blen - sfx, "-patterns") == 0) {
            blen -= sfx;  /* legacy/mcollective-patterns: mcollective's lines */
        }
        char data[256];
        snprintf(data, sizeof(data), "tests/data/grok/%.*s.json", (int)blen, base);
        bool conformance = access(data, R_OK) == 0;
        const char *p = sl_grok_builtin_patterns[i + 1];
        while (*p) {
            const char *eol = strchr(p, '\n');
            size_t len = eol ? (size_t)(eol - p) : strlen(p);
            size_t nl = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "abcdefghijklmnopqrstuvwxyz0123456789_");
            if (nl > 0 && nl < len && *p != '#') {
                char name[64], ref[72];
                snprintf(name, sizeof(name), "%.*s", (int)nl, p);
                names++;
                const char *mine = sl_grok_lib_get(lib, name);
                const char *theirs = sl_grok_lib_get(olib, name);
                bool shared = mine && theirs && strcmp(mine, theirs) == 0;
                if (!conformance && !covered(table, n, name) &&
                    !(shared && covered(other_table, other_n, name))) {
                    fprintf(stderr, "library pattern %s (%s) has no test line\n", name,
                            sl_grok_builtin_patterns[i]);
                    t_failed_checks++;
                }
                snprintf(ref, sizeof(ref), "%%{%s}", name);
                struct sl_grok *g = sl_grok_compile(lib, ref, true, err, sizeof(err));
                if (!g) {
                    fprintf(stderr, "library pattern %s (%s): %s\n", name, dir, err);
                    t_failed_checks++;
                } else if (onig_number_of_captures(g->re) != (int)g->ncaps) {
                    /* A group no field reads still costs every match its bookkeeping. */
                    fprintf(stderr, "library pattern %s (%s): %d groups for %zu fields\n", name,
                            dir, onig_number_of_captures(g->re), g->ncaps);
                    t_failed_checks++;
                }
                sl_grok_free(g);
            }
            p += len + (eol ? 1 : 0);
        }
    }
    sl_grok_lib_free(lib);
    sl_grok_lib_free(olib);
    return names;
}

TEST(library_coverage)
{
    CHECK(check_mode("legacy", "ecs-v1", lib_cases, SL_ARRAY_LEN(lib_cases), ecs_cases,
                     SL_ARRAY_LEN(ecs_cases)) > 100);
    CHECK(check_mode("ecs-v1", "legacy", ecs_cases, SL_ARRAY_LEN(ecs_cases), lib_cases,
                     SL_ARRAY_LEN(lib_cases)) > 100);
}

int main(void)
{
    RUN(descriptor);
    RUN(captures_and_types);
    RUN(named_groups_and_nested_targets);
    RUN(existing_fields_and_overwrite);
    RUN(alternatives_into_one_field);
    RUN(typed_captures_and_existing_fields);
    RUN(nested_field_names);
    RUN(shared_parent_paths);
    RUN(many_top_level_captures);
    RUN(captures_match_lookups_on_random_events);
    RUN(miss_leaves_event_alone);
    RUN(empty_captures);
    RUN(failure_tags);
    RUN(several_patterns_in_order);
    RUN(match_option);
    RUN(named_captures_only);
    RUN(pattern_definitions_and_dir);
    RUN(config_errors);
    RUN(timeout);
    RUN(timeout_holds_for_possessive_patterns);
    RUN(caret_is_a_line_anchor);
    RUN(arena_scope);
    RUN(arena_path_matches_heap_path);
    RUN(int_conversion);
    RUN(threads);
    RUN(engine);
    RUN(ecs_modes);
    RUN(engine_parity);
    RUN(greedy_tail);
    RUN(lazy_tail);
    RUN(greedy_tail_takes_a_10_mb_line);
    RUN(library_patterns);
    RUN(library_patterns_ecs);
    RUN(library_coverage);
    sl_cfg_free(&cfg);
    return TEST_SUMMARY();
}
