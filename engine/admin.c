/*
 * admin.c: the admin HTTP server (see admin.h), on libmicrohttpd.
 *
 * One MHD daemon in "external" epoll mode, bound to exactly the configured
 * address through MHD_OPTION_SOCK_ADDR, driven by one thread of ours: it
 * polls MHD's epoll descriptor and a wake-up eventfd, runs MHD, then lets the
 * connection guard (admin_guard.h) shut down connections past their
 * deadline. MHD alone bounds only idle time, which a client resets with every
 * byte it trickles; driving the loop ourselves gives the guard one thread
 * with MHD, so it can shut a socket down with no race against MHD closing it.
 * MHD's accept policy, connection and completion callbacks feed the guard.
 *
 * Every request but a control command is answered on the first call of the
 * access handler, so a body sent with one is never read. A control command
 * (POST /api/v1/control/P/I/C) is checked on that first call too (route,
 * method, token, Content-Length), then its body is read, at most
 * IK_CONTROL_BODY_MAX bytes (413 past it: announced, at once; else once the
 * rest is read and dropped), and answered when complete. Reading a body
 * does not extend the guard's deadline: a client that trickles one is cut
 * off like any slow request.
 *
 * Routes: GET|HEAD /health and /metrics; GET|HEAD /api/v1/control (the
 * commands) and POST /api/v1/control/P/I/C (one command); unknown path 404,
 * known path with another method 405 (with Allow), both with a JSON
 * {"error":"..."} body. With a token, control routes answer 401 without an
 * Authorization header and 403 with a wrong one; /health and /metrics never
 * ask for it.
 * MHD's own diagnostics go to the engine log at warn level, rate-limited by
 * the guard, except while the daemon starts, when the last one is kept to
 * explain a failure.
 *
 * Threads: MHD and every callback run on the thread that starts the daemon,
 * then on the serving thread, then (after it is joined) on the one that stops
 * it; never two at once, so nothing here takes a lock.
 */
#include "admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "admin_guard.h"
#include "common/buf.h"
#include "control.h"
#include "control_http.h"
#include "log.h"
#include "timer.h"

#define CT_JSON    "application/json"
#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"

struct ik_admin {
    struct MHD_Daemon *daemon;
    ik_admin_guard *guard;
    ik_metrics *metrics; /* borrowed */
    ik_health_fn health;
    void *health_arg;
    ik_control *control; /* borrowed; NULL: no control routes */
    char *token;         /* owned; NULL: control needs no token (loopback only) */
    uint16_t port;
    int epoll_fd; /* MHD's, polled by the serving thread */
    int wake_fd;  /* eventfd written by ik_admin_stop */
    pthread_t thread;
    /* MHD diagnostics while starting (explains a failure), then logged. */
    bool started;
    char diag[512];
};

/* A control command's request while its body arrives (MHD's req_cls). */
typedef struct control_req {
    ik_control_route route;
    ik_buf body;
    bool too_big;
} control_req;

/* MHD's logger: kept during start, sent to the engine log afterwards. */
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    ik_admin *a = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    if (a->started)
        ik_admin_guard_diag(a->guard, msg, ik_now_ms());
    else
        snprintf(a->diag, sizeof a->diag, "%s", msg);
}

/* ---- the guard's view of MHD's connections -------------------------------- */

static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    ik_admin *a = cls;
    (void)addrlen;
    return ik_admin_guard_admit(a->guard, addr, ik_now_ms()) ? MHD_YES : MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    ik_admin *a = cls;
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        ik_admin_guard_closed(a->guard, *socket_context);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *peer =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!fd)
        return; /* cannot happen: MHD knows its socket */
    *socket_context = ik_admin_guard_opened(a->guard, fd->connect_fd,
                                            peer ? peer->client_addr : NULL, ik_now_ms());
    /* untracked, it would have no deadline: have MHD close it now */
    if (!*socket_context)
        shutdown(fd->connect_fd, SHUT_RDWR);
}

/* The guard's slot of a connection (NULL if untracked). */
static ik_admin_conn *slot_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *i =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i ? i->socket_context : NULL;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)toe;
    ik_admin_guard_answered(slot_of(conn), ik_now_ms());
    control_req *r = *req_cls; /* a control command's body, if one was read */
    if (r) {
        ik_buf_free(&r->body);
        free(r);
        *req_cls = NULL;
    }
}

