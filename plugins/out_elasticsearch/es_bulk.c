/*
 * es_bulk.c - the Elasticsearch output's encoding and reply parsing (see
 * es_bulk.h). Nothing here does I/O, takes locks or keeps state, so the
 * sender thread can call all of it freely and the tests can pin the bytes.
 */
#include "es_bulk.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "sluice/json.h"

int es_bulk_index(const struct sl_template *index, const struct sl_value *event,
                  struct sl_buf *out)
{
    size_t start = out->len;
    if (sl_template_render(index, event, out) != 0) {
        return SL_ELIMIT;
    }
    for (size_t i = start; i < out->len; i++) {
        char c = out->data[i];
        if (c >= 'A' && c <= 'Z') {
            out->data[i] = (char)(c - 'A' + 'a');
        }
    }
    return 0;
}

int es_bulk_id(const struct sl_value *event, struct sl_buf *out)
{
    const struct sl_value *meta = sl_obj_getc(event, "@metadata");
    const struct sl_value *id = meta && meta->type == SL_V_OBJECT ? sl_obj_getc(meta, "_id")
                                                                  : NULL;
    if (!id || id->type != SL_V_STRING || id->u.s.len == 0) {
        return SL_ENOENT;
    }
    return sl_buf_append(out, id->u.s.ptr, id->u.s.len) != 0 ? SL_ELIMIT : 0;
}

int es_bulk_encode(struct sl_buf *out, enum es_op op, struct sl_bytes index,
                   const struct sl_bytes *id, struct sl_bytes json, struct es_item *it)
{
    size_t start = out->len;
    int rc = 0;

    rc |= sl_buf_puts(out, op == ES_OP_CREATE ? "{\"create\":{\"_index\":"
                                              : "{\"index\":{\"_index\":");
    rc |= sl_json_put_str(out, index.p ? index.p : "", index.len);
    if (id && id->len > 0) {
        rc |= sl_buf_puts(out, ",\"_id\":");
        rc |= sl_json_put_str(out, id->p, id->len);
    }
    rc |= sl_buf_puts(out, "}}\n");
    size_t doc = out->len - start;
    rc |= sl_buf_append(out, json.p, json.len);
    rc |= sl_buf_putc(out, '\n');
    if (rc != 0) {
        out->len = start;
        return SL_ELIMIT;
    }
    it->off = start;
    it->len = out->len - start;
    it->doc = doc;
    return 0;
}

enum es_verdict es_bulk_verdict(int status, bool is_create)
{
    if (status >= 200 && status < 300) {
        return ES_V_OK;
    }
    if (status == 409 && is_create) {
        return ES_V_OK;  /* create of an _id that exists: it was indexed before */
    }
    if (status == 429 || status >= 500 || status <= 0) {
        return ES_V_RETRY;
    }
    return ES_V_REJECT;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static const char *skip_space(const char *p, const char *end)
{
    while (p < end && is_space(*p)) {
        p++;
    }
    return p;
}

/* Skips the literal lit at p: the byte after it, or NULL. */
static const char *skip_lit(const char *p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)(end - p) >= n && memcmp(p, lit, n) == 0 ? p + n : NULL;
}

/* Matches {"took":<digits>,"errors":false, at the start of body (whitespace allowed
 * only before it: the servers we know write compact replies); returns the byte
 * after it, or NULL. */
static const char *all_ok_prefix(const char *p, const char *end)
{
    p = skip_lit(skip_space(p, end), end, "{\"took\":");
    if (!p) {
        return NULL;
    }
    const char *digits = p;
    while (p < end && *p >= '0' && *p <= '9') {
        p++;
    }
    return p == digits ? NULL : skip_lit(p, end, ",\"errors\":false,");
}

/* Skips the object at p ('{'): the byte after its closing brace, or NULL when
 * it does not close before end, closes with the wrong bracket, or nests deeper
 * than 64. Strings are skipped with their escapes, so a bracket or quote in
 * one does not count; nothing else is checked. */
static const char *skip_object(const char *p, const char *end)
{
    uint64_t arrays = 0;  /* one bit per open level: 1 = '[' */
    unsigned depth = 0;
    for (; p < end; p++) {
        char c = *p;
        if (c == '"') {
            for (p++; p < end && *p != '"'; p++) {
                if (*p == '\\' && ++p == end) {
                    return NULL;
                }
            }
            if (p >= end) {
                return NULL;
            }
        } else if (c == '{' || c == '[') {
            if (depth == 64) {
                return NULL;
            }
            arrays = arrays << 1 | (c == '[');
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0 || (arrays & 1) != (c == ']')) {
                return NULL;
            }
            arrays >>= 1;
            if (--depth == 0) {
                return p + 1;
            }
        }
    }
    return NULL;
}

