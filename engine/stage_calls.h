/*
 * stage_calls.h: the engine's side of calling a processor's or sink's
 * per-worker callbacks (SDK 2.0): worker_init/worker_exit on the worker's
 * own thread, a start-up gate so that a failing worker_init fails the start
 * of the pipeline, process()/write() with the worker's state and results
 * laid out with the plugin's sizeof(ik_result), read back with bounds (an
 * unterminated reason is cut, a status outside ik_status becomes IK_FAIL and
 * is logged); and check() before create().
 *
 * pipeline.c calls each of these from one line, so the worker loop stays
 * about routing.
 */
#ifndef IK_STAGE_CALLS_H
#define IK_STAGE_CALLS_H

#include <stddef.h>

#include <intake/plugin.h>

#include "crash.h"
#include "error.h"
#include "instance.h"

/* One worker's calls into its stage's plugin; lives on the worker's stack. */
typedef struct ik_worker_call {
    ik_instance *inst;
    unsigned index;
    void *worker_state; /* the plugin's, from worker_init */
    int inited;         /* worker_init succeeded: worker_exit is owed */
    unsigned char *raw; /* results in the plugin's layout: max entries of stride bytes */
    size_t stride, max;
    ik_crash_note note; /* the call in progress, for the crash line */
} ik_worker_call;

/*
 * Opens the start-up gate of a stage with `nworkers` workers, before any is
 * started. Every worker reports to it from ik_worker_begin; the gate lives
 * until ik_workers_gate_free (stage teardown).
 */
int ik_workers_gate_open(ik_instance *inst, unsigned nworkers, ik_err *err);
/* Waits until `started` workers have reported. IK_E_CONFIG-style error
 * (the plugin's code) naming the instance when a worker_init failed. */
int ik_workers_gate_wait(ik_instance *inst, unsigned started, ik_err *err);
void ik_workers_gate_free(ik_instance *inst);

/*
 * On the worker thread, before its first call: allocates the results buffer
 * for up to max records and calls worker_init (if any), then reports to the
 * gate. 0, or the error (logged; wc holds nothing, the worker must end
 * without calling the plugin).
 */
int ik_worker_begin(ik_worker_call *wc, ik_instance *inst, unsigned index, size_t max);
/*
 * Calls process() or write() for n records and copies what the plugin put
 * in its results into `results` (this engine's layout), bounded as the
 * header says. Returns the plugin's return code.
 */
int ik_worker_call_batch(ik_worker_call *wc, ik_record *const *batch, size_t n, ik_result *results);
/*
 * Calls the plugin's probe() (see plugin.h) with the worker's state: 0 when
 * the destination answers again (or the plugin has no probe()), else a
 * negative code with reason (len bytes, len > 0) filled and terminated.
 */
int ik_worker_probe(ik_worker_call *wc, char *reason, size_t len);
/* On the worker thread when it ends: worker_exit (if owed), frees wc. */
void ik_worker_end(ik_worker_call *wc);

/* Calls the plugin's check() (if any) with the bound config; an error names
 * the config line, the pipeline, plugin and instance. */
int ik_instance_check(ik_instance *inst, ik_err *err);

#endif
