/* bad_magic.c: a loader-test plugin whose descriptor has a wrong magic number. */
#include <intake/plugin.h>

static const ik_plugin bad_magic_plugin = {
    .magic = 0x0badf00du,
    .abi_major = IK_ABI_MAJOR,
    .abi_minor = IK_ABI_MINOR,
    .struct_size = sizeof(ik_plugin),
    .name = "bad_magic",
    .version = "1.0.0",
    .description = "Wrong magic: the engine must refuse it before reading anything else.",
    .kind = IK_KIND_PROCESSOR,
};

IK_PLUGIN_EXPORT(bad_magic_plugin)
