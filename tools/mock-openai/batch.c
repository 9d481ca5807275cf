/*
 * batch.c: the Files and Batch APIs of mock-openai, in the documented wire
 * format (OpenAI Batch guide; Azure Batch), so that a batch client can be
 * tested end to end without the 24 h wait.
 *
 *   POST   …/files                 multipart/form-data purpose=batch, file=@x.jsonl
 *   GET    …/files                 list (newest first)
 *   GET    …/files/{id}            the file object
 *   GET    …/files/{id}/content    the bytes
 *   DELETE …/files/{id}
 *   POST   …/batches               {input_file_id, endpoint, completion_window, metadata?}
 *   GET    …/batches?limit=&after= list (newest first)
 *   GET    …/batches/{id}
 *   POST   …/batches/{id}/cancel
 *
 * Files live in memory (content shared by reference with the batches reading
 * them, so deleting an input file does not hurt a running batch). One worker
 * thread drives every batch: validating → in_progress at once (or failed,
 * when a line breaks the input rules), then, --batch-delay-ms after creation,
 * every line runs through mock_model() in batch mode (faults and markers
 * apply, latency and the per-minute buckets do not) and the batch goes
 * finalizing → completed with an output and an error file whose lines are in
 * reverse input order, so that a client must join on custom_id. Batch-level
 * faults (batch_failed, batch_expired, batch_never) are taken by the next
 * creation. Cancelling goes cancelling → cancelled CANCEL_DELAY_S later.
 *
 * Locking: the store's mutex guards files, batches and counters; the
 * worker drops it while it parses or answers lines. When both are held,
 * the store's mutex is taken before the mock's (take_fault at creation).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "batch.h"
#include "mock.h"
#include "multipart.h"

#define BATCH_FILE_MAX  (200ull << 20) /* the documented batch input limit */
#define BATCH_MAX_LINES 50000
#define CANCEL_DELAY_S  0.1 /* cancelling → cancelled */
#define LIST_DEFAULT    20
#define LIST_MAX        100
#define ID_LEN          64
#define JSON_FLAGS      (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

enum bstatus {
    B_VALIDATING,
    B_FAILED,
    B_IN_PROGRESS,
    B_FINALIZING,
    B_COMPLETED,
    B_EXPIRED,
    B_CANCELLING,
    B_CANCELLED
};
static const char *const status_name[] = {"validating", "failed",  "in_progress", "finalizing",
                                          "completed",  "expired", "cancelling",  "cancelled"};

enum bfault { F_NONE, F_FAILED, F_EXPIRED, F_NEVER };

/* File content, shared by the file and the batches reading it. */
typedef struct blob {
    char *data;
    size_t len;
    int refs;
} blob;

typedef struct mfile {
    char id[ID_LEN];
    char *filename;
    const char *purpose; /* static: "batch" or "batch_output" */
    long long created_at;
    blob *content;
    struct mfile *next; /* newest first */
} mfile;

/* A validated input line: its custom_id as a JSON string, its body as JSON. */
typedef struct bline {
    char *cid_json;
    char *body;
    size_t blen;
} bline;

typedef struct batch {
    char id[ID_LEN];
    char endpoint[32];
    char input_file_id[ID_LEN];
    char output_file_id[ID_LEN], error_file_id[ID_LEN]; /* "": null */
    char *model;                                        /* NULL until validated */
    json_object *metadata;                              /* NULL: null */
    json_object *errors;                                /* NULL: null */
    enum bstatus status;
    enum bfault fault;
    long long created_at, in_progress_at, expires_at, finalizing_at, completed_at, failed_at,
        expired_at, cancelling_at, cancelled_at; /* unix seconds; 0: null */
    double t_created, t_cancel;                  /* monotonic */
    blob *input;                                 /* until validated */
    bline *lines;                                /* validated, until answered */
    size_t nlines;
    int processed;    /* lines were answered: request_counts are final */
    long long tokens; /* enqueued input tokens (with --batch-queue-tokens) */
    long total, completed, failed;
    int has_usage;
    long long u_in, u_cached, u_out, u_reason;
    struct batch *next; /* newest first */
} batch;

struct batch_store {
    mock *m;
    double delay_s;
    long long queue_tokens;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* wakes the worker: new batch, cancel, stop */
    pthread_t worker;
    int stop;
    mfile *files;
    batch *batches;
    uint64_t idstate;
    long files_uploaded, files_deleted, batches_created, batches_completed, batches_failed,
        batches_expired, batches_cancelled, batch_lines;
};

/* ---- small helpers ---- */

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static char *json_dup(json_object *o)
{
    return strdup(json_object_to_json_string_ext(o, JSON_FLAGS));
}

static void json_reply(reply *r, int status, json_object *o)
{
    r->status = status;
    r->body = o ? json_dup(o) : NULL;
    json_object_put(o);
}

static json_object *ts_or_null(long long t)
{
    return t ? json_object_new_int64(t) : NULL;
}

static void oom_reply(reply *r)
{
    error_reply(r, 500, "mock: out of memory", "server_error", NULL, NULL);
}

/* splitmix64: unique, unguessable-looking ids without a global */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* prefix + 24 base-62 characters; the caller holds s->mu. */
static void gen_id_locked(batch_store *s, const char *prefix, char *out, size_t n)
{
    static const char a62[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    char tail[25];
    for (int half = 0; half < 2; half++) {
        uint64_t v = splitmix(&s->idstate);
        for (int i = 0; i < 12; i++) {
            tail[half * 12 + i] = a62[v % 62];
            v /= 62;
        }
    }
    tail[24] = 0;
    snprintf(out, n, "%s%s", prefix, tail);
}

static void gen_id(batch_store *s, const char *prefix, char *out, size_t n)
{
    pthread_mutex_lock(&s->mu);
    gen_id_locked(s, prefix, out, n);
    pthread_mutex_unlock(&s->mu);
}

static blob *blob_new(char *data, size_t len)
{
    blob *b = malloc(sizeof *b);
    if (!b)
        return NULL;
    b->data = data;
    b->len = len;
    b->refs = 1;
    return b;
}

/* The caller holds s->mu (or is the last user). */
static void blob_release(blob *b)
{
    if (b && --b->refs == 0) {
        free(b->data);
        free(b);
    }
}

static void lines_free(bline *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(l[i].cid_json);
        free(l[i].body);
    }
    free(l);
}

