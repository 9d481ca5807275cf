/*
 * test_outcomes.c: outcome propagation through the pipeline runtime, in
 * process: each processor/sink status leads to the right terminal outcome,
 * told to the source exactly once with the failing stage, attempts and
 * reason. Uses the test plugins (test_gen records every outcome it is told).
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "log.h"
#include "stderr_capture.h"

static char build[1024], tmpdir[256];

typedef struct outcome {
    char id[64], outcome[32], stage[64], reason[512];
    unsigned attempts;
    int stored;
} outcome;

/* Runs one pipeline in-process: its test_gen source takes `source_opts`
 * beside its own, then comes `body`; expects `want_rc` from the run and
 * returns the outcomes read back. */
static size_t run_pipeline_rc(const char *source_opts, const char *body, outcome *out, size_t max,
                              int want_rc)
{
    char conf[512], outcomes[512];
    snprintf(conf, sizeof conf, "%s/p.conf", tmpdir);
    snprintf(outcomes, sizeof outcomes, "%s/outcomes", tmpdir);
    remove(outcomes);
    FILE *f = fopen(conf, "w");
    fprintf(f,
            "plugin_path = [\"%s/plugins\", \"%s/tests/plugins\"];\n"
            "admin = { enabled = false; };\n"
            "pipelines = ( { name = \"t\";\n"
            "  retry = { max_attempts = 3; initial_backoff = \"1ms\"; max_backoff = \"2ms\"; };\n"
            "  batch = { max_items = 4; max_wait = \"5ms\"; };\n"
            "  source = { plugin = \"test_gen\"; outcomes_path = \"%s\"; %s };\n"
            "%s } );\n",
            build, build, outcomes, source_opts, body);
    fclose(f);
    ik_config *cfg = NULL;
    ik_engine *e = NULL;
    ik_err err = {0};
    if (ik_config_load(conf, &cfg, &err) != 0 || ik_engine_new(cfg, &e, &err) != 0) {
        fprintf(stderr, "setup failed: %s\n", err.msg);
        ik_config_free(cfg);
        CU_FAIL("pipeline did not load");
        return 0;
    }
    CU_ASSERT_EQUAL(ik_engine_run(e, "off"), want_rc);
    ik_engine_free(e);
    ik_config_free(cfg);

    size_t n = 0;
    f = fopen(outcomes, "r");
    char line[1024];
    while (f && n < max && fgets(line, sizeof line, f)) {
        outcome *o = &out[n];
        memset(o, 0, sizeof *o);
        int pos = 0;
        if (sscanf(line, "%63s %31s %63s %u %d %n", o->id, o->outcome, o->stage, &o->attempts,
                   &o->stored, &pos) >= 5) {
            snprintf(o->reason, sizeof o->reason, "%s", line + pos);
            n++;
        }
    }
    if (f)
        fclose(f);
    return n;
}

static size_t run_pipeline(const char *source_opts, const char *body, outcome *out, size_t max)
{
    return run_pipeline_rc(source_opts, body, out, max, IK_EXIT_OK);
}

/* 12 records (test_gen count = 12) through `body`, expecting `want_rc`. */
static size_t run_body_rc(const char *body, outcome *out, size_t max, int want_rc)
{
    return run_pipeline_rc("count = 12;", body, out, max, want_rc);
}

static size_t run_body(const char *body, outcome *out, size_t max)
{
    return run_body_rc(body, out, max, IK_EXIT_OK);
}

static const outcome *find(const outcome *o, size_t n, const char *id)
{
    const outcome *hit = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(o[i].id, id) == 0) {
            CU_ASSERT_PTR_NULL(hit); /* exactly once */
            hit = &o[i];
        }
    return hit;
}

