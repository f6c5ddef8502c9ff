/*
 * json_equiv_test.c - the scanner (sl_json_scan) and the parser of lib/json.c
 * against their previous versions (json_ref.inc, the old lib/json.c with its
 * names renamed), on many generated texts: Beats events with random escapes,
 * UTF-8 of every length, invalid bytes, control bytes, numbers, literals,
 * deep nesting, wide objects and duplicate keys, each also randomly mutated
 * and truncated. Everything observable must be identical: whether the
 * scanner vouches, its members and cut; the parser's code, error message
 * (offset included), tree and verbatim report, heap and arena alike, with
 * and without limits; and the parse of each member span, as the pipeline
 * does for the members its filters claim.
 */
#include "sluice/json.h"

#include <stdlib.h>

#include "test.h"

/* The reference: the previous lib/json.c, every exported name renamed. */
#include "json_ref.h"

/* ---- generated texts ---- */

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

static unsigned rn(unsigned n)
{
    return (unsigned)(rnd() % n);
}

/* Per text: how likely a piece is broken (0: a valid text, before mutation). */
static unsigned g_bad;

static void put_utf8_cp(struct sl_buf *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18);
        u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    sl_buf_append(b, u, n);
}

static void put_u_escape(struct sl_buf *b, unsigned cp)
{
    static const char *const hex[2] = {"0123456789abcdef", "0123456789ABCDEF"};
    const char *h = hex[rn(2)];
    char e[6] = {'\\', 'u', h[cp >> 12 & 15], h[cp >> 8 & 15], h[cp >> 4 & 15], h[cp & 15]};
    sl_buf_append(b, e, 6);
}

/* One piece of string content, as JSON text (escaped or raw). */
static void put_piece(struct sl_buf *b)
{
    static const char short_esc[] = "\"\\/bfnrt";
    static const char *const broken[] = {
        "\x80", "\xBF", "\xC0\x80", "\xC1\xBF", "\xE0\x80\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80",
        "\xF5\x80\x80\x80", "\xFF", "\xE2\x82", "\xF0\x9F\x98", "\xC3", "\x01", "\x1F", "\t",
        "\n", "\\x", "\\u12", "\\uD800", "\\uDC00", "\\uD800\\u0041", "\\uZZZZ", "\\", "\\'",
    };
    unsigned r = rn(100);
    if (g_bad && rn(1000) < g_bad) {
        const char *s = broken[rn(sizeof(broken) / sizeof(broken[0]))];
        sl_buf_append(b, s, strlen(s));
        return;
    }
    if (r < 55) {
        unsigned n = 1 + rn(r < 20 ? 30 : 6);
        for (unsigned i = 0; i < n; i++) {
            char c = (char)(0x20 + rn(0x5F));
            if (c == '"' || c == '\\') {
                c = 'x';
            }
            sl_buf_putc(b, c);
        }
    } else if (r < 72) {
        sl_buf_putc(b, '\\');
        sl_buf_putc(b, short_esc[rn(8)]);
    } else if (r < 78) {
        unsigned k = rn(4);
        if (k == 0) {
            put_u_escape(b, rn(0x80));
        } else if (k == 1) {
            put_u_escape(b, 0x80 + rn(0xD800 - 0x80));
        } else if (k == 2) {
            put_u_escape(b, 0xD800 + rn(0x400));
            put_u_escape(b, 0xDC00 + rn(0x400));
        } else {
            put_u_escape(b, 0xE000 + rn(0x2000));
        }
    } else if (r < 94) {
        unsigned k = rn(3);
        unsigned cp = k == 0 ? 0x80 + rn(0x780)
                    : k == 1 ? (rn(2) ? 0x800 + rn(0xD000) : 0xE000 + rn(0x2000))
                             : 0x10000 + rn(0x100000);
        put_utf8_cp(b, cp);
    } else {
        /* runs long enough for several 16-byte blocks */
        unsigned n = 16 + rn(60);
        for (unsigned i = 0; i < n; i++) {
            sl_buf_putc(b, (char)('a' + rn(26)));
        }
    }
}

