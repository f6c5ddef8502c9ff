/*
 * testpipe.c - `--test-pipeline` (see testpipe.h). The filters run through
 * the pipeline's own code, on this thread, one event at a time: what is
 * printed is what the outputs would receive.
 */
#include "testpipe.h"

#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "pipeline.h"
#include "sluice/json.h"
#include "sluice/loop.h"
#include "sluice/metrics.h"
#include "sluice/time.h"

static void print_errors(const struct sl_cfg *cfg, FILE *err)
{
    if (cfg->errors.data) {
        fwrite(cfg->errors.data, 1, cfg->errors.len, err);
    }
}

/* The event a line becomes; false (reported) when json mode finds no object. */
static bool make_event(const char *line, size_t len, bool json, struct sl_value *ev, FILE *err,
                       unsigned long lineno)
{
    if (json) {
        char why[128] = "valid JSON, but not an object";
        if (sl_json_parse(line, len, ev, NULL, why, sizeof(why)) != 0 ||
            ev->type != SL_V_OBJECT) {
            fprintf(err, "line %lu: not a JSON object (%s); skipped\n", lineno, why);
            sl_value_clear(ev);
            return false;
        }
        return true;
    }
    char ts[32];
    sl_timestamp_format((int64_t)sl_wall_ms(), ts, sizeof(ts));
    sl_value_set_object(ev);
    sl_value_set_cstr(sl_obj_putc(ev, "@timestamp"), ts);
    sl_value_set_str(sl_obj_putc(ev, "message"), line, len);
    return true;
}

/*
 * Reads one line into line (at most max bytes kept, NUL-terminated). Returns
 * its length, -1 at the end of input, or -2 for a line longer than max, which
 * is read to its end but not kept: a huge line costs no memory.
 */
static ssize_t read_line(FILE *in, struct sl_buf *line, size_t max)
{
    sl_buf_reset(line);
    bool any = false, over = false;
    int c;
    while ((c = getc(in)) != EOF) {
        any = true;
        if (c == '\n') {
            break;
        }
        if (line->len < max) {
            sl_buf_putc(line, (char)c);
        } else {
            over = true;
        }
    }
    if (!any) {
        return -1;
    }
    sl_buf_cstr(line);
    return over ? -2 : (ssize_t)line->len;
}

int agg_test_pipeline(const char *config, bool json, FILE *in, FILE *out, FILE *err)
{
    struct agg_conf conf;
    int rc = 0;
    struct sl_loop *loop = sl_loop_new();
    struct sl_metrics *metrics = sl_metrics_new();
    struct agg_pipeline *p = NULL;
    struct sl_buf line;
    sl_buf_init(&line, 0);
    if (agg_conf_load(&conf, config) == 0 || conf.cfg.root) {
        conf.check_only = true;  /* outputs are checked, never opened */
        p = agg_pipeline_new(&conf, loop, metrics);
    }
    if (!p) {
        print_errors(&conf.cfg, err);
        rc = 2;
        goto out;
    }
    unsigned long lineno = 0, nin = 0, nout = 0;
    ssize_t n;
    struct sl_buf b;
    sl_buf_init(&b, 0);
    size_t max = (size_t)SL_MIN(conf.max_frame_bytes, (uint64_t)SIZE_MAX / 2);
    while ((n = read_line(in, &line, max)) != -1) {
        lineno++;
        if (n == -2) {
            fprintf(err, "line %lu: longer than input.max_frame_bytes; skipped\n", lineno);
            rc = 1;
            continue;
        }
        size_t len = (size_t)n;
        while (len > 0 && line.data[len - 1] == '\r') {
            len--;
        }
        struct sl_value ev = {0};
        if (!make_event(line.data ? line.data : "", len, json, &ev, err, lineno)) {
            rc = 1;
            continue;
        }
        nin++;
        agg_pipeline_filter_one(p, &ev);
        if (ev.type != SL_V_NULL) {
            nout++;
            sl_buf_reset(&b);
            sl_json_write_pretty(&b, &ev);
            sl_buf_putc(&b, '\n');
            fwrite(b.data, 1, b.len, out);
            fflush(out);
        }
        sl_value_clear(&ev);
    }
    sl_buf_free(&b);
    fprintf(err, "%lu event(s) in, %lu out, %lu dropped\n", nin, nout, nin - nout);
out:
    sl_buf_free(&line);
    agg_pipeline_free(p);
    agg_conf_free(&conf);
    sl_metrics_free(metrics);
    sl_loop_free(loop);
    return rc;
}
