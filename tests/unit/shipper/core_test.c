/*
 * shipper_core_test.c - the shipper's event writer, registry, queue and
 * sender, driven in-process with exact expectations.
 */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "event.h"
#include "queue.h"
#include "registry.h"
#include "sender.h"
#include "sluice/buf.h"
#include "sluice/json.h"
#include "sluice/net.h"
#include "sluice/loop.h"
#include "sluice/lumberjack.h"
#include "sluice/metrics.h"
#include "tail.h"
#include "sluice/log.h"
#include "test.h"

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sluice-test-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
}

TEST(event_has_the_beats_shape)
{
    struct input_conf in = {0};
    in.fields_json = "\"service\":\"web\"";
    in.tags_json = "[\"a\"]";
    struct event_tmpl t;
    const struct event_agent agent = {.name = "h1",
                                      .id = "8f0c2a44-52a5-4b43-a2d1-6e1bb3f1c1aa",
                                      .ephemeral_id = "0b7e8c52-1d0e-4c55-9b6f-3c9a8d7e6f50"};
    event_tmpl_init(&t, &in, &agent);
    struct sl_buf file;
    sl_buf_init(&file, 0);
    event_file_json(&file, "/l/a.log", 2049, 1234567);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    CHECK_INT(event_encode(&b, &t, "2026-11-27T06:00:00.123Z", file.data, file.len,
                           "say \"hi\"\n", 9, 1234, EVENT_FLAG_TRUNCATED), 0);
    CHECK_MEM(b.data, b.len,
              "{\"@timestamp\":\"2026-11-27T06:00:00.123Z\",\"@metadata\":{\"beat\":\"sluice\","
              "\"type\":\"_doc\",\"version\":\"0.1.0\"},\"message\":\"say \\\"hi\\\"\\n\","
              "\"log\":{\"file\":{\"path\":\"/l/a.log\",\"inode\":\"1234567\",\"device_id\":"
              "\"2049\"},\"offset\":1234,\"flags\":[\"truncated\"]},"
              "\"input\":{\"type\":\"filestream\"},\"host\":{\"name\":\"h1\"},\"agent\":{\"type\":"
              "\"sluice-shipper\",\"version\":\"0.1.0\",\"name\":\"h1\","
              "\"id\":\"8f0c2a44-52a5-4b43-a2d1-6e1bb3f1c1aa\","
              "\"ephemeral_id\":\"0b7e8c52-1d0e-4c55-9b6f-3c9a8d7e6f50\"},\"ecs\":{\"version\":"
              "\"8.0.0\"},\"fields\":{\"service\":\"web\"},\"tags\":[\"a\"]}");
    event_tmpl_free(&t);
    sl_buf_free(&file);

    /* A path is escaped; the largest inode and device numbers fit. */
    sl_buf_init(&file, 0);
    event_file_json(&file, "/l/\"q\".log", UINT64_MAX, 0);
    CHECK_STR(sl_buf_cstr(&file), "{\"path\":\"/l/\\\"q\\\".log\",\"inode\":\"0\","
                                  "\"device_id\":\"18446744073709551615\"}");
    sl_buf_free(&file);

    in.fields_under_root = true;
    in.tags_json = NULL;
    const struct event_agent anon = {.name = "h1"};
    event_tmpl_init(&t, &in, &anon);
    sl_buf_reset(&b);
    event_encode(&b, &t, "2026-11-27T06:00:00.123Z", "{\"path\":\"p\"}", 12, "m", 1, 0, 0);
    const char *tail = ",\"ecs\":{\"version\":\"8.0.0\"},\"service\":\"web\"}";
    CHECK(b.len > strlen(tail) && memcmp(b.data + b.len - strlen(tail), tail, strlen(tail)) == 0);
    event_tmpl_free(&t);
    sl_buf_free(&b);
}

TEST(registry_round_trips_offsets_and_fingerprints)
{
    struct registry *r;
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/reg1/sub", tmpdir);
    CHECK_INT(registry_open(dir, &r), 0);
    struct registry_entry *e = registry_add(r, 7, 42, "/var/log/a.log");
    e->fp = 0xdeadbeef;
    e->fp_len = 100;
    registry_ack(r, e, 0, 500);
    registry_ack(r, e, 0, 400);   /* never backwards */
    registry_ack(r, e, 1, 900);   /* stale generation */
    CHECK_INT(e->offset, 500);
    struct registry_entry *g = registry_add(r, 7, 43, "/var/log/gone.log");
    g->gone = true;
    CHECK_INT(registry_flush(r), 0);
    registry_close(r);

    CHECK_INT(registry_open(dir, &r), 0);
    CHECK_INT(registry_count(r), 1);
    e = registry_find(r, 7, 42);
    CHECK(e != NULL);
    if (e) {
        CHECK_INT(e->offset, 500);
        CHECK_INT(e->fp, 0xdeadbeef);
        CHECK_INT(e->fp_len, 100);
        CHECK_STR(e->path, "/var/log/a.log");
    }
    CHECK(registry_find(r, 7, 43) == NULL);
    registry_close(r);
}

static void corrupt(const char *dir)
{
    char file[192];
    snprintf(file, sizeof(file), "%s/registry.json", dir);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(write(fd, "{\"version\":1,\"entries\":[{\"dev\":1", 32) == 32);
    close(fd);
}

TEST(corrupt_registry_falls_back_to_the_backup)
{
    char dir[128], cmd[256];
    snprintf(dir, sizeof(dir), "%s/reg2", tmpdir);
    struct registry *r;
    CHECK_INT(registry_open(dir, &r), 0);
    struct registry_entry *e = registry_add(r, 1, 10, "/a");
    registry_ack(r, e, 0, 100);
    CHECK_INT(registry_flush(r), 0);            /* generation 1 */
    registry_ack(r, e, 0, 200);
    CHECK_INT(registry_flush(r), 0);            /* generation 2; generation 1 is the backup */
    registry_close(r);

    corrupt(dir);
    CHECK_INT(registry_open(dir, &r), 0);
    CHECK(r != NULL);
    if (r) {
        CHECK(registry_was_corrupt(r));
        e = registry_find(r, 1, 10);
        CHECK(e != NULL && e->offset == 100);
        registry_close(r);
    }
    snprintf(cmd, sizeof(cmd), "ls %s/registry.json.corrupt-* >/dev/null 2>&1", dir);
    CHECK(system(cmd) == 0);

    /* Corrupt with no backup: starts empty, and says so. */
    snprintf(cmd, sizeof(cmd), "rm -f %s/registry.json.bak", dir);
    CHECK(system(cmd) == 0);
    corrupt(dir);
    CHECK_INT(registry_open(dir, &r), 0);
    CHECK(r != NULL && registry_was_corrupt(r) && registry_count(r) == 0);
    registry_close(r);
}

/* A registry of its own under tmpdir for one queue test, which closes it. */
static struct registry *queue_registry(const char *name)
{
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/%s", tmpdir, name);
    struct registry *r = NULL;
    CHECK_INT(registry_open(dir, &r), 0);
    return r;
}

static void add_event(struct queue *q, struct registry_entry *e, const char *msg, uint64_t end)
{
    struct sl_buf *b = queue_begin_event(q);
    sl_buf_puts(b, msg);
    queue_end_event(q, e, e->gen, end);
}

TEST(queue_encodes_frames_and_commits_in_order)
{
    struct registry *r = queue_registry("reg3");
    struct sl_metrics *m = sl_metrics_new();
    struct queue q;
    queue_init(&q, 10, 2, r, m);
    struct registry_entry *e = registry_add(r, 1, 1, "/a");
    add_event(&q, e, "{\"a\":1}", 10);
    add_event(&q, e, "{\"a\":2}", 20);   /* fills batch 1 (bulk_max 2) */
    add_event(&q, e, "{\"a\":3}", 30);
    CHECK_INT(q.events, 3);
    CHECK_INT(e->refs, 3);
    struct batch *b1 = queue_next_unsent(&q);
    CHECK(b1 != NULL && b1->n == 2 && b1->sealed);
    /* Frame 2 of batch 1: 2J, seq 2, len 7, JSON. */
    CHECK(memcmp(b1->frames.data + b1->ev[1].frame_off, "2J\0\0\0\2\0\0\0\7{\"a\":2}", 17) == 0);
    CHECK(queue_open_batch(&q) != NULL);
    queue_seal(&q);
    struct batch *b2 = b1->next;
    CHECK(b2 != NULL && b2->sealed && b2->n == 1);
    b1->inflight = true;
    CHECK(queue_next_unsent(&q) == b2);

    queue_ack(&q, b2, 1);            /* later batch first: offset must not move */
    CHECK_INT(e->offset, 0);
    queue_ack(&q, b1, 1);            /* partial ACK of the head */
    CHECK_INT(e->offset, 10);
    queue_ack(&q, b1, 2);            /* completes batch 1, then batch 2 commits too */
    CHECK_INT(e->offset, 30);
    CHECK_INT(q.events, 0);
    CHECK(q.head == NULL);
    CHECK_INT(e->refs, 0);
    CHECK(sl_metric_value(q.m_acked) == 3);
    queue_free(&q);
    sl_metrics_free(m);
    registry_close(r);
}

