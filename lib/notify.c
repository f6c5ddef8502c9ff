/*
 * notify.c - the sd_notify protocol in forty lines: one sendto(2) of the
 * state string to the AF_UNIX datagram socket named by $NOTIFY_SOCKET.
 * No libsystemd: the protocol is stable and documented in sd_notify(3).
 */
#include "sluice/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void sl_notify(const char *state)
{
    const char *addr = getenv("NOTIFY_SOCKET");
    if (!state || !addr || !addr[0] || (addr[0] != '/' && addr[0] != '@')) {
        return;
    }
    struct sockaddr_un sun;
    size_t len = strlen(addr);
    if (len > sizeof(sun.sun_path)) {
        return;
    }
    if (addr[0] == '/' && len == sizeof(sun.sun_path)) {
        return; /* a path needs room for its terminating NUL */
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, addr, len);
    socklen_t alen;
    if (addr[0] == '@') {
        sun.sun_path[0] = '\0'; /* abstract namespace: the name is exactly len bytes */
        alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }

    int saved = errno;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        ssize_t n;
        do {
            n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun, alen);
        } while (n < 0 && errno == EINTR);
        close(fd);
    }
    errno = saved;
}
