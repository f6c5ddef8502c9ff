/*
 * pqueue.c - the persisted queue's pages, records, checkpoint and recovery
 * (pqueue.h has the format).
 *
 * Why it survives kill -9 at any instant:
 *  - a record is never rewritten: appends go past the end of the last page,
 *    and a reader only goes as far as the last pq_sync, so a half-written
 *    record is never read and is cut at the next start (its CRC or length
 *    does not check out, and only the last page is ever being written);
 *  - a new page gets its header before any record, and the directory is
 *    fsynced then: a page whose header is torn held nothing;
 *  - the checkpoint is rewritten by rename, so it is the old one or the new
 *    one. It is not fsynced: after kill -9 the kernel still has it, and after
 *    a power cut an older one only means events delivered twice. Pages are
 *    deleted only once a checkpoint past them exists, and a checkpoint that
 *    points before the first page means "from the first page".
 */
#include "pqueue.h"

#include "sluice/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define PAGE_MAGIC "SLPQPAGE"
#define CKPT_MAGIC "SLPQCKPT"
#define FORMAT_VERSION 1u
#define CKPT_BYTES 48u
#define SCAN_CHUNK (1u << 20)
#define READ_MIN (64u * 1024u)
#define READ_AHEAD (4u << 20)
#define READ_MAX (256u * 1024u)  /* per pread: a batch's buffer stays small enough for the heap */

struct page {
    uint64_t num;
    uint64_t first_seq;
    uint64_t n;          /* events in it */
    uint64_t size;       /* file size, header included */
    uint64_t first_ms;   /* its first record's time (0: none yet) */
    bool sealed;         /* no longer appended to */
};

struct pq_store {
    char *dir;
    int dirfd;
    int lockfd;
    uint64_t page_capacity;

    pthread_mutex_t mu;  /* the page list and the counters below */
    struct page *pages;
    size_t npages, cap;
    uint64_t head_seq;
    uint64_t synced_seq, synced_size;  /* durable: the write page up to synced_size */
    uint64_t live_bytes, live_events;
    uint64_t ack_seq, ack_page, ack_off, ack_ms;
    uint64_t corrupt_pages;

    /* writer thread */
    int wfd;
    struct sl_buf wbuf;

    /* reader thread */
    int rfd;
    uint64_t rfd_page;
    uint64_t r_page, r_off, r_seq;
    uint64_t ra_page, ra_until;  /* read-ahead asked for up to there */
};

/* ---- checksums ---- */

/*
 * Records are checked with CRC-32C (Castagnoli, as ext4 and iSCSI use): x86's
 * SSE4.2 computes it 8 bytes an instruction, where zlib's CRC-32 cost a fifth
 * of the queue's CPU (measured: docs/benchmarks.md). Elsewhere, a table.
 */
static uint32_t crc32c_table[256];

static void crc32c_init_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
        crc32c_table[i] = c;
    }
}

static uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    crc = ~crc;
    while (n--) {
        crc = crc32c_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    }
    return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *buf,
                                                             size_t n)
{
    const unsigned char *p = buf;
    uint64_t c = ~crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--) {
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    }
    return ~c32;
}
#endif

static uint32_t (*crc32c_fn)(uint32_t, const void *, size_t);
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_pick(void)
{
    crc32c_init_table();
    crc32c_fn = crc32c_sw;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) {
        crc32c_fn = crc32c_hw;
    }
#endif
}

static uint32_t crc32c(uint32_t crc, const void *buf, size_t n)
{
    pthread_once(&crc32c_once, crc32c_pick);
    return crc32c_fn(crc, buf, n);
}

/* ---- small helpers ---- */

static uint32_t crc_record(uint32_t len, uint64_t ms, const char *p)
{
    char h[12];
    memcpy(h, &len, 4);
    memcpy(h + 4, &ms, 8);
    return crc32c(crc32c(0, h, sizeof(h)), p, len);
}

static int pread_full(int fd, void *buf, size_t n, uint64_t off, size_t *got)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return SL_EIO;
        }
        if (r == 0) {
            break;
        }
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

static int pwrite_full(int fd, const void *buf, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pwrite(fd, (const char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return SL_EIO;
        }
        done += (size_t)r;
    }
    return 0;
}

static void page_name(char *out, size_t outlen, uint64_t num, const char *suffix)
{
    snprintf(out, outlen, "page.%" PRIu64 "%s", num, suffix);
}

static void put_header(char *h, uint64_t num, uint64_t first_seq)
{
    uint32_t version = FORMAT_VERSION;
    memcpy(h, PAGE_MAGIC, 8);
    memcpy(h + 8, &num, 8);
    memcpy(h + 16, &first_seq, 8);
    memcpy(h + 24, &version, 4);
    uint32_t crc = crc32c(0, h, 28);
    memcpy(h + 28, &crc, 4);
}

