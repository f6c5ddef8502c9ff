/*
 * tls_test.c - the TLS layer end to end over socketpairs: a client and a
 * server, both non-blocking, driven by a poll loop here. Handshakes, data
 * both ways (1 MB through small socket buffers, so partial writes, WANT_WRITE,
 * moved write buffers and bytes pending inside OpenSSL all happen), every
 * verification mode, client authentication, bad files, and a reload that new
 * connections see and old ones survive. The PKI comes from
 * tests/data/tls/gen.sh, run into a fresh temporary directory.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/loop.h"
#include "sluice/net.h"
#include "sluice/tls.h"
#include "test.h"

static char dir[64];

/* dir/name; a few rotating buffers so one call can take several paths. */
static const char *P(const char *name)
{
    static char bufs[8][192];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
    return b;
}

#define CHECK_HAS(s, sub)                                                        \
    do {                                                                         \
        const char *t_s = (s);                                                   \
        if (!t_s || !strstr(t_s, (sub))) {                                       \
            fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__, \
                    t_s ? t_s : "(null)", (sub));                                \
            t_failed_checks++;                                                   \
        }                                                                        \
    } while (0)

/* --- contexts ----------------------------------------------------------- */

static struct sl_tls_ctx *server_ctx(const char *cert, const char *key, const char *ca,
                                     enum sl_tls_client_auth auth)
{
    const char *cas[] = {ca};
    struct sl_tls_opts o = {.certificate = P(cert), .key = P(key), .client_authentication = auth};
    if (ca) {
        cas[0] = P(ca);
        o.certificate_authorities = cas;
        o.n_certificate_authorities = 1;
    }
    char err[512] = "";
    struct sl_tls_ctx *c = sl_tls_server_ctx(&o, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "server ctx: %s\n", err);
    }
    CHECK(c != NULL);
    return c;
}

/* ca NULL: the system store. cert NULL: no client certificate. */
static struct sl_tls_ctx *client_ctx(const char *ca, enum sl_tls_verify mode, const char *cert,
                                     const char *key)
{
    const char *cas[] = {NULL};
    struct sl_tls_opts o = {.verification_mode = mode};
    if (ca) {
        cas[0] = P(ca);
        o.certificate_authorities = cas;
        o.n_certificate_authorities = 1;
    }
    if (cert) {
        o.certificate = P(cert);
        o.key = P(key);
    }
    char err[512] = "";
    struct sl_tls_ctx *c = sl_tls_client_ctx(&o, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "client ctx: %s\n", err);
    }
    CHECK(c != NULL);
    return c;
}

/* --- a connected pair and the poll loop that drives it -------------------- */

struct pair {
    int cfd, sfd;
    struct sl_tls *c, *s;
    int crc, src; /* handshake results */
};

static short poll_events(unsigned want)
{
    return (short)(((want & SL_READ) ? POLLIN : 0) | ((want & SL_WRITE) ? POLLOUT : 0));
}

/* Socket buffers this small make a record or two fill them. */
static void small_buffers(int fd)
{
    int sz = 16 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

static void pair_close(struct pair *p)
{
    sl_tls_free(p->c);
    sl_tls_free(p->s);
    if (p->cfd >= 0) {
        close(p->cfd);
    }
    if (p->sfd >= 0) {
        close(p->sfd);
    }
}

static bool pair_open(struct pair *p, struct sl_tls_ctx *cc, struct sl_tls_ctx *sc,
                      const char *name)
{
    int fds[2];
    memset(p, 0, sizeof(*p));
    p->cfd = p->sfd = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
        CHECK(!"socketpair");
        return false;
    }
    p->cfd = fds[0];
    p->sfd = fds[1];
    small_buffers(p->cfd);
    small_buffers(p->sfd);
    char err[512] = "";
    p->c = sl_tls_new(cc, p->cfd, name, err, sizeof(err));
    if (!p->c) {
        fprintf(stderr, "sl_tls_new(client): %s\n", err);
    }
    p->s = sl_tls_new(sc, p->sfd, NULL, err, sizeof(err));
    CHECK(p->c != NULL);
    CHECK(p->s != NULL);
    if (!p->c || !p->s) {
        pair_close(p);
        return false;
    }
    return true;
}

/*
 * Runs both handshakes to their end. A side that fails half-closes its socket,
 * as a daemon would close the connection, so the other side cannot wait
 * forever. With TLS 1.3 the client may finish while the server then fails.
 */
