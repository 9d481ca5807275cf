/*
 * rules.c: the `rules` processor (intake-rules.so), extraction without a
 * model. Each record becomes an email record first when it is not one yet
 * (seed JSON mapped, token diet applied, as email_normalize does), then the
 * rules extractor (extract.c) adds "extraction": the fields of
 * etc/extraction.schema.json, each grounded in the email, with a confidence
 * per field. Metadata "extracted_by" = "rules".
 *
 * Threading: process() runs on many workers at once; the state is read-only
 * after create().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <intake/plugin.h>

#include "email/email.h"
#include "rules/extract.h"

typedef struct rules_state {
    const ik_host *host;
    ik_instance *self;
    char *field;
    em_diet_opts dopts;
    ik_metric *m_fields, *m_records;
} rules_state;

/* The options, bound by the engine (plugin.h). */
typedef struct rules_config {
    const char *field;
    int64_t max_chars; /* >= 0: its min */
} rules_config;

static const ik_option rules_options[] = {
    {"field", IK_OPT_STRING, "extraction", 0, "Payload key that receives the extraction.",
     IK_OPT_AT(rules_config, field)},
    {"max_chars", IK_OPT_INT, "6000", 0,
     "Token diet cap, used when a record was not normalised by email_normalize first.",
     IK_OPT_AT(rules_config, max_chars), .min = "0"},
    {0},
};

static void rules_destroy(void *state)
{
    rules_state *st = state;
    if (!st)
        return;
    free(st->field);
    free(st);
}

static int rules_create(const ik_host *host, ik_instance *self, const void *config, void **state)
{
    const rules_config *cfg = config;
    rules_state *st = calloc(1, sizeof *st);
    if (!st)
        return IK_E_NOMEM;
    st->host = host;
    st->self = self;
    const char *field = cfg->field;
    int64_t max = cfg->max_chars; /* >= 0: its min */
    if (!field || !field[0]) {
        host->log(self, IK_LOG_ERROR, "option 'field' must be a non-empty key");
        free(st);
        return IK_E_CONFIG;
    }
    st->field = strdup(field);
    if (!st->field) {
        free(st);
        return IK_E_NOMEM;
    }
    st->dopts.quotes = 1;
    st->dopts.disclaimers = 1;
    st->dopts.max_chars = (size_t)max;
    em_init();
    st->m_records = host->counter(self, "extractions_total", "Records given an extraction");
    st->m_fields = host->counter(self, "fields_found_total", "Non-null fields extracted");
    *state = st;
    return 0;
}

static int rules_process(void *state, void *worker_state, ik_record *const *recs, size_t n,
                         ik_result *results)
{
    (void)worker_state;
    rules_state *st = state;
    const ik_host *host = st->host;
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        int rc = rx_extract_record(host, recs[i], &st->dopts, st->field, &results[i], &found);
        if (rc == IK_E_NOMEM)
            return IK_E_NOMEM;
        if (rc != 0)
            continue;
        if (st->m_records)
            host->metric_add(st->m_records, 1);
        if (st->m_fields)
            host->metric_add(st->m_fields, found);
    }
    return 0;
}

static const ik_plugin rules_plugin = {
    IK_PLUGIN_HEAD,
    .name = "rules",
    .version = "1.0.0",
    .description = "Deterministic candidate extraction (etc/extraction.schema.json) from "
                   "recruiting email, every value grounded in the text, with per-field "
                   "confidence. No network.",
    .kind = IK_KIND_PROCESSOR,
    .options = rules_options,
    .config_size = sizeof(rules_config),
    .create = rules_create,
    .destroy = rules_destroy,
    .process = rules_process,
};

const ik_plugin *rules_descriptor(void);
const ik_plugin *rules_descriptor(void)
{
    return &rules_plugin;
}

IK_PLUGIN_EXPORT(rules_plugin)
