/*
 * instance_test.c - the plugin contract's core side, with plugins made up for
 * the test: every option type read through a table (defaults, aliases,
 * bounds, required, unknown keys with a suggestion, nested blocks), the
 * core's own options (id, when, else, tag_on_failure, dead_letter_path),
 * filter verdicts tagged and counted one way for every filter, output
 * verdicts and dead letters counted by the core, and the generated docs.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "instance.h"
#include "sluice/json.h"
#include "sluice/metrics.h"
#include "test.h"

/* ---- a plugin with one option of every type ------------------------------------ */

struct every {
    char *s;
    bool b;
    int64_t i;
    uint64_t size, ms;
    int e;
    struct sl_fieldref f;
    struct sl_template *t;
    struct sl_strv l;
    struct sl_fieldrefs fs;
    struct sl_strmap m;
    struct sl_plugin_tls tls;
    struct sl_cfg_node *raw;
    int inits;
};

static const char *const colours[] = {"red", "green", NULL};

static const struct sl_opt every_opts[] = {
    {.name = "s", .type = SL_OPT_STRING, .offset = offsetof(struct every, s), .def = "dflt",
     .alias = "str", .doc = "a string"},
    {.name = "b", .type = SL_OPT_BOOL, .offset = offsetof(struct every, b), .def = "true"},
    {.name = "i", .type = SL_OPT_INT, .offset = offsetof(struct every, i), .def = "3", .min = 1,
     .max = 10, .doc = "an integer"},
    {.name = "size", .type = SL_OPT_SIZE, .offset = offsetof(struct every, size), .def = "2kb"},
    {.name = "ms", .type = SL_OPT_DURATION, .offset = offsetof(struct every, ms), .def = "1s"},
    {.name = "e", .type = SL_OPT_ENUM, .offset = offsetof(struct every, e), .def = "green",
     .choices = colours},
    {.name = "f", .type = SL_OPT_FIELD, .offset = offsetof(struct every, f), .def = "[a][b]"},
    {.name = "t", .type = SL_OPT_TEMPLATE, .offset = offsetof(struct every, t),
     .def = "x-%{[a][b]}"},
    {.name = "l", .type = SL_OPT_LIST, .offset = offsetof(struct every, l), .def = "[p, q]"},
    {.name = "fs", .type = SL_OPT_FIELDS, .offset = offsetof(struct every, fs)},
    {.name = "m", .type = SL_OPT_MAP, .offset = offsetof(struct every, m)},
    {.name = "ssl", .type = SL_OPT_BLOCK, .offset = offsetof(struct every, tls),
     .sub = sl_plugin_tls_opts, .doc = "TLS"},
    {.name = "raw", .type = SL_OPT_NODE, .offset = offsetof(struct every, raw)},
    {0},
};

static int every_init(void *inst, struct sl_plugin_ctx *ctx)
{
    struct every *e = inst;
    e->inits++;
    if (e->raw && e->raw->type != SL_CFG_SEQ) {
        sl_plugin_error(ctx, "raw", "option 'raw' must be a list");
        return SL_EINVAL;
    }
    return 0;
}

static enum sl_filter_result every_filter(void *inst, struct sl_value *ev)
{
    const struct sl_value *v = sl_obj_getc(ev, "do");
    if (!v || v->type != SL_V_STRING) {
        return SL_FILTER_KEEP;
    }
    if (strcmp(v->u.s.ptr, "drop") == 0) {
        return SL_FILTER_DROP;
    }
    if (strcmp(v->u.s.ptr, "fail") == 0) {
        return SL_FILTER_FAIL;
    }
    if (strcmp(v->u.s.ptr, "self") == 0) {
        sl_event_add_tag(ev, "_own");
        return SL_FILTER_FAIL_TAGGED;
    }
    return SL_FILTER_KEEP;
}

static const struct sl_plugin every_plugin = {
    .name = "every",
    .kind = SL_PLUGIN_FILTER,
    .summary = "a test filter",
    .options = every_opts,
    .size = sizeof(struct every),
    .failure_tag = "_everyfailure",
    .init = every_init,
    .filter = every_filter,
};

static const char *errs(struct sl_cfg *cfg)
{
    return cfg->errors.data ? sl_buf_cstr(&cfg->errors) : "";
}

static struct sl_instance *make(struct sl_cfg *cfg, const struct sl_plugin *p, const char *yaml,
                                struct sl_metrics *m)
{
    struct agg_instance_args a = {.id = "pipeline.filters[0] (every)", .metrics = m};
    memset(cfg, 0, sizeof(*cfg));
    if (sl_cfg_load_string(cfg, "t.yml", yaml, strlen(yaml)) != 0) {
        return NULL;
    }
    return agg_instance_new(p, cfg, sl_cfg_get(cfg->root, "x"), &a);
}

