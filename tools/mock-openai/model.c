/*
 * model.c: the fake model behind mock-openai's Responses and Chat Completions
 * endpoints and every batch line (batch.c): a request parsed and checked as
 * the API does, then answered with one deterministic extraction per
 * <email id="..."> block found in the input, derived from that email's text:
 *
 *   email         first address found in the body, else the From: address
 *   candidate_name/job_title/company_name/phone/website/industry
 *                 the rest of a body line "Candidate:"/"Title:"/"Company:"/
 *                 "Phone:"/"Website:"/"Industry:"
 *   location      "Location: City, ST"; linkedin_url: first linkedin.com URL
 *   referrer_name the From: name when the text says "refer"
 *
 * Usage comes from the o200k_base tokenizer (--rank-file) or its estimate;
 * output = the answer's tokens + --reasoning tokens per email. Per-minute
 * request and token limits (--rpm, --tpm) are token buckets reported with the
 * real x-ratelimit-* headers; a request that does not fit gets 429
 * rate_limit_exceeded as OpenAI sends it (the message names the limit hit and
 * says "Please try again in D"; no retry-after headers unless --retry-header
 * asks for them, azure: retry-after and retry-after-ms), one larger than the
 * whole TPM gets the non-retryable "Request too large".
 * The token charge is input + output tokens. Latency: --ttft-ms plus output
 * tokens / --tps, scaled by --latency-scale.
 *
 * Faults (queued by POST /mock/faults, see mock_openai.c) make a request
 * fail: rate_limit, insufficient_quota, unauthorized, context_length,
 * too_large, incomplete (reasoning used the whole budget: empty output),
 * truncated (200 with cut JSON), content_filter, refusal, server_error (500),
 * overloaded (503), timeout (sleeps --timeout-sleep-ms), duplicate (a result
 * repeated), unknown (a result for an id not sent), crossed (the first two
 * results trade every field but email_id).
 * Markers in an email's text act on every request that carries it:
 * MOCK_CONTENT_FILTER, MOCK_REFUSE, MOCK_OMIT (never answered),
 * MOCK_OMIT_IN_BATCH (not answered when batched with others), MOCK_INVALID
 * (a confidence of 1.5; without one in the schema, a number as
 * candidate_name), MOCK_INVALID_IN_BATCH, MOCK_UNGROUNDED (a phone number
 * that is not in the email). A request whose input exceeds
 * --max-input gets 400 context_length_exceeded, and an answer longer than
 * max_output_tokens comes back truncated (status incomplete / finish_reason
 * length), as the real API does.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "mock.h"
#include "rules.h"
#include "tokenizer/tokenizer.h"

static size_t count_tokens(mock *m, const char *s, size_t n)
{
    return m->tok ? ik_tok_count(m->tok, s, n) : ik_tok_estimate(s, n);
}

static void refill(bucket *b, double t)
{
    if (b->limit <= 0)
        return;
    b->level += (t - b->t) * b->limit / 60.0;
    if (b->level > b->limit)
        b->level = b->limit;
    b->t = t;
}

/* Go-style duration as OpenAI writes it: "1s", "6m0s", "12ms". */
static void go_duration(double secs, char *out, size_t n)
{
    if (secs < 0)
        secs = 0;
    if (secs < 1) {
        snprintf(out, n, "%ldms", (long)ceil(secs * 1000));
    } else if (secs < 60) {
        snprintf(out, n, "%.3gs", secs);
    } else {
        long m = (long)(secs / 60);
        snprintf(out, n, "%ldm%lds", m, (long)(secs - (double)m * 60));
    }
}

static void add_hdr(reply *r, const char *k, const char *v)
{
    if (r->nhdr >= 8)
        return;
    snprintf(r->hdr[r->nhdr][0], 64, "%s", k);
    snprintf(r->hdr[r->nhdr][1], 64, "%s", v);
    r->nhdr++;
}

typedef struct email_in {
    char *id;
    const char *text; /* inside the block */
    size_t len;
} email_in;

/* Value of a line "Key: value" in text, copied (caller frees); NULL if none. */
static char *line_value(const char *text, size_t len, const char *key)
{
    size_t kl = strlen(key);
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *q = p;
        while (q < le && (*q == ' ' || *q == '\t'))
            q++;
        if ((size_t)(le - q) > kl && strncasecmp(q, key, kl) == 0) {
            q += kl;
            while (q < le && *q == ' ')
                q++;
            const char *e = le;
            while (e > q && (e[-1] == ' ' || e[-1] == '\r'))
                e--;
            if (e > q)
                return strndup(q, (size_t)(e - q));
        }
        p = nl ? nl + 1 : end;
    }
    return NULL;
}

static int is_addr_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '+';
}

static char *find_address(const char *text, size_t len)
{
    for (size_t i = 1; i + 1 < len; i++) {
        if (text[i] != '@')
            continue;
        size_t s = i, e = i + 1;
        while (s > 0 && is_addr_char(text[s - 1]))
            s--;
        while (e < len && is_addr_char(text[e]))
            e++;
        while (e > i + 1 && text[e - 1] == '.')
            e--;
        if (s < i && memchr(text + i, '.', e - i))
            return strndup(text + s, e - s);
    }
    return NULL;
}

static json_object *str_or_null(char *s)
{
    json_object *o = s ? json_object_new_string(s) : NULL;
    free(s);
    return o;
}

