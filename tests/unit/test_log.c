/*
 * test_log.c: unit tests of the engine logger (engine/log.c): line formats,
 * level filtering, secret redaction (message, names, overlaps, short values,
 * secrets added while other threads log), JSON validity, one line per call.
 *
 * stderr is redirected to a temporary file around each logging block and
 * read back.
 */
#include <CUnit/Basic.h>
#include <json-c/json.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "stderr_capture.h"

static size_t count_char(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

static int matches(const char *re, const char *s)
{
    regex_t r;
    if (regcomp(&r, re, REG_EXTENDED | REG_NOSUB) != 0)
        return 0;
    int ok = regexec(&r, s, 0, NULL, 0) == 0;
    regfree(&r);
    return ok;
}

static void reset(void)
{
    ik_log_shutdown();
    ik_log_configure(IK_LOG_TEXT, IK_LOG_INFO);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_parse_and_names(void)
{
    CU_ASSERT_EQUAL(ik_log_level_parse("error"), IK_LOG_ERROR);
    CU_ASSERT_EQUAL(ik_log_level_parse("warn"), IK_LOG_WARN);
    CU_ASSERT_EQUAL(ik_log_level_parse("info"), IK_LOG_INFO);
    CU_ASSERT_EQUAL(ik_log_level_parse("debug"), IK_LOG_DEBUG);
    CU_ASSERT_EQUAL(ik_log_level_parse("trace"), IK_LOG_TRACE);
    CU_ASSERT_EQUAL(ik_log_level_parse("verbose"), -1);
    CU_ASSERT_EQUAL(ik_log_level_parse(""), -1);
    CU_ASSERT_EQUAL(ik_log_level_parse(NULL), -1);
    CU_ASSERT_EQUAL(ik_log_format_parse("text"), IK_LOG_TEXT);
    CU_ASSERT_EQUAL(ik_log_format_parse("json"), IK_LOG_JSON);
    CU_ASSERT_EQUAL(ik_log_format_parse("xml"), -1);
    CU_ASSERT_EQUAL(ik_log_format_parse(NULL), -1);
    CU_ASSERT_STRING_EQUAL(ik_log_level_name(IK_LOG_ERROR), "error");
    CU_ASSERT_STRING_EQUAL(ik_log_level_name(IK_LOG_WARN), "warn");
    CU_ASSERT_STRING_EQUAL(ik_log_level_name(IK_LOG_TRACE), "trace");
    /* names round-trip through the parser */
    for (int l = IK_LOG_ERROR; l <= IK_LOG_TRACE; l++)
        CU_ASSERT_EQUAL(ik_log_level_parse(ik_log_level_name((ik_log_level)l)), l);
}

static void test_text_format(void)
{
    reset();
    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    ik_logf(IK_LOG_INFO, "p1", "i1", "hello %d", 42);
    ik_logf(IK_LOG_WARN, NULL, NULL, "engine-level");
    ik_logf(IK_LOG_ERROR, "p2", NULL, "pipeline only");
    char *out = stderr_capture_end();
    CU_ASSERT_FATAL(out != NULL);
    const char *ts = "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z";
    char re[512];
    snprintf(re, sizeof re,
             "^%s INFO  \\[p1/i1\\] hello 42\n%s WARN  engine-level\n%s ERROR \\[p2\\] pipeline "
             "only\n$",
             ts, ts, ts);
    CU_ASSERT_TRUE(matches(re, out));
    if (!matches(re, out))
        printf("\ngot: <%s>\n", out);
    free(out);
}

static void test_text_one_line_per_call(void)
{
    reset();
    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    ik_logf(IK_LOG_INFO, "p", "i", "line1\nline2\r\x01tab\tend");
    char *out = stderr_capture_end();
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_EQUAL(count_char(out, '\n'), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "line1\\nline2\\r\\x01tab\\tend\n"));
    free(out);
}

static void test_level_filtering(void)
{
    reset();
    ik_log_configure(IK_LOG_TEXT, IK_LOG_WARN);
    CU_ASSERT_EQUAL(ik_log_level_get(), IK_LOG_WARN);
    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    ik_logf(IK_LOG_TRACE, NULL, NULL, "m-trace");
    ik_logf(IK_LOG_DEBUG, NULL, NULL, "m-debug");
    ik_logf(IK_LOG_INFO, NULL, NULL, "m-info");
    ik_logf(IK_LOG_WARN, NULL, NULL, "m-warn");
    ik_logf(IK_LOG_ERROR, NULL, NULL, "m-error");
    char *out = stderr_capture_end();
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_PTR_NULL(strstr(out, "m-trace"));
    CU_ASSERT_PTR_NULL(strstr(out, "m-debug"));
    CU_ASSERT_PTR_NULL(strstr(out, "m-info"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "m-warn"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "m-error"));
    CU_ASSERT_EQUAL(count_char(out, '\n'), 2);
    free(out);

    ik_log_configure(IK_LOG_TEXT, IK_LOG_TRACE);
    CU_ASSERT_EQUAL(ik_log_level_get(), IK_LOG_TRACE);
    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    ik_logf(IK_LOG_TRACE, NULL, NULL, "m-trace");
    out = stderr_capture_end();
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "TRACE m-trace"));
    free(out);

    ik_log_configure(IK_LOG_TEXT, IK_LOG_ERROR);
    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    ik_logf(IK_LOG_WARN, NULL, NULL, "m-warn");
    out = stderr_capture_end();
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_STRING_EQUAL(out, "");
    free(out);
    reset();
}

