/*
 * gpt_batch.c: the `gpt_batch` processor (intake-gpt_batch.so). Packs a
 * batch of emails into one structured-output request to an OpenAI-compatible
 * API (Responses by default, Chat Completions as an option; OpenAI or Azure
 * URL and auth forms), maps the `results` array back by email_id, and
 * handles each failure on purpose:
 *
 *   429 rate_limit_exceeded      wait as the headers say, then resend
 *   429 insufficient_quota, 401, 403, 404
 *                                stop sending, report unhealthy, release
 *   context length / request too large / output truncated / content filter
 *   / refusal / unparsable output
 *                                split in half down to one email, which then
 *                                fails with the reason
 *   5xx, timeouts, connection errors
 *                                IK_RETRY (the engine backs off)
 *   missing result               resent in a smaller request, finally failed
 *                                "model omitted this email"
 *   unknown / duplicate result   dropped and counted
 *   invalid result               resent alone, then failed with the reason
 *
 * Threading: the engine calls process() from up to `concurrency` workers at
 * once; each call runs its own requests with its own curl handle. Shared
 * state (learned estimates, the quota block) is guarded by st->mu, the rate
 * limiter has its own lock, metrics are thread-safe in the host.
 */
#include <curl/curl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <intake/plugin.h>

#include "email/email.h"
#include "gpt_internal.h"
#include "rules/extract.h"
#include "tokenizer.h"

#define MAX_BODY_BYTES (64u << 20)

enum {
    M_REQUESTS,
    M_EMAILS_OK,
    M_INPUT,
    M_CACHED,
    M_OUTPUT,
    M_REASONING,
    M_COST,
    M_RATE_LIMITED,
    M_SPLITS,
    M_OMITTED,
    M_UNKNOWN,
    M_DUPLICATE,
    M_INVALID,
    M_API_ERRORS,
    M_CONCURRENCY,
    M_LATENCY,
    M_COUNT
};

typedef struct gb_state {
    const ik_host *host;
    ik_instance *self;
    /* configuration (strings engine-owned unless noted) */
    int chat;
    int azure;
    int azure_bearer;
    char *url;        /* owned */
    char *auth;       /* owned header line; secret: never logged */
    char *model_name; /* owned: what goes into "model" */
    const char *effort, *verbosity, *cache_key, *service_tier, *result_field;
    long max_output_cap, max_input;
    double input_margin;
    long rate_limit_retries;
    uint64_t timeout_ms, connect_timeout_ms, quota_recheck_ms, latency_target_ms;
    int learn;
    gpt_model model;
    ik_tok *tok;                /* NULL: estimates */
    char *instructions;         /* owned */
    json_object *item_schema;   /* owned: the extraction schema, for validation */
    char *schema_json;          /* owned: the strict schema as text */
    json_object *strict_schema; /* owned */
    long fixed_tokens;          /* instructions + schema + header + overhead */
    gpt_limiter lim;
    ik_metric *m[M_COUNT];
    /* shared, guarded by mu */
    pthread_mutex_t mu;
    double out_per_email; /* learned visible output tokens per email */
    double reasoning;     /* learned reasoning tokens per request */
    double reasoning_min; /* configured reserve */
    int blocked;
    double blocked_at;
    char block_reason[IK_REASON_MAX];
    /* no API key and fallback = "rules": extract offline instead */
    int rules_fallback;
    em_diet_opts dopts;
} gb_state;

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
    {"fallback", IK_OPT_STRING, "rules", 0,
     "Without an API key: \"rules\" extracts with the offline rules extractor (said once in "
     "the log, metadata extracted_by=rules); \"none\" refuses to start."},
    {0},
};

/* ---- helpers ---- */

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open", path);
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *g = realloc(buf, cap * 2);
            if (!g) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = g;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

static size_t count_tokens(gb_state *st, const char *s, size_t n)
{
    return st->tok ? ik_tok_count(st->tok, s, n) : ik_tok_estimate(s, n);
}

static int gb_stopping(void *arg)
{
    gb_state *st = arg;
    return st->host->stopping(st->self);
}

static void metric_add(gb_state *st, int which, double v)
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
    if (st->auth) {
        memset(st->auth, 0, strlen(st->auth));
        free(st->auth);
    }
    free(st->model_name);
    gpt_model_free(&st->model);
    ik_tok_free(st->tok);
    free(st->instructions);
    json_object_put(st->item_schema);
    json_object_put(st->strict_schema);
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

