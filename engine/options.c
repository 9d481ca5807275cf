/*
 * options.c: a plugin instance's options, checked against the plugin's option
 * table and stored typed with defaults applied (see options.h). Values of
 * options flagged IK_OPT_SECRET go to the log redactor and never into a
 * message.
 */
#include "options.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "log.h"
#include "optable.h"
#include "optlimits.h"
#include "units.h"

/* Longest value quoted back in a message. */
#define QUOTE_MAX 60

/* One option's value. The name is copied so that the values do not depend on
 * the plugin's table staying mapped. */
typedef struct optval {
    char *name;
    ik_opt_type type;
    unsigned flags;
    int set;                         /* given in the config */
    const config_setting_t *setting; /* where, when set */
    char *str;                       /* IK_OPT_STRING; NULL when unset without default */
    int b;                           /* IK_OPT_BOOL */
    ik_num num;                      /* the numeric types (optlimits.h) */
    int choice;                      /* IK_OPT_CHOICE: index into choices */
    const char *const *choices;      /* IK_OPT_CHOICE: the table's (read while binding) */
    size_t offset;                   /* of the member in the config struct */
} optval;

struct ik_optvals {
    optval *v;
    size_t n;
    void *config; /* the plugin's config struct (config_size bytes), or NULL */
};

static const char *const engine_keys[] = {"plugin", "name", "concurrency", "batch", NULL};

const char *ik_opt_type_name(ik_opt_type type)
{
    switch (type) {
    case IK_OPT_STRING:
        return "string";
    case IK_OPT_INT:
        return "int";
    case IK_OPT_BOOL:
        return "bool";
    case IK_OPT_DOUBLE:
        return "double";
    case IK_OPT_DURATION:
        return "duration";
    case IK_OPT_SIZE:
        return "size";
    case IK_OPT_CHOICE:
        return "choice";
    default:
        return "unknown";
    }
}

/* "a bool" etc., as in "must be a bool". */
static const char *type_phrase(ik_opt_type type)
{
    switch (type) {
    case IK_OPT_STRING:
        return "a string";
    case IK_OPT_INT:
        return "an int";
    case IK_OPT_BOOL:
        return "a bool";
    case IK_OPT_DOUBLE:
        return "a number";
    case IK_OPT_DURATION:
        return "a duration";
    case IK_OPT_SIZE:
        return "a size";
    case IK_OPT_CHOICE:
        return "one of its choices";
    default:
        return "a value";
    }
}

/* What to write instead, appended to wrong-type messages. */
static const char *type_hint(ik_opt_type type)
{
    switch (type) {
    case IK_OPT_STRING:
        return "write it in double quotes";
    case IK_OPT_INT:
        return "write a whole number, like 42";
    case IK_OPT_BOOL:
        return "write true/false, yes/no, on/off or 1/0";
    case IK_OPT_DOUBLE:
        return "write a number, like 0.5";
    case IK_OPT_DURATION:
        return "write \"250ms\", \"30s\", \"5m\", \"1h\" or a number of seconds";
    case IK_OPT_SIZE:
        return "write \"512\", \"256K\", \"4M\", \"1G\" or a number of bytes";
    default:
        return "check the plugin's documentation";
    }
}

static int valid_type(ik_opt_type t)
{
    return t >= IK_OPT_STRING && t <= IK_OPT_CHOICE;
}

/* Parses text as `type` into v (strings are copied). 0, IK_E_INVAL or
 * IK_E_NOMEM. */
static int parse_text(ik_opt_type type, const char *text, optval *v)
{
    switch (type) {
    case IK_OPT_STRING: {
        char *d = strdup(text);
        if (!d)
            return IK_E_NOMEM;
        free(v->str);
        v->str = d;
        return 0;
    }
    case IK_OPT_BOOL:
        return ik_parse_bool(text, &v->b);
    case IK_OPT_CHOICE: {
        int idx = ik_choice_index(v->choices, text);
        if (idx < 0)
            return IK_E_INVAL;
        v->choice = idx;
        return 0;
    }
    default: /* the numeric types, parsed as their limits are */
        return ik_num_parse(type, text, &v->num);
    }
}

/* Names for messages. */
typedef struct ctx {
    const char *plugin;
    const char *instance;
    const ik_stage_spec *stage;
    ik_err *err;
} ctx;