static void put_string(struct sl_buf *b)
{
    unsigned r = rn(100), n;
    n = r < 30 ? rn(3) : r < 80 ? rn(12) : r < 95 ? rn(60) : r < 99 ? rn(400) : rn(3000);
    sl_buf_putc(b, '"');
    for (unsigned i = 0; i < n; i++) {
        put_piece(b);
    }
    sl_buf_putc(b, '"');
}

/* Keys from a small pool, so that duplicates and one-bit filter collisions
 * (same length, first and last byte) are frequent. */
static void put_key(struct sl_buf *b)
{
    static const char *const pool[] = {
        "", "a", "b", "ab", "ba", "abc", "axc", "ayc", "type", "name", "version", "message",
        "@metadata", "@timestamp", "agent", "host", "log", "k1", "k2", "k3", "k4", "k5",
        "offset", "x\xC3\xA9y", "\xF0\x9F\x98\x80",
    };
    if (rn(10) == 0) {
        put_string(b);
        return;
    }
    const char *k = pool[rn(sizeof(pool) / sizeof(pool[0]))];
    sl_buf_printf(b, "\"%s\"", k);
}

static void put_ws(struct sl_buf *b)
{
    static const char ws[] = " \n\r\t";
    if (rn(200) == 0) {
        sl_buf_putc(b, ws[rn(4)]);
    }
}

static void put_number(struct sl_buf *b)
{
    static const char *const forms[] = {
        "0", "-0", "7", "123", "-45", "1.5", "-0.25", "1e5", "1E-3", "2.5e+10", "10",
        "12345678901234567890", "9223372036854775807", "-9223372036854775808",
        "9223372036854775808", "-9223372036854775809", "1e400", "-1e400", "0.000001",
        "01", "1.", "-", ".5", "+1", "1e", "-01", "00", "1.e5",
    };
    unsigned n = sizeof(forms) / sizeof(forms[0]);
    unsigned k = rn(g_bad ? n : 19);
    if (rn(50) == 0) {
        for (unsigned i = 0, m = 290 + rn(20); i < m; i++) {
            sl_buf_putc(b, (char)('1' + rn(9)));
        }
        return;
    }
    if (k < 3 && rn(2)) {
        sl_buf_printf(b, "%u", (unsigned)rnd());
        return;
    }
    sl_buf_puts(b, forms[k]);
}

static void put_value(struct sl_buf *b, unsigned depth);

static void put_object(struct sl_buf *b, unsigned depth)
{
    unsigned r = rn(100), n = r < 10 ? 0 : r < 90 ? 1 + rn(5) : r < 98 ? rn(20) : 28 + rn(8);
    sl_buf_putc(b, '{');
    put_ws(b);
    for (unsigned i = 0; i < n; i++) {
        if (i) {
            sl_buf_putc(b, ',');
            put_ws(b);
        }
        put_key(b);
        put_ws(b);
        sl_buf_putc(b, ':');
        put_ws(b);
        put_value(b, depth + 1);
        put_ws(b);
    }
    sl_buf_putc(b, '}');
}

static void put_array(struct sl_buf *b, unsigned depth)
{
    unsigned n = rn(5);
    sl_buf_putc(b, '[');
    for (unsigned i = 0; i < n; i++) {
        if (i) {
            sl_buf_putc(b, ',');
        }
        put_ws(b);
        put_value(b, depth + 1);
    }
    sl_buf_putc(b, ']');
}

static void put_value(struct sl_buf *b, unsigned depth)
{
    unsigned r = rn(100);
    if (depth > 6 && r < 60) {
        r += 40;  /* fewer containers deep down */
    }
    if (r < 12) {
        put_object(b, depth);
    } else if (r < 18) {
        put_array(b, depth);
    } else if (r < 70) {
        put_string(b);
    } else if (r < 88) {
        put_number(b);
    } else {
        static const char *const lits[] = {"true", "false", "null", "tru", "nul", "falsey"};
        sl_buf_puts(b, lits[rn(g_bad ? 6 : 3)]);
    }
}

/* Nested containers n deep, each an object or an array, with a leaf inside. */
static void put_deep(struct sl_buf *b, unsigned n)
{
    char *kinds = malloc(n);
    for (unsigned i = 0; i < n; i++) {
        kinds[i] = rn(2) ? '{' : '[';
        sl_buf_puts(b, kinds[i] == '{' ? "{\"k\":" : "[");
    }
    put_value(b, 100);
    for (unsigned i = n; i-- > 0;) {
        sl_buf_putc(b, kinds[i] == '{' ? '}' : ']');
    }
    free(kinds);
}

