/*
 * container_test.c - Docker and CRI line parsing, kubelet path names, and
 * their JSON members.
 */
#include "container.h"

#include <stdlib.h>

#include "test.h"

static struct sl_arena arena;

static int parse(enum ctr_format f, const char *s, struct ctr_line *out)
{
    sl_arena_reset(&arena);
    return ctr_parse(f, s, strlen(s), &arena, out);
}

TEST(docker_full_and_partial_lines)
{
    struct ctr_line l;
    CHECK_INT(parse(CTR_AUTO, "{\"log\":\"hello \\\"w\\\" \\u00e9\\n\",\"stream\":\"stderr\","
                              "\"time\":\"2025-03-04T05:06:07.123456789Z\"}", &l), 0);
    CHECK_MEM(l.msg, l.len, "hello \"w\" \xc3\xa9");
    CHECK_INT(l.stream, CTR_STDERR);
    CHECK(!l.partial);
    CHECK_INT(l.format, CTR_DOCKER);
    CHECK_INT(l.ts_ms, 1741064767123LL);
    /* No trailing newline: a piece of a longer message. */
    CHECK_INT(parse(CTR_DOCKER, "{\"log\":\"abc\",\"stream\":\"stdout\",\"time\":"
                                "\"2025-03-04T05:06:07Z\"}", &l), 0);
    CHECK_MEM(l.msg, l.len, "abc");
    CHECK(l.partial);
    CHECK_INT(l.stream, CTR_STDOUT);
    /* CRLF content loses both. */
    CHECK_INT(parse(CTR_DOCKER, "{\"log\":\"x\\r\\n\",\"stream\":\"stdout\",\"time\":"
                                "\"2025-03-04T05:06:07Z\"}", &l), 0);
    CHECK_MEM(l.msg, l.len, "x");
}

TEST(docker_rejects_what_is_not_its_format)
{
    struct ctr_line l;
    CHECK_INT(parse(CTR_DOCKER, "{\"log\":\"x\\n\",\"stream\":\"stdin\",\"time\":"
                                "\"2025-03-04T05:06:07Z\"}", &l), SL_EINVAL);
    CHECK_INT(parse(CTR_DOCKER, "{\"log\":\"x\\n\",\"stream\":\"stdout\"}", &l), SL_EINVAL);
    CHECK_INT(parse(CTR_DOCKER, "{\"log\":1,\"stream\":\"stdout\",\"time\":"
                                "\"2025-03-04T05:06:07Z\"}", &l), SL_EINVAL);
    CHECK_INT(parse(CTR_DOCKER, "{\"log\":\"x\\n\",\"stream\":\"stdout\",\"time\":\"y\"}", &l),
              SL_EINVAL);
    CHECK_INT(parse(CTR_DOCKER, "{\"log\":\"cut", &l), SL_EINVAL);
    CHECK_INT(parse(CTR_DOCKER, "plain text", &l), SL_EINVAL);
}

TEST(cri_lines)
{
    struct ctr_line l;
    CHECK_INT(parse(CTR_AUTO, "2025-03-04T05:06:07.5+01:00 stdout F a b  c", &l), 0);
    CHECK_MEM(l.msg, l.len, "a b  c");
    CHECK_INT(l.ts_ms, 1741061167500LL);
    CHECK(!l.partial);
    CHECK_INT(l.format, CTR_CRI);
    CHECK_INT(parse(CTR_CRI, "2025-03-04T05:06:07Z stderr P part", &l), 0);
    CHECK(l.partial);
    CHECK_INT(l.stream, CTR_STDERR);
    CHECK_MEM(l.msg, l.len, "part");
    /* Empty messages, with and without the space after the tag; tags with extras. */
    CHECK_INT(parse(CTR_CRI, "2025-03-04T05:06:07Z stdout F ", &l), 0);
    CHECK_INT(l.len, 0);
    CHECK_INT(parse(CTR_CRI, "2025-03-04T05:06:07Z stdout F", &l), 0);
    CHECK_INT(l.len, 0);
    CHECK_INT(parse(CTR_CRI, "2025-03-04T05:06:07Z stdout F:x msg", &l), 0);
    CHECK_MEM(l.msg, l.len, "msg");
    CHECK_INT(parse(CTR_CRI, "2025-03-04T05:06:07Z stdout X msg", &l), SL_EINVAL);
    CHECK_INT(parse(CTR_CRI, "2025-03-04T05:06:07Z stdin F msg", &l), SL_EINVAL);
    CHECK_INT(parse(CTR_CRI, "yesterday stdout F msg", &l), SL_EINVAL);
    CHECK_INT(parse(CTR_CRI, "2025-03-04T05:06:07Z", &l), SL_EINVAL);
    CHECK_INT(parse(CTR_CRI, "", &l), SL_EINVAL);
    /* A Docker line read as CRI (format: cri) is not CRI. */
    CHECK_INT(parse(CTR_CRI, "{\"log\":\"x\\n\",\"stream\":\"stdout\",\"time\":"
                             "\"2025-03-04T05:06:07Z\"}", &l), SL_EINVAL);
}

