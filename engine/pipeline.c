/*
 * pipeline.c: the runtime of one pipeline (see pipeline.h).
 *
 * Concurrency model: one mutex per pipeline guards every queue (the batchers
 * of all stages, the retry delay queue), the in-flight count and the routing
 * state of records. Plugin calls (run, cost, process, write, settle) are
 * always made without it. A worker takes a whole batch under the lock, calls
 * the plugin, then routes all results under one more acquisition, so the lock
 * is taken a few times per batch, not per record.
 *
 * Where a record can be: owned by the source (before emit); queued in a
 * stage's batcher or in the delay queue; active in a worker's batch (inside a
 * plugin call); being settled. Shutdown releases queued records, and records
 * coming back from an active call, to their source.
 */
#include "pipeline.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batcher.h"
#include "delayq.h"
#include "instance.h"
#include "log.h"
#include "options.h"
#include "record.h"
#include "retry.h"
#include "stage_calls.h"

enum stage_kind { STAGE_PROC = 1, STAGE_SINK = 2, STAGE_DLQ = 3 };

/* Delay-queue targets: processor i is i, sink k is SINK_BASE + k. */
#define SINK_BASE  1000
#define DLQ_TARGET 2000

typedef struct ik_stage {
    struct ik_pipeline *p;
    ik_instance inst;
    enum stage_kind kind;
    int index;
    ik_batcher *batcher;
    pthread_cond_t cv;
    pthread_t *threads;
    uint32_t nthreads;
    uint32_t started;
    int idle;
    ik_record ***active; /* per worker: the batch inside a plugin call */
    size_t *nactive;
    ik_metric *m_batch, *m_latency;
    ik_metric *m_status[4]; /* by ik_status */
} ik_stage;

typedef struct settle_item {
    ik_record *rec;
    ik_outcome outcome;
    int stored;
} settle_item;

/* A growable list of records to settle once the lock is dropped. */
typedef struct settle_list {
    settle_item *items;
    size_t n, cap;
} settle_list;

struct ik_pipeline {
    const ik_pipeline_spec *spec;
    ik_loader *loader;
    char describe[512];

    pthread_mutex_t mu;
    pthread_cond_t emit_cv;  /* in-flight slots freed, or stopping */
    pthread_cond_t delay_cv; /* delay queue changed, or quitting */

    ik_instance source;
    ik_stage **procs;
    size_t nprocs;
    ik_stage **sinks;
    size_t nsinks;
    ik_stage *dlq;

    ik_delayq *delayq;
    pthread_t source_thread, delay_thread;
    int source_started, delay_started;
    int threads_running;
    int joined;

    uint64_t inflight, seq, rng;
    int source_done, source_failed;
    char source_error[IK_REASON_MAX];
    int stopping, releasing, quit, abandoned;
    int emit_blocked;
    uint64_t busy; /* workers inside plugin calls */

    ik_pipeline_stats stats;
    uint64_t started_ms, last_delivered_ms, last_failure_ms, last_progress_ms;
    char last_failure[IK_REASON_MAX];
    char last_settle_failure[IK_REASON_MAX]; /* sticky: those records come back next run */

    ik_metrics *metrics;
    ik_timers *timers;
    ik_metric *m_in, *m_delivered, *m_dead, *m_released, *m_retried, *m_inflight, *m_latency;
    ik_metric *m_settle_failed;
};

static void settle_now(ik_pipeline *p, settle_list *list);

/* ---------------------------------------------------------------- helpers */

static void cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

static void cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t due_ms)
{
    if (due_ms == UINT64_MAX) {
        pthread_cond_wait(cv, mu);
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)(due_ms / 1000u),
                          .tv_nsec = (long)(due_ms % 1000u) * 1000000L};
    pthread_cond_timedwait(cv, mu, &ts);
}

static int settle_push(settle_list *l, ik_record *rec, ik_outcome outcome, int stored)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        settle_item *grown = realloc(l->items, cap * sizeof *grown);
        if (!grown)
            return IK_E_NOMEM;
        l->items = grown;
        l->cap = cap;
    }
    l->items[l->n++] = (settle_item){rec, outcome, stored};
    return 0;
}

static void for_each_stage(ik_pipeline *p, void (*fn)(ik_stage *))
{
    for (size_t i = 0; i < p->nprocs; i++)
        fn(p->procs[i]);
    for (size_t i = 0; i < p->nsinks; i++)
        fn(p->sinks[i]);
    if (p->dlq)
        fn(p->dlq);
}

static void wake_stage(ik_stage *st)
{
    pthread_cond_broadcast(&st->cv);
}

/* Partial batches leave at once when waiting cannot make them fuller: the
 * source is done or stopping, or it is blocked on the in-flight limit while
 * no plugin call is running that could free a slot. */
static int flush_hint(const ik_pipeline *p)
{
    return p->source_done || p->stopping || (p->emit_blocked && p->busy == 0);
}

/* Pushes rec into stage st's batcher (lock held) and wakes a worker if one
 * is idle. On allocation failure the record is dead-lettered by the caller. */
static int stage_push(ik_stage *st, ik_record *rec, uint64_t cost)
{
    int rc = ik_batcher_push(st->batcher, rec, cost, ik_now_ms());
    if (rc == 0 && st->idle > 0)
        pthread_cond_signal(&st->cv);
    return rc;
}

/* --------------------------------------------------------------- routing */

static void route_dead_letter(ik_pipeline *p, ik_record *rec, settle_list *out);

/* Sends rec on to every sink (lock held). */
static void route_to_sinks(ik_pipeline *p, ik_record *rec, settle_list *out)
{
    rec->pending_sinks = (int)p->nsinks;
    for (size_t k = 0; k < p->nsinks; k++) {
        if (stage_push(p->sinks[k], rec, 1) != 0) {
            ik_record_set_failure(rec, p->sinks[k]->inst.spec->name, 0,
                                  "out of memory queueing the record");
            rec->pending_sinks--;
        }
    }
    if (rec->pending_sinks == 0)
        route_dead_letter(p, rec, out);
}

