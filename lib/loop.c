/*
 * loop.c - the event loop: epoll for fds, a sorted list of monotonic timers
 * (daemons hold a handful, so a list beats a heap in code and in cache),
 * signalfd for signals and an eventfd for cross-thread wake-ups.
 * The before-sleep hook is where callers flush what a pass accumulated.
 */
#include "sluice/loop.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "sluice/log.h"

struct watcher {
    sl_fd_cb cb;
    void *arg;
    unsigned events;
    bool active;
};

struct sl_timer {
    struct sl_loop *loop;
    uint64_t due;
    uint64_t period;
    bool repeat;
    bool linked;
    sl_timer_cb cb;
    void *arg;
    struct sl_timer *next;
};

struct sl_loop {
    int epfd;
    int sigfd;
    int wakefd;
    bool running;
    struct watcher *fds;
    size_t nfds;
    struct sl_timer *timers;     /* sorted by due */
    struct sl_timer *firing;     /* the timer whose callback runs now */
    bool firing_cancelled;
    sl_signal_cb sig_cb;
    void *sig_arg;
    sl_hook_cb sleep_cb;
    void *sleep_arg;
    sl_hook_cb wake_cb;
    void *wake_arg;
};

struct sl_loop *sl_loop_new(void)
{
    struct sl_loop *loop = sl_calloc(1, sizeof(*loop));
    loop->sigfd = -1;
    loop->wakefd = -1;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        sl_error("epoll_create1: %s", strerror(errno));
        free(loop);
        return NULL;
    }
    return loop;
}

void sl_loop_free(struct sl_loop *loop)
{
    if (!loop) {
        return;
    }
    while (loop->timers) {
        struct sl_timer *t = loop->timers;
        loop->timers = t->next;
        free(t);
    }
    if (loop->sigfd >= 0) {
        close(loop->sigfd);
    }
    if (loop->wakefd >= 0) {
        close(loop->wakefd);
    }
    close(loop->epfd);
    free(loop->fds);
    free(loop);
}

static uint32_t to_epoll(unsigned events)
{
    uint32_t e = 0;
    if (events & SL_READ) {
        e |= EPOLLIN;
    }
    if (events & SL_WRITE) {
        e |= EPOLLOUT;
    }
    return e;
}

int sl_loop_add_fd(struct sl_loop *loop, int fd, unsigned events, sl_fd_cb cb, void *arg)
{
    if (fd < 0) {
        return SL_EINVAL;
    }
    if ((size_t)fd >= loop->nfds) {
        size_t n = loop->nfds ? loop->nfds : 64;
        while (n <= (size_t)fd) {
            n *= 2;
        }
        loop->fds = sl_realloc(loop->fds, n * sizeof(*loop->fds));
        memset(loop->fds + loop->nfds, 0, (n - loop->nfds) * sizeof(*loop->fds));
        loop->nfds = n;
    }
    struct epoll_event ev = {.events = to_epoll(events), .data.fd = fd};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        sl_error("epoll_ctl(add, %d): %s", fd, strerror(errno));
        return SL_EIO;
    }
    loop->fds[fd] = (struct watcher){.cb = cb, .arg = arg, .events = events, .active = true};
    return 0;
}

int sl_loop_mod_fd(struct sl_loop *loop, int fd, unsigned events)
{
    if (fd < 0 || (size_t)fd >= loop->nfds || !loop->fds[fd].active) {
        return SL_EINVAL;
    }
    if (loop->fds[fd].events == events) {
        return 0;
    }
    struct epoll_event ev = {.events = to_epoll(events), .data.fd = fd};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) != 0) {
        sl_error("epoll_ctl(mod, %d): %s", fd, strerror(errno));
        return SL_EIO;
    }
    loop->fds[fd].events = events;
    return 0;
}

void sl_loop_del_fd(struct sl_loop *loop, int fd)
{
    if (fd < 0 || (size_t)fd >= loop->nfds || !loop->fds[fd].active) {
        return;
    }
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    loop->fds[fd].active = false;
}

static void timer_link(struct sl_loop *loop, struct sl_timer *t)
{
    struct sl_timer **pp = &loop->timers;
    while (*pp && (*pp)->due <= t->due) {
        pp = &(*pp)->next;
    }
    t->next = *pp;
    *pp = t;
    t->linked = true;
}

static void timer_unlink(struct sl_loop *loop, struct sl_timer *t)
{
    for (struct sl_timer **pp = &loop->timers; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    t->linked = false;
}

struct sl_timer *sl_loop_timer(struct sl_loop *loop, uint64_t ms, bool repeat, sl_timer_cb cb,
                               void *arg)
{
    struct sl_timer *t = sl_calloc(1, sizeof(*t));
    t->loop = loop;
    t->period = ms;
    t->repeat = repeat;
    t->cb = cb;
    t->arg = arg;
    t->due = sl_now_ms() + ms;
    timer_link(loop, t);
    return t;
}

void sl_timer_reset(struct sl_timer *t, uint64_t ms)
{
    if (t->linked) {
        timer_unlink(t->loop, t);
    }
    t->period = ms;
    t->due = sl_now_ms() + ms;
    timer_link(t->loop, t);
}

void sl_timer_cancel(struct sl_timer *t)
{
    if (!t) {
        return;
    }
    struct sl_loop *loop = t->loop;
    if (t->linked) {
        timer_unlink(loop, t);
    }
    if (loop->firing == t) {
        /* Freed by run_timers() once the callback returns. */
        loop->firing_cancelled = true;
        return;
    }
    free(t);
}

static void run_timers(struct sl_loop *loop)
{
    uint64_t now = sl_now_ms();
    while (loop->timers && loop->timers->due <= now && loop->running) {
        struct sl_timer *t = loop->timers;
        timer_unlink(loop, t);
        loop->firing = t;
        loop->firing_cancelled = false;
        if (t->repeat) {
            /* Re-arm before the callback so the callback may reset or cancel it. */
            t->due = now + (t->period ? t->period : 1);
            timer_link(loop, t);
        }
        t->cb(loop, t->arg);
        loop->firing = NULL;
        if (loop->firing_cancelled || (!t->repeat && !t->linked)) {
            if (t->linked) {
                timer_unlink(loop, t);
            }
            free(t);
        }
    }
}

static void on_signal(struct sl_loop *loop, int fd, unsigned events, void *arg)
{
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (loop->sig_cb) {
            loop->sig_cb(loop, (int)si.ssi_signo, loop->sig_arg);
        }
    }
}

