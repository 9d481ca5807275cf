/*
 * entries.c: what intake-servicebus.so offers (SDK 2.2 entries): the
 * `servicebus` source and the `servicebus` sink under one name. Only the
 * module links this file (not ikp_servicebus, which tests may link without
 * the sink). Both descriptors declare SDK 2.2, so an older engine refuses
 * the file rather than loading half of it.
 */
#include <intake/plugin.h>

/* servicebus_source.c and plugins/sinks/servicebus/servicebus_sink.c */
extern const ik_plugin ik_sb_source_plugin;
extern const ik_plugin ik_sb_sink_plugin;

static const ik_plugin *const entries[] = {&ik_sb_source_plugin, &ik_sb_sink_plugin, NULL};

__attribute__((visibility("default"))) const ik_plugin *const *IK_PLUGIN_ENTRIES(void);
const ik_plugin *const *IK_PLUGIN_ENTRIES(void)
{
    return entries;
}
