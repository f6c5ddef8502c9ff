/*
 * config_test.c - lib/config.c: the YAML tree and its positions, ${VAR}
 * expansion, every typed getter's success and error path (exact error text
 * with line:col), unknown keys, and the limits against hostile input.
 */
#include "sluice/config.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

static int load(struct sl_cfg *cfg, const char *text)
{
    return sl_cfg_load_string(cfg, "t.yml", text, strlen(text));
}

/* All recorded error lines as one string ("" when there are none). */
static const char *errs(struct sl_cfg *cfg)
{
    return cfg->errors.data ? sl_buf_cstr(&cfg->errors) : "";
}

TEST(tree_positions)
{
    struct sl_cfg cfg;
    CHECK_INT(load(&cfg, "# comment\nname: web\nport: \"80\"\n"
                         "out:\n  hosts:\n    - a\n    - 'b'\n"),
              0);
    CHECK_INT(cfg.nerrors, 0);
    struct sl_cfg_node *r = cfg.root;
    CHECK(r && r->type == SL_CFG_MAP);
    CHECK_INT(r->n, 3);
    CHECK_STR(r->keys[0], "name");
    CHECK_INT(r->key_nodes[0]->line, 2);
    CHECK_INT(r->key_nodes[0]->col, 1);
    CHECK_STR(r->items[0]->scalar, "web");
    CHECK_INT(r->items[0]->line, 2);
    CHECK_INT(r->items[0]->col, 7);
    CHECK(!r->items[0]->quoted);
    CHECK(r->items[1]->quoted);
    struct sl_cfg_node *out = sl_cfg_get(r, "out");
    CHECK(out && out->type == SL_CFG_MAP);
    CHECK_INT(out->line, 5);
    CHECK_INT(out->col, 3);
    struct sl_cfg_node *hosts = sl_cfg_get(out, "hosts");
    CHECK(hosts && hosts->type == SL_CFG_SEQ);
    CHECK_INT(hosts->n, 2);
    CHECK_STR(hosts->items[1]->scalar, "b");
    CHECK_INT(hosts->items[1]->line, 7);
    CHECK_INT(hosts->items[1]->col, 7);
    CHECK(hosts->items[1]->quoted);
    CHECK(sl_cfg_get(r, "nope") == NULL);
    CHECK(sl_cfg_get(NULL, "name") == NULL);
    CHECK(sl_cfg_get(hosts, "name") == NULL);
    sl_cfg_free(&cfg);
}

TEST(getter_str)
{
    struct sl_cfg cfg;
    CHECK_INT(load(&cfg, "a: hello\nb: ''\nc: ~\nd:\ne: {x: 1}\nf: [1]\ng: !!str null\n"), 0);
    char *s;
    CHECK_INT(sl_cfg_str(&cfg, cfg.root, "out", "a", "def", &s), 0);
    CHECK_STR(s, "hello");
    free(s);
    CHECK_INT(sl_cfg_str(&cfg, cfg.root, "out", "b", "def", &s), 0);
    CHECK_STR(s, "");  /* quoted empty is a value, not null */
    free(s);
    CHECK_INT(sl_cfg_str(&cfg, cfg.root, "out", "c", "def", &s), 0);
    CHECK_STR(s, "def");
    free(s);
    CHECK_INT(sl_cfg_str(&cfg, cfg.root, "out", "d", "def", &s), 0);
    CHECK_STR(s, "def");
    free(s);
    CHECK_INT(sl_cfg_str(&cfg, cfg.root, "out", "g", "def", &s), 0);
    CHECK_STR(s, "null");  /* !!str makes it a string */
    free(s);
    CHECK_INT(sl_cfg_str(&cfg, cfg.root, "out", "absent", NULL, &s), 0);
    CHECK(s == NULL);
    CHECK_INT(sl_cfg_str(&cfg, NULL, "out", "a", "x", &s), 0);
    CHECK_STR(s, "x");
    free(s);
    CHECK_INT(sl_cfg_str(&cfg, cfg.root, "out", "e", "def", &s), SL_EINVAL);
    CHECK_STR(s, "def");
    free(s);
    CHECK_INT(sl_cfg_str(&cfg, cfg.root, "", "f", NULL, &s), SL_EINVAL);
    CHECK(s == NULL);
    CHECK_INT(cfg.nerrors, 2);
    CHECK_STR(errs(&cfg), "t.yml:5:4: out: option 'e' must be a string, got a map\n"
                          "t.yml:6:4: option 'f' must be a string, got a list\n");
    sl_cfg_free(&cfg);
}

