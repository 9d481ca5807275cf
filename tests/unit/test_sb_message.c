/*
 * test_sb_message.c: the AMQP 1.0 message reader (lib/servicebus/message.c
 * and amqp_read.c). Messages come from qpid-proton's pn_message_encode
 * (every property, id type, annotation and application property type, each
 * body kind) and from hand-written bytes (several data sections, wrong
 * order, hostile lengths and counts, deep nesting). Every prefix of a valid
 * message is decoded from an exact-size copy, so a read past the end shows
 * under ASan, and only the prefixes that end between sections decode.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <proton/codec.h>
#include <proton/message.h>

#include "servicebus/message.h"
#include <intake/plugin.h>

/* ---- building messages -------------------------------------------------- */

/* pn_message_encode into a malloc'd buffer of exactly *len bytes. */
static char *encode(pn_message_t *msg, size_t *len)
{
    size_t cap = 1 << 16;
    char *buf = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    *len = cap;
    CU_ASSERT_EQUAL_FATAL(pn_message_encode(msg, buf, len), 0);
    char *exact = malloc(*len ? *len : 1);
    memcpy(exact, buf, *len);
    free(buf);
    return exact;
}

static void put_sym(pn_data_t *d, const char *s)
{
    pn_data_put_symbol(d, pn_bytes(strlen(s), s));
}

static void put_str(pn_data_t *d, const char *s)
{
    pn_data_put_string(d, pn_bytes(strlen(s), s));
}

static pn_msgid_t str_id(const char *s)
{
    pn_msgid_t id = {.type = PN_STRING};
    id.u.as_bytes = pn_bytes(strlen(s), s);
    return id;
}

/* A message with every field message.h maps; the body is set by the caller. */
static pn_message_t *full_message(void)
{
    pn_message_t *msg = pn_message();
    pn_message_set_ttl(msg, 60000);
    pn_message_set_delivery_count(msg, 3);
    pn_message_set_id(msg, str_id("msg-1"));
    pn_message_set_correlation_id(msg, str_id("corr-1"));
    pn_message_set_content_type(msg, "application/json");
    pn_message_set_subject(msg, "subj");
    pn_message_set_address(msg, "q1");
    pn_message_set_reply_to(msg, "replies");
    pn_message_set_group_id(msg, "session-7");
    pn_data_t *ann = pn_message_annotations(msg);
    pn_data_put_map(ann);
    pn_data_enter(ann);
    put_sym(ann, "x-opt-sequence-number");
    pn_data_put_long(ann, 42);
    put_sym(ann, "x-opt-enqueued-time");
    pn_data_put_timestamp(ann, 1700000000123);
    put_sym(ann, "x-opt-locked-until");
    pn_data_put_timestamp(ann, 1700000060123);
    put_sym(ann, "x-opt-scheduled-enqueue-time");
    pn_data_put_timestamp(ann, 1700000000000);
    put_sym(ann, "x-opt-partition-key");
    put_str(ann, "pk");
    pn_data_exit(ann);
    pn_data_t *app = pn_message_properties(msg);
    pn_data_put_map(app);
    pn_data_enter(app);
    put_str(app, "batch_id");
    put_str(app, "b-1");
    put_str(app, "DeadLetterReason");
    put_str(app, "MaxDeliveryCountExceeded");
    put_str(app, "DeadLetterErrorDescription");
    put_str(app, "too many tries");
    pn_data_exit(app);
    return msg;
}

static void set_data_body(pn_message_t *msg, const char *text)
{
    pn_message_set_inferred(msg, true);
    pn_data_t *body = pn_message_body(msg);
    pn_data_put_binary(body, pn_bytes(strlen(text), text));
}

static int decode(const char *bytes, size_t len, ik_sb_message *m, char *err, size_t errlen)
{
    return ik_sb_message_decode(bytes, len, 0, m, err, errlen);
}

/* ---- from proton -------------------------------------------------------- */

