/*
 * value_test.c - the event model (lib/value.c): value ownership, objects in
 * insertion order, field references in both syntaxes (and malformed ones),
 * and tags. Trees are compared through their compact JSON text.
 *
 * Arena trees (sl_json_parse_arena): every function applied to a tree parsed
 * into an arena and to its heap-parsed twin must give the same text, keep the
 * ownership flags true to where each buffer lives, and - under ASan/LSan -
 * neither free arena memory nor leak heap memory. A randomized test runs
 * thousands of mixed operations on heap and arena trees in lock step.
 */
#include "sluice/json.h"
#include "sluice/value.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static struct sl_buf g_out;

static const char *js(const struct sl_value *v)
{
    sl_buf_reset(&g_out);
    if (sl_json_write(&g_out, v, NULL) != 0) {
        return NULL;
    }
    return sl_buf_cstr(&g_out);
}

static void from_json(struct sl_value *v, const char *text)
{
    char err[128];
    if (sl_json_parse(text, strlen(text), v, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "bad test JSON %s: %s\n", text, err);
        abort();
    }
}

TEST(test_scalars_and_clear)
{
    struct sl_value v = {0};
    CHECK(v.type == SL_V_NULL);
    sl_value_set_bool(&v, true);
    CHECK(v.type == SL_V_BOOL && v.u.b);
    sl_value_set_int(&v, -5);
    CHECK(v.type == SL_V_INT && v.u.i == -5);
    sl_value_set_double(&v, 2.5);
    CHECK(v.type == SL_V_DOUBLE && v.u.d == 2.5);
    sl_value_set_cstr(&v, "abc");
    CHECK(v.type == SL_V_STRING);
    CHECK_MEM(v.u.s.ptr, v.u.s.len, "abc");
    CHECK_INT(v.u.s.ptr[3], 0);
    sl_value_set_str(&v, "a\0b", 3);  /* embedded NUL, still terminated */
    CHECK_INT(v.u.s.len, 3);
    CHECK(memcmp(v.u.s.ptr, "a\0b\0", 4) == 0);
    sl_value_set_str(&v, "xyz", 0);
    CHECK(v.type == SL_V_STRING && v.u.s.len == 0 && v.u.s.ptr[0] == 0);
    sl_value_set_cstr(&v, "hello");
    sl_value_set_str(&v, v.u.s.ptr + 1, 3);  /* from its own string */
    CHECK_MEM(v.u.s.ptr, v.u.s.len, "ell");
    sl_value_take_str(&v, sl_strdup("owned"), 5);
    CHECK_MEM(v.u.s.ptr, v.u.s.len, "owned");
    sl_value_set_cstr(&v, NULL);
    CHECK(v.type == SL_V_NULL);
    sl_value_set_str(&v, NULL, 4);
    CHECK(v.type == SL_V_STRING && v.u.s.len == 0);
    sl_value_set_null(&v);
    CHECK(v.type == SL_V_NULL);
    sl_value_clear(&v);
    sl_value_clear(&v);    /* clearing null is a no-op */
    sl_value_clear(NULL);  /* and so is NULL */
    sl_value_set_array(&v);
    CHECK(v.type == SL_V_ARRAY && v.u.a.len == 0);
    sl_value_set_object(&v);
    CHECK(v.type == SL_V_OBJECT && v.u.o.len == 0);
    CHECK_STR(js(&v), "{}");
    sl_value_clear(&v);
    CHECK(v.type == SL_V_NULL);
}

TEST(test_object_order_put_get_del)
{
    struct sl_value o = {0};
    sl_value_set_object(&o);
    const char *keys[] = {"zeta", "alpha", "mid", "@timestamp", "beta"};
    for (size_t i = 0; i < SL_ARRAY_LEN(keys); i++) {
        sl_value_set_int(sl_obj_putc(&o, keys[i]), (int64_t)i);
    }
    CHECK_STR(js(&o), "{\"zeta\":0,\"alpha\":1,\"mid\":2,\"@timestamp\":3,\"beta\":4}");
    /* put of an existing key returns its slot with the value kept, in place */
    struct sl_value *s = sl_obj_putc(&o, "mid");
    CHECK(s && s->type == SL_V_INT && s->u.i == 2);
    CHECK_INT(o.u.o.len, 5);
    CHECK(sl_obj_getc(&o, "alpha") && sl_obj_getc(&o, "alpha")->u.i == 1);
    CHECK(sl_obj_getc(&o, "alph") == NULL);
    CHECK(sl_obj_getc(&o, "alphaa") == NULL);
    CHECK(sl_obj_get(&o, "alphabet", 5) == sl_obj_getc(&o, "alpha"));  /* klen, not NUL */
    CHECK(sl_obj_getc(&o, NULL) == NULL);
    CHECK_INT(sl_obj_del(&o, "mid", 3), 0);
    CHECK_INT(sl_obj_del(&o, "mid", 3), SL_ENOENT);
    CHECK_INT(sl_obj_del(&o, "zeta", 4), 0);
    CHECK_INT(sl_obj_del(&o, "beta", 4), 0);
    CHECK_STR(js(&o), "{\"alpha\":1,\"@timestamp\":3}");
    sl_value_set_cstr(sl_obj_putc(&o, "new"), "v");
    CHECK_STR(js(&o), "{\"alpha\":1,\"@timestamp\":3,\"new\":\"v\"}");
    /* keys with an embedded NUL are distinct from their prefix */
    sl_value_set_int(sl_obj_put(&o, "k\0x", 3), 1);
    sl_value_set_int(sl_obj_put(&o, "k", 1), 2);
    CHECK(sl_obj_get(&o, "k\0x", 3)->u.i == 1);
    CHECK(sl_obj_get(&o, "k", 1)->u.i == 2);
    /* the empty key is a key */
    sl_value_set_int(sl_obj_put(&o, "", 0), 9);
    CHECK(sl_obj_getc(&o, "") && sl_obj_getc(&o, "")->u.i == 9);
    /* many members: growth keeps order */
    struct sl_value big = {0};
    for (int i = 0; i < 300; i++) {
        char k[16];
        snprintf(k, sizeof(k), "f%d", i);
        sl_value_set_int(sl_obj_putc(&big, k), i);  /* a null value becomes an object */
    }
    CHECK(big.type == SL_V_OBJECT);
    CHECK_INT(big.u.o.len, 300);
    CHECK_STR(big.u.o.items[299].key, "f299");
    CHECK(sl_obj_getc(&big, "f123") && sl_obj_getc(&big, "f123")->u.i == 123);
    sl_value_clear(&big);
    sl_value_clear(&o);
}

TEST(test_object_on_wrong_types)
{
    struct sl_value v = {0};
    sl_value_set_int(&v, 3);
    CHECK(sl_obj_getc(&v, "a") == NULL);
    CHECK(sl_obj_putc(&v, "a") == NULL);
    CHECK(v.type == SL_V_INT && v.u.i == 3);
    CHECK_INT(sl_obj_del(&v, "a", 1), SL_ENOENT);
    CHECK(sl_arr_push(&v) == NULL);
    CHECK(sl_obj_getc(NULL, "a") == NULL);
    CHECK(sl_obj_putc(NULL, "a") == NULL);
    CHECK(sl_arr_push(NULL) == NULL);
    sl_value_set_array(&v);
    CHECK(sl_obj_putc(&v, "a") == NULL);
    sl_value_clear(&v);
    CHECK(sl_arr_push(&v) != NULL);  /* null becomes an array */
    CHECK(v.type == SL_V_ARRAY && v.u.a.len == 1);
    sl_value_clear(&v);
}

TEST(test_array_push)
{
    struct sl_value a = {0};
    sl_value_set_array(&a);
    for (int i = 0; i < 100; i++) {
        struct sl_value *s = sl_arr_push(&a);
        CHECK(s && s->type == SL_V_NULL);
        sl_value_set_int(s, i);
    }
    CHECK_INT(a.u.a.len, 100);
    CHECK_INT(a.u.a.items[0].u.i, 0);
    CHECK_INT(a.u.a.items[99].u.i, 99);
    sl_value_set_array(&a);
    sl_value_set_cstr(sl_arr_push(&a), "x");
    sl_arr_push(&a);
    CHECK_STR(js(&a), "[\"x\",null]");
    sl_value_clear(&a);
}

TEST(test_copy_and_move)
{
    struct sl_value src = {0}, dst = {0};
    from_json(&src, "{\"a\":{\"b\":[1,\"two\",{\"c\":null}]},\"d\":2.5,\"e\":true}");
    sl_value_set_cstr(&dst, "old");  /* replaced */
    sl_value_copy(&dst, &src);
    CHECK_STR(js(&dst), "{\"a\":{\"b\":[1,\"two\",{\"c\":null}]},\"d\":2.5,\"e\":true}");
    /* deep: changing the copy leaves the source alone */
    sl_value_set_cstr(sl_field_put(&dst, "[a][b]"), "changed");
    CHECK_STR(js(&src), "{\"a\":{\"b\":[1,\"two\",{\"c\":null}]},\"d\":2.5,\"e\":true}");
    CHECK_STR(js(&dst), "{\"a\":{\"b\":\"changed\"},\"d\":2.5,\"e\":true}");
    /* copy onto itself, and from a child onto its parent */
    sl_value_copy(&dst, &dst);
    CHECK_STR(js(&dst), "{\"a\":{\"b\":\"changed\"},\"d\":2.5,\"e\":true}");
    sl_value_copy(&dst, sl_obj_getc(&dst, "a"));
    CHECK_STR(js(&dst), "{\"b\":\"changed\"}");

    /* move: src becomes null; a child can be moved onto its parent */
    sl_value_move(&dst, &src);
    CHECK(src.type == SL_V_NULL);
    CHECK_STR(js(&dst), "{\"a\":{\"b\":[1,\"two\",{\"c\":null}]},\"d\":2.5,\"e\":true}");
    sl_value_move(&dst, &dst);
    CHECK_STR(js(&dst), "{\"a\":{\"b\":[1,\"two\",{\"c\":null}]},\"d\":2.5,\"e\":true}");
    sl_value_move(&dst, sl_field_get(&dst, "[a][b]"));
    CHECK_STR(js(&dst), "[1,\"two\",{\"c\":null}]");
    sl_value_clear(&dst);
    sl_value_clear(&src);
}

