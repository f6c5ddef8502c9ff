/*
 * filter_json.c - the `json` filter: decodes the JSON text held in one field
 * and puts the result at a target field, or merges an object into the event's
 * root (Logstash's json filter). It does not encode, and never removes the
 * source field: `mutate: {remove_fields: [...]}` does that.
 */
#include <stddef.h>
#include <string.h>

#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/plugin.h"

struct filter_json {
    struct sl_fieldref source;  /* the field holding the text */
    struct sl_fieldref target;  /* empty: merge at the root */
    bool skip_invalid;          /* invalid text: leave the event untouched, untagged */
    int ecs;                    /* enum sl_ecs, when given */
};

static const struct sl_opt json_opts[] = {
    {.name = "source", .alias = "field", .type = SL_OPT_FIELD, .def = "message",
     .offset = offsetof(struct filter_json, source), .doc = "the field holding the JSON text"},
    {.name = "target", .type = SL_OPT_FIELD, .offset = offsetof(struct filter_json, target),
     .doc = "where the decoded value goes; absent or \"\": merged at the root (objects only)"},
    {.name = "skip_on_invalid_json", .type = SL_OPT_BOOL, .def = "false",
     .offset = offsetof(struct filter_json, skip_invalid),
     .doc = "leave an event whose text is not JSON untouched and untagged"},
    {.name = "ecs_compatibility", .type = SL_OPT_ENUM, .choices = sl_ecs_choices,
     .offset = offsetof(struct filter_json, ecs),
     .doc = "v8/v1: warn at start-up when target is not set (root keys may clash with ECS "
            "fields), as Logstash does; disabled: no warning; default: pipeline.ecs_compatibility"},
    {0},
};

/*
 * Sets each key of obj at the root. Keys are literal names, not references: a
 * decoded "a.b" stays one key, so a sender cannot reach into nested fields it
 * did not send. A non-string "@timestamp" would break every output that
 * formats dates; as Logstash does, it is kept aside in "_@timestamp".
 */
static void merge_root(struct sl_value *event, struct sl_value *obj, bool *bad_ts)
{
    /* A batch: an object of many keys merges in linear time (value.h). */
    struct sl_obj_batch b;
    sl_obj_batch_begin(&b, event, obj->u.o.len);
    for (size_t i = 0; i < obj->u.o.len; i++) {
        struct sl_member *m = &obj->u.o.items[i];
        const char *key = m->key;
        size_t klen = m->klen;
        if (klen == 10 && memcmp(key, "@timestamp", 10) == 0 && m->v.type != SL_V_STRING) {
            key = "_@timestamp";
            klen = 11;
            *bad_ts = true;
        }
        struct sl_value *slot = sl_obj_batch_put(&b, key, klen);
        sl_value_move(slot, &m->v);
    }
    sl_obj_batch_end(&b);
}

#define PARSE_EXTRA ((size_t)16 << 20)  /* pipeline.max_event_memory's default */

static enum sl_filter_result json_filter(void *inst, struct sl_value *event)
{
    const struct filter_json *j = inst;
    const struct sl_value *src = sl_fieldref_get(&j->source, event);
    if (!src) {
        return SL_FILTER_KEEP;  /* nothing to decode, as in Logstash */
    }
    enum sl_filter_result invalid = j->skip_invalid ? SL_FILTER_KEEP : SL_FILTER_FAIL;
    if (src->type != SL_V_STRING) {
        return invalid;
    }
    struct sl_value parsed = {0};
    char err[128];
    /* A small text can expand many times ("[0,0,...]": 16 bytes of value per
     * byte): over its length + PARSE_EXTRA the text is invalid for us, as the
     * core's own parse refuses it (docs/operations.md, "Memory budget"). */
    struct sl_json_limits lim = {.max_bytes = src->u.s.len + PARSE_EXTRA};
    /* src points into the event: parse before anything in the event changes. */
    if (sl_json_parse(src->u.s.ptr, src->u.s.len, &parsed, &lim, err, sizeof(err)) != 0) {
        return invalid;
    }
    if (j->target.nsegs) {
        struct sl_value *slot = sl_fieldref_put(&j->target, event);
        if (slot) {
            sl_value_move(slot, &parsed);
        }
        sl_value_clear(&parsed);  /* a no-op once moved */
        return slot ? SL_FILTER_KEEP : SL_FILTER_FAIL;
    }
    if (parsed.type != SL_V_OBJECT) {
        /* Only an object has keys to merge; a bare value needs a target. */
        sl_value_clear(&parsed);
        return SL_FILTER_FAIL;
    }
    bool bad_ts = false;
    merge_root(event, &parsed, &bad_ts);
    sl_value_clear(&parsed);
    if (bad_ts) {
        sl_event_add_tag(event, "_timestampparsefailure");
    }
    return SL_FILTER_KEEP;
}

static int json_init(void *inst, struct sl_plugin_ctx *ctx)
{
    const struct filter_json *j = inst;
    /* As Logstash: the only difference ECS makes here is this warning. */
    if (!j->target.nsegs && !ctx->check_only && sl_plugin_ecs(ctx, j->ecs) != SL_ECS_DISABLED) {
        sl_warn("%s: without 'target', decoded keys land at the event's root, where they may "
                "clash with ECS fields; set 'target' (or ecs_compatibility: disabled)", ctx->id);
    }
    if (!j->target.nsegs) {
        sl_filter_touches_all(ctx);  /* merging at the root may set any key */
        return 0;
    }
    sl_filter_touches_field(ctx, &j->source);
    sl_filter_touches_field(ctx, &j->target);
    return 0;
}

const struct sl_plugin sl_plugin_filter_json = {
    .name = "json",
    .kind = SL_PLUGIN_FILTER,
    .summary = "decodes JSON text held in a field into a target field or the event's root",
    .options = json_opts,
    .size = sizeof(struct filter_json),
    .failure_tag = "_jsonparsefailure",
    .init = json_init,
    .filter = json_filter,
};
