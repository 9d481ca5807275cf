/*
 * body.h: turns a Service Bus message body into the emails it carries.
 *
 * Two shapes arrive on an Intake queue: the batch envelope the original
 * service sent ({"batch_id", "emails": [...], "priority", "retry_count",
 * "created_at", ...}), which becomes one email per element of "emails", and
 * one email (any other JSON object), which becomes itself. The JSON is read
 * from a data section (as the official SDKs send objects and strings), from
 * an amqp-value string or binary holding JSON text, or from an amqp-value
 * map (converted by message.c); an amqp-sequence body is a list of emails.
 */
#ifndef INTAKE_SB_BODY_H
#define INTAKE_SB_BODY_H

#include <stddef.h>

#include <json-c/json.h>

#include "message.h"

typedef struct ik_sb_emails {
    json_object **emails; /* n owned JSON objects, in envelope order */
    size_t n;
    int is_envelope; /* 1 when the body was a batch envelope */
    char *batch_id;  /* envelope "batch_id" (a string, or a number as text), or NULL */
    int has_priority;
    int priority;          /* envelope "priority" (integer) */
    int64_t retry_count;   /* envelope "retry_count", 0 when absent */
    json_object *envelope; /* the envelope without "emails" (owned), or NULL */
} ik_sb_emails;

/*
 * Fills *out (zeroed first; ik_sb_emails_clear it after, also on failure)
 * with the emails of m's body. 0, IK_E_NOMEM, or IK_E_PARSE with err saying
 * what is wrong and where: not JSON ("body is not JSON: at byte 12: ..."),
 * not UTF-8, not an object or list, an envelope whose "emails" is not an
 * array, an element of "emails" that is not an object ("emails[3] is a
 * string, not an object"), an empty body, more than max_emails emails
 * (0: no limit), no emails at all (an empty "emails" or list), a JSON
 * string holding \u0000, a "batch_id" that is neither a string nor an
 * integer, a "retry_count" that is not a non-negative integer. A JSON
 * array (or an amqp-value list, or amqp-sequence items) is a list of
 * emails, not an envelope. A "priority" that is neither an integer nor
 * "high"/"normal"/"low" (any case; 10/0/-10, as the file source reads it)
 * is ignored (has_priority 0), as the file source ignores it.
 */
int ik_sb_body_emails(const ik_sb_message *m, size_t max_emails, ik_sb_emails *out, char *err,
                      size_t errlen);
void ik_sb_emails_clear(ik_sb_emails *e);

#endif
