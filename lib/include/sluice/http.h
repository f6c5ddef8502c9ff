/*
 * http.h - the tiny HTTP/1.1 server every daemon runs for GET /metrics
 * (Prometheus text), GET /healthz and optionally GET /readyz. Runs on the
 * daemon's event loop; requests are bounded (8 KiB of headers, to be sent
 * within 2 s), one request per connection; at the connection cap (512) the
 * oldest idle or incomplete connection is closed rather than the new one.
 */
#ifndef SLUICE_HTTP_H
#define SLUICE_HTTP_H

#include "buf.h"
#include "loop.h"
#include "metrics.h"

struct sl_http;

/* Fills body with a short reason and returns true when the process is healthy. */
typedef bool (*sl_health_cb)(void *arg, struct sl_buf *body);

/*
 * Listens on addr ("127.0.0.1:5066"; port 0 picks one). health may be NULL
 * (always healthy: 200 "ok"). Returns NULL and logs on failure.
 */
struct sl_http *sl_http_start(struct sl_loop *loop, const char *addr, struct sl_metrics *reg,
                              sl_health_cb health, void *arg);
/* The bound port. */
int sl_http_port(const struct sl_http *h);
/* Serves GET /readyz: 200 "ready" while ready() returns true, else 503 with
 * the body it wrote. Without it, /readyz is 404. */
void sl_http_set_ready(struct sl_http *h, sl_health_cb ready, void *arg);
/* Overrides the connection cap and the deadline for a complete request (0
 * keeps the default: 512, 2000 ms). For tests. */
void sl_http_set_limits(struct sl_http *h, size_t max_conns, uint64_t header_timeout_ms);
/* Connections closed to make room at the cap, since start. */
uint64_t sl_http_evicted(const struct sl_http *h);
void sl_http_stop(struct sl_http *h);

#endif