/* Final outcome of a record whose sinks have all answered. */
static void route_sinks_done(ik_pipeline *p, ik_record *rec, settle_list *out)
{
    if (rec->released)
        settle_push(out, rec, IK_RELEASED, 0);
    else if (rec->fail_reason)
        route_dead_letter(p, rec, out);
    else
        settle_push(out, rec, IK_DELIVERED, 0);
}

/* A permanent failure: to the dead_letter sink if there is one and the record
 * has not been there, else straight to the source's own dead-letter place. */
static void route_dead_letter(ik_pipeline *p, ik_record *rec, settle_list *out)
{
    p->last_failure_ms = ik_now_ms();
    snprintf(p->last_failure, sizeof p->last_failure, "%s: %s",
             rec->fail_stage ? rec->fail_stage : "?", rec->fail_reason ? rec->fail_reason : "?");
    if (p->dlq && !rec->in_dead_letter && !p->releasing) {
        rec->in_dead_letter = 1;
        rec->dlq_attempts = 0;
        if (stage_push(p->dlq, rec, 1) == 0)
            return;
    }
    settle_push(out, rec, IK_DEAD_LETTERED, 0);
}

/* The stage a delay-queue target names. */
static ik_stage *target_stage(ik_pipeline *p, int target)
{
    if (target == DLQ_TARGET)
        return p->dlq;
    return target >= SINK_BASE ? p->sinks[target - SINK_BASE] : p->procs[target];
}

/* rec leaves stage st released: given back to its source once every sink
 * it is waiting for has answered (lock held). */
static void route_release(ik_pipeline *p, ik_stage *st, ik_record *rec, settle_list *out)
{
    rec->released = 1;
    if (st->kind != STAGE_SINK)
        settle_push(out, rec, IK_RELEASED, 0);
    else if (--rec->pending_sinks == 0)
        route_sinks_done(p, rec, out);
}

/* rec failed for good at stage st, its failure already recorded (lock held). */
static void route_failed(ik_pipeline *p, ik_stage *st, ik_record *rec, settle_list *out)
{
    if (st->kind != STAGE_SINK)
        route_dead_letter(p, rec, out);
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
        route_release(p, st, rec, out);
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
        settle_push(out, rec, IK_DEAD_LETTERED, 0);
        return;
    }
    ik_record_set_failure(rec, st->inst.spec->name, attempts, why);
    route_failed(p, st, rec, out);
}

static unsigned stage_attempts(const ik_stage *st, const ik_record *rec)
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
static void route_result(ik_pipeline *p, ik_stage *st, ik_record *rec, const ik_result *res,
                         uint64_t next_cost, settle_list *out)
{
    unsigned attempts = stage_attempts(st, rec);
    ik_status status = res->status;
    if (status < IK_OK || status > IK_RELEASE)
        status = IK_FAIL;
    ik_metric_add(st->m_status[status], 1);

    if (p->releasing && !(st->kind != STAGE_PROC && status == IK_OK))
        status = IK_RELEASE; /* past the shutdown timeout: nothing moves on */

    if (st->kind == STAGE_DLQ) {
        if (status == IK_OK)
            settle_push(out, rec, IK_DEAD_LETTERED, 1);
        else if (status == IK_RETRY)
            route_retry(p, st, rec, attempts, res->reason, out);
        else if (status == IK_RELEASE)
            settle_push(out, rec, IK_RELEASED, 0);
        else {
            ik_logf(IK_LOG_ERROR, p->spec->name, st->inst.spec->name,
                    "dead-letter sink refused record %s: %s; handing it to its source's "
                    "dead-letter place",
                    rec->id, res->reason);
            settle_push(out, rec, IK_DEAD_LETTERED, 0);
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
            if (stage_push(p->procs[rec->stage], rec, next_cost) != 0) {
                ik_record_set_failure(rec, st->inst.spec->name, attempts,
                                      "out of memory queueing the record");
                route_dead_letter(p, rec, out);
            }
        } else {
            route_to_sinks(p, rec, out);
        }
        return;
    case IK_RETRY:
        route_retry(p, st, rec, attempts, res->reason, out);
        return;
    case IK_RELEASE:
        route_release(p, st, rec, out);
        return;
    case IK_FAIL:
    default:
        ik_record_set_failure(rec, st->inst.spec->name, attempts,
                              res->reason[0] ? res->reason : "failed (no reason given)");
        route_failed(p, st, rec, out);
        return;
    }
}

/* ------------------------------------------------------------ settlement */

static const char *outcome_name(ik_outcome outcome)
{
    return outcome == IK_DELIVERED       ? "delivered"
           : outcome == IK_DEAD_LETTERED ? "dead-lettered"
                                         : "released";
}

/* What one settle_now() pass counted. */
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
    src->plugin->desc.settle(src->state, rec, it->outcome,
                             it->outcome == IK_DEAD_LETTERED ? &failure : NULL);
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

/* Tells sources the outcome of every record in the list, frees them, then
 * gives back their in-flight slots. Called without the lock. */