TEST(test_field_get_both_syntaxes)
{
    struct sl_value ev = {0};
    from_json(&ev, "{\"message\":\"m\",\"@timestamp\":\"t\",\"a\":{\"b\":{\"c\":3},\"x.y\":4},"
                   "\"@metadata\":{\"index\":\"logs\"},\"n\":5,\"a.b\":\"flat\"}");
    struct sl_value *v;
    CHECK((v = sl_field_get(&ev, "message")) && v->type == SL_V_STRING);
    CHECK((v = sl_field_get(&ev, "[message]")) && v->type == SL_V_STRING);
    CHECK((v = sl_field_get(&ev, "@timestamp")) && v->type == SL_V_STRING &&
          v->u.s.ptr[0] == 't');
    CHECK(sl_field_get(&ev, "[a][b]") == sl_obj_getc(sl_obj_getc(&ev, "a"), "b"));
    CHECK(sl_field_get(&ev, "a.b") == sl_field_get(&ev, "[a][b]"));
    CHECK(sl_field_get(&ev, "a.b") != NULL);
    CHECK((v = sl_field_get(&ev, "[a][b][c]")) && v->type == SL_V_INT && v->u.i == 3);
    CHECK((v = sl_field_get(&ev, "a.b.c")) && v->type == SL_V_INT && v->u.i == 3);
    CHECK((v = sl_field_get(&ev, "[@metadata][index]")) && v->type == SL_V_STRING);
    CHECK((v = sl_field_get(&ev, "@metadata.index")) && v->type == SL_V_STRING);
    /* inside brackets a dot is part of the name */
    CHECK((v = sl_field_get(&ev, "[a][x.y]")) && v->type == SL_V_INT && v->u.i == 4);
    CHECK((v = sl_field_get(&ev, "[a.b]")) && v->type == SL_V_STRING &&
          v->u.s.ptr[0] == 'f');
    CHECK(sl_field_get(&ev, "a.x.y") == NULL);
    /* missing, or through a non-object */
    CHECK(sl_field_get(&ev, "nope") == NULL);
    CHECK(sl_field_get(&ev, "[a][nope]") == NULL);
    CHECK(sl_field_get(&ev, "[n][x]") == NULL);
    CHECK(sl_field_get(&ev, "message.x") == NULL);
    CHECK(sl_field_get(&ev, "[a][b][c][d]") == NULL);
    CHECK(sl_field_get(NULL, "a") == NULL);
    struct sl_value num = {0};
    sl_value_set_int(&num, 1);
    CHECK(sl_field_get(&num, "a") == NULL);
    sl_value_clear(&ev);
}

static const char *const k_malformed[] = {
    "", "[", "]", "[]", "[a", "[a]b", "[a][", "[a][]", "[a]]", "[a[b]]", "[[a]]", "a[b]",
    "a]", "a..b", ".a", "a.", ".", "..", "[a].b", "a.[b]", "[a]."};

TEST(test_field_malformed)
{
    struct sl_value ev = {0};
    from_json(&ev, "{\"a\":{\"b\":1},\"[a]\":2}");
    for (size_t i = 0; i < SL_ARRAY_LEN(k_malformed); i++) {
        const char *ref = k_malformed[i];
        if (sl_field_get(&ev, ref) != NULL) {
            fprintf(stderr, "  get accepted '%s'\n", ref);
            CHECK(0);
        }
        if (sl_field_put(&ev, ref) != NULL) {
            fprintf(stderr, "  put accepted '%s'\n", ref);
            CHECK(0);
        }
        if (sl_field_del(&ev, ref) != SL_EINVAL) {
            fprintf(stderr, "  del accepted '%s'\n", ref);
            CHECK(0);
        }
    }
    CHECK(sl_field_get(&ev, NULL) == NULL);
    CHECK(sl_field_put(&ev, NULL) == NULL);
    CHECK_INT(sl_field_del(&ev, NULL), SL_EINVAL);
    /* nothing was created along the way */
    CHECK_STR(js(&ev), "{\"a\":{\"b\":1},\"[a]\":2}");
    sl_value_clear(&ev);
}

TEST(test_field_put)
{
    struct sl_value ev = {0};
    /* a null root becomes an object; intermediates are created */
    struct sl_value *v = sl_field_put(&ev, "[a][b][c]");
    CHECK(v && v->type == SL_V_NULL);
    sl_value_set_int(v, 1);
    CHECK_STR(js(&ev), "{\"a\":{\"b\":{\"c\":1}}}");
    /* the dotted form reaches the same slot; existing values are kept */
    v = sl_field_put(&ev, "a.b.c");
    CHECK(v && v->type == SL_V_INT && v->u.i == 1);
    sl_value_set_cstr(sl_field_put(&ev, "a.d"), "x");
    sl_value_set_cstr(sl_field_put(&ev, "message"), "hi");
    sl_value_set_cstr(sl_field_put(&ev, "[@metadata][index]"), "logs");
    CHECK_STR(js(&ev), "{\"a\":{\"b\":{\"c\":1},\"d\":\"x\"},\"message\":\"hi\","
                       "\"@metadata\":{\"index\":\"logs\"}}");
    /* a non-object in the way is replaced by an object */
    v = sl_field_put(&ev, "message.text");
    CHECK(v && v->type == SL_V_NULL);
    sl_value_set_cstr(v, "hi");
    CHECK_STR(js(&ev), "{\"a\":{\"b\":{\"c\":1},\"d\":\"x\"},\"message\":{\"text\":\"hi\"},"
                       "\"@metadata\":{\"index\":\"logs\"}}");
    /* bracket names may hold dots */
    sl_value_set_int(sl_field_put(&ev, "[host.name]"), 7);
    CHECK(sl_obj_getc(&ev, "host.name") && sl_obj_getc(&ev, "host.name")->u.i == 7);
    /* a root that is not an object is refused */
    struct sl_value num = {0};
    sl_value_set_int(&num, 1);
    CHECK(sl_field_put(&num, "a") == NULL);
    CHECK(num.type == SL_V_INT);
    CHECK(sl_field_put(NULL, "a") == NULL);
    sl_value_clear(&ev);
}

TEST(test_field_del)
{
    struct sl_value ev = {0};
    from_json(&ev, "{\"a\":{\"b\":1,\"c\":2},\"d\":3,\"e\":{\"f\":{\"g\":4}},\"n\":5}");
    CHECK_INT(sl_field_del(&ev, "[a][b]"), 0);
    CHECK_INT(sl_field_del(&ev, "[a][b]"), SL_ENOENT);
    CHECK_INT(sl_field_del(&ev, "a.b"), SL_ENOENT);
    CHECK_INT(sl_field_del(&ev, "e.f.g"), 0);
    CHECK_INT(sl_field_del(&ev, "d"), 0);
    CHECK_INT(sl_field_del(&ev, "[d]"), SL_ENOENT);
    CHECK_INT(sl_field_del(&ev, "[x][y]"), SL_ENOENT);  /* missing parent */
    CHECK_INT(sl_field_del(&ev, "n.x"), SL_ENOENT);     /* parent is not an object */
    CHECK_STR(js(&ev), "{\"a\":{\"c\":2},\"e\":{\"f\":{}},\"n\":5}");
    CHECK_INT(sl_field_del(&ev, "a"), 0);
    CHECK_STR(js(&ev), "{\"e\":{\"f\":{}},\"n\":5}");
    CHECK_INT(sl_field_del(NULL, "a"), SL_EINVAL);
    sl_value_clear(&ev);
}

TEST(test_tags)
{
    struct sl_value ev = {0};
    sl_value_set_object(&ev);
    sl_value_set_cstr(sl_obj_putc(&ev, "message"), "m");
    sl_event_add_tag(&ev, "_grokparsefailure");
    CHECK_STR(js(&ev), "{\"message\":\"m\",\"tags\":[\"_grokparsefailure\"]}");
    sl_event_add_tag(&ev, "_grokparsefailure");  /* no duplicates */
    sl_event_add_tag(&ev, "b");
    CHECK_STR(js(&ev), "{\"message\":\"m\",\"tags\":[\"_grokparsefailure\",\"b\"]}");
    sl_event_add_tag(&ev, NULL);
    CHECK_STR(js(&ev), "{\"message\":\"m\",\"tags\":[\"_grokparsefailure\",\"b\"]}");

    /* a string "tags" becomes an array holding it first */
    from_json(&ev, "{\"tags\":\"old\",\"x\":1}");
    sl_event_add_tag(&ev, "new");
    CHECK_STR(js(&ev), "{\"tags\":[\"old\",\"new\"],\"x\":1}");
    from_json(&ev, "{\"tags\":\"same\"}");
    sl_event_add_tag(&ev, "same");
    CHECK_STR(js(&ev), "{\"tags\":[\"same\"]}");
    /* null tags, other scalars, arrays with non-strings */
    from_json(&ev, "{\"tags\":null}");
    sl_event_add_tag(&ev, "t");
    CHECK_STR(js(&ev), "{\"tags\":[\"t\"]}");
    from_json(&ev, "{\"tags\":5}");
    sl_event_add_tag(&ev, "t");
    CHECK_STR(js(&ev), "{\"tags\":[5,\"t\"]}");
    from_json(&ev, "{\"tags\":[1,\"t2\",{\"t\":1}]}");
    sl_event_add_tag(&ev, "t");
    sl_event_add_tag(&ev, "t2");
    CHECK_STR(js(&ev), "{\"tags\":[1,\"t2\",{\"t\":1},\"t\"]}");
    /* the empty tag and a zeroed event */
    sl_value_clear(&ev);
    sl_event_add_tag(&ev, "");
    sl_event_add_tag(&ev, "");
    CHECK_STR(js(&ev), "{\"tags\":[\"\"]}");
    /* not an event: left alone */
    sl_value_set_int(&ev, 1);
    sl_event_add_tag(&ev, "x");
    CHECK_STR(js(&ev), "1");
    sl_event_add_tag(NULL, "x");
    sl_value_clear(&ev);
}

/* ======== arena trees (sl_json_parse_arena): every function, heap twin alongside ======== */

static struct sl_arena g_arena, g_arena2;
static struct sl_buf g_out2;

static bool in_arenas(const void *p)
{
    return sl_arena_contains(&g_arena, p) || sl_arena_contains(&g_arena2, p);
}

/*
 * The invariant value.c relies on: a buffer is flagged SL_VF_ARENA exactly
 * when it lies in an arena (so what clearing frees is what the heap owns),
 * scalars carry no flag, and with heap_only nothing is flagged at all.
 * Returns the number of arena buffers, or -1 when the invariant is broken.
 */
static long owned(const struct sl_value *v, bool heap_only)
{
    long n = 0, k;
    bool fa = (v->flags & SL_VF_ARENA) != 0;
    if (heap_only && fa) {
        return -1;
    }
    switch (v->type) {
    case SL_V_STRING:
        if (fa != in_arenas(v->u.s.ptr) || v->u.s.ptr[v->u.s.len] != '\0') {
            return -1;
        }
        return fa;
    case SL_V_ARRAY:
        if (v->u.a.items ? fa != in_arenas(v->u.a.items) : fa) {
            return -1;
        }
        n = fa;
        for (size_t i = 0; i < v->u.a.len; i++) {
            if ((k = owned(&v->u.a.items[i], heap_only)) < 0) {
                return -1;
            }
            n += k;
        }
        return n;
    case SL_V_OBJECT:
        if (v->u.o.items ? fa != in_arenas(v->u.o.items) : fa) {
            return -1;
        }
        n = fa;
        for (size_t i = 0; i < v->u.o.len; i++) {
            const struct sl_member *m = &v->u.o.items[i];
            bool ka = (m->kflags & SL_VF_ARENA) != 0;
            if ((heap_only && ka) || ka != in_arenas(m->key) || m->key[m->klen] != '\0') {
                return -1;
            }
            if ((k = owned(&m->v, heap_only)) < 0) {
                return -1;
            }
            n += k + ka;
        }
        return n;
    default:
        return v->flags ? -1 : 0;
    }
}

static void from_json_arena(struct sl_value *v, const char *text, struct sl_arena *a)
{
    char err[128];
    if (sl_json_parse_arena(text, strlen(text), v, a, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "bad test JSON %s: %s\n", text, err);
        abort();
    }
}

