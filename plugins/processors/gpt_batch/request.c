/*
 * request.c: one packed request of the gpt_batch processor, from the emails
 * of a job to each email's settled result: the request body (Responses or
 * Chat Completions, stable prefix first for prompt caching), the answer's
 * classification (each API failure handled on purpose, see gpt_batch.c),
 * mapping the `results` array back by email_id, splitting, learning the
 * output estimates, and usage and cost per request and per email. The
 * synchronous sender (gpt_run_group) lives here too; the Batch API sender
 * is batch_api.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "processor.h"

void gpt_set_result(job *j, size_t i, ik_status s, const char *fmt, ...)
{
    j->res[i].status = s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->res[i].reason, sizeof j->res[i].reason, fmt, ap);
    va_end(ap);
    j->done[i] = 1;
}

void gpt_set_all(job *j, const size_t *idx, size_t k, ik_status s, const char *reason)
{
    for (size_t x = 0; x < k; x++)
        gpt_set_result(j, idx[x], s, "%s", reason);
}

/* Request body for the emails idx[0..k); caller frees. */
char *gpt_build_request(gb_state *st, job *j, const size_t *idx, size_t k, long max_out)
{
    size_t ul = strlen(GPT_USER_HEADER);
    for (size_t x = 0; x < k; x++)
        ul += strlen(j->text[idx[x]]);
    char *user = malloc(ul + 1);
    if (!user)
        return NULL;
    size_t o = strlen(GPT_USER_HEADER);
    memcpy(user, GPT_USER_HEADER, o);
    for (size_t x = 0; x < k; x++) {
        size_t l = strlen(j->text[idx[x]]);
        memcpy(user + o, j->text[idx[x]], l);
        o += l;
    }
    user[o] = 0;
    json_object *r = json_object_new_object();
    json_object_object_add(r, "model", json_object_new_string(st->model_name));
    json_object *fmt = json_object_new_object();
    json_object_object_add(fmt, "type", json_object_new_string("json_schema"));
    if (st->chat) {
        json_object *msgs = json_object_new_array();
        json_object *dev = json_object_new_object(), *u = json_object_new_object();
        json_object_object_add(dev, "role", json_object_new_string("developer"));
        json_object_object_add(dev, "content", json_object_new_string(st->instructions));
        json_object_object_add(u, "role", json_object_new_string("user"));
        json_object_object_add(u, "content", json_object_new_string(user));
        json_object_array_add(msgs, dev);
        json_object_array_add(msgs, u);
        json_object_object_add(r, "messages", msgs);
        json_object *js = json_object_new_object();
        json_object_object_add(js, "name", json_object_new_string("email_extractions"));
        json_object_object_add(js, "strict", json_object_new_boolean(1));
        json_object_object_add(js, "schema", json_object_get(st->strict_schema));
        json_object_object_add(fmt, "json_schema", js);
        json_object_object_add(r, "response_format", fmt);
        json_object_object_add(r, "reasoning_effort", json_object_new_string(st->effort));
        json_object_object_add(r, "verbosity", json_object_new_string(st->verbosity));
        json_object_object_add(r, "max_completion_tokens", json_object_new_int64(max_out));
    } else {
        json_object_object_add(r, "instructions", json_object_new_string(st->instructions));
        json_object *in = json_object_new_array(), *u = json_object_new_object();
        json_object_object_add(u, "role", json_object_new_string("user"));
        json_object_object_add(u, "content", json_object_new_string(user));
        json_object_array_add(in, u);
        json_object_object_add(r, "input", in);
        json_object_object_add(fmt, "name", json_object_new_string("email_extractions"));
        json_object_object_add(fmt, "strict", json_object_new_boolean(1));
        json_object_object_add(fmt, "schema", json_object_get(st->strict_schema));
        json_object *text = json_object_new_object();
        json_object_object_add(text, "format", fmt);
        json_object_object_add(text, "verbosity", json_object_new_string(st->verbosity));
        json_object_object_add(r, "text", text);
        json_object *rs = json_object_new_object();
        json_object_object_add(rs, "effort", json_object_new_string(st->effort));
        json_object_object_add(r, "reasoning", rs);
        json_object_object_add(r, "max_output_tokens", json_object_new_int64(max_out));
    }
    json_object_object_add(r, "store", json_object_new_boolean(0));
    if (st->cache_key && st->cache_key[0])
        json_object_object_add(r, "prompt_cache_key", json_object_new_string(st->cache_key));
    if (st->service_tier && st->service_tier[0])
        json_object_object_add(r, "service_tier", json_object_new_string(st->service_tier));
    char *out = strdup(json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN));
    json_object_put(r);
    free(user);
    return out;
}

