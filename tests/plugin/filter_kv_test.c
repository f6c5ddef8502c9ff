/*
 * filter_kv_test.c - the `kv` filter driven through the core: the scan (quotes,
 * brackets, escapes, lenient/strict whitespace), every option, duplicates,
 * targets, and config errors with their exact FILE:LINE:COL text.
 */
#include <stdlib.h>
#include <string.h>

#include "sluice/json.h"
#include "sluice/plugin.h"
#include "test.h"

#define FILTER_PLUGIN sl_plugin_filter_kv
#define FILTER_KEY "kv"
#define FILTER_ID "pipeline.filters[2] (kv)"
#include "filter_harness.h"

TEST(test_descriptor)
{
    CHECK_STR(P.name, "kv");
    CHECK_INT(P.kind, SL_PLUGIN_FILTER);
}

TEST(test_defaults)
{
    WITH("kv:\n") {
        EXPECT(w.k, "{\"message\":\"a=1 b=two c=\\\"x y\\\" d='p q'\"}",
               "{\"message\":\"a=1 b=two c=\\\"x y\\\" d='p q'\",\"a\":\"1\",\"b\":\"two\","
               "\"c\":\"x y\",\"d\":\"p q\"}");
        /* Words without a separator are skipped; the rest of the line still parses. */
        EXPECT(w.k, "{\"message\":\"GET /x user=bob  status=200 end\"}",
               "{\"message\":\"GET /x user=bob  status=200 end\",\"user\":\"bob\","
               "\"status\":\"200\"}");
        /* Brackets wrap values by default. */
        EXPECT(w.k, "{\"message\":\"a=(1 2) b=[x] c=<y z>\"}",
               "{\"message\":\"a=(1 2) b=[x] c=<y z>\",\"a\":\"1 2\",\"b\":\"x\",\"c\":\"y z\"}");
        /* A value may hold the value separator; a lone "=" or "k=" is no pair. */
        EXPECT(w.k, "{\"message\":\"=x q==1 e=\"}", "{\"message\":\"=x q==1 e=\",\"q\":\"=1\"}");
        /* Empty quotes are no value either. */
        EXPECT(w.k, "{\"message\":\"a=\\\"\\\" b=1\"}",
               "{\"message\":\"a=\\\"\\\" b=1\",\"b\":\"1\"}");
        /* An unterminated or trailing-garbage quote is read unquoted, up to the separator. */
        EXPECT(w.k, "{\"message\":\"a=\\\"x y b=\\\"q\\\"z\"}",
               "{\"message\":\"a=\\\"x y b=\\\"q\\\"z\",\"a\":\"\\\"x\",\"b\":\"\\\"q\\\"z\"}");
        /* Backslash-escaped separators stay inside keys and values, escapes and all. */
        EXPECT(w.k, "{\"message\":\"my\\\\ key=a\\\\ b c=\\\"q\\\\\\\"r\\\"\"}",
               "{\"message\":\"my\\\\ key=a\\\\ b c=\\\"q\\\\\\\"r\\\"\","
               "\"my\\\\ key\":\"a\\\\ b\","
               "\"c\":\"q\\\\\\\"r\"}");
        /* Repeated keys collect their values, duplicates included. */
        EXPECT(w.k, "{\"message\":\"t=a t=b t=a\"}",
               "{\"message\":\"t=a t=b t=a\",\"t\":[\"a\",\"b\",\"a\"]}");
        /* Keys are literal top-level names; parsed fields replace existing ones. */
        EXPECT(w.k, "{\"a\":{\"b\":1},\"x\":9,\"message\":\"a.b=2 x=3\"}",
               "{\"a\":{\"b\":1},\"x\":\"3\",\"message\":\"a.b=2 x=3\",\"a.b\":\"2\"}");
        /* No source, or one that is not text: nothing happens. */
        EXPECT(w.k, "{\"other\":\"a=1\"}", "{\"other\":\"a=1\"}");
        EXPECT(w.k, "{\"message\":42}", "{\"message\":42}");
        EXPECT(w.k, "{\"message\":\"no pairs here\"}", "{\"message\":\"no pairs here\"}");
        /* An array of strings is parsed item by item into one set of pairs. */
        EXPECT(w.k, "{\"message\":[\"a=1\",5,\"a=2 b=3\"]}",
               "{\"message\":[\"a=1\",5,\"a=2 b=3\"],\"a\":[\"1\",\"2\"],\"b\":\"3\"}");
    }
}

