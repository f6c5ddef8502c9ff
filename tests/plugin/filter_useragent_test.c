/*
 * filter_useragent_test.c - the `useragent` filter driven in-process: the
 * example of Logstash's documentation in both field-naming modes, common
 * browsers, phones and bots through the built-in uap-core rules, target,
 * prefix, a target that is the source, array and absent sources, a custom
 * regexes.yaml (replacements with $N, regex_flag, missing lists), config
 * errors, the cache's bounds and eviction, and several threads on one
 * instance.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/json.h"
#include "sluice/plugin.h"
#include "test.h"
#include "ua_cache.h"
#include "uap.h"

#define FILTER_PLUGIN sl_plugin_filter_useragent
#define FILTER_KEY "useragent"
#define FILTER_ID "pipeline.filters[0] (useragent)"
#include "filter_harness.h"

#define FIREFOX "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.11; rv:45.0) Gecko/20100101 Firefox/45.0"
#define CHROME_WIN "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like " \
                   "Gecko) Chrome/120.0.0.0 Safari/537.36"
#define IPHONE "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 " \
               "(KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1"
#define SAMSUNG "Mozilla/5.0 (Linux; Android 13; SM-S901B) AppleWebKit/537.36 (KHTML, like " \
                "Gecko) Chrome/112.0.0.0 Mobile Safari/537.36"
#define GOOGLEBOT "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
#define CHROME_MAC "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_1) AppleWebKit/537.36 (KHTML, " \
                   "like Gecko) Chrome/70.0.3538.102 Safari/537.36"

TEST(test_descriptor)
{
    CHECK_STR(P.name, "useragent");
    CHECK_INT(P.kind, SL_PLUGIN_FILTER);
    CHECK_STR(P.failure_tag, "_useragent_timeout");
}

/* The example of Logstash's documentation, field for field. */
TEST(test_logstash_example)
{
    WITH("useragent: {source: message, ecs_compatibility: disabled}\n") {
        EXPECT(w.k, "{\"message\":\"" FIREFOX "\"}",
               "{\"message\":\"" FIREFOX "\",\"name\":\"Firefox\",\"version\":\"45.0\","
               "\"major\":\"45\",\"minor\":\"0\",\"os\":\"Mac OS X\",\"os_name\":\"Mac OS X\","
               "\"os_version\":\"10.11\",\"os_full\":\"Mac OS X 10.11\",\"os_major\":\"10\","
               "\"os_minor\":\"11\",\"device\":\"Mac\"}");
    }
    WITH("useragent: {source: message}\n") {
        EXPECT(w.k, "{\"message\":\"" FIREFOX "\"}",
               "{\"message\":\"" FIREFOX "\",\"user_agent\":{\"name\":\"Firefox\","
               "\"version\":\"45.0\",\"os\":{\"name\":\"Mac OS X\",\"version\":\"10.11\","
               "\"full\":\"Mac OS X 10.11\"},\"device\":{\"name\":\"Mac\"},"
               "\"original\":\"" FIREFOX "\"},\"@metadata\":{\"filter\":{\"user_agent\":"
               "{\"version\":{\"major\":\"45\",\"minor\":\"0\"},\"os\":{\"version\":"
               "{\"major\":\"10\",\"minor\":\"11\"}}}}}}");
    }
}

TEST(test_common_agents_ecs)
{
    /* The ECS layout's usual source: [user_agent][original] is kept as it is. */
    WITH("useragent: {source: '[user_agent][original]'}\n") {
        EXPECT(w.k, "{\"user_agent\":{\"original\":\"" CHROME_WIN "\"}}",
               "{\"user_agent\":{\"original\":\"" CHROME_WIN "\",\"name\":\"Chrome\","
               "\"version\":\"120.0.0.0\",\"os\":{\"name\":\"Windows\",\"version\":\"10\","
               "\"full\":\"Windows 10\"},\"device\":{\"name\":\"Other\"}},\"@metadata\":"
               "{\"filter\":{\"user_agent\":{\"version\":{\"major\":\"120\",\"minor\":\"0\","
               "\"patch\":\"0\"},\"os\":{\"version\":{\"major\":\"10\"}}}}}}");
        EXPECT(w.k, "{\"user_agent\":{\"original\":\"" SAMSUNG "\"}}",
               "{\"user_agent\":{\"original\":\"" SAMSUNG "\",\"name\":\"Chrome Mobile\","
               "\"version\":\"112.0.0.0\",\"os\":{\"name\":\"Android\",\"version\":\"13\","
               "\"full\":\"Android 13\"},\"device\":{\"name\":\"Samsung SM-S901B\"}},"
               "\"@metadata\":{\"filter\":{\"user_agent\":{\"version\":{\"major\":\"112\","
               "\"minor\":\"0\",\"patch\":\"0\"},\"os\":{\"version\":{\"major\":\"13\"}}}}}}");
    }
}

