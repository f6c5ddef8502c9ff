/*
 * notify.h - systemd readiness notification (sd_notify(3) protocol) without
 * libsystemd. With Type=notify, systemd passes the path of an AF_UNIX datagram
 * socket in $NOTIFY_SOCKET; the service sends newline-separated KEY=VALUE
 * assignments to it:
 *
 *   "READY=1"      start-up finished (listening sockets bound, state loaded)
 *   "RELOADING=1"  a SIGHUP reload has started; send "READY=1" when it is done
 *   "STOPPING=1"   a graceful stop has begun
 *   "STATUS=..."   free-form text shown by `systemctl status`
 *
 * Outside systemd (NOTIFY_SOCKET unset or empty) every call is a no-op, so the
 * daemons call it unconditionally.
 */
#ifndef SLUICE_NOTIFY_H
#define SLUICE_NOTIFY_H

/*
 * Sends state, byte for byte, as one datagram to $NOTIFY_SOCKET. An address
 * starting with '@' names a socket in the abstract namespace (the '@' becomes
 * a NUL byte), one starting with '/' a socket in the file system; any other
 * form is ignored. Failures are silent (a readiness message is advisory) and
 * errno is preserved. Safe from any thread; not async-signal-safe only in
 * that it reads the environment.
 */
void sl_notify(const char *state);

#endif
