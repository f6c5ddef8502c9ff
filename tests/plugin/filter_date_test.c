/*
 * filter_date_test.c - the date filter driven through the core, as the
 * pipeline runs it: the exact @timestamp (to the millisecond) for every
 * pattern letter and keyword, time zones (TZif tables, the POSIX footer rule
 * past them, DST gaps and overlaps, fixed offsets, zones inside the text),
 * year guessing around new year, failures (verdict and tag_on_failure), the
 * target option, and config errors with FILE:LINE:COL.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILTER_PLUGIN sl_plugin_filter_date
#define FILTER_KEY "f"
#define FILTER_ID "filters[1] (date)"
#include "filter_harness.h"

static struct sl_cfg g_cfg;

/* Instantiates the filter from the options map under "f:" in yaml. */
static void *make(const char *yaml)
{
    sl_cfg_free(&g_cfg);
    void *f = load(&g_cfg, yaml);
    if (!f && !g_cfg.root) {
        fprintf(stderr, "bad test YAML: %s\n%s", yaml, errs(&g_cfg));
        abort();
    }
    return f;
}

/* The errors of a config that must not load ("(loaded)" if it did). */
static const char *error_of(const char *yaml)
{
    void *f = make(yaml);
    if (f) {
        unload(f);
        return "(loaded)";
    }
    return errs(&g_cfg);
}

static struct sl_value ev_from(const char *json)
{
    struct sl_value v;
    memset(&v, 0, sizeof(v));
    char err[128];
    if (sl_json_parse(json, strlen(json), &v, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "bad test JSON: %s: %s\n", json, err);
        abort();
    }
    return v;
}

/* The verdict as the prefix run_json() shows it: nothing for KEEP. */
static const char *verdict(int rc)
{
    switch (rc) {
    case SL_FILTER_KEEP:
        return "";
    case SL_FILTER_DROP:
        return "DROPPED ";
    case SL_FILTER_FAIL:
        return "FAIL ";
    default:
        return "FAIL_TAGGED ";
    }
}

/* The verdict and the whole event after the filter, as compact JSON (static storage). */
static const char *run_json(void *f, const char *json)
{
    static char out[1024];
    struct sl_value ev = ev_from(json);
    int rc = run(f, &ev);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_json_write(&b, &ev, NULL);
    snprintf(out, sizeof(out), "%s%s", verdict(rc), sl_buf_cstr(&b));
    sl_buf_free(&b);
    sl_value_clear(&ev);
    return out;
}

/*
 * Parses text (a JSON value) with the filter made from opts ("{...}" options);
 * returns the resulting @timestamp, or "FAIL" + the tags when the filter
 * failed (verdict SL_FILTER_FAIL). A kept event that gained tags, or any
 * other verdict, shows as such. The event's own @timestamp (the reference for
 * year guessing) is ref.
 */
static const char *parse_ref(const char *opts, const char *value, const char *ref)
{
    static char out[256];
    char yaml[1024];
    snprintf(yaml, sizeof(yaml), "f: %s\n", opts);
    void *f = make(yaml);
    if (!f) {
        snprintf(out, sizeof(out), "CONFIG %s", errs(&g_cfg));
        return out;
    }
    char json[512];
    snprintf(json, sizeof(json), "{\"@timestamp\":\"%s\",\"t\":%s}", ref, value);
    struct sl_value ev = ev_from(json);
    int rc = run(f, &ev);
    const struct sl_value *tags = sl_obj_getc(&ev, "tags");
    const struct sl_value *ts = sl_obj_getc(&ev, "@timestamp");
    struct sl_buf b;
    sl_buf_init(&b, 0);
    if (tags) {
        sl_json_write(&b, tags, NULL);
    }
    if (rc == SL_FILTER_FAIL) {
        snprintf(out, sizeof(out), "FAIL %s", tags ? sl_buf_cstr(&b) : "(no tags)");
    } else if (rc != SL_FILTER_KEEP) {
        snprintf(out, sizeof(out), "VERDICT %d", rc);
    } else if (tags) {
        snprintf(out, sizeof(out), "KEPT BUT TAGGED %s", sl_buf_cstr(&b));
    } else if (ts && ts->type == SL_V_STRING) {
        snprintf(out, sizeof(out), "%s", ts->u.s.ptr);
    } else {
        snprintf(out, sizeof(out), "NO TIMESTAMP");
    }
    sl_buf_free(&b);
    sl_value_clear(&ev);
    unload(f);
    return out;
}

#define REF "2026-11-27T10:00:00.000Z"

static const char *parse(const char *opts, const char *value)
{
    return parse_ref(opts, value, REF);
}

/* s as the inside of a YAML single-quoted scalar (quotes doubled). */
static const char *yaml_sq(const char *s)
{
    static char out[256];
    size_t n = 0;
    for (; *s && n + 2 < sizeof(out); s++) {
        if (*s == '\'') {
            out[n++] = '\'';
        }
        out[n++] = *s;
    }
    out[n] = '\0';
    return out;
}

/* parse() with one format and a string value. */
static const char *fmt(const char *format, const char *text)
{
    char opts[256], value[256];
    snprintf(opts, sizeof(opts), "{field: t, formats: ['%s']}", yaml_sq(format));
    snprintf(value, sizeof(value), "\"%s\"", text);
    return parse(opts, value);
}

static const char *fmt_tz(const char *format, const char *tz, const char *text)
{
    char opts[256], value[256];
    snprintf(opts, sizeof(opts), "{field: t, formats: ['%s'], timezone: '%s'}", yaml_sq(format),
             tz);
    snprintf(value, sizeof(value), "\"%s\"", text);
    return parse(opts, value);
}

