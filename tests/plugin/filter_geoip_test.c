/*
 * filter_geoip_test.c - the `geoip` filter driven in-process, on small City
 * and ASN databases that tests/data/geoip/make_test_dbs.py writes into a
 * temporary directory first: every field in both naming modes, the target
 * derived from [x][ip], `fields`, IPv6, addresses the database lacks (private,
 * unknown, malformed, a host name) tagged and never crashing, arrays, and the
 * config errors (no database, a malformed or hostile .mmdb, an unknown field,
 * ECS without a target to derive).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/json.h"
#include "sluice/plugin.h"
#include "test.h"

#define FILTER_PLUGIN sl_plugin_filter_geoip
#define FILTER_KEY "geoip"
#define FILTER_ID "pipeline.filters[0] (geoip)"
#include "filter_harness.h"

#define FAIL SL_FILTER_FAIL

static char dir[64];
static char city[128], asn[128], broken[128], corrupt[128];

static void yaml(char *buf, size_t cap, const char *opts, const char *db)
{
    snprintf(buf, cap, "geoip: {%s, database: '%s'}\n", opts, db);
}

TEST(test_descriptor)
{
    CHECK_STR(P.name, "geoip");
    CHECK_INT(P.kind, SL_PLUGIN_FILTER);
    CHECK_STR(P.failure_tag, "_geoip_lookup_failure");
}

#define LONDON_ECS                                                                              \
    "{\"source\":{\"ip\":\"81.2.69.160\",\"geo\":{\"city_name\":\"London\","                  \
    "\"country_name\":\"United Kingdom\",\"continent_code\":\"EU\","                            \
    "\"country_iso_code\":\"GB\",\"postal_code\":\"EC2V\",\"region_name\":\"City of London\","  \
    "\"region_iso_code\":\"GB-WLL\",\"timezone\":\"Europe/London\","                           \
    "\"location\":{\"lat\":51.5142,\"lon\":-0.0931}}}}"

TEST(test_city_ecs)
{
    char y[512];
    yaml(y, sizeof(y), "source: '[source][ip]'", city);
    WITH(y) {
        /* The target is [source], from [source][ip]; the most specific subdivision wins. */
        EXPECT(w.k, "{\"source\":{\"ip\":\"81.2.69.160\"}}", LONDON_ECS);
        /* dma_code (metro_code) lands under [mmdb], as Logstash's ECS names say. */
        EXPECT(w.k, "{\"source\":{\"ip\":\"216.160.83.58\"}}",
               "{\"source\":{\"ip\":\"216.160.83.58\",\"geo\":{\"city_name\":\"Milton\","
               "\"country_name\":\"United States\",\"continent_code\":\"NA\","
               "\"country_iso_code\":\"US\",\"postal_code\":\"98354\","
               "\"region_name\":\"Washington\",\"region_iso_code\":\"US-WA\","
               "\"timezone\":\"America/Los_Angeles\",\"location\":{\"lat\":47.2513,"
               "\"lon\":-122.3149}},\"mmdb\":{\"dma_code\":819}}}");
        /* IPv6, a country-level record; the address comes back in canonical form. */
        EXPECT(w.k, "{\"source\":{\"ip\":\"2001:DB8:0:0::7\"}}",
               "{\"source\":{\"ip\":\"2001:db8::7\",\"geo\":{\"country_name\":\"Australia\","
               "\"continent_code\":\"OC\",\"country_iso_code\":\"AU\","
               "\"timezone\":\"Australia/Sydney\",\"location\":{\"lat\":-33.494,"
               "\"lon\":143.2104}}}}");
    }
}

TEST(test_city_legacy)
{
    char y[512];
    yaml(y, sizeof(y), "source: clientip, ecs_compatibility: disabled", city);
    WITH(y) {
        EXPECT(w.k, "{\"clientip\":\"81.2.69.160\"}",
               "{\"clientip\":\"81.2.69.160\",\"geoip\":{\"city_name\":\"London\","
               "\"country_name\":\"United Kingdom\",\"continent_code\":\"EU\","
               "\"country_code2\":\"GB\",\"country_code3\":\"GB\",\"ip\":\"81.2.69.160\","
               "\"postal_code\":\"EC2V\",\"region_name\":\"City of London\","
               "\"region_code\":\"WLL\",\"timezone\":\"Europe/London\","
               "\"location\":{\"lat\":51.5142,\"lon\":-0.0931},\"latitude\":51.5142,"
               "\"longitude\":-0.0931}}");
        /* An array: its first item. */
        EXPECT(w.k, "{\"clientip\":[\"2001:db8::1\",\"81.2.69.160\"]}",
               "{\"clientip\":[\"2001:db8::1\",\"81.2.69.160\"],\"geoip\":{"
               "\"country_name\":\"Australia\",\"continent_code\":\"OC\","
               "\"country_code2\":\"AU\",\"country_code3\":\"AU\",\"ip\":\"2001:db8::1\","
               "\"timezone\":\"Australia/Sydney\",\"location\":{\"lat\":-33.494,"
               "\"lon\":143.2104},\"latitude\":-33.494,\"longitude\":143.2104}}");
    }
}

