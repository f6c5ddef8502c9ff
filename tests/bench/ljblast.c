/*
 * ljblast.c - a Lumberjack v2 load generator for the aggregator benchmark
 * (tests/bench/pipeline_bench.py). Figures only.
 *
 * It reads a corpus of lines, builds events shaped like sluice-shipper's
 * (shipper/event.c: @timestamp, @metadata, message, log.file.path, log.offset,
 * input, host, agent, ecs) and encodes them ONCE, before the clock runs, into
 * windows of -w events: a W frame followed by one compressed frame ('Z' zstd,
 * 'C' zlib) holding the J frames, sequence numbers 1..w in every window as
 * Filebeat does. It then opens -c connections (one thread each) and sends the
 * pre-encoded windows round robin until -n events were sent, keeping up to -P
 * windows unacknowledged per connection; a window counts when the ACK for its
 * last sequence number arrives (keepalives, ACK 0, and partial ACKs are
 * skipped). The clock runs from the first byte sent to the last window ACKed.
 *
 *   ljblast -p PORT -f CORPUS [-n EVENTS] [-d DISTINCT] [-w WINDOW] [-P PIPELINED]
 *           [-c CONNS] [-z zstd|zlib|none] [-l LEVEL] [-H HOST]
 *
 * Defaults: -n 1000000, -w 2048 (Filebeat's and the shipper's bulk_max_size),
 * -P 4, -c 1, -z zstd at level 3 (zlib: 6, the shipper's defaults). -d caps the
 * distinct events encoded (the first DISTINCT corpus lines; the windows are
 * then resent in turn), to keep the encoding time and memory small.
 *
 * Prints one line of key=value pairs on stdout:
 *   events= windows= seconds= events_per_s= wire_bytes= json_bytes= encode_s=
 * and diagnostics on stderr. Exit 0 when every window was ACKed.
 *
 * Build (pipeline_bench.py does it):
 *   cc -O2 -std=c11 -D_GNU_SOURCE -pthread -Ilib/include -o build/bench/ljblast \
 *      tests/bench/ljblast.c build/obj/libsluice.a $(pkg-config --libs libzstd zlib) -lm
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sluice/buf.h"
#include "sluice/common.h"
#include "sluice/json.h"
#include "sluice/lumberjack.h"

struct window {
    char *data;
    size_t len;
    uint32_t count;
};

static struct window *windows;
static size_t nwindows;
static uint32_t window_events = 2048;
static int pipelined = 4;
static const char *host = "127.0.0.1";
static const char *port;
static uint64_t total_windows;
static atomic_uint_fast64_t next_window;
static atomic_uint_fast64_t acked_events, acked_windows, wire_bytes;
static atomic_int failed;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "ljblast: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* One event as shipper/event.c writes it (no fields/tags configured). */
static void put_event(struct sl_buf *out, const char *line, size_t len, uint64_t offset,
                      unsigned ms)
{
    static const char PATH[] = "\"/var/log/apache2/access.log\"";
    sl_buf_printf(out, "{\"@timestamp\":\"2026-11-27T06:%02u:%02u.%03uZ\"", ms / 60000 % 60,
                  ms / 1000 % 60, ms % 1000);
    sl_buf_puts(out, ",\"@metadata\":{\"beat\":\"sluice\",\"type\":\"_doc\",\"version\":\""
                     SL_VERSION "\"},\"message\":");
    sl_json_put_str(out, line, len);
    sl_buf_printf(out, ",\"log\":{\"file\":{\"path\":%s},\"offset\":%llu}", PATH,
                  (unsigned long long)offset);
    sl_buf_puts(out, ",\"input\":{\"type\":\"filestream\"},\"host\":{\"name\":\"bench\"},"
                     "\"agent\":{\"type\":\"sluice-shipper\",\"version\":\"" SL_VERSION
                     "\",\"name\":\"bench\"},\"ecs\":{\"version\":\"8.0.0\"}}");
}

