/*
 * catalog.c: reads one model's entry from the model catalog (etc/models.conf,
 * libconfig) and prices a usage with it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "common/file.h"

#include "gpt_internal.h"

void gpt_model_free(gpt_model *m)
{
    if (!m)
        return;
    free(m->id);
    free(m->tokenizer);
    for (size_t i = 0; i < m->nefforts; i++)
        free(m->efforts[i]);
    free(m->efforts);
    memset(m, 0, sizeof *m);
}

int gpt_model_allows_effort(const gpt_model *m, const char *effort)
{
    for (size_t i = 0; i < m->nefforts; i++)
        if (strcmp(m->efforts[i], effort) == 0)
            return 1;
    return 0;
}

double gpt_model_cost(const gpt_model *m, int batch, long input, long cached, long output)
{
    double pin = batch ? m->batch_in : m->in, pc = batch ? m->batch_cached_in : m->cached_in,
           po = batch ? m->batch_out : m->out;
    long fresh = input - cached > 0 ? input - cached : 0;
    return ((double)fresh * pin + (double)cached * pc + (double)output * po) / 1e6;
}

/* A positive integer field of entry e; error naming file:line when absent. */
static int get_long(const config_setting_t *e, const char *name, long *out, const char *path,
                    char *err, size_t errlen)
{
    long long v;
    if (!config_setting_lookup_int64(e, name, &v)) {
        int iv;
        if (!config_setting_lookup_int(e, name, &iv)) {
            snprintf(err, errlen, "%s:%d: model entry lacks integer `%s`", path,
                     config_setting_source_line(e), name);
            return IK_E_CONFIG;
        }
        v = iv;
    }
    if (v <= 0) {
        snprintf(err, errlen, "%s:%d: `%s` must be positive", path, config_setting_source_line(e),
                 name);
        return IK_E_CONFIG;
    }
    *out = (long)v;
    return 0;
}

static int get_price(const config_setting_t *p, const char *name, double *out, const char *path,
                     char *err, size_t errlen)
{
    double d;
    int iv;
    if (config_setting_lookup_float(p, name, &d))
        *out = d;
    else if (config_setting_lookup_int(p, name, &iv))
        *out = iv;
    else {
        snprintf(err, errlen, "%s:%d: price lacks `%s` (USD per 1M tokens)", path,
                 config_setting_source_line(p), name);
        return IK_E_CONFIG;
    }
    if (*out < 0) {
        snprintf(err, errlen, "%s:%d: price `%s` is negative", path, config_setting_source_line(p),
                 name);
        return IK_E_CONFIG;
    }
    return 0;
}

/* Parses the catalog file at path into cfg (config_init'ed by the caller).
 * Read through the shared reader, not config_read_file(): a catalog path
 * naming a FIFO must be refused, not waited on for good. */
