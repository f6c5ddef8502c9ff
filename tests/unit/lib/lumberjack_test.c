/*
 * lumberjack_test.c - the Lumberjack codec: encoders against exact bytes, the
 * decoder against round trips split at every boundary, and every hostile
 * input the protocol notes list (bad bytes, zero and huge lengths, zip bombs
 * for zlib and zstd, corrupt and truncated compressed blocks, nesting), and
 * the 'S' zstd stream that continues from block to block on one connection.
 */
#include "sluice/lumberjack.h"

#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>

#include "test.h"

#define MAX_GOT 4096

struct got {
    char version, type;
    uint32_t value;
    bool compressed;
    char *data;  /* owned copy, NUL-terminated */
    size_t len;
};

struct gots {
    struct got v[MAX_GOT];
    int n;
    int rc;          /* last result of next(): 0 or an error */
    char err[160];
};

static struct gots g1, g2, g3;  /* big: keep them off the stack */

static void gots_free(struct gots *g)
{
    for (int i = 0; i < g->n; i++) {
        free(g->v[i].data);
    }
    memset(g, 0, sizeof(*g));
}

/* Pulls frames until 0 or an error; returns that result. */
static int pull(struct sl_lj_decoder *d, struct gots *g)
{
    struct sl_lj_frame f;
    int rc;
    while ((rc = sl_lj_decoder_next(d, &f)) == 1) {
        if (g->n == MAX_GOT) {
            return -100;
        }
        struct got *x = &g->v[g->n++];
        x->version = f.version;
        x->type = f.type;
        x->value = f.value;
        x->compressed = f.compressed;
        x->len = f.len;
        x->data = malloc(f.len + 1);
        if (f.len) {
            memcpy(x->data, f.data, f.len);
        }
        x->data[f.len] = '\0';
    }
    g->rc = rc;
    if (rc < 0) {
        snprintf(g->err, sizeof(g->err), "%s", sl_lj_decoder_error(d));
    }
    return rc;
}

/*
 * Decodes p[0..n) fed in chunks: chunk > 0 is a fixed size, chunk == 0 means
 * pseudo-random sizes 1..3000. Never feeds past the decoder's feed limit.
 */
static void decode(const struct sl_lj_limits *lim, const void *p, size_t n, size_t chunk,
                   struct gots *g)
{
    gots_free(g);
    struct sl_lj_decoder *d = sl_lj_decoder_new(lim);
    size_t feed_max = (lim && lim->max_frame ? lim->max_frame : 64u << 20) + 16;
    uint32_t rnd = 12345;
    size_t off = 0;
    while (off < n) {
        size_t c = chunk;
        if (c == 0) {
            rnd = rnd * 1103515245u + 12345u;
            c = 1 + (rnd >> 8) % 3000;
        }
        c = SL_MIN(c, n - off);
        c = SL_MIN(c, feed_max - sl_lj_decoder_buffered(d));
        int rc = sl_lj_decoder_feed(d, (const char *)p + off, c);
        if (rc != 0) {
            g->rc = rc;
            snprintf(g->err, sizeof(g->err), "%s", sl_lj_decoder_error(d));
            break;
        }
        off += c;
        if (pull(d, g) < 0) {
            break;
        }
    }
    if (off == n && n == 0) {
        pull(d, g);
    }
    sl_lj_decoder_free(d);
}

static bool gots_equal(const struct gots *a, const struct gots *b)
{
    if (a->n != b->n || a->rc != b->rc) {
        return false;
    }
    for (int i = 0; i < a->n; i++) {
        const struct got *x = &a->v[i], *y = &b->v[i];
        if (x->version != y->version || x->type != y->type || x->value != y->value ||
            x->compressed != y->compressed || x->len != y->len ||
            memcmp(x->data, y->data, x->len) != 0) {
            return false;
        }
    }
    return true;
}

/* Decodes a whole buffer at once and returns the first error (or 0). */
static int decode_err(const struct sl_lj_limits *lim, const struct sl_buf *b, struct gots *g)
{
    decode(lim, b->data, b->len, b->len ? b->len : 1, g);
    return g->rc;
}

struct kv {
    const char *p;
    size_t n;
};

/* A v1 D frame: pairs[0..2*npairs) alternate key, value. */
static void put_d(struct sl_buf *b, char version, uint32_t seq, const struct kv *kv, uint32_t npairs)
{
    sl_buf_putc(b, version);
    sl_buf_putc(b, 'D');
    sl_buf_put_u32be(b, seq);
    sl_buf_put_u32be(b, npairs);
    for (uint32_t i = 0; i < 2 * npairs; i++) {
        sl_buf_put_u32be(b, (uint32_t)kv[i].n);
        sl_buf_append(b, kv[i].p, kv[i].n);
    }
}

static void put_json_str(struct sl_buf *b, uint32_t seq, const char *s)
{
    CHECK_INT(sl_lj_put_json(b, seq, s, strlen(s)), 0);
}

static void put_raw(struct sl_buf *b, const char *s, size_t n)
{
    CHECK_INT(sl_buf_append(b, s, n), 0);
}

#define RAW(b, lit) put_raw((b), (lit), sizeof(lit) - 1)

/* ---- encoders ---- */

TEST(test_encode_exact_bytes)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    CHECK_INT(sl_lj_put_window(&b, '2', 5), 0);
    CHECK_INT(b.len, 6);
    CHECK(memcmp(b.data, "2W\0\0\0\5", 6) == 0);
    sl_buf_reset(&b);
    CHECK_INT(sl_lj_put_json(&b, 7, "{}", 2), 0);
    CHECK_INT(b.len, 12);
    CHECK(memcmp(b.data, "2J\0\0\0\7\0\0\0\2{}", 12) == 0);
    sl_buf_reset(&b);
    CHECK_INT(sl_lj_put_ack(&b, '1', 0x01020304), 0);
    CHECK_INT(b.len, 6);
    CHECK(memcmp(b.data, "1A\1\2\3\4", 6) == 0);
    sl_buf_free(&b);

    /* A bounded output buffer turns into SL_ELIMIT, not an overflow. */
    struct sl_buf small;
    sl_buf_init(&small, 8);
    CHECK_INT(sl_lj_put_json(&small, 1, "{\"a\":1}", 7), SL_ELIMIT);
    CHECK_INT(small.len, 0);
    sl_buf_free(&small);
}

TEST(test_encode_compressed_is_standard)
{
    struct sl_buf frames, out;
    sl_buf_init(&frames, 0);
    sl_buf_init(&out, 0);
    put_json_str(&frames, 1, "{\"message\":\"one\"}");
    put_json_str(&frames, 2, "{\"message\":\"two\"}");

    /* 'C' is RFC 1950 zlib: plain uncompress() must read it. */
    CHECK_INT(sl_lj_put_compressed(&out, SL_LJ_ZLIB, 3, frames.data, frames.len), 0);
    CHECK(out.len > 8);
    CHECK(out.data[0] == '2' && out.data[1] == 'C');
    CHECK_INT(sl_get_u32be(out.data + 2), out.len - 6);
    CHECK_INT((unsigned char)out.data[6], 0x78);
    char plain[256];
    uLongf plen = sizeof(plain);
    CHECK_INT(uncompress((Bytef *)plain, &plen, (const Bytef *)out.data + 6, out.len - 6), Z_OK);
    CHECK_INT(plen, frames.len);
    CHECK(memcmp(plain, frames.data, frames.len) == 0);

    /* 'Z' is one zstd frame with its content size. */
    sl_buf_reset(&out);
    CHECK_INT(sl_lj_put_compressed(&out, SL_LJ_ZSTDC, 0, frames.data, frames.len), 0);
    CHECK(out.data[0] == '2' && out.data[1] == 'Z');
    CHECK_INT(sl_get_u32be(out.data + 2), out.len - 6);
    CHECK_INT(ZSTD_getFrameContentSize(out.data + 6, out.len - 6), frames.len);
    size_t zn = ZSTD_decompress(plain, sizeof(plain), out.data + 6, out.len - 6);
    CHECK_INT(zn, frames.len);
    CHECK(memcmp(plain, frames.data, frames.len) == 0);

    /* Reuse across levels and calls keeps producing valid output. */
    for (int level = 1; level <= 9; level++) {
        sl_buf_reset(&out);
        CHECK_INT(sl_lj_put_compressed(&out, SL_LJ_ZLIB, level, frames.data, frames.len), 0);
        plen = sizeof(plain);
        CHECK_INT(uncompress((Bytef *)plain, &plen, (const Bytef *)out.data + 6, out.len - 6),
                  Z_OK);
        CHECK_INT(plen, frames.len);
    }

    size_t before = out.len;
    CHECK_INT(sl_lj_put_compressed(&out, SL_LJ_NONE, 0, frames.data, frames.len), SL_EINVAL);
    CHECK_INT(sl_lj_put_compressed(&out, SL_LJ_ZLIB, 10, frames.data, frames.len), SL_EINVAL);
    CHECK_INT(sl_lj_put_compressed(&out, SL_LJ_ZSTDC, -1, frames.data, frames.len), SL_EINVAL);
    CHECK_INT(out.len, before);
    sl_buf_free(&frames);
    sl_buf_free(&out);
}