/* A chain of objects each holding many keys, to reach the scanner's 256
 * open keys: k keys before the nested member, in n levels. */
static void put_wide_chain(struct sl_buf *b, unsigned n, unsigned k)
{
    for (unsigned i = 0; i < n; i++) {
        sl_buf_putc(b, '{');
        for (unsigned j = 0; j < k; j++) {
            sl_buf_printf(b, "\"w%u\":%u,", j, j);
        }
        sl_buf_puts(b, "\"next\":");
    }
    sl_buf_puts(b, "0");
    for (unsigned i = 0; i < n; i++) {
        sl_buf_putc(b, '}');
    }
}

/* A Beats event as the shipper writes it, with extra members and shuffled pieces. */
static void put_event(struct sl_buf *b)
{
    sl_buf_putc(b, '{');
    static const char meta[] =
        "\"@metadata\":{\"beat\":\"sluice\",\"type\":\"_doc\",\"version\":\"0.1.0\"},";
    unsigned order = rn(4);
    if (order == 0) {
        sl_buf_puts(b, meta);
    }
    sl_buf_printf(b, "\"@timestamp\":\"2026-11-27T06:%02u:%02u.%03uZ\",", rn(60), rn(60),
                  rn(1000));
    if (order == 1) {
        sl_buf_puts(b, meta);
    }
    sl_buf_puts(b, "\"message\":\"");
    /* an Apache line with its quotes escaped, then random pieces */
    sl_buf_printf(b, "%u.%u.%u.%u - - [27/Nov/2026:06:00:00 +0000] \\\"GET /x?id=%u HTTP/1.1\\\" "
                  "200 %u \\\"https://example.com/\\\" \\\"", rn(256), rn(256), rn(256), rn(256),
                  rn(100000), rn(50000));
    for (unsigned i = 0, n = rn(20); i < n; i++) {
        put_piece(b);
    }
    sl_buf_puts(b, "\\\"\",");
    sl_buf_printf(b, "\"log\":{\"file\":{\"path\":\"/var/log/apache2/access.log\"},\"offset\":%u},",
                  (unsigned)rnd());
    for (unsigned i = 0, n = rn(4); i < n; i++) {
        put_key(b);
        sl_buf_putc(b, ':');
        put_value(b, 1);
        sl_buf_putc(b, ',');
    }
    if (rn(30) == 0) {
        sl_buf_puts(b, "\"deep\":");
        put_deep(b, 55 + rn(15));
        sl_buf_putc(b, ',');
    }
    if (rn(40) == 0) {
        sl_buf_puts(b, "\"wide\":");
        put_wide_chain(b, 7 + rn(3), 30 + rn(4));
        sl_buf_putc(b, ',');
    }
    sl_buf_puts(b, "\"input\":{\"type\":\"filestream\"},\"host\":{\"name\":\"bench\"},"
                   "\"agent\":{\"type\":\"sluice-shipper\",\"version\":\"0.1.0\",\"name\":\"b\"},");
    if (order == 2) {
        sl_buf_puts(b, "\"@metadata\":{\"beat\":\"sluice\"},");
    }
    sl_buf_puts(b, "\"ecs\":{\"version\":\"8.0.0\"}");
    if (order == 3) {
        sl_buf_puts(b, ",\"@metadata\":{}");
    }
    sl_buf_putc(b, '}');
}

/* Random edits: bytes replaced, inserted, deleted; a cut; a slice doubled. */
static void mutate(struct sl_buf *b)
{
    static const char interesting[] = "\"\\{}[],: \n0\x80\xFF\x01" "aeu-.";
    for (unsigned m = 0, n = 1 + rn(3); m < n && b->len > 0; m++) {
        size_t at = rnd() % b->len;
        char c = rn(2) ? interesting[rn(sizeof(interesting) - 1)] : (char)rnd();
        switch (rn(5)) {
        case 0:
            b->data[at] = c;
            break;
        case 1:
            sl_buf_putc(b, 0);
            memmove(b->data + at + 1, b->data + at, b->len - 1 - at);
            b->data[at] = c;
            break;
        case 2:
            memmove(b->data + at, b->data + at + 1, b->len - 1 - at);
            b->len--;
            break;
        case 3:
            b->len = at;
            break;
        default: {
            size_t n2 = SL_MIN((size_t)rn(20), b->len - at);
            char tmp[20];
            memcpy(tmp, b->data + at, n2);
            sl_buf_append(b, tmp, n2);
            break;
        }
        }
    }
}

