/* sas.c: SAS token parsing and validation (HMAC-SHA256 via OpenSSL, constant-time compare). */
#include "sas.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sb_url_decode(const char *in, size_t n, char *out, size_t outlen, int plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)in[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int h = hexval((unsigned char)in[i + 1]), l = hexval((unsigned char)in[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = h * 16 + l;
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == 0 || o + 1 >= outlen)
            return -1;
        out[o++] = (char)c;
    }
    if (outlen == 0)
        return -1;
    out[o] = 0;
    return (int)o;
}

int sb_sas_parse(const char *token, sb_sas_token *t, char *err, size_t errlen)
{
    static const char prefix[] = "SharedAccessSignature ";
    memset(t, 0, sizeof *t);
    t->se = -1;
    if (!token || strncmp(token, prefix, sizeof prefix - 1) != 0) {
        snprintf(err, errlen, "token does not start with 'SharedAccessSignature '");
        return SB_SAS_MALFORMED;
    }
    if (strlen(token) > SB_SAS_MAX_TOKEN) {
        snprintf(err, errlen, "token longer than %d bytes", SB_SAS_MAX_TOKEN);
        return SB_SAS_MALFORMED;
    }
    const char *p = token + sizeof prefix - 1;
    int have_sr = 0, have_sig = 0, have_skn = 0;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq) {
            snprintf(err, errlen, "token field without '='");
            return SB_SAS_MALFORMED;
        }
        size_t klen = (size_t)(eq - p);
        const char *v = eq + 1;
        size_t vlen = len - klen - 1;
        if (klen == 2 && strncmp(p, "sr", 2) == 0) {
            if (vlen >= sizeof t->sr_raw || sb_url_decode(v, vlen, t->sr, sizeof t->sr, 0) < 0) {
                snprintf(err, errlen, "token field 'sr' is too long or badly encoded");
                return SB_SAS_MALFORMED;
            }
            memcpy(t->sr_raw, v, vlen);
            t->sr_raw[vlen] = 0;
            have_sr = 1;
        } else if (klen == 3 && strncmp(p, "sig", 3) == 0) {
            if (sb_url_decode(v, vlen, t->sig, sizeof t->sig, 0) < 0) {
                snprintf(err, errlen, "token field 'sig' is too long or badly encoded");
                return SB_SAS_MALFORMED;
            }
            have_sig = 1;
        } else if (klen == 2 && strncmp(p, "se", 2) == 0) {
            if (vlen == 0 || vlen > 12) {
                snprintf(err, errlen, "token field 'se' is not a Unix time");
                return SB_SAS_MALFORMED;
            }
            int64_t se = 0;
            for (size_t i = 0; i < vlen; i++) {
                if (!isdigit((unsigned char)v[i])) {
                    snprintf(err, errlen, "token field 'se' is not a Unix time");
                    return SB_SAS_MALFORMED;
                }
                se = se * 10 + (v[i] - '0');
            }
            t->se = se;
        } else if (klen == 3 && strncmp(p, "skn", 3) == 0) {
            if (sb_url_decode(v, vlen, t->skn, sizeof t->skn, 0) <= 0) {
                snprintf(err, errlen, "token field 'skn' is empty, too long or badly encoded");
                return SB_SAS_MALFORMED;
            }
            have_skn = 1;
        }
        /* unknown fields are ignored, as the service does */
        p += len;
        if (*p == '&')
            p++;
    }
    if (!have_sr || !have_sig || !have_skn || t->se < 0) {
        snprintf(err, errlen, "token lacks one of sr, sig, se, skn");
        return SB_SAS_MALFORMED;
    }
    return 0;
}

int sb_sas_sign(const char *key, const char *sr_raw, int64_t se, char *out, size_t outlen)
{
    char msg[2200];
    int n = snprintf(msg, sizeof msg, "%s\n%lld", sr_raw, (long long)se);
    if (n < 0 || (size_t)n >= sizeof msg || outlen < 45)
        return -1;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)msg, (size_t)n, mac,
              &maclen))
        return -1;
    EVP_EncodeBlock((unsigned char *)out, mac, (int)maclen);
    OPENSSL_cleanse(mac, sizeof mac);
    return 0;
}

