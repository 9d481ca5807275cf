/*
 * test_metrics.c: unit tests of the metrics registry (engine/metrics.c):
 * byte-exact Prometheus rendering, label and help escaping, cumulative
 * histogram buckets, number formatting, handle identity, kind conflicts,
 * name validation, update rules, and exact sums under concurrent updates.
 */
#include <CUnit/Basic.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

/* Renders m, checks the length agrees, returns the text (caller frees). */
static char *render(ik_metrics *m)
{
    char *out = NULL;
    size_t len = 12345;
    CU_ASSERT_EQUAL_FATAL(ik_metrics_render(m, &out, &len), 0);
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_EQUAL(len, strlen(out));
    return out;
}

static void assert_render(ik_metrics *m, const char *expected)
{
    char *out = render(m);
    CU_ASSERT_STRING_EQUAL(out, expected);
    if (strcmp(out, expected) != 0)
        printf("\n--- expected:\n%s--- got:\n%s---\n", expected, out);
    free(out);
}

static void test_render_small_registry(void)
{
    ik_metrics *m = ik_metrics_new();
    CU_ASSERT_FATAL(m != NULL);
    const char *l1[] = {"pipeline", "p1", "instance", "zoho", NULL};
    const char *l2[] = {"pipeline", "p2", "instance", "zoho", NULL};
    const char *lh[] = {"stage", "llm", NULL};
    const double bounds[] = {0.25, 0.5, 1, 2.5};

    ik_metric *c1 = ik_metrics_counter(m, "intake_records_total", "Records seen.", l1);
    ik_metric *g = ik_metrics_gauge(m, "intake_inflight", "In-flight records.", NULL);
    ik_metric *h = ik_metrics_histogram(m, "intake_latency_seconds",
                                        "Latency.\nSecond line \\ here \"q\"", lh, bounds, 4);
    ik_metric *c2 = ik_metrics_counter(m, "intake_records_total", "ignored help", l2);
    CU_ASSERT_FATAL(c1 && c2 && g && h);

    ik_metric_add(c1, 41);
    ik_metric_add(c1, 1);
    ik_metric_add(c2, 7);
    ik_metric_set(g, 3.5);
    ik_metric_add(g, -1);
    const double obs[] = {0.25, 0.5, 0.75, 2, 3, 100};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        ik_metric_observe(h, obs[i]);

    assert_render(m, "# HELP intake_records_total Records seen.\n"
                     "# TYPE intake_records_total counter\n"
                     "intake_records_total{pipeline=\"p1\",instance=\"zoho\"} 42\n"
                     "intake_records_total{pipeline=\"p2\",instance=\"zoho\"} 7\n"
                     "# HELP intake_inflight In-flight records.\n"
                     "# TYPE intake_inflight gauge\n"
                     "intake_inflight 2.5\n"
                     "# HELP intake_latency_seconds Latency.\\nSecond line \\\\ here \"q\"\n"
                     "# TYPE intake_latency_seconds histogram\n"
                     "intake_latency_seconds_bucket{stage=\"llm\",le=\"0.25\"} 1\n"
                     "intake_latency_seconds_bucket{stage=\"llm\",le=\"0.5\"} 2\n"
                     "intake_latency_seconds_bucket{stage=\"llm\",le=\"1\"} 3\n"
                     "intake_latency_seconds_bucket{stage=\"llm\",le=\"2.5\"} 4\n"
                     "intake_latency_seconds_bucket{stage=\"llm\",le=\"+Inf\"} 6\n"
                     "intake_latency_seconds_sum{stage=\"llm\"} 106.5\n"
                     "intake_latency_seconds_count{stage=\"llm\"} 6\n");
    CU_ASSERT_DOUBLE_EQUAL(ik_metric_value(h), 6, 0);
    CU_ASSERT_DOUBLE_EQUAL(ik_metric_sum(h), 106.5, 0);
    CU_ASSERT_DOUBLE_EQUAL(ik_metric_value(c1), 42, 0);
    CU_ASSERT_DOUBLE_EQUAL(ik_metric_sum(c1), 0, 0);
    ik_metrics_free(m);
}

