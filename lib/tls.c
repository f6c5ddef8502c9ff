/*
 * tls.c - TLS for non-blocking sockets on OpenSSL 3 (see tls.h).
 *
 * Everything OpenSSL-specific stays in this file: callers see SL_* codes,
 * SL_READ/SL_WRITE wants and plain strings. A context wraps one SSL_CTX;
 * a reload builds a fresh SSL_CTX and swaps the pointer, relying on OpenSSL's
 * reference counting (SSL_new takes a reference) to keep the old one alive
 * for as long as connections made from it exist.
 */
#include "sluice/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "sluice/loop.h"

struct sl_tls_ctx {
    SSL_CTX *ssl;                 /* the one new connections use; replaced by reload */
    bool server;
    enum sl_tls_verify verify;    /* client: how sl_tls_new() sets up the host check */
};

struct sl_tls {
    SSL *ssl;
    bool server;
    int dead;                     /* 0, or the error code every later call returns */
    bool shut;                    /* our close_notify is out */
    unsigned want;                /* SL_READ / SL_WRITE after SL_EAGAIN */
    char *subject;                /* cached sl_tls_peer_subject() */
    char err[512];
};

/* --- error text --------------------------------------------------------- */

/*
 * Appends OpenSSL's queued errors to buf as "; "-separated strings, emptying
 * the queue. The queue is per thread and shared by every connection on it, so
 * it must be left empty for the next caller's SSL_get_error() to be accurate.
 */
static void append_ssl_errors(char *buf, size_t len)
{
    size_t used = strlen(buf);
    unsigned long e;
    bool first = true;
    while ((e = ERR_get_error()) != 0) {
        char one[256];
        ERR_error_string_n(e, one, sizeof(one));
        if (used + 1 < len) {
            int w = snprintf(buf + used, len - used, "%s%s", first ? ": " : "; ", one);
            used = w > 0 ? SL_MIN(len - 1, used + (size_t)w) : used;
        }
        first = false;
    }
}

/* Formats err as the message, then ": " and OpenSSL's reasons if it has any. */
SL_PRINTF(3, 4)
static void ssl_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) {
        ERR_clear_error();
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    append_ssl_errors(err, errlen);
}

/* --- loading PEM -------------------------------------------------------- */

static bool is_inline_pem(const char *src)
{
    return strncmp(src, "-----BEGIN", 10) == 0;
}

/* How a source is named in messages: its path, never inline key material. */
static const char *pem_name(const char *src)
{
    return is_inline_pem(src) ? "(inline PEM)" : src;
}

static BIO *pem_open(const char *src)
{
    return is_inline_pem(src) ? BIO_new_mem_buf(src, -1) : BIO_new_file(src, "r");
}

/*
 * Reading PEM objects in a loop ends with "no start line" at end of input;
 * that one is expected and dropped, anything else (a corrupt block) is kept
 * for the caller to report. True when the loop ended cleanly.
 */
static bool pem_clean_eof(void)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0 || (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
        ERR_clear_error();
        return true;
    }
    return false;
}

/* Never prompts on a terminal (OpenSSL's default): no passphrase = failure. */
static int passphrase_cb(char *buf, int size, int rwflag, void *u)
{
    const char *pass = u;
    if (!pass || size <= 0) {
        return -1;
    }
    size_t n = strlen(pass);
    if (n > (size_t)size) {
        return -1;
    }
    memcpy(buf, pass, n);
    return (int)n;
}

/*
 * Adds every certificate of the CA sources to the context's trust store and,
 * for a server, to the list of CA names it sends when asking for a client
 * certificate (so clients holding several pick the right one).
 */