/* Body of an email block: after the first blank line (headers before). */
static json_object *extract(const email_in *e, int invalid)
{
    const char *body = e->text;
    size_t blen = e->len;
    const char *blank = memmem(e->text, e->len, "\n\n", 2);
    if (blank) {
        body = blank + 2;
        blen = e->len - (size_t)(body - e->text);
    }
    char *from = line_value(e->text, blank ? (size_t)(blank - e->text) : e->len, "From:");
    char *from_name = NULL;
    if (from) {
        char *lt = strchr(from, '<');
        if (lt && lt > from) {
            size_t n = (size_t)(lt - from);
            while (n > 0 && from[n - 1] == ' ')
                n--;
            from_name = n ? strndup(from, n) : NULL;
        }
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "email_id", json_object_new_string(e->id));
    json_object_object_add(o, "candidate_name", str_or_null(line_value(body, blen, "Candidate:")));
    json_object_object_add(o, "job_title", str_or_null(line_value(body, blen, "Title:")));
    char *loc = line_value(body, blen, "Location:");
    if (loc) {
        json_object *l = json_object_new_object();
        char *comma = strchr(loc, ',');
        if (comma) {
            *comma = 0;
            char *st = comma + 1;
            while (*st == ' ')
                st++;
            json_object_object_add(l, "city", json_object_new_string(loc));
            json_object_object_add(l, "state", *st ? json_object_new_string(st) : NULL);
        } else {
            json_object_object_add(l, "city", json_object_new_string(loc));
            json_object_object_add(l, "state", NULL);
        }
        json_object_object_add(o, "location", l);
        free(loc);
    } else {
        json_object_object_add(o, "location", NULL);
    }
    json_object_object_add(o, "company_name", str_or_null(line_value(body, blen, "Company:")));
    int referral = memmem(e->text, e->len, "refer", 5) || memmem(e->text, e->len, "Refer", 5);
    json_object_object_add(o, "referrer_name",
                           referral && from_name ? json_object_new_string(from_name) : NULL);
    json_object_object_add(o, "phone", str_or_null(line_value(body, blen, "Phone:")));
    char *addr = find_address(body, blen);
    if (!addr && from)
        addr = find_address(from, strlen(from));
    json_object_object_add(o, "email", str_or_null(addr));
    json_object_object_add(o, "website", str_or_null(line_value(body, blen, "Website:")));
    const char *li = memmem(body, blen, "https://www.linkedin.com/", 25);
    char *lurl = NULL;
    if (li) {
        size_t n = 0;
        while (li + n < body + blen && li[n] != ' ' && li[n] != '\n' && li[n] != '\r' &&
               li[n] != '"')
            n++;
        lurl = strndup(li, n);
    }
    json_object_object_add(o, "linkedin_url", str_or_null(lurl));
    json_object_object_add(o, "industry", str_or_null(line_value(body, blen, "Industry:")));
    static const char *const fields[] = {"candidate_name", "job_title", "location", "company_name",
                                         "referrer_name",  "phone",     "email",    "website",
                                         "linkedin_url",   "industry"};
    json_object *c = json_object_new_object();
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        json_object *v = NULL;
        json_object_object_get_ex(o, fields[i], &v);
        const char *conf = v ? "0.9" : "0";
        if (invalid && i == 0)
            conf = "1.5";
        json_object_object_add(c, fields[i], json_object_new_double_s(atof(conf), conf));
    }
    json_object_object_add(o, "confidence", c);
    free(from);
    free(from_name);
    return o;
}

const char *getstr(json_object *o, const char *k)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

/* The property of the full answer a schema property `k` (sub-schema ps)
 * stands for: k itself, else the field its description names first
 * ("candidate_name: ..." or "candidate_name"), as compact keys have it;
 * NULL when neither is in full. */
static const char *field_for(json_object *full, const char *k, json_object *ps)
{
    if (json_object_object_get_ex(full, k, NULL))
        return k;
    json_object *d;
    if (!json_object_object_get_ex(ps, "description", &d) ||
        !json_object_is_type(d, json_type_string))
        return NULL;
    const char *ds = json_object_get_string(d), *colon = strchr(ds, ':');
    if (!colon) /* the name alone */
        colon = ds + strlen(ds);
    json_object_object_foreach(full, fk, fv)
    {
        (void)fv;
        if (strlen(fk) == (size_t)(colon - ds) && strncmp(fk, ds, (size_t)(colon - ds)) == 0)
            return fk;
    }
    return NULL;
}

/* The full answer (every field under its schema name, confidence
 * included) shaped as the request's schema s asks, as a model would: the
 * schema's properties in its order under its names, nested objects too; a
 * property the mock has nothing for is null, a field the schema does not
 * ask (confidence, when left out) is not written. A new reference. */
static json_object *shape(json_object *full, json_object *s, int depth)
{
    json_object *props, *any;
    /* a nullable object is {"anyOf": [{object}, {"type": "null"}]}: a
     * value takes the shape of the branch with properties */
    if (full && depth <= 8 && json_object_object_get_ex(s, "anyOf", &any) &&
        json_object_is_type(any, json_type_array))
        for (size_t i = 0; i < json_object_array_length(any); i++) {
            json_object *b = json_object_array_get_idx(any, i);
            if (json_object_object_get_ex(b, "properties", NULL))
                return shape(full, b, depth + 1);
        }
    if (!full || depth > 8 || !json_object_is_type(full, json_type_object) ||
        !json_object_object_get_ex(s, "properties", &props))
        return json_object_get(full);
    json_object *o = json_object_new_object();
    json_object_object_foreach(props, k, ps)
    {
        const char *f = field_for(full, k, ps);
        json_object *v = f ? json_object_object_get(full, f) : NULL;
        json_object_object_add(o, k, shape(v, ps, depth + 1));
    }
    return o;
}

/* The item schema of a packed request: properties.results.items. */
static json_object *item_schema(json_object *schema)
{
    json_object *p, *r, *it;
    if (json_object_object_get_ex(schema, "properties", &p) &&
        json_object_object_get_ex(p, "results", &r) && json_object_object_get_ex(r, "items", &it))
        return it;
    return NULL;
}

/* 1 when the item schema asks for a confidence object (under any name). */
static int asks_confidence(json_object *item)
{
    json_object *props = json_object_object_get(item, "properties");
    if (!json_object_is_type(props, json_type_object))
        return 0; /* a schema without per-email items: nothing to ask */
    json_object_object_foreach(props, k, ps)
    {
        const char *d = getstr(ps, "description");
        if (strcmp(k, "confidence") == 0 || (d && strncmp(d, "confidence:", 11) == 0))
            return 1;
    }
    return 0;
}