static void handshake(struct pair *p)
{
    p->crc = p->src = SL_EAGAIN;
    for (int i = 0; i < 1000; i++) {
        if (p->crc == SL_EAGAIN && (p->crc = sl_tls_handshake(p->c)) < 0 && p->crc != SL_EAGAIN) {
            shutdown(p->cfd, SHUT_WR);
        }
        if (p->src == SL_EAGAIN && (p->src = sl_tls_handshake(p->s)) < 0 && p->src != SL_EAGAIN) {
            shutdown(p->sfd, SHUT_WR);
        }
        if (p->crc != SL_EAGAIN && p->src != SL_EAGAIN) {
            return;
        }
        if (p->src < 0 && p->src != SL_EAGAIN && p->crc == 0) {
            return;
        }
        if (p->crc < 0 && p->crc != SL_EAGAIN && p->src == 0) {
            return;
        }
        struct pollfd pf[2] = {
            {.fd = p->cfd, .events = p->crc == SL_EAGAIN ? poll_events(sl_tls_want(p->c)) : 0},
            {.fd = p->sfd, .events = p->src == SL_EAGAIN ? poll_events(sl_tls_want(p->s)) : 0},
        };
        if (poll(pf, 2, 2000) <= 0) {
            fprintf(stderr, "handshake: poll timed out\n");
            return;
        }
    }
}

/* One direction of a transfer. Two identical copies of the outgoing bytes
 * let a retried write come from a different address. */
struct end {
    struct sl_tls *t;
    int fd;
    const unsigned char *out[2];
    size_t out_len, out_off;
    int copy;
    unsigned char *in;
    size_t in_len, in_off, chunk;
    unsigned rwant, wwant;
    int err;
    long partial, eagain_w, pending;
};

static void end_step(struct end *e)
{
    while (e->out_off < e->out_len) {
        size_t left = e->out_len - e->out_off;
        ssize_t r = sl_tls_write(e->t, e->out[e->copy] + e->out_off, left);
        if (r == SL_EAGAIN) {
            e->wwant = sl_tls_want(e->t);
            e->eagain_w++;
            e->copy ^= 1; /* the retry comes from the other copy */
            break;
        }
        if (r <= 0) {
            fprintf(stderr, "write: %zd %s\n", r, sl_tls_error(e->t));
            e->err = r < 0 ? (int)r : SL_EIO;
            return;
        }
        e->wwant = 0;
        if ((size_t)r < left) {
            e->partial++;
        }
        e->out_off += (size_t)r;
    }
    while (e->in_off < e->in_len) {
        ssize_t r = sl_tls_read(e->t, e->in + e->in_off, SL_MIN(e->chunk, e->in_len - e->in_off));
        if (r == SL_EAGAIN) {
            e->rwant = sl_tls_want(e->t);
            break;
        }
        if (r <= 0) {
            fprintf(stderr, "read: %zd %s\n", r, sl_tls_error(e->t));
            e->err = r < 0 ? (int)r : SL_ECLOSED;
            return;
        }
        e->rwant = 0;
        e->in_off += (size_t)r;
        if (sl_tls_pending(e->t)) {
            e->pending++;
        }
    }
}

static bool end_done(const struct end *e)
{
    return e->out_off == e->out_len && e->in_off == e->in_len;
}

static short end_events(const struct end *e)
{
    short ev = 0;
    if (e->out_off < e->out_len) {
        ev |= poll_events(e->wwant);
    }
    if (e->in_off < e->in_len) {
        ev |= poll_events(e->rwant);
    }
    return ev;
}

/* Moves both ends' bytes until each has sent and received all. */
static bool transfer(struct end *a, struct end *b)
{
    for (int i = 0; i < 100000; i++) {
        end_step(a);
        end_step(b);
        if (a->err || b->err) {
            return false;
        }
        if (end_done(a) && end_done(b)) {
            return true;
        }
        struct pollfd pf[2] = {{.fd = a->fd, .events = end_events(a)},
                               {.fd = b->fd, .events = end_events(b)}};
        if (poll(pf, 2, 2000) <= 0) {
            fprintf(stderr, "transfer: poll timed out\n");
            return false;
        }
    }
    return false;
}

/* a sends msg, b must receive exactly msg. */
static bool exchange(struct sl_tls *a, int afd, struct sl_tls *b, int bfd, const char *msg)
{
    size_t n = strlen(msg);
    char got[256] = "";
    struct end ea = {.t = a, .fd = afd, .out = {(const unsigned char *)msg,
                                                (const unsigned char *)msg}, .out_len = n};
    struct end eb = {.t = b, .fd = bfd, .in = (unsigned char *)got, .in_len = n, .chunk = n};
    bool ok = transfer(&ea, &eb);
    CHECK(ok);
    CHECK_MEM(got, eb.in_off, msg);
    return ok && eb.in_off == n && memcmp(got, msg, n) == 0;
}

/* --- tests -------------------------------------------------------------- */