static int load_cas(SSL_CTX *c, const struct sl_tls_opts *o, bool server, char *err,
                    size_t errlen)
{
    int rc = SL_EINVAL;
    X509_STORE *store = SSL_CTX_get_cert_store(c);
    STACK_OF(X509_NAME) *names = server ? sk_X509_NAME_new_null() : NULL;
    BIO *b = NULL;
    if (server && !names) {
        ssl_fail(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < o->n_certificate_authorities; i++) {
        const char *src = o->certificate_authorities[i];
        if (!src || !*src) {
            snprintf(err, errlen, "certificate_authorities[%zu] is empty", i);
            goto out;
        }
        b = pem_open(src);
        if (!b) {
            ssl_fail(err, errlen, "cannot load certificate authorities %s", pem_name(src));
            goto out;
        }
        int n = 0;
        X509 *x;
        while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
            int ok = X509_STORE_add_cert(store, x);
            if (ok && names) {
                X509_NAME *nm = X509_NAME_dup(X509_get_subject_name(x));
                ok = nm && sk_X509_NAME_push(names, nm) > 0;
                if (!ok) {
                    X509_NAME_free(nm);
                }
            }
            X509_free(x);
            if (!ok) {
                ssl_fail(err, errlen, "cannot load certificate authorities %s", pem_name(src));
                goto out;
            }
            n++;
        }
        if (!pem_clean_eof() || n == 0) {
            ssl_fail(err, errlen, "cannot load certificate authorities %s%s", pem_name(src),
                     n == 0 ? ": no certificate found" : "");
            goto out;
        }
        BIO_free(b);
        b = NULL;
    }
    if (names) {
        SSL_CTX_set_client_CA_list(c, names); /* takes ownership */
        names = NULL;
    }
    rc = 0;
out:
    BIO_free(b);
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    return rc;
}

/* The certificate (leaf, then intermediates sent along) and its private key. */
static int load_identity(SSL_CTX *c, const struct sl_tls_opts *o, char *err, size_t errlen)
{
    int rc = SL_EINVAL;
    BIO *b = NULL;
    X509 *x = NULL;
    EVP_PKEY *k = NULL;

    b = pem_open(o->certificate);
    if (!b || !(x = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL)) ||
        SSL_CTX_use_certificate(c, x) != 1) {
        ssl_fail(err, errlen, "cannot load certificate %s", pem_name(o->certificate));
        goto out;
    }
    X509_free(x);
    x = NULL;
    SSL_CTX_clear_chain_certs(c);
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(c, x) != 1) { /* takes x on success only */
            ssl_fail(err, errlen, "cannot load certificate %s", pem_name(o->certificate));
            goto out;
        }
    }
    if (!pem_clean_eof()) {
        ssl_fail(err, errlen, "cannot load certificate %s", pem_name(o->certificate));
        goto out;
    }
    BIO_free(b);
    b = NULL;

    /* PEM_read_bio_PrivateKey decodes PKCS#8 (plain or encrypted) and the
     * traditional SEC1/PKCS#1 forms alike. */
    b = pem_open(o->key);
    if (!b || !(k = PEM_read_bio_PrivateKey(b, NULL, passphrase_cb, (void *)o->key_passphrase))) {
        ssl_fail(err, errlen, "cannot load key %s", pem_name(o->key));
        goto out;
    }
    /* SSL_CTX_use_PrivateKey already refuses a key of another certificate
     * (X509_R_KEY_VALUES_MISMATCH); check_private_key covers the rest. */
    if (SSL_CTX_use_PrivateKey(c, k) != 1 || SSL_CTX_check_private_key(c) != 1) {
        ssl_fail(err, errlen, "key %s does not match certificate %s", pem_name(o->key),
                 pem_name(o->certificate));
        goto out;
    }
    rc = 0;
out:
    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(b);
    return rc;
}

