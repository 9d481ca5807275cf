/*
 * gpt_internal.h: the modules of the gpt_batch processor and what they share:
 * the model catalog (catalog.c), the strict output schema and result
 * validation (schema.c), prompt rendering (prompt.c), parsing of API replies
 * and error bodies (reply.c), retry-hint headers, the client-side rate
 * limiter and adaptive concurrency (limits.c). gpt_batch.c is the plugin.
 *
 * Ownership: functions returning char * or json_object * hand a new
 * reference to the caller (free / json_object_put). None keeps global state.
 */
#ifndef INTAKE_GPT_INTERNAL_H
#define INTAKE_GPT_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <curl/curl.h>

#include <intake/plugin.h>

#include "common/buf.h"

/* ---- catalog.c: etc/models.conf ---- */

typedef struct gpt_model {
    char *id;        /* the model name sent to the API */
    char *tokenizer; /* "o200k_base" */
    long context_window, max_input, max_output;
    /* USD per 1M tokens */
    double in, cached_in, out, batch_in, batch_cached_in, batch_out;
    char **efforts; /* allowed reasoning efforts */
    size_t nefforts;
} gpt_model;

/* Loads the entry `model` (NULL or "": the catalog's default_model) from the
 * libconfig catalog at path into out. Errors name the file and line. */
int gpt_catalog_load(const char *path, const char *model, gpt_model *out, char *err, size_t errlen);
void gpt_model_free(gpt_model *m);
int gpt_model_allows_effort(const gpt_model *m, const char *effort);
/* Cost in USD of a usage, standard or batch prices. */
double gpt_model_cost(const gpt_model *m, int batch, long input, long cached, long output);

/* ---- schema.c ---- */

/* The strict structured-output schema for a packed request: {results: [
 * {email_id, ...every field of the extraction schema...}]}, every property
 * required, optional ones nullable, additionalProperties false everywhere,
 * keywords strict mode rejects removed. Returns a new object or NULL with
 * err set. */
json_object *gpt_strict_schema(json_object *extraction, char *err, size_t errlen);

/* The wire form of the strict schema: what a request carries. Without
 * model_confidence the root `confidence` property is left out (the plugin
 * fills it from grounding: gpt_fill_confidence; the extraction schema's
 * confidence must then be an object of numbers, else IK_E_CONFIG-worthy
 * NULL with err). With compact_keys every property gets a short name
 * ("candidate_name" -> "cn") and a description that starts with its schema
 * name; *back gets the map gpt_parse_results_wire renames answers back by
 * (NULL without compact_keys). Returns a new object, or NULL with err. */
json_object *gpt_wire_schema(json_object *strict, json_object *extraction, int model_confidence,
                             int compact_keys, json_object **back, char *err, size_t errlen);

/* Checks value against a JSON schema (the subset the extraction schema uses:
 * type incl. unions, properties, required, additionalProperties false,
 * enum, minimum, maximum, items). 0 when valid, else IK_E_INVAL with the path
 * and the rule broken in why. */
int gpt_validate(json_object *schema, json_object *value, char *why, size_t whylen);

/* ---- prompt.c ---- */

/* Renders one email as the block the model reads:
 *   <email id="ID">\nFrom: ...\nTo: ...\nSubject: ...\n\nBODY\n</email>\n
 * The id is attribute-escaped; "</email" inside the text is broken up so an
 * email cannot close its own block. Understands the seed's email JSON
 * (sender_name, sender_email, subject, body, attachments), the email plugin's
 * (etc/email.schema.json: `text` preferred over `body`) and common
 * alternatives (from, to, body_text, html); any
 * other payload is rendered as its JSON text. Caller frees; NULL on OOM. */
char *gpt_render_email(const char *id, json_object *payload, size_t *len);

/* Within a request an email's block carries a short id, its position there
 * written in decimal ("1", "2", ...: one o200k token up to 999), and the
 * model copies that into each answer's email_id instead of a record id of
 * often 20 to 50 tokens. Blocks are rendered once with GPT_BLOCK_ID ("1",
 * as many tokens as any id up to 999, so token counts hold) and put into a
 * request by gpt_put_block. */
extern const char GPT_BLOCK_ID[];
/* The text of a rendered block after its opening line. */
const char *gpt_block_body(const char *block);
/* Appends block (from gpt_render_email) to b with the id pos (1-based). */
void gpt_put_block(ik_buf *b, const char *block, size_t pos);