/* "file:line" of the stage group. */
static void stage_where(const ctx *c, char *buf, size_t len)
{
    if (c->stage->setting)
        snprintf(buf, len, "%s", ik_config_where(c->stage->setting));
    else
        snprintf(buf, len, "%s:%d", c->stage->file ? c->stage->file : "<config>", c->stage->line);
}

/* "the string \"x\"", "the integer 5", "a group"; <secret> for secrets. */
static void describe(const config_setting_t *s, const char *text, int secret, char *buf, size_t len)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        if (secret)
            snprintf(buf, len, "the integer <secret>");
        else
            snprintf(buf, len, "the integer %lld", config_setting_get_int64(s));
        break;
    case CONFIG_TYPE_FLOAT:
        if (secret)
            snprintf(buf, len, "the float <secret>");
        else
            snprintf(buf, len, "the float %g", config_setting_get_float(s));
        break;
    case CONFIG_TYPE_BOOL:
        if (secret)
            snprintf(buf, len, "the bool <secret>");
        else
            snprintf(buf, len, "the bool %s", config_setting_get_bool(s) ? "true" : "false");
        break;
    case CONFIG_TYPE_STRING: {
        if (secret) {
            snprintf(buf, len, "the string <secret>");
            break;
        }
        const char *v = text ? text : config_setting_get_string(s);
        size_t n = strlen(v);
        snprintf(buf, len, "the string \"%.*s%s\"", (int)(n > QUOTE_MAX ? QUOTE_MAX : n), v,
                 n > QUOTE_MAX ? "..." : "");
        break;
    }
    case CONFIG_TYPE_GROUP:
        snprintf(buf, len, "a group");
        break;
    case CONFIG_TYPE_LIST:
        snprintf(buf, len, "a list");
        break;
    case CONFIG_TYPE_ARRAY:
        snprintf(buf, len, "an array");
        break;
    default:
        snprintf(buf, len, "an unknown value");
        break;
    }
}

/* "a, b, c" of a NULL-terminated list. */
static void list_names(const char *const *names, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; names && names[i] && off < len; i++) {
        int w = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", names[i]);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

static int wrong_type(const ctx *c, const config_setting_t *s, const optval *v, const char *text)
{
    char got[160];
    describe(s, text, (v->flags & IK_OPT_SECRET) != 0, got, sizeof got);
    if (v->type == IK_OPT_CHOICE) {
        char allowed[512];
        list_names(v->choices, allowed, sizeof allowed);
        return ik_err_set(c->err, IK_E_CONFIG,
                          "%s: option '%s' of plugin '%s' (instance '%s') must be one of: %s; got "
                          "%s",
                          ik_config_where(s), v->name, c->plugin, c->instance, allowed, got);
    }
    return ik_err_set(c->err, IK_E_CONFIG,
                      "%s: option '%s' of plugin '%s' (instance '%s') must be %s, got %s (%s)",
                      ik_config_where(s), v->name, c->plugin, c->instance, type_phrase(v->type),
                      got, type_hint(v->type));
}

/* A number of seconds or bytes as a config number, scaled; -1 when negative,
 * not finite or too large. */
static int number_scaled(const config_setting_t *s, uint64_t mult, uint64_t *out)
{
    if (config_setting_type(s) == CONFIG_TYPE_FLOAT) {
        double x = config_setting_get_float(s) * (double)mult;
        if (!isfinite(x) || x < 0 || x + 0.5 >= 18446744073709551616.0)
            return -1;
        *out = (uint64_t)(x + 0.5);
        return 0;
    }
    long long i = config_setting_get_int64(s);
    if (i < 0 || __builtin_mul_overflow((uint64_t)i, mult, out))
        return -1;
    return 0;
}

/* Registers a secret value with the log redactor. */
static int register_secret(const ctx *c, const optval *v, const char *text)
{
    if (!(v->flags & IK_OPT_SECRET) || !text)
        return 0;
    if (ik_log_add_secret(text) != 0)
        return ik_err_set(c->err, IK_E_NOMEM,
                          "out of memory registering the secret option '%s' of plugin '%s'",
                          v->name, c->plugin);
    return 0;
}

/* Reads one config member into v (which knows its type and flags). */
static int bind_setting(const ctx *c, const config_setting_t *s, optval *v)
{
    int type = config_setting_type(s);
    if (type == CONFIG_TYPE_STRING) {
        char *text = NULL;
        int rc = ik_env_expand(config_setting_get_string(s), &text, c->err);
        if (rc != 0) {
            ik_err_prefix(c->err,
                          "%s: option '%s' of plugin '%s' (instance '%s'): ", ik_config_where(s),
                          v->name, c->plugin, c->instance);
            if (rc != IK_E_NOMEM) { /* unset variable or malformed ${: a config error */
                rc = IK_E_CONFIG;
                if (c->err)
                    c->err->code = rc;
            }
            return rc;
        }
        if ((rc = register_secret(c, v, text)) == 0) {
            rc = parse_text(v->type, text, v);
            if (rc == IK_E_NOMEM)
                ik_err_set(c->err, rc, "out of memory");
            else if (rc != 0)
                rc = wrong_type(c, s, v, text);
        }
        free(text);
        return rc;
    }
    switch (v->type) {
    case IK_OPT_INT:
        if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
            v->num.i = (int64_t)config_setting_get_int64(s);
            return 0;
        }
        break;
    case IK_OPT_BOOL:
        if (type == CONFIG_TYPE_BOOL) {
            v->b = config_setting_get_bool(s) ? 1 : 0;
            return 0;
        }
        break;
    case IK_OPT_DOUBLE:
        if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
            v->num.d = (double)config_setting_get_int64(s);
            return 0;
        }
        if (type == CONFIG_TYPE_FLOAT && isfinite(config_setting_get_float(s))) {
            v->num.d = config_setting_get_float(s);
            return 0;
        }
        break;
    case IK_OPT_DURATION:
        if (config_setting_is_number(s) && number_scaled(s, 1000, &v->num.u) == 0)
            return 0;
        break;
    case IK_OPT_SIZE:
        if (config_setting_is_number(s) && number_scaled(s, 1, &v->num.u) == 0)
            return 0;
        break;
    default:
        break;
    }
    return wrong_type(c, s, v, NULL);
}