TEST(joda_patterns)
{
    CHECK_STR(fmt("dd/MMM/yyyy:HH:mm:ss Z", "27/Nov/2026:07:00:00 +0100"),
              "2026-11-27T06:00:00.000Z");
    CHECK_STR(fmt("dd/MMM/yyyy:HH:mm:ss Z", "27/Nov/2026:07:00:00 -0130"),
              "2026-11-27T08:30:00.000Z");
    CHECK_STR(fmt("yyyy-MM-dd HH:mm:ss,SSS", "2026-11-27 06:00:00,123"),
              "2026-11-27T06:00:00.123Z");
    CHECK_STR(fmt("yyyy-MM-dd'T'HH:mm:ss.SSSZZ", "2026-11-27T07:00:00.123+01:00"),
              "2026-11-27T06:00:00.123Z");
    CHECK_STR(fmt("yyyy-MM-dd'T'HH:mm:ss.SSSZZ", "2026-11-27T06:00:00.123Z"),
              "2026-11-27T06:00:00.123Z");
    CHECK_STR(fmt("yyyy-MM-dd'T'HH:mm:ssZ", "2026-11-27T07:00:00+01:00"),
              "2026-11-27T06:00:00.000Z");
    CHECK_STR(fmt("yyyy-MM-dd HH:mm:ss ZZ", "2026-11-27 01:00:00 -05"),
              "2026-11-27T06:00:00.000Z");
    /* Lenient widths where the next token is not a number. */
    CHECK_STR(fmt("d/M/yyyy H:m:s", "5/3/2026 6:7:8"), "2026-03-05T06:07:08.000Z");
    CHECK_STR(fmt("dd/MM/yyyy HH:mm:ss", "5/3/2026 6:7:8"), "2026-03-05T06:07:08.000Z");
    /* Adjacent numbers are read with their pattern's exact width. */
    CHECK_STR(fmt("yyyyMMddHHmmss", "20261127060009"), "2026-11-27T06:00:09.000Z");
    CHECK_STR(fmt("yyyyMMddHHmmssSSS", "20261127060009123"), "2026-11-27T06:00:09.123Z");
    CHECK_STR(fmt("yyMMdd HHmm", "261127 0600"), "2026-11-27T06:00:00.000Z");
    /* Fractions: up to 9 digits, truncated to the millisecond. */
    CHECK_STR(fmt("HH:mm:ss.SSSSSS yyyy-MM-dd", "06:00:00.123456 2026-11-27"),
              "2026-11-27T06:00:00.123Z");
    CHECK_STR(fmt("yyyy-MM-dd HH:mm:ss.S", "2026-11-27 06:00:00.987654321"),
              "2026-11-27T06:00:00.987Z");
    CHECK_STR(fmt("yyyy-MM-dd HH:mm:ss.S", "2026-11-27 06:00:00.5"), "2026-11-27T06:00:00.500Z");
    CHECK_STR(fmt("yyyy-MM-dd HH:mm:ss.S", "2026-11-27 06:00:00.0123456789"),
              "FAIL [\"_dateparsefailure\"]");
    /* Month and day names: English, any case, short or long for either width. */
    CHECK_STR(fmt("MMMM d, yyyy HH:mm", "November 27, 2026 06:00"), "2026-11-27T06:00:00.000Z");
    CHECK_STR(fmt("MMMM d, yyyy HH:mm", "Nov 27, 2026 06:00"), "2026-11-27T06:00:00.000Z");
    CHECK_STR(fmt("dd MMM yyyy HH:mm", "27 NOVEMBER 2026 06:00"), "2026-11-27T06:00:00.000Z");
    CHECK_STR(fmt("dd MMM yyyy HH:mm", "27 nov 2026 06:00"), "2026-11-27T06:00:00.000Z");
    CHECK_STR(fmt("dd MMM yyyy HH:mm", "27 Sep 2026 06:00"), "2026-09-27T06:00:00.000Z");
    CHECK_STR(fmt("dd MMM yyyy HH:mm", "27 Xyz 2026 06:00"), "FAIL [\"_dateparsefailure\"]");
    CHECK_STR(fmt("EEE, dd MMM yyyy HH:mm:ss z", "Fri, 27 Nov 2026 06:00:00 GMT"),
              "2026-11-27T06:00:00.000Z");
    CHECK_STR(fmt("EEEE, dd MMM yyyy HH:mm:ss z", "friday, 27 Nov 2026 01:00:00 EST"),
              "2026-11-27T06:00:00.000Z");
    CHECK_STR(fmt("EEE dd MMM yyyy HH:mm:ss z", "Fri 27 Nov 2026 23:00:00 PDT"),
              "2026-11-28T06:00:00.000Z");
    CHECK_STR(fmt("EEE dd MMM yyyy HH:mm:ss z", "Fri 27 Nov 2026 23:00:00 XYZ"),
              "FAIL [\"_dateparsefailure\"]");
    /* 12-hour clocks. */
    CHECK_STR(fmt("MM/dd/yyyy hh:mm:ss a", "11/27/2026 06:00:00 PM"), "2026-11-27T18:00:00.000Z");
    CHECK_STR(fmt("MM/dd/yyyy hh:mm:ss a", "11/27/2026 12:00:00 am"), "2026-11-27T00:00:00.000Z");
    CHECK_STR(fmt("MM/dd/yyyy hh:mm:ss a", "11/27/2026 12:30:00 PM"), "2026-11-27T12:30:00.000Z");
    CHECK_STR(fmt("MM/dd/yyyy h:mm a", "11/27/2026 6:05 AM"), "2026-11-27T06:05:00.000Z");
    CHECK_STR(fmt("MM/dd/yyyy hh:mm:ss", "11/27/2026 12:00:00"), "2026-11-27T00:00:00.000Z");
    CHECK_STR(fmt("MM/dd/yyyy K:mm a", "11/27/2026 0:15 PM"), "2026-11-27T12:15:00.000Z");
    CHECK_STR(fmt("MM/dd/yyyy kk:mm", "11/27/2026 24:15"), "2026-11-27T00:15:00.000Z");
    CHECK_STR(fmt("MM/dd/yyyy HH:mm a", "11/27/2026 18:00 PM"), "2026-11-27T18:00:00.000Z");
    CHECK_STR(fmt("MM/dd/yyyy HH:mm a", "11/27/2026 06:00 PM"), "FAIL [\"_dateparsefailure\"]");
    CHECK_STR(fmt("MM/dd/yyyy hh:mm:ss a", "11/27/2026 13:00:00 PM"),
              "FAIL [\"_dateparsefailure\"]");
    /* Literals: quoted text, '' for a quote, case-insensitive like Joda. */
    CHECK_STR(fmt("''yyyy-MM-dd' at 'HH:mm''", "'2026-11-27 AT 06:00'"),
              "2026-11-27T06:00:00.000Z");
    /* Missing fields default to the start of the unit. */
    CHECK_STR(fmt("yyyy-MM", "2026-11"), "2026-11-01T00:00:00.000Z");
    CHECK_STR(fmt("yyyy", "2026"), "2026-01-01T00:00:00.000Z");
}

TEST(joda_rejects)
{
    const char *bad[][2] = {
        {"yyyy-MM-dd", "2026-02-29"},         /* not a leap year */
        {"yyyy-MM-dd", "2024-13-01"},
        {"yyyy-MM-dd", "2024-00-01"},
        {"yyyy-MM-dd", "2024-11-31"},
        {"yyyy-MM-dd HH:mm", "2026-11-27 24:00"},
        {"yyyy-MM-dd HH:mm", "2026-11-27 06:60"},
        {"yyyy-MM-dd HH:mm:ss", "2026-11-27 06:00:60"},
        {"yyyy-MM-dd", "2026-11-27 "},         /* trailing text */
        {"yyyy-MM-dd", "2026-11-2"},           /* lenient 'dd' takes 1 digit... */
        {"yyyy-MM-dd", "x2026-11-27"},
        {"yyyy-MM-dd", ""},
        {"yyyy-MM-dd HH:mm Z", "2026-11-27 06:00 +2500"},
        {"yyyy-MM-dd HH:mm Z", "2026-11-27 06:00 +1"},
        {"yyyy-MM-dd HH:mm Z", "2026-11-27 06:00 UTC"},
        {"yyyyMMdd", "202611"},
        {"MMM d HH:mm:ss", "Nov  5 06:00:00"},  /* double space needs "MMM  d" */
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        const char *got = fmt(bad[i][0], bad[i][1]);
        /* ...and "2026-11-2" is the 2nd: Joda accepts it, so does this filter. */
        const char *want = i == 8 ? "2026-11-02T00:00:00.000Z" : "FAIL [\"_dateparsefailure\"]";
        if (strcmp(got, want) != 0) {
            fprintf(stderr, "format '%s' text '%s'\n", bad[i][0], bad[i][1]);
        }
        CHECK_STR(got, want);
    }
}

TEST(iso8601)
{
    CHECK_STR(fmt("ISO8601", "2026-11-27T06:00:00.123Z"), "2026-11-27T06:00:00.123Z");
    CHECK_STR(fmt("ISO8601", "2026-11-27T07:00:00.123+01:00"), "2026-11-27T06:00:00.123Z");
    CHECK_STR(fmt("ISO8601", "2026-11-27T01:00:00-0500"), "2026-11-27T06:00:00.000Z");
    CHECK_STR(fmt("ISO8601", "2026-11-27 06:00:00,5"), "2026-11-27T06:00:00.500Z");
    CHECK_STR(fmt("ISO8601", "2026-11-27T06:00:00.123456789Z"), "2026-11-27T06:00:00.123Z");
    CHECK_STR(fmt("ISO8601", "2026-11-27T06:00"), "2026-11-27T06:00:00.000Z");
    CHECK_STR(fmt("ISO8601", "2026-11-27"), "2026-11-27T00:00:00.000Z");
    CHECK_STR(fmt("ISO8601", "27/11/2026"), "FAIL [\"_dateparsefailure\"]");
    /* No zone in the text: the timezone option applies; a zone in the text wins. */
    CHECK_STR(fmt_tz("ISO8601", "Europe/Paris", "2026-11-27T07:00:00.250"),
              "2026-11-27T06:00:00.250Z");
    CHECK_STR(fmt_tz("ISO8601", "Europe/Paris", "2026-11-27T07:00:00.250Z"),
              "2026-11-27T07:00:00.250Z");
    CHECK_STR(fmt_tz("ISO8601", "+05:30", "2026-11-27T11:30:00"), "2026-11-27T06:00:00.000Z");
}

