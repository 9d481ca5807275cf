/*
 * pipeline_settle.c: the end of a record's path: telling its source the
 * outcome (settle()), counting it, giving back its in-flight slot and
 * freeing it. Plugin calls are made without the pipeline lock.
 *
 * Who frees: a record's memory (payload, id, metadata) was allocated on the
 * source thread. Freed on a sink worker, each free would go back to the
 * source thread's malloc arena under that arena's lock, the arenas contend
 * and the source's arena keeps consolidating and regrowing its heap. So
 * settled records are chained on p->to_free and the source thread frees
 * them, one at each emit or reject (PL_FREE_PER_EMIT), all of them in
 * wait_ms and when its run() returns. One, because the record freed is
 * about the shape of the one just made: its chunks go to the thread's malloc
 * cache (tcache, a few per size) and the next record's allocations come
 * straight back out of it, as in a plain parse-and-free loop. Freeing two or
 * more per record overflows that cache into the arena's bins, to be sorted
 * and consolidated there (callgrind, 20,000 records of tools/bench/engine:
 * the source thread ran 579 M instructions freeing four per emit, 500 M
 * freeing one).
 * Once the source is done nobody would take them: the settling thread frees
 * them itself.
 *
 * Bound: a settle moves a record from in flight to the chain, an emit
 * moves one from the chain to memory's free lists and one new record in
 * flight; only an emit that finds the chain empty adds a record, and it
 * needs a free in-flight slot. So in flight + chained <= inflight_limit,
 * plus the rejected input (host->settle) on its way to the dead letters,
 * which is admitted without a slot.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crash.h"
#include "crash_journal.h"
#include "log.h"
#include "pipeline_internal.h"
#include "common/buf.h"

int pl_settle_push(settle_list *l, ik_record *rec, ik_outcome outcome, int stored)
{
    settle_item *grown = ik_array_grow(l->items, &l->cap, l->n + 1, sizeof *grown);
    if (!grown)
        return IK_E_NOMEM;
    l->items = grown;
    l->items[l->n++] = (settle_item){rec, outcome, stored};
    return 0;
}

static const char *outcome_name(ik_outcome outcome)
{
    return outcome == IK_DELIVERED       ? "delivered"
           : outcome == IK_DEAD_LETTERED ? "dead-lettered"
                                         : "released";
}

/* What one pl_settle_now() pass counted. */
typedef struct settle_counts {
    size_t delivered, dead, released, failed;
    char failure[IK_REASON_MAX]; /* the last settle_failed() reason */
} settle_counts;

/*
 * Tells rec's source its outcome and counts what happened: the outcome, or,
 * when the source said it could not carry it out (settle_failed()), a
 * release that is also "not stored". Called without the lock.
 */
static void settle_one(ik_pipeline *p, const settle_item *it, settle_counts *c)
{
    ik_record *rec = it->rec;
    ik_instance *src = rec->source;
    ik_failure failure = {0};
    if (it->outcome == IK_DEAD_LETTERED) {
        failure.reason = rec->fail_reason ? rec->fail_reason : "dead-lettered";
        failure.stage = rec->fail_stage ? rec->fail_stage : "";
        failure.attempts = rec->fail_attempts;
        failure.stored = it->stored;
    }
    rec->settling = 1;
    ik_crash_note note; /* names settle() and its record in the crash line */
    ik_crash_enter(&note, src, "settle", &rec, 1);
    src->plugin->desc.settle(src->state, rec, it->outcome,
                             it->outcome == IK_DEAD_LETTERED ? &failure : NULL);
    ik_crash_leave(&note);
    rec->settling = 0;
    if (rec->settle_failed) {
        const char *why =
            rec->settle_failure ? rec->settle_failure : "(reason lost: out of memory)";
        ik_logf(IK_LOG_ERROR, p->spec->name, src->spec->name,
                "record %s was not %s: %s; counted as released, it stays with the source for "
                "its next run%s%s",
                rec->id, outcome_name(it->outcome), why, failure.reason ? "; it failed with: " : "",
                failure.reason ? failure.reason : "");
        snprintf(c->failure, sizeof c->failure, "record %s: %s", rec->id, why);
        c->released++;
        c->failed++;
    } else if (it->outcome == IK_DEAD_LETTERED) {
        char tries[48] = "";
        if (failure.attempts)
            snprintf(tries, sizeof tries, " after %u attempt(s)", failure.attempts);
        ik_logf(IK_LOG_WARN, p->spec->name, failure.stage, "record %s dead-lettered%s%s: %s",
                rec->id, tries, it->stored ? " (stored by the dead_letter sink)" : "",
                failure.reason);
        c->dead++;
    } else if (it->outcome == IK_DELIVERED) {
        c->delivered++;
    } else {
        c->released++;
    }
}

