/*
 * test_sb_body.c: message bodies -> emails (lib/servicebus/body.c): the
 * batch envelope and its fields, one email, an array of emails, each body
 * kind (data, amqp-value text, binary and map, amqp-sequence), and the
 * refusals, each saying what and where.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "common/buf.h"
#include "servicebus/body.h"
#include "servicebus/message.h"
#include <intake/plugin.h>

/* A message whose body is `len` bytes of kind `kind` (DATA or VALUE text). */
static void text_message(ik_sb_message *m, ik_sb_body_kind kind, const char *text, size_t len)
{
    memset(m, 0, sizeof *m);
    m->body_kind = kind;
    ik_buf_add(&m->data, text, len);
    if (kind == IK_SB_BODY_VALUE)
        m->value = json_object_new_string_len(text, (int)len);
}

#define TEXT(m, kind, literal) text_message(m, kind, literal, sizeof literal - 1)

/* A message whose body is the JSON value `json` (VALUE map or SEQUENCE list). */
static void value_message(ik_sb_message *m, ik_sb_body_kind kind, const char *json)
{
    memset(m, 0, sizeof *m);
    m->body_kind = kind;
    m->value = json_tokener_parse(json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m->value);
}

static const char *plain(json_object *v)
{
    return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

static void test_envelope(void)
{
    static const char text[] = " {\"batch_id\":\"b-1\",\"emails\":[{\"id\":\"a\"},{\"id\":\"b\","
                               "\"x\":1.5}],\"priority\":5,\"retry_count\":2,"
                               "\"created_at\":\"2025-03-01T10:00:00Z\"}\r\n";
    ik_sb_message m;
    text_message(&m, IK_SB_BODY_DATA, text, sizeof text - 1);
    ik_sb_emails e;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(ik_sb_body_emails(&m, 50, &e, err, sizeof err), 0);
    CU_ASSERT_EQUAL(e.is_envelope, 1);
    CU_ASSERT_EQUAL_FATAL(e.n, 2);
    CU_ASSERT_STRING_EQUAL(plain(e.emails[0]), "{\"id\":\"a\"}");
    CU_ASSERT_STRING_EQUAL(plain(e.emails[1]), "{\"id\":\"b\",\"x\":1.5}");
    CU_ASSERT_STRING_EQUAL(e.batch_id, "b-1");
    CU_ASSERT(e.has_priority && e.priority == 5);
    CU_ASSERT_EQUAL(e.retry_count, 2);
    CU_ASSERT_STRING_EQUAL(plain(e.envelope),
                           "{\"batch_id\":\"b-1\",\"priority\":5,\"retry_count\":"
                           "2,\"created_at\":\"2025-03-01T10:00:00Z\"}");
    ik_sb_emails_clear(&e);
    ik_sb_message_clear(&m);
}

/* priority as the file source reads it; batch_id as a number; retry_count absent. */
static void test_envelope_fields(void)
{
    static const struct {
        const char *text;
        int has_priority, priority;
        const char *batch_id;
    } cases[] = {
        {"{\"emails\":[{}],\"priority\":\"HIGH\",\"batch_id\":17}", 1, 10, "17"},
        {"{\"emails\":[{}],\"priority\":\"normal\"}", 1, 0, NULL},
        {"{\"emails\":[{}],\"priority\":\"Low\",\"batch_id\":null}", 1, -10, NULL},
        {"{\"emails\":[{}],\"priority\":-3}", 1, -3, NULL},
        {"{\"emails\":[{}],\"priority\":99999999999}", 1, 2147483647, NULL},
        {"{\"emails\":[{}],\"priority\":true}", 0, 0, NULL},
        {"{\"emails\":[{}],\"priority\":\"urgent\"}", 0, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ik_sb_message m;
        text_message(&m, IK_SB_BODY_DATA, cases[i].text, strlen(cases[i].text));
        ik_sb_emails e;
        char err[256] = "";
        CU_ASSERT_EQUAL(ik_sb_body_emails(&m, 0, &e, err, sizeof err), 0);
        CU_ASSERT_EQUAL(e.has_priority, cases[i].has_priority);
        CU_ASSERT_EQUAL(e.priority, cases[i].priority);
        CU_ASSERT_EQUAL(e.retry_count, 0);
        if (cases[i].batch_id) {
            CU_ASSERT(e.batch_id && strcmp(e.batch_id, cases[i].batch_id) == 0);
        } else {
            CU_ASSERT_PTR_NULL(e.batch_id);
        }
        ik_sb_emails_clear(&e);
        ik_sb_message_clear(&m);
    }
}

/* Checks that m gives n emails, the first being `first`; clears m. */
static void check_emails(ik_sb_message *m, size_t n, int envelope, const char *first)
{
    ik_sb_emails e;
    char err[256] = "";
    int rc = ik_sb_body_emails(m, 0, &e, err, sizeof err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc)
        fprintf(stderr, "\nunexpected error: %s\n", err);
    CU_ASSERT_EQUAL(e.n, n);
    CU_ASSERT_EQUAL(e.is_envelope, envelope);
    if (e.n)
        CU_ASSERT_STRING_EQUAL(plain(e.emails[0]), first);
    ik_sb_emails_clear(&e);
    ik_sb_message_clear(m);
}

static void test_body_kinds(void)
{
    ik_sb_message m;
    TEXT(&m, IK_SB_BODY_DATA, "{\"id\":\"one\"}");
    check_emails(&m, 1, 0, "{\"id\":\"one\"}");
    TEXT(&m, IK_SB_BODY_DATA, "[{\"id\":1},{\"id\":2},{}]");
    check_emails(&m, 3, 0, "{\"id\":1}");
    TEXT(&m, IK_SB_BODY_VALUE, "{\"emails\":[{\"id\":3}]}");
    check_emails(&m, 1, 1, "{\"id\":3}");
    /* amqp-value binary: data, no value */
    TEXT(&m, IK_SB_BODY_VALUE, "{\"id\":4}");
    json_object_put(m.value);
    m.value = NULL;
    check_emails(&m, 1, 0, "{\"id\":4}");
    value_message(&m, IK_SB_BODY_VALUE, "{\"id\":5,\"n\":[1]}");
    check_emails(&m, 1, 0, "{\"id\":5,\"n\":[1]}");
    value_message(&m, IK_SB_BODY_VALUE, "{\"batch_id\":\"m\",\"emails\":[{\"id\":6},{}]}");
    check_emails(&m, 2, 1, "{\"id\":6}");
    value_message(&m, IK_SB_BODY_SEQUENCE, "[{\"id\":7},{\"id\":8}]");
    check_emails(&m, 2, 0, "{\"id\":7}");
    /* JSON the fast path leaves to json-c: the same result */
    static const char fallback[] = "{\"a\":1e3,\"b\":\"\\ud83d\\ude00\"}";
    text_message(&m, IK_SB_BODY_DATA, fallback, sizeof fallback - 1);
    check_emails(&m, 1, 0, "{\"a\":1e3,\"b\":\"\xf0\x9f\x98\x80\"}");
}

/* A decoded AMQP message end to end: an envelope in two data sections. */
static void test_from_wire(void)
{
    static const unsigned char b[] = {0x00, 0x53, 0x75, 0xa0, 11,   '{',  '"',  'e',  'm',  'a',
                                      'i',  'l',  's',  '"',  ':',  '[',  0x00, 0x53, 0x75, 0xa0,
                                      3,    '{',  '}',  ']',  0x00, 0x53, 0x75, 0xa0, 1,    '}'};
    ik_sb_message m;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(ik_sb_message_decode((const char *)b, sizeof b, 0, &m, err, sizeof err),
                          0);
    check_emails(&m, 1, 1, "{}");
}

/* One refused body: DATA text, or a VALUE/SEQUENCE JSON when json is set. */
typedef struct bad_body {
    const char *text;
    size_t len; /* 0: strlen(text) */
    const char *want;
} bad_body;

static void test_refusals(void)
{
    static const bad_body cases[] = {
        {"{\"a\":}", 0, "body is not JSON: at byte 5: "},
        {"{\"a\":1", 0, "body is not JSON: at byte 6: unexpected end of"},
        {"{} x", 0, "body is not JSON: at byte 3: unexpected character 'x' after the end"},
        {"{}{}", 0, "at byte 2: unexpected character '{'"},
        {"{\"a\":\"\xff\"}", 0, "body is not UTF-8: at byte 6 (byte 0xff)"},
        {"{\"a\":\"x\"}\0", 10, "body is not JSON: at byte 9: NUL byte"},
        {"{\"a\":\"x\\u0000\"}", 0, "body at byte 7: a string contains \\u0000 (a NUL character)"},
        {"{\"a\\u0000\":1}", 0, "body at byte 3: a string contains \\u0000"},
        {"", 0, "body is empty"},
        {" \r\n\t", 0, "body is empty"},
        {"12", 0, "body is a number, not an object or an array"},
        {"null", 0, "body is null, not an object or an array"},
        {"\"x\"", 0, "body is a string, not an object or an array"},
        {"[]", 0, "body is an empty array: no emails"},
        {"[{},\"e\"]", 0, "body[1] is a string, not an object"},
        {"{\"emails\":\"x\"}", 0, "envelope \"emails\" is a string, not an array"},
        {"{\"emails\":[{},{},3]}", 0, "emails[2] is a number, not an object"},
        {"{\"emails\":[]}", 0, "emails is an empty array: no emails"},
        {"{\"emails\":[{},{},{},{}]}", 0, "emails holds 4 emails, more than the limit of 3"},
        {"[{},{},{},{}]", 0, "body holds 4 emails, more than the limit of 3"},
        {"{\"emails\":[{}],\"batch_id\":true}", 0,
         "envelope \"batch_id\" is a boolean, want a string or an integer"},
        {"{\"emails\":[{}],\"retry_count\":\"2\"}", 0,
         "envelope \"retry_count\" is a string, want a non-negative integer"},
        {"{\"emails\":[{}],\"retry_count\":-1}", 0,
         "envelope \"retry_count\" is negative, want a non-negative integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ik_sb_message m;
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        text_message(&m, IK_SB_BODY_DATA, cases[i].text, len);
        ik_sb_emails e;
        char err[256] = "";
        int rc = ik_sb_body_emails(&m, 3, &e, err, sizeof err);
        CU_ASSERT_EQUAL(rc, IK_E_PARSE);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].want));
        if (!strstr(err, cases[i].want))
            fprintf(stderr, "\ncase %zu: got [%s], want [%s]\n", i, err, cases[i].want);
        ik_sb_emails_clear(&e);
        ik_sb_message_clear(&m);
    }
}