TEST(queue_skip_lets_the_registry_pass_lines_without_events)
{
    struct registry *r = queue_registry("reg-skip");
    struct sl_metrics *m = sl_metrics_new();
    struct queue q;
    queue_init(&q, 20, 2, r, m);
    struct registry_entry *e = registry_add(r, 1, 1, "/a");
    struct registry_entry *f = registry_add(r, 1, 2, "/b");
    queue_skip(&q, e, e->gen, 5);          /* nothing waiting: at once */
    CHECK_INT(e->offset, 5);
    add_event(&q, e, "{\"a\":1}", 10);
    add_event(&q, e, "{\"a\":2}", 20);   /* batch 1, sealed */
    add_event(&q, e, "{\"a\":3}", 30);   /* batch 2, open */
    queue_skip(&q, e, e->gen, 35);         /* rides on event 3 */
    CHECK_INT(e->offset, 5);
    CHECK_INT(q.events, 3);
    struct batch *b1 = q.head;
    queue_seal(&q);
    struct batch *b2 = b1->next;
    queue_ack(&q, b1, 2);
    CHECK_INT(e->offset, 20);
    queue_skip(&q, e, e->gen, 33);         /* never backwards */
    queue_ack(&q, b2, 1);
    CHECK_INT(e->offset, 35);
    CHECK_INT(e->refs, 0);
    queue_skip(&q, e, e->gen, 40);         /* all committed again: at once */
    CHECK_INT(e->offset, 40);
    /* Another file's event after e's latest one does not hold e back longer. */
    add_event(&q, e, "{\"a\":4}", 50);
    add_event(&q, f, "{\"b\":1}", 7);
    queue_skip(&q, e, e->gen, 60);
    queue_skip(&q, f, f->gen, 9);
    struct batch *b3 = q.head;
    CHECK(b3 != NULL && b3->n == 2);
    queue_ack(&q, b3, 1);
    CHECK_INT(e->offset, 60);
    CHECK_INT(f->offset, 0);
    queue_ack(&q, b3, 2);
    CHECK_INT(f->offset, 9);
    /* A skip of a newer generation (the file was truncated) is not held by
     * events of the old one, whose ACKs the registry ignores. */
    add_event(&q, e, "{\"a\":5}", 70);
    e->gen++;
    e->offset = 0;
    queue_skip(&q, e, e->gen, 3);
    CHECK_INT(e->offset, 3);
    queue_seal(&q);
    queue_ack(&q, q.head, 1);
    CHECK_INT(e->offset, 3);
    CHECK_INT(q.events, 0);
    queue_free(&q);
    sl_metrics_free(m);
    registry_close(r);
}

TEST(queue_frames_decode_with_the_codec)
{
    struct registry *r = queue_registry("reg4");
    struct sl_metrics *m = sl_metrics_new();
    struct queue q;
    queue_init(&q, 100, 100, r, m);
    struct registry_entry *e = registry_add(r, 1, 2, "/b");
    for (int i = 0; i < 5; i++) {
        char msg[32];
        snprintf(msg, sizeof(msg), "{\"i\":%d}", i);
        add_event(&q, e, msg, (uint64_t)(i + 1) * 10);
    }
    queue_seal(&q);
    struct batch *b = queue_next_unsent(&q);
    struct sl_buf wire;
    sl_buf_init(&wire, 0);
    sl_lj_put_window(&wire, '2', b->n);
    CHECK_INT(sl_lj_put_compressed(&wire, SL_LJ_ZSTDC, 3, b->frames.data, b->frames.len), 0);
    struct sl_lj_decoder *d = sl_lj_decoder_new(NULL);
    CHECK_INT(sl_lj_decoder_feed(d, wire.data, wire.len), 0);
    struct sl_lj_frame f;
    CHECK_INT(sl_lj_decoder_next(d, &f), 1);
    CHECK(f.type == SL_LJ_WINDOW && f.value == 5);
    for (uint32_t i = 0; i < 5; i++) {
        CHECK_INT(sl_lj_decoder_next(d, &f), 1);
        CHECK(f.type == SL_LJ_JSON && f.value == i + 1 && f.compressed);
        char want[32];
        snprintf(want, sizeof(want), "{\"i\":%u}", i);
        CHECK_MEM(f.data, f.len, want);
    }
    CHECK_INT(sl_lj_decoder_next(d, &f), 0);
    sl_lj_decoder_free(d);
    sl_buf_free(&wire);
    queue_free(&q);
    CHECK_INT(e->refs, 0);
    sl_metrics_free(m);
    registry_close(r);
}

/* Event i of the packing test: its numbers make every event differ. */
static void pack_msg(char *msg, size_t size, int i)
{
    snprintf(msg, size, "{\"message\":\"GET /item/%d HTTP/1.1\",\"n\":%d}", i * 7919, i);
}

TEST(queue_packs_sealed_batches_into_their_exact_window_blocks)
{
    struct registry *r = queue_registry("reg-pack");
    struct sl_metrics *m = sl_metrics_new();
    struct registry_entry *e = registry_add(r, 1, 3, "/pack");
    const struct { int kind, level; } modes[] = {{SL_LJ_ZSTDC, 1}, {SL_LJ_ZSTDC, 5}, {SL_LJ_ZLIB, 3}};
    for (size_t mi = 0; mi < sizeof(modes) / sizeof(modes[0]); mi++) {
        struct queue plain, packed;
        queue_init(&plain, 1000, 50, r, m);
        queue_init(&packed, 1000, 50, r, m);
        queue_set_packing(&packed, modes[mi].kind, modes[mi].level);
        for (int i = 0; i < 175; i++) {
            char msg[96];
            pack_msg(msg, sizeof(msg), i);
            add_event(&plain, e, msg, (uint64_t)(i + 1) * 10);
        }
        queue_seal(&plain);
        const char *sealed_buf = NULL;
        for (int i = 0; i < 175; i++) {
            char msg[96];
            pack_msg(msg, sizeof(msg), i);
            if (i % 50 == 49) {
                sealed_buf = packed.tail->frames.data;
            }
            add_event(&packed, e, msg, (uint64_t)(i + 1) * 10);
            if (i % 50 == 0 && i > 0) {
                /* The sealed batch's JSON buffer went on to the new open batch. */
                CHECK(packed.tail->frames.data == sealed_buf && packed.tail->n == 1);
                CHECK(packed.tail != packed.head && packed.spare.cap == 0);
            }
        }
        queue_seal(&packed);
        int batches = 0;
        for (struct batch *a = plain.head, *b = packed.head; a || b; a = a->next, b = b->next) {
            CHECK(a && b && a->n == b->n && b->sealed && !a->packed);
            CHECK(b->packed != NULL && b->frames.len == 0 && b->raw_len == a->frames.len);
            CHECK(batch_packed_as(b, modes[mi].kind, modes[mi].level));
            CHECK(!batch_packed_as(b, modes[mi].kind, modes[mi].level + 1));
            /* The block is exactly what the sender writes for the raw frames. */
            struct sl_buf want;
            sl_buf_init(&want, 0);
            CHECK_INT(sl_lj_put_compressed(&want, (enum sl_lj_compression)modes[mi].kind,
                                           modes[mi].level, a->frames.data, a->frames.len), 0);
            CHECK(b->packed_len == want.len && memcmp(b->packed, want.data, want.len) == 0);
            sl_buf_free(&want);
            CHECK(b->packed_len * 3 < a->frames.len);
            CHECK_INT(batch_unpack(b), 0);
            CHECK(b->packed == NULL && b->frames.len == a->frames.len);
            CHECK(memcmp(b->frames.data, a->frames.data, a->frames.len) == 0);
            CHECK_INT(batch_unpack(b), 0);  /* not packed: nothing to do */
            batches++;
        }
        CHECK_INT(batches, 4);
        queue_free(&plain);
        queue_free(&packed);
    }

    /* Packing off again (the output changed): batches keep their frames. */
    struct queue q;
    queue_init(&q, 1000, 50, r, m);
    queue_set_packing(&q, SL_LJ_ZSTDC, 1);
    add_event(&q, e, "{\"a\":1}", 10);
    queue_set_packing(&q, SL_LJ_NONE, 0);
    queue_seal(&q);
    CHECK(q.head->packed == NULL && q.head->frames.len == 17);

    /* A block that does not inflate to its frames is refused, the batch kept. */
    queue_set_packing(&q, SL_LJ_ZLIB, 6);
    add_event(&q, e, "{\"a\":2}", 20);
    queue_seal(&q);
    struct batch *b = q.head->next;
    CHECK(b->packed != NULL);
    b->raw_len++;
    CHECK_INT(batch_unpack(b), SL_EIO);
    CHECK(b->packed != NULL);
    b->raw_len--;
    CHECK_INT(batch_unpack(b), 0);
    CHECK(memcmp(b->frames.data, "2J\0\0\0\1\0\0\0\7{\"a\":2}", 17) == 0);
    queue_free(&q);
    CHECK_INT(e->refs, 0);
    sl_metrics_free(m);
    registry_close(r);
}

