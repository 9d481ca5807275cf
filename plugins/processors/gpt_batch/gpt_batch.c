/*
 * gpt_batch.c: the `gpt_batch` processor (intake-gpt_batch.so). Packs a
 * batch of emails into one structured-output request to an OpenAI-compatible
 * API (Responses by default, Chat Completions as an option; OpenAI or Azure
 * URL and auth forms), maps the `results` array back by email_id, and
 * handles each failure on purpose:
 *
 *   429 rate_limit_exceeded      wait as the API asks (retry-after, else the
 *                                message's "try again in" or the reset of
 *                                the limit it names), then resend
 *   400 other than context_length_exceeded (e.g. invalid_json_schema)
 *                                fail the emails with the API's message
 *   429 insufficient_quota, 401, 403, 404
 *                                stop sending, report unhealthy, release
 *   context length / request too large / content filter / refusal
 *                                split in half down to one email, which then
 *                                fails with the reason
 *   output truncated / unparsable output
 *                                split in half down to one email, which is
 *                                then IK_RETRY with the reason (a truncated
 *                                one goes alone next time, with twice the
 *                                output cap it was cut at, as far as the
 *                                option and the catalog allow)
 *   timeouts (and a gateway's 504), synchronous mode
 *                                split in half down to one email, which is
 *                                then IK_RETRY; after a lone email timed out
 *                                nothing more is sent in that call
 *   5xx, connection errors       IK_RETRY (the engine backs off)
 *   missing result               resent in a smaller request, finally failed
 *                                "model omitted this email"
 *   unknown / duplicate result   dropped and counted
 *   invalid result               resent alone, then failed with the reason
 *   crossed result (a grounded field found only in another email of the
 *   request)                     resent alone; a value found nowhere is kept
 *                                and named in the gpt_ungrounded metadata
 *
 * With mode = "batch" the packed requests of a process() call go to the
 * OpenAI Batch API instead (batch_api.c): half the price, results within the
 * completion window.
 *
 * This file is the plugin: create/destroy, cost and process(); gpt_conf.c
 * holds the options and check(), request.c sends and maps one packed
 * request, processor.h holds the state.
 *
 * Threading: the engine calls process() from up to `concurrency` workers at
 * once; requests share a pool of curl handles (http.c) so connections are
 * reused. Shared state (learned estimates, the quota block) is guarded by
 * st->mu, the rate limiter has its own lock, metrics are thread-safe in the
 * host.
 */
#include <curl/curl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <intake/plugin.h>

#include "common/file.h"
#include "gpt_conf.h"
#include "processor.h"
#include "rules/extract.h"

/* ---- helpers ---- */

static size_t count_tokens(gb_state *st, const char *s, size_t n)
{
    return st->tok ? ik_tok_count(st->tok, s, n) : ik_tok_estimate(s, n);
}

int gpt_stopping(void *arg)
{
    gb_state *st = arg;
    return st->host->stopping(st->self);
}

void gpt_metric_add(gb_state *st, int which, double v)
{
    if (st->m[which])
        st->host->metric_add(st->m[which], v);
}

/* ---- create / destroy ---- */

static void gb_destroy(void *state)
{
    gb_state *st = state;
    if (!st)
        return;
    free(st->url);
    free(st->api_base);
    free(st->batch_endpoint);
    gpt_http_free(st->http);
    free(st->model_name);
    for (size_t i = 0; i < st->ngrounded; i++)
        free(st->grounded[i]);
    free(st->grounded);
    gpt_model_free(&st->model);
    ik_tok_free(st->tok);
    free(st->instructions);
    json_object_put(st->item_schema);
    json_object_put(st->strict_schema);
    json_object_put(st->wire_back);
    free(st->schema_json);
    gpt_limiter_destroy(&st->lim);
    pthread_mutex_destroy(&st->mu);
    free(st);
    curl_global_cleanup();
}

static int gb_fail(gb_state *st, int rc, const char *msg)
{
    st->host->log(st->self, IK_LOG_ERROR, "%s", msg);
    gb_destroy(st);
    return rc;
}

/* The model URL, the files/batches base and the auth header, in the
 * OpenAI, Azure /openai/v1/ or Azure dated (api-version) form. The
 * endpoint options were checked by gpt_conf_endpoint. */
