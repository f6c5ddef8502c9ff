/*
 * pqueue_test.c - the persisted queue's storage on a real directory: records
 * come back in order and only once synced, pages roll and are deleted once
 * acked, a reopen resumes at the checkpoint, a torn tail is cut (never read,
 * never fatal), a corrupt page is moved aside and the rest served, a second
 * process cannot take the directory, and the read-only inspection reports
 * without changing anything.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pqueue.h"
#include "test.h"

static char tmpl[] = "/tmp/pqueue-test-XXXXXX";
static const char *dir;

static void rm_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            char p[512];
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    if (d) {
        closedir(d);
    }
}

static bool exists(const char *name)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return stat(p, &st) == 0;
}

static uint64_t file_size(const char *name)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Appends n events {"i":from..from+n-1} as one window. */
static int append(struct pq_store *s, int from, int n)
{
    char **texts = calloc((size_t)n, sizeof(*texts));
    size_t *lens = calloc((size_t)n, sizeof(*lens));
    for (int i = 0; i < n; i++) {
        texts[i] = malloc(64);
        lens[i] = (size_t)snprintf(texts[i], 64, "{\"i\":%d,\"pad\":\"xxxxxxxxxxxxxxxx\"}",
                                   from + i);
    }
    int rc = pq_append(s, (const char *const *)texts, lens, (size_t)n, 1700000000000ull + from);
    for (int i = 0; i < n; i++) {
        free(texts[i]);
    }
    free(texts);
    free(lens);
    return rc;
}

/* Reads everything readable; checks the events are from..from+n-1 in order. */
static size_t read_all(struct pq_store *s, int from, struct pq_batch *b, size_t max)
{
    size_t n = pq_read(s, b, max, 1 << 20);
    for (size_t i = 0; i < n; i++) {
        char want[64];
        snprintf(want, sizeof(want), "{\"i\":%d,\"pad\":\"xxxxxxxxxxxxxxxx\"}", from + (int)i);
        CHECK_MEM(b->texts[i].p, b->texts[i].len, want);
    }
    return n;
}

static struct pq_store *open_q(uint64_t page, struct pq_recovery *rec)
{
    char err[256] = "";
    struct pq_store *s = pq_open(dir, page, rec, err, sizeof(err));
    if (!s) {
        fprintf(stderr, "pq_open: %s\n", err);
    }
    return s;
}

TEST(append_sync_read_ack)
{
    rm_dir();
    struct pq_recovery rec;
    struct pq_store *s = open_q(64 * 1024, &rec);
    struct pq_batch b;
    pq_batch_init(&b);
    CHECK_INT(rec.events, 0);
    CHECK_INT(append(s, 0, 10), 0);
    CHECK_INT(pq_live_events(s), 10);
    CHECK_INT(pq_read(s, &b, 100, 1 << 20), 0);  /* not synced: not readable */
    CHECK_INT(pq_sync(s), 0);
    CHECK_INT(read_all(s, 0, &b, 4), 4);
    CHECK_INT(b.texts[0].seq, 0);
    CHECK_INT(b.texts[3].seq, 3);
    CHECK_INT(b.end_seq, 4);
    CHECK_INT(pq_ack(s, b.end_seq, b.end_page, b.end_off, b.texts[3].ms), 0);
    CHECK_INT(pq_live_events(s), 6);
    CHECK_INT(read_all(s, 4, &b, 100), 6);
    CHECK_INT(pq_read(s, &b, 100, 1 << 20), 0);
    CHECK_INT(pq_ack(s, b.end_seq, b.end_page, b.end_off, 0), 0);
    CHECK_INT(pq_live_events(s), 0);
    CHECK_INT(pq_live_bytes(s), 0);
    pq_batch_free(&b);
    pq_close(s);
}

TEST(pages_roll_and_go_once_acked)
{
    rm_dir();
    struct pq_store *s = open_q(64 * 1024, NULL);
    struct pq_batch b;
    pq_batch_init(&b);
    /* 50 bytes a record: 1000 events a window is ~50 KB, so each window is a page. */
    for (int w = 0; w < 5; w++) {
        CHECK_INT(append(s, w * 1000, 1000), 0);
    }
    CHECK_INT(pq_sync(s), 0);
    CHECK(exists("page.1") && exists("page.5"));
    CHECK_INT(pq_live_events(s), 5000);
    size_t total = 0;
    for (;;) {
        size_t n = read_all(s, (int)total, &b, 1500);
        if (n == 0) {
            break;
        }
        total += n;
        CHECK_INT(pq_ack(s, b.end_seq, b.end_page, b.end_off, 0), 0);
    }
    CHECK_INT(total, 5000);
    CHECK(!exists("page.1") && !exists("page.4"));
    CHECK(exists("page.5"));  /* the write page stays */
    CHECK_INT(pq_live_events(s), 0);
    pq_batch_free(&b);
    pq_close(s);
}

