/*
 * test_twokind.c: test-only plugins of SDK 2.2, one file with a source and
 * a sink under one name (ik_plugin_entries), built once per case with
 * TK_CASE set (tests/support/plugins/CMakeLists.txt):
 *   0 test_twokind    good (build/tests/plugins): the source emits `count`
 *                     records "<prefix>-<n>" (n from 1); the sink appends
 *                     each record id, one line each, to the file `path`.
 *                     It also exports ik_plugin_entry (the sink, declaring
 *                     ABI 2.1, as plugin.h advises for older engines), so a
 *                     test can see that the engine prefers the list.
 *   1 twokind_dup     two sinks in the list              (build/tests/plugins-bad)
 *   2 twokind_names   a source and a sink of different names
 *   3 twokind_empty   an empty list
 *   4 twokind_badopt  the sink's option table names an option twice
 *   5 test_onekind21  the sink alone through ik_plugin_entry, declaring
 *                     ABI 2.1: a plugin built before SDK 2.2 (good)
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <intake/plugin.h>

#ifndef TK_CASE
#define TK_CASE 0
#endif

#if TK_CASE == 0
#define TK_NAME "test_twokind"
#elif TK_CASE == 1
#define TK_NAME "twokind_dup"
#elif TK_CASE == 2
#define TK_NAME "twokind_names"
#elif TK_CASE == 3
#define TK_NAME "twokind_empty"
#elif TK_CASE == 4
#define TK_NAME "twokind_badopt"
#else
#define TK_NAME "test_onekind21"
#endif

typedef struct tk_source_config {
    int64_t count;
    const char *prefix;
} tk_source_config;

typedef struct tk_sink_config {
    const char *path;
} tk_sink_config;

static const ik_option tk_source_options[] = {
    {"count", IK_OPT_INT, "3", 0, "How many records to emit.", IK_OPT_AT(tk_source_config, count),
     .min = "0"},
    {"prefix", IK_OPT_STRING, "tk", 0, "Record ids are <prefix>-<n>, n from 1.",
     IK_OPT_AT(tk_source_config, prefix)},
    {0},
};

static const ik_option tk_sink_options[] = {
    {"path", IK_OPT_STRING, NULL, IK_OPT_REQUIRED, "File to append one record id per line to.",
     IK_OPT_AT(tk_sink_config, path)},
#if TK_CASE == 4
    {"path", IK_OPT_STRING, NULL, 0, "The same option again.", IK_OPT_AT(tk_sink_config, path)},
#endif
    {0},
};

/* One instance of either kind: what create() was given. */
typedef struct tk_state {
    const ik_host *host;
    ik_instance *self;
    const void *config; /* engine-owned, valid until destroy() */
} tk_state;

static int tk_create(const ik_host *host, ik_instance *self, const void *config, void **state)
{
    tk_state *st = calloc(1, sizeof *st);
    if (!st)
        return IK_E_NOMEM;
    st->host = host;
    st->self = self;
    st->config = config;
    *state = st;
    return 0;
}

static void tk_destroy(void *state)
{
    free(state);
}

static int tk_run(void *state)
{
    tk_state *st = state;
    const tk_source_config *cfg = st->config;
    const ik_host *host = st->host;
    for (int64_t n = 1; n <= cfg->count && !host->stopping(st->self); n++) {
        char id[256];
        snprintf(id, sizeof id, "%s-%lld", cfg->prefix ? cfg->prefix : "tk", (long long)n);
        json_object *p = json_object_new_object();
        if (!p)
            return IK_E_NOMEM;
        json_object_object_add(p, "id", json_object_new_string(id));
        ik_record *rec = host->record_new(st->self, id, p);
        if (!rec)
            return IK_E_NOMEM;
        int rc = host->emit(st->self, rec);
        if (rc != 0) {
            host->record_free(rec);
            return rc == IK_E_STOPPING ? 0 : rc;
        }
    }
    return 0;
}

/* Nothing to acknowledge: the records were made up. */
static void tk_settle(void *state, ik_record *rec, ik_outcome outcome, const ik_failure *failure)
{
    (void)state;
    (void)rec;
    (void)outcome;
    (void)failure;
}

/* Appends each id as one write(2), so concurrent workers never interleave. */
static int tk_write(void *state, void *worker_state, ik_record *const *recs, size_t n,
                    ik_result *results)
{
    tk_state *st = state;
    const tk_sink_config *cfg = st->config;
    (void)worker_state;
    int fd = open(cfg->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    for (size_t i = 0; i < n; i++) {
        char line[300];
        int len = snprintf(line, sizeof line, "%s\n", st->host->record_id(recs[i]));
        if (fd < 0 || len < 0 || write(fd, line, (size_t)len) != (ssize_t)len)
            ik_result_setf(&results[i], IK_RETRY, "cannot append to %s", cfg->path);
    }
    if (fd >= 0)
        close(fd);
    return 0;
}

/* unused: case 5 exports the sink alone */
__attribute__((unused)) static const ik_plugin tk_source = {
    IK_PLUGIN_HEAD,
    .name = TK_NAME,
    .version = "1.0.0",
    .description = "Test source of a two-kind plugin: emits count records.",
    .kind = IK_KIND_SOURCE,
    .options = tk_source_options,
    .config_size = sizeof(tk_source_config),
    .create = tk_create,
    .destroy = tk_destroy,
    .run = tk_run,
    .settle = tk_settle,
};

/* Declares ABI 2.1 (the head written out, not IK_PLUGIN_HEAD) and uses
 * nothing newer, so that an engine before SDK 2.2 would take it through
 * ik_plugin_entry. */
__attribute__((unused)) static const ik_plugin tk_sink = {
    .magic = IK_PLUGIN_MAGIC,
    .abi_major = IK_ABI_MAJOR,
    .abi_minor = 1,
    .struct_size = sizeof(ik_plugin),
    .option_size = sizeof(ik_option),
    .result_size = sizeof(ik_result),
    .json_c_major = JSON_C_MAJOR_VERSION,
#if TK_CASE == 2
    .name = "other_name",
#else
    .name = TK_NAME,
#endif
    .version = "1.0.0",
    .description = "Test sink of a two-kind plugin: appends record ids to a file.",
    .kind = IK_KIND_SINK,
    .options = tk_sink_options,
    .config_size = sizeof(tk_sink_config),
    .create = tk_create,
    .destroy = tk_destroy,
    .write = tk_write,
};

#if TK_CASE == 0
IK_PLUGIN_EXPORT_KINDS(tk_source, tk_sink)
IK_PLUGIN_EXPORT(tk_sink)
#elif TK_CASE == 1
static const ik_plugin tk_sink2 = {
    IK_PLUGIN_HEAD,      .name = TK_NAME,       .kind = IK_KIND_SINK,
    .create = tk_create, .destroy = tk_destroy, .write = tk_write,
};
IK_PLUGIN_EXPORT_KINDS(tk_source, tk_sink, tk_sink2)
#elif TK_CASE == 3
__attribute__((visibility("default"))) const ik_plugin *const *IK_PLUGIN_ENTRIES(void);
const ik_plugin *const *IK_PLUGIN_ENTRIES(void)
{
    static const ik_plugin *const none[] = {NULL};
    return none;
}
#elif TK_CASE == 5
IK_PLUGIN_EXPORT(tk_sink)
#else
IK_PLUGIN_EXPORT_KINDS(tk_source, tk_sink)
#endif