static int build_url_and_auth(gb_state *st, const gb_conf *c, const char *key)
{
    const char *base = c->base_url;
    int bl = (int)strlen(base); /* at most 1,024 bytes: gpt_conf_endpoint */
    while (bl && base[bl - 1] == '/')
        bl--;
    const char *ep = st->chat ? "chat/completions" : "responses";
    const char *dep = c->azure_deployment, *ver = c->azure_api_version;
    int n1, n2, n3; /* asprintf results: -1 when out of memory */
    st->api_qs = "";
    if (!st->azure) {
        n1 = asprintf(&st->url, "%.*s/%s", bl, base, ep);
        n2 = asprintf(&st->api_base, "%.*s", bl, base);
        n3 = asprintf(&st->batch_endpoint, "/v1/%s", ep);
    } else if (!ver || !ver[0]) {
        n1 = asprintf(&st->url, "%.*s/openai/v1/%s", bl, base, ep);
        n2 = asprintf(&st->api_base, "%.*s/openai/v1", bl, base);
        n3 = asprintf(&st->batch_endpoint, "/%s", ep); /* Azure's batch files: no /v1 */
    } else {
        n1 = st->chat ? asprintf(&st->url, "%.*s/openai/deployments/%s/%s?api-version=%s", bl, base,
                                 dep, ep, ver)
                      : asprintf(&st->url, "%.*s/openai/%s?api-version=%s", bl, base, ep, ver);
        n2 = asprintf(&st->api_base, "%.*s/openai", bl, base);
        n3 = asprintf(&st->batch_endpoint, "/%s", ep);
        st->api_qs = ver; /* appended as ?api-version= by batch_api.c */
    }
    if (n1 < 0)
        st->url = NULL; /* asprintf leaves the pointer undefined on failure */
    if (n2 < 0)
        st->api_base = NULL;
    if (n3 < 0)
        st->batch_endpoint = NULL;
    if (st->azure) {
        free(st->model_name);
        st->model_name = strdup(dep);
    }
    char *auth = NULL;
    int na = st->azure && !st->azure_bearer ? asprintf(&auth, "api-key: %s", key)
                                            : asprintf(&auth, "Authorization: Bearer %s", key);
    if (na < 0 || !st->url || !st->api_base || !st->batch_endpoint || !st->model_name) {
        if (na >= 0) {
            memset(auth, 0, (size_t)na);
            free(auth);
        }
        return IK_E_NOMEM;
    }
    int rc = gpt_http_new(&st->http, auth, (long)c->timeout_ms, (long)c->connect_timeout_ms);
    memset(auth, 0, (size_t)na); /* the key does not outlive its use in freed memory */
    free(auth);
    return rc;
}

static const char *metric_names[M_COUNT][2] = {
    {"requests_total", "Model requests sent"},
    {"emails_extracted_total", "Emails that got a valid extraction"},
    {"input_tokens_total", "Input tokens reported by the API"},
    {"cached_input_tokens_total", "Cached input tokens reported by the API"},
    {"output_tokens_total", "Output tokens (reasoning included) reported by the API"},
    {"reasoning_tokens_total", "Reasoning tokens reported by the API"},
    {"cost_usd_total", "Cost in USD from the catalog prices"},
    {"rate_limited_total", "429 rate_limit_exceeded answers"},
    {"splits_total", "Requests split in half (overflow, truncation, filter, refusal)"},
    {"omitted_total", "Emails the model left out of a response"},
    {"unknown_results_total", "Results for ids not in the request (dropped)"},
    {"duplicate_results_total", "Repeated results for one id (dropped)"},
    {"invalid_results_total", "Results that failed schema validation"},
    {"api_errors_total", "Failed requests (HTTP error, timeout, connection)"},
    {"concurrency", "Adaptive limit of requests in flight"},
    {"request_latency_seconds", "Model request latency"},
    {"batches_total", "Batch API batches created (mode = batch)"},
    {"crossed_results_total",
     "Answers carrying another email's values (grounded_fields): sent again alone"},
    {"ungrounded_results_total",
     "Answers kept with a grounded field not found in the email (metadata gpt_ungrounded)"},
};

/* Step 1 of create: the state with the options it keeps as they are, its
 * lock and rate limiter. NULL on OOM (nothing to free then). */
