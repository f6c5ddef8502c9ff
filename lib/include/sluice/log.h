/*
 * log.h - leveled logging to stderr, as text or as one JSON object per line.
 * Thread-safe: each record is written with a single write(2).
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include "common.h"

enum sl_log_level { SL_LOG_DEBUG, SL_LOG_INFO, SL_LOG_WARN, SL_LOG_ERROR };
enum sl_log_format { SL_LOG_TEXT, SL_LOG_JSON };

void sl_log_init(const char *program, enum sl_log_level level, enum sl_log_format format);
/* "debug"|"info"|"warn"|"error" -> level; -1 when unknown. */
int sl_log_level_parse(const char *s);
bool sl_log_enabled(enum sl_log_level level);
void sl_log_write(enum sl_log_level level, const char *fmt, ...) SL_PRINTF(2, 3);

#define sl_debug(...) do { if (sl_log_enabled(SL_LOG_DEBUG)) sl_log_write(SL_LOG_DEBUG, __VA_ARGS__); } while (0)
#define sl_info(...) sl_log_write(SL_LOG_INFO, __VA_ARGS__)
#define sl_warn(...) sl_log_write(SL_LOG_WARN, __VA_ARGS__)
#define sl_error(...) sl_log_write(SL_LOG_ERROR, __VA_ARGS__)

#endif
