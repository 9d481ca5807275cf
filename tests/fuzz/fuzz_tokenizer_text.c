/*
 * fuzz_tokenizer_text.c: feeds arbitrary text to the o200k tokenizer
 * (lib/tokenizer/tokenizer.c): its hand-written ASCII pre-tokenizer, the
 * hand-over to PCRE2 at non-ASCII bytes and invalid UTF-8, the merge loop
 * and special tokens. With $INTAKE_O200K_FILE the real rank file is used,
 * otherwise a table of the 256 single bytes (built here) keeps the target
 * self-contained. Checks: counting and encoding agree, every byte of the
 * input is covered (single-byte table: one token per byte), nothing leaks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <intake/plugin.h>

#include "tokenizer/tokenizer.h"

#include "fuzz_check.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ik_tok *g_tok;    /* the fuzz target's fixture, loaded once */
static int g_bytes_only; /* the single-byte table */

static void b64(const unsigned char *in, size_t n, char *out)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = A[v >> 18 & 63];
        out[o++] = A[v >> 12 & 63];
        out[o++] = i + 1 < n ? A[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? A[v & 63] : '=';
    }
    out[o] = 0;
}

static ik_tok *load(void)
{
    char err[300];
    ik_tok *t = NULL;
    const char *f = getenv("INTAKE_O200K_FILE");
    if (f && f[0] && ik_tok_load_file(f, IK_TOK_O200K_SHA256, &t, err, sizeof err) == 0)
        return t;
    char *file = malloc(256 * 16);
    if (!file)
        return NULL;
    size_t o = 0;
    for (int b = 0; b < 256; b++) {
        unsigned char c = (unsigned char)b;
        char enc[8];
        b64(&c, 1, enc);
        o += (size_t)sprintf(file + o, "%s %d\n", enc, b);
    }
    if (ik_tok_load_mem("bytes", (const unsigned char *)file, o, &t, err, sizeof err) != 0)
        t = NULL;
    free(file);
    g_bytes_only = 1;
    return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g_tok = load();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_tok)
        g_tok = load(); /* the replay driver does not call the initializer */
    CHECK(g_tok != NULL);
    const char *text = (const char *)data;
    size_t n = ik_tok_count(g_tok, text, size);
    uint32_t *ids = NULL;
    size_t m = 0;
    int rc = ik_tok_encode(g_tok, text, size, 0, &ids, &m);
    CHECK(rc == 0);
    CHECK(m == n);
    CHECK(size == 0 || n > 0);
    CHECK(n <= size);
    if (g_bytes_only) {
        CHECK(n == size);
        for (size_t i = 0; i < m; i++)
            CHECK(ids[i] == data[i]);
    }
    free(ids);
    /* with special tokens allowed, "<|endoftext|>" in the text may become one */
    rc = ik_tok_encode(g_tok, text, size, 1, &ids, &m);
    CHECK(rc == 0 && m <= n);
    free(ids);
    return 0;
}
