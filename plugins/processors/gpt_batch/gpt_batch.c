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
 * This file is the plugin: options, create/destroy, cost and process();
 * request.c sends and maps one packed request, processor.h holds the state.
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
#include "processor.h"
#include "rules/extract.h"

static const ik_option gb_options[] = {
    {"catalog", IK_OPT_STRING, NULL, IK_OPT_REQUIRED,
     "Model catalog (libconfig), e.g. etc/models.conf: limits, prices, reasoning efforts."},
    {"model", IK_OPT_STRING, "", 0, "Catalog entry to use; empty: the catalog's default_model."},
    {"schema_file", IK_OPT_STRING, NULL, IK_OPT_REQUIRED,
     "Extraction JSON schema (etc/extraction.schema.json); the strict output schema is "
     "generated from it."},
    {"instructions_file", IK_OPT_STRING, NULL, IK_OPT_REQUIRED,
     "Instruction text sent as the stable prompt prefix (etc/prompts/extraction.txt)."},
    {"api", IK_OPT_STRING, "responses", 0, "\"responses\" (store:false) or \"chat\"."},
    {"provider", IK_OPT_STRING, "openai", 0,
     "\"openai\" (Authorization: Bearer; any OpenAI-compatible base_url) or \"azure\"."},
    {"base_url", IK_OPT_STRING, "https://api.openai.com/v1", 0,
     "OpenAI: the API base (…/v1). Azure: the resource endpoint https://NAME.openai.azure.com."},
    {"api_key", IK_OPT_STRING, NULL, IK_OPT_SECRET,
     "API key; when unset it is read from the variable named by api_key_env."},
    {"api_key_env", IK_OPT_STRING, "OPENAI_API_KEY", 0,
     "Environment variable holding the API key when api_key is unset."},
    {"azure_deployment", IK_OPT_STRING, "", 0, "Azure deployment name (sent as the model)."},
    {"azure_api_version", IK_OPT_STRING, "", 0,
     "Azure dated api-version (e.g. 2025-04-01-preview); empty: the /openai/v1/ URL form."},
    {"azure_auth", IK_OPT_STRING, "api-key", 0,
     "Azure: \"api-key\" header or \"bearer\" (Entra ID token as the key)."},
    {"reasoning_effort", IK_OPT_STRING, "low", 0,
     "Reasoning effort; must be one the catalog lists for the model."},
    {"verbosity", IK_OPT_STRING, "low", 0, "low, medium or high."},
    {"max_output_tokens", IK_OPT_INT, "0", 0,
     "Cap on output tokens (reasoning included) per request; 0: the model's maximum."},
    {"max_input_tokens", IK_OPT_INT, "0", 0, "Cap on input tokens per request; 0: the model's."},
    {"input_margin", IK_OPT_DOUBLE, "0.03", 0,
     "Share of the input limit kept free for tokens the client cannot count exactly."},
    {"output_tokens_per_email", IK_OPT_INT, "200", 0,
     "Starting estimate of visible output tokens per email; learned from usage."},
    {"reasoning_reserve", IK_OPT_INT, "2048", 0,
     "Output tokens reserved for reasoning per request (at least); learned from usage."},
    {"learn_estimates", IK_OPT_BOOL, "true", 0, "Learn the two estimates above from usage."},
    {"rpm", IK_OPT_INT, "0", 0,
     "Requests per minute to stay under; 0: learned from x-ratelimit-limit-requests."},
    {"tpm", IK_OPT_INT, "0", 0,
     "Tokens per minute to stay under; 0: learned from x-ratelimit-limit-tokens."},
    {"target_utilization", IK_OPT_DOUBLE, "0.97", 0, "Share of the per-minute limits to use."},
    {"concurrency_min", IK_OPT_INT, "1", 0, "Lower bound of adaptive requests in flight."},
    {"concurrency_max", IK_OPT_INT, "64", 0,
     "Upper bound of adaptive requests in flight (also bounded by the stage's concurrency)."},
    {"latency_target", IK_OPT_DURATION, "0", 0,
     "A request slower than this halves the adaptive concurrency like a 429 (0: off)."},
    {"latency_factor", IK_OPT_DOUBLE, "3", 0,
     "A request whose time per output token is this many times the fastest recent one halves "
     "the adaptive concurrency like a 429: the server is queueing (0: off)."},
    {"grounded_fields", IK_OPT_STRING, "email,phone,linkedin_url,candidate_name", 0,
     "Extracted fields checked against the email's own text: found only in another email of "
     "the request, the answer is sent again alone; found nowhere, it is kept and named in the "
     "gpt_ungrounded metadata. Empty: no check."},
    {"mode", IK_OPT_STRING, "sync", 0,
     "\"sync\": requests answered at once; \"batch\": the OpenAI Batch API (half price, "
     "results within 24 h; give the stage a large batch.max_items and max_wait)."},
    {"emails_per_request", IK_OPT_INT, "0", 0,
     "Most emails packed into one request; 0: as many as fit (sync: the stage's "
     "batch.max_items decides), 50 in batch mode."},
    {"batch_poll_interval", IK_OPT_DURATION, "30s", 0, "Batch mode: how often to ask for status."},
    {"batch_max_wait", IK_OPT_DURATION, "25h", 0,
     "Batch mode: cancel a batch not finished after this long and retry its emails later."},
    {"batch_max_requests", IK_OPT_INT, "50000", 0,
     "Batch mode: packed requests per batch file (the API takes at most 50,000)."},
    {"batch_keep_files", IK_OPT_BOOL, "false", 0,
     "Batch mode: keep the uploaded input and the result files on the server (default: "
     "deleted once read)."},
    {"timeout", IK_OPT_DURATION, "600s", 0, "Whole-request timeout."},
    {"connect_timeout", IK_OPT_DURATION, "10s", 0, "Connection timeout."},
    {"rate_limit_retries", IK_OPT_INT, "8", 0,
     "429 rate_limit_exceeded waits within one call before handing back IK_RETRY."},
    {"quota_recheck", IK_OPT_DURATION, "60s", 0,
     "After insufficient_quota/401: release records for this long, then try one request."},
    {"prompt_cache_key", IK_OPT_STRING, "intake-extraction-v1", 0,
     "prompt_cache_key sent with every request (empty: none)."},
    {"service_tier", IK_OPT_STRING, "", 0, "service_tier to send (e.g. flex); empty: none."},
    {"tokenizer_file", IK_OPT_STRING, "", 0,
     "o200k_base.tiktoken rank file; empty: $INTAKE_O200K_FILE; none: estimates (bytes/3), "
     "logged once."},
    {"tokenizer_sha256", IK_OPT_STRING, IK_TOK_O200K_SHA256, 0, "Expected SHA-256 of the file."},
    {"result_field", IK_OPT_STRING, "extraction", 0, "Payload field that receives the extraction."},
    {"model_confidence", IK_OPT_BOOL, "false", 0,
     "Ask the model for its per-field confidence (output tokens). false: `confidence` is filled "
     "from grounding: 0.9 found verbatim in the email, 0.6 found after normalisation, 0.2 not "
     "found, 0 null."},
    {"compact_keys", IK_OPT_BOOL, "false", 0,
     "Short property names on the wire (each description names the field), mapped back before "
     "delivery: fewer tokens, same record. Off until measured with your model."},
    {"fallback", IK_OPT_STRING, "rules", 0,
     "Without an API key: \"rules\" extracts with the offline rules extractor (said once in "
     "the log, metadata extracted_by=rules); \"none\" refuses to start."},
    {0},
};

