/*
 * json_test.c - the JSON parser, writer and string escaper (lib/json.c):
 * exact output bytes for every escape and every class of invalid UTF-8, the
 * parser's strictness, numbers at the int64 edges, the depth limit, and a
 * randomized comparison of the fast escaper with a slow reference one.
 * sl_json_parse_arena must agree with sl_json_parse on every input, valid or
 * not (code, message, tree), with the whole tree in the arena.
 */
#include "sluice/json.h"

#include <math.h>
#include <stdlib.h>

#include "test.h"

#define FFFD "\xEF\xBF\xBD"

static struct sl_buf g_out;

/* Escapes n bytes of s into g_out and returns it as a C string (NULL on error). */
static const char *esc(const char *s, size_t n)
{
    sl_buf_reset(&g_out);
    if (sl_json_put_str(&g_out, s, n) != 0) {
        return NULL;
    }
    return sl_buf_cstr(&g_out);
}
#define ESC(lit) esc(lit, sizeof(lit) - 1)

/* Parses exactly n bytes copied to their own allocation, so ASan sees any overread. */
static int parse_n(const char *s, size_t n, struct sl_value *v, unsigned depth, char *err,
                   size_t errlen)
{
    char *copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    struct sl_json_limits lim = {.max_depth = depth};
    int rc = sl_json_parse(copy, n, v, &lim, err, errlen);
    free(copy);
    return rc;
}

static int parse(const char *s, struct sl_value *v)
{
    char err[128];
    return parse_n(s, strlen(s), v, 0, err, sizeof(err));
}

/* Writes v compactly into g_out; returns the text or NULL. */
static const char *write_v(const struct sl_value *v, const char *skip)
{
    sl_buf_reset(&g_out);
    if (sl_json_write(&g_out, v, skip) != 0) {
        return NULL;
    }
    return sl_buf_cstr(&g_out);
}

/* parse(in) then write must give exactly out. */
static const char *rt(const char *in)
{
    struct sl_value v = {0};
    if (parse(in, &v) != 0) {
        return "(parse error)";
    }
    const char *w = write_v(&v, NULL);
    sl_value_clear(&v);
    return w ? w : "(write error)";
}

/* Parse error code and message for in. */
static int perr(const char *in, char *err, size_t errlen)
{
    struct sl_value v = {0};  /* set_int clears first: v must be a valid value */
    sl_value_set_int(&v, 7);  /* must come back null */
    int rc = parse_n(in, strlen(in), &v, 0, err, errlen);
    if (rc != 0 && v.type != SL_V_NULL) {
        return 99;
    }
    sl_value_clear(&v);
    return rc;
}

static int perr_code(const char *in)
{
    char err[128];
    return perr(in, err, sizeof(err));
}

/* ---- escaper: exact bytes ---- */

TEST(test_put_str_plain)
{
    CHECK_STR(ESC("hello"), "\"hello\"");
    CHECK_STR(ESC(""), "\"\"");
    CHECK_STR(esc(NULL, 0), "\"\"");
    CHECK_STR(ESC("a/b\x7f~ "), "\"a/b\x7f~ \"");  /* '/' and DEL stay raw */
    CHECK_STR(ESC("the quick brown fox jumps over the lazy dog 0123456789"),
              "\"the quick brown fox jumps over the lazy dog 0123456789\"");
}

TEST(test_put_str_escapes)
{
    CHECK_STR(ESC("\""), "\"\\\"\"");
    CHECK_STR(ESC("\\"), "\"\\\\\"");
    CHECK_STR(ESC("\n"), "\"\\n\"");
    CHECK_STR(ESC("\r"), "\"\\r\"");
    CHECK_STR(ESC("\t"), "\"\\t\"");
    CHECK_STR(ESC("\b"), "\"\\b\"");
    CHECK_STR(ESC("\f"), "\"\\f\"");
    CHECK_STR(esc("\0", 1), "\"\\u0000\"");
    CHECK_STR(ESC("\x01"), "\"\\u0001\"");
    CHECK_STR(ESC("\x0b"), "\"\\u000b\"");
    CHECK_STR(ESC("\x0e"), "\"\\u000e\"");
    CHECK_STR(ESC("\x1b"), "\"\\u001b\"");
    CHECK_STR(ESC("\x1f"), "\"\\u001f\"");
    CHECK_STR(ESC("say \"hi\"\\n\tend\r\n"), "\"say \\\"hi\\\"\\\\n\\tend\\r\\n\"");
    /* escapes at every position of an 8-byte word */
    CHECK_STR(ESC("abcdefg\"hijklmno"), "\"abcdefg\\\"hijklmno\"");
    CHECK_STR(ESC("abcdefgh\\ijklmno"), "\"abcdefgh\\\\ijklmno\"");
    CHECK_STR(ESC("abcdefghijklmno\x1f"), "\"abcdefghijklmno\\u001f\"");
    CHECK_STR(ESC("\x1f" "abcdefghijklmno"), "\"\\u001fabcdefghijklmno\"");

    /* every byte below 0x20: a short escape for five, \u00xx for the rest */
    for (int c = 0; c < 0x20; c++) {
        char in = (char)c;
        const char *out = esc(&in, 1);
        bool short_form = c == '\b' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
        CHECK(out != NULL);
        if (out) {
            CHECK_INT(strlen(out), short_form ? 4 : 8);
            if (!short_form) {
                char want[16];
                snprintf(want, sizeof(want), "\"\\u00%c%c\"", "01"[c >> 4],
                         "0123456789abcdef"[c & 15]);
                CHECK_STR(out, want);
            }
        }
    }
}

TEST(test_put_str_valid_utf8_raw)
{
    CHECK_STR(ESC("\xC2\x80"), "\"\xC2\x80\"");                   /* U+0080 */
    CHECK_STR(ESC("caf\xC3\xA9"), "\"caf\xC3\xA9\"");             /* é */
    CHECK_STR(ESC("\xDF\xBF"), "\"\xDF\xBF\"");                   /* U+07FF */
    CHECK_STR(ESC("\xE0\xA0\x80"), "\"\xE0\xA0\x80\"");           /* U+0800 */
    CHECK_STR(ESC("\xE2\x82\xAC"), "\"\xE2\x82\xAC\"");           /* € */
    CHECK_STR(ESC("\xED\x9F\xBF"), "\"\xED\x9F\xBF\"");           /* U+D7FF */
    CHECK_STR(ESC("\xEE\x80\x80"), "\"\xEE\x80\x80\"");           /* U+E000 */
    CHECK_STR(ESC("\xEF\xBF\xBF"), "\"\xEF\xBF\xBF\"");           /* U+FFFF */
    CHECK_STR(ESC("\xE2\x80\xA8\xE2\x80\xA9"), "\"\xE2\x80\xA8\xE2\x80\xA9\""); /* U+2028/9 raw */
    CHECK_STR(ESC("\xF0\x90\x80\x80"), "\"\xF0\x90\x80\x80\"");   /* U+10000 */
    CHECK_STR(ESC("\xF0\x9F\x98\x80"), "\"\xF0\x9F\x98\x80\"");   /* 😀 */
    CHECK_STR(ESC("\xF4\x8F\xBF\xBF"), "\"\xF4\x8F\xBF\xBF\"");   /* U+10FFFF */
    CHECK_STR(ESC("\xEF\xBB\xBF" "x"), "\"\xEF\xBB\xBF" "x\"");   /* BOM is a character */
}