/*
 * Applies (or, when the config set the option, only checks) the table's
 * default. Defaults use the config's syntax, ${VAR} included: a default that
 * does not parse is a plugin bug (IK_E_INVAL) unless it came from a variable
 * (IK_E_CONFIG).
 */
static int bind_default(const ctx *c, const ik_option *opt, optval *v)
{
    const char *def = opt->default_value;
    if (!def)
        return 0;
    int has_var = strstr(def, "${") != NULL;
    if (v->set && has_var)
        return 0; /* not used; its variables need not be set */
    char where[PATH_MAX + 32];
    stage_where(c, where, sizeof where);
    int secret = (opt->flags & IK_OPT_SECRET) != 0;
    char *text = NULL;
    int rc = ik_env_expand(def, &text, c->err);
    if (rc != 0) {
        if (rc == IK_E_CONFIG) /* an unset variable */
            ik_err_prefix(c->err,
                          "%s: plugin '%s' (instance '%s'): the default of option '%s' needs a "
                          "variable (set it, or set option '%s' in the config): ",
                          where, c->plugin, c->instance, opt->name, opt->name);
        else
            ik_err_set(c->err, rc == IK_E_NOMEM ? IK_E_NOMEM : IK_E_INVAL,
                       "plugin '%s': the default of option '%s' is malformed (a bug in the "
                       "plugin; report it to its author)",
                       c->plugin, opt->name);
        return rc == IK_E_NOMEM ? IK_E_NOMEM : (rc == IK_E_CONFIG ? IK_E_CONFIG : IK_E_INVAL);
    }
    optval tmp = *v;
    tmp.str = NULL;
    rc = v->set ? 0 : register_secret(c, v, text);
    if (rc == 0)
        rc = parse_text(v->type, text, &tmp);
    if (rc == IK_E_NOMEM) {
        free(text);
        free(tmp.str);
        return ik_err_set(c->err, IK_E_NOMEM, "out of memory");
    }
    if (rc != 0) {
        if (has_var)
            rc = ik_err_set(c->err, IK_E_CONFIG,
                            "%s: plugin '%s' (instance '%s'): the default of option '%s' expands "
                            "to \"%.*s\", which is not %s (%s; or set option '%s' in the config)",
                            where, c->plugin, c->instance, opt->name, QUOTE_MAX,
                            secret ? "<secret>" : text, type_phrase(v->type), type_hint(v->type),
                            opt->name);
        else
            rc = ik_err_set(c->err, IK_E_INVAL,
                            "plugin '%s': the default \"%.*s\" of option '%s' is not %s (a bug "
                            "in the plugin; report it to its author)",
                            c->plugin, QUOTE_MAX, secret ? "<secret>" : text, opt->name,
                            type_phrase(v->type));
        free(text);
        free(tmp.str);
        return rc;
    }
    free(text);
    if (!v->set) {
        *v = tmp;
    } else {
        free(tmp.str);
    }
    return 0;
}

