/*
 * http.h - the tiny HTTP/1.1 server every daemon runs for GET /metrics
 * (Prometheus text) and GET /healthz. Runs on the daemon's event loop;
 * requests are bounded (8 KiB of headers), one request per connection.
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
void sl_http_stop(struct sl_http *h);

#endif