TEST(unix_keywords)
{
    CHECK_STR(fmt("UNIX", "1700000000"), "2023-11-14T22:13:20.000Z");
    CHECK_STR(fmt("UNIX", "1700000000.123"), "2023-11-14T22:13:20.123Z");
    CHECK_STR(fmt("UNIX", "1700000000.1239"), "2023-11-14T22:13:20.123Z");
    CHECK_STR(fmt("UNIX", "1700000000.5"), "2023-11-14T22:13:20.500Z");
    CHECK_STR(fmt("UNIX", "-1.5"), "1969-12-31T23:59:58.500Z");
    CHECK_STR(fmt("UNIX", "0"), "1970-01-01T00:00:00.000Z");
    CHECK_STR(fmt("UNIX", "1700000000."), "FAIL [\"_dateparsefailure\"]");
    CHECK_STR(fmt("UNIX", "17000x"), "FAIL [\"_dateparsefailure\"]");
    CHECK_STR(fmt("UNIX", ""), "FAIL [\"_dateparsefailure\"]");
    CHECK_STR(fmt("UNIX", "99999999999999"), "FAIL [\"_dateparsefailure\"]");
    CHECK_STR(parse("{field: t, formats: [UNIX]}", "1700000000"), "2023-11-14T22:13:20.000Z");
    CHECK_STR(parse("{field: t, formats: [UNIX]}", "1700000000.123"), "2023-11-14T22:13:20.123Z");
    CHECK_STR(fmt("UNIX_MS", "1700000000123"), "2023-11-14T22:13:20.123Z");
    CHECK_STR(fmt("UNIX_MS", "1700000000123.5"), "FAIL [\"_dateparsefailure\"]");
    CHECK_STR(parse("{field: t, formats: [UNIX_MS]}", "1700000000123"),
              "2023-11-14T22:13:20.123Z");
    CHECK_STR(fmt("TAI64N", "@4000000037c219bf2ef02e94"), "1999-08-24T04:04:05.787Z");
    CHECK_STR(fmt("TAI64N", "4000000037c219bf2ef02e94"), "1999-08-24T04:04:05.787Z");
    CHECK_STR(fmt("TAI64N", "@4000000037c219bf2ef02e9"), "FAIL [\"_dateparsefailure\"]");
    CHECK_STR(fmt("TAI64N", "@4000000037c219bfzef02e94"), "FAIL [\"_dateparsefailure\"]");
    /* The timezone option never applies to epoch formats. */
    CHECK_STR(fmt_tz("UNIX", "Europe/Paris", "1700000000"), "2023-11-14T22:13:20.000Z");
    /* Numbers in a Joda pattern are read as their decimal text. */
    CHECK_STR(parse("{field: t, formats: [yyyyMMdd]}", "20261127"), "2026-11-27T00:00:00.000Z");
}

TEST(timezones)
{
    const char *f = "yyyy-MM-dd HH:mm:ss";
    CHECK_STR(fmt_tz(f, "Europe/Paris", "2026-07-01 12:00:00"), "2026-07-01T10:00:00.000Z");
    CHECK_STR(fmt_tz(f, "Europe/Paris", "2026-01-15 12:00:00"), "2026-01-15T11:00:00.000Z");
    CHECK_STR(fmt_tz(f, "America/New_York", "2026-07-01 12:00:00"), "2026-07-01T16:00:00.000Z");
    CHECK_STR(fmt_tz(f, "America/New_York", "2026-01-15 12:00:00"), "2026-01-15T17:00:00.000Z");
    CHECK_STR(fmt_tz(f, "Europe/Paris", "1950-07-01 12:00:00"), "1950-07-01T11:00:00.000Z");
    /* Past the table (2037 in fat files): the footer's POSIX rule. */
    CHECK_STR(fmt_tz(f, "Europe/Paris", "2040-07-01 12:00:00"), "2040-07-01T10:00:00.000Z");
    CHECK_STR(fmt_tz(f, "Europe/Paris", "2040-12-01 12:00:00"), "2040-12-01T11:00:00.000Z");
    CHECK_STR(fmt_tz(f, "America/New_York", "2045-03-12 12:00:00"), "2045-03-12T16:00:00.000Z");
    CHECK_STR(fmt_tz(f, "Australia/Sydney", "2040-01-10 12:00:00"), "2040-01-10T01:00:00.000Z");
    CHECK_STR(fmt_tz(f, "Australia/Sydney", "2040-07-10 12:00:00"), "2040-07-10T02:00:00.000Z");
    /* The hour that happens twice is its first occurrence (summer time)... */
    CHECK_STR(fmt_tz(f, "Europe/Paris", "2026-10-25 02:30:00"), "2026-10-25T00:30:00.000Z");
    CHECK_STR(fmt_tz(f, "Europe/Paris", "2026-10-25 03:00:00"), "2026-10-25T02:00:00.000Z");
    /* ...and the hour that is skipped moves forward by the gap. */
    CHECK_STR(fmt_tz(f, "Europe/Paris", "2026-03-29 02:30:00"), "2026-03-29T01:30:00.000Z");
    CHECK_STR(fmt_tz(f, "Europe/Paris", "2026-03-29 03:00:00"), "2026-03-29T01:00:00.000Z");
    CHECK_STR(fmt_tz(f, "Europe/Paris", "2026-03-29 01:59:59"), "2026-03-29T00:59:59.000Z");
    /* Fixed offsets. */
    CHECK_STR(fmt_tz(f, "+02:00", "2026-11-27 08:00:00"), "2026-11-27T06:00:00.000Z");
    CHECK_STR(fmt_tz(f, "-0530", "2026-11-27 00:30:00"), "2026-11-27T06:00:00.000Z");
    CHECK_STR(fmt_tz(f, "+01", "2026-11-27 07:00:00"), "2026-11-27T06:00:00.000Z");
    CHECK_STR(fmt_tz(f, "UTC", "2026-11-27 06:00:00"), "2026-11-27T06:00:00.000Z");
    CHECK_STR(fmt_tz(f, "Etc/UTC", "2026-11-27 06:00:00"), "2026-11-27T06:00:00.000Z");
    /* A zone in the text overrides the option. */
    CHECK_STR(fmt_tz("yyyy-MM-dd HH:mm:ss Z", "Europe/Paris", "2026-07-01 12:00:00 +0000"),
              "2026-07-01T12:00:00.000Z");
    CHECK_STR(fmt_tz("yyyy-MM-dd HH:mm:ssZZ", "Europe/Paris", "2026-07-01 12:00:00Z"),
              "2026-07-01T12:00:00.000Z");
    CHECK_STR(fmt_tz("yyyy-MM-dd HH:mm:ss ZZZ", "Europe/Paris",
                     "2026-07-01 12:00:00 America/New_York"),
              "2026-07-01T16:00:00.000Z");
    CHECK_STR(fmt_tz("yyyy-MM-dd HH:mm:ss ZZZ", "Europe/Paris", "2026-07-01 12:00:00 UTC"),
              "2026-07-01T12:00:00.000Z");
    CHECK_STR(fmt("yyyy-MM-dd HH:mm:ss ZZZ", "2026-01-15 12:00:00 Europe/Paris"),
              "2026-01-15T11:00:00.000Z");
    CHECK_STR(fmt("yyyy-MM-dd HH:mm:ss ZZZ", "2026-01-15 12:00:00 Mars/Olympus"),
              "FAIL [\"_dateparsefailure\"]");
    CHECK_STR(fmt("yyyy-MM-dd HH:mm:ss ZZZ", "2026-01-15 12:00:00 ../../etc/passwd"),
              "FAIL [\"_dateparsefailure\"]");
    CHECK_STR(fmt("yyyy-MM-dd HH:mm:ss ZZZ", "2026-01-15 12:00:00 zone.tab"),
              "FAIL [\"_dateparsefailure\"]");
}

/* A v2 TZif file with no transitions, only a footer rule: what slim builds look like. */
static void write_slim_zone(const char *path, const char *rule)
{
    unsigned char h[44];
    memset(h, 0, sizeof(h));
    memcpy(h, "TZif2", 5);
    h[39] = 1;  /* typecnt */
    h[43] = 4;  /* charcnt */
    const unsigned char type[6] = {0, 0, 0x0e, 0x10, 0, 0};  /* +3600, std, "CET" */
    FILE *fp = fopen(path, "wb");
    for (int pass = 0; pass < 2; pass++) {
        fwrite(h, 1, sizeof(h), fp);
        fwrite(type, 1, sizeof(type), fp);
        fwrite("CET", 1, 4, fp);
    }
    fprintf(fp, "\n%s\n", rule);
    fclose(fp);
}