static void settle_now(ik_pipeline *p, settle_list *list)
{
    if (list->n == 0)
        return;
    uint64_t now = ik_now_ms();
    settle_counts c = {0};
    for (size_t i = 0; i < list->n; i++) {
        ik_record *rec = list->items[i].rec;
        settle_one(p, &list->items[i], &c);
        ik_metric_observe(p->m_latency, (double)(now - rec->emit_ms) / 1000.0);
        if (!p->abandoned)
            ik_record_free(rec);
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
    pthread_cond_broadcast(&p->emit_cv);
    pthread_mutex_unlock(&p->mu);
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

/* ---------------------------------------------------------------- workers */

typedef struct worker_arg {
    ik_stage *st;
    uint32_t idx;
} worker_arg;

static void worker_done(ik_pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    p->threads_running--;
    pthread_mutex_unlock(&p->mu);
}

static void *worker_main(void *arg)
{
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    ik_stage *st = wa.st;
    ik_pipeline *p = st->p;
    size_t max = ik_batcher_spec(st->batcher)->max_items;
    ik_record **batch = calloc(max, sizeof *batch);
    ik_result *results = calloc(max, sizeof *results);
    uint64_t *costs = calloc(max, sizeof *costs);
    settle_list out = {0};
    ik_set_current_stage(st);
    ik_worker_call wc;
    if (ik_worker_begin(&wc, &st->inst, wa.idx, max) != 0)
        goto done;
    if (!batch || !results || !costs) {
        ik_logf(IK_LOG_ERROR, p->spec->name, st->inst.spec->name,
                "out of memory starting a worker");
        goto done;
    }

    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->abandoned)
            break;
        uint64_t wake;
        if (!ik_batcher_ready(st->batcher, ik_now_ms(), flush_hint(p), &wake)) {
            if (p->quit)
                break;
            st->idle++;
            cond_wait_until(&st->cv, &p->mu, wake);
            st->idle--;
            continue;
        }
        size_t n = ik_batcher_take(st->batcher, batch);
        for (size_t i = 0; i < n; i++) {
            if (st->kind == STAGE_PROC)
                batch[i]->proc_attempts++;
            else if (st->kind == STAGE_SINK)
                batch[i]->sink_attempts[st->index]++;
            else
                batch[i]->dlq_attempts++;
        }
        st->active[wa.idx] = batch;
        st->nactive[wa.idx] = n;
        p->busy++;
        pthread_mutex_unlock(&p->mu);

        uint64_t t0 = ik_now_ms();
        int rc = ik_worker_call_batch(&wc, batch, n, results);
        if (rc < 0) {
            for (size_t i = 0; i < n; i++) {
                results[i].status = IK_RETRY;
                snprintf(results[i].reason, sizeof results[i].reason, "%s call failed: %s",
                         st->kind == STAGE_PROC ? "process" : "write", ik_strerror(rc));
            }
        }
        ik_metric_observe(st->m_latency, (double)(ik_now_ms() - t0) / 1000.0);
        ik_metric_observe(st->m_batch, (double)n);
        /* Cost at the next processor, without the lock (a plugin call). */
        if (st->kind == STAGE_PROC && (size_t)st->index + 1 < p->nprocs) {
            ik_stage *next = p->procs[st->index + 1];
            for (size_t i = 0; i < n; i++)
                costs[i] = (results[i].status == IK_OK && next->inst.plugin->desc.cost)
                               ? next->inst.plugin->desc.cost(next->inst.state, batch[i])
                               : 1;
        }

        pthread_mutex_lock(&p->mu);
        p->busy--;
        st->active[wa.idx] = NULL;
        st->nactive[wa.idx] = 0;
        if (p->abandoned)
            break;
        p->last_progress_ms = ik_now_ms();
        for (size_t i = 0; i < n; i++)
            route_result(p, st, batch[i], &results[i], costs[i], &out);
        if (p->busy == 0 && p->emit_blocked)
            for_each_stage(p, wake_stage);
        if (out.n) {
            pthread_mutex_unlock(&p->mu);
            settle_now(p, &out);
            pthread_mutex_lock(&p->mu);
        }
    }
    pthread_mutex_unlock(&p->mu);
done:
    ik_worker_end(&wc);
    free(batch);
    free(results);
    free(costs);
    free(out.items);
    worker_done(p);
    return NULL;
}

/* Hands records whose retry time has come back to their stage. */
static void *delay_main(void *arg)
{
    ik_pipeline *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->quit && !p->abandoned) {
        int target;
        ik_record *rec = ik_delayq_pop_due(p->delayq, ik_now_ms(), &target);
        if (!rec) {
            cond_wait_until(&p->delay_cv, &p->mu, ik_delayq_next_due(p->delayq));
            continue;
        }
        ik_stage *st = target_stage(p, target);
        uint64_t cost = 1;
        if (st->kind == STAGE_PROC && st->inst.plugin->desc.cost) {
            /* cost() is a plugin call: make it without the lock. The record
             * is in no queue meanwhile, and shutdown waits for this thread. */
            pthread_mutex_unlock(&p->mu);
            cost = st->inst.plugin->desc.cost(st->inst.state, rec);
            pthread_mutex_lock(&p->mu);
        }
        if (stage_push(st, rec, cost) != 0) {
            settle_list out = {0};
            ik_record_set_failure(rec, st->inst.spec->name, stage_attempts(st, rec),
                                  "out of memory requeueing for retry");
            route_dead_letter(p, rec, &out);
            pthread_mutex_unlock(&p->mu);
            settle_now(p, &out);
            free(out.items);
            pthread_mutex_lock(&p->mu);
        }
    }
    pthread_mutex_unlock(&p->mu);
    worker_done(p);
    return NULL;
}

static void *source_main(void *arg)
{
    ik_pipeline *p = arg;
    const ik_plugin *d = &p->source.plugin->desc;
    int rc = d->run(p->source.state);
    pthread_mutex_lock(&p->mu);
    p->source_done = 1;
    if (rc < 0) {
        p->source_failed = 1;
        snprintf(p->source_error, sizeof p->source_error, "source '%s' failed: %s",
                 p->source.spec->name, ik_strerror(rc));
    }
    for_each_stage(p, wake_stage);
    pthread_mutex_unlock(&p->mu);
    if (rc < 0)
        ik_logf(IK_LOG_ERROR, p->spec->name, p->source.spec->name, "source stopped with error: %s",
                ik_strerror(rc));
    else
        ik_logf(IK_LOG_DEBUG, p->spec->name, p->source.spec->name, "source finished");
    worker_done(p);
    return NULL;
}