/* ---- comparisons ---- */

static struct sl_arena g_arena_new, g_arena_ref;
static size_t g_scanned, g_rejected, g_verbatim, g_failed_parses, g_members_parsed;

/* The text at its own allocation of exactly len bytes, so ASan sees any overread. */
static char *own_copy(const struct sl_buf *b)
{
    char *p = malloc(b->len ? b->len : 1);
    if (b->len) {
        memcpy(p, b->data, b->len);
    }
    return p;
}

static bool same_tree(const struct sl_value *a, const struct sl_value *b)
{
    struct sl_buf wa, wb;
    sl_buf_init(&wa, 0);
    sl_buf_init(&wb, 0);
    int ra = sl_json_write(&wa, a, NULL), rb = sl_json_write(&wb, b, NULL);
    bool same = ra == rb && wa.len == wb.len && memcmp(wa.data, wb.data, wa.len) == 0 &&
                a->type == b->type;
    sl_buf_free(&wa);
    sl_buf_free(&wb);
    return same;
}

static void report(const char *what, const char *p, size_t len)
{
    fprintf(stderr, "json_equiv: %s differs on %zu bytes: %.*s\n", what, len,
            (int)SL_MIN(len, (size_t)600), p);
}

/* Parses p[0..len) with both, every way; true when all agree. */
static bool compare_parse(const char *p, size_t len, const struct sl_json_limits *lim)
{
    struct sl_value a = {0}, b = {0};
    char ea[160], eb[160];
    bool ok = true;

    int ra = sl_json_parse(p, len, &a, lim, ea, sizeof(ea));
    int rb = ref_json_parse(p, len, &b, lim, eb, sizeof(eb));
    if (ra != rb || strcmp(ea, eb) != 0 || !same_tree(&a, &b)) {
        fprintf(stderr, "heap: %d \"%s\" / ref %d \"%s\"\n", ra, ea, rb, eb);
        ok = false;
    }
    g_failed_parses += ra != 0;
    sl_value_clear(&a);
    sl_value_clear(&b);

    struct sl_json_doc da, db;
    ra = sl_json_parse_doc(p, len, &a, &g_arena_new, lim, "@metadata", &da, ea, sizeof(ea));
    rb = ref_json_parse_doc(p, len, &b, &g_arena_ref, lim, "@metadata", &db, eb, sizeof(eb));
    if (ra != rb || strcmp(ea, eb) != 0 || !same_tree(&a, &b) || da.verbatim != db.verbatim ||
        da.cut_off != db.cut_off || da.cut_len != db.cut_len) {
        fprintf(stderr, "doc: %d \"%s\" v%d %zu+%zu / ref %d \"%s\" v%d %zu+%zu\n", ra, ea,
                da.verbatim, da.cut_off, da.cut_len, rb, eb, db.verbatim, db.cut_off,
                db.cut_len);
        ok = false;
    }
    g_verbatim += ra == 0 && da.verbatim;
    sl_value_clear(&a);
    sl_value_clear(&b);

    /* no room for the message: errors without one must agree too */
    ra = sl_json_parse_arena(p, len, &a, &g_arena_new, lim, NULL, 0);
    rb = ref_json_parse_arena(p, len, &b, &g_arena_ref, lim, NULL, 0);
    if (ra != rb || !same_tree(&a, &b) || (a.flags != b.flags)) {
        ok = false;
    }
    sl_value_clear(&a);
    sl_value_clear(&b);
    return ok;
}

