/*
 * filter_drop_test.c - the `drop` filter driven through the core, as the
 * pipeline runs it: it drops what it is given (the core applies `when`), thins
 * by `percentage`, and rejects bad options with FILE:LINE:COL errors.
 */
#include <stdlib.h>
#include <string.h>

#define FILTER_PLUGIN sl_plugin_filter_drop
#define FILTER_KEY "drop"
#define FILTER_ID "pipeline.filters[0] (drop)"
#include "filter_harness.h"

/* Runs the instance, as the pipeline does, on the event json; returns the verdict. */
static int run_json(void *inst, const char *json)
{
    struct sl_value ev = {0};
    char err[128];
    CHECK_INT(sl_json_parse(json, strlen(json), &ev, NULL, err, sizeof(err)), 0);
    int rc = run(inst, &ev);
    sl_value_clear(&ev);
    return rc;
}

TEST(test_descriptor)
{
    CHECK_STR(P.name, "drop");
    CHECK_INT(P.kind, SL_PLUGIN_FILTER);
    CHECK(P.filter != NULL);
}

TEST(test_drops_everything_by_default)
{
    struct sl_cfg cfg;
    void *d = load(&cfg, "drop:\n  when: {field: level, equals: DEBUG}\n");
    CHECK(d != NULL);
    CHECK_STR(errs(&cfg), "");
    CHECK_INT(run_json(d, "{\"level\":\"DEBUG\"}"), SL_FILTER_DROP);
    /* The core applies `when`: an event it does not accept never reaches the filter. */
    CHECK_INT(run_json(d, "{}"), SL_FILTER_KEEP);
    CHECK_INT(run_json(d, "{\"level\":\"INFO\"}"), SL_FILTER_KEEP);
    unload(d);
    sl_cfg_free(&cfg);
}

TEST(test_null_options)
{
    struct sl_cfg cfg;
    void *d = load(&cfg, "drop:\n");
    CHECK(d != NULL);
    /* Without `when`, whatever reaches the filter is dropped: it never looks at the event. */
    CHECK_INT(run_json(d, "{\"a\":1}"), SL_FILTER_DROP);
    CHECK_INT(run_json(d, "{}"), SL_FILTER_DROP);
    unload(d);
    sl_cfg_free(&cfg);
}

TEST(test_percentage_bounds)
{
    struct sl_cfg cfg;
    void *d = load(&cfg, "drop: {percentage: 0}\n");
    CHECK(d != NULL);
    for (int i = 0; i < 1000; i++) {
        CHECK_INT(run_json(d, "{}"), SL_FILTER_KEEP);
    }
    unload(d);
    sl_cfg_free(&cfg);

    d = load(&cfg, "drop: {percentage: 100}\n");
    CHECK(d != NULL);
    for (int i = 0; i < 1000; i++) {
        CHECK_INT(run_json(d, "{}"), SL_FILTER_DROP);
    }
    unload(d);
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
        dropped += run(d, &ev) == SL_FILTER_DROP;
    }
    /* 30% of 20000 is 6000, sigma ~65: +-600 is far outside chance. */
    CHECK(dropped > 5400 && dropped < 6600);
    unload(d);
    sl_cfg_free(&cfg);
}

TEST(test_config_errors)
{
    struct sl_cfg cfg;
    CHECK(load(&cfg, "drop:\n  percentage: 101\n  perc: 5\n") == NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:2:15: pipeline.filters[0] (drop): option 'percentage' must be between 0 "
              "and 100, got '101'\n"
              "t.yml:3:3: pipeline.filters[0] (drop): unknown option 'perc' (did you mean "
              "'percentage'?)\n");
    sl_cfg_free(&cfg);

    CHECK(load(&cfg, "drop: {percentage: half}\n") == NULL);
    CHECK_STR(errs(&cfg), "t.yml:1:20: pipeline.filters[0] (drop): option 'percentage' must be "
                          "an integer, got 'half'\n");
    sl_cfg_free(&cfg);
}

TEST(test_free_null)
{
    unload(NULL);
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