TEST(test_parse_ack)
{
    char v = 0;
    uint32_t seq = 0;
    CHECK_INT(sl_lj_parse_ack("2A\0\0\0\5", 6, &v, &seq), 6);
    CHECK(v == '2');
    CHECK_INT(seq, 5);
    CHECK_INT(sl_lj_parse_ack("1A\xff\xff\xff\xfe" "2A", 8, &v, &seq), 6);
    CHECK(v == '1');
    CHECK_INT(seq, 0xfffffffeu);

    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_lj_put_ack(&b, '2', 0);
    CHECK_INT(sl_lj_parse_ack(b.data, b.len, &v, &seq), 6);
    CHECK_INT(seq, 0);
    sl_buf_free(&b);

    /* Short: need more, whatever the bytes. */
    CHECK_INT(sl_lj_parse_ack("2A\0\0\0", 5, &v, &seq), 0);
    CHECK_INT(sl_lj_parse_ack("", 0, &v, &seq), 0);
    /* Anything but a v1/v2 ACK is a protocol error. */
    CHECK_INT(sl_lj_parse_ack("2W\0\0\0\5", 6, &v, &seq), SL_EPROTO);
    CHECK_INT(sl_lj_parse_ack("3A\0\0\0\5", 6, &v, &seq), SL_EPROTO);
    CHECK_INT(sl_lj_parse_ack("\0\0\0\0\0\0", 6, &v, &seq), SL_EPROTO);
}

/* ---- decoder: round trips ---- */

TEST(test_roundtrip_window_json)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_lj_put_window(&b, '2', 2);
    put_json_str(&b, 1, "{\"message\":\"a\"}");
    put_json_str(&b, 2, "{\"message\":\"b\"}");
    sl_lj_put_window(&b, '2', 0);
    CHECK_INT(decode_err(NULL, &b, &g1), 0);
    CHECK_INT(g1.n, 4);
    CHECK(g1.v[0].version == '2' && g1.v[0].type == 'W');
    CHECK_INT(g1.v[0].value, 2);
    CHECK(g1.v[1].version == '2' && g1.v[1].type == 'J' && !g1.v[1].compressed);
    CHECK_INT(g1.v[1].value, 1);
    CHECK_MEM(g1.v[1].data, g1.v[1].len, "{\"message\":\"a\"}");
    CHECK_INT(g1.v[2].value, 2);
    CHECK_MEM(g1.v[2].data, g1.v[2].len, "{\"message\":\"b\"}");
    CHECK(g1.v[3].type == 'W');
    CHECK_INT(g1.v[3].value, 0);
    gots_free(&g1);
    sl_buf_free(&b);
}

static void roundtrip_compressed(enum sl_lj_compression kind)
{
    struct sl_buf frames, b;
    sl_buf_init(&frames, 0);
    sl_buf_init(&b, 0);
    put_json_str(&frames, 1, "{\"message\":\"first\"}");
    put_json_str(&frames, 2, "{\"message\":\"second\"}");
    put_json_str(&frames, 3, "{\"message\":\"third\"}");
    sl_lj_put_window(&b, '2', 3);
    CHECK_INT(sl_lj_put_compressed(&b, kind, 3, frames.data, frames.len), 0);
    put_json_str(&b, 9, "{\"after\":true}");

    CHECK_INT(decode_err(NULL, &b, &g1), 0);
    CHECK_INT(g1.n, 5);
    CHECK(g1.v[0].type == 'W' && !g1.v[0].compressed);
    CHECK_INT(g1.v[0].value, 3);
    static const char *const want[] = {"{\"message\":\"first\"}", "{\"message\":\"second\"}",
                                       "{\"message\":\"third\"}"};
    for (int i = 0; i < 3; i++) {
        CHECK(g1.v[1 + i].type == 'J' && g1.v[1 + i].version == '2');
        CHECK(g1.v[1 + i].compressed);
        CHECK_INT(g1.v[1 + i].value, i + 1);
        CHECK_MEM(g1.v[1 + i].data, g1.v[1 + i].len, want[i]);
    }
    CHECK(g1.v[4].type == 'J' && !g1.v[4].compressed);
    CHECK_INT(g1.v[4].value, 9);
    CHECK_MEM(g1.v[4].data, g1.v[4].len, "{\"after\":true}");
    gots_free(&g1);
    sl_buf_free(&frames);
    sl_buf_free(&b);
}

TEST(test_roundtrip_zlib)
{
    roundtrip_compressed(SL_LJ_ZLIB);
}

TEST(test_roundtrip_zstd)
{
    roundtrip_compressed(SL_LJ_ZSTDC);
}

TEST(test_v1_data_to_json)
{
    static const struct kv kv[] = {
        {"line", 4}, {"hello \"world\"\\\n", 15},
        {"ctl", 3},  {"\x01\t\x1f", 3},
        {"utf", 3},  {"caf\xc3\xa9 \xff \xed\xa0\x80", 11},
        {"e", 1},    {"", 0},
    };
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_lj_put_window(&b, '1', 1);
    put_d(&b, '1', 42, kv, 4);
    CHECK_INT(decode_err(NULL, &b, &g1), 0);
    CHECK_INT(g1.n, 2);
    CHECK(g1.v[0].version == '1' && g1.v[0].type == 'W');
    CHECK(g1.v[1].version == '1' && g1.v[1].type == SL_LJ_JSON && !g1.v[1].compressed);
    CHECK_INT(g1.v[1].value, 42);
    CHECK_MEM(g1.v[1].data, g1.v[1].len,
              "{\"line\":\"hello \\\"world\\\"\\\\\\n\",\"ctl\":\"\\u0001\\t\\u001f\","
              "\"utf\":\"caf\xc3\xa9 \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\","
              "\"e\":\"\"}");
    gots_free(&g1);

    /* The same frame inside a C block (logstash-forwarder compresses D frames). */
    struct sl_buf inner;
    sl_buf_init(&inner, 0);
    static const struct kv one[] = {{"k", 1}, {"v", 1}};
    put_d(&inner, '1', 1, one, 1);
    put_d(&inner, '1', 2, one, 1);
    sl_buf_reset(&b);
    sl_lj_put_compressed(&b, SL_LJ_ZLIB, 1, inner.data, inner.len);
    CHECK_INT(decode_err(NULL, &b, &g1), 0);
    CHECK_INT(g1.n, 2);
    CHECK(g1.v[1].compressed && g1.v[1].version == '1');
    CHECK_INT(g1.v[1].value, 2);
    CHECK_MEM(g1.v[1].data, g1.v[1].len, "{\"k\":\"v\"}");
    gots_free(&g1);
    sl_buf_free(&inner);
    sl_buf_free(&b);
}

/* One stream of every frame kind, decoded whole, byte by byte and in random chunks. */
static void build_mixed(struct sl_buf *b)
{
    static const struct kv kv[] = {{"message", 7}, {"x\"y", 3}, {"host", 4}, {"h1", 2}};
    struct sl_buf inner;
    sl_buf_init(&inner, 0);
    sl_lj_put_window(b, '2', 7);
    put_json_str(b, 1, "{\"n\":1}");
    put_json_str(b, 2, "{\"n\":2}");
    put_d(b, '1', 3, kv, 2);
    put_json_str(&inner, 4, "{\"n\":4}");
    put_json_str(&inner, 5, "{\"n\":5}");
    put_d(&inner, '1', 6, kv, 2);
    sl_lj_put_compressed(b, SL_LJ_ZLIB, 6, inner.data, inner.len);
    sl_buf_reset(&inner);
    put_json_str(&inner, 7, "{\"n\":7}");
    sl_lj_put_compressed(b, SL_LJ_ZSTDC, 3, inner.data, inner.len);
    sl_lj_put_window(b, '2', 0);
    sl_buf_free(&inner);
}

TEST(test_split_at_every_byte)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    build_mixed(&b);
    decode(NULL, b.data, b.len, b.len, &g1);
    CHECK_INT(g1.rc, 0);
    CHECK_INT(g1.n, 9);
    CHECK_MEM(g1.v[3].data, g1.v[3].len, "{\"message\":\"x\\\"y\",\"host\":\"h1\"}");
    CHECK(g1.v[6].compressed && g1.v[6].version == '1');
    CHECK_INT(g1.v[7].value, 7);
    CHECK(g1.v[7].compressed);

    decode(NULL, b.data, b.len, 1, &g2);
    CHECK(gots_equal(&g1, &g2));
    decode(NULL, b.data, b.len, 0, &g2);
    CHECK(gots_equal(&g1, &g2));
    decode(NULL, b.data, b.len, 7, &g2);
    CHECK(gots_equal(&g1, &g2));
    gots_free(&g1);
    gots_free(&g2);
    sl_buf_free(&b);
}

TEST(test_truncated_then_rest)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    build_mixed(&b);
    decode(NULL, b.data, b.len, b.len, &g1);
    for (size_t k = 0; k <= b.len; k++) {
        gots_free(&g2);
        struct sl_lj_decoder *d = sl_lj_decoder_new(NULL);
        CHECK_INT(sl_lj_decoder_feed(d, b.data, k), 0);
        CHECK_INT(pull(d, &g2), 0);   /* a prefix is never an error */
        CHECK(g2.n < g1.n || k == b.len);
        CHECK_INT(pull(d, &g2), 0);   /* asking again changes nothing */
        CHECK_INT(sl_lj_decoder_feed(d, b.data + k, b.len - k), 0);
        CHECK_INT(pull(d, &g2), 0);
        CHECK_INT(sl_lj_decoder_buffered(d), 0);
        sl_lj_decoder_free(d);
        if (!gots_equal(&g1, &g2)) {
            fprintf(stderr, "prefix %zu: frames differ\n", k);
            CHECK(0);
            break;
        }
    }
    gots_free(&g1);
    gots_free(&g2);
    sl_buf_free(&b);
}

