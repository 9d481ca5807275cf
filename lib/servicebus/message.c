/*
 * message.c: one AMQP 1.0 message -> ik_sb_message (see message.h). Walks
 * the sections in the order the spec gives them (header, delivery
 * annotations, message annotations, properties, application properties,
 * body, footer), each at most once except repeated data or amqp-sequence
 * body sections, and reads each with amqp_read.c. Field errors name the
 * section and the byte where it starts.
 */
#include "message.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp_read.h"
#include "common/buf.h"
#include "common/utf8.h"
#include <intake/plugin.h>

enum {
    S_HEADER = 0x70,
    S_DELIVERY_ANN = 0x71,
    S_MESSAGE_ANN = 0x72,
    S_PROPERTIES = 0x73,
    S_APP_PROPS = 0x74,
    S_DATA = 0x75,
    S_SEQUENCE = 0x76,
    S_VALUE = 0x77,
    S_FOOTER = 0x78,
};

static const char *const section_names[] = {
    "header", "delivery-annotations", "message-annotations", "properties", "application-properties",
    "data",   "amqp-sequence",        "amqp-value",          "footer",
};

/* The symbolic descriptors of the sections, in code order. */
static const char *const section_symbols[] = {
    "amqp:header:list",
    "amqp:delivery-annotations:map",
    "amqp:message-annotations:map",
    "amqp:properties:list",
    "amqp:application-properties:map",
    "amqp:data:binary",
    "amqp:amqp-sequence:list",
    "amqp:value:*",
    "amqp:footer:map",
};

static const char *section_name(int code)
{
    return code >= S_HEADER && code <= S_FOOTER ? section_names[code - S_HEADER] : "unknown";
}

/* Where a section may come: the body sections share one place. */
static int section_rank(int code)
{
    return code >= S_DATA && code <= S_VALUE ? S_DATA : code;
}

/* Reads a section's descriptor at r->pos into *code (0x70..0x78). */
static int read_descriptor(sb_reader *r, int *code)
{
    size_t at = r->pos;
    if (r->b[r->pos] != 0x00)
        return sb_fail(r, at, "expected a section (0x00, a descriptor), found byte 0x%02x",
                       r->b[r->pos]);
    r->pos++;
    if (r->pos < r->n && (r->b[r->pos] == 0x53 || r->b[r->pos] == 0x80)) {
        int wide = r->b[r->pos] == 0x80;
        if (r->n - r->pos < (wide ? 9u : 2u))
            return sb_fail(r, at, "section descriptor runs past the end");
        uint64_t c = wide ? 0 : r->b[r->pos + 1];
        for (int i = 1; wide && i <= 8; i++)
            c = (c << 8) | r->b[r->pos + i];
        r->pos += wide ? 9 : 2;
        if (c < S_HEADER || c > S_FOOTER)
            return sb_fail(r, at, "unknown section descriptor 0x%" PRIx64, c);
        *code = (int)c;
        return 0;
    }
    unsigned char type;
    const unsigned char *p;
    size_t len;
    int rc = sb_read_bytes(r, "a section descriptor", &type, &p, &len);
    if (rc)
        return rc;
    for (int i = 0; i <= S_FOOTER - S_HEADER; i++)
        if ((type == 0xa3 || type == 0xb3) && strlen(section_symbols[i]) == len &&
            memcmp(section_symbols[i], p, len) == 0) {
            *code = S_HEADER + i;
            return 0;
        }
    return sb_fail(r, at, "unknown section descriptor");
}

/* An unsigned integer field of a list section: 0 and *v, or IK_E_PARSE. */
static int uint_field(sb_reader *r, size_t at, json_object *list, size_t i, const char *what,
                      uint64_t max, uint64_t *v, int *present)
{
    json_object *f = json_object_array_get_idx(list, i);
    *present = f != NULL;
    if (!f)
        return 0;
    if (!json_object_is_type(f, json_type_int) || json_object_get_int64(f) < 0 ||
        json_object_get_uint64(f) > max)
        return sb_fail(r, at, "%s is %s, want an unsigned integer up to %" PRIu64, what,
                       sb_json_type_name(f), max);
    *v = json_object_get_uint64(f);
    return 0;
}

