/*
 * pipeline.c - filters, then fan-out to every output, then one completion.
 *
 * Each submitted batch becomes a job that counts the verdicts it still waits
 * for: one per output plus one held by the submitting code itself, so an
 * output that calls done() from inside submit() cannot complete the job while
 * the fan-out loop is still using it. Jobs sit on a list so that an exit
 * after the shutdown deadline can free what never completed.
 *
 * Not here: retries (outputs retry transient failures themselves and report
 * only final verdicts) and ACK ordering (the listener's business).
 */
#include "pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/condition.h"
#include "sluice/log.h"

#define FILTER_EVENTS_NAME "sluice_aggregator_filter_events_total"
#define FILTER_EVENTS_HELP "Events through each filter, by result (ok|dropped|error)."
#define OUTPUT_SECONDS_NAME "sluice_aggregator_output_request_seconds"
#define OUTPUT_SECONDS_HELP "Time from handing a batch to an output to its verdict."

struct stage {
    const struct sl_plugin *plugin;
    void *inst;
    char *id;                  /* "outputs[0] (file)" */
    struct sl_metric *ok;      /* filters: result ok; outputs: result ok */
    struct sl_metric *failed;  /* outputs: result failed */
    struct sl_metric *dropped; /* filters */
    struct sl_metric *error;   /* filters */
    struct sl_metric *seconds; /* outputs */
    struct sl_condition *when; /* filters: run only on events it accepts */
};

struct job;

/* One output's part of a job: done_arg for that output's done(). */
struct job_out {
    struct job *job;
    size_t idx;
    double start;       /* seconds, monotonic */
    bool done;
};

struct job {
    struct agg_pipeline *p;
    struct sl_batch *batch;
    agg_batch_done done;
    void *arg;
    size_t waiting;     /* verdicts still to come, +1 while submit() runs */
    int status;         /* first non-OK verdict */
    size_t nkept;       /* events not dropped by a filter */
    struct job *prev, *next;
    struct job_out outs[];
};

struct agg_pipeline {
    struct sl_loop *loop;
    struct stage *filters;
    size_t nfilters;
    struct stage *outputs;
    size_t noutputs;
    struct job *jobs;   /* in flight */
    size_t njobs;
    bool stopping;
};

/* Sub-millisecond: a file output answers in microseconds, sl_now_ms() would say 0. */
static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void stage_free(struct stage *s)
{
    if (s->plugin && s->inst) {
        s->plugin->free(s->inst);
    }
    s->inst = NULL;
    sl_condition_free(s->when);
    s->when = NULL;
    free(s->id);
    s->id = NULL;
}

static void *stage_init(struct stage *s, struct agg_conf *conf, struct agg_plugin_conf *pc,
                        struct sl_loop *loop, struct sl_metrics *metrics)
{
    struct sl_plugin_env env = {.loop = loop, .metrics = metrics, .id = pc->id};
    s->plugin = pc->plugin;
    s->id = sl_strdup(pc->id);
    struct sl_cfg_node *when = sl_cfg_get(pc->opts, "when");
    bool bad_when = false;
    if (when && pc->plugin->kind == SL_PLUGIN_FILTER) {
        /* The core, not each plugin, owns conditions: one grammar everywhere. */
        char where[128];
        snprintf(where, sizeof(where), "%s: when", pc->id);
        s->when = sl_condition_new(&conf->cfg, when, where);
        bad_when = s->when == NULL;
    }
    s->inst = pc->plugin->init(&conf->cfg, pc->opts, &env);
    if (bad_when && s->inst) {
        pc->plugin->free(s->inst);
        s->inst = NULL;
    }
    return s->inst;
}

