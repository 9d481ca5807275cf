/*
 * processor.h: the gpt_batch processor's instance state and the calls
 * between its three parts: gpt_batch.c (the plugin: options, create,
 * process), request.c (one packed request: build it, send it, classify the
 * answer, map results back by email_id, the block's short id: its position
 * in the request; split, account usage and cost) and
 * batch_api.c (the OpenAI Batch API mode: many packed requests in one JSONL
 * file, uploaded, polled and mapped back by custom_id).
 *
 * A `job` is one process() call: the records the engine handed over and
 * their results. Every email of a job is settled exactly once (set_result);
 * what is not settled when the job ends is released.
 */
#ifndef INTAKE_GPT_PROCESSOR_H
#define INTAKE_GPT_PROCESSOR_H

#include <stdarg.h>

#include "email/email.h"
#include "gpt_internal.h"
#include "tokenizer/tokenizer.h"

enum {
    M_REQUESTS,
    M_EMAILS_OK,
    M_INPUT,
    M_CACHED,
    M_OUTPUT,
    M_REASONING,
    M_COST,
    M_RATE_LIMITED,
    M_SPLITS,
    M_OMITTED,
    M_UNKNOWN,
    M_DUPLICATE,
    M_INVALID,
    M_API_ERRORS,
    M_CONCURRENCY,
    M_LATENCY,
    M_BATCHES,
    M_CROSSED,
    M_UNGROUNDED,
    M_COUNT
};

typedef struct gb_state {
    const ik_host *host;
    ik_instance *self;
    /* configuration (strings engine-owned unless noted) */
    int chat;
    int azure;
    int azure_bearer;
    int batch_mode;       /* mode = "batch": the Batch API */
    char *url;            /* owned: the model endpoint */
    char *api_base;       /* owned: where files/ and batches/ live */
    const char *api_qs;   /* "?api-version=..." or "" (Azure dated form) */
    char *batch_endpoint; /* owned: the JSONL lines' url and the batch's endpoint */
    gpt_http *http;       /* owned; holds the auth header, a secret */
    char *model_name;     /* owned: what goes into "model" */
    const char *effort, *verbosity, *cache_key, *service_tier, *result_field;
    long max_output_cap, max_input;
    double input_margin;
    long rate_limit_retries;
    uint64_t quota_recheck_ms, latency_target_ms;
    double latency_factor;
    uint64_t batch_poll_ms, batch_max_wait_ms;
    long batch_max_requests;
    long per_request; /* emails_per_request; 0: as many as fit */
    char **grounded;  /* owned: fields checked against the email's text */
    size_t ngrounded;
    int batch_keep_files;
    int learn;
    gpt_model model;
    ik_tok *tok;                /* NULL: estimates */
    char *instructions;         /* owned */
    json_object *item_schema;   /* owned: the extraction schema, for validation */
    char *schema_json;          /* owned: the strict schema as text */
    json_object *strict_schema; /* owned: the wire form (gpt_wire_schema) */
    json_object *wire_back;     /* owned: compact_keys' map back; NULL without */
    int model_confidence;       /* the model gives confidence; else from grounding */
    long fixed_tokens;          /* instructions + schema + header + overhead */
    gpt_limiter lim;
    ik_metric *m[M_COUNT];
    /* shared, guarded by mu */
    pthread_mutex_t mu;
    double out_per_email; /* learned visible output tokens per email */
    double reasoning;     /* learned reasoning tokens per request */
    double reasoning_min; /* configured reserve */
    int blocked;
    double blocked_at;
    char block_reason[IK_REASON_MAX];
    /* no API key and fallback = "rules": extract offline instead */
    int rules_fallback;
    em_diet_opts dopts;
} gb_state;

/* A request to (re)send: emails idx[0..k) of the job, at split depth. */
typedef struct gpt_group {
    size_t *idx; /* owned */
    size_t k;
    int depth;
} gpt_group;

typedef struct job {
    gb_state *st;
    ik_record *const *recs;
    ik_result *res;
    char **text; /* rendered blocks, id GPT_BLOCK_ID (gpt_put_block gives each its own) */
    size_t *tok; /* their token counts */
    int *done;
    /* Batch API mode (st->batch_mode): requests that must be sent again
     * (halves, omitted, invalid) wait for the next round here instead of
     * being sent at once */
    gpt_group *next;
    size_t nnext, capnext;
    /* synchronous mode: why a request of one email timed out in this call
     * ("" while none did); nothing more is sent in the call after that */
    char lone_timeout[IK_REASON_MAX];
} job;

