/*
 * ua_cache.h - parsed user agents by their string, least recently used out
 * first, bounded in entries (and each key in bytes). Shared by the worker
 * threads of one filter instance: split into shards, each under its own
 * lock, so that threads seldom wait for one another.
 */
#ifndef SLUICE_UA_CACHE_H
#define SLUICE_UA_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "uap.h"

/* Strings longer than this are never cached (a hostile client's UA churns it). */
#define UA_CACHE_MAX_KEY 2048

struct ua_cache;

/* A cache of at most capacity entries (>= 1). */
struct ua_cache *ua_cache_new(size_t capacity);
void ua_cache_free(struct ua_cache *c);

/* When key is cached: calls use(result, arg) under the shard's lock (use
 * must only read it, quickly) and returns true. */
bool ua_cache_get(struct ua_cache *c, const char *key, size_t len,
                  void (*use)(const struct uap_result *r, void *arg), void *arg);
/* Caches r (taken: *r is left empty) under key, evicting the least recently
 * used entry of its shard when full. A key already there or too long: r is
 * freed. */
void ua_cache_put(struct ua_cache *c, const char *key, size_t len, struct uap_result *r);
/* Entries held now (all shards). */
size_t ua_cache_size(struct ua_cache *c);

#endif
