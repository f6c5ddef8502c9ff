/*
 * filter_geoip.c - the `geoip` filter: looks an IP address up in a MaxMind DB
 * (.mmdb: GeoLite2/GeoIP2 City, Country, ASN or ISP) with libmaxminddb and
 * sets what the database knows about it, the way Logstash's geoip filter does:
 * ECS names ([target][geo][city_name], [target][geo][location] {lat, lon},
 * [target][as][number] ...) under a target derived from the source
 * ([source][ip] -> [source]), or the legacy names under [geoip]. An address
 * the database does not hold (a private one, say) fails: the event is tagged
 * _geoip_lookup_failure.
 *
 * The database is memory-mapped once at init (libmaxminddb checks its
 * metadata and refuses a malformed file) and only read afterwards: lookups
 * from several worker threads at once need no lock. Lookups are not cached:
 * one walks at most 128 nodes of the mapped tree, under a microsecond
 * (docs/benchmarks.md).
 */
#include <arpa/inet.h>
#include <maxminddb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sluice/log.h"
#include "sluice/plugin.h"

/* The fields Logstash knows, in the order it sets them. */
enum gfield {
    F_ASN, F_AS_ORG, F_CITY_NAME, F_COUNTRY_NAME, F_CONTINENT_CODE, F_CONTINENT_NAME,
    F_COUNTRY_CODE2, F_COUNTRY_CODE3, F_IP, F_ISP, F_POSTAL_CODE, F_DMA_CODE, F_REGION_NAME,
    F_REGION_CODE, F_REGION_ISO_CODE, F_TIMEZONE, F_LOCATION, F_LATITUDE, F_LONGITUDE,
    F_ORGANIZATION, F_NETWORK,
    F_N
};

static const struct {
    const char *name;    /* as `fields` lists it */
    const char *ecs;     /* under the target in ECS mode; NULL: not written there */
    const char *legacy;  /* under the target with ecs_compatibility: disabled */
} gfields[F_N] = {
    [F_ASN] = {"autonomous_system_number", "[as][number]", "[asn]"},
    [F_AS_ORG] = {"autonomous_system_organization", "[as][organization][name]", "[as_org]"},
    [F_CITY_NAME] = {"city_name", "[geo][city_name]", "[city_name]"},
    [F_COUNTRY_NAME] = {"country_name", "[geo][country_name]", "[country_name]"},
    [F_CONTINENT_CODE] = {"continent_code", "[geo][continent_code]", "[continent_code]"},
    [F_CONTINENT_NAME] = {"continent_name", "[geo][continent_name]", "[continent_name]"},
    [F_COUNTRY_CODE2] = {"country_code2", "[geo][country_iso_code]", "[country_code2]"},
    [F_COUNTRY_CODE3] = {"country_code3", NULL, "[country_code3]"},
    [F_IP] = {"ip", "[ip]", "[ip]"},
    [F_ISP] = {"isp", "[mmdb][isp]", "[isp]"},
    [F_POSTAL_CODE] = {"postal_code", "[geo][postal_code]", "[postal_code]"},
    [F_DMA_CODE] = {"dma_code", "[mmdb][dma_code]", "[dma_code]"},
    [F_REGION_NAME] = {"region_name", "[geo][region_name]", "[region_name]"},
    [F_REGION_CODE] = {"region_code", "[geo][region_code]", "[region_code]"},
    [F_REGION_ISO_CODE] = {"region_iso_code", "[geo][region_iso_code]", "[region_iso_code]"},
    [F_TIMEZONE] = {"timezone", "[geo][timezone]", "[timezone]"},
    [F_LOCATION] = {"location", "[geo][location]", "[location]"},
    [F_LATITUDE] = {"latitude", "[geo][location][lat]", "[latitude]"},
    [F_LONGITUDE] = {"longitude", "[geo][location][lon]", "[longitude]"},
    [F_ORGANIZATION] = {"organization", "[mmdb][organization]", "[organization]"},
    [F_NETWORK] = {"network", "[ip_traits][network]", "[network]"},
};

enum dbtype { DB_CITY, DB_COUNTRY, DB_ASN, DB_ISP };

