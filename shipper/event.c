/*
 * event.c - the per-line event writer. The hot path reserves room once and
 * writes the event with plain copies around the escaped message; no
 * allocation, no tree.
 */
#include "event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/json.h"

void event_tmpl_init(struct event_tmpl *t, const struct input_conf *in,
                     const struct event_agent *agent)
{
    const char *hostname = agent->name;
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_buf_puts(&b, in->type == INPUT_CONTAINER ? ",\"input\":{\"type\":\"container\"}"
                                                : ",\"input\":{\"type\":\"filestream\"}");
    sl_buf_puts(&b, ",\"host\":{\"name\":");
    sl_json_put_str(&b, hostname, strlen(hostname));
    sl_buf_puts(&b, "},\"agent\":{\"type\":\"sluice-shipper\",\"version\":\"" SL_VERSION
                    "\",\"name\":");
    sl_json_put_str(&b, hostname, strlen(hostname));
    if (agent->id) {
        sl_buf_puts(&b, ",\"id\":");
        sl_json_put_str(&b, agent->id, strlen(agent->id));
    }
    if (agent->ephemeral_id) {
        sl_buf_puts(&b, ",\"ephemeral_id\":");
        sl_json_put_str(&b, agent->ephemeral_id, strlen(agent->ephemeral_id));
    }
    sl_buf_puts(&b, "},\"ecs\":{\"version\":\"8.0.0\"}");
    if (in->fields_json) {
        sl_buf_puts(&b, in->fields_under_root ? "," : ",\"fields\":{");
        sl_buf_puts(&b, in->fields_json);
        if (!in->fields_under_root) {
            sl_buf_putc(&b, '}');
        }
    }
    if (in->tags_json) {
        sl_buf_puts(&b, ",\"tags\":");
        sl_buf_puts(&b, in->tags_json);
    }
    sl_buf_putc(&b, '}');
    t->tail = sl_strndup(b.data, b.len);
    t->tail_len = b.len;
    sl_buf_free(&b);
}

void event_tmpl_free(struct event_tmpl *t)
{
    free(t->tail);
    t->tail = NULL;
}

void event_file_json(struct sl_buf *b, const char *path, uint64_t dev, uint64_t ino)
{
    sl_buf_puts(b, "{\"path\":");
    sl_json_put_str(b, path, strlen(path));
    sl_buf_printf(b, ",\"inode\":\"%llu\",\"device_id\":\"%llu\"}", (unsigned long long)ino,
                  (unsigned long long)dev);
}

static const char HEAD[] = "{\"@timestamp\":\"";
static const char META[] =
    "\",\"@metadata\":{\"beat\":\"sluice\",\"type\":\"_doc\",\"version\":\"" SL_VERSION
    "\"},\"message\":";
static const char LOGFILE[] = ",\"log\":{\"file\":";
static const char OFFSET[] = ",\"offset\":";
static const char FLAGS_BOTH[] = ",\"flags\":[\"multiline\",\"truncated\"]";
static const char FLAGS_ML[] = ",\"flags\":[\"multiline\"]";
static const char FLAGS_TR[] = ",\"flags\":[\"truncated\"]";
#define TS_LEN 24
#define DIGITS_MAX 20  /* a uint64_t in decimal */

/*
 * Messages up to this long are escaped here, into room reserved for the worst
 * case (6 bytes per input byte); longer ones, rare, go to sl_json_put_str,
 * which measures first instead of reserving megabytes.
 */
#define INLINE_MAX 65536u

static const char hexdigits[] = "0123456789abcdef";

static inline char *put(char *o, const void *p, size_t n)
{
    memcpy(o, p, n);
    return o + n;
}

/*
 * The escape of one ASCII byte that JSON cannot carry raw (< 0x20, '"', '\\'),
 * exactly as sl_json_put_str writes it: the short forms where JSON has them,
 * else \u00XX in lower-case hex.
 */
static char *escape_byte(char *o, unsigned char c)
{
    *o++ = '\\';
    switch (c) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '\b': *o++ = 'b'; break;
    case '\f': *o++ = 'f'; break;
    case '\n': *o++ = 'n'; break;
    case '\r': *o++ = 'r'; break;
    case '\t': *o++ = 't'; break;
    default:
        o = put(o, "u00", 3);
        *o++ = hexdigits[c >> 4];
        *o++ = hexdigits[c & 15];
        break;
    }
    return o;
}

/*
 * Writes s[0..n) as a quoted JSON string at o (room: 6 n + 2)
 * and returns the end, or NULL at the first byte >= 0x80: UTF-8 validation and
 * its U+FFFD replacements stay in one place, sl_json_put_str.
 */
static char *escape_ascii(char *o, const unsigned char *s, size_t n)
{
    const unsigned char *end = s + n;
    *o++ = '"';
    for (;;) {
        s = sl_json_copy_plain(&o, s, end);
        if (s == end) {
            break;
        }
        if (*s >= 0x80) {
            return NULL;
        }
        o = escape_byte(o, *s++);
    }
    *o++ = '"';
    return o;
}

/* Writes the message at out's end; *o tracks the end as a pointer. */
static int put_message(struct sl_buf *out, char **o, size_t room_after, const char *line,
                       size_t len)
{
    if (len <= INLINE_MAX) {
        char *end = escape_ascii(*o, (const unsigned char *)line, len);
        if (end) {
            *o = end;
            return 0;
        }
    }
    out->len = (size_t)(*o - out->data);
    int rc = sl_json_put_str(out, line, len);
    if (rc == 0) {
        rc = sl_buf_reserve(out, room_after);
    }
    *o = out->data + out->len;
    return rc;
}

