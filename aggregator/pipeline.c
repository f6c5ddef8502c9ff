/*
 * pipeline.c - parsing, filters, routing and encoding on worker threads, then
 * fan-out to every output on the loop thread, then one completion.
 *
 * Threads. The loop thread cuts each submitted batch into slices of at most
 * pipeline.batch_size events and appends them to a work queue (mutex +
 * condvar); `pipeline.workers` threads pop slices, parse their raw texts into
 * the slice's arena, run every filter over their events, route them, encode
 * them for the outputs that asked to, and append the slices to a completion
 * list, waking the loop with an async handle. Back on the loop, a job whose last slice came back is "filtered";
 * it goes to the outputs when every job submitted before it with the same
 * agg_order has gone (per-connection order, whatever finished filtering
 * first). Nothing else is shared with the workers: a slice's events belong to
 * the worker holding it, and the filter counters are atomic (a filter's
 * duration histogram is counted on the worker's stack and added per slice).
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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "condition.h"
#include "ftimer.h"
#include "instance.h"
#include "sluice/json.h"
#include "sluice/log.h"

struct agg_job;

/* One output's part of a job: its view of the batch and the core's bookkeeping. */
struct job_out {
    struct agg_batch_core core;  /* first: sl_batch.core points here */
    struct sl_batch batch;
    struct agg_job *job;
};

/*
 * A slice of a job's batch (at most pipeline.batch_size events) that one
 * worker works on. Slices of one job may run on different workers at once:
 * they touch disjoint events, and each has its own arena and buffer.
 */
struct task {
    struct agg_job *job;
    size_t off, n;
    struct task *next;     /* on the work queue or the filtered list */
    struct sl_arena arena; /* the trees parsed from the slice's raw texts */
    struct sl_buf enc;     /* the slice's encoded events (agg_enc points into it) */
    int bad_rc;            /* a raw text that is not a JSON object (0: none) */
    size_t bad_index;
    char bad_why[96];
    int dlq_rc;            /* a too-large event could not be dead-lettered (0: fine) */
};

/* Root keys that filters, conditions and outputs of a partial pipeline touch, at most. */
#define CLAIM_KEYS 16

/* First chunk of a slice's arena: about one parsed Beats event per KiB. */
#define SLICE_ARENA_CHUNK (64u * 1024)

struct agg_job {
    struct agg_pipeline *p;
    struct agg_input *in;
    struct sl_batch *batch;   /* &in->batch */
    agg_batch_done done;
    void *arg;
    struct agg_order *order;  /* NULL: no ordering constraint */
    struct agg_job *onext;    /* next on order's list */
    struct task *tasks;       /* ntasks slices */
    size_t ntasks;
    size_t tasks_left;  /* slices not yet back from the workers (loop thread only) */
    bool unpacking;     /* tasks is the one task that runs in->unpack */
    bool filtered;      /* every slice is back: may go to the outputs when its turn comes */
    size_t waiting;     /* verdicts still to come, +1 while submit() runs */
    int status;         /* first non-OK verdict */
    uint8_t *take;      /* routing: noutputs rows of batch->n (NULL: every output takes all) */
    uint8_t *touched;   /* raw: batch->n flags, a filter ran on the event */
    struct agg_enc *enc; /* noutputs rows of batch->n (NULL: no output is encoded) */
    struct agg_job *prev, *next;
    struct job_out outs[];
};

struct agg_pipeline {
    struct sl_loop *loop;
    struct sl_instance **filters;
    size_t nfilters;
    struct sl_instance **outputs;
    size_t noutputs;
    bool routing;           /* some output has `when` or `else` */
    bool encoding;          /* some output declared an encoding */
    /* Every filter, condition and output said which root keys it touches (at
     * most CLAIM_KEYS in all, in claims): event texts are validated and only
     * those members parsed (parse_slice). */
    bool partial;
    struct sl_bytes claims[CLAIM_KEYS];
    uint32_t claim_heads[CLAIM_KEYS];  /* sl_key_head of each */
    uint64_t claim_bloom;              /* claim_bit of each: most other keys miss it */
    size_t nclaims;
    bool claims_full;
    struct agg_job *jobs;   /* in flight (loop thread only) */
    size_t njobs;
    bool stopping;
    size_t batch_size;      /* events per slice */
    size_t max_event_memory; /* a parsed event's tree beyond its text's length */
    struct sl_metric *m_too_large;
    atomic_uint_least64_t too_large_logged_ms; /* last warning (workers race for it) */

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
    size_t queued;               /* tasks between qhead and qtail */
    struct task *dhead, *dtail;  /* filtered, for the loop */
    bool quit;
};

