/*
 * multipart.c: a strict multipart/form-data parser for mock-openai's file
 * upload (see multipart.h). It checks the framing the way a real server
 * would reject it: a boundary that the Content-Type announces, CRLF line
 * ends, a Content-Disposition: form-data with a name on every part, and a
 * closing delimiter. Parts point into the body, so a 200 MB upload is not
 * copied here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "multipart.h"

#define MP_MAX_PARTS    64
#define MP_MAX_BOUNDARY 70    /* RFC 2046 */
#define MP_MAX_HEADERS  16384 /* bytes of headers per part */

static void fail(char *err, size_t errn, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errn, fmt, ap);
    va_end(ap);
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && is_ws(*p))
        p++;
    return p;
}

/* RFC 7230 token characters: what a parameter name or bare value is made of. */
static int is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Finds parameter key in a header value "type; k=v; k2=\"v 2\"" spanning
 * [p, end). 1: found, *out a new string; 0: absent; -1: malformed or out of
 * memory, with err set. Quoted values may escape a character with '\'. */
static int header_param(const char *p, const char *end, const char *key, char **out, char *err,
                        size_t errn, const char *what)
{
    *out = NULL;
    const char *semi = memchr(p, ';', (size_t)(end - p));
    p = semi ? semi : end;
    while (p < end) {
        p = skip_ws(p + 1, end); /* past ';' */
        if (p == end)
            break; /* a trailing ';' is tolerated, as by most servers */
        const char *ks = p;
        while (p < end && is_tchar(*p))
            p++;
        const char *ke = p;
        p = skip_ws(p, end);
        if (ke == ks || p == end || *p != '=') {
            free(*out);
            *out = NULL;
            fail(err, errn, "%s: malformed parameter (expected name=value)", what);
            return -1;
        }
        p = skip_ws(p + 1, end);
        char *val = malloc((size_t)(end - p) + 1);
        if (!val) {
            free(*out);
            *out = NULL;
            fail(err, errn, "out of memory");
            return -1;
        }
        size_t vl = 0;
        if (p < end && *p == '"') {
            p++;
            while (p < end && *p != '"') {
                if (*p == '\\' && p + 1 < end)
                    p++;
                val[vl++] = *p++;
            }
            if (p == end) {
                free(val);
                free(*out);
                *out = NULL;
                fail(err, errn, "%s: unterminated quoted string", what);
                return -1;
            }
            p++; /* closing quote */
        } else {
            while (p < end && *p != ';' && !is_ws(*p))
                val[vl++] = *p++;
        }
        val[vl] = 0;
        p = skip_ws(p, end);
        if (p < end && *p != ';') {
            free(val);
            free(*out);
            *out = NULL;
            fail(err, errn, "%s: unexpected text after parameter '%.*s'", what, (int)(ke - ks), ks);
            return -1;
        }
        if ((size_t)(ke - ks) == strlen(key) && strncasecmp(ks, key, (size_t)(ke - ks)) == 0) {
            if (*out) {
                free(val);
                free(*out);
                *out = NULL;
                fail(err, errn, "%s: parameter '%s' given twice", what, key);
                return -1;
            }
            *out = val;
        } else {
            free(val);
        }
    }
    return *out ? 1 : 0;
}

/* The boundary from a Content-Type header, into bnd (NUL-terminated). */
static int get_boundary(const char *ct, char *bnd, size_t bn, char *err, size_t errn)
{
    if (!ct) {
        fail(err, errn, "no Content-Type header (expected multipart/form-data)");
        return -1;
    }
    const char *end = ct + strlen(ct);
    const char *p = skip_ws(ct, end);
    static const char type[] = "multipart/form-data";
    if (strncasecmp(p, type, sizeof type - 1) != 0 ||
        !(p[sizeof type - 1] == 0 || p[sizeof type - 1] == ';' || is_ws(p[sizeof type - 1]))) {
        fail(err, errn, "Content-Type is '%.100s', expected multipart/form-data", ct);
        return -1;
    }
    char *b = NULL;
    int rc = header_param(p, end, "boundary", &b, err, errn, "Content-Type");
    if (rc < 0)
        return -1;
    if (rc == 0) {
        fail(err, errn, "Content-Type has no boundary parameter");
        return -1;
    }
    size_t l = strlen(b);
    if (l == 0 || l > MP_MAX_BOUNDARY || strpbrk(b, "\r\n")) {
        free(b);
        fail(err, errn, "the boundary must be 1 to %d characters without line breaks",
             MP_MAX_BOUNDARY);
        return -1;
    }
    snprintf(bnd, bn, "--%s", b);
    free(b);
    return 0;
}

