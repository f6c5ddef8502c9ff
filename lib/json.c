/*
 * json.c - JSON text <-> struct sl_value: a strict, bounded RFC 8259 parser
 * and the compact writer every output uses. Not a streaming parser, and not
 * a general-purpose library: it reads one complete value and writes one.
 *
 * The writer is on the shipper's hot path (one call per log line), so string
 * escaping copies runs of plain ASCII with one memcpy, finds the end of a run
 * eight bytes at a time, and writes into space reserved up front.
 *
 * Both directions treat bytes the same way: invalid UTF-8 becomes U+FFFD, one
 * replacement per "maximal subpart" (Unicode 15, section 3.9, Table 3-7), so a
 * line that is read, stored and written again always comes out as valid UTF-8.
 *
 * The parser is on the aggregator's hot path (every received event). It
 * gathers the members and items of open containers on a stack of its own and
 * copies them, when the container closes, into one vector of the exact size:
 * one allocation per container, and none for growing. Where that allocation
 * and those of strings and keys come from is the only difference between
 * sl_json_parse (the heap) and sl_json_parse_arena (an arena, value.h).
 * A string is a slice of the input unless it has escapes (a log line's \"):
 * those are decoded into a scratch on the parser's C stack (the heap only
 * past SCRATCH_INLINE), 16 bytes stored at a time between two escapes.
 */
#include "sluice/json.h"

#include <math.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define DEFAULT_MAX_DEPTH 64u
/* Strings up to this size are escaped into worst-case space (6 bytes per input
 * byte) reserved in one go; longer ones are measured first, so a big string
 * does not make the buffer grow to six times its size. */
#define FAST_ESCAPE_MAX 65536u
/* Objects with more members than this get a hash index while being parsed, so
 * hostile input with many keys cannot make duplicate detection quadratic. */
#define OBJ_INDEX_MIN 16u
/* Members/items of open containers held on the C stack before the parser's
 * stack moves to the heap: a typical event (a dozen keys, a few levels) fits. */
#define STACK_INLINE 32u
/* Spare member slots in the vector of an arena tree's root object: filters
 * typically add a few fields to an event, and these take them without the
 * vector moving to the heap (new keys and values are heap, as always). */
#define ROOT_SLACK 4u
/* Bytes of decoded (escaped) strings held on the C stack before the parser's
 * scratch moves to the heap: a log line with escaped quotes fits. */
#define SCRATCH_INLINE 1024u

static const char k_replacement[3] = {'\xEF', '\xBF', '\xBD'};  /* U+FFFD */
static const char k_hex[] = "0123456789abcdef";

/* ---- UTF-8 ---- */

/*
 * Length of the sequence at s (n >= 1 bytes available). *ok tells whether it
 * is well-formed; when it is not, the length is that of the maximal subpart,
 * which gets one U+FFFD.
 */
static inline size_t utf8_seq(const unsigned char *s, size_t n, bool *ok)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t need;
    *ok = false;
    if (c < 0x80) {
        *ok = true;
        return 1;
    }
    if (c < 0xC2) {
        return 1;  /* continuation byte or overlong lead C0/C1 */
    }
    if (c < 0xE0) {
        need = 2;
    } else if (c < 0xF0) {
        need = 3;
        if (c == 0xE0) {
            lo = 0xA0;  /* overlong */
        } else if (c == 0xED) {
            hi = 0x9F;  /* surrogates */
        }
    } else if (c < 0xF5) {
        need = 4;
        if (c == 0xF0) {
            lo = 0x90;  /* overlong */
        } else if (c == 0xF4) {
            hi = 0x8F;  /* above U+10FFFF */
        }
    } else {
        return 1;
    }
    if (n < 2 || s[1] < lo || s[1] > hi) {
        return 1;
    }
    for (size_t i = 2; i < need; i++) {
        if (i >= n || (s[i] & 0xC0) != 0x80) {
            return i;
        }
    }
    *ok = true;
    return need;
}

/* Bytes a JSON string cannot carry raw, or that need UTF-8 checking. */
static inline bool is_special(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
}

/*
 * Returns the first special byte in [s, end), or end. Sixteen bytes at a time
 * with SSE2 (one signed compare catches both < 0x20 and >= 0x80), else eight
 * with word tests that are exact as booleans: a clean block is skipped whole.
 */
static inline const unsigned char *scan_plain(const unsigned char *s, const unsigned char *end)
{
#if defined(__SSE2__)
    const __m128i space = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'),
                  bslash = _mm_set1_epi8('\\');
    while (end - s >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
        __m128i bad = _mm_or_si128(_mm_cmplt_epi8(v, space),
                                   _mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                                _mm_cmpeq_epi8(v, bslash)));
        unsigned mask = (unsigned)_mm_movemask_epi8(bad);
        if (mask) {
            return s + __builtin_ctz(mask);
        }
        s += 16;
    }
#endif
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (end - s >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
        uint64_t hit = (w | ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((bs - ones) & ~bs));
        if (hit & highs) {
            break;
        }
        s += 8;
    }
    while (s < end && !is_special(*s)) {
        s++;
    }
    return s;
}

size_t sl_utf8_valid_prefix(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    if (!s) {
        return 0;
    }
    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        bool ok;
        size_t n = utf8_seq(p, (size_t)(end - p), &ok);
        if (!ok) {
            break;
        }
        p += n;
    }
    return (size_t)(p - (const unsigned char *)s);
}

/* ---- string escaping ---- */

static inline char short_escape(unsigned char c)
{
    switch (c) {
    case '"': return '"';
    case '\\': return '\\';
    case '\b': return 'b';
    case '\f': return 'f';
    case '\n': return 'n';
    case '\r': return 'r';
    case '\t': return 't';
    default: return 0;
    }
}

/* Exact size of the quoted, escaped form of s. */
static size_t escaped_len(const unsigned char *s, size_t len)
{
    const unsigned char *end = s + len;
    size_t n = 2;
    while (s < end) {
        const unsigned char *run = s;
        s = scan_plain(s, end);
        n += (size_t)(s - run);
        if (s == end) {
            break;
        }
        if (*s < 0x80) {
            n += short_escape(*s) ? 2 : 6;
            s++;
            continue;
        }
        bool ok;
        size_t k = utf8_seq(s, (size_t)(end - s), &ok);
        n += ok ? k : sizeof(k_replacement);
        s += k;
    }
    return n;
}

/* Writes the quoted, escaped form of s at o, which has room for it. */
static char *escape_into(char *o, const unsigned char *s, size_t len)
{
    const unsigned char *end = s + len;
    *o++ = '"';
    while (s < end) {
        s = sl_json_copy_plain(&o, s, end);
        if (s == end) {
            break;
        }
        unsigned char c = *s;
        if (c < 0x80) {
            char e = short_escape(c);
            *o++ = '\\';
            if (e) {
                *o++ = e;
            } else {
                memcpy(o, "u00", 3);
                o[3] = k_hex[c >> 4];
                o[4] = k_hex[c & 15];
                o += 5;
            }
            s++;
            continue;
        }
        bool ok;
        size_t k = utf8_seq(s, (size_t)(end - s), &ok);
        if (ok) {
            memcpy(o, s, k);
            o += k;
        } else {
            memcpy(o, k_replacement, sizeof(k_replacement));
            o += sizeof(k_replacement);
        }
        s += k;
    }
    *o++ = '"';
    return o;
}

