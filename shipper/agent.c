/*
 * agent.c - agent.id (kept in meta.json) and agent.ephemeral_id.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "sluice/buf.h"
#include "sluice/file.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/time.h"

/* meta.json is one short object; anything longer is not ours. */
#define META_MAX 4096

int agent_uuid_v4(char out[AGENT_UUID_LEN + 1])
{
    unsigned char r[16];
    size_t got = 0;
    while (got < sizeof(r)) {
        ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return SL_EIO;
        }
        got += (size_t)n;
    }
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);  /* version 4 */
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);  /* the RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (size_t i = 0; i < sizeof(r); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *o++ = '-';
        }
        *o++ = hex[r[i] >> 4];
        *o++ = hex[r[i] & 15];
    }
    *o = '\0';
    return 0;
}

bool agent_uuid_valid(const char *s, size_t len)
{
    if (len != AGENT_UUID_LEN) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        bool hexd = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (dash ? c != '-' : !hexd) {
            return false;
        }
    }
    return true;
}

/* The uuid member of text, copied into out. False when text is not a meta.json. */
static bool parse_meta(const struct sl_buf *text, char out[AGENT_UUID_LEN + 1])
{
    struct sl_value v = {0};
    char err[96];
    bool ok = false;
    if (sl_json_parse(text->data ? text->data : "", text->len, &v, NULL, err, sizeof(err)) == 0) {
        const struct sl_value *u = sl_obj_getc(&v, "uuid");
        if (u && u->type == SL_V_STRING && agent_uuid_valid(u->u.s.ptr, u->u.s.len)) {
            memcpy(out, u->u.s.ptr, AGENT_UUID_LEN);
            out[AGENT_UUID_LEN] = '\0';
            ok = true;
        }
    }
    sl_value_clear(&v);
    return ok;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            return SL_EIO;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Replaces dir/meta.json by one holding id: a crash leaves the old file or the new one. */
static int save_meta(const char *dir, const char *path, const char *id)
{
    char ts[32];
    sl_timestamp_format((int64_t)sl_wall_ms(), ts, sizeof(ts));
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_buf_printf(&b, "{\"uuid\":\"%s\",\"first_start\":\"%s\"}\n", id, ts);
    struct sl_buf tmp;
    sl_buf_init(&tmp, 0);
    sl_buf_printf(&tmp, "%s.tmp", path);
    int rc = SL_EIO;
    int fd = open(sl_buf_cstr(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        goto out;
    }
    if (write_all(fd, b.data, b.len) != 0 || fsync(fd) != 0) {
        close(fd);
        unlink(sl_buf_cstr(&tmp));
        goto out;
    }
    close(fd);
    if (rename(sl_buf_cstr(&tmp), path) != 0) {
        unlink(sl_buf_cstr(&tmp));
        goto out;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    rc = 0;
out:
    sl_buf_free(&tmp);
    sl_buf_free(&b);
    return rc;
}

int agent_id_load(const char *dir, char out[AGENT_UUID_LEN + 1])
{
    struct sl_buf path, text;
    sl_buf_init(&path, 0);
    sl_buf_init(&text, META_MAX);
    sl_buf_printf(&path, "%s/%s", dir, AGENT_META_FILE);
    const char *p = sl_buf_cstr(&path);
    int rc = sl_file_read(p, META_MAX, &text);
    if (rc == 0 && parse_meta(&text, out)) {
        goto out;
    }
    if (rc != ENOENT) {
        sl_warn("agent: %s is %s; replacing it with a new agent.id", p,
                rc == 0 || rc == EFBIG ? "not a meta.json with a uuid" : "unreadable");
    }
    rc = agent_uuid_v4(out);
    if (rc != 0) {
        sl_error("agent: no random bytes for agent.id: %s", strerror(errno));
        goto out;
    }
    if (save_meta(dir, p, out) != 0) {
        sl_warn("agent: cannot save agent.id in %s: %s; this run uses %s, the next one a new id",
                p, strerror(errno), out);
    } else {
        sl_info("agent: new agent.id %s saved in %s", out, p);
    }
out:
    sl_buf_free(&text);
    sl_buf_free(&path);
    return rc;
}