static gb_state *gb_state_new(const ik_host *host, ik_instance *self, const gb_conf *c)
{
    gb_state *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->host = host;
    st->self = self;
    if (pthread_mutex_init(&st->mu, NULL) != 0) {
        free(st);
        return NULL;
    }
    if (gpt_limiter_init(&st->lim, (double)c->rpm, (double)c->tpm, (double)c->concurrency_min,
                         (double)c->concurrency_max, c->target_utilization) != 0) {
        pthread_mutex_destroy(&st->mu);
        free(st);
        return NULL;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    st->chat = c->api == GB_API_CHAT;
    st->azure = c->provider == GB_PROVIDER_AZURE;
    st->azure_bearer = c->azure_auth == GB_AZURE_AUTH_BEARER;
    st->batch_mode = c->mode == GB_MODE_BATCH;
    st->effort = c->reasoning_effort;
    st->verbosity = gb_verbosities[c->verbosity];
    st->cache_key = c->prompt_cache_key;
    st->service_tier = c->service_tier;
    st->result_field = c->result_field;
    st->input_margin = c->input_margin;
    st->out_per_email = (double)c->output_tokens_per_email;
    st->reasoning_min = (double)c->reasoning_reserve;
    st->reasoning = st->reasoning_min;
    st->learn = c->learn_estimates;
    st->rate_limit_retries = (long)c->rate_limit_retries;
    st->latency_target_ms = c->latency_target_ms;
    st->latency_factor = c->latency_factor;
    st->batch_poll_ms = c->batch_poll_ms;
    st->batch_max_wait_ms = c->batch_max_wait_ms;
    st->batch_max_requests = (long)c->batch_max_requests;
    st->batch_keep_files = c->batch_keep_files;
    st->per_request = (long)c->emails_per_request;
    st->quota_recheck_ms = c->quota_recheck_ms;
    st->model_confidence = c->model_confidence;
    return st;
}

/* Step 2: the catalog entry and the token limits of a request. */
static int gb_setup_model(gb_state *st, const gb_conf *c, char *err, size_t errlen)
{
    int rc = gpt_conf_model(c, &st->model, err, errlen);
    if (rc)
        return rc;
    if (!(st->model_name = strdup(st->model.id)))
        return IK_E_NOMEM;
    st->max_output_cap = (long)c->max_output_tokens;
    if (st->max_output_cap <= 0 || st->max_output_cap > st->model.max_output)
        st->max_output_cap = st->model.max_output;
    st->max_input = (long)c->max_input_tokens;
    if (st->max_input <= 0 || st->max_input > st->model.max_input)
        st->max_input = st->model.max_input;
    if (st->max_input + st->max_output_cap > st->model.context_window)
        st->max_output_cap = st->model.context_window - st->max_input;
    return 0;
}

/* Step 3: the API key and the endpoint, or without a key (fallback
 * "rules") the offline rules extractor, said once in the log. */
static int gb_setup_api(gb_state *st, const gb_conf *c, char *err, size_t errlen)
{
    const char *key;
    int rc = gpt_conf_key(c, &key, err, errlen);
    if (rc)
        return rc;
    if (!key) {
        /* No key is not an error on a laptop: extract offline, and say so. */
        const char *env = c->api_key_env;
        st->host->log(st->self, IK_LOG_WARN,
                      "no API key (api_key, or the variable %s): extracting with the offline "
                      "rules extractor instead of %s",
                      env && env[0] ? env : "(api_key_env is empty)", st->model.id);
        st->rules_fallback = 1;
        st->dopts.quotes = 1;
        st->dopts.disclaimers = 1;
        st->dopts.max_chars = 6000;
        em_init();
        return 0;
    }
    if ((rc = gpt_conf_endpoint(c, err, errlen)) != 0)
        return rc;
    return build_url_and_auth(st, c, key);
}

/* Step 4: the o200k_base ranks (tokenizer_file, else $INTAKE_O200K_FILE),
 * or estimates when the model counts otherwise or there is no file. */
static int gb_setup_tokenizer(gb_state *st, const gb_conf *c, char *err, size_t errlen)
{
    const char *tf = c->tokenizer_file;
    if (!tf || !tf[0])
        tf = getenv("INTAKE_O200K_FILE");
    if (strcmp(st->model.tokenizer, "o200k_base") != 0) {
        st->host->log(st->self, IK_LOG_WARN,
                      "model %s uses tokenizer %s, which this build lacks: token counts are "
                      "estimates (bytes/3)",
                      st->model.id, st->model.tokenizer);
        return 0;
    }
    if (tf && tf[0])
        return ik_tok_load_file(tf, c->tokenizer_sha256, &st->tok, err, errlen);
    st->host->log(st->self, IK_LOG_WARN,
                  "no o200k_base rank file (tokenizer_file, $INTAKE_O200K_FILE): token counts "
                  "are estimates (bytes/3, over-counting English by ~40%%); run tools/deps to "
                  "fetch it");
    return 0;
}

/* Step 5: the stable prompt prefix: instructions (with the confidence
 * request when the model gives it), the schemas, the grounded fields, and
 * what the prefix costs in tokens. */
static int gb_setup_prompt(gb_state *st, const gb_conf *c, char *err, size_t errlen)
{
    if (ik_read_file(c->instructions_file, &st->instructions, NULL, err, errlen) != 0)
        return IK_E_CONFIG;
    int rc = gpt_conf_schema(c, &st->item_schema, &st->strict_schema, &st->wire_back, err, errlen);
    if (rc)
        return rc;
    if (st->model_confidence) {
        char *ins = malloc(strlen(st->instructions) + strlen(GPT_CONFIDENCE_INSTRUCTIONS) + 1);
        if (!ins)
            return IK_E_NOMEM;
        strcpy(ins, st->instructions);
        strcat(ins, GPT_CONFIDENCE_INSTRUCTIONS);
        free(st->instructions);
        st->instructions = ins;
    }
    rc = gpt_conf_grounded(st->item_schema, c->grounded_fields, &st->grounded, &st->ngrounded, err,
                           errlen);
    if (rc)
        return rc;
    st->schema_json =
        strdup(json_object_to_json_string_ext(st->strict_schema, JSON_C_TO_STRING_PLAIN));
    if (!st->schema_json)
        return IK_E_NOMEM;
    st->fixed_tokens = (long)(count_tokens(st, st->instructions, strlen(st->instructions)) +
                              count_tokens(st, st->schema_json, strlen(st->schema_json)) +
                              count_tokens(st, GPT_USER_HEADER, strlen(GPT_USER_HEADER)) + 16);
    return 0;
}

/* Step 6: the metrics (handles owned by the engine). */
static void gb_setup_metrics(gb_state *st)
{
    const ik_host *host = st->host;
    for (int i = 0; i < M_COUNT; i++) {
        if (i == M_CONCURRENCY)
            st->m[i] = host->gauge(st->self, metric_names[i][0], metric_names[i][1]);
        else if (i == M_LATENCY) {
            static const double b[] = {0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600};
            st->m[i] = host->histogram(st->self, metric_names[i][0], metric_names[i][1], b,
                                       sizeof b / sizeof *b);
        } else
            st->m[i] = host->counter(st->self, metric_names[i][0], metric_names[i][1]);
    }
    if (st->m[M_CONCURRENCY])
        host->metric_set(st->m[M_CONCURRENCY], gpt_limiter_concurrency(&st->lim));
}

/* create(): the steps above in order; on failure logs why and frees all. */
static int gb_create(const ik_host *host, ik_instance *self, const void *config, void **state)
{
    const gb_conf *c = config;
    gb_state *st = gb_state_new(host, self, c);
    if (!st)
        return IK_E_NOMEM;
    char err[1024] = "";
    int rc = gb_setup_model(st, c, err, sizeof err);
    if (rc == 0)
        rc = gb_setup_api(st, c, err, sizeof err);
    if (rc == 0)
        rc = gb_setup_tokenizer(st, c, err, sizeof err);
    if (rc == 0)
        rc = gb_setup_prompt(st, c, err, sizeof err);
    if (rc)
        return gb_fail(st, rc, rc == IK_E_NOMEM ? "out of memory" : err);
    gb_setup_metrics(st);
    host->log(self, IK_LOG_INFO,
              "model %s via %s %s; max input %ld, max output %ld tokens; prompt prefix %ld "
              "tokens (%s)",
              st->model_name, st->azure ? "azure" : "openai", st->chat ? "chat" : "responses",
              st->max_input, st->max_output_cap, st->fixed_tokens,
              st->tok ? "o200k_base" : "estimated");
    *state = st;
    return 0;
}

/* ---- cost ---- */

static uint64_t gb_cost(void *state, const ik_record *rec)
{
    gb_state *st = state;
    size_t len;
    char *txt = gpt_render_email(GPT_BLOCK_ID, st->host->record_payload(rec), &len);
    if (!txt)
        return 1;
    uint64_t n = count_tokens(st, txt, len);
    free(txt);
    return n ? n : 1;
}

/* The no-API-key path: the rules extractor, record by record. */
static int rules_fallback_process(gb_state *st, ik_record *const *recs, size_t n,
                                  ik_result *results)
{
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        int rc =
            rx_extract_record(st->host, recs[i], &st->dopts, st->result_field, &results[i], &found);
        if (rc == IK_E_NOMEM)
            return IK_E_NOMEM;
    }
    return 0;
}

