/*
 * deadletter_test.c - the shared dead-letter writer (lib/deadletter.c): the
 * exact bytes of a record, day file names from a pinned clock (across a year
 * boundary), the directory made on first use and not before, whole lines per
 * append, a write that fails half way (RLIMIT_FSIZE) leaving only whole
 * records, a rotated file reopened, refused input, and concurrent appends
 * from threads and from two writers sharing one directory.
 */
#include "sluice/deadletter.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

/* 2026-12-31T23:59:59.250Z and 2027-01-01T00:00:01.000Z. */
#define NEW_YEARS_EVE_MS 1798761599250ull
#define NEW_YEAR_MS 1798761601000ull
#define NOV27_MS 1795759200123ull /* 2026-11-27T06:00:00.123Z */

static char tmpdir[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    SL_UNUSED(st);
    SL_UNUSED(flag);
    SL_UNUSED(ftw);
    return remove(path);
}

static void make_tmpdir(void)
{
    strcpy(tmpdir, "/tmp/sluice-dlq-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
}

static void remove_tmpdir(void)
{
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Reads a whole file into a NUL-terminated heap string (NULL if absent). */
static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return NULL;
    }
    struct sl_buf b;
    sl_buf_init(&b, 0);
    char chunk[4096];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof(chunk))) > 0) {
        sl_buf_append(&b, chunk, (size_t)r);
    }
    close(fd);
    sl_buf_cstr(&b);
    *len = b.len;
    return b.data;
}

static size_t count_lines(const char *p, size_t n)
{
    size_t lines = 0;
    for (size_t i = 0; i < n; i++) {
        lines += p[i] == '\n';
    }
    return lines;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

TEST(test_record_bytes)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_dlq_record(&b, NOV27_MS, "es\"main", "{\"message\":\"x\"}", 15,
                  "\"status\":400,\"error\":{\"type\":\"x\",\"reason\":\"y\"},\"index\":\"logs\"");
    CHECK_MEM(b.data, b.len,
              "{\"time\":\"2026-11-27T06:00:00.123Z\",\"output\":\"es\\\"main\","
              "\"event\":{\"message\":\"x\"},\"status\":400,"
              "\"error\":{\"type\":\"x\",\"reason\":\"y\"},\"index\":\"logs\"}\n");

    /* Records append; NULL and "" extras add nothing; no event is null. */
    sl_buf_reset(&b);
    sl_buf_puts(&b, "prefix|");
    sl_dlq_record(&b, 0, "k", "[1]", 3, NULL);
    sl_dlq_record(&b, 999, "k", "{}", 2, "");
    sl_dlq_record(&b, 1000, "a\\b\n", NULL, 0, NULL);
    CHECK_MEM(b.data, b.len,
              "prefix|"
              "{\"time\":\"1970-01-01T00:00:00.000Z\",\"output\":\"k\",\"event\":[1]}\n"
              "{\"time\":\"1970-01-01T00:00:00.999Z\",\"output\":\"k\",\"event\":{}}\n"
              "{\"time\":\"1970-01-01T00:00:01.000Z\",\"output\":\"a\\\\b\\n\",\"event\":null}\n");
    sl_buf_free(&b);

    /* A buffer whose maximum the record would pass is left as it was. */
    sl_buf_init(&b, 40);
    sl_buf_puts(&b, "keep");
    const char *ev = "{\"message\":\"a long enough event\"}";
    sl_dlq_record(&b, NOV27_MS, "out", ev, strlen(ev), NULL);
    CHECK_MEM(b.data, b.len, "keep");
    sl_buf_free(&b);
}

