/*
 * common.c - checked allocation, clocks, timestamp formatting and the size and
 * duration syntax shared by every config key.
 */
#include "sluice/common.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t n)
{
    fprintf(stderr, "sluice: out of memory allocating %zu bytes\n", n);
    abort();
}

void *sl_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        oom(n);
    }
    return p;
}

void *sl_calloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p) {
        oom(nmemb * size);
    }
    return p;
}

void *sl_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        oom(n);
    }
    return q;
}

char *sl_strdup(const char *s)
{
    return sl_strndup(s, strlen(s));
}

char *sl_strndup(const char *s, size_t n)
{
    char *p = sl_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static uint64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t sl_now_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

/* Tests pin the wall clock so that what depends on "now" (year guessing,
 * date-named files) has one right answer on any day. */
static _Atomic(uint64_t) wall_pinned_ms;
static _Atomic(bool) wall_pinned;

uint64_t sl_wall_ms(void)
{
    if (atomic_load_explicit(&wall_pinned, memory_order_acquire)) {
        return atomic_load_explicit(&wall_pinned_ms, memory_order_relaxed);
    }
    return clock_ms(CLOCK_REALTIME);
}

void sl_wall_pin(uint64_t epoch_ms)
{
    atomic_store_explicit(&wall_pinned_ms, epoch_ms, memory_order_relaxed);
    atomic_store_explicit(&wall_pinned, true, memory_order_release);
}

void sl_wall_unpin(void)
{
    atomic_store_explicit(&wall_pinned, false, memory_order_release);
}

/* Splits "12kb" into 12 and "kb"; rejects signs, blanks and empty numbers. */
static int split_number(const char *s, uint64_t *num, const char **unit)
{
    const char *p = s;
    while (isspace((unsigned char)*p)) {
        p++;
    }
    if (!isdigit((unsigned char)*p)) {
        return SL_EINVAL;
    }
    errno = 0;
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno == ERANGE) {
        return SL_EINVAL;
    }
    while (isspace((unsigned char)*end)) {
        end++;
    }
    *num = v;
    *unit = end;
    return 0;
}

static int scale(uint64_t v, uint64_t mult, uint64_t *out)
{
    if (mult && v > UINT64_MAX / mult) {
        return SL_EINVAL;
    }
    *out = v * mult;
    return 0;
}

int sl_parse_size(const char *s, uint64_t *out)
{
    static const struct { const char *unit; uint64_t mult; } units[] = {
        {"", 1}, {"b", 1}, {"k", 1024}, {"kb", 1024}, {"kib", 1024},
        {"m", 1024 * 1024}, {"mb", 1024 * 1024}, {"mib", 1024 * 1024},
        {"g", 1024ull * 1024 * 1024}, {"gb", 1024ull * 1024 * 1024},
        {"gib", 1024ull * 1024 * 1024},
    };
    uint64_t v;
    const char *unit;
    if (split_number(s, &v, &unit) != 0) {
        return SL_EINVAL;
    }
    for (size_t i = 0; i < SL_ARRAY_LEN(units); i++) {
        if (strcasecmp(unit, units[i].unit) == 0) {
            return scale(v, units[i].mult, out);
        }
    }
    return SL_EINVAL;
}

int sl_parse_duration(const char *s, uint64_t *out_ms)
{
    static const struct { const char *unit; uint64_t mult; } units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
    };
    uint64_t v;
    const char *unit;
    if (split_number(s, &v, &unit) != 0) {
        return SL_EINVAL;
    }
    if (*unit == '\0') {
        /* A bare number is ambiguous except for zero ("disabled"). */
        if (v != 0) {
            return SL_EINVAL;
        }
        *out_ms = 0;
        return 0;
    }
    for (size_t i = 0; i < SL_ARRAY_LEN(units); i++) {
        if (strcmp(unit, units[i].unit) == 0) {
            return scale(v, units[i].mult, out_ms);
        }
    }
    return SL_EINVAL;
}

uint64_t sl_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return 0;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (uint64_t)rl.rlim_cur;
}

int sl_mkdir_p(const char *dir, unsigned mode)
{
    char tmp[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(tmp, dir, n + 1);
    for (char *p = tmp + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, (mode_t)mode) != 0 && errno != EEXIST) {
                return -1;
            }
            if (c == '\0') {
                return 0;
            }
            *p = c;
        }
    }
}

static void wait_writable(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    poll(&pfd, 1, 1000);
}

int sl_write_all(int fd, const void *buf, size_t n)
{
    struct iovec one = {(void *)(uintptr_t)buf, n};
    return sl_writev_all(fd, &one, 1);
}

int sl_writev_all(int fd, struct iovec *iov, size_t n)
{
    while (n > 0) {
        if (iov->iov_len == 0) {
            iov++;
            n--;
            continue;
        }
        ssize_t w = writev(fd, iov, (int)(n < IOV_MAX ? n : IOV_MAX));
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* An fd inherited in non-blocking mode (stdout): wait for room, not fail. */
            wait_writable(fd);
            continue;
        }
        if (w < 0) {
            return -1;
        }
        size_t done = (size_t)w;
        while (n > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {  /* a short write ended inside this one */
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return 0;
}

/* A per-process key: hash tables indexed by bytes from outside (JSON keys,
 * kv pairs) cannot be flooded with keys crafted to collide offline. */
static uint64_t hash_seed(void)
{
    static _Atomic(uint64_t) seed;
    uint64_t s = atomic_load_explicit(&seed, memory_order_relaxed);
    if (s) {
        return s;
    }
    uint64_t fresh = 0;
    if (getrandom(&fresh, sizeof(fresh), GRND_NONBLOCK) != (ssize_t)sizeof(fresh)) {
        fresh = clock_ms(CLOCK_MONOTONIC) * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid() << 32 ^
                (uint64_t)(uintptr_t)&fresh;
    }
    fresh |= 1;  /* never 0: 0 means "not drawn yet" */
    uint64_t expected = 0;
    atomic_compare_exchange_strong(&seed, &expected, fresh);
    return atomic_load_explicit(&seed, memory_order_relaxed);
}

uint64_t sl_hash_bytes(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t seed = hash_seed();
    uint64_t h = 1469598103934665603ull ^ seed;  /* FNV-1a from a keyed basis */
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 1099511628211ull;
    }
    /* Mix the key in again at the end so the high bits, which pick the slot
     * after masking, depend on every byte and on the key. */
    h ^= h >> 29;
    h *= seed | 0x100000001b3ull;
    return h ^ (h >> 32);
}