int sl_loop_signals(struct sl_loop *loop, sl_signal_cb cb, void *arg)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    /* Threads created later inherit the mask, so only this loop sees them. */
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
        return SL_EIO;
    }
    signal(SIGPIPE, SIG_IGN);
    loop->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (loop->sigfd < 0) {
        sl_error("signalfd: %s", strerror(errno));
        return SL_EIO;
    }
    loop->sig_cb = cb;
    loop->sig_arg = arg;
    return sl_loop_add_fd(loop, loop->sigfd, SL_READ, on_signal, NULL);
}

void sl_loop_before_sleep(struct sl_loop *loop, sl_hook_cb cb, void *arg)
{
    loop->sleep_cb = cb;
    loop->sleep_arg = arg;
}

static void on_wake(struct sl_loop *loop, int fd, unsigned events, void *arg)
{
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof(v));
    SL_UNUSED(r);
    if (loop->wake_cb) {
        loop->wake_cb(loop, loop->wake_arg);
    }
}

void sl_loop_on_wake(struct sl_loop *loop, sl_hook_cb cb, void *arg)
{
    loop->wake_cb = cb;
    loop->wake_arg = arg;
    if (loop->wakefd < 0) {
        loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (loop->wakefd < 0) {
            sl_error("eventfd: %s", strerror(errno));
            abort();
        }
        sl_loop_add_fd(loop, loop->wakefd, SL_READ, on_wake, NULL);
    }
}

void sl_loop_wake(struct sl_loop *loop)
{
    uint64_t one = 1;
    ssize_t w = write(loop->wakefd, &one, sizeof(one));
    SL_UNUSED(w);
}

struct sl_async {
    struct sl_loop *loop;
    int fd;
    sl_hook_cb cb;
    void *arg;
};

static void on_async(struct sl_loop *loop, int fd, unsigned events, void *arg)
{
    struct sl_async *a = arg;
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof(v));
    SL_UNUSED(r);
    a->cb(loop, a->arg);
}

struct sl_async *sl_async_new(struct sl_loop *loop, sl_hook_cb cb, void *arg)
{
    struct sl_async *a = sl_calloc(1, sizeof(*a));
    a->loop = loop;
    a->cb = cb;
    a->arg = arg;
    a->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (a->fd < 0 || sl_loop_add_fd(loop, a->fd, SL_READ, on_async, a) != 0) {
        sl_error("eventfd: %s", strerror(errno));
        abort();
    }
    return a;
}

void sl_async_send(struct sl_async *a)
{
    uint64_t one = 1;
    ssize_t w = write(a->fd, &one, sizeof(one));
    SL_UNUSED(w);
}

void sl_async_free(struct sl_async *a)
{
    if (!a) {
        return;
    }
    sl_loop_del_fd(a->loop, a->fd);
    close(a->fd);
    free(a);
}

static int next_timeout(struct sl_loop *loop)
{
    if (!loop->timers) {
        return -1;
    }
    uint64_t now = sl_now_ms();
    if (loop->timers->due <= now) {
        return 0;
    }
    uint64_t d = loop->timers->due - now;
    return d > 60000 ? 60000 : (int)d;
}

int sl_loop_run(struct sl_loop *loop)
{
    struct epoll_event evs[128];
    loop->running = true;
    while (loop->running) {
        if (loop->sleep_cb) {
            loop->sleep_cb(loop, loop->sleep_arg);
        }
        if (!loop->running) {
            break;
        }
        int n = epoll_wait(loop->epfd, evs, (int)SL_ARRAY_LEN(evs), next_timeout(loop));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            sl_error("epoll_wait: %s", strerror(errno));
            return SL_EIO;
        }
        for (int i = 0; i < n && loop->running; i++) {
            int fd = evs[i].data.fd;
            /* An earlier callback of this pass may have removed this fd. */
            if ((size_t)fd >= loop->nfds || !loop->fds[fd].active) {
                continue;
            }
            unsigned e = 0;
            if (evs[i].events & EPOLLIN) {
                e |= SL_READ;
            }
            if (evs[i].events & EPOLLOUT) {
                e |= SL_WRITE;
            }
            if (evs[i].events & (EPOLLHUP | EPOLLERR)) {
                e |= SL_HUP | (loop->fds[fd].events & (SL_READ | SL_WRITE));
            }
            struct watcher w = loop->fds[fd];
            w.cb(loop, fd, e, w.arg);
        }
        run_timers(loop);
    }
    return 0;
}

void sl_loop_stop(struct sl_loop *loop)
{
    loop->running = false;
}
