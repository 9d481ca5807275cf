/*
 * seed.c: the seed's JSON email -> email record, and em_normalize (mapping
 * plus token diet) shared by the email_normalize and rules processors.
 * Seed fields: id, sender_email, sender_name, subject, body, attachments
 * [{filename, content_type, content_base64}], priority; everything else is
 * kept under "extra". Strings are repaired to valid UTF-8 on the way; one
 * holding a NUL (\u0000) is refused, saying which field and where, since it
 * would be cut short there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include <intake/plugin.h>

#include "common/sha256.h"
#include "email.h"

static const char *str_field(json_object *o, const char *key)
{
    json_object *v;
    if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

static json_object *clean_str(const char *s)
{
    if (!s)
        return json_object_new_null();
    size_t n = strlen(s);
    if (em_utf8_valid(s, n))
        return json_object_new_string(s);
    char *f = em_to_utf8(s, n, "utf-8", NULL, NULL);
    json_object *o = f ? json_object_new_string(f) : NULL;
    free(f);
    return o;
}

static int wrong_type(json_object *o, const char *key, json_type want, char *err, size_t errlen,
                      const char *where)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !v)
        return 0;
    if (json_object_is_type(v, want))
        return 0;
    snprintf(err, errlen, "%s%s\"%s\" must be %s, got %s", where, where[0] ? ": " : "", key,
             json_type_to_name(want), json_type_to_name(json_object_get_type(v)));
    return 1;
}

static int map_attachment(json_object *a, size_t i, const em_opts *opts, json_object *arr,
                          char *err, size_t errlen)
{
    char where[64];
    snprintf(where, sizeof where, "attachments[%zu]", i);
    if (!json_object_is_type(a, json_type_object)) {
        snprintf(err, errlen, "%s must be an object", where);
        return IK_E_PARSE;
    }
    if (wrong_type(a, "filename", json_type_string, err, errlen, where) ||
        wrong_type(a, "content_type", json_type_string, err, errlen, where) ||
        wrong_type(a, "content_base64", json_type_string, err, errlen, where))
        return IK_E_PARSE;
    json_object *out = json_object_new_object();
    if (!out)
        return IK_E_NOMEM;
    const char *b64 = str_field(a, "content_base64");
    json_object *v;
    json_object_object_add(out, "filename", clean_str(str_field(a, "filename")));
    const char *ct = str_field(a, "content_type");
    json_object_object_add(out, "content_type", clean_str(ct ? ct : "application/octet-stream"));
    if (b64) {
        /* strict check first: g_base64_decode accepts anything */
        for (const char *p = b64; *p; p++)
            if (!(g_ascii_isalnum(*p) || *p == '+' || *p == '/' || *p == '=' || *p == '\r' ||
                  *p == '\n' || *p == ' ')) {
                snprintf(err, errlen, "%s.content_base64: invalid base64 character at offset %ld",
                         where, (long)(p - b64));
                json_object_put(out);
                return IK_E_PARSE;
            }
        gsize n = 0;
        guchar *data = g_base64_decode(b64, &n);
        char hex[65];
        int rc = ik_sha256_hex(data, data ? n : 0, hex);
        g_free(data);
        if (rc != 0) {
            json_object_put(out);
            return IK_E_NOMEM;
        }
        json_object_object_add(out, "size", json_object_new_int64((int64_t)n));
        json_object_object_add(out, "sha256", json_object_new_string(hex));
        if (opts && opts->keep_content)
            json_object_object_add(out, "content_base64", json_object_new_string(b64));
    } else {
        json_object_object_add(out, "size",
                               json_object_object_get_ex(a, "size", &v) &&
                                       json_object_is_type(v, json_type_int)
                                   ? json_object_new_int64(json_object_get_int64(v))
                                   : json_object_new_null());
        const char *sha = str_field(a, "sha256");
        json_object_object_add(out, "sha256", clean_str(sha));
    }
    json_object_array_add(arr, out);
    return 0;
}

static const char *const seed_keys[] = {"id",   "sender_email", "sender_name", "subject",
                                        "body", "attachments",  "priority",    NULL};

/*
 * The first NUL in a string at or below v, whose path (field, or
 * "attachments[0].filename") goes to where and byte offset to *off. 1 when
 * there is one. Strings are read as C strings from here on, so a NUL would
 * cut them short without a word.
 */
