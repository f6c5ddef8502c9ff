/*
 * config.h - YAML configuration on libyaml: a tree whose nodes remember their
 * file, line and column, ${VAR} / ${VAR:-default} expansion in every scalar,
 * and typed getters that check values and report every problem as
 *     FILE:LINE:COLUMN: message
 * Modules read only their own map, through the getters, and finish each map
 * with sl_cfg_check_unknown() so a typo is an error, never silently ignored.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include "buf.h"
#include "common.h"

enum sl_cfg_type { SL_CFG_SCALAR, SL_CFG_MAP, SL_CFG_SEQ };

struct sl_cfg_node {
    enum sl_cfg_type type;
    int line, col;                  /* 1-based, where the node starts */
    char *scalar;                   /* SCALAR: the value after ${} expansion (owned) */
    bool quoted;                    /* SCALAR: written with quotes (so never null/bool) */
    size_t n;                       /* MAP: pairs; SEQ: items */
    char **keys;                    /* MAP: key strings (owned) */
    struct sl_cfg_node **key_nodes; /* MAP: key positions, for "unknown option" errors */
    struct sl_cfg_node **items;     /* MAP: values; SEQ: items (owned) */
    bool *used;                     /* MAP: set by the getters */
    char **asked;                   /* MAP: keys looked up and absent (NULL-terminated), the
                                     * candidates of "did you mean" for unknown keys */
    size_t nasked;
};

struct sl_cfg {
    char *file;                /* as given to sl_cfg_load (owned) */
    struct sl_cfg_node *root;  /* NULL for an empty document */
    int nerrors;
    struct sl_buf errors;      /* every error line, "\n"-terminated */
};

/*
 * Loads and expands path. Returns 0, or SL_EINVAL with the errors recorded
 * (YAML syntax errors carry their line:col; an unset ${VAR} without default is
 * an error). Always call sl_cfg_free(), also on failure.
 * Anchors/aliases are rejected; the document must be a map (or empty).
 */
int sl_cfg_load(struct sl_cfg *cfg, const char *path);
/* Same from memory; name is used in messages. */
int sl_cfg_load_string(struct sl_cfg *cfg, const char *name, const char *text, size_t len);
void sl_cfg_free(struct sl_cfg *cfg);

/* Records "FILE:LINE:COL: message" at node n (or FILE:1:1 when n is NULL). */
void sl_cfg_error(struct sl_cfg *cfg, const struct sl_cfg_node *n, const char *fmt, ...)
    SL_PRINTF(3, 4);

/* Looks key up in map (NULL map -> NULL) and marks it used. */
struct sl_cfg_node *sl_cfg_get(struct sl_cfg_node *map, const char *key);
/*
 * Reports each key of map that no getter asked for:
 *     "<where>: unknown option 'brokerz' (did you mean 'brokers'?)" at the key's
 * position; the suggestion is the closest of the keys the getters asked for.
 */
void sl_cfg_check_unknown(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where);
/* Same, and when a key is a likely typo of one of known (NULL-terminated), adds
 *     " (did you mean 'brokers'?)" */
void sl_cfg_check_unknown_in(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                             const char *const *known);
/* The entry of known (NULL-terminated) closest to word within a small edit
 * distance (case-insensitive), or NULL. */
const char *sl_cfg_suggest(const char *word, const char *const *known);
/* True for an absent node, YAML null (~, null) or an empty unquoted scalar. */
bool sl_cfg_is_null(const struct sl_cfg_node *n);
/* Records "<where>: option '<key>' must be <expect>, got 'text'" (or "got a list",
 * "got a map", "got nothing") at n: the one wording of a wrong value. */
void sl_cfg_bad_value(struct sl_cfg *cfg, const struct sl_cfg_node *n, const char *where,
                      const char *key, const char *expect);
/* "a map", "a list", "a string" or "nothing" (null): how messages name a node. */
const char *sl_cfg_kind(const struct sl_cfg_node *n);
/* 1 for true/yes/on, 0 for false/no/off (any case), -1 for anything else. */
int sl_cfg_parse_bool(const char *s);

/*
 * Typed getters. Each looks key up in map; when absent (or YAML null ~ / empty
 * unquoted) it stores def and returns 0. When present but wrong it records an
 * error naming the option (prefixed by where, e.g. "output") and returns
 * SL_EINVAL, leaving def in *out. map may be NULL (everything defaults).
 */
int sl_cfg_str(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where, const char *key,
               const char *def, char **out /* owned by caller; NULL when def is NULL */);
int sl_cfg_bool(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where, const char *key,
                bool def, bool *out);
int sl_cfg_int(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where, const char *key,
               int64_t def, int64_t min, int64_t max, int64_t *out);
int sl_cfg_size(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where, const char *key,
                uint64_t def, uint64_t min, uint64_t max, uint64_t *out);
int sl_cfg_duration(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                    const char *key, uint64_t def_ms, uint64_t min_ms, uint64_t max_ms,
                    uint64_t *out_ms);
/* One of choices (NULL-terminated); *out is the index. def is an index too. */
int sl_cfg_enum(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where, const char *key,
                const char *const *choices, int def, int *out);
/* A sequence of scalars (a single scalar is taken as a one-item list).
 * *out is a NULL-terminated array of owned strings (free with sl_cfg_strv_free). */
int sl_cfg_strlist(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                   const char *key, char ***out, size_t *n);
void sl_cfg_strv_free(char **v);

/* Checks that node is a map (NULL is fine); records an error otherwise. */
bool sl_cfg_is_map(struct sl_cfg *cfg, struct sl_cfg_node *node, const char *where);

#endif