static int set_protocols(SSL_CTX *c, const struct sl_tls_opts *o, char *err, size_t errlen)
{
    int lo = TLS1_2_VERSION, hi = TLS1_3_VERSION;
    if (o->n_supported_protocols > 0) {
        lo = INT_MAX;
        hi = 0;
    }
    for (size_t i = 0; i < o->n_supported_protocols; i++) {
        const char *p = o->supported_protocols[i];
        int v;
        if (p && strcmp(p, "TLSv1.2") == 0) {
            v = TLS1_2_VERSION;
        } else if (p && strcmp(p, "TLSv1.3") == 0) {
            v = TLS1_3_VERSION;
        } else {
            snprintf(err, errlen, "unsupported protocol '%s' (supported: TLSv1.2, TLSv1.3)",
                     p ? p : "");
            return SL_EINVAL;
        }
        lo = SL_MIN(lo, v);
        hi = SL_MAX(hi, v);
    }
    if (SSL_CTX_set_min_proto_version(c, lo) != 1 || SSL_CTX_set_max_proto_version(c, hi) != 1) {
        ssl_fail(err, errlen, "cannot set the protocol versions");
        return SL_EINVAL;
    }
    return 0;
}

/* A complete, checked SSL_CTX for the role, or NULL with err set. */
static SSL_CTX *build(const struct sl_tls_opts *o, bool server, char *err, size_t errlen)
{
    bool has_cert = o->certificate && *o->certificate;
    bool has_key = o->key && *o->key;
    ERR_clear_error();
    SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!c) {
        ssl_fail(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    /*
     * Partial writes let the caller's output buffer drain a record at a time
     * like send(); a moving buffer lets it compact or grow that buffer
     * between a retried write. Released buffers keep ~34 kB per idle
     * connection (a read and a write record buffer) out of memory on an
     * aggregator with thousands of mostly idle shippers.
     */
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
    /* Renegotiation is a TLS 1.2 DoS lever and nobody needs it (Filebeat's
     * default is "never"). */
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
    if (set_protocols(c, o, err, errlen) != 0) {
        goto fail;
    }

    if ((unsigned)o->verification_mode > SL_TLS_VERIFY_STRICT ||
        (unsigned)o->client_authentication > SL_TLS_CLIENT_AUTH_REQUIRED) {
        snprintf(err, errlen, "invalid verification_mode or client_authentication");
        goto fail;
    }
    if (has_cert != has_key) {
        snprintf(err, errlen, "certificate and key must be set together");
        goto fail;
    }
    if (server && !has_cert) {
        snprintf(err, errlen, "a TLS server needs a certificate and a key");
        goto fail;
    }
    if (has_cert && load_identity(c, o, err, errlen) != 0) {
        goto fail;
    }
    if (load_cas(c, o, server, err, errlen) != 0) {
        goto fail;
    }

    if (server) {
        int mode = SSL_VERIFY_NONE;
        if (o->client_authentication != SL_TLS_CLIENT_AUTH_NONE) {
            if (o->n_certificate_authorities == 0) {
                snprintf(err, errlen, "client_authentication %s needs certificate_authorities",
                         o->client_authentication == SL_TLS_CLIENT_AUTH_REQUIRED ? "required"
                                                                                 : "optional");
                goto fail;
            }
            mode = SSL_VERIFY_PEER;
            if (o->client_authentication == SL_TLS_CLIENT_AUTH_REQUIRED) {
                mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
            }
        }
        SSL_CTX_set_verify(c, mode, NULL);
        /*
         * Shippers hold one long-lived connection and do not resume sessions,
         * so tickets and the session cache would cost bytes and memory for
         * nothing - and a resumed session would skip the client certificate
         * check under a reloaded CA list.
         */
        SSL_CTX_set_num_tickets(c, 0);
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    } else {
        if (o->n_certificate_authorities == 0 &&
            o->verification_mode != SL_TLS_VERIFY_NONE &&
            SSL_CTX_set_default_verify_paths(c) != 1) {
            ssl_fail(err, errlen, "cannot load the system trust store");
            goto fail;
        }
        SSL_CTX_set_verify(c, o->verification_mode == SL_TLS_VERIFY_NONE ? SSL_VERIFY_NONE
                                                                         : SSL_VERIFY_PEER,
                           NULL);
    }
    ERR_clear_error();
    return c;
fail:
    SSL_CTX_free(c);
    ERR_clear_error();
    return NULL;
}

/* --- contexts ----------------------------------------------------------- */

int sl_tls_verify_parse(const char *s, enum sl_tls_verify *out)
{
    static const char *const names[] = {"full", "strict", "certificate", "none"};
    static const enum sl_tls_verify vals[] = {SL_TLS_VERIFY_FULL, SL_TLS_VERIFY_STRICT,
                                              SL_TLS_VERIFY_CERTIFICATE, SL_TLS_VERIFY_NONE};
    for (size_t i = 0; s && i < SL_ARRAY_LEN(names); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = vals[i];
            return 0;
        }
    }
    return SL_EINVAL;
}