void gpt_estimates(gb_state *st, double *per_email, double *reasoning)
{
    pthread_mutex_lock(&st->mu);
    *per_email = st->out_per_email;
    *reasoning = st->reasoning > st->reasoning_min ? st->reasoning : st->reasoning_min;
    pthread_mutex_unlock(&st->mu);
}

long gpt_max_out_for(gb_state *st, size_t k)
{
    double pe, rs;
    gpt_estimates(st, &pe, &rs);
    double want = 2 * pe * (double)k + 1.5 * rs + 256;
    return want > (double)st->max_output_cap ? st->max_output_cap : (long)want;
}

long gpt_truncated_at(gb_state *st, const ik_record *rec)
{
    const char *v = st->host->record_meta(rec, "gpt_truncated_at");
    long cap = v ? strtol(v, NULL, 10) : 0;
    return cap > 0 ? cap : 0;
}

long gpt_max_out_group(gb_state *st, job *j, const size_t *idx, size_t k)
{
    long out = gpt_max_out_for(st, k);
    long cut = k == 1 ? gpt_truncated_at(st, j->recs[idx[0]]) : 0;
    /* twice cut, at most the cap; cut is read from metadata (LONG_MAX at
     * most), so the bounds are halved rather than cut doubled */
    if (cut > 0 && cut > out / 2)
        out = cut > st->max_output_cap / 2 ? st->max_output_cap : 2 * cut;
    return out;
}

double gpt_expected_output(gb_state *st, size_t k)
{
    pthread_mutex_lock(&st->mu);
    double e = st->out_per_email * (double)k + st->reasoning;
    pthread_mutex_unlock(&st->mu);
    return e;
}

static void learn(gb_state *st, const gpt_usage *u, size_t answered)
{
    if (!st->learn || answered == 0)
        return;
    double visible = (double)(u->output - u->reasoning) / (double)answered;
    pthread_mutex_lock(&st->mu);
    if (visible > 0)
        st->out_per_email = 0.8 * st->out_per_email + 0.2 * visible;
    st->reasoning = 0.8 * st->reasoning + 0.2 * (double)u->reasoning;
    pthread_mutex_unlock(&st->mu);
}

static void set_meta_num(gb_state *st, ik_record *r, const char *k, double v, int frac)
{
    char b[64];
    if (frac)
        snprintf(b, sizeof b, "%.8f", v);
    else
        snprintf(b, sizeof b, "%.0f", v);
    st->host->record_set_meta(r, k, b);
}

/* Records usage and cost; metadata per email shares the request by tokens
 * (input) and answer length (output). */
