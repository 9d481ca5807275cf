/*
 * optable.c: reading and checking a plugin's option table when it loads
 * (see optable.h). The table is read with the plugin's own sizeof(ik_option)
 * as the stride, so a plugin built against a newer minor (larger entries) or
 * an older one (smaller entries) is read correctly; the copy has this
 * engine's layout and is what the rest of the engine uses.
 */
#include "optable.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "optlimits.h"
#include "options.h"

/* More entries than this is a table without its zeroed end. */
#define OPTABLE_MAX 4096

size_t ik_opt_member_size(ik_opt_type type, size_t *align)
{
    switch (type) {
    case IK_OPT_STRING:
        *align = alignof(const char *);
        return sizeof(const char *);
    case IK_OPT_INT:
        *align = alignof(int64_t);
        return sizeof(int64_t);
    case IK_OPT_BOOL:
    case IK_OPT_CHOICE:
        *align = alignof(int);
        return sizeof(int);
    case IK_OPT_DOUBLE:
        *align = alignof(double);
        return sizeof(double);
    case IK_OPT_DURATION:
    case IK_OPT_SIZE:
        *align = alignof(uint64_t);
        return sizeof(uint64_t);
    }
    *align = 1;
    return 0;
}

/* The index of `value` in a NULL-terminated list, or -1. */
int ik_choice_index(const char *const *choices, const char *value)
{
    for (int i = 0; choices && choices[i]; i++)
        if (strcmp(choices[i], value) == 0)
            return i;
    return -1;
}

/* Where the member of option o lies in a config of config_size bytes: inside
 * it and aligned. A table with options needs a config struct (size > 0). */
static int check_offset(const ik_option *o, size_t config_size, const char *where,
                        const char *plugin, ik_err *err)
{
    size_t align, size = ik_opt_member_size(o->type, &align);
    if (config_size == 0)
        return ik_err_set(err, IK_E_INVAL,
                          "%s: plugin '%s' declares option '%s' but no config struct "
                          "(config_size 0): options reach a plugin only through its config "
                          "struct (set .config_size = sizeof(your config) and bind each option "
                          "with IK_OPT_AT)",
                          where, plugin, o->name);
    if (o->offset > config_size || size > config_size - o->offset)
        return ik_err_set(err, IK_E_INVAL,
                          "%s: plugin '%s' option '%s' is bound at offset %zu (%zu bytes), outside "
                          "its config struct of %zu bytes",
                          where, plugin, o->name, o->offset, size, config_size);
    if (o->offset % align != 0)
        return ik_err_set(err, IK_E_INVAL,
                          "%s: plugin '%s' option '%s' is bound at offset %zu, which is not "
                          "aligned for a %s member",
                          where, plugin, o->name, o->offset, ik_opt_type_name(o->type));
    return 0;
}

/* A CHOICE has a non-empty list and its default is in it; no other type has one. */
static int check_choices(const ik_option *o, const char *where, const char *plugin, ik_err *err)
{
    if (o->type != IK_OPT_CHOICE) {
        if (o->choices)
            return ik_err_set(err, IK_E_INVAL,
                              "%s: plugin '%s' option '%s' lists choices but is not a choice "
                              "option",
                              where, plugin, o->name);
        return 0;
    }
    if (!o->choices || !o->choices[0])
        return ik_err_set(err, IK_E_INVAL, "%s: plugin '%s' choice option '%s' has no choices",
                          where, plugin, o->name);
    if (o->default_value && !strstr(o->default_value, "${") &&
        ik_choice_index(o->choices, o->default_value) < 0)
        return ik_err_set(err, IK_E_INVAL,
                          "%s: plugin '%s': the default \"%s\" of option '%s' is not one of its "
                          "choices",
                          where, plugin, o->default_value, o->name);
    return 0;
}

/* Checks entry i of the copied table against itself and the entries before it. */
static int check_entry(const ik_option *table, size_t i, size_t config_size, const char *where,
                       const char *plugin, ik_err *err)
{
    const ik_option *o = &table[i];
    if (o->type < IK_OPT_STRING || o->type > IK_OPT_CHOICE)
        return ik_err_set(err, IK_E_INVAL, "%s: plugin '%s' option '%s' has unknown type %d", where,
                          plugin, o->name, (int)o->type);
    if ((o->flags & IK_OPT_REQUIRED) && o->default_value)
        return ik_err_set(err, IK_E_INVAL,
                          "%s: plugin '%s' option '%s' is required but has a default", where,
                          plugin, o->name);
    if (ik_is_engine_key(o->name))
        return ik_err_set(err, IK_E_INVAL,
                          "%s: plugin '%s' declares option '%s', which is an engine key of every "
                          "stage (plugin, name, concurrency, batch); rename the option",
                          where, plugin, o->name);
    for (size_t j = 0; j < i; j++)
        if (strcmp(table[j].name, o->name) == 0)
            return ik_err_set(err, IK_E_INVAL, "%s: plugin '%s' declares option '%s' twice", where,
                              plugin, o->name);
    int rc = check_offset(o, config_size, where, plugin, err);
    if (rc == 0)
        rc = check_choices(o, where, plugin, err);
    if (rc == 0)
        rc = ik_limits_validate(o, where, plugin, err);
    return rc;
}

int ik_optable_load(const ik_plugin *d, const char *where, ik_option **out, ik_err *err)
{
    *out = NULL;
    if (!d->options)
        return 0;
    size_t stride = d->option_size;
    if (stride < IK_OPTION_SIZE_2_0)
        return ik_err_set(err, IK_E_INVAL,
                          "%s: plugin '%s' declares option entries of %zu bytes; SDK 2.0 entries "
                          "have at least %zu (build it with IK_PLUGIN_HEAD)",
                          where, d->name, stride, (size_t)IK_OPTION_SIZE_2_0);
    size_t copy = stride < sizeof(ik_option) ? stride : sizeof(ik_option);
    const char *base = (const char *)d->options;
    ik_option *table = NULL;
    size_t n = 0;
    for (;; n++) {
        if (n == OPTABLE_MAX) {
            free(table);
            return ik_err_set(err, IK_E_INVAL,
                              "%s: plugin '%s' has an option table of more than %d entries (is "
                              "its zeroed end missing?)",
                              where, d->name, OPTABLE_MAX);
        }
        ik_option *grown = realloc(table, (n + 1) * sizeof *grown);
        if (!grown) {
            free(table);
            return ik_err_set(err, IK_E_NOMEM, "out of memory");
        }
        table = grown;
        memset(&table[n], 0, sizeof table[n]);
        memcpy(&table[n], base + n * stride, copy);
        if (!table[n].name)
            break;
        int rc = check_entry(table, n, d->config_size, where, d->name, err);
        if (rc != 0) {
            free(table);
            return rc;
        }
    }
    *out = table;
    return 0;
}
