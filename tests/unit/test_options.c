/* test_options.c: CUnit tests of plugin option binding (engine/options.c). */
#include <CUnit/Basic.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "options.h"

static char tmpdir[] = "/tmp/ik_test_options_XXXXXX";
static char confpath[320];
static int ncase;

#define SECRET_VALUE "sk-test-0123456789abcdef"

/* The config struct file_opts binds into, as a plugin's would be. */
typedef struct file_config {
    const char *path;
    const char *pattern;
    int follow;
    int64_t count;
    double ratio;
    uint64_t timeout_ms;
    uint64_t limit;
    const char *api_key;
    int64_t pin;
    const char *note;
    int mode;
} file_config;

static const char *const file_modes[] = {"move", "none", "copy", NULL};

#define FILE_OPTS(count_min, count_max, ratio_min, ratio_max, timeout_min, timeout_max, limit_max,   \
                  pin_min)                                                                           \
    {"path",                                                                                         \
     IK_OPT_STRING,                                                                                  \
     NULL,                                                                                           \
     IK_OPT_REQUIRED,                                                                                \
     "directory to read emails from",                                                                \
     IK_OPT_AT(file_config, path)},                                                                  \
        {"pattern", IK_OPT_STRING,       "*.json",                                                   \
         0,         "file name pattern", IK_OPT_AT(file_config, pattern)},                           \
        {"follow",                                                                                   \
         IK_OPT_BOOL,                                                                                \
         "false",                                                                                    \
         0,                                                                                          \
         "keep watching for new files",                                                              \
         IK_OPT_AT(file_config, follow)},                                                            \
        {"count",                                                                                    \
         IK_OPT_INT,                                                                                 \
         "10",                                                                                       \
         0,                                                                                          \
         "files per scan",                                                                           \
         IK_OPT_AT(file_config, count),                                                              \
         .min = count_min,                                                                           \
         .max = count_max},                                                                          \
        {"ratio",          IK_OPT_DOUBLE,   "0.5", 0, "a fraction", IK_OPT_AT(file_config, ratio),   \
         .min = ratio_min, .max = ratio_max},                                                        \
        {"timeout",                                                                                  \
         IK_OPT_DURATION,                                                                            \
         "30s",                                                                                      \
         0,                                                                                          \
         "how long to wait",                                                                         \
         IK_OPT_AT(file_config, timeout_ms),                                                         \
         .min = timeout_min,                                                                         \
         .max = timeout_max},                                                                        \
        {"limit",         IK_OPT_SIZE, "1M", 0, "largest file", IK_OPT_AT(file_config, limit),       \
         .max = limit_max},                                                                          \
        {"api_key", IK_OPT_STRING, NULL, IK_OPT_SECRET, "the key", IK_OPT_AT(file_config, api_key)}, \
        {"pin",         IK_OPT_INT,        NULL,                                                     \
         IK_OPT_SECRET, "a secret number", IK_OPT_AT(file_config, pin),                              \
         .min = pin_min},                                                                            \
        {"note", IK_OPT_STRING, NULL, 0, "optional, no default", IK_OPT_AT(file_config, note)},      \
        {"mode",                                                                                     \
         IK_OPT_CHOICE,                                                                              \
         "move",                                                                                     \
         0,                                                                                          \
         "what to do",                                                                               \
         IK_OPT_AT(file_config, mode),                                                               \
         .choices = file_modes},                                                                     \
    {                                                                                                \
        0                                                                                            \
    }

static const ik_option file_opts[] = {FILE_OPTS(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)};

/* file_opts with ranges, one of each numeric type; bind_body binds it
 * instead of file_opts while `bind_limits` is set (in test_limits). */
static const ik_option file_opts_ranged[] = {
    FILE_OPTS("1", "100", "0", "1", "10ms", "1h", "4M", "1000")};
static int bind_limits;

/*
 * Writes a config whose source stage (plugin "file", instance "in", line 2)
 * has `body` (starting on line 3), loads it and binds `table`. Returns the
 * bind's code; *cfg and *vals are the caller's to free.
 */
