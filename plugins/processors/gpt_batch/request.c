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

/* The user message for the emails idx[0..k): the header, then each block
 * under its short id, its position in the request. Caller frees; NULL on
 * OOM. */
static char *user_message(job *j, const size_t *idx, size_t k)
{
    ik_buf b = {0};
    ik_buf_adds(&b, GPT_USER_HEADER);
    for (size_t x = 0; x < k; x++)
        gpt_put_block(&b, j->text[idx[x]], x + 1);
    return ik_buf_take(&b);
}

/* Adds v under key to o; a NULL o or v (a failed constructor) or a failed
 * add drops v and sets *bad, so a request is built in one go and checked
 * once. */
static void put(json_object *o, const char *key, json_object *v, int *bad)
{
    if (!o || !v || json_object_object_add(o, key, v) != 0) {
        json_object_put(v);
        *bad = 1;
    }
}

/* As put, for an array. */
static void push(json_object *a, json_object *v, int *bad)
{
    if (!a || !v || json_object_array_add(a, v) != 0) {
        json_object_put(v);
        *bad = 1;
    }
}

/* {"role": role, "content": content}; NULL on OOM. */
static json_object *message(const char *role, const char *content)
{
    int bad = 0;
    json_object *m = json_object_new_object();
    put(m, "role", json_object_new_string(role), &bad);
    put(m, "content", json_object_new_string(content), &bad);
    if (bad) {
        json_object_put(m);
        return NULL;
    }
    return m;
}

/* The Chat Completions fields of request r: messages, response_format,
 * reasoning_effort, verbosity, max_completion_tokens. */
static void chat_fields(gb_state *st, json_object *r, const char *user, long max_out, int *bad)
{
    json_object *msgs = json_object_new_array();
    push(msgs, message("developer", st->instructions), bad);
    push(msgs, message("user", user), bad);
    put(r, "messages", msgs, bad);
    json_object *fmt = json_object_new_object(), *js = json_object_new_object();
    put(fmt, "type", json_object_new_string("json_schema"), bad);
    put(js, "name", json_object_new_string("email_extractions"), bad);
    put(js, "strict", json_object_new_boolean(1), bad);
    put(js, "schema", json_object_get(st->strict_schema), bad);
    put(fmt, "json_schema", js, bad);
    put(r, "response_format", fmt, bad);
    put(r, "reasoning_effort", json_object_new_string(st->effort), bad);
    put(r, "verbosity", json_object_new_string(st->verbosity), bad);
    put(r, "max_completion_tokens", json_object_new_int64(max_out), bad);
}

/* The Responses fields of request r: instructions, input, text (format,
 * verbosity), reasoning, max_output_tokens. */
static void responses_fields(gb_state *st, json_object *r, const char *user, long max_out, int *bad)
{
    put(r, "instructions", json_object_new_string(st->instructions), bad);
    json_object *in = json_object_new_array();
    push(in, message("user", user), bad);
    put(r, "input", in, bad);
    json_object *fmt = json_object_new_object(), *text = json_object_new_object();
    put(fmt, "type", json_object_new_string("json_schema"), bad);
    put(fmt, "name", json_object_new_string("email_extractions"), bad);
    put(fmt, "strict", json_object_new_boolean(1), bad);
    put(fmt, "schema", json_object_get(st->strict_schema), bad);
    put(text, "format", fmt, bad);
    put(text, "verbosity", json_object_new_string(st->verbosity), bad);
    put(r, "text", text, bad);
    json_object *rs = json_object_new_object();
    put(rs, "effort", json_object_new_string(st->effort), bad);
    put(r, "reasoning", rs, bad);
    put(r, "max_output_tokens", json_object_new_int64(max_out), bad);
}

/* Request body for the emails idx[0..k): the stable prefix (model,
 * instructions, schema) first for prompt caching. Caller frees; NULL on
 * OOM. */
char *gpt_build_request(gb_state *st, job *j, const size_t *idx, size_t k, long max_out)
{
    char *user = user_message(j, idx, k);
    if (!user)
        return NULL;
    int bad = 0;
    json_object *r = json_object_new_object();
    put(r, "model", json_object_new_string(st->model_name), &bad);
    if (st->chat)
        chat_fields(st, r, user, max_out, &bad);
    else
        responses_fields(st, r, user, max_out, &bad);
    put(r, "store", json_object_new_boolean(0), &bad);
    if (st->cache_key && st->cache_key[0])
        put(r, "prompt_cache_key", json_object_new_string(st->cache_key), &bad);
    if (st->service_tier && st->service_tier[0])
        put(r, "service_tier", json_object_new_string(st->service_tier), &bad);
    const char *js = bad ? NULL : json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN);
    char *out = js ? strdup(js) : NULL;
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
 * Returns 1 when one of them occurs in another email of the request (the
 * answers were crossed), 0 when not, IK_E_NOMEM when a check could not be
 * made. */
