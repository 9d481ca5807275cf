/*
 * my_plugin.c: a documented example Intake plugin, the starting point for your
 * own. It is a processor named "my" (so the file must be intake-my.so) that
 *   - sets metadata "subject_length" (or the key named by option `meta_key`)
 *     to the length of the payload's "subject" in bytes or characters
 *     (option `unit`, a choice), and
 *   - fails (IK_FAIL: dead-lettered, not retried) a record whose payload has
 *     no string "subject", unless option `require_subject` is false, or whose
 *     subject is longer than option `max_subject` bytes (0: any length),
 *   - counts those failures in the metric intake_plugin_my_missing_subject_total.
 *
 * Build:  cc -shared -fPIC $(pkg-config --cflags intake-sdk) my_plugin.c -o intake-my.so
 * Use:    put intake-my.so in plugin_path (or $(pkg-config --variable=plugindir
 *         intake-sdk)) and add a stage { plugin = "my"; name = "measure"; } to a pipeline.
 *
 * Rules worth remembering (README.md has the long form):
 *   - include only <intake/plugin.h>: reach the engine through the host table;
 *   - no global mutable state: everything lives in the state create() returns;
 *   - options arrive in your own config struct (my_config), already checked;
 *   - process() runs on several worker threads at once (stage `concurrency`),
 *     so anything shared in the state needs a lock, or goes in per-worker
 *     state (worker_init); this plugin shares nothing mutable (metrics are
 *     thread-safe);
 *   - one result per record: a bad record does not fail its neighbours.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <intake/plugin.h>

/*
 * The plugin's config struct: the engine fills it from the pipeline's stage,
 * validated and with defaults applied, and hands it to check() and create().
 * Each option is bound to one member (IK_OPT_AT) of the C type its option
 * type says: STRING const char * (owned by the engine until destroy()), INT
 * int64_t, BOOL int, DOUBLE double, DURATION uint64_t ms, SIZE uint64_t
 * bytes, CHOICE int (the index of the value among its choices).
 */
typedef struct my_config {
    const char *meta_key;
    int require_subject;
    int64_t max_subject;
    int unit; /* MY_UNIT_*: index into my_units */
} my_config;

enum { MY_UNIT_BYTES = 0, MY_UNIT_CHARS = 1 };
static const char *const my_units[] = {"bytes", "chars", NULL};

/* Everything one instance keeps. Two instances of the plugin get two of these. */
typedef struct my_state {
    const ik_host *host;  /* the engine's function table, valid until destroy() */
    ik_instance *self;    /* our instance handle, passed back to every host call */
    const char *meta_key; /* the engine's string: lives until destroy() */
    int require_subject;
    int64_t max_subject; /* 0: no limit */
    int unit;
    ik_metric *missing; /* owned by the engine: never freed here */
} my_state;

/*
 * The option table: the engine validates the config against it, fills in
 * defaults, writes the values into my_config, and `intake plugins` prints it
 * as documentation. Defaults are text in config syntax. A range (.min/.max,
 * numeric options) or a list of choices (.choices, IK_OPT_CHOICE) is checked
 * by the engine wherever it checks the config (`intake validate` too), naming
 * the file, line, option and what is allowed, so create() need not check
 * them. The table ends with a zeroed entry.
 */
static const ik_option my_options[] = {
    {"meta_key", IK_OPT_STRING, "subject_length", 0,
     "Metadata key that receives the subject's length.", IK_OPT_AT(my_config, meta_key)},
    {"require_subject", IK_OPT_BOOL, "true", 0,
     "Fail (dead-letter) records whose payload has no string \"subject\".",
     IK_OPT_AT(my_config, require_subject)},
    {"max_subject", IK_OPT_INT, "0", 0,
     "Fail records whose subject is longer than this (in `unit`); 0: any length.",
     IK_OPT_AT(my_config, max_subject), .min = "0", .max = "1000000"},
    {"unit", IK_OPT_CHOICE, "bytes", 0,
     "How the length is counted: \"bytes\", or \"chars\" (UTF-8 characters).",
     IK_OPT_AT(my_config, unit), .choices = my_units},
    {0},
};

/*
 * check(): optional; `intake validate` calls it, and `run` before create().
 * For what the table cannot say: files that must exist, rules between
 * options. Log what is wrong and return IK_E_CONFIG; keep nothing.
 */
