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

/* Pulls frames until 0 or an error; returns that result. */
static int drain(struct sl_lj_decoder *d)
{
    struct sl_lj_frame f;
    int rc;
    while ((rc = sl_lj_decoder_next(d, &f)) == 1) {
        check(f.version == SL_LJ_V1 || f.version == SL_LJ_V2, "frame version");
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
    struct sl_lj_limits lim = {
        .max_window = FUZZ_MAX_WINDOW,
        .max_frame = FUZZ_MAX_FRAME,
        .max_inflated = FUZZ_MAX_INFLATED,
    };
    struct sl_lj_decoder *d = sl_lj_decoder_new(&lim);
    /* The first two bytes seed the chunk sizes; the rest is the stream. */
    uint32_t rnd = 0x9e3779b9u;
    if (size >= 2) {
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
            rc = drain(d);
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
