/*
 * sas.h: Shared Access Signature tokens for Service Bus (CBS put-token and
 * SASL-less connections): HMAC-SHA256 over the URL-encoded resource URI and
 * the expiry, with the key's UTF-8 bytes as written in the connection
 * string (not base64-decoded), as the official SDKs do.
 */
#ifndef INTAKE_SB_SAS_H
#define INTAKE_SB_SAS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Returns "SharedAccessSignature sr=<enc(uri)>&sig=<enc(b64(hmac))>&se=<expiry>&skn=<key_name>"
 * (malloc'd, the caller frees it, and must treat it as a secret), or NULL when
 * out of memory. `resource_uri` is not encoded ("sb://host:5672/queue");
 * it is encoded as JavaScript's encodeURIComponent does (upper-case hex).
 */
char *ik_sb_sas_token(const char *resource_uri, const char *key_name, const char *key,
                      int64_t expiry_unix);

/* The same token for an `sr` already encoded as the caller wants it (the
 * management REST API signs a lower-cased encoding); sr is signed and sent
 * byte for byte. malloc'd secret, NULL when out of memory. */
char *ik_sb_sas_token_sr(const char *sr, const char *key_name, const char *key,
                         int64_t expiry_unix);

/* Wipes and frees a token or another secret string (NULL is fine). */
void ik_sb_sas_free(char *secret);

/* Percent-encodes s as encodeURIComponent does; malloc'd, NULL when out of memory. */
char *ik_sb_url_encode(const char *s);

/* The expiry ("se=") of a SharedAccessSignature string in unix seconds, 0
 * when it has none or it does not parse. */
int64_t ik_sb_sas_expiry(const char *sas);

#endif
