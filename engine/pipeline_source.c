/*
 * pipeline_source.c: the start of a record's path: the source thread (the
 * source's run()) and the services the host table gives plugins: emit, reject
 * (host->settle), stopping, wait_ms, progress and the per-instance getters.
 */
#include <stdint.h>
#include <stdio.h>

#include "crash.h"
#include "instance.h"
#include "log.h"
#include "pipeline_internal.h"

/* The source thread: the source's run(), then the pipeline learns it is done
 * (workers flush partial batches) or failed. */
void *pl_source_main(void *arg)
{
    ik_pipeline *p = arg;
    const ik_plugin *d = &p->source.plugin->desc;
    ik_crash_note note; /* names run() in the crash line */
    ik_crash_enter(&note, &p->source, "run", NULL, 0);
    int rc = d->run(p->source.state);
    ik_crash_leave(&note);
    pthread_mutex_lock(&p->mu);
    p->source_done = 1; /* from now on settling threads free records themselves */
    ik_record *to_free = pl_take_to_free(p, SIZE_MAX);
    if (rc < 0) {
        p->source_failed = 1;
        snprintf(p->source_error, sizeof p->source_error, "source '%s' failed: %s",
                 p->source.spec->name, ik_strerror(rc));
    }
    pl_for_each_stage(p, pl_wake_stage);
    pthread_mutex_unlock(&p->mu);
    pl_free_chain(to_free);
    if (rc < 0)
        ik_logf(IK_LOG_ERROR, p->spec->name, p->source.spec->name, "source stopped with error: %s",
                ik_strerror(rc));
    else
        ik_logf(IK_LOG_DEBUG, p->spec->name, p->source.spec->name, "source finished");
    pl_thread_done(p);
    return NULL;
}

/* ----------------------------------------------------------- emit (host) */

/* Settled records the source thread frees per record it hands over: one,
 * so the next record's allocations reuse its memory (pipeline_settle.c). */
#define PL_FREE_PER_EMIT 1

/* Drops p->mu, then frees up to max settled records (on the source thread,
 * which allocated them: see pipeline_settle.c). */
static void unlock_and_free(ik_pipeline *p, size_t max)
{
    ik_record *to_free = pl_take_to_free(p, max);
    pthread_mutex_unlock(&p->mu);
    pl_free_chain(to_free);
}

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
    while (!p->stopping && (p->paused || p->inflight >= p->spec->inflight_limit)) {
        if (!block) {
            unlock_and_free(p, PL_FREE_PER_EMIT);
            return IK_E_BUSY;
        }
        if (!p->emit_blocked) {
            p->emit_blocked = 1;
            if (p->busy == 0)
                pl_for_each_stage(p, pl_wake_stage);
        }
        pthread_cond_wait(&p->emit_cv, &p->mu);
    }
    p->emit_blocked = 0;
    if (p->stopping) {
        unlock_and_free(p, SIZE_MAX);
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
        if (pl_stage_push(p->procs[0], rec, cost) != 0) {
            ik_record_set_failure(rec, p->procs[0]->inst.spec->name, 0,
                                  "out of memory queueing the record");
            pl_route_dead_letter(p, rec, &out);
        }
    } else {
        pl_route_to_sinks(p, rec, &out);
    }
    unlock_and_free(p, PL_FREE_PER_EMIT);
    if (out.n)
        pl_settle_now(p, &out);
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
    pl_route_dead_letter(p, rec, &out);
    unlock_and_free(p, PL_FREE_PER_EMIT);
    if (out.n)
        pl_settle_now(p, &out);
    free(out.items);
    return rc;
}

/* Sources ask this once per record: an atomic read, not a lock round trip. */
int ik_pipeline_stopping(ik_instance *self)
{
    return atomic_load(&self->pipeline->stopping);
}

int ik_pipeline_wait_ms(ik_instance *self, uint64_t ms)
{
    ik_pipeline *p = self->pipeline;
    uint64_t due = ik_now_ms() + ms;
    pthread_mutex_lock(&p->mu);
    int source = self == &p->source; /* only the source thread frees settled records */
    while (!p->stopping && ik_now_ms() < due) {
        ik_record *to_free =
            source ? pl_take_to_free(p, SIZE_MAX) : NULL; /* settled while it waits */
        if (to_free) {
            pthread_mutex_unlock(&p->mu);
            pl_free_chain(to_free);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        pl_cond_wait_until(&p->emit_cv, &p->mu, due);
    }
    int s = p->stopping;
    if (source)
        unlock_and_free(p, SIZE_MAX);
    else
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
    return stage ? pl_stage_attempts(stage, rec) : 0;
}