TEST(test_parse)
{
    enum sl_tls_verify v = SL_TLS_VERIFY_NONE;
    enum sl_tls_client_auth a = SL_TLS_CLIENT_AUTH_NONE;
    CHECK_INT(sl_tls_verify_parse("full", &v), 0);
    CHECK_INT(v, SL_TLS_VERIFY_FULL);
    CHECK_INT(sl_tls_verify_parse("strict", &v), 0);
    CHECK_INT(v, SL_TLS_VERIFY_STRICT);
    CHECK_INT(sl_tls_verify_parse("certificate", &v), 0);
    CHECK_INT(v, SL_TLS_VERIFY_CERTIFICATE);
    CHECK_INT(sl_tls_verify_parse("none", &v), 0);
    CHECK_INT(v, SL_TLS_VERIFY_NONE);
    CHECK_INT(sl_tls_verify_parse("Full", &v), SL_EINVAL);
    CHECK_INT(sl_tls_verify_parse(NULL, &v), SL_EINVAL);
    CHECK_INT(sl_tls_client_auth_parse("required", &a), 0);
    CHECK_INT(a, SL_TLS_CLIENT_AUTH_REQUIRED);
    CHECK_INT(sl_tls_client_auth_parse("optional", &a), 0);
    CHECK_INT(a, SL_TLS_CLIENT_AUTH_OPTIONAL);
    CHECK_INT(sl_tls_client_auth_parse("none", &a), 0);
    CHECK_INT(a, SL_TLS_CLIENT_AUTH_NONE);
    CHECK_INT(sl_tls_client_auth_parse("yes", &a), SL_EINVAL);
}

TEST(test_ctx_errors)
{
    char err[512];
    struct sl_tls_opts o = {.certificate = "/nonexistent/x.pem", .key = P("server.key")};
    CHECK(sl_tls_server_ctx(&o, err, sizeof(err)) == NULL);
    CHECK_HAS(err, "cannot load certificate /nonexistent/x.pem: ");
    CHECK_HAS(err, "No such file or directory");

    o = (struct sl_tls_opts){.certificate = P("server.pem"), .key = P("nokey.pem")};
    CHECK(sl_tls_server_ctx(&o, err, sizeof(err)) == NULL);
    CHECK_HAS(err, "cannot load key ");
    CHECK_HAS(err, "nokey.pem: ");

    /* a file that is not PEM at all */
    o = (struct sl_tls_opts){.certificate = P("server.key"), .key = P("server.key")};
    CHECK(sl_tls_server_ctx(&o, err, sizeof(err)) == NULL);
    CHECK_HAS(err, "cannot load certificate ");

    o = (struct sl_tls_opts){.certificate = P("server.pem"), .key = P("client.key")};
    CHECK(sl_tls_server_ctx(&o, err, sizeof(err)) == NULL);
    CHECK_HAS(err, "client.key does not match certificate ");

    o = (struct sl_tls_opts){.certificate = P("server.pem")};
    CHECK(sl_tls_client_ctx(&o, err, sizeof(err)) == NULL);
    CHECK_STR(err, "certificate and key must be set together");

    o = (struct sl_tls_opts){0};
    CHECK(sl_tls_server_ctx(&o, err, sizeof(err)) == NULL);
    CHECK_STR(err, "a TLS server needs a certificate and a key");

    o = (struct sl_tls_opts){.certificate = P("server.pem"), .key = P("server.key"),
                             .client_authentication = SL_TLS_CLIENT_AUTH_REQUIRED};
    CHECK(sl_tls_server_ctx(&o, err, sizeof(err)) == NULL);
    CHECK_STR(err, "client_authentication required needs certificate_authorities");

    const char *cas[] = {P("missing-ca.pem")};
    o = (struct sl_tls_opts){.certificate_authorities = cas, .n_certificate_authorities = 1};
    CHECK(sl_tls_client_ctx(&o, err, sizeof(err)) == NULL);
    CHECK_HAS(err, "cannot load certificate authorities ");
    CHECK_HAS(err, "missing-ca.pem: ");

    /* a key file has no certificate in it */
    cas[0] = P("ca.key");
    CHECK(sl_tls_client_ctx(&o, err, sizeof(err)) == NULL);
    CHECK_HAS(err, "ca.key: no certificate found");

    const char *protos[] = {"TLSv1.1"};
    o = (struct sl_tls_opts){.supported_protocols = protos, .n_supported_protocols = 1};
    CHECK(sl_tls_client_ctx(&o, err, sizeof(err)) == NULL);
    CHECK_STR(err, "unsupported protocol 'TLSv1.1' (supported: TLSv1.2, TLSv1.3)");

    /* an encrypted PKCS#8 key: no passphrase or a wrong one fail, the right one loads */
    o = (struct sl_tls_opts){.certificate = P("client.pem"), .key = P("client-enc.key")};
    CHECK(sl_tls_client_ctx(&o, err, sizeof(err)) == NULL);
    CHECK_HAS(err, "cannot load key ");
    o.key_passphrase = "wrong";
    CHECK(sl_tls_client_ctx(&o, err, sizeof(err)) == NULL);
    CHECK_HAS(err, "cannot load key ");
    o.key_passphrase = "secret";
    struct sl_tls_ctx *c = sl_tls_client_ctx(&o, err, sizeof(err));
    CHECK(c != NULL);
    sl_tls_ctx_free(c);
    sl_tls_ctx_free(NULL);

    /* full verification needs a name to check */
    c = client_ctx("ca.pem", SL_TLS_VERIFY_FULL, NULL, NULL);
    CHECK(sl_tls_new(c, 0, NULL, err, sizeof(err)) == NULL);
    CHECK_STR(err, "verification_mode full needs the server's host name");
    sl_tls_ctx_free(c);
}

