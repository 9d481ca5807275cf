/*
 * record.h: the engine's record, one unit of work (one email) on its way from
 * a source to its sinks.
 *
 * Ownership: a record belongs to exactly one party at a time: the source that
 * made it (until emit succeeds), then the pipeline (queues, delay queue,
 * workers), until it is settled and freed. Metadata and id are owned by the
 * record; the payload is owned by the record and replaced only by the stage
 * currently holding it.
 */
#ifndef IK_RECORD_H
#define IK_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include <intake/plugin.h>

#define IK_MAX_SINKS 16

typedef struct ik_meta_entry {
    char *key;   /* owned: one block holding the key, then the value */
    char *value; /* points into key's block */
} ik_meta_entry;

struct ik_record {
    char *id;
    json_object *payload;
    ik_meta_entry *meta;
    size_t nmeta, capmeta;
    int priority;
    void *handle;               /* source's settlement handle */
    struct ik_instance *source; /* the source instance that made it */

    /* Routing state, guarded by the pipeline lock. */
    uint64_t seq;           /* emit order */
    size_t stage;           /* index of the processor it is at or going to */
    unsigned proc_attempts; /* attempts at the current processor */
    uint16_t sink_attempts[IK_MAX_SINKS];
    unsigned dlq_attempts;
    unsigned total_retries;
    int pending_sinks;  /* sinks still to accept it */
    int released;       /* some stage released it: outcome is RELEASED */
    int in_dead_letter; /* routed to the dead_letter sink */
    char *fail_reason;  /* first permanent failure, owned */
    char *fail_stage;   /* instance name, owned */
    unsigned fail_attempts;
    uint64_t emit_ms;

    /* Settlement, touched only by the thread settling the record. */
    int settling;         /* inside its source's settle() */
    int settle_failed;    /* the source could not carry out the outcome */
    char *settle_failure; /* why (owned; NULL when out of memory) */

    /* Settled, waiting for its source's thread to free it (pipeline_settle.c):
     * the next in that chain, guarded by the pipeline lock. */
    struct ik_record *next_free;
};

/* Makes a record; takes ownership of payload (freed on failure too). */
ik_record *ik_record_new(const char *id, json_object *payload);
void ik_record_free(ik_record *rec);

/* Metadata; see ik_host.record_meta / record_set_meta for the contract.
 * value NULL removes the key. */
const char *ik_record_meta(const ik_record *rec, const char *key);
int ik_record_set_meta(ik_record *rec, const char *key, const char *value);

/* Records the first permanent failure (later ones keep the first reason). */
int ik_record_set_failure(ik_record *rec, const char *stage, unsigned attempts, const char *reason);

#endif
