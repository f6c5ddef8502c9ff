/*
 * json_fuzz.c - libFuzzer target for lib/json.c. Build with
 *   clang -fsanitize=fuzzer,address,undefined -Ilib/include tests/fuzz/json_fuzz.c \
 *         lib/json.c lib/value.c lib/buf.c lib/common.c lib/arena.c -lm -o json_fuzz
 *
 * Properties checked, each an abort() when broken:
 *  - whatever parses writes out as valid UTF-8 that parses again, and writing
 *    that second tree gives the very same bytes (the round trip is stable);
 *  - the input escaped as one string is valid UTF-8 JSON that parses back to
 *    a string, equal to the input when the input was valid UTF-8;
 *  - a tight buffer maximum yields SL_ELIMIT and leaves the buffer unchanged;
 *  - sl_json_parse_arena agrees with sl_json_parse (code, message, written
 *    tree), the same edits on both trees give the same text, a heap copy of
 *    the arena tree survives the arena's reset (ASan poisons reset memory),
 *    and clearing the arena tree frees exactly what the edits put on the heap;
 *  - sl_json_scan vouches only for what sl_json_parse_doc accepts as verbatim,
 *    with the same cut of "@metadata"; the verbatim text, cut or not, parses
 *    back to the tree written with or without @metadata.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "json_fuzz: %s\n", what);
        abort();
    }
}

static void round_trip(const char *in, size_t len)
{
    struct sl_value v1 = {0}, v2 = {0};
    struct sl_buf w1, w2;
    char err[128];
    sl_buf_init(&w1, 0);
    sl_buf_init(&w2, 0);

    int rc = sl_json_parse(in, len, &v1, NULL, err, sizeof(err));
    check(rc == 0 || rc == SL_EINVAL || rc == SL_ELIMIT, "unexpected parse result");
    if (rc != 0) {
        check(v1.type == SL_V_NULL, "value not null after a failed parse");
        goto out;
    }
    check(sl_json_write(&w1, &v1, NULL) == 0, "write failed");
    check(sl_utf8_valid_prefix(w1.data, w1.len) == w1.len, "output is not valid UTF-8");
    rc = sl_json_parse(w1.data, w1.len, &v2, NULL, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "json_fuzz: own output does not parse: %s\n%.*s\n", err, (int)w1.len,
                w1.data);
        abort();
    }
    check(sl_json_write(&w2, &v2, NULL) == 0, "second write failed");
    check(w1.len == w2.len && memcmp(w1.data, w2.data, w1.len) == 0, "round trip not stable");

    /* A buffer one byte too small fails cleanly and is left as it was. */
    if (w1.len > 0) {
        struct sl_buf small;
        sl_buf_init(&small, w1.len + 1);
        sl_buf_putc(&small, 'X');
        small.max = w1.len;
        check(sl_json_write(&small, &v1, NULL) == SL_ELIMIT, "tight buffer did not fail");
        check(small.len == 1 && small.data[0] == 'X', "failed write changed the buffer");
        sl_buf_free(&small);
    }
out:
    sl_value_clear(&v1);
    sl_value_clear(&v2);
    sl_buf_free(&w1);
    sl_buf_free(&w2);
}

/* One arena for every input, reset after each: like the aggregator's reuse. */
static struct sl_arena g_arena;

/* What filters do to an event, applied the same way to both trees. */
static void edit(struct sl_value *v)
{
    if (v->type == SL_V_OBJECT) {
        sl_value_set_cstr(sl_field_put(v, "[fuzz][added]"), "x");
        if (v->u.o.len > 1) {
            struct sl_value tmp = {0};
            sl_value_move(&tmp, &v->u.o.items[0].v);  /* an arena subtree, moved */
            sl_value_move(sl_obj_putc(v, "moved"), &tmp);
            char key[64];
            snprintf(key, sizeof(key), "%s", v->u.o.items[1].key);
            sl_obj_del(v, key, strlen(key));
        }
        sl_event_add_tag(v, "fuzzed");
    } else if (v->type == SL_V_ARRAY) {
        sl_value_set_int(sl_arr_push(v), 1);
        if (v->u.a.len > 1) {
            sl_value_copy(&v->u.a.items[v->u.a.len - 1], &v->u.a.items[0]);
        }
    } else if (v->type == SL_V_STRING && v->u.s.len > 1) {
        sl_value_set_str(v, v->u.s.ptr + 1, v->u.s.len - 1);
    }
}

