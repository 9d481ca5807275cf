/*
 * reply.c: parsers of what the API sends back (outside input): a Responses or
 * Chat Completions body, an error body, and the model's JSON output text.
 * Every rejection says what is wrong and where.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt_internal.h"

void gpt_reply_free(gpt_reply *r)
{
    if (!r)
        return;
    free(r->text);
    free(r->refusal);
    r->text = r->refusal = NULL;
}

/* Parses exactly len bytes of JSON; NULL with err naming the offset. */
static json_object *parse_json(const char *what, const char *s, size_t len, char *err,
                               size_t errlen)
{
    if (len > (size_t)0x7fffffff) {
        snprintf(err, errlen, "%s: body too large (%zu bytes)", what, len);
        return NULL;
    }
    json_tokener *t = json_tokener_new_ex(64);
    if (!t) {
        snprintf(err, errlen, "%s: out of memory", what);
        return NULL;
    }
    json_object *o = json_tokener_parse_ex(t, s, (int)len);
    enum json_tokener_error e = json_tokener_get_error(t);
    size_t off = json_tokener_get_parse_end(t);
    if (e == json_tokener_continue) {
        snprintf(err, errlen, "%s: JSON ends early at byte %zu (truncated)", what, len);
        json_object_put(o);
        o = NULL;
    } else if (e != json_tokener_success || !o) {
        snprintf(err, errlen, "%s: invalid JSON at byte %zu: %s", what, off,
                 json_tokener_error_desc(e));
        json_object_put(o);
        o = NULL;
    } else {
        while (off < len && (s[off] == ' ' || s[off] == '\n' || s[off] == '\r' || s[off] == '\t'))
            off++;
        if (off < len) {
            snprintf(err, errlen, "%s: unexpected data after the JSON value at byte %zu", what,
                     off);
            json_object_put(o);
            o = NULL;
        }
    }
    json_tokener_free(t);
    return o;
}

static json_object *get(json_object *o, const char *k)
{
    json_object *v = NULL;
    if (o && json_object_is_type(o, json_type_object))
        json_object_object_get_ex(o, k, &v);
    return v;
}

static const char *gets_(json_object *o, const char *k)
{
    json_object *v = get(o, k);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* A non-negative integer usage field; absent is 0, a wrong type is an error. */
static int usage_int(json_object *o, const char *k, long *out, const char *where, char *err,
                     size_t errlen)
{
    json_object *v = get(o, k);
    if (!v) {
        *out = 0;
        return 0;
    }
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
        snprintf(err, errlen, "%s.%s: expected a non-negative integer", where, k);
        return IK_E_PARSE;
    }
    *out = (long)json_object_get_int64(v);
    return 0;
}

static int parse_usage(int chat, json_object *u, gpt_usage *us, char *err, size_t errlen)
{
    if (!u)
        return 0;
    if (!json_object_is_type(u, json_type_object)) {
        snprintf(err, errlen, "usage: expected an object");
        return IK_E_PARSE;
    }
    int rc =
        usage_int(u, chat ? "prompt_tokens" : "input_tokens", &us->input, "usage", err, errlen);
    if (!rc)
        rc = usage_int(u, chat ? "completion_tokens" : "output_tokens", &us->output, "usage", err,
                       errlen);
    if (!rc)
        rc = usage_int(get(u, chat ? "prompt_tokens_details" : "input_tokens_details"),
                       "cached_tokens", &us->cached, "usage.input_details", err, errlen);
    if (!rc)
        rc = usage_int(get(u, chat ? "completion_tokens_details" : "output_tokens_details"),
                       "reasoning_tokens", &us->reasoning, "usage.output_details", err, errlen);
    return rc;
}

static int set_str(char **dst, const char *s)
{
    free(*dst);
    *dst = s ? strdup(s) : NULL;
    return s && !*dst ? IK_E_NOMEM : 0;
}

/* The chat completion o (an object) into out: finish reason, refusal or
 * content of choices[0]. 0, or IK_E_PARSE / IK_E_NOMEM with err set. */