TEST(footer_rules)
{
    char dir[] = "/tmp/sluice-tz-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128], sub[128];
    snprintf(path, sizeof(path), "%s/Slim", dir);
    write_slim_zone(path, "CET-1CEST,M3.5.0,M10.5.0/3");
    snprintf(sub, sizeof(sub), "%s/Test", dir);
    mkdir(sub, 0700);
    char south[160], julian[160], fixed[160], bad[160];
    snprintf(south, sizeof(south), "%s/South", sub);
    write_slim_zone(south, "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0");
    snprintf(julian, sizeof(julian), "%s/Julian", sub);
    write_slim_zone(julian, "XST5XDT,J60/0,300/-1");
    snprintf(fixed, sizeof(fixed), "%s/Fixed", sub);
    write_slim_zone(fixed, "<-03>3");
    snprintf(bad, sizeof(bad), "%s/BadRule", sub);
    write_slim_zone(bad, "what is this");
    /* Filters read TZDIR at init only (the environment is not touched per event). */
    setenv("TZDIR", dir, 1);
    const char *f = "yyyy-MM-dd HH:mm:ss";
    CHECK_STR(fmt_tz(f, "Slim", "2026-07-01 12:00:00"), "2026-07-01T10:00:00.000Z");
    CHECK_STR(fmt_tz(f, "Slim", "2026-01-15 12:00:00"), "2026-01-15T11:00:00.000Z");
    CHECK_STR(fmt_tz(f, "Slim", "1990-07-01 12:00:00"), "1990-07-01T10:00:00.000Z");
    CHECK_STR(fmt_tz(f, "Slim", "2026-03-29 01:59:59"), "2026-03-29T00:59:59.000Z");
    CHECK_STR(fmt_tz(f, "Slim", "2026-03-29 03:00:00"), "2026-03-29T01:00:00.000Z");
    CHECK_STR(fmt_tz(f, "Slim", "2026-10-25 02:59:59"), "2026-10-25T00:59:59.000Z");
    CHECK_STR(fmt_tz(f, "Slim", "2026-10-25 03:00:00"), "2026-10-25T02:00:00.000Z");
    /* Southern hemisphere: summer time spans new year; half-hour offsets. */
    CHECK_STR(fmt_tz(f, "Test/South", "2026-01-10 12:00:00"), "2026-01-10T01:00:00.000Z");
    CHECK_STR(fmt_tz(f, "Test/South", "2026-07-10 12:00:00"), "2026-07-10T01:30:00.000Z");
    /* Jn (day 60 = Mar 1 even in leap years) and n (0-based, counts Feb 29: day 300 of
     * 2024 is Oct 27, the /-1 makes it Oct 26 23:00); 00:30 on Mar 1 is in the gap. */
    CHECK_STR(fmt_tz(f, "Test/Julian", "2024-03-01 00:30:00"), "2024-03-01T05:30:00.000Z");
    CHECK_STR(fmt_tz(f, "Test/Julian", "2024-03-01 01:30:00"), "2024-03-01T05:30:00.000Z");
    CHECK_STR(fmt_tz(f, "Test/Julian", "2024-02-29 23:30:00"), "2024-03-01T04:30:00.000Z");
    CHECK_STR(fmt_tz(f, "Test/Julian", "2024-10-26 12:00:00"), "2024-10-26T16:00:00.000Z");
    CHECK_STR(fmt_tz(f, "Test/Julian", "2024-10-27 12:00:00"), "2024-10-27T17:00:00.000Z");
    CHECK_STR(fmt_tz(f, "Test/Julian", "2024-10-25 12:00:00"), "2024-10-25T16:00:00.000Z");
    CHECK_STR(fmt_tz(f, "Test/Fixed", "2026-07-01 12:00:00"), "2026-07-01T15:00:00.000Z");
    /* An unreadable footer: the last known offset holds (type 0 here). */
    CHECK_STR(fmt_tz(f, "Test/BadRule", "2026-07-01 12:00:00"), "2026-07-01T11:00:00.000Z");
    CHECK_STR(fmt("yyyy-MM-dd HH:mm:ss ZZZ", "2026-07-01 12:00:00 Test/South"),
              "2026-07-01T01:30:00.000Z");
    unsetenv("TZDIR");
    remove(path);
    remove(south);
    remove(julian);
    remove(fixed);
    remove(bad);
    rmdir(sub);
    rmdir(dir);
}

TEST(year_guessing)
{
    const char *o = "{field: t, formats: ['MMM d HH:mm:ss', 'MMM  d HH:mm:ss']}";
    /* The reference is the event's @timestamp: when the shipper read the line. */
    CHECK_STR(parse_ref(o, "\"Nov 27 06:00:00\"", "2026-11-27T10:00:00.000Z"),
              "2026-11-27T06:00:00.000Z");
    CHECK_STR(parse_ref(o, "\"Nov  5 06:00:00\"", "2026-11-27T10:00:00.000Z"),
              "2026-11-05T06:00:00.000Z");
    CHECK_STR(parse_ref(o, "\"Dec 31 23:59:59\"", "2027-01-01T00:00:05.000Z"),
              "2026-12-31T23:59:59.000Z");
    CHECK_STR(parse_ref(o, "\"Jan  1 00:00:01\"", "2026-12-31T23:59:50.000Z"),
              "2027-01-01T00:00:01.000Z");
    CHECK_STR(parse_ref(o, "\"Jul  1 00:00:00\"", "2026-06-15T00:00:00.000Z"),
              "2026-07-01T00:00:00.000Z");  /* 16 days ahead: still this year */
    CHECK_STR(parse_ref(o, "\"Aug  1 00:00:00\"", "2026-06-15T00:00:00.000Z"),
              "2025-08-01T00:00:00.000Z");  /* 47 days ahead: last year */
    CHECK_STR(parse_ref(o, "\"Jun 14 00:00:00\"", "2026-06-15T00:00:00.000Z"),
              "2026-06-14T00:00:00.000Z");
    CHECK_STR(parse_ref(o, "\"Feb 29 12:00:00\"", "2026-03-01T00:00:00.000Z"),
              "2024-02-29T12:00:00.000Z");
    CHECK_STR(parse_ref(o, "\"Feb 29 12:00:00\"", "2028-02-20T00:00:00.000Z"),
              "2028-02-29T12:00:00.000Z");
    CHECK_STR(parse_ref(o, "\"Feb 30 12:00:00\"", "2028-02-20T00:00:00.000Z"),
              "FAIL [\"_dateparsefailure\"]");
    /* With a zone, the guess compares instants. */
    CHECK_STR(parse_ref("{field: t, formats: ['MMM dd HH:mm:ss'], timezone: Europe/Paris}",
                        "\"Jan 01 00:30:00\"", "2026-12-31T23:00:00.000Z"),
              "2026-12-31T23:30:00.000Z");
    /* Two-digit years: within 50 years of the reference year - 30 (Joda's pivot). */
    const char *yy = "{field: t, formats: ['dd/MM/yy HH:mm']}";
    CHECK_STR(parse_ref(yy, "\"27/11/26 06:00\"", REF), "2026-11-27T06:00:00.000Z");
    CHECK_STR(parse_ref(yy, "\"27/11/45 06:00\"", REF), "2045-11-27T06:00:00.000Z");
    CHECK_STR(parse_ref(yy, "\"27/11/46 06:00\"", REF), "1946-11-27T06:00:00.000Z");
    CHECK_STR(parse_ref(yy, "\"27/11/99 06:00\"", REF), "1999-11-27T06:00:00.000Z");
    CHECK_STR(parse_ref(yy, "\"27/11/2026 06:00\"", REF), "2026-11-27T06:00:00.000Z");
    CHECK_STR(parse_ref(yy, "\"27/11/45 06:00\"", "2060-01-01T00:00:00.000Z"),
              "2045-11-27T06:00:00.000Z");
    CHECK_STR(parse_ref(yy, "\"27/11/80 06:00\"", "2060-01-01T00:00:00.000Z"),
              "1980-11-27T06:00:00.000Z");
    CHECK_STR(parse_ref(yy, "\"27/11/79 06:00\"", "2060-01-01T00:00:00.000Z"),
              "2079-11-27T06:00:00.000Z");

    /* Without an @timestamp the wall clock is the reference; pinned here, so the
     * answer is the same on any day the test runs. */
    void *f = make("f: {field: t, formats: ['MMM d HH:mm:ss']}\n");
    static const struct {
        uint64_t now_ms;
        const char *text, *want;
    } wall[] = {
        {1795759200000ULL, "Jan 1 00:00:00", "2026-01-01T00:00:00.000Z"}, /* 2026-11-27: 35 d ahead */
        {1796169600000ULL, "Jan 1 00:00:00", "2027-01-01T00:00:00.000Z"}, /* 2026-12-02: 30 d ahead */
        {1798761599000ULL, "Jan 1 00:00:00", "2027-01-01T00:00:00.000Z"}, /* 2026-12-31 23:59:59 */
        {1798761630000ULL, "Dec 31 23:59:59", "2026-12-31T23:59:59.000Z"}, /* 2027-01-01 00:00:30 */
        {1798761630000ULL, "Jan 1 00:00:00", "2027-01-01T00:00:00.000Z"},
        {1835438400000ULL, "Feb 29 11:00:00", "2028-02-29T11:00:00.000Z"}, /* 2028-02-29 12:00 */
        {1781740800000ULL, "Jan 1 00:00:00", "2026-01-01T00:00:00.000Z"}, /* 2026-06-18 */
    };
    for (size_t i = 0; i < sizeof(wall) / sizeof(wall[0]); i++) {
        sl_wall_pin(wall[i].now_ms);
        char in[64], want[128];
        snprintf(in, sizeof(in), "{\"t\":\"%s\"}", wall[i].text);
        snprintf(want, sizeof(want), "{\"t\":\"%s\",\"@timestamp\":\"%s\"}", wall[i].text,
                 wall[i].want);
        CHECK_STR(run_json(f, in), want);
    }
    sl_wall_unpin();
    unload(f);
}