/* ---- files ---- */

static mfile *file_find(batch_store *s, const char *id)
{
    for (mfile *f = s->files; f; f = f->next)
        if (strcmp(f->id, id) == 0)
            return f;
    return NULL;
}

/* Adds a file holding content (taken over, freed on failure); caller holds
 * s->mu. */
static mfile *file_add(batch_store *s, const char *filename, const char *purpose, char *content,
                       size_t len)
{
    mfile *f = calloc(1, sizeof *f);
    char *fn = strdup(filename);
    blob *b = f && fn ? blob_new(content, len) : NULL;
    if (!b) {
        free(f);
        free(fn);
        free(content);
        return NULL;
    }
    gen_id_locked(s, "file-", f->id, sizeof f->id);
    f->filename = fn;
    f->purpose = purpose;
    f->created_at = (long long)time(NULL);
    f->content = b;
    f->next = s->files;
    s->files = f;
    return f;
}

static json_object *file_json(const mfile *f)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(f->id));
    json_object_object_add(o, "object", json_object_new_string("file"));
    json_object_object_add(o, "bytes", json_object_new_int64((int64_t)f->content->len));
    json_object_object_add(o, "created_at", json_object_new_int64(f->created_at));
    json_object_object_add(o, "filename", json_object_new_string(f->filename));
    json_object_object_add(o, "purpose", json_object_new_string(f->purpose));
    json_object_object_add(o, "status", json_object_new_string("processed"));
    return o;
}

static void no_such(reply *r, int status, const char *what, const char *id, const char *param)
{
    char msg[400];
    snprintf(msg, sizeof msg, "No such %s object: %.200s", what, id);
    error_reply(r, status, msg, "invalid_request_error", param, NULL);
}

static void files_upload(batch_store *s, const batch_http *h, reply *r)
{
    mp_form form;
    char err[300], msg[400];
    if (mp_parse(h->content_type, h->body, h->blen, &form, err, sizeof err) != 0) {
        snprintf(msg, sizeof msg, "Invalid multipart/form-data request: %s", err);
        error_reply(r, 400, msg, "invalid_request_error", NULL, NULL);
        return;
    }
    const mp_part *purpose = NULL, *file = NULL;
    for (size_t i = 0; i < form.n; i++) {
        const mp_part *p = &form.parts[i];
        const mp_part **slot = !strcmp(p->name, "purpose") ? &purpose
                               : !strcmp(p->name, "file")  ? &file
                                                           : NULL;
        if (!slot)
            continue; /* expires_after[...] and the like: accepted, unused */
        if (*slot) {
            snprintf(msg, sizeof msg, "Invalid multipart/form-data request: field '%s' given twice",
                     p->name);
            error_reply(r, 400, msg, "invalid_request_error", p->name, NULL);
            goto out;
        }
        *slot = p;
    }
    if (!purpose) {
        error_reply(r, 400, "Missing required parameter: 'purpose'.", "invalid_request_error",
                    "purpose", "missing_required_parameter");
        goto out;
    }
    if (purpose->len != 5 || memcmp(purpose->data, "batch", 5) != 0) {
        snprintf(msg, sizeof msg,
                 "Invalid value for 'purpose': '%.*s'. This mock supports only 'batch'.",
                 (int)(purpose->len > 60 ? 60 : purpose->len), purpose->data);
        error_reply(r, 400, msg, "invalid_request_error", "purpose", "invalid_value");
        goto out;
    }
    if (!file) {
        error_reply(r, 400, "Missing required parameter: 'file'.", "invalid_request_error", "file",
                    "missing_required_parameter");
        goto out;
    }
    if (!file->filename || !file->filename[0]) {
        error_reply(r, 400, "The 'file' field must be a file upload with a filename.",
                    "invalid_request_error", "file", NULL);
        goto out;
    }
    if (file->len > BATCH_FILE_MAX) {
        snprintf(msg, sizeof msg,
                 "File is too large: %zu bytes. Batch input files may be at most 200 MB "
                 "(%llu bytes).",
                 file->len, BATCH_FILE_MAX);
        error_reply(r, 400, msg, "invalid_request_error", "file", NULL);
        goto out;
    }
    char *copy = malloc(file->len + 1);
    if (!copy) {
        oom_reply(r);
        goto out;
    }
    memcpy(copy, file->data, file->len);
    copy[file->len] = 0;
    pthread_mutex_lock(&s->mu);
    mfile *f = file_add(s, file->filename, "batch", copy, file->len);
    if (f) {
        s->files_uploaded++;
        json_reply(r, 200, file_json(f));
    }
    pthread_mutex_unlock(&s->mu);
    if (!f)
        oom_reply(r);
out:
    mp_free(&form);
}

static void files_list(batch_store *s, reply *r)
{
    json_object *o = json_object_new_object(), *data = json_object_new_array();
    pthread_mutex_lock(&s->mu);
    for (mfile *f = s->files; f; f = f->next)
        json_object_array_add(data, file_json(f));
    pthread_mutex_unlock(&s->mu);
    json_object_object_add(o, "object", json_object_new_string("list"));
    json_object_object_add(o, "data", data);
    json_object_object_add(o, "has_more", json_object_new_boolean(0));
    json_reply(r, 200, o);
}