int sl_tls_client_auth_parse(const char *s, enum sl_tls_client_auth *out)
{
    static const char *const names[] = {"none", "optional", "required"};
    static const enum sl_tls_client_auth vals[] = {
        SL_TLS_CLIENT_AUTH_NONE, SL_TLS_CLIENT_AUTH_OPTIONAL, SL_TLS_CLIENT_AUTH_REQUIRED};
    for (size_t i = 0; s && i < SL_ARRAY_LEN(names); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = vals[i];
            return 0;
        }
    }
    return SL_EINVAL;
}

static struct sl_tls_ctx *ctx_new(const struct sl_tls_opts *o, bool server, char *err,
                                  size_t errlen)
{
    SSL_CTX *c = build(o, server, err, errlen);
    if (!c) {
        return NULL;
    }
    struct sl_tls_ctx *ctx = sl_calloc(1, sizeof(*ctx));
    ctx->ssl = c;
    ctx->server = server;
    ctx->verify = o->verification_mode;
    return ctx;
}

struct sl_tls_ctx *sl_tls_client_ctx(const struct sl_tls_opts *o, char *err, size_t errlen)
{
    return ctx_new(o, false, err, errlen);
}

struct sl_tls_ctx *sl_tls_server_ctx(const struct sl_tls_opts *o, char *err, size_t errlen)
{
    return ctx_new(o, true, err, errlen);
}

int sl_tls_ctx_reload(struct sl_tls_ctx *ctx, const struct sl_tls_opts *o, char *err,
                      size_t errlen)
{
    SSL_CTX *c = build(o, ctx->server, err, errlen);
    if (!c) {
        return SL_EINVAL;
    }
    /* Drops only our reference: live connections hold theirs. */
    SSL_CTX_free(ctx->ssl);
    ctx->ssl = c;
    ctx->verify = o->verification_mode;
    return 0;
}

void sl_tls_ctx_free(struct sl_tls_ctx *ctx)
{
    if (!ctx) {
        return;
    }
    SSL_CTX_free(ctx->ssl);
    free(ctx);
}

/* --- connections -------------------------------------------------------- */

