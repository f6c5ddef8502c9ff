/*
 * container.c - Docker json-file and CRI line parsing, kubelet path names.
 *
 * Docker: {"log":"text\n","stream":"stdout","time":"2026-...Z"} - a message
 * longer than 16 KiB is split over lines whose "log" lacks the final newline.
 * CRI:    2026-...Z stdout F text  - P instead of F marks a partial line.
 */
#include "container.h"

#include <string.h>

#include "sluice/json.h"
#include "sluice/time.h"

static int stream_of(const char *s, size_t n, enum ctr_stream *out)
{
    if (n == 6 && memcmp(s, "stdout", 6) == 0) {
        *out = CTR_STDOUT;
        return 0;
    }
    if (n == 6 && memcmp(s, "stderr", 6) == 0) {
        *out = CTR_STDERR;
        return 0;
    }
    return SL_EINVAL;
}

static int parse_docker(const char *line, size_t len, struct sl_arena *a, struct ctr_line *out)
{
    struct sl_value v = {0};
    char err[96];
    int rc = SL_EINVAL;
    if (sl_json_parse_arena(line, len, &v, a, NULL, err, sizeof(err)) != 0 ||
        v.type != SL_V_OBJECT) {
        goto done;
    }
    const struct sl_value *log = sl_obj_getc(&v, "log");
    const struct sl_value *stream = sl_obj_getc(&v, "stream");
    const struct sl_value *time = sl_obj_getc(&v, "time");
    if (!log || log->type != SL_V_STRING || !stream || stream->type != SL_V_STRING || !time ||
        time->type != SL_V_STRING ||
        stream_of(stream->u.s.ptr, stream->u.s.len, &out->stream) != 0 ||
        sl_timestamp_parse(time->u.s.ptr, time->u.s.len, &out->ts_ms) != 0) {
        goto done;
    }
    /* The strings stay in the arena after the tree is cleared. */
    out->msg = log->u.s.ptr;
    out->len = log->u.s.len;
    out->partial = out->len == 0 || out->msg[out->len - 1] != '\n';
    if (!out->partial) {
        out->len--;
        if (out->len > 0 && out->msg[out->len - 1] == '\r') {
            out->len--;
        }
    }
    out->format = CTR_DOCKER;
    rc = 0;
done:
    sl_value_clear(&v);
    return rc;
}

/* The next space-delimited field of s[*i..n); false when there is none. */
static bool field(const char *s, size_t n, size_t *i, const char **f, size_t *flen)
{
    const char *sp = memchr(s + *i, ' ', n - *i);
    if (!sp || sp == s + *i) {
        return false;
    }
    *f = s + *i;
    *flen = (size_t)(sp - *f);
    *i = (size_t)(sp - s) + 1;
    return true;
}

static int parse_cri(const char *line, size_t len, struct ctr_line *out)
{
    size_t i = 0;
    const char *ts, *stream, *tag;
    size_t tslen, slen, taglen;
    if (!field(line, len, &i, &ts, &tslen) || !field(line, len, &i, &stream, &slen) ||
        stream_of(stream, slen, &out->stream) != 0 ||
        sl_timestamp_parse(ts, tslen, &out->ts_ms) != 0) {
        return SL_EINVAL;
    }
    if (!field(line, len, &i, &tag, &taglen)) {
        /* "TIME stdout F" with nothing after: an empty message. */
        tag = line + i;
        taglen = len - i;
        i = len;
    }
    /* The tag is a ':'-separated list whose first item says partial or full. */
    if (taglen == 0 || (tag[0] != 'P' && tag[0] != 'F') || (taglen > 1 && tag[1] != ':')) {
        return SL_EINVAL;
    }
    out->partial = tag[0] == 'P';
    out->msg = line + i;
    out->len = len - i;
    out->format = CTR_CRI;
    return 0;
}

int ctr_parse(enum ctr_format fmt, const char *line, size_t len, struct sl_arena *a,
              struct ctr_line *out)
{
    if (fmt == CTR_DOCKER || (fmt == CTR_AUTO && len > 0 && line[0] == '{')) {
        return parse_docker(line, len, a, out);
    }
    return parse_cri(line, len, out);
}