/* The quoted, escaped form of any s at b's end: sl_json_put_str's general case. */
static int put_str_any(struct sl_buf *b, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t need;
    if (!s || len == 0) {
        return sl_buf_append(b, "\"\"", 2);
    }
    if (len <= FAST_ESCAPE_MAX && len * 6 + 2 <= b->max - b->len) {
        need = len * 6 + 2;  /* worst case: every byte a \u00XX */
    } else {
        if (len > SIZE_MAX / 8) {
            return SL_ELIMIT;
        }
        need = escaped_len(u, len);
    }
    int rc = sl_buf_reserve(b, need);
    if (rc != 0) {
        return rc;
    }
    char *end = escape_into(b->data + b->len, u, len);
    b->len = (size_t)(end - b->data);
    return 0;
}

/*
 * Most strings a writer meets (keys, short values) are short and plain: when
 * the buffer already has room for them as they are, they go in with one copy
 * and no worst-case reservation. Any other (a byte to escape, no room) is
 * written again from the start by put_str_any; b->len moves only on success.
 */
static inline __attribute__((always_inline)) int put_str(struct sl_buf *b, const char *s,
                                                       size_t len)
{
    if (s && len <= 64 && b->cap > b->len && len + 2 <= b->max - b->len &&
        len + 2 < b->cap - b->len) {
        const unsigned char *u = (const unsigned char *)s;
        char *o = b->data + b->len;
        *o++ = '"';
        if (sl_json_copy_plain(&o, u, u + len) == u + len) {
            *o++ = '"';
            b->len = (size_t)(o - b->data);
            return 0;
        }
    }
    return put_str_any(b, s, len);
}

int sl_json_put_str(struct sl_buf *b, const char *s, size_t len)
{
    return put_str(b, s, len);
}

/* ---- writer ---- */

static int put_int(struct sl_buf *b, int64_t i)
{
    char tmp[24];
    char *p = tmp + sizeof(tmp);
    uint64_t u = i < 0 ? 0 - (uint64_t)i : (uint64_t)i;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (i < 0) {
        *--p = '-';
    }
    return sl_buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

static int put_double(struct sl_buf *b, double d)
{
    if (!isfinite(d)) {
        return sl_buf_append(b, "null", 4);
    }
    char tmp[48];
    int n = 0;
    /* The shortest of 15, 16, 17 digits that reads back exactly: 0.1 stays
     * "0.1" instead of "0.10000000000000001", and nothing is lost. */
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof(tmp) - 2, "%.*g", prec, d);
        if (n < 0 || (size_t)n >= sizeof(tmp) - 2) {
            return SL_EINVAL;
        }
        if (prec == 17 || strtod(tmp, NULL) == d) {
            break;
        }
    }
    /* A double must read back as a double: "2" would come back an integer.
     * A locale's decimal comma is turned back into a point. */
    bool integral = true;
    for (int i = 0; i < n; i++) {
        char c = tmp[i];
        if (c == 'e') {
            integral = false;
        } else if (!((c >= '0' && c <= '9') || c == '-' || c == '+')) {
            tmp[i] = '.';
            integral = false;
        }
    }
    if (integral) {
        tmp[n++] = '.';
        tmp[n++] = '0';
    }
    return sl_buf_append(b, tmp, (size_t)n);
}

static int write_value(struct sl_buf *b, const struct sl_value *v, const char *skip,
                       size_t skiplen);

/*
 * ,"key":value (no comma when first). Most members are a short plain key and
 * a short plain string or a number: when the buffer has room for the longest
 * such member, the key, the colon and a plain string value go in with one
 * room check, no worst-case reservation and no call per token. Anything else
 * goes token by token as before, from where the fast path stopped.
 */
static inline __attribute__((always_inline)) int
put_member(struct sl_buf *b, bool comma, const char *key, size_t klen, const struct sl_value *v)
{
    enum { SHORT = 64, MOST = 1 + SHORT + 3 + SHORT + 2 };
    if (klen <= SHORT && b->cap > b->len && MOST <= b->max - b->len &&
        MOST < b->cap - b->len) {
        char *o = b->data + b->len;
        *o = ',';
        o += comma;
        *o++ = '"';
        const unsigned char *k = (const unsigned char *)key;
        if (sl_json_copy_plain(&o, k, k + klen) == k + klen) {
            *o++ = '"';
            *o++ = ':';
            if (v->type == SL_V_STRING && v->u.s.len <= SHORT) {
                const unsigned char *u = (const unsigned char *)v->u.s.ptr;
                char *q = o;
                *q++ = '"';
                if (u && sl_json_copy_plain(&q, u, u + v->u.s.len) == u + v->u.s.len) {
                    *q++ = '"';
                    b->len = (size_t)(q - b->data);
                    return 0;
                }
            }
            b->len = (size_t)(o - b->data);
            return write_value(b, v, NULL, 0);
        }
    }
    int rc;
    if ((comma && (rc = sl_buf_putc(b, ',')) != 0) || (rc = put_str(b, key, klen)) != 0 ||
        (rc = sl_buf_putc(b, ':')) != 0) {
        return rc;
    }
    return write_value(b, v, NULL, 0);
}

int sl_json_put_member(struct sl_buf *b, bool comma, const char *key, size_t klen,
                       const struct sl_value *v)
{
    size_t mark = b->len;
    int rc = put_member(b, comma, key, klen, v);
    if (rc != 0) {
        b->len = mark;
    }
    return rc;
}

static int write_value(struct sl_buf *b, const struct sl_value *v, const char *skip,
                       size_t skiplen)
{
    int rc = 0;
    switch (v->type) {
    case SL_V_NULL:
        return sl_buf_append(b, "null", 4);
    case SL_V_BOOL:
        return v->u.b ? sl_buf_append(b, "true", 4) : sl_buf_append(b, "false", 5);
    case SL_V_INT:
        return put_int(b, v->u.i);
    case SL_V_DOUBLE:
        return put_double(b, v->u.d);
    case SL_V_STRING:
        return put_str(b, v->u.s.ptr, v->u.s.len);
    case SL_V_ARRAY:
        if ((rc = sl_buf_putc(b, '[')) != 0) {
            return rc;
        }
        for (size_t i = 0; i < v->u.a.len; i++) {
            if (i && (rc = sl_buf_putc(b, ',')) != 0) {
                return rc;
            }
            if ((rc = write_value(b, &v->u.a.items[i], NULL, 0)) != 0) {
                return rc;
            }
        }
        return sl_buf_putc(b, ']');
    case SL_V_OBJECT: {
        if ((rc = sl_buf_putc(b, '{')) != 0) {
            return rc;
        }
        bool first = true;
        for (size_t i = 0; i < v->u.o.len; i++) {
            const struct sl_member *m = &v->u.o.items[i];
            if (skip && m->klen == skiplen && memcmp(m->key, skip, skiplen) == 0) {
                continue;
            }
            if ((rc = put_member(b, !first, m->key, m->klen, &m->v)) != 0) {
                return rc;
            }
            first = false;
        }
        return sl_buf_putc(b, '}');
    }
    default:
        return SL_EINVAL;
    }
}

/* On failure the buffer is left as it was, so a caller can skip one event. */
int sl_json_write(struct sl_buf *b, const struct sl_value *v, const char *skip_key)
{
    if (!v) {
        return SL_EINVAL;
    }
    size_t mark = b->len;
    int rc = write_value(b, v, skip_key, skip_key ? strlen(skip_key) : 0);
    if (rc != 0) {
        b->len = mark;
    }
    return rc;
}