/* Reads one part's header block [p, end) (CRLF-separated lines) into part. */
static int part_headers(const char *p, const char *end, size_t idx, mp_part *part, char *err,
                        size_t errn)
{
    char what[64];
    snprintf(what, sizeof what, "part %zu Content-Disposition", idx);
    int seen = 0;
    while (p < end) {
        const char *le = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!le)
            le = end;
        const char *colon = memchr(p, ':', (size_t)(le - p));
        const char *ne = p;
        while (ne < le && is_tchar(*ne))
            ne++;
        if (!colon || ne != colon || ne == p) {
            /* the line is not NUL-terminated: print at most its own bytes */
            int ll = le - p < 60 ? (int)(le - p) : 60;
            fail(err, errn, "part %zu: malformed header line '%.*s'", idx, ll, p);
            return -1;
        }
        const char *v = skip_ws(colon + 1, le), *ve = le;
        while (ve > v && is_ws(ve[-1]))
            ve--;
        if ((size_t)(ne - p) == 19 && strncasecmp(p, "Content-Disposition", 19) == 0) {
            if (seen) {
                fail(err, errn, "part %zu: two Content-Disposition headers", idx);
                return -1;
            }
            seen = 1;
            if ((size_t)(ve - v) < 9 || strncasecmp(v, "form-data", 9) != 0 ||
                !(v + 9 == ve || v[9] == ';' || is_ws(v[9]))) {
                fail(err, errn, "part %zu: Content-Disposition is not form-data", idx);
                return -1;
            }
            if (header_param(v, ve, "name", &part->name, err, errn, what) < 0)
                return -1;
            if (header_param(v, ve, "filename", &part->filename, err, errn, what) < 0)
                return -1;
        }
        p = le == end ? end : le + 2;
    }
    if (!seen) {
        fail(err, errn, "part %zu has no Content-Disposition: form-data header", idx);
        return -1;
    }
    if (!part->name || !part->name[0]) {
        fail(err, errn, "part %zu: Content-Disposition has no name", idx);
        return -1;
    }
    return 0;
}

int mp_parse(const char *content_type, const char *body, size_t len, mp_form *out, char *err,
             size_t errn)
{
    memset(out, 0, sizeof *out);
    char delim[MP_MAX_BOUNDARY + 8];
    if (get_boundary(content_type, delim, sizeof delim, err, errn) != 0)
        return -1;
    size_t dl = strlen(delim);
    /* "\r\n--boundary": every delimiter after the first is preceded by CRLF */
    char crdelim[MP_MAX_BOUNDARY + 12];
    snprintf(crdelim, sizeof crdelim, "\r\n%s", delim);
    const char *end = body + len, *p;
    if (len >= dl && memcmp(body, delim, dl) == 0) {
        p = body;
    } else {
        /* a preamble before the first delimiter is allowed and ignored */
        p = body ? memmem(body, len, crdelim, dl + 2) : NULL;
        if (!p) {
            fail(err, errn, "the body does not contain the boundary given in Content-Type");
            return -1;
        }
        p += 2;
    }
    mp_part *parts = calloc(MP_MAX_PARTS, sizeof *parts);
    if (!parts) {
        fail(err, errn, "out of memory");
        return -1;
    }
    out->parts = parts;
    for (size_t idx = 1;; idx++) {
        p += dl; /* at a delimiter */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
            if (idx == 1) {
                fail(err, errn, "the body has no parts");
                goto bad;
            }
            break; /* the closing delimiter; an epilogue is ignored */
        }
        p = skip_ws(p, end); /* transport padding */
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            if (p == end)
                fail(err, errn, "the body ends without the closing boundary (%s--)", delim);
            else
                fail(err, errn, "part %zu: the boundary line does not end with CRLF", idx);
            goto bad;
        }
        p += 2;
        if (p == end) {
            fail(err, errn, "the body ends without the closing boundary (%s--)", delim);
            goto bad;
        }
        if (idx > MP_MAX_PARTS) {
            fail(err, errn, "more than %d parts", MP_MAX_PARTS);
            goto bad;
        }
        mp_part *part = &parts[out->n++];
        const char *hend, *cstart;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            hend = p;
            cstart = p + 2;
        } else {
            size_t win = (size_t)(end - p) < MP_MAX_HEADERS ? (size_t)(end - p) : MP_MAX_HEADERS;
            hend = memmem(p, win, "\r\n\r\n", 4);
            if (!hend) {
                fail(err, errn, "part %zu: headers not ended by an empty line (CRLF CRLF)", idx);
                goto bad;
            }
            cstart = hend + 4;
        }
        if (part_headers(p, hend, idx, part, err, errn) != 0)
            goto bad;
        const char *next = memmem(cstart, (size_t)(end - cstart), crdelim, dl + 2);
        if (!next) {
            fail(err, errn, "part %zu ('%.60s') is not ended by a boundary", idx, part->name);
            goto bad;
        }
        part->data = cstart;
        part->len = (size_t)(next - cstart);
        p = next + 2;
    }
    return 0;
bad:
    mp_free(out);
    return -1;
}

void mp_free(mp_form *f)
{
    if (!f->parts)
        return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->parts[i].name);
        free(f->parts[i].filename);
    }
    free(f->parts);
    f->parts = NULL;
    f->n = 0;
}