TEST(defaults_come_from_the_table)
{
    struct sl_cfg cfg;
    struct sl_instance *in = make(&cfg, &every_plugin, "x: {}\n", NULL);
    CHECK(in != NULL);
    CHECK_STR(errs(&cfg), "");
    struct every *e = in->inst;
    CHECK_STR(e->s, "dflt");
    CHECK(e->b);
    CHECK_INT(e->i, 3);
    CHECK_INT(e->size, 2048);
    CHECK_INT(e->ms, 1000);
    CHECK_INT(e->e, 1);
    CHECK_STR(e->f.text, "[a][b]");
    CHECK_STR(sl_template_source(e->t), "x-%{[a][b]}");
    CHECK_INT(e->l.n, 2);
    CHECK_STR(e->l.v[0], "p");
    CHECK_STR(e->l.v[1], "q");
    CHECK(e->l.v[2] == NULL);
    CHECK_INT(e->fs.n, 0);
    CHECK_INT(e->m.n, 0);
    CHECK(e->m.keys != NULL && e->m.keys[0] == NULL);
    CHECK_INT(e->tls.verification_mode, 0);
    CHECK(e->raw == NULL);
    CHECK_INT(e->inits, 1);
    CHECK_STR(in->label, "every");
    CHECK_STR(in->fail_tags[0], "_everyfailure");
    CHECK(in->fail_tags[1] == NULL);
    agg_instance_free(in);
    sl_cfg_free(&cfg);
}

TEST(every_type_reads_what_the_user_wrote)
{
    struct sl_cfg cfg;
    struct sl_instance *in = make(&cfg, &every_plugin,
                                  "x:\n"
                                  "  str: hello\n"
                                  "  b: off\n"
                                  "  i: 10\n"
                                  "  size: 5mb\n"
                                  "  ms: 250ms\n"
                                  "  e: red\n"
                                  "  f: c.d\n"
                                  "  t: 'y-%{+yyyy}'\n"
                                  "  l: one\n"
                                  "  fs: ['[a]', b.c]\n"
                                  "  m: {k1: v1, k2: ~}\n"
                                  "  ssl: {verification_mode: none, certificate_authorities: ca.pem}\n"
                                  "  raw: [1, 2]\n"
                                  "  id: mine\n",
                                  NULL);
    CHECK(in != NULL);
    CHECK_STR(errs(&cfg), "");
    struct every *e = in->inst;
    CHECK_STR(e->s, "hello");
    CHECK(!e->b);
    CHECK_INT(e->i, 10);
    CHECK_INT(e->size, 5 * 1024 * 1024);
    CHECK_INT(e->ms, 250);
    CHECK_INT(e->e, 0);
    CHECK_INT(e->f.nsegs, 2);
    CHECK_INT(e->l.n, 1);
    CHECK_STR(e->l.v[0], "one");
    CHECK_INT(e->fs.n, 2);
    CHECK_STR(e->fs.v[1].text, "b.c");
    CHECK_INT(e->m.n, 2);
    CHECK_STR(e->m.keys[1], "k2");
    CHECK_STR(e->m.vals[1], "");
    CHECK_INT(e->tls.verification_mode, 2);
    CHECK_STR(e->tls.certificate_authorities.v[0], "ca.pem");
    CHECK(e->raw != NULL && e->raw->n == 2);
    CHECK_STR(in->label, "mine");
    agg_instance_free(in);
    sl_cfg_free(&cfg);
}