static void files_item(batch_store *s, const char *method, const char *id, int content, reply *r)
{
    pthread_mutex_lock(&s->mu);
    mfile **pp = &s->files;
    while (*pp && strcmp((*pp)->id, id) != 0)
        pp = &(*pp)->next;
    mfile *f = *pp;
    if (!f) {
        pthread_mutex_unlock(&s->mu);
        no_such(r, 404, "File", id, NULL);
        return;
    }
    if (content) {
        char *copy = malloc(f->content->len + 1);
        if (copy) {
            memcpy(copy, f->content->data, f->content->len);
            r->status = 200;
            r->body = copy;
            r->len = f->content->len;
            r->has_len = 1;
            r->ctype = "application/octet-stream";
        }
    } else if (strcmp(method, "DELETE") == 0) {
        *pp = f->next;
        s->files_deleted++;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(f->id));
        json_object_object_add(o, "object", json_object_new_string("file"));
        json_object_object_add(o, "deleted", json_object_new_boolean(1));
        json_reply(r, 200, o);
        blob_release(f->content);
        free(f->filename);
        free(f);
    } else {
        json_reply(r, 200, file_json(f));
    }
    pthread_mutex_unlock(&s->mu);
    if (!r->body)
        oom_reply(r);
}

/* ---- batches: objects ---- */

static batch *batch_find(batch_store *s, const char *id)
{
    for (batch *b = s->batches; b; b = b->next)
        if (strcmp(b->id, id) == 0)
            return b;
    return NULL;
}

static json_object *batch_json(const batch *b)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(b->id));
    json_object_object_add(o, "object", json_object_new_string("batch"));
    json_object_object_add(o, "endpoint", json_object_new_string(b->endpoint));
    json_object_object_add(o, "model", b->model ? json_object_new_string(b->model) : NULL);
    json_object_object_add(o, "errors", json_object_get(b->errors));
    json_object_object_add(o, "input_file_id", json_object_new_string(b->input_file_id));
    json_object_object_add(o, "completion_window", json_object_new_string("24h"));
    json_object_object_add(o, "status", json_object_new_string(status_name[b->status]));
    json_object_object_add(o, "output_file_id",
                           b->output_file_id[0] ? json_object_new_string(b->output_file_id) : NULL);
    json_object_object_add(o, "error_file_id",
                           b->error_file_id[0] ? json_object_new_string(b->error_file_id) : NULL);
    json_object_object_add(o, "created_at", json_object_new_int64(b->created_at));
    json_object_object_add(o, "in_progress_at", ts_or_null(b->in_progress_at));
    json_object_object_add(o, "expires_at", json_object_new_int64(b->expires_at));
    json_object_object_add(o, "finalizing_at", ts_or_null(b->finalizing_at));
    json_object_object_add(o, "completed_at", ts_or_null(b->completed_at));
    json_object_object_add(o, "failed_at", ts_or_null(b->failed_at));
    json_object_object_add(o, "expired_at", ts_or_null(b->expired_at));
    json_object_object_add(o, "cancelling_at", ts_or_null(b->cancelling_at));
    json_object_object_add(o, "cancelled_at", ts_or_null(b->cancelled_at));
    json_object *rc = json_object_new_object();
    json_object_object_add(rc, "total", json_object_new_int64(b->total));
    json_object_object_add(rc, "completed", json_object_new_int64(b->completed));
    json_object_object_add(rc, "failed", json_object_new_int64(b->failed));
    json_object_object_add(o, "request_counts", rc);
    json_object *u = NULL;
    if (b->has_usage) {
        u = json_object_new_object();
        json_object *id = json_object_new_object(), *od = json_object_new_object();
        json_object_object_add(u, "input_tokens", json_object_new_int64(b->u_in));
        json_object_object_add(id, "cached_tokens", json_object_new_int64(b->u_cached));
        json_object_object_add(u, "input_tokens_details", id);
        json_object_object_add(u, "output_tokens", json_object_new_int64(b->u_out));
        json_object_object_add(od, "reasoning_tokens", json_object_new_int64(b->u_reason));
        json_object_object_add(u, "output_tokens_details", od);
        json_object_object_add(u, "total_tokens", json_object_new_int64(b->u_in + b->u_out));
    }
    json_object_object_add(o, "usage", u);
    json_object_object_add(o, "metadata", json_object_get(b->metadata));
    return o;
}

/* errors: {"object":"list","data":[{code, message, param: null, line}]} */
static json_object *errors_json(const char *code, const char *msg, long line)
{
    json_object *e = json_object_new_object();
    json_object_object_add(e, "code", json_object_new_string(code));
    json_object_object_add(e, "message", json_object_new_string(msg));
    json_object_object_add(e, "param", NULL);
    json_object_object_add(e, "line", line > 0 ? json_object_new_int64(line) : NULL);
    json_object *data = json_object_new_array();
    json_object_array_add(data, e);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "object", json_object_new_string("list"));
    json_object_object_add(o, "data", data);
    return o;
}

static void batch_free(batch *b)
{
    blob_release(b->input);
    lines_free(b->lines, b->nlines);
    free(b->model);
    json_object_put(b->metadata);
    json_object_put(b->errors);
    free(b);
}

/* ---- batches: validation (worker, unlocked) ---- */

typedef struct verr {
    const char *code; /* NULL: no error */
    char msg[600];
    long line; /* 1-based; 0: null */
} verr;

