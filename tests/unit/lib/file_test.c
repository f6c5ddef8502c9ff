/*
 * file_test.c - sl_file_read: whole files, bounds, and the errors callers
 * turn into messages; sl_writev_all over more runs than one writev takes.
 */
#include "sluice/file.h"
#include "sluice/common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static char g_dir[] = "/tmp/sl-file-test-XXXXXX";

static const char *put(const char *name, size_t n)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    for (size_t i = 0; i < n; i++) {
        fputc('a' + (int)(i % 26), f);
    }
    fclose(f);
    return path;
}

TEST(reads_a_whole_file_appending_to_the_buffer)
{
    const char *p = put("big", 200000);  /* several 64 KiB reads */
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_buf_puts(&b, "head:");
    CHECK_INT(sl_file_read(p, 200000, &b), 0);
    CHECK_INT(b.len, 5 + 200000);
    CHECK(memcmp(b.data, "head:abc", 8) == 0);
    CHECK(b.data[5 + 199999] == 'a' + 199999 % 26);
    sl_buf_free(&b);
}

TEST(a_file_of_exactly_max_bytes_is_read)
{
    const char *p = put("exact", 4096);
    struct sl_buf b;
    sl_buf_init(&b, 4096);  /* the buffer's own limit is the same */
    CHECK_INT(sl_file_read(p, 4096, &b), 0);
    CHECK_INT(b.len, 4096);
    sl_buf_free(&b);
}

TEST(a_larger_file_is_refused_before_it_is_read)
{
    const char *p = put("over", 4097);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    CHECK_INT(sl_file_read(p, 4096, &b), EFBIG);
    CHECK_INT(b.len, 0);
    sl_buf_free(&b);
    /* The buffer's own limit counts too. */
    p = put("small", 100);
    sl_buf_init(&b, 50);
    CHECK_INT(sl_file_read(p, 1000, &b), EFBIG);
    sl_buf_free(&b);
}

TEST(a_fifo_is_read_up_to_max_and_no_further)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/fifo", g_dir);
    CHECK_INT(mkfifo(path, 0600), 0);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(path, O_WRONLY);
        char chunk[1000];
        memset(chunk, 'x', sizeof(chunk));
        for (int i = 0; i < 10; i++) {
            if (write(fd, chunk, sizeof(chunk)) < 0) {
                break;
            }
        }
        _exit(0);
    }
    struct sl_buf b;
    sl_buf_init(&b, 0);
    CHECK_INT(sl_file_read(path, 5000, &b), EFBIG);  /* 10,000 bytes come */
    CHECK(b.len <= 5000);
    sl_buf_free(&b);
    int status;
    waitpid(pid, &status, 0);
}

TEST(missing_files_and_directories_say_so)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/none", g_dir);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    CHECK_INT(sl_file_read(path, 10, &b), ENOENT);
    CHECK_INT(sl_file_read(g_dir, 10, &b), EISDIR);
    CHECK_INT(b.len, 0);
    sl_buf_free(&b);
}

/* 3,000 runs of 0..40 bytes (empty ones too): n runs is over IOV_MAX. */
static size_t make_runs(char *data, struct iovec *iov, size_t n)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = (i * 7) % 41;
        iov[i] = (struct iovec){data + at, len};
        for (size_t k = 0; k < len; k++) {
            data[at + k] = (char)('A' + (i + k) % 26);
        }
        at += len;
    }
    return at;
}

TEST(writev_all_writes_every_run_in_order)
{
    enum { N = 3000 };
    static char data[N * 41];
    static struct iovec iov[N];
    CHECK(N > IOV_MAX);
    size_t total = make_runs(data, iov, N);
    char path[256];
    snprintf(path, sizeof(path), "%s/runs", g_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK_INT(sl_writev_all(fd, iov, N), 0);
    close(fd);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    CHECK_INT(sl_file_read(path, total, &b), 0);
    CHECK(b.len == total && memcmp(b.data, data, total) == 0);
    sl_buf_free(&b);
}

TEST(writev_all_goes_on_after_a_short_write_and_reports_the_error)
{
    /* A file size limit makes the kernel write part of a writev, then refuse. */
    enum { N = 3000, LIMIT = 4099 };
    static char data[N * 41];
    static struct iovec iov[N];
    size_t total = make_runs(data, iov, N);
    CHECK(total > LIMIT);
    char path[256];
    snprintf(path, sizeof(path), "%s/limited", g_dir);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {LIMIT, LIMIT};
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || setrlimit(RLIMIT_FSIZE, &rl) != 0) {
            _exit(2);
        }
        _exit(sl_writev_all(fd, iov, N) == -1 && errno == EFBIG ? 0 : 1);
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st));
    CHECK_INT(WEXITSTATUS(st), 0);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    CHECK_INT(sl_file_read(path, total, &b), 0);
    CHECK(b.len == LIMIT && memcmp(b.data, data, LIMIT) == 0);
    sl_buf_free(&b);
}

int main(void)
{
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(reads_a_whole_file_appending_to_the_buffer);
    RUN(a_file_of_exactly_max_bytes_is_read);
    RUN(a_larger_file_is_refused_before_it_is_read);
    RUN(a_fifo_is_read_up_to_max_and_no_further);
    RUN(missing_files_and_directories_say_so);
    RUN(writev_all_writes_every_run_in_order);
    RUN(writev_all_goes_on_after_a_short_write_and_reports_the_error);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", g_dir);
    }
    return TEST_SUMMARY();
}
