/*
 * test_crash.c: the text of the crash line's note (engine/crash.c): the call
 * named, record ids bounded (the first IK_CRASH_IDS, then "+K more"), ids
 * kept on one line and cut when long, the whole text within its buffer; and
 * the running-call listing shutdown uses for a stuck call, nested calls
 * included.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crash.h"
#include "pipeline_internal.h"
#include "record.h"

static char *note_text(const ik_crash_note *n)
{
    static char buf[IK_CRASH_TEXT + 1];
    memcpy(buf, n->text, n->len);
    buf[n->len] = '\0';
    return buf;
}

static ik_record **make_records(size_t n, const char *fmt)
{
    ik_record **recs = calloc(n, sizeof *recs);
    for (size_t i = 0; i < n; i++) {
        char id[256];
        snprintf(id, sizeof id, fmt, (int)i + 1);
        recs[i] = ik_record_new(id, NULL);
    }
    return recs;
}

static void free_records(ik_record **recs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ik_record_free(recs[i]);
    free(recs);
}

static void test_names_the_call(void)
{
    ik_crash_note n;
    ik_crash_note_format(&n, "mail", "gpt", "gpt_batch", "probe", NULL, 0);
    CU_ASSERT_STRING_EQUAL(note_text(&n), "plugin 'gpt_batch', pipeline 'mail', stage 'gpt', "
                                          "probe()");
    ik_record **recs = make_records(3, "m-%d");
    ik_crash_note_format(&n, "mail", "gpt", "gpt_batch", "process", recs, 3);
    CU_ASSERT_STRING_EQUAL(note_text(&n), "plugin 'gpt_batch', pipeline 'mail', stage 'gpt', "
                                          "process() with 3 record(s): m-1, m-2, m-3");
    free_records(recs, 3);
}

static void test_ids_are_bounded(void)
{
    ik_crash_note n;
    ik_record **recs = make_records(500, "m-%d");
    ik_crash_note_format(&n, "p", "s", "x", "write", recs, 500);
    const char *t = note_text(&n);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "write() with 500 record(s): m-1, m-2, "));
    char tail[64];
    snprintf(tail, sizeof tail, ", m-%d +%d more", IK_CRASH_IDS, 500 - IK_CRASH_IDS);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, tail));
    CU_ASSERT_EQUAL(strlen(t) - strlen(tail), (size_t)(strstr(t, tail) - t));
    free_records(recs, 500);
}

static void test_long_and_odd_ids(void)
{
    ik_crash_note n;
    /* Control characters would break the one line; long ids are cut. */
    char long_id[300];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    ik_record *recs[2] = {ik_record_new("bad\nid\x7f", NULL), ik_record_new(long_id, NULL)};
    ik_crash_note_format(&n, "p", "s", "x", "settle", recs, 2);
    const char *t = note_text(&n);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "record(s): bad?id?, aaaa"));
    CU_ASSERT_PTR_NULL(strchr(t, '\n'));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "a..."));
    CU_ASSERT(strlen(t) < 300);
    ik_record_free(recs[0]);
    ik_record_free(recs[1]);

    /* Ids of 200 bytes each: fewer than IK_CRASH_IDS fit, the rest are counted,
     * and the text stays inside its buffer. */
    ik_record **many = make_records(40, "%0199d");
    ik_crash_note_format(&n, "p", "s", "x", "process", many, 40);
    CU_ASSERT(n.len <= IK_CRASH_TEXT);
    t = note_text(&n);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, " more"));
    free_records(many, 40);
}

static void collect(void *arg, const char *text, uint64_t running_ms)
{
    (void)running_ms;
    char *out = arg;
    strncat(out, text, 2000 - strlen(out) - 2);
    strcat(out, "|");
}

/* The running-call listing shutdown uses: the thread's innermost call, the
 * outer one again once the inner has left, nothing after both left. */
static void test_running_calls(void)
{
    ik_pipeline_spec pspec = {.name = "mail"};
    static struct ik_pipeline p; /* large: only spec is read */
    p.spec = &pspec;
    ik_stage_spec sspec = {.name = "inbox", .plugin = "file"};
    ik_instance inst = {.pipeline = &p, .spec = &sspec};
    ik_record *rec = ik_record_new("r-9", NULL);
    ik_crash_note outer, inner;
    char out[2000] = "";

    ik_crash_enter(&outer, &inst, "run", NULL, 0);
    ik_crash_enter(&inner, &inst, "settle", &rec, 1);
    CU_ASSERT_EQUAL(ik_crash_each_running(collect, out), 1);
    CU_ASSERT_STRING_EQUAL(out, "plugin 'file', pipeline 'mail', stage 'inbox', settle() with 1 "
                                "record(s): r-9|");
    ik_crash_leave(&inner);
    out[0] = '\0';
    CU_ASSERT_EQUAL(ik_crash_each_running(collect, out), 1);
    CU_ASSERT_STRING_EQUAL(out, "plugin 'file', pipeline 'mail', stage 'inbox', run()|");
    ik_crash_leave(&outer);
    out[0] = '\0';
    CU_ASSERT_EQUAL(ik_crash_each_running(collect, out), 0);
    CU_ASSERT_STRING_EQUAL(out, "");
    ik_record_free(rec);
}

int main(void)
{
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("crash", NULL, NULL);
    CU_add_test(s, "names the call", test_names_the_call);
    CU_add_test(s, "ids are bounded", test_ids_are_bounded);
    CU_add_test(s, "long and odd ids", test_long_and_odd_ids);
    CU_add_test(s, "running calls", test_running_calls);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
