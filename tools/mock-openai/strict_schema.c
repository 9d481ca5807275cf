/*
 * strict_schema.c: the strict-mode rules of Structured Outputs, as the real
 * API applies them to a json_schema format with strict: true. The root is
 * an object (not anyOf); every object sets additionalProperties: false and
 * lists every property in required; types are string, number, boolean,
 * integer, object, array and null, and a type union holds no object or array
 * (a nullable object or array is anyOf with {"type": "null"}); allOf, not,
 * if/then/else, dependentRequired/Schemas and default are not permitted;
 * format takes the documented values. Limits: 5,000 object properties, 10
 * levels of nesting, 1,000 enum values, 120,000 characters of property
 * names, definition names, enum and const values, and 15,000 characters for
 * one string enum of more than 250 values. A violation is a 400 whose
 * message says where, in the API's "In context=('properties', 'x')" form.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rules.h"

#define MAX_PROPERTIES  5000
#define MAX_NESTING     10
#define MAX_ENUM_VALUES 1000
#define MAX_TEXT_CHARS  120000
#define BIG_ENUM        250
#define BIG_ENUM_CHARS  15000
#define MAX_PATH        24

typedef struct walk {
    const char *path[MAX_PATH]; /* context: the keys walked from the root */
    char idx[MAX_PATH][24];     /* storage for array indexes in path */
    int depth;
    size_t nprops, nenum, text;
    char msg[700];
} walk;

static const char *const NOT_PERMITTED[] = {
    "allOf", "not", "dependentRequired", "dependentSchemas", "if", "then", "else", "default", NULL};
static const char *const TYPES[] = {"string", "number", "boolean", "integer",
                                    "object", "array",  "null",    NULL};
static const char *const FORMATS[] = {"date-time", "time", "date", "duration", "email",
                                      "hostname",  "ipv4", "ipv6", "uuid",     NULL};

static int in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; s && list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

/* Sets w->msg to "In context=('a', 'b'), " followed by fmt; returns -1. */
static int fail(walk *w, const char *fmt, ...)
{
    size_t o = (size_t)snprintf(w->msg, sizeof w->msg, "In context=(");
    for (int i = 0; i < w->depth && o < sizeof w->msg; i++)
        o +=
            (size_t)snprintf(w->msg + o, sizeof w->msg - o, "%s'%.60s'", i ? ", " : "", w->path[i]);
    if (o < sizeof w->msg)
        o += (size_t)snprintf(w->msg + o, sizeof w->msg - o, "), ");
    if (o < sizeof w->msg) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->msg + o, sizeof w->msg - o, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int push(walk *w, const char *a, const char *b)
{
    if (w->depth + 2 > MAX_PATH)
        return fail(w, "the schema is nested too deeply to check");
    w->path[w->depth++] = a;
    if (b)
        w->path[w->depth++] = b;
    return 0;
}

static void pop(walk *w, int n)
{
    w->depth -= n;
}

static int check_node(walk *w, json_object *s, int level);

/* The text of a string element, "" for anything else. */
static const char *str_at(json_object *a, size_t i)
{
    json_object *e = json_object_array_get_idx(a, i);
    return json_object_is_type(e, json_type_string) ? json_object_get_string(e) : "";
}

/* The type keyword: a supported name, or a union of them without object or
 * array. *object / *array say whether the node is one. */
static int check_type(walk *w, json_object *t, int *object, int *array)
{
    if (json_object_is_type(t, json_type_string)) {
        const char *n = json_object_get_string(t);
        if (!in_list(TYPES, n))
            return fail(w, "type '%.60s' is not supported.", n);
        *object = strcmp(n, "object") == 0;
        *array = strcmp(n, "array") == 0;
        return 0;
    }
    if (!json_object_is_type(t, json_type_array) || json_object_array_length(t) == 0)
        return fail(w, "'type' must be a string or a non-empty array of strings.");
    for (size_t i = 0; i < json_object_array_length(t); i++) {
        json_object *e = json_object_array_get_idx(t, i);
        const char *n = json_object_is_type(e, json_type_string) ? json_object_get_string(e) : NULL;
        if (!in_list(TYPES, n))
            return fail(w, "type '%.60s' is not supported.",
                        n ? n : json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN));
        if (strcmp(n, "object") == 0 || strcmp(n, "array") == 0)
            return fail(w,
                        "a type array may only combine string, number, boolean, integer and "
                        "null; got '%s' in it. Use anyOf for a nullable %s.",
                        n, n);
    }
    return 0;
}