/* Pretty form: depth levels of two spaces; scalars as the compact writer puts them. */
static int write_pretty(struct sl_buf *b, const struct sl_value *v, unsigned depth)
{
    bool obj = v->type == SL_V_OBJECT;
    size_t n = obj ? v->u.o.len : v->type == SL_V_ARRAY ? v->u.a.len : 0;
    if ((!obj && v->type != SL_V_ARRAY) || n == 0 || depth > 256) {
        return write_value(b, v, NULL, 0);
    }
    int rc = sl_buf_puts(b, obj ? "{\n" : "[\n");
    for (size_t i = 0; i < n && rc == 0; i++) {
        for (unsigned d = 0; d <= depth && rc == 0; d++) {
            rc = sl_buf_puts(b, "  ");
        }
        if (obj && rc == 0) {
            const struct sl_member *m = &v->u.o.items[i];
            rc = sl_json_put_str(b, m->key, m->klen);
            rc = rc ? rc : sl_buf_puts(b, ": ");
        }
        rc = rc ? rc : write_pretty(b, obj ? &v->u.o.items[i].v : &v->u.a.items[i], depth + 1);
        rc = rc ? rc : sl_buf_puts(b, i + 1 < n ? ",\n" : "\n");
    }
    for (unsigned d = 0; d < depth && rc == 0; d++) {
        rc = sl_buf_puts(b, "  ");
    }
    return rc ? rc : sl_buf_putc(b, obj ? '}' : ']');
}

int sl_json_write_pretty(struct sl_buf *b, const struct sl_value *v)
{
    if (!v) {
        return SL_EINVAL;
    }
    size_t mark = b->len;
    int rc = write_pretty(b, v, 0);
    if (rc != 0) {
        b->len = mark;
    }
    return rc;
}

/* ---- parser ---- */

struct parser {
    const unsigned char *start, *p, *end;
    unsigned max_depth;
    size_t max_bytes;       /* limits->max_bytes; SIZE_MAX: none */
    size_t bytes;           /* what the tree takes so far (max_bytes' count) */
    char *err;
    size_t errlen;
    /* Decoded strings that are not a plain slice of the input: in
     * scratch_inline until one is longer, then on the heap. */
    char *scratch;
    size_t scratch_cap;
    struct sl_arena *arena; /* NULL: strings, keys and vectors come from the heap */
    /* Members of the objects being parsed, innermost last: each open object
     * owns ms[its base, mtop). vs/vtop/vcap: the same for array items. They
     * start in the inline arrays and move to the heap only for big input. */
    struct sl_member *ms;
    size_t mtop, mcap;
    struct sl_value *vs;
    size_t vtop, vcap;
    struct sl_member ms_inline[STACK_INLINE];
    struct sl_value vs_inline[STACK_INLINE];
    char scratch_inline[SCRATCH_INLINE];
    /* What sl_json_parse_doc reports (see json.h). */
    bool verbatim;         /* no whitespace, repair, duplicate key or infinity so far */
    const char *cut_key;   /* the root member whose span is recorded; NULL: none */
    size_t cut_klen;
    size_t cut_off, cut_len;
};

static int fail_at(struct parser *ps, const unsigned char *at, int rc, const char *why)
{
    if (ps->err && ps->errlen) {
        snprintf(ps->err, ps->errlen, "%s at offset %zu", why, (size_t)(at - ps->start));
    }
    return rc;
}

/* Counts n more bytes of tree; SL_E2BIG once over limits->max_bytes. */
static inline int charge(struct parser *ps, size_t n)
{
    if (n > ps->max_bytes - ps->bytes) {
        return fail_at(ps, ps->p, SL_E2BIG, "parsed event over its memory limit");
    }
    ps->bytes += n;
    return 0;
}

static inline void skip_ws(struct parser *ps)
{
    const unsigned char *p = ps->p;
    while (p < ps->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) {
        p++;
    }
    ps->verbatim = ps->verbatim && p == ps->p;
    ps->p = p;
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9') {
            d = c - '0';
        } else if (c >= 'a' && c <= 'f') {
            d = c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            d = c - 'A' + 10;
        } else {
            return -1;
        }
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

/* Makes room for n more bytes after the first len of the scratch (bounded by
 * the input: at most 3 bytes per input byte, so no limit of its own). */
static __attribute__((noinline)) void scratch_grow(struct parser *ps, size_t len, size_t n)
{
    size_t cap = ps->scratch_cap * 2;
    while (cap - len < n) {
        cap *= 2;
    }
    if (ps->scratch == ps->scratch_inline) {
        ps->scratch = sl_malloc(cap);
        memcpy(ps->scratch, ps->scratch_inline, len);
    } else {
        ps->scratch = sl_realloc(ps->scratch, cap);
    }
    ps->scratch_cap = cap;
}

/*
 * The scratch being written: its bytes and room in locals, which the
 * compiler keeps in registers (stores through a char pointer may alias any
 * field of the parser), put back by sink_done.
 */
struct sink {
    char *buf;
    size_t len, cap;
};

static inline char *sink_room(struct parser *ps, struct sink *k, size_t n)
{
    if (n > k->cap - k->len) {
        scratch_grow(ps, k->len, n);
        k->buf = ps->scratch;
        k->cap = ps->scratch_cap;
    }
    return k->buf + k->len;
}

static inline void sink_put(struct parser *ps, struct sink *k, const void *p, size_t n)
{
    memcpy(sink_room(ps, k, n), p, n);
    k->len += n;
}

static void put_utf8(struct parser *ps, struct sink *k, unsigned cp)
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
    sink_put(ps, k, u, n);
}

/* The byte a one-byte escape (\" \\ \/ \b \f \n \r \t) stands for, by its second byte; 0: none. */
static const char k_unescape[256] = {
    ['"'] = '"', ['\\'] = '\\', ['/'] = '/', ['b'] = '\b',
    ['f'] = '\f', ['n'] = '\n', ['r'] = '\r', ['t'] = '\t',
};

/*
 * A string that is not a plain slice: its decoding goes to the scratch. s is
 * the first special byte (or end) after the plain bytes [start, s). Plain
 * blocks of 16 are stored into the scratch before they are tested, so that a
 * run between two escapes costs no copy call of its own.
 */
static int parse_string_decode(struct parser *ps, const unsigned char *start,
                               const unsigned char *s, const char **out, size_t *outlen)
{
    const unsigned char *end = ps->end;
    struct sink k = {ps->scratch, 0, ps->scratch_cap};
    sink_put(ps, &k, start, (size_t)(s - start));
    for (;;) {
#if defined(__SSE2__)
        const __m128i space = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'),
                      bslash = _mm_set1_epi8('\\');
        while (end - s >= 16) {
            char *o = sink_room(ps, &k, 16);
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
            _mm_storeu_si128((__m128i *)(void *)o, v);
            __m128i bad = _mm_or_si128(_mm_cmplt_epi8(v, space),
                                       _mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                                    _mm_cmpeq_epi8(v, bslash)));
            unsigned mask = (unsigned)_mm_movemask_epi8(bad);
            if (mask) {
                unsigned n = (unsigned)__builtin_ctz(mask);
                k.len += n;
                s += n;
                goto special;
            }
            k.len += 16;
            s += 16;
        }
#endif
        {
            const unsigned char *run = s;
            s = scan_plain(s, end);
            sink_put(ps, &k, run, (size_t)(s - run));
        }
#if defined(__SSE2__)
    special:
#endif
        if (s == end) {
            return fail_at(ps, s, SL_EINVAL, "unterminated string");
        }
        unsigned char c = *s;
        if (c == '"') {
            *out = k.buf;
            *outlen = k.len;
            ps->p = s + 1;
            return 0;
        }
        if (c < 0x20) {
            return fail_at(ps, s, SL_EINVAL, "control character in string");
        }
        if (c >= 0x80) {
            bool ok;
            size_t n = utf8_seq(s, (size_t)(end - s), &ok);
            if (ok) {
                sink_put(ps, &k, s, n);
            } else {
                ps->verbatim = false;  /* repaired: the text differs from what is kept */
                sink_put(ps, &k, k_replacement, sizeof(k_replacement));
            }
            s += n;
            continue;
        }
        /* backslash */
        const unsigned char *esc = s++;
        if (s == end) {
            return fail_at(ps, s, SL_EINVAL, "unterminated string");
        }
        char e = k_unescape[*s];
        if (e) {
            *sink_room(ps, &k, 1) = e;
            k.len++;
            s++;
            continue;
        }
        if (*s++ != 'u') {
            return fail_at(ps, esc, SL_EINVAL, "bad escape");
        }
        unsigned cp, lo;
        if (end - s < 4 || hex4(s, &cp) != 0) {
            return fail_at(ps, esc, SL_EINVAL, "bad \\u escape");
        }
        s += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            /* A high surrogate pairs only with an immediately following low one. */
            if (end - s >= 6 && s[0] == '\\' && s[1] == 'u' && hex4(s + 2, &lo) == 0 &&
                lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                s += 6;
            } else {
                cp = 0xFFFD;
            }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            cp = 0xFFFD;
        }
        ps->verbatim = ps->verbatim && cp != 0xFFFD;
        put_utf8(ps, &k, cp);
    }
}

