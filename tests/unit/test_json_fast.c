/*
 * test_json_fast.c: unit tests of the JSON fast path (lib/json/json_fast.c)
 * against json-c 0.16's tokener as the file source runs it (strict, trailing
 * characters allowed, depth 64, then nothing but whitespace). The contract:
 * whenever the fast path accepts, json-c accepts with an identical tree
 * (types, string bytes and lengths, key order, duplicate keys). Tables of
 * accepted and declined inputs, the records the file source reads (which it
 * must accept, or there is no speed-up), and a deterministic generator of
 * nested documents with random mutations.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "json/json_fast.h"
#include "json_fast_ref.h"

#define DEPTH 64 /* json_reader.c's JR_DEPTH */

/*
 * Checks the contract on text[0..len) at depth `depth`: when the fast path
 * accepts, json-c accepts with the same tree and the same serialized text;
 * when it declines, *out is NULL. Returns what the fast path did (1 or 0).
 */
static int check_contract_depth(const char *text, size_t len, int depth)
{
    json_object *fast = (json_object *)&fast, *ref = NULL;
    int f = ik_json_fast_parse(text, len, depth, &fast);
    CU_ASSERT(f == 0 || f == 1);
    if (f != 1) {
        CU_ASSERT_PTR_NULL(fast);
        return 0;
    }
    int r = jf_ref_parse(text, len, depth, &ref);
    CU_ASSERT_EQUAL(r, 1);
    int same = r == 1 && jf_same_tree(fast, ref) && strcmp(jf_plain(fast), jf_plain(ref)) == 0;
    CU_ASSERT_TRUE(same);
    if (!same)
        fprintf(stderr, "\ncontract broken on [%.*s] (%zu bytes)\n", (int)(len > 200 ? 200 : len),
                text, len);
    json_object_put(fast);
    json_object_put(ref);
    return 1;
}

static int check_contract(const char *text, size_t len)
{
    return check_contract_depth(text, len, DEPTH);
}

/* Texts the fast path must accept (with json-c's tree). */
static void test_accepts(void)
{
    static const char *const cases[] = {
        "{}",
        "[]",
        " \t\r\n{ }\n",
        "[ ]",
        "[[]]",
        "{\"a\":{}}",
        "1",
        "0",
        "-0",
        "-7",
        "[-0]",
        "999999999999999999",
        "-999999999999999999",
        "123456789012345678",
        "true",
        "false",
        "null",
        "[null,true,false]",
        "{\"n\":null}",
        "\"\"",
        "\"s\"",
        "{\"\":\"\"}",
        "{\"a\":1,\"b\":2,\"a\":3}",
        "{\"a\":{\"x\":1},\"a\":[2]}",
        "{\"b\":1,\"a\":2,\"c\":3}",
        "[1,[2,[3,{\"k\":[4]}]],\"x\"]",
        "{ \"a\" : 1 , \"b\" : [ 1 , 2 ] }",
        "\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"",
        "\"\\u00e9\\u00E9\\u20ac\\u0041\\u007f\\u0080\"",
        "\"\\u0001\\u001f\\u0022\\u005c\"",
        "\"\\ud83d\\ude00 \\uD83D\\uDE00 \\udbff\\udfff\"",
        "\"\\ud800\\udc00\"",
        "\"\\uffff\\ufffe\\ue000\\ud7ff\"",
        "{\"k\\u00e9y\\n\":\"v\"}",
        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
        "\"\x7f\"",
        "\"a/b\"",
        "{\"id\":\"x\",\"body\":\"0123456789abcdef0123456789\\\"quoted\\\" end\"}",
        "[\"01234567\",\"0123456\\\"\",\"012345678\\n\"]",
        "\"1234567\\\\\"",
        "[1 ,2\t,\n3]"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int f = check_contract(cases[i], strlen(cases[i]));
        if (!f)
            fprintf(stderr, "\ndeclined: %s\n", cases[i]);
        CU_ASSERT_EQUAL(f, 1);
    }
}

