/*
 * glob.c - component-wise globbing with `**`. A pattern is split at '/';
 * literal components are descended into directly, wildcard components are
 * matched with fnmatch(3) against directory entries, and `**` matches zero or
 * more directories.
 */
#include "glob.h"

#include <dirent.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_PARTS 64

struct pattern {
    char buf[PATH_MAX];
    const char *part[MAX_PARTS];
    int n;
    bool absolute;
};

static bool has_magic(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

static bool split(const char *pattern, struct pattern *p)
{
    if (strlen(pattern) >= sizeof(p->buf)) {
        return false;
    }
    strcpy(p->buf, pattern);
    p->absolute = pattern[0] == '/';
    p->n = 0;
    for (char *save = NULL, *tok = strtok_r(p->buf, "/", &save); tok;
         tok = strtok_r(NULL, "/", &save)) {
        if (p->n == MAX_PARTS || strcmp(tok, ".") == 0) {
            if (p->n == MAX_PARTS) {
                return false;
            }
            continue;
        }
        p->part[p->n++] = tok;
    }
    return p->n > 0;
}

static bool join(char *out, size_t outlen, const char *dir, const char *name)
{
    int n;
    if (dir[0] == '\0') {
        n = snprintf(out, outlen, "%s", name);
    } else if (strcmp(dir, "/") == 0) {
        n = snprintf(out, outlen, "/%s", name);
    } else {
        n = snprintf(out, outlen, "%s/%s", dir, name);
    }
    return n > 0 && (size_t)n < outlen;
}

static void walk(const struct pattern *p, int i, const char *dir, int depth,
                 const struct glob_visitor *v);

/* dir is an existing directory; match p->part[i..] below it. */
static void walk_dir(const struct pattern *p, int i, const char *dir, int depth,
                     const struct glob_visitor *v)
{
    const char *part = p->part[i];
    bool last = i == p->n - 1;
    if (strcmp(part, "**") == 0) {
        if (last) {
            /* A trailing ** matches files at any depth, as Filebeat does. */
            walk_dir(&(struct pattern){0}, 0, dir, depth, v);
        }
        walk(p, i + 1, dir, depth, v);  /* zero directories */
        if (depth >= GLOB_MAX_DEPTH) {
            return;
        }
        if (v->dir) {
            v->dir(v->arg, dir[0] ? dir : ".");
        }
        DIR *d = opendir(dir[0] ? dir : ".");
        if (!d) {
            return;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
                continue;
            }
            char sub[PATH_MAX];
            struct stat st;
            if (join(sub, sizeof(sub), dir, e->d_name) && stat(sub, &st) == 0 &&
                S_ISDIR(st.st_mode)) {
                walk_dir(p, i, sub, depth + 1, v);
            }
        }
        closedir(d);
        return;
    }
    if (p->n == 0) {
        return;  /* the empty pattern used by a trailing ** above: nothing more */
    }
    if (!has_magic(part)) {
        char next[PATH_MAX];
        if (join(next, sizeof(next), dir, part)) {
            walk(p, i + 1, next, depth, v);
        }
        if (last && v->dir) {
            v->dir(v->arg, dir[0] ? dir : ".");
        }
        return;
    }
    if (v->dir) {
        v->dir(v->arg, dir[0] ? dir : ".");
    }
    DIR *d = opendir(dir[0] ? dir : ".");
    if (!d) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            fnmatch(part, e->d_name, 0) != 0) {
            continue;
        }
        char next[PATH_MAX];
        if (join(next, sizeof(next), dir, e->d_name)) {
            walk(p, i + 1, next, depth, v);
        }
    }
    closedir(d);
}

/* path exists or not; p->part[i..] remain to be matched below it. */
static void walk(const struct pattern *p, int i, const char *path, int depth,
                 const struct glob_visitor *v)
{
    struct stat st;
    if (stat(path[0] ? path : ".", &st) != 0) {
        return;
    }
    if (i == p->n) {
        if (S_ISREG(st.st_mode) && v->file) {
            v->file(v->arg, path);
        }
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        walk_dir(p, i, path, depth, v);
    }
}

void glob_walk(const char *pattern, const struct glob_visitor *v)
{
    struct pattern p;
    if (!split(pattern, &p)) {
        return;
    }
    walk(&p, 0, p.absolute ? "/" : "", 0, v);
}

static bool match_from(const struct pattern *p, int i, const struct pattern *s, int j,
                       int depth)
{
    if (i == p->n) {
        return j == s->n;
    }
    if (strcmp(p->part[i], "**") == 0) {
        if (i == p->n - 1) {
            return s->n - j >= 1 && s->n - j - 1 <= GLOB_MAX_DEPTH;
        }
        for (int k = j; k < s->n && k - j <= GLOB_MAX_DEPTH; k++) {
            if (match_from(p, i + 1, s, k, depth + 1)) {
                return true;
            }
        }
        return false;
    }
    if (j == s->n || fnmatch(p->part[i], s->part[j], 0) != 0) {
        return false;
    }
    return match_from(p, i + 1, s, j + 1, depth);
}

bool glob_match(const char *pattern, const char *path)
{
    struct pattern p, s;
    if (!split(pattern, &p) || !split(path, &s) || p.absolute != s.absolute) {
        return false;
    }
    return match_from(&p, 0, &s, 0, 0);
}