/* Scans with both; when they vouch, parses each member span as the pipeline does. */
static bool compare_scan(const char *p, size_t len, const struct sl_json_limits *lim,
                         const char *cut)
{
    struct sl_json_member ma[SL_JSON_SCAN_MEMBERS], mb[SL_JSON_SCAN_MEMBERS];
    size_t na = 99, nb = 98;
    struct sl_json_doc da, db;
    memset(ma, 0xA5, sizeof(ma));
    memset(mb, 0xA5, sizeof(mb));
    bool sa = sl_json_scan(p, len, lim, cut, ma, &na, &da);
    bool sb = ref_json_scan(p, len, lim, cut, mb, &nb, &db);
    if (sa != sb || na != nb || da.verbatim != db.verbatim || da.cut_off != db.cut_off ||
        da.cut_len != db.cut_len) {
        fprintf(stderr, "scan: %d n%zu v%d %zu+%zu / ref %d n%zu v%d %zu+%zu\n", sa, na,
                da.verbatim, da.cut_off, da.cut_len, sb, nb, db.verbatim, db.cut_off,
                db.cut_len);
        return false;
    }
    if (!sa) {
        g_rejected++;
        return true;
    }
    g_scanned++;
    if (memcmp(ma, mb, na * sizeof(ma[0])) != 0) {
        fprintf(stderr, "scan: members differ\n");
        return false;
    }
    for (size_t i = 0; i < na; i++) {
        /* the member's value at its own allocation, under a memory budget that
         * is sometimes too small */
        struct sl_buf v = {0};
        sl_buf_init(&v, 0);
        sl_buf_append(&v, p + ma[i].val_off, ma[i].val_len);
        char *vp = own_copy(&v);
        struct sl_json_limits ml = {.max_depth = lim ? lim->max_depth : 0,
                                    .max_bytes = rn(4) ? 0 : 1 + rn(200)};
        struct sl_value a = {0}, b = {0};
        char ea[160], eb[160];
        int ra = sl_json_parse_arena(vp, v.len, &a, &g_arena_new, &ml, ea, sizeof(ea));
        int rb = ref_json_parse_arena(vp, v.len, &b, &g_arena_ref, &ml, eb, sizeof(eb));
        bool same = ra == rb && strcmp(ea, eb) == 0 && same_tree(&a, &b);
        g_members_parsed++;
        sl_value_clear(&a);
        sl_value_clear(&b);
        free(vp);
        sl_buf_free(&v);
        if (!same) {
            fprintf(stderr, "member %zu: %d \"%s\" / ref %d \"%s\"\n", i, ra, ea, rb, eb);
            return false;
        }
    }
    return true;
}

static bool compare_all(const struct sl_buf *text)
{
    static const struct sl_json_limits lims[] = {
        {0, 0}, {.max_depth = 3}, {.max_depth = 1}, {.max_depth = 64, .max_bytes = 700},
    };
    char *p = own_copy(text);
    bool ok = true;
    for (size_t i = 0; i < sizeof(lims) / sizeof(lims[0]) && ok; i++) {
        const struct sl_json_limits *lim = i == 0 && rn(2) ? NULL : &lims[i];
        ok = compare_scan(p, text->len, lim, "@metadata") &&
             compare_scan(p, text->len, lim, rn(2) ? NULL : "message") &&
             compare_parse(p, text->len, lim);
    }
    if (!ok) {
        report("result", p, text->len);
    }
    free(p);
    sl_arena_reset(&g_arena_new);
    sl_arena_reset(&g_arena_ref);
    return ok;
}

TEST(test_generated_events)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    unsigned failures = 0;
    for (unsigned i = 0; i < 8000 && failures < 5; i++) {
        sl_buf_reset(&b);
        g_bad = rn(3) == 0 ? 1 + rn(30) : 0;
        put_event(&b);
        if (!compare_all(&b)) {
            failures++;
        }
        /* the same event mutated a few ways */
        size_t len = b.len;
        char *orig = own_copy(&b);
        for (unsigned m = 0; m < 3 && failures < 5; m++) {
            sl_buf_reset(&b);
            sl_buf_append(&b, orig, len);
            mutate(&b);
            if (!compare_all(&b)) {
                failures++;
            }
        }
        free(orig);
    }
    CHECK_INT(failures, 0);
    /* the generator reaches every outcome, often */
    CHECK(g_scanned > 5000);
    CHECK(g_rejected > 5000);
    CHECK(g_verbatim > 5000);
    CHECK(g_failed_parses > 5000);
    CHECK(g_members_parsed > 50000);
    sl_buf_free(&b);
}

