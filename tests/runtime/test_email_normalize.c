/*
 * test_email_normalize.c: the `email_normalize` processor against the fake
 * host: seed JSON mapped with the diet applied and the body kept, source
 * metadata copied, diet options honoured, bad payloads failed per record,
 * what the MIME parser noted under "diet" kept beside the diet's counts, a
 * seed string holding a NUL failed with the field and offset.
 */
#include <string.h>

#include <CUnit/Basic.h>

#include "email/email.h"
#include "fake_host.h"

const ik_plugin *nz_descriptor(void);

static const char *sget(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : NULL;
}

static void test_process(void)
{
    fake_host fh;
    fh_init(&fh, nz_descriptor(), NULL);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    ik_record *r = fh_record("a", json_tokener_parse("{\"id\":\"a\",\"subject\":\"s\","
                                                     "\"body\":\"new   text\\n> old\"}"));
    ik_record *bad = fh_record("b", json_tokener_parse("[1,2]"));
    r->meta = NULL;
    fh.host.record_set_meta(r, "file", "/in/x.json");
    ik_record *recs[] = {r, bad};
    ik_result res[2];
    memset(res, 0, sizeof res);
    CU_ASSERT_EQUAL(fh.plugin->process(fh.state, NULL, recs, 2, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_OK);
    CU_ASSERT_EQUAL(res[1].status, IK_FAIL);
    CU_ASSERT_PTR_NOT_NULL(strstr(res[1].reason, "must be a JSON object"));
    CU_ASSERT_STRING_EQUAL(sget(r->payload, "text"), "new text");
    CU_ASSERT_STRING_EQUAL(sget(r->payload, "body"), "new   text\n> old");
    json_object *src;
    CU_ASSERT_TRUE(json_object_object_get_ex(r->payload, "source", &src));
    CU_ASSERT_STRING_EQUAL(sget(src, "file"), "/in/x.json");
    CU_ASSERT_EQUAL(fh_metric_value(&fh, "chars_removed_total"), 8);
    fh_record_free(r);
    fh_record_free(bad);
    fh_free(&fh);
}

static void test_options(void)
{
    const char *opts[] = {"diet", "false", NULL};
    fake_host fh;
    fh_init(&fh, nz_descriptor(), opts);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    ik_record *r = fh_record("a", json_tokener_parse("{\"body\":\"a   b\"}"));
    ik_record *recs[] = {r};
    ik_result res[1];
    memset(res, 0, sizeof res);
    CU_ASSERT_EQUAL(fh.plugin->process(fh.state, NULL, recs, 1, res), 0);
    CU_ASSERT_STRING_EQUAL(sget(r->payload, "text"), "a   b");
    fh_record_free(r);
    fh_free(&fh);
    const char *neg[] = {"max_chars", "-1", NULL};
    fh_init(&fh, nz_descriptor(), neg);
    CU_ASSERT_EQUAL(fh_create(&fh), IK_E_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&fh), "max_chars"));
    fh_free(&fh);
}

static long long diet_count(json_object *rec, const char *key)
{
    json_object *diet, *v;
    if (!json_object_object_get_ex(rec, "diet", &diet) || !json_object_object_get_ex(diet, key, &v))
        return -1;
    return (long long)json_object_get_int64(v);
}

/* A MIME record whose HTML came through the tag-stripping fallback, or whose
 * text had a NUL made U+FFFD, keeps diet.html_fallback / diet.nul_replaced
 * when the diet fills in its counts; a seed email says 0. */
static void test_parser_notes_kept(void)
{
    const char *msg = "From: a@b.c\nSubject: s\nContent-Type: text/html\n\n"
                      "<noscript><p>Dear   Ann</p>";
    json_object *mime = NULL;
    char err[EM_ERROR_MAX];
    CU_ASSERT_EQUAL_FATAL(em_parse_mime("t.eml", msg, strlen(msg), NULL, &mime, err, sizeof err),
                          0);
    const char nul[] = "From: a@b.c\nSubject: s\n\nhi\0there\n";
    json_object *mime_nul = NULL;
    CU_ASSERT_EQUAL_FATAL(
        em_parse_mime("n.eml", nul, sizeof nul - 1, NULL, &mime_nul, err, sizeof err), 0);
    fake_host fh;
    fh_init(&fh, nz_descriptor(), NULL);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    ik_record *r = fh_record("m", mime);
    ik_record *rn = fh_record("n", mime_nul);
    ik_record *seed = fh_record("s", json_tokener_parse("{\"body\":\"x\"}"));
    ik_record *recs[] = {r, rn, seed};
    ik_result res[3];
    memset(res, 0, sizeof res);
    CU_ASSERT_EQUAL(fh.plugin->process(fh.state, NULL, recs, 3, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_OK);
    CU_ASSERT_STRING_EQUAL(sget(r->payload, "text"), "Dear Ann");
    CU_ASSERT_EQUAL(diet_count(r->payload, "html_fallback"), 1);
    CU_ASSERT_EQUAL(diet_count(r->payload, "nul_replaced"), 0);
    CU_ASSERT_EQUAL(diet_count(r->payload, "chars_before"), 8);
    CU_ASSERT_EQUAL(diet_count(r->payload, "chars_removed"), 0);
    CU_ASSERT_EQUAL(res[1].status, IK_OK);
    CU_ASSERT_STRING_EQUAL(sget(rn->payload, "text"), "hi\xef\xbf\xbdthere");
    CU_ASSERT_EQUAL(diet_count(rn->payload, "nul_replaced"), 1);
    CU_ASSERT_EQUAL(diet_count(rn->payload, "html_fallback"), 0);
    CU_ASSERT_EQUAL(diet_count(seed->payload, "html_fallback"), 0);
    CU_ASSERT_EQUAL(diet_count(seed->payload, "nul_replaced"), 0);
    fh_record_free(r);
    fh_record_free(rn);
    fh_record_free(seed);
    fh_free(&fh);
}

/* A seed body holding \u0000 used to come out cut at the NUL; the record
 * now fails (dead-lettered) with the field and where. */
static void test_nul_fails_record(void)
{
    fake_host fh;
    fh_init(&fh, nz_descriptor(), NULL);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    ik_record *r = fh_record(
        "n", json_tokener_parse("{\"subject\":\"s\",\"body\":\"Dear Ann, I am a\\u0000b\"}"));
    ik_record *recs[] = {r};
    ik_result res[1];
    memset(res, 0, sizeof res);
    CU_ASSERT_EQUAL(fh.plugin->process(fh.state, NULL, recs, 1, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_FAIL);
    CU_ASSERT_STRING_EQUAL(res[0].reason, "not an email: field 'body' contains a NUL character "
                                          "(\\u0000) at offset 16");
    CU_ASSERT_EQUAL(fh_metric_value(&fh, "invalid_total"), 1);
    fh_record_free(r);
    fh_free(&fh);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("email_normalize", NULL, NULL);
    CU_add_test(s, "process", test_process);
    CU_add_test(s, "options", test_options);
    CU_add_test(s, "parser notes kept under diet", test_parser_notes_kept);
    CU_add_test(s, "a NUL in a seed string fails the record", test_nul_fails_record);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
