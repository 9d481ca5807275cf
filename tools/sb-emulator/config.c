/* config.c: reads and validates the emulator's libconfig file. */
#include "config.h"

#include <ctype.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int sb_config_valid_queue_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= SB_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(isalnum(c) || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    if (name[0] == '.' || name[0] == '-' || name[n - 1] == '.' || name[n - 1] == '-')
        return 0;
    return 1;
}

const sb_key_cfg *sb_config_find_key(const sb_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nkeys; i++)
        if (strcmp(cfg->keys[i].name, name) == 0)
            return &cfg->keys[i];
    return NULL;
}

static int get_int64(config_setting_t *s, const char *name, int64_t def, int64_t min, int64_t max,
                     int64_t *out, const char *path, char *err, size_t errlen)
{
    config_setting_t *m = config_setting_get_member(s, name);
    if (!m) {
        *out = def;
        return 0;
    }
    int t = config_setting_type(m);
    long long v;
    if (t == CONFIG_TYPE_INT)
        v = config_setting_get_int(m);
    else if (t == CONFIG_TYPE_INT64)
        v = config_setting_get_int64(m);
    else {
        snprintf(err, errlen, "%s:%d: '%s' must be an integer", path, config_setting_source_line(m),
                 name);
        return -1;
    }
    if (v < min || v > max) {
        snprintf(err, errlen, "%s:%d: '%s' = %lld is out of range [%lld, %lld]", path,
                 config_setting_source_line(m), name, v, (long long)min, (long long)max);
        return -1;
    }
    *out = v;
    return 0;
}

static int get_bool(config_setting_t *s, const char *name, int def, int *out, const char *path,
                    char *err, size_t errlen)
{
    config_setting_t *m = config_setting_get_member(s, name);
    if (!m) {
        *out = def;
        return 0;
    }
    if (config_setting_type(m) != CONFIG_TYPE_BOOL) {
        snprintf(err, errlen, "%s:%d: '%s' must be true or false", path,
                 config_setting_source_line(m), name);
        return -1;
    }
    *out = config_setting_get_bool(m);
    return 0;
}

static int get_str(config_setting_t *s, const char *name, char *out, size_t outlen,
                   const char *path, char *err, size_t errlen)
{
    config_setting_t *m = config_setting_get_member(s, name);
    if (!m)
        return 0;
    const char *v = config_setting_get_string(m);
    if (!v) {
        snprintf(err, errlen, "%s:%d: '%s' must be a string", path, config_setting_source_line(m),
                 name);
        return -1;
    }
    if (strlen(v) >= outlen) {
        snprintf(err, errlen, "%s:%d: '%s' is too long (max %zu)", path,
                 config_setting_source_line(m), name, outlen - 1);
        return -1;
    }
    strcpy(out, v);
    return 1;
}

static int check_members(config_setting_t *s, const char *const *allowed, const char *path,
                         char *err, size_t errlen)
{
    int n = config_setting_length(s);
    for (int i = 0; i < n; i++) {
        config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
        const char *nm = config_setting_name(m);
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (nm && strcmp(nm, *a) == 0)
                ok = 1;
        if (!ok) {
            snprintf(err, errlen, "%s:%d: unknown setting '%s'", path,
                     config_setting_source_line(m), nm ? nm : "?");
            return -1;
        }
    }
    return 0;
}

