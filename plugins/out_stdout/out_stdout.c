/*
 * out_stdout.c - the `stdout` output: each event as one JSON line on standard
 * output, a whole batch in one buffer and (normally) one write(). For
 * debugging and for running under a supervisor that collects stdout; a
 * reader that stops reading stalls the loop thread, as with any pipe.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "sluice/buf.h"
#include "sluice/log.h"
#include "sluice/plugin.h"

struct out_stdout {
    /* options */
    bool metadata;

    /* state */
    struct sl_plugin_ctx *ctx;
};

static const struct sl_opt stdout_opts[] = {
    {.name = "metadata", .type = SL_OPT_BOOL, .def = "true",
     .offset = offsetof(struct out_stdout, metadata),
     .doc = "write the top-level @metadata object; false leaves it out"},
    {0},
};

static void stdout_submit(void *inst, struct sl_batch *b)
{
    struct out_stdout *o = inst;
    struct sl_lines lines = {0};
    int status = SL_OK;
    for (size_t i = 0; i < b->n; i++) {
        sl_lines_add(&lines, b, i);
    }
    if (sl_writev_all(STDOUT_FILENO, lines.v, lines.n) != 0) {
        sl_error("%s: cannot write to stdout: %s", o->ctx->id, strerror(errno));
        status = SL_EIO;
    }
    sl_lines_free(&lines);
    sl_batch_done(b, status);
}

static int stdout_init(void *inst, struct sl_plugin_ctx *ctx)
{
    struct out_stdout *o = inst;
    o->ctx = ctx;
    sl_output_encoding(ctx, &(struct sl_encoding){.metadata = o->metadata});
    return 0;
}

const struct sl_plugin sl_plugin_out_stdout = {
    .name = "stdout",
    .kind = SL_PLUGIN_OUTPUT,
    .summary = "writes each event as one JSON line to standard output",
    .options = stdout_opts,
    .size = sizeof(struct out_stdout),
    .init = stdout_init,
    .submit = stdout_submit,
};
