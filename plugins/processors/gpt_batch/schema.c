/*
 * schema.c: turns the extraction schema (etc/extraction.schema.json) into the
 * strict structured-output schema of a packed request, and validates each
 * returned result against the extraction schema.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt_internal.h"

/* Keywords strict mode accepts (OpenAI structured outputs guide). */
static const char *const KEEP[] = {"type",
                                   "description",
                                   "enum",
                                   "anyOf",
                                   "items",
                                   "pattern",
                                   "format",
                                   "minimum",
                                   "maximum",
                                   "minItems",
                                   "maxItems",
                                   "multipleOf",
                                   "$ref",
                                   "$defs",
                                   "const",
                                   "exclusiveMinimum",
                                   "exclusiveMaximum"};

static int keep_key(const char *k)
{
    for (size_t i = 0; i < sizeof KEEP / sizeof *KEEP; i++)
        if (strcmp(KEEP[i], k) == 0)
            return 1;
    return 0;
}

static int type_has(json_object *type, const char *t)
{
    if (!type)
        return 0;
    if (json_object_is_type(type, json_type_string))
        return strcmp(json_object_get_string(type), t) == 0;
    if (json_object_is_type(type, json_type_array))
        for (size_t i = 0; i < json_object_array_length(type); i++)
            if (strcmp(json_object_get_string(json_object_array_get_idx(type, i)), t) == 0)
                return 1;
    return 0;
}

/* A nullable copy of a type: "string" -> ["string","null"]. */
static json_object *nullable(json_object *type)
{
    if (!type)
        return NULL;
    if (type_has(type, "null"))
        return json_object_get(type);
    json_object *a = json_object_new_array();
    if (json_object_is_type(type, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(type); i++)
            json_object_array_add(a, json_object_get(json_object_array_get_idx(type, i)));
    } else {
        json_object_array_add(a, json_object_get(type));
    }
    json_object_array_add(a, json_object_new_string("null"));
    return a;
}

/* Strict mode refuses a type union holding "object" or "array" ("type":
 * ["object", "null"]); a nullable object or array is written as
 * {"description": D, "anyOf": [{the schema with the one non-null type},
 * {"type": "null"}]}. Takes o (a strict copy, consumed) and returns what
 * replaces it: o itself when its type needs no change, NULL with err set
 * for a union of several types with an object or array among them. */
static json_object *nullable_as_anyof(json_object *o, const char *path, char *err, size_t errlen)
{
    json_object *type = json_object_object_get(o, "type"), *one = NULL;
    if (!json_object_is_type(type, json_type_array) || !type_has(type, "null") ||
        (!type_has(type, "object") && !type_has(type, "array")))
        return o;
    size_t others = 0;
    for (size_t i = 0; i < json_object_array_length(type); i++) {
        json_object *t = json_object_array_get_idx(type, i);
        const char *ts = json_object_get_string(t);
        if (!ts || strcmp(ts, "null") != 0) {
            one = t;
            others++;
        }
    }
    if (others != 1) {
        snprintf(err, errlen,
                 "extraction schema: %s: strict mode takes an object or array type only alone "
                 "or with null",
                 path);
        json_object_put(o);
        return NULL;
    }
    json_object *branch = json_object_new_object(), *null_branch = json_object_new_object();
    json_object *any = json_object_new_array(), *wrap = json_object_new_object();
    json_object_object_foreach(o, k, v)
    {
        if (strcmp(k, "description") == 0)
            json_object_object_add(wrap, k, json_object_get(v));
        else
            json_object_object_add(branch, k, json_object_get(strcmp(k, "type") ? v : one));
    }
    json_object_object_add(null_branch, "type", json_object_new_string("null"));
    json_object_array_add(any, branch);
    json_object_array_add(any, null_branch);
    json_object_object_add(wrap, "anyOf", any);
    json_object_put(o);
    return wrap;
}

