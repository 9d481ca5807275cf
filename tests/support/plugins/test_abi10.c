/*
 * test_abi10.c: a loader-test plugin built for ABI 1.0, the SDK before 2.0:
 * its descriptor is the 1.0 layout, spelt out here since <intake/plugin.h>
 * is 2.0 now. The engine must refuse it with a message that says to rebuild
 * against SDK 2.0 (it reads only magic and ABI version from it).
 */
#include <stddef.h>
#include <stdint.h>

#include <intake/plugin.h>

/* The ABI 1.0 descriptor, as a 1.0 build of a processor laid it out. */
typedef struct abi10_descriptor {
    uint32_t magic;
    uint16_t abi_major;
    uint16_t abi_minor;
    uint32_t struct_size;
    const char *name;
    const char *version;
    const char *description;
    ik_kind kind;
    const void *options;
    int (*create)(const void *host, ik_instance *self, void **state);
    void (*destroy)(void *state);
    int (*health)(void *state, ik_health *out);
    int (*run)(void *state);
    void (*stop)(void *state);
    void (*settle)(void *state, ik_record *rec, ik_outcome outcome, const ik_failure *failure);
    uint64_t (*cost)(void *state, const ik_record *rec);
    int (*process)(void *state, ik_record *const *recs, size_t n, ik_result *results);
    int (*write)(void *state, ik_record *const *recs, size_t n, ik_result *results);
} abi10_descriptor;

static int abi10_create(const void *host, ik_instance *self, void **state)
{
    (void)host;
    (void)self;
    *state = NULL;
    return 0;
}

static int abi10_process(void *state, ik_record *const *recs, size_t n, ik_result *results)
{
    (void)state;
    (void)recs;
    for (size_t i = 0; i < n; i++)
        results[i].status = IK_OK;
    return 0;
}

static const abi10_descriptor abi10_plugin = {
    .magic = IK_PLUGIN_MAGIC,
    .abi_major = 1,
    .abi_minor = 0,
    .struct_size = sizeof(abi10_descriptor),
    .name = "test_abi10",
    .version = "1.0.0",
    .description = "Built for ABI 1.0: refused by an SDK 2.0 engine.",
    .kind = IK_KIND_PROCESSOR,
    .create = abi10_create,
    .process = abi10_process,
};

__attribute__((visibility("default"))) const void *IK_PLUGIN_ENTRY(void);
const void *IK_PLUGIN_ENTRY(void)
{
    return &abi10_plugin;
}
