/*
 * pipeline_worker.c: the threads in the middle of a record's path: stage
 * workers (wait for a batch, call process() or write(), route the results;
 * while their stage is down, wait and let one of them probe it, see
 * pipeline_down.c) and the retry thread that hands records whose backoff
 * ended back to their stage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crash_journal.h"
#include "host.h"
#include "log.h"
#include "pipeline_internal.h"
#include "stage_calls.h"

/* Partial batches leave at once when waiting cannot make them fuller: the
 * source is done, stopping or paused, or it is blocked on the in-flight limit while
 * no plugin call is running that could free a slot. */
static int flush_hint(const ik_pipeline *p)
{
    return p->source_done || p->stopping || p->paused || (p->emit_blocked && p->busy == 0);
}

/* See pipeline_internal.h. */
void pl_thread_done(ik_pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    p->threads_running--;
    pthread_mutex_unlock(&p->mu);
}

/* One stage worker's own state: its batch and what came back for it. */
typedef struct worker {
    ik_stage *st;
    ik_pipeline *p;
    uint32_t idx;         /* its slot in st->active */
    ik_record **batch;    /* room for max_items */
    ik_result *results;   /* one per record of the batch */
    uint64_t *costs;      /* cost of each record at the next processor */
    unsigned char *alone; /* per record: crashed here before, so called alone */
    int suspects;         /* some record of the batch is to be called alone */
    size_t n;             /* records in the current batch */
    settle_list out;      /* records to settle once the lock is dropped */
    ik_worker_call call;  /* the plugin's per-worker state and results layout */
    int probe;            /* this batch's call probes the down stage */
    int release;          /* stopping while the stage is down: release the batch, no call */
} worker;

/* What a waiting worker does next. */
enum worker_next { W_EXIT = 0, W_BATCH, W_PROBE };

/*
 * One look at st while it is down (p->mu held). Returns W_PROBE when this
 * worker is to call the plugin's probe(); W_BATCH with w->n set when it
 * takes a batch: the probe call of a plugin without probe(), or, once the
 * pipeline is stopping, records to release without a call (w->release);
 * else 0: nothing to do before *wake_ms (the caller waits, or exits on quit).
 */
static int worker_wait_down(worker *w, uint64_t now, uint64_t *wake_ms)
{
    ik_stage *st = w->st;
    ik_pipeline *p = w->p;
    *wake_ms = UINT64_MAX;
    if (p->stopping && ik_batcher_count(st->batcher) > 0) {
        w->n = ik_batcher_take(st->batcher, w->batch);
        w->release = 1;
        return W_BATCH;
    }
    if (p->stopping)
        return 0; /* nothing to probe for any more */
    int has_probe = st->inst.plugin->desc.probe != NULL;
    if (!has_probe && ik_batcher_count(st->batcher) == 0) {
        if (!st->probing)
            *wake_ms = st->probe_due_ms; /* wait for a record to probe with */
        return 0;
    }
    if (!pl_stage_probe_take(st, now, wake_ms))
        return 0;
    if (has_probe)
        return W_PROBE;
    w->n = ik_batcher_take(st->batcher, w->batch);
    w->probe = 1;
    return W_BATCH;
}

/*
 * Waits (p->mu held) until st's batcher has a batch to leave, then takes it
 * into w->batch: W_BATCH with w->n set (and w->probe or w->release as
 * worker_wait_down says while the stage is down), W_PROBE to call probe(),
 * or W_EXIT when the worker must exit (quit with nothing ready, or
 * abandoned).
 */