static int apply_header(sb_reader *r, size_t at, json_object *h, ik_sb_message *m)
{
    if (!json_object_is_type(h, json_type_array))
        return sb_fail(r, at, "header is %s, not a list", sb_json_type_name(h));
    uint64_t v = 0;
    int present;
    int rc = uint_field(r, at, h, 2, "header ttl", UINT32_MAX, &v, &present);
    if (rc)
        return rc;
    m->ttl_ms = present ? v : 0;
    rc = uint_field(r, at, h, 4, "header delivery-count", UINT32_MAX, &v, &present);
    m->delivery_count = present ? (uint32_t)v : 0;
    return rc;
}

/*
 * The text of a property: a string as it is; an integer (a ulong id) in
 * decimal. uuids and binary ids arrive converted to text already. NULL
 * (and 0) when absent; IK_E_PARSE for another type or a NUL inside.
 */
static int text_field(sb_reader *r, size_t at, json_object *v, const char *what, int ids,
                      char **out)
{
    *out = NULL;
    if (!v)
        return 0;
    if (ids && json_object_is_type(v, json_type_int)) {
        int64_t s = json_object_get_int64(v); /* negative: a long, no id type but readable */
        int k = s < 0 ? asprintf(out, "%" PRId64, s)
                      : asprintf(out, "%" PRIu64, json_object_get_uint64(v));
        if (k < 0) {
            *out = NULL;
            return IK_E_NOMEM;
        }
        return 0;
    }
    if (!json_object_is_type(v, json_type_string))
        return sb_fail(r, at, "%s is %s, want %s", what, sb_json_type_name(v),
                       ids ? "a string, uuid, ulong or binary" : "a string");
    const char *s = json_object_get_string(v);
    if (strlen(s) != (size_t)json_object_get_string_len(v))
        return sb_fail(r, at, "%s contains a NUL byte", what);
    *out = strdup(s);
    return *out ? 0 : IK_E_NOMEM;
}

static int apply_properties(sb_reader *r, size_t at, json_object *p, ik_sb_message *m)
{
    if (!json_object_is_type(p, json_type_array))
        return sb_fail(r, at, "properties is %s, not a list", sb_json_type_name(p));
    static const struct {
        size_t index;
        const char *name;
        int ids;
        size_t offset;
    } fields[] = {
        {0, "properties message-id", 1, offsetof(ik_sb_message, message_id)},
        {2, "properties to", 0, offsetof(ik_sb_message, to)},
        {3, "properties subject", 0, offsetof(ik_sb_message, subject)},
        {4, "properties reply-to", 0, offsetof(ik_sb_message, reply_to)},
        {5, "properties correlation-id", 1, offsetof(ik_sb_message, correlation_id)},
        {6, "properties content-type", 0, offsetof(ik_sb_message, content_type)},
        {10, "properties group-id", 0, offsetof(ik_sb_message, session_id)},
    };
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        char **slot = (char **)((char *)m + fields[i].offset);
        int rc = text_field(r, at, json_object_array_get_idx(p, fields[i].index), fields[i].name,
                            fields[i].ids, slot);
        if (rc)
            return rc;
    }
    return 0;
}

/* One broker annotation: an integer (long or timestamp) or absent. */
static int annotation(sb_reader *r, size_t at, json_object *ann, const char *key, int *has,
                      int64_t *v)
{
    json_object *f;
    if (!json_object_object_get_ex(ann, key, &f) || !f)
        return 0;
    if (!json_object_is_type(f, json_type_int) || json_object_get_int64(f) == INT64_MAX)
        return sb_fail(r, at, "message annotation %s is %s, want a long or timestamp", key,
                       sb_json_type_name(f));
    *has = 1;
    *v = json_object_get_int64(f);
    return 0;
}

