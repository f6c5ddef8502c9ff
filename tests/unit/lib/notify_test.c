/*
 * notify_test.c - sl_notify() sends the exact state bytes to $NOTIFY_SOCKET
 * (file-system and abstract '@' addresses) and does nothing, quietly, when
 * the variable is unset, empty, malformed or names no socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sluice/notify.h"
#include "test.h"

static char sock_path[108];

/* Binds a datagram socket to addr ('@' = abstract) and returns it, non-blocking. */
static int bind_dgram(const char *addr)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    size_t len = strlen(addr);
    memcpy(sun.sun_path, addr, len);
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (addr[0] == '@') {
        sun.sun_path[0] = '\0';
    } else {
        alen++;
    }
    if (bind(fd, (struct sockaddr *)&sun, alen) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads one datagram; returns its length, or -1 when none is waiting. */
static ssize_t recv_one(int fd, char *buf, size_t cap)
{
    ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
    return n;
}

TEST(test_path_socket_gets_exact_bytes)
{
    snprintf(sock_path, sizeof(sock_path), "/tmp/sluice-notify-test-%ld.sock", (long)getpid());
    unlink(sock_path);
    int fd = bind_dgram(sock_path);
    CHECK(fd >= 0);
    if (fd < 0) {
        return;
    }
    setenv("NOTIFY_SOCKET", sock_path, 1);
    char buf[256];

    sl_notify("READY=1");
    ssize_t n = recv_one(fd, buf, sizeof(buf));
    CHECK_MEM(buf, n < 0 ? 0 : (size_t)n, "READY=1");

    sl_notify("RELOADING=1");
    n = recv_one(fd, buf, sizeof(buf));
    CHECK_MEM(buf, n < 0 ? 0 : (size_t)n, "RELOADING=1");

    sl_notify("STOPPING=1");
    n = recv_one(fd, buf, sizeof(buf));
    CHECK_MEM(buf, n < 0 ? 0 : (size_t)n, "STOPPING=1");

    /* several assignments in one datagram, newline-separated, no terminator added */
    sl_notify("READY=1\nSTATUS=listening on 0.0.0.0:5044");
    n = recv_one(fd, buf, sizeof(buf));
    CHECK_MEM(buf, n < 0 ? 0 : (size_t)n, "READY=1\nSTATUS=listening on 0.0.0.0:5044");

    /* exactly one datagram per call */
    CHECK(recv_one(fd, buf, sizeof(buf)) < 0);
    close(fd);
    unlink(sock_path);
    unsetenv("NOTIFY_SOCKET");
}

TEST(test_abstract_socket)
{
    char name[64];
    snprintf(name, sizeof(name), "@sluice-notify-test-%ld", (long)getpid());
    int fd = bind_dgram(name);
    CHECK(fd >= 0);
    if (fd < 0) {
        return;
    }
    setenv("NOTIFY_SOCKET", name, 1);
    char buf[256];
    sl_notify("READY=1");
    ssize_t n = recv_one(fd, buf, sizeof(buf));
    CHECK_MEM(buf, n < 0 ? 0 : (size_t)n, "READY=1");

    /* the abstract name is exact: "@name" must not reach "name\0" or a longer name */
    char other[80];
    snprintf(other, sizeof(other), "%sx", name);
    setenv("NOTIFY_SOCKET", other, 1);
    sl_notify("READY=1");
    CHECK(recv_one(fd, buf, sizeof(buf)) < 0);
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

TEST(test_noop_without_socket)
{
    /* unset, empty, relative, missing and over-long addresses: no crash, errno kept */
    unsetenv("NOTIFY_SOCKET");
    errno = EDOM;
    sl_notify("READY=1");
    CHECK_INT(errno, EDOM);

    setenv("NOTIFY_SOCKET", "", 1);
    sl_notify("READY=1");
    CHECK_INT(errno, EDOM);

    setenv("NOTIFY_SOCKET", "relative/path.sock", 1);
    sl_notify("READY=1");
    CHECK_INT(errno, EDOM);

    setenv("NOTIFY_SOCKET", "/nonexistent/sluice/notify.sock", 1);
    sl_notify("READY=1");
    CHECK_INT(errno, EDOM);

    char longpath[300];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    setenv("NOTIFY_SOCKET", longpath, 1);
    sl_notify("READY=1");
    CHECK_INT(errno, EDOM);

    setenv("NOTIFY_SOCKET", "/tmp/x.sock", 1);
    sl_notify(NULL);
    CHECK_INT(errno, EDOM);
    unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
    RUN(test_path_socket_gets_exact_bytes);
    RUN(test_abstract_socket);
    RUN(test_noop_without_socket);
    return TEST_SUMMARY();
}