static void test_proton_full(void)
{
    pn_message_t *msg = full_message();
    set_data_body(msg, "{\"emails\":[]}");
    size_t len;
    char *bytes = encode(msg, &len);
    ik_sb_message m;
    char err[256] = "";
    int rc = decode(bytes, len, &m, err, sizeof err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(m.delivery_count, 3);
    CU_ASSERT_EQUAL(m.ttl_ms, 60000);
    CU_ASSERT_STRING_EQUAL(m.message_id, "msg-1");
    CU_ASSERT_STRING_EQUAL(m.correlation_id, "corr-1");
    CU_ASSERT_STRING_EQUAL(m.content_type, "application/json");
    CU_ASSERT_STRING_EQUAL(m.subject, "subj");
    CU_ASSERT_STRING_EQUAL(m.to, "q1");
    CU_ASSERT_STRING_EQUAL(m.reply_to, "replies");
    CU_ASSERT_STRING_EQUAL(m.session_id, "session-7");
    CU_ASSERT(m.has_sequence_number && m.sequence_number == 42);
    CU_ASSERT(m.has_enqueued_time && m.enqueued_time_ms == 1700000000123);
    CU_ASSERT(m.has_locked_until && m.locked_until_ms == 1700000060123);
    CU_ASSERT(m.has_scheduled_time && m.scheduled_time_ms == 1700000000000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m.app_properties);
    CU_ASSERT_STRING_EQUAL(
        json_object_get_string(json_object_object_get(m.app_properties, "batch_id")), "b-1");
    CU_ASSERT_STRING_EQUAL(m.dead_letter_reason, "MaxDeliveryCountExceeded");
    CU_ASSERT_STRING_EQUAL(m.dead_letter_description, "too many tries");
    CU_ASSERT_EQUAL(m.body_kind, IK_SB_BODY_DATA);
    CU_ASSERT_EQUAL(m.data.len, 13);
    CU_ASSERT_NSTRING_EQUAL(m.data.p, "{\"emails\":[]}", 13);
    ik_sb_message_clear(&m);
    free(bytes);
    pn_message_free(msg);
}

/* Decodes a message whose only property is message-id `id`, and checks its text. */
static void check_id(pn_msgid_t id, const char *want)
{
    pn_message_t *msg = pn_message();
    pn_message_set_id(msg, id);
    pn_message_set_correlation_id(msg, id);
    size_t len;
    char *bytes = encode(msg, &len);
    ik_sb_message m;
    char err[256] = "";
    CU_ASSERT_EQUAL(decode(bytes, len, &m, err, sizeof err), 0);
    CU_ASSERT_PTR_NOT_NULL(m.message_id);
    if (m.message_id) {
        CU_ASSERT_STRING_EQUAL(m.message_id, want);
        CU_ASSERT_STRING_EQUAL(m.correlation_id, want);
    }
    CU_ASSERT_EQUAL(m.body_kind, IK_SB_BODY_NONE);
    ik_sb_message_clear(&m);
    free(bytes);
    pn_message_free(msg);
}

static void test_id_types(void)
{
    check_id(str_id("abc"), "abc");
    pn_msgid_t id = {.type = PN_ULONG};
    id.u.as_ulong = 18446744073709551615ull;
    check_id(id, "18446744073709551615");
    id.u.as_ulong = 7;
    check_id(id, "7");
    id = (pn_msgid_t){.type = PN_UUID};
    memcpy(id.u.as_uuid.bytes, "\x57\x91\x06\xe3\x55\x81\x40\x11\xac\x05\x64\x33\x16\xe6\xfb\xcc",
           16);
    check_id(id, "579106e3-5581-4011-ac05-643316e6fbcc");
    id = (pn_msgid_t){.type = PN_BINARY};
    id.u.as_bytes = pn_bytes(3, "\x01\xab\xff");
    check_id(id, "01abff");
}

/* Application properties of every AMQP type, and how each is converted. */
static void test_app_property_types(void)
{
    pn_message_t *msg = pn_message();
    pn_data_t *app = pn_message_properties(msg);
    pn_data_put_map(app);
    pn_data_enter(app);
    put_str(app, "s");
    put_str(app, "text \xc3\xa9");
    put_str(app, "sym");
    put_sym(app, "a-symbol");
    put_str(app, "t");
    pn_data_put_bool(app, true);
    put_str(app, "f");
    pn_data_put_bool(app, false);
    put_str(app, "ub");
    pn_data_put_ubyte(app, 200);
    put_str(app, "b");
    pn_data_put_byte(app, -5);
    put_str(app, "us");
    pn_data_put_ushort(app, 65535);
    put_str(app, "sh");
    pn_data_put_short(app, -300);
    put_str(app, "ui");
    pn_data_put_uint(app, 4000000000u);
    put_str(app, "i");
    pn_data_put_int(app, -70000);
    put_str(app, "ul");
    pn_data_put_ulong(app, 18446744073709551615ull);
    put_str(app, "l");
    pn_data_put_long(app, -9000000000ll);
    put_str(app, "fl");
    pn_data_put_float(app, 1.5f);
    put_str(app, "d");
    pn_data_put_double(app, -2.25);
    put_str(app, "ts");
    pn_data_put_timestamp(app, 1700000000123);
    put_str(app, "c");
    pn_data_put_char(app, 0x1F600);
    put_str(app, "u");
    pn_uuid_t u;
    memcpy(u.bytes, "\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff", 16);
    pn_data_put_uuid(app, u);
    put_str(app, "bin");
    pn_data_put_binary(app, pn_bytes(2, "\x0f\xf0"));
    put_str(app, "n");
    pn_data_put_null(app);
    put_str(app, "list");
    pn_data_put_list(app);
    pn_data_enter(app);
    pn_data_put_int(app, 1);
    put_str(app, "two");
    pn_data_exit(app);
    put_str(app, "map");
    pn_data_put_map(app);
    pn_data_enter(app);
    put_sym(app, "k");
    pn_data_put_long(app, 9);
    pn_data_put_ulong(app, 5); /* an integer key */
    put_str(app, "five");
    pn_data_exit(app);
    put_str(app, "arr");
    pn_data_put_array(app, false, PN_LONG);
    pn_data_enter(app);
    pn_data_put_long(app, 1);
    pn_data_put_long(app, 2);
    pn_data_exit(app);
    pn_data_exit(app);
    size_t len;
    char *bytes = encode(msg, &len);
    ik_sb_message m;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(decode(bytes, len, &m, err, sizeof err), 0);
    const char *got = json_object_to_json_string_ext(m.app_properties, JSON_C_TO_STRING_PLAIN);
    CU_ASSERT_STRING_EQUAL(got,
                           "{\"s\":\"text \xc3\xa9\",\"sym\":\"a-symbol\",\"t\":true,\"f\":false,"
                           "\"ub\":200,\"b\":-5,\"us\":65535,\"sh\":-300,\"ui\":4000000000,"
                           "\"i\":-70000,\"ul\":18446744073709551615,\"l\":-9000000000,"
                           "\"fl\":1.5,\"d\":-2.25,\"ts\":1700000000123,"
                           "\"c\":\"\xf0\x9f\x98\x80\",\"u\":\"00112233-4455-6677-8899-"
                           "aabbccddeeff\",\"bin\":\"0ff0\",\"n\":null,\"list\":[1,\"two\"],"
                           "\"map\":{\"k\":9,\"5\":\"five\"},\"arr\":[1,2]}");
    ik_sb_message_clear(&m);
    free(bytes);
    pn_message_free(msg);
}

/* amqp-value bodies: a string, binary, a map; an amqp-sequence body. */
static void test_body_kinds(void)
{
    pn_message_t *msg = pn_message();
    pn_message_set_inferred(msg, false);
    put_str(pn_message_body(msg), "{\"id\":\"e1\"}");
    size_t len;
    char *bytes = encode(msg, &len);
    ik_sb_message m;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(decode(bytes, len, &m, err, sizeof err), 0);
    CU_ASSERT_EQUAL(m.body_kind, IK_SB_BODY_VALUE);
    CU_ASSERT_EQUAL(m.data.len, 11);
    CU_ASSERT_NSTRING_EQUAL(m.data.p, "{\"id\":\"e1\"}", 11);
    CU_ASSERT_STRING_EQUAL(json_object_get_string(m.value), "{\"id\":\"e1\"}");
    ik_sb_message_clear(&m);
    free(bytes);

    pn_message_clear(msg);
    pn_message_set_inferred(msg, false);
    pn_data_put_binary(pn_message_body(msg), pn_bytes(4, "[{}]"));
    bytes = encode(msg, &len);
    CU_ASSERT_EQUAL_FATAL(decode(bytes, len, &m, err, sizeof err), 0);
    CU_ASSERT_EQUAL(m.body_kind, IK_SB_BODY_VALUE);
    CU_ASSERT_NSTRING_EQUAL(m.data.p, "[{}]", 4);
    CU_ASSERT_PTR_NULL(m.value);
    ik_sb_message_clear(&m);
    free(bytes);

    pn_message_clear(msg);
    pn_message_set_inferred(msg, false);
    pn_data_t *body = pn_message_body(msg);
    pn_data_put_map(body);
    pn_data_enter(body);
    put_str(body, "id");
    put_str(body, "e2");
    pn_data_exit(body);
    bytes = encode(msg, &len);
    CU_ASSERT_EQUAL_FATAL(decode(bytes, len, &m, err, sizeof err), 0);
    CU_ASSERT_EQUAL(m.body_kind, IK_SB_BODY_VALUE);
    CU_ASSERT_EQUAL(m.data.len, 0);
    CU_ASSERT_STRING_EQUAL(json_object_to_json_string_ext(m.value, JSON_C_TO_STRING_PLAIN),
                           "{\"id\":\"e2\"}");
    ik_sb_message_clear(&m);
    free(bytes);

    pn_message_clear(msg);
    pn_message_set_inferred(msg, true);
    body = pn_message_body(msg);
    pn_data_put_list(body);
    pn_data_enter(body);
    pn_data_put_map(body);
    pn_data_enter(body);
    put_str(body, "id");
    put_str(body, "e3");
    pn_data_exit(body);
    pn_data_exit(body);
    bytes = encode(msg, &len);
    CU_ASSERT_EQUAL_FATAL(decode(bytes, len, &m, err, sizeof err), 0);
    CU_ASSERT_EQUAL(m.body_kind, IK_SB_BODY_SEQUENCE);
    CU_ASSERT_STRING_EQUAL(json_object_to_json_string_ext(m.value, JSON_C_TO_STRING_PLAIN),
                           "[{\"id\":\"e3\"}]");
    ik_sb_message_clear(&m);
    free(bytes);
    pn_message_free(msg);
}

/*
 * Every prefix of a full message decodes from an exact-size copy (ASan sees
 * any read past it) to 0 or IK_E_PARSE with "at byte"; 0 exactly at the
 * section boundaries: the empty prefix and the end of each of the 5
 * sections (header, message annotations, properties, application
 * properties, data).
 */
static void test_truncations(void)
{
    pn_message_t *msg = full_message();
    set_data_body(msg, "{\"batch_id\":\"b\",\"emails\":[{\"id\":1}]}");
    size_t len;
    char *bytes = encode(msg, &len);
    int whole = 0;
    for (size_t k = 0; k <= len; k++) {
        char *cut = malloc(k ? k : 1);
        memcpy(cut, bytes, k);
        ik_sb_message m;
        char err[256] = "";
        int rc = decode(cut, k, &m, err, sizeof err);
        CU_ASSERT(rc == 0 || rc == IK_E_PARSE);
        if (rc == 0)
            whole++;
        else
            CU_ASSERT_PTR_NOT_NULL(strstr(err, "at byte "));
        ik_sb_message_clear(&m);
        free(cut);
    }
    CU_ASSERT_EQUAL(whole, 6); /* "", +header, +annotations, +properties, +app, +data */
    free(bytes);
    pn_message_free(msg);
}

/* ---- hand-written bytes ------------------------------------------------- */

#define DATA(n)  0x00, 0x53, 0x75, 0xa0, (n)
#define VALUE    0x00, 0x53, 0x77
#define SEQUENCE 0x00, 0x53, 0x76

/* Decodes a byte array (through an exact-size copy); returns the code, err filled. */
static int decode_bytes(const unsigned char *b, size_t n, size_t max_body, ik_sb_message *m,
                        char *err, size_t errlen)
{
    char *copy = malloc(n ? n : 1);
    memcpy(copy, b, n);
    int rc = ik_sb_message_decode(copy, n, max_body, m, err, errlen);
    free(copy);
    return rc;
}

#define DECODE(arr, max, m, err) decode_bytes(arr, sizeof arr, max, m, err, sizeof err)

static void test_several_data_sections(void)
{
    static const unsigned char b[] = {DATA(3), '{', '"', 'a',
                                      /* the same section with the 8-byte descriptor form */
                                      0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x75, 0xb0, 0, 0, 0, 4, '"',
                                      ':', '1', '}',
                                      /* and the symbolic one */
                                      0x00, 0xa3, 16, 'a', 'm', 'q', 'p', ':', 'd', 'a', 't', 'a',
                                      ':', 'b', 'i', 'n', 'a', 'r', 'y', 0xa0, 0};
    ik_sb_message m;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(DECODE(b, 0, &m, err), 0);
    CU_ASSERT_EQUAL(m.body_kind, IK_SB_BODY_DATA);
    CU_ASSERT_EQUAL(m.data.len, 7);
    CU_ASSERT_STRING_EQUAL(m.data.p, "{\"a\":1}");
    ik_sb_message_clear(&m);
    /* max_body counts all of them */
    CU_ASSERT_EQUAL(DECODE(b, 6, &m, err), IK_E_TOOBIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "larger than the limit of 6 bytes"));
    ik_sb_message_clear(&m);
    CU_ASSERT_EQUAL(DECODE(b, 7, &m, err), 0);
    ik_sb_message_clear(&m);
    /* an empty message is no error: no body */
    CU_ASSERT_EQUAL(decode_bytes(b, 0, 0, &m, err, sizeof err), 0);
    CU_ASSERT_EQUAL(m.body_kind, IK_SB_BODY_NONE);
    ik_sb_message_clear(&m);
}