/* ---- routes ---------------------------------------------------------------- */

/* Queues `body` (copied) with a status and content type. */
static enum MHD_Result respond_allow(struct MHD_Connection *conn, unsigned status,
                                     const char *ctype, const char *body, size_t len,
                                     const char *allow)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES ||
        (allow && MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow) != MHD_YES) ||
        (status == MHD_HTTP_UNAUTHORIZED &&
         MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer") != MHD_YES)) {
        MHD_destroy_response(r);
        return MHD_NO;
    }
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Queues `body` (copied); `allow` adds "Allow: GET, HEAD" (a 405). */
static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *ctype,
                               const char *body, size_t len, bool allow)
{
    return respond_allow(conn, status, ctype, body, len, allow ? "GET, HEAD" : NULL);
}

static enum MHD_Result respond_error(struct MHD_Connection *conn, unsigned status, const char *text,
                                     bool allow)
{
    char body[256];
    /* text is a fixed string of ours without quotes or backslashes */
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}", text);
    return respond(conn, status, CT_JSON, body, (size_t)n, allow);
}

static enum MHD_Result serve_health(ik_admin *a, struct MHD_Connection *conn)
{
    if (!a->health) {
        static const char ok[] = "{\"status\":\"ok\"}";
        return respond(conn, MHD_HTTP_OK, CT_JSON, ok, sizeof ok - 1, false);
    }
    int healthy = 0;
    json_object *doc = a->health(a->health_arg, &healthy);
    if (!doc)
        return respond_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "health check failed", false);
    size_t len = 0;
    const char *text = json_object_to_json_string_length(doc, JSON_C_TO_STRING_PLAIN, &len);
    enum MHD_Result ret;
    if (!text)
        ret = respond_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "health check failed", false);
    else
        ret = respond(conn, healthy ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, CT_JSON, text,
                      len, false);
    json_object_put(doc);
    return ret;
}

static enum MHD_Result serve_metrics(ik_admin *a, struct MHD_Connection *conn)
{
    char *text = NULL;
    size_t len = 0;
    if (ik_metrics_render(a->metrics, &text, &len) != 0)
        return respond_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", false);
    /* MHD takes the buffer and frees it with free() when the response goes. */
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, text, free);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    enum MHD_Result ret = MHD_NO;
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CT_METRICS) == MHD_YES)
        ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- control commands -------------------------------------------------- */

/* Queues doc (consumed; NULL: out of memory) as JSON with status. */
static enum MHD_Result respond_json(struct MHD_Connection *conn, unsigned status, json_object *doc,
                                    const char *allow)
{
    if (!doc)
        return respond_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", false);
    size_t len = 0;
    const char *text = json_object_to_json_string_length(
        doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    enum MHD_Result ret =
        text ? respond_allow(conn, status, CT_JSON, text, len, allow)
             : respond_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", false);
    json_object_put(doc);
    return ret;
}

/* {"error": text} with status; text is escaped (it may quote the request). */
static enum MHD_Result respond_error_text(struct MHD_Connection *conn, unsigned status,
                                          const char *text, const char *allow)
{
    json_object *o = json_object_new_object();
    if (o && json_object_object_add(o, "error", json_object_new_string(text)) != 0) {
        json_object_put(o);
        o = NULL;
    }
    return respond_json(conn, status, o, allow);
}

/* 0 when the request may use the control routes; 401 when a token is
 * required and none was sent, 403 when the one sent is wrong. */
static unsigned control_auth(const ik_admin *a, struct MHD_Connection *conn)
{
    if (!a->token)
        return 0;
    const char *h =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h)
        return MHD_HTTP_UNAUTHORIZED;
    return ik_control_bearer_ok(h, a->token) ? 0 : MHD_HTTP_FORBIDDEN;
}

/* 1 when the request announces a body larger than the limit. */
static bool announced_too_big(struct MHD_Connection *conn)
{
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return cl && strtoull(cl, NULL, 10) > IK_CONTROL_BODY_MAX;
}

