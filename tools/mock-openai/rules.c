/*
 * rules.c: the request-level rules of the real API, so that a client the
 * mock accepts is one the API accepts: unknown top-level parameters,
 * parameters that reasoning models (gpt-5*, o1/o3/o4...) refuse, fields
 * with documented bounds, and the structured-output format's name. The
 * schema itself is checked by strict_schema.c. Messages, params and codes
 * follow the API's error bodies.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "rules.h"

static const char *const CHAT_PARAMS[] = {"model",
                                          "messages",
                                          "response_format",
                                          "max_completion_tokens",
                                          "max_tokens",
                                          "reasoning_effort",
                                          "verbosity",
                                          "prompt_cache_key",
                                          "prompt_cache_retention",
                                          "prompt_cache_options",
                                          "safety_identifier",
                                          "service_tier",
                                          "store",
                                          "metadata",
                                          "temperature",
                                          "top_p",
                                          "n",
                                          "stop",
                                          "stream",
                                          "stream_options",
                                          "tools",
                                          "tool_choice",
                                          "parallel_tool_calls",
                                          "presence_penalty",
                                          "frequency_penalty",
                                          "logit_bias",
                                          "logprobs",
                                          "top_logprobs",
                                          "seed",
                                          "user",
                                          "modalities",
                                          "audio",
                                          "prediction",
                                          "web_search_options",
                                          "function_call",
                                          "functions",
                                          NULL};

static const char *const RESPONSES_PARAMS[] = {"model",
                                               "input",
                                               "instructions",
                                               "text",
                                               "reasoning",
                                               "max_output_tokens",
                                               "max_tool_calls",
                                               "store",
                                               "metadata",
                                               "prompt_cache_key",
                                               "prompt_cache_retention",
                                               "prompt_cache_options",
                                               "safety_identifier",
                                               "service_tier",
                                               "background",
                                               "truncation",
                                               "tools",
                                               "tool_choice",
                                               "parallel_tool_calls",
                                               "previous_response_id",
                                               "conversation",
                                               "include",
                                               "stream",
                                               "stream_options",
                                               "temperature",
                                               "top_p",
                                               "top_logprobs",
                                               "user",
                                               "prompt",
                                               NULL};

/* Refused outright by reasoning models (temperature and top_p are refused
 * unless they are the default 1, see sampling_ok). */
static const char *const REASONING_REFUSED[] = {"max_tokens",        "stop",     "presence_penalty",
                                                "frequency_penalty", "logprobs", "top_logprobs",
                                                "logit_bias",        NULL};

static int in_list(const char *const *list, const char *k)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], k) == 0)
            return 1;
    return 0;
}

/* gpt-5, gpt-5-mini, gpt-5.6-terra..., o1, o3-mini, o4-mini: the models
 * whose sampling is fixed. A deployment name (Azure) says nothing: not one. */
static int reasoning_model(const char *model)
{
    return strncmp(model, "gpt-5", 5) == 0 || (model[0] == 'o' && isdigit((unsigned char)model[1]));
}

static int unknown_parameter(int chat, json_object *req, reply *r)
{
    json_object_object_foreach(req, k, v)
    {
        (void)v;
        if (in_list(chat ? CHAT_PARAMS : RESPONSES_PARAMS, k))
            continue;
        char msg[300];
        snprintf(msg, sizeof msg, "Unknown parameter: '%.200s'.", k);
        error_reply(r, 400, msg, "invalid_request_error", k, "unknown_parameter");
        return -1;
    }
    return 0;
}

/* temperature and top_p: a reasoning model takes only the default, 1. */
static int sampling_ok(json_object *req, const char *name, reply *r)
{
    json_object *v;
    if (!json_object_object_get_ex(req, name, &v) || !v)
        return 0;
    if ((json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)) &&
        json_object_get_double(v) == 1.0)
        return 0;
    char msg[300];
    snprintf(msg, sizeof msg,
             "Unsupported value: '%s' does not support %.40s with this model. Only the default "
             "(1) value is supported.",
             name, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
    error_reply(r, 400, msg, "invalid_request_error", name, "unsupported_value");
    return -1;
}

