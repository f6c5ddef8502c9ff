/*
 * dl.h - a shared library loaded when a feature is first used, not at start.
 *
 * The shipper's Kafka output (librdkafka) and its Kubernetes API enrichment
 * (libcurl) pull in large dependency trees (TLS stacks, Kerberos, LDAP, SASL),
 * whose loading and constructors cost every shipper megabytes of RSS even when
 * neither feature is configured. Such a module resolves the few functions it
 * calls here, once, when it starts (docs/shipper.md, "Contexts and memory").
 */
#ifndef SLUICE_DL_H
#define SLUICE_DL_H

#include <stddef.h>

/*
 * Opens the first of names (NULL-terminated sonames) that the dynamic loader
 * finds and resolves syms[0..n) into fns[0..n). Returns 0, or SL_ENOENT after
 * writing why to err (no such library, or one missing symbol: then nothing is
 * kept). Not thread-safe: call it once, e.g. under pthread_once.
 */
int sl_dl_load(const char *const *names, const char *const *syms, void **fns, size_t n,
               char *err, size_t errlen);

#endif