/* Inline PEM text works where a path does (Filebeat allows both). */
TEST(test_inline_pem)
{
    char *pem[3] = {NULL, NULL, NULL};
    const char *names[] = {"ca.pem", "server.pem", "server.key"};
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(P(names[i]), "r");
        CHECK(f != NULL);
        if (!f) {
            goto out;
        }
        pem[i] = calloc(1, 8192);
        size_t n = fread(pem[i], 1, 8191, f);
        fclose(f);
        CHECK(n > 0);
    }
    const char *cas[] = {pem[0]};
    struct sl_tls_opts so = {.certificate = pem[1], .key = pem[2]};
    struct sl_tls_opts co = {.certificate_authorities = cas, .n_certificate_authorities = 1};
    char err[512] = "";
    struct sl_tls_ctx *sc = sl_tls_server_ctx(&so, err, sizeof(err));
    struct sl_tls_ctx *cc = sl_tls_client_ctx(&co, err, sizeof(err));
    CHECK(sc && cc);
    struct pair p;
    if (sc && cc && pair_open(&p, cc, sc, "localhost")) {
        handshake(&p);
        CHECK_INT(p.crc, 0);
        CHECK_INT(p.src, 0);
        pair_close(&p);
    }
    sl_tls_ctx_free(sc);
    sl_tls_ctx_free(cc);
out:
    for (int i = 0; i < 3; i++) {
        free(pem[i]);
    }
}

TEST(test_basic)
{
    struct sl_tls_ctx *sc = server_ctx("server.pem", "server.key", NULL, SL_TLS_CLIENT_AUTH_NONE);
    struct sl_tls_ctx *cc = client_ctx("ca.pem", SL_TLS_VERIFY_FULL, NULL, NULL);
    struct pair p;
    if (!pair_open(&p, cc, sc, "localhost")) {
        goto out;
    }
    handshake(&p);
    CHECK_INT(p.crc, 0);
    CHECK_INT(p.src, 0);
    CHECK_STR(sl_tls_error(p.c), "");
    CHECK_STR(sl_tls_peer_subject(p.c), "CN=sluice-server,O=sluice test");
    CHECK(sl_tls_peer_subject(p.s) == NULL);
    CHECK_STR(sl_tls_protocol(p.c), "TLSv1.3");
    CHECK_STR(sl_tls_protocol(p.s), "TLSv1.3");
    CHECK(strlen(sl_tls_cipher(p.c)) > 0);
    CHECK(exchange(p.c, p.cfd, p.s, p.sfd, "1 2W\x00\x00\x00\x05"));
    CHECK(exchange(p.s, p.sfd, p.c, p.cfd, "pong from the server"));

    /* a clean close: close_notify reads as 0 on the other side */
    char buf[16];
    CHECK_INT(sl_tls_read(p.s, buf, sizeof(buf)), SL_EAGAIN);
    CHECK_INT(sl_tls_want(p.s), SL_READ);
    CHECK_INT(sl_tls_shutdown(p.c), 0);
    CHECK_INT(sl_tls_shutdown(p.c), 0); /* once is enough */
    CHECK_INT(sl_tls_read(p.s, buf, sizeof(buf)), 0);
    pair_close(&p);
out:
    sl_tls_ctx_free(sc);
    sl_tls_ctx_free(cc);
}

/* A peer that drops TCP without close_notify: SL_ECLOSED, not a clean 0. */
TEST(test_unclean_close)
{
    struct sl_tls_ctx *sc = server_ctx("server.pem", "server.key", NULL, SL_TLS_CLIENT_AUTH_NONE);
    struct sl_tls_ctx *cc = client_ctx("ca.pem", SL_TLS_VERIFY_FULL, NULL, NULL);
    struct pair p;
    if (!pair_open(&p, cc, sc, "localhost")) {
        goto out;
    }
    handshake(&p);
    CHECK_INT(p.crc, 0);
    CHECK_INT(p.src, 0);
    close(p.sfd);
    p.sfd = -1;
    char buf[16];
    CHECK_INT(sl_tls_read(p.c, buf, sizeof(buf)), SL_ECLOSED);
    CHECK_STR(sl_tls_error(p.c), "TLS read failed: connection closed by peer");
    CHECK_INT(sl_tls_read(p.c, buf, sizeof(buf)), SL_ECLOSED); /* and stays so */
    CHECK_INT(sl_tls_shutdown(p.c), 0);
    pair_close(&p);
out:
    sl_tls_ctx_free(sc);
    sl_tls_ctx_free(cc);
}