TEST(test_fields_and_target)
{
    char y[512];
    yaml(y, sizeof(y),
         "source: ip, target: '[client]', fields: [CITY_NAME, location, continent_name, network]",
         city);
    WITH(y) {
        EXPECT(w.k, "{\"ip\":\"81.2.69.160\"}",
               "{\"ip\":\"81.2.69.160\",\"client\":{\"geo\":{\"city_name\":\"London\","
               "\"continent_name\":\"Europe\",\"location\":{\"lat\":51.5142,"
               "\"lon\":-0.0931}},\"ip_traits\":{\"network\":\"81.2.69.0/24\"}}}");
    }
}

TEST(test_asn)
{
    char y[512];
    yaml(y, sizeof(y), "source: '[destination][ip]'", asn);
    WITH(y) {
        EXPECT(w.k, "{\"destination\":{\"ip\":\"1.128.0.1\"}}",
               "{\"destination\":{\"ip\":\"1.128.0.1\",\"as\":{\"number\":1221,"
               "\"organization\":{\"name\":\"Telstra Pty Ltd\"}}}}");
        EXPECT(w.k, "{\"destination\":{\"ip\":\"2600:6000::1\"}}",
               "{\"destination\":{\"ip\":\"2600:6000::1\",\"as\":{\"number\":237,"
               "\"organization\":{\"name\":\"Merit Network Inc.\"}}}}");
        /* A record without an organization: the number alone. */
        EXPECT(w.k, "{\"destination\":{\"ip\":\"12.81.92.9\"}}",
               "{\"destination\":{\"ip\":\"12.81.92.9\",\"as\":{\"number\":7018}}}");
    }
    yaml(y, sizeof(y), "source: ip, ecs_compatibility: disabled", asn);
    WITH(y) {
        EXPECT(w.k, "{\"ip\":\"1.128.0.1\"}",
               "{\"ip\":\"1.128.0.1\",\"geoip\":{\"asn\":1221,\"as_org\":\"Telstra Pty Ltd\","
               "\"ip\":\"1.128.0.1\"}}");
    }
}

/* What the database lacks fails and is tagged, as Logstash does: once a lookup
 * ran, the target is there, empty. Nothing to look up: tagged, no target. */
TEST(test_lookup_failures)
{
    char y[512];
    yaml(y, sizeof(y), "source: ip, ecs_compatibility: disabled", city);
    WITH(y) {
        EXPECT_RC(w.k, "{\"ip\":\"10.1.2.3\"}",
                  "{\"ip\":\"10.1.2.3\",\"geoip\":{},\"tags\":[\"_geoip_lookup_failure\"]}", FAIL);
        EXPECT_RC(w.k, "{\"ip\":\"127.0.0.1\"}",
                  "{\"ip\":\"127.0.0.1\",\"geoip\":{},\"tags\":[\"_geoip_lookup_failure\"]}", FAIL);
        /* A record without a location gives nothing (Logstash's rule for City). */
        EXPECT_RC(w.k, "{\"ip\":\"198.51.100.7\"}",
                  "{\"ip\":\"198.51.100.7\",\"geoip\":{},\"tags\":[\"_geoip_lookup_failure\"]}",
                  FAIL);
        /* Not an address; a host name is never resolved. */
        EXPECT_RC(w.k, "{\"ip\":\"999.1.1.1\"}",
                  "{\"ip\":\"999.1.1.1\",\"geoip\":{},\"tags\":[\"_geoip_lookup_failure\"]}", FAIL);
        EXPECT_RC(w.k, "{\"ip\":\"localhost\"}",
                  "{\"ip\":\"localhost\",\"geoip\":{},\"tags\":[\"_geoip_lookup_failure\"]}", FAIL);
        EXPECT_RC(w.k, "{\"ip\":\"81.2.69.160 \\u0000x\"}",
                  "{\"ip\":\"81.2.69.160 \\u0000x\",\"geoip\":{},"
                  "\"tags\":[\"_geoip_lookup_failure\"]}", FAIL);
        EXPECT_RC(w.k, "{\"ip\":\"1111111111111111111111111111111111111111111111111111111111111111"
                       "1111111111\"}",
                  "{\"ip\":\"1111111111111111111111111111111111111111111111111111111111111111"
                  "1111111111\",\"geoip\":{},\"tags\":[\"_geoip_lookup_failure\"]}", FAIL);
        /* An existing target is kept as it is. */
        EXPECT_RC(w.k, "{\"ip\":\"10.0.0.1\",\"geoip\":{\"x\":1}}",
                  "{\"ip\":\"10.0.0.1\",\"geoip\":{\"x\":1},\"tags\":[\"_geoip_lookup_failure\"]}",
                  FAIL);
        EXPECT_RC(w.k, "{\"x\":1}", "{\"x\":1,\"tags\":[\"_geoip_lookup_failure\"]}", FAIL);
        EXPECT_RC(w.k, "{\"ip\":\"  \"}", "{\"ip\":\"  \",\"tags\":[\"_geoip_lookup_failure\"]}",
                  FAIL);
        EXPECT_RC(w.k, "{\"ip\":42}", "{\"ip\":42,\"tags\":[\"_geoip_lookup_failure\"]}", FAIL);
    }
    yaml(y, sizeof(y), "source: ip, ecs_compatibility: disabled, fields: [city_name]", city);
    WITH(y) {
        /* Spaces around an address are not part of it. */
        EXPECT(w.k, "{\"ip\":\" 81.2.69.1\\t\"}",
               "{\"ip\":\" 81.2.69.1\\t\",\"geoip\":{\"city_name\":\"London\"}}");
    }
    yaml(y, sizeof(y), "source: ip, ecs_compatibility: disabled, tag_on_failure: [nogeo]", city);
    WITH(y) {
        EXPECT_RC(w.k, "{\"ip\":\"10.1.2.3\"}", "{\"ip\":\"10.1.2.3\",\"geoip\":{},"
                  "\"tags\":[\"nogeo\"]}", FAIL);
    }
}

