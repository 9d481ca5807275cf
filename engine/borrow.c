/* borrow.c: the borrowed-payload check of debug and sanitizer builds (see borrow.h). */
#include "borrow.h"

#ifdef IK_CHECK_BORROWED

#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "pipeline_internal.h"

/* A record that several sinks hold at once has its reference count touched
 * from several threads: not checked. */
static int shared(const ik_instance *inst)
{
    return inst->stage && inst->stage->kind == STAGE_SINK && inst->pipeline->nsinks > 1;
}

void ik_borrow_begin(ik_borrow *b, ik_instance *inst, ik_record *const *recs, size_t n)
{
    b->held = NULL;
    b->n = 0;
    if (n == 0 || shared(inst) || !(b->held = calloc(2 * n, sizeof *b->held)))
        return;
    for (size_t i = 0; i < n; i++) {
        json_object *payload = recs[i]->payload;
        if (!payload)
            continue;
        if (json_object_deep_copy(payload, &b->held[2 * i + 1], NULL) != 0) {
            json_object_put(b->held[2 * i + 1]);
            b->held[2 * i + 1] = NULL;
            continue; /* no copy to give back: this one is not checked */
        }
        b->held[2 * i] = json_object_get(payload);
    }
    b->n = n;
}

/* The plugin dropped the record's reference to its payload, which is gone:
 * the record takes the copy and fails. */
static void payload_freed(ik_instance *inst, ik_record *rec, json_object *copy, ik_result *res)
{
    rec->payload = copy;
    res->status = IK_FAIL;
    snprintf(res->reason, sizeof res->reason,
             "plugin '%s' (stage '%s') freed the payload of record %s, which it only borrowed "
             "(json_object_put without its own json_object_get)",
             inst->spec->plugin, inst->spec->name, rec->id ? rec->id : "?");
    ik_logf(IK_LOG_ERROR, ik_instance_pipeline_name(inst), inst->spec->name,
            "%s; the record fails instead of being used after free", res->reason);
}

void ik_borrow_end(ik_borrow *b, ik_instance *inst, ik_record *const *recs, ik_result *results)
{
    for (size_t i = 0; b->held && i < b->n; i++) {
        json_object *held = b->held[2 * i], *copy = b->held[2 * i + 1];
        if (!held)
            continue;
        if (recs[i]->payload != held) {
            json_object_put(held); /* replaced through record_set_payload: fine */
        } else if (json_object_put(held) == 1) {
            payload_freed(inst, recs[i], copy, &results[i]);
            copy = NULL;
        }
        json_object_put(copy);
    }
    free(b->held);
    b->held = NULL;
}

#endif
