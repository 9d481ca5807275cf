/*
 * pipeline.c: building, starting and freeing one pipeline (see pipeline.h):
 * resolve and bind each stage's plugin, create instances, register metrics,
 * start the source, worker and retry threads. The record's path itself is in
 * pipeline_source.c (emit), pipeline_worker.c (stage workers),
 * pipeline_route.c (routing), pipeline_settle.c (settlement) and
 * pipeline_stop.c (shutdown); pipeline_internal.h has the shared structs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "crash_journal.h"
#include "host.h"
#include "instance.h"
#include "log.h"
#include "options.h"
#include "pipeline_internal.h"
#include "stage_calls.h"
#include "state.h"

/* Condition variables wait on the monotonic clock (pl_cond_wait_until). */
static void cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

/* --------------------------------------------------------------- building */

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
    /* A file may provide several kinds (SDK 2.2): the role picks one. */
    int rc = ik_loader_get(p->loader, spec->plugin, kind_for_role(spec->role), &inst->plugin, err);
    if (rc != 0) {
        ik_err_prefix(err, "%s:%d: pipeline '%s': ", spec->file, spec->line, p->spec->name);
        return rc;
    }
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
    ik_commands_clear(&st->inst.commands);
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
    inst->registering = 1; /* control commands: only from create() */
    int rc = inst->plugin->desc.create(ik_host_table(), inst, ik_optvals_config(inst->opts),
                                       &inst->state);
    inst->registering = 0;
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
static const char *status_label[] = {"ok", "retry", "fail", "release", "down"};

static void stage_metrics(ik_pipeline *p, ik_stage *st)
{
    const char *labels[] = {"pipeline", p->spec->name, "instance", st->inst.spec->name, NULL};
    st->m_batch =
        ik_metrics_histogram(p->metrics, "intake_batch_size", "Records per plugin call, by stage.",
                             labels, batch_bounds, sizeof batch_bounds / sizeof *batch_bounds);
    st->m_latency = ik_metrics_histogram(
        p->metrics, "intake_stage_latency_seconds", "Duration of one plugin call, by stage.",
        labels, latency_bounds, sizeof latency_bounds / sizeof *latency_bounds);
    for (int s = 0; s < 5; s++) {
        const char *sl[] = {"pipeline", p->spec->name,   "instance", st->inst.spec->name,
                            "status",   status_label[s], NULL};
        st->m_status[s] = ik_metrics_counter(p->metrics, "intake_stage_records_total",
                                             "Per-record statuses returned, by stage.", sl);
    }
    st->m_down = ik_metrics_gauge(p->metrics, "intake_stage_down",
                                  "1 while the stage is paused because its destination is down "
                                  "(a call answered IK_DOWN), else 0.",
                                  labels);
    st->m_probes =
        ik_metrics_counter(p->metrics, "intake_stage_probes_total",
                           "Probes of a down stage (probe() calls, or probe batches).", labels);
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
        rc = pl_control_builtins(p, err);
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
        if (start_thread(p, &st->threads[w], pl_worker_main, wa, err) != 0) {
            free(wa);
            return err->code;
        }
        st->started++;
    }
    return ik_workers_gate_wait(&st->inst, st->started, err);
}

/* Opens the crash journal beside the state store, one slot per worker of
 * each processor and sink (the dead_letter sink is not journalled: where
 * would its poison go). Off with max_crashes = 0 or without a store. */
static int journal_open(ik_pipeline *p, ik_err *err)
{
    if (p->spec->max_crashes == 0 || !p->state)
        return 0;
    size_t nslots = 0;
    for (size_t i = 0; i < p->nprocs; i++) {
        p->procs[i]->slot = nslots;
        nslots += p->procs[i]->nthreads;
    }
    for (size_t i = 0; i < p->nsinks; i++) {
        p->sinks[i]->slot = nslots;
        nslots += p->sinks[i]->nthreads;
    }
    if (ik_state_make_dir(p->state, err) != 0)
        return err->code;
    return ik_cjournal_open(p->state, ik_state_dir(p->state), p->spec->name, nslots, &p->journal,
                            err);
}

int ik_pipeline_start(ik_pipeline *p, ik_err *err)
{
    if (journal_open(p, err) != 0)
        return err->code;
    p->started_ms = p->last_delivered_ms = p->last_progress_ms = ik_now_ms();
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < p->nsinks; i++)
        rc = start_stage(p, p->sinks[i], err);
    if (rc == 0 && p->dlq)
        rc = start_stage(p, p->dlq, err);
    for (size_t i = 0; rc == 0 && i < p->nprocs; i++)
        rc = start_stage(p, p->procs[i], err);
    if (rc == 0 && (rc = start_thread(p, &p->delay_thread, pl_delay_main, p, err)) == 0)
        p->delay_started = 1;
    if (rc == 0 && (rc = start_thread(p, &p->source_thread, pl_source_main, p, err)) == 0)
        p->source_started = 1;
    pthread_mutex_unlock(&p->mu);
    ik_logf(IK_LOG_INFO, p->spec->name, NULL, "started: %s", p->describe);
    return rc;
}

void ik_pipeline_free(ik_pipeline *p)
{
    if (!p)
        return;
    /* Reverse of creation: the source first, so nothing emits into freed stages. */
    if (p->source.created && p->source.plugin->desc.destroy)
        p->source.plugin->desc.destroy(p->source.state);
    ik_optvals_free(p->source.opts);
    ik_commands_clear(&p->source.commands);
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
    pl_free_chain(
        pl_take_to_free(p, SIZE_MAX)); /* settled when no source thread ran to free them */
    free(p->procs);
    free(p->sinks);
    ik_cjournal_close(p->journal);
    pthread_cond_destroy(&p->emit_cv);
    pthread_cond_destroy(&p->delay_cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

const char *ik_pipeline_name(const ik_pipeline *p)
{
    return p->spec->name;
}

const char *ik_pipeline_describe(const ik_pipeline *p)
{
    return p->describe;
}

void ik_pipeline_journal_clear(ik_pipeline *p)
{
    ik_cjournal_clear(p->journal);
}

void ik_pipeline_set_state(ik_pipeline *p, struct ik_state *state)
{
    p->state = state;
}

struct ik_state *ik_pipeline_state(ik_instance *self)
{
    return self->pipeline ? self->pipeline->state : NULL;
}