/* Ranges the engine checks when it checks options, so create() need not. */
static const ik_option_limit gb_limits[] = {
    {"max_output_tokens", "0", NULL},
    {"max_input_tokens", "0", NULL},
    {"rpm", "0", NULL},
    {"tpm", "0", NULL},
    {"target_utilization", "0.01", "1"},
    {"concurrency_min", "1", NULL},
    {"concurrency_max", "1", NULL},
    {"latency_factor", "0", NULL},
    {"rate_limit_retries", "0", NULL},
    {"input_margin", "0", "0.5"},
    {"output_tokens_per_email", "1", NULL},
    {"reasoning_reserve", "0", NULL},
    {"emails_per_request", "0", NULL},
    {"batch_poll_interval", "1ms", NULL},
    {"batch_max_requests", "1", "50000"},
    {0},
};

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

/* The comma-separated grounded_fields; each must be a property of the
 * extraction schema (only string values are checked). Needs item_schema. */
static int parse_grounded(gb_state *st, const char *list, char *err, size_t errlen)
{
    for (const char *p = list; p && *p;) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t n = strcspn(p, ", ");
        if (n == 0)
            break;
        char **g = realloc(st->grounded, (st->ngrounded + 1) * sizeof *g);
        if (!g)
            return IK_E_NOMEM;
        st->grounded = g;
        if (!(g[st->ngrounded] = strndup(p, n)))
            return IK_E_NOMEM;
        st->ngrounded++;
        json_object *props, *f;
        if (!json_object_object_get_ex(st->item_schema, "properties", &props) ||
            !json_object_object_get_ex(props, g[st->ngrounded - 1], &f)) {
            snprintf(err, errlen,
                     "option grounded_fields: \"%s\" is not a property of the extraction "
                     "schema",
                     g[st->ngrounded - 1]);
            return IK_E_CONFIG;
        }
        p += n;
    }
    return 0;
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
 * OpenAI, Azure /openai/v1/ or Azure dated (api-version) form. */
