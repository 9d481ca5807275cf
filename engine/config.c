/*
 * config.c: reads the pipeline file (libconfig syntax) into the plain structs
 * of config.h, checking keys, types, ranges and names, with ${VAR}
 * substitution and the optional env_file loaded first. Plugin options inside
 * stage groups are left alone here; options.c checks them against each
 * plugin's option table.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "control_http.h"
#include "env.h"
#include "units.h"

/* Longest string value quoted back in a message. */
#define QUOTE_MAX 60

#define DEFAULT_INFLIGHT        1000u
#define DEFAULT_MAX_ITEMS       50u
#define DEFAULT_MAX_WAIT_MS     30000u
#define DEFAULT_MAX_RECORD      (256u * 1024u)
#define DEFAULT_HEALTH_WINDOW   60000u
#define DEFAULT_MAX_CRASHES     2u
#define DEFAULT_MAX_ATTEMPTS    5u
#define DEFAULT_INITIAL_BACKOFF 1000u
#define DEFAULT_MAX_BACKOFF     60000u
#define DEFAULT_SINK_MAX_ITEMS  100u
#define DEFAULT_SINK_MAX_WAIT   200u
#define DEFAULT_SHUTDOWN_MS     30000u
#define DEFAULT_ADMIN_LISTEN    "127.0.0.1:2020"
#define CONCURRENCY_MAX         256u

static const char *const top_keys[] = {"env_file", "env_file_optional", "plugin_path", "log",
                                       "admin",    "shutdown_timeout",  "pipelines",   "state",
                                       NULL};
static const char *const log_keys[] = {"level", "format", NULL};
static const char *const admin_keys[] = {"enabled", "listen", "request_timeout", NULL};
static const char *const state_keys[] = {"dir", "durability", NULL};
static const char *const pipeline_keys[] = {
    "name",   "inflight_limit", "max_record_size", "retry",       "batch",       "health_window",
    "source", "processors",     "sinks",           "dead_letter", "max_crashes", NULL};
static const char *const retry_keys[] = {"max_attempts", "initial_backoff", "max_backoff", NULL};
static const char *const batch_keys[] = {"max_items", "max_cost", "max_wait", NULL};

/* State of one load: the config being built and the defaults taken from the
 * seed's environment variables. */
typedef struct loader {
    ik_config *cfg;
    ik_err *err;
    uint32_t seed_max_items;
    uint64_t seed_max_wait_ms;
    uint64_t seed_max_record;
} loader;

/* ------------------------------------------------------------ messages */

const char *ik_config_where(const config_setting_t *s)
{
    static _Thread_local char buf[PATH_MAX + 32];
    const char *file = s ? config_setting_source_file(s) : NULL;
    snprintf(buf, sizeof buf, "%s:%u", file ? file : "<config>",
             s ? config_setting_source_line(s) : 0u);
    return buf;
}

/* Sets err to "file:line: <message>" for setting s. Returns code. */
static int fail_at(ik_err *err, const config_setting_t *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at(ik_err *err, const config_setting_t *s, int code, const char *fmt, ...)
{
    char msg[IK_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ik_err_set(err, code, "%s: %s", ik_config_where(s), msg);
}

static const char *type_article(int type)
{
    switch (type) {
    case CONFIG_TYPE_GROUP:
        return "a group";
    case CONFIG_TYPE_LIST:
        return "a list";
    case CONFIG_TYPE_ARRAY:
        return "an array";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a float";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a bool";
    default:
        return "an unknown value";
    }
}

/* Describes a scalar for "got ..." ("the integer 5", "the string \"x\"",
 * "a group"), into buf. `text` overrides the string shown (an expansion). */
static const char *describe(const config_setting_t *s, const char *text, char *buf, size_t len)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        snprintf(buf, len, "the integer %lld", config_setting_get_int64(s));
        break;
    case CONFIG_TYPE_FLOAT:
        snprintf(buf, len, "the float %g", config_setting_get_float(s));
        break;
    case CONFIG_TYPE_BOOL:
        snprintf(buf, len, "the bool %s", config_setting_get_bool(s) ? "true" : "false");
        break;
    case CONFIG_TYPE_STRING: {
        const char *v = text ? text : config_setting_get_string(s);
        size_t n = strlen(v);
        snprintf(buf, len, "the string \"%.*s%s\"", (int)(n > QUOTE_MAX ? QUOTE_MAX : n), v,
                 n > QUOTE_MAX ? "..." : "");
        break;
    }
    default:
        snprintf(buf, len, "%s", type_article(config_setting_type(s)));
        break;
    }
    return buf;
}

/* "a, b, c" from a NULL-terminated list. */
static void join_keys(const char *const *keys, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; keys[i] && off < len; i++) {
        int n = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", keys[i]);
        if (n < 0)
            break;
        off += (size_t)n;
    }
}

/* Rejects members of `group` not in `allowed`; `ctx` names the group in the
 * message ("the top level", "pipeline 'emails': retry"). */
static int check_keys(loader *L, const config_setting_t *group, const char *const *allowed,
                      const char *ctx)
{
    int n = config_setting_length(group);
    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(m);
        int ok = 0;
        for (size_t k = 0; allowed[k]; k++)
            if (name && strcmp(name, allowed[k]) == 0)
                ok = 1;
        if (!ok) {
            char list[512];
            join_keys(allowed, list, sizeof list);
            return fail_at(L->err, m, IK_E_CONFIG, "unknown setting '%s' in %s; allowed: %s",
                           name ? name : "?", ctx, list);
        }
    }
    return 0;
}

/* ------------------------------------------------------------ typed readers */

/* A failed ${VAR} expansion in the config is a configuration error
 * (IK_E_CONFIG), whatever ik_env_expand called it; out of memory stays. */
static int expand_code(ik_err *err, int rc)
{
    if (rc == IK_E_NOMEM)
        return rc;
    if (err)
        err->code = IK_E_CONFIG;
    return IK_E_CONFIG;
}

int ik_config_expand_string(const config_setting_t *s, char **out, ik_err *err)
{
    if (!s || !out)
        return ik_err_set(err, IK_E_INVAL, "ik_config_expand_string: NULL argument");
    const char *name = config_setting_name(s);
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        char got[128];
        return fail_at(err, s, IK_E_CONFIG, "'%s' must be a string, got %s", name ? name : "value",
                       describe(s, NULL, got, sizeof got));
    }
    int rc = ik_env_expand(config_setting_get_string(s), out, err);
    if (rc != 0) {
        ik_err_prefix(err, "%s: %s: ", ik_config_where(s), name ? name : "value");
        rc = expand_code(err, rc);
    }
    return rc;
}