static int worker_wait_batch(worker *w)
{
    ik_stage *st = w->st;
    ik_pipeline *p = w->p;
    w->probe = w->release = 0;
    for (;;) {
        if (p->abandoned)
            return W_EXIT;
        uint64_t wake;
        if (st->down) {
            int next = worker_wait_down(w, ik_now_ms(), &wake);
            if (next == W_PROBE)
                return W_PROBE;
            if (next == W_BATCH)
                break;
        } else if (ik_batcher_ready(st->batcher, ik_now_ms(), flush_hint(p), &wake)) {
            w->n = ik_batcher_take(st->batcher, w->batch);
            break;
        }
        if (p->quit)
            return W_EXIT;
        st->idle++;
        pl_cond_wait_until(&st->cv, &p->mu, wake);
        st->idle--;
    }
    /* Pushes wake one worker per batch: pass on what is left to another. */
    if (st->idle > 0 && ik_batcher_count(st->batcher) > 0 && !st->down)
        pthread_cond_signal(&st->cv);
    return W_BATCH;
}

/* Calls the plugin's probe() for the down stage, without p->mu (entered and
 * left with it held), and resumes the stage or schedules the next probe. */
static void worker_probe(worker *w)
{
    char reason[IK_REASON_MAX];
    pthread_mutex_unlock(&w->p->mu);
    int rc = ik_worker_probe(&w->call, reason, sizeof reason);
    pthread_mutex_lock(&w->p->mu);
    if (rc == 0)
        pl_stage_up(w->st);
    else
        pl_stage_down(w->st, 1, reason);
}

/* The pipeline is stopping while the stage is down: the batch goes back to
 * its source at once, without a call (p->mu held). */
static void worker_release_batch(worker *w)
{
    for (size_t i = 0; i < w->n; i++)
        pl_route_release(w->p, w->st, w->batch[i], &w->out);
}

/*
 * Poison records (p->mu held, before the call): a record with max_crashes
 * or more crashes counted at this stage leaves the batch dead-lettered with
 * the reason; one with fewer (but some) is marked to be called alone, so
 * that a crash counts against it and not against its batch mates. The
 * batch is compacted in order.
 */
static void worker_poison(worker *w)
{
    ik_stage *st = w->st;
    ik_pipeline *p = w->p;
    w->suspects = 0;
    if (!p->journal || ik_cjournal_size(p->journal) == 0)
        return;
    size_t k = 0;
    for (size_t i = 0; i < w->n; i++) {
        ik_record *rec = w->batch[i];
        unsigned c = ik_cjournal_crashes(p->journal, st->inst.spec->name, rec);
        if (c >= p->spec->max_crashes) {
            ik_result res = {.status = IK_FAIL};
            snprintf(res.reason, sizeof res.reason, "crashed plugin %s in stage %s %u times",
                     st->inst.spec->plugin, st->inst.spec->name, c);
            ik_logf(IK_LOG_WARN, p->spec->name, st->inst.spec->name,
                    "record %s: %s; dead-lettering it instead of calling the plugin", rec->id,
                    res.reason);
            pl_route_result(p, st, rec, &res, 1, &w->out);
            continue;
        }
        w->alone[k] = c > 0;
        w->suspects |= c > 0;
        w->batch[k++] = rec;
    }
    w->n = k;
}

/* Counts the attempt and marks the batch active (p->mu held), so shutdown
 * can find its records while the plugin has them. */
static void worker_begin_call(worker *w)
{
    ik_stage *st = w->st;
    for (size_t i = 0; i < w->n; i++)
        pl_stage_attempts_add(st, w->batch[i], 1);
    st->active[w->idx] = w->batch;
    st->nactive[w->idx] = w->n;
    w->p->busy++;
}

/* One plugin call with the len records from `off` of the batch, noted in
 * the crash journal while it runs. A failed call (rc < 0) is a RETRY for
 * each of them. */
