/*
 * lumberjack_fuzz.c - libFuzzer target for the Lumberjack decoder. The input
 * is a byte stream from a hostile client; it is fed in chunk sizes drawn from
 * the input itself, and frames are pulled after every feed until the decoder
 * wants more or fails. Small limits make the size checks reachable.
 *
 * Invariants checked (abort() so the fuzzer reports them): only W and J
 * frames come out, with a valid version; J text is non-empty and within
 * max_frame (D frames: within their JSON bound); nothing from inside a
 * compressed block is a W; errors are sticky and come with a message.
 * The first byte's low bits choose how blocks are read: inflated by the
 * decoder, or kept whole (as the aggregator's I/O thread does) and opened on
 * another decoder (a worker's) or on the same one (a block given back).
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -Ilib/include \
 *            tests/fuzz/lumberjack_fuzz.c lib/lumberjack.c lib/buf.c lib/common.c -lz -lzstd
 * Without libFuzzer (gcc), -DLJ_FUZZ_MAIN adds a main() that runs each file
 * named on the command line once (e.g. to replay a crash).
 */
#include <stdio.h>
#include <stdlib.h>

#include "sluice/lumberjack.h"

#define FUZZ_MAX_FRAME 4096u
#define FUZZ_MAX_INFLATED (64u * 1024)
#define FUZZ_MAX_WINDOW 64u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "lumberjack_fuzz: invariant broken: %s\n", what);
        abort();
    }
}

enum { BLOCKS_INFLATED, BLOCKS_TO_ANOTHER, BLOCKS_BACK };

static const struct sl_lj_limits fuzz_lim = {
    .max_window = FUZZ_MAX_WINDOW,
    .max_frame = FUZZ_MAX_FRAME,
    .max_inflated = FUZZ_MAX_INFLATED,
};

static int drain(struct sl_lj_decoder *d, int mode, bool inner);

/* A block kept whole: opened elsewhere, where only its J frames may come out. */
static int open_kept(struct sl_lj_decoder *d, const struct sl_lj_frame *f, int mode)
{
    check(f->len > 0 && f->len <= FUZZ_MAX_FRAME, "kept block within max_frame");
    check(f->value == f->len, "kept block's value is its length");
    if (mode == BLOCKS_BACK) {
        int rc = sl_lj_decoder_open_block(d, f->type, f->data, f->len);
        check(rc == 0 || rc == SL_EPROTO || rc == SL_ELIMIT || rc == SL_EIO, "open result");
        return rc;
    }
    struct sl_lj_decoder *w = sl_lj_decoder_new(&fuzz_lim);
    int rc = sl_lj_decoder_open_block(w, f->type, f->data, f->len);
    if (rc == 0) {
        (void)drain(w, BLOCKS_INFLATED, true);
    }
    sl_lj_decoder_free(w);
    return 0;  /* a worker's failure closes the connection; the fuzz goes on reading */
}

/* Pulls frames until 0 or an error; returns that result. inner: d reads one block only. */
static int drain(struct sl_lj_decoder *d, int mode, bool inner)
{
    struct sl_lj_frame f;
    int rc;
    sl_lj_decoder_keep_blocks(d, mode != BLOCKS_INFLATED);
    while ((rc = sl_lj_decoder_next(d, &f)) == 1) {
        check(f.version == SL_LJ_V1 || f.version == SL_LJ_V2, "frame version");
        if (f.type == SL_LJ_COMPRESSED || f.type == SL_LJ_ZSTD) {
            check(mode != BLOCKS_INFLATED, "a block kept only when asked");
            rc = open_kept(d, &f, mode);
            if (rc != 0) {
                break;
            }
            continue;
        }
        check(!inner || (f.type == SL_LJ_JSON && f.compressed), "a block holds J frames only");
        if (f.type == SL_LJ_WINDOW) {
            check(f.value <= FUZZ_MAX_WINDOW, "window within max_window");
            check(!f.compressed, "no window inside a compressed block");
        } else {
            check(f.type == SL_LJ_JSON, "frame type is W or J");
            check(f.data != NULL && f.len > 0, "json text present");
            check(f.len <= (size_t)FUZZ_MAX_FRAME * 6 + 16, "json within bound");
            /* Touch every byte so ASan sees any out-of-bounds view. */
            volatile unsigned char sum = 0;
            for (size_t i = 0; i < f.len; i++) {
                sum ^= (unsigned char)f.data[i];
            }
            (void)sum;
        }
    }
    if (rc < 0) {
        check(rc == SL_EPROTO || rc == SL_ELIMIT || rc == SL_EIO, "known error code");
        check(sl_lj_decoder_error(d)[0] != '\0', "error message");
        check(sl_lj_decoder_next(d, &f) == rc, "sticky error");
    } else {
        check(rc == 0, "next returns 1, 0 or an error");
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sl_lj_decoder *d = sl_lj_decoder_new(&fuzz_lim);
    /* The first two bytes seed the chunk sizes and the mode; the rest is the stream. */
    uint32_t rnd = 0x9e3779b9u;
    int mode = BLOCKS_INFLATED;
    if (size >= 2) {
        mode = data[0] % 3;
        rnd ^= (uint32_t)data[0] | (uint32_t)data[1] << 8;
        data += 2;
        size -= 2;
    }
    size_t off = 0;
    int rc = 0;
    while (off < size && rc == 0) {
        rnd = rnd * 1664525u + 1013904223u;
        /* Mostly small chunks (splits in headers), sometimes large ones. */
        size_t c = (rnd >> 28) < 12 ? 1 + ((rnd >> 8) & 15) : 1 + ((rnd >> 8) % 8192);
        c = SL_MIN(c, size - off);
        size_t room = FUZZ_MAX_FRAME + 16 - sl_lj_decoder_buffered(d);
        if (c > room) {
            /* Feeding past the limit must be refused, then stop. */
            check(sl_lj_decoder_feed(d, data + off, c) == SL_ELIMIT, "feed limit");
            break;
        }
        rc = sl_lj_decoder_feed(d, data + off, c);
        check(rc == 0 || rc < 0, "feed result");
        off += c;
        if (rc == 0) {
            rc = drain(d, mode, false);
        }
    }
    sl_lj_decoder_free(d);
    return 0;
}

#ifdef LJ_FUZZ_MAIN
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *fp = fopen(argv[i], "rb");
        if (!fp) {
            perror(argv[i]);
            return 1;
        }
        static uint8_t buf[1 << 20];
        size_t n = fread(buf, 1, sizeof(buf), fp);
        fclose(fp);
        LLVMFuzzerTestOneInput(buf, n);
    }
    return 0;
}
#endif