/* 1 MB each way at once through 16 kB socket buffers, read 1000 bytes at a time. */
TEST(test_bulk)
{
    enum { N = 1024 * 1024 };
    struct sl_tls_ctx *sc = server_ctx("server.pem", "server.key", NULL, SL_TLS_CLIENT_AUTH_NONE);
    struct sl_tls_ctx *cc = client_ctx("ca.pem", SL_TLS_VERIFY_FULL, NULL, NULL);
    unsigned char *a1 = malloc(N), *a2 = malloc(N), *b1 = malloc(N), *b2 = malloc(N);
    unsigned char *ain = calloc(1, N), *bin = calloc(1, N);
    struct pair p;
    if (!pair_open(&p, cc, sc, "127.0.0.1")) {
        goto out;
    }
    for (size_t i = 0; i < N; i++) {
        a1[i] = a2[i] = (unsigned char)(i * 31 + (i >> 13));
        b1[i] = b2[i] = (unsigned char)(i * 7 + 3 + (i >> 11));
    }
    handshake(&p);
    CHECK_INT(p.crc, 0);
    CHECK_INT(p.src, 0);
    struct end ec = {.t = p.c, .fd = p.cfd, .out = {a1, a2}, .out_len = N, .in = ain,
                     .in_len = N, .chunk = 1000};
    struct end es = {.t = p.s, .fd = p.sfd, .out = {b1, b2}, .out_len = N, .in = bin,
                     .in_len = N, .chunk = 1000};
    CHECK(transfer(&ec, &es));
    CHECK_INT(ec.in_off, N);
    CHECK_INT(es.in_off, N);
    CHECK(memcmp(bin, a1, N) == 0);
    CHECK(memcmp(ain, b1, N) == 0);
    /* the point of the exercise: each of these happened */
    CHECK(ec.partial > 0 && es.partial > 0);
    CHECK(ec.eagain_w > 0 && es.eagain_w > 0);
    CHECK(ec.pending > 0 && es.pending > 0);
    pair_close(&p);
out:
    free(a1);
    free(a2);
    free(b1);
    free(b2);
    free(ain);
    free(bin);
    sl_tls_ctx_free(sc);
    sl_tls_ctx_free(cc);
}

/* Connects a client of mode/name to a server using cert; expects the client's
 * handshake result crc and, when it fails, an error containing msg. */
static void try_server(const char *cert, const char *key, const char *ca, enum sl_tls_verify mode,
                       const char *name, int crc, const char *msg, const char *subject)
{
    struct sl_tls_ctx *sc = server_ctx(cert, key, NULL, SL_TLS_CLIENT_AUTH_NONE);
    struct sl_tls_ctx *cc = client_ctx(ca, mode, NULL, NULL);
    struct pair p;
    if (!pair_open(&p, cc, sc, name)) {
        goto out;
    }
    handshake(&p);
    CHECK_INT(p.crc, crc);
    if (crc == 0) {
        CHECK_INT(p.src, 0);
        CHECK_STR(sl_tls_peer_subject(p.c), subject);
        CHECK(exchange(p.c, p.cfd, p.s, p.sfd, "hello"));
    } else {
        CHECK_HAS(sl_tls_error(p.c), msg);
        CHECK(p.src < 0 && p.src != SL_EAGAIN); /* the server saw the alert */
        if (p.crc != crc || p.src >= 0) {
            fprintf(stderr, "  (%s %s -> %d: %s)\n", cert, name ? name : "-", p.crc,
                    sl_tls_error(p.c));
        }
    }
    pair_close(&p);
out:
    sl_tls_ctx_free(sc);
    sl_tls_ctx_free(cc);
}