static int build_url_and_auth(gb_state *st, const char *key, char *err, size_t errlen)
{
    const ik_host *h = st->host;
    const char *base = h->opt_string(st->self, "base_url");
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    const char *ep = st->chat ? "chat/completions" : "responses";
    char url[2048];
    if (st->azure) {
        const char *dep = h->opt_string(st->self, "azure_deployment");
        const char *ver = h->opt_string(st->self, "azure_api_version");
        if (!dep || !dep[0]) {
            snprintf(err, errlen, "provider \"azure\" needs azure_deployment");
            return IK_E_CONFIG;
        }
        free(st->model_name);
        st->model_name = strdup(dep);
        if (!ver || !ver[0])
            snprintf(url, sizeof url, "%.*s/openai/v1/%s", (int)bl, base, ep);
        else if (st->chat)
            snprintf(url, sizeof url, "%.*s/openai/deployments/%s/%s?api-version=%s", (int)bl, base,
                     dep, ep, ver);
        else
            snprintf(url, sizeof url, "%.*s/openai/%s?api-version=%s", (int)bl, base, ep, ver);
    } else {
        snprintf(url, sizeof url, "%.*s/%s", (int)bl, base, ep);
    }
    st->url = strdup(url);
    size_t al = strlen(key) + 32;
    st->auth = malloc(al);
    if (!st->url || !st->auth || !st->model_name)
        return IK_E_NOMEM;
    if (st->azure && !st->azure_bearer)
        snprintf(st->auth, al, "api-key: %s", key);
    else
        snprintf(st->auth, al, "Authorization: Bearer %s", key);
    return 0;
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
    st->max_output_cap = (long)host->opt_int(self, "max_output_tokens");
    if (st->max_output_cap <= 0 || st->max_output_cap > st->model.max_output)
        st->max_output_cap = st->model.max_output;
    st->max_input = (long)host->opt_int(self, "max_input_tokens");
    if (st->max_input <= 0 || st->max_input > st->model.max_input)
        st->max_input = st->model.max_input;
    if (st->max_input + st->max_output_cap > st->model.context_window)
        st->max_output_cap = st->model.context_window - st->max_input;
    st->input_margin = host->opt_double(self, "input_margin");
    if (st->input_margin < 0 || st->input_margin >= 0.5)
        return gb_fail(st, IK_E_CONFIG, "option input_margin: expected a share in [0, 0.5)");
    st->out_per_email = (double)host->opt_int(self, "output_tokens_per_email");
    st->reasoning_min = (double)host->opt_int(self, "reasoning_reserve");
    st->reasoning = st->reasoning_min;
    if (st->out_per_email <= 0 || st->reasoning_min < 0)
        return gb_fail(st, IK_E_CONFIG,
                       "options output_tokens_per_email and reasoning_reserve must be positive");
    st->learn = host->opt_bool(self, "learn_estimates");
    st->rate_limit_retries = (long)host->opt_int(self, "rate_limit_retries");
    st->timeout_ms = host->opt_duration_ms(self, "timeout");
    st->latency_target_ms = host->opt_duration_ms(self, "latency_target");
    st->connect_timeout_ms = host->opt_duration_ms(self, "connect_timeout");
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
    st->instructions =
        read_file(host->opt_string(self, "instructions_file"), NULL, err, sizeof err);
    if (!st->instructions)
        return gb_fail(st, IK_E_CONFIG, err);
    const char *sf = host->opt_string(self, "schema_file");
    st->item_schema = json_object_from_file(sf);
    if (!st->item_schema) {
        snprintf(err, sizeof err, "%s: cannot read or parse the extraction schema: %s", sf,
                 json_util_get_last_err() ? json_util_get_last_err() : "?");
        return gb_fail(st, IK_E_CONFIG, err);
    }
    st->strict_schema = gpt_strict_schema(st->item_schema, err, sizeof err);
    if (!st->strict_schema)
        return gb_fail(st, IK_E_CONFIG, err);
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
    char *txt = gpt_render_email(st->host->record_id(rec), st->host->record_payload(rec), &len);
    if (!txt)
        return 1;
    uint64_t n = count_tokens(st, txt, len);
    free(txt);
    return n ? n : 1;
}

/* ---- HTTP ---- */