TEST(errors_are_in_file_order_with_suggestions)
{
    struct sl_cfg cfg;
    CHECK(make(&cfg, &every_plugin,
               "x:\n"
               "  s: a\n"
               "  str: b\n"
               "  i: 11\n"
               "  e: blue\n"
               "  f: 'a..b'\n"
               "  t: '%{'\n"
               "  m: [1]\n"
               "  ssl: {verification: none}\n"
               "  sizee: 1kb\n"
               "  tag_on_failure: {a: 1}\n"
               "  when: 42\n"
               "  raw: x\n",
               NULL) == NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:3:8: pipeline.filters[0] (every): options 's' and 'str' name the same "
              "thing; give one\n"
              "t.yml:4:6: pipeline.filters[0] (every): option 'i' must be between 1 and 10, got "
              "'11'\n"
              "t.yml:5:6: pipeline.filters[0] (every): option 'e' must be one of red, green, got "
              "'blue'\n"
              "t.yml:6:6: pipeline.filters[0] (every): option 'f': 'a..b' is not a valid field "
              "reference\n"
              "t.yml:7:6: pipeline.filters[0] (every): option 't': unterminated '%{' at offset 0\n"
              "t.yml:8:6: pipeline.filters[0] (every): option 'm' must be a map\n"
              "t.yml:9:9: pipeline.filters[0] (every): ssl: unknown option 'verification' (did "
              "you mean 'verification_mode'?)\n"
              "t.yml:10:3: pipeline.filters[0] (every): unknown option 'sizee' (did you mean "
              "'size'?)\n"
              "t.yml:11:19: pipeline.filters[0] (every): option 'tag_on_failure' must be a "
              "string or a list of strings, got a map\n"
              "t.yml:12:9: pipeline.filters[0] (every): when: a condition must be a map like "
              "{field: F, equals: V}, got a string\n");
    sl_cfg_free(&cfg);
}

/* The same failure is tagged the same way for every filter: absent or null
 * means the filter's default tag, [] none, a list exactly those. */
TEST(tag_on_failure_has_one_meaning)
{
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"x: {}\n", "{\"do\":\"fail\",\"tags\":[\"_everyfailure\"]}"},
        {"x: {tag_on_failure: ~}\n", "{\"do\":\"fail\",\"tags\":[\"_everyfailure\"]}"},
        {"x: {tag_on_failure: null}\n", "{\"do\":\"fail\",\"tags\":[\"_everyfailure\"]}"},
        {"x: {tag_on_failure: []}\n", "{\"do\":\"fail\"}"},
        {"x: {tag_on_failure: [a, b]}\n", "{\"do\":\"fail\",\"tags\":[\"a\",\"b\"]}"},
        {"x: {tag_on_failure: c}\n", "{\"do\":\"fail\",\"tags\":[\"c\"]}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sl_cfg cfg;
        struct sl_instance *in = make(&cfg, &every_plugin, cases[i].yaml, NULL);
        CHECK(in != NULL);
        struct sl_value ev = {0};
        char err[64];
        CHECK_INT(sl_json_parse("{\"do\":\"fail\"}", 13, &ev, NULL, err, sizeof(err)), 0);
        CHECK_INT(agg_instance_filter(in, &ev, &(bool){false}), SL_FILTER_FAIL);
        struct sl_buf b;
        sl_buf_init(&b, 0);
        sl_json_write(&b, &ev, NULL);
        CHECK_STR(sl_buf_cstr(&b), cases[i].want);
        sl_buf_free(&b);
        sl_value_clear(&ev);
        agg_instance_free(in);
        sl_cfg_free(&cfg);
    }
}

static double series(struct sl_metrics *m, const char *name, const char *kind, const char *label,
                     const char *result)
{
    struct sl_metric *s =
        sl_metrics_counter(m, name, strcmp(kind, "filter") == 0
                                        ? "Events through each filter, by result (ok|dropped|error)."
                                        : "Events handled by each output, by result "
                                          "(ok|retry|failed|dead_letter|dropped).",
                           (const char *[]){kind, label, "result", result, NULL});
    return sl_metric_value(s);
}

static const char *filter_json(struct sl_instance *in, const char *json, int *rc)
{
    static char out[256];
    struct sl_value ev = {0};
    char err[64];
    sl_json_parse(json, strlen(json), &ev, NULL, err, sizeof(err));
    *rc = agg_instance_filter(in, &ev, &(bool){false});
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_json_write(&b, &ev, NULL);
    snprintf(out, sizeof(out), "%s", sl_buf_cstr(&b));
    sl_buf_free(&b);
    sl_value_clear(&ev);
    return out;
}

