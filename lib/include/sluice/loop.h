/*
 * loop.h - a small single-threaded event loop on epoll: fd readiness, monotonic
 * timers, signals through signalfd, and a hook run before each sleep (where
 * batches are flushed). Not thread-safe: one loop per thread; other threads
 * wake it with sl_loop_wake().
 */
#ifndef SLUICE_LOOP_H
#define SLUICE_LOOP_H

#include "common.h"

#define SL_READ 0x1u
#define SL_WRITE 0x2u
#define SL_HUP 0x4u   /* reported only: hang-up or error on the fd */

struct sl_loop;
struct sl_timer;

typedef void (*sl_fd_cb)(struct sl_loop *loop, int fd, unsigned events, void *arg);
typedef void (*sl_timer_cb)(struct sl_loop *loop, void *arg);
typedef void (*sl_signal_cb)(struct sl_loop *loop, int signo, void *arg);
typedef void (*sl_hook_cb)(struct sl_loop *loop, void *arg);

struct sl_loop *sl_loop_new(void);
void sl_loop_free(struct sl_loop *loop);

/* Watches fd for events (SL_READ|SL_WRITE). One watcher per fd. 0 or SL_EIO. */
int sl_loop_add_fd(struct sl_loop *loop, int fd, unsigned events, sl_fd_cb cb, void *arg);
int sl_loop_mod_fd(struct sl_loop *loop, int fd, unsigned events);
/* Safe to call from inside any callback, also for the fd being dispatched. */
void sl_loop_del_fd(struct sl_loop *loop, int fd);

/* A timer firing after ms, and then every ms if repeat. Owned by the loop: a one-shot
 * timer is freed after its callback returns unless the callback re-armed it with
 * sl_timer_reset(), so owners drop their pointer there. */
struct sl_timer *sl_loop_timer(struct sl_loop *loop, uint64_t ms, bool repeat, sl_timer_cb cb,
                               void *arg);
/* Re-arms a timer to fire ms from now. */
void sl_timer_reset(struct sl_timer *t, uint64_t ms);
/* Cancels and frees; NULL is a no-op. Safe from inside the timer's own callback. */
void sl_timer_cancel(struct sl_timer *t);

/* Blocks SIGTERM, SIGINT and SIGHUP, delivers them to cb; ignores SIGPIPE. */
int sl_loop_signals(struct sl_loop *loop, sl_signal_cb cb, void *arg);
/* Runs cb each time before the loop sleeps. */
void sl_loop_before_sleep(struct sl_loop *loop, sl_hook_cb cb, void *arg);
/*
 * Async handles, as libuv's: any thread may call sl_async_send(); the loop
 * then runs cb once (several sends before it runs coalesce into one call).
 * Each handle is an eventfd, so modules (outputs, workers) have their own.
 */
struct sl_async;
struct sl_async *sl_async_new(struct sl_loop *loop, sl_hook_cb cb, void *arg);
void sl_async_send(struct sl_async *a);
/* Loop thread only; NULL is a no-op. */
void sl_async_free(struct sl_async *a);

/* Thread-safe: makes a sleeping loop run its callbacks (wake_cb) promptly. */
void sl_loop_on_wake(struct sl_loop *loop, sl_hook_cb cb, void *arg);
void sl_loop_wake(struct sl_loop *loop);

/* Runs until sl_loop_stop(). Returns 0, or SL_EIO when epoll fails. */
int sl_loop_run(struct sl_loop *loop);
void sl_loop_stop(struct sl_loop *loop);

#endif
