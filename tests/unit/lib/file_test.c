/*
 * file_test.c - sl_file_read: whole files, bounds, and the errors callers
 * turn into messages.
 */
#include "sluice/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", g_dir);
    }
    return TEST_SUMMARY();
}
