/*
 * when.h - Filebeat's processor conditions (docs/shipper.md, Processors):
 * equals, contains, regexp, range, has_fields, and, or, not - compiled once
 * from the config, evaluated on an event tree with no allocation.
 */
#ifndef SHIPPER_WHEN_H
#define SHIPPER_WHEN_H

#include "sluice/config.h"
#include "sluice/value.h"

struct when;

/* Compiles the condition map n; errors are recorded in cfg. 0 or SL_EINVAL. */
int when_parse(struct sl_cfg *cfg, struct sl_cfg_node *n, const char *where, struct when **out);
bool when_eval(const struct when *w, const struct sl_value *ev);
void when_free(struct when *w);
/* True when w reads one of fields (NULL-terminated, dotted), a field inside
 * one of them, or an object that holds one of them. */
bool when_reads(const struct when *w, const char *const *fields);
/* Is one of the field r and the dotted name a inside the other (or the same)? */
bool when_ref_overlaps(const struct sl_fieldref *r, const char *a);

/* A YAML scalar as Beats type it: unquoted true/false, integers and decimals keep
 * their type, ~/null/empty is null, anything else a string. Maps and lists recurse. */
void when_node_value(const struct sl_cfg_node *n, struct sl_value *out);

#endif