TEST(filter_verdicts_are_counted_by_the_core_under_the_instance_label)
{
    struct sl_metrics *m = sl_metrics_new();
    struct sl_cfg cfg;
    struct sl_instance *in =
        make(&cfg, &every_plugin, "x: {id: parse, when: {field: go, equals: yes}}\n", m);
    CHECK(in != NULL);
    int rc;
    CHECK_STR(filter_json(in, "{\"go\":\"yes\",\"do\":\"fail\"}", &rc),
              "{\"go\":\"yes\",\"do\":\"fail\",\"tags\":[\"_everyfailure\"]}");
    CHECK_INT(rc, SL_FILTER_FAIL);
    CHECK_STR(filter_json(in, "{\"go\":\"yes\",\"do\":\"self\"}", &rc),
              "{\"go\":\"yes\",\"do\":\"self\",\"tags\":[\"_own\"]}");
    CHECK_INT(rc, SL_FILTER_FAIL_TAGGED);
    CHECK_STR(filter_json(in, "{\"go\":\"yes\",\"do\":\"drop\"}", &rc), "null");
    CHECK_INT(rc, SL_FILTER_DROP);
    CHECK_STR(filter_json(in, "{\"go\":\"yes\"}", &rc), "{\"go\":\"yes\"}");
    /* The condition does not hold: the filter does not run, nothing is counted. */
    CHECK_STR(filter_json(in, "{\"go\":\"no\",\"do\":\"fail\"}", &rc),
              "{\"go\":\"no\",\"do\":\"fail\"}");
    CHECK_INT(rc, SL_FILTER_KEEP);
    const char *f = "sluice_aggregator_filter_events_total";
    CHECK(series(m, f, "filter", "parse", "error") == 2);
    CHECK(series(m, f, "filter", "parse", "dropped") == 1);
    CHECK(series(m, f, "filter", "parse", "ok") == 1);
    agg_instance_free(in);
    sl_cfg_free(&cfg);
    sl_metrics_free(m);
}

/* ---- an output that dead-letters events whose "bad" is true ---------------------- */

struct sink {
    int submits;
    size_t seen;
};

static void sink_submit(void *inst, struct sl_batch *b)
{
    struct sink *s = inst;
    s->submits++;
    int status = SL_OK;
    for (size_t i = 0; i < b->n; i++) {
        struct sl_value *ev = sl_batch_event(b, i);
        if (!ev) {
            continue;
        }
        s->seen++;
        const struct sl_value *bad = sl_obj_getc(ev, "bad");
        if (bad && bad->type == SL_V_BOOL && bad->u.b) {
            struct sl_buf j;
            sl_buf_init(&j, 0);
            sl_json_write(&j, ev, NULL);
            /* Filed (0) or dropped by the core (SL_DLQ_DROPPED): settled either way;
             * only a dead letter that could not be written fails the batch. */
            if (sl_batch_dead_letter(b, j.data, j.len, "\"why\":\"bad\"") < 0) {
                status = SL_EIO;
            }
            sl_buf_free(&j);
        }
    }
    sl_batch_done(b, status);
}

static const struct sl_plugin sink_plugin = {
    .name = "sink",
    .kind = SL_PLUGIN_OUTPUT,
    .summary = "a test output",
    .size = sizeof(struct sink),
    .submit = sink_submit,
};

struct run {
    struct agg_batch_core core;
    struct sl_batch batch;
    int ndone, status;
};

static void run_done(struct agg_batch_core *c, int status)
{
    struct run *r = (struct run *)c;
    r->ndone++;
    r->status = status;
}