static bool is_ip_literal(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

struct sl_tls *sl_tls_new(struct sl_tls_ctx *ctx, int fd, const char *server_name, char *err,
                          size_t errlen)
{
    ERR_clear_error();
    bool named = server_name && *server_name;
    bool check_host = !ctx->server && (ctx->verify == SL_TLS_VERIFY_FULL ||
                                       ctx->verify == SL_TLS_VERIFY_STRICT);
    if (check_host && !named) {
        snprintf(err, errlen, "verification_mode %s needs the server's host name",
                 ctx->verify == SL_TLS_VERIFY_FULL ? "full" : "strict");
        return NULL;
    }
    SSL *s = SSL_new(ctx->ssl);
    if (!s || SSL_set_fd(s, fd) != 1) {
        ssl_fail(err, errlen, "cannot create a TLS connection");
        goto fail;
    }
    if (ctx->server) {
        SSL_set_accept_state(s);
    } else {
        SSL_set_connect_state(s);
        bool ip = named && is_ip_literal(server_name);
        /* RFC 6066: SNI carries host names only, never address literals. */
        if (named && !ip && SSL_set_tlsext_host_name(s, server_name) != 1) {
            ssl_fail(err, errlen, "invalid server name '%s'", server_name);
            goto fail;
        }
        if (check_host) {
            int ok;
            if (ip) {
                ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), server_name);
            } else {
                unsigned flags = X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS;
                if (ctx->verify == SL_TLS_VERIFY_STRICT) {
                    flags |= X509_CHECK_FLAG_NEVER_CHECK_SUBJECT;
                }
                SSL_set_hostflags(s, flags);
                ok = SSL_set1_host(s, server_name);
            }
            if (ok != 1) {
                ssl_fail(err, errlen, "invalid server name '%s'", server_name);
                goto fail;
            }
        }
    }
    struct sl_tls *t = sl_calloc(1, sizeof(*t));
    t->ssl = s;
    t->server = ctx->server;
    return t;
fail:
    SSL_free(s);
    return NULL;
}

/*
 * Turns an OpenSSL failure of ret into an SL_* code (and t->want / t->err).
 * A ZERO_RETURN (the peer's close_notify) is returned as 0 for the caller to
 * interpret.
 */
static int map_error(struct sl_tls *t, int ret, const char *what)
{
    int saved = errno;
    int e = SSL_get_error(t->ssl, ret);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        t->want = SL_READ;
        return SL_EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        t->want = SL_WRITE;
        return SL_EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return 0;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (saved == 0 || saved == ECONNRESET || saved == EPIPE) {
            snprintf(t->err, sizeof(t->err), "%s: connection %s by peer", what,
                     saved == 0 ? "closed" : "reset");
            t->dead = SL_ECLOSED;
        } else {
            snprintf(t->err, sizeof(t->err), "%s: %s", what, strerror(saved));
            t->dead = SL_EIO;
        }
        return t->dead;
    default:
        break;
    }
    unsigned long first = ERR_peek_error();
    long vr = SSL_get_verify_result(t->ssl);
    t->dead = SL_EPROTO;
    if (ERR_GET_LIB(first) == ERR_LIB_SSL &&
        ERR_GET_REASON(first) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        /* A TCP close without close_notify: a crash or a careless peer, not a
         * TLS failure. Lumberjack frames are self-delimiting, so a truncation
         * attack gains nothing; report it like a reset. */
        ERR_clear_error();
        snprintf(t->err, sizeof(t->err), "%s: connection closed by peer", what);
        t->dead = SL_ECLOSED;
    } else if (vr != X509_V_OK && SSL_get_verify_mode(t->ssl) != SSL_VERIFY_NONE) {
        /* With VERIFY_NONE the result is still computed, but it did not
         * cause this failure. */
        ssl_fail(t->err, sizeof(t->err), "certificate verification failed: %s",
                 X509_verify_cert_error_string(vr));
    } else {
        ssl_fail(t->err, sizeof(t->err), "%s", what);
    }
    return t->dead;
}

int sl_tls_handshake(struct sl_tls *t)
{
    if (t->dead) {
        return t->dead;
    }
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        return 0;
    }
    int rc = map_error(t, r, "TLS handshake failed");
    if (rc == 0) { /* close_notify instead of a handshake */
        snprintf(t->err, sizeof(t->err), "TLS handshake failed: connection closed by peer");
        rc = t->dead = SL_ECLOSED;
    }
    return rc;
}

