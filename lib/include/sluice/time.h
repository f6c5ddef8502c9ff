/*
 * time.h - calendar arithmetic and sluice's @timestamp text
 * ("2026-11-27T06:00:00.123Z"), without touching the process time zone (no
 * TZ, no localtime, no gmtime: several threads format dates at once). The
 * one formatter and ISO8601 parser of the code base: logs, the shipper's
 * events, templates, outputs and the date filter all use these.
 */
#ifndef SLUICE_TIME_H
#define SLUICE_TIME_H

#include "common.h"
#include "value.h"

/* a / b rounded towards minus infinity (b > 0): days and seconds before 1970 too. */
static inline int64_t sl_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}


/* Days since 1970-01-01 of a proleptic Gregorian date (m 1-12, d 1-31, not checked). */
int64_t sl_time_days_from_civil(int64_t y, int m, int d);
/* The date of a day number (inverse of the above). */
void sl_time_civil_from_days(int64_t days, int64_t *y, int *m, int *d);
/* 28..31; m 1-12. */
int sl_time_days_in_month(int64_t y, int m);

/*
 * Parses an ISO8601 date-time: YYYY-MM-DD, then optionally 'T' or ' ' and
 * HH:MM[:SS[(.|,)F{1,9}]], then optionally a zone: Z, +HH, +HHMM or +HH:MM
 * (or '-'). The wall-clock time, read as if it were UTC, goes to *local_ms
 * (fractions beyond milliseconds are truncated). Returns 1 when the text has a
 * zone (its offset east of UTC in seconds in *offset_s; UTC time is
 * *local_ms - *offset_s * 1000), 0 when it has none (*offset_s = 0), or
 * SL_EINVAL when s[0..len) is not such a date-time (trailing bytes included).
 */
int sl_time_parse_iso8601(const char *s, size_t len, int64_t *local_ms, int *offset_s);

/* The event's "@timestamp" string (sl_time_parse_iso8601, no zone = UTC) as epoch ms.
 * 0, or SL_ENOENT (absent or not a string) or SL_EINVAL (unparseable). */
int sl_timestamp_get(const struct sl_value *event, int64_t *epoch_ms);
/* Parses one ISO8601 timestamp (no zone = UTC) into epoch ms. 0 or SL_EINVAL. */
int sl_timestamp_parse(const char *s, size_t len, int64_t *epoch_ms);
/*
 * Formats epoch ms (negative too) as "2026-11-27T06:00:00.123Z" into out
 * (>= 25 bytes), NUL-terminated. Returns the length (24), or 0 when the year
 * is outside 0000-9999 or out is too small.
 */
size_t sl_timestamp_format(int64_t epoch_ms, char *out, size_t outlen);

#endif
