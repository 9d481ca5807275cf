/*
 * pipeline_control.c: a pipeline's part of control commands: what
 * host->command_register does, the built-in commands of its source
 * (pause, resume, drain) and the hand-over of every instance's commands to
 * the engine's registry (control.h).
 *
 * Pause makes emit() wait (try_emit() answers IK_E_BUSY), so a source stops
 * taking input through the flow it already has; partial batches leave at
 * once while paused. Drain is pause plus a report: it returns at once and
 * answers how much is still in flight and what finished since the drain
 * began; calling it again polls. Resume ends both. All three run on the
 * admin server's thread and only take p->mu briefly.
 */
#include <stdio.h>
#include <string.h>

#include "control.h"
#include "log.h"
#include "pipeline_internal.h"

int ik_instance_command_register(ik_instance *self, const char *name, const char *help,
                                 ik_command_fn fn, void *arg)
{
    if (!self)
        return IK_E_INVAL;
    const char *pipeline = ik_instance_pipeline_name(self);
    if (!self->registering) {
        ik_logf(IK_LOG_ERROR, pipeline, self->spec->name,
                "command_register('%.64s') is allowed only from create(); not registered",
                name ? name : "(null)");
        return IK_E_STATE;
    }
    char why[256];
    int rc = ik_commands_add(&self->commands, name, help, fn, arg, why, sizeof why);
    if (rc != 0)
        ik_logf(IK_LOG_ERROR, pipeline, self->spec->name, "command not registered: %s", why);
    return rc;
}

/* Built-in commands take no argument: none, null or {}. */
static int no_args(json_object *args, const char *cmd, char *reason, size_t len)
{
    if (!args ||
        (json_object_is_type(args, json_type_object) && json_object_object_length(args) == 0))
        return 0;
    snprintf(reason, len, "%s takes no argument (send no body or {})", cmd);
    return IK_E_INVAL;
}

/* Adds key: n to o; 0 or -1. */
static int add_u64(json_object *o, const char *key, uint64_t n)
{
    return json_object_object_add(o, key, json_object_new_int64((int64_t)n));
}

/* {"pipeline", "paused", "inflight"} of p (lock held); NULL when out of memory. */
static json_object *pause_reply(ik_pipeline *p, int was_paused)
{
    json_object *o = json_object_new_object();
    if (!o || json_object_object_add(o, "pipeline", json_object_new_string(p->spec->name)) ||
        json_object_object_add(o, "paused", json_object_new_boolean(p->paused)) ||
        json_object_object_add(o, "was_paused", json_object_new_boolean(was_paused)) ||
        add_u64(o, "inflight", p->inflight)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* Sets or clears pause (lock held): waking the source when it resumes and
 * the workers either way (partial batches leave at once while paused). */
static void set_paused(ik_pipeline *p, int on)
{
    p->paused = on;
    if (!on)
        p->draining = 0;
    pthread_cond_broadcast(&p->emit_cv);
    pl_for_each_stage(p, pl_wake_stage);
}

/* pause (on = 1) and resume (on = 0): sets the state, logs a change. */
static int pause_cmd(ik_pipeline *p, int on, json_object *args, json_object **reply, char *reason,
                     size_t len)
{
    int rc = no_args(args, on ? "pause" : "resume", reason, len);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&p->mu);
    int was = p->paused;
    set_paused(p, on);
    *reply = pause_reply(p, was);
    pthread_mutex_unlock(&p->mu);
    if (was != on)
        ik_logf(IK_LOG_INFO, p->spec->name, p->source.spec->name, "%s",
                on ? "paused by a control command: the source takes no input until resumed"
                   : "resumed by a control command");
    return *reply ? 0 : IK_E_NOMEM;
}

static int cmd_pause(void *arg, json_object *args, json_object **reply, char *reason, size_t len)
{
    return pause_cmd(arg, 1, args, reply, reason, len);
}

static int cmd_resume(void *arg, json_object *args, json_object **reply, char *reason, size_t len)
{
    return pause_cmd(arg, 0, args, reply, reason, len);
}

/* The drain report (lock held): state, in flight, what finished since the
 * drain began. NULL when out of memory. */
static json_object *drain_reply(ik_pipeline *p)
{
    const ik_pipeline_stats *s = &p->stats, *s0 = &p->drain_start;
    json_object *fin = json_object_new_object();
    if (!fin || add_u64(fin, "delivered", s->delivered - s0->delivered) ||
        add_u64(fin, "dead_lettered", s->dead_lettered - s0->dead_lettered) ||
        add_u64(fin, "released", s->released - s0->released)) {
        json_object_put(fin);
        return NULL;
    }
    json_object *o = json_object_new_object();
    if (!o || json_object_object_add(o, "finished", fin)) {
        json_object_put(o);
        json_object_put(fin);
        return NULL;
    }
    double secs = (double)(ik_now_ms() - p->drain_start_ms) / 1000.0;
    if (json_object_object_add(o, "pipeline", json_object_new_string(p->spec->name)) ||
        json_object_object_add(o, "state",
                               json_object_new_string(p->inflight == 0 ? "drained" : "draining")) ||
        add_u64(o, "inflight", p->inflight) ||
        json_object_object_add(o, "seconds", json_object_new_double(secs))) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static int cmd_drain(void *arg, json_object *args, json_object **reply, char *reason, size_t len)
{
    ik_pipeline *p = arg;
    int rc = no_args(args, "drain", reason, len);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&p->mu);
    int first = !p->draining;
    if (first) {
        p->draining = 1;
        p->drain_start = p->stats;
        p->drain_start_ms = ik_now_ms();
        set_paused(p, 1);
    }
    uint64_t inflight = p->inflight;
    *reply = drain_reply(p);
    pthread_mutex_unlock(&p->mu);
    if (first)
        ik_logf(IK_LOG_INFO, p->spec->name, p->source.spec->name,
                "draining by a control command: no new input, %llu record(s) in flight",
                (unsigned long long)inflight);
    return *reply ? 0 : IK_E_NOMEM;
}

int pl_control_builtins(ik_pipeline *p, ik_err *err)
{
    static const struct {
        const char *name, *help;
        ik_command_fn fn;
    } builtins[] = {
        {"pause", "Stop taking input from the source (records in flight go on) until resume.",
         cmd_pause},
        {"resume", "Take input again after pause or drain.", cmd_resume},
        {"drain",
         "Stop taking input and finish what is in flight; answers at once with the state "
         "(draining or drained), the records in flight and what finished since the drain began. "
         "Call again to follow it; resume ends it.",
         cmd_drain},
    };
    for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++) {
        char why[256];
        int rc = ik_commands_add(&p->source.commands, builtins[i].name, builtins[i].help,
                                 builtins[i].fn, p, why, sizeof why);
        if (rc != 0)
            return ik_err_set(err, rc, "pipeline '%s': %s", p->spec->name, why);
    }
    return 0;
}

/* Adds one instance to the registry when it has commands. */
static int control_add(ik_pipeline *p, ik_control *c, ik_instance *inst)
{
    return ik_control_add(c, p->spec->name, inst->spec->name, &inst->commands);
}

int ik_pipeline_control_add(ik_pipeline *p, ik_control *c)
{
    int rc = control_add(p, c, &p->source);
    for (size_t i = 0; rc == 0 && i < p->nprocs; i++)
        rc = control_add(p, c, &p->procs[i]->inst);
    for (size_t i = 0; rc == 0 && i < p->nsinks; i++)
        rc = control_add(p, c, &p->sinks[i]->inst);
    if (rc == 0 && p->dlq)
        rc = control_add(p, c, &p->dlq->inst);
    return rc;
}
