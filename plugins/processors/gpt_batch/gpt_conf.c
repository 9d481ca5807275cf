/*
 * gpt_conf.c: the gpt_batch processor's options (see gpt_conf.h). The
 * engine checks types, ranges (min/max) and choices from the table and
 * binds the values into gb_conf; gb_check() adds what the table cannot say
 * and that is known without the network: the catalog and the model in it,
 * the instruction and schema files, the URL, the API key and the rules
 * between options. create() runs the same steps again (a file may have
 * changed since) and keeps what they load.
 */
#include "gpt_conf.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/file.h"
#include "tokenizer/tokenizer.h"

static const char *const gb_apis[] = {"responses", "chat", NULL};
static const char *const gb_providers[] = {"openai", "azure", NULL};
static const char *const gb_azure_auths[] = {"api-key", "bearer", NULL};
static const char *const gb_modes[] = {"sync", "batch", NULL};
static const char *const gb_fallbacks[] = {"rules", "none", NULL};
const char *const gb_verbosities[] = {"low", "medium", "high", NULL};

#define AT(member) IK_OPT_AT(gb_conf, member)

const ik_option gb_options[] = {
    {"catalog", IK_OPT_STRING, NULL, IK_OPT_REQUIRED,
     "Model catalog (libconfig), e.g. etc/models.conf: limits, prices, reasoning efforts.",
     AT(catalog)},
    {"model", IK_OPT_STRING, "", 0, "Catalog entry to use; empty: the catalog's default_model.",
     AT(model)},
    {"schema_file", IK_OPT_STRING, NULL, IK_OPT_REQUIRED,
     "Extraction JSON schema (etc/extraction.schema.json); the strict output schema is "
     "generated from it.",
     AT(schema_file)},
    {"instructions_file", IK_OPT_STRING, NULL, IK_OPT_REQUIRED,
     "Instruction text sent as the stable prompt prefix (etc/prompts/extraction.txt).",
     AT(instructions_file)},
    {"api", IK_OPT_CHOICE, "responses", 0, "\"responses\" (store:false) or \"chat\".", AT(api),
     .choices = gb_apis},
    {"provider", IK_OPT_CHOICE, "openai", 0,
     "\"openai\" (Authorization: Bearer; any OpenAI-compatible base_url) or \"azure\".",
     AT(provider), .choices = gb_providers},
    {"base_url", IK_OPT_STRING, "https://api.openai.com/v1", 0,
     "OpenAI: the API base (…/v1). Azure: the resource endpoint https://NAME.openai.azure.com.",
     AT(base_url)},
    {"api_key", IK_OPT_STRING, NULL, IK_OPT_SECRET,
     "API key; when unset it is read from the variable named by api_key_env.", AT(api_key)},
    {"api_key_env", IK_OPT_STRING, "OPENAI_API_KEY", 0,
     "Environment variable holding the API key when api_key is unset.", AT(api_key_env)},
    {"azure_deployment", IK_OPT_STRING, "", 0, "Azure deployment name (sent as the model).",
     AT(azure_deployment)},
    {"azure_api_version", IK_OPT_STRING, "", 0,
     "Azure dated api-version (e.g. 2025-04-01-preview); empty: the /openai/v1/ URL form.",
     AT(azure_api_version)},
    {"azure_auth", IK_OPT_CHOICE, "api-key", 0,
     "Azure: \"api-key\" header or \"bearer\" (Entra ID token as the key).", AT(azure_auth),
     .choices = gb_azure_auths},
    {"reasoning_effort", IK_OPT_STRING, "low", 0,
     "Reasoning effort; must be one the catalog lists for the model.", AT(reasoning_effort)},
    {"verbosity", IK_OPT_CHOICE, "low", 0, "low, medium or high.", AT(verbosity),
     .choices = gb_verbosities},
    {"max_output_tokens", IK_OPT_INT, "0", 0,
     "Cap on output tokens (reasoning included) per request; 0: the model's maximum.",
     AT(max_output_tokens), .min = "0"},
    {"max_input_tokens", IK_OPT_INT, "0", 0, "Cap on input tokens per request; 0: the model's.",
     AT(max_input_tokens), .min = "0"},
    {"input_margin", IK_OPT_DOUBLE, "0.03", 0,
     "Share of the input limit kept free for tokens the client cannot count exactly.",
     AT(input_margin), .min = "0", .max = "0.5"},
    {"output_tokens_per_email", IK_OPT_INT, "200", 0,
     "Starting estimate of visible output tokens per email; learned from usage.",
     AT(output_tokens_per_email), .min = "1"},
    {"reasoning_reserve", IK_OPT_INT, "2048", 0,
     "Output tokens reserved for reasoning per request (at least); learned from usage.",
     AT(reasoning_reserve), .min = "0"},
    {"learn_estimates", IK_OPT_BOOL, "true", 0, "Learn the two estimates above from usage.",
     AT(learn_estimates)},
    {"rpm", IK_OPT_INT, "0", 0,
     "Requests per minute to stay under; 0: learned from x-ratelimit-limit-requests.", AT(rpm),
     .min = "0"},
    {"tpm", IK_OPT_INT, "0", 0,
     "Tokens per minute to stay under; 0: learned from x-ratelimit-limit-tokens.", AT(tpm),
     .min = "0"},
    {"target_utilization", IK_OPT_DOUBLE, "0.97", 0, "Share of the per-minute limits to use.",
     AT(target_utilization), .min = "0.01", .max = "1"},
    {"concurrency_min", IK_OPT_INT, "1", 0, "Lower bound of adaptive requests in flight.",
     AT(concurrency_min), .min = "1"},
    {"concurrency_max", IK_OPT_INT, "64", 0,
     "Upper bound of adaptive requests in flight (also bounded by the stage's concurrency).",
     AT(concurrency_max), .min = "1"},
    {"latency_target", IK_OPT_DURATION, "0", 0,
     "A request slower than this halves the adaptive concurrency like a 429 (0: off).",
     AT(latency_target_ms)},
    {"latency_factor", IK_OPT_DOUBLE, "3", 0,
     "A request whose time per output token is this many times the fastest recent one halves "
     "the adaptive concurrency like a 429: the server is queueing (0: off).",
     AT(latency_factor), .min = "0"},
    {"grounded_fields", IK_OPT_STRING, "email,phone,linkedin_url,candidate_name", 0,
     "Extracted fields checked against the email's own text: found only in another email of "
     "the request, the answer is sent again alone; found nowhere, it is kept and named in the "
     "gpt_ungrounded metadata. Empty: no check.",
     AT(grounded_fields)},
    {"mode", IK_OPT_CHOICE, "sync", 0,
     "\"sync\": requests answered at once; \"batch\": the OpenAI Batch API (half price, "
     "results within 24 h; give the stage a large batch.max_items and max_wait).",
     AT(mode), .choices = gb_modes},
    {"emails_per_request", IK_OPT_INT, "0", 0,
     "Most emails packed into one request; 0: as many as fit (sync: the stage's "
     "batch.max_items decides), 50 in batch mode.",
     AT(emails_per_request), .min = "0"},
    {"batch_poll_interval", IK_OPT_DURATION, "30s", 0, "Batch mode: how often to ask for status.",
     AT(batch_poll_ms), .min = "1ms"},
    {"batch_max_wait", IK_OPT_DURATION, "25h", 0,
     "Batch mode: cancel a batch not finished after this long and retry its emails later.",
     AT(batch_max_wait_ms)},
    {"batch_max_requests", IK_OPT_INT, "50000", 0,
     "Batch mode: packed requests per batch file (the API takes at most 50,000).",
     AT(batch_max_requests), .min = "1", .max = "50000"},
    {"batch_keep_files", IK_OPT_BOOL, "false", 0,
     "Batch mode: keep the uploaded input and the result files on the server (default: "
     "deleted once read).",
     AT(batch_keep_files)},
    {"timeout", IK_OPT_DURATION, "600s", 0, "Whole-request timeout.", AT(timeout_ms)},
    {"connect_timeout", IK_OPT_DURATION, "10s", 0, "Connection timeout.", AT(connect_timeout_ms)},
    {"rate_limit_retries", IK_OPT_INT, "8", 0,
     "429 rate_limit_exceeded waits within one call before handing back IK_RETRY.",
     AT(rate_limit_retries), .min = "0"},
    {"quota_recheck", IK_OPT_DURATION, "60s", 0,
     "After insufficient_quota/401: release records for this long, then try one request.",
     AT(quota_recheck_ms)},
    {"prompt_cache_key", IK_OPT_STRING, "intake-extraction-v1", 0,
     "prompt_cache_key sent with every request (empty: none).", AT(prompt_cache_key)},
    {"service_tier", IK_OPT_STRING, "", 0, "service_tier to send (e.g. flex); empty: none.",
     AT(service_tier)},
    {"tokenizer_file", IK_OPT_STRING, "", 0,
     "o200k_base.tiktoken rank file; empty: $INTAKE_O200K_FILE; none: estimates (bytes/3), "
     "logged once.",
     AT(tokenizer_file)},
    {"tokenizer_sha256", IK_OPT_STRING, IK_TOK_O200K_SHA256, 0, "Expected SHA-256 of the file.",
     AT(tokenizer_sha256)},
    {"result_field", IK_OPT_STRING, "extraction", 0, "Payload field that receives the extraction.",
     AT(result_field)},
    {"model_confidence", IK_OPT_BOOL, "false", 0,
     "Ask the model for its per-field confidence (output tokens). false: `confidence` is filled "
     "from grounding: 0.9 found verbatim in the email, 0.6 found after normalisation, 0.2 not "
     "found, 0 null.",
     AT(model_confidence)},
    {"compact_keys", IK_OPT_BOOL, "false", 0,
     "Short property names on the wire (each description names the field), mapped back before "
     "delivery: fewer tokens, same record. Off until measured with your model.",
     AT(compact_keys)},
    {"fallback", IK_OPT_CHOICE, "rules", 0,
     "Without an API key: \"rules\" extracts with the offline rules extractor (said once in "
     "the log, metadata extracted_by=rules); \"none\" refuses to start.",
     AT(fallback), .choices = gb_fallbacks},
    {0},
};