TEST(test_put_str_invalid_utf8)
{
    /* lone continuation bytes */
    CHECK_STR(ESC("\x80"), "\"" FFFD "\"");
    CHECK_STR(ESC("a\x80" "b"), "\"a" FFFD "b\"");
    CHECK_STR(ESC("\x80\xBF"), "\"" FFFD FFFD "\"");
    /* overlongs */
    CHECK_STR(ESC("\xC0\x80"), "\"" FFFD FFFD "\"");
    CHECK_STR(ESC("\xC1\xBF"), "\"" FFFD FFFD "\"");
    CHECK_STR(ESC("\xE0\x80\x80"), "\"" FFFD FFFD FFFD "\"");
    CHECK_STR(ESC("\xE0\x9F\xBF"), "\"" FFFD FFFD FFFD "\"");
    CHECK_STR(ESC("\xF0\x80\x80\x80"), "\"" FFFD FFFD FFFD FFFD "\"");
    CHECK_STR(ESC("\xF0\x8F\xBF\xBF"), "\"" FFFD FFFD FFFD FFFD "\"");
    /* UTF-16 surrogates encoded in UTF-8 */
    CHECK_STR(ESC("\xED\xA0\x80"), "\"" FFFD FFFD FFFD "\"");
    CHECK_STR(ESC("\xED\xBF\xBF"), "\"" FFFD FFFD FFFD "\"");
    CHECK_STR(ESC("\xED\xA0\xBD\xED\xB8\x80"), "\"" FFFD FFFD FFFD FFFD FFFD FFFD "\"");
    /* above U+10FFFF and bytes that never occur */
    CHECK_STR(ESC("\xF4\x90\x80\x80"), "\"" FFFD FFFD FFFD FFFD "\"");
    CHECK_STR(ESC("\xF5"), "\"" FFFD "\"");
    CHECK_STR(ESC("\xF5\x80\x80\x80"), "\"" FFFD FFFD FFFD FFFD "\"");
    CHECK_STR(ESC("\xF8\x88\x80\x80\x80"), "\"" FFFD FFFD FFFD FFFD FFFD "\"");
    CHECK_STR(ESC("\xFE\xFF"), "\"" FFFD FFFD "\"");
    /* truncated sequences: the valid prefix is one maximal subpart */
    CHECK_STR(ESC("\xC3"), "\"" FFFD "\"");
    CHECK_STR(ESC("x\xC3"), "\"x" FFFD "\"");
    CHECK_STR(ESC("\xC3x"), "\"" FFFD "x\"");
    CHECK_STR(ESC("\xE2"), "\"" FFFD "\"");
    CHECK_STR(ESC("\xE2\x82"), "\"" FFFD "\"");
    CHECK_STR(ESC("\xE2\x82x"), "\"" FFFD "x\"");
    CHECK_STR(ESC("\xE2\x82\""), "\"" FFFD "\\\"\"");
    CHECK_STR(ESC("\xF0\x9F"), "\"" FFFD "\"");
    CHECK_STR(ESC("\xF0\x9F\x98"), "\"" FFFD "\"");
    CHECK_STR(ESC("\xF0\x9F\x98x"), "\"" FFFD "x\"");
    CHECK_STR(ESC("\xF0\x9F\x98\xF0\x9F\x98\x80"), "\"" FFFD "\xF0\x9F\x98\x80\"");
    CHECK_STR(ESC("\xE2\x82\n"), "\"" FFFD "\\n\"");
    /* Unicode 15, Table 3-8 */
    CHECK_STR(ESC("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
              "\"a" FFFD FFFD FFFD "b" FFFD "c" FFFD FFFD "d\"");
}

TEST(test_put_str_limit)
{
    struct sl_buf b;
    sl_buf_init(&b, 10);
    CHECK_INT(sl_json_put_str(&b, "hello", 5), 0);  /* 7 bytes: fits only if measured exactly */
    CHECK_INT(b.len, 7);
    CHECK_INT(sl_json_put_str(&b, "abcd", 4), SL_ELIMIT);  /* 6 more > 3 */
    CHECK_INT(b.len, 7);                                     /* nothing appended */
    CHECK_INT(sl_json_put_str(&b, "a", 1), 0);                /* exactly to the max */
    CHECK_INT(b.len, 10);
    CHECK_MEM(b.data, b.len, "\"hello\"\"a\"");
    CHECK_INT(sl_json_put_str(&b, "", 0), SL_ELIMIT);
    sl_buf_free(&b);

    sl_buf_init(&b, 8);
    CHECK_INT(sl_json_put_str(&b, "\n\n\n", 3), 0);  /* \n\n\n quoted: 8 */
    CHECK_MEM(b.data, b.len, "\"\\n\\n\\n\"");
    sl_buf_free(&b);

    sl_buf_init(&b, 7);
    CHECK_INT(sl_json_put_str(&b, "\x01", 1), SL_ELIMIT);
    CHECK_INT(b.len, 0);
    sl_buf_free(&b);
}

TEST(test_utf8_valid_prefix)
{
    CHECK_INT(sl_utf8_valid_prefix("", 0), 0);
    CHECK_INT(sl_utf8_valid_prefix("abc", 3), 3);
    CHECK_INT(sl_utf8_valid_prefix("a\xC3\xA9z", 4), 4);
    CHECK_INT(sl_utf8_valid_prefix("ab\xC3", 3), 2);
    CHECK_INT(sl_utf8_valid_prefix("\xF0\x9F\x98\x80!", 5), 5);
    CHECK_INT(sl_utf8_valid_prefix("ok\xED\xA0\x80", 5), 2);
    CHECK_INT(sl_utf8_valid_prefix("\xC0\x80", 2), 0);
    CHECK_INT(sl_utf8_valid_prefix("12345678\x80", 9), 8);
    CHECK_INT(sl_utf8_valid_prefix("a\0b", 3), 3);  /* NUL is valid UTF-8 */
}

/* ---- a slow, independent reference for the escaper ---- */

/* Whether prefix p[0..k) of an n-byte sequence can be completed, with fill bytes, to a valid
 * scalar value. The valid completions form an interval, so trying both ends suffices. */
static bool ref_viable(const unsigned char *p, size_t k, size_t need)
{
    static const unsigned lead_mask[5] = {0, 0, 0x1F, 0x0F, 0x07};
    static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return false;
        }
    }
    for (int f = 0; f < 2; f++) {
        unsigned cp = p[0] & lead_mask[need];
        for (size_t i = 1; i < need; i++) {
            cp = cp << 6 | ((i < k ? p[i] : (f ? 0xBF : 0x80)) & 0x3F);
        }
        if (cp >= min_cp[need] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF)) {
            return true;
        }
    }
    return false;
}

static size_t ref_seq(const unsigned char *s, size_t n, bool *ok)
{
    size_t need = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 :
                  (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    *ok = s[0] < 0x80;
    if (*ok || need == 0) {
        return 1;
    }
    size_t best = 0;
    for (size_t k = 1; k <= need && k <= n; k++) {
        if (ref_viable(s, k, need)) {
            best = k;
        }
    }
    *ok = best == need;
    return best ? best : 1;
}

static void ref_escape(struct sl_buf *b, const unsigned char *s, size_t n, bool quote)
{
    if (quote) {
        sl_buf_putc(b, '"');
    }
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            bool ok;
            size_t k = ref_seq(s + i, n - i, &ok);
            sl_buf_append(b, ok ? (const char *)s + i : FFFD, ok ? k : 3);
            i += k;
            continue;
        }
        if (quote && (c == '"' || c == '\\')) {
            sl_buf_printf(b, "\\%c", c);
        } else if (quote && c < 0x20) {
            const char *sh = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" :
                             c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
            if (sh) {
                sl_buf_puts(b, sh);
            } else {
                sl_buf_printf(b, "\\u%04x", c);
            }
        } else {
            sl_buf_putc(b, (char)c);
        }
        i++;
    }
    if (quote) {
        sl_buf_putc(b, '"');
    }
}

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 32);
}

static size_t random_bytes(unsigned char *s, size_t max)
{
    static const unsigned char pool[] = {
        'a', 'b', ' ', '"', '\\', '\n', 0, 0x1f, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0,
        0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xfe, 0xff};
    size_t n = rnd() % max;
    for (size_t i = 0; i < n; i++) {
        uint32_t r = rnd() % 10;
        if (r < 4) {
            s[i] = (unsigned char)('a' + rnd() % 26);  /* plain runs */
        } else if (r < 8) {
            s[i] = pool[rnd() % sizeof(pool)];
        } else if (r < 9 && i + 4 <= n) {
            memcpy(s + i, "\xF0\x9F\x98\x80", 4);     /* a valid 4-byte sequence */
            i += 3;
        } else {
            s[i] = (unsigned char)rnd();
        }
    }
    return n;
}

TEST(test_put_str_matches_reference)
{
    unsigned char in[400];
    struct sl_buf want, dec;
    sl_buf_init(&want, 0);
    sl_buf_init(&dec, 0);
    int bad = 0;
    for (int iter = 0; iter < 20000 && bad < 5; iter++) {
        size_t n = random_bytes(in, sizeof(in));
        sl_buf_reset(&want);
        ref_escape(&want, in, n, true);
        const char *got = esc((const char *)in, n);
        if (!got || g_out.len != want.len || memcmp(got, want.data, want.len) != 0) {
            fprintf(stderr, "escape mismatch, iteration %d\n", iter);
            bad++;
        }
        /* The valid prefix agrees with the reference. */
        size_t vp = 0;
        while (vp < n) {
            bool ok;
            size_t k = ref_seq(in + vp, n - vp, &ok);
            if (!ok) {
                break;
            }
            vp += k;
        }
        if (sl_utf8_valid_prefix((const char *)in, n) != vp) {
            fprintf(stderr, "valid prefix mismatch, iteration %d\n", iter);
            bad++;
        }
        /* The escaped text parses back to the repaired bytes. */
        sl_buf_reset(&dec);
        ref_escape(&dec, in, n, false);
        struct sl_value v = {0};
        if (parse_n(g_out.data, g_out.len, &v, 0, NULL, 0) != 0 || v.type != SL_V_STRING ||
            v.u.s.len != dec.len || (dec.len && memcmp(v.u.s.ptr, dec.data, dec.len) != 0)) {
            fprintf(stderr, "escaped text does not parse back, iteration %d\n", iter);
            bad++;
        }
        sl_value_clear(&v);
    }
    CHECK_INT(bad, 0);
    sl_buf_free(&want);
    sl_buf_free(&dec);
}

TEST(test_put_str_long_string)
{
    /* Longer than the fast path's bound: measured first, same bytes out. */
    size_t n = 200000;
    unsigned char *in = malloc(n);
    for (size_t i = 0; i < n; i++) {
        in[i] = (unsigned char)(i % 97 == 0 ? '"' : i % 89 == 0 ? 0xC3 : i % 83 == 0 ? '\x01' :
                                'a' + i % 26);
    }
    struct sl_buf want;
    sl_buf_init(&want, 0);
    ref_escape(&want, in, n, true);
    const char *got = esc((const char *)in, n);
    CHECK(got != NULL);
    CHECK_INT(g_out.len, want.len);
    CHECK(got && g_out.len == want.len && memcmp(got, want.data, want.len) == 0);
    /* and with a max that the worst case would exceed but the real size fits */
    struct sl_buf b;
    sl_buf_init(&b, want.len);
    CHECK_INT(sl_json_put_str(&b, (const char *)in, 1000), 0);
    sl_buf_reset(&b);
    CHECK_INT(sl_json_put_str(&b, (const char *)in, n), 0);
    CHECK_INT(b.len, want.len);
    CHECK_INT(sl_json_put_str(&b, "", 0), SL_ELIMIT);
    sl_buf_free(&b);
    sl_buf_free(&want);
    free(in);
}

/* ---- parser ---- */

