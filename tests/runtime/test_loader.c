/*
 * test_loader.c: every way loading a plugin can fail, each with its own code
 * and a message that says what and where; and the config-level checks that
 * sit on the loader (kind mismatch, unknown plugin) naming file and line.
 * Needs the build's plugins: INTAKE_TEST_BUILD is set by CTest.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "loader.h"
#include "optable.h"

static char build[1024], tmpdir[256];

static void path_of(char *out, size_t len, const char *rel)
{
    snprintf(out, len, "%s/%s", build, rel);
}

static int engine_error(const char *text, ik_err *err, char *path, size_t len);
static void expect_open(const char *rel, int code, const char *needle1, const char *needle2);

static void test_good_plugin(void)
{
    char dir[1100];
    path_of(dir, sizeof dir, "plugins");
    char *dirs[] = {dir};
    ik_loader *l = ik_loader_new(dirs, 1);
    const ik_loaded_plugin *p = NULL, *again = NULL;
    ik_err err = {0};
    CU_ASSERT_EQUAL_FATAL(ik_loader_get(l, "stdout", IK_KIND_SINK, &p, &err), 0);
    CU_ASSERT_EQUAL(p->desc.kind, IK_KIND_SINK);
    CU_ASSERT_STRING_EQUAL(p->desc.name, "stdout");
    CU_ASSERT_EQUAL(ik_loader_get(l, "stdout", IK_KIND_SINK, &again, &err), 0);
    CU_ASSERT_PTR_EQUAL(p, again);
    ik_loader_free(l);
}

/* A loader over the build's test plugins and the bad ones. */
static ik_loader *test_plugins_loader(void)
{
    char good[1100], bad[1100];
    path_of(good, sizeof good, "tests/plugins");
    path_of(bad, sizeof bad, "tests/plugins-bad");
    char *dirs[] = {good, bad};
    return ik_loader_new(dirs, 2);
}

/* SDK 2.2: one file, a source and a sink under one name, each asked for by
 * kind; the list wins over the file's ik_plugin_entry (its sink alone). */
static void test_two_kinds_one_name(void)
{
    ik_loader *l = test_plugins_loader();
    const ik_loaded_plugin *src = NULL, *sink = NULL, *again = NULL;
    ik_err err = {0};
    CU_ASSERT_EQUAL_FATAL(ik_loader_get(l, "test_twokind", IK_KIND_SOURCE, &src, &err), 0);
    CU_ASSERT_EQUAL_FATAL(ik_loader_get(l, "test_twokind", IK_KIND_SINK, &sink, &err), 0);
    CU_ASSERT_EQUAL(src->desc.kind, IK_KIND_SOURCE);
    CU_ASSERT_PTR_NOT_NULL(src->desc.run);
    CU_ASSERT_EQUAL(sink->desc.kind, IK_KIND_SINK);
    CU_ASSERT_PTR_NOT_NULL(sink->desc.write);
    CU_ASSERT_STRING_EQUAL(src->desc.name, "test_twokind");
    CU_ASSERT_STRING_EQUAL(sink->desc.name, "test_twokind");
    CU_ASSERT_STRING_EQUAL(src->path, sink->path);
    /* each kind has its own option table */
    CU_ASSERT_STRING_EQUAL(src->desc.options[0].name, "count");
    CU_ASSERT_STRING_EQUAL(sink->desc.options[0].name, "path");
    CU_ASSERT_EQUAL(ik_loader_get(l, "test_twokind", IK_KIND_SINK, &again, &err), 0);
    CU_ASSERT_PTR_EQUAL(again, sink);
    CU_ASSERT_EQUAL(ik_loader_get(l, "test_twokind", IK_KIND_SOURCE, &again, &err), 0);
    CU_ASSERT_PTR_EQUAL(again, src);
    ik_loader_free(l);
}

