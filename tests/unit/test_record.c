/*
 * test_record.c: the record's metadata (engine/record.c): set, replace,
 * remove, many keys, and the pointer contract of ik_record_meta (valid until
 * the key is set again).
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

#include "record.h"

static void test_meta_set_replace_remove(void)
{
    ik_record *r = ik_record_new("r1", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_PTR_NULL(ik_record_meta(r, "file"));
    CU_ASSERT_EQUAL(ik_record_set_meta(r, "file", "a.jsonl"), 0);
    CU_ASSERT_EQUAL(ik_record_set_meta(r, "line", "7"), 0);
    CU_ASSERT_STRING_EQUAL(ik_record_meta(r, "file"), "a.jsonl");
    CU_ASSERT_STRING_EQUAL(ik_record_meta(r, "line"), "7");
    /* Replacing a value, longer and shorter, keeps the key findable. */
    CU_ASSERT_EQUAL(ik_record_set_meta(r, "file", "a-much-longer-name.jsonl"), 0);
    CU_ASSERT_STRING_EQUAL(ik_record_meta(r, "file"), "a-much-longer-name.jsonl");
    CU_ASSERT_EQUAL(ik_record_set_meta(r, "file", ""), 0);
    CU_ASSERT_STRING_EQUAL(ik_record_meta(r, "file"), "");
    CU_ASSERT_EQUAL(r->nmeta, 2);
    /* NULL removes; removing a missing key is fine. */
    CU_ASSERT_EQUAL(ik_record_set_meta(r, "file", NULL), 0);
    CU_ASSERT_PTR_NULL(ik_record_meta(r, "file"));
    CU_ASSERT_STRING_EQUAL(ik_record_meta(r, "line"), "7");
    CU_ASSERT_EQUAL(ik_record_set_meta(r, "nothing", NULL), 0);
    CU_ASSERT_EQUAL(r->nmeta, 1);
    /* Bad keys. */
    CU_ASSERT_EQUAL(ik_record_set_meta(r, "", "x"), IK_E_INVAL);
    CU_ASSERT_EQUAL(ik_record_set_meta(r, NULL, "x"), IK_E_INVAL);
    ik_record_free(r);
}

static void test_meta_many_keys(void)
{
    ik_record *r = ik_record_new("r2", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    char k[16], v[16];
    for (int i = 0; i < 40; i++) { /* past the first growth of the array */
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "v%d", i * 3);
        CU_ASSERT_EQUAL(ik_record_set_meta(r, k, v), 0);
    }
    for (int i = 0; i < 40; i += 2) {
        snprintf(k, sizeof k, "k%d", i);
        CU_ASSERT_EQUAL(ik_record_set_meta(r, k, NULL), 0);
    }
    for (int i = 0; i < 40; i++) {
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "v%d", i * 3);
        if (i % 2) {
            CU_ASSERT_STRING_EQUAL(ik_record_meta(r, k), v);
        } else {
            CU_ASSERT_PTR_NULL(ik_record_meta(r, k));
        }
    }
    ik_record_free(r);
}

int main(void)
{
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("record", NULL, NULL);
    CU_add_test(s, "metadata set, replace, remove", test_meta_set_replace_remove);
    CU_add_test(s, "metadata with many keys", test_meta_many_keys);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failures = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failures ? 1 : 0;
}