TEST(queue_oldest_unacked_is_the_first_event_without_an_ack)
{
    struct registry *r = queue_registry("reg5");
    struct sl_metrics *m = sl_metrics_new();
    struct queue q;
    queue_init(&q, 10, 2, r, m);
    struct registry_entry *e = registry_add(r, 1, 3, "/c");
    uint64_t read_ms = 0;
    CHECK(!queue_oldest_unacked(&q, &read_ms));  /* nothing read: nothing waits */

    uint64_t before = sl_now_ms();
    add_event(&q, e, "{\"a\":1}", 10);
    CHECK(queue_oldest_unacked(&q, &read_ms));   /* in the open batch, not sent: it counts */
    CHECK(read_ms >= before && read_ms <= sl_now_ms());
    add_event(&q, e, "{\"a\":2}", 20);           /* seals batch 1 (bulk_max 2) */
    add_event(&q, e, "{\"a\":3}", 30);
    queue_seal(&q);
    struct batch *b1 = q.head, *b2 = b1->next;
    /* Pin the read times to check the arithmetic exactly. */
    b1->created_ms = 1000;
    b1->ev[0].read_delta_ms = 0;
    b1->ev[1].read_delta_ms = 250;
    b2->created_ms = 5000;
    b2->ev[0].read_delta_ms = 7;
    CHECK(queue_oldest_unacked(&q, &read_ms));
    CHECK_INT(read_ms, 1000);
    queue_ack(&q, b1, 1);                        /* partial ACK: the second event is oldest */
    CHECK(queue_oldest_unacked(&q, &read_ms));
    CHECK_INT(read_ms, 1250);
    queue_ack(&q, b2, 1);                        /* a later batch first: no change */
    CHECK(queue_oldest_unacked(&q, &read_ms));
    CHECK_INT(read_ms, 1250);
    queue_ack(&q, b1, 2);                        /* everything ACKed */
    CHECK(!queue_oldest_unacked(&q, &read_ms));
    CHECK_INT(q.events, 0);

    /* An empty batch reopened later dates its events from the first one. */
    queue_begin_event(&q);
    queue_cancel_event(&q);
    q.tail->created_ms = 1;
    before = sl_now_ms();
    add_event(&q, e, "{\"a\":4}", 40);
    CHECK(queue_oldest_unacked(&q, &read_ms));
    CHECK(read_ms >= before && q.tail->created_ms >= before);
    queue_free(&q);
    sl_metrics_free(m);
    registry_close(r);
}

TEST(registry_check_dir_creates_and_probes)
{
    char dir[128], file[128], under[160], err[512];
    snprintf(dir, sizeof(dir), "%s/reg6/a/b", tmpdir);
    CHECK_INT(registry_check_dir(dir, true, err, sizeof(err)), 0);
    char cmd[320];
    /* Created, and the probe file removed: the directory is empty. */
    snprintf(cmd, sizeof(cmd), "test -d %s && test -z \"$(ls -A %s)\"", dir, dir);
    CHECK(system(cmd) == 0);
    CHECK_INT(registry_check_dir(dir, true, err, sizeof(err)), 0);  /* existing: fine too */

    snprintf(file, sizeof(file), "%s/reg6/file", tmpdir);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    close(fd);
    snprintf(under, sizeof(under), "%s/reg", file);
    char want[512];
    CHECK_INT(registry_check_dir(under, true, err, sizeof(err)), SL_EIO);
    snprintf(want, sizeof(want), "cannot create directory '%s': Not a directory", under);
    CHECK_STR(err, want);
    CHECK_INT(registry_check_dir(file, true, err, sizeof(err)), SL_EIO);
    snprintf(want, sizeof(want), "'%s' is not a directory", file);
    CHECK_STR(err, want);
    CHECK_INT(registry_check_dir("", true, err, sizeof(err)), SL_EIO);
    CHECK_STR(err, "must not be empty");

    /* -t (create false) makes nothing: a missing directory only has to be creatable. */
    char later[160];
    snprintf(later, sizeof(later), "%s/reg7/x/y", tmpdir);
    CHECK_INT(registry_check_dir(later, false, err, sizeof(err)), 0);
    snprintf(cmd, sizeof(cmd), "test ! -e %s/reg7", tmpdir);
    CHECK(system(cmd) == 0);
    CHECK_INT(registry_check_dir(under, false, err, sizeof(err)), SL_EIO);
    snprintf(want, sizeof(want), "cannot create directory '%s': Not a directory", under);
    CHECK_STR(err, want);
    CHECK_INT(registry_check_dir(file, false, err, sizeof(err)), SL_EIO);
    snprintf(want, sizeof(want), "'%s' is not a directory", file);
    CHECK_STR(err, want);
}

/* Parses text as a shipper config (and checks the registry when asked); the errors. */
static char *conf_errors(const char *text, bool check_registry)
{
    struct sl_cfg cfg = {0};
    struct shipper_conf c;
    memset(&c, 0, sizeof(c));
    if (sl_cfg_load_string(&cfg, "t.yml", text, strlen(text)) == 0 &&
        shipper_conf_parse(&cfg, &c) == 0 && check_registry) {
        shipper_conf_check_registry(&cfg, &c, true);
    }
    char *out = sl_strdup(sl_buf_cstr(&cfg.errors));
    shipper_conf_free(&c);
    sl_cfg_free(&cfg);
    return out;
}

TEST(output_hosts_need_a_port_1_to_65535)
{
    char *e = conf_errors("inputs: [{paths: [/x]}]\n"
                          "output:\n"
                          "  hosts: ['h:0', 'h:65536', 'h: 80', 'h:+80', 'h:080', 'h:65535',\n"
                          "          '[::1]', '[::1]x:1', '::1', 'h', {host: 'h:x'}]\n",
                          false);
    CHECK_STR(e, "t.yml:3:11: output.hosts[0]: port must be 1..65535, got '0' in 'h:0'\n"
                 "t.yml:3:18: output.hosts[1]: port must be 1..65535, got '65536' in 'h:65536'\n"
                 "t.yml:3:29: output.hosts[2]: port must be 1..65535, got ' 80' in 'h: 80'\n"
                 "t.yml:3:38: output.hosts[3]: port must be 1..65535, got '+80' in 'h:+80'\n"
                 "t.yml:4:20: output.hosts[7]: must be \"host:port\" or \"[IPv6]:port\", "
                 "got '[::1]x:1'\n"
                 "t.yml:4:32: output.hosts[8]: an IPv6 address needs brackets "
                 "(\"[::1]:5044\"), got '::1'\n"
                 "t.yml:4:51: output.hosts[10]: option 'host': port must be 1..65535, "
                 "got 'x' in 'h:x'\n");
    free(e);

    struct sl_cfg cfg = {0};
    struct shipper_conf c;
    const char *ok = "inputs: [{paths: [/x]}]\noutput: {hosts: ['[::1]', h, 'h:080']}\n";
    CHECK_INT(sl_cfg_load_string(&cfg, "t.yml", ok, strlen(ok)), 0);
    CHECK_INT(shipper_conf_parse(&cfg, &c), 0);
    CHECK_INT(c.output.nhosts, 3);
    if (c.output.nhosts == 3) {
        CHECK_STR(c.output.hosts[0].addr, "[::1]:5044");  /* the default port, bracketed too */
        CHECK_STR(c.output.hosts[1].addr, "h:5044");
        CHECK_STR(c.output.hosts[2].addr, "h:080");
    }
    shipper_conf_free(&c);
    sl_cfg_free(&cfg);
}

/* Parses text into *c (which must parse cleanly). */
static void conf_of(const char *text, struct shipper_conf *c)
{
    struct sl_cfg cfg = {0};
    memset(c, 0, sizeof(*c));
    CHECK_INT(sl_cfg_load_string(&cfg, "t.yml", text, strlen(text)), 0);
    CHECK_INT(shipper_conf_parse(&cfg, c), 0);
    CHECK_STR(sl_buf_cstr(&cfg.errors), "");
    sl_cfg_free(&cfg);
}