TEST(reopen_resumes_at_the_checkpoint)
{
    rm_dir();
    struct pq_store *s = open_q(64 * 1024, NULL);
    struct pq_batch b;
    pq_batch_init(&b);
    CHECK_INT(append(s, 0, 1500), 0);
    CHECK_INT(append(s, 1500, 1500), 0);
    CHECK_INT(pq_sync(s), 0);
    CHECK_INT(read_all(s, 0, &b, 1200), 1200);
    CHECK_INT(pq_ack(s, b.end_seq, b.end_page, b.end_off, b.texts[0].ms), 0);
    CHECK_INT(read_all(s, 1200, &b, 500), 500);  /* read, never acked: comes again */
    pq_close(s);

    struct pq_recovery rec;
    s = open_q(64 * 1024, &rec);
    CHECK_INT(rec.events, 1800);
    CHECK_INT(rec.ack_seq, 1200);
    CHECK_INT(rec.head_seq, 3000);
    CHECK_INT(rec.torn_bytes, 0);
    CHECK_INT(rec.oldest_ms, 1700000000000ull);  /* appended with the first window */
    CHECK_INT(read_all(s, 1200, &b, 5000), 1800);
    CHECK_INT(b.texts[0].seq, 1200);
    /* New events get new seqs after the old ones. */
    CHECK_INT(append(s, 3000, 3), 0);
    CHECK_INT(pq_sync(s), 0);
    CHECK_INT(read_all(s, 3000, &b, 10), 3);
    CHECK_INT(b.texts[0].seq, 3000);
    pq_batch_free(&b);
    pq_close(s);
}

/* The last page's tail cut at every byte of its last record: recovery keeps the rest. */
TEST(torn_tail_is_cut_at_any_byte)
{
    for (uint64_t cut = 1; cut <= 48; cut += 7) {
        rm_dir();
        struct pq_store *s = open_q(1 << 20, NULL);
        CHECK_INT(append(s, 0, 20), 0);
        CHECK_INT(pq_sync(s), 0);
        pq_close(s);
        uint64_t size = file_size("page.1");
        char p[512];
        snprintf(p, sizeof(p), "%s/page.1", dir);
        CHECK_INT(truncate(p, (off_t)(size - cut)), 0);
        struct pq_recovery rec;
        s = open_q(1 << 20, &rec);
        CHECK(s != NULL);
        if (!s) {
            continue;
        }
        CHECK_INT(rec.events, 19);
        CHECK(rec.torn_bytes > 0);
        CHECK_INT(rec.corrupt_pages, 0);
        struct pq_batch b;
        pq_batch_init(&b);
        CHECK_INT(read_all(s, 0, &b, 100), 19);
        pq_batch_free(&b);
        pq_close(s);
    }
}

/* Garbage after the last good record (a write that was never synced). */
TEST(garbage_tail_is_cut)
{
    rm_dir();
    struct pq_store *s = open_q(1 << 20, NULL);
    CHECK_INT(append(s, 0, 5), 0);
    CHECK_INT(pq_sync(s), 0);
    pq_close(s);
    char p[512];
    snprintf(p, sizeof(p), "%s/page.1", dir);
    int fd = open(p, O_WRONLY | O_APPEND);
    CHECK_INT(write(fd, "\x20\0\0\0garbage-garbage-garbage-garbage", 35), 35);
    close(fd);
    struct pq_recovery rec;
    s = open_q(1 << 20, &rec);
    CHECK_INT(rec.events, 5);
    CHECK_INT(rec.torn_bytes, 35);
    struct pq_batch b;
    pq_batch_init(&b);
    CHECK_INT(read_all(s, 0, &b, 100), 5);
    pq_batch_free(&b);
    pq_close(s);
}

/* A flipped byte in a page that is not the last: that page goes aside, the rest is served. */
TEST(corrupt_page_is_moved_aside)
{
    rm_dir();
    struct pq_store *s = open_q(64 * 1024, NULL);
    for (int w = 0; w < 3; w++) {
        CHECK_INT(append(s, w * 1000, 1000), 0);
    }
    CHECK_INT(pq_sync(s), 0);
    pq_close(s);
    char p[512];
    snprintf(p, sizeof(p), "%s/page.2", dir);
    int fd = open(p, O_WRONLY);
    CHECK_INT(pwrite(fd, "X", 1, 4000), 1);
    close(fd);
    struct pq_recovery rec;
    s = open_q(64 * 1024, &rec);
    CHECK_INT(rec.corrupt_pages, 1);
    CHECK(exists("page.2.corrupt"));
    CHECK(!exists("page.2"));
    CHECK_INT(rec.events, 2000);
    struct pq_batch b;
    pq_batch_init(&b);
    CHECK_INT(read_all(s, 0, &b, 1000), 1000);
    CHECK_INT(pq_ack(s, b.end_seq, b.end_page, b.end_off, 0), 0);
    CHECK_INT(read_all(s, 2000, &b, 5000), 1000);
    CHECK_INT(b.texts[0].seq, 2000);
    CHECK_INT(pq_ack(s, b.end_seq, b.end_page, b.end_off, 0), 0);
    CHECK_INT(pq_live_events(s), 0);
    /* New pages never reuse the number of one moved aside. */
    CHECK_INT(append(s, 3000, 1), 0);
    CHECK(!exists("page.2"));
    pq_batch_free(&b);
    pq_close(s);
}

