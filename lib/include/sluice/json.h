/*
 * json.h - JSON text <-> struct sl_value, and the fast string escaper used by
 * every writer. Output is always valid UTF-8 JSON: every control byte is
 * escaped and invalid UTF-8 sequences become U+FFFD.
 */
#ifndef SLUICE_JSON_H
#define SLUICE_JSON_H

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "arena.h"
#include "buf.h"
#include "value.h"

struct sl_json_limits {
    unsigned max_depth;   /* nesting of arrays/objects; 0 -> 64 */
    /* Bytes the tree may take (values, members, keys and strings, counted as
     * they are created; 0: no limit). Small texts can expand a lot - each
     * 2-byte array item "0," becomes a whole value - so outside input gets
     * one. Over it the parse stops with SL_E2BIG. While parsing, the parser's
     * own stack holds what it counted once more, so the peak is about twice it. */
    size_t max_bytes;
};

/*
 * Parses exactly one JSON value from p[0..len) (surrounding whitespace allowed).
 * On error returns SL_EINVAL (SL_ELIMIT for depth, SL_E2BIG for max_bytes) and writes a short reason
 * with the byte offset into err. out is cleared first and left null on error.
 * Invalid UTF-8 inside strings is replaced by U+FFFD rather than rejected.
 */
int sl_json_parse(const char *p, size_t len, struct sl_value *out,
                  const struct sl_json_limits *limits, char *err, size_t errlen);

/*
 * sl_json_parse into an arena: the same grammar, limits, errors and resulting
 * tree, but its strings, keys and items vectors are allocated from a (and
 * flagged SL_VF_ARENA), which makes parsing and clearing a batch of events
 * far cheaper than one malloc/free per piece. A NULL a parses to the heap.
 * The tree can be used and mutated like any other (value.h), under one rule:
 * sl_value_clear it before a is reset or freed, and let no part of it outlive
 * a. A failed parse leaves out null; what it took from a stays until reset.
 */
int sl_json_parse_arena(const char *p, size_t len, struct sl_value *out, struct sl_arena *a,
                        const struct sl_json_limits *limits, char *err, size_t errlen);

/*
 * What a parse learnt about the text itself, so that an event nobody changes
 * can be written out as the very bytes it came in (no second serialisation).
 * verbatim: the text is compact (no whitespace between tokens, so no newline
 * either), valid UTF-8 with no lone surrogate escape, no duplicate key and
 * no number out of a double's range: copied out, it is valid JSON equal to
 * what sl_json_write would give for the tree (up to escapes and number
 * spelling). cut_off/cut_len: when verbatim, the bytes of the root member
 * named cut_key with one adjacent comma (cut_len 0: no such member).
 */
struct sl_json_doc {
    bool verbatim;
    size_t cut_off, cut_len;
};

/* sl_json_parse_arena (a may be NULL) that also fills *doc (cut_key may be NULL). */
int sl_json_parse_doc(const char *p, size_t len, struct sl_value *out, struct sl_arena *a,
                      const struct sl_json_limits *limits, const char *cut_key,
                      struct sl_json_doc *doc, char *err, size_t errlen);
/* Appends the verbatim text p[0..len) that doc describes, without its cut_key
 * member when cut is true. 0 or SL_ELIMIT (the buffer is left as it was). */
int sl_json_put_doc(struct sl_buf *b, const char *p, size_t len, const struct sl_json_doc *doc,
                    bool cut);

/*
 * Validation without a tree, for events whose members are mostly not read:
 * true when p[0..len) is one JSON object that sl_json_parse_doc would accept
 * and report verbatim (then *doc is what it would report, cut_key as there),
 * and members[0..*nmembers) are its root members in order. It vouches only
 * for the plain case - no escape in a key, no exponent, at most
 * SL_JSON_SCAN_MEMBERS keys per object, 256 keys and 1024 containers open at
 * once - and says false for anything else, valid or not: the caller then
 * parses, which also gives the error of a bad text. members needs
 * SL_JSON_SCAN_MEMBERS slots.
 */
#define SL_JSON_SCAN_MEMBERS 32u

struct sl_json_member {
    size_t key_off, key_len;  /* the key's bytes, inside its quotes */
    size_t val_off, val_len;  /* the value's text */
};
bool sl_json_scan(const char *p, size_t len, const struct sl_json_limits *limits,
                  const char *cut_key, struct sl_json_member *members, size_t *nmembers,
                  struct sl_json_doc *doc);

/*
 * The high bit of each byte of a word that is not carried as is in a JSON
 * string (< 0x20, '"', '\\', >= 0x80). Zero exactly when there is none; when
 * not zero, the lowest flagged byte is a true one (a borrow only flags bytes
 * above a true hit).
 */
static inline uint64_t sl_json_special8(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull;
    uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
    return (x | ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((bs - ones) & ~bs)) &
           (ones * 0x80);
}

static inline uint32_t sl_json_special4(uint32_t x)
{
    const uint32_t ones = 0x01010101u;
    uint32_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
    return (x | ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((bs - ones) & ~bs)) &
           (ones * 0x80);
}