TEST(getter_bool)
{
    struct sl_cfg cfg;
    CHECK_INT(load(&cfg, "a: true\nb: No\nc: ON\nd: off\ne: \"yes\"\nf: FALSE\n"
                         "g: maybe\nh: [x]\ni: 1\nj:\n"),
              0);
    bool v;
    CHECK_INT(sl_cfg_bool(&cfg, cfg.root, "x", "a", false, &v), 0);
    CHECK(v);
    CHECK_INT(sl_cfg_bool(&cfg, cfg.root, "x", "b", true, &v), 0);
    CHECK(!v);
    CHECK_INT(sl_cfg_bool(&cfg, cfg.root, "x", "c", false, &v), 0);
    CHECK(v);
    CHECK_INT(sl_cfg_bool(&cfg, cfg.root, "x", "d", true, &v), 0);
    CHECK(!v);
    CHECK_INT(sl_cfg_bool(&cfg, cfg.root, "x", "e", false, &v), 0);
    CHECK(v);
    CHECK_INT(sl_cfg_bool(&cfg, cfg.root, "x", "f", true, &v), 0);
    CHECK(!v);
    CHECK_INT(sl_cfg_bool(&cfg, cfg.root, "x", "j", true, &v), 0);
    CHECK(v);
    CHECK_INT(sl_cfg_bool(&cfg, cfg.root, "x", "absent", true, &v), 0);
    CHECK(v);
    CHECK_INT(sl_cfg_bool(&cfg, cfg.root, "x", "g", true, &v), SL_EINVAL);
    CHECK(v);
    CHECK_INT(sl_cfg_bool(&cfg, cfg.root, "x", "h", false, &v), SL_EINVAL);
    CHECK(!v);
    CHECK_INT(sl_cfg_bool(&cfg, cfg.root, "x", "i", false, &v), SL_EINVAL);
    CHECK_STR(errs(&cfg), "t.yml:7:4: x: option 'g' must be true or false, got 'maybe'\n"
                          "t.yml:8:4: x: option 'h' must be true or false, got a list\n"
                          "t.yml:9:4: x: option 'i' must be true or false, got '1'\n");
    sl_cfg_free(&cfg);
}

TEST(getter_int)
{
    struct sl_cfg cfg;
    CHECK_INT(load(&cfg, "a: 42\nb: -7\nc: +3\nd: 70000\ne: 0\nf: 12x\ng: \" 5\"\n"
                         "h: 99999999999999999999\ni: {}\nj: 5\nk: \"-\"\n"),
              0);
    int64_t v;
    CHECK_INT(sl_cfg_int(&cfg, cfg.root, "in", "a", 1, 0, 100, &v), 0);
    CHECK_INT(v, 42);
    CHECK_INT(sl_cfg_int(&cfg, cfg.root, "in", "b", 1, -10, 10, &v), 0);
    CHECK_INT(v, -7);
    CHECK_INT(sl_cfg_int(&cfg, cfg.root, "in", "c", 1, INT64_MIN, INT64_MAX, &v), 0);
    CHECK_INT(v, 3);
    CHECK_INT(sl_cfg_int(&cfg, cfg.root, "in", "absent", 17, 0, 100, &v), 0);
    CHECK_INT(v, 17);
    CHECK_INT(sl_cfg_int(&cfg, cfg.root, "in", "d", 80, 1, 65535, &v), SL_EINVAL);
    CHECK_INT(v, 80);
    CHECK_INT(sl_cfg_int(&cfg, cfg.root, "in", "e", 4, 1, INT64_MAX, &v), SL_EINVAL);
    CHECK_INT(v, 4);
    CHECK_INT(sl_cfg_int(&cfg, cfg.root, "in", "j", 4, INT64_MIN, 3, &v), SL_EINVAL);
    CHECK_INT(sl_cfg_int(&cfg, cfg.root, "in", "f", 4, 0, 100, &v), SL_EINVAL);
    CHECK_INT(v, 4);
    CHECK_INT(sl_cfg_int(&cfg, cfg.root, "in", "g", 4, 0, 100, &v), SL_EINVAL);
    CHECK_INT(sl_cfg_int(&cfg, cfg.root, "in", "h", 4, INT64_MIN, INT64_MAX, &v), SL_EINVAL);
    CHECK_INT(sl_cfg_int(&cfg, cfg.root, "in", "i", 4, 0, 100, &v), SL_EINVAL);
    CHECK_INT(sl_cfg_int(&cfg, cfg.root, "in", "k", 4, 0, 100, &v), SL_EINVAL);
    CHECK_INT(cfg.nerrors, 8);
    CHECK_STR(errs(&cfg),
              "t.yml:4:4: in: option 'd' must be between 1 and 65535, got '70000'\n"
              "t.yml:5:4: in: option 'e' must be at least 1, got '0'\n"
              "t.yml:6:4: in: option 'f' must be an integer, got '12x'\n"
              "t.yml:7:4: in: option 'g' must be an integer, got ' 5'\n"
              "t.yml:8:4: in: option 'h' must be an integer, got '99999999999999999999'\n"
              "t.yml:9:4: in: option 'i' must be an integer, got a map\n"
              "t.yml:10:4: in: option 'j' must be at most 3, got '5'\n"
              "t.yml:11:4: in: option 'k' must be an integer, got '-'\n");
    sl_cfg_free(&cfg);
}