/* Strict copy of a sub-schema at `path` (for error messages). */
static json_object *strictify(json_object *s, int make_nullable, const char *path, char *err,
                              size_t errlen, int depth)
{
    if (depth > 10) {
        snprintf(err, errlen, "extraction schema: %s nests deeper than strict mode's 10 levels",
                 path);
        return NULL;
    }
    if (!json_object_is_type(s, json_type_object)) {
        snprintf(err, errlen, "extraction schema: %s is not a schema object", path);
        return NULL;
    }
    json_object *o = json_object_new_object();
    json_object_object_foreach(s, k, v)
    {
        if (!keep_key(k) || strcmp(k, "items") == 0 || strcmp(k, "anyOf") == 0)
            continue;
        if (strcmp(k, "type") == 0 && make_nullable)
            json_object_object_add(o, k, nullable(v));
        else
            json_object_object_add(o, k, json_object_get(v));
    }
    json_object *props, *items, *req, *any;
    if (json_object_object_get_ex(s, "properties", &props)) {
        json_object *np = json_object_new_object();
        json_object *nreq = json_object_new_array();
        json_object_object_get_ex(s, "required", &req);
        json_object_object_foreach(props, pk, pv)
        {
            int required = 0;
            for (size_t i = 0; req && i < json_object_array_length(req); i++)
                if (strcmp(json_object_get_string(json_object_array_get_idx(req, i)), pk) == 0)
                    required = 1;
            char sub[256];
            snprintf(sub, sizeof sub, "%s.%s", path, pk);
            json_object *c = strictify(pv, !required, sub, err, errlen, depth + 1);
            if (!c) {
                json_object_put(np);
                json_object_put(nreq);
                json_object_put(o);
                return NULL;
            }
            json_object_object_add(np, pk, c);
            json_object_array_add(nreq, json_object_new_string(pk));
        }
        json_object_object_add(o, "properties", np);
        json_object_object_add(o, "required", nreq);
        json_object_object_add(o, "additionalProperties", json_object_new_boolean(0));
    } else if (type_has(json_object_object_get(s, "type"), "object")) {
        json_object_object_add(o, "properties", json_object_new_object());
        json_object_object_add(o, "required", json_object_new_array());
        json_object_object_add(o, "additionalProperties", json_object_new_boolean(0));
    }
    if (json_object_object_get_ex(s, "items", &items)) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s[]", path);
        json_object *c = strictify(items, 0, sub, err, errlen, depth + 1);
        if (!c) {
            json_object_put(o);
            return NULL;
        }
        json_object_object_add(o, "items", c);
    }
    if (json_object_object_get_ex(s, "anyOf", &any) && json_object_is_type(any, json_type_array)) {
        json_object *na = json_object_new_array();
        for (size_t i = 0; i < json_object_array_length(any); i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.anyOf[%zu]", path, i);
            json_object *c =
                strictify(json_object_array_get_idx(any, i), 0, sub, err, errlen, depth + 1);
            if (!c) {
                json_object_put(na);
                json_object_put(o);
                return NULL;
            }
            json_object_array_add(na, c);
        }
        json_object_object_add(o, "anyOf", na);
    }
    /* the root item is rebuilt as a plain object by gpt_strict_schema */
    return depth > 1 ? nullable_as_anyof(o, path, err, errlen) : o;
}

json_object *gpt_strict_schema(json_object *extraction, char *err, size_t errlen)
{
    if (!extraction || !type_has(json_object_object_get(extraction, "type"), "object") ||
        !json_object_object_get_ex(extraction, "properties", NULL)) {
        snprintf(err, errlen, "extraction schema: the root must be an object with properties");
        return NULL;
    }
    if (json_object_object_get_ex(json_object_object_get(extraction, "properties"), "email_id",
                                  NULL)) {
        snprintf(err, errlen,
                 "extraction schema: a field named email_id would clash with the "
                 "result key email_id");
        return NULL;
    }
    json_object *item = strictify(extraction, 0, "$", err, errlen, 1);
    if (!item)
        return NULL;
    /* rebuild the item with email_id first (output keys come in schema order) */
    json_object *props = json_object_new_object();
    json_object *eid = json_object_new_object();
    json_object_object_add(eid, "type", json_object_new_string("string"));
    json_object_object_add(eid, "description",
                           json_object_new_string("The id attribute of the <email> block this "
                                                  "result is for, copied exactly."));
    json_object_object_add(props, "email_id", eid);
    json_object *req = json_object_new_array();
    json_object_array_add(req, json_object_new_string("email_id"));
    json_object_object_foreach(json_object_object_get(item, "properties"), k, v)
    {
        json_object_object_add(props, k, json_object_get(v));
        json_object_array_add(req, json_object_new_string(k));
    }
    json_object *ni = json_object_new_object();
    json_object_object_add(ni, "type", json_object_new_string("object"));
    json_object_object_add(ni, "properties", props);
    json_object_object_add(ni, "required", req);
    json_object_object_add(ni, "additionalProperties", json_object_new_boolean(0));
    json_object_put(item);

    json_object *results = json_object_new_object();
    json_object_object_add(results, "type", json_object_new_string("array"));
    json_object_object_add(results, "description",
                           json_object_new_string("One result per <email> block, in any order."));
    json_object_object_add(results, "items", ni);
    json_object *root = json_object_new_object();
    json_object_object_add(root, "type", json_object_new_string("object"));
    json_object *rp = json_object_new_object();
    json_object_object_add(rp, "results", results);
    json_object_object_add(root, "properties", rp);
    json_object *rr = json_object_new_array();
    json_object_array_add(rr, json_object_new_string("results"));
    json_object_object_add(root, "required", rr);
    json_object_object_add(root, "additionalProperties", json_object_new_boolean(0));
    return root;
}

