/*
 * rules.h: what the real API refuses in a model request, so that the mock
 * refuses it too: request parameters and field bounds (rules.c) and the
 * strict structured-output schema rules (strict_schema.c). Each check fills
 * a 400 shaped like the API's ({"error": {message, type, param, code}}).
 */
#ifndef MOCK_RULES_H
#define MOCK_RULES_H

#include <json-c/json.h>

#include "mock.h"

/* Checks a parsed Responses (chat = 0) or Chat Completions (chat = 1)
 * request object: unknown top-level parameters (unknown_parameter),
 * parameters reasoning models refuse (unsupported_parameter /
 * unsupported_value), bounded fields (string_above_max_length,
 * integer_below_min_value), the json_schema name, and the strict schema.
 * 0 when the API would take it; -1 with the 400 in r. */
int mock_check_request(int chat, json_object *req, reply *r);

/* Checks schema against the strict-mode rules of Structured Outputs (root an
 * object, additionalProperties false and every property required on every
 * object, supported types and keywords, the size limits). 0, or -1 with
 * the 400 invalid_json_schema in r; name is the format's name and param the
 * error's param ("response_format" or "text.format.schema"). */
int mock_check_strict_schema(json_object *schema, const char *name, const char *param, reply *r);

#endif