int gpt_conf_model(const gb_conf *c, gpt_model *m, char *err, size_t errlen)
{
    char why[768];
    int rc = gpt_catalog_load(c->catalog, c->model, m, why, sizeof why);
    if (rc) {
        snprintf(err, errlen, "option catalog: %s", why);
        return rc;
    }
    if (!gpt_model_allows_effort(m, c->reasoning_effort)) {
        snprintf(err, errlen,
                 "option reasoning_effort: \"%s\" is not accepted by model %s (see the catalog's "
                 "reasoning_efforts)",
                 c->reasoning_effort, m->id);
        return IK_E_CONFIG;
    }
    return gpt_check_request_options(c->prompt_cache_key, (long)c->max_output_tokens,
                                     c->api == GB_API_CHAT, err, errlen);
}

int gpt_conf_key(const gb_conf *c, const char **key, char *err, size_t errlen)
{
    const char *k = c->api_key;
    if (!k || !k[0]) {
        const char *env = c->api_key_env;
        k = env && env[0] ? getenv(env) : NULL;
        if ((!k || !k[0]) && c->fallback == GB_FALLBACK_NONE) {
            snprintf(err, errlen, "no API key: set api_key or the variable %s",
                     env && env[0] ? env : "(api_key_env is empty)");
            *key = NULL;
            return IK_E_CONFIG;
        }
    }
    *key = k && k[0] ? k : NULL;
    return 0;
}

