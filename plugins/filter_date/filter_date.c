/*
 * filter_date.c - the `date` filter: parses a timestamp out of a field with
 * Logstash's formats (Joda-style patterns, ISO8601, UNIX, UNIX_MS, TAI64N) and
 * writes it as sluice's @timestamp text ("2026-11-27T06:00:00.123Z") into the
 * target field. Options and behaviour: README.md next to this file.
 *
 * Everything that can be decided once is decided at init: each pattern is
 * compiled into a token list, the time zone file is read into memory. Parsing
 * an event then walks the tokens over the text with no allocation, no libc
 * time functions (localtime/mktime depend on the process-wide TZ and are not
 * what several filter threads should share) and no locale: month and day
 * names are English, matched case-insensitively, like Logstash's default.
 * Each thread remembers the last text it parsed per instance (the memo,
 * below): runs of lines that share a second are parsed once.
 *
 * Time zones come from the system's TZif files (RFC 8536), read here: the
 * 64-bit transition table, then the POSIX TZ rule in the footer for instants
 * after the last transition (slim zoneinfo builds stop their tables early).
 *
 * Not here: locales other than English, week-based fields (x, w, e) and
 * day-of-year (D) when parsing, leap seconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/config.h"
#include "sluice/plugin.h"
#include "sluice/template.h"

#define TZ_MAX_FILE (1 << 20)     /* real TZif files are a few KiB */
#define ZONE_CACHE_MAX 64         /* distinct zone ids (ZZZ) met in events, per instance */
#define ZONE_NAME_MAX 64
#define GUESS_AHEAD_MS (31LL * 86400 * 1000)  /* "more than a month ahead" = last year */
#define MEMO_TEXT_MAX 64          /* longer texts are parsed every time */
#define MEMO_SLOTS 4              /* per thread; instances map to slots by id */
#define TS_LEN 24                 /* "2026-11-27T06:00:00.123Z" */

/* ---- time zones ----------------------------------------------------------- */

/* A transition rule of a POSIX TZ string: Jn, n or Mm.w.d, at time seconds local. */
struct tz_when {
    char kind;       /* 'J' (1-365, no Feb 29), 'N' (0-365), 'M' */
    int n, m, w, d;
    int32_t time;
};

struct tz {
    int64_t *trans;          /* UTC seconds, ascending */
    uint8_t *idx;            /* type of each transition */
    size_t ntrans;
    int32_t *offs;           /* UTC offset of each type, seconds east */
    size_t ntypes;
    bool has_rule;           /* the footer gives the offsets after the last transition */
    bool rule_dst;
    int32_t std_off, dst_off;
    struct tz_when start, end;
};

/* A zone: a fixed offset, or a TZif zone. */
struct zone {
    int32_t fixed;
    const struct tz *tz;
};

static void tz_free(struct tz *z)
{
    if (!z) {
        return;
    }
    free(z->trans);
    free(z->idx);
    free(z->offs);
    free(z);
}

static int64_t be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return (int64_t)v;
}

static int32_t be32s(const unsigned char *p)
{
    return (int32_t)sl_get_u32be(p);
}

/* [+-]hh[:mm[:ss]] of a POSIX TZ string; advances *p. */
static bool posix_hms(const char **p, int32_t *out, int max_hours)
{
    const char *s = *p;
    int sign = 1;
    if (*s == '+' || *s == '-') {
        sign = *s++ == '-' ? -1 : 1;
    }
    int part[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        if (k > 0) {
            if (*s != ':') {
                break;
            }
            s++;
        }
        if (*s < '0' || *s > '9') {
            return false;
        }
        int v = 0, nd = 0;
        while (*s >= '0' && *s <= '9' && nd < 3) {
            v = v * 10 + (*s++ - '0');
            nd++;
        }
        part[k] = v;
    }
    if (part[0] > max_hours || part[1] > 59 || part[2] > 59) {
        return false;
    }
    *out = sign * (part[0] * 3600 + part[1] * 60 + part[2]);
    *p = s;
    return true;
}

static bool posix_name(const char **p)
{
    const char *s = *p;
    if (*s == '<') {
        const char *e = strchr(s, '>');
        if (!e) {
            return false;
        }
        *p = e + 1;
        return true;
    }
    size_t n = 0;
    while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z')) {
        n++;
    }
    if (n < 3) {
        return false;
    }
    *p = s + n;
    return true;
}

static bool posix_when(const char **p, struct tz_when *w)
{
    const char *s = *p;
    char *end;
    memset(w, 0, sizeof(*w));
    w->time = 7200;  /* POSIX default: 02:00 */
    if (*s == 'M') {
        w->kind = 'M';
        w->m = (int)strtol(s + 1, &end, 10);
        if (*end != '.') {
            return false;
        }
        w->w = (int)strtol(end + 1, &end, 10);
        if (*end != '.') {
            return false;
        }
        w->d = (int)strtol(end + 1, &end, 10);
        if (w->m < 1 || w->m > 12 || w->w < 1 || w->w > 5 || w->d < 0 || w->d > 6) {
            return false;
        }
    } else if (*s == 'J') {
        w->kind = 'J';
        w->n = (int)strtol(s + 1, &end, 10);
        if (w->n < 1 || w->n > 365) {
            return false;
        }
    } else if (*s >= '0' && *s <= '9') {
        w->kind = 'N';
        w->n = (int)strtol(s, &end, 10);
        if (w->n > 365) {
            return false;
        }
    } else {
        return false;
    }
    s = end;
    if (*s == '/') {
        s++;
        if (!posix_hms(&s, &w->time, 167)) {  /* RFC 8536 allows -167..167 hours */
            return false;
        }
    }
    *p = s;
    return true;
}

/* Parses the footer rule ("CET-1CEST,M3.5.0,M10.5.0/3"); false leaves no rule. */
static bool posix_parse(struct tz *z, const char *s)
{
    int32_t std;
    if (!posix_name(&s) || !posix_hms(&s, &std, 24)) {
        return false;
    }
    z->std_off = -std;  /* POSIX counts west of Greenwich */
    z->dst_off = z->std_off;
    z->rule_dst = false;
    if (*s == '\0') {
        z->has_rule = true;
        return true;
    }
    if (!posix_name(&s)) {
        return false;
    }
    z->dst_off = z->std_off + 3600;
    if (*s != ',' && *s != '\0') {
        int32_t dst;
        if (!posix_hms(&s, &dst, 24)) {
            return false;
        }
        z->dst_off = -dst;
    }
    if (*s == '\0') {
        s = ",M3.2.0,M11.1.0";  /* POSIX leaves it to the implementation: the US rule */
    }
    if (*s++ != ',' || !posix_when(&s, &z->start) || *s++ != ',' || !posix_when(&s, &z->end) ||
        *s != '\0') {
        return false;
    }
    z->rule_dst = true;
    z->has_rule = true;
    return true;
}

