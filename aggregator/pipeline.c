/*
 * pipeline.c - filters on worker threads, then fan-out to every output on the
 * loop thread, then one completion.
 *
 * Threads. The loop thread cuts each submitted batch into slices of at most
 * pipeline.batch_size events and appends them to a work queue (mutex +
 * condvar); `pipeline.workers` threads pop slices, run every filter over their
 * events and append them to a completion list, waking the loop with an async
 * handle. Back on the loop, a job whose last slice came back is "filtered";
 * it goes to the outputs when every job submitted before it with the same
 * agg_order has gone (per-connection order, whatever finished filtering
 * first). Nothing else is shared with the workers: a slice's events belong to
 * the worker holding it, and the filter counters are atomic.
 *
 * Each job counts the verdicts it still waits for: one per output plus one
 * held by the submitting code itself, so an output that calls done() from
 * inside submit() cannot complete the job while the fan-out loop is still
 * using it. Jobs sit on a list so that an exit after the shutdown deadline
 * can free what never completed.
 *
 * Not here: retries (outputs retry transient failures themselves and report
 * only final verdicts) and ACK ordering (the listener's business).
 */
#include "pipeline.h"

#include <pthread.h>
#include <signal.h>
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

struct agg_job;

/* One output's part of a job: done_arg for that output's done(). */
struct job_out {
    struct agg_job *job;
    size_t idx;
    double start;       /* seconds, monotonic */
    bool done;
};

/*
 * A slice of a job's batch (at most pipeline.batch_size events) that one
 * worker filters. Slices of one job may run on different workers at once:
 * they touch disjoint events.
 */
struct task {
    struct agg_job *job;
    size_t off, n;
    struct task *next;  /* on the work queue or the filtered list */
};

struct agg_job {
    struct agg_pipeline *p;
    struct sl_batch *batch;
    agg_batch_done done;
    void *arg;
    struct agg_order *order;  /* NULL: no ordering constraint */
    struct agg_job *onext;    /* next on order's list */
    struct task *tasks;       /* ntasks slices */
    size_t ntasks;
    size_t tasks_left;  /* slices not yet back from the workers (loop thread only) */
    bool filtered;      /* every slice is back: may go to the outputs when its turn comes */
    size_t waiting;     /* verdicts still to come, +1 while submit() runs */
    int status;         /* first non-OK verdict */
    size_t nkept;       /* events not dropped by a filter */
    struct agg_job *prev, *next;
    struct job_out outs[];
};

struct agg_pipeline {
    struct sl_loop *loop;
    struct stage *filters;
    size_t nfilters;
    struct stage *outputs;
    size_t noutputs;
    struct agg_job *jobs;   /* in flight (loop thread only) */
    size_t njobs;
    bool stopping;
    size_t batch_size;      /* events per slice */