static void test_processor_statuses(void)
{
    outcome o[64];
    size_t n = run_body("  processors = (\n"
                        "    { plugin = \"test_fault\"; name = \"p1\"; mode = \"transient\"; "
                        "match = \"rec-1\"; fail_times = 1; },\n"
                        "    { plugin = \"test_fault\"; name = \"p2\"; mode = \"permanent\"; "
                        "match = \"rec-2\"; },\n"
                        "    { plugin = \"test_fault\"; name = \"p3\"; mode = \"release\"; "
                        "match = \"rec-3\"; },\n"
                        "    { plugin = \"test_fault\"; name = \"p4\"; mode = \"transient\"; "
                        "match = \"rec-4\"; fail_times = 9; } );\n"
                        "  sinks = ( { plugin = \"stdout\"; path = \"/dev/null\"; } );\n",
                        o, 64);
    CU_ASSERT_EQUAL(n, 12);
    const outcome *r;
    CU_ASSERT_PTR_NOT_NULL_FATAL(r = find(o, n, "rec-1"));
    CU_ASSERT_STRING_EQUAL(r->outcome, "delivered"); /* retried once, then fine */
    CU_ASSERT_PTR_NOT_NULL_FATAL(r = find(o, n, "rec-11"));
    CU_ASSERT_STRING_EQUAL(r->outcome, "delivered");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r = find(o, n, "rec-2"));
    CU_ASSERT_STRING_EQUAL(r->outcome, "dead_lettered");
    CU_ASSERT_STRING_EQUAL(r->stage, "p2");
    CU_ASSERT_EQUAL(r->attempts, 1);
    CU_ASSERT_EQUAL(r->stored, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r = find(o, n, "rec-3"));
    CU_ASSERT_STRING_EQUAL(r->outcome, "released");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r = find(o, n, "rec-4"));
    CU_ASSERT_STRING_EQUAL(r->outcome, "dead_lettered");
    CU_ASSERT_STRING_EQUAL(r->stage, "p4");
    CU_ASSERT_EQUAL(r->attempts, 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(r->reason, "gave up after 3 attempts"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(r = find(o, n, "rec-5"));
    CU_ASSERT_STRING_EQUAL(r->outcome, "delivered");
}

static void test_dead_letter_sink_and_its_failure(void)
{
    outcome o[64];
    /* A working dead_letter sink stores the record: stored = 1. */
    size_t n = run_body("  processors = ( { plugin = \"test_fault\"; mode = \"permanent\"; "
                        "match = \"rec-7\"; } );\n"
                        "  sinks = ( { plugin = \"stdout\"; path = \"/dev/null\"; } );\n"
                        "  dead_letter = { plugin = \"stdout\"; path = \"/dev/null\"; };\n",
                        o, 64);
    CU_ASSERT_EQUAL(n, 12);
    const outcome *r = find(o, n, "rec-7");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_STRING_EQUAL(r->outcome, "dead_lettered");
    CU_ASSERT_EQUAL(r->stored, 1);
    /* A dead_letter sink that refuses hands the record to the source: stored = 0,
     * and the reason is still the original failure. */
    n = run_body("  processors = ( { plugin = \"test_fault\"; name = \"bad\"; mode = "
                 "\"permanent\"; match = \"rec-7\"; } );\n"
                 "  sinks = ( { plugin = \"stdout\"; path = \"/dev/null\"; } );\n"
                 "  dead_letter = { plugin = \"test_fault_sink\"; mode = \"permanent\"; };\n",
                 o, 64);
    CU_ASSERT_EQUAL(n, 12);
    r = find(o, n, "rec-7");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_STRING_EQUAL(r->outcome, "dead_lettered");
    CU_ASSERT_STRING_EQUAL(r->stage, "bad");
    CU_ASSERT_EQUAL(r->stored, 0);
}

static void test_sink_retry_then_delivered(void)
{
    outcome o[64];
    size_t n = run_body("  sinks = ( { plugin = \"test_fault_sink\"; mode = \"transient\"; "
                        "fail_times = 2; } );\n",
                        o, 64);
    CU_ASSERT_EQUAL(n, 12);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_STRING_EQUAL(o[i].outcome, "delivered");
}

/* A processor that fills all IK_REASON_MAX bytes of a reason (no NUL) and
 * returns status 7: the reason is read with a bound (ASan sees an over-read
 * otherwise: with max_items 1 the entry ends its allocation), the status is
 * logged naming plugin, record and value, and the record is dead-lettered. */
static void test_garbage_result(void)
{
    outcome o[16];
    CU_ASSERT_EQUAL(stderr_capture_begin(), 0);
    size_t n = run_body("  processors = ( { plugin = \"test_fault\"; name = \"junk\"; mode = "
                        "\"garbage\"; match = \"rec-3\"; batch = { max_items = 1; }; } );\n"
                        "  sinks = ( { plugin = \"test_fault_sink\"; } );\n",
                        o, 16);
    char *log = stderr_capture_end();
    CU_ASSERT_EQUAL(n, 12);
    const outcome *r = find(o, n, "rec-3");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_STRING_EQUAL(r->outcome, "dead_lettered");
    CU_ASSERT_STRING_EQUAL(r->stage, "junk");
    size_t len = strcspn(r->reason, "\n");
    CU_ASSERT_EQUAL(len, IK_REASON_MAX - 1); /* cut at the bound */
    CU_ASSERT_EQUAL(strspn(r->reason, "x"), IK_REASON_MAX - 1);
    CU_ASSERT_PTR_NOT_NULL(log && strstr(log, "plugin 'test_fault' returned status 7 for record "
                                              "rec-3, which is not an ik_status; treating it as "
                                              "IK_FAIL"));
    CU_ASSERT_STRING_EQUAL(find(o, n, "rec-4")->outcome, "delivered");
    free(log);
}

/* Counts lines equal to `line` in a file. */
static int count_lines(const char *path, const char *line)
{
    FILE *f = fopen(path, "r");
    char buf[128];
    int n = 0;
    while (f && fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\n")] = '\0';
        n += strcmp(buf, line) == 0;
    }
    if (f)
        fclose(f);
    return n;
}

/* worker_init and worker_exit run once per worker of a stage with
 * concurrency 3, and the worker's state reaches worker_exit (fault.c boxes
 * the index into it). */
static void test_worker_state(void)
{
    char wlog[512], body[1024];
    snprintf(wlog, sizeof wlog, "%s/workers", tmpdir);
    remove(wlog);
    snprintf(body, sizeof body,
             "  processors = ( { plugin = \"test_fault\"; concurrency = 3; worker_log = \"%s\"; "
             "} );\n  sinks = ( { plugin = \"test_fault_sink\"; } );\n",
             wlog);
    outcome o[16];
    CU_ASSERT_EQUAL(run_body(body, o, 16), 12);
    for (int w = 0; w < 3; w++) {
        char init[32], exit_[32];
        snprintf(init, sizeof init, "init %d", w);
        snprintf(exit_, sizeof exit_, "exit %d", w);
        CU_ASSERT_EQUAL(count_lines(wlog, init), 1);
        CU_ASSERT_EQUAL(count_lines(wlog, exit_), 1);
    }
    CU_ASSERT_EQUAL(count_lines(wlog, "init 3"), 0);
}

/* A worker_init that fails fails the start (exit 4, nothing run); the
 * workers whose init succeeded still get their worker_exit, the failed one
 * does not. */
static void test_worker_init_fails(void)
{
    char wlog[512], body[1024];
    snprintf(wlog, sizeof wlog, "%s/workers-fail", tmpdir);
    remove(wlog);
    snprintf(body, sizeof body,
             "  processors = ( { plugin = \"test_fault\"; concurrency = 3; worker_log = \"%s\"; "
             "fail_worker = 1; } );\n  sinks = ( { plugin = \"test_fault_sink\"; } );\n",
             wlog);
    outcome o[16];
    CU_ASSERT_EQUAL(stderr_capture_begin(), 0);
    run_body_rc(body, o, 16, IK_EXIT_START);
    char *log = stderr_capture_end();
    CU_ASSERT_PTR_NOT_NULL(log && strstr(log, "failed to start worker 1: worker_init"));
    CU_ASSERT_EQUAL(count_lines(wlog, "fail 1"), 1);
    CU_ASSERT_EQUAL(count_lines(wlog, "init 1"), 0);
    CU_ASSERT_EQUAL(count_lines(wlog, "exit 1"), 0);
    CU_ASSERT_EQUAL(count_lines(wlog, "init 0"), count_lines(wlog, "exit 0"));
    CU_ASSERT_EQUAL(count_lines(wlog, "init 2"), count_lines(wlog, "exit 2"));
    free(log);
}

/* Stages wake a worker once per batch, not per record: partial batches still
 * leave (at the end of input, or when the source waits for a slot), and a
 * burst larger than a batch reaches every worker of a concurrent stage. */
static void test_batches_and_their_wake_ups(void)
{
    static const char *const bodies[] = {
        /* 12 = 5 + 5 + 2: the last 2 leave at the end of input, not after 1h. */
        "  processors = ( { plugin = \"passthrough\"; concurrency = 3;\n"
        "                   batch = { max_items = 5; max_wait = \"1h\"; }; } );\n"
        "  sinks = ( { plugin = \"stdout\"; path = \"/dev/null\"; concurrency = 2;\n"
        "              batch = { max_items = 5; max_wait = \"1h\"; }; } );\n",
        /* Two slots: partial batches leave because the source waits for one. */
        "  inflight_limit = 2;\n"
        "  processors = ( { plugin = \"passthrough\"; batch = { max_items = 5; max_wait = "
        "\"1h\"; }; } );\n"
        "  sinks = ( { plugin = \"stdout\"; path = \"/dev/null\";\n"
        "              batch = { max_items = 5; max_wait = \"1h\"; }; } );\n",
        /* Cost-full batches (passthrough costs 1 without cost_field). */
        "  processors = ( { plugin = \"passthrough\"; concurrency = 2;\n"
        "                   batch = { max_items = 50; max_cost = 3; max_wait = \"1h\"; }; } "
        ");\n"
        "  sinks = ( { plugin = \"stdout\"; path = \"/dev/null\"; } );\n",
    };
    for (size_t b = 0; b < sizeof bodies / sizeof *bodies; b++) {
        outcome o[64];
        size_t n = run_pipeline("count = 12;", bodies[b], o, 64);
        CU_ASSERT_EQUAL(n, 12);
        for (int i = 1; i <= 12; i++) {
            char id[16];
            snprintf(id, sizeof id, "rec-%d", i);
            const outcome *r = find(o, n, id);
            CU_ASSERT_PTR_NOT_NULL_FATAL(r);
            CU_ASSERT_STRING_EQUAL(r->outcome, "delivered");
        }
    }
}

/* Reads a whole file into a NUL-terminated string (caller frees); NULL when
 * it cannot be read. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    size_t got;
    while (s && (got = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len < 2) {
            char *grown = realloc(s, cap *= 2);
            if (!grown) {
                free(s);
                s = NULL;
                break;
            }
            s = grown;
        }
    }
    fclose(f);
    if (s)
        s[len] = '\0';
    return s;
}

/* Every one of the 12 records delivered exactly once. */
static void assert_all_delivered(const outcome *o, size_t n)
{
    CU_ASSERT_EQUAL(n, 12);
    for (int i = 1; i <= 12; i++) {
        char id[16];
        snprintf(id, sizeof id, "rec-%d", i);
        const outcome *r = find(o, n, id);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_STRING_EQUAL(r->outcome, "delivered");
    }
}

/* A processor answering IK_DOWN (with probe(), failing twice): the records
 * go back to the head of the queue in order with no attempt counted, the
 * stage's workers make no call while it is down (concurrency 3), and once
 * the probe succeeds everything is delivered: nothing released or
 * dead-lettered, although the down calls outnumber max_attempts. */
static void test_down_processor_pauses_and_probes(void)
{
    char blog[512], body[1024];
    snprintf(blog, sizeof blog, "%s/down-batches", tmpdir);
    remove(blog);
    snprintf(body, sizeof body,
             "  processors = ( { plugin = \"test_fault\"; name = \"api\"; mode = \"down\"; "
             "down_times = 4; probe_fails = 2; concurrency = 3; log_batches = \"%s\"; } );\n"
             "  sinks = ( { plugin = \"test_fault_sink\"; } );\n",
             blog);
    outcome o[64];
    CU_ASSERT_EQUAL(stderr_capture_begin(), 0);
    ik_log_configure(IK_LOG_TEXT, IK_LOG_INFO);
    size_t n = run_body(body, o, 64);
    ik_log_configure(IK_LOG_TEXT, IK_LOG_ERROR);
    char *log = stderr_capture_end();
    assert_all_delivered(o, n);
    char *calls = slurp(blog);
    CU_ASSERT_PTR_NOT_NULL_FATAL(calls);
    CU_ASSERT_PTR_NULL(strstr(calls, "overlap ")); /* no call while paused */
    CU_ASSERT_PTR_NULL(strstr(calls, "attempt ")); /* IK_DOWN counted no attempt */
    CU_ASSERT_PTR_NOT_NULL(strstr(calls, "probe fail 1\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(calls, "probe fail 2\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(calls, "probe ok 3\n"));
    CU_ASSERT_PTR_NOT_NULL(log && strstr(log, "destination down: test_fault mode=down: call "));
    CU_ASSERT_PTR_NOT_NULL(log && strstr(log, "destination up again after "));
    free(calls);
    free(log);
}

/* Without probe() (test_fault_sink), the probe is the next call; records a
 * down call handed back are the first of the next batch, in their order. */
static void test_down_sink_probes_with_a_call(void)
{
    char blog[512], body[1024];
    snprintf(blog, sizeof blog, "%s/down-sink", tmpdir);
    remove(blog);
    snprintf(body, sizeof body,
             "  sinks = ( { plugin = \"test_fault_sink\"; mode = \"down\"; down_times = 3; "
             "log_batches = \"%s\"; } );\n",
             blog);
    outcome o[64];
    size_t n = run_body(body, o, 64);
    assert_all_delivered(o, n);
    char *calls = slurp(blog);
    CU_ASSERT_PTR_NOT_NULL_FATAL(calls);
    CU_ASSERT_PTR_NULL(strstr(calls, "attempt "));
    /* calls 1..3 answered down: each next call starts with the same ids */
    char *line[4] = {0};
    char *save = NULL, *tok = strtok_r(calls, "\n", &save);
    for (int i = 0; i < 4 && tok; i++, tok = strtok_r(NULL, "\n", &save))
        line[i] = strchr(tok, ' ') ? strchr(tok, ' ') + 1 : tok;
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(line[i + 1]);
        CU_ASSERT_EQUAL(strncmp(line[i + 1], line[i], strlen(line[i])), 0);
    }
    free(calls);
}

/* Settled records go back to the source thread to be freed (pipeline_settle.c):
 * while it waits between records, while it waits for a slot (emit and
 * try_emit), a few per emit while whole batches come back, and after it
 * finished. Each record is settled exactly once and
 * freed exactly once (ASan/LSan see a double free, a use after free or a
 * record never freed). */
static void test_settled_records_freed_by_the_source(void)
{
    static const struct {
        const char *source, *body, *want;
        int count;
    } runs[] = {
        {"count = 12; emit_delay = \"2ms\";",
         "  inflight_limit = 1;\n"
         "  sinks = ( { plugin = \"stdout\"; path = \"/dev/null\"; } );\n",
         "delivered", 12},
        {"count = 12; try_emit = true;",
         "  inflight_limit = 1;\n"
         "  processors = ( { plugin = \"passthrough\"; } );\n"
         "  sinks = ( { plugin = \"stdout\"; path = \"/dev/null\"; } );\n",
         "delivered", 12},
        {"count = 300;",
         "  inflight_limit = 100;\n"
         "  sinks = ( { plugin = \"stdout\"; path = \"/dev/null\";\n"
         "              batch = { max_items = 40; max_wait = \"1h\"; }; } );\n",
         "delivered", 300},
        {"count = 12;",
         "  inflight_limit = 3;\n"
         "  sinks = ( { plugin = \"test_fault_sink\"; mode = \"release\"; } );\n",
         "released", 12},
    };
    static outcome o[300];
    for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
        size_t n = run_pipeline(runs[r].source, runs[r].body, o, 300);
        CU_ASSERT_EQUAL(n, (size_t)runs[r].count);
        for (int i = 1; i <= runs[r].count; i++) {
            char id[16];
            snprintf(id, sizeof id, "rec-%d", i);
            const outcome *hit = find(o, n, id);
            CU_ASSERT_PTR_NOT_NULL_FATAL(hit);
            CU_ASSERT_STRING_EQUAL(hit->outcome, runs[r].want);
        }
    }
}

