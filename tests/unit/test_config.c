/* test_config.c: CUnit tests of the pipeline file loader (engine/config.c). */
#include <CUnit/Basic.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

static char tmpdir[] = "/tmp/ik_test_config_XXXXXX";
static char casedir[256]; /* a fresh directory per case */
static char mainconf[320];
static int ncase;

#define MINI_PIPE                                                                                  \
    "pipelines = ( { name = \"p\"; source = { plugin = \"file\"; }; sinks = ( { plugin = "         \
    "\"stdout\"; } ); } );\n"

static void new_case(void)
{
    snprintf(casedir, sizeof casedir, "%s/c%d", tmpdir, ++ncase);
    mkdir(casedir, 0700);
    snprintf(mainconf, sizeof mainconf, "%s/main.conf", casedir);
}

/* Writes casedir/name. */
static void write_case_file(const char *name, const char *text)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", casedir, name);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

/* Loads `text` as a fresh case's main.conf; asserts success. */
static ik_config *load_ok(const char *text)
{
    new_case();
    write_case_file("main.conf", text);
    ik_config *cfg = NULL;
    ik_err err;
    ik_err_clear(&err);
    int rc = ik_config_load(mainconf, &cfg, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0)
        fprintf(stderr, "\nunexpected load error: %s\n", err.msg);
    return cfg;
}

/*
 * Loads the current case's main.conf (already written) and checks the error:
 * the code, "main.conf:LINE: " at the start when line > 0, and each needle.
 */
static void expect_current(int code, int line, const char *needles[])
{
    ik_config *cfg = (ik_config *)0x1;
    ik_err err;
    ik_err_clear(&err);
    int rc = ik_config_load(mainconf, &cfg, &err);
    CU_ASSERT_EQUAL(rc, code);
    CU_ASSERT_EQUAL(err.code, code);
    CU_ASSERT_PTR_NULL(cfg);
    int bad = rc != code;
    if (line > 0) {
        char where[PATH_MAX + 32];
        snprintf(where, sizeof where, "%s:%d: ", mainconf, line);
        CU_ASSERT_EQUAL(strncmp(err.msg, where, strlen(where)), 0);
        bad |= strncmp(err.msg, where, strlen(where)) != 0;
    }
    for (int i = 0; needles && needles[i]; i++) {
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, needles[i]));
        bad |= strstr(err.msg, needles[i]) == NULL;
    }
    if (bad)
        fprintf(stderr, "\nerror (rc %d): %s\n", rc, err.msg);
}

#define EXPECT(text, code, line, ...)                                                              \
    do {                                                                                           \
        new_case();                                                                                \
        write_case_file("main.conf", text);                                                        \
        const char *needles_[] = {__VA_ARGS__, NULL};                                              \
        expect_current(code, line, needles_);                                                      \
    } while (0)

static void unset_seeds(void)
{
    unsetenv("MAX_BATCH_SIZE");
    unsetenv("BATCH_TIMEOUT_SECONDS");
    unsetenv("MAX_MESSAGE_SIZE_KB");
}

