/*
 * out_stdout_test.c - the `stdout` output driven through the core: the exact
 * bytes written to standard output (redirected to a temporary file with
 * dup2), the metadata option, events the output does not take, a write
 * error, and config errors with their exact FILE:LINE:COL text.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/json.h"
#include "sluice/plugin.h"
#include "test.h"

#define OUTPUT_PLUGIN sl_plugin_out_stdout
#define OUTPUT_KEY "stdout"
#define OUTPUT_ID "outputs[0] (stdout)"
#include "output_harness.h"

/* What a submit wrote to stdout and stderr, and its verdict. */
struct capture {
    char out[8192];
    char err[8192];
    int status;
    int ndone;
};

static void read_back(FILE *f, char *buf, size_t size)
{
    size_t n = (rewind(f), fread(buf, 1, size - 1, f));
    buf[n] = '\0';
    fclose(f);
}

/* Submits events with stdout and stderr redirected to temporary files; stdout_fd
 * >= 0 replaces stdout with that descriptor instead (to make writes fail). */
static void submit_captured(struct sl_instance *in, const char *events, const uint8_t *take,
                            int stdout_fd, struct capture *c)
{
    size_t n;
    struct sl_value *ev = oevents(events, &n);
    struct out_run r;
    FILE *out = tmpfile(), *err = tmpfile();
    fflush(stdout);
    int saved_out = dup(STDOUT_FILENO), saved_err = dup(STDERR_FILENO);
    dup2(stdout_fd >= 0 ? stdout_fd : fileno(out), STDOUT_FILENO);
    dup2(fileno(err), STDERR_FILENO);
    osubmit(in, &r, ev, n, take);
    dup2(saved_out, STDOUT_FILENO);
    dup2(saved_err, STDERR_FILENO);
    close(saved_out);
    close(saved_err);
    ofree_events(ev, n);
    read_back(out, c->out, sizeof(c->out));
    read_back(err, c->err, sizeof(c->err));
    fputs(c->err, stderr);
    c->status = r.status;
    c->ndone = r.ndone;
}

/* Checks the bytes on stdout, an OK verdict, and that it came exactly once (the core
 * swallows a second sl_batch_done, logging it). */
#define EXPECT_OUT(in, events, take, want) expect_out_(in, events, take, want, __LINE__)
static void expect_out_(struct sl_instance *in, const char *events, const uint8_t *take,
                        const char *want, int line)
{
    struct capture c;
    submit_captured(in, events, take, -1, &c);
    if (strcmp(c.out, want) != 0 || c.status != SL_OK || c.ndone != 1 ||
        strstr(c.err, "verdict twice")) {
        fprintf(stderr, "%s:%d: wrote \"%s\" (status %d, %d verdicts%s)\n%*sexpected \"%s\"\n",
                __FILE__, line, c.out, c.status, c.ndone,
                strstr(c.err, "verdict twice") ? " and a second one" : "",
                (int)strlen(__FILE__) + 5, "", want);
        t_failed_checks++;
    }
}

#define E1 "{\"@timestamp\":\"2024-02-28T10:00:00.000Z\",\"@metadata\":{\"beat\":\"sluice\"}," \
           "\"message\":\"one\"}"
#define E2 "{\"message\":\"tw\\u00f6\\n\",\"nested\":{\"@metadata\":1},\"n\":[1,2.5,null]}"
#define E2_OUT "{\"message\":\"tw\xc3\xb6\\n\",\"nested\":{\"@metadata\":1},\"n\":[1,2.5,null]}"

TEST(test_descriptor)
{
    CHECK_STR(P.name, "stdout");
    CHECK_INT(P.kind, SL_PLUGIN_OUTPUT);
    CHECK(P.submit != NULL);
    CHECK(P.filter == NULL);
}

TEST(test_one_json_line_per_event)
{
    struct sl_cfg cfg;
    struct sl_instance *in = oload(&cfg, "stdout: {}\n", NULL, NULL);
    CHECK(in != NULL);
    EXPECT_OUT(in, "[" E1 "," E2 "]", NULL, E1 "\n" E2_OUT "\n");
    EXPECT_OUT(in, "[" E2 "]", NULL, E2_OUT "\n");
    agg_instance_free(in);
    sl_cfg_free(&cfg);

    /* `stdout:` with nothing under it is the same output. */
    in = oload(&cfg, "stdout:\n", NULL, NULL);
    CHECK(in != NULL);
    EXPECT_OUT(in, "[" E1 "]", NULL, E1 "\n");
    agg_instance_free(in);
    sl_cfg_free(&cfg);
}

