/*
 * test_crash_journal.c: CUnit tests of the poison-record journal's
 * bookkeeping (engine/crash_journal.c): calls noted by a process killed with
 * SIGKILL count one crash each on the next open, finished calls and clean
 * stops count nothing, counts add up across runs and survive restarts, a
 * delivered record's counts are deleted, counts expire after 7 days, a
 * damaged file is reported and ignored, and a second engine running the same
 * pipeline on the same folder gets a file of its own.
 */
#include <CUnit/Basic.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crash_journal.h"
#include "state.h"
#include "stderr_capture.h"

static char dir[64];
static uint64_t fake_now = 1700000000000ull;

static uint64_t test_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

static ik_state *store_open(void)
{
    ik_state_opts o = {.dir = dir, .clock = test_clock, .create_now = 1};
    ik_state *st = NULL;
    ik_err err = {0};
    return ik_state_open(&o, &st, &err) == 0 ? st : NULL;
}

/* Opens the store and the journal of pipeline "mail" with 2 slots. */
static ik_cjournal *journal_open(ik_state **st)
{
    *st = store_open();
    if (!*st)
        return NULL;
    ik_cjournal *j = NULL;
    ik_err err = {0};
    if (ik_cjournal_open(*st, dir, "mail", 2, &j, &err) != 0)
        fprintf(stderr, "journal_open: %s\n", err.msg);
    return j;
}

static void journal_close(ik_state *st, ik_cjournal *j)
{
    ik_cjournal_close(j);
    ik_state_close(st);
}

static ik_record *rec(const char *id)
{
    return ik_record_new(id, NULL);
}

/* A child process notes m-1..m-3 in slot 0 (a call that never returns)
 * and m-9 in slot 1 (a call that returned), then dies of SIGKILL. */
static void run_killed_child(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        ik_state *st;
        ik_cjournal *j = journal_open(&st);
        if (!j)
            _exit(3);
        ik_record *in_call[3] = {rec("m-1"), rec("m-2"), rec("m-3")};
        ik_record *done[1] = {rec("m-9")};
        ik_cjournal_note(j, 1, "crasher", "test_fault", done, 1);
        ik_cjournal_done(j, 1);
        ik_cjournal_note(j, 0, "crasher", "test_fault", in_call, 3);
        raise(SIGKILL);
        _exit(4);
    }
    int status = 0;
    CU_ASSERT_EQUAL_FATAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void fresh_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/ik-cj-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
}

static void rm_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

static unsigned crashes(ik_cjournal *j, const char *stage, const char *id)
{
    ik_record *r = rec(id);
    unsigned c = ik_cjournal_crashes(j, stage, r);
    ik_record_free(r);
    return c;
}

static void test_killed_call_counts_once(void)
{
    fresh_dir();
    run_killed_child();
    ik_state *st;
    stderr_capture_begin();
    ik_cjournal *j = journal_open(&st);
    char *log = stderr_capture_end();
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "record m-2 was inside a call of plugin 'test_fault'"));
    free(log);
    CU_ASSERT_EQUAL(ik_cjournal_size(j), 3);
    CU_ASSERT_EQUAL(crashes(j, "crasher", "m-1"), 1);
    CU_ASSERT_EQUAL(crashes(j, "crasher", "m-3"), 1);
    CU_ASSERT_EQUAL(crashes(j, "crasher", "m-9"), 0); /* its call returned */
    CU_ASSERT_EQUAL(crashes(j, "other", "m-1"), 0);   /* counts are per stage */
    CU_ASSERT_EQUAL(crashes(j, "crasher", "m-10"), 0);
    journal_close(st, j);

    /* A clean stop counted nothing more; the counts are in the store. */
    j = journal_open(&st);
    CU_ASSERT_EQUAL(crashes(j, "crasher", "m-1"), 1);
    ik_buf v = {0};
    CU_ASSERT_EQUAL(ik_state_get(st, NULL, "intake/crash-journal/mail", "crasher/-/m-1", &v, NULL),
                    0);
    CU_ASSERT_STRING_EQUAL(v.p, "1");
    free(v.p);
    journal_close(st, j);

    /* A second death in a call: 2. */
    run_killed_child();
    stderr_capture_begin();
    j = journal_open(&st);
    free(stderr_capture_end());
    CU_ASSERT_EQUAL(crashes(j, "crasher", "m-1"), 2);
    journal_close(st, j);
    rm_dir();
}