void gpt_metric_add(gb_state *st, int which, double v);
int gpt_stopping(void *st);

void gpt_set_result(job *j, size_t i, ik_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void gpt_set_all(job *j, const size_t *idx, size_t k, ik_status s, const char *reason);

/* The request body (Responses or Chat Completions) for the emails idx[0..k);
 * caller frees; NULL on OOM. */
char *gpt_build_request(gb_state *st, job *j, const size_t *idx, size_t k, long max_out);
/* The learned visible output tokens per email and reasoning tokens per
 * request (at least the configured reserve). */
void gpt_estimates(gb_state *st, double *per_email, double *reasoning);
/* max_output_tokens for a request of k emails: twice the learned output
 * estimate plus the reasoning reserve, capped by the model. */
long gpt_max_out_for(gb_state *st, size_t k);
/* max_output_tokens for the request of the emails idx[0..k): as
 * gpt_max_out_for, but a lone email whose last answer was cut off (metadata
 * gpt_truncated_at) gets twice that cap, up to the configured or catalog
 * maximum. */
long gpt_max_out_group(gb_state *st, job *j, const size_t *idx, size_t k);
/* The cap a previous answer for rec was cut off at (gpt_truncated_at), 0
 * when none was. */
long gpt_truncated_at(gb_state *st, const ik_record *rec);
/* Expected output tokens of a request of k emails, for rate accounting:
 * the learned estimates without the safety reserve. */
double gpt_expected_output(gb_state *st, size_t k);

/* Sends the emails idx[0..k) again in a smaller request: at once in the
 * synchronous mode, in the next round in the Batch API mode. */
void gpt_job_submit(job *j, const size_t *idx, size_t k, int depth);

/* Settles the emails idx[0..k) from an HTTP answer to their packed request
 * (status, body; hints from its headers, or made from a batch result line),
 * or submits smaller requests for them. Returns 1 when the caller should
 * send the same request again once the limiter's pause is over (429
 * rate_limit_exceeded, synchronous mode, attempt below the limit), else 0.
 * *usage gets the usage the answer reported (zero when none). */
int gpt_job_answer(job *j, const size_t *idx, size_t k, int depth, long status, const char *body,
                   size_t len, const gpt_hints *hints, long attempt, long max_out,
                   gpt_usage *usage);

/* What a request of k emails that timed out becomes. */
typedef enum gpt_timeout_action {
    GPT_TIMEOUT_SPLIT, /* sent again as two halves: smaller answers come sooner */
    GPT_TIMEOUT_RETRY, /* handed back (IK_RETRY) for the engine's backoff */
} gpt_timeout_action;

/* The decision after a timeout (no answer within `timeout`, or a gateway's
 * 504): a request of several emails is split, as after an overflow, so
 * the halves' shorter answers can finish in time; a lone email is handed
 * back. Once a lone email timed out in a call (lone_timed_out), the API
 * cannot answer even one in time: splitting further would only wait out
 * more timeouts, so the rest is handed back too. */
gpt_timeout_action gpt_after_timeout(size_t k, int lone_timed_out);

/* Synchronous mode: sends one packed request (waiting for the rate limiter)
 * and settles its emails, recursing into splits. */
void gpt_run_group(job *j, const size_t *idx, size_t k, int depth);

/* Quota/auth block: no request is sent until quota_recheck has passed;
 * meanwhile the emails answer IK_DOWN, so the engine pauses the stage and
 * keeps them, and its probes (the next calls) are answered IK_DOWN without
 * a request until then. */
void gpt_block(gb_state *st, const char *reason);
/* A request got an answer that was not a quota or auth failure: lift the
 * block. */
void gpt_unblock(gb_state *st);
/* 1 when blocked (reason filled); the first caller after quota_recheck is
 * let through as the probe. */
int gpt_blocked(gb_state *st, char *reason, size_t rlen);

/* Batch API mode: sends the groups of the job in rounds of batches until
 * every email is settled or the rounds run out. 0, or IK_E_NOMEM. */
int gpt_batch_run(job *j, gpt_group *groups, size_t ngroups);

#endif
