/* test_buf.c: CUnit tests of the growable buffer (common/buf.c): appends,
 * reserve, take, and the array growth the engine and the libraries share. */
#include <CUnit/Basic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

static void test_append_and_take(void)
{
    ik_buf b = {0};
    for (int i = 0; i < 1000; i++)
        ik_buf_adds(&b, "0123456789");
    ik_buf_addc(&b, '!');
    CU_ASSERT_EQUAL(b.len, 10001);
    CU_ASSERT(b.cap > b.len);
    CU_ASSERT_EQUAL(b.p[10000], '!');
    CU_ASSERT_EQUAL(b.p[10001], '\0');
    CU_ASSERT_EQUAL(memcmp(b.p + 9990, "0123456789", 10), 0);
    char *s = ik_buf_take(&b);
    CU_ASSERT_PTR_NOT_NULL(s);
    CU_ASSERT_EQUAL(strlen(s), 10001);
    CU_ASSERT_PTR_NULL(b.p);
    CU_ASSERT_EQUAL(b.len + b.cap, 0);
    free(s);
    s = ik_buf_take(&b); /* nothing appended: the empty string */
    CU_ASSERT_STRING_EQUAL(s, "");
    free(s);
}

static void test_reserve(void)
{
    ik_buf b = {0};
    CU_ASSERT_EQUAL(ik_buf_reserve(&b, 1000), 0);
    CU_ASSERT(b.cap >= 1001);
    char *p = b.p;
    size_t cap = b.cap;
    ik_buf_add(&b, "abc", 3);
    CU_ASSERT_EQUAL(ik_buf_reserve(&b, 500), 0);
    CU_ASSERT_PTR_EQUAL(b.p, p); /* room enough: no move */
    CU_ASSERT_EQUAL(b.cap, cap);
    CU_ASSERT_STRING_EQUAL(b.p, "abc");
    /* a size that cannot be: out of memory, appends ignored from then on */
    CU_ASSERT_EQUAL(ik_buf_reserve(&b, SIZE_MAX), -1);
    CU_ASSERT(b.oom);
    ik_buf_adds(&b, "def");
    CU_ASSERT_EQUAL(b.len, 3);
    CU_ASSERT_PTR_NULL(ik_buf_take(&b));
    CU_ASSERT_PTR_NULL(b.p);
}

static void test_array_grow(void)
{
    uint32_t *v = NULL;
    size_t n = 0, cap = 0;
    for (uint32_t i = 0; i < 5000; i++) {
        uint32_t *g = ik_array_grow(v, &cap, n + 1, sizeof *g);
        CU_ASSERT_PTR_NOT_NULL_FATAL(g);
        v = g;
        v[n++] = i;
    }
    CU_ASSERT(cap >= 5000);
    CU_ASSERT(cap < 10000 * 2);
    int ok = 1;
    for (uint32_t i = 0; i < 5000; i++)
        ok &= v[i] == i;
    CU_ASSERT(ok);
    /* enough room: the same array back, cap untouched */
    size_t before = cap;
    CU_ASSERT_PTR_EQUAL(ik_array_grow(v, &cap, 10, sizeof *v), v);
    CU_ASSERT_EQUAL(cap, before);
    /* need * size overflows: NULL, the array and cap untouched */
    CU_ASSERT_PTR_NULL(ik_array_grow(v, &cap, SIZE_MAX / 2, sizeof *v));
    CU_ASSERT_EQUAL(cap, before);
    CU_ASSERT_EQUAL(v[4999], 4999);
    free(v);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("buf", NULL, NULL);
    CU_add_test(s, "appends and take", test_append_and_take);
    CU_add_test(s, "reserve, and out of memory", test_reserve);
    CU_add_test(s, "array growth", test_array_grow);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
