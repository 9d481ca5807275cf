/*
 * batcher.c: priority buckets of FIFO rings (see batcher.h).
 *
 * Buckets are kept sorted by priority, highest first. Recruiting pipelines
 * use a handful of priority levels, so a linear scan over buckets is cheaper
 * than a heap and keeps FIFO order exact within a level.
 */
#include "batcher.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

typedef struct item {
    ik_record *rec;
    uint64_t cost;
    uint64_t enq_ms;
} item;

typedef struct bucket {
    int priority;
    item *ring;
    size_t cap, head, count;
} bucket;

struct ik_batcher {
    ik_batch_spec spec;
    bucket *buckets;
    size_t nbuckets, capbuckets;
    size_t count;
    uint64_t total_cost;
};

ik_batcher *ik_batcher_new(const ik_batch_spec *spec)
{
    ik_batcher *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->spec = *spec;
    if (b->spec.max_items == 0)
        b->spec.max_items = 1;
    return b;
}

void ik_batcher_free(ik_batcher *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->nbuckets; i++)
        free(b->buckets[i].ring);
    free(b->buckets);
    free(b);
}

const ik_batch_spec *ik_batcher_spec(const ik_batcher *b)
{
    return &b->spec;
}

size_t ik_batcher_count(const ik_batcher *b)
{
    return b->count;
}

/* Finds or inserts the bucket for `priority`, keeping the array sorted. */
static bucket *bucket_for(ik_batcher *b, int priority)
{
    size_t i = 0;
    while (i < b->nbuckets && b->buckets[i].priority > priority)
        i++;
    if (i < b->nbuckets && b->buckets[i].priority == priority)
        return &b->buckets[i];
    bucket *grown = ik_array_grow(b->buckets, &b->capbuckets, b->nbuckets + 1, sizeof *grown);
    if (!grown)
        return NULL;
    b->buckets = grown;
    memmove(&b->buckets[i + 1], &b->buckets[i], (b->nbuckets - i) * sizeof *b->buckets);
    memset(&b->buckets[i], 0, sizeof *b->buckets);
    b->buckets[i].priority = priority;
    b->nbuckets++;
    return &b->buckets[i];
}

/* Grows a full ring; the part that wrapped past the old end moves to the new end. */
static int ring_grow(bucket *bk)
{
    size_t old = bk->cap;
    item *ring = ik_array_grow(bk->ring, &bk->cap, old + 1, sizeof *ring);
    if (!ring)
        return IK_E_NOMEM;
    size_t tail = old - bk->head; /* items from head to the old end */
    if (bk->count && tail < bk->count) {
        memmove(ring + bk->cap - tail, ring + bk->head, tail * sizeof *ring);
        bk->head = bk->cap - tail;
    }
    bk->ring = ring;
    return 0;
}

int ik_batcher_push(ik_batcher *b, ik_record *rec, uint64_t cost, uint64_t now_ms)
{
    bucket *bk = bucket_for(b, rec->priority);
    if (!bk)
        return IK_E_NOMEM;
    if (bk->count == bk->cap && ring_grow(bk) != 0)
        return IK_E_NOMEM;
    bk->ring[(bk->head + bk->count) % bk->cap] = (item){rec, cost, now_ms};
    bk->count++;
    b->count++;
    b->total_cost += cost;
    return 0;
}

int ik_batcher_push_front(ik_batcher *b, ik_record *rec, uint64_t cost)
{
    bucket *bk = bucket_for(b, rec->priority);
    if (!bk)
        return IK_E_NOMEM;
    if (bk->count == bk->cap && ring_grow(bk) != 0)
        return IK_E_NOMEM;
    bk->head = (bk->head + bk->cap - 1) % bk->cap;
    bk->ring[bk->head] = (item){rec, cost, 0}; /* it has waited already */
    bk->count++;
    b->count++;
    b->total_cost += cost;
    return 0;
}

static uint64_t oldest_enqueue(const ik_batcher *b)
{
    uint64_t oldest = UINT64_MAX;
    for (size_t i = 0; i < b->nbuckets; i++) {
        const bucket *bk = &b->buckets[i];
        if (bk->count && bk->ring[bk->head].enq_ms < oldest)
            oldest = bk->ring[bk->head].enq_ms;
    }
    return oldest;
}

int ik_batcher_full(const ik_batcher *b)
{
    if (b->count >= b->spec.max_items)
        return 1;
    return b->spec.max_cost && b->total_cost >= b->spec.max_cost;
}

int ik_batcher_ready(const ik_batcher *b, uint64_t now_ms, int flush, uint64_t *wake_ms)
{
    *wake_ms = UINT64_MAX;
    if (b->count == 0)
        return 0;
    if (flush || ik_batcher_full(b))
        return 1;
    uint64_t due = oldest_enqueue(b) + b->spec.max_wait_ms;
    if (due <= now_ms)
        return 1;
    *wake_ms = due;
    return 0;
}

static item bucket_pop(ik_batcher *b, bucket *bk)
{
    item it = bk->ring[bk->head];
    bk->head = (bk->head + 1) % bk->cap;
    bk->count--;
    b->count--;
    b->total_cost -= it.cost;
    return it;
}

size_t ik_batcher_take(ik_batcher *b, ik_record **out)
{
    size_t n = 0;
    uint64_t cost = 0;
    for (size_t i = 0; i < b->nbuckets && n < b->spec.max_items; i++) {
        bucket *bk = &b->buckets[i];
        while (bk->count && n < b->spec.max_items) {
            uint64_t c = bk->ring[bk->head].cost;
            if (b->spec.max_cost && cost + c > b->spec.max_cost) {
                if (n == 0) /* too big for any batch: it goes alone */
                    out[n++] = bucket_pop(b, bk).rec;
                return n;
            }
            out[n++] = bucket_pop(b, bk).rec;
            cost += c;
        }
    }
    return n;
}

ik_record *ik_batcher_pop_any(ik_batcher *b)
{
    for (size_t i = 0; i < b->nbuckets; i++)
        if (b->buckets[i].count)
            return bucket_pop(b, &b->buckets[i]).rec;
    return NULL;
}
