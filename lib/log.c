/*
 * log.c - leveled logging to stderr. Each record is formatted into a local
 * buffer and written with one write(2), so lines from several threads never
 * interleave. JSON records are escaped with the same writer as events.
 */
#include "sluice/log.h"
#include "sluice/time.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "sluice/buf.h"
#include "sluice/json.h"

static const char *program = "sluice";
static enum sl_log_level min_level = SL_LOG_INFO;
static enum sl_log_format log_format = SL_LOG_TEXT;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void sl_log_init(const char *prog, enum sl_log_level level, enum sl_log_format format)
{
    program = prog;
    min_level = level;
    log_format = format;
}

int sl_log_level_parse(const char *s)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(level_names); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            return (int)i;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        return SL_LOG_WARN;
    }
    return -1;
}

bool sl_log_enabled(enum sl_log_level level)
{
    return level >= min_level;
}

void sl_log_write(enum sl_log_level level, const char *fmt, ...)
{
    if (level < min_level) {
        return;
    }
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    size_t mlen = SL_MIN((size_t)n, sizeof(msg) - 1);

    char stamp[32];
    sl_timestamp_format((int64_t)sl_wall_ms(), stamp, sizeof(stamp));
    struct sl_buf b;
    sl_buf_init(&b, 16384);
    if (log_format == SL_LOG_JSON) {
        sl_buf_printf(&b, "{\"@timestamp\":\"%s\",\"log.level\":\"%s\",\"process\":", stamp,
                      level_names[level]);
        sl_json_put_str(&b, program, strlen(program));
        sl_buf_puts(&b, ",\"message\":");
        sl_json_put_str(&b, msg, mlen);
        sl_buf_puts(&b, "}\n");
    } else {
        sl_buf_printf(&b, "%s %-5s %s: ", stamp, level_names[level], program);
        sl_buf_append(&b, msg, mlen);
        sl_buf_putc(&b, '\n');
    }
    ssize_t w = write(STDERR_FILENO, b.data, b.len);
    SL_UNUSED(w);
    sl_buf_free(&b);
}