static void account(gb_state *st, job *j, const size_t *idx, size_t k, const gpt_usage *u,
                    const size_t *ans_len, const char *reqid)
{
    double cost = gpt_model_cost(&st->model, j->st->batch_mode, u->input, u->cached, u->output);
    gpt_metric_add(st, M_INPUT, (double)u->input);
    gpt_metric_add(st, M_CACHED, (double)u->cached);
    gpt_metric_add(st, M_OUTPUT, (double)u->output);
    gpt_metric_add(st, M_REASONING, (double)u->reasoning);
    gpt_metric_add(st, M_COST, cost);
    double tok_sum = 0, ans_sum = 0;
    for (size_t x = 0; x < k; x++) {
        tok_sum += (double)j->tok[idx[x]];
        ans_sum += ans_len ? (double)ans_len[x] : 0;
    }
    for (size_t x = 0; x < k; x++) {
        if (!ans_len || ans_len[x] == 0)
            continue; /* only emails that got their answer carry usage */
        double fin = tok_sum > 0 ? (double)j->tok[idx[x]] / tok_sum : 1.0 / (double)k;
        double fout = ans_sum > 0 ? (double)ans_len[x] / ans_sum : 1.0 / (double)k;
        /* the shared prefix is split evenly, each email's own text is its own */
        double fixed = (double)st->fixed_tokens;
        double share_in = (fixed / (double)k + (double)j->tok[idx[x]]) / (fixed + tok_sum);
        if (!(share_in > 0))
            share_in = fin;
        double in = (double)u->input * share_in, ca = (double)u->cached / (double)k;
        double out = (double)u->output * fout, re = (double)u->reasoning * fout;
        ik_record *r = j->recs[idx[x]];
        st->host->record_set_meta(r, "gpt_model", st->model_name);
        st->host->record_set_meta(r, "gpt_request_id", reqid);
        set_meta_num(st, r, "gpt_batch_emails", (double)k, 0);
        set_meta_num(st, r, "gpt_input_tokens", round(in), 0);
        set_meta_num(st, r, "gpt_cached_input_tokens", round(ca), 0);
        set_meta_num(st, r, "gpt_output_tokens", round(out), 0);
        set_meta_num(st, r, "gpt_reasoning_tokens", round(re), 0);
        set_meta_num(st, r, "gpt_cost_usd",
                     gpt_model_cost(&st->model, j->st->batch_mode, (long)round(in), (long)round(ca),
                                    (long)round(out)),
                     1);
    }
}

static void split_or_fail(job *j, const size_t *idx, size_t k, int depth, const char *reason)
{
    if (k <= 1) {
        gpt_set_all(j, idx, k, IK_FAIL, reason);
        return;
    }
    gpt_metric_add(j->st, M_SPLITS, 1);
    j->st->host->log(j->st->self, IK_LOG_DEBUG, "splitting %zu emails in half: %s", k, reason);
    size_t h = k / 2;
    gpt_job_submit(j, idx, h, depth + 1);
    gpt_job_submit(j, idx + h, k - h, depth + 1);
}

/* An answer that was cut off or unusable: a request of several emails is
 * split; a lone email is handed back for the engine's retry (the model
 * reasons a different length each time, so this is often transient), with
 * the reason the engine keeps when the attempts run out. When the cut came
 * at max_out tokens, the record notes it (gpt_truncated_at) so its next
 * attempt goes alone with a higher cap (gpt_max_out_group). */
static void cut_off(job *j, const size_t *idx, size_t k, int depth, const char *reason,
                    long max_out)
{
    if (k > 1) {
        split_or_fail(j, idx, k, depth, reason);
        return;
    }
    if (max_out > 0)
        set_meta_num(j->st, j->recs[idx[0]], "gpt_truncated_at", (double)max_out, 0);
    gpt_set_all(j, idx, k, IK_RETRY, reason);
}

gpt_timeout_action gpt_after_timeout(size_t k, int lone_timed_out)
{
    return k > 1 && !lone_timed_out ? GPT_TIMEOUT_SPLIT : GPT_TIMEOUT_RETRY;
}

/* A request of the emails idx[0..k) timed out (synchronous mode): split or
 * hand back as gpt_after_timeout decides; a lone email's timeout is kept in
 * the job so nothing more is sent in this call. */
static void timed_out(job *j, const size_t *idx, size_t k, int depth, const char *reason)
{
    if (gpt_after_timeout(k, j->lone_timeout[0] != 0) == GPT_TIMEOUT_SPLIT) {
        split_or_fail(j, idx, k, depth, reason);
        return;
    }
    if (k == 1 && !j->lone_timeout[0])
        snprintf(j->lone_timeout, sizeof j->lone_timeout, "%s", reason);
    gpt_set_all(j, idx, k, IK_RETRY, reason);
}

/* Checks the grounded fields of the answer ext for email idx[x] against its
 * own text; names the fields that are not there in out (comma-separated).
 * Returns 1 when one of them occurs in another email of the request: the
 * answers were crossed. */
