/*
 * ljsink.c - the minimal Lumberjack sink for shipper benchmarks: it ACKs every
 * window as soon as its bytes have arrived, without decompressing or parsing
 * events, so the figures measure the shipper and not a receiver.
 * Usage: ljsink PORT   (prints "listening PORT"; one client at a time)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int read_full(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r <= 0) {
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int skip(int fd, uint32_t n)
{
    static char junk[1 << 20];
    while (n > 0) {
        uint32_t k = n < sizeof(junk) ? n : (uint32_t)sizeof(junk);
        if (read_full(fd, junk, k) != 0) {
            return -1;
        }
        n -= k;
    }
    return 0;
}

static void serve(int fd)
{
    unsigned char h[10];
    for (;;) {
        if (read_full(fd, h, 6) != 0 || h[1] != 'W') {
            return;
        }
        uint32_t count = be32(h + 2), seen = 0;
        while (seen < count) {
            if (read_full(fd, h, 2) != 0) {
                return;
            }
            if (h[1] == 'C' || h[1] == 'Z' || h[1] == 'S') {
                if (read_full(fd, h + 2, 4) != 0 || skip(fd, be32(h + 2)) != 0) {
                    return;
                }
                seen = count;  /* one compressed frame carries the window */
            } else if (h[1] == 'J') {
                if (read_full(fd, h + 2, 8) != 0 || skip(fd, be32(h + 6)) != 0) {
                    return;
                }
                seen++;
            } else {
                return;
            }
        }
        unsigned char ack[6] = {'2', 'A'};
        ack[2] = (unsigned char)(count >> 24);
        ack[3] = (unsigned char)(count >> 16);
        ack[4] = (unsigned char)(count >> 8);
        ack[5] = (unsigned char)count;
        if (write(fd, ack, 6) != 6) {
            return;
        }
    }
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 8) != 0 ||
        getsockname(ls, (struct sockaddr *)&a, &len) != 0) {
        perror("ljsink");
        return 1;
    }
    printf("listening %d\n", ntohs(a.sin_port));
    fflush(stdout);
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        /* ACKs are 6 bytes: without this, Nagle holds one back for the peer's
         * delayed ACK (40 ms) and the benchmark measures that instead. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        serve(fd);
        close(fd);
    }
}
