/*
 * value.c - the event model: a JSON-like tree whose objects keep insertion
 * order, and the Logstash/Beats field references ("[a][b]", "a.b") that
 * filters and outputs use to reach into an event. No JSON text here (json.c).
 *
 * Objects are searched linearly: events have a handful of keys, and a plain
 * array keeps their order and their memory compact. Many puts at once (a
 * batch, a merge) get a temporary hash index instead, so they stay linear.
 *
 * A tree may mix heap and arena memory (value.h): a value's SL_VF_ARENA flag
 * covers its own buffer only (string bytes or items vector), a member's
 * kflags its key, so each buffer is freed - or not - on its own account.
 */
#include "sluice/value.h"

#include "sluice/arena.h"

#include <stdlib.h>
#include <string.h>

/* The flag lives in the padding after type; arrays of values would grow by a
 * quarter if it did not. (LP64 only: elsewhere the layout differs anyway.) */
#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(struct sl_value) == 32, "struct sl_value grew");
#endif

static inline bool is_arena(uint8_t flags)
{
    return (flags & SL_VF_ARENA) != 0;
}

static void value_free_children(struct sl_value *v)
{
    switch (v->type) {
    case SL_V_STRING:
        if (!is_arena(v->flags)) {
            free(v->u.s.ptr);
        }
        break;
    case SL_V_ARRAY:
        for (size_t i = 0; i < v->u.a.len; i++) {
            value_free_children(&v->u.a.items[i]);
        }
        if (!is_arena(v->flags)) {
            free(v->u.a.items);
        }
        break;
    case SL_V_OBJECT:
        for (size_t i = 0; i < v->u.o.len; i++) {
            if (!is_arena(v->u.o.items[i].kflags)) {
                free(v->u.o.items[i].key);
            }
            value_free_children(&v->u.o.items[i].v);
        }
        if (!is_arena(v->flags)) {
            free(v->u.o.items);
        }
        break;
    default:
        break;
    }
}

void sl_value_clear(struct sl_value *v)
{
    if (!v) {
        return;
    }
    value_free_children(v);
    memset(v, 0, sizeof(*v));
}

/* The calling thread's arena scope (sl_value_set_arena): NULL, the heap. */
static _Thread_local struct sl_arena *tl_arena;

struct sl_arena *sl_value_set_arena(struct sl_arena *a)
{
    struct sl_arena *old = tl_arena;
    tl_arena = a;
    return old;
}

struct sl_arena *sl_value_arena(void)
{
    return tl_arena;
}

/* n bytes for a tree, from the scope's arena or the heap; *flags says which. */
static void *tree_alloc(size_t n, uint8_t *flags)
{
    if (tl_arena) {
        *flags |= SL_VF_ARENA;
        return sl_arena_alloc(tl_arena, n ? n : 1);
    }
    *flags &= (uint8_t)~SL_VF_ARENA;
    return sl_malloc(n ? n : 1);
}

static char *dup_bytes(const char *s, size_t len, uint8_t *flags)
{
    char *p = tree_alloc(len + 1, flags);
    if (len) {
        memcpy(p, s, len);
    }
    p[len] = '\0';
    return p;
}

