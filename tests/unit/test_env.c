/* test_env.c: CUnit tests of env files and ${VAR} expansion (engine/env.c). */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file.h"
#include "env.h"

static char tmpdir[] = "/tmp/ik_test_env_XXXXXX";

/* Writes `text` to tmpdir/name; returns a static path. */
static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return NULL;
    fputs(text, f);
    fclose(f);
    return path;
}

/* Expands `in`; returns the malloc'd result (caller frees) or NULL with *rc. */
static char *expand(const char *in, int *rc, ik_err *err)
{
    char *out = NULL;
    ik_err_clear(err);
    *rc = ik_env_expand(in, &out, err);
    return out;
}

static void check_expand(const char *in, const char *want)
{
    ik_err err;
    int rc;
    char *out = expand(in, &rc, &err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(out);
    if (out) {
        CU_ASSERT_STRING_EQUAL(out, want);
        if (strcmp(out, want) != 0)
            fprintf(stderr, "expand(%s) = '%s', want '%s'\n", in, out, want);
    } else {
        fprintf(stderr, "expand(%s) failed: %s\n", in, err.msg);
    }
    free(out);
}

static void check_expand_fails(const char *in, int code, const char *needle)
{
    ik_err err;
    int rc;
    char *out = expand(in, &rc, &err);
    CU_ASSERT_EQUAL(rc, code);
    CU_ASSERT_EQUAL(err.code, code);
    CU_ASSERT_PTR_NULL(out);
    free(out);
    if (needle) {
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, needle));
        if (!strstr(err.msg, needle))
            fprintf(stderr, "expand(%s): '%s' lacks '%s'\n", in, err.msg, needle);
    }
}

static void test_expand_plain(void)
{
    setenv("IKT_A", "alpha", 1);
    setenv("IKT_EMPTY", "", 1);
    unsetenv("IKT_UNSET");
    unsetenv("IKT_UNSET2");
    check_expand("", "");
    check_expand("no variables", "no variables");
    check_expand("${IKT_A}", "alpha");
    check_expand("x-${IKT_A}-y${IKT_A}", "x-alpha-yalpha");
    check_expand("${IKT_EMPTY}", ""); /* set but empty is fine without a default */
    check_expand("}{", "}{");
}

static void test_expand_defaults(void)
{
    setenv("IKT_A", "alpha", 1);
    setenv("IKT_EMPTY", "", 1);
    unsetenv("IKT_UNSET");
    unsetenv("IKT_UNSET2");
    check_expand("${IKT_UNSET:-dflt}", "dflt");
    check_expand("${IKT_UNSET:-}", "");
    check_expand("${IKT_A:-dflt}", "alpha");
    check_expand("${IKT_EMPTY:-dflt}", "dflt"); /* :- also covers empty */
    check_expand("${IKT_UNSET:-a b:c-d}", "a b:c-d");
    /* nested defaults */
    check_expand("${IKT_UNSET:-${IKT_A}}", "alpha");
    check_expand("${IKT_UNSET:-${IKT_UNSET2:-deep}}", "deep");
    check_expand("${IKT_UNSET:-x${IKT_UNSET2:-y}z}!", "xyz!");
    /* an unused default may name unset variables */
    check_expand("${IKT_A:-${IKT_UNSET}}", "alpha");
    check_expand("${IKT_A:-${IKT_UNSET:-${IKT_UNSET2}}}tail", "alphatail");
}

static void test_expand_dollars(void)
{
    setenv("IKT_A", "alpha", 1);
    check_expand("$$", "$");
    check_expand("cost $$5", "cost $5");
    check_expand("$${IKT_A}", "${IKT_A}");
    check_expand("$$$${IKT_A}", "$${IKT_A}");
    check_expand("$$${IKT_A}", "$alpha");
    check_expand("price $5", "price $5");
    check_expand("^end$", "^end$");
    check_expand("$", "$");
    check_expand("$IKT_A", "$IKT_A");
    check_expand("${IKT_UNSET:-$$}", "$");
}

static void test_expand_unset(void)
{
    unsetenv("OPENAI_API_KEY");
    check_expand_fails("key=${OPENAI_API_KEY}", IK_E_CONFIG,
                       "variable OPENAI_API_KEY is not set (write ${OPENAI_API_KEY:-} to allow "
                       "it empty)");
    check_expand_fails("${IKT_UNSET:-${IKT_UNSET2}}", IK_E_CONFIG,
                       "variable IKT_UNSET2 is not set");
}