TEST(test_many_frames_random_chunks)
{
    /* Thousands of frames through a small buffer: exercises offset
     * consumption and compaction. */
    struct sl_lj_limits lim = {.max_frame = 4096};
    struct sl_buf b;
    sl_buf_init(&b, 0);
    char ev[4096];
    for (uint32_t i = 1; i <= 3000; i++) {
        size_t n = (size_t)snprintf(ev, sizeof(ev), "{\"seq\":%u,\"pad\":\"%*s\"}", i,
                                    (int)((i * 37) % 3000), "");
        CHECK_INT(sl_lj_put_json(&b, i, ev, n), 0);
    }
    decode(&lim, b.data, b.len, 0, &g3);
    CHECK_INT(g3.rc, 0);
    CHECK_INT(g3.n, 3000);
    for (int i = 0; i < g3.n; i++) {
        int n = snprintf(ev, sizeof(ev), "{\"seq\":%d,\"pad\":\"%*s\"}", i + 1,
                         (int)(((uint32_t)(i + 1) * 37) % 3000), "");
        if (g3.v[i].value != (uint32_t)i + 1 || g3.v[i].len != (size_t)n ||
            memcmp(g3.v[i].data, ev, (size_t)n) != 0) {
            fprintf(stderr, "frame %d differs\n", i);
            CHECK(0);
            break;
        }
    }
    gots_free(&g3);
    sl_buf_free(&b);
}

/* ---- decoder: hostile input ---- */

TEST(test_bad_version_and_type)
{
    struct sl_lj_decoder *d = sl_lj_decoder_new(NULL);
    struct sl_lj_frame f;
    CHECK_INT(sl_lj_decoder_feed(d, "G", 1), 0);  /* "GET / HTTP/1.1" */
    CHECK_INT(sl_lj_decoder_next(d, &f), SL_EPROTO);
    CHECK_STR(sl_lj_decoder_error(d), "invalid protocol version 0x47");
    /* Errors are sticky. */
    CHECK_INT(sl_lj_decoder_next(d, &f), SL_EPROTO);
    CHECK_INT(sl_lj_decoder_feed(d, "2W", 2), SL_EPROTO);
    sl_lj_decoder_free(d);

    d = sl_lj_decoder_new(NULL);
    CHECK_INT(sl_lj_decoder_feed(d, "2", 1), 0);
    CHECK_INT(sl_lj_decoder_next(d, &f), 0);
    CHECK_INT(sl_lj_decoder_feed(d, "X", 1), 0);
    CHECK_INT(sl_lj_decoder_next(d, &f), SL_EPROTO);
    CHECK_STR(sl_lj_decoder_error(d), "unknown frame type 0x58");
    sl_lj_decoder_free(d);

    /* An ACK is not something a client sends. */
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_lj_put_ack(&b, '2', 1);
    CHECK_INT(decode_err(NULL, &b, &g1), SL_EPROTO);
    CHECK_STR(g1.err, "unknown frame type 0x41");
    /* A good frame, then garbage: the good frame is still delivered. */
    sl_buf_reset(&b);
    put_json_str(&b, 1, "{}");
    RAW(&b, "\x00\x01\x02");
    CHECK_INT(decode_err(NULL, &b, &g1), SL_EPROTO);
    CHECK_INT(g1.n, 1);
    CHECK_STR(g1.err, "invalid protocol version 0x00");
    gots_free(&g1);
    sl_buf_free(&b);
}

TEST(test_json_lengths)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    RAW(&b, "2J\0\0\0\1\0\0\0\0");
    CHECK_INT(decode_err(NULL, &b, &g1), SL_EPROTO);
    CHECK_STR(g1.err, "invalid json length 0");

    /* 0xFFFFFFFF is refused from the 10 header bytes alone: nothing is
     * buffered or allocated for it. */
    struct sl_lj_decoder *d = sl_lj_decoder_new(NULL);
    struct sl_lj_frame f;
    CHECK_INT(sl_lj_decoder_feed(d, "2J\0\0\0\1\xff\xff\xff\xff", 10), 0);
    CHECK_INT(sl_lj_decoder_next(d, &f), SL_ELIMIT);
    CHECK(strstr(sl_lj_decoder_error(d), "4294967295") != NULL);
    CHECK_INT(sl_lj_decoder_buffered(d), 10);
    sl_lj_decoder_free(d);

    /* Exactly max_frame is fine, one more is not. */
    struct sl_lj_limits lim = {.max_frame = 100};
    char json[101];
    memset(json, ' ', sizeof(json));
    json[0] = '{';
    json[99] = '}';
    sl_buf_reset(&b);
    sl_lj_put_json(&b, 1, json, 100);
    CHECK_INT(decode_err(&lim, &b, &g1), 0);
    CHECK_INT(g1.n, 1);
    CHECK_INT(g1.v[0].len, 100);
    sl_buf_reset(&b);
    sl_lj_put_json(&b, 1, json, 101);
    CHECK_INT(decode_err(&lim, &b, &g1), SL_ELIMIT);
    CHECK_INT(g1.n, 0);
    gots_free(&g1);
    sl_buf_free(&b);
}

TEST(test_feed_limit)
{
    struct sl_lj_limits lim = {.max_frame = 100};
    struct sl_lj_decoder *d = sl_lj_decoder_new(&lim);
    char junk[200] = {0};
    CHECK_INT(sl_lj_decoder_feed(d, junk, 116), 0);
    CHECK_INT(sl_lj_decoder_buffered(d), 116);
    CHECK_INT(sl_lj_decoder_feed(d, junk, 1), SL_ELIMIT);
    sl_lj_decoder_free(d);
    d = sl_lj_decoder_new(&lim);
    CHECK_INT(sl_lj_decoder_feed(d, junk, 117), SL_ELIMIT);
    sl_lj_decoder_free(d);
}

TEST(test_window_limit)
{
    struct sl_lj_limits lim = {.max_window = 100};
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_lj_put_window(&b, '2', 100);
    CHECK_INT(decode_err(&lim, &b, &g1), 0);
    CHECK_INT(g1.n, 1);
    sl_buf_reset(&b);
    sl_lj_put_window(&b, '2', 101);
    CHECK_INT(decode_err(&lim, &b, &g1), SL_ELIMIT);
    CHECK_STR(g1.err, "window of 101 events exceeds max_window (100)");
    /* The default is 10000. */
    sl_buf_reset(&b);
    sl_lj_put_window(&b, '2', 10000);
    CHECK_INT(decode_err(NULL, &b, &g1), 0);
    sl_buf_reset(&b);
    sl_lj_put_window(&b, '2', 10001);
    CHECK_INT(decode_err(NULL, &b, &g1), SL_ELIMIT);
    gots_free(&g1);
    sl_buf_free(&b);
}

TEST(test_v1_data_limits)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    RAW(&b, "1D\0\0\0\1\0\0\0\0");
    CHECK_INT(decode_err(NULL, &b, &g1), SL_EPROTO);
    CHECK_STR(g1.err, "invalid number of fields 0 in v1 data frame");

    sl_buf_reset(&b);
    RAW(&b, "1D\0\0\0\1\xff\xff\xff\xff");
    CHECK_INT(decode_err(NULL, &b, &g1), SL_ELIMIT);

    /* A huge key length is refused before its bytes are awaited. */
    struct sl_lj_decoder *d = sl_lj_decoder_new(NULL);
    struct sl_lj_frame f;
    CHECK_INT(sl_lj_decoder_feed(d, "1D\0\0\0\1\0\0\0\1\xff\xff\xff\xf0", 14), 0);
    CHECK_INT(sl_lj_decoder_next(d, &f), SL_ELIMIT);
    sl_lj_decoder_free(d);

    /* The pairs together are bounded by max_frame too. */
    struct sl_lj_limits lim = {.max_frame = 64};
    static const struct kv kv[] = {{"key1", 4}, {"0123456789", 10}, {"key2", 4},
                                   {"0123456789", 10}, {"key3", 4}, {"0123456789", 10}};
    sl_buf_reset(&b);
    put_d(&b, '1', 1, kv, 2);  /* 8 + 2*(8+14) = 52 */
    CHECK_INT(decode_err(&lim, &b, &g1), 0);
    CHECK_INT(g1.n, 1);
    sl_buf_reset(&b);
    put_d(&b, '1', 1, kv, 3);  /* 74 */
    CHECK_INT(decode_err(&lim, &b, &g1), SL_ELIMIT);
    CHECK_INT(g1.n, 0);
    /* The boundary: seq and count (8) + 2 * (4 + 4 + 4 + 16) = 64 bytes is
     * exactly max_frame; one more value byte is over. */
    static const struct kv edge[] = {{"key1", 4}, {"0123456789abcdef", 16},
                                     {"key2", 4}, {"0123456789abcdefg", 16}};
    sl_buf_reset(&b);
    put_d(&b, '1', 1, edge, 2);
    CHECK_INT(decode_err(&lim, &b, &g1), 0);
    CHECK_INT(g1.n, 1);
    struct kv over[4];
    memcpy(over, edge, sizeof(over));
    over[3].n = 17;
    sl_buf_reset(&b);
    put_d(&b, '1', 1, over, 2);
    CHECK_INT(decode_err(&lim, &b, &g1), SL_ELIMIT);
    CHECK_INT(g1.n, 0);
    gots_free(&g1);
    sl_buf_free(&b);
}