static bool get_header(const char *h, uint64_t *num, uint64_t *first_seq)
{
    uint32_t version, crc;
    memcpy(&version, h + 24, 4);
    memcpy(&crc, h + 28, 4);
    if (memcmp(h, PAGE_MAGIC, 8) != 0 || version != FORMAT_VERSION ||
        crc != crc32c(0, h, 28)) {
        return false;
    }
    memcpy(num, h + 8, 8);
    memcpy(first_seq, h + 16, 8);
    return true;
}

/* ---- scanning a page (recovery and inspection) ---- */

/* A window onto a file read in large chunks: records are parsed from memory. */
struct rd {
    int fd;
    char *buf;
    size_t cap;
    uint64_t boff;
    size_t blen;
};

static const char *rd_get(struct rd *r, uint64_t off, size_t len)
{
    if (off >= r->boff && off + len <= r->boff + r->blen) {
        return r->buf + (off - r->boff);
    }
    if (len > r->cap) {
        r->buf = sl_realloc(r->buf, len);
        r->cap = len;
    }
    size_t got = 0;
    if (pread_full(r->fd, r->buf, r->cap, off, &got) != 0) {
        r->blen = 0;
        return NULL;
    }
    r->boff = off;
    r->blen = got;
    return got >= len ? r->buf : NULL;
}

struct scan {
    bool header_ok;
    uint64_t num, first_seq;
    uint64_t n;            /* valid records */
    uint64_t end;          /* end of the last valid record */
    uint64_t size;
    bool bad;              /* a record after end is torn or corrupt */
    uint64_t first_ms;
    uint64_t ack_seq;      /* in: where the ack position is */
    bool ack_found;        /* out: ack_seq is in this page (or at its end) */
    uint64_t ack_off, ack_ms;
};

/* Walks every record of the page open on fd, checking each CRC. */
static int scan_page(int fd, struct scan *sc)
{
    struct stat st;
    char h[PQ_PAGE_HEADER];
    size_t got = 0;
    if (fstat(fd, &st) != 0) {
        return SL_EIO;
    }
    sc->size = (uint64_t)st.st_size;
    if (pread_full(fd, h, sizeof(h), 0, &got) != 0) {
        return SL_EIO;
    }
    sc->header_ok = got == sizeof(h) && get_header(h, &sc->num, &sc->first_seq);
    if (!sc->header_ok) {
        return 0;
    }
    struct rd r = {.fd = fd, .buf = sl_malloc(SCAN_CHUNK), .cap = SCAN_CHUNK};
    uint64_t off = PQ_PAGE_HEADER;
    while (off < sc->size) {
        if (sc->ack_seq == sc->first_seq + sc->n) {
            sc->ack_found = true;
            sc->ack_off = off;
        }
        const char *rh = sc->size - off >= PQ_RECORD_HEADER ? rd_get(&r, off, PQ_RECORD_HEADER)
                                                            : NULL;
        uint32_t len, crc;
        uint64_t ms;
        if (!rh) {
            sc->bad = true;
            break;
        }
        memcpy(&len, rh, 4);
        memcpy(&crc, rh + 4, 4);
        memcpy(&ms, rh + 8, 8);
        if (len == 0 || len > PQ_RECORD_MAX || off + PQ_RECORD_HEADER + len > sc->size) {
            sc->bad = true;
            break;
        }
        const char *p = rd_get(&r, off + PQ_RECORD_HEADER, len);
        if (!p || crc_record(len, ms, p) != crc) {
            sc->bad = true;
            break;
        }
        if (sc->n == 0) {
            sc->first_ms = ms;
        }
        if (sc->ack_found && sc->ack_off == off) {
            sc->ack_ms = ms;
        }
        sc->n++;
        off += PQ_RECORD_HEADER + len;
    }
    sc->end = off < sc->size ? off : sc->size;
    if (!sc->bad) {
        sc->end = off;
    }
    if (sc->ack_seq == sc->first_seq + sc->n && !sc->ack_found) {
        sc->ack_found = true;
        sc->ack_off = sc->end;
    }
    free(r.buf);
    return 0;
}

/* ---- the directory ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Page numbers in dir, ascending; *max_num also counts pages moved aside. */
static int list_pages(const char *dir, uint64_t **out, size_t *n, uint64_t *max_num)
{
    DIR *d = opendir(dir);
    if (!d) {
        return errno == ENOENT ? SL_ENOENT : SL_EIO;
    }
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    *max_num = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        if (strncmp(e->d_name, "page.", 5) != 0 || e->d_name[5] < '0' || e->d_name[5] > '9') {
            continue;
        }
        uint64_t num = strtoull(e->d_name + 5, &end, 10);
        *max_num = SL_MAX(*max_num, num);
        if (*end != '\0') {
            continue;  /* page.N.corrupt */
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *out = sl_realloc(*out, cap * sizeof(**out));
        }
        (*out)[(*n)++] = num;
    }
    closedir(d);
    if (*n) {
        qsort(*out, *n, sizeof(**out), cmp_u64);
    }
    return 0;
}

struct ckpt {
    bool valid;
    uint64_t ack_seq, ack_page, ack_off;
};