/* One bad input and the words its error must hold. */
typedef struct bad_case {
    const unsigned char *b;
    size_t n;
    const char *want;
} bad_case;

#define BAD(want, ...)                                                                             \
    {                                                                                              \
        (const unsigned char[]){__VA_ARGS__}, sizeof((const unsigned char[]){__VA_ARGS__}), want   \
    }

static void test_refusals(void)
{
    const bad_case cases[] = {
        BAD("at byte 3: binary of 900 bytes runs past the end (2 bytes left)", 0x00, 0x53, 0x75,
            0xb0, 0, 0, 0x03, 0x84, 'a', 'b'),
        BAD("at byte 0: expected a section", 0x40),
        BAD("at byte 0: unknown section descriptor 0x79", 0x00, 0x53, 0x79, 0x40),
        BAD("at byte 0: unknown section descriptor", 0x00, 0xa3, 3, 'a', 'b', 'c', 0x40),
        BAD("at byte 4: header section after properties section", 0x00, 0x53, 0x73, 0x45, 0x00,
            0x53, 0x70, 0x45),
        BAD("at byte 4: amqp-value section after amqp-value section", VALUE, 0x40, VALUE, 0x40),
        BAD("at byte 5: amqp-sequence section after data section", DATA(0), SEQUENCE, 0x45),
        BAD("at byte 3: data section holds type 0x45", 0x00, 0x53, 0x75, 0x45),
        BAD("data section holds a string or symbol, not binary", 0x00, 0x53, 0x75, 0xa1, 1, 'x'),
        BAD("at byte 3: 4294967295 items cannot fit in 4 bytes", VALUE, 0xd0, 0, 0, 0, 8, 0xff,
            0xff, 0xff, 0xff, 0x40, 0x40, 0x40, 0x40),
        BAD("at byte 3: 2 bytes left over after the last item", VALUE, 0xc0, 4, 1, 0x40, 0x40,
            0x40),
        BAD("at byte 3: map has an odd number of items (1)", VALUE, 0xc1, 2, 1, 0x40),
        BAD("at byte 6: map key is a boolean", VALUE, 0xc1, 3, 2, 0x41, 0x40),
        BAD("at byte 6: string is not valid UTF-8", 0x00, 0x53, 0x74, 0xc1, 5, 2, 0xa1, 1, 0xff,
            0x40),
        BAD("at byte 3: unknown type code 0x01", VALUE, 0x01),
        BAD("at byte 3: char U+D800 is not a Unicode scalar value", VALUE, 0x73, 0, 0, 0xd8, 0),
        BAD("at byte 4: a value needs 8 bytes, only 3 left", VALUE, 0x81, 1, 2, 3),
        BAD("application-properties is a list, not a map", 0x00, 0x53, 0x74, 0x45),
        BAD("message annotation x-opt-sequence-number is a string", 0x00, 0x53, 0x72, 0xc1, 27, 2,
            0xa3, 21, 'x', '-', 'o', 'p', 't', '-', 's', 'e', 'q', 'u', 'e', 'n', 'c', 'e', '-',
            'n', 'u', 'm', 'b', 'e', 'r', 0xa1, 1, '1'),
        BAD("header delivery-count is a string", 0x00, 0x53, 0x70, 0xc0, 8, 5, 0x40, 0x40, 0x40,
            0x40, 0xa1, 1, '1'),
        BAD("properties message-id is a boolean", 0x00, 0x53, 0x73, 0xc0, 2, 1, 0x41),
        BAD("properties subject is an integer", 0x00, 0x53, 0x73, 0xc0, 6, 4, 0x40, 0x40, 0x40,
            0x52, 7),
        BAD("properties message-id contains a NUL byte", 0x00, 0x53, 0x73, 0xc0, 5, 1, 0xa1, 2, 'a',
            0),
        BAD("array element type is described twice", VALUE, 0xe0, 5, 1, 0x00, 0x53, 1, 0x00),
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ik_sb_message m;
        char err[256] = "";
        int rc = decode_bytes(cases[i].b, cases[i].n, 0, &m, err, sizeof err);
        CU_ASSERT_EQUAL(rc, IK_E_PARSE);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].want));
        if (!strstr(err, cases[i].want))
            fprintf(stderr, "\ncase %zu: got [%s], want [%s]\n", i, err, cases[i].want);
        ik_sb_message_clear(&m);
    }
}