/* The root settings: addresses, ports, TLS files, limits, persistence. */
static int load_settings(sb_config *cfg, config_setting_t *root, const char *path, char *err,
                         size_t errlen)
{
    strcpy(cfg->address, "127.0.0.1");
    if (get_str(root, "listen", cfg->address, sizeof cfg->address, path, err, errlen) < 0)
        return -1;
    int64_t v;
    if (get_int64(root, "port", 5672, 0, 65535, &v, path, err, errlen) < 0)
        return -1;
    cfg->port = (int)v;
    if (get_int64(root, "amqps_port", -1, -1, 65535, &v, path, err, errlen) < 0)
        return -1;
    cfg->amqps_port = (int)v;
    if (get_int64(root, "http_port", -1, -1, 65535, &v, path, err, errlen) < 0)
        return -1;
    cfg->http_port = (int)v;
    if (get_int64(root, "https_port", -1, -1, 65535, &v, path, err, errlen) < 0)
        return -1;
    cfg->https_port = (int)v;
    if (get_int64(root, "log_level", 2, 0, 3, &v, path, err, errlen) < 0)
        return -1;
    cfg->log_level = (int)v;
    if (get_int64(root, "max_message_size", 262144, 1024, 104857600, &v, path, err, errlen) < 0)
        return -1;
    cfg->max_message_size = v;
    if (get_str(root, "persist_file", cfg->persist_file, sizeof cfg->persist_file, path, err,
                errlen) < 0)
        return -1;
    if (get_int64(root, "persist_interval_ms", 5000, 0, 86400000, &cfg->persist_interval_ms, path,
                  err, errlen) < 0)
        return -1;
    if (get_int64(root, "handshake_timeout_ms", 20000, 100, 3600000, &cfg->handshake_timeout_ms,
                  path, err, errlen) < 0)
        return -1;
    if (get_str(root, "tls_cert", cfg->tls_cert, sizeof cfg->tls_cert, path, err, errlen) < 0 ||
        get_str(root, "tls_key", cfg->tls_key, sizeof cfg->tls_key, path, err, errlen) < 0)
        return -1;
    if ((cfg->amqps_port >= 0 || cfg->https_port >= 0) && (!cfg->tls_cert[0] || !cfg->tls_key[0])) {
        snprintf(err, errlen, "%s: amqps_port/https_port need tls_cert and tls_key", path);
        return -1;
    }
    return 0;
}

/* The SAS keys: a non-empty list of { name; key; } with unique names. */
static int load_keys(sb_config *cfg, config_setting_t *root, const char *path, char *err,
                     size_t errlen)
{
    static const char *const key_keys[] = {"name", "key", NULL};
    config_setting_t *keys = config_setting_get_member(root, "keys");
    if (!keys || !config_setting_is_list(keys) || config_setting_length(keys) == 0) {
        snprintf(err, errlen, "%s: 'keys' must be a non-empty list of { name = ...; key = ...; }",
                 path);
        return -1;
    }
    cfg->nkeys = (size_t)config_setting_length(keys);
    cfg->keys = calloc(cfg->nkeys, sizeof *cfg->keys);
    if (!cfg->keys) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (size_t i = 0; i < cfg->nkeys; i++) {
        config_setting_t *k = config_setting_get_elem(keys, (unsigned)i);
        int line = config_setting_source_line(k);
        if (!config_setting_is_group(k)) {
            snprintf(err, errlen, "%s:%d: each key must be a group", path, line);
            return -1;
        }
        if (check_members(k, key_keys, path, err, errlen) < 0)
            return -1;
        const char *secret = NULL;
        if (get_str(k, "name", cfg->keys[i].name, sizeof cfg->keys[i].name, path, err, errlen) <=
                0 ||
            !config_setting_lookup_string(k, "key", &secret) || !secret[0]) {
            if (!err[0])
                snprintf(err, errlen, "%s:%d: a key needs a non-empty 'name' and 'key'", path,
                         line);
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->keys[j].name, cfg->keys[i].name) == 0) {
                snprintf(err, errlen, "%s:%d: duplicate key name '%s'", path, line,
                         cfg->keys[i].name);
                return -1;
            }
        cfg->keys[i].key = strdup(secret);
        if (!cfg->keys[i].key) {
            snprintf(err, errlen, "%s: out of memory", path);
            return -1;
        }
    }
    return 0;
}

/* Queue i of the list, group q: its name (unique, case-insensitively) and
 * its settings with their bounds. */
