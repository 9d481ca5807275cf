/* test_fault.c: the `test_fault` processor, test-only; see fault.h for the modes. */
#include "fault.h"

static int tf_create(const ik_host *host, ik_instance *self, const void *config, void **state)
{
    return fault_create(host, self, config, "test_fault", state);
}

static const ik_plugin tf_plugin = {
    IK_PLUGIN_HEAD,
    .name = "test_fault",
    .version = "1.0.0",
    .description = "Test processor injecting faults: transient, permanent, slow, crash, release.",
    .kind = IK_KIND_PROCESSOR,
    .options = fault_options,
    .config_size = sizeof(fault_config),
    .worker_init = fault_worker_init,
    .worker_exit = fault_worker_exit,
    .create = tf_create,
    .destroy = fault_destroy,
    .cost = fault_cost,
    .process = fault_apply,
    .probe = fault_probe,
};

IK_PLUGIN_EXPORT(tf_plugin)