/* The user message for a packed request: a fixed header line then the blocks. */
extern const char GPT_USER_HEADER[];
/* Appended to the instructions when the model gives its own confidence
 * (model_confidence = true). */
extern const char GPT_CONFIDENCE_INSTRUCTIONS[];

/* ---- reply.c: parsing the API's answers (outside input) ---- */

typedef enum gpt_finish {
    GPT_FIN_OK = 0,  /* complete answer in text */
    GPT_FIN_LENGTH,  /* max_output_tokens / finish_reason length */
    GPT_FIN_FILTER,  /* content filter */
    GPT_FIN_REFUSAL, /* the model refused; refusal text set */
    GPT_FIN_FAILED,  /* status failed / no message at all */
} gpt_finish;

typedef struct gpt_usage {
    long input, cached, output, reasoning;
} gpt_usage;

typedef struct gpt_reply {
    gpt_finish finish;
    char *text;    /* owned; the output text, NULL when none */
    char *refusal; /* owned */
    gpt_usage usage;
    char id[96];
} gpt_reply;

/* Parses a 200 body of the Responses API (chat = 0) or Chat Completions
 * (chat = 1). 0 on success, IK_E_PARSE with what and where in err. */
int gpt_parse_reply(int chat, const char *body, size_t len, gpt_reply *out, char *err,
                    size_t errlen);
void gpt_reply_free(gpt_reply *r);

typedef struct gpt_api_error {
    char message[400];
    char type[64];
    char code[64];
    char param[64];
} gpt_api_error;

/* Parses an error body {"error": {message, type, param, code}}; 0 or
 * IK_E_PARSE (out then holds a short excerpt of the body as message). */
int gpt_parse_error(const char *body, size_t len, gpt_api_error *out);

/* Parses the model's output text: a JSON object with a `results` array.
 * *results gets a new reference. IK_E_PARSE (truncated or malformed JSON,
 * with the offset) or IK_E_INVAL (no results array). */
int gpt_parse_results(const char *text, json_object **results, char *err, size_t errlen);
/* As gpt_parse_results, with the keys of each result renamed back from the
 * wire names by back (gpt_wire_schema; NULL: none). A result with one
 * property under two names makes the whole output IK_E_INVAL. */
int gpt_parse_results_wire(const char *text, json_object *back, json_object **results, char *err,
                           size_t errlen);

/* Which email of a request of k (0..k-1) the answer `it` (one element of
 * `results`) is for, by its email_id: the block's short id, its position in
 * the request in decimal ("1" .. "k", see gpt_put_block); k when it names
 * none (not a string, "0", "01", "+1", " 1", "1x", beyond k). */
size_t gpt_answer_position(json_object *it, size_t k);

/* Batch API answers (reply.c). */

typedef struct gpt_batch_line {
    char custom_id[128];
    long status; /* response.status_code; 0 when the line carries an error instead */
    char *body;  /* owned: response.body as JSON text; NULL when none */
    size_t body_len;
    char request_id[96];
    char err_code[64], err_message[300]; /* the line's error (response null) */
} gpt_batch_line;

/* Parses one line of a batch output or error file. 0, or IK_E_PARSE /
 * IK_E_NOMEM with what and where in err (out then holds nothing to free). */
int gpt_parse_batch_line(const char *line, size_t len, gpt_batch_line *out, char *err,
                         size_t errlen);
void gpt_batch_line_free(gpt_batch_line *l);

typedef struct gpt_batch_info {
    char id[128], status[32];
    char output_file_id[128], error_file_id[128]; /* "" when null */
    int terminal;                                 /* completed, failed, expired, cancelled */
    char err_code[64], err_message[300];          /* errors.data[0], when any */
    long err_line;
    long total, completed, failed; /* request_counts */
} gpt_batch_info;

/* Parses a batch object (create, retrieve, cancel answers). */
int gpt_parse_batch_object(const char *body, size_t len, gpt_batch_info *out, char *err,
                           size_t errlen);
/* Parses a file object and copies its id. */
int gpt_parse_file_object(const char *body, size_t len, char *id, size_t idlen, char *err,
                          size_t errlen);

/* ---- grounding.c ---- */