TEST(test_whitespace)
{
    /* lenient (the default): spaces around the separator are allowed, so "a= b=2" is a: "b=2". */
    WITH("kv: {whitespace: lenient}\n") {
        EXPECT(w.k, "{\"message\":\"a = 1 b= 2 c =3\"}",
               "{\"message\":\"a = 1 b= 2 c =3\",\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}");
        EXPECT(w.k, "{\"message\":\"a= b=2\"}", "{\"message\":\"a= b=2\",\"a\":\"b=2\"}");
    }
    WITH("kv: {whitespace: strict}\n") {
        EXPECT(w.k, "{\"message\":\"a = 1 b= 2 c=3\"}",
               "{\"message\":\"a = 1 b= 2 c=3\",\"c\":\"3\"}");
        EXPECT(w.k, "{\"message\":\"a= b=2\"}", "{\"message\":\"a= b=2\",\"b\":\"2\"}");
    }
}

TEST(test_separators)
{
    WITH("kv:\n  field_split: \"&?\"\n  value_split: \":=\"\n") {
        EXPECT(w.k, "{\"message\":\"?a=1&b:2&&c=x y?d\"}",
               "{\"message\":\"?a=1&b:2&&c=x y?d\",\"a\":\"1\",\"b\":\"2\",\"c\":\"x y\"}");
        /* Spaces belong to keys and values when they are not separators. */
        EXPECT(w.k, "{\"message\":\"my key=v 1&k2=v\"}",
               "{\"message\":\"my key=v 1&k2=v\",\"my key\":\"v 1\",\"k2\":\"v\"}");
    }
    WITH("kv:\n  field_split: \"\\t\"\n") {
        EXPECT(w.k, "{\"message\":\"a=1 2\\tb=3\"}",
               "{\"message\":\"a=1 2\\tb=3\",\"a\":\"1 2\",\"b\":\"3\"}");
    }
}

TEST(test_include_brackets_off)
{
    WITH("kv: {include_brackets: false}\n") {
        EXPECT(w.k, "{\"message\":\"a=[x] b=(y) c=<z> d=\\\"q\\\"\"}",
               "{\"message\":\"a=[x] b=(y) c=<z> d=\\\"q\\\"\",\"a\":\"[x]\",\"b\":\"(y)\","
               "\"c\":\"<z>\",\"d\":\"q\"}");
    }
}

TEST(test_trim_and_remove)
{
    WITH("kv:\n  trim_key: \"<>\"\n  trim_value: \",;\"\n") {
        EXPECT(w.k, "{\"message\":\"<a>=1, <<b=x;y;\"}",
               "{\"message\":\"<a>=1, <<b=x;y;\",\"a\":\"1\",\"b\":\"x;y\"}");
    }
    WITH("kv:\n  remove_char_key: \"-_\"\n  remove_char_value: \"'\"\n") {
        EXPECT(w.k, "{\"message\":\"user-name=o'brien x_y_=a'b'\"}",
               "{\"message\":\"user-name=o'brien x_y_=a'b'\",\"username\":\"obrien\","
               "\"xy\":\"ab\"}");
    }
    /* A key trimmed to nothing names no field. */
    WITH("kv: {trim_key: \"-\"}\n") {
        EXPECT(w.k, "{\"message\":\"--=1 k=2\"}", "{\"message\":\"--=1 k=2\",\"k\":\"2\"}");
    }
}

