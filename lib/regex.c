/*
 * regex.c - a thin wrapper over Oniguruma for yes/no matching. The library is
 * initialised once, for UTF-8 only; a match is bounded by Oniguruma's retry
 * limit so a pathological pattern cannot stall the caller forever.
 */
#include "sluice/regex.h"

#include <oniguruma.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sl_regex {
    OnigRegex re;
};

static pthread_once_t onig_once = PTHREAD_ONCE_INIT;

static void onig_setup(void)
{
    OnigEncoding enc = ONIG_ENCODING_UTF8;
    onig_initialize(&enc, 1);
}

struct sl_regex *sl_regex_new(const char *pattern, char *err, size_t errlen)
{
    pthread_once(&onig_once, onig_setup);
    OnigErrorInfo einfo;
    OnigRegex re;
    const OnigUChar *p = (const OnigUChar *)pattern;
    int rc = onig_new(&re, p, p + strlen(pattern), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
                      ONIG_SYNTAX_PERL_NG, &einfo);
    if (rc != ONIG_NORMAL) {
        OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(msg, rc, &einfo);
        snprintf(err, errlen, "%s", (const char *)msg);
        return NULL;
    }
    struct sl_regex *r = sl_malloc(sizeof(*r));
    r->re = re;
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

bool sl_regex_match(const struct sl_regex *re, const char *s, size_t len)
{
    const OnigUChar *start = (const OnigUChar *)s;
    const OnigUChar *end = start + len;
    /* Bytes that are not valid UTF-8 are matched as they are; the caller has
     * already replaced them when it matters (event text). */
    int rc = onig_search(re->re, start, end, start, end, NULL, ONIG_OPTION_NONE);
    return rc >= 0;
}
