/*
 * fuzz_config.c: fuzz target for the pipeline config loader. Each input is
 * parsed as a whole config file by ik_config_load_string (libconfig syntax,
 * ${VAR} expansion, key/type/range checks) and everything is freed.
 * Every stage is then bound against a fixed option table of every type
 * (options.c). No option is secret: secrets would pile up in the redactor.
 * Inputs with @include are skipped: they would make libconfig open arbitrary
 * files (devices included), which tests the file system, not the parser.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A name in a directory that does not exist, so relative env_file and
 * plugin_path names find nothing and nothing is left behind. */
#define FUZZ_NAME "/nonexistent-intake-fuzz/fuzz.conf"

static const ik_option fuzz_opts[] = {
    {"path", IK_OPT_STRING, "${IKF_DIR:-in}", 0, "a string"},
    {"count", IK_OPT_INT, "10", 0, "an int"},
    {"follow", IK_OPT_BOOL, "off", 0, "a bool"},
    {"ratio", IK_OPT_DOUBLE, "0.5", 0, "a double"},
    {"timeout", IK_OPT_DURATION, "30s", 0, "a duration"},
    {"limit", IK_OPT_SIZE, "1M", 0, "a size"},
    {"need", IK_OPT_STRING, NULL, IK_OPT_REQUIRED, "a required string"},
    {NULL, 0, NULL, 0, NULL},
};

/* A range for each numeric type. */
static const ik_option_limit fuzz_limits[] = {
    {"count", "-5", "1000"}, {"ratio", "0", NULL}, {"timeout", NULL, "1h"},
    {"limit", "1K", "1G"},   {NULL, NULL, NULL},
};

/* Binds the options of one stage and reads them all back. */
static void bind_stage(const ik_stage_spec *st)
{
    ik_optvals *vals = NULL;
    ik_err err;
    ik_err_clear(&err);
    if (ik_options_bind(fuzz_opts, fuzz_limits, st->plugin, st, &vals, &err) != 0) {
        if (vals || err.msg[0] == '\0')
            abort();
        return;
    }
    const char *s;
    int64_t i;
    int b;
    double d;
    uint64_t u;
    if (ik_optvals_string(vals, "path", &s) != 0 || !s ||
        ik_optvals_string(vals, "need", &s) != 0 || !s || ik_optvals_int(vals, "count", &i) != 0 ||
        ik_optvals_bool(vals, "follow", &b) != 0 || ik_optvals_double(vals, "ratio", &d) != 0 ||
        ik_optvals_duration_ms(vals, "timeout", &u) != 0 || ik_optvals_size(vals, "limit", &u) != 0)
        abort();
    ik_optvals_free(vals);
}

static int has_include(const char *s)
{
    for (const char *p = strchr(s, '@'); p; p = strchr(p + 1, '@')) {
        const char *q = p + 1;
        while (*q == ' ' || *q == '\t')
            q++;
        if (strncasecmp(q, "include", 7) == 0)
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (!has_include(text)) {
        ik_config *cfg = NULL;
        ik_err err;
        ik_err_clear(&err);
        if (ik_config_load_string(text, FUZZ_NAME, &cfg, &err) == 0) {
            /* walk what the loader built, as the runtime would */
            for (size_t i = 0; i < cfg->npipelines; i++) {
                const ik_pipeline_spec *p = &cfg->pipelines[i];
                if (!p->name || !p->source.name || p->nsinks == 0 || !p->sinks[0].name)
                    abort();
                (void)ik_config_where(p->source.setting);
                bind_stage(&p->source);
                for (size_t k = 0; k < p->nprocessors; k++)
                    bind_stage(&p->processors[k]);
                for (size_t k = 0; k < p->nsinks; k++)
                    bind_stage(&p->sinks[k]);
                if (p->dead_letter)
                    bind_stage(p->dead_letter);
            }
            ik_config_free(cfg);
        } else if (err.code == 0 || err.msg[0] == '\0') {
            abort(); /* every failure must explain itself */
        }
    }
    free(text);
    return 0;
}