TEST(test_day_files_from_pinned_clock)
{
    make_tmpdir();
    char dir[128], f1[256], f2[256];
    snprintf(dir, sizeof(dir), "%s/not/yet", tmpdir);
    snprintf(f1, sizeof(f1), "%s/dlq-2026.12.31.ndjson", dir);
    snprintf(f2, sizeof(f2), "%s/dlq-2027.01.01.ndjson", dir);

    struct sl_dlq *d = sl_dlq_new(dir);
    CHECK(!exists(dir));  /* new touches no disk */
    CHECK_INT(sl_dlq_append(d, "", 0), 0);
    CHECK(!exists(dir));  /* nor does an empty append */

    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_wall_pin(NEW_YEARS_EVE_MS);
    sl_dlq_record(&b, sl_wall_ms(), "o", "{\"n\":1}", 7, NULL);
    CHECK_INT(sl_dlq_append(d, b.data, b.len), 0);
    sl_wall_pin(NEW_YEAR_MS);
    sl_buf_reset(&b);
    sl_dlq_record(&b, sl_wall_ms(), "o", "{\"n\":2}", 7, NULL);
    CHECK_INT(sl_dlq_append(d, b.data, b.len), 0);
    sl_wall_unpin();

    size_t n1 = 0, n2 = 0;
    char *c1 = slurp(f1, &n1), *c2 = slurp(f2, &n2);
    CHECK_MEM(c1, n1,
              "{\"time\":\"2026-12-31T23:59:59.250Z\",\"output\":\"o\",\"event\":{\"n\":1}}\n");
    CHECK_MEM(c2, n2,
              "{\"time\":\"2027-01-01T00:00:01.000Z\",\"output\":\"o\",\"event\":{\"n\":2}}\n");
    struct stat st;
    CHECK(stat(f1, &st) == 0 && (st.st_mode & 0777) == 0644);  /* umask 022 in main */
    free(c1);
    free(c2);
    sl_buf_free(&b);
    sl_dlq_free(d);
    sl_dlq_free(NULL);
    remove_tmpdir();
}

TEST(test_two_appends_two_lines)
{
    make_tmpdir();
    char path[256];
    snprintf(path, sizeof(path), "%s/dlq-2026.11.27.ndjson", tmpdir);
    sl_wall_pin(NOV27_MS);
    struct sl_dlq *d = sl_dlq_new(tmpdir);
    const char *r1 = "{\"event\":1}\n";
    const char *r2 = "{\"event\":2}\n{\"event\":3}\n";  /* two records in one append */
    CHECK_INT(sl_dlq_append(d, r1, strlen(r1)), 0);
    size_t n = 0;
    char *c = slurp(path, &n);
    CHECK_MEM(c, n, "{\"event\":1}\n");
    free(c);
    CHECK_INT(sl_dlq_append(d, r2, strlen(r2)), 0);
    c = slurp(path, &n);
    CHECK_MEM(c, n, "{\"event\":1}\n{\"event\":2}\n{\"event\":3}\n");
    CHECK_INT(count_lines(c, n), 3);
    free(c);

    /* A second writer on the same directory appends to the same file. */
    struct sl_dlq *other = sl_dlq_new(tmpdir);
    CHECK_INT(sl_dlq_append(other, r1, strlen(r1)), 0);
    c = slurp(path, &n);
    CHECK_INT(count_lines(c, n), 4);
    free(c);
    sl_dlq_free(other);
    sl_dlq_free(d);
    sl_wall_unpin();
    remove_tmpdir();
}

TEST(test_refuses_unterminated_records)
{
    make_tmpdir();
    char path[256];
    snprintf(path, sizeof(path), "%s/dlq-2026.11.27.ndjson", tmpdir);
    sl_wall_pin(NOV27_MS);
    struct sl_dlq *d = sl_dlq_new(tmpdir);
    CHECK_INT(sl_dlq_append(d, "{\"a\":1}", 7), SL_EINVAL);
    CHECK_INT(sl_dlq_append(d, "{\"a\":1}\n{\"b\"", 12), SL_EINVAL);
    CHECK(!exists(path));
    sl_dlq_free(d);
    sl_wall_unpin();
    remove_tmpdir();
}