/*
 * Parses a string whose opening quote is at ps->p. The result is either a
 * slice of the input (no escapes, valid UTF-8: the common case) or the
 * scratch buffer; it is valid until the next string is parsed.
 */
static int parse_string(struct parser *ps, const char **out, size_t *outlen)
{
    const unsigned char *start = ps->p + 1, *end = ps->end;
    const unsigned char *s = start;
    for (;;) {
        s = scan_plain(s, end);
        if (s < end && *s == '"') {
            *out = (const char *)start;
            *outlen = (size_t)(s - start);
            ps->p = s + 1;
            return 0;
        }
        if (s == end || *s < 0x80) {
            break;  /* unterminated, or a control byte or an escape */
        }
        bool ok;
        size_t k = utf8_seq(s, (size_t)(end - s), &ok);
        if (!ok) {
            break;
        }
        s += k;
    }
    return parse_string_decode(ps, start, s, out, outlen);
}

static inline bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int parse_number(struct parser *ps, struct sl_value *v)
{
    const unsigned char *start = ps->p, *s = start, *end = ps->end;
    bool neg = false, integer = true;

    if (*s == '-') {
        neg = true;
        s++;
    }
    if (s == end || !is_digit(*s)) {
        return fail_at(ps, s, SL_EINVAL, "invalid number");
    }
    const unsigned char *digits = s;
    if (*s == '0') {
        s++;
        if (s < end && is_digit(*s)) {
            return fail_at(ps, start, SL_EINVAL, "leading zero in number");
        }
    } else {
        while (s < end && is_digit(*s)) {
            s++;
        }
    }
    const unsigned char *digits_end = s;
    if (s < end && *s == '.') {
        integer = false;
        s++;
        if (s == end || !is_digit(*s)) {
            return fail_at(ps, s, SL_EINVAL, "invalid number");
        }
        while (s < end && is_digit(*s)) {
            s++;
        }
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        integer = false;
        s++;
        if (s < end && (*s == '+' || *s == '-')) {
            s++;
        }
        if (s == end || !is_digit(*s)) {
            return fail_at(ps, s, SL_EINVAL, "invalid number");
        }
        while (s < end && is_digit(*s)) {
            s++;
        }
    }
    ps->p = s;

    /* "-0" is kept as the double -0.0: as an integer it would lose its sign. */
    size_t ndigits = (size_t)(digits_end - digits);
    if (integer && ndigits <= 19 && !(neg && ndigits == 1 && *digits == '0')) {
        uint64_t acc = 0;
        for (const unsigned char *d = digits; d < digits_end; d++) {
            acc = acc * 10 + (uint64_t)(*d - '0');  /* 19 digits cannot wrap */
        }
        if (!neg && acc <= (uint64_t)INT64_MAX) {
            sl_value_set_int(v, (int64_t)acc);
            return 0;
        }
        if (neg && acc <= (uint64_t)INT64_MAX + 1) {
            sl_value_set_int(v, acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc);
            return 0;
        }
    }

    /* strtod needs a NUL-terminated copy: the input is not terminated. */
    size_t n = (size_t)(s - start);
    char small[64];
    char *tmp = n < sizeof(small) ? small : sl_malloc(n + 1);
    memcpy(tmp, start, n);
    tmp[n] = '\0';
    char *stop;
    double d = strtod(tmp, &stop);
    bool whole = stop == tmp + n;
    if (tmp != small) {
        free(tmp);
    }
    if (!whole) {
        return fail_at(ps, start, SL_EINVAL, "number not convertible (LC_NUMERIC?)");
    }
    ps->verbatim = ps->verbatim && isfinite(d);
    sl_value_set_double(v, d);  /* out of range: +-inf, written back as null */
    return 0;
}

static int parse_value(struct parser *ps, struct sl_value *v, unsigned depth);

/* ---- where the parsed tree's memory comes from ---- */

/*
 * A NUL-terminated copy of s[0..n), with the flag that says who owns it. A
 * string without escapes is a slice of the input, so this is its only copy.
 */
static char *tree_str(struct parser *ps, const char *s, size_t n, uint8_t *flags)
{
    if (ps->arena) {
        *flags = SL_VF_ARENA;
        return sl_arena_strndup(ps->arena, s, n);
    }
    *flags = 0;
    char *p = sl_malloc(n + 1);
    if (n) {
        memcpy(p, s, n);
    }
    p[n] = '\0';
    return p;
}

/*
 * The items vector of a container being parsed. A heap tree's is allocated
 * when its first member or item arrives, with the capacity sl_obj_put and
 * sl_arr_push would start with: the heap then sees the order and sizes it
 * saw before the parser had a stack - vector, then children - which matters
 * when a window of events is freed at once (children-then-vector order makes
 * glibc coalesce and consolidate on nearly every free), and a filter adding
 * a field does not realloc straight away. An arena vector is allocated once,
 * exact, when the container closes: growing it later moves it to the heap
 * anyway - except at an event's root, where filters add most fields, which
 * gets ROOT_SLACK spare slots.
 */
struct vec {
    void *items;  /* heap trees only: allocated at the first element */
    size_t cap;
};

static void vec_start(struct parser *ps, struct vec *vec, size_t first_cap, size_t elem)
{
    if (!ps->arena && !vec->items) {
        vec->items = sl_malloc(first_cap * elem);
        vec->cap = first_cap;
    }
}

/* Fills the vector with the n elements at src; returns it, sets flags and *cap. */
static void *vec_finish(struct parser *ps, struct vec *vec, const void *src, size_t n,
                        size_t elem, size_t align, bool root, uint8_t *flags, size_t *cap)
{
    void *p;
    if (ps->arena) {
        *cap = root ? n + ROOT_SLACK : n;
        *flags = SL_VF_ARENA;
        p = sl_arena_alloc_aligned(ps->arena, *cap * elem, align);
    } else {
        size_t c = vec->cap;
        while (c < n) {
            c *= 2;
        }
        if (c != vec->cap) {
            vec->items = sl_realloc(vec->items, c * elem);
        }
        *cap = c;
        *flags = 0;
        p = vec->items;
        vec->items = NULL;  /* the tree owns it now */
    }
    memcpy(p, src, n * elem);
    return p;
}

