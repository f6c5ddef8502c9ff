/*
 * value_test.c - the event model (lib/value.c): value ownership, objects in
 * insertion order, field references in both syntaxes (and malformed ones),
 * and tags. Trees are compared through their compact JSON text.
 */
#include "sluice/json.h"
#include "sluice/value.h"

#include <stdlib.h>

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

int main(void)
{
    sl_buf_init(&g_out, 0);
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
    sl_buf_free(&g_out);
    return TEST_SUMMARY();
}