static void read_checkpoint(int dirfd, struct ckpt *c)
{
    char b[CKPT_BYTES];
    size_t got = 0;
    memset(c, 0, sizeof(*c));
    int fd = openat(dirfd, "checkpoint", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    int rc = pread_full(fd, b, sizeof(b), 0, &got);
    close(fd);
    uint32_t version, crc;
    memcpy(&version, b + 8, 4);
    memcpy(&crc, b + 40, 4);
    if (rc != 0 || got != sizeof(b) || memcmp(b, CKPT_MAGIC, 8) != 0 ||
        version != FORMAT_VERSION ||
        crc != crc32c(0, b, 40)) {
        return;  /* none, or torn: start from the first page (duplicates, no loss) */
    }
    memcpy(&c->ack_seq, b + 16, 8);
    memcpy(&c->ack_page, b + 24, 8);
    memcpy(&c->ack_off, b + 32, 8);
    c->valid = true;
}

static int write_checkpoint(struct pq_store *s, uint64_t seq, uint64_t page, uint64_t off)
{
    char b[CKPT_BYTES] = {0};
    uint32_t version = FORMAT_VERSION;
    memcpy(b, CKPT_MAGIC, 8);
    memcpy(b + 8, &version, 4);
    memcpy(b + 16, &seq, 8);
    memcpy(b + 24, &page, 8);
    memcpy(b + 32, &off, 8);
    uint32_t crc = crc32c(0, b, 40);
    memcpy(b + 40, &crc, 4);
    int fd = openat(s->dirfd, "checkpoint.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        return SL_EIO;
    }
    int rc = pwrite_full(fd, b, sizeof(b), 0);
    if (close(fd) != 0) {
        rc = SL_EIO;
    }
    if (rc == 0 && renameat(s->dirfd, "checkpoint.tmp", s->dirfd, "checkpoint") != 0) {
        rc = SL_EIO;
    }
    return rc;
}

static struct page *page_push(struct pq_store *s)
{
    if (s->npages == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->pages = sl_realloc(s->pages, s->cap * sizeof(*s->pages));
    }
    struct page *p = &s->pages[s->npages++];
    memset(p, 0, sizeof(*p));
    return p;
}

static struct page *page_find(struct pq_store *s, uint64_t num)
{
    for (size_t i = 0; i < s->npages; i++) {
        if (s->pages[i].num == num) {
            return &s->pages[i];
        }
    }
    return NULL;
}

static void page_remove(struct pq_store *s, struct page *p)
{
    size_t i = (size_t)(p - s->pages);
    memmove(p, p + 1, (s->npages - i - 1) * sizeof(*p));
    s->npages--;
}

/* Moves page num aside as page.N.corrupt; it is kept for a person to look at. */
static void move_aside(struct pq_store *s, uint64_t num)
{
    char from[64], to[80];
    page_name(from, sizeof(from), num, "");
    page_name(to, sizeof(to), num, ".corrupt");
    if (renameat(s->dirfd, from, s->dirfd, to) != 0) {
        sl_error("queue: cannot move %s/%s aside: %s", s->dir, from, strerror(errno));
        (void)unlinkat(s->dirfd, from, 0);
    }
    s->corrupt_pages++;
}

/* live_bytes/live_events from the ack position on; under mu. */
static void recount(struct pq_store *s)
{
    uint64_t bytes = 0, events = 0;
    for (size_t i = 0; i < s->npages; i++) {
        struct page *p = &s->pages[i];
        if (p->num < s->ack_page) {
            continue;
        }
        if (p->num == s->ack_page) {
            uint64_t off = SL_MAX(s->ack_off, (uint64_t)PQ_PAGE_HEADER);
            bytes += p->size > off ? p->size - off : 0;
            uint64_t done = s->ack_seq > p->first_seq ? s->ack_seq - p->first_seq : 0;
            events += p->n > done ? p->n - done : 0;
        } else {
            bytes += p->size - PQ_PAGE_HEADER;
            events += p->n;
        }
    }
    s->live_bytes = bytes;
    s->live_events = events;
}

/* Creates page.num (header written, file and directory synced) as the write page. */
static int new_page(struct pq_store *s, uint64_t num, uint64_t first_seq)
{
    char name[64], h[PQ_PAGE_HEADER];
    page_name(name, sizeof(name), num, "");
    int fd = openat(s->dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        return SL_EIO;
    }
    put_header(h, num, first_seq);
    if (pwrite_full(fd, h, sizeof(h), 0) != 0 || fdatasync(fd) != 0 || fsync(s->dirfd) != 0) {
        int e = errno;
        close(fd);
        (void)unlinkat(s->dirfd, name, 0);
        errno = e;
        return SL_EIO;
    }
    pthread_mutex_lock(&s->mu);
    if (s->npages > 0) {
        s->pages[s->npages - 1].sealed = true;
    }
    struct page *p = page_push(s);
    p->num = num;
    p->first_seq = first_seq;
    p->size = PQ_PAGE_HEADER;
    s->synced_size = PQ_PAGE_HEADER;
    pthread_mutex_unlock(&s->mu);
    if (s->wfd >= 0) {
        close(s->wfd);
    }
    s->wfd = fd;
    return 0;
}

/* Recovery of one existing page; keeps it in s->pages when it holds unacked events. */
static int recover_page(struct pq_store *s, uint64_t num, bool last, const struct ckpt *ck,
                        struct pq_recovery *rec, uint64_t *seq_floor)
{
    char name[64];
    page_name(name, sizeof(name), num, "");
    int fd = openat(s->dirfd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return SL_EIO;
    }
    struct scan sc = {.ack_seq = ck->ack_seq};
    int rc = scan_page(fd, &sc);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    if (!sc.header_ok || sc.num != num || sc.first_seq < *seq_floor) {
        close(fd);
        if (last && sc.size <= PQ_PAGE_HEADER) {
            (void)unlinkat(s->dirfd, name, 0);  /* died while creating it: it held nothing */
        } else {
            move_aside(s, num);
            rec->corrupt_pages++;
        }
        return 0;
    }
    if (sc.bad && last) {
        /* A write cut short: nothing in it was synced, so nothing in it was ACKed. */
        rec->torn_bytes += sc.size - sc.end;
        if (ftruncate(fd, (off_t)sc.end) != 0 || fdatasync(fd) != 0) {
            close(fd);
            return SL_EIO;
        }
        sc.size = sc.end;
    } else if (sc.bad) {
        close(fd);
        move_aside(s, num);
        rec->corrupt_pages++;
        rec->corrupt_events += sc.n;  /* at least these; the rest cannot be counted */
        *seq_floor = SL_MAX(*seq_floor, sc.first_seq + sc.n);
        return 0;
    }
    close(fd);
    *seq_floor = SL_MAX(*seq_floor, sc.first_seq + sc.n);
    if (sc.first_seq + sc.n <= ck->ack_seq || sc.n == 0) {
        (void)unlinkat(s->dirfd, name, 0);  /* every event in it was delivered */
        return 0;
    }
    struct page *p = page_push(s);
    p->num = num;
    p->first_seq = sc.first_seq;
    p->n = sc.n;
    p->size = sc.size;
    p->first_ms = sc.first_ms;
    p->sealed = true;
    if (sc.ack_found) {
        s->ack_page = num;
        s->ack_off = sc.ack_off;
        s->ack_ms = sc.ack_ms;
    }
    return 0;
}

static void fail(char *err, size_t errlen, const char *what, const char *dir)
{
    snprintf(err, errlen, "queue.path %s: %s: %s", dir, what, strerror(errno));
}

static int lock_dir(struct pq_store *s, char *err, size_t errlen)
{
    s->lockfd = openat(s->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (s->lockfd < 0) {
        fail(err, errlen, "cannot create the lock file", s->dir);
        return SL_EIO;
    }
    if (flock(s->lockfd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            snprintf(err, errlen, "queue.path %s: in use by another process", s->dir);
        } else {
            fail(err, errlen, "cannot lock", s->dir);
        }
        return SL_EIO;
    }
    return 0;
}

static int recover(struct pq_store *s, struct pq_recovery *rec, char *err, size_t errlen)
{
    struct ckpt ck;
    uint64_t *nums = NULL, max_num = 0, seq_floor = 0;
    size_t n = 0;
    (void)unlinkat(s->dirfd, "checkpoint.tmp", 0);
    read_checkpoint(s->dirfd, &ck);
    if (list_pages(s->dir, &nums, &n, &max_num) != 0) {
        fail(err, errlen, "cannot list", s->dir);
        return SL_EIO;
    }
    s->ack_seq = ck.ack_seq;
    for (size_t i = 0; i < n; i++) {
        if (recover_page(s, nums[i], i + 1 == n, &ck, rec, &seq_floor) != 0) {
            fail(err, errlen, "cannot recover a page", s->dir);
            free(nums);
            return SL_EIO;
        }
    }
    free(nums);
    s->head_seq = SL_MAX(seq_floor, ck.ack_seq);
    if (s->npages > 0 && s->ack_seq < s->pages[0].first_seq) {
        /* Pages before the first kept one are gone (delivered, or moved aside). */
        s->ack_seq = s->pages[0].first_seq;
        s->ack_page = s->pages[0].num;
        s->ack_off = PQ_PAGE_HEADER;
        s->ack_ms = s->pages[0].first_ms;
    } else if (s->npages > 0 && s->ack_page == 0) {
        /* The ack position lies in a page moved aside: go on with the next one. */
        s->ack_page = s->pages[0].num;
        s->ack_off = PQ_PAGE_HEADER;
        s->ack_seq = s->pages[0].first_seq;
        s->ack_ms = s->pages[0].first_ms;
    }
    rec->ack_seq = ck.ack_seq;
    if (new_page(s, max_num + 1, s->head_seq) != 0) {
        fail(err, errlen, "cannot create a page", s->dir);
        return SL_EIO;
    }
    if (s->npages == 1) {
        s->ack_page = s->pages[0].num;
        s->ack_off = PQ_PAGE_HEADER;
        s->ack_seq = s->head_seq;
    }
    s->synced_seq = s->head_seq;
    recount(s);
    s->r_page = s->ack_page;
    s->r_off = s->ack_off;
    s->r_seq = s->ack_seq;
    rec->pages = s->npages;
    rec->events = s->live_events;
    rec->bytes = s->live_bytes;
    rec->head_seq = s->head_seq;
    rec->oldest_ms = s->live_events ? s->ack_ms : 0;
    return 0;
}

struct pq_store *pq_open(const char *dir, uint64_t page_capacity, struct pq_recovery *rec,
                         char *err, size_t errlen)
{
    struct pq_recovery dummy;
    rec = rec ? rec : &dummy;
    memset(rec, 0, sizeof(*rec));
    if (sl_mkdir_p(dir, 0750) != 0) {
        fail(err, errlen, "cannot create the directory", dir);
        return NULL;
    }
    struct pq_store *s = sl_calloc(1, sizeof(*s));
    s->dir = sl_strdup(dir);
    s->page_capacity = page_capacity;
    s->wfd = s->rfd = s->lockfd = -1;
    pthread_mutex_init(&s->mu, NULL);
    sl_buf_init(&s->wbuf, 0);
    s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        fail(err, errlen, "cannot open", dir);
        goto fail;
    }
    if (lock_dir(s, err, errlen) != 0 || recover(s, rec, err, errlen) != 0) {
        goto fail;
    }
    rec->corrupt_pages = s->corrupt_pages;
    return s;
fail:
    pq_close(s);
    return NULL;
}

void pq_close(struct pq_store *s)
{
    if (!s) {
        return;
    }
    if (s->wfd >= 0) {
        (void)fdatasync(s->wfd);
        close(s->wfd);
    }
    if (s->rfd >= 0) {
        close(s->rfd);
    }
    if (s->lockfd >= 0) {
        close(s->lockfd);  /* releases the flock */
    }
    if (s->dirfd >= 0) {
        close(s->dirfd);
    }
    sl_buf_free(&s->wbuf);
    pthread_mutex_destroy(&s->mu);
    free(s->pages);
    free(s->dir);
    free(s);
}

/* ---- writer ---- */

uint64_t pq_record_bytes(const size_t *lens, size_t n)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += PQ_RECORD_HEADER + lens[i];
    }
    return total;
}

