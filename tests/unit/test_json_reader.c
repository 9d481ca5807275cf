/*
 * test_json_reader.c: unit tests of the file source's parser
 * (plugins/file/json_reader.c): .jsonl lines, .json documents, the bounded
 * line reader and the raw-text sanitiser, with exact positions in errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "file/json_reader.h"

#define MAX (256 * 1024)

static jr_item line_item(const char *text, unsigned long lineno, int *rc)
{
    jr_item it;
    *rc = jr_parse_line("emails.jsonl", text, strlen(text), strlen(text), lineno, 7, 100, MAX, &it);
    return it;
}

static void test_line_object(void)
{
    int rc;
    jr_item it = line_item("{\"id\":\"a\",\"n\":1}", 3, &rc);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(it.obj);
    CU_ASSERT_STRING_EQUAL(it.error, "");
    CU_ASSERT_EQUAL(it.line, 3);
    CU_ASSERT_EQUAL(it.col, 1);
    CU_ASSERT_EQUAL(it.index, 7);
    CU_ASSERT_EQUAL(it.offset, 100);
    CU_ASSERT_EQUAL(it.size, 16);
    json_object *v;
    CU_ASSERT_TRUE(json_object_object_get_ex(it.obj, "id", &v));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "a");
    jr_item_clear(&it);
    CU_ASSERT_PTR_NULL(it.obj);
}

static void test_line_blank_and_crlf(void)
{
    int rc;
    jr_item it = line_item("", 1, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    it = line_item("   \t ", 2, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    it = line_item("\r", 2, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    it = line_item("{\"a\":1}\r", 4, &rc);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_PTR_NOT_NULL(it.obj);
    CU_ASSERT_EQUAL(it.size, 7);
    jr_item_clear(&it);
    /* Byte order mark on line 1 is skipped, not an error. */
    it = line_item("\xEF\xBB\xBF{\"a\":1}", 1, &rc);
    CU_ASSERT_PTR_NOT_NULL(it.obj);
    jr_item_clear(&it);
}

