/*
 * filter_drop_test.c - the `drop` filter driven in-process: it drops what it
 * is given (the core applies `when`), thins by `percentage`, and rejects bad
 * options with FILE:LINE:COL errors.
 */
#include <stdlib.h>
#include <string.h>

#include "sluice/json.h"
#include "sluice/plugin.h"
#include "test.h"

extern const struct sl_plugin sl_plugin_filter_drop;

static const char *errs(struct sl_cfg *cfg)
{
    return cfg->errors.data ? sl_buf_cstr(&cfg->errors) : "";
}

/* Loads text (a map with one key, "drop") and initialises the filter from it. */
static void *load(struct sl_cfg *cfg, const char *text)
{
    struct sl_plugin_env env = {.id = "pipeline.filters[0] (drop)"};
    memset(cfg, 0, sizeof(*cfg));
    if (sl_cfg_load_string(cfg, "t.yml", text, strlen(text)) != 0) {
        return NULL;
    }
    return sl_plugin_filter_drop.init(cfg, sl_cfg_get(cfg->root, "drop"), &env);
}

static int run(void *inst, const char *json)
{
    struct sl_value ev = {0};
    char err[128];
    CHECK_INT(sl_json_parse(json, strlen(json), &ev, NULL, err, sizeof(err)), 0);
    int rc = sl_plugin_filter_drop.filter(inst, &ev);
    sl_value_clear(&ev);
    return rc;
}

TEST(test_descriptor)
{
    CHECK_STR(sl_plugin_filter_drop.name, "drop");
    CHECK_INT(sl_plugin_filter_drop.kind, SL_PLUGIN_FILTER);
    CHECK(sl_plugin_filter_drop.filter != NULL);
}

TEST(test_drops_everything_by_default)
{
    struct sl_cfg cfg;
    void *d = load(&cfg, "drop:\n  when: {field: level, equals: DEBUG}\n");
    CHECK(d != NULL);
    CHECK_STR(errs(&cfg), "");
    CHECK_INT(run(d, "{\"level\":\"DEBUG\"}"), SL_FILTER_DROP);
    CHECK_INT(run(d, "{}"), SL_FILTER_DROP);
    sl_plugin_filter_drop.free(d);
    sl_cfg_free(&cfg);
}

TEST(test_null_options)
{
    struct sl_cfg cfg;
    void *d = load(&cfg, "drop:\n");
    CHECK(d != NULL);
    CHECK_INT(run(d, "{\"a\":1}"), SL_FILTER_DROP);
    sl_plugin_filter_drop.free(d);
    sl_cfg_free(&cfg);
}

TEST(test_percentage_bounds)
{
    struct sl_cfg cfg;
    void *d = load(&cfg, "drop: {percentage: 0}\n");
    CHECK(d != NULL);
    for (int i = 0; i < 1000; i++) {
        CHECK_INT(run(d, "{}"), SL_FILTER_KEEP);
    }
    sl_plugin_filter_drop.free(d);
    sl_cfg_free(&cfg);

    d = load(&cfg, "drop: {percentage: 100}\n");
    CHECK(d != NULL);
    for (int i = 0; i < 1000; i++) {
        CHECK_INT(run(d, "{}"), SL_FILTER_DROP);
    }
    sl_plugin_filter_drop.free(d);
    sl_cfg_free(&cfg);
}

TEST(test_percentage_thins)
{
    struct sl_cfg cfg;
    void *d = load(&cfg, "drop: {percentage: 30}\n");
    CHECK(d != NULL);
    struct sl_value ev = {0};
    int dropped = 0;
    for (int i = 0; i < 20000; i++) {
        dropped += sl_plugin_filter_drop.filter(d, &ev) == SL_FILTER_DROP;
    }
    /* 30% of 20000 is 6000, sigma ~65: +-600 is far outside chance. */
    CHECK(dropped > 5400 && dropped < 6600);
    sl_plugin_filter_drop.free(d);
    sl_cfg_free(&cfg);
}

TEST(test_config_errors)
{
    struct sl_cfg cfg;
    CHECK(load(&cfg, "drop:\n  percentage: 101\n  perc: 5\n") == NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:2:15: pipeline.filters[0] (drop): option 'percentage' must be between 0 "
              "and 100, got '101'\n"
              "t.yml:3:3: pipeline.filters[0] (drop): unknown option 'perc'\n");
    sl_cfg_free(&cfg);

    CHECK(load(&cfg, "drop: {percentage: half}\n") == NULL);
    CHECK_STR(errs(&cfg), "t.yml:1:20: pipeline.filters[0] (drop): option 'percentage' must be "
                          "an integer, got 'half'\n");
    sl_cfg_free(&cfg);
}

TEST(test_free_null)
{
    sl_plugin_filter_drop.free(NULL);
}

int main(void)
{
    RUN(test_descriptor);
    RUN(test_drops_everything_by_default);
    RUN(test_null_options);
    RUN(test_percentage_bounds);
    RUN(test_percentage_thins);
    RUN(test_config_errors);
    RUN(test_free_null);
    return TEST_SUMMARY();
}