/* Local seconds (from 1970, as if UTC) at which rule w fires in year y. */
static int64_t when_local(const struct tz_when *w, int64_t y)
{
    int64_t jan1 = sl_time_days_from_civil(y, 1, 1);
    int64_t day;
    if (w->kind == 'J') {
        bool leap = sl_time_days_in_month(y, 2) == 29;
        day = jan1 + w->n - 1 + (leap && w->n >= 60);
    } else if (w->kind == 'N') {
        day = jan1 + w->n;
    } else {
        int64_t first = sl_time_days_from_civil(y, w->m, 1);
        int dow = (int)(((first + 4) % 7 + 7) % 7);  /* 0 = Sunday; 1970-01-01 was Thursday */
        int mday = 1 + (w->d - dow + 7) % 7 + (w->w - 1) * 7;
        int dim = sl_time_days_in_month(y, w->m);
        while (mday > dim) {
            mday -= 7;
        }
        day = first + mday - 1;
    }
    return day * 86400 + w->time;
}

static int32_t rule_offset(const struct tz *z, int64_t t)
{
    if (!z->rule_dst) {
        return z->std_off;
    }
    int64_t y;
    int m, d;
    int64_t days = (t + z->std_off) / 86400 - ((t + z->std_off) % 86400 < 0);
    sl_time_civil_from_days(days, &y, &m, &d);
    int64_t start = when_local(&z->start, y) - z->std_off;
    int64_t end = when_local(&z->end, y) - z->dst_off;
    bool dst = start < end ? (t >= start && t < end) : !(t >= end && t < start);
    return dst ? z->dst_off : z->std_off;
}

/* Offset east of UTC in effect at UTC second t. */
static int32_t tz_offset(const struct tz *z, int64_t t)
{
    if (z->ntrans == 0 || t >= z->trans[z->ntrans - 1]) {
        if (z->has_rule) {
            return rule_offset(z, t);
        }
        return z->ntrans ? z->offs[z->idx[z->ntrans - 1]] : z->offs[0];
    }
    if (t < z->trans[0]) {
        return z->offs[0];  /* RFC 8536: type 0 before the first transition */
    }
    size_t lo = 0, hi = z->ntrans - 1;  /* trans[lo] <= t < trans[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->trans[mid] <= t) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return z->offs[z->idx[lo]];
}

/*
 * UTC ms of a wall-clock time in zone zn. A time that happens twice (the hour
 * clocks go back) is the first one, as Joda chooses; a time that does not
 * exist (the hour clocks skip) is moved forward by the gap, as java.time does,
 * rather than failing a real log line.
 */
static int64_t zone_to_utc(const struct zone *zn, int64_t local_ms)
{
    if (!zn->tz) {
        return local_ms - (int64_t)zn->fixed * 1000;
    }
    int64_t ls = local_ms / 1000 - (local_ms % 1000 < 0);
    int32_t before = tz_offset(zn->tz, ls - 86400);
    int32_t after = tz_offset(zn->tz, ls + 86400);
    int64_t u1 = ls - before, u2 = ls - after;
    bool ok1 = tz_offset(zn->tz, u1) == before, ok2 = tz_offset(zn->tz, u2) == after;
    int32_t off;
    if (ok1 && ok2) {
        off = u1 <= u2 ? before : after;
    } else if (ok1 || ok2) {
        off = ok1 ? before : after;
    } else {
        off = before;
    }
    return local_ms - (int64_t)off * 1000;
}

static bool tz_parse(struct tz *z, const unsigned char *p, size_t len)
{
    if (len < 44 || memcmp(p, "TZif", 4) != 0) {
        return false;
    }
    bool v2 = p[4] >= '2';
    size_t off = 0;
    int tsize = 4;
    for (int pass = 0; pass < (v2 ? 2 : 1); pass++) {
        if (off + 44 > len) {
            return false;
        }
        const unsigned char *h = p + off;
        uint32_t isut = sl_get_u32be(h + 20), isstd = sl_get_u32be(h + 24);
        uint32_t leap = sl_get_u32be(h + 28), timecnt = sl_get_u32be(h + 32);
        uint32_t typecnt = sl_get_u32be(h + 36), charcnt = sl_get_u32be(h + 40);
        if (timecnt > 100000 || typecnt == 0 || typecnt > 256 || charcnt > 100000 ||
            leap > 100000 || isut > 256 || isstd > 256) {
            return false;
        }
        size_t body = (size_t)timecnt * (size_t)(tsize + 1) + typecnt * 6 + charcnt +
                      (size_t)leap * (size_t)(tsize + 4) + isstd + isut;
        if (off + 44 + body > len) {
            return false;
        }
        if (pass == 0 && v2) {
            off += 44 + body;  /* skip the 32-bit block: the 64-bit one follows */
            tsize = 8;
            continue;
        }
        const unsigned char *d = h + 44;
        z->ntrans = timecnt;
        z->ntypes = typecnt;
        z->trans = sl_calloc(timecnt ? timecnt : 1, sizeof(*z->trans));
        z->idx = sl_calloc(timecnt ? timecnt : 1, 1);
        z->offs = sl_calloc(typecnt, sizeof(*z->offs));
        for (uint32_t i = 0; i < timecnt; i++) {
            z->trans[i] = tsize == 8 ? be64(d + (size_t)i * 8) : be32s(d + (size_t)i * 4);
            if (i > 0 && z->trans[i] <= z->trans[i - 1]) {
                return false;
            }
        }
        d += (size_t)timecnt * (size_t)tsize;
        for (uint32_t i = 0; i < timecnt; i++) {
            z->idx[i] = d[i];
            if (d[i] >= typecnt) {
                return false;
            }
        }
        d += timecnt;
        for (uint32_t i = 0; i < typecnt; i++) {
            z->offs[i] = be32s(d + (size_t)i * 6);
            if (z->offs[i] <= -26 * 3600 || z->offs[i] >= 26 * 3600) {
                return false;
            }
        }
        off += 44 + body;
    }
    /* The footer: "\n<POSIX TZ>\n" (v2+). A rule we cannot read is ignored:
     * the last transition's offset then holds forever. */
    if (v2 && off < len && p[off] == '\n') {
        const char *s = (const char *)p + off + 1;
        const char *nl = memchr(s, '\n', len - off - 1);
        if (nl && nl - s > 0 && nl - s < 128) {
            char rule[128];
            memcpy(rule, s, (size_t)(nl - s));
            rule[nl - s] = '\0';
            if (!posix_parse(z, rule)) {
                z->has_rule = false;
            }
        }
    }
    return true;
}

/* Zone ids name files under the zoneinfo directory: nothing that could leave it. */
static bool zone_name_ok(const char *name, size_t n)
{
    if (n == 0 || n > ZONE_NAME_MAX || name[0] == '/' || name[0] == '.') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '/' || c == '_' || c == '-' || c == '+' || c == '.')) {
            return false;
        }
        if (c == '.' && i + 1 < n && name[i + 1] == '.') {
            return false;
        }
    }
    return true;
}