static void test_redact_message(void)
{
    reset();
    CU_ASSERT_EQUAL(ik_log_add_secret("hunter22"), 0);
    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    ik_logf(IK_LOG_INFO, "p", "i", "password=%s again %s!", "hunter22", "hunter22");
    char *out = stderr_capture_end();
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_PTR_NULL(strstr(out, "hunter22"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "] password=[REDACTED] again [REDACTED]!\n"));
    free(out);

    char buf[128];
    ik_log_redact("token hunter22hunter22 end", buf, sizeof buf);
    /* adjacent occurrences merge into one marker; nothing of the secret stays */
    CU_ASSERT_STRING_EQUAL(buf, "token [REDACTED] end");
    ik_log_redact("nothing here", buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "nothing here");
    reset();
}

static void test_redact_names(void)
{
    reset();
    CU_ASSERT_EQUAL(ik_log_add_secret("s3cr3tpipe"), 0);
    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    ik_logf(IK_LOG_INFO, "pipe-s3cr3tpipe", "inst_s3cr3tpipe_x", "msg");
    char *out = stderr_capture_end();
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_PTR_NULL(strstr(out, "s3cr3tpipe"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "[pipe-[REDACTED]/inst_[REDACTED]_x] msg"));
    free(out);

    ik_log_configure(IK_LOG_JSON, IK_LOG_INFO);
    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    ik_logf(IK_LOG_INFO, "pipe-s3cr3tpipe", "inst_s3cr3tpipe_x", "msg");
    out = stderr_capture_end();
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_PTR_NULL(strstr(out, "s3cr3tpipe"));
    json_object *doc = json_tokener_parse(out);
    CU_ASSERT_FATAL(doc != NULL);
    json_object *v;
    CU_ASSERT_TRUE(json_object_object_get_ex(doc, "pipeline", &v));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "pipe-[REDACTED]");
    CU_ASSERT_TRUE(json_object_object_get_ex(doc, "instance", &v));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "inst_[REDACTED]_x");
    json_object_put(doc);
    free(out);
    reset();
}

static void test_redact_overlapping(void)
{
    reset();
    char buf[256];
    CU_ASSERT_EQUAL(ik_log_add_secret("abcdef"), 0);
    CU_ASSERT_EQUAL(ik_log_add_secret("defghi"), 0);
    /* overlapping: neither "abc" nor "ghi" may survive */
    ik_log_redact("xx abcdefghi yy", buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "xx [REDACTED] yy");
    /* self-overlapping occurrences of one secret */
    CU_ASSERT_EQUAL(ik_log_add_secret("aaaa"), 0);
    ik_log_redact("baaaaaab", buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "b[REDACTED]b");
    /* nested: a secret inside a longer one; the longer one must vanish whole */
    CU_ASSERT_EQUAL(ik_log_add_secret("inner"), 0);
    CU_ASSERT_EQUAL(ik_log_add_secret("the-inner-key"), 0);
    ik_log_redact("k=the-inner-key; also inner.", buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "k=[REDACTED]; also [REDACTED].");
    /* registering the same secret twice is harmless */
    CU_ASSERT_EQUAL(ik_log_add_secret("abcdef"), 0);
    ik_log_redact("abcdef", buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "[REDACTED]");
    reset();
}