/* Closes the write page and starts the next one; the closed page is synced first. */
static int roll(struct pq_store *s)
{
    pthread_mutex_lock(&s->mu);
    struct page *w = &s->pages[s->npages - 1];
    uint64_t num = w->num, next_seq = w->first_seq + w->n;
    pthread_mutex_unlock(&s->mu);
    if (fdatasync(s->wfd) != 0) {
        return SL_EIO;
    }
    return new_page(s, num + 1, next_seq);
}

#define IOV_BATCH 512u  /* iovecs per pwritev: 256 records (under IOV_MAX, 1024) */

/* pwritev until all of iov[0..n) is written (short writes resume where they stopped). */
static int pwritev_full(int fd, struct iovec *iov, int n, uint64_t off)
{
    while (n > 0) {
        ssize_t r = pwritev(fd, iov, n, (off_t)off);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return SL_EIO;
        }
        off += (uint64_t)r;
        while (n > 0 && (size_t)r >= iov->iov_len) {
            r -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + r;
            iov->iov_len -= (size_t)r;
        }
    }
    return 0;
}

/* The texts go to the kernel from where they are (pwritev): no copy of our own. */
int pq_append(struct pq_store *s, const char *const *texts, const size_t *lens, size_t n,
              uint64_t wall_ms)
{
    uint64_t total = pq_record_bytes(lens, n);
    pthread_mutex_lock(&s->mu);
    struct page *w = &s->pages[s->npages - 1];
    bool full = w->n > 0 && w->size + total > s->page_capacity;
    pthread_mutex_unlock(&s->mu);
    if (full && roll(s) != 0) {
        return SL_EIO;
    }
    pthread_mutex_lock(&s->mu);
    w = &s->pages[s->npages - 1];
    uint64_t start = w->size, off = start;
    pthread_mutex_unlock(&s->mu);
    sl_buf_reset(&s->wbuf);
    sl_buf_reserve(&s->wbuf, (IOV_BATCH / 2) * PQ_RECORD_HEADER);
    struct iovec iov[IOV_BATCH];
    int niov = 0;
    uint64_t batch_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] == 0 || lens[i] > PQ_RECORD_MAX) {
            errno = EINVAL;
            goto undo;
        }
        uint32_t len = (uint32_t)lens[i];
        uint32_t crc = crc_record(len, wall_ms, texts[i]);
        char *h = s->wbuf.data + (size_t)(niov / 2) * PQ_RECORD_HEADER;
        memcpy(h, &len, 4);
        memcpy(h + 4, &crc, 4);
        memcpy(h + 8, &wall_ms, 8);
        iov[niov++] = (struct iovec){h, PQ_RECORD_HEADER};
        iov[niov++] = (struct iovec){(void *)texts[i], len};
        batch_bytes += PQ_RECORD_HEADER + len;
        if (niov == (int)IOV_BATCH || i + 1 == n) {
            if (pwritev_full(s->wfd, iov, niov, off) != 0) {
                goto undo;
            }
            off += batch_bytes;
            batch_bytes = 0;
            niov = 0;
        }
    }
    pthread_mutex_lock(&s->mu);
    w = &s->pages[s->npages - 1];
    if (w->n == 0) {
        w->first_ms = wall_ms;
    }
    w->n += n;
    w->size = off;
    s->head_seq += n;
    s->live_bytes += total;
    s->live_events += n;
    pthread_mutex_unlock(&s->mu);
    return 0;