/* additionalProperties false, every property required, each one checked. */
static int check_object(walk *w, json_object *s, int level)
{
    json_object *ap, *props = NULL, *req = NULL;
    if (!json_object_object_get_ex(s, "additionalProperties", &ap) ||
        !json_object_is_type(ap, json_type_boolean) || json_object_get_boolean(ap))
        return fail(w, "'additionalProperties' is required to be supplied and to be false.");
    json_object_object_get_ex(s, "properties", &props);
    json_object_object_get_ex(s, "required", &req);
    if (props && !json_object_is_type(props, json_type_object))
        return fail(w, "'properties' must be an object.");
    if (req && !json_object_is_type(req, json_type_array))
        return fail(w, "'required' must be an array.");
    if (!props)
        return 0;
    json_object_object_foreach(props, k, v)
    {
        int listed = 0;
        for (size_t i = 0; req && i < json_object_array_length(req); i++)
            listed |= strcmp(str_at(req, i), k) == 0;
        if (!listed)
            return fail(w,
                        "'required' is required to be supplied and to be an array including "
                        "every key in properties. Missing '%.100s'.",
                        k);
        w->nprops++;
        w->text += strlen(k);
        if (push(w, "properties", k) || check_node(w, v, level + 1))
            return -1;
        pop(w, 2);
    }
    for (size_t i = 0; req && i < json_object_array_length(req); i++) {
        const char *rk = str_at(req, i);
        if (!json_object_object_get_ex(props, rk, NULL))
            return fail(w, "Extra required key '%.100s' supplied.", rk);
    }
    return 0;
}

/* enum and const: counted against the size limits. */
static int check_values(walk *w, json_object *s)
{
    json_object *e, *c;
    if (json_object_object_get_ex(s, "const", &c) && json_object_is_type(c, json_type_string))
        w->text += strlen(json_object_get_string(c));
    if (!json_object_object_get_ex(s, "enum", &e))
        return 0;
    if (!json_object_is_type(e, json_type_array))
        return fail(w, "'enum' must be an array.");
    size_t n = json_object_array_length(e), strings = 0, len = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(e, i);
        if (json_object_is_type(v, json_type_string)) {
            strings++;
            len += strlen(json_object_get_string(v));
        }
    }
    w->nenum += n;
    w->text += len;
    if (strings > BIG_ENUM && len > BIG_ENUM_CHARS)
        return fail(w,
                    "an enum of %zu string values has a total length of %zu, which exceeds the "
                    "limit of %d for enums of more than %d values.",
                    strings, len, BIG_ENUM_CHARS, BIG_ENUM);
    return 0;
}

/* anyOf: a non-empty array of schemas, each under the same rules. */
static int check_any_of(walk *w, json_object *any, int level)
{
    if (!json_object_is_type(any, json_type_array) || json_object_array_length(any) == 0)
        return fail(w, "'anyOf' must be a non-empty array.");
    for (size_t i = 0; i < json_object_array_length(any); i++) {
        snprintf(w->idx[w->depth], sizeof w->idx[0], "%zu", i);
        if (push(w, "anyOf", w->idx[w->depth]) ||
            check_node(w, json_object_array_get_idx(any, i), level))
            return -1;
        pop(w, 2);
    }
    return 0;
}

