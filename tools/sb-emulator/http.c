/* http.c: runtime-properties endpoint (see http.h). Handlers run on libmicrohttpd's thread
 * and only read immutable configuration and the store's atomic counters. */
#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/file.h"
#include "log.h"
#include "sas.h"

struct sb_http {
    struct MHD_Daemon *plain, *tls;
    const sb_config *cfg;
    sb_store *store;
    char *cert, *key;
    int plain_port, tls_port; /* actual ports: a token must name the one it came in on */
};

static void iso_time(int64_t ms, char *out, size_t n)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char tmp[64];
    strftime(tmp, sizeof tmp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%.40s.%03dZ", tmp, (int)(ms % 1000));
}

static void iso_duration(int64_t ms, char *out, size_t n)
{
    if (ms <= 0) {
        snprintf(out, n, "P10675199DT2H48M5.4775807S");
        return;
    }
    int64_t s = ms / 1000, frac = ms % 1000;
    int64_t d = s / 86400, h = (s / 3600) % 24, m = (s / 60) % 60, sec = s % 60;
    int k = snprintf(out, n, "P");
    if (d)
        k += snprintf(out + k, n - (size_t)k, "%lldD", (long long)d);
    k += snprintf(out + k, n - (size_t)k, "T");
    if (h)
        k += snprintf(out + k, n - (size_t)k, "%lldH", (long long)h);
    if (m)
        k += snprintf(out + k, n - (size_t)k, "%lldM", (long long)m);
    if (sec || frac || (!h && !m))
        snprintf(out + k, n - (size_t)k, frac ? "%lld.%03lldS" : "%lldS", (long long)sec,
                 (long long)frac);
}

int sb_http_parse_path(const char *url, char *name, size_t namelen)
{
    if (!url || url[0] != '/')
        return -1;
    const char *p = url + 1;
    size_t n = strcspn(p, "?");
    if (n == 0 || n >= namelen)
        return -1;
    memcpy(name, p, n);
    name[n] = 0;
    if (!sb_config_valid_queue_name(name))
        return -1;
    return 0;
}