TEST(test_verify_hostname)
{
    const char *subj = "CN=sluice-server,O=sluice test";
    try_server("server.pem", "server.key", "ca.pem", SL_TLS_VERIFY_FULL, "localhost", 0, NULL,
               subj);
    try_server("server.pem", "server.key", "ca.pem", SL_TLS_VERIFY_FULL, "127.0.0.1", 0, NULL,
               subj);
    try_server("server.pem", "server.key", "ca.pem", SL_TLS_VERIFY_STRICT, "localhost", 0, NULL,
               subj);
    try_server("server.pem", "server.key", "ca.pem", SL_TLS_VERIFY_FULL, "example.com",
               SL_EPROTO, "certificate verification failed: hostname mismatch", NULL);
    try_server("server.pem", "server.key", "ca.pem", SL_TLS_VERIFY_FULL, "127.0.0.2", SL_EPROTO,
               "certificate verification failed: IP address mismatch", NULL);
    /* the CN is not a SAN: strict never falls back to it, and neither does full
     * when the certificate has DNS SANs */
    try_server("server.pem", "server.key", "ca.pem", SL_TLS_VERIFY_STRICT, "sluice-server",
               SL_EPROTO, "hostname mismatch", NULL);
    try_server("server.pem", "server.key", "ca.pem", SL_TLS_VERIFY_CERTIFICATE, "example.com", 0,
               NULL, subj);
    try_server("server.pem", "server.key", "ca.pem", SL_TLS_VERIFY_CERTIFICATE, NULL, 0, NULL,
               subj);
}

TEST(test_verify_chain)
{
    const char *usubj = "CN=sluice-untrusted,O=sluice test";
    try_server("untrusted.pem", "untrusted.key", "ca.pem", SL_TLS_VERIFY_FULL, "localhost",
               SL_EPROTO, "certificate verification failed: unable to get local issuer certificate",
               NULL);
    try_server("untrusted.pem", "untrusted.key", "ca.pem", SL_TLS_VERIFY_CERTIFICATE, "localhost",
               SL_EPROTO, "certificate verification failed: ", NULL);
    try_server("untrusted.pem", "untrusted.key", "ca.pem", SL_TLS_VERIFY_NONE, "localhost", 0,
               NULL, usubj);
    try_server("untrusted.pem", "untrusted.key", "ca.pem", SL_TLS_VERIFY_NONE, "example.com", 0,
               NULL, usubj);
    try_server("expired.pem", "expired.key", "ca.pem", SL_TLS_VERIFY_FULL, "localhost", SL_EPROTO,
               "certificate verification failed: certificate has expired", NULL);
    try_server("expired.pem", "expired.key", "ca.pem", SL_TLS_VERIFY_CERTIFICATE, "localhost",
               SL_EPROTO, "certificate verification failed: certificate has expired", NULL);
    /* no certificate_authorities: the system store, which does not know our CA */
    try_server("server.pem", "server.key", NULL, SL_TLS_VERIFY_FULL, "localhost", SL_EPROTO,
               "certificate verification failed: unable to get local issuer certificate", NULL);
    /* the server's CA is trusted when it is one of several */
    const char *cas[] = {P("untrusted-ca.pem"), P("ca.pem")};
    struct sl_tls_opts o = {.certificate_authorities = cas, .n_certificate_authorities = 2};
    char err[512] = "";
    struct sl_tls_ctx *cc = sl_tls_client_ctx(&o, err, sizeof(err));
    struct sl_tls_ctx *sc = server_ctx("server.pem", "server.key", NULL, SL_TLS_CLIENT_AUTH_NONE);
    struct pair p;
    if (cc && pair_open(&p, cc, sc, "localhost")) {
        handshake(&p);
        CHECK_INT(p.crc, 0);
        CHECK_INT(p.src, 0);
        pair_close(&p);
    }
    sl_tls_ctx_free(cc);
    sl_tls_ctx_free(sc);
}

/*
 * Runs a client (cert NULL = none) against a server with auth. Expects the
 * server's handshake result src; on failure its error has msg and the client
 * fails too - in its handshake (TLS 1.2) or its first read (TLS 1.3).
 */
static void try_client(enum sl_tls_client_auth auth, const char *cert, const char *key,
                       const char *pass, const char *proto, int src, const char *msg,
                       const char *subject)
{
    struct sl_tls_ctx *sc = server_ctx("server.pem", "server.key", "ca.pem", auth);
    const char *cas[] = {P("ca.pem")};
    const char *protos[] = {proto};
    struct sl_tls_opts o = {.certificate_authorities = cas, .n_certificate_authorities = 1,
                            .certificate = cert ? P(cert) : NULL, .key = key ? P(key) : NULL,
                            .key_passphrase = pass, .supported_protocols = protos,
                            .n_supported_protocols = proto ? 1 : 0};
    char err[512] = "";
    struct sl_tls_ctx *cc = sl_tls_client_ctx(&o, err, sizeof(err));
    CHECK(cc != NULL);
    struct pair p;
    if (!cc || !pair_open(&p, cc, sc, "localhost")) {
        goto out;
    }
    handshake(&p);
    CHECK_INT(p.src, src);
    if (proto) {
        CHECK_STR(sl_tls_protocol(p.c), proto);
    }
    if (src == 0) {
        CHECK_INT(p.crc, 0);
        if (subject) {
            CHECK_STR(sl_tls_peer_subject(p.s), subject);
        } else {
            CHECK(sl_tls_peer_subject(p.s) == NULL);
        }
        CHECK(exchange(p.c, p.cfd, p.s, p.sfd, "hello"));
        CHECK(exchange(p.s, p.sfd, p.c, p.cfd, "1 2A\x00\x00\x00\x01"));
    } else {
        CHECK_HAS(sl_tls_error(p.s), msg);
        int crc = p.crc;
        if (crc == 0) {
            char buf[16];
            for (int i = 0; i < 100; i++) {
                crc = (int)sl_tls_read(p.c, buf, sizeof(buf));
                if (crc != SL_EAGAIN) {
                    break;
                }
                struct pollfd pf = {.fd = p.cfd, .events = POLLIN};
                poll(&pf, 1, 1000);
            }
        }
        CHECK(crc < 0 && crc != SL_EAGAIN);
        CHECK(sl_tls_error(p.c)[0] != '\0');
    }
    pair_close(&p);
out:
    sl_tls_ctx_free(sc);
    sl_tls_ctx_free(cc);
}