/* A compressed frame around raw (not necessarily valid) inner bytes. */
static void put_zlib_raw(struct sl_buf *b, const char *p, size_t n)
{
    CHECK_INT(sl_lj_put_compressed(b, SL_LJ_ZLIB, 1, p, n), 0);
}

TEST(test_corrupt_zlib)
{
    struct sl_buf frames, b;
    sl_buf_init(&frames, 0);
    sl_buf_init(&b, 0);
    for (uint32_t i = 1; i <= 20; i++) {
        put_json_str(&frames, i, "{\"message\":\"some text that compresses\"}");
    }
    put_zlib_raw(&b, frames.data, frames.len);
    CHECK_INT(decode_err(NULL, &b, &g1), 0);
    CHECK_INT(g1.n, 20);

    /* A flipped byte in the deflate data (the Adler-32 catches what the
     * decoder does not). */
    b.data[6 + (b.len - 6) / 2] ^= 0x55;
    CHECK_INT(decode_err(NULL, &b, &g1), SL_EPROTO);
    CHECK(strstr(g1.err, "zlib") != NULL);
    CHECK_INT(g1.n, 0);

    /* Raw deflate (no RFC 1950 header) is not zlib. */
    sl_buf_reset(&b);
    RAW(&b, "2C\0\0\0\5\x4b\x4c\x4a\x06\x00");
    CHECK_INT(decode_err(NULL, &b, &g1), SL_EPROTO);

    /* A stream cut short: the frame length says so, the stream does not end. */
    sl_buf_reset(&b);
    put_zlib_raw(&b, frames.data, frames.len);
    b.len -= 4;
    sl_put_u32be(b.data + 2, (uint32_t)(b.len - 6));
    CHECK_INT(decode_err(NULL, &b, &g1), SL_EPROTO);
    CHECK_STR(g1.err, "truncated zlib stream in compressed frame");

    /* Bytes after the end of the zlib stream, inside the frame. */
    sl_buf_reset(&b);
    put_zlib_raw(&b, frames.data, frames.len);
    RAW(&b, "xx");
    sl_put_u32be(b.data + 2, (uint32_t)(b.len - 6));
    CHECK_INT(decode_err(NULL, &b, &g1), SL_EPROTO);
    CHECK_STR(g1.err, "2 trailing bytes after zlib stream in compressed frame");

    /* Zero length. */
    sl_buf_reset(&b);
    RAW(&b, "2C\0\0\0\0");
    CHECK_INT(decode_err(NULL, &b, &g1), SL_EPROTO);

    /* Corrupt zstd likewise. */
    sl_buf_reset(&b);
    CHECK_INT(sl_lj_put_compressed(&b, SL_LJ_ZSTDC, 3, frames.data, frames.len), 0);
    b.data[b.len - 2] ^= 0xff;
    b.data[b.len / 2] ^= 0xff;
    CHECK_INT(decode_err(NULL, &b, &g1), SL_EPROTO);
    CHECK(strstr(g1.err, "zstd") != NULL);
    sl_buf_reset(&b);
    CHECK_INT(sl_lj_put_compressed(&b, SL_LJ_ZSTDC, 3, frames.data, frames.len), 0);
    b.len -= 3;
    sl_put_u32be(b.data + 2, (uint32_t)(b.len - 6));
    CHECK_INT(decode_err(NULL, &b, &g1), SL_EPROTO);

    gots_free(&g1);
    sl_buf_free(&frames);
    sl_buf_free(&b);
}

TEST(test_compressed_ends_mid_frame)
{
    struct sl_buf inner, b;
    sl_buf_init(&inner, 0);
    sl_buf_init(&b, 0);
    put_json_str(&inner, 1, "{\"message\":\"whole\"}");
    put_json_str(&inner, 2, "{\"message\":\"cut\"}");
    inner.len -= 3;
    put_zlib_raw(&b, inner.data, inner.len);
    CHECK_INT(decode_err(NULL, &b, &g1), SL_EPROTO);
    CHECK_INT(g1.n, 1);  /* the whole frame before it is still delivered */
    CHECK_STR(g1.err, "truncated frame inside compressed block");

    /* Cut inside a frame header, and inside a D frame. */
    sl_buf_reset(&b);
    put_zlib_raw(&b, "2J\0\0", 4);
    CHECK_INT(decode_err(NULL, &b, &g1), SL_EPROTO);
    CHECK_STR(g1.err, "truncated frame inside compressed block");
    sl_buf_reset(&inner);
    sl_buf_reset(&b);
    static const struct kv kv[] = {{"k", 1}, {"v", 1}};
    put_d(&inner, '1', 1, kv, 1);
    sl_put_u32be(inner.data + 6, 2);  /* announces 2 pairs, holds 1 */
    put_zlib_raw(&b, inner.data, inner.len);
    RAW(&b, "\0\0\0\1k\0\0\0\1v");  /* the missing pair, outside: not accepted */
    CHECK_INT(decode_err(NULL, &b, &g1), SL_EPROTO);
    CHECK_STR(g1.err, "truncated frame inside compressed block");

    gots_free(&g1);
    sl_buf_free(&inner);
    sl_buf_free(&b);
}

TEST(test_nested_and_window_inside_compressed)
{
    struct sl_buf inner, mid, b;
    sl_buf_init(&inner, 0);
    sl_buf_init(&mid, 0);
    sl_buf_init(&b, 0);
    put_json_str(&inner, 1, "{}");
    CHECK_INT(sl_lj_put_compressed(&mid, SL_LJ_ZLIB, 1, inner.data, inner.len), 0);
    CHECK_INT(sl_lj_put_compressed(&b, SL_LJ_ZLIB, 1, mid.data, mid.len), 0);
    CHECK_INT(decode_err(NULL, &b, &g1), SL_EPROTO);
    CHECK(strstr(g1.err, "nested compressed frame") != NULL);
    CHECK_INT(g1.n, 0);

    sl_buf_reset(&mid);
    sl_buf_reset(&b);
    CHECK_INT(sl_lj_put_compressed(&mid, SL_LJ_ZSTDC, 1, inner.data, inner.len), 0);
    CHECK_INT(sl_lj_put_compressed(&b, SL_LJ_ZSTDC, 1, mid.data, mid.len), 0);
    CHECK_INT(decode_err(NULL, &b, &g1), SL_EPROTO);
    CHECK(strstr(g1.err, "nested compressed frame") != NULL);

    sl_buf_reset(&mid);
    sl_buf_reset(&b);
    sl_lj_put_window(&mid, '2', 1);
    put_json_str(&mid, 1, "{}");
    CHECK_INT(sl_lj_put_compressed(&b, SL_LJ_ZLIB, 1, mid.data, mid.len), 0);
    CHECK_INT(decode_err(NULL, &b, &g1), SL_EPROTO);
    CHECK_STR(g1.err, "window frame inside compressed block");

    /* Garbage inside a well-formed zlib stream. */
    sl_buf_reset(&b);
    put_zlib_raw(&b, "hello", 5);
    CHECK_INT(decode_err(NULL, &b, &g1), SL_EPROTO);
    CHECK_STR(g1.err, "invalid protocol version 0x68");

    /* An empty compressed block holds no frames; decoding goes on. */
    sl_buf_reset(&b);
    put_zlib_raw(&b, "", 0);
    put_json_str(&b, 5, "{}");
    CHECK_INT(decode_err(NULL, &b, &g1), 0);
    CHECK_INT(g1.n, 1);
    CHECK(!g1.v[0].compressed);

    gots_free(&g1);
    sl_buf_free(&inner);
    sl_buf_free(&mid);
    sl_buf_free(&b);
}

#define BOMB_TOTAL (100u << 20)  /* 100 MiB of zeros */
#define BOMB_CHUNK (1u << 20)

/*
 * A legitimate window far larger inflated than max_inflated (Filebeat's 2048
 * events of 64 KiB lines is 128 MiB): every event comes out, whole and in
 * order, while the decoder never holds more than max_inflated inflated bytes.
 * Frames straddle the pieces it inflates. One inner frame larger than
 * max_inflated is the only thing refused.
 */
