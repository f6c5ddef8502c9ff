/*
 * condition.h - the `when:` of a filter or an output: a small predicate on an event,
 * compiled once from its config node and evaluated read-only on any thread.
 *
 *   {field: F, equals: V}       F's value equals V
 *   {field: F, not_equals: V}   the negation of equals (also true when F is missing)
 *   {field: F, matches: RE}     RE (Oniguruma, Perl syntax) matches somewhere in F
 *   {field: F, exists: BOOL}    F is present (any value, null included) / absent
 *   {field: F, in: [V1, V2]}    F's value equals one of the Vi
 *   {and: [C1, C2, ...]}        every Ci holds (evaluated in order, short-circuit)
 *   {or: [C1, C2, ...]}         some Ci holds (evaluated in order, short-circuit)
 *   {not: C}                    C does not hold
 *
 * F is a field reference ("[a][b]", "a.b", "a"). How a YAML value V compares
 * with the event's value:
 *   - string field: byte-for-byte with V's text (so `equals: 5` matches "5" and
 *     `equals: true` matches "true");
 *   - integer or double field: numerically, when V's text is a number
 *     (`equals: 5`, `equals: "5"` and `equals: 5.0` all match 5); otherwise never;
 *   - boolean field: V is true/false (yes/no/on/off too, any case);
 *   - null field: V is null (`~`, `null` or empty, unquoted);
 *   - array field: when any item compares equal (so `{field: tags, in: [a, b]}`
 *     asks "has tag a or b");
 *   - object field or missing field: never equal.
 * matches tests a string field's text, a number's or boolean's decimal text,
 * and any item of an array; never an object, null or a missing field.
 */
#ifndef SLUICE_CONDITION_H
#define SLUICE_CONDITION_H

#include "sluice/config.h"
#include "sluice/value.h"

struct sl_condition;

/*
 * Compiles node. where prefixes messages, e.g. "pipeline.filters[0] (grok): when";
 * nested conditions extend it ("...: when.and[1]"). Every problem of the tree is
 * recorded with sl_cfg_error() at its FILE:LINE:COL. Returns the condition (owned
 * by the caller), or NULL after recording errors. node must not be NULL.
 */
struct sl_condition *sl_condition_new(struct sl_cfg *cfg, struct sl_cfg_node *node,
                                      const char *where);
void sl_condition_free(struct sl_condition *c);

/* Calls fn with the root key of every field c reads (a.b and [a][b] give "a"). */
void sl_condition_root_keys(const struct sl_condition *c,
                            void (*fn)(void *arg, const char *key, size_t len), void *arg);

/* True when event satisfies c. Reads c and event only: safe from several threads. */
bool sl_condition_eval(const struct sl_condition *c, const struct sl_value *event);

#endif
