/*
 * kubeapi.h - pod metadata from the Kubernetes API server, for
 * add_kubernetes_metadata (docs/shipper.md, Kubernetes API enrichment): a
 * background thread lists the pods (of one node, when given) and watches them,
 * keeping name -> {uid, node, labels} in a cache the shipper's thread reads.
 * Off by default; started by the running shipper (never by `-t`).
 */
#ifndef SHIPPER_KUBEAPI_H
#define SHIPPER_KUBEAPI_H

#include "sluice/value.h"

struct kubeapi_conf {
    char *url;          /* https://host:port, or http:// (tests) */
    char *token_file;   /* bearer token, read before each list (rotated tokens) */
    char *ca_file;      /* CA of the API server's certificate ("" = system store) */
    char *node;         /* only pods of this node (Filebeat's `node`); "" = all */
    uint64_t cleanup_ms;  /* a deleted pod's metadata is kept this long */
};

struct kubeapi;

/* Does not connect yet. Takes c's strings. */
struct kubeapi *kubeapi_new(struct kubeapi_conf *c);
/* Starts the watcher thread (once; kubeapi_enrich also does). */
void kubeapi_start(struct kubeapi *k);
/* Stops the thread (an open watch is aborted) and frees everything. */
void kubeapi_free(struct kubeapi *k);

/*
 * Adds what the cache knows of pod ns/name to ev: kubernetes.labels (keys
 * with dots as '_', Filebeat's dedot), kubernetes.node.name and
 * kubernetes.pod.uid. Starts the watcher on first call. False when the pod is
 * not (yet) known.
 */
bool kubeapi_enrich(struct kubeapi *k, const char *ns, const char *name, struct sl_value *ev);

/* Changes whenever the cache does (event shapes built before are stale). */
uint64_t kubeapi_generation(const struct kubeapi *k);

#endif