TEST(test_include_exclude_prefix)
{
    /* include/exclude compare the trimmed key, before the prefix is added. */
    WITH("kv:\n  include_keys: [a, b, c]\n  exclude_keys: [c]\n  prefix: \"kv_\"\n"
         "  trim_key: \"*\"\n") {
        EXPECT(w.k, "{\"message\":\"a=1 *b*=2 c=3 d=4\"}",
               "{\"message\":\"a=1 *b*=2 c=3 d=4\",\"kv_a\":\"1\",\"kv_b\":\"2\"}");
    }
    WITH("kv:\n  exclude_keys: secret\n") {
        EXPECT(w.k, "{\"message\":\"user=a secret=pw\"}",
               "{\"message\":\"user=a secret=pw\",\"user\":\"a\"}");
    }
}

TEST(test_allow_duplicate_values)
{
    WITH("kv: {allow_duplicate_values: false}\n") {
        EXPECT(w.k, "{\"message\":\"f=me f=me t=a t=b t=a t=b t=c\"}",
               "{\"message\":\"f=me f=me t=a t=b t=a t=b t=c\",\"f\":\"me\","
               "\"t\":[\"a\",\"b\",\"c\"]}");
    }
}

TEST(test_target_and_source)
{
    WITH("kv:\n  source: raw\n  target: \"[kv][pairs]\"\n") {
        EXPECT(w.k, "{\"raw\":\"a=1 b=2\"}",
               "{\"raw\":\"a=1 b=2\",\"kv\":{\"pairs\":{\"a\":\"1\",\"b\":\"2\"}}}");
        /* The target is replaced by what was found... */
        EXPECT(w.k, "{\"kv\":{\"pairs\":{\"old\":1},\"keep\":1},\"raw\":\"a=1\"}",
               "{\"kv\":{\"pairs\":{\"a\":\"1\"},\"keep\":1},\"raw\":\"a=1\"}");
        /* ...and left alone when nothing was. */
        EXPECT(w.k, "{\"kv\":{\"pairs\":{\"old\":1}},\"raw\":\"none\"}",
               "{\"kv\":{\"pairs\":{\"old\":1}},\"raw\":\"none\"}");
    }
    /* field with a dotted reference; "" target is the root. */
    WITH("kv: {field: log.line, target: \"\"}\n") {
        EXPECT(w.k, "{\"log\":{\"line\":\"k=v\"}}", "{\"log\":{\"line\":\"k=v\"},\"k\":\"v\"}");
    }
}

TEST(test_default_keys)
{
    WITH("kv:\n  default_keys: {level: info, user: \"-\"}\n  target: t\n") {
        EXPECT(w.k, "{\"message\":\"user=bob x=1\"}",
               "{\"message\":\"user=bob x=1\",\"t\":{\"level\":\"info\",\"user\":\"bob\","
               "\"x\":\"1\"}}");
        EXPECT(w.k, "{\"message\":\"nothing\"}",
               "{\"message\":\"nothing\",\"t\":{\"level\":\"info\",\"user\":\"-\"}}");
    }
}

TEST(test_when_is_accepted)
{
    WITH("kv:\n  when: {field: a, equals: b}\n") {
        CHECK_STR(errs(&w.cfg), "");
    }
}