static void test_redact_short_ignored(void)
{
    reset();
    char buf[64];
    CU_ASSERT_EQUAL(ik_log_add_secret("abc"), 0);
    CU_ASSERT_EQUAL(ik_log_add_secret(""), 0);
    CU_ASSERT_EQUAL(ik_log_add_secret(NULL), 0);
    ik_log_redact("abc abcd", buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "abc abcd");
    /* four bytes is long enough */
    CU_ASSERT_EQUAL(ik_log_add_secret("abcd"), 0);
    ik_log_redact("abc abcd", buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "abc [REDACTED]");
    reset();
}

static void test_redact_truncation(void)
{
    reset();
    CU_ASSERT_EQUAL(ik_log_add_secret("topsecret"), 0);
    char buf[8];
    ik_log_redact("topsecret and more", buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "[REDACT");
    ik_log_redact(NULL, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "");
    /* the secret is found before truncation, so no prefix of it leaks */
    char small[6];
    ik_log_redact("ab topsecret", small, sizeof small);
    CU_ASSERT_STRING_EQUAL(small, "ab [R");
    reset();
}

static void test_long_message_redacted(void)
{
    reset();
    CU_ASSERT_EQUAL(ik_log_add_secret("tail-secret-value"), 0);
    size_t n = 100000;
    char *big = malloc(n + 32);
    CU_ASSERT_FATAL(big != NULL);
    memset(big, 'x', n);
    strcpy(big + n, "tail-secret-value");
    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    ik_logf(IK_LOG_INFO, NULL, NULL, "%s", big);
    char *out = stderr_capture_end();
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_PTR_NULL(strstr(out, "tail-secret"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "xxx[REDACTED]\n"));
    CU_ASSERT_TRUE(strlen(out) > n);
    free(out);
    free(big);
    reset();
}

static const char *jstr(json_object *doc, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(doc, key, &v))
        return NULL;
    return json_object_get_string(v);
}

static void test_json_fields_and_escaping(void)
{
    reset();
    ik_log_configure(IK_LOG_JSON, IK_LOG_DEBUG);
    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    ik_logf(IK_LOG_DEBUG, "pi\"pe", "in\\st",
            "q\"b\\s\nn\x01\x1f ctl \x7f del \xff bad \xc3\xa9 ok "
            "\xed\xa0\x80 surrogate \xc0\xaf overlong \xe2\x82");
    char *out = stderr_capture_end();
    CU_ASSERT_FATAL(out != NULL);
    CU_ASSERT_EQUAL(count_char(out, '\n'), 1);
    CU_ASSERT_EQUAL(out[strlen(out) - 1], '\n');
    enum json_tokener_error jerr;
    json_object *doc = json_tokener_parse_verbose(out, &jerr);
    CU_ASSERT_FATAL(doc != NULL);
    CU_ASSERT_STRING_EQUAL(jstr(doc, "level"), "debug");
    CU_ASSERT_STRING_EQUAL(jstr(doc, "pipeline"), "pi\"pe");
    CU_ASSERT_STRING_EQUAL(jstr(doc, "instance"), "in\\st");
    CU_ASSERT_STRING_EQUAL(
        jstr(doc, "msg"), "q\"b\\s\nn\x01\x1f ctl \x7f del \xef\xbf\xbd bad \xc3\xa9 ok "
                          "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd surrogate \xef\xbf\xbd\xef\xbf\xbd "
                          "overlong \xef\xbf\xbd\xef\xbf\xbd");
    const char *ts = jstr(doc, "ts");
    CU_ASSERT_FATAL(ts != NULL);
    CU_ASSERT_TRUE(
        matches("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$", ts));
    json_object_put(doc);
    /* the raw line carries no raw control bytes and no invalid UTF-8 */
    for (const unsigned char *p = (const unsigned char *)out; *p && *p != '\n'; p++)
        CU_ASSERT_TRUE(*p >= 0x20 && *p != 0x7f && *p != 0xff && *p != 0xc0);
    free(out);

    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    ik_logf(IK_LOG_ERROR, NULL, NULL, "engine");
    out = stderr_capture_end();
    CU_ASSERT_FATAL(out != NULL);
    doc = json_tokener_parse(out);
    CU_ASSERT_FATAL(doc != NULL);
    CU_ASSERT_STRING_EQUAL(jstr(doc, "level"), "error");
    CU_ASSERT_STRING_EQUAL(jstr(doc, "msg"), "engine");
    CU_ASSERT_PTR_NULL(jstr(doc, "pipeline"));
    CU_ASSERT_PTR_NULL(jstr(doc, "instance"));
    json_object_put(doc);
    free(out);
    reset();
}

