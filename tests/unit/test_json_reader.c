/*
 * test_json_reader.c: unit tests of the file source's parser
 * (plugins/sources/file/json_reader.c): .jsonl lines, .json documents, the bounded
 * line reader and the raw-text sanitiser, with exact positions in errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <CUnit/Basic.h>

#include "file/json_reader.h"

#define MAX (256 * 1024)

static jr_item line_item(const char *text, unsigned long lineno, int *rc)
{
    jr_item it;
    *rc = jr_parse_line("emails.jsonl", text, strlen(text), strlen(text), lineno, 7, 100, MAX, &it);
    return it;
}

/* UTF-8: text that common/utf8 finds valid is parsed without json-c's own
 * byte-by-byte check, the rest with it, so what json-c accepted and rejected
 * stays the same: errors with their place, the overlong forms json-c lets
 * through, and multibyte text after ASCII runs of any length. */
static void test_line_utf8(void)
{
    static const struct {
        const char *text, *error, *value; /* error NULL: value is field "a" */
    } cases[] = {
        {"{\"a\":\"0123456789abcdef\xff\"}",
         "emails.jsonl:1:23: invalid utf-8 string, found (byte 0xff)", NULL},
        {"{\"a\":\"x\xe2\x82\"}", "emails.jsonl:1:10: invalid utf-8 string, found '\"'", NULL},
        {"{\"a\":\"\xc0\x80\"}", NULL, "\xc0\x80"},
        {"{\"a\":\"\xed\xa0\x80\"}", NULL, "\xed\xa0\x80"},
        {"{\"a\":1} \xff", "emails.jsonl:1:9: invalid utf-8 string, found (byte 0xff)", NULL},
        {"{\"a\":\"\xe2\x82\xac"
         "0123456789\xf0\x9f\x98\x80 1234567\xc3\xa9\"}",
         NULL,
         "\xe2\x82\xac"
         "0123456789\xf0\x9f\x98\x80 1234567\xc3\xa9"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc;
        jr_item it = line_item(cases[i].text, 1, &rc);
        if (cases[i].error) {
            CU_ASSERT_PTR_NULL(it.obj);
            if (strcmp(it.error, cases[i].error) != 0)
                fprintf(stderr, "case %zu: got \"%s\"\n", i, it.error);
            CU_ASSERT_STRING_EQUAL(it.error, cases[i].error);
        } else {
            json_object *a = NULL;
            CU_ASSERT_PTR_NOT_NULL_FATAL(it.obj);
            CU_ASSERT_TRUE(json_object_object_get_ex(it.obj, "a", &a));
            CU_ASSERT_STRING_EQUAL(json_object_get_string(a), cases[i].value);
        }
        jr_item_clear(&it);
    }
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

/* A NUL character cuts C strings: \u0000 and raw NUL bytes are refused
 * with the column, in ids, other fields, keys and bodies alike. */
static void test_line_nul(void)
{
    struct {
        const char *in;
        size_t len;
        const char *err;
    } cases[] = {
        {"{\"id\":\"a\\u0000b\"}", 0,
         "emails.jsonl:4:9: string contains a NUL character (\\u0000)"},
        {"{\"id\":\"m1\",\"sender_email\":\"x\\u0000@evil.example\"}", 0,
         "emails.jsonl:4:29: string contains a NUL character (\\u0000)"},
        {"{\"id\":\"m1\",\"body\":\"Hello,\\n\\nsee below\\u0000 hidden\"}", 0,
         "emails.jsonl:4:39: string contains a NUL character (\\u0000)"},
        {"{\"k\\u0000\":1}", 0, "emails.jsonl:4:4: string contains a NUL character (\\u0000)"},
        /* json-c takes single-quoted keys, even in strict mode */
        {"{'k\\u0000':1}", 0, "emails.jsonl:4:4: string contains a NUL character (\\u0000)"},
        {"{'\"':\"\\u0000\"}", 0, "emails.jsonl:4:7: string contains a NUL character (\\u0000)"},
        /* an escaped backslash, then the escape */
        {"{\"id\":\"e\\\\\\u0000\"}", 0,
         "emails.jsonl:4:11: string contains a NUL character (\\u0000)"},
        {"{\"a\":\"x\0y\"}", 11, "emails.jsonl:4:8: NUL byte (not allowed in JSON text)"},
        {"{\"a\":1}\0", 8, "emails.jsonl:4:8: NUL byte (not allowed in JSON text)"},
        {"\0{\"a\":1}", 8, "emails.jsonl:4:1: NUL byte (not allowed in JSON text)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in);
        jr_item it;
        CU_ASSERT_EQUAL(jr_parse_line("emails.jsonl", cases[i].in, len, len, 4, 1, 0, MAX, &it), 1);
        CU_ASSERT_PTR_NULL(it.obj);
        if (strcmp(it.error, cases[i].err) != 0)
            fprintf(stderr, "case %zu: got \"%s\"\n", i, it.error);
        CU_ASSERT_STRING_EQUAL(it.error, cases[i].err);
        jr_item_clear(&it);
    }
    /* An escaped backslash followed by "u0000" is text, not a NUL. */
    int rc;
    jr_item it = line_item("{\"path\":\"C:\\\\u0000\"}", 1, &rc);
    CU_ASSERT_PTR_NOT_NULL(it.obj);
    jr_item_clear(&it);
    /* After a byte order mark the column still counts bytes of the line. */
    const char *bom = "\xEF\xBB\xBF{\"k\\u0000\":1}";
    CU_ASSERT_EQUAL(jr_parse_line("e.jsonl", bom, strlen(bom), strlen(bom), 1, 1, 0, MAX, &it), 1);
    CU_ASSERT_STRING_EQUAL(it.error, "e.jsonl:1:7: string contains a NUL character (\\u0000)");
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

/* One tokener kept across lines (what the file source's loop does) gives the
 * same items as a fresh one per line, also right after a line that stopped
 * it mid-value or mid-string. */
static void test_line_tokener_reused(void)
{
    static const char *const lines[] = {
        "{\"id\":\"a\",\"n\":[1,2,{\"x\":\"deep",
        "{\"id\":\"b\",\"n\":1}",
        "{\"id\":\"c\" \"n\":1}",
        "[1,2]",
        "{\"s\":\"caf\xC3\xA9\",\"t\":true}",
        "{\"bad\":\"\xC3(\"}",
        "{\"k\\u0000\":1}",
        "{\"id\":\"d\"} x",
        "{\"id\":\"e\",\"n\":{\"m\":[null,1.5]}}",
    };
    json_tokener *tok = jr_tokener_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        size_t len = strlen(lines[i]);
        jr_item fresh, reused;
        int a = jr_parse_line("r.jsonl", lines[i], len, len, i + 1, i + 1, 0, MAX, &fresh);
        int b =
            jr_parse_line_tok(tok, "r.jsonl", lines[i], len, len, i + 1, i + 1, 0, MAX, &reused);
        CU_ASSERT_EQUAL(a, b);
        CU_ASSERT_STRING_EQUAL(fresh.error, reused.error);
        CU_ASSERT_EQUAL(fresh.obj == NULL, reused.obj == NULL);
        if (fresh.obj && reused.obj)
            CU_ASSERT_STRING_EQUAL(json_object_to_json_string(fresh.obj),
                                   json_object_to_json_string(reused.obj));
        jr_item_clear(&fresh);
        jr_item_clear(&reused);
    }
    json_tokener_free(tok);
}

/* A document read from memory, `chunk` bytes per read (0: the default). */
typedef struct memdoc {
    FILE *f;
    jr_doc doc;
} memdoc;

static void md_open(memdoc *m, const char *name, const char *buf, size_t len, size_t max,
                    size_t chunk)
{
    m->f = fmemopen((void *)buf, len, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m->f);
    CU_ASSERT_EQUAL_FATAL(jr_doc_open(&m->doc, name, m->f, max), 0);
    if (chunk)
        m->doc.chunk = chunk;
}

static void md_close(memdoc *m)
{
    jr_doc_close(&m->doc);
    fclose(m->f);
}

static void test_doc_object(void)
{
    const char *buf = "\n  {\"id\": \"one\"}\n";
    memdoc m;
    md_open(&m, "a.json", buf, strlen(buf), MAX, 0);
    jr_item it;
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 1);
    CU_ASSERT_PTR_NOT_NULL(it.obj);
    CU_ASSERT_EQUAL(it.line, 2);
    CU_ASSERT_EQUAL(it.col, 3);
    CU_ASSERT_EQUAL(it.offset, 3);
    CU_ASSERT_EQUAL(it.size, 13);
    CU_ASSERT_EQUAL(it.index, 1);
    CU_ASSERT_EQUAL(memcmp(it.text, "{\"id\"", 5), 0);
    jr_item_clear(&it);
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 0);
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 0);
    md_close(&m);
}

