/*
 * grok.h - the grok engine behind the `grok` filter: a dictionary of named
 * patterns (NAME -> regex), Logstash's expansion of %{NAME}, %{NAME:field}
 * and %{NAME:field:int|float} into one Oniguruma regex (Ruby syntax, UTF-8),
 * and bounded matching. It knows nothing about events or configuration:
 * filter_grok.c maps captures onto events and errors onto config positions.
 *
 * Every field a pattern captures - through %{NAME:field} or a named group
 * (?<field>...) - becomes a group with a generated, always-valid name
 * (_g1, _g2 ...), so field names may be any field reference ("[a][b]",
 * "@x", "a.b") and several groups may share one field.
 *
 * A compiled struct sl_grok is read-only after sl_grok_compile(): any number
 * of threads may call sl_grok_match() on it at once.
 */
#ifndef SLUICE_FILTER_GROK_H
#define SLUICE_FILTER_GROK_H

#include <oniguruma.h>

#include "sluice/common.h"

/* Hard limits on what a pattern may expand to (config errors beyond them). */
#define SL_GROK_MAX_DEPTH 64              /* %{} nested inside definitions */
#define SL_GROK_MAX_EXPANDED (1u << 20)   /* bytes of the expanded regex */
#define SL_GROK_MAX_CAPTURES 1000         /* fields one pattern may capture */

/*
 * The file contents of config/patterns/, embedded at build time by
 * scripts/embed-patterns: pairs of (file name, contents), then NULL.
 */
extern const char *const sl_grok_builtin_patterns[];

enum sl_grok_type { SL_GROK_STRING, SL_GROK_INT, SL_GROK_FLOAT };

struct sl_grok_lib;

/* An empty dictionary. Free with sl_grok_lib_free (NULL is a no-op). */
struct sl_grok_lib *sl_grok_lib_new(void);
void sl_grok_lib_free(struct sl_grok_lib *lib);

/*
 * Defines (or redefines: the later definition wins) NAME as regex. origin and
 * line say where the definition comes from, for messages ("httpd", 12; line 0:
 * origin alone, e.g. "pattern_definitions"); origin is copied. Returns 0, or
 * SL_EINVAL when name is not [A-Za-z0-9_]+.
 */
int sl_grok_lib_add(struct sl_grok_lib *lib, const char *name, const char *regex,
                    const char *origin, int line);

/*
 * Adds every definition of a pattern file's text: one `NAME regex` per line
 * (NAME, then spaces or tabs, then the regex up to the end of the line),
 * blank lines and lines starting with '#' (after optional blanks) ignored.
 * Returns 0, or SL_EINVAL after writing "origin:LINE: message" to err for the
 * first malformed line (the definitions before it are kept).
 */
int sl_grok_lib_add_text(struct sl_grok_lib *lib, const char *origin, const char *text,
                         size_t len, char *err, size_t errlen);

/* The definition of name, or NULL. Valid until the dictionary changes. */
const char *sl_grok_lib_get(const struct sl_grok_lib *lib, const char *name);

/* One field a compiled pattern fills. */
struct sl_grok_capture {
    char *field;             /* field reference as written: "clientip", "[a][b]" */
    enum sl_grok_type type;
    int group;               /* Oniguruma group number */
};

struct sl_grok {
    OnigRegex re;
    OnigRegex re_line;       /* the same with '^' as '\A', for subjects without '\n'; or NULL */
    OnigRegex re_head;       /* re without a trailing capture of '.*' (see grok.c); or NULL */
    OnigRegex re_line_head;  /* re_line without it; or NULL */
    int tail_group;          /* the group of that capture in re */
    char *source;            /* the pattern as given */
    char *expanded;          /* what was compiled */
    struct sl_grok_capture *caps;  /* in the order the groups appear */
    size_t ncaps;
};

/*
 * Expands pattern with lib and compiles it. named_only: when false, a bare
 * %{NAME} also captures, into field NAME (Logstash's named_captures_only:
 * false). Returns the compiled pattern, or NULL after writing a one-line
 * reason to err ("unknown pattern 'FOO' in %{FOO:x}", "invalid regex: ...",
 * "pattern 'A' refers to itself: A -> B -> A", "in definition of 'X'
 * (httpd:3): ..."). Free with sl_grok_free (NULL is a no-op).
 */
struct sl_grok *sl_grok_compile(const struct sl_grok_lib *lib, const char *pattern,
                                bool named_only, char *err, size_t errlen);
void sl_grok_free(struct sl_grok *g);

/* Budget of one sl_grok_match() call. */
struct sl_grok_limits {
    uint64_t time_ms;        /* wall-clock budget of a search (0: Oniguruma's retry limit) */
    unsigned int stack;      /* match stack entries (0 = unlimited) */
};

/*
 * Searches s[0..len) for g. Returns 1 on a match (the groups are in the
 * region, which belongs to the calling thread and stays valid until its next
 * sl_grok_match), 0 when there is none, SL_ELIMIT when the budget ran out (or
 * Oniguruma failed otherwise: the line is treated as one that took too long).
 */
int sl_grok_match(const struct sl_grok *g, const char *s, size_t len,
                  const struct sl_grok_limits *lim, const OnigRegion **region);


#endif
