/*
 * arena_test.c - the bump allocator (lib/arena.c): alignment, allocations
 * that never overlap, big requests in chunks of their own without wasting the
 * current chunk, growth, what reset keeps (and that a steady workload stops
 * allocating chunks), free, contains, the ASan poisoning of free space and
 * redzones, and the aggregator's use: windows of events parsed into an
 * arena, filtered, written, cleared, and the arena reset.
 */
#include "sluice/arena.h"
#include "sluice/json.h"

#include <stdalign.h>
#include <stdlib.h>

#ifdef SL_ARENA_ASAN
#include <sanitizer/asan_interface.h>
#endif

#include "test.h"

static bool aligned(const void *p, size_t a)
{
    return ((uintptr_t)p & (a - 1)) == 0;
}

TEST(test_init_empty)
{
    struct sl_arena a;
    sl_arena_init(&a, 0);
    CHECK(a.chunks == NULL && a.ptr == NULL);
    CHECK_INT(a.first_size, 64 * 1024);
    CHECK_INT(a.reserved, 0);
    sl_arena_reset(&a);  /* nothing to reset */
    sl_arena_free(&a);
    sl_arena_free(&a);   /* twice is fine: free leaves it initialised */
    CHECK(a.chunks == NULL);
    int x;
    CHECK(!sl_arena_contains(&a, &x));
    sl_arena_init(&a, 1);  /* silly sizes are raised to a minimum */
    CHECK(a.first_size >= 256);
    sl_arena_free(&a);
}

TEST(test_alignment_and_no_overlap)
{
    struct sl_arena a;
    sl_arena_init(&a, 4096);
    enum { N = 2000 };
    static unsigned char *ptrs[N];
    static size_t lens[N];
    unsigned seed = 7;
    for (size_t i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t n = (seed >> 16) % 300;
        size_t al = (size_t)1 << ((seed >> 8) % 5);  /* 1..16 */
        unsigned char *p;
        if (i % 3 == 0) {
            p = sl_arena_alloc(&a, n);
            CHECK(aligned(p, alignof(max_align_t)));
        } else {
            p = sl_arena_alloc_aligned(&a, n, al);
            CHECK(aligned(p, al));
        }
        CHECK(p != NULL);
        if (n) {
            CHECK(sl_arena_contains(&a, p) && sl_arena_contains(&a, p + n - 1));
        }
        memset(p, (int)(i & 0xFF), n);
        ptrs[i] = p;
        lens[i] = n;
    }
    /* Every allocation still holds its own pattern: none overlapped another. */
    for (size_t i = 0; i < N; i++) {
        for (size_t k = 0; k < lens[i]; k++) {
            if (ptrs[i][k] != (unsigned char)(i & 0xFF)) {
                CHECK(!"allocation overwritten");
                i = N;
                break;
            }
        }
    }
    CHECK(a.used > 0 && a.reserved >= a.used);
    int on_stack;
    void *heap = malloc(8);
    CHECK(!sl_arena_contains(&a, &on_stack));
    CHECK(!sl_arena_contains(&a, heap));
    free(heap);
    sl_arena_free(&a);
    CHECK_INT(a.reserved, 0);
    CHECK_INT(a.used, 0);
}

TEST(test_strndup)
{
    struct sl_arena a;
    sl_arena_init(&a, 0);
    char *s = sl_arena_strndup(&a, "hello world", 5);
    CHECK_STR(s, "hello");
    char *e = sl_arena_strndup(&a, NULL, 0);
    CHECK(e && e[0] == '\0');
    char *z = sl_arena_strndup(&a, "a\0b", 3);
    CHECK(memcmp(z, "a\0b\0", 4) == 0);
    CHECK(sl_arena_contains(&a, s) && sl_arena_contains(&a, e) && sl_arena_contains(&a, z));
    void *zero1 = sl_arena_alloc(&a, 0);
    CHECK(zero1 != NULL);
    sl_arena_free(&a);
}

