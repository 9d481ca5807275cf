/*
 * test_sb_connstr.c: Azure Service Bus connection strings
 * (lib/servicebus/connstr.c): the grammar of the official SDKs, the
 * Endpoint forms, the credential rules, and that no error ever quotes the
 * key or the signature.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "servicebus/connstr.h"
#include <intake/plugin.h>

#define KEY "Zq9SECRETkeyXy7="
#define SIG "SharedAccessSignature sr=sb%3A%2F%2Fh%2Fq&sig=SECRETsig%3D&se=99&skn=n"

static void test_emulator_string(void)
{
    ik_sb_connstr cs;
    char err[256] = "";
    int rc =
        ik_sb_connstr_parse("Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccess"
                            "Key;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;",
                            &cs, err, sizeof err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(cs.host, "localhost");
    CU_ASSERT_EQUAL(cs.port, 0);
    CU_ASSERT_STRING_EQUAL(cs.key_name, "RootManageSharedAccessKey");
    CU_ASSERT_STRING_EQUAL(cs.key, "SAS_KEY_VALUE");
    CU_ASSERT_PTR_NULL(cs.sas);
    CU_ASSERT_PTR_NULL(cs.entity_path);
    CU_ASSERT_EQUAL(cs.use_emulator, 1);
    ik_sb_connstr_free(&cs);
}

/* Trimming, empty parts, `=` inside values, unknown keys, any case of a key. */
static void test_grammar(void)
{
    ik_sb_connstr cs;
    char err[256] = "";
    int rc = ik_sb_connstr_parse(" ;endpoint = sb://ns.servicebus.windows.net:5673/ ;; "
                                 "SharedAccessKeyName=n ; SharedAccessKey= a=b== ;Foo=bar;"
                                 "EntityPath= q1 ;UseDevelopmentEmulator=True",
                                 &cs, err, sizeof err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(cs.host, "ns.servicebus.windows.net");
    CU_ASSERT_EQUAL(cs.port, 5673);
    CU_ASSERT_STRING_EQUAL(cs.key, "a=b==");
    CU_ASSERT_STRING_EQUAL(cs.entity_path, "q1");
    CU_ASSERT_EQUAL(cs.use_emulator, 0); /* only the exact "true" counts */
    ik_sb_connstr_free(&cs);

    rc = ik_sb_connstr_parse("Endpoint=amqps://[::1]:5671;SharedAccessSignature=" SIG, &cs, err,
                             sizeof err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(cs.host, "[::1]");
    CU_ASSERT_EQUAL(cs.port, 5671);
    CU_ASSERT_STRING_EQUAL(cs.sas, SIG);
    CU_ASSERT_PTR_NULL(cs.key);
    ik_sb_connstr_free(&cs);

    rc = ik_sb_connstr_parse("Endpoint=amqp://127.0.0.1:65535;SharedAccessKeyName=n;"
                             "SharedAccessKey=k",
                             &cs, err, sizeof err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(cs.port, 65535);
    ik_sb_connstr_free(&cs);
}

/* Each refusal: the code, a message naming what is wrong, and never the key. */
static void test_refusals(void)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"SharedAccessKeyName=n;SharedAccessKey=" KEY, "no Endpoint"},
        {"Endpoint=http://h/;SharedAccessKeyName=n;SharedAccessKey=" KEY,
         "part 1 (Endpoint): 'http://h/' does not start with sb://"},
        {"Endpoint=sb://;SharedAccessKeyName=n;SharedAccessKey=" KEY, "has no host"},
        {"Endpoint=sb://h:0;SharedAccessKeyName=n;SharedAccessKey=" KEY, "port outside 1..65535"},
        {"Endpoint=sb://h:65536;SharedAccessKeyName=n;SharedAccessKey=" KEY, "port outside"},
        {"Endpoint=sb://h:;SharedAccessKeyName=n;SharedAccessKey=" KEY, "port outside"},
        {"Endpoint=sb://h:12x;SharedAccessKeyName=n;SharedAccessKey=" KEY, "unexpected 'x'"},
        {"Endpoint=sb://h/q;SharedAccessKeyName=n;SharedAccessKey=" KEY, "unexpected 'q'"},
        {"Endpoint=sb://h;SharedAccessKeyName=n;SharedAccessKey=" KEY ";SharedAccessSignature=" SIG,
         "part 4 (SharedAccessSignature): cannot be combined with SharedAccessKeyName (part 2)"},
        {"Endpoint=sb://h;SharedAccessKey=" KEY,
         "part 2 (SharedAccessKey): no SharedAccessKeyName"},
        {"Endpoint=sb://h;SharedAccessKeyName=n", "no SharedAccessKey goes with it"},
        {"Endpoint=sb://h;EntityPath=q", "neither SharedAccessKey nor SharedAccessSignature"},
        {"Endpoint=sb://h;SharedAccessSignature=" KEY,
         "does not start with 'SharedAccessSignature '"},
        {"Endpoint=sb://h;SharedAccessKeyName=n;Zq9SECRETnoequals", "part 3: no '='"},
        {"Endpoint=sb://h;SharedAccessKeyName=n;SharedAccessKey=;x=" KEY,
         "part 3 (SharedAccessKey): empty value"},
        {"Endpoint=sb://h;SharedAccessKeyName=n;SharedAccessKey=" KEY ";SharedAccessKey=" KEY,
         "part 4 (SharedAccessKey): given twice (first in part 3)"},
        {"SharedAccessSignature=" SIG, "no Endpoint"},
        {"Endpoint=ftp://h;SharedAccessSignature=" SIG, "does not start with sb://"},
        {"Endpoint=sb://h;SharedAccessSignature=" SIG ";SharedAccessSignature=" SIG,
         "part 3 (SharedAccessSignature): given twice (first in part 2)"},
        {"Endpoint=sb://h;SharedAccessSignature=" SIG ";SharedAccessKey=" KEY,
         "part 2 (SharedAccessSignature): cannot be combined with SharedAccessKey (part 3)"},
        {"Endpoint=sb://h:99999;SharedAccessSignature=" SIG, "port outside"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ik_sb_connstr cs;
        char err[256] = "";
        int rc = ik_sb_connstr_parse(cases[i].text, &cs, err, sizeof err);
        CU_ASSERT_EQUAL(rc, IK_E_PARSE);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].want));
        CU_ASSERT_PTR_NULL(strstr(err, "SECRET"));
        CU_ASSERT_PTR_NULL(strstr(err, "Zq9"));
        if (!strstr(err, cases[i].want))
            fprintf(stderr, "\ncase %zu: got [%s], want [%s]\n", i, err, cases[i].want);
        CU_ASSERT_PTR_NULL(cs.host);
        ik_sb_connstr_free(&cs);
    }
    ik_sb_connstr cs;
    char err[64];
    CU_ASSERT_EQUAL(ik_sb_connstr_parse(NULL, &cs, err, sizeof err), IK_E_PARSE);
    ik_sb_connstr_free(&cs);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("sb_connstr", NULL, NULL);
    CU_add_test(s, "the emulator's connection string", test_emulator_string);
    CU_add_test(s, "trimming, empty parts, = in values, unknown keys", test_grammar);
    CU_add_test(s, "refusals name the part and never the key", test_refusals);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
