/*
 * out_stdout.c - the `stdout` output: each event as one JSON line on standard
 * output, a whole batch in one buffer and (normally) one write(). For
 * debugging and for running under a supervisor that collects stdout; a
 * reader that stops reading stalls the loop thread, as with any pipe.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/buf.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/plugin.h"

struct out_stdout {
    char *id;
    bool metadata;
};

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* stdout inherited in non-blocking mode: wait for room rather than fail. */
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            poll(&pfd, 1, 1000);
            continue;
        }
        if (w < 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void stdout_submit(void *inst, struct sl_batch *batch, sl_output_done done,
                          void *done_arg)
{
    struct out_stdout *o = inst;
    struct sl_buf b;
    int status = SL_OK;
    /* Unbounded here: its input is one window, already capped by the listener. */
    sl_buf_init(&b, 0);
    for (size_t i = 0; i < batch->n; i++) {
        if (batch->events[i].type == SL_V_NULL) {
            continue;  /* dropped by a filter */
        }
        sl_json_write(&b, &batch->events[i], o->metadata ? NULL : "@metadata");
        sl_buf_putc(&b, '\n');
    }
    if (b.len && write_all(STDOUT_FILENO, b.data, b.len) != 0) {
        sl_error("%s: cannot write to stdout: %s", o->id, strerror(errno));
        status = SL_EIO;
    }
    sl_buf_free(&b);
    done(done_arg, status);
}

static void stdout_free(void *inst)
{
    struct out_stdout *o = inst;
    if (!o) {
        return;
    }
    free(o->id);
    free(o);
}

static void *stdout_init(struct sl_cfg *cfg, struct sl_cfg_node *opts, struct sl_plugin_env *env)
{
    struct out_stdout *o = sl_calloc(1, sizeof(*o));
    int errors = cfg->nerrors;
    o->id = sl_strdup(env->id);
    sl_cfg_bool(cfg, opts, env->id, "metadata", true, &o->metadata);
    sl_cfg_check_unknown(cfg, opts, env->id);
    if (cfg->nerrors != errors) {
        stdout_free(o);
        return NULL;
    }
    return o;
}

const struct sl_plugin sl_plugin_out_stdout = {
    .name = "stdout",
    .kind = SL_PLUGIN_OUTPUT,
    .init = stdout_init,
    .free = stdout_free,
    .submit = stdout_submit,
};
