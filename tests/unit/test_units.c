/* test_units.c: CUnit tests of the value parsers in engine/units.c. */
#include <CUnit/Basic.h>
#include <stdint.h>
#include <string.h>

#include <intake/plugin.h>

#include "units.h"

static uint64_t dur(const char *s, int *rc)
{
    uint64_t v = 12345;
    *rc = ik_parse_duration_ms(s, &v);
    return v;
}

static void test_duration_units(void)
{
    int rc;
    CU_ASSERT_EQUAL(dur("250ms", &rc), 250);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(dur("30s", &rc), 30000);
    CU_ASSERT_EQUAL(dur("5m", &rc), 300000);
    CU_ASSERT_EQUAL(dur("1h", &rc), 3600000);
    CU_ASSERT_EQUAL(dur("1.5s", &rc), 1500);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(dur("0.25m", &rc), 15000);
    CU_ASSERT_EQUAL(dur("30S", &rc), 30000);
    CU_ASSERT_EQUAL(dur("250MS", &rc), 250);
    CU_ASSERT_EQUAL(rc, 0);
}

static void test_duration_bare_seconds(void)
{
    int rc;
    CU_ASSERT_EQUAL(dur("30", &rc), 30000);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(dur("0.5", &rc), 500);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(dur(".5", &rc), 500);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(dur("0", &rc), 0);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(dur("0ms", &rc), 0);
    CU_ASSERT_EQUAL(rc, 0);
    /* sub-millisecond fractions round to the nearest ms */
    CU_ASSERT_EQUAL(dur("0.0004", &rc), 0);
    CU_ASSERT_EQUAL(dur("0.0006", &rc), 1);
    CU_ASSERT_EQUAL(dur("1.5ms", &rc), 2);
    /* many fractional digits are accepted */
    CU_ASSERT_EQUAL(dur("1.0000000000000000001s", &rc), 1000);
    CU_ASSERT_EQUAL(rc, 0);
}

static void test_duration_rejects(void)
{
    const char *bad[] = {"",      " 30s",  "30s ", "30 s",  "-1s",  "+1s", "abc",
                         "30x",   "1d",    "ms",   ".",     "1..5", "1e3", "s",
                         "30sec", "1.5.s", "0x10", "30s\n", "1h2m"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 777;
        int rc = ik_parse_duration_ms(bad[i], &v);
        CU_ASSERT_EQUAL(rc, IK_E_INVAL);
        CU_ASSERT_EQUAL(v, 777); /* untouched on error */
        if (rc != IK_E_INVAL)
            fprintf(stderr, "accepted bad duration '%s'\n", bad[i]);
    }
    uint64_t v;
    CU_ASSERT_EQUAL(ik_parse_duration_ms(NULL, &v), IK_E_INVAL);
}

static void test_duration_overflow(void)
{
    int rc;
    CU_ASSERT_EQUAL(dur("18446744073709551615ms", &rc), UINT64_MAX);
    CU_ASSERT_EQUAL(rc, 0);
    dur("18446744073709551616ms", &rc);
    CU_ASSERT_EQUAL(rc, IK_E_INVAL);
    CU_ASSERT_EQUAL(dur("18446744073709551s", &rc), 18446744073709551000u);
    CU_ASSERT_EQUAL(rc, 0);
    dur("18446744073709552s", &rc);
    CU_ASSERT_EQUAL(rc, IK_E_INVAL);
    dur("5124095576030431h", &rc);
    CU_ASSERT_EQUAL(rc, IK_E_INVAL);
    CU_ASSERT_EQUAL(dur("5124095576030h", &rc), 18446744073708000000u);
    CU_ASSERT_EQUAL(rc, 0);
    /* the fraction pushes it over */
    dur("18446744073709551.9s", &rc);
    CU_ASSERT_EQUAL(rc, IK_E_INVAL);
    dur("99999999999999999999999999", &rc);
    CU_ASSERT_EQUAL(rc, IK_E_INVAL);
}

static uint64_t sz(const char *s, int *rc)
{
    uint64_t v = 999;
    *rc = ik_parse_size(s, &v);
    return v;
}

static void test_size(void)
{
    int rc;
    CU_ASSERT_EQUAL(sz("512", &rc), 512);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(sz("256K", &rc), 262144);
    CU_ASSERT_EQUAL(sz("256KB", &rc), 262144);
    CU_ASSERT_EQUAL(sz("256kb", &rc), 262144);
    CU_ASSERT_EQUAL(sz("256KiB", &rc), 262144);
    CU_ASSERT_EQUAL(sz("4M", &rc), 4194304);
    CU_ASSERT_EQUAL(sz("4m", &rc), 4194304);
    CU_ASSERT_EQUAL(sz("1G", &rc), 1073741824);
    CU_ASSERT_EQUAL(sz("1T", &rc), 1099511627776u);
    CU_ASSERT_EQUAL(sz("10B", &rc), 10);
    CU_ASSERT_EQUAL(sz("1.5K", &rc), 1536);
    CU_ASSERT_EQUAL(sz("0", &rc), 0);
    CU_ASSERT_EQUAL(rc, 0);
}

