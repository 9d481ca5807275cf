/*
 * fuzz_json_reader.c: feeds arbitrary bytes to the file source's parser
 * (plugins/sources/file/json_reader.c) both as a .json document and as a .jsonl
 * stream, and checks the invariants callers rely on: every item has either
 * an object or an error text with a position, positions and sizes stay inside
 * the input, an object comes from text without a \u0000 escape, raw text is
 * the input's own bytes and dead-letter text is NUL-free and bounded. The
 * streamed document reader is run with several read sizes (down to one
 * byte) and must give the same items each time, with a window bounded by the
 * largest element rather than the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file/json_reader.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1 when no string value in obj holds a NUL (it would be cut as a C string). */
static int nul_free(json_object *obj)
{
    switch (json_object_get_type(obj)) {
    case json_type_string:
        return strlen(json_object_get_string(obj)) == (size_t)json_object_get_string_len(obj);
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(obj); i++)
            if (!nul_free(json_object_array_get_idx(obj, i)))
                return 0;
        return 1;
    case json_type_object: {
        json_object_object_foreach(obj, key, val)
        {
            (void)key;
            if (!nul_free(val))
                return 0;
        }
        return 1;
    }
    default:
        return 1;
    }
}

/* 1 when the JSON text holds a \u0000 escape: "\u0000" after an even run
 * of backslashes (json-c cuts a key at the NUL, so nul_free cannot see it). */
static int has_nul_escape(const char *t, size_t len)
{
    for (size_t i = 0; i + 6 <= len; i++) {
        if (t[i] != '\\' || memcmp(t + i + 1, "u0000", 5) != 0)
            continue;
        size_t k = 0;
        while (k < i && t[i - 1 - k] == '\\')
            k++;
        if (k % 2 == 0)
            return 1;
    }
    return 0;
}

static void check_item(const jr_item *it)
{
    CHECK((it->obj != NULL) != (it->error[0] != '\0'));
    CHECK(it->line >= 1 && it->col >= 1 && it->index >= 1);
    CHECK(it->text_len <= it->size || it->size == 0);
    if (it->obj) {
        CHECK(json_object_is_type(it->obj, json_type_object));
        CHECK(nul_free(it->obj));
        CHECK(it->text_len < it->size || !has_nul_escape(it->text, it->text_len));
    }
    char *raw = jr_raw_text(it->text ? it->text : "", it->text_len, JR_RAW_MAX);
    CHECK(raw != NULL);
    CHECK(strlen(raw) <= JR_RAW_MAX * 3);
    free(raw);
}

#define DOC_MAX 512

/*
 * Reads the input as a .json document `chunk` bytes per read (0: the
 * default) and appends a line per item to sig (what the item says, where
 * and what it holds), so reads of different sizes can be compared.
 */
static void read_document(const uint8_t *data, size_t size, size_t chunk, char *sig, size_t cap)
{
    size_t o = 0;
    sig[0] = '\0';
    /* An exact-size copy, so reading past the end is caught by ASan. */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return;
    memcpy(buf, data, size);
    FILE *f = fmemopen(buf, size, "r");
    jr_doc doc;
    if (f && jr_doc_open(&doc, "fuzz.json", f, DOC_MAX) == 0) {
        if (chunk)
            doc.chunk = chunk;
        size_t keep = (DOC_MAX > JR_RAW_MAX ? DOC_MAX : JR_RAW_MAX) + doc.chunk;
        jr_item it;
        unsigned long n = 0;
        uint64_t last = 0;
        int r;
        while ((r = jr_doc_next(&doc, &it)) == 1) {
            check_item(&it);
            CHECK(it.index == ++n);
            CHECK(it.offset >= last && it.offset <= size);
            CHECK(it.offset + it.size <= size);
            CHECK(it.text_len <= it.size || (it.size == 0 && it.text_len == 0));
            /* The raw text is the file's own bytes at the item's offset. */
            CHECK(memcmp(it.text, data + it.offset, it.text_len) == 0);
            /* A dead letter re-reads a record's text alone as one line. */
            if (it.obj && it.text_len == it.size) {
                jr_item again;
                CHECK(jr_parse_line("x", it.text, it.size, it.size, 2, 1, it.offset, DOC_MAX,
                                    &again) == 1);
                CHECK(again.obj && json_object_equal(again.obj, it.obj));
                jr_item_clear(&again);
            }
            /* Memory stays bounded by the largest kept element, not the input. */
            CHECK(doc.wcap <= 4 * keep);
            last = it.offset;
            if (o < cap)
                o += (size_t)snprintf(sig + o, cap - o, "%lu:%lu:%lu@%llu+%zu/%zu|%s|%s\n",
                                      it.index, it.line, it.col, (unsigned long long)it.offset,
                                      it.size, it.text_len, it.error,
                                      it.obj ? json_object_to_json_string(it.obj) : "");
            jr_item_clear(&it);
        }
        CHECK(r == 0);
        CHECK(jr_doc_next(&doc, &it) == 0);
        jr_doc_close(&doc);
    }
    if (f)
        fclose(f);
    free(buf);
}

/* The document reader gives the same items whatever its read size: element
 * and escape boundaries falling across reads must not matter. */
static void fuzz_document(const uint8_t *data, size_t size)
{
    enum { SIG = 1 << 16 };
    char *a = malloc(SIG), *b = malloc(SIG);
    if (a && b) {
        read_document(data, size, 0, a, SIG);
        size_t chunks[] = {1, 2, 3 + (size % 61)};
        for (size_t i = 0; i < sizeof chunks / sizeof *chunks; i++) {
            read_document(data, size, chunks[i], b, SIG);
            CHECK(strcmp(a, b) == 0);
        }
    }
    free(a);
    free(b);
}

static void fuzz_stream(const uint8_t *data, size_t size)
{
    if (size == 0)
        return;
    char *buf = malloc(size);
    if (!buf)
        return;
    memcpy(buf, data, size);
    FILE *f = fmemopen(buf, size, "r");
    if (!f) {
        free(buf);
        return;
    }
    jr_lines lr;
    if (jr_lines_init(&lr, f, 600) == 0) {
        const char *line;
        size_t len, full;
        uint64_t off, total = 0;
        unsigned long index = 0;
        while (jr_lines_next(&lr, &line, &len, &full, &off) == 1) {
            CHECK(len <= full && len <= 600);
            CHECK(off == total);
            total += full + 1;
            jr_item it;
            if (jr_parse_line("fuzz.jsonl", line, len, full, lr.lineno, index + 1, off, 512, &it) ==
                1) {
                index++;
                check_item(&it);
                CHECK(it.line == lr.lineno);
                jr_item_clear(&it);
            }
        }
        CHECK(lr.offset == size);
        jr_lines_free(&lr);
    }
    fclose(f);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_document(data, size);
    fuzz_stream(data, size);
    char *raw = jr_raw_text((const char *)data, size, 64);
    if (raw) {
        CHECK(strlen(raw) <= 64 * 3);
        free(raw);
    }
    return 0;
}