static void verr_set(verr *e, const char *code, long line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void verr_set(verr *e, const char *code, long line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->code = code;
    e->line = line;
}

/* Checks one parsed line; fills l and *model (first line) or e. */
static int check_line(json_object *j, long ln, const char *endpoint, json_object *seen,
                      char **model, bline *l, verr *e)
{
    json_object *cid, *method, *url, *body, *mdl;
    if (!json_object_object_get_ex(j, "custom_id", &cid) ||
        !json_object_is_type(cid, json_type_string) || json_object_get_string_len(cid) == 0) {
        verr_set(e, "missing_required_parameter", ln,
                 "Line %ld: missing required parameter 'custom_id' (a non-empty string).", ln);
        return -1;
    }
    if (!json_object_object_get_ex(j, "method", &method) ||
        !json_object_is_type(method, json_type_string)) {
        verr_set(e, "missing_required_parameter", ln,
                 "Line %ld: missing required parameter 'method'.", ln);
        return -1;
    }
    if (!json_object_object_get_ex(j, "url", &url) || !json_object_is_type(url, json_type_string)) {
        verr_set(e, "missing_required_parameter", ln, "Line %ld: missing required parameter 'url'.",
                 ln);
        return -1;
    }
    if (!json_object_object_get_ex(j, "body", &body) ||
        !json_object_is_type(body, json_type_object)) {
        verr_set(e, "missing_required_parameter", ln,
                 "Line %ld: missing required parameter 'body' (an object).", ln);
        return -1;
    }
    if (strcmp(json_object_get_string(method), "POST") != 0) {
        verr_set(e, "invalid_request", ln, "Line %ld: method must be 'POST', not '%.40s'.", ln,
                 json_object_get_string(method));
        return -1;
    }
    if (strcmp(json_object_get_string(url), endpoint) != 0) {
        verr_set(e, "url_mismatch", ln,
                 "Line %ld: the url '%.80s' does not match the batch's endpoint '%s'.", ln,
                 json_object_get_string(url), endpoint);
        return -1;
    }
    const char *id = json_object_get_string(cid);
    if (json_object_object_get_ex(seen, id, NULL)) {
        verr_set(e, "duplicate_custom_id", ln,
                 "Line %ld: the custom_id '%.100s' is a duplicate of an earlier request; "
                 "custom_id must be unique for each request in a batch.",
                 ln, id);
        return -1;
    }
    if (!json_object_object_get_ex(body, "model", &mdl) ||
        !json_object_is_type(mdl, json_type_string)) {
        verr_set(e, "missing_required_parameter", ln,
                 "Line %ld: missing required parameter 'body.model'.", ln);
        return -1;
    }
    const char *ms = json_object_get_string(mdl);
    if (*model && strcmp(*model, ms) != 0) {
        verr_set(e, "model_mismatch", ln,
                 "Line %ld: the model '%.80s' differs from '%.80s' on the lines before; a batch "
                 "input file may use only one model.",
                 ln, ms, *model);
        return -1;
    }
    if (!*model && !(*model = strdup(ms)))
        return -2;
    if (json_object_object_add(seen, id, NULL) != 0)
        return -2;
    l->cid_json = json_dup(cid);
    l->body = json_dup(body);
    if (!l->cid_json || !l->body)
        return -2;
    l->blen = strlen(l->body);
    return 0;
}

/* Splits and checks the input file: 0 with the lines and their model, or -1
 * with the first violation in e. */
static int parse_input(const blob *in, const char *endpoint, bline **out, size_t *nout,
                       char **model, verr *e)
{
    *out = NULL;
    *nout = 0;
    *model = NULL;
    const char *d = in->data, *end = in->data + in->len;
    size_t n = 0;
    for (const char *p = d; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        n++;
        p = nl ? nl + 1 : end;
    }
    if (n == 0) {
        verr_set(e, "empty_file", 0, "The input file is empty.");
        return -1;
    }
    if (n > BATCH_MAX_LINES) {
        verr_set(e, "too_many_tasks", 0,
                 "The input file has %zu requests; a batch may have at most %d.", n,
                 BATCH_MAX_LINES);
        return -1;
    }
    bline *lines = calloc(n, sizeof *lines);
    json_object *seen = json_object_new_object();
    json_tokener *jt = json_tokener_new();
    int rc = 0;
    if (!lines || !seen || !jt) {
        rc = -2;
        goto done;
    }
    size_t i = 0;
    for (const char *p = d; p < end && rc == 0; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        long ln = (long)i + 1;
        json_tokener_reset(jt);
        json_object *j = json_tokener_parse_ex(jt, p, (int)(le - p));
        int good = j && json_tokener_get_error(jt) == json_tokener_success &&
                   json_object_is_type(j, json_type_object);
        /* the object must be the whole line (trailing blanks and \r aside) */
        for (const char *q = p + (good ? json_tokener_get_parse_end(jt) : 0); good && q < le; q++)
            good = *q == ' ' || *q == '\t' || *q == '\r';
        if (!good) {
            verr_set(e, "invalid_json_line", ln,
                     "Line %ld of the input file is not a valid JSON object.", ln);
            rc = -1;
        } else {
            rc = check_line(j, ln, endpoint, seen, model, &lines[i], e);
        }
        json_object_put(j);
        p = nl ? nl + 1 : end;
    }
done:
    json_tokener_free(jt);
    json_object_put(seen);
    if (rc == -2)
        verr_set(e, "server_error", 0, "mock: out of memory while reading the input file.");
    if (rc != 0) {
        lines_free(lines, lines ? n : 0);
        free(*model);
        *model = NULL;
        return -1;
    }
    *out = lines;
    *nout = n;
    return 0;
}

/* validating → in_progress or failed. Called and returns with s->mu held. */
static void do_validate(batch_store *s, batch *b)
{
    enum bfault bf = b->fault;
    blob *in = b->input;
    char endpoint[sizeof b->endpoint];
    memcpy(endpoint, b->endpoint, sizeof endpoint);
    pthread_mutex_unlock(&s->mu);

    verr e = {0};
    bline *lines = NULL;
    size_t n = 0;
    char *model = NULL;
    long long tokens = 0;
    if (bf == F_FAILED)
        verr_set(&e, "invalid_request", 0, "mock: injected batch failure");
    else
        parse_input(in, endpoint, &lines, &n, &model, &e);
    if (!e.code && s->queue_tokens > 0) {
        int chat = ends_with(endpoint, "/chat/completions");
        for (size_t i = 0; i < n; i++)
            tokens += (long long)mock_input_tokens(s->m, chat, lines[i].body, lines[i].blen);
    }

    pthread_mutex_lock(&s->mu);
    blob_release(b->input); /* the lines hold what is needed from here on */
    b->input = NULL;
    if (b->status != B_VALIDATING) { /* cancelled meanwhile */
        lines_free(lines, n);
        free(model);
        return;
    }
    if (!e.code && s->queue_tokens > 0) {
        long long queued = 0;
        for (batch *o = s->batches; o; o = o->next)
            if (o != b && (o->status == B_IN_PROGRESS || o->status == B_FINALIZING))
                queued += o->tokens;
        if (queued + tokens > s->queue_tokens)
            verr_set(&e, "token_limit_exceeded", 0,
                     "Enqueued token limit reached for %.80s in organization org-mock. Limit: "
                     "%lld enqueued tokens (%lld already enqueued, %lld requested). Please try "
                     "again once some in_progress batches have been completed.",
                     model, s->queue_tokens, queued, tokens);
    }
    b->model = model;
    long long now = (long long)time(NULL);
    if (e.code) {
        lines_free(lines, n);
        b->status = B_FAILED;
        b->failed_at = now;
        b->errors = errors_json(e.code, e.msg, e.line);
        s->batches_failed++;
        return;
    }
    b->lines = lines;
    b->nlines = n;
    b->total = (long)n;
    b->tokens = tokens;
    b->status = B_IN_PROGRESS;
    b->in_progress_at = now;
}

/* ---- batches: answering (worker) ---- */

/* One output line for a line answered by the model (NULL: out of memory). */
static char *result_line(batch_store *s, const char *cid_json, const reply *r)
{
    char id[ID_LEN], rid[ID_LEN];
    gen_id(s, "batch_req_", id, sizeof id);
    gen_id(s, "req_", rid, sizeof rid);
    char *line = NULL;
    int n;
    if (r->timed_out || !r->body)
        n = asprintf(&line,
                     "{\"id\":\"%s\",\"custom_id\":%s,\"response\":null,\"error\":{\"code\":"
                     "\"server_error\",\"message\":\"%s\"}}",
                     id, cid_json, r->timed_out ? "The request timed out." : "mock: out of memory");
    else
        n = asprintf(&line,
                     "{\"id\":\"%s\",\"custom_id\":%s,\"response\":{\"status_code\":%d,"
                     "\"request_id\":\"%s\",\"body\":%s},\"error\":null}",
                     id, cid_json, r->status, rid, r->body);
    return n < 0 ? NULL : line;
}

static char *expired_line(batch_store *s, const char *cid_json)
{
    char id[ID_LEN];
    gen_id(s, "batch_req_", id, sizeof id);
    char *line = NULL;
    if (asprintf(&line,
                 "{\"id\":\"%s\",\"custom_id\":%s,\"response\":null,\"error\":{\"code\":"
                 "\"batch_expired\",\"message\":\"This request could not be executed before the "
                 "completion window expired.\"}}",
                 id, cid_json) < 0)
        return NULL;
    return line;
}

/* The lines in reverse order, one per line; NULL when there are none. */
static char *join_reversed(char **v, size_t n, size_t *len)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += strlen(v[i]) + 1;
    *len = total;
    if (n == 0)
        return NULL;
    char *out = malloc(total + 1), *p = out;
    if (!out)
        return NULL;
    for (size_t i = n; i-- > 0;) {
        size_t l = strlen(v[i]);
        memcpy(p, v[i], l);
        p[l] = '\n';
        p += l + 1;
    }
    *p = 0;
    return out;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* in_progress → finalizing → completed (or expired; or, when cancelled while
 * running, the partial results stay for the cancel step). Called and returns
 * with s->mu held. */
static void do_process(batch_store *s, batch *b)
{
    bline *lines = b->lines;
    size_t n = b->nlines;
    b->lines = NULL;
    b->nlines = 0;
    int chat = ends_with(b->endpoint, "/chat/completions");
    /* an expiring batch answers the first half; the rest is expired */
    size_t run_n = b->fault == F_EXPIRED ? n / 2 : n;
    pthread_mutex_unlock(&s->mu);

    char **ok = calloc(n ? n : 1, sizeof *ok), **bad = calloc(n ? n : 1, sizeof *bad);
    size_t nok = 0, nbad = 0;
    long ran = 0;
    int has_usage = 0;
    long long u_in = 0, u_cached = 0, u_out = 0, u_reason = 0;
    for (size_t i = 0; ok && bad && i < n; i++) {
        pthread_mutex_lock(&s->mu);
        int stopped = s->stop || b->status == B_CANCELLING;
        pthread_mutex_unlock(&s->mu);
        if (stopped)
            break;
        char *line;
        int good = 0;
        if (i < run_n) {
            reply r = {0};
            mock_model(s->m, chat, lines[i].body, lines[i].blen, 1, &r);
            ran++;
            good = r.status == 200 && !r.timed_out && r.body;
            if (r.has_usage) {
                has_usage = 1;
                u_in += r.u_in;
                u_cached += r.u_cached;
                u_out += r.u_out;
                u_reason += r.u_reason;
            }
            line = result_line(s, lines[i].cid_json, &r);
            free(r.body);
        } else {
            line = expired_line(s, lines[i].cid_json);
        }
        if (line && good)
            ok[nok++] = line;
        else if (line)
            bad[nbad++] = line;
        /* a line lost to out of memory counts as failed with no output */
    }
    lines_free(lines, n);

    size_t olen = 0, elen = 0;
    char *ofile = join_reversed(ok, nok, &olen), *efile = join_reversed(bad, nbad, &elen);
    free_strv(ok, nok);
    free_strv(bad, nbad);

    pthread_mutex_lock(&s->mu);
    s->batch_lines += ran;
    b->processed = 1;
    b->completed = (long)nok;
    b->failed = (long)n - (long)nok;
    b->has_usage = has_usage;
    b->u_in = u_in;
    b->u_cached = u_cached;
    b->u_out = u_out;
    b->u_reason = u_reason;
    long long now = (long long)time(NULL);
    if (b->status == B_IN_PROGRESS && b->fault != F_EXPIRED) {
        b->status = B_FINALIZING;
        b->finalizing_at = now;
    }
    char name[ID_LEN + 32];
    snprintf(name, sizeof name, "%s_output.jsonl", b->id);
    mfile *f = ofile ? file_add(s, name, "batch_output", ofile, olen) : NULL;
    if (f)
        snprintf(b->output_file_id, sizeof b->output_file_id, "%s", f->id);
    snprintf(name, sizeof name, "%s_error.jsonl", b->id);
    f = efile ? file_add(s, name, "batch_output", efile, elen) : NULL;
    if (f)
        snprintf(b->error_file_id, sizeof b->error_file_id, "%s", f->id);
    if (b->status == B_FINALIZING) {
        b->status = B_COMPLETED;
        b->completed_at = now;
        s->batches_completed++;
    } else if (b->status == B_IN_PROGRESS) { /* batch_expired */
        b->status = B_EXPIRED;
        b->expired_at = now;
        s->batches_expired++;
    }
    /* still cancelling: do_cancel() finishes the batch CANCEL_DELAY_S after
     * the request, with these partial results */
}

/* cancelling → cancelled. Called with s->mu held. */
static void do_cancel(batch_store *s, batch *b)
{
    b->status = B_CANCELLED;
    b->cancelled_at = (long long)time(NULL);
    if (!b->processed) { /* nothing ran: every request failed, no output */
        b->completed = 0;
        b->failed = b->total;
    }
    lines_free(b->lines, b->nlines);
    b->lines = NULL;
    b->nlines = 0;
}

static void *worker_main(void *arg)
{
    batch_store *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        double now = mock_now_s(), wake = now + 60;
        batch *due = NULL;
        int what = 0;
        /* the list is newest first: the last due batch is the oldest */
        for (batch *b = s->batches; b; b = b->next) {
            double t;
            int w;
            if (b->status == B_VALIDATING) {
                t = b->t_created;
                w = 1;
            } else if (b->status == B_IN_PROGRESS && b->fault != F_NEVER) {
                t = b->t_created + s->delay_s;
                w = 2;
            } else if (b->status == B_CANCELLING) {
                t = b->t_cancel + CANCEL_DELAY_S;
                w = 3;
            } else {
                continue;
            }
            if (t <= now) {
                due = b;
                what = w;
            } else if (t < wake) {
                wake = t;
            }
        }
        if (!due) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            double d = wake - now;
            ts.tv_sec += (time_t)d;
            ts.tv_nsec += (long)((d - (double)(time_t)d) * 1e9);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            continue;
        }
        if (what == 1)
            do_validate(s, due);
        else if (what == 2)
            do_process(s, due);
        else
            do_cancel(s, due);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- batches: HTTP ---- */

static int endpoint_ok(const char *e)
{
    static const char *const ok[] = {"/v1/responses", "/v1/chat/completions", "/responses",
                                     "/chat/completions"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (strcmp(e, ok[i]) == 0)
            return 1;
    return 0;
}

/* metadata: null, or an object of at most 16 string values (keys <= 64,
 * values <= 512 characters), as the API documents. */
static int metadata_ok(json_object *md)
{
    if (!md)
        return 1;
    if (!json_object_is_type(md, json_type_object) || json_object_object_length(md) > 16)
        return 0;
    json_object_object_foreach(md, k, v)
    {
        if (strlen(k) > 64 || !json_object_is_type(v, json_type_string) ||
            json_object_get_string_len(v) > 512)
            return 0;
    }
    return 1;
}

/* The JSON object body of a batch creation; a new reference, or NULL with
 * the 400 in r. */
static json_object *create_body(const batch_http *h, reply *r)
{
    json_tokener *jt = json_tokener_new();
    json_object *req = jt ? json_tokener_parse_ex(jt, h->body ? h->body : "", (int)h->blen) : NULL;
    int perr = !jt || json_tokener_get_error(jt) != json_tokener_success;
    json_tokener_free(jt);
    if (!req || perr || !json_object_is_type(req, json_type_object)) {
        json_object_put(req);
        error_reply(r, 400, "We could not parse the JSON body of your request.",
                    "invalid_request_error", NULL, NULL);
        return NULL;
    }
    return req;
}

/* The creation's parameters checked as the API checks them: val gets
 * input_file_id, endpoint and completion_window, *md the metadata (NULL:
 * none), all pointing into req. 0, or -1 with the 400 in r. */
static int create_params(json_object *req, const char *val[3], json_object **md, reply *r)
{
    static const char *const required[] = {"input_file_id", "endpoint", "completion_window"};
    char msg[400];
    for (int i = 0; i < 3; i++) {
        json_object *v;
        if (!json_object_object_get_ex(req, required[i], &v) ||
            !json_object_is_type(v, json_type_string)) {
            snprintf(msg, sizeof msg, "Missing required parameter: '%s'.", required[i]);
            error_reply(r, 400, msg, "invalid_request_error", required[i],
                        "missing_required_parameter");
            return -1;
        }
        val[i] = json_object_get_string(v);
    }
    *md = NULL;
    json_object_object_get_ex(req, "metadata", md);
    if (!endpoint_ok(val[1])) {
        snprintf(msg, sizeof msg,
                 "Invalid value for 'endpoint': '%.80s'. This mock supports '/v1/responses' and "
                 "'/v1/chat/completions' ('/responses' and '/chat/completions' on Azure).",
                 val[1]);
        error_reply(r, 400, msg, "invalid_request_error", "endpoint", "invalid_value");
    } else if (strcmp(val[2], "24h") != 0) {
        snprintf(msg, sizeof msg,
                 "Invalid value for 'completion_window': '%.40s'. Supported values are: '24h'.",
                 val[2]);
        error_reply(r, 400, msg, "invalid_request_error", "completion_window", "invalid_value");
    } else if (!metadata_ok(*md)) {
        error_reply(r, 400,
                    "Invalid 'metadata': expected an object of at most 16 string values (keys up "
                    "to 64, values up to 512 characters).",
                    "invalid_request_error", "metadata", "invalid_value");
    }
    return r->status ? -1 : 0;
}

/* The input file a batch reads, under s->mu: one of purpose batch, or NULL
 * with the 400 in r (no such file, or a batch_output file). */
static mfile *input_file_locked(batch_store *s, const char *id, reply *r)
{
    mfile *f = file_find(s, id);
    if (!f)
        no_such(r, 400, "File", id, "input_file_id");
    else if (strcmp(f->purpose, "batch") != 0)
        error_reply(r, 400,
                    "Invalid 'input_file_id': the file's purpose is 'batch_output', not 'batch'.",
                    "invalid_request_error", "input_file_id", "invalid_value");
    else
        return f;
    return NULL;
}

/* A new batch b on file f, under s->mu: it takes the next batch-level fault,
 * an id, a copy of md (b owns it) and a reference to f's content, and joins
 * the store (validating). 0, or -1 when out of memory, b then not in the
 * store and the caller's to free. */
static int batch_start_locked(batch_store *s, batch *b, mfile *f, const char *endpoint,
                              json_object *md)
{
    char fname[32] = "";
    /* lock order: the store's mutex, then the mock's (inside take_fault) */
    take_fault(s->m, fname, sizeof fname, 0, 1);
    b->fault = !strcmp(fname, "batch_failed")    ? F_FAILED
               : !strcmp(fname, "batch_expired") ? F_EXPIRED
               : !strcmp(fname, "batch_never")   ? F_NEVER
                                                 : F_NONE;
    gen_id_locked(s, "batch_", b->id, sizeof b->id);
    snprintf(b->endpoint, sizeof b->endpoint, "%s", endpoint);
    snprintf(b->input_file_id, sizeof b->input_file_id, "%s", f->id);
    /* a copy: json-c reference counts are not atomic, and req is freed
     * by this thread while others may print the batch */
    if (md && json_object_deep_copy(md, &b->metadata, NULL) != 0)
        return -1;
    b->status = B_VALIDATING;
    b->created_at = (long long)time(NULL);
    b->expires_at = b->created_at + 86400;
    b->t_created = mock_now_s();
    b->input = f->content;
    f->content->refs++;
    b->next = s->batches;
    s->batches = b;
    s->batches_created++;
    return 0;
}

/* POST …/batches: a batch created on an uploaded file and handed to the
 * worker, or the API's 400. */
static void batches_create(batch_store *s, const batch_http *h, reply *r)
{
    json_object *req = create_body(h, r);
    if (!req)
        return;
    const char *val[3];
    json_object *md;
    if (create_params(req, val, &md, r) != 0) {
        json_object_put(req);
        return;
    }
    batch *b = calloc(1, sizeof *b);
    if (!b) {
        json_object_put(req);
        oom_reply(r);
        return;
    }
    pthread_mutex_lock(&s->mu);
    mfile *f = input_file_locked(s, val[0], r);
    if (!f || batch_start_locked(s, b, f, val[1], md) != 0) {
        pthread_mutex_unlock(&s->mu);
        free(b);
        json_object_put(req);
        if (f)
            oom_reply(r);
        return;
    }
    json_reply(r, 200, batch_json(b));
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    json_object_put(req);
    if (!r->body)
        oom_reply(r);
}

static void batches_list(batch_store *s, const batch_http *h, reply *r)
{
    long limit = LIST_DEFAULT;
    if (h->q_limit) {
        char *e;
        errno = 0;
        limit = strtol(h->q_limit, &e, 10);
        if (errno || e == h->q_limit || *e || limit < 1 || limit > LIST_MAX) {
            error_reply(r, 400, "Invalid 'limit': expected an integer from 1 to 100.",
                        "invalid_request_error", "limit", "invalid_value");
            return;
        }
    }
    pthread_mutex_lock(&s->mu);
    batch *b = s->batches;
    if (h->q_after) {
        b = batch_find(s, h->q_after);
        if (!b) {
            pthread_mutex_unlock(&s->mu);
            no_such(r, 400, "Batch", h->q_after, "after");
            return;
        }
        b = b->next;
    }
    json_object *o = json_object_new_object(), *data = json_object_new_array();
    const char *first = NULL, *last = NULL;
    for (long k = 0; b && k < limit; k++, b = b->next) {
        json_object_array_add(data, batch_json(b));
        if (!first)
            first = b->id;
        last = b->id;
    }
    json_object_object_add(o, "object", json_object_new_string("list"));
    json_object_object_add(o, "data", data);
    json_object_object_add(o, "first_id", first ? json_object_new_string(first) : NULL);
    json_object_object_add(o, "last_id", last ? json_object_new_string(last) : NULL);
    json_object_object_add(o, "has_more", json_object_new_boolean(b != NULL));
    json_reply(r, 200, o);
    pthread_mutex_unlock(&s->mu);
    if (!r->body)
        oom_reply(r);
}

static void batches_item(batch_store *s, const char *id, int cancel, reply *r)
{
    pthread_mutex_lock(&s->mu);
    batch *b = batch_find(s, id);
    if (!b) {
        pthread_mutex_unlock(&s->mu);
        no_such(r, 404, "Batch", id, NULL);
        return;
    }
    if (cancel) {
        if (b->status == B_VALIDATING || b->status == B_IN_PROGRESS) {
            b->status = B_CANCELLING;
            b->cancelling_at = (long long)time(NULL);
            b->t_cancel = mock_now_s();
            /* counted when accepted, not 100 ms later: a client that cancels
             * on shutdown is gone by then, and its test reads the count */
            s->batches_cancelled++;
            pthread_cond_signal(&s->cv);
        } else if (b->status != B_CANCELLING && b->status != B_FINALIZING) {
            char msg[120];
            snprintf(msg, sizeof msg, "Cannot cancel a batch with status %s.",
                     status_name[b->status]);
            pthread_mutex_unlock(&s->mu);
            error_reply(r, 400, msg, "invalid_request_error", NULL, NULL);
            return;
        }
        /* cancelling or finalizing: answered as is, as a repeated cancel */
    }
    json_reply(r, 200, batch_json(b));
    pthread_mutex_unlock(&s->mu);
    if (!r->body)
        oom_reply(r);
}

/* ---- routing ---- */

enum route { R_NONE, R_COLL, R_ITEM, R_SUB };

/* Matches url against "<prefix>/<coll>", "<prefix>/<coll>/{id}" and
 * "<prefix>/<coll>/{id}/<sub>", any prefix (OpenAI /v1, Azure /openai/v1
 * and the dated /openai); the id goes to id. */
static enum route match(const char *url, const char *coll, const char *sub, char *id, size_t idn)
{
    size_t cl = strlen(coll);
    for (const char *p = strstr(url, coll); p; p = strstr(p + 1, coll)) {
        const char *rest = p + cl;
        if (*rest == 0)
            return R_COLL;
        if (*rest != '/' || !rest[1] || rest[1] == '/')
            continue;
        const char *is = rest + 1, *slash = strchr(is, '/');
        size_t il = slash ? (size_t)(slash - is) : strlen(is);
        snprintf(id, idn, "%.*s", (int)il, is);
        if (!slash)
            return R_ITEM;
        if (slash[1] && strcmp(slash + 1, sub) == 0)
            return R_SUB;
    }
    return R_NONE;
}

int batch_is_upload(const char *method, const char *url)
{
    char id[8];
    return strcmp(method, "POST") == 0 && match(url, "/files", "content", id, sizeof id) == R_COLL;
}

int batch_route(batch_store *s, const batch_http *h, reply *r)
{
    char id[256];
    enum route fr = match(h->url, "/files", "content", id, sizeof id), br = R_NONE;
    if (fr == R_NONE)
        br = match(h->url, "/batches", "cancel", id, sizeof id);
    if (fr == R_NONE && br == R_NONE)
        return 0;
    if (mock_check_auth(s->m, h->auth, h->apikey, r) != 0)
        return 1;
    const char *m = h->method;
    int get = !strcmp(m, "GET"), post = !strcmp(m, "POST"), del = !strcmp(m, "DELETE");
    if (fr == R_COLL && post)
        files_upload(s, h, r);
    else if (fr == R_COLL && get)
        files_list(s, r);
    else if (fr == R_ITEM && (get || del))
        files_item(s, m, id, 0, r);
    else if (fr == R_SUB && get)
        files_item(s, m, id, 1, r);
    else if (br == R_COLL && post)
        batches_create(s, h, r);
    else if (br == R_COLL && get)
        batches_list(s, h, r);
    else if (br == R_ITEM && get)
        batches_item(s, id, 0, r);
    else if (br == R_SUB && post)
        batches_item(s, id, 1, r);
    else {
        char msg[300];
        snprintf(msg, sizeof msg, "Invalid URL (%s %.200s)", m, h->url);
        error_reply(r, 404, msg, "invalid_request_error", NULL, NULL);
    }
    return 1;
}

/* ---- the store ---- */

batch_store *batch_store_new(mock *m, long delay_ms, long long queue_tokens)
{
    batch_store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->m = m;
    s->delay_s = delay_ms > 0 ? (double)delay_ms / 1000.0 : 0;
    s->queue_tokens = queue_tokens > 0 ? queue_tokens : 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->idstate = ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 48);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    /* the worker's deadlines are monotonic (mock_now_s) */
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int ok = pthread_mutex_init(&s->mu, NULL) == 0;
    if (ok && pthread_cond_init(&s->cv, &ca) != 0) {
        pthread_mutex_destroy(&s->mu);
        ok = 0;
    }
    pthread_condattr_destroy(&ca);
    if (!ok) {
        free(s);
        return NULL;
    }
    if (pthread_create(&s->worker, NULL, worker_main, s) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    return s;
}

void batch_store_free(batch_store *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->worker, NULL);
    while (s->batches) {
        batch *b = s->batches;
        s->batches = b->next;
        batch_free(b);
    }
    while (s->files) {
        mfile *f = s->files;
        s->files = f->next;
        blob_release(f->content);
        free(f->filename);
        free(f);
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void batch_stats(batch_store *s, char *buf, size_t n)
{
    pthread_mutex_lock(&s->mu);
    snprintf(buf, n,
             "\"files_uploaded\":%ld,\"files_deleted\":%ld,\"batches_created\":%ld,"
             "\"batches_completed\":%ld,\"batches_failed\":%ld,\"batches_expired\":%ld,"
             "\"batches_cancelled\":%ld,\"batch_lines\":%ld",
             s->files_uploaded, s->files_deleted, s->batches_created, s->batches_completed,
             s->batches_failed, s->batches_expired, s->batches_cancelled, s->batch_lines);
    pthread_mutex_unlock(&s->mu);
}