static void test_size_rejects_and_overflow(void)
{
    const char *bad[] = {"",    "4MBs", "4X",  "-1",    "K",  " 1",  "1 K",  "1KiBB",
                         "1Bi", "1BB",  "4 M", "1.5.K", "+1", "1e3", "0x10", "1KB "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 5;
        int rc = ik_parse_size(bad[i], &v);
        CU_ASSERT_EQUAL(rc, IK_E_INVAL);
        CU_ASSERT_EQUAL(v, 5);
        if (rc != IK_E_INVAL)
            fprintf(stderr, "accepted bad size '%s'\n", bad[i]);
    }
    int rc;
    CU_ASSERT_EQUAL(sz("18446744073709551615", &rc), UINT64_MAX);
    CU_ASSERT_EQUAL(rc, 0);
    sz("18446744073709551616", &rc);
    CU_ASSERT_EQUAL(rc, IK_E_INVAL);
    CU_ASSERT_EQUAL(sz("16777215T", &rc), 16777215ull << 40);
    CU_ASSERT_EQUAL(rc, 0);
    sz("16777216T", &rc); /* exactly 2^64 */
    CU_ASSERT_EQUAL(rc, IK_E_INVAL);
    sz("17179869184G", &rc);
    CU_ASSERT_EQUAL(rc, IK_E_INVAL);
    sz("18446744073709551615.6", &rc); /* rounds up to 2^64 */
    CU_ASSERT_EQUAL(rc, IK_E_INVAL);
    CU_ASSERT_EQUAL(ik_parse_size(NULL, &(uint64_t){0}), IK_E_INVAL);
}

static void test_int(void)
{
    int64_t v;
    CU_ASSERT_EQUAL(ik_parse_int("0", &v), 0);
    CU_ASSERT_EQUAL(v, 0);
    CU_ASSERT_EQUAL(ik_parse_int("-5", &v), 0);
    CU_ASSERT_EQUAL(v, -5);
    CU_ASSERT_EQUAL(ik_parse_int("+7", &v), 0);
    CU_ASSERT_EQUAL(v, 7);
    CU_ASSERT_EQUAL(ik_parse_int("9223372036854775807", &v), 0);
    CU_ASSERT_EQUAL(v, INT64_MAX);
    CU_ASSERT_EQUAL(ik_parse_int("-9223372036854775808", &v), 0);
    CU_ASSERT_EQUAL(v, INT64_MIN);
    const char *bad[] = {"9223372036854775808",
                         "-9223372036854775809",
                         "1.0",
                         "",
                         " 1",
                         "1 ",
                         "0x10",
                         "--1",
                         "-",
                         "+",
                         "1e3",
                         "12abc",
                         "\t3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 42;
        CU_ASSERT_EQUAL(ik_parse_int(bad[i], &v), IK_E_INVAL);
        CU_ASSERT_EQUAL(v, 42);
    }
    CU_ASSERT_EQUAL(ik_parse_int(NULL, &v), IK_E_INVAL);
}

static void test_double(void)
{
    double d;
    CU_ASSERT_EQUAL(ik_parse_double("0.5", &d), 0);
    CU_ASSERT_DOUBLE_EQUAL(d, 0.5, 1e-12);
    CU_ASSERT_EQUAL(ik_parse_double("-1e3", &d), 0);
    CU_ASSERT_DOUBLE_EQUAL(d, -1000.0, 1e-9);
    CU_ASSERT_EQUAL(ik_parse_double(".5", &d), 0);
    CU_ASSERT_EQUAL(ik_parse_double("7", &d), 0);
    CU_ASSERT_DOUBLE_EQUAL(d, 7.0, 1e-12);
    const char *bad[] = {"inf", "nan", "-inf", "1e999", "-1e999",   "",
                         " 1",  "1 ",  "1x",   "e5",    "INFINITY", "abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = 3.0;
        CU_ASSERT_EQUAL(ik_parse_double(bad[i], &d), IK_E_INVAL);
        CU_ASSERT_DOUBLE_EQUAL(d, 3.0, 0);
    }
}

static void test_bool(void)
{
    const char *yes[] = {"true", "TRUE", "yes", "Yes", "on", "ON", "1"};
    const char *no[] = {"false", "False", "no", "NO", "off", "Off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        int v = -1;
        CU_ASSERT_EQUAL(ik_parse_bool(yes[i], &v), 0);
        CU_ASSERT_EQUAL(v, 1);
        v = -1;
        CU_ASSERT_EQUAL(ik_parse_bool(no[i], &v), 0);
        CU_ASSERT_EQUAL(v, 0);
    }
    const char *bad[] = {"", "maybe", "2", "y", "n", "true ", " yes", "t", "enable"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int v = 9;
        CU_ASSERT_EQUAL(ik_parse_bool(bad[i], &v), IK_E_INVAL);
        CU_ASSERT_EQUAL(v, 9);
    }
    CU_ASSERT_EQUAL(ik_parse_bool(NULL, &(int){0}), IK_E_INVAL);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("units", NULL, NULL);
    if (!s) {
        CU_cleanup_registry();
        return 1;
    }
    CU_add_test(s, "duration units", test_duration_units);
    CU_add_test(s, "duration bare seconds", test_duration_bare_seconds);
    CU_add_test(s, "duration rejects", test_duration_rejects);
    CU_add_test(s, "duration overflow", test_duration_overflow);
    CU_add_test(s, "size", test_size);
    CU_add_test(s, "size rejects and overflow", test_size_rejects_and_overflow);
    CU_add_test(s, "int", test_int);
    CU_add_test(s, "double", test_double);
    CU_add_test(s, "bool", test_bool);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    unsigned errs = CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return (fails > 0 || errs > 0) ? 1 : 0;
}