static void test_empty_and_null(void)
{
    ik_metrics *m = ik_metrics_new();
    CU_ASSERT_FATAL(m != NULL);
    char *out = render(m);
    CU_ASSERT_STRING_EQUAL(out, "");
    free(out);
    ik_metrics_free(m);
    ik_metrics_free(NULL);

    /* updates and reads accept NULL */
    ik_metric_add(NULL, 1);
    ik_metric_set(NULL, 1);
    ik_metric_observe(NULL, 1);
    CU_ASSERT_DOUBLE_EQUAL(ik_metric_value(NULL), 0, 0);
    CU_ASSERT_DOUBLE_EQUAL(ik_metric_sum(NULL), 0, 0);
    CU_ASSERT_PTR_NULL(ik_metrics_counter(NULL, "x", "h", NULL));
}

static void test_label_escaping(void)
{
    ik_metrics *m = ik_metrics_new();
    CU_ASSERT_FATAL(m != NULL);
    const char *l[] = {"path", "C:\\dir\\\"quoted\"\nnext", "empty", "", NULL};
    ik_metric *c = ik_metrics_counter(m, "odd_total", NULL, l);
    CU_ASSERT_FATAL(c != NULL);
    ik_metric_add(c, 1);
    assert_render(m, "# HELP odd_total \n"
                     "# TYPE odd_total counter\n"
                     "odd_total{path=\"C:\\\\dir\\\\\\\"quoted\\\"\\nnext\",empty=\"\"} 1\n");
    ik_metrics_free(m);
}

static void test_histogram_cumulative(void)
{
    ik_metrics *m = ik_metrics_new();
    CU_ASSERT_FATAL(m != NULL);
    const double b[] = {1, 2, 4, INFINITY}; /* a trailing +Inf is accepted once */
    ik_metric *h = ik_metrics_histogram(m, "h", "H", NULL, b, 4);
    CU_ASSERT_FATAL(h != NULL);
    /* 1 is inclusive (le), 1.5 and 2 go to le=2, nothing in (2,4], 9 only in +Inf */
    ik_metric_observe(h, 1);
    ik_metric_observe(h, 1.5);
    ik_metric_observe(h, 2);
    ik_metric_observe(h, 9);
    ik_metric_observe(h, -5);
    assert_render(m, "# HELP h H\n"
                     "# TYPE h histogram\n"
                     "h_bucket{le=\"1\"} 2\n"
                     "h_bucket{le=\"2\"} 4\n"
                     "h_bucket{le=\"4\"} 4\n"
                     "h_bucket{le=\"+Inf\"} 5\n"
                     "h_sum 8.5\n"
                     "h_count 5\n");

    /* no bounds: only +Inf; a later call's bounds are ignored */
    ik_metric *h2 = ik_metrics_histogram(m, "h2", "H2", NULL, NULL, 0);
    CU_ASSERT_FATAL(h2 != NULL);
    const char *lb[] = {"k", "v", NULL};
    const double other[] = {100};
    ik_metric *h3 = ik_metrics_histogram(m, "h2", "H2", lb, other, 1);
    CU_ASSERT_FATAL(h3 != NULL && h3 != h2);
    ik_metric_observe(h3, 50);
    char *out = render(m);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "h2_bucket{le=\"+Inf\"} 0\nh2_sum 0\nh2_count 0\n"
                                       "h2_bucket{k=\"v\",le=\"+Inf\"} 1\n"
                                       "h2_sum{k=\"v\"} 50\nh2_count{k=\"v\"} 1\n"));
    CU_ASSERT_PTR_NULL(strstr(out, "le=\"100\""));
    free(out);

    /* bounds must ascend and be numbers */
    const double desc[] = {1, 0.5};
    const double dup[] = {1, 1};
    const double nan_b[] = {NAN};
    CU_ASSERT_PTR_NULL(ik_metrics_histogram(m, "bad1", "", NULL, desc, 2));
    CU_ASSERT_PTR_NULL(ik_metrics_histogram(m, "bad2", "", NULL, dup, 2));
    CU_ASSERT_PTR_NULL(ik_metrics_histogram(m, "bad3", "", NULL, nan_b, 1));
    CU_ASSERT_PTR_NULL(ik_metrics_histogram(m, "bad4", "", NULL, NULL, 2));
    /* "le" is reserved on histograms */
    const char *le[] = {"le", "1", NULL};
    CU_ASSERT_PTR_NULL(ik_metrics_histogram(m, "bad5", "", le, NULL, 0));
    out = render(m);
    CU_ASSERT_PTR_NULL(strstr(out, "bad"));
    free(out);
    ik_metrics_free(m);
}

