/*
 * batcher.h: the engine-owned batch former in front of every processor and
 * sink. It decides which waiting records go together into one call:
 * higher priority first, first-in first-out within a priority, at most
 * max_items records and at most max_cost total cost per batch, and a partial
 * batch leaves once its oldest record has waited max_wait.
 *
 * A plain data structure with no locking and no clock of its own: the stage
 * that owns it holds the pipeline lock and passes the time in, which keeps the
 * policy testable without threads.
 */
#ifndef IK_BATCHER_H
#define IK_BATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "record.h"

typedef struct ik_batcher ik_batcher;

/* Copies spec. NULL on allocation failure. */
ik_batcher *ik_batcher_new(const ik_batch_spec *spec);
/* Frees the batcher; records still in it are not freed (drain first). */
void ik_batcher_free(ik_batcher *b);

/* Queues a record with its cost at time now_ms. 0 or IK_E_NOMEM. */
int ik_batcher_push(ik_batcher *b, ik_record *rec, uint64_t cost, uint64_t now_ms);

/* Puts rec back at the head of its priority's queue, ready to leave at once:
 * a record a call handed back unhandled (IK_DOWN) goes first again. To put
 * back several in their order, push the last first. 0 or IK_E_NOMEM. */
int ik_batcher_push_front(ik_batcher *b, ik_record *rec, uint64_t cost);

size_t ik_batcher_count(const ik_batcher *b);

/* 1 when a whole batch waits: max_items records, or max_cost total cost. A
 * batch that leaves once full needs no timer, so the stage wakes a worker
 * when its batcher becomes full, not on every push. */
int ik_batcher_full(const ik_batcher *b);

/*
 * 1 when a batch should leave now: max_items reached, max_cost reached, the
 * oldest record has waited max_wait, or `flush` (no more input is coming
 * soon). Otherwise 0, with *wake_ms set to when the oldest record's wait ends
 * (UINT64_MAX when empty).
 */
int ik_batcher_ready(const ik_batcher *b, uint64_t now_ms, int flush, uint64_t *wake_ms);

/*
 * Moves the next batch into out (room for at least max_items) and returns its
 * size. Records are taken in priority order and stop at the first one that
 * would break max_items or max_cost, so order is never reshuffled to fill a
 * batch. A record whose cost alone exceeds max_cost leaves alone.
 */
size_t ik_batcher_take(ik_batcher *b, ik_record **out);

/* Removes and returns any one record (for draining at shutdown); NULL if empty. */
ik_record *ik_batcher_pop_any(ik_batcher *b);

const ik_batch_spec *ik_batcher_spec(const ik_batcher *b);

#endif
