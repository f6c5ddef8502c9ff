/*
 * clients.h - the aggregator's per-client series, with bounded cardinality:
 * sluice_aggregator_client_events_total{client}, ..._client_events_acked_total
 * {client} and ..._client_connections{client}, where a client is a label the
 * listener chooses (the peer's IP address, or its certificate's CN).
 *
 * A connection looks its client up once (agg_clients_get) and keeps the
 * pointer: counting is then one atomic add per window piece, never a lookup
 * per event. At most `max` labels get series of their own; past that, new
 * clients share client="other". A client with no open connection for
 * `forget_ms` loses its series (their slot goes to the next new client).
 *
 * Loop thread only (the series themselves are atomic, as every metric).
 */
#ifndef SLUICE_AGG_CLIENTS_H
#define SLUICE_AGG_CLIENTS_H

#include <stdint.h>

#include "sluice/metrics.h"

struct agg_clients;
struct agg_client;

/* The label of the shared series of clients past the cap. */
#define AGG_CLIENT_OTHER "other"

/* metrics NULL: every client is a dummy whose counts go nowhere (tests). */
struct agg_clients *agg_clients_new(struct sl_metrics *metrics);
void agg_clients_free(struct agg_clients *cs);

/* max: labels with series of their own (0: everyone is "other"); forget_ms: 0 never. */
void agg_clients_limits(struct agg_clients *cs, size_t max, uint64_t forget_ms);

/* A connection of client `label` opened: its series (created if needed, within
 * the cap), its connections gauge one up. Never NULL. */
struct agg_client *agg_clients_get(struct agg_clients *cs, const char *label);
/* That connection closed: the gauge one down; the client may be forgotten from now. */
void agg_clients_put(struct agg_clients *cs, struct agg_client *c, uint64_t now_ms);

void agg_client_received(struct agg_client *c, uint64_t events);
void agg_client_acked(struct agg_client *c, uint64_t events);
/* The label its series carry ("other" past the cap). */
const char *agg_client_label(const struct agg_client *c);

/* Forgets the clients idle for forget_ms (call it from a timer; cheap when nothing is due). */
void agg_clients_sweep(struct agg_clients *cs, uint64_t now_ms);

/* Labels with series of their own (not counting "other"). */
size_t agg_clients_count(const struct agg_clients *cs);

#endif