static void output_metrics(struct stage *s, struct sl_metrics *m)
{
    const char *name = s->plugin->name;
    const char *ok[] = {"output", name, "result", "ok", NULL};
    const char *failed[] = {"output", name, "result", "failed", NULL};
    const char *lbl[] = {"output", name, NULL};
    s->ok = sl_metrics_counter(m, AGG_OUTPUT_EVENTS_NAME, AGG_OUTPUT_EVENTS_HELP, ok);
    s->failed = sl_metrics_counter(m, AGG_OUTPUT_EVENTS_NAME, AGG_OUTPUT_EVENTS_HELP, failed);
    s->seconds = sl_metrics_histogram(m, OUTPUT_SECONDS_NAME, OUTPUT_SECONDS_HELP, lbl,
                                      sl_metrics_latency_buckets, sl_metrics_latency_nbuckets);
}

static void filter_metrics(struct stage *s, struct sl_metrics *m)
{
    const char *name = s->plugin->name;
    const char *ok[] = {"filter", name, "result", "ok", NULL};
    const char *dropped[] = {"filter", name, "result", "dropped", NULL};
    const char *error[] = {"filter", name, "result", "error", NULL};
    s->ok = sl_metrics_counter(m, FILTER_EVENTS_NAME, FILTER_EVENTS_HELP, ok);
    s->dropped = sl_metrics_counter(m, FILTER_EVENTS_NAME, FILTER_EVENTS_HELP, dropped);
    s->error = sl_metrics_counter(m, FILTER_EVENTS_NAME, FILTER_EVENTS_HELP, error);
}

struct agg_pipeline *agg_pipeline_new(struct agg_conf *conf, struct sl_loop *loop,
                                      struct sl_metrics *metrics)
{
    struct agg_pipeline *p = sl_calloc(1, sizeof(*p));
    bool ok = true;
    p->loop = loop;
    p->filters = sl_calloc(conf->nfilters ? conf->nfilters : 1, sizeof(*p->filters));
    p->outputs = sl_calloc(conf->noutputs ? conf->noutputs : 1, sizeof(*p->outputs));
    /* Every plugin is initialised even after one failed, so -t reports all errors. */
    for (size_t i = 0; i < conf->nfilters; i++) {
        if (stage_init(&p->filters[i], conf, &conf->filters[i], loop, metrics)) {
            filter_metrics(&p->filters[i], metrics);
        } else {
            ok = false;
        }
        p->nfilters++;
    }
    for (size_t i = 0; i < conf->noutputs; i++) {
        if (stage_init(&p->outputs[i], conf, &conf->outputs[i], loop, metrics)) {
            output_metrics(&p->outputs[i], metrics);
        } else {
            ok = false;
        }
        p->noutputs++;
    }
    if (!ok || conf->cfg.nerrors) {
        agg_pipeline_free(p);
        return NULL;
    }
    return p;
}

static void job_unlink(struct job *j)
{
    struct agg_pipeline *p = j->p;
    if (j->prev) {
        j->prev->next = j->next;
    } else {
        p->jobs = j->next;
    }
    if (j->next) {
        j->next->prev = j->prev;
    }
    p->njobs--;
}

/* Drops one of the verdicts the job waits for; the last one completes it. */
static void job_release(struct job *j)
{
    if (--j->waiting > 0) {
        return;
    }
    job_unlink(j);
    agg_batch_done done = j->done;
    void *arg = j->arg;
    int status = j->status;
    free(j);
    done(arg, status);
}

static void output_done(void *done_arg, int status)
{
    struct job_out *o = done_arg;
    struct job *j = o->job;
    struct stage *s = &j->p->outputs[o->idx];
    if (o->done) {
        /* A plugin bug; counting it twice would complete a job still in use. */
        sl_error("%s: reported a verdict twice for one batch (ignored)", s->id);
        return;
    }
    o->done = true;
    sl_hist_observe(s->seconds, now_seconds() - o->start);
    if (status == SL_OK) {
        sl_counter_add(s->ok, j->nkept);
    } else {
        sl_counter_add(s->failed, j->nkept);
        sl_warn("%s: could not deliver a batch of %zu events (error %d); it will not be "
                "acknowledged", s->id, j->nkept, status);
        if (j->status == SL_OK) {
            j->status = status;
        }
    }
    job_release(j);
}

