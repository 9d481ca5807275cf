/*
 * metrics.h: a registry of counters, gauges and histograms, rendered in the
 * Prometheus text exposition format (version 0.0.4).
 *
 * A family is a metric name with its help text and type; a series is a family
 * plus one set of label values. Updates are lock-free (atomics) so the hot
 * path can count every record; registration and rendering take the registry
 * lock. The registry owns every ik_metric it returns; they live until
 * ik_metrics_free().
 */
#ifndef IK_METRICS_H
#define IK_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <intake/plugin.h>

typedef struct ik_metrics ik_metrics;

typedef enum ik_metric_kind {
    IK_METRIC_COUNTER = 1,
    IK_METRIC_GAUGE = 2,
    IK_METRIC_HISTOGRAM = 3,
} ik_metric_kind;

ik_metrics *ik_metrics_new(void);
void ik_metrics_free(ik_metrics *m);

/*
 * Returns the series `name{labels}`, creating family and series on first use;
 * the same name and labels return the same handle. `labels` is a
 * NULL-terminated list of key, value, key, value... (may be NULL). Label
 * values are escaped when rendered. Histograms take upper bounds (ascending,
 * +Inf implied; copied); bounds of a later call for an existing family are
 * ignored. Returns NULL when the name is not [a-zA-Z_:][a-zA-Z0-9_:]*, when the
 * family exists with another kind, or on allocation failure.
 */
ik_metric *ik_metrics_counter(ik_metrics *m, const char *name, const char *help,
                              const char *const *labels);
ik_metric *ik_metrics_gauge(ik_metrics *m, const char *name, const char *help,
                            const char *const *labels);
ik_metric *ik_metrics_histogram(ik_metrics *m, const char *name, const char *help,
                                const char *const *labels, const double *bounds, size_t nbounds);

/* Updates; all accept NULL (no-op) so callers need not check registration. */
void ik_metric_add(ik_metric *metric, double delta);
void ik_metric_set(ik_metric *metric, double value);
void ik_metric_observe(ik_metric *metric, double value);

/* Current value (counter/gauge) or observation count (histogram); 0 for NULL. */
double ik_metric_value(const ik_metric *metric);
/* Histogram sum; 0 for other kinds. */
double ik_metric_sum(const ik_metric *metric);

/* Renders every family in registration order. *out is malloc'd, owned by the
 * caller. Returns 0 or IK_E_NOMEM. */
int ik_metrics_render(ik_metrics *m, char **out, size_t *len);

#endif