/* ----------------------------------------------------------- emit (host) */

/* Admits a record from the source: waits for (or, with block = 0, reports
 * the lack of) an in-flight slot, then queues it at the first stage. */
int ik_pipeline_emit(ik_instance *self, ik_record *rec, int block)
{
    ik_pipeline *p = self->pipeline;
    if (!rec)
        return IK_E_INVAL;
    uint64_t cost = 1;
    if (p->nprocs && p->procs[0]->inst.plugin->desc.cost)
        cost = p->procs[0]->inst.plugin->desc.cost(p->procs[0]->inst.state, rec);
    pthread_mutex_lock(&p->mu);
    while (!p->stopping && p->inflight >= p->spec->inflight_limit) {
        if (!block) {
            pthread_mutex_unlock(&p->mu);
            return IK_E_BUSY;
        }
        if (!p->emit_blocked) {
            p->emit_blocked = 1;
            if (p->busy == 0)
                for_each_stage(p, wake_stage);
        }
        pthread_cond_wait(&p->emit_cv, &p->mu);
    }
    p->emit_blocked = 0;
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        return IK_E_STOPPING;
    }
    rec->source = self;
    rec->seq = p->seq++;
    rec->emit_ms = ik_now_ms();
    rec->stage = 0;
    p->inflight++;
    p->stats.in++;
    ik_metric_add(p->m_in, 1);
    ik_metric_set(p->m_inflight, (double)p->inflight);
    settle_list out = {0};
    if (p->nprocs) {
        if (stage_push(p->procs[0], rec, cost) != 0) {
            ik_record_set_failure(rec, p->procs[0]->inst.spec->name, 0,
                                  "out of memory queueing the record");
            route_dead_letter(p, rec, &out);
        }
    } else {
        route_to_sinks(p, rec, &out);
    }
    pthread_mutex_unlock(&p->mu);
    if (out.n)
        settle_now(p, &out);
    free(out.items);
    return 0;
}

/* A record the source cannot emit (malformed input): counted, then
 * dead-lettered like any other failure. Always takes ownership. */
int ik_pipeline_reject(ik_instance *self, ik_record *rec, const char *reason)
{
    ik_pipeline *p = self->pipeline;
    if (!rec)
        return IK_E_INVAL;
    rec->source = self;
    rec->emit_ms = ik_now_ms();
    int rc = ik_record_set_failure(rec, self->spec->name, 0, reason);
    settle_list out = {0};
    pthread_mutex_lock(&p->mu);
    rec->seq = p->seq++;
    p->inflight++;
    p->stats.in++;
    ik_metric_add(p->m_in, 1);
    route_dead_letter(p, rec, &out);
    pthread_mutex_unlock(&p->mu);
    if (out.n)
        settle_now(p, &out);
    free(out.items);
    return rc;
}

int ik_pipeline_stopping(ik_instance *self)
{
    ik_pipeline *p = self->pipeline;
    pthread_mutex_lock(&p->mu);
    int s = p->stopping;
    pthread_mutex_unlock(&p->mu);
    return s;
}

int ik_pipeline_wait_ms(ik_instance *self, uint64_t ms)
{
    ik_pipeline *p = self->pipeline;
    uint64_t due = ik_now_ms() + ms;
    pthread_mutex_lock(&p->mu);
    while (!p->stopping && ik_now_ms() < due)
        cond_wait_until(&p->emit_cv, &p->mu, due);
    int s = p->stopping;
    pthread_mutex_unlock(&p->mu);
    return s;
}

/* A plugin call that runs long says it is alive: what the stall rule of
 * health looks at. */
void ik_pipeline_progress(ik_instance *self)
{
    ik_pipeline *p = self->pipeline;
    pthread_mutex_lock(&p->mu);
    p->last_progress_ms = ik_now_ms();
    pthread_mutex_unlock(&p->mu);
}

size_t ik_pipeline_max_record_size(ik_instance *self)
{
    return (size_t)self->pipeline->spec->max_record_size;
}

ik_metrics *ik_pipeline_metrics(ik_instance *self)
{
    return self->pipeline->metrics;
}

ik_timers *ik_pipeline_timers(ik_instance *self)
{
    return self->pipeline->timers;
}

const char *ik_instance_pipeline_name(ik_instance *self)
{
    return self->pipeline->spec->name;
}

unsigned ik_stage_record_attempts(const ik_stage *stage, const ik_record *rec)
{
    return stage ? stage_attempts(stage, rec) : 0;
}

/* --------------------------------------------------------------- building */

static const char *role_name(ik_stage_role role)
{
    switch (role) {
    case IK_ROLE_SOURCE:
        return "source";
    case IK_ROLE_PROCESSOR:
        return "processor";
    case IK_ROLE_SINK:
        return "sink";
    case IK_ROLE_DEAD_LETTER:
        return "dead_letter sink";
    }
    return "stage";
}

static ik_kind kind_for_role(ik_stage_role role)
{
    return role == IK_ROLE_SOURCE      ? IK_KIND_SOURCE
           : role == IK_ROLE_PROCESSOR ? IK_KIND_PROCESSOR
                                       : IK_KIND_SINK;
}

/* Resolves the plugin of one stage and validates its options. */
static int bind_instance(ik_pipeline *p, ik_instance *inst, const ik_stage_spec *spec, ik_err *err)
{
    inst->pipeline = p;
    inst->spec = spec;
    int rc = ik_loader_get(p->loader, spec->plugin, &inst->plugin, err);
    if (rc != 0) {
        ik_err_prefix(err, "%s:%d: pipeline '%s': ", spec->file, spec->line, p->spec->name);
        return rc;
    }
    ik_kind want = kind_for_role(spec->role);
    if (inst->plugin->desc.kind != want)
        return ik_err_set(err, IK_E_CONFIG,
                          "%s:%d: pipeline '%s': plugin '%s' is a %s and cannot be used as a %s",
                          spec->file, spec->line, p->spec->name, spec->plugin,
                          ik_kind_name(inst->plugin->desc.kind), role_name(spec->role));
    rc = ik_options_bind(inst->plugin->desc.options, inst->plugin->desc.config_size, spec->plugin,
                         spec, &inst->opts, err);
    return rc != 0 ? rc : ik_instance_check(inst, err);
}