/* Doubles a parser stack; the first time, it leaves the inline array. */
static void *stack_grow(void *stack, const void *inline_buf, size_t *cap, size_t elem)
{
    size_t ncap = *cap * 2;
    void *p;
    if (stack == inline_buf) {
        p = sl_malloc(ncap * elem);
        memcpy(p, stack, *cap * elem);
    } else {
        p = sl_realloc(stack, ncap * elem);
    }
    *cap = ncap;
    return p;
}

/* Open-addressing index of member positions, for big objects only. */
struct key_index {
    uint32_t *slot;  /* member index + 1; 0 is empty */
    size_t mask;
};

/* Keyed per process (common.h): keys from outside cannot be made to collide. */
static inline uint64_t key_hash(const char *k, size_t n)
{
    return sl_hash_bytes(k, n);
}

/* Finds key among ms[], or the empty slot where it belongs. */
static uint32_t *index_find(const struct key_index *ix, const struct sl_member *ms, const char *k,
                            size_t n)
{
    size_t i = (size_t)key_hash(k, n) & ix->mask;
    for (;;) {
        uint32_t *s = &ix->slot[i];
        if (*s == 0) {
            return s;
        }
        const struct sl_member *m = &ms[*s - 1];
        if (sl_member_is(m, k, n, sl_key_head(k, n))) {
            return s;
        }
        i = (i + 1) & ix->mask;
    }
}

static void index_rebuild(struct key_index *ix, const struct sl_member *ms, size_t len)
{
    size_t cap = 64;
    while (cap < len * 2 + 2) {
        cap *= 2;
    }
    free(ix->slot);
    ix->slot = sl_calloc(cap, sizeof(uint32_t));
    ix->mask = cap - 1;
    for (size_t i = 0; i < len; i++) {
        *index_find(ix, ms, ms[i].key, ms[i].klen) = (uint32_t)(i + 1);
    }
}

/*
 * The position (from base) of the member for key k in the object being
 * parsed: the existing one, its value cleared (the last duplicate wins, in
 * the first one's place), or a new one appended. SIZE_MAX: too many members.
 * Positions, not pointers: the stack may move while the value is parsed.
 */
static size_t object_slot(struct parser *ps, size_t base, struct key_index *ix, const char *k,
                          size_t n)
{
    struct sl_member *ms = ps->ms + base;
    size_t len = ps->mtop - base;
    if (!ix->slot) {
        uint32_t head = sl_key_head(k, n);
        for (size_t i = 0; i < len; i++) {
            if (sl_member_is(&ms[i], k, n, head)) {
                sl_value_clear(&ms[i].v);
                ps->verbatim = false;
                return i;
            }
        }
        if (len >= OBJ_INDEX_MIN) {
            index_rebuild(ix, ms, len);
        }
    } else if ((len + 1) * 2 > ix->mask + 1) {
        index_rebuild(ix, ms, len);
    }
    if (ix->slot) {
        uint32_t *s = index_find(ix, ms, k, n);
        if (*s) {
            sl_value_clear(&ms[*s - 1].v);
            ps->verbatim = false;
            return *s - 1;
        }
        if (len >= UINT32_MAX - 1) {
            return SIZE_MAX;
        }
        *s = (uint32_t)(len + 1);
    }
    if (ps->mtop == ps->mcap) {
        ps->ms = stack_grow(ps->ms, ps->ms_inline, &ps->mcap, sizeof(struct sl_member));
    }
    struct sl_member *m = &ps->ms[ps->mtop++];
    m->khead = sl_key_head(k, n);
    m->key = tree_str(ps, k, n, &m->kflags);  /* now: k may be in scratch, reused next */
    m->klen = n;
    memset(&m->v, 0, sizeof(m->v));
    return len;
}

/*
 * Records the span of the root member from kstart (its key's quote) to ps->p
 * (just past its value) together with one comma, so that copying the text
 * around it leaves a valid object: the comma before it, or for the first
 * member the one after. Only meaningful while the text is verbatim (compact).
 */
static void cut_member(struct parser *ps, const unsigned char *kstart, bool first)
{
    size_t off = (size_t)(kstart - ps->start), end = (size_t)(ps->p - ps->start);
    if (!first) {
        off--;
    } else if (ps->p < ps->end && *ps->p == ',') {
        end++;
    }
    ps->cut_off = off;
    ps->cut_len = end - off;
}

/* ps->p is at '{'; v is null. On error v stays null and nothing is left allocated. */
static int parse_object(struct parser *ps, struct sl_value *v, unsigned depth)
{
    struct key_index ix = {NULL, 0};
    struct vec vec = {NULL, 0};
    size_t base = ps->mtop;
    int rc;
    ps->p++;  /* '{' */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        v->type = SL_V_OBJECT;
        return 0;
    }
    for (;;) {
        if (ps->p == ps->end || *ps->p != '"') {
            rc = fail_at(ps, ps->p, SL_EINVAL, "expected object key");
            goto fail;
        }
        const char *k;
        size_t klen;
        const unsigned char *kstart = ps->p;
        if ((rc = parse_string(ps, &k, &klen)) != 0) {
            goto fail;
        }
        bool cut = depth == 1 && ps->cut_key && klen == ps->cut_klen &&
                   memcmp(k, ps->cut_key, klen) == 0;
        bool first = ps->mtop == base;
        if ((rc = charge(ps, sizeof(struct sl_member) + klen + 1)) != 0) {
            goto fail;
        }
        vec_start(ps, &vec, 8, sizeof(struct sl_member));
        size_t at = object_slot(ps, base, &ix, k, klen);
        if (at == SIZE_MAX) {
            rc = fail_at(ps, ps->p, SL_ELIMIT, "too many object members");
            goto fail;
        }
        skip_ws(ps);
        if (ps->p == ps->end || *ps->p != ':') {
            rc = fail_at(ps, ps->p, SL_EINVAL, "expected ':'");
            goto fail;
        }
        ps->p++;
        skip_ws(ps);
        struct sl_value item = {0};
        if ((rc = parse_value(ps, &item, depth)) != 0) {
            goto fail;
        }
        ps->ms[base + at].v = item;
        if (cut) {
            cut_member(ps, kstart, first);
        }
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            skip_ws(ps);
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            break;
        }
        rc = fail_at(ps, ps->p, SL_EINVAL, "expected ',' or '}'");
        goto fail;
    }
    size_t n = ps->mtop - base;
    v->type = SL_V_OBJECT;
    v->u.o.items = vec_finish(ps, &vec, ps->ms + base, n, sizeof(struct sl_member),
                              alignof(struct sl_member), depth == 1, &v->flags, &v->u.o.cap);
    v->u.o.len = n;
    ps->mtop = base;
    free(ix.slot);
    return 0;
fail:
    for (size_t i = base; i < ps->mtop; i++) {
        struct sl_member *m = &ps->ms[i];
        if (!(m->kflags & SL_VF_ARENA)) {
            free(m->key);
        }
        sl_value_clear(&m->v);
    }
    ps->mtop = base;
    free(ix.slot);
    free(vec.items);
    return rc;
}