static void test_doc_array(void)
{
    const char *buf = "[\n  {\"a\": \"x,]}\"},\n  7,\n  {\"b\": [1, {\"c\": 2}]},\n  null\n]\n";
    memdoc m;
    md_open(&m, "b.json", buf, strlen(buf), MAX, 0);
    jr_item it;
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 1);
    CU_ASSERT_PTR_NOT_NULL(it.obj);
    CU_ASSERT_EQUAL(it.line, 2);
    CU_ASSERT_EQUAL(it.col, 3);
    CU_ASSERT_EQUAL(it.size, strlen("{\"a\": \"x,]}\"}"));
    CU_ASSERT_EQUAL(memcmp(it.text, "{\"a\"", 4), 0);
    jr_item_clear(&it);
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 1);
    CU_ASSERT_PTR_NULL(it.obj);
    CU_ASSERT_STRING_EQUAL(it.error, "b.json:3:3: element 2 is not a JSON object (got number)");
    CU_ASSERT_EQUAL(it.index, 2);
    jr_item_clear(&it);
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 1);
    CU_ASSERT_PTR_NOT_NULL(it.obj);
    CU_ASSERT_EQUAL(it.line, 4);
    CU_ASSERT_EQUAL(it.index, 3);
    CU_ASSERT_EQUAL(it.size, strlen("{\"b\": [1, {\"c\": 2}]}"));
    jr_item_clear(&it);
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 1);
    CU_ASSERT_STRING_EQUAL(it.error, "b.json:5:3: element 4 is not a JSON object (got null)");
    jr_item_clear(&it);
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 0);
    md_close(&m);
}