typedef struct http_resp {
    char *body;
    size_t len, cap;
    int too_big;
    gpt_hints hints;
    int bad_hints;
} http_resp;

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    http_resp *r = arg;
    size_t k = sz * n;
    if (r->len + k + 1 > MAX_BODY_BYTES) {
        r->too_big = 1;
        return 0;
    }
    if (r->len + k + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 16384;
        while (cap < r->len + k + 1)
            cap *= 2;
        char *g = realloc(r->body, cap);
        if (!g)
            return 0;
        r->body = g;
        r->cap = cap;
    }
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = 0;
    return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    http_resp *r = arg;
    if (gpt_hints_header(&r->hints, p, sz * n) != 0)
        r->bad_hints = 1;
    return sz * n;
}

/* POSTs body; fills resp and *status. Returns 0, IK_E_TIMEOUT or IK_E_IO
 * (with the curl error in err; the key is in a header curl never echoes). */
static int http_post(gb_state *st, const char *body, http_resp *resp, long *status, char *err,
                     size_t errlen)
{
    memset(resp, 0, sizeof *resp);
    gpt_hints_init(&resp->hints);
    *status = 0;
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, errlen, "cannot create a curl handle");
        return IK_E_NOMEM;
    }
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *h2 = hdr ? curl_slist_append(hdr, st->auth) : NULL;
    if (!h2) {
        curl_slist_free_all(hdr);
        curl_easy_cleanup(c);
        return IK_E_NOMEM;
    }
    hdr = h2;
    char ebuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, st->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)st->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)st->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    CURLcode cc = curl_easy_perform(c);
    int rc = 0;
    if (cc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    } else if (resp->too_big) {
        snprintf(err, errlen, "response larger than %u bytes", MAX_BODY_BYTES);
        rc = IK_E_IO;
    } else {
        snprintf(err, errlen, "%s", ebuf[0] ? ebuf : curl_easy_strerror(cc));
        rc = cc == CURLE_OPERATION_TIMEDOUT ? IK_E_TIMEOUT : IK_E_IO;
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    return rc;
}

/* ---- one process() call ---- */

typedef struct job {
    gb_state *st;
    ik_record *const *recs;
    ik_result *res;
    char **text; /* rendered blocks */
    size_t *tok; /* their token counts */
    int *done;
} job;

static void set_result(job *j, size_t i, ik_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_result(job *j, size_t i, ik_status s, const char *fmt, ...)
{
    j->res[i].status = s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->res[i].reason, sizeof j->res[i].reason, fmt, ap);
    va_end(ap);
    j->done[i] = 1;
}

static void set_all(job *j, const size_t *idx, size_t k, ik_status s, const char *reason)
{
    for (size_t x = 0; x < k; x++)
        set_result(j, idx[x], s, "%s", reason);
}

