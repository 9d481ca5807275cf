/* test_abi10.c: a loader-test plugin built for ABI 1.0, the minor before the
 * host table gained progress() (1.1) and the descriptor its limits (1.2): an
 * engine of a newer minor must load it. A processor that passes every record
 * through. Its struct_size is the 1.0 descriptor's, as a real 1.0 build has. */
#include <stddef.h>

#include <intake/plugin.h>

static int abi10_create(const ik_host *host, ik_instance *self, void **state)
{
    (void)host;
    (void)self;
    *state = NULL;
    return 0;
}

static void abi10_destroy(void *state)
{
    (void)state;
}

static int abi10_process(void *state, ik_record *const *recs, size_t n, ik_result *results)
{
    (void)state;
    (void)recs;
    for (size_t i = 0; i < n; i++)
        results[i].status = IK_OK;
    return 0;
}

static const ik_plugin abi10_plugin = {
    .magic = IK_PLUGIN_MAGIC,
    .abi_major = 1,
    .abi_minor = 0,
    .struct_size = offsetof(ik_plugin, limits), /* the 1.0 descriptor ends before it */
    .name = "test_abi10",
    .version = "1.0.0",
    .description = "Built for ABI 1.0: still loads on newer minors.",
    .kind = IK_KIND_PROCESSOR,
    .create = abi10_create,
    .destroy = abi10_destroy,
    .process = abi10_process,
};

IK_PLUGIN_EXPORT(abi10_plugin)