static int build_url_and_auth(gb_state *st, const char *key, char *err, size_t errlen)
{
    const ik_host *h = st->host;
    const char *base = h->opt_string(st->self, "base_url");
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    const char *ep = st->chat ? "chat/completions" : "responses";
    char url[2048], api[2048], bep[64];
    st->api_qs = "";
    if (st->azure) {
        const char *dep = h->opt_string(st->self, "azure_deployment");
        const char *ver = h->opt_string(st->self, "azure_api_version");
        if (!dep || !dep[0]) {
            snprintf(err, errlen, "provider \"azure\" needs azure_deployment");
            return IK_E_CONFIG;
        }
        free(st->model_name);
        st->model_name = strdup(dep);
        /* Azure's batch files name the endpoint without /v1 */
        snprintf(bep, sizeof bep, "/%s", ep);
        if (!ver || !ver[0]) {
            snprintf(url, sizeof url, "%.*s/openai/v1/%s", (int)bl, base, ep);
            snprintf(api, sizeof api, "%.*s/openai/v1", (int)bl, base);
        } else {
            if (st->chat)
                snprintf(url, sizeof url, "%.*s/openai/deployments/%s/%s?api-version=%s", (int)bl,
                         base, dep, ep, ver);
            else
                snprintf(url, sizeof url, "%.*s/openai/%s?api-version=%s", (int)bl, base, ep, ver);
            snprintf(api, sizeof api, "%.*s/openai", (int)bl, base);
            st->api_qs = ver; /* appended as ?api-version= by batch_api.c */
        }
    } else {
        snprintf(url, sizeof url, "%.*s/%s", (int)bl, base, ep);
        snprintf(api, sizeof api, "%.*s", (int)bl, base);
        snprintf(bep, sizeof bep, "/v1/%s", ep);
    }
    st->url = strdup(url);
    st->api_base = strdup(api);
    st->batch_endpoint = strdup(bep);
    size_t al = strlen(key) + 32;
    char *auth = malloc(al);
    if (!st->url || !st->api_base || !st->batch_endpoint || !auth || !st->model_name) {
        free(auth);
        return IK_E_NOMEM;
    }
    if (st->azure && !st->azure_bearer)
        snprintf(auth, al, "api-key: %s", key);
    else
        snprintf(auth, al, "Authorization: Bearer %s", key);
    int rc = gpt_http_new(&st->http, auth, (long)h->opt_duration_ms(st->self, "timeout"),
                          (long)h->opt_duration_ms(st->self, "connect_timeout"));
    memset(auth, 0, al);
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

static int gb_create(const ik_host *host, ik_instance *self, void **state)
{
    gb_state *st = calloc(1, sizeof *st);
    if (!st)
        return IK_E_NOMEM;
    st->host = host;
    st->self = self;
    if (pthread_mutex_init(&st->mu, NULL) != 0) {
        free(st);
        return IK_E_NOMEM;
    }
    if (gpt_limiter_init(&st->lim, (double)host->opt_int(self, "rpm"),
                         (double)host->opt_int(self, "tpm"),
                         (double)host->opt_int(self, "concurrency_min"),
                         (double)host->opt_int(self, "concurrency_max"),
                         host->opt_double(self, "target_utilization")) != 0) {
        pthread_mutex_destroy(&st->mu);
        free(st);
        return IK_E_NOMEM;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char err[1024];
    const char *api = host->opt_string(self, "api");
    if (strcmp(api, "responses") == 0)
        st->chat = 0;
    else if (strcmp(api, "chat") == 0)
        st->chat = 1;
    else
        return gb_fail(st, IK_E_CONFIG, "option api: expected \"responses\" or \"chat\"");
    const char *prov = host->opt_string(self, "provider");
    if (strcmp(prov, "azure") == 0)
        st->azure = 1;
    else if (strcmp(prov, "openai") != 0)
        return gb_fail(st, IK_E_CONFIG, "option provider: expected \"openai\" or \"azure\"");
    const char *aauth = host->opt_string(self, "azure_auth");
    if (strcmp(aauth, "bearer") == 0)
        st->azure_bearer = 1;
    else if (strcmp(aauth, "api-key") != 0)
        return gb_fail(st, IK_E_CONFIG, "option azure_auth: expected \"api-key\" or \"bearer\"");

    int rc = gpt_catalog_load(host->opt_string(self, "catalog"), host->opt_string(self, "model"),
                              &st->model, err, sizeof err);
    if (rc)
        return gb_fail(st, rc, err);
    st->model_name = strdup(st->model.id);
    st->effort = host->opt_string(self, "reasoning_effort");
    if (!gpt_model_allows_effort(&st->model, st->effort)) {
        snprintf(err, sizeof err,
                 "option reasoning_effort: \"%s\" is not accepted by model %s (see the catalog's "
                 "reasoning_efforts)",
                 st->effort, st->model.id);
        return gb_fail(st, IK_E_CONFIG, err);
    }
    st->verbosity = host->opt_string(self, "verbosity");
    if (strcmp(st->verbosity, "low") && strcmp(st->verbosity, "medium") &&
        strcmp(st->verbosity, "high"))
        return gb_fail(st, IK_E_CONFIG, "option verbosity: expected low, medium or high");
    st->cache_key = host->opt_string(self, "prompt_cache_key");
    st->service_tier = host->opt_string(self, "service_tier");
    st->result_field = host->opt_string(self, "result_field");
    rc = gpt_check_request_options(st->cache_key, (long)host->opt_int(self, "max_output_tokens"),
                                   st->chat, err, sizeof err);
    if (rc)
        return gb_fail(st, rc, err);
    st->max_output_cap = (long)host->opt_int(self, "max_output_tokens");
    if (st->max_output_cap <= 0 || st->max_output_cap > st->model.max_output)
        st->max_output_cap = st->model.max_output;
    st->max_input = (long)host->opt_int(self, "max_input_tokens");
    if (st->max_input <= 0 || st->max_input > st->model.max_input)
        st->max_input = st->model.max_input;
    if (st->max_input + st->max_output_cap > st->model.context_window)
        st->max_output_cap = st->model.context_window - st->max_input;
    st->input_margin = host->opt_double(self, "input_margin");
    st->out_per_email = (double)host->opt_int(self, "output_tokens_per_email");
    st->reasoning_min = (double)host->opt_int(self, "reasoning_reserve");
    st->reasoning = st->reasoning_min;
    st->learn = host->opt_bool(self, "learn_estimates");
    st->rate_limit_retries = (long)host->opt_int(self, "rate_limit_retries");
    st->latency_target_ms = host->opt_duration_ms(self, "latency_target");
    st->latency_factor = host->opt_double(self, "latency_factor");
    const char *mode = host->opt_string(self, "mode");
    if (strcmp(mode, "batch") == 0)
        st->batch_mode = 1;
    else if (strcmp(mode, "sync") != 0)
        return gb_fail(st, IK_E_CONFIG, "option mode: expected \"sync\" or \"batch\"");
    st->batch_poll_ms = host->opt_duration_ms(self, "batch_poll_interval");
    st->batch_max_wait_ms = host->opt_duration_ms(self, "batch_max_wait");
    st->batch_max_requests = (long)host->opt_int(self, "batch_max_requests");
    st->batch_keep_files = host->opt_bool(self, "batch_keep_files");
    st->per_request = (long)host->opt_int(self, "emails_per_request");
    st->quota_recheck_ms = host->opt_duration_ms(self, "quota_recheck");

    /* key */
    const char *fallback = host->opt_string(self, "fallback");
    if (!fallback || (strcmp(fallback, "rules") != 0 && strcmp(fallback, "none") != 0))
        return gb_fail(st, IK_E_CONFIG, "option fallback: expected \"rules\" or \"none\"");
    const char *key = host->opt_string(self, "api_key");
    if (!key || !key[0]) {
        const char *env = host->opt_string(self, "api_key_env");
        key = env && env[0] ? getenv(env) : NULL;
        if ((!key || !key[0]) && strcmp(fallback, "rules") == 0) {
            /* No key is not an error on a laptop: extract offline, and say so. */
            host->log(self, IK_LOG_WARN,
                      "no API key (api_key, or the variable %s): extracting with the offline "
                      "rules extractor instead of %s",
                      env && env[0] ? env : "(api_key_env is empty)", st->model.id);
            st->rules_fallback = 1;
            st->dopts.quotes = 1;
            st->dopts.disclaimers = 1;
            st->dopts.max_chars = 6000;
            em_init();
        } else if (!key || !key[0]) {
            snprintf(err, sizeof err, "no API key: set api_key or the variable %s",
                     env && env[0] ? env : "(api_key_env is empty)");
            return gb_fail(st, IK_E_CONFIG, err);
        }
    }
    if (!st->rules_fallback) {
        rc = build_url_and_auth(st, key, err, sizeof err);
        if (rc)
            return gb_fail(st, rc, rc == IK_E_NOMEM ? "out of memory" : err);
    }

    /* tokenizer */
    const char *tf = host->opt_string(self, "tokenizer_file");
    if (!tf || !tf[0])
        tf = getenv("INTAKE_O200K_FILE");
    if (strcmp(st->model.tokenizer, "o200k_base") != 0) {
        host->log(self, IK_LOG_WARN,
                  "model %s uses tokenizer %s, which this build lacks: token counts are "
                  "estimates (bytes/3)",
                  st->model.id, st->model.tokenizer);
    } else if (tf && tf[0]) {
        rc = ik_tok_load_file(tf, host->opt_string(self, "tokenizer_sha256"), &st->tok, err,
                              sizeof err);
        if (rc)
            return gb_fail(st, rc, err);
    } else {
        host->log(self, IK_LOG_WARN,
                  "no o200k_base rank file (tokenizer_file, $INTAKE_O200K_FILE): token counts "
                  "are estimates (bytes/3, over-counting English by ~40%%); run tools/deps to "
                  "fetch it");
    }

    /* instructions and schema */
    if (ik_read_file(host->opt_string(self, "instructions_file"), &st->instructions, NULL, err,
                     sizeof err) != 0)
        return gb_fail(st, IK_E_CONFIG, err);
    const char *sf = host->opt_string(self, "schema_file");
    char *schema_text = NULL;
    if (ik_read_file(sf, &schema_text, NULL, err, sizeof err) != 0)
        return gb_fail(st, IK_E_CONFIG, err);
    enum json_tokener_error jerr = json_tokener_success;
    st->item_schema = json_tokener_parse_verbose(schema_text, &jerr);
    free(schema_text);
    if (!st->item_schema) {
        snprintf(err, sizeof err, "%s: cannot parse the extraction schema: %s", sf,
                 jerr == json_tokener_success ? "not a JSON object"
                                              : json_tokener_error_desc(jerr));
        return gb_fail(st, IK_E_CONFIG, err);
    }
    json_object *strict = gpt_strict_schema(st->item_schema, err, sizeof err);
    if (!strict)
        return gb_fail(st, IK_E_CONFIG, err);
    st->model_confidence = host->opt_bool(self, "model_confidence");
    st->strict_schema =
        gpt_wire_schema(strict, st->item_schema, st->model_confidence,
                        host->opt_bool(self, "compact_keys"), &st->wire_back, err, sizeof err);
    json_object_put(strict);
    if (!st->strict_schema)
        return gb_fail(st, IK_E_CONFIG, err);
    if (st->model_confidence) {
        char *ins = malloc(strlen(st->instructions) + strlen(GPT_CONFIDENCE_INSTRUCTIONS) + 1);
        if (!ins)
            return gb_fail(st, IK_E_NOMEM, "out of memory");
        strcpy(ins, st->instructions);
        strcat(ins, GPT_CONFIDENCE_INSTRUCTIONS);
        free(st->instructions);
        st->instructions = ins;
    }
    rc = parse_grounded(st, host->opt_string(self, "grounded_fields"), err, sizeof err);
    if (rc)
        return gb_fail(st, rc, rc == IK_E_NOMEM ? "out of memory" : err);
    st->schema_json =
        strdup(json_object_to_json_string_ext(st->strict_schema, JSON_C_TO_STRING_PLAIN));
    if (!st->schema_json)
        return gb_fail(st, IK_E_NOMEM, "out of memory");
    st->fixed_tokens = (long)(count_tokens(st, st->instructions, strlen(st->instructions)) +
                              count_tokens(st, st->schema_json, strlen(st->schema_json)) +
                              count_tokens(st, GPT_USER_HEADER, strlen(GPT_USER_HEADER)) + 16);
    for (int i = 0; i < M_COUNT; i++) {
        if (i == M_CONCURRENCY)
            st->m[i] = host->gauge(self, metric_names[i][0], metric_names[i][1]);
        else if (i == M_LATENCY) {
            static const double b[] = {0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600};
            st->m[i] = host->histogram(self, metric_names[i][0], metric_names[i][1], b,
                                       sizeof b / sizeof *b);
        } else
            st->m[i] = host->counter(self, metric_names[i][0], metric_names[i][1]);
    }
    if (st->m[M_CONCURRENCY])
        host->metric_set(st->m[M_CONCURRENCY], gpt_limiter_concurrency(&st->lim));
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

static int gb_process(void *state, ik_record *const *recs, size_t n, ik_result *results)
{
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
    .limits = gb_limits,
    .create = gb_create,
    .destroy = gb_destroy,
    .health = gb_health,
    .cost = gb_cost,
    .process = gb_process,
};

IK_PLUGIN_EXPORT(gb_plugin)
