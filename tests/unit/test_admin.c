/*
 * test_admin.c: unit tests of the admin HTTP server (engine/admin.c). Each
 * test starts a server on 127.0.0.1 with port 0 and talks to it with a tiny
 * HTTP/1.0 client over a plain socket (127.0.0.1 only).
 */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "admin.h"
#include "control.h"
#include "log.h"
#include "stderr_capture.h"
#include "metrics.h"

/* ---- tiny HTTP client ----------------------------------------------------- */

typedef struct http_resp {
    int status;
    char *raw;     /* whole response, NUL-terminated; owned */
    char *headers; /* points into raw: status line + headers, NUL-terminated */
    char *body;    /* points into raw */
    size_t body_len;
} http_resp;

static void resp_free(http_resp *r)
{
    free(r->raw);
    memset(r, 0, sizeof *r);
}

static int connect_local(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends `request` verbatim and reads until the server closes. 0 or -1. */
static int http_raw(uint16_t port, const char *request, http_resp *r)
{
    memset(r, 0, sizeof *r);
    int fd = connect_local(port);
    if (fd < 0)
        return -1;
    size_t len = strlen(request), off = 0;
    while (off < len) {
        ssize_t w = send(fd, request + off, len - off, MSG_NOSIGNAL);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            close(fd);
            return -1;
        }
        if (n + 1024 > cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                continue;
            }
            buf = nb;
        }
        ssize_t got = recv(fd, buf + n, cap - n - 1, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    buf[n] = '\0';
    r->raw = buf;
    char *sep = strstr(buf, "\r\n\r\n");
    if (!sep || sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1) {
        free(buf);
        r->raw = NULL;
        return -1;
    }
    *sep = '\0';
    r->headers = buf;
    r->body = sep + 4;
    r->body_len = n - (size_t)(r->body - buf);
    return 0;
}

static int http_get(uint16_t port, const char *method, const char *path, http_resp *r)
{
    char req[512];
    snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
             method, path);
    return http_raw(port, req, r);
}

/* Value of header `name` (case-insensitive) copied into out; 0 when found. */
static int header(const http_resp *r, const char *name, char *out, size_t outlen)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\r\n%s:", name);
    const char *p = strcasestr(r->headers, pat);
    if (!p)
        return -1;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    const char *e = strstr(p, "\r\n");
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

/* ---- health callback ------------------------------------------------------ */

/* Written by the test, read on the server thread (and back): atomics. */
typedef struct health_state {
    _Atomic int healthy;
    _Atomic int calls;
    _Atomic int return_null;
} health_state;

static json_object *health_cb(void *arg, int *healthy)
{
    health_state *hs = arg;
    hs->calls++;
    if (hs->return_null)
        return NULL;
    *healthy = hs->healthy;
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "status", json_object_new_string(hs->healthy ? "ok" : "stalled"));
    json_object_object_add(doc, "reason",
                           json_object_new_string(hs->healthy ? "" : "no record in 60s"));
    return doc;
}

static ik_admin *start_limited(ik_metrics *m, health_state *hs, const ik_admin_limits *limits)
{
    ik_err err = {0};
    ik_admin *a = ik_admin_start("127.0.0.1:0", limits, m, hs ? health_cb : NULL, hs, &err);
    CU_ASSERT_PTR_NOT_NULL(a);
    if (!a)
        printf("\nik_admin_start: %s\n", err.msg);
    return a;
}

static ik_admin *start_local(ik_metrics *m, health_state *hs)
{
    return start_limited(m, hs, NULL);
}

/* ---- slow clients --------------------------------------------------------- */

/* The start of a request whose headers never end. */
static const char slow_header[] = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";

/* A connection that has sent the start of a request and no more; -1 on
 * failure. */