/* A kind the file does not provide: what it provides instead. */
static void test_missing_kind_refused(void)
{
    ik_loader *l = test_plugins_loader();
    const ik_loaded_plugin *p = NULL;
    ik_err err = {0};
    CU_ASSERT_EQUAL(ik_loader_get(l, "test_twokind", IK_KIND_PROCESSOR, &p, &err), IK_E_CONFIG);
    CU_ASSERT_PTR_NULL(p);
    if (!strstr(err.msg, "plugin 'test_twokind' has no processor (it provides: source, sink)"))
        fprintf(stderr, "\nmissing kind: %s\n", err.msg);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(err.msg, "plugin 'test_twokind' has no processor (it provides: source, sink)"));
    /* a file of one kind keeps the message engines gave before SDK 2.2 */
    CU_ASSERT_EQUAL(ik_loader_get(l, "test_onekind21", IK_KIND_SOURCE, &p, &err), IK_E_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(err.msg, "plugin 'test_onekind21' is a sink and cannot be used as a source"));
    ik_loader_free(l);
}

/* A plugin of one kind through ik_plugin_entry, declaring ABI 2.1, as built
 * before SDK 2.2: loads as before, through the cache and directly. */
static void test_old_single_entry_loads(void)
{
    ik_loader *l = test_plugins_loader();
    const ik_loaded_plugin *p = NULL;
    ik_err err = {0};
    CU_ASSERT_EQUAL_FATAL(ik_loader_get(l, "test_onekind21", IK_KIND_SINK, &p, &err), 0);
    CU_ASSERT_EQUAL(p->desc.kind, IK_KIND_SINK);
    CU_ASSERT_EQUAL(p->desc.abi_minor, 1);
    CU_ASSERT_PTR_NULL(p->next);
    ik_loader_free(l);
    char path[1100];
    path_of(path, sizeof path, "tests/plugins/intake-test_onekind21.so");
    ik_loaded_plugin *f = NULL;
    CU_ASSERT_EQUAL_FATAL(ik_loader_open_file(path, NULL, &f, &err), 0);
    CU_ASSERT_STRING_EQUAL(f->desc.name, "test_onekind21");
    CU_ASSERT_PTR_NULL(f->next);
    ik_loaded_plugin_free(f);
}

/* ik_loader_open_file hands back the whole file: its kinds in order. */
static void test_open_file_chains_kinds(void)
{
    char path[1100];
    path_of(path, sizeof path, "tests/plugins/intake-test_twokind.so");
    ik_loaded_plugin *f = NULL;
    ik_err err = {0};
    CU_ASSERT_EQUAL_FATAL(ik_loader_open_file(path, "test_twokind", &f, &err), 0);
    CU_ASSERT_EQUAL(f->desc.kind, IK_KIND_SOURCE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->next);
    CU_ASSERT_EQUAL(f->next->desc.kind, IK_KIND_SINK);
    CU_ASSERT_PTR_NULL(f->next->next);
    ik_loaded_plugin_free(f);
}

/* A list of kinds that does not hold together is refused as a whole. */
static void test_bad_kind_lists_refused(void)
{
    expect_open("tests/plugins-bad/intake-twokind_dup.so", IK_E_INVAL,
                "ik_plugin_entries() lists two sink descriptors of plugin 'twokind_dup'",
                "at most one of each kind");
    expect_open("tests/plugins-bad/intake-twokind_names.so", IK_E_INVAL,
                "ik_plugin_entries() lists plugins named 'twokind_names' and 'other_name'",
                "one name");
    expect_open("tests/plugins-bad/intake-twokind_empty.so", IK_E_INVAL,
                "ik_plugin_entries() lists no descriptor", NULL);
    /* every descriptor is checked, not only the first */
    expect_open("tests/plugins-bad/intake-twokind_badopt.so", IK_E_INVAL, "plugin 'twokind_badopt'",
                "declares option 'path' twice");
    /* through the search path too, and nothing of the file is kept */
    ik_loader *l = test_plugins_loader();
    const ik_loaded_plugin *p = NULL;
    ik_err err = {0};
    CU_ASSERT_EQUAL(ik_loader_get(l, "twokind_dup", IK_KIND_SOURCE, &p, &err), IK_E_INVAL);
    CU_ASSERT_EQUAL(ik_loader_get(l, "twokind_dup", IK_KIND_SINK, &p, &err), IK_E_INVAL);
    CU_ASSERT_PTR_NULL(p);
    ik_loader_free(l);
}