static void test_line_errors_say_where(void)
{
    int rc;
    jr_item it = line_item("{\"a\":1,}", 17, &rc);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_PTR_NULL(it.obj);
    CU_ASSERT_STRING_EQUAL(it.error, "emails.jsonl:17:8: unexpected character '}'");
    jr_item_clear(&it);

    it = line_item("{\"a\":1} x", 2, &rc);
    CU_ASSERT_PTR_NULL(it.obj);
    CU_ASSERT_STRING_EQUAL(it.error,
                           "emails.jsonl:2:9: unexpected character 'x' after the end of the value");
    jr_item_clear(&it);

    it = line_item("{\"a\":", 5, &rc);
    CU_ASSERT_PTR_NULL(it.obj);
    CU_ASSERT_STRING_EQUAL(it.error, "emails.jsonl:5:6: unexpected end of input");
    jr_item_clear(&it);

    it = line_item("  [1,2]", 3, &rc);
    CU_ASSERT_PTR_NULL(it.obj);
    CU_ASSERT_STRING_EQUAL(it.error, "emails.jsonl:3:3: line is not a JSON object (got array)");
    jr_item_clear(&it);

    it = line_item("{\"a\":\"\xff\"}", 1, &rc);
    CU_ASSERT_PTR_NULL(it.obj);
    CU_ASSERT_PTR_NOT_NULL(strstr(it.error, "emails.jsonl:1:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(it.error, "utf-8"));
    jr_item_clear(&it);

    /* Bare number: complete, but not an object. */
    it = line_item("42", 1, &rc);
    CU_ASSERT_STRING_EQUAL(it.error, "emails.jsonl:1:1: line is not a JSON object (got number)");
    jr_item_clear(&it);

    /* Nesting deeper than the limit is an error, not a crash. */
    char deep[400];
    size_t n = 0;
    deep[n++] = '{';
    deep[n++] = '"';
    deep[n++] = 'a';
    deep[n++] = '"';
    deep[n++] = ':';
    for (int i = 0; i < 150; i++)
        deep[n++] = '[';
    deep[n] = '\0';
    it = line_item(deep, 1, &rc);
    CU_ASSERT_PTR_NULL(it.obj);
    CU_ASSERT_PTR_NOT_NULL(strstr(it.error, "emails.jsonl:1:"));
    jr_item_clear(&it);
}

static void test_line_oversize(void)
{
    jr_item it;
    const char *text = "{\"body\":\"0123456789012345678901234567890123456789\"}";
    int rc = jr_parse_line("x.jsonl", text, 20, 5000, 9, 1, 0, 1000, &it);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_PTR_NULL(it.obj);
    CU_ASSERT_STRING_EQUAL(it.error,
                           "x.jsonl:9:1: record is 5000 bytes, larger than max_record_size 1000");
    CU_ASSERT_EQUAL(it.size, 5000);
    CU_ASSERT_EQUAL(it.text_len, 20);
    jr_item_clear(&it);
}

static void test_doc_object(void)
{
    const char *buf = "\n  {\"id\": \"one\"}\n";
    jr_doc doc;
    CU_ASSERT_EQUAL_FATAL(jr_doc_open(&doc, "a.json", buf, strlen(buf), MAX), 0);
    jr_item it;
    CU_ASSERT_EQUAL(jr_doc_next(&doc, &it), 1);
    CU_ASSERT_PTR_NOT_NULL(it.obj);
    CU_ASSERT_EQUAL(it.line, 2);
    CU_ASSERT_EQUAL(it.col, 3);
    CU_ASSERT_EQUAL(it.offset, 3);
    CU_ASSERT_EQUAL(it.size, 13);
    CU_ASSERT_EQUAL(it.index, 1);
    jr_item_clear(&it);
    CU_ASSERT_EQUAL(jr_doc_next(&doc, &it), 0);
    jr_doc_close(&doc);
}

static void test_doc_array(void)
{
    const char *buf = "[\n  {\"a\": \"x,]}\"},\n  7,\n  {\"b\": [1, {\"c\": 2}]}\n]\n";
    jr_doc doc;
    CU_ASSERT_EQUAL_FATAL(jr_doc_open(&doc, "b.json", buf, strlen(buf), MAX), 0);
    jr_item it;
    CU_ASSERT_EQUAL(jr_doc_next(&doc, &it), 1);
    CU_ASSERT_PTR_NOT_NULL(it.obj);
    CU_ASSERT_EQUAL(it.line, 2);
    CU_ASSERT_EQUAL(it.col, 3);
    CU_ASSERT_EQUAL(it.size, strlen("{\"a\": \"x,]}\"}"));
    CU_ASSERT_EQUAL(memcmp(it.text, "{\"a\"", 4), 0);
    jr_item_clear(&it);
    CU_ASSERT_EQUAL(jr_doc_next(&doc, &it), 1);
    CU_ASSERT_PTR_NULL(it.obj);
    CU_ASSERT_STRING_EQUAL(it.error, "b.json:3:3: element 2 is not a JSON object (got number)");
    CU_ASSERT_EQUAL(it.index, 2);
    jr_item_clear(&it);
    CU_ASSERT_EQUAL(jr_doc_next(&doc, &it), 1);
    CU_ASSERT_PTR_NOT_NULL(it.obj);
    CU_ASSERT_EQUAL(it.line, 4);
    CU_ASSERT_EQUAL(it.index, 3);
    CU_ASSERT_EQUAL(it.size, strlen("{\"b\": [1, {\"c\": 2}]}"));
    jr_item_clear(&it);
    CU_ASSERT_EQUAL(jr_doc_next(&doc, &it), 0);
    jr_doc_close(&doc);
}

static void test_doc_oversize_element(void)
{
    const char *buf = "[{\"a\":1},{\"body\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]";
    jr_doc doc;
    CU_ASSERT_EQUAL_FATAL(jr_doc_open(&doc, "c.json", buf, strlen(buf), 20), 0);
    jr_item it;
    jr_doc_next(&doc, &it);
    CU_ASSERT_PTR_NOT_NULL(it.obj);
    jr_item_clear(&it);
    jr_doc_next(&doc, &it);
    CU_ASSERT_PTR_NULL(it.obj);
    if (!strstr(it.error, "c.json:1:10: record is 48 bytes"))
        fprintf(stderr, "got \"%s\"\n", it.error);
    CU_ASSERT_PTR_NOT_NULL(strstr(it.error, "c.json:1:10: record is 48 bytes"));
    jr_item_clear(&it);
    jr_doc_close(&doc);
}

static void test_doc_errors(void)
{
    struct {
        const char *in, *err;
    } cases[] = {
        {"[\n {\"a\":1},\n {\"b\" 2}\n]", "d.json:3:7: object property name separator ':' "
                                          "expected, found '2'"},
        {"  \n ", "d.json:1:1: empty document"},
        {"\"text\"", "d.json:1:1: document is not an object or an array of objects (got string)"},
        {"[{\"a\":1}", "d.json:1:9: unexpected end of input"},
        {"{\"a\":1}\n}", "d.json:2:1: unexpected character '}' after the end of the value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        jr_doc doc;
        CU_ASSERT_EQUAL_FATAL(jr_doc_open(&doc, "d.json", cases[i].in, strlen(cases[i].in), MAX),
                              0);
        jr_item it;
        CU_ASSERT_EQUAL(jr_doc_next(&doc, &it), 1);
        CU_ASSERT_PTR_NULL(it.obj);
        if (strcmp(it.error, cases[i].err) != 0)
            fprintf(stderr, "case %zu: got \"%s\"\n", i, it.error);
        CU_ASSERT_STRING_EQUAL(it.error, cases[i].err);
        CU_ASSERT_EQUAL(it.size, strlen(cases[i].in));
        jr_item_clear(&it);
        CU_ASSERT_EQUAL(jr_doc_next(&doc, &it), 0);
        jr_doc_close(&doc);
    }
    jr_doc doc;
    CU_ASSERT_EQUAL(jr_doc_open(&doc, "e.json", "[ ]", 3, MAX), 0);
    jr_item it;
    CU_ASSERT_EQUAL(jr_doc_next(&doc, &it), 0);
    jr_doc_close(&doc);
}

static void test_line_reader(void)
{
    static char data[] = "{\"a\":1}\n\nabcdefghijklmnopqrstuvwxyz0123456789\r\nlast";
    FILE *f = fmemopen(data, strlen(data), "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    jr_lines lr;
    CU_ASSERT_EQUAL_FATAL(jr_lines_init(&lr, f, 16), 0);
    const char *line;
    size_t len, full;
    uint64_t off;
    CU_ASSERT_EQUAL(jr_lines_next(&lr, &line, &len, &full, &off), 1);
    CU_ASSERT_EQUAL(len, 7);
    CU_ASSERT_EQUAL(off, 0);
    CU_ASSERT_EQUAL(lr.lineno, 1);
    CU_ASSERT_EQUAL(jr_lines_next(&lr, &line, &len, &full, &off), 1);
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT_EQUAL(off, 8);
    CU_ASSERT_EQUAL(jr_lines_next(&lr, &line, &len, &full, &off), 1);
    CU_ASSERT_EQUAL(len, 16); /* cut to keep */
    CU_ASSERT_EQUAL(full, 37);
    CU_ASSERT_EQUAL(off, 9);
    CU_ASSERT_EQUAL(memcmp(line, "abcdefghijklmnop", 16), 0);
    CU_ASSERT_EQUAL(lr.lineno, 3);
    CU_ASSERT_EQUAL(jr_lines_next(&lr, &line, &len, &full, &off), 1);
    CU_ASSERT_EQUAL(len, 4);
    CU_ASSERT_EQUAL(memcmp(line, "last", 4), 0);
    CU_ASSERT_EQUAL(off, 47);
    CU_ASSERT_EQUAL(jr_lines_next(&lr, &line, &len, &full, &off), 0);
    jr_lines_free(&lr);
    fclose(f);
}

/* Lines longer than the read buffer are assembled; memory stays bounded by keep. */
static void test_line_reader_long_lines(void)
{
    size_t big = 200 * 1024;
    char *data = malloc(big * 2 + 16);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    memset(data, 'x', big);
    data[big] = '\n';
    memset(data + big + 1, 'y', big);
    data[2 * big + 1] = '\n';
    FILE *f = fmemopen(data, 2 * big + 2, "r");
    jr_lines lr;
    jr_lines_init(&lr, f, 150 * 1024);
    const char *line;
    size_t len, full;
    uint64_t off;
    CU_ASSERT_EQUAL(jr_lines_next(&lr, &line, &len, &full, &off), 1);
    CU_ASSERT_EQUAL(full, big);
    CU_ASSERT_EQUAL(len, 150 * 1024);
    CU_ASSERT_EQUAL(line[0], 'x');
    CU_ASSERT_EQUAL(jr_lines_next(&lr, &line, &len, &full, &off), 1);
    CU_ASSERT_EQUAL(full, big);
    CU_ASSERT_EQUAL(off, big + 1);
    CU_ASSERT_EQUAL(line[0], 'y');
    CU_ASSERT_TRUE(lr.lcap <= 150 * 1024);
    CU_ASSERT_EQUAL(jr_lines_next(&lr, &line, &len, &full, &off), 0);
    jr_lines_free(&lr);
    fclose(f);
    free(data);
}

static void test_raw_text(void)
{
    char *s = jr_raw_text("ok \xff\xfe end", 9, 4096);
    CU_ASSERT_STRING_EQUAL(s, "ok \xEF\xBF\xBD\xEF\xBF\xBD end");
    free(s);
    /* A valid multi-byte character cut by the limit is dropped, not mangled. */
    s = jr_raw_text("ab\xC3\xA9", 4, 3);
    CU_ASSERT_STRING_EQUAL(s, "ab");
    free(s);
    s = jr_raw_text("a\0b", 3, 4096);
    CU_ASSERT_STRING_EQUAL(s, "a\xEF\xBF\xBD"
                              "b");
    free(s);
    s = jr_raw_text("\xED\xA0\x80", 3, 4096); /* UTF-16 surrogate: invalid in UTF-8 */
    CU_ASSERT_STRING_EQUAL(s, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    free(s);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("json_reader", NULL, NULL);
    CU_add_test(s, "line object", test_line_object);
    CU_add_test(s, "blank lines, CRLF, BOM", test_line_blank_and_crlf);
    CU_add_test(s, "line errors say what and where", test_line_errors_say_where);
    CU_add_test(s, "oversize line", test_line_oversize);
    CU_add_test(s, "document: one object", test_doc_object);
    CU_add_test(s, "document: array with positions", test_doc_array);
    CU_add_test(s, "document: oversize element", test_doc_oversize_element);
    CU_add_test(s, "document: errors", test_doc_errors);
    CU_add_test(s, "line reader", test_line_reader);
    CU_add_test(s, "line reader: long lines bounded", test_line_reader_long_lines);
    CU_add_test(s, "raw text is valid UTF-8", test_raw_text);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
