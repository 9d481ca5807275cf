/* bad_abi.c: a loader-test plugin with a valid magic but the next ABI major. */
#include <intake/plugin.h>

static const ik_plugin bad_abi_plugin = {
    .magic = IK_PLUGIN_MAGIC,
    .abi_major = IK_ABI_MAJOR + 1,
    .abi_minor = 0,
    .struct_size = sizeof(ik_plugin),
    .name = "bad_abi",
    .version = "1.0.0",
    .description = "Built for a future ABI: the engine must refuse it.",
    .kind = IK_KIND_PROCESSOR,
};

IK_PLUGIN_EXPORT(bad_abi_plugin)
