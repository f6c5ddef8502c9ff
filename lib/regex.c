/*
 * regex.c - Oniguruma searches with a wall-clock budget (see regex.h), and
 * the line and path filters built on them.
 */
#include "sluice/regex.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/metrics.h"

/* The callout's name, prefixed to every pattern: "(*SLTICK)". */
#define TICK_NAME "SLTICK"
#define TICK_PREFIX "(*" TICK_NAME ")"

/* Attempts between clock readings: doubled while readings come less than
 * 100 us apart, halved past 1 ms, so a cheap attempt costs almost nothing and
 * one that scans a long line (possessive, O(line)) is timed often enough. */
#define EVERY_MIN 1u
#define EVERY_MAX 4096u

struct sl_regex {
    OnigRegex re;
    uint64_t budget_ms;
};

/* One search's budget, the callout's user data. */
struct budget {
    uint64_t deadline_ns, last_ns;
    uint32_t every, count;
};

static atomic_uint_fast64_t n_timeouts;
static struct sl_metric *_Atomic timeout_counter;
static atomic_bool aborting;

static pthread_once_t onig_once = PTHREAD_ONCE_INIT;

static OnigSyntaxType syntax_ruby, syntax_perl;

static uint64_t mono_ns(void);
static int tick(OnigCalloutArgs *args, void *user);

static void onig_setup(void)
{
    OnigEncoding enc = ONIG_ENCODING_UTF8;
    onig_initialize(&enc, 1);
    const OnigUChar *name = (const OnigUChar *)TICK_NAME;
    if (onig_set_callout_of_name(ONIG_ENCODING_UTF8, ONIG_CALLOUT_TYPE_SINGLE, (OnigUChar *)name,
                                 (OnigUChar *)name + strlen(TICK_NAME), ONIG_CALLOUT_IN_PROGRESS,
                                 tick, NULL, 0, NULL, 0, NULL) < 0) {
        abort();  /* cannot happen: a valid name, registered once */
    }
    onig_copy_syntax(&syntax_ruby, ONIG_SYNTAX_RUBY);
    onig_copy_syntax(&syntax_perl, ONIG_SYNTAX_PERL_NG);
    onig_set_syntax_op2(&syntax_ruby,
                        onig_get_syntax_op2(&syntax_ruby) | ONIG_SYN_OP2_ASTERISK_CALLOUT_NAME);
    onig_set_syntax_op2(&syntax_perl,
                        onig_get_syntax_op2(&syntax_perl) | ONIG_SYN_OP2_ASTERISK_CALLOUT_NAME);
}

/* ---- per-thread scratch ---- */

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
/* The key's value, one load away: the key is there for its destructor, and
 * pthread_once + pthread_getspecific on every search add up. */
static _Thread_local struct sl_regex_scratch *scratch_mine;

static void scratch_free(void *p)
{
    struct sl_regex_scratch *t = p;
    onig_region_free(t->region, 1);
    onig_free_match_param(t->mp);
    free(t);
    scratch_mine = NULL;
}

static void scratch_key_make(void)
{
    if (pthread_key_create(&scratch_key, scratch_free) != 0) {
        abort();
    }
}