static int apply_annotations(sb_reader *r, size_t at, json_object *a, ik_sb_message *m)
{
    if (!json_object_is_type(a, json_type_object))
        return sb_fail(r, at, "message-annotations is %s, not a map", sb_json_type_name(a));
    int rc =
        annotation(r, at, a, "x-opt-sequence-number", &m->has_sequence_number, &m->sequence_number);
    rc = rc ? rc
            : annotation(r, at, a, "x-opt-enqueued-time", &m->has_enqueued_time,
                         &m->enqueued_time_ms);
    rc = rc ? rc
            : annotation(r, at, a, "x-opt-locked-until", &m->has_locked_until, &m->locked_until_ms);
    rc = rc ? rc
            : annotation(r, at, a, "x-opt-scheduled-enqueue-time", &m->has_scheduled_time,
                         &m->scheduled_time_ms);
    return rc;
}

static int apply_app_properties(sb_reader *r, size_t at, json_object *a, ik_sb_message *m)
{
    if (!json_object_is_type(a, json_type_object))
        return sb_fail(r, at, "application-properties is %s, not a map", sb_json_type_name(a));
    m->app_properties = json_object_get(a);
    json_object *v;
    int rc = 0;
    if (json_object_object_get_ex(a, "DeadLetterReason", &v) && v)
        rc = text_field(r, at, v, "application property DeadLetterReason", 0,
                        &m->dead_letter_reason);
    if (!rc && json_object_object_get_ex(a, "DeadLetterErrorDescription", &v) && v)
        rc = text_field(r, at, v, "application property DeadLetterErrorDescription", 0,
                        &m->dead_letter_description);
    return rc;
}

/* Adds n body bytes to the count, IK_E_TOOBIG past max_body (0: no limit). */
static int count_body(sb_reader *r, size_t at, size_t *body, size_t n, size_t max_body)
{
    *body += n;
    if (max_body && *body > max_body) {
        sb_fail(r, at, "body is larger than the limit of %zu bytes (%zu bytes so far)", max_body,
                *body);
        return IK_E_TOOBIG;
    }
    return 0;
}

/* A data section: binary, appended to m->data. */
static int read_data(sb_reader *r, size_t at, size_t *body, size_t max_body, ik_sb_message *m)
{
    unsigned char type;
    const unsigned char *p;
    size_t len;
    int rc = sb_read_bytes(r, "data section", &type, &p, &len);
    if (rc)
        return rc;
    if (type != 0xa0 && type != 0xb0)
        return sb_fail(r, at, "data section holds a string or symbol, not binary");
    rc = count_body(r, at, body, len, max_body);
    if (rc)
        return rc;
    ik_buf_add(&m->data, (const char *)p, len);
    return m->data.oom ? IK_E_NOMEM : 0;
}

/* An amqp-sequence section: its items appended to the array m->value. */
static int read_sequence(sb_reader *r, size_t at, size_t *body, size_t max_body, ik_sb_message *m)
{
    json_object *list = NULL;
    int rc = sb_read_value(r, 0, &list);
    if (!rc && !json_object_is_type(list, json_type_array))
        rc = sb_fail(r, at, "amqp-sequence section is %s, not a list", sb_json_type_name(list));
    rc = rc ? rc : count_body(r, at, body, r->pos - at, max_body);
    if (!rc && !m->value && !(m->value = json_object_new_array()))
        rc = IK_E_NOMEM;
    for (size_t i = 0; !rc && i < json_object_array_length(list); i++) {
        json_object *item = json_object_get(json_object_array_get_idx(list, i));
        if (json_object_array_add(m->value, item) != 0) {
            json_object_put(item);
            rc = IK_E_NOMEM;
        }
    }
    json_object_put(list);
    return rc;
}

