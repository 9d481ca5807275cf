/*
 * pipeline.h: one running pipeline: source thread -> processor stages ->
 * sink stages -> settlement back to the source, as in DESIGN.md.
 *
 * Life cycle, all calls from the engine's main thread:
 *   ik_pipeline_new      resolve plugins and validate options (no side effects;
 *                        this is all `intake validate` does)
 *   ik_pipeline_create   call every plugin's create()
 *   ik_pipeline_start    start source, worker and retry threads
 *   ... ik_pipeline_finished() becomes 1 when a finite source is drained ...
 *   ik_pipeline_stop_input      shutdown: stop taking input, finish in flight
 *   ik_pipeline_release_queued  shutdown timeout: give waiting records back
 *   ik_pipeline_quit + ik_pipeline_threads_done, then ik_pipeline_free
 * or, on a second signal, ik_pipeline_abandon (releases everything, even
 * records inside plugin calls, and leaves the threads alone).
 */
#ifndef IK_PIPELINE_H
#define IK_PIPELINE_H

#include <stdint.h>

#include <json-c/json.h>

#include "config.h"
#include "error.h"
#include "loader.h"
#include "metrics.h"
#include "timer.h"

typedef struct ik_pipeline ik_pipeline;

typedef struct ik_pipeline_stats {
    uint64_t in; /* emitted or rejected by the source */
    uint64_t delivered;
    uint64_t dead_lettered;
    uint64_t released;
    uint64_t retries; /* RETRY statuses that were retried */
    uint64_t inflight;
    uint64_t settle_failed; /* "not stored": the source could not carry out the
                               outcome (counted in released too) */
} ik_pipeline_stats;

/* spec must outlive the pipeline. On error err says file:line and what. */
int ik_pipeline_new(const ik_pipeline_spec *spec, ik_loader *loader, ik_pipeline **out,
                    ik_err *err);
int ik_pipeline_create(ik_pipeline *p, ik_metrics *metrics, ik_timers *timers, ik_err *err);
int ik_pipeline_start(ik_pipeline *p, ik_err *err);

/* 1 when the source has returned and every record is settled. */
int ik_pipeline_finished(ik_pipeline *p);
/* 1 when the source's run() returned an error; *why set. */
int ik_pipeline_source_failed(ik_pipeline *p, const char **why);

void ik_pipeline_stop_input(ik_pipeline *p);
void ik_pipeline_release_queued(ik_pipeline *p);
/* Tells threads to exit once idle. */
void ik_pipeline_quit(ik_pipeline *p);
/* 1 when every thread has exited (they are then joined). */
int ik_pipeline_threads_done(ik_pipeline *p);
/* Count of records inside plugin calls right now. */
uint64_t ik_pipeline_busy(ik_pipeline *p);
/* Hard exit: releases every record it can reach; the pipeline is unusable after. */
void ik_pipeline_abandon(ik_pipeline *p);
/* After ik_pipeline_abandon, when plugin calls are stuck: waits up to wait_ms
 * for every other thread of p to end, then calls the source's destroy() so it
 * puts away what it keeps for the next run (the file source's progress).
 * Skipped, with a warning, when the source's run() has not returned. */
void ik_pipeline_close_source(ik_pipeline *p, uint64_t wait_ms);

/* A forced exit (second signal): the plugin calls running now are not
 * counted as crashes of their records on the next start (crash_journal.h). */
void ik_pipeline_journal_clear(ik_pipeline *p);

/* Destroys instances (destroy callbacks) and frees. Threads must be done. */
void ik_pipeline_free(ik_pipeline *p);

void ik_pipeline_stats_get(ik_pipeline *p, ik_pipeline_stats *out);
const char *ik_pipeline_name(const ik_pipeline *p);
/* "file -> passthrough -> stdout" (static per pipeline). */
const char *ik_pipeline_describe(const ik_pipeline *p);

/* The state store the pipeline's plugins use (not owned; set before
 * ik_pipeline_create, outlives the pipeline). */
struct ik_state;
void ik_pipeline_set_state(ik_pipeline *p, struct ik_state *state);
/* Makes every instance of p and its control commands reachable through c
 * (pipeline_control.c); after ik_pipeline_create. 0 or IK_E_NOMEM. */
struct ik_control;
int ik_pipeline_control_add(ik_pipeline *p, struct ik_control *c);

/* This pipeline's part of /health; sets *healthy. New object, caller owns. */
json_object *ik_pipeline_health(ik_pipeline *p, int *healthy);

#endif
