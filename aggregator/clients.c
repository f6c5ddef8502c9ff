/*
 * clients.c - per-client series behind a cap: a chained hash table of labels,
 * each with its three series, its open connections and since when it has had
 * none. "other" is kept apart: it is created the first time the cap turns a
 * client away and never forgotten. A sweep walks the table at most every
 * SWEEP_MS (the table holds at most `max` entries, 1,000 by default).
 */
#include "clients.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/common.h"

#define EVENTS_NAME "sluice_aggregator_client_events_total"
#define EVENTS_HELP "Events received from each client (IP address, or certificate CN with mTLS)."
#define ACKED_NAME "sluice_aggregator_client_events_acked_total"
#define ACKED_HELP "Events acknowledged to each client."
#define CONNS_NAME "sluice_aggregator_client_connections"
#define CONNS_HELP "Open connections of each client."

#define LABEL_MAX 128     /* a CN is at most 64 characters, an IPv6 address 45 */
#define SWEEP_MS 10000    /* at most that much later than forget_ms, at most that often */

struct agg_client {
    char *label;
    struct sl_metric *m_events, *m_acked, *m_conns;
    size_t nconns;
    uint64_t idle_since;  /* when nconns went to 0 */
    uint32_t hash;
    struct agg_client *next;  /* in its bucket */
};

struct agg_clients {
    struct sl_metrics *metrics;
    struct agg_client **buckets;
    size_t nbuckets;          /* a power of two */
    size_t n;                 /* entries, "other" not included */
    struct agg_client *other; /* NULL until the cap first turns someone away */
    size_t max;
    uint64_t forget_ms;
    uint64_t last_sweep;
};

static uint32_t hash_label(const char *s)
{
    uint32_t h = 2166136261u;  /* FNV-1a */
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 16777619u;
    }
    return h;
}

static struct agg_client *client_new(struct agg_clients *cs, const char *label, uint32_t hash)
{
    struct agg_client *c = sl_calloc(1, sizeof(*c));
    c->label = sl_strndup(label, strnlen(label, LABEL_MAX));
    c->hash = hash;
    const char *const labels[] = {"client", c->label, NULL};
    if (cs->metrics) {
        c->m_events = sl_metrics_counter(cs->metrics, EVENTS_NAME, EVENTS_HELP, labels);
        c->m_acked = sl_metrics_counter(cs->metrics, ACKED_NAME, ACKED_HELP, labels);
        c->m_conns = sl_metrics_gauge(cs->metrics, CONNS_NAME, CONNS_HELP, labels);
    }
    return c;
}

static void client_free(struct agg_clients *cs, struct agg_client *c)
{
    sl_metrics_remove(cs->metrics, c->m_events);
    sl_metrics_remove(cs->metrics, c->m_acked);
    sl_metrics_remove(cs->metrics, c->m_conns);
    free(c->label);
    free(c);
}

struct agg_clients *agg_clients_new(struct sl_metrics *metrics)
{
    struct agg_clients *cs = sl_calloc(1, sizeof(*cs));
    cs->metrics = metrics;
    cs->nbuckets = 64;
    cs->buckets = sl_calloc(cs->nbuckets, sizeof(*cs->buckets));
    cs->max = 1000;
    cs->forget_ms = 3600 * 1000;
    return cs;
}

void agg_clients_free(struct agg_clients *cs)
{
    if (!cs) {
        return;
    }
    for (size_t i = 0; i < cs->nbuckets; i++) {
        while (cs->buckets[i]) {
            struct agg_client *c = cs->buckets[i];
            cs->buckets[i] = c->next;
            client_free(cs, c);
        }
    }
    if (cs->other) {
        client_free(cs, cs->other);
    }
    free(cs->buckets);
    free(cs);
}

void agg_clients_limits(struct agg_clients *cs, size_t max, uint64_t forget_ms)
{
    cs->max = max;
    cs->forget_ms = forget_ms;
}

static void grow(struct agg_clients *cs)
{
    size_t nb = cs->nbuckets * 2;
    struct agg_client **b = sl_calloc(nb, sizeof(*b));
    for (size_t i = 0; i < cs->nbuckets; i++) {
        while (cs->buckets[i]) {
            struct agg_client *c = cs->buckets[i];
            cs->buckets[i] = c->next;
            c->next = b[c->hash & (nb - 1)];
            b[c->hash & (nb - 1)] = c;
        }
    }
    free(cs->buckets);
    cs->buckets = b;
    cs->nbuckets = nb;
}

static struct agg_client *find_or_add(struct agg_clients *cs, const char *label)
{
    char key[LABEL_MAX + 1];
    snprintf(key, sizeof(key), "%s", label);
    /* A client cannot pass for the overflow series by naming itself "other". */
    if (strcmp(key, AGG_CLIENT_OTHER) == 0) {
        snprintf(key, sizeof(key), "%s_", AGG_CLIENT_OTHER);
    }
    uint32_t h = hash_label(key);
    for (struct agg_client *c = cs->buckets[h & (cs->nbuckets - 1)]; c; c = c->next) {
        if (c->hash == h && strcmp(c->label, key) == 0) {
            return c;
        }
    }
    if (cs->n >= cs->max) {
        if (!cs->other) {
            cs->other = client_new(cs, AGG_CLIENT_OTHER, 0);
        }
        return cs->other;
    }
    if (cs->n >= cs->nbuckets) {
        grow(cs);
    }
    struct agg_client *c = client_new(cs, key, h);
    c->next = cs->buckets[h & (cs->nbuckets - 1)];
    cs->buckets[h & (cs->nbuckets - 1)] = c;
    cs->n++;
    return c;
}

struct agg_client *agg_clients_get(struct agg_clients *cs, const char *label)
{
    struct agg_client *c = find_or_add(cs, label);
    c->nconns++;
    sl_gauge_set(c->m_conns, (double)c->nconns);
    return c;
}

void agg_clients_put(struct agg_clients *cs, struct agg_client *c, uint64_t now_ms)
{
    (void)cs;
    if (!c || c->nconns == 0) {
        return;
    }
    c->nconns--;
    sl_gauge_set(c->m_conns, (double)c->nconns);
    if (c->nconns == 0) {
        c->idle_since = now_ms;
    }
}

void agg_client_received(struct agg_client *c, uint64_t events)
{
    if (c) {
        sl_counter_add(c->m_events, events);
    }
}

void agg_client_acked(struct agg_client *c, uint64_t events)
{
    if (c) {
        sl_counter_add(c->m_acked, events);
    }
}

const char *agg_client_label(const struct agg_client *c)
{
    return c->label;
}

void agg_clients_sweep(struct agg_clients *cs, uint64_t now_ms)
{
    uint64_t every = SL_MIN(cs->forget_ms, (uint64_t)SWEEP_MS);
    if (cs->forget_ms == 0 || cs->n == 0 || now_ms - cs->last_sweep < every) {
        return;
    }
    cs->last_sweep = now_ms;
    for (size_t i = 0; i < cs->nbuckets; i++) {
        struct agg_client **pp = &cs->buckets[i];
        while (*pp) {
            struct agg_client *c = *pp;
            if (c->nconns == 0 && now_ms - c->idle_since >= cs->forget_ms) {
                *pp = c->next;
                client_free(cs, c);
                cs->n--;
            } else {
                pp = &c->next;
            }
        }
    }
}

size_t agg_clients_count(const struct agg_clients *cs)
{
    return cs->n;
}