struct sl_regex_scratch *sl_regex_scratch(void)
{
    if (scratch_mine) {
        return scratch_mine;
    }
    pthread_once(&scratch_once, scratch_key_make);
    struct sl_regex_scratch *t = pthread_getspecific(scratch_key);
    if (!t) {
        t = sl_malloc(sizeof(*t));
        t->region = onig_region_new();
        t->mp = onig_new_match_param();
        if (!t->region || !t->mp || pthread_setspecific(scratch_key, t) != 0) {
            abort();
        }
    }
    scratch_mine = t;
    return t;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- calibration ---- */

static pthread_once_t calib_once = PTHREAD_ONCE_INIT;
/* Set once by calibrate; read without pthread_once on the hot path. */
static atomic_ulong calib_rate;

static void calibrate(void)
{
    enum { PROBE = 40000 };
    static const char pat[] = "^(a+)+$";
    char line[48];
    memset(line, 'a', sizeof(line) - 1);
    line[sizeof(line) - 2] = 'b';
    line[sizeof(line) - 1] = '\0';
    unsigned long rate = 50000;  /* typical of a 2020s x86 core, if measuring fails */
    pthread_once(&onig_once, onig_setup);
    OnigRegex re;
    OnigErrorInfo einfo;
    if (onig_new(&re, (const OnigUChar *)pat, (const OnigUChar *)pat + strlen(pat),
                 ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_RUBY, &einfo) != ONIG_NORMAL) {
        atomic_store(&calib_rate, rate);
        return;
    }
    OnigMatchParam *mp = onig_new_match_param();
    if (!mp) {
        onig_free(re);
        atomic_store(&calib_rate, rate);
        return;
    }
    onig_set_retry_limit_in_match_of_match_param(mp, PROBE);
    onig_set_retry_limit_in_search_of_match_param(mp, PROBE);
    const OnigUChar *s = (const OnigUChar *)line, *e = s + strlen(line);
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 3; i++) {  /* the fastest of three: least disturbed */
        uint64_t t0 = mono_ns();
        int rc = onig_search_with_param(re, s, e, s, e, NULL, ONIG_OPTION_NONE, mp);
        uint64_t dt = mono_ns() - t0;
        if (rc >= 0 || rc == ONIG_MISMATCH) {
            break;  /* the probe did not exhaust its budget: keep the default */
        }
        best = SL_MIN(best, dt);
    }
    onig_free_match_param(mp);
    onig_free(re);
    if (best != UINT64_MAX && best > 0) {
        uint64_t r = (uint64_t)PROBE * 1000000u / best;
        rate = (unsigned long)SL_MAX(10000u, SL_MIN(r, 10000000u));
    }
    atomic_store(&calib_rate, rate);
}

unsigned long sl_regex_retries_per_ms(void)
{
    unsigned long r = atomic_load_explicit(&calib_rate, memory_order_acquire);
    if (r) {
        return r;
    }
    pthread_once(&calib_once, calibrate);
    return atomic_load(&calib_rate);
}

/* ---- bounded search ---- */

static int out_of_budget(void)
{
    atomic_fetch_add_explicit(&n_timeouts, 1, memory_order_relaxed);
    sl_counter_inc(atomic_load_explicit(&timeout_counter, memory_order_relaxed));
    return SL_ELIMIT;
}

static int tick(OnigCalloutArgs *args, void *user)
{
    (void)args;
    struct budget *b = user;
    if (!b || ++b->count < b->every) {
        return ONIG_CALLOUT_SUCCESS;
    }
    b->count = 0;
    uint64_t now = mono_ns();
    if (now >= b->deadline_ns || atomic_load_explicit(&aborting, memory_order_relaxed)) {
        return ONIGERR_RETRY_LIMIT_IN_SEARCH_OVER;  /* any error ends the search */
    }
    if (now - b->last_ns < 100000u && b->every < EVERY_MAX) {
        b->every *= 2;
    } else if (now - b->last_ns > 1000000u && b->every > EVERY_MIN) {
        b->every /= 2;
    }
    b->last_ns = now;
    return ONIG_CALLOUT_SUCCESS;
}

int sl_onig_new(OnigRegex *re, const char *pattern, size_t len, OnigOptionType options,
                const OnigSyntaxType *base, OnigErrorInfo *einfo)
{
    pthread_once(&onig_once, onig_setup);
    const OnigSyntaxType *syn = base == ONIG_SYNTAX_PERL_NG ? &syntax_perl : &syntax_ruby;
    size_t n = strlen(TICK_PREFIX);
    if (len > SIZE_MAX - n) {
        return ONIGERR_MEMORY;
    }
    /* Compiled alone first, so that a pattern's errors are its own: "*" is
     * invalid, "(*SLTICK)*" might not be. */
    const OnigUChar *p = (const OnigUChar *)pattern;
    int rc = onig_new(re, p, p + len, options, ONIG_ENCODING_UTF8, (OnigSyntaxType *)syn, einfo);
    if (rc != ONIG_NORMAL) {
        return rc;
    }
    onig_free(*re);
    /* Zero-width and first: every attempt, in every top-level alternative's
     * turn, passes it. */
    char *text = sl_malloc(n + len);
    memcpy(text, TICK_PREFIX, n);
    memcpy(text + n, pattern, len);
    const OnigUChar *t = (const OnigUChar *)text;
    rc = onig_new(re, t, t + n + len, options, ONIG_ENCODING_UTF8, (OnigSyntaxType *)syn, einfo);
    free(text);
    return rc == ONIG_NORMAL ? 0 : rc;
}

