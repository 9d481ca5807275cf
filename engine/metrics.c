/*
 * metrics.c: the metrics registry and its Prometheus text rendering (see
 * metrics.h).
 *
 * The registry holds families in registration order, each with its series in
 * creation order. Registration and rendering take the registry mutex; updates
 * touch only the series' atomics, so the hot path never locks. Doubles are
 * kept as their IEEE-754 bit patterns in _Atomic uint64_t and updated with a
 * compare-and-swap loop. Histogram buckets are stored per bucket (not
 * cumulative) as atomic integers and summed when rendered; the observation
 * count is the sum of the buckets, so _count always equals le="+Inf".
 *
 * Update rules: add() works on counters (negative and NaN deltas are ignored,
 * a counter never goes down) and gauges; set() on gauges and counters;
 * observe() on histograms. Any other combination is a no-op.
 *
 * Numbers are rendered as: integral values with magnitude below 1e21 in plain
 * decimal without exponent ("%.0f", exact for every double, so counters are
 * exact up to 2^53 and beyond); other finite values with the shortest "%.*g"
 * (15 to 17 digits) that reads back to the same double; "NaN", "+Inf",
 * "-Inf"; negative zero as "0".
 */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

struct ik_metric {
    ik_metric_kind kind;
    _Atomic uint64_t bits; /* counter/gauge value; histogram sum */
    /* Histograms: nbuckets = nbounds + 1, the last one is +Inf. */
    size_t nbounds;
    const double *bounds; /* the family's, not owned */
    _Atomic uint64_t *buckets;
    /* Identity: label key/value pairs, owned. */
    size_t nlabels;
    char **labels; /* 2 * nlabels strings: key, value, ... */
};

typedef struct family {
    char *name;
    char *help;
    ik_metric_kind kind;
    double *bounds; /* histograms; owned */
    size_t nbounds;
    ik_metric **series;
    size_t nseries;
    size_t cap;
} family;

struct ik_metrics {
    pthread_mutex_t lock;
    family **families;
    size_t nfamilies;
    size_t cap;
};

/* ---- atomics on doubles --------------------------------------------------- */

static uint64_t dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bitsd(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void atomic_add_double(_Atomic uint64_t *p, double delta)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    uint64_t next;
    do {
        next = dbits(bitsd(old) + delta);
    } while (!atomic_compare_exchange_weak_explicit(p, &old, next, memory_order_relaxed,
                                                    memory_order_relaxed));
}

/* ---- registry ------------------------------------------------------------- */

ik_metrics *ik_metrics_new(void)
{
    ik_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

static void metric_free(ik_metric *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < 2 * s->nlabels; i++)
        free(s->labels[i]);
    free(s->labels);
    free(s->buckets);
    free(s);
}

static void family_free(family *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->nseries; i++)
        metric_free(f->series[i]);
    free(f->series);
    free(f->name);
    free(f->help);
    free(f->bounds);
    free(f);
}

