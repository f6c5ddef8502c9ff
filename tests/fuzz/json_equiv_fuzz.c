/*
 * json_equiv_fuzz.c - libFuzzer target: lib/json.c's scanner and parser
 * against their previous versions (tests/unit/lib/json_ref.inc, the old
 * lib/json.c with its names renamed), which the fast paths replaced. Build
 * as tests/fuzz/run does (clang -fsanitize=fuzzer,address,undefined with
 * every lib/ source). Every observable result must be the same, each difference an
 * abort(): whether the scanner vouches, its members and cut; the parser's
 * code, message and tree (heap and arena), and its verbatim report and cut;
 * the parse of every member span the scanner gives.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/json.h"

#include "../unit/lib/json_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sl_arena g_new, g_ref;

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "json_equiv_fuzz: %s differs\n", what);
        abort();
    }
}

static bool same_tree(const struct sl_value *a, const struct sl_value *b)
{
    struct sl_buf wa, wb;
    sl_buf_init(&wa, 0);
    sl_buf_init(&wb, 0);
    int ra = sl_json_write(&wa, a, NULL), rb = sl_json_write(&wb, b, NULL);
    bool same = ra == rb && a->type == b->type && wa.len == wb.len &&
                memcmp(wa.data, wb.data, wa.len) == 0;
    sl_buf_free(&wa);
    sl_buf_free(&wb);
    return same;
}

static void parse_both(const char *p, size_t len, const struct sl_json_limits *lim)
{
    struct sl_value a = {0}, b = {0};
    char ea[160], eb[160];
    struct sl_json_doc da, db;
    int ra = sl_json_parse(p, len, &a, lim, ea, sizeof(ea));
    int rb = ref_json_parse(p, len, &b, lim, eb, sizeof(eb));
    check(ra == rb && strcmp(ea, eb) == 0 && same_tree(&a, &b), "heap parse");
    sl_value_clear(&a);
    sl_value_clear(&b);
    ra = sl_json_parse_doc(p, len, &a, &g_new, lim, "@metadata", &da, ea, sizeof(ea));
    rb = ref_json_parse_doc(p, len, &b, &g_ref, lim, "@metadata", &db, eb, sizeof(eb));
    check(ra == rb && strcmp(ea, eb) == 0 && same_tree(&a, &b) && da.verbatim == db.verbatim &&
              da.cut_off == db.cut_off && da.cut_len == db.cut_len,
          "doc parse");
    sl_value_clear(&a);
    sl_value_clear(&b);
}

static void scan_both(const char *p, size_t len, const struct sl_json_limits *lim, const char *cut)
{
    struct sl_json_member ma[SL_JSON_SCAN_MEMBERS], mb[SL_JSON_SCAN_MEMBERS];
    size_t na, nb;
    struct sl_json_doc da, db;
    bool sa = sl_json_scan(p, len, lim, cut, ma, &na, &da);
    bool sb = ref_json_scan(p, len, lim, cut, mb, &nb, &db);
    check(sa == sb && na == nb && da.verbatim == db.verbatim && da.cut_off == db.cut_off &&
              da.cut_len == db.cut_len,
          "scan");
    if (!sa) {
        return;
    }
    check(memcmp(ma, mb, na * sizeof(ma[0])) == 0, "scan members");
    for (size_t i = 0; i < na; i++) {
        /* each span at its own allocation: ASan sees any read past it */
        char *v = malloc(ma[i].val_len ? ma[i].val_len : 1);
        memcpy(v, p + ma[i].val_off, ma[i].val_len);
        struct sl_json_limits ml = {.max_depth = lim ? lim->max_depth : 0,
                                    .max_bytes = i % 3 == 2 ? 48 : 0};
        struct sl_value a = {0}, b = {0};
        char ea[160], eb[160];
        int ra = sl_json_parse_arena(v, ma[i].val_len, &a, &g_new, &ml, ea, sizeof(ea));
        int rb = ref_json_parse_arena(v, ma[i].val_len, &b, &g_ref, &ml, eb, sizeof(eb));
        check(ra == rb && strcmp(ea, eb) == 0 && same_tree(&a, &b), "member parse");
        sl_value_clear(&a);
        sl_value_clear(&b);
        free(v);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes: ASan then catches any read past the end. */
    char *in = malloc(size ? size : 1);
    if (size) {
        memcpy(in, data, size);
    }
    static const struct sl_json_limits lims[] = {{.max_depth = 3},
                                                 {.max_depth = 64, .max_bytes = 300}};
    scan_both(in, size, NULL, "@metadata");
    scan_both(in, size, &lims[0], "message");
    parse_both(in, size, NULL);
    parse_both(in, size, &lims[0]);
    parse_both(in, size, &lims[1]);
    sl_arena_reset(&g_new);
    sl_arena_reset(&g_ref);
    free(in);
    return 0;
}