static int load_queue(sb_config *cfg, size_t i, config_setting_t *q, const char *path, char *err,
                      size_t errlen)
{
    static const char *const queue_keys[] = {"name",
                                             "lock_duration_ms",
                                             "max_delivery_count",
                                             "default_ttl_ms",
                                             "dead_lettering_on_expiration",
                                             "duplicate_detection",
                                             "duplicate_window_ms",
                                             "requires_session",
                                             "max_size_mb",
                                             NULL};
    sb_queue_cfg *qc = &cfg->queues[i];
    int line = config_setting_source_line(q);
    if (!config_setting_is_group(q)) {
        snprintf(err, errlen, "%s:%d: each queue must be a group", path, line);
        return -1;
    }
    if (check_members(q, queue_keys, path, err, errlen) < 0)
        return -1;
    int r = get_str(q, "name", qc->name, sizeof qc->name, path, err, errlen);
    if (r < 0)
        return -1;
    if (r == 0 || !sb_config_valid_queue_name(qc->name)) {
        snprintf(err, errlen, "%s:%d: queue 'name' missing or invalid (1-259 of A-Z a-z 0-9 . _ -)",
                 path, line);
        return -1;
    }
    for (size_t j = 0; j < i; j++)
        if (strcasecmp(cfg->queues[j].name, qc->name) == 0) {
            snprintf(err, errlen, "%s:%d: duplicate queue '%s'", path, line, qc->name);
            return -1;
        }
    int64_t mdc, mb;
    if (get_int64(q, "lock_duration_ms", 60000, 100, 300000, &qc->lock_duration_ms, path, err,
                  errlen) < 0 ||
        get_int64(q, "max_delivery_count", 10, 1, 2147483647, &mdc, path, err, errlen) < 0 ||
        get_int64(q, "default_ttl_ms", 0, 0, INT64_MAX / 4, &qc->default_ttl_ms, path, err,
                  errlen) < 0 ||
        get_bool(q, "dead_lettering_on_expiration", 0, &qc->dead_lettering_on_expiration, path, err,
                 errlen) < 0 ||
        get_bool(q, "duplicate_detection", 0, &qc->duplicate_detection, path, err, errlen) < 0 ||
        get_int64(q, "duplicate_window_ms", 600000, 1000, 7LL * 24 * 3600 * 1000,
                  &qc->duplicate_window_ms, path, err, errlen) < 0 ||
        get_bool(q, "requires_session", 0, &qc->requires_session, path, err, errlen) < 0 ||
        get_int64(q, "max_size_mb", 1024, 1, 81920, &mb, path, err, errlen) < 0)
        return -1;
    qc->max_delivery_count = (uint32_t)mdc;
    qc->max_size_bytes = mb * 1024 * 1024;
    return 0;
}

/* The queues: a list of groups, each loaded by load_queue. */
static int load_queues(sb_config *cfg, config_setting_t *root, const char *path, char *err,
                       size_t errlen)
{
    config_setting_t *queues = config_setting_get_member(root, "queues");
    if (!queues || !config_setting_is_list(queues)) {
        snprintf(err, errlen, "%s: 'queues' must be a list of groups", path);
        return -1;
    }
    cfg->nqueues = (size_t)config_setting_length(queues);
    cfg->queues = calloc(cfg->nqueues ? cfg->nqueues : 1, sizeof *cfg->queues);
    if (!cfg->queues) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (size_t i = 0; i < cfg->nqueues; i++)
        if (load_queue(cfg, i, config_setting_get_elem(queues, (unsigned)i), path, err, errlen) < 0)
            return -1;
    return 0;
}

static int load_root(sb_config *cfg, config_t *lc, const char *path, char *err, size_t errlen)
{
    static const char *const root_keys[] = {"listen",
                                            "port",
                                            "amqps_port",
                                            "tls_cert",
                                            "tls_key",
                                            "http_port",
                                            "https_port",
                                            "keys",
                                            "queues",
                                            "log_level",
                                            "max_message_size",
                                            "persist_file",
                                            "persist_interval_ms",
                                            "handshake_timeout_ms",
                                            NULL};
    config_setting_t *root = config_root_setting(lc);
    if (check_members(root, root_keys, path, err, errlen) < 0 ||
        load_settings(cfg, root, path, err, errlen) < 0 ||
        load_keys(cfg, root, path, err, errlen) < 0)
        return -1;
    return load_queues(cfg, root, path, err, errlen);
}

int sb_config_load(sb_config *cfg, const char *path, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    if (errlen)
        err[0] = 0;
    config_t lc;
    config_init(&lc);
    if (!config_read_file(&lc, path)) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            snprintf(err, errlen, "%s: cannot read the file", path);
        else
            snprintf(err, errlen, "%s:%d: %s", path, config_error_line(&lc),
                     config_error_text(&lc));
        config_destroy(&lc);
        return -1;
    }
    int rc = load_root(cfg, &lc, path, err, errlen);
    config_destroy(&lc);
    if (rc < 0)
        sb_config_free(cfg);
    return rc;
}

void sb_config_free(sb_config *cfg)
{
    for (size_t i = 0; i < cfg->nkeys; i++) {
        if (cfg->keys[i].key) {
            size_t n = strlen(cfg->keys[i].key);
            memset(cfg->keys[i].key, 0, n);
            free(cfg->keys[i].key);
        }
    }
    free(cfg->keys);
    free(cfg->queues);
    cfg->keys = NULL;
    cfg->queues = NULL;
    cfg->nkeys = cfg->nqueues = 0;
}