/* One document parsed twice: h to the heap, a into g_arena. */
struct twin {
    struct sl_value h, a;
};

static void twin_parse(struct twin *t, const char *text)
{
    from_json(&t->h, text);
    from_json_arena(&t->a, text, &g_arena);
}

/* Runs the statements with V bound to the heap twin, then to the arena twin. */
#define BOTH(t, V, ...)                                                          \
    do {                                                                         \
        for (int t_i = 0; t_i < 2; t_i++) {                                      \
            struct sl_value *V = t_i ? &(t)->a : &(t)->h;                        \
            __VA_ARGS__;                                                         \
        }                                                                        \
    } while (0)

/* The JSON text both twins write, or "<differ>" (and why) when they do not
 * write the same or their ownership flags are wrong. */
static const char *twin_js(const struct twin *t)
{
    const char *h = js(&t->h);
    sl_buf_reset(&g_out2);
    sl_buf_append(&g_out2, h ? h : "(write failed)", strlen(h ? h : "(write failed)"));
    const char *hs = sl_buf_cstr(&g_out2);
    const char *a = js(&t->a);
    if (!h || !a || strcmp(hs, a) != 0) {
        fprintf(stderr, "heap:  %s\narena: %s\n", hs, a ? a : "(write failed)");
        return "<differ>";
    }
    if (owned(&t->h, true) < 0 || owned(&t->a, false) < 0) {
        fprintf(stderr, "ownership flags wrong for %s\n", hs);
        return "<differ>";
    }
    return hs;
}

static void twin_clear(struct twin *t)
{
    sl_value_clear(&t->h);
    sl_value_clear(&t->a);
    CHECK(t->a.type == SL_V_NULL && t->a.flags == 0);
}

/* Each test ends with the arena reset: a tree left pointing into it would be
 * caught by ASan (reset poisons the memory) the next time it is touched. */
static void arena_done(void)
{
    sl_arena_reset(&g_arena);
    sl_arena_reset(&g_arena2);
}

static const char k_doc[] =
    "{\"@timestamp\":\"2026-11-27T06:00:00.123Z\",\"message\":\"m\\u00e9\\n\",\"tags\":[\"a\"],"
    "\"log\":{\"file\":{\"path\":\"/p\"},\"offset\":12},\"arr\":[1,\"two\",{\"c\":null},[3]],"
    "\"e\":{},\"ea\":[],\"n\":2.5,\"b\":true}";

TEST(test_arena_parse_flags)
{
    struct twin t = {{0}, {0}};
    CHECK_INT(sizeof(struct sl_value), 32);
    twin_parse(&t, k_doc);
    CHECK_STR(twin_js(&t), "{\"@timestamp\":\"2026-11-27T06:00:00.123Z\",\"message\":"
                           "\"m\xC3\xA9\\n\",\"tags\":[\"a\"],\"log\":{\"file\":"
                           "{\"path\":\"/p\"},\"offset\":12},\"arr\":[1,\"two\","
                           "{\"c\":null},[3]],\"e\":{},\"ea\":[],\"n\":2.5,\"b\":true}");
    CHECK(t.a.flags & SL_VF_ARENA);
    CHECK(sl_arena_contains(&g_arena, t.a.u.o.items));
    CHECK(t.a.u.o.cap > t.a.u.o.len);  /* the root's spare room */
    for (size_t i = 0; i < t.a.u.o.len; i++) {
        CHECK(t.a.u.o.items[i].kflags & SL_VF_ARENA);
    }
    const struct sl_value *m = sl_obj_getc(&t.a, "message");
    CHECK(m && (m->flags & SL_VF_ARENA) && sl_arena_contains(&g_arena, m->u.s.ptr));
    const struct sl_value *arr = sl_obj_getc(&t.a, "arr");
    CHECK(arr && (arr->flags & SL_VF_ARENA) && arr->u.a.len == 4 && arr->u.a.cap == 4);
    CHECK(arr->u.a.items[0].flags == 0);  /* scalars have nothing to own */
    const struct sl_value *e = sl_obj_getc(&t.a, "e"), *ea = sl_obj_getc(&t.a, "ea");
    CHECK(e && e->type == SL_V_OBJECT && e->flags == 0 && e->u.o.items == NULL);
    CHECK(ea && ea->type == SL_V_ARRAY && ea->flags == 0 && ea->u.a.items == NULL);
    CHECK(owned(&t.a, false) > 20);
    CHECK_INT(owned(&t.h, true), 0);
    /* A scalar or string document, and parsing over an arena tree. */
    from_json_arena(&t.a, "\"just a string\"", &g_arena);
    CHECK(t.a.type == SL_V_STRING && (t.a.flags & SL_VF_ARENA));
    from_json_arena(&t.a, "42", &g_arena);
    CHECK(t.a.type == SL_V_INT && t.a.flags == 0);
    /* A NULL arena parses to the heap. */
    from_json_arena(&t.a, k_doc, NULL);
    CHECK_INT(owned(&t.a, true), 0);
    twin_clear(&t);
    arena_done();
}

TEST(test_arena_clear)
{
    struct twin t = {{0}, {0}};
    twin_parse(&t, k_doc);
    /* Heap children under arena nodes: clearing must free them (LSan) and
     * nothing else (ASan: an arena pointer given to free()). */
    BOTH(&t, v, sl_value_set_cstr(sl_field_put(v, "[log][file][path]"), "/heap/path");
         sl_value_set_cstr(sl_obj_putc(v, "added"), "heap string");
         sl_value_set_cstr(sl_arr_push(sl_obj_getc(v, "arr")), "pushed"));
    CHECK_STR(twin_js(&t), "{\"@timestamp\":\"2026-11-27T06:00:00.123Z\",\"message\":"
                           "\"m\xC3\xA9\\n\",\"tags\":[\"a\"],\"log\":{\"file\":{\"path\":"
                           "\"/heap/path\"},\"offset\":12},\"arr\":[1,\"two\",{\"c\":null},[3],"
                           "\"pushed\"],\"e\":{},\"ea\":[],\"n\":2.5,\"b\":true,\"added\":"
                           "\"heap string\"}");
    BOTH(&t, v, sl_value_clear(sl_obj_getc(v, "log")));  /* a subtree */
    CHECK_STR(twin_js(&t), "{\"@timestamp\":\"2026-11-27T06:00:00.123Z\",\"message\":"
                           "\"m\xC3\xA9\\n\",\"tags\":[\"a\"],\"log\":null,\"arr\":[1,\"two\","
                           "{\"c\":null},[3],\"pushed\"],\"e\":{},\"ea\":[],\"n\":2.5,\"b\":true,"
                           "\"added\":\"heap string\"}");
    twin_clear(&t);
    sl_value_clear(&t.a);  /* twice */
    CHECK_STR(twin_js(&t), "null");
    arena_done();
}

TEST(test_arena_setters)
{
    struct twin t = {{0}, {0}};
    twin_parse(&t, "{\"s\":\"arena string\",\"o\":{\"k\":\"v\",\"n\":{\"d\":[1]}},"
                   "\"a\":[\"x\",[\"y\"]],\"z\":0}");
    /* Every setter on an arena string, an arena object and an arena array. */
    const char *const targets[] = {"s", "o", "a"};
    for (size_t i = 0; i < SL_ARRAY_LEN(targets); i++) {
        const char *f = targets[i];
        BOTH(&t, v, sl_value_set_null(sl_obj_getc(v, f)));
        CHECK(strstr(twin_js(&t), "null") != NULL);
        twin_parse(&t, "{\"s\":\"arena string\",\"o\":{\"k\":\"v\",\"n\":{\"d\":[1]}},"
                       "\"a\":[\"x\",[\"y\"]],\"z\":0}");
        BOTH(&t, v, sl_value_set_bool(sl_obj_getc(v, f), true));
        CHECK(strstr(twin_js(&t), "true") != NULL);
        twin_parse(&t, "{\"s\":\"arena string\",\"o\":{\"k\":\"v\"},\"a\":[\"x\"],\"z\":0}");
        BOTH(&t, v, sl_value_set_int(sl_obj_getc(v, f), -7));
        CHECK(strstr(twin_js(&t), "-7") != NULL);
        twin_parse(&t, "{\"s\":\"arena string\",\"o\":{\"k\":\"v\"},\"a\":[\"x\"],\"z\":0}");
        BOTH(&t, v, sl_value_set_double(sl_obj_getc(v, f), 0.25));
        CHECK(strstr(twin_js(&t), "0.25") != NULL);
        twin_parse(&t, "{\"s\":\"arena string\",\"o\":{\"k\":\"v\"},\"a\":[\"x\"],\"z\":0}");
        BOTH(&t, v, sl_value_set_str(sl_obj_getc(v, f), "new\0x", 5));
        CHECK(strstr(twin_js(&t), "\"new\\u0000x\"") != NULL);
        twin_parse(&t, "{\"s\":\"arena string\",\"o\":{\"k\":\"v\"},\"a\":[\"x\"],\"z\":0}");
        BOTH(&t, v, sl_value_set_cstr(sl_obj_getc(v, f), "cstr"));
        CHECK(strstr(twin_js(&t), "\"cstr\"") != NULL);
        twin_parse(&t, "{\"s\":\"arena string\",\"o\":{\"k\":\"v\"},\"a\":[\"x\"],\"z\":0}");
        BOTH(&t, v, sl_value_take_str(sl_obj_getc(v, f), sl_strdup("taken"), 5));
        CHECK(strstr(twin_js(&t), "\"taken\"") != NULL);
        twin_parse(&t, "{\"s\":\"arena string\",\"o\":{\"k\":\"v\"},\"a\":[\"x\"],\"z\":0}");
        BOTH(&t, v, sl_value_set_object(sl_obj_getc(v, f)));
        CHECK(strstr(twin_js(&t), "{}") != NULL);
        twin_parse(&t, "{\"s\":\"arena string\",\"o\":{\"k\":\"v\"},\"a\":[\"x\"],\"z\":0}");
        BOTH(&t, v, sl_value_set_array(sl_obj_getc(v, f)));
        CHECK(strstr(twin_js(&t), "[]") != NULL);
        twin_parse(&t, "{\"s\":\"arena string\",\"o\":{\"k\":\"v\"},\"a\":[\"x\"],\"z\":0}");
        BOTH(&t, v, sl_value_set_cstr(sl_obj_getc(v, f), NULL));
        CHECK(strstr(twin_js(&t), "null") != NULL);
        twin_parse(&t, "{\"s\":\"arena string\",\"o\":{\"k\":\"v\"},\"a\":[\"x\"],\"z\":0}");
        BOTH(&t, v, sl_value_set_str(sl_obj_getc(v, f), NULL, 3));
        CHECK(strstr(twin_js(&t), "\"\"") != NULL);
        twin_parse(&t, "{\"s\":\"arena string\",\"o\":{\"k\":\"v\"},\"a\":[\"x\"],\"z\":0}");
    }
    /* From its own arena string: read before the old buffer is dropped. */
    BOTH(&t, v, struct sl_value *s = sl_obj_getc(v, "s"); sl_value_set_str(s, s->u.s.ptr + 6, 3));
    CHECK_STR(twin_js(&t), "{\"s\":\"str\",\"o\":{\"k\":\"v\"},\"a\":[\"x\"],\"z\":0}");
    CHECK(!(sl_obj_getc(&t.a, "s")->flags & SL_VF_ARENA));
    /* A string inside an arena array, and the arena root itself. */
    BOTH(&t, v, sl_value_set_cstr(&sl_obj_getc(v, "a")->u.a.items[0], "heap"));
    CHECK_STR(twin_js(&t), "{\"s\":\"str\",\"o\":{\"k\":\"v\"},\"a\":[\"heap\"],\"z\":0}");
    BOTH(&t, v, sl_value_set_cstr(v, "root"));
    CHECK_STR(twin_js(&t), "\"root\"");
    twin_parse(&t, "\"arena root string\"");
    BOTH(&t, v, sl_value_set_str(v, v->u.s.ptr, 5));
    CHECK_STR(twin_js(&t), "\"arena\"");
    twin_clear(&t);
    arena_done();
}