/* A secret containing JSON-special bytes is redacted before escaping. */
static void test_json_secret_with_specials(void)
{
    reset();
    ik_log_configure(IK_LOG_JSON, IK_LOG_INFO);
    CU_ASSERT_EQUAL(ik_log_add_secret("pa\"ss\\wd"), 0);
    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    ik_logf(IK_LOG_INFO, "p", "i", "auth %s done", "pa\"ss\\wd");
    char *out = stderr_capture_end();
    CU_ASSERT_FATAL(out != NULL);
    json_object *doc = json_tokener_parse(out);
    CU_ASSERT_FATAL(doc != NULL);
    CU_ASSERT_STRING_EQUAL(jstr(doc, "msg"), "auth [REDACTED] done");
    CU_ASSERT_PTR_NULL(strstr(out, "ss\\\\wd"));
    json_object_put(doc);
    free(out);
    reset();
}

/* ---- concurrency ---------------------------------------------------------- */

#define NTHREADS 4
#define NLINES   300
#define NSECRETS 64
static char secrets[NSECRETS][32];
static atomic_int published = 0; /* secrets[0..published) are registered */

static void *logger_thread(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < NLINES; i++) {
        int k = atomic_load(&published);
        /* log the newest registered secret: it must come out redacted */
        ik_logf(IK_LOG_INFO, "pipe", "inst", "t%ld n%d key=%s \"q\"", id, i,
                k > 0 ? secrets[k - 1] : "none");
    }
    return NULL;
}

static void *secret_thread(void *arg)
{
    for (int k = 0; k < NSECRETS; k++) {
        ik_log_add_secret(secrets[k]);
        atomic_store(&published, k + 1);
        usleep(100);
    }
    return NULL;
}

static void test_threads_lines_intact_and_redacted(void)
{
    reset();
    ik_log_configure(IK_LOG_JSON, IK_LOG_INFO);
    for (int k = 0; k < NSECRETS; k++)
        snprintf(secrets[k], sizeof secrets[k], "SECRET-%04d-zz", k);
    atomic_store(&published, 0);
    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    pthread_t th[NTHREADS + 1];
    CU_ASSERT_FATAL(pthread_create(&th[NTHREADS], NULL, secret_thread, NULL) == 0);
    for (long t = 0; t < NTHREADS; t++)
        CU_ASSERT_FATAL(pthread_create(&th[t], NULL, logger_thread, (void *)t) == 0);
    for (int t = 0; t <= NTHREADS; t++)
        pthread_join(th[t], NULL);
    char *out = stderr_capture_end();
    CU_ASSERT_FATAL(out != NULL);

    CU_ASSERT_EQUAL(count_char(out, '\n'), NTHREADS * NLINES);
    CU_ASSERT_PTR_NULL(strstr(out, "SECRET-"));
    int parsed = 0, per_thread[NTHREADS] = {0};
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_object *doc = json_tokener_parse(line);
        if (!doc)
            continue;
        parsed++;
        const char *msg = jstr(doc, "msg");
        long t = -1;
        if (msg && sscanf(msg, "t%ld", &t) == 1 && t >= 0 && t < NTHREADS)
            per_thread[t]++;
        json_object_put(doc);
    }
    CU_ASSERT_EQUAL(parsed, NTHREADS * NLINES);
    for (int t = 0; t < NTHREADS; t++)
        CU_ASSERT_EQUAL(per_thread[t], NLINES);
    free(out);
    reset();
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("log", NULL, NULL);
    if (!s) {
        CU_cleanup_registry();
        return 1;
    }
    CU_add_test(s, "parse and names", test_parse_and_names);
    CU_add_test(s, "text format", test_text_format);
    CU_add_test(s, "text: one line per call", test_text_one_line_per_call);
    CU_add_test(s, "level filtering", test_level_filtering);
    CU_add_test(s, "redact: message", test_redact_message);
    CU_add_test(s, "redact: pipeline and instance names", test_redact_names);
    CU_add_test(s, "redact: overlapping and nested secrets", test_redact_overlapping);
    CU_add_test(s, "redact: short values ignored", test_redact_short_ignored);
    CU_add_test(s, "redact: truncation", test_redact_truncation);
    CU_add_test(s, "redact: long message", test_long_message_redacted);
    CU_add_test(s, "json: fields and escaping", test_json_fields_and_escaping);
    CU_add_test(s, "json: secret with special bytes", test_json_secret_with_specials);
    CU_add_test(s, "threads: intact lines, secrets added while logging",
                test_threads_lines_intact_and_redacted);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failures = CU_get_number_of_failures();
    CU_cleanup_registry();
    ik_log_shutdown();
    return failures > 0 ? 1 : 0;
}