/* Reads dir/name; NULL when absent or not a TZif file (why in err). */
static struct tz *tz_load(const char *dir, const char *name, size_t n, char *err, size_t errlen)
{
    char path[512];
    struct tz *z = NULL;
    unsigned char *data = NULL;
    int fd = -1;
    if (!zone_name_ok(name, n)) {
        snprintf(err, errlen, "not a time zone name");
        goto out;
    }
    snprintf(path, sizeof(path), "%s/%.*s", dir, (int)n, name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > TZ_MAX_FILE) {
        snprintf(err, errlen, "%s is not a time zone file", path);
        goto out;
    }
    size_t len = (size_t)st.st_size, got = 0;
    data = sl_malloc(len ? len : 1);
    while (got < len) {
        ssize_t r = read(fd, data + got, len - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            snprintf(err, errlen, "cannot read %s", path);
            goto out;
        }
        got += (size_t)r;
    }
    z = sl_calloc(1, sizeof(*z));
    if (!tz_parse(z, data, len)) {
        snprintf(err, errlen, "%s is not a valid TZif file", path);
        tz_free(z);
        z = NULL;
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    free(data);
    return z;
}

/* "+02:00", "-0500", "+02", "Z", "UTC", "GMT", "UT" as a fixed offset; false otherwise. */
static bool fixed_offset(const char *s, size_t n, int32_t *out)
{
    if ((n == 1 && (s[0] == 'Z' || s[0] == 'z')) ||
        (n == 3 && (strncasecmp(s, "UTC", 3) == 0 || strncasecmp(s, "GMT", 3) == 0)) ||
        (n == 2 && strncasecmp(s, "UT", 2) == 0)) {
        *out = 0;
        return true;
    }
    if (n < 3 || (s[0] != '+' && s[0] != '-')) {
        return false;
    }
    int dg[4], nd = 0;
    for (size_t i = 1; i < n; i++) {
        if (s[i] == ':' && i == 3) {
            continue;
        }
        if (s[i] < '0' || s[i] > '9' || nd == 4) {
            return false;
        }
        dg[nd++] = s[i] - '0';
    }
    if (nd != 2 && nd != 4) {
        return false;
    }
    int h = dg[0] * 10 + dg[1], m = nd == 4 ? dg[2] * 10 + dg[3] : 0;
    if (h > 23 || m > 59 || (n == 4 && s[3] == ':')) {
        return false;
    }
    *out = (s[0] == '-' ? -1 : 1) * (h * 3600 + m * 60);
    return true;
}

/* ---- formats -------------------------------------------------------------- */

enum fmt_kind { FMT_JODA, FMT_ISO8601, FMT_UNIX, FMT_UNIX_MS, FMT_TAI64N };

enum tok_kind {
    TK_LIT,
    TK_YEAR,       /* y, Y (count 2: two-digit year) */
    TK_MONTH,      /* M, MM */
    TK_MONTHNAME,  /* MMM, MMMM */
    TK_DAY,        /* d */
    TK_HOUR,       /* H 0-23 */
    TK_HOUR12,     /* h 1-12 */
    TK_HOUR11,     /* K 0-11 */
    TK_HOUR24,     /* k 1-24 */
    TK_AMPM,       /* a */
    TK_MINUTE,     /* m */
    TK_SECOND,     /* s */
    TK_FRACTION,   /* S */
    TK_OFFSET,     /* Z, ZZ: +0100, +01:00, Z */
    TK_ZONEID,     /* ZZZ: Europe/Paris, UTC */
    TK_ZONENAME,   /* z: UTC, GMT, EST, ... */
    TK_DAYNAME,    /* E: Mon, Monday (checked, then ignored) */
};

struct tok {
    enum tok_kind kind;
    unsigned count;      /* letters in the pattern */
    bool numeric;        /* reads digits (tok_numeric) */
    unsigned min, max;   /* digits accepted (numeric tokens) */
    size_t off, len;     /* TK_LIT: text in the format's literal pool */
};

struct format {
    enum fmt_kind kind;
    char *text;          /* as configured */
    struct tok *toks;
    size_t ntoks;
    char *lits;          /* literal pool */
    bool has_year;
    bool yy;             /* a two-digit year letter: read around the reference year */
};

struct filter_date {
    /* Options. */
    struct sl_cfg_node *match;   /* [field, format, ...]: read in init (valid then only) */
    struct sl_fieldref field;
    struct sl_strv formats;
    struct sl_fieldref target;
    char *timezone;
    char *locale;

    /* Derived in init. */
    struct sl_fieldref match_field;  /* match's field */
    const struct sl_fieldref *src;   /* field or match_field */
    struct format *fmts;
    size_t nfmts;
    struct zone zone;            /* the timezone option */
    struct tz *zone_tz;          /* owned when the option names a TZif zone */
    char *tzdir;
    uint64_t memo_id;            /* unique per instance: keys the per-thread memo */
    size_t memo_fmts;            /* formats 0..memo_fmts-1 depend on the text alone */