static void test_expand_malformed(void)
{
    check_expand_fails("${IKT_A", IK_E_PARSE, "unterminated");
    check_expand_fails("abc${", IK_E_PARSE, "unterminated");
    check_expand_fails("${IKT_UNSET:-abc", IK_E_PARSE, "unterminated");
    check_expand_fails("${IKT_UNSET:-${X:-y}", IK_E_PARSE, "unterminated");
    check_expand_fails("${}", IK_E_PARSE, "invalid variable");
    check_expand_fails("${1ABC}", IK_E_PARSE, "invalid variable");
    check_expand_fails("${IKT_A-x}", IK_E_PARSE, "${IKT_A:-default}");
    check_expand_fails("${IKT A}", IK_E_PARSE, NULL);
    /* malformed text inside an unused default is still an error */
    setenv("IKT_A", "alpha", 1);
    check_expand_fails("${IKT_A:-${}}", IK_E_PARSE, NULL);
}

static void test_expand_deep_nesting(void)
{
    /* 40 levels of ${X:- ... }: refused, not a stack overflow */
    char buf[4096] = "";
    for (int i = 0; i < 40; i++)
        strcat(buf, "${IKT_UNSET:-");
    strcat(buf, "v");
    for (int i = 0; i < 40; i++)
        strcat(buf, "}");
    check_expand_fails(buf, IK_E_PARSE, "nested");
    /* 10 levels are fine */
    char ok[1024] = "";
    for (int i = 0; i < 10; i++)
        strcat(ok, "${IKT_UNSET:-");
    strcat(ok, "v");
    for (int i = 0; i < 10; i++)
        strcat(ok, "}");
    check_expand(ok, "v");
}

static void test_expand_null(void)
{
    char *out = NULL;
    ik_err err;
    CU_ASSERT_EQUAL(ik_env_expand(NULL, &out, &err), IK_E_INVAL);
    CU_ASSERT_EQUAL(ik_env_expand("x", NULL, &err), IK_E_INVAL);
    /* a NULL err is allowed */
    CU_ASSERT_EQUAL(ik_env_expand("${", &out, NULL), IK_E_PARSE);
}

static void test_load_file_syntax(void)
{
    const char *text = "# a comment\n"
                       "\n"
                       "   \t\n"
                       "IKT_F_PLAIN=hello world\n"
                       "export IKT_F_EXPORT=exported\n"
                       "IKT_F_SQ='lit $HOME \\n # not a comment'\n"
                       "IKT_F_DQ=\"a\\tb\\nc \\\\ \\\" end\"\n"
                       "IKT_F_COMMENT=value # trailing comment\n"
                       "IKT_F_HASH=a#b\n"
                       "IKT_F_TRIM=  spaced   \n"
                       "  IKT_F_SPACES = around\n"
                       "IKT_F_EMPTY=\n"
                       "IKT_F_CRLF=crlf\r\n"
                       "IKT_F_QCOMMENT=\"q\" # after quotes\n"
                       "IKT_F_EQ=a=b=c\n"
                       "IKT_F_UNKNOWN_ESC=\"x\\qy\"\n"
                       "IKT_F_NOEOL=last";
    const char *path = write_file("syntax.env", text);
    ik_err err;
    ik_err_clear(&err);
    int rc = ik_env_load_file(path, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0)
        fprintf(stderr, "load: %s\n", err.msg);
    struct {
        const char *k, *v;
    } want[] = {
        {"IKT_F_PLAIN", "hello world"},
        {"IKT_F_EXPORT", "exported"},
        {"IKT_F_SQ", "lit $HOME \\n # not a comment"},
        {"IKT_F_DQ", "a\tb\nc \\ \" end"},
        {"IKT_F_COMMENT", "value"},
        {"IKT_F_HASH", "a#b"},
        {"IKT_F_TRIM", "spaced"},
        {"IKT_F_SPACES", "around"},
        {"IKT_F_EMPTY", ""},
        {"IKT_F_CRLF", "crlf"},
        {"IKT_F_QCOMMENT", "q"},
        {"IKT_F_EQ", "a=b=c"},
        {"IKT_F_UNKNOWN_ESC", "x\\qy"},
        {"IKT_F_NOEOL", "last"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *got = getenv(want[i].k);
        CU_ASSERT_PTR_NOT_NULL(got);
        if (got) {
            CU_ASSERT_STRING_EQUAL(got, want[i].v);
            if (strcmp(got, want[i].v) != 0)
                fprintf(stderr, "%s='%s', want '%s'\n", want[i].k, got, want[i].v);
        } else {
            fprintf(stderr, "%s unset\n", want[i].k);
        }
    }
}

static void test_load_file_real_env_wins(void)
{
    setenv("IKT_R_REAL", "from-environment", 1);
    unsetenv("IKT_R_NEW");
    unsetenv("IKT_R_TWICE");
    const char *path = write_file("wins.env", "IKT_R_REAL=from-file\n"
                                              "IKT_R_NEW=new\n"
                                              "IKT_R_TWICE=first\n"
                                              "IKT_R_TWICE=second\n");
    ik_err err;
    CU_ASSERT_EQUAL(ik_env_load_file(path, &err), 0);
    CU_ASSERT_STRING_EQUAL(getenv("IKT_R_REAL"), "from-environment");
    CU_ASSERT_STRING_EQUAL(getenv("IKT_R_NEW"), "new");
    /* within one file the later line wins */
    CU_ASSERT_STRING_EQUAL(getenv("IKT_R_TWICE"), "second");
    /* loading again does not override what the first load set */
    path = write_file("wins2.env", "IKT_R_NEW=changed\n");
    CU_ASSERT_EQUAL(ik_env_load_file(path, &err), 0);
    CU_ASSERT_STRING_EQUAL(getenv("IKT_R_NEW"), "new");
}

static void check_bad_line(const char *name, const char *text, int line, const char *needle)
{
    const char *path = write_file(name, text);
    ik_err err;
    ik_err_clear(&err);
    int rc = ik_env_load_file(path, &err);
    CU_ASSERT_EQUAL(rc, IK_E_PARSE);
    CU_ASSERT_EQUAL(err.code, IK_E_PARSE);
    char where[600];
    snprintf(where, sizeof where, "%s:%d: ", path, line);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, where));
    if (needle)
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, needle));
    if (!strstr(err.msg, where) || (needle && !strstr(err.msg, needle)))
        fprintf(stderr, "%s: message '%s' lacks '%s' / '%s'\n", name, err.msg, where,
                needle ? needle : "");
}

