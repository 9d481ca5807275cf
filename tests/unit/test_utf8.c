/* test_utf8.c: CUnit tests of the shared UTF-8 validator (common/utf8.c),
 * the one definition the log escaper, the JSON reader and the email library
 * use. */
#include <CUnit/Basic.h>
#include <string.h>

#include "common/utf8.h"

static size_t seq(const char *s, size_t n)
{
    return ik_utf8_seq((const unsigned char *)s, n);
}

static void test_valid_sequences(void)
{
    CU_ASSERT_EQUAL(seq("a", 1), 1);
    CU_ASSERT_EQUAL(seq("", 1), 1);                 /* NUL is valid UTF-8 */
    CU_ASSERT_EQUAL(seq("\xC2\x80", 2), 2);         /* U+0080, the first 2-byte */
    CU_ASSERT_EQUAL(seq("\xDF\xBF", 2), 2);         /* U+07FF */
    CU_ASSERT_EQUAL(seq("\xE0\xA0\x80", 3), 3);     /* U+0800 */
    CU_ASSERT_EQUAL(seq("\xED\x9F\xBF", 3), 3);     /* U+D7FF, below the surrogates */
    CU_ASSERT_EQUAL(seq("\xEE\x80\x80", 3), 3);     /* U+E000, above them */
    CU_ASSERT_EQUAL(seq("\xEF\xBF\xBD", 3), 3);     /* U+FFFD */
    CU_ASSERT_EQUAL(seq("\xF0\x90\x80\x80", 4), 4); /* U+10000 */
    CU_ASSERT_EQUAL(seq("\xF4\x8F\xBF\xBF", 4), 4); /* U+10FFFF, the last */
    CU_ASSERT(ik_utf8_valid("na\xC3\xAFve caf\xC3\xA9 \xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\x99\x82",
                            strlen("na\xC3\xAFve caf\xC3\xA9 \xE6\x9D\xB1\xE4\xBA\xAC "
                                   "\xF0\x9F\x99\x82")));
}

static void test_invalid_sequences(void)
{
    CU_ASSERT_EQUAL(seq("\x80", 1), 0);             /* a lone continuation byte */
    CU_ASSERT_EQUAL(seq("\xC0\x80", 2), 0);         /* overlong NUL */
    CU_ASSERT_EQUAL(seq("\xC1\xBF", 2), 0);         /* overlong */
    CU_ASSERT_EQUAL(seq("\xE0\x9F\xBF", 3), 0);     /* overlong 3-byte */
    CU_ASSERT_EQUAL(seq("\xF0\x8F\xBF\xBF", 4), 0); /* overlong 4-byte */
    CU_ASSERT_EQUAL(seq("\xED\xA0\x80", 3), 0);     /* U+D800, a surrogate */
    CU_ASSERT_EQUAL(seq("\xED\xBF\xBF", 3), 0);     /* U+DFFF */
    CU_ASSERT_EQUAL(seq("\xF4\x90\x80\x80", 4), 0); /* U+110000 */
    CU_ASSERT_EQUAL(seq("\xF5\x80\x80\x80", 4), 0);
    CU_ASSERT_EQUAL(seq("\xFF", 1), 0);
    CU_ASSERT_EQUAL(seq("\xC3\x28", 2), 0);         /* second byte not a continuation */
    CU_ASSERT_EQUAL(seq("\xE6\x9D", 2), 0);         /* cut short by the length */
    CU_ASSERT_EQUAL(seq("\xF0\x9F\x99\x82", 3), 0); /* likewise */
    CU_ASSERT(!ik_utf8_valid("ok \xE6\x9D", 5));
    CU_ASSERT(ik_utf8_valid("", 0));
}

/* The offset of the first bad byte, wherever it falls against the 8-byte
 * ASCII steps, equals what a byte-by-byte walk finds. */
static void test_invalid_at(void)
{
    char buf[64];
    for (size_t len = 0; len <= 40; len++) {
        memset(buf, 'a', sizeof buf);
        CU_ASSERT_EQUAL(ik_utf8_invalid_at(buf, len), len);
        for (size_t bad = 0; bad < len; bad++) {
            memset(buf, 'a', sizeof buf);
            buf[bad] = (char)0xFF;
            CU_ASSERT_EQUAL(ik_utf8_invalid_at(buf, len), bad);
            if (bad + 1 < len) {
                buf[bad] = (char)0xC3; /* a valid two-byte e-acute */
                buf[bad + 1] = (char)0xA9;
                CU_ASSERT_EQUAL(ik_utf8_invalid_at(buf, len), len);
                CU_ASSERT_EQUAL(ik_utf8_invalid_at(buf, bad + 1), bad); /* cut */
            }
        }
    }
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("utf8", NULL, NULL);
    CU_add_test(s, "valid sequences and their lengths", test_valid_sequences);
    CU_add_test(s, "invalid and cut sequences", test_invalid_sequences);
    CU_add_test(s, "first invalid byte, ASCII runs skipped", test_invalid_at);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
