/*
 * value.h - the event model: a JSON-like tree. An event is an object value.
 * Objects keep insertion order (linear search: events have few keys, and order
 * makes outputs readable and deterministic; sl_obj_batch and sl_obj_merge index
 * the keys when many are put at once). Every string is owned by the tree
 * (or by the arena the tree was parsed into: see below).
 *
 * Values are stored inline in their parent's arrays, so a pointer returned by
 * a lookup is valid only until the parent object/array is next modified.
 *
 * Arena trees. sl_json_parse_arena (json.h) builds a tree whose strings, keys
 * and items vectors live in a struct sl_arena (arena.h) instead of the heap;
 * SL_VF_ARENA in a value's flags (and in a member's kflags, for its key) says
 * so. Every function here keeps the semantics it has on heap trees and knows
 * which memory it may free: clearing never frees arena memory but still frees
 * the heap parts (what filters added) below it; set_* and take_str replace an
 * arena buffer by a heap one; sl_obj_put/sl_arr_push move the items of a full
 * arena vector to a new heap vector (the old one is abandoned to the arena);
 * deletes work in place; copies are always heap; moves carry the flags along.
 * The rule that comes with it: such a tree must be cleared (sl_value_clear)
 * before its arena is reset or freed, and no part of it may outlive the arena
 * (moving a subtree into a longer-lived tree breaks that: copy it instead).
 * Code outside value.c and json.c must not free, realloc or steal a tree's
 * buffers itself; it may read them and move values with plain assignment.
 */
#ifndef SLUICE_VALUE_H
#define SLUICE_VALUE_H

#include "common.h"

#include <string.h>

enum sl_vtype {
    SL_V_NULL = 0,  /* a zeroed struct sl_value is null */
    SL_V_BOOL,
    SL_V_INT,
    SL_V_DOUBLE,
    SL_V_STRING,
    SL_V_ARRAY,
    SL_V_OBJECT,
};

struct sl_member;

/* sl_value.flags and sl_member.kflags. */
#define SL_VF_ARENA 0x01u  /* the buffer (string bytes, items vector, or key) is not heap-owned */

struct sl_value {
    enum sl_vtype type;
    uint8_t flags;  /* SL_VF_*; in the padding after type: the struct stays 32 bytes */
    union {
        bool b;
        int64_t i;
        double d;
        struct { char *ptr; size_t len; } s;              /* NUL-terminated too */
        struct { struct sl_value *items; size_t len, cap; } a;
        struct { struct sl_member *items; size_t len, cap; } o;
    } u;
};

struct sl_member {
    char *key;  /* NUL-terminated, owned (by the heap, or by an arena when kflags says so) */
    size_t klen;
    uint8_t kflags;  /* SL_VF_ARENA: key is arena memory */
    uint32_t khead;  /* sl_key_head(key, klen): lookups compare it before the key's bytes */
    struct sl_value v;
};

/*
 * A key's first four bytes (zero-padded): two keys of one length whose heads
 * differ differ, so a lookup rejects most members without reading their keys.
 */
static inline uint32_t sl_key_head(const char *k, size_t n)
{
    const unsigned char *u = (const unsigned char *)k;
    uint32_t h = 0;
    switch (n) {
    default:
        h |= (uint32_t)u[3] << 24;
        /* fall through */
    case 3:
        h |= (uint32_t)u[2] << 16;
        /* fall through */
    case 2:
        h |= (uint32_t)u[1] << 8;
        /* fall through */
    case 1:
        h |= u[0];
        /* fall through */
    case 0:
        break;
    }
    return h;
}

/* Whether a[0..n) == b[0..n), n > 4, their first four bytes known equal. Keys
 * are short: up to 16 bytes they are compared as two overlapping words each,
 * inline, instead of through a memcmp call. */
static inline bool sl_key_rest_eq(const char *a, const char *b, size_t n)
{
    if (n <= 8) {
        uint32_t x, y;
        memcpy(&x, a + n - 4, 4);
        memcpy(&y, b + n - 4, 4);
        return x == y;
    }
    if (n <= 16) {
        uint64_t x0, y0, x1, y1;
        memcpy(&x0, a, 8);
        memcpy(&y0, b, 8);
        memcpy(&x1, a + n - 8, 8);
        memcpy(&y1, b + n - 8, 8);
        return ((x0 ^ y0) | (x1 ^ y1)) == 0;
    }
    return memcmp(a + 4, b + 4, n - 4) == 0;
}

/* Whether member m's key is k[0..n), head known to be sl_key_head(k, n). */
static inline bool sl_member_is(const struct sl_member *m, const char *k, size_t n, uint32_t head)
{
    return m->khead == head && m->klen == n && (n <= 4 || sl_key_rest_eq(m->key, k, n));
}