#define BIT(f) (1u << (f))
/* What each kind of database gives when `fields` is not set (Logstash's defaults). */
static const unsigned db_defaults[] = {
    [DB_CITY] = BIT(F_IP) | BIT(F_CITY_NAME) | BIT(F_CONTINENT_CODE) | BIT(F_COUNTRY_NAME) |
                BIT(F_COUNTRY_CODE2) | BIT(F_COUNTRY_CODE3) | BIT(F_POSTAL_CODE) |
                BIT(F_DMA_CODE) | BIT(F_REGION_NAME) | BIT(F_REGION_ISO_CODE) |
                BIT(F_TIMEZONE) | BIT(F_LOCATION) | BIT(F_LATITUDE) | BIT(F_LONGITUDE),
    [DB_COUNTRY] = BIT(F_IP) | BIT(F_COUNTRY_CODE2) | BIT(F_COUNTRY_NAME) | BIT(F_CONTINENT_NAME),
    [DB_ASN] = BIT(F_IP) | BIT(F_ASN) | BIT(F_AS_ORG),
    [DB_ISP] = BIT(F_IP) | BIT(F_ASN) | BIT(F_AS_ORG) | BIT(F_ISP) | BIT(F_ORGANIZATION),
};

/* Targets ECS defines geo fields under (Logstash warns about any other). */
static const char *const ecs_targets[] = {"client", "destination", "host", "observer", "server",
                                          "source", NULL};

static const char *const db_types[] = {"City", "ASN", NULL};

struct filter_geoip {
    /* Options. */
    struct sl_fieldref source;
    struct sl_fieldref target;
    char *database;
    int default_type;            /* City | ASN: only names the database to ask for */
    struct sl_strv fields;
    int64_t cache_size;
    int ecs;

    /* Made by init. */
    MMDB_s mmdb;
    bool open;
    enum dbtype type;
    unsigned want;               /* BIT(F_*) */
    bool ecs_mode;
    struct sl_fieldref out[F_N]; /* where each wanted field goes */
};

static const struct sl_opt geoip_opts[] = {
    {.name = "source", .type = SL_OPT_FIELD, .flags = SL_OPT_REQUIRED | SL_OPT_NONEMPTY,
     .offset = offsetof(struct filter_geoip, source),
     .doc = "the field holding the IP address (of an array, the first item)"},
    {.name = "target", .type = SL_OPT_FIELD, .offset = offsetof(struct filter_geoip, target),
     .doc = "where the fields go; ECS default: the source's parent when it is an `ip` field "
            "(`[source][ip]` gives `source`), else required; legacy default: `geoip`"},
    {.name = "database", .type = SL_OPT_STRING, .offset = offsetof(struct filter_geoip, database),
     .doc = "path to a GeoLite2/GeoIP2 City, Country, ASN or ISP .mmdb (required: no "
            "database ships with sluice)"},
    {.name = "default_database_type", .type = SL_OPT_ENUM, .def = "City", .choices = db_types,
     .offset = offsetof(struct filter_geoip, default_type),
     .doc = "City or ASN: which GeoLite2 database the error asks for when `database` is missing"},
    {.name = "fields", .type = SL_OPT_LIST, .offset = offsetof(struct filter_geoip, fields),
     .doc = "the fields to set (city_name, country_code2, location, autonomous_system_number "
            "...); default: the database type's usual set"},
    {.name = "cache_size", .type = SL_OPT_INT, .def = "1000", .min = 1, .max = 100000000,
     .offset = offsetof(struct filter_geoip, cache_size),
     .doc = "accepted for Logstash configs, unused: lookups read the memory-mapped "
            "database directly"},
    {.name = "ecs_compatibility", .type = SL_OPT_ENUM, .choices = sl_ecs_choices,
     .offset = offsetof(struct filter_geoip, ecs),
     .doc = "v8/v1: ECS names under the target; disabled: legacy names under `geoip`; "
            "default: pipeline.ecs_compatibility"},
    {0},
};

/* ---- looking up ---- */

/* The value at path (NULL-terminated) under e, when it has the wanted type. */
static bool get(MMDB_entry_s *e, MMDB_entry_data_s *d, uint32_t type, ...)
{
    va_list ap;
    va_start(ap, type);
    int rc = MMDB_vget_value(e, d, ap);
    va_end(ap);
    return rc == MMDB_SUCCESS && d->has_data && d->type == type;
}