static void test_doc_oversize_element(void)
{
    const char *buf = "[{\"a\":1},{\"body\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"},{\"b\":2}]";
    memdoc m;
    md_open(&m, "c.json", buf, strlen(buf), 20, 0);
    jr_item it;
    jr_doc_next(&m.doc, &it);
    CU_ASSERT_PTR_NOT_NULL(it.obj);
    jr_item_clear(&it);
    jr_doc_next(&m.doc, &it);
    CU_ASSERT_PTR_NULL(it.obj);
    CU_ASSERT_STRING_EQUAL(it.error, "c.json:1:10: record is 48 bytes, larger than "
                                     "max_record_size 20");
    jr_item_clear(&it);
    /* The element after it is read as usual. */
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 1);
    CU_ASSERT_PTR_NOT_NULL(it.obj);
    CU_ASSERT_EQUAL(it.index, 3);
    jr_item_clear(&it);
    md_close(&m);

    /* Far larger than the read chunk and JR_RAW_MAX: skipped without being
     * kept, its first JR_RAW_MAX bytes kept for the dead letter. */
    size_t big = 64 * 1024;
    char *doc = malloc(big + 64);
    size_t n = (size_t)sprintf(doc, "[\n{\"body\":\"");
    memset(doc + n, 'x', big);
    n += big;
    n += (size_t)sprintf(doc + n, "\\\"]}\"},\n{\"id\":\"next\"}]");
    md_open(&m, "d.json", doc, n, 1000, 512);
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 1);
    CU_ASSERT_PTR_NULL(it.obj);
    CU_ASSERT_PTR_NOT_NULL(strstr(it.error, "d.json:2:1: record is 65551 bytes"));
    CU_ASSERT_EQUAL(it.size, 65551);
    CU_ASSERT_EQUAL(it.text_len, JR_RAW_MAX);
    CU_ASSERT_EQUAL(memcmp(it.text, "{\"body\":\"xxx", 12), 0);
    CU_ASSERT_TRUE(m.doc.wcap <= 8 * 1024);
    jr_item_clear(&it);
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 1);
    CU_ASSERT_PTR_NOT_NULL(it.obj);
    CU_ASSERT_EQUAL(it.line, 3);
    CU_ASSERT_EQUAL(it.offset, n - 14);
    jr_item_clear(&it);
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 0);
    md_close(&m);
    free(doc);
}