/* ps->p is at '['; v is null. On error v stays null and nothing is left allocated. */
static int parse_array(struct parser *ps, struct sl_value *v, unsigned depth)
{
    struct vec vec = {NULL, 0};
    size_t base = ps->vtop;
    int rc;
    ps->p++;  /* '[' */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        v->type = SL_V_ARRAY;
        return 0;
    }
    for (;;) {
        struct sl_value item = {0};
        vec_start(ps, &vec, 4, sizeof(struct sl_value));
        if ((rc = parse_value(ps, &item, depth)) != 0 ||
            (rc = charge(ps, sizeof(struct sl_value))) != 0) {
            sl_value_clear(&item);
            goto fail;
        }
        if (ps->vtop == ps->vcap) {
            ps->vs = stack_grow(ps->vs, ps->vs_inline, &ps->vcap, sizeof(struct sl_value));
        }
        ps->vs[ps->vtop++] = item;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            skip_ws(ps);
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            break;
        }
        rc = fail_at(ps, ps->p, SL_EINVAL, "expected ',' or ']'");
        goto fail;
    }
    size_t n = ps->vtop - base;
    v->type = SL_V_ARRAY;
    v->u.a.items = vec_finish(ps, &vec, ps->vs + base, n, sizeof(struct sl_value),
                              alignof(struct sl_value), false, &v->flags, &v->u.a.cap);
    v->u.a.len = n;
    ps->vtop = base;
    return 0;
fail:
    for (size_t i = base; i < ps->vtop; i++) {
        sl_value_clear(&ps->vs[i]);
    }
    ps->vtop = base;
    free(vec.items);
    return rc;
}

static int literal(struct parser *ps, const char *word, size_t n)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) {
        return fail_at(ps, ps->p, SL_EINVAL, "invalid literal");
    }
    ps->p += n;
    return 0;
}

/* ps->p is at the first byte of a value (whitespace already skipped). */
static int parse_value(struct parser *ps, struct sl_value *v, unsigned depth)
{
    int rc;
    if (ps->p == ps->end) {
        return fail_at(ps, ps->p, SL_EINVAL, "unexpected end of input");
    }
    switch (*ps->p) {
    case '{':
    case '[':
        if (depth >= ps->max_depth) {
            return fail_at(ps, ps->p, SL_ELIMIT, "nesting too deep");
        }
        return *ps->p == '{' ? parse_object(ps, v, depth + 1) : parse_array(ps, v, depth + 1);
    case '"': {
        const char *s;
        size_t n;
        if ((rc = parse_string(ps, &s, &n)) != 0 || (rc = charge(ps, n + 1)) != 0) {
            return rc;
        }
        v->u.s.ptr = tree_str(ps, s, n, &v->flags);
        v->u.s.len = n;
        v->type = SL_V_STRING;
        return 0;
    }
    case 't':
        if ((rc = literal(ps, "true", 4)) == 0) {
            sl_value_set_bool(v, true);
        }
        return rc;
    case 'f':
        if ((rc = literal(ps, "false", 5)) == 0) {
            sl_value_set_bool(v, false);
        }
        return rc;
    case 'n':
        if ((rc = literal(ps, "null", 4)) == 0) {
            sl_value_set_null(v);
        }
        return rc;
    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return parse_number(ps, v);
    default:
        return fail_at(ps, ps->p, SL_EINVAL, "unexpected character");
    }
}

static int parse_document(const char *p, size_t len, struct sl_value *out,
                          struct sl_arena *arena, const struct sl_json_limits *limits,
                          const char *cut_key, struct sl_json_doc *doc, char *err, size_t errlen)
{
    struct parser ps;
    int rc;
    if (out->type == SL_V_NULL) {
        memset(out, 0, sizeof(*out));  /* what sl_value_clear does to it, without the call */
    } else {
        sl_value_clear(out);
    }
    if (err && errlen) {
        err[0] = '\0';
    }
    if (!p) {
        p = "";
        len = 0;
    }
    ps.start = ps.p = (const unsigned char *)p;
    ps.end = ps.start + len;
    ps.max_depth = limits && limits->max_depth ? limits->max_depth : DEFAULT_MAX_DEPTH;
    ps.max_bytes = limits && limits->max_bytes ? limits->max_bytes : SIZE_MAX;
    ps.bytes = 0;
    ps.err = err;
    ps.errlen = errlen;
    ps.scratch = ps.scratch_inline;
    ps.scratch_cap = SCRATCH_INLINE;
    ps.arena = arena ? arena : sl_value_arena();  /* a worker's scope (value.h) */
    ps.ms = ps.ms_inline;
    ps.mtop = 0;
    ps.mcap = STACK_INLINE;
    ps.vs = ps.vs_inline;
    ps.vtop = 0;
    ps.vcap = STACK_INLINE;
    ps.verbatim = true;
    ps.cut_key = cut_key;
    ps.cut_klen = cut_key ? strlen(cut_key) : 0;
    ps.cut_off = ps.cut_len = 0;

    skip_ws(&ps);
    rc = parse_value(&ps, out, 0);
    if (rc == 0) {
        skip_ws(&ps);
        if (ps.p != ps.end) {
            rc = fail_at(&ps, ps.p, SL_EINVAL, "trailing garbage");
        }
    }
    if (ps.scratch != ps.scratch_inline) {
        free(ps.scratch);
    }
    if (ps.ms != ps.ms_inline) {
        free(ps.ms);
    }
    if (ps.vs != ps.vs_inline) {
        free(ps.vs);
    }
    if (rc != 0) {
        sl_value_clear(out);
    }
    if (doc) {
        doc->verbatim = rc == 0 && ps.verbatim;
        doc->cut_off = doc->verbatim ? ps.cut_off : 0;
        doc->cut_len = doc->verbatim ? ps.cut_len : 0;
    }
    return rc;
}

int sl_json_parse(const char *p, size_t len, struct sl_value *out,
                  const struct sl_json_limits *limits, char *err, size_t errlen)
{
    return parse_document(p, len, out, NULL, limits, NULL, NULL, err, errlen);
}

int sl_json_parse_arena(const char *p, size_t len, struct sl_value *out, struct sl_arena *a,
                        const struct sl_json_limits *limits, char *err, size_t errlen)
{
    return parse_document(p, len, out, a, limits, NULL, NULL, err, errlen);
}

int sl_json_parse_doc(const char *p, size_t len, struct sl_value *out, struct sl_arena *a,
                      const struct sl_json_limits *limits, const char *cut_key,
                      struct sl_json_doc *doc, char *err, size_t errlen)
{
    return parse_document(p, len, out, a, limits, cut_key, doc, err, errlen);
}

int sl_json_put_doc(struct sl_buf *b, const char *p, size_t len, const struct sl_json_doc *doc,
                    bool cut)
{
    if (!cut || doc->cut_len == 0) {
        return sl_buf_append(b, p, len);
    }
    size_t mark = b->len;
    size_t rest = doc->cut_off + doc->cut_len;
    int rc = sl_buf_append(b, p, doc->cut_off);
    if (rc == 0) {
        rc = sl_buf_append(b, p + rest, len - rest);
    }
    if (rc != 0) {
        b->len = mark;
    }
    return rc;
}

/* ---- the scanner: validation without a tree ---- */

/*
 * One loop over the text with an explicit stack (no call per container), so
 * that the read position, the SSE constants and the innermost object's state
 * stay in registers across the whole event: a Beats event has a dozen small
 * objects, and a call, its register saves and the constants reloaded after
 * it cost more than scanning their bytes.
 */

/* Object keys of the open objects, for duplicate detection (spans into the text). */
#define SCAN_KEYS 256u
#define SCAN_KEYS_PER_OBJECT SL_JSON_SCAN_MEMBERS
/* Containers open at once that the scanner follows; a deeper text (only
 * possible with a max_depth above it) is left to the parser. */
#define SCAN_DEPTH 1024u

/* A key seen in an open object: its bytes in the text. */
struct span {
    const unsigned char *p;
    size_t len;
};

/* An enclosing object's state, saved while an object inside it is scanned. */
struct outer {
    size_t base;     /* its first key in keys[] */
    size_t full;     /* where its keys must stop */
    uint64_t bloom;  /* key_bit of its keys so far */
};