TEST(output_verdicts_and_dead_letters_are_counted_by_the_core)
{
    char dir[] = "/tmp/sluice-inst-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char yaml[256];
    snprintf(yaml, sizeof(yaml), "x: {dead_letter_path: '%s/dlq'}\n", dir);
    struct sl_metrics *m = sl_metrics_new();
    struct sl_cfg cfg;
    struct sl_instance *in = make(&cfg, &sink_plugin, yaml, m);
    CHECK(in != NULL);
    CHECK_STR(in->label, "sink");

    struct sl_value ev[4] = {0};
    const char *src[] = {"{\"n\":0}", "{\"n\":1,\"bad\":true}", "{\"n\":2}", "{\"n\":3}"};
    char err[64];
    for (int i = 0; i < 4; i++) {
        sl_json_parse(src[i], strlen(src[i]), &ev[i], NULL, err, sizeof(err));
    }
    uint8_t take[4] = {1, 1, 1, 0};  /* event 3 is routed elsewhere */
    struct run r = {0};
    sl_wall_pin(1798761599000ULL);   /* 2026-12-31T23:59:59Z names the file */
    agg_batch_prepare(&r.batch, &r.core, in, ev, 4, take, run_done);
    CHECK_INT(r.batch.count, 3);
    in->plugin->submit(in->inst, &r.batch);
    sl_wall_unpin();
    CHECK_INT(r.ndone, 1);
    CHECK_INT(r.status, SL_OK);
    CHECK_INT(((struct sink *)in->inst)->seen, 3);
    /* A second verdict is a plugin bug: ignored, not counted. */
    sl_batch_done(&r.batch, SL_OK);
    CHECK_INT(r.ndone, 1);
    const char *o = "sluice_aggregator_output_events_total";
    CHECK(series(m, o, "output", "sink", "ok") == 2);
    CHECK(series(m, o, "output", "sink", "dead_letter") == 1);
    CHECK(series(m, o, "output", "sink", "failed") == 0);

    char path[512], line[512];
    snprintf(path, sizeof(path), "%s/dlq/dlq-2026.12.31.ndjson", dir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (f) {
        CHECK(fgets(line, sizeof(line), f) != NULL);
        CHECK_STR(line, "{\"time\":\"2026-12-31T23:59:59.000Z\",\"output\":\"sink\","
                        "\"event\":{\"n\":1,\"bad\":true},\"why\":\"bad\"}\n");
        CHECK(fgets(line, sizeof(line), f) == NULL);
        fclose(f);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/dlq", dir);
    rmdir(path);
    rmdir(dir);
    for (int i = 0; i < 4; i++) {
        sl_value_clear(&ev[i]);
    }
    agg_instance_free(in);
    sl_cfg_free(&cfg);
    sl_metrics_free(m);
}

/* ---- sl_lines: an output's lines as runs of the encodings ---------------------- */

struct liner {
    size_t runs;
    char text[256];
};

static void liner_submit(void *inst, struct sl_batch *b)
{
    struct liner *l = inst;
    struct sl_lines lines = {0};
    for (size_t i = 0; i < b->n; i++) {
        sl_lines_add(&lines, b, i);
    }
    l->runs = lines.n;
    size_t at = 0;
    for (size_t k = 0; k < lines.n && at + lines.v[k].iov_len < sizeof(l->text); k++) {
        memcpy(l->text + at, lines.v[k].iov_base, lines.v[k].iov_len);
        at += lines.v[k].iov_len;
    }
    l->text[at] = '\0';
    sl_lines_free(&lines);
    sl_batch_done(b, SL_OK);
}

static int liner_init(void *inst, struct sl_plugin_ctx *ctx)
{
    sl_output_encoding(ctx, &(struct sl_encoding){.metadata = true});
    return 0;
}

static const struct sl_plugin liner_plugin = {
    .name = "liner",
    .kind = SL_PLUGIN_OUTPUT,
    .summary = "a test output writing lines",
    .size = sizeof(struct liner),
    .init = liner_init,
    .submit = liner_submit,
};

/* Encodes the events b takes, events [0, split) into one buffer and the rest
 * into another (two slices of a window), as the workers do, then submits. */
static void submit_encoded(struct sl_instance *in, struct sl_value *ev, size_t n,
                           const uint8_t *take, size_t split, struct run *r)
{
    struct agg_enc enc[8] = {0};
    struct sl_buf buf[2];
    sl_buf_init(&buf[0], 0);
    sl_buf_init(&buf[1], 0);
    agg_batch_prepare(&r->batch, &r->core, in, ev, n, take, run_done);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            struct sl_buf *out = &buf[i < split ? 0 : 1];
            if (!sl_batch_event(&r->batch, i)) {
                continue;
            }
            if (pass == 0) {
                agg_output_encode(in, &ev[i], NULL, out, &enc[i]);
            } else {
                agg_enc_fix(in, &enc[i], out);
            }
        }
    }
    r->core.enc = enc;
    in->plugin->submit(in->inst, &r->batch);
    sl_buf_free(&buf[0]);
    sl_buf_free(&buf[1]);
}