/* A string setting, expanded; *out malloc'd. `what` names it in messages. */
static int read_string(loader *L, const config_setting_t *s, const char *what, char **out)
{
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        char got[128];
        return fail_at(L->err, s, IK_E_CONFIG, "%s must be a string, got %s", what,
                       describe(s, NULL, got, sizeof got));
    }
    int rc = ik_env_expand(config_setting_get_string(s), out, L->err);
    if (rc != 0) {
        ik_err_prefix(L->err, "%s: %s: ", ik_config_where(s), what);
        rc = expand_code(L->err, rc);
    }
    return rc;
}

/* For a string setting: expands it into *text (malloc'd). For other types
 * *text = NULL. */
static int expand_if_string(loader *L, const config_setting_t *s, const char *what, char **text)
{
    *text = NULL;
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return 0;
    return read_string(L, s, what, text);
}

/* "must be between 1 and 256" for a narrow range; for one bounded only by
 * its type, says which side was crossed ("must be >= 1 (got 0)"). */
static int range_error(loader *L, const config_setting_t *s, const char *what, uint64_t min,
                       uint64_t max, int64_t got)
{
    if (max < UINT32_MAX)
        return fail_at(L->err, s, IK_E_CONFIG, "%s must be between %llu and %llu (got %lld)", what,
                       (unsigned long long)min, (unsigned long long)max, (long long)got);
    if (got < 0 || (uint64_t)got < min)
        return fail_at(L->err, s, IK_E_CONFIG, "%s must be >= %llu (got %lld)", what,
                       (unsigned long long)min, (long long)got);
    return fail_at(L->err, s, IK_E_CONFIG, "%s must be <= %llu (got %lld)", what,
                   (unsigned long long)max, (long long)got);
}

/* An integer count in [min, max]: an int, or a string that parses as one. */
static int read_uint(loader *L, const config_setting_t *s, const char *what, uint64_t min,
                     uint64_t max, uint64_t *out)
{
    char *text = NULL;
    int rc = expand_if_string(L, s, what, &text);
    if (rc != 0)
        return rc;
    int64_t v;
    int type = config_setting_type(s);
    char got[128];
    if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
        v = config_setting_get_int64(s);
    } else if (type == CONFIG_TYPE_STRING && ik_parse_int(text, &v) == 0) {
        /* parsed */
    } else {
        rc = fail_at(L->err, s, IK_E_CONFIG, "%s must be an integer, got %s", what,
                     describe(s, text, got, sizeof got));
        free(text);
        return rc;
    }
    free(text);
    if (v < 0 || (uint64_t)v < min || (uint64_t)v > max)
        return range_error(L, s, what, min, max, v);
    *out = (uint64_t)v;
    return 0;
}

/* A number of seconds/bytes (int or float) times `mult`, rounded; 0 or
 * IK_E_CONFIG when negative or too large. */
static int number_scaled(loader *L, const config_setting_t *s, const char *what, uint64_t mult,
                         uint64_t *out)
{
    char got[128];
    if (config_setting_type(s) == CONFIG_TYPE_FLOAT) {
        double f = config_setting_get_float(s);
        double v = f * (double)mult;
        if (!isfinite(v) || v < 0 || v + 0.5 >= 18446744073709551616.0)
            return fail_at(L->err, s, IK_E_CONFIG, "%s must be a non-negative number, got %s", what,
                           describe(s, NULL, got, sizeof got));
        *out = (uint64_t)(v + 0.5);
        return 0;
    }
    long long i = config_setting_get_int64(s);
    uint64_t v;
    if (i < 0 || __builtin_mul_overflow((uint64_t)i, mult, &v))
        return fail_at(L->err, s, IK_E_CONFIG, "%s must be a non-negative number, got %s", what,
                       describe(s, NULL, got, sizeof got));
    *out = v;
    return 0;
}

/* A duration: a number of seconds, or a string like "250ms", "30s", "5m". */
static int read_duration(loader *L, const config_setting_t *s, const char *what, uint64_t *ms)
{
    if (config_setting_is_number(s))
        return number_scaled(L, s, what, 1000, ms);
    char *text = NULL;
    int rc = expand_if_string(L, s, what, &text);
    if (rc != 0)
        return rc;
    if (text && ik_parse_duration_ms(text, ms) == 0) {
        free(text);
        return 0;
    }
    char got[128];
    rc = fail_at(L->err, s, IK_E_CONFIG,
                 "%s must be a duration (\"250ms\", \"30s\", \"5m\", \"1h\" or a number of "
                 "seconds), got %s",
                 what, describe(s, text, got, sizeof got));
    free(text);
    return rc;
}

/* A size: a number of bytes, or a string like "512", "256K", "4M", "1G". */
static int read_size(loader *L, const config_setting_t *s, const char *what, uint64_t *bytes)
{
    if (config_setting_is_number(s))
        return number_scaled(L, s, what, 1, bytes);
    char *text = NULL;
    int rc = expand_if_string(L, s, what, &text);
    if (rc != 0)
        return rc;
    if (text && ik_parse_size(text, bytes) == 0) {
        free(text);
        return 0;
    }
    char got[128];
    rc = fail_at(L->err, s, IK_E_CONFIG,
                 "%s must be a size (\"512\", \"256K\", \"4M\", \"1G\" or a number of bytes), "
                 "got %s",
                 what, describe(s, text, got, sizeof got));
    free(text);
    return rc;
}

/* A bool, or a string yes/no/true/false/on/off/1/0. */
static int read_bool(loader *L, const config_setting_t *s, const char *what, int *out)
{
    if (config_setting_type(s) == CONFIG_TYPE_BOOL) {
        *out = config_setting_get_bool(s) ? 1 : 0;
        return 0;
    }
    char *text = NULL;
    int rc = expand_if_string(L, s, what, &text);
    if (rc != 0)
        return rc;
    if (text && ik_parse_bool(text, out) == 0) {
        free(text);
        return 0;
    }
    char got[128];
    rc = fail_at(L->err, s, IK_E_CONFIG, "%s must be a bool (true or false), got %s", what,
                 describe(s, text, got, sizeof got));
    free(text);
    return rc;
}