/* Request body for the emails idx[0..k); caller frees. */
static char *build_request(gb_state *st, job *j, const size_t *idx, size_t k, long max_out)
{
    size_t ul = strlen(GPT_USER_HEADER);
    for (size_t x = 0; x < k; x++)
        ul += strlen(j->text[idx[x]]);
    char *user = malloc(ul + 1);
    if (!user)
        return NULL;
    size_t o = strlen(GPT_USER_HEADER);
    memcpy(user, GPT_USER_HEADER, o);
    for (size_t x = 0; x < k; x++) {
        size_t l = strlen(j->text[idx[x]]);
        memcpy(user + o, j->text[idx[x]], l);
        o += l;
    }
    user[o] = 0;
    json_object *r = json_object_new_object();
    json_object_object_add(r, "model", json_object_new_string(st->model_name));
    json_object *fmt = json_object_new_object();
    json_object_object_add(fmt, "type", json_object_new_string("json_schema"));
    if (st->chat) {
        json_object *msgs = json_object_new_array();
        json_object *dev = json_object_new_object(), *u = json_object_new_object();
        json_object_object_add(dev, "role", json_object_new_string("developer"));
        json_object_object_add(dev, "content", json_object_new_string(st->instructions));
        json_object_object_add(u, "role", json_object_new_string("user"));
        json_object_object_add(u, "content", json_object_new_string(user));
        json_object_array_add(msgs, dev);
        json_object_array_add(msgs, u);
        json_object_object_add(r, "messages", msgs);
        json_object *js = json_object_new_object();
        json_object_object_add(js, "name", json_object_new_string("email_extractions"));
        json_object_object_add(js, "strict", json_object_new_boolean(1));
        json_object_object_add(js, "schema", json_object_get(st->strict_schema));
        json_object_object_add(fmt, "json_schema", js);
        json_object_object_add(r, "response_format", fmt);
        json_object_object_add(r, "reasoning_effort", json_object_new_string(st->effort));
        json_object_object_add(r, "verbosity", json_object_new_string(st->verbosity));
        json_object_object_add(r, "max_completion_tokens", json_object_new_int64(max_out));
    } else {
        json_object_object_add(r, "instructions", json_object_new_string(st->instructions));
        json_object *in = json_object_new_array(), *u = json_object_new_object();
        json_object_object_add(u, "role", json_object_new_string("user"));
        json_object_object_add(u, "content", json_object_new_string(user));
        json_object_array_add(in, u);
        json_object_object_add(r, "input", in);
        json_object_object_add(fmt, "name", json_object_new_string("email_extractions"));
        json_object_object_add(fmt, "strict", json_object_new_boolean(1));
        json_object_object_add(fmt, "schema", json_object_get(st->strict_schema));
        json_object *text = json_object_new_object();
        json_object_object_add(text, "format", fmt);
        json_object_object_add(text, "verbosity", json_object_new_string(st->verbosity));
        json_object_object_add(r, "text", text);
        json_object *rs = json_object_new_object();
        json_object_object_add(rs, "effort", json_object_new_string(st->effort));
        json_object_object_add(r, "reasoning", rs);
        json_object_object_add(r, "max_output_tokens", json_object_new_int64(max_out));
    }
    json_object_object_add(r, "store", json_object_new_boolean(0));
    if (st->cache_key && st->cache_key[0])
        json_object_object_add(r, "prompt_cache_key", json_object_new_string(st->cache_key));
    if (st->service_tier && st->service_tier[0])
        json_object_object_add(r, "service_tier", json_object_new_string(st->service_tier));
    char *out = strdup(json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN));
    json_object_put(r);
    free(user);
    return out;
}

static void estimates(gb_state *st, double *per_email, double *reasoning)
{
    pthread_mutex_lock(&st->mu);
    *per_email = st->out_per_email;
    *reasoning = st->reasoning > st->reasoning_min ? st->reasoning : st->reasoning_min;
    pthread_mutex_unlock(&st->mu);
}

static long max_out_for(gb_state *st, size_t k)
{
    double pe, rs;
    estimates(st, &pe, &rs);
    double want = 2 * pe * (double)k + 1.5 * rs + 256;
    return want > (double)st->max_output_cap ? st->max_output_cap : (long)want;
}

static void learn(gb_state *st, const gpt_usage *u, size_t answered)
{
    if (!st->learn || answered == 0)
        return;
    double visible = (double)(u->output - u->reasoning) / (double)answered;
    pthread_mutex_lock(&st->mu);
    if (visible > 0)
        st->out_per_email = 0.8 * st->out_per_email + 0.2 * visible;
    st->reasoning = 0.8 * st->reasoning + 0.2 * (double)u->reasoning;
    pthread_mutex_unlock(&st->mu);
}

static void set_meta_num(gb_state *st, ik_record *r, const char *k, double v, int frac)
{
    char b[64];
    if (frac)
        snprintf(b, sizeof b, "%.8f", v);
    else
        snprintf(b, sizeof b, "%.0f", v);
    st->host->record_set_meta(r, k, b);
}

/* Records usage and cost; metadata per email shares the request by tokens
 * (input) and answer length (output). */