/*
 * The builders' additions (sl_obj_reserve, sl_obj_add_arena_key,
 * sl_value_set_arena_str): keys and strings the caller placed in the scope's
 * arena are taken as they are, flagged arena; a reserved vector does not move
 * again for as many additions; outside a scope the key is copied.
 */
TEST(test_arena_builders)
{
    struct sl_value ev = {0};
    from_json_arena(&ev, "{\"a\":1,\"b\":\"x\"}", &g_arena);
    struct sl_arena *prev = sl_value_set_arena(&g_arena);
    CHECK_INT(ev.u.o.len, 2);
    sl_obj_reserve(&ev, 5);
    CHECK(ev.u.o.cap >= 7);
    const struct sl_member *items = ev.u.o.items;
    char *blob = sl_arena_alloc(&g_arena, 32);
    memcpy(blob, "key1\0k2\0text\0", 13);
    for (int i = 0; i < 5; i++) {
        struct sl_value *v = sl_obj_add_arena_key(&ev, i % 2 ? blob + 5 : blob, i % 2 ? 2 : 4,
                                                  i % 2 ? sl_key_head("k2", 2)
                                                        : sl_key_head("key1", 4));
        CHECK(v != NULL && v->type == SL_V_NULL);
        sl_value_set_arena_str(v, blob + 8, 4);
        CHECK(v->flags & SL_VF_ARENA);
        CHECK(v->u.s.ptr == blob + 8);
    }
    CHECK(ev.u.o.items == items);  /* reserved: no growth */
    CHECK(ev.u.o.items[2].key == blob && (ev.u.o.items[2].kflags & SL_VF_ARENA));
    CHECK(sl_obj_getc(&ev, "k2") == &ev.u.o.items[3].v);  /* found by its head */
    /* Full vector: the out-of-line part grows it. */
    sl_obj_reserve(&ev, 0);
    while (ev.u.o.len < ev.u.o.cap) {
        CHECK(sl_obj_add_arena_key(&ev, blob, 4, sl_key_head("key1", 4)) != NULL);
    }
    CHECK(sl_obj_add_arena_key(&ev, blob + 5, 2, sl_key_head("k2", 2)) != NULL);
    CHECK(ev.u.o.len > 7 && ev.u.o.cap >= ev.u.o.len);
    /* Over an arena string and an object: replaced, nothing freed that is arena. */
    sl_value_set_arena_str(sl_obj_getc(&ev, "b"), blob, 4);
    struct sl_value *a = sl_obj_getc(&ev, "a");
    sl_value_set_object(a);
    sl_value_set_cstr(sl_obj_putc(a, "heap"), "h");
    sl_value_set_arena_str(a, blob + 5, 2);
    CHECK_STR(js(a), "\"k2\"");
    /* A null value becomes an object; anything else is no object to add to. */
    struct sl_value n = {0}, i7 = {.type = SL_V_INT, .u.i = 7};
    CHECK(sl_obj_add_arena_key(&n, blob, 4, sl_key_head("key1", 4)) != NULL);
    CHECK_STR(js(&n), "{\"key1\":null}");
    CHECK(sl_obj_add_arena_key(&i7, blob, 4, sl_key_head("key1", 4)) == NULL);
    sl_obj_reserve(&i7, 3);
    CHECK(i7.type == SL_V_INT);
    sl_value_set_arena(prev);
    /* Outside a scope the out-of-line part copies the key. */
    struct sl_value h = {0};
    sl_value_set_object(&h);
    struct sl_value *hv = sl_obj_add_arena_key_slow(&h, blob, 4, sl_key_head("key1", 4));
    CHECK(hv != NULL && h.u.o.items[0].key != blob && !(h.u.o.items[0].kflags & SL_VF_ARENA));
    CHECK_STR(js(&h), "{\"key1\":null}");
    sl_value_clear(&h);
    sl_value_clear(&n);
    sl_value_clear(&ev);
    arena_done();
}

TEST(test_arena_obj_put_get)
{
    struct twin t = {{0}, {0}};
    twin_parse(&t, "{\"a\":1,\"nested\":{\"x\":\"1\",\"y\":\"2\"},\"k\\u00e9y\":\"esc\"}");
    CHECK_INT(t.a.u.o.cap, 3 + 4);
    /* get/getc on arena keys (one decoded from an escape). */
    BOTH(&t, v, CHECK(sl_obj_getc(v, "a") && sl_obj_getc(v, "a")->u.i == 1);
         CHECK(sl_obj_get(v, "k\xC3\xA9y", 4) != NULL); CHECK(sl_obj_get(v, "k", 1) == NULL);
         CHECK(sl_obj_getc(sl_obj_getc(v, "nested"), "y") != NULL));
    /* put on an existing arena key keeps value and key. */
    BOTH(&t, v, struct sl_value *s = sl_obj_putc(v, "a"); CHECK(s && s->u.i == 1));
    CHECK(t.a.u.o.items[0].kflags & SL_VF_ARENA);
    /* New keys in the root's spare room: vector stays in the arena, keys are heap. */
    BOTH(&t, v, for (int i = 0; i < 4; i++) {
        char key[16];
        snprintf(key, sizeof(key), "r%d", i);
        sl_value_set_int(sl_obj_putc(v, key), i);
    });
    CHECK(t.a.flags & SL_VF_ARENA);
    CHECK_INT(t.a.u.o.len, 7);
    CHECK(!(t.a.u.o.items[6].kflags & SL_VF_ARENA));
    CHECK_STR(twin_js(&t), "{\"a\":1,\"nested\":{\"x\":\"1\",\"y\":\"2\"},\"k\xC3\xA9y\":\"esc\","
                           "\"r0\":0,\"r1\":1,\"r2\":2,\"r3\":3}");
    /* One more: the vector moves to the heap; the arena keys move along. */
    BOTH(&t, v, sl_value_set_cstr(sl_obj_put(v, "r4xx", 2), "grown"));
    CHECK(!(t.a.flags & SL_VF_ARENA) && !sl_arena_contains(&g_arena, t.a.u.o.items));
    CHECK(t.a.u.o.items[0].kflags & SL_VF_ARENA);
    CHECK(sl_arena_contains(&g_arena, t.a.u.o.items[0].key));
    CHECK_STR(twin_js(&t), "{\"a\":1,\"nested\":{\"x\":\"1\",\"y\":\"2\"},\"k\xC3\xA9y\":\"esc\","
                           "\"r0\":0,\"r1\":1,\"r2\":2,\"r3\":3,\"r4\":\"grown\"}");
    /* A nested arena object has no spare room: the first put moves it. */
    BOTH(&t, v, sl_value_set_int(sl_obj_putc(sl_obj_getc(v, "nested"), "z"), 3));
    CHECK(!(sl_obj_getc(&t.a, "nested")->flags & SL_VF_ARENA));
    /* Many more, then a replacement of an arena-keyed member's value. */
    BOTH(&t, v, struct sl_value *n = sl_obj_getc(v, "nested"); for (int i = 0; i < 40; i++) {
        char key[16];
        snprintf(key, sizeof(key), "n%d", i);
        sl_value_set_int(sl_obj_putc(n, key), i);
    } sl_value_set_cstr(sl_obj_putc(n, "x"), "replaced"));
    CHECK(strstr(twin_js(&t), "\"nested\":{\"x\":\"replaced\",\"y\":\"2\",\"z\":3,\"n0\":0,") !=
          NULL);
    /* Wrong types, a null that becomes an object, NULL arguments. */
    BOTH(&t, v, CHECK(sl_obj_putc(sl_obj_getc(v, "k\xC3\xA9y"), "x") == NULL);
         CHECK(sl_obj_putc(sl_obj_getc(v, "a"), "x") == NULL);
         CHECK(sl_obj_putc(v, NULL) == NULL); CHECK(sl_obj_put(v, NULL, 1) == NULL));
    twin_parse(&t, "{\"nul\":null,\"o\":{}}");
    BOTH(&t, v, sl_value_set_int(sl_obj_putc(sl_obj_getc(v, "nul"), "k"), 1);
         sl_value_set_int(sl_obj_putc(sl_obj_getc(v, "o"), "k"), 2));
    CHECK_STR(twin_js(&t), "{\"nul\":{\"k\":1},\"o\":{\"k\":2}}");
    /* The empty key, parsed and put. */
    twin_parse(&t, "{\"\":1}");
    BOTH(&t, v, CHECK(sl_obj_get(v, "", 0) != NULL); sl_value_set_int(sl_obj_put(v, "", 0), 2));
    CHECK_STR(twin_js(&t), "{\"\":2}");
    twin_clear(&t);
    arena_done();
}

TEST(test_arena_obj_del)
{
    struct twin t = {{0}, {0}};
    twin_parse(&t, "{\"a\":\"1\",\"b\":{\"x\":[1]},\"c\":\"3\",\"d\":4,\"e\":\"5\"}");
    /* In place: first, middle, last - the vector stays in the arena. */
    BOTH(&t, v, CHECK_INT(sl_obj_del(v, "a", 1), 0); CHECK_INT(sl_obj_del(v, "c", 1), 0);
         CHECK_INT(sl_obj_del(v, "e", 1), 0); CHECK_INT(sl_obj_del(v, "e", 1), SL_ENOENT));
    CHECK(t.a.flags & SL_VF_ARENA);
    CHECK_STR(twin_js(&t), "{\"b\":{\"x\":[1]},\"d\":4}");
    /* Re-adding appends within capacity (heap key), then deleting that one. */
    BOTH(&t, v, sl_value_set_cstr(sl_obj_putc(v, "a"), "again"));
    CHECK(t.a.flags & SL_VF_ARENA);
    CHECK_STR(twin_js(&t), "{\"b\":{\"x\":[1]},\"d\":4,\"a\":\"again\"}");
    BOTH(&t, v, CHECK_INT(sl_obj_del(v, "a", 1), 0); CHECK_INT(sl_obj_del(v, "b", 1), 0));
    CHECK_STR(twin_js(&t), "{\"d\":4}");
    /* Deleting arena keys after the vector moved to the heap. */
    twin_parse(&t, "{\"k1\":1,\"k2\":{\"in\":\"s\"},\"k3\":3}");
    BOTH(&t, v, struct sl_value *k2 = sl_obj_getc(v, "k2"); sl_value_set_int(sl_obj_putc(k2, "n"), 1);
         CHECK_INT(sl_obj_del(k2, "in", 2), 0); CHECK_INT(sl_obj_del(k2, "n", 1), 0);
         for (int i = 0; i < 12; i++) {
             char key[16];
             snprintf(key, sizeof(key), "p%d", i);
             sl_obj_putc(v, key);
         } CHECK_INT(sl_obj_del(v, "k1", 2), 0);
         CHECK_INT(sl_obj_del(v, "k3", 2), 0));
    CHECK(!(t.a.flags & SL_VF_ARENA));
    CHECK_STR(twin_js(&t), "{\"k2\":{},\"p0\":null,\"p1\":null,\"p2\":null,\"p3\":null,\"p4\":null,"
                           "\"p5\":null,\"p6\":null,\"p7\":null,\"p8\":null,\"p9\":null,"
                           "\"p10\":null,\"p11\":null}");
    /* Not an object, or nothing there. */
    BOTH(&t, v, CHECK_INT(sl_obj_del(sl_obj_getc(v, "p0"), "x", 1), SL_ENOENT);
         CHECK_INT(sl_obj_del(NULL, "x", 1), SL_ENOENT));
    twin_clear(&t);
    arena_done();
}

