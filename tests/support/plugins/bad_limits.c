/*
 * bad_limits.c: loader-test plugins with one defect each in their option
 * table or build record, which the engine must refuse at load. Built once
 * per defect (tests/support/plugins/CMakeLists.txt) with BAD_CASE set:
 *   1 bad_limits      a range on a string option
 *   2 bad_offset      an option bound outside config_size
 *   3 bad_dup         an option declared twice
 *   4 bad_engine_key  an option named like an engine key ("concurrency")
 *   5 bad_jsonc       built (it says) against another json-c major
 */
#include <intake/plugin.h>

#ifndef BAD_CASE
#define BAD_CASE 1
#endif

typedef struct bl_config {
    int64_t size;
    const char *label;
} bl_config;

static int bl_create(const ik_host *host, ik_instance *self, const void *config, void **state)
{
    (void)host;
    (void)self;
    (void)config;
    *state = NULL;
    return 0;
}

static int bl_process(void *state, void *worker_state, ik_record *const *recs, size_t n,
                      ik_result *results)
{
    (void)state;
    (void)worker_state;
    (void)recs;
    (void)n;
    (void)results;
    return 0;
}

#if BAD_CASE == 1
#define BL_NAME "bad_limits"
static const ik_option bl_options[] = {
    {"size", IK_OPT_INT, "1", 0, "An int.", IK_OPT_AT(bl_config, size)},
    {"label", IK_OPT_STRING, "x", 0, "A string with a range.", IK_OPT_AT(bl_config, label),
     .min = "0"},
    {0},
};
#elif BAD_CASE == 2
#define BL_NAME "bad_offset"
static const ik_option bl_options[] = {
    {"size", IK_OPT_INT, "1", 0, "An int.", IK_OPT_AT(bl_config, size)},
    {"label", IK_OPT_STRING, "x", 0, "Bound past the struct.", .offset = sizeof(bl_config)},
    {0},
};
#elif BAD_CASE == 3
#define BL_NAME "bad_dup"
static const ik_option bl_options[] = {
    {"size", IK_OPT_INT, "1", 0, "An int.", IK_OPT_AT(bl_config, size)},
    {"size", IK_OPT_STRING, "x", 0, "The same name again.", IK_OPT_AT(bl_config, label)},
    {0},
};
#elif BAD_CASE == 4
#define BL_NAME "bad_engine_key"
static const ik_option bl_options[] = {
    {"concurrency", IK_OPT_INT, "1", 0, "The engine's key.", IK_OPT_AT(bl_config, size)},
    {0},
};
#else
#define BL_NAME "bad_jsonc"
static const ik_option bl_options[] = {
    {"size", IK_OPT_INT, "1", 0, "An int.", IK_OPT_AT(bl_config, size)},
    {0},
};
#endif

#if BAD_CASE == 5 /* IK_PLUGIN_HEAD with another json-c major */
#define BL_HEAD                                                                                    \
    .magic = IK_PLUGIN_MAGIC, .abi_major = IK_ABI_MAJOR, .abi_minor = IK_ABI_MINOR,                \
    .struct_size = sizeof(ik_plugin), .option_size = sizeof(ik_option),                            \
    .result_size = sizeof(ik_result), .json_c_major = JSON_C_MAJOR_VERSION + 1
#else
#define BL_HEAD IK_PLUGIN_HEAD
#endif

static const ik_plugin bad_limits_plugin = {
    BL_HEAD,
    .name = BL_NAME,
    .version = "1.0.0",
    .description = "A defect in its option table or build record: the engine must refuse it.",
    .kind = IK_KIND_PROCESSOR,
    .options = bl_options,
    .config_size = sizeof(bl_config),
    .create = bl_create,
    .process = bl_process,
};

IK_PLUGIN_EXPORT(bad_limits_plugin)