/* Finds <email id="...">...</email> blocks in text. */
static size_t parse_emails(const char *text, size_t len, email_in **out)
{
    size_t n = 0, cap = 0;
    email_in *v = NULL;
    const char *p = text, *end = text + len;
    static const char open[] = "<email id=\"";
    while (p < end) {
        const char *o = memmem(p, (size_t)(end - p), open, sizeof open - 1);
        if (!o)
            break;
        const char *ids = o + sizeof open - 1;
        const char *ide = memmem(ids, (size_t)(end - ids), "\">", 2);
        if (!ide)
            break;
        const char *body = ide + 2;
        const char *close = memmem(body, (size_t)(end - body), "</email>", 8);
        if (!close)
            break;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            email_in *g = realloc(v, cap * sizeof *g);
            if (!g)
                break;
            v = g;
        }
        /* unescape &quot; &lt; &gt; &amp; in the id */
        char *id = malloc((size_t)(ide - ids) + 1);
        if (!id)
            break;
        size_t k = 0;
        for (const char *q = ids; q < ide;) {
            if (strncmp(q, "&quot;", 6) == 0) {
                id[k++] = '"';
                q += 6;
            } else if (strncmp(q, "&lt;", 4) == 0) {
                id[k++] = '<';
                q += 4;
            } else if (strncmp(q, "&gt;", 4) == 0) {
                id[k++] = '>';
                q += 4;
            } else if (strncmp(q, "&amp;", 5) == 0) {
                id[k++] = '&';
                q += 5;
            } else {
                id[k++] = *q++;
            }
        }
        id[k] = 0;
        v[n].id = id;
        v[n].text = body;
        v[n].len = (size_t)(close - body);
        n++;
        p = close + 8;
    }
    *out = v;
    return n;
}

static int has_marker(const email_in *e, size_t n, const char *marker)
{
    size_t ml = strlen(marker);
    for (size_t i = 0; i < n; i++) {
        const char *h = memmem(e[i].text, e[i].len, marker, ml);
        /* MOCK_OMIT must not match MOCK_OMIT_IN_BATCH */
        while (h) {
            const char *after = h + ml;
            if (after >= e[i].text + e[i].len ||
                !(*after == '_' || (*after >= 'A' && *after <= 'Z')))
                return 1;
            h = memmem(after, (size_t)(e[i].text + e[i].len - after), marker, ml);
        }
    }
    return 0;
}

static int one_has(const email_in *e, const char *marker)
{
    return has_marker(e, 1, marker);
}

/* Appends the text of a Responses input or Chat message content to buf. */
static void append_content(json_object *content, char **buf, size_t *len, size_t *nmsg)
{
    if (!content)
        return;
    if (json_object_is_type(content, json_type_string)) {
        const char *s = json_object_get_string(content);
        size_t sl = strlen(s);
        char *g = realloc(*buf, *len + sl + 2);
        if (!g)
            return;
        *buf = g;
        memcpy(*buf + *len, s, sl);
        *len += sl;
        (*buf)[(*len)++] = '\n';
        (*buf)[*len] = 0;
        (*nmsg)++;
    } else if (json_object_is_type(content, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(content); i++) {
            json_object *it = json_object_array_get_idx(content, i), *v;
            if (json_object_is_type(it, json_type_string))
                append_content(it, buf, len, nmsg);
            else if (json_object_object_get_ex(it, "content", &v))
                append_content(v, buf, len, nmsg);
            else if (json_object_object_get_ex(it, "text", &v))
                append_content(v, buf, len, nmsg);
        }
    }
}

/* A model request parsed and checked: its text gathered (the emails are read
 * from text + user_off on) and its input tokens counted. */
typedef struct model_in {
    json_object *req; /* owned; the pointers below point into it */
    const char *model, *instr, *schema_s;
    json_object *schema, *fmt;
    char *text; /* owned */
    size_t tlen, nmsg, user_off;
    long max_out;
    size_t in_tok;
} model_in;

static void model_in_free(model_in *in)
{
    free(in->text);
    json_object_put(in->req);
}

/* A Chat Completions request's text (every message, user_off where the
 * user messages start), format, schema and max_completion_tokens into in;
 * the pointers point into req. */
static void gather_chat(json_object *req, model_in *in)
{
    json_object *v;
    /* emails are read from user messages only (user_off: where they start) */
    if (json_object_object_get_ex(req, "messages", &v) && json_object_is_type(v, json_type_array))
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            json_object *msg = json_object_array_get_idx(v, i);
            append_content(json_object_object_get(msg, "content"), &in->text, &in->tlen, &in->nmsg);
            const char *role = getstr(msg, "role");
            if (!role || strcmp(role, "user") != 0)
                in->user_off = in->tlen;
        }
    json_object *rf, *js;
    if (json_object_object_get_ex(req, "response_format", &rf) &&
        json_object_object_get_ex(rf, "json_schema", &js)) {
        in->fmt = js;
        json_object_object_get_ex(js, "schema", &in->schema);
    }
    if (json_object_object_get_ex(req, "max_completion_tokens", &v))
        in->max_out = json_object_get_int64(v);
}

/* A Responses request's text (instructions, then the input from user_off
 * on), format, schema and max_output_tokens into in; the pointers point
 * into req. */
static void gather_responses(json_object *req, model_in *in)
{
    json_object *v;
    in->instr = getstr(req, "instructions");
    if (in->instr)
        append_content(json_object_object_get(req, "instructions"), &in->text, &in->tlen,
                       &in->nmsg);
    in->user_off = in->tlen;
    if (json_object_object_get_ex(req, "input", &v))
        append_content(v, &in->text, &in->tlen, &in->nmsg);
    json_object *t;
    if (json_object_object_get_ex(req, "text", &t) &&
        json_object_object_get_ex(t, "format", &in->fmt))
        json_object_object_get_ex(in->fmt, "schema", &in->schema);
    if (json_object_object_get_ex(req, "max_output_tokens", &v))
        in->max_out = json_object_get_int64(v);
}

/* Parses body and checks it as the API does; 0 and in filled, or -1 with the
 * 400 in r. Shared by the answer and the batch queue's token count. */
