/*
 * regex.h - regular expressions the user writes, on Oniguruma, each search
 * with a wall-clock budget.
 *
 * Line and path filters (`^\d{4}-`, `[[:space:]]`, `\.gz$`, in the Perl-like
 * syntax Filebeat users write) are compiled once into an sl_regex; matching is
 * reentrant (safe from several threads on one sl_regex).
 *
 * The budget holds for every construct: Oniguruma's own limit counts
 * backtracking retries (calibrated to this machine's speed), which possessive
 * and atomic groups never make, so every pattern is also compiled behind a
 * zero-width callout that each attempt at a start position passes, and which
 * reads the clock every so many attempts. A search that runs out of time is
 * reported as such, never as a match or a miss: the caller decides (the
 * shipper ships the line, a condition is false; docs/operations.md).
 */
#ifndef SLUICE_REGEX_H
#define SLUICE_REGEX_H

#include <oniguruma.h>

#include "common.h"

/* What a search of an sl_regex gets by default, in milliseconds. */
#define SL_REGEX_BUDGET_MS 100

struct sl_regex;

/* Compiles pattern; on error returns NULL and writes Oniguruma's message to err. */
struct sl_regex *sl_regex_new(const char *pattern, char *err, size_t errlen);
void sl_regex_free(struct sl_regex *re);
/* Sets re's budget per search (0: none). Not while other threads match. */
void sl_regex_set_budget(struct sl_regex *re, uint64_t ms);

enum sl_regex_result {
    SL_REGEX_NO = 0,
    SL_REGEX_YES = 1,
    SL_REGEX_TIMEOUT = 2,  /* the budget ran out (or the process is stopping) */
};
/* Whether the pattern matches anywhere in s[0..len). */
enum sl_regex_result sl_regex_test(const struct sl_regex *re, const char *s, size_t len);
/* sl_regex_test() == SL_REGEX_YES: a search out of time is no match. */
bool sl_regex_match(const struct sl_regex *re, const char *s, size_t len);

/*
 * Compiles pattern[0..len) as onig_new would with the syntax base (Ruby's for
 * grok, Perl_NG for line filters), behind the budget's callout. 0 or an
 * Oniguruma error code (einfo set, for onig_error_code_to_str).
 */
int sl_onig_new(OnigRegex *re, const char *pattern, size_t len, OnigOptionType options,
                const OnigSyntaxType *base, OnigErrorInfo *einfo);

/*
 * Searches str[0..end) from start for re (compiled by sl_onig_new), as
 * onig_search_with_param does, within budget_ms (0: Oniguruma's default retry
 * limit only). mp is the caller's, one per thread (sl_regex_scratch); its
 * retry limits and callout data are set here, its stack limit is the
 * caller's. Returns the match's offset (region filled), ONIG_MISMATCH, or
 * SL_ELIMIT when the budget ran out (or Oniguruma failed otherwise).
 */
int sl_onig_search(OnigRegex re, const OnigUChar *str, const OnigUChar *end,
                   const OnigUChar *start, OnigRegion *region, OnigMatchParam *mp,
                   uint64_t budget_ms);

/* The match stack entries a search may use by default (~120 MB): the budget
 * bounds time, this bounds memory (a `.*` keeps ~30 bytes per character). */
#define SL_REGEX_STACK_LIMIT (1u << 22)

/*
 * What one thread needs to search - a region for the groups and match
 * parameters - made on first use and freed when the thread exits. Shared by
 * every caller on the thread: set the stack limit before each search.
 */
struct sl_regex_scratch {
    OnigRegion *region;
    OnigMatchParam *mp;
};
struct sl_regex_scratch *sl_regex_scratch(void);

/*
 * Oniguruma backtracking retries this machine performs per millisecond on a
 * pathological pattern, measured once per process (about 1 ms of work) and
 * clamped to [10000, 10000000]: what turns a time budget into a retry limit.
 */
unsigned long sl_regex_retries_per_ms(void);

/* Searches that ran out of budget since the process started (every caller). */
uint64_t sl_regex_timeouts(void);
/* Also counts them in m (a process's counter; NULL: none). Set once at start-up. */
struct sl_metric;
void sl_regex_count_timeouts_in(struct sl_metric *m);

/* The process is stopping: every search in progress ends at its next clock
 * reading, and later ones fail at once (SL_ELIMIT / SL_REGEX_TIMEOUT). */
void sl_regex_abort_all(void);

#endif