static void tasks_free(struct agg_job *j);
static void job_unpacked(struct agg_job *j, int rc);

/*
 * Metric labels: an instance's `id:`, else its plugin's name, made unique
 * by position ("grok", "grok_2") so two instances are never one series.
 */
static char *default_label(struct agg_plugin_conf *pcs, size_t n, size_t i)
{
    const char *name = pcs[i].plugin->name;
    size_t same = 0;
    for (size_t k = 0; k < i; k++) {
        same += strcmp(pcs[k].plugin->name, name) == 0 && !agg_instance_given_id(pcs[k].opts);
    }
    char buf[96];
    if (same == 0) {
        snprintf(buf, sizeof(buf), "%s", name);
    } else {
        snprintf(buf, sizeof(buf), "%s_%zu", name, same + 1);
    }
    return sl_strdup(buf);
}

/* Two instances with one `id:` would merge their series: refused. */
static void check_ids(struct sl_cfg *cfg, struct agg_plugin_conf *pcs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *id = agg_instance_given_id(pcs[i].opts);
        for (size_t k = 0; id && k < i; k++) {
            const char *other = agg_instance_given_id(pcs[k].opts);
            if (other && strcmp(id, other) == 0) {
                sl_cfg_error(cfg, sl_cfg_get(pcs[i].opts, "id"),
                             "%s: id '%s' is already the id of %s", pcs[i].id, id, pcs[k].id);
            }
        }
    }
}

static struct sl_instance **make_stages(struct agg_conf *conf, struct agg_plugin_conf *pcs,
                                        size_t n, struct sl_loop *loop,
                                        struct sl_metrics *metrics, bool *ok)
{
    struct sl_instance **v = sl_calloc(n ? n : 1, sizeof(*v));
    check_ids(&conf->cfg, pcs, n);
    /* Every plugin is initialised even after one failed, so -t reports all errors. */
    for (size_t i = 0; i < n; i++) {
        char *label = default_label(pcs, n, i);
        struct agg_instance_args a = {.id = pcs[i].id, .label = label, .loop = loop,
                                      .metrics = metrics, .check_only = conf->check_only,
                                      .ecs = conf->ecs};
        v[i] = agg_instance_new(pcs[i].plugin, &conf->cfg, pcs[i].opts, &a);
        *ok = *ok && v[i];
        free(label);
    }
    return v;
}

/* A key's bit in claim_bloom, from its head and length. */
static inline uint64_t claim_bit(uint32_t head, size_t len)
{
    return 1ull << ((head * 2654435761u + (uint32_t)len) >> 26);
}

/* Adds a root key to p->claims (pointing into the instance, which outlives it). */
static void claim(void *arg, const char *key, size_t len)
{
    struct agg_pipeline *p = arg;
    for (size_t i = 0; i < p->nclaims; i++) {
        if (p->claims[i].len == len && memcmp(p->claims[i].p, key, len) == 0) {
            return;
        }
    }
    if (p->nclaims == CLAIM_KEYS) {
        p->claims_full = true;
        return;
    }
    p->claim_heads[p->nclaims] = sl_key_head(key, len);
    p->claim_bloom |= claim_bit(p->claim_heads[p->nclaims], len);
    p->claims[p->nclaims++] = (struct sl_bytes){key, len};
}

