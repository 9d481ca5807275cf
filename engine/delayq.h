/*
 * delayq.h: records waiting for their retry time, ordered by due time (a
 * binary min-heap). Like the batcher it has no lock and no clock: the pipeline
 * holds its lock and passes the time.
 */
#ifndef IK_DELAYQ_H
#define IK_DELAYQ_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

typedef struct ik_delayq ik_delayq;

ik_delayq *ik_delayq_new(void);
/* Frees the queue, not the records in it (drain first). */
void ik_delayq_free(ik_delayq *q);

/* Queues rec to be handed back to stage `target` at due_ms. 0 or IK_E_NOMEM. */
int ik_delayq_push(ik_delayq *q, ik_record *rec, int target, uint64_t due_ms);
size_t ik_delayq_count(const ik_delayq *q);
/* Due time of the earliest entry, UINT64_MAX when empty. */
uint64_t ik_delayq_next_due(const ik_delayq *q);
/* Pops the earliest entry if due at now_ms (any entry if now_ms == UINT64_MAX);
 * returns NULL otherwise. *target receives its stage. */
ik_record *ik_delayq_pop_due(ik_delayq *q, uint64_t now_ms, int *target);

#endif