/* ---- validation ---- */

static const char *json_type_name(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        return "null";
    case json_type_boolean:
        return "boolean";
    case json_type_double:
        return "number";
    case json_type_int:
        return "integer";
    case json_type_object:
        return "object";
    case json_type_array:
        return "array";
    case json_type_string:
        return "string";
    }
    return "unknown";
}

static int type_ok(json_object *type, json_object *v)
{
    if (!type)
        return 1;
    const char *t = json_type_name(v);
    if (type_has(type, t))
        return 1;
    if (strcmp(t, "integer") == 0 && type_has(type, "number"))
        return 1;
    if (strcmp(t, "number") == 0 && type_has(type, "integer")) {
        double d = json_object_get_double(v);
        return d == floor(d);
    }
    return 0;
}

static int validate_at(json_object *s, json_object *v, char *path, size_t plen, char *why,
                       size_t whylen, int depth)
{
    if (depth > 32 || !json_object_is_type(s, json_type_object))
        return 0;
    json_object *type = json_object_object_get(s, "type");
    if (!type_ok(type, v)) {
        snprintf(why, whylen, "%s: expected %s, got %s", path,
                 json_object_to_json_string_ext(type, JSON_C_TO_STRING_PLAIN), json_type_name(v));
        return IK_E_INVAL;
    }
    json_object *x;
    if (json_object_object_get_ex(s, "enum", &x) && json_object_is_type(x, json_type_array)) {
        int found = 0;
        for (size_t i = 0; i < json_object_array_length(x); i++)
            if (json_object_equal(json_object_array_get_idx(x, i), v))
                found = 1;
        if (!found && v) {
            snprintf(why, whylen, "%s: value not in enum", path);
            return IK_E_INVAL;
        }
    }
    if (v && (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int))) {
        double d = json_object_get_double(v);
        if (json_object_object_get_ex(s, "minimum", &x) && d < json_object_get_double(x)) {
            snprintf(why, whylen, "%s: %g is below the minimum %g", path, d,
                     json_object_get_double(x));
            return IK_E_INVAL;
        }
        if (json_object_object_get_ex(s, "maximum", &x) && d > json_object_get_double(x)) {
            snprintf(why, whylen, "%s: %g is above the maximum %g", path, d,
                     json_object_get_double(x));
            return IK_E_INVAL;
        }
    }
    if (v && json_object_is_type(v, json_type_object)) {
        json_object *props = json_object_object_get(s, "properties");
        json_object *req = json_object_object_get(s, "required");
        for (size_t i = 0; req && i < json_object_array_length(req); i++) {
            const char *k = json_object_get_string(json_object_array_get_idx(req, i));
            if (!json_object_object_get_ex(v, k, NULL)) {
                snprintf(why, whylen, "%s: missing required property %s", path, k);
                return IK_E_INVAL;
            }
        }
        json_object *ap = json_object_object_get(s, "additionalProperties");
        int closed =
            ap && json_object_is_type(ap, json_type_boolean) && !json_object_get_boolean(ap);
        size_t base = strlen(path);
        json_object_object_foreach(v, k, val)
        {
            json_object *ps = NULL;
            if (!props || !json_object_object_get_ex(props, k, &ps)) {
                if (closed) {
                    snprintf(why, whylen, "%s: unexpected property %s", path, k);
                    return IK_E_INVAL;
                }
                continue;
            }
            snprintf(path + base, plen - base, ".%s", k);
            int rc = validate_at(ps, val, path, plen, why, whylen, depth + 1);
            path[base] = 0;
            if (rc)
                return rc;
        }
    }
    if (v && json_object_is_type(v, json_type_array) && json_object_object_get_ex(s, "items", &x)) {
        size_t base = strlen(path);
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            snprintf(path + base, plen - base, "[%zu]", i);
            int rc =
                validate_at(x, json_object_array_get_idx(v, i), path, plen, why, whylen, depth + 1);
            path[base] = 0;
            if (rc)
                return rc;
        }
    }
    return 0;
}