/* Renders one gauge holding v and compares the value text. */
static void check_number(double v, const char *expected)
{
    ik_metrics *m = ik_metrics_new();
    CU_ASSERT_FATAL(m != NULL);
    ik_metric *g = ik_metrics_gauge(m, "g", "h", NULL);
    CU_ASSERT_FATAL(g != NULL);
    ik_metric_set(g, v);
    char want[128];
    snprintf(want, sizeof want, "# HELP g h\n# TYPE g gauge\ng %s\n", expected);
    assert_render(m, want);
    ik_metrics_free(m);
}

static void test_number_rendering(void)
{
    check_number(0, "0");
    check_number(-0.0, "0");
    check_number(1, "1");
    check_number(-3, "-3");
    check_number(0.1, "0.1");
    check_number(2.5, "2.5");
    check_number(1.0 / 3.0, "0.3333333333333333");
    check_number(1e-7, "1e-07");
    check_number(123456789012.0, "123456789012");
    check_number(9007199254740992.0, "9007199254740992"); /* 2^53 */
    check_number(1e20, "100000000000000000000");
    check_number(1e21, "1e+21");
    check_number(NAN, "NaN");
    check_number(INFINITY, "+Inf");
    check_number(-INFINITY, "-Inf");

    /* a counter counts exactly up to 2^53 */
    ik_metrics *m = ik_metrics_new();
    CU_ASSERT_FATAL(m != NULL);
    ik_metric *c = ik_metrics_counter(m, "c_total", "h", NULL);
    ik_metric_add(c, 9007199254740990.0);
    ik_metric_add(c, 1);
    ik_metric_add(c, 1);
    assert_render(m, "# HELP c_total h\n# TYPE c_total counter\nc_total 9007199254740992\n");
    ik_metrics_free(m);
}

static void test_same_handle(void)
{
    ik_metrics *m = ik_metrics_new();
    CU_ASSERT_FATAL(m != NULL);
    const char *a[] = {"x", "1", "y", "2", NULL};
    const char *a_reordered[] = {"y", "2", "x", "1", NULL};
    const char *b[] = {"x", "1", "y", "3", NULL};
    const char *c[] = {"x", "1", NULL};
    ik_metric *m1 = ik_metrics_counter(m, "n_total", "h", a);
    CU_ASSERT_FATAL(m1 != NULL);
    CU_ASSERT_PTR_EQUAL(ik_metrics_counter(m, "n_total", "h", a), m1);
    CU_ASSERT_PTR_EQUAL(ik_metrics_counter(m, "n_total", "other help", a_reordered), m1);
    ik_metric *m2 = ik_metrics_counter(m, "n_total", "h", b);
    ik_metric *m3 = ik_metrics_counter(m, "n_total", "h", c);
    ik_metric *m4 = ik_metrics_counter(m, "n_total", "h", NULL);
    CU_ASSERT_TRUE(m2 && m3 && m4);
    CU_ASSERT_TRUE(m2 != m1 && m3 != m1 && m4 != m1 && m3 != m2 && m4 != m3);
    CU_ASSERT_PTR_EQUAL(ik_metrics_counter(m, "n_total", "h", NULL), m4);
    ik_metric *g1 = ik_metrics_gauge(m, "gg", "h", NULL);
    CU_ASSERT_PTR_EQUAL(ik_metrics_gauge(m, "gg", "h", NULL), g1);
    ik_metrics_free(m);
}

static void test_kind_conflict(void)
{
    ik_metrics *m = ik_metrics_new();
    CU_ASSERT_FATAL(m != NULL);
    ik_metric *c = ik_metrics_counter(m, "thing", "h", NULL);
    CU_ASSERT_FATAL(c != NULL);
    const char *l[] = {"k", "v", NULL};
    CU_ASSERT_PTR_NULL(ik_metrics_gauge(m, "thing", "h", NULL));
    CU_ASSERT_PTR_NULL(ik_metrics_gauge(m, "thing", "h", l));
    CU_ASSERT_PTR_NULL(ik_metrics_histogram(m, "thing", "h", NULL, NULL, 0));
    /* the original family is untouched and still renders as a counter */
    assert_render(m, "# HELP thing h\n# TYPE thing counter\nthing 0\n");
    ik_metrics_free(m);
}

