/*
 * out_file_test.c - the `file` output driven through the core: exact file
 * contents, the metadata option, paths rendered per event from fields and
 * from @timestamp (never from today's date: the wall clock is pinned to
 * another year), events the output does not take, reopen after logrotate,
 * write errors, events whose path cannot be a file name, and config errors
 * with their exact FILE:LINE:COL text.
 */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sluice/json.h"
#include "sluice/plugin.h"
#include "test.h"

#define OUTPUT_PLUGIN sl_plugin_out_file
#define OUTPUT_KEY "file"
#define OUTPUT_ID "outputs[0] (file)"
#include "output_harness.h"

/* 2001-09-09T01:46:40Z: a date no event below carries, so a path made from
 * the wall clock instead of @timestamp shows. */
#define WALL_MS 1000000000000ull

static char dir[64];

/* dir/rel, in one of a few rotating buffers (several may be live in one call). */
static const char *at(const char *fmt, ...)
{
    static char bufs[4][512];
    static int next;
    char rel[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof(rel), fmt, ap);
    va_end(ap);
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof(bufs[0]), "%s/%s", dir, rel);
    return b;
}

/* The whole file (malloc'd), or NULL when it does not exist. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    char *s = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&s, &n);
    char chunk[4096];
    size_t r;
    while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        fwrite(chunk, 1, r, m);
    }
    fclose(m);
    fclose(f);
    return s;
}

#define CHECK_FILE(path, want) check_file_(path, want, __LINE__)
static void check_file_(const char *path, const char *want, int line)
{
    char *got = slurp(path);
    if (!want && got) {
        fprintf(stderr, "%s:%d: %s exists: \"%s\"\n", __FILE__, line, path, got);
        t_failed_checks++;
    } else if (want && (!got || strcmp(got, want) != 0)) {
        fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, line, path,
                got ? got : "(missing)", want);
        t_failed_checks++;
    }
    free(got);
}

/* The names in dir/rel, sorted, one per line. */
static char *listing(const char *rel)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "ls -1A '%s' | LC_ALL=C sort", at("%s", rel));
    FILE *p = popen(cmd, "r");
    char *s = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&s, &n);
    char chunk[512];
    size_t r;
    while ((r = fread(chunk, 1, sizeof(chunk), p)) > 0) {
        fwrite(chunk, 1, r, m);
    }
    fclose(m);
    pclose(p);
    return s;
}