/* Deep copy into an uninitialised dst. */
static void value_copy_raw(struct sl_value *dst, const struct sl_value *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->type = src->type;
    switch (src->type) {
    case SL_V_NULL:
        break;
    case SL_V_BOOL:
        dst->u.b = src->u.b;
        break;
    case SL_V_INT:
        dst->u.i = src->u.i;
        break;
    case SL_V_DOUBLE:
        dst->u.d = src->u.d;
        break;
    case SL_V_STRING:
        dst->u.s.ptr = dup_bytes(src->u.s.ptr, src->u.s.len, &dst->flags);
        dst->u.s.len = src->u.s.len;
        break;
    case SL_V_ARRAY: {
        size_t n = src->u.a.len;
        dst->u.a.items = n ? tree_alloc(n * sizeof(struct sl_value), &dst->flags) : NULL;
        for (size_t i = 0; i < n; i++) {
            value_copy_raw(&dst->u.a.items[i], &src->u.a.items[i]);
        }
        dst->u.a.len = dst->u.a.cap = n;
        break;
    }
    case SL_V_OBJECT: {
        size_t n = src->u.o.len;
        dst->u.o.items = n ? tree_alloc(n * sizeof(struct sl_member), &dst->flags) : NULL;
        for (size_t i = 0; i < n; i++) {
            const struct sl_member *m = &src->u.o.items[i];
            dst->u.o.items[i].kflags = 0;
            dst->u.o.items[i].key = dup_bytes(m->key, m->klen, &dst->u.o.items[i].kflags);
            dst->u.o.items[i].klen = m->klen;
            dst->u.o.items[i].khead = m->khead;
            value_copy_raw(&dst->u.o.items[i].v, &m->v);
        }
        dst->u.o.len = dst->u.o.cap = n;
        break;
    }
    default:
        dst->type = SL_V_NULL;
        break;
    }
}

void sl_value_copy(struct sl_value *dst, const struct sl_value *src)
{
    /* Copy first, then clear: dst may be src or lie inside it. */
    struct sl_value tmp;
    value_copy_raw(&tmp, src);
    sl_value_clear(dst);
    *dst = tmp;
}

void sl_value_move(struct sl_value *dst, struct sl_value *src)
{
    if (dst == src) {
        return;
    }
    /* Detach src before clearing dst, so a src that lives inside dst survives. */
    struct sl_value tmp = *src;
    memset(src, 0, sizeof(*src));
    sl_value_clear(dst);
    *dst = tmp;
}

void sl_value_set_null(struct sl_value *v)
{
    sl_value_clear(v);
}

void sl_value_set_bool(struct sl_value *v, bool b)
{
    sl_value_clear(v);
    v->type = SL_V_BOOL;
    v->u.b = b;
}

void sl_value_set_int(struct sl_value *v, int64_t i)
{
    sl_value_clear(v);
    v->type = SL_V_INT;
    v->u.i = i;
}

void sl_value_set_double(struct sl_value *v, double d)
{
    sl_value_clear(v);
    v->type = SL_V_DOUBLE;
    v->u.d = d;
}

void sl_value_set_str(struct sl_value *v, const char *s, size_t len)
{
    uint8_t flags = 0;
    len = s ? len : 0;
    char *p = dup_bytes(s, len, &flags);  /* before clearing: s may be v's own string */
    sl_value_clear(v);
    v->type = SL_V_STRING;
    v->flags = flags;
    v->u.s.ptr = p;
    v->u.s.len = len;
}

void sl_value_set_cstr(struct sl_value *v, const char *s)
{
    if (!s) {
        sl_value_clear(v);
        return;
    }
    sl_value_set_str(v, s, strlen(s));
}

void sl_value_take_str(struct sl_value *v, char *s, size_t len)
{
    if (!s || tl_arena) {
        /* In an arena scope the tree holds no heap buffer: copied, then freed. */
        sl_value_set_str(v, s ? s : "", s ? len : 0);
        free(s);
        return;
    }
    sl_value_clear(v);
    v->type = SL_V_STRING;
    v->u.s.ptr = s;
    v->u.s.len = len;
}

void sl_value_set_object(struct sl_value *v)
{
    sl_value_clear(v);
    v->type = SL_V_OBJECT;
}

void sl_value_set_array(struct sl_value *v)
{
    sl_value_clear(v);
    v->type = SL_V_ARRAY;
}

/* ---- objects and arrays ---- */

/*
 * A full items vector grows: a heap one by realloc, an arena one by copying
 * its elements to a new heap vector. The elements move (their own buffers and
 * flags go with them); the old arena vector is simply abandoned.
 */