static bool claim_instance(struct agg_pipeline *p, const struct sl_instance *in)
{
    if (in->when) {
        sl_condition_root_keys(in->when, claim, p);
    }
    if (in->plugin->kind == SL_PLUGIN_FILTER) {
        if (!in->touch.declared || in->touch.all) {
            return false;
        }
        for (size_t k = 0; k < in->touch.n; k++) {
            claim(p, in->touch.keys[k], strlen(in->touch.keys[k]));
        }
        if (in->fail_tags && in->fail_tags[0]) {
            claim(p, "tags", strlen("tags"));
        }
        return true;
    }
    if (!in->encoded || (in->enc.nparts > 0 && !in->enc.reads)) {
        return false;
    }
    for (size_t k = 0; in->enc.nparts > 0 && in->enc.reads[k]; k++) {
        claim(p, in->enc.reads[k], strlen(in->enc.reads[k]));
    }
    return true;
}

/* Whether every stage said which root keys it touches (then p->claims has them all). */
static bool plan_partial(struct agg_pipeline *p)
{
    if (p->noutputs == 0) {
        return false;
    }
    for (size_t i = 0; i < p->nfilters; i++) {
        if (!claim_instance(p, p->filters[i])) {
            return false;
        }
    }
    for (size_t i = 0; i < p->noutputs; i++) {
        if (!claim_instance(p, p->outputs[i])) {
            return false;
        }
    }
    return !p->claims_full;
}