void ik_metrics_free(ik_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nfamilies; i++)
        family_free(m->families[i]);
    free(m->families);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static bool valid_metric_name(const char *s)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(p != s && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

/* Label names: [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved). */
static bool valid_label_name(const char *s)
{
    if (!s || !*s || strncmp(s, "__", 2) == 0)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(p != s && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

/* Counts label pairs and checks them: valid distinct names, non-NULL values,
 * no "le" on histograms. Returns -1 when invalid. */
static long check_labels(const char *const *labels, ik_metric_kind kind)
{
    if (!labels)
        return 0;
    long n = 0;
    for (; labels[2 * n]; n++) {
        const char *k = labels[2 * n];
        if (!valid_label_name(k) || !labels[2 * n + 1])
            return -1;
        if (kind == IK_METRIC_HISTOGRAM && strcmp(k, "le") == 0)
            return -1;
        for (long j = 0; j < n; j++)
            if (strcmp(labels[2 * j], k) == 0)
                return -1;
    }
    return n;
}

/* True when series s has exactly the label set given (order-insensitive). */
static bool same_labels(const ik_metric *s, const char *const *labels, size_t n)
{
    if (s->nlabels != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        const char *k = labels[2 * i], *v = labels[2 * i + 1];
        bool found = false;
        for (size_t j = 0; j < n; j++) {
            if (strcmp(s->labels[2 * j], k) == 0) {
                found = strcmp(s->labels[2 * j + 1], v) == 0;
                break;
            }
        }
        if (!found)
            return false;
    }
    return true;
}

static family *find_family(ik_metrics *m, const char *name)
{
    for (size_t i = 0; i < m->nfamilies; i++)
        if (strcmp(m->families[i]->name, name) == 0)
            return m->families[i];
    return NULL;
}

/* Copies and checks histogram bounds: finite or a trailing +Inf (dropped),
 * strictly ascending. Returns false when invalid or out of memory. */
static bool copy_bounds(const double *bounds, size_t nbounds, double **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (nbounds > 0 && !bounds)
        return false;
    if (nbounds > 0 && isinf(bounds[nbounds - 1]) && bounds[nbounds - 1] > 0)
        nbounds--;
    for (size_t i = 0; i < nbounds; i++) {
        if (!isfinite(bounds[i]))
            return false;
        if (i > 0 && !(bounds[i] > bounds[i - 1]))
            return false;
    }
    if (nbounds == 0)
        return true;
    *out = malloc(nbounds * sizeof **out);
    if (!*out)
        return false;
    memcpy(*out, bounds, nbounds * sizeof **out);
    *nout = nbounds;
    return true;
}

static family *family_new(const char *name, const char *help, ik_metric_kind kind,
                          const double *bounds, size_t nbounds)
{
    family *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->kind = kind;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    if (!f->name || !f->help ||
        (kind == IK_METRIC_HISTOGRAM && !copy_bounds(bounds, nbounds, &f->bounds, &f->nbounds))) {
        family_free(f);
        return NULL;
    }
    return f;
}

static ik_metric *series_new(family *f, const char *const *labels, size_t n)
{
    ik_metric *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->kind = f->kind;
    atomic_init(&s->bits, dbits(0.0));
    if (n > 0) {
        s->labels = calloc(2 * n, sizeof *s->labels);
        if (!s->labels)
            goto fail;
        s->nlabels = n;
        for (size_t i = 0; i < 2 * n; i++)
            if (!(s->labels[i] = strdup(labels[i])))
                goto fail;
    }
    if (f->kind == IK_METRIC_HISTOGRAM) {
        s->nbounds = f->nbounds;
        s->bounds = f->bounds;
        s->buckets = calloc(f->nbounds + 1, sizeof *s->buckets);
        if (!s->buckets)
            goto fail;
        for (size_t i = 0; i <= f->nbounds; i++)
            atomic_init(&s->buckets[i], 0);
    }
    return s;
fail:
    metric_free(s);
    return NULL;
}

/* Finds or creates name{labels}. The family is added to the registry only
 * once its first series exists, so a failure leaves the registry unchanged. */
static ik_metric *get_series(ik_metrics *m, ik_metric_kind kind, const char *name, const char *help,
                             const char *const *labels, const double *bounds, size_t nbounds)
{
    if (!m || !valid_metric_name(name))
        return NULL;
    long nl = check_labels(labels, kind);
    if (nl < 0)
        return NULL;
    size_t n = (size_t)nl;

    ik_metric *result = NULL;
    pthread_mutex_lock(&m->lock);
    family *f = find_family(m, name);
    bool fresh = false;
    if (f) {
        if (f->kind != kind)
            goto out;
        for (size_t i = 0; i < f->nseries; i++) {
            if (same_labels(f->series[i], labels, n)) {
                result = f->series[i];
                goto out;
            }
        }
    } else {
        family **fs = ik_array_grow(m->families, &m->cap, m->nfamilies + 1, sizeof *fs);
        if (!fs)
            goto out;
        m->families = fs;
        f = family_new(name, help, kind, bounds, nbounds);
        if (!f)
            goto out;
        fresh = true;
    }
    ik_metric **ss = ik_array_grow(f->series, &f->cap, f->nseries + 1, sizeof *ss);
    if (!ss)
        goto fail_fresh;
    f->series = ss;
    ik_metric *s = series_new(f, labels, n);
    if (!s)
        goto fail_fresh;
    f->series[f->nseries++] = s;
    if (fresh)
        m->families[m->nfamilies++] = f;
    result = s;
    goto out;
fail_fresh:
    if (fresh)
        family_free(f);
out:
    pthread_mutex_unlock(&m->lock);
    return result;
}

ik_metric *ik_metrics_counter(ik_metrics *m, const char *name, const char *help,
                              const char *const *labels)
{
    return get_series(m, IK_METRIC_COUNTER, name, help, labels, NULL, 0);
}

ik_metric *ik_metrics_gauge(ik_metrics *m, const char *name, const char *help,
                            const char *const *labels)
{
    return get_series(m, IK_METRIC_GAUGE, name, help, labels, NULL, 0);
}

ik_metric *ik_metrics_histogram(ik_metrics *m, const char *name, const char *help,
                                const char *const *labels, const double *bounds, size_t nbounds)
{
    return get_series(m, IK_METRIC_HISTOGRAM, name, help, labels, bounds, nbounds);
}

/* ---- updates -------------------------------------------------------------- */

void ik_metric_add(ik_metric *metric, double delta)
{
    if (!metric)
        return;
    if (metric->kind == IK_METRIC_COUNTER) {
        if (!(delta >= 0)) /* negative or NaN */
            return;
    } else if (metric->kind != IK_METRIC_GAUGE) {
        return;
    }
    atomic_add_double(&metric->bits, delta);
}

void ik_metric_set(ik_metric *metric, double value)
{
    if (!metric || metric->kind == IK_METRIC_HISTOGRAM)
        return;
    atomic_store_explicit(&metric->bits, dbits(value), memory_order_relaxed);
}

void ik_metric_observe(ik_metric *metric, double value)
{
    if (!metric || metric->kind != IK_METRIC_HISTOGRAM)
        return;
    size_t i = 0;
    while (i < metric->nbounds && !(value <= metric->bounds[i]))
        i++; /* NaN lands in +Inf */
    atomic_fetch_add_explicit(&metric->buckets[i], 1, memory_order_relaxed);
    atomic_add_double(&metric->bits, value);
}

static uint64_t hist_count(const ik_metric *metric)
{
    uint64_t n = 0;
    for (size_t i = 0; i <= metric->nbounds; i++)
        n += atomic_load_explicit(&metric->buckets[i], memory_order_relaxed);
    return n;
}

double ik_metric_value(const ik_metric *metric)
{
    if (!metric)
        return 0;
    if (metric->kind == IK_METRIC_HISTOGRAM)
        return (double)hist_count(metric);
    return bitsd(atomic_load_explicit(&metric->bits, memory_order_relaxed));
}

double ik_metric_sum(const ik_metric *metric)
{
    if (!metric || metric->kind != IK_METRIC_HISTOGRAM)
        return 0;
    return bitsd(atomic_load_explicit(&metric->bits, memory_order_relaxed));
}

/* ---- rendering ------------------------------------------------------------ */

/* Renders d into out (at least 32 bytes) per the rules at the top. */
static void format_number(double d, char *out, size_t outlen)
{
    if (isnan(d)) {
        snprintf(out, outlen, "NaN");
    } else if (isinf(d)) {
        snprintf(out, outlen, d > 0 ? "+Inf" : "-Inf");
    } else if (d == 0) {
        snprintf(out, outlen, "0");
    } else if (d == trunc(d) && fabs(d) < 1e21) {
        snprintf(out, outlen, "%.0f", d);
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(out, outlen, "%.*g", prec, d);
            if (strtod(out, NULL) == d)
                break;
        }
    }
}

/* HELP text escapes backslash and newline; label values also the quote. */
static void add_escaped(ik_buf *b, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            ik_buf_adds(b, "\\\\");
        else if (*s == '\n')
            ik_buf_adds(b, "\\n");
        else if (quote && *s == '"')
            ik_buf_adds(b, "\\\"");
        else
            ik_buf_add(b, s, 1);
    }
}

/* name{k="v",...,extra_key="extra_val"} value\n; extra_key may be NULL. */
static void add_sample(ik_buf *b, const char *name, const char *suffix, const ik_metric *s,
                       const char *extra_key, const char *extra_val, double value)
{
    ik_buf_adds(b, name);
    ik_buf_adds(b, suffix);
    if (s->nlabels > 0 || extra_key) {
        ik_buf_adds(b, "{");
        for (size_t i = 0; i < s->nlabels; i++) {
            if (i > 0)
                ik_buf_adds(b, ",");
            ik_buf_adds(b, s->labels[2 * i]);
            ik_buf_adds(b, "=\"");
            add_escaped(b, s->labels[2 * i + 1], true);
            ik_buf_adds(b, "\"");
        }
        if (extra_key) {
            if (s->nlabels > 0)
                ik_buf_adds(b, ",");
            ik_buf_adds(b, extra_key);
            ik_buf_adds(b, "=\"");
            ik_buf_adds(b, extra_val);
            ik_buf_adds(b, "\"");
        }
        ik_buf_adds(b, "}");
    }
    char num[64];
    format_number(value, num, sizeof num);
    ik_buf_adds(b, " ");
    ik_buf_adds(b, num);
    ik_buf_adds(b, "\n");
}

static const char *kind_name(ik_metric_kind k)
{
    switch (k) {
    case IK_METRIC_COUNTER:
        return "counter";
    case IK_METRIC_GAUGE:
        return "gauge";
    case IK_METRIC_HISTOGRAM:
        return "histogram";
    }
    return "untyped";
}

static void render_histogram(ik_buf *b, const family *f, const ik_metric *s)
{
    /* Read the buckets once so the cumulative counts and _count agree. */
    uint64_t cum = 0;
    char le[64];
    for (size_t i = 0; i <= s->nbounds; i++) {
        cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        if (i < s->nbounds)
            format_number(s->bounds[i], le, sizeof le);
        else
            snprintf(le, sizeof le, "+Inf");
        add_sample(b, f->name, "_bucket", s, "le", le, (double)cum);
    }
    add_sample(b, f->name, "_sum", s, NULL, NULL, ik_metric_sum(s));
    add_sample(b, f->name, "_count", s, NULL, NULL, (double)cum);
}

int ik_metrics_render(ik_metrics *m, char **out, size_t *len)
{
    if (!out)
        return IK_E_INVAL;
    *out = NULL;
    if (len)
        *len = 0;
    ik_buf b = {0};
    ik_buf_add(&b, "", 0); /* an empty registry still renders "" */
    if (m) {
        pthread_mutex_lock(&m->lock);
        for (size_t i = 0; i < m->nfamilies; i++) {
            const family *f = m->families[i];
            ik_buf_adds(&b, "# HELP ");
            ik_buf_adds(&b, f->name);
            ik_buf_adds(&b, " ");
            add_escaped(&b, f->help, false);
            ik_buf_adds(&b, "\n# TYPE ");
            ik_buf_adds(&b, f->name);
            ik_buf_adds(&b, " ");
            ik_buf_adds(&b, kind_name(f->kind));
            ik_buf_adds(&b, "\n");
            for (size_t j = 0; j < f->nseries; j++) {
                const ik_metric *s = f->series[j];
                if (f->kind == IK_METRIC_HISTOGRAM)
                    render_histogram(&b, f, s);
                else
                    add_sample(&b, f->name, "", s, NULL, NULL, ik_metric_value(s));
            }
        }
        pthread_mutex_unlock(&m->lock);
    }
    if (b.oom) {
        free(b.p);
        return IK_E_NOMEM;
    }
    *out = b.p;
    if (len)
        *len = b.len;
    return 0;
}
