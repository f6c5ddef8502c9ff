/*
 * buf.h - a growable byte buffer with a hard maximum. Every buffer that is fed
 * from outside the process is created with a maximum, so hostile input turns
 * into SL_ELIMIT instead of unbounded memory.
 */
#ifndef SLUICE_BUF_H
#define SLUICE_BUF_H

#include <stdarg.h>
#include <string.h>

#include "common.h"

struct sl_buf {
    char *data;  /* owned; not NUL-terminated unless sl_buf_cstr() was called */
    size_t len;
    size_t cap;
    size_t max;  /* len never exceeds this */
};

/* max == 0 means no limit (for buffers only the process itself fills). */
void sl_buf_init(struct sl_buf *b, size_t max);
void sl_buf_free(struct sl_buf *b);
static inline void sl_buf_reset(struct sl_buf *b) { b->len = 0; }

/* The slow path of sl_buf_reserve: grows data. 0 or SL_ELIMIT. */
int sl_buf_grow(struct sl_buf *b, size_t extra);

/* Makes room for extra more bytes. 0 or SL_ELIMIT. Inline: writers call it
 * per token, and the room is almost always there. */
static inline int sl_buf_reserve(struct sl_buf *b, size_t extra)
{
    /* len <= max and len < cap: neither subtraction wraps; +1 keeps room for
     * sl_buf_cstr's NUL. */
    if (b->cap > b->len && extra <= b->max - b->len && extra < b->cap - b->len) {
        return 0;
    }
    return sl_buf_grow(b, extra);
}

static inline int sl_buf_append(struct sl_buf *b, const void *p, size_t n)
{
    if (n == 0) {
        return 0;
    }
    int rc = sl_buf_reserve(b, n);
    if (rc != 0) {
        return rc;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static inline int sl_buf_putc(struct sl_buf *b, char c)
{
    int rc = sl_buf_reserve(b, 1);
    if (rc != 0) {
        return rc;
    }
    b->data[b->len++] = c;
    return 0;
}

int sl_buf_puts(struct sl_buf *b, const char *s);
int sl_buf_printf(struct sl_buf *b, const char *fmt, ...) SL_PRINTF(2, 3);
int sl_buf_put_u32be(struct sl_buf *b, uint32_t v);
/* Drops the first n bytes (n <= len). */
void sl_buf_consume(struct sl_buf *b, size_t n);
/* Makes data NUL-terminated (the NUL is not counted in len) and returns it. */
const char *sl_buf_cstr(struct sl_buf *b);

static inline uint32_t sl_get_u32be(const void *p)
{
    const unsigned char *c = p;
    return ((uint32_t)c[0] << 24) | ((uint32_t)c[1] << 16) | ((uint32_t)c[2] << 8) | c[3];
}

static inline void sl_put_u32be(void *p, uint32_t v)
{
    unsigned char *c = p;
    c[0] = (unsigned char)(v >> 24);
    c[1] = (unsigned char)(v >> 16);
    c[2] = (unsigned char)(v >> 8);
    c[3] = (unsigned char)v;
}

#endif