/* 1 when the extracted value of field occurs in text (case, whitespace, URL
 * scheme and phone separators forgiven; an empty value claims nothing), 0
 * when it does not, IK_E_NOMEM. */
int gpt_grounded(const char *field, const char *value, const char *text, size_t tlen);

/* How a value occurs in the text, weakest first; NULL: no value. */
enum { GPT_GROUND_NULL = 0, GPT_GROUND_NOT_FOUND, GPT_GROUND_NORMALIZED, GPT_GROUND_VERBATIM };

/* GPT_GROUND_VERBATIM when value occurs in text byte for byte,
 * GPT_GROUND_NORMALIZED when only gpt_grounded's forgiving match finds it,
 * GPT_GROUND_NOT_FOUND otherwise (an empty value too); IK_E_NOMEM. */
int gpt_grounding_level(const char *field, const char *value, const char *text, size_t tlen);

/* Sets ext's `confidence` (one number per property of the extraction
 * schema's confidence object) from how each field's value occurs in text:
 * verbatim 0.9, after normalisation 0.6, not found 0.2, null 0; an object
 * value counts as its weakest string. No-op (0) when the schema has no
 * confidence object; IK_E_NOMEM. */
int gpt_fill_confidence(json_object *extraction_schema, json_object *ext, const char *text,
                        size_t tlen);

/* ---- limits.c ---- */

/* Go-style duration ("1s", "6m0s", "12ms", "1h2m3.5s", "250us") in ms. */
int gpt_parse_duration_ms(const char *s, double *ms);
/* Retry-After: delay-seconds or an HTTP-date (relative to now). */
int gpt_parse_retry_after_ms(const char *s, time_t now, double *ms);

typedef struct gpt_hints {
    double retry_after_ms;                       /* retry-after-ms, else retry-after; < 0 none */
    int should_retry;                            /* x-should-retry: -1 absent, 0 false, 1 true */
    long limit_req, limit_tok, rem_req, rem_tok; /* -1 absent */
    double reset_req_ms, reset_tok_ms;           /* < 0 absent */
    char request_id[96];
    char bad[160]; /* first malformed hint header: "name: value" */
} gpt_hints;

/* Which limit a 429 rate_limit_exceeded names (OpenAI: the error's type,
 * "requests" or "tokens", and its message "Rate limit reached for M in
 * organization O on tokens per min (TPM): Limit N, Used U, Requested R.
 * Please try again in 1.5s."). */
typedef enum gpt_limit_kind {
    GPT_LIMIT_UNKNOWN = 0,
    GPT_LIMIT_REQUESTS,
    GPT_LIMIT_TOKENS,
} gpt_limit_kind;

typedef struct gpt_rate_limit {
    gpt_limit_kind kind;
    int per_day;         /* RPD / TPD rather than per minute */
    double try_again_ms; /* the message's "try again in"; < 0 none */
} gpt_rate_limit;

/* Reads a 429 error's type and message (either may be NULL) into out; 0, or
 * IK_E_PARSE when the message's "try again in" is not a duration (out then
 * holds the limit, without the wait). */
int gpt_parse_rate_limit(const char *type, const char *message, gpt_rate_limit *out);

void gpt_hints_init(gpt_hints *h);
/* Feeds one raw header line ("Name: value\r\n"); unknown headers are ignored,
 * a malformed known one returns IK_E_PARSE (and is noted in bad). */
int gpt_hints_header(gpt_hints *h, const char *line, size_t len);
/* How long a 429 asks to wait, in ms: retry-after-ms, retry-after (Azure),
 * the message's "try again in" (OpenAI), the reset header of the limit hit
 * (NULL: not known), an exhausted bucket's reset; fallback when none. */
double gpt_hints_wait_ms(const gpt_hints *h, const gpt_rate_limit *hit, double fallback_ms);

/* Checks the options that become request fields the API bounds
 * (prompt_cache_key at most 64 characters, a Responses max_output_tokens of
 * 0 or at least 16), so that create refuses them instead of every request
 * failing. 0, or IK_E_CONFIG with the option, its length or value and the
 * limit in err (never the key itself). */
int gpt_check_request_options(const char *cache_key, long max_output_tokens, int chat, char *err,
                              size_t errlen);