static void test_not_found_lists_dirs(void)
{
    char *dirs[] = {"/nonexistent/one", "/nonexistent/two"};
    ik_loader *l = ik_loader_new(dirs, 2);
    const ik_loaded_plugin *p = NULL;
    ik_err err = {0};
    CU_ASSERT_EQUAL(ik_loader_get(l, "nosuch", IK_KIND_SINK, &p, &err), IK_E_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "intake-nosuch.so"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/nonexistent/one"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/nonexistent/two"));
    CU_ASSERT_EQUAL(ik_loader_get(l, "../etc", IK_KIND_SINK, &p, &err), IK_E_NOTFOUND);
    ik_loader_free(l);
}

static void expect_open(const char *rel, int code, const char *needle1, const char *needle2)
{
    char path[1100];
    path_of(path, sizeof path, rel);
    ik_loaded_plugin *p = NULL;
    ik_err err = {0};
    int rc = ik_loader_open_file(path, NULL, &p, &err);
    CU_ASSERT_EQUAL(rc, code);
    CU_ASSERT_PTR_NULL(p);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    if (needle1 && !strstr(err.msg, needle1))
        fprintf(stderr, "message lacks '%s': %s\n", needle1, err.msg);
    CU_ASSERT_PTR_NOT_NULL(needle1 ? strstr(err.msg, needle1) : err.msg);
    CU_ASSERT_PTR_NOT_NULL(needle2 ? strstr(err.msg, needle2) : err.msg);
    ik_loaded_plugin_free(p);
}

static void test_not_plugin(void)
{
    expect_open("tests/plugins-bad/intake-not_plugin.so", IK_E_NOTPLUGIN, "ik_plugin_entry",
                "not an Intake plugin");
}

static void test_bad_magic(void)
{
    expect_open("tests/plugins-bad/intake-bad_magic.so", IK_E_MAGIC, "magic", "0x494b504c");
}

static void test_abi_mismatch_names_both(void)
{
    char want[64], have[64];
    snprintf(want, sizeof want, "ABI %d.", IK_ABI_MAJOR + 1);
    snprintf(have, sizeof have, "ABI %d.%d", IK_ABI_MAJOR, IK_ABI_MINOR);
    expect_open("tests/plugins-bad/intake-bad_abi.so", IK_E_ABI, want, have);
}

/* An ABI 1.x plugin is refused, with a message that says to rebuild it
 * against SDK 2.0. */
static void test_abi1_refused(void)
{
    char want[64];
    snprintf(want, sizeof want, "rebuild the plugin against SDK %d.%d", IK_ABI_MAJOR, IK_ABI_MINOR);
    expect_open("tests/plugins/intake-test_abi10.so", IK_E_ABI, "built for Intake plugin ABI 1.0",
                want);
}

/* Each defect of an option table or build record, refused at load, naming
 * the plugin and the option (bad_limits.c). */
static void test_bad_tables_refused(void)
{
    expect_open("tests/plugins-bad/intake-bad_limits.so", IK_E_INVAL,
                "plugin 'bad_limits' declares a range for option 'label'", "not numeric");
    expect_open("tests/plugins-bad/intake-bad_offset.so", IK_E_INVAL,
                "plugin 'bad_offset' option 'label' is bound at offset",
                "outside its config struct");
    expect_open("tests/plugins-bad/intake-bad_dup.so", IK_E_INVAL, "plugin 'bad_dup'",
                "declares option 'size' twice");
    expect_open("tests/plugins-bad/intake-bad_engine_key.so", IK_E_INVAL,
                "plugin 'bad_engine_key' declares option 'concurrency'", "engine key");
    char want[80];
    snprintf(want, sizeof want, "built against json-c %d, this engine uses json-c %d",
             JSON_C_MAJOR_VERSION + 1, JSON_C_MAJOR_VERSION);
    expect_open("tests/plugins-bad/intake-bad_jsonc.so", IK_E_ABI, "plugin 'bad_jsonc'", want);
}

