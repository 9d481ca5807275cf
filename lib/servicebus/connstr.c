/*
 * connstr.c: Azure Service Bus connection strings (see connstr.h). Parts are
 * `;`-separated Key=Value pairs split at the first `=`; keys are matched
 * without regard to case (as .NET does; the JS SDK's spelling is the same
 * one), values are copied trimmed. Errors name the part by its position and
 * key and never quote a value, except the Endpoint's, which is no secret.
 */
#include "connstr.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <intake/plugin.h>
#include <openssl/crypto.h>

enum { K_ENDPOINT, K_KEY_NAME, K_KEY, K_SAS, K_ENTITY, K_EMULATOR, K_COUNT };

static const char *const key_names[K_COUNT] = {
    "Endpoint",   "SharedAccessKeyName",    "SharedAccessKey", "SharedAccessSignature",
    "EntityPath", "UseDevelopmentEmulator",
};

#define SAS_PREFIX "SharedAccessSignature "

/* One part as found: where its value is (not NUL-terminated) and its position. */
typedef struct part {
    const char *v;
    size_t vlen;
    int index; /* 1-based position among the `;`-separated parts; 0: absent */
} part;

static void fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Trims s[0..*len) in place: returns the new start, *len the new length. */
static const char *trim(const char *s, size_t *len)
{
    size_t n = *len;
    while (n && is_space(*s)) {
        s++;
        n--;
    }
    while (n && is_space(s[n - 1]))
        n--;
    *len = n;
    return s;
}

static int find_key(const char *k, size_t klen)
{
    for (int i = 0; i < K_COUNT; i++)
        if (strlen(key_names[i]) == klen && strncasecmp(key_names[i], k, klen) == 0)
            return i;
    return -1;
}

/*
 * Splits text into the known parts (unknown keys are skipped). 0, or
 * IK_E_PARSE for a part without `=`, a known key given twice or with an
 * empty value. Nothing is allocated.
 */
static int split_parts(const char *text, part parts[K_COUNT], char *err, size_t errlen)
{
    const char *p = text;
    for (int index = 1;; index++) {
        const char *semi = strchr(p, ';');
        size_t len = semi ? (size_t)(semi - p) : strlen(p);
        const char *s = trim(p, &len);
        if (len) {
            const char *eq = memchr(s, '=', len);
            if (!eq) {
                fail(err, errlen, "part %d: no '=' (want Key=Value)", index);
                return IK_E_PARSE;
            }
            size_t klen = (size_t)(eq - s), vlen = len - klen - 1;
            const char *k = trim(s, &klen), *v = trim(eq + 1, &vlen);
            int id = find_key(k, klen);
            if (id >= 0 && parts[id].index) {
                fail(err, errlen, "part %d (%s): given twice (first in part %d)", index,
                     key_names[id], parts[id].index);
                return IK_E_PARSE;
            }
            if (id >= 0 && !vlen) {
                fail(err, errlen, "part %d (%s): empty value", index, key_names[id]);
                return IK_E_PARSE;
            }
            if (id >= 0)
                parts[id] = (part){v, vlen, index};
        }
        if (!semi)
            return 0;
        p = semi + 1;
    }
}

/* Copies a printable, shortened form of an Endpoint for an error message. */
static void quote_endpoint(const part *e, char *out, size_t size)
{
    size_t n = e->vlen < size - 1 ? e->vlen : size - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)e->v[i];
        out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[n] = '\0';
}

static int host_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

/*
 * Reads the Endpoint (scheme://host[:port][/]) into out->host and
 * out->port. 0, IK_E_NOMEM, or IK_E_PARSE quoting the Endpoint.
 */
static int parse_endpoint(const part *e, ik_sb_connstr *out, char *err, size_t errlen)
{
    char shown[128];
    quote_endpoint(e, shown, sizeof shown);
    static const char *const schemes[] = {"sb://", "amqps://", "amqp://"};
    const char *p = NULL, *end = e->v + e->vlen;
    for (size_t i = 0; i < sizeof schemes / sizeof *schemes && !p; i++) {
        size_t sl = strlen(schemes[i]);
        if (e->vlen >= sl && strncasecmp(e->v, schemes[i], sl) == 0)
            p = e->v + sl;
    }
    if (!p) {
        fail(err, errlen, "part %d (Endpoint): '%s' does not start with sb://, amqps:// or amqp://",
             e->index, shown);
        return IK_E_PARSE;
    }
    const char *h = p;
    if (p < end && *p == '[') { /* an IPv6 address, kept with its brackets */
        while (p < end && (isxdigit((unsigned char)*p) || *p == ':' || *p == '.' || *p == '['))
            p++;
        if (p < end && *p == ']')
            p++;
        else
            p = h; /* no closing bracket: reported as an empty host below */
    } else {
        while (p < end && host_char(*p))
            p++;
    }
    if (p == h) {
        fail(err, errlen, "part %d (Endpoint): '%s' has no host", e->index, shown);
        return IK_E_PARSE;
    }
    size_t hlen = (size_t)(p - h);
    long port = 0;
    if (p < end && *p == ':') {
        const char *d = ++p;
        while (p < end && isdigit((unsigned char)*p) && p - d < 6)
            port = port * 10 + (*p++ - '0');
        if (p == d || (p < end && isdigit((unsigned char)*p)) || port < 1 || port > 65535) {
            fail(err, errlen, "part %d (Endpoint): '%s' has a port outside 1..65535", e->index,
                 shown);
            return IK_E_PARSE;
        }
    }
    if (p < end && *p == '/')
        p++;
    if (p != end) {
        fail(err, errlen,
             "part %d (Endpoint): '%s': unexpected '%c' at character %zu (want "
             "sb://host[:port][/])",
             e->index, shown, isprint((unsigned char)*p) ? *p : '?', (size_t)(p - e->v) + 1);
        return IK_E_PARSE;
    }
    out->host = strndup(h, hlen);
    out->port = (int)port;
    return out->host ? 0 : IK_E_NOMEM;
}