int main(void)
{
    const char *b = getenv("INTAKE_TEST_BUILD");
    if (!b) {
        fprintf(stderr, "INTAKE_TEST_BUILD is not set (run through ctest)\n");
        return 1;
    }
    snprintf(build, sizeof build, "%s", b);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ik_outcomes_XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    ik_log_configure(IK_LOG_TEXT, IK_LOG_ERROR);
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("outcomes", NULL, NULL);
    CU_add_test(s, "unterminated reason and status 7: bounded, IK_FAIL, logged",
                test_garbage_result);
    CU_add_test(s, "worker_init/worker_exit once per worker, on its thread", test_worker_state);
    CU_add_test(s, "a failing worker_init fails the start", test_worker_init_fails);
    CU_add_test(s, "processor statuses to outcomes", test_processor_statuses);
    CU_add_test(s, "dead_letter sink stores, or hands back", test_dead_letter_sink_and_its_failure);
    CU_add_test(s, "sink retry then delivered", test_sink_retry_then_delivered);
    CU_add_test(s, "batches leave whatever wakes their workers", test_batches_and_their_wake_ups);
    CU_add_test(s, "IK_DOWN pauses the stage, probe() resumes it, nothing released",
                test_down_processor_pauses_and_probes);
    CU_add_test(s, "IK_DOWN without probe(): the next call probes, order kept",
                test_down_sink_probes_with_a_call);
    CU_add_test(s, "settled records are freed once, by the source thread or after it",
                test_settled_records_freed_by_the_source);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failures = CU_get_number_of_failures();
    CU_cleanup_registry();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    ik_log_shutdown();
    return failures ? 1 : 0;
}