static int model_parse(mock *m, int chat, const char *body, size_t blen, model_in *in, reply *r)
{
    memset(in, 0, sizeof *in);
    json_tokener *jt = json_tokener_new();
    if (!jt) {
        error_reply(r, 500, "mock: out of memory", "server_error", NULL, NULL);
        return -1;
    }
    json_object *req = json_tokener_parse_ex(jt, body, (int)blen);
    enum json_tokener_error jerr = json_tokener_get_error(jt);
    json_tokener_free(jt);
    if (!req || jerr != json_tokener_success || !json_object_is_type(req, json_type_object)) {
        json_object_put(req);
        error_reply(r, 400, "We could not parse the JSON body of your request.",
                    "invalid_request_error", NULL, NULL);
        return -1;
    }
    in->req = req;
    in->model = getstr(req, "model");
    if (!in->model && !json_object_object_get_ex(req, "model", NULL)) {
        error_reply(r, 400, "Missing required parameter: 'model'.", "invalid_request_error",
                    "model", "missing_required_parameter");
        model_in_free(in);
        return -1;
    }
    /* what the real API refuses (rules.c, strict_schema.c) */
    if (mock_check_request(chat, req, r) != 0) {
        model_in_free(in);
        return -1;
    }
    if (!in->model) {
        error_reply(r, 400, "Invalid type for 'model': expected a string.", "invalid_request_error",
                    "model", "invalid_type");
        model_in_free(in);
        return -1;
    }
    /* gather text */
    in->text = calloc(1, 1);
    if (!in->text) {
        error_reply(r, 500, "mock: out of memory", "server_error", NULL, NULL);
        model_in_free(in);
        return -1;
    }
    in->max_out = 128000;
    if (chat)
        gather_chat(req, in);
    else
        gather_responses(req, in);
    json_object *strict = NULL;
    if (!in->fmt || !in->schema || !json_object_object_get_ex(in->fmt, "strict", &strict) ||
        !json_object_get_boolean(strict)) {
        error_reply(r, 400, "This mock only answers strict json_schema structured output.",
                    "invalid_request_error", chat ? "response_format" : "text.format", NULL);
        model_in_free(in);
        return -1;
    }
    in->schema_s = json_object_to_json_string_ext(in->schema, JSON_C_TO_STRING_PLAIN);
    in->in_tok = count_tokens(m, in->text, in->tlen) +
                 count_tokens(m, in->schema_s, strlen(in->schema_s)) + 3 * in->nmsg + 3;
    return 0;
}

size_t mock_input_tokens(mock *m, int chat, const char *body, size_t blen)
{
    model_in in;
    reply r = {0};
    if (model_parse(m, chat, body, blen, &in, &r) != 0) {
        free(r.body);
        return 0;
    }
    size_t n = in.in_tok;
    model_in_free(&in);
    return n;
}

/* What the steps of one model request share, from the parsed request to
 * the answer; owned by mock_model(), freed by model_run_free(). */
typedef struct model_run {
    model_in in; /* the request (owned) */
    int chat, batch;
    email_in *emails; /* owned, ne of them; their text points into in.text */
    size_t ne;
    char fault[32];   /* the fault this request took, "" for none */
    size_t cached;    /* input tokens read from the prompt cache */
    char *answer;     /* owned: the full answer's JSON text */
    size_t ans_tok;   /* tokens of answer */
    size_t reasoning; /* reasoning tokens: --reasoning per email */
    size_t out_tok;   /* ans_tok + reasoning */
    double charge;    /* what the TPM bucket is charged: input + output */
} model_run;

static void model_run_free(model_run *run)
{
    for (size_t i = 0; i < run->ne; i++)
        free(run->emails[i].id);
    free(run->emails);
    free(run->answer);
    model_in_free(&run->in);
}

/* Counts a Responses request that asks to be stored (store absent or true). */
static void count_stored(mock *m, json_object *req)
{
    json_object *st;
    if (!json_object_object_get_ex(req, "store", &st) || json_object_get_boolean(st)) {
        pthread_mutex_lock(&m->mu);
        m->stored++;
        pthread_mutex_unlock(&m->mu);
    }
}

/* FNV-1a of the string s folded into h. */
static uint64_t fnv_str(uint64_t h, const char *s)
{
    for (const char *q = s; *q; q++)
        h = (h ^ (unsigned char)*q) * 1099511628211ull;
    return h;
}

/* The prompt-cache lookup: the instructions (Chat: the first message) and the
 * schema form the prefix, keyed with prompt_cache_key; a prefix seen before
 * and at least 1024 tokens long is read from the cache in 128-token blocks.
 * Records the prefix as seen. Returns the cached input tokens. */
static size_t cached_tokens(mock *m, int chat, const model_in *in)
{
    const char *pre = in->instr;
    if (!pre && chat) {
        json_object *msgs = json_object_object_get(in->req, "messages");
        json_object *m0 = msgs ? json_object_array_get_idx(msgs, 0) : NULL;
        pre = getstr(m0, "content");
    }
    size_t pre_tok = (pre ? count_tokens(m, pre, strlen(pre)) : 0) +
                     count_tokens(m, in->schema_s, strlen(in->schema_s));
    uint64_t h = fnv_str(1469598103934665603ull, pre ? pre : "");
    h = fnv_str(h, in->schema_s);
    const char *pck = getstr(in->req, "prompt_cache_key");
    h = fnv_str(h, pck ? pck : "");
    pthread_mutex_lock(&m->mu);
    int seen = 0;
    for (size_t i = 0; i < m->nprefixes; i++)
        seen |= m->prefixes[i] == h;
    if (!seen)
        m->prefixes[m->nprefixes++ % MAX_PREFIXES] = h;
    if (m->nprefixes > MAX_PREFIXES)
        m->nprefixes = MAX_PREFIXES;
    pthread_mutex_unlock(&m->mu);
    return seen && pre_tok >= 1024 ? pre_tok / 128 * 128 : 0;
}

