/*
 * body.c: a Service Bus message body -> the emails it carries (see
 * body.h). JSON text (a data section, an amqp-value string or binary) must
 * be valid UTF-8 holding exactly one value: lib/json's fast path first,
 * json-c's strict tokener for what it declines, which then says what is
 * wrong and at which byte. Values that are already JSON (an amqp-value map
 * or list, amqp-sequence items) are taken as they are.
 */
#include "body.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "amqp_read.h"
#include "common/utf8.h"
#include "json/json_fast.h"
#include <intake/plugin.h>

#define BODY_DEPTH 64 /* as the file source reads records */

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return IK_E_PARSE;
}

/* A JSON value's type for errors, in JSON's words where AMQP's differ. */
static const char *kind(const json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_double:
    case json_type_int:
        return "a number";
    case json_type_object:
        return "an object";
    case json_type_array:
        return "an array";
    default:
        return sb_json_type_name(v);
    }
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* " 'x'" or " (byte 0xff)" for the byte at text[off] (empty past the end). */
static void describe(const char *text, size_t len, size_t off, char *out, size_t size)
{
    unsigned char c = off < len ? (unsigned char)text[off] : 0;
    if (off >= len)
        out[0] = '\0';
    else if (c >= 0x20 && c < 0x7f)
        snprintf(out, size, " '%c'", c);
    else
        snprintf(out, size, " (byte 0x%02x)", c);
}

/*
 * Offset of the first \u0000 escape in JSON text that parsed, or SIZE_MAX:
 * json-c keeps such strings whole, but keys and C strings downstream would
 * end at the NUL. Every backslash of parsed text starts an escape, so
 * stepping from one to the next over the escaped character finds them all.
 */
static size_t nul_escape(const char *t, size_t len)
{
    for (size_t i = 0; i + 6 <= len; i++) {
        if (t[i] != '\\')
            continue;
        if (memcmp(t + i + 1, "u0000", 5) == 0)
            return i;
        i++; /* the escaped character, which may be a backslash */
    }
    return SIZE_MAX;
}

/*
 * Runs json-c's strict tokener over text[skip..len); 0 and *out, or
 * IK_E_PARSE with what and where (offsets from text).
 */
static int tokener_parse(const char *text, size_t skip, size_t len, json_object **out, char *err,
                         size_t errlen)
{
    json_tokener *tok = json_tokener_new_ex(BODY_DEPTH);
    if (!tok)
        return IK_E_NOMEM;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
    json_object *obj = json_tokener_parse_ex(tok, text + skip, (int)(len - skip));
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t end = skip + json_tokener_get_parse_end(tok);
    if (!obj && e == json_tokener_continue) { /* a bare number ends at the end of the text */
        obj = json_tokener_parse_ex(tok, "", 1);
        e = json_tokener_get_error(tok);
        end = len;
    }
    char ch[32];
    int rc = 0;
    if (!obj && e != json_tokener_success) {
        size_t at = e == json_tokener_continue ? len : end;
        describe(text, len, at, ch, sizeof ch);
        rc = fail(err, errlen, "body is not JSON: at byte %zu: %s%s", at,
                  e == json_tokener_continue ? "unexpected end of input"
                                             : json_tokener_error_desc(e),
                  ch);
    }
    json_tokener_free(tok);
    while (!rc && end < len && is_ws(text[end]))
        end++;
    if (!rc && end < len) {
        describe(text, len, end, ch, sizeof ch);
        rc = fail(err, errlen,
                  "body is not JSON: at byte %zu: unexpected character%s after the "
                  "end of the value",
                  end, ch);
    }
    size_t nul = rc ? SIZE_MAX : nul_escape(text, len);
    /* (a BOM has no backslash: the offset is right as it is) */
    if (nul != SIZE_MAX)
        rc = fail(err, errlen,
                  "body at byte %zu: a string contains \\u0000 (a NUL character), which "
                  "Intake does not take",
                  nul);
    if (rc)
        json_object_put(obj);
    else
        *out = obj;
    return rc;
}