TEST(failures_and_target)
{
    void *f = make("f: {field: t, formats: [ISO8601]}\n");
    /* Failure: the verdict FAIL, the default tag added by the core, nothing else touched. */
    CHECK_STR(run_json(f, "{\"@timestamp\":\"2026-01-01T00:00:00.000Z\",\"t\":\"junk\"}"),
              "FAIL {\"@timestamp\":\"2026-01-01T00:00:00.000Z\",\"t\":\"junk\","
              "\"tags\":[\"_dateparsefailure\"]}");
    CHECK_STR(run_json(f, "{\"t\":\"junk\",\"tags\":[\"web\",\"_dateparsefailure\"]}"),
              "FAIL {\"t\":\"junk\",\"tags\":[\"web\",\"_dateparsefailure\"]}");
    CHECK_STR(run_json(f, "{\"t\":\"junk\",\"tags\":\"web\"}"),
              "FAIL {\"t\":\"junk\",\"tags\":[\"web\",\"_dateparsefailure\"]}");
    CHECK_STR(run_json(f, "{\"t\":{\"a\":1}}"),
              "FAIL {\"t\":{\"a\":1},\"tags\":[\"_dateparsefailure\"]}");
    CHECK_STR(run_json(f, "{\"t\":true}"), "FAIL {\"t\":true,\"tags\":[\"_dateparsefailure\"]}");
    CHECK_STR(run_json(f, "{\"t\":null}"), "FAIL {\"t\":null,\"tags\":[\"_dateparsefailure\"]}");
    /* A year past 9999 cannot be written as @timestamp: a failure. */
    CHECK_STR(run_json(f, "{\"t\":\"9999-12-31T23:00:00-05:00\"}"),
              "FAIL {\"t\":\"9999-12-31T23:00:00-05:00\",\"tags\":[\"_dateparsefailure\"]}");
    /* A missing field is not a failure. */
    CHECK_STR(run_json(f, "{\"message\":\"x\"}"), "{\"message\":\"x\"}");
    CHECK_STR(run_json(f, "{\"t\":[]}"), "{\"t\":[]}");
    /* An array: its first item. */
    CHECK_STR(run_json(f, "{\"t\":[\"2026-11-27T06:00:00Z\",\"junk\"]}"),
              "{\"t\":[\"2026-11-27T06:00:00Z\",\"junk\"],"
              "\"@timestamp\":\"2026-11-27T06:00:00.000Z\"}");
    /* Success replaces @timestamp in place. */
    CHECK_STR(run_json(f, "{\"@timestamp\":\"2020-01-01T00:00:00.000Z\","
                          "\"t\":\"2026-11-27T06:00:00Z\"}"),
              "{\"@timestamp\":\"2026-11-27T06:00:00.000Z\",\"t\":\"2026-11-27T06:00:00Z\"}");
    unload(f);

    f = make("f: {field: '[log][time]', formats: [UNIX, ISO8601], target: '[event][created]',\n"
             "    tag_on_failure: [bad_time, _dateparsefailure]}\n");
    CHECK(f != NULL);
    CHECK_STR(run_json(f, "{\"@timestamp\":\"2020-01-01T00:00:00.000Z\","
                          "\"log\":{\"time\":\"2026-11-27T06:00:00Z\"}}"),
              "{\"@timestamp\":\"2020-01-01T00:00:00.000Z\","
              "\"log\":{\"time\":\"2026-11-27T06:00:00Z\"},"
              "\"event\":{\"created\":\"2026-11-27T06:00:00.000Z\"}}");
    CHECK_STR(run_json(f, "{\"log\":{\"time\":\"1700000000.5\"},\"event\":{\"kind\":\"x\"}}"),
              "{\"log\":{\"time\":\"1700000000.5\"},\"event\":{\"kind\":\"x\","
              "\"created\":\"2023-11-14T22:13:20.500Z\"}}");
    CHECK_STR(run_json(f, "{\"log\":{\"time\":\"no\"}}"),
              "FAIL {\"log\":{\"time\":\"no\"},\"tags\":[\"bad_time\",\"_dateparsefailure\"]}");
    unload(f);

    /* tag_on_failure: [] tags nothing (the verdict is still FAIL, counted as an error);
     * null is the default tag, as absent is; a scalar is a list of one. */
    f = make("f: {field: t, formats: [ISO8601], tag_on_failure: []}\n");
    CHECK_STR(run_json(f, "{\"t\":\"junk\"}"), "FAIL {\"t\":\"junk\"}");
    unload(f);
    f = make("f: {field: t, formats: [ISO8601], tag_on_failure: null}\n");
    CHECK_STR(run_json(f, "{\"t\":\"junk\"}"),
              "FAIL {\"t\":\"junk\",\"tags\":[\"_dateparsefailure\"]}");
    unload(f);
    f = make("f:\n  field: t\n  formats: [ISO8601]\n  tag_on_failure:\n");
    CHECK_STR(run_json(f, "{\"t\":\"junk\"}"),
              "FAIL {\"t\":\"junk\",\"tags\":[\"_dateparsefailure\"]}");
    unload(f);
    f = make("f: {field: t, formats: [ISO8601], tag_on_failure: [a, b, a]}\n");
    CHECK_STR(run_json(f, "{\"t\":\"junk\",\"tags\":[\"b\"]}"),
              "FAIL {\"t\":\"junk\",\"tags\":[\"b\",\"a\"]}");
    unload(f);
    f = make("f: {field: t, formats: [ISO8601], tag_on_failure: late}\n");
    CHECK_STR(run_json(f, "{\"t\":\"junk\"}"), "FAIL {\"t\":\"junk\",\"tags\":[\"late\"]}");
    unload(f);

    /* Logstash's match: [field, formats...]; formats are tried in order. The core
     * applies `when`: only type access events reach the filter. */
    f = make("f:\n  match: [ts, 'dd/MMM/yyyy:HH:mm:ss Z', UNIX_MS, ISO8601]\n  locale: en\n"
             "  when: {field: type, equals: access}\n");
    CHECK(f != NULL);
    CHECK_STR(run_json(f, "{\"type\":\"access\",\"ts\":\"27/Nov/2026:07:00:00 +0100\"}"),
              "{\"type\":\"access\",\"ts\":\"27/Nov/2026:07:00:00 +0100\","
              "\"@timestamp\":\"2026-11-27T06:00:00.000Z\"}");
    CHECK_STR(run_json(f, "{\"type\":\"access\",\"ts\":1700000000123}"),
              "{\"type\":\"access\",\"ts\":1700000000123,"
              "\"@timestamp\":\"2023-11-14T22:13:20.123Z\"}");
    CHECK_STR(run_json(f, "{\"type\":\"access\",\"ts\":\"2026-11-27\"}"),
              "{\"type\":\"access\",\"ts\":\"2026-11-27\","
              "\"@timestamp\":\"2026-11-27T00:00:00.000Z\"}");
    CHECK_STR(run_json(f, "{\"type\":\"error\",\"ts\":\"junk\"}"),
              "{\"type\":\"error\",\"ts\":\"junk\"}");
    unload(f);

    /* A single format may be written as a scalar. */
    f = make("f: {field: t, formats: UNIX}\n");
    CHECK_STR(run_json(f, "{\"t\":1.5}"),
              "{\"t\":1.5,\"@timestamp\":\"1970-01-01T00:00:01.500Z\"}");
    unload(f);
}

