/*
 * options.h - reads a YAML map through a plugin's option table (struct sl_opt,
 * see sluice/plugin.h) into the struct the table's offsets point into, frees
 * what it read, and renders a table as Markdown for the docs. One reader for
 * every plugin: types, bounds, choices, defaults, aliases, required and
 * unknown keys are checked here and nowhere else.
 */
#ifndef SLUICE_AGG_OPTIONS_H
#define SLUICE_AGG_OPTIONS_H

#include "sluice/buf.h"
#include "sluice/config.h"
#include "sluice/plugin.h"

/*
 * Reads map (NULL: everything defaults) into base through table. where
 * prefixes messages ("outputs[1] (kafka)"). Then keys of map that neither
 * table nor extra (another table read from the same map, e.g. the core's
 * options; may be NULL) names, and that no getter read, are reported as
 * unknown, with a suggestion among those names - unless extra is
 * AGG_OPTS_PARTIAL (more of map is read afterwards). Returns 0 or SL_EINVAL
 * with the errors in cfg. base holds something to free either way: always
 * call agg_opts_free().
 */
int agg_opts_read(struct sl_cfg *cfg, struct sl_cfg_node *map, const char *where,
                  const struct sl_opt *table, void *base, const struct sl_opt *extra);
extern const struct sl_opt agg_opts_partial[1];
#define AGG_OPTS_PARTIAL agg_opts_partial

/* Frees what agg_opts_read stored in base (not base itself), zeroing it. */
void agg_opts_free(const struct sl_opt *table, void *base);

/* Appends a Markdown table of the options (nested blocks as "ssl.key"). */
void agg_opts_doc(struct sl_buf *out, const struct sl_opt *table);
/* Just the rows, names prefixed by prefix; AGG_OPTS_DOC_HEAD is the table's head. */
void agg_opts_doc_rows(struct sl_buf *out, const struct sl_opt *table, const char *prefix);
#define AGG_OPTS_DOC_HEAD "| option | type | default | description |\n|---|---|---|---|\n"

/* The node an option was read from in map (by its name or its alias), or NULL. */
struct sl_cfg_node *agg_opts_node(struct sl_cfg_node *map, const struct sl_opt *o);

#endif
