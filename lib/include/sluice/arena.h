/*
 * arena.h - a bump allocator for memory that dies all at once: the parsed
 * event trees of one batch (sl_json_parse_arena). Allocation is a pointer
 * bump inside large chunks (64 KiB by default, doubling up to 8 MiB; a big
 * request gets a chunk of its own), and nothing is freed one by one: reset
 * or free gives everything back together.
 *
 * Why: an event parsed to the heap costs one malloc per key, string and
 * items vector, and a window of thousands of events is freed at once, which
 * made malloc/free ~40% of the aggregator's CPU.
 *
 * Lifetime rule. Memory from an arena is valid until the next sl_arena_reset
 * or sl_arena_free. A value tree parsed into an arena must be cleared
 * (sl_value_clear: it frees whatever filters added on the heap and leaves the
 * arena parts alone) before the arena is reset or freed, and no part of it may
 * outlive the arena: to keep something longer, sl_value_copy it (copies are
 * always heap). Between parse and clear the tree can be mutated freely with
 * the value API (value.h).
 *
 * Not thread-safe: an arena has one owner at a time. Handing it over to
 * another thread along with the trees in it (through a queue that orders
 * memory) is fine.
 *
 * Under AddressSanitizer, free space and a redzone after every allocation are
 * poisoned, and reset poisons everything again: an overrun, or a read of
 * arena memory after reset, is reported like a heap error.
 */
#ifndef SLUICE_ARENA_H
#define SLUICE_ARENA_H

#include <string.h>

#include "common.h"

#if defined(__SANITIZE_ADDRESS__)
#define SL_ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SL_ARENA_ASAN 1
#endif
#endif

struct sl_arena_chunk;  /* private to arena.c */

struct sl_arena {
    struct sl_arena_chunk *chunks;  /* newest regular chunk first, then older/big ones */
    char *ptr, *end;                /* free space of the newest regular chunk */
    size_t first_size;              /* size of the first chunk (init's argument) */
    size_t next_size;               /* size of the next regular chunk */
    size_t used;                    /* bytes handed out since init/reset (statistics) */
    size_t reserved;                /* bytes held in chunks (statistics) */
};

/* chunk_size: size of the first chunk; 0 -> 64 KiB. Allocates nothing yet. */
void sl_arena_init(struct sl_arena *a, size_t chunk_size);

/* n bytes aligned for any object type. Never NULL: like sl_malloc, running
 * out of memory aborts. n == 0 gives a valid unique-enough pointer. */
void *sl_arena_alloc(struct sl_arena *a, size_t n);

/* n bytes aligned to align (a power of two, at most alignof(max_align_t)). */
static inline void *sl_arena_alloc_aligned(struct sl_arena *a, size_t n, size_t align);

/* A NUL-terminated copy of s[0..n) (s may be NULL when n is 0). Unaligned. */
static inline char *sl_arena_strndup(struct sl_arena *a, const char *s, size_t n);

/*
 * Gives back every allocation at once. Keeps one chunk for reuse - the
 * largest regular one, so that a workload whose batches need the same memory
 * each time settles on a single chunk and stops calling malloc - unless it is
 * over 8 MiB, in which case the first chunk is kept instead.
 */
void sl_arena_reset(struct sl_arena *a);

/* Frees every chunk; the arena is left empty and may be used again. */
void sl_arena_free(struct sl_arena *a);

/* Whether p lies inside one of the arena's chunks (for tests and assertions). */
bool sl_arena_contains(const struct sl_arena *a, const void *p);

/* Out-of-line part of sl_arena_alloc_aligned: a new chunk, or ASan bookkeeping. */
void *sl_arena_alloc_slow(struct sl_arena *a, size_t n, size_t align);

/*
 * The fast path is inline: the parser allocates a few dozen times per event,
 * and a call per allocation would cost as much as the bump itself. Under ASan
 * every allocation goes through arena.c, which poisons the redzones.
 */
static inline void *sl_arena_alloc_aligned(struct sl_arena *a, size_t n, size_t align)
{
#ifndef SL_ARENA_ASAN
    uintptr_t p = ((uintptr_t)a->ptr + (align - 1)) & ~(uintptr_t)(align - 1);
    if (a->ptr && p <= (uintptr_t)a->end && n <= (size_t)((uintptr_t)a->end - p)) {
        a->ptr = (char *)(p + n);
        a->used += n;
        return (void *)p;
    }
#endif
    return sl_arena_alloc_slow(a, n, align);
}

static inline char *sl_arena_strndup(struct sl_arena *a, const char *s, size_t n)
{
    char *p = (char *)sl_arena_alloc_aligned(a, n + 1, 1);
    if (n) {
        memcpy(p, s, n);
    }
    p[n] = '\0';
    return p;
}

#endif
