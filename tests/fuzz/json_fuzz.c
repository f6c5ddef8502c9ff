/*
 * json_fuzz.c - libFuzzer target for lib/json.c. Build with
 *   clang -fsanitize=fuzzer,address,undefined -Ilib/include tests/fuzz/json_fuzz.c \
 *         lib/json.c lib/value.c lib/buf.c lib/common.c -lm -o json_fuzz
 *
 * Properties checked, each an abort() when broken:
 *  - whatever parses writes out as valid UTF-8 that parses again, and writing
 *    that second tree gives the very same bytes (the round trip is stable);
 *  - the input escaped as one string is valid UTF-8 JSON that parses back to
 *    a string, equal to the input when the input was valid UTF-8;
 *  - a tight buffer maximum yields SL_ELIMIT and leaves the buffer unchanged.
 */
#include <stdio.h>
#include <stdlib.h>

#include "sluice/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "json_fuzz: %s\n", what);
        abort();
    }
}

static void round_trip(const char *in, size_t len)
{
    struct sl_value v1 = {0}, v2 = {0};
    struct sl_buf w1, w2;
    char err[128];
    sl_buf_init(&w1, 0);
    sl_buf_init(&w2, 0);

    int rc = sl_json_parse(in, len, &v1, NULL, err, sizeof(err));
    check(rc == 0 || rc == SL_EINVAL || rc == SL_ELIMIT, "unexpected parse result");
    if (rc != 0) {
        check(v1.type == SL_V_NULL, "value not null after a failed parse");
        goto out;
    }
    check(sl_json_write(&w1, &v1, NULL) == 0, "write failed");
    check(sl_utf8_valid_prefix(w1.data, w1.len) == w1.len, "output is not valid UTF-8");
    rc = sl_json_parse(w1.data, w1.len, &v2, NULL, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "json_fuzz: own output does not parse: %s\n%.*s\n", err, (int)w1.len,
                w1.data);
        abort();
    }
    check(sl_json_write(&w2, &v2, NULL) == 0, "second write failed");
    check(w1.len == w2.len && memcmp(w1.data, w2.data, w1.len) == 0, "round trip not stable");

    /* A buffer one byte too small fails cleanly and is left as it was. */
    if (w1.len > 0) {
        struct sl_buf small;
        sl_buf_init(&small, w1.len + 1);
        sl_buf_putc(&small, 'X');
        small.max = w1.len;
        check(sl_json_write(&small, &v1, NULL) == SL_ELIMIT, "tight buffer did not fail");
        check(small.len == 1 && small.data[0] == 'X', "failed write changed the buffer");
        sl_buf_free(&small);
    }
out:
    sl_value_clear(&v1);
    sl_value_clear(&v2);
    sl_buf_free(&w1);
    sl_buf_free(&w2);
}

static void escape_string(const char *in, size_t len)
{
    struct sl_buf w;
    struct sl_value v = {0};
    sl_buf_init(&w, 0);
    check(sl_json_put_str(&w, in, len) == 0, "put_str failed");
    check(sl_utf8_valid_prefix(w.data, w.len) == w.len, "escaped string is not valid UTF-8");
    for (size_t i = 0; i < w.len; i++) {
        check((unsigned char)w.data[i] >= 0x20, "raw control byte in escaped string");
    }
    check(sl_json_parse(w.data, w.len, &v, NULL, NULL, 0) == 0, "escaped string does not parse");
    check(v.type == SL_V_STRING, "escaped string parsed to a non-string");
    if (sl_utf8_valid_prefix(in, len) == len) {
        check(v.u.s.len == len && memcmp(v.u.s.ptr, in, len) == 0, "string did not survive");
    }
    sl_value_clear(&v);
    sl_buf_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes: ASan then catches any read past the end. */
    char *in = malloc(size ? size : 1);
    if (size) {
        memcpy(in, data, size);
    }
    round_trip(in, size);
    escape_string(in, size);
    free(in);
    return 0;
}