TEST(test_rotated_file_is_reopened)
{
    make_tmpdir();
    char path[256], rotated[300];
    snprintf(path, sizeof(path), "%s/dlq-2026.11.27.ndjson", tmpdir);
    snprintf(rotated, sizeof(rotated), "%s.1", path);
    sl_wall_pin(NOV27_MS);
    struct sl_dlq *d = sl_dlq_new(tmpdir);
    CHECK_INT(sl_dlq_append(d, "{\"n\":1}\n", 8), 0);
    CHECK(rename(path, rotated) == 0);
    CHECK_INT(sl_dlq_append(d, "{\"n\":2}\n", 8), 0);
    size_t n = 0;
    char *c = slurp(path, &n);
    CHECK_MEM(c, n, "{\"n\":2}\n");
    free(c);
    c = slurp(rotated, &n);
    CHECK_MEM(c, n, "{\"n\":1}\n");
    free(c);
    /* Deleted (rotated without a copy): recreated. */
    CHECK(unlink(path) == 0);
    CHECK_INT(sl_dlq_append(d, "{\"n\":3}\n", 8), 0);
    c = slurp(path, &n);
    CHECK_MEM(c, n, "{\"n\":3}\n");
    free(c);
    /* logrotate's "create": renamed, and a new empty file put in its place. */
    CHECK(rename(path, rotated) == 0);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    close(fd);
    CHECK_INT(sl_dlq_append(d, "{\"n\":4}\n", 8), 0);
    c = slurp(path, &n);
    CHECK_MEM(c, n, "{\"n\":4}\n");
    free(c);
    c = slurp(rotated, &n);
    CHECK_MEM(c, n, "{\"n\":3}\n");
    free(c);
    sl_dlq_free(d);
    sl_wall_unpin();
    remove_tmpdir();
}

/*
 * A write that stops half way: with RLIMIT_FSIZE at 100 bytes (SIGXFSZ
 * ignored, so write() reports EFBIG), a 60-byte record fits, an 80-byte one
 * gets 40 bytes written and then fails. The file must be cut back to the
 * first record, and a record that fits must still go in afterwards. The limit
 * is set in a child: it would also cap the parent's later files.
 */
TEST(test_failed_write_leaves_whole_records)
{
    make_tmpdir();
    char path[256];
    snprintf(path, sizeof(path), "%s/dlq-2026.11.27.ndjson", tmpdir);
    char r1[61], r2[81], r3[31];
    memset(r1, 'a', 59);
    r1[59] = '\n';
    r1[60] = '\0';
    memset(r2, 'b', 79);
    r2[79] = '\n';
    r2[80] = '\0';
    memset(r3, 'c', 29);
    r3[29] = '\n';
    r3[30] = '\0';

    sl_wall_pin(NOV27_MS);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {.rlim_cur = 100, .rlim_max = 100};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) {
            _exit(10);
        }
        struct sl_dlq *d = sl_dlq_new(tmpdir);
        int code = 0;
        if (sl_dlq_append(d, r1, 60) != 0) {
            code |= 1;
        }
        if (sl_dlq_append(d, r2, 80) != SL_EIO) {
            code |= 2;
        }
        if (sl_dlq_append(d, r3, 30) != 0) {
            code |= 4;
        }
        if (sl_dlq_append(d, r3, 30) != SL_EIO) {  /* 120 > 100: fails, cut back again */
            code |= 8;
        }
        sl_dlq_free(d);
        _exit(code);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK_INT(WEXITSTATUS(status), 0);

    size_t n = 0;
    char *c = slurp(path, &n);
    CHECK(c != NULL);
    CHECK_INT(n, 90);
    CHECK(n > 0 && c[n - 1] == '\n');
    CHECK_INT(count_lines(c, n), 2);
    CHECK(n == 90 && memcmp(c, r1, 60) == 0 && memcmp(c + 60, r3, 30) == 0);
    free(c);

    /* Without the limit, the record that failed goes in whole. */
    struct sl_dlq *d = sl_dlq_new(tmpdir);
    CHECK_INT(sl_dlq_append(d, r2, 80), 0);
    c = slurp(path, &n);
    CHECK_INT(n, 170);
    CHECK(n == 170 && memcmp(c + 90, r2, 80) == 0);
    free(c);
    sl_dlq_free(d);
    sl_wall_unpin();
    remove_tmpdir();
}

