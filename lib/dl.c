/*
 * dl.c - shared libraries resolved on first use (see dl.h).
 */
#include "sluice/dl.h"

#include <dlfcn.h>
#include <stdio.h>

#include "sluice/common.h"

int sl_dl_load(const char *const *names, const char *const *syms, void **fns, size_t n,
               char *err, size_t errlen)
{
    void *h = NULL;
    const char *why = "no library name", *name = NULL;
    for (size_t i = 0; names[i] && !h; i++) {
        name = names[i];
        h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            why = dlerror();
        }
    }
    if (!h) {
        snprintf(err, errlen, "%s", why ? why : "cannot load");
        return SL_ENOENT;
    }
    for (size_t i = 0; i < n; i++) {
        fns[i] = dlsym(h, syms[i]);
        if (!fns[i]) {
            snprintf(err, errlen, "%s: no symbol %s", name, syms[i]);
            for (size_t k = 0; k < i; k++) {
                fns[k] = NULL;  /* they would point into the library closed below */
            }
            dlclose(h);
            return SL_ENOENT;
        }
    }
    return 0;  /* h stays open for the process's life: its functions are in use */
}
