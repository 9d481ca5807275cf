/* test_retry.c: the retry schedule (caps, full jitter bounds, attempts) and
 * the delay queue's due-time order. */
#include <CUnit/Basic.h>

#include "delayq.h"
#include "retry.h"

static void test_caps(void)
{
    ik_retry_spec s = {.max_attempts = 5, .initial_backoff_ms = 1000, .max_backoff_ms = 10000};
    CU_ASSERT_EQUAL(ik_retry_cap_ms(&s, 1), 1000);
    CU_ASSERT_EQUAL(ik_retry_cap_ms(&s, 2), 2000);
    CU_ASSERT_EQUAL(ik_retry_cap_ms(&s, 3), 4000);
    CU_ASSERT_EQUAL(ik_retry_cap_ms(&s, 4), 8000);
    CU_ASSERT_EQUAL(ik_retry_cap_ms(&s, 5), 10000);
    CU_ASSERT_EQUAL(ik_retry_cap_ms(&s, 500), 10000); /* no overflow */
}

static void test_jitter_bounds_and_spread(void)
{
    ik_retry_spec s = {.max_attempts = 5, .initial_backoff_ms = 100, .max_backoff_ms = 60000};
    uint64_t rng = 42, lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t w = ik_retry_backoff_ms(&s, 3, &rng);
        CU_ASSERT(w <= 400);
        lo = w < lo ? w : lo;
        hi = w > hi ? w : hi;
    }
    /* Full jitter: the whole window is used, not just its top. */
    CU_ASSERT(lo < 40);
    CU_ASSERT(hi > 360);
}

static void test_allowed(void)
{
    ik_retry_spec s = {.max_attempts = 3, .initial_backoff_ms = 1, .max_backoff_ms = 1};
    CU_ASSERT_TRUE(ik_retry_allowed(&s, 1));
    CU_ASSERT_TRUE(ik_retry_allowed(&s, 2));
    CU_ASSERT_FALSE(ik_retry_allowed(&s, 3));
    ik_retry_spec once = {.max_attempts = 1};
    CU_ASSERT_FALSE(ik_retry_allowed(&once, 1));
}

static void test_delayq_order(void)
{
    ik_delayq *q = ik_delayq_new();
    ik_record *r[6];
    uint64_t due[6] = {50, 10, 30, 10, 70, 0};
    for (int i = 0; i < 6; i++) {
        r[i] = ik_record_new("x", NULL);
        ik_delayq_push(q, r[i], i, due[i]);
    }
    int target;
    CU_ASSERT_EQUAL(ik_delayq_next_due(q), 0);
    CU_ASSERT_PTR_EQUAL(ik_delayq_pop_due(q, 5, &target), r[5]);
    CU_ASSERT_PTR_NULL(ik_delayq_pop_due(q, 5, &target));
    CU_ASSERT_PTR_EQUAL(ik_delayq_pop_due(q, 10, &target), r[1]); /* ties: insertion order */
    CU_ASSERT_EQUAL(target, 1);
    CU_ASSERT_PTR_EQUAL(ik_delayq_pop_due(q, 10, &target), r[3]);
    CU_ASSERT_PTR_EQUAL(ik_delayq_pop_due(q, UINT64_MAX, &target), r[2]);
    CU_ASSERT_PTR_EQUAL(ik_delayq_pop_due(q, UINT64_MAX, &target), r[0]);
    CU_ASSERT_PTR_EQUAL(ik_delayq_pop_due(q, UINT64_MAX, &target), r[4]);
    CU_ASSERT_EQUAL(ik_delayq_count(q), 0);
    CU_ASSERT_EQUAL(ik_delayq_next_due(q), UINT64_MAX);
    for (int i = 0; i < 6; i++)
        ik_record_free(r[i]);
    ik_delayq_free(q);
}

int main(void)
{
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("retry", NULL, NULL);
    CU_add_test(s, "exponential caps", test_caps);
    CU_add_test(s, "full jitter bounds and spread", test_jitter_bounds_and_spread);
    CU_add_test(s, "max_attempts", test_allowed);
    CU_add_test(s, "delay queue order", test_delayq_order);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failures = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failures ? 1 : 0;
}
