/*
 * message.h: decodes one AMQP 1.0 message as it arrives in a transfer (the
 * bytes pn_link_recv gives) into what Intake's Service Bus source needs:
 * header, properties, message annotations, application properties and the
 * body. It walks the sections itself (qpid-proton 0.37's pn_message_decode
 * keeps only the last data section of a body), bounds-checked: bad input is
 * refused with the byte offset and what was wrong, never read past its end.
 */
#ifndef INTAKE_SB_MESSAGE_H
#define INTAKE_SB_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include <intake/buf.h>
#include <json-c/json.h>

typedef enum ik_sb_body_kind {
    IK_SB_BODY_NONE = 0,     /* no body section */
    IK_SB_BODY_DATA = 1,     /* one or more data sections: `data` holds them concatenated */
    IK_SB_BODY_VALUE = 2,    /* amqp-value: `value`; a string or binary also fills `data`
                              * with its bytes (`value` is then the string, or NULL for binary) */
    IK_SB_BODY_SEQUENCE = 3, /* amqp-sequence sections: `value` is a JSON array of their items */
} ik_sb_body_kind;

typedef struct ik_sb_message {
    /* header */
    uint32_t delivery_count; /* previous attempts (0 on the first delivery) */
    uint64_t ttl_ms;         /* 0 when absent */
    /* properties: strings as text; a uuid id in RFC form, a ulong id in
     * decimal, a binary id in lower-case hex. NULL when absent. */
    char *message_id;
    char *correlation_id;
    char *content_type;
    char *subject;
    char *to;
    char *reply_to;
    char *session_id; /* group-id */
    /* message annotations the broker adds; has_* 0 when absent */
    int has_sequence_number;
    int64_t sequence_number;
    int has_enqueued_time;
    int64_t enqueued_time_ms; /* unix ms */
    int has_locked_until;
    int64_t locked_until_ms;
    int has_scheduled_time;
    int64_t scheduled_time_ms;
    /* application properties as a JSON object (NULL when absent): strings,
     * booleans, integers, doubles as they are; timestamps as unix ms
     * integers; uuids as text; binary as lower-case hex; nested maps and
     * lists as objects and arrays. Owned by the message. */
    json_object *app_properties;
    /* dead-letter reason and description when the broker set them (a DLQ
     * message): application properties DeadLetterReason and
     * DeadLetterErrorDescription, copied here for convenience. */
    char *dead_letter_reason;
    char *dead_letter_description;
    /* body */
    ik_sb_body_kind body_kind;
    ik_buf data;        /* DATA, or VALUE holding a string/binary: the bytes */
    json_object *value; /* VALUE (converted as app properties are) or SEQUENCE */
} ik_sb_message;

/*
 * Decodes bytes[0..len) into *m (zeroed first; ik_sb_message_clear it after,
 * also on failure). 0, IK_E_NOMEM, IK_E_TOOBIG (the body is larger than
 * max_body bytes; 0: no limit), or IK_E_PARSE with err saying what and at
 * which byte ("at byte 57: data section length 900 runs past the end (512
 * bytes)"). Values nested deeper than 64 levels are refused.
 */
int ik_sb_message_decode(const char *bytes, size_t len, size_t max_body, ik_sb_message *m,
                         char *err, size_t errlen);
void ik_sb_message_clear(ik_sb_message *m);

#endif