TEST(test_parse_scalars)
{
    struct sl_value v = {0};
    CHECK_INT(parse("true", &v), 0);
    CHECK(v.type == SL_V_BOOL && v.u.b);
    CHECK_INT(parse(" false ", &v), 0);
    CHECK(v.type == SL_V_BOOL && !v.u.b);
    CHECK_INT(parse("\t\r\n null \n", &v), 0);
    CHECK(v.type == SL_V_NULL);
    CHECK_INT(parse("\"hi\"", &v), 0);
    CHECK(v.type == SL_V_STRING);
    CHECK_MEM(v.u.s.ptr, v.u.s.len, "hi");
    CHECK_INT(v.u.s.ptr[2], 0);  /* NUL-terminated */
    CHECK_INT(parse("\"\"", &v), 0);
    CHECK(v.type == SL_V_STRING && v.u.s.len == 0 && v.u.s.ptr && v.u.s.ptr[0] == 0);
    CHECK_INT(parse("42", &v), 0);
    CHECK(v.type == SL_V_INT && v.u.i == 42);
    sl_value_clear(&v);
}

TEST(test_parse_numbers)
{
    struct sl_value v = {0};
    CHECK_INT(parse("0", &v), 0);
    CHECK(v.type == SL_V_INT && v.u.i == 0);
    CHECK_INT(parse("-1", &v), 0);
    CHECK(v.type == SL_V_INT && v.u.i == -1);
    CHECK_INT(parse("9223372036854775807", &v), 0);
    CHECK(v.type == SL_V_INT && v.u.i == INT64_MAX);
    CHECK_INT(parse("-9223372036854775808", &v), 0);
    CHECK(v.type == SL_V_INT && v.u.i == INT64_MIN);
    CHECK_INT(parse("9223372036854775808", &v), 0);
    CHECK(v.type == SL_V_DOUBLE && v.u.d == 9223372036854775808.0);
    CHECK_INT(parse("-9223372036854775809", &v), 0);
    CHECK(v.type == SL_V_DOUBLE && v.u.d == -9223372036854775808.0);
    CHECK_INT(parse("18446744073709551616", &v), 0);  /* 2^64: would wrap a uint64 */
    CHECK(v.type == SL_V_DOUBLE && v.u.d == 18446744073709551616.0);
    CHECK_INT(parse("99999999999999999999", &v), 0);
    CHECK(v.type == SL_V_DOUBLE && v.u.d == 1e20);
    CHECK_INT(parse("-0", &v), 0);
    CHECK(v.type == SL_V_DOUBLE && v.u.d == 0 && signbit(v.u.d));
    CHECK_INT(parse("-0.0", &v), 0);
    CHECK(v.type == SL_V_DOUBLE && v.u.d == 0 && signbit(v.u.d));
    CHECK_INT(parse("1.5", &v), 0);
    CHECK(v.type == SL_V_DOUBLE && v.u.d == 1.5);
    CHECK_INT(parse("2.0", &v), 0);
    CHECK(v.type == SL_V_DOUBLE && v.u.d == 2.0);
    CHECK_INT(parse("1e2", &v), 0);
    CHECK(v.type == SL_V_DOUBLE && v.u.d == 100.0);
    CHECK_INT(parse("1E+2", &v), 0);
    CHECK(v.type == SL_V_DOUBLE && v.u.d == 100.0);
    CHECK_INT(parse("-25e-2", &v), 0);
    CHECK(v.type == SL_V_DOUBLE && v.u.d == -0.25);
    CHECK_INT(parse("0e0", &v), 0);
    CHECK(v.type == SL_V_DOUBLE && v.u.d == 0);
    CHECK_INT(parse("1.7976931348623157e308", &v), 0);
    CHECK(v.type == SL_V_DOUBLE && v.u.d == 1.7976931348623157e308);
    CHECK_INT(parse("1e400", &v), 0);  /* out of range: infinity, written as null */
    CHECK(v.type == SL_V_DOUBLE && isinf(v.u.d) && v.u.d > 0);
    CHECK_INT(parse("-1e400", &v), 0);
    CHECK(v.type == SL_V_DOUBLE && isinf(v.u.d) && v.u.d < 0);
    CHECK_INT(parse("4.94065645841247e-324", &v), 0);
    CHECK(v.type == SL_V_DOUBLE && v.u.d == 4.9406564584124654e-324);
    /* a very long number goes through the heap copy */
    char big[400];
    memset(big, '1', 300);
    memcpy(big + 300, ".5e-280", 8);
    CHECK_INT(parse(big, &v), 0);
    CHECK(v.type == SL_V_DOUBLE && fabs(v.u.d - 1.1111111111111112e19) < 1e5);
    sl_value_clear(&v);

    const char *bad[] = {"01", "-01", "00", "-", "1.", ".5", "+1", "1e", "1e+", "1.e3", "- 1",
                         "0x10", "Infinity", "-Infinity", "NaN", "1..2", "1e2.5", "--1", "1_000"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        if (perr_code(bad[i]) != SL_EINVAL) {
            fprintf(stderr, "  accepted bad number %s\n", bad[i]);
            CHECK(0);
        }
    }
}

TEST(test_parse_string_escapes)
{
    struct sl_value v = {0};
    CHECK_INT(parse("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", &v), 0);
    CHECK_MEM(v.u.s.ptr, v.u.s.len, "\"\\/\b\f\n\r\t");
    CHECK_INT(parse("\"\\u0041\\u00e9\\u00E9\\u20ac\"", &v), 0);
    CHECK_MEM(v.u.s.ptr, v.u.s.len, "A\xC3\xA9\xC3\xA9\xE2\x82\xAC");
    CHECK_INT(parse("\"\\ud83d\\ude00\"", &v), 0);
    CHECK_MEM(v.u.s.ptr, v.u.s.len, "\xF0\x9F\x98\x80");
    CHECK_INT(parse("\"\\uDBFF\\uDFFF\"", &v), 0);
    CHECK_MEM(v.u.s.ptr, v.u.s.len, "\xF4\x8F\xBF\xBF");
    CHECK_INT(parse("\"\\u007f\\u0080\\u07ff\\u0800\\uffff\"", &v), 0);
    CHECK_MEM(v.u.s.ptr, v.u.s.len, "\x7f\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF");
    CHECK_INT(parse("\"a\\u0000b\"", &v), 0);  /* embedded NUL is kept */
    CHECK_INT(v.u.s.len, 3);
    CHECK(memcmp(v.u.s.ptr, "a\0b", 4) == 0);
    /* lone surrogates become U+FFFD */
    CHECK_INT(parse("\"\\ud800\"", &v), 0);
    CHECK_MEM(v.u.s.ptr, v.u.s.len, FFFD);
    CHECK_INT(parse("\"\\udc00\"", &v), 0);
    CHECK_MEM(v.u.s.ptr, v.u.s.len, FFFD);
    CHECK_INT(parse("\"\\ud800x\"", &v), 0);
    CHECK_MEM(v.u.s.ptr, v.u.s.len, FFFD "x");
    CHECK_INT(parse("\"\\ud800\\u0041\"", &v), 0);
    CHECK_MEM(v.u.s.ptr, v.u.s.len, FFFD "A");
    CHECK_INT(parse("\"\\ud800\\ud800\\udc00\"", &v), 0);
    CHECK_MEM(v.u.s.ptr, v.u.s.len, FFFD "\xF0\x90\x80\x80");
    CHECK_INT(parse("\"\\udc00\\ud800\"", &v), 0);
    CHECK_MEM(v.u.s.ptr, v.u.s.len, FFFD FFFD);
    CHECK_INT(parse("\"\\ud800\\n\"", &v), 0);
    CHECK_MEM(v.u.s.ptr, v.u.s.len, FFFD "\n");
    /* raw bytes that need no escape */
    CHECK_INT(parse("\"caf\xC3\xA9 \x7f /\"", &v), 0);
    CHECK_MEM(v.u.s.ptr, v.u.s.len, "caf\xC3\xA9 \x7f /");
    sl_value_clear(&v);

    const char *bad[] = {"\"\\x\"", "\"\\u12\"", "\"\\u12G4\"", "\"\\U0041\"", "\"\\'\"",
                         "\"\\a\"", "\"\\0\"", "\"\\ \"", "\"abc", "\"abc\\", "\"\\u00",
                         "\"\\", "\"", "\"a\nb\"", "\"\x01\"", "\"\x1f\"", "\"\t\""};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        if (perr_code(bad[i]) != SL_EINVAL) {
            fprintf(stderr, "  accepted bad string %s\n", bad[i]);
            CHECK(0);
        }
    }
    char err[128];
    CHECK_INT(perr("\"ab\x01\"", err, sizeof(err)), SL_EINVAL);
    CHECK_STR(err, "control character in string at offset 3");
    CHECK_INT(perr("[\"a\\qb\"]", err, sizeof(err)), SL_EINVAL);
    CHECK_STR(err, "bad escape at offset 3");
}

TEST(test_parse_invalid_utf8_replaced)
{
    struct sl_value v = {0};
    static const struct { const char *in, *out; } cases[] = {
        {"\"\x80\"", FFFD},
        {"\"a\x80\xBF" "b\"", "a" FFFD FFFD "b"},
        {"\"\xC0\x80\"", FFFD FFFD},
        {"\"\xED\xA0\x80\"", FFFD FFFD FFFD},
        {"\"\xF5\xFF\"", FFFD FFFD},
        {"\"\xF4\x90\x80\x80\"", FFFD FFFD FFFD FFFD},
        {"\"\xC3\"", FFFD},
        {"\"\xE2\x82\"", FFFD},
        {"\"\xF0\x9F\x98\"", FFFD},
        {"\"\xF0\x9F\x98\\n\"", FFFD "\n"},
        {"\"\xE2\x82\xAC\xE2\x82\"", "\xE2\x82\xAC" FFFD},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        CHECK_INT(parse(cases[i].in, &v), 0);
        CHECK(v.type == SL_V_STRING);
        CHECK_MEM(v.u.s.ptr, v.u.s.len, cases[i].out);
    }
    /* in keys too */
    CHECK_INT(parse("{\"k\xFF\":1}", &v), 0);
    CHECK(sl_obj_getc(&v, "k" FFFD) != NULL);
    sl_value_clear(&v);
}