static void big_window(enum sl_lj_compression kind)
{
    enum { N = 300, LINE = 65 * 1024 };
    struct sl_buf inner, wire;
    sl_buf_init(&inner, 0);
    sl_buf_init(&wire, 0);
    char *json = malloc(LINE + 32);
    for (uint32_t i = 1; i <= N; i++) {
        int h = snprintf(json, 32, "{\"n\":%u,\"m\":\"", i);
        memset(json + h, 'a' + (char)(i % 26), LINE);
        memcpy(json + h + LINE, "\"}", 2);
        CHECK_INT(sl_lj_put_json(&inner, i, json, (size_t)h + LINE + 2), 0);
    }
    CHECK(inner.len > 19u << 20);
    CHECK_INT(sl_lj_put_window(&wire, '2', N), 0);
    CHECK_INT(sl_lj_put_compressed(&wire, kind, 1, inner.data, inner.len), 0);

    struct sl_lj_limits lim = {.max_frame = 2u << 20, .max_inflated = 1u << 20};
    struct sl_lj_decoder *d = sl_lj_decoder_new(&lim);
    CHECK_INT(sl_lj_decoder_feed(d, wire.data, wire.len), 0);
    struct sl_lj_frame f;
    CHECK_INT(sl_lj_decoder_next(d, &f), 1);
    CHECK_INT(f.type, SL_LJ_WINDOW);
    CHECK_INT(f.value, N);
    size_t most = 0;
    uint32_t got = 0;
    int rc;
    while ((rc = sl_lj_decoder_next(d, &f)) == 1) {
        got++;
        most = SL_MAX(most, sl_lj_decoder_buffered(d) - sl_lj_decoder_input(d));
        int h = snprintf(json, 32, "{\"n\":%u,\"m\":\"", got);
        if (f.value != got || f.len != (size_t)h + LINE + 2 || memcmp(f.data, json, (size_t)h) ||
            f.data[h + LINE - 1] != 'a' + (char)(got % 26)) {
            CHECK(!"event out of order or damaged");
            break;
        }
    }
    CHECK_INT(rc, 0);
    CHECK_INT(got, N);
    CHECK(most <= lim.max_inflated);
    sl_lj_decoder_free(d);

    /* One event of 1 MiB + 1 inflated: over max_inflated, refused. */
    sl_buf_reset(&inner);
    sl_buf_reset(&wire);
    char *big = malloc((1u << 20) + 2);
    big[0] = '"';
    memset(big + 1, 'x', 1u << 20);
    big[(1u << 20)] = '"';
    CHECK_INT(sl_lj_put_json(&inner, 1, big, (1u << 20) + 1), 0);
    CHECK_INT(sl_lj_put_window(&wire, '2', 1), 0);
    CHECK_INT(sl_lj_put_compressed(&wire, kind, 1, inner.data, inner.len), 0);
    d = sl_lj_decoder_new(&lim);
    CHECK_INT(sl_lj_decoder_feed(d, wire.data, wire.len), 0);
    CHECK_INT(sl_lj_decoder_next(d, &f), 1);
    CHECK_INT(sl_lj_decoder_next(d, &f), SL_ELIMIT);
    CHECK_STR(sl_lj_decoder_error(d),
              "a frame inside a compressed block exceeds max_inflated (1048576 bytes)");
    sl_lj_decoder_free(d);
    free(big);
    free(json);
    sl_buf_free(&inner);
    sl_buf_free(&wire);
}

TEST(test_big_window_inflates_a_piece_at_a_time)
{
    big_window(SL_LJ_ZLIB);
    big_window(SL_LJ_ZSTDC);
}

TEST(test_zlib_bomb)
{
    char *zeros = calloc(1, BOMB_CHUNK);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_buf_reserve(&b, 6 + (1u << 20));
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    CHECK_INT(deflateInit(&zs, 9), Z_OK);
    zs.next_out = (Bytef *)b.data + 6;
    zs.avail_out = (uInt)(b.cap - 7);
    for (unsigned i = 0; i < BOMB_TOTAL / BOMB_CHUNK; i++) {
        zs.next_in = (Bytef *)zeros;
        zs.avail_in = BOMB_CHUNK;
        int flush = i + 1 == BOMB_TOTAL / BOMB_CHUNK ? Z_FINISH : Z_NO_FLUSH;
        int zr = deflate(&zs, flush);
        CHECK(zr == Z_OK || zr == Z_STREAM_END);
    }
    size_t clen = zs.total_out;
    deflateEnd(&zs);
    CHECK(clen < 200000);
    b.data[0] = '2';
    b.data[1] = 'C';
    sl_put_u32be(b.data + 2, (uint32_t)clen);
    b.len = 6 + clen;

    /* Inflated a piece at a time, the zeros fail the framing at the first piece:
     * a bomb costs one piece of memory and no time. */
    struct sl_lj_limits lim = {.max_frame = 1u << 20, .max_inflated = 1u << 20};
    uint64_t t0 = sl_now_ms();
    CHECK_INT(decode_err(&lim, &b, &g1), SL_EPROTO);
    CHECK(sl_now_ms() - t0 < 2000);
    CHECK_STR(g1.err, "invalid protocol version 0x00");
    gots_free(&g1);
    sl_buf_free(&b);
    free(zeros);
}

/*
 * A Z block whose frame says its size is inflated in one pass; the frames
 * that come out are the same as from the same content in a frame that does
 * not say it (streamed), fed in any pieces. A size the header gets wrong,
 * either way, is a corrupt block, not a short or padded window.
 */
static void fcs_adjust(char *frame, int delta)
{
    unsigned char *u = (unsigned char *)frame;
    unsigned fhd = u[4], flag = fhd >> 6, single = (fhd >> 5) & 1;
    static const unsigned did_size[4] = {0, 1, 2, 4};
    unsigned pos = 5 + !single + did_size[fhd & 3];
    unsigned size = flag == 0 ? 1 : flag == 1 ? 2 : flag == 2 ? 4 : 8;
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++) {
        v |= (uint64_t)u[pos + i] << (8 * i);
    }
    v = (uint64_t)((int64_t)v + delta);
    for (unsigned i = 0; i < size; i++) {
        u[pos + i] = (unsigned char)(v >> (8 * i));
    }
}

TEST(test_zstd_one_pass_same_as_streamed)
{
    struct sl_buf inner, sized, streamed;
    sl_buf_init(&inner, 0);
    sl_buf_init(&sized, 0);
    sl_buf_init(&streamed, 0);
    char json[160];
    for (uint32_t i = 1; i <= 2000; i++) {
        int n = snprintf(json, sizeof(json), "{\"n\":%u,\"message\":\"line %u of the window\"}",
                         i, i * 7919u);
        CHECK_INT(sl_lj_put_json(&inner, i, json, (size_t)n), 0);
    }
    CHECK_INT(sl_lj_put_window(&sized, '2', 2000), 0);
    CHECK_INT(sl_lj_put_compressed(&sized, SL_LJ_ZSTDC, 1, inner.data, inner.len), 0);
    CHECK(ZSTD_getFrameContentSize(sized.data + 12, sized.len - 12) == inner.len);

    ZSTD_CCtx *cc = ZSTD_createCCtx();
    CHECK_INT(sl_lj_put_window(&streamed, '2', 2000), 0);
    sl_buf_reserve(&streamed, 6 + ZSTD_compressBound(inner.len));
    ZSTD_outBuffer out = {streamed.data + streamed.len + 6, ZSTD_compressBound(inner.len), 0};
    ZSTD_inBuffer in = {inner.data, inner.len, 0};
    CHECK_INT(ZSTD_compressStream2(cc, &out, &in, ZSTD_e_continue) > 0 || in.pos == in.size, 1);
    CHECK_INT(ZSTD_compressStream2(cc, &out, &in, ZSTD_e_end), 0);
    ZSTD_freeCCtx(cc);
    CHECK(ZSTD_getFrameContentSize(out.dst, out.pos) == ZSTD_CONTENTSIZE_UNKNOWN);
    streamed.data[streamed.len] = '2';
    streamed.data[streamed.len + 1] = 'Z';
    sl_put_u32be(streamed.data + streamed.len + 2, (uint32_t)out.pos);
    streamed.len += 6 + out.pos;

    static const size_t chunks[] = {0, 1, 7, 4096, 1u << 20};
    for (size_t c = 0; c < SL_ARRAY_LEN(chunks); c++) {
        decode(NULL, sized.data, sized.len, chunks[c], &g1);
        decode(NULL, streamed.data, streamed.len, chunks[c], &g2);
        CHECK_INT(g1.rc, 0);
        CHECK_INT(g1.n, 2001);
        CHECK(gots_equal(&g1, &g2));
    }
    CHECK_INT(g1.v[2000].value, 2000);
    CHECK_STR(g1.v[2000].data, "{\"n\":2000,\"message\":\"line 15838000 of the window\"}");

    for (int delta = -1; delta <= 1; delta += 2) {
        fcs_adjust(sized.data + 12, delta);
        decode(NULL, sized.data, sized.len, 0, &g1);
        CHECK_INT(g1.rc, SL_EPROTO);
        CHECK(strstr(g1.err, "corrupt zstd") != NULL);
        fcs_adjust(sized.data + 12, -delta);
    }
    decode(NULL, sized.data, sized.len, 0, &g1);
    CHECK_INT(g1.rc, 0);
    gots_free(&g1);
    gots_free(&g2);
    sl_buf_free(&inner);
    sl_buf_free(&sized);
    sl_buf_free(&streamed);
}

