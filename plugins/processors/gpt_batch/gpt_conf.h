/*
 * gpt_conf.h: the gpt_batch processor's options: the option table, the
 * config struct the engine binds them into (SDK 2.0, by offset), the
 * plugin's check() and the steps of it that create() repeats (catalog and
 * model, API key, endpoint, schema, grounded fields), so `intake validate`
 * and `intake run` refuse the same things with the same messages.
 */
#ifndef INTAKE_GPT_CONF_H
#define INTAKE_GPT_CONF_H

#include <stddef.h>
#include <stdint.h>

#include <intake/plugin.h>

#include "gpt_internal.h"

/* Indexes of the choice options' values (the order of their choices). */
enum { GB_API_RESPONSES = 0, GB_API_CHAT = 1 };
enum { GB_PROVIDER_OPENAI = 0, GB_PROVIDER_AZURE = 1 };
enum { GB_AZURE_AUTH_API_KEY = 0, GB_AZURE_AUTH_BEARER = 1 };
enum { GB_MODE_SYNC = 0, GB_MODE_BATCH = 1 };
enum { GB_FALLBACK_RULES = 0, GB_FALLBACK_NONE = 1 };

/* verbosity's choices, indexed by gb_conf.verbosity: the text sent. */
extern const char *const gb_verbosities[];

/* The options as the engine binds them (strings engine-owned until
 * destroy(); durations in ms). */
typedef struct gb_conf {
    const char *catalog, *model, *schema_file, *instructions_file;
    int api, provider, azure_auth, mode, fallback, verbosity; /* choices: GB_* */
    const char *base_url, *api_key, *api_key_env;             /* api_key: NULL when unset */
    const char *azure_deployment, *azure_api_version;
    const char *reasoning_effort;
    int64_t max_output_tokens, max_input_tokens;
    double input_margin;
    int64_t output_tokens_per_email, reasoning_reserve;
    int learn_estimates;
    int64_t rpm, tpm;
    double target_utilization;
    int64_t concurrency_min, concurrency_max;
    uint64_t latency_target_ms;
    double latency_factor;
    const char *grounded_fields;
    int64_t emails_per_request;
    uint64_t batch_poll_ms, batch_max_wait_ms;
    int64_t batch_max_requests;
    int batch_keep_files;
    uint64_t timeout_ms, connect_timeout_ms;
    int64_t rate_limit_retries;
    uint64_t quota_recheck_ms;
    const char *prompt_cache_key, *service_tier;
    const char *tokenizer_file, *tokenizer_sha256;
    const char *result_field;
    int model_confidence, compact_keys;
} gb_conf;

/* The option table, bound to gb_conf; ends with a zeroed entry. */
extern const ik_option gb_options[];

/* check(): what create() would refuse that is known without the network,
 * each problem logged naming its option; IK_E_CONFIG (or IK_E_NOMEM), 0
 * when all is well. Keeps nothing. */
int gb_check(const ik_host *host, ik_instance *self, const void *config);

/* Loads the catalog entry of option `model` into *m (the caller frees it
 * with gpt_model_free, on failure too) and checks reasoning_effort,
 * prompt_cache_key and max_output_tokens against it. 0, or an IK_E_* code
 * with err set. */
int gpt_conf_model(const gb_conf *c, gpt_model *m, char *err, size_t errlen);

/* The API key: api_key, else the variable api_key_env names. *key is NULL
 * when there is none and fallback is "rules"; without one and with
 * fallback "none" IK_E_CONFIG with err set. *key points into the config
 * or the environment: not owned. */
int gpt_conf_key(const gb_conf *c, const char **key, char *err, size_t errlen);

/* base_url is an http(s) URL with a host; provider "azure" has an
 * azure_deployment. 0, or IK_E_CONFIG with err set. */
int gpt_conf_endpoint(const gb_conf *c, char *err, size_t errlen);

/* The extraction schema of schema_file (*item) and its wire form for
 * requests (*wire, gpt_wire_schema; *back its compact_keys map or NULL).
 * New references owned by the caller, all NULL on failure (IK_E_CONFIG or
 * IK_E_NOMEM with err set). */
int gpt_conf_schema(const gb_conf *c, json_object **item, json_object **wire, json_object **back,
                    char *err, size_t errlen);

/* Splits the comma-separated `list` (grounded_fields) into *out (*n
 * names), each of which must be a property of item_schema. The caller
 * frees *out and its names, on failure too (IK_E_CONFIG, IK_E_NOMEM; err
 * set). */
int gpt_conf_grounded(json_object *item_schema, const char *list, char ***out, size_t *n, char *err,
                      size_t errlen);

#endif