int gpt_validate(json_object *schema, json_object *value, char *why, size_t whylen)
{
    char path[512] = "$";
    return validate_at(schema, value, path, sizeof path, why, whylen, 0);
}

/* ---- the wire form: what is sent, when it differs from the schema ---- */

/* A short wire name for `name`, unused among the keys of `taken`: its
 * initials ("candidate_name" -> "cn"), else its first 1, 2, ... letters,
 * else the initials and a number. Writes into out (at least 64 bytes). */
static void short_name(const char *name, json_object *taken, char *out, size_t outlen)
{
    size_t k = 0;
    for (const char *p = name; *p && k + 1 < outlen && k < 8; p++)
        if (p == name || p[-1] == '_')
            out[k++] = *p;
    out[k] = 0;
    if (k && !json_object_object_get_ex(taken, out, NULL))
        return;
    size_t n = strlen(name);
    for (size_t len = 1; len <= n && len < outlen; len++) {
        snprintf(out, outlen, "%.*s", (int)len, name);
        if (!json_object_object_get_ex(taken, out, NULL))
            return;
    }
    char ini[16];
    snprintf(ini, sizeof ini, "%.8s", k ? out : "f");
    for (int i = 2;; i++) {
        snprintf(out, outlen, "%.8s%d", ini, i);
        if (!json_object_object_get_ex(taken, out, NULL))
            return;
    }
}

static json_object *compact(json_object *s, json_object **back);

/* The anyOf branches of a sub-schema (a nullable object is {"anyOf":
 * [{object}, {"type": "null"}]}), each compacted into o's "anyOf"; their
 * back maps merge into b, since an answer holds one branch's properties.
 * -1 on OOM (o and b keep what was added; the caller frees them). */
static int compact_branches(json_object *any, json_object *o, json_object *b)
{
    json_object *na = json_object_new_array();
    if (!na)
        return -1;
    json_object_object_add(o, "anyOf", na);
    for (size_t i = 0; i < json_object_array_length(any); i++) {
        json_object *nb = NULL, *c = compact(json_object_array_get_idx(any, i), &nb);
        if (!c)
            return -1;
        json_object_array_add(na, c);
        json_object_object_foreach(nb, wk, wv)
        {
            if (!json_object_object_get_ex(b, wk, NULL))
                json_object_object_add(b, wk, json_object_get(wv));
        }
        json_object_put(nb);
    }
    return 0;
}

/* A copy of the strict sub-schema s with short property names at every
 * level (objects, array items, anyOf branches); each renamed property's
 * description starts with its schema name ("candidate_name: ...") so the
 * meaning travels with it. *back gets, per level, {wire: {"name": full,
 * "props": nested back map}} for gpt_parse_results_wire. New references;
 * NULL on OOM. */
