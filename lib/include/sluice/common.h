/*
 * common.h - what every sluice module needs: error codes, checked allocation,
 * clocks and the version string. Nothing here knows about logs or networks.
 */
#ifndef SLUICE_COMMON_H
#define SLUICE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_VERSION "0.1.0"

/* Functions return 0 (or a count) on success and one of these on failure. */
enum {
    SL_OK = 0,
    SL_EINVAL = -1,   /* malformed input */
    SL_ELIMIT = -2,   /* a hard size limit would be exceeded */
    SL_EIO = -3,      /* a system call failed; errno tells which */
    SL_EPROTO = -4,   /* a peer broke the protocol */
    SL_EAGAIN = -5,   /* not enough data yet; call again with more */
    SL_ECLOSED = -6,  /* the peer or resource is gone */
    SL_ENOENT = -7,   /* no such thing */
    SL_E2BIG = -8,    /* well-formed as far as read, but over a memory budget */
};

#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SL_MAX(a, b) ((a) > (b) ? (a) : (b))
#define SL_UNUSED(x) ((void)(x))
#define SL_PRINTF(f, a) __attribute__((format(printf, f, a)))

/*
 * Allocation failure is not recoverable in a daemon that bounds its memory by
 * configuration: these abort with a message instead of returning NULL.
 */
void *sl_malloc(size_t n);
void *sl_calloc(size_t nmemb, size_t size);
void *sl_realloc(void *p, size_t n);
char *sl_strdup(const char *s);
char *sl_strndup(const char *s, size_t n);

/* Milliseconds from CLOCK_MONOTONIC (for timeouts) and CLOCK_REALTIME (for stamps). */
uint64_t sl_now_ms(void);
uint64_t sl_wall_ms(void);
/* Tests only: sl_wall_ms() returns epoch_ms until sl_wall_unpin(). */
void sl_wall_pin(uint64_t epoch_ms);
void sl_wall_unpin(void);


/* Writes all n bytes to fd, through short writes, EINTR and (waiting) EAGAIN.
 * 0, or -1 with errno set by the failing write(2). */
int sl_write_all(int fd, const void *buf, size_t n);
/* The same for iov[0..n) in order, any n (IOV_MAX at a time): the caller's
 * iov is consumed (bases and lengths advanced). 0, or -1 with errno set. */
struct iovec;
int sl_writev_all(int fd, struct iovec *iov, size_t n);

/* Hash of n bytes for in-memory tables, keyed per process (random at first
 * use): the same bytes hash alike within a process, never predictably across. */
uint64_t sl_hash_bytes(const void *p, size_t n);

/* Parses "512kb", "5mb", "1gb", "100" (bytes) into *out. Returns 0 or SL_EINVAL. */
int sl_parse_size(const char *s, uint64_t *out);
/* Parses "500ms", "10s", "5m", "1h", "0" into milliseconds. Returns 0 or SL_EINVAL. */
int sl_parse_duration(const char *s, uint64_t *out_ms);

/* mkdir -p: creates dir and its missing parents with mode. 0, or -1 with errno
 * (ENAMETOOLONG past PATH_MAX). */
int sl_mkdir_p(const char *dir, unsigned mode);

/* Raises the soft RLIMIT_NOFILE to the hard limit (a shipper may hold thousands
 * of files, an aggregator thousands of connections). Returns the new soft limit. */
uint64_t sl_raise_nofile(void);

#endif
