/*
 * mock.h: what the parts of mock-openai share. mock_openai.c holds the HTTP
 * routing, the key check and the fault queue; model.c the fake model behind
 * the synchronous Responses and Chat Completions endpoints; batch.c the Files
 * and Batch APIs, which run every batch line through the same fake model, so
 * all three need the server state, the reply type and the model core
 * declared here.
 */
#ifndef MOCK_H
#define MOCK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "tokenizer/tokenizer.h"

#define MAX_FAULTS   64
#define MAX_PREFIXES 64

typedef struct batch_store batch_store;

typedef struct fault {
    char name[32];
    long count;
    size_t min_emails; /* only requests carrying at least this many emails */
    double for_s;      /* > 0: an outage of this long, count unused: every request */
    double until_s;    /* from the first one it meets until then (mock_now_s); 0 before */
} fault;

typedef struct bucket {
    double limit; /* per minute; 0: unlimited */
    double level; /* available now */
    double t;     /* last refill, seconds */
} bucket;

/* Retry headers on a 429 (--retry-header): none, as OpenAI answers (the
 * x-ratelimit-* headers only); retry-after-ms; retry-after in seconds; or
 * both, as Azure OpenAI answers. */
enum { RETRY_NONE = 0, RETRY_MS, RETRY_S, RETRY_AZURE };

typedef struct mock {
    const char *key;
    ik_tok *tok;
    long max_input;
    long reasoning_per_email;
    double ttft_ms, tps, latency_scale;
    long timeout_sleep_ms;
    int retry_header;          /* a 429's retry headers: RETRY_NONE (OpenAI's way) ... */
    uint64_t id_seed, id_next; /* x-request-id: unique per answer */
    pthread_mutex_t mu;
    bucket rpm, tpm;
    fault faults[MAX_FAULTS];
    size_t nfaults;
    uint64_t prefixes[MAX_PREFIXES];
    size_t nprefixes;
    batch_store *batches; /* the Files and Batch APIs (batch.c) */
    /* stats */
    long requests, ok, rate_limited, errors, emails, stored, inflight, max_inflight;
    long connections; /* TCP connections accepted (connection reuse shows here) */
    long long tokens_in, tokens_out, tokens_cached, charged;
    long chat, responses;
} mock;

/* One HTTP answer. body is owned; a JSON body is NUL-terminated and sent as
 * application/json unless ctype says otherwise, a binary one sets has_len. */
typedef struct reply {
    int status;
    char *body;
    size_t len;
    int has_len;
    const char *ctype; /* static string; NULL: application/json */
    char hdr[8][2][64];
    int nhdr;
    /* filled by mock_model() for the batch runner */
    int timed_out; /* a timeout fault hit a batch request: no HTTP answer */
    int has_usage; /* a 200 answer: its usage in the Responses terms */
    long long u_in, u_cached, u_out, u_reason;
} reply;

double mock_now_s(void);
void error_reply(reply *r, int status, const char *msg, const char *type, const char *param,
                 const char *code);
/* 0 when the request carries the key (Authorization: Bearer or api-key);
 * otherwise fills r with the usual 401 and returns -1. */
int mock_check_auth(mock *m, const char *auth, const char *apikey, reply *r);
/* Takes one pending fault into name. batch_level 0: a model-request fault,
 * for a request carrying nemails emails; 1: a batch_* fault, which only a
 * batch creation consumes. Returns 1 when one was taken. */
int take_fault(mock *m, char *name, size_t n, size_t nemails, int batch_level);
/* The string value of o's member k (owned by o); NULL when o is NULL or the
 * member is missing or not a string. */
const char *getstr(json_object *o, const char *k);
/* Answers one model request body (no auth check). batch != 0 is a batch
 * line: no latency, no RPM/TPM buckets (batch has its own pool) and a timeout
 * fault sets r->timed_out instead of sleeping; faults, markers, usage,
 * --max-input and truncation apply as to a synchronous request. */
void mock_model(mock *m, int chat, const char *body, size_t blen, int batch, reply *r);
/* Input tokens of a request body, counted as mock_model() counts them; 0 for
 * a body it would reject. */
size_t mock_input_tokens(mock *m, int chat, const char *body, size_t blen);

#endif