/* Reads the corpus and encodes its lines (at most max_events of them) into windows. */
static void encode(const char *path, uint64_t max_events, enum sl_lj_compression kind, int level,
                   uint64_t *json_bytes)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        die(path);
    }
    struct sl_buf frames, ev;
    sl_buf_init(&frames, 0);
    sl_buf_init(&ev, 0);
    size_t cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    uint64_t offset = 0, events = 0;
    uint32_t in_window = 0;
    *json_bytes = 0;
    for (;;) {
        n = events < max_events ? getline(&line, &lcap, f) : -1;
        if (n > 0) {
            size_t len = (size_t)n;
            uint64_t start = offset;
            offset += len;
            while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
                len--;
            }
            sl_buf_reset(&ev);
            put_event(&ev, line, len, start, (unsigned)(events % 3600000));
            sl_lj_put_json(&frames, ++in_window, ev.data, ev.len);
            *json_bytes += ev.len;
            events++;
        }
        if (in_window && (in_window == window_events || n <= 0)) {
            struct sl_buf w;
            sl_buf_init(&w, 0);
            sl_lj_put_window(&w, SL_LJ_V2, in_window);
            if (kind == SL_LJ_NONE) {
                sl_buf_append(&w, frames.data, frames.len);
            } else if (sl_lj_put_compressed(&w, kind, level, frames.data, frames.len) != 0) {
                fprintf(stderr, "ljblast: compression failed\n");
                exit(2);
            }
            if (nwindows == cap) {
                cap = cap ? cap * 2 : 256;
                windows = realloc(windows, cap * sizeof(*windows));
                if (!windows) {
                    die("realloc");
                }
            }
            windows[nwindows++] = (struct window){w.data, w.len, in_window};
            sl_buf_reset(&frames);
            in_window = 0;
        }
        if (n <= 0) {
            break;
        }
    }
    free(line);
    sl_buf_free(&frames);
    sl_buf_free(&ev);
    fclose(f);
    if (!nwindows) {
        fprintf(stderr, "ljblast: %s: no lines\n", path);
        exit(2);
    }
}

static int dial(void)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "ljblast: %s:%s: %s\n", host, port, gai_strerror(rc));
        exit(2);
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        die("connect");
    }
    freeaddrinfo(res);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void *conn_main(void *arg)
{
    int fd = *(int *)arg;
    /* The windows this connection has in flight, oldest first (a ring of indexes). */
    size_t *ring = calloc((size_t)pipelined, sizeof(*ring));
    int head = 0, inflight = 0;
    unsigned char acks[6 * 1024];
    size_t have = 0;
    bool more = true;
    while (more || inflight) {
        while (more && inflight < pipelined) {
            uint64_t i = atomic_fetch_add(&next_window, 1);
            if (i >= total_windows) {
                more = false;
                break;
            }
            const struct window *w = &windows[i % nwindows];
            if (write_all(fd, w->data, w->len) != 0) {
                fprintf(stderr, "ljblast: send: %s\n", strerror(errno));
                atomic_store(&failed, 1);
                goto out;
            }
            atomic_fetch_add(&wire_bytes, w->len);
            ring[(head + inflight) % pipelined] = (size_t)(i % nwindows);
            inflight++;
        }
        if (!inflight) {
            break;
        }
        ssize_t r = recv(fd, acks + have, sizeof(acks) - have, 0);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) {
                continue;
            }
            fprintf(stderr, "ljblast: connection closed with %d windows unacknowledged (%s)\n",
                    inflight, r < 0 ? strerror(errno) : "EOF");
            atomic_store(&failed, 1);
            goto out;
        }
        have += (size_t)r;
        size_t off = 0;
        for (;;) {
            char ver;
            uint32_t seq;
            int used = sl_lj_parse_ack(acks + off, have - off, &ver, &seq);
            if (used == 0) {
                break;
            }
            if (used < 0) {
                fprintf(stderr, "ljblast: not an ACK frame\n");
                atomic_store(&failed, 1);
                goto out;
            }
            off += (size_t)used;
            if (inflight && seq == windows[ring[head]].count) {
                atomic_fetch_add(&acked_events, seq);
                atomic_fetch_add(&acked_windows, 1);
                head = (head + 1) % pipelined;
                inflight--;
            }
        }
        memmove(acks, acks + off, have - off);
        have -= off;
    }