static void *grow_items(struct sl_value *v, void *items, size_t len, size_t cap, size_t elem)
{
    if (!is_arena(v->flags) && !tl_arena) {
        return sl_realloc(items, cap * elem);
    }
    bool was_heap = !is_arena(v->flags);
    void *p = tree_alloc(cap * elem, &v->flags);
    if (len) {
        memcpy(p, items, len * elem);
    }
    if (was_heap && items) {
        free(items);
    }
    return p;
}

static struct sl_member *obj_find(const struct sl_value *obj, const char *key, size_t klen)
{
    if (!obj || obj->type != SL_V_OBJECT || (!key && klen)) {
        return NULL;
    }
    uint32_t head = sl_key_head(key, klen);
    for (size_t i = 0; i < obj->u.o.len; i++) {
        struct sl_member *m = &obj->u.o.items[i];
        if (sl_member_is(m, key, klen, head)) {
            return m;
        }
    }
    return NULL;
}

struct sl_value *sl_obj_get(const struct sl_value *obj, const char *key, size_t klen)
{
    struct sl_member *m = obj_find(obj, key, klen);
    return m ? &m->v : NULL;
}

struct sl_value *sl_obj_getc(const struct sl_value *obj, const char *key)
{
    return key ? sl_obj_get(obj, key, strlen(key)) : NULL;
}

/* An object that obj is or becomes (a null value turns into an empty one), or NULL. */
static bool obj_ready(struct sl_value *obj, const char *key, size_t klen)
{
    if (!obj || (!key && klen)) {
        return false;
    }
    if (obj->type == SL_V_NULL) {
        obj->type = SL_V_OBJECT;
    }
    return obj->type == SL_V_OBJECT;
}

/* A new member at the end of obj (key not set yet), the vector grown if full. */
static struct sl_member *obj_push(struct sl_value *obj)
{
    if (obj->u.o.len == obj->u.o.cap) {
        size_t cap = obj->u.o.cap ? obj->u.o.cap * 2 : 8;
        obj->u.o.items = grow_items(obj, obj->u.o.items, obj->u.o.len, cap,
                                    sizeof(struct sl_member));
        obj->u.o.cap = cap;
    }
    return &obj->u.o.items[obj->u.o.len++];
}

/* Appends a member for key (known absent) with a null value. */
static struct sl_member *obj_append(struct sl_value *obj, const char *key, size_t klen)
{
    struct sl_member *m = obj_push(obj);
    m->kflags = 0;
    m->key = dup_bytes(key, klen, &m->kflags);
    m->klen = klen;
    m->khead = sl_key_head(key, klen);
    memset(&m->v, 0, sizeof(m->v));
    return m;
}

/*
 * A null value is turned into an empty object, so that a zeroed struct
 * sl_value can be filled directly; any other non-object gives NULL.
 */
struct sl_value *sl_obj_put(struct sl_value *obj, const char *key, size_t klen)
{
    if (!obj_ready(obj, key, klen)) {
        return NULL;
    }
    struct sl_member *m = obj_find(obj, key, klen);
    if (!m) {
        m = obj_append(obj, key, klen);
    }
    return &m->v;
}

struct sl_value *sl_obj_add(struct sl_value *obj, const char *key, size_t klen)
{
    return obj_ready(obj, key, klen) ? &obj_append(obj, key, klen)->v : NULL;
}

struct sl_value *sl_obj_add_arena_key_slow(struct sl_value *obj, char *key, size_t klen,
                                           uint32_t head)
{
    if (!tl_arena) {
        return sl_obj_add(obj, key, klen);  /* (misuse: stays correct, copied) */
    }
    if (!obj_ready(obj, key, klen)) {
        return NULL;
    }
    if (obj->u.o.len == obj->u.o.cap) {
        sl_obj_reserve(obj, obj->u.o.cap ? obj->u.o.cap : 8);  /* obj_push's growth */
    }
    return sl_obj_add_arena_key(obj, key, klen, head);  /* now with room: the inline path */
}