/* Answers a control request from its head alone: no registry, wrong token,
 * bad route, wrong method, the list, an announced oversized body. */
static enum MHD_Result control_answer_head(ik_admin *a, struct MHD_Connection *conn,
                                           ik_control_route_kind kind, bool get)
{
    unsigned denied = a->control ? control_auth(a, conn) : 0;
    if (!a->control)
        return respond_error(conn, MHD_HTTP_NOT_FOUND, "not found", false);
    if (denied)
        return respond_error(conn, denied,
                             denied == MHD_HTTP_UNAUTHORIZED
                                 ? "control needs the admin token: Authorization: Bearer <token>"
                                 : "wrong admin token",
                             false);
    if (kind == IK_ROUTE_BAD)
        return respond_error(conn, MHD_HTTP_NOT_FOUND,
                             "not found: expected /api/v1/control/PIPELINE/INSTANCE/COMMAND",
                             false);
    if (kind == IK_ROUTE_LIST)
        return get ? respond_json(conn, MHD_HTTP_OK, ik_control_list(a->control), NULL)
                   : respond_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed", true);
    if (announced_too_big(conn))
        return respond_error(conn, MHD_HTTP_CONTENT_TOO_LARGE,
                             "request body over the limit of 65536 bytes", false);
    return respond_error_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: POST",
                              "POST");
}

/* The first call for a control route: a command that passes every check of
 * its head gets a control_req in *req_cls and its body is read; anything
 * else is answered now. */
static enum MHD_Result control_begin(ik_admin *a, struct MHD_Connection *conn,
                                     ik_control_route_kind kind, const ik_control_route *route,
                                     const char *method, void **req_cls)
{
    bool get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
    bool post = !strcmp(method, MHD_HTTP_METHOD_POST);
    if (kind == IK_ROUTE_COMMAND && post && a->control && control_auth(a, conn) == 0 &&
        !announced_too_big(conn)) {
        control_req *r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->route = *route;
        *req_cls = r;
        return MHD_YES;
    }
    ik_admin_guard_answering(slot_of(conn));
    return control_answer_head(a, conn, kind, get);
}

/* One piece of a command's body: kept up to the limit. Past it the rest is
 * read and dropped, and the answer is 413 once it is complete (answering
 * in the middle of an upload loses the answer to a connection reset); the
 * guard's deadline still bounds how long that may take. */
static enum MHD_Result control_body(control_req *r, const char *data, size_t *size)
{
    if (!r->too_big && r->body.len + *size > IK_CONTROL_BODY_MAX) {
        r->too_big = true;
        ik_buf_free(&r->body);
    }
    if (!r->too_big)
        ik_buf_add(&r->body, data, *size);
    *size = 0;
    return MHD_YES;
}

/* The body is complete: parse it and run the command. */
static enum MHD_Result control_finish(ik_admin *a, control_req *r, struct MHD_Connection *conn)
{
    ik_admin_guard_answering(slot_of(conn));
    if (r->too_big)
        return respond_error(conn, MHD_HTTP_CONTENT_TOO_LARGE,
                             "request body over the limit of 65536 bytes", false);
    if (r->body.oom)
        return respond_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", false);
    json_object *args = NULL;
    char why[256];
    if (ik_control_body_parse(r->body.p, r->body.len, &args, why, sizeof why) != 0)
        return respond_error_text(conn, MHD_HTTP_BAD_REQUEST, why, NULL);
    json_object *reply = NULL;
    int status = ik_control_call(a->control, r->route.seg[0], r->route.seg[1], r->route.seg[2],
                                 args, &reply);
    json_object_put(args);
    return respond_json(conn, (unsigned)status, reply, NULL);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
    ik_admin *a = cls;
    (void)version;
    control_req *req = *req_cls;
    if (req)
        return *upload_data_size ? control_body(req, upload_data, upload_data_size)
                                 : control_finish(a, req, conn);
    ik_control_route route;
    ik_control_route_kind kind = ik_control_route_parse(url, &route);
    if (kind != IK_ROUTE_OTHER)
        return control_begin(a, conn, kind, &route, method, req_cls);
    ik_admin_guard_answering(slot_of(conn));
    bool is_health = strcmp(url, "/health") == 0;
    bool is_metrics = strcmp(url, "/metrics") == 0;
    if (!is_health && !is_metrics)
        return respond_error(conn, MHD_HTTP_NOT_FOUND, "not found", false);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return respond_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed", true);
    return is_health ? serve_health(a, conn) : serve_metrics(a, conn);
}

