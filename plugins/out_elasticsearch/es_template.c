/*
 * es_template.c - the built-in index templates (see es_template.h).
 *
 * The mappings are written out rather than left to dynamic mapping because
 * dynamic mapping guesses from the first document: a status code sent as
 * "200" becomes text, a client address becomes a keyword that no CIDR query
 * can find, and a field that is an object in one event and a string in
 * another splits the index. What is mapped here is what the pipeline emits
 * in each mode; anything else falls to the dynamic templates at the end.
 */
#include "es_template.h"

#include <string.h>

#include "sluice/json.h"

void es_template_pattern(const char *index_source, struct sl_buf *out)
{
    const char *p = index_source;
    bool star = false;
    while (*p) {
        if (p[0] == '%' && p[1] == '{') {
            const char *close = strchr(p, '}');
            if (close) {
                if (!star) {
                    sl_buf_putc(out, '*');
                }
                star = true;
                p = close + 1;
                continue;
            }
        }
        char c = *p++;
        if (c == '*' && star) {
            continue;
        }
        star = c == '*';
        sl_buf_putc(out, c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c);
    }
}

/* Field shapes used below. */
#define KW "{\"type\":\"keyword\",\"ignore_above\":1024}"
#define LONG "{\"type\":\"long\"}"
#define IP "{\"type\":\"ip\"}"
/* A keyword that may also be searched word by word: Kibana filters on the
 * keyword, full-text queries go to <field>.text. */
#define KW_TEXT "{\"type\":\"keyword\",\"ignore_above\":2048," \
                "\"fields\":{\"text\":{\"type\":\"text\"}}}"
/* Text that may also be filtered on whole (Logstash's legacy string shape). */
#define TEXT_KW "{\"type\":\"text\",\"fields\":{\"keyword\":{\"type\":\"keyword\"," \
                "\"ignore_above\":256}}}"

/* What every event has, in both modes (docs/configuration.md, the event). */
#define COMMON_PROPS \
    "\"@timestamp\":{\"type\":\"date\"}," \
    "\"message\":{\"type\":\"text\"}," \
    "\"tags\":" KW "," \
    "\"log\":{\"properties\":{\"file\":{\"properties\":{\"path\":" KW ",\"inode\":" KW "," \
        "\"device_id\":" KW "}}," \
        "\"offset\":" LONG ",\"flags\":" KW ",\"level\":" KW "," \
        "\"origin\":{\"properties\":{\"function\":" KW ",\"file\":{\"properties\":{" \
            "\"name\":" KW ",\"line\":" LONG "}}}}," \
        "\"syslog\":{\"properties\":{\"priority\":" LONG ",\"facility\":{\"properties\":{" \
            "\"code\":" LONG "}}}}}}," \
    "\"input\":{\"properties\":{\"type\":" KW "}}," \
    "\"ecs\":{\"properties\":{\"version\":" KW "}}," \
    "\"fields\":{\"type\":\"object\",\"dynamic\":true}," \
    "\"timestamp\":" KW ","

/* ECS 8 names: Beats' host and agent objects, and what the ecs-v1 patterns
 * capture (httpd, nginx, syslog, java). event.original is kept, not indexed. */