/* Documents that go wrong: `good` items come first, then one error item
 * with `err` covering `size` bytes (the rest of the file). */
static void test_doc_errors(void)
{
    struct {
        const char *in;
        size_t good;
        const char *err;
        size_t size;
    } cases[] = {
        {"[\n {\"a\":1},\n {\"b\" 2},\n {\"c\":3}\n]", 1,
         "d.json:3:7: object property name separator ':' expected, found '2'", 19},
        {"  \n ", 0, "d.json:1:1: empty document", 4},
        {"\"text\"", 0, "d.json:1:1: document is not an object or an array of objects (got string)",
         6},
        {"null", 0, "d.json:1:1: document is not an object or an array of objects (got null)", 4},
        {"[{\"a\":1}", 1, "d.json:1:9: unexpected end of input", 0},
        {"[{\"a\":1}, {\"b\":", 1, "d.json:1:16: unexpected end of input", 5},
        {"{\"a\":1}\n}", 0, "d.json:2:1: unexpected character '}' after the end of the value", 9},
        {"[{\"a\":1} {\"b\":2}]", 1, "d.json:1:10: expected ',' or ']' after element 1, found '{'",
         8},
        {"[{\"a\":1},]", 1, "d.json:1:10: expected an element, found ']'", 1},
        {"[{\"a\":1},\n{\"b\":2}]  x", 2,
         "d.json:2:11: unexpected character 'x' after the end of the value", 1},
        {"[{\"a\":1},\n ,{\"b\":2}]", 1, "d.json:2:2: expected an element, found ','", 9},
        {"]", 0, "d.json:1:1: unexpected character ']'", 1},
        {"[{\"a\":\"x\"]", 0, "d.json:1:10: object value separator ',' expected, found ']'", 9},
        {"[\"unterminated, {\\\"a\\\":1}]", 0, "d.json:1:27: unexpected end of input", 25},
        /* json-c takes a single-quoted key; the scanner sees a string to the end */
        {"{'\"':1}", 0, "d.json:1:8: unexpected end of input", 7},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memdoc m;
        md_open(&m, "d.json", cases[i].in, strlen(cases[i].in), MAX, 0);
        jr_item it;
        for (size_t g = 0; g < cases[i].good; g++) {
            CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 1);
            CU_ASSERT_PTR_NOT_NULL(it.obj);
            jr_item_clear(&it);
        }
        CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 1);
        CU_ASSERT_PTR_NULL(it.obj);
        if (strcmp(it.error, cases[i].err) != 0 || it.size != cases[i].size)
            fprintf(stderr, "case %zu: got \"%s\", size %zu\n", i, it.error, it.size);
        CU_ASSERT_STRING_EQUAL(it.error, cases[i].err);
        CU_ASSERT_EQUAL(it.size, cases[i].size);
        CU_ASSERT_EQUAL(it.index, cases[i].good + 1);
        jr_item_clear(&it);
        CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 0);
        md_close(&m);
    }
    memdoc m;
    md_open(&m, "e.json", "[ ]", 3, MAX, 0);
    jr_item it;
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 0);
    md_close(&m);
}

