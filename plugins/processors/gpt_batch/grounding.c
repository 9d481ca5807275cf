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