out:
    free(ring);
    close(fd);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: ljblast -p PORT -f CORPUS [-n EVENTS] [-d DISTINCT] [-w WINDOW] "
                    "[-P PIPELINED] [-c CONNS] [-z zstd|zlib|none] [-l LEVEL] [-H HOST]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *corpus = NULL, *comp = "zstd";
    uint64_t events = 1000000, distinct = 0;
    int conns = 1, level = 0, opt;
    while ((opt = getopt(argc, argv, "p:f:n:d:w:P:c:z:l:H:")) != -1) {
        switch (opt) {
        case 'p': port = optarg; break;
        case 'f': corpus = optarg; break;
        case 'n': events = strtoull(optarg, NULL, 10); break;
        case 'd': distinct = strtoull(optarg, NULL, 10); break;
        case 'w': window_events = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'P': pipelined = atoi(optarg); break;
        case 'c': conns = atoi(optarg); break;
        case 'z': comp = optarg; break;
        case 'l': level = atoi(optarg); break;
        case 'H': host = optarg; break;
        default: usage();
        }
    }
    if (!port || !corpus || !events || !window_events || pipelined < 1 || conns < 1) {
        usage();
    }
    enum sl_lj_compression kind = !strcmp(comp, "zstd") ? SL_LJ_ZSTDC
                                  : !strcmp(comp, "zlib") ? SL_LJ_ZLIB
                                  : !strcmp(comp, "none") ? SL_LJ_NONE
                                                          : (usage(), SL_LJ_NONE);
    if (!level) {
        level = kind == SL_LJ_ZLIB ? 6 : 3;  /* the shipper's defaults */
    }

    double t0 = now_s();
    uint64_t json_bytes;
    encode(corpus, distinct && distinct < events ? distinct : events, kind, level, &json_bytes);
    double encode_s = now_s() - t0;
    /* Whole windows only: the total is rounded up to the next window. */
    uint64_t per_pass = 0;
    for (size_t i = 0; i < nwindows; i++) {
        per_pass += windows[i].count;
    }
    total_windows = (events / per_pass) * nwindows;
    for (uint64_t left = events % per_pass, i = 0; left > 0; i++) {
        total_windows++;
        left = left > windows[i].count ? left - windows[i].count : 0;
    }
    fprintf(stderr, "ljblast: %zu distinct windows of up to %u events (%s, %.1f MB JSON), "
                    "encoded in %.2f s; sending %llu windows over %d connection(s), %d in flight "
                    "each\n",
            nwindows, window_events, comp, (double)json_bytes / 1e6, encode_s,
            (unsigned long long)total_windows, conns, pipelined);

    int *fds = calloc((size_t)conns, sizeof(*fds));
    pthread_t *th = calloc((size_t)conns, sizeof(*th));
    for (int i = 0; i < conns; i++) {
        fds[i] = dial();
    }
    double start = now_s();
    for (int i = 0; i < conns; i++) {
        if (pthread_create(&th[i], NULL, conn_main, &fds[i]) != 0) {
            die("pthread_create");
        }
    }
    for (int i = 0; i < conns; i++) {
        pthread_join(th[i], NULL);
    }
    double secs = now_s() - start;
    uint64_t ev = atomic_load(&acked_events);
    printf("events=%llu windows=%llu seconds=%.4f events_per_s=%.0f wire_bytes=%llu "
           "json_bytes_per_event=%.1f encode_s=%.3f ok=%d\n",
           (unsigned long long)ev, (unsigned long long)atomic_load(&acked_windows), secs,
           secs > 0 ? (double)ev / secs : 0.0, (unsigned long long)atomic_load(&wire_bytes),
           (double)json_bytes / (double)per_pass, encode_s, !atomic_load(&failed));
    fflush(stdout);
    for (size_t i = 0; i < nwindows; i++) {
        free(windows[i].data);
    }
    free(windows);
    free(fds);
    free(th);
    return atomic_load(&failed) ? 1 : 0;
}