TEST(test_arena_arr_push)
{
    struct twin t = {{0}, {0}};
    twin_parse(&t, "{\"a\":[\"s\",{\"k\":\"v\"},[\"in\"]],\"e\":[],\"o\":{}}");
    struct sl_value *aa = sl_obj_getc(&t.a, "a");
    CHECK(aa->u.a.cap == 3 && (aa->flags & SL_VF_ARENA));
    BOTH(&t, v, sl_value_set_cstr(sl_arr_push(sl_obj_getc(v, "a")), "4th"));
    aa = sl_obj_getc(&t.a, "a");
    CHECK(!(aa->flags & SL_VF_ARENA) && aa->u.a.cap > 4);
    CHECK(aa->u.a.items[0].flags & SL_VF_ARENA);  /* the elements moved, still arena */
    BOTH(&t, v, struct sl_value *a = sl_obj_getc(v, "a"); for (int i = 0; i < 30; i++) {
        sl_value_set_int(sl_arr_push(a), i);
    } sl_value_set_cstr(sl_arr_push(&a->u.a.items[2]), "nested push");
         sl_value_set_int(sl_arr_push(sl_obj_getc(v, "e")), 1);
         CHECK(sl_arr_push(sl_obj_getc(v, "o")) == NULL);
         CHECK(sl_arr_push(&a->u.a.items[0]) == NULL); CHECK(sl_arr_push(NULL) == NULL));
    const char *out = twin_js(&t);
    CHECK(strncmp(out, "{\"a\":[\"s\",{\"k\":\"v\"},[\"in\",\"nested push\"],\"4th\",0,1,2,", 52) == 0);
    CHECK(strstr(out, ",29],\"e\":[1],\"o\":{}}") != NULL);
    /* An arena array at the root. */
    twin_parse(&t, "[[1],[2]]");
    BOTH(&t, v, sl_arr_push(v); sl_value_set_int(sl_arr_push(&v->u.a.items[1]), 3));
    CHECK_STR(twin_js(&t), "[[1],[2,3],null]");
    twin_clear(&t);
    arena_done();
}

TEST(test_arena_copy)
{
    struct twin t = {{0}, {0}};
    struct sl_value copy = {0};
    twin_parse(&t, k_doc);
    /* A copy of an arena tree is all heap, and outlives the arena. */
    sl_value_copy(&copy, &t.a);
    CHECK_INT(owned(&copy, true), 0);
    /* Copies within the tree: onto itself, a child onto its parent, a parent
     * into its child, arena onto arena. */
    BOTH(&t, v, sl_value_copy(v, v); sl_value_copy(sl_obj_getc(v, "n"), sl_obj_getc(v, "log"));
         sl_value_copy(sl_field_get(v, "[log][file]"), v);
         sl_value_copy(sl_obj_getc(v, "tags"), &sl_obj_getc(v, "arr")->u.a.items[3]));
    CHECK(strstr(twin_js(&t), "\"tags\":[3],\"log\":{\"file\":{\"@timestamp\":") != NULL);
    BOTH(&t, v, sl_value_copy(v, sl_field_get(v, "[log][file]")));
    CHECK(strncmp(twin_js(&t), "{\"@timestamp\":\"2026-11-27T06:00:00.123Z\",\"message\":", 50) ==
          0);
    /* Heap onto arena nodes. */
    BOTH(&t, v, sl_value_copy(sl_obj_getc(v, "arr"), &copy));
    twin_js(&t);
    twin_clear(&t);
    arena_done();
    /* The arena is reset (poisoned under ASan): the copy must not care. */
    CHECK_STR(sl_obj_getc(&copy, "message")->u.s.ptr, "m\xC3\xA9\n");
    CHECK(strncmp(js(&copy), "{\"@timestamp\":\"2026-11-27T06:00:00.123Z\",\"message\":", 50) == 0);
    sl_value_clear(&copy);
}

TEST(test_arena_move)
{
    struct twin t = {{0}, {0}};
    struct sl_value heap = {0}, heap2 = {0};
    twin_parse(&t, k_doc);
    /* Arena subtree into a heap tree: the flags travel with it. */
    from_json(&heap, "{\"h\":\"heap\",\"deep\":{\"x\":[\"y\"]}}");
    sl_value_move(sl_obj_putc(&heap, "log"), sl_obj_getc(&t.a, "log"));
    CHECK(sl_obj_getc(&t.a, "log")->type == SL_V_NULL);
    CHECK(sl_obj_getc(&heap, "log")->flags & SL_VF_ARENA);
    CHECK(owned(&heap, false) > 0);
    CHECK_STR(js(&heap), "{\"h\":\"heap\",\"deep\":{\"x\":[\"y\"]},\"log\":{\"file\":{\"path\":"
                         "\"/p\"},\"offset\":12}}");
    /* Heap subtree into the arena tree, and arena leaf onto a heap slot. */
    sl_value_move(sl_obj_getc(&t.a, "n"), sl_obj_getc(&heap, "deep"));
    sl_value_move(sl_obj_getc(&heap, "h"), sl_obj_getc(&t.a, "message"));
    CHECK(sl_obj_getc(&heap, "h")->flags & SL_VF_ARENA);
    CHECK(owned(&t.a, false) > 0 && owned(&heap, false) > 0);
    CHECK(strstr(js(&t.a), "\"n\":{\"x\":[\"y\"]}") != NULL);
    CHECK_STR(js(&heap), "{\"h\":\"m\xC3\xA9\\n\",\"deep\":null,\"log\":{\"file\":{\"path\":"
                         "\"/p\"},\"offset\":12}}");
    /* Moving a whole arena root into a heap value, then onto itself and from a child. */
    sl_value_move(&heap2, &t.a);
    CHECK(t.a.type == SL_V_NULL && t.a.flags == 0 && (heap2.flags & SL_VF_ARENA));
    sl_value_move(&heap2, &heap2);
    sl_value_move(&heap2, sl_obj_getc(&heap2, "arr"));
    CHECK_STR(js(&heap2), "[1,\"two\",{\"c\":null},[3]]");
    CHECK(heap2.flags & SL_VF_ARENA);
    /* Into an arena array past its capacity, and in the twins for the text. */
    twin_parse(&t, "{\"x\":[\"a\",\"b\"],\"y\":{\"z\":\"arena\"}}");
    BOTH(&t, v, struct sl_value tmp = {0}; sl_value_move(&tmp, sl_obj_getc(v, "y"));
         sl_obj_del(v, "y", 1); sl_value_move(sl_arr_push(sl_obj_getc(v, "x")), &tmp);
         sl_value_move(sl_arr_push(sl_obj_getc(v, "x")), &sl_obj_getc(v, "x")->u.a.items[0]));
    CHECK_STR(twin_js(&t), "{\"x\":[null,\"b\",{\"z\":\"arena\"},\"a\"]}");
    /* Between two arenas. */
    struct sl_value other = {0};
    from_json_arena(&other, "{\"from2\":\"second arena\"}", &g_arena2);
    sl_value_move(sl_obj_putc(&t.a, "o2"), &other);
    CHECK(owned(&t.a, false) > 0);
    CHECK(sl_arena_contains(&g_arena2, sl_field_get(&t.a, "[o2][from2]")->u.s.ptr));
    /* Everything holding arena memory is cleared before the reset. */
    sl_value_clear(&heap);
    sl_value_clear(&heap2);
    twin_clear(&t);
    arena_done();
}

TEST(test_arena_fields)
{
    struct twin t = {{0}, {0}};
    twin_parse(&t, "{\"message\":\"m\",\"a\":{\"b\":{\"c\":3},\"x.y\":4},\"s\":\"str\","
                   "\"a.b\":\"flat\"}");
    BOTH(&t, v, struct sl_value *r;
         CHECK((r = sl_field_get(v, "[a][b][c]")) && r->u.i == 3);
         CHECK((r = sl_field_get(v, "a.b.c")) && r->u.i == 3);
         CHECK((r = sl_field_get(v, "[a][x.y]")) && r->u.i == 4);
         CHECK((r = sl_field_get(v, "[a.b]")) && r->type == SL_V_STRING);
         CHECK(sl_field_get(v, "[a][zz]") == NULL); CHECK(sl_field_get(v, "a..b") == NULL));
    /* Put: an existing arena path, new members in arena objects, intermediates
     * created, an arena string intermediate replaced by an object. */
    BOTH(&t, v, sl_value_set_int(sl_field_put(v, "[a][b][c]"), 30);
         sl_value_set_int(sl_field_put(v, "a.b.d"), 4);
         sl_value_set_cstr(sl_field_put(v, "[new][deep][er]"), "n");
         sl_value_set_int(sl_field_put(v, "[s][inner]"), 1);
         CHECK(sl_field_put(v, "[bad") == NULL));
    CHECK_STR(twin_js(&t), "{\"message\":\"m\",\"a\":{\"b\":{\"c\":30,\"d\":4},\"x.y\":4},"
                           "\"s\":{\"inner\":1},\"a.b\":\"flat\",\"new\":{\"deep\":{\"er\":\"n\"}}}");
    /* Delete: nested arena members in place, a whole arena subtree, misses. */
    BOTH(&t, v, CHECK_INT(sl_field_del(v, "[a][x.y]"), 0); CHECK_INT(sl_field_del(v, "a.b.c"), 0);
         CHECK_INT(sl_field_del(v, "[a.b]"), 0); CHECK_INT(sl_field_del(v, "message"), 0);
         CHECK_INT(sl_field_del(v, "[message]"), SL_ENOENT);
         CHECK_INT(sl_field_del(v, "[zz][y]"), SL_ENOENT);
         CHECK_INT(sl_field_del(v, "a."), SL_EINVAL));
    CHECK_STR(twin_js(&t), "{\"a\":{\"b\":{\"d\":4}},\"s\":{\"inner\":1},\"new\":{\"deep\":{\"er\":"
                           "\"n\"}}}");
    BOTH(&t, v, CHECK_INT(sl_field_del(v, "a"), 0));
    CHECK_STR(twin_js(&t), "{\"s\":{\"inner\":1},\"new\":{\"deep\":{\"er\":\"n\"}}}");
    /* Put at an arena root that is not an object. */
    twin_parse(&t, "[\"arr\"]");
    BOTH(&t, v, CHECK(sl_field_put(v, "x") == NULL); CHECK(sl_field_get(v, "x") == NULL));
    twin_clear(&t);
    arena_done();
}