/* \u0000 in any string, and a raw NUL byte, are refused with where. */
static void test_doc_nul(void)
{
    const char *buf = "[{\"id\":\"a\\u0000b\"},\n {\"id\":\"ok\",\"note\":\"\\\\u0000\"},\n"
                      " {\"x\":{\"k\\u0000\":1}},\n {\"body\":\"long text \\u0000\"}]";
    memdoc m;
    md_open(&m, "n.json", buf, strlen(buf), MAX, 0);
    jr_item it;
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 1);
    CU_ASSERT_STRING_EQUAL(it.error, "n.json:1:10: string contains a NUL character (\\u0000)");
    CU_ASSERT_EQUAL(it.text_len, 17); /* the element, for the dead letter */
    jr_item_clear(&it);
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 1);
    CU_ASSERT_PTR_NOT_NULL(it.obj); /* an escaped backslash, then text: no NUL */
    jr_item_clear(&it);
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 1);
    CU_ASSERT_STRING_EQUAL(it.error, "n.json:3:10: string contains a NUL character (\\u0000)");
    jr_item_clear(&it);
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 1);
    CU_ASSERT_STRING_EQUAL(it.error, "n.json:4:21: string contains a NUL character (\\u0000)");
    jr_item_clear(&it);
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 0);
    md_close(&m);

    /* One object holding \u0000. */
    const char *one = "{\"sender\":\"x\\u0000@evil\"}";
    md_open(&m, "o.json", one, strlen(one), MAX, 0);
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 1);
    CU_ASSERT_STRING_EQUAL(it.error, "o.json:1:13: string contains a NUL character (\\u0000)");
    jr_item_clear(&it);
    md_close(&m);
    /* ... in a single-quoted key (json-c takes them, even in strict mode). */
    const char *quoted = "[{'k\\u0000':1}]";
    md_open(&m, "q.json", quoted, strlen(quoted), MAX, 0);
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 1);
    CU_ASSERT_STRING_EQUAL(it.error, "q.json:1:5: string contains a NUL character (\\u0000)");
    jr_item_clear(&it);
    md_close(&m);

    /* Raw NUL bytes: inside an element, between elements, after the end. */
    static const char inside[] = "[{\"a\":1},\n{\"b\":\"x\0y\"}]";
    md_open(&m, "r.json", inside, sizeof inside - 1, MAX, 0);
    jr_doc_next(&m.doc, &it);
    jr_item_clear(&it);
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 1);
    CU_ASSERT_STRING_EQUAL(it.error, "r.json:2:8: NUL byte (not allowed in JSON text)");
    jr_item_clear(&it);
    md_close(&m);
    static const char between[] = "[{\"a\":1}\0]";
    md_open(&m, "r.json", between, sizeof between - 1, MAX, 0);
    jr_doc_next(&m.doc, &it);
    jr_item_clear(&it);
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 1);
    CU_ASSERT_STRING_EQUAL(it.error, "r.json:1:9: NUL byte (not allowed in JSON text)");
    jr_item_clear(&it);
    md_close(&m);
    static const char after[] = "{\"a\":1}\n\0";
    md_open(&m, "r.json", after, sizeof after - 1, MAX, 0);
    CU_ASSERT_EQUAL(jr_doc_next(&m.doc, &it), 1);
    CU_ASSERT_STRING_EQUAL(it.error, "r.json:2:1: NUL byte (not allowed in JSON text)");
    jr_item_clear(&it);
    md_close(&m);
}

/* Whatever the read size, a document gives the same items. */
static void test_doc_chunk_boundaries(void)
{
    const char *buf =
        "\xEF\xBB\xBF [ {\"id\":\"a\",\"s\":\"\\\"]},\\\\\"} ,\n{\"n\":[1,{\"m\":[]}]}"
        ",\r\n 12, {\"x\":\"\\u0000\"}, \"str\", {\"big\":\"0123456789012345678901234\"},"
        "{\"last\":true} ] \n";
    size_t len = strlen(buf);
    char want[4096] = "", got[4096];
    for (size_t chunk = 0; chunk <= 40; chunk++) {
        memdoc m;
        md_open(&m, "k.json", buf, len, 30, chunk);
        size_t o = 0;
        jr_item it;
        int r;
        while ((r = jr_doc_next(&m.doc, &it)) == 1) {
            o += (size_t)snprintf(got + o, sizeof got - o, "%lu %lu:%lu @%llu+%zu %.*s|%s|%s\n",
                                  it.index, it.line, it.col, (unsigned long long)it.offset, it.size,
                                  (int)it.text_len, it.text, it.error,
                                  it.obj ? json_object_to_json_string(it.obj) : "");
            jr_item_clear(&it);
        }
        CU_ASSERT_EQUAL(r, 0);
        md_close(&m);
        if (chunk == 0) {
            memcpy(want, got, o + 1);
            CU_ASSERT_PTR_NOT_NULL(strstr(want, "7 3:65 @118+13 {\"last\":true}||"));
            CU_ASSERT_PTR_NOT_NULL(strstr(want, "2 2:1 @33+18"));
            CU_ASSERT_PTR_NOT_NULL(strstr(want, "3:12: string contains a NUL"));
            CU_ASSERT_PTR_NOT_NULL(strstr(want, "record is 35 bytes"));
        } else if (strcmp(want, got) != 0) {
            fprintf(stderr, "chunk %zu:\n%s\nwant:\n%s\n", chunk, got, want);
            CU_FAIL("items depend on the read size");
        }
    }
}