/* Escapes become json-c's bytes: checked byte for byte, lengths included. */
static void test_escape_bytes(void)
{
    static const struct {
        const char *text, *bytes;
        int len;
    } cases[] = {
        {"\"\\u00e9\"", "\xc3\xa9", 2},
        {"\"\\u20ac\"", "\xe2\x82\xac", 3},
        {"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4},
        {"\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf", 4},
        {"\"a\\u0001b\"",
         "a\x01"
         "b",
         3},
        {"\"\\/\\b\\f\"", "/\b\f", 3},
        {"\"\xc3\xa9\"", "\xc3\xa9", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_object *o = NULL;
        CU_ASSERT_EQUAL_FATAL(ik_json_fast_parse(cases[i].text, strlen(cases[i].text), DEPTH, &o),
                              1);
        CU_ASSERT_EQUAL(json_object_get_string_len(o), cases[i].len);
        CU_ASSERT_EQUAL(memcmp(json_object_get_string(o), cases[i].bytes, (size_t)cases[i].len), 0);
        json_object_put(o);
        CU_ASSERT_EQUAL(check_contract(cases[i].text, strlen(cases[i].text)), 1);
    }
}

/* Types: an integer is an int (never a double), -0 is json-c's int 0, a
 * duplicate key keeps its first place and takes the last value. */
static void test_types(void)
{
    json_object *o = NULL;
    const char *t = "{\"a\":1,\"b\":-0,\"c\":\"x\",\"a\":true}";
    CU_ASSERT_EQUAL_FATAL(ik_json_fast_parse(t, strlen(t), DEPTH, &o), 1);
    CU_ASSERT_STRING_EQUAL(jf_plain(o), "{\"a\":true,\"b\":0,\"c\":\"x\"}");
    json_object *b = json_object_object_get(o, "b");
    CU_ASSERT_TRUE(json_object_is_type(b, json_type_int));
    CU_ASSERT_EQUAL(json_object_get_int64(b), 0);
    json_object_put(o);
    CU_ASSERT_EQUAL(ik_json_fast_parse("null", 4, DEPTH, &o), 1);
    CU_ASSERT_PTR_NULL(o);
    CU_ASSERT_EQUAL(ik_json_fast_parse("-999999999999999999", 19, DEPTH, &o), 1);
    CU_ASSERT_TRUE(json_object_is_type(o, json_type_int));
    CU_ASSERT_EQUAL(json_object_get_int64(o), -999999999999999999LL);
    json_object_put(o);
}

/* Texts the fast path declines: malformed ones, and forms json-c accepts
 * but that are left to it. */
static void test_declines(void)
{
    static const char *const cases[] = {
        /* malformed, or refused by strict json-c */
        "",
        " ",
        "{",
        "}",
        "[",
        "[1,]",
        "[,1]",
        "{\"a\":1,}",
        "{,}",
        "{'a':1}",
        "['a']",
        "[01]",
        "-",
        "[-]",
        "--1",
        "+1",
        "[1 2]",
        "{\"a\" 1}",
        "{\"a\":}",
        "{1:2}",
        "{\"a\"}",
        "\"unterminated",
        "\"a\\\"",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\u12g4\"",
        "\"\\U0041\"",
        "TRUE",
        "True",
        "nul",
        "nulls",
        "truex",
        "1x",
        "{} {}",
        "{}x",
        "[]]",
        "{}}",
        "/*c*/1",
        "1 //c",
        "[1]/",
        "\xEF\xBB\xBF{}",
        "\f{}",
        "{}\v",
        "{\f}",
        "\xc2\xa0{}",
        "\"a\"\"b\"",
        "[.5]",
        "[1.]",
        "0x10",
        "NaN",
        "Infinity",
        "-Infinity",
        "[NaN]",
        "{\"a\":Infinity}",
        /* accepted by json-c, left to it */
        "1.5",
        "1e5",
        "1E5",
        "-1.0",
        "[0.0]",
        "1e-3",
        "[00]",
        "-01",
        "[-00]",
        "9223372036854775807",
        "-9223372036854775808",
        "1234567890123456789",
        "18446744073709551615",
        "99999999999999999999999",
        "\"a\x01z\"",
        "\"tab\there\"",
        "\"nl\nhere\"",
        "{\"k\x1f\":1}",
        "\"\\u0000\"",
        "{\"a\\u0000b\":1}",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"\\ud800x\"",
        "\"\\ud800\\n\"",
        "\"\\udc00\\ud800\"",
        "\"\\ud800\\ud800\"",
        "\"\\udbff\"",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int f = check_contract(cases[i], strlen(cases[i]));
        if (f)
            fprintf(stderr, "\naccepted: %s\n", cases[i]);
        CU_ASSERT_EQUAL(f, 0);
    }
    /* Raw NUL bytes, inside a string and after a value. */
    CU_ASSERT_EQUAL(check_contract("\"a\0b\"", 5), 0);
    CU_ASSERT_EQUAL(check_contract("{}\0", 3), 0);
    CU_ASSERT_EQUAL(check_contract("1\0", 2), 0);
    json_object *o = (json_object *)&o;
    CU_ASSERT_EQUAL(ik_json_fast_parse("{}", 2, 0, &o), 0);
    CU_ASSERT_PTR_NULL(o);
    CU_ASSERT_EQUAL(ik_json_fast_parse("{}", 2, IK_JSON_FAST_MAX_DEPTH + 1, &o), 0);
    CU_ASSERT_EQUAL(ik_json_fast_parse(NULL, 0, DEPTH, &o), 0);
}

/* A string with one special byte (a quote, a backslash starting an escape,
 * a control character) at every offset among filler that has bytes on
 * either side of the special ones (0x1f/0x20, 0x21/0x22/0x23, 0x5b/0x5c/0x5d,
 * UTF-8 and 0x7f): the word-at-a-time scan must see each one exactly. */
static void test_special_offsets(void)
{
    static const char *const filler[] = {
        "a",    "\x20", "\x21",     "\x23",         "\x5b",
        "\x5d", "\x7f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    static const char *const special[] = {"\"", "\\n", "\\\"", "\x1f", "\x01", "\t", "\n"};
    unsigned seed = 1;
    for (size_t sp = 0; sp < sizeof special / sizeof *special; sp++) {
        for (int at = 0; at < 40; at++) {
            char s[512] = "\"";
            for (int i = 0; i < 48; i++) {
                if (i == at)
                    strcat(s, special[sp]);
                seed = seed * 1103515245u + 12345u;
                strcat(s, filler[(seed >> 16) % (sizeof filler / sizeof *filler)]);
            }
            strcat(s, "\"");
            int f = check_contract(s, strlen(s));
            /* An escape is taken; a bare quote ends the string early and a
             * control character is left to json-c: both declined. */
            CU_ASSERT_EQUAL(f, special[sp][0] == '\\');
        }
    }
}

/* n nested arrays around `inner` (NULL: empty innermost array). Caller frees. */
static char *nested(int n, const char *inner)
{
    size_t il = inner ? strlen(inner) : 0;
    char *s = malloc((size_t)n * 2 + il + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    memset(s, '[', (size_t)n);
    memcpy(s + n, inner ? inner : "", il);
    memset(s + n + il, ']', (size_t)n);
    s[2 * n + il] = '\0';
    return s;
}

/* json-c's depth rule: a value at depth max_depth - 1 (the top at 0) is
 * allowed, one deeper is not; an empty container adds no value inside. */
static void test_depth(void)
{
    static const struct {
        int arrays;
        const char *inner;
        int depth, accepted;
    } cases[] = {
        {63, "1", 64, 1},  {64, "1", 64, 0},         {64, NULL, 64, 1}, {65, NULL, 64, 0},
        {63, "{}", 64, 1}, {63, "[]", 64, 1},        {64, "{}", 64, 0}, {1, "1", 2, 1},
        {2, "1", 2, 0},    {2, NULL, 2, 1},          {0, "1", 1, 1},    {1, NULL, 1, 1},
        {1, "1", 1, 0},    {63, "{\"a\":1}", 64, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *s = nested(cases[i].arrays, cases[i].inner);
        int f = check_contract_depth(s, strlen(s), cases[i].depth);
        CU_ASSERT_EQUAL(f, cases[i].accepted);
        json_object *ref = NULL;
        /* Where the fast path declines here, json-c refuses too. */
        if (!cases[i].accepted)
            CU_ASSERT_EQUAL(jf_ref_parse(s, strlen(s), cases[i].depth, &ref), 0);
        json_object_put(ref);
        free(s);
    }
}

/* ---- records the file source reads: the fast path must take them ------ */

/* A record shaped as tools/bench/engine writes them (Python json.dumps). */
static char *bench_record(unsigned i, unsigned *seed)
{
    static const char *const words[] = {"candidate",  "advisor",  "portfolio", "client",
                                        "experience", "series",   "licensed",  "wealth",
                                        "management", "planning", "branch",    "referral"};
    char body[2400];
    size_t o = 0;
    while (o < 2300) {
        *seed = *seed * 1103515245u + 12345u;
        const char *w = words[(*seed >> 16) % (sizeof words / sizeof *words)];
        o += (size_t)snprintf(body + o, sizeof body - o, "%s%s", o ? " " : "", w);
    }
    body[2300] = '\0';
    char *rec = malloc(4096);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
    snprintf(rec, 4096,
             "{\"id\": \"bench-%u\", \"sender_email\": \"person%u@example.com\", "
             "\"sender_name\": \"Person %u\", \"subject\": \"Candidate referral %u\", "
             "\"body\": \"%s\", \"attachments\": [], \"priority\": %u}",
             i, i, i, i, body, i % 3);
    return rec;
}

static void test_bench_records(void)
{
    unsigned seed = 7;
    for (unsigned i = 0; i < 200; i++) {
        char *rec = bench_record(i, &seed);
        CU_ASSERT_EQUAL(check_contract(rec, strlen(rec)), 1);
        free(rec);
    }
}

/* Records as Python's json.dumps writes them (ensure_ascii: \u escapes,
 * surrogate pairs for emoji), and with escapes at every 8-byte offset. */
static void test_python_records(void)
{
    static const char *const cases[] = {
        "{\"id\": \"py-1\", \"sender_name\": \"Ren\\u00e9e L\\u00f3pez\", \"subject\": "
        "\"Re: \\u201cSenior Advisor\\u201d \\u2013 next steps\", \"body\": \"Hi,\\n\\nI\\u2019m "
        "interested \\ud83d\\ude00.\\r\\n\\tThanks,\\n\\\"Ren\\u00e9e\\\" <renee@example.com> "
        "https://example.com/a/b\", \"attachments\": [{\"filename\": \"cv.pdf\", \"size\": "
        "12345}], \"priority\": 2}",
        "{\"id\": \"py-2\", \"body\": \"Stra\\u00dfe M\\u00fcnchen \\u4e2d\\u6587 "
        "\\u0645\\u0631\\u062d\\u0628\\u0627\", \"cc\": [\"a@example.com\", \"b@example.com\"], "
        "\"flagged\": false, \"thread\": null}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CU_ASSERT_EQUAL(check_contract(cases[i], strlen(cases[i])), 1);
    static const char *const escapes[] = {"\\n", "\\\"", "\\\\", "\\u00e9", "\\ud83d\\ude00"};
    for (size_t e = 0; e < sizeof escapes / sizeof *escapes; e++) {
        for (int at = 0; at < 24; at++) {
            char s[128];
            snprintf(s, sizeof s, "{\"k%.*s%s\":\"%.*s%s%.*s\"}", at % 9, "abcdefghij", escapes[e],
                     at, "0123456789abcdefghijklmnopqrstuvwxyz", escapes[e], (at * 7) % 23,
                     "0123456789abcdefghijklmnopqrstuvwxyz");
            CU_ASSERT_EQUAL(check_contract(s, strlen(s)), 1);
        }
    }
}

/* 1 when json-c (as the reader runs it) accepts text[0..len). */
static int jsonc_accepts(const char *text, size_t len)
{
    json_object *o = NULL;
    int r = jf_ref_parse(text, len, DEPTH, &o);
    json_object_put(o);
    return r;
}

/* Checks the sample file etc/samples/<name>: the whole text, or each line
 * when `lines`. The fast path must take every text json-c accepts (a
 * sample may be broken on purpose: json-c refuses it, the fast path too). */
static void check_sample(const char *name, int lines)
{
    const char *src = getenv("INTAKE_TEST_SRC");
    char path[4096];
    snprintf(path, sizeof path, "%s/etc/samples/%s", src ? src : ".", name);
    FILE *f = fopen(path, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text, f);
    fclose(f);
    CU_ASSERT_TRUE_FATAL(n > 0 && n < sizeof text);
    if (!lines) {
        CU_ASSERT_EQUAL(check_contract(text, n), 1);
        return;
    }
    int taken = 0;
    for (char *p = text, *nl; p < text + n; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(text + n - p));
        if (!nl)
            nl = text + n;
        if (nl == p)
            continue;
        int fast = check_contract(p, (size_t)(nl - p));
        CU_ASSERT_EQUAL(fast, jsonc_accepts(p, (size_t)(nl - p)));
        taken += fast;
    }
    CU_ASSERT(taken > 0);
}

static void test_samples(void)
{
    check_sample("01-referral.json", 0);
    check_sample("02-application.json", 0);
    check_sample("03-batch.json", 0);
    check_sample("05-stream.jsonl", 1);
    check_sample("21-seed.json", 0);
}

/* ---- generated documents, and random mutations of them ---------------- */

typedef struct gen {
    uint64_t s;
    char *p;
    size_t len, cap;
    int wild; /* also forms the fast path declines */
} gen;

static uint64_t rnd(gen *g)
{
    g->s ^= g->s << 13;
    g->s ^= g->s >> 7;
    g->s ^= g->s << 17;
    return g->s;
}

static unsigned pick(gen *g, unsigned n)
{
    return (unsigned)(rnd(g) % n);
}

static void put(gen *g, const char *s, size_t n)
{
    if (g->len + n + 1 > g->cap) {
        g->cap = (g->len + n + 1) * 2;
        g->p = realloc(g->p, g->cap);
        CU_ASSERT_PTR_NOT_NULL_FATAL(g->p);
    }
    memcpy(g->p + g->len, s, n);
    g->len += n;
    g->p[g->len] = '\0';
}

static void puts_(gen *g, const char *s)
{
    put(g, s, strlen(s));
}

static void gen_ws(gen *g)
{
    static const char *const ws[] = {"", "", "", " ", "\n", "\t", "\r\n  ", "\f"};
    unsigned n = g->wild ? 8 : 7;
    puts_(g, ws[pick(g, n)]);
}

/* One piece of string text: plain ASCII runs, raw UTF-8, escapes. */
static void gen_string_piece(gen *g)
{
    static const char *const safe[] = {
        "hello world ",
        "0123456789abcdef",
        "a",
        "caf\xc3\xa9",
        "\xe2\x82\xac",
        "\xf0\x9f\x98\x80",
        "\\n",
        "\\\"",
        "\\\\",
        "\\/",
        "\\b\\f\\r\\t",
        "\\u00e9",
        "\\u20AC",
        "\\ud83d\\ude00",
        "\\u0041",
        "\\u001f",
        "\x7f",
        "'",
        "{}[],:",
    };
    static const char *const wild[] = {
        "\\u0000", "\\ud800", "\\udc00", "\\ud800\\u0041", "\\udc00\\ud800", "\x01",
        "\t",      "\\x",     "\\u12",   "\xff",           "\xc3",           "\\ud800\\n",
    };
    if (g->wild && pick(g, 12) == 0)
        puts_(g, wild[pick(g, sizeof wild / sizeof *wild)]);
    else
        puts_(g, safe[pick(g, sizeof safe / sizeof *safe)]);
}

static void gen_string(gen *g)
{
    puts_(g, "\"");
    unsigned n = pick(g, 6);
    if (pick(g, 8) == 0)
        n += 40; /* long, for the word-at-a-time scan */
    for (unsigned i = 0; i < n; i++)
        gen_string_piece(g);
    puts_(g, "\"");
}

static void gen_number(gen *g)
{
    static const char *const wild[] = {"1.5",
                                       "-0.0",
                                       "1e9",
                                       "2E-3",
                                       "007",
                                       "-01",
                                       "9223372036854775807",
                                       "-9223372036854775808",
                                       "18446744073709551616",
                                       "1234567890123456789"};
    if (g->wild && pick(g, 6) == 0) {
        puts_(g, wild[pick(g, sizeof wild / sizeof *wild)]);
        return;
    }
    char s[32];
    unsigned digits = 1 + pick(g, 18);
    int64_t v = (int64_t)(rnd(g) % 1000000000000000000ull);
    for (unsigned i = digits; i < 18; i++)
        v /= 10;
    snprintf(s, sizeof s, "%s%lld", pick(g, 3) == 0 ? "-" : "", (long long)v);
    puts_(g, s);
}

static void gen_value(gen *g, int depth);

static void gen_container(gen *g, int depth, int object)
{
    puts_(g, object ? "{" : "[");
    unsigned n = pick(g, depth > 3 ? 2 : 5);
    for (unsigned i = 0; i < n; i++) {
        if (i)
            puts_(g, ",");
        gen_ws(g);
        if (object) {
            static const char *const keys[] = {"\"id\"", "\"a\"",        "\"b\"",
                                               "\"\"",   "\"k\\u00e9\"", "\"x\\ny\""};
            if (pick(g, 2))
                puts_(g, keys[pick(g, sizeof keys / sizeof *keys)]); /* duplicates too */
            else
                gen_string(g);
            gen_ws(g);
            puts_(g, ":");
            gen_ws(g);
        }
        gen_value(g, depth + 1);
        gen_ws(g);
    }
    puts_(g, object ? "}" : "]");
}

static void gen_value(gen *g, int depth)
{
    unsigned k = pick(g, depth > 5 ? 6 : 8);
    switch (k) {
    case 0:
    case 1:
        gen_string(g);
        break;
    case 2:
        gen_number(g);
        break;
    case 3:
        puts_(g, pick(g, 2) ? "true" : "false");
        break;
    case 4:
        puts_(g, "null");
        break;
    case 5:
        gen_string(g);
        break;
    default:
        gen_container(g, depth, k == 6);
    }
}

/* A random change of a few bytes: replaced, inserted, deleted, or cut. */
static size_t mutate(gen *g, char *s, size_t len)
{
    static const char special[] = "\"\\{}[],:0-.eu \t\n\x01\x80";
    size_t at = len ? pick(g, (unsigned)len) : 0;
    switch (pick(g, 4)) {
    case 0:
        if (len)
            s[at] = pick(g, 2) ? special[pick(g, sizeof special - 1)] : (char)pick(g, 256);
        return len;
    case 1:
        memmove(s + at + 1, s + at, len - at);
        s[at] = special[pick(g, sizeof special - 1)];
        return len + 1;
    case 2:
        if (len)
            memmove(s + at, s + at + 1, len - at - 1);
        return len ? len - 1 : 0;
    default:
        return at;
    }
}

/* Documents made only of supported forms are all accepted; wild ones and
 * their mutations keep the contract whatever the fast path decides. */
static void test_generated(void)
{
    gen g = {.s = 0x9e3779b97f4a7c15ull};
    unsigned accepted = 0, mutated_accepted = 0, runs = 3000;
    char *m = NULL;
    for (unsigned i = 0; i < runs; i++) {
        g.len = 0;
        g.wild = (int)(i % 2);
        gen_ws(&g);
        gen_value(&g, 0);
        gen_ws(&g);
        int f = check_contract(g.p, g.len);
        if (!g.wild && !f)
            fprintf(stderr, "\ndeclined a plain document: %s\n", g.p);
        CU_ASSERT(g.wild || f);
        accepted += (unsigned)f;
        m = realloc(m, g.len + 16);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        for (int k = 0; k < 4; k++) {
            memcpy(m, g.p, g.len);
            size_t n = g.len;
            for (int j = 0; j <= k / 2; j++)
                n = mutate(&g, m, n);
            mutated_accepted += (unsigned)check_contract(m, n);
        }
    }
    /* The generator must exercise acceptance, mutated text included. */
    CU_ASSERT(accepted > runs / 2);
    CU_ASSERT(mutated_accepted > runs / 4);
    free(m);
    free(g.p);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("json_fast", NULL, NULL);
    CU_add_test(s, "accepts", test_accepts);
    CU_add_test(s, "escape bytes", test_escape_bytes);
    CU_add_test(s, "types", test_types);
    CU_add_test(s, "declines", test_declines);
    CU_add_test(s, "special bytes at every offset", test_special_offsets);
    CU_add_test(s, "depth", test_depth);
    CU_add_test(s, "bench records", test_bench_records);
    CU_add_test(s, "python records", test_python_records);
    CU_add_test(s, "samples", test_samples);
    CU_add_test(s, "generated", test_generated);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