TEST(config_errors)
{
    CHECK_STR(error_of("f: {formats: [ISO8601]}\n"),
              "t.yml:1:4: filters[1] (date): option 'field' is required "
              "(or match: [field, format, ...])\n");
    CHECK_STR(error_of("f: {field: t}\n"),
              "t.yml:1:4: filters[1] (date): option 'formats' is required\n");
    CHECK_STR(error_of("f: {field: t, formats: []}\n"),
              "t.yml:1:24: filters[1] (date): option 'formats' is required\n");
    CHECK_STR(error_of("f: {field: t, formats: {a: b}}\n"),
              "t.yml:1:24: filters[1] (date): option 'formats' must be a string or a list of "
              "strings, got a map\n");
    /* A format that is not text is the table's error; the formats are compiled in init,
     * which runs once the table reads cleanly. */
    CHECK_STR(error_of("f: {field: t, formats: [ISO8601, 'yyyy-qq', [x]]}\n"),
              "t.yml:1:45: filters[1] (date): option 'formats[2]' must be a string, got a "
              "list\n");
    CHECK_STR(error_of("f: {field: t, formats: [ISO8601, 'yyyy-qq', '']}\n"),
              "t.yml:1:34: filters[1] (date): format 'yyyy-qq' has an unsupported pattern "
              "letter 'q'\n"
              "t.yml:1:45: filters[1] (date): a format must be a pattern or ISO8601, UNIX, "
              "UNIX_MS, TAI64N\n");
    CHECK_STR(error_of("f: {match: [t, 'yyyy-qq', [x]]}\n"),
              "t.yml:1:16: filters[1] (date): format 'yyyy-qq' has an unsupported pattern "
              "letter 'q'\n"
              "t.yml:1:27: filters[1] (date): a format must be a pattern or ISO8601, UNIX, "
              "UNIX_MS, TAI64N\n");
    CHECK_STR(error_of("f: {field: t, formats: [\"yyyy-MM-dd'T\"]}\n"),
              "t.yml:1:25: filters[1] (date): format 'yyyy-MM-dd'T' has an unterminated "
              "quote\n");
    CHECK_STR(error_of("f: {field: t, formats: ['xxxx-ww']}\n"),
              "t.yml:1:25: filters[1] (date): format 'xxxx-ww' has an unsupported pattern "
              "letter 'x'\n");
    CHECK_STR(error_of("f: {match: [t, ISO8601], formats: [UNIX]}\n"),
              "t.yml:1:12: filters[1] (date): use either 'match' or 'field' with 'formats', "
              "not both\n");
    CHECK_STR(error_of("f: {match: [t]}\n"),
              "t.yml:1:12: filters[1] (date): option 'match' must be a list "
              "[field, format, ...]\n");
    CHECK_STR(error_of("f: {match: '[t, ISO8601]'}\n"),
              "t.yml:1:12: filters[1] (date): option 'match' must be a list "
              "[field, format, ...]\n");
    CHECK_STR(error_of("f: {field: 'a..b', formats: [UNIX]}\n"),
              "t.yml:1:12: filters[1] (date): option 'field': 'a..b' is not a valid field "
              "reference\n");
    CHECK_STR(error_of("f: {match: ['a..b', UNIX]}\n"),
              "t.yml:1:13: filters[1] (date): option 'match': 'a..b' is not a valid field "
              "reference\n");
    CHECK_STR(error_of("f: {field: '', formats: [UNIX], target: ''}\n"),
              "t.yml:1:12: filters[1] (date): option 'field' must not be empty\n"
              "t.yml:1:41: filters[1] (date): option 'target' must not be empty\n");
    CHECK_STR(error_of("f: {field: t, formats: [UNIX], target: '[x'}\n"),
              "t.yml:1:40: filters[1] (date): option 'target': '[x' is not a valid field "
              "reference\n");
    CHECK_STR(error_of("f: {field: t, formats: [UNIX], timezone: Europe/Pariss}\n"),
              "t.yml:1:42: filters[1] (date): option 'timezone' is not a time zone: "
              "'Europe/Pariss' (cannot open /usr/share/zoneinfo/Europe/Pariss: No such file or "
              "directory)\n");
    CHECK_STR(error_of("f: {field: t, formats: [UNIX], timezone: ../etc/passwd}\n"),
              "t.yml:1:42: filters[1] (date): option 'timezone' is not a time zone: "
              "'../etc/passwd' (not a time zone name)\n");
    CHECK_STR(error_of("f: {field: t, formats: [UNIX], timezone: zone.tab}\n"),
              "t.yml:1:42: filters[1] (date): option 'timezone' is not a time zone: "
              "'zone.tab' (/usr/share/zoneinfo/zone.tab is not a valid TZif file)\n");
    CHECK_STR(error_of("f: {field: t, formats: [UNIX], timezone: +25:00}\n"),
              "t.yml:1:42: filters[1] (date): option 'timezone' is not a time zone: "
              "'+25:00' (not a time zone name)\n");
    CHECK_STR(error_of("f: {field: t, formats: [UNIX], timezone: [UTC]}\n"),
              "t.yml:1:42: filters[1] (date): option 'timezone' must be a string, got a list\n");
    CHECK_STR(error_of("f: {field: t, formats: [UNIX], tag_on_failure: {a: b}}\n"),
              "t.yml:1:48: filters[1] (date): option 'tag_on_failure' must be a string or a "
              "list of strings, got a map\n");
    CHECK_STR(error_of("f: {field: t, formats: [UNIX], locale: fr}\n"),
              "t.yml:1:40: filters[1] (date): option 'locale' 'fr' is not supported: month "
              "and day names are English\n");
    CHECK_STR(error_of("f: {field: t, formats: [UNIX], tagets: x, remove_field: [t]}\n"),
              "t.yml:1:32: filters[1] (date): unknown option 'tagets' (did you mean "
              "'target'?)\n"
              "t.yml:1:43: filters[1] (date): unknown option 'remove_field'\n");
    CHECK_STR(error_of("f: {field: t, formats: [UNIX], when: {field: x, exists: true}}\n"),
              "(loaded)");
    sl_cfg_free(&g_cfg);
}

/* Hostile text never crashes the parser (run under ASan/UBSan) and never half-changes
 * the event: either a valid @timestamp, or the verdict FAIL and the failure tag. */