/* A database whose records point past its data: every lookup fails, tagged. */
TEST(test_corrupt_data)
{
    char y[512];
    yaml(y, sizeof(y), "source: ip, ecs_compatibility: disabled", corrupt);
    WITH(y) {
        EXPECT_RC(w.k, "{\"ip\":\"81.2.69.160\"}",
                  "{\"ip\":\"81.2.69.160\",\"geoip\":{},\"tags\":[\"_geoip_lookup_failure\"]}",
                  FAIL);
    }
}

static void expect_config_error(const char *yml, const char *want)
{
    struct sl_cfg cfg;
    void *k = load(&cfg, yml);
    CHECK(k == NULL);
    if (!strstr(errs(&cfg), want)) {
        fprintf(stderr, "config error '%s' lacks '%s'\n", errs(&cfg), want);
        t_failed_checks++;
    }
    unload(k);
    sl_cfg_free(&cfg);
}

TEST(test_config_errors)
{
    char y[512];
    expect_config_error("geoip: {source: '[source][ip]'}\n",
                        "t.yml:1:8: pipeline.filters[0] (geoip): no 'database': sluice ships no "
                        "GeoLite2 database; set 'database' to the path of a GeoLite2-City.mmdb");
    expect_config_error("geoip: {source: ip, default_database_type: ASN}\n", "GeoLite2-ASN.mmdb");
    yaml(y, sizeof(y), "source: clientip", city);
    expect_config_error(y, "in ECS mode a 'target' is required when 'source' is not an `ip` field");
    yaml(y, sizeof(y), "source: ip, ecs_compatibility: disabled, fields: [city_name, town]", city);
    expect_config_error(y, "t.yml:1:70: pipeline.filters[0] (geoip): unknown field 'town'");
    yaml(y, sizeof(y), "source: ip, target: source", "/nonexistent.mmdb");
    expect_config_error(y, "cannot use '/nonexistent.mmdb': ");
    /* Metadata that does not fit the file: refused when opened, never looked up. */
    yaml(y, sizeof(y), "source: ip, target: source", broken);
    expect_config_error(y, "invalid metadata");
    /* Garbage and a truncated database. */
    char junk[128];
    snprintf(junk, sizeof(junk), "%s/junk.mmdb", dir);
    FILE *f = fopen(junk, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("not a database at all", f);
        fclose(f);
    }
    yaml(y, sizeof(y), "source: ip, target: source", junk);
    expect_config_error(y, "cannot use '");
    unlink(junk);
}

TEST(test_ecs_target_warning)
{
    char y[512];
    yaml(y, sizeof(y), "source: '[a][ip]'", city);
    char *log = log_of_load(y, SL_ECS_V8);
    CHECK(strstr(log, "ECS expects the target of geo fields to be one of client, destination, "
                      "host, observer, server, source (not '[a]')") != NULL);
    free(log);
    yaml(y, sizeof(y), "source: '[client][ip]'", city);
    log = log_of_load(y, SL_ECS_V8);
    CHECK_STR(log, "");
    free(log);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/geoip_test_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "python3 tests/data/geoip/make_test_dbs.py %s", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "%s failed (run from the repository's root)\n", cmd);
        return 1;
    }
    snprintf(city, sizeof(city), "%s/City.mmdb", dir);
    snprintf(asn, sizeof(asn), "%s/ASN.mmdb", dir);
    snprintf(broken, sizeof(broken), "%s/Broken.mmdb", dir);
    snprintf(corrupt, sizeof(corrupt), "%s/Corrupt.mmdb", dir);
    RUN(test_descriptor);
    RUN(test_city_ecs);
    RUN(test_city_legacy);
    RUN(test_fields_and_target);
    RUN(test_asn);
    RUN(test_lookup_failures);
    RUN(test_corrupt_data);
    RUN(test_config_errors);
    RUN(test_ecs_target_warning);
    unlink(city);
    unlink(asn);
    unlink(broken);
    unlink(corrupt);
    rmdir(dir);
    return TEST_SUMMARY();
}