    /* Zones named inside events (ZZZ): loaded once each, then shared read-only. */
    pthread_mutex_t cache_lock;
    struct {
        char name[ZONE_NAME_MAX + 1];
        struct tz *tz;           /* NULL: no such zone (remembered, not retried) */
    } cache[ZONE_CACHE_MAX];
    size_t ncache;
};

/*
 * match is Logstash's [field, format, format...]: a list whose first item
 * means something else than the rest, which no table type says; init reads
 * it and reports its errors itself.
 */
static const struct sl_opt date_opts[] = {
    {.name = "field", .type = SL_OPT_FIELD, .flags = SL_OPT_NONEMPTY,
     .offset = offsetof(struct filter_date, field),
     .doc = "the field holding the text (required, or match)"},
    {.name = "formats", .type = SL_OPT_LIST, .offset = offsetof(struct filter_date, formats),
     .doc = "formats tried in order: Joda-style patterns, ISO8601, UNIX, UNIX_MS, TAI64N "
            "(required with field)"},
    {.name = "match", .type = SL_OPT_NODE, .offset = offsetof(struct filter_date, match),
     .doc = "Logstash's [field, format, ...], instead of field and formats"},
    {.name = "target", .type = SL_OPT_FIELD, .def = "@timestamp", .flags = SL_OPT_NONEMPTY,
     .offset = offsetof(struct filter_date, target), .doc = "the field the result is written to"},
    {.name = "timezone", .type = SL_OPT_STRING, .offset = offsetof(struct filter_date, timezone),
     .doc = "zone of texts that carry none: an IANA name or a fixed offset; default UTC"},
    {.name = "locale", .type = SL_OPT_STRING, .offset = offsetof(struct filter_date, locale),
     .doc = "accepted when English (en, en_US, C, POSIX): names are always English"},
    {0},
};

static const char *const month_names[12] = {"january", "february", "march",     "april",
                                            "may",     "june",     "july",      "august",
                                            "september", "october", "november", "december"};
static const char *const day_names[7] = {"monday", "tuesday",  "wednesday", "thursday",
                                         "friday", "saturday", "sunday"};

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* ASCII case folding: what strncasecmp does in the C locale the daemons run in. */
static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

/* n bytes of s equal lower (already folded), ignoring ASCII case. */
static bool same_folded(const char *s, const char *lower, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ascii_lower(s[i]) != lower[i]) {
            return false;
        }
    }
    return true;
}

static bool tok_numeric(const struct tok *t)
{
    switch (t->kind) {
    case TK_YEAR:
    case TK_MONTH:
    case TK_DAY:
    case TK_HOUR:
    case TK_HOUR12:
    case TK_HOUR11:
    case TK_HOUR24:
    case TK_MINUTE:
    case TK_SECOND:
    case TK_FRACTION:
        return true;
    default:
        return false;
    }
}

static void tok_push(struct format *f, struct tok t, size_t *cap)
{
    if (f->ntoks == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        f->toks = sl_realloc(f->toks, *cap * sizeof(*f->toks));
    }
    f->toks[f->ntoks++] = t;
}

/* Compiles a Joda pattern; NULL or a reason. */
static const char *compile_joda(struct format *f, const char *p, char *why, size_t whylen)
{
    struct sl_buf lits;
    sl_buf_init(&lits, 0);
    size_t cap = 0;
    const char *err = NULL;
    size_t i = 0, n = strlen(p);
    while (i < n && !err) {
        char c = p[i];
        struct tok t;
        memset(&t, 0, sizeof(t));
        if (c == '\'') {
            t.kind = TK_LIT;
            t.off = lits.len;
            if (i + 1 < n && p[i + 1] == '\'') {
                sl_buf_putc(&lits, '\'');
                i += 2;
            } else {
                for (i++;; i++) {
                    if (i >= n) {
                        err = "has an unterminated quote";
                        break;
                    }
                    if (p[i] == '\'') {
                        if (i + 1 < n && p[i + 1] == '\'') {
                            sl_buf_putc(&lits, '\'');
                            i++;
                            continue;
                        }
                        i++;
                        break;
                    }
                    sl_buf_putc(&lits, p[i]);
                }
            }
            t.len = lits.len - t.off;
            tok_push(f, t, &cap);
            continue;
        }
        if (!is_alpha(c)) {
            t.kind = TK_LIT;
            t.off = lits.len;
            while (i < n && !is_alpha(p[i]) && p[i] != '\'') {
                sl_buf_putc(&lits, p[i++]);
            }
            t.len = lits.len - t.off;
            tok_push(f, t, &cap);
            continue;
        }
        unsigned run = 1;
        while (i + run < n && p[i + run] == c) {
            run++;
        }
        t.count = run;
        t.min = 1;
        t.max = 2;
        switch (c) {
        case 'y':
        case 'Y':
            t.kind = TK_YEAR;
            t.max = 9;
            f->has_year = true;
            if (run == 2) {
                f->yy = true;
            }
            break;
        case 'M':
            t.kind = run >= 3 ? TK_MONTHNAME : TK_MONTH;
            break;
        case 'd':
            t.kind = TK_DAY;
            break;
        case 'H':
            t.kind = TK_HOUR;
            break;
        case 'h':
            t.kind = TK_HOUR12;
            break;
        case 'K':
            t.kind = TK_HOUR11;
            break;
        case 'k':
            t.kind = TK_HOUR24;
            break;
        case 'a':
            t.kind = TK_AMPM;
            break;
        case 'm':
            t.kind = TK_MINUTE;
            break;
        case 's':
            t.kind = TK_SECOND;
            break;
        case 'S':
            t.kind = TK_FRACTION;
            t.max = 9;
            break;
        case 'Z':
            t.kind = run >= 3 ? TK_ZONEID : TK_OFFSET;
            break;
        case 'z':
            t.kind = TK_ZONENAME;
            break;
        case 'E':
            t.kind = TK_DAYNAME;
            break;
        default:
            snprintf(why, whylen, "has an unsupported pattern letter '%c'", c);
            err = why;
            continue;
        }
        tok_push(f, t, &cap);
        i += run;
    }
    for (size_t k = 0; k < f->ntoks; k++) {
        f->toks[k].numeric = tok_numeric(&f->toks[k]);
    }
    /* Joda reads a number followed directly by another number with exactly its
     * pattern's width ("yyyyMMddHHmmss"); elsewhere it is lenient about width. */
    for (size_t k = 0; k + 1 < f->ntoks; k++) {
        if (f->toks[k].numeric && f->toks[k + 1].numeric) {
            f->toks[k].min = f->toks[k].max = f->toks[k].count;
        }
    }
    /* Literals compare case-insensitively: folded once here, the text per event. */
    for (size_t k = 0; k < lits.len; k++) {
        lits.data[k] = ascii_lower(lits.data[k]);
    }
    f->lits = lits.data;
    return err;
}

static void format_free(struct format *f)
{
    free(f->text);
    free(f->toks);
    free(f->lits);
}

/* ---- parsing -------------------------------------------------------------- */

/* What a pattern read from the text. */
struct fields {
    int64_t year;
    bool year2;          /* two digits for yy: resolved around the reference year */
    int month, day, hour, minute, second, ms;
    int hour_kind;       /* 0: H, 'h', 'K', 'k' */
    int pm;              /* -1 unknown, 0 AM, 1 PM */
    bool has_offset;
    int32_t offset;
    const struct tz *tz; /* a zone id in the text */
};