static int find_nul(json_object *v, const char *path, char *where, size_t wlen, size_t *off,
                    int depth)
{
    char sub[160];
    if (!v || depth > 16)
        return 0;
    if (json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);
        const char *z = memchr(s, '\0', (size_t)json_object_get_string_len(v));
        if (z) {
            snprintf(where, wlen, "%s", path);
            *off = (size_t)(z - s);
        }
        return z != NULL;
    }
    if (json_object_is_type(v, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            if (find_nul(json_object_array_get_idx(v, i), sub, where, wlen, off, depth + 1))
                return 1;
        }
    } else if (json_object_is_type(v, json_type_object)) {
        json_object_object_foreach(v, key, val)
        {
            snprintf(sub, sizeof sub, "%s.%s", path, key);
            if (find_nul(val, sub, where, wlen, off, depth + 1))
                return 1;
        }
    }
    return 0;
}

/* IK_E_PARSE, saying which field and where, when a string under one of keys
 * holds a NUL (\u0000 in the JSON); 0 otherwise. */
static int refuse_nul(json_object *in, const char *const *keys, char *err, size_t errlen)
{
    char where[160];
    size_t off = 0;
    json_object *v;
    for (; *keys; keys++)
        if (json_object_object_get_ex(in, *keys, &v) &&
            find_nul(v, *keys, where, sizeof where, &off, 0)) {
            snprintf(err, errlen, "field '%s' contains a NUL character (\\u0000) at offset %zu",
                     where, off);
            return IK_E_PARSE;
        }
    return 0;
}

/* The seed fields read as text (the rest is kept under "extra" as it is). */
static const char *const seed_text[] = {"id",          "message_id",  "sender_email",
                                        "sender_name", "date",        "subject",
                                        "body",        "attachments", NULL};
/* An email record's own text (not "extra", "source", "extraction"). */
static const char *const record_text[] = {
    "id",          "message_id",  "sender_email", "sender_name", "to",         "cc",
    "reply_to",    "date",        "subject",      "in_reply_to", "references", "body",
    "body_format", "attachments", "text",         NULL};

/* 1 when the payload says it is an email record already. */
static int is_record(json_object *in)
{
    json_object *v;
    size_t n = strlen(EM_SCHEMA);
    return json_object_object_get_ex(in, "schema", &v) &&
           json_object_is_type(v, json_type_string) && (size_t)json_object_get_string_len(v) == n &&
           memcmp(json_object_get_string(v), EM_SCHEMA, n) == 0;
}

int em_from_seed(json_object *in, const em_opts *opts, json_object **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!json_object_is_type(in, json_type_object)) {
        snprintf(err, errlen, "an email must be a JSON object, got %s",
                 json_type_to_name(json_object_get_type(in)));
        return IK_E_PARSE;
    }
    if (is_record(in)) {
        if (refuse_nul(in, record_text, err, errlen))
            return IK_E_PARSE;
        json_object *copy = NULL;
        if (json_object_deep_copy(in, &copy, NULL) != 0 || !copy)
            return IK_E_NOMEM;
        *out = copy;
        return 0;
    }
    static const char *const strings[] = {"id",      "sender_email", "sender_name",
                                          "subject", "body",         NULL};
    for (const char *const *k = strings; *k; k++)
        if (wrong_type(in, *k, json_type_string, err, errlen, ""))
            return IK_E_PARSE;
    if (wrong_type(in, "attachments", json_type_array, err, errlen, "") ||
        refuse_nul(in, seed_text, err, errlen))
        return IK_E_PARSE;
    const char *body = str_field(in, "body");
    const char *subject = str_field(in, "subject");
    const char *sender = str_field(in, "sender_email");
    if (!body && !subject) {
        snprintf(err, errlen, "not an email: neither \"body\" nor \"subject\" is set");
        return IK_E_PARSE;
    }
    json_object *rec = json_object_new_object();
    json_object *atts = json_object_new_array();
    if (!rec || !atts) {
        json_object_put(rec);
        json_object_put(atts);
        return IK_E_NOMEM;
    }
    json_object_object_add(rec, "schema", json_object_new_string(EM_SCHEMA));
    if (str_field(in, "id"))
        json_object_object_add(rec, "id", clean_str(str_field(in, "id")));
    json_object_object_add(rec, "message_id", clean_str(str_field(in, "message_id")));
    json_object_object_add(rec, "sender_email", clean_str(sender));
    const char *sn = str_field(in, "sender_name");
    json_object_object_add(rec, "sender_name",
                           sn && sn[0] ? clean_str(sn) : json_object_new_null());
    json_object_object_add(rec, "to", json_object_new_array());
    json_object_object_add(rec, "cc", json_object_new_array());
    json_object_object_add(rec, "reply_to", json_object_new_array());
    json_object_object_add(rec, "date", clean_str(str_field(in, "date")));
    json_object_object_add(rec, "subject", clean_str(subject ? subject : ""));
    json_object_object_add(rec, "in_reply_to", json_object_new_null());
    json_object_object_add(rec, "references", json_object_new_array());
    json_object_object_add(rec, "body", clean_str(body ? body : ""));
    json_object_object_add(rec, "body_format", json_object_new_string("plain"));
    json_object *arr;
    int rc = 0;
    if (json_object_object_get_ex(in, "attachments", &arr) && arr) {
        size_t n = json_object_array_length(arr);
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = map_attachment(json_object_array_get_idx(arr, i), i, opts, atts, err, errlen);
    }
    json_object_object_add(rec, "attachments", atts);
    if (rc != 0) {
        json_object_put(rec);
        return rc;
    }
    json_object *v;
    if (json_object_object_get_ex(in, "priority", &v) && v)
        json_object_object_add(rec, "priority", json_object_get(v));
    /* unknown keys survive under "extra" */
    json_object *extra = NULL;
    json_object_object_foreach(in, key, val)
    {
        int known = 0;
        for (const char *const *k = seed_keys; *k && !known; k++)
            known = strcmp(key, *k) == 0;
        if (known || strcmp(key, "message_id") == 0 || strcmp(key, "date") == 0)
            continue;
        if (!extra && !(extra = json_object_new_object()))
            break;
        json_object_object_add(extra, key, json_object_get(val));
    }
    if (extra)
        json_object_object_add(rec, "extra", extra);
    *out = rec;
    return 0;
}