static void worker_call_part(worker *w, size_t off, size_t len)
{
    ik_stage *st = w->st;
    ik_cjournal *j = st->kind == STAGE_DLQ ? NULL : w->p->journal; /* DLQ: no slot */
    size_t slot = st->slot + w->idx;
    if (j)
        ik_cjournal_note(j, slot, st->inst.spec->name, st->inst.spec->plugin, w->batch + off, len);
    int rc = ik_worker_call_batch(&w->call, w->batch + off, len, w->results + off);
    if (j)
        ik_cjournal_done(j, slot);
    if (rc >= 0)
        return;
    for (size_t i = off; i < off + len; i++) {
        w->results[i].status = IK_RETRY;
        snprintf(w->results[i].reason, sizeof w->results[i].reason, "%s call failed: %s",
                 st->kind == STAGE_PROC ? "process" : "write", ik_strerror(rc));
    }
}

/* The plugin call, without p->mu: process() or write(), its metrics, and each
 * record's cost at the next processor (cost() is a plugin call too). A failed
 * call (rc < 0) is a RETRY for every record. */
static void worker_call(worker *w)
{
    ik_stage *st = w->st;
    ik_pipeline *p = w->p;
    size_t n = w->n;
    uint64_t t0 = ik_now_ms();
    /* Records marked alone get a call each; the others keep their runs. */
    for (size_t off = 0, len; off < n; off += len) {
        len = 1;
        if (!w->suspects || !w->alone[off])
            while (off + len < n && !(w->suspects && w->alone[off + len]))
                len++;
        worker_call_part(w, off, len);
    }
    ik_metric_observe(st->m_latency, (double)(ik_now_ms() - t0) / 1000.0);
    ik_metric_observe(st->m_batch, (double)n);
    if (st->kind != STAGE_PROC)
        return;
    /* A record answered IK_DOWN goes back to this stage: its cost here. */
    ik_stage *next = (size_t)st->index + 1 < p->nprocs ? p->procs[st->index + 1] : NULL;
    for (size_t i = 0; i < n; i++) {
        ik_stage *to = w->results[i].status == IK_DOWN ? st
                       : w->results[i].status == IK_OK ? next
                                                       : NULL;
        w->costs[i] = to && to->inst.plugin->desc.cost
                          ? to->inst.plugin->desc.cost(to->inst.state, w->batch[i])
                          : 1;
    }
}

/* Puts the records answered IK_DOWN back at the head of the stage's queue,
 * last first so they keep their order, and marks the stage down or, after a
 * probe, up (p->mu held). While stopping, IK_DOWN records are released by
 * pl_route_result instead. */
static void worker_route_down(worker *w)
{
    ik_stage *st = w->st;
    const char *reason = NULL;
    for (size_t i = w->n; i-- > 0;) {
        if (w->results[i].status != IK_DOWN)
            continue;
        reason = w->results[i].reason;
        if (!w->p->stopping) {
            ik_metric_add(st->m_status[IK_DOWN], 1);
            pl_route_down(w->p, st, w->batch[i], w->costs[i], &w->out);
        }
    }
    if (reason)
        pl_stage_down(st, w->probe, reason);
    else if (w->probe)
        pl_stage_up(st);
}

/* Back under p->mu after the call: the batch is no longer active and each
 * record goes where its result says. Returns 0 when the pipeline was
 * abandoned meanwhile (its records were released already: touch nothing). */
static int worker_end_call(worker *w)
{
    ik_stage *st = w->st;
    ik_pipeline *p = w->p;
    p->busy--;
    st->active[w->idx] = NULL;
    st->nactive[w->idx] = 0;
    if (p->abandoned)
        return 0;
    p->last_progress_ms = ik_now_ms();
    worker_route_down(w);
    for (size_t i = 0; i < w->n; i++)
        if (w->results[i].status != IK_DOWN || p->stopping)
            pl_route_result(p, st, w->batch[i], &w->results[i], w->costs[i], &w->out);
    /* The last call ended while the source waits for a slot: partial
     * batches cannot fill up any more, so let them leave. */
    if (p->busy == 0 && p->emit_blocked)
        pl_for_each_stage(p, pl_wake_stage);
    return 1;
}

/* Settles what the batch finished, with p->mu dropped for the source's
 * settle() calls (entered and left with p->mu held). */
