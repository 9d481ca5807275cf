/* test_fault_sink.c: the `test_fault_sink` sink, test-only; see fault.h for the modes. */
#include "fault.h"

static int tfs_create(const ik_host *host, ik_instance *self, const void *config, void **state)
{
    return fault_create(host, self, config, "test_fault_sink", state);
}

static const ik_plugin tfs_plugin = {
    IK_PLUGIN_HEAD,
    .name = "test_fault_sink",
    .version = "1.0.0",
    .description = "Test sink injecting faults: transient, permanent, slow, crash, release.",
    .kind = IK_KIND_SINK,
    .options = fault_options,
    .config_size = sizeof(fault_config),
    .worker_init = fault_worker_init,
    .worker_exit = fault_worker_exit,
    .create = tfs_create,
    .destroy = fault_destroy,
    .write = fault_apply,
};

IK_PLUGIN_EXPORT(tfs_plugin)