/* Parses "HOST:PORT" into sa. HOST is an IPv4 literal or "localhost". */
static int parse_listen(const char *listen, struct sockaddr_in *sa, ik_err *err)
{
    if (!listen || !*listen)
        return ik_err_set(err, IK_E_CONFIG,
                          "admin.listen is empty: expected HOST:PORT, e.g. 127.0.0.1:2020");
    const char *colon = strrchr(listen, ':');
    if (!colon)
        return ik_err_set(err, IK_E_CONFIG,
                          "admin.listen \"%s\": expected HOST:PORT, e.g. 127.0.0.1:2020", listen);
    size_t hostlen = (size_t)(colon - listen);
    char host[64];
    if (hostlen == 0 || hostlen >= sizeof host)
        return ik_err_set(err, IK_E_CONFIG,
                          "admin.listen \"%s\": missing or overlong host: expected HOST:PORT, "
                          "e.g. 127.0.0.1:2020",
                          listen);
    memcpy(host, listen, hostlen);
    host[hostlen] = '\0';

    const char *p = colon + 1;
    if (!*p)
        return ik_err_set(err, IK_E_CONFIG,
                          "admin.listen \"%s\": missing port: expected HOST:PORT, e.g. "
                          "127.0.0.1:2020",
                          listen);
    unsigned long port = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return ik_err_set(err, IK_E_CONFIG,
                              "admin.listen \"%s\": port \"%s\" is not a number (0-65535; 0 "
                              "picks a free port)",
                              listen, colon + 1);
        port = port * 10 + (unsigned long)(*p - '0');
        if (port > 65535)
            return ik_err_set(err, IK_E_CONFIG,
                              "admin.listen \"%s\": port %s is out of range (0-65535)", listen,
                              colon + 1);
    }

    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0) {
        sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
        return ik_err_set(err, IK_E_CONFIG,
                          "admin.listen \"%s\": host \"%s\" is not an IPv4 address or "
                          "\"localhost\"",
                          listen, host);
    }
    return 0;
}

/* ---- the serving thread ---------------------------------------------------- */

/* How long the loop may sleep: until MHD's next timeout or the guard's next
 * deadline or summary, whichever is first; -1 for no limit. */
static int loop_wait_ms(ik_admin *a, uint64_t now, uint64_t guard_due)
{
    uint64_t wait = guard_due == UINT64_MAX ? UINT64_MAX : guard_due - now;
    MHD_UNSIGNED_LONG_LONG mhd = 0;
    if (MHD_get_timeout(a->daemon, &mhd) == MHD_YES && mhd < wait)
        wait = mhd;
    return wait > INT_MAX ? -1 : (int)wait;
}

/* Runs MHD and the guard until ik_admin_stop writes the eventfd. */
static void *serve(void *arg)
{
    ik_admin *a = arg;
    struct pollfd fds[2] = {{.fd = a->epoll_fd, .events = POLLIN},
                            {.fd = a->wake_fd, .events = POLLIN}};
    for (;;) {
        uint64_t now = ik_now_ms();
        uint64_t due = ik_admin_guard_sweep(a->guard, now);
        if (poll(fds, 2, loop_wait_ms(a, now, due)) < 0 && errno != EINTR) {
            ik_logf(IK_LOG_ERROR, NULL, "admin", "http server stopped: poll: %s", strerror(errno));
            return NULL;
        }
        if (fds[1].revents)
            return NULL;
        MHD_run(a->daemon);
    }
}

/* ---- start and stop -------------------------------------------------------- */