ik_record *pl_take_to_free(ik_pipeline *p, size_t max)
{
    ik_record *chain = p->to_free, *last = NULL;
    for (ik_record *r = chain; r && max > 0; r = r->next_free, max--)
        last = r;
    if (!last)
        return NULL;
    p->to_free = last->next_free;
    last->next_free = NULL;
    return chain;
}

void pl_free_chain(ik_record *chain)
{
    while (chain) {
        ik_record *next = chain->next_free;
        ik_record_free(chain);
        chain = next;
    }
}

/* Tells sources the outcome of every record in the list, gives back their
 * in-flight slots, then hands the records over to be freed (see the top of
 * this file). Called without the lock. */
void pl_settle_now(ik_pipeline *p, settle_list *list)
{
    if (list->n == 0)
        return;
    uint64_t now = ik_now_ms();
    settle_counts c = {0};
    ik_record *chain = NULL, **tail = &chain;
    for (size_t i = 0; i < list->n; i++) {
        ik_record *rec = list->items[i].rec;
        if (list->items[i].outcome != IK_RELEASED)
            ik_cjournal_forget(p->journal, rec); /* delivered or dead-lettered */
        settle_one(p, &list->items[i], &c);
        ik_metric_observe(p->m_latency, (double)(now - rec->emit_ms) / 1000.0);
        if (!p->abandoned) { /* abandoned: workers may still hold records, free none */
            rec->next_free = NULL;
            *tail = rec;
            tail = &rec->next_free;
        }
    }
    ik_metric_add(p->m_delivered, (double)c.delivered);
    ik_metric_add(p->m_dead, (double)c.dead);
    ik_metric_add(p->m_released, (double)c.released);
    ik_metric_add(p->m_settle_failed, (double)c.failed);

    pthread_mutex_lock(&p->mu);
    p->inflight -= list->n;
    p->stats.delivered += c.delivered;
    p->stats.dead_lettered += c.dead;
    p->stats.released += c.released;
    p->stats.settle_failed += c.failed;
    if (c.failed)
        snprintf(p->last_settle_failure, sizeof p->last_settle_failure, "%s", c.failure);
    if (c.delivered)
        p->last_delivered_ms = now;
    p->last_progress_ms = now;
    ik_metric_set(p->m_inflight, (double)p->inflight);
    if (chain && !p->source_done) {
        *tail = p->to_free;
        p->to_free = chain;
        chain = NULL;
    }
    pthread_cond_broadcast(&p->emit_cv);
    pthread_mutex_unlock(&p->mu);
    pl_free_chain(chain); /* the source is done: nobody else will */
    list->n = 0;
}

/* host->settle_failed(): only from inside the source's own settle() of rec
 * (rec->settling), where the record is held by the settling thread alone. */
void ik_pipeline_settle_failed(ik_instance *self, ik_record *rec, const char *reason)
{
    ik_pipeline *p = self->pipeline;
    if (!rec || !rec->settling || rec->source != self) {
        ik_logf(IK_LOG_ERROR, p->spec->name, self->spec->name,
                "settle_failed() called for record %s outside its settle(); ignored",
                rec ? rec->id : "(null)");
        return;
    }
    if (rec->settle_failed)
        return; /* the first reason stands */
    rec->settle_failed = 1;
    rec->settle_failure = strdup(reason && *reason ? reason : "the source could not carry it out");
}