/* One extraction per email, as its markers say (omitted, invalid,
 * ungrounded). item is the request's item schema (NULL: none). A new
 * array. */
static json_object *email_results(const email_in *emails, size_t ne, json_object *item)
{
    json_object *results = json_object_new_array();
    for (size_t i = 0; i < ne; i++) {
        if (one_has(&emails[i], "MOCK_OMIT"))
            continue;
        if (ne > 1 && one_has(&emails[i], "MOCK_OMIT_IN_BATCH"))
            continue;
        int inv = one_has(&emails[i], "MOCK_INVALID") ||
                  (ne > 1 && one_has(&emails[i], "MOCK_INVALID_IN_BATCH"));
        json_object *ex = extract(&emails[i], inv);
        if (ex && inv && !asks_confidence(item)) /* no confidence to break: a wrong type */
            json_object_object_add(ex, "candidate_name", json_object_new_double_s(1.5, "1.5"));
        if (ex && one_has(&emails[i], "MOCK_UNGROUNDED")) /* a value from nowhere */
            json_object_object_add(ex, "phone", json_object_new_string("(999) 555-0199"));
        json_object_array_add(results, ex);
    }
    return results;
}

/* The answer faults applied to results in place: duplicate, crossed,
 * unknown; any other fault leaves them alone. */
static void result_faults(json_object *results, const char *fname)
{
    if (strcmp(fname, "duplicate") == 0 && json_object_array_length(results) > 0)
        json_object_array_add(results, json_object_get(json_object_array_get_idx(results, 0)));
    if (strcmp(fname, "crossed") == 0 && json_object_array_length(results) >= 2) {
        /* the packing failure grounding exists for: two answers trade
         * their fields, each keeping its own email_id */
        json_object *a = json_object_array_get_idx(results, 0);
        json_object *b = json_object_array_get_idx(results, 1);
        json_object_object_foreach(a, key, va)
        {
            json_object *vb = NULL;
            if (strcmp(key, "email_id") == 0 || !json_object_object_get_ex(b, key, &vb))
                continue;
            json_object_get(va);
            json_object_object_add(a, key, json_object_get(vb));
            json_object_object_add(b, key, va);
        }
    }
    if (strcmp(fname, "unknown") == 0) {
        email_in ghost = {"not-sent-by-you", "From: x\n\nCandidate: Ghost", 25};
        json_object_array_add(results, extract(&ghost, 0));
    }
}

/* The answer's text, {"results": [...]} with each result shaped as the
 * request's schema asks (names, order, what is left out), written as a model
 * writes JSON. The caller frees it. */