typedef struct lr_config {
    int64_t n;
    double d;
    uint64_t w, z;
    const char *s;
    int b, c;
} lr_config;

static const char *const lr_choices[] = {"a", "b", NULL};

/* Each rule an option table must keep, checked at load (optable.h). */
static void test_limits_rules(void)
{
#define OPT_N(...)                                                                                 \
    {                                                                                              \
        "n", IK_OPT_INT, "5", 0, NULL, IK_OPT_AT(lr_config, n), __VA_ARGS__                        \
    }
#define OPT_W(...)                                                                                 \
    {                                                                                              \
        "w", IK_OPT_DURATION, "1s", 0, NULL, IK_OPT_AT(lr_config, w), __VA_ARGS__                  \
    }
    struct {
        ik_option t[3];
        const char *needle; /* NULL: accepted */
    } cases[] = {
        {{OPT_N(.min = "0", .max = "10"),
          {"d", IK_OPT_DOUBLE, NULL, 0, NULL, IK_OPT_AT(lr_config, d), .min = "-1.5"}},
         NULL},
        {{OPT_W(.min = "100ms", .max = "1h"),
          {"z", IK_OPT_SIZE, "${IKT_Z:-1G}", 0, NULL, IK_OPT_AT(lr_config, z), .max = "1K"}},
         NULL}, /* ${} default */
        {{{"s", IK_OPT_STRING, "x", 0, NULL, IK_OPT_AT(lr_config, s), .min = "0", .max = "1"}},
         "option 's', which is not numeric"},
        {{{"b", IK_OPT_BOOL, "true", 0, NULL, IK_OPT_AT(lr_config, b), .min = "0"}},
         "option 'b', which is not numeric"},
        {{OPT_N(.min = "zero")}, "limit \"zero\" of option 'n' is not a valid int"},
        {{OPT_W(.max = "5 sec")}, "not a valid duration"},
        {{OPT_N(.min = "10", .max = "1")}, "minimum 10 above its maximum 1"},
        {{OPT_N(.min = "6")}, "default \"5\" of option 'n' is outside"},
        {{OPT_W(.max = "999ms")}, "default \"1s\" of option 'w' is outside"},
        {{OPT_N(.min = NULL), OPT_N(.min = NULL)}, "declares option 'n' twice"},
        {{{"batch", IK_OPT_INT, NULL, 0, NULL, IK_OPT_AT(lr_config, n)}},
         "declares option 'batch', which is an engine key"},
        {{{"name", IK_OPT_STRING, NULL, 0, NULL, IK_OPT_AT(lr_config, s)}},
         "declares option 'name', which is an engine key"},
        {{{"n", IK_OPT_INT, NULL, 0, NULL, .offset = sizeof(lr_config) - 4}},
         "option 'n' is bound at offset"},
        {{{"n", IK_OPT_INT, NULL, 0, NULL, .offset = 1}}, "not aligned"},
        {{{"c", IK_OPT_CHOICE, "a", 0, NULL, IK_OPT_AT(lr_config, c)}},
         "choice option 'c' has no choices"},
        {{{"c", IK_OPT_CHOICE, "z", 0, NULL, IK_OPT_AT(lr_config, c), .choices = lr_choices}},
         "default \"z\" of option 'c' is not one of its choices"},
        {{{"s", IK_OPT_STRING, "a", 0, NULL, IK_OPT_AT(lr_config, s), .choices = lr_choices}},
         "lists choices but is not a choice option"},
        {{{"c", IK_OPT_CHOICE, "b", 0, NULL, IK_OPT_AT(lr_config, c), .choices = lr_choices}},
         NULL},
    };
#undef OPT_N
#undef OPT_W
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ik_plugin d = {IK_PLUGIN_HEAD, .name = "x", .options = cases[i].t,
                       .config_size = sizeof(lr_config)};
        ik_err err = {0};
        ik_option *copy = NULL;
        int rc = ik_optable_load(&d, "/p/intake-x.so", &copy, &err);
        int ok = cases[i].needle ? rc == IK_E_INVAL && strstr(err.msg, "/p/intake-x.so: ") &&
                                       strstr(err.msg, cases[i].needle) && !copy
                                 : rc == 0 && copy && copy[0].name;
        if (!ok)
            fprintf(stderr, "\noption table case %zu: rc %d: %s\n", i, rc, err.msg);
        CU_ASSERT(ok);
        free(copy);
    }
}