int ik_is_engine_key(const char *name)
{
    for (size_t i = 0; engine_keys[i]; i++)
        if (strcmp(name, engine_keys[i]) == 0)
            return 1;
    return 0;
}

/* "a, b, c" of the table's names. */
static void known_names(const ik_option *table, size_t n, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && off < len; i++) {
        int w = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", table[i].name);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

/*
 * Checks the bound value of one option against its limit (NULL: none). The
 * message points at the config line that set it or, for a default taken
 * from a ${VAR}, at the stage.
 */
static int check_limit(const ctx *c, const ik_option *opt, const optval *v)
{
    if (!ik_limit_has(opt) || (!v->set && !opt->default_value))
        return 0;
    char range[160], got[64], where[PATH_MAX + 32];
    if (ik_limit_check(opt, v->type, &v->num, range, sizeof range) == 0)
        return 0;
    if (v->flags & IK_OPT_SECRET)
        snprintf(got, sizeof got, "<secret>");
    else
        ik_num_format(v->type, &v->num, got, sizeof got);
    if (v->set)
        return ik_err_set(c->err, IK_E_CONFIG,
                          "%s: option '%s' of plugin '%s' (instance '%s') must be %s (got %s)",
                          ik_config_where(v->setting), v->name, c->plugin, c->instance, range, got);
    stage_where(c, where, sizeof where);
    if (strstr(opt->default_value, "${"))
        return ik_err_set(c->err, IK_E_CONFIG,
                          "%s: plugin '%s' (instance '%s'): the default of option '%s' expands "
                          "to %s, but it must be %s (fix the variable, or set option '%s')",
                          where, c->plugin, c->instance, v->name, got, range, v->name);
    return ik_err_set(c->err, IK_E_INVAL,
                      "plugin '%s': the default of option '%s' (%s) is outside its own limit "
                      "(%s; a bug in the plugin; report it to its author)",
                      c->plugin, v->name, got, range);
}

/* Writes v into its member of config (config_size bytes; NULL: nothing is bound). */
static void store_value(const optval *v, void *config, size_t config_size)
{
    size_t align, size = ik_opt_member_size(v->type, &align);
    if (!config || v->offset > config_size || size > config_size - v->offset)
        return; /* the loader refuses such tables; a direct caller gets nothing */
    char *at = (char *)config + v->offset;
    switch (v->type) {
    case IK_OPT_STRING: {
        const char *str = v->str;
        memcpy(at, &str, sizeof str);
        break;
    }
    case IK_OPT_INT:
        memcpy(at, &v->num.i, sizeof v->num.i);
        break;
    case IK_OPT_BOOL:
        memcpy(at, &v->b, sizeof v->b);
        break;
    case IK_OPT_CHOICE:
        memcpy(at, &v->choice, sizeof v->choice);
        break;
    case IK_OPT_DOUBLE:
        memcpy(at, &v->num.d, sizeof v->num.d);
        break;
    default: /* DURATION, SIZE */
        memcpy(at, &v->num.u, sizeof v->num.u);
        break;
    }
}

int ik_option_store_text(const ik_option *o, const char *text, void *config, size_t config_size)
{
    optval v = {.type = o->type, .choices = o->choices, .offset = o->offset};
    int rc = o->type == IK_OPT_STRING ? 0 : parse_text(o->type, text, &v);
    free(v.str);
    if (rc != 0)
        return rc;
    v.str = (char *)text; /* not owned: the caller keeps text alive */
    store_value(&v, config, config_size);
    return 0;
}

const void *ik_optvals_config(const ik_optvals *vals)
{
    return vals ? vals->config : NULL;
}

/* The table's own sanity (types known, names unique): a plugin bug, said as
 * such. */
static int check_table(const ik_option *table, size_t n, const char *plugin, ik_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!valid_type(table[i].type))
            return ik_err_set(err, IK_E_INVAL,
                              "plugin '%s': option '%s' has an unknown type %d (a bug in the "
                              "plugin; report it to its author)",
                              plugin, table[i].name, (int)table[i].type);
        for (size_t j = 0; j < i; j++)
            if (strcmp(table[i].name, table[j].name) == 0)
                return ik_err_set(err, IK_E_INVAL,
                                  "plugin '%s': option '%s' is declared twice (a bug in the "
                                  "plugin; report it to its author)",
                                  plugin, table[i].name);
    }
    return 0;
}