static ik_stage *stage_new(ik_pipeline *p, const ik_stage_spec *spec, enum stage_kind kind,
                           int index, ik_err *err)
{
    ik_stage *st = calloc(1, sizeof *st);
    if (!st) {
        ik_err_set(err, IK_E_NOMEM, "out of memory");
        return NULL;
    }
    st->p = p;
    st->kind = kind;
    st->index = index;
    st->inst.stage = st;
    cond_init_monotonic(&st->cv);
    if (bind_instance(p, &st->inst, spec, err) != 0)
        return st; /* caller frees through the pipeline */
    st->batcher = ik_batcher_new(&spec->batch);
    st->nthreads = spec->concurrency ? spec->concurrency : 1;
    st->threads = calloc(st->nthreads, sizeof *st->threads);
    st->active = calloc(st->nthreads, sizeof *st->active);
    st->nactive = calloc(st->nthreads, sizeof *st->nactive);
    if (!st->batcher || !st->threads || !st->active || !st->nactive)
        ik_err_set(err, IK_E_NOMEM, "out of memory");
    return st;
}

static void stage_free(ik_stage *st)
{
    if (!st)
        return;
    if (st->inst.created && st->inst.plugin->desc.destroy)
        st->inst.plugin->desc.destroy(st->inst.state);
    ik_optvals_free(st->inst.opts);
    ik_workers_gate_free(&st->inst);
    ik_batcher_free(st->batcher);
    pthread_cond_destroy(&st->cv);
    free(st->threads);
    free(st->active);
    free(st->nactive);
    free(st);
}

int ik_pipeline_new(const ik_pipeline_spec *spec, ik_loader *loader, ik_pipeline **out, ik_err *err)
{
    ik_pipeline *p = calloc(1, sizeof *p);
    if (!p)
        return ik_err_set(err, IK_E_NOMEM, "out of memory");
    p->spec = spec;
    p->loader = loader;
    p->rng = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)p;
    pthread_mutex_init(&p->mu, NULL);
    cond_init_monotonic(&p->emit_cv);
    cond_init_monotonic(&p->delay_cv);
    int rc = 0;
    if (spec->nsinks > IK_MAX_SINKS)
        rc = ik_err_set(err, IK_E_CONFIG, "%s:%d: pipeline '%s' has %zu sinks; at most %d",
                        spec->file, spec->line, spec->name, spec->nsinks, IK_MAX_SINKS);
    if (rc == 0)
        rc = bind_instance(p, &p->source, &spec->source, err);
    if (rc == 0 && !(p->delayq = ik_delayq_new()))
        rc = ik_err_set(err, IK_E_NOMEM, "out of memory");
    if (rc == 0) {
        p->procs = calloc(spec->nprocessors ? spec->nprocessors : 1, sizeof *p->procs);
        p->sinks = calloc(spec->nsinks ? spec->nsinks : 1, sizeof *p->sinks);
        if (!p->procs || !p->sinks)
            rc = ik_err_set(err, IK_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; rc == 0 && i < spec->nprocessors; i++) {
        p->procs[i] = stage_new(p, &spec->processors[i], STAGE_PROC, (int)i, err);
        if (p->procs[i])
            p->nprocs++;
        rc = err && err->code ? err->code : (p->procs[i] ? 0 : IK_E_NOMEM);
    }
    for (size_t i = 0; rc == 0 && i < spec->nsinks; i++) {
        p->sinks[i] = stage_new(p, &spec->sinks[i], STAGE_SINK, (int)i, err);
        if (p->sinks[i])
            p->nsinks++;
        rc = err && err->code ? err->code : (p->sinks[i] ? 0 : IK_E_NOMEM);
    }
    if (rc == 0 && spec->dead_letter) {
        p->dlq = stage_new(p, spec->dead_letter, STAGE_DLQ, 0, err);
        rc = err && err->code ? err->code : (p->dlq ? 0 : IK_E_NOMEM);
    }
    if (rc != 0) {
        ik_pipeline_free(p);
        return rc;
    }
    size_t off = (size_t)snprintf(p->describe, sizeof p->describe, "%s", spec->source.name);
    for (size_t i = 0; i < p->nprocs && off < sizeof p->describe; i++)
        off += (size_t)snprintf(p->describe + off, sizeof p->describe - off, " -> %s",
                                spec->processors[i].name);
    for (size_t i = 0; i < p->nsinks && off < sizeof p->describe; i++)
        off += (size_t)snprintf(p->describe + off, sizeof p->describe - off, "%s%s",
                                i ? ", " : " -> ", spec->sinks[i].name);
    if (p->dlq && off < sizeof p->describe)
        snprintf(p->describe + off, sizeof p->describe - off, " (dead letters -> %s)",
                 spec->dead_letter->name);
    *out = p;
    return 0;
}

static int create_instance(ik_pipeline *p, ik_instance *inst, ik_err *err)
{
    int rc = inst->plugin->desc.create(ik_host_table(), inst, ik_optvals_config(inst->opts),
                                       &inst->state);
    if (rc != 0)
        return ik_err_set(err, rc < 0 ? rc : IK_E_CONFIG,
                          "%s:%d: pipeline '%s': plugin '%s' (instance '%s') failed to start: %s "
                          "(see the log above)",
                          inst->spec->file, inst->spec->line, p->spec->name, inst->spec->plugin,
                          inst->spec->name, ik_strerror(rc));
    inst->created = 1;
    return 0;
}