TEST(test_parse_structure_errors)
{
    const char *bad[] = {"", "   ", "[", "{", "]", "}", "[1,]", "[,1]", "[1 2]", "{\"a\":1,}",
                         "{,}", "{\"a\"}", "{\"a\" 1}", "{\"a\":}", "{1:2}", "{a:1}", "['a']",
                         "[1]]", "{}x", "1 2", "truex", "tru", "nul", "True", "NULL", "[true,",
                         "{\"a\":1", ("\xEF\xBB\xBF" "1"), "\v1", "\f1", "/*c*/1"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        if (perr_code(bad[i]) != SL_EINVAL) {
            fprintf(stderr, "  accepted bad document #%zu '%s'\n", i, bad[i]);
            CHECK(0);
        }
    }
    /* an explicit NUL after a value is trailing garbage */
    struct sl_value v = {0};
    CHECK_INT(parse_n("1\0", 2, &v, 0, NULL, 0), SL_EINVAL);
    /* only len bytes are read */
    CHECK_INT(parse_n("123", 2, &v, 0, NULL, 0), 0);
    CHECK(v.type == SL_V_INT && v.u.i == 12);
    CHECK_INT(parse_n("\"abc\"", 4, &v, 0, NULL, 0), SL_EINVAL);
    CHECK_INT(parse_n("true", 3, &v, 0, NULL, 0), SL_EINVAL);
    CHECK_INT(sl_json_parse(NULL, 0, &v, NULL, NULL, 0), SL_EINVAL);
    sl_value_clear(&v);
}

TEST(test_parse_error_messages)
{
    char err[128];
    CHECK_INT(perr("[1,2,x]", err, sizeof(err)), SL_EINVAL);
    CHECK_STR(err, "unexpected character at offset 5");
    CHECK_INT(perr("01", err, sizeof(err)), SL_EINVAL);
    CHECK_STR(err, "leading zero in number at offset 0");
    CHECK_INT(perr("1 2", err, sizeof(err)), SL_EINVAL);
    CHECK_STR(err, "trailing garbage at offset 2");
    CHECK_INT(perr("{\"a\" 1}", err, sizeof(err)), SL_EINVAL);
    CHECK_STR(err, "expected ':' at offset 5");
    CHECK_INT(perr("[1,2", err, sizeof(err)), SL_EINVAL);
    CHECK_STR(err, "expected ',' or ']' at offset 4");
    CHECK_INT(perr("", err, sizeof(err)), SL_EINVAL);
    CHECK_STR(err, "unexpected end of input at offset 0");
    CHECK_INT(perr("[[[", err, 8), SL_EINVAL);  /* truncated to fit */
    CHECK_STR(err, "unexpec");
    CHECK_INT(perr("[1,2,x]", NULL, 0), SL_EINVAL);
}

static char *nested(unsigned n, const char *open, const char *mid, const char *close)
{
    size_t lo = strlen(open), lc = strlen(close), lm = strlen(mid);
    char *s = malloc(n * (lo + lc) + lm + 1), *p = s;
    for (unsigned i = 0; i < n; i++, p += lo) {
        memcpy(p, open, lo);
    }
    memcpy(p, mid, lm);
    p += lm;
    for (unsigned i = 0; i < n; i++, p += lc) {
        memcpy(p, close, lc);
    }
    *p = 0;
    return s;
}

TEST(test_parse_depth_limit)
{
    struct sl_value v = {0};
    char err[128];
    char *s = nested(64, "[", "1", "]");
    CHECK_INT(parse_n(s, strlen(s), &v, 0, err, sizeof(err)), 0);
    free(s);
    s = nested(65, "[", "1", "]");
    CHECK_INT(parse_n(s, strlen(s), &v, 0, err, sizeof(err)), SL_ELIMIT);
    CHECK_STR(err, "nesting too deep at offset 64");
    CHECK(v.type == SL_V_NULL);
    free(s);
    s = nested(65, "{\"a\":", "{}", "}");
    CHECK_INT(parse_n(s, strlen(s), &v, 0, err, sizeof(err)), SL_ELIMIT);
    free(s);
    s = nested(63, "{\"a\":", "[]", "}");
    CHECK_INT(parse_n(s, strlen(s), &v, 0, err, sizeof(err)), 0);
    free(s);
    /* a custom limit; scalars do not count */
    CHECK_INT(parse_n("[[[1]]]", 7, &v, 3, err, sizeof(err)), 0);
    CHECK_INT(parse_n("[[[[1]]]]", 9, &v, 3, err, sizeof(err)), SL_ELIMIT);
    CHECK_INT(parse_n("[{\"a\":[]}]", 10, &v, 3, err, sizeof(err)), 0);
    CHECK_INT(parse_n("[{\"a\":[{}]}]", 12, &v, 3, err, sizeof(err)), SL_ELIMIT);
    CHECK_INT(parse_n("1", 1, &v, 1, err, sizeof(err)), 0);
    /* a deep hostile document fails cleanly */
    s = nested(100000, "[", "", "]");
    CHECK_INT(parse_n(s, strlen(s), &v, 0, err, sizeof(err)), SL_ELIMIT);
    free(s);
    sl_value_clear(&v);
}

TEST(test_round_trips)
{
    CHECK_STR(rt(" { \"b\" : 1 , \"a\" : [ true , false , null , -1.5 , \"x\" ] , \"c\" : {} , "
                 "\"d\" : [] } "),
              "{\"b\":1,\"a\":[true,false,null,-1.5,\"x\"],\"c\":{},\"d\":[]}");
    CHECK_STR(rt("{\"z\":1,\"y\":2,\"x\":3,\"w\":{\"q\":[[],[{}]]}}"),
              "{\"z\":1,\"y\":2,\"x\":3,\"w\":{\"q\":[[],[{}]]}}");
    CHECK_STR(rt("[9223372036854775807,-9223372036854775808,9223372036854775808]"),
              "[9223372036854775807,-9223372036854775808,9.223372036854776e+18]");
    CHECK_STR(rt("[-0,-0.0,0,2.0,1e2,1E-7,0.1,123.456,1e300,1e400,-1e400]"),
              "[-0.0,-0.0,0,2.0,100.0,1e-07,0.1,123.456,1e+300,null,null]");
    CHECK_STR(rt("\"\\u0000\\u001F\\n\\\"\\\\\\/\\u00e9\\ud83d\\ude00\\ud800\""),
              "\"\\u0000\\u001f\\n\\\"\\\\/\xC3\xA9\xF0\x9F\x98\x80" FFFD "\"");
    CHECK_STR(rt("{\"k\\ney\":\"v\",\"\":\"\"}"), "{\"k\\ney\":\"v\",\"\":\"\"}");
    CHECK_STR(rt("{\"a\":1,\"b\":2,\"a\":3}"), "{\"a\":3,\"b\":2}");  /* last wins, place kept */
    CHECK_STR(rt("{\"a\":{\"x\":[1,2]},\"a\":true}"), "{\"a\":true}");
    CHECK_STR(rt("[\"\\u0061\",\"a\"]"), "[\"a\",\"a\"]");
    CHECK_STR(rt("{\"\\u0061\":1,\"a\":2}"), "{\"a\":2}");  /* escaped key equals plain key */

    /* Output of the writer parses back to the same output. */
    const char *docs[] = {"{\"message\":\"GET /index.html 200\",\"n\":[1,2.5,-3e-3],\"ok\":true}",
                          "[1e22,1e21,123456789012345680000,0.000001,5e-324]"};
    for (size_t i = 0; i < SL_ARRAY_LEN(docs); i++) {
        char once[512];
        snprintf(once, sizeof(once), "%s", rt(docs[i]));
        CHECK_STR(rt(once), once);
    }
}

TEST(test_duplicate_keys_many_members)
{
    /* Past OBJ_INDEX_MIN members the parser dedupes through a hash index. */
    struct sl_buf in;
    sl_buf_init(&in, 0);
    sl_buf_putc(&in, '{');
    for (int i = 0; i < 5000; i++) {
        sl_buf_printf(&in, "%s\"k%d\":%d", i ? "," : "", i, i);
    }
    sl_buf_puts(&in, ",\"k50\":\"dup\",\"k4999\":[],\"k0\":null,\"new\":1}");
    struct sl_value v = {0};
    CHECK_INT(parse_n(in.data, in.len, &v, 0, NULL, 0), 0);
    CHECK(v.type == SL_V_OBJECT);
    CHECK_INT(v.u.o.len, 5001);
    if (v.type == SL_V_OBJECT && v.u.o.len == 5001) {
        CHECK_STR(v.u.o.items[0].key, "k0");
        CHECK(v.u.o.items[0].v.type == SL_V_NULL);
        CHECK_STR(v.u.o.items[50].key, "k50");
        CHECK_MEM(v.u.o.items[50].v.u.s.ptr, v.u.o.items[50].v.u.s.len, "dup");
        CHECK_STR(v.u.o.items[4999].key, "k4999");
        CHECK(v.u.o.items[4999].v.type == SL_V_ARRAY);
        CHECK_STR(v.u.o.items[5000].key, "new");
        CHECK(v.u.o.items[77].v.type == SL_V_INT && v.u.o.items[77].v.u.i == 77);
    }
    /* the same keys in a small object use the linear path: same result shape */
    CHECK_STR(rt("{\"k0\":0,\"k1\":1,\"k0\":\"x\"}"), "{\"k0\":\"x\",\"k1\":1}");
    sl_value_clear(&v);
    sl_buf_free(&in);
}

/* ---- writer ---- */