static void test_forget_deletes(void)
{
    fresh_dir();
    run_killed_child();
    ik_state *st;
    stderr_capture_begin();
    ik_cjournal *j = journal_open(&st);
    free(stderr_capture_end());
    ik_record *r = rec("m-2");
    ik_cjournal_forget(j, r);
    CU_ASSERT_EQUAL(ik_cjournal_crashes(j, "crasher", r), 0);
    CU_ASSERT_EQUAL(ik_cjournal_size(j), 2);
    journal_close(st, j);
    j = journal_open(&st);
    CU_ASSERT_EQUAL(ik_cjournal_crashes(j, "crasher", r), 0);
    CU_ASSERT_EQUAL(crashes(j, "crasher", "m-1"), 1);
    ik_record_free(r);
    journal_close(st, j);
    rm_dir();
}

static void test_counts_expire(void)
{
    fresh_dir();
    run_killed_child();
    ik_state *st;
    stderr_capture_begin();
    ik_cjournal *j = journal_open(&st);
    free(stderr_capture_end());
    CU_ASSERT_EQUAL(crashes(j, "crasher", "m-1"), 1);
    journal_close(st, j);
    fake_now += IK_CJ_TTL_MS + 1000;
    j = journal_open(&st);
    CU_ASSERT_EQUAL(crashes(j, "crasher", "m-1"), 0);
    CU_ASSERT_EQUAL(ik_cjournal_size(j), 0);
    journal_close(st, j);
    rm_dir();
}

/* Writes `len` bytes of `data` over the journal file from byte `off`. */
static void scribble(long off, const void *data, size_t len)
{
    char path[128];
    snprintf(path, sizeof path, "%s/crash-journal-mail.slots", dir);
    int fd = open(path, O_WRONLY);
    CU_ASSERT_TRUE_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(pwrite(fd, data, len, off), (ssize_t)len);
    close(fd);
}

static void test_damaged_file_ignored(void)
{
    fresh_dir();
    run_killed_child();
    uint32_t huge = 1u << 30;
    scribble(16, &huge, sizeof huge); /* slot 0's length */
    ik_state *st;
    stderr_capture_begin();
    ik_cjournal *j = journal_open(&st);
    char *log = stderr_capture_end();
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "slot 0 at byte 16 is damaged (its length runs past"));
    free(log);
    CU_ASSERT_EQUAL(ik_cjournal_size(j), 0);
    journal_close(st, j);

    scribble(0, "JUNK", 4);
    stderr_capture_begin();
    j = journal_open(&st);
    log = stderr_capture_end();
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "does not start with the journal's magic (byte 0)"));
    free(log);
    journal_close(st, j);
    rm_dir();
}

/* A second engine on the same folder takes file .1; the first keeps its own. */
static void test_second_engine_own_file(void)
{
    fresh_dir();
    ik_state *st;
    ik_cjournal *j = journal_open(&st);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    pid_t pid = fork();
    if (pid == 0) {
        ik_state *st2 = store_open();
        ik_cjournal *j2 = NULL;
        ik_err err = {0};
        int rc = ik_cjournal_open(st2, dir, "mail", 2, &j2, &err);
        char path[128];
        snprintf(path, sizeof path, "%s/crash-journal-mail.1.slots", dir);
        _exit(rc == 0 && access(path, F_OK) == 0 ? 0 : 1);
    }
    int status = 0;
    CU_ASSERT_EQUAL_FATAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    journal_close(st, j);
    rm_dir();
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("crash_journal", NULL, NULL);
    if (!s) {
        CU_cleanup_registry();
        return 1;
    }
    CU_add_test(s, "a call killed with SIGKILL counts once", test_killed_call_counts_once);
    CU_add_test(s, "forget deletes the counts", test_forget_deletes);
    CU_add_test(s, "counts expire after 7 days", test_counts_expire);
    CU_add_test(s, "a damaged file is reported and ignored", test_damaged_file_ignored);
    CU_add_test(s, "a second engine has its own file", test_second_engine_own_file);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    unsigned errs = CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return fails || errs ? 1 : 0;
}
