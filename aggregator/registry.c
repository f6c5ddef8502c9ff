/*
 * registry.c - finds a compiled-in plugin by name and kind in sl_plugins, the
 * table the Makefile generates from PLUGINS. A linear scan: the table has a
 * dozen entries and is searched only while reading the configuration. Apart
 * from instance.c so that a plugin's test links its one plugin, not all.
 */
#include <stdatomic.h>
#include <string.h>

#include "instance.h"

const struct sl_plugin *agg_plugin_find(const char *name, enum sl_plugin_kind kind)
{
    for (const struct sl_plugin *const *p = sl_plugins; *p; p++) {
        if ((*p)->kind == kind && strcmp((*p)->name, name) == 0) {
            return *p;
        }
    }
    return NULL;
}

const char *const *agg_plugin_names(enum sl_plugin_kind kind)
{
    static const char *names[2][64];
    static atomic_bool made[2];
    if (!atomic_load(&made[kind])) {
        size_t n = 0;
        for (const struct sl_plugin *const *p = sl_plugins; *p && n < 63; p++) {
            if ((*p)->kind == kind) {
                names[kind][n++] = (*p)->name;
            }
        }
        names[kind][n] = NULL;
        atomic_store(&made[kind], true);
    }
    return names[kind];
}