/* base_url parses as a URL whose scheme is http or https and which names a
 * host. 0, or IK_E_CONFIG (IK_E_NOMEM) with err set. */
static int check_base_url(const char *base, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    if (!u) {
        snprintf(err, errlen, "out of memory");
        return IK_E_NOMEM;
    }
    char *scheme = NULL, *host = NULL;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, base, 0);
    if (uc == CURLUE_OK)
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (uc == CURLUE_OK)
        curl_url_get(u, CURLUPART_HOST, &host, 0);
    int rc = 0;
    if (uc != CURLUE_OK)
        snprintf(err, errlen, "option base_url: \"%s\" is not a URL (%s)", base,
                 curl_url_strerror(uc));
    else if (!scheme || (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0))
        snprintf(err, errlen, "option base_url: \"%s\" must start with http:// or https://", base);
    else if (!host || !host[0])
        snprintf(err, errlen, "option base_url: \"%s\" names no host", base);
    else if (strlen(base) > 1024)
        snprintf(err, errlen, "option base_url: %zu bytes; at most 1024", strlen(base));
    else
        rc = 1;
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc == 1 ? 0 : IK_E_CONFIG;
}

int gpt_conf_endpoint(const gb_conf *c, char *err, size_t errlen)
{
    int rc = check_base_url(c->base_url ? c->base_url : "", err, errlen);
    if (rc)
        return rc;
    if (c->provider == GB_PROVIDER_AZURE && (!c->azure_deployment || !c->azure_deployment[0])) {
        snprintf(err, errlen, "provider \"azure\" needs azure_deployment");
        return IK_E_CONFIG;
    }
    return 0;
}

/* The extraction schema in schema_file, parsed: a new reference, or NULL
 * with err set. */
static json_object *read_schema(const char *path, char *err, size_t errlen)
{
    char *text = NULL, why[768];
    if (ik_read_file(path, &text, NULL, why, sizeof why) != 0) {
        snprintf(err, errlen, "option schema_file: %s", why);
        return NULL;
    }
    enum json_tokener_error jerr = json_tokener_success;
    json_object *item = json_tokener_parse_verbose(text, &jerr);
    free(text);
    if (!item) {
        snprintf(err, errlen, "%s: cannot parse the extraction schema: %s", path,
                 jerr == json_tokener_success ? "not a JSON object"
                                              : json_tokener_error_desc(jerr));
        return NULL;
    }
    return item;
}