/*
 * Case-insensitive match of a whole name at s, else of its first 3 letters.
 * The 3-letter prefixes of the English month and day names are all distinct,
 * so the name with the text's prefix is the only candidate: its whole name
 * when the text goes on with it, else the short form.
 */
static int match_name(const char *s, size_t len, const char *const *names, int count, size_t *used)
{
    if (len < 3) {
        return -1;
    }
    char a = ascii_lower(s[0]), b = ascii_lower(s[1]), c = ascii_lower(s[2]);
    for (int i = 0; i < count; i++) {
        const char *name = names[i];
        if (name[0] != a || name[1] != b || name[2] != c) {
            continue;
        }
        size_t n = strlen(name);
        *used = len >= n && same_folded(s + 3, name + 3, n - 3) ? n : 3;
        return i;
    }
    return -1;
}

/* The cached zone called name (loading it on first sight); NULL when unknown. */
static const struct tz *zone_lookup(struct filter_date *fd, const char *name, size_t n)
{
    if (!zone_name_ok(name, n)) {
        return NULL;  /* not worth a cache slot: hostile text must not fill the cache */
    }
    const struct tz *found = NULL;
    pthread_mutex_lock(&fd->cache_lock);
    for (size_t i = 0; i < fd->ncache; i++) {
        if (strlen(fd->cache[i].name) == n && memcmp(fd->cache[i].name, name, n) == 0) {
            found = fd->cache[i].tz;
            goto out;
        }
    }
    if (fd->ncache < ZONE_CACHE_MAX) {
        /* Rare (once per distinct zone id), so reading the file under the lock is fine. */
        char err[256];
        struct tz *z = tz_load(fd->tzdir, name, n, err, sizeof(err));
        memcpy(fd->cache[fd->ncache].name, name, n);
        fd->cache[fd->ncache].name[n] = '\0';
        fd->cache[fd->ncache].tz = z;
        fd->ncache++;
        found = z;
    }
out:
    pthread_mutex_unlock(&fd->cache_lock);
    return found;
}

static bool zone_char(char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9') || c == '/' || c == '_' || c == '-' || c == '+';
}

/* Reads an offset at s: Z, +HH, +HHMM, +HH:MM. */
static bool read_offset(const char *s, size_t len, size_t *i, int32_t *out)
{
    if (*i < len && (s[*i] == 'Z' || s[*i] == 'z')) {
        (*i)++;
        *out = 0;
        return true;
    }
    if (*i + 3 > len || (s[*i] != '+' && s[*i] != '-')) {
        return false;
    }
    size_t j = *i + 1;
    int v[4], nd = 0;
    while (j < len && nd < 4) {
        if (s[j] == ':' && nd == 2) {
            j++;
            continue;
        }
        if (s[j] < '0' || s[j] > '9') {
            break;
        }
        v[nd++] = s[j++] - '0';
    }
    if (nd != 2 && nd != 4) {
        return false;
    }
    if (s[j - 1] == ':') {
        j--;  /* "+01:" then a non-digit: the ':' is not ours */
    }
    int h = v[0] * 10 + v[1], m = nd == 4 ? v[2] * 10 + v[3] : 0;
    if (h > 23 || m > 59) {
        return false;
    }
    *out = (s[*i] == '-' ? -1 : 1) * (h * 3600 + m * 60);
    *i = j;
    return true;
}

static bool parse_tokens(struct filter_date *fd, const struct format *f, const char *s,
                         size_t len, struct fields *r)
{
    size_t i = 0;
    for (size_t k = 0; k < f->ntoks; k++) {
        const struct tok *t = &f->toks[k];
        if (t->kind == TK_LIT) {
            if (len - i < t->len || !same_folded(s + i, f->lits + t->off, t->len)) {
                return false;
            }
            i += t->len;
            continue;
        }
        if (t->numeric) {
            size_t start = i, end = len - i < t->max ? len : i + t->max;
            int64_t v = 0;
            while (i < end && (unsigned)((unsigned char)s[i] - '0') < 10u) {
                v = v * 10 + (s[i] - '0');
                i++;
            }
            size_t nd = i - start;
            if (nd < t->min) {
                return false;
            }
            switch (t->kind) {
            case TK_YEAR:
                r->year = v;
                r->year2 = t->count == 2 && nd == 2;
                break;
            case TK_MONTH:
                r->month = (int)v;
                break;
            case TK_DAY:
                r->day = (int)v;
                break;
            case TK_HOUR:
            case TK_HOUR12:
            case TK_HOUR11:
            case TK_HOUR24:
                r->hour = (int)v;
                r->hour_kind = t->kind == TK_HOUR     ? 0
                               : t->kind == TK_HOUR12 ? 'h'
                               : t->kind == TK_HOUR11 ? 'K'
                                                      : 'k';
                break;
            case TK_MINUTE:
                r->minute = (int)v;
                break;
            case TK_SECOND:
                r->second = (int)v;
                break;
            case TK_FRACTION:
                /* The first three digits, padded: ".5" is 500; digits past the millisecond
                 * are truncated. */
                r->ms = 0;
                for (size_t d = 0; d < 3; d++) {
                    r->ms = r->ms * 10 + (d < nd ? s[start + d] - '0' : 0);
                }
                break;
            default:
                break;
            }
            continue;
        }
        size_t used = 0;
        switch (t->kind) {
        case TK_MONTHNAME: {
            int m = match_name(s + i, len - i, month_names, 12, &used);
            if (m < 0) {
                return false;
            }
            r->month = m + 1;
            i += used;
            break;
        }
        case TK_DAYNAME:
            if (match_name(s + i, len - i, day_names, 7, &used) < 0) {
                return false;
            }
            i += used;
            break;
        case TK_AMPM:
            if (len - i < 2 || (s[i + 1] != 'M' && s[i + 1] != 'm')) {
                return false;
            }
            if (s[i] == 'A' || s[i] == 'a') {
                r->pm = 0;
            } else if (s[i] == 'P' || s[i] == 'p') {
                r->pm = 1;
            } else {
                return false;
            }
            i += 2;
            break;
        case TK_OFFSET:
            if (!read_offset(s, len, &i, &r->offset)) {
                return false;
            }
            r->has_offset = true;
            break;
        case TK_ZONEID: {
            size_t start = i;
            while (i < len && zone_char(s[i])) {
                i++;
            }
            int32_t off;
            if (fixed_offset(s + start, i - start, &off)) {
                r->offset = off;
                r->has_offset = true;
            } else if ((r->tz = zone_lookup(fd, s + start, i - start)) == NULL) {
                return false;
            }
            break;
        }
        case TK_ZONENAME: {
            /* Joda's table of parseable short names; anything else is ambiguous. */
            static const struct { const char *name; int32_t off; } names[] = {
                {"UTC", 0},          {"UT", 0},           {"GMT", 0},          {"Z", 0},
                {"EST", -5 * 3600},  {"EDT", -4 * 3600},  {"CST", -6 * 3600},  {"CDT", -5 * 3600},
                {"MST", -7 * 3600},  {"MDT", -6 * 3600},  {"PST", -8 * 3600},  {"PDT", -7 * 3600},
            };
            size_t start = i;
            while (i < len && is_alpha(s[i])) {
                i++;
            }
            bool ok = false;
            for (size_t z = 0; z < SL_ARRAY_LEN(names) && !ok; z++) {
                if (strlen(names[z].name) == i - start &&
                    strncasecmp(names[z].name, s + start, i - start) == 0) {
                    r->offset = names[z].off;
                    r->has_offset = ok = true;
                }
            }
            if (!ok) {
                return false;
            }
            break;
        }
        default:
            return false;
        }
    }
    return i == len;
}

