/*
 * ndjson.c - the ndjson parser, as Filebeat's filestream has it: the decoded
 * object goes to the root (target "", the default) or under target; the
 * message becomes the value of message_key, or goes when there is none; keys
 * the event has already are kept unless overwrite_keys, and then a decoded
 * @timestamp must be a date-time (it becomes the event's time).
 */
#include "ndjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/json.h"
#include "sluice/time.h"

struct ndjson {
    bool root;
    struct sl_fieldref target;
    char *message_key;
    bool overwrite_keys, add_error_key, ignore_decoding_error;
};

void ndjson_free(struct ndjson *n)
{
    if (!n) {
        return;
    }
    sl_fieldref_free(&n->target);
    free(n->message_key);
    free(n);
}

static int parse_one(struct sl_cfg *cfg, struct sl_cfg_node *m, const char *where,
                     struct ndjson *n)
{
    if (!sl_cfg_is_map(cfg, m, where)) {
        return SL_EINVAL;
    }
    char *target = NULL;
    int rc = 0;
    rc |= sl_cfg_str(cfg, m, where, "target", "", &target);
    rc |= sl_cfg_str(cfg, m, where, "message_key", NULL, &n->message_key);
    rc |= sl_cfg_bool(cfg, m, where, "overwrite_keys", false, &n->overwrite_keys);
    rc |= sl_cfg_bool(cfg, m, where, "add_error_key", false, &n->add_error_key);
    rc |= sl_cfg_bool(cfg, m, where, "ignore_decoding_error", false,
                      &n->ignore_decoding_error);
    sl_cfg_check_unknown(cfg, m, where);
    n->root = !target || target[0] == '\0';
    if (!n->root && sl_fieldref_init(&n->target, target) != 0) {
        sl_cfg_error(cfg, sl_cfg_get(m, "target"), "%s: invalid field name '%s'", where, target);
        rc = SL_EINVAL;
    }
    free(target);
    return rc;
}

int ndjson_parse_conf(struct sl_cfg *cfg, struct sl_cfg_node *parsers, const char *where,
                      struct ndjson **out)
{
    *out = NULL;
    if (sl_cfg_is_null(parsers)) {
        return 0;
    }
    char w[96];
    snprintf(w, sizeof(w), "%s.parsers", where);
    if (parsers->type != SL_CFG_SEQ) {
        sl_cfg_error(cfg, parsers, "%s: must be a list", w);
        return SL_EINVAL;
    }
    int rc = 0;
    for (size_t i = 0; i < parsers->n; i++) {
        struct sl_cfg_node *item = parsers->items[i];
        char wi[128];
        snprintf(wi, sizeof(wi), "%s[%zu]", w, i);
        if (!item || item->type != SL_CFG_MAP || item->n != 1) {
            sl_cfg_error(cfg, item, "%s: a parser is a map with one key, its name", wi);
            rc = SL_EINVAL;
            continue;
        }
        item->used[0] = true;
        if (strcmp(item->keys[0], "ndjson") != 0) {
            sl_cfg_error(cfg, item->key_nodes[0], "%s: unknown parser '%s' (ndjson is the one "
                         "parser here; multiline is the input's 'multiline:', containers "
                         "are 'type: container')", wi, item->keys[0]);
            rc = SL_EINVAL;
            continue;
        }
        if (*out) {
            sl_cfg_error(cfg, item, "%s: only one ndjson parser per input", wi);
            rc = SL_EINVAL;
            continue;
        }
        *out = sl_calloc(1, sizeof(**out));
        char wn[160];
        snprintf(wn, sizeof(wn), "%s.ndjson", wi);
        rc |= parse_one(cfg, sl_cfg_is_null(item->items[0]) ? NULL : item->items[0], wn, *out);
    }
    if (rc != 0) {
        ndjson_free(*out);
        *out = NULL;
        return SL_EINVAL;
    }
    return 0;
}

static void put_error(struct sl_value *ev, const char *msg)
{
    struct sl_value *e = sl_obj_putc(ev, "error");
    if (e->type != SL_V_OBJECT) {
        sl_value_set_object(e);
    }
    sl_value_set_cstr(sl_obj_putc(e, "message"), msg);
    sl_value_set_cstr(sl_obj_putc(e, "type"), "json");
}

/* A decoded @timestamp replaces the event's only when it is a date-time. */
static bool put_timestamp(struct sl_value *ev, const struct sl_value *v)
{
    int64_t ms;
    char ts[32];
    if (v->type != SL_V_STRING || sl_timestamp_parse(v->u.s.ptr, v->u.s.len, &ms) != 0 ||
        sl_timestamp_format(ms, ts, sizeof(ts)) == 0) {
        return false;
    }
    sl_value_set_cstr(sl_obj_putc(ev, "@timestamp"), ts);
    return true;
}

static void merge_root(const struct ndjson *n, struct sl_value *ev, struct sl_value *d)
{
    for (size_t i = 0; i < d->u.o.len; i++) {
        struct sl_member *m = &d->u.o.items[i];
        if (strcmp(m->key, "@timestamp") == 0) {
            if (n->overwrite_keys && !put_timestamp(ev, &m->v)) {
                put_error(ev, "@timestamp not overwritten (parse error)");
            }
            continue;
        }
        if (strcmp(m->key, "@metadata") == 0) {
            continue;  /* the shipper's own */
        }
        struct sl_value *have = sl_obj_get(ev, m->key, m->klen);
        if (!have || n->overwrite_keys) {
            sl_value_move(sl_obj_put(ev, m->key, m->klen), &m->v);
        }
    }
}

bool ndjson_apply(const struct ndjson *n, struct sl_value *ev)
{
    struct sl_value *msg = sl_obj_getc(ev, "message");
    if (!msg || msg->type != SL_V_STRING) {
        return false;
    }
    struct sl_value d = {0};
    char err[96];
    int rc = sl_json_parse(msg->u.s.ptr, msg->u.s.len, &d, NULL, err, sizeof(err));
    if (rc != 0 || d.type != SL_V_OBJECT) {
        if (!n->ignore_decoding_error && n->add_error_key) {
            char m[160];
            snprintf(m, sizeof(m), "Error decoding JSON: %s",
                     rc != 0 ? err : "not a JSON object");
            put_error(ev, m);
        }
        sl_value_clear(&d);
        return false;
    }
    /* The message is the message_key's string, or no message at all. */
    struct sl_value text = {0};
    if (n->message_key) {
        struct sl_value *k = sl_obj_getc(&d, n->message_key);
        if (k && k->type == SL_V_STRING) {
            sl_value_copy(&text, k);
        }
    }
    sl_obj_del(ev, "message", 7);
    if (n->root) {
        merge_root(n, ev, &d);
    } else {
        sl_value_move(sl_fieldref_put(&n->target, ev), &d);
    }
    if (text.type == SL_V_STRING) {
        sl_value_move(sl_obj_putc(ev, "message"), &text);
    }
    sl_value_clear(&text);
    sl_value_clear(&d);
    return true;
}