/* Client-side limiter: requests and tokens per minute as token buckets
 * (capacity = the per-minute limit, refilled continuously), a pause until a
 * time a 429 named, and an AIMD gate on requests in flight. Thread-safe. */
typedef struct gpt_limiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    double rpm, tpm;     /* limits; 0 unknown (no limiting) */
    double req, tok;     /* current bucket levels */
    double last;         /* last refill, seconds (monotonic) */
    double paused_until; /* seconds (monotonic) */
    double conc, conc_min, conc_max;
    double lat_ewma;   /* request latency, seconds */
    double speed_base; /* recent fastest seconds per output token */
    long speed_samples;
    double last_decrease; /* when conc was last halved (monotonic seconds) */
    int inflight;
    int cfg_rpm, cfg_tpm; /* limits were configured (headers only lower them) */
    int probing;          /* limits unknown and no answer yet: starts are spaced */
    double last_start;    /* when the last request was let through */
    double utilization;   /* share of the limit to aim for */
} gpt_limiter;

int gpt_limiter_init(gpt_limiter *l, double rpm, double tpm, double conc_min, double conc_max,
                     double utilization);
void gpt_limiter_destroy(gpt_limiter *l);
/* Waits until a request of `tokens` may go; stop() is polled every 100 ms and
 * ends the wait with IK_E_STOPPING. */
int gpt_limiter_acquire(gpt_limiter *l, double tokens, int (*stop)(void *), void *arg);
/* Gives back the slot of a request that has ended. */
void gpt_limiter_done(gpt_limiter *l);
/* Adapts the concurrency to how a request went: overloaded (429, 5xx,
 * timeout, slow) halves it, at most once per round trip (the latency EWMA),
 * otherwise it grows by one (additive increase per response). */
void gpt_limiter_feedback(gpt_limiter *l, int overloaded, double latency_s);
/* gpt_limiter_done then gpt_limiter_feedback. */
void gpt_limiter_release(gpt_limiter *l, int overloaded, double latency_s);
/* 1 when an answer was slow: latency above target_s (when > 0), or its time
 * per output token above factor (when > 0) times the fastest recent one
 * (judged after 5 answers of at least 256 output tokens). Also learns. */
int gpt_limiter_slow(gpt_limiter *l, double latency_s, double output_tokens, double target_s,
                     double factor);
/* Charges (or refunds, when negative) tokens after the fact: the real usage
 * minus the estimate charged at acquire. */
void gpt_limiter_correct(gpt_limiter *l, double tokens_delta);
/* Corrects limits and levels from x-ratelimit-* headers. */
void gpt_limiter_update(gpt_limiter *l, const gpt_hints *h);
/* No request starts for ms from now. */
void gpt_limiter_pause(gpt_limiter *l, double ms);
double gpt_limiter_concurrency(gpt_limiter *l);
double gpt_now_s(void);

/* ---- http.c: a pool of curl handles (connection reuse) ---- */

typedef struct gpt_http gpt_http;

typedef struct gpt_upload {
    const char *purpose, *filename; /* multipart fields "purpose" and "file" */
    const char *data;
    size_t len;
} gpt_upload;

typedef struct gpt_resp {
    long status;      /* HTTP status; 0 when no answer */
    const char *body; /* NUL-terminated, "" when none; lives in raw */
    size_t len;
    ik_buf raw; /* owned; gpt_resp_free */
    int too_big;
    gpt_hints hints;
    int bad_hints; /* a malformed hint header was seen (hints.bad names it) */
} gpt_resp;

/* auth_line is a whole header line ("Authorization: Bearer ..."), copied. */
int gpt_http_new(gpt_http **out, const char *auth_line, long timeout_ms, long connect_timeout_ms);
void gpt_http_free(gpt_http *h);
/* Sends method to url with a JSON body (json), a multipart upload (up) or
 * neither. 0 when an answer came back (any status, in resp->status),
 * IK_E_TIMEOUT or IK_E_IO with curl's message in err, IK_E_NOMEM. resp is
 * always initialised (body never NULL); the caller frees it with
 * gpt_resp_free. Thread-safe. */
int gpt_http_send(gpt_http *h, const char *method, const char *url, const char *json,
                  const gpt_upload *up, gpt_resp *resp, char *err, size_t errlen);
void gpt_resp_free(gpt_resp *r);

#endif