static int check_grounding(job *j, const size_t *idx, size_t k, size_t x, json_object *ext,
                           char *out, size_t outlen)
{
    gb_state *st = j->st;
    int crossed = 0;
    size_t o = 0;
    const char *own = gpt_block_body(j->text[idx[x]]);
    for (size_t f = 0; f < st->ngrounded; f++) {
        json_object *v;
        if (!json_object_object_get_ex(ext, st->grounded[f], &v) ||
            !json_object_is_type(v, json_type_string))
            continue;
        const char *val = json_object_get_string(v);
        int g = gpt_grounded(st->grounded[f], val, own, strlen(own));
        if (g < 0)
            return g;
        if (g == 1)
            continue;
        int n = snprintf(out + o, outlen - o, "%s%s", o ? "," : "", st->grounded[f]);
        if (n > 0 && (size_t)n < outlen - o)
            o += (size_t)n;
        for (size_t y = 0; y < k && !crossed; y++) {
            if (y == x)
                continue;
            const char *other = gpt_block_body(j->text[idx[y]]);
            g = gpt_grounded(st->grounded[f], val, other, strlen(other));
            if (g < 0)
                return g;
            crossed = g == 1;
        }
    }
    return crossed;
}

/* The loop over the answers of a request of k emails: got[x] gets the
 * answer for email x (borrowed from results), ans_len[x] its size in bytes
 * (its share of the output); answers for no email of the request, and a
 * second answer for one, are dropped, counted and logged. */