TEST(test_metadata_false)
{
    struct sl_cfg cfg;
    struct sl_instance *in = oload(&cfg, "stdout: {metadata: false}\n", NULL, NULL);
    CHECK(in != NULL);
    /* Only the top-level @metadata goes; a nested key of that name is data. */
    EXPECT_OUT(in, "[" E1 "," E2 "]", NULL,
               "{\"@timestamp\":\"2024-02-28T10:00:00.000Z\",\"message\":\"one\"}\n" E2_OUT "\n");
    agg_instance_free(in);
    sl_cfg_free(&cfg);
}

TEST(test_events_not_taken_are_not_written)
{
    struct sl_cfg cfg;
    struct sl_instance *in = oload(&cfg, "stdout: {}\n", NULL, NULL);
    CHECK(in != NULL);
    /* take[i] == 0: routed elsewhere; null: dropped by a filter. */
    const uint8_t take[] = {1, 0, 1, 1};
    EXPECT_OUT(in, "[{\"i\":0},{\"i\":1},null,{\"i\":3}]", take, "{\"i\":0}\n{\"i\":3}\n");
    EXPECT_OUT(in, "[null,{\"i\":1},null]", NULL, "{\"i\":1}\n");
    /* Nothing to write: nothing written, still one verdict. */
    const uint8_t none[] = {0};
    EXPECT_OUT(in, "[{\"i\":0}]", none, "");
    EXPECT_OUT(in, "[null]", NULL, "");
    agg_instance_free(in);
    sl_cfg_free(&cfg);
}

TEST(test_write_error)
{
    struct sl_cfg cfg;
    struct sl_instance *in = oload(&cfg, "stdout: {}\n", NULL, NULL);
    CHECK(in != NULL);
    /* A stdout open for reading only: write() fails with EBADF. */
    int ro = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(ro >= 0);
    struct capture c;
    submit_captured(in, "[{\"i\":0},{\"i\":1}]", NULL, ro, &c);
    close(ro);
    CHECK(c.status != SL_OK);
    CHECK_INT(c.ndone, 1);
    CHECK(strstr(c.err, "verdict twice") == NULL);
    CHECK(strstr(c.err, "outputs[0] (stdout): cannot write to stdout: Bad file descriptor\n"));
    /* The next batch, with stdout back, goes through. */
    EXPECT_OUT(in, "[{\"i\":2}]", NULL, "{\"i\":2}\n");
    agg_instance_free(in);
    sl_cfg_free(&cfg);
}

TEST(test_config_errors)
{
    struct sl_cfg cfg;
    CHECK(oload(&cfg, "stdout:\n  metdata: false\n  codec: json\n", NULL, NULL) == NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:2:3: outputs[0] (stdout): unknown option 'metdata' (did you mean "
              "'metadata'?)\n"
              "t.yml:3:3: outputs[0] (stdout): unknown option 'codec'\n");
    sl_cfg_free(&cfg);

    CHECK(oload(&cfg, "stdout: {metadata: maybe}\n", NULL, NULL) == NULL);
    CHECK_STR(errs(&cfg), "t.yml:1:20: outputs[0] (stdout): option 'metadata' must be true or "
                          "false, got 'maybe'\n");
    sl_cfg_free(&cfg);
}

TEST(test_core_options_accepted)
{
    struct sl_cfg cfg;
    struct sl_instance *in =
        oload(&cfg, "stdout:\n  id: debug\n  else: true\n  metadata: false\n", NULL, NULL);
    CHECK(in != NULL);
    CHECK_STR(errs(&cfg), "");
    CHECK_STR(in->label, "debug");
    CHECK(in->is_else);
    agg_instance_free(in);
    sl_cfg_free(&cfg);
}

int main(void)
{
    RUN(test_descriptor);
    RUN(test_one_json_line_per_event);
    RUN(test_metadata_false);
    RUN(test_events_not_taken_are_not_written);
    RUN(test_write_error);
    RUN(test_config_errors);
    RUN(test_core_options_accepted);
    return TEST_SUMMARY();
}