static void account(gb_state *st, job *j, const size_t *idx, size_t k, const gpt_usage *u,
                    const size_t *ans_len, const char *reqid)
{
    double cost = gpt_model_cost(&st->model, 0, u->input, u->cached, u->output);
    metric_add(st, M_INPUT, (double)u->input);
    metric_add(st, M_CACHED, (double)u->cached);
    metric_add(st, M_OUTPUT, (double)u->output);
    metric_add(st, M_REASONING, (double)u->reasoning);
    metric_add(st, M_COST, cost);
    double tok_sum = 0, ans_sum = 0;
    for (size_t x = 0; x < k; x++) {
        tok_sum += (double)j->tok[idx[x]];
        ans_sum += ans_len ? (double)ans_len[x] : 0;
    }
    for (size_t x = 0; x < k; x++) {
        if (!ans_len || ans_len[x] == 0)
            continue; /* only emails that got their answer carry usage */
        double fin = tok_sum > 0 ? (double)j->tok[idx[x]] / tok_sum : 1.0 / (double)k;
        double fout = ans_sum > 0 ? (double)ans_len[x] / ans_sum : 1.0 / (double)k;
        /* the shared prefix is split evenly, each email's own text is its own */
        double fixed = (double)st->fixed_tokens;
        double share_in = (fixed / (double)k + (double)j->tok[idx[x]]) / (fixed + tok_sum);
        if (!(share_in > 0))
            share_in = fin;
        double in = (double)u->input * share_in, ca = (double)u->cached / (double)k;
        double out = (double)u->output * fout, re = (double)u->reasoning * fout;
        ik_record *r = j->recs[idx[x]];
        st->host->record_set_meta(r, "gpt_model", st->model_name);
        st->host->record_set_meta(r, "gpt_request_id", reqid);
        set_meta_num(st, r, "gpt_batch_emails", (double)k, 0);
        set_meta_num(st, r, "gpt_input_tokens", round(in), 0);
        set_meta_num(st, r, "gpt_cached_input_tokens", round(ca), 0);
        set_meta_num(st, r, "gpt_output_tokens", round(out), 0);
        set_meta_num(st, r, "gpt_reasoning_tokens", round(re), 0);
        set_meta_num(
            st, r, "gpt_cost_usd",
            gpt_model_cost(&st->model, 0, (long)round(in), (long)round(ca), (long)round(out)), 1);
    }
}

static void block(gb_state *st, const char *reason)
{
    pthread_mutex_lock(&st->mu);
    int was = st->blocked;
    st->blocked = 1;
    st->blocked_at = gpt_now_s();
    snprintf(st->block_reason, sizeof st->block_reason, "%s", reason);
    pthread_mutex_unlock(&st->mu);
    if (!was)
        st->host->log(st->self, IK_LOG_ERROR,
                      "%s: stopped sending; records are released back to the source", reason);
}

static void run_group(job *j, const size_t *idx, size_t k, int depth);

static void split_or_fail(job *j, const size_t *idx, size_t k, int depth, const char *reason)
{
    if (k <= 1) {
        set_all(j, idx, k, IK_FAIL, reason);
        return;
    }
    metric_add(j->st, M_SPLITS, 1);
    j->st->host->log(j->st->self, IK_LOG_DEBUG, "splitting %zu emails in half: %s", k, reason);
    size_t h = k / 2;
    run_group(j, idx, h, depth + 1);
    run_group(j, idx + h, k - h, depth + 1);
}