static void match_answers(gb_state *st, size_t k, json_object *results, json_object **got,
                          size_t *ans_len, const char *reqid)
{
    size_t unknown = 0, dup = 0;
    for (size_t i = 0; i < json_object_array_length(results); i++) {
        json_object *it = json_object_array_get_idx(results, i);
        size_t x = gpt_answer_position(it, k);
        if (x == k) {
            unknown++;
        } else if (got[x]) {
            dup++;
        } else {
            got[x] = it;
            /* out of memory measuring it: still answered, a token's share */
            const char *js = json_object_to_json_string_ext(it, JSON_C_TO_STRING_PLAIN);
            ans_len[x] = js ? strlen(js) : 1;
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
}

/* A new object with every property of the answer but email_id: the
 * extraction. NULL on OOM. */
static json_object *extraction_of(json_object *answer)
{
    json_object *ext = json_object_new_object();
    if (!ext)
        return NULL;
    json_object_object_foreach(answer, key, val)
    {
        if (strcmp(key, "email_id") == 0)
            continue;
        if (json_object_object_add(ext, key, json_object_get(val)) != 0) {
            json_object_put(val);
            json_object_put(ext);
            return NULL;
        }
    }
    return ext;
}

/* What one answer comes to for its email. */
typedef enum gpt_verdict {
    GPT_V_STORE,   /* a valid extraction, to be stored */
    GPT_V_ALONE,   /* invalid or crossed in a request of several: sent again alone */
    GPT_V_SETTLED, /* the email's result is set (failed, or IK_RETRY after OOM) */
} gpt_verdict;

/* The decision for the answer `answer` to email idx[x] of a request of k:
 * its extraction (confidence filled from grounding unless the model gives
 * it) valid against the schema, its grounded fields found in its own email
 * and not only in another of the request. On GPT_V_STORE *ext gets the
 * extraction (the caller owns it) and ungrounded names the fields found
 * nowhere; on GPT_V_SETTLED the email's result is set. */
static gpt_verdict judge_answer(job *j, const size_t *idx, size_t k, size_t x, json_object *answer,
                                const char *reqid, json_object **ext, char *ungrounded, size_t ulen)
{
    gb_state *st = j->st;
    size_t i = idx[x];
    const char *body = gpt_block_body(j->text[i]);
    *ext = NULL;
    json_object *e = extraction_of(answer);
    if (!e) {
        gpt_set_result(j, i, IK_RETRY, "out of memory reading the model's answer");
        return GPT_V_SETTLED;
    }
    if (!st->model_confidence && gpt_fill_confidence(st->item_schema, e, body, strlen(body))) {
        json_object_put(e);
        gpt_set_result(j, i, IK_RETRY, "out of memory filling the confidence");
        return GPT_V_SETTLED;
    }
    char why[300];
    if (gpt_validate(st->item_schema, e, why, sizeof why) != 0) {
        json_object_put(e);
        gpt_metric_add(st, M_INVALID, 1);
        if (k > 1)
            return GPT_V_ALONE;
        gpt_set_result(j, i, IK_FAIL, "invalid result from the model: %s", why);
        return GPT_V_SETTLED;
    }
    int crossed = check_grounding(j, idx, k, x, e, ungrounded, ulen);
    if (crossed < 0) {
        json_object_put(e);
        gpt_set_result(j, i, IK_RETRY, "out of memory checking the answer against the email");
        return GPT_V_SETTLED;
    }
    if (crossed && k > 1) {
        json_object_put(e);
        gpt_metric_add(st, M_CROSSED, 1);
        st->host->log(st->self, IK_LOG_WARN,
                      "the answer for %s carries %s of another email of request %s: sent "
                      "again alone",
                      st->host->record_id(j->recs[i]), ungrounded, reqid);
        return GPT_V_ALONE;
    }
    *ext = e;
    return GPT_V_STORE;
}

/* Stores the extraction ext (consumed) in record i's payload under
 * result_field and settles it IK_OK; a payload that is not an object is
 * kept under "email". Out of memory: IK_RETRY, the payload untouched. */
static void store_extraction(job *j, size_t i, json_object *ext, const char *ungrounded)
{
    gb_state *st = j->st;
    ik_record *r = j->recs[i];
    json_object *p = st->host->record_payload(r);
    json_object *np = NULL;
    if (json_object_is_type(p, json_type_object)) {
        if (json_object_deep_copy(p, &np, NULL) != 0)
            np = NULL;
    } else if ((np = json_object_new_object()) != NULL &&
               json_object_object_add(np, "email", json_object_get(p)) != 0) {
        json_object_put(p);
        json_object_put(np);
        np = NULL;
    }
    if (np && json_object_object_add(np, st->result_field, ext) != 0) {
        json_object_put(np);
        np = NULL;
    } else if (np) {
        ext = NULL; /* np owns it */
    }
    json_object_put(ext);
    if (!np) {
        gpt_set_result(j, i, IK_RETRY, "out of memory storing the extraction");
        return;
    }
    if (ungrounded[0]) {
        /* kept, but flagged for whoever reads it: the value is not in the
         * email (a model's rewrite, or an invention) */
        gpt_metric_add(st, M_UNGROUNDED, 1);
        st->host->record_set_meta(r, "gpt_ungrounded", ungrounded);
    }
    st->host->record_set_payload(r, np);
    gpt_set_result(j, i, IK_OK, "%s", "");
    gpt_metric_add(st, M_EMAILS_OK, 1);
}

/* Sends again what a request's answer left open: the emails it omitted
 * (miss[0..nmiss)) in a smaller request, each email whose answer was
 * invalid or crossed (alone[0..nalone)) by itself. */
static void follow_up(job *j, size_t k, int depth, const size_t *miss, size_t nmiss,
                      const size_t *alone, size_t nalone)
{
    if (nmiss) {
        gpt_metric_add(j->st, M_OMITTED, (double)nmiss);
        if (k == 1)
            gpt_set_all(j, miss, nmiss, IK_FAIL, "model omitted this email");
        else if (nmiss < k)
            gpt_job_submit(j, miss, nmiss, depth + 1); /* smaller than this request */
        else
            split_or_fail(j, miss, nmiss, depth, "model omitted this email");
    }
    for (size_t x = 0; x < nalone; x++)
        gpt_job_submit(j, &alone[x], 1, depth + 1);
}

/* Maps a complete answer back to the emails idx[0..k): each answer to its
 * email (match_answers), each email's answer judged (judge_answer) and
 * stored, then usage accounted and what is left open sent again. */
static void map_results(job *j, const size_t *idx, size_t k, int depth, json_object *results,
                        const gpt_usage *u, const char *reqid)
{
    gb_state *st = j->st;
    json_object **got = calloc(k, sizeof *got);
    size_t *ans_len = calloc(k, sizeof *ans_len);
    size_t *open = calloc(k, sizeof *open); /* omitted from the front, alone from the back */
    if (!got || !ans_len || !open) {
        gpt_set_all(j, idx, k, IK_RETRY, "out of memory mapping results");
        free(got);
        free(ans_len);
        free(open);
        return;
    }
    match_answers(st, k, results, got, ans_len, reqid);
    size_t nmiss = 0, alone_from = k, answered = 0;
    for (size_t x = 0; x < k; x++) {
        if (!got[x]) {
            open[nmiss++] = idx[x];
            continue;
        }
        answered++;
        json_object *ext;
        char ungrounded[200] = "";
        gpt_verdict v =
            judge_answer(j, idx, k, x, got[x], reqid, &ext, ungrounded, sizeof ungrounded);
        if (v == GPT_V_STORE)
            store_extraction(j, idx[x], ext, ungrounded);
        else
            ans_len[x] = 0; /* no usage on an email whose answer was not used */
        if (v == GPT_V_ALONE)
            open[--alone_from] = idx[x];
    }
    learn(st, u, answered);
    account(st, j, idx, k, u, ans_len, reqid);
    follow_up(j, k, depth, open, nmiss, open + alone_from, k - alone_from);
    free(got);
    free(ans_len);
    free(open);
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