/*
 * Arena scope. While a thread has one set, every buffer value.c allocates for
 * a tree (strings, keys, vectors, copies; a string given to take_str is copied
 * and freed) and every tree sl_json_parse builds come from that arena and are
 * flagged SL_VF_ARENA: building and changing an event costs no malloc and
 * clearing it no free. The pipeline's workers set their slice's arena around
 * the slice; anything built meanwhile must not outlive that arena. Returns
 * the previous scope (NULL: the heap).
 */
struct sl_arena;
struct sl_arena *sl_value_set_arena(struct sl_arena *a);
struct sl_arena *sl_value_arena(void);

/* Frees what v owns and leaves it null (flags cleared). v itself is not freed.
 * Arena memory is left alone; heap-owned children below it are freed. */
void sl_value_clear(struct sl_value *v);
/* Deep copy into dst (dst's old content is cleared). The copy is all heap
 * (all arena in an arena scope). */
void sl_value_copy(struct sl_value *dst, const struct sl_value *src);
/* Moves src into dst (dst cleared first); src becomes null. Flags move along:
 * an arena subtree moved into a heap tree is still arena memory. */
void sl_value_move(struct sl_value *dst, struct sl_value *src);

void sl_value_set_null(struct sl_value *v);
void sl_value_set_bool(struct sl_value *v, bool b);
void sl_value_set_int(struct sl_value *v, int64_t i);
void sl_value_set_double(struct sl_value *v, double d);
/* Copies len bytes of s. */
void sl_value_set_str(struct sl_value *v, const char *s, size_t len);
void sl_value_set_cstr(struct sl_value *v, const char *s);
/*
 * For a builder that placed many strings in one arena allocation itself, in
 * an arena scope only (sl_value_arena() != NULL): s[0..len), NUL-terminated at
 * s[len], memory of that arena that the caller allocated (never a buffer a
 * tree held before: a changed string must stay a new pointer) and that is never
 * written again, is taken as it is (flagged SL_VF_ARENA); several values may
 * share it. Inline: such builders store many at a time.
 */
static inline void sl_value_set_arena_str(struct sl_value *v, char *s, size_t len)
{
    if (v->type != SL_V_NULL) {
        sl_value_clear(v);  /* s is arena memory: clearing cannot free it */
    }
    v->type = SL_V_STRING;
    v->flags = SL_VF_ARENA;
    v->u.s.ptr = s;
    v->u.s.len = len;
}
/* Takes ownership of a malloc'ed NUL-terminated s of length len. */
void sl_value_take_str(struct sl_value *v, char *s, size_t len);
void sl_value_set_object(struct sl_value *v);  /* empty object */
void sl_value_set_array(struct sl_value *v);   /* empty array */

/* Objects. key need not be NUL-terminated. */
struct sl_value *sl_obj_get(const struct sl_value *obj, const char *key, size_t klen);
struct sl_value *sl_obj_getc(const struct sl_value *obj, const char *key);
/* Returns the member's value slot, created null at the end if absent (existing value kept). */
struct sl_value *sl_obj_put(struct sl_value *obj, const char *key, size_t klen);
struct sl_value *sl_obj_putc(struct sl_value *obj, const char *key);
/* Appends key with a null value without looking it up: for a caller that knows
 * obj does not hold it (an object it just made). A null obj becomes an empty
 * object; any other non-object gives NULL. */
struct sl_value *sl_obj_add(struct sl_value *obj, const char *key, size_t klen);
/*
 * sl_obj_add with a key placed by the caller as sl_value_set_arena_str's s
 * (NUL-terminated at key[klen]), head = sl_key_head(key, klen): taken as it
 * is. In an arena scope only, as sl_value_set_arena_str; inline while the
 * vector has room.
 */
struct sl_value *sl_obj_add_arena_key_slow(struct sl_value *obj, char *key, size_t klen,
                                           uint32_t head);
static inline struct sl_value *sl_obj_add_arena_key(struct sl_value *obj, char *key,
                                                    size_t klen, uint32_t head)
{
    if (obj->type != SL_V_OBJECT || obj->u.o.len == obj->u.o.cap) {
        return sl_obj_add_arena_key_slow(obj, key, klen, head);
    }
    struct sl_member *m = &obj->u.o.items[obj->u.o.len++];
    m->key = key;
    m->klen = klen;
    m->kflags = SL_VF_ARENA;
    m->khead = head;
    memset(&m->v, 0, sizeof(m->v));
    return &m->v;
}
/* Room for n more members in object obj (anything else: nothing happens), so
 * that the next n additions grow its vector at most this once. */
void sl_obj_reserve(struct sl_value *obj, size_t n);
/* Removes key; 0 or SL_ENOENT. */
int sl_obj_del(struct sl_value *obj, const char *key, size_t klen);

