/* amqpraw.h: a small bounds-checked reader/writer of AMQP 1.0 encoded bytes, used to split
 * messages into sections, unpack the SDK's batched transfers and re-stamp broker annotations
 * without a full decode/encode per delivery. */
#ifndef SBEMU_AMQPRAW_H
#define SBEMU_AMQPRAW_H

#include <stddef.h>
#include <stdint.h>

/* Section descriptors of an AMQP message. */
enum {
    AMQP_SEC_HEADER = 0x70,
    AMQP_SEC_DELIVERY_ANN = 0x71,
    AMQP_SEC_MESSAGE_ANN = 0x72,
    AMQP_SEC_PROPERTIES = 0x73,
    AMQP_SEC_APP_PROPS = 0x74,
    AMQP_SEC_DATA = 0x75,
    AMQP_SEC_SEQUENCE = 0x76,
    AMQP_SEC_VALUE = 0x77,
    AMQP_SEC_FOOTER = 0x78,
};

typedef struct sb_buf {
    uint8_t *data;
    size_t len, cap;
} sb_buf;

int sb_buf_reserve(sb_buf *b, size_t extra);
int sb_buf_put(sb_buf *b, const void *p, size_t n);
int sb_buf_u8(sb_buf *b, uint8_t v);
int sb_buf_u32be(sb_buf *b, uint32_t v);
int sb_buf_u64be(sb_buf *b, uint64_t v);
/* AMQP encodings of single values. */
int sb_buf_sym(sb_buf *b, const char *s);
int sb_buf_str(sb_buf *b, const char *s, size_t n);
void sb_buf_free(sb_buf *b);

/* Skips one encoded value (described or not) at *pos. Returns 0, or -1 on truncated/unknown. */
int amqp_skip(const uint8_t *b, size_t n, size_t *pos);
/* Reads one section: 0x00, a ulong descriptor code, the value. On return *code is the
 * descriptor, [*vstart, *pos) the value. Returns 0 or -1. */
int amqp_section(const uint8_t *b, size_t n, size_t *pos, uint64_t *code, size_t *vstart);
/* Enters a list or map at *pos: sets *count (elements) and *end. Null counts as empty.
 * Returns 0, or -1 if the value is not a list/map or is malformed. */
int amqp_compound(const uint8_t *b, size_t n, size_t *pos, uint32_t *count, size_t *end);
/* Readers; each advances *pos past the value. 1 = read, 0 = value was null, -1 = wrong type. */
int amqp_read_u64(const uint8_t *b, size_t n, size_t *pos, uint64_t *v);
int amqp_read_i64(const uint8_t *b, size_t n, size_t *pos, int64_t *v);
int amqp_read_bool(const uint8_t *b, size_t n, size_t *pos, int *v);
/* Strings, symbols and binaries: *p points into b. *type gets the format code. */
int amqp_read_bytes(const uint8_t *b, size_t n, size_t *pos, const uint8_t **p, size_t *len,
                    uint8_t *type);

/* What ingest needs from one message. */
typedef struct sb_msg_parts {
    int durable, has_priority, has_ttl;
    uint8_t priority;
    uint32_t ttl;
    int64_t scheduled_ms; /* x-opt-scheduled-enqueue-time, 0 if absent */
    sb_buf ann;           /* message-annotation entries kept (broker keys removed), raw */
    uint32_t ann_count;   /* number of key+value items in ann */
    sb_buf rest;          /* properties, application-properties, body, footer, raw */
    uint8_t msgid[130];   /* type byte + raw bytes of message-id; msgid_len 0 if absent */
    size_t msgid_len;
    char group_id[129]; /* session id, "" if absent */
    int has_group_id;
} sb_msg_parts;

/* Splits one encoded message. Returns 0, or -1 with the reason in err. Free parts with
 * sb_msg_parts_free (also on error). */
int amqp_parse_message(const uint8_t *b, size_t n, sb_msg_parts *parts, char *err, size_t errlen);
void sb_msg_parts_free(sb_msg_parts *parts);

/* Gives a message without a message-id the string id (as the service does): rewrites or
 * inserts the properties section at the start of parts->rest. Returns 0 or -1. */
int amqp_set_message_id(sb_msg_parts *parts, const char *id);

/* If a transfer payload is the SDK's batch envelope (only data sections, each holding an encoded
 * message), returns the number of messages and fills starts/lens (up to max); 0 when it is a
 * single message; -1 when malformed. */
int amqp_batch_split(const uint8_t *b, size_t n, const uint8_t **starts, size_t *lens, int max);

/* Writes the header section. */
int amqp_put_header(sb_buf *out, int durable, int has_priority, uint8_t priority, int has_ttl,
                    uint32_t ttl, uint32_t delivery_count);

/* Merges application properties: copies rest to out, replacing/adding the entries of mods
 * (raw map entries with string or symbol keys, mods_count items = 2 x pairs). */
int amqp_merge_app_props(const uint8_t *rest, size_t rest_len, const uint8_t *mods, size_t mods_len,
                         uint32_t mods_count, sb_buf *out);

#endif