TEST(test_client_auth)
{
    const char *csubj = "CN=sluice-client,O=sluice test";
    try_client(SL_TLS_CLIENT_AUTH_NONE, NULL, NULL, NULL, NULL, 0, NULL, NULL);
    /* a certificate offered to a server that asks for none is not sent */
    try_client(SL_TLS_CLIENT_AUTH_NONE, "client.pem", "client.key", NULL, NULL, 0, NULL, NULL);
    try_client(SL_TLS_CLIENT_AUTH_OPTIONAL, NULL, NULL, NULL, NULL, 0, NULL, NULL);
    try_client(SL_TLS_CLIENT_AUTH_OPTIONAL, "client.pem", "client.key", NULL, NULL, 0, NULL,
               csubj);
    try_client(SL_TLS_CLIENT_AUTH_REQUIRED, "client.pem", "client.key", NULL, NULL, 0, NULL,
               csubj);
    try_client(SL_TLS_CLIENT_AUTH_REQUIRED, "client.pem", "client-enc.key", "secret", NULL, 0,
               NULL, csubj);
    try_client(SL_TLS_CLIENT_AUTH_REQUIRED, "client.pem", "client.key", NULL, "TLSv1.2", 0, NULL,
               csubj);
    try_client(SL_TLS_CLIENT_AUTH_REQUIRED, NULL, NULL, NULL, NULL, SL_EPROTO,
               "TLS handshake failed: error:0A0000C7:SSL routines::peer did not return a "
               "certificate",
               NULL);
    try_client(SL_TLS_CLIENT_AUTH_REQUIRED, NULL, NULL, NULL, "TLSv1.2", SL_EPROTO,
               "peer did not return a certificate", NULL);
    try_client(SL_TLS_CLIENT_AUTH_REQUIRED, "untrusted.pem", "untrusted.key", NULL, NULL,
               SL_EPROTO, "certificate verification failed: unable to get local issuer", NULL);
    try_client(SL_TLS_CLIENT_AUTH_OPTIONAL, "untrusted.pem", "untrusted.key", NULL, NULL,
               SL_EPROTO, "certificate verification failed: unable to get local issuer", NULL);
    try_client(SL_TLS_CLIENT_AUTH_REQUIRED, "expired.pem", "expired.key", NULL, NULL, SL_EPROTO,
               "certificate verification failed: certificate has expired", NULL);
}

/*
 * Over real loopback TCP, the client starting its handshake right after the
 * non-blocking connect (which may still be in progress) and before the server
 * has accepted: the way the shipper dials. Mutual TLS, by IP address.
 */
TEST(test_tcp)
{
    struct sl_tls_ctx *sc = server_ctx("server.pem", "server.key", "ca.pem",
                                       SL_TLS_CLIENT_AUTH_REQUIRED);
    struct sl_tls_ctx *cc = client_ctx("ca.pem", SL_TLS_VERIFY_FULL, "client.pem", "client.key");
    struct pair p = {.cfd = -1, .sfd = -1};
    char err[512] = "", addr[64];
    int lfd = sl_net_listen("127.0.0.1:0", 8);
    CHECK(lfd >= 0);
    if (lfd < 0) {
        goto out;
    }
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", sl_net_local_port(lfd));
    p.cfd = sl_net_connect(addr);
    CHECK(p.cfd >= 0);
    p.c = sl_tls_new(cc, p.cfd, "127.0.0.1", err, sizeof(err));
    CHECK(p.c != NULL);
    if (p.cfd < 0 || !p.c) {
        goto out;
    }
    CHECK_INT(sl_tls_handshake(p.c), SL_EAGAIN);
    struct pollfd pf = {.fd = lfd, .events = POLLIN};
    CHECK_INT(poll(&pf, 1, 2000), 1);
    p.sfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    CHECK(p.sfd >= 0);
    p.s = sl_tls_new(sc, p.sfd, NULL, err, sizeof(err));
    CHECK(p.s != NULL);
    if (p.sfd < 0 || !p.s) {
        goto out;
    }
    handshake(&p);
    CHECK_INT(p.crc, 0);
    CHECK_INT(p.src, 0);
    CHECK_STR(sl_tls_peer_subject(p.s), "CN=sluice-client,O=sluice test");
    CHECK_STR(sl_tls_peer_subject(p.c), "CN=sluice-server,O=sluice test");
    CHECK(exchange(p.c, p.cfd, p.s, p.sfd, "over tcp"));
    CHECK(exchange(p.s, p.sfd, p.c, p.cfd, "and back"));
out:
    pair_close(&p);
    if (lfd >= 0) {
        close(lfd);
    }
    sl_tls_ctx_free(sc);
    sl_tls_ctx_free(cc);
}