/* Empty values for the n options of table. NULL with err set on OOM. */
static ik_optvals *vals_new(const ik_option *table, size_t n, ik_err *err)
{
    ik_optvals *vals = calloc(1, sizeof *vals);
    if (vals && n > 0 && !(vals->v = calloc(n, sizeof *vals->v))) {
        free(vals);
        vals = NULL;
    }
    if (!vals) {
        ik_err_set(err, IK_E_NOMEM, "out of memory");
        return NULL;
    }
    vals->n = n;
    for (size_t i = 0; i < n; i++) {
        vals->v[i].type = table[i].type;
        vals->v[i].flags = table[i].flags;
        vals->v[i].choices = table[i].choices;
        vals->v[i].offset = table[i].offset;
        if (!(vals->v[i].name = strdup(table[i].name))) {
            ik_optvals_free(vals);
            ik_err_set(err, IK_E_NOMEM, "out of memory");
            return NULL;
        }
    }
    return vals;
}

/* The error for a setting m that names no option of the table. */
static int unknown_option(const ctx *c, const ik_option *table, size_t n, const config_setting_t *m,
                          const char *name)
{
    if (n == 0)
        return ik_err_set(c->err, IK_E_CONFIG,
                          "%s: unknown option '%s' for plugin '%s' (instance '%s'); the "
                          "plugin takes no options",
                          ik_config_where(m), name, c->plugin, c->instance);
    char known[1024];
    known_names(table, n, known, sizeof known);
    return ik_err_set(c->err, IK_E_CONFIG,
                      "%s: unknown option '%s' for plugin '%s' (instance '%s'); known "
                      "options: %s",
                      ik_config_where(m), name, c->plugin, c->instance, known);
}

/* Binds every setting of the stage's group (engine keys aside) to its
 * option; a setting that names none is an error. */
static int bind_settings(const ctx *c, const config_setting_t *group, const ik_option *table,
                         ik_optvals *vals)
{
    int nm = group ? config_setting_length(group) : 0;
    for (int k = 0; k < nm; k++) {
        const config_setting_t *m = config_setting_get_elem(group, (unsigned)k);
        const char *name = config_setting_name(m);
        if (!name || ik_is_engine_key(name))
            continue;
        size_t i;
        for (i = 0; i < vals->n; i++)
            if (strcmp(table[i].name, name) == 0)
                break;
        if (i == vals->n)
            return unknown_option(c, table, vals->n, m, name);
        int rc = bind_setting(c, m, &vals->v[i]);
        if (rc != 0)
            return rc;
        vals->v[i].set = 1;
        vals->v[i].setting = m;
    }
    return 0;
}

/* Options the config left out: required ones are an error naming the stage;
 * the others take their default. Every value is checked against its range. */