static int bind_body(const ik_option *table, const char *body, ik_config **cfg, ik_optvals **vals,
                     ik_err *err)
{
    snprintf(confpath, sizeof confpath, "%s/opts%d.conf", tmpdir, ++ncase);
    FILE *f = fopen(confpath, "w");
    if (!f)
        return -100;
    fprintf(f,
            "pipelines = ( { name = \"p\";\n"
            "  source = { plugin = \"file\"; name = \"in\"; concurrency = 1; batch = { max_items = "
            "2; };\n"
            "%s\n"
            "  };\n"
            "  sinks = ( { plugin = \"stdout\"; } ); } );\n",
            body);
    fclose(f);
    *cfg = NULL;
    *vals = NULL;
    ik_err_clear(err);
    int rc = ik_config_load(confpath, cfg, err);
    if (rc != 0) {
        fprintf(stderr, "\nconfig load failed: %s\n", err->msg);
        return -101;
    }
    size_t config_size = table == file_opts ? sizeof(file_config) : 0;
    if (bind_limits && table == file_opts)
        table = file_opts_ranged;
    return ik_options_bind(table, config_size, "file", &(*cfg)->pipelines[0].source, vals, err);
}

/* Binds and expects failure with `code`, "confpath:line: " first (line > 0)
 * and each needle in the message. Returns 1 when all held. */
static int expect_bind_error(const ik_option *table, const char *body, int code, int line,
                             const char *needle1, const char *needle2)
{
    ik_config *cfg;
    ik_optvals *vals;
    ik_err err;
    int rc = bind_body(table, body, &cfg, &vals, &err);
    int ok = rc == code && err.code == code && vals == NULL;
    if (line > 0) {
        char where[400];
        snprintf(where, sizeof where, "%s:%d: ", confpath, line);
        ok &= strncmp(err.msg, where, strlen(where)) == 0;
    }
    if (needle1)
        ok &= strstr(err.msg, needle1) != NULL;
    if (needle2)
        ok &= strstr(err.msg, needle2) != NULL;
    if (!ok)
        fprintf(stderr, "\nbind '%s': rc %d, message: %s\n", body, rc, err.msg);
    CU_ASSERT(ok);
    ik_optvals_free(vals);
    ik_config_free(cfg);
    return ok;
}

/* The values land in the plugin's config struct, each member of its type,
 * defaults included; strings stay owned by the values (SDK 2.0). */
static void test_config_struct(void)
{
    ik_config *cfg;
    ik_optvals *vals;
    ik_err err;
    CU_ASSERT_EQUAL_FATAL(bind_body(file_opts,
                                    "    path = \"in\"; follow = true; count = 7; ratio = 0.25;\n"
                                    "    timeout = \"250ms\"; limit = \"2K\"; mode = \"copy\";",
                                    &cfg, &vals, &err),
                          0);
    const file_config *c = ik_optvals_config(vals);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->path, "in");
    CU_ASSERT_STRING_EQUAL(c->pattern, "*.json"); /* default */
    CU_ASSERT_EQUAL(c->follow, 1);
    CU_ASSERT_EQUAL(c->count, 7);
    CU_ASSERT_DOUBLE_EQUAL(c->ratio, 0.25, 1e-12);
    CU_ASSERT_EQUAL(c->timeout_ms, 250);
    CU_ASSERT_EQUAL(c->limit, 2048);
    CU_ASSERT_PTR_NULL(c->api_key); /* unset, no default */
    CU_ASSERT_EQUAL(c->pin, 0);
    CU_ASSERT_EQUAL(c->mode, 2); /* "copy" */
    const char *s = NULL;
    CU_ASSERT_EQUAL(ik_optvals_string(vals, "path", &s), 0);
    CU_ASSERT_PTR_EQUAL(s, c->path); /* one string, owned by vals */
    ik_optvals_free(vals);
    ik_config_free(cfg);
    /* a choice's default is its index */
    CU_ASSERT_EQUAL_FATAL(bind_body(file_opts, "    path = \"in\";", &cfg, &vals, &err), 0);
    CU_ASSERT_EQUAL(((const file_config *)ik_optvals_config(vals))->mode, 0);
    ik_optvals_free(vals);
    ik_config_free(cfg);
    /* a value not among the choices names file:line and what is allowed */
    expect_bind_error(file_opts, "    path = \"in\";\n    mode = \"delete\";", IK_E_CONFIG, 4,
                      "option 'mode' of plugin 'file' (instance 'in') must be one of: move, "
                      "none, copy",
                      "got the string \"delete\"");
    expect_bind_error(file_opts, "    path = \"in\"; mode = 1;", IK_E_CONFIG, 3,
                      "must be one of: move, none, copy", "got the integer 1");
}