TEST(getter_size)
{
    struct sl_cfg cfg;
    CHECK_INT(load(&cfg, "a: 5mb\nb: 512KB\nc: 100\nd: 2gb\ne: lots\nf: 1\ng: [1]\n"), 0);
    uint64_t v;
    CHECK_INT(sl_cfg_size(&cfg, cfg.root, "q", "a", 1, 0, UINT64_MAX, &v), 0);
    CHECK_INT(v, 5 * 1024 * 1024);
    CHECK_INT(sl_cfg_size(&cfg, cfg.root, "q", "b", 1, 0, UINT64_MAX, &v), 0);
    CHECK_INT(v, 512 * 1024);
    CHECK_INT(sl_cfg_size(&cfg, cfg.root, "q", "c", 1, 0, UINT64_MAX, &v), 0);
    CHECK_INT(v, 100);
    CHECK_INT(sl_cfg_size(&cfg, cfg.root, "q", "absent", 4096, 0, UINT64_MAX, &v), 0);
    CHECK_INT(v, 4096);
    CHECK_INT(sl_cfg_size(&cfg, cfg.root, "q", "d", 9, 1024, 1024 * 1024 * 1024, &v),
              SL_EINVAL);
    CHECK_INT(v, 9);
    CHECK_INT(sl_cfg_size(&cfg, cfg.root, "q", "f", 9, 1000, UINT64_MAX, &v), SL_EINVAL);
    CHECK_INT(sl_cfg_size(&cfg, cfg.root, "q", "e", 9, 0, UINT64_MAX, &v), SL_EINVAL);
    CHECK_INT(v, 9);
    CHECK_INT(sl_cfg_size(&cfg, cfg.root, "q", "g", 9, 0, UINT64_MAX, &v), SL_EINVAL);
    CHECK_STR(errs(&cfg), "t.yml:4:4: q: option 'd' must be between 1kb and 1gb, got '2gb'\n"
                          "t.yml:5:4: q: option 'e' must be a size like 512kb, 5mb, 1gb, "
                          "got 'lots'\n"
                          "t.yml:6:4: q: option 'f' must be at least 1000b, got '1'\n"
                          "t.yml:7:4: q: option 'g' must be a size like 512kb, 5mb, 1gb, "
                          "got a list\n");
    sl_cfg_free(&cfg);
}

TEST(getter_duration)
{
    struct sl_cfg cfg;
    const char *text = "output:\n"
                       "  a: 500ms\n"
                       "  b: 10s\n"
                       "  c: 0\n"
                       "  d: 2h\n"
                       "  e: 15\n"
                       "  timeout: abc\n";
    CHECK_INT(sl_cfg_load_string(&cfg, "shipper.yml", text, strlen(text)), 0);
    struct sl_cfg_node *out = sl_cfg_get(cfg.root, "output");
    uint64_t v;
    CHECK_INT(sl_cfg_duration(&cfg, out, "output", "a", 1, 0, UINT64_MAX, &v), 0);
    CHECK_INT(v, 500);
    CHECK_INT(sl_cfg_duration(&cfg, out, "output", "b", 1, 0, UINT64_MAX, &v), 0);
    CHECK_INT(v, 10000);
    CHECK_INT(sl_cfg_duration(&cfg, out, "output", "c", 1, 0, UINT64_MAX, &v), 0);
    CHECK_INT(v, 0);
    CHECK_INT(sl_cfg_duration(&cfg, out, "output", "absent", 1500, 0, UINT64_MAX, &v), 0);
    CHECK_INT(v, 1500);
    CHECK_INT(sl_cfg_duration(&cfg, out, "output", "d", 7, 1000, 3600000, &v), SL_EINVAL);
    CHECK_INT(v, 7);
    CHECK_INT(sl_cfg_duration(&cfg, out, "output", "b", 7, 0, 1500, &v), SL_EINVAL);
    CHECK_INT(sl_cfg_duration(&cfg, out, "output", "e", 7, 0, UINT64_MAX, &v), SL_EINVAL);
    CHECK_INT(sl_cfg_duration(&cfg, out, "output", "timeout", 7, 0, UINT64_MAX, &v),
              SL_EINVAL);
    CHECK_INT(v, 7);
    CHECK_STR(errs(&cfg),
              "shipper.yml:3:6: output: option 'b' must be at most 1500ms, got '10s'\n"
              "shipper.yml:5:6: output: option 'd' must be between 1s and 1h, got '2h'\n"
              "shipper.yml:6:6: output: option 'e' must be a duration like 500ms, 10s, 5m, "
              "got '15'\n"
              "shipper.yml:7:12: output: option 'timeout' must be a duration like 500ms, 10s, "
              "5m, got 'abc'\n");
    sl_cfg_free(&cfg);
}