/* Maps a complete answer back to the emails idx[0..k). */
static void map_results(job *j, const size_t *idx, size_t k, int depth, json_object *results,
                        const gpt_usage *u, const char *reqid)
{
    gb_state *st = j->st;
    json_object **got = calloc(k, sizeof *got);
    size_t *ans_len = calloc(k, sizeof *ans_len);
    size_t *retry = calloc(k, sizeof *retry);
    if (!got || !ans_len || !retry) {
        set_all(j, idx, k, IK_RETRY, "out of memory mapping results");
        free(got);
        free(ans_len);
        free(retry);
        return;
    }
    size_t unknown = 0, dup = 0;
    for (size_t i = 0; i < json_object_array_length(results); i++) {
        json_object *it = json_object_array_get_idx(results, i), *idv;
        if (!json_object_is_type(it, json_type_object) ||
            !json_object_object_get_ex(it, "email_id", &idv) ||
            !json_object_is_type(idv, json_type_string)) {
            unknown++;
            continue;
        }
        const char *id = json_object_get_string(idv);
        size_t x = k;
        for (size_t y = 0; y < k; y++)
            if (strcmp(st->host->record_id(j->recs[idx[y]]), id) == 0) {
                x = y;
                break;
            }
        if (x == k) {
            unknown++;
        } else if (got[x]) {
            dup++;
        } else {
            got[x] = it;
            ans_len[x] = strlen(json_object_to_json_string_ext(it, JSON_C_TO_STRING_PLAIN));
        }
    }
    if (unknown) {
        metric_add(st, M_UNKNOWN, (double)unknown);
        st->host->log(st->self, IK_LOG_WARN, "dropped %zu result(s) for ids not in request %s",
                      unknown, reqid);
    }
    if (dup) {
        metric_add(st, M_DUPLICATE, (double)dup);
        st->host->log(st->self, IK_LOG_WARN, "dropped %zu duplicate result(s) in request %s", dup,
                      reqid);
    }
    size_t nmiss = 0, ninv = 0, answered = 0;
    size_t *miss = retry, *inv = retry + 0; /* filled from both ends */
    size_t inv_from = k;
    for (size_t x = 0; x < k; x++) {
        if (!got[x]) {
            miss[nmiss++] = idx[x];
            continue;
        }
        answered++;
        json_object *ext = json_object_new_object();
        json_object_object_foreach(got[x], key, val)
        {
            if (strcmp(key, "email_id") != 0)
                json_object_object_add(ext, key, json_object_get(val));
        }
        char why[300];
        if (gpt_validate(st->item_schema, ext, why, sizeof why) != 0) {
            json_object_put(ext);
            metric_add(st, M_INVALID, 1);
            ans_len[x] = 0;
            if (k == 1) {
                set_result(j, idx[x], IK_FAIL, "invalid result from the model: %s", why);
            } else {
                retry[--inv_from] = idx[x];
                ninv++;
            }
            continue;
        }
        ik_record *r = j->recs[idx[x]];
        json_object *p = st->host->record_payload(r);
        json_object *np = NULL;
        if (json_object_is_type(p, json_type_object)) {
            if (json_object_deep_copy(p, &np, NULL) != 0)
                np = NULL;
        } else {
            np = json_object_new_object();
            if (np)
                json_object_object_add(np, "email", json_object_get(p));
        }
        if (!np) {
            json_object_put(ext);
            set_result(j, idx[x], IK_RETRY, "out of memory storing the extraction");
            continue;
        }
        json_object_object_add(np, st->result_field, ext);
        st->host->record_set_payload(r, np);
        set_result(j, idx[x], IK_OK, "%s", "");
        metric_add(st, M_EMAILS_OK, 1);
    }
    inv = retry + inv_from;
    learn(st, u, answered);
    account(st, j, idx, k, u, ans_len, reqid);
    if (nmiss) {
        metric_add(st, M_OMITTED, (double)nmiss);
        if (k == 1)
            set_all(j, miss, nmiss, IK_FAIL, "model omitted this email");
        else if (nmiss < k)
            run_group(j, miss, nmiss, depth + 1); /* smaller than this request */
        else
            split_or_fail(j, miss, nmiss, depth, "model omitted this email");
    }
    for (size_t x = 0; x < ninv; x++)
        run_group(j, &inv[x], 1, depth + 1);
    free(got);
    free(ans_len);
    free(retry);
}