/* Starts the MHD daemon on sa in external epoll mode; 0 or err filled. */
static int start_daemon(ik_admin *a, const char *listen, const struct sockaddr_in *sa, ik_err *err)
{
    errno = 0;
    a->daemon = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, on_accept, a, handle, a, MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)sa, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, a,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, a, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        a, MHD_OPTION_CONNECTION_LIMIT, ik_admin_guard_capacity(a->guard), MHD_OPTION_END);
    int saved = errno;
    const union MHD_DaemonInfo *ep =
        a->daemon ? MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (ep) {
        a->epoll_fd = ep->epoll_fd;
        return 0;
    }
    char addr[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &sa->sin_addr, addr, sizeof addr);
    return ik_err_set(err, IK_E_IO, "admin.listen %s: cannot listen on %s:%u: %s", listen, addr,
                      (unsigned)ntohs(sa->sin_port),
                      saved != 0   ? strerror(saved)
                      : a->diag[0] ? a->diag
                                   : "the HTTP server failed to start");
}

/* Frees what ik_admin_start set up, whichever step it reached. */
static void admin_free(ik_admin *a)
{
    if (a->daemon)
        MHD_stop_daemon(a->daemon);
    ik_admin_guard_free(a->guard, ik_now_ms());
    if (a->wake_fd >= 0)
        close(a->wake_fd);
    if (a->token) {
        explicit_bzero(a->token, strlen(a->token));
        free(a->token);
    }
    free(a);
}

int ik_admin_check_exposure(const char *listen, const char *token, ik_err *err)
{
    if (ik_admin_listen_is_loopback(listen) || (token && *token))
        return 0;
    return ik_err_set(err, IK_E_CONFIG,
                      "admin.listen %s is reachable beyond loopback, and its control commands "
                      "would be open to anyone there: set %s (clients send it as "
                      "\"Authorization: Bearer <token>\"), or listen on 127.0.0.1",
                      listen ? listen : "(none)", IK_ADMIN_TOKEN_ENV);
}

ik_admin *ik_admin_start(const char *listen, const ik_admin_limits *limits, ik_metrics *metrics,
                         ik_health_fn health, void *arg, ik_err *err)
{
    return ik_admin_start_control(listen, limits, metrics, health, arg, NULL, NULL, err);
}

ik_admin *ik_admin_start_control(const char *listen, const ik_admin_limits *limits,
                                 ik_metrics *metrics, ik_health_fn health, void *arg,
                                 ik_control *control, const char *token, ik_err *err)
{
    struct sockaddr_in sa;
    if (parse_listen(listen, &sa, err) != 0)
        return NULL;
    if (control && ik_admin_check_exposure(listen, token, err) != 0)
        return NULL;
    ik_admin *a = calloc(1, sizeof *a);
    if (!a) {
        ik_err_set(err, IK_E_NOMEM, "admin.listen %s: out of memory", listen);
        return NULL;
    }
    a->metrics = metrics;
    a->health = health;
    a->health_arg = arg;
    a->control = control;
    a->wake_fd = -1;
    if (token && *token && !(a->token = strdup(token))) {
        ik_err_set(err, IK_E_NOMEM, "admin.listen %s: out of memory", listen);
        admin_free(a);
        return NULL;
    }
    a->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (a->wake_fd < 0) {
        ik_err_set(err, IK_E_IO, "admin.listen %s: eventfd: %s", listen, strerror(errno));
        admin_free(a);
        return NULL;
    }
    if (!(a->guard = ik_admin_guard_new(limits))) {
        ik_err_set(err, IK_E_NOMEM, "admin.listen %s: out of memory", listen);
        admin_free(a);
        return NULL;
    }
    if (start_daemon(a, listen, &sa, err) != 0) {
        admin_free(a);
        return NULL;
    }
    a->started = true;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_BIND_PORT);
    a->port = info ? info->port : ntohs(sa.sin_port);
    int rc = pthread_create(&a->thread, NULL, serve, a);
    if (rc != 0) {
        ik_err_set(err, IK_E_IO, "admin.listen %s: cannot start the server thread: %s", listen,
                   strerror(rc));
        admin_free(a);
        return NULL;
    }
    return a;
}

uint16_t ik_admin_port(const ik_admin *admin)
{
    return admin ? admin->port : 0;
}

void ik_admin_stop(ik_admin *admin)
{
    if (!admin)
        return;
    uint64_t one = 1;
    while (write(admin->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
    pthread_join(admin->thread, NULL);
    admin_free(admin);
}