/* JSON nested deeper than 64 levels is refused with its position. */
static void test_depth(void)
{
    char text[200];
    size_t n = 0;
    text[n++] = '{';
    text[n++] = '"';
    text[n++] = 'a';
    text[n++] = '"';
    text[n++] = ':';
    for (int i = 0; i < 70; i++)
        text[n++] = '[';
    for (int i = 0; i < 70; i++)
        text[n++] = ']';
    text[n++] = '}';
    ik_sb_message m;
    text_message(&m, IK_SB_BODY_DATA, text, n);
    ik_sb_emails e;
    char err[256] = "";
    CU_ASSERT_EQUAL(ik_sb_body_emails(&m, 0, &e, err, sizeof err), IK_E_PARSE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "body is not JSON: at byte"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "nesting too deep"));
    ik_sb_emails_clear(&e);
    ik_sb_message_clear(&m);
}

/* Bodies that are not JSON text: none, an amqp-value null or number, a sequence of non-objects. */
static void test_non_text_refusals(void)
{
    ik_sb_message m = {0};
    ik_sb_emails e;
    char err[256] = "";
    CU_ASSERT_EQUAL(ik_sb_body_emails(&m, 0, &e, err, sizeof err), IK_E_PARSE);
    CU_ASSERT_STRING_EQUAL(err, "message has no body");
    ik_sb_emails_clear(&e);
    m.body_kind = IK_SB_BODY_VALUE; /* an amqp-value null */
    CU_ASSERT_EQUAL(ik_sb_body_emails(&m, 0, &e, err, sizeof err), IK_E_PARSE);
    CU_ASSERT_STRING_EQUAL(err, "body is null, not an object or an array");
    ik_sb_emails_clear(&e);
    value_message(&m, IK_SB_BODY_VALUE, "42");
    CU_ASSERT_EQUAL(ik_sb_body_emails(&m, 0, &e, err, sizeof err), IK_E_PARSE);
    CU_ASSERT_STRING_EQUAL(err, "body is a number, not an object or an array");
    ik_sb_emails_clear(&e);
    ik_sb_message_clear(&m);
    value_message(&m, IK_SB_BODY_SEQUENCE, "[{},[1]]");
    CU_ASSERT_EQUAL(ik_sb_body_emails(&m, 0, &e, err, sizeof err), IK_E_PARSE);
    CU_ASSERT_STRING_EQUAL(err, "body[1] is an array, not an object");
    ik_sb_emails_clear(&e);
    ik_sb_message_clear(&m);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("sb_body", NULL, NULL);
    CU_add_test(s, "the batch envelope", test_envelope);
    CU_add_test(s, "envelope priority and batch_id forms", test_envelope_fields);
    CU_add_test(s, "one email, an array, each body kind", test_body_kinds);
    CU_add_test(s, "an envelope across data sections", test_from_wire);
    CU_add_test(s, "refusals say what and where", test_refusals);
    CU_add_test(s, "depth limit", test_depth);
    CU_add_test(s, "bodies that are not JSON text", test_non_text_refusals);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
