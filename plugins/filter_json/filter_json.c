/*
 * filter_json.c - the `json` filter: decodes the JSON text held in one field
 * and puts the result at a target field, or merges an object into the event's
 * root (Logstash's json filter). It does not encode, and never removes the
 * source field: `mutate: {remove_fields: [...]}` does that.
 */
#include <stdlib.h>
#include <string.h>

#include "sluice/json.h"
#include "sluice/plugin.h"
#include "sluice/template.h"

struct filter_json {
    char *source;         /* field reference holding the text */
    char *target;         /* field reference, or NULL to merge at the root */
    char **fail_tags;     /* NULL-terminated */
    bool skip_invalid;    /* invalid text: leave the event untouched, untagged */
};

static bool ref_ok(const char *ref)
{
    struct sl_fieldref r;
    int rc = sl_fieldref_init(&r, ref);
    sl_fieldref_free(&r);
    return rc == 0;
}

static int fail(const struct filter_json *j, struct sl_value *event)
{
    for (char **t = j->fail_tags; *t; t++) {
        sl_event_add_tag(event, *t);
    }
    return SL_EINVAL;
}

/*
 * Sets each key of obj at the root. Keys are literal names, not references: a
 * decoded "a.b" stays one key, so a sender cannot reach into nested fields it
 * did not send. A non-string "@timestamp" would break every output that
 * formats dates; as Logstash does, it is kept aside in "_@timestamp".
 */
static void merge_root(struct sl_value *event, struct sl_value *obj, bool *bad_ts)
{
    for (size_t i = 0; i < obj->u.o.len; i++) {
        struct sl_member *m = &obj->u.o.items[i];
        const char *key = m->key;
        size_t klen = m->klen;
        if (klen == 10 && memcmp(key, "@timestamp", 10) == 0 && m->v.type != SL_V_STRING) {
            key = "_@timestamp";
            klen = 11;
            *bad_ts = true;
        }
        struct sl_value *slot = sl_obj_put(event, key, klen);
        sl_value_move(slot, &m->v);
    }
}

static int json_filter(void *inst, struct sl_value *event)
{
    const struct filter_json *j = inst;
    const struct sl_value *src = sl_field_get(event, j->source);
    if (!src) {
        return SL_FILTER_KEEP;  /* nothing to decode, as in Logstash */
    }
    if (src->type != SL_V_STRING) {
        return j->skip_invalid ? SL_FILTER_KEEP : fail(j, event);
    }
    struct sl_value parsed = {0};
    char err[128];
    /* src points into the event: parse before anything in the event changes. */
    if (sl_json_parse(src->u.s.ptr, src->u.s.len, &parsed, NULL, err, sizeof(err)) != 0) {
        return j->skip_invalid ? SL_FILTER_KEEP : fail(j, event);
    }
    if (j->target) {
        struct sl_value *slot = sl_field_put(event, j->target);
        if (!slot) {
            sl_value_clear(&parsed);
            return fail(j, event);  /* the event root is not an object: cannot happen */
        }
        sl_value_move(slot, &parsed);
        return SL_FILTER_KEEP;
    }
    if (parsed.type != SL_V_OBJECT) {
        /* Only an object has keys to merge; a bare value needs a target. */
        sl_value_clear(&parsed);
        return fail(j, event);
    }
    bool bad_ts = false;
    merge_root(event, &parsed, &bad_ts);
    sl_value_clear(&parsed);
    if (bad_ts) {
        sl_event_add_tag(event, "_timestampparsefailure");
    }
    return SL_FILTER_KEEP;
}

static void json_free(void *inst)
{
    struct filter_json *j = inst;
    if (!j) {
        return;
    }
    free(j->source);
    free(j->target);
    sl_cfg_strv_free(j->fail_tags);
    free(j);
}

static void *json_init(struct sl_cfg *cfg, struct sl_cfg_node *opts, struct sl_plugin_env *env)
{
    struct filter_json *j = sl_calloc(1, sizeof(*j));
    int errors = cfg->nerrors;
    const char *id = env->id;
    size_t n;

    /* `field` is sluice's name, `source` Logstash's: either, not both. */
    struct sl_cfg_node *f = sl_cfg_get(opts, "field");
    struct sl_cfg_node *s = sl_cfg_get(opts, "source");
    if (f && s) {
        sl_cfg_error(cfg, s, "%s: options 'field' and 'source' name the same thing; give one",
                     id);
    }
    const char *key = s && !f ? "source" : "field";
    sl_cfg_str(cfg, opts, id, key, "message", &j->source);
    if (j->source && !ref_ok(j->source)) {
        sl_cfg_error(cfg, sl_cfg_get(opts, key), "%s: option '%s' is not a valid field reference",
                     id, key);
    }

    sl_cfg_str(cfg, opts, id, "target", NULL, &j->target);
    if (j->target && !*j->target) {
        free(j->target);  /* "" merges at the root, like an absent target */
        j->target = NULL;
    }
    if (j->target && !ref_ok(j->target)) {
        sl_cfg_error(cfg, sl_cfg_get(opts, "target"),
                     "%s: option 'target' is not a valid field reference", id);
    }

    /* An explicit [] turns tagging off; absent (or null) means the default tag. */
    struct sl_cfg_node *t = sl_cfg_get(opts, "tag_on_failure");
    sl_cfg_strlist(cfg, opts, id, "tag_on_failure", &j->fail_tags, &n);
    if (n == 0 && !(t && t->type == SL_CFG_SEQ)) {
        sl_cfg_strv_free(j->fail_tags);
        j->fail_tags = sl_calloc(2, sizeof(*j->fail_tags));
        j->fail_tags[0] = sl_strdup("_jsonparsefailure");
    }
    sl_cfg_bool(cfg, opts, id, "skip_on_invalid_json", false, &j->skip_invalid);
    sl_cfg_get(opts, "when");  /* evaluated by the core */
    sl_cfg_check_unknown(cfg, opts, id);
    if (cfg->nerrors != errors) {
        json_free(j);
        return NULL;
    }
    return j;
}

const struct sl_plugin sl_plugin_filter_json = {
    .name = "json",
    .kind = SL_PLUGIN_FILTER,
    .init = json_init,
    .free = json_free,
    .filter = json_filter,
};