static int parse_chat(json_object *o, gpt_reply *out, char *err, size_t errlen)
{
    json_object *choices = get(o, "choices");
    if (!choices || !json_object_is_type(choices, json_type_array) ||
        json_object_array_length(choices) == 0) {
        snprintf(err, errlen, "chat completion: `choices` missing or empty");
        return IK_E_PARSE;
    }
    json_object *c0 = json_object_array_get_idx(choices, 0);
    const char *fr = gets_(c0, "finish_reason");
    json_object *msg = get(c0, "message");
    if (!msg || !json_object_is_type(msg, json_type_object)) {
        snprintf(err, errlen, "chat completion: choices[0].message missing");
        return IK_E_PARSE;
    }
    int rc = 0;
    if (fr && strcmp(fr, "length") == 0)
        out->finish = GPT_FIN_LENGTH;
    else if (fr && strcmp(fr, "content_filter") == 0)
        out->finish = GPT_FIN_FILTER;
    else if (gets_(msg, "refusal")) {
        out->finish = GPT_FIN_REFUSAL;
        rc = set_str(&out->refusal, gets_(msg, "refusal"));
    } else if (!gets_(msg, "content")) {
        out->finish = GPT_FIN_FAILED;
        snprintf(err, errlen,
                 "chat completion: choices[0].message.content is empty "
                 "(finish_reason %s)",
                 fr ? fr : "missing");
    }
    if (!rc)
        rc = set_str(&out->text, gets_(msg, "content"));
    if (rc)
        snprintf(err, errlen, "chat completion: out of memory");
    return rc;
}

/* Appends more to out->text (several output_text parts are one answer).
 * 0 or IK_E_NOMEM. */
static int append_text(gpt_reply *out, const char *more)
{
    if (!out->text)
        return set_str(&out->text, more);
    char *g = realloc(out->text, strlen(out->text) + strlen(more) + 1);
    if (!g)
        return IK_E_NOMEM;
    strcat(g, more);
    out->text = g;
    return 0;
}

/* The content parts of output item i (a message): output_text parts
 * appended to out->text, a refusal part noted. 0, or IK_E_PARSE /
 * IK_E_NOMEM with err set. */
static int parse_message_item(json_object *it, size_t i, gpt_reply *out, char *err, size_t errlen)
{
    json_object *content = get(it, "content");
    if (!content || !json_object_is_type(content, json_type_array)) {
        snprintf(err, errlen, "response: output[%zu].content is not an array", i);
        return IK_E_PARSE;
    }
    for (size_t k = 0; k < json_object_array_length(content); k++) {
        json_object *part = json_object_array_get_idx(content, k);
        const char *pt = gets_(part, "type");
        int rc = 0;
        if (pt && strcmp(pt, "output_text") == 0 && gets_(part, "text")) {
            rc = append_text(out, gets_(part, "text"));
        } else if (pt && strcmp(pt, "refusal") == 0) {
            rc = set_str(&out->refusal,
                         gets_(part, "refusal") ? gets_(part, "refusal") : "(no refusal text)");
            if (out->finish == GPT_FIN_OK)
                out->finish = GPT_FIN_REFUSAL;
        }
        if (rc) {
            snprintf(err, errlen, "response: output[%zu].content[%zu]: out of memory", i, k);
            return rc;
        }
    }
    return 0;
}

/* The Responses object o (an object) into out: status (incomplete, failed)
 * and the message items' text. 0, or IK_E_PARSE / IK_E_NOMEM with err
 * set. */
static int parse_response(json_object *o, gpt_reply *out, char *err, size_t errlen)
{
    const char *status = gets_(o, "status");
    if (!status) {
        snprintf(err, errlen, "response: `status` missing");
        return IK_E_PARSE;
    }
    if (strcmp(status, "incomplete") == 0) {
        const char *reason = gets_(get(o, "incomplete_details"), "reason");
        out->finish =
            reason && strcmp(reason, "content_filter") == 0 ? GPT_FIN_FILTER : GPT_FIN_LENGTH;
    } else if (strcmp(status, "completed") != 0) {
        out->finish = GPT_FIN_FAILED;
        const char *m = gets_(get(o, "error"), "message");
        snprintf(err, errlen, "response: status %s%s%s", status, m ? ": " : "", m ? m : "");
    }
    json_object *output = get(o, "output");
    if (output && !json_object_is_type(output, json_type_array)) {
        snprintf(err, errlen, "response: `output` is not an array");
        return IK_E_PARSE;
    }
    for (size_t i = 0; output && i < json_object_array_length(output); i++) {
        json_object *it = json_object_array_get_idx(output, i);
        const char *type = gets_(it, "type");
        if (!type || strcmp(type, "message") != 0)
            continue;
        int rc = parse_message_item(it, i, out, err, errlen);
        if (rc)
            return rc;
    }
    if (out->finish == GPT_FIN_OK && !out->text) {
        out->finish = GPT_FIN_FAILED;
        snprintf(err, errlen, "response: completed without an output_text part");
    }
    return 0;
}

