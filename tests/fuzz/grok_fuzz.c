/*
 * grok_fuzz.c - libFuzzer target for the grok pattern compiler
 * (plugins/filter_grok/grok.c): the input is a pattern, expanded against the
 * built-in library plus a few hostile definitions (self-reference, a long
 * chain, a named group, a broken regex). Build with
 *   scripts/embed-patterns > /tmp/grok_patterns.c
 *   clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ilib/include \
 *         -Iplugins/filter_grok tests/fuzz/grok_fuzz.c plugins/filter_grok/grok.c \
 *         /tmp/grok_patterns.c lib/buf.c lib/value.c lib/common.c -lonig -lm -o grok_fuzz
 *
 * Properties checked, each an abort() when broken:
 *  - compiling never crashes and either succeeds or writes a one-line reason;
 *  - a compiled pattern has every capture on a real group, with a valid field;
 *  - matching (on the pattern text itself and a log line), within a small
 *    retry budget, returns 1, 0 or SL_ELIMIT and a region inside the subject.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sl_grok_lib *lib;

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "grok_fuzz: %s\n", what);
        abort();
    }
}

static void setup(void)
{
    char err[256];
    lib = sl_grok_lib_new();
    /* Both modes' files, in name order: where they share a name the legacy
     * definition wins; the ECS-only names stay reachable. */
    for (size_t i = 0; sl_grok_builtin_patterns[i]; i += 2) {
        const char *t = sl_grok_builtin_patterns[i + 1];
        check(sl_grok_lib_add_text(lib, sl_grok_builtin_patterns[i], t, strlen(t), err,
                                   sizeof(err)) == 0, "built-in patterns do not load");
    }
    sl_grok_lib_add(lib, "SELF", "a%{SELF}", "fuzz", 1);
    sl_grok_lib_add(lib, "NAMED", "(?<inner>x+)\\k<inner>", "fuzz", 2);
    sl_grok_lib_add(lib, "BROKEN", "(unclosed", "fuzz", 3);
    for (int i = 0; i < 80; i++) {
        char name[16], def[32];
        snprintf(name, sizeof(name), "CHAIN%d", i);
        snprintf(def, sizeof(def), "%%{CHAIN%d}", i + 1);
        sl_grok_lib_add(lib, name, def, "fuzz", 10 + i);
    }
    sl_grok_lib_add(lib, "CHAIN80", "end", "fuzz", 90);
}

static void try_match(const struct sl_grok *g, const char *s, size_t len)
{
    struct sl_grok_limits lim = {.time_ms = 50, .stack = 100000};
    const OnigRegion *r = NULL;
    int rc = sl_grok_match(g, s, len, &lim, &r);
    check(rc == 1 || rc == 0 || rc == SL_ELIMIT, "unexpected match result");
    if (rc != 1) {
        return;
    }
    for (size_t i = 0; i < g->ncaps; i++) {
        int grp = g->caps[i].group;
        check(grp > 0 && grp < r->num_regs, "capture group out of range");
        int b = r->beg[grp], e = r->end[grp];
        check((b == ONIG_REGION_NOTPOS && e == ONIG_REGION_NOTPOS) ||
              (b >= 0 && b <= e && (size_t)e <= len), "capture outside the subject");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!lib) {
        setup();
    }
    if (size == 0 || size > 4096) {
        return 0;
    }
    /* First byte: options; the rest: the pattern (NUL-terminated copy). */
    bool named_only = data[0] & 1;
    char *pat = malloc(size);
    memcpy(pat, data + 1, size - 1);
    pat[size - 1] = '\0';
    char err[512];
    err[0] = '\0';
    struct sl_grok *g = sl_grok_compile(lib, pat, named_only, err, sizeof(err));
    if (!g) {
        check(err[0] != '\0' && strchr(err, '\n') == NULL, "no one-line reason for a failure");
    } else {
        check(g->expanded && g->re, "compiled pattern incomplete");
        for (size_t i = 0; i < g->ncaps; i++) {
            check(g->caps[i].field && g->caps[i].field[0], "capture without a field");
        }
        static const char line[] =
            "127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET /a HTTP/1.0\" 200 2326 \"-\" \"x\"\n"
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab";
        try_match(g, line, sizeof(line) - 1);
        try_match(g, pat, strlen(pat));
        sl_grok_free(g);
    }
    free(pat);
    return 0;
}
