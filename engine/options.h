/*
 * options.h: a plugin instance's options, validated against the plugin's
 * option table (ik_option[]) and stored typed, with defaults applied.
 *
 * The same table drives `intake plugins` (documentation) and the getters of
 * the host table. Values of options flagged IK_OPT_SECRET are registered with
 * the log redactor as soon as they are read, and are never shown again.
 */
#ifndef IK_OPTIONS_H
#define IK_OPTIONS_H

#include <stdint.h>

#include <intake/plugin.h>

#include "config.h"
#include "error.h"

typedef struct ik_optvals ik_optvals;

/*
 * Checks every non-engine member of stage->setting (engine keys: plugin,
 * name, concurrency, batch) against `table` and `limits` (the plugin's
 * ranges, may be NULL) and builds the typed values. Errors (IK_E_CONFIG),
 * each with "file:line: " first and naming plugin and instance:
 *   unknown option   "... unknown option 'pth' for plugin 'file' (instance
 *                    'in'); known options: path, pattern, follow"
 *   wrong type       "... option 'follow' of plugin 'file' (instance 'in')
 *                    must be a bool, got the string \"maybe\""
 *   out of range     "... option 'max_chars' of plugin 'email_normalize'
 *                    (instance 'n') must be at least 0 (got -1)"
 *   missing required "... plugin 'file' (instance 'in') requires option
 *                    'path': <help>"
 * A bad default in the table itself is IK_E_INVAL naming the plugin. On
 * success *out is owned by the caller (ik_optvals_free).
 */
int ik_options_bind(const ik_option *table, const ik_option_limit *limits, const char *plugin_name,
                    const ik_stage_spec *stage, ik_optvals **out, ik_err *err);
void ik_optvals_free(ik_optvals *vals);

/* Getters. Return IK_E_NOTFOUND when `name` is not in the table, IK_E_INVAL
 * when it has another type; *value untouched then. A string option that is
 * unset and has no default yields *value = NULL and 0. Strings are owned by
 * vals. Durations are ms, sizes bytes. */
int ik_optvals_string(const ik_optvals *vals, const char *name, const char **value);
int ik_optvals_int(const ik_optvals *vals, const char *name, int64_t *value);
int ik_optvals_bool(const ik_optvals *vals, const char *name, int *value);
int ik_optvals_double(const ik_optvals *vals, const char *name, double *value);
int ik_optvals_duration_ms(const ik_optvals *vals, const char *name, uint64_t *value);
int ik_optvals_size(const ik_optvals *vals, const char *name, uint64_t *value);
/* 1 when the config set it explicitly, 0 otherwise (also for unknown names). */
int ik_optvals_is_set(const ik_optvals *vals, const char *name);

/* Name of an option type for messages and docs ("string", "int", ...). */
const char *ik_opt_type_name(ik_opt_type type);

#endif