TEST(getter_enum)
{
    static const char *const fmts[] = {"text", "json", NULL};
    struct sl_cfg cfg;
    CHECK_INT(load(&cfg, "a: json\nb: TEXT\nc: xml\nd: {}\n"), 0);
    int v;
    CHECK_INT(sl_cfg_enum(&cfg, cfg.root, "log", "a", fmts, 0, &v), 0);
    CHECK_INT(v, 1);
    CHECK_INT(sl_cfg_enum(&cfg, cfg.root, "log", "b", fmts, 1, &v), 0);
    CHECK_INT(v, 0);
    CHECK_INT(sl_cfg_enum(&cfg, cfg.root, "log", "absent", fmts, 1, &v), 0);
    CHECK_INT(v, 1);
    CHECK_INT(sl_cfg_enum(&cfg, cfg.root, "log", "c", fmts, 1, &v), SL_EINVAL);
    CHECK_INT(v, 1);
    CHECK_INT(sl_cfg_enum(&cfg, cfg.root, "log", "d", fmts, 0, &v), SL_EINVAL);
    CHECK_INT(v, 0);
    CHECK_STR(errs(&cfg), "t.yml:3:4: log: option 'c' must be one of text, json, got 'xml'\n"
                          "t.yml:4:4: log: option 'd' must be one of text, json, got a map\n");
    sl_cfg_free(&cfg);
}

TEST(getter_strlist)
{
    struct sl_cfg cfg;
    CHECK_INT(load(&cfg, "a: [x, 'y', \"\"]\nb: /var/log/*.log\nc: []\nd: {k: v}\n"
                         "e:\n  - ok\n  - {k: v}\n  -\nf:\n"),
              0);
    char **v;
    size_t n;
    CHECK_INT(sl_cfg_strlist(&cfg, cfg.root, "in", "a", &v, &n), 0);
    CHECK_INT(n, 3);
    CHECK_STR(v[0], "x");
    CHECK_STR(v[1], "y");
    CHECK_STR(v[2], "");
    CHECK(v[3] == NULL);
    sl_cfg_strv_free(v);
    CHECK_INT(sl_cfg_strlist(&cfg, cfg.root, "in", "b", &v, &n), 0);
    CHECK_INT(n, 1);
    CHECK_STR(v[0], "/var/log/*.log");
    CHECK(v[1] == NULL);
    sl_cfg_strv_free(v);
    CHECK_INT(sl_cfg_strlist(&cfg, cfg.root, "in", "c", &v, &n), 0);
    CHECK_INT(n, 0);
    CHECK(v && v[0] == NULL);
    sl_cfg_strv_free(v);
    CHECK_INT(sl_cfg_strlist(&cfg, cfg.root, "in", "f", &v, &n), 0);
    CHECK_INT(n, 0);
    CHECK(v && v[0] == NULL);
    sl_cfg_strv_free(v);
    CHECK_INT(sl_cfg_strlist(&cfg, cfg.root, "in", "absent", &v, &n), 0);
    CHECK_INT(n, 0);
    CHECK(v && v[0] == NULL);
    sl_cfg_strv_free(v);
    CHECK_INT(sl_cfg_strlist(&cfg, cfg.root, "in", "d", &v, &n), SL_EINVAL);
    CHECK_INT(n, 0);
    CHECK(v && v[0] == NULL);
    sl_cfg_strv_free(v);
    CHECK_INT(sl_cfg_strlist(&cfg, cfg.root, "in", "e", &v, &n), SL_EINVAL);
    CHECK_INT(n, 0);
    CHECK(v && v[0] == NULL);
    sl_cfg_strv_free(v);
    sl_cfg_strv_free(NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:4:4: in: option 'd' must be a string or a list of strings, got a map\n"
              "t.yml:7:5: in: option 'e[1]' must be a string, got a map\n"
              "t.yml:8:4: in: option 'e[2]' must be a string, got nothing\n");
    sl_cfg_free(&cfg);
}

TEST(null_map_defaults)
{
    struct sl_cfg cfg = {0};
    char *s;
    bool b;
    int64_t i;
    uint64_t u;
    int e;
    static const char *const ch[] = {"a", NULL};
    CHECK_INT(sl_cfg_str(&cfg, NULL, "x", "k", "d", &s), 0);
    CHECK_STR(s, "d");
    free(s);
    CHECK_INT(sl_cfg_bool(&cfg, NULL, "x", "k", true, &b), 0);
    CHECK(b);
    CHECK_INT(sl_cfg_int(&cfg, NULL, "x", "k", 5, 0, 10, &i), 0);
    CHECK_INT(i, 5);
    CHECK_INT(sl_cfg_size(&cfg, NULL, "x", "k", 6, 0, 10, &u), 0);
    CHECK_INT(u, 6);
    CHECK_INT(sl_cfg_duration(&cfg, NULL, "x", "k", 7, 0, 10, &u), 0);
    CHECK_INT(u, 7);
    CHECK_INT(sl_cfg_enum(&cfg, NULL, "x", "k", ch, 0, &e), 0);
    CHECK_INT(e, 0);
    CHECK_INT(cfg.nerrors, 0);
    sl_cfg_check_unknown(&cfg, NULL, "x");
    CHECK_INT(cfg.nerrors, 0);
    sl_cfg_free(&cfg);
}