static const double batch_bounds[] = {1, 2, 5, 10, 20, 50, 100, 200, 500};
static const double latency_bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60};
static const char *status_label[] = {"ok", "retry", "fail", "release"};

static void stage_metrics(ik_pipeline *p, ik_stage *st)
{
    const char *labels[] = {"pipeline", p->spec->name, "instance", st->inst.spec->name, NULL};
    st->m_batch =
        ik_metrics_histogram(p->metrics, "intake_batch_size", "Records per plugin call, by stage.",
                             labels, batch_bounds, sizeof batch_bounds / sizeof *batch_bounds);
    st->m_latency = ik_metrics_histogram(
        p->metrics, "intake_stage_latency_seconds", "Duration of one plugin call, by stage.",
        labels, latency_bounds, sizeof latency_bounds / sizeof *latency_bounds);
    for (int s = 0; s < 4; s++) {
        const char *sl[] = {"pipeline", p->spec->name,   "instance", st->inst.spec->name,
                            "status",   status_label[s], NULL};
        st->m_status[s] = ik_metrics_counter(p->metrics, "intake_stage_records_total",
                                             "Per-record statuses returned, by stage.", sl);
    }
}

int ik_pipeline_create(ik_pipeline *p, ik_metrics *metrics, ik_timers *timers, ik_err *err)
{
    p->metrics = metrics;
    p->timers = timers;
    const char *labels[] = {"pipeline", p->spec->name, NULL};
    p->m_in = ik_metrics_counter(metrics, "intake_records_in_total",
                                 "Records taken in from the source.", labels);
    p->m_delivered = ik_metrics_counter(metrics, "intake_records_delivered_total",
                                        "Records accepted by every sink.", labels);
    p->m_dead = ik_metrics_counter(metrics, "intake_records_dead_lettered_total",
                                   "Records dead-lettered.", labels);
    p->m_released = ik_metrics_counter(metrics, "intake_records_released_total",
                                       "Records given back to their source unfinished.", labels);
    p->m_retried = ik_metrics_counter(metrics, "intake_records_retried_total",
                                      "Retries scheduled after a transient failure.", labels);
    p->m_settle_failed = ik_metrics_counter(
        metrics, "intake_records_settle_failed_total",
        "Records whose outcome their source could not carry out (not stored; counted as released, "
        "they come back on its next run).",
        labels);
    p->m_inflight = ik_metrics_gauge(metrics, "intake_records_inflight",
                                     "Records taken in and not yet settled.", labels);
    p->m_latency = ik_metrics_histogram(metrics, "intake_record_latency_seconds",
                                        "Time from emit to settlement.", labels, latency_bounds,
                                        sizeof latency_bounds / sizeof *latency_bounds);
    for (size_t i = 0; i < p->nprocs; i++)
        stage_metrics(p, p->procs[i]);
    for (size_t i = 0; i < p->nsinks; i++)
        stage_metrics(p, p->sinks[i]);
    if (p->dlq)
        stage_metrics(p, p->dlq);

    /* Sinks first, source last: nothing can emit before its consumers exist. */
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < p->nsinks; i++)
        rc = create_instance(p, &p->sinks[i]->inst, err);
    if (rc == 0 && p->dlq)
        rc = create_instance(p, &p->dlq->inst, err);
    for (size_t i = 0; rc == 0 && i < p->nprocs; i++)
        rc = create_instance(p, &p->procs[i]->inst, err);
    if (rc == 0)
        rc = create_instance(p, &p->source, err);
    return rc;
}

static int start_thread(ik_pipeline *p, pthread_t *t, void *(*fn)(void *), void *arg, ik_err *err)
{
    p->threads_running++;
    if (pthread_create(t, NULL, fn, arg) != 0) {
        p->threads_running--;
        return ik_err_set(err, IK_E_NOMEM, "pipeline '%s': cannot start a thread", p->spec->name);
    }
    return 0;
}

static int start_stage(ik_pipeline *p, ik_stage *st, ik_err *err)
{
    if (ik_workers_gate_open(&st->inst, st->nthreads, err) != 0)
        return err->code;
    for (uint32_t w = 0; w < st->nthreads; w++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa)
            return ik_err_set(err, IK_E_NOMEM, "out of memory");
        wa->st = st;
        wa->idx = w;
        if (start_thread(p, &st->threads[w], worker_main, wa, err) != 0) {
            free(wa);
            return err->code;
        }
        st->started++;
    }
    return ik_workers_gate_wait(&st->inst, st->started, err);
}

int ik_pipeline_start(ik_pipeline *p, ik_err *err)
{
    p->started_ms = p->last_delivered_ms = p->last_progress_ms = ik_now_ms();
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < p->nsinks; i++)
        rc = start_stage(p, p->sinks[i], err);
    if (rc == 0 && p->dlq)
        rc = start_stage(p, p->dlq, err);
    for (size_t i = 0; rc == 0 && i < p->nprocs; i++)
        rc = start_stage(p, p->procs[i], err);
    if (rc == 0 && (rc = start_thread(p, &p->delay_thread, delay_main, p, err)) == 0)
        p->delay_started = 1;
    if (rc == 0 && (rc = start_thread(p, &p->source_thread, source_main, p, err)) == 0)
        p->source_started = 1;
    pthread_mutex_unlock(&p->mu);
    ik_logf(IK_LOG_INFO, p->spec->name, NULL, "started: %s", p->describe);
    return rc;
}

/* -------------------------------------------------------------- shutdown */

int ik_pipeline_finished(ik_pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    /* A pipeline whose source never started (start-up failed) has nothing
     * in flight and nothing to wait for. */
    int done = (p->source_done || !p->source_started) && p->inflight == 0;
    pthread_mutex_unlock(&p->mu);
    return done;
}

int ik_pipeline_source_failed(ik_pipeline *p, const char **why)
{
    pthread_mutex_lock(&p->mu);
    int failed = p->source_failed;
    pthread_mutex_unlock(&p->mu);
    if (why)
        *why = p->source_error;
    return failed;
}