/*
 * One bit of a 64-bit filter per key, from its length and its first and last
 * bytes: an object's earlier keys are compared only when a new key's bit was
 * already set, so most keys of a typical object take no compare at all (and a
 * hostile one costs what comparing every pair did: at most
 * SCAN_KEYS_PER_OBJECT keys an object). k is inside its quotes, so for the
 * empty key k[0] and k[-1] are those quotes: no branch.
 */
static inline uint64_t key_bit(const unsigned char *k, size_t n)
{
    unsigned h = 2u * k[0] + k[(ptrdiff_t)n - 1] + 8u * (unsigned)n;
    return 1ull << (h & 63u);
}

struct scanner {
    const unsigned char *start, *end;
    unsigned max_depth;
    const char *cut_key;
    size_t cut_klen;
    struct sl_json_member *members;
    size_t nmembers;
    struct sl_json_doc *doc;
    struct span keys[SCAN_KEYS];
    /* Every open object but the root and the innermost: at most one per
     * open key, as each of them holds the key whose value is being scanned. */
    struct outer outer[SCAN_KEYS];
    bool is_object[SCAN_DEPTH];  /* [d]: the container d+1 deep is an object */
};

/*
 * The rest of a string from s, a byte that scan_plain stopped at (or end):
 * valid UTF-8, no control byte, escapes well formed and never a lone
 * surrogate. Keys (is_key) take no escape at all, so that equal keys are
 * equal bytes. Returns the byte after the closing quote, or NULL.
 */
static const unsigned char *scan_string_rest(const unsigned char *s, const unsigned char *end,
                                             bool is_key)
{
    for (;;) {
        if (s == end || *s < 0x20) {
            return NULL;
        }
        if (*s == '"') {
            return s + 1;
        }
        if (*s >= 0x80) {
            bool ok;
            s += utf8_seq(s, (size_t)(end - s), &ok);
            if (!ok) {
                return NULL;
            }
        } else if (is_key || end - s < 2) {  /* a backslash */
            return NULL;
        } else {
            unsigned cp, lo;
            switch (s[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                s += 2;
                break;
            case 'u':
                if (end - s < 6 || hex4(s + 2, &cp) != 0) {
                    return NULL;
                }
                s += 6;
                if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return NULL;
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (end - s < 6 || s[0] != '\\' || s[1] != 'u' || hex4(s + 2, &lo) != 0 ||
                        lo < 0xDC00 || lo > 0xDFFF) {
                        return NULL;
                    }
                    s += 6;
                }
                break;
            default:
                return NULL;
            }
        }
        s = scan_plain(s, end);
    }
}

#if defined(__SSE2__)
/* The second bytes of the escapes that stand for one byte (\" \\ \/ \b \f \n \r \t). */
static const bool k_short_escape[256] = {
    ['"'] = true, ['\\'] = true, ['/'] = true, ['b'] = true,
    ['f'] = true, ['n'] = true, ['r'] = true, ['t'] = true,
};

/* The constants of a special-byte test, loaded once per text. */
struct special_consts {
    __m128i space, quote, bslash;
};

/* Bit i set: byte i of the 16 at s is special (is_special). */
static inline unsigned special16(const struct special_consts *c, const unsigned char *s)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
    /* One signed compare catches both < 0x20 and >= 0x80. */
    __m128i bad = _mm_or_si128(_mm_cmplt_epi8(v, c->space),
                               _mm_or_si128(_mm_cmpeq_epi8(v, c->quote),
                                            _mm_cmpeq_epi8(v, c->bslash)));
    return (unsigned)_mm_movemask_epi8(bad);
}
#endif

/*
 * A key from s, just past its quote, to just past its closing quote, or NULL.
 * A key that ends within 16 bytes (nearly all) is one block test.
 */
static inline const unsigned char *scan_key_at(const void *consts, const unsigned char *s,
                                               const unsigned char *end, uintptr_t lim16)
{
#if defined(__SSE2__)
    if ((uintptr_t)s <= lim16) {
        unsigned mask = special16(consts, s);
        if (mask) {
            s += __builtin_ctz(mask);
            return *s == '"' ? s + 1 : scan_string_rest(s, end, true);
        }
        s += 16;
    }
#endif
    s = scan_plain(s, end);
    if (s < end && *s == '"') {
        return s + 1;
    }
    return scan_string_rest(s, end, true);
}

/*
 * A string value from s, just past its quote. Log lines carry escaped quotes
 * (\" around an Apache request): a short escape found in a 16-byte block is
 * stepped over within that block's mask, with no new load and no call.
 * Anything else special (\u, UTF-8, a control byte) goes to scan_string_rest.
 */
static inline const unsigned char *scan_string_at(const void *consts, const unsigned char *s,
                                                  const unsigned char *end, uintptr_t lim16)
{
#if defined(__SSE2__)
    while ((uintptr_t)s <= lim16) {
        unsigned mask = special16(consts, s);
        size_t step = 16;
        while (mask) {
            unsigned k = (unsigned)__builtin_ctz(mask);
            if (s[k] == '"') {
                return s + k + 1;
            }
            if (s[k] != '\\' || end - (s + k) < 2 || !k_short_escape[s[k + 1]]) {
                return scan_string_rest(s + k, end, false);
            }
            k += 2;  /* past the escape: its second byte may be a flagged '"' or '\\' */
            if (k >= 16) {
                step = k;
                break;
            }
            mask &= ~0u << k;
        }
        s += step;
    }
#endif
    s = scan_plain(s, end);
    if (s < end && *s == '"') {
        return s + 1;
    }
    return scan_string_rest(s, end, false);
}

/* A number whose double is finite for sure: no exponent, at most 300 digits. */
static const unsigned char *scan_number(const unsigned char *s, const unsigned char *end)
{
    if (*s == '-') {
        s++;
    }
    const unsigned char *digits = s;
    if (s == end || !is_digit(*s) || (*s == '0' && s + 1 < end && is_digit(s[1]))) {
        return NULL;
    }
    while (s < end && is_digit(*s)) {
        s++;
    }
    if (s < end && *s == '.') {
        s++;
        if (s == end || !is_digit(*s)) {
            return NULL;
        }
        while (s < end && is_digit(*s)) {
            s++;
        }
    }
    if ((s < end && (*s == 'e' || *s == 'E')) || s - digits > 300) {
        return NULL;  /* may overflow to infinity: the parser decides */
    }
    return s;
}

static inline const unsigned char *scan_literal(const unsigned char *p, const unsigned char *end,
                                                const char *word, size_t n)
{
    if ((size_t)(end - p) < n || memcmp(p, word, n) != 0) {
        return NULL;
    }
    return p + n;
}

/* Whether the key k[0..klen) is among keys[base, nkeys). */
static bool scan_dup(const struct span *keys, size_t base, size_t nkeys, const unsigned char *k,
                     size_t klen)
{
    for (size_t i = base; i < nkeys; i++) {
        if (keys[i].len == klen && memcmp(keys[i].p, k, klen) == 0) {
            return true;
        }
    }
    return false;
}

/* A root member that is the cut key: where it starts and stops, with one comma. */
static void scan_cut(struct scanner *sc, const unsigned char *k, const unsigned char *stop,
                     bool first)
{
    size_t off = (size_t)(k - sc->start), to = (size_t)(stop - sc->start);
    if (!first) {
        off--;
    } else if (stop < sc->end && *stop == ',') {
        to++;
    }
    sc->doc->cut_off = off;
    sc->doc->cut_len = to - off;
}

/*
 * A root member done: its key is k (the root's last key: the keys of the
 * objects inside its value are gone), its value ends at p and, the text
 * being compact, starts right after the key's quote and ':'.
 */