TEST(test_arena_tags)
{
    static const char *const docs[] = {
        "{\"message\":\"m\",\"tags\":[\"a\",\"b\"]}", "{\"tags\":\"old\",\"x\":1}",
        "{\"tags\":\"same\"}", "{\"tags\":null}", "{\"tags\":5}",
        "{\"tags\":[1,\"t2\",{\"t\":1}]}", "{\"tags\":[]}", "{}", "{\"a\":1,\"b\":2,\"c\":3}",
    };
    static const char *const want[] = {
        "{\"message\":\"m\",\"tags\":[\"a\",\"b\",\"same\",\"t\",\"t2\"]}",
        "{\"tags\":[\"old\",\"same\",\"t\",\"t2\"],\"x\":1}",
        "{\"tags\":[\"same\",\"t\",\"t2\"]}",
        "{\"tags\":[\"same\",\"t\",\"t2\"]}",
        "{\"tags\":[5,\"same\",\"t\",\"t2\"]}",
        "{\"tags\":[1,\"t2\",{\"t\":1},\"same\",\"t\"]}",
        "{\"tags\":[\"same\",\"t\",\"t2\"]}",
        "{\"tags\":[\"same\",\"t\",\"t2\"]}",
        "{\"a\":1,\"b\":2,\"c\":3,\"tags\":[\"same\",\"t\",\"t2\"]}",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(docs); i++) {
        struct twin t = {{0}, {0}};
        twin_parse(&t, docs[i]);
        BOTH(&t, v, sl_event_add_tag(v, "same"); sl_event_add_tag(v, "t"); sl_event_add_tag(v, "t2");
             sl_event_add_tag(v, "t"); sl_event_add_tag(v, NULL));
        CHECK_STR(twin_js(&t), want[i]);
        twin_clear(&t);
    }
    arena_done();
}

/* ---- randomized: the same mutations on heap and arena trees, in lock step ---- */

enum { NTREES = 3, MAXPATH = 8 };

/* World 0 is all heap. In world 1, tree 0 is parsed into g_arena, tree 1 to
 * the heap, tree 2 into g_arena2; moves and copies then mix them freely. */
struct world {
    struct sl_value t[NTREES];
    uint64_t trace;  /* what lookups returned, folded */
};

struct path {
    unsigned tree, n;
    size_t idx[MAXPATH];
};

struct op {
    unsigned kind, key, str, ref, tag;
    int64_t num;
    struct path p, q;
    struct sl_buf text;  /* a document for the parse operations */
};

static uint64_t g_rng;

static unsigned rnd(unsigned n)
{
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)((g_rng >> 33) % n);
}

static const char *const k_keys[] = {"a", "b", "c", "tags", "@timestamp", "x.y", "k\xC3\xA9",
                                     "", "message", "deep"};
static const char *const k_raw[] = {"", "s", "hello world", "caf\xC3\xA9", "bad\xFF",
                                    "with \"quote\", \\ and \n", "a string long enough to "
                                    "be worth copying more than once"};
static const char *const k_json_str[] = {"\"\"", "\"plain\"", "\"esc\\n\\t\\\"q\\\"\"",
                                         "\"caf\\u00e9\"", "\"\\ud83d\\ude00\"", "\"bad\xFF utf8\"",
                                         "\"a fairly long string, to be copied around a bit\""};
static const char *const k_refs[] = {"a", "b", "[a][b]", "a.b", "[tags]", "x.y", "[x.y]",
                                     "[deep][a][b][c]", "message", "bad..ref", "[a]b"};
static const char *const k_tags[] = {"t1", "t2", "", "plain"};

static void gen_json(struct sl_buf *b, unsigned depth)
{
    switch (rnd(depth >= 4 ? 6 : 10)) {
    case 0:
        sl_buf_append(b, "null", 4);
        break;
    case 1:
    {
        const char *lit = rnd(2) ? "true" : "false";
        sl_buf_append(b, lit, strlen(lit));
        break;
    }
    case 2: {
        char num[32];
        int n = snprintf(num, sizeof(num), "%d", (int)rnd(2000000) - 1000000);
        sl_buf_append(b, num, (size_t)n);
        break;
    }
    case 3:
    {
        const char *d = rnd(2) ? "2.5" : "-0.125";
        sl_buf_append(b, d, strlen(d));
        break;
    }
    case 4:
    case 5: {
        const char *s = k_json_str[rnd(SL_ARRAY_LEN(k_json_str))];
        sl_buf_append(b, s, strlen(s));
        break;
    }
    case 6:
    case 7:
    case 8: {
        unsigned n = rnd(7);
        sl_buf_putc(b, '{');
        for (unsigned i = 0; i < n; i++) {
            if (i) {
                sl_buf_putc(b, ',');
            }
            const char *k = k_keys[rnd(SL_ARRAY_LEN(k_keys))];
            sl_json_put_str(b, k, strlen(k));  /* duplicates happen: the last one wins */
            sl_buf_putc(b, ':');
            gen_json(b, depth + 1);
        }
        sl_buf_putc(b, '}');
        break;
    }
    default: {
        unsigned n = rnd(6);
        sl_buf_putc(b, '[');
        for (unsigned i = 0; i < n; i++) {
            if (i) {
                sl_buf_putc(b, ',');
            }
            gen_json(b, depth + 1);
        }
        sl_buf_putc(b, ']');
        break;
    }
    }
}

static size_t nchildren(const struct sl_value *v)
{
    return v->type == SL_V_OBJECT ? v->u.o.len : v->type == SL_V_ARRAY ? v->u.a.len : 0;
}

static struct sl_value *child(const struct sl_value *v, size_t i)
{
    return v->type == SL_V_OBJECT ? &v->u.o.items[i].v : &v->u.a.items[i];
}

/* A random node of world w (both worlds have the same shape). */
static void random_path(const struct world *w, struct path *p)
{
    p->tree = rnd(NTREES);
    p->n = 0;
    const struct sl_value *v = &w->t[p->tree];
    while (p->n < MAXPATH && rnd(4) != 0) {
        size_t n = nchildren(v);
        if (!n) {
            break;
        }
        size_t i = rnd((unsigned)n);
        p->idx[p->n++] = i;
        v = child(v, i);
    }
}

static struct sl_value *resolve(struct world *w, const struct path *p)
{
    struct sl_value *v = &w->t[p->tree];
    for (unsigned i = 0; i < p->n; i++) {
        v = child(v, p->idx[i]);
    }
    return v;
}

/* Whether a is b or one of its ancestors. */
static bool is_prefix(const struct path *a, const struct path *b)
{
    if (a->tree != b->tree || a->n > b->n) {
        return false;
    }
    for (unsigned i = 0; i < a->n; i++) {
        if (a->idx[i] != b->idx[i]) {
            return false;
        }
    }
    return true;
}

static struct sl_arena *arena_of(unsigned world, unsigned tree)
{
    if (world == 0 || tree == 1) {
        return NULL;
    }
    return tree == 0 ? &g_arena : &g_arena2;
}

enum { OP_KINDS = 27 };

static void apply(struct world *w, unsigned wi, const struct op *op)
{
    struct sl_value *v = resolve(w, &op->p);
    const char *key = k_keys[op->key];
    const char *raw = k_raw[op->str];
    switch (op->kind) {
    case 0:
        sl_value_set_null(v);
        break;
    case 1:
        sl_value_set_bool(v, op->num & 1);
        break;
    case 2:
        sl_value_set_int(v, op->num);
        break;
    case 3:
        sl_value_set_double(v, (double)op->num / 8);
        break;
    case 4:
        sl_value_set_str(v, raw, strlen(raw));
        break;
    case 5:
        if (v->type == SL_V_STRING && v->u.s.len > 0) {
            sl_value_set_str(v, v->u.s.ptr + 1, v->u.s.len - 1);  /* from itself */
        }
        break;
    case 6:
        sl_value_set_cstr(v, raw);
        break;
    case 7:
        sl_value_take_str(v, sl_strdup(raw), strlen(raw));
        break;
    case 8:
        sl_value_set_object(v);
        break;
    case 9:
        sl_value_set_array(v);
        break;
    case 10:
    case 11: {
        struct sl_value *s = op->kind == 10 ? sl_obj_put(v, key, strlen(key)) : sl_obj_putc(v, key);
        if (s && (op->num & 1)) {
            sl_value_set_cstr(s, raw);
        }
        break;
    }
    case 12:
        (void)sl_obj_del(v, key, strlen(key));
        break;
    case 13:
        if (v->type == SL_V_OBJECT && v->u.o.len) {
            const struct sl_member *m = &v->u.o.items[(size_t)op->num % v->u.o.len];
            char k[64];
            snprintf(k, sizeof(k), "%s", m->key);
            CHECK_INT(sl_obj_del(v, k, m->klen), 0);
        }
        break;
    case 14:
    case 15:
        for (int i = 0; i < (op->kind == 14 ? 1 : 9); i++) {
            struct sl_value *s = sl_arr_push(v);
            if (s && (op->num & 1)) {
                sl_value_set_cstr(s, raw);
            }
        }
        break;
    case 16: {
        struct sl_value *s = sl_field_put(v, k_refs[op->ref]);
        if (s) {
            sl_value_set_int(s, op->num);
        }
        break;
    }
    case 17:
        w->trace = w->trace * 31 + (uint64_t)(sl_field_del(v, k_refs[op->ref]) + 10);
        break;
    case 18: {
        const struct sl_value *r = sl_field_get(v, k_refs[op->ref]);
        w->trace = w->trace * 31 + (r ? (uint64_t)r->type + 1 : 0);
        break;
    }
    case 19:
        sl_event_add_tag(v, k_tags[op->tag]);
        break;
    case 20:
        sl_value_copy(v, resolve(w, &op->q));  /* either may contain the other */
        break;
    case 21:
        /* A value cannot move into its own descendant; anything else can. */
        if (!is_prefix(&op->q, &op->p) || op->q.n == op->p.n) {
            sl_value_move(v, resolve(w, &op->q));
        }
        break;
    case 22: {
        /* Into a new or existing member: put first (it may move the vector),
         * then find the source, which must not be an ancestor of the slot. */
        struct sl_value *s = sl_obj_put(v, key, strlen(key));
        if (!s) {
            break;
        }
        struct path sp = op->p;
        if (sp.n == MAXPATH) {
            break;
        }
        sp.idx[sp.n++] = (size_t)((const char *)s - (const char *)v->u.o.items) /
                         sizeof(struct sl_member);
        if (!is_prefix(&op->q, &sp)) {
            sl_value_move(s, resolve(w, &op->q));
        }
        break;
    }
    case 23:
        sl_value_clear(v);
        break;
    case 24:
    case 25: {
        /* A fresh document: over a whole tree (24) or any node (25), into
         * that tree's arena in world 1 - so arena subtrees land in heap
         * trees and heap ones in arena trees. */
        struct sl_value *dst = op->kind == 24 ? &w->t[op->p.tree] : v;
        char err[128];
        int rc = sl_json_parse_arena(op->text.data, op->text.len, dst, arena_of(wi, op->p.tree),
                                     NULL, err, sizeof(err));
        CHECK_INT(rc, 0);
        break;
    }
    default: {
        /* A whole tree onto another (or itself). */
        unsigned a = op->p.tree, b = op->q.tree;
        sl_value_move(&w->t[a], &w->t[b]);
        break;
    }
    }
}