TEST(test_common_agents_legacy)
{
    WITH("useragent: {source: agent, target: ua, ecs_compatibility: disabled}\n") {
        EXPECT(w.k, "{\"agent\":\"" IPHONE "\"}",
               "{\"agent\":\"" IPHONE "\",\"ua\":{\"name\":\"Mobile Safari\","
               "\"version\":\"17.1.2\",\"major\":\"17\",\"minor\":\"1\",\"patch\":\"2\","
               "\"os\":\"iOS\",\"os_name\":\"iOS\",\"os_version\":\"17.1.2\","
               "\"os_full\":\"iOS 17.1.2\",\"os_major\":\"17\",\"os_minor\":\"1\","
               "\"os_patch\":\"2\",\"device\":\"iPhone\"}}");
        /* Four version parts: build is the fourth. */
        EXPECT(w.k, "{\"agent\":\"" CHROME_MAC "\"}",
               "{\"agent\":\"" CHROME_MAC "\",\"ua\":{\"name\":\"Chrome\","
               "\"version\":\"70.0.3538.102\",\"major\":\"70\",\"minor\":\"0\","
               "\"patch\":\"3538\",\"build\":\"102\",\"os\":\"Mac OS X\","
               "\"os_name\":\"Mac OS X\",\"os_version\":\"10.14.1\","
               "\"os_full\":\"Mac OS X 10.14.1\",\"os_major\":\"10\",\"os_minor\":\"14\","
               "\"os_patch\":\"1\",\"device\":\"Mac\"}}");
        EXPECT(w.k, "{\"agent\":\"" GOOGLEBOT "\"}",
               "{\"agent\":\"" GOOGLEBOT "\",\"ua\":{\"name\":\"Googlebot\","
               "\"version\":\"2.1\",\"major\":\"2\",\"minor\":\"1\",\"os\":\"Other\","
               "\"os_name\":\"Other\",\"os_full\":\"Other\",\"device\":\"Spider\"}}");
        /* Nothing known: "Other" three times, as uap-core says. */
        EXPECT(w.k, "{\"agent\":\"nothing known\"}",
               "{\"agent\":\"nothing known\",\"ua\":{\"name\":\"Other\",\"os\":\"Other\","
               "\"os_name\":\"Other\",\"os_full\":\"Other\",\"device\":\"Other\"}}");
    }
}

TEST(test_prefix_and_target)
{
    WITH("useragent: {source: message, prefix: ua_, ecs_compatibility: disabled}\n") {
        EXPECT(w.k, "{\"message\":\"curl/8.4.0\"}",
               "{\"message\":\"curl/8.4.0\",\"ua_name\":\"curl\",\"ua_version\":\"8.4.0\","
               "\"ua_major\":\"8\",\"ua_minor\":\"4\",\"ua_patch\":\"0\",\"ua_os\":\"Other\","
               "\"ua_os_name\":\"Other\",\"ua_os_full\":\"Other\",\"ua_device\":\"Other\"}");
    }
    /* ECS with a target of its own; the string lands in [target][original]. */
    WITH("useragent: {source: message, target: '[client][ua]'}\n") {
        EXPECT(w.k, "{\"message\":\"curl/8.4.0\"}",
               "{\"message\":\"curl/8.4.0\",\"client\":{\"ua\":{\"name\":\"curl\","
               "\"version\":\"8.4.0\",\"os\":{\"name\":\"Other\",\"full\":\"Other\"},"
               "\"device\":{\"name\":\"Other\"},\"original\":\"curl/8.4.0\"}},"
               "\"@metadata\":{\"filter\":{\"user_agent\":{\"version\":{\"major\":\"8\","
               "\"minor\":\"4\",\"patch\":\"0\"}}}}}");
        /* A NUL byte in the string is kept in [original]. */
        EXPECT(w.k, "{\"message\":\"x\\u0000y\"}",
               "{\"message\":\"x\\u0000y\",\"client\":{\"ua\":{\"name\":\"Other\","
               "\"os\":{\"name\":\"Other\",\"full\":\"Other\"},\"device\":{\"name\":\"Other\"},"
               "\"original\":\"x\\u0000y\"}}}");
    }
    /* Target is the source: the string is replaced by the parse (Logstash does so). */
    WITH("useragent: {source: agent, target: agent, ecs_compatibility: disabled}\n") {
        EXPECT(w.k, "{\"agent\":\"curl/8.4.0\"}",
               "{\"agent\":{\"name\":\"curl\",\"version\":\"8.4.0\",\"major\":\"8\","
               "\"minor\":\"4\",\"patch\":\"0\",\"os\":\"Other\",\"os_name\":\"Other\","
               "\"os_full\":\"Other\",\"device\":\"Other\"}}");
    }
}

