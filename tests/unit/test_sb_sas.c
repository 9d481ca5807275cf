/*
 * test_sb_sas.c: SAS tokens (lib/servicebus/sas.c): the test vector of
 * servicebus.md §2 byte for byte, encodeURIComponent's character set, and
 * reading the expiry back from a signature string.
 */
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "servicebus/sas.h"

static void test_vector(void)
{
    char *t = ik_sb_sas_token("sb://127.0.0.1:5673/q1", "RootManageSharedAccessKey",
                              "SAS_KEY_VALUE", 1795863558);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_STRING_EQUAL(t, "SharedAccessSignature sr=sb%3A%2F%2F127.0.0.1%3A5673%2Fq1"
                              "&sig=RKxhACiiBtX6mvnj2OJnJDZa%2B2%2BP1GPNxMN8kRer%2Fvo%3D"
                              "&se=1795863558&skn=RootManageSharedAccessKey");
    CU_ASSERT_EQUAL(ik_sb_sas_expiry(t), 1795863558);
    free(t);
    /* Another key or expiry signs differently. */
    t = ik_sb_sas_token("sb://127.0.0.1:5673/q1", "n", "SAS_KEY_VALUF", 1795863558);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_PTR_NULL(strstr(t, "RKxhACiiBtX6mvnj2OJnJDZa"));
    free(t);
    CU_ASSERT_PTR_NULL(ik_sb_sas_token(NULL, "n", "k", 1));
    CU_ASSERT_PTR_NULL(ik_sb_sas_token("sb://h/q", "n", NULL, 1));
}

static void test_url_encode(void)
{
    char *e = ik_sb_url_encode("aZ09-_.!~*'() :/?#[]@$&+,;=%\"<>\xc3\xa9");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(e, "aZ09-_.!~*'()%20%3A%2F%3F%23%5B%5D%40%24%26%2B%2C%3B%3D%25%22%3C%3E"
                              "%C3%A9");
    free(e);
    e = ik_sb_url_encode("");
    CU_ASSERT_STRING_EQUAL(e, "");
    free(e);
}

static void test_expiry(void)
{
    CU_ASSERT_EQUAL(ik_sb_sas_expiry("SharedAccessSignature se=12&sr=x"), 12);
    CU_ASSERT_EQUAL(ik_sb_sas_expiry("SharedAccessSignature sr=x&skn=a&se=345"), 345);
    CU_ASSERT_EQUAL(ik_sb_sas_expiry("SharedAccessSignature sr=se%3D1&sig=x"), 0);
    CU_ASSERT_EQUAL(ik_sb_sas_expiry("SharedAccessSignature sr=x&se=12a"), 0);
    CU_ASSERT_EQUAL(ik_sb_sas_expiry("SharedAccessSignature sr=x&se="), 0);
    CU_ASSERT_EQUAL(ik_sb_sas_expiry("SharedAccessSignature se=99999999999999999999999"), 0);
    CU_ASSERT_EQUAL(ik_sb_sas_expiry("sr=x&se=12"), 0);
    CU_ASSERT_EQUAL(ik_sb_sas_expiry(NULL), 0);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("sb_sas", NULL, NULL);
    CU_add_test(s, "test vector 1 of servicebus.md", test_vector);
    CU_add_test(s, "encodeURIComponent", test_url_encode);
    CU_add_test(s, "expiry of a signature string", test_expiry);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
