/*
 * fuzz_mock_multipart.c: feeds arbitrary bytes to mock-openai's
 * multipart/form-data parser (tools/mock-openai/multipart.c), the parser of
 * the Batch API file uploads it receives. The input's first line is the
 * Content-Type header, the rest the body. Checks what the mock relies on: a
 * failure comes with a message, every part found lies inside the body and
 * has a name, and nothing leaks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    size_t ctl = nl ? (size_t)(nl - in) : size;
    char *ct = malloc(ctl + 1);
    if (!ct)
        return 0;
    memcpy(ct, in, ctl);
    ct[ctl] = 0;
    const char *body = nl ? nl + 1 : in + size;
    size_t blen = size - (size_t)(body - in);
    mp_form f;
    char err[300] = "";
    if (mp_parse(ct, body, blen, &f, err, sizeof err) == 0) {
        for (size_t i = 0; i < f.n; i++) {
            CHECK(f.parts[i].name != NULL);
            CHECK(f.parts[i].data >= body && f.parts[i].data + f.parts[i].len <= body + blen);
        }
        mp_free(&f);
    } else {
        CHECK(err[0] != '\0');
    }
    free(ct);
    return 0;
}
