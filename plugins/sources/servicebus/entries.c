/*
 * entries.c: what intake-servicebus.so offers an engine of SDK 2.2 or
 * later, the `servicebus` source and the `servicebus` sink under one name.
 * Only the module links this file (not ikp_servicebus, which the source's
 * tests link without the sink). Engines older than 2.2 see the source
 * alone, through its own IK_PLUGIN_EXPORT in servicebus_source.c.
 */
#include <pthread.h>

#include <intake/plugin.h>

/* The source's entry (servicebus_source.c) and the sink's descriptor
 * (plugins/sinks/servicebus). */
const ik_plugin *ik_plugin_entry(void);
extern const ik_plugin ik_sb_sink_plugin;

static const ik_plugin *entries[3];
static pthread_once_t entries_once = PTHREAD_ONCE_INIT;

/* The source's descriptor is static in its file: the list is filled once,
 * through its entry function, and never changes afterwards. */
static void fill_entries(void)
{
    entries[0] = ik_plugin_entry();
    entries[1] = &ik_sb_sink_plugin;
    entries[2] = NULL;
}

__attribute__((visibility("default"))) const ik_plugin *const *IK_PLUGIN_ENTRIES(void);
const ik_plugin *const *IK_PLUGIN_ENTRIES(void)
{
    pthread_once(&entries_once, fill_entries);
    return entries;
}
