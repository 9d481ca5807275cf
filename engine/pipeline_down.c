/*
 * pipeline_down.c: a stage whose destination is down (see IK_DOWN in
 * plugin.h). A record answered IK_DOWN goes back to the head of its stage's
 * queue; the stage pauses (its workers take no batch), and after a backoff
 * one worker probes it: with the plugin's probe(), or with the next normal
 * call when the plugin has none. The backoff is the pipeline's retry
 * initial_backoff, doubling up to max_backoff, without jitter (one prober
 * per stage, so there is no herd to spread). Nothing is released or
 * dead-lettered because a stage is down; upstream stages and the source go
 * on until the in-flight limit holds them.
 *
 * Everything here runs with the pipeline lock held and calls no plugin.
 */
#include <stdio.h>

#include "log.h"
#include "pipeline_internal.h"
#include "retry.h"

void pl_route_down(ik_pipeline *p, ik_stage *st, ik_record *rec, uint64_t cost, settle_list *out)
{
    pl_stage_attempts_add(st, rec, -1); /* answered IK_DOWN: not tried */
    if (ik_batcher_push_front(st->batcher, rec, cost) == 0)
        return;
    ik_record_set_failure(rec, st->inst.spec->name, pl_stage_attempts(st, rec),
                          "out of memory putting the record back while its stage is down");
    if (st->kind == STAGE_SINK) {
        if (--rec->pending_sinks > 0)
            return; /* the other sinks still have it; the last one dead-letters it */
    }
    if (st->kind == STAGE_DLQ)
        pl_settle_push(out, rec, IK_DEAD_LETTERED, 0);
    else
        pl_route_dead_letter(p, rec, out);
}

/* The wait before the next probe, once `failed` probes have failed: the
 * retry schedule's cap (initial_backoff doubling up to max_backoff), at
 * least 1 ms. */
static uint64_t probe_backoff(const ik_pipeline *p, uint64_t failed)
{
    unsigned n = failed < 64 ? (unsigned)failed + 1 : 64;
    uint64_t ms = ik_retry_cap_ms(&p->spec->retry, n);
    return ms ? ms : 1;
}

void pl_stage_down(ik_stage *st, int was_probe, const char *reason)
{
    ik_pipeline *p = st->p;
    uint64_t now = ik_now_ms();
    const char *why = reason && *reason ? reason : "destination unavailable (no reason given)";
    if (!st->down) {
        st->down = 1;
        st->probing = 0;
        st->probes = 0;
        st->down_since_ms = now;
        st->down_since_wall = time(NULL);
        st->probe_backoff_ms = probe_backoff(p, 0);
        st->probe_due_ms = now + st->probe_backoff_ms;
        snprintf(st->down_reason, sizeof st->down_reason, "%s", why);
        ik_metric_set(st->m_down, 1);
        ik_logf(IK_LOG_WARN, p->spec->name, st->inst.spec->name,
                "destination down: %s; stage paused with %zu record(s) waiting, nothing "
                "released; probing in %.3g s",
                st->down_reason, ik_batcher_count(st->batcher),
                (double)st->probe_backoff_ms / 1000.0);
        return;
    }
    if (!was_probe)
        return; /* a call that started before the stage went down */
    st->probing = 0;
    st->probe_backoff_ms = probe_backoff(p, st->probes);
    st->probe_due_ms = now + st->probe_backoff_ms;
    snprintf(st->down_reason, sizeof st->down_reason, "%s", why);
    ik_logf(IK_LOG_DEBUG, p->spec->name, st->inst.spec->name,
            "still down: %s; next probe in %.3g s", st->down_reason,
            (double)st->probe_backoff_ms / 1000.0);
}

void pl_stage_up(ik_stage *st)
{
    if (!st->down)
        return;
    ik_pipeline *p = st->p;
    ik_logf(IK_LOG_INFO, p->spec->name, st->inst.spec->name,
            "destination up again after %.1f s down (%llu probe(s)); %zu record(s) waiting resume",
            (double)(ik_now_ms() - st->down_since_ms) / 1000.0, (unsigned long long)st->probes,
            ik_batcher_count(st->batcher));
    st->down = 0;
    st->probing = 0;
    st->probe_backoff_ms = 0;
    st->down_reason[0] = '\0';
    ik_metric_set(st->m_down, 0);
    pl_wake_stage(st);
}

int pl_stage_probe_take(ik_stage *st, uint64_t now_ms, uint64_t *wake_ms)
{
    if (st->probing) {
        *wake_ms = UINT64_MAX; /* the prober wakes everyone when it is up */
        return 0;
    }
    if (now_ms < st->probe_due_ms) {
        *wake_ms = st->probe_due_ms;
        return 0;
    }
    st->probing = 1;
    st->probes++;
    ik_metric_add(st->m_probes, 1);
    return 1;
}