TEST(env_expansion)
{
    setenv("SL_T_HOST", "es1", 1);
    setenv("SL_T_PORT", "9200", 1);
    setenv("SL_T_EMPTY", "", 1);
    unsetenv("SL_T_UNSET");
    struct sl_cfg cfg;
    CHECK_INT(load(&cfg, "a: ${SL_T_HOST}\n"
                         "b: http://${SL_T_HOST}:${SL_T_PORT}/x\n"
                         "c: ${SL_T_UNSET:-fallback}\n"
                         "d: ${SL_T_EMPTY:-dflt}\n"
                         "e: '[${SL_T_UNSET:-}]'\n"
                         "f: cost $5 and $ {x} $${SL_T_PORT}\n"
                         "g: \"${SL_T_HOST}\"\n"
                         "h:\n  - ${SL_T_PORT}\n  - x${SL_T_HOST}\n"
                         "hf: [\"${SL_T_PORT}\"]\n"
                         "${SL_T_HOST}: raw\n"
                         "i: ${SL_T_UNSET:-}\n"
                         "j: ${SL_T_EMPTY}\n"
                         "k: ${SL_T_UNSET:-a b:-c}\n"),
              0);
    struct sl_cfg_node *r = cfg.root;
    CHECK_STR(sl_cfg_get(r, "a")->scalar, "es1");
    CHECK_STR(sl_cfg_get(r, "b")->scalar, "http://es1:9200/x");
    CHECK_STR(sl_cfg_get(r, "c")->scalar, "fallback");
    CHECK_STR(sl_cfg_get(r, "d")->scalar, "dflt");
    CHECK_STR(sl_cfg_get(r, "e")->scalar, "[]");
    CHECK_STR(sl_cfg_get(r, "f")->scalar, "cost $5 and $ {x} $9200");
    CHECK_STR(sl_cfg_get(r, "g")->scalar, "es1");
    struct sl_cfg_node *h = sl_cfg_get(r, "h");
    CHECK_STR(h->items[0]->scalar, "9200");
    CHECK_STR(h->items[1]->scalar, "xes1");
    /* In a flow list '{' ends a plain scalar (YAML), so ${} needs quotes there. */
    CHECK_STR(sl_cfg_get(r, "hf")->items[0]->scalar, "9200");
    /* Keys are never expanded. */
    CHECK_STR(sl_cfg_get(r, "${SL_T_HOST}")->scalar, "raw");
    /* An unquoted value that expands to nothing is null: the default applies. */
    int64_t n;
    CHECK_INT(sl_cfg_int(&cfg, r, "x", "i", 33, 0, 100, &n), 0);
    CHECK_INT(n, 33);
    CHECK_STR(sl_cfg_get(r, "j")->scalar, "");
    CHECK_STR(sl_cfg_get(r, "k")->scalar, "a b:-c");
    sl_cfg_free(&cfg);
}

TEST(env_errors)
{
    unsetenv("SL_T_UNSET");
    unsetenv("SL_T_UNSET2");
    struct sl_cfg cfg;
    CHECK_INT(load(&cfg, "a: ${SL_T_UNSET}\n"
                         "b:\n  c: x-${SL_T_UNSET2}-${SL_T_UNSET}\n"
                         "d: ${SL_T_UNSET\n"
                         "e: ${SL-T}\n"
                         "f: ${}\n"
                         "g: ${1X}\n"),
              SL_EINVAL);
    CHECK_INT(cfg.nerrors, 7);
    CHECK_STR(errs(&cfg),
              "t.yml:1:4: environment variable 'SL_T_UNSET' is not set\n"
              "t.yml:3:6: environment variable 'SL_T_UNSET2' is not set\n"
              "t.yml:3:6: environment variable 'SL_T_UNSET' is not set\n"
              "t.yml:4:4: unterminated '${' in '${SL_T_UNSET'\n"
              "t.yml:5:4: invalid reference '${SL-T}': expected ${VAR} or ${VAR:-default}\n"
              "t.yml:6:4: invalid reference '${}': expected ${VAR} or ${VAR:-default}\n"
              "t.yml:7:4: invalid reference '${1X}': expected ${VAR} or ${VAR:-default}\n");
    /* A failed expansion keeps the text as written. */
    CHECK_STR(sl_cfg_get(cfg.root, "a")->scalar, "${SL_T_UNSET}");
    sl_cfg_free(&cfg);
}