static void worker_settle(worker *w)
{
    if (w->out.n == 0)
        return;
    pthread_mutex_unlock(&w->p->mu);
    pl_settle_now(w->p, &w->out);
    pthread_mutex_lock(&w->p->mu);
}

/* A stage worker: take a batch, call the plugin, route, settle; until quit. */
void *pl_worker_main(void *arg)
{
    worker w = {.st = ((worker_arg *)arg)->st, .idx = ((worker_arg *)arg)->idx};
    free(arg);
    w.p = w.st->p;
    size_t max = ik_batcher_spec(w.st->batcher)->max_items;
    w.batch = calloc(max, sizeof *w.batch);
    w.results = calloc(max, sizeof *w.results);
    w.costs = calloc(max, sizeof *w.costs);
    w.alone = calloc(max, sizeof *w.alone);
    ik_set_current_stage(w.st);
    if (ik_worker_begin(&w.call, &w.st->inst, w.idx, max) != 0)
        goto done;
    if (!w.batch || !w.results || !w.costs || !w.alone) {
        ik_logf(IK_LOG_ERROR, w.p->spec->name, w.st->inst.spec->name,
                "out of memory starting a worker");
        goto done;
    }

    pthread_mutex_lock(&w.p->mu);
    for (int next; (next = worker_wait_batch(&w)) != W_EXIT;) {
        if (next == W_PROBE) {
            worker_probe(&w);
            continue;
        }
        if (w.release) {
            worker_release_batch(&w);
            worker_settle(&w);
            continue;
        }
        if (w.st->kind != STAGE_DLQ)
            worker_poison(&w);
        if (w.n == 0) { /* every record of the batch was poison */
            if (w.probe) {
                /* no call was made: the next batch probes at once */
                w.st->probing = 0;
                w.st->probe_due_ms = ik_now_ms();
            }
            worker_settle(&w);
            continue;
        }
        worker_begin_call(&w);
        pthread_mutex_unlock(&w.p->mu);
        worker_call(&w);
        pthread_mutex_lock(&w.p->mu);
        if (!worker_end_call(&w))
            break;
        worker_settle(&w);
    }
    pthread_mutex_unlock(&w.p->mu);
done:
    ik_worker_end(&w.call);
    free(w.batch);
    free(w.results);
    free(w.costs);
    free(w.alone);
    free(w.out.items);
    pl_thread_done(w.p);
    return NULL;
}

/* Hands records whose retry time has come back to their stage. */
void *pl_delay_main(void *arg)
{
    ik_pipeline *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->quit && !p->abandoned) {
        int target;
        ik_record *rec = ik_delayq_pop_due(p->delayq, ik_now_ms(), &target);
        if (!rec) {
            pl_cond_wait_until(&p->delay_cv, &p->mu, ik_delayq_next_due(p->delayq));
            continue;
        }
        ik_stage *st = pl_target_stage(p, target);
        uint64_t cost = 1;
        if (st->kind == STAGE_PROC && st->inst.plugin->desc.cost) {
            /* cost() is a plugin call: make it without the lock. The record
             * is in no queue meanwhile, and shutdown waits for this thread. */
            pthread_mutex_unlock(&p->mu);
            cost = st->inst.plugin->desc.cost(st->inst.state, rec);
            pthread_mutex_lock(&p->mu);
        }
        if (pl_stage_push(st, rec, cost) != 0) {
            settle_list out = {0};
            ik_record_set_failure(rec, st->inst.spec->name, pl_stage_attempts(st, rec),
                                  "out of memory requeueing for retry");
            pl_route_dead_letter(p, rec, &out);
            pthread_mutex_unlock(&p->mu);
            pl_settle_now(p, &out);
            free(out.items);
            pthread_mutex_lock(&p->mu);
        }
    }
    pthread_mutex_unlock(&p->mu);
    pl_thread_done(p);
    return NULL;
}
