/*
 * pipeline_health.c: what a pipeline reports: its counters and its part of
 * /health (the pipeline's rules and each plugin's own health callback).
 */
#include <stdio.h>
#include <time.h>

#include "log.h"
#include "pipeline_internal.h"
#include "state.h"

void ik_pipeline_stats_get(ik_pipeline *p, ik_pipeline_stats *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->stats;
    out->inflight = p->inflight;
    pthread_mutex_unlock(&p->mu);
}

/* One down stage for /health (p->mu held): adds its reason to `reasons` and
 * an object to `down` (stage, since, seconds, reason, waiting, probes). */
static void stage_down_health(ik_stage *st, uint64_t now, json_object *reasons, json_object *down)
{
    if (!st->down)
        return;
    char since[32] = "?", clean[IK_REASON_MAX], msg[2 * IK_REASON_MAX];
    struct tm tm;
    if (gmtime_r(&st->down_since_wall, &tm))
        strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", &tm);
    ik_log_redact(st->down_reason, clean, sizeof clean);
    double secs = (double)(now - st->down_since_ms) / 1000.0;
    size_t waiting = ik_batcher_count(st->batcher);
    snprintf(msg, sizeof msg,
             "stage '%s' down since %s (%.0f s): %s; %zu record(s) waiting, none released",
             st->inst.spec->name, since, secs, clean, waiting);
    json_object_array_add(reasons, json_object_new_string(msg));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "stage", json_object_new_string(st->inst.spec->name));
    json_object_object_add(o, "since", json_object_new_string(since));
    json_object_object_add(o, "seconds", json_object_new_double(secs));
    json_object_object_add(o, "reason", json_object_new_string(clean));
    json_object_object_add(o, "waiting", json_object_new_int64((int64_t)waiting));
    json_object_object_add(o, "probes", json_object_new_int64((int64_t)st->probes));
    json_object_array_add(down, o);
}

/* Every down stage of p (p->mu held); the number found. */
static size_t pipeline_down_health(ik_pipeline *p, uint64_t now, json_object *reasons,
                                   json_object *down)
{
    for (size_t i = 0; i < p->nprocs; i++)
        stage_down_health(p->procs[i], now, reasons, down);
    for (size_t i = 0; i < p->nsinks; i++)
        stage_down_health(p->sinks[i], now, reasons, down);
    if (p->dlq)
        stage_down_health(p->dlq, now, reasons, down);
    return json_object_array_length(down);
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
    json_object *down = json_object_new_array();
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
    int paused = p->paused; /* by a control command */
    char settle_failure[IK_REASON_MAX];
    snprintf(settle_failure, sizeof settle_failure, "%s", p->last_settle_failure);
    /* A down stage explains records that do not move: it is reported
     * instead of "stalled". */
    size_t ndown = pipeline_down_health(p, now, reasons, down);
    pthread_mutex_unlock(&p->mu);
    if (ndown)
        ok = 0;

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
    if (s.inflight > 0 && now - last_progress >= window && ndown == 0) {
        ok = 0;
        snprintf(msg, sizeof msg,
                 "stalled: %llu record(s) in flight and no stage finished a call in %llu s",
                 (unsigned long long)s.inflight, (unsigned long long)(window / 1000));
        json_object_array_add(reasons, json_object_new_string(msg));
    }
    /* State writes failing: the plugins cannot keep what they must. */
    if (ik_state_health(p->state, p->spec->name, reasons))
        ok = 0;
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
    json_object_object_add(o, "paused", json_object_new_boolean(paused));
    json_object_object_add(o, "reasons", reasons);
    json_object_object_add(o, "down", down);
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