TEST(output_conf_equal_compares_every_output_field)
{
    static const char *const base = "inputs: [{paths: [/x]}]\n"
                                    "output: {hosts: ['a:1', {host: 'b:2', weight: 2}]%s}\n";
    static const char *const changed[] = {
        ", loadbalance: false", ", compression: zlib", ", compression_level: 4",
        ", bulk_max_events: 7", ", flush_interval: 2s", ", timeout: 9s", ", pipelining: 3",
        ", backoff: {init: 2s}", ", backoff: {max: 2m}",
        ", ssl: {verification_mode: none}", ", ssl: {certificate_authorities: [/ca.pem]}",
        ", ssl: {supported_protocols: [TLSv1.3]}",
    };
    char text[512];
    struct shipper_conf a, b;
    snprintf(text, sizeof(text), base, "");
    conf_of(text, &a);
    /* The same output, other inputs and options: equal. */
    conf_of("inputs: [{paths: [/y, /z]}]\nqueue: {max_events: 9000}\n"
            "output: {hosts: ['a:1', {host: 'b:2', weight: 2}]}\n", &b);
    CHECK(output_conf_equal(&a.output, &b.output));
    shipper_conf_free(&b);
    static const char *const hosts[] = {
        "output: {hosts: ['a:1']}\n",
        "output: {hosts: [{host: 'b:2', weight: 2}, 'a:1']}\n",
        "output: {hosts: ['a:1', {host: 'b:2', weight: 3}]}\n",
        "output: {hosts: ['a:1', {host: 'b:2', weight: 2, backup: true}]}\n",
        "output: {hosts: ['a:1', {host: 'c:2', weight: 2}]}\n",
    };
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        snprintf(text, sizeof(text), "inputs: [{paths: [/x]}]\n%s", hosts[i]);
        conf_of(text, &b);
        CHECK(!output_conf_equal(&a.output, &b.output));
        shipper_conf_free(&b);
    }
    for (size_t i = 0; i < sizeof(changed) / sizeof(changed[0]); i++) {
        snprintf(text, sizeof(text), base, changed[i]);
        conf_of(text, &b);
        CHECK(!output_conf_equal(&a.output, &b.output));
        CHECK(output_conf_equal(&b.output, &b.output));
        shipper_conf_free(&b);
    }
    shipper_conf_free(&a);
}

TEST(output_kafka_is_read_with_filebeats_names)
{
    struct shipper_conf c, d;
    conf_of("inputs: [{paths: [/x]}]\n"
            "output:\n"
            "  kafka:\n"
            "    hosts: ['k1:9092', 'k2:9092']\n"
            "    topic: 'logs-%{[fields.service]}'\n"
            "    key: '%{[host][name]}'\n"
            "    partition: {round_robin: {}}\n"
            "    required_acks: -1\n"
            "    compression: zstd\n"
            "    max_message_bytes: 2000000\n", &c);
    CHECK(c.output.kafka.enabled);
    CHECK_INT(c.output.kafka.nhosts, 2);
    CHECK_STR(c.output.kafka.hosts[1], "k2:9092");
    CHECK_STR(c.output.kafka.topic, "logs-%{[fields.service]}");
    CHECK_STR(c.output.kafka.key, "%{[host][name]}");
    CHECK_INT(c.output.kafka.partitioner, KAFKA_PART_ROUND_ROBIN);
    CHECK_INT(c.output.kafka.required_acks, -1);
    CHECK_STR(c.output.kafka.compression, "zstd");
    CHECK_INT(c.output.kafka.max_message_bytes, 2000000);
    /* Filebeat's defaults */
    conf_of("inputs: [{paths: [/x]}]\noutput: {kafka: {hosts: [k:9092], topic: t}}\n", &d);
    CHECK_INT(d.output.kafka.partitioner, KAFKA_PART_HASH);
    CHECK_INT(d.output.kafka.required_acks, 1);
    CHECK_STR(d.output.kafka.compression, "gzip");
    CHECK_STR(d.output.kafka.key, "");
    CHECK_STR(d.output.kafka.client_id, "beats");
    CHECK_INT(d.output.kafka.max_message_bytes, 1000000);
    CHECK(!output_conf_equal(&c.output, &d.output));
    CHECK(output_conf_equal(&d.output, &d.output));
    shipper_conf_free(&c);
    shipper_conf_free(&d);

    char *e = conf_errors("inputs: [{paths: [/x]}]\n"
                          "output:\n"
                          "  hosts: ['a:1']\n"
                          "  kafka: {hosts: [], partition: {sticky: {}}, required_acks: 2}\n",
                          false);
    CHECK_STR(e, "t.yml:4:10: output: 'kafka' and 'hosts' (Lumberjack) cannot both be set: "
                 "a shipper has one output\n"
                 "t.yml:4:10: output.kafka: option 'hosts' must list at least one broker\n"
                 "t.yml:4:10: output.kafka: option 'topic' is required\n"
                 "t.yml:4:34: output.kafka.partition: unknown partitioner 'sticky' (hash, "
                 "round_robin, random)\n"
                 "t.yml:4:62: output.kafka: option 'required_acks' must be between -1 and 1, "
                 "got '2'\n");
    free(e);
}

TEST(registry_path_is_checked_at_the_option)
{
    char text[512], want[512], file[128];
    snprintf(file, sizeof(file), "%s/reg7-file", tmpdir);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    close(fd);
    snprintf(text, sizeof(text), "inputs: [{paths: [/x]}]\nregistry:\n  path: %s/sub\n", file);
    char *e = conf_errors(text, true);
    snprintf(want, sizeof(want),
             "t.yml:3:9: registry: option 'path': cannot create directory '%s/sub': "
             "Not a directory\n", file);
    CHECK_STR(e, want);
    free(e);
    /* Not checked when the config is rejected anyway: nothing is created for it. */
    snprintf(text, sizeof(text), "inputs: [{paths: [/x]}]\nregistry:\n  path: %s/new\n"
             "bogus: 1\n", tmpdir);
    e = conf_errors(text, false);
    CHECK_STR(e, "t.yml:4:1: shipper: unknown option 'bogus'\n");
    free(e);
    snprintf(text, sizeof(text), "%s/new", tmpdir);
    CHECK(access(text, F_OK) != 0);
}

/* A tail driven in-process: an input for the *.log files of a directory, a
 * queue, a registry, and a loop spun briefly so inotify events are handled. */
struct rig {
    struct sl_cfg cfg;
    struct shipper_conf c;
    struct sl_loop *loop;
    struct sl_metrics *metrics;
    struct registry *reg;
    struct queue q;
    struct tail *t;
};

/* extra: more options of the input ("" for none); max_events: the queue's size. */
static void rig_start_with(struct rig *r, const char *dir, const char *extra, size_t max_events)
{
    char text[768], regdir[256];
    memset(r, 0, sizeof(*r));
    snprintf(text, sizeof(text),
             "inputs: [{id: t, paths: ['%s/*.log'], start_position: beginning%s}]\noutput: {hosts: ['127.0.0.1:1']}\n", dir, extra);
    CHECK_INT(sl_cfg_load_string(&r->cfg, "t.yml", text, strlen(text)), 0);
    CHECK_INT(shipper_conf_parse(&r->cfg, &r->c), 0);
    snprintf(regdir, sizeof(regdir), "%s/reg", dir);
    CHECK_INT(registry_open(regdir, &r->reg), 0);
    r->loop = sl_loop_new();
    r->metrics = sl_metrics_new();
    queue_init(&r->q, max_events, 1000, r->reg, r->metrics);
    r->t = tail_new(r->loop, &r->c, &r->q, r->reg, r->metrics);
}

static void rig_start(struct rig *r, const char *dir)
{
    rig_start_with(r, dir, "", 1000);
}

static void stop_loop(struct sl_loop *loop, void *arg)
{
    sl_loop_stop(loop);
}

/* Handles pending inotify events, then reads what is ready. */
static void rig_spin(struct rig *r)
{
    sl_loop_timer(r->loop, 50, false, stop_loop, NULL);
    sl_loop_run(r->loop);
    for (int i = 0; i < 8 && tail_pump(r->t, 1u << 20); i++) {
    }
}

static void rig_stop(struct rig *r)
{
    tail_free(r->t);
    queue_free(&r->q);
    registry_close(r->reg);
    sl_metrics_free(r->metrics);
    sl_loop_free(r->loop);
    shipper_conf_free(&r->c);
    sl_cfg_free(&r->cfg);
}

static void write_lines(const char *file, const char *prefix, int n, const char *mode)
{
    FILE *f = fopen(file, mode);
    CHECK(f != NULL);
    if (f) {
        for (int i = 0; i < n; i++) {
            fprintf(f, "%s-%04d xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n", prefix, i);
        }
        fclose(f);
    }
}

TEST(tail_sees_copytruncate_regrown_past_the_offset)
{
    char dir[128], file[192];
    snprintf(dir, sizeof(dir), "%s/tail1", tmpdir);
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(file, sizeof(file), "%s/app.log", dir);
    write_lines(file, "old", 100, "w");   /* 100 lines of 40 bytes */
    struct rig r;
    rig_start(&r, dir);
    rig_spin(&r);
    CHECK_INT(r.q.events, 100);
    /* Truncated and written past the old offset (4000) before the tail looks. */
    CHECK(truncate(file, 0) == 0);
    write_lines(file, "new", 250, "a");
    rig_spin(&r);
    CHECK_INT(r.q.events, 350);
    /* The new generation's events cover the new content from 0, line by line. */
    uint64_t gen0 = UINT64_MAX, expect_end = 40;
    size_t fresh = 0;
    for (struct batch *b = r.q.head; b; b = b->next) {
        for (uint32_t i = 0; i < b->n; i++) {
            if (gen0 == UINT64_MAX) {
                gen0 = b->ev[i].gen;
            }
            if (b->ev[i].gen != gen0) {
                CHECK_INT(b->ev[i].end, expect_end);
                expect_end += 40;
                fresh++;
            }
        }
    }
    CHECK_INT(fresh, 250);
    rig_stop(&r);
}