TEST(test_zstd_bomb)
{
    char *zeros = calloc(1, BOMB_CHUNK + 1);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_buf_reserve(&b, 6 + (1u << 20));
    struct sl_lj_limits lim = {.max_frame = 1u << 20, .max_inflated = 1u << 20};

    /* Streamed, so the frame does not declare its size: the running cap
     * must catch it. The window (1 MiB) is within what the decoder allows. */
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, 1);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 20);
    ZSTD_outBuffer out = {b.data + 6, b.cap - 7, 0};
    for (unsigned i = 0; i < BOMB_TOTAL / BOMB_CHUNK; i++) {
        ZSTD_inBuffer in = {zeros, BOMB_CHUNK, 0};
        bool last = i + 1 == BOMB_TOTAL / BOMB_CHUNK;
        size_t zr;
        do {
            zr = ZSTD_compressStream2(cc, &out, &in, last ? ZSTD_e_end : ZSTD_e_continue);
            CHECK(!ZSTD_isError(zr));
        } while (!ZSTD_isError(zr) && (last ? zr != 0 : in.pos < in.size));
    }
    CHECK(out.pos < 200000);
    CHECK(ZSTD_getFrameContentSize(out.dst, out.pos) == ZSTD_CONTENTSIZE_UNKNOWN);
    b.data[0] = '2';
    b.data[1] = 'Z';
    sl_put_u32be(b.data + 2, (uint32_t)out.pos);
    b.len = 6 + out.pos;
    uint64_t t0 = sl_now_ms();
    CHECK_INT(decode_err(&lim, &b, &g1), SL_EPROTO);
    CHECK(sl_now_ms() - t0 < 2000);
    CHECK_STR(g1.err, "invalid protocol version 0x00");

    /* A frame that declares a large size is read a piece at a time like any other. */
    size_t zn = ZSTD_compress(b.data + 6, b.cap - 7, zeros, BOMB_CHUNK + 1, 1);
    CHECK(!ZSTD_isError(zn));
    sl_put_u32be(b.data + 2, (uint32_t)zn);
    b.len = 6 + zn;
    CHECK_INT(decode_err(&lim, &b, &g1), SL_EPROTO);
    CHECK_STR(g1.err, "invalid protocol version 0x00");

    /* A frame asking for a window far beyond max_inflated (the decoder would
     * allocate it) is a limit too. */
    ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 24);
    ZSTD_outBuffer o2 = {b.data + 6, b.cap - 7, 0};
    ZSTD_inBuffer i2 = {zeros, 1000, 0};
    ZSTD_compressStream2(cc, &o2, &i2, ZSTD_e_continue);
    CHECK_INT(ZSTD_compressStream2(cc, &o2, &i2, ZSTD_e_end), 0);
    sl_put_u32be(b.data + 2, (uint32_t)o2.pos);
    b.len = 6 + o2.pos;
    CHECK_INT(decode_err(&lim, &b, &g1), SL_ELIMIT);
    CHECK(strstr(g1.err, "window") != NULL);

    /* Exactly max_inflated is fine (here: 1 MiB that is not frames, so the
     * error is about content, not size). */
    zn = ZSTD_compress(b.data + 6, b.cap - 7, zeros, BOMB_CHUNK, 1);
    sl_put_u32be(b.data + 2, (uint32_t)zn);
    b.len = 6 + zn;
    CHECK_INT(decode_err(&lim, &b, &g1), SL_EPROTO);
    CHECK_STR(g1.err, "invalid protocol version 0x00");

    ZSTD_freeCCtx(cc);
    gots_free(&g1);
    sl_buf_free(&b);
    free(zeros);
}

/* ---- 'S': one zstd stream per connection ---- */

/* Beats-shaped events: the same keys every time, as the shipper writes them. */
static void stream_window(struct sl_buf *frames, uint32_t first, uint32_t n)
{
    sl_buf_reset(frames);
    for (uint32_t i = 0; i < n; i++) {
        char json[256];
        snprintf(json, sizeof(json), "{\"@timestamp\":\"2026-11-27T06:00:00.000Z\","
                 "\"@metadata\":{\"beat\":\"sluice\",\"type\":\"_doc\"},\"message\":"
                 "\"GET /item?id=%u HTTP/1.1\",\"log\":{\"offset\":%u},\"host\":"
                 "{\"name\":\"web-01\"}}", first + i, (first + i) * 100);
        put_json_str(frames, i + 1, json);
    }
}

/* Appends W + one S block for events first..first+n-1; returns the block's payload size. */
static size_t put_stream_window(struct sl_buf *wire, struct sl_lj_zstream *z, uint32_t first,
                                uint32_t n)
{
    struct sl_buf frames;
    sl_buf_init(&frames, 0);
    stream_window(&frames, first, n);
    CHECK_INT(sl_lj_put_window(wire, '2', n), 0);
    size_t before = wire->len;
    CHECK_INT(sl_lj_put_zstream(wire, z, frames.data, frames.len), 0);
    CHECK(wire->data[before] == '2' && wire->data[before + 1] == 'S');
    CHECK_INT(sl_get_u32be(wire->data + before + 2), wire->len - before - 6);
    sl_buf_free(&frames);
    return wire->len - before - 6;
}

/* The events of windows of n events from first, as decoded into g (W frames included). */
static void check_stream_events(const struct gots *g, int windows, uint32_t n)
{
    CHECK_INT(g->n, windows * (int)(n + 1));
    struct sl_buf want;
    sl_buf_init(&want, 0);
    for (int w = 0; w < windows && g->n == windows * (int)(n + 1); w++) {
        const struct got *x = &g->v[w * (int)(n + 1)];
        CHECK(x->type == 'W' && x->value == n);
        stream_window(&want, (uint32_t)w * n, n);
        size_t off = 0;
        for (uint32_t i = 1; i <= n; i++) {
            x++;
            uint32_t len = sl_get_u32be(want.data + off + 6);
            CHECK(x->type == 'J' && x->compressed && x->value == i);
            CHECK(x->len == len && memcmp(x->data, want.data + off + 10, len) == 0);
            off += 10 + len;
        }
    }
    sl_buf_free(&want);
}

TEST(test_zstream_continues_across_windows)
{
    enum { WINDOWS = 6, N = 3 };
    struct sl_lj_zstream *z = sl_lj_zstream_new(1);
    struct sl_buf wire, frames, alone;
    sl_buf_init(&wire, 0);
    sl_buf_init(&frames, 0);
    sl_buf_init(&alone, 0);
    size_t size[WINDOWS];
    for (int w = 0; w < WINDOWS; w++) {
        size[w] = put_stream_window(&wire, z, (uint32_t)w * N, N);
    }
    /* The history is used: a later window costs far less than the first, and
     * less than the same events in a Z frame of their own. */
    stream_window(&frames, 5 * N, N);
    CHECK_INT(sl_lj_put_compressed(&alone, SL_LJ_ZSTDC, 1, frames.data, frames.len), 0);
    CHECK(size[5] * 2 < size[0]);
    CHECK(size[5] * 2 < alone.len - 6);

    /* One decoder reads them all, however the bytes are split. */
    static const size_t chunks[] = {0, 1, 7, 4096};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        decode(NULL, wire.data, wire.len, chunks[c], &g1);
        CHECK_INT(g1.rc, 0);
        check_stream_events(&g1, WINDOWS, N);
    }

    /* The decoder knows it holds the stream; a block that ends the frame closes it. */
    struct sl_lj_decoder *d = sl_lj_decoder_new(NULL);
    CHECK(!sl_lj_decoder_stream_open(d));
    CHECK_INT(sl_lj_decoder_feed(d, wire.data, wire.len), 0);
    CHECK_INT(pull(d, &g2), 0);
    CHECK(sl_lj_decoder_stream_open(d));
    sl_lj_decoder_free(d);
    gots_free(&g2);
    /* A whole zstd frame sent as an S block is valid too, and leaves nothing open. */
    d = sl_lj_decoder_new(NULL);
    sl_buf_reset(&frames);
    put_json_str(&frames, 1, "{\"a\":1}");
    sl_buf_reset(&alone);
    CHECK_INT(sl_lj_put_window(&alone, '2', 1), 0);
    CHECK_INT(sl_lj_put_compressed(&alone, SL_LJ_ZSTDC, 1, frames.data, frames.len), 0);
    alone.data[7] = 'S';
    CHECK_INT(sl_lj_decoder_feed(d, alone.data, alone.len), 0);
    CHECK_INT(pull(d, &g2), 0);
    CHECK_INT(g2.n, 2);
    CHECK(!sl_lj_decoder_stream_open(d));
    sl_lj_decoder_free(d);

    gots_free(&g1);
    gots_free(&g2);
    sl_buf_free(&wire);
    sl_buf_free(&frames);
    sl_buf_free(&alone);
    sl_lj_zstream_free(z);
}

