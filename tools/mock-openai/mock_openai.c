/*
 * mock_openai.c: a local stand-in for the OpenAI and Azure OpenAI APIs, for
 * tests and benchmarks: the HTTP server, its routing, the key check, the
 * fault queue and the control endpoints (the fake model is in model.c, the
 * Files and Batch APIs in batch.c). It speaks the Responses API and Chat
 * Completions as documented (any path ending in /responses or
 * /chat/completions, so the OpenAI, Azure dated and Azure /openai/v1/ URL
 * forms all work), checks the key (Authorization: Bearer or api-key),
 * refuses what the real API refuses (rules.c: unknown parameters, what
 * reasoning models reject, bounded fields; strict_schema.c: the strict
 * schema rules), gives every answer its own x-request-id, and answers a
 * packed extraction request through the fake model (model.c says what it
 * extracts, how it counts usage, limits and latency, and what each fault
 * and marker does).
 *
 * Faults: POST /mock/faults {"fault": NAME, "count": N} makes the next N model
 * requests fail with NAME (model.c lists them).
 * "for_ms": T instead of a count fails every model request for T
 * milliseconds from the first request it meets (an outage that ends by the
 * clock, met however long the client takes to start).
 * An optional "min_emails": K makes the fault wait for a request carrying at
 * least K emails: a split-inducing fault (context_length, incomplete, ...)
 * with K = 2 never lands on a lone email, which it would dead-letter, so a
 * test's set of dead letters does not depend on scheduling.
 *
 * The Batch API (batch.c): …/files (multipart upload, get, content, delete)
 * and …/batches (create, get, list, cancel) under the same prefixes, files
 * in memory, every batch line answered by the same model core as above
 * (mock_model() in batch mode: no latency, no per-minute buckets, a timeout
 * fault gives an error line instead of a sleep) --batch-delay-ms after the
 * batch's creation; --batch-queue-tokens caps the enqueued input tokens.
 * Batch faults through /mock/faults, taken by the next batch creation:
 * batch_failed, batch_expired (the second half of the lines expires),
 * batch_never (in_progress until cancelled).
 *
 * GET /mock/stats returns counters as JSON. The server prints "listening on
 * 127.0.0.1:PORT" on stdout once ready and stops on SIGINT/SIGTERM (HTTP
 * first, then the batch worker).
 */
#include <errno.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "batch.h"
#include "mock.h"
#include "tokenizer/tokenizer.h"

/* the largest request body; a file upload (POST …/files) may be larger */
#define MAX_BODY (64u << 20)

static volatile sig_atomic_t g_stop; /* main()'s signal flag: the only global */

double mock_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void error_reply(reply *r, int status, const char *msg, const char *type, const char *param,
                 const char *code)
{
    json_object *e = json_object_new_object();
    json_object_object_add(e, "message", json_object_new_string(msg));
    json_object_object_add(e, "type", json_object_new_string(type));
    json_object_object_add(e, "param", param ? json_object_new_string(param) : NULL);
    json_object_object_add(e, "code", code ? json_object_new_string(code) : NULL);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", e);
    r->status = status;
    r->body = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
}

/* Batch-level faults (batch_failed, batch_expired, batch_never) are taken by
 * the next batch creation only, never by a model request, and the model
 * faults never by a batch creation: one queue, two kinds of consumer. */
static int is_batch_fault(const char *name)
{
    return strncmp(name, "batch_", 6) == 0;
}