TEST(test_sources_without_string)
{
    WITH("useragent: {source: agent, ecs_compatibility: disabled, prefix: u}\n") {
        /* Absent, empty, null, a number: the event goes on untouched, untagged. */
        EXPECT(w.k, "{\"x\":1}", "{\"x\":1}");
        EXPECT(w.k, "{\"agent\":\"\"}", "{\"agent\":\"\"}");
        EXPECT(w.k, "{\"agent\":null}", "{\"agent\":null}");
        EXPECT(w.k, "{\"agent\":7}", "{\"agent\":7}");
        EXPECT(w.k, "{\"agent\":[]}", "{\"agent\":[]}");
        /* An array: its first item. */
        EXPECT(w.k, "{\"agent\":[\"curl/1.2\",\"Wget/1.0\"]}",
               "{\"agent\":[\"curl/1.2\",\"Wget/1.0\"],\"uname\":\"curl\",\"uversion\":\"1.2\","
               "\"umajor\":\"1\",\"uminor\":\"2\",\"uos\":\"Other\",\"uos_name\":\"Other\","
               "\"uos_full\":\"Other\",\"udevice\":\"Other\"}");
    }
}

static char *write_tmp(const char *text)
{
    char path[] = "/tmp/ua_regexes_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        t_failed_checks++;
    }
    if (fd >= 0) {
        close(fd);
    }
    return strdup(path);
}

/* A regexes.yaml of the user's: replacements, $N, regex_flag, lists left out. */
TEST(test_custom_regexes)
{
    char *path = write_tmp(
        "user_agent_parsers:\n"
        "  - regex: '(MyApp)/(\\d+)\\.(\\d+)'\n"
        "    family_replacement: '$1 Pro'\n"
        "    v2_replacement: 'x'\n"
        "  - regex: 'Other/(\\d+)'\n"
        "    family_replacement: 'First'\n"
        "    family_replacement: 'Fixed'\n"
        "    v1_replacement: '$1'\n"
        "os_parsers:\n"
        "  - regex: '(Plan9) (\\d+)'\n"
        "    os_replacement: '  $1  '\n"
        "device_parsers:\n"
        "  - regex: 'robot-(\\w+)'\n"
        "    regex_flag: 'i'\n"
        "    device_replacement: 'Robot $1'\n"
        "    brand_replacement: 'ignored'\n");
    char yml[256];
    snprintf(yml, sizeof(yml),
             "useragent: {source: m, regexes: '%s', ecs_compatibility: disabled}\n", path);
    WITH(yml) {
        EXPECT(w.k, "{\"m\":\"MyApp/3.4 Plan9 4 ROBOT-Marvin\"}",
               "{\"m\":\"MyApp/3.4 Plan9 4 ROBOT-Marvin\",\"name\":\"MyApp Pro\","
               "\"version\":\"3.x\",\"major\":\"3\",\"minor\":\"x\",\"os\":\"Plan9\","
               "\"os_name\":\"Plan9\",\"os_version\":\"4\",\"os_full\":\"Plan9 4\","
               "\"os_major\":\"4\",\"device\":\"Robot Marvin\"}");
        EXPECT(w.k, "{\"m\":\"Other/12\"}",
               "{\"m\":\"Other/12\",\"name\":\"Fixed\",\"version\":\"12\",\"major\":\"12\","
               "\"os\":\"Other\",\"os_name\":\"Other\",\"os_full\":\"Other\","
               "\"device\":\"Other\"}");
    }
    unlink(path);
    free(path);
}

static void expect_config_error(const char *yml, const char *want)
{
    struct sl_cfg cfg;
    void *k = load(&cfg, yml);
    CHECK(k == NULL);
    if (!strstr(errs(&cfg), want)) {
        fprintf(stderr, "config error '%s' lacks '%s'\n", errs(&cfg), want);
        t_failed_checks++;
    }
    unload(k);
    sl_cfg_free(&cfg);
}

