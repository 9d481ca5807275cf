/* bad_limits.c: a loader-test plugin (ABI 1.2) whose limit table names an
 * option that is not in its option table: the engine must refuse to load it. */
#include <intake/plugin.h>

static int bl_create(const ik_host *host, ik_instance *self, void **state)
{
    (void)host;
    (void)self;
    *state = NULL;
    return 0;
}

static int bl_process(void *state, ik_record *const *recs, size_t n, ik_result *results)
{
    (void)state;
    (void)recs;
    (void)n;
    (void)results;
    return 0;
}

static const ik_option bl_options[] = {
    {"size", IK_OPT_INT, "1", 0, "An int."},
    {0},
};

static const ik_option_limit bl_limits[] = {
    {"sise", "0", "10"}, /* a typo: no such option */
    {0},
};

static const ik_plugin bad_limits_plugin = {
    IK_PLUGIN_HEAD,
    .name = "bad_limits",
    .version = "1.0.0",
    .description = "A limit for an option it does not have: the engine must refuse it.",
    .kind = IK_KIND_PROCESSOR,
    .options = bl_options,
    .limits = bl_limits,
    .create = bl_create,
    .process = bl_process,
};

IK_PLUGIN_EXPORT(bad_limits_plugin)