/* UTC ms of the fields in year y, or false when the date does not exist. */
static bool fields_to_utc(const struct filter_date *fd, const struct fields *r, int64_t y,
                          int64_t *out)
{
    /* Years @timestamp can hold (0000-9999); also keeps the arithmetic below in range. */
    if (y < 0 || y > 9999 || r->month < 1 || r->month > 12 || r->day < 1 ||
        r->day > sl_time_days_in_month(y, r->month)) {
        return false;
    }
    int64_t days = sl_time_days_from_civil(y, r->month, r->day);
    int64_t local = (days * 86400 + r->hour * 3600 + r->minute * 60 + r->second) * 1000 + r->ms;
    if (r->has_offset) {
        *out = local - (int64_t)r->offset * 1000;
    } else if (r->tz) {
        struct zone z = {0, r->tz};
        *out = zone_to_utc(&z, local);
    } else {
        *out = zone_to_utc(&fd->zone, local);
    }
    return true;
}

static int64_t year_of(int64_t ms)
{
    int64_t y;
    int m, d;
    int64_t days = ms / 86400000 - (ms % 86400000 < 0);
    sl_time_civil_from_days(days, &y, &m, &d);
    return y;
}

/* The time the event was read: its @timestamp, else now. Year guessing is relative to it. */
static int64_t reference_ms(const struct sl_value *event)
{
    int64_t ms;
    if (sl_timestamp_get(event, &ms) == 0) {
        return ms;
    }
    return (int64_t)sl_wall_ms();
}

static bool parse_joda(struct filter_date *fd, const struct format *f, const char *s, size_t len,
                       const struct sl_value *event, int64_t *out)
{
    struct fields r;
    memset(&r, 0, sizeof(r));
    r.month = r.day = 1;
    r.pm = -1;
    if (!parse_tokens(fd, f, s, len, &r)) {
        return false;
    }
    switch (r.hour_kind) {
    case 0:
        if (r.hour > 23) {
            return false;
        }
        break;
    case 'h':
        if (r.hour < 1 || r.hour > 12) {
            return false;
        }
        r.hour %= 12;
        break;
    case 'K':
        if (r.hour > 11) {
            return false;
        }
        break;
    case 'k':
        if (r.hour < 1 || r.hour > 24) {
            return false;
        }
        r.hour %= 24;
        break;
    }
    if (r.pm == 1) {
        if (r.hour_kind == 0 || r.hour_kind == 'k') {
            if (r.hour < 12) {
                return false;  /* "13 PM" and "09 PM" with H: contradictory */
            }
        } else {
            r.hour += 12;
        }
    } else if (r.pm == 0 && (r.hour_kind == 0 || r.hour_kind == 'k') && r.hour > 11) {
        return false;
    }
    if (r.minute > 59 || r.second > 59) {
        return false;
    }
    if (f->has_year && !r.year2) {
        return fields_to_utc(fd, &r, r.year, out);
    }
    int64_t ref = reference_ms(event);
    int64_t ref_year = year_of(ref);
    if (r.year2) {
        /* Joda's two-digit years: within 50 years of (this year - 30). */
        int64_t pivot = ref_year - 30, base = pivot - 50;
        int64_t y = base - (base % 100 + 100) % 100 + r.year;
        if (y < base) {
            y += 100;
        }
        return fields_to_utc(fd, &r, y, out);
    }
    /* No year (syslog's "MMM d HH:mm:ss"): the most recent year that does not put
     * the stamp more than a month after the reference, so December lines read in
     * January land in last year and a slightly fast clock on Dec 31 in the next. */
    for (int64_t y = ref_year + 1; y >= ref_year - 1; y--) {
        int64_t t;
        if (fields_to_utc(fd, &r, y, &t) && t <= ref + GUESS_AHEAD_MS) {
            *out = t;
            return true;
        }
    }
    /* Feb 29 with no leap year around: the last one that had it. */
    for (int64_t y = ref_year - 2; y >= ref_year - 8; y--) {
        if (fields_to_utc(fd, &r, y, out)) {
            return true;
        }
    }
    return false;
}

/* [-]seconds[.fraction], up to 9 fraction digits (truncated to ms). */
static bool parse_unix(const char *s, size_t len, bool millis, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < len && (s[i] == '-' || s[i] == '+')) {
        neg = s[i++] == '-';
    }
    size_t start = i;
    int64_t v = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < (millis ? 15u : 12u)) {
        v = v * 10 + (s[i++] - '0');
    }
    if (i == start) {
        return false;
    }
    int64_t frac = 0;
    if (!millis && i < len && s[i] == '.') {
        size_t fstart = ++i;
        int scale = 100;
        while (i < len && s[i] >= '0' && s[i] <= '9' && i - fstart < 9) {
            frac += (s[i++] - '0') * scale;
            scale /= 10;
        }
        if (i == fstart) {
            return false;
        }
    }
    if (i != len) {
        return false;
    }
    int64_t ms = millis ? v : v * 1000 + frac;
    *out = neg ? -ms : ms;
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* @4000000037c219bf2ef02e94: TAI64 seconds (Logstash subtracts 2^62 + 10) and ns. */
static bool parse_tai64n(const char *s, size_t len, int64_t *out)
{
    if (len > 0 && s[0] == '@') {
        s++;
        len--;
    }
    if (len != 24) {
        return false;
    }
    uint64_t secs = 0, ns = 0;
    for (size_t i = 0; i < 24; i++) {
        int h = hexval(s[i]);
        if (h < 0) {
            return false;
        }
        if (i < 16) {
            secs = secs << 4 | (uint64_t)h;
        } else {
            ns = ns << 4 | (uint64_t)h;
        }
    }
    if (secs < 4611686018427387914ULL || secs - 4611686018427387914ULL > (1ULL << 40) ||
        ns >= 1000000000) {
        return false;
    }
    *out = (int64_t)(secs - 4611686018427387914ULL) * 1000 + (int64_t)(ns / 1000000);
    return true;
}