static int my_check(const ik_host *host, ik_instance *self, const void *config)
{
    const my_config *cfg = config;
    if (!cfg->meta_key[0]) {
        host->log(self, IK_LOG_ERROR, "option 'meta_key' must not be empty");
        return IK_E_CONFIG;
    }
    return 0;
}

/* destroy(): frees everything create() made. Also used on create()'s error paths. */
static void my_destroy(void *state)
{
    my_state *st = state;
    if (!st)
        return;
    free(st);
}

/*
 * create(): runs on the engine's main thread with the bound config (valid,
 * with its strings, until destroy()). Allocates the state, and on error logs
 * why, frees what it made and returns an IK_E_* code.
 */
static int my_create(const ik_host *host, ik_instance *self, const void *config, void **state)
{
    const my_config *cfg = config;
    my_state *st = calloc(1, sizeof *st);
    if (!st)
        return IK_E_NOMEM;
    st->host = host;
    st->self = self;
    st->meta_key = cfg->meta_key; /* engine-owned, never empty: my_check */
    st->require_subject = cfg->require_subject;
    st->max_subject = cfg->max_subject; /* 0..1000000: its range */
    st->unit = cfg->unit;
    st->missing = host->counter(self, "missing_subject_total",
                                "Records failed because their payload had no subject");
    host->log(self, IK_LOG_INFO, "measuring subjects in %s into metadata '%s'%s",
              my_units[st->unit], st->meta_key,
              st->require_subject ? ", failing records without one" : "");
    *state = st;
    return 0;
}

/* The length of s (n bytes) in the configured unit. */
static int64_t subject_length(const my_state *st, const char *s, int n)
{
    if (st->unit == MY_UNIT_BYTES)
        return n;
    int64_t chars = 0;
    for (int i = 0; i < n; i++)
        chars += ((unsigned char)s[i] & 0xC0) != 0x80; /* not a continuation byte */
    return chars;
}

/*
 * process(): called by worker threads with a batch of n records. Fill
 * results[i] for recs[i]; entries left alone mean IK_OK. Records are borrowed:
 * never free them or keep pointers after returning. Return 0; a negative
 * return means "the whole call failed transiently" and every record is retried.
 */
static int my_process(void *state, void *worker_state, ik_record *const *recs, size_t n,
                      ik_result *results)
{
    (void)worker_state; /* no worker_init: NULL */
    my_state *st = state;
    const ik_host *host = st->host;
    for (size_t i = 0; i < n; i++) {
        json_object *payload = host->record_payload(recs[i]); /* borrowed */
        json_object *subject = NULL;
        if (!json_object_object_get_ex(payload, "subject", &subject) ||
            !json_object_is_type(subject, json_type_string)) {
            if (!st->require_subject)
                continue;
            /* permanent: goes to the dead-letter place */
            ik_result_setf(&results[i], IK_FAIL, "record %s has no string \"subject\"",
                           host->record_id(recs[i]));
            if (st->missing)
                host->metric_add(st->missing, 1);
            continue;
        }
        int64_t length = subject_length(st, json_object_get_string(subject),
                                        json_object_get_string_len(subject));
        if (st->max_subject > 0 && length > st->max_subject) {
            ik_result_setf(&results[i], IK_FAIL,
                           "record %s has a subject of %lld %s, more than max_subject (%lld)",
                           host->record_id(recs[i]), (long long)length, my_units[st->unit],
                           (long long)st->max_subject);
            continue;
        }
        char len[32];
        snprintf(len, sizeof len, "%lld", (long long)length);
        if (host->record_set_meta(recs[i], st->meta_key, len) != 0) /* transient: retried */
            ik_result_setf(&results[i], IK_RETRY, "cannot set metadata '%s' (out of memory)",
                           st->meta_key);
    }
    return 0;
}

/* The descriptor: IK_PLUGIN_HEAD fills magic, ABI version, the sizes of the
 * SDK's structs and the json-c major as this plugin is built. */
static const ik_plugin my_plugin = {
    IK_PLUGIN_HEAD,
    .name = "my", /* must match the file name intake-my.so */
    .version = "0.1.0",
    .description = "Example processor: records the subject length, fails emails without one.",
    .kind = IK_KIND_PROCESSOR,
    .options = my_options,
    .config_size = sizeof(my_config),
    .check = my_check,
    .create = my_create,
    .destroy = my_destroy,
    .process = my_process,
};

/* Exports ik_plugin_entry(), the symbol of a plugin of one kind (a file of
 * several kinds uses IK_PLUGIN_EXPORT_KINDS, plugin.h). */
IK_PLUGIN_EXPORT(my_plugin)