static bool get_str(MMDB_entry_s *e, const char **s, size_t *len, const char *k1,
                    const char *k2, const char *k3)
{
    MMDB_entry_data_s d;
    if (!get(e, &d, MMDB_DATA_TYPE_UTF8_STRING, k1, k2, k3, NULL)) {
        return false;
    }
    *s = d.utf8_string;
    *len = d.data_size;
    return true;
}

static bool get_double(MMDB_entry_s *e, double *v, const char *k1, const char *k2)
{
    MMDB_entry_data_s d;
    if (get(e, &d, MMDB_DATA_TYPE_DOUBLE, k1, k2, NULL)) {
        *v = d.double_value;
        return true;
    }
    if (get(e, &d, MMDB_DATA_TYPE_FLOAT, k1, k2, NULL)) {
        *v = d.float_value;
        return true;
    }
    return false;
}

static bool get_uint(MMDB_entry_s *e, int64_t *v, const char *k1, const char *k2)
{
    MMDB_entry_data_s d;
    if (MMDB_get_value(e, &d, k1, k2, NULL) != MMDB_SUCCESS || !d.has_data) {
        return false;
    }
    switch (d.type) {
    case MMDB_DATA_TYPE_UINT16: *v = d.uint16; return true;
    case MMDB_DATA_TYPE_UINT32: *v = d.uint32; return true;
    case MMDB_DATA_TYPE_INT32: *v = d.int32; return true;
    case MMDB_DATA_TYPE_UINT64:
        if (d.uint64 > INT64_MAX) {
            return false;
        }
        *v = (int64_t)d.uint64;
        return true;
    default: return false;
    }
}

/* Sets field f of the event to a string (s[0..len)). */
static void set_str(const struct filter_geoip *g, struct sl_value *ev, enum gfield f,
                    const char *s, size_t len)
{
    struct sl_value *slot = sl_fieldref_put(&g->out[f], ev);
    if (slot) {
        sl_value_set_str(slot, s, len);
    }
}

static void set_from(const struct filter_geoip *g, struct sl_value *ev, MMDB_entry_s *e,
                     enum gfield f, const char *k1, const char *k2, const char *k3)
{
    const char *s;
    size_t len;
    if ((g->want & BIT(f)) && get_str(e, &s, &len, k1, k2, k3)) {
        set_str(g, ev, f, s, len);
    }
}

/* The most specific subdivision (the last of "subdivisions") as the index string, or false. */
static bool last_subdivision(MMDB_entry_s *e, char *idx, size_t cap)
{
    MMDB_entry_data_s d;
    if (!get(e, &d, MMDB_DATA_TYPE_ARRAY, "subdivisions", NULL) || d.data_size == 0) {
        return false;
    }
    snprintf(idx, cap, "%u", d.data_size - 1);
    return true;
}

/* Network of the match: the looked-up address masked to the record's prefix. */
static void set_network(const struct filter_geoip *g, struct sl_value *ev, const char *ip,
                        const MMDB_lookup_result_s *r)
{
    unsigned char a[16];
    char text[INET6_ADDRSTRLEN + 8];
    int fam = strchr(ip, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(fam, ip, a) != 1) {
        return;
    }
    unsigned bits = r->netmask;
    unsigned total = fam == AF_INET ? 32 : 128;
    if (fam == AF_INET && g->mmdb.metadata.ip_version == 6) {
        bits = bits >= 96 ? bits - 96 : 0;  /* IPv4 sits under ::/96 in an IPv6 tree */
    }
    for (unsigned i = bits; i < total; i++) {
        a[i / 8] &= (unsigned char)~(0x80u >> (i % 8));
    }
    char addr[INET6_ADDRSTRLEN];
    if (!inet_ntop(fam, a, addr, sizeof(addr))) {
        return;
    }
    int n = snprintf(text, sizeof(text), "%s/%u", addr, bits);
    set_str(g, ev, F_NETWORK, text, (size_t)n);
}