static int catalog_parse(config_t *cfg, const char *path, char *err, size_t errlen)
{
    char *text = NULL, why[512];
    if (ik_read_file(path, &text, NULL, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: cannot read the model catalog (%s)", path, why);
        return IK_E_CONFIG;
    }
    int parsed = config_read_string(cfg, text);
    free(text);
    if (!parsed) {
        snprintf(err, errlen, "%s:%d: %s", path, config_error_line(cfg), config_error_text(cfg));
        return IK_E_CONFIG;
    }
    return 0;
}

/* The entry of `model` (or of default_model when model is empty) in cfg;
 * *id gets the name looked up (owned by cfg). NULL with err set. */
static config_setting_t *catalog_entry(config_t *cfg, const char *path, const char *model,
                                       const char **id, char *err, size_t errlen)
{
    const char *want = model;
    if ((!want || !want[0]) && !config_lookup_string(cfg, "default_model", &want)) {
        snprintf(err, errlen, "%s: no model given and no `default_model`", path);
        return NULL;
    }
    config_setting_t *list = config_lookup(cfg, "models");
    if (!list || !config_setting_is_list(list)) {
        snprintf(err, errlen, "%s: `models` must be a list of entries", path);
        return NULL;
    }
    for (int i = 0; i < config_setting_length(list); i++) {
        config_setting_t *c = config_setting_get_elem(list, (unsigned)i);
        const char *cid;
        if (config_setting_lookup_string(c, "id", &cid) && strcmp(cid, want) == 0) {
            *id = want;
            return c;
        }
    }
    snprintf(err, errlen, "%s: model `%s` is not in the catalog; add an entry for it", path, want);
    return NULL;
}

/* The token limits and the six prices of entry e. */
static int read_limits_and_prices(config_setting_t *e, gpt_model *out, const char *path, char *err,
                                  size_t errlen)
{
    int rc = get_long(e, "context_window", &out->context_window, path, err, errlen);
    if (!rc)
        rc = get_long(e, "max_input_tokens", &out->max_input, path, err, errlen);
    if (!rc)
        rc = get_long(e, "max_output_tokens", &out->max_output, path, err, errlen);
    if (!rc && out->max_input > out->context_window) {
        snprintf(err, errlen, "%s:%d: max_input_tokens exceeds context_window", path,
                 config_setting_source_line(e));
        rc = IK_E_CONFIG;
    }
    config_setting_t *p = config_setting_lookup(e, "price");
    if (!rc && !p) {
        snprintf(err, errlen, "%s:%d: model `%s` has no price group", path,
                 config_setting_source_line(e), out->id);
        rc = IK_E_CONFIG;
    }
    if (!rc)
        rc = get_price(p, "input", &out->in, path, err, errlen);
    if (!rc)
        rc = get_price(p, "cached_input", &out->cached_in, path, err, errlen);
    if (!rc)
        rc = get_price(p, "output", &out->out, path, err, errlen);
    if (!rc)
        rc = get_price(p, "batch_input", &out->batch_in, path, err, errlen);
    if (!rc)
        rc = get_price(p, "batch_cached_input", &out->batch_cached_in, path, err, errlen);
    if (!rc)
        rc = get_price(p, "batch_output", &out->batch_out, path, err, errlen);
    return rc;
}

/* The optional list of reasoning efforts of entry e. */
static int read_efforts(config_setting_t *e, gpt_model *out, const char *path, char *err,
                        size_t errlen)
{
    config_setting_t *ef = config_setting_lookup(e, "reasoning_efforts");
    if (!ef)
        return 0;
    int n = config_setting_length(ef);
    out->efforts = calloc((size_t)n + 1, sizeof *out->efforts);
    if (!out->efforts)
        return IK_E_NOMEM;
    for (int i = 0; i < n; i++) {
        const char *s = config_setting_get_string_elem(ef, i);
        if (!s) {
            snprintf(err, errlen, "%s:%d: reasoning_efforts must hold strings", path,
                     config_setting_source_line(ef));
            return IK_E_CONFIG;
        }
        out->efforts[i] = strdup(s);
        if (!out->efforts[i])
            return IK_E_NOMEM;
        out->nefforts = (size_t)i + 1;
    }
    return 0;
}

int gpt_catalog_load(const char *path, const char *model, gpt_model *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    config_t cfg;
    config_init(&cfg);
    const char *id = NULL;
    config_setting_t *e = NULL;
    int rc = catalog_parse(&cfg, path, err, errlen);
    if (!rc && !(e = catalog_entry(&cfg, path, model, &id, err, errlen)))
        rc = IK_E_CONFIG;
    if (!rc) {
        const char *tk = "o200k_base";
        config_setting_lookup_string(e, "tokenizer", &tk);
        out->id = strdup(id);
        out->tokenizer = strdup(tk);
        if (!out->id || !out->tokenizer)
            rc = IK_E_NOMEM;
    }
    if (!rc)
        rc = read_limits_and_prices(e, out, path, err, errlen);
    if (!rc)
        rc = read_efforts(e, out, path, err, errlen);
    if (rc == IK_E_NOMEM)
        snprintf(err, errlen, "%s: out of memory", path);
    if (rc)
        gpt_model_free(out);
    config_destroy(&cfg);
    return rc;
}