/*
 * Many puts into one object, in linear time. sl_obj_put searches linearly, so
 * n puts into an object of n keys cost n^2/2 key comparisons: a hostile event
 * (a line of 100k key=value pairs, a JSON object of 200k keys merged into the
 * root) would hold a worker for minutes. A batch gives each put exactly
 * sl_obj_put's result (existing keys keep their place, new ones are appended in
 * order; a null obj becomes an object, any other non-object gives NULL), and
 * once it has made more than SL_OBJ_BATCH_INDEX_MIN puts (or begin was told
 * more are coming) it keeps a hash index of the object's keys, so small events
 * keep the plain linear search and its zero allocations.
 * While a batch is open, obj's member list must change only through it (values
 * reached through the returned slots may change freely; sl_obj_del may not be
 * used). sl_obj_batch_end frees the index; obj is left as the puts made it.
 */
#define SL_OBJ_BATCH_INDEX_MIN 32u

struct sl_obj_batch {  /* private: use the functions */
    struct sl_value *obj;
    uint32_t *slot;  /* member position + 1 (0: empty); NULL while unindexed */
    size_t mask;     /* slots - 1 (a power of two minus one) */
    size_t hint;     /* puts announced by begin */
    size_t puts;     /* puts made so far */
};

/* hint: how many puts are coming (0: unknown); with more than
 * SL_OBJ_BATCH_INDEX_MIN the first put builds the index, sized for all of them. */
void sl_obj_batch_begin(struct sl_obj_batch *b, struct sl_value *obj, size_t hint);
struct sl_value *sl_obj_batch_put(struct sl_obj_batch *b, const char *key, size_t klen);
void sl_obj_batch_end(struct sl_obj_batch *b);

/*
 * Moves every member of src into dst, in src's order, as
 * sl_value_move(sl_obj_put(dst, key, klen), &value) would one by one (an
 * existing key's value is replaced in its place), in linear time. src is
 * consumed: it is left null. A src that is not an object only gets cleared;
 * a null dst becomes an object, any other non-object dst is left alone. src
 * must not lie inside dst (dst's vector may move); src == dst changes nothing.
 */
void sl_obj_merge(struct sl_value *dst, struct sl_value *src);

/* Arrays: appends a null slot and returns it. */
struct sl_value *sl_arr_push(struct sl_value *arr);

/*
 * Field references, as Logstash and Beats write them: "[a][b]" and "a.b" both
 * name field b inside object a; a plain "message" names a top-level field.
 * "@timestamp" and other keys without dots are single names.
 */
struct sl_value *sl_field_get(const struct sl_value *root, const char *ref);
/* Creates intermediate objects as needed (replacing non-objects); returns the slot. */
struct sl_value *sl_field_put(struct sl_value *root, const char *ref);
int sl_field_del(struct sl_value *root, const char *ref);

/* Appends tag to the "tags" array (created if absent) unless already present. */
void sl_event_add_tag(struct sl_value *event, const char *tag);

/* ---- compiled field references --------------------------------------------- */

/*
 * A field reference split into its path once: "[a][b]", "a.b" and "a" name
 * what sl_field_get() names. Lookups then cost one member search per segment,
 * tried first where that segment was last found: the events of one source
 * share a shape, so the member is nearly always where it was.
 */
struct sl_fieldref_seg {
    const char *name;  /* points into sl_fieldref.text; not NUL-terminated */
    size_t len;
    uint32_t head;     /* sl_key_head(name, len) */
    uint32_t hint;     /* member index it was last found at: a guess, written by any
                        * thread (relaxed atomics), always checked */
};

struct sl_fieldref {
    char *text;                   /* the reference as written (owned, NUL-terminated) */
    struct sl_fieldref_seg *segs; /* owned */
    size_t nsegs;
};

/* Compiles ref into *r. 0, or SL_EINVAL for a malformed reference ("", "[a", "a..b",
 * "a.", "[]"), leaving *r empty. Always sl_fieldref_free() (a no-op on an empty one). */
int sl_fieldref_init(struct sl_fieldref *r, const char *ref);
void sl_fieldref_free(struct sl_fieldref *r);
/* The value r names inside root, or NULL when absent (or a parent is not an object).
 * The pointer is valid until the parent object is next modified. Thread-safe. */
struct sl_value *sl_fieldref_get(const struct sl_fieldref *r, const struct sl_value *root);
/* As sl_field_put / sl_field_del, with the path split once. */
struct sl_value *sl_fieldref_put(const struct sl_fieldref *r, struct sl_value *root);
int sl_fieldref_del(const struct sl_fieldref *r, struct sl_value *root);


#endif