/* Checks which credentials were given together. 0 or IK_E_PARSE. */
static int check_credentials(const part parts[K_COUNT], char *err, size_t errlen)
{
    const part *kn = &parts[K_KEY_NAME], *k = &parts[K_KEY], *sas = &parts[K_SAS];
    if (sas->index && (kn->index || k->index)) {
        fail(err, errlen, "part %d (SharedAccessSignature): cannot be combined with %s (part %d)",
             sas->index, kn->index ? "SharedAccessKeyName" : "SharedAccessKey",
             kn->index ? kn->index : k->index);
        return IK_E_PARSE;
    }
    if (kn->index && !k->index) {
        fail(err, errlen, "part %d (SharedAccessKeyName): no SharedAccessKey goes with it",
             kn->index);
        return IK_E_PARSE;
    }
    if (k->index && !kn->index) {
        fail(err, errlen, "part %d (SharedAccessKey): no SharedAccessKeyName goes with it",
             k->index);
        return IK_E_PARSE;
    }
    if (!k->index && !sas->index) {
        fail(err, errlen, "neither SharedAccessKey nor SharedAccessSignature is given");
        return IK_E_PARSE;
    }
    if (sas->index &&
        (sas->vlen <= strlen(SAS_PREFIX) || strncmp(sas->v, SAS_PREFIX, strlen(SAS_PREFIX)))) {
        fail(err, errlen, "part %d (SharedAccessSignature): does not start with '%s'", sas->index,
             SAS_PREFIX);
        return IK_E_PARSE;
    }
    return 0;
}

/* strndup of a part's value, or NULL when the part is absent (*oom set on failure). */
static char *copy_part(const part *p, int *oom)
{
    if (!p->index)
        return NULL;
    char *s = strndup(p->v, p->vlen);
    if (!s)
        *oom = 1;
    return s;
}

int ik_sb_connstr_parse(const char *text, ik_sb_connstr *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    if (!text) {
        fail(err, errlen, "no connection string");
        return IK_E_PARSE;
    }
    part parts[K_COUNT] = {{0}};
    int rc = split_parts(text, parts, err, errlen);
    if (rc)
        return rc;
    if (!parts[K_ENDPOINT].index) {
        fail(err, errlen, "no Endpoint (want Endpoint=sb://host[:port]/)");
        return IK_E_PARSE;
    }
    rc = parse_endpoint(&parts[K_ENDPOINT], out, err, errlen);
    rc = rc ? rc : check_credentials(parts, err, errlen);
    if (rc) {
        ik_sb_connstr_free(out); /* the host, when the credentials were wrong */
        return rc;
    }
    int oom = 0;
    out->key_name = copy_part(&parts[K_KEY_NAME], &oom);
    out->key = copy_part(&parts[K_KEY], &oom);
    out->sas = copy_part(&parts[K_SAS], &oom);
    out->entity_path = copy_part(&parts[K_ENTITY], &oom);
    out->use_emulator = parts[K_EMULATOR].vlen == 4 && memcmp(parts[K_EMULATOR].v, "true", 4) == 0;
    if (oom) {
        ik_sb_connstr_free(out);
        fail(err, errlen, "out of memory");
        return IK_E_NOMEM;
    }
    return 0;
}

/* Frees what a parse filled, wiping the secrets first. */
void ik_sb_connstr_free(ik_sb_connstr *cs)
{
    if (!cs)
        return;
    if (cs->key)
        OPENSSL_cleanse(cs->key, strlen(cs->key));
    if (cs->sas)
        OPENSSL_cleanse(cs->sas, strlen(cs->sas));
    free(cs->host);
    free(cs->key_name);
    free(cs->key);
    free(cs->sas);
    free(cs->entity_path);
    memset(cs, 0, sizeof *cs);
}
