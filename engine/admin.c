/*
 * admin.c: the admin HTTP server (see admin.h), on libmicrohttpd.
 *
 * One MHD daemon with its own internal polling thread (MHD_USE_AUTO picks
 * epoll or poll), bound to exactly the configured address through
 * MHD_OPTION_SOCK_ADDR. Every request is answered on the first call of the
 * access handler: the admin API has no request bodies, so anything sent with
 * one is answered (404/405) without reading it.
 *
 * Routes: GET|HEAD /health and /metrics; unknown path 404, known path with
 * another method 405 (with Allow), both with a JSON {"error":"..."} body.
 * MHD's own diagnostics go to the engine log at warn level, except while the
 * daemon starts, when the last one is kept to explain a failure.
 */
#include "admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "log.h"

#define CT_JSON    "application/json"
#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"

struct ik_admin {
    struct MHD_Daemon *daemon;
    ik_metrics *metrics; /* borrowed */
    ik_health_fn health;
    void *health_arg;
    uint16_t port;
    /* MHD diagnostics while starting (explains a failure), then logged. */
    atomic_bool started;
    pthread_mutex_t diag_lock;
    char diag[512];
};

/* MHD's logger: kept during start, sent to the engine log afterwards. */
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    ik_admin *a = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    if (atomic_load(&a->started)) {
        ik_logf(IK_LOG_WARN, NULL, "admin", "http server: %s", msg);
        return;
    }
    pthread_mutex_lock(&a->diag_lock);
    snprintf(a->diag, sizeof a->diag, "%s", msg);
    pthread_mutex_unlock(&a->diag_lock);
}

/* Queues `body` (copied) with a status and content type. */
static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *ctype,
                               const char *body, size_t len, bool allow)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES ||
        (allow && MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") != MHD_YES)) {
        MHD_destroy_response(r);
        return MHD_NO;
    }
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
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

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
    ik_admin *a = cls;
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

ik_admin *ik_admin_start(const char *listen, ik_metrics *metrics, ik_health_fn health, void *arg,
                         ik_err *err)
{
    struct sockaddr_in sa;
    if (parse_listen(listen, &sa, err) != 0)
        return NULL;

    ik_admin *a = calloc(1, sizeof *a);
    if (!a) {
        ik_err_set(err, IK_E_NOMEM, "admin.listen %s: out of memory", listen);
        return NULL;
    }
    if (pthread_mutex_init(&a->diag_lock, NULL) != 0) {
        free(a);
        ik_err_set(err, IK_E_NOMEM, "admin.listen %s: cannot create a mutex", listen);
        return NULL;
    }
    a->metrics = metrics;
    a->health = health;
    a->health_arg = arg;
    atomic_init(&a->started, false);

    errno = 0;
    a->daemon =
        MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, handle, a,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_EXTERNAL_LOGGER,
                         mhd_logger, a, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64, MHD_OPTION_END);
    int saved = errno;
    if (!a->daemon) {
        char addr[INET_ADDRSTRLEN] = "?";
        inet_ntop(AF_INET, &sa.sin_addr, addr, sizeof addr);
        pthread_mutex_lock(&a->diag_lock);
        if (saved != 0)
            ik_err_set(err, IK_E_IO, "admin.listen %s: cannot listen on %s:%u: %s", listen, addr,
                       (unsigned)ntohs(sa.sin_port), strerror(saved));
        else
            ik_err_set(err, IK_E_IO, "admin.listen %s: cannot listen on %s:%u: %s", listen, addr,
                       (unsigned)ntohs(sa.sin_port),
                       a->diag[0] ? a->diag : "the HTTP server failed to start");
        pthread_mutex_unlock(&a->diag_lock);
        pthread_mutex_destroy(&a->diag_lock);
        free(a);
        return NULL;
    }
    atomic_store(&a->started, true);

    const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_BIND_PORT);
    a->port = info ? info->port : ntohs(sa.sin_port);
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
    MHD_stop_daemon(admin->daemon);
    pthread_mutex_destroy(&admin->diag_lock);
    free(admin);
}
