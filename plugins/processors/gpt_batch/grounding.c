/*
 * grounding.c: does a value the model extracted occur in the email it was
 * extracted from? Structured output guarantees the shape of an answer, not
 * that its values came from the right email; with many emails in one
 * request the costly mistake is an answer that carries another email's
 * address or phone number. request.c checks each answer's identifying
 * fields against its own email's text, and against the other emails of the
 * request: found only in another email means the answers were crossed.
 *
 * Matching is forgiving of the forms a model rewrites: case everywhere,
 * runs of whitespace in names, scheme/"www."/trailing slash in URLs, and
 * for phone numbers only the digits count (the last 7 must occur in order
 * in the text's digits, ignoring separators).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "gpt_internal.h"

/* Lower-cases s into a new string with whitespace runs folded to one space.
 * Caller frees; NULL on OOM. */
static char *fold(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    if (!o)
        return NULL;
    size_t k = 0;
    int space = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isspace(c)) {
            space = 1;
            continue;
        }
        if (space && k > 0)
            o[k++] = ' ';
        space = 0;
        o[k++] = (char)tolower(c);
    }
    o[k] = 0;
    return o;
}

/* The digits of s, in order. Caller frees. */
static char *digits(const char *s, size_t n, size_t *len)
{
    char *o = malloc(n + 1);
    if (!o)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isdigit((unsigned char)s[i]))
            o[k++] = s[i];
    o[k] = 0;
    *len = k;
    return o;
}

/* Strips "http(s)://", "www." and trailing slashes from a folded URL. */
static const char *url_core(char *u)
{
    const char *p = u;
    if (strncmp(p, "https://", 8) == 0)
        p += 8;
    else if (strncmp(p, "http://", 7) == 0)
        p += 7;
    if (strncmp(p, "www.", 4) == 0)
        p += 4;
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] == '/')
        u[(p - u) + --n] = 0;
    return p;
}

int gpt_grounded(const char *field, const char *value, const char *text, size_t tlen)
{
    if (!value || !value[0])
        return 1; /* nothing claimed */
    size_t vlen = strlen(value);
    int found = -1;
    if (strcmp(field, "phone") == 0) {
        size_t dv, dt;
        char *v = digits(value, vlen, &dv), *t = digits(text, tlen, &dt);
        if (v && t) {
            /* country codes and trunk prefixes come and go: the subscriber
             * part, the last 7 digits, must be there */
            const char *tail = dv > 7 ? v + dv - 7 : v;
            found = dv == 0 ? 1 : strstr(t, tail) != NULL;
        }
        free(v);
        free(t);
        return found < 0 ? IK_E_NOMEM : found;
    }
    char *v = fold(value, vlen), *t = fold(text, tlen);
    if (v && t) {
        const char *needle = v;
        if (strcmp(field, "linkedin_url") == 0 || strcmp(field, "website") == 0)
            needle = url_core(v);
        found = !needle[0] || strstr(t, needle) != NULL;
    }
    free(v);
    free(t);
    return found < 0 ? IK_E_NOMEM : found;
}

int gpt_grounding_level(const char *field, const char *value, const char *text, size_t tlen)
{
    if (!value || !value[0])
        return GPT_GROUND_NOT_FOUND;
    if (memmem(text, tlen, value, strlen(value)))
        return GPT_GROUND_VERBATIM;
    int g = gpt_grounded(field, value, text, tlen);
    if (g < 0)
        return g;
    return g ? GPT_GROUND_NORMALIZED : GPT_GROUND_NOT_FOUND;
}

/* The confidence a grounding level stands for (documented in README.md). */
static json_object *level_number(int level)
{
    switch (level) {
    case GPT_GROUND_VERBATIM:
        return json_object_new_double_s(0.9, "0.9");
    case GPT_GROUND_NORMALIZED:
        return json_object_new_double_s(0.6, "0.6");
    case GPT_GROUND_NOT_FOUND:
        return json_object_new_double_s(0.2, "0.2");
    default: /* null: nothing claimed */
        return json_object_new_double_s(0, "0");
    }
}

/* The weakest grounding of the values inside v (an object's or array's
 * strings, under the field's name), GPT_GROUND_NULL when none is set,
 * IK_E_NOMEM. */
static int value_level(const char *field, json_object *v, const char *text, size_t tlen, int depth)
{
    if (!v || depth > 16)
        return GPT_GROUND_NULL;
    if (json_object_is_type(v, json_type_string))
        return json_object_get_string_len(v) == 0
                   ? GPT_GROUND_NULL
                   : gpt_grounding_level(field, json_object_get_string(v), text, tlen);
    int worst = GPT_GROUND_NULL;
    if (json_object_is_type(v, json_type_object)) {
        json_object_object_foreach(v, k, sub)
        {
            (void)k;
            int l = value_level(field, sub, text, tlen, depth + 1);
            if (l < 0)
                return l;
            if (l != GPT_GROUND_NULL && (worst == GPT_GROUND_NULL || l < worst))
                worst = l;
        }
        return worst;
    }
    if (json_object_is_type(v, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            int l = value_level(field, json_object_array_get_idx(v, i), text, tlen, depth + 1);
            if (l < 0)
                return l;
            if (l != GPT_GROUND_NULL && (worst == GPT_GROUND_NULL || l < worst))
                worst = l;
        }
        return worst;
    }
    /* a number or boolean: as its JSON text */
    return gpt_grounding_level(field, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
                               text, tlen);
}

int gpt_fill_confidence(json_object *extraction_schema, json_object *ext, const char *text,
                        size_t tlen)
{
    json_object *conf_schema = NULL, *fields;
    json_object_object_get_ex(json_object_object_get(extraction_schema, "properties"), "confidence",
                              &conf_schema);
    if (!conf_schema || !json_object_object_get_ex(conf_schema, "properties", &fields))
        return 0;
    json_object *conf = json_object_new_object();
    if (!conf)
        return IK_E_NOMEM;
    json_object_object_foreach(fields, f, fs)
    {
        (void)fs;
        int l = value_level(f, json_object_object_get(ext, f), text, tlen, 0);
        json_object *n = l < 0 ? NULL : level_number(l);
        if (!n || json_object_object_add(conf, f, n) != 0) {
            json_object_put(n); /* a failed add does not take it */
            json_object_put(conf);
            return IK_E_NOMEM;
        }
    }
    if (json_object_object_add(ext, "confidence", conf) != 0) {
        json_object_put(conf);
        return IK_E_NOMEM;
    }
    return 0;
}