TEST(test_big_requests_own_chunk)
{
    struct sl_arena a;
    sl_arena_init(&a, 4096);
    char *small1 = sl_arena_alloc(&a, 100);
    char *end_before = a.end;
    size_t reserved = a.reserved;
    char *big = sl_arena_alloc(&a, 100000);  /* way over a quarter of a chunk */
    CHECK(big != NULL && aligned(big, alignof(max_align_t)));
    memset(big, 0xAB, 100000);
    CHECK(sl_arena_contains(&a, big) && sl_arena_contains(&a, big + 99999));
    CHECK(a.end == end_before);                /* the current chunk is still current */
    CHECK(a.reserved >= reserved + 100000);
    char *small2 = sl_arena_alloc(&a, 100);
    CHECK(small2 > small1 && small2 < end_before);  /* ...and is still being filled */
    /* A big request before any regular chunk exists. */
    struct sl_arena b;
    sl_arena_init(&b, 4096);
    char *bb = sl_arena_alloc_aligned(&b, 50000, 8);
    memset(bb, 1, 50000);
    char *bs = sl_arena_strndup(&b, "x", 1);
    CHECK_STR(bs, "x");
    CHECK(sl_arena_contains(&b, bb) && sl_arena_contains(&b, bs));
    sl_arena_reset(&b);  /* the big chunk is never the one kept */
    CHECK(!sl_arena_contains(&b, bb));
    sl_arena_free(&b);
    sl_arena_free(&a);
}

TEST(test_growth_and_reset_keeps_largest)
{
    struct sl_arena a;
    sl_arena_init(&a, 1024);
    /* 200 KiB in 100-byte pieces: chunks of 1, 2, 4, ... KiB. */
    for (int i = 0; i < 2048; i++) {
        sl_arena_alloc(&a, 100);
    }
    size_t reserved = a.reserved;
    CHECK(reserved >= 2048 * 100);
    CHECK(a.next_size > 1024);
    char *kept_start;
    sl_arena_reset(&a);
    CHECK_INT(a.used, 0);
    CHECK(a.reserved < reserved);        /* the smaller chunks went back */
    CHECK(a.ptr != NULL && (size_t)(a.end - a.ptr) == a.reserved);
    kept_start = a.ptr;
    char *p = sl_arena_alloc_aligned(&a, 10, 1);
    CHECK(p == kept_start);                /* reuse from the start of the kept chunk */
    sl_arena_reset(&a);
    /* A steady workload converges on one chunk that holds a whole batch. */
    size_t last = 0;
    int stable = 0;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 2048; i++) {
            sl_arena_alloc(&a, 100);
        }
        sl_arena_reset(&a);
        stable = a.reserved == last ? stable + 1 : 0;
        last = a.reserved;
    }
    CHECK(stable >= 10);
    CHECK(last >= 2048 * 100);
    sl_arena_free(&a);
    CHECK(a.chunks == NULL && a.reserved == 0 && a.first_size == 1024);
    /* Usable again after free. */
    CHECK_STR(sl_arena_strndup(&a, "again", 5), "again");
    sl_arena_free(&a);
}

TEST(test_asan_poisoning)
{
#ifdef SL_ARENA_ASAN
    struct sl_arena a;
    sl_arena_init(&a, 4096);
    char *p = sl_arena_alloc_aligned(&a, 10, 1);
    CHECK(!__asan_address_is_poisoned(p));
    CHECK(!__asan_address_is_poisoned(p + 9));
    CHECK(__asan_address_is_poisoned(p + 10));  /* the redzone */
    char *q = sl_arena_alloc_aligned(&a, 10, 1);
    CHECK(q >= p + 16);
    CHECK(__asan_address_is_poisoned(q - 1));
    CHECK(__asan_address_is_poisoned(a.ptr));   /* free space */
    sl_arena_reset(&a);
    CHECK(__asan_address_is_poisoned(p));       /* use after reset is caught */
    sl_arena_free(&a);
#endif
}

/* ---- the aggregator's pattern ---- */