/*
 * After the all-ok prefix: whether the rest is "items":[ then exactly n
 * objects, then ]} and nothing but whitespace. A reply cut short (a proxy
 * that lost its upstream, a connection closed mid-body without a length)
 * fails this, as does any other shape: the full parser then judges it. This
 * looks at every byte but builds nothing (the big replies are the successful
 * ones).
 */
static bool all_ok_items(const char *p, const char *end, size_t n)
{
    size_t count = 0;
    p = skip_lit(p, end, "\"items\":[");
    if (!p) {
        return false;
    }
    p = skip_space(p, end);
    if (p < end && *p == ']') {
        p++;
    } else {
        for (;;) {
            if (p >= end || *p != '{' || !(p = skip_object(p, end))) {
                return false;
            }
            count++;
            p = skip_space(p, end);
            if (p < end && *p == ',') {
                p = skip_space(p + 1, end);
                continue;
            }
            if (p < end && *p == ']') {
                p++;
                break;
            }
            return false;
        }
    }
    p = skip_space(p, end);
    if (p >= end || *p != '}') {
        return false;
    }
    return skip_space(p + 1, end) == end && count == n;
}

int es_bulk_parse_reply(const char *body, size_t len, size_t n, struct es_result *res,
                        struct sl_buf *errs, char *err, size_t errlen)
{
    struct sl_value v = {0};
    char jerr[128];
    int rc = SL_EINVAL;

    const char *rest = all_ok_prefix(body, body + len);
    if (rest && all_ok_items(rest, body + len, n)) {
        for (size_t i = 0; i < n; i++) {
            res[i] = (struct es_result){.v = ES_V_OK, .status = 200};
        }
        return 0;
    }
    if (sl_json_parse(body, len, &v, NULL, jerr, sizeof(jerr)) != 0) {
        snprintf(err, errlen, "reply is not JSON (%s)", jerr);
        goto out;
    }
    const struct sl_value *items = sl_obj_getc(&v, "items");
    if (!items || items->type != SL_V_ARRAY) {
        snprintf(err, errlen, "reply has no \"items\" array");
        goto out;
    }
    if (items->u.a.len != n) {
        snprintf(err, errlen, "reply has %zu items for %zu sent", items->u.a.len, n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct sl_value *item = &items->u.a.items[i];
        res[i] = (struct es_result){.v = ES_V_RETRY};
        if (item->type != SL_V_OBJECT || item->u.o.len != 1 ||
            item->u.o.items[0].v.type != SL_V_OBJECT) {
            continue;  /* unusable: sending it again is the safe side */
        }
        const struct sl_member *m = &item->u.o.items[0];
        const struct sl_value *st = sl_obj_getc(&m->v, "status");
        int status = st && st->type == SL_V_INT && st->u.i > 0 && st->u.i < 1000
                         ? (int)st->u.i : 0;
        res[i].status = status;
        res[i].v = es_bulk_verdict(status, strcmp(m->key, "create") == 0);
        if (res[i].v != ES_V_REJECT) {
            continue;
        }
        const struct sl_value *e = sl_obj_getc(&m->v, "error");
        res[i].err_off = errs->len;
        if (e && e->type == SL_V_OBJECT) {
            sl_json_write(errs, e, NULL);
        } else if (e && e->type == SL_V_STRING) {
            sl_buf_puts(errs, "{\"reason\":");
            sl_json_put_str(errs, e->u.s.ptr, e->u.s.len);
            sl_buf_putc(errs, '}');
        } else {
            sl_buf_puts(errs, "null");
        }
        res[i].err_len = errs->len - res[i].err_off;
    }
    rc = 0;
out:
    sl_value_clear(&v);
    return rc;
}

int es_gzip(const char *in, size_t len, int level, struct sl_buf *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    /* 15 + 16: a gzip wrapper (Content-Encoding: gzip), not zlib's. */
    if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        return SL_EIO;
    }
    int rc = 0;
    size_t start = out->len;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;  /* bodies are capped far below 4 GiB */
    for (;;) {
        size_t room = deflateBound(&zs, (uLong)zs.avail_in) + 64;
        if (sl_buf_reserve(out, room) != 0) {
            rc = SL_ELIMIT;
            break;
        }
        zs.next_out = (Bytef *)out->data + out->len;
        zs.avail_out = (uInt)room;
        int z = deflate(&zs, Z_FINISH);
        out->len += room - zs.avail_out;
        if (z == Z_STREAM_END) {
            break;
        }
        if (z != Z_OK && z != Z_BUF_ERROR) {
            rc = SL_EIO;
            break;
        }
    }
    deflateEnd(&zs);
    if (rc != 0) {
        out->len = start;
    }
    return rc;
}