ssize_t sl_tls_read(struct sl_tls *t, void *buf, size_t n)
{
    if (t->dead) {
        return t->dead;
    }
    if (n == 0) {
        return SL_EINVAL;
    }
    /* Named before the call: a failure moves OpenSSL's state machine out of "finished". */
    const char *what = SSL_is_init_finished(t->ssl) ? "TLS read failed" : "TLS handshake failed";
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(t->ssl, buf, (int)SL_MIN(n, (size_t)INT_MAX));
    if (r > 0) {
        return r;
    }
    return map_error(t, r, what);
}

ssize_t sl_tls_write(struct sl_tls *t, const void *buf, size_t n)
{
    if (t->dead) {
        return t->dead;
    }
    if (n == 0) {
        return 0;
    }
    const char *what = SSL_is_init_finished(t->ssl) ? "TLS write failed" : "TLS handshake failed";
    ERR_clear_error();
    errno = 0;
    int r = SSL_write(t->ssl, buf, (int)SL_MIN(n, (size_t)INT_MAX));
    if (r > 0) {
        return r;
    }
    int rc = map_error(t, r, what);
    if (rc == 0) { /* the peer's close_notify: it reads no more */
        snprintf(t->err, sizeof(t->err), "TLS write failed: connection closed by peer");
        rc = t->dead = SL_ECLOSED;
    }
    return rc;
}

unsigned sl_tls_want(const struct sl_tls *t)
{
    return t->want;
}

bool sl_tls_pending(const struct sl_tls *t)
{
    return SSL_pending(t->ssl) > 0;
}

int sl_tls_shutdown(struct sl_tls *t)
{
    /* After a fatal error OpenSSL forbids SSL_shutdown; before the handshake
     * is done there is no session to close. */
    if (t->dead || t->shut || !SSL_is_init_finished(t->ssl)) {
        return 0;
    }
    ERR_clear_error();
    errno = 0;
    int r = SSL_shutdown(t->ssl);
    if (r >= 0) { /* 0: sent, the peer's not yet received - we do not wait */
        t->shut = true;
        return 0;
    }
    int rc = map_error(t, r, "TLS shutdown failed");
    return rc == 0 ? 0 : rc;
}

void sl_tls_free(struct sl_tls *t)
{
    if (!t) {
        return;
    }
    SSL_free(t->ssl);
    free(t->subject);
    free(t);
}

const char *sl_tls_error(const struct sl_tls *t)
{
    return t->err;
}

const char *sl_tls_peer_subject(struct sl_tls *t)
{
    if (t->subject) {
        return t->subject;
    }
    X509 *x = SSL_get0_peer_certificate(t->ssl);
    if (!x) {
        return NULL;
    }
    BIO *m = BIO_new(BIO_s_mem());
    if (!m) {
        ERR_clear_error();
        return NULL;
    }
    char *data;
    if (X509_NAME_print_ex(m, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0) {
        long len = BIO_get_mem_data(m, &data);
        t->subject = sl_strndup(data, len > 0 ? (size_t)len : 0);
    }
    BIO_free(m);
    ERR_clear_error();
    return t->subject;
}

bool sl_tls_peer_cn(struct sl_tls *t, char *out, size_t len)
{
    X509 *x = SSL_get0_peer_certificate(t->ssl);
    X509_NAME *name = x ? X509_get_subject_name(x) : NULL;
    int i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
    X509_NAME_ENTRY *e = i >= 0 ? X509_NAME_get_entry(name, i) : NULL;
    unsigned char *utf8 = NULL;
    int n = e ? ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e)) : -1;
    bool ok = n > 0 && len > 0;
    if (ok) {
        size_t m = SL_MIN((size_t)n, len - 1);
        memcpy(out, utf8, m);
        out[m] = '\0';
    }
    OPENSSL_free(utf8);
    ERR_clear_error();
    return ok;
}

const char *sl_tls_protocol(const struct sl_tls *t)
{
    return SSL_get_version(t->ssl);
}

const char *sl_tls_cipher(const struct sl_tls *t)
{
    const char *c = SSL_get_cipher_name(t->ssl);
    return c ? c : "(none)";
}
