/*
 * shape_test.c - processors by event shape give, byte for byte, what the same
 * processors give run on each event's tree; drop_event conditions on the
 * message, the time and the offset are evaluated per event.
 */
#include "shape.h"

#include <stdlib.h>

#include "sluice/json.h"
#include "test.h"

static struct proc_chain *chain(const char *yaml)
{
    struct sl_cfg cfg = {0};
    struct proc_chain *c = NULL;
    if (sl_cfg_load_string(&cfg, "t.yml", yaml, strlen(yaml)) != 0 ||
        proc_chain_parse(&cfg, sl_cfg_get(cfg.root, "processors"), "", &c) != 0 ||
        cfg.errors.len > 0) {
        fprintf(stderr, "%s", sl_buf_cstr(&cfg.errors));
    }
    sl_cfg_free(&cfg);
    return c;
}

/* The event through the tree: "DROPPED" or its JSON. */
static void by_tree(struct proc_chain *c, const struct shape_event *e, struct sl_buf *out)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    event_encode_ext(&b, e->tmpl, e->ts, e->file_json, e->file_json_len, e->line, e->len,
                     e->offset, e->flags, e->extra, e->extra_len);
    struct sl_value v = {0};
    char err[96];
    CHECK_INT(sl_json_parse(b.data, b.len, &v, NULL, err, sizeof(err)), 0);
    if (proc_chain_run(c, &v)) {
        sl_json_write(out, &v, NULL);
    } else {
        sl_buf_puts(out, "DROPPED");
    }
    sl_value_clear(&v);
    sl_buf_free(&b);
}

static void by_shape(struct shape_cache *sc, struct proc_chain *c, const struct shape_event *e,
                     struct sl_buf *out)
{
    struct proc_chain *chains[2] = {c, NULL};
    int rc = shape_encode(sc, chains, 2, e, out);
    CHECK(rc == 0 || rc == 1);
    if (rc == 0) {
        sl_buf_puts(out, "DROPPED");
    }
}

static const char *const CHAINS[] = {
    "processors:\n  - add_fields: {target: '', fields: {env: prod, n: 1}}\n"
    "  - drop_fields: {fields: [ecs, agent.version], ignore_missing: true}\n"
    "  - drop_event: {when: {regexp: {message: '^DEBUG'}}}\n"
    "  - add_host_metadata: {netinfo.enabled: false}\n",
    /* message moved and the offset dropped: the holes follow them */
    "processors:\n  - rename: {fields: [{from: message, to: event.original}]}\n"
    "  - drop_fields: {fields: [log.offset]}\n",
    /* conditions on the offset and the time, before and after a change */
    "processors:\n  - drop_event: {when: {range: {log.offset: {gte: 100, lt: 200}}}}\n"
    "  - add_fields: {target: '', fields: {message: fixed}, when: {has_fields: [tags]}}\n"
    "  - drop_event: {when: {and: [{contains: {'@timestamp': '2025-03-04'}}, "
    "{equals: {message: fixed}}]}}\n",
    /* include_fields keeps the message but not the time's place */
    "processors:\n  - include_fields: {fields: [message, log]}\n"
    "  - add_kubernetes_metadata: ~\n",
};