static int check_grounding(job *j, const size_t *idx, size_t k, size_t x, json_object *ext,
                           char *out, size_t outlen)
{
    gb_state *st = j->st;
    int crossed = 0;
    size_t o = 0;
    const char *own = j->text[idx[x]];
    for (size_t f = 0; f < st->ngrounded; f++) {
        json_object *v;
        if (!json_object_object_get_ex(ext, st->grounded[f], &v) ||
            !json_object_is_type(v, json_type_string))
            continue;
        const char *val = json_object_get_string(v);
        if (gpt_grounded(st->grounded[f], val, own, strlen(own)) != 0)
            continue; /* found, or out of memory: no verdict */
        int n = snprintf(out + o, outlen - o, "%s%s", o ? "," : "", st->grounded[f]);
        if (n > 0 && (size_t)n < outlen - o)
            o += (size_t)n;
        for (size_t y = 0; y < k && !crossed; y++)
            if (y != x &&
                gpt_grounded(st->grounded[f], val, j->text[idx[y]], strlen(j->text[idx[y]])) == 1)
                crossed = 1;
    }
    return crossed;
}

/* Maps a complete answer back to the emails idx[0..k). */
static void map_results(job *j, const size_t *idx, size_t k, int depth, json_object *results,
                        const gpt_usage *u, const char *reqid)
{
    gb_state *st = j->st;
    json_object **got = calloc(k, sizeof *got);
    size_t *ans_len = calloc(k, sizeof *ans_len);
    size_t *retry = calloc(k, sizeof *retry);
    if (!got || !ans_len || !retry) {
        gpt_set_all(j, idx, k, IK_RETRY, "out of memory mapping results");
        free(got);
        free(ans_len);
        free(retry);
        return;
    }
    size_t unknown = 0, dup = 0;
    for (size_t i = 0; i < json_object_array_length(results); i++) {
        json_object *it = json_object_array_get_idx(results, i), *idv;
        if (!json_object_is_type(it, json_type_object) ||
            !json_object_object_get_ex(it, "email_id", &idv) ||
            !json_object_is_type(idv, json_type_string)) {
            unknown++;
            continue;
        }
        const char *id = json_object_get_string(idv);
        size_t x = k;
        for (size_t y = 0; y < k; y++)
            if (strcmp(st->host->record_id(j->recs[idx[y]]), id) == 0) {
                x = y;
                break;
            }
        if (x == k) {
            unknown++;
        } else if (got[x]) {
            dup++;
        } else {
            got[x] = it;
            ans_len[x] = strlen(json_object_to_json_string_ext(it, JSON_C_TO_STRING_PLAIN));
        }
    }
    if (unknown) {
        gpt_metric_add(st, M_UNKNOWN, (double)unknown);
        st->host->log(st->self, IK_LOG_WARN, "dropped %zu result(s) for ids not in request %s",
                      unknown, reqid);
    }
    if (dup) {
        gpt_metric_add(st, M_DUPLICATE, (double)dup);
        st->host->log(st->self, IK_LOG_WARN, "dropped %zu duplicate result(s) in request %s", dup,
                      reqid);
    }
    size_t nmiss = 0, ninv = 0, answered = 0;
    size_t *miss = retry, *inv = retry + 0; /* filled from both ends */
    size_t inv_from = k;
    for (size_t x = 0; x < k; x++) {
        if (!got[x]) {
            miss[nmiss++] = idx[x];
            continue;
        }
        answered++;
        json_object *ext = json_object_new_object();
        json_object_object_foreach(got[x], key, val)
        {
            if (strcmp(key, "email_id") != 0)
                json_object_object_add(ext, key, json_object_get(val));
        }
        char why[300];
        if (!st->model_confidence &&
            gpt_fill_confidence(st->item_schema, ext, j->text[idx[x]], strlen(j->text[idx[x]]))) {
            json_object_put(ext);
            gpt_set_result(j, idx[x], IK_RETRY, "out of memory filling the confidence");
            ans_len[x] = 0;
            continue;
        }
        if (gpt_validate(st->item_schema, ext, why, sizeof why) != 0) {
            json_object_put(ext);
            gpt_metric_add(st, M_INVALID, 1);
            ans_len[x] = 0;
            if (k == 1) {
                gpt_set_result(j, idx[x], IK_FAIL, "invalid result from the model: %s", why);
            } else {
                retry[--inv_from] = idx[x];
                ninv++;
            }
            continue;
        }
        char ungrounded[200] = "";
        if (check_grounding(j, idx, k, x, ext, ungrounded, sizeof ungrounded) && k > 1) {
            json_object_put(ext);
            gpt_metric_add(st, M_CROSSED, 1);
            st->host->log(st->self, IK_LOG_WARN,
                          "the answer for %s carries %s of another email of request %s: sent "
                          "again alone",
                          st->host->record_id(j->recs[idx[x]]), ungrounded, reqid);
            ans_len[x] = 0;
            retry[--inv_from] = idx[x];
            ninv++;
            continue;
        }
        ik_record *r = j->recs[idx[x]];
        if (ungrounded[0]) {
            /* kept, but flagged for whoever reads it: the value is not in
             * the email (a model's rewrite, or an invention) */
            gpt_metric_add(st, M_UNGROUNDED, 1);
            st->host->record_set_meta(r, "gpt_ungrounded", ungrounded);
        }
        json_object *p = st->host->record_payload(r);
        json_object *np = NULL;
        if (json_object_is_type(p, json_type_object)) {
            if (json_object_deep_copy(p, &np, NULL) != 0)
                np = NULL;
        } else {
            np = json_object_new_object();
            if (np)
                json_object_object_add(np, "email", json_object_get(p));
        }
        if (!np) {
            json_object_put(ext);
            gpt_set_result(j, idx[x], IK_RETRY, "out of memory storing the extraction");
            continue;
        }
        json_object_object_add(np, st->result_field, ext);
        st->host->record_set_payload(r, np);
        gpt_set_result(j, idx[x], IK_OK, "%s", "");
        gpt_metric_add(st, M_EMAILS_OK, 1);
    }
    inv = retry + inv_from;
    learn(st, u, answered);
    account(st, j, idx, k, u, ans_len, reqid);
    if (nmiss) {
        gpt_metric_add(st, M_OMITTED, (double)nmiss);
        if (k == 1)
            gpt_set_all(j, miss, nmiss, IK_FAIL, "model omitted this email");
        else if (nmiss < k)
            gpt_job_submit(j, miss, nmiss, depth + 1); /* smaller than this request */
        else
            split_or_fail(j, miss, nmiss, depth, "model omitted this email");
    }
    for (size_t x = 0; x < ninv; x++)
        gpt_job_submit(j, &inv[x], 1, depth + 1);
    free(got);
    free(ans_len);
    free(retry);
}