/* Corruption found while reading (after the start): the page goes aside, reading goes on. */
TEST(corruption_found_by_the_reader)
{
    rm_dir();
    struct pq_store *s = open_q(64 * 1024, NULL);
    for (int w = 0; w < 3; w++) {
        CHECK_INT(append(s, w * 1000, 1000), 0);
    }
    CHECK_INT(pq_sync(s), 0);
    char p[512];
    snprintf(p, sizeof(p), "%s/page.2", dir);
    int fd = open(p, O_WRONLY);
    CHECK_INT(pwrite(fd, "X", 1, 40000), 1);
    close(fd);
    struct pq_batch b;
    pq_batch_init(&b);
    size_t total = 0, n;
    uint64_t last = 0;
    while ((n = pq_read(s, &b, 700, 1 << 20)) > 0) {
        total += n;
        last = b.texts[n - 1].seq;
        CHECK_INT(pq_ack(s, b.end_seq, b.end_page, b.end_off, 0), 0);
    }
    CHECK_INT(last, 2999);
    CHECK(total >= 2000 && total < 3000);  /* page 2's records before the bad one were served */
    CHECK_INT(pq_corrupt_pages(s), 1);
    CHECK(exists("page.2.corrupt"));
    CHECK_INT(pq_live_events(s), 0);
    pq_batch_free(&b);
    pq_close(s);
}

/* A page created (header torn) just before the process died. */
TEST(torn_new_page_is_dropped)
{
    rm_dir();
    struct pq_store *s = open_q(1 << 20, NULL);
    CHECK_INT(append(s, 0, 3), 0);
    CHECK_INT(pq_sync(s), 0);
    pq_close(s);
    char p[512];
    snprintf(p, sizeof(p), "%s/page.9", dir);
    int fd = open(p, O_WRONLY | O_CREAT, 0640);
    CHECK_INT(write(fd, "SLPQPA", 6), 6);
    close(fd);
    struct pq_recovery rec;
    s = open_q(1 << 20, &rec);
    CHECK_INT(rec.events, 3);
    CHECK_INT(rec.corrupt_pages, 0);
    CHECK(!exists("page.9"));
    pq_close(s);
}

TEST(one_owner_at_a_time)
{
    rm_dir();
    struct pq_store *s = open_q(1 << 20, NULL);
    char err[256] = "";
    CHECK(pq_open(dir, 1 << 20, NULL, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "in use by another process") != NULL);
    pq_close(s);
}

TEST(inspect_changes_nothing)
{
    rm_dir();
    struct pq_store *s = open_q(1 << 20, NULL);
    CHECK_INT(append(s, 0, 7), 0);
    CHECK_INT(pq_sync(s), 0);
    pq_close(s);
    char p[512];
    snprintf(p, sizeof(p), "%s/page.1", dir);
    uint64_t size = file_size("page.1");
    CHECK_INT(truncate(p, (off_t)(size - 3)), 0);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    struct pq_recovery rec;
    CHECK_INT(pq_inspect(dir, out, &rec), 0);
    fclose(out);
    CHECK_INT(rec.events, 6);
    CHECK(rec.torn_bytes > 0);
    CHECK(strstr(text, "\"state\": \"torn_tail\"") != NULL);
    CHECK(strstr(text, "\"in_use\": false") != NULL);
    CHECK_INT(file_size("page.1"), size - 3);  /* not repaired */
    free(text);
    CHECK_INT(pq_inspect("/nonexistent/queue", stdout, NULL), SL_ENOENT);
}

TEST(append_failure_leaves_no_half_window)
{
    rm_dir();
    struct pq_store *s = open_q(1 << 20, NULL);
    CHECK_INT(append(s, 0, 2), 0);
    const char *texts[] = {"{\"a\":1}", ""};
    size_t lens[] = {7, 0};
    CHECK_INT(pq_append(s, texts, lens, 2, 1), SL_EIO);  /* an empty text is refused */
    CHECK_INT(pq_live_events(s), 2);
    CHECK_INT(append(s, 2, 2), 0);
    CHECK_INT(pq_sync(s), 0);
    struct pq_batch b;
    pq_batch_init(&b);
    CHECK_INT(read_all(s, 0, &b, 100), 4);
    pq_batch_free(&b);
    pq_close(s);
}

int main(void)
{
    dir = mkdtemp(tmpl);
    if (!dir) {
        perror("mkdtemp");
        return 1;
    }
    RUN(append_sync_read_ack);
    RUN(pages_roll_and_go_once_acked);
    RUN(reopen_resumes_at_the_checkpoint);
    RUN(torn_tail_is_cut_at_any_byte);
    RUN(garbage_tail_is_cut);
    RUN(corrupt_page_is_moved_aside);
    RUN(corruption_found_by_the_reader);
    RUN(torn_new_page_is_dropped);
    RUN(one_owner_at_a_time);
    RUN(inspect_changes_nothing);
    RUN(append_failure_leaves_no_half_window);
    rm_dir();
    rmdir(dir);
    return TEST_SUMMARY();
}