int take_fault(mock *m, char *name, size_t n, size_t nemails, int batch_level)
{
    int got = 0;
    double now = mock_now_s();
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->nfaults; i++) {
        if (m->faults[i].until_s > 0 && now >= m->faults[i].until_s) {
            memmove(&m->faults[i], &m->faults[i + 1], (m->nfaults - i - 1) * sizeof m->faults[0]);
            m->nfaults--;
            i--;
            continue;
        }
        if (is_batch_fault(m->faults[i].name) != (batch_level != 0))
            continue;
        if (m->faults[i].for_s > 0 && (batch_level || nemails >= m->faults[i].min_emails)) {
            if (m->faults[i].until_s == 0) /* the outage starts with its first request */
                m->faults[i].until_s = now + m->faults[i].for_s;
            snprintf(name, n, "%s", m->faults[i].name);
            got = 1;
            break;
        }
        if (m->faults[i].count > 0 && (batch_level || nemails >= m->faults[i].min_emails)) {
            snprintf(name, n, "%s", m->faults[i].name);
            if (--m->faults[i].count == 0) {
                memmove(&m->faults[i], &m->faults[i + 1],
                        (m->nfaults - i - 1) * sizeof m->faults[0]);
                m->nfaults--;
            }
            got = 1;
            break;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return got;
}

int mock_check_auth(mock *m, const char *auth, const char *apikey, reply *r)
{
    char keybuf[300];
    snprintf(keybuf, sizeof keybuf, "Bearer %s", m->key);
    if ((auth && strcmp(auth, keybuf) == 0) || (apikey && strcmp(apikey, m->key) == 0))
        return 0;
    error_reply(r, 401,
                "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error", NULL, "invalid_api_key");
    return -1;
}

static void control_request(mock *m, const char *method, const char *url, const char *body,
                            size_t blen, reply *r)
{
    if (strcmp(url, "/mock/stats") == 0) {
        char buf[1024], bst[512];
        batch_stats(m->batches, bst, sizeof bst); /* not under m->mu: lock order */
        pthread_mutex_lock(&m->mu);
        snprintf(buf, sizeof buf,
                 "{\"requests\":%ld,\"ok\":%ld,\"errors\":%ld,\"rate_limited\":%ld,\"emails\":%ld,"
                 "\"stored\":%ld,\"max_inflight\":%ld,\"tokens_in\":%lld,\"tokens_out\":%lld,"
                 "\"tokens_cached\":%lld,\"charged\":%lld,\"chat\":%ld,\"responses\":%ld,"
                 "\"pending_faults\":%zu,\"connections\":%ld,%s}",
                 m->requests, m->ok, m->errors, m->rate_limited, m->emails, m->stored,
                 m->max_inflight, m->tokens_in, m->tokens_out, m->tokens_cached, m->charged,
                 m->chat, m->responses, m->nfaults, m->connections, bst);
        pthread_mutex_unlock(&m->mu);
        r->status = 200;
        r->body = strdup(buf);
        return;
    }
    if (strcmp(url, "/mock/faults") == 0 && strcmp(method, "POST") == 0) {
        json_object *j = json_tokener_parse(body && blen ? body : "null");
        const char *name = getstr(j, "fault");
        json_object *c;
        long count = j && json_object_object_get_ex(j, "count", &c) ? json_object_get_int64(c) : 1;
        long min_emails =
            j && json_object_object_get_ex(j, "min_emails", &c) ? json_object_get_int64(c) : 1;
        long for_ms =
            j && json_object_object_get_ex(j, "for_ms", &c) ? json_object_get_int64(c) : 0;
        if (!name || count <= 0 || min_emails < 1 || for_ms < 0 || strlen(name) >= 32) {
            json_object_put(j);
            error_reply(r, 400,
                        "expected {\"fault\": NAME, \"count\": N > 0 or \"for_ms\": T > 0, "
                        "\"min_emails\": K >= 1}",
                        "invalid_request_error", NULL, NULL);
            return;
        }
        pthread_mutex_lock(&m->mu);
        if (m->nfaults < MAX_FAULTS) {
            fault *f = &m->faults[m->nfaults++];
            snprintf(f->name, sizeof f->name, "%s", name);
            f->count = count;
            f->min_emails = (size_t)min_emails;
            f->for_s = (double)for_ms / 1000.0;
            f->until_s = 0;
        }
        pthread_mutex_unlock(&m->mu);
        json_object_put(j);
        r->status = 200;
        r->body = strdup("{\"ok\":true}");
        return;
    }
    error_reply(r, 404, "Unknown path", "invalid_request_error", NULL, NULL);
}

typedef struct conn_state {
    char *buf;
    size_t len, cap;
    size_t limit; /* MAX_BODY, or BATCH_MAX_UPLOAD_BODY for a file upload */
    int too_big;
} conn_state;

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    mock *m = cls;
    conn_state *cs = *con_cls;
    if (!cs) {
        cs = calloc(1, sizeof *cs);
        if (!cs)
            return MHD_NO;
        cs->limit = batch_is_upload(method, url) ? BATCH_MAX_UPLOAD_BODY : MAX_BODY;
        *con_cls = cs;
        return MHD_YES;
    }
    if (*upload_size) {
        if (cs->too_big || cs->len + *upload_size > cs->limit) {
            cs->too_big = 1;
        } else {
            if (cs->len + *upload_size + 1 > cs->cap) {
                size_t cap = cs->cap ? cs->cap : 65536;
                while (cap < cs->len + *upload_size + 1)
                    cap *= 2;
                char *g = realloc(cs->buf, cap);
                if (!g)
                    return MHD_NO;
                cs->buf = g;
                cs->cap = cap;
            }
            memcpy(cs->buf + cs->len, upload, *upload_size);
            cs->len += *upload_size;
            cs->buf[cs->len] = 0;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    reply r = {0};
    batch_http bh = {
        .method = method,
        .url = url,
        .auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"),
        .apikey = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "api-key"),
        .content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type"),
        .q_limit = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit"),
        .q_after = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "after"),
        .body = cs->buf,
        .blen = cs->len,
    };
    if (cs->too_big) {
        error_reply(&r, 413, "Request body too large.", "invalid_request_error", NULL, NULL);
    } else if (strncmp(url, "/mock/", 6) == 0) {
        control_request(m, method, url, cs->buf, cs->len, &r);
    } else if (batch_route(m->batches, &bh, &r)) {
        /* files and batches: answered */
    } else if (strcmp(method, "POST") == 0 &&
               (ends_with(url, "/responses") || ends_with(url, "/chat/completions"))) {
        int chat = ends_with(url, "/chat/completions");
        pthread_mutex_lock(&m->mu);
        if (chat)
            m->chat++;
        else
            m->responses++;
        if (++m->inflight > m->max_inflight)
            m->max_inflight = m->inflight;
        pthread_mutex_unlock(&m->mu);
        if (mock_check_auth(m, bh.auth, bh.apikey, &r) == 0)
            mock_model(m, chat, cs->buf ? cs->buf : "", cs->len, 0, &r);
        pthread_mutex_lock(&m->mu);
        m->inflight--;
        pthread_mutex_unlock(&m->mu);
    } else {
        error_reply(&r, 404, "Invalid URL", "invalid_request_error", NULL, NULL);
    }
    if (!r.body)
        error_reply(&r, 500, "mock: out of memory", "server_error", NULL, NULL);
    struct MHD_Response *resp = MHD_create_response_from_buffer(r.has_len ? r.len : strlen(r.body),
                                                                r.body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(r.body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", r.ctype ? r.ctype : "application/json");
    char rid[48];
    pthread_mutex_lock(&m->mu);
    uint64_t n = ++m->id_next;
    pthread_mutex_unlock(&m->mu);
    snprintf(rid, sizeof rid, "req_%016llx%016llx", (unsigned long long)m->id_seed,
             (unsigned long long)n);
    MHD_add_response_header(resp, "x-request-id", rid); /* every answer its own, as OpenAI's */
    for (int i = 0; i < r.nhdr; i++)
        MHD_add_response_header(resp, r.hdr[i][0], r.hdr[i][1]);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    conn_state *cs = *con_cls;
    if (cs) {
        free(cs->buf);
        free(cs);
        *con_cls = NULL;
    }
}

/* Counts TCP connections, so tests can see that clients reuse them. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    mock *m = cls;
    if (toe != MHD_CONNECTION_NOTIFY_STARTED)
        return;
    pthread_mutex_lock(&m->mu);
    m->connections++;
    pthread_mutex_unlock(&m->mu);
}

static void on_signal(int sig)
{
    g_stop = 1;
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: mock-openai --port N [--key K] [--rank-file F] [--rpm N] [--tpm N]\n"
        "       [--max-input N] [--reasoning N] [--ttft-ms X] [--tps X] [--latency-scale X]\n"
        "       [--timeout-sleep-ms N] [--retry-header none|ms|s|azure] [--fault NAME:COUNT]...\n"
        "       [--batch-delay-ms N] [--batch-queue-tokens N]\n");
}

/* What the command line sets beyond the mock's own fields. */
typedef struct cli {
    long port;
    long batch_delay_ms;
    long long batch_queue_tokens;
    const char *rank; /* --rank-file; NULL: token counts are estimates */
} cli;

/* --retry-header's value into m->retry_header; -1 for an unknown one. */
static int parse_retry_header(const char *v, mock *m)
{
    if (!strcmp(v, "none"))
        m->retry_header = RETRY_NONE;
    else if (!strcmp(v, "ms"))
        m->retry_header = RETRY_MS;
    else if (!strcmp(v, "s"))
        m->retry_header = RETRY_S;
    else if (!strcmp(v, "azure"))
        m->retry_header = RETRY_AZURE;
    else
        return -1;
    return 0;
}

/* --fault NAME:COUNT queued as POST /mock/faults queues it; one without a
 * colon, with a name of 32 characters or more, or past MAX_FAULTS is
 * ignored. */
static void add_cli_fault(mock *m, const char *v)
{
    const char *colon = strchr(v, ':');
    if (m->nfaults < MAX_FAULTS && colon && (size_t)(colon - v) < 32) {
        fault *f = &m->faults[m->nfaults++];
        snprintf(f->name, sizeof f->name, "%.*s", (int)(colon - v), v);
        f->count = atol(colon + 1);
        f->min_emails = 1;
    }
}

/* One option a and its value v into m or c; 0, or -1 for an unknown option
 * or a bad --retry-header. v points into argv and must outlive m and c. */
static int parse_option(const char *a, const char *v, mock *m, cli *c)
{
    if (!strcmp(a, "--port"))
        c->port = atol(v);
    else if (!strcmp(a, "--key"))
        m->key = v;
    else if (!strcmp(a, "--rank-file"))
        c->rank = v;
    else if (!strcmp(a, "--rpm"))
        m->rpm.limit = atof(v);
    else if (!strcmp(a, "--tpm"))
        m->tpm.limit = atof(v);
    else if (!strcmp(a, "--max-input"))
        m->max_input = atol(v);
    else if (!strcmp(a, "--reasoning"))
        m->reasoning_per_email = atol(v);
    else if (!strcmp(a, "--ttft-ms"))
        m->ttft_ms = atof(v);
    else if (!strcmp(a, "--tps"))
        m->tps = atof(v);
    else if (!strcmp(a, "--latency-scale"))
        m->latency_scale = atof(v);
    else if (!strcmp(a, "--timeout-sleep-ms"))
        m->timeout_sleep_ms = atol(v);
    else if (!strcmp(a, "--batch-delay-ms"))
        c->batch_delay_ms = atol(v);
    else if (!strcmp(a, "--batch-queue-tokens"))
        c->batch_queue_tokens = atoll(v);
    else if (!strcmp(a, "--retry-header"))
        return parse_retry_header(v, m);
    else if (!strcmp(a, "--fault"))
        add_cli_fault(m, v);
    else
        return -1;
    return 0;
}

/* The command line (every option takes a value) into m and c; 0, or 2 with
 * the usage printed for a bad one or a port outside 0..65535. */
static int parse_args(int argc, char **argv, mock *m, cli *c)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v || parse_option(a, v, m, c) != 0) {
            usage();
            return 2;
        }
        i++;
    }
    if (c->port < 0 || c->port > 65535) {
        usage();
        return 2;
    }
    return 0;
}

