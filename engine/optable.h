/*
 * optable.h: a plugin's option table as the engine reads it at load: copied
 * with the plugin's stride into this engine's ik_option layout, and checked
 * (names once and not engine keys, offsets inside config_size, choices,
 * ranges) so that nothing later has to distrust it.
 */
#ifndef IK_OPTABLE_H
#define IK_OPTABLE_H

#include <stddef.h>

#include <intake/plugin.h>

#include "error.h"

/* sizeof(ik_option) in SDK 2.0: every 2.x plugin's entries are at least this. */
#define IK_OPTION_SIZE_2_0 (offsetof(ik_option, choices) + sizeof(const char *const *))

/*
 * Reads d->options (entries d->option_size bytes apart, ending with a NULL
 * name) into *out, a NULL-name-terminated array in this engine's layout
 * (fields past the plugin's entry size are zero), owned by the caller
 * (free()); *out is NULL when the plugin has no table. Each entry is checked
 * as plugin.h says; IK_E_INVAL with a message starting with `where` naming
 * the plugin and the option otherwise.
 */
int ik_optable_load(const ik_plugin *d, const char *where, ik_option **out, ik_err *err);

/* Bytes and alignment of the config member an option of `type` fills. */
size_t ik_opt_member_size(ik_opt_type type, size_t *align);

/* The index of `value` in a NULL-terminated list of choices, or -1. */
int ik_choice_index(const char *const *choices, const char *value);

#endif
