/* test_batcher.c: the batch policy: item and cost limits, priority order,
 * FIFO within a priority, max wait, flush, oversized records. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>

#include "batcher.h"

static ik_record *mk(const char *id, int prio)
{
    ik_record *r = ik_record_new(id, NULL);
    r->priority = prio;
    return r;
}

static ik_batcher *mkb(uint32_t items, uint64_t cost, uint64_t wait)
{
    ik_batch_spec s = {.max_items = items, .max_cost = cost, .max_wait_ms = wait};
    return ik_batcher_new(&s);
}

static void free_all(ik_batcher *b)
{
    ik_record *r;
    while ((r = ik_batcher_pop_any(b)))
        ik_record_free(r);
    ik_batcher_free(b);
}

/* full: what makes a stage wake a worker for a batch (not every push). */
static void test_full(void)
{
    ik_batcher *b = mkb(3, 0, 1000);
    char id[8];
    CU_ASSERT_FALSE(ik_batcher_full(b)); /* empty */
    for (int i = 0; i < 4; i++) {
        snprintf(id, sizeof id, "r%d", i);
        ik_batcher_push(b, mk(id, 0), 1, 0);
        CU_ASSERT_EQUAL(ik_batcher_full(b), i >= 2);
    }
    ik_record *out[3];
    CU_ASSERT_EQUAL(ik_batcher_take(b, out), 3);
    CU_ASSERT_FALSE(ik_batcher_full(b)); /* one left */
    for (int i = 0; i < 3; i++)
        ik_record_free(out[i]);
    free_all(b);

    /* By cost: a batch whose total reaches max_cost is full. */
    b = mkb(100, 10, 1000);
    ik_batcher_push(b, mk("a", 0), 6, 0);
    CU_ASSERT_FALSE(ik_batcher_full(b));
    ik_batcher_push(b, mk("b", 0), 4, 0);
    CU_ASSERT_TRUE(ik_batcher_full(b));
    free_all(b);
}

static void test_max_items(void)
{
    ik_batcher *b = mkb(3, 0, 1000);
    uint64_t wake;
    char id[8];
    for (int i = 0; i < 7; i++) {
        snprintf(id, sizeof id, "r%d", i);
        ik_batcher_push(b, mk(id, 0), 1, 0);
        CU_ASSERT_EQUAL(ik_batcher_ready(b, 0, 0, &wake), i >= 2);
    }
    ik_record *out[3];
    CU_ASSERT_EQUAL(ik_batcher_take(b, out), 3);
    CU_ASSERT_STRING_EQUAL(out[0]->id, "r0");
    CU_ASSERT_STRING_EQUAL(out[2]->id, "r2");
    for (int i = 0; i < 3; i++)
        ik_record_free(out[i]);
    CU_ASSERT_EQUAL(ik_batcher_take(b, out), 3);
    for (int i = 0; i < 3; i++)
        ik_record_free(out[i]);
    CU_ASSERT_EQUAL(ik_batcher_count(b), 1);
    CU_ASSERT_FALSE(ik_batcher_ready(b, 0, 0, &wake));
    CU_ASSERT_TRUE(ik_batcher_ready(b, 0, 1, &wake)); /* flush */
    free_all(b);
}

static void test_priority_then_fifo(void)
{
    ik_batcher *b = mkb(10, 0, 0);
    ik_batcher_push(b, mk("low1", -10), 1, 0);
    ik_batcher_push(b, mk("norm1", 0), 1, 0);
    ik_batcher_push(b, mk("high1", 10), 1, 0);
    ik_batcher_push(b, mk("norm2", 0), 1, 0);
    ik_batcher_push(b, mk("high2", 10), 1, 0);
    ik_batcher_push(b, mk("low2", -10), 1, 0);
    ik_record *out[10];
    size_t n = ik_batcher_take(b, out);
    CU_ASSERT_EQUAL(n, 6);
    const char *want[] = {"high1", "high2", "norm1", "norm2", "low1", "low2"};
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_STRING_EQUAL(out[i]->id, want[i]);
        ik_record_free(out[i]);
    }
    ik_batcher_free(b);
}