static const char *ID64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST(kubelet_paths)
{
    struct k8s_meta m;
    char p[512];
    snprintf(p, sizeof(p), "/var/log/containers/web-7d9f-x2_shop_nginx-proxy-%s.log", ID64);
    CHECK(k8s_from_path(p, &m));
    CHECK_STR(m.pod, "web-7d9f-x2");
    CHECK_STR(m.ns, "shop");
    CHECK_STR(m.container, "nginx-proxy");
    CHECK_STR(m.id, ID64);
    CHECK_STR(m.uid, "");
    CHECK(k8s_from_path("/var/log/pods/shop_web-1_5b3e1f2a-9c1d/app/0.log", &m));
    CHECK_STR(m.ns, "shop");
    CHECK_STR(m.pod, "web-1");
    CHECK_STR(m.uid, "5b3e1f2a-9c1d");
    CHECK_STR(m.container, "app");
    CHECK_STR(m.id, "");
    CHECK(k8s_from_path("/var/log/pods/shop_web-1_u/app/3.log.20250304-050607", &m));
    CHECK_STR(m.container, "app");
    /* Not the kubelet's: wrong id, no underscores, not a number, no directories. */
    snprintf(p, sizeof(p), "/var/log/containers/web_shop_nginx-%.63s.log", ID64);
    CHECK(!k8s_from_path(p, &m));
    CHECK_STR(m.pod, "");
    CHECK(!k8s_from_path("/var/log/app/access.log", &m));
    CHECK(!k8s_from_path("/var/log/pods/shop_web/app/0.log", &m));
    CHECK(!k8s_from_path("/var/log/pods/shop_web_u/app/x.log", &m));
    CHECK(!k8s_from_path("0.log", &m));
}

TEST(kubernetes_json_members)
{
    struct k8s_meta m;
    struct sl_buf b;
    sl_buf_init(&b, 0);
    CHECK(k8s_from_path("/var/log/pods/shop_web-1_u1/app/0.log", &m));
    CHECK_INT(k8s_put_json(&b, &m, "cri"), 0);
    CHECK_STR(sl_buf_cstr(&b), ",\"kubernetes\":{\"pod\":{\"name\":\"web-1\",\"uid\":\"u1\"},"
                               "\"namespace\":\"shop\",\"container\":{\"name\":\"app\"}},"
                               "\"container\":{\"runtime\":\"cri\"}");
    sl_buf_reset(&b);
    memset(&m, 0, sizeof(m));
    CHECK_INT(k8s_put_json(&b, &m, NULL), 0);
    CHECK_STR(sl_buf_cstr(&b), "");
    sl_buf_free(&b);
}

int main(void)
{
    sl_arena_init(&arena, 0);
    RUN(docker_full_and_partial_lines);
    RUN(docker_rejects_what_is_not_its_format);
    RUN(cri_lines);
    RUN(kubelet_paths);
    RUN(kubernetes_json_members);
    sl_arena_free(&arena);
    return TEST_SUMMARY();
}
