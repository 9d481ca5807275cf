/*
 * test_email_diet.c: unit tests of the token diet: whitespace collapsing,
 * quoted replies ("On ... wrote:", ">" lines, Outlook From/Sent blocks,
 * "Original Message"), forwards keeping the forwarded text, disclaimers, the
 * cap, the per-step counts, and em_normalize keeping the untouched body.
 */
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "email/email.h"
#include <intake/plugin.h>

static const em_diet_opts all = {.quotes = 1, .disclaimers = 1, .max_chars = 0};

static char *diet(const char *in, const em_diet_opts *o, em_diet_stats *st)
{
    char *out = NULL;
    CU_ASSERT_EQUAL(em_diet(in, o, &out, st), 0);
    CU_ASSERT_EQUAL(st->chars_in - st->chars_out,
                    st->quote_chars + st->disclaimer_chars + st->whitespace_chars + st->cut_chars);
    return out;
}

static void test_whitespace(void)
{
    em_diet_stats st;
    char *t =
        diet("\n\n  Hello \t  world  \r\n\r\n\r\n\r\nsecond\xc2\xa0\xc2\xa0line   \n\n", &all, &st);
    CU_ASSERT_STRING_EQUAL(t, "Hello world\n\nsecond line");
    CU_ASSERT_EQUAL(st.chars_out, 24);
    CU_ASSERT_TRUE(st.whitespace_chars > 10);
    CU_ASSERT_EQUAL(st.quote_chars, 0);
    free(t);
    t = diet("", &all, &st);
    CU_ASSERT_STRING_EQUAL(t, "");
    CU_ASSERT_EQUAL(st.chars_in, 0);
    free(t);
}

static const char *reply =
    "Thanks for the call yesterday. As discussed I am based in Atlanta, GA and can start in "
    "March.\n\nAdaeze\n\nOn Tue, Nov 24, 2026 at 9:02 AM Recruiting <jobs@example.com> wrote:\n"
    "> Hi Adaeze, thanks for applying...\n> call 800-555-0100\n";

static void test_quotes(void)
{
    em_diet_stats st;
    char *t = diet(reply, &all, &st);
    CU_ASSERT_STRING_EQUAL(t, "Thanks for the call yesterday. As discussed I am based in Atlanta, "
                              "GA and can start in March.\n\nAdaeze");
    CU_ASSERT_TRUE(st.quote_chars > 90);
    free(t);
    /* the marker spread over two lines */
    t = diet("A long enough answer that is clearly the new part of this reply message, yes.\n"
             "On Mon, 23 Nov 2026 at 10:00, Someone Long Name <someone@example.com>\nwrote:\n"
             "old text\n",
             &all, &st);
    CU_ASSERT_PTR_NULL(strstr(t, "old text"));
    free(t);
    /* stray '>' lines in the middle go too */
    t = diet("top\n> quoted\nbottom\n", &all, &st);
    CU_ASSERT_STRING_EQUAL(t, "top\nbottom");
    free(t);
    /* quotes kept when asked */
    em_diet_opts keep = all;
    keep.quotes = 0;
    t = diet(reply, &keep, &st);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "800-555-0100"));
    CU_ASSERT_EQUAL(st.quote_chars, 0);
    free(t);
}

