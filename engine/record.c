/* record.c: record construction, metadata and failure bookkeeping (see record.h). */
#include "record.h"

#include <stdlib.h>
#include <string.h>
#include "common/buf.h"

ik_record *ik_record_new(const char *id, json_object *payload)
{
    ik_record *rec = calloc(1, sizeof *rec);
    if (!rec) {
        json_object_put(payload);
        return NULL;
    }
    rec->id = strdup(id ? id : "");
    if (!rec->id) {
        json_object_put(payload);
        free(rec);
        return NULL;
    }
    rec->payload = payload;
    return rec;
}

void ik_record_free(ik_record *rec)
{
    if (!rec)
        return;
    for (size_t i = 0; i < rec->nmeta; i++)
        free(rec->meta[i].key); /* the value shares its block */
    free(rec->meta);
    json_object_put(rec->payload);
    free(rec->id);
    free(rec->fail_reason);
    free(rec->fail_stage);
    free(rec->settle_failure);
    free(rec);
}

const char *ik_record_meta(const ik_record *rec, const char *key)
{
    for (size_t i = 0; i < rec->nmeta; i++)
        if (strcmp(rec->meta[i].key, key) == 0)
            return rec->meta[i].value;
    return NULL;
}

/* One block "key\0value\0" per entry: a malloc per entry, not two (sources
 * set several per record). NULL when out of memory. */
static int entry_make(ik_meta_entry *e, const char *key, const char *value)
{
    size_t klen = strlen(key), vlen = strlen(value);
    char *block = malloc(klen + vlen + 2);
    if (!block)
        return IK_E_NOMEM;
    memcpy(block, key, klen + 1);
    memcpy(block + klen + 1, value, vlen + 1);
    e->key = block;
    e->value = block + klen + 1;
    return 0;
}

int ik_record_set_meta(ik_record *rec, const char *key, const char *value)
{
    if (!key || !*key)
        return IK_E_INVAL;
    for (size_t i = 0; i < rec->nmeta; i++) {
        if (strcmp(rec->meta[i].key, key) != 0)
            continue;
        if (!value) {
            free(rec->meta[i].key);
            rec->meta[i] = rec->meta[--rec->nmeta];
            return 0;
        }
        ik_meta_entry e;
        if (entry_make(&e, key, value) != 0)
            return IK_E_NOMEM;
        free(rec->meta[i].key);
        rec->meta[i] = e;
        return 0;
    }
    if (!value)
        return 0;
    ik_meta_entry *grown = ik_array_grow(rec->meta, &rec->capmeta, rec->nmeta + 1, sizeof *grown);
    if (!grown)
        return IK_E_NOMEM;
    rec->meta = grown;
    if (entry_make(&rec->meta[rec->nmeta], key, value) != 0)
        return IK_E_NOMEM;
    rec->nmeta++;
    return 0;
}

int ik_record_set_failure(ik_record *rec, const char *stage, unsigned attempts, const char *reason)
{
    if (rec->fail_reason)
        return 0;
    rec->fail_reason = strdup(reason && *reason ? reason : "no reason given");
    rec->fail_stage = strdup(stage ? stage : "");
    rec->fail_attempts = attempts;
    if (!rec->fail_reason || !rec->fail_stage) {
        free(rec->fail_reason);
        free(rec->fail_stage);
        rec->fail_reason = rec->fail_stage = NULL;
        return IK_E_NOMEM;
    }
    return 0;
}