TEST(test_config_errors)
{
    struct sl_cfg cfg;
    CHECK(load(&cfg, "kv:\n"
                     "  field: a\n"
                     "  source: b\n"
                     "  target: \"x..y\"\n"
                     "  field_split: \"\"\n"
                     "  value_split: \"\xc3\xa9\"\n"
                     "  trim_key: [a]\n"
                     "  include_keys: {a: 1}\n"
                     "  allow_duplicate_values: 2\n"
                     "  include_brackets: maybe\n"
                     "  whitespace: loose\n"
                     "  default_keys: [a]\n"
                     "  prefx: x\n") == NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:3:11: pipeline.filters[2] (kv): options 'field' and 'source' name the same "
              "thing; give one\n"
              "t.yml:4:11: pipeline.filters[2] (kv): option 'target': 'x..y' is not a valid "
              "field reference\n"
              "t.yml:5:16: pipeline.filters[2] (kv): option 'field_split' must not be empty\n"
              "t.yml:7:13: pipeline.filters[2] (kv): option 'trim_key' must be a string, got a "
              "list\n"
              "t.yml:8:17: pipeline.filters[2] (kv): option 'include_keys' must be a string or a "
              "list of strings, got a map\n"
              "t.yml:9:27: pipeline.filters[2] (kv): option 'allow_duplicate_values' must be "
              "true or false, got '2'\n"
              "t.yml:10:21: pipeline.filters[2] (kv): option 'include_brackets' must be true or "
              "false, got 'maybe'\n"
              "t.yml:11:15: pipeline.filters[2] (kv): option 'whitespace' must be one of "
              "lenient, strict, got 'loose'\n"
              "t.yml:12:17: pipeline.filters[2] (kv): option 'default_keys' must be a map\n"
              "t.yml:13:3: pipeline.filters[2] (kv): unknown option 'prefx' (did you mean "
              "'prefix'?)\n");
    sl_cfg_free(&cfg);

    /* What a set may hold is checked in init, which runs once the table reads cleanly. */
    CHECK(load(&cfg, "kv:\n"
                     "  value_split: \"\xc3\xa9\"\n"
                     "  remove_char_value: \"a\xc3\xa9\"\n") == NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:2:16: pipeline.filters[2] (kv): option 'value_split' must list ASCII "
              "characters\n"
              "t.yml:3:22: pipeline.filters[2] (kv): option 'remove_char_value' must list ASCII "
              "characters\n");
    sl_cfg_free(&cfg);

    CHECK(load(&cfg, "kv:\n  default_keys: {a: [1]}\n  source: \"[a\"\n") == NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:2:21: pipeline.filters[2] (kv): option 'default_keys': the value of 'a' "
              "must be a scalar\n"
              "t.yml:3:11: pipeline.filters[2] (kv): option 'source': '[a' is not a valid field "
              "reference\n");
    sl_cfg_free(&cfg);

    /* kv never fails: the core refuses a tag_on_failure that could never apply. */
    CHECK(load(&cfg, "kv: {tag_on_failure: [x]}\n") == NULL);
    CHECK_STR(errs(&cfg), "t.yml:1:22: pipeline.filters[2] (kv): this filter never fails: "
                          "'tag_on_failure' has no effect\n");
    sl_cfg_free(&cfg);
}

/* Runs the instance on an event holding text in "message" after the members in head. */
static void run_text(void *inst, struct sl_value *ev, const char *head, const char *text)
{
    char err[128];
    if (sl_json_parse(head, strlen(head), ev, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "bad test input: %s\n", err);
        abort();
    }
    sl_value_set_cstr(sl_obj_putc(ev, "message"), text);
    CHECK_INT(run(inst, ev), SL_FILTER_KEEP);
}

static bool is_str(const struct sl_value *v, const char *s)
{
    return v && v->type == SL_V_STRING && strcmp(v->u.s.ptr, s) == 0;
}