int gpt_conf_schema(const gb_conf *c, json_object **item, json_object **wire, json_object **back,
                    char *err, size_t errlen)
{
    *item = *wire = *back = NULL;
    json_object *it = read_schema(c->schema_file, err, errlen);
    if (!it)
        return IK_E_CONFIG;
    json_object *strict = gpt_strict_schema(it, err, errlen);
    if (!strict) {
        json_object_put(it);
        return IK_E_CONFIG;
    }
    *wire = gpt_wire_schema(strict, it, c->model_confidence, c->compact_keys, back, err, errlen);
    json_object_put(strict);
    if (!*wire) {
        json_object_put(*back);
        *back = NULL;
        json_object_put(it);
        return IK_E_CONFIG;
    }
    *item = it;
    return 0;
}

int gpt_conf_grounded(json_object *item_schema, const char *list, char ***out, size_t *n, char *err,
                      size_t errlen)
{
    for (const char *p = list; p && *p;) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t len = strcspn(p, ", ");
        if (len == 0)
            break;
        char **g = realloc(*out, (*n + 1) * sizeof *g);
        if (!g)
            return IK_E_NOMEM;
        *out = g;
        if (!(g[*n] = strndup(p, len)))
            return IK_E_NOMEM;
        const char *name = g[(*n)++];
        json_object *props, *f;
        if (!json_object_object_get_ex(item_schema, "properties", &props) ||
            !json_object_object_get_ex(props, name, &f)) {
            snprintf(err, errlen,
                     "option grounded_fields: \"%s\" is not a property of the extraction "
                     "schema",
                     name);
            return IK_E_CONFIG;
        }
        p += len;
    }
    return 0;
}

/* Logs err when rc says a step failed; returns the first failure of the
 * check so far (first) or this one. */
static int report(const ik_host *host, ik_instance *self, int first, int rc, const char *err)
{
    if (rc == 0)
        return first;
    host->log(self, IK_LOG_ERROR, "%s", rc == IK_E_NOMEM ? "out of memory" : err);
    return first ? first : rc;
}

/* The schema and grounded_fields, as create() will load them. */
static int check_schema(const gb_conf *c, char *err, size_t errlen)
{
    json_object *item, *wire, *back;
    int rc = gpt_conf_schema(c, &item, &wire, &back, err, errlen);
    if (rc)
        return rc;
    char **names = NULL;
    size_t n = 0;
    rc = gpt_conf_grounded(item, c->grounded_fields, &names, &n, err, errlen);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    json_object_put(item);
    json_object_put(wire);
    json_object_put(back);
    return rc;
}

/* The instruction file is readable. */
static int check_instructions(const gb_conf *c, char *err, size_t errlen)
{
    char *text = NULL, why[768];
    if (ik_read_file(c->instructions_file, &text, NULL, why, sizeof why) != 0) {
        snprintf(err, errlen, "option instructions_file: %s", why);
        return IK_E_CONFIG;
    }
    free(text);
    return 0;
}

/* tokenizer_file, when set and the model counts with o200k_base (else
 * create() does not read it), can be read; its checksum is verified when
 * create() loads it. */
static int check_tokenizer(const gb_conf *c, const gpt_model *m, char *err, size_t errlen)
{
    const char *tf = c->tokenizer_file;
    if (!tf || !tf[0] || !m->tokenizer || strcmp(m->tokenizer, "o200k_base") != 0)
        return 0;
    if (access(tf, R_OK) != 0) {
        snprintf(err, errlen, "option tokenizer_file: %s: %s", tf, strerror(errno));
        return IK_E_CONFIG;
    }
    return 0;
}

int gb_check(const ik_host *host, ik_instance *self, const void *config)
{
    const gb_conf *c = config;
    char err[1024];
    gpt_model m = {0};
    const char *key;
    int rc = report(host, self, 0, gpt_conf_model(c, &m, err, sizeof err), err);
    rc = report(host, self, rc, check_tokenizer(c, &m, err, sizeof err), err);
    gpt_model_free(&m);
    rc = report(host, self, rc, gpt_conf_key(c, &key, err, sizeof err), err);
    rc = report(host, self, rc, gpt_conf_endpoint(c, err, sizeof err), err);
    rc = report(host, self, rc, check_instructions(c, err, sizeof err), err);
    rc = report(host, self, rc, check_schema(c, err, sizeof err), err);
    return rc;
}
