/* sas.h: Shared Access Signature tokens: parsing, HMAC-SHA256 validation, scope checks. */
#ifndef SBEMU_SAS_H
#define SBEMU_SAS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum {
    SB_SAS_OK = 0,
    SB_SAS_MALFORMED = -1,
    SB_SAS_UNKNOWN_KEY = -2,
    SB_SAS_BAD_SIGNATURE = -3,
    SB_SAS_EXPIRED = -4,
};

#define SB_SAS_MAX_TOKEN 4096

typedef struct sb_sas_token {
    char sr_raw[2048]; /* sr exactly as in the token (URL-encoded): the signed string uses it */
    char sr[2048];     /* decoded resource URI */
    char sig[256];     /* decoded base64 signature */
    char skn[SB_NAME_MAX];
    int64_t se; /* expiry, Unix seconds */
} sb_sas_token;

/* Decodes %XX escapes (and '+' as space when plus_is_space). Returns the decoded length, or -1
 * on a bad escape, an embedded NUL, or when out (outlen bytes incl. NUL) is too small. */
int sb_url_decode(const char *in, size_t n, char *out, size_t outlen, int plus_is_space);

/* Parses "SharedAccessSignature sr=..&sig=..&se=..&skn=..". Returns 0 or SB_SAS_MALFORMED with
 * the reason in err. */
int sb_sas_parse(const char *token, sb_sas_token *t, char *err, size_t errlen);

/* base64(HMAC-SHA256(key, sr_raw + "\n" + se)) into out (at least 64 bytes). Returns 0 or -1. */
int sb_sas_sign(const char *key, const char *sr_raw, int64_t se, char *out, size_t outlen);

/* Parses and checks a token against the configured keys and the clock (now_s). On success
 * returns 0 and, when t is not NULL, the parsed token. Otherwise one of the SB_SAS_* codes with
 * the reason in err (never the secret parts). */
int sb_sas_validate(const sb_config *cfg, const char *token, int64_t now_s, sb_sas_token *t,
                    char *err, size_t errlen);

/* The entity path of a resource URI or audience: "sb://host:5672/q1/$management" ->
 * "q1/$management", without leading/trailing '/' and without a query string. Returns 0, or -1 if
 * out is too small. */
int sb_sas_uri_path(const char *uri, char *out, size_t outlen);

/* Parses n bytes of "host", "host:port", "[v6]:port" or a bare IPv6 address (an authority's
 * "user@" prefix is dropped) into host (lower case, without brackets; hostlen bytes incl. NUL)
 * and *port (-1 when there is none). Returns 0, or -1 when the host is empty or too long or the
 * port is not a number in 1..65535. */
int sb_host_parse(const char *s, size_t n, char *host, size_t hostlen, int *port);

/* The host and port of a resource URI or audience ("sb://NS:5671/q1" -> "ns", 5671; *port -1
 * without one). Returns 0, or -1 when uri has no "scheme://" or sb_host_parse refuses its
 * authority. */
int sb_sas_uri_host(const char *uri, char *host, size_t hostlen, int *port);

/* 1 if the resource URI uri names the endpoint the client reached: its host equals host
 * (case-insensitive; localhost, 127.0.0.1 and ::1 count as one loopback name) and its port, when
 * it has one, equals port. Else 0 with the reason in err (uri is not secret, so err quotes it). */
int sb_sas_names_endpoint(const char *uri, const char *host, int port, char *err, size_t errlen);

/* 1 if a token scoped to scope_path (from sb_sas_uri_path) covers entity_path
 * (case-insensitive: equal, a parent path, or the namespace root ""), else 0. */
int sb_sas_covers(const char *scope_path, const char *entity_path);

#endif