/*
 * Parses JSON text (valid UTF-8, one value, nothing after it; a UTF-8 byte
 * order mark before it is skipped, as the file source skips one) into *out
 * (owned; NULL for null).
 */
static int parse_text(const char *text, size_t len, json_object **out, char *err, size_t errlen)
{
    *out = NULL;
    size_t i = 0;
    while (i < len && is_ws(text[i]))
        i++;
    if (i == len)
        return fail(err, errlen, "body is empty");
    if (len > INT_MAX)
        return fail(err, errlen, "body of %zu bytes is too large to parse", len);
    const char *nul = memchr(text, '\0', len);
    if (nul)
        return fail(err, errlen,
                    "body is not JSON: at byte %zu: NUL byte (not allowed in JSON "
                    "text)",
                    (size_t)(nul - text));
    i = ik_utf8_invalid_at(text, len);
    if (i < len)
        return fail(err, errlen, "body is not UTF-8: at byte %zu (byte 0x%02x)", i,
                    (unsigned char)text[i]);
    size_t skip = len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    if (ik_json_fast_parse(text + skip, len - skip, BODY_DEPTH, out) == 1)
        return 0;
    return tokener_parse(text, skip, len, out, err, errlen);
}

/*
 * Takes the objects of `list` as the emails (each json_object_get), `what`
 * naming the list in errors ("emails", "body"). 0, IK_E_NOMEM, or
 * IK_E_PARSE for an element that is not an object, an empty list, or more
 * than max_emails (0: no limit).
 */
static int take_list(json_object *list, const char *what, size_t max_emails, ik_sb_emails *out,
                     char *err, size_t errlen)
{
    size_t n = json_object_array_length(list);
    if (n == 0)
        return fail(err, errlen, "%s is an empty array: no emails", what);
    if (max_emails && n > max_emails)
        return fail(err, errlen, "%s holds %zu emails, more than the limit of %zu", what, n,
                    max_emails);
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(list, i);
        if (!json_object_is_type(v, json_type_object))
            return fail(err, errlen, "%s[%zu] is %s, not an object", what, i, kind(v));
    }
    out->emails = calloc(n, sizeof *out->emails);
    if (!out->emails)
        return IK_E_NOMEM;
    for (size_t i = 0; i < n; i++)
        out->emails[out->n++] = json_object_get(json_object_array_get_idx(list, i));
    return 0;
}

/* The envelope's "batch_id": a string, or an integer as decimal text. */
static int read_batch_id(json_object *env, ik_sb_emails *out, char *err, size_t errlen)
{
    json_object *v;
    if (!json_object_object_get_ex(env, "batch_id", &v) || !v)
        return 0;
    if (json_object_is_type(v, json_type_int)) {
        if (asprintf(&out->batch_id, "%" PRId64, json_object_get_int64(v)) < 0) {
            out->batch_id = NULL;
            return IK_E_NOMEM;
        }
        return 0;
    }
    if (!json_object_is_type(v, json_type_string))
        return fail(err, errlen, "envelope \"batch_id\" is %s, want a string or an integer",
                    kind(v));
    out->batch_id = strdup(json_object_get_string(v));
    return out->batch_id ? 0 : IK_E_NOMEM;
}

/*
 * The envelope's "priority" as the file source reads a record's: an integer
 * (clamped to int), or "high"/"normal"/"low" (10/0/-10) in any case;
 * anything else is ignored, as there.
 */
static void read_priority(json_object *env, ik_sb_emails *out)
{
    json_object *v;
    if (!json_object_object_get_ex(env, "priority", &v) || !v)
        return;
    if (json_object_is_type(v, json_type_int)) {
        int64_t p = json_object_get_int64(v);
        out->priority = p > INT_MAX ? INT_MAX : p < INT_MIN ? INT_MIN : (int)p;
        out->has_priority = 1;
        return;
    }
    static const struct {
        const char *name;
        int value;
    } names[] = {{"high", 10}, {"normal", 0}, {"low", -10}};
    for (size_t i = 0; json_object_is_type(v, json_type_string) && i < 3; i++)
        if (strcasecmp(json_object_get_string(v), names[i].name) == 0) {
            out->priority = names[i].value;
            out->has_priority = 1;
        }
}