static bool parse_one(struct filter_date *fd, const struct format *f, const struct sl_value *v,
                      const struct sl_value *event, int64_t *out)
{
    char tmp[64];
    const char *s;
    size_t len;
    if (v->type == SL_V_STRING) {
        s = v->u.s.ptr;
        len = v->u.s.len;
    } else if (v->type == SL_V_INT) {
        len = (size_t)snprintf(tmp, sizeof(tmp), "%lld", (long long)v->u.i);
        s = tmp;
    } else if (v->type == SL_V_DOUBLE) {
        if (!isfinite(v->u.d) || fabs(v->u.d) > 1e15) {
            return false;
        }
        /* Numbers from JSON: epoch seconds keep their milliseconds, rounded (the
         * double nearest 1700000000.123 is 1700000000.12299990654). */
        if (f->kind == FMT_UNIX) {
            *out = llround(v->u.d * 1000.0);
            return true;
        }
        len = (size_t)snprintf(tmp, sizeof(tmp), "%.0f", v->u.d);
        s = tmp;
    } else {
        return false;
    }
    switch (f->kind) {
    case FMT_JODA:
        return parse_joda(fd, f, s, len, event, out);
    case FMT_ISO8601: {
        int64_t local;
        int off;
        int rc = sl_time_parse_iso8601(s, len, &local, &off);
        if (rc < 0) {
            return false;
        }
        *out = rc == 1 ? local - (int64_t)off * 1000 : zone_to_utc(&fd->zone, local);
        return true;
    }
    case FMT_UNIX:
        return parse_unix(s, len, false, out);
    case FMT_UNIX_MS:
        return parse_unix(s, len, true, out);
    case FMT_TAI64N:
        return parse_tai64n(s, len, out);
    }
    return false;
}

/* ---- the per-thread memo ---------------------------------------------------
 *
 * Log lines come in runs that share a timestamp text (every line of a busy
 * second), so each thread remembers, per instance, the last text it parsed
 * and the @timestamp text it gave. Only results that depend on nothing but
 * the text and the instance's options are remembered: a string read by one of
 * the leading formats that need no reference time (memo_fmts; a later format
 * is only tried after those failed, and its result can hang on the event's
 * @timestamp), so a hit writes the very bytes a parse would. Failures are
 * never remembered. Thread-local, so workers share nothing; keyed by a
 * process-unique instance id, never by address (a freed instance's address
 * can come back with other options).
 */
struct memo {
    uint64_t id;                 /* the instance's memo_id; 0: empty */
    size_t len;
    char text[MEMO_TEXT_MAX];
    char out[TS_LEN];
};

static _Thread_local struct memo tl_memo[MEMO_SLOTS];
static _Atomic uint64_t memo_next_id = 1;

/* Whether format f's result can depend on the reference time (the event's @timestamp or
 * the clock): two-digit years and patterns without a year are read around it. */
static bool format_needs_ref(const struct format *f)
{
    return f->kind == FMT_JODA && (!f->has_year || f->yy);
}

static bool memo_hit(const struct memo *m, uint64_t id, const struct sl_value *v)
{
    return m->id == id && m->len == v->u.s.len &&
           (m->len == 0 || memcmp(m->text, v->u.s.ptr, m->len) == 0);
}

static void memo_store(struct memo *m, uint64_t id, const struct sl_value *v, const char *out)
{
    m->id = id;
    m->len = v->u.s.len;
    if (m->len > 0) {
        memcpy(m->text, v->u.s.ptr, m->len);
    }
    memcpy(m->out, out, TS_LEN);
}

/* Writes the @timestamp text ts into the target field. */
static enum sl_filter_result put_result(const struct filter_date *fd, struct sl_value *event,
                                        const char *ts)
{
    struct sl_value *slot = sl_fieldref_put(&fd->target, event);
    if (!slot) {
        return SL_FILTER_FAIL;
    }
    sl_value_set_str(slot, ts, TS_LEN);
    return SL_FILTER_KEEP;
}

static enum sl_filter_result date_filter(void *inst, struct sl_value *event)
{
    struct filter_date *fd = inst;
    const struct sl_value *v = sl_fieldref_get(fd->src, event);
    if (!v) {
        return SL_FILTER_KEEP;  /* nothing to parse is not a failure (Logstash agrees) */
    }
    if (v->type == SL_V_ARRAY) {
        if (v->u.a.len == 0) {
            return SL_FILTER_KEEP;
        }
        v = &v->u.a.items[0];
    }
    struct memo *m = &tl_memo[fd->memo_id % MEMO_SLOTS];
    bool memo = fd->memo_fmts > 0 && v->type == SL_V_STRING && v->u.s.len <= MEMO_TEXT_MAX;
    if (memo && memo_hit(m, fd->memo_id, v)) {
        return put_result(fd, event, m->out);
    }
    char out[32];
    for (size_t i = 0; i < fd->nfmts; i++) {
        int64_t ms;
        if (parse_one(fd, &fd->fmts[i], v, event, &ms) &&
            sl_timestamp_format(ms, out, sizeof(out)) == TS_LEN) {
            /* v points into the event: done with it before the event changes. */
            if (memo && i < fd->memo_fmts) {
                memo_store(m, fd->memo_id, v, out);
            }
            return put_result(fd, event, out);
        }
    }
    return SL_FILTER_FAIL;
}

/* ---- configuration -------------------------------------------------------- */