void gpt_job_submit(job *j, const size_t *idx, size_t k, int depth)
{
    if (!j->st->batch_mode) {
        gpt_run_group(j, idx, k, depth);
        return;
    }
    if (j->nnext == j->capnext) {
        size_t cap = j->capnext ? j->capnext * 2 : 16;
        gpt_group *g = realloc(j->next, cap * sizeof *g);
        if (!g) {
            gpt_set_all(j, idx, k, IK_RETRY, "out of memory queueing a smaller request");
            return;
        }
        j->next = g;
        j->capnext = cap;
    }
    size_t *copy = malloc(k * sizeof *copy);
    if (!copy) {
        gpt_set_all(j, idx, k, IK_RETRY, "out of memory queueing a smaller request");
        return;
    }
    memcpy(copy, idx, k * sizeof *copy);
    j->next[j->nnext++] = (gpt_group){copy, k, depth};
}

/* The 200 branch of gpt_job_answer. */
static void answer_ok(job *j, const size_t *idx, size_t k, int depth, const char *body, size_t len,
                      const char *rid, long max_out, gpt_usage *usage)
{
    gb_state *st = j->st;
    char reason[IK_REASON_MAX], err[600];
    gpt_reply rep;
    if (gpt_parse_reply(st->chat, body, len, &rep, err, sizeof err) != 0) {
        gpt_metric_add(st, M_API_ERRORS, 1);
        snprintf(reason, sizeof reason, "unreadable API response (request %.80s): %.300s", rid,
                 err);
        gpt_set_all(j, idx, k, IK_RETRY, reason);
        return;
    }
    *usage = rep.usage;
    json_object *results = NULL;
    switch (rep.finish) {
    case GPT_FIN_LENGTH:
        account(st, j, idx, k, usage, NULL, rid);
        pthread_mutex_lock(&st->mu);
        if (st->learn && k == 1 && usage->reasoning > st->reasoning)
            st->reasoning = (double)usage->reasoning;
        pthread_mutex_unlock(&st->mu);
        snprintf(reason, sizeof reason,
                 "output truncated at max_output_tokens=%ld (%ld reasoning tokens)%s", max_out,
                 usage->reasoning,
                 max_out >= st->max_output_cap
                     ? "; that is the highest cap allowed (option max_output_tokens, or the "
                       "model's max_output in the catalog)"
                     : "");
        cut_off(j, idx, k, depth, reason, max_out);
        break;
    case GPT_FIN_FILTER:
        account(st, j, idx, k, usage, NULL, rid);
        split_or_fail(j, idx, k, depth, "blocked by the content filter");
        break;
    case GPT_FIN_REFUSAL:
        account(st, j, idx, k, usage, NULL, rid);
        snprintf(reason, sizeof reason, "model refused: %s", rep.refusal ? rep.refusal : "");
        split_or_fail(j, idx, k, depth, reason);
        break;
    case GPT_FIN_FAILED:
        account(st, j, idx, k, usage, NULL, rid);
        gpt_metric_add(st, M_API_ERRORS, 1);
        snprintf(reason, sizeof reason, "model produced no answer (request %.80s)", rid);
        gpt_set_all(j, idx, k, IK_RETRY, reason);
        break;
    case GPT_FIN_OK:
        if (gpt_parse_results_wire(rep.text, st->wire_back, &results, err, sizeof err) != 0) {
            account(st, j, idx, k, usage, NULL, rid);
            snprintf(reason, sizeof reason, "unusable model output: %.400s", err);
            cut_off(j, idx, k, depth, reason, 0);
        } else {
            map_results(j, idx, k, depth, results, usage, rid);
            json_object_put(results);
        }
        break;
    }
    gpt_reply_free(&rep);
}