/* n lists nested in an amqp-value: 64 levels are read, 65 are refused. */
static void test_nesting(void)
{
    for (int n = 63; n <= 66; n++) {
        unsigned char b[3 + 66 * 3 + 1] = {VALUE};
        size_t len = 3;
        for (int i = 0; i < n; i++) { /* c0 <size> 01 ... 45 */
            b[len++] = 0xc0;
            b[len++] = (unsigned char)(2 + 3 * (n - 1 - i));
            b[len++] = 1;
        }
        b[len++] = 0x45;
        ik_sb_message m;
        char err[256] = "";
        int rc = decode_bytes(b, len, 0, &m, err, sizeof err);
        CU_ASSERT_EQUAL(rc, n <= 64 ? 0 : IK_E_PARSE);
        if (n > 64)
            CU_ASSERT_PTR_NOT_NULL(strstr(err, "nested deeper than 64 levels"));
        ik_sb_message_clear(&m);
    }
    /* described values nest too */
    unsigned char d[3 + 2 * 70 + 1] = {VALUE};
    size_t len = 3;
    for (int i = 0; i < 70; i++) {
        d[len++] = 0x00;
        d[len++] = 0x40; /* descriptor null, then the value: described again */
    }
    d[len++] = 0x40;
    ik_sb_message m;
    char err[256] = "";
    CU_ASSERT_EQUAL(decode_bytes(d, len, 0, &m, err, sizeof err), IK_E_PARSE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "nested deeper than 64 levels"));
    ik_sb_message_clear(&m);
}

/* A described array, an array of maps (arrays of compounds), symbol keys. */
static void test_arrays(void)
{
    static const unsigned char b[] = {VALUE, 0xe0, 13,   2, 0x00, 0x53, 0x09, 0xc1,
                                      5,     2,    0xa3, 1, 'k',  0x41, 1,    0};
    ik_sb_message m;
    char err[256] = "";
    int rc = DECODE(b, 0, &m, err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(json_object_to_json_string_ext(m.value, JSON_C_TO_STRING_PLAIN),
                           "[{\"k\":true},{}]");
    ik_sb_message_clear(&m);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("sb_message", NULL, NULL);
    CU_add_test(s, "every mapped field from proton", test_proton_full);
    CU_add_test(s, "message-id types", test_id_types);
    CU_add_test(s, "application property types", test_app_property_types);
    CU_add_test(s, "amqp-value string, binary, map; amqp-sequence", test_body_kinds);
    CU_add_test(s, "every prefix of a message", test_truncations);
    CU_add_test(s, "several data sections, max_body", test_several_data_sections);
    CU_add_test(s, "refusals say what and at which byte", test_refusals);
    CU_add_test(s, "nesting limit", test_nesting);
    CU_add_test(s, "arrays", test_arrays);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
