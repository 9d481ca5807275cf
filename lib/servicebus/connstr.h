/*
 * connstr.h: Azure Service Bus connection strings
 * ("Endpoint=sb://host[:port]/;SharedAccessKeyName=...;SharedAccessKey=...;
 * EntityPath=...;UseDevelopmentEmulator=true"), parsed as the official SDKs
 * parse them: `;`-separated Key=Value parts split at the first `=`, keys and
 * values trimmed, empty parts skipped, unknown keys ignored, known keys
 * matched in any case (as .NET does). Stricter than the SDKs: a known key
 * given twice or with an empty value is refused rather than guessed at.
 *
 * The key and the shared access signature are secrets: no error message
 * ever contains them (or any value of the string but the endpoint).
 */
#ifndef INTAKE_SB_CONNSTR_H
#define INTAKE_SB_CONNSTR_H

#include <stddef.h>

typedef struct ik_sb_connstr {
    char *host;        /* Endpoint host, never NULL after a successful parse */
    int port;          /* Endpoint port, 0 when the Endpoint has none */
    char *key_name;    /* SharedAccessKeyName, or NULL */
    char *key;         /* SharedAccessKey (secret), or NULL */
    char *sas;         /* SharedAccessSignature (secret, "SharedAccessSignature sr=..."), or NULL */
    char *entity_path; /* EntityPath, or NULL */
    int use_emulator;  /* UseDevelopmentEmulator=true (exactly "true") */
} ik_sb_connstr;

/*
 * Parses text into *out (zeroed first; free with ik_sb_connstr_free, also
 * after a failure). Returns 0, IK_E_NOMEM, or IK_E_PARSE with err (errlen
 * bytes) saying what is wrong and in which part ("part 3 (SharedAccessKey):
 * ..."), never quoting a secret. Refused: no Endpoint; an Endpoint that is
 * not sb://host[:port][/] (or amqp://, amqps://); a port outside 1..65535;
 * SharedAccessSignature together with a key name or key; a key name without
 * a key or a key without a key name; neither a key nor a signature; a
 * signature not starting "SharedAccessSignature "; a part without `=`; a
 * known key given twice or with an empty value. On failure *out is left
 * zeroed.
 */
int ik_sb_connstr_parse(const char *text, ik_sb_connstr *out, char *err, size_t errlen);
void ik_sb_connstr_free(ik_sb_connstr *cs);

#endif