/* A 429 that asks for longer than this is handed back (IK_RETRY) rather
 * than waited for inside process(); the limiter holds every request for at
 * most MAX_PAUSE_MS (a per-day limit may say hours), then one probes. */
#define MAX_WAIT_IN_CALL_MS 60000.0
#define MAX_PAUSE_MS        3600000.0

/* How long the 429 rate_limit_exceeded with error ae asks to wait, in ms:
 * by the limit it names (gpt_hints_wait_ms), else exponential backoff by
 * attempt. A malformed wait in the message is logged and not used. */
static double rate_limit_wait(gb_state *st, const gpt_api_error *ae, const gpt_hints *hints,
                              long attempt)
{
    gpt_rate_limit hit;
    if (gpt_parse_rate_limit(ae->type, ae->message, &hit) != 0)
        st->host->log(st->self, IK_LOG_WARN,
                      "ignored the wait in a 429 message, not a duration: %.200s", ae->message);
    double backoff = 1000.0 * (double)(1 << (attempt < 6 ? attempt : 6));
    return gpt_hints_wait_ms(hints, &hit, backoff);
}

int gpt_job_answer(job *j, const size_t *idx, size_t k, int depth, long status, const char *body,
                   size_t len, const gpt_hints *hints, long attempt, long max_out, gpt_usage *usage)
{
    gb_state *st = j->st;
    char reason[IK_REASON_MAX];
    const char *rid = hints->request_id[0] ? hints->request_id : "-";
    memset(usage, 0, sizeof *usage);
    if (status == 200) {
        answer_ok(j, idx, k, depth, body, len, rid, max_out, usage);
        return 0;
    }
    gpt_api_error ae;
    gpt_parse_error(body, len, &ae);
    gpt_metric_add(st, M_API_ERRORS, 1);
    snprintf(reason, sizeof reason, "HTTP %ld%s%.60s%.60s: %.280s (request %.60s)", status,
             ae.code[0] ? " " : "", ae.code, ae.type[0] && !ae.code[0] ? ae.type : "", ae.message,
             rid);
    int too_large = strncmp(ae.message, "Request too large", 17) == 0;
    int should_retry = hints->should_retry;
    if (status == 429 && (strcmp(ae.code, "insufficient_quota") == 0 ||
                          strcmp(ae.type, "insufficient_quota") == 0)) {
        gpt_block(st, "429 insufficient_quota: the account has no credit or hit its spend cap");
        gpt_set_all(j, idx, k, IK_DOWN, reason);
    } else if (status == 401 || status == 403) {
        char b[IK_REASON_MAX];
        snprintf(b, sizeof b, "HTTP %ld: the API key was rejected (%s)", status,
                 ae.code[0] ? ae.code : "no code");
        gpt_block(st, b);
        gpt_set_all(j, idx, k, IK_DOWN, reason);
    } else if (status == 404) {
        char b[IK_REASON_MAX];
        snprintf(b, sizeof b, "HTTP 404: model or deployment %s not found", st->model_name);
        gpt_block(st, b);
        gpt_set_all(j, idx, k, IK_DOWN, reason);
    } else if (status == 429 && too_large) {
        split_or_fail(j, idx, k, depth, reason);
    } else if (status == 429) {
        gpt_metric_add(st, M_RATE_LIMITED, 1);
        if (j->st->batch_mode) { /* the batch pool is separate: try again in a later call */
            gpt_set_all(j, idx, k, IK_RETRY, reason);
            return 0;
        }
        double wait = rate_limit_wait(st, &ae, hints, attempt);
        gpt_limiter_pause(&st->lim, wait < MAX_PAUSE_MS ? wait : MAX_PAUSE_MS);
        if (wait <= MAX_WAIT_IN_CALL_MS && attempt < st->rate_limit_retries)
            return 1;
        gpt_set_all(j, idx, k, IK_RETRY, reason);
    } else if (strcmp(ae.code, "context_length_exceeded") == 0 || status == 413) {
        /* by the code: every strict-schema error's message says "context"
         * too (In context=(...)), and splitting cannot mend a schema */
        split_or_fail(j, idx, k, depth, reason);
    } else if (status == 400 && strcmp(ae.code, "content_filter") == 0) {
        split_or_fail(j, idx, k, depth, "prompt blocked by the content filter");
    } else if (status == 504 && !st->batch_mode) {
        timed_out(j, idx, k, depth, reason); /* a gateway gave up waiting for the answer */
    } else if (status == 408 || status == 409 || status >= 500) {
        gpt_set_all(j, idx, k, should_retry == 0 ? IK_FAIL : IK_RETRY, reason);
    } else {
        gpt_set_all(j, idx, k, should_retry == 1 ? IK_RETRY : IK_FAIL, reason);
    }
    return 0;
}