/* A line of 100k pairs (once minutes of CPU): exact result, repeated keys as ever. */
TEST(test_many_pairs)
{
    enum { N = 100000 };
    struct sl_buf t;
    sl_buf_init(&t, 0);
    for (int i = 0; i < N; i++) {
        sl_buf_printf(&t, "k%d=%d ", i, i);
    }
    sl_buf_puts(&t, "k0=again k99999=again2 k7=7");
    WITH("kv:\n") {
        struct sl_value ev = {0};
        run_text(w.k, &ev, "{\"k500\":\"old\"}", sl_buf_cstr(&t));
        CHECK_INT(ev.u.o.len, N + 1);
        CHECK_STR(ev.u.o.items[0].key, "k500");  /* replaced in place */
        CHECK(is_str(&ev.u.o.items[0].v, "500"));
        CHECK_STR(ev.u.o.items[1].key, "message");
        CHECK_STR(ev.u.o.items[2].key, "k0");  /* then the pairs, in text order */
        CHECK_STR(ev.u.o.items[N].key, "k99999");
        const struct sl_value *k0 = sl_obj_getc(&ev, "k0");
        CHECK(k0 && k0->type == SL_V_ARRAY && k0->u.a.len == 2 &&
              is_str(&k0->u.a.items[0], "0") && is_str(&k0->u.a.items[1], "again"));
        const struct sl_value *kl = &ev.u.o.items[N].v;
        CHECK(kl->type == SL_V_ARRAY && kl->u.a.len == 2 &&
              is_str(&kl->u.a.items[0], "99999") && is_str(&kl->u.a.items[1], "again2"));
        const struct sl_value *k7 = sl_obj_getc(&ev, "k7");  /* duplicates kept by default */
        CHECK(k7 && k7->type == SL_V_ARRAY && k7->u.a.len == 2 &&
              is_str(&k7->u.a.items[1], "7"));
        CHECK(is_str(sl_obj_getc(&ev, "k54321"), "54321"));
        sl_value_clear(&ev);
    }
    /* Into a target, after default keys: the defaults first, replaced in place. */
    WITH("kv:\n  target: t\n  default_keys: {zz: d, k3: d}\n") {
        struct sl_value ev = {0};
        run_text(w.k, &ev, "{}", sl_buf_cstr(&t));
        const struct sl_value *tg = sl_obj_getc(&ev, "t");
        CHECK(tg && tg->type == SL_V_OBJECT && tg->u.o.len == N + 1);
        if (tg && tg->type == SL_V_OBJECT && tg->u.o.len == N + 1) {
            CHECK_STR(tg->u.o.items[0].key, "zz");
            CHECK(is_str(&tg->u.o.items[0].v, "d"));
            CHECK_STR(tg->u.o.items[1].key, "k3");
            CHECK(is_str(&tg->u.o.items[1].v, "3"));
            CHECK_STR(tg->u.o.items[2].key, "k0");
            CHECK_STR(tg->u.o.items[N].key, "k99999");
        }
        sl_value_clear(&ev);
    }
    sl_buf_free(&t);
}

/* allow_duplicate_values: false on a line repeating pairs many times: each distinct
 * value once, in first-seen order; an identical pair is dropped wherever it repeats. */
TEST(test_many_duplicates)
{
    enum { N = 50000 };
    struct sl_buf t;
    sl_buf_init(&t, 0);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < N; i++) {
            sl_buf_printf(&t, "t=%d f=me ", pass ? N - 1 - i : i);
        }
    }
    sl_buf_puts(&t, "t=last");
    WITH("kv: {allow_duplicate_values: false}\n") {
        struct sl_value ev = {0};
        run_text(w.k, &ev, "{}", sl_buf_cstr(&t));
        CHECK_INT(ev.u.o.len, 3);
        CHECK(is_str(sl_obj_getc(&ev, "f"), "me"));
        const struct sl_value *tv = sl_obj_getc(&ev, "t");
        CHECK(tv && tv->type == SL_V_ARRAY && tv->u.a.len == N + 1);
        if (tv && tv->type == SL_V_ARRAY && tv->u.a.len == N + 1) {
            CHECK(is_str(&tv->u.a.items[0], "0"));
            CHECK(is_str(&tv->u.a.items[12345], "12345"));
            CHECK(is_str(&tv->u.a.items[N - 1], "49999"));
            CHECK(is_str(&tv->u.a.items[N], "last"));
        }
        sl_value_clear(&ev);
    }
    sl_buf_free(&t);
}