/*
 * The certbot renew-hook case: reload swaps in server2.pem; the connection made
 * before keeps working under the old certificate, a new one gets the new.
 */
TEST(test_reload)
{
    struct sl_tls_ctx *sc = server_ctx("server.pem", "server.key", NULL, SL_TLS_CLIENT_AUTH_NONE);
    struct sl_tls_ctx *cc = client_ctx("ca.pem", SL_TLS_VERIFY_FULL, NULL, NULL);
    struct pair p1, p2, p3;
    char err[512] = "";
    if (!pair_open(&p1, cc, sc, "localhost")) {
        goto out;
    }
    handshake(&p1);
    CHECK_INT(p1.crc, 0);
    CHECK_INT(p1.src, 0);
    CHECK_STR(sl_tls_peer_subject(p1.c), "CN=sluice-server,O=sluice test");

    /* a failed reload (the new key is missing) changes nothing */
    struct sl_tls_opts o = {.certificate = P("server2.pem"), .key = P("absent.key")};
    CHECK_INT(sl_tls_ctx_reload(sc, &o, err, sizeof(err)), SL_EINVAL);
    CHECK_HAS(err, "absent.key");

    o.key = P("server2.key");
    CHECK_INT(sl_tls_ctx_reload(sc, &o, err, sizeof(err)), 0);
    CHECK(exchange(p1.c, p1.cfd, p1.s, p1.sfd, "still here"));
    CHECK(exchange(p1.s, p1.sfd, p1.c, p1.cfd, "and answering"));

    if (pair_open(&p2, cc, sc, "localhost")) {
        handshake(&p2);
        CHECK_INT(p2.crc, 0);
        CHECK_INT(p2.src, 0);
        CHECK_STR(sl_tls_peer_subject(p2.c), "CN=sluice-server-2,O=sluice test");
        CHECK(exchange(p2.c, p2.cfd, p2.s, p2.sfd, "new"));
        pair_close(&p2);
    }
    /* the old connection outlives even the context itself */
    sl_tls_ctx_free(sc);
    sc = NULL;
    CHECK(exchange(p1.c, p1.cfd, p1.s, p1.sfd, "after free"));
    CHECK_STR(sl_tls_peer_subject(p1.c), "CN=sluice-server,O=sluice test");
    pair_close(&p1);

    /* a client context reloads too: verification mode and CA change */
    const char *cas[] = {P("untrusted-ca.pem")};
    struct sl_tls_opts co = {.certificate_authorities = cas, .n_certificate_authorities = 1};
    CHECK_INT(sl_tls_ctx_reload(cc, &co, err, sizeof(err)), 0);
    sc = server_ctx("untrusted.pem", "untrusted.key", NULL, SL_TLS_CLIENT_AUTH_NONE);
    if (pair_open(&p3, cc, sc, "localhost")) {
        handshake(&p3);
        CHECK_INT(p3.crc, 0);
        CHECK_STR(sl_tls_peer_subject(p3.c), "CN=sluice-untrusted,O=sluice test");
        pair_close(&p3);
    }
out:
    sl_tls_ctx_free(sc);
    sl_tls_ctx_free(cc);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof(dir), "%s", "/tmp/sluice-tls-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "tests/data/tls/gen.sh %s", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "%s failed (run from the repository root)\n", cmd);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        (void)!system(cmd);
        return 1;
    }
    RUN(test_parse);
    RUN(test_ctx_errors);
    RUN(test_inline_pem);
    RUN(test_basic);
    RUN(test_unclean_close);
    RUN(test_bulk);
    RUN(test_verify_hostname);
    RUN(test_verify_chain);
    RUN(test_client_auth);
    RUN(test_tcp);
    RUN(test_reload);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    (void)!system(cmd);
    return TEST_SUMMARY();
}