static int require_group(loader *L, const config_setting_t *s, const char *what, const char *hint)
{
    if (config_setting_is_group(s))
        return 0;
    char got[128];
    return fail_at(L->err, s, IK_E_CONFIG, "%s must be a group %s, got %s", what, hint,
                   describe(s, NULL, got, sizeof got));
}

/* ------------------------------------------------------------ paths */

/* Absolute directory of `path` (cwd-relative paths joined to the cwd, not
 * resolved further); *out malloc'd. */
static int dir_of(const char *path, char **out, ik_err *err)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (!dir)
        return ik_err_set(err, IK_E_NOMEM, "out of memory");
    if (dir[0] == '/') {
        *out = dir;
        return 0;
    }
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) {
        int e = errno;
        free(dir);
        return ik_err_set(err, IK_E_IO, "cannot get the current directory: %s", strerror(e));
    }
    char *abs;
    int n = strcmp(dir, ".") == 0 ? asprintf(&abs, "%s", cwd) : asprintf(&abs, "%s/%s", cwd, dir);
    free(dir);
    if (n < 0)
        return ik_err_set(err, IK_E_NOMEM, "out of memory");
    *out = abs;
    return 0;
}

/* `name` made absolute against `dir`; malloc'd or NULL when out of memory. */
static char *resolve(const char *dir, const char *name)
{
    if (name[0] == '/')
        return strdup(name);
    while (name[0] == '.' && name[1] == '/')
        name += 2;
    char *p;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        return NULL;
    return p;
}

/* ------------------------------------------------------------ seeds */

/* Reads the seed deployment's variables (after env_file) as defaults. An
 * empty variable counts as unset. */
static int read_seeds(loader *L)
{
    L->seed_max_items = DEFAULT_MAX_ITEMS;
    L->seed_max_wait_ms = DEFAULT_MAX_WAIT_MS;
    L->seed_max_record = DEFAULT_MAX_RECORD;
    const char *v = getenv("MAX_BATCH_SIZE");
    if (v && *v) {
        int64_t n;
        if (ik_parse_int(v, &n) != 0 || n < 1 || n > (int64_t)UINT32_MAX)
            return ik_err_set(L->err, IK_E_CONFIG,
                              "environment variable MAX_BATCH_SIZE=\"%.*s\" is not a whole number "
                              ">= 1 (it is the default batch.max_items; fix or unset it)",
                              QUOTE_MAX, v);
        L->seed_max_items = (uint32_t)n;
    }
    v = getenv("BATCH_TIMEOUT_SECONDS");
    if (v && *v) {
        uint64_t ms;
        if (ik_parse_duration_ms(v, &ms) != 0)
            return ik_err_set(L->err, IK_E_CONFIG,
                              "environment variable BATCH_TIMEOUT_SECONDS=\"%.*s\" is not a "
                              "number of seconds (it is the default batch.max_wait; fix or unset "
                              "it)",
                              QUOTE_MAX, v);
        L->seed_max_wait_ms = ms;
    }
    v = getenv("MAX_MESSAGE_SIZE_KB");
    if (v && *v) {
        int64_t n;
        if (ik_parse_int(v, &n) != 0 || n < 1 || (uint64_t)n > UINT64_MAX / 1024)
            return ik_err_set(L->err, IK_E_CONFIG,
                              "environment variable MAX_MESSAGE_SIZE_KB=\"%.*s\" is not a whole "
                              "number of KiB >= 1 (it is the default max_record_size; fix or "
                              "unset it)",
                              QUOTE_MAX, v);
        L->seed_max_record = (uint64_t)n * 1024u;
    }
    return 0;
}

/* ------------------------------------------------------------ names */