static int open_slow(uint16_t port)
{
    int fd = connect_local(port);
    if (fd >= 0 && send(fd, slow_header, sizeof slow_header - 1, MSG_NOSIGNAL) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* True when the server has closed fd, waiting up to wait_ms for it (a bound
 * for a loaded machine, not a measure). */
static bool server_closed(int fd, int wait_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, wait_ms) <= 0)
        return false;
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_port_zero(void)
{
    ik_admin *a = start_local(NULL, NULL);
    ik_admin *b = start_local(NULL, NULL);
    CU_ASSERT_FATAL(a && b);
    CU_ASSERT_NOT_EQUAL(ik_admin_port(a), 0);
    CU_ASSERT_NOT_EQUAL(ik_admin_port(b), 0);
    CU_ASSERT_NOT_EQUAL(ik_admin_port(a), ik_admin_port(b));
    /* the reported port is the one actually serving */
    http_resp r;
    CU_ASSERT_EQUAL_FATAL(http_get(ik_admin_port(a), "GET", "/health", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
    CU_ASSERT_EQUAL(ik_admin_port(NULL), 0);
    ik_admin_stop(a);
    ik_admin_stop(b);
    ik_admin_stop(NULL);

    ik_err err = {0};
    ik_admin *l = ik_admin_start("localhost:0", NULL, NULL, NULL, NULL, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    CU_ASSERT_EQUAL_FATAL(http_get(ik_admin_port(l), "GET", "/health", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
    ik_admin_stop(l);
}

static void test_health_status(void)
{
    health_state hs = {.healthy = 1};
    ik_admin *a = start_local(NULL, &hs);
    CU_ASSERT_FATAL(a != NULL);
    uint16_t port = ik_admin_port(a);
    http_resp r;
    char ct[128];

    CU_ASSERT_EQUAL_FATAL(http_get(port, "GET", "/health", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(header(&r, "Content-Type", ct, sizeof ct), 0);
    CU_ASSERT_STRING_EQUAL(ct, "application/json");
    CU_ASSERT_STRING_EQUAL(r.body, "{\"status\":\"ok\",\"reason\":\"\"}");
    resp_free(&r);

    hs.healthy = 0;
    CU_ASSERT_EQUAL_FATAL(http_get(port, "GET", "/health", &r), 0);
    CU_ASSERT_EQUAL(r.status, 503);
    CU_ASSERT_EQUAL(header(&r, "Content-Type", ct, sizeof ct), 0);
    CU_ASSERT_STRING_EQUAL(ct, "application/json");
    json_object *doc = json_tokener_parse(r.body);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    json_object *v;
    CU_ASSERT_TRUE(json_object_object_get_ex(doc, "reason", &v));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "no record in 60s");
    json_object_put(doc);
    resp_free(&r);

    /* a failing callback is unhealthy, with a JSON error */
    hs.return_null = 1;
    CU_ASSERT_EQUAL_FATAL(http_get(port, "GET", "/health", &r), 0);
    CU_ASSERT_EQUAL(r.status, 503);
    doc = json_tokener_parse(r.body);
    CU_ASSERT_PTR_NOT_NULL(doc);
    CU_ASSERT_TRUE(doc && json_object_object_get_ex(doc, "error", NULL));
    json_object_put(doc);
    resp_free(&r);

    CU_ASSERT_EQUAL(hs.calls, 3);
    ik_admin_stop(a);
}

static void test_metrics_endpoint(void)
{
    ik_metrics *m = ik_metrics_new();
    CU_ASSERT_FATAL(m != NULL);
    const char *l[] = {"pipeline", "p", NULL};
    ik_metric *c = ik_metrics_counter(m, "intake_records_total", "Records.", l);
    ik_metric_add(c, 3);
    ik_admin *a = start_local(m, NULL);
    CU_ASSERT_FATAL(a != NULL);
    uint16_t port = ik_admin_port(a);
    http_resp r;
    char ct[128];

    CU_ASSERT_EQUAL_FATAL(http_get(port, "GET", "/metrics", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(header(&r, "Content-Type", ct, sizeof ct), 0);
    CU_ASSERT_STRING_EQUAL(ct, "text/plain; version=0.0.4; charset=utf-8");
    CU_ASSERT_STRING_EQUAL(r.body, "# HELP intake_records_total Records.\n"
                                   "# TYPE intake_records_total counter\n"
                                   "intake_records_total{pipeline=\"p\"} 3\n");
    resp_free(&r);

    /* live values, and a query string does not change the route */
    ik_metric_add(c, 2);
    CU_ASSERT_EQUAL_FATAL(http_get(port, "GET", "/metrics?x=1", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "intake_records_total{pipeline=\"p\"} 5\n"));
    resp_free(&r);

    /* HEAD: same headers, no body */
    CU_ASSERT_EQUAL_FATAL(http_get(port, "HEAD", "/metrics", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(header(&r, "Content-Type", ct, sizeof ct), 0);
    CU_ASSERT_STRING_EQUAL(ct, "text/plain; version=0.0.4; charset=utf-8");
    CU_ASSERT_EQUAL(r.body_len, 0);
    resp_free(&r);

    ik_admin_stop(a);
    ik_metrics_free(m);
}

static void expect_json_error(const http_resp *r, int status)
{
    char ct[128];
    CU_ASSERT_EQUAL(r->status, status);
    CU_ASSERT_EQUAL(header(r, "Content-Type", ct, sizeof ct), 0);
    CU_ASSERT_STRING_EQUAL(ct, "application/json");
    json_object *doc = json_tokener_parse(r->body);
    CU_ASSERT_PTR_NOT_NULL(doc);
    json_object *v = NULL;
    CU_ASSERT_TRUE(doc && json_object_object_get_ex(doc, "error", &v) &&
                   json_object_is_type(v, json_type_string) &&
                   strlen(json_object_get_string(v)) > 0);
    json_object_put(doc);
}

static void test_not_found_and_method(void)
{
    health_state hs = {.healthy = 1};
    ik_admin *a = start_local(NULL, &hs);
    CU_ASSERT_FATAL(a != NULL);
    uint16_t port = ik_admin_port(a);
    http_resp r;
    char allow[64];

    const char *paths[] = {"/", "/nope", "/health/x", "/metricsx", "/HEALTH"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        CU_ASSERT_EQUAL_FATAL(http_get(port, "GET", paths[i], &r), 0);
        expect_json_error(&r, 404);
        resp_free(&r);
    }

    CU_ASSERT_EQUAL_FATAL(http_get(port, "DELETE", "/metrics", &r), 0);
    expect_json_error(&r, 405);
    CU_ASSERT_EQUAL(header(&r, "Allow", allow, sizeof allow), 0);
    CU_ASSERT_STRING_EQUAL(allow, "GET, HEAD");
    resp_free(&r);

    /* a POST with a body is refused without calling the health callback */
    CU_ASSERT_EQUAL_FATAL(http_raw(port,
                                   "POST /health HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                                   "Content-Type: application/json\r\nContent-Length: 7\r\n\r\n"
                                   "{\"a\":1}",
                                   &r),
                          0);
    expect_json_error(&r, 405);
    resp_free(&r);
    CU_ASSERT_EQUAL(hs.calls, 0);

    /* the server keeps serving after errors */
    CU_ASSERT_EQUAL_FATAL(http_get(port, "GET", "/health", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
    CU_ASSERT_EQUAL(hs.calls, 1);
    ik_admin_stop(a);
}

static void test_bad_listen(void)
{
    const char *bad[] = {"nohost",        "1.2.3.4:99999", "x:y",         "", "127.0.0.1:", ":8080",
                         "127.0.0.1:80x", "256.1.1.1:80",  "127.0.0.1:-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ik_err err = {0};
        ik_admin *a = ik_admin_start(bad[i], NULL, NULL, NULL, NULL, &err);
        CU_ASSERT_PTR_NULL(a);
        ik_admin_stop(a);
        CU_ASSERT_EQUAL(err.code, IK_E_CONFIG);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "admin.listen"));
        if (bad[i][0])
            CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, bad[i]));
    }
    ik_err err = {0};
    CU_ASSERT_PTR_NULL(ik_admin_start(NULL, NULL, NULL, NULL, NULL, &err));
    CU_ASSERT_EQUAL(err.code, IK_E_CONFIG);
    /* specific reasons */
    ik_admin_start("1.2.3.4:99999", NULL, NULL, NULL, NULL, &err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "out of range"));
    ik_admin_start("x:y", NULL, NULL, NULL, NULL, &err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not a number"));
    ik_admin_start("x:80", NULL, NULL, NULL, NULL, &err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not an IPv4 address"));
    ik_admin_start("nohost", NULL, NULL, NULL, NULL, &err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "HOST:PORT"));
    /* err may be NULL */
    CU_ASSERT_PTR_NULL(ik_admin_start("nohost", NULL, NULL, NULL, NULL, NULL));
}

static void test_bind_failure(void)
{
    ik_admin *a = start_local(NULL, NULL);
    CU_ASSERT_FATAL(a != NULL);
    char listen[64], where[96];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", (unsigned)ik_admin_port(a));
    ik_err err = {0};
    ik_admin *b = ik_admin_start(listen, NULL, NULL, NULL, NULL, &err);
    CU_ASSERT_PTR_NULL(b);
    ik_admin_stop(b);
    CU_ASSERT_EQUAL(err.code, IK_E_IO);
    snprintf(where, sizeof where, "admin.listen %s", listen);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, where));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, strerror(EADDRINUSE)));
    /* the first server is unaffected */
    http_resp r;
    CU_ASSERT_EQUAL_FATAL(http_get(ik_admin_port(a), "GET", "/health", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
    ik_admin_stop(a);
}

/* The server binds only the address given: a server on 127.0.0.2 does not
 * answer on 127.0.0.1 at the same port. */
static void test_binds_given_address_only(void)
{
    ik_err err = {0};
    ik_admin *a = ik_admin_start("127.0.0.2:0", NULL, NULL, NULL, NULL, &err);
    if (!a) {
        printf("(127.0.0.2 not bindable here: %s) ", err.msg);
        return;
    }
    int fd = connect_local(ik_admin_port(a));
    CU_ASSERT_EQUAL(fd, -1);
    if (fd >= 0)
        close(fd);
    ik_admin_stop(a);
}

/* More slow clients than the 64 slots the server once had: probes are still
 * answered while they hold their connections. */
static void test_probes_answer_beside_slow_clients(void)
{
    enum { N = 100 };
    ik_metrics *m = ik_metrics_new();
    ik_admin *a = start_local(m, NULL);
    CU_ASSERT_FATAL(a != NULL);
    uint16_t port = ik_admin_port(a);
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = open_slow(port);
        CU_ASSERT(fds[i] >= 0);
    }
    http_resp r;
    CU_ASSERT_EQUAL(http_get(port, "GET", "/health", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
    CU_ASSERT_EQUAL(http_get(port, "GET", "/metrics", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    ik_admin_stop(a);
    ik_metrics_free(m);
}

/* A client that trickles a header byte every 50 ms is never idle, yet it is
 * closed once request_timeout has passed without a complete request. */
static void test_trickling_client_closed_at_deadline(void)
{
    ik_admin_limits lim = {.request_timeout_ms = 300};
    ik_admin *a = start_limited(NULL, NULL, &lim);
    CU_ASSERT_FATAL(a != NULL);
    int fd = open_slow(ik_admin_port(a));
    CU_ASSERT_FATAL(fd >= 0);
    bool closed = false;
    /* up to 10 s (a bound for a loaded machine); the deadline is 0.3 s */
    for (int i = 0; i < 200 && !closed; i++) {
        if (send(fd, "a", 1, MSG_NOSIGNAL) != 1)
            closed = true;
        else
            closed = server_closed(fd, 50);
    }
    CU_ASSERT_TRUE(closed);
    close(fd);
    /* the server goes on answering */
    http_resp r;
    CU_ASSERT_EQUAL(http_get(ik_admin_port(a), "GET", "/health", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
    ik_admin_stop(a);
}

/* With every connection taken, a new one (the probe) closes the one that has
 * waited longest for a request, and is answered. */
static void test_full_server_makes_room(void)
{
    enum { N = 6 };
    ik_admin_limits lim = {.max_connections = 4};
    ik_admin *a = start_limited(NULL, NULL, &lim);
    CU_ASSERT_FATAL(a != NULL);
    uint16_t port = ik_admin_port(a);
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = open_slow(port);
        CU_ASSERT_FATAL(fds[i] >= 0);
    }
    http_resp r;
    CU_ASSERT_EQUAL(http_get(port, "GET", "/health", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
    /* 7 connections for 4: the 3 oldest were closed, the newest kept */
    for (int i = 0; i < 3; i++)
        CU_ASSERT_TRUE(server_closed(fds[i], 5000));
    for (int i = 3; i < N; i++)
        CU_ASSERT_FALSE(server_closed(fds[i], 0));
    for (int i = 0; i < N; i++)
        close(fds[i]);
    ik_admin_stop(a);
}

/* Asks for /health, expecting 200: a server that answered has also handled
 * whatever its clients did before. */
static void expect_health(uint16_t port)
{
    http_resp r;
    CU_ASSERT_EQUAL(http_get(port, "GET", "/health", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
}

/* 60 slow clients that hang up in the middle of their request make the HTTP
 * server complain 60 times (once a line each, before): the log shows the
 * first complaint, and at stop one summary of the rest. */
static void test_warnings_are_rate_limited(void)
{
    enum { N = 60 };
    ik_log_configure(IK_LOG_TEXT, IK_LOG_WARN);
    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    ik_admin *a = start_local(NULL, NULL);
    CU_ASSERT_FATAL(a != NULL);
    uint16_t port = ik_admin_port(a);
    int fds[N];
    for (int i = 0; i < N; i++)
        CU_ASSERT((fds[i] = open_slow(port)) >= 0);
    expect_health(port);
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    expect_health(port);
    ik_admin_stop(a);
    char *log = stderr_capture_end();
    ik_log_configure(IK_LOG_TEXT, IK_LOG_ERROR);
    int lines = 0;
    for (const char *p = log; (p = strchr(p, '\n')); p++)
        lines++;
    CU_ASSERT_EQUAL(lines, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "more messages from the HTTP server in the last"));
    if (lines != 2)
        printf("\n%d lines:\n%.1000s\n", lines, log);
    free(log);
}

/* ---- control routes -------------------------------------------------------- */

/* Echoes its argument back as {"got": args}. */
static int echo_cmd(void *arg, json_object *args, json_object **reply, char *reason, size_t len)
{
    (void)arg;
    (void)reason;
    (void)len;
    *reply = json_object_new_object();
    json_object_object_add(*reply, "got", json_object_get(args));
    return 0;
}

/* A registry with p/src/echo, served on 127.0.0.1:0 with `token`. */
typedef struct control_fixture {
    ik_commands cmds;
    ik_control *c;
    ik_admin *a;
} control_fixture;

static int control_start(control_fixture *x, const char *token, uint64_t timeout_ms)
{
    memset(x, 0, sizeof *x);
    char why[64];
    ik_err err = {0};
    x->c = ik_control_new();
    if (!x->c || ik_commands_add(&x->cmds, "echo", "Echo.", echo_cmd, NULL, why, sizeof why) ||
        ik_control_add(x->c, "p", "src", &x->cmds))
        return -1;
    ik_admin_limits lim = {.request_timeout_ms = timeout_ms};
    x->a = ik_admin_start_control("127.0.0.1:0", &lim, NULL, NULL, NULL, x->c, token, &err);
    if (!x->a)
        printf("\nik_admin_start_control: %s\n", err.msg);
    return x->a ? 0 : -1;
}

static void control_stop(control_fixture *x)
{
    ik_admin_stop(x->a);
    ik_control_free(x->c);
    ik_commands_clear(&x->cmds);
}

/* POSTs body (NULL: none) to path with extra headers; 0 or -1. */
static int http_post(uint16_t port, const char *path, const char *headers, const char *body,
                     http_resp *r)
{
    char *req = NULL;
    size_t blen = body ? strlen(body) : 0;
    if (asprintf(&req, "POST %s HTTP/1.0\r\nHost: 127.0.0.1\r\n%sContent-Length: %zu\r\n\r\n%s",
                 path, headers ? headers : "", blen, body ? body : "") < 0)
        return -1;
    int rc = http_raw(port, req, r);
    free(req);
    return rc;
}

static void test_control_routes(void)
{
    control_fixture x;
    CU_ASSERT_FATAL(control_start(&x, NULL, 0) == 0);
    uint16_t port = ik_admin_port(x.a);
    http_resp r;
    CU_ASSERT_EQUAL(http_get(port, "GET", "/api/v1/control", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"command\":\"echo\""));
    resp_free(&r);
    CU_ASSERT_EQUAL(http_post(port, "/api/v1/control/p/src/echo", NULL, "{\"n\": 1}", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.body, "{\"got\":{\"n\":1}}");
    resp_free(&r);
    CU_ASSERT_EQUAL(http_post(port, "/api/v1/control/p/src/echo", NULL, NULL, &r), 0);
    CU_ASSERT_STRING_EQUAL(r.body, "{\"got\":null}");
    resp_free(&r);
    CU_ASSERT_EQUAL(http_post(port, "/api/v1/control/p/src/echo", NULL, "{\"n\": }", &r), 0);
    CU_ASSERT_EQUAL(r.status, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "invalid JSON at byte 6"));
    resp_free(&r);
    CU_ASSERT_EQUAL(http_post(port, "/api/v1/control/p/src/nope", NULL, NULL, &r), 0);
    CU_ASSERT_EQUAL(r.status, 404);
    resp_free(&r);
    CU_ASSERT_EQUAL(http_post(port, "/api/v1/control/p/src", NULL, NULL, &r), 0);
    CU_ASSERT_EQUAL(r.status, 404);
    resp_free(&r);
    char allow[64];
    CU_ASSERT_EQUAL(http_get(port, "GET", "/api/v1/control/p/src/echo", &r), 0);
    CU_ASSERT_EQUAL(r.status, 405);
    CU_ASSERT_EQUAL(header(&r, "Allow", allow, sizeof allow), 0);
    CU_ASSERT_STRING_EQUAL(allow, "POST");
    resp_free(&r);
    control_stop(&x);
}

static void test_control_token(void)
{
    control_fixture x;
    CU_ASSERT_FATAL(control_start(&x, "s3cret-token", 0) == 0);
    uint16_t port = ik_admin_port(x.a);
    http_resp r;
    char value[64];
    CU_ASSERT_EQUAL(http_post(port, "/api/v1/control/p/src/echo", NULL, "{}", &r), 0);
    CU_ASSERT_EQUAL(r.status, 401);
    CU_ASSERT_EQUAL(header(&r, "WWW-Authenticate", value, sizeof value), 0);
    CU_ASSERT_STRING_EQUAL(value, "Bearer");
    resp_free(&r);
    CU_ASSERT_EQUAL(http_post(port, "/api/v1/control/p/src/echo",
                              "Authorization: Bearer s3cret-tokem\r\n", "{}", &r),
                    0);
    CU_ASSERT_EQUAL(r.status, 403);
    CU_ASSERT_PTR_NULL(strstr(r.raw, "s3cret"));
    resp_free(&r);
    CU_ASSERT_EQUAL(http_get(port, "GET", "/api/v1/control", &r), 0);
    CU_ASSERT_EQUAL(r.status, 401);
    resp_free(&r);
    CU_ASSERT_EQUAL(http_post(port, "/api/v1/control/p/src/echo",
                              "Authorization: Bearer s3cret-token\r\n", "{}", &r),
                    0);
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
    CU_ASSERT_EQUAL(http_get(port, "GET", "/health", &r), 0); /* never asks for it */
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
    control_stop(&x);
}

/* A body past the limit: refused from its Content-Length at once, and a
 * chunked one once it is read; the server goes on answering. */
static void test_control_body_too_large(void)
{
    control_fixture x;
    CU_ASSERT_FATAL(control_start(&x, NULL, 0) == 0);
    uint16_t port = ik_admin_port(x.a);
    http_resp r;
    CU_ASSERT_EQUAL(http_raw(port,
                             "POST /api/v1/control/p/src/echo HTTP/1.0\r\nHost: x\r\n"
                             "Content-Length: 65537\r\n\r\n",
                             &r),
                    0);
    CU_ASSERT_EQUAL(r.status, 413);
    resp_free(&r);
    size_t n = 70000;
    char *req = malloc(n + 256);
    CU_ASSERT_FATAL(req != NULL);
    int off = sprintf(req,
                      "POST /api/v1/control/p/src/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n%zx\r\n",
                      n);
    memset(req + off, ' ', n);
    strcpy(req + off + n, "\r\n0\r\n\r\n");
    CU_ASSERT_EQUAL(http_raw(port, req, &r), 0);
    CU_ASSERT_EQUAL(r.status, 413);
    resp_free(&r);
    free(req);
    CU_ASSERT_EQUAL(http_post(port, "/api/v1/control/p/src/echo", NULL, "{}", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
    control_stop(&x);
}

/* A body trickled a byte at a time is cut off at the request deadline like
 * any slow request. */
static void test_control_trickled_body_cut_off(void)
{
    control_fixture x;
    CU_ASSERT_FATAL(control_start(&x, NULL, 300) == 0);
    int fd = connect_local(ik_admin_port(x.a));
    CU_ASSERT_FATAL(fd >= 0);
    static const char head[] = "POST /api/v1/control/p/src/echo HTTP/1.1\r\nHost: x\r\n"
                               "Content-Length: 60000\r\n\r\n{\"a\":\"";
    CU_ASSERT_EQUAL(send(fd, head, sizeof head - 1, MSG_NOSIGNAL), (ssize_t)(sizeof head - 1));
    bool closed = false;
    /* up to 10 s (a bound for a loaded machine); the deadline is 0.3 s */
    for (int i = 0; i < 200 && !closed; i++) {
        if (send(fd, "a", 1, MSG_NOSIGNAL) != 1)
            closed = true;
        else
            closed = server_closed(fd, 50);
    }
    CU_ASSERT_TRUE(closed);
    close(fd);
    control_stop(&x);
}

/* Control beyond loopback without a token is refused before binding. */
static void test_control_exposed_without_token(void)
{
    ik_control *c = ik_control_new();
    ik_err err = {0};
    ik_admin *a = ik_admin_start_control("0.0.0.0:0", NULL, NULL, NULL, NULL, c, NULL, &err);
    CU_ASSERT_PTR_NULL(a);
    CU_ASSERT_EQUAL(err.code, IK_E_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "INTAKE_ADMIN_TOKEN"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "0.0.0.0:0"));
    ik_admin_stop(a);
    ik_control_free(c);
}

int main(void)
{
    /* MHD diagnostics after start go to the engine log: keep them quiet */
    ik_log_configure(IK_LOG_TEXT, IK_LOG_ERROR);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("admin", NULL, NULL);
    if (!s) {
        CU_cleanup_registry();
        return 1;
    }
    CU_add_test(s, "port 0 picks a free port", test_port_zero);
    CU_add_test(s, "/health 200 and 503 with body", test_health_status);
    CU_add_test(s, "/metrics content type and body", test_metrics_endpoint);
    CU_add_test(s, "404 and 405 with JSON errors", test_not_found_and_method);
    CU_add_test(s, "bad listen strings", test_bad_listen);
    CU_add_test(s, "bind failure", test_bind_failure);
    CU_add_test(s, "binds the given address only", test_binds_given_address_only);
    CU_add_test(s, "probes answer beside slow clients", test_probes_answer_beside_slow_clients);
    CU_add_test(s, "trickling client closed at the deadline",
                test_trickling_client_closed_at_deadline);
    CU_add_test(s, "a full server makes room", test_full_server_makes_room);
    CU_add_test(s, "warnings are rate-limited", test_warnings_are_rate_limited);
    CU_add_test(s, "control routes", test_control_routes);
    CU_add_test(s, "control token", test_control_token);
    CU_add_test(s, "control body too large", test_control_body_too_large);
    CU_add_test(s, "control trickled body cut off", test_control_trickled_body_cut_off);
    CU_add_test(s, "control beyond loopback needs a token", test_control_exposed_without_token);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failures = CU_get_number_of_failures();
    CU_cleanup_registry();
    ik_log_shutdown();
    return failures > 0 ? 1 : 0;
}
