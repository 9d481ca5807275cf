/*
 * control_http.c: parsing and checks of control requests for the admin
 * server (see control_http.h). Everything here reads outside input: the
 * URL, the body and the Authorization header come from the network.
 */
#include "control_http.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "error.h"

/* 1 for a byte a segment may hold. */
static int seg_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-' || c == '#';
}

/* Copies the segment at *p (up to '/' or the end) into out and moves *p past
 * it and its '/'; 0, or -1 when empty, too long or holding another byte. */
static int take_segment(const char **p, char *out)
{
    size_t n = 0;
    const char *s = *p;
    while (s[n] && s[n] != '/') {
        if (n >= IK_CONTROL_SEGMENT_MAX || !seg_char(s[n]))
            return -1;
        out[n] = s[n];
        n++;
    }
    if (n == 0)
        return -1;
    out[n] = '\0';
    *p = s[n] == '/' ? s + n + 1 : s + n;
    return s[n] == '/' && !s[n + 1] ? -1 : 0; /* a trailing slash after the last one */
}

ik_control_route_kind ik_control_route_parse(const char *url, ik_control_route *r)
{
    size_t plen = strlen(IK_CONTROL_PREFIX);
    if (!url || strncmp(url, IK_CONTROL_PREFIX, plen) != 0)
        return IK_ROUTE_OTHER;
    const char *p = url + plen;
    if (!*p || (p[0] == '/' && !p[1]))
        return IK_ROUTE_LIST;
    if (*p != '/')
        return IK_ROUTE_OTHER; /* "/api/v1/controls" is another path */
    p++;
    for (int i = 0; i < 3; i++) {
        if (!*p || take_segment(&p, r->seg[i]) != 0)
            return IK_ROUTE_BAD;
    }
    return *p ? IK_ROUTE_BAD : IK_ROUTE_COMMAND;
}

int ik_control_body_parse(const char *body, size_t len, json_object **out, char *why, size_t whylen)
{
    *out = NULL;
    size_t start = 0;
    while (start < len && strchr(" \t\r\n", body[start]) && body[start])
        start++;
    if (start == len)
        return 0;
    if (len > IK_CONTROL_BODY_MAX) {
        snprintf(why, whylen, "body of %zu bytes is over the limit of %d", len,
                 IK_CONTROL_BODY_MAX);
        return IK_E_PARSE;
    }
    json_tokener *tok = json_tokener_new_ex(IK_CONTROL_JSON_DEPTH);
    if (!tok) {
        snprintf(why, whylen, "out of memory");
        return IK_E_NOMEM;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT); /* no trailing commas */
    json_object *v = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t at = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (e == json_tokener_continue) {
        json_object_put(v);
        snprintf(why, whylen, "invalid JSON at byte %zu: the body ends inside a value", len);
        return IK_E_PARSE;
    }
    if (e != json_tokener_success) {
        json_object_put(v);
        snprintf(why, whylen, "invalid JSON at byte %zu: %s", at, json_tokener_error_desc(e));
        return IK_E_PARSE;
    }
    for (size_t i = at; i < len; i++) {
        if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r' && body[i] != '\n') {
            json_object_put(v);
            snprintf(why, whylen, "invalid JSON at byte %zu: text after the JSON value", i);
            return IK_E_PARSE;
        }
    }
    *out = v;
    return 0;
}

int ik_control_bearer_ok(const char *header, const char *want)
{
    if (!header || !want)
        return 0;
    static const char scheme[] = "Bearer ";
    if (strncasecmp(header, scheme, sizeof scheme - 1) != 0)
        return 0;
    const char *got = header + sizeof scheme - 1;
    size_t glen = strlen(got), wlen = strlen(want);
    /* Every byte of want is compared whatever got holds; a length
     * difference is folded into the same accumulator. */
    volatile unsigned char diff = (unsigned char)(glen != wlen);
    for (size_t i = 0; i < wlen; i++) {
        unsigned char g = i < glen ? (unsigned char)got[i] : 0;
        diff |= (unsigned char)(g ^ (unsigned char)want[i]);
    }
    return diff == 0 && wlen > 0;
}

int ik_admin_listen_is_loopback(const char *listen)
{
    if (!listen)
        return 0;
    const char *colon = strrchr(listen, ':');
    size_t hostlen = colon ? (size_t)(colon - listen) : strlen(listen);
    char host[64];
    if (hostlen == 0 || hostlen >= sizeof host)
        return 0;
    memcpy(host, listen, hostlen);
    host[hostlen] = '\0';
    if (strcmp(host, "localhost") == 0)
        return 1;
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) != 1)
        return 0;
    return (ntohl(a.s_addr) >> 24) == 127;
}
