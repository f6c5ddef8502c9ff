/*
 * plugins.c - finds a compiled-in plugin by name and kind in sl_plugins, the
 * table the Makefile generates from PLUGINS. A linear scan: the table has a
 * dozen entries and is searched only while reading the configuration.
 */
#include <string.h>

#include "sluice/plugin.h"

const struct sl_plugin *sl_plugin_find(const char *name, enum sl_plugin_kind kind)
{
    for (const struct sl_plugin *const *p = sl_plugins; *p; p++) {
        if ((*p)->kind == kind && strcmp((*p)->name, name) == 0) {
            return *p;
        }
    }
    return NULL;
}
