/*
 * pipeline_internal.h: what the files of the pipeline runtime share (not for
 * the rest of the engine, which uses pipeline.h): the stage and pipeline
 * structs, the list of records to settle, and the steps of a record's path.
 *
 * Concurrency model: one mutex per pipeline (p->mu) guards every queue (the
 * batchers of all stages, the retry delay queue), the in-flight count and the
 * routing state of records. Plugin calls (run, cost, process, write, settle)
 * are always made without it. A worker takes a whole batch under the lock,
 * calls the plugin, then routes all results under one more acquisition, so
 * the lock is taken a few times per batch, not per record.
 *
 * Where a record can be: owned by the source (before emit); queued in a
 * stage's batcher or in the delay queue; active in a worker's batch (inside a
 * plugin call); being settled. Shutdown releases queued records, and records
 * coming back from an active call, to their source.
 *
 * The path, file by file: pipeline_source.c (emit) -> pipeline_worker.c
 * (stage workers, retry thread) -> pipeline_route.c (where each result goes)
 * -> pipeline_settle.c (the source hears the outcome); pipeline_stop.c
 * releases what is left at shutdown.
 */
#ifndef IK_PIPELINE_INTERNAL_H
#define IK_PIPELINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "batcher.h"
#include "delayq.h"
#include "instance.h"
#include "pipeline.h"
#include "record.h"

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
    size_t slot;         /* its first worker's slot in the crash journal */
    ik_record ***active; /* per worker: the batch inside a plugin call */
    size_t *nactive;
    ik_metric *m_batch, *m_latency;
    ik_metric *m_status[5]; /* by ik_status */
    /* Destination down (a call answered IK_DOWN; pipeline_down.c): while
     * `down`, workers take no batch; one of them probes when probe_due_ms
     * has come. */
    int down;
    int probing; /* a worker is probing now */
    uint64_t down_since_ms, probe_due_ms, probe_backoff_ms;
    time_t down_since_wall; /* for /health */
    uint64_t probes;        /* probes of the current down spell */
    char down_reason[IK_REASON_MAX];
    ik_metric *m_down, *m_probes;
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
    atomic_int stopping; /* also read without the lock (ik_pipeline_stopping) */
    int releasing, quit, abandoned;
    int emit_blocked;
    uint64_t busy; /* workers inside plugin calls */

    ik_record *to_free; /* settled records the source thread frees (next_free chain) */

    ik_pipeline_stats stats;
    uint64_t started_ms, last_delivered_ms, last_failure_ms, last_progress_ms;
    char last_failure[IK_REASON_MAX];
    char last_settle_failure[IK_REASON_MAX]; /* sticky: those records come back next run */

    ik_metrics *metrics;
    ik_timers *timers;
    struct ik_state *state;      /* the engine's state store, not owned; may be NULL */
    struct ik_cjournal *journal; /* poison records (crash_journal.h), owned; NULL: off */
    ik_metric *m_in, *m_delivered, *m_dead, *m_released, *m_retried, *m_inflight, *m_latency;
    ik_metric *m_settle_failed;

    /* Control (pipeline_control.c): while `paused`, emit() waits; `draining`
     * reports against the counts at its start. */
    int paused, draining;
    ik_pipeline_stats drain_start;
    uint64_t drain_start_ms;
};

/* What a stage worker thread is started with (malloc'd; the thread frees it). */
typedef struct worker_arg {
    ik_stage *st;
    uint32_t idx;
} worker_arg;

/* ------------------------------------------------------- small helpers */

/* Waits on cv until due_ms on the monotonic clock (UINT64_MAX: no limit). */
static inline void pl_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t due_ms)
{
    if (due_ms == UINT64_MAX) {
        pthread_cond_wait(cv, mu);
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)(due_ms / 1000u),
                          .tv_nsec = (long)(due_ms % 1000u) * 1000000L};
    pthread_cond_timedwait(cv, mu, &ts);
}

static inline void pl_for_each_stage(ik_pipeline *p, void (*fn)(ik_stage *))
{
    for (size_t i = 0; i < p->nprocs; i++)
        fn(p->procs[i]);
    for (size_t i = 0; i < p->nsinks; i++)
        fn(p->sinks[i]);
    if (p->dlq)
        fn(p->dlq);
}

