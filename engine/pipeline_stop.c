/*
 * pipeline_stop.c: shutdown: stop taking input, release what waits in queues
 * (and, on a forced exit, what is inside plugin calls) back to the source,
 * tell threads to quit and join them. No record is dropped: each one ends
 * settled as released.
 */
#include <time.h>

#include "log.h"
#include "pipeline_internal.h"

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
        pl_route_release(p, pl_target_stage(p, target), rec, out);
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
    pl_for_each_stage(p, pl_wake_stage);
    pthread_mutex_unlock(&p->mu);
    pl_settle_now(p, &out);
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
        pl_route_release(st->p, st, rec, out);
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
    pl_settle_now(p, &out);
    free(out.items);
}

void ik_pipeline_quit(ik_pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->delay_cv);
    pthread_cond_broadcast(&p->emit_cv);
    pl_for_each_stage(p, pl_wake_stage);
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
        pl_for_each_stage(p, join_stage);
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
            pl_settle_push(out, rec, IK_RELEASED, 0);
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
    pl_for_each_stage(p, pl_wake_stage);
    pthread_mutex_unlock(&p->mu);
    pl_settle_now(p, &out);
    free(out.items);
}

/* 1 when no thread of p but those stuck inside plugin calls runs (lock held). */
static int only_stuck_left(const ik_pipeline *p)
{
    return p->source_done && p->threads_running <= (int)p->busy;
}

void ik_pipeline_close_source(ik_pipeline *p, uint64_t wait_ms)
{
    uint64_t due = ik_now_ms() + wait_ms;
    pthread_mutex_lock(&p->mu);
    while (!only_stuck_left(p) && ik_now_ms() < due) {
        pthread_mutex_unlock(&p->mu);
        nanosleep(&(struct timespec){0, 5 * 1000000L}, NULL);
        pthread_mutex_lock(&p->mu);
    }
    int alone = only_stuck_left(p);
    pthread_mutex_unlock(&p->mu);
    if (!p->source.created)
        return;
    if (!alone) {
        ik_logf(IK_LOG_WARN, p->spec->name, p->source.spec->name,
                "source still running: not closed; what it settled in this run may be read "
                "again next run");
        return;
    }
    if (p->source.plugin->desc.destroy)
        p->source.plugin->desc.destroy(p->source.state);
    p->source.created = 0;
}