int gpt_parse_reply(int chat, const char *body, size_t len, gpt_reply *out, char *err,
                    size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *what = chat ? "chat completion" : "response";
    json_object *o = parse_json(what, body, len, err, errlen);
    if (!o)
        return IK_E_PARSE;
    int rc = 0;
    if (!json_object_is_type(o, json_type_object)) {
        snprintf(err, errlen, "%s: top level is not an object", what);
        rc = IK_E_PARSE;
    } else {
        const char *id = gets_(o, "id");
        snprintf(out->id, sizeof out->id, "%s", id ? id : "");
        rc = parse_usage(chat, get(o, "usage"), &out->usage, err, errlen);
        if (!rc)
            rc = chat ? parse_chat(o, out, err, errlen) : parse_response(o, out, err, errlen);
    }
    if (rc)
        gpt_reply_free(out);
    json_object_put(o);
    return rc;
}

int gpt_parse_error(const char *body, size_t len, gpt_api_error *out)
{
    memset(out, 0, sizeof *out);
    char err[200];
    json_object *o = parse_json("error body", body, len, err, sizeof err);
    json_object *e = get(o, "error");
    if (!e || !json_object_is_type(e, json_type_object)) {
        /* not the documented shape: keep a printable excerpt */
        size_t n = len < 200 ? len : 200, k = 0;
        for (size_t i = 0; i < n && k + 1 < sizeof out->message; i++)
            out->message[k++] = (body[i] >= 32 && body[i] < 127) ? body[i] : ' ';
        out->message[k] = 0;
        json_object_put(o);
        return IK_E_PARSE;
    }
    const char *m = gets_(e, "message"), *t = gets_(e, "type"), *c = gets_(e, "code"),
               *p = gets_(e, "param");
    snprintf(out->message, sizeof out->message, "%s", m ? m : "");
    snprintf(out->type, sizeof out->type, "%s", t ? t : "");
    snprintf(out->code, sizeof out->code, "%s", c ? c : "");
    snprintf(out->param, sizeof out->param, "%s", p ? p : "");
    json_object_put(o);
    return 0;
}

/* A copy of the wire value v with its keys renamed back by the map `back`
 * (see gpt_wire_schema), nested objects and arrays too; a key the map does
 * not know is kept as it is (validation then names it). NULL with err set
 * when two keys would land on one name, or on OOM. */
static json_object *unwire(json_object *v, json_object *back, const char *path, char *err,
                           size_t errlen)
{
    if (!back)
        return json_object_get(v);
    if (json_object_is_type(v, json_type_array)) {
        json_object *each = json_object_object_get(back, "[]");
        json_object *a = json_object_new_array();
        for (size_t i = 0; a && i < json_object_array_length(v); i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            json_object *c = unwire(json_object_array_get_idx(v, i), each, sub, err, errlen);
            if (!c) {
                json_object_put(a);
                return NULL;
            }
            json_object_array_add(a, c);
        }
        return a;
    }
    if (!json_object_is_type(v, json_type_object))
        return json_object_get(v);
    json_object *o = json_object_new_object();
    json_object_object_foreach(v, k, val)
    {
        json_object *entry = json_object_object_get(back, k);
        const char *name =
            entry ? json_object_get_string(json_object_object_get(entry, "name")) : k;
        char sub[256];
        snprintf(sub, sizeof sub, "%s.%s", path, k);
        if (!o || json_object_object_get_ex(o, name, NULL)) {
            if (o)
                snprintf(err, errlen, "model output: %s: property %s given twice", sub, name);
            else
                snprintf(err, errlen, "model output: out of memory");
            json_object_put(o);
            return NULL;
        }
        json_object *c =
            unwire(val, entry ? json_object_object_get(entry, "props") : NULL, sub, err, errlen);
        if (!c && val) {
            json_object_put(o);
            return NULL;
        }
        json_object_object_add(o, name, c);
    }
    return o;
}

int gpt_parse_results(const char *text, json_object **results, char *err, size_t errlen)
{
    return gpt_parse_results_wire(text, NULL, results, err, errlen);
}

