/*
 * json.h - JSON text <-> struct sl_value, and the fast string escaper used by
 * every writer. Output is always valid UTF-8 JSON: every control byte is
 * escaped and invalid UTF-8 sequences become U+FFFD.
 */
#ifndef SLUICE_JSON_H
#define SLUICE_JSON_H

#include "arena.h"
#include "buf.h"
#include "value.h"

struct sl_json_limits {
    unsigned max_depth;   /* nesting of arrays/objects; 0 -> 64 */
};

/*
 * Parses exactly one JSON value from p[0..len) (surrounding whitespace allowed).
 * On error returns SL_EINVAL (or SL_ELIMIT for depth) and writes a short reason
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

/* Appends s[0..len) as a quoted JSON string. 0 or SL_ELIMIT (buffer max). */
int sl_json_put_str(struct sl_buf *b, const char *s, size_t len);
/* Appends v as compact JSON (object keys in stored order). Doubles use %.17g,
 * non-finite doubles become null. skip_key, when not NULL, is a top-level
 * key to leave out (outputs use it to drop "@metadata"). */
int sl_json_write(struct sl_buf *b, const struct sl_value *v, const char *skip_key);

/* Length of the valid UTF-8 prefix of s (for callers that need to check). */
size_t sl_utf8_valid_prefix(const char *s, size_t len);
/* The same as sl_json_write (nothing skipped), indented two spaces a level, for people. */
int sl_json_write_pretty(struct sl_buf *b, const struct sl_value *v);

#endif
