/*
 * normalize.c: the `email_normalize` processor (intake-email_normalize.so).
 * Puts every record into the email record of etc/email.schema.json: a seed
 * JSON email is mapped onto it (a record that is one already is kept), the
 * source's metadata goes under "source", and the token diet (on by default)
 * writes the dieted body to "text" with the characters it removed under
 * "diet", leaving "body" untouched for sinks. A payload that cannot be an
 * email fails permanently with the reason (field and problem).
 *
 * Threading: process() runs on many workers at once; the state is read-only
 * after create().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <intake/plugin.h>

#include "email/email.h"

typedef struct nz_state {
    const ik_host *host;
    ik_instance *self;
    int diet;
    em_diet_opts dopts;
    em_opts eopts;
    ik_metric *m_removed, *m_before, *m_after, *m_failed;
} nz_state;

/* The options, bound by the engine (plugin.h). */
typedef struct nz_config {
    int diet;
    int strip_quotes;
    int strip_disclaimers;
    int64_t max_chars; /* >= 0: its min */
    int attachment_content;
} nz_config;

static const ik_option nz_options[] = {
    {"diet", IK_OPT_BOOL, "true", 0,
     "Apply the token diet: the LLM reads \"text\", a shorter body; \"body\" stays untouched.",
     IK_OPT_AT(nz_config, diet)},
    {"strip_quotes", IK_OPT_BOOL, "true", 0,
     "Diet: drop quoted reply history (\"On ... wrote:\", \">\" lines, Outlook From/Sent "
     "blocks).",
     IK_OPT_AT(nz_config, strip_quotes)},
    {"strip_disclaimers", IK_OPT_BOOL, "true", 0, "Diet: drop legal disclaimer paragraphs.",
     IK_OPT_AT(nz_config, strip_disclaimers)},
    {"max_chars", IK_OPT_INT, "6000", 0, "Diet: cap \"text\" at this many characters (0: no cap).",
     IK_OPT_AT(nz_config, max_chars), .min = "0"},
    {"attachment_content", IK_OPT_BOOL, "false", 0,
     "Keep the seed JSON's attachment content (content_base64); otherwise only filename, "
     "content_type, size and sha256.",
     IK_OPT_AT(nz_config, attachment_content)},
    {0},
};

static void nz_destroy(void *state)
{
    free(state);
}

static int nz_create(const ik_host *host, ik_instance *self, const void *config, void **state)
{
    const nz_config *cfg = config;
    nz_state *st = calloc(1, sizeof *st);
    if (!st)
        return IK_E_NOMEM;
    st->host = host;
    st->self = self;
    st->diet = cfg->diet;
    st->dopts.quotes = cfg->strip_quotes;
    st->dopts.disclaimers = cfg->strip_disclaimers;
    st->dopts.max_chars = (size_t)cfg->max_chars; /* >= 0: its min */
    st->eopts.keep_content = cfg->attachment_content;
    em_init();
    st->m_before = host->counter(self, "chars_before_total", "Body characters before the diet");
    st->m_after = host->counter(self, "chars_after_total", "Text characters after the diet");
    st->m_removed = host->counter(self, "chars_removed_total", "Characters the diet removed");
    st->m_failed = host->counter(self, "invalid_total", "Payloads that were not emails");
    *state = st;
    return 0;
}

static void add_metric(const ik_host *host, ik_metric *m, json_object *diet, const char *key)
{
    json_object *v;
    if (m && diet && json_object_object_get_ex(diet, key, &v))
        host->metric_add(m, (double)json_object_get_int64(v));
}

static int nz_process(void *state, void *worker_state, ik_record *const *recs, size_t n,
                      ik_result *results)
{
    (void)worker_state;
    nz_state *st = state;
    const ik_host *host = st->host;
    for (size_t i = 0; i < n; i++) {
        char err[EM_ERROR_MAX] = "";
        json_object *out = NULL;
        int rc = em_normalize(host->record_payload(recs[i]), &st->eopts,
                              st->diet ? &st->dopts : NULL, &out, err, sizeof err);
        if (rc == IK_E_NOMEM)
            return IK_E_NOMEM; /* transient: the whole call is retried */
        if (rc != 0) {
            ik_result_setf(&results[i], IK_FAIL, "not an email: %s", err);
            if (st->m_failed)
                host->metric_add(st->m_failed, 1);
            continue;
        }
        em_set_source(out, host, recs[i]);
        json_object *diet;
        if (json_object_object_get_ex(out, "diet", &diet)) {
            add_metric(host, st->m_before, diet, "chars_before");
            add_metric(host, st->m_after, diet, "chars_after");
            add_metric(host, st->m_removed, diet, "chars_removed");
        }
        host->record_set_payload(recs[i], out);
    }
    return 0;
}

static const ik_plugin nz_plugin = {
    IK_PLUGIN_HEAD,
    .name = "email_normalize",
    .version = "1.0.0",
    .description = "Maps seed JSON emails onto the email record (etc/email.schema.json) and "
                   "applies the token diet, keeping the untouched body.",
    .kind = IK_KIND_PROCESSOR,
    .options = nz_options,
    .config_size = sizeof(nz_config),
    .create = nz_create,
    .destroy = nz_destroy,
    .process = nz_process,
};

const ik_plugin *nz_descriptor(void);
const ik_plugin *nz_descriptor(void)
{
    return &nz_plugin;
}

IK_PLUGIN_EXPORT(nz_plugin)