/* Long hostile lines (once quadratic in the scan): the same pairs as ever. */
TEST(test_long_lines_without_pairs)
{
    enum { N = 200000 };
    char *t = malloc(N + 64);
    WITH("kv:\n") {
        /* No value separator in a long run: one pair at the end. */
        memset(t, 'a', N);
        strcpy(t + N, " k=v");
        struct sl_value ev = {0};
        run_text(w.k, &ev, "{}", t);
        CHECK_INT(ev.u.o.len, 2);
        CHECK(is_str(sl_obj_getc(&ev, "k"), "v"));
        sl_value_clear(&ev);

        /* An odd run of backslashes escapes the '=' from the first one on, not
         * from the second: the key is the last N backslashes. */
        memset(t, '\\', N + 1);
        strcpy(t + N + 1, "=v tail=1");
        run_text(w.k, &ev, "{}", t);
        CHECK_INT(ev.u.o.len, 3);
        CHECK_INT(ev.u.o.len == 3 ? ev.u.o.items[1].klen : 0, N);
        CHECK(ev.u.o.len == 3 && ev.u.o.items[1].key[0] == '\\' &&
              ev.u.o.items[1].key[N - 1] == '\\' && is_str(&ev.u.o.items[1].v, "v"));
        CHECK(is_str(sl_obj_getc(&ev, "tail"), "1"));
        sl_value_clear(&ev);

        /* Brackets never closed: each value is read unquoted. */
        struct sl_buf b;
        sl_buf_init(&b, 0);
        for (int i = 0; i < N / 4; i++) {
            sl_buf_puts(&b, "a=( ");
        }
        sl_buf_puts(&b, "b=1");
        run_text(w.k, &ev, "{}", sl_buf_cstr(&b));
        const struct sl_value *a = sl_obj_getc(&ev, "a");
        CHECK(a && a->type == SL_V_ARRAY && a->u.a.len == N / 4 &&
              is_str(&a->u.a.items[N / 4 - 1], "("));
        CHECK(is_str(sl_obj_getc(&ev, "b"), "1"));
        sl_value_clear(&ev);
        sl_buf_free(&b);
    }
    free(t);
}

TEST(test_free_null)
{
    unload(NULL);
}

/* As Logstash: in ECS modes (the default) a filter without `target` warns at
 * start-up that root keys may clash with ECS fields; nothing else changes. */
TEST(test_ecs_compatibility_warning)
{
    char *log = log_of_load("kv: {}\n", SL_ECS_V8);
    CHECK(strstr(log, "without 'target', decoded keys land at the event's root") != NULL);
    free(log);
    log = log_of_load("kv: {ecs_compatibility: v1}\n", SL_ECS_DISABLED);
    CHECK(strstr(log, "without 'target'") != NULL);
    free(log);
    log = log_of_load("kv: {target: t}\n", SL_ECS_V8);
    CHECK_STR(log, "");
    free(log);
    log = log_of_load("kv: {}\n", SL_ECS_DISABLED);
    CHECK_STR(log, "");
    free(log);
    log = log_of_load("kv: {ecs_compatibility: disabled}\n", SL_ECS_V8);
    CHECK_STR(log, "");
    free(log);
}

int main(void)
{
    RUN(test_descriptor);
    RUN(test_ecs_compatibility_warning);
    RUN(test_defaults);
    RUN(test_whitespace);
    RUN(test_separators);
    RUN(test_include_brackets_off);
    RUN(test_trim_and_remove);
    RUN(test_include_exclude_prefix);
    RUN(test_allow_duplicate_values);
    RUN(test_target_and_source);
    RUN(test_default_keys);
    RUN(test_when_is_accepted);
    RUN(test_config_errors);
    RUN(test_many_pairs);
    RUN(test_many_duplicates);
    RUN(test_long_lines_without_pairs);
    RUN(test_free_null);
    return TEST_SUMMARY();
}