TEST(unknown_keys)
{
    const char *text = "outputs:\n"
                       "  - type: file\n"
                       "    path: /tmp/x\n"
                       "  - type: kafka\n"
                       "    brokers: [a]\n"
                       "    brokerz: [b]\n"
                       "    topic: t\n"
                       "extra: 1\n";
    struct sl_cfg cfg;
    CHECK_INT(sl_cfg_load_string(&cfg, "aggregator.yml", text, strlen(text)), 0);
    struct sl_cfg_node *outs = sl_cfg_get(cfg.root, "outputs");
    CHECK(outs && outs->type == SL_CFG_SEQ && outs->n == 2);
    char *s = NULL;
    sl_cfg_str(&cfg, outs->items[0], "outputs[0] (file)", "type", NULL, &s);
    free(s);
    sl_cfg_str(&cfg, outs->items[0], "outputs[0] (file)", "path", NULL, &s);
    free(s);
    sl_cfg_check_unknown(&cfg, outs->items[0], "outputs[0] (file)");
    CHECK_INT(cfg.nerrors, 0);
    sl_cfg_get(outs->items[1], "type");
    char **v;
    size_t n;
    sl_cfg_strlist(&cfg, outs->items[1], "outputs[1] (kafka)", "brokers", &v, &n);
    sl_cfg_strv_free(v);
    sl_cfg_check_unknown(&cfg, outs->items[1], "outputs[1] (kafka)");
    sl_cfg_check_unknown(&cfg, outs->items[1], "outputs[1] (kafka)");  /* reported once */
    sl_cfg_check_unknown(&cfg, cfg.root, "");
    sl_cfg_check_unknown(&cfg, outs, "outputs");  /* not a map: nothing to check */
    CHECK_INT(cfg.nerrors, 3);
    CHECK_STR(errs(&cfg), "aggregator.yml:6:5: outputs[1] (kafka): unknown option 'brokerz'\n"
                          "aggregator.yml:7:5: outputs[1] (kafka): unknown option 'topic'\n"
                          "aggregator.yml:8:1: unknown option 'extra'\n");
    sl_cfg_free(&cfg);
}

TEST(is_map)
{
    struct sl_cfg cfg;
    CHECK_INT(load(&cfg, "a: {x: 1}\nb:\nc: [1]\nd: str\n"), 0);
    CHECK(sl_cfg_is_map(&cfg, sl_cfg_get(cfg.root, "a"), "a"));
    CHECK(sl_cfg_is_map(&cfg, sl_cfg_get(cfg.root, "b"), "b"));
    CHECK(sl_cfg_is_map(&cfg, NULL, "none"));
    CHECK(!sl_cfg_is_map(&cfg, sl_cfg_get(cfg.root, "c"), "c"));
    CHECK(!sl_cfg_is_map(&cfg, sl_cfg_get(cfg.root, "d"), "pipeline"));
    CHECK_STR(errs(&cfg), "t.yml:3:4: c: must be a map, got a list\n"
                          "t.yml:4:4: pipeline: must be a map, got a string\n");
    sl_cfg_free(&cfg);
}

TEST(syntax_errors)
{
    struct sl_cfg cfg;
    CHECK_INT(load(&cfg, "a: 1\nb: [1, 2\nc: 3\n"), SL_EINVAL);
    CHECK_INT(cfg.nerrors, 1);
    CHECK(cfg.root == NULL);
    CHECK_STR(errs(&cfg), "t.yml:3:2: YAML syntax error: did not find expected ',' or ']' "
                          "(while parsing a flow sequence)\n");
    sl_cfg_free(&cfg);

    CHECK_INT(load(&cfg, "a: 1\n b: 2\n"), SL_EINVAL);
    CHECK_STR(errs(&cfg), "t.yml:2:3: YAML syntax error: mapping values are not allowed in "
                          "this context\n");
    sl_cfg_free(&cfg);

    CHECK_INT(load(&cfg, "a: \"unterminated\n"), SL_EINVAL);
    CHECK_STR(errs(&cfg), "t.yml:2:1: YAML syntax error: found unexpected end of stream "
                          "(while scanning a quoted scalar)\n");
    sl_cfg_free(&cfg);

    /* Invalid UTF-8: the reader knows only the byte offset. */
    CHECK_INT(load(&cfg, "a: \xff\n"), SL_EINVAL);
    CHECK_STR(errs(&cfg), "t.yml:1:1: YAML error: invalid leading UTF-8 octet at byte 3\n");
    sl_cfg_free(&cfg);
}

TEST(structure_errors)
{
    struct sl_cfg cfg;
    CHECK_INT(load(&cfg, "a: 1\nb: 2\na: 3\n"), SL_EINVAL);
    CHECK_STR(errs(&cfg), "t.yml:3:1: duplicate key 'a' (first at line 1)\n");
    CHECK_STR(sl_cfg_get(cfg.root, "a")->scalar, "1");
    sl_cfg_free(&cfg);

    CHECK_INT(load(&cfg, "base: &b {x: 1}\nother: *b\nl: [&c 1]\n"), SL_EINVAL);
    CHECK_STR(errs(&cfg), "t.yml:1:7: anchors are not supported ('&b')\n"
                          "t.yml:2:8: aliases are not supported ('*b')\n"
                          "t.yml:3:5: anchors are not supported ('&c')\n");
    sl_cfg_free(&cfg);

    CHECK_INT(load(&cfg, "- a\n- b\n"), SL_EINVAL);
    CHECK(cfg.root == NULL);
    CHECK_STR(errs(&cfg), "t.yml:1:1: the configuration must be a map of options, got a list\n");
    sl_cfg_free(&cfg);

    CHECK_INT(load(&cfg, "just text\n"), SL_EINVAL);
    CHECK_STR(errs(&cfg),
              "t.yml:1:1: the configuration must be a map of options, got a string\n");
    sl_cfg_free(&cfg);

    CHECK_INT(load(&cfg, "a: 1\n---\nb: 2\n"), SL_EINVAL);
    CHECK_STR(errs(&cfg), "t.yml:2:1: only one YAML document is allowed\n");
    sl_cfg_free(&cfg);

    CHECK_INT(load(&cfg, "? [a, b]\n: 1\nc: 2\n"), SL_EINVAL);
    CHECK_STR(errs(&cfg), "t.yml:1:3: a key must be a string, got a list\n");
    CHECK_INT(cfg.root->n, 1);
    sl_cfg_free(&cfg);

    /* "\0" in a double-quoted scalar would silently cut the C string. */
    CHECK_INT(load(&cfg, "a: \"x\\0y\"\n"), SL_EINVAL);
    CHECK_STR(errs(&cfg), "t.yml:1:4: a value must not contain a NUL character\n");
    sl_cfg_free(&cfg);
}