/* The worlds agree: same text for every tree, same lookups, sound flags. */
static bool worlds_agree(struct world *w, long *arena_bufs)
{
    if (w[0].trace != w[1].trace) {
        fprintf(stderr, "lookups differ\n");
        return false;
    }
    for (unsigned i = 0; i < NTREES; i++) {
        struct twin t = {w[0].t[i], w[1].t[i]};
        const char *s = twin_js(&t);
        if (strcmp(s, "<differ>") == 0) {
            fprintf(stderr, "tree %u differs\n", i);
            return false;
        }
        *arena_bufs += owned(&w[1].t[i], false);
    }
    return true;
}

TEST(test_arena_random_lockstep)
{
    struct world w[2];
    memset(w, 0, sizeof(w));
    struct op op;
    memset(&op, 0, sizeof(op));
    sl_buf_init(&op.text, 0);
    long arena_bufs = 0;
    unsigned ops = 0, kinds[OP_KINDS + 1] = {0};
    g_rng = 20261127;
    bool ok = true;
    for (unsigned round = 0; round < 150 && ok; round++) {
        for (unsigned i = 0; i < NTREES; i++) {
            sl_buf_reset(&op.text);
            if (rnd(4) == 0) {
                gen_json(&op.text, 1);
            } else {
                /* mostly events: an object at the root */
                static const char head[] = "{\"message\":\"m\",\"tags\":[\"t1\"],\"a\":";
                sl_buf_append(&op.text, head, strlen(head));
                gen_json(&op.text, 1);
                sl_buf_append(&op.text, ",\"deep\":", strlen(",\"deep\":"));
                gen_json(&op.text, 1);
                sl_buf_putc(&op.text, '}');
            }
            for (unsigned wi = 0; wi < 2; wi++) {
                int rc = sl_json_parse_arena(op.text.data, op.text.len, &w[wi].t[i],
                                             arena_of(wi, i), NULL, NULL, 0);
                CHECK_INT(rc, 0);
            }
        }
        for (unsigned k = 0; k < 60 && ok; k++) {
            op.kind = rnd(OP_KINDS + 1);
            op.key = rnd(SL_ARRAY_LEN(k_keys));
            op.str = rnd(SL_ARRAY_LEN(k_raw));
            op.ref = rnd(SL_ARRAY_LEN(k_refs));
            op.tag = rnd(SL_ARRAY_LEN(k_tags));
            op.num = (int64_t)rnd(1000) - 500;
            random_path(&w[0], &op.p);
            random_path(&w[0], &op.q);
            if (op.kind == 24 || op.kind == 25) {
                sl_buf_reset(&op.text);
                gen_json(&op.text, 2);
            }
            apply(&w[0], 0, &op);
            apply(&w[1], 1, &op);
            ops++;
            kinds[op.kind]++;
            if (!worlds_agree(w, &arena_bufs)) {
                fprintf(stderr, "round %u, op %u (kind %u) broke the lock step\n", round, k,
                        op.kind);
                CHECK(!"worlds differ");
                ok = false;
            }
            /* Copies double trees: keep them small. */
            for (unsigned i = 0; i < NTREES; i++) {
                if (js(&w[0].t[i]) && g_out.len > 8192) {
                    sl_value_clear(&w[0].t[i]);
                    sl_value_clear(&w[1].t[i]);
                }
            }
        }
        for (unsigned wi = 0; wi < 2; wi++) {
            for (unsigned i = 0; i < NTREES; i++) {
                sl_value_clear(&w[wi].t[i]);
            }
        }
        arena_done();  /* every tree is clear: a pointer kept into the arenas would now trip ASan */
    }
    sl_buf_free(&op.text);
    CHECK(ops >= 8000);
    for (unsigned i = 0; i <= OP_KINDS; i++) {
        CHECK(kinds[i] > 100);  /* every operation was exercised */
    }
    CHECK(arena_bufs > 10000);  /* and arena buffers were around for them */
    if (ok && t_failed_checks == 0) {
        printf("lock step: %u operations, %ld arena buffers seen\n", ops, arena_bufs);
    }
}

/* The keys of a randomized test: a small space, so puts often hit existing keys
 * (with an embedded NUL and the empty key among them). */
static size_t batch_key(unsigned r, char *buf)
{
    unsigned k = r % 97;
    if (k == 0) {
        return 0;
    }
    if (k == 1) {
        memcpy(buf, "k\0x", 3);
        return 3;
    }
    return (size_t)snprintf(buf, 16, "k%u", k);
}

/* A batch gives exactly sl_obj_put's results, below and above the index threshold,
 * with any hint: the same slots (values kept), the same order. */
TEST(test_obj_batch_like_put)
{
    unsigned seed = 12345;
    const size_t hints[] = {0, 1, SL_OBJ_BATCH_INDEX_MIN, SL_OBJ_BATCH_INDEX_MIN + 1, 500, 100000};
    for (int round = 0; round < 60; round++) {
        struct sl_value a = {0}, b = {0};
        size_t pre = (size_t)(round % 5) * 20;  /* members before the batch */
        for (size_t i = 0; i < pre; i++) {
            char k[16];
            seed = seed * 1103515245u + 12345u;
            size_t kl = batch_key(seed >> 8, k);
            sl_value_set_int(sl_obj_put(&a, k, kl), -(int64_t)i);
        }
        sl_value_copy(&b, &a);
        if (round % 7 == 3) {
            sl_value_clear(&a);  /* a null object becomes one, as with sl_obj_put */
            sl_value_clear(&b);
        }
        struct sl_obj_batch batch;
        sl_obj_batch_begin(&batch, &b, hints[round % SL_ARRAY_LEN(hints)]);
        size_t nputs = (size_t)(round * 7) % 300;
        for (size_t i = 0; i < nputs; i++) {
            char k[16];
            seed = seed * 1103515245u + 12345u;
            size_t kl = batch_key(seed >> 8, k);
            struct sl_value *sa = sl_obj_put(&a, k, kl);
            struct sl_value *sb = sl_obj_batch_put(&batch, k, kl);
            CHECK(sa && sb);
            if (!sa || !sb) {
                break;
            }
            CHECK_INT(sb - &b.u.o.items[0].v, sa - &a.u.o.items[0].v);  /* same position */
            CHECK_INT(sb->type, sa->type);
            CHECK(sa->type != SL_V_INT || sa->u.i == sb->u.i);
            sl_value_set_int(sa, (int64_t)i);
            sl_value_set_int(sb, (int64_t)i);
        }
        sl_obj_batch_end(&batch);
        CHECK(batch.slot == NULL);
        sl_buf_reset(&g_out2);
        const char *ja = js(&a);
        sl_buf_append(&g_out2, ja, strlen(ja));
        CHECK_STR(js(&b), sl_buf_cstr(&g_out2));
        CHECK_INT(b.u.o.len, a.u.o.len);
        sl_value_clear(&a);
        sl_value_clear(&b);
    }
}

TEST(test_obj_batch_wrong_types)
{
    struct sl_value v = {0};
    struct sl_obj_batch b;
    sl_value_set_int(&v, 5);
    sl_obj_batch_begin(&b, &v, 100);
    for (int i = 0; i < 40; i++) {
        CHECK(sl_obj_batch_put(&b, "a", 1) == NULL);
    }
    sl_obj_batch_end(&b);
    CHECK(v.type == SL_V_INT && v.u.i == 5);
    sl_value_clear(&v);
    /* A null value becomes an object at the first put, not before. */
    sl_obj_batch_begin(&b, &v, 100);
    CHECK(v.type == SL_V_NULL);
    CHECK(sl_obj_batch_put(&b, NULL, 1) == NULL);
    CHECK(sl_obj_batch_put(&b, NULL, 0) != NULL);  /* the empty key, as sl_obj_put takes it */
    sl_obj_batch_end(&b);
    CHECK_STR(js(&v), "{\"\":null}");
    sl_value_clear(&v);
    sl_obj_batch_begin(&b, NULL, 0);
    CHECK(sl_obj_batch_put(&b, "a", 1) == NULL);
    sl_obj_batch_end(&b);
}

/* The sizes that took minutes with one sl_obj_put each: exact results. */
TEST(test_obj_batch_large)
{
    enum { N = 100000 };
    struct sl_value o = {0};
    struct sl_obj_batch b;
    char k[24];
    sl_value_set_object(&o);
    sl_value_set_cstr(sl_obj_putc(&o, "k500"), "old");  /* replaced in place below */
    sl_obj_batch_begin(&b, &o, 0);                      /* unknown count: grows */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < N; i++) {
            snprintf(k, sizeof(k), "k%d", i);
            struct sl_value *s = sl_obj_batch_put(&b, k, strlen(k));
            if (pass == 0 && i != 500) {
                CHECK(s->type == SL_V_NULL);
            }
            sl_value_set_int(s, pass * N + i);
        }
    }
    sl_obj_batch_end(&b);
    CHECK_INT(o.u.o.len, N);
    CHECK_STR(o.u.o.items[0].key, "k500");
    CHECK(o.u.o.items[0].v.u.i == N + 500);
    CHECK_STR(o.u.o.items[1].key, "k0");
    CHECK_STR(o.u.o.items[N - 1].key, "k99999");
    CHECK(o.u.o.items[N - 1].v.u.i == 2 * N - 1);
    CHECK(sl_obj_getc(&o, "k12345") && sl_obj_getc(&o, "k12345")->u.i == N + 12345);
    sl_value_clear(&o);
}

