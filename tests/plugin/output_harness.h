/*
 * output_harness.h - what every output test needs: make the output instance
 * through the core (agg_instance_new: its options table and the core's
 * options such as when, else and dead_letter_path), hand it a batch as the
 * pipeline does (agg_batch_prepare + submit) and catch its verdict.
 * Before including it, a test defines:
 *   OUTPUT_PLUGIN  the plugin descriptor (e.g. sl_plugin_out_file)
 *   OUTPUT_KEY     the YAML key holding the options ("file")
 *   OUTPUT_ID      the id the core would give it ("outputs[0] (file)")
 */
#ifndef SLUICE_OUTPUT_HARNESS_H
#define SLUICE_OUTPUT_HARNESS_H

#include <stdlib.h>
#include <string.h>

#include "instance.h"
#include "sluice/json.h"
#include "sluice/metrics.h"
#include "sluice/plugin.h"
#include "test.h"

extern const struct sl_plugin OUTPUT_PLUGIN;
#define P OUTPUT_PLUGIN

static inline const char *errs(struct sl_cfg *cfg)
{
    return cfg->errors.data ? sl_buf_cstr(&cfg->errors) : "";
}

/*
 * Loads text (a map whose key OUTPUT_KEY holds the options) and makes the
 * instance; loop and metrics may be NULL. NULL with the errors in cfg.
 */
static inline struct sl_instance *oload(struct sl_cfg *cfg, const char *text,
                                        struct sl_loop *loop, struct sl_metrics *metrics)
{
    struct agg_instance_args a = {.id = OUTPUT_ID, .loop = loop, .metrics = metrics};
    memset(cfg, 0, sizeof(*cfg));
    if (sl_cfg_load_string(cfg, "t.yml", text, strlen(text)) != 0) {
        return NULL;
    }
    return agg_instance_new(&P, cfg, sl_cfg_get(cfg->root, OUTPUT_KEY), &a);
}

/* The core's count of events the output labelled label ended with result
 * (ok|retry|failed|dead_letter|dropped) in registry m; 0 for a series not yet made. */
static inline double oevents_total(struct sl_metrics *m, const char *label, const char *result)
{
    return sl_metric_value(sl_metrics_counter(
        m, "sluice_aggregator_output_events_total",
        "Events handled by each output, by result (ok|retry|failed|dead_letter|dropped).",
        (const char *[]){"output", label, "result", result, NULL}));
}

/* One submitted batch and the verdict it got. core must stay first. */
struct out_run {
    struct agg_batch_core core;
    struct sl_batch batch;
    bool done;
    int status;
    int ndone;  /* verdicts received: exactly one is right */
    struct agg_enc *enc;  /* an encoded output's records and their bytes, as the */
    struct sl_buf encbuf; /* pipeline's workers make them; freed with the verdict */
};

static inline void out_run_free_enc(struct out_run *r)
{
    free(r->enc);
    r->enc = NULL;
    sl_buf_free(&r->encbuf);
}

static inline void out_run_done(struct agg_batch_core *c, int status)
{
    struct out_run *r = (struct out_run *)c;
    r->done = true;
    r->status = status;
    r->ndone++;
    out_run_free_enc(r);  /* the output may not read the batch after its verdict */
}

/* Submits events[0..n) (take: NULL = all, as sl_batch.take) to in; r gets the verdict. */
static inline void osubmit(struct sl_instance *in, struct out_run *r, struct sl_value *events,
                           size_t n, const uint8_t *take)
{
    memset(r, 0, sizeof(*r));
    agg_batch_prepare(&r->batch, &r->core, in, events, n, take, out_run_done);
    if (in->encoded) {
        r->enc = calloc(n ? n : 1, sizeof(*r->enc));
        sl_buf_init(&r->encbuf, 0);
        for (int pass = 0; pass < 2; pass++) {
            for (size_t i = 0; i < n; i++) {
                if (!sl_batch_event(&r->batch, i)) {
                    continue;
                }
                if (pass == 0) {
                    agg_output_encode(in, &events[i], NULL, &r->encbuf, &r->enc[i]);
                } else {
                    agg_enc_fix(in, &r->enc[i], &r->encbuf);
                }
            }
        }
        r->core.enc = r->enc;
    }
    in->plugin->submit(in->inst, &r->batch);
}

/* Parses a JSON array of events into a calloc'd array of n values (free with ofree_events). */
static inline struct sl_value *oevents(const char *json_array, size_t *n)
{
    struct sl_value arr = {0};
    char err[128];
    if (sl_json_parse(json_array, strlen(json_array), &arr, NULL, err, sizeof(err)) != 0 ||
        arr.type != SL_V_ARRAY) {
        fprintf(stderr, "%s: bad test events: %s\n", __FILE__, err);
        abort();
    }
    struct sl_value *v = calloc(arr.u.a.len ? arr.u.a.len : 1, sizeof(*v));
    for (size_t i = 0; i < arr.u.a.len; i++) {
        sl_value_move(&v[i], &arr.u.a.items[i]);
    }
    *n = arr.u.a.len;
    sl_value_clear(&arr);
    return v;
}

static inline void ofree_events(struct sl_value *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sl_value_clear(&v[i]);
    }
    free(v);
}

#endif