static const char *const k_events[] = {
    "{\"@timestamp\":\"2026-11-27T06:00:00.123Z\",\"@metadata\":{\"beat\":\"sluice\","
    "\"type\":\"_doc\",\"version\":\"0.1.0\"},\"message\":\"127.0.0.1 - - "
    "[27/Nov/2026:06:00:00 +0000] \\\"GET /index.html HTTP/1.1\\\" 200 1234 \\\"-\\\" "
    "\\\"curl/8.4.0\\\"\",\"log\":{\"file\":{\"path\":\"/var/log/app/a.log\"},\"offset\":1234},"
    "\"input\":{\"type\":\"filestream\"},\"host\":{\"name\":\"web-1\"},\"agent\":{\"type\":"
    "\"sluice-shipper\",\"version\":\"0.1.0\",\"name\":\"web-1\"},\"ecs\":{\"version\":\"8.0.0\"}}",
    "{\"message\":\"caf\\u00e9 \\ud83d\\ude00\",\"tags\":[\"a\",\"b\"],\"n\":[1,2.5,-3,true,null]}",
    "{\"tags\":\"single\",\"x\":{\"y\":{\"z\":[[],{},[{}]]}}}",
};

/* What filters do: add, replace, rename, delete, tag. */
static void filter(struct sl_value *ev, unsigned i)
{
    sl_value_set_cstr(sl_field_put(ev, "[event][dataset]"), "app");
    sl_value_set_int(sl_field_put(ev, "[log][offset]"), (int64_t)i);
    struct sl_value tmp = {0};
    struct sl_value *m = sl_obj_getc(ev, "message");
    if (m) {
        sl_value_move(&tmp, m);
        sl_obj_del(ev, "message", 7);
        sl_value_move(sl_obj_putc(ev, "msg"), &tmp);
    }
    sl_field_del(ev, "[@metadata][type]");
    sl_event_add_tag(ev, "seen");
    if (i % 3 == 0) {
        for (int k = 0; k < 10; k++) {  /* beyond the root's spare room */
            char key[16];
            snprintf(key, sizeof(key), "k%d", k);
            sl_value_set_int(sl_obj_putc(ev, key), k);
        }
    }
}

TEST(test_windows_parse_filter_clear_reset)
{
    struct sl_arena a;
    struct sl_buf heap_out, arena_out;
    enum { WIN = 64 };
    struct sl_value hev[WIN], aev[WIN];
    memset(hev, 0, sizeof(hev));
    memset(aev, 0, sizeof(aev));
    sl_arena_init(&a, 1024);  /* small, to cross many chunk boundaries */
    sl_buf_init(&heap_out, 0);
    sl_buf_init(&arena_out, 0);
    for (unsigned w = 0; w < 20; w++) {
        for (unsigned i = 0; i < WIN; i++) {
            const char *t = k_events[(w + i) % SL_ARRAY_LEN(k_events)];
            CHECK_INT(sl_json_parse(t, strlen(t), &hev[i], NULL, NULL, 0), 0);
            CHECK_INT(sl_json_parse_arena(t, strlen(t), &aev[i], &a, NULL, NULL, 0), 0);
            CHECK(aev[i].flags & SL_VF_ARENA);
            CHECK(!(hev[i].flags & SL_VF_ARENA));
        }
        for (unsigned i = 0; i < WIN; i++) {
            filter(&hev[i], w * WIN + i);
            filter(&aev[i], w * WIN + i);
        }
        sl_buf_reset(&heap_out);
        sl_buf_reset(&arena_out);
        for (unsigned i = 0; i < WIN; i++) {
            CHECK_INT(sl_json_write(&heap_out, &hev[i], "@metadata"), 0);
            CHECK_INT(sl_json_write(&arena_out, &aev[i], "@metadata"), 0);
        }
        CHECK(heap_out.len == arena_out.len &&
              memcmp(heap_out.data, arena_out.data, heap_out.len) == 0);
        for (unsigned i = 0; i < WIN; i++) {
            sl_value_clear(&hev[i]);
            sl_value_clear(&aev[i]);  /* frees what the filters added, nothing else */
        }
        sl_arena_reset(&a);
    }
    sl_arena_free(&a);
    sl_buf_free(&heap_out);
    sl_buf_free(&arena_out);
}

int main(void)
{
    RUN(test_init_empty);
    RUN(test_alignment_and_no_overlap);
    RUN(test_strndup);
    RUN(test_big_requests_own_chunk);
    RUN(test_growth_and_reset_keeps_largest);
    RUN(test_asan_poisoning);
    RUN(test_windows_parse_filter_clear_reset);
    return TEST_SUMMARY();
}