static void arena_vs_heap(const char *in, size_t len)
{
    struct sl_value h = {0}, a = {0}, copy = {0};
    struct sl_buf wh, wa;
    char eh[128], ea[128];
    sl_buf_init(&wh, 0);
    sl_buf_init(&wa, 0);
    int rh = sl_json_parse(in, len, &h, NULL, eh, sizeof(eh));
    int ra = sl_json_parse_arena(in, len, &a, &g_arena, NULL, ea, sizeof(ea));
    check(rh == ra, "arena and heap parse results differ");
    check(strcmp(eh, ea) == 0, "arena and heap error messages differ");
    if (rh != 0) {
        check(a.type == SL_V_NULL && a.flags == 0, "arena value not null after a failed parse");
        goto out;
    }
    for (int round = 0; round < 2; round++) {
        sl_buf_reset(&wh);
        sl_buf_reset(&wa);
        check(sl_json_write(&wh, &h, NULL) == 0 && sl_json_write(&wa, &a, NULL) == 0,
              "write failed");
        check(wh.len == wa.len && memcmp(wh.data, wa.data, wh.len) == 0,
              "arena tree differs from heap tree");
        edit(&h);
        edit(&a);
    }
    sl_value_copy(&copy, &a);
out:
    sl_value_clear(&a);  /* before the reset, as the lifetime rule says */
    sl_arena_reset(&g_arena);
    if (rh == 0) {
        /* The copy is heap: writing it now reads no reset (poisoned) memory. */
        sl_buf_reset(&wa);
        check(sl_json_write(&wa, &copy, NULL) == 0, "copy write failed");
        sl_buf_reset(&wh);
        check(sl_json_write(&wh, &h, NULL) == 0, "heap write failed");
        check(wh.len == wa.len && memcmp(wh.data, wa.data, wh.len) == 0,
              "copy of the arena tree differs");
    }
    sl_value_clear(&copy);
    sl_value_clear(&h);
    sl_buf_free(&wh);
    sl_buf_free(&wa);
}

static void escape_string(const char *in, size_t len)
{
    struct sl_buf w;
    struct sl_value v = {0};
    sl_buf_init(&w, 0);
    check(sl_json_put_str(&w, in, len) == 0, "put_str failed");
    check(sl_utf8_valid_prefix(w.data, w.len) == w.len, "escaped string is not valid UTF-8");
    for (size_t i = 0; i < w.len; i++) {
        check((unsigned char)w.data[i] >= 0x20, "raw control byte in escaped string");
    }
    check(sl_json_parse(w.data, w.len, &v, NULL, NULL, 0) == 0, "escaped string does not parse");
    check(v.type == SL_V_STRING, "escaped string parsed to a non-string");
    if (sl_utf8_valid_prefix(in, len) == len) {
        check(v.u.s.len == len && memcmp(v.u.s.ptr, in, len) == 0, "string did not survive");
    }
    sl_value_clear(&v);
    sl_buf_free(&w);
}

static void verbatim(const char *in, size_t len)
{
    struct sl_value v = {0}, back = {0};
    struct sl_json_doc doc, sdoc;
    struct sl_json_member ms[SL_JSON_SCAN_MEMBERS];
    size_t nms;
    struct sl_buf a, b;
    sl_buf_init(&a, 0);
    sl_buf_init(&b, 0);
    bool scanned = sl_json_scan(in, len, NULL, "@metadata", ms, &nms, &sdoc);
    int rc = sl_json_parse_doc(in, len, &v, NULL, NULL, "@metadata", &doc, NULL, 0);
    if (scanned) {
        check(rc == 0 && doc.verbatim, "scanner vouched for a text the parser rejects");
        check(sdoc.cut_off == doc.cut_off && sdoc.cut_len == doc.cut_len, "cuts differ");
        check(v.type == SL_V_OBJECT && nms == v.u.o.len, "member count differs");
        for (size_t i = 0; i < nms; i++) {
            check(ms[i].key_len == v.u.o.items[i].klen &&
                  memcmp(in + ms[i].key_off, v.u.o.items[i].key, ms[i].key_len) == 0,
                  "member key differs");
        }
    }
    for (int cut = 0; rc == 0 && doc.verbatim && cut < 2; cut++) {
        sl_buf_reset(&a);
        sl_buf_reset(&b);
        check(sl_json_put_doc(&a, in, len, &doc, cut) == 0, "put_doc failed");
        check(sl_json_parse(a.data, a.len, &back, NULL, NULL, 0) == 0, "verbatim copy invalid");
        sl_buf_reset(&a);
        sl_json_write(&a, &back, NULL);
        sl_json_write(&b, &v, cut ? "@metadata" : NULL);
        check(a.len == b.len && memcmp(a.data, b.data, a.len) == 0, "verbatim copy differs");
        sl_value_clear(&back);
    }
    sl_value_clear(&v);
    sl_buf_free(&a);
    sl_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes: ASan then catches any read past the end. */
    char *in = malloc(size ? size : 1);
    if (size) {
        memcpy(in, data, size);
    }
    round_trip(in, size);
    escape_string(in, size);
    arena_vs_heap(in, size);
    verbatim(in, size);
    free(in);
    return 0;
}