TEST(test_config_errors)
{
    expect_config_error("useragent: {target: x}\n", "t.yml:1:12: ");
    expect_config_error("useragent: {source: m, regexes: /nonexistent/regexes.yaml}\n",
                        "cannot open '/nonexistent/regexes.yaml'");
    expect_config_error("useragent: {source: m, lru_cache_size: 0}\n", "lru_cache_size");
    char *bad = write_tmp("user_agent_parsers:\n  - regex: '(unclosed'\n");
    char yml[256];
    snprintf(yml, sizeof(yml), "useragent: {source: m, regexes: '%s'}\n", bad);
    expect_config_error(yml, "line 2: regex '(unclosed'");
    unlink(bad);
    free(bad);
    char *empty = write_tmp("os_parsers: []\n");
    snprintf(yml, sizeof(yml), "useragent: {source: m, regexes: '%s'}\n", empty);
    expect_config_error(yml, "no user_agent_parsers");
    unlink(empty);
    free(empty);
    static const struct { const char *text, *want; } bad_files[] = {
        {"- a\n- b\n", "not a map of user_agent_parsers, os_parsers, device_parsers"},
        {"user_agent_parsers: {a: b}\n", "'user_agent_parsers' must be a list"},
        {"user_agent_parsers: [x]\n", "user_agent_parsers[0] (line 1) is not a map"},
        {"user_agent_parsers:\n  - regex: [a]\n", "line 2: 'regex' must be a string"},
        {"user_agent_parsers: [\n", "line 2: "},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad_files); i++) {
        char *f = write_tmp(bad_files[i].text);
        snprintf(yml, sizeof(yml), "useragent: {source: m, regexes: '%s'}\n", f);
        expect_config_error(yml, bad_files[i].want);
        unlink(f);
        free(f);
    }
    char *noregex = write_tmp("user_agent_parsers:\n  - family_replacement: x\n");
    snprintf(yml, sizeof(yml), "useragent: {source: m, regexes: '%s'}\n", noregex);
    expect_config_error(yml, "line 2: a rule without 'regex'");
    unlink(noregex);
    free(noregex);
}

TEST(test_prefix_warning_in_ecs)
{
    char *log = log_of_load("useragent: {source: m, prefix: x_}\n", SL_ECS_V8);
    CHECK(strstr(log, "'prefix' has no effect in ECS mode") != NULL);
    free(log);
    log = log_of_load("useragent: {source: m, prefix: x_}\n", SL_ECS_DISABLED);
    CHECK_STR(log, "");
    free(log);
}

static struct uap_result result_named(const char *name)
{
    struct uap_result r = {0};
    r.f[UAP_NAME] = strdup(name);
    return r;
}

static void read_name(const struct uap_result *r, void *arg)
{
    snprintf(arg, 32, "%s", r->f[UAP_NAME]);
}

/* The cache: bounded in entries, least recently used out first, long keys never kept. */
TEST(test_cache_lru)
{
    struct ua_cache *c = ua_cache_new(2);
    char got[32] = "";
    struct uap_result r = result_named("A");
    ua_cache_put(c, "a", 1, &r);
    CHECK(r.f[UAP_NAME] == NULL);  /* taken */
    r = result_named("B");
    ua_cache_put(c, "b", 1, &r);
    CHECK(ua_cache_get(c, "a", 1, read_name, got));  /* a is now the most recent */
    CHECK_STR(got, "A");
    r = result_named("C");
    ua_cache_put(c, "c", 1, &r);                    /* evicts b */
    CHECK_INT(ua_cache_size(c), 2);
    CHECK(!ua_cache_get(c, "b", 1, read_name, got));
    CHECK(ua_cache_get(c, "c", 1, read_name, got));
    CHECK_STR(got, "C");
    CHECK(ua_cache_get(c, "a", 1, read_name, got));
    /* A key already there keeps its entry. */
    r = result_named("A2");
    ua_cache_put(c, "a", 1, &r);
    CHECK(ua_cache_get(c, "a", 1, read_name, got));
    CHECK_STR(got, "A");
    /* Too long to be kept. */
    char *longkey = malloc(UA_CACHE_MAX_KEY + 1);
    memset(longkey, 'x', UA_CACHE_MAX_KEY + 1);
    r = result_named("L");
    ua_cache_put(c, longkey, UA_CACHE_MAX_KEY + 1, &r);
    CHECK(!ua_cache_get(c, longkey, UA_CACHE_MAX_KEY + 1, read_name, got));
    CHECK_INT(ua_cache_size(c), 2);
    free(longkey);
    ua_cache_free(c);

    /* A large one is sharded; it still holds exactly its capacity. */
    c = ua_cache_new(2000);
    for (int i = 0; i < 5000; i++) {
        char k[16];
        int n = snprintf(k, sizeof(k), "k%d", i);
        r = result_named(k);
        ua_cache_put(c, k, (size_t)n, &r);
    }
    CHECK(ua_cache_size(c) <= 2000);
    CHECK(ua_cache_size(c) >= 1900);  /* shards fill unevenly; none overflows */
    CHECK(ua_cache_get(c, "k4999", 5, read_name, got));
    CHECK_STR(got, "k4999");
    ua_cache_free(c);
}

