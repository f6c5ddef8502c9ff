/*
 * uap.h - a user-agent parser on uap-core's regexes.yaml: three ordered lists
 * of regular expressions (user agents, operating systems, devices); the first
 * expression of a list that matches a string names its family and versions,
 * through the groups it captures or the replacements ("$1 for ArcGIS") the
 * file gives. Nothing matched: the family is "Other".
 *
 * The expressions are compiled once (Oniguruma, behind lib/regex.h's budget);
 * a parser is then read-only and parses from several threads at once.
 */
#ifndef SLUICE_UAP_H
#define SLUICE_UAP_H

#include <stddef.h>

/* What a parse finds: NUL-terminated strings, NULL when absent. */
enum uap_field {
    UAP_NAME, UAP_MAJOR, UAP_MINOR, UAP_PATCH, UAP_BUILD,
    UAP_OS, UAP_OS_MAJOR, UAP_OS_MINOR, UAP_OS_PATCH, UAP_OS_BUILD,
    UAP_DEVICE,
    UAP_NFIELDS
};

struct uap_result {
    char *f[UAP_NFIELDS];
};

struct uap;

/* The regexes.yaml embedded at build time (config/useragent/regexes.yaml). */
extern const char sl_useragent_builtin_regexes[];

/*
 * Compiles the rules of a regexes.yaml text (len bytes; name says where it
 * came from, for messages). NULL on error, with the reason in err.
 */
struct uap *uap_new(const char *text, size_t len, const char *name, char *err, size_t errlen);
void uap_free(struct uap *p);
/* How many expressions p holds (all three lists). */
size_t uap_rules(const struct uap *p);

/*
 * Parses s[0..len) into *r (zeroed first; free with uap_result_clear).
 * Each search gets budget_ms (wall clock), the whole parse four times that
 * in this thread's CPU time: 0, or SL_ELIMIT when time ran out (*r is then
 * empty).
 */
int uap_parse(const struct uap *p, const char *s, size_t len, unsigned budget_ms,
              struct uap_result *r);
void uap_result_clear(struct uap_result *r);

#endif