/* Options reach a plugin only through its config struct: a table with
 * options and config_size 0 is refused at load, naming the plugin and the
 * option; a plugin without options may have no config struct. */
static void test_options_need_config(void)
{
    static const ik_option t[] = {
        {"n", IK_OPT_INT, "5", 0, NULL, IK_OPT_AT(lr_config, n)},
        {0},
    };
    static const ik_option empty[] = {{0}};
    ik_plugin d = {IK_PLUGIN_HEAD, .name = "x", .options = t};
    ik_err err = {0};
    ik_option *copy = NULL;
    CU_ASSERT_EQUAL(ik_optable_load(&d, "/p/intake-x.so", &copy, &err), IK_E_INVAL);
    CU_ASSERT_PTR_NULL(copy);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/p/intake-x.so: plugin 'x' declares option 'n' but "
                                           "no config struct (config_size 0)"));
    d.options = empty;
    CU_ASSERT_EQUAL(ik_optable_load(&d, "/p/intake-x.so", &copy, &err), 0);
    free(copy);
    d.options = NULL;
    CU_ASSERT_EQUAL(ik_optable_load(&d, "/p/intake-x.so", &copy, &err), 0);
    CU_ASSERT_PTR_NULL(copy);
}

/* The table is read with the plugin's entry size: a plugin built against a
 * later minor (larger entries) reads right, its extra fields ignored. */
static void test_option_stride(void)
{
    typedef struct wider {
        ik_option o;
        const char *future; /* a field a later minor might add */
    } wider;
    static const wider t[] = {
        {{"n", IK_OPT_INT, "5", 0, NULL, IK_OPT_AT(lr_config, n), .min = "1"}, "x"},
        {{"s", IK_OPT_STRING, "x", 0, NULL, IK_OPT_AT(lr_config, s)}, "y"},
        {{0}, NULL},
    };
    ik_plugin d = {IK_PLUGIN_HEAD, .name = "x", .options = &t[0].o,
                   .config_size = sizeof(lr_config)};
    d.option_size = sizeof(wider);
    ik_err err = {0};
    ik_option *copy = NULL;
    CU_ASSERT_EQUAL_FATAL(ik_optable_load(&d, "/p/intake-x.so", &copy, &err), 0);
    CU_ASSERT_STRING_EQUAL(copy[0].name, "n");
    CU_ASSERT_STRING_EQUAL(copy[0].min, "1");
    CU_ASSERT_STRING_EQUAL(copy[1].name, "s");
    CU_ASSERT_EQUAL(copy[1].offset, offsetof(lr_config, s));
    CU_ASSERT_PTR_NULL(copy[2].name);
    free(copy);
    d.option_size = (uint16_t)(sizeof(ik_option) - sizeof(void *)); /* smaller than 2.0's */
    CU_ASSERT_EQUAL(ik_optable_load(&d, "/p/intake-x.so", &copy, &err), IK_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "option entries of"));
}

