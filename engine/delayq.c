/* delayq.c: binary min-heap of records by retry due time (see delayq.h). */
#include "delayq.h"

#include <stdlib.h>

#include "common/buf.h"

typedef struct entry {
    uint64_t due;
    uint64_t seq; /* ties keep insertion order */
    ik_record *rec;
    int target;
} entry;

struct ik_delayq {
    entry *heap;
    size_t n, cap;
    uint64_t seq;
};

ik_delayq *ik_delayq_new(void)
{
    return calloc(1, sizeof(ik_delayq));
}

void ik_delayq_free(ik_delayq *q)
{
    if (q) {
        free(q->heap);
        free(q);
    }
}

static int before(const entry *a, const entry *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

int ik_delayq_push(ik_delayq *q, ik_record *rec, int target, uint64_t due_ms)
{
    entry *grown = ik_array_grow(q->heap, &q->cap, q->n + 1, sizeof *grown);
    if (!grown)
        return IK_E_NOMEM;
    q->heap = grown;
    size_t i = q->n++;
    entry e = {due_ms, q->seq++, rec, target};
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&e, &q->heap[parent]))
            break;
        q->heap[i] = q->heap[parent];
        i = parent;
    }
    q->heap[i] = e;
    return 0;
}

size_t ik_delayq_count(const ik_delayq *q)
{
    return q->n;
}

uint64_t ik_delayq_next_due(const ik_delayq *q)
{
    return q->n ? q->heap[0].due : UINT64_MAX;
}

ik_record *ik_delayq_pop_due(ik_delayq *q, uint64_t now_ms, int *target)
{
    if (q->n == 0 || (now_ms != UINT64_MAX && q->heap[0].due > now_ms))
        return NULL;
    entry top = q->heap[0];
    entry last = q->heap[--q->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const entry *best = &last;
        if (l < q->n && before(&q->heap[l], best)) {
            m = l;
            best = &q->heap[l];
        }
        if (r < q->n && before(&q->heap[r], best))
            m = r;
        if (m == i)
            break;
        q->heap[i] = q->heap[m];
        i = m;
    }
    if (q->n)
        q->heap[i] = last;
    *target = top.target;
    return top.rec;
}
