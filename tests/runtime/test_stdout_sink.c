/*
 * test_stdout_sink.c: unit tests of the `stdout` sink against the fake host:
 * both formats written to a temp file, metadata selection, output identical
 * to json-c's plain serializer, append mode, write errors as IK_RETRY,
 * concurrent writers keeping lines whole, and a line torn by a crash (found
 * at open, left by another writer, or by a write of ours that failed half
 * way) ended before the next record is written.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "fake_host.h"
#include "json_write.h"

const ik_plugin *ik_plugin_entry(void);

static char *tmpfile_path(void)
{
    char tmpl[] = "/tmp/intake-stdout-test-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0)
        return NULL;
    close(fd);
    return strdup(tmpl);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = '\0';
    fclose(f);
    return buf;
}

static ik_record *make_record(const char *id, const char *json)
{
    return fh_record(id, json_tokener_parse(json));
}

static int write_recs(fake_host *fh, ik_record **recs, size_t n, ik_result *res)
{
    memset(res, 0, n * sizeof *res);
    return fh->plugin->write(fh->state, NULL, recs, n, res);
}

static void test_record_format(void)
{
    char *path = tmpfile_path();
    const char *opts[] = {"path", path, "meta_keys", "processed_by, custom", NULL};
    fake_host fh;
    fh_init(&fh, ik_plugin_entry(), opts);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    ik_record *r = make_record("e-1", "{\"subject\":\"a/b \\u00e9\\u0001\",\"n\":1}");
    fh.host.record_set_meta(r, "custom", "c\"q");
    fh.host.record_set_meta(r, "source", "file");
    fh.host.record_set_meta(r, "ignored", "x");
    fh.host.record_set_meta(r, "index", "3");
    ik_record *r2 = make_record("e-2", "{}");
    ik_record *recs[] = {r, r2};
    ik_result res[2];
    CU_ASSERT_EQUAL(write_recs(&fh, recs, 2, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_OK);
    CU_ASSERT_EQUAL(res[1].status, IK_OK);
    char *out = slurp(path);
    CU_ASSERT_STRING_EQUAL(out, "{\"id\":\"e-1\",\"meta\":{\"source\":\"file\",\"index\":\"3\","
                                "\"custom\":\"c\\\"q\"},\"payload\":{\"subject\":\"a/b "
                                "\xC3\xA9\\u0001\",\"n\":1}}\n"
                                "{\"id\":\"e-2\",\"meta\":{},\"payload\":{}}\n");
    CU_ASSERT_EQUAL(fh_metric_value(&fh, "lines_total"), 2);
    free(out);
    fh_record_free(r);
    fh_record_free(r2);
    fh_free(&fh);
    unlink(path);
    free(path);
}

static void test_payload_format_appends(void)
{
    char *path = tmpfile_path();
    FILE *f = fopen(path, "w");
    fputs("existing\n", f);
    fclose(f);
    const char *opts[] = {"path", path, "format", "payload", NULL};
    fake_host fh;
    fh_init(&fh, ik_plugin_entry(), opts);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    ik_record *r = make_record("x", "{\"a\":[1,2.5,true,null],\"b\":{\"c\":\"d\"}}");
    ik_record *recs[] = {r};
    ik_result res[1];
    write_recs(&fh, recs, 1, res);
    write_recs(&fh, recs, 1, res);
    char *out = slurp(path);
    CU_ASSERT_STRING_EQUAL(out, "existing\n{\"a\":[1,2.5,true,null],\"b\":{\"c\":\"d\"}}\n"
                                "{\"a\":[1,2.5,true,null],\"b\":{\"c\":\"d\"}}\n");
    free(out);
    fh_record_free(r);
    fh_free(&fh);
    unlink(path);
    free(path);
}

/* The read-only serializer prints exactly what json-c prints. */
static void test_serializer_matches_json_c(void)
{
    const char *inputs[] = {
        "{}",
        "[]",
        "{\"a\":\"\\b\\f\\n\\r\\t\\\"\\\\/\\u001f\\u007f\"}",
        ("{\"n\":-0,\"big\":18446744073709551615,\"max\":9223372036854775807,"
         "\"min\":-9223372036854775808}"),
        "{\"d\":1.50,\"e\":1e5,\"f\":-0.0,\"g\":3.141592653589793}",
        "[[[[{\"deep\":[1,[2,[3]]]}]]]]",
        "{\"utf8\":\"\xE2\x82\xAC \xF0\x9F\x98\x80\",\"empty\":\"\"}",
        "{\"k\\u0000z\":1}",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        json_object *o = json_tokener_parse(inputs[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(o);
        ik_buf b = {0};
        jo_value(&b, o);
        const char *want = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
        if (b.len != strlen(want) || memcmp(b.p, want, b.len) != 0)
            fprintf(stderr, "input %zu: got %.*s want %s\n", i, (int)b.len, b.p, want);
        CU_ASSERT_EQUAL(b.len, strlen(want));
        CU_ASSERT_EQUAL(memcmp(b.p, want, b.len), 0);
        ik_buf_free(&b);
        json_object_put(o);
    }
    /* Values built in code (no original text): doubles as json-c formats them. */
    json_object *o = json_object_new_object();
    json_object_object_add(o, "two", json_object_new_double(2.0));
    json_object_object_add(o, "tenth", json_object_new_double(0.1));
    json_object_object_add(o, "big", json_object_new_double(1e300));
    json_object_object_add(o, "i", json_object_new_int64(-42));
    json_object_object_add(o, "u", json_object_new_uint64(18446744073709551615ull));
    json_object_object_add(o, "null", NULL);
    ik_buf b = {0};
    jo_value(&b, o);
    const char *want =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (b.len != strlen(want) || memcmp(b.p, want, b.len) != 0)
        fprintf(stderr, "built: got %.*s want %s\n", (int)b.len, b.p, want);
    CU_ASSERT_EQUAL(b.len, strlen(want));
    CU_ASSERT_EQUAL(memcmp(b.p, want, b.len), 0);
    ik_buf_free(&b);
    json_object_put(o);
}

/* Strings escape as json-c escapes them wherever the special byte falls in
 * the 8-byte words the serializer scans, and next to the bytes around the
 * special ranges (0x1f/0x20, '!' '"' '#', '[' '\\' ']', 0x7f, 0x80). */
static void test_serializer_escapes_anywhere(void)
{
    static const unsigned char specials[] = {'"', '\\', '\n', 0x01, 0x1f, 0x20, '!',  '#',
                                             '[', ']',  0x7f, 0x80, 0xc3, 0xff, '\t', '\b'};
    for (size_t k = 0; k < sizeof specials; k++) {
        for (size_t pos = 0; pos < 19; pos++) {
            char text[20];
            memset(text, 'a', sizeof text);
            text[pos] = (char)specials[k];
            json_object *o = json_object_new_string_len(text, (int)sizeof text);
            ik_buf b = {0};
            jo_value(&b, o);
            const char *want = json_object_to_json_string_ext(
                o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
            CU_ASSERT_PTR_NOT_NULL_FATAL(b.p);
            if (strcmp(b.p, want) != 0)
                fprintf(stderr, "byte 0x%02x at %zu: got %s want %s\n", specials[k], pos, b.p,
                        want);
            CU_ASSERT_STRING_EQUAL(b.p, want);
            ik_buf_free(&b);
            json_object_put(o);
        }
    }
}

/* host->json_write appends to an ik_buf: a string after each call, and a
 * buffer marked out of memory is refused with its contents kept. */
static void test_json_write_into_ik_buf(void)
{
    json_object *o = json_tokener_parse("{\"a\":[1,\"x\\ny\"]}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    ik_buf b = {0};
    CU_ASSERT_EQUAL(ik_json_write(o, &b), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b.p);
    CU_ASSERT_STRING_EQUAL(b.p, "{\"a\":[1,\"x\\ny\"]}");
    CU_ASSERT_EQUAL(strlen(b.p), b.len);
    CU_ASSERT_EQUAL(ik_json_write_string("q\"", 2, &b), 0);
    CU_ASSERT_STRING_EQUAL(b.p, "{\"a\":[1,\"x\\ny\"]}\"q\\\"\"");
    CU_ASSERT_EQUAL(strlen(b.p), b.len);
    size_t len = b.len;
    b.oom = 1;
    CU_ASSERT_EQUAL(ik_json_write(o, &b), IK_E_NOMEM);
    CU_ASSERT_EQUAL(ik_json_write_string("z", 1, &b), IK_E_NOMEM);
    CU_ASSERT_EQUAL(b.len, len);
    CU_ASSERT_EQUAL(strlen(b.p), len);
    b.oom = 0;
    b.len = 0;
    CU_ASSERT_EQUAL(ik_json_write_string(NULL, 0, &b), 0);
    CU_ASSERT_STRING_EQUAL(b.p, "\"\"");
    ik_buf_free(&b);
    json_object_put(o);
}

static void test_write_error_is_retry(void)
{
    if (access("/dev/full", W_OK) != 0)
        return;
    const char *opts[] = {"path", "/dev/full", NULL};
    fake_host fh;
    fh_init(&fh, ik_plugin_entry(), opts);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    ik_record *r = make_record("x", "{}");
    ik_record *recs[] = {r, r};
    ik_result res[2];
    CU_ASSERT_EQUAL(write_recs(&fh, recs, 2, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_RETRY);
    CU_ASSERT_EQUAL(res[1].status, IK_RETRY);
    CU_ASSERT_STRING_EQUAL(res[0].reason, "cannot write to /dev/full: No space left on device");
    fh_record_free(r);
    fh_free(&fh);
}

static void test_bad_options(void)
{
    const char *opts[] = {"format", "xml", NULL};
    fake_host fh;
    fh_init(&fh, ik_plugin_entry(), opts);
    CU_ASSERT_EQUAL(fh_create(&fh), IK_E_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&fh), "option 'format'"));
    fh_free(&fh);
    const char *opts2[] = {"path", "/nonexistent/dir/out.jsonl", NULL};
    fh_init(&fh, ik_plugin_entry(), opts2);
    CU_ASSERT_EQUAL(fh_create(&fh), IK_E_IO);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(fh_log(&fh), "cannot open /nonexistent/dir/out.jsonl for append: No such file"));
    fh_free(&fh);
}

typedef struct writer_arg {
    fake_host *fh;
    int tag;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *a = p;
    ik_record *recs[50];
    ik_result res[50];
    char id[32];
    for (int k = 0; k < 20; k++) {
        for (int i = 0; i < 50; i++) {
            snprintf(id, sizeof id, "t%d-%d", a->tag, k * 50 + i);
            recs[i] = make_record(id, "{\"body\":\"some text that makes lines longer\"}");
        }
        memset(res, 0, sizeof res);
        a->fh->plugin->write(a->fh->state, NULL, recs, 50, res);
        for (int i = 0; i < 50; i++)
            fh_record_free(recs[i]);
    }
    return NULL;
}

static void test_concurrent_writers(void)
{
    char *path = tmpfile_path();
    const char *opts[] = {"path", path, NULL};
    fake_host fh;
    fh_init(&fh, ik_plugin_entry(), opts);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    pthread_t th[4];
    writer_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i].fh = &fh;
        args[i].tag = i;
        pthread_create(&th[i], NULL, writer, &args[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    char *out = slurp(path);
    size_t lines = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        json_object *o = json_tokener_parse(line);
        CU_ASSERT_PTR_NOT_NULL(o);
        json_object_put(o);
        lines++;
    }
    CU_ASSERT_EQUAL(lines, 4000);
    free(out);
    fh_free(&fh);
    unlink(path);
    free(path);
}

static void append_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "a");
    fputs(text, f);
    fclose(f);
}