static char *build_answer(const model_run *run)
{
    json_object *item = item_schema(run->in.schema);
    json_object *results = email_results(run->emails, run->ne, item);
    result_faults(results, run->fault);
    if (item) {
        json_object *shaped = json_object_new_array();
        for (size_t i = 0; i < json_object_array_length(results); i++)
            json_object_array_add(shaped, shape(json_object_array_get_idx(results, i), item, 0));
        json_object_put(results);
        results = shaped;
    }
    json_object *ans = json_object_new_object();
    json_object_object_add(ans, "results", results);
    /* as a model writes JSON: "https://", not json-c's default "https:\/\/" (more tokens) */
    char *answer = strdup(json_object_to_json_string_ext(ans, JSON_C_TO_STRING_PLAIN |
                                                                  JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(ans);
    return answer;
}

/* The per-minute buckets' verdict on one request and the x-ratelimit-*
 * figures after it. */
typedef struct limits {
    int limited;     /* 0: fits; 1: not now (retryable); 2: larger than the whole TPM */
    int limited_req; /* 1: the request bucket is what ran out */
    double wait_s;   /* until it would fit */
    double used_r, used_t;
    char lim_r[32], lim_t[32], rem_r[32], rem_t[32], rs_r[32], rs_t[32];
} limits;

/* The rate-limit decision, under m->mu: a batch line never meets the
 * buckets; a request that fits takes one request and its charge from them
 * unless a rate_limit fault rejects it. */
static void bucket_decide(mock *m, const model_run *run, limits *l)
{
    double charge = run->charge;
    if (run->batch) {
        /* batch has a pool of its own: the per-minute buckets never see it */
    } else if (m->tpm.limit > 0 && charge > m->tpm.limit) {
        l->limited = 2;
    } else if ((m->rpm.limit > 0 && m->rpm.level < 1) ||
               (m->tpm.limit > 0 && m->tpm.level < charge)) {
        l->limited = 1;
        double wr =
            m->rpm.limit > 0 && m->rpm.level < 1 ? (1 - m->rpm.level) * 60 / m->rpm.limit : 0;
        double wt = m->tpm.limit > 0 && m->tpm.level < charge
                        ? (charge - m->tpm.level) * 60 / m->tpm.limit
                        : 0;
        l->wait_s = wr > wt ? wr : wt;
        l->limited_req = wr > 0 && wr >= wt;
    } else if (!run->fault[0] || strcmp(run->fault, "rate_limit") != 0) {
        /* failed requests count too, but a rejected one takes nothing here */
        if (m->rpm.limit > 0)
            m->rpm.level -= 1;
        if (m->tpm.limit > 0)
            m->tpm.level -= charge;
        m->charged += (long long)charge;
    }
}

/* The x-ratelimit-* figures of the buckets as they stand, under m->mu. */
static void bucket_figures(mock *m, limits *l)
{
    snprintf(l->lim_r, sizeof l->lim_r, "%.0f", m->rpm.limit > 0 ? m->rpm.limit : 1e9);
    snprintf(l->lim_t, sizeof l->lim_t, "%.0f", m->tpm.limit > 0 ? m->tpm.limit : 1e12);
    snprintf(l->rem_r, sizeof l->rem_r, "%.0f", m->rpm.limit > 0 ? floor(m->rpm.level) : 1e9);
    snprintf(l->rem_t, sizeof l->rem_t, "%.0f", m->tpm.limit > 0 ? floor(m->tpm.level) : 1e12);
    l->used_r = m->rpm.limit > 0 ? ceil(m->rpm.limit - m->rpm.level) : 0;
    l->used_t = m->tpm.limit > 0 ? ceil(m->tpm.limit - m->tpm.level) : 0;
    go_duration(m->rpm.limit > 0 ? (m->rpm.limit - m->rpm.level) * 60 / m->rpm.limit : 0, l->rs_r,
                sizeof l->rs_r);
    go_duration(m->tpm.limit > 0 ? (m->tpm.limit - m->tpm.level) * 60 / m->tpm.limit : 0, l->rs_t,
                sizeof l->rs_t);
}

/* Counts the request, refills the buckets and fills l with their verdict
 * and figures; a synchronous request gets the x-ratelimit-* headers. */
static void take_buckets(mock *m, const model_run *run, limits *l, reply *r)
{
    memset(l, 0, sizeof *l);
    double now = mock_now_s();
    pthread_mutex_lock(&m->mu);
    m->requests++;
    m->emails += (long)run->ne;
    refill(&m->rpm, now);
    refill(&m->tpm, now);
    bucket_decide(m, run, l);
    bucket_figures(m, l);
    if (l->limited || strcmp(run->fault, "rate_limit") == 0)
        m->rate_limited++;
    pthread_mutex_unlock(&m->mu);
    if (!run->batch) {
        add_hdr(r, "x-ratelimit-limit-requests", l->lim_r);
        add_hdr(r, "x-ratelimit-limit-tokens", l->lim_t);
        add_hdr(r, "x-ratelimit-remaining-requests", l->rem_r);
        add_hdr(r, "x-ratelimit-remaining-tokens", l->rem_t);
        add_hdr(r, "x-ratelimit-reset-requests", l->rs_r);
        add_hdr(r, "x-ratelimit-reset-tokens", l->rs_t);
    }
}

/* The 429 rate_limit_exceeded of a request that does not fit the bucket
 * l names (requests when l->limited_req, else tokens), as OpenAI words it:
 * the limit, what was used and requested, "Please try again in D" and the
 * error type "requests" or "tokens". The retry headers follow
 * --retry-header: none (OpenAI: the x-ratelimit-* headers only), ms, s, or
 * azure (retry-after and retry-after-ms). */
static void rate_limited_reply(mock *m, reply *r, const char *model, const limits *l, double charge)
{
    char msg[512], wait[32], w[32];
    double wait_s = l->wait_s;
    if (wait_s <= 0)
        wait_s = 0.05;
    go_duration(wait_s, wait, sizeof wait);
    if (l->limited_req)
        snprintf(msg, sizeof msg,
                 "Rate limit reached for %s in organization org-mock on requests per min (RPM): "
                 "Limit %s, Used %.0f, Requested 1. Please try again in %s. Visit "
                 "https://platform.openai.com/account/rate-limits to learn more.",
                 model, l->lim_r, l->used_r, wait);
    else
        snprintf(msg, sizeof msg,
                 "Rate limit reached for %s in organization org-mock on tokens per min (TPM): "
                 "Limit %s, Used %.0f, Requested %.0f. Please try again in %s. Visit "
                 "https://platform.openai.com/account/rate-limits to learn more.",
                 model, l->lim_t, l->used_t, charge, wait);
    error_reply(r, 429, msg, l->limited_req ? "requests" : "tokens", NULL, "rate_limit_exceeded");
    if (m->retry_header == RETRY_MS || m->retry_header == RETRY_AZURE) {
        snprintf(w, sizeof w, "%.0f", ceil(wait_s * 1000));
        add_hdr(r, "retry-after-ms", w);
    }
    if (m->retry_header == RETRY_S || m->retry_header == RETRY_AZURE) {
        snprintf(w, sizeof w, "%.0f", ceil(wait_s));
        add_hdr(r, "retry-after", w);
    }
}

/* The error answer, if any, of a request the buckets, its fault or
 * --max-input turn away (a timeout fault sleeps first, or marks a batch
 * line timed out). Returns 1 with the error in r, 0 when the request is to
 * be answered. */
static int model_error(mock *m, const model_run *run, const limits *l, reply *r)
{
    const char *fname = run->fault;
    if (l->limited == 2 || strcmp(fname, "too_large") == 0) {
        char msg[512];
        snprintf(msg, sizeof msg,
                 "Request too large for %s in organization org-mock on tokens per min (TPM): "
                 "Limit %s, Requested %.0f. The input or output tokens must be reduced in order "
                 "to run successfully.",
                 run->in.model, l->lim_t, run->charge);
        error_reply(r, 429, msg, "tokens", NULL, "rate_limit_exceeded");
    } else if (l->limited == 1 || strcmp(fname, "rate_limit") == 0) {
        rate_limited_reply(m, r, run->in.model, l, run->charge);
    } else if (strcmp(fname, "insufficient_quota") == 0) {
        error_reply(r, 429,
                    "You exceeded your current quota, please check your plan and billing details.",
                    "insufficient_quota", NULL, "insufficient_quota");
    } else if (strcmp(fname, "unauthorized") == 0) {
        error_reply(r, 401, "Incorrect API key provided.", "invalid_request_error", NULL,
                    "invalid_api_key");
    } else if (strcmp(fname, "context_length") == 0 || (long)run->in.in_tok > m->max_input) {
        error_reply(r, 400,
                    run->chat ? "Input tokens exceed the configured limit of 272000 tokens."
                              : "Your input exceeds the context window of this model. Please "
                                "adjust your input and try again.",
                    "invalid_request_error", run->chat ? "messages" : "input",
                    "context_length_exceeded");
    } else if (strcmp(fname, "server_error") == 0) {
        error_reply(r, 500,
                    "The server had an error while processing your request. Sorry about that!",
                    "server_error", NULL, "server_error");
    } else if (strcmp(fname, "overloaded") == 0) {
        error_reply(r, 503, "The engine is currently overloaded, please try again later.",
                    "server_error", NULL, NULL);
    } else if (strcmp(fname, "timeout") == 0) {
        /* a batch line that times out has no HTTP answer at all */
        if (run->batch)
            r->timed_out = 1;
        else
            usleep((useconds_t)m->timeout_sleep_ms * 1000);
        error_reply(r, 504, "timeout", "server_error", NULL, NULL);
    } else {
        return 0;
    }
    return 1;
}

/* How a 200 answer ends: whole (ok), cut at max_output_tokens (length),
 * reasoning only (empty), stopped by the content filter (filter), refused
 * (refusal), or cut JSON though complete (truncated). */
typedef enum { OUT_OK, OUT_LENGTH, OUT_EMPTY, OUT_FILTER, OUT_REFUSAL, OUT_TRUNCATED } outcome;

/* A 200 answer as the client sees it: its text and its usage. */
typedef struct answer_out {
    outcome how;
    const char *text; /* the answer, cut, or NULL (none); not owned */
    char *cut;        /* owned: the cut answer text points to, if any */
    size_t in, cached, out, reason;
} answer_out;

/* The outcome a fault, a marker or max_output_tokens gives the answer. */
static outcome decide_outcome(const model_run *run)
{
    const char *fname = run->fault;
    if (strcmp(fname, "content_filter") == 0 ||
        has_marker(run->emails, run->ne, "MOCK_CONTENT_FILTER"))
        return OUT_FILTER;
    if (strcmp(fname, "refusal") == 0 || has_marker(run->emails, run->ne, "MOCK_REFUSE"))
        return OUT_REFUSAL;
    if (strcmp(fname, "incomplete") == 0)
        return OUT_EMPTY;
    if (strcmp(fname, "truncated") == 0)
        return OUT_TRUNCATED;
    if ((long)run->out_tok > run->in.max_out)
        return OUT_LENGTH;
    return OUT_OK;
}

/* Fills a with the outcome, the text the client gets (a cut answer is
 * owned by a->cut) and the usage: a cut answer is charged max_output_tokens
 * (length) or half (truncated), an empty one max_output_tokens, a filtered
 * one its reasoning, a refusal its reasoning and the refusal's words. */
static void outcome_usage(const model_run *run, answer_out *a)
{
    const char *answer = run->answer;
    long max_out = run->in.max_out;
    memset(a, 0, sizeof *a);
    a->how = decide_outcome(run);
    a->in = run->in.in_tok;
    a->cached = run->cached;
    a->text = answer;
    a->out = run->out_tok;
    if (a->how == OUT_LENGTH || a->how == OUT_TRUNCATED) {
        size_t keep = strlen(answer) / 2;
        if (a->how == OUT_LENGTH && run->ans_tok > 0 && max_out > (long)run->reasoning)
            keep = (size_t)((double)strlen(answer) * (double)(max_out - (long)run->reasoning) /
                            (double)run->ans_tok);
        if (keep >= strlen(answer))
            keep = strlen(answer) / 2;
        a->cut = strndup(answer, keep);
        a->text = a->cut;
        a->out = a->how == OUT_LENGTH ? (size_t)max_out : run->out_tok / 2;
    } else if (a->how == OUT_EMPTY) {
        a->text = NULL;
        a->out = (size_t)max_out;
    } else if (a->how == OUT_FILTER) {
        a->text = NULL;
        a->out = run->reasoning;
    } else if (a->how == OUT_REFUSAL) {
        a->text = NULL;
        a->out = run->reasoning + 12;
    }
    a->reason = a->out < run->reasoning ? a->out : run->reasoning;
}

/* The Chat Completions usage object of a. A new reference. */
static json_object *chat_usage(const answer_out *a)
{
    json_object *usage = json_object_new_object();
    json_object_object_add(usage, "prompt_tokens", json_object_new_int64((int64_t)a->in));
    json_object_object_add(usage, "completion_tokens", json_object_new_int64((int64_t)a->out));
    json_object_object_add(usage, "total_tokens", json_object_new_int64((int64_t)(a->in + a->out)));
    json_object *pd = json_object_new_object(), *cd = json_object_new_object();
    json_object_object_add(pd, "cached_tokens", json_object_new_int64((int64_t)a->cached));
    json_object_object_add(cd, "reasoning_tokens", json_object_new_int64((int64_t)a->reason));
    json_object_object_add(usage, "prompt_tokens_details", pd);
    json_object_object_add(usage, "completion_tokens_details", cd);
    return usage;
}

/* The Chat Completions reply body of a: one choice whose finish_reason
 * says how it ended. A new reference. */
static json_object *chat_body(const char *model, const answer_out *a)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string("chatcmpl-mock"));
    json_object_object_add(o, "object", json_object_new_string("chat.completion"));
    json_object_object_add(o, "created", json_object_new_int64((int64_t)time(NULL)));
    json_object_object_add(o, "model", json_object_new_string(model));
    json_object *ch = json_object_new_object(), *msgo = json_object_new_object();
    json_object_object_add(ch, "index", json_object_new_int(0));
    json_object_object_add(msgo, "role", json_object_new_string("assistant"));
    json_object_object_add(msgo, "content", a->text ? json_object_new_string(a->text) : NULL);
    json_object_object_add(msgo, "refusal",
                           a->how == OUT_REFUSAL
                               ? json_object_new_string("I'm sorry, I can't help with that.")
                               : NULL);
    json_object_object_add(ch, "message", msgo);
    const char *fr = "stop";
    if (a->how == OUT_LENGTH || a->how == OUT_EMPTY)
        fr = "length";
    else if (a->how == OUT_FILTER)
        fr = "content_filter";
    json_object_object_add(ch, "finish_reason", json_object_new_string(fr));
    json_object *chs = json_object_new_array();
    json_object_array_add(chs, ch);
    json_object_object_add(o, "choices", chs);
    json_object_object_add(o, "usage", chat_usage(a));
    return o;
}