static int gb_process(void *state, void *worker_state, ik_record *const *recs, size_t n,
                      ik_result *results)
{
    (void)worker_state;
    gb_state *st = state;
    if (n == 0)
        return 0;
    if (st->rules_fallback)
        return rules_fallback_process(st, recs, n, results);
    job j = {.st = st,
             .recs = recs,
             .res = results,
             .text = calloc(n, sizeof(char *)),
             .tok = calloc(n, sizeof(size_t)),
             .done = calloc(n, sizeof(int))};
    size_t *idx = calloc(n, sizeof *idx);
    gpt_group *groups = calloc(n, sizeof *groups);
    if (!j.text || !j.tok || !j.done || !idx || !groups) {
        free(j.text);
        free(j.tok);
        free(j.done);
        free(idx);
        free(groups);
        return IK_E_NOMEM;
    }
    double budget = (double)st->max_input * (1 - st->input_margin) - (double)st->fixed_tokens;
    double pe, rs;
    gpt_estimates(st, &pe, &rs);
    size_t nidx = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        j.text[i] = gpt_render_email(GPT_BLOCK_ID, st->host->record_payload(recs[i]), &len);
        if (!j.text[i]) {
            gpt_set_result(&j, i, IK_RETRY, "out of memory rendering the email");
            continue;
        }
        j.tok[i] = count_tokens(st, j.text[i], len);
        if ((double)j.tok[i] > budget)
            gpt_set_result(&j, i, IK_FAIL,
                           "email is %zu tokens; the model takes at most %.0f per request after "
                           "the instructions and schema",
                           j.tok[i], budget);
        else
            idx[nidx++] = i;
    }
    /* pack into requests that fit the input limit, the output cap and
     * emails_per_request; an email whose last answer was cut off goes alone
     * (with a higher cap, gpt_max_out_group) */
    size_t per = st->per_request ? (size_t)st->per_request : (st->batch_mode ? 50 : n);
    size_t ngroups = 0;
    for (size_t s = 0; s < nidx;) {
        double in = 0;
        size_t e = s;
        while (e < nidx && e - s < per) {
            double out = pe * (double)(e - s + 1) + rs;
            int alone = gpt_truncated_at(st, recs[idx[e]]) > 0;
            if (e > s &&
                (in + (double)j.tok[idx[e]] > budget || out > (double)st->max_output_cap || alone))
                break;
            in += (double)j.tok[idx[e]];
            e++;
            if (alone)
                break;
        }
        groups[ngroups++] = (gpt_group){idx + s, e - s, 0};
        s = e;
    }
    int rc = 0;
    if (st->batch_mode) {
        rc = gpt_batch_run(&j, groups, ngroups);
    } else {
        for (size_t g = 0; g < ngroups && !st->host->stopping(st->self); g++)
            gpt_run_group(&j, groups[g].idx, groups[g].k, 0);
    }
    for (size_t i = 0; i < n; i++) {
        if (!j.done[i])
            gpt_set_result(&j, i, IK_RELEASE, "shutting down before the request was sent");
        free(j.text[i]);
    }
    for (size_t g = 0; g < j.nnext; g++)
        free(j.next[g].idx);
    free(j.next);
    free(j.text);
    free(j.tok);
    free(j.done);
    free(idx);
    free(groups);
    return rc;
}

static int gb_health(void *state, ik_health *out)
{
    gb_state *st = state;
    pthread_mutex_lock(&st->mu);
    out->ok = !st->blocked;
    if (st->blocked)
        snprintf(out->reason, sizeof out->reason, "%s", st->block_reason);
    else
        snprintf(out->reason, sizeof out->reason, "model %s, %s token counts", st->model_name,
                 st->tok ? "o200k_base" : "estimated");
    pthread_mutex_unlock(&st->mu);
    return 0;
}

static const ik_plugin gb_plugin = {
    IK_PLUGIN_HEAD,
    .name = "gpt_batch",
    .version = "1.0.0",
    .description = "Extracts candidate details from many emails per GPT request (structured "
                   "output), mapping results back by email_id; usage and cost per email.",
    .kind = IK_KIND_PROCESSOR,
    .options = gb_options,
    .config_size = sizeof(gb_conf),
    .check = gb_check,
    .create = gb_create,
    .destroy = gb_destroy,
    .health = gb_health,
    .cost = gb_cost,
    .process = gb_process,
};

IK_PLUGIN_EXPORT(gb_plugin)