static void test_load_file_bad_lines(void)
{
    check_bad_line("noeq.env", "# ok\nIKT_B_OK=1\nJUST_A_WORD\n", 3, "'='");
    check_bad_line("digit.env", "1ABC=x\n", 1, "KEY=VALUE");
    check_bad_line("dash.env", "\n\nMY-KEY=x\n", 3, NULL);
    check_bad_line("sq.env", "IKT_B_SQ='open\n", 1, "unterminated");
    check_bad_line("dq.env", "A=1\nIKT_B_DQ=\"open\n", 2, "unterminated");
    check_bad_line("after.env", "IKT_B_AFTER=\"x\" junk\n", 1, "after the quoted value");
    check_bad_line("empty_key.env", "=value\n", 1, NULL);
}

static void test_load_file_missing(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/does-not-exist.env", tmpdir);
    ik_err err;
    ik_err_clear(&err);
    CU_ASSERT_EQUAL(ik_env_load_file(path, &err), IK_E_NOTFOUND);
    CU_ASSERT_EQUAL(err.code, IK_E_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    /* a directory is not an env file */
    ik_err_clear(&err);
    CU_ASSERT_EQUAL(ik_env_load_file(tmpdir, &err), IK_E_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not a regular file"));
    CU_ASSERT_EQUAL(ik_env_load_file(NULL, &err), IK_E_INVAL);
}

/* An env file that is a FIFO with no writer used to block fopen() for good,
 * hanging validate and run: the alarm turns such a hang into a failed test. */
static void test_load_file_fifo(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/fifo.env", tmpdir);
    CU_ASSERT_EQUAL_FATAL(mkfifo(path, 0600), 0);
    alarm(60);
    ik_err err;
    ik_err_clear(&err);
    CU_ASSERT_EQUAL(ik_env_load_file(path, &err), IK_E_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not a regular file"));
    alarm(0);
    unlink(path);
}

/* The shared whole-file reader (prompts, rank files) refuses a FIFO the
 * same way instead of waiting for a writer. */
static void test_read_file_fifo(void)
{
    char path[512], msg[600];
    snprintf(path, sizeof path, "%s/fifo.txt", tmpdir);
    CU_ASSERT_EQUAL_FATAL(mkfifo(path, 0600), 0);
    alarm(60);
    char *text = (char *)1;
    CU_ASSERT_EQUAL(ik_read_file(path, &text, NULL, msg, sizeof msg), EINVAL);
    CU_ASSERT_PTR_NULL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "not a regular file"));
    alarm(0);
    unlink(path);
}

static int suite_init(void)
{
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int suite_clean(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("env", suite_init, suite_clean);
    if (!s) {
        CU_cleanup_registry();
        return 1;
    }
    CU_add_test(s, "expand plain", test_expand_plain);
    CU_add_test(s, "expand defaults", test_expand_defaults);
    CU_add_test(s, "expand dollars", test_expand_dollars);
    CU_add_test(s, "expand unset variable", test_expand_unset);
    CU_add_test(s, "expand malformed", test_expand_malformed);
    CU_add_test(s, "expand deep nesting", test_expand_deep_nesting);
    CU_add_test(s, "expand NULL arguments", test_expand_null);
    CU_add_test(s, "env file syntax", test_load_file_syntax);
    CU_add_test(s, "env file: real environment wins", test_load_file_real_env_wins);
    CU_add_test(s, "env file bad lines", test_load_file_bad_lines);
    CU_add_test(s, "env file missing", test_load_file_missing);
    CU_add_test(s, "env file FIFO refused without blocking", test_load_file_fifo);
    CU_add_test(s, "whole-file reader refuses a FIFO", test_read_file_fifo);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    unsigned errs = CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return (fails > 0 || errs > 0) ? 1 : 0;
}