/* Writes what the record says. false when it says nothing Logstash would write. */
static bool apply(const struct filter_geoip *g, struct sl_value *ev, MMDB_entry_s *e,
                  const char *ip, const MMDB_lookup_result_s *r)
{
    double lat = 0, lon = 0;
    bool has_lat = get_double(e, &lat, "location", "latitude");
    bool has_lon = get_double(e, &lon, "location", "longitude");
    /* As Logstash: a City record without a location is no result. */
    if (g->type == DB_CITY && !has_lat && !has_lon) {
        return false;
    }
    int64_t n;
    if ((g->want & BIT(F_ASN)) && get_uint(e, &n, "autonomous_system_number", NULL)) {
        struct sl_value *slot = sl_fieldref_put(&g->out[F_ASN], ev);
        if (slot) {
            sl_value_set_int(slot, n);
        }
    }
    set_from(g, ev, e, F_AS_ORG, "autonomous_system_organization", NULL, NULL);
    set_from(g, ev, e, F_CITY_NAME, "city", "names", "en");
    set_from(g, ev, e, F_COUNTRY_NAME, "country", "names", "en");
    set_from(g, ev, e, F_CONTINENT_CODE, "continent", "code", NULL);
    set_from(g, ev, e, F_CONTINENT_NAME, "continent", "names", "en");
    set_from(g, ev, e, F_COUNTRY_CODE2, "country", "iso_code", NULL);
    set_from(g, ev, e, F_COUNTRY_CODE3, "country", "iso_code", NULL);
    if (g->want & BIT(F_IP)) {
        set_str(g, ev, F_IP, ip, strlen(ip));
    }
    set_from(g, ev, e, F_ISP, "isp", NULL, NULL);
    set_from(g, ev, e, F_POSTAL_CODE, "postal", "code", NULL);
    if ((g->want & BIT(F_DMA_CODE)) && get_uint(e, &n, "location", "metro_code")) {
        struct sl_value *slot = sl_fieldref_put(&g->out[F_DMA_CODE], ev);
        if (slot) {
            sl_value_set_int(slot, n);
        }
    }
    char idx[16];
    if (last_subdivision(e, idx, sizeof(idx))) {
        const char *code, *country;
        size_t clen, colen;
        MMDB_entry_data_s d;
        if ((g->want & BIT(F_REGION_NAME)) &&
            get(e, &d, MMDB_DATA_TYPE_UTF8_STRING, "subdivisions", idx, "names", "en", NULL)) {
            set_str(g, ev, F_REGION_NAME, d.utf8_string, d.data_size);
        }
        if (get_str(e, &code, &clen, "subdivisions", idx, "iso_code")) {
            if (g->want & BIT(F_REGION_CODE)) {
                set_str(g, ev, F_REGION_CODE, code, clen);
            }
            if ((g->want & BIT(F_REGION_ISO_CODE)) &&
                get_str(e, &country, &colen, "country", "iso_code", NULL)) {
                char buf[64];
                int w = snprintf(buf, sizeof(buf), "%.*s-%.*s", (int)SL_MIN(colen, 16u), country,
                                 (int)SL_MIN(clen, 32u), code);
                set_str(g, ev, F_REGION_ISO_CODE, buf, (size_t)w);
            }
        }
    }
    set_from(g, ev, e, F_TIMEZONE, "location", "time_zone", NULL);
    if ((g->want & BIT(F_LOCATION)) && has_lat && has_lon) {
        struct sl_value *slot = sl_fieldref_put(&g->out[F_LOCATION], ev);
        if (slot) {
            sl_value_set_object(slot);
            sl_value_set_double(sl_obj_putc(slot, "lat"), lat);
            sl_value_set_double(sl_obj_putc(slot, "lon"), lon);
        }
    }
    struct sl_value *slot;
    if ((g->want & BIT(F_LATITUDE)) && has_lat &&
        (slot = sl_fieldref_put(&g->out[F_LATITUDE], ev))) {
        sl_value_set_double(slot, lat);
    }
    if ((g->want & BIT(F_LONGITUDE)) && has_lon &&
        (slot = sl_fieldref_put(&g->out[F_LONGITUDE], ev))) {
        sl_value_set_double(slot, lon);
    }
    set_from(g, ev, e, F_ORGANIZATION, "organization", NULL, NULL);
    if (g->want & BIT(F_NETWORK)) {
        set_network(g, ev, ip, r);
    }
    return true;
}

/* Longest text taken as an address (an IPv6 address with a zone fits). */
#define GEOIP_MAX_IP 64

