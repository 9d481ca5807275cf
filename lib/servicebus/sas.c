/*
 * sas.c: Shared Access Signature tokens (see sas.h): HMAC-SHA256 with
 * OpenSSL over "<encoded uri>\n<expiry>", the key's bytes as written, the
 * signature base64 then URL-encoded, as the official SDKs make them.
 * Intermediate copies of the signature are wiped before they are freed.
 */
#include "sas.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/* The characters encodeURIComponent leaves as they are. */
static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           strchr("-_.!~*'()", c) != NULL;
}

char *ik_sb_url_encode(const char *s)
{
    if (!s)
        return NULL;
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (unreserved(*p)) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

/*
 * The URL-encoded base64 HMAC-SHA256 of `text` under `key` (malloc'd, a
 * secret: the caller wipes and frees it), or NULL when out of memory.
 */
static char *signature(const char *key, const char *text)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)text, strlen(text), mac,
              &mac_len))
        return NULL;
    char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    EVP_EncodeBlock((unsigned char *)b64, mac, (int)mac_len);
    char *enc = ik_sb_url_encode(b64);
    OPENSSL_cleanse(mac, sizeof mac);
    OPENSSL_cleanse(b64, sizeof b64);
    return enc;
}

/* Wipes and frees a secret string. */
static void free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

char *ik_sb_sas_token(const char *resource_uri, const char *key_name, const char *key,
                      int64_t expiry_unix)
{
    if (!resource_uri || !key_name || !key)
        return NULL;
    char *sr = ik_sb_url_encode(resource_uri), *sig = NULL, *to_sign = NULL, *token = NULL;
    if (!sr)
        return NULL;
    if (asprintf(&to_sign, "%s\n%" PRId64, sr, expiry_unix) < 0)
        to_sign = NULL;
    if (to_sign)
        sig = signature(key, to_sign);
    if (sig && asprintf(&token, "SharedAccessSignature sr=%s&sig=%s&se=%" PRId64 "&skn=%s", sr, sig,
                        expiry_unix, key_name) < 0)
        token = NULL;
    free(sr);
    free(to_sign);
    free_secret(sig);
    return token;
}

int64_t ik_sb_sas_expiry(const char *sas)
{
    static const char prefix[] = "SharedAccessSignature ";
    if (!sas || strncmp(sas, prefix, sizeof prefix - 1) != 0)
        return 0;
    /* Fields are `&`-separated after the prefix; "se=" starts one of them. */
    for (const char *f = sas + sizeof prefix - 1; f;
         f = strchr(f, '&') ? strchr(f, '&') + 1 : NULL) {
        if (strncmp(f, "se=", 3) != 0)
            continue;
        int64_t v = 0;
        const char *d = f + 3, *p = d;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (v > (INT64_MAX - (*p - '0')) / 10)
                return 0;
            v = v * 10 + (*p - '0');
        }
        return p > d && (*p == '\0' || *p == '&') ? v : 0;
    }
    return 0;
}
