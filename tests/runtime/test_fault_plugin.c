/*
 * test_fault_plugin.c: unit tests of the test-only `test_fault` processor
 * (tests/plugins/fault.c), which integration tests rely on: transient faults
 * clear after fail_times attempts, match selects records, permanent and
 * release statuses, batch logging, bad mode rejected.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "fake_host.h"

const ik_plugin *ik_plugin_entry(void);

static void run_batch(fake_host *fh, ik_record **recs, size_t n, ik_result *res)
{
    memset(res, 0, n * sizeof *res);
    CU_ASSERT_EQUAL(fh->plugin->process(fh->state, NULL, recs, n, res), 0);
}

static void test_transient_then_ok(void)
{
    const char *opts[] = {"mode", "transient", "match", "-2", "fail_times", "2", NULL};
    fake_host fh;
    fh_init(&fh, ik_plugin_entry(), opts);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    ik_record *a = fh_record("rec-1", json_object_new_object());
    ik_record *b = fh_record("rec-2", json_object_new_object());
    ik_record *recs[] = {a, b};
    ik_result res[2];
    for (unsigned attempt = 1; attempt <= 3; attempt++) {
        a->attempts = b->attempts = attempt;
        run_batch(&fh, recs, 2, res);
        CU_ASSERT_EQUAL(res[0].status, IK_OK);
        CU_ASSERT_EQUAL(res[1].status, attempt <= 2 ? IK_RETRY : IK_OK);
    }
    a->attempts = b->attempts = 1;
    run_batch(&fh, recs, 2, res);
    CU_ASSERT_STRING_EQUAL(res[1].reason, "test_fault mode=transient: attempt 1 of 2 failing");
    fh_record_free(a);
    fh_record_free(b);
    fh_free(&fh);
}

static void test_permanent_release_and_log(void)
{
    char path[] = "/tmp/intake-fault-test-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    const char *opts[] = {"mode", "permanent", "log_batches", path, NULL};
    fake_host fh;
    fh_init(&fh, ik_plugin_entry(), opts);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    ik_record *a = fh_record("x-1", json_object_new_object());
    ik_record *b = fh_record("x-2", json_object_new_object());
    ik_record *recs[] = {a, b};
    ik_result res[2];
    run_batch(&fh, recs, 2, res);
    CU_ASSERT_EQUAL(res[0].status, IK_FAIL);
    CU_ASSERT_EQUAL(res[1].status, IK_FAIL);
    run_batch(&fh, recs + 1, 1, res);
    fh_free(&fh);
    FILE *f = fopen(path, "r");
    char line[256];
    CU_ASSERT_PTR_NOT_NULL_FATAL(fgets(line, sizeof line, f));
    CU_ASSERT_STRING_EQUAL(line, "2 x-1,x-2\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fgets(line, sizeof line, f));
    CU_ASSERT_STRING_EQUAL(line, "1 x-2\n");
    fclose(f);
    unlink(path);

    const char *opts2[] = {"mode", "release", "match", "x-2", NULL};
    fh_init(&fh, ik_plugin_entry(), opts2);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    run_batch(&fh, recs, 2, res);
    CU_ASSERT_EQUAL(res[0].status, IK_OK);
    CU_ASSERT_EQUAL(res[1].status, IK_RELEASE);
    fh_free(&fh);
    fh_record_free(a);
    fh_record_free(b);
}

static void test_bad_mode_and_cost(void)
{
    const char *opts[] = {"mode", "explode", NULL};
    fake_host fh;
    fh_init(&fh, ik_plugin_entry(), opts);
    CU_ASSERT_EQUAL(fh_create(&fh), IK_E_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&fh), "explode"));
    fh_free(&fh);
    const char *opts2[] = {"cost_field", "body", NULL};
    fh_init(&fh, ik_plugin_entry(), opts2);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    ik_record *r = fh_record("c", json_tokener_parse("{\"body\":\"12345\"}"));
    CU_ASSERT_EQUAL(fh.plugin->cost(fh.state, r), 5);
    fh_record_free(r);
    fh_free(&fh);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("test_fault", NULL, NULL);
    CU_add_test(s, "transient clears after fail_times", test_transient_then_ok);
    CU_add_test(s, "permanent, release, log_batches", test_permanent_release_and_log);
    CU_add_test(s, "bad mode, cost_field", test_bad_mode_and_cost);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
