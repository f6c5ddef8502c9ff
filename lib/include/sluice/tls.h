/*
 * tls.h - TLS over non-blocking sockets, on OpenSSL 3: contexts built from
 * the documented ssl options (docs/tls.md) (shipper output.ssl = client, aggregator input.ssl =
 * server), and connections whose handshake/read/write mirror recv/send on a
 * non-blocking fd, so an epoll loop drives them like plain sockets.
 *
 * Not for: the event loop itself, timeouts (arm a loop timer around the
 * handshake, as Logstash's ssl_handshake_timeout), or HTTP clients (outputs
 * that use libcurl configure its TLS themselves).
 *
 * Threads: a context may be shared by connections on one thread; reload it
 * from that same thread. A connection belongs to one thread.
 *
 * Writes go through write(2) on the fd: ignore SIGPIPE (sl_loop_signals does).
 */
#ifndef SLUICE_TLS_H
#define SLUICE_TLS_H

#include <sys/types.h>

#include "common.h"
#include "loop.h" /* SL_READ, SL_WRITE */

/* output.ssl.verification_mode, as Filebeat's. The values are the documented order
 * (full, certificate, none), so a config enum index maps directly. */
enum sl_tls_verify {
    SL_TLS_VERIFY_FULL = 0,        /* chain to a trusted CA + the dialled host in the SANs */
    SL_TLS_VERIFY_CERTIFICATE = 1, /* chain only: any name signed by a trusted CA */
    SL_TLS_VERIFY_NONE = 2,        /* anything: encryption without authentication */
    SL_TLS_VERIFY_STRICT = 3,      /* as full, and never fall back to the subject CN */
};

/* input.ssl.client_authentication, as Logstash's beats input (documented order). */
enum sl_tls_client_auth {
    SL_TLS_CLIENT_AUTH_NONE = 0,     /* no certificate asked for */
    SL_TLS_CLIENT_AUTH_OPTIONAL = 1, /* asked for; if sent it must verify */
    SL_TLS_CLIENT_AUTH_REQUIRED = 2, /* must be sent and verify */
};

/*
 * Options for a context. Borrowed during the call only: nothing is kept.
 * Each of certificate_authorities[], certificate and key is a PEM file path,
 * or PEM text itself when it starts with "-----BEGIN" (as Filebeat allows).
 */
struct sl_tls_opts {
    /* Trusted CAs. Empty: a client trusts the system store; a server that
     * authenticates clients needs at least one. */
    const char *const *certificate_authorities;
    size_t n_certificate_authorities;
    /* Own certificate (leaf first, then any intermediates) and its key, which
     * may be PKCS#8 (encrypted or not) or traditional (SEC1/PKCS#1).
     * Required for a server; optional for a client (both or neither). */
    const char *certificate;
    const char *key;
    const char *key_passphrase;                  /* for an encrypted key; NULL = none */
    enum sl_tls_verify verification_mode;        /* client only */
    enum sl_tls_client_auth client_authentication; /* server only */
    /* "TLSv1.2" and/or "TLSv1.3"; empty = both. Older versions are refused. */
    const char *const *supported_protocols;
    size_t n_supported_protocols;
};

struct sl_tls_ctx;
struct sl_tls;

/* "full"|"strict"|"certificate"|"none" -> *out. 0 or SL_EINVAL. */
int sl_tls_verify_parse(const char *s, enum sl_tls_verify *out);
/* "none"|"optional"|"required" -> *out. 0 or SL_EINVAL. */
int sl_tls_client_auth_parse(const char *s, enum sl_tls_client_auth *out);

/*
 * Builds a client or server context: loads and checks every file now, so a
 * bad path, a key that does not match its certificate or an unknown protocol
 * is a configuration error at startup. Returns a context the caller frees with
 * sl_tls_ctx_free(), or NULL with a message in err such as
 * "cannot load certificate /x.pem: error:80000002:system library::No such file or directory".
 */
struct sl_tls_ctx *sl_tls_client_ctx(const struct sl_tls_opts *o, char *err, size_t errlen);
struct sl_tls_ctx *sl_tls_server_ctx(const struct sl_tls_opts *o, char *err, size_t errlen);