static json_object *compact(json_object *s, json_object **back)
{
    *back = NULL;
    json_object *o = json_object_new_object(), *b = json_object_new_object();
    if (!o || !b)
        goto oom;
    json_object_object_foreach(s, k, v)
    {
        if (strcmp(k, "properties") == 0 || strcmp(k, "required") == 0)
            continue;
        if (strcmp(k, "items") == 0 && json_object_is_type(v, json_type_object)) {
            json_object *nb = NULL, *c = compact(v, &nb);
            if (!c)
                goto oom;
            json_object_object_add(o, k, c);
            /* arrays are mapped element by element with the same map */
            if (json_object_object_length(nb))
                json_object_object_add(b, "[]", nb);
            else
                json_object_put(nb);
            continue;
        }
        if (strcmp(k, "anyOf") == 0 && json_object_is_type(v, json_type_array)) {
            if (compact_branches(v, o, b) < 0)
                goto oom;
            continue;
        }
        json_object_object_add(o, k, json_object_get(v));
    }
    json_object *props;
    if (json_object_object_get_ex(s, "properties", &props)) {
        json_object *np = json_object_new_object(), *req = json_object_new_array();
        json_object_object_add(o, "properties", np);
        json_object_object_add(o, "required", req);
        if (!np || !req)
            goto oom;
        json_object_object_foreach(props, pk, pv)
        {
            char wire[64];
            short_name(pk, np, wire, sizeof wire);
            json_object *nb = NULL, *c = compact(pv, &nb);
            json_object *entry = json_object_new_object();
            if (!c || !entry) {
                json_object_put(c);
                json_object_put(nb);
                json_object_put(entry);
                goto oom;
            }
            json_object *d = json_object_object_get(pv, "description");
            ik_buf desc = {0};
            ik_buf_adds(&desc, pk);
            if (d && json_object_is_type(d, json_type_string)) {
                ik_buf_adds(&desc, ": ");
                ik_buf_adds(&desc, json_object_get_string(d));
            }
            char *ds = ik_buf_take(&desc);
            if (!ds) {
                json_object_put(c);
                json_object_put(nb);
                json_object_put(entry);
                goto oom;
            }
            json_object_object_add(c, "description", json_object_new_string(ds));
            free(ds);
            json_object_object_add(np, wire, c);
            json_object_array_add(req, json_object_new_string(wire));
            json_object_object_add(entry, "name", json_object_new_string(pk));
            if (json_object_object_length(nb))
                json_object_object_add(entry, "props", nb);
            else
                json_object_put(nb);
            json_object_object_add(b, wire, entry);
        }
    }
    *back = b;
    return o;
oom:
    json_object_put(o);
    json_object_put(b);
    return NULL;
}

/* The schema's `confidence` must be an object of per-field numbers for the
 * plugin to fill it from grounding. */
static int confidence_fillable(json_object *extraction, char *err, size_t errlen)
{
    json_object *conf = NULL, *props;
    json_object_object_get_ex(json_object_object_get(extraction, "properties"), "confidence",
                              &conf);
    if (!conf)
        return 0;
    if (!json_object_object_get_ex(conf, "properties", &props) ||
        !json_object_is_type(props, json_type_object)) {
        snprintf(err, errlen,
                 "extraction schema: $.confidence must be an object of per-field numbers to be "
                 "filled from grounding (or set model_confidence = true)");
        return IK_E_CONFIG;
    }
    json_object_object_foreach(props, k, v)
    {
        if (!type_has(json_object_object_get(v, "type"), "number")) {
            snprintf(err, errlen,
                     "extraction schema: $.confidence.%s must be a number to be filled from "
                     "grounding (or set model_confidence = true)",
                     k);
            return IK_E_CONFIG;
        }
    }
    return 0;
}

json_object *gpt_wire_schema(json_object *strict, json_object *extraction, int model_confidence,
                             int compact_keys, json_object **back, char *err, size_t errlen)
{
    *back = NULL;
    json_object *w = NULL;
    if (json_object_deep_copy(strict, &w, NULL) != 0 || !w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    json_object *item = json_object_object_get(
        json_object_object_get(json_object_object_get(w, "properties"), "results"), "items");
    json_object *props = json_object_object_get(item, "properties");
    json_object *req = json_object_object_get(item, "required");
    if (!props || !req) {
        snprintf(err, errlen, "strict schema: no results[].properties");
        json_object_put(w);
        return NULL;
    }
    if (!model_confidence && json_object_object_get_ex(props, "confidence", NULL)) {
        if (confidence_fillable(extraction, err, errlen) != 0) {
            json_object_put(w);
            return NULL;
        }
        json_object_object_del(props, "confidence");
        json_object *nreq = json_object_new_array();
        for (size_t i = 0; i < json_object_array_length(req); i++) {
            json_object *r = json_object_array_get_idx(req, i);
            if (strcmp(json_object_get_string(r), "confidence") != 0)
                json_object_array_add(nreq, json_object_get(r));
        }
        json_object_object_add(item, "required", nreq);
    }
    if (!compact_keys)
        return w;
    json_object *citem = compact(item, back);
    if (!citem) {
        snprintf(err, errlen, "out of memory");
        json_object_put(w);
        return NULL;
    }
    json_object_object_add(
        json_object_object_get(json_object_object_get(w, "properties"), "results"), "items", citem);
    /* the map of the results array: each element by the item's map */
    json_object *top = json_object_new_object();
    if (!top) {
        snprintf(err, errlen, "out of memory");
        json_object_put(*back);
        *back = NULL;
        json_object_put(w);
        return NULL;
    }
    json_object_object_add(top, "[]", *back);
    *back = top;
    return w;
}