#define CHECK_LS(rel, want)                                                      \
    do {                                                                         \
        char *t_ls = listing(rel);                                               \
        CHECK_STR(t_ls, want);                                                   \
        free(t_ls);                                                              \
    } while (0)

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void fresh_dir(void)
{
    if (dir[0]) {
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
    snprintf(dir, sizeof(dir), "/tmp/out_file_test.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
}

/* Makes the instance from YAML in which every "$D" stands for dir; its core
 * counts in metrics (may be NULL). */
static struct sl_instance *make_counted(struct sl_cfg *cfg, const char *yaml_in,
                                        struct sl_metrics *metrics)
{
    char yaml[8192];
    size_t n = 0;
    for (const char *p = yaml_in; *p && n + sizeof(dir) < sizeof(yaml);) {
        if (p[0] == '$' && p[1] == 'D') {
            n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "%s", dir);
            p += 2;
        } else {
            yaml[n++] = *p++;
        }
    }
    yaml[n] = '\0';
    struct sl_instance *in = oload(cfg, yaml, NULL, metrics);
    if (!in) {
        fprintf(stderr, "config errors: %s", errs(cfg));
    }
    return in;
}

static struct sl_instance *make(struct sl_cfg *cfg, const char *yaml_in)
{
    return make_counted(cfg, yaml_in, NULL);
}

/* What the last SUBMIT logged. */
static char submit_log[8192];

/* Submits the JSON array of events (take as sl_batch.take) and returns the verdict;
 * checks exactly one came. The core swallows a second sl_batch_done (and logs it),
 * so stderr is caught during the call to see that line too (kept in submit_log). */
#define SUBMIT(in, events, take) submit_(in, events, take, __LINE__)
static int submit_(struct sl_instance *in, const char *events, const uint8_t *take, int line)
{
    size_t n;
    struct sl_value *ev = oevents(events, &n);
    struct out_run r;
    FILE *log = tmpfile();
    int saved = dup(STDERR_FILENO);
    dup2(fileno(log), STDERR_FILENO);
    osubmit(in, &r, ev, n, take);
    dup2(saved, STDERR_FILENO);
    close(saved);
    ofree_events(ev, n);
    char text[8192];
    size_t len = (rewind(log), fread(text, 1, sizeof(text) - 1, log));
    text[len] = '\0';
    fclose(log);
    fputs(text, stderr);
    memcpy(submit_log, text, len + 1);
    if (r.ndone != 1 || strstr(text, "verdict twice")) {
        fprintf(stderr, "%s:%d: %d verdicts%s, expected exactly 1\n", __FILE__, line, r.ndone,
                strstr(text, "verdict twice") ? " and a second one" : "");
        t_failed_checks++;
    }
    return r.status;
}

#define E1 "{\"@timestamp\":\"2024-02-28T10:00:00.000Z\",\"@metadata\":{\"beat\":\"sluice\"}," \
           "\"message\":\"one\"}"
#define E2 "{\"@timestamp\":\"2024-02-28T10:00:01.000Z\",\"message\":\"two\",\"n\":[1,2.5,null]}"
#define E3 "{\"@timestamp\":\"2024-02-28T10:00:02.000Z\",\"@metadata\":{\"x\":1}," \
           "\"nested\":{\"@metadata\":\"kept\"},\"message\":\"tr\\u00e9s \\\"q\\\"\"}"
#define E3_OUT "{\"@timestamp\":\"2024-02-28T10:00:02.000Z\",\"@metadata\":{\"x\":1}," \
               "\"nested\":{\"@metadata\":\"kept\"},\"message\":\"tr\xc3\xa9s \\\"q\\\"\"}"
#define E3_NOMETA "{\"@timestamp\":\"2024-02-28T10:00:02.000Z\"," \
                  "\"nested\":{\"@metadata\":\"kept\"},\"message\":\"tr\xc3\xa9s \\\"q\\\"\"}"

TEST(test_descriptor)
{
    CHECK_STR(P.name, "file");
    CHECK_INT(P.kind, SL_PLUGIN_OUTPUT);
    CHECK(P.submit != NULL);
    CHECK(P.reopen != NULL);
    CHECK(P.filter == NULL);
}

TEST(test_one_json_line_per_event)
{
    struct sl_cfg cfg;
    fresh_dir();
    struct sl_instance *in = make(&cfg, "file: {path: \"$D/out.ndjson\"}\n");
    CHECK(in != NULL);
    CHECK_INT(SUBMIT(in, "[" E1 "," E2 "," E3 "]", NULL), SL_OK);
    CHECK_FILE(at("out.ndjson"), E1 "\n" E2 "\n" E3_OUT "\n");
    /* A second batch appends. */
    CHECK_INT(SUBMIT(in, "[" E2 "]", NULL), SL_OK);
    CHECK_FILE(at("out.ndjson"), E1 "\n" E2 "\n" E3_OUT "\n" E2 "\n");
    struct stat st;
    CHECK(stat(at("out.ndjson"), &st) == 0 && (st.st_mode & 0777) == 0644);
    agg_instance_free(in);
    sl_cfg_free(&cfg);

    /* Appends to what another process (or an earlier run) wrote; fsync changes nothing seen. */
    in = make(&cfg, "file:\n  path: \"$D/out.ndjson\"\n  fsync: true\n");
    CHECK(in != NULL);
    CHECK_INT(SUBMIT(in, "[" E1 "]", NULL), SL_OK);
    CHECK_FILE(at("out.ndjson"), E1 "\n" E2 "\n" E3_OUT "\n" E2 "\n" E1 "\n");
    agg_instance_free(in);
    sl_cfg_free(&cfg);
}

TEST(test_metadata_false)
{
    struct sl_cfg cfg;
    fresh_dir();
    struct sl_instance *in = make(&cfg, "file: {path: \"$D/out.ndjson\", metadata: false}\n");
    CHECK(in != NULL);
    /* Only the top-level @metadata goes; a nested key of that name is data. */
    CHECK_INT(SUBMIT(in, "[" E1 "," E3 "," E2 "]", NULL), SL_OK);
    CHECK_FILE(at("out.ndjson"),
               "{\"@timestamp\":\"2024-02-28T10:00:00.000Z\",\"message\":\"one\"}\n" E3_NOMETA
               "\n" E2 "\n");
    agg_instance_free(in);
    sl_cfg_free(&cfg);
}

TEST(test_path_from_fields_and_timestamp)
{
    struct sl_cfg cfg;
    fresh_dir();
    struct sl_instance *in =
        make(&cfg, "file: {path: \"$D/logs/%{[fields][service]}/app-%{+yyyy.MM.dd}.ndjson\"}\n");
    CHECK(in != NULL);
    const char *a = "{\"@timestamp\":\"2024-02-28T23:59:59.999Z\",\"fields\":{\"service\":\"web\"},"
                    "\"m\":1}";
    const char *b = "{\"@timestamp\":\"2024-02-29T00:00:00.000Z\",\"fields\":{\"service\":\"web\"},"
                    "\"m\":2}";
    /* 01:30 at +02:00 is still the 29th... of February, in UTC: 23:30 the day before. */
    const char *c = "{\"@timestamp\":\"2024-03-01T01:30:00+02:00\",\"fields\":{\"service\":\"db\"},"
                    "\"m\":3}";
    const char *d = "{\"@timestamp\":\"2024-03-01T00:00:00.000Z\",\"fields\":{\"service\":\"db\"},"
                    "\"m\":4}";
    char events[1024];
    snprintf(events, sizeof(events), "[%s,%s,%s,%s,%s]", a, b, c, d, a);
    CHECK_INT(SUBMIT(in, events, NULL), SL_OK);
    CHECK_LS("logs", "db\nweb\n");
    CHECK_LS("logs/web", "app-2024.02.28.ndjson\napp-2024.02.29.ndjson\n");
    CHECK_LS("logs/db", "app-2024.02.29.ndjson\napp-2024.03.01.ndjson\n");
    char want[512];
    snprintf(want, sizeof(want), "%s\n%s\n", a, a);
    CHECK_FILE(at("logs/web/app-2024.02.28.ndjson"), want);
    snprintf(want, sizeof(want), "%s\n", b);
    CHECK_FILE(at("logs/web/app-2024.02.29.ndjson"), want);
    snprintf(want, sizeof(want), "%s\n", c);
    CHECK_FILE(at("logs/db/app-2024.02.29.ndjson"), want);
    snprintf(want, sizeof(want), "%s\n", d);
    CHECK_FILE(at("logs/db/app-2024.03.01.ndjson"), want);
    agg_instance_free(in);
    sl_cfg_free(&cfg);
}

TEST(test_field_text_cannot_pick_a_directory)
{
    struct sl_cfg cfg;
    fresh_dir();
    /* '/' written in the path (literal or date pattern) makes directories; from an event it
     * does not. A missing field stays as written, as in Logstash. */
    struct sl_instance *in = make(&cfg, "file: {path: \"$D/%{+yyyy/MM}/%{svc}-%{[n]}.log\"}\n");
    CHECK(in != NULL);
    CHECK_INT(SUBMIT(in,
                     "[{\"@timestamp\":\"2023-07-04T12:00:00Z\",\"svc\":\"../../etc/x\",\"n\":1},"
                     "{\"@timestamp\":\"2023-07-04T12:00:00Z\",\"svc\":\"..\",\"n\":2},"
                     "{\"@timestamp\":\"2023-07-04T12:00:00Z\",\"svc\":\".\",\"n\":\"a/b\"},"
                     "{\"@timestamp\":\"2023-07-04T12:00:00Z\",\"n\":7},"
                     "{\"@timestamp\":\"2023-07-04T12:00:00Z\",\"svc\":\"a\\u0000b\",\"n\":8},"
                     "{\"@timestamp\":\"2023-07-04T12:00:00Z\",\"svc\":[\"x\",\"y/z\"],\"n\":9}]",
                     NULL),
              SL_OK);
    CHECK_LS("", "2023\n");
    /* A NUL would cut the name short; a list renders as its items joined with ','. */
    CHECK_LS("2023/07",
             "%{svc}-7.log\n.._.._etc_x-1.log\n_-2.log\n_-a_b.log\na_b-8.log\nx,y_z-9.log\n");
    CHECK_FILE(at("2023/07/_-2.log"),
               "{\"@timestamp\":\"2023-07-04T12:00:00Z\",\"svc\":\"..\",\"n\":2}\n");
    agg_instance_free(in);
    sl_cfg_free(&cfg);
}

TEST(test_timestamp_fallback_is_the_wall_clock)
{
    struct sl_cfg cfg;
    fresh_dir();
    struct sl_instance *in = make(&cfg, "file: {path: \"$D/%{+yyyy.MM.dd}.ndjson\"}\n");
    CHECK(in != NULL);
    /* No @timestamp, or one that does not parse: the (pinned) wall clock, as in Logstash. */
    CHECK_INT(SUBMIT(in, "[{\"m\":1},{\"@timestamp\":\"yesterday\",\"m\":2},"
                         "{\"@timestamp\":\"1999-12-31T23:59:59Z\",\"m\":3}]",
                     NULL),
              SL_OK);
    CHECK_LS("", "1999.12.31.ndjson\n2001.09.09.ndjson\n");
    CHECK_FILE(at("2001.09.09.ndjson"), "{\"m\":1}\n{\"@timestamp\":\"yesterday\",\"m\":2}\n");
    agg_instance_free(in);
    sl_cfg_free(&cfg);
}

TEST(test_events_not_taken_are_not_written)
{
    struct sl_cfg cfg;
    fresh_dir();
    struct sl_instance *in = make(&cfg, "file: {path: \"$D/%{k}.ndjson\"}\n");
    CHECK(in != NULL);
    /* take[i] == 0: routed elsewhere; null: dropped by a filter. */
    const uint8_t take[] = {1, 0, 1, 1, 0};
    CHECK_INT(SUBMIT(in, "[{\"k\":\"a\",\"i\":0},{\"k\":\"b\",\"i\":1},null,"
                         "{\"k\":\"a\",\"i\":3},{\"k\":\"a\",\"i\":4}]",
                     take),
              SL_OK);
    CHECK_LS("", "a.ndjson\n");
    CHECK_FILE(at("a.ndjson"), "{\"k\":\"a\",\"i\":0}\n{\"k\":\"a\",\"i\":3}\n");
    /* A batch with nothing for this output creates no file and still gets its verdict. */
    const uint8_t none[] = {0, 0};
    CHECK_INT(SUBMIT(in, "[{\"k\":\"c\"},{\"k\":\"d\"}]", none), SL_OK);
    CHECK_INT(SUBMIT(in, "[null]", NULL), SL_OK);
    CHECK_LS("", "a.ndjson\n");
    agg_instance_free(in);
    sl_cfg_free(&cfg);
}

TEST(test_reopen_after_logrotate)
{
    struct sl_cfg cfg;
    fresh_dir();
    struct sl_instance *in = make(&cfg, "file: {path: \"$D/out.ndjson\"}\n");
    CHECK(in != NULL);
    CHECK_INT(SUBMIT(in, "[{\"m\":1}]", NULL), SL_OK);
    CHECK(rename(at("out.ndjson"), at("out.ndjson.1")) == 0);
    /* Renamed but not reopened yet: the open descriptor still writes the old file
     * (logrotate's postrotate sends SIGHUP next). */
    CHECK_INT(SUBMIT(in, "[{\"m\":2}]", NULL), SL_OK);
    CHECK_FILE(at("out.ndjson"), NULL);
    P.reopen(in->inst);
    CHECK_INT(SUBMIT(in, "[{\"m\":3}]", NULL), SL_OK);
    CHECK_FILE(at("out.ndjson.1"), "{\"m\":1}\n{\"m\":2}\n");
    CHECK_FILE(at("out.ndjson"), "{\"m\":3}\n");

    /* Deleted under it: noticed at the next batch, no SIGHUP needed. */
    CHECK(unlink(at("out.ndjson")) == 0);
    CHECK_INT(SUBMIT(in, "[{\"m\":4}]", NULL), SL_OK);
    CHECK_FILE(at("out.ndjson"), "{\"m\":4}\n");
    agg_instance_free(in);
    sl_cfg_free(&cfg);
}

TEST(test_max_open_files)
{
    struct sl_cfg cfg;
    fresh_dir();
    /* One descriptor for three files: each batch closes and reopens, nothing is lost. */
    struct sl_instance *in = make(&cfg, "file: {path: \"$D/%{k}\", max_open_files: 1}\n");
    CHECK(in != NULL);
    CHECK_INT(SUBMIT(in, "[{\"k\":\"a\"},{\"k\":\"b\"},{\"k\":\"c\"},{\"k\":\"a\",\"n\":2}]",
                     NULL),
              SL_OK);
    CHECK_INT(SUBMIT(in, "[{\"k\":\"c\",\"n\":3},{\"k\":\"b\",\"n\":3}]", NULL), SL_OK);
    CHECK_FILE(at("a"), "{\"k\":\"a\"}\n{\"k\":\"a\",\"n\":2}\n");
    CHECK_FILE(at("b"), "{\"k\":\"b\"}\n{\"k\":\"b\",\"n\":3}\n");
    CHECK_FILE(at("c"), "{\"k\":\"c\"}\n{\"k\":\"c\",\"n\":3}\n");
    agg_instance_free(in);
    sl_cfg_free(&cfg);
}

TEST(test_write_errors)
{
    struct sl_cfg cfg;
    fresh_dir();
    FILE *f = fopen(at("blocker"), "w");
    CHECK(f != NULL);
    if (f) {
        fclose(f);
    }
    /* A directory whose parent is a dangling symlink cannot be created. */
    CHECK(symlink(at("nowhere/deeper"), at("link")) == 0);
    struct sl_instance *in = make(&cfg, "file: {path: \"$D/%{d}/x.ndjson\"}\n");
    CHECK(in != NULL);

    /* A path under a file. */
    int st = SUBMIT(in, "[{\"d\":\"blocker\"}]", NULL);
    CHECK(st != SL_OK);
    /* One file of the batch fails: the whole batch does, once. */
    st = SUBMIT(in, "[{\"d\":\"ok\",\"n\":1},{\"d\":\"link\"},{\"d\":\"ok\",\"n\":2}]", NULL);
    CHECK(st != SL_OK);
    CHECK_FILE(at("link/x.ndjson"), NULL);
    CHECK_LS("", "blocker\nlink\nok\n");
    /* Lines of a failed batch that reached a file stay (it is sent again: at least once). */
    CHECK_FILE(at("ok/x.ndjson"), "{\"d\":\"ok\",\"n\":1}\n{\"d\":\"ok\",\"n\":2}\n");
    /* Once the way is clear, the same instance writes again. */
    CHECK(unlink(at("blocker")) == 0);
    CHECK_INT(SUBMIT(in, "[{\"d\":\"blocker\"}]", NULL), SL_OK);
    CHECK_FILE(at("blocker/x.ndjson"), "{\"d\":\"blocker\"}\n");
    agg_instance_free(in);
    sl_cfg_free(&cfg);
}

/*
 * A full disk: the write stops half way (RLIMIT_FSIZE in a child, SIGXFSZ
 * ignored so write() reports EFBIG). The file is cut back to its last whole
 * line, the batch fails (it comes again), and once there is room the next
 * batch starts on a line of its own, never glued to half a line.
 */
TEST(test_full_disk_leaves_only_whole_lines)
{
    fresh_dir();
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct sl_cfg cfg;
        struct sl_instance *in = make(&cfg, "file: {path: \"$D/x.ndjson\"}\n");
        int code = in ? 0 : 1;
        code |= SUBMIT(in, "[{\"m\":\"first\"}]", NULL) == SL_OK ? 0 : 2;  /* 15 bytes */
        struct rlimit rl = {.rlim_cur = 40, .rlim_max = RLIM_INFINITY};
        code |= setrlimit(RLIMIT_FSIZE, &rl) == 0 ? 0 : 4;
        /* 15 + 38 bytes: over the 40-byte limit half way through the batch. */
        code |= SUBMIT(in, "[{\"m\":\"a-long-second-line\"},{\"m\":\"x\"}]", NULL) != SL_OK
                    ? 0
                    : 8;
        rl.rlim_cur = RLIM_INFINITY;
        code |= setrlimit(RLIMIT_FSIZE, &rl) == 0 ? 0 : 16;
        code |= SUBMIT(in, "[{\"m\":\"after space freed\"}]", NULL) == SL_OK ? 0 : 32;
        agg_instance_free(in);
        sl_cfg_free(&cfg);
        _exit(code | (t_failed_checks ? 64 : 0));
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK_INT(WEXITSTATUS(status), 0);
    CHECK_FILE(at("x.ndjson"), "{\"m\":\"first\"}\n{\"m\":\"after space freed\"}\n");
}

/* Without a dead_letter_path an event whose path cannot be a file name is
 * dropped by the core: logged with why, counted result="dropped" (not ok, not
 * failed); the rest of the batch is written and the batch is ACKed. */
TEST(test_path_that_is_no_file_name_drops_the_event)
{
    struct sl_cfg cfg;
    fresh_dir();
    char big[5000 + 96];
    snprintf(big, sizeof(big), "[{\"p\":\"x\",\"n\":1},{\"p\":\"%0*d\"},{\"p\":\"x\",\"n\":2}]",
             5000, 0);
    struct sl_metrics *m = sl_metrics_new();
    struct sl_instance *in = make_counted(&cfg, "file: {path: \"$D/%{p}\"}\n", m);
    CHECK(in != NULL);
    CHECK(in->dlq == NULL);  /* no dead-letter writer */
    CHECK_INT(SUBMIT(in, big, NULL), SL_OK);
    CHECK(strstr(submit_log, "outputs[0] (file): dropped an event that can never be delivered "
                             "(set dead_letter_path to keep such events): "
                             "\"error\":\"is too long\"\n") != NULL);
    CHECK_FILE(at("x"), "{\"p\":\"x\",\"n\":1}\n{\"p\":\"x\",\"n\":2}\n");
    CHECK_LS("", "x\n");  /* and nothing else: no dead letter anywhere */
    CHECK(oevents_total(m, "file", "ok") == 2);
    CHECK(oevents_total(m, "file", "dropped") == 1);
    CHECK(oevents_total(m, "file", "failed") == 0);
    CHECK(oevents_total(m, "file", "dead_letter") == 0);
    agg_instance_free(in);
    sl_cfg_free(&cfg);
    sl_metrics_free(m);
}

/* With a dead_letter_path such an event is filed there; a dead letter that
 * cannot be written fails the batch. */
TEST(test_path_that_is_no_file_name_is_dead_lettered)
{
    struct sl_cfg cfg;
    fresh_dir();
    char big[5000 + 64];
    snprintf(big, sizeof(big), "[{\"p\":\"x\",\"n\":1},{\"p\":\"%0*d\"}]", 5000, 0);

    /* A path rendering empty needs a template made only of fields. */
    struct sl_instance *in = make(&cfg, "file: {path: \"%{p}\", dead_letter_path: \"$D/dlq\"}\n");
    CHECK(in != NULL);
    CHECK_INT(SUBMIT(in, "[{\"p\":\"\",\"@metadata\":{\"a\":1}}]", NULL), SL_OK);
    CHECK_FILE(at("dlq/dlq-2001.09.09.ndjson"),
               "{\"time\":\"2001-09-09T01:46:40.000Z\",\"output\":\"file\",\"event\":{\"p\":\"\","
               "\"@metadata\":{\"a\":1}},\"error\":\"renders empty\"}\n");
    agg_instance_free(in);
    sl_cfg_free(&cfg);

    struct sl_metrics *m = sl_metrics_new();
    in = make_counted(&cfg, "file: {path: \"$D/%{p}\", dead_letter_path: \"$D/dlq2\"}\n", m);
    CHECK(in != NULL);
    CHECK_INT(SUBMIT(in, big, NULL), SL_OK);
    char *dlq = slurp(at("dlq2/dlq-2001.09.09.ndjson"));
    CHECK(dlq != NULL);
    if (dlq) {
        CHECK(strstr(dlq, "\"error\":\"is too long\"}\n") != NULL);
        const char *head = "{\"time\":\"2001-09-09T01:46:40.000Z\",\"output\":\"file\","
                           "\"event\":{\"p\":\"0000";
        CHECK(strncmp(dlq, head, strlen(head)) == 0);
    }
    free(dlq);
    CHECK_FILE(at("x"), "{\"p\":\"x\",\"n\":1}\n");
    CHECK(oevents_total(m, "file", "ok") == 1);
    CHECK(oevents_total(m, "file", "dead_letter") == 1);
    CHECK(oevents_total(m, "file", "dropped") == 0);
    agg_instance_free(in);
    sl_cfg_free(&cfg);
    sl_metrics_free(m);

    /* The dead-letter directory lies under a file: the write fails, and so does the
     * batch (the rest of it is written: it is sent again, at least once). */
    FILE *f = fopen(at("blocker"), "w");
    CHECK(f != NULL);
    if (f) {
        fclose(f);
    }
    m = sl_metrics_new();
    in = make_counted(&cfg, "file: {path: \"$D/%{p}\", dead_letter_path: \"$D/blocker/dlq\"}\n",
                      m);
    CHECK(in != NULL);
    CHECK_INT(SUBMIT(in, big, NULL), SL_EIO);
    CHECK_FILE(at("x"), "{\"p\":\"x\",\"n\":1}\n{\"p\":\"x\",\"n\":1}\n");
    CHECK(oevents_total(m, "file", "failed") == 2);
    CHECK(oevents_total(m, "file", "ok") == 0);
    CHECK(oevents_total(m, "file", "dead_letter") == 0);
    CHECK(oevents_total(m, "file", "dropped") == 0);
    agg_instance_free(in);
    sl_cfg_free(&cfg);
    sl_metrics_free(m);
}

#define CHECK_CONFIG(yaml, want)                                                 \
    do {                                                                         \
        struct sl_cfg t_cfg;                                                     \
        struct sl_instance *t_in = oload(&t_cfg, yaml, NULL, NULL);              \
        CHECK(t_in == NULL);                                                     \
        CHECK_STR(errs(&t_cfg), want);                                           \
        agg_instance_free(t_in);                                                 \
        sl_cfg_free(&t_cfg);                                                     \
    } while (0)

TEST(test_config_errors)
{
    CHECK_CONFIG("file:\n"
                 "  path: /tmp/x\n"
                 "  metdata: false\n"
                 "  fsync: often\n"
                 "  max_open_files: 0\n",
                 "t.yml:3:3: outputs[0] (file): unknown option 'metdata' (did you mean "
                 "'metadata'?)\n"
                 "t.yml:4:10: outputs[0] (file): option 'fsync' must be true or false, got "
                 "'often'\n"
                 "t.yml:5:19: outputs[0] (file): option 'max_open_files' must be between 1 and "
                 "4096, got '0'\n");
    CHECK_CONFIG("file: {metadata: false}\n",
                 "t.yml:1:7: outputs[0] (file): option 'path' is required\n");
    CHECK_CONFIG("file:\n", "t.yml:1:6: outputs[0] (file): option 'path' is required\n");
    CHECK_CONFIG("file: {path: \"\"}\n",
                 "t.yml:1:14: outputs[0] (file): option 'path' must not be empty\n");
    CHECK_CONFIG("file:\n  path: \"/var/log/%{+yyyy.QQ}.log\"\n",
                 "t.yml:2:9: outputs[0] (file): option 'path': unsupported letter 'Q' in date "
                 "pattern '%{+yyyy.QQ}'\n");
    CHECK_CONFIG("file:\n  path: \"/var/log/%{[service].log\"\n",
                 "t.yml:2:9: outputs[0] (file): option 'path': unterminated '%{' at offset 9\n");
    CHECK_CONFIG("file:\n  path: \"/var/log/%{}.log\"\n",
                 "t.yml:2:9: outputs[0] (file): option 'path': empty '%{}' at offset 9\n");
    CHECK_CONFIG("file:\n  path: \"/var/log/%{[a]b}.log\"\n",
                 "t.yml:2:9: outputs[0] (file): option 'path': invalid field reference "
                 "'%{[a]b}'\n");
}

TEST(test_core_options_accepted)
{
    struct sl_cfg cfg;
    fresh_dir();
    struct sl_instance *in = make(&cfg, "file:\n  path: \"$D/w.ndjson\"\n  id: mine\n"
                                        "  when: {field: k, equals: w}\n");
    CHECK(in != NULL);
    CHECK_STR(errs(&cfg), "");
    CHECK_STR(in->label, "mine");
    agg_instance_free(in);
    sl_cfg_free(&cfg);
}

int main(void)
{
    sl_wall_pin(WALL_MS);
    RUN(test_descriptor);
    RUN(test_one_json_line_per_event);
    RUN(test_metadata_false);
    RUN(test_path_from_fields_and_timestamp);
    RUN(test_field_text_cannot_pick_a_directory);
    RUN(test_timestamp_fallback_is_the_wall_clock);
    RUN(test_events_not_taken_are_not_written);
    RUN(test_reopen_after_logrotate);
    RUN(test_max_open_files);
    RUN(test_write_errors);
    RUN(test_full_disk_leaves_only_whole_lines);
    RUN(test_path_that_is_no_file_name_drops_the_event);
    RUN(test_path_that_is_no_file_name_is_dead_lettered);
    RUN(test_config_errors);
    RUN(test_core_options_accepted);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return TEST_SUMMARY();
}