/* Copies s[0..n) into a name buffer; false when empty or too long. */
static bool take(char *dst, const char *s, size_t n)
{
    if (n == 0 || n >= K8S_NAME_MAX) {
        return false;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
    return true;
}

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

/* <pod>_<namespace>_<container>-<64 hex>.log: neither pod nor namespace names
 * may hold '_', and the id is the part after the last '-'. */
static bool from_containers(const char *base, struct k8s_meta *m)
{
    size_t n = strlen(base);
    if (n < 5 || memcmp(base + n - 4, ".log", 4) != 0) {
        return false;
    }
    n -= 4;
    const char *u1 = memchr(base, '_', n);
    const char *u2 = u1 ? memchr(u1 + 1, '_', n - (size_t)(u1 + 1 - base)) : NULL;
    if (!u2) {
        return false;
    }
    const char *rest = u2 + 1;
    size_t rlen = n - (size_t)(rest - base);
    const char *dash = NULL;
    for (size_t i = rlen; i > 0; i--) {
        if (rest[i - 1] == '-') {
            dash = rest + i - 1;
            break;
        }
    }
    if (!dash || memchr(rest, '_', rlen)) {
        return false;
    }
    size_t idlen = rlen - (size_t)(dash + 1 - rest);
    if (idlen != 64 || !all_hex(dash + 1, idlen)) {
        return false;
    }
    memcpy(m->id, dash + 1, idlen);
    m->id[idlen] = '\0';
    return take(m->pod, base, (size_t)(u1 - base)) &&
           take(m->ns, u1 + 1, (size_t)(u2 - u1 - 1)) &&
           take(m->container, rest, (size_t)(dash - rest));
}

/* <namespace>_<pod>_<uid>/<container>/<n>.log, rotated copies (<n>.log.<date>) too. */
static bool from_pods(const char *path, const char *base, struct k8s_meta *m)
{
    const char *dot = strstr(base, ".log");
    if (!dot || dot == base) {
        return false;
    }
    for (const char *p = base; p < dot; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
    }
    /* The two directories above base. */
    const char *end_c = base - 1;  /* the '/' before base */
    const char *c = end_c;
    while (c > path && c[-1] != '/') {
        c--;
    }
    if (c == path || c == end_c) {
        return false;
    }
    const char *end_d = c - 1;
    const char *d = end_d;
    while (d > path && d[-1] != '/') {
        d--;
    }
    size_t dlen = (size_t)(end_d - d);
    const char *u1 = memchr(d, '_', dlen);
    const char *u2 = u1 ? memchr(u1 + 1, '_', dlen - (size_t)(u1 + 1 - d)) : NULL;
    if (!u2) {
        return false;
    }
    size_t uidlen = (size_t)(end_d - u2 - 1);
    if (uidlen == 0 || uidlen >= sizeof(m->uid) || memchr(u2 + 1, '_', uidlen)) {
        return false;
    }
    memcpy(m->uid, u2 + 1, uidlen);
    m->uid[uidlen] = '\0';
    return take(m->ns, d, (size_t)(u1 - d)) && take(m->pod, u1 + 1, (size_t)(u2 - u1 - 1)) &&
           take(m->container, c, (size_t)(end_c - c));
}

bool k8s_from_path(const char *path, struct k8s_meta *m)
{
    memset(m, 0, sizeof(*m));
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (from_containers(base, m)) {
        return true;
    }
    memset(m, 0, sizeof(*m));
    if (slash && from_pods(path, base, m)) {
        return true;
    }
    memset(m, 0, sizeof(*m));
    return false;
}

static int put_member(struct sl_buf *b, bool *first, const char *key, const char *val)
{
    int rc = sl_buf_puts(b, *first ? "\"" : ",\"");
    *first = false;
    rc |= sl_buf_puts(b, key);
    rc |= sl_buf_puts(b, "\":");
    rc |= sl_json_put_str(b, val, strlen(val));
    return rc ? SL_ELIMIT : 0;
}

int k8s_put_json(struct sl_buf *b, const struct k8s_meta *m, const char *runtime)
{
    int rc = 0;
    if (m->pod[0]) {
        bool first = true;
        rc |= sl_buf_puts(b, ",\"kubernetes\":{\"pod\":{");
        rc |= put_member(b, &first, "name", m->pod);
        if (m->uid[0]) {
            rc |= put_member(b, &first, "uid", m->uid);
        }
        rc |= sl_buf_puts(b, "},");
        first = true;
        rc |= put_member(b, &first, "namespace", m->ns);
        rc |= sl_buf_puts(b, ",\"container\":{");
        first = true;
        rc |= put_member(b, &first, "name", m->container);
        rc |= sl_buf_puts(b, "}}");
    }
    if (m->id[0] || runtime) {
        bool first = true;
        rc |= sl_buf_puts(b, ",\"container\":{");
        if (m->id[0]) {
            rc |= put_member(b, &first, "id", m->id);
        }
        if (runtime) {
            rc |= put_member(b, &first, "runtime", runtime);
        }
        rc |= sl_buf_putc(b, '}');
    }
    return rc ? SL_ELIMIT : 0;
}