static inline void pl_wake_stage(ik_stage *st)
{
    pthread_cond_broadcast(&st->cv);
}

/* ------------------------------------------- routing (pipeline_route.c) */
/* All with p->mu held; none calls a plugin. Records to settle go to `out`. */

/* Queues rec at stage st with its cost and wakes a worker if one is idle.
 * 0, or IK_E_NOMEM (the caller dead-letters the record). */
int pl_stage_push(ik_stage *st, ik_record *rec, uint64_t cost);
/* Sends rec on to every sink. */
void pl_route_to_sinks(ik_pipeline *p, ik_record *rec, settle_list *out);
/* A permanent failure: to the dead_letter sink, else to the source's own
 * dead-letter place. */
void pl_route_dead_letter(ik_pipeline *p, ik_record *rec, settle_list *out);
/* rec leaves stage st released. */
void pl_route_release(ik_pipeline *p, ik_stage *st, ik_record *rec, settle_list *out);
/* Routes one record after a plugin call at st; next_cost is its cost at the
 * next processor, computed before taking the lock. */
void pl_route_result(ik_pipeline *p, ik_stage *st, ik_record *rec, const ik_result *res,
                     uint64_t next_cost, settle_list *out);
/* The stage a delay-queue target names. */
ik_stage *pl_target_stage(ik_pipeline *p, int target);
/* Attempts made so far at st (the counter st keeps in the record). */
unsigned pl_stage_attempts(const ik_stage *st, const ik_record *rec);
/* Adds delta (+1 when a call starts, -1 when it answered IK_DOWN) to rec's
 * attempts at st; never below 0. Lock held. */
void pl_stage_attempts_add(const ik_stage *st, ik_record *rec, int delta);

/* ------------------------------------ destination down (pipeline_down.c) */
/* All with p->mu held; none calls a plugin. */

/* Puts rec, answered IK_DOWN at st, back at the head of st's queue with no
 * attempt counted (the caller pushes a batch's records last first, so they
 * keep their order). Dead-letters it when out of memory. */
void pl_route_down(ik_pipeline *p, ik_stage *st, ik_record *rec, uint64_t cost, settle_list *out);
/* A call at st answered IK_DOWN with `reason` (a probe call or not): marks
 * the stage down (logged once) or, after a failed probe, schedules the next
 * one with a doubled backoff. */
void pl_stage_down(ik_stage *st, int was_probe, const char *reason);
/* A probe of st succeeded: the stage resumes (logged with how long it was
 * down) and its workers wake. */
void pl_stage_up(ik_stage *st);
/* 1 when the calling worker is to probe st now (it then owns the probe until
 * pl_stage_up or pl_stage_down); 0 with *wake_ms set to when to look again. */
int pl_stage_probe_take(ik_stage *st, uint64_t now_ms, uint64_t *wake_ms);

/* ---------------------------------------- settlement (pipeline_settle.c) */

/* Appends to the list (any thread, the list is the caller's). 0 or IK_E_NOMEM. */
int pl_settle_push(settle_list *l, ik_record *rec, ik_outcome outcome, int stored);
/* Tells sources the outcome of every record in the list, gives back their
 * in-flight slots and hands the records to the source thread to free (see
 * pipeline_settle.c); empties the list (keeps its storage). Called WITHOUT
 * p->mu. */
void pl_settle_now(ik_pipeline *p, settle_list *list);
/* Takes up to max (SIZE_MAX: all) settled records waiting to be freed, as a
 * chain (p->mu held); free it with pl_free_chain once the lock is dropped. */
ik_record *pl_take_to_free(ik_pipeline *p, size_t max);
void pl_free_chain(ik_record *chain);

/* ---------------------------------------- control (pipeline_control.c) */

/* Registers the built-in commands (pause, resume, drain) on the source
 * instance, before its create(). 0 or err filled. */
int pl_control_builtins(ik_pipeline *p, ik_err *err);

/* ---------------------------------- threads (pipeline_worker/_source.c) */

/* Thread bodies started by ik_pipeline_start. A worker's arg is a worker_arg
 * it frees; the delay and source threads get the pipeline. */
void *pl_worker_main(void *arg);
void *pl_delay_main(void *arg);
void *pl_source_main(void *arg);
/* The calling thread is about to exit: counted for ik_pipeline_threads_done. */
void pl_thread_done(ik_pipeline *p);

#endif