/* An amqp-value section: a string or binary also fills m->data (its bytes). */
static int read_value_section(sb_reader *r, size_t at, size_t *body, size_t max_body,
                              ik_sb_message *m)
{
    unsigned char code = r->pos < r->n ? r->b[r->pos] : 0;
    if ((code & 0xef) == 0xa0 || (code & 0xef) == 0xa1) { /* binary or string, 8 or 32 */
        unsigned char type;
        const unsigned char *p;
        size_t len;
        size_t vat = r->pos;
        int rc = sb_read_bytes(r, "amqp-value", &type, &p, &len);
        rc = rc ? rc : count_body(r, at, body, len, max_body);
        if (rc)
            return rc;
        if ((type & 0x0f) == 0x01 && !ik_utf8_valid((const char *)p, len))
            return sb_fail(r, vat, "amqp-value string is not valid UTF-8");
        if ((type & 0x0f) == 0x01 && len <= INT32_MAX &&
            !(m->value = json_object_new_string_len((const char *)p, (int)len)))
            return IK_E_NOMEM;
        ik_buf_add(&m->data, (const char *)p, len);
        return m->data.oom ? IK_E_NOMEM : 0;
    }
    int rc = sb_read_value(r, 0, &m->value);
    return rc ? rc : count_body(r, at, body, r->pos - at, max_body);
}

/* Checks that section `code` may come after the one before (*last) and notes it. */
static int check_order(sb_reader *r, size_t at, int code, int *last)
{
    if (*last && (section_rank(code) < section_rank(*last) ||
                  (section_rank(code) == section_rank(*last) &&
                   (code != *last || code == S_VALUE || section_rank(code) != S_DATA))))
        return sb_fail(r, at, "%s section after %s section", section_name(code),
                       section_name(*last));
    *last = code;
    return 0;
}

/* Reads one section at r->pos into m. */
static int read_section(sb_reader *r, int *last, size_t *body, size_t max_body, ik_sb_message *m)
{
    size_t at = r->pos;
    int code = 0;
    int rc = read_descriptor(r, &code);
    rc = rc ? rc : check_order(r, at, code, last);
    if (rc)
        return rc;
    if (code >= S_DATA && code <= S_VALUE)
        m->body_kind = code == S_DATA       ? IK_SB_BODY_DATA
                       : code == S_SEQUENCE ? IK_SB_BODY_SEQUENCE
                                            : IK_SB_BODY_VALUE;
    if (code == S_DATA)
        return read_data(r, at, body, max_body, m);
    if (code == S_SEQUENCE)
        return read_sequence(r, at, body, max_body, m);
    if (code == S_VALUE)
        return read_value_section(r, at, body, max_body, m);
    if (code == S_DELIVERY_ANN || code == S_FOOTER)
        return sb_read_value(r, 0, NULL); /* checked, not kept */
    json_object *v = NULL;
    rc = sb_read_value(r, 0, &v);
    if (!rc && code == S_HEADER)
        rc = apply_header(r, at, v, m);
    else if (!rc && code == S_MESSAGE_ANN)
        rc = apply_annotations(r, at, v, m);
    else if (!rc && code == S_PROPERTIES)
        rc = apply_properties(r, at, v, m);
    else if (!rc && code == S_APP_PROPS)
        rc = apply_app_properties(r, at, v, m);
    json_object_put(v);
    return rc;
}

int ik_sb_message_decode(const char *bytes, size_t len, size_t max_body, ik_sb_message *m,
                         char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (err && errlen)
        err[0] = '\0';
    sb_reader r = {(const unsigned char *)bytes, bytes ? len : 0, 0, err, errlen};
    int last = 0;
    size_t body = 0;
    while (r.pos < r.n) {
        int rc = read_section(&r, &last, &body, max_body, m);
        if (rc == IK_E_NOMEM && err && errlen)
            snprintf(err, errlen, "out of memory");
        if (rc)
            return rc;
    }
    return 0;
}

void ik_sb_message_clear(ik_sb_message *m)
{
    if (!m)
        return;
    free(m->message_id);
    free(m->correlation_id);
    free(m->content_type);
    free(m->subject);
    free(m->to);
    free(m->reply_to);
    free(m->session_id);
    free(m->dead_letter_reason);
    free(m->dead_letter_description);
    json_object_put(m->app_properties);
    json_object_put(m->value);
    ik_buf_free(&m->data);
    memset(m, 0, sizeof *m);
}