/* The finding of issue 9: `validate` let through what only `run` refused. */
static void test_range_through_engine(void)
{
    ik_err err = {0};
    char path[512], where[600];
    int rc = engine_error("pipelines = ( {\n name = \"p\";\n"
                          " source = { plugin = \"test_gen\"; };\n"
                          " processors = ( { plugin = \"email_normalize\"; max_chars = -1; } );\n"
                          " sinks = ( { plugin = \"stdout\"; } );\n} );\n",
                          &err, path, sizeof path);
    CU_ASSERT_EQUAL(rc, IK_E_CONFIG);
    snprintf(where, sizeof where, "%s:5: ", path);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, where));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "option 'max_chars' of plugin 'email_normalize'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "must be at least 0 (got -1)"));
    if (rc != IK_E_CONFIG)
        fprintf(stderr, "\nengine: rc %d: %s\n", rc, err.msg);
}

static void test_not_elf(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/intake-garbage.so", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("this is not an ELF file\n", f);
    fclose(f);
    ik_loaded_plugin *p = NULL;
    ik_err err = {0};
    CU_ASSERT_EQUAL(ik_loader_open_file(path, NULL, &p, &err), IK_E_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "cannot load"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    unlink(path);
}

static void test_name_mismatch(void)
{
    char src[1100], dst[512], cmd[1800];
    path_of(src, sizeof src, "plugins/intake-stdout.so");
    snprintf(dst, sizeof dst, "%s/intake-renamed.so", tmpdir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, dst);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
    char *dirs[] = {tmpdir};
    ik_loader *l = ik_loader_new(dirs, 1);
    const ik_loaded_plugin *p = NULL;
    ik_err err = {0};
    CU_ASSERT_EQUAL(ik_loader_get(l, "renamed", IK_KIND_SINK, &p, &err), IK_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "descriptor says 'stdout'"));
    ik_loader_free(l);
    unlink(dst);
}

/* Writes a config and returns the engine error for it. */
static int engine_error(const char *text, ik_err *err, char *path, size_t len)
{
    snprintf(path, len, "%s/p.conf", tmpdir);
    FILE *f = fopen(path, "w");
    fprintf(f, "plugin_path = [\"%s/plugins\", \"%s/tests/plugins\"];\n%s", build, build, text);
    fclose(f);
    ik_config *cfg = NULL;
    ik_engine *e = NULL;
    int rc = ik_config_load(path, &cfg, err);
    if (rc == 0)
        rc = ik_engine_new(cfg, &e, err);
    ik_engine_free(e);
    ik_config_free(cfg);
    return rc;
}

static void test_kind_mismatch_names_line(void)
{
    ik_err err = {0};
    char path[512], where[600];
    int rc = engine_error("pipelines = ( {\n name = \"p\";\n"
                          " source = { plugin = \"stdout\"; };\n" /* line 4 */
                          " sinks = ( { plugin = \"stdout\"; } );\n} );\n",
                          &err, path, sizeof path);
    CU_ASSERT_EQUAL(rc, IK_E_CONFIG);
    snprintf(where, sizeof where, "%s:4:", path);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, where));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "is a sink and cannot be used as a source"));
}

/* The config-level check of a two-kind file: a stage of a kind it lacks
 * names file:line and what the file provides; source and sink both bind. */
static void test_two_kinds_through_engine(void)
{
    ik_err err = {0};
    char path[512], where[600];
    int rc =
        engine_error("pipelines = ( {\n name = \"p\";\n"
                     " source = { plugin = \"test_twokind\"; };\n"
                     " processors = ( { plugin = \"test_twokind\"; } );\n" /* line 5 */
                     " sinks = ( { plugin = \"test_twokind\"; path = \"/dev/null\"; } );\n} );\n",
                     &err, path, sizeof path);
    CU_ASSERT_EQUAL(rc, IK_E_CONFIG);
    snprintf(where, sizeof where, "%s:5: pipeline 'p': ", path);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, where));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "has no processor (it provides: source, sink)"));
    memset(&err, 0, sizeof err);
    rc = engine_error("pipelines = ( {\n name = \"p\";\n"
                      " source = { plugin = \"test_twokind\"; count = 2; };\n"
                      " sinks = ( { plugin = \"test_twokind\"; path = \"/dev/null\"; } );\n} );\n",
                      &err, path, sizeof path);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0)
        fprintf(stderr, "\nengine: rc %d: %s\n", rc, err.msg);
}