undo: {
        int e = errno;
        /* Cut what went in: a later append must not follow half a window. */
        if (ftruncate(s->wfd, (off_t)start) != 0) {
            e = errno;
        }
        errno = e;
        return SL_EIO;
    }
}

int pq_sync(struct pq_store *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t seq = s->head_seq, size = s->pages[s->npages - 1].size;
    pthread_mutex_unlock(&s->mu);
    if (fdatasync(s->wfd) != 0) {
        return SL_EIO;
    }
    pthread_mutex_lock(&s->mu);
    s->synced_seq = seq;
    s->synced_size = size;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

uint64_t pq_live_bytes(struct pq_store *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t v = s->live_bytes;
    pthread_mutex_unlock(&s->mu);
    return v;
}

uint64_t pq_live_events(struct pq_store *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t v = s->live_events;
    pthread_mutex_unlock(&s->mu);
    return v;
}

uint64_t pq_corrupt_pages(struct pq_store *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t v = s->corrupt_pages;
    pthread_mutex_unlock(&s->mu);
    return v;
}

uint64_t pq_oldest_ms(struct pq_store *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t v = s->live_events ? s->ack_ms : 0;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* ---- reader ---- */

void pq_batch_init(struct pq_batch *b)
{
    memset(b, 0, sizeof(*b));
    sl_buf_init(&b->buf, 0);
}

void pq_batch_free(struct pq_batch *b)
{
    sl_buf_free(&b->buf);
    free(b->texts);
    memset(b, 0, sizeof(*b));
}

static void batch_add(struct pq_batch *b, size_t off, size_t len, uint64_t seq, uint64_t ms)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 256;
        b->texts = sl_realloc(b->texts, b->cap * sizeof(*b->texts));
    }
    /* An offset for now: buf may still move; pq_read makes it a pointer at the end. */
    b->texts[b->n++] = (struct pq_text){(const char *)(uintptr_t)off, len, seq, ms};
}

