/*
 * options.h: a plugin instance's options, validated against the plugin's
 * option table (ik_option[]) and stored typed, with defaults applied.
 *
 * The same table drives `intake plugins` (documentation); the values reach
 * a plugin only in its config struct (ik_optvals_config). Values of options
 * flagged IK_OPT_SECRET are registered with the log redactor as soon as they
 * are read, and are never shown again.
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
 * name, concurrency, batch) against `table` (with its ranges and choices)
 * and builds the typed values and, when config_size > 0, the plugin's
 * config struct (ik_optvals_config). Errors (IK_E_CONFIG),
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
int ik_options_bind(const ik_option *table, size_t config_size, const char *plugin_name,
                    const ik_stage_spec *stage, ik_optvals **out, ik_err *err);
void ik_optvals_free(ik_optvals *vals);

/* The plugin's config struct that ik_options_bind allocated (config_size
 * bytes, zeroed, then each option written at its offset as plugin.h says),
 * owned by vals with the strings it points to; NULL when config_size is 0. */
const void *ik_optvals_config(const ik_optvals *vals);

/* Parses text as option o and writes it into config at o->offset (a STRING
 * stores `text` itself: the caller keeps it alive). For hosts that bind
 * options without a config file (the test kit's fake host). 0, IK_E_INVAL
 * when text does not parse, IK_E_NOMEM. */
int ik_option_store_text(const ik_option *o, const char *text, void *config, size_t config_size);

/* 1 for the keys the engine reads from a stage group itself (plugin, name,
 * concurrency, batch): never a plugin's option. */
int ik_is_engine_key(const char *name);

/* Typed values by name, for the engine's own tests and fuzzers (plugins
 * read their config struct; the host table has no getters). IK_E_NOTFOUND
 * when `name` is not in the table, IK_E_INVAL when it has another type;
 * *value untouched then. A string option that is unset and has no default
 * yields *value = NULL and 0. Strings are owned by vals. Durations are ms,
 * sizes bytes. */
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