enum { THREADS = 4, PER_THREAD = 40 };

struct writer {
    struct sl_dlq *d;
    int id;
    int failures;
};

static void *write_many(void *arg)
{
    struct writer *w = arg;
    struct sl_buf b;
    sl_buf_init(&b, 0);
    for (int i = 0; i < PER_THREAD; i++) {
        char ev[128];
        int n = snprintf(ev, sizeof(ev), "{\"thread\":%d,\"i\":%d,\"pad\":\"%0*d\"}", w->id, i,
                         (i * 7) % 40, 0);
        sl_buf_reset(&b);
        sl_dlq_record(&b, sl_wall_ms(), "t", ev, (size_t)n, NULL);
        if (sl_dlq_append(w->d, b.data, b.len) != 0) {
            w->failures++;
        }
    }
    sl_buf_free(&b);
    return NULL;
}

/* Two threads share one writer, two more have writers of their own on the same
 * directory: every record arrives as a line of its own. */
TEST(test_concurrent_appends)
{
    make_tmpdir();
    char path[256];
    snprintf(path, sizeof(path), "%s/dlq-2026.11.27.ndjson", tmpdir);
    sl_wall_pin(NOV27_MS);
    struct sl_dlq *shared = sl_dlq_new(tmpdir);
    struct sl_dlq *own[2] = {sl_dlq_new(tmpdir), sl_dlq_new(tmpdir)};
    struct writer w[THREADS] = {
        {.d = shared, .id = 0},
        {.d = shared, .id = 1},
        {.d = own[0], .id = 2},
        {.d = own[1], .id = 3},
    };
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        CHECK(pthread_create(&t[i], NULL, write_many, &w[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        CHECK_INT(w[i].failures, 0);
    }
    size_t n = 0;
    char *c = slurp(path, &n);
    CHECK(c != NULL);
    CHECK_INT(count_lines(c, n), THREADS * PER_THREAD);
    /* Every line is one whole record, and each (thread, i) appears once. */
    int seen[THREADS][PER_THREAD] = {{0}};
    const char *prefix = "{\"time\":\"2026-11-27T06:00:00.123Z\",\"output\":\"t\",\"event\":{";
    for (char *line = c; c && line < c + n;) {
        char *nl = strchr(line, '\n');
        CHECK(nl != NULL);
        if (!nl) {
            break;
        }
        *nl = '\0';
        int th = -1, i = -1;
        CHECK(strncmp(line, prefix, strlen(prefix)) == 0);
        CHECK(nl - line >= 2 && strcmp(nl - 2, "}}") == 0);
        CHECK(sscanf(line + strlen(prefix), "\"thread\":%d,\"i\":%d", &th, &i) == 2);
        if (th >= 0 && th < THREADS && i >= 0 && i < PER_THREAD) {
            seen[th][i]++;
        }
        line = nl + 1;
    }
    for (int th = 0; th < THREADS; th++) {
        for (int i = 0; i < PER_THREAD; i++) {
            CHECK_INT(seen[th][i], 1);
        }
    }
    free(c);
    sl_dlq_free(shared);
    sl_dlq_free(own[0]);
    sl_dlq_free(own[1]);
    sl_wall_unpin();
    remove_tmpdir();
}

int main(void)
{
    umask(022);
    RUN(test_record_bytes);
    RUN(test_day_files_from_pinned_clock);
    RUN(test_two_appends_two_lines);
    RUN(test_refuses_unterminated_records);
    RUN(test_rotated_file_is_reopened);
    RUN(test_failed_write_leaves_whole_records);
    RUN(test_concurrent_appends);
    return TEST_SUMMARY();
}
