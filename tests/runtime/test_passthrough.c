/*
 * test_passthrough.c: unit tests of the `passthrough` processor against the
 * fake host: payloads untouched, processed_by set, cost() with and without
 * cost_field.
 */
#include <string.h>

#include <CUnit/Basic.h>

#include "fake_host.h"

const ik_plugin *ik_plugin_entry(void);

static void test_process_sets_processed_by(void)
{
    fake_host fh;
    fh_init(&fh, ik_plugin_entry(), NULL);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    json_object *payload = json_tokener_parse("{\"subject\":\"hi\"}");
    ik_record *r = fh_record("a", payload);
    ik_record *recs[] = {r};
    ik_result res[1];
    memset(res, 0, sizeof res);
    CU_ASSERT_EQUAL(fh.plugin->process(fh.state, NULL, recs, 1, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_OK);
    CU_ASSERT_STRING_EQUAL(fh_meta_get(r, "processed_by"), "test");
    CU_ASSERT_PTR_EQUAL(r->payload, payload);
    CU_ASSERT_STRING_EQUAL(json_object_to_json_string_ext(r->payload, JSON_C_TO_STRING_PLAIN),
                           "{\"subject\":\"hi\"}");
    CU_ASSERT_EQUAL(fh.plugin->cost(fh.state, r), 1);
    fh_record_free(r);
    fh_free(&fh);
}

static void test_cost_field(void)
{
    const char *opts[] = {"cost_field", "tokens", NULL};
    fake_host fh;
    fh_init(&fh, ik_plugin_entry(), opts);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    struct {
        const char *json;
        uint64_t cost;
    } cases[] = {
        {"{\"tokens\":250}", 250}, {"{\"tokens\":\"abcd\"}", 4}, {"{}", 1},
        {"{\"tokens\":[1]}", 1},   {"{\"tokens\":-5}", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ik_record *r = fh_record("x", json_tokener_parse(cases[i].json));
        CU_ASSERT_EQUAL(fh.plugin->cost(fh.state, r), cases[i].cost);
        fh_record_free(r);
    }
    fh_free(&fh);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("passthrough", NULL, NULL);
    CU_add_test(s, "process sets processed_by, payload untouched", test_process_sets_processed_by);
    CU_add_test(s, "cost_field", test_cost_field);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