TEST(test_obj_merge)
{
    struct sl_value dst = {0}, src = {0};
    from_json(&dst, "{\"a\":1,\"b\":2,\"c\":3}");
    from_json(&src, "{\"c\":\"C\",\"d\":[4],\"a\":{\"x\":1}}");
    sl_obj_merge(&dst, &src);
    CHECK_STR(js(&dst), "{\"a\":{\"x\":1},\"b\":2,\"c\":\"C\",\"d\":[4]}");
    CHECK(src.type == SL_V_NULL);
    /* A src that is no object is only cleared; a dst that is none is left alone. */
    sl_value_set_cstr(&src, "s");
    sl_obj_merge(&dst, &src);
    CHECK(src.type == SL_V_NULL);
    CHECK_STR(js(&dst), "{\"a\":{\"x\":1},\"b\":2,\"c\":\"C\",\"d\":[4]}");
    struct sl_value i = {0};
    sl_value_set_int(&i, 7);
    from_json(&src, "{\"q\":1}");
    sl_obj_merge(&i, &src);
    CHECK(i.type == SL_V_INT && i.u.i == 7 && src.type == SL_V_NULL);
    /* A null dst becomes an object; merging an object into itself changes nothing. */
    struct sl_value n = {0};
    from_json(&src, "{\"q\":1}");
    sl_obj_merge(&n, &src);
    CHECK_STR(js(&n), "{\"q\":1}");
    sl_obj_merge(&n, &n);
    CHECK_STR(js(&n), "{\"q\":1}");
    sl_obj_merge(&n, NULL);
    sl_value_clear(&n);
    sl_value_clear(&dst);

    /* 200k keys into an object holding some of them: replaced in place, new appended. */
    enum { N = 200000 };
    struct sl_buf t;
    sl_buf_init(&t, 0);
    sl_buf_putc(&t, '{');
    for (int j = 0; j < N; j++) {
        sl_buf_printf(&t, "%s\"key%d\":%d", j ? "," : "", j, j);
    }
    sl_buf_putc(&t, '}');
    from_json(&src, sl_buf_cstr(&t));
    from_json(&dst, "{\"first\":0,\"key150000\":\"old\",\"last\":1}");
    sl_obj_merge(&dst, &src);
    CHECK(src.type == SL_V_NULL);
    CHECK_INT(dst.u.o.len, N + 2);
    CHECK_STR(dst.u.o.items[1].key, "key150000");
    CHECK(dst.u.o.items[1].v.type == SL_V_INT && dst.u.o.items[1].v.u.i == 150000);
    CHECK_STR(dst.u.o.items[3].key, "key0");
    CHECK_STR(dst.u.o.items[N + 1].key, "key199999");
    CHECK(dst.u.o.items[N + 1].v.u.i == N - 1);
    sl_value_clear(&dst);
    sl_buf_free(&t);
}

/* Batches into an arena tree: the root's arena vector moves to the heap as with
 * sl_obj_put, arena keys keep their flags, and both twins write the same. */
TEST(test_arena_obj_batch)
{
    struct twin t = {{0}, {0}};
    twin_parse(&t, k_doc);
    BOTH(&t, v, struct sl_obj_batch b; sl_obj_batch_begin(&b, v, 0);
         for (int i = 0; i < 100; i++) {
             char key[16];
             snprintf(key, sizeof(key), i % 10 ? "x%d" : "n", i);
             sl_value_set_int(sl_obj_batch_put(&b, key, strlen(key)), i);
         } sl_value_set_cstr(sl_obj_batch_put(&b, "message", 7), "replaced");
         sl_obj_batch_end(&b));
    CHECK(!(t.a.flags & SL_VF_ARENA));
    CHECK(t.a.u.o.items[0].kflags & SL_VF_ARENA);
    CHECK_INT(t.a.u.o.len, 9 + 90);
    const char *j = twin_js(&t);
    const char *head = "{\"@timestamp\":\"2026-11-27T06:00:00.123Z\",\"message\":\"replaced\","
                       "\"tags\":[\"a\"],";
    CHECK(strncmp(j, head, strlen(head)) == 0);
    CHECK(strstr(j, ",\"n\":90,") != NULL);
    CHECK(strstr(j, ",\"x99\":99}") != NULL);
    twin_clear(&t);
    arena_done();
}

/* The hash behind the key indexes: stable within a process, keyed per process
 * (two fresh processes disagree), so keys cannot be crafted offline to collide. */
static uint64_t hash_in_child(void)
{
    int fd[2];
    uint64_t h = 0;
    if (pipe(fd) != 0) {
        return 0;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        uint64_t v = sl_hash_bytes("message", 7);
        _exit(write(fd[1], &v, sizeof(v)) == (ssize_t)sizeof(v) ? 0 : 1);
    }
    close(fd[1]);
    if (read(fd[0], &h, sizeof(h)) != (ssize_t)sizeof(h)) {
        h = 0;
    }
    close(fd[0]);
    waitpid(pid, NULL, 0);
    return h;
}

TEST(test_hash_is_keyed_per_process)
{
    /* Drawn in the children first: a fork after the parent drew would inherit it. */
    uint64_t a = hash_in_child(), b = hash_in_child();
    CHECK(a != 0 && b != 0);
    CHECK(a != b);
    CHECK(sl_hash_bytes("message", 7) == sl_hash_bytes("message", 7));
    CHECK(sl_hash_bytes("message", 7) != sl_hash_bytes("messagf", 7));
    CHECK(sl_hash_bytes("", 0) == sl_hash_bytes("", 0));
}

/* Whether a and b write the same JSON. */
static bool same_json(const struct sl_value *a, const struct sl_value *b)
{
    struct sl_buf x, y;
    sl_buf_init(&x, 0);
    sl_buf_init(&y, 0);
    bool same = sl_json_write(&x, a, NULL) == 0 && sl_json_write(&y, b, NULL) == 0 &&
                x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
    sl_buf_free(&x);
    sl_buf_free(&y);
    return same;
}

/* An object of keys k0..k7 in a random order and random subset, each an object
 * of the same keys one level down (for two-segment references). */
static void shaped(struct sl_value *o, uint32_t *rnd, int depth)
{
    static const char *const keys[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"};
    int order[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    for (int i = 7; i > 0; i--) {
        *rnd = *rnd * 1103515245u + 12345u;
        int j = (int)((*rnd >> 8) % (unsigned)(i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    sl_value_set_object(o);
    for (int i = 0; i < 8; i++) {
        *rnd = *rnd * 1103515245u + 12345u;
        if ((*rnd >> 12) % 4 == 0) {
            continue;  /* absent */
        }
        struct sl_value *v = sl_obj_put(o, keys[order[i]], 2);
        if (depth > 0) {
            shaped(v, rnd, depth - 1);
        } else {
            sl_value_set_int(v, order[i]);
        }
    }
}

/* Compiled references remember where they last found each segment: objects of
 * ever-changing shapes (every order, members absent) must still get exactly
 * what the uncompiled lookup gets, for get, put and del. */
TEST(test_fieldref_hint_any_shape)
{
    static const char *const refs[] = {"k3", "[k0][k5]", "k7.k1", "[k6]"};
    struct sl_fieldref fr[4];
    for (int i = 0; i < 4; i++) {
        CHECK_INT(sl_fieldref_init(&fr[i], refs[i]), 0);
    }
    uint32_t rnd = 99;
    for (int round = 0; round < 3000; round++) {
        struct sl_value a = {0}, b = {0};
        shaped(&a, &rnd, 1);
        sl_value_copy(&b, &a);
        for (int i = 0; i < 4; i++) {
            struct sl_value *x = sl_fieldref_get(&fr[i], &a), *y = sl_field_get(&b, refs[i]);
            CHECK((x == NULL) == (y == NULL));
            if (x && y) {
                CHECK(same_json(x, y));
            }
        }
        int i = round % 4;
        if (round % 3 == 0) {
            sl_value_set_int(sl_fieldref_put(&fr[i], &a), 1000 + round);
            sl_value_set_int(sl_field_put(&b, refs[i]), 1000 + round);
        } else if (round % 3 == 1) {
            CHECK_INT(sl_fieldref_del(&fr[i], &a), sl_field_del(&b, refs[i]));
        }
        CHECK(same_json(&a, &b));
        sl_value_clear(&a);
        sl_value_clear(&b);
    }
    for (int i = 0; i < 4; i++) {
        sl_fieldref_free(&fr[i]);
    }
}

struct hint_race {
    const struct sl_fieldref *fr;
    uint32_t seed;
    int wrong;
};

static void *hint_racer(void *arg)
{
    struct hint_race *h = arg;
    for (int round = 0; round < 2000; round++) {
        struct sl_value a = {0};
        shaped(&a, &h->seed, 1);
        struct sl_value *x = sl_fieldref_get(h->fr, &a), *y = sl_field_get(&a, "[k0][k5]");
        h->wrong += x != y;
        sl_value_clear(&a);
    }
    return NULL;
}

/* Threads sharing one reference on different shapes: each lookup is right. */
TEST(test_fieldref_hint_shared_by_threads)
{
    struct sl_fieldref fr;
    CHECK_INT(sl_fieldref_init(&fr, "[k0][k5]"), 0);
    pthread_t th[4];
    struct hint_race h[4];
    for (int i = 0; i < 4; i++) {
        h[i] = (struct hint_race){.fr = &fr, .seed = 7u + (uint32_t)i * 1000u};
        CHECK_INT(pthread_create(&th[i], NULL, hint_racer, &h[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(h[i].wrong, 0);
    }
    sl_fieldref_free(&fr);
}

/* Keys of every length to 40 that differ in any one byte past the head (which
 * lookups compare first) are told apart, and equal keys found, in objects of
 * every such key. */
TEST(test_member_keys_of_every_length)
{
    char a[41], b[41];
    for (size_t n = 5; n <= 40; n++) {
        for (size_t i = 0; i < n; i++) {
            a[i] = (char)('a' + (i * 7) % 26);
        }
        for (size_t p = 4; p < n; p++) {
            memcpy(b, a, n);
            b[p] = (char)(b[p] ^ 0x20);
            CHECK(!sl_key_rest_eq(a, b, n));
            b[p] = a[p];
            CHECK(sl_key_rest_eq(a, b, n));
            struct sl_value o = {0};
            sl_value_set_object(&o);
            sl_value_set_int(sl_obj_put(&o, a, n), 1);
            b[p] = (char)(b[p] ^ 0x01);
            sl_value_set_int(sl_obj_put(&o, b, n), 2);
            CHECK_INT(o.u.o.len, 2);
            CHECK_INT(sl_obj_get(&o, a, n)->u.i, 1);
            CHECK_INT(sl_obj_get(&o, b, n)->u.i, 2);
            sl_value_clear(&o);
        }
    }
}

int main(void)
{
    sl_buf_init(&g_out, 0);
    RUN(test_hash_is_keyed_per_process);
    RUN(test_member_keys_of_every_length);
    RUN(test_fieldref_hint_any_shape);
    RUN(test_fieldref_hint_shared_by_threads);
    RUN(test_scalars_and_clear);
    RUN(test_object_order_put_get_del);
    RUN(test_object_on_wrong_types);
    RUN(test_array_push);
    RUN(test_copy_and_move);
    RUN(test_field_get_both_syntaxes);
    RUN(test_field_malformed);
    RUN(test_field_put);
    RUN(test_field_del);
    RUN(test_tags);
    sl_buf_init(&g_out2, 0);
    sl_arena_init(&g_arena, 0);
    sl_arena_init(&g_arena2, 512);  /* tiny chunks: many chunk boundaries */
    RUN(test_arena_parse_flags);
    RUN(test_arena_clear);
    RUN(test_arena_setters);
    RUN(test_arena_builders);
    RUN(test_arena_obj_put_get);
    RUN(test_arena_obj_del);
    RUN(test_arena_arr_push);
    RUN(test_arena_copy);
    RUN(test_arena_move);
    RUN(test_arena_fields);
    RUN(test_arena_tags);
    RUN(test_arena_random_lockstep);
    RUN(test_obj_batch_like_put);
    RUN(test_obj_batch_wrong_types);
    RUN(test_obj_batch_large);
    RUN(test_obj_merge);
    RUN(test_arena_obj_batch);
    sl_arena_free(&g_arena);
    sl_arena_free(&g_arena2);
    sl_buf_free(&g_out2);
    sl_buf_free(&g_out);
    return TEST_SUMMARY();
}
