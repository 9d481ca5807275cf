/*
 * pipeline_route.c: where a record goes after each step of its path (see
 * pipeline_internal.h): into the next stage's batcher, on to every sink, to
 * the retry delay queue, to the dead_letter sink, or onto the list of records
 * to settle. Every function here runs with the pipeline lock held and calls
 * no plugin.
 */
#include <stdio.h>

#include "log.h"
#include "pipeline_internal.h"
#include "retry.h"

/*
 * Pushes rec into stage st's batcher (lock held). An idle worker is woken only
 * when it has something new to do: a first record (to arm its max_wait timer)
 * or a batch that just became full; in between it sleeps, so a batch costs
 * one or two wake-ups, not one per record. (Flush conditions wake workers
 * where they change; a worker that takes a batch wakes the next idle one if
 * records remain.) On allocation failure the record is dead-lettered by the
 * caller.
 */
int pl_stage_push(ik_stage *st, ik_record *rec, uint64_t cost)
{
    size_t before = ik_batcher_count(st->batcher);
    int was_full = ik_batcher_full(st->batcher);
    int rc = ik_batcher_push(st->batcher, rec, cost, ik_now_ms());
    if (rc == 0 && st->idle > 0 && (before == 0 || (!was_full && ik_batcher_full(st->batcher))))
        pthread_cond_signal(&st->cv);
    return rc;
}

/* Sends rec on to every sink (lock held). */
void pl_route_to_sinks(ik_pipeline *p, ik_record *rec, settle_list *out)
{
    rec->pending_sinks = (int)p->nsinks;
    for (size_t k = 0; k < p->nsinks; k++) {
        if (pl_stage_push(p->sinks[k], rec, 1) != 0) {
            ik_record_set_failure(rec, p->sinks[k]->inst.spec->name, 0,
                                  "out of memory queueing the record");
            rec->pending_sinks--;
        }
    }
    if (rec->pending_sinks == 0)
        pl_route_dead_letter(p, rec, out);
}

/* Final outcome of a record whose sinks have all answered. */
static void route_sinks_done(ik_pipeline *p, ik_record *rec, settle_list *out)
{
    if (rec->released)
        pl_settle_push(out, rec, IK_RELEASED, 0);
    else if (rec->fail_reason)
        pl_route_dead_letter(p, rec, out);
    else
        pl_settle_push(out, rec, IK_DELIVERED, 0);
}

/* A permanent failure: to the dead_letter sink if there is one and the record
 * has not been there, else straight to the source's own dead-letter place. */
void pl_route_dead_letter(ik_pipeline *p, ik_record *rec, settle_list *out)
{
    p->last_failure_ms = ik_now_ms();
    snprintf(p->last_failure, sizeof p->last_failure, "%s: %s",
             rec->fail_stage ? rec->fail_stage : "?", rec->fail_reason ? rec->fail_reason : "?");
    if (p->dlq && !rec->in_dead_letter && !p->releasing) {
        rec->in_dead_letter = 1;
        rec->dlq_attempts = 0;
        if (pl_stage_push(p->dlq, rec, 1) == 0)
            return;
    }
    pl_settle_push(out, rec, IK_DEAD_LETTERED, 0);
}

/* The stage a delay-queue target names. */
ik_stage *pl_target_stage(ik_pipeline *p, int target)
{
    if (target == DLQ_TARGET)
        return p->dlq;
    return target >= SINK_BASE ? p->sinks[target - SINK_BASE] : p->procs[target];
}

/* rec leaves stage st released: given back to its source once every sink
 * it is waiting for has answered (lock held). */
void pl_route_release(ik_pipeline *p, ik_stage *st, ik_record *rec, settle_list *out)
{
    rec->released = 1;
    if (st->kind != STAGE_SINK)
        pl_settle_push(out, rec, IK_RELEASED, 0);
    else if (--rec->pending_sinks == 0)
        route_sinks_done(p, rec, out);
}

/* rec failed for good at stage st, its failure already recorded (lock held). */
static void route_failed(ik_pipeline *p, ik_stage *st, ik_record *rec, settle_list *out)
{
    if (st->kind != STAGE_SINK)
        pl_route_dead_letter(p, rec, out);
    else if (--rec->pending_sinks == 0)
        route_sinks_done(p, rec, out);
}