/* The JSON of every queued event, "\n"-separated, in order. */
static void queued_events(const struct queue *q, struct sl_buf *out)
{
    for (const struct batch *b = q->head; b; b = b->next) {
        for (uint32_t i = 0; i < b->n; i++) {
            const unsigned char *fr = (const unsigned char *)b->frames.data + b->ev[i].frame_off;
            uint32_t len = (uint32_t)fr[6] << 24 | (uint32_t)fr[7] << 16 | (uint32_t)fr[8] << 8 |
                           fr[9];
            sl_buf_append(out, fr + 10, len);
            sl_buf_putc(out, '\n');
        }
    }
}

/* ACKs every queued event, as the aggregator would. */
static void ack_all(struct queue *q)
{
    queue_seal(q);
    for (struct batch *b = q->head; b;) {
        struct batch *next = b->next;
        queue_ack(q, b, b->n);
        b = next;
    }
}

static void write_bytes(const char *file, const char *data, const char *mode)
{
    FILE *f = fopen(file, mode);
    CHECK(f != NULL);
    if (f) {
        CHECK_INT(fwrite(data, 1, strlen(data), f), strlen(data));
        fclose(f);
    }
}

/* The message and log.offset of each queued event: "offset:message|...". */
static void messages_and_offsets(const struct queue *q, struct sl_buf *out)
{
    struct sl_buf all;
    sl_buf_init(&all, 0);
    queued_events(q, &all);
    const char *p = all.data, *end = all.data + all.len;
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        struct sl_value v = {0};
        char err[96];
        CHECK_INT(sl_json_parse(p, (size_t)(nl - p), &v, NULL, err, sizeof(err)), 0);
        const struct sl_value *msg = sl_field_get(&v, "message");
        const struct sl_value *off = sl_field_get(&v, "log.offset");
        CHECK(msg && msg->type == SL_V_STRING && off && off->type == SL_V_INT);
        if (msg && off) {
            sl_buf_printf(out, "%lld:%.*s|", (long long)off->u.i, (int)msg->u.s.len,
                          msg->u.s.ptr);
        }
        sl_value_clear(&v);
        p = nl + 1;
    }
    sl_buf_free(&all);
}

static struct registry_entry *entry_of(struct registry *reg, const char *file)
{
    struct stat st;
    CHECK(stat(file, &st) == 0);
    return registry_find(reg, st.st_dev, st.st_ino);
}

TEST(tail_makes_no_event_for_an_empty_line_and_the_registry_passes_it)
{
    char dir[128], file[192];
    snprintf(dir, sizeof(dir), "%s/tail-empty", tmpdir);
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(file, sizeof(file), "%s/app.log", dir);
    /* one@0, LF@4, CRLF@5, two@7, a lone CR is text (@12), LF@15, size 16 */
    write_bytes(file, "one\n\n\r\ntwo\r\n\r\r\n\n", "w");
    struct rig r;
    rig_start(&r, dir);
    rig_spin(&r);
    CHECK_INT(r.q.events, 3);
    struct sl_buf got;
    sl_buf_init(&got, 0);
    messages_and_offsets(&r.q, &got);
    CHECK_STR(sl_buf_cstr(&got), "0:one|7:two|12:\r|");
    const char *lbl[] = {"reason", "empty", NULL};
    CHECK(sl_metric_value(sl_metrics_counter(r.metrics, "sluice_shipper_lines_dropped_total",
                                             "Lines not shipped, by reason.", lbl)) == 3);
    ack_all(&r.q);
    struct registry_entry *e = entry_of(r.reg, file);
    CHECK(e != NULL && e->offset == 16);
    /* Empty lines alone, after everything was ACKed: the registry moves at once. */
    write_bytes(file, "\n\r\n\n", "a");
    rig_spin(&r);
    CHECK_INT(r.q.events, 0);
    CHECK(e != NULL && e->offset == 20);
    rig_stop(&r);
    sl_buf_free(&got);
}

TEST(tail_keeps_empty_lines_inside_a_multiline_group)
{
    char dir[128], file[192];
    snprintf(dir, sizeof(dir), "%s/tail-ml-empty", tmpdir);
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(file, sizeof(file), "%s/app.log", dir);
    /* Continuation lines are indented or empty: empty ones inside or at the end
     * of a group stay; an empty line before any text adds nothing (no event). */
    write_bytes(file, "\nA1\n  a2\n\n\nB1\n\r\n  b2\n\nC1\n", "w");
    struct rig r;
    rig_start_with(&r, dir, ", multiline: {pattern: '^(\\s|$)', match: after}", 1000);
    rig_spin(&r);
    /* C1 waits for the next line (or the timeout): two events so far. */
    CHECK_INT(r.q.events, 2);
    struct sl_buf got;
    sl_buf_init(&got, 0);
    messages_and_offsets(&r.q, &got);
    CHECK_STR(sl_buf_cstr(&got), "1:A1\n  a2\n\n|11:B1\n\n  b2\n|");
    ack_all(&r.q);
    struct registry_entry *e = entry_of(r.reg, file);
    /* Up to C1's first byte, still being gathered. */
    CHECK(e != NULL && e->offset == 22);
    rig_stop(&r);
    sl_buf_free(&got);
}

TEST(tail_gathers_records_separated_by_empty_lines_with_multiline)
{
    char dir[128], file[192];
    snprintf(dir, sizeof(dir), "%s/tail-records", tmpdir);
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(file, sizeof(file), "%s/app.log", dir);
    /* r1@0 (3 lines), empty@11, CRLF@12, r2@14 (2 lines), empty@20, r3@21 */
    write_bytes(file, "a1\na2\n  a3\n\n\r\nb1\nb2\n\nc1\n", "w");
    struct rig r;
    rig_start_with(&r, dir, ", multiline: {pattern: '^$', negate: true, match: after}", 1000);
    rig_spin(&r);
    struct sl_buf got;
    sl_buf_init(&got, 0);
    messages_and_offsets(&r.q, &got);
    CHECK_STR(sl_buf_cstr(&got), "0:a1\na2\n  a3|14:b1\nb2|");
    ack_all(&r.q);
    struct registry_entry *e = entry_of(r.reg, file);
    CHECK(e != NULL && e->offset == 20);  /* the empty line @20 is c1's group */
    rig_stop(&r);
    sl_buf_free(&got);
}

TEST(tail_registry_passes_lines_exclude_lines_dropped)
{
    char dir[128], file[192];
    snprintf(dir, sizeof(dir), "%s/tail-excl", tmpdir);
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(file, sizeof(file), "%s/app.log", dir);
    write_bytes(file, "keep 1\nDEBUG x\nkeep 2\nDEBUG y\nDEBUG z\n", "w");
    struct rig r;
    rig_start_with(&r, dir, ", exclude_lines: ['^DEBUG']", 1000);
    rig_spin(&r);
    struct sl_buf got;
    sl_buf_init(&got, 0);
    messages_and_offsets(&r.q, &got);
    CHECK_STR(sl_buf_cstr(&got), "0:keep 1|15:keep 2|");
    ack_all(&r.q);
    struct registry_entry *e = entry_of(r.reg, file);
    CHECK(e != NULL && e->offset == 38);
    rig_stop(&r);
    sl_buf_free(&got);
}

TEST(tail_skips_proc_files_and_fifos)
{
    char dir[128], file[192], link[192], fifo[192];
    snprintf(dir, sizeof(dir), "%s/tail2", tmpdir);
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(file, sizeof(file), "%s/app.log", dir);
    snprintf(link, sizeof(link), "%s/proc.log", dir);
    snprintf(fifo, sizeof(fifo), "%s/pipe.log", dir);
    write_lines(file, "app", 3, "w");
    CHECK(symlink("/proc/self/status", link) == 0);
    struct rig r;
    rig_start(&r, dir);
    rig_spin(&r);
    CHECK(mkfifo(fifo, 0600) == 0);   /* seen through inotify */
    rig_spin(&r);
    rig_spin(&r);
    CHECK_INT(r.q.events, 3);
    struct sl_buf out;
    sl_buf_init(&out, 0);
    CHECK_INT(sl_metrics_render(r.metrics, &out), 0);
    const char *text = sl_buf_cstr(&out);
    CHECK(strstr(text, "sluice_shipper_files_skipped_total{reason=\"pseudo_fs\"} 1\n") != NULL);
    CHECK(strstr(text, "sluice_shipper_files_skipped_total{reason=\"not_regular\"} 1\n") != NULL);
    CHECK(strstr(text, "sluice_shipper_files_open 1\n") != NULL);
    sl_buf_free(&out);
    rig_stop(&r);
}

/* The value of a metric line "name value" in the rendered metrics, or -1. */
static double rig_metric(struct rig *r, const char *name)
{
    struct sl_buf out;
    sl_buf_init(&out, 0);
    CHECK_INT(sl_metrics_render(r->metrics, &out), 0);
    const char *text = sl_buf_cstr(&out);
    double v = -1;
    size_t n = strlen(name);
    for (const char *p = text; (p = strstr(p, name)) != NULL; p += n) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ') {
            v = strtod(p + n + 1, NULL);
            break;
        }
    }
    sl_buf_free(&out);
    return v;
}

