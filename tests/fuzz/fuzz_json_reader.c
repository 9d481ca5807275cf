/*
 * fuzz_json_reader.c: feeds arbitrary bytes to the file source's parser
 * (plugins/file/json_reader.c) both as a .json document and as a .jsonl
 * stream, and checks the invariants callers rely on: every item has either
 * an object or an error text with a position, positions and sizes stay inside
 * the input, and raw text for dead letters is NUL-free and bounded.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file/json_reader.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_item(const jr_item *it, size_t input_size)
{
    CHECK((it->obj != NULL) != (it->error[0] != '\0'));
    CHECK(it->line >= 1 && it->col >= 1 && it->index >= 1);
    CHECK(it->text_len <= it->size || it->size == 0);
    if (it->obj)
        CHECK(json_object_is_type(it->obj, json_type_object));
    char *raw = jr_raw_text(it->text ? it->text : "", it->text_len, JR_RAW_MAX);
    CHECK(raw != NULL);
    CHECK(strlen(raw) <= JR_RAW_MAX * 3);
    free(raw);
    (void)input_size;
}

static void fuzz_document(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so reading past the end is caught by ASan. */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return;
    memcpy(buf, data, size);
    jr_doc doc;
    if (jr_doc_open(&doc, "fuzz.json", buf, size, 512) == 0) {
        jr_item it;
        size_t n = 0;
        while (jr_doc_next(&doc, &it) == 1) {
            check_item(&it, size);
            CHECK(it.offset <= size);
            CHECK(it.offset + it.size <= size);
            jr_item_clear(&it);
            n++;
        }
        CHECK(n == doc.count);
        jr_doc_close(&doc);
    }
    free(buf);
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
                check_item(&it, size);
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