/* Checks the file holds `want` lines, each a JSON object, except line
 * `torn` (1-based; 0: none), which must not parse. Returns the ids seen,
 * comma-separated, in *ids (caller frees). */
static void check_lines(const char *path, size_t want, size_t torn, char **ids)
{
    char *out = slurp(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    size_t n = 0, idlen = 0;
    *ids = calloc(1, strlen(out) + 1);
    for (char *p = out, *nl; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        CU_ASSERT_PTR_NOT_NULL_FATAL(nl); /* every line ends in a newline */
        *nl = '\0';
        n++;
        json_object *o = json_tokener_parse(p), *id;
        if (n == torn) {
            CU_ASSERT_PTR_NULL(o);
        } else {
            if (!o)
                fprintf(stderr, "line %zu does not parse: %s\n", n, p);
            CU_ASSERT_PTR_NOT_NULL(o);
            if (o && json_object_object_get_ex(o, "id", &id))
                idlen += (size_t)sprintf(*ids + idlen, "%s%s", idlen ? "," : "",
                                         json_object_get_string(id));
        }
        json_object_put(o);
    }
    if (n != want)
        fprintf(stderr, "%s: %zu lines, want %zu\n", path, n, want);
    CU_ASSERT_EQUAL(n, want);
    free(out);
}

/* kill -9 during a write left the file ending mid-record: the sink ends
 * that line when it opens the file, says where it was, and its records go
 * on lines of their own. */
static void test_torn_line_ended_at_open(void)
{
    char *path = tmpfile_path();
    const char *whole = "{\"id\":\"old-1\",\"meta\":{},\"payload\":{}}\n";
    append_text(path, whole);
    const char *torn = "{\"id\":\"old-2\",\"meta\":{},\"payl";
    append_text(path, torn);
    const char *opts[] = {"path", path, NULL};
    fake_host fh;
    fh_init(&fh, ik_plugin_entry(), opts);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    char want[128];
    snprintf(want, sizeof want, "the line at byte offset %zu (%zu bytes) was torn", strlen(whole),
             strlen(torn));
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&fh), want));
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&fh), path));
    ik_record *r = make_record("new-1", "{\"a\":1}");
    ik_record *recs[] = {r, r};
    ik_result res[2];
    CU_ASSERT_EQUAL(write_recs(&fh, recs, 2, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_OK);
    char *ids;
    check_lines(path, 4, 2, &ids);
    CU_ASSERT_STRING_EQUAL(ids, "old-1,new-1,new-1");
    free(ids);
    fh_record_free(r);
    fh_free(&fh);
    /* a file that ends in a newline is left alone, and nothing is said */
    fh_init(&fh, ik_plugin_entry(), opts);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    CU_ASSERT_PTR_NULL(strstr(fh_log(&fh), "torn"));
    fh_free(&fh);
    check_lines(path, 4, 2, &ids);
    free(ids);
    unlink(path);
    free(path);
}

