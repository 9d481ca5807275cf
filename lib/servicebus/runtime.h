/*
 * runtime.h: a queue's runtime counts (active, dead-letter, scheduled, ...)
 * from the Service Bus management REST API, which AMQP does not offer:
 * GET <base>/<queue>?api-version=2021-05 with a SAS token whose sr is the
 * lower-cased, encoded, lower-cased full URL, answered with an ATOM entry
 * (see servicebus.md §8). The fetch uses libcurl; the ATOM parser is
 * separate so it can be tested and fuzzed without a network.
 *
 * Errors never contain the key or the token.
 */
#ifndef INTAKE_SB_RUNTIME_H
#define INTAKE_SB_RUNTIME_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ik_sb_counts {
    int64_t active, dead_letter, scheduled, transfer, transfer_dead_letter;
    int64_t total;      /* MessageCount */
    int64_t size_bytes; /* SizeInBytes */
} ik_sb_counts;

/* The api-version the request names. */
#define IK_SB_RUNTIME_API "2021-05"
/* The largest answer read; a queue's entry is about 2 KiB. */
#define IK_SB_RUNTIME_MAX_ANSWER (1024 * 1024)

/*
 * Reads the counts out of the ATOM document the management API answers
 * (xml, len bytes, need not be NUL-terminated) into *out (zeroed first).
 * 0, IK_E_NOMEM, IK_E_NOTFOUND for an empty feed (the queue does not
 * exist), or IK_E_PARSE with err saying what is wrong and where ("line 3:
 * ActiveMessageCount: 'x' is not a count"). The XML is parsed with libxml2
 * without network access, DTD loading or entity expansion; a document
 * with a DOCTYPE is refused.
 */
int ik_sb_runtime_parse(const char *xml, size_t len, ik_sb_counts *out, char *err, size_t errlen);

/*
 * The Authorization header value for GET `url` (the full request URL):
 * "SharedAccessSignature sr=<lower-case enc(lower-case url)>&sig=...&se=
 * <expiry>&skn=<key_name>". malloc'd secret (the caller wipes and frees
 * it); NULL when out of memory or an argument is NULL.
 */
char *ik_sb_runtime_token(const char *url, const char *key_name, const char *key,
                          int64_t expiry_unix);

/*
 * Fetches and parses the counts of `queue`. base_url: "https://host" or
 * "http://127.0.0.1:PORT" (a trailing '/' is ignored); key: the shared
 * access key (with key_name), or a whole "SharedAccessSignature ..." string
 * sent as it is (key_name unused). ca_file: a PEM file or folder of CAs,
 * NULL for the system's; verify 0 skips the certificate and host checks.
 * Returns 0, IK_E_NOMEM, IK_E_INVAL (a base_url that is not http(s)://),
 * IK_E_NOTFOUND (no such queue: an empty feed or 404), IK_E_CONFIG (401 or
 * 403: the key is refused or lacks the Manage right), IK_E_TIMEOUT,
 * IK_E_IO (network, another status) or IK_E_PARSE, with err saying what
 * happened (never the key or token).
 */
int ik_sb_runtime_counts(const char *base_url, const char *queue, const char *key_name,
                         const char *key, long timeout_ms, const char *ca_file, int verify,
                         ik_sb_counts *out, char *err, size_t errlen);

/* The same, given up (IK_E_STOPPING) soon after *cancel becomes non-zero,
 * for a thread that must be joined quickly. cancel may be NULL. */
int ik_sb_runtime_counts_cancellable(const char *base_url, const char *queue, const char *key_name,
                                     const char *key, long timeout_ms, const char *ca_file,
                                     int verify, const atomic_int *cancel, ik_sb_counts *out,
                                     char *err, size_t errlen);

#endif