/* A big array is read with a window of about one chunk, not the file. */
static void test_doc_memory_bounded(void)
{
    FILE *f = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("[\n", f);
    size_t n = 40000;
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s{\"id\":\"m-%zu\",\"body\":\"%0200zu\"}\n", i ? "," : "", i, i);
    fputs("]\n", f);
    long size = ftell(f);
    rewind(f);
    jr_doc doc;
    CU_ASSERT_EQUAL_FATAL(jr_doc_open(&doc, "big.json", f, MAX), 0);
    jr_item it;
    size_t count = 0;
    size_t maxcap = 0;
    while (jr_doc_next(&doc, &it) == 1) {
        if (it.obj)
            count++;
        if (doc.wcap > maxcap)
            maxcap = doc.wcap;
        jr_item_clear(&it);
    }
    CU_ASSERT_EQUAL(count, n);
    CU_ASSERT_TRUE(size > 8 * 1024 * 1024);
    CU_ASSERT_TRUE(maxcap <= 2 * doc.chunk);
    jr_doc_close(&doc);
    fclose(f);
}

static ssize_t failing_read(void *cookie, char *buf, size_t size)
{
    int *calls = cookie;
    if ((*calls)++ == 0) {
        memcpy(buf, "[{\"a\":1},", 9);
        return 9;
    }
    errno = EIO;
    return -1;
}

/* A read error ends the document with -1 and the errno. */
static void test_doc_read_error(void)
{
    int calls = 0;
    cookie_io_functions_t io = {failing_read, NULL, NULL, NULL};
    FILE *f = fopencookie(&calls, "r", io);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    jr_doc doc;
    CU_ASSERT_EQUAL_FATAL(jr_doc_open(&doc, "e.json", f, MAX), 0);
    jr_item it;
    CU_ASSERT_EQUAL(jr_doc_next(&doc, &it), 1);
    CU_ASSERT_PTR_NOT_NULL(it.obj);
    jr_item_clear(&it);
    CU_ASSERT_EQUAL(jr_doc_next(&doc, &it), -1);
    CU_ASSERT_EQUAL(doc.error, EIO);
    CU_ASSERT_PTR_NULL(it.obj);
    CU_ASSERT_EQUAL(jr_doc_next(&doc, &it), -1);
    jr_doc_close(&doc);
    fclose(f);
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
    CU_add_test(s, "UTF-8 accepted and rejected as json-c does", test_line_utf8);
    CU_add_test(s, "NUL characters and bytes in a line", test_line_nul);
    CU_add_test(s, "oversize line", test_line_oversize);
    CU_add_test(s, "one tokener across lines", test_line_tokener_reused);
    CU_add_test(s, "document: one object", test_doc_object);
    CU_add_test(s, "document: array with positions", test_doc_array);
    CU_add_test(s, "document: oversize element", test_doc_oversize_element);
    CU_add_test(s, "document: errors end it, the rest dead-lettered", test_doc_errors);
    CU_add_test(s, "document: NUL characters and bytes", test_doc_nul);
    CU_add_test(s, "document: same items whatever the read size", test_doc_chunk_boundaries);
    CU_add_test(s, "document: memory bounded by the window", test_doc_memory_bounded);
    CU_add_test(s, "document: read error", test_doc_read_error);
    CU_add_test(s, "line reader", test_line_reader);
    CU_add_test(s, "line reader: long lines bounded", test_line_reader_long_lines);
    CU_add_test(s, "raw text is valid UTF-8", test_raw_text);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