static const char ecs_props[] =
    COMMON_PROPS
    "\"host\":{\"properties\":{\"name\":" KW ",\"hostname\":" KW ",\"ip\":" IP "}},"
    "\"agent\":{\"properties\":{\"type\":" KW ",\"version\":" KW ",\"name\":" KW ","
        "\"id\":" KW ",\"ephemeral_id\":" KW "}},"
    "\"event\":{\"properties\":{\"original\":{\"type\":\"keyword\",\"index\":false,"
        "\"doc_values\":false},\"code\":" KW ",\"dataset\":" KW ",\"module\":" KW "}},"
    "\"source\":{\"properties\":{\"address\":" KW ",\"ip\":" IP ",\"port\":" LONG ","
        "\"domain\":" KW "}},"
    "\"user\":{\"properties\":{\"name\":" KW_TEXT "}},"
    "\"http\":{\"properties\":{\"version\":" KW ","
        "\"request\":{\"properties\":{\"method\":" KW ",\"referrer\":" KW_TEXT "}},"
        "\"response\":{\"properties\":{\"status_code\":" LONG ","
            "\"body\":{\"properties\":{\"bytes\":" LONG "}}}}}},"
    "\"url\":{\"properties\":{\"original\":" KW_TEXT ",\"domain\":" KW ",\"path\":" KW "}},"
    "\"user_agent\":{\"properties\":{\"original\":" KW_TEXT "}},"
    "\"process\":{\"properties\":{\"pid\":" LONG ",\"name\":" KW ","
        "\"thread\":{\"properties\":{\"id\":" LONG ",\"name\":" KW "}}}},"
    "\"error\":{\"properties\":{\"code\":" KW ",\"message\":{\"type\":\"text\"}}}";

/* Legacy names: what the legacy patterns capture. Beats' `agent` object is
 * renamed `beat` by the documented recipe (its Beats 6 name), because grok's
 * `agent` is the user agent string here; an event that still carries the
 * object is refused with a mapping error (and dead-lettered, with the reason). */
static const char legacy_props[] =
    COMMON_PROPS
    "\"host\":{\"properties\":{\"name\":" KW "}},"
    "\"beat\":{\"properties\":{\"type\":" KW ",\"version\":" KW ",\"name\":" KW ","
        "\"id\":" KW ",\"ephemeral_id\":" KW "}},"
    "\"clientip\":{\"type\":\"ip\",\"ignore_malformed\":true},"
    "\"ident\":" KW ",\"auth\":" KW ",\"verb\":" KW ","
    "\"request\":" TEXT_KW ",\"rawrequest\":" TEXT_KW ",\"httpversion\":" KW ","
    "\"response\":" LONG ",\"bytes\":" LONG ","
    "\"referrer\":" TEXT_KW ",\"agent\":" TEXT_KW ","
    "\"loglevel\":" KW ",\"level\":" KW ",\"pid\":" LONG ",\"tid\":" KW ","
    "\"program\":" KW ",\"logsource\":" KW ",\"facility\":" LONG ",\"priority\":" LONG;

/* Strings nobody mapped: keywords in ECS (as ECS's own templates), text with a
 * keyword sub-field in legacy mode (as Logstash's legacy template). */
static const char ecs_dynamic[] =
    "[{\"strings_as_keyword\":{\"match_mapping_type\":\"string\","
    "\"mapping\":" KW "}}]";
static const char legacy_dynamic[] =
    "[{\"string_fields\":{\"match_mapping_type\":\"string\",\"mapping\":" TEXT_KW "}}]";

void es_template_builtin(struct sl_buf *out, enum sl_ecs mode, const char *pattern,
                         bool data_stream)
{
    bool ecs = mode != SL_ECS_DISABLED;
    sl_buf_puts(out, "{\"index_patterns\":[");
    sl_json_put_str(out, pattern, strlen(pattern));
    sl_buf_printf(out, "],\"priority\":%d,", ES_TEMPLATE_PRIORITY);
    if (data_stream) {
        sl_buf_puts(out, "\"data_stream\":{},");
    }
    sl_buf_printf(out, "\"_meta\":{\"managed_by\":\"sluice\",\"ecs_compatibility\":\"%s\"},",
                  ecs ? "v8" : "disabled");
    sl_buf_puts(out, "\"template\":{\"settings\":{\"index\":{\"refresh_interval\":\"5s\","
                     "\"auto_expand_replicas\":\"0-1\","
                     "\"mapping\":{\"total_fields\":{\"limit\":2000}}}},"
                     "\"mappings\":{\"date_detection\":false,\"dynamic_templates\":");
    sl_buf_puts(out, ecs ? ecs_dynamic : legacy_dynamic);
    sl_buf_puts(out, ",\"properties\":{");
    sl_buf_puts(out, ecs ? ecs_props : legacy_props);
    sl_buf_puts(out, "}}}}");
}