static enum sl_filter_result geoip_filter(void *inst, struct sl_value *ev)
{
    struct filter_geoip *g = inst;
    const struct sl_value *v = sl_fieldref_get(&g->source, ev);
    if (v && v->type == SL_V_ARRAY) {
        v = v->u.a.len ? &v->u.a.items[0] : NULL;
    }
    if (!v || v->type != SL_V_STRING) {
        return SL_FILTER_FAIL;  /* as Logstash: nothing to look up fails */
    }
    /* Trimmed, as Logstash's blank check and InetAddress take it. */
    const char *s = v->u.s.ptr;
    size_t len = v->u.s.len;
    while (len && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
        len--;
    }
    if (len == 0) {
        return SL_FILTER_FAIL;
    }
    char ip[GEOIP_MAX_IP + 1];
    bool ok = false;
    MMDB_lookup_result_s r = {0};
    if (len <= GEOIP_MAX_IP && !memchr(s, '\0', len)) {
        memcpy(ip, s, len);
        ip[len] = '\0';
        int gai = 0, err = 0;
        /* Numeric addresses only: libmaxminddb asks getaddrinfo with
         * AI_NUMERICHOST, so no name is ever resolved on a worker. */
        r = MMDB_lookup_string(&g->mmdb, ip, &gai, &err);
        ok = gai == 0 && err == MMDB_SUCCESS && r.found_entry;
        if (ok) {
            /* The canonical text of the address, as Logstash writes [ip]. */
            unsigned char a[16];
            int fam = strchr(ip, ':') ? AF_INET6 : AF_INET;
            char canon[INET6_ADDRSTRLEN];
            if (!strchr(ip, '%') && inet_pton(fam, ip, a) == 1 &&
                inet_ntop(fam, a, canon, sizeof(canon))) {
                snprintf(ip, sizeof(ip), "%s", canon);
            }
        }
    }
    /* As Logstash: once a lookup ran, the target exists, even when empty. */
    struct sl_value *t = g->target.nsegs ? sl_fieldref_get(&g->target, ev) : NULL;
    if (!t || t->type == SL_V_NULL) {
        struct sl_value *slot = sl_fieldref_put(&g->target, ev);
        if (slot) {
            sl_value_set_object(slot);
        }
    }
    if (!ok || !apply(g, ev, &r.entry, ip, &r)) {
        return SL_FILTER_FAIL;
    }
    return SL_FILTER_KEEP;
}

/* ---- init ---- */

static int field_index(const char *name)
{
    for (int f = 0; f < F_N; f++) {
        if (strcasecmp(name, gfields[f].name) == 0) {
            return f;
        }
    }
    return -1;
}

/* The kind of database its metadata names, or -1 (as Logstash: by substring). */
static int type_of(const char *t)
{
    if (strstr(t, "City")) {
        return DB_CITY;
    }
    if (strstr(t, "Country")) {
        return DB_COUNTRY;
    }
    if (strstr(t, "ASN")) {
        return DB_ASN;
    }
    if (strstr(t, "ISP")) {
        return DB_ISP;
    }
    return -1;
}

/* ECS: the source's parent when the source is an `ip` field. */
static int derive_target(struct filter_geoip *g, struct sl_plugin_ctx *ctx)
{
    size_t n = g->source.nsegs;
    if (n < 2 || g->source.segs[n - 1].len != 2 || memcmp(g->source.segs[n - 1].name, "ip", 2)) {
        sl_plugin_error(ctx, "target", "in ECS mode a 'target' is required when 'source' is "
                                       "not an `ip` field such as [client][ip]");
        return SL_EINVAL;
    }
    struct sl_buf b;
    sl_buf_init(&b, 0);
    for (size_t i = 0; i + 1 < n; i++) {
        sl_buf_printf(&b, "[%.*s]", (int)g->source.segs[i].len, g->source.segs[i].name);
    }
    int rc = sl_fieldref_init(&g->target, sl_buf_cstr(&b));
    sl_buf_free(&b);
    return rc;
}