void gpt_block(gb_state *st, const char *reason)
{
    pthread_mutex_lock(&st->mu);
    int was = st->blocked;
    st->blocked = 1;
    st->blocked_at = gpt_now_s();
    snprintf(st->block_reason, sizeof st->block_reason, "%s", reason);
    pthread_mutex_unlock(&st->mu);
    if (!was)
        st->host->log(st->self, IK_LOG_ERROR,
                      "%s: stopped sending; the emails wait in the engine (stage down) until "
                      "the API answers again",
                      reason);
}

void gpt_unblock(gb_state *st)
{
    pthread_mutex_lock(&st->mu);
    int was = st->blocked;
    st->blocked = 0;
    pthread_mutex_unlock(&st->mu);
    if (was)
        st->host->log(st->self, IK_LOG_INFO, "the API answers again: sending resumed");
}

int gpt_blocked(gb_state *st, char *reason, size_t rlen)
{
    pthread_mutex_lock(&st->mu);
    int blocked =
        st->blocked && (gpt_now_s() - st->blocked_at) * 1000 < (double)st->quota_recheck_ms;
    if (blocked)
        snprintf(reason, rlen, "not sent: %.480s", st->block_reason);
    else if (st->blocked)
        st->blocked_at = gpt_now_s(); /* this request is the probe */
    pthread_mutex_unlock(&st->mu);
    return blocked;
}