char *sb_http_queue_entry(const sb_queue *q, const char *self_url, int prolog)
{
    const sb_queue_cfg *c = q->cfg;
    long active = atomic_load_explicit(&((sb_queue *)q)->n_active, memory_order_relaxed);
    long sched = atomic_load_explicit(&((sb_queue *)q)->n_scheduled, memory_order_relaxed);
    long dlq = atomic_load_explicit(&q->dlq->n_active, memory_order_relaxed);
    long bytes = atomic_load_explicit(&((sb_queue *)q)->n_bytes, memory_order_relaxed) +
                 atomic_load_explicit(&q->dlq->n_bytes, memory_order_relaxed);
    char created[64], updated[64], accessed[64], lock[64], ttl[64], dup[64];
    iso_time(q->created_ms, created, sizeof created);
    iso_time(atomic_load(&((sb_queue *)q)->updated_ms), updated, sizeof updated);
    iso_time(atomic_load(&((sb_queue *)q)->accessed_ms), accessed, sizeof accessed);
    iso_duration(c->lock_duration_ms, lock, sizeof lock);
    iso_duration(c->default_ttl_ms, ttl, sizeof ttl);
    iso_duration(c->duplicate_window_ms, dup, sizeof dup);
    char *out = NULL;
    int n = asprintf(
        &out,
        "%s<entry xmlns=\"http://www.w3.org/2005/Atom\">"
        "<id>%s</id><title type=\"text\">%s</title>"
        "<published>%s</published><updated>%s</updated>"
        "<author><name>intake-sb-emulator</name></author>"
        "<link rel=\"self\" href=\"%s\"/>"
        "<content type=\"application/xml\">"
        "<QueueDescription xmlns=\"http://schemas.microsoft.com/netservices/2010/10/servicebus/"
        "connect\" xmlns:i=\"http://www.w3.org/2001/XMLSchema-instance\">"
        "<LockDuration>%s</LockDuration>"
        "<MaxSizeInMegabytes>%lld</MaxSizeInMegabytes>"
        "<RequiresDuplicateDetection>%s</RequiresDuplicateDetection>"
        "<RequiresSession>%s</RequiresSession>"
        "<DefaultMessageTimeToLive>%s</DefaultMessageTimeToLive>"
        "<DeadLetteringOnMessageExpiration>%s</DeadLetteringOnMessageExpiration>"
        "<DuplicateDetectionHistoryTimeWindow>%s</DuplicateDetectionHistoryTimeWindow>"
        "<MaxDeliveryCount>%u</MaxDeliveryCount>"
        "<EnableBatchedOperations>true</EnableBatchedOperations>"
        "<SizeInBytes>%ld</SizeInBytes><MessageCount>%ld</MessageCount>"
        "<IsAnonymousAccessible>false</IsAnonymousAccessible>"
        "<AuthorizationRules></AuthorizationRules><Status>Active</Status>"
        "<CreatedAt>%s</CreatedAt><UpdatedAt>%s</UpdatedAt><AccessedAt>%s</AccessedAt>"
        "<SupportOrdering>true</SupportOrdering>"
        "<CountDetails xmlns:d2p1=\"http://schemas.microsoft.com/netservices/2011/06/"
        "servicebus\">"
        "<d2p1:ActiveMessageCount>%ld</d2p1:ActiveMessageCount>"
        "<d2p1:DeadLetterMessageCount>%ld</d2p1:DeadLetterMessageCount>"
        "<d2p1:ScheduledMessageCount>%ld</d2p1:ScheduledMessageCount>"
        "<d2p1:TransferMessageCount>0</d2p1:TransferMessageCount>"
        "<d2p1:TransferDeadLetterMessageCount>0</d2p1:TransferDeadLetterMessageCount>"
        "</CountDetails>"
        "<AutoDeleteOnIdle>P10675199DT2H48M5.4775807S</AutoDeleteOnIdle>"
        "<EnablePartitioning>false</EnablePartitioning>"
        "<EntityAvailabilityStatus>Available</EntityAvailabilityStatus>"
        "<EnableExpress>false</EnableExpress>"
        "</QueueDescription></content></entry>",
        prolog ? "<?xml version=\"1.0\" encoding=\"utf-8\"?>" : "", self_url, q->name, created,
        updated, self_url, lock, (long long)(c->max_size_bytes / (1024 * 1024)),
        c->duplicate_detection ? "true" : "false", c->requires_session ? "true" : "false", ttl,
        c->dead_lettering_on_expiration ? "true" : "false", dup, c->max_delivery_count, bytes,
        active + sched + dlq, created, updated, accessed, active, dlq, sched);
    return n < 0 ? NULL : out;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *ctype,
                             char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    enum MHD_Result rc = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result error(struct MHD_Connection *conn, unsigned code, const char *detail)
{
    char *body = NULL;
    if (asprintf(&body, "<Error><Code>%u</Code><Detail>%s</Detail></Error>", code, detail) < 0)
        return MHD_NO;
    return reply(conn, code, "application/xml; charset=utf-8", body);
}

/* Strict non-negative integer query argument, or def when absent; -1 when malformed. */
static long query_long(struct MHD_Connection *conn, const char *key, long def)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
    if (!v)
        return def;
    char *end;
    long n = strtol(v, &end, 10);
    if (!v[0] || *end || n < 0 || n > 100000)
        return -1;
    return n;
}

/* GET /$Resources/Queues?$skip=&$top=: an ATOM feed of queue entries, with a next link while
 * more remain. */
static enum MHD_Result list_queues(struct sb_http *h, struct MHD_Connection *conn,
                                   const char *scheme, const char *host, const char *api)
{
    long skip = query_long(conn, "$skip", 0), top = query_long(conn, "$top", 100);
    if (skip < 0 || top < 0)
        return error(conn, 400, "$skip and $top must be non-negative integers.");
    sb_buf feed = {0};
    char self[700], now[64];
    iso_time(time(NULL) * 1000LL, now, sizeof now);
    snprintf(self, sizeof self,
             "%s://%s/$Resources/Queues?$skip=%ld&amp;$top=%ld&amp;api-version=%.20s", scheme, host,
             skip, top, api);
    char head[1600];
    int n = snprintf(head, sizeof head,
                     "<?xml version=\"1.0\" encoding=\"utf-8\"?><feed "
                     "xmlns=\"http://www.w3.org/2005/Atom\"><title type=\"text\">Queues</title>"
                     "<id>%s</id><updated>%s</updated><link rel=\"self\" href=\"%s\"/>",
                     self, now, self);
    int rc = sb_buf_put(&feed, head, (size_t)n);
    if ((size_t)(skip + top) < h->store->nqueues) {
        n = snprintf(
            head, sizeof head,
            "<link rel=\"next\" href=\"%s://%s/$Resources/Queues?$skip=%ld&amp;$top=%ld&amp;"
            "api-version=%.20s\"/>",
            scheme, host, skip + top, top, api);
        rc |= sb_buf_put(&feed, head, (size_t)n);
    }
    for (size_t i = (size_t)skip; i < h->store->nqueues && i < (size_t)(skip + top) && !rc; i++) {
        sb_queue *q = h->store->queues[i];
        char qself[700];
        snprintf(qself, sizeof qself, "%s://%s/%s?api-version=%.20s", scheme, host, q->name, api);
        char *e = sb_http_queue_entry(q, qself, 0);
        rc |= e ? sb_buf_put(&feed, e, strlen(e)) : -1;
        free(e);
    }
    rc |= sb_buf_put(&feed, "</feed>", 8); /* with the NUL */
    if (rc) {
        sb_buf_free(&feed);
        return error(conn, 500, "out of memory");
    }
    return reply(conn, 200, "application/atom+xml;type=feed;charset=utf-8", (char *)feed.data);
}

