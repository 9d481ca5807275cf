/*
 * passthrough.c: the `passthrough` processor (intake-passthrough.so). Leaves
 * every payload as it is and sets metadata "processed_by" to the instance
 * name; useful to wire and benchmark pipelines. Its cost() can weigh records
 * by a payload field, so batching by max_cost can be tried without a model.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <intake/plugin.h>

typedef struct pt_state {
    const ik_host *host;
    ik_instance *self;
    const char *name;       /* instance name (engine-owned) */
    const char *cost_field; /* engine-owned; NULL: cost 1 */
} pt_state;

/* The options, bound by the engine (plugin.h). */
typedef struct pt_config {
    const char *cost_field;
} pt_config;

static const ik_option pt_options[] = {
    {"cost_field", IK_OPT_STRING, NULL, 0,
     "Payload field giving the record's cost for the batcher's max_cost: an integer field is "
     "used as is, a string field by its length in bytes; missing or other types cost 1. Unset: "
     "every record costs 1.",
     IK_OPT_AT(pt_config, cost_field)},
    {0},
};

static int pt_create(const ik_host *host, ik_instance *self, const void *config, void **state)
{
    const pt_config *cfg = config;
    pt_state *st = calloc(1, sizeof *st);
    if (!st)
        return IK_E_NOMEM;
    st->host = host;
    st->self = self;
    st->name = host->instance_name(self);
    const char *cf = cfg->cost_field;
    st->cost_field = cf && cf[0] ? cf : NULL;
    *state = st;
    return 0;
}

static void pt_destroy(void *state)
{
    free(state);
}

static uint64_t pt_cost(void *state, const ik_record *rec)
{
    pt_state *st = state;
    if (!st->cost_field)
        return 1;
    json_object *v;
    if (!json_object_object_get_ex(st->host->record_payload(rec), st->cost_field, &v))
        return 1;
    if (json_object_is_type(v, json_type_int)) {
        int64_t c = json_object_get_int64(v);
        return c > 0 ? (uint64_t)c : 0;
    }
    if (json_object_is_type(v, json_type_string))
        return (uint64_t)json_object_get_string_len(v);
    return 1;
}

static int pt_process(void *state, void *worker_state, ik_record *const *recs, size_t n,
                      ik_result *results)
{
    (void)worker_state;
    pt_state *st = state;
    for (size_t i = 0; i < n; i++) {
        if (st->host->record_set_meta(recs[i], "processed_by", st->name ? st->name : "") != 0) {
            ik_result_setf(&results[i], IK_RETRY,
                           "cannot set metadata processed_by: out of memory");
        }
    }
    return 0;
}

static const ik_plugin pt_plugin = {
    IK_PLUGIN_HEAD,
    .name = "passthrough",
    .version = "1.0.0",
    .description = "Leaves payloads unchanged and sets metadata processed_by to the instance name.",
    .kind = IK_KIND_PROCESSOR,
    .options = pt_options,
    .config_size = sizeof(pt_config),
    .create = pt_create,
    .destroy = pt_destroy,
    .cost = pt_cost,
    .process = pt_process,
};

IK_PLUGIN_EXPORT(pt_plugin)
