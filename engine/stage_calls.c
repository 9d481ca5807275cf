/*
 * stage_calls.c: per-worker plugin calls, results read with bounds, and
 * check() (see stage_calls.h).
 */
#include "stage_calls.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "borrow.h"
#include "host.h"
#include "log.h"
#include "options.h"
#include "record.h"

struct ik_worker_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned reported;
    int failed_rc; /* the first failing worker_init's code */
    unsigned failed_index;
};

int ik_workers_gate_open(ik_instance *inst, unsigned nworkers, ik_err *err)
{
    (void)nworkers;
    if (inst->gate)
        return 0;
    struct ik_worker_gate *g = calloc(1, sizeof *g);
    if (!g)
        return ik_err_set(err, IK_E_NOMEM, "out of memory");
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    inst->gate = g;
    return 0;
}

static void gate_report(ik_instance *inst, unsigned index, int rc)
{
    struct ik_worker_gate *g = inst->gate;
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->reported++;
    if (rc != 0 && g->failed_rc == 0) {
        g->failed_rc = rc;
        g->failed_index = index;
    }
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

int ik_workers_gate_wait(ik_instance *inst, unsigned started, ik_err *err)
{
    struct ik_worker_gate *g = inst->gate;
    if (!g)
        return 0;
    pthread_mutex_lock(&g->mu);
    while (g->reported < started)
        pthread_cond_wait(&g->cv, &g->mu);
    int rc = g->failed_rc;
    unsigned index = g->failed_index;
    pthread_mutex_unlock(&g->mu);
    if (rc == 0)
        return 0;
    return ik_err_set(err, rc < 0 ? rc : IK_E_CONFIG,
                      "%s:%d: pipeline '%s': plugin '%s' (instance '%s') failed to start worker "
                      "%u: worker_init: %s (see the log above)",
                      inst->spec->file, inst->spec->line, ik_instance_pipeline_name(inst),
                      inst->spec->plugin, inst->spec->name, index, ik_strerror(rc));
}

void ik_workers_gate_free(ik_instance *inst)
{
    struct ik_worker_gate *g = inst->gate;
    if (!g)
        return;
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
    inst->gate = NULL;
}

int ik_worker_begin(ik_worker_call *wc, ik_instance *inst, unsigned index, size_t max)
{
    const ik_plugin *d = &inst->plugin->desc;
    memset(wc, 0, sizeof *wc);
    wc->inst = inst;
    wc->index = index;
    wc->stride = d->result_size; /* >= the 2.0 size: the loader checked */
    wc->max = max;
    int rc = 0;
    if (!(wc->raw = calloc(max ? max : 1, wc->stride))) {
        ik_logf(IK_LOG_ERROR, ik_instance_pipeline_name(inst), inst->spec->name,
                "out of memory starting a worker");
        rc = IK_E_NOMEM;
    } else if (d->worker_init) {
        ik_crash_enter(&wc->note, inst, "worker_init", NULL, 0);
        rc = d->worker_init(inst->state, index, &wc->worker_state);
        ik_crash_leave(&wc->note);
        if (rc != 0)
            ik_logf(IK_LOG_ERROR, ik_instance_pipeline_name(inst), inst->spec->name,
                    "worker %u: worker_init failed: %s", index, ik_strerror(rc));
        else
            wc->inited = 1;
    }
    if (rc != 0) {
        free(wc->raw);
        wc->raw = NULL;
    }
    gate_report(inst, index, rc);
    return rc;
}

/* Reads entry i of the plugin's results into out: the reason up to its
 * first NUL or IK_REASON_MAX - 1 bytes, the status checked. */
static void read_result(ik_worker_call *wc, size_t i, const ik_record *rec, ik_result *out)
{
    const unsigned char *r = wc->raw + i * wc->stride;
    const ik_result *pr = (const ik_result *)r; /* the 2.0 fields are at the same offsets */
    size_t len = strnlen(pr->reason, IK_REASON_MAX - 1);
    memcpy(out->reason, pr->reason, len);
    out->reason[len] = '\0';
    int status;
    memcpy(&status, &pr->status, sizeof status);
    if (status < IK_OK || status > IK_DOWN) {
        ik_logf(IK_LOG_ERROR, ik_instance_pipeline_name(wc->inst), wc->inst->spec->name,
                "plugin '%s' returned status %d for record %s, which is not an ik_status; "
                "treating it as IK_FAIL",
                wc->inst->spec->plugin, status, rec->id ? rec->id : "?");
        if (len == 0)
            snprintf(out->reason, sizeof out->reason, "plugin '%s' returned an invalid status %d",
                     wc->inst->spec->plugin, status);
        status = IK_FAIL;
    }
    out->status = (ik_status)status;
}

int ik_worker_call_batch(ik_worker_call *wc, ik_record *const *batch, size_t n, ik_result *results)
{
    const ik_plugin *d = &wc->inst->plugin->desc;
    if (n > wc->max)
        n = wc->max; /* the batcher never hands more than max_items */
    memset(wc->raw, 0, n * wc->stride);
    ik_result *pres = (ik_result *)(void *)wc->raw;
    ik_borrow borrow;
    ik_borrow_begin(&borrow, wc->inst, batch, n);
    ik_crash_enter(&wc->note, wc->inst, d->kind == IK_KIND_PROCESSOR ? "process" : "write", batch,
                   n);
    int rc = d->kind == IK_KIND_PROCESSOR
                 ? d->process(wc->inst->state, wc->worker_state, batch, n, pres)
                 : d->write(wc->inst->state, wc->worker_state, batch, n, pres);
    ik_crash_leave(&wc->note);
    for (size_t i = 0; i < n; i++)
        read_result(wc, i, batch[i], &results[i]);
    ik_borrow_end(&borrow, wc->inst, batch, results);
    return rc;
}

int ik_worker_probe(ik_worker_call *wc, char *reason, size_t len)
{
    const ik_plugin *d = &wc->inst->plugin->desc;
    if (!d->probe || len == 0)
        return 0;
    memset(reason, 0, len);
    ik_crash_enter(&wc->note, wc->inst, "probe", NULL, 0);
    int rc = d->probe(wc->inst->state, wc->worker_state, reason, len);
    ik_crash_leave(&wc->note);
    reason[len - 1] = '\0'; /* the plugin may have filled it all */
    if (rc == 0)
        return 0;
    if (!reason[0])
        snprintf(reason, len, "probe: %s", ik_strerror(rc));
    return rc < 0 ? rc : IK_E_IO;
}

void ik_worker_end(ik_worker_call *wc)
{
    const ik_plugin *d = wc->inst ? &wc->inst->plugin->desc : NULL;
    if (d && wc->inited && d->worker_exit)
        d->worker_exit(wc->inst->state, wc->worker_state);
    free(wc->raw);
    memset(wc, 0, sizeof *wc);
}

int ik_instance_check(ik_instance *inst, ik_err *err)
{
    const ik_plugin *d = &inst->plugin->desc;
    if (!d->check)
        return 0;
    int rc = d->check(ik_host_table(), inst, ik_optvals_config(inst->opts));
    if (rc == 0)
        return 0;
    return ik_err_set(err, rc < 0 ? rc : IK_E_CONFIG,
                      "%s:%d: pipeline '%s': plugin '%s' (instance '%s'): %s (see the log above)",
                      inst->spec->file, inst->spec->line, ik_instance_pipeline_name(inst),
                      inst->spec->plugin, inst->spec->name, ik_strerror(rc));
}