    /* The workers. Everything below mu is shared with them and read or written
     * only with mu held; the loop thread never waits on anything else. */
    size_t want_workers;
    pthread_t *threads;
    size_t nthreads;         /* started; 0 until the first batch that needs filtering */
    bool started;
    struct sl_async *async;  /* a worker's "slices are filtered" wake-up of the loop */
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* work arrived, or quit */
    struct task *qhead, *qtail;  /* to filter */
    struct task *dhead, *dtail;  /* filtered, for the loop */
    bool quit;
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
    struct sl_plugin_env env = {.loop = loop, .metrics = metrics, .id = pc->id,
                                .check_only = conf->check_only};
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
    p->batch_size = (size_t)(conf->batch_size > 0 ? conf->batch_size : 512);
    p->want_workers = (size_t)(conf->workers > 0 ? conf->workers : 1);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
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

static void job_unlink(struct agg_job *j)
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

static void job_free(struct agg_job *j)
{
    free(j->tasks);
    free(j);
}

/* Drops one of the verdicts the job waits for; the last one completes it. */
static void job_release(struct agg_job *j)
{
    if (--j->waiting > 0) {
        return;
    }
    job_unlink(j);
    agg_batch_done done = j->done;
    void *arg = j->arg;
    int status = j->status;
    job_free(j);
    done(arg, status);
}

static void output_done(void *done_arg, int status)
{
    struct job_out *o = done_arg;
    struct agg_job *j = o->job;
    struct stage *s = &j->p->outputs[o->idx];
    if (o->done) {
        /* A plugin bug; counting it twice would complete a job still in use. */
        sl_error("%s: reported a verdict twice for one batch (ignored)", s->id);
        return;
    }
    o->done = true;
    sl_hist_observe(s->seconds, now_seconds() - o->start);
    if (status == SL_OK) {
        if (!(s->plugin->flags & SL_PLUGIN_COUNTS_OK)) {
            sl_counter_add(s->ok, j->nkept);
        }
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
 * Step 2, "filtered batch ready": always on the loop thread, called for each
 * job in its order's turn (order_release) once the workers are done with it.
 */
static void batch_filtered(struct agg_job *j)
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

/*
 * Hands the filtered jobs at the head of o to the outputs, in submit order: a
 * later window that finished filtering first waits for the earlier ones.
 */
static void order_release(struct agg_order *o)
{
    while (o->head && o->head->filtered) {
        struct agg_job *j = o->head;
        o->head = j->onext;
        if (!o->head) {
            o->tail = NULL;
        }
        bool more = o->head != NULL;
        batch_filtered(j);
        if (!more) {
            /* That was the owner's last batch in flight: its completion may have
             * freed o (the owner keeps o alive only while batches are pending). */
            return;
        }
    }
}

/* A job's filters are done: it goes to the outputs now, or when its turn comes. */
static void job_filtered(struct agg_job *j)
{
    j->filtered = true;
    if (j->order) {
        order_release(j->order);
    } else {
        batch_filtered(j);
    }
}

/* Step 1: the filters, in order, on every event still alive of events[0..n). Runs on a
 * worker (or on the loop when no worker could be started). */
static void run_filters(struct agg_pipeline *p, struct sl_value *events, size_t n)
{
    for (size_t f = 0; f < p->nfilters; f++) {
        struct stage *s = &p->filters[f];
        for (size_t i = 0; i < n; i++) {
            struct sl_value *ev = &events[i];
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

/* ---- workers ---- */

static void *worker_main(void *arg)
{
    struct agg_pipeline *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && !p->qhead) {
            pthread_cond_wait(&p->cv, &p->mu);
        }
        if (p->quit) {
            break;  /* slices still queued are dropped with their jobs by agg_pipeline_free */
        }
        struct task *t = p->qhead;
        p->qhead = t->next;
        if (!p->qhead) {
            p->qtail = NULL;
        }
        pthread_mutex_unlock(&p->mu);

        run_filters(p, t->job->batch->events + t->off, t->n);

        pthread_mutex_lock(&p->mu);
        t->next = NULL;
        bool wake = p->dhead == NULL;  /* otherwise a wake-up is already on its way */
        if (p->dtail) {
            p->dtail->next = t;
        } else {
            p->dhead = t;
        }
        p->dtail = t;
        if (wake) {
            sl_async_send(p->async);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* The loop's side of the completion queue: slices the workers finished. */
static void on_filtered(struct sl_loop *loop, void *arg)
{
    struct agg_pipeline *p = arg;
    pthread_mutex_lock(&p->mu);
    struct task *t = p->dhead;
    p->dhead = p->dtail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (t) {
        /* Read before the job can complete: completing frees its slices. */
        struct task *next = t->next;
        struct agg_job *j = t->job;
        if (--j->tasks_left == 0) {
            job_filtered(j);
        }
        t = next;
    }
}

/*
 * Started with the first batch that has filters to run, so `-t` and
 * filter-less pipelines cost no threads. Workers block every signal: the loop
 * thread takes them through signalfd. Returns the number running.
 */
static size_t start_workers(struct agg_pipeline *p)
{
    if (p->started) {
        return p->nthreads;
    }
    p->started = true;
    p->async = sl_async_new(p->loop, on_filtered, p);
    p->threads = sl_calloc(p->want_workers, sizeof(*p->threads));
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (size_t i = 0; i < p->want_workers; i++) {
        int rc = pthread_create(&p->threads[p->nthreads], NULL, worker_main, p);
        if (rc != 0) {
            sl_error("pipeline: cannot start filter worker %zu of %zu: %s", i + 1,
                     p->want_workers, strerror(rc));
            break;
        }
        char name[32];
        snprintf(name, sizeof(name), "sl-filter-%zu", i);
        name[15] = '\0';  /* the kernel's limit for a thread name */
        pthread_setname_np(p->threads[p->nthreads], name);
        p->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (p->nthreads == 0) {
        sl_error("pipeline: no filter worker could start; filtering on the I/O thread");
    }
    return p->nthreads;
}

static void stop_workers(struct agg_pipeline *p)
{
    if (!p->started) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->quit = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->nthreads; i++) {
        pthread_join(p->threads[i], NULL);
    }
    free(p->threads);
    p->threads = NULL;
    p->nthreads = 0;
    sl_async_free(p->async);
    p->async = NULL;
}

void agg_pipeline_submit(struct agg_pipeline *p, struct sl_batch *batch, struct agg_order *order,
                         agg_batch_done done, void *arg)
{
    struct agg_job *j = sl_calloc(1, sizeof(*j) + p->noutputs * sizeof(j->outs[0]));
    j->p = p;
    j->batch = batch;
    j->done = done;
    j->arg = arg;
    j->order = order;
    j->waiting = 1;
    j->status = SL_OK;
    j->next = p->jobs;
    if (p->jobs) {
        p->jobs->prev = j;
    }
    p->jobs = j;
    p->njobs++;
    if (order) {
        if (order->tail) {
            order->tail->onext = j;
        } else {
            order->head = j;
        }
        order->tail = j;
    }
    if (p->nfilters == 0 || batch->n == 0) {
        job_filtered(j);
        return;
    }
    if (start_workers(p) == 0) {
        run_filters(p, batch->events, batch->n);
        job_filtered(j);
        return;
    }
    /* A window larger than batch_size is cut into slices that workers filter in
     * parallel; the window goes to the outputs whole, once its last slice is back. */
    j->ntasks = (batch->n + p->batch_size - 1) / p->batch_size;
    j->tasks = sl_calloc(j->ntasks, sizeof(*j->tasks));
    j->tasks_left = j->ntasks;
    for (size_t i = 0; i < j->ntasks; i++) {
        struct task *t = &j->tasks[i];
        t->job = j;
        t->off = i * p->batch_size;
        t->n = SL_MIN(p->batch_size, batch->n - t->off);
        t->next = i + 1 < j->ntasks ? &j->tasks[i + 1] : NULL;
    }
    /* The queue needs no bound of its own: the listener stops reading once
     * pipeline.max_pending_events events are in flight, which bounds it. Pushing
     * therefore never blocks the loop. */
    pthread_mutex_lock(&p->mu);
    if (p->qtail) {
        p->qtail->next = &j->tasks[0];
    } else {
        p->qhead = &j->tasks[0];
    }
    p->qtail = &j->tasks[j->ntasks - 1];
    if (j->ntasks == 1) {
        pthread_cond_signal(&p->cv);
    } else {
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
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
    /* Workers before the filters they run; a slice being filtered is finished
     * first (bounded by the filters' own time limits), queued ones are dropped. */
    stop_workers(p);
    /* Plugins first: one may still report verdicts while it tears down. */
    for (size_t i = 0; i < p->noutputs; i++) {
        stage_free(&p->outputs[i]);
    }
    for (size_t i = 0; i < p->nfilters; i++) {
        stage_free(&p->filters[i]);
    }
    while (p->jobs) {
        struct agg_job *j = p->jobs;
        sl_warn("dropping a batch of %zu events that no output finished before exit",
                j->batch->n);
        job_unlink(j);
        job_free(j);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->filters);
    free(p->outputs);
    free(p);
}
