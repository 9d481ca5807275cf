/*
 * control.c: control commands: each instance's list and the engine-wide
 * registry that routes a request to one (see control.h).
 */
#include "control.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "error.h"
#include "log.h"

int ik_command_name_valid(const char *name)
{
    if (!name || !*name || strlen(name) > IK_COMMAND_NAME_MAX)
        return 0;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
            return 0;
    return 1;
}

int ik_commands_add(ik_commands *l, const char *name, const char *help, ik_command_fn fn, void *arg,
                    char *why, size_t whylen)
{
    if (!ik_command_name_valid(name)) {
        snprintf(why, whylen, "command name \"%.80s\" is not [a-z0-9_-]+ of at most %d bytes",
                 name ? name : "(null)", IK_COMMAND_NAME_MAX);
        return IK_E_INVAL;
    }
    if (!fn) {
        snprintf(why, whylen, "command \"%s\" has no callback", name);
        return IK_E_INVAL;
    }
    if (ik_commands_find(l, name)) {
        snprintf(why, whylen, "command \"%s\" is already registered on this instance", name);
        return IK_E_INVAL;
    }
    ik_command *v = ik_array_grow(l->v, &l->cap, l->n + 1, sizeof *v);
    if (!v) {
        snprintf(why, whylen, "out of memory");
        return IK_E_NOMEM;
    }
    l->v = v;
    ik_command *c = &v[l->n];
    c->name = strdup(name);
    c->help = strndup(help ? help : "", IK_COMMAND_HELP_MAX);
    if (!c->name || !c->help) {
        free(c->name);
        free(c->help);
        snprintf(why, whylen, "out of memory");
        return IK_E_NOMEM;
    }
    c->fn = fn;
    c->arg = arg;
    l->n++;
    return 0;
}

const ik_command *ik_commands_find(const ik_commands *l, const char *name)
{
    for (size_t i = 0; l && name && i < l->n; i++)
        if (strcmp(l->v[i].name, name) == 0)
            return &l->v[i];
    return NULL;
}

void ik_commands_clear(ik_commands *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].name);
        free(l->v[i].help);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* ---- the engine-wide registry --------------------------------------------- */

typedef struct control_target {
    const char *pipeline, *instance; /* borrowed */
    const ik_commands *cmds;         /* borrowed */
} control_target;

struct ik_control {
    control_target *v;
    size_t n, cap;
    atomic_int stopping;
};

ik_control *ik_control_new(void)
{
    return calloc(1, sizeof(ik_control));
}

void ik_control_free(ik_control *c)
{
    if (!c)
        return;
    free(c->v);
    free(c);
}

int ik_control_add(ik_control *c, const char *pipeline, const char *instance,
                   const ik_commands *cmds)
{
    control_target *v = ik_array_grow(c->v, &c->cap, c->n + 1, sizeof *v);
    if (!v)
        return IK_E_NOMEM;
    c->v = v;
    v[c->n++] = (control_target){pipeline, instance, cmds};
    return 0;
}

void ik_control_set_stopping(ik_control *c)
{
    if (c)
        atomic_store(&c->stopping, 1);
}

/* {"error": text} (NULL when out of memory). */
static json_object *error_reply(const char *text)
{
    json_object *o = json_object_new_object();
    if (o && json_object_object_add(o, "error", json_object_new_string(text)) != 0) {
        json_object_put(o);
        o = NULL;
    }
    return o;
}

/* The target named so, or NULL; *pipeline_known says whether the pipeline
 * exists at all, for the 404's text. */
static const control_target *find_target(const ik_control *c, const char *pipeline,
                                         const char *instance, int *pipeline_known)
{
    *pipeline_known = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->v[i].pipeline, pipeline) != 0)
            continue;
        *pipeline_known = 1;
        if (strcmp(c->v[i].instance, instance) == 0)
            return &c->v[i];
    }
    return NULL;
}

/* The HTTP status for a command's return code. */
static int status_of(int rc)
{
    switch (rc) {
    case 0:
        return 200;
    case IK_E_INVAL:
    case IK_E_PARSE:
    case IK_E_TOOBIG:
        return 400;
    case IK_E_STATE:
        return 409;
    case IK_E_STOPPING:
        return 503;
    default:
        return 500;
    }
}

/* Calls the command and turns what it returned into (status, reply). */
static int run_command(const ik_command *cmd, json_object *args, json_object **reply)
{
    char reason[IK_REASON_MAX] = "";
    json_object *out = NULL;
    int rc = cmd->fn(cmd->arg, args, &out, reason, sizeof reason);
    if (rc == 0) {
        *reply = out ? out : json_object_new_object();
        return *reply ? 200 : 500;
    }
    json_object_put(out); /* ignored on error, but not leaked */
    reason[sizeof reason - 1] = '\0';
    char clean[IK_REASON_MAX]; /* option values marked secret never leave */
    ik_log_redact(reason, clean, sizeof clean);
    char text[IK_REASON_MAX + 96];
    snprintf(text, sizeof text, "command '%s': %s", cmd->name, clean[0] ? clean : ik_strerror(rc));
    *reply = error_reply(text);
    return status_of(rc);
}

int ik_control_call(ik_control *c, const char *pipeline, const char *instance, const char *command,
                    json_object *args, json_object **reply)
{
    char text[512];
    *reply = NULL;
    if (atomic_load(&c->stopping)) {
        *reply = error_reply("the engine is shutting down: commands are refused");
        return 503;
    }
    int known = 0;
    const control_target *t = find_target(c, pipeline, instance, &known);
    const ik_command *cmd = t ? ik_commands_find(t->cmds, command) : NULL;
    if (!cmd) {
        if (!known)
            snprintf(text, sizeof text, "no pipeline '%.100s' (GET /api/v1/control lists them)",
                     pipeline);
        else if (!t)
            snprintf(text, sizeof text, "pipeline '%.100s' has no instance '%.100s'", pipeline,
                     instance);
        else
            snprintf(text, sizeof text,
                     "instance '%.100s' of pipeline '%.100s' has no command "
                     "'%.100s'",
                     instance, pipeline, command);
        *reply = error_reply(text);
        return 404;
    }
    return run_command(cmd, args, reply);
}

/* Appends one {"pipeline","instance","command","help"} entry; 0 or -1. */
static int list_one(json_object *arr, const control_target *t, const ik_command *cmd)
{
    json_object *o = json_object_new_object();
    if (!o)
        return -1;
    if (json_object_object_add(o, "pipeline", json_object_new_string(t->pipeline)) != 0 ||
        json_object_object_add(o, "instance", json_object_new_string(t->instance)) != 0 ||
        json_object_object_add(o, "command", json_object_new_string(cmd->name)) != 0 ||
        json_object_object_add(o, "help", json_object_new_string(cmd->help)) != 0 ||
        json_object_array_add(arr, o) != 0) {
        json_object_put(o);
        return -1;
    }
    return 0;
}

json_object *ik_control_list(const ik_control *c)
{
    json_object *doc = json_object_new_object();
    json_object *arr = json_object_new_array();
    if (!doc || !arr || json_object_object_add(doc, "commands", arr) != 0) {
        json_object_put(doc);
        json_object_put(arr);
        return NULL;
    }
    for (size_t i = 0; i < c->n; i++)
        for (size_t k = 0; c->v[i].cmds && k < c->v[i].cmds->n; k++)
            if (list_one(arr, &c->v[i], &c->v[i].cmds->v[k]) != 0) {
                json_object_put(doc);
                return NULL;
            }
    return doc;
}
