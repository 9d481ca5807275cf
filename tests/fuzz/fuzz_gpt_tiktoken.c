/*
 * fuzz_gpt_tiktoken.c: feeds arbitrary bytes to the .tiktoken rank-file
 * parser (lib/tokenizer/tokenizer.c). A rejection must carry a message;
 * an accepted table must tokenize its own input without failing, and the
 * token count must equal the length of the encoding.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <intake/plugin.h>

#include "tokenizer/tokenizer.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ik_tok *t = NULL;
    char err[300] = "";
    int rc = ik_tok_load_mem("fuzz", data, size, &t, err, sizeof err);
    if (rc != 0) {
        CHECK(t == NULL && err[0]);
        return 0;
    }
    CHECK(ik_tok_vocab(t) >= 256);
    const char *text = (const char *)data;
    size_t n = size < 4096 ? size : 4096;
    uint32_t *ids;
    size_t k;
    CHECK(ik_tok_encode(t, text, n, 1, &ids, &k) == 0);
    free(ids);
    CHECK(ik_tok_encode(t, text, n, 0, &ids, &k) == 0);
    CHECK(ik_tok_count(t, text, n) == k);
    CHECK(n == 0 || k >= 1);
    free(ids);
    ik_tok_free(t);
    return 0;
}
