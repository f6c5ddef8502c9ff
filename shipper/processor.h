/*
 * processor.h - Filebeat's processors on the shipper (docs/shipper.md,
 * Processors): add_fields, drop_fields, include_fields, rename, drop_event,
 * decode_json_fields, add_host_metadata, add_kubernetes_metadata, each with
 * an optional `when`. A chain is compiled once from the config and runs on an
 * event tree; the caller sets an arena scope (value.h) so that what the
 * processors add costs no heap allocation.
 */
#ifndef SHIPPER_PROCESSOR_H
#define SHIPPER_PROCESSOR_H

#include "sluice/config.h"
#include "sluice/metrics.h"
#include "sluice/value.h"

struct proc_chain;
struct when;

/* Compiles the list n (NULL or empty: *out = NULL, no chain); errors are
 * recorded in cfg. where: "inputs[0]" or "" (global). 0 or SL_EINVAL. */
int proc_chain_parse(struct sl_cfg *cfg, struct sl_cfg_node *n, const char *where,
                     struct proc_chain **out);
void proc_chain_free(struct proc_chain *c);

/* For a running shipper (not -t): registers
 * sluice_shipper_processor_errors_total{processor} for c's processors and
 * starts what runs beside them (add_kubernetes_metadata's API watcher). */
void proc_chain_start(struct proc_chain *c, struct sl_metrics *metrics);

/* Runs c on ev (an object). False when a processor dropped the event. */
bool proc_chain_run(struct proc_chain *c, struct sl_value *ev);

/*
 * For event shapes (shape.h): a chain is "static" when what it does to an event
 * depends only on the event's fields other than @timestamp, message and
 * log.offset (nor on where a rename moved them), except for drop_event, whose
 * condition may read anything; chains[0..n) run one after the other. Then
 * its effect can be computed once per file and variant, and per event only the
 * drop_event conditions are evaluated. Not static: decode_json_fields, or a
 * `when` reading those fields on another processor. NULL chains are static.
 */
bool proc_chain_static(struct proc_chain *const *chains, size_t n);
size_t proc_chain_len(const struct proc_chain *c);
/* Processor i alone (with its when); false when it dropped the event. */
bool proc_run_one(struct proc_chain *c, size_t i, struct sl_value *ev);
/* Processor i is drop_event: its condition (NULL: always). */
bool proc_is_drop(const struct proc_chain *c, size_t i, const struct when **when);
/* Refreshes add_host_metadata caches whose cache.ttl ran out; returns a number that
 * grows whenever any processor's static output may have changed. */
uint64_t proc_refresh(struct proc_chain *c);

#endif