/* The same instance on four threads at once, through a cache too small for
 * the strings (every thread evicts the others' entries): every event right. */
struct worker {
    void *inst;
    int bad;
};

static void *work(void *arg)
{
    struct worker *wk = arg;
    static const char *const in[] = {"curl/1.0", "curl/2.0", "Wget/1.21", GOOGLEBOT, IPHONE};
    static const char *const want[] = {"curl", "curl", "Wget", "Googlebot", "Mobile Safari"};
    for (int i = 0; i < 200; i++) {
        struct sl_value ev = {0};
        sl_value_set_object(&ev);
        sl_value_set_cstr(sl_obj_putc(&ev, "m"), in[i % 5]);
        run(wk->inst, &ev);
        const struct sl_value *n = sl_field_get(&ev, "[user_agent][name]");
        if (!n || n->type != SL_V_STRING || strcmp(n->u.s.ptr, want[i % 5]) != 0) {
            struct sl_buf b;
            sl_buf_init(&b, 0);
            sl_json_write(&b, &ev, NULL);
            fprintf(stderr, "thread got %s\n", sl_buf_cstr(&b));
            sl_buf_free(&b);
            wk->bad++;
        }
        sl_value_clear(&ev);
    }
    return NULL;
}

TEST(test_threads_share_the_cache)
{
    WITH("useragent: {source: m, lru_cache_size: 2}\n") {
        struct worker wk[4];
        pthread_t t[4];
        for (int i = 0; i < 4; i++) {
            wk[i] = (struct worker){.inst = w.k};
            CHECK(pthread_create(&t[i], NULL, work, &wk[i]) == 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(t[i], NULL);
            CHECK_INT(wk[i].bad, 0);
        }
    }
}

/* A long string (over the cache's key limit) is parsed, every time, within budget. */
TEST(test_long_string)
{
    size_t n = 8192;
    char *ua = malloc(n + 64);
    memset(ua, 'a', n);
    strcpy(ua + n, " curl/7.1");
    WITH("useragent: {source: m, ecs_compatibility: disabled}\n") {
        for (int i = 0; i < 2; i++) {
            struct sl_value ev = {0};
            sl_value_set_object(&ev);
            sl_value_set_cstr(sl_obj_putc(&ev, "m"), ua);
            CHECK_INT(run(w.k, &ev), SL_FILTER_KEEP);
            const struct sl_value *name = sl_obj_getc(&ev, "name");
            CHECK(name && name->type == SL_V_STRING && strcmp(name->u.s.ptr, "curl") == 0);
            sl_value_clear(&ev);
        }
    }
    free(ua);
}

TEST(test_builtin_rules)
{
    char err[256];
    struct uap *p = uap_new(sl_useragent_builtin_regexes, strlen(sl_useragent_builtin_regexes),
                            "built-in", err, sizeof(err));
    CHECK(p != NULL);
    if (p) {
        CHECK_INT(uap_rules(p), 1175);  /* uap-core 0.18.0: every rule compiles */
        uap_free(p);
    }
}

int main(void)
{
    RUN(test_descriptor);
    RUN(test_logstash_example);
    RUN(test_common_agents_ecs);
    RUN(test_common_agents_legacy);
    RUN(test_prefix_and_target);
    RUN(test_sources_without_string);
    RUN(test_custom_regexes);
    RUN(test_config_errors);
    RUN(test_prefix_warning_in_ecs);
    RUN(test_cache_lru);
    RUN(test_threads_share_the_cache);
    RUN(test_long_string);
    RUN(test_builtin_rules);
    return TEST_SUMMARY();
}