void gpt_run_group(job *j, const size_t *idx, size_t k, int depth)
{
    gb_state *st = j->st;
    char reason[IK_REASON_MAX];
    if (gpt_blocked(st, reason, sizeof reason)) {
        gpt_set_all(j, idx, k, IK_DOWN, reason);
        return;
    }
    if (j->lone_timeout[0]) {
        snprintf(reason, sizeof reason,
                 "not sent: a request of one email timed out in the same call (%.400s)",
                 j->lone_timeout);
        gpt_set_all(j, idx, k, IK_RETRY, reason);
        return;
    }
    long max_out = gpt_max_out_group(st, j, idx, k);
    double in_est = (double)st->fixed_tokens;
    for (size_t x = 0; x < k; x++)
        in_est += (double)j->tok[idx[x]];
    char *body = gpt_build_request(st, j, idx, k, max_out);
    if (!body) {
        gpt_set_all(j, idx, k, IK_RETRY, "out of memory building the request");
        return;
    }
    /* the limiter is charged what the request is expected to use, input
     * plus expected output, and corrected by the real usage when the answer
     * comes; a server that charged more at admission (OpenAI estimates from
     * max_output_tokens) says so in x-ratelimit-remaining-tokens, which
     * lowers the level at once */
    double charge = in_est + gpt_expected_output(st, k);
    for (long attempt = 0;; attempt++) {
        if (gpt_limiter_acquire(&st->lim, charge, gpt_stopping, st) != 0) {
            gpt_set_all(j, idx, k, IK_RELEASE, "shutting down before the request was sent");
            break;
        }
        gpt_resp resp;
        char err[600];
        double t0 = gpt_now_s();
        gpt_metric_add(st, M_REQUESTS, 1);
        int rc = gpt_http_send(st->http, "POST", st->url, body, NULL, &resp, err, sizeof err);
        double lat = gpt_now_s() - t0;
        if (st->m[M_LATENCY])
            st->host->metric_observe(st->m[M_LATENCY], lat);
        if (resp.bad_hints)
            st->host->log(st->self, IK_LOG_WARN, "ignored a malformed header: %s", resp.hints.bad);
        gpt_limiter_update(&st->lim, &resp.hints);
        gpt_usage usage = {0};
        int again = 0;
        if (rc != 0) {
            gpt_limiter_release(&st->lim, 1, lat);
            gpt_metric_add(st, M_API_ERRORS, 1);
            snprintf(reason, sizeof reason, "%s: %.400s",
                     rc == IK_E_TIMEOUT ? "request timed out" : "connection failed", err);
            if (rc == IK_E_TIMEOUT)
                timed_out(j, idx, k, depth, reason);
            else
                gpt_set_all(j, idx, k, IK_RETRY, reason);
        } else {
            /* the slot is given back before any split or smaller retry,
             * which acquire slots of their own */
            gpt_limiter_done(&st->lim);
            again = gpt_job_answer(j, idx, k, depth, resp.status, resp.body, resp.len, &resp.hints,
                                   attempt, max_out, &usage);
            int slow = gpt_limiter_slow(&st->lim, lat, (double)usage.output,
                                        (double)st->latency_target_ms / 1000, st->latency_factor);
            gpt_limiter_feedback(&st->lim, resp.status == 429 || resp.status >= 500 || slow, lat);
        }
        if (st->m[M_CONCURRENCY])
            st->host->metric_set(st->m[M_CONCURRENCY], gpt_limiter_concurrency(&st->lim));
        double real = (double)(usage.input + usage.output);
        if (real > 0)
            gpt_limiter_correct(&st->lim, real - charge);
        if (rc == 0 && resp.status != 429 && resp.status != 401 && resp.status != 403 &&
            resp.status != 404)
            gpt_unblock(st);
        gpt_resp_free(&resp);
        if (!again)
            break;
    }
    free(body);
}
