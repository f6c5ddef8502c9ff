/*
 * glob.h - path globs as Filebeat users write them: `*`, `?`, `[..]` within one
 * path component, and `**` for any number of directories (up to GLOB_MAX_DEPTH,
 * as Filebeat's recursive_glob). Unlike glob(3), the walk reports every
 * directory it had to read, so the caller can watch exactly those with inotify.
 */
#ifndef SHIPPER_GLOB_H
#define SHIPPER_GLOB_H

#include <stdbool.h>

#define GLOB_MAX_DEPTH 8

struct glob_visitor {
    void (*file)(void *arg, const char *path);  /* a regular file whose path matches */
    void (*dir)(void *arg, const char *dir);    /* a directory that could hold matches */
    void *arg;
};

/* Walks the file system for pattern (absolute or relative). */
void glob_walk(const char *pattern, const struct glob_visitor *v);
/* True when path matches pattern (same rules as the walk). */
bool glob_match(const char *pattern, const char *path);

#endif