/* harvester_limit: 2 over thousands of files: each file waits its turn once
 * (admission is a hash lookup, not a scan of the waiting files) and every line
 * is read exactly once, the files in the order they were found. */
TEST(tail_harvester_limit_reads_every_line_of_many_files)
{
    enum { NFILES = 3000, NLINES = 3 };
    char dir[128], file[192];
    snprintf(dir, sizeof(dir), "%s/tail3", tmpdir);
    CHECK(mkdir(dir, 0700) == 0);
    for (int i = 0; i < NFILES; i++) {
        snprintf(file, sizeof(file), "%s/f%05d.log", dir, i);
        char prefix[16];
        snprintf(prefix, sizeof(prefix), "f%05d", i);
        write_lines(file, prefix, NLINES, "w");
    }
    struct rig r;
    rig_start_with(&r, dir, ", harvester_limit: 2", NFILES * NLINES + 100);
    for (int i = 0; i < 200 && r.q.events < (size_t)NFILES * NLINES; i++) {
        rig_spin(&r);
    }
    CHECK_INT(r.q.events, NFILES * NLINES);
    CHECK(rig_metric(&r, "sluice_shipper_files_open") <= 2);
    /* Every line once; files admitted in order of discovery (the directory's
     * readdir order), at most two of them read side by side. */
    static unsigned char seen[NFILES][NLINES];
    static int rank[NFILES];
    memset(seen, 0, sizeof(seen));
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    int nr = 0;
    for (struct dirent *de; d && (de = readdir(d)) != NULL;) {
        int f;
        if (sscanf(de->d_name, "f%05d.log", &f) == 1 && f >= 0 && f < NFILES) {
            rank[f] = nr++;
        }
    }
    if (d) {
        closedir(d);
    }
    CHECK_INT(nr, NFILES);
    size_t dup = 0, out_of_order = 0, total = 0;
    int max_rank = -1;
    for (struct batch *b = r.q.head; b; b = b->next) {
        for (uint32_t i = 0; i < b->n; i++) {
            size_t from = b->ev[i].frame_off;
            size_t to = i + 1 < b->n ? b->ev[i + 1].frame_off : b->frames.len;
            const char *key = "\"message\":\"f";
            const char *m = memmem(b->frames.data + from, to - from, key, strlen(key));
            CHECK(m != NULL);
            if (!m) {
                continue;
            }
            int f = atoi(m + 12), l = atoi(m + 18);
            CHECK(f >= 0 && f < NFILES && l >= 0 && l < NLINES);
            if (f >= 0 && f < NFILES && l >= 0 && l < NLINES) {
                total++;
                dup += seen[f][l]++ > 0;
                out_of_order += rank[f] < max_rank - 2;
                max_rank = rank[f] > max_rank ? rank[f] : max_rank;
            }
        }
    }
    CHECK_INT(total, NFILES * NLINES);
    CHECK_INT(dup, 0);
    CHECK_INT(out_of_order, 0);
    rig_stop(&r);
}

/* close_inactive with a scan_frequency below the tick: the idle file closes,
 * later scans leave it closed while it has not grown, a write reopens it. */
TEST(tail_close_inactive_keeps_an_unchanged_file_closed)
{
    char dir[128], file[192];
    snprintf(dir, sizeof(dir), "%s/tail4", tmpdir);
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(file, sizeof(file), "%s/app.log", dir);
    write_lines(file, "a", 5, "w");
    struct rig r;
    rig_start_with(&r, dir, ", close_inactive: 300ms, scan_frequency: 100ms", 1000);
    rig_spin(&r);
    CHECK_INT(r.q.events, 5);
    CHECK(rig_metric(&r, "sluice_shipper_files_open") == 1);
    bool closed = false;
    for (int i = 0; i < 40 && !closed; i++) {   /* 40 x 50ms */
        rig_spin(&r);
        closed = rig_metric(&r, "sluice_shipper_files_open") == 0;
    }
    CHECK(closed);
    /* ACK what was read, as the aggregator would: the file is then fully shipped. */
    queue_seal(&r.q);
    for (struct batch *b; (b = queue_next_unsent(&r.q)) != NULL;) {
        queue_ack(&r.q, b, b->n);
    }
    CHECK_INT(r.q.events, 0);
    for (int i = 0; i < 10; i++) {   /* 500ms: five scans */
        rig_spin(&r);
        CHECK(rig_metric(&r, "sluice_shipper_files_open") == 0);
    }
    write_lines(file, "b", 1, "a");
    rig_spin(&r);
    rig_spin(&r);
    CHECK_INT(r.q.events, 1);   /* only the new line: the rest was ACKed */
    CHECK(rig_metric(&r, "sluice_shipper_files_open") == 1);
    rig_stop(&r);
}

/* What registry_find answered before the index: the newest entry (last added,
 * not expired) with this dev+ino that is not gone. Computed for every key in one
 * pass over the entries in add order, as the list at head held them. */
#define BIG_N 20000
#define BIG_INOS 12000
#define BIG_DEVS 3

struct big_ref {
    struct registry_entry *e;
    uint64_t dev, ino;
    bool removed;
};

static uint64_t big_rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void big_expect(const struct big_ref *refs, size_t n, struct registry_entry **want)
{
    memset(want, 0, sizeof(*want) * BIG_DEVS * BIG_INOS);
    for (size_t i = n; i-- > 0;) {
        const struct big_ref *x = &refs[i];
        if (!x->removed && !x->e->gone && !want[x->dev * BIG_INOS + x->ino]) {
            want[x->dev * BIG_INOS + x->ino] = x->e;
        }
    }
}

static int big_check_finds(struct registry *r, const struct big_ref *refs, size_t n,
                           struct registry_entry **want)
{
    big_expect(refs, n, want);
    int bad = 0;
    for (uint64_t d = 0; d < BIG_DEVS; d++) {
        for (uint64_t i = 0; i < BIG_INOS; i++) {
            bad += registry_find(r, d, i) != want[d * BIG_INOS + i];
        }
    }
    size_t live = 0;
    for (size_t i = 0; i < n; i++) {
        live += !refs[i].removed;
    }
    bad += registry_count(r) != live;
    return bad;
}

/* The file the list-based encoder wrote: entries newest first, gone ones left
 * out (reverse: oldest first, the order a reload followed by a flush gives). */
static void big_encode(struct sl_buf *b, const struct big_ref *refs, size_t n, bool reverse)
{
    sl_buf_puts(b, "{\"version\":1,\"entries\":[");
    bool first = true;
    for (size_t k = 0; k < n; k++) {
        const struct big_ref *x = &refs[reverse ? k : n - 1 - k];
        if (x->removed || x->e->gone) {
            continue;
        }
        if (!first) {
            sl_buf_putc(b, ',');
        }
        first = false;
        const struct registry_entry *e = x->e;
        sl_buf_printf(b, "\n{\"dev\":%llu,\"ino\":%llu,\"fp\":\"%016llx\",\"fp_len\":%u,"
                         "\"offset\":%llu,\"seen\":%llu,\"path\":\"%s\"}",
                      (unsigned long long)e->dev, (unsigned long long)e->ino,
                      (unsigned long long)e->fp, e->fp_len, (unsigned long long)e->offset,
                      (unsigned long long)e->seen_ms, e->path);
    }
    sl_buf_puts(b, "\n]}\n");
}

static bool big_file_is(const char *path, const struct sl_buf *want)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return false;
    }
    struct sl_buf got;
    sl_buf_init(&got, 0);
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        sl_buf_append(&got, chunk, k);
    }
    fclose(f);
    bool same = got.len == want->len && memcmp(got.data, want->data, got.len) == 0;
    sl_buf_free(&got);
    return same;
}