/* Moves every record waiting in the delay queue into `out` as released. */
static void release_delayed(ik_pipeline *p, settle_list *out)
{
    int target;
    ik_record *rec;
    while ((rec = ik_delayq_pop_due(p->delayq, UINT64_MAX, &target)))
        route_release(p, target_stage(p, target), rec, out);
}

void ik_pipeline_stop_input(ik_pipeline *p)
{
    settle_list out = {0};
    pthread_mutex_lock(&p->mu);
    int first = !p->stopping;
    p->stopping = 1;
    release_delayed(p, &out);
    pthread_cond_broadcast(&p->emit_cv);
    pthread_cond_broadcast(&p->delay_cv);
    for_each_stage(p, wake_stage);
    pthread_mutex_unlock(&p->mu);
    settle_now(p, &out);
    free(out.items);
    if (first) {
        ik_logf(IK_LOG_INFO, p->spec->name, NULL, "stopping: no new input, finishing in flight");
        if (p->source.created && p->source.plugin->desc.stop)
            p->source.plugin->desc.stop(p->source.state);
    }
}

/* Drains one stage's batcher into `out` as released (lock held). */
static void release_stage_queue(ik_stage *st, settle_list *out)
{
    ik_record *rec;
    while ((rec = ik_batcher_pop_any(st->batcher)))
        route_release(st->p, st, rec, out);
}

static void release_all_queued(ik_pipeline *p, settle_list *out)
{
    release_delayed(p, out);
    for (size_t i = 0; i < p->nprocs; i++)
        release_stage_queue(p->procs[i], out);
    for (size_t i = 0; i < p->nsinks; i++)
        release_stage_queue(p->sinks[i], out);
    if (p->dlq)
        release_stage_queue(p->dlq, out);
}

void ik_pipeline_release_queued(ik_pipeline *p)
{
    settle_list out = {0};
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    p->releasing = 1;
    release_all_queued(p, &out);
    uint64_t busy = p->busy;
    pthread_mutex_unlock(&p->mu);
    if (out.n || busy)
        ik_logf(IK_LOG_WARN, p->spec->name, NULL,
                "shutdown timeout: releasing %zu queued record(s) to the source; %llu plugin "
                "call(s) still running will release theirs when they return",
                out.n, (unsigned long long)busy);
    settle_now(p, &out);
    free(out.items);
}

void ik_pipeline_quit(ik_pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->delay_cv);
    pthread_cond_broadcast(&p->emit_cv);
    for_each_stage(p, wake_stage);
    pthread_mutex_unlock(&p->mu);
}

uint64_t ik_pipeline_busy(ik_pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    uint64_t b = p->busy;
    pthread_mutex_unlock(&p->mu);
    return b;
}

static void join_stage(ik_stage *st)
{
    for (uint32_t w = 0; w < st->started; w++)
        pthread_join(st->threads[w], NULL);
    st->started = 0;
}

int ik_pipeline_threads_done(ik_pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    int running = p->threads_running;
    pthread_mutex_unlock(&p->mu);
    if (running > 0)
        return 0;
    if (!p->joined) {
        if (p->source_started)
            pthread_join(p->source_thread, NULL);
        if (p->delay_started)
            pthread_join(p->delay_thread, NULL);
        for_each_stage(p, join_stage);
        p->joined = 1;
    }
    return 1;
}

/* Releases the records inside st's running plugin calls (lock held). A record
 * active in several sinks at once is released by the last of them. */
static void release_active(ik_stage *st, settle_list *out)
{
    for (uint32_t w = 0; w < st->nthreads; w++) {
        for (size_t i = 0; st->active[w] && i < st->nactive[w]; i++) {
            ik_record *rec = st->active[w][i];
            if (st->kind == STAGE_SINK && --rec->pending_sinks > 0)
                continue;
            settle_push(out, rec, IK_RELEASED, 0);
        }
    }
}

void ik_pipeline_abandon(ik_pipeline *p)
{
    settle_list out = {0};
    pthread_mutex_lock(&p->mu);
    p->stopping = p->releasing = p->quit = 1;
    release_all_queued(p, &out);
    for (size_t i = 0; i < p->nprocs; i++)
        release_active(p->procs[i], &out);
    for (size_t i = 0; i < p->nsinks; i++)
        release_active(p->sinks[i], &out);
    if (p->dlq)
        release_active(p->dlq, &out);
    /* From here on no worker touches a record again, and records are not
     * freed: workers may still be inside plugin calls holding them. */
    p->abandoned = 1;
    pthread_cond_broadcast(&p->emit_cv);
    pthread_cond_broadcast(&p->delay_cv);
    for_each_stage(p, wake_stage);
    pthread_mutex_unlock(&p->mu);
    settle_now(p, &out);
    free(out.items);
}