int gpt_parse_results_wire(const char *text, json_object *back, json_object **results, char *err,
                           size_t errlen)
{
    *results = NULL;
    if (!text) {
        snprintf(err, errlen, "model output: empty");
        return IK_E_PARSE;
    }
    json_object *o = parse_json("model output", text, strlen(text), err, errlen);
    if (!o)
        return IK_E_PARSE;
    json_object *r = get(o, "results");
    if (!r || !json_object_is_type(r, json_type_array)) {
        snprintf(err, errlen, "model output: no `results` array at the top level");
        json_object_put(o);
        return IK_E_INVAL;
    }
    *results = unwire(r, back, "results", err, errlen);
    json_object_put(o);
    return *results ? 0 : IK_E_INVAL;
}

/* Which email of a request of k (0..k-1) the answer `it` is for, by its
 * email_id: the short id of the block, its position in the request written
 * in decimal ("1" .. "k"); k when it names none ("0", "01", "+1", " 1",
 * "1x" and any other text name none). */
size_t gpt_answer_position(json_object *it, size_t k)
{
    json_object *idv;
    if (!json_object_is_type(it, json_type_object) ||
        !json_object_object_get_ex(it, "email_id", &idv) ||
        !json_object_is_type(idv, json_type_string))
        return k;
    const char *s = json_object_get_string(idv);
    if (s[0] < '1' || s[0] > '9')
        return k;
    size_t n = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || n > k)
            return k;
        n = n * 10 + (size_t)(*s - '0');
    }
    return n <= k ? n - 1 : k;
}

/* ---- Batch API ---- */

void gpt_batch_line_free(gpt_batch_line *l)
{
    if (!l)
        return;
    free(l->body);
    l->body = NULL;
    l->body_len = 0;
}

/* Copies a string field into a fixed buffer; a wrong type is an error, a
 * value that does not fit is an error too (ids are compared, not cut). */
static int copy_str(json_object *o, const char *k, char *dst, size_t dlen, int required,
                    const char *where, char *err, size_t errlen)
{
    json_object *v = get(o, k);
    dst[0] = 0;
    if (!v || json_object_is_type(v, json_type_null)) {
        if (!required)
            return 0;
        snprintf(err, errlen, "%s: missing \"%s\"", where, k);
        return IK_E_PARSE;
    }
    if (!json_object_is_type(v, json_type_string)) {
        snprintf(err, errlen, "%s.%s: expected a string", where, k);
        return IK_E_PARSE;
    }
    size_t n = (size_t)json_object_get_string_len(v);
    if (n == 0 && required) {
        snprintf(err, errlen, "%s.%s: empty", where, k);
        return IK_E_PARSE;
    }
    if (n >= dlen) {
        snprintf(err, errlen, "%s.%s: longer than %zu bytes", where, k, dlen - 1);
        return IK_E_PARSE;
    }
    memcpy(dst, json_object_get_string(v), n + 1);
    return 0;
}

/* Like copy_str, but a value that does not fit is cut: messages only. */
static void copy_msg(json_object *o, const char *k, char *dst, size_t dlen)
{
    const char *s = gets_(o, k);
    snprintf(dst, dlen, "%s", s ? s : "");
}

