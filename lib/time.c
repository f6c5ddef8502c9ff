/*
 * time.c - calendar arithmetic, ISO8601 parsing and @timestamp formatting
 * (see time.h): pure integer arithmetic on the proleptic Gregorian calendar.
 */
#include "sluice/time.h"

#include <string.h>

/* ---- calendar ------------------------------------------------------------- */

int64_t sl_time_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void sl_time_civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int sl_time_days_in_month(int64_t y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12) {
        return 0;
    }
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Floor division, so times before 1970 land in the right day and second. */

/* ---- ISO8601 -------------------------------------------------------------- */

/* Exactly n digits at s[*i]; advances *i. */
static bool fixed_digits(const char *s, size_t len, size_t *i, int n, int *out)
{
    if (*i + (size_t)n > len) {
        return false;
    }
    int v = 0;
    for (int k = 0; k < n; k++) {
        char c = s[*i + (size_t)k];
        if (c < '0' || c > '9') {
            return false;
        }
        v = v * 10 + (c - '0');
    }
    *i += (size_t)n;
    *out = v;
    return true;
}

int sl_time_parse_iso8601(const char *s, size_t len, int64_t *local_ms, int *offset_s)
{
    size_t i = 0;
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
    *offset_s = 0;
    if (!fixed_digits(s, len, &i, 4, &y) || i >= len || s[i++] != '-' ||
        !fixed_digits(s, len, &i, 2, &mo) || i >= len || s[i++] != '-' ||
        !fixed_digits(s, len, &i, 2, &d)) {
        return SL_EINVAL;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > sl_time_days_in_month(y, mo)) {
        return SL_EINVAL;
    }
    if (i < len && (s[i] == 'T' || s[i] == ' ')) {
        i++;
        if (!fixed_digits(s, len, &i, 2, &h) || i >= len || s[i++] != ':' ||
            !fixed_digits(s, len, &i, 2, &mi)) {
            return SL_EINVAL;
        }
        if (i < len && s[i] == ':') {
            i++;
            if (!fixed_digits(s, len, &i, 2, &sec)) {
                return SL_EINVAL;
            }
            if (i < len && (s[i] == '.' || s[i] == ',')) {
                i++;
                size_t start = i;
                int scale = 100;
                while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 9) {
                    ms += (s[i] - '0') * scale;
                    scale /= 10;
                    i++;
                }
                if (i == start) {
                    return SL_EINVAL;
                }
            }
        }
        if (h > 23 || mi > 59 || sec > 59) {
            return SL_EINVAL;
        }
    }
    int rc = 0;
    if (i < len && s[i] == 'Z') {
        i++;
        rc = 1;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i++] == '-' ? -1 : 1;
        int oh, om = 0;
        if (!fixed_digits(s, len, &i, 2, &oh)) {
            return SL_EINVAL;
        }
        if (i < len && s[i] == ':') {
            i++;
            if (!fixed_digits(s, len, &i, 2, &om)) {
                return SL_EINVAL;
            }
        } else if (i < len) {
            if (!fixed_digits(s, len, &i, 2, &om)) {
                return SL_EINVAL;
            }
        }
        if (oh > 23 || om > 59) {
            return SL_EINVAL;
        }
        *offset_s = sign * (oh * 3600 + om * 60);
        rc = 1;
    }
    if (i != len) {
        return SL_EINVAL;
    }
    int64_t days = sl_time_days_from_civil(y, mo, d);
    *local_ms = (days * 86400 + h * 3600 + mi * 60 + sec) * 1000 + ms;
    return rc;
}

int sl_timestamp_parse(const char *s, size_t len, int64_t *epoch_ms)
{
    int64_t local;
    int off;
    if (sl_time_parse_iso8601(s, len, &local, &off) < 0) {
        return SL_EINVAL;
    }
    *epoch_ms = local - (int64_t)off * 1000;
    return 0;
}

int sl_timestamp_get(const struct sl_value *event, int64_t *epoch_ms)
{
    const struct sl_value *ts = event ? sl_obj_getc(event, "@timestamp") : NULL;
    if (!ts || ts->type != SL_V_STRING) {
        return SL_ENOENT;
    }
    return sl_timestamp_parse(ts->u.s.ptr, ts->u.s.len, epoch_ms);
}

/* Writes v as exactly n digits (v >= 0, fits). */
static void put_digits(char *out, int64_t v, int n)
{
    for (int k = n - 1; k >= 0; k--) {
        out[k] = (char)('0' + v % 10);
        v /= 10;
    }
}

size_t sl_timestamp_format(int64_t epoch_ms, char *out, size_t outlen)
{
    int64_t days = sl_floor_div(epoch_ms, 86400000);
    int64_t rem = epoch_ms - days * 86400000;  /* 0 .. 86399999 */
    int64_t y;
    int m, d;
    sl_time_civil_from_days(days, &y, &m, &d);
    if (outlen < 25 || y < 0 || y > 9999) {
        if (outlen) {
            out[0] = '\0';
        }
        return 0;
    }
    /* Fixed layout: filled by hand, this runs for every event the date filter sets. */
    memcpy(out, "0000-00-00T00:00:00.000Z", 25);
    put_digits(out, y, 4);
    put_digits(out + 5, m, 2);
    put_digits(out + 8, d, 2);
    put_digits(out + 11, rem / 3600000, 2);
    put_digits(out + 14, rem / 60000 % 60, 2);
    put_digits(out + 17, rem / 1000 % 60, 2);
    put_digits(out + 20, rem % 1000, 3);
    return 24;
}