/*
 * Copies the bytes at s that a JSON string carries as they are (printable
 * ASCII but '"' and '\\') to *o, up to the first other byte, which it
 * returns (end if none), advancing *o. Blocks of 16 (SSE2) or 8 bytes are
 * stored before they are checked, but only while that many input bytes
 * remain: the room needed at *o is end - s, what a plain run takes anyway.
 * A last 4 to 16 bytes (most keys and short values) are two overlapping
 * words, tested and stored whole when neither has a special byte. Always
 * inlined: it runs once per string written, most of them a few bytes long.
 */
static inline __attribute__((always_inline)) const unsigned char *
sl_json_copy_plain(char **o, const unsigned char *s, const unsigned char *end)
{
    char *w = *o;
#if defined(__SSE2__)
    const __m128i space = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'),
                  bslash = _mm_set1_epi8('\\');
    while (end - s >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
        _mm_storeu_si128((__m128i *)(void *)w, v);
        /* One signed compare catches both < 0x20 and >= 0x80. */
        __m128i bad = _mm_or_si128(_mm_cmplt_epi8(v, space),
                                   _mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                                _mm_cmpeq_epi8(v, bslash)));
        unsigned mask = (unsigned)_mm_movemask_epi8(bad);
        if (mask) {
            unsigned k = (unsigned)__builtin_ctz(mask);
            *o = w + k;
            return s + k;
        }
        s += 16;
        w += 16;
    }
    /* The last 4 to 15 bytes as two overlapping words in one register: the
     * lanes past them (zero) are left out of the mask. */
    size_t n = (size_t)(end - s);
    if (n >= 4) {
        __m128i v;
        unsigned lanes;
        if (n >= 8) {
            v = _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i *)(const void *)s),
                                   _mm_loadl_epi64((const __m128i *)(const void *)(end - 8)));
            lanes = 0xFFFFu;
        } else {
            int a, z;
            memcpy(&a, s, 4);
            memcpy(&z, end - 4, 4);
            v = _mm_unpacklo_epi32(_mm_cvtsi32_si128(a), _mm_cvtsi32_si128(z));
            lanes = 0xFFu;
        }
        __m128i bad = _mm_or_si128(_mm_cmplt_epi8(v, space),
                                   _mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                                _mm_cmpeq_epi8(v, bslash)));
        if (!((unsigned)_mm_movemask_epi8(bad) & lanes)) {
            if (n >= 8) {
                _mm_storel_epi64((__m128i *)(void *)w, v);
                _mm_storel_epi64((__m128i *)(void *)(w + n - 8), _mm_unpackhi_epi64(v, v));
            } else {
                int a = _mm_cvtsi128_si32(v), z = _mm_cvtsi128_si32(_mm_srli_si128(v, 4));
                memcpy(w, &a, 4);
                memcpy(w + n - 4, &z, 4);
            }
            *o = w + n;
            return end;
        }
    }
#else
    size_t n = (size_t)(end - s);
#endif
    if (n >= 8 && n <= 16) {
        uint64_t a, z;
        memcpy(&a, s, 8);
        memcpy(&z, end - 8, 8);
        if (!(sl_json_special8(a) | sl_json_special8(z))) {
            memcpy(w, &a, 8);
            memcpy(w + n - 8, &z, 8);
            *o = w + n;
            return end;
        }
    }
    while (end - s >= 8) {
        uint64_t x;
        memcpy(&x, s, 8);
        memcpy(w, &x, 8);
        uint64_t hit = sl_json_special8(x);
        if (hit) {
            unsigned k = (unsigned)__builtin_ctzll(hit) / 8;
            *o = w + k;
            return s + k;
        }
        s += 8;
        w += 8;
    }
    n = (size_t)(end - s);
    if (n >= 4) {
        uint32_t a, z;
        memcpy(&a, s, 4);
        memcpy(&z, end - 4, 4);
        if (!(sl_json_special4(a) | sl_json_special4(z))) {
            memcpy(w, &a, 4);
            memcpy(w + n - 4, &z, 4);
            *o = w + n;
            return end;
        }
    }
    while (s < end && *s >= 0x20 && *s < 0x80 && *s != '"' && *s != '\\') {
        *w++ = (char)*s++;
    }
    *o = w;
    return s;
}

/* Appends s[0..len) as a quoted JSON string. 0 or SL_ELIMIT (buffer max). */
int sl_json_put_str(struct sl_buf *b, const char *s, size_t len);
/* Appends v as compact JSON (object keys in stored order). Doubles use %.17g,
 * non-finite doubles become null. skip_key, when not NULL, is a top-level
 * key to leave out (outputs use it to drop "@metadata"). */
int sl_json_write(struct sl_buf *b, const struct sl_value *v, const char *skip_key);

/* Appends one member of an object being written: ,"key":value (comma false:
 * no comma), as sl_json_write writes members. 0 or SL_ELIMIT, the buffer then
 * as it was. */
int sl_json_put_member(struct sl_buf *b, bool comma, const char *key, size_t klen,
                       const struct sl_value *v);

/* Length of the valid UTF-8 prefix of s (for callers that need to check). */
size_t sl_utf8_valid_prefix(const char *s, size_t len);
/* The same as sl_json_write (nothing skipped), indented two spaces a level, for people. */
int sl_json_write_pretty(struct sl_buf *b, const struct sl_value *v);

#endif