void sl_obj_reserve(struct sl_value *obj, size_t n)
{
    if (!obj || obj->type != SL_V_OBJECT || obj->u.o.cap - obj->u.o.len >= n ||
        n > SIZE_MAX / sizeof(struct sl_member) - obj->u.o.len) {
        return;
    }
    size_t cap = obj->u.o.len + n;
    obj->u.o.items = grow_items(obj, obj->u.o.items, obj->u.o.len, cap, sizeof(struct sl_member));
    obj->u.o.cap = cap;
}

struct sl_value *sl_obj_putc(struct sl_value *obj, const char *key)
{
    return key ? sl_obj_put(obj, key, strlen(key)) : NULL;
}

/* Removes member m of obj, keeping the others' order. */
static int obj_remove(struct sl_value *obj, struct sl_member *m)
{
    if (!is_arena(m->kflags)) {
        free(m->key);
    }
    sl_value_clear(&m->v);
    /* In place, arena vector or not: the slot at the end is just unused. */
    size_t i = (size_t)(m - obj->u.o.items);
    memmove(m, m + 1, (obj->u.o.len - i - 1) * sizeof(*m));
    obj->u.o.len--;
    return 0;
}

int sl_obj_del(struct sl_value *obj, const char *key, size_t klen)
{
    struct sl_member *m = obj_find(obj, key, klen);
    return m ? obj_remove(obj, m) : SL_ENOENT;
}

/* ---- batches of puts ---- */

/* Keyed per process (common.h): keys from outside cannot be made to collide. */
static inline uint64_t key_hash(const char *k, size_t n)
{
    return sl_hash_bytes(k, n);
}

/* The slot holding key, or the empty slot where it belongs (open addressing, linear probing). */
static uint32_t *index_find(const struct sl_obj_batch *b, const char *key, size_t klen)
{
    const struct sl_member *ms = b->obj->u.o.items;
    size_t i = (size_t)key_hash(key, klen) & b->mask;
    for (;;) {
        uint32_t *s = &b->slot[i];
        if (*s == 0) {
            return s;
        }
        const struct sl_member *m = &ms[*s - 1];
        if (sl_member_is(m, key, klen, sl_key_head(key, klen))) {
            return s;
        }
        i = (i + 1) & b->mask;
    }
}

/*
 * (Re)builds the index for at least want members, at most half full. The first
 * of equal keys is indexed, as obj_find would find it (an object never holds
 * duplicates through this API, but nothing need break if one did).
 */
static void index_build(struct sl_obj_batch *b, size_t want)
{
    const struct sl_value *obj = b->obj;
    size_t cap = 64;
    while (cap < want * 2) {
        cap *= 2;
    }
    free(b->slot);
    b->slot = sl_calloc(cap, sizeof(uint32_t));
    b->mask = cap - 1;
    for (size_t i = 0; i < obj->u.o.len; i++) {
        const struct sl_member *m = &obj->u.o.items[i];
        uint32_t *s = index_find(b, m->key, m->klen);
        if (*s == 0) {
            *s = (uint32_t)(i + 1);
        }
    }
}

/* Positions are uint32_t, and the index is at most half full: a limit no
 * event comes near, checked all the same. */
#define INDEX_MAX_MEMBERS ((size_t)UINT32_MAX / 4)

void sl_obj_batch_begin(struct sl_obj_batch *b, struct sl_value *obj, size_t hint)
{
    memset(b, 0, sizeof(*b));
    b->obj = obj;
    b->hint = hint;  /* the first put builds the index: obj may not be an object yet */
}