/* Sends the emails idx[0..k) in one request and settles each of them. */
static void run_group(job *j, const size_t *idx, size_t k, int depth)
{
    gb_state *st = j->st;
    char reason[IK_REASON_MAX];
    pthread_mutex_lock(&st->mu);
    int blocked =
        st->blocked && (gpt_now_s() - st->blocked_at) * 1000 < (double)st->quota_recheck_ms;
    if (blocked)
        snprintf(reason, sizeof reason, "not sent: %.480s", st->block_reason);
    else if (st->blocked)
        st->blocked_at = gpt_now_s(); /* this request is the probe */
    pthread_mutex_unlock(&st->mu);
    if (blocked) {
        set_all(j, idx, k, IK_RELEASE, reason);
        return;
    }
    long max_out = max_out_for(st, k);
    double in_est = (double)st->fixed_tokens;
    for (size_t x = 0; x < k; x++)
        in_est += (double)j->tok[idx[x]];
    char *body = build_request(st, j, idx, k, max_out);
    if (!body) {
        set_all(j, idx, k, IK_RETRY, "out of memory building the request");
        return;
    }
    double pe, rs;
    estimates(st, &pe, &rs);
    double charge = in_est + pe * (double)k + rs;
    for (long attempt = 0;; attempt++) {
        if (gpt_limiter_acquire(&st->lim, charge, gb_stopping, st) != 0) {
            set_all(j, idx, k, IK_RELEASE, "shutting down before the request was sent");
            break;
        }
        http_resp resp;
        long status;
        char err[600];
        double t0 = gpt_now_s();
        metric_add(st, M_REQUESTS, 1);
        int rc = http_post(st, body, &resp, &status, err, sizeof err);
        double lat = gpt_now_s() - t0;
        if (st->m[M_LATENCY])
            st->host->metric_observe(st->m[M_LATENCY], lat);
        if (resp.bad_hints)
            st->host->log(st->self, IK_LOG_WARN, "ignored a malformed header: %s", resp.hints.bad);
        gpt_limiter_update(&st->lim, &resp.hints);
        const char *rid = resp.hints.request_id[0] ? resp.hints.request_id : "-";
        /* the slot is given back before any split or smaller retry below,
         * which acquire slots of their own */
        int overloaded = rc != 0 || status == 429 || status >= 500 ||
                         (st->latency_target_ms && lat * 1000 > (double)st->latency_target_ms);
        gpt_limiter_release(&st->lim, overloaded, lat);
        if (st->m[M_CONCURRENCY])
            st->host->metric_set(st->m[M_CONCURRENCY], gpt_limiter_concurrency(&st->lim));
        int again = 0;
        gpt_usage usage = {0};
        if (rc != 0) {
            metric_add(st, M_API_ERRORS, 1);
            snprintf(reason, sizeof reason, "%s: %.400s",
                     rc == IK_E_TIMEOUT ? "request timed out" : "connection failed", err);
            set_all(j, idx, k, IK_RETRY, reason);
        } else if (status == 200) {
            gpt_reply rep;
            if (gpt_parse_reply(st->chat, resp.body ? resp.body : "", resp.len, &rep, err,
                                sizeof err) != 0) {
                metric_add(st, M_API_ERRORS, 1);
                snprintf(reason, sizeof reason, "unreadable API response (request %.80s): %.300s",
                         rid, err);
                set_all(j, idx, k, IK_RETRY, reason);
            } else {
                usage = rep.usage;
                json_object *results = NULL;
                switch (rep.finish) {
                case GPT_FIN_LENGTH:
                    account(st, j, idx, k, &usage, NULL, rid);
                    pthread_mutex_lock(&st->mu);
                    if (st->learn && k == 1 && usage.reasoning > st->reasoning)
                        st->reasoning = (double)usage.reasoning;
                    pthread_mutex_unlock(&st->mu);
                    snprintf(reason, sizeof reason,
                             "output truncated at max_output_tokens=%ld (%ld reasoning tokens)",
                             max_out, usage.reasoning);
                    split_or_fail(j, idx, k, depth, reason);
                    break;
                case GPT_FIN_FILTER:
                    account(st, j, idx, k, &usage, NULL, rid);
                    split_or_fail(j, idx, k, depth, "blocked by the content filter");
                    break;
                case GPT_FIN_REFUSAL:
                    account(st, j, idx, k, &usage, NULL, rid);
                    snprintf(reason, sizeof reason, "model refused: %s",
                             rep.refusal ? rep.refusal : "");
                    split_or_fail(j, idx, k, depth, reason);
                    break;
                case GPT_FIN_FAILED:
                    account(st, j, idx, k, &usage, NULL, rid);
                    metric_add(st, M_API_ERRORS, 1);
                    snprintf(reason, sizeof reason,
                             "model produced no answer (request %.80s): %.300s", rid, err);
                    set_all(j, idx, k, IK_RETRY, reason);
                    break;
                case GPT_FIN_OK:
                    if (gpt_parse_results(rep.text, &results, err, sizeof err) != 0) {
                        account(st, j, idx, k, &usage, NULL, rid);
                        snprintf(reason, sizeof reason, "unusable model output: %.400s", err);
                        split_or_fail(j, idx, k, depth, reason);
                    } else {
                        map_results(j, idx, k, depth, results, &usage, rid);
                        json_object_put(results);
                    }
                    break;
                }
                gpt_reply_free(&rep);
            }
        } else {
            gpt_api_error ae;
            gpt_parse_error(resp.body ? resp.body : "", resp.len, &ae);
            metric_add(st, M_API_ERRORS, 1);
            snprintf(reason, sizeof reason, "HTTP %ld%s%.60s%.60s: %.280s (request %.60s)", status,
                     ae.code[0] ? " " : "", ae.code, ae.type[0] && !ae.code[0] ? ae.type : "",
                     ae.message, rid);
            int too_large = strncmp(ae.message, "Request too large", 17) == 0;
            if (status == 429 && (strcmp(ae.code, "insufficient_quota") == 0 ||
                                  strcmp(ae.type, "insufficient_quota") == 0)) {
                block(st, "429 insufficient_quota: the account has no credit or hit its spend cap");
                set_all(j, idx, k, IK_RELEASE, reason);
            } else if (status == 401 || status == 403) {
                char b[IK_REASON_MAX];
                snprintf(b, sizeof b, "HTTP %ld: the API key was rejected (%s)", status,
                         ae.code[0] ? ae.code : "no code");
                block(st, b);
                set_all(j, idx, k, IK_RELEASE, reason);
            } else if (status == 404) {
                char b[IK_REASON_MAX];
                snprintf(b, sizeof b, "HTTP 404: model or deployment %s not found", st->model_name);
                block(st, b);
                set_all(j, idx, k, IK_RELEASE, reason);
            } else if (status == 429 && too_large) {
                split_or_fail(j, idx, k, depth, reason);
            } else if (status == 429) {
                metric_add(st, M_RATE_LIMITED, 1);
                double wait = gpt_hints_wait_ms(
                    &resp.hints, 1000.0 * (double)(1 << (attempt < 6 ? attempt : 6)));
                if (wait > 60000)
                    wait = 60000;
                gpt_limiter_pause(&st->lim, wait);
                if (attempt < st->rate_limit_retries)
                    again = 1;
                else
                    set_all(j, idx, k, IK_RETRY, reason);
            } else if (strcmp(ae.code, "context_length_exceeded") == 0 || status == 413 ||
                       (status == 400 && strstr(ae.message, "context"))) {
                split_or_fail(j, idx, k, depth, reason);
            } else if (status == 400 && strcmp(ae.code, "content_filter") == 0) {
                split_or_fail(j, idx, k, depth, "prompt blocked by the content filter");
            } else if (status == 408 || status == 409 || status >= 500) {
                set_all(j, idx, k, resp.hints.should_retry == 0 ? IK_FAIL : IK_RETRY, reason);
            } else {
                set_all(j, idx, k, resp.hints.should_retry == 1 ? IK_RETRY : IK_FAIL, reason);
            }
        }
        double real = (double)(usage.input + usage.output);
        if (real > 0)
            gpt_limiter_correct(&st->lim, real - charge);
        if (status == 200 || (status > 0 && status != 429)) {
            pthread_mutex_lock(&st->mu);
            if (st->blocked && status != 401 && status != 403 && status != 404 &&
                !(status == 429)) {
                st->blocked = 0;
                st->host->log(st->self, IK_LOG_INFO, "the API answers again: sending resumed");
            }
            pthread_mutex_unlock(&st->mu);
        }
        free(resp.body);
        if (!again)
            break;
    }
    free(body);
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
    job j = {st,
             recs,
             results,
             calloc(n, sizeof(char *)),
             calloc(n, sizeof(size_t)),
             calloc(n, sizeof(int))};
    size_t *idx = calloc(n, sizeof *idx);
    if (!j.text || !j.tok || !j.done || !idx) {
        free(j.text);
        free(j.tok);
        free(j.done);
        free(idx);
        return IK_E_NOMEM;
    }
    double budget = (double)st->max_input * (1 - st->input_margin) - (double)st->fixed_tokens;
    double pe, rs;
    estimates(st, &pe, &rs);
    size_t nidx = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        j.text[i] =
            gpt_render_email(st->host->record_id(recs[i]), st->host->record_payload(recs[i]), &len);
        if (!j.text[i]) {
            set_result(&j, i, IK_RETRY, "out of memory rendering the email");
            continue;
        }
        j.tok[i] = count_tokens(st, j.text[i], len);
        if ((double)j.tok[i] > budget)
            set_result(&j, i, IK_FAIL,
                       "email is %zu tokens; the model takes at most %.0f per request after the "
                       "instructions and schema",
                       j.tok[i], budget);
        else
            idx[nidx++] = i;
    }
    /* pack into requests that fit the input limit and the output cap */
    size_t s = 0;
    while (s < nidx && !st->host->stopping(st->self)) {
        double in = 0;
        size_t e = s;
        while (e < nidx) {
            double out = pe * (double)(e - s + 1) + rs;
            if (e > s && (in + (double)j.tok[idx[e]] > budget || out > (double)st->max_output_cap))
                break;
            in += (double)j.tok[idx[e]];
            e++;
        }
        run_group(&j, idx + s, e - s, 0);
        s = e;
    }
    for (size_t i = 0; i < n; i++) {
        if (!j.done[i])
            set_result(&j, i, IK_RELEASE, "shutting down before the request was sent");
        free(j.text[i]);
    }
    free(j.text);
    free(j.tok);
    free(j.done);
    free(idx);
    return 0;
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
    .create = gb_create,
    .destroy = gb_destroy,
    .health = gb_health,
    .cost = gb_cost,
    .process = gb_process,
};

IK_PLUGIN_EXPORT(gb_plugin)