void ik_pipeline_free(ik_pipeline *p)
{
    if (!p)
        return;
    /* Reverse of creation: the source first, so nothing emits into freed stages. */
    if (p->source.created && p->source.plugin->desc.destroy)
        p->source.plugin->desc.destroy(p->source.state);
    ik_optvals_free(p->source.opts);
    for (size_t i = 0; i < p->nprocs; i++)
        stage_free(p->procs[i]);
    for (size_t i = 0; i < p->nsinks; i++)
        stage_free(p->sinks[i]);
    stage_free(p->dlq);
    /* Anything still queued here was never started (error during start-up). */
    if (p->delayq) {
        int target;
        ik_record *rec;
        while ((rec = ik_delayq_pop_due(p->delayq, UINT64_MAX, &target)))
            ik_record_free(rec);
        ik_delayq_free(p->delayq);
    }
    free(p->procs);
    free(p->sinks);
    pthread_cond_destroy(&p->emit_cv);
    pthread_cond_destroy(&p->delay_cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* ---------------------------------------------------------------- reports */

void ik_pipeline_stats_get(ik_pipeline *p, ik_pipeline_stats *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->stats;
    out->inflight = p->inflight;
    pthread_mutex_unlock(&p->mu);
}

const char *ik_pipeline_name(const ik_pipeline *p)
{
    return p->spec->name;
}

const char *ik_pipeline_describe(const ik_pipeline *p)
{
    return p->describe;
}

static json_object *plugin_health(ik_instance *inst, int *all_ok, json_object *reasons)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "instance", json_object_new_string(inst->spec->name));
    json_object_object_add(o, "plugin", json_object_new_string(inst->spec->plugin));
    json_object_object_add(o, "kind",
                           json_object_new_string(ik_kind_name(inst->plugin->desc.kind)));
    ik_health h = {.ok = 1};
    if (inst->created && inst->plugin->desc.health) {
        if (inst->plugin->desc.health(inst->state, &h) != 0 && h.reason[0] == '\0') {
            h.ok = 0;
            snprintf(h.reason, sizeof h.reason, "health check failed");
        }
    }
    char clean[IK_REASON_MAX];
    ik_log_redact(h.reason, clean, sizeof clean);
    json_object_object_add(o, "ok", json_object_new_boolean(h.ok != 0));
    if (clean[0])
        json_object_object_add(o, "reason", json_object_new_string(clean));
    if (!h.ok) {
        *all_ok = 0;
        char msg[IK_REASON_MAX + 64];
        snprintf(msg, sizeof msg, "%s: %s", inst->spec->name, clean[0] ? clean : "unhealthy");
        json_object_array_add(reasons, json_object_new_string(msg));
    }
    return o;
}

json_object *ik_pipeline_health(ik_pipeline *p, int *healthy)
{
    json_object *o = json_object_new_object();
    json_object *reasons = json_object_new_array();
    json_object *plugins = json_object_new_array();
    int ok = 1;
    uint64_t now = ik_now_ms(), window = p->spec->health_window_ms;

    pthread_mutex_lock(&p->mu);
    ik_pipeline_stats s = p->stats;
    s.inflight = p->inflight;
    uint64_t last_delivered = p->last_delivered_ms, last_failure = p->last_failure_ms;
    uint64_t last_progress = p->last_progress_ms;
    char failure[IK_REASON_MAX];
    snprintf(failure, sizeof failure, "%s", p->last_failure);
    int source_failed = p->source_failed;
    char source_error[IK_REASON_MAX];
    snprintf(source_error, sizeof source_error, "%s", p->source_error);
    int finished = p->source_done && p->inflight == 0;
    char settle_failure[IK_REASON_MAX];
    snprintf(settle_failure, sizeof settle_failure, "%s", p->last_settle_failure);
    pthread_mutex_unlock(&p->mu);

    char msg[2 * IK_REASON_MAX];
    if (source_failed) {
        ok = 0;
        json_object_array_add(reasons, json_object_new_string(source_error));
    }
    /* Sticky: those records wait in the source until it runs again. */
    if (s.settle_failed > 0) {
        ok = 0;
        char clean[IK_REASON_MAX];
        ik_log_redact(settle_failure, clean, sizeof clean);
        snprintf(msg, sizeof msg,
                 "%llu record(s) not stored: the source could not carry out their outcome and "
                 "keeps them for its next run; last: %s",
                 (unsigned long long)s.settle_failed, clean);
        json_object_array_add(reasons, json_object_new_string(msg));
    }
    /* Data must be moving: failures and no delivery for a whole window. */
    if (last_failure && now - last_failure < window && now - last_delivered >= window) {
        ok = 0;
        char clean[IK_REASON_MAX];
        ik_log_redact(failure, clean, sizeof clean);
        snprintf(msg, sizeof msg,
                 "records are failing: none delivered in the last %llu s; last failure at %s",
                 (unsigned long long)(window / 1000), clean);
        json_object_array_add(reasons, json_object_new_string(msg));
    }
    if (s.inflight > 0 && now - last_progress >= window) {
        ok = 0;
        snprintf(msg, sizeof msg,
                 "stalled: %llu record(s) in flight and no stage finished a call in %llu s",
                 (unsigned long long)s.inflight, (unsigned long long)(window / 1000));
        json_object_array_add(reasons, json_object_new_string(msg));
    }
    json_object_array_add(plugins, plugin_health(&p->source, &ok, reasons));
    for (size_t i = 0; i < p->nprocs; i++)
        json_object_array_add(plugins, plugin_health(&p->procs[i]->inst, &ok, reasons));
    for (size_t i = 0; i < p->nsinks; i++)
        json_object_array_add(plugins, plugin_health(&p->sinks[i]->inst, &ok, reasons));
    if (p->dlq)
        json_object_array_add(plugins, plugin_health(&p->dlq->inst, &ok, reasons));

    json_object_object_add(o, "name", json_object_new_string(p->spec->name));
    json_object_object_add(o, "status", json_object_new_string(ok ? "ok" : "unhealthy"));
    json_object_object_add(o, "finished", json_object_new_boolean(finished));
    json_object_object_add(o, "reasons", reasons);
    json_object_object_add(o, "in", json_object_new_int64((int64_t)s.in));
    json_object_object_add(o, "delivered", json_object_new_int64((int64_t)s.delivered));
    json_object_object_add(o, "dead_lettered", json_object_new_int64((int64_t)s.dead_lettered));
    json_object_object_add(o, "released", json_object_new_int64((int64_t)s.released));
    json_object_object_add(o, "retries", json_object_new_int64((int64_t)s.retries));
    json_object_object_add(o, "inflight", json_object_new_int64((int64_t)s.inflight));
    json_object_object_add(o, "not_stored", json_object_new_int64((int64_t)s.settle_failed));
    json_object_object_add(o, "plugins", plugins);
    *healthy = ok;
    return o;
}