/*
 * Re-reads every file of o (same role as ctx) into a new OpenSSL context and
 * swaps it in: connections made afterwards use it, existing ones keep the one
 * they started with (each holds its own reference), so a renewed certificate
 * is picked up on SIGHUP without dropping anyone. On error ctx is unchanged
 * and err says why. 0 or SL_EINVAL.
 */
int sl_tls_ctx_reload(struct sl_tls_ctx *ctx, const struct sl_tls_opts *o, char *err,
                      size_t errlen);

/* NULL is a no-op. Connections made from ctx stay valid: they do not refer to it. */
void sl_tls_ctx_free(struct sl_tls_ctx *ctx);

/*
 * A connection on a connected (or connecting) non-blocking socket. fd stays
 * the caller's: sl_tls_free() does not close it. server_name (clients only,
 * may be NULL) is sent as SNI when it is a host name, and is what
 * verification_mode full/strict checks the certificate against: a DNS SAN
 * for a name, an IP SAN for an address literal. Full/strict without a name is
 * an error, not a silent downgrade. NULL with a message in err on failure.
 */
struct sl_tls *sl_tls_new(struct sl_tls_ctx *ctx, int fd, const char *server_name, char *err,
                          size_t errlen);

/*
 * Advances the handshake. 0 once done; SL_EAGAIN when the socket would block,
 * with sl_tls_want() saying which readiness to wait for; otherwise < 0 and
 * sl_tls_error() says why: SL_EPROTO for a TLS failure (verification: message
 * starts "certificate verification failed: "), SL_ECLOSED when the peer closed
 * or reset, SL_EIO for another socket error. After an error only
 * sl_tls_error() and sl_tls_free() are meaningful.
 *
 * With TLS 1.3 a client finishes its handshake before the server has checked
 * the client's certificate: a rejection then shows up as an error from the
 * client's next sl_tls_read().
 */
int sl_tls_handshake(struct sl_tls *t);

/*
 * As recv(2): > 0 bytes read into buf; 0 when the peer closed the TLS session
 * cleanly (close_notify); SL_EAGAIN (see sl_tls_want()); < 0 as for the
 * handshake (a TCP close without close_notify is SL_ECLOSED). Runs the
 * handshake first if it is not done.
 */
ssize_t sl_tls_read(struct sl_tls *t, void *buf, size_t n);

/*
 * As send(2): > 0 bytes taken, possibly fewer than n (partial writes are on:
 * each TLS record written counts); SL_EAGAIN (see sl_tls_want()); < 0 error.
 * After SL_EAGAIN call again with the same bytes - they may sit at another
 * address (moving buffers are allowed), and more may follow them, but n must
 * not shrink. Never returns 0 for n > 0.
 */
ssize_t sl_tls_write(struct sl_tls *t, const void *buf, size_t n);

/* After SL_EAGAIN: SL_READ or SL_WRITE, the readiness to wait for. Note that a
 * read may want SL_WRITE and a write SL_READ. */
unsigned sl_tls_want(const struct sl_tls *t);

/* True when decrypted bytes wait inside OpenSSL: epoll will not report them,
 * so a reader with a small buffer must read again before it sleeps. */
bool sl_tls_pending(const struct sl_tls *t);

/* Sends close_notify (once; the peer's is not waited for). 0 when sent or
 * nothing to do (handshake unfinished, connection failed), SL_EAGAIN
 * (+ sl_tls_want()), < 0 error. */
int sl_tls_shutdown(struct sl_tls *t);

/* Frees the connection; does not close the fd. NULL is a no-op. */
void sl_tls_free(struct sl_tls *t);

/* The last error, "" if none. Owned by t, valid until the next call on it. */
const char *sl_tls_error(const struct sl_tls *t);

/* The peer certificate's subject as RFC 2253 ("CN=web-1,O=acme"), for logs;
 * NULL when the peer sent none. Owned by t, valid until sl_tls_free(). */
const char *sl_tls_peer_subject(struct sl_tls *t);
/* The first CN of the peer certificate's subject, as UTF-8, into out (cut to
 * len - 1 bytes); false when the peer sent no certificate or it has no CN. */
bool sl_tls_peer_cn(struct sl_tls *t, char *out, size_t len);

/* The negotiated protocol ("TLSv1.3") and cipher, for logs; static strings. */
const char *sl_tls_protocol(const struct sl_tls *t);
const char *sl_tls_cipher(const struct sl_tls *t);

#endif