static char *put_offset(char *o, uint64_t offset)
{
    /* Digits by hand: snprintf showed up in profiles at a million lines a second. */
    char num[DIGITS_MAX];
    char *p = num + sizeof(num);
    do {
        *--p = (char)('0' + offset % 10);
        offset /= 10;
    } while (offset);
    return put(o, p, (size_t)(num + sizeof(num) - p));
}

static char *put_flags(char *o, unsigned flags)
{
    bool ml = flags & EVENT_FLAG_MULTILINE, tr = flags & EVENT_FLAG_TRUNCATED;
    if (ml && tr) {
        return put(o, FLAGS_BOTH, sizeof(FLAGS_BOTH) - 1);
    }
    if (ml) {
        return put(o, FLAGS_ML, sizeof(FLAGS_ML) - 1);
    }
    return tr ? put(o, FLAGS_TR, sizeof(FLAGS_TR) - 1) : o;
}

int event_encode(struct sl_buf *out, const struct event_tmpl *t, const char *ts,
                 const char *file_json, size_t file_json_len, const char *line, size_t len,
                 uint64_t offset, unsigned flags)
{
    return event_encode_ext(out, t, ts, file_json, file_json_len, line, len, offset, flags,
                            NULL, 0);
}

int event_encode_ext(struct sl_buf *out, const struct event_tmpl *t, const char *ts,
                     const char *file_json, size_t file_json_len, const char *line, size_t len,
                     uint64_t offset, unsigned flags, const char *extra, size_t extra_len)
{
    /* Everything after the message, at its longest. */
    size_t after = sizeof(LOGFILE) - 1 + file_json_len + sizeof(OFFSET) - 1 + DIGITS_MAX +
                   sizeof(FLAGS_BOTH) - 1 + 1 + extra_len + t->tail_len;
    size_t before = sizeof(HEAD) - 1 + TS_LEN + sizeof(META) - 1;
    size_t msg = len <= INLINE_MAX ? 6 * len + 2 : 0;
    int rc = sl_buf_reserve(out, before + msg + after);
    if (rc != 0) {
        return rc;
    }
    char *o = out->data + out->len;
    o = put(o, HEAD, sizeof(HEAD) - 1);
    o = put(o, ts, TS_LEN);
    o = put(o, META, sizeof(META) - 1);
    rc = put_message(out, &o, after, line, len);
    if (rc != 0) {
        return rc;
    }
    o = put(o, LOGFILE, sizeof(LOGFILE) - 1);
    o = put(o, file_json, file_json_len);
    o = put(o, OFFSET, sizeof(OFFSET) - 1);
    o = put_offset(o, offset);
    o = put_flags(o, flags);
    *o++ = '}';
    if (extra_len) {
        o = put(o, extra, extra_len);
    }
    o = put(o, t->tail, t->tail_len);
    out->len = (size_t)(o - out->data);
    return 0;
}

/* A placeholder as sl_json_write spells it: "\u0001sluice:X\u0001". */
static const char PH_HEAD[] = "\"\\u0001sluice:";
static const char PH_TAIL[] = "\\u0001\"";

void event_shape_init(struct event_shape *s, const char *json, size_t len)
{
    memset(s, 0, sizeof(*s));
    s->text = sl_malloc(len + 1);
    size_t hl = sizeof(PH_HEAD) - 1, tl = sizeof(PH_TAIL) - 1;
    size_t i = 0;
    while (i < len) {
        const char *p = memmem(json + i, len - i, PH_HEAD, hl);
        size_t at = p ? (size_t)(p - json) : len;
        memcpy(s->text + s->len, json + i, at - i);
        s->len += at - i;
        if (!p) {
            break;
        }
        char what = at + hl < len ? json[at + hl] : 0;
        if ((what == 'T' || what == 'M' || what == 'O') && at + hl + 1 + tl <= len &&
            memcmp(json + at + hl + 1, PH_TAIL, tl) == 0) {
            s->holes = sl_realloc(s->holes, (s->nholes + 1) * sizeof(*s->holes));
            s->holes[s->nholes++] = (struct event_hole){.at = s->len, .what = what};
            s->nmsg += what == 'M';
            i = at + hl + 1 + tl;
        } else {
            s->text[s->len++] = json[at];  /* not ours after all */
            i = at + 1;
        }
    }
    s->text[s->len] = '\0';
}

void event_shape_free(struct event_shape *s)
{
    free(s->text);
    free(s->holes);
    memset(s, 0, sizeof(*s));
}

int event_encode_shape(struct sl_buf *out, const struct event_shape *s, const char *ts,
                       const char *line, size_t len, uint64_t offset)
{
    size_t msg = len <= INLINE_MAX ? 6 * len + 2 : 0;
    size_t room = s->len + s->nholes * (TS_LEN + 2 + DIGITS_MAX) + msg * s->nmsg;
    int rc = sl_buf_reserve(out, room);
    if (rc != 0) {
        return rc;
    }
    char *o = out->data + out->len;
    size_t from = 0;
    for (size_t i = 0; i < s->nholes; i++) {
        const struct event_hole *h = &s->holes[i];
        o = put(o, s->text + from, h->at - from);
        from = h->at;
        if (h->what == 'T') {
            *o++ = '"';
            o = put(o, ts, TS_LEN);
            *o++ = '"';
        } else if (h->what == 'O') {
            o = put_offset(o, offset);
        } else {
            /* What follows the message, at its longest, stays reserved. */
            size_t after = s->len - from + (s->nholes - i) * (TS_LEN + 2 + DIGITS_MAX);
            rc = put_message(out, &o, after, line, len);
            if (rc != 0) {
                return rc;
            }
        }
    }
    o = put(o, s->text + from, s->len - from);
    out->len = (size_t)(o - out->data);
    return 0;
}