TEST(test_generated_values)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    unsigned failures = 0;
    for (unsigned i = 0; i < 12000 && failures < 5; i++) {
        sl_buf_reset(&b);
        g_bad = rn(3) == 0 ? 1 + rn(60) : 0;
        if (rn(2)) {
            put_object(&b, 0);
        } else {
            put_value(&b, 0);
        }
        if (rn(3) == 0) {
            mutate(&b);
        }
        if (!compare_all(&b)) {
            failures++;
        }
    }
    CHECK_INT(failures, 0);
    sl_buf_free(&b);
}

/* Every prefix of a few events: the scanner and parser at every end of input. */
TEST(test_every_truncation)
{
    struct sl_buf b, cut;
    sl_buf_init(&b, 0);
    sl_buf_init(&cut, 0);
    unsigned failures = 0;
    for (unsigned i = 0; i < 40 && failures < 5; i++) {
        sl_buf_reset(&b);
        g_bad = i % 4 == 3 ? 20 : 0;
        put_event(&b);
        for (size_t n = 0; n <= b.len && failures < 5; n++) {
            sl_buf_reset(&cut);
            sl_buf_append(&cut, b.data, n);
            if (!compare_all(&cut)) {
                failures++;
            }
        }
    }
    CHECK_INT(failures, 0);
    sl_buf_free(&b);
    sl_buf_free(&cut);
}

/* Nesting around the depth limits and the scanner's open-key bounds. */
TEST(test_depth_and_width_edges)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    unsigned failures = 0;
    for (unsigned n = 1; n < 80; n++) {
        for (unsigned r = 0; r < 4; r++) {
            sl_buf_reset(&b);
            g_bad = 0;
            sl_buf_puts(&b, "{\"a\":");
            put_deep(&b, n);
            sl_buf_putc(&b, '}');
            failures += !compare_all(&b);
        }
    }
    for (unsigned levels = 1; levels < 11; levels++) {
        for (unsigned keys = 26; keys < 36; keys++) {
            sl_buf_reset(&b);
            put_wide_chain(&b, levels, keys);
            failures += !compare_all(&b);
        }
    }
    CHECK_INT(failures, 0);
    sl_buf_free(&b);
}

/*
 * Deeper than the scanner follows (1024 open containers, only with a
 * max_depth above it): it says no, where the old one recursed, and the
 * parser - the same as before - decides. Within the limit they agree.
 */
TEST(test_scanner_depth_bound)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    struct sl_json_limits lim = {.max_depth = 5000};
    struct sl_json_member ms[SL_JSON_SCAN_MEMBERS];
    size_t n;
    struct sl_json_doc doc;
    for (unsigned depth = 1020; depth <= 1030; depth++) {
        sl_buf_reset(&b);
        /* arrays: a chain of objects would pass the 256 open keys first */
        sl_buf_puts(&b, "{\"k\":");
        for (unsigned i = 1; i < depth; i++) {
            sl_buf_putc(&b, '[');
        }
        for (unsigned i = 1; i < depth; i++) {
            sl_buf_putc(&b, ']');
        }
        sl_buf_putc(&b, '}');
        bool got = sl_json_scan(b.data, b.len, &lim, NULL, ms, &n, &doc);
        CHECK(got == (depth <= 1024));
        struct sl_value v = {0};
        CHECK_INT(sl_json_parse(b.data, b.len, &v, &lim, NULL, 0), 0);
        sl_value_clear(&v);
    }
    sl_buf_free(&b);
}

int main(void)
{
    sl_arena_init(&g_arena_new, 0);
    sl_arena_init(&g_arena_ref, 0);
    RUN(test_depth_and_width_edges);
    RUN(test_scanner_depth_bound);
    RUN(test_every_truncation);
    RUN(test_generated_values);
    RUN(test_generated_events);
    fprintf(stderr, "json_equiv: %zu scanned, %zu not vouched, %zu verbatim, %zu failed parses, "
            "%zu member parses\n", g_scanned, g_rejected, g_verbatim, g_failed_parses,
            g_members_parsed);
    sl_arena_free(&g_arena_new);
    sl_arena_free(&g_arena_ref);
    return TEST_SUMMARY();
}