/* Retry or give up (lock held). `attempts` were made at the stage. */
static void route_retry(ik_pipeline *p, ik_stage *st, ik_record *rec, unsigned attempts,
                        const char *reason, settle_list *out)
{
    if (!p->stopping && ik_retry_allowed(&p->spec->retry, attempts)) {
        int target = st->kind == STAGE_PROC   ? st->index
                     : st->kind == STAGE_SINK ? SINK_BASE + st->index
                                              : DLQ_TARGET;
        uint64_t due = ik_now_ms() + ik_retry_backoff_ms(&p->spec->retry, attempts, &p->rng);
        if (ik_delayq_push(p->delayq, rec, target, due) == 0) {
            /* A retry is a failure too, as far as health goes: a pipeline
             * that only ever retries is not moving data. */
            p->last_failure_ms = ik_now_ms();
            snprintf(p->last_failure, sizeof p->last_failure, "%s: %s (retrying)",
                     st->inst.spec->name, reason && *reason ? reason : "transient failure");
            rec->total_retries++;
            p->stats.retries++;
            ik_metric_add(p->m_retried, 1);
            pthread_cond_signal(&p->delay_cv);
            return;
        }
    }
    if (p->stopping) {
        /* Shutting down: a record that would wait for a retry goes back to its
         * source instead of waiting out its backoff. */
        pl_route_release(p, st, rec, out);
        return;
    }
    char why[IK_REASON_MAX];
    snprintf(why, sizeof why, "gave up after %u attempts: %s", attempts,
             reason && *reason ? reason : "transient failure");
    if (st->kind == STAGE_DLQ) {
        ik_logf(IK_LOG_ERROR, p->spec->name, st->inst.spec->name,
                "dead-letter sink could not store record %s (%s); handing it to its source's "
                "dead-letter place",
                rec->id, why);
        pl_settle_push(out, rec, IK_DEAD_LETTERED, 0);
        return;
    }
    ik_record_set_failure(rec, st->inst.spec->name, attempts, why);
    route_failed(p, st, rec, out);
}

void pl_stage_attempts_add(const ik_stage *st, ik_record *rec, int delta)
{
    switch (st->kind) {
    case STAGE_PROC:
        if (delta > 0 || rec->proc_attempts > 0)
            rec->proc_attempts += (unsigned)delta;
        return;
    case STAGE_SINK:
        if (delta > 0 || rec->sink_attempts[st->index] > 0)
            rec->sink_attempts[st->index] += (uint16_t)delta;
        return;
    case STAGE_DLQ:
        if (delta > 0 || rec->dlq_attempts > 0)
            rec->dlq_attempts += (unsigned)delta;
        return;
    }
}

unsigned pl_stage_attempts(const ik_stage *st, const ik_record *rec)
{
    switch (st->kind) {
    case STAGE_PROC:
        return rec->proc_attempts;
    case STAGE_SINK:
        return rec->sink_attempts[st->index];
    case STAGE_DLQ:
        return rec->dlq_attempts;
    }
    return 0;
}

/* Routes one record after a plugin call at stage st (lock held). `next_cost`
 * is the cost at the next processor, computed before taking the lock. */
void pl_route_result(ik_pipeline *p, ik_stage *st, ik_record *rec, const ik_result *res,
                     uint64_t next_cost, settle_list *out)
{
    unsigned attempts = pl_stage_attempts(st, rec);
    ik_status status = res->status;
    if (status < IK_OK || status > IK_DOWN)
        status = IK_FAIL;
    ik_metric_add(st->m_status[status], 1);
    /* IK_DOWN reaches here only while stopping (else pl_route_down keeps
     * the record): nothing will be tried again, so it goes back. */
    if (status == IK_DOWN)
        status = IK_RELEASE;

    if (p->releasing && !(st->kind != STAGE_PROC && status == IK_OK))
        status = IK_RELEASE; /* past the shutdown timeout: nothing moves on */

    if (st->kind == STAGE_DLQ) {
        if (status == IK_OK)
            pl_settle_push(out, rec, IK_DEAD_LETTERED, 1);
        else if (status == IK_RETRY)
            route_retry(p, st, rec, attempts, res->reason, out);
        else if (status == IK_RELEASE)
            pl_settle_push(out, rec, IK_RELEASED, 0);
        else {
            ik_logf(IK_LOG_ERROR, p->spec->name, st->inst.spec->name,
                    "dead-letter sink refused record %s: %s; handing it to its source's "
                    "dead-letter place",
                    rec->id, res->reason);
            pl_settle_push(out, rec, IK_DEAD_LETTERED, 0);
        }
        return;
    }

    switch (status) {
    case IK_OK:
        if (st->kind == STAGE_SINK) {
            if (--rec->pending_sinks == 0)
                route_sinks_done(p, rec, out);
        } else if ((size_t)st->index + 1 < p->nprocs) {
            rec->stage = (size_t)st->index + 1;
            rec->proc_attempts = 0;
            if (pl_stage_push(p->procs[rec->stage], rec, next_cost) != 0) {
                ik_record_set_failure(rec, st->inst.spec->name, attempts,
                                      "out of memory queueing the record");
                pl_route_dead_letter(p, rec, out);
            }
        } else {
            pl_route_to_sinks(p, rec, out);
        }
        return;
    case IK_RETRY:
        route_retry(p, st, rec, attempts, res->reason, out);
        return;
    case IK_RELEASE:
        pl_route_release(p, st, rec, out);
        return;
    case IK_FAIL:
    default:
        ik_record_set_failure(rec, st->inst.spec->name, attempts,
                              res->reason[0] ? res->reason : "failed (no reason given)");
        route_failed(p, st, rec, out);
        return;
    }
}