static void test_minimal_defaults(void)
{
    unset_seeds();
    ik_config *cfg = load_ok(MINI_PIPE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_STRING_EQUAL(cfg->path, mainconf);
    CU_ASSERT_STRING_EQUAL(cfg->dir, casedir);
    CU_ASSERT_EQUAL(cfg->nplugin_path, 0);
    CU_ASSERT_PTR_NULL(cfg->env_file);
    CU_ASSERT_EQUAL(cfg->log_level, IK_LOG_INFO);
    CU_ASSERT_EQUAL(cfg->log_json, 0);
    CU_ASSERT_EQUAL(cfg->admin_enabled, 1);
    CU_ASSERT_STRING_EQUAL(cfg->admin_listen, "127.0.0.1:2020");
    CU_ASSERT_EQUAL(cfg->shutdown_timeout_ms, 30000);
    CU_ASSERT_EQUAL_FATAL(cfg->npipelines, 1);
    ik_pipeline_spec *p = &cfg->pipelines[0];
    CU_ASSERT_STRING_EQUAL(p->name, "p");
    CU_ASSERT_EQUAL(p->line, 1);
    CU_ASSERT_STRING_EQUAL(p->file, mainconf);
    CU_ASSERT_EQUAL(p->inflight_limit, 1000);
    CU_ASSERT_EQUAL(p->max_record_size, 256 * 1024);
    CU_ASSERT_EQUAL(p->health_window_ms, 60000);
    CU_ASSERT_EQUAL(p->retry.max_attempts, 5);
    CU_ASSERT_EQUAL(p->retry.initial_backoff_ms, 1000);
    CU_ASSERT_EQUAL(p->retry.max_backoff_ms, 60000);
    CU_ASSERT_EQUAL(p->batch.max_items, 50);
    CU_ASSERT_EQUAL(p->batch.max_cost, 0);
    CU_ASSERT_EQUAL(p->batch.max_wait_ms, 30000);
    CU_ASSERT_STRING_EQUAL(p->source.plugin, "file");
    CU_ASSERT_STRING_EQUAL(p->source.name, "file");
    CU_ASSERT_EQUAL(p->source.role, IK_ROLE_SOURCE);
    CU_ASSERT_EQUAL(p->source.concurrency, 1);
    CU_ASSERT_EQUAL(p->nprocessors, 0);
    CU_ASSERT_EQUAL_FATAL(p->nsinks, 1);
    CU_ASSERT_STRING_EQUAL(p->sinks[0].name, "stdout");
    CU_ASSERT_EQUAL(p->sinks[0].role, IK_ROLE_SINK);
    CU_ASSERT_EQUAL(p->sinks[0].batch.max_items, 100);
    CU_ASSERT_EQUAL(p->sinks[0].batch.max_cost, 0);
    CU_ASSERT_EQUAL(p->sinks[0].batch.max_wait_ms, 200);
    CU_ASSERT_PTR_NULL(p->dead_letter);
    ik_config_free(cfg);
}

static const char *full_example =
    "env_file = \".env.local\";\n"                              /* 1 */
    "plugin_path = [ \"plugins\", \"/opt/intake/plugins\" ];\n" /* 2 */
    "log = { level = \"debug\"; format = \"json\"; };\n"        /* 3 */
    "admin = { enabled = false; listen = \"0.0.0.0:0\"; };\n"   /* 4 */
    "shutdown_timeout = \"5s\";\n"                              /* 5 */
    "pipelines = (\n"                                           /* 6 */
    "  { name = \"emails\";\n"                                  /* 7 */
    "    inflight_limit = 200;\n"                               /* 8 */
    "    max_record_size = \"1M\";\n"                           /* 9 */
    "    retry = { max_attempts = 3; initial_backoff = \"500ms\"; max_backoff = 10; };\n"
    "    batch = { max_items = 20; max_cost = 100000; max_wait = 2.5; };\n"       /* 11 */
    "    health_window = \"2m\";\n"                                               /* 12 */
    "    source = { plugin = \"file\"; path = \"in/\"; follow = true; };\n"       /* 13 */
    "    processors = ( { plugin = \"passthrough\"; concurrency = 2;\n"           /* 14 */
    "                     batch = { max_items = 5; }; },\n"                       /* 15 */
    "                   { plugin = \"llm\"; name = \"extract\"; } );\n"           /* 16 */
    "    sinks = ( { plugin = \"stdout\"; },\n"                                   /* 17 */
    "              { plugin = \"stdout\"; batch = { max_wait = \"1s\"; }; } );\n" /* 18 */
    "    dead_letter = { plugin = \"stdout\"; };\n"                               /* 19 */
    "  },\n"                                                                      /* 20 */
    "  { name = \"second\"; source = { plugin = \"http\"; };\n"                   /* 21 */
    "    sinks = ( { plugin = \"zoho\"; } ); }\n"                                 /* 22 */
    ");\n";

static void test_full_example(void)
{
    unset_seeds();
    new_case();
    write_case_file(".env.local", "IKT_FROM_ENV_FILE=1\n");
    write_case_file("main.conf", full_example);
    ik_config *cfg = NULL;
    ik_err err;
    int rc = ik_config_load(mainconf, &cfg, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s/.env.local", casedir);
    CU_ASSERT_STRING_EQUAL(cfg->env_file, want);
    CU_ASSERT_STRING_EQUAL(getenv("IKT_FROM_ENV_FILE"), "1");
    CU_ASSERT_EQUAL_FATAL(cfg->nplugin_path, 2);
    snprintf(want, sizeof want, "%s/plugins", casedir);
    CU_ASSERT_STRING_EQUAL(cfg->plugin_path[0], want);
    CU_ASSERT_STRING_EQUAL(cfg->plugin_path[1], "/opt/intake/plugins");
    CU_ASSERT_EQUAL(cfg->log_level, IK_LOG_DEBUG);
    CU_ASSERT_EQUAL(cfg->log_json, 1);
    CU_ASSERT_EQUAL(cfg->admin_enabled, 0);
    CU_ASSERT_STRING_EQUAL(cfg->admin_listen, "0.0.0.0:0");
    CU_ASSERT_EQUAL(cfg->shutdown_timeout_ms, 5000);
    CU_ASSERT_EQUAL_FATAL(cfg->npipelines, 2);

    ik_pipeline_spec *p = &cfg->pipelines[0];
    CU_ASSERT_EQUAL(p->line, 7);
    CU_ASSERT_EQUAL(p->inflight_limit, 200);
    CU_ASSERT_EQUAL(p->max_record_size, 1024 * 1024);
    CU_ASSERT_EQUAL(p->retry.max_attempts, 3);
    CU_ASSERT_EQUAL(p->retry.initial_backoff_ms, 500);
    CU_ASSERT_EQUAL(p->retry.max_backoff_ms, 10000);
    CU_ASSERT_EQUAL(p->batch.max_items, 20);
    CU_ASSERT_EQUAL(p->batch.max_cost, 100000);
    CU_ASSERT_EQUAL(p->batch.max_wait_ms, 2500);
    CU_ASSERT_EQUAL(p->health_window_ms, 120000);
    CU_ASSERT_EQUAL(p->source.line, 13);
    CU_ASSERT_STRING_EQUAL(p->source.file, mainconf);
    CU_ASSERT_PTR_NOT_NULL(config_setting_get_member(p->source.setting, "path"));
    CU_ASSERT_EQUAL_FATAL(p->nprocessors, 2);
    /* per-key override of the inherited pipeline batch */
    CU_ASSERT_EQUAL(p->processors[0].batch.max_items, 5);
    CU_ASSERT_EQUAL(p->processors[0].batch.max_cost, 100000);
    CU_ASSERT_EQUAL(p->processors[0].batch.max_wait_ms, 2500);
    CU_ASSERT_EQUAL(p->processors[0].concurrency, 2);
    CU_ASSERT_EQUAL(p->processors[0].line, 14);
    CU_ASSERT_STRING_EQUAL(p->processors[0].name, "passthrough");
    CU_ASSERT_EQUAL(p->processors[1].batch.max_items, 20);
    CU_ASSERT_STRING_EQUAL(p->processors[1].name, "extract");
    CU_ASSERT_STRING_EQUAL(p->processors[1].plugin, "llm");
    CU_ASSERT_EQUAL(p->processors[1].role, IK_ROLE_PROCESSOR);
    CU_ASSERT_EQUAL_FATAL(p->nsinks, 2);
    CU_ASSERT_STRING_EQUAL(p->sinks[0].name, "stdout");
    CU_ASSERT_STRING_EQUAL(p->sinks[1].name, "stdout#2");
    CU_ASSERT_EQUAL(p->sinks[1].batch.max_items, 100);
    CU_ASSERT_EQUAL(p->sinks[1].batch.max_wait_ms, 1000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p->dead_letter);
    CU_ASSERT_STRING_EQUAL(p->dead_letter->name, "stdout#3");
    CU_ASSERT_EQUAL(p->dead_letter->role, IK_ROLE_DEAD_LETTER);
    CU_ASSERT_EQUAL(p->dead_letter->batch.max_items, 100);
    CU_ASSERT_STRING_EQUAL(cfg->pipelines[1].name, "second");
    CU_ASSERT_STRING_EQUAL(cfg->pipelines[1].sinks[0].name, "zoho");
    ik_config_free(cfg);
}

static void test_unknown_keys(void)
{
    EXPECT("log = { level = \"info\"; };\nbogus = 1;\n" MINI_PIPE, IK_E_CONFIG, 2,
           "unknown setting 'bogus' in the top level",
           "allowed: env_file, env_file_optional, plugin_path, log, admin, shutdown_timeout, "
           "pipelines");
    EXPECT("pipelines = ( { name = \"p\";\n  source = { plugin = \"file\"; };\n"
           "  sinks = ( { plugin = \"stdout\"; } );\n  inflight = 5; } );\n",
           IK_E_CONFIG, 4, "unknown setting 'inflight' in pipeline 'p'", "inflight_limit");
    EXPECT("pipelines = ( { name = \"p\";\n  retry = { max_attempt = 3; };\n"
           "  source = { plugin = \"file\"; }; sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 2, "unknown setting 'max_attempt' in pipeline 'p': retry",
           "allowed: max_attempts, initial_backoff, max_backoff");
    EXPECT("pipelines = ( { name = \"p\";\n  batch = {\n    max_item = 3; };\n"
           "  source = { plugin = \"file\"; }; sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 3, "unknown setting 'max_item'", "allowed: max_items, max_cost, max_wait");
    EXPECT("log = {\n  lvl = \"debug\"; };\n" MINI_PIPE, IK_E_CONFIG, 2,
           "unknown setting 'lvl' in log", "allowed: level, format");
    EXPECT("admin = { enable = true; };\n" MINI_PIPE, IK_E_CONFIG, 1,
           "unknown setting 'enable' in admin", "allowed: enabled, listen");
    /* a batch group inside a stage is checked too */
    EXPECT("pipelines = ( { name = \"p\"; source = { plugin = \"file\"; };\n"
           "  sinks = ( { plugin = \"stdout\";\n    batch = { wait = 1; }; } ); } );\n",
           IK_E_CONFIG, 3, "unknown setting 'wait'");
}

static void test_stage_options_left_alone(void)
{
    ik_config *cfg = load_ok("pipelines = ( { name = \"p\";\n"
                             "  source = { plugin = \"file\"; anything = \"x\"; nested = { a = 1; "
                             "}; list = (1, \"two\"); };\n"
                             "  sinks = ( { plugin = \"stdout\"; pretty = true; } ); } );\n");
    CU_ASSERT_PTR_NOT_NULL(cfg);
    ik_config_free(cfg);
}

static void test_structure_errors(void)
{
    EXPECT("pipelines = ( { name = \"p\";\n  sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 1, "pipeline 'p' has no 'source'");
    EXPECT("pipelines = ( { name = \"p\";\n  source = { plugin = \"file\"; }; } );\n", IK_E_CONFIG,
           1, "pipeline 'p' has no 'sinks'");
    EXPECT("pipelines = ( { name = \"p\"; source = { plugin = \"file\"; };\n  sinks = ( ); } );\n",
           IK_E_CONFIG, 2, "at least one sink");
    EXPECT("pipelines = ( { name = \"p\"; source = { plugin = \"file\"; };\n"
           "  sinks = { plugin = \"stdout\"; }; } );\n",
           IK_E_CONFIG, 2, "sinks must be a list of groups", "got a group");
    EXPECT("pipelines = ( { name = \"p\"; source = { plugin = \"file\"; };\n"
           "  processors = [ 1, 2 ];\n  sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 2, "processors must be a list of groups", "got an array");
    EXPECT("pipelines = ( { name = \"p\"; source = ( 1 );\n  sinks = ( { plugin = \"stdout\"; } ); "
           "} );\n",
           IK_E_CONFIG, 1, "pipeline 'p': source must be a group", "got a list");
    EXPECT("pipelines = ( { name = \"p\"; source = { plugin = \"file\"; };\n"
           "  sinks = ( { plugin = \"stdout\"; },\n    { path = \"x\"; } ); } );\n",
           IK_E_CONFIG, 3, "pipeline 'p': sinks[1] has no 'plugin'");
    EXPECT("pipelines = ( { name = \"p\"; source = { plugin = 5; };\n"
           "  sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 1, "source: plugin must be a string, got the integer 5");
    EXPECT("pipelines = ( { name = \"p\"; source = { plugin = \"../evil\"; };\n"
           "  sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 1, "plugin name made of [a-z0-9_]", "\"../evil\"");
    EXPECT("pipelines = { name = \"p\"; };\n", IK_E_CONFIG, 1, "pipelines must be a list");
    EXPECT("pipelines = ( );\n", IK_E_CONFIG, 1, "define at least one pipeline");
    EXPECT("log = { level = \"info\"; };\n", IK_E_CONFIG, 0, "no pipelines defined");
    EXPECT("pipelines = ( { source = { plugin = \"file\"; };\n"
           "  sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 1, "pipelines[0] has no 'name'");
    EXPECT("pipelines = ( { name = \"a b\"; source = { plugin = \"file\"; };\n"
           "  sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 1, "must be made of [A-Za-z0-9_.-]");
    EXPECT("log = 3;\n" MINI_PIPE, IK_E_CONFIG, 1, "log must be a group");
}

static void test_duplicate_names(void)
{
    EXPECT(MINI_PIPE "pipelines2 = 1;\n", IK_E_CONFIG, 2, "unknown setting 'pipelines2'");
    EXPECT("pipelines = ( { name = \"p\"; source = { plugin = \"file\"; };\n"
           "  sinks = ( { plugin = \"stdout\"; } ); },\n"
           "  { name = \"p\"; source = { plugin = \"file\"; };\n"
           "  sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 3, "duplicate pipeline name 'p'", "main.conf:1)");
    EXPECT("pipelines = ( { name = \"p\"; source = { plugin = \"file\"; name = \"x\"; };\n"
           "  processors = ( { plugin = \"a\"; } );\n"
           "  sinks = ( { plugin = \"stdout\"; },\n"
           "            { plugin = \"zoho\"; name = \"x\"; } ); } );\n",
           IK_E_CONFIG, 4, "duplicate instance name 'x'", "main.conf:1)");

    /* explicit names take precedence; the default name is numbered around them */
    ik_config *cfg = load_ok("pipelines = ( { name = \"p\"; source = { plugin = \"stdout\"; };\n"
                             "  sinks = ( { plugin = \"stdout\"; },\n"
                             "            { plugin = \"file\"; name = \"stdout#2\"; },\n"
                             "            { plugin = \"stdout\"; name = \"stdout\"; },\n"
                             "            { plugin = \"stdout\"; } ); } );\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    ik_pipeline_spec *p = &cfg->pipelines[0];
    CU_ASSERT_STRING_EQUAL(p->sinks[2].name, "stdout");
    CU_ASSERT_STRING_EQUAL(p->sinks[1].name, "stdout#2");
    CU_ASSERT_STRING_EQUAL(p->source.name, "stdout#3");
    CU_ASSERT_STRING_EQUAL(p->sinks[0].name, "stdout#4");
    CU_ASSERT_STRING_EQUAL(p->sinks[3].name, "stdout#5");
    ik_config_free(cfg);

    /* the same instance name in two pipelines is fine */
    cfg = load_ok("pipelines = ( { name = \"a\"; source = { plugin = \"file\"; };\n"
                  "  sinks = ( { plugin = \"stdout\"; } ); },\n"
                  "  { name = \"b\"; source = { plugin = \"file\"; };\n"
                  "  sinks = ( { plugin = \"stdout\"; } ); } );\n");
    CU_ASSERT_PTR_NOT_NULL(cfg);
    if (cfg)
        CU_ASSERT_STRING_EQUAL(cfg->pipelines[1].sinks[0].name, "stdout");
    ik_config_free(cfg);
}

static void test_ranges_and_types(void)
{
    EXPECT("pipelines = ( { name = \"p\"; source = { plugin = \"file\"; };\n"
           "  sinks = ( { plugin = \"stdout\";\n    concurrency = 0; } ); } );\n",
           IK_E_CONFIG, 3, "concurrency must be between 1 and 256 (got 0)");
    EXPECT("pipelines = ( { name = \"p\"; source = { plugin = \"file\"; concurrency = 257; };\n"
           "  sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 1, "(got 257)");
    EXPECT("pipelines = ( { name = \"emails\";\n"
           "  batch = { max_items = 0; };\n"
           "  source = { plugin = \"file\"; }; sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 2, "pipeline 'emails': batch.max_items must be >= 1 (got 0)");
    EXPECT("pipelines = ( { name = \"p\"; batch = { max_items = 2.5; };\n"
           "  source = { plugin = \"file\"; }; sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 1, "batch.max_items must be an integer, got the float 2.5");
    EXPECT("pipelines = ( { name = \"p\"; inflight_limit = \"lots\";\n"
           "  source = { plugin = \"file\"; }; sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 1, "inflight_limit must be an integer, got the string \"lots\"");
    EXPECT("pipelines = ( { name = \"p\"; inflight_limit = 4294967296L;\n"
           "  source = { plugin = \"file\"; }; sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 1, "inflight_limit must be <= 4294967295 (got 4294967296)");
    EXPECT("pipelines = ( { name = \"p\"; retry = { max_attempts = 0; };\n"
           "  source = { plugin = \"file\"; }; sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 1, "retry.max_attempts must be >= 1 (got 0)");
    EXPECT("pipelines = ( { name = \"p\";\n"
           "  retry = { initial_backoff = \"10s\";\n      max_backoff = \"5s\"; };\n"
           "  source = { plugin = \"file\"; }; sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 3, "max_backoff (5000 ms) must be >= initial_backoff (10000 ms)");
    EXPECT("pipelines = ( { name = \"p\"; health_window = 0;\n"
           "  source = { plugin = \"file\"; }; sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 1, "health_window must be longer than 0");
    EXPECT("pipelines = ( { name = \"p\"; max_record_size = \"0K\";\n"
           "  source = { plugin = \"file\"; }; sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 1, "max_record_size must be >= 1");
    EXPECT("shutdown_timeout = \"soon\";\n" MINI_PIPE, IK_E_CONFIG, 1,
           "shutdown_timeout must be a duration", "got the string \"soon\"");
    EXPECT("shutdown_timeout = -1;\n" MINI_PIPE, IK_E_CONFIG, 1,
           "shutdown_timeout must be a non-negative number");
    EXPECT("shutdown_timeout = 1e300;\n" MINI_PIPE, IK_E_CONFIG, 1,
           "shutdown_timeout must be a non-negative number");
    EXPECT("shutdown_timeout = \"99999999999999999999s\";\n" MINI_PIPE, IK_E_CONFIG, 1,
           "must be a duration");
    EXPECT("pipelines = ( { name = \"p\"; max_record_size = \"4Q\";\n"
           "  source = { plugin = \"file\"; }; sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 1, "max_record_size must be a size");
    EXPECT("pipelines = ( { name = \"p\"; max_record_size = { };\n"
           "  source = { plugin = \"file\"; }; sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 1, "got a group");
    EXPECT("log = { level = \"loud\"; };\n" MINI_PIPE, IK_E_CONFIG, 1,
           "log.level must be one of error, warn, info, debug, trace");
    EXPECT("log = { format = \"xml\"; };\n" MINI_PIPE, IK_E_CONFIG, 1, "log.format must be");
    EXPECT("admin = { listen = \"localhost\"; };\n" MINI_PIPE, IK_E_CONFIG, 1,
           "admin.listen must be HOST:PORT");
    EXPECT("admin = { listen = \"localhost:70000\"; };\n" MINI_PIPE, IK_E_CONFIG, 1,
           "admin.listen must be HOST:PORT");
    EXPECT("admin = { enabled = \"perhaps\"; };\n" MINI_PIPE, IK_E_CONFIG, 1,
           "admin.enabled must be a bool");
    EXPECT("plugin_path = 5;\n" MINI_PIPE, IK_E_CONFIG, 1,
           "plugin_path must be a string or a list");
    EXPECT("plugin_path = [ \"a\", \"\" ];\n" MINI_PIPE, IK_E_CONFIG, 1, "plugin_path[1] is empty");
}

static void test_numbers_in_many_forms(void)
{
    unset_seeds();
    setenv("IKT_INFL", "77", 1);
    setenv("IKT_WAIT", "250ms", 1);
    setenv("IKT_ON", "yes", 1);
    ik_config *cfg = load_ok("admin = { enabled = \"${IKT_ON}\"; };\n"
                             "shutdown_timeout = 1.5;\n"
                             "pipelines = ( { name = \"p\"; inflight_limit = \"${IKT_INFL}\";\n"
                             "  max_record_size = 4096;\n"
                             "  health_window = 90;\n"
                             "  batch = { max_wait = \"${IKT_WAIT}\"; max_items = \"12\";\n"
                             "            max_cost = 9000000000L; };\n"
                             "  source = { plugin = \"file\"; concurrency = \"3\"; };\n"
                             "  sinks = ( { plugin = \"stdout\"; } ); } );\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    ik_pipeline_spec *p = &cfg->pipelines[0];
    CU_ASSERT_EQUAL(cfg->admin_enabled, 1);
    CU_ASSERT_EQUAL(cfg->shutdown_timeout_ms, 1500);
    CU_ASSERT_EQUAL(p->inflight_limit, 77);
    CU_ASSERT_EQUAL(p->max_record_size, 4096);
    CU_ASSERT_EQUAL(p->health_window_ms, 90000);
    CU_ASSERT_EQUAL(p->batch.max_wait_ms, 250);
    CU_ASSERT_EQUAL(p->batch.max_items, 12);
    CU_ASSERT_EQUAL(p->batch.max_cost, 9000000000ull);
    CU_ASSERT_EQUAL(p->source.concurrency, 3);
    ik_config_free(cfg);

    /* an expanded value that does not parse shows the expansion */
    setenv("IKT_BAD", "many", 1);
    EXPECT("pipelines = ( { name = \"p\";\n  inflight_limit = \"${IKT_BAD}\";\n"
           "  source = { plugin = \"file\"; }; sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 2, "must be an integer, got the string \"many\"");
}

static void test_retry_default_cap(void)
{
    ik_config *cfg = load_ok("pipelines = ( { name = \"p\"; retry = { initial_backoff = \"2m\"; "
                             "};\n"
                             "  source = { plugin = \"file\"; }; sinks = ( { plugin = \"stdout\"; "
                             "} ); } );\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(cfg->pipelines[0].retry.initial_backoff_ms, 120000);
    CU_ASSERT_EQUAL(cfg->pipelines[0].retry.max_backoff_ms, 120000);
    ik_config_free(cfg);
}

static void test_variables(void)
{
    unsetenv("IKT_UNSET_VAR");
    setenv("IKT_PNAME", "from_env", 1);
    EXPECT(MINI_PIPE "\nlog = {\n  level = \"${IKT_UNSET_VAR}\"; };\n", IK_E_CONFIG, 4, "log.level",
           "variable IKT_UNSET_VAR is not set (write ${IKT_UNSET_VAR:-} to allow it "
           "empty)");
    EXPECT("pipelines = ( { name = \"p\";\n  source = { plugin = \"fi${le\"; };\n"
           "  sinks = ( { plugin = \"stdout\"; } ); } );\n",
           IK_E_CONFIG, 2, "unterminated \"${\"");
    ik_config *cfg = load_ok("log = { level = \"${IKT_UNSET_VAR:-warn}\"; };\n"
                             "pipelines = ( { name = \"${IKT_PNAME}\";\n"
                             "  source = { plugin = \"file\"; path = \"$${literal}\"; };\n"
                             "  sinks = ( { plugin = \"stdout\"; } ); } );\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(cfg->log_level, IK_LOG_WARN);
    CU_ASSERT_STRING_EQUAL(cfg->pipelines[0].name, "from_env");
    char *out = NULL;
    ik_err err;
    const config_setting_t *path =
        config_setting_get_member(cfg->pipelines[0].source.setting, "path");
    CU_ASSERT_EQUAL(ik_config_expand_string(path, &out, &err), 0);
    if (out)
        CU_ASSERT_STRING_EQUAL(out, "${literal}");
    free(out);
    ik_config_free(cfg);
}

static void test_config_dir_variable(void)
{
    setenv("INTAKE_CONFIG_DIR", "/stale", 1);
    ik_config *cfg =
        load_ok("pipelines = ( { name = \"p\";\n"
                "  source = { plugin = \"file\"; path = \"${INTAKE_CONFIG_DIR}/in\"; };\n"
                "  sinks = ( { plugin = \"stdout\"; } ); } );\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    char *out = NULL, want[PATH_MAX + 8];
    ik_err err;
    const config_setting_t *path =
        config_setting_get_member(cfg->pipelines[0].source.setting, "path");
    CU_ASSERT_EQUAL(ik_config_expand_string(path, &out, &err), 0);
    snprintf(want, sizeof want, "%s/in", casedir);
    if (out)
        CU_ASSERT_STRING_EQUAL(out, want); /* the folder of this config, not a stale value */
    free(out);
    ik_config_free(cfg);
}

static void test_env_file(void)
{
    unset_seeds();
    /* loaded before substitution, relative to the config's directory, and
     * the real environment wins over it */
    setenv("IKT_EF_REAL", "real", 1);
    unsetenv("IKT_EF_NAME");
    new_case();
    mkdir(casedir, 0700);
    char sub[PATH_MAX + 16];
    snprintf(sub, sizeof sub, "%s/etc", casedir);
    mkdir(sub, 0700);
    char envpath[PATH_MAX + 32], confpath[PATH_MAX + 32];
    snprintf(envpath, sizeof envpath, "%s/.env.local", sub);
    snprintf(confpath, sizeof confpath, "%s/demo.conf", sub);
    FILE *f = fopen(envpath, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("IKT_EF_NAME=fromfile\nIKT_EF_REAL=file\nMAX_BATCH_SIZE=7\n", f);
    fclose(f);
    f = fopen(confpath, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("env_file = \".env.local\";\n"
          "pipelines = ( { name = \"${IKT_EF_NAME}\"; source = { plugin = \"file\"; name = "
          "\"${IKT_EF_REAL}\"; };\n"
          "  sinks = ( { plugin = \"stdout\"; } ); } );\n",
          f);
    fclose(f);
    ik_config *cfg = NULL;
    ik_err err;
    int rc = ik_config_load(confpath, &cfg, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(cfg->env_file, envpath);
    CU_ASSERT_STRING_EQUAL(cfg->pipelines[0].name, "fromfile");
    CU_ASSERT_STRING_EQUAL(cfg->pipelines[0].source.name, "real");
    /* MAX_BATCH_SIZE from the env file is a seed default */
    CU_ASSERT_EQUAL(cfg->pipelines[0].batch.max_items, 7);
    ik_config_free(cfg);
    unset_seeds();
}

static void test_env_file_missing_and_bad(void)
{
    EXPECT("env_file = \"missing.env\";\n" MINI_PIPE, IK_E_NOTFOUND, 1, "missing.env",
           "env_file_optional = true");
    ik_config *cfg = load_ok("env_file = \"missing.env\";\nenv_file_optional = true;\n" MINI_PIPE);
    CU_ASSERT_PTR_NOT_NULL(cfg);
    if (cfg)
        CU_ASSERT_PTR_NULL(cfg->env_file);
    ik_config_free(cfg);

    new_case();
    write_case_file("bad.env", "IKT_OK=1\nthis is not a setting\n");
    write_case_file("main.conf", "env_file = \"bad.env\";\n" MINI_PIPE);
    char where[PATH_MAX + 32];
    snprintf(where, sizeof where, "%s/bad.env:2: ", casedir);
    const char *needles[] = {where, NULL};
    expect_current(IK_E_PARSE, 0, needles);
    EXPECT("env_file = 1;\n" MINI_PIPE, IK_E_CONFIG, 1, "env_file must be a string");
}

static void test_seed_variables(void)
{
    unset_seeds();
    setenv("MAX_BATCH_SIZE", "20", 1);
    setenv("BATCH_TIMEOUT_SECONDS", "3", 1);
    setenv("MAX_MESSAGE_SIZE_KB", "512", 1);
    ik_config *cfg = load_ok("pipelines = ( { name = \"p\"; source = { plugin = \"file\"; };\n"
                             "  processors = ( { plugin = \"llm\"; } );\n"
                             "  sinks = ( { plugin = \"stdout\"; } ); },\n"
                             "  { name = \"q\"; batch = { max_items = 3; }; max_record_size = "
                             "\"1K\";\n"
                             "  source = { plugin = \"file\"; };\n"
                             "  sinks = ( { plugin = \"stdout\"; } ); } );\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    ik_pipeline_spec *p = &cfg->pipelines[0];
    CU_ASSERT_EQUAL(p->batch.max_items, 20);
    CU_ASSERT_EQUAL(p->batch.max_wait_ms, 3000);
    CU_ASSERT_EQUAL(p->max_record_size, 512 * 1024);
    CU_ASSERT_EQUAL(p->processors[0].batch.max_items, 20);
    CU_ASSERT_EQUAL(p->processors[0].batch.max_wait_ms, 3000);
    CU_ASSERT_EQUAL(p->sinks[0].batch.max_items, 100); /* sinks keep their own default */
    /* explicit settings beat the seeds */
    CU_ASSERT_EQUAL(cfg->pipelines[1].batch.max_items, 3);
    CU_ASSERT_EQUAL(cfg->pipelines[1].batch.max_wait_ms, 3000);
    CU_ASSERT_EQUAL(cfg->pipelines[1].max_record_size, 1024);
    ik_config_free(cfg);

    unset_seeds();
    setenv("MAX_BATCH_SIZE", "fifty", 1);
    EXPECT(MINI_PIPE, IK_E_CONFIG, 0, "MAX_BATCH_SIZE=\"fifty\"");
    unset_seeds();
    setenv("MAX_BATCH_SIZE", "0", 1);
    EXPECT(MINI_PIPE, IK_E_CONFIG, 0, "MAX_BATCH_SIZE");
    unset_seeds();
    setenv("BATCH_TIMEOUT_SECONDS", "-3", 1);
    EXPECT(MINI_PIPE, IK_E_CONFIG, 0, "BATCH_TIMEOUT_SECONDS");
    unset_seeds();
    setenv("MAX_MESSAGE_SIZE_KB", "256K", 1);
    EXPECT(MINI_PIPE, IK_E_CONFIG, 0, "MAX_MESSAGE_SIZE_KB");
    unset_seeds();
    setenv("MAX_MESSAGE_SIZE_KB", "18014398509481984", 1); /* * 1024 overflows */
    EXPECT(MINI_PIPE, IK_E_CONFIG, 0, "MAX_MESSAGE_SIZE_KB");
    unset_seeds();
    /* empty counts as unset */
    setenv("MAX_BATCH_SIZE", "", 1);
    cfg = load_ok(MINI_PIPE);
    CU_ASSERT_PTR_NOT_NULL(cfg);
    if (cfg)
        CU_ASSERT_EQUAL(cfg->pipelines[0].batch.max_items, 50);
    ik_config_free(cfg);
    unset_seeds();
}

static void test_include_file_name(void)
{
    new_case();
    write_case_file("inc.conf", "log = { level = \"info\"; };\nadmin = {\n  port = 1; };\n");
    write_case_file("main.conf", "@include \"inc.conf\"\n" MINI_PIPE);
    const char *needles[] = {"inc.conf:3: ", "unknown setting 'port' in admin", NULL};
    expect_current(IK_E_CONFIG, 0, needles);
    /* and an error in the main file after the include still names main.conf */
    write_case_file("inc.conf", "log = { level = \"info\"; };\n");
    write_case_file("main.conf", "@include \"inc.conf\"\nbad_key = 1;\n" MINI_PIPE);
    const char *needles2[] = {"unknown setting 'bad_key'", NULL};
    expect_current(IK_E_CONFIG, 2, needles2);
}

static void test_include_paths(void)
{
    /* an absolute name is taken as it is, not joined to the config's folder */
    new_case();
    char other[PATH_MAX], part[PATH_MAX + 32], text[2 * PATH_MAX];
    snprintf(other, sizeof other, "%s/elsewhere", casedir);
    mkdir(other, 0700);
    snprintf(part, sizeof part, "%s/part.conf", other);
    write_case_file("elsewhere/part.conf", "log = { level = \"debug\"; };\n");
    snprintf(text, sizeof text, "@include \"%s\"\n" MINI_PIPE, part);
    write_case_file("main.conf", text);
    ik_config *cfg = NULL;
    ik_err err;
    ik_err_clear(&err);
    CU_ASSERT_EQUAL(ik_config_load(mainconf, &cfg, &err), 0);
    if (cfg) {
        CU_ASSERT_EQUAL(cfg->log_level, IK_LOG_DEBUG);
    } else {
        fprintf(stderr, "\nabsolute include: %s\n", err.msg);
    }
    ik_config_free(cfg);
    /* and an error inside it names that file and line */
    write_case_file("elsewhere/part.conf", "log = { level = \"debug\";\n  colour = 1; };\n");
    char where[PATH_MAX + 48];
    snprintf(where, sizeof where, "%s:2: ", part);
    const char *n1[] = {where, "unknown setting 'colour' in log", NULL};
    expect_current(IK_E_CONFIG, 0, n1);

    /* a relative name is relative to the folder of the file that includes it */
    new_case();
    char sub[PATH_MAX];
    snprintf(sub, sizeof sub, "%s/sub", casedir);
    mkdir(sub, 0700);
    write_case_file("sub/a.conf", "# a.conf includes its neighbour\n@include \"b.conf\"\n");
    write_case_file("sub/b.conf", "log = { level = \"warn\"; };\n");
    write_case_file("main.conf", "@include \"sub/a.conf\"\n" MINI_PIPE);
    cfg = NULL;
    CU_ASSERT_EQUAL(ik_config_load(mainconf, &cfg, &err), 0);
    if (cfg) {
        CU_ASSERT_EQUAL(cfg->log_level, IK_LOG_WARN);
    } else {
        fprintf(stderr, "\nnested relative include: %s\n", err.msg);
    }
    ik_config_free(cfg);

    /* a missing include names the file it looked for and the line asking */
    new_case();
    write_case_file("main.conf", "# first line\n@include \"nope.conf\"\n" MINI_PIPE);
    char looked[PATH_MAX + 32];
    snprintf(looked, sizeof looked, "'%s/nope.conf'", casedir);
    const char *n2[] = {"@include \"nope.conf\"", looked, "No such file", NULL};
    expect_current(IK_E_NOTFOUND, 2, n2);
}

static void test_include_lines(void)
{
    /* lines after a multi-line include are the including file's own */
    new_case();
    write_case_file("inc.conf", "log = {\n  level = \"info\";\n};\n");
    write_case_file("main.conf", "\n@include \"inc.conf\"\nbad_key = 1;\n" MINI_PIPE);
    const char *n1[] = {"unknown setting 'bad_key'", NULL};
    expect_current(IK_E_CONFIG, 3, n1);
    /* a syntax error inside an include is on the include's line */
    write_case_file("inc.conf", "log = {\n  level = ;\n};\n");
    const char *n2[] = {"inc.conf:2: ", "syntax error", NULL};
    expect_current(IK_E_CONFIG, 0, n2);
    /* an include without a final newline ends its own last line */
    write_case_file("inc.conf", "log = { level = \"error\"; }; # no newline");
    write_case_file("main.conf", "@include \"inc.conf\"\n" MINI_PIPE);
    ik_config *cfg = NULL;
    ik_err err;
    CU_ASSERT_EQUAL(ik_config_load(mainconf, &cfg, &err), 0);
    if (cfg) {
        CU_ASSERT_EQUAL(cfg->log_level, IK_LOG_ERROR);
        CU_ASSERT_EQUAL(cfg->pipelines[0].line, 2);
        CU_ASSERT_STRING_EQUAL(cfg->pipelines[0].file, mainconf);
    }
    ik_config_free(cfg);
    /* @include inside a comment or a string is text, not a directive */
    cfg = load_ok("/*\n@include \"nope.conf\"\n*/\n# @include \"nope.conf\"\n"
                  "pipelines = ( { name = \"p\"; sinks = ( { plugin = \"stdout\"; } );\n"
                  "  source = { plugin = \"file\"; note = \"\n@include \\\"nope.conf\\\"\"; }; "
                  "} );\n");
    ik_config_free(cfg);
}

static void test_include_refusals(void)
{
    EXPECT("@include \"inc.conf\" log = { };\n" MINI_PIPE, IK_E_CONFIG, 1,
           "only a # or // comment may follow it");
    EXPECT("@include \"\"\n" MINI_PIPE, IK_E_CONFIG, 1, "file name is empty");
    EXPECT("@include \"inc.conf\n\"\n" MINI_PIPE, IK_E_CONFIG, 1, "no closing");
    /* a cycle */
    new_case();
    write_case_file("a.conf", "@include \"main.conf\"\n");
    write_case_file("main.conf", "@include \"a.conf\"\n" MINI_PIPE);
    char where[PATH_MAX + 48];
    snprintf(where, sizeof where, "%s/a.conf:1: ", casedir);
    const char *n1[] = {where, "include cycle", NULL};
    expect_current(IK_E_CONFIG, 0, n1);
    /* an include that leaves a string open would swallow the next lines */
    write_case_file("a.conf", "log = { level = \"info\n");
    write_case_file("main.conf", "@include \"a.conf\"\n" MINI_PIPE);
    snprintf(where, sizeof where, "%s/a.conf:1: ", casedir);
    const char *n2[] = {where, "a string opened here is not closed", NULL};
    expect_current(IK_E_CONFIG, 0, n2);
    /* a folder */
    new_case();
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/adir", casedir);
    mkdir(dir, 0700);
    write_case_file("main.conf", "@include \"adir\"\n" MINI_PIPE);
    const char *n3[] = {"adir", "is a directory", NULL};
    expect_current(IK_E_IO, 1, n3);
}

/* Includes nest at most 10 deep (IK_CONFIG_MAX_DEPTH), counted from the
 * config itself, whether it comes from a file or a string. */
static void test_include_depth(void)
{
    new_case();
    char name[32], text[64];
    for (int k = 1; k <= 11; k++) {
        snprintf(name, sizeof name, "inc%d.conf", k);
        if (k < 11)
            snprintf(text, sizeof text, "@include \"inc%d.conf\"\n", k + 1);
        else
            snprintf(text, sizeof text, "log = { level = \"warn\"; };\n");
        write_case_file(name, text);
    }
    /* 10 levels: main includes inc2, ..., inc10 includes inc11 */
    write_case_file("main.conf", "@include \"inc2.conf\"\n" MINI_PIPE);
    ik_config *cfg = NULL;
    ik_err err;
    ik_err_clear(&err);
    CU_ASSERT_EQUAL(ik_config_load(mainconf, &cfg, &err), 0);
    if (cfg)
        CU_ASSERT_EQUAL(cfg->log_level, IK_LOG_WARN);
    ik_config_free(cfg);
    /* 11 levels */
    write_case_file("main.conf", "@include \"inc1.conf\"\n" MINI_PIPE);
    char where[PATH_MAX + 48];
    snprintf(where, sizeof where, "%s/inc10.conf:1: ", casedir);
    const char *n1[] = {where, "includes nest deeper than 10 levels", NULL};
    expect_current(IK_E_CONFIG, 0, n1);
    /* the same as a string, naming the parts by absolute path */
    char main_text[PATH_MAX + 256];
    for (int first = 2; first >= 1; first--) {
        snprintf(main_text, sizeof main_text, "@include \"%s/inc%d.conf\"\n" MINI_PIPE, casedir,
                 first);
        cfg = (ik_config *)0x1;
        ik_err_clear(&err);
        int rc = ik_config_load_string(main_text, "string.conf", &cfg, &err);
        CU_ASSERT_EQUAL(rc, first == 2 ? 0 : IK_E_CONFIG);
        if (first == 1)
            CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "includes nest deeper than 10 levels"));
        if (rc != (first == 2 ? 0 : IK_E_CONFIG))
            fprintf(stderr, "\nstring, %d levels: rc %d: %s\n", 12 - first, rc, err.msg);
        ik_config_free(rc == 0 ? cfg : NULL);
    }
}

/* Before the fix libconfig opened a FIFO and waited for a writer for good:
 * the alarm turns such a hang into a failed test. */
static void test_include_fifo(void)
{
    new_case();
    char fifo[PATH_MAX + 32];
    snprintf(fifo, sizeof fifo, "%s/fifo.conf", casedir);
    CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
    write_case_file("main.conf", "@include \"fifo.conf\"\n" MINI_PIPE);
    alarm(60);
    const char *n1[] = {"@include \"fifo.conf\"", fifo, "not a regular file (a FIFO)", NULL};
    expect_current(IK_E_IO, 1, n1);
    /* the config file itself */
    ik_config *cfg = (ik_config *)0x1;
    ik_err err;
    CU_ASSERT_EQUAL(ik_config_load(fifo, &cfg, &err), IK_E_IO);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not a regular file"));
    alarm(0);
}

/* A file of `size` bytes: MINI_PIPE, then `#` comment lines. */
static char *filler(size_t size)
{
    char *t = malloc(size + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    size_t n = strlen(MINI_PIPE);
    memcpy(t, MINI_PIPE, n);
    while (n < size) {
        size_t line = size - n < 80 ? size - n : 80;
        memset(t + n, '#', line);
        t[n + line - 1] = '\n';
        n += line;
    }
    t[size] = '\0';
    return t;
}

static void test_size_limits(void)
{
    const size_t limit = 1048576; /* documented in README: 1 MiB */
    char *text = filler(limit);
    ik_config *cfg = load_ok(text); /* at the limit: fine */
    ik_config_free(cfg);
    free(text);
    text = filler(limit + 1);
    new_case();
    write_case_file("main.conf", text);
    const char *n1[] = {mainconf, "1048577 bytes", "at most 1 MiB", NULL};
    expect_current(IK_E_TOOBIG, 0, n1);
    /* the same as a string */
    cfg = (ik_config *)0x1;
    ik_err err;
    CU_ASSERT_EQUAL(ik_config_load_string(text, "big.conf", &cfg, &err), IK_E_TOOBIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "big.conf"));
    free(text);
    /* the file with its includes, in total */
    new_case();
    char *half = filler(limit / 2 + 200);
    write_case_file("half.conf", half + strlen(MINI_PIPE));
    half[strlen(MINI_PIPE)] = '\0';
    char main_text[512];
    snprintf(main_text, sizeof main_text, "@include \"half.conf\"\n@include \"half.conf\"\n%s",
             half);
    write_case_file("main.conf", main_text);
    free(half);
    const char *n2[] = {"half.conf", "more than 1 MiB", "in total", NULL};
    expect_current(IK_E_TOOBIG, 2, n2);
}

/* libconfig takes quadratic time over the members of a group: a cap on
 * settings keeps a 1 MiB file from taking a minute. */
static void test_settings_limit(void)
{
    const size_t limit = 10000; /* documented in README */
    size_t in_mini = 6;         /* the other '=' */
    char *t = malloc(limit * 24 + 512);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    size_t n = (size_t)sprintf(t, "pipelines = ( { name = \"p\"; sinks = ( { plugin = "
                                  "\"stdout\"; } );\n source = { plugin = \"file\";\n");
    for (size_t i = 0; i < limit - in_mini; i++)
        n += (size_t)sprintf(t + n, "  o%zu = %zu;\n", i, i);
    strcpy(t + n, "}; } );\n");
    ik_config *cfg = load_ok(t); /* options of a stage are options.c's business */
    ik_config_free(cfg);
    sprintf(t + n, "  one_more = 1;\n}; } );\n");
    new_case();
    write_case_file("main.conf", t);
    free(t);
    const char *n1[] = {"more than 10000 settings", NULL};
    expect_current(IK_E_TOOBIG, (int)(limit - in_mini + 3), n1);
}

static void test_syntax_and_missing_file(void)
{
    EXPECT("log = { level = \"info\" }\npipelines = (;\n", IK_E_CONFIG, 2, "syntax error");
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/nope.conf", tmpdir);
    ik_config *cfg = (ik_config *)0x1;
    ik_err err;
    CU_ASSERT_EQUAL(ik_config_load(path, &cfg, &err), IK_E_NOTFOUND);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    CU_ASSERT_EQUAL(ik_config_load(tmpdir, &cfg, &err), IK_E_IO);
    CU_ASSERT_EQUAL(ik_config_load(NULL, &cfg, &err), IK_E_INVAL);
    ik_config_free(NULL);
}

static void test_load_string_and_helpers(void)
{
    ik_config *cfg = NULL;
    ik_err err;
    char name[PATH_MAX + 32];
    snprintf(name, sizeof name, "%s/virtual.conf", tmpdir);
    setenv("IKT_HELPER", "expanded", 1);
    int rc = ik_config_load_string("pipelines = ( { name = \"p\";\n"
                                   "  source = { plugin = \"file\"; path = \"${IKT_HELPER}/x\"; "
                                   "n = 5; };\n"
                                   "  sinks = ( { plugin = \"stdout\"; } ); } );\n",
                                   name, &cfg, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(cfg->dir, tmpdir);
    const config_setting_t *path =
        config_setting_get_member(cfg->pipelines[0].source.setting, "path");
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    char *out = NULL;
    CU_ASSERT_EQUAL(ik_config_expand_string(path, &out, &err), 0);
    CU_ASSERT_STRING_EQUAL(out, "expanded/x");
    free(out);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s:2", name);
    CU_ASSERT_STRING_EQUAL(ik_config_where(path), want);
    CU_ASSERT_STRING_EQUAL(cfg->pipelines[0].source.file, name);
    const config_setting_t *n = config_setting_get_member(cfg->pipelines[0].source.setting, "n");
    out = NULL;
    CU_ASSERT_EQUAL(ik_config_expand_string(n, &out, &err), IK_E_CONFIG);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, want));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'n' must be a string, got the integer 5"));
    ik_config_free(cfg);

    /* errors in a string config carry its name */
    cfg = (ik_config *)0x1;
    rc = ik_config_load_string("oops = 1;\n" MINI_PIPE, "given-name.conf", &cfg, &err);
    CU_ASSERT_EQUAL(rc, IK_E_CONFIG);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(strncmp(err.msg, "given-name.conf:1: ", 19), 0);
    rc = ik_config_load_string("a = (;", NULL, &cfg, &err);
    CU_ASSERT_EQUAL(rc, IK_E_CONFIG);
    CU_ASSERT_EQUAL(strncmp(err.msg, "<string>:1: ", 12), 0);
}

static int suite_init(void)
{
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int suite_clean(void)
{
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("config", suite_init, suite_clean);
    if (!s) {
        CU_cleanup_registry();
        return 1;
    }
    CU_add_test(s, "minimal file and defaults", test_minimal_defaults);
    CU_add_test(s, "full example", test_full_example);
    CU_add_test(s, "unknown keys with line numbers", test_unknown_keys);
    CU_add_test(s, "stage options left for options.c", test_stage_options_left_alone);
    CU_add_test(s, "structure errors", test_structure_errors);
    CU_add_test(s, "duplicate names and numbering", test_duplicate_names);
    CU_add_test(s, "ranges and types", test_ranges_and_types);
    CU_add_test(s, "numbers as ints, floats and strings", test_numbers_in_many_forms);
    CU_add_test(s, "retry cap follows initial backoff", test_retry_default_cap);
    CU_add_test(s, "variables", test_variables);
    CU_add_test(s, "INTAKE_CONFIG_DIR is the config's folder", test_config_dir_variable);
    CU_add_test(s, "env_file", test_env_file);
    CU_add_test(s, "env_file missing, optional, malformed", test_env_file_missing_and_bad);
    CU_add_test(s, "seed variables", test_seed_variables);
    CU_add_test(s, "@include file name in errors", test_include_file_name);
    CU_add_test(s, "@include absolute and relative paths", test_include_paths);
    CU_add_test(s, "@include keeps file:line", test_include_lines);
    CU_add_test(s, "@include lines refused", test_include_refusals);
    CU_add_test(s, "@include nests at most 10 deep", test_include_depth);
    CU_add_test(s, "@include of a FIFO does not block", test_include_fifo);
    CU_add_test(s, "config size limits", test_size_limits);
    CU_add_test(s, "config settings limit", test_settings_limit);
    CU_add_test(s, "syntax error and missing file", test_syntax_and_missing_file);
    CU_add_test(s, "load_string, where, expand_string", test_load_string_and_helpers);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    unsigned errs = CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return (fails > 0 || errs > 0) ? 1 : 0;
}