TEST(empty_documents)
{
    static const char *const empties[] = {"", "\n", "# only a comment\n", "---\n", "~\n",
                                          "--- # c\n...\n"};
    for (size_t i = 0; i < SL_ARRAY_LEN(empties); i++) {
        struct sl_cfg cfg;
        CHECK_INT(load(&cfg, empties[i]), 0);
        CHECK(cfg.root == NULL);
        CHECK_INT(cfg.nerrors, 0);
        int64_t v;
        CHECK_INT(sl_cfg_int(&cfg, cfg.root, "x", "k", 3, 0, 9, &v), 0);
        CHECK_INT(v, 3);
        sl_cfg_free(&cfg);
    }
}

TEST(error_text_is_one_line)
{
    struct sl_cfg cfg;
    CHECK_INT(load(&cfg, "a: \"x\\ny\\tz\"\nb: |\n  0123456789012345678901234567890123456789"
                         "01234567890123456789012345678901234567890123456789\n"),
              0);
    bool v;
    CHECK_INT(sl_cfg_bool(&cfg, cfg.root, "w", "a", false, &v), SL_EINVAL);
    CHECK_INT(sl_cfg_bool(&cfg, cfg.root, "w", "b", false, &v), SL_EINVAL);
    CHECK_STR(errs(&cfg), "t.yml:1:4: w: option 'a' must be true or false, got 'x\\ny\\tz'\n"
                          "t.yml:2:4: w: option 'b' must be true or false, got "
                          "'0123456789012345678901234567890123456789012345678901234567890123"
                          "...'\n");
    sl_cfg_free(&cfg);
}

TEST(load_files)
{
    struct sl_cfg cfg;
    CHECK_INT(sl_cfg_load(&cfg, "/nonexistent/sluice.yml"), SL_EINVAL);
    CHECK_INT(cfg.nerrors, 1);
    CHECK_STR(errs(&cfg), "/nonexistent/sluice.yml:1:1: cannot open: No such file or directory\n");
    CHECK(cfg.root == NULL);
    sl_cfg_free(&cfg);

    CHECK_INT(sl_cfg_load(&cfg, "/"), SL_EINVAL);
    CHECK_STR(errs(&cfg), "/:1:1: cannot read: Is a directory\n");
    sl_cfg_free(&cfg);

    char path[] = "/tmp/sluice_config_test_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *text = "name: from-file\nport: 99\n";
    CHECK_INT(write(fd, text, strlen(text)), (long long)strlen(text));
    close(fd);
    CHECK_INT(sl_cfg_load(&cfg, path), 0);
    CHECK_STR(cfg.file, path);
    int64_t port;
    CHECK_INT(sl_cfg_int(&cfg, cfg.root, "", "port", 0, 0, 10, &port), SL_EINVAL);
    char want[128];
    snprintf(want, sizeof(want), "%s:2:7: option 'port' must be between 0 and 10, got '99'\n",
             path);
    CHECK_STR(errs(&cfg), want);
    sl_cfg_free(&cfg);

    /* A file over the 16 MiB limit is refused before parsing. */
    fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(fd >= 0);
    CHECK_INT(ftruncate(fd, 16 * 1024 * 1024 + 1), 0);
    close(fd);
    CHECK_INT(sl_cfg_load(&cfg, path), SL_EINVAL);
    snprintf(want, sizeof(want), "%s:1:1: file is larger than 16 MiB\n", path);
    CHECK_STR(errs(&cfg), want);
    sl_cfg_free(&cfg);
    unlink(path);
}

