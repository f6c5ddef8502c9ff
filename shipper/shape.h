/*
 * shape.h - processors applied once per file instead of once per event. For
 * chains that proc_chain_static() accepts, an event differs from the next one
 * of the same file only in @timestamp, message and log.offset (and in its
 * flags and container stream, a handful of variants): the processors run once
 * per variant on an event with placeholders there, and the result is kept as
 * an event shape (event.h). Each drop_event condition is evaluated per event
 * on a copy of the event as it was at that processor, with the line's values
 * put in the placeholders' places. docs/shipper.md, Processors.
 */
#ifndef SHIPPER_SHAPE_H
#define SHIPPER_SHAPE_H

#include "event.h"
#include "processor.h"

/* Every variant of one file's events. */
struct shape_cache;

struct shape_cache *shape_cache_new(void);
void shape_cache_free(struct shape_cache *c);
/* The file's path (or anything else the shapes were built from) changed. */
void shape_cache_clear(struct shape_cache *c);

/* An event before processors: what event_encode_ext() takes. */
struct shape_event {
    const struct event_tmpl *tmpl;
    const char *ts;
    const char *file_json;
    size_t file_json_len;
    const char *line;
    size_t len;
    uint64_t offset;
    unsigned flags;
    int variant;              /* 0..SHAPE_VARIANTS-1: what extra is */
    const char *extra;
    size_t extra_len;
};
#define SHAPE_VARIANTS 6

/*
 * Runs chains[0..n) (static ones) on ev by its shape, building the shape on
 * first use. Returns 1 with the event appended to out, 0 when a drop_event
 * dropped it, or SL_ELIMIT from out.
 */
int shape_encode(struct shape_cache *c, struct proc_chain *const *chains, size_t n,
                 const struct shape_event *ev, struct sl_buf *out);

#endif