static void test_outlook_and_forward(void)
{
    em_diet_stats st;
    char *t = diet("Yes, I am still interested in the Senior Paraplanner role and can talk on "
                   "Friday afternoon.\n\n________________________________\n"
                   "From: Recruiting <jobs@example.com>\nSent: Thursday, November 26, 2026\n"
                   "To: Olivia\nSubject: Next steps\n\nold question\n",
                   &all, &st);
    CU_ASSERT_PTR_NULL(strstr(t, "old question"));
    CU_ASSERT_PTR_NULL(strstr(t, "Sent:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "Friday afternoon."));
    free(t);
    /* Outlook block without a separator line */
    t = diet("Here is the long answer you asked for, with every detail about the candidate "
             "that matters.\nFrom: A <a@b.c>\nSent: Monday\nTo: B\nSubject: x\n\nold\n",
             &all, &st);
    CU_ASSERT_PTR_NULL(strstr(t, "old"));
    free(t);
    /* a forward with a short note keeps the forwarded text, drops its headers */
    t = diet("See below.\n\n---------- Forwarded message ---------\nFrom: Sofia <s@x.com>\n"
             "Date: Fri, Nov 27, 2026\nSubject: Candidate\nTo: Kevin <k@x.com>\n\n"
             "I am a Licensed Insurance Agent.\n",
             &all, &st);
    CU_ASSERT_STRING_EQUAL(t, "See below.\n\nI am a Licensed Insurance Agent.");
    free(t);
}

static void test_disclaimer(void)
{
    em_diet_stats st;
    const char *in =
        "Please call me at 555-0100.\n\nCONFIDENTIALITY NOTICE: This e-mail and any "
        "attachments are confidential and may be privileged. If you are not the intended "
        "recipient, notify the sender.\n\nThe information contained in this message is "
        "intended solely for the addressee; it may be privileged and confidential, and "
        "any unauthorized review or distribution is strictly prohibited by law.\n";
    char *t = diet(in, &all, &st);
    CU_ASSERT_STRING_EQUAL(t, "Please call me at 555-0100.");
    CU_ASSERT_TRUE(st.disclaimer_chars > 200);
    free(t);
    /* a short line mentioning confidentiality is content */
    t = diet("This is confidential: I am leaving Acme.\n", &all, &st);
    CU_ASSERT_STRING_EQUAL(t, "This is confidential: I am leaving Acme.");
    free(t);
}

static void test_cap(void)
{
    em_diet_opts cap = all;
    cap.max_chars = 20;
    em_diet_stats st;
    char *t = diet("word word word word word word word word", &cap, &st);
    CU_ASSERT_TRUE(strlen(t) <= 20);
    CU_ASSERT_STRING_EQUAL(t, "word word word word");
    CU_ASSERT_EQUAL(st.cut_chars, 39 - 19);
    free(t);
    /* counted in characters, cut on a character boundary */
    cap.max_chars = 3;
    t = diet("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", &cap, &st);
    CU_ASSERT_STRING_EQUAL(t, "\xc3\xa9\xc3\xa9\xc3\xa9");
    CU_ASSERT_EQUAL(st.chars_out, 3);
    free(t);
}

static void test_normalize_keeps_body(void)
{
    json_object *in = json_tokener_parse("{\"subject\":\"s\",\"body\":\"hi   there\\n> old\"}");
    json_object *out = NULL;
    char err[EM_ERROR_MAX];
    CU_ASSERT_EQUAL_FATAL(em_normalize(in, NULL, &all, &out, err, sizeof err), 0);
    json_object *v, *d;
    CU_ASSERT_TRUE(json_object_object_get_ex(out, "body", &v));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "hi   there\n> old");
    CU_ASSERT_TRUE(json_object_object_get_ex(out, "text", &v));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "hi there");
    CU_ASSERT_TRUE(json_object_object_get_ex(out, "diet", &d));
    CU_ASSERT_TRUE(json_object_object_get_ex(d, "chars_removed", &v));
    CU_ASSERT_EQUAL(json_object_get_int(v), 8);
    json_object_put(out);
    /* without the diet, text is the body */
    CU_ASSERT_EQUAL_FATAL(em_normalize(in, NULL, NULL, &out, err, sizeof err), 0);
    CU_ASSERT_TRUE(json_object_object_get_ex(out, "text", &v));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "hi   there\n> old");
    CU_ASSERT_FALSE(json_object_object_get_ex(out, "diet", &d));
    json_object_put(out);
    json_object_put(in);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("email_diet", NULL, NULL);
    CU_add_test(s, "whitespace", test_whitespace);
    CU_add_test(s, "quoted replies", test_quotes);
    CU_add_test(s, "Outlook blocks and forwards", test_outlook_and_forward);
    CU_add_test(s, "disclaimers", test_disclaimer);
    CU_add_test(s, "cap", test_cap);
    CU_add_test(s, "normalize keeps the body", test_normalize_keeps_body);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