static void test_unknown_plugin_names_line(void)
{
    ik_err err = {0};
    char path[512], where[600];
    int rc = engine_error("pipelines = ( {\n name = \"p\";\n"
                          " source = { plugin = \"test_gen\"; };\n"
                          " sinks = ( { plugin = \"nosuch\"; } );\n} );\n", /* line 5 */
                          &err, path, sizeof path);
    CU_ASSERT_EQUAL(rc, IK_E_NOTFOUND);
    snprintf(where, sizeof where, "%s:5:", path);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, where));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "intake-nosuch.so"));
}

static void test_unknown_option_through_engine(void)
{
    ik_err err = {0};
    char path[512], where[600];
    int rc = engine_error("pipelines = ( {\n name = \"p\";\n"
                          " source = { plugin = \"test_gen\"; cuont = 5; };\n" /* line 4 */
                          " sinks = ( { plugin = \"stdout\"; } );\n} );\n",
                          &err, path, sizeof path);
    CU_ASSERT_EQUAL(rc, IK_E_CONFIG);
    snprintf(where, sizeof where, "%s:4:", path);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, where));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "cuont"));
}

int main(void)
{
    const char *b = getenv("INTAKE_TEST_BUILD");
    if (!b) {
        fprintf(stderr, "INTAKE_TEST_BUILD is not set (run through ctest)\n");
        return 1;
    }
    snprintf(build, sizeof build, "%s", b);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ik_loader_XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("loader", NULL, NULL);
    CU_add_test(s, "good plugin loads and is cached", test_good_plugin);
    CU_add_test(s, "not found lists every folder", test_not_found_lists_dirs);
    CU_add_test(s, "shared object without entry symbol", test_not_plugin);
    CU_add_test(s, "wrong magic", test_bad_magic);
    CU_add_test(s, "ABI mismatch names both versions", test_abi_mismatch_names_both);
    CU_add_test(s, "an ABI 1.x plugin is refused: rebuild against SDK 2.0", test_abi1_refused);
    CU_add_test(s, "option table defects and json-c major refused", test_bad_tables_refused);
    CU_add_test(s, "option table rules", test_limits_rules);
    CU_add_test(s, "option table read with the plugin's stride", test_option_stride);
    CU_add_test(s, "options need a config struct", test_options_need_config);
    CU_add_test(s, "option ranges checked without running", test_range_through_engine);
    CU_add_test(s, "not an ELF file", test_not_elf);
    CU_add_test(s, "file name and descriptor name differ", test_name_mismatch);
    CU_add_test(s, "kind mismatch names file:line", test_kind_mismatch_names_line);
    CU_add_test(s, "unknown plugin names file:line", test_unknown_plugin_names_line);
    CU_add_test(s, "SDK 2.2: a source and a sink under one name", test_two_kinds_one_name);
    CU_add_test(s, "SDK 2.2: a missing kind names what the file provides",
                test_missing_kind_refused);
    CU_add_test(s, "SDK 2.2: an old single-entry plugin still loads", test_old_single_entry_loads);
    CU_add_test(s, "SDK 2.2: open_file chains a file's kinds", test_open_file_chains_kinds);
    CU_add_test(s, "SDK 2.2: duplicate kinds, mixed names, empty lists refused",
                test_bad_kind_lists_refused);
    CU_add_test(s, "SDK 2.2: kinds bound through the engine", test_two_kinds_through_engine);
    CU_add_test(s, "unknown option names file:line", test_unknown_option_through_engine);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failures = CU_get_number_of_failures();
    CU_cleanup_registry();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return failures ? 1 : 0;
}