TEST(shapes_match_trees_event_by_event)
{
    struct input_conf in;
    memset(&in, 0, sizeof(in));
    in.tags_json = (char *)"[\"web\"]";
    struct event_tmpl t;
    const struct event_agent agent = {.name = "h1", .id = "8f0c2a44-52a5-4b43-a2d1-6e1bb3f1c1aa",
                                      .ephemeral_id = "0b7e8c52-1d0e-4c55-9b6f-3c9a8d7e6f50"};
    event_tmpl_init(&t, &in, &agent);
    static const char *const msgs[] = {"hello", "DEBUG noise", "tab\there \"q\" \xc3\xa9",
                                       "", "fixed"};
    static const char *const ts[] = {"2025-03-04T05:06:07.123Z", "2024-01-01T00:00:00.000Z"};
    const char *path = "{\"path\":\"/var/log/pods/ns_p_u/c/0.log\",\"inode\":\"12\","
                       "\"device_id\":\"2049\"}";
    for (size_t k = 0; k < SL_ARRAY_LEN(CHAINS); k++) {
        struct proc_chain *c = chain(CHAINS[k]);
        CHECK(c != NULL && proc_chain_static(&c, 1));
        struct shape_cache *sc = shape_cache_new();
        int drops = 0;
        for (size_t m = 0; m < SL_ARRAY_LEN(msgs); m++) {
            for (uint64_t off = 0; off < 400; off += 150) {
                for (unsigned flags = 0; flags < 4; flags++) {
                    struct shape_event e = {
                        .tmpl = &t, .ts = ts[off == 300], .file_json = path,
                        .file_json_len = strlen(path), .line = msgs[m], .len = strlen(msgs[m]),
                        .offset = off, .flags = flags, .variant = 0,
                    };
                    struct sl_buf a, b;
                    sl_buf_init(&a, 0);
                    sl_buf_init(&b, 0);
                    by_tree(c, &e, &a);
                    by_shape(sc, c, &e, &b);
                    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) {
                        fprintf(stderr, "chain %zu msg %zu off %llu flags %u:\n tree  %s\n shape "
                                        "%s\n", k, m, (unsigned long long)off, flags,
                                sl_buf_cstr(&a), sl_buf_cstr(&b));
                        CHECK(!"shape differs from tree");
                    }
                    drops += strcmp(sl_buf_cstr(&a), "DROPPED") == 0;
                    sl_buf_free(&a);
                    sl_buf_free(&b);
                }
            }
        }
        /* Every chain with a drop_event dropped some events and kept others. */
        CHECK(strstr(CHAINS[k], "drop_event") ? drops > 0 && drops < 60 : drops == 0);
        shape_cache_free(sc);
        proc_chain_free(c);
    }
    event_tmpl_free(&t);
}

TEST(a_chain_reading_the_message_elsewhere_is_not_static)
{
    struct proc_chain *c = chain("processors:\n  - add_fields: {fields: {a: 1}, when: "
                                 "{contains: {message: x}}}\n");
    CHECK(!proc_chain_static(&c, 1));
    proc_chain_free(c);
    c = chain("processors:\n  - decode_json_fields: {fields: [message]}\n");
    CHECK(!proc_chain_static(&c, 1));
    proc_chain_free(c);
    c = chain("processors:\n  - add_fields: {fields: {a: 1}, when: {has_fields: [log]}}\n");
    CHECK(!proc_chain_static(&c, 1));  /* log holds log.offset */
    proc_chain_free(c);
    c = chain("processors:\n  - add_fields: {fields: {a: 1}, when: "
              "{regexp: {log.file.path: x}}}\n");
    CHECK(proc_chain_static(&c, 1));   /* the path is the same for a whole file */
    proc_chain_free(c);
    /* The message renamed, in this chain or an earlier one, is still the message. */
    struct proc_chain *two[2];
    two[0] = chain("processors:\n  - rename: {fields: [{from: log, to: src}]}\n");
    two[1] = chain("processors:\n  - add_fields: {fields: {a: 1}, when: "
                   "{range: {src.offset: {gt: 5}}}}\n");
    CHECK(proc_chain_static(&two[0], 1));
    CHECK(proc_chain_static(&two[1], 1));
    CHECK(!proc_chain_static(two, 2));
    proc_chain_free(two[0]);
    proc_chain_free(two[1]);
    c = chain("processors:\n  - rename: {fields: [{from: message, to: event.original}]}\n"
              "  - drop_fields: {fields: [x], when: {contains: {event.original: y}}}\n");
    CHECK(!proc_chain_static(&c, 1));
    proc_chain_free(c);
    c = chain("processors:\n  - rename: {fields: [{from: host.name, to: hn}]}\n"
              "  - drop_fields: {fields: [x], when: {equals: {hn: y}}}\n");
    CHECK(proc_chain_static(&c, 1));
    proc_chain_free(c);
}

int main(void)
{
    RUN(shapes_match_trees_event_by_event);
    RUN(a_chain_reading_the_message_elsewhere_is_not_static);
    return TEST_SUMMARY();
}