int sb_sas_validate(const sb_config *cfg, const char *token, int64_t now_s, sb_sas_token *out,
                    char *err, size_t errlen)
{
    sb_sas_token t;
    int rc = sb_sas_parse(token, &t, err, errlen);
    if (rc < 0)
        return rc;
    const sb_key_cfg *k = sb_config_find_key(cfg, t.skn);
    if (!k) {
        snprintf(err, errlen, "unknown shared access key name '%.64s'", t.skn);
        return SB_SAS_UNKNOWN_KEY;
    }
    char expect[128];
    if (sb_sas_sign(k->key, t.sr_raw, t.se, expect, sizeof expect) < 0) {
        snprintf(err, errlen, "cannot compute the signature");
        return SB_SAS_MALFORMED;
    }
    size_t el = strlen(expect);
    if (strlen(t.sig) != el || CRYPTO_memcmp(expect, t.sig, el) != 0) {
        OPENSSL_cleanse(expect, sizeof expect);
        snprintf(err, errlen, "bad signature for key '%.64s'", t.skn);
        return SB_SAS_BAD_SIGNATURE;
    }
    OPENSSL_cleanse(expect, sizeof expect);
    if (t.se <= now_s) {
        snprintf(err, errlen, "token expired %lld s ago", (long long)(now_s - t.se));
        return SB_SAS_EXPIRED;
    }
    if (out)
        *out = t;
    return 0;
}

int sb_sas_uri_path(const char *uri, char *out, size_t outlen)
{
    const char *p = strstr(uri, "://");
    if (p) {
        p += 3;
        p += strcspn(p, "/?");
    } else {
        p = uri;
    }
    while (*p == '/')
        p++;
    size_t n = strcspn(p, "?#");
    while (n > 0 && p[n - 1] == '/')
        n--;
    if (n >= outlen)
        return -1;
    memcpy(out, p, n);
    out[n] = 0;
    return 0;
}

int sb_host_parse(const char *s, size_t n, char *host, size_t hostlen, int *port)
{
    const char *at = memchr(s, '@', n);
    while (at) { /* the host follows the last '@' of the userinfo */
        n -= (size_t)(at + 1 - s);
        s = at + 1;
        at = memchr(s, '@', n);
    }
    const char *h = s, *ps = NULL;
    size_t hl = n;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return -1;
        h = s + 1;
        hl = (size_t)(close - h);
        size_t rest = n - (size_t)(close + 1 - s);
        if (rest > 0) {
            if (close[1] != ':')
                return -1;
            ps = close + 2;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        /* one ':' separates the port; more are a bare IPv6 address without one */
        if (colon && !memchr(colon + 1, ':', n - (size_t)(colon + 1 - s))) {
            hl = (size_t)(colon - s);
            ps = colon + 1;
        }
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    for (size_t i = 0; i < hl; i++)
        host[i] = (char)tolower((unsigned char)h[i]);
    host[hl] = 0;
    *port = -1;
    if (ps) {
        size_t pl = n - (size_t)(ps - s);
        long v = 0;
        if (pl == 0 || pl > 5)
            return -1;
        for (size_t i = 0; i < pl; i++) {
            if (!isdigit((unsigned char)ps[i]))
                return -1;
            v = v * 10 + (ps[i] - '0');
        }
        if (v < 1 || v > 65535)
            return -1;
        *port = (int)v;
    }
    return 0;
}

int sb_sas_uri_host(const char *uri, char *host, size_t hostlen, int *port)
{
    const char *p = strstr(uri, "://");
    if (!p || p == uri || strcspn(uri, "/?#") < (size_t)(p - uri))
        return -1;
    p += 3;
    return sb_host_parse(p, strcspn(p, "/?#"), host, hostlen, port);
}

static int is_loopback(const char *host)
{
    return strcmp(host, "localhost") == 0 || strcmp(host, "127.0.0.1") == 0 ||
           strcmp(host, "::1") == 0;
}

int sb_sas_names_endpoint(const char *uri, const char *host, int port, char *err, size_t errlen)
{
    char h[256];
    int p;
    if (sb_sas_uri_host(uri, h, sizeof h, &p) < 0) {
        snprintf(err, errlen, "resource URI '%.200s' does not name a host", uri);
        return 0;
    }
    if (strcasecmp(h, host) != 0 && !(is_loopback(h) && is_loopback(host))) {
        snprintf(err, errlen,
                 "resource URI '%.200s' is for host '%.100s', not this emulator's '%.100s'", uri, h,
                 host);
        return 0;
    }
    if (p >= 0 && p != port) {
        snprintf(err, errlen, "resource URI '%.200s' is for port %d, not this emulator's %d", uri,
                 p, port);
        return 0;
    }
    return 1;
}

int sb_sas_covers(const char *scope, const char *entity)
{
    size_t n = strlen(scope);
    if (n == 0)
        return 1;
    if (strncasecmp(scope, entity, n) != 0)
        return 0;
    return entity[n] == 0 || entity[n] == '/';
}
