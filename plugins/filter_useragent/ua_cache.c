/*
 * ua_cache.c - a sharded LRU map from user-agent strings to parse results.
 * Each shard: a chained hash table over its entries and a doubly linked list
 * in use order (head: most recent), under one mutex. The hash picks the shard
 * with its top bits and the bucket with its low ones.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/common.h"
#include "ua_cache.h"

#define SHARDS 16u

/* One allocation: the entry, its key, then the result's strings (r points
 * into it), so an entry costs its bytes and one allocator header. */
struct entry {
    struct entry *hnext;         /* bucket chain */
    struct entry *prev, *next;   /* use order */
    uint64_t hash;
    struct uap_result r;
    size_t klen;
    char key[];
};

struct shard {
    pthread_mutex_t mu;
    struct entry **bucket;
    size_t mask;                 /* buckets - 1 */
    struct entry *head, *tail;
    size_t n, cap;
};

struct ua_cache {
    unsigned nshards;            /* 1 or SHARDS: a small cache is one exact LRU */
    struct shard s[SHARDS];
};

struct ua_cache *ua_cache_new(size_t capacity)
{
    struct ua_cache *c = sl_calloc(1, sizeof(*c));
    unsigned ns = capacity >= 64u * SHARDS ? SHARDS : 1;
    c->nshards = ns;
    size_t per = capacity / ns + (capacity % ns != 0);
    for (unsigned i = 0; i < ns; i++) {
        struct shard *sh = &c->s[i];
        pthread_mutex_init(&sh->mu, NULL);
        /* The shards' capacities add up to capacity exactly. */
        sh->cap = capacity / ns + (i < capacity % ns);
        size_t nb = 1;
        while (nb < per) {
            nb <<= 1;
        }
        sh->bucket = sl_calloc(nb, sizeof(*sh->bucket));
        sh->mask = nb - 1;
    }
    return c;
}

void ua_cache_free(struct ua_cache *c)
{
    if (!c) {
        return;
    }
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *sh = &c->s[i];
        for (struct entry *e = sh->head, *nx; e; e = nx) {
            nx = e->next;
            free(e);
        }
        free(sh->bucket);
        pthread_mutex_destroy(&sh->mu);
    }
    free(c);
}

static struct shard *shard_of(struct ua_cache *c, uint64_t h)
{
    return &c->s[h >> 60 & (c->nshards - 1)];
}

static struct entry **slot_of(struct shard *sh, uint64_t h, const char *key, size_t len)
{
    struct entry **pp = &sh->bucket[h & sh->mask];
    while (*pp && !((*pp)->hash == h && (*pp)->klen == len && memcmp((*pp)->key, key, len) == 0)) {
        pp = &(*pp)->hnext;
    }
    return pp;
}

static void unlink_use(struct shard *sh, struct entry *e)
{
    if (e->prev) {
        e->prev->next = e->next;
    } else {
        sh->head = e->next;
    }
    if (e->next) {
        e->next->prev = e->prev;
    } else {
        sh->tail = e->prev;
    }
    e->prev = e->next = NULL;
}

static void push_front(struct shard *sh, struct entry *e)
{
    e->prev = NULL;
    e->next = sh->head;
    if (sh->head) {
        sh->head->prev = e;
    } else {
        sh->tail = e;
    }
    sh->head = e;
}

bool ua_cache_get(struct ua_cache *c, const char *key, size_t len,
                  void (*use)(const struct uap_result *r, void *arg), void *arg)
{
    if (len > UA_CACHE_MAX_KEY) {
        return false;
    }
    uint64_t h = sl_hash_bytes(key, len);
    struct shard *sh = shard_of(c, h);
    pthread_mutex_lock(&sh->mu);
    struct entry *e = *slot_of(sh, h, key, len);
    if (e) {
        if (sh->head != e) {
            unlink_use(sh, e);
            push_front(sh, e);
        }
        use(&e->r, arg);
    }
    pthread_mutex_unlock(&sh->mu);
    return e != NULL;
}

void ua_cache_put(struct ua_cache *c, const char *key, size_t len, struct uap_result *r)
{
    if (len > UA_CACHE_MAX_KEY) {
        uap_result_clear(r);
        return;
    }
    uint64_t h = sl_hash_bytes(key, len);
    struct shard *sh = shard_of(c, h);
    size_t size = sizeof(struct entry) + len + 1;
    for (int k = 0; k < UAP_NFIELDS; k++) {
        size += r->f[k] ? strlen(r->f[k]) + 1 : 0;
    }
    struct entry *e = sl_malloc(size);
    memcpy(e->key, key, len);
    e->key[len] = '\0';
    e->klen = len;
    e->hash = h;
    char *at = e->key + len + 1;
    for (int k = 0; k < UAP_NFIELDS; k++) {
        e->r.f[k] = NULL;
        if (r->f[k]) {
            size_t n = strlen(r->f[k]) + 1;
            memcpy(at, r->f[k], n);
            e->r.f[k] = at;
            at += n;
        }
    }
    uap_result_clear(r);
    struct entry *old = NULL;
    pthread_mutex_lock(&sh->mu);
    if (sh->cap == 0 || *slot_of(sh, h, key, len)) {
        old = e;  /* another thread was first (or no room at all) */
    } else {
        if (sh->n >= sh->cap) {
            old = sh->tail;
            unlink_use(sh, old);
            struct entry **pp = slot_of(sh, old->hash, old->key, old->klen);
            *pp = old->hnext;
            sh->n--;
        }
        struct entry **pp = &sh->bucket[h & sh->mask];
        e->hnext = *pp;
        *pp = e;
        push_front(sh, e);
        sh->n++;
    }
    pthread_mutex_unlock(&sh->mu);
    free(old);
}

size_t ua_cache_size(struct ua_cache *c)
{
    size_t n = 0;
    for (unsigned i = 0; i < c->nshards; i++) {
        pthread_mutex_lock(&c->s[i].mu);
        n += c->s[i].n;
        pthread_mutex_unlock(&c->s[i].mu);
    }
    return n;
}
