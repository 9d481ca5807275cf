/*
 * my_plugin.c: a documented example Intake plugin, the starting point for your
 * own. It is a processor named "my" (so the file must be intake-my.so) that
 *   - sets metadata "subject_length" (or the key named by option `meta_key`)
 *     to the byte length of the payload's "subject", and
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
 *   - process() runs on several worker threads at once (stage `concurrency`),
 *     so anything shared in the state needs a lock (this plugin shares nothing
 *     mutable: metrics are thread-safe);
 *   - one result per record: a bad record does not fail its neighbours.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <intake/plugin.h>

/* Everything one instance keeps. Two instances of the plugin get two of these. */
typedef struct my_state {
    const ik_host *host; /* the engine's function table, valid until destroy() */
    ik_instance *self;   /* our instance handle, passed back to every host call */
    char *meta_key;      /* our own copy (we free it in destroy) */
    int require_subject;
    int64_t max_subject; /* 0: no limit */
    ik_metric *missing;  /* owned by the engine: never freed here */
} my_state;

/*
 * The option table: the engine validates the config against it, fills in
 * defaults, and `intake plugins` prints it as documentation. Defaults are text
 * in config syntax. The table ends with a zeroed entry.
 */
static const ik_option my_options[] = {
    {"meta_key", IK_OPT_STRING, "subject_length", 0,
     "Metadata key that receives the subject's length in bytes."},
    {"require_subject", IK_OPT_BOOL, "true", 0,
     "Fail (dead-letter) records whose payload has no string \"subject\"."},
    {"max_subject", IK_OPT_INT, "0", 0,
     "Fail records whose subject is longer than this many bytes; 0: any length."},
    {0},
};

/*
 * Ranges of numeric options (ABI 1.2): the engine refuses a value outside
 * them when it checks the config (`intake validate` too), naming the file,
 * line, option and range, so create() need not check them. Bounds are text
 * in the option's syntax ("10ms", "4M", "0.5"); NULL leaves a side open.
 */
static const ik_option_limit my_limits[] = {
    {"max_subject", "0", "1000000"},
    {0},
};

/* destroy(): frees everything create() made. Also used on create()'s error paths. */
static void my_destroy(void *state)
{
    my_state *st = state;
    if (!st)
        return;
    free(st->meta_key);
    free(st);
}

/*
 * create(): runs on the engine's main thread. Reads options, allocates the
 * state, and on error logs why, frees what it made and returns an IK_E_* code.
 */
static int my_create(const ik_host *host, ik_instance *self, void **state)
{
    my_state *st = calloc(1, sizeof *st);
    if (!st)
        return IK_E_NOMEM;
    st->host = host;
    st->self = self;
    /* Option strings belong to the engine and live until destroy(); copying is
     * only needed if you want to change them. We copy to show the ownership rule. */
    const char *key = host->opt_string(self, "meta_key");
    if (!key || !key[0]) {
        host->log(self, IK_LOG_ERROR, "option 'meta_key' must not be empty");
        my_destroy(st);
        return IK_E_CONFIG;
    }
    size_t len = strlen(key) + 1;
    st->meta_key = malloc(len);
    if (st->meta_key)
        memcpy(st->meta_key, key, len);
    if (!st->meta_key) {
        my_destroy(st);
        return IK_E_NOMEM;
    }
    st->require_subject = host->opt_bool(self, "require_subject");
    st->max_subject = host->opt_int(self, "max_subject"); /* 0..1000000: my_limits */
    st->missing = host->counter(self, "missing_subject_total",
                                "Records failed because their payload had no subject");
    host->log(self, IK_LOG_INFO, "measuring subjects into metadata '%s'%s", st->meta_key,
              st->require_subject ? ", failing records without one" : "");
    *state = st;
    return 0;
}

/*
 * process(): called by worker threads with a batch of n records. Fill
 * results[i] for recs[i]; entries left alone mean IK_OK. Records are borrowed:
 * never free them or keep pointers after returning. Return 0; a negative
 * return means "the whole call failed transiently" and every record is retried.
 */
static int my_process(void *state, ik_record *const *recs, size_t n, ik_result *results)
{
    my_state *st = state;
    const ik_host *host = st->host;
    for (size_t i = 0; i < n; i++) {
        json_object *payload = host->record_payload(recs[i]); /* borrowed */
        json_object *subject = NULL;
        if (!json_object_object_get_ex(payload, "subject", &subject) ||
            !json_object_is_type(subject, json_type_string)) {
            if (!st->require_subject)
                continue;
            results[i].status = IK_FAIL; /* permanent: goes to the dead-letter place */
            snprintf(results[i].reason, sizeof results[i].reason,
                     "record %s has no string \"subject\"", host->record_id(recs[i]));
            if (st->missing)
                host->metric_add(st->missing, 1);
            continue;
        }
        int bytes = json_object_get_string_len(subject);
        if (st->max_subject > 0 && bytes > st->max_subject) {
            results[i].status = IK_FAIL;
            snprintf(results[i].reason, sizeof results[i].reason,
                     "record %s has a subject of %d bytes, more than max_subject (%lld)",
                     host->record_id(recs[i]), bytes, (long long)st->max_subject);
            continue;
        }
        char len[32];
        snprintf(len, sizeof len, "%d", bytes);
        if (host->record_set_meta(recs[i], st->meta_key, len) != 0) {
            results[i].status = IK_RETRY; /* transient: retried with backoff */
            snprintf(results[i].reason, sizeof results[i].reason,
                     "cannot set metadata '%s' (out of memory)", st->meta_key);
        }
    }
    return 0;
}

/* The descriptor: IK_PLUGIN_HEAD fills magic, ABI version and struct size. */
static const ik_plugin my_plugin = {
    IK_PLUGIN_HEAD,
    .name = "my", /* must match the file name intake-my.so */
    .version = "0.1.0",
    .description = "Example processor: records the subject length, fails emails without one.",
    .kind = IK_KIND_PROCESSOR,
    .options = my_options,
    .limits = my_limits,
    .create = my_create,
    .destroy = my_destroy,
    .process = my_process,
};

/* Exports ik_plugin_entry(), the one symbol the engine looks up. */
IK_PLUGIN_EXPORT(my_plugin)
