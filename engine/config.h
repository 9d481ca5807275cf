/*
 * config.h: the pipeline file (libconfig syntax) read into plain structs.
 *
 *   env_file = ".env.local";             # optional, relative to this file
 *   plugin_path = [ "plugins" ];          # optional, relative to this file
 *   log = { level = "info"; format = "text"; };
 *   admin = { enabled = true; listen = "127.0.0.1:2020"; request_timeout = "10s"; };
 *   shutdown_timeout = "30s";
 *   state = { dir = "state"; durability = "normal"; };   # the state store
 *   pipelines = (
 *     { name = "emails";
 *       inflight_limit = 1000;
 *       max_record_size = "256K";
 *       retry = { max_attempts = 5; initial_backoff = "1s"; max_backoff = "60s"; };
 *       batch = { max_items = 50; max_cost = 0; max_wait = "30s"; };
 *       health_window = "60s";
 *       source = { plugin = "file"; path = "in/"; };
 *       processors = ( { plugin = "passthrough"; concurrency = 2; } );
 *       sinks = ( { plugin = "stdout"; } );
 *       dead_letter = { plugin = "stdout"; };
 *     } );
 *
 * A stage group (source, each processor, each sink, dead_letter) has engine
 * keys `plugin` (required), `name`, `concurrency`, `batch`; every other member
 * is a plugin option, checked later against the plugin's option table by
 * options.h. Any string, anywhere, may use ${VAR} / ${VAR:-default}, and a
 * numeric setting may be a string that expands to a number.
 *
 * Loading sets INTAKE_CONFIG_DIR to the config file's folder (absolute), so
 * ${INTAKE_CONFIG_DIR} names files beside the config whatever the working
 * directory.
 *
 * Defaults honour the seed's variables: batch.max_items = $MAX_BATCH_SIZE or
 * 50, batch.max_wait = $BATCH_TIMEOUT_SECONDS or 30 s, max_record_size =
 * $MAX_MESSAGE_SIZE_KB or 256 KiB.
 */
#ifndef IK_CONFIG_H
#define IK_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <libconfig.h>

#include <intake/plugin.h>

#include "config_text.h"
#include "error.h"

typedef struct ik_batch_spec {
    uint32_t max_items;   /* >= 1 */
    uint64_t max_cost;    /* 0: no cost limit */
    uint64_t max_wait_ms; /* how long a partial batch may wait */
} ik_batch_spec;

typedef struct ik_retry_spec {
    uint32_t max_attempts;       /* >= 1; 1 means no retry. Default 5 */
    uint64_t initial_backoff_ms; /* default 1000 */
    uint64_t max_backoff_ms;     /* default 60000, >= initial */
} ik_retry_spec;

typedef enum ik_stage_role {
    IK_ROLE_SOURCE = 1,
    IK_ROLE_PROCESSOR = 2,
    IK_ROLE_SINK = 3,
    IK_ROLE_DEAD_LETTER = 4, /* a sink in the dead_letter slot */
} ik_stage_role;

typedef struct ik_stage_spec {
    char *plugin; /* plugin name as written */
    char *name;   /* `name`, else the plugin name; unique within the
                     pipeline ("stdout", "stdout#2", ...) */
    ik_stage_role role;
    uint32_t concurrency;      /* worker threads; default 1; 1..256 */
    ik_batch_spec batch;       /* processors inherit the pipeline's batch; sinks
                                  default to max_items 100, max_cost 0, max_wait 200ms;
                                  a `batch` group in the stage overrides per key */
    config_setting_t *setting; /* the stage group; lives as long as the ik_config */
    const char *file;          /* config file that holds it (owned by the ik_config) */
    int line;                  /* line of the group */
} ik_stage_spec;

typedef struct ik_pipeline_spec {
    char *name; /* required, [A-Za-z0-9_.-]+, unique in the file */
    const char *file;
    int line;
    uint32_t inflight_limit;   /* default 1000; >= 1 */
    uint64_t max_record_size;  /* bytes */
    uint64_t health_window_ms; /* default 60000: failing or stalled this long = unhealthy */
    uint32_t max_crashes;      /* default 2; 0: no crash journal (crash_journal.h) */
    ik_retry_spec retry;
    ik_batch_spec batch;
    ik_stage_spec source;
    ik_stage_spec *processors; /* may be empty */
    size_t nprocessors;
    ik_stage_spec *sinks; /* at least one */
    size_t nsinks;
    ik_stage_spec *dead_letter; /* NULL when absent */
} ik_pipeline_spec;

typedef struct ik_config {
    config_t cfg;       /* keeps every config_setting_t alive */
    ik_config_text src; /* names of the files read, which settings point at */
    char *path;         /* as given */
    char *dir;          /* directory of path, for relative names */
    char **plugin_path; /* expanded, made absolute against dir */
    size_t nplugin_path;
    char *env_file;               /* resolved path, NULL if none */
    ik_log_level log_level;       /* default info */
    int log_json;                 /* default 0 (text) */
    int admin_enabled;            /* default 1 */
    char *admin_listen;           /* default "127.0.0.1:2020" */
    uint64_t shutdown_timeout_ms; /* default 30000 */
    ik_pipeline_spec *pipelines;  /* at least one */
    size_t npipelines;
    /* admin.request_timeout; 0: the admin server's default (10 s) */
    uint64_t admin_request_timeout_ms;
    /* The state store: state.dir made absolute (default "state" beside the
     * config file), state.durability (0 normal, 1 full). */
    char *state_dir;
    int state_durability;
} ik_config;

/*
 * Reads and checks `path` with its @includes (config_text.h: regular files,
 * at most 1 MiB and 10,000 settings): syntax, unknown keys, types, ranges,
 * required settings, duplicate names, and loads env_file first so that
 * substitution sees it. Errors name the file and line: "etc/demo.conf:14: pipeline
 * 'emails': batch.max_items must be >= 1 (got 0)". On success *out is owned by
 * the caller (ik_config_free).
 */
int ik_config_load(const char *path, ik_config **out, ik_err *err);
void ik_config_free(ik_config *cfg);

/*
 * Like ik_config_load, but parses `text` instead of reading a file. `name`
 * (NULL: "<string>") stands for the file name in messages and settings, and
 * its directory anchors env_file, plugin_path and @include. For tests and the
 * config fuzzer.
 */
int ik_config_load_string(const char *text, const char *name, ik_config **out, ik_err *err);

/*
 * Reads a string-valued setting with ${VAR} expansion; *out malloc'd.
 * IK_E_CONFIG with file:line when the setting is not a string.
 */
int ik_config_expand_string(const config_setting_t *s, char **out, ik_err *err);

/* "file:line" of a setting, for messages; static per-thread buffer. */
const char *ik_config_where(const config_setting_t *s);

#endif