static int complete_values(const ctx *c, const ik_option *table, ik_optvals *vals)
{
    for (size_t i = 0; i < vals->n; i++) {
        optval *v = &vals->v[i];
        if (!v->set && (table[i].flags & IK_OPT_REQUIRED)) {
            char where[PATH_MAX + 32];
            stage_where(c, where, sizeof where);
            if (table[i].help)
                return ik_err_set(c->err, IK_E_CONFIG,
                                  "%s: plugin '%s' (instance '%s') requires option '%s': \"%s\" "
                                  "(add %s = ...; to the stage)",
                                  where, c->plugin, c->instance, table[i].name, table[i].help,
                                  table[i].name);
            return ik_err_set(c->err, IK_E_CONFIG,
                              "%s: plugin '%s' (instance '%s') requires option '%s' (add %s = "
                              "...; to the stage)",
                              where, c->plugin, c->instance, table[i].name, table[i].name);
        }
        int rc = bind_default(c, &table[i], v);
        if (rc == 0)
            rc = check_limit(c, &table[i], v);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Writes every value into a new zeroed config struct of config_size bytes
 * (none when 0). */
static int fill_config(ik_optvals *vals, size_t config_size, ik_err *err)
{
    if (config_size > 0 && !(vals->config = calloc(1, config_size)))
        return ik_err_set(err, IK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < vals->n; i++) {
        vals->v[i].choices = NULL; /* the table may be unloaded before vals is freed */
        store_value(&vals->v[i], vals->config, config_size);
    }
    return 0;
}

int ik_options_bind(const ik_option *table, size_t config_size, const char *plugin_name,
                    const ik_stage_spec *stage, ik_optvals **out, ik_err *err)
{
    if (!stage || !out)
        return ik_err_set(err, IK_E_INVAL, "ik_options_bind: NULL argument");
    *out = NULL;
    const char *plugin = plugin_name ? plugin_name : (stage->plugin ? stage->plugin : "?");
    ctx c = {.plugin = plugin,
             .instance = stage->name ? stage->name : plugin,
             .stage = stage,
             .err = err};
    size_t n = 0;
    while (table && table[n].name)
        n++;
    int rc = check_table(table, n, plugin, err);
    if (rc != 0)
        return rc;
    const config_setting_t *group = stage->setting;
    if (group && !config_setting_is_group(group))
        return ik_err_set(err, IK_E_INVAL, "%s: the stage of plugin '%s' is not a group",
                          ik_config_where(group), plugin);
    ik_optvals *vals = vals_new(table, n, err);
    if (!vals)
        return IK_E_NOMEM;
    if ((rc = bind_settings(&c, group, table, vals)) != 0 ||
        (rc = complete_values(&c, table, vals)) != 0 ||
        (rc = fill_config(vals, config_size, err)) != 0) {
        ik_optvals_free(vals);
        return rc;
    }
    *out = vals;
    return 0;
}

void ik_optvals_free(ik_optvals *vals)
{
    if (!vals)
        return;
    for (size_t i = 0; i < vals->n; i++) {
        free(vals->v[i].name);
        free(vals->v[i].str);
    }
    free(vals->v);
    free(vals->config);
    free(vals);
}

/* The entry for name with the given type: 0, IK_E_NOTFOUND or IK_E_INVAL. */
static int lookup(const ik_optvals *vals, const char *name, ik_opt_type type, const optval **v)
{
    if (!vals || !name)
        return IK_E_INVAL;
    for (size_t i = 0; i < vals->n; i++) {
        if (strcmp(vals->v[i].name, name) == 0) {
            if (vals->v[i].type != type)
                return IK_E_INVAL;
            *v = &vals->v[i];
            return 0;
        }
    }
    return IK_E_NOTFOUND;
}

int ik_optvals_string(const ik_optvals *vals, const char *name, const char **value)
{
    const optval *v;
    int rc = lookup(vals, name, IK_OPT_STRING, &v);
    if (rc == 0 && value)
        *value = v->str;
    return rc;
}

int ik_optvals_int(const ik_optvals *vals, const char *name, int64_t *value)
{
    const optval *v;
    int rc = lookup(vals, name, IK_OPT_INT, &v);
    if (rc == 0 && value)
        *value = v->num.i;
    return rc;
}

int ik_optvals_bool(const ik_optvals *vals, const char *name, int *value)
{
    const optval *v;
    int rc = lookup(vals, name, IK_OPT_BOOL, &v);
    if (rc == 0 && value)
        *value = v->b;
    return rc;
}

int ik_optvals_double(const ik_optvals *vals, const char *name, double *value)
{
    const optval *v;
    int rc = lookup(vals, name, IK_OPT_DOUBLE, &v);
    if (rc == 0 && value)
        *value = v->num.d;
    return rc;
}

int ik_optvals_duration_ms(const ik_optvals *vals, const char *name, uint64_t *value)
{
    const optval *v;
    int rc = lookup(vals, name, IK_OPT_DURATION, &v);
    if (rc == 0 && value)
        *value = v->num.u;
    return rc;
}

int ik_optvals_size(const ik_optvals *vals, const char *name, uint64_t *value)
{
    const optval *v;
    int rc = lookup(vals, name, IK_OPT_SIZE, &v);
    if (rc == 0 && value)
        *value = v->num.u;
    return rc;
}

int ik_optvals_is_set(const ik_optvals *vals, const char *name)
{
    if (!vals || !name)
        return 0;
    for (size_t i = 0; i < vals->n; i++)
        if (strcmp(vals->v[i].name, name) == 0)
            return vals->v[i].set;
    return 0;
}