struct agg_pipeline *agg_pipeline_new(struct agg_conf *conf, struct sl_loop *loop,
                                      struct sl_metrics *metrics)
{
    struct agg_pipeline *p = sl_calloc(1, sizeof(*p));
    bool ok = true;
    p->loop = loop;
    p->batch_size = (size_t)(conf->batch_size > 0 ? conf->batch_size : 512);
    p->want_workers = (size_t)(conf->workers > 0 ? conf->workers : 1);
    p->max_event_memory = (size_t)(conf->max_event_memory ? conf->max_event_memory : 16u << 20);
    p->m_too_large = sl_metrics_counter(metrics, "sluice_aggregator_events_too_large_total",
                                        "Events whose parsed form would pass "
                                        "pipeline.max_event_memory: dead-lettered by every "
                                        "output (or dropped where none has dead_letter_path).",
                                        NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->filters = make_stages(conf, conf->filters, conf->nfilters, loop, metrics, &ok);
    p->nfilters = conf->nfilters;
    p->outputs = make_stages(conf, conf->outputs, conf->noutputs, loop, metrics, &ok);
    p->noutputs = conf->noutputs;
    for (size_t i = 0; ok && i < p->noutputs; i++) {
        p->routing = p->routing || p->outputs[i]->when || p->outputs[i]->is_else;
        p->encoding = p->encoding || p->outputs[i]->encoded;
    }
    if (ok) {
        p->partial = plan_partial(p);
        sl_debug("pipeline: %s", p->partial ? "events parsed in part (every stage declared "
                                              "the fields it touches)"
                                            : "events parsed whole");
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

/*
 * Clears the events, then frees the slices' arenas. An event that came as
 * text was parsed and then changed only inside its slice's arena scope
 * (value.h): all arena memory, it needs no walk.
 */
static void job_free(struct agg_job *j)
{
    struct sl_batch *b = j->batch;
    for (size_t i = 0; i < b->n; i++) {
        if (j->in->raw) {
            b->events[i] = (struct sl_value){0};
        } else {
            sl_value_clear(&b->events[i]);
        }
    }
    tasks_free(j);
    free(j->take);
    free(j->touched);
    free(j->enc);
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

static void output_done(struct agg_batch_core *c, int status)
{
    struct job_out *o = (struct job_out *)c;  /* core is its first member */
    struct agg_job *j = o->job;
    if (status != SL_OK && j->status == SL_OK) {
        j->status = status;
    }
    job_release(j);
}

/*
 * Which output takes which of events [off, off+n): an output with `when` the
 * events its condition accepts, an `else` output those that no `when` output
 * took, any other output every event. One row of batch->n bytes per output.
 */
static void route(struct agg_pipeline *p, struct agg_job *j, size_t off, size_t n)
{
    struct sl_batch *b = j->batch;
    for (size_t e = off; e < off + n; e++) {
        const struct sl_value *ev = &b->events[e];
        if (ev->type == SL_V_NULL) {
            continue;
        }
        bool taken = false;
        for (size_t i = 0; i < p->noutputs; i++) {
            const struct sl_instance *in = p->outputs[i];
            if (in->when) {
                bool yes = sl_condition_eval(in->when, ev);
                j->take[i * b->n + e] = yes;
                taken = taken || yes;
            } else if (!in->is_else) {
                j->take[i * b->n + e] = 1;
            }
        }
        for (size_t i = 0; i < p->noutputs; i++) {
            if (p->outputs[i]->is_else) {
                j->take[i * b->n + e] = !taken;
            }
        }
    }
}

/*
 * Step 2, "filtered batch ready": always on the loop thread, called for each
 * job in its order's turn (order_release) once the workers are done with it.
 */
static void batch_filtered(struct agg_job *j)
{
    struct agg_pipeline *p = j->p;
    struct sl_batch *b = j->batch;
    for (size_t i = 0; i < j->ntasks; i++) {
        struct task *t = &j->tasks[i];
        if (t->bad_rc != 0 && j->in->bad_rc == 0) {
            /* Nothing of a batch the client must be told off for reaches an output. */
            j->in->bad_rc = t->bad_rc;
            j->in->bad_index = t->bad_index;
            snprintf(j->in->bad_why, sizeof(j->in->bad_why), "%s", t->bad_why);
        }
        if (t->dlq_rc != 0 && j->status == SL_OK) {
            j->status = t->dlq_rc;  /* an event neither delivered nor filed: no ACK */
        }
    }
    if (j->in->bad_rc != 0) {
        j->status = SL_EPROTO;
        job_release(j);
        return;
    }
    size_t live = 0;
    for (size_t i = 0; i < b->n; i++) {
        live += b->events[i].type != SL_V_NULL;
    }
    if (live == 0 || p->stopping) {
        /* Everything dropped: nothing to deliver, the window can be ACKed. Stopping:
         * outputs no longer take batches, so this one must not be ACKed. */
        j->status = p->stopping ? SL_ECLOSED : j->status;
        job_release(j);
        return;
    }
    for (size_t i = 0; i < p->noutputs; i++) {
        struct job_out *o = &j->outs[i];
        o->job = j;
        agg_batch_prepare(&o->batch, &o->core, p->outputs[i], b->events, b->n,
                          j->take ? j->take + i * b->n : NULL, output_done);
        if (j->enc && p->outputs[i]->encoded) {
            o->core.enc = j->enc + i * b->n;
        }
    }
    /* Counted before any submit: an output may give its verdict from inside submit(). */
    for (size_t i = 0; i < p->noutputs; i++) {
        j->waiting += j->outs[i].batch.count > 0;
    }
    for (size_t i = 0; i < p->noutputs; i++) {
        struct job_out *o = &j->outs[i];
        if (o->batch.count > 0) {
            p->outputs[i]->plugin->submit(p->outputs[i]->inst, &o->batch);
        }
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

/*
 * The filters, in order, on every event still alive of events[0..n); touched
 * (when not NULL) gets 1 for each event a filter ran on. The verdicts are
 * counted on the stack and added to the filter's counters once per slice.
 *
 * Each filter's run on each event is timed (its `when` included), the end of
 * one run being the start of the next; an event the condition skipped is not
 * observed. The observations are counted on the stack and reach the filter's
 * histogram once per slice, so workers share no cache line per event
 * (ftimer.h says how they stay cheap; docs/operations.md, "Filter duration").
 */
static void run_filters(struct agg_pipeline *p, struct sl_value *events, size_t n,
                        uint8_t *touched)
{
    struct agg_ftimer timer;
    for (size_t f = 0; f < p->nfilters; f++) {
        struct sl_instance *in = p->filters[f];
        bool timed = in->m_seconds != NULL;  /* a registry: not in plugin tests */
        uint64_t verdicts[3] = {0};
        if (timed) {
            agg_ftimer_start(&timer);
        }
        for (size_t i = 0; i < n; i++) {
            if (events[i].type == SL_V_NULL) {
                continue;
            }
            bool ran;
            enum sl_filter_result r = agg_instance_run(in, &events[i], &ran);
            verdicts[r == SL_FILTER_FAIL_TAGGED ? SL_FILTER_FAIL : r] += ran;
            if (touched) {
                touched[i] |= ran;
            }
            if (timed) {
                agg_ftimer_mark(&timer, ran);
            }
        }
        agg_instance_count(in, verdicts);
        if (timed) {
            agg_ftimer_finish(&timer, in->m_seconds);
        }
    }
}

void agg_pipeline_filter_one(struct agg_pipeline *p, struct sl_value *ev)
{
    run_filters(p, ev, 1, NULL);
}

static bool claimed(const struct agg_pipeline *p, const char *key, size_t len)
{
    uint32_t head = sl_key_head(key, len);
    if (!(p->claim_bloom & claim_bit(head, len))) {
        return false;
    }
    for (size_t i = 0; i < p->nclaims; i++) {
        if (p->claim_heads[i] == head && p->claims[i].len == len &&
            (len <= 4 || memcmp(p->claims[i].p + 4, key + 4, len - 4) == 0)) {
            return true;
        }
    }
    return false;
}

/*
 * A partial pipeline's event: the scanner vouched for the text, so the event
 * is an object of just the claimed root members, parsed from their spans; the
 * text's member list goes to the slice's arena for the encoder.
 */
static int scan_event(struct agg_pipeline *p, struct task *t, struct sl_value *ev,
                      struct agg_text *txt, const struct sl_json_limits *lim)
{
    struct sl_json_member ms[SL_JSON_SCAN_MEMBERS];
    size_t n;
    if (!sl_json_scan(txt->raw.p, txt->raw.len, lim, "@metadata", ms, &n, &txt->doc)) {
        return 0;
    }
    struct agg_member *am = n ? sl_arena_alloc_aligned(&t->arena, n * sizeof(*am),
                                                       _Alignof(struct agg_member)) : NULL;
    sl_value_set_object(ev);
    size_t budget = lim->max_bytes;
    for (size_t k = 0; k < n; k++) {
        const char *key = txt->raw.p + ms[k].key_off;
        am[k] = (struct agg_member){.m = ms[k], .parsed = claimed(p, key, ms[k].key_len)};
        struct sl_value v = {0};
        if (am[k].parsed) {
            /* The scanner vouched for the whole text: only the memory limit can
             * stop this parse (the members share the event's allowance). */
            struct sl_json_limits mlim = {.max_depth = lim->max_depth, .max_bytes = budget};
            size_t before = t->arena.used;
            if (sl_json_parse_arena(txt->raw.p + ms[k].val_off, ms[k].val_len, &v, &t->arena,
                                    &mlim, NULL, 0) == SL_E2BIG) {
                sl_value_clear(ev);
                return SL_E2BIG;
            }
            size_t used = t->arena.used - before;
            budget = budget > used ? budget - used : 1;
            am[k].snap = v;
            sl_value_move(sl_obj_put(ev, key, ms[k].key_len), &v);
        }
    }
    txt->members = am;
    txt->nmembers = n;
    return 1;
}

/*
 * An event whose tree would not fit in pipeline.max_event_memory (a small
 * text can expand many times: "[0,0,...]" gives a 32-byte value per 2
 * bytes). It never reaches the filters; every output files its text in its
 * dead-letter path (as a JSON string: the text was not parsed to the end, so
 * nothing vouches that it is JSON), or drops and counts it, and the rest of
 * its window goes on. A failed dead-letter write fails the window (no ACK).
 */
static void too_large(struct agg_pipeline *p, struct task *t, struct sl_bytes raw)
{
    sl_counter_inc(p->m_too_large);
    /* One line a second at most: the counter has the exact figure. */
    uint64_t now = sl_now_ms(), last = atomic_load(&p->too_large_logged_ms);
    if (now - last >= 1000 &&
        atomic_compare_exchange_strong(&p->too_large_logged_ms, &last, now)) {
        sl_warn("an event of %zu bytes would take more than %zu bytes parsed "
                "(pipeline.max_event_memory); dead-lettered, not filtered", raw.len,
                raw.len + p->max_event_memory);
    }
    struct sl_buf txt;
    sl_buf_init(&txt, 0);
    (void)sl_json_put_str(&txt, raw.p, raw.len);  /* the buffer has no maximum */
    char extra[160];
    snprintf(extra, sizeof(extra), "\"reason\":\"event_too_large\",\"bytes\":%zu,"
             "\"max_event_memory\":%zu", raw.len, p->max_event_memory);
    for (size_t i = 0; i < p->noutputs; i++) {
        int rc = agg_instance_dead_letter(p->outputs[i], txt.data, txt.len, extra);
        if (rc < 0 && t->dlq_rc == 0) {
            t->dlq_rc = rc;
        }
    }
    sl_buf_free(&txt);
}

/*
 * What the trees of a slice may take in all: twice its texts (a Beats event
 * takes about that) plus one pipeline.max_event_memory. Each event gets its
 * own text's length plus max_event_memory, within what the slice has left, so
 * a window of texts that each expand a little cannot add up to many times the
 * window either.
 */
static size_t slice_allowance(const struct agg_pipeline *p, const struct sl_value *evs, size_t n)
{
    size_t text = 0;
    for (size_t i = 0; i < n; i++) {
        text += evs[i].u.s.len;
    }
    return p->max_event_memory + 2 * text;
}

/*
 * Parses the slice's raw texts (string values) into trees in the slice's
 * arena - for a lazy pipeline, validates them and keeps only what the outputs
 * read. Stops at the first that is not a JSON object: the job then fails.
 */
static bool parse_slice(struct agg_pipeline *p, struct agg_job *j, struct task *t,
                        struct agg_text *info)
{
    struct sl_value *evs = j->batch->events + t->off;
    size_t left = slice_allowance(p, evs, t->n);
    for (size_t i = 0; i < t->n; i++) {
        struct sl_value *ev = &evs[i];
        info[i].raw = (struct sl_bytes){ev->u.s.ptr, ev->u.s.len};
        *ev = (struct sl_value){0};  /* the text is the submitter's memory */
        /* Strings take about their text's length: only structure is capped. */
        struct sl_json_limits lim = {
            .max_depth = j->in->max_depth,
            .max_bytes = SL_MAX(SL_MIN(info[i].raw.len + p->max_event_memory, left), 1)};
        size_t before = t->arena.used;
        int rc = p->partial ? scan_event(p, t, ev, &info[i], &lim) : 0;
        if (rc == 0) {
            rc = sl_json_parse_doc(info[i].raw.p, info[i].raw.len, ev, &t->arena, &lim,
                                   "@metadata", &info[i].doc, t->bad_why, sizeof(t->bad_why));
        }
        size_t used = t->arena.used - before;
        left = left > used ? left - used : 0;
        if (rc == 1) {
            continue;
        }
        if (rc == SL_E2BIG) {
            /* Left null: skipped by the filters, routing and encoding, like a drop. */
            info[i].doc = (struct sl_json_doc){0};
            too_large(p, t, info[i].raw);
            continue;
        }
        if (rc == 0 && ev->type != SL_V_OBJECT) {
            sl_value_clear(ev);
            snprintf(t->bad_why, sizeof(t->bad_why), "not a JSON object");
            rc = SL_EINVAL;
        }
        if (rc != 0) {
            t->bad_rc = rc;
            t->bad_index = t->off + i;
            return false;
        }
    }
    return true;
}

/*
 * Encodes events [off, off+n) for every output that declared an encoding,
 * into the slice's buffer; the records become pointers once it stops growing.
 */
static void encode_slice(struct agg_pipeline *p, struct agg_job *j, struct task *t,
                         struct agg_text *info)
{
    struct sl_batch *b = j->batch;
    if (info) {
        /* Room for what the texts are likely to become (filters add fields) in one
         * allocation, rather than copying the encodings at each doubling. */
        size_t text = 0, outs = 0;
        for (size_t i = 0; i < t->n; i++) {
            text += info[i].raw.len;
        }
        for (size_t o = 0; o < p->noutputs; o++) {
            outs += p->outputs[o]->encoded;
        }
        (void)sl_buf_reserve(&t->enc, outs * (text + text / 2));
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t o = 0; o < p->noutputs; o++) {
            const struct sl_instance *in = p->outputs[o];
            if (!in->encoded) {
                continue;
            }
            for (size_t i = 0; i < t->n; i++) {
                size_t e = t->off + i;
                const struct sl_value *ev = &b->events[e];
                if (ev->type == SL_V_NULL || (j->take && !j->take[o * b->n + e])) {
                    continue;
                }
                struct agg_enc *r = &j->enc[o * b->n + e];
                if (pass == 1) {
                    agg_enc_fix(in, r, &t->enc);
                } else {
                    if (info) {
                        info[i].touched = j->touched[e];
                    }
                    agg_output_encode(in, ev, info ? &info[i] : NULL, &t->enc, r);
                }
            }
        }
    }
}

/* Step 1 for one slice: parse, filter, route, encode. On a worker (or on the
 * loop when no worker could be started). */
static void work(struct agg_pipeline *p, struct task *t)
{
    struct agg_job *j = t->job;
    if (j->unpacking) {
        t->bad_rc = j->in->unpack(j->arg);
        return;
    }
    struct agg_text *info = NULL;
    /* Whatever the filters add lives in the slice's arena too (value.h). */
    struct sl_arena *scope = sl_value_set_arena(&t->arena);
    if (j->in->raw) {
        info = sl_calloc(t->n, sizeof(*info));
        if (!parse_slice(p, j, t, info)) {
            free(info);
            sl_value_set_arena(scope);
            return;
        }
    }
    run_filters(p, j->batch->events + t->off, t->n, j->touched ? j->touched + t->off : NULL);
    if (j->take) {
        route(p, j, t->off, t->n);
    }
    if (j->enc) {
        encode_slice(p, j, t, info);
    }
    free(info);
    sl_value_set_arena(scope);
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
        p->queued--;
        pthread_mutex_unlock(&p->mu);

        work(p, t);

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
        if (j->unpacking) {
            job_unpacked(j, t->bad_rc);
        } else if (--j->tasks_left == 0) {
            job_filtered(j);
        }
        t = next;
    }
}

/*
 * Started with the first batch that has work for them, so `-t` costs no
 * threads. Workers block every signal: the loop
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

static void tasks_free(struct agg_job *j)
{
    for (size_t i = 0; i < j->ntasks; i++) {
        sl_arena_free(&j->tasks[i].arena);
        sl_buf_free(&j->tasks[i].enc);
    }
    free(j->tasks);
    j->tasks = NULL;
    j->ntasks = 0;
}

static struct task *tasks_new(struct agg_job *j, size_t ntasks)
{
    j->ntasks = ntasks;
    j->tasks = sl_calloc(ntasks, sizeof(*j->tasks));
    j->tasks_left = ntasks;
    for (size_t i = 0; i < ntasks; i++) {
        struct task *t = &j->tasks[i];
        t->job = j;
        t->next = i + 1 < ntasks ? &j->tasks[i + 1] : NULL;
        sl_arena_init(&t->arena, SLICE_ARENA_CHUNK);
        sl_buf_init(&t->enc, 0);  /* bounded by its input: one window, capped by the listener */
    }
    return j->tasks;
}

/*
 * Queues the job's tasks for the workers: behind the others, or, for an
 * unpacking, in front, so that the client's next window is read while the
 * workers filter this one. The queue needs no bound of its own: the listener
 * stops reading once pipeline.max_pending_events events are in flight, which
 * bounds it. Pushing therefore never blocks the loop.
 */
static void tasks_queue(struct agg_pipeline *p, struct agg_job *j, bool first)
{
    struct task *head = &j->tasks[0], *tail = &j->tasks[j->ntasks - 1];
    pthread_mutex_lock(&p->mu);
    if (first) {
        tail->next = p->qhead;
        p->qhead = head;
        if (!p->qtail) {
            p->qtail = tail;
        }
    } else {
        if (p->qtail) {
            p->qtail->next = head;
        } else {
            p->qhead = head;
        }
        p->qtail = tail;
    }
    p->queued += j->ntasks;
    if (j->ntasks == 1) {
        pthread_cond_signal(&p->cv);
    } else {
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
}

/* The batch is known: its slices go to the workers (or are done here). */
static void job_start(struct agg_job *j)
{
    struct agg_pipeline *p = j->p;
    struct agg_input *in = j->in;
    size_t n = j->batch->n;
    if (n == 0 || (p->nfilters == 0 && !in->raw && !p->routing && !p->encoding)) {
        job_filtered(j);
        return;
    }
    if (p->routing) {
        j->take = sl_calloc(p->noutputs, n);
    }
    if (in->raw) {
        j->touched = sl_calloc(n, 1);
    }
    if (p->encoding) {
        j->enc = sl_calloc(p->noutputs * n, sizeof(*j->enc));
    }
    /* A window larger than batch_size is cut into slices that workers take in
     * parallel; the window goes to the outputs whole, once its last slice is back. */
    struct task *t = tasks_new(j, (n + p->batch_size - 1) / p->batch_size);
    for (size_t i = 0; i < j->ntasks; i++) {
        t[i].off = i * p->batch_size;
        t[i].n = SL_MIN(p->batch_size, n - t[i].off);
    }
    if (start_workers(p) == 0) {
        for (size_t i = 0; i < j->ntasks; i++) {
            work(p, &j->tasks[i]);
        }
        job_filtered(j);
        return;
    }
    tasks_queue(p, j, false);
}

/* On the loop thread: the submitter has its unpack's status and decides. */
static void job_unpacked(struct agg_job *j, int rc)
{
    tasks_free(j);
    j->unpacking = false;
    if (!j->in->unpacked(j->arg, rc)) {
        j->status = rc != SL_OK ? rc : SL_EAGAIN;
        j->batch->n = 0;  /* the submitter's to clear: nothing reaches an output */
        job_filtered(j);
        return;
    }
    job_start(j);
}

void agg_pipeline_submit(struct agg_pipeline *p, struct agg_input *in, struct agg_order *order,
                         agg_batch_done done, void *arg)
{
    struct agg_job *j = sl_calloc(1, sizeof(*j) + p->noutputs * sizeof(j->outs[0]));
    j->p = p;
    j->in = in;
    j->batch = &in->batch;
    j->done = done;
    j->arg = arg;
    j->order = order;
    j->waiting = 1;
    j->status = SL_OK;
    in->bad_rc = 0;
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
    if (!in->unpack) {
        job_start(j);
        return;
    }
    j->unpacking = true;
    tasks_new(j, 1);
    if (start_workers(p) == 0) {
        job_unpacked(j, in->unpack(arg));
        return;
    }
    tasks_queue(p, j, true);
}

bool agg_pipeline_saturated(struct agg_pipeline *p)
{
    if (!p->started || p->nthreads == 0) {
        return false;
    }
    pthread_mutex_lock(&p->mu);
    bool full = p->queued >= p->nthreads;
    pthread_mutex_unlock(&p->mu);
    return full;
}

size_t agg_pipeline_inflight(const struct agg_pipeline *p)
{
    return p->njobs;
}

void agg_pipeline_reopen(struct agg_pipeline *p)
{
    for (size_t i = 0; i < p->noutputs; i++) {
        struct sl_instance *in = p->outputs[i];
        if (in->plugin->reopen) {
            in->plugin->reopen(in->inst);
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
        struct sl_instance *in = p->outputs[i];
        if (in->plugin->shutdown) {
            in->plugin->shutdown(in->inst, deadline_ms);
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
    for (size_t i = 0; p->outputs && i < p->noutputs; i++) {
        agg_instance_free(p->outputs[i]);
    }
    for (size_t i = 0; p->filters && i < p->nfilters; i++) {
        agg_instance_free(p->filters[i]);
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