TEST(lines_join_adjacent_encodings_into_runs)
{
    struct sl_cfg cfg;
    struct sl_instance *in = make(&cfg, &liner_plugin, "x: {}\n", NULL);
    CHECK(in != NULL && in->encoded);
    struct sl_value ev[4] = {0};
    const char *src[] = {"{\"n\":0}", "{\"n\":1}", "{\"n\":2}", "{\"n\":3}"};
    char err[64];
    for (int i = 0; i < 4; i++) {
        sl_json_parse(src[i], strlen(src[i]), &ev[i], NULL, err, sizeof(err));
    }
    struct liner *l = in->inst;
    struct run r = {0};
    /* One buffer: every line in one run. */
    submit_encoded(in, ev, 4, NULL, 4, &r);
    CHECK_INT(l->runs, 1);
    CHECK_STR(l->text, "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    /* Two slices: two runs, in order. */
    submit_encoded(in, ev, 4, NULL, 2, &r);
    CHECK_INT(l->runs, 2);
    CHECK_STR(l->text, "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    /* Events the output does not take are neither encoded nor written. */
    const uint8_t take[4] = {1, 0, 1, 1};
    submit_encoded(in, ev, 4, take, 4, &r);
    CHECK_INT(l->runs, 1);
    CHECK_STR(l->text, "{\"n\":0}\n{\"n\":2}\n{\"n\":3}\n");
    CHECK_INT(r.ndone, 3);  /* one verdict per submit */
    for (int i = 0; i < 4; i++) {
        sl_value_clear(&ev[i]);
    }
    agg_instance_free(in);
    sl_cfg_free(&cfg);
}

/* Without a dead_letter_path the core drops a refused event: counted
 * result="dropped" (not ok, not failed), settled, so the rest of the batch is
 * delivered and the batch ACKed. Nothing is filed: there is no writer. */
TEST(without_dead_letter_path_a_refused_event_is_dropped)
{
    struct sl_metrics *m = sl_metrics_new();
    struct sl_cfg cfg;
    struct sl_instance *in = make(&cfg, &sink_plugin, "x: {id: out1}\n", m);
    CHECK(in != NULL);
    CHECK(in->dlq == NULL);
    struct sl_value ev[2] = {0};
    char err[64];
    sl_json_parse("{\"bad\":true}", 12, &ev[0], NULL, err, sizeof(err));
    sl_json_parse("{\"n\":1}", 7, &ev[1], NULL, err, sizeof(err));
    struct run r = {0};
    agg_batch_prepare(&r.batch, &r.core, in, ev, 2, NULL, run_done);
    in->plugin->submit(in->inst, &r.batch);
    CHECK_INT(r.ndone, 1);
    CHECK_INT(r.status, SL_OK);
    const char *o = "sluice_aggregator_output_events_total";
    CHECK(series(m, o, "output", "out1", "ok") == 1);
    CHECK(series(m, o, "output", "out1", "dropped") == 1);
    CHECK(series(m, o, "output", "out1", "failed") == 0);
    CHECK(series(m, o, "output", "out1", "dead_letter") == 0);
    sl_value_clear(&ev[0]);
    sl_value_clear(&ev[1]);
    agg_instance_free(in);
    sl_cfg_free(&cfg);
    sl_metrics_free(m);
}

/* A dead letter that cannot be written (the directory lies under a file) is
 * SL_EIO: the event has failed, and so does its batch. */
TEST(a_dead_letter_that_cannot_be_written_fails_the_batch)
{
    char dir[] = "/tmp/sluice-inst-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char blocker[64], yaml[256];
    snprintf(blocker, sizeof(blocker), "%s/blocker", dir);
    FILE *f = fopen(blocker, "w");
    CHECK(f != NULL);
    if (f) {
        fclose(f);
    }
    snprintf(yaml, sizeof(yaml), "x: {id: out1, dead_letter_path: '%s/dlq'}\n", blocker);
    struct sl_metrics *m = sl_metrics_new();
    struct sl_cfg cfg;
    struct sl_instance *in = make(&cfg, &sink_plugin, yaml, m);
    CHECK(in != NULL);
    struct sl_value ev[2] = {0};
    char err[64];
    sl_json_parse("{\"bad\":true}", 12, &ev[0], NULL, err, sizeof(err));
    sl_json_parse("{\"n\":1}", 7, &ev[1], NULL, err, sizeof(err));
    struct run r = {0};
    agg_batch_prepare(&r.batch, &r.core, in, ev, 2, NULL, run_done);
    in->plugin->submit(in->inst, &r.batch);
    CHECK_INT(r.ndone, 1);
    CHECK_INT(r.status, SL_EIO);
    const char *o = "sluice_aggregator_output_events_total";
    CHECK(series(m, o, "output", "out1", "failed") == 2);
    CHECK(series(m, o, "output", "out1", "ok") == 0);
    CHECK(series(m, o, "output", "out1", "dead_letter") == 0);
    CHECK(series(m, o, "output", "out1", "dropped") == 0);
    sl_value_clear(&ev[0]);
    sl_value_clear(&ev[1]);
    agg_instance_free(in);
    sl_cfg_free(&cfg);
    sl_metrics_free(m);
    unlink(blocker);
    rmdir(dir);
}

TEST(output_core_options_are_checked)
{
    struct sl_cfg cfg;
    CHECK(make(&cfg, &sink_plugin,
               "x: {when: {field: a, equals: 1}, else: true, tag_on_failure: [x], id: ''}\n",
               NULL) == NULL);
    CHECK_STR(errs(&cfg),
              "t.yml:1:40: pipeline.filters[0] (every): an output takes either 'when' or "
              "'else', not both\n"
              "t.yml:1:46: pipeline.filters[0] (every): unknown option 'tag_on_failure'\n"
              "t.yml:1:71: pipeline.filters[0] (every): option 'id' must not be empty\n");
    sl_cfg_free(&cfg);
    /* Any condition error fails the instance, also in -t. */
    CHECK(make(&cfg, &sink_plugin, "x: {when: {bogus: 1}}\n", NULL) == NULL);
    CHECK(strstr(errs(&cfg), "when") != NULL);
    sl_cfg_free(&cfg);
}

TEST(docs_are_rendered_from_the_tables)
{
    static const struct sl_opt small[] = {
        {.name = "path", .type = SL_OPT_TEMPLATE, .offset = 0, .flags = SL_OPT_REQUIRED,
         .doc = "where"},
        {.name = "level", .type = SL_OPT_INT, .offset = 8, .def = "3", .min = 1, .max = 9,
         .alias = "lvl", .doc = "how hard"},
        {0},
    };
    static const struct sl_plugin p = {.name = "tiny", .kind = SL_PLUGIN_FILTER,
                                       .summary = "does little", .options = small,
                                       .failure_tag = "_tinyfailure"};
    struct sl_buf b;
    sl_buf_init(&b, 0);
    agg_plugin_doc(&b, &p);
    CHECK_STR(sl_buf_cstr(&b),
              "`tiny` (filter): does little.\n\n"
              "| option | type | default | description |\n|---|---|---|---|\n"
              "| `path` | template | required | where |\n"
              "| `level` (or `lvl`) | integer (1..9) | `3` | how hard |\n"
              "| `id` | string |  | names the instance in metric labels; default: the "
              "plugin's name, then name_2, name_3 ... for later instances of the same plugin |\n"
              "| `when` | see description |  | a condition (docs/filters.md, Conditions): only events "
              "it accepts go through |\n"
              "| `tag_on_failure` | list of strings | `[_tinyfailure]` | tags added when the "
              "filter fails; absent or null: the filter's default tag; []: none |\n");
    sl_buf_free(&b);
}

/* ---- encoding: a partial event written around a filter's changes ------------- */

static int enc_part(const void *inst, const struct sl_value *ev, unsigned k, struct sl_buf *out)
{
    SL_UNUSED(inst);
    SL_UNUSED(ev);
    SL_UNUSED(k);
    return sl_buf_puts(out, "p");
}

static int enc_init(void *inst, struct sl_plugin_ctx *ctx)
{
    bool *meta = inst;
    sl_output_encoding(ctx, &(struct sl_encoding){.metadata = *meta, .nparts = 1,
                                                  .part = enc_part});
    return 0;
}

static void enc_submit(void *inst, struct sl_batch *b)
{
    SL_UNUSED(inst);
    sl_batch_done(b, SL_OK);
}

static const struct sl_opt enc_opts[] = {
    {.name = "metadata", .type = SL_OPT_BOOL, .def = "false", .offset = 0, .doc = "keep it"},
    {0},
};

static const struct sl_plugin enc_plugin = {
    .name = "enc", .kind = SL_PLUGIN_OUTPUT, .summary = "encodes", .options = enc_opts,
    .size = sizeof(bool), .init = enc_init, .submit = enc_submit,
};

/* text scanned as a partial pipeline would, parsing the members named in claimed;
 * change() edits the tree; returns what the output gets as the event's JSON. */
static char *merged(struct sl_instance *out, const char *text, const char *const *claimed,
                    void (*change)(struct sl_value *))
{
    struct sl_arena arena;
    sl_arena_init(&arena, 0);
    struct sl_arena *scope = sl_value_set_arena(&arena);
    struct sl_json_member ms[SL_JSON_SCAN_MEMBERS];
    struct agg_member am[SL_JSON_SCAN_MEMBERS];
    struct agg_text txt = {.raw = {text, strlen(text)}, .touched = true, .members = am};
    struct sl_value ev = {0};
    CHECK(sl_json_scan(text, strlen(text), NULL, "@metadata", ms, &txt.nmembers, &txt.doc));
    sl_value_set_object(&ev);
    for (size_t k = 0; k < txt.nmembers; k++) {
        am[k] = (struct agg_member){.m = ms[k]};
        for (size_t c = 0; claimed[c]; c++) {
            am[k].parsed |= ms[k].key_len == strlen(claimed[c]) &&
                            memcmp(text + ms[k].key_off, claimed[c], ms[k].key_len) == 0;
        }
        if (am[k].parsed) {
            struct sl_value v = {0};
            CHECK_INT(sl_json_parse_arena(text + ms[k].val_off, ms[k].val_len, &v, &arena, NULL,
                                          NULL, 0), 0);
            am[k].snap = v;
            sl_value_move(sl_obj_put(&ev, text + ms[k].key_off, ms[k].key_len), &v);
        }
    }
    change(&ev);
    struct sl_buf b;
    struct agg_enc rec;
    sl_buf_init(&b, 0);
    agg_output_encode(out, &ev, &txt, &b, &rec);
    agg_enc_fix(out, &rec, &b);
    CHECK_INT(rec.part_rc[0], 0);
    CHECK_MEM(rec.part[0].p, rec.part[0].len, "p");
    char *json = sl_strndup(rec.json.p, rec.json.len);
    sl_buf_free(&b);
    sl_value_set_arena(scope);
    sl_arena_free(&arena);
    return json;
}

static void chg_mutate(struct sl_value *ev)
{
    sl_value_set_int(sl_obj_putc(ev, "n"), 7);          /* converted in place */
    struct sl_value tmp = {0};
    sl_value_move(&tmp, sl_obj_putc(ev, "old"));         /* renamed: goes last */
    sl_obj_del(ev, "old", 3);
    sl_value_move(sl_obj_putc(ev, "new"), &tmp);
    sl_obj_del(ev, "gone", 4);                           /* removed */
    sl_value_set_cstr(sl_field_put(ev, "[obj][x]"), "y");  /* inside a claimed object */
}

static void chg_nothing_declared(struct sl_value *ev)
{
    /* A filter that writes a key it did not declare: the tree still wins. */
    sl_value_set_cstr(sl_obj_putc(ev, "undeclared"), "tree");
    sl_value_set_cstr(sl_obj_putc(ev, "added"), "a\"b");
}

TEST(a_changed_partial_event_is_written_around_its_copied_members)
{
    struct sl_cfg cfg;
    struct sl_instance *out = make(&cfg, &enc_plugin, "x: {}\n", NULL);
    CHECK(out && out->encoded);
    static const char *const claimed[] = {"n", "old", "gone", "obj", "same", "new", NULL};
    const char *text = "{\"@metadata\":{\"b\":1},\"a\":\"\\/kept\",\"n\":\"7\",\"old\":1.50,"
                       "\"gone\":{\"x\":1},\"obj\":{\"x\":\"z\",\"k\":2E3},\"same\":1.50,"
                       "\"z\":[1,\"\\u00e9\"]}";
    /* Unparsed members and a parsed scalar left as it was (same) keep their spelling;
     * obj has an exponent, so the scanner refuses the whole text: see below. */
    char *j = NULL;
    const char *plain = "{\"@metadata\":{\"b\":1},\"a\":\"\\/kept\",\"n\":\"7\",\"old\":1.50,"
                        "\"gone\":{\"x\":1},\"obj\":{\"x\":\"z\",\"k\":20},\"same\":1.50,"
                        "\"z\":[1,\"\\u00e9\"]}";
    struct sl_json_member ms[SL_JSON_SCAN_MEMBERS];
    size_t n;
    struct sl_json_doc doc;
    CHECK(!sl_json_scan(text, strlen(text), NULL, "@metadata", ms, &n, &doc));
    j = merged(out, plain, claimed, chg_mutate);
    CHECK_STR(j, "{\"a\":\"\\/kept\",\"n\":7,\"obj\":{\"x\":\"y\",\"k\":20},\"same\":1.50,"
                 "\"z\":[1,\"\\u00e9\"],\"new\":1.5}");
    free(j);
    static const char *const none[] = {NULL};
    j = merged(out, "{\"undeclared\":\"text\",\"k\":\"\\/\"}", none, chg_nothing_declared);
    CHECK_STR(j, "{\"undeclared\":\"tree\",\"k\":\"\\/\",\"added\":\"a\\\"b\"}");
    free(j);
    agg_instance_free(out);
    sl_cfg_free(&cfg);
}

int main(void)
{
    RUN(defaults_come_from_the_table);
    RUN(every_type_reads_what_the_user_wrote);
    RUN(errors_are_in_file_order_with_suggestions);
    RUN(tag_on_failure_has_one_meaning);
    RUN(filter_verdicts_are_counted_by_the_core_under_the_instance_label);
    RUN(output_verdicts_and_dead_letters_are_counted_by_the_core);
    RUN(without_dead_letter_path_a_refused_event_is_dropped);
    RUN(a_dead_letter_that_cannot_be_written_fails_the_batch);
    RUN(output_core_options_are_checked);
    RUN(docs_are_rendered_from_the_tables);
    RUN(a_changed_partial_event_is_written_around_its_copied_members);
    RUN(lines_join_adjacent_encodings_into_runs);
    return TEST_SUMMARY();
}
