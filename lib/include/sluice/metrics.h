/*
 * metrics.h - a Prometheus metrics registry: counters, gauges and histograms
 * with labels, rendered in text exposition format 0.0.4, plus the standard
 * process_* metrics read from /proc at render time.
 *
 * A series is looked up (or created) once, by name and label pairs, and its
 * pointer kept: updates are lock-free atomics, safe from any thread.
 * Creating series and rendering take the registry's mutex.
 */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include "buf.h"
#include "common.h"

struct sl_metrics;
struct sl_metric;

struct sl_metrics *sl_metrics_new(void);
void sl_metrics_free(struct sl_metrics *reg);

/*
 * labels: NULL, or a NULL-terminated list of name, value, name, value, ...
 * Same name + same labels returns the same series. Label values are escaped
 * on output. All series of one name must be of one type and share help.
 */
struct sl_metric *sl_metrics_counter(struct sl_metrics *reg, const char *name, const char *help,
                                     const char *const *labels);
struct sl_metric *sl_metrics_gauge(struct sl_metrics *reg, const char *name, const char *help,
                                   const char *const *labels);
/* <prefix>_build_info{version="..."} 1: which build answers (prefix "sluice_shipper"). */
void sl_metrics_build_info(struct sl_metrics *reg, const char *prefix);
/* bounds: ascending upper bounds (the +Inf bucket is implicit). */
struct sl_metric *sl_metrics_histogram(struct sl_metrics *reg, const char *name,
                                       const char *help, const char *const *labels,
                                       const double *bounds, size_t nbounds);

/* Removes series m (a gauge of a thing that is gone: a closed file); m is
 * freed and must not be used again. NULL is a no-op. */
void sl_metrics_remove(struct sl_metrics *reg, struct sl_metric *m);

/* m may be NULL (nothing is counted). */
void sl_counter_add(struct sl_metric *m, uint64_t n);
static inline void sl_counter_inc(struct sl_metric *m) { sl_counter_add(m, 1); }
void sl_gauge_set(struct sl_metric *m, double v);
void sl_gauge_add(struct sl_metric *m, double delta);
void sl_hist_observe(struct sl_metric *m, double v);

/*
 * Observations gathered without atomics by one thread (a worker timing a slice
 * of events), then added at once: sl_hist_bucket says which of the
 * sl_hist_nbuckets counts (the last is +Inf) v falls in; sl_hist_add adds
 * counts[0 .. sl_hist_nbuckets(m)) and their sum. Same rules as observing each.
 */
size_t sl_hist_nbuckets(const struct sl_metric *m);
size_t sl_hist_bucket(const struct sl_metric *m, double v);
void sl_hist_add(struct sl_metric *m, const uint64_t *counts, double sum);
/* Current value of a counter or gauge (tests and health checks read it). */
double sl_metric_value(const struct sl_metric *m);

/* Appends the whole registry, families in creation order, then process_*. */
int sl_metrics_render(struct sl_metrics *reg, struct sl_buf *out);

/* Default latency buckets in seconds: 0.001 .. 60. */
extern const double sl_metrics_latency_buckets[];
extern const size_t sl_metrics_latency_nbuckets;

#endif
