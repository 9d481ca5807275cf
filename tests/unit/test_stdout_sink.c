/*
 * test_stdout_sink.c: unit tests of the `stdout` sink against the fake host:
 * both formats written to a temp file, metadata selection, output identical
 * to json-c's plain serializer, append mode, write errors as IK_RETRY, and
 * concurrent writers keeping lines whole.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "fake_host.h"
#include "stdout/json_out.h"

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
    return fh->plugin->write(fh->state, recs, n, res);
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
        jo_buf b = {0};
        jo_value(&b, o);
        const char *want = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
        if (b.len != strlen(want) || memcmp(b.data, want, b.len) != 0)
            fprintf(stderr, "input %zu: got %.*s want %s\n", i, (int)b.len, b.data, want);
        CU_ASSERT_EQUAL(b.len, strlen(want));
        CU_ASSERT_EQUAL(memcmp(b.data, want, b.len), 0);
        jo_free(&b);
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
    jo_buf b = {0};
    jo_value(&b, o);
    const char *want =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (b.len != strlen(want) || memcmp(b.data, want, b.len) != 0)
        fprintf(stderr, "built: got %.*s want %s\n", (int)b.len, b.data, want);
    CU_ASSERT_EQUAL(b.len, strlen(want));
    CU_ASSERT_EQUAL(memcmp(b.data, want, b.len), 0);
    jo_free(&b);
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
        a->fh->plugin->write(a->fh->state, recs, 50, res);
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

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("stdout_sink", NULL, NULL);
    CU_add_test(s, "record format with metadata", test_record_format);
    CU_add_test(s, "payload format, append", test_payload_format_appends);
    CU_add_test(s, "serializer matches json-c", test_serializer_matches_json_c);
    CU_add_test(s, "write error is IK_RETRY", test_write_error_is_retry);
    CU_add_test(s, "bad options", test_bad_options);
    CU_add_test(s, "concurrent writers keep lines whole", test_concurrent_writers);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