/* Where the reader is, as of now: the page's readable end and whether a later page exists. */
static bool reader_page(struct pq_store *s, uint64_t *limit, bool *sealed, uint64_t *next_num,
                        uint64_t *next_seq)
{
    pthread_mutex_lock(&s->mu);
    struct page *p = page_find(s, s->r_page);
    bool ok = p != NULL;
    if (ok) {
        *sealed = p->sealed;
        *limit = p->sealed ? p->size : s->synced_size;
        size_t i = (size_t)(p - s->pages);
        *next_num = i + 1 < s->npages ? s->pages[i + 1].num : 0;
        *next_seq = i + 1 < s->npages ? s->pages[i + 1].first_seq : 0;
    } else if (s->npages > 0) {
        /* Our page was moved aside under us: go on with the first one after it. */
        for (size_t i = 0; i < s->npages; i++) {
            if (s->pages[i].num > s->r_page) {
                *next_num = s->pages[i].num;
                *next_seq = s->pages[i].first_seq;
                break;
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static void reader_next_page(struct pq_store *s, uint64_t num, uint64_t first_seq)
{
    s->r_page = num;
    s->r_off = PQ_PAGE_HEADER;
    s->r_seq = first_seq;
}

/* A record that does not check out in durable data: that page goes aside. */
static void reader_corrupt(struct pq_store *s, bool sealed, uint64_t limit)
{
    if (!sealed) {
        /* The page being written cannot move: skip what is bad in it. */
        sl_error("queue: page %" PRIu64 " of %s has a corrupt record at offset %" PRIu64
                 "; skipping to its end", s->r_page, s->dir, s->r_off);
        pthread_mutex_lock(&s->mu);
        s->r_off = limit;
        s->r_seq = s->synced_seq;
        s->corrupt_pages++;
        pthread_mutex_unlock(&s->mu);
        return;
    }
    sl_error("queue: page %" PRIu64 " of %s has a corrupt record at offset %" PRIu64
             "; moved aside as page.%" PRIu64 ".corrupt, going on with the next page",
             s->r_page, s->dir, s->r_off, s->r_page);
    pthread_mutex_lock(&s->mu);
    struct page *p = page_find(s, s->r_page);
    if (p) {
        page_remove(s, p);
    }
    move_aside(s, s->r_page);
    recount(s);
    pthread_mutex_unlock(&s->mu);
    if (s->rfd >= 0) {
        close(s->rfd);
        s->rfd = -1;
    }
}

/* Parses records from data[0..len) (file offset base) into b; returns bytes consumed. */
static size_t parse_records(struct pq_store *s, struct pq_batch *b, size_t boff, size_t len,
                            size_t max_events, bool *corrupt, size_t *need)
{
    const char *data = b->buf.data + boff;
    size_t used = 0;
    *need = 0;
    while (b->n < max_events && len - used >= PQ_RECORD_HEADER) {
        uint32_t rlen, crc;
        uint64_t ms;
        memcpy(&rlen, data + used, 4);
        memcpy(&crc, data + used + 4, 4);
        memcpy(&ms, data + used + 8, 8);
        if (rlen == 0 || rlen > PQ_RECORD_MAX) {
            *corrupt = true;
            break;
        }
        if (len - used - PQ_RECORD_HEADER < rlen) {
            *need = PQ_RECORD_HEADER + rlen;
            break;
        }
        const char *p = data + used + PQ_RECORD_HEADER;
        if (crc_record(rlen, ms, p) != crc) {
            *corrupt = true;
            break;
        }
        batch_add(b, boff + used + PQ_RECORD_HEADER, rlen, s->r_seq++, ms);
        used += PQ_RECORD_HEADER + rlen;
    }
    if (*need == 0 && !*corrupt && used < len && b->n < max_events) {
        *need = PQ_RECORD_HEADER;
    }
    return used;
}

size_t pq_read(struct pq_store *s, struct pq_batch *b, size_t max_events, size_t max_bytes)
{
    sl_buf_reset(&b->buf);
    b->n = 0;
    size_t want_min = READ_MIN;
    while (b->n < max_events && b->buf.len < max_bytes) {
        uint64_t limit = 0, next_num = 0, next_seq = 0;
        bool sealed = false;
        if (!reader_page(s, &limit, &sealed, &next_num, &next_seq)) {
            if (!next_num) {
                break;
            }
            reader_next_page(s, next_num, next_seq);
            continue;
        }
        if (s->r_off >= limit) {
            if (!sealed || !next_num) {
                break;
            }
            reader_next_page(s, next_num, next_seq);
            continue;
        }
        if (s->rfd < 0 || s->rfd_page != s->r_page) {
            char name[64];
            if (s->rfd >= 0) {
                close(s->rfd);
            }
            page_name(name, sizeof(name), s->r_page, "");
            s->rfd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
            s->rfd_page = s->r_page;
            if (s->rfd < 0) {
                sl_error("queue: cannot open %s/%s: %s", s->dir, name, strerror(errno));
                break;
            }
        }
        size_t room = max_bytes > b->buf.len ? max_bytes - b->buf.len : 0;
        size_t want = (size_t)SL_MIN((uint64_t)SL_MAX(SL_MIN(room, (size_t)READ_MAX), want_min),
                                     limit - s->r_off);
        size_t boff = b->buf.len, got = 0;
        sl_buf_reserve(&b->buf, want);
        if (pread_full(s->rfd, b->buf.data + boff, want, s->r_off, &got) != 0) {
            sl_error("queue: reading %s page %" PRIu64 ": %s", s->dir, s->r_page,
                    strerror(errno));
            break;
        }
        b->buf.len += got;
        /* The reader runs on the I/O thread: ask the kernel to fetch what comes next
         * now, so that draining a backlog larger than the page cache reads memory. */
        uint64_t end = s->r_off + got;
        if (s->ra_page != s->r_page || s->ra_until < end + READ_AHEAD / 2) {
            s->ra_until = s->ra_page == s->r_page ? SL_MAX(s->ra_until, end) : end;
            s->ra_page = s->r_page;
            (void)posix_fadvise(s->rfd, (off_t)s->ra_until, READ_AHEAD, POSIX_FADV_WILLNEED);
            s->ra_until += READ_AHEAD;
        }
        bool corrupt = false;
        size_t need = 0;
        size_t used = parse_records(s, b, boff, got, max_events, &corrupt, &need);
        b->buf.len = boff + used;
        s->r_off += used;
        if (corrupt || (need && s->r_off + need > limit) || (used == 0 && got < want)) {
            reader_corrupt(s, sealed, limit);
            continue;
        }
        if (need && used == 0) {
            want_min = need;  /* one record larger than a read: take it whole */
            continue;
        }
        want_min = READ_MIN;
        if (need) {
            continue;
        }
    }
    for (size_t i = 0; i < b->n; i++) {
        b->texts[i].p = b->buf.data + (uintptr_t)b->texts[i].p;
    }
    b->end_seq = s->r_seq;
    b->end_page = s->r_page;
    b->end_off = s->r_off;
    return b->n;
}

int pq_ack(struct pq_store *s, uint64_t end_seq, uint64_t end_page, uint64_t end_off,
           uint64_t last_ms)
{
    uint64_t gone[64];
    size_t ngone = 0;
    pthread_mutex_lock(&s->mu);
    s->ack_seq = end_seq;
    s->ack_page = end_page;
    s->ack_off = end_off;
    s->ack_ms = last_ms;
    /* Sealed pages wholly before the ack position are delivered. */
    while (s->npages > 1 && ngone < SL_ARRAY_LEN(gone)) {
        struct page *p = &s->pages[0];
        bool before = p->num < end_page || (p->num == end_page && end_off >= p->size);
        if (!p->sealed || !before) {
            break;
        }
        gone[ngone++] = p->num;
        page_remove(s, p);
    }
    recount(s);
    pthread_mutex_unlock(&s->mu);
    int rc = write_checkpoint(s, end_seq, end_page, end_off);
    for (size_t i = 0; i < ngone; i++) {
        char name[64];
        page_name(name, sizeof(name), gone[i], "");
        if (unlinkat(s->dirfd, name, 0) != 0 && errno != ENOENT) {
            rc = SL_EIO;
        }
    }
    return rc;
}

/* ---- inspection ---- */

static void inspect_page(int dirfd, uint64_t num, bool last, const struct ckpt *ck, FILE *out,
                         struct pq_recovery *rec, bool *first)
{
    char name[64];
    page_name(name, sizeof(name), num, "");
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    struct scan sc = {.ack_seq = ck->ack_seq};
    if (fd < 0 || scan_page(fd, &sc) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    close(fd);
    const char *state = "ok";
    uint64_t unacked = 0;
    if (!sc.header_ok) {
        state = last && sc.size <= PQ_PAGE_HEADER ? "empty" : "corrupt_header";
        rec->corrupt_pages += sc.size > PQ_PAGE_HEADER || !last;
    } else if (sc.bad && last) {
        state = "torn_tail";
        rec->torn_bytes += sc.size - sc.end;
    } else if (sc.bad) {
        state = "corrupt";
        rec->corrupt_pages++;
        rec->corrupt_events += sc.n;
    }
    if (sc.header_ok && !(sc.bad && !last)) {
        uint64_t done = ck->ack_seq > sc.first_seq ? ck->ack_seq - sc.first_seq : 0;
        unacked = sc.n > done ? sc.n - done : 0;
        rec->events += unacked;
        if (unacked) {
            uint64_t from = sc.ack_found && done ? sc.ack_off : PQ_PAGE_HEADER;
            rec->bytes += sc.end > from ? sc.end - from : 0;
            if (!rec->oldest_ms) {
                rec->oldest_ms = done && sc.ack_found ? sc.ack_ms : sc.first_ms;
            }
        }
        rec->head_seq = SL_MAX(rec->head_seq, sc.first_seq + sc.n);
        rec->pages++;
    }
    fprintf(out, "%s\n    {\"page\": %" PRIu64 ", \"state\": \"%s\", \"first_seq\": %" PRIu64
            ", \"events\": %" PRIu64 ", \"unacked_events\": %" PRIu64 ", \"size\": %" PRIu64
            ", \"valid_bytes\": %" PRIu64 "}", *first ? "" : ",", num, state, sc.first_seq, sc.n,
            unacked, sc.size, sc.end);
    *first = false;
}

int pq_inspect(const char *dir, FILE *out, struct pq_recovery *rec)
{
    struct pq_recovery dummy;
    rec = rec ? rec : &dummy;
    memset(rec, 0, sizeof(*rec));
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        return errno == ENOENT ? SL_ENOENT : SL_EIO;
    }
    struct ckpt ck;
    read_checkpoint(dirfd, &ck);
    uint64_t *nums = NULL, max_num = 0;
    size_t n = 0;
    if (list_pages(dir, &nums, &n, &max_num) != 0) {
        close(dirfd);
        return SL_EIO;
    }
    bool locked = false;
    int lfd = openat(dirfd, "lock", O_RDONLY | O_CLOEXEC);
    if (lfd >= 0) {
        locked = flock(lfd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
        close(lfd);  /* a shared lock taken for the test goes with the fd */
    }
    rec->ack_seq = ck.ack_seq;
    fprintf(out, "{\n  \"path\": \"%s\",\n  \"in_use\": %s,\n  \"checkpoint\": %s,\n"
            "  \"pages\": [", dir, locked ? "true" : "false", ck.valid ? "true" : "false");
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        inspect_page(dirfd, nums[i], i + 1 == n, &ck, out, rec, &first);
    }
    free(nums);
    close(dirfd);
    rec->head_seq = SL_MAX(rec->head_seq, ck.ack_seq);
    fprintf(out, "\n  ],\n  \"ack_seq\": %" PRIu64 ",\n  \"head_seq\": %" PRIu64
            ",\n  \"events\": %" PRIu64 ",\n  \"bytes\": %" PRIu64 ",\n  \"oldest_event_ms\": %"
            PRIu64 ",\n  \"torn_bytes\": %" PRIu64 ",\n  \"corrupt_pages\": %" PRIu64 "\n}\n",
            rec->ack_seq, rec->head_seq, rec->events, rec->bytes, rec->oldest_ms, rec->torn_bytes,
            rec->corrupt_pages);
    return 0;
}