TEST(limits)
{
    struct sl_cfg cfg;
    /* Depth: 65 nested flow sequences under the root map. */
    char deep[256] = "a: ";
    for (int i = 0; i < 70; i++) {
        strcat(deep, "[");
    }
    CHECK_INT(load(&cfg, deep), SL_EINVAL);
    CHECK_STR(errs(&cfg), "t.yml:1:67: nested deeper than 64 levels\n");
    CHECK(cfg.root == NULL);
    sl_cfg_free(&cfg);

    /* Nodes: a root map key plus a list of a million items. */
    size_t items = 1000000;
    char *big = malloc(4 + 2 * items + 2);
    char *p = big;
    memcpy(p, "a: [", 4);
    p += 4;
    for (size_t i = 0; i < items; i++) {
        *p++ = '0';
        *p++ = ',';
    }
    p[-1] = ']';
    *p = '\0';
    CHECK_INT(load(&cfg, big), SL_EINVAL);
    CHECK_INT(cfg.nerrors, 1);
    /* Node 1,000,001 is item 999,998 (after the map, its key and the list). */
    CHECK_STR(errs(&cfg), "t.yml:1:1999999: too many nodes (limit 1000000)\n");
    CHECK(cfg.root == NULL);
    sl_cfg_free(&cfg);
    free(big);

    /* Many keys in one map are fine (and not quadratic); the 2nd "k0" is caught. */
    struct sl_buf b;
    sl_buf_init(&b, 0);
    for (int i = 0; i < 50000; i++) {
        sl_buf_printf(&b, "k%d: %d\n", i, i);
    }
    sl_buf_puts(&b, "k0: again\n");
    CHECK_INT(sl_cfg_load_string(&cfg, "t.yml", b.data, b.len), SL_EINVAL);
    CHECK_STR(errs(&cfg), "t.yml:50001:1: duplicate key 'k0' (first at line 1)\n");
    CHECK_INT(cfg.root->n, 50000);
    CHECK_STR(sl_cfg_get(cfg.root, "k49999")->scalar, "49999");
    sl_cfg_free(&cfg);
    sl_buf_free(&b);

    /* load_string obeys the same size limit as a file (it checks len before
     * reading a byte, so the short buffer is never touched). */
    CHECK_INT(sl_cfg_load_string(&cfg, "t.yml", "", 16 * 1024 * 1024 + 1), SL_EINVAL);
    CHECK_STR(errs(&cfg), "t.yml:1:1: file is larger than 16 MiB\n");
    sl_cfg_free(&cfg);
}

TEST(free_and_error_on_zeroed)
{
    struct sl_cfg cfg = {0};
    sl_cfg_free(&cfg);
    sl_cfg_free(&cfg);
    sl_cfg_free(NULL);
    sl_cfg_error(&cfg, NULL, "custom %d", 7);
    struct sl_cfg_node at = {.line = 3, .col = 9};
    sl_cfg_error(&cfg, &at, "at %s", "node");
    CHECK_INT(cfg.nerrors, 2);
    CHECK_STR(errs(&cfg), "<config>:1:1: custom 7\n<config>:3:9: at node\n");
    sl_cfg_free(&cfg);
    CHECK_INT(cfg.nerrors, 0);
    CHECK(cfg.errors.data == NULL);
}

/* Errors read top to bottom like the file, whatever order modules report them in;
 * a likely typo of a known key gets a suggestion. */
TEST(errors_in_file_order_and_suggestions)
{
    struct sl_cfg cfg;
    const char *text = "a: 1\nlisten: x\nwrkers: 2\nverification: none\nzzz: 1\n";
    CHECK_INT(sl_cfg_load_string(&cfg, "t.yml", text, strlen(text)), 0);
    struct sl_cfg_node *root = cfg.root;
    sl_cfg_error(&cfg, root->items[4], "fifth");
    sl_cfg_error(&cfg, root->items[0], "first");
    sl_cfg_error(&cfg, root->items[4], "fifth again");
    sl_cfg_get(root, "a");
    sl_cfg_get(root, "listen");
    static const char *const known[] = {"a", "listen", "workers", "verification_mode", NULL};
    sl_cfg_check_unknown_in(&cfg, root, "top", known);
    CHECK_STR(errs(&cfg), "t.yml:1:4: first\n"
                          "t.yml:3:1: top: unknown option 'wrkers' (did you mean 'workers'?)\n"
                          "t.yml:4:1: top: unknown option 'verification' (did you mean "
                          "'verification_mode'?)\n"
                          "t.yml:5:1: top: unknown option 'zzz'\n"
                          "t.yml:5:6: fifth\n"
                          "t.yml:5:6: fifth again\n");
    CHECK(sl_cfg_suggest("brokerz", (const char *const[]){"brokers", "topic", NULL}) != NULL);
    CHECK(sl_cfg_suggest("xyz", (const char *const[]){"brokers", "topic", NULL}) == NULL);
    CHECK(sl_cfg_suggest("x", NULL) == NULL);
    sl_cfg_free(&cfg);
}

int main(void)
{
    RUN(errors_in_file_order_and_suggestions);
    RUN(tree_positions);
    RUN(getter_str);
    RUN(getter_bool);
    RUN(getter_int);
    RUN(getter_size);
    RUN(getter_duration);
    RUN(getter_enum);
    RUN(getter_strlist);
    RUN(null_map_defaults);
    RUN(env_expansion);
    RUN(env_errors);
    RUN(unknown_keys);
    RUN(is_map);
    RUN(syntax_errors);
    RUN(structure_errors);
    RUN(empty_documents);
    RUN(error_text_is_one_line);
    RUN(load_files);
    RUN(limits);
    RUN(free_and_error_on_zeroed);
    return TEST_SUMMARY();
}