TEST(test_zstream_fresh_decoder_rejects_a_continuation)
{
    struct sl_lj_zstream *z = sl_lj_zstream_new(1);
    struct sl_buf first, rest;
    sl_buf_init(&first, 0);
    sl_buf_init(&rest, 0);
    put_stream_window(&first, z, 0, 4);
    put_stream_window(&rest, z, 4, 4);

    /* The second window alone: its W comes out, its S block is refused. */
    CHECK_INT(decode_err(NULL, &rest, &g1), SL_EPROTO);
    CHECK_INT(g1.n, 1);
    CHECK(g1.v[0].type == 'W');
    CHECK(strstr(g1.err, "corrupt zstd stream") != NULL);

    /* Fed a byte at a time, the same clean error. */
    decode(NULL, rest.data, rest.len, 1, &g1);
    CHECK_INT(g1.rc, SL_EPROTO);
    CHECK_INT(g1.n, 1);

    /* Errors are sticky, the decoder stays safe to call and to free. */
    struct sl_lj_decoder *d = sl_lj_decoder_new(NULL);
    CHECK_INT(sl_lj_decoder_feed(d, rest.data, rest.len), 0);
    CHECK_INT(pull(d, &g2), SL_EPROTO);
    struct sl_lj_frame f;
    CHECK_INT(sl_lj_decoder_next(d, &f), SL_EPROTO);
    CHECK_INT(sl_lj_decoder_feed(d, first.data, first.len), SL_EPROTO);
    sl_lj_decoder_trim(d);
    CHECK_INT(sl_lj_decoder_next(d, &f), SL_EPROTO);
    sl_lj_decoder_free(d);

    /* A Z block ends the stream on the decoder's side: a continuation after it fails. */
    struct sl_buf wire, frames;
    sl_buf_init(&wire, 0);
    sl_buf_init(&frames, 0);
    put_json_str(&frames, 1, "{\"z\":1}");
    put_raw(&wire, first.data, first.len);
    CHECK_INT(sl_lj_put_window(&wire, '2', 1), 0);
    CHECK_INT(sl_lj_put_compressed(&wire, SL_LJ_ZSTDC, 1, frames.data, frames.len), 0);
    put_raw(&wire, rest.data, rest.len);
    CHECK_INT(decode_err(NULL, &wire, &g1), SL_EPROTO);
    CHECK_INT(g1.n, 5 + 2 + 1);
    CHECK(strstr(g1.err, "corrupt zstd stream") != NULL);

    /* After a reset, the next block starts a frame that a fresh decoder reads:
     * what the shipper does on every new connection, so resends decode. */
    sl_lj_zstream_reset(z);
    sl_buf_reset(&rest);
    put_stream_window(&rest, z, 4, 4);
    put_stream_window(&rest, z, 8, 4);
    decode(NULL, rest.data, rest.len, 0, &g1);
    CHECK_INT(g1.rc, 0);
    CHECK_INT(g1.n, 10);
    CHECK_MEM(g1.v[1].data, 54, "{\"@timestamp\":\"2026-11-27T06:00:00.000Z\",\"@metadata\":{");

    gots_free(&g1);
    gots_free(&g2);
    sl_buf_free(&first);
    sl_buf_free(&rest);
    sl_buf_free(&wire);
    sl_buf_free(&frames);
    sl_lj_zstream_free(z);
}

TEST(test_zstream_limits_hold)
{
    struct sl_buf wire, frames, mid;
    sl_buf_init(&wire, 0);
    sl_buf_init(&frames, 0);
    sl_buf_init(&mid, 0);
    struct sl_lj_zstream *z = sl_lj_zstream_new(1);

    /* The encoder's own bounds. */
    CHECK(sl_lj_zstream_new(-1) == NULL);
    CHECK(sl_lj_zstream_new(ZSTD_maxCLevel() + 1) == NULL);
    CHECK_INT(sl_lj_put_zstream(&wire, z, "", 0), SL_EINVAL);
    struct sl_buf small;
    sl_buf_init(&small, 16);
    stream_window(&frames, 0, 20);
    CHECK_INT(sl_lj_put_zstream(&small, z, frames.data, frames.len), SL_ELIMIT);
    CHECK(small.len <= 16);
    sl_buf_free(&small);
    sl_lj_zstream_reset(z);

    /* Length 0, and a length over max_frame refused from the header. */
    RAW(&wire, "2S\0\0\0\0");
    CHECK_INT(decode_err(NULL, &wire, &g1), SL_EPROTO);
    CHECK_STR(g1.err, "invalid compressed frame length 0");
    sl_buf_reset(&wire);
    RAW(&wire, "2S\xff\xff\xff\xff");
    CHECK_INT(decode_err(NULL, &wire, &g1), SL_ELIMIT);
    CHECK(strstr(g1.err, "max_frame") != NULL);

    /* No nesting: an S block inside a C block, or a C block inside an S block. */
    sl_buf_reset(&wire);
    put_json_str(&frames, 1, "{}");
    CHECK_INT(sl_lj_put_zstream(&mid, z, frames.data, frames.len), 0);
    CHECK_INT(sl_lj_put_compressed(&wire, SL_LJ_ZLIB, 1, mid.data, mid.len), 0);
    CHECK_INT(decode_err(NULL, &wire, &g1), SL_EPROTO);
    CHECK_STR(g1.err, "nested compressed frame 'S' inside compressed block");
    sl_buf_reset(&wire);
    sl_buf_reset(&mid);
    CHECK_INT(sl_lj_put_compressed(&mid, SL_LJ_ZLIB, 1, frames.data, frames.len), 0);
    sl_lj_zstream_reset(z);
    CHECK_INT(sl_lj_put_zstream(&wire, z, mid.data, mid.len), 0);
    CHECK_INT(decode_err(NULL, &wire, &g1), SL_EPROTO);
    CHECK_STR(g1.err, "nested compressed frame 'C' inside compressed block");

    /* An inner frame larger than max_inflated, in a later block of the stream. */
    struct sl_lj_limits lim = {.max_frame = 1u << 20, .max_inflated = 64u << 10};
    sl_buf_reset(&wire);
    sl_lj_zstream_reset(z);
    put_stream_window(&wire, z, 0, 2);
    char *big = malloc(100000);
    memset(big, 'x', 100000);
    big[0] = '"';
    big[99999] = '"';
    sl_buf_reset(&frames);
    CHECK_INT(sl_lj_put_json(&frames, 1, big, 100000), 0);
    CHECK_INT(sl_lj_put_window(&wire, '2', 1), 0);
    CHECK_INT(sl_lj_put_zstream(&wire, z, frames.data, frames.len), 0);
    CHECK_INT(decode_err(&lim, &wire, &g1), SL_ELIMIT);
    CHECK_INT(g1.n, 4);
    CHECK_STR(g1.err, "a frame inside a compressed block exceeds max_inflated (65536 bytes)");
    free(big);

    /* A stream whose frame asks for a window over the decoder's cap (8 MiB):
     * refused before anything is allocated for it, as for Z. */
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 24);
    stream_window(&frames, 0, 2);
    sl_buf_reset(&wire);
    sl_buf_reserve(&wire, 6 + ZSTD_compressBound(frames.len) + 64);
    ZSTD_outBuffer o = {wire.data + 6, wire.cap - 7, 0};
    ZSTD_inBuffer in = {frames.data, frames.len, 0};
    CHECK_INT(ZSTD_compressStream2(cc, &o, &in, ZSTD_e_flush), 0);
    memcpy(wire.data, "2S", 2);
    sl_put_u32be(wire.data + 2, (uint32_t)o.pos);
    wire.len = 6 + o.pos;
    CHECK_INT(decode_err(NULL, &wire, &g1), SL_ELIMIT);
    CHECK(strstr(g1.err, "window") != NULL && strstr(g1.err, "max_inflated") != NULL);
    ZSTD_freeCCtx(cc);

    /* A block cut short: what its whole zstd blocks held ends inside an event,
     * which fails the framing as in a Z block. */
    sl_buf_reset(&wire);
    sl_lj_zstream_reset(z);
    put_stream_window(&wire, z, 0, 2000);  /* over 128 KiB: several zstd blocks */
    wire.len -= 5;
    sl_put_u32be(wire.data + 8, (uint32_t)(wire.len - 12));
    CHECK_INT(decode_err(NULL, &wire, &g1), SL_EPROTO);
    CHECK_STR(g1.err, "truncated frame inside compressed block");
    CHECK(g1.n > 1 && g1.n < 2001);
    /* Cut inside its only zstd block, nothing of it can come out: the window
     * stays incomplete (the aggregator's frame_timeout ends it), no error. */
    sl_buf_reset(&wire);
    sl_lj_zstream_reset(z);
    put_stream_window(&wire, z, 0, 3);
    wire.len -= 5;
    sl_put_u32be(wire.data + 8, (uint32_t)(wire.len - 12));
    CHECK_INT(decode_err(NULL, &wire, &g1), 0);
    CHECK_INT(g1.n, 1);

    gots_free(&g1);
    sl_buf_free(&wire);
    sl_buf_free(&frames);
    sl_buf_free(&mid);
    sl_lj_zstream_free(z);
}

TEST(test_trim_keeps_an_open_stream)
{
    struct sl_lj_zstream *z = sl_lj_zstream_new(1);
    struct sl_buf a, b, c;
    sl_buf_init(&a, 0);
    sl_buf_init(&b, 0);
    sl_buf_init(&c, 0);
    put_stream_window(&a, z, 0, 3);
    put_stream_window(&b, z, 3, 3);
    struct sl_lj_decoder *d = sl_lj_decoder_new(NULL);
    CHECK_INT(sl_lj_decoder_feed(d, a.data, a.len), 0);
    CHECK_INT(pull(d, &g1), 0);
    CHECK_INT(g1.n, 4);
    /* Idle between windows: the buffers go, the stream's window stays. */
    sl_lj_decoder_trim(d);
    CHECK_INT(sl_lj_decoder_buffered(d), 0);
    CHECK(sl_lj_decoder_stream_open(d));
    CHECK_INT(sl_lj_decoder_feed(d, b.data, b.len), 0);
    CHECK_INT(pull(d, &g1), 0);
    CHECK_INT(g1.n, 8);
    check_stream_events(&g1, 2, 3);

    /* Mid-frame, trim does nothing: the half-fed window still decodes. */
    put_stream_window(&c, z, 6, 3);
    CHECK_INT(sl_lj_decoder_feed(d, c.data, c.len / 2), 0);
    CHECK_INT(pull(d, &g1), 0);
    sl_lj_decoder_trim(d);
    CHECK_INT(sl_lj_decoder_feed(d, c.data + c.len / 2, c.len - c.len / 2), 0);
    CHECK_INT(pull(d, &g1), 0);
    check_stream_events(&g1, 3, 3);

    /* Without a stream, trim releases the contexts and the decoder goes on. */
    sl_lj_decoder_free(d);
    d = sl_lj_decoder_new(NULL);
    gots_free(&g1);
    sl_buf_reset(&a);
    struct sl_buf frames;
    sl_buf_init(&frames, 0);
    put_json_str(&frames, 1, "{\"m\":1}");
    CHECK_INT(sl_lj_put_window(&a, '2', 1), 0);
    CHECK_INT(sl_lj_put_compressed(&a, SL_LJ_ZSTDC, 1, frames.data, frames.len), 0);
    CHECK_INT(sl_lj_put_window(&a, '2', 1), 0);
    CHECK_INT(sl_lj_put_compressed(&a, SL_LJ_ZLIB, 1, frames.data, frames.len), 0);
    for (int round = 0; round < 2; round++) {
        CHECK_INT(sl_lj_decoder_feed(d, a.data, a.len), 0);
        CHECK_INT(pull(d, &g1), 0);
        CHECK(!sl_lj_decoder_stream_open(d));
        sl_lj_decoder_trim(d);
    }
    CHECK_INT(g1.n, 8);
    sl_lj_decoder_free(d);

    gots_free(&g1);
    sl_buf_free(&a);
    sl_buf_free(&b);
    sl_buf_free(&c);
    sl_buf_free(&frames);
    sl_lj_zstream_free(z);
}


