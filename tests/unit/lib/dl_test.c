/*
 * dl_test.c - libraries opened on first use: the first name found is used,
 * every symbol resolved; a missing library or symbol is an error that says
 * which, with nothing resolved.
 */
#include "sluice/dl.h"

#include <string.h>

#include "sluice/common.h"
#include "test.h"

TEST(resolves_every_symbol_of_the_first_library_found)
{
    static const char *const names[] = {"libsluice-none.so.9", "libz.so.1", NULL};
    static const char *const syms[] = {"zlibVersion", "crc32"};
    void *fns[2] = {NULL, NULL};
    char err[256] = "";
    CHECK_INT(sl_dl_load(names, syms, fns, 2, err, sizeof(err)), 0);
    CHECK(fns[0] != NULL && fns[1] != NULL);
    const char *(*version)(void) = (const char *(*)(void))fns[0];
    CHECK(version()[0] >= '1');
}

TEST(a_missing_library_is_an_error)
{
    static const char *const names[] = {"libsluice-none.so.9", NULL};
    static const char *const syms[] = {"x"};
    void *fns[1] = {NULL};
    char err[256] = "";
    CHECK_INT(sl_dl_load(names, syms, fns, 1, err, sizeof(err)), SL_ENOENT);
    CHECK(strstr(err, "libsluice-none.so.9") != NULL);
    CHECK(fns[0] == NULL);
}

TEST(a_missing_symbol_is_an_error)
{
    static const char *const names[] = {"libz.so.1", NULL};
    static const char *const syms[] = {"zlibVersion", "no_such_function_here"};
    void *fns[2] = {NULL, NULL};
    char err[256] = "";
    CHECK_INT(sl_dl_load(names, syms, fns, 2, err, sizeof(err)), SL_ENOENT);
    CHECK_STR(err, "libz.so.1: no symbol no_such_function_here");
    CHECK(fns[0] == NULL);
}

int main(void)
{
    RUN(resolves_every_symbol_of_the_first_library_found);
    RUN(a_missing_library_is_an_error);
    RUN(a_missing_symbol_is_an_error);
    return TEST_SUMMARY();
}