/*
 * Step 2, "filtered batch ready": always on the loop thread. Today it is
 * called straight from step 1; with worker threads it will be called from the
 * loop's wake-up hook for each batch a worker hands back.
 */
static void batch_filtered(struct job *j)
{
    struct agg_pipeline *p = j->p;
    struct sl_batch *b = j->batch;
    j->nkept = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->events[i].type != SL_V_NULL) {
            j->nkept++;
        }
    }
    if (j->nkept == 0 || p->stopping) {
        /* Everything dropped: nothing to deliver, the window can be ACKed. Stopping:
         * outputs no longer take batches, so this one must not be ACKed. */
        j->status = p->stopping ? SL_ECLOSED : SL_OK;
        job_release(j);
        return;
    }
    j->waiting += p->noutputs;
    for (size_t i = 0; i < p->noutputs; i++) {
        struct stage *s = &p->outputs[i];
        j->outs[i] = (struct job_out){.job = j, .idx = i, .start = now_seconds()};
        s->plugin->submit(s->inst, b, output_done, &j->outs[i]);
    }
    job_release(j);  /* the submitting code's own hold */
}

/* Step 1: the filters, in order, on every event still alive. */
static void run_filters(struct agg_pipeline *p, struct sl_batch *b)
{
    for (size_t f = 0; f < p->nfilters; f++) {
        struct stage *s = &p->filters[f];
        for (size_t i = 0; i < b->n; i++) {
            struct sl_value *ev = &b->events[i];
            if (ev->type == SL_V_NULL || (s->when && !sl_condition_eval(s->when, ev))) {
                continue;
            }
            int rc = s->plugin->filter(s->inst, ev);
            if (rc == SL_FILTER_DROP) {
                sl_value_clear(ev);
                sl_counter_inc(s->dropped);
            } else if (rc < 0) {
                /* The filter tagged the event (e.g. _grokparsefailure); it flows on. */
                sl_counter_inc(s->error);
            } else {
                sl_counter_inc(s->ok);
            }
        }
    }
}

void agg_pipeline_submit(struct agg_pipeline *p, struct sl_batch *batch, agg_batch_done done,
                         void *arg)
{
    struct job *j = sl_calloc(1, sizeof(*j) + p->noutputs * sizeof(j->outs[0]));
    j->p = p;
    j->batch = batch;
    j->done = done;
    j->arg = arg;
    j->waiting = 1;
    j->status = SL_OK;
    j->next = p->jobs;
    if (p->jobs) {
        p->jobs->prev = j;
    }
    p->jobs = j;
    p->njobs++;
    run_filters(p, batch);
    batch_filtered(j);
}

size_t agg_pipeline_inflight(const struct agg_pipeline *p)
{
    return p->njobs;
}

void agg_pipeline_reopen(struct agg_pipeline *p)
{
    for (size_t i = 0; i < p->noutputs; i++) {
        struct stage *s = &p->outputs[i];
        if (s->plugin->reopen) {
            s->plugin->reopen(s->inst);
        }
    }
}

void agg_pipeline_shutdown(struct agg_pipeline *p, uint64_t deadline_ms)
{
    if (p->stopping) {
        return;
    }
    p->stopping = true;
    for (size_t i = 0; i < p->noutputs; i++) {
        struct stage *s = &p->outputs[i];
        if (s->plugin->shutdown) {
            s->plugin->shutdown(s->inst, deadline_ms);
        }
    }
}

void agg_pipeline_free(struct agg_pipeline *p)
{
    if (!p) {
        return;
    }
    /* Plugins first: one may still report verdicts while it tears down. */
    for (size_t i = 0; i < p->noutputs; i++) {
        stage_free(&p->outputs[i]);
    }
    for (size_t i = 0; i < p->nfilters; i++) {
        stage_free(&p->filters[i]);
    }
    while (p->jobs) {
        struct job *j = p->jobs;
        sl_warn("dropping a batch of %zu events that no output finished before exit",
                j->batch->n);
        job_unlink(j);
        free(j);
    }
    free(p->filters);
    free(p->outputs);
    free(p);
}
