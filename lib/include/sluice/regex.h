/*
 * regex.h - line and path filters on Oniguruma, in the Perl-like syntax that
 * Filebeat users write (`^\d{4}-`, `[[:space:]]`, `\.gz$`). Compiled once;
 * matching is reentrant (safe from several threads on one sl_regex).
 */
#ifndef SLUICE_REGEX_H
#define SLUICE_REGEX_H

#include "common.h"

struct sl_regex;

/* Compiles pattern; on error returns NULL and writes Oniguruma's message to err. */
struct sl_regex *sl_regex_new(const char *pattern, char *err, size_t errlen);
void sl_regex_free(struct sl_regex *re);
/* True when the pattern matches anywhere in s[0..len). */
bool sl_regex_match(const struct sl_regex *re, const char *s, size_t len);

#endif