static int check_node(walk *w, json_object *s, int level)
{
    if (!json_object_is_type(s, json_type_object))
        return fail(w, "schema must be a JSON object.");
    for (size_t i = 0; NOT_PERMITTED[i]; i++)
        if (json_object_object_get_ex(s, NOT_PERMITTED[i], NULL))
            return fail(w, "'%s' is not permitted.", NOT_PERMITTED[i]);
    json_object *t, *x;
    if (json_object_object_get_ex(s, "format", &x) &&
        !in_list(FORMATS,
                 json_object_is_type(x, json_type_string) ? json_object_get_string(x) : NULL))
        return fail(w, "'format' %.60s is not supported.",
                    json_object_to_json_string_ext(x, JSON_C_TO_STRING_PLAIN));
    if (check_values(w, s))
        return -1;
    if (json_object_object_get_ex(s, "$defs", &x) && json_object_is_type(x, json_type_object)) {
        json_object_object_foreach(x, k, v)
        {
            w->text += strlen(k);
            if (push(w, "$defs", k) || check_node(w, v, level))
                return -1;
            pop(w, 2);
        }
    }
    if (json_object_object_get_ex(s, "$ref", NULL))
        return 0; /* checked where it is defined */
    if (json_object_object_get_ex(s, "anyOf", &x))
        return check_any_of(w, x, level);
    if (!json_object_object_get_ex(s, "type", &t)) {
        if (json_object_object_get_ex(s, "enum", NULL) ||
            json_object_object_get_ex(s, "const", NULL))
            return 0;
        return fail(w, "schema must have a 'type' key.");
    }
    int object = 0, array = 0;
    if (check_type(w, t, &object, &array))
        return -1;
    /* levels are objects and arrays inside one another; the root is level 1 */
    if ((object || array) && level > MAX_NESTING)
        return fail(w, "%d levels of nesting exceeds limit of %d.", level, MAX_NESTING);
    if (object)
        return check_object(w, s, level);
    if (array && json_object_object_get_ex(s, "items", &x)) {
        if (push(w, "items", NULL) || check_node(w, x, level + 1))
            return -1;
        pop(w, 1);
    }
    return 0;
}

/* The totals over the whole schema. */
static int check_totals(walk *w)
{
    if (w->nprops > MAX_PROPERTIES)
        return fail(w,
                    "the schema has %zu object properties in total, which exceeds the limit "
                    "of %d.",
                    w->nprops, MAX_PROPERTIES);
    if (w->nenum > MAX_ENUM_VALUES)
        return fail(w, "the schema has %zu enum values in total, which exceeds the limit of %d.",
                    w->nenum, MAX_ENUM_VALUES);
    if (w->text > MAX_TEXT_CHARS)
        return fail(w,
                    "the total string length of property names, definition names, enum values "
                    "and const values is %zu, which exceeds the limit of %d.",
                    w->text, MAX_TEXT_CHARS);
    return 0;
}

int mock_check_strict_schema(json_object *schema, const char *name, const char *param, reply *r)
{
    walk w;
    memset(&w, 0, sizeof w);
    json_object *t = json_object_object_get(schema, "type");
    int rc;
    if (!json_object_is_type(schema, json_type_object) ||
        !json_object_is_type(t, json_type_string) ||
        strcmp(json_object_get_string(t), "object") != 0) {
        snprintf(w.msg, sizeof w.msg,
                 "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"%.40s\"'.",
                 json_object_is_type(t, json_type_string) ? json_object_get_string(t) : "None");
        rc = -1;
    } else {
        rc = check_node(&w, schema, 1);
        if (rc == 0)
            rc = check_totals(&w);
    }
    if (rc == 0)
        return 0;
    char msg[900];
    snprintf(msg, sizeof msg, "Invalid schema for response_format '%.64s': %s", name ? name : "",
             w.msg);
    error_reply(r, 400, msg, "invalid_request_error", param, "invalid_json_schema");
    return -1;
}