TEST(registry_index_answers_as_the_linear_scan_did_for_20000_entries)
{
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/regbig", tmpdir);
    struct registry *r;
    CHECK_INT(registry_open(dir, &r), 0);
    struct big_ref *refs = calloc(BIG_N, sizeof(*refs));
    struct registry_entry **want = calloc(BIG_DEVS * BIG_INOS, sizeof(*want));
    uint64_t seed = 0x5eed1234abcdULL;
    size_t n = 0;
    int bad = 0;
    char path[64];
    while (n < BIG_N) {
        uint64_t rnd = big_rng(&seed);
        uint64_t dev = 1 + rnd % 2, ino = (rnd >> 8) % BIG_INOS;
        /* What the tail does: find, and add when there is no live entry or the
         * fingerprint says the inode was reused (add replaces: old one gone). */
        struct registry_entry *e = registry_find(r, dev, ino);
        if (!e || (rnd >> 40) % 3 == 0) {
            snprintf(path, sizeof(path), "/var/log/f%zu.log", n);
            e = registry_add(r, dev, ino, path);
            refs[n++] = (struct big_ref){e, dev, ino, false};
            registry_ack(r, e, 0, (rnd >> 20) % 100000 + 1);
            e->fp = rnd;
            e->fp_len = (uint32_t)((rnd >> 32) % REGISTRY_FP_MAX);
        } else if ((rnd >> 40) % 3 == 1) {
            snprintf(path, sizeof(path), "/var/log/renamed-%zu.log", n);  /* renamed */
            free(e->path);
            e->path = sl_strdup(path);
        }
        struct big_ref *x = &refs[(rnd >> 16) % n];
        if (!x->removed && (rnd >> 50) % 4 == 0) {
            x->e->gone = true;                      /* deleted */
            x->e->refs = (rnd >> 56) % 2;           /* events still in flight */
        }
        if (n % 4000 == 0 && (rnd >> 40) % 3 == 0) {
            /* Expiry frees gone, unreferenced entries (ttl 0: all of them). */
            for (size_t i = 0; i < n; i++) {
                if (!refs[i].removed && refs[i].e->gone && refs[i].e->refs == 0) {
                    refs[i].removed = true;
                }
            }
            registry_expire(r, 0);
            bad += big_check_finds(r, refs, n, want);
            for (size_t i = 0; i < n; i++) {
                if (!refs[i].removed && refs[i].e->gone && (i % 2) == 0) {
                    refs[i].e->refs = 0;    /* settled: the next expiry takes them */
                }
            }
        }
    }
    bad += big_check_finds(r, refs, n, want);
    CHECK_INT(bad, 0);

    /* The file written is the one the list-based encoder wrote. */
    char file[160];
    snprintf(file, sizeof(file), "%s/registry.json", dir);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    big_encode(&b, refs, n, false);
    registry_touch(r);
    CHECK_INT(registry_flush(r), 0);
    CHECK(big_file_is(file, &b));

    /* Read back: every live entry is found with what was written; a reload
     * lists them oldest first, so the next flush writes them in that order. */
    struct sl_buf again;
    sl_buf_init(&again, 0);
    big_encode(&again, refs, n, true);
    big_expect(refs, n, want);
    size_t live = 0;
    for (size_t i = 0; i < BIG_DEVS * BIG_INOS; i++) {
        live += want[i] != NULL;
    }
    struct registry_entry **saved = calloc(BIG_DEVS * BIG_INOS, sizeof(*saved));
    memcpy(saved, want, sizeof(*want) * BIG_DEVS * BIG_INOS);
    char (*paths)[64] = calloc(BIG_DEVS * BIG_INOS, 64);
    uint64_t(*vals)[4] = calloc(BIG_DEVS * BIG_INOS, sizeof(*vals));
    for (size_t i = 0; i < BIG_DEVS * BIG_INOS; i++) {
        if (saved[i]) {
            snprintf(paths[i], 64, "%s", saved[i]->path);
            vals[i][0] = saved[i]->fp;
            vals[i][1] = saved[i]->fp_len;
            vals[i][2] = saved[i]->offset;
            vals[i][3] = saved[i]->seen_ms;
        }
    }
    registry_close(r);
    CHECK_INT(registry_open(dir, &r), 0);
    CHECK_INT(registry_count(r), live);
    bad = 0;
    for (uint64_t d = 0; d < BIG_DEVS; d++) {
        for (uint64_t i = 0; i < BIG_INOS; i++) {
            size_t k = d * BIG_INOS + i;
            struct registry_entry *e = registry_find(r, d, i);
            if (!saved[k]) {
                bad += e != NULL;
                continue;
            }
            bad += !e || e->dev != d || e->ino != i || strcmp(e->path, paths[k]) != 0 ||
                   e->fp != vals[k][0] || e->fp_len != vals[k][1] || e->offset != vals[k][2] ||
                   e->seen_ms != vals[k][3];
        }
    }
    CHECK_INT(bad, 0);
    registry_touch(r);
    CHECK_INT(registry_flush(r), 0);
    CHECK(big_file_is(file, &again));
    registry_close(r);
    sl_buf_free(&again);
    sl_buf_free(&b);
    free(vals);
    free(paths);
    free(saved);
    free(want);
    free(refs);
}

/* The message as sl_json_put_str writes it: what event_encode must produce. */
static void check_message_like_the_library(const struct event_tmpl *t, const char *msg,
                                           size_t len)
{
    struct sl_buf got, want;
    sl_buf_init(&got, 0);
    sl_buf_init(&want, 0);
    CHECK_INT(event_encode(&got, t, "2026-11-27T06:00:00.123Z", "{\"path\":\"p\"}", 12, msg, len, 7, 0), 0);
    sl_buf_puts(&want, "{\"@timestamp\":\"2026-11-27T06:00:00.123Z\",\"@metadata\":{\"beat\":"
                       "\"sluice\",\"type\":\"_doc\",\"version\":\"" SL_VERSION "\"},\"message\":");
    sl_json_put_str(&want, msg, len);
    sl_buf_puts(&want, ",\"log\":{\"file\":{\"path\":\"p\"},\"offset\":7}");
    sl_buf_append(&want, t->tail, t->tail_len);
    if (got.len != want.len || memcmp(got.data, want.data, got.len) != 0) {
        fprintf(stderr, "message of %zu bytes encoded differently:\n  got  %.*s\n  want %.*s\n",
                len, (int)got.len, got.data, (int)want.len, want.data);
        CHECK(!"event_encode differs from sl_json_put_str");
    }
    sl_buf_free(&got);
    sl_buf_free(&want);
}

TEST(event_message_escapes_exactly_as_the_json_library)
{
    struct input_conf in = {0};
    struct event_tmpl t;
    const struct event_agent agent = {.name = "h"};
    event_tmpl_init(&t, &in, &agent);
    static const char *const fixed[] = {
        "", "plain", "\"", "\\", "a\"b\\c", "\x01\x1f\x7f", "tab\there\r\n\b\f",
        "0123456789abcde\"", "0123456789abcdef\"", "0123456789abcdef0\"",
        "caf\xc3\xa9 \xe2\x98\x83", "bad \xff utf8", "\xc3", "lone \xed\xa0\x80 surrogate",
        "0123456789abcdef0123456789abcdef\xc3\xa9",
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        check_message_like_the_library(&t, fixed[i], strlen(fixed[i]));
    }
    /* Every length around the 16-byte steps, with a special byte at every place. */
    static const char specials[] = {'"', '\\', '\n', 0x01, 0x1f, (char)0x80, (char)0xc3, 0x7f};
    char buf[80];
    for (size_t len = 1; len <= sizeof(buf); len++) {
        for (size_t at = 0; at < len; at += 3) {
            memset(buf, 'x', len);
            buf[at] = specials[(len + at) % sizeof(specials)];
            check_message_like_the_library(&t, buf, len);
        }
    }
    /* Random bytes, and lines longer than the inline limit (the library path). */
    uint32_t rnd = 99;
    char *big = malloc(70000);
    for (int round = 0; round < 200; round++) {
        size_t len = round < 190 ? (size_t)(round * 7) % 300 : 65536 + (size_t)round;
        for (size_t i = 0; i < len; i++) {
            rnd = rnd * 1103515245u + 12345u;
            unsigned r = (rnd >> 16) & 0xff;
            big[i] = (char)(round % 2 ? (r % 95) + 0x20 : r);  /* ASCII-only every other round */
        }
        check_message_like_the_library(&t, big, len);
    }
    free(big);

    /* Both flags, in Filebeat's order. */
    struct sl_buf b;
    sl_buf_init(&b, 0);
    CHECK_INT(event_encode(&b, &t, "2026-11-27T06:00:00.123Z", "{\"path\":\"p\"}", 12, "m", 1,
                           UINT64_MAX, EVENT_FLAG_MULTILINE | EVENT_FLAG_TRUNCATED), 0);
    CHECK(strstr(sl_buf_cstr(&b), ",\"offset\":18446744073709551615,\"flags\":[\"multiline\","
                                  "\"truncated\"]},\"input\"") != NULL);
    sl_buf_reset(&b);
    CHECK_INT(event_encode(&b, &t, "2026-11-27T06:00:00.123Z", "{\"path\":\"p\"}", 12, "m", 1, 0,
                           EVENT_FLAG_MULTILINE), 0);
    CHECK(strstr(sl_buf_cstr(&b), ",\"offset\":0,\"flags\":[\"multiline\"]},") != NULL);

    /* A bounded buffer is refused whole, as before. */
    struct sl_buf small;
    sl_buf_init(&small, 64);
    CHECK_INT(event_encode(&small, &t, "2026-11-27T06:00:00.123Z", "{\"path\":\"p\"}", 12, "m", 1, 0, 0),
              SL_ELIMIT);
    sl_buf_free(&small);
    sl_buf_free(&b);
    event_tmpl_free(&t);
}