/* Compiles one format (item i of the option opt) into fd->fmts[fd->nfmts]. */
static bool add_format(struct sl_plugin_ctx *ctx, struct filter_date *fd, const char *opt,
                       size_t i, const char *text)
{
    if (!text || !*text) {
        sl_plugin_error_at(ctx, opt, NULL, i,
                           "a format must be a pattern or ISO8601, UNIX, UNIX_MS, TAI64N");
        return false;
    }
    struct format *f = &fd->fmts[fd->nfmts];
    memset(f, 0, sizeof(*f));
    f->text = sl_strdup(text);
    if (strcmp(text, "ISO8601") == 0) {
        f->kind = FMT_ISO8601;
    } else if (strcmp(text, "UNIX") == 0) {
        f->kind = FMT_UNIX;
    } else if (strcmp(text, "UNIX_MS") == 0) {
        f->kind = FMT_UNIX_MS;
    } else if (strcmp(text, "TAI64N") == 0) {
        f->kind = FMT_TAI64N;
    } else {
        f->kind = FMT_JODA;
        char why[96];
        const char *err = compile_joda(f, f->text, why, sizeof(why));
        if (err) {
            sl_plugin_error_at(ctx, opt, NULL, i, "format '%s' %s", text, err);
            format_free(f);
            return false;
        }
    }
    fd->nfmts++;
    return true;
}

/* match: [field, format, ...] into match_field and the formats. */
static void read_match(struct sl_plugin_ctx *ctx, struct filter_date *fd)
{
    struct sl_cfg_node *m = fd->match;
    if (sl_plugin_given(ctx, "field") || sl_plugin_given(ctx, "formats")) {
        sl_plugin_error(ctx, "match", "use either 'match' or 'field' with 'formats', not both");
        return;
    }
    if (m->type != SL_CFG_SEQ || m->n < 2 || m->items[0]->type != SL_CFG_SCALAR) {
        sl_plugin_error(ctx, "match", "option 'match' must be a list [field, format, ...]");
        return;
    }
    const char *field = m->items[0]->scalar;
    if (sl_fieldref_init(&fd->match_field, field) != 0) {
        sl_plugin_error_at(ctx, "match", NULL, 0,
                           "option 'match': '%s' is not a valid field reference", field);
    }
    fd->src = &fd->match_field;
    fd->fmts = sl_calloc(m->n - 1, sizeof(*fd->fmts));
    for (size_t i = 1; i < m->n; i++) {
        struct sl_cfg_node *item = m->items[i];
        add_format(ctx, fd, "match", i, item->type == SL_CFG_SCALAR ? item->scalar : NULL);
    }
}

/* field + formats: the cross-option rules the table cannot state. */
static void read_field_formats(struct sl_plugin_ctx *ctx, struct filter_date *fd)
{
    if (fd->field.nsegs == 0) {
        sl_plugin_error(ctx, "field",
                        "option 'field' is required (or match: [field, format, ...])");
        return;
    }
    if (fd->formats.n == 0) {
        sl_plugin_error(ctx, "formats", "option 'formats' is required");
        return;
    }
    fd->src = &fd->field;
    fd->fmts = sl_calloc(fd->formats.n, sizeof(*fd->fmts));
    for (size_t i = 0; i < fd->formats.n; i++) {
        add_format(ctx, fd, "formats", i, fd->formats.v[i]);
    }
}

/* The timezone option: a fixed offset or an IANA name read from the zoneinfo directory. */
static void set_timezone(struct sl_plugin_ctx *ctx, struct filter_date *fd)
{
    const char *name = fd->timezone;
    if (!name || fixed_offset(name, strlen(name), &fd->zone.fixed)) {
        return;
    }
    char err[600];
    fd->zone_tz = tz_load(fd->tzdir, name, strlen(name), err, sizeof(err));
    if (!fd->zone_tz) {
        sl_plugin_error(ctx, "timezone", "option 'timezone' is not a time zone: '%s' (%s)", name,
                        err);
        return;
    }
    fd->zone.tz = fd->zone_tz;
}

static int date_init(void *inst, struct sl_plugin_ctx *ctx)
{
    struct filter_date *fd = inst;
    pthread_mutex_init(&fd->cache_lock, NULL);  /* first: fini destroys it whatever fails */
    /* Read once here, not per zone load: environment reads are not thread-safe. */
    const char *dir = getenv("TZDIR");
    fd->tzdir = sl_strdup(dir && *dir ? dir : "/usr/share/zoneinfo");
    if (fd->match) {
        read_match(ctx, fd);
    } else {
        read_field_formats(ctx, fd);
    }
    set_timezone(ctx, fd);
    fd->memo_id = atomic_fetch_add(&memo_next_id, 1);
    while (fd->memo_fmts < fd->nfmts && !format_needs_ref(&fd->fmts[fd->memo_fmts])) {
        fd->memo_fmts++;
    }
    if (fd->src) {
        sl_filter_touches_field(ctx, fd->src);
    }
    /* A top-level target is only ever set whole, never read: the core need not
     * parse it (a nested one is written into its parent object, which must be). */
    if (fd->target.nsegs == 1) {
        sl_filter_replaces(ctx, fd->target.segs[0].name, fd->target.segs[0].len);
    } else {
        sl_filter_touches_field(ctx, &fd->target);
    }
    /* @timestamp is read only for year guessing, relative to the event's own time. */
    bool needs_ref = false;
    for (size_t i = 0; i < fd->nfmts; i++) {
        needs_ref |= format_needs_ref(&fd->fmts[i]);
    }
    if (needs_ref) {
        sl_filter_touches(ctx, "@timestamp", strlen("@timestamp"));
    }
    /* Logstash configs often say locale: en; names are English here, always. */
    const char *loc = fd->locale;
    if (loc && strncasecmp(loc, "en", 2) != 0 && strcmp(loc, "C") != 0 &&
        strcmp(loc, "POSIX") != 0) {
        sl_plugin_error(ctx, "locale",
                        "option 'locale' '%s' is not supported: month and day names are English",
                        loc);
    }
    return 0;
}

static void date_fini(void *inst)
{
    struct filter_date *fd = inst;
    sl_fieldref_free(&fd->match_field);
    for (size_t i = 0; i < fd->nfmts; i++) {
        format_free(&fd->fmts[i]);
    }
    free(fd->fmts);
    tz_free(fd->zone_tz);
    free(fd->tzdir);
    for (size_t i = 0; i < fd->ncache; i++) {
        tz_free(fd->cache[i].tz);
    }
    pthread_mutex_destroy(&fd->cache_lock);
}

const struct sl_plugin sl_plugin_filter_date = {
    .name = "date",
    .kind = SL_PLUGIN_FILTER,
    .summary = "parses a timestamp out of a field into @timestamp (Logstash's formats)",
    .options = date_opts,
    .size = sizeof(struct filter_date),
    .failure_tag = "_dateparsefailure",
    .init = date_init,
    .fini = date_fini,
    .filter = date_filter,
};