struct sl_value *sl_obj_batch_put(struct sl_obj_batch *b, const char *key, size_t klen)
{
    struct sl_value *obj = b->obj;
    if (!obj_ready(obj, key, klen)) {
        return NULL;
    }
    b->puts++;
    if (obj->u.o.len >= INDEX_MAX_MEMBERS) {
        free(b->slot);  /* beyond what positions can say: plain search */
        b->slot = NULL;
        return sl_obj_put(obj, key, klen);
    }
    if (!b->slot) {
        if (b->puts <= SL_OBJ_BATCH_INDEX_MIN && b->hint <= SL_OBJ_BATCH_INDEX_MIN) {
            return sl_obj_put(obj, key, klen);  /* few puts: no allocation */
        }
        /* Sized for the puts still announced (a guess: growth doubles it anyway). */
        size_t more = b->hint >= b->puts ? b->hint - b->puts + 1 : 1;
        if (more > INDEX_MAX_MEMBERS - obj->u.o.len) {
            more = INDEX_MAX_MEMBERS - obj->u.o.len;
        }
        index_build(b, obj->u.o.len + more);
    } else if ((obj->u.o.len + 1) * 2 > b->mask + 1) {
        index_build(b, (obj->u.o.len + 1) * 2);  /* doubling: rebuilds cost O(1) a put */
    }
    uint32_t *s = index_find(b, key, klen);
    if (*s) {
        return &obj->u.o.items[*s - 1].v;
    }
    *s = (uint32_t)(obj->u.o.len + 1);
    return &obj_append(obj, key, klen)->v;
}

void sl_obj_batch_end(struct sl_obj_batch *b)
{
    free(b->slot);
    memset(b, 0, sizeof(*b));
}

void sl_obj_merge(struct sl_value *dst, struct sl_value *src)
{
    if (!src || dst == src) {
        return;
    }
    if (src->type == SL_V_OBJECT && dst) {
        struct sl_obj_batch b;
        sl_obj_batch_begin(&b, dst, src->u.o.len);
        for (size_t i = 0; i < src->u.o.len; i++) {
            struct sl_member *m = &src->u.o.items[i];
            struct sl_value *slot = sl_obj_batch_put(&b, m->key, m->klen);
            if (!slot) {
                break;  /* dst is no object: nothing can go in */
            }
            sl_value_move(slot, &m->v);
        }
        sl_obj_batch_end(&b);
    }
    sl_value_clear(src);  /* the moved values are null now; keys and vector go */
}

/* As with objects, a null value becomes an empty array; other types give NULL. */
struct sl_value *sl_arr_push(struct sl_value *arr)
{
    if (!arr) {
        return NULL;
    }
    if (arr->type == SL_V_NULL) {
        arr->type = SL_V_ARRAY;
    }
    if (arr->type != SL_V_ARRAY) {
        return NULL;
    }
    if (arr->u.a.len == arr->u.a.cap) {
        size_t cap = arr->u.a.cap ? arr->u.a.cap * 2 : 4;
        arr->u.a.items = grow_items(arr, arr->u.a.items, arr->u.a.len, cap,
                                    sizeof(struct sl_value));
        arr->u.a.cap = cap;
    }
    struct sl_value *v = &arr->u.a.items[arr->u.a.len++];
    memset(v, 0, sizeof(*v));
    return v;
}

/* ---- field references ---- */

/*
 * Walks the segments of a reference. Bracket syntax: one or more "[name]"
 * with a non-empty name free of '[' and ']' (dots are literal inside
 * brackets). Dot syntax: names separated by single dots, none empty, no
 * brackets anywhere. Anything else is malformed.
 */
struct ref_iter {
    const char *p;
    bool bracket;
};

static void ref_init(struct ref_iter *it, const char *ref)
{
    it->p = ref;
    it->bracket = ref[0] == '[';
}

/* 1: a segment in seg and len; 0: end of reference; SL_EINVAL: malformed. */
static int ref_next(struct ref_iter *it, const char **seg, size_t *len)
{
    const char *p = it->p;
    if (*p == '\0') {
        return 0;
    }
    if (it->bracket) {
        if (*p != '[') {
            return SL_EINVAL;
        }
        const char *s = ++p;
        while (*p && *p != ']' && *p != '[') {
            p++;
        }
        if (*p != ']' || p == s) {
            return SL_EINVAL;
        }
        *seg = s;
        *len = (size_t)(p - s);
        it->p = p + 1;
        return 1;
    }
    const char *s = p;
    while (*p && *p != '.' && *p != '[' && *p != ']') {
        p++;
    }
    if (p == s || *p == '[' || *p == ']') {
        return SL_EINVAL;
    }
    if (*p == '.') {
        if (p[1] == '\0') {
            return SL_EINVAL;  /* trailing dot */
        }
        it->p = p + 1;
    } else {
        it->p = p;
    }
    *seg = s;
    *len = (size_t)(p - s);
    return 1;
}