/* Another writer of the same file crashed mid-line while this sink had it
 * open: the next batch starts on a new line. */
static void test_torn_by_another_writer(void)
{
    char *path = tmpfile_path();
    const char *opts[] = {"path", path, "format", "payload", NULL};
    fake_host fh;
    fh_init(&fh, ik_plugin_entry(), opts);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    ik_record *r = make_record("x", "{\"id\":\"mine\"}");
    ik_record *recs[] = {r};
    ik_result res[1];
    write_recs(&fh, recs, 1, res);
    append_text(path, "{\"id\":\"other\",\"bo");
    write_recs(&fh, recs, 1, res);
    CU_ASSERT_EQUAL(res[0].status, IK_OK);
    char *ids;
    check_lines(path, 3, 2, &ids);
    CU_ASSERT_STRING_EQUAL(ids, "mine,mine");
    free(ids);
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&fh), "byte offset 14 (17 bytes)"));
    fh_record_free(r);
    fh_free(&fh);
    unlink(path);
    free(path);
}

/* A write that fails half way (here the file size limit cuts a line, like
 * a full disk would) leaves a partial line: the records are IK_RETRY, and
 * the retry starts on a new line instead of completing the partial one. */
static void test_partial_write_then_retry(void)
{
    char *path = tmpfile_path();
    const char *opts[] = {"path", path, "format", "payload", NULL};
    fake_host fh;
    fh_init(&fh, ik_plugin_entry(), opts);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    ik_record *r = make_record("x", "{\"id\":\"rec\",\"body\":\"0123456789012345678901234567\"}");
    ik_record *recs[] = {r, r};
    ik_result res[2];
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 70; /* the first line is 51 bytes: the second is cut */
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_FSIZE, &lim), 0);
    write_recs(&fh, recs, 2, res);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CU_ASSERT_EQUAL(res[0].status, IK_RETRY);
    CU_ASSERT_PTR_NOT_NULL(strstr(res[0].reason, "File too large"));
    write_recs(&fh, recs, 2, res);
    CU_ASSERT_EQUAL(res[0].status, IK_OK);
    char *ids;
    check_lines(path, 4, 2, &ids);
    CU_ASSERT_STRING_EQUAL(ids, "rec,rec,rec");
    free(ids);
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&fh), "byte offset 51 (19 bytes)"));
    fh_record_free(r);
    fh_free(&fh);
    unlink(path);
    free(path);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("stdout_sink", NULL, NULL);
    CU_add_test(s, "record format with metadata", test_record_format);
    CU_add_test(s, "payload format, append", test_payload_format_appends);
    CU_add_test(s, "serializer matches json-c", test_serializer_matches_json_c);
    CU_add_test(s, "serializer escapes wherever the byte falls", test_serializer_escapes_anywhere);
    CU_add_test(s, "json_write appends to an ik_buf", test_json_write_into_ik_buf);
    CU_add_test(s, "write error is IK_RETRY", test_write_error_is_retry);
    CU_add_test(s, "bad options", test_bad_options);
    CU_add_test(s, "concurrent writers keep lines whole", test_concurrent_writers);
    CU_add_test(s, "a torn last line is ended at open", test_torn_line_ended_at_open);
    CU_add_test(s, "a line torn by another writer is ended", test_torn_by_another_writer);
    CU_add_test(s, "a partial write is not completed by the retry", test_partial_write_then_retry);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
