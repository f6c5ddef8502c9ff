/*
 * arena.c - the bump allocator behind batch-scoped event trees (arena.h).
 *
 * Chunks form one list, newest regular chunk first: allocation bumps a->ptr
 * inside that chunk. A request bigger than a quarter of the next chunk gets a
 * chunk of its own, linked behind the current one, so that the current
 * chunk's free space is not abandoned for it. Regular chunks double from the
 * initial size up to MAX_CHUNK, which bounds the unused tail of the last one.
 */
#include "sluice/arena.h"

#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SL_ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) __asan_poison_memory_region((p), (n))
#define UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
/* Poisoned gap after every allocation, and the shadow granule every
 * allocation starts on, so that an overrun of one is caught before the next. */
#define REDZONE 16u
#define MIN_ALIGN 8u
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#define REDZONE 0u
#define MIN_ALIGN 1u
#endif

#define DEFAULT_CHUNK (64u * 1024)
#define MIN_CHUNK 256u
#define MAX_CHUNK (8u * 1024 * 1024)

struct sl_arena_chunk {
    struct sl_arena_chunk *next;
    size_t size;  /* usable bytes after the header */
    bool big;     /* holds one oversized request: never bumped into, never kept */
};

/* The header rounded up, so chunk data is as aligned as malloc's result. */
#define HDR ((sizeof(struct sl_arena_chunk) + alignof(max_align_t) - 1) & \
             ~(alignof(max_align_t) - 1))

static char *chunk_data(const struct sl_arena_chunk *c)
{
    return (char *)c + HDR;
}

static struct sl_arena_chunk *chunk_new(struct sl_arena *a, size_t size, bool big)
{
    if (size > SIZE_MAX / 2) {
        fprintf(stderr, "sluice: arena request of %zu bytes is too big\n", size);
        abort();
    }
    struct sl_arena_chunk *c = sl_malloc(HDR + size);
    c->size = size;
    c->big = big;
    POISON(chunk_data(c), size);
    a->reserved += size;
    return c;
}

static void chunk_free(struct sl_arena_chunk *c)
{
    UNPOISON(chunk_data(c), c->size);  /* the heap allocator owns these bytes again */
    free(c);
}

void sl_arena_init(struct sl_arena *a, size_t chunk_size)
{
    memset(a, 0, sizeof(*a));
    a->first_size = chunk_size ? SL_MAX(chunk_size, (size_t)MIN_CHUNK) : DEFAULT_CHUNK;
    a->next_size = a->first_size;
}

/* Bumps inside the current chunk; NULL when n does not fit. */
static void *bump(struct sl_arena *a, size_t n, size_t align)
{
    if (!a->ptr) {
        return NULL;
    }
    uintptr_t p = ((uintptr_t)a->ptr + (align - 1)) & ~(uintptr_t)(align - 1);
    uintptr_t end = (uintptr_t)a->end;
    if (p > end || n > end - p) {
        return NULL;
    }
    /* The redzone may be cut short by the end of the chunk: what lies beyond
     * is not arena memory, and ASan knows it as the heap block's end anyway. */
    size_t rz = SL_MIN((size_t)REDZONE, (size_t)(end - p - n));
    a->ptr = (char *)(p + n + rz);
    a->used += n;
    UNPOISON((void *)p, n);
    return (void *)p;
}

void *sl_arena_alloc_slow(struct sl_arena *a, size_t n, size_t align)
{
    align = SL_MAX(align, (size_t)MIN_ALIGN);
    void *p = bump(a, n, align);
    if (p) {
        return p;
    }
    if (n > a->next_size / 4) {
        /* A chunk of its own (chunk data is max_align_t-aligned, so any align
         * up to that holds). Linked second: the current chunk stays current. */
        struct sl_arena_chunk *c = chunk_new(a, n ? n : 1, true);
        if (a->chunks) {
            c->next = a->chunks->next;
            a->chunks->next = c;
        } else {
            c->next = NULL;
            a->chunks = c;  /* no regular chunk yet: a->ptr stays NULL */
        }
        a->used += n;
        UNPOISON(chunk_data(c), n);
        return chunk_data(c);
    }
    struct sl_arena_chunk *c = chunk_new(a, a->next_size, false);
    c->next = a->chunks;
    a->chunks = c;
    a->ptr = chunk_data(c);
    a->end = a->ptr + c->size;
    if (a->next_size < MAX_CHUNK) {
        a->next_size = SL_MIN(a->next_size * 2, (size_t)MAX_CHUNK);
    }
    return bump(a, n, align);  /* n <= size / 4: it fits */
}

void *sl_arena_alloc(struct sl_arena *a, size_t n)
{
    return sl_arena_alloc_aligned(a, n, alignof(max_align_t));
}

void sl_arena_reset(struct sl_arena *a)
{
    /* Regular chunks only grow, so the largest one not over the limit exists
     * whenever there is a regular chunk at all (the first is the smallest). */
    size_t limit = SL_MAX((size_t)MAX_CHUNK, a->first_size);
    struct sl_arena_chunk *keep = NULL;
    for (struct sl_arena_chunk *c = a->chunks; c; c = c->next) {
        if (!c->big && c->size <= limit && (!keep || c->size > keep->size)) {
            keep = c;
        }
    }
    struct sl_arena_chunk *c = a->chunks;
    while (c) {
        struct sl_arena_chunk *next = c->next;
        if (c != keep) {
            chunk_free(c);
        }
        c = next;
    }
    a->chunks = keep;
    a->used = 0;
    if (!keep) {
        a->ptr = a->end = NULL;
        a->reserved = 0;
        a->next_size = a->first_size;
        return;
    }
    keep->next = NULL;
    POISON(chunk_data(keep), keep->size);
    a->ptr = chunk_data(keep);
    a->end = a->ptr + keep->size;
    a->reserved = keep->size;
    /* Growth resumes after the kept chunk, as if the smaller ones had been used. */
    a->next_size = keep->size < MAX_CHUNK ? SL_MIN(keep->size * 2, (size_t)MAX_CHUNK) : keep->size;
}

void sl_arena_free(struct sl_arena *a)
{
    struct sl_arena_chunk *c = a->chunks;
    while (c) {
        struct sl_arena_chunk *next = c->next;
        chunk_free(c);
        c = next;
    }
    sl_arena_init(a, a->first_size);
}

bool sl_arena_contains(const struct sl_arena *a, const void *p)
{
    uintptr_t u = (uintptr_t)p;
    for (const struct sl_arena_chunk *c = a->chunks; c; c = c->next) {
        uintptr_t d = (uintptr_t)chunk_data(c);
        if (u >= d && u < d + c->size) {
            return true;
        }
    }
    return false;
}
