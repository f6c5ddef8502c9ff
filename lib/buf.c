/*
 * buf.c - growable byte buffers with a hard maximum.
 */
#include "sluice/buf.h"

#include <stdio.h>
#include <stdlib.h>

void sl_buf_init(struct sl_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max ? max : SIZE_MAX - 1;
}

void sl_buf_free(struct sl_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

int sl_buf_grow(struct sl_buf *b, size_t extra)
{
    if (extra > b->max - b->len) {
        return SL_ELIMIT;
    }
    size_t need = b->len + extra + 1;  /* +1 keeps room for sl_buf_cstr's NUL */
    if (need <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    }
    if (cap > b->max + 1) {
        cap = b->max + 1;
    }
    b->data = sl_realloc(b->data, cap);
    b->cap = cap;
    return 0;
}

int sl_buf_puts(struct sl_buf *b, const char *s)
{
    return sl_buf_append(b, s, strlen(s));
}

int sl_buf_printf(struct sl_buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return SL_EINVAL;
    }
    if ((size_t)n < sizeof(small)) {
        return sl_buf_append(b, small, (size_t)n);
    }
    int rc = sl_buf_reserve(b, (size_t)n);
    if (rc != 0) {
        return rc;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int sl_buf_put_u32be(struct sl_buf *b, uint32_t v)
{
    unsigned char c[4];
    sl_put_u32be(c, v);
    return sl_buf_append(b, c, 4);
}

void sl_buf_consume(struct sl_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

const char *sl_buf_cstr(struct sl_buf *b)
{
    if (sl_buf_reserve(b, 0) != 0 || !b->data) {
        /* len == max and no spare byte: cannot happen, reserve keeps one. */
        b->data = sl_realloc(b->data, b->len + 1);
        b->cap = b->len + 1;
    }
    b->data[b->len] = '\0';
    return b->data;
}