static void test_explicit_values(void)
{
    ik_config *cfg;
    ik_optvals *vals;
    ik_err err;
    setenv("IKT_DIR", "/var/mail", 1);
    int rc = bind_body(file_opts,
                       "    path = \"${IKT_DIR}/in\"; pattern = \"*.eml\"; follow = true;\n"
                       "    count = 42; ratio = 0.25; timeout = \"250ms\"; limit = \"4M\";",
                       &cfg, &vals, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    const char *s = NULL;
    int64_t i = 0;
    int b = 0;
    double d = 0;
    uint64_t u = 0;
    CU_ASSERT_EQUAL(ik_optvals_string(vals, "path", &s), 0);
    CU_ASSERT_STRING_EQUAL(s, "/var/mail/in");
    CU_ASSERT_EQUAL(ik_optvals_string(vals, "pattern", &s), 0);
    CU_ASSERT_STRING_EQUAL(s, "*.eml");
    CU_ASSERT_EQUAL(ik_optvals_bool(vals, "follow", &b), 0);
    CU_ASSERT_EQUAL(b, 1);
    CU_ASSERT_EQUAL(ik_optvals_int(vals, "count", &i), 0);
    CU_ASSERT_EQUAL(i, 42);
    CU_ASSERT_EQUAL(ik_optvals_double(vals, "ratio", &d), 0);
    CU_ASSERT_DOUBLE_EQUAL(d, 0.25, 1e-12);
    CU_ASSERT_EQUAL(ik_optvals_duration_ms(vals, "timeout", &u), 0);
    CU_ASSERT_EQUAL(u, 250);
    CU_ASSERT_EQUAL(ik_optvals_size(vals, "limit", &u), 0);
    CU_ASSERT_EQUAL(u, 4 * 1024 * 1024);
    CU_ASSERT_EQUAL(ik_optvals_is_set(vals, "path"), 1);
    CU_ASSERT_EQUAL(ik_optvals_is_set(vals, "limit"), 1);
    CU_ASSERT_EQUAL(ik_optvals_is_set(vals, "api_key"), 0);
    ik_optvals_free(vals);
    ik_config_free(cfg);
}

static void test_defaults(void)
{
    ik_config *cfg;
    ik_optvals *vals;
    ik_err err;
    int rc = bind_body(file_opts, "    path = \"in\";", &cfg, &vals, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    const char *s = "x";
    int64_t i = 0;
    int b = 1;
    double d = 0;
    uint64_t u = 0;
    CU_ASSERT_EQUAL(ik_optvals_string(vals, "pattern", &s), 0);
    CU_ASSERT_STRING_EQUAL(s, "*.json");
    CU_ASSERT_EQUAL(ik_optvals_bool(vals, "follow", &b), 0);
    CU_ASSERT_EQUAL(b, 0);
    CU_ASSERT_EQUAL(ik_optvals_int(vals, "count", &i), 0);
    CU_ASSERT_EQUAL(i, 10);
    CU_ASSERT_EQUAL(ik_optvals_double(vals, "ratio", &d), 0);
    CU_ASSERT_DOUBLE_EQUAL(d, 0.5, 1e-12);
    CU_ASSERT_EQUAL(ik_optvals_duration_ms(vals, "timeout", &u), 0);
    CU_ASSERT_EQUAL(u, 30000);
    CU_ASSERT_EQUAL(ik_optvals_size(vals, "limit", &u), 0);
    CU_ASSERT_EQUAL(u, 1024 * 1024);
    CU_ASSERT_EQUAL(ik_optvals_is_set(vals, "pattern"), 0);
    /* unset without default: NULL and 0 */
    s = "x";
    CU_ASSERT_EQUAL(ik_optvals_string(vals, "note", &s), 0);
    CU_ASSERT_PTR_NULL(s);
    ik_optvals_free(vals);
    ik_config_free(cfg);
}

static void test_value_forms(void)
{
    ik_config *cfg;
    ik_optvals *vals;
    ik_err err;
    setenv("IKT_COUNT", "-7", 1);
    int rc = bind_body(file_opts,
                       "    path = \"in\"; follow = \"yes\"; count = \"${IKT_COUNT}\";\n"
                       "    ratio = 2; timeout = 1.5; limit = 1024;",
                       &cfg, &vals, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    int64_t i = 0;
    int b = 0;
    double d = 0;
    uint64_t u = 0;
    CU_ASSERT_EQUAL(ik_optvals_bool(vals, "follow", &b), 0);
    CU_ASSERT_EQUAL(b, 1);
    CU_ASSERT_EQUAL(ik_optvals_int(vals, "count", &i), 0);
    CU_ASSERT_EQUAL(i, -7);
    CU_ASSERT_EQUAL(ik_optvals_double(vals, "ratio", &d), 0);
    CU_ASSERT_DOUBLE_EQUAL(d, 2.0, 1e-12);
    CU_ASSERT_EQUAL(ik_optvals_duration_ms(vals, "timeout", &u), 0);
    CU_ASSERT_EQUAL(u, 1500);
    CU_ASSERT_EQUAL(ik_optvals_size(vals, "limit", &u), 0);
    CU_ASSERT_EQUAL(u, 1024);
    ik_optvals_free(vals);
    ik_config_free(cfg);

    rc = bind_body(file_opts,
                   "    path = \"in\"; follow = \"off\"; count = 9000000000L;\n"
                   "    ratio = \"1e-3\"; timeout = 2; limit = 1.5; pin = 1234;",
                   &cfg, &vals, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(ik_optvals_bool(vals, "follow", &b), 0);
    CU_ASSERT_EQUAL(b, 0);
    CU_ASSERT_EQUAL(ik_optvals_int(vals, "count", &i), 0);
    CU_ASSERT_EQUAL(i, 9000000000LL);
    CU_ASSERT_EQUAL(ik_optvals_double(vals, "ratio", &d), 0);
    CU_ASSERT_DOUBLE_EQUAL(d, 0.001, 1e-12);
    CU_ASSERT_EQUAL(ik_optvals_duration_ms(vals, "timeout", &u), 0);
    CU_ASSERT_EQUAL(u, 2000);
    CU_ASSERT_EQUAL(ik_optvals_size(vals, "limit", &u), 0);
    CU_ASSERT_EQUAL(u, 2);
    CU_ASSERT_EQUAL(ik_optvals_int(vals, "pin", &i), 0);
    CU_ASSERT_EQUAL(i, 1234);
    ik_optvals_free(vals);
    ik_config_free(cfg);
}

static void test_unknown_option(void)
{
    expect_bind_error(file_opts, "    path = \"in\";\n    pth = \"x\";", IK_E_CONFIG, 4,
                      "unknown option 'pth' for plugin 'file' (instance 'in'); known options: "
                      "path, pattern, follow, count, ratio, timeout, limit, api_key, pin, note",
                      NULL);
    static const ik_option none[] = {{0}};
    expect_bind_error(none, "    x = 1;", IK_E_CONFIG, 3, "unknown option 'x'", "takes no options");
    expect_bind_error(NULL, "    x = 1;", IK_E_CONFIG, 3, "takes no options", NULL);
    /* engine keys alone are fine without any table */
    ik_config *cfg;
    ik_optvals *vals;
    ik_err err;
    CU_ASSERT_EQUAL(bind_body(NULL, "", &cfg, &vals, &err), 0);
    ik_optvals_free(vals);
    ik_config_free(cfg);
}

static void test_wrong_types(void)
{
    expect_bind_error(file_opts, "    path = \"in\";\n    follow = \"maybe\";", IK_E_CONFIG, 4,
                      "option 'follow' of plugin 'file' (instance 'in') must be a bool, got the "
                      "string \"maybe\"",
                      NULL);
    expect_bind_error(file_opts, "    path = \"in\"; follow = 1;", IK_E_CONFIG, 3,
                      "must be a bool, got the integer 1", NULL);
    expect_bind_error(file_opts, "    path = 5;", IK_E_CONFIG, 3,
                      "option 'path' of plugin 'file' (instance 'in') must be a string, got the "
                      "integer 5",
                      NULL);
    expect_bind_error(file_opts, "    path = \"in\"; count = 1.5;", IK_E_CONFIG, 3,
                      "option 'count'", "must be an int, got the float 1.5");
    expect_bind_error(file_opts, "    path = \"in\"; count = \"12x\";", IK_E_CONFIG, 3,
                      "must be an int, got the string \"12x\"", NULL);
    expect_bind_error(file_opts, "    path = \"in\"; count = true;", IK_E_CONFIG, 3,
                      "got the bool true", NULL);
    expect_bind_error(file_opts, "    path = \"in\"; ratio = \"abc\";", IK_E_CONFIG, 3,
                      "option 'ratio'", "must be a number");
    expect_bind_error(file_opts, "    path = \"in\"; timeout = ( 1, 2 );", IK_E_CONFIG, 3,
                      "must be a duration, got a list", NULL);
    expect_bind_error(file_opts, "    path = \"in\"; timeout = { a = 1; };", IK_E_CONFIG, 3,
                      "got a group", NULL);
    expect_bind_error(file_opts, "    path = \"in\"; limit = [ 1 ];", IK_E_CONFIG, 3,
                      "must be a size, got an array", NULL);
    expect_bind_error(file_opts, "    path = \"in\"; limit = -1;", IK_E_CONFIG, 3,
                      "must be a size, got the integer -1", NULL);
    expect_bind_error(file_opts, "    path = \"in\"; timeout = -0.5;", IK_E_CONFIG, 3,
                      "must be a duration", NULL);
    expect_bind_error(file_opts, "    path = \"in\"; timeout = \"10 minutes\";", IK_E_CONFIG, 3,
                      "got the string \"10 minutes\"", "\"250ms\"");
    expect_bind_error(file_opts,
                      "    path = \"in\"; limit = 9223372036854775807L; timeout = "
                      "9223372036854775807L;",
                      IK_E_CONFIG, 3, "option 'timeout'", "must be a duration");
}

static void test_missing_required(void)
{
    expect_bind_error(file_opts, "    pattern = \"x\";", IK_E_CONFIG, 2,
                      "plugin 'file' (instance 'in') requires option 'path': \"directory to read "
                      "emails from\"",
                      NULL);
    static const ik_option nohelp[] = {
        {"token", IK_OPT_STRING, NULL, IK_OPT_REQUIRED, NULL, .offset = 0}, {0}};
    expect_bind_error(nohelp, "", IK_E_CONFIG, 2, "requires option 'token'", NULL);
}

static void test_variables_in_values(void)
{
    unsetenv("IKT_NOPE");
    expect_bind_error(file_opts, "    path = \"${IKT_NOPE}\";", IK_E_CONFIG, 3,
                      "option 'path' of plugin 'file' (instance 'in')",
                      "variable IKT_NOPE is not set");
    expect_bind_error(file_opts, "    path = \"${IKT_NOPE\";", IK_E_CONFIG, 3, "unterminated",
                      NULL);
    ik_config *cfg;
    ik_optvals *vals;
    ik_err err;
    CU_ASSERT_EQUAL_FATAL(
        bind_body(file_opts, "    path = \"$${IKT_NOPE:-x}\";", &cfg, &vals, &err), 0);
    const char *s = NULL;
    CU_ASSERT_EQUAL(ik_optvals_string(vals, "path", &s), 0);
    CU_ASSERT_STRING_EQUAL(s, "${IKT_NOPE:-x}");
    ik_optvals_free(vals);
    ik_config_free(cfg);
}

static void test_secrets(void)
{
    setenv("IKT_SECRET", SECRET_VALUE, 1);
    ik_config *cfg;
    ik_optvals *vals;
    ik_err err;
    int rc =
        bind_body(file_opts, "    path = \"in\"; api_key = \"${IKT_SECRET}\";", &cfg, &vals, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    const char *s = NULL;
    CU_ASSERT_EQUAL(ik_optvals_string(vals, "api_key", &s), 0);
    CU_ASSERT_STRING_EQUAL(s, SECRET_VALUE);
    /* the value went to the redactor */
    char out[256];
    ik_log_redact("key is " SECRET_VALUE " ok", out, sizeof out);
    CU_ASSERT_PTR_NULL(strstr(out, SECRET_VALUE));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "[REDACTED]"));
    ik_optvals_free(vals);
    ik_config_free(cfg);

    /* a secret of the wrong type: the message never shows the value */
    static const char *bodies[] = {
        "    path = \"in\"; pin = \"sk-another-secret-999\";",
        "    path = \"in\"; pin = \"${IKT_SECRET}\";",
        "    path = \"in\"; pin = 77.5;",
        "    path = \"in\"; api_key = 424242;",
        "    path = \"in\"; api_key = true;",
    };
    static const char *leaks[] = {"sk-another-secret-999", SECRET_VALUE, "77.5", "424242", "true"};
    for (size_t k = 0; k < sizeof bodies / sizeof bodies[0]; k++) {
        rc = bind_body(file_opts, bodies[k], &cfg, &vals, &err);
        CU_ASSERT_EQUAL(rc, IK_E_CONFIG);
        CU_ASSERT_PTR_NULL(vals);
        CU_ASSERT_PTR_NULL(strstr(err.msg, leaks[k]));
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "<secret>"));
        if (strstr(err.msg, leaks[k]) || !strstr(err.msg, "<secret>"))
            fprintf(stderr, "\nsecret message: %s\n", err.msg);
        ik_optvals_free(vals);
        ik_config_free(cfg);
    }
    /* even a malformed secret string is registered before it is rejected */
    ik_log_redact("x sk-another-secret-999 y", out, sizeof out);
    CU_ASSERT_PTR_NULL(strstr(out, "sk-another-secret-999"));
}

static void test_bad_defaults(void)
{
    static const ik_option bad_int[] = {{"n", IK_OPT_INT, "ten", 0, "a number", .offset = 0}, {0}};
    expect_bind_error(bad_int, "", IK_E_INVAL, 0, "plugin 'file'", "option 'n'");
    /* checked even when the config sets the option */
    expect_bind_error(bad_int, "    n = 3;", IK_E_INVAL, 0, "default \"ten\"", "bug in the plugin");
    static const ik_option bad_dur[] = {{"t", IK_OPT_DURATION, "5 sec", 0, NULL, .offset = 0}, {0}};
    expect_bind_error(bad_dur, "", IK_E_INVAL, 0, "option 't'", NULL);
    static const ik_option bad_secret[] = {
        {"k", IK_OPT_INT, "hunter2-secret", IK_OPT_SECRET, NULL, .offset = 0}, {0}};
    ik_config *cfg;
    ik_optvals *vals;
    ik_err err;
    CU_ASSERT_EQUAL(bind_body(bad_secret, "", &cfg, &vals, &err), IK_E_INVAL);
    CU_ASSERT_PTR_NULL(strstr(err.msg, "hunter2-secret"));
    ik_config_free(cfg);
    static const ik_option bad_type[] = {{"x", (ik_opt_type)99, NULL, 0, NULL, .offset = 0}, {0}};
    expect_bind_error(bad_type, "", IK_E_INVAL, 0, "option 'x'", "unknown type");
    static const ik_option dup[] = {{"x", IK_OPT_INT, NULL, 0, NULL, .offset = 0},
                                    {"x", IK_OPT_STRING, NULL, 0, NULL, .offset = 0},
                                    {0}};
    expect_bind_error(dup, "", IK_E_INVAL, 0, "declared twice", NULL);
}

/* Values out of a limit are config errors naming file:line, option and
 * range; the bounds themselves are allowed. */
static void test_limits(void)
{
    bind_limits = 1;
    expect_bind_error(file_opts, "    path = \"in\";\n    count = 0;", IK_E_CONFIG, 4,
                      "option 'count' of plugin 'file' (instance 'in') must be between 1 and 100",
                      "(got 0)");
    expect_bind_error(file_opts, "    path = \"in\"; count = \"101\";", IK_E_CONFIG, 3,
                      "between 1 and 100", "(got 101)");
    expect_bind_error(file_opts, "    path = \"in\"; ratio = -0.25;", IK_E_CONFIG, 3,
                      "option 'ratio'", "between 0 and 1 (got -0.25)");
    expect_bind_error(file_opts, "    path = \"in\"; timeout = \"2h\";", IK_E_CONFIG, 3,
                      "option 'timeout'", "between 10ms and 1h (got 7200000ms)");
    expect_bind_error(file_opts, "    path = \"in\"; timeout = 0.005;", IK_E_CONFIG, 3,
                      "option 'timeout'", "(got 5ms)");
    expect_bind_error(file_opts, "    path = \"in\"; limit = \"5M\";", IK_E_CONFIG, 3,
                      "option 'limit'", "must be at most 4M (got 5242880 bytes)");
    /* a secret value is not quoted back */
    expect_bind_error(file_opts, "    path = \"in\"; pin = 999;", IK_E_CONFIG, 3,
                      "must be at least 1000", "(got <secret>)");
    /* bounds are inclusive; unset options without default are not checked */
    ik_config *cfg;
    ik_optvals *vals;
    ik_err err;
    CU_ASSERT_EQUAL(bind_body(file_opts,
                              "    path = \"in\"; count = 100; ratio = 0; timeout = \"10ms\"; "
                              "limit = \"4M\";",
                              &cfg, &vals, &err),
                    0);
    int64_t n = 0;
    CU_ASSERT_EQUAL(ik_optvals_int(vals, "count", &n), 0);
    CU_ASSERT_EQUAL(n, 100);
    ik_optvals_free(vals);
    ik_config_free(cfg);
    /* a default from a variable is checked too, and named as such */
    static const ik_option var_def[] = {
        {"count", IK_OPT_INT, "${IKT_LIMIT_N:-5}", 0, NULL, .min = "1", .max = "100"}, {0}};
    setenv("IKT_LIMIT_N", "500", 1);
    expect_bind_error(var_def, "", IK_E_CONFIG, 2, "the default of option 'count' expands to 500",
                      "must be between 1 and 100");
    unsetenv("IKT_LIMIT_N");
    CU_ASSERT_EQUAL(bind_body(var_def, "", &cfg, &vals, &err), 0);
    ik_optvals_free(vals);
    ik_config_free(cfg);
    bind_limits = 0;
}

static void test_defaults_with_variables(void)
{
    static const ik_option t[] = {
        {"n", IK_OPT_INT, "${IKT_DEF_N:-7}", 0, NULL, .offset = 0},
        {"key", IK_OPT_STRING, "${IKT_DEF_KEY}", IK_OPT_SECRET, NULL, .offset = 0},
        {0}};
    unsetenv("IKT_DEF_N");
    setenv("IKT_DEF_KEY", "default-secret-abcdef", 1);
    ik_config *cfg;
    ik_optvals *vals;
    ik_err err;
    CU_ASSERT_EQUAL_FATAL(bind_body(t, "", &cfg, &vals, &err), 0);
    int64_t n = 0;
    const char *k = NULL;
    CU_ASSERT_EQUAL(ik_optvals_int(vals, "n", &n), 0);
    CU_ASSERT_EQUAL(n, 7);
    CU_ASSERT_EQUAL(ik_optvals_string(vals, "key", &k), 0);
    CU_ASSERT_STRING_EQUAL(k, "default-secret-abcdef");
    CU_ASSERT_EQUAL(ik_optvals_is_set(vals, "key"), 0);
    char out[128];
    ik_log_redact("default-secret-abcdef", out, sizeof out);
    CU_ASSERT_PTR_NULL(strstr(out, "default-secret-abcdef"));
    ik_optvals_free(vals);
    ik_config_free(cfg);

    setenv("IKT_DEF_N", "9", 1);
    CU_ASSERT_EQUAL_FATAL(bind_body(t, "", &cfg, &vals, &err), 0);
    CU_ASSERT_EQUAL(ik_optvals_int(vals, "n", &n), 0);
    CU_ASSERT_EQUAL(n, 9);
    ik_optvals_free(vals);
    ik_config_free(cfg);

    /* a variable in a default that does not parse is a config problem */
    setenv("IKT_DEF_N", "nine", 1);
    expect_bind_error(t, "", IK_E_CONFIG, 2, "default of option 'n'", "\"nine\"");
    unsetenv("IKT_DEF_N");
    /* an unset variable in a default: error only when the default is used */
    unsetenv("IKT_DEF_KEY");
    expect_bind_error(t, "", IK_E_CONFIG, 2, "option 'key'", "IKT_DEF_KEY is not set");
    CU_ASSERT_EQUAL_FATAL(bind_body(t, "    key = \"given-explicitly\";", &cfg, &vals, &err), 0);
    CU_ASSERT_EQUAL(ik_optvals_string(vals, "key", &k), 0);
    CU_ASSERT_STRING_EQUAL(k, "given-explicitly");
    ik_optvals_free(vals);
    ik_config_free(cfg);
}

static void test_getter_errors(void)
{
    ik_config *cfg;
    ik_optvals *vals;
    ik_err err;
    CU_ASSERT_EQUAL_FATAL(bind_body(file_opts, "    path = \"in\";", &cfg, &vals, &err), 0);
    ik_config_free(cfg); /* the values do not depend on the config */
    const char *s = "untouched";
    int64_t i = 99;
    int b = 5;
    double d = 1.25;
    uint64_t u = 77;
    CU_ASSERT_EQUAL(ik_optvals_string(vals, "nope", &s), IK_E_NOTFOUND);
    CU_ASSERT_STRING_EQUAL(s, "untouched");
    CU_ASSERT_EQUAL(ik_optvals_string(vals, "count", &s), IK_E_INVAL);
    CU_ASSERT_STRING_EQUAL(s, "untouched");
    CU_ASSERT_EQUAL(ik_optvals_int(vals, "path", &i), IK_E_INVAL);
    CU_ASSERT_EQUAL(i, 99);
    CU_ASSERT_EQUAL(ik_optvals_int(vals, "nope", &i), IK_E_NOTFOUND);
    CU_ASSERT_EQUAL(ik_optvals_bool(vals, "count", &b), IK_E_INVAL);
    CU_ASSERT_EQUAL(b, 5);
    CU_ASSERT_EQUAL(ik_optvals_double(vals, "count", &d), IK_E_INVAL);
    CU_ASSERT_DOUBLE_EQUAL(d, 1.25, 0);
    CU_ASSERT_EQUAL(ik_optvals_duration_ms(vals, "limit", &u), IK_E_INVAL);
    CU_ASSERT_EQUAL(ik_optvals_size(vals, "timeout", &u), IK_E_INVAL);
    CU_ASSERT_EQUAL(u, 77);
    CU_ASSERT_EQUAL(ik_optvals_is_set(vals, "nope"), 0);
    CU_ASSERT_EQUAL(ik_optvals_is_set(NULL, "path"), 0);
    ik_optvals_free(vals);
    ik_optvals_free(NULL);
    CU_ASSERT_STRING_EQUAL(ik_opt_type_name(IK_OPT_STRING), "string");
    CU_ASSERT_STRING_EQUAL(ik_opt_type_name(IK_OPT_INT), "int");
    CU_ASSERT_STRING_EQUAL(ik_opt_type_name(IK_OPT_BOOL), "bool");
    CU_ASSERT_STRING_EQUAL(ik_opt_type_name(IK_OPT_DOUBLE), "double");
    CU_ASSERT_STRING_EQUAL(ik_opt_type_name(IK_OPT_DURATION), "duration");
    CU_ASSERT_STRING_EQUAL(ik_opt_type_name(IK_OPT_SIZE), "size");
    CU_ASSERT_STRING_EQUAL(ik_opt_type_name((ik_opt_type)0), "unknown");
}

/* Getters are read-only after bind: hammer them from several threads. */
static void *reader(void *arg)
{
    const ik_optvals *vals = arg;
    long bad = 0;
    for (int k = 0; k < 20000; k++) {
        const char *s = NULL;
        int64_t i = 0;
        if (ik_optvals_string(vals, "path", &s) != 0 || strcmp(s, "in") != 0)
            bad++;
        if (ik_optvals_int(vals, "count", &i) != 0 || i != 10)
            bad++;
    }
    return (void *)bad;
}

static void test_concurrent_getters(void)
{
    ik_config *cfg;
    ik_optvals *vals;
    ik_err err;
    CU_ASSERT_EQUAL_FATAL(bind_body(file_opts, "    path = \"in\";", &cfg, &vals, &err), 0);
    pthread_t th[4];
    for (int k = 0; k < 4; k++)
        CU_ASSERT_EQUAL(pthread_create(&th[k], NULL, reader, vals), 0);
    for (int k = 0; k < 4; k++) {
        void *r;
        pthread_join(th[k], &r);
        CU_ASSERT_PTR_NULL(r);
    }
    ik_optvals_free(vals);
    ik_config_free(cfg);
}

static int suite_init(void)
{
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int suite_clean(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("options", suite_init, suite_clean);
    if (!s) {
        CU_cleanup_registry();
        return 1;
    }
    CU_add_test(s, "values bound into the config struct; choices", test_config_struct);
    CU_add_test(s, "explicit values", test_explicit_values);
    CU_add_test(s, "defaults", test_defaults);
    CU_add_test(s, "ints, floats and strings", test_value_forms);
    CU_add_test(s, "unknown option", test_unknown_option);
    CU_add_test(s, "wrong types", test_wrong_types);
    CU_add_test(s, "missing required option", test_missing_required);
    CU_add_test(s, "variables in values", test_variables_in_values);
    CU_add_test(s, "secrets", test_secrets);
    CU_add_test(s, "bad defaults are plugin bugs", test_bad_defaults);
    CU_add_test(s, "defaults with variables", test_defaults_with_variables);
    CU_add_test(s, "limits", test_limits);
    CU_add_test(s, "getter errors", test_getter_errors);
    CU_add_test(s, "concurrent getters", test_concurrent_getters);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    unsigned errs = CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    ik_log_shutdown();
    return (fails > 0 || errs > 0) ? 1 : 0;
}