static inline void scan_member_end(struct scanner *sc, const struct span *k,
                                   const unsigned char *p, bool first)
{
    const unsigned char *v = k->p + k->len + 2;
    sc->members[sc->nmembers++] = (struct sl_json_member){
        (size_t)(k->p - sc->start), k->len, (size_t)(v - sc->start), (size_t)(p - v)};
    if (k->len == sc->cut_klen && sc->cut_key && memcmp(k->p, sc->cut_key, k->len) == 0) {
        scan_cut(sc, k->p - 1, p, first);
    }
}

/*
 * The object at p (its '{') to its end: the byte after its '}', or NULL when
 * it is not something the scanner vouches for. depth counts the open
 * containers; obj tells whether the innermost is an object, whose keys are
 * keys[base, nkeys) with filter bloom.
 */
static const unsigned char *scan_text(struct scanner *sc, const unsigned char *p)
{
    const unsigned char *const end = sc->end;
    struct span *const keys = sc->keys;
    size_t nkeys = 0, base = 0, full = 0, nouter = 0;
    uint64_t bloom = 0;
    unsigned depth = 0;
    const unsigned max_depth = sc->max_depth;
    bool obj = true;
#if defined(__SSE2__)
    struct special_consts consts = {_mm_set1_epi8(0x20), _mm_set1_epi8('"'), _mm_set1_epi8('\\')};
    /* Opaque to the compiler: kept in registers, not re-created per string. */
    __asm__("" : "+x"(consts.space), "+x"(consts.quote), "+x"(consts.bslash));
    const struct special_consts *cs = &consts;
    /* Strings starting at or before lim16 have 16 bytes to test as a block. */
    const uintptr_t lim16 = sc->end - sc->start >= 16 ? (uintptr_t)end - 16 : 0;
#else
    const void *cs = NULL;
    const uintptr_t lim16 = 0;
#endif

open_object:  /* p is at '{' */
    if (depth >= max_depth) {
        return NULL;
    }
    if (depth > 0) {
        if (nouter == SCAN_KEYS) {
            return NULL;  /* cannot happen (see struct scanner): a bound all the same */
        }
        sc->outer[nouter++] = (struct outer){base, full, bloom};
    }
    sc->is_object[depth++] = true;
    obj = true;
    base = nkeys;
    bloom = 0;
    /* Where this object's keys must stop: its own limit or that of all open ones. */
    full = SL_MIN(base + SCAN_KEYS_PER_OBJECT, (size_t)SCAN_KEYS);
    p++;
    if (p < end && *p == '}') {
        p++;
        goto close_object;
    }
next_key: {
    if (p == end || *p != '"') {
        return NULL;
    }
    const unsigned char *k = p + 1;
    size_t klen;
    /* The 16 bytes from k tested as a block (SSE2): most keys end in them,
     * and often the value after them too ("type":"_doc"). 0: not tested. */
    unsigned mask = 0;
#if defined(__SSE2__)
    if ((uintptr_t)k <= lim16 && (mask = special16(cs, k)) != 0) {
        klen = (size_t)__builtin_ctz(mask);
        if (k[klen] == '"') {
            p = k + klen + 1;
        } else {
            mask = 0;
            if (!(p = scan_string_rest(k + klen, end, true))) {
                return NULL;
            }
            klen = (size_t)(p - k) - 1;
        }
    } else
#endif
    {
        mask = 0;
        if (!(p = scan_key_at(cs, k, end, lim16))) {
            return NULL;
        }
        klen = (size_t)(p - k) - 1;
    }
    uint64_t bit = key_bit(k, klen);
    if ((bloom & bit) && scan_dup(keys, base, nkeys, k, klen)) {
        return NULL;  /* a duplicate: the parser keeps the last one */
    }
    if (nkeys == full) {
        return NULL;
    }
    bloom |= bit;
    keys[nkeys++] = (struct span){k, klen};
    if (p == end || *p != ':') {
        return NULL;
    }
    p++;
    /* A string value starting in the key's block: its end is the next
     * special byte of the same mask when that is a quote. */
    size_t off = klen + 3;  /* the value's first byte, from k */
    if (mask && off <= 16 && *p == '"') {
        unsigned rest = off < 16 ? mask >> off : 0;
        if (rest) {
            size_t e = off + (size_t)__builtin_ctz(rest);
            if (k[e] == '"') {
                p = k + e + 1;
                goto after_value;
            }
        } else {
            p = scan_string_at(cs, k + 16, end, lim16);  /* k[off, 16) are plain */
            goto check_value;
        }
    }
}
next_value:
    if (p == end) {
        return NULL;
    }
    if (*p == '"') {
        p = scan_string_at(cs, p + 1, end, lim16);
    } else {
        switch (*p) {
        case '{':
            goto open_object;
        case '[':
            if (depth >= max_depth) {
                return NULL;
            }
            sc->is_object[depth++] = false;
            obj = false;
            p++;
            if (p < end && *p == ']') {
                p++;
                goto close_array;
            }
            goto next_value;
        case 't':
            p = scan_literal(p, end, "true", 4);
            break;
        case 'f':
            p = scan_literal(p, end, "false", 5);
            break;
        case 'n':
            p = scan_literal(p, end, "null", 4);
            break;
        default:
            p = scan_number(p, end);
            break;
        }
    }
check_value:
    if (!p) {
        return NULL;
    }
after_value:  /* p is just past a value of the innermost container */
    if (p == end) {
        return NULL;
    }
    if (obj) {
        if (depth == 1) {
            scan_member_end(sc, &keys[nkeys - 1], p, nkeys == 1);
        }
        if (*p == ',') {
            p++;
            goto next_key;
        }
        if (*p == '}') {
            p++;
            goto close_object;
        }
        return NULL;
    }
    if (*p == ',') {
        p++;
        goto next_value;
    }
    if (*p == ']') {
        p++;
        goto close_array;
    }
    return NULL;

close_object:
    nkeys = base;
    if (--depth == 0) {
        return p;
    }
    nouter--;
    base = sc->outer[nouter].base;
    full = sc->outer[nouter].full;
    bloom = sc->outer[nouter].bloom;
    obj = sc->is_object[depth - 1];
    goto after_value;
close_array:
    --depth;  /* the root is an object: depth >= 1 here */
    obj = sc->is_object[depth - 1];
    goto after_value;
}

bool sl_json_scan(const char *p, size_t len, const struct sl_json_limits *limits,
                  const char *cut_key, struct sl_json_member *members, size_t *nmembers,
                  struct sl_json_doc *doc)
{
    /* ~8 KiB of key spans and stacks on the stack; set field by field, as
     * zeroing them all would cost more than scanning a typical event. */
    struct scanner scan, *sc = &scan;
    sc->start = (const unsigned char *)p;
    sc->end = sc->start + len;
    sc->max_depth = limits && limits->max_depth ? limits->max_depth : DEFAULT_MAX_DEPTH;
    sc->max_depth = SL_MIN(sc->max_depth, SCAN_DEPTH);
    sc->cut_key = cut_key;
    sc->cut_klen = cut_key ? strlen(cut_key) : 0;
    sc->members = members;
    sc->nmembers = 0;
    sc->doc = doc;
    *doc = (struct sl_json_doc){0};
    bool ok = p && len > 0 && *p == '{' && scan_text(sc, sc->start) == sc->end;
    *nmembers = ok ? sc->nmembers : 0;
    if (!ok) {
        *doc = (struct sl_json_doc){0};
        return false;
    }
    doc->verbatim = true;
    return true;
}