/* The tokenizer from rank into m->tok (NULL rank: none, counts are
 * estimates); 0, or -1 with the reason on stderr. */
static int load_tokenizer(mock *m, const char *rank)
{
    if (!rank) {
        fprintf(stderr, "mock-openai: no --rank-file: token counts are estimates (bytes/3)\n");
        return 0;
    }
    char err[512];
    if (ik_tok_load_file(rank, IK_TOK_O200K_SHA256, &m->tok, err, sizeof err) != 0) {
        fprintf(stderr, "mock-openai: %s\n", err);
        return -1;
    }
    return 0;
}

/* Serves m on 127.0.0.1:port until SIGINT or SIGTERM, then stops HTTP (no
 * request reaches the batch store after it). 0, or -1 with the reason on
 * stderr when it cannot listen. */
static int serve(mock *m, long port)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(0x7f000001);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, (uint16_t)port, NULL, NULL,
        handler, m, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_NOTIFY_COMPLETED, completed, m,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, m, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)120, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "mock-openai: cannot listen on 127.0.0.1:%ld: %s\n", port, strerror(errno));
        return -1;
    }
    printf("listening on 127.0.0.1:%ld\n", port);
    fflush(stdout);
    while (!g_stop)
        usleep(50000);
    MHD_stop_daemon(d);
    return 0;
}

int main(int argc, char **argv)
{
    mock m = {0};
    m.key = "sk-mock";
    m.max_input = 272000;
    m.reasoning_per_email = 32;
    m.latency_scale = 1;
    m.timeout_sleep_ms = 5000;
    m.id_seed = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
    cli c = {.port = -1, .batch_delay_ms = 1000};
    int rc = parse_args(argc, argv, &m, &c);
    if (rc != 0)
        return rc;
    if (load_tokenizer(&m, c.rank) != 0)
        return 1;
    pthread_mutex_init(&m.mu, NULL);
    double t = mock_now_s();
    m.rpm.level = m.rpm.limit;
    m.tpm.level = m.tpm.limit;
    m.rpm.t = m.tpm.t = t;
    m.batches = batch_store_new(&m, c.batch_delay_ms, c.batch_queue_tokens);
    if (!m.batches) {
        fprintf(stderr, "mock-openai: cannot start the batch worker\n");
        rc = 1;
    } else {
        rc = serve(&m, c.port) == 0 ? 0 : 1;
        batch_store_free(m.batches); /* after HTTP: then the worker */
    }
    ik_tok_free(m.tok);
    pthread_mutex_destroy(&m.mu);
    return rc;
}