static int geoip_init(void *inst, struct sl_plugin_ctx *ctx)
{
    struct filter_geoip *g = inst;
    g->ecs_mode = sl_plugin_ecs(ctx, g->ecs) != SL_ECS_DISABLED;
    if (!g->database || !*g->database) {
        sl_plugin_error(ctx, "database", "no 'database': sluice ships no GeoLite2 database; "
                        "set 'database' to the path of a GeoLite2-%s.mmdb (or any GeoIP2 "
                        "City, Country, ASN or ISP database)", db_types[g->default_type]);
        return SL_EINVAL;
    }
    if (!g->target.nsegs) {
        if (g->ecs_mode) {
            if (derive_target(g, ctx) != 0) {
                return SL_EINVAL;
            }
        } else {
            sl_fieldref_init(&g->target, "geoip");
        }
    }
    if (g->ecs_mode && !ctx->check_only) {
        bool known = false;
        for (size_t i = 0; g->target.nsegs == 1 && ecs_targets[i]; i++) {
            known = known || (strlen(ecs_targets[i]) == g->target.segs[0].len &&
                              memcmp(ecs_targets[i], g->target.segs[0].name,
                                     g->target.segs[0].len) == 0);
        }
        if (!known) {
            sl_warn("%s: ECS expects the target of geo fields to be one of client, destination, "
                    "host, observer, server, source (not '%s')", ctx->id, g->target.text);
        }
    }
    for (size_t i = 0; i < g->fields.n; i++) {
        int f = field_index(g->fields.v[i]);
        if (f < 0) {
            sl_plugin_error_at(ctx, "fields", NULL, i, "unknown field '%s' (known: city_name, "
                               "continent_code, continent_name, country_code2, country_code3, "
                               "country_name, dma_code, ip, latitude, longitude, location, "
                               "postal_code, region_name, region_code, region_iso_code, "
                               "timezone, autonomous_system_number, "
                               "autonomous_system_organization, isp, organization, network)",
                               g->fields.v[i]);
            return SL_EINVAL;
        }
        g->want |= BIT(f);
    }
    int rc = MMDB_open(g->database, MMDB_MODE_MMAP, &g->mmdb);
    if (rc != MMDB_SUCCESS) {
        sl_plugin_error(ctx, "database", "cannot use '%s': %s", g->database,
                        MMDB_strerror(rc));
        return SL_EINVAL;
    }
    g->open = true;
    const char *dbt = g->mmdb.metadata.database_type ? g->mmdb.metadata.database_type : "";
    int t = type_of(dbt);
    if (t < 0) {
        sl_plugin_error(ctx, "database", "'%s' is a '%s' database; supported: City, Country, ASN, "
                        "ISP", g->database, dbt);
        return SL_EINVAL;
    }
    g->type = (enum dbtype)t;
    if (!g->fields.n) {
        g->want = db_defaults[t];
        if (t == DB_CITY && !g->ecs_mode) {
            /* As Logstash: the legacy default is the bare region code. */
            g->want = (g->want & ~BIT(F_REGION_ISO_CODE)) | BIT(F_REGION_CODE);
        }
    }
    for (int f = 0; f < F_N; f++) {
        const char *path = g->ecs_mode ? gfields[f].ecs : gfields[f].legacy;
        if (!(g->want & BIT(f)) || !path) {
            g->want &= ~BIT(f);
            continue;
        }
        struct sl_buf b;
        sl_buf_init(&b, 0);
        for (size_t i = 0; i < g->target.nsegs; i++) {
            sl_buf_printf(&b, "[%.*s]", (int)g->target.segs[i].len, g->target.segs[i].name);
        }
        sl_buf_printf(&b, "%s", path);
        rc = sl_fieldref_init(&g->out[f], sl_buf_cstr(&b));
        sl_buf_free(&b);
        if (rc != 0) {
            sl_plugin_error(ctx, "target", "'%s' cannot hold fields", g->target.text);
            return SL_EINVAL;
        }
    }
    sl_filter_touches_field(ctx, &g->source);
    sl_filter_touches_field(ctx, &g->target);
    return 0;
}

static void geoip_fini(void *inst)
{
    struct filter_geoip *g = inst;
    if (g->open) {
        MMDB_close(&g->mmdb);
    }
    for (int f = 0; f < F_N; f++) {
        sl_fieldref_free(&g->out[f]);
    }
}

const struct sl_plugin sl_plugin_filter_geoip = {
    .name = "geoip",
    .kind = SL_PLUGIN_FILTER,
    .summary = "adds where an IP address is (city, country, location) or who holds it (AS "
               "number, organization) from a MaxMind .mmdb database",
    .options = geoip_opts,
    .size = sizeof(struct filter_geoip),
    .failure_tag = "_geoip_lookup_failure",
    .init = geoip_init,
    .fini = geoip_fini,
    .filter = geoip_filter,
};