TEST(output_compression_levels_default_per_codec)
{
    struct shipper_conf c;
    conf_of("inputs: [{paths: [/x]}]\n", &c);
    CHECK_INT(c.output.compression, COMP_ZSTD);
    CHECK_INT(c.output.compression_level, 1);
    shipper_conf_free(&c);
    conf_of("inputs: [{paths: [/x]}]\noutput: {compression: zstd_stream}\n", &c);
    CHECK_INT(c.output.compression, COMP_ZSTD_STREAM);
    CHECK_INT(c.output.compression_level, 1);
    shipper_conf_free(&c);
    conf_of("inputs: [{paths: [/x]}]\noutput: {compression: zlib}\n", &c);
    CHECK_INT(c.output.compression_level, 3);
    shipper_conf_free(&c);
    conf_of("inputs: [{paths: [/x]}]\noutput: {compression: zstd_stream, compression_level: 7}\n",
            &c);
    CHECK_INT(c.output.compression_level, 7);
    shipper_conf_free(&c);
}

/* ---- the sender, against a socket of the test's own ---- */

/* Runs the loop for about ms. */
static void run_loop(struct sl_loop *loop, uint64_t ms)
{
    sl_loop_timer(loop, ms, false, stop_loop, NULL);
    sl_loop_run(loop);
}

/* Accepts the sender's next connection, running the loop meanwhile; -1 after 5 s. */
static int accept_sender(struct sl_loop *loop, int lfd)
{
    for (int i = 0; i < 250; i++) {
        int fd = accept(lfd, NULL, NULL);
        if (fd >= 0) {
            return fd;
        }
        run_loop(loop, 20);
    }
    return -1;
}

/*
 * Reads from fd into the decoder until it has returned want frames (W and J),
 * running the loop meanwhile so that the sender writes; the bytes go to raw.
 */
static int read_frames(struct sl_loop *loop, int fd, struct sl_lj_decoder *d, int want,
                       struct sl_lj_frame *fs, char (*texts)[64], struct sl_buf *raw)
{
    int n = 0;
    for (int i = 0; i < 250 && n < want; i++) {
        run_loop(loop, 20);
        char buf[4096];
        ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r <= 0) {
            continue;
        }
        sl_buf_append(raw, buf, (size_t)r);
        if (sl_lj_decoder_feed(d, buf, (size_t)r) != 0) {
            return -1;
        }
        int rc = 0;
        while (n < want && (rc = sl_lj_decoder_next(d, &fs[n])) == 1) {
            snprintf(texts[n], 64, "%.*s", (int)fs[n].len, fs[n].data ? fs[n].data : "");
            n++;
        }
        if (rc < 0) {
            return rc;
        }
    }
    return n;
}

static void send_ack(int fd, uint32_t seq)
{
    unsigned char a[6] = {'2', 'A'};
    sl_put_u32be(a + 2, seq);
    CHECK_INT(send(fd, a, sizeof(a), MSG_NOSIGNAL), 6);
}

TEST(sender_starts_a_new_zstd_stream_on_every_connection)
{
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/reg-sender", tmpdir);
    struct registry *r;
    CHECK_INT(registry_open(dir, &r), 0);
    struct sl_metrics *m = sl_metrics_new();
    struct queue q;
    queue_init(&q, 100, 3, r, m);
    struct registry_entry *e = registry_add(r, 9, 9, "/s");
    for (int i = 0; i < 6; i++) {
        char msg[32];
        snprintf(msg, sizeof(msg), "{\"i\":%d}", i);
        add_event(&q, e, msg, (uint64_t)(i + 1) * 10);
    }
    queue_seal(&q);

    int lfd = sl_net_listen("127.0.0.1:0", 4);
    CHECK(lfd >= 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", sl_net_local_port(lfd));
    struct host_conf host = {.addr = addr, .weight = 1};
    struct output_conf oc = {.hosts = &host, .nhosts = 1, .loadbalance = true,
                             .compression = COMP_ZSTD_STREAM, .compression_level = 1,
                             .bulk_max_events = 3, .timeout_ms = 30000, .backoff_init_ms = 10,
                             .backoff_max_ms = 20, .pipelining = 2};
    struct sl_loop *loop = sl_loop_new();
    struct sender *s = sender_new(loop, &oc, &q, m);
    struct sl_lj_frame fs[16];
    char texts[16][64];

    /* Connection 1: both windows, the second an S block that continues the first. */
    struct sl_buf raw;
    sl_buf_init(&raw, 0);
    int fd = accept_sender(loop, lfd);
    CHECK(fd >= 0);
    struct sl_lj_decoder *d = sl_lj_decoder_new(NULL);
    CHECK_INT(read_frames(loop, fd, d, 8, fs, texts, &raw), 8);
    CHECK(fs[0].type == SL_LJ_WINDOW && fs[0].value == 3);
    CHECK(fs[4].type == SL_LJ_WINDOW && fs[4].value == 3);
    CHECK(fs[7].type == SL_LJ_JSON && fs[7].compressed && fs[7].value == 3);
    CHECK_STR(texts[7], "{\"i\":5}");
    CHECK(sl_lj_decoder_stream_open(d));
    sl_lj_decoder_free(d);
    /* The second window's block continues the first: alone, it is refused. */
    CHECK(raw.len > 12 && raw.data[7] == SL_LJ_ZSTREAM);
    size_t second = 12 + sl_get_u32be(raw.data + 8);
    CHECK(second < raw.len);
    d = sl_lj_decoder_new(NULL);
    struct sl_lj_frame f;
    CHECK_INT(sl_lj_decoder_feed(d, raw.data + second, raw.len - second), 0);
    CHECK_INT(sl_lj_decoder_next(d, &f), 1);
    CHECK_INT(sl_lj_decoder_next(d, &f), SL_EPROTO);
    sl_lj_decoder_free(d);

    /* ACK 1 of the first window, then drop the connection without more. */
    send_ack(fd, 1);
    run_loop(loop, 50);
    close(fd);
    CHECK_INT(e->offset, 10);

    /* Connection 2: a fresh decoder reads the resent events from the start of
     * a new stream: the tail of window 1 renumbered 1..2, then window 2. */
    fd = accept_sender(loop, lfd);
    CHECK(fd >= 0);
    d = sl_lj_decoder_new(NULL);
    sl_buf_reset(&raw);
    CHECK_INT(read_frames(loop, fd, d, 7, fs, texts, &raw), 7);
    CHECK(fs[0].type == SL_LJ_WINDOW && fs[0].value == 2);
    CHECK(fs[1].value == 1 && fs[2].value == 2);
    CHECK_STR(texts[1], "{\"i\":1}");
    CHECK_STR(texts[2], "{\"i\":2}");
    CHECK(fs[3].type == SL_LJ_WINDOW && fs[3].value == 3);
    CHECK_STR(texts[6], "{\"i\":5}");
    send_ack(fd, 2);
    send_ack(fd, 3);
    for (int i = 0; i < 100 && q.events > 0; i++) {
        run_loop(loop, 20);
    }
    CHECK_INT(q.events, 0);
    CHECK_INT(e->offset, 60);
    CHECK(sender_quiet(s));

    sl_lj_decoder_free(d);
    sl_buf_free(&raw);
    close(fd);
    close(lfd);
    sender_free(s);
    sl_loop_free(loop);
    queue_free(&q);
    sl_metrics_free(m);
    registry_close(r);
}

int main(void)
{
    /* Thousands of files are opened below: their "harvesting" lines would bury the results. */
    sl_log_init("core_test", SL_LOG_WARN, SL_LOG_TEXT);
    make_tmpdir();
    RUN(event_has_the_beats_shape);
    RUN(event_message_escapes_exactly_as_the_json_library);
    RUN(registry_round_trips_offsets_and_fingerprints);
    RUN(corrupt_registry_falls_back_to_the_backup);
    RUN(queue_encodes_frames_and_commits_in_order);
    RUN(queue_frames_decode_with_the_codec);
    RUN(queue_packs_sealed_batches_into_their_exact_window_blocks);
    RUN(queue_skip_lets_the_registry_pass_lines_without_events);
    RUN(queue_oldest_unacked_is_the_first_event_without_an_ack);
    RUN(registry_check_dir_creates_and_probes);
    RUN(output_hosts_need_a_port_1_to_65535);
    RUN(output_conf_equal_compares_every_output_field);
    RUN(output_kafka_is_read_with_filebeats_names);
    RUN(registry_path_is_checked_at_the_option);
    RUN(tail_sees_copytruncate_regrown_past_the_offset);
    RUN(tail_skips_proc_files_and_fifos);
    RUN(tail_makes_no_event_for_an_empty_line_and_the_registry_passes_it);
    RUN(tail_keeps_empty_lines_inside_a_multiline_group);
    RUN(tail_gathers_records_separated_by_empty_lines_with_multiline);
    RUN(tail_registry_passes_lines_exclude_lines_dropped);
    RUN(tail_harvester_limit_reads_every_line_of_many_files);
    RUN(tail_close_inactive_keeps_an_unchanged_file_closed);
    RUN(registry_index_answers_as_the_linear_scan_did_for_20000_entries);
    RUN(output_compression_levels_default_per_codec);
    RUN(sender_starts_a_new_zstd_stream_on_every_connection);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cleanup failed\n");
    }
    return TEST_SUMMARY();
}