TEST(random_input)
{
    void *f = make("f:\n  field: t\n  timezone: Europe/Paris\n  formats:\n"
                   "    - \"EEE MMM dd HH:mm:ss.SSS yyyy Z\"\n"
                   "    - \"yyyyMMddHHmmssSSS\"\n"
                   "    - \"MMM  d hh:mm:ss a ZZZ\"\n"
                   "    - \"dd/MM/yy kk:mm:ss,S z ZZ\"\n"
                   "    - \"yyyy-MM-dd'T'HH:mm:ss.SSSZZ\"\n"
                   "    - ISO8601\n    - UNIX\n    - UNIX_MS\n    - TAI64N\n");
    CHECK(f != NULL);
    static const char alphabet[] = "0123456789000111222:::---+++.../ ,TZzAPMamNovFriEuropeParis@";
    unsigned seed = 12345;
    int ok = 0, failed = 0, odd = 0;
    for (int i = 0; i < 20000; i++) {
        char text[48];
        seed = seed * 1103515245u + 12345u;
        size_t n = (seed >> 16) % (sizeof(text) - 1);
        for (size_t k = 0; k < n; k++) {
            seed = seed * 1103515245u + 12345u;
            text[k] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        struct sl_value ev;
        memset(&ev, 0, sizeof(ev));
        sl_value_set_object(&ev);
        sl_value_set_str(sl_obj_putc(&ev, "t"), text, n);
        int rc = run(f, &ev);
        const struct sl_value *ts = sl_obj_getc(&ev, "@timestamp");
        const struct sl_value *tags = sl_obj_getc(&ev, "tags");
        if (rc == SL_FILTER_KEEP && ts && !tags && ts->type == SL_V_STRING &&
            ts->u.s.len == 24) {
            ok++;
        } else if (rc == SL_FILTER_FAIL && !ts && tags) {
            failed++;
        } else {
            odd++;
        }
        sl_value_clear(&ev);
    }
    CHECK_INT(odd, 0);
    CHECK(ok > 0 && failed > 0);
    unload(f);
    /* Nine-digit years parse but cannot be a @timestamp. */
    CHECK_STR(fmt("yyyy-MM-dd", "999999999-01-01"), "FAIL [\"_dateparsefailure\"]");
    CHECK_STR(fmt("yyyy-MM-dd", "9999-12-31"), "9999-12-31T00:00:00.000Z");
    CHECK_STR(fmt("yyyy-MM-dd", "0001-01-01"), "0001-01-01T00:00:00.000Z");
    sl_cfg_free(&g_cfg);
}

struct thread_arg {
    void *f;
    const char *zone;
    const char *want;
    int wrong;
};

static void *hammer(void *p)
{
    struct thread_arg *a = p;
    char json[128];
    snprintf(json, sizeof(json), "{\"t\":\"2026-07-01 12:00:00 %s\"}", a->zone);
    for (int i = 0; i < 2000; i++) {
        struct sl_value ev = ev_from(json);
        int rc = run(a->f, &ev);
        const struct sl_value *ts = sl_obj_getc(&ev, "@timestamp");
        if (rc != SL_FILTER_KEEP || !ts || ts->type != SL_V_STRING ||
            strcmp(ts->u.s.ptr, a->want) != 0) {
            a->wrong++;
        }
        sl_value_clear(&ev);
    }
    return NULL;
}

/* One instance on several threads, with zones loaded into its cache concurrently. */
TEST(threads)
{
    void *f = make("f: {field: t, formats: ['yyyy-MM-dd HH:mm:ss ZZZ']}\n");
    struct thread_arg args[4] = {
        {f, "Europe/Paris", "2026-07-01T10:00:00.000Z", 0},
        {f, "America/New_York", "2026-07-01T16:00:00.000Z", 0},
        {f, "Asia/Tokyo", "2026-07-01T03:00:00.000Z", 0},
        {f, "Europe/Paris", "2026-07-01T10:00:00.000Z", 0},
    };
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        pthread_create(&th[i], NULL, hammer, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(args[i].wrong, 0);
    }
    unload(f);
    sl_cfg_free(&g_cfg);
}

/* ---- the per-thread memo: a remembered result is the parse's result -------------------
 *
 * Generated timestamps (random days, months in any case and length, zones, offsets,
 * fractions, impossible dates, damaged texts) go through one long-lived instance in runs
 * of the same text, alternations and random order, with the reference time changing
 * under repeated texts. Every event must come out byte for byte as a fresh instance
 * (whose memo is empty: the first text of an instance is always parsed) leaves it.
 */

static unsigned g_seed = 2026;

static unsigned rnd(unsigned n)
{
    g_seed = g_seed * 1103515245u + 12345u;
    return ((g_seed >> 16) & 0x7fff) % n;
}

/* One of Month, MONTH, month, Mon, MON, mon, mOn... */
static void month_text(char *out, size_t cap, int m)
{
    static const char *const full[12] = {"January", "February", "March",     "April",
                                         "May",     "June",     "July",      "August",
                                         "September", "October", "November", "December"};
    char name[16];
    snprintf(name, sizeof(name), "%s", full[m]);
    if (rnd(3) == 0) {
        name[3] = '\0';
    }
    unsigned style = rnd(4);
    for (char *p = name; *p; p++) {
        if (style == 1 || (style == 3 && rnd(2))) {
            *p = (char)(*p >= 'a' ? *p - 32 : *p);
        } else if (style == 2) {
            *p = (char)(*p < 'a' ? *p + 32 : *p);
        }
    }
    snprintf(out, cap, "%s", name);
}

static void frac_text(char *out, size_t cap)
{
    size_t n = 1 + rnd(9);
    for (size_t i = 0; i < n && i + 1 < cap; i++) {
        out[i] = (char)('0' + rnd(10));
        out[i + 1] = '\0';
    }
}

enum gen { G_APACHE, G_LOCAL_FRAC, G_SYSLOG, G_ZONEID, G_RFC822, G_EPOCH, G_LONG };

/* A timestamp text of the kind g (JSON string contents: no quotes or backslashes). */
static void gen_text(enum gen g, char *out, size_t cap)
{
    char mon[16], frac[16];
    int y = 1998 + (int)rnd(40), mo = 1 + (int)rnd(12), d = 1 + (int)rnd(31);
    int h = (int)rnd(24), mi = (int)rnd(60), s = (int)rnd(60);
    if (rnd(4) == 0) {
        /* Around the spring-forward and fall-back nights of Europe and the US. */
        mo = rnd(2) ? 3 : 10 + (int)rnd(2);
        d = 24 + (int)rnd(8);
        h = 1 + (int)rnd(3);
    }
    month_text(mon, sizeof(mon), mo - 1);
    frac_text(frac, sizeof(frac));
    static const char *const offs[] = {"+0000", "-0500", "+0530", "+01:00", "Z", "+14", "-1200"};
    static const char *const zones[] = {"Europe/Paris", "America/New_York", "UTC", "Asia/Tokyo",
                                        "+02:00", "Nowhere/Land", "Australia/Lord_Howe"};
    static const char *const names[] = {"UTC", "EST", "PDT", "GMT", "CET"};
    switch (g) {
    case G_APACHE:
        snprintf(out, cap, "%02d/%s/%d:%02d:%02d:%02d %s", d, mon, y, h, mi, s,
                 offs[rnd(SL_ARRAY_LEN(offs))]);
        break;
    case G_LOCAL_FRAC:
        if (rnd(3) == 0) {
            snprintf(out, cap, "%d-%02d-%02dT%02d:%02d:%02d.%s%s", y, mo, d, h, mi, s, frac,
                     rnd(2) ? "Z" : "");
        } else {
            snprintf(out, cap, "%d-%02d-%02d %02d:%02d:%02d.%s", y, mo, d, h, mi, s, frac);
        }
        break;
    case G_SYSLOG:
        if (rnd(2)) {
            snprintf(out, cap, "%s %2d %02d:%02d:%02d", mon, d, h, mi, s);
        } else {
            snprintf(out, cap, "%d %s %02d %02d:%02d:%02d %s", y, mon, d, h, mi, s,
                     zones[rnd(SL_ARRAY_LEN(zones))]);
        }
        break;
    case G_ZONEID:
        snprintf(out, cap, "%d %s %02d %02d:%02d:%02d %s", y, mon, d, h, mi, s,
                 zones[rnd(SL_ARRAY_LEN(zones))]);
        break;
    case G_RFC822: {
        static const char *const days[] = {"Mon", "tuesday", "WED", "Thu", "Fri", "sat", "Sun"};
        unsigned k = rnd(3);
        if (k == 0) {
            snprintf(out, cap, "%s, %02d %s %02d %02d:%02d:%02d %s", days[rnd(7)], d, mon, y % 100,
                     h, mi, s, names[rnd(SL_ARRAY_LEN(names))]);
        } else if (k == 1) {
            snprintf(out, cap, "%u%03u", 1600000000u + rnd(30000) * 1000u, rnd(1000));
        } else {
            snprintf(out, cap, "%u.%s", 1600000000u + rnd(30000) * 3000u, frac);
        }
        break;
    }
    case G_EPOCH:
        if (rnd(2)) {
            snprintf(out, cap, "%u%03u", 1600000000u + rnd(30000) * 1000u, rnd(1000));
        } else {
            snprintf(out, cap, "%d-%02d-%02dT%02d:%02d:%02d,%s%s", y, mo, d, h, mi, s, frac,
                     offs[rnd(SL_ARRAY_LEN(offs))]);
        }
        break;
    case G_LONG:
        /* Texts of 62 to 67 bytes: either side of the longest remembered text. */
        snprintf(out, cap, "%.*s%d-%02d-%02d %02d:%02d:%02d.%s", 35 + (int)rnd(6),
                 "..........................................", y, mo, d, h, mi, s, frac);
        break;
    }
    if (rnd(10) == 0 && out[0]) {
        /* Damaged: one byte replaced, often into a failure right after a success. */
        static const char junk[] = "0x:/ -+Zn.";
        out[rnd((unsigned)strlen(out))] = junk[rnd(sizeof(junk) - 1)];
    }
}

/* The event of step i: the text (or another value), with a reference time that changes
 * under repeated texts so that year guessing would notice a remembered result. */
static void gen_event(char *json, size_t cap, const char *text)
{
    static const char *const refs[] = {"2026-11-27T10:00:00.000Z", "2027-01-02T00:00:00.000Z",
                                       "2026-12-31T23:59:59.999Z", "2020-02-29T12:00:00.000Z",
                                       "1985-06-01T00:00:00.000Z", "2090-06-01T00:00:00.000Z",
                                       "not a time"};
    const char *ref = refs[rnd(SL_ARRAY_LEN(refs))];
    switch (rnd(20)) {
    case 0:
        snprintf(json, cap, "{\"@timestamp\":\"%s\"}", ref);
        break;
    case 1:
        snprintf(json, cap, "{\"@timestamp\":\"%s\",\"t\":[\"%s\",\"x\"]}", ref, text);
        break;
    case 2:
        snprintf(json, cap, "{\"@timestamp\":\"%s\",\"t\":%u}", ref, 1600000000u + rnd(1000));
        break;
    case 3:
        snprintf(json, cap, "{\"t\":\"%s\",\"a\":5}", text);
        break;
    default:
        snprintf(json, cap, "{\"@timestamp\":\"%s\",\"t\":\"%s\",\"tags\":[\"x\"]}", ref, text);
        break;
    }
}

#define MEMO_STEPS 1500
#define MEMO_POOL 24

struct memo_case {
    const char *opts;
    enum gen gen;
};

static const struct memo_case memo_cases[] = {
    {"{field: t, formats: ['dd/MMM/yyyy:HH:mm:ss Z']}", G_APACHE},
    {"{field: t, formats: ['yyyy-MM-dd HH:mm:ss.SSS', ISO8601], timezone: Europe/Paris}",
     G_LOCAL_FRAC},
    {"{field: t, formats: ['yyyy-MM-dd HH:mm:ss.SSS', ISO8601], timezone: America/New_York}",
     G_LOCAL_FRAC},
    {"{field: t, formats: ['yyyy-MM-dd HH:mm:ss.SSS', ISO8601], timezone: '-03:30'}",
     G_LOCAL_FRAC},
    /* A year-less first format: nothing may be remembered. */
    {"{field: t, formats: ['MMM dd HH:mm:ss', 'MMM  d HH:mm:ss', 'yyyy MMM dd HH:mm:ss ZZZ']}",
     G_SYSLOG},
    /* Remembered when the first format reads the text, never when the year-less one does. */
    {"{field: t, formats: ['yyyy MMM dd HH:mm:ss ZZZ', 'MMM dd HH:mm:ss', 'MMM  d HH:mm:ss']}",
     G_SYSLOG},
    {"{field: t, formats: ['yyyy MMM dd HH:mm:ss ZZZ'], timezone: Asia/Kolkata,"
     " tag_on_failure: [bad, worse]}",
     G_ZONEID},
    /* Two-digit years are read around the reference year. */
    {"{field: t, formats: ['EEE, dd MMM yy HH:mm:ss z', UNIX_MS, UNIX]}", G_RFC822},
    {"{field: t, formats: [UNIX_MS, 'yyyy-MM-dd''T''HH:mm:ss,SSSZZ', ISO8601],"
     " target: '[out][ts]', tag_on_failure: []}",
     G_EPOCH},
    {"{match: [t, \"'..........................................'yyyy-MM-dd HH:mm:ss.SSSSSS\","
     " ISO8601], timezone: Europe/Paris}",
     G_LONG},
};

/* The event after a fresh instance of opts (parsing, never remembering) saw it. */
static void fresh_json(const char *opts, const char *json, char *out, size_t cap)
{
    char yaml[512];
    snprintf(yaml, sizeof(yaml), "f: %s\n", opts);
    void *f = make(yaml);
    if (!f) {
        snprintf(out, cap, "CONFIG %s", errs(&g_cfg));
        return;
    }
    snprintf(out, cap, "%s", run_json(f, json));
    unload(f);
}

struct memo_seq {
    char json[MEMO_STEPS][256];
    char want[MEMO_STEPS][512];
};

/* Steps over a pool of texts: runs of one text, A B A B alternations, random picks. */
static void memo_seq_make(struct memo_seq *q, const struct memo_case *c)
{
    char pool[MEMO_POOL][96];
    for (size_t i = 0; i < MEMO_POOL; i++) {
        gen_text(c->gen, pool[i], sizeof(pool[i]));
    }
    size_t prev = 0, prev2 = 1;
    for (size_t i = 0; i < MEMO_STEPS; i++) {
        unsigned r = rnd(10);
        size_t pick = r < 5 ? prev : r < 7 ? prev2 : rnd(MEMO_POOL);
        gen_event(q->json[i], sizeof(q->json[i]), pool[pick]);
        if (pick != prev) {
            prev2 = prev;
            prev = pick;
        }
    }
    for (size_t i = 0; i < MEMO_STEPS; i++) {
        fresh_json(c->opts, q->json[i], q->want[i], sizeof(q->want[i]));
    }
}

/* Runs f over q; the number of events that differ from the fresh parse. */
static int memo_seq_diffs(void *f, const struct memo_seq *q, size_t from, int line)
{
    int wrong = 0;
    for (size_t k = 0; k < MEMO_STEPS; k++) {
        size_t i = (from + k) % MEMO_STEPS;
        const char *got = run_json(f, q->json[i]);
        if (strcmp(got, q->want[i]) != 0 && wrong++ < 3) {
            fprintf(stderr, "%s:%d: step %zu: %s\n  got  %s\n  want %s\n", __FILE__, line, i,
                    q->json[i], got, q->want[i]);
        }
    }
    return wrong;
}

TEST(memo_matches_parse)
{
    static struct memo_seq seqs[SL_ARRAY_LEN(memo_cases)];
    for (size_t c = 0; c < SL_ARRAY_LEN(memo_cases); c++) {
        memo_seq_make(&seqs[c], &memo_cases[c]);
    }
    int ok = 0, failed = 0;
    for (size_t c = 0; c < SL_ARRAY_LEN(memo_cases); c++) {
        for (size_t i = 0; i < MEMO_STEPS; i++) {
            ok += strncmp(seqs[c].want[i], "FAIL", 4) != 0;
            failed += strncmp(seqs[c].want[i], "FAIL", 4) == 0;
        }
        char yaml[512];
        snprintf(yaml, sizeof(yaml), "f: %s\n", memo_cases[c].opts);
        struct sl_cfg cfg;
        void *f = load(&cfg, yaml);
        CHECK(f != NULL);
        /* Twice: the second pass starts on whatever the first left remembered. */
        CHECK_INT(memo_seq_diffs(f, &seqs[c], 0, __LINE__), 0);
        CHECK_INT(memo_seq_diffs(f, &seqs[c], 7, __LINE__), 0);
        unload(f);
        sl_cfg_free(&cfg);
    }
    /* Both outcomes occur plenty in every run, so both paths are compared. */
    CHECK(ok > 5000 && failed > 1000);

    /* Instances that share a thread interleaved event by event, on the same texts but
     * other zones (cases 1-3), also when they share a memo slot (ids 4 apart). */
    for (int gap = 1; gap <= 4; gap++) {
        struct sl_cfg cfg[5];
        void *f[5];
        char yaml[512];
        for (int k = 0; k < 5; k++) {
            snprintf(yaml, sizeof(yaml), "f: %s\n", memo_cases[1 + k % 3].opts);
            f[k] = load(&cfg[k], yaml);
            CHECK(f[k] != NULL);
        }
        void *a = f[0], *b = f[gap];
        const struct memo_seq *qa = &seqs[1], *qb = &seqs[1 + gap % 3];
        int wrong = 0;
        for (size_t i = 0; i < MEMO_STEPS; i++) {
            /* Case 1's events through both: b's expectation is its own case's parse. */
            wrong += strcmp(run_json(a, qa->json[i]), qa->want[i]) != 0;
            char want[512];
            fresh_json(memo_cases[1 + gap % 3].opts, qa->json[i], want, sizeof(want));
            wrong += strcmp(run_json(b, qa->json[i]), want) != 0;
            wrong += strcmp(run_json(b, qb->json[i]), qb->want[i]) != 0;
        }
        CHECK_INT(wrong, 0);
        for (int k = 0; k < 5; k++) {
            unload(f[k]);
            sl_cfg_free(&cfg[k]);
        }
    }
    sl_cfg_free(&g_cfg);
}

struct memo_thread {
    void *f;
    const struct memo_seq *q;
    size_t from;
    int wrong;
};

static void *memo_hammer(void *p)
{
    struct memo_thread *a = p;
    for (size_t k = 0; k < MEMO_STEPS; k++) {
        size_t i = (a->from + k) % MEMO_STEPS;
        struct sl_value ev = ev_from(a->q->json[i]);
        int rc = run(a->f, &ev);
        struct sl_buf b;
        sl_buf_init(&b, 0);
        sl_json_write(&b, &ev, NULL);
        char got[512];
        snprintf(got, sizeof(got), "%s%s", verdict(rc), sl_buf_cstr(&b));
        a->wrong += strcmp(got, a->q->want[i]) != 0;
        sl_buf_free(&b);
        sl_value_clear(&ev);
    }
    return NULL;
}

/* One instance on four threads, each at another place of the sequence: each thread's
 * memo is its own. */
TEST(memo_threads)
{
    static struct memo_seq q;
    memo_seq_make(&q, &memo_cases[6]);
    char yaml[512];
    snprintf(yaml, sizeof(yaml), "f: %s\n", memo_cases[6].opts);
    struct sl_cfg cfg;
    void *f = load(&cfg, yaml);
    CHECK(f != NULL);
    struct memo_thread args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct memo_thread){f, &q, (size_t)i * 377, 0};
        pthread_create(&th[i], NULL, memo_hammer, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(args[i].wrong, 0);
    }
    unload(f);
    sl_cfg_free(&cfg);
    sl_cfg_free(&g_cfg);
}

TEST(descriptor)
{
    CHECK_STR(P.name, "date");
    CHECK(P.kind == SL_PLUGIN_FILTER);
    CHECK(P.submit == NULL);
    unload(NULL);
}

int main(void)
{
    RUN(joda_patterns);
    RUN(joda_rejects);
    RUN(iso8601);
    RUN(unix_keywords);
    RUN(timezones);
    RUN(footer_rules);
    RUN(year_guessing);
    RUN(failures_and_target);
    RUN(config_errors);
    RUN(random_input);
    RUN(threads);
    RUN(memo_matches_parse);
    RUN(memo_threads);
    RUN(descriptor);
    sl_cfg_free(&g_cfg);
    return TEST_SUMMARY();
}