static int valid_name(const char *s, int allow_upper_dot_dash)
{
    if (!*s)
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')
            continue;
        if (allow_upper_dot_dash && ((c >= 'A' && c <= 'Z') || c == '.' || c == '-' || c == '#'))
            continue;
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------ groups */

/* Overrides the keys present in a `batch` group. */
static int load_batch(loader *L, const config_setting_t *s, const char *ctx, ik_batch_spec *b)
{
    char what[256];
    snprintf(what, sizeof what, "%s: batch", ctx);
    int rc = require_group(L, s, what, "{ max_items = 50; max_cost = 0; max_wait = \"30s\"; }");
    if (rc == 0)
        rc = check_keys(L, s, batch_keys, what);
    if (rc != 0)
        return rc;
    const config_setting_t *m;
    uint64_t v;
    if ((m = config_setting_get_member(s, "max_items"))) {
        snprintf(what, sizeof what, "%s: batch.max_items", ctx);
        if ((rc = read_uint(L, m, what, 1, UINT32_MAX, &v)) != 0)
            return rc;
        b->max_items = (uint32_t)v;
    }
    if ((m = config_setting_get_member(s, "max_cost"))) {
        snprintf(what, sizeof what, "%s: batch.max_cost", ctx);
        if ((rc = read_uint(L, m, what, 0, (uint64_t)INT64_MAX, &v)) != 0)
            return rc;
        b->max_cost = v;
    }
    if ((m = config_setting_get_member(s, "max_wait"))) {
        snprintf(what, sizeof what, "%s: batch.max_wait", ctx);
        if ((rc = read_duration(L, m, what, &v)) != 0)
            return rc;
        b->max_wait_ms = v;
    }
    return 0;
}

/*
 * Reads a stage group into *st (whose name stays NULL unless `name` is set:
 * assign_names() fills the rest). `label` is "source", "sinks[1]", ...
 */
static int load_stage(loader *L, const ik_pipeline_spec *p, config_setting_t *s, ik_stage_role role,
                      const char *label, ik_stage_spec *st)
{
    char ctx[256], what[320];
    snprintf(ctx, sizeof ctx, "pipeline '%s': %s", p->name, label);
    int rc = require_group(L, s, ctx, "{ plugin = \"...\"; ... }");
    if (rc != 0)
        return rc;
    st->role = role;
    st->setting = s;
    st->file = config_setting_source_file(s) ? config_setting_source_file(s) : L->cfg->path;
    st->line = (int)config_setting_source_line(s);
    st->concurrency = 1;
    if (role == IK_ROLE_SINK || role == IK_ROLE_DEAD_LETTER) {
        st->batch.max_items = DEFAULT_SINK_MAX_ITEMS;
        st->batch.max_cost = 0;
        st->batch.max_wait_ms = DEFAULT_SINK_MAX_WAIT;
    } else {
        st->batch = p->batch;
    }

    const config_setting_t *m = config_setting_get_member(s, "plugin");
    if (!m)
        return fail_at(L->err, s, IK_E_CONFIG,
                       "%s has no 'plugin' (every stage names its plugin: plugin = \"stdout\";)",
                       ctx);
    snprintf(what, sizeof what, "%s: plugin", ctx);
    if ((rc = read_string(L, m, what, &st->plugin)) != 0)
        return rc;
    if (!valid_name(st->plugin, 0)) {
        char got[128];
        return fail_at(L->err, m, IK_E_CONFIG,
                       "%s must be a plugin name made of [a-z0-9_] (file intake-<name>.so), got %s",
                       what, describe(m, st->plugin, got, sizeof got));
    }
    snprintf(ctx, sizeof ctx, "pipeline '%s': %s (plugin '%s')", p->name, label, st->plugin);

    if ((m = config_setting_get_member(s, "name"))) {
        snprintf(what, sizeof what, "%s: name", ctx);
        if ((rc = read_string(L, m, what, &st->name)) != 0)
            return rc;
        if (!valid_name(st->name, 1)) {
            char got[128];
            return fail_at(L->err, m, IK_E_CONFIG, "%s must be made of [A-Za-z0-9_.#-], got %s",
                           what, describe(m, st->name, got, sizeof got));
        }
    }
    if ((m = config_setting_get_member(s, "concurrency"))) {
        uint64_t v;
        snprintf(what, sizeof what, "%s: concurrency", ctx);
        if ((rc = read_uint(L, m, what, 1, CONCURRENCY_MAX, &v)) != 0)
            return rc;
        st->concurrency = (uint32_t)v;
    }
    if ((m = config_setting_get_member(s, "batch")))
        if ((rc = load_batch(L, m, ctx, &st->batch)) != 0)
            return rc;
    return 0;
}

/* Reads a list of stage groups (processors, sinks). */
static int load_stage_list(loader *L, const ik_pipeline_spec *p, config_setting_t *s,
                           const char *key, ik_stage_role role, ik_stage_spec **out, size_t *nout)
{
    if (!config_setting_is_list(s)) {
        char got[128];
        return fail_at(L->err, s, IK_E_CONFIG,
                       "pipeline '%s': %s must be a list of groups, like %s = ( { plugin = "
                       "\"...\"; } ); got %s",
                       p->name, key, key, describe(s, NULL, got, sizeof got));
    }
    int n = config_setting_length(s);
    if (n <= 0)
        return 0;
    *out = calloc((size_t)n, sizeof **out);
    if (!*out)
        return ik_err_set(L->err, IK_E_NOMEM, "out of memory");
    *nout = (size_t)n;
    for (int i = 0; i < n; i++) {
        char label[64];
        snprintf(label, sizeof label, "%s[%d]", key, i);
        int rc = load_stage(L, p, config_setting_get_elem(s, (unsigned)i), role, label, &(*out)[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int name_taken(ik_stage_spec *const *all, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (all[i]->name && strcmp(all[i]->name, name) == 0)
            return 1;
    return 0;
}

/* Instance names: explicit ones must be unique; the others get the plugin
 * name, numbered "stdout#2", "stdout#3"... when taken. */
static int assign_names(loader *L, ik_pipeline_spec *p)
{
    size_t n = 1 + p->nprocessors + p->nsinks + (p->dead_letter ? 1 : 0);
    ik_stage_spec **all = calloc(n, sizeof *all);
    if (!all)
        return ik_err_set(L->err, IK_E_NOMEM, "out of memory");
    size_t k = 0;
    all[k++] = &p->source;
    for (size_t i = 0; i < p->nprocessors; i++)
        all[k++] = &p->processors[i];
    for (size_t i = 0; i < p->nsinks; i++)
        all[k++] = &p->sinks[i];
    if (p->dead_letter)
        all[k++] = p->dead_letter;

    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!all[i]->name)
            continue;
        for (size_t j = 0; j < i; j++) {
            if (all[j]->name && strcmp(all[j]->name, all[i]->name) == 0) {
                char first[PATH_MAX + 32];
                snprintf(first, sizeof first, "%s", ik_config_where(all[j]->setting));
                rc = fail_at(L->err, all[i]->setting, IK_E_CONFIG,
                             "pipeline '%s': duplicate instance name '%s' (also used at %s); "
                             "give each stage its own name",
                             p->name, all[i]->name, first);
                break;
            }
        }
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (all[i]->name)
            continue;
        char *name = NULL;
        for (unsigned num = 1; rc == 0; num++) {
            int r = num == 1 ? asprintf(&name, "%s", all[i]->plugin)
                             : asprintf(&name, "%s#%u", all[i]->plugin, num);
            if (r < 0) {
                name = NULL;
                rc = ik_err_set(L->err, IK_E_NOMEM, "out of memory");
                break;
            }
            if (!name_taken(all, n, name))
                break;
            free(name);
            name = NULL;
        }
        all[i]->name = name;
    }
    free(all);
    return rc;
}

static int load_retry(loader *L, const config_setting_t *s, const char *pctx, ik_retry_spec *r)
{
    char ctx[288], what[352];
    snprintf(ctx, sizeof ctx, "%s: retry", pctx);
    int rc = require_group(
        L, s, ctx, "{ max_attempts = 5; initial_backoff = \"1s\"; max_backoff = \"60s\"; }");
    if (rc == 0)
        rc = check_keys(L, s, retry_keys, ctx);
    if (rc != 0)
        return rc;
    const config_setting_t *m, *maxs;
    uint64_t v;
    if ((m = config_setting_get_member(s, "max_attempts"))) {
        snprintf(what, sizeof what, "%s.max_attempts", ctx);
        if ((rc = read_uint(L, m, what, 1, UINT32_MAX, &v)) != 0)
            return rc;
        r->max_attempts = (uint32_t)v;
    }
    if ((m = config_setting_get_member(s, "initial_backoff"))) {
        snprintf(what, sizeof what, "%s.initial_backoff", ctx);
        if ((rc = read_duration(L, m, what, &r->initial_backoff_ms)) != 0)
            return rc;
    }
    if ((maxs = config_setting_get_member(s, "max_backoff"))) {
        snprintf(what, sizeof what, "%s.max_backoff", ctx);
        if ((rc = read_duration(L, maxs, what, &r->max_backoff_ms)) != 0)
            return rc;
        if (r->max_backoff_ms < r->initial_backoff_ms)
            return fail_at(L->err, maxs, IK_E_CONFIG,
                           "%s.max_backoff (%llu ms) must be >= initial_backoff (%llu ms)", ctx,
                           (unsigned long long)r->max_backoff_ms,
                           (unsigned long long)r->initial_backoff_ms);
    } else if (r->max_backoff_ms < r->initial_backoff_ms) {
        r->max_backoff_ms = r->initial_backoff_ms; /* default cap raised to the explicit start */
    }
    return 0;
}

/* The pipeline's own settings (inflight_limit, max_record_size,
 * health_window, max_crashes) with their defaults; ctx names the pipeline in
 * messages. 0 or the error set in L->err. */
static int load_pipeline_settings(loader *L, config_setting_t *s, const char *ctx,
                                  ik_pipeline_spec *p)
{
    char what[320];
    const config_setting_t *m;
    uint64_t v;
    int rc;
    p->inflight_limit = DEFAULT_INFLIGHT;
    p->max_record_size = L->seed_max_record;
    p->health_window_ms = DEFAULT_HEALTH_WINDOW;
    p->max_crashes = DEFAULT_MAX_CRASHES;
    p->retry.max_attempts = DEFAULT_MAX_ATTEMPTS;
    p->retry.initial_backoff_ms = DEFAULT_INITIAL_BACKOFF;
    p->retry.max_backoff_ms = DEFAULT_MAX_BACKOFF;
    p->batch.max_items = L->seed_max_items;
    p->batch.max_cost = 0;
    p->batch.max_wait_ms = L->seed_max_wait_ms;

    if ((m = config_setting_get_member(s, "inflight_limit"))) {
        snprintf(what, sizeof what, "%s: inflight_limit", ctx);
        if ((rc = read_uint(L, m, what, 1, UINT32_MAX, &v)) != 0)
            return rc;
        p->inflight_limit = (uint32_t)v;
    }
    if ((m = config_setting_get_member(s, "max_record_size"))) {
        snprintf(what, sizeof what, "%s: max_record_size", ctx);
        if ((rc = read_size(L, m, what, &v)) != 0)
            return rc;
        if (v < 1)
            return range_error(L, m, what, 1, UINT64_MAX, 0);
        p->max_record_size = v;
    }
    if ((m = config_setting_get_member(s, "health_window"))) {
        snprintf(what, sizeof what, "%s: health_window", ctx);
        if ((rc = read_duration(L, m, what, &v)) != 0)
            return rc;
        if (v < 1)
            return fail_at(L->err, m, IK_E_CONFIG, "%s must be longer than 0 (got 0)", what);
        p->health_window_ms = v;
    }
    if ((m = config_setting_get_member(s, "max_crashes"))) {
        snprintf(what, sizeof what, "%s: max_crashes", ctx);
        if ((rc = read_uint(L, m, what, 0, 1000, &v)) != 0)
            return rc;
        p->max_crashes = (uint32_t)v;
    }
    return 0;
}

static int load_pipeline(loader *L, config_setting_t *s, size_t index, ik_pipeline_spec *p)
{
    char ctx[256], what[320], label[32];
    snprintf(label, sizeof label, "pipelines[%zu]", index);
    int rc = require_group(L, s, label, "{ name = \"...\"; source = {...}; sinks = (...); }");
    if (rc != 0)
        return rc;
    p->file = config_setting_source_file(s) ? config_setting_source_file(s) : L->cfg->path;
    p->line = (int)config_setting_source_line(s);

    const config_setting_t *m = config_setting_get_member(s, "name");
    if (!m)
        return fail_at(L->err, s, IK_E_CONFIG,
                       "%s has no 'name' (every pipeline needs one: name = \"emails\";)", label);
    snprintf(what, sizeof what, "%s: name", label);
    if ((rc = read_string(L, m, what, &p->name)) != 0)
        return rc;
    if (!valid_name(p->name, 1) || strchr(p->name, '#')) {
        char got[128];
        return fail_at(L->err, m, IK_E_CONFIG, "%s must be made of [A-Za-z0-9_.-], got %s", what,
                       describe(m, p->name, got, sizeof got));
    }
    for (size_t i = 0; i < index; i++) {
        if (L->cfg->pipelines[i].name && strcmp(L->cfg->pipelines[i].name, p->name) == 0)
            return fail_at(L->err, m, IK_E_CONFIG,
                           "duplicate pipeline name '%s' (also used at %s:%d); pipeline names "
                           "must be unique",
                           p->name, L->cfg->pipelines[i].file, L->cfg->pipelines[i].line);
    }
    snprintf(ctx, sizeof ctx, "pipeline '%s'", p->name);
    if ((rc = check_keys(L, s, pipeline_keys, ctx)) != 0)
        return rc;

    if ((rc = load_pipeline_settings(L, s, ctx, p)) != 0)
        return rc;
    if ((m = config_setting_get_member(s, "retry")))
        if ((rc = load_retry(L, m, ctx, &p->retry)) != 0)
            return rc;
    if ((m = config_setting_get_member(s, "batch")))
        if ((rc = load_batch(L, m, ctx, &p->batch)) != 0)
            return rc;

    config_setting_t *st = config_setting_get_member(s, "source");
    if (!st)
        return fail_at(L->err, s, IK_E_CONFIG,
                       "%s has no 'source' (add source = { plugin = \"file\"; ... };)", ctx);
    if ((rc = load_stage(L, p, st, IK_ROLE_SOURCE, "source", &p->source)) != 0)
        return rc;
    if ((st = config_setting_get_member(s, "processors")))
        if ((rc = load_stage_list(L, p, st, "processors", IK_ROLE_PROCESSOR, &p->processors,
                                  &p->nprocessors)) != 0)
            return rc;
    if (!(st = config_setting_get_member(s, "sinks")))
        return fail_at(L->err, s, IK_E_CONFIG,
                       "%s has no 'sinks' (add sinks = ( { plugin = \"stdout\"; } );)", ctx);
    if ((rc = load_stage_list(L, p, st, "sinks", IK_ROLE_SINK, &p->sinks, &p->nsinks)) != 0)
        return rc;
    if (p->nsinks == 0)
        return fail_at(L->err, st, IK_E_CONFIG,
                       "%s: sinks is empty; at least one sink is required (sinks = ( { plugin = "
                       "\"stdout\"; } );)",
                       ctx);
    if ((st = config_setting_get_member(s, "dead_letter"))) {
        p->dead_letter = calloc(1, sizeof *p->dead_letter);
        if (!p->dead_letter)
            return ik_err_set(L->err, IK_E_NOMEM, "out of memory");
        if ((rc = load_stage(L, p, st, IK_ROLE_DEAD_LETTER, "dead_letter", p->dead_letter)) != 0)
            return rc;
    }
    return assign_names(L, p);
}

/* ------------------------------------------------------------ top level */

static int load_env_file(loader *L, const config_setting_t *root)
{
    const config_setting_t *m = config_setting_get_member(root, "env_file");
    const config_setting_t *o = config_setting_get_member(root, "env_file_optional");
    int optional = 0, rc;
    if (o && (rc = read_bool(L, o, "env_file_optional", &optional)) != 0)
        return rc;
    if (!m)
        return 0;
    char *name = NULL;
    /* Expanded against the real environment only: the file is not loaded yet. */
    if ((rc = read_string(L, m, "env_file", &name)) != 0)
        return rc;
    if (!*name) {
        free(name);
        return fail_at(L->err, m, IK_E_CONFIG, "env_file is empty (remove it or name a file)");
    }
    char *path = resolve(L->cfg->dir, name);
    free(name);
    if (!path)
        return ik_err_set(L->err, IK_E_NOMEM, "out of memory");
    ik_err tmp = {0};
    rc = ik_env_load_file(path, &tmp);
    if (rc == IK_E_NOTFOUND) {
        if (optional) {
            free(path);
            return 0;
        }
        rc = fail_at(L->err, m, IK_E_NOTFOUND,
                     "env_file '%s' not found (create it, fix the path, or add "
                     "env_file_optional = true;)",
                     path);
        free(path);
        return rc;
    }
    if (rc != 0) {
        /* The env loader's message already starts with the env file:line. */
        ik_err_set(L->err, rc, "%s", tmp.msg);
        free(path);
        return rc;
    }
    L->cfg->env_file = path;
    return 0;
}

static int add_plugin_path(loader *L, const config_setting_t *s, const char *what)
{
    char *name = NULL;
    int rc = read_string(L, s, what, &name);
    if (rc != 0)
        return rc;
    if (!*name) {
        free(name);
        return fail_at(L->err, s, IK_E_CONFIG, "%s is empty (name a directory)", what);
    }
    char *abs = resolve(L->cfg->dir, name);
    free(name);
    if (!abs)
        return ik_err_set(L->err, IK_E_NOMEM, "out of memory");
    L->cfg->plugin_path[L->cfg->nplugin_path++] = abs;
    return 0;
}

static int load_plugin_path(loader *L, const config_setting_t *s)
{
    int type = config_setting_type(s);
    if (type == CONFIG_TYPE_STRING) {
        L->cfg->plugin_path = calloc(1, sizeof(char *));
        if (!L->cfg->plugin_path)
            return ik_err_set(L->err, IK_E_NOMEM, "out of memory");
        return add_plugin_path(L, s, "plugin_path");
    }
    if (type != CONFIG_TYPE_LIST && type != CONFIG_TYPE_ARRAY) {
        char got[128];
        return fail_at(
            L->err, s, IK_E_CONFIG,
            "plugin_path must be a string or a list of strings ([ \"plugins\" ]), got %s",
            describe(s, NULL, got, sizeof got));
    }
    int n = config_setting_length(s);
    if (n <= 0)
        return 0;
    L->cfg->plugin_path = calloc((size_t)n, sizeof(char *));
    if (!L->cfg->plugin_path)
        return ik_err_set(L->err, IK_E_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        char what[64];
        snprintf(what, sizeof what, "plugin_path[%d]", i);
        int rc = add_plugin_path(L, config_setting_get_elem(s, (unsigned)i), what);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int parse_level(const char *s)
{
    static const char *const names[] = {"error", "warn", "info", "debug", "trace"};
    for (int i = 0; i < 5; i++)
        if (strcasecmp(s, names[i]) == 0)
            return i;
    return -1;
}

static int load_log(loader *L, const config_setting_t *s)
{
    int rc = require_group(L, s, "log", "{ level = \"info\"; format = \"text\"; }");
    if (rc == 0)
        rc = check_keys(L, s, log_keys, "log");
    if (rc != 0)
        return rc;
    const config_setting_t *m;
    char *v = NULL;
    if ((m = config_setting_get_member(s, "level"))) {
        if ((rc = read_string(L, m, "log.level", &v)) != 0)
            return rc;
        int lvl = parse_level(v);
        if (lvl < 0) {
            char got[128];
            rc = fail_at(L->err, m, IK_E_CONFIG,
                         "log.level must be one of error, warn, info, debug, trace; got %s",
                         describe(m, v, got, sizeof got));
            free(v);
            return rc;
        }
        L->cfg->log_level = (ik_log_level)lvl;
        free(v);
        v = NULL;
    }
    if ((m = config_setting_get_member(s, "format"))) {
        if ((rc = read_string(L, m, "log.format", &v)) != 0)
            return rc;
        if (strcasecmp(v, "text") == 0) {
            L->cfg->log_json = 0;
        } else if (strcasecmp(v, "json") == 0) {
            L->cfg->log_json = 1;
        } else {
            char got[128];
            rc = fail_at(L->err, m, IK_E_CONFIG, "log.format must be text or json; got %s",
                         describe(m, v, got, sizeof got));
            free(v);
            return rc;
        }
        free(v);
    }
    return 0;
}

/* "HOST:PORT" with a port 0..65535 (0: any free port). */
static int valid_listen(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon[1] == '\0')
        return 0;
    int64_t port;
    if (ik_parse_int(colon + 1, &port) != 0 || port < 0 || port > 65535 || colon[1] == '+' ||
        colon[1] == '-')
        return 0;
    return 1;
}

/* Control commands beyond loopback need INTAKE_ADMIN_TOKEN (set in the
 * environment or the env_file): refused here, so `intake validate` says so. */
static int check_admin_token(loader *L, const config_setting_t *s)
{
    const config_setting_t *m = config_setting_get_member(s, "listen");
    ik_err why = {0};
    if (!m || !L->cfg->admin_enabled ||
        ik_admin_check_exposure(L->cfg->admin_listen, getenv(IK_ADMIN_TOKEN_ENV), &why) == 0)
        return 0;
    return fail_at(L->err, m, IK_E_CONFIG, "%s", why.msg);
}

static int load_admin(loader *L, const config_setting_t *s)
{
    int rc = require_group(L, s, "admin", "{ enabled = true; listen = \"127.0.0.1:2020\"; }");
    if (rc == 0)
        rc = check_keys(L, s, admin_keys, "admin");
    if (rc != 0)
        return rc;
    const config_setting_t *m;
    if ((m = config_setting_get_member(s, "enabled")))
        if ((rc = read_bool(L, m, "admin.enabled", &L->cfg->admin_enabled)) != 0)
            return rc;
    if ((m = config_setting_get_member(s, "listen"))) {
        char *v = NULL;
        if ((rc = read_string(L, m, "admin.listen", &v)) != 0)
            return rc;
        if (!valid_listen(v)) {
            char got[128];
            rc = fail_at(L->err, m, IK_E_CONFIG,
                         "admin.listen must be HOST:PORT (\"127.0.0.1:2020\"), got %s",
                         describe(m, v, got, sizeof got));
            free(v);
            return rc;
        }
        free(L->cfg->admin_listen);
        L->cfg->admin_listen = v;
    }
    if ((m = config_setting_get_member(s, "request_timeout"))) {
        if ((rc = read_duration(L, m, "admin.request_timeout",
                                &L->cfg->admin_request_timeout_ms)) != 0)
            return rc;
        if (L->cfg->admin_request_timeout_ms == 0)
            return fail_at(L->err, m, IK_E_CONFIG,
                           "admin.request_timeout must be more than 0 (e.g. \"10s\")");
    }
    return check_admin_token(L, s);
}

/* ------------------------------------------------------------ state store */

/* state.dir must be a folder the engine can write, or not exist yet (it is
 * created on first use); a state.db in it must be a regular file. */
static int check_state_dir(loader *L, const config_setting_t *m, const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return errno == ENOENT
                   ? 0
                   : fail_at(L->err, m, IK_E_CONFIG, "state.dir %s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return fail_at(L->err, m, IK_E_CONFIG, "state.dir %s is not a folder", dir);
    if (access(dir, W_OK | X_OK) != 0)
        return fail_at(L->err, m, IK_E_CONFIG, "state.dir %s is not writable: %s", dir,
                       strerror(errno));
    char *db;
    if (asprintf(&db, "%s/state.db", dir) < 0)
        return ik_err_set(L->err, IK_E_NOMEM, "out of memory");
    int rc = 0;
    if (lstat(db, &sb) == 0 && !S_ISREG(sb.st_mode))
        rc = fail_at(L->err, m, IK_E_CONFIG, "state.dir: %s is not a regular file", db);
    free(db);
    return rc;
}

/* state = { dir = "state"; durability = "normal"; }: dir relative to the
 * config's folder. */
static int load_state(loader *L, const config_setting_t *s)
{
    int rc =
        require_group(L, s, "state", "{ dir = \"/var/lib/intake\"; durability = \"normal\"; }");
    if (rc == 0)
        rc = check_keys(L, s, state_keys, "state");
    if (rc != 0)
        return rc;
    const config_setting_t *m;
    char *v = NULL;
    if ((m = config_setting_get_member(s, "durability"))) {
        if ((rc = read_string(L, m, "state.durability", &v)) != 0)
            return rc;
        if (strcasecmp(v, "normal") == 0 || strcasecmp(v, "full") == 0) {
            L->cfg->state_durability = strcasecmp(v, "full") == 0;
        } else {
            char got[128];
            rc = fail_at(L->err, m, IK_E_CONFIG, "state.durability must be normal or full; got %s",
                         describe(m, v, got, sizeof got));
        }
        free(v);
        v = NULL;
        if (rc != 0)
            return rc;
    }
    if ((m = config_setting_get_member(s, "dir"))) {
        if ((rc = read_string(L, m, "state.dir", &v)) != 0)
            return rc;
        char *abs = *v ? resolve(L->cfg->dir, v) : NULL;
        int empty = !*v;
        free(v);
        if (empty)
            return fail_at(L->err, m, IK_E_CONFIG, "state.dir is empty (name a folder)");
        if (!abs)
            return ik_err_set(L->err, IK_E_NOMEM, "out of memory");
        free(L->cfg->state_dir);
        L->cfg->state_dir = abs;
        return check_state_dir(L, m, abs);
    }
    return 0;
}

/* Everything after the libconfig parse. */
static int load_tree(loader *L)
{
    ik_config *cfg = L->cfg;
    config_setting_t *root = config_root_setting(&cfg->cfg);
    int rc = check_keys(L, root, top_keys, "the top level");
    /* ${INTAKE_CONFIG_DIR} lets a pipeline name files beside itself whatever
     * the working directory (the demo reads etc/samples this way). */
    if (rc == 0 && setenv("INTAKE_CONFIG_DIR", cfg->dir, 1) != 0)
        rc = ik_err_set(L->err, IK_E_NOMEM, "cannot set INTAKE_CONFIG_DIR");
    if (rc == 0)
        rc = load_env_file(L, root);
    if (rc == 0)
        rc = read_seeds(L);
    if (rc != 0)
        return rc;

    const config_setting_t *m;
    if ((m = config_setting_get_member(root, "plugin_path")))
        if ((rc = load_plugin_path(L, m)) != 0)
            return rc;
    if ((m = config_setting_get_member(root, "log")))
        if ((rc = load_log(L, m)) != 0)
            return rc;
    if ((m = config_setting_get_member(root, "admin")))
        if ((rc = load_admin(L, m)) != 0)
            return rc;
    if ((m = config_setting_get_member(root, "shutdown_timeout")))
        if ((rc = read_duration(L, m, "shutdown_timeout", &cfg->shutdown_timeout_ms)) != 0)
            return rc;
    if ((m = config_setting_get_member(root, "state")))
        if ((rc = load_state(L, m)) != 0)
            return rc;
    if (!cfg->state_dir && !(cfg->state_dir = resolve(cfg->dir, "state")))
        return ik_err_set(L->err, IK_E_NOMEM, "out of memory");

    config_setting_t *ps = config_setting_get_member(root, "pipelines");
    if (!ps)
        return ik_err_set(L->err, IK_E_CONFIG,
                          "%s: no pipelines defined (add pipelines = ( { name = \"main\"; source = "
                          "{ plugin = \"...\"; }; sinks = ( { plugin = \"stdout\"; } ); } );)",
                          cfg->path);
    if (!config_setting_is_list(ps)) {
        char got[128];
        return fail_at(L->err, ps, IK_E_CONFIG,
                       "pipelines must be a list of groups, like pipelines = ( { name = "
                       "\"emails\"; ... } ); got %s",
                       describe(ps, NULL, got, sizeof got));
    }
    int n = config_setting_length(ps);
    if (n <= 0)
        return fail_at(L->err, ps, IK_E_CONFIG, "pipelines is empty; define at least one pipeline");
    cfg->pipelines = calloc((size_t)n, sizeof *cfg->pipelines);
    if (!cfg->pipelines)
        return ik_err_set(L->err, IK_E_NOMEM, "out of memory");
    cfg->npipelines = (size_t)n;
    for (int i = 0; i < n; i++)
        if ((rc = load_pipeline(L, config_setting_get_elem(ps, (unsigned)i), (size_t)i,
                                &cfg->pipelines[i])) != 0)
            return rc;
    return 0;
}

/* Puts every setting back on the file and line it came from: libconfig
 * numbered the lines of the expanded text. */
static void locate_settings(const ik_config_text *t, config_setting_t *s)
{
    const char *file;
    unsigned line;
    ik_config_text_locate(t, s->line, &file, &line);
    s->file = file;
    s->line = line;
    if (config_setting_is_aggregate(s)) {
        int n = config_setting_length(s);
        for (int i = 0; i < n; i++)
            locate_settings(t, config_setting_get_elem(s, (unsigned)i));
    }
}

/* Parses the expanded text with libconfig; a syntax error names the file
 * and line it is on, an included file's too. */
static int parse_text(ik_config *cfg, ik_err *err)
{
    /* No @include is left in the text. Should libconfig meet one all the
     * same, it opens nothing: it joins every include name to this folder,
     * which is not one. */
    config_set_include_dir(&cfg->cfg, "/dev/null");
    int ok = config_read_string(&cfg->cfg, cfg->src.text);
    ik_config_text_release(&cfg->src);
    if (!ok) {
        const char *file;
        unsigned line;
        const char *et = config_error_text(&cfg->cfg);
        ik_config_text_locate(&cfg->src, (unsigned)config_error_line(&cfg->cfg), &file, &line);
        return ik_err_set(err, IK_E_CONFIG,
                          "%s:%u: %s (libconfig syntax: key = value; groups { }, lists ( ), "
                          "arrays [ ], each setting ends with ';')",
                          file, line, et ? et : "syntax error");
    }
    locate_settings(&cfg->src, config_root_setting(&cfg->cfg));
    return 0;
}

/* Shared by ik_config_load and ik_config_load_string: `text` NULL reads
 * `path` from disk, otherwise parses text with `path` as its name. */
static int load_common(const char *path, const char *text, ik_config **out, ik_err *err)
{
    ik_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return ik_err_set(err, IK_E_NOMEM, "out of memory");
    config_init(&cfg->cfg);
    cfg->log_level = IK_LOG_INFO;
    cfg->log_json = 0;
    cfg->admin_enabled = 1;
    cfg->shutdown_timeout_ms = DEFAULT_SHUTDOWN_MS;
    cfg->path = strdup(path);
    cfg->admin_listen = strdup(DEFAULT_ADMIN_LISTEN);
    int rc;
    if (!cfg->path || !cfg->admin_listen) {
        rc = ik_err_set(err, IK_E_NOMEM, "out of memory");
        goto fail;
    }
    if ((rc = dir_of(path, &cfg->dir, err)) != 0)
        goto fail;
    /* Read here, includes and all, within the limits; libconfig gets text. */
    if ((rc = ik_config_text_load(path, cfg->dir, text, &cfg->src, err)) != 0)
        goto fail;
    if ((rc = parse_text(cfg, err)) != 0)
        goto fail;

    loader L = {.cfg = cfg, .err = err};
    if ((rc = load_tree(&L)) != 0)
        goto fail;
    *out = cfg;
    return 0;
fail:
    ik_config_free(cfg);
    return rc;
}

int ik_config_load(const char *path, ik_config **out, ik_err *err)
{
    if (!path || !out)
        return ik_err_set(err, IK_E_INVAL, "ik_config_load: NULL argument");
    *out = NULL;
    return load_common(path, NULL, out, err);
}

int ik_config_load_string(const char *text, const char *name, ik_config **out, ik_err *err)
{
    if (!text || !out)
        return ik_err_set(err, IK_E_INVAL, "ik_config_load_string: NULL argument");
    *out = NULL;
    return load_common(name ? name : "<string>", text, out, err);
}

static void free_stage(ik_stage_spec *st)
{
    free(st->plugin);
    free(st->name);
}

void ik_config_free(ik_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->npipelines; i++) {
        ik_pipeline_spec *p = &cfg->pipelines[i];
        free(p->name);
        free_stage(&p->source);
        for (size_t j = 0; j < p->nprocessors; j++)
            free_stage(&p->processors[j]);
        free(p->processors);
        for (size_t j = 0; j < p->nsinks; j++)
            free_stage(&p->sinks[j]);
        free(p->sinks);
        if (p->dead_letter) {
            free_stage(p->dead_letter);
            free(p->dead_letter);
        }
    }
    free(cfg->pipelines);
    for (size_t i = 0; i < cfg->nplugin_path; i++)
        free(cfg->plugin_path[i]);
    free(cfg->plugin_path);
    free(cfg->env_file);
    free(cfg->admin_listen);
    free(cfg->state_dir);
    config_destroy(&cfg->cfg);
    ik_config_text_free(&cfg->src); /* after libconfig: settings point at its file names */
    free(cfg->dir);
    free(cfg->path);
    free(cfg);
}
