/*
 * control.h: the registry of control commands (SDK: ik_host.command_register)
 * and how a request reaches one.
 *
 * Each plugin instance keeps its own list (ik_commands, in ik_instance),
 * filled while its create() runs and fixed afterwards. The engine-wide
 * ik_control maps "pipeline/instance" to those lists once every instance
 * is created, before the admin server starts; from then on it is only
 * read, by the admin server's thread, so it takes no lock. Only the
 * stopping flag changes later (atomic).
 */
#ifndef IK_CONTROL_H
#define IK_CONTROL_H

#include <stddef.h>

#include <intake/plugin.h>
#include <json-c/json.h>

/* Longest command name, and longest reason a command gives. */
#define IK_COMMAND_NAME_MAX 64
#define IK_COMMAND_HELP_MAX 512

typedef struct ik_command {
    char *name; /* [a-z0-9_-]+, owned */
    char *help; /* owned */
    ik_command_fn fn;
    void *arg;
} ik_command;

/* One instance's commands; start zeroed. */
typedef struct ik_commands {
    ik_command *v;
    size_t n, cap;
} ik_commands;

/* 1 when name is 1..IK_COMMAND_NAME_MAX bytes of [a-z0-9_-]. */
int ik_command_name_valid(const char *name);

/* Adds a command (name and help copied; help cut at IK_COMMAND_HELP_MAX).
 * 0; IK_E_INVAL for a bad or taken name or a NULL fn, with why filled;
 * IK_E_NOMEM. */
int ik_commands_add(ik_commands *l, const char *name, const char *help, ik_command_fn fn, void *arg,
                    char *why, size_t whylen);
/* The command called name, or NULL. */
const ik_command *ik_commands_find(const ik_commands *l, const char *name);
/* Frees every command and empties the list. */
void ik_commands_clear(ik_commands *l);

typedef struct ik_control ik_control;

/* An empty registry; NULL when out of memory. */
ik_control *ik_control_new(void);
void ik_control_free(ik_control *c);

/* Makes instance `instance` of pipeline `pipeline` reachable with its
 * commands. The names and the list are borrowed: they must outlive c. 0 or
 * IK_E_NOMEM. Not after the registry is shared with another thread. */
int ik_control_add(ik_control *c, const char *pipeline, const char *instance,
                   const ik_commands *cmds);

/* From now on every call answers 503 (the engine is shutting down). Any
 * thread. */
void ik_control_set_stopping(ik_control *c);

/*
 * Runs one command with args (borrowed, may be NULL) and returns the HTTP
 * status of the answer with *reply (a new object, owned by the caller)
 * holding the JSON to send: the command's reply (200), or {"error": why}
 * with 404 (no such pipeline, instance or command), 400 (IK_E_INVAL), 409
 * (IK_E_STATE), 503 (shutting down) or 500 (any other failure, or out of
 * memory: then *reply may be NULL).
 */
int ik_control_call(ik_control *c, const char *pipeline, const char *instance, const char *command,
                    json_object *args, json_object **reply);

/* {"commands": [{"pipeline", "instance", "command", "help"}, ...]} in
 * registration order; a new object, NULL when out of memory. */
json_object *ik_control_list(const ik_control *c);

#endif