int sl_onig_search(OnigRegex re, const OnigUChar *str, const OnigUChar *end,
                   const OnigUChar *start, OnigRegion *region, OnigMatchParam *mp,
                   uint64_t budget_ms)
{
    if (atomic_load_explicit(&aborting, memory_order_relaxed)) {
        return out_of_budget();
    }
    struct budget b;
    if (budget_ms == 0) {
        onig_set_retry_limit_in_match_of_match_param(mp, onig_get_retry_limit_in_match());
        onig_set_retry_limit_in_search_of_match_param(mp, 0);
        onig_set_callout_user_data_of_match_param(mp, NULL);
    } else {
        unsigned long rate = sl_regex_retries_per_ms();
        unsigned long retries = budget_ms > ULONG_MAX / rate ? ULONG_MAX
                                                             : (unsigned long)budget_ms * rate;
        onig_set_retry_limit_in_match_of_match_param(mp, retries);
        onig_set_retry_limit_in_search_of_match_param(mp, retries);
        uint64_t now = mono_ns();
        uint64_t ns = budget_ms > UINT64_MAX / 4000000u ? UINT64_MAX / 4 : budget_ms * 1000000u;
        b = (struct budget){.deadline_ns = now + ns, .last_ns = now, .every = 64};
        onig_set_callout_user_data_of_match_param(mp, &b);
    }
#if ONIGURUMA_VERSION_INT >= 60909
    onig_set_time_limit_of_match_param(mp, (unsigned long)budget_ms);
#endif
    int rc = onig_search_with_param(re, str, end, start, end, region, ONIG_OPTION_NONE, mp);
    onig_set_callout_user_data_of_match_param(mp, NULL);  /* b dies here */
    return rc >= 0 || rc == ONIG_MISMATCH ? rc : out_of_budget();
}

void sl_regex_count_timeouts_in(struct sl_metric *m)
{
    atomic_store(&timeout_counter, m);
}

uint64_t sl_regex_timeouts(void)
{
    return atomic_load_explicit(&n_timeouts, memory_order_relaxed);
}

void sl_regex_abort_all(void)
{
    atomic_store(&aborting, true);
}

/* ---- sl_regex ---- */

struct sl_regex *sl_regex_new(const char *pattern, char *err, size_t errlen)
{
    OnigErrorInfo einfo;
    OnigRegex re;
    int rc = sl_onig_new(&re, pattern, strlen(pattern), ONIG_OPTION_NONE, ONIG_SYNTAX_PERL_NG,
                         &einfo);
    if (rc != 0) {
        OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(msg, rc, &einfo);
        snprintf(err, errlen, "%s", (const char *)msg);
        return NULL;
    }
    struct sl_regex *r = sl_malloc(sizeof(*r));
    r->re = re;
    r->budget_ms = SL_REGEX_BUDGET_MS;
    return r;
}

void sl_regex_free(struct sl_regex *re)
{
    if (!re) {
        return;
    }
    onig_free(re->re);
    free(re);
}

void sl_regex_set_budget(struct sl_regex *re, uint64_t ms)
{
    re->budget_ms = ms;
}

enum sl_regex_result sl_regex_test(const struct sl_regex *re, const char *s, size_t len)
{
    const OnigUChar *start = (const OnigUChar *)s;
    OnigMatchParam *mp = sl_regex_scratch()->mp;
    onig_set_match_stack_limit_size_of_match_param(mp, SL_REGEX_STACK_LIMIT);
    /* Bytes that are not valid UTF-8 are matched as they are; the caller has
     * already replaced them when it matters (event text). */
    int rc = sl_onig_search(re->re, start, start + len, start, NULL, mp, re->budget_ms);
    return rc >= 0 ? SL_REGEX_YES : rc == ONIG_MISMATCH ? SL_REGEX_NO : SL_REGEX_TIMEOUT;
}

bool sl_regex_match(const struct sl_regex *re, const char *s, size_t len)
{
    return sl_regex_test(re, s, len) == SL_REGEX_YES;
}