/* The Responses usage object of a. A new reference. */
static json_object *responses_usage(const answer_out *a)
{
    json_object *usage = json_object_new_object();
    json_object_object_add(usage, "input_tokens", json_object_new_int64((int64_t)a->in));
    json_object *idt = json_object_new_object(), *odt = json_object_new_object();
    json_object_object_add(idt, "cached_tokens", json_object_new_int64((int64_t)a->cached));
    json_object_object_add(usage, "input_tokens_details", idt);
    json_object_object_add(usage, "output_tokens", json_object_new_int64((int64_t)a->out));
    json_object_object_add(odt, "reasoning_tokens", json_object_new_int64((int64_t)a->reason));
    json_object_object_add(usage, "output_tokens_details", odt);
    json_object_object_add(usage, "total_tokens", json_object_new_int64((int64_t)(a->in + a->out)));
    return usage;
}

/* The Responses output array of a: a reasoning item, then the message (its
 * text or its refusal) unless there is neither. A new reference. */
static json_object *responses_output(const answer_out *a, int incomplete)
{
    json_object *out = json_object_new_array();
    json_object *ri = json_object_new_object();
    json_object_object_add(ri, "type", json_object_new_string("reasoning"));
    json_object_object_add(ri, "id", json_object_new_string("rs_mock"));
    json_object_object_add(ri, "summary", json_object_new_array());
    json_object_array_add(out, ri);
    if (!a->text && a->how != OUT_REFUSAL)
        return out;
    json_object *mi = json_object_new_object(), *parts = json_object_new_array(),
                *part = json_object_new_object();
    json_object_object_add(mi, "type", json_object_new_string("message"));
    json_object_object_add(mi, "id", json_object_new_string("msg_mock"));
    json_object_object_add(mi, "role", json_object_new_string("assistant"));
    json_object_object_add(mi, "status",
                           json_object_new_string(incomplete ? "incomplete" : "completed"));
    if (a->text) {
        json_object_object_add(part, "type", json_object_new_string("output_text"));
        json_object_object_add(part, "text", json_object_new_string(a->text));
        json_object_object_add(part, "annotations", json_object_new_array());
    } else {
        json_object_object_add(part, "type", json_object_new_string("refusal"));
        json_object_object_add(part, "refusal",
                               json_object_new_string("I'm sorry, I can't help with that."));
    }
    json_object_array_add(parts, part);
    json_object_object_add(mi, "content", parts);
    json_object_array_add(out, mi);
    return out;
}