/* The envelope's "retry_count": a non-negative integer, 0 when absent. */
static int read_retry_count(json_object *env, ik_sb_emails *out, char *err, size_t errlen)
{
    json_object *v;
    if (!json_object_object_get_ex(env, "retry_count", &v) || !v)
        return 0;
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
        return fail(err, errlen, "envelope \"retry_count\" is %s, want a non-negative integer",
                    json_object_is_type(v, json_type_int) ? "negative" : kind(v));
    out->retry_count = json_object_get_int64(v);
    return 0;
}

/* The envelope's members but "emails", shared with env (json_object_get). */
static int copy_envelope(json_object *env, ik_sb_emails *out)
{
    out->envelope = json_object_new_object();
    if (!out->envelope)
        return IK_E_NOMEM;
    json_object_object_foreach(env, key, val)
    {
        if (strcmp(key, "emails") == 0)
            continue;
        if (json_object_object_add(out->envelope, key, json_object_get(val)) != 0) {
            json_object_put(val);
            return IK_E_NOMEM;
        }
    }
    return 0;
}

/* An object with an "emails" member: the batch envelope. */
static int read_envelope(json_object *env, json_object *emails, size_t max_emails,
                         ik_sb_emails *out, char *err, size_t errlen)
{
    out->is_envelope = 1;
    if (!json_object_is_type(emails, json_type_array))
        return fail(err, errlen, "envelope \"emails\" is %s, not an array", kind(emails));
    int rc = take_list(emails, "emails", max_emails, out, err, errlen);
    rc = rc ? rc : read_batch_id(env, out, err, errlen);
    rc = rc ? rc : read_retry_count(env, out, err, errlen);
    if (!rc)
        read_priority(env, out);
    return rc ? rc : copy_envelope(env, out);
}

/* The emails of a JSON body value: an envelope, one email, or an array of emails. */
static int from_value(json_object *v, size_t max_emails, ik_sb_emails *out, char *err,
                      size_t errlen)
{
    if (json_object_is_type(v, json_type_array))
        return take_list(v, "body", max_emails, out, err, errlen);
    if (!json_object_is_type(v, json_type_object))
        return fail(err, errlen, "body is %s, not an object or an array", kind(v));
    json_object *emails;
    if (json_object_object_get_ex(v, "emails", &emails))
        return read_envelope(v, emails, max_emails, out, err, errlen);
    out->emails = calloc(1, sizeof *out->emails);
    if (!out->emails)
        return IK_E_NOMEM;
    out->emails[out->n++] = json_object_get(v);
    return 0;
}

int ik_sb_body_emails(const ik_sb_message *m, size_t max_emails, ik_sb_emails *out, char *err,
                      size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    json_object *root = NULL;
    int rc = 0;
    if (m->body_kind == IK_SB_BODY_NONE)
        return fail(err, errlen, "message has no body");
    if (m->body_kind == IK_SB_BODY_DATA || (m->body_kind == IK_SB_BODY_VALUE && m->data.p))
        rc = parse_text(m->data.p ? m->data.p : "", m->data.len, &root, err, errlen);
    else
        root = json_object_get(m->value);
    rc = rc ? rc : from_value(root, max_emails, out, err, errlen);
    json_object_put(root);
    if (rc == IK_E_NOMEM)
        fail(err, errlen, "out of memory");
    return rc;
}

void ik_sb_emails_clear(ik_sb_emails *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++)
        json_object_put(e->emails[i]);
    free(e->emails);
    free(e->batch_id);
    json_object_put(e->envelope);
    memset(e, 0, sizeof *e);
}