/*
 * What the aggregator's workers do: the connection's decoder keeps C and Z
 * blocks whole, each is opened on another decoder (or on the same one, when a
 * block goes back to its connection), and the frames come out as a decoder
 * that inflates everything itself returns them, in every chunking.
 */
static void pull_keeping(struct sl_lj_decoder *d, struct gots *g, bool same)
{
    struct sl_lj_frame f;
    int rc;
    sl_lj_decoder_keep_blocks(d, true);
    while ((rc = sl_lj_decoder_next(d, &f)) == 1) {
        if (f.type != SL_LJ_COMPRESSED && f.type != SL_LJ_ZSTD) {
            struct got *x = &g->v[g->n++];
            *x = (struct got){.version = f.version, .type = f.type, .value = f.value,
                              .compressed = f.compressed, .len = f.len};
            x->data = calloc(1, f.len + 1);
            if (f.len) {
                memcpy(x->data, f.data, f.len);
            }
            continue;
        }
        CHECK_INT(f.value, f.len);
        uint64_t most = sl_lj_block_content_size(f.type, f.data, f.len);
        struct sl_lj_decoder *w = same ? d : sl_lj_decoder_new(NULL);
        CHECK_INT(sl_lj_decoder_open_block(w, f.type, f.data, f.len), 0);
        if (!same) {
            size_t before = g->n;
            CHECK_INT(pull(w, g), 0);
            size_t bytes = 0;
            for (size_t i = before; i < (size_t)g->n; i++) {
                bytes += 10 + g->v[i].len;
            }
            /* v1 D frames grow into JSON; for J frames only, the declared size is exact. */
            if (f.type == SL_LJ_ZSTD) {
                CHECK_INT(most, bytes);
            } else {
                CHECK(most == UINT64_MAX);
            }
            sl_lj_decoder_free(w);
        }
    }
    g->rc = rc;
}

TEST(test_kept_blocks_opened_elsewhere_decode_the_same)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    build_mixed(&b);
    decode(NULL, b.data, b.len, b.len, &g1);
    CHECK_INT(g1.rc, 0);
    for (int same = 0; same < 2; same++) {
        for (size_t chunk = 1; chunk <= b.len; chunk += chunk < 40 ? 1 : 97) {
            gots_free(&g2);
            struct sl_lj_decoder *d = sl_lj_decoder_new(NULL);
            for (size_t off = 0; off < b.len; off += chunk) {
                CHECK_INT(sl_lj_decoder_feed(d, b.data + off, SL_MIN(chunk, b.len - off)), 0);
                pull_keeping(d, &g2, same);
                CHECK_INT(g2.rc, 0);
            }
            CHECK(gots_equal(&g1, &g2));
            sl_lj_decoder_free(d);
        }
    }
    gots_free(&g1);
    gots_free(&g2);
    sl_buf_free(&b);
}

TEST(test_open_block_refuses_what_is_not_a_block)
{
    struct sl_buf inner, blk;
    sl_buf_init(&inner, 0);
    sl_buf_init(&blk, 0);
    put_json_str(&inner, 1, "{\"n\":1}");
    put_json_str(&inner, 2, "{\"n\":2}");
    CHECK_INT(sl_lj_put_compressed(&blk, SL_LJ_ZLIB, 6, inner.data, inner.len), 0);
    const char *payload = blk.data + 6;
    size_t plen = blk.len - 6;

    struct sl_lj_decoder *d = sl_lj_decoder_new(NULL);
    CHECK_INT(sl_lj_decoder_open_block(d, SL_LJ_JSON, payload, plen), SL_EINVAL);
    sl_lj_decoder_free(d);
    d = sl_lj_decoder_new(NULL);
    CHECK_INT(sl_lj_decoder_open_block(d, SL_LJ_ZSTREAM, payload, plen), SL_EINVAL);
    sl_lj_decoder_free(d);
    d = sl_lj_decoder_new(NULL);
    CHECK_INT(sl_lj_decoder_open_block(d, SL_LJ_COMPRESSED, payload, 0), SL_EPROTO);
    sl_lj_decoder_free(d);
    struct sl_lj_limits small = {.max_frame = (uint32_t)plen - 1};
    d = sl_lj_decoder_new(&small);
    CHECK_INT(sl_lj_decoder_open_block(d, SL_LJ_COMPRESSED, payload, plen), SL_ELIMIT);
    sl_lj_decoder_free(d);

    /* Inside a block, another cannot be opened: its frames would be lost. */
    d = sl_lj_decoder_new(NULL);
    CHECK_INT(sl_lj_decoder_open_block(d, SL_LJ_COMPRESSED, payload, plen), 0);
    struct sl_lj_frame f;
    CHECK_INT(sl_lj_decoder_next(d, &f), 1);
    CHECK_INT(f.value, 1);
    CHECK_INT(sl_lj_decoder_open_block(d, SL_LJ_COMPRESSED, payload, plen), SL_EINVAL);
    sl_lj_decoder_free(d);

    /* A zlib block handed over as zstd, and a cut one, fail when read. */
    d = sl_lj_decoder_new(NULL);
    CHECK_INT(sl_lj_decoder_open_block(d, SL_LJ_ZSTD, payload, plen), 0);
    CHECK_INT(sl_lj_decoder_next(d, &f), SL_EPROTO);
    sl_lj_decoder_free(d);
    d = sl_lj_decoder_new(NULL);
    CHECK_INT(sl_lj_decoder_open_block(d, SL_LJ_COMPRESSED, payload, plen - 3), 0);
    CHECK_INT(sl_lj_decoder_next(d, &f) < 0, 1);
    sl_lj_decoder_free(d);

    /* S blocks are the connection's: never kept. */
    struct sl_lj_zstream *z = sl_lj_zstream_new(3);
    struct sl_buf wire;
    sl_buf_init(&wire, 0);
    CHECK_INT(sl_lj_put_window(&wire, '2', 2), 0);
    CHECK_INT(sl_lj_put_zstream(&wire, z, inner.data, inner.len), 0);
    d = sl_lj_decoder_new(NULL);
    sl_lj_decoder_keep_blocks(d, true);
    CHECK_INT(sl_lj_decoder_feed(d, wire.data, wire.len), 0);
    gots_free(&g1);
    CHECK_INT(pull(d, &g1), 0);
    CHECK_INT(g1.n, 3);
    CHECK(g1.v[1].type == SL_LJ_JSON && g1.v[2].type == SL_LJ_JSON && g1.v[2].compressed);
    gots_free(&g1);
    sl_lj_decoder_free(d);
    sl_lj_zstream_free(z);
    sl_buf_free(&wire);
    sl_buf_free(&inner);
    sl_buf_free(&blk);
}

int main(void)
{
    RUN(test_encode_exact_bytes);
    RUN(test_encode_compressed_is_standard);
    RUN(test_parse_ack);
    RUN(test_roundtrip_window_json);
    RUN(test_roundtrip_zlib);
    RUN(test_roundtrip_zstd);
    RUN(test_v1_data_to_json);
    RUN(test_split_at_every_byte);
    RUN(test_truncated_then_rest);
    RUN(test_many_frames_random_chunks);
    RUN(test_bad_version_and_type);
    RUN(test_json_lengths);
    RUN(test_feed_limit);
    RUN(test_window_limit);
    RUN(test_v1_data_limits);
    RUN(test_corrupt_zlib);
    RUN(test_compressed_ends_mid_frame);
    RUN(test_nested_and_window_inside_compressed);
    RUN(test_big_window_inflates_a_piece_at_a_time);
    RUN(test_zlib_bomb);
    RUN(test_zstd_bomb);
    RUN(test_zstd_one_pass_same_as_streamed);
    RUN(test_zstream_continues_across_windows);
    RUN(test_zstream_fresh_decoder_rejects_a_continuation);
    RUN(test_zstream_limits_hold);
    RUN(test_trim_keeps_an_open_stream);
    RUN(test_kept_blocks_opened_elsewhere_decode_the_same);
    RUN(test_open_block_refuses_what_is_not_a_block);
    return TEST_SUMMARY();
}
