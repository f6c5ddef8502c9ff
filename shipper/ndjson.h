/*
 * ndjson.h - Filebeat's ndjson parser (filestream `parsers: [{ndjson: ...}]`):
 * each message is one JSON object whose keys become the event's fields
 * (docs/shipper.md, The ndjson parser).
 */
#ifndef SHIPPER_NDJSON_H
#define SHIPPER_NDJSON_H

#include "sluice/config.h"
#include "sluice/value.h"

struct ndjson;

/* Reads an input's `parsers:` list (NULL node: *out = NULL). Only ndjson exists
 * here; multiline is the input's `multiline:` key. 0 or SL_EINVAL. */
int ndjson_parse_conf(struct sl_cfg *cfg, struct sl_cfg_node *parsers, const char *where,
                      struct ndjson **out);
void ndjson_free(struct ndjson *n);

/*
 * Decodes ev's message into ev. False when it was not a JSON object (the event
 * keeps its message; error.message says why with add_error_key).
 */
bool ndjson_apply(const struct ndjson *n, struct sl_value *ev);

#endif
