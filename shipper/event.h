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

/* Who sends: host.name and agent.name, agent.id and agent.ephemeral_id (agent.h;
 * either id may be NULL: left out). */
struct event_agent {
    const char *name;
    const char *id;
    const char *ephemeral_id;
};

void event_tmpl_init(struct event_tmpl *t, const struct input_conf *in,
                     const struct event_agent *agent);
void event_tmpl_free(struct event_tmpl *t);

/*
 * Appends log.file's object for a file, as Filebeat writes it on Linux:
 * {"path":...,"inode":"<st_ino>","device_id":"<st_dev>"}, both numbers in
 * decimal strings (st_dev as the kernel encodes it, as os.stat() shows it).
 * Built once per file: events copy it.
 */
void event_file_json(struct sl_buf *b, const char *path, uint64_t dev, uint64_t ino);

/*
 * Appends the event. ts is the 24-character @timestamp; file_json log.file's
 * object (event_file_json). Returns 0 or SL_ELIMIT from the buffer.
 */
int event_encode(struct sl_buf *out, const struct event_tmpl *t, const char *ts,
                 const char *file_json, size_t file_json_len, const char *line, size_t len,
                 uint64_t offset, unsigned flags);
/* event_encode with extra[0..extra_len) - root members, each with its leading
 * comma - written after "log" (a container line's stream and Kubernetes names). */
int event_encode_ext(struct sl_buf *out, const struct event_tmpl *t, const char *ts,
                     const char *file_json, size_t file_json_len, const char *line, size_t len,
                     uint64_t offset, unsigned flags, const char *extra, size_t extra_len);

/*
 * An event's JSON with holes: the output of processors run once on an event
 * whose @timestamp, message and log.offset were placeholders (EVENT_PH_*, as
 * JSON strings), cut at each placeholder. Writing an event through a shape is
 * copies and the message's escape, as without processors.
 */
#define EVENT_PH_TS "\x01sluice:T\x01"
#define EVENT_PH_MSG "\x01sluice:M\x01"
#define EVENT_PH_OFF "\x01sluice:O\x01"

struct event_hole {
    size_t at;        /* where it goes in text */
    char what;        /* 'T', 'M' or 'O' */
};

struct event_shape {
    char *text;       /* the JSON without the placeholders */
    size_t len;
    struct event_hole *holes;
    size_t nholes;
    size_t nmsg;      /* holes that take the message */
};

/* Cuts json[0..len) (written by sl_json_write) at its placeholders into s. */
void event_shape_init(struct event_shape *s, const char *json, size_t len);
void event_shape_free(struct event_shape *s);
/* Appends the event: s with ts (24 characters), the message and the offset in
 * its holes. 0 or SL_ELIMIT. */
int event_encode_shape(struct sl_buf *out, const struct event_shape *s, const char *ts,
                       const char *line, size_t len, uint64_t offset);

#endif