/* Number of segments, or SL_EINVAL. */
static int ref_validate(const char *ref)
{
    if (!ref || !*ref) {
        return SL_EINVAL;
    }
    struct ref_iter it;
    const char *seg;
    size_t len;
    int n = 0, rc;
    ref_init(&it, ref);
    while ((rc = ref_next(&it, &seg, &len)) == 1) {
        n++;
    }
    return rc < 0 ? rc : n;
}

struct sl_value *sl_field_get(const struct sl_value *root, const char *ref)
{
    if (!root || !ref || !*ref) {
        return NULL;
    }
    struct ref_iter it;
    const char *seg;
    size_t len;
    int rc;
    const struct sl_value *cur = root;
    ref_init(&it, ref);
    while ((rc = ref_next(&it, &seg, &len)) == 1) {
        cur = sl_obj_get(cur, seg, len);
        if (!cur) {
            return NULL;
        }
    }
    return rc == 0 ? (struct sl_value *)cur : NULL;
}

struct sl_value *sl_field_put(struct sl_value *root, const char *ref)
{
    int n = ref_validate(ref);  /* before touching the tree */
    if (n <= 0 || !root) {
        return NULL;
    }
    if (root->type != SL_V_NULL && root->type != SL_V_OBJECT) {
        return NULL;
    }
    struct ref_iter it;
    const char *seg;
    size_t len;
    struct sl_value *cur = root;
    ref_init(&it, ref);
    for (int i = 0; i < n; i++) {
        ref_next(&it, &seg, &len);
        if (cur->type != SL_V_OBJECT) {
            sl_value_set_object(cur);  /* intermediate non-object: replaced */
        }
        cur = sl_obj_put(cur, seg, len);
    }
    return cur;
}

int sl_field_del(struct sl_value *root, const char *ref)
{
    int n = ref_validate(ref);
    if (n <= 0 || !root) {
        return SL_EINVAL;
    }
    struct ref_iter it;
    const char *seg;
    size_t len;
    struct sl_value *cur = root;
    ref_init(&it, ref);
    for (int i = 0; i < n - 1; i++) {
        ref_next(&it, &seg, &len);
        cur = sl_obj_get(cur, seg, len);
        if (!cur) {
            return SL_ENOENT;
        }
    }
    ref_next(&it, &seg, &len);
    return sl_obj_del(cur, seg, len);
}

/*
 * Logstash keeps tags as an array of strings. A "tags" that is a single
 * value (a string, typically, from a careless upstream) is wrapped into an
 * array first so no data is lost.
 */
void sl_event_add_tag(struct sl_value *event, const char *tag)
{
    if (!tag) {
        return;
    }
    struct sl_value *tags = sl_obj_putc(event, "tags");
    if (!tags) {
        return;
    }
    if (tags->type != SL_V_ARRAY && tags->type != SL_V_NULL) {
        struct sl_value old;
        memset(&old, 0, sizeof(old));
        sl_value_move(&old, tags);
        sl_value_set_array(tags);
        sl_value_move(sl_arr_push(tags), &old);
    }
    if (tags->type == SL_V_NULL) {
        sl_value_set_array(tags);
    }
    size_t tlen = strlen(tag);
    for (size_t i = 0; i < tags->u.a.len; i++) {
        const struct sl_value *t = &tags->u.a.items[i];
        if (t->type == SL_V_STRING && t->u.s.len == tlen &&
            (tlen == 0 || memcmp(t->u.s.ptr, tag, tlen) == 0)) {
            return;
        }
    }
    sl_value_set_str(sl_arr_push(tags), tag, tlen);
}

