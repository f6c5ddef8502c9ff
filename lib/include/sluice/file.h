/*
 * file.h - reading a whole file that comes from the outside (a pattern file,
 * a PEM file, a template, a regexes file, a small state file) into memory,
 * with a bound on its size: one place that loops on short reads and EINTR and
 * refuses a file larger than its caller allows, before holding all of it.
 */
#ifndef SLUICE_FILE_H
#define SLUICE_FILE_H

#include <stddef.h>

#include "buf.h"

/*
 * Appends the contents of the file at path to out, at most max bytes.
 * Returns 0, or an errno: ENOENT and the other open(2)/read(2) errors,
 * EISDIR for a directory, EFBIG when the file holds more than max bytes
 * (out then holds at most max of them; the caller discards it). A FIFO or a
 * device is read like a file, up to max.
 */
int sl_file_read(const char *path, size_t max, struct sl_buf *out);

#endif