/* 1 if the token's resource URI sr names the host the request was sent to (its Host header,
 * else the listen address) and the port it came in on; else 0 with the reason in err. */
static int token_names_us(const struct sb_http *h, const char *host_hdr, int is_tls, const char *sr,
                          char *err, size_t errlen)
{
    char host[256];
    int port;
    if (!host_hdr || sb_host_parse(host_hdr, strlen(host_hdr), host, sizeof host, &port) < 0)
        snprintf(host, sizeof host, "%s", h->cfg->address);
    return sb_sas_names_endpoint(sr, host, is_tls ? h->tls_port : h->plain_port, err, errlen);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    struct sb_http *h = cls;
    (void)version;
    (void)upload;
    if (*con_cls == NULL) { /* first call: headers only */
        *con_cls = (void *)1;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* ignore request bodies */
        return MHD_YES;
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON);
    int is_tls = ci && ci->daemon == h->tls;
    if (strcmp(method, "GET") != 0) {
        SB_WARN("http: %s %.200s: only GET is supported", method, url);
        return error(conn, 405, "Only GET of runtime properties is supported by the emulator.");
    }
    if (strcmp(url, "/") == 0)
        return reply(conn, 200, "text/plain", strdup("intake-sb-emulator\n"));
    char name[SB_NAME_MAX];
    int list = strcasecmp(url, "/$Resources/Queues") == 0;
    if (list)
        strcpy(name, "$Resources/Queues");
    else if (sb_http_parse_path(url, name, sizeof name) < 0) {
        SB_WARN("http: GET %.200s: not a queue path", url);
        return error(conn, 400, "The path must be /&lt;queue&gt;?api-version=...");
    }
    const char *api = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "api-version");
    if (!api || !api[0]) {
        SB_WARN("http: GET %.200s: no api-version", url);
        return error(conn, 400, "The api-version query parameter is required.");
    }
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!auth) {
        SB_WARN("http: GET %.200s: no Authorization header", url);
        return error(conn, 401, "MissingToken: the request has no authorization header.");
    }
    char err[512];
    sb_sas_token t;
    int rc = sb_sas_validate(h->cfg, auth, time(NULL), &t, err, sizeof err);
    char scope[SB_NAME_MAX + 40];
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    if (rc == 0 && !token_names_us(h, host, is_tls, t.sr, err, sizeof err))
        rc = SB_SAS_BAD_SIGNATURE;
    if (rc == 0) {
        if (sb_sas_uri_path(t.sr, scope, sizeof scope) < 0 || !sb_sas_covers(scope, name)) {
            snprintf(err, sizeof err, "token does not cover '%.100s'", name);
            rc = SB_SAS_BAD_SIGNATURE;
        }
    }
    if (rc != 0) {
        SB_WARN("http: GET %.200s refused (401): %s", url, err);
        return error(conn, 401, "InvalidSignature: the token is not valid for this resource.");
    }
    if (list)
        return list_queues(h, conn, is_tls ? "https" : "http", host ? host : "127.0.0.1", api);
    char self[600];
    snprintf(self, sizeof self, "%s://%s/%s?api-version=%.20s", is_tls ? "https" : "http",
             host ? host : "127.0.0.1", name, api);
    sb_queue *q = sb_store_find(h->store, name);
    if (!q) {
        char *body = NULL;
        char now[64];
        iso_time(time(NULL) * 1000LL, now, sizeof now);
        if (asprintf(&body,
                     "<?xml version=\"1.0\" encoding=\"utf-8\"?><feed "
                     "xmlns=\"http://www.w3.org/2005/Atom\"><title type=\"text\">Publicly Listed "
                     "Services</title><id>%s</id><updated>%s</updated><link rel=\"self\" "
                     "href=\"%s\"/></feed>",
                     self, now, self) < 0)
            return MHD_NO;
        SB_INFO("http: GET %.200s: no such queue", url);
        return reply(conn, 200, "application/atom+xml;type=feed;charset=utf-8", body);
    }
    char *body = sb_http_queue_entry(q, self, 1);
    if (!body)
        return error(conn, 500, "out of memory");
    SB_DBG("http: GET %.200s: 200", url);
    return reply(conn, 200, "application/atom+xml;type=entry;charset=utf-8", body);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    *con_cls = NULL;
}

