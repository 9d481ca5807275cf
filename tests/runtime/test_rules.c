/*
 * test_rules.c: the `rules` processor (plugins/processors/rules) against the
 * fake host: a batch with a good and a malformed email, the extraction put
 * in the payload, metadata and metrics. The extractor itself is tested in
 * tests/unit/test_rules_extract.c.
 */
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "fake_host.h"

const ik_plugin *rules_descriptor(void);

static void test_processor(void)
{
    fake_host fh;
    fh_init(&fh, rules_descriptor(), NULL);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    ik_record *ok =
        fh_record("a", json_tokener_parse("{\"sender_email\":\"x@y.z\",\"subject\":\"s\",\"body\":"
                                          "\"Name: Jo Park\\n\\nOn Mon, Bob wrote:\\n> Phone: "
                                          "212-555-0100\"}"));
    ik_record *bad = fh_record("b", json_tokener_parse("{\"body\":42}"));
    ik_record *recs[] = {ok, bad};
    ik_result res[2];
    memset(res, 0, sizeof res);
    CU_ASSERT_EQUAL(fh.plugin->process(fh.state, NULL, recs, 2, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_OK);
    CU_ASSERT_EQUAL(res[1].status, IK_FAIL);
    CU_ASSERT_PTR_NOT_NULL(strstr(res[1].reason, "\"body\" must be string"));
    json_object *ex, *name, *phone;
    CU_ASSERT_TRUE_FATAL(json_object_object_get_ex(ok->payload, "extraction", &ex));
    CU_ASSERT_TRUE_FATAL(json_object_object_get_ex(ex, "candidate_name", &name));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(name), "Jo Park");
    /* The phone is only in the quoted reply, which the diet removed. */
    CU_ASSERT_TRUE(json_object_object_get_ex(ex, "phone", &phone) && phone == NULL);
    CU_ASSERT_STRING_EQUAL(fh_meta_get(ok, "extracted_by"), "rules");
    CU_ASSERT_EQUAL(fh_metric_value(&fh, "extractions_total"), 1);
    fh_record_free(ok);
    fh_record_free(bad);
    fh_free(&fh);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("rules processor", NULL, NULL);
    CU_add_test(s, "the processor", test_processor);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