static void test_max_cost(void)
{
    ik_batcher *b = mkb(10, 100, 1000);
    uint64_t wake;
    ik_batcher_push(b, mk("a", 0), 40, 0);
    ik_batcher_push(b, mk("b", 0), 40, 0);
    CU_ASSERT_FALSE(ik_batcher_ready(b, 0, 0, &wake));
    ik_batcher_push(b, mk("c", 0), 40, 0);
    CU_ASSERT_TRUE(ik_batcher_ready(b, 0, 0, &wake)); /* 120 >= 100 */
    ik_record *out[10];
    CU_ASSERT_EQUAL(ik_batcher_take(b, out), 2); /* a+b = 80; c would make 120 */
    ik_record_free(out[0]);
    ik_record_free(out[1]);
    CU_ASSERT_EQUAL(ik_batcher_count(b), 1);
    free_all(b);
}

static void test_oversized_goes_alone(void)
{
    ik_batcher *b = mkb(10, 100, 0);
    ik_batcher_push(b, mk("huge", 0), 500, 0);
    ik_batcher_push(b, mk("small", 0), 1, 0);
    ik_record *out[10];
    CU_ASSERT_EQUAL(ik_batcher_take(b, out), 1);
    CU_ASSERT_STRING_EQUAL(out[0]->id, "huge");
    ik_record_free(out[0]);
    CU_ASSERT_EQUAL(ik_batcher_take(b, out), 1);
    CU_ASSERT_STRING_EQUAL(out[0]->id, "small");
    ik_record_free(out[0]);
    ik_batcher_free(b);
}

static void test_max_wait(void)
{
    ik_batcher *b = mkb(50, 0, 30000);
    uint64_t wake;
    ik_batcher_push(b, mk("a", 0), 1, 1000);
    ik_batcher_push(b, mk("b", 5), 1, 2000);
    CU_ASSERT_FALSE(ik_batcher_ready(b, 30999, 0, &wake));
    CU_ASSERT_EQUAL(wake, 31000); /* the oldest record, whatever its priority */
    CU_ASSERT_TRUE(ik_batcher_ready(b, 31000, 0, &wake));
    ik_record *out[50];
    CU_ASSERT_EQUAL(ik_batcher_take(b, out), 2);
    CU_ASSERT_STRING_EQUAL(out[0]->id, "b");
    ik_record_free(out[0]);
    ik_record_free(out[1]);
    CU_ASSERT_FALSE(ik_batcher_ready(b, 99999, 0, &wake));
    CU_ASSERT_EQUAL(wake, UINT64_MAX);
    ik_batcher_free(b);
}

static void test_many_growth(void)
{
    /* Rings grow while wrapped: order must survive. */
    ik_batcher *b = mkb(7, 0, 0);
    ik_record *out[7];
    char id[16];
    int next_in = 0, next_out = 0;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 11; i++) {
            snprintf(id, sizeof id, "%d", next_in++);
            ik_batcher_push(b, mk(id, 0), 1, 0);
        }
        size_t n = ik_batcher_take(b, out);
        for (size_t i = 0; i < n; i++) {
            CU_ASSERT_EQUAL(atoi(out[i]->id), next_out);
            next_out++;
            ik_record_free(out[i]);
        }
    }
    size_t n;
    while ((n = ik_batcher_take(b, out)) > 0)
        for (size_t i = 0; i < n; i++) {
            CU_ASSERT_EQUAL(atoi(out[i]->id), next_out);
            next_out++;
            ik_record_free(out[i]);
        }
    CU_ASSERT_EQUAL(next_out, next_in);
    ik_batcher_free(b);
}

int main(void)
{
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("batcher", NULL, NULL);
    CU_add_test(s, "full", test_full);
    CU_add_test(s, "max_items", test_max_items);
    CU_add_test(s, "priority then fifo", test_priority_then_fifo);
    CU_add_test(s, "max_cost", test_max_cost);
    CU_add_test(s, "oversized record goes alone", test_oversized_goes_alone);
    CU_add_test(s, "max_wait from the oldest record", test_max_wait);
    CU_add_test(s, "ring growth keeps order", test_many_growth);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failures = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failures ? 1 : 0;
}