/*
 * Counts the parser left under the record's "diet" (how the body was made,
 * not what the diet removed) carry over into the diet's own object d, 0 when
 * the parser left none, so a dieted record always has them.
 */
static void keep_notes(json_object *rec, json_object *d)
{
    static const char *const notes[] = {"html_fallback", "nul_replaced", NULL};
    json_object *prior = NULL, *v;
    json_object_object_get_ex(rec, "diet", &prior);
    for (const char *const *k = notes; *k; k++) {
        int64_t n = prior && json_object_object_get_ex(prior, *k, &v) &&
                            json_object_is_type(v, json_type_int)
                        ? json_object_get_int64(v)
                        : 0;
        json_object_object_add(d, *k, json_object_new_int64(n));
    }
}

int em_normalize(json_object *in, const em_opts *opts, const em_diet_opts *diet, json_object **out,
                 char *err, size_t errlen)
{
    json_object *rec = NULL;
    int rc = em_from_seed(in, opts, &rec, err, errlen);
    if (rc != 0)
        return rc;
    const char *body = str_field(rec, "body");
    if (!body)
        body = "";
    if (!diet) {
        json_object_object_add(rec, "text", json_object_new_string(body));
        *out = rec;
        return 0;
    }
    char *text = NULL;
    em_diet_stats st;
    rc = em_diet(body, diet, &text, &st);
    if (rc != 0) {
        json_object_put(rec);
        snprintf(err, errlen, "out of memory in the token diet");
        return rc;
    }
    json_object *d = json_object_new_object();
    if (!d) {
        free(text);
        json_object_put(rec);
        return IK_E_NOMEM;
    }
    json_object_object_add(rec, "text", json_object_new_string(text));
    free(text);
    json_object_object_add(d, "chars_before", json_object_new_int64((int64_t)st.chars_in));
    json_object_object_add(d, "chars_after", json_object_new_int64((int64_t)st.chars_out));
    json_object_object_add(d, "chars_removed",
                           json_object_new_int64((int64_t)(st.chars_in - st.chars_out)));
    json_object_object_add(d, "quoted", json_object_new_int64((int64_t)st.quote_chars));
    json_object_object_add(d, "disclaimer", json_object_new_int64((int64_t)st.disclaimer_chars));
    json_object_object_add(d, "whitespace", json_object_new_int64((int64_t)st.whitespace_chars));
    json_object_object_add(d, "cut", json_object_new_int64((int64_t)st.cut_chars));
    keep_notes(rec, d);
    json_object_object_add(rec, "diet", d);
    *out = rec;
    return 0;
}

void em_set_source(json_object *email, const ik_host *host, const ik_record *rec)
{
    static const char *const keys[] = {
        "source",         "file",          "index",    "line",      "priority", "message_id",
        "delivery_count", "enqueued_time", "batch_id", "replay_of", NULL};
    json_object *src = json_object_new_object();
    if (!src)
        return;
    for (const char *const *k = keys; *k; k++) {
        const char *v = host->record_meta(rec, *k);
        if (v)
            json_object_object_add(src, *k, json_object_new_string(v));
    }
    json_object_object_add(email, "source", src);
}