int gpt_parse_batch_line(const char *line, size_t len, gpt_batch_line *out, char *err,
                         size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_object *o = parse_json("batch result line", line, len, err, errlen);
    if (!o)
        return IK_E_PARSE;
    int rc = IK_E_PARSE;
    if (!json_object_is_type(o, json_type_object)) {
        snprintf(err, errlen, "batch result line: expected a JSON object");
        goto out;
    }
    if (copy_str(o, "custom_id", out->custom_id, sizeof out->custom_id, 1, "batch result line", err,
                 errlen))
        goto out;
    json_object *resp = get(o, "response"), *e = get(o, "error");
    if (resp && !json_object_is_type(resp, json_type_null)) {
        if (!json_object_is_type(resp, json_type_object)) {
            snprintf(err, errlen, "batch result line: response: expected an object or null");
            goto out;
        }
        json_object *sc = get(resp, "status_code");
        if (!sc || !json_object_is_type(sc, json_type_int) || json_object_get_int64(sc) < 100 ||
            json_object_get_int64(sc) > 599) {
            snprintf(err, errlen,
                     "batch result line: response.status_code: expected an HTTP status");
            goto out;
        }
        out->status = (long)json_object_get_int64(sc);
        json_object *rid = get(resp, "request_id");
        if (rid && json_object_is_type(rid, json_type_string))
            snprintf(out->request_id, sizeof out->request_id, "%s", json_object_get_string(rid));
        json_object *body = get(resp, "body");
        if (!body || !json_object_is_type(body, json_type_object)) {
            snprintf(err, errlen, "batch result line: response.body: expected an object");
            goto out;
        }
        const char *s = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
        out->body = strdup(s ? s : "{}");
        if (!out->body) {
            snprintf(err, errlen, "batch result line: out of memory");
            rc = IK_E_NOMEM;
            goto out;
        }
        out->body_len = strlen(out->body);
    } else if (e && json_object_is_type(e, json_type_object)) {
        copy_msg(e, "code", out->err_code, sizeof out->err_code);
        copy_msg(e, "message", out->err_message, sizeof out->err_message);
        if (!out->err_code[0] && !out->err_message[0]) {
            snprintf(err, errlen, "batch result line: error: neither code nor message");
            goto out;
        }
    } else {
        snprintf(err, errlen, "batch result line: neither a response nor an error");
        goto out;
    }
    rc = 0;
out:
    json_object_put(o);
    if (rc)
        gpt_batch_line_free(out);
    return rc;
}

static const char *const batch_statuses[] = {"validating", "in_progress", "finalizing",
                                             "completed",  "failed",      "expired",
                                             "cancelling", "cancelled"};

int gpt_parse_batch_object(const char *body, size_t len, gpt_batch_info *out, char *err,
                           size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_object *o = parse_json("batch object", body, len, err, errlen);
    if (!o)
        return IK_E_PARSE;
    int rc = IK_E_PARSE;
    if (!json_object_is_type(o, json_type_object)) {
        snprintf(err, errlen, "batch object: expected a JSON object");
        goto out;
    }
    if (copy_str(o, "id", out->id, sizeof out->id, 1, "batch object", err, errlen) ||
        copy_str(o, "status", out->status, sizeof out->status, 1, "batch object", err, errlen) ||
        copy_str(o, "output_file_id", out->output_file_id, sizeof out->output_file_id, 0,
                 "batch object", err, errlen) ||
        copy_str(o, "error_file_id", out->error_file_id, sizeof out->error_file_id, 0,
                 "batch object", err, errlen))
        goto out;
    int known = 0;
    for (size_t i = 0; i < sizeof batch_statuses / sizeof *batch_statuses; i++)
        if (strcmp(out->status, batch_statuses[i]) == 0)
            known = 1;
    if (!known) {
        snprintf(err, errlen, "batch object: unknown status \"%.40s\"", out->status);
        goto out;
    }
    out->terminal = strcmp(out->status, "completed") == 0 || strcmp(out->status, "failed") == 0 ||
                    strcmp(out->status, "expired") == 0 || strcmp(out->status, "cancelled") == 0;
    json_object *errs = get(get(o, "errors"), "data");
    if (errs && json_object_is_type(errs, json_type_array) && json_object_array_length(errs) > 0) {
        json_object *e0 = json_object_array_get_idx(errs, 0);
        copy_msg(e0, "code", out->err_code, sizeof out->err_code);
        copy_msg(e0, "message", out->err_message, sizeof out->err_message);
        json_object *ln = get(e0, "line");
        out->err_line =
            ln && json_object_is_type(ln, json_type_int) ? (long)json_object_get_int64(ln) : 0;
    }
    json_object *rc_ = get(o, "request_counts");
    if (usage_int(rc_, "total", &out->total, "batch object.request_counts", err, errlen) ||
        usage_int(rc_, "completed", &out->completed, "batch object.request_counts", err, errlen) ||
        usage_int(rc_, "failed", &out->failed, "batch object.request_counts", err, errlen))
        goto out;
    rc = 0;
out:
    json_object_put(o);
    return rc;
}

int gpt_parse_file_object(const char *body, size_t len, char *id, size_t idlen, char *err,
                          size_t errlen)
{
    json_object *o = parse_json("file object", body, len, err, errlen);
    if (!o)
        return IK_E_PARSE;
    int rc = IK_E_PARSE;
    if (!json_object_is_type(o, json_type_object))
        snprintf(err, errlen, "file object: expected a JSON object");
    else
        rc = copy_str(o, "id", id, idlen, 1, "file object", err, errlen);
    json_object_put(o);
    return rc;
}