/* The Responses reply body of a: status completed, or incomplete with the
 * reason (max_output_tokens or content_filter). A new reference. */
static json_object *responses_body(const char *model, const answer_out *a)
{
    int incomplete = a->how == OUT_LENGTH || a->how == OUT_EMPTY || a->how == OUT_FILTER;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string("resp_mock"));
    json_object_object_add(o, "object", json_object_new_string("response"));
    json_object_object_add(o, "created_at", json_object_new_int64((int64_t)time(NULL)));
    json_object_object_add(o, "model", json_object_new_string(model));
    json_object_object_add(o, "status",
                           json_object_new_string(incomplete ? "incomplete" : "completed"));
    json_object_object_add(o, "error", NULL);
    if (incomplete) {
        json_object *id = json_object_new_object();
        json_object_object_add(
            id, "reason",
            json_object_new_string(a->how == OUT_FILTER ? "content_filter" : "max_output_tokens"));
        json_object_object_add(o, "incomplete_details", id);
    } else {
        json_object_object_add(o, "incomplete_details", NULL);
    }
    json_object_object_add(o, "output", responses_output(a, incomplete));
    json_object_object_add(o, "usage", responses_usage(a));
    return o;
}

/* The 200 answer: its body in the endpoint's shape, its usage in r (for the
 * batch runner) and the stats; a synchronous request then takes the
 * latency its output tokens would. */
static void answer_ok(mock *m, const model_run *run, reply *r)
{
    answer_out a;
    outcome_usage(run, &a);
    json_object *o = run->chat ? chat_body(run->in.model, &a) : responses_body(run->in.model, &a);
    r->status = 200;
    r->body = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    free(a.cut);
    r->has_usage = 1;
    r->u_in = (long long)a.in;
    r->u_cached = (long long)a.cached;
    r->u_out = (long long)a.out;
    r->u_reason = (long long)a.reason;
    pthread_mutex_lock(&m->mu);
    m->ok++;
    m->tokens_in += (long long)a.in;
    m->tokens_out += (long long)a.out;
    m->tokens_cached += (long long)a.cached;
    pthread_mutex_unlock(&m->mu);
    if (!run->batch) {
        double ms =
            (m->ttft_ms + (m->tps > 0 ? (double)a.out * 1000.0 / m->tps : 0)) * m->latency_scale;
        if (ms > 0)
            usleep((useconds_t)(ms * 1000));
    }
}

void mock_model(mock *m, int chat, const char *body, size_t blen, int batch, reply *r)
{
    model_run run = {.chat = chat, .batch = batch};
    /* chat and responses count synchronous HTTP requests only (the handler
     * does): a client test tells from them that nothing bypassed a batch */
    if (model_parse(m, chat, body, blen, &run.in, r) != 0)
        return;
    if (!chat)
        count_stored(m, run.in.req);
    run.cached = cached_tokens(m, chat, &run.in);
    run.ne =
        parse_emails(run.in.text + run.in.user_off, run.in.tlen - run.in.user_off, &run.emails);
    take_fault(m, run.fault, sizeof run.fault, run.ne, 0);
    /* the answer is computed first: its size is part of the token charge */
    run.answer = build_answer(&run);
    if (!run.answer) {
        error_reply(r, 500, "out of memory", "server_error", NULL, NULL);
        model_run_free(&run);
        return;
    }
    run.ans_tok = count_tokens(m, run.answer, strlen(run.answer));
    run.reasoning = (size_t)m->reasoning_per_email * (run.ne ? run.ne : 1);
    run.out_tok = run.ans_tok + run.reasoning;
    run.charge = (double)(run.in.in_tok + run.out_tok);
    limits l;
    take_buckets(m, &run, &l, r);
    if (!model_error(m, &run, &l, r))
        answer_ok(m, &run, r);
    if (r->status != 200) {
        pthread_mutex_lock(&m->mu);
        m->errors++;
        pthread_mutex_unlock(&m->mu);
    }
    model_run_free(&run);
}