TEST(test_write_numbers)
{
    struct sl_value v = {0};
    static const struct { int64_t i; const char *s; } ints[] = {
        {0, "0"}, {7, "7"}, {-7, "-7"}, {1000000, "1000000"},
        {INT64_MAX, "9223372036854775807"}, {INT64_MIN, "-9223372036854775808"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(ints); i++) {
        sl_value_set_int(&v, ints[i].i);
        CHECK_STR(write_v(&v, NULL), ints[i].s);
    }
    static const struct { double d; const char *s; } dbls[] = {
        {2.0, "2.0"}, {-0.0, "-0.0"}, {0.0, "0.0"}, {100.0, "100.0"}, {0.5, "0.5"},
        {-1.5, "-1.5"}, {0.1, "0.1"}, {123.456, "123.456"},
        {1e16, "1e+16"}, {1e17, "1e+17"}, {1e300, "1e+300"},
        {1e-7, "1e-07"}, {5e-324, "4.94065645841247e-324"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {9223372036854775808.0, "9.223372036854776e+18"},
        {NAN, "null"}, {INFINITY, "null"}, {-INFINITY, "null"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(dbls); i++) {
        sl_value_set_double(&v, dbls[i].d);
        CHECK_STR(write_v(&v, NULL), dbls[i].s);
        /* and every finite one reads back as the same double */
        struct sl_value back = {0};
        if (isfinite(dbls[i].d)) {
            CHECK_INT(parse(g_out.data, &back), 0);
            CHECK(back.type == SL_V_DOUBLE && back.u.d == dbls[i].d &&
                  signbit(back.u.d) == signbit(dbls[i].d));
        }
    }
    sl_value_clear(&v);
}

TEST(test_write_tree_and_skip_key)
{
    struct sl_value ev = {0};
    sl_value_set_object(&ev);
    sl_value_set_cstr(sl_obj_putc(&ev, "@timestamp"), "2026-01-01T00:00:00.000Z");
    struct sl_value *meta = sl_obj_putc(&ev, "@metadata");
    sl_value_set_object(meta);
    sl_value_set_int(sl_obj_putc(meta, "x"), 1);
    sl_value_set_cstr(sl_obj_putc(&ev, "message"), "a \"quoted\"\tline");
    struct sl_value *arr = sl_obj_putc(&ev, "list");
    sl_value_set_array(arr);
    sl_value_set_bool(sl_arr_push(arr), true);
    sl_arr_push(arr);
    struct sl_value *inner = sl_arr_push(arr);
    sl_value_set_object(inner);
    sl_value_set_int(sl_obj_putc(inner, "@metadata"), 2);  /* not top-level: kept */

    CHECK_STR(write_v(&ev, NULL),
              "{\"@timestamp\":\"2026-01-01T00:00:00.000Z\",\"@metadata\":{\"x\":1},"
              "\"message\":\"a \\\"quoted\\\"\\tline\",\"list\":[true,null,{\"@metadata\":2}]}");
    CHECK_STR(write_v(&ev, "@metadata"),
              "{\"@timestamp\":\"2026-01-01T00:00:00.000Z\","
              "\"message\":\"a \\\"quoted\\\"\\tline\",\"list\":[true,null,{\"@metadata\":2}]}");
    CHECK_STR(write_v(&ev, "@timestamp"),
              "{\"@metadata\":{\"x\":1},"
              "\"message\":\"a \\\"quoted\\\"\\tline\",\"list\":[true,null,{\"@metadata\":2}]}");
    CHECK_STR(write_v(&ev, "list"),
              "{\"@timestamp\":\"2026-01-01T00:00:00.000Z\",\"@metadata\":{\"x\":1},"
              "\"message\":\"a \\\"quoted\\\"\\tline\"}");
    char full[256];
    snprintf(full, sizeof(full), "%s", write_v(&ev, NULL));
    CHECK_STR(write_v(&ev, "absent"), full);

    struct sl_value one = {0};
    CHECK_INT(parse("{\"@metadata\":1}", &one), 0);
    CHECK_STR(write_v(&one, "@metadata"), "{}");
    CHECK_INT(parse("[{\"@metadata\":1}]", &one), 0);
    CHECK_STR(write_v(&one, "@metadata"), "[{\"@metadata\":1}]");
    /* a key with an embedded NUL is not the C-string skip key */
    sl_value_set_object(&one);
    sl_value_set_int(sl_obj_put(&one, "ab\0c", 4), 1);
    CHECK_STR(write_v(&one, "ab"), "{\"ab\\u0000c\":1}");
    sl_value_clear(&one);
    sl_value_clear(&ev);
}

TEST(test_write_limit)
{
    struct sl_value v = {0};
    CHECK_INT(parse("{\"message\":\"0123456789\",\"n\":[1,2,3]}", &v), 0);
    struct sl_buf b;
    sl_buf_init(&b, 20);
    sl_buf_puts(&b, "HDR");
    CHECK_INT(sl_json_write(&b, &v, NULL), SL_ELIMIT);
    CHECK_MEM(b.data, b.len, "HDR");  /* unchanged on failure */
    sl_buf_free(&b);
    sl_buf_init(&b, 36);  /* exactly the document */
    CHECK_INT(sl_json_write(&b, &v, NULL), 0);
    CHECK_MEM(b.data, b.len, "{\"message\":\"0123456789\",\"n\":[1,2,3]}");
    sl_buf_reset(&b);
    b.max = 35;
    CHECK_INT(sl_json_write(&b, &v, NULL), SL_ELIMIT);
    CHECK_INT(b.len, 0);
    CHECK_INT(sl_json_write(&b, NULL, NULL), SL_EINVAL);
    sl_buf_free(&b);
    sl_value_clear(&v);
}

/* ---- sl_json_parse_arena: the same parser, arena memory ---- */

static struct sl_arena g_arena;

/* Every string, key and non-empty vector of v is flagged arena and lies in
 * g_arena (want_arena), or none is flagged and none lies there. */
static bool memory_is(const struct sl_value *v, bool want_arena)
{
    uint8_t want = want_arena ? SL_VF_ARENA : 0;
    switch (v->type) {
    case SL_V_STRING:
        return v->flags == want && sl_arena_contains(&g_arena, v->u.s.ptr) == want_arena;
    case SL_V_ARRAY:
        if (v->u.a.len && (v->flags != want ||
                           sl_arena_contains(&g_arena, v->u.a.items) != want_arena)) {
            return false;
        }
        for (size_t i = 0; i < v->u.a.len; i++) {
            if (!memory_is(&v->u.a.items[i], want_arena)) {
                return false;
            }
        }
        return true;
    case SL_V_OBJECT:
        if (v->u.o.len && (v->flags != want ||
                           sl_arena_contains(&g_arena, v->u.o.items) != want_arena)) {
            return false;
        }
        for (size_t i = 0; i < v->u.o.len; i++) {
            const struct sl_member *m = &v->u.o.items[i];
            if (m->kflags != want || sl_arena_contains(&g_arena, m->key) != want_arena ||
                !memory_is(&m->v, want_arena)) {
                return false;
            }
        }
        return true;
    default:
        return v->flags == 0;
    }
}

/*
 * Parses s[0..n) to the heap and into g_arena, each from an exact-size copy
 * that is freed before the trees are written (so ASan catches a tree that
 * points into its input), and checks that both agree on the result code, the
 * error text and the tree. Returns the result code.
 */
static int both(const char *s, size_t n, unsigned depth)
{
    struct sl_value h = {0}, a = {0};
    char eh[128], ea[128];
    struct sl_json_limits lim = {.max_depth = depth};
    char *copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    int rh = sl_json_parse(copy, n, &h, &lim, eh, sizeof(eh));
    int ra = sl_json_parse_arena(copy, n, &a, &g_arena, &lim, ea, sizeof(ea));
    free(copy);
    CHECK_INT(ra, rh);
    CHECK_STR(ea, eh);
    if (rh != 0) {
        CHECK(h.type == SL_V_NULL && a.type == SL_V_NULL && a.flags == 0);
    } else {
        struct sl_buf wh, wa;
        sl_buf_init(&wh, 0);
        sl_buf_init(&wa, 0);
        CHECK_INT(sl_json_write(&wh, &h, NULL), 0);
        CHECK_INT(sl_json_write(&wa, &a, NULL), 0);
        if (wh.len != wa.len || memcmp(wh.data, wa.data, wh.len) != 0) {
            fprintf(stderr, "  heap %.*s\n  arena %.*s\n", (int)SL_MIN(wh.len, 300), wh.data,
                    (int)SL_MIN(wa.len, 300), wa.data);
            CHECK(!"heap and arena trees differ");
        }
        CHECK(memory_is(&h, false));
        CHECK(memory_is(&a, true));
        sl_buf_free(&wh);
        sl_buf_free(&wa);
    }
    sl_value_clear(&h);
    sl_value_clear(&a);
    return rh;
}

#define BOTH(lit) both(lit, sizeof(lit) - 1, 0)

TEST(test_arena_parse_same_as_heap)
{
    /* Valid documents: every kind of value, escape and number edge. */
    const char *good[] = {
        "null", "true", "false", "0", "-0", "1.5", "-1e400", "9223372036854775807",
        "-9223372036854775808", "9223372036854775808", "\"\"", "\"plain\"",
        "\"\\u0000\\u001F\\n\\\"\\\\\\/\\u00e9\\ud83d\\ude00\\ud800\\udc00x\"",
        "\"bad \xFF\xC0\x80 utf8 \xED\xA0\x80\"", "[]", "{}", "[[],{},[{}]]",
        " { \"b\" : 1 , \"a\" : [ true , false , null , -1.5 , \"x\" ] , \"c\" : {} } ",
        "{\"a\":1,\"b\":2,\"a\":3}", "{\"a\":{\"x\":[1,2]},\"a\":true}", "{\"\\u0061\":1,\"a\":2}",
        "{\"\":\"\",\"k\\ney\":\"v\\u0000\"}", "[\"\\u0061\",\"a\"]",
        "{\"@timestamp\":\"2026-11-27T06:00:00.123Z\",\"@metadata\":{\"beat\":\"sluice\"},"
        "\"message\":\"127.0.0.1 - - \\\"GET / HTTP/1.1\\\" 200\",\"log\":{\"offset\":1}}",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(good); i++) {
        CHECK_INT(both(good[i], strlen(good[i]), 0), 0);
    }
    /* Errors: the same code and message, and nothing left behind. */
    const char *bad[] = {"", "   ", "[", "{", "]", "}", "[1,]", "[,1]", "[1 2]", "{\"a\":1,}",
                         "{,}", "{\"a\"}", "{\"a\" 1}", "{\"a\":}", "{1:2}", "{a:1}", "['a']",
                         "[1]]", "{}x", "1 2", "truex", "tru", "nul", "True", "NULL", "[true,",
                         "{\"a\":1", "\v1", "/*c*/1", "01", "[1,2,x]", "\"\\x\"", "\"\\u12\"",
                         "\"ab", "\"a\x01\"", "{\"a\":[1,{\"b\":\"c\",\"d\":[\"e\",}]}",
                         "{\"k\":\"v\",\"k2\":{\"x\":\"esc\\n\",\"y\":[\"s\",\"t\"", "-", "1.",
                         "1e", "[\"unterminated"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        int rc = both(bad[i], strlen(bad[i]), 0);
        CHECK(rc == SL_EINVAL);
    }
    CHECK_INT(both("1\0", 2, 0), SL_EINVAL);
    CHECK_INT(both("123", 2, 0), 0);
    /* A NULL input, and a NULL arena (which parses to the heap). */
    struct sl_value v = {0};
    CHECK_INT(sl_json_parse_arena(NULL, 0, &v, &g_arena, NULL, NULL, 0), SL_EINVAL);
    CHECK_INT(sl_json_parse_arena("[\"x\"]", 5, &v, NULL, NULL, NULL, 0), 0);
    CHECK(memory_is(&v, false));
    /* out holding a heap tree, then an arena tree, is cleared first. */
    CHECK_INT(sl_json_parse_arena("{\"a\":\"b\"}", 9, &v, &g_arena, NULL, NULL, 0), 0);
    CHECK(memory_is(&v, true));
    CHECK_INT(sl_json_parse_arena("[\"c\"]", 5, &v, &g_arena, NULL, NULL, 0), 0);
    CHECK_INT(sl_json_parse_arena("[\"c\"", 4, &v, &g_arena, NULL, NULL, 0), SL_EINVAL);
    CHECK(v.type == SL_V_NULL && v.flags == 0);
    sl_value_clear(&v);
    sl_arena_reset(&g_arena);
}

TEST(test_arena_parse_depth_and_big)
{
    char *s = nested(64, "[", "\"s\"", "]");
    CHECK_INT(both(s, strlen(s), 0), 0);
    free(s);
    s = nested(65, "{\"a\":", "{}", "}");
    CHECK_INT(both(s, strlen(s), 0), SL_ELIMIT);
    free(s);
    s = nested(100000, "[", "", "]");
    CHECK_INT(both(s, strlen(s), 0), SL_ELIMIT);
    free(s);
    CHECK_INT(BOTH("[{\"a\":[{}]}]"), 0);
    CHECK_INT(both("[{\"a\":[{}]}]", 12, 3), SL_ELIMIT);

    /* Past the parser's inline stacks (32 members / items of open containers):
     * 40 objects of 40 members, arrays of 40 arrays of 40, then the same cut
     * short at many places, so that an error unwinds heap-grown stacks. */
    struct sl_buf in;
    sl_buf_init(&in, 0);
    sl_buf_putc(&in, '{');
    for (int i = 0; i < 40; i++) {
        sl_buf_printf(&in, "%s\"o%d\":{", i ? "," : "", i);
        for (int k = 0; k < 40; k++) {
            sl_buf_printf(&in, "%s\"k%d\":[\"v%d\",%d,[%d,\"w\"]]", k ? "," : "", k, k, k, k);
        }
        sl_buf_putc(&in, '}');
    }
    sl_buf_puts(&in, ",\"arr\":[");
    for (int i = 0; i < 40; i++) {
        sl_buf_printf(&in, "%s[", i ? "," : "");
        for (int k = 0; k < 40; k++) {
            sl_buf_printf(&in, "%s\"x\\n%d\"", k ? "," : "", k);
        }
        sl_buf_putc(&in, ']');
    }
    sl_buf_puts(&in, "]}");
    CHECK_INT(both(in.data, in.len, 0), 0);
    for (size_t cut = 1; cut < in.len; cut += in.len / 97 + 1) {
        CHECK_INT(both(in.data, cut, 0), SL_EINVAL);
    }
    /* Duplicates in a big object (the hashed path), in both memories. */
    sl_buf_reset(&in);
    sl_buf_putc(&in, '{');
    for (int i = 0; i < 3000; i++) {
        sl_buf_printf(&in, "%s\"k%d\":\"v%d\"", i ? "," : "", i, i);
    }
    sl_buf_puts(&in, ",\"k50\":{\"dup\":[1]},\"k2999\":[],\"k0\":null,\"new\":1}");
    CHECK_INT(both(in.data, in.len, 0), 0);
    CHECK_INT(both(in.data, in.len - 3, 0), SL_EINVAL);
    sl_buf_free(&in);
    sl_arena_reset(&g_arena);
}

/* ---- randomized: documents and corruptions of them, heap vs arena ---- */

static uint64_t g_doc_rng;

/* Randomised tests run n rounds, times JSON_TEST_SCALE from the environment
 * when set (a longer property run: JSON_TEST_SCALE=50 ./json_test). */
static int rounds(int n)
{
    const char *e = getenv("JSON_TEST_SCALE");
    long k = e ? strtol(e, NULL, 10) : 1;
    return k > 1 && k < 100000 ? n * (int)k : n;
}

static unsigned drnd(unsigned n)
{
    g_doc_rng = g_doc_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)((g_doc_rng >> 33) % n);
}

static bool g_doc_compact;  /* no whitespace between tokens */

static void gen_doc(struct sl_buf *b, unsigned depth)
{
    static const char *const strs[] = {
        "\"\"", "\"plain text\"", "\"esc\\n\\t\\\"q\\\"\\\\\"", "\"caf\\u00e9\"",
        "\"\\ud83d\\ude00\"", "\"\\ud800 lone\"", "\"bad\xFF\xFE utf8\"", "\"caf\xC3\xA9 raw\"",
        "\"a longer string that goes past one eight-byte word several times over\""};
    static const char *const keys[] = {"\"a\"", "\"b\"", "\"a\"", "\"@timestamp\"", "\"k\\u0065y\"",
                                       "\"key\"", "\"\"", "\"x.y\"", "\"\xFF\""};
    static const char *const scalars[] = {"null", "true", "false", "0", "-0", "12345",
                                          "-9223372036854775808", "1.5e3", "-0.001", "1e400"};
    static const char *const ws[] = {"", "", "", " ", "\n\t", "\r\n  "};
    sl_buf_puts(b, g_doc_compact ? "" : ws[drnd(SL_ARRAY_LEN(ws))]);
    unsigned k = drnd(depth > 5 ? 4 : 8);
    if (k < 2) {
        sl_buf_puts(b, scalars[drnd(SL_ARRAY_LEN(scalars))]);
    } else if (k < 4) {
        sl_buf_puts(b, strs[drnd(SL_ARRAY_LEN(strs))]);
    } else if (k < 6) {
        unsigned n = drnd(8);
        sl_buf_putc(b, '{');
        for (unsigned i = 0; i < n; i++) {
            sl_buf_puts(b, i ? "," : "");
            sl_buf_puts(b, keys[drnd(SL_ARRAY_LEN(keys))]);
            sl_buf_puts(b, g_doc_compact ? "" : ws[drnd(SL_ARRAY_LEN(ws))]);
            sl_buf_putc(b, ':');
            gen_doc(b, depth + 1);
        }
        sl_buf_putc(b, '}');
    } else {
        unsigned n = drnd(8);
        sl_buf_putc(b, '[');
        for (unsigned i = 0; i < n; i++) {
            sl_buf_puts(b, i ? "," : "");
            gen_doc(b, depth + 1);
        }
        sl_buf_putc(b, ']');
    }
    sl_buf_puts(b, g_doc_compact ? "" : ws[drnd(SL_ARRAY_LEN(ws))]);
}

TEST(test_arena_parse_randomized)
{
    static const char junk[] = "{}[],:\"\\ 0123456789.eE+-tfnulx\xFF\x01";
    struct sl_buf doc;
    sl_buf_init(&doc, 0);
    g_doc_rng = 424242;
    unsigned ok = 0, failed = 0;
    for (int i = 0; i < 3000; i++) {
        sl_buf_reset(&doc);
        gen_doc(&doc, 0);
        if (both(doc.data, doc.len, drnd(4) ? 0 : 4) == 0) {
            ok++;
        } else {
            failed++;  /* only the depth limit of 4 can fail a generated document */
        }
        /* Corruptions: a byte replaced, a byte dropped, the document cut. */
        for (int c = 0; c < 3 && doc.len > 1; c++) {
            size_t at = drnd((unsigned)doc.len);
            switch (c) {
            case 0:
                doc.data[at] = junk[drnd(sizeof(junk) - 1)];
                break;
            case 1:
                memmove(doc.data + at, doc.data + at + 1, doc.len - at - 1);
                doc.len--;
                break;
            default:
                doc.len = at;
                break;
            }
            if (both(doc.data, doc.len, 0) == 0) {
                ok++;
            } else {
                failed++;
            }
        }
        if ((i & 255) == 255) {
            sl_arena_reset(&g_arena);
        }
    }
    CHECK(ok > 3000 && failed > 3000);  /* both outcomes well covered */
    sl_buf_free(&doc);
    sl_arena_reset(&g_arena);
}

/* Parses text with sl_json_parse_doc (cut key "@metadata") into v; *doc gets the report. */
static int parse_doc(const char *text, struct sl_value *v, struct sl_json_doc *doc)
{
    char err[128];
    return sl_json_parse_doc(text, strlen(text), v, NULL, NULL, "@metadata", doc, err,
                             sizeof(err));
}

/* The copied text, cut or not, into g_out as a C string. */
static const char *copied(const char *text, const struct sl_json_doc *doc, bool cut)
{
    sl_buf_reset(&g_out);
    CHECK_INT(sl_json_put_doc(&g_out, text, strlen(text), doc, cut), 0);
    return sl_buf_cstr(&g_out);
}

TEST(test_doc_verbatim_and_cut)
{
    static const struct {
        const char *text;
        bool verbatim;
        const char *cut;  /* the text without @metadata (verbatim ones only) */
    } cases[] = {
        {"{\"@metadata\":{\"a\":1},\"m\":\"x\"}", true, "{\"m\":\"x\"}"},
        {"{\"m\":\"x\",\"@metadata\":[1,{\"b\":2}],\"n\":1.50}", true, "{\"m\":\"x\",\"n\":1.50}"},
        {"{\"m\":\"x\",\"@metadata\":{}}", true, "{\"m\":\"x\"}"},
        {"{\"@metadata\":null}", true, "{}"},
        {"{\"m\":\"\\/\\u00e9\",\"x\":{\"@metadata\":1}}", true,
         "{\"m\":\"\\/\\u00e9\",\"x\":{\"@metadata\":1}}"},  /* only the root's is cut */
        {"{\"m\":\"\\ud83d\\ude00\",\"n\":-0,\"e\":2E3}", true, NULL},
        {"{\"m\": \"x\"}", false, NULL},                       /* whitespace */
        {"{\"m\":\"x\"}\n", false, NULL},
        {"{\"m\":\"x\",\"m\":\"y\"}", false, NULL},            /* duplicate key */
        {"{\"m\":\"bad\xFF\"}", false, NULL},                  /* repaired UTF-8 */
        {"{\"m\":\"\\ud800\"}", false, NULL},                  /* lone surrogate */
        {"{\"n\":1e400}", false, NULL},                        /* infinity */
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        struct sl_value v = {0};
        struct sl_json_doc doc = {.verbatim = !cases[i].verbatim};
        CHECK_INT(parse_doc(cases[i].text, &v, &doc), 0);
        CHECK_INT(doc.verbatim, cases[i].verbatim);
        if (doc.verbatim) {
            CHECK_STR(copied(cases[i].text, &doc, false), cases[i].text);
            CHECK_STR(copied(cases[i].text, &doc, true),
                      cases[i].cut ? cases[i].cut : cases[i].text);
        } else {
            CHECK_INT(doc.cut_len, 0);
        }
        sl_value_clear(&v);
    }
    struct sl_value v = {0};
    struct sl_json_doc doc = {.verbatim = true};
    CHECK_INT(parse_doc("{\"m\":", &v, &doc), SL_EINVAL);
    CHECK_INT(doc.verbatim, 0);
}

/* The scanner's root members are the tree's, in order, each span parsing to its value. */
static void check_members(const struct sl_value *v, const char *text,
                          const struct sl_json_member *ms, size_t n)
{
    CHECK_INT(n, v->u.o.len);
    for (size_t i = 0; i < n && i < v->u.o.len; i++) {
        const struct sl_member *mem = &v->u.o.items[i];
        CHECK_MEM(text + ms[i].key_off, ms[i].key_len, mem->key);
        const struct sl_value *m = &mem->v;
        struct sl_value part = {0};
        char err[64];
        CHECK_INT(sl_json_parse(text + ms[i].val_off, ms[i].val_len, &part, NULL, err,
                                sizeof(err)), 0);
        struct sl_buf a, b;
        sl_buf_init(&a, 0);
        sl_buf_init(&b, 0);
        sl_json_write(&a, &part, NULL);
        sl_json_write(&b, m, NULL);
        CHECK_MEM(a.data, a.len, sl_buf_cstr(&b));
        sl_buf_free(&a);
        sl_buf_free(&b);
        sl_value_clear(&part);
    }
}

/*
 * For random documents wrapped as events with @metadata somewhere: whenever
 * the parse says verbatim, the copied text (cut or not) means exactly the
 * tree, written with or without @metadata.
 */
TEST(test_doc_copy_means_the_tree)
{
    struct sl_buf text, a, b;
    sl_buf_init(&text, 0);
    sl_buf_init(&a, 0);
    sl_buf_init(&b, 0);
    g_doc_rng = 777;
    g_doc_compact = true;
    size_t verbatim = 0, cut = 0, nscanned = 0;
    for (int i = 0; i < rounds(20000); i++) {
        sl_buf_reset(&text);
        unsigned where = drnd(4);
        sl_buf_puts(&text, "{");
        for (unsigned k = 0; k < 3; k++) {
            sl_buf_puts(&text, k ? "," : "");
            static const char *const names[] = {"\"m\":", "\"n\":", "\"o\":"};
            sl_buf_puts(&text, k == where ? "\"@metadata\":" : names[k]);
            gen_doc(&text, 3);
        }
        sl_buf_puts(&text, "}");
        struct sl_value v = {0}, back = {0};
        struct sl_json_doc doc, sdoc;
        struct sl_json_member ms[SL_JSON_SCAN_MEMBERS];
        size_t nms;
        char err[128];
        bool scanned = sl_json_scan(text.data, text.len, NULL, "@metadata", ms, &nms, &sdoc);
        int rc = sl_json_parse_doc(text.data, text.len, &v, NULL, NULL, "@metadata", &doc, err,
                                   sizeof(err));
        if (scanned) {
            /* The scanner vouches only for what the parser reports verbatim, identically. */
            nscanned++;
            CHECK(rc == 0 && doc.verbatim);
            CHECK_INT(sdoc.cut_off, doc.cut_off);
            CHECK_INT(sdoc.cut_len, doc.cut_len);
            check_members(&v, text.data, ms, nms);
        }
        if (rc != 0 || !doc.verbatim) {
            sl_value_clear(&v);
            continue;
        }
        verbatim++;
        cut += doc.cut_len > 0;
        for (int with = 0; with < 2; with++) {
            sl_buf_reset(&a);
            sl_buf_reset(&b);
            CHECK_INT(sl_json_put_doc(&a, text.data, text.len, &doc, !with), 0);
            CHECK_INT(sl_json_parse(a.data, a.len, &back, NULL, err, sizeof(err)), 0);
            sl_buf_reset(&a);
            sl_json_write(&a, &back, NULL);
            sl_json_write(&b, &v, with ? NULL : "@metadata");
            CHECK_MEM(a.data, a.len, sl_buf_cstr(&b));
            sl_value_clear(&back);
        }
        sl_value_clear(&v);
    }
    CHECK(verbatim > 500 && cut > 500);
    CHECK(nscanned > 300);
    g_doc_compact = false;
    sl_buf_free(&text);
    sl_buf_free(&a);
    sl_buf_free(&b);
}

/* max_bytes counts the tree as it is made: an array of tiny items fails with
 * SL_E2BIG long before it is all read, in either mode; strings cost their
 * length; a tree under the limit is the same as without one. */
TEST(test_max_bytes)
{
    size_t items = 512u << 10;  /* [0,0,...]: 1 MiB of text, 16 MiB of values */
    size_t n = 2 * items + 1;
    char *txt = malloc(n);
    txt[0] = '[';
    for (size_t i = 0; i < items; i++) {
        txt[1 + 2 * i] = '0';
        txt[2 + 2 * i] = i + 1 < items ? ',' : ']';
    }
    struct sl_json_limits lim = {.max_bytes = 64u << 10};
    struct sl_value v = {0};
    char err[128];
    CHECK_INT(sl_json_parse(txt, n, &v, &lim, err, sizeof(err)), SL_E2BIG);
    CHECK(strstr(err, "memory limit") != NULL);
    CHECK(v.type == SL_V_NULL);
    struct sl_arena a;
    sl_arena_init(&a, 0);
    CHECK_INT(sl_json_parse_arena(txt, n, &v, &a, &lim, err, sizeof(err)), SL_E2BIG);
    CHECK(a.used < (256u << 10));  /* stopped near the limit, not at 16 MiB */
    sl_arena_free(&a);
    lim.max_bytes = 0;  /* none */
    CHECK_INT(sl_json_parse(txt, n, &v, &lim, err, sizeof(err)), 0);
    CHECK_INT(v.u.a.len, items);
    sl_value_clear(&v);
    free(txt);

    const char *obj = "{\"k\":\"0123456789\",\"n\":[1,2]}";
    /* 2 members (key + 1 each), 11 bytes of string, 2 items. */
    size_t need = 2 * sizeof(struct sl_member) + 4 + 11 + 2 * sizeof(struct sl_value);
    lim.max_bytes = need;
    CHECK_INT(sl_json_parse(obj, strlen(obj), &v, &lim, err, sizeof(err)), 0);
    CHECK_STR(write_v(&v, NULL), obj);
    sl_value_clear(&v);
    lim.max_bytes = need - 1;
    CHECK_INT(sl_json_parse(obj, strlen(obj), &v, &lim, err, sizeof(err)), SL_E2BIG);
}

/*
 * Duplicate keys and the member limit, against the truth: objects of up to 40
 * keys from a set where many pairs share length, first and last byte (so the
 * scanner's one-bit key filter says "maybe" often), nested in a root that
 * holds some of the same keys (the same key at two levels is no duplicate).
 */
TEST(test_scan_duplicates_and_limits)
{
    static const char *const keys[] = {"a", "b", "ab", "ba", "aab", "abb", "axb", "ayb",
                                       "azb", "@timestamp", "@timestamq", "@timestxmp",
                                       "message", "massage", "messagemessage", "m", "",
                                       "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"};
    struct sl_buf text;
    sl_buf_init(&text, 0);
    g_doc_rng = 99;
    unsigned yes = 0, dup = 0, many = 0;
    for (int i = 0; i < rounds(20000); i++) {
        unsigned n = drnd(41), pick[41];
        bool has_dup = false;
        sl_buf_reset(&text);
        sl_buf_puts(&text, "{\"ab\":1,\"inner\":{");
        for (unsigned k = 0; k < n; k++) {
            /* Mostly keys of their own ("u<position>"), some from the set. */
            pick[k] = drnd(8) == 0 ? drnd(SL_ARRAY_LEN(keys)) : SL_ARRAY_LEN(keys);
            for (unsigned j = 0; j < k; j++) {
                has_dup |= pick[k] < SL_ARRAY_LEN(keys) && pick[j] == pick[k];
            }
            if (pick[k] < SL_ARRAY_LEN(keys)) {
                sl_buf_printf(&text, "%s\"%s\":%u", k ? "," : "", keys[pick[k]], k);
            } else {
                sl_buf_printf(&text, "%s\"u%u\":%u", k ? "," : "", k, k);
            }
        }
        sl_buf_puts(&text, "},\"a\":\"x\"}");
        struct sl_json_member ms[SL_JSON_SCAN_MEMBERS];
        struct sl_json_doc doc;
        size_t nms;
        bool want = !has_dup && n <= SL_JSON_SCAN_MEMBERS;
        bool got = sl_json_scan(text.data, text.len, NULL, "@metadata", ms, &nms, &doc);
        CHECK_INT(got, want);
        if (got) {
            CHECK_INT(nms, 3);
            CHECK_MEM(text.data + ms[2].key_off, ms[2].key_len, "a");
        }
        yes += want;
        dup += has_dup;
        many += !has_dup && n > SL_JSON_SCAN_MEMBERS;
    }
    CHECK(yes > 1000 && dup > 1000 && many > 100);
    /* A duplicate at the root, and one key short of the end of the text. */
    struct sl_json_member ms[SL_JSON_SCAN_MEMBERS];
    struct sl_json_doc doc;
    size_t nms;
    static const char *const dups[] = {"{\"ab\":1,\"ab\":2}", "{\"a\":{},\"a\":[]}",
                                       "{\"\":1,\"\":1}", "{\"axb\":1,\"ayb\":2,\"axb\":3}"};
    for (size_t i = 0; i < SL_ARRAY_LEN(dups); i++) {
        CHECK(!sl_json_scan(dups[i], strlen(dups[i]), NULL, NULL, ms, &nms, &doc));
    }
    static const char *const fine[] = {"{\"axb\":1,\"ayb\":2}", "{\"a\":{\"a\":{\"a\":1}}}",
                                       "{\"\":1}", "{\"k\":\"v\"}"};
    for (size_t i = 0; i < SL_ARRAY_LEN(fine); i++) {
        CHECK(sl_json_scan(fine[i], strlen(fine[i]), NULL, NULL, ms, &nms, &doc));
    }
    sl_buf_free(&text);
}

/* Strings of every length up to 40 with one special byte at every place, and
 * none: the writer's word-at-a-time copy must stop exactly where it should. */
TEST(test_put_str_every_length)
{
    static const char specials[] = {'"', '\\', '\n', 0x01, 0x1f, (char)0xC3, 0x7f};
    char in[41], want[512];
    for (size_t len = 0; len <= 40; len++) {
        for (size_t at = 0; at <= len; at++) {
            for (size_t sp = 0; sp < (at < len ? sizeof(specials) : 1); sp++) {
                for (size_t i = 0; i < len; i++) {
                    in[i] = (char)('a' + i % 26);
                }
                if (at < len) {
                    in[at] = specials[sp];
                }
                /* The reference: byte by byte, as the escapes are defined. */
                size_t w = 0;
                want[w++] = '"';
                for (size_t i = 0; i < len; i++) {
                    unsigned char c = (unsigned char)in[i];
                    if (c == '"' || c == '\\') {
                        want[w++] = '\\';
                        want[w++] = (char)c;
                    } else if (c == '\n') {
                        want[w++] = '\\';
                        want[w++] = 'n';
                    } else if (c < 0x20) {
                        w += (size_t)snprintf(want + w, 8, "\\u%04x", c);
                    } else if (c >= 0x80) {
                        memcpy(want + w, "\xEF\xBF\xBD", 3);  /* a lone lead byte */
                        w += 3;
                    } else {
                        want[w++] = (char)c;
                    }
                }
                want[w++] = '"';
                want[w] = '\0';
                sl_buf_reset(&g_out);
                CHECK_INT(sl_json_put_str(&g_out, in, len), 0);
                CHECK_MEM(g_out.data, g_out.len, want);
                if (g_out.len != w || memcmp(g_out.data, want, w) != 0) {
                    return;  /* one report is enough */
                }
            }
        }
    }
}

/* A random text of 0..90 bytes: mostly plain, sometimes a quote, a backslash, a
 * control byte, UTF-8 or a byte that is not UTF-8. */
static size_t member_text(char *out, uint32_t *rnd)
{
    *rnd = *rnd * 1103515245u + 12345u;
    size_t n = (*rnd >> 8) % 91;
    static const char *const odd[] = {"\"", "\\", "\n", "\x01", "\xc3\xa9", "\xff", "\xe2\x82"};
    size_t len = 0;
    while (len < n) {
        *rnd = *rnd * 1103515245u + 12345u;
        if ((*rnd >> 10) % 47 == 0) {
            const char *o = odd[(*rnd >> 16) % 7];
            memcpy(out + len, o, strlen(o));
            len += strlen(o);
        } else {
            out[len++] = (char)('a' + (*rnd >> 16) % 26);
        }
    }
    return len;
}

/* sl_json_put_member writes what ,"key": then sl_json_write of the value write,
 * for every kind of key and value, in buffers with and without room, and a
 * buffer at its maximum is left as it was. */
TEST(test_put_member_same_as_tokens)
{
    uint32_t rnd = 4242;
    char key[200], str[200];
    for (int round = 0; round < 20000; round++) {
        size_t klen = member_text(key, &rnd);
        struct sl_value v = {0};
        rnd = rnd * 1103515245u + 12345u;
        switch ((rnd >> 12) % 5) {
        case 0:
            sl_value_set_int(&v, (int64_t)rnd - 7);
            break;
        case 1: {
            size_t n = member_text(str, &rnd);
            sl_value_set_str(&v, str, n);
            break;
        }
        case 2:
            sl_value_set_object(&v);
            sl_value_set_str(sl_obj_put(&v, key, klen), key, klen);
            break;
        case 3:
            break;  /* null */
        default:
            sl_value_set_str(&v, NULL, 0);
            break;
        }
        bool comma = round % 2;
        struct sl_buf a, b;
        /* Sizes from none at all to plenty, so both paths run. */
        sl_buf_init(&a, 0);
        sl_buf_init(&b, 0);
        size_t pre = (rnd >> 4) % 300;
        sl_buf_reserve(&a, pre);
        sl_buf_reserve(&b, pre);
        CHECK_INT(sl_json_put_member(&a, comma, key, klen, &v), 0);
        if (comma) {
            sl_buf_putc(&b, ',');
        }
        sl_json_put_str(&b, key, klen);
        sl_buf_putc(&b, ':');
        CHECK_INT(sl_json_write(&b, &v, NULL), 0);
        CHECK_INT(a.len, b.len);
        CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
        /* One byte short of the member: refused, nothing left behind. */
        struct sl_buf c;
        sl_buf_init(&c, b.len - 1 + 3);
        sl_buf_append(&c, "xyz", 3);
        CHECK_INT(sl_json_put_member(&c, comma, key, klen, &v), SL_ELIMIT);
        CHECK_INT(c.len, 3);
        sl_buf_free(&a);
        sl_buf_free(&b);
        sl_buf_free(&c);
        sl_value_clear(&v);
    }
}

int main(void)
{
    sl_buf_init(&g_out, 0);
    RUN(test_put_str_plain);
    RUN(test_put_member_same_as_tokens);
    RUN(test_put_str_escapes);
    RUN(test_put_str_valid_utf8_raw);
    RUN(test_put_str_invalid_utf8);
    RUN(test_put_str_limit);
    RUN(test_utf8_valid_prefix);
    RUN(test_put_str_matches_reference);
    RUN(test_put_str_long_string);
    RUN(test_parse_scalars);
    RUN(test_parse_numbers);
    RUN(test_parse_string_escapes);
    RUN(test_parse_invalid_utf8_replaced);
    RUN(test_parse_structure_errors);
    RUN(test_parse_error_messages);
    RUN(test_parse_depth_limit);
    RUN(test_round_trips);
    RUN(test_duplicate_keys_many_members);
    RUN(test_write_numbers);
    RUN(test_write_tree_and_skip_key);
    RUN(test_write_limit);
    sl_arena_init(&g_arena, 0);
    RUN(test_arena_parse_same_as_heap);
    RUN(test_arena_parse_depth_and_big);
    RUN(test_arena_parse_randomized);
    RUN(test_doc_verbatim_and_cut);
    RUN(test_doc_copy_means_the_tree);
    RUN(test_max_bytes);
    RUN(test_scan_duplicates_and_limits);
    RUN(test_put_str_every_length);
    sl_arena_free(&g_arena);
    sl_buf_free(&g_out);
    return TEST_SUMMARY();
}