/* The action line is ours ({"index":{"_index":...}}): the name is read back
 * rather than kept per event for this rare path. The string, or NULL; a
 * holds the parse (cleared by the caller). */
static const struct sl_value *action_index(const char *action, const struct es_item *item,
                                           struct sl_value *a, char *jerr, size_t jlen)
{
    const struct sl_value *idx = NULL;
    if (sl_json_parse(action, item->doc - 1, a, NULL, jerr, jlen) == 0 &&
        a->type == SL_V_OBJECT && a->u.o.len == 1) {
        idx = sl_obj_getc(&a->u.o.items[0].v, "_index");
    }
    return idx && idx->type == SL_V_STRING ? idx : NULL;
}

void es_dead_letter_members(struct sl_buf *out, const char *lines, const struct es_item *item,
                            const char *error, size_t error_len, int status)
{
    const char *action = lines + item->off;
    struct sl_value a = {0};
    char jerr[64];

    sl_buf_puts(out, "\"error\":");
    if (error && error_len) {
        sl_buf_append(out, error, error_len);
    } else {
        sl_buf_puts(out, "null");
    }
    sl_buf_printf(out, ",\"status\":%d,\"index\":", status);
    const struct sl_value *idx = action_index(action, item, &a, jerr, sizeof(jerr));
    if (idx) {
        sl_json_put_str(out, idx->u.s.ptr, idx->u.s.len);
    } else {
        sl_buf_puts(out, "null");
    }
    sl_value_clear(&a);
}

void es_item_index(const char *lines, const struct es_item *item, struct sl_buf *out)
{
    struct sl_value a = {0};
    char jerr[64];
    const struct sl_value *idx = action_index(lines + item->off, item, &a, jerr, sizeof(jerr));
    if (idx) {
        sl_buf_append(out, idx->u.s.ptr, idx->u.s.len);
    } else {
        sl_buf_puts(out, "?");
    }
    sl_value_clear(&a);
}

void es_base64(const char *in, size_t len, struct sl_buf *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = (const unsigned char *)in;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], tab[v & 63]};
        sl_buf_append(out, q, 4);
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], '=', '='};
        sl_buf_append(out, q, 4);
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], '='};
        sl_buf_append(out, q, 4);
    }
}

/* "<type>: <reason>" of one error object; false when it has neither. */
static bool put_cause(struct sl_buf *out, const struct sl_value *e)
{
    const struct sl_value *type = sl_obj_get(e, "type", 4);
    const struct sl_value *reason = sl_obj_get(e, "reason", 6);
    bool has_type = type && type->type == SL_V_STRING;
    bool has_reason = reason && reason->type == SL_V_STRING;
    if (!has_type && !has_reason) {
        return false;
    }
    if (has_type) {
        sl_buf_append(out, type->u.s.ptr, SL_MIN(type->u.s.len, (size_t)100));
    }
    if (has_type && has_reason) {
        sl_buf_puts(out, ": ");
    }
    if (has_reason) {
        sl_buf_append(out, reason->u.s.ptr, SL_MIN(reason->u.s.len, (size_t)300));
    }
    return true;
}

void es_error_summary(struct sl_buf *out, const char *error, size_t error_len)
{
    struct sl_value v = {0};
    char jerr[64];
    if (!error || error_len == 0) {
        sl_buf_puts(out, "no reason given");
        return;
    }
    if (sl_json_parse(error, error_len, &v, NULL, jerr, sizeof(jerr)) != 0 ||
        v.type != SL_V_OBJECT || !put_cause(out, &v)) {
        sl_buf_append(out, error, SL_MIN(error_len, (size_t)300));
        sl_value_clear(&v);
        return;
    }
    const struct sl_value *e = &v;
    for (int depth = 0; depth < 3; depth++) {
        e = sl_obj_get(e, "caused_by", 9);
        if (!e || e->type != SL_V_OBJECT) {
            break;
        }
        sl_buf_puts(out, " (caused by ");
        if (!put_cause(out, e)) {
            sl_buf_puts(out, "?");
        }
        sl_buf_putc(out, ')');
    }
    sl_value_clear(&v);
}
