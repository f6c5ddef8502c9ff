/*
 * es_template.h - the index template the Elasticsearch output installs by
 * default (manage_template, docs/output-elasticsearch.md): a composable
 * template (_index_template) whose mapping fits what sluice emits in the
 * output's ecs_compatibility mode - Beats' event fields plus the fields of the
 * grok library's patterns of that mode - with dates as `date`, addresses as
 * `ip`, counts as `long`, free text as `text` (keyword sub-fields where
 * Kibana users filter), other strings as `keyword`.
 *
 * Plugin-internal, pure (no I/O): out_elasticsearch.c and the plugin test.
 */
#ifndef SLUICE_ES_TEMPLATE_H
#define SLUICE_ES_TEMPLATE_H

#include <stdbool.h>

#include "sluice/buf.h"
#include "sluice/plugin.h"

/* Template names when template_name is not given, as Logstash's
 * ("ecs-logstash" / "logstash") for sluice's own mappings. */
#define ES_TEMPLATE_NAME_ECS "ecs-sluice"
#define ES_TEMPLATE_NAME_LEGACY "sluice"

/* Priority of the built-in template: above Elasticsearch's own `logs`
 * template (100, logs-*-*), which would make logs-* indices data streams. */
#define ES_TEMPLATE_PRIORITY 200

/*
 * The index pattern the template applies to, from the output's `index`
 * setting: each %{...} becomes '*' (runs of '*' merge), ASCII lowercased,
 * as the index names it renders are. "logs-%{[fields][service]}-%{+yyyy.MM.dd}"
 * -> "logs-*-*"; a name without %{} stays as it is.
 */
void es_template_pattern(const char *index_source, struct sl_buf *out);

/*
 * Appends the JSON body of the built-in template for mode to out: pattern as
 * its one index pattern, and `data_stream: {}` when data_stream (so the
 * stream is created on the first event).
 */
void es_template_builtin(struct sl_buf *out, enum sl_ecs mode, const char *pattern,
                         bool data_stream);

#endif