/* ---- compiled field references: the same grammar (ref_iter), split once ---- */

int sl_fieldref_init(struct sl_fieldref *r, const char *ref)
{
    memset(r, 0, sizeof(*r));
    int n = ref_validate(ref);
    if (n <= 0) {
        return SL_EINVAL;
    }
    r->text = sl_strdup(ref);
    r->segs = sl_calloc((size_t)n, sizeof(*r->segs));
    struct ref_iter it;
    ref_init(&it, r->text);
    for (int i = 0; i < n; i++) {
        ref_next(&it, &r->segs[i].name, &r->segs[i].len);
        r->segs[i].head = sl_key_head(r->segs[i].name, r->segs[i].len);
    }
    r->nsegs = (size_t)n;
    return 0;
}

/* The member s names in obj (an object or not), tried first at s's hint. */
static struct sl_member *seg_find(const struct sl_fieldref_seg *s, const struct sl_value *obj)
{
    if (obj->type != SL_V_OBJECT) {
        return NULL;
    }
    struct sl_member *items = obj->u.o.items;
    size_t n = obj->u.o.len;
    /* The hint is shared by every thread using this reference: a stale one is a miss. */
    uint32_t *hint = (uint32_t *)&s->hint;  /* never in read-only memory: sl_fieldref_init's */
    uint32_t h = __atomic_load_n(hint, __ATOMIC_RELAXED);
    if (h < n && sl_member_is(&items[h], s->name, s->len, s->head)) {
        return &items[h];
    }
    for (size_t i = 0; i < n; i++) {
        if (sl_member_is(&items[i], s->name, s->len, s->head)) {
            __atomic_store_n(hint, (uint32_t)SL_MIN(i, (size_t)UINT32_MAX), __ATOMIC_RELAXED);
            return &items[i];
        }
    }
    return NULL;
}

void sl_fieldref_free(struct sl_fieldref *r)
{
    if (!r) {
        return;
    }
    free(r->text);
    free(r->segs);
    memset(r, 0, sizeof(*r));
}

struct sl_value *sl_fieldref_get(const struct sl_fieldref *r, const struct sl_value *root)
{
    if (!root || r->nsegs == 0) {
        return NULL;
    }
    const struct sl_value *cur = root;
    for (size_t i = 0; i < r->nsegs; i++) {
        struct sl_member *m = seg_find(&r->segs[i], cur);
        if (!m) {
            return NULL;
        }
        cur = &m->v;
    }
    return (struct sl_value *)cur;
}

struct sl_value *sl_fieldref_put(const struct sl_fieldref *r, struct sl_value *root)
{
    if (!root || r->nsegs == 0 || (root->type != SL_V_NULL && root->type != SL_V_OBJECT)) {
        return NULL;
    }
    struct sl_value *cur = root;
    for (size_t i = 0; i < r->nsegs; i++) {
        if (cur->type != SL_V_OBJECT) {
            sl_value_set_object(cur);  /* intermediate non-object: replaced */
        }
        struct sl_member *m = seg_find(&r->segs[i], cur);
        cur = &(m ? m : obj_append(cur, r->segs[i].name, r->segs[i].len))->v;
    }
    return cur;
}

int sl_fieldref_del(const struct sl_fieldref *r, struct sl_value *root)
{
    if (!root || r->nsegs == 0) {
        return SL_EINVAL;
    }
    struct sl_value *cur = root;
    for (size_t i = 0; i + 1 < r->nsegs; i++) {
        struct sl_member *m = seg_find(&r->segs[i], cur);
        if (!m) {
            return SL_ENOENT;
        }
        cur = &m->v;
    }
    struct sl_member *m = seg_find(&r->segs[r->nsegs - 1], cur);
    if (!m) {
        return SL_ENOENT;
    }
    return obj_remove(cur, m);
}
