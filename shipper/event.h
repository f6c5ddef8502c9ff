/*
 * event.h - builds the Beats-compatible event (docs/configuration.md, The event) for one line, as JSON
 * text, straight into a buffer. Everything that does not change from line to
 * line (host, agent, fields, tags) is encoded once per input.
 */
#ifndef SHIPPER_EVENT_H
#define SHIPPER_EVENT_H

#include "conf.h"
#include "sluice/buf.h"

#define EVENT_FLAG_TRUNCATED 0x1u
#define EVENT_FLAG_MULTILINE 0x2u

struct event_tmpl {
    char *tail;       /* ,"input":...,"host":...,"agent":...,"ecs":...[,"fields"...][,"tags"...]} */
    size_t tail_len;
};

void event_tmpl_init(struct event_tmpl *t, const struct input_conf *in, const char *hostname);
void event_tmpl_free(struct event_tmpl *t);

/*
 * Appends the event. ts is the 24-character @timestamp; path_json the file's
 * path already JSON-quoted. Returns 0 or SL_ELIMIT from the buffer.
 */
int event_encode(struct sl_buf *out, const struct event_tmpl *t, const char *ts,
                 const char *path_json, size_t path_json_len, const char *line, size_t len,
                 uint64_t offset, unsigned flags);

#endif