static void test_invalid_names(void)
{
    ik_metrics *m = ik_metrics_new();
    CU_ASSERT_FATAL(m != NULL);
    const char *bad[] = {"", "1abc", "a-b", "a b", "a.b", "caf\xc3\xa9", "x{y}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_PTR_NULL(ik_metrics_counter(m, bad[i], "h", NULL));
    CU_ASSERT_PTR_NULL(ik_metrics_counter(m, NULL, "h", NULL));
    CU_ASSERT_PTR_NOT_NULL(ik_metrics_counter(m, "_a", "h", NULL));
    CU_ASSERT_PTR_NOT_NULL(ik_metrics_counter(m, "ns:sub_total", "h", NULL));
    CU_ASSERT_PTR_NOT_NULL(ik_metrics_gauge(m, "A9", "h", NULL));

    /* label names: [a-zA-Z_][a-zA-Z0-9_]*, no "__" prefix, no duplicates,
     * no NULL value */
    const char *l1[] = {"1x", "v", NULL};
    const char *l2[] = {"__reserved", "v", NULL};
    const char *l3[] = {"a-b", "v", NULL};
    const char *l4[] = {"k", "v", "k", "w", NULL};
    const char *l5[] = {"k", NULL, NULL};
    const char *l6[] = {"", "v", NULL};
    CU_ASSERT_PTR_NULL(ik_metrics_counter(m, "ok_total", "h", l1));
    CU_ASSERT_PTR_NULL(ik_metrics_counter(m, "ok_total", "h", l2));
    CU_ASSERT_PTR_NULL(ik_metrics_counter(m, "ok_total", "h", l3));
    CU_ASSERT_PTR_NULL(ik_metrics_counter(m, "ok_total", "h", l4));
    CU_ASSERT_PTR_NULL(ik_metrics_counter(m, "ok_total", "h", l5));
    CU_ASSERT_PTR_NULL(ik_metrics_counter(m, "ok_total", "h", l6));
    const char *good[] = {"le", "x", "_k9", "y", NULL}; /* "le" is fine on a counter */
    CU_ASSERT_PTR_NOT_NULL(ik_metrics_counter(m, "ok_total", "h", good));

    char *out = render(m);
    CU_ASSERT_PTR_NULL(strstr(out, "1abc"));
    CU_ASSERT_PTR_NULL(strstr(out, "__reserved"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "ok_total{le=\"x\",_k9=\"y\"} 0\n"));
    free(out);
    ik_metrics_free(m);
}

static void test_update_rules(void)
{
    ik_metrics *m = ik_metrics_new();
    CU_ASSERT_FATAL(m != NULL);
    ik_metric *c = ik_metrics_counter(m, "c_total", "h", NULL);
    ik_metric *g = ik_metrics_gauge(m, "g", "h", NULL);
    ik_metric *h = ik_metrics_histogram(m, "h", "h", NULL, NULL, 0);
    CU_ASSERT_FATAL(c && g && h);
    ik_metric_add(c, 5);
    ik_metric_add(c, -2); /* counters never go down */
    ik_metric_add(c, NAN);
    CU_ASSERT_DOUBLE_EQUAL(ik_metric_value(c), 5, 0);
    ik_metric_observe(c, 100); /* not a histogram: ignored */
    CU_ASSERT_DOUBLE_EQUAL(ik_metric_value(c), 5, 0);
    ik_metric_add(g, -2);
    CU_ASSERT_DOUBLE_EQUAL(ik_metric_value(g), -2, 0);
    ik_metric_set(g, 7.25);
    CU_ASSERT_DOUBLE_EQUAL(ik_metric_value(g), 7.25, 0);
    ik_metric_set(h, 99); /* ignored */
    ik_metric_add(h, 99); /* ignored */
    CU_ASSERT_DOUBLE_EQUAL(ik_metric_value(h), 0, 0);
    CU_ASSERT_DOUBLE_EQUAL(ik_metric_sum(h), 0, 0);
    ik_metric_observe(h, 0.5);
    CU_ASSERT_DOUBLE_EQUAL(ik_metric_value(h), 1, 0);
    CU_ASSERT_DOUBLE_EQUAL(ik_metric_sum(h), 0.5, 0);
    ik_metrics_free(m);
}

/* ---- concurrency ---------------------------------------------------------- */

#define NTHREADS 4
#define NITER    100000

static ik_metrics *shared_reg;
static ik_metric *shared_c, *shared_g, *shared_h;

static void *update_thread(void *arg)
{
    for (int i = 0; i < NITER; i++) {
        ik_metric_add(shared_c, 1);
        ik_metric_add(shared_g, 2);
        ik_metric_add(shared_g, -1);
        ik_metric_observe(shared_h, (i % 2) ? 0.5 : 3);
    }
    return NULL;
}

struct raced {
    ik_metric *first; /* handle of the first lookup */
    int mismatches;   /* lookups that returned another handle */
};

/* Looks the series up itself on every round, racing the other threads'
 * registrations, and renders now and then while others update. */
static void *register_thread(void *arg)
{
    const char *l[] = {"t", "shared", NULL};
    struct raced *r = arg;
    for (int i = 0; i < 2000; i++) {
        ik_metric *c = ik_metrics_counter(shared_reg, "raced_total", "h", l);
        if (!r->first)
            r->first = c;
        if (c != r->first)
            r->mismatches++;
        ik_metric_add(c, 1);
        if (i % 500 == 0) {
            char *out = NULL;
            size_t len;
            if (ik_metrics_render(shared_reg, &out, &len) == 0)
                free(out);
        }
    }
    return NULL;
}

static void test_concurrent_updates(void)
{
    shared_reg = ik_metrics_new();
    CU_ASSERT_FATAL(shared_reg != NULL);
    const double b[] = {1};
    shared_c = ik_metrics_counter(shared_reg, "c_total", "h", NULL);
    shared_g = ik_metrics_gauge(shared_reg, "g", "h", NULL);
    shared_h = ik_metrics_histogram(shared_reg, "h", "h", NULL, b, 1);
    CU_ASSERT_FATAL(shared_c && shared_g && shared_h);

    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++)
        CU_ASSERT_FATAL(pthread_create(&th[t], NULL, update_thread, NULL) == 0);
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);

    CU_ASSERT_DOUBLE_EQUAL(ik_metric_value(shared_c), (double)NTHREADS * NITER, 0);
    CU_ASSERT_DOUBLE_EQUAL(ik_metric_value(shared_g), (double)NTHREADS * NITER, 0);
    CU_ASSERT_DOUBLE_EQUAL(ik_metric_value(shared_h), (double)NTHREADS * NITER, 0);
    CU_ASSERT_DOUBLE_EQUAL(ik_metric_sum(shared_h), NTHREADS * (NITER / 2) * 3.5, 0);
    char *out = render(shared_reg);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "c_total 400000\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "h_bucket{le=\"1\"} 200000\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "h_bucket{le=\"+Inf\"} 400000\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "h_count 400000\n"));
    free(out);

    struct raced r[NTHREADS] = {0};
    for (int t = 0; t < NTHREADS; t++)
        CU_ASSERT_FATAL(pthread_create(&th[t], NULL, register_thread, &r[t]) == 0);
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    const char *l[] = {"t", "shared", NULL};
    ik_metric *raced = ik_metrics_counter(shared_reg, "raced_total", "h", l);
    CU_ASSERT_FATAL(raced != NULL);
    for (int t = 0; t < NTHREADS; t++) {
        CU_ASSERT_PTR_EQUAL(r[t].first, raced);
        CU_ASSERT_EQUAL(r[t].mismatches, 0);
    }
    CU_ASSERT_DOUBLE_EQUAL(ik_metric_value(raced), NTHREADS * 2000.0, 0);
    out = render(shared_reg);
    /* one family header, one series */
    const char *p = strstr(out, "# TYPE raced_total counter\n");
    CU_ASSERT_PTR_NOT_NULL(p);
    if (p)
        CU_ASSERT_PTR_NULL(strstr(p + 1, "# TYPE raced_total"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "raced_total{t=\"shared\"} 8000\n"));
    free(out);
    ik_metrics_free(shared_reg);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("metrics", NULL, NULL);
    if (!s) {
        CU_cleanup_registry();
        return 1;
    }
    CU_add_test(s, "render: small registry byte-exact", test_render_small_registry);
    CU_add_test(s, "render: empty registry, NULL handles", test_empty_and_null);
    CU_add_test(s, "render: label escaping", test_label_escaping);
    CU_add_test(s, "histogram: cumulative buckets and bounds", test_histogram_cumulative);
    CU_add_test(s, "render: numbers", test_number_rendering);
    CU_add_test(s, "same name and labels, same handle", test_same_handle);
    CU_add_test(s, "kind conflict returns NULL", test_kind_conflict);
    CU_add_test(s, "invalid metric and label names", test_invalid_names);
    CU_add_test(s, "update rules per kind", test_update_rules);
    CU_add_test(s, "concurrent updates sum exactly", test_concurrent_updates);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failures = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failures > 0 ? 1 : 0;
}