static int reasoning_params(json_object *req, reply *r)
{
    if (sampling_ok(req, "temperature", r) || sampling_ok(req, "top_p", r))
        return -1;
    for (size_t i = 0; REASONING_REFUSED[i]; i++) {
        if (!json_object_object_get_ex(req, REASONING_REFUSED[i], NULL))
            continue;
        char msg[300];
        snprintf(msg, sizeof msg, "Unsupported parameter: '%s' is not supported with this model.%s",
                 REASONING_REFUSED[i],
                 strcmp(REASONING_REFUSED[i], "max_tokens") == 0
                     ? " Use 'max_completion_tokens' instead."
                     : "");
        error_reply(r, 400, msg, "invalid_request_error", REASONING_REFUSED[i],
                    "unsupported_parameter");
        return -1;
    }
    return 0;
}

/* Characters (code points) of a UTF-8 string. */
static size_t chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* A string field of at most max characters, named param in the error. */
static int string_max(json_object *v, const char *param, size_t max, reply *r)
{
    if (!v || !json_object_is_type(v, json_type_string))
        return 0;
    size_t n = chars(json_object_get_string(v));
    if (n <= max)
        return 0;
    char msg[300];
    snprintf(msg, sizeof msg,
             "Invalid '%s': string too long. Expected a string with maximum length %zu, but got "
             "a string with length %zu instead.",
             param, max, n);
    error_reply(r, 400, msg, "invalid_request_error", param, "string_above_max_length");
    return -1;
}

static int field_bounds(int chat, json_object *req, reply *r)
{
    json_object *v;
    if (string_max(json_object_object_get(req, "prompt_cache_key"), "prompt_cache_key", 64, r) ||
        string_max(json_object_object_get(req, "safety_identifier"), "safety_identifier", 64, r))
        return -1;
    if (!chat && json_object_object_get_ex(req, "max_output_tokens", &v) && v &&
        json_object_get_int64(v) < 16) {
        char msg[300];
        snprintf(msg, sizeof msg,
                 "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
                 "16, but got %lld instead.",
                 (long long)json_object_get_int64(v));
        error_reply(r, 400, msg, "invalid_request_error", "max_output_tokens",
                    "integer_below_min_value");
        return -1;
    }
    return 0;
}

/* The json_schema format's name: required, [a-zA-Z0-9_-], at most 64. */
static int format_name(json_object *fmt, const char *param, reply *r)
{
    json_object *v;
    char msg[300];
    if (!json_object_object_get_ex(fmt, "name", &v) || !json_object_is_type(v, json_type_string)) {
        snprintf(msg, sizeof msg, "Missing required parameter: '%s'.", param);
        error_reply(r, 400, msg, "invalid_request_error", param, "missing_required_parameter");
        return -1;
    }
    if (string_max(v, param, 64, r))
        return -1;
    const char *s = json_object_get_string(v);
    size_t ok = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
    if (!s[0] || s[ok]) {
        snprintf(msg, sizeof msg,
                 "Invalid '%s': string does not match pattern. Expected a string that matches "
                 "the pattern '^[a-zA-Z0-9_-]+$'.",
                 param);
        error_reply(r, 400, msg, "invalid_request_error", param, "invalid_value");
        return -1;
    }
    return 0;
}

/* The json_schema format: chat's response_format.json_schema, or the
 * Responses text.format (flat). NULL when the request has none. */
static json_object *schema_format(int chat, json_object *req)
{
    json_object *a, *b;
    if (chat)
        return json_object_object_get_ex(req, "response_format", &a) &&
                       json_object_object_get_ex(a, "json_schema", &b)
                   ? b
                   : NULL;
    return json_object_object_get_ex(req, "text", &a) && json_object_object_get_ex(a, "format", &b)
               ? b
               : NULL;
}

int mock_check_request(int chat, json_object *req, reply *r)
{
    if (unknown_parameter(chat, req, r))
        return -1;
    json_object *v;
    if (json_object_object_get_ex(req, "model", &v) && json_object_is_type(v, json_type_string) &&
        reasoning_model(json_object_get_string(v)) && reasoning_params(req, r))
        return -1;
    if (field_bounds(chat, req, r))
        return -1;
    json_object *fmt = schema_format(chat, req), *strict, *schema;
    if (!fmt)
        return 0;
    if (format_name(fmt, chat ? "response_format.json_schema.name" : "text.format.name", r))
        return -1;
    if (!json_object_object_get_ex(fmt, "strict", &strict) || !json_object_get_boolean(strict) ||
        !json_object_object_get_ex(fmt, "schema", &schema))
        return 0;
    return mock_check_strict_schema(schema,
                                    json_object_get_string(json_object_object_get(fmt, "name")),
                                    chat ? "response_format" : "text.format.schema", r);
}