/* A PEM file (tls_cert or tls_key) whole, NUL-terminated; NULL (logged) when it cannot be read
 * or is empty. */
static char *read_pem(const char *option, const char *path)
{
    char *pem = NULL, err[600];
    size_t len = 0;
    if (ik_read_file(path, &pem, &len, err, sizeof err) != 0) {
        SB_ERR("http: cannot read %s: %s", option, err);
        return NULL;
    }
    if (len == 0) {
        SB_ERR("http: cannot read %s: %s is empty", option, path);
        free(pem);
        return NULL;
    }
    return pem;
}

static struct MHD_Daemon *start(struct sb_http *h, int port, int tls, int *actual)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, h->cfg->address, &sa.sin_addr) != 1) {
        SB_ERR("http: listen address '%s' is not an IPv4 address", h->cfg->address);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    struct MHD_Daemon *d;
    if (tls) {
        flags |= MHD_USE_TLS;
        d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handler, h, MHD_OPTION_SOCK_ADDR,
                             &sa, MHD_OPTION_HTTPS_MEM_KEY, h->key, MHD_OPTION_HTTPS_MEM_CERT,
                             h->cert, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                             MHD_OPTION_CONNECTION_LIMIT, (unsigned)SB_HTTP_MAX_CONNS,
                             MHD_OPTION_END);
    } else {
        d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handler, h, MHD_OPTION_SOCK_ADDR,
                             &sa, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                             MHD_OPTION_CONNECTION_LIMIT, (unsigned)SB_HTTP_MAX_CONNS,
                             MHD_OPTION_END);
    }
    if (!d) {
        SB_ERR("http: cannot listen for %s on %s:%d", tls ? "https" : "http", h->cfg->address,
               port);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *actual = di ? di->port : port;
    SB_INFO("listening for %s on %s:%d", tls ? "https" : "http", h->cfg->address, *actual);
    return d;
}

int sb_http_start(sb_http **out, const sb_config *cfg, sb_store *store, int *http_port,
                  int *https_port)
{
    *out = NULL;
    *http_port = *https_port = -1;
    if (cfg->http_port < 0 && cfg->https_port < 0)
        return 0;
    struct sb_http *h = calloc(1, sizeof *h);
    if (!h) {
        SB_ERR("http: out of memory");
        return -1;
    }
    h->cfg = cfg;
    h->store = store;
    if (cfg->http_port >= 0 && !(h->plain = start(h, cfg->http_port, 0, http_port)))
        goto fail;
    h->plain_port = *http_port;
    if (cfg->https_port >= 0) {
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
            SB_ERR("http: this libmicrohttpd has no TLS support; cannot serve https");
            goto fail;
        }
        if (!(h->cert = read_pem("tls_cert", cfg->tls_cert)) ||
            !(h->key = read_pem("tls_key", cfg->tls_key)))
            goto fail;
        if (!(h->tls = start(h, cfg->https_port, 1, https_port)))
            goto fail;
        h->tls_port = *https_port;
    }
    *out = h;
    return 0;
fail:
    sb_http_stop(h);
    return -1;
}

void sb_http_stop(sb_http *h)
{
    if (!h)
        return;
    if (h->plain)
        MHD_stop_daemon(h->plain);
    if (h->tls)
        MHD_stop_daemon(h->tls);
    free(h->cert);
    if (h->key) {
        memset(h->key, 0, strlen(h->key));
        free(h->key);
    }
    free(h);
}
