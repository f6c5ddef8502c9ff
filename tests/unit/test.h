/*
 * test.h - the unit-test harness: a dozen lines, no dependency. Each test
 * file defines TEST functions and lists them in main with RUN(); the summary
 * line "N passed, N failed" is what CI reads. A failed CHECK reports file:line
 * and continues with the next check, so one run shows every failure.
 */
#ifndef SLUICE_TEST_H
#define SLUICE_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int t_failed_checks;
static int t_passed, t_failed;

#define TEST(name) static void name(void)

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            t_failed_checks++;                                                   \
        }                                                                        \
    } while (0)

#define CHECK_INT(a, b)                                                          \
    do {                                                                         \
        long long t_a = (long long)(a), t_b = (long long)(b);                    \
        if (t_a != t_b) {                                                        \
            fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, \
                    t_a, t_b);                                                   \
            t_failed_checks++;                                                   \
        }                                                                        \
    } while (0)

#define CHECK_STR(a, b)                                                          \
    do {                                                                         \
        const char *t_a = (a), *t_b = (b);                                       \
        if (!t_a || !t_b || strcmp(t_a, t_b) != 0) {                             \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a, \
                    t_a ? t_a : "(null)", t_b ? t_b : "(null)");                 \
            t_failed_checks++;                                                   \
        }                                                                        \
    } while (0)

/* Compares a (ptr,len) byte string with a C string. */
#define CHECK_MEM(p, n, s)                                                       \
    do {                                                                         \
        const char *t_p = (const char *)(p), *t_s = (s);                         \
        size_t t_n = (n);                                                        \
        if (!t_p || t_n != strlen(t_s) || memcmp(t_p, t_s, t_n) != 0) {          \
            fprintf(stderr, "%s:%d: %s == \"%.*s\", expected \"%s\"\n", __FILE__, __LINE__, \
                    #p, (int)(t_p ? t_n : 0), t_p ? t_p : "", t_s);              \
            t_failed_checks++;                                                   \
        }                                                                        \
    } while (0)

#define RUN(name)                                                                \
    do {                                                                         \
        int t_before = t_failed_checks;                                          \
        name();                                                                  \
        if (t_failed_checks == t_before) {                                       \
            t_passed++;                                                          \
        } else {                                                                 \
            t_failed++;                                                          \
            fprintf(stderr, "FAIL %s\n", #name);                                 \
        }                                                                        \
    } while (0)

#define TEST_SUMMARY()                                                           \
    (printf("%s: %d passed, %d failed\n", __FILE__, t_passed, t_failed), t_failed ? 1 : 0)

#endif
