/*
 * test_sb_sink.c: the `servicebus` sink in process (fake host) against
 * intake-sb-emulator started by each test on a free port: message shape
 * (body, message id, content type, application properties), duplicate
 * detection of a resent id, scheduled sends, session ids, the batch
 * envelope, too-large and rejected messages as IK_FAIL, a lost connection
 * as IK_RETRY then IK_DOWN until the emulator is back, a silent broker as
 * IK_RETRY, and a refused key that never shows in results or logs.
 * Messages are read back with lib/servicebus's own client.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <proton/message.h>

#include "fake_host.h"
#include "servicebus/client.h"
#include "servicebus/endpoint.h"
#include "servicebus/sas.h"

extern const ik_plugin ik_sb_sink_plugin;

#define KEY "SAS_KEY_VALUE"

/* ---- the emulator ------------------------------------------------------- */

typedef struct emu {
    pid_t pid;
    int port, http;
    char cfg[64];
    char conn[256]; /* connection string */
} emu;

/* Every emulator started, killed at exit even when a test stops half-way. */
static pid_t started[64];
static int nstarted;

static void kill_all(void)
{
    for (int i = 0; i < nstarted; i++) {
        if (kill(started[i], 0) == 0) {
            kill(started[i], SIGCONT);
            kill(started[i], SIGKILL);
            waitpid(started[i], NULL, 0);
        }
    }
}

/* Starts the emulator with the queues (libconfig text) on port (0: any). */
static int emu_start(emu *e, const char *queues, const char *extra, int port)
{
    if (!e->cfg[0]) {
        snprintf(e->cfg, sizeof e->cfg, "/tmp/intake-sbsink-XXXXXX");
        int fd = mkstemp(e->cfg);
        if (fd < 0)
            return -1;
        dprintf(fd,
                "listen = \"127.0.0.1\";\nport = 0;\nhttp_port = 0;\nlog_level = %d;\n%s\n"
                "keys = ({ name = \"RootManageSharedAccessKey\"; key = \"" KEY "\"; });\n"
                "queues = (%s);\n",
                getenv("SBEMU_VERBOSE") ? 3 : 0, extra ? extra : "", queues);
        close(fd);
    }
    const char *build = getenv("INTAKE_TEST_BUILD");
    char bin[512], portarg[16];
    snprintf(bin, sizeof bin, "%s/tools/sb-emulator/intake-sb-emulator", build ? build : "build");
    snprintf(portarg, sizeof portarg, "%d", port);
    int pfd[2];
    if (pipe(pfd) != 0)
        return -1;
    e->pid = fork();
    if (e->pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execl(bin, bin, "-c", e->cfg, "-p", portarg, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    if (e->pid > 0 && nstarted < 64)
        started[nstarted++] = e->pid;
    FILE *f = fdopen(pfd[0], "r");
    char line[256];
    int ok = -1;
    while (f && fgets(line, sizeof line, f)) {
        int a, s, h, hs;
        if (sscanf(line, "READY amqp=%d amqps=%d http=%d https=%d", &a, &s, &h, &hs) == 4) {
            e->port = a;
            e->http = h;
            ok = 0;
            break;
        }
    }
    if (f)
        fclose(f);
    snprintf(e->conn, sizeof e->conn,
             "Endpoint=sb://127.0.0.1:%d;SharedAccessKeyName=RootManageSharedAccessKey;"
             "SharedAccessKey=" KEY ";UseDevelopmentEmulator=true",
             e->port);
    return ok;
}

static void emu_kill(emu *e, int sig)
{
    if (e->pid > 0) {
        kill(e->pid, sig);
        if (sig == SIGKILL || sig == SIGTERM) {
            waitpid(e->pid, NULL, 0);
            e->pid = 0;
        }
    }
}

static void emu_stop(emu *e)
{
    if (e->pid > 0) {
        kill(e->pid, SIGCONT);
        emu_kill(e, SIGTERM);
    }
    if (e->cfg[0])
        unlink(e->cfg);
}

/* The queue's active and scheduled counts from the emulator's HTTP
 * runtime properties. 0 or -1. */
static int emu_counts(const emu *e, const char *queue, long *active, long *scheduled)
{
    char uri[128];
    snprintf(uri, sizeof uri, "http://127.0.0.1:%d/%s", e->http, queue);
    char *tok = ik_sb_sas_token(uri, "RootManageSharedAccessKey", KEY, time(NULL) + 600);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e->http)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = -1;
    if (tok && fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        char req[1024];
        int n = snprintf(req, sizeof req,
                         "GET /%s?api-version=2021-05 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                         "Authorization: %s\r\nConnection: close\r\n\r\n",
                         queue, e->http, tok);
        if (write(fd, req, (size_t)n) == n) {
            static char resp[65536];
            size_t got = 0;
            ssize_t r;
            while (got < sizeof resp - 1 && (r = read(fd, resp + got, sizeof resp - 1 - got)) > 0)
                got += (size_t)r;
            resp[got] = '\0';
            const char *pa = strstr(resp, "ActiveMessageCount>");
            const char *ps = strstr(resp, "ScheduledMessageCount>");
            if (pa && ps) {
                *active = strtol(pa + 19, NULL, 10);
                *scheduled = strtol(ps + 22, NULL, 10);
                rc = 0;
            }
        }
    }
    if (fd >= 0)
        close(fd);
    free(tok);
    return rc;
}

/* ---- reading messages back ---------------------------------------------- */

typedef struct reader {
    pn_message_t *got[64];
    int n;
} reader;

static void rd_delivery(void *arg, pn_link_t *l, pn_delivery_t *d)
{
    reader *r = arg;
    if (!pn_delivery_readable(d) || pn_delivery_partial(d))
        return;
    size_t n = pn_delivery_pending(d);
    char *buf = malloc(n);
    ssize_t got = pn_link_recv(l, buf, n);
    pn_message_t *m = pn_message();
    if (got >= 0 && pn_message_decode(m, buf, (size_t)got) == 0 && r->n < 64)
        r->got[r->n++] = m;
    else
        pn_message_free(m);
    free(buf);
    pn_link_advance(l);
    pn_delivery_settle(d); /* after the advance: settling the current one advances too */
}

static const ik_sb_link_ops rd_ops = {.delivery = rd_delivery};

/* Receives (and deletes) up to want messages of queue within ms. */
static int receive(const emu *e, const char *queue, const char *session, int want, int ms,
                   reader *r)
{
    memset(r, 0, sizeof *r);
    ik_sb_endpoint ep;
    char err[256];
    ik_sb_endpoint_opts eo = {.connection_string = e->conn, .queue = queue, .tls_verify = 1};
    CU_ASSERT_EQUAL_FATAL(ik_sb_endpoint_init(&ep, &eo, err, sizeof err), 0);
    ik_sb_client *c = ik_sb_client_new(&ep.client);
    CU_ASSERT_EQUAL_FATAL(ik_sb_client_connect(c), 0);
    ik_sb_link_opts lo = {
        .address = queue, .receiver = 1, .session_id = session, .ops = &rd_ops, .arg = r};
    pn_link_t *l = ik_sb_client_attach(c, &lo);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    pn_link_flow(l, want);
    ik_sb_client_changed(c);
    uint64_t until = ik_sb_now_ms() + (uint64_t)ms;
    while (r->n < want && ik_sb_now_ms() < until)
        ik_sb_client_pump(c, 50);
    ik_sb_client_close(c, 1000);
    ik_sb_client_free(c);
    ik_sb_endpoint_clear(&ep);
    return r->n;
}

static void reader_free(reader *r)
{
    for (int i = 0; i < r->n; i++)
        pn_message_free(r->got[i]);
    r->n = 0;
}

/* The message's body (one data section) as text, in buf. */
static const char *body_text(pn_message_t *m, char *buf, size_t len)
{
    pn_data_t *b = pn_message_body(m);
    pn_data_rewind(b);
    buf[0] = '\0';
    if (pn_data_next(b) && pn_data_type(b) == PN_BINARY) {
        pn_bytes_t v = pn_data_get_binary(b);
        snprintf(buf, len, "%.*s", (int)v.size, v.start);
    }
    return buf;
}

static const char *message_id(pn_message_t *m)
{
    static char id[200];
    pn_msgid_t v = pn_message_get_id(m);
    snprintf(id, sizeof id, "%.*s", v.type == PN_STRING ? (int)v.u.as_bytes.size : 0,
             v.type == PN_STRING ? v.u.as_bytes.start : "");
    return id;
}

/* An application property as text ("" when absent; ints in decimal). */
static const char *app_prop(pn_message_t *m, const char *key)
{
    static char out[200];
    out[0] = '\0';
    pn_data_t *p = pn_message_properties(m);
    pn_data_rewind(p);
    if (!pn_data_next(p) || pn_data_type(p) != PN_MAP)
        return out;
    pn_data_enter(p);
    while (pn_data_next(p)) {
        pn_bytes_t k = pn_data_get_string(p);
        int match = k.size == strlen(key) && memcmp(k.start, key, k.size) == 0;
        if (!pn_data_next(p))
            break;
        if (!match)
            continue;
        if (pn_data_type(p) == PN_STRING) {
            pn_bytes_t v = pn_data_get_string(p);
            snprintf(out, sizeof out, "%.*s", (int)v.size, v.start);
        } else if (pn_data_type(p) == PN_INT) {
            snprintf(out, sizeof out, "%d", pn_data_get_int(p));
        }
    }
    return out;
}

/* ---- the sink ----------------------------------------------------------- */

typedef struct sink {
    fake_host fh;
    void *ws;
} sink;

/* Creates the sink with opts (name/value pairs) and one worker. The fake
 * host does not expand ${VAR} in defaults, so those of max_batch_size and
 * max_message_size are given here unless the test sets them. */
static void sink_open(sink *s, const char *const *opts)
{
    memset(s, 0, sizeof *s);
    static const char *all[64];
    size_t n = 0;
    int has_batch = 0, has_size = 0;
    for (; opts[n]; n += 2) {
        all[n] = opts[n];
        all[n + 1] = opts[n + 1];
        has_batch |= strcmp(opts[n], "max_batch_size") == 0;
        has_size |= strcmp(opts[n], "max_message_size") == 0;
    }
    if (!has_batch) {
        all[n++] = "max_batch_size";
        all[n++] = "50";
    }
    if (!has_size) {
        all[n++] = "max_message_size";
        all[n++] = "256K";
    }
    all[n] = NULL;
    fh_init(&s->fh, &ik_sb_sink_plugin, all);
    CU_ASSERT_EQUAL_FATAL(fh_create(&s->fh), 0);
    CU_ASSERT_EQUAL_FATAL(ik_sb_sink_plugin.worker_init(s->fh.state, 0, &s->ws), 0);
}

static void sink_close(sink *s)
{
    ik_sb_sink_plugin.worker_exit(s->fh.state, s->ws);
    fh_free(&s->fh);
}

static ik_record *rec(const char *id, const char *json)
{
    return fh_record(id, json_tokener_parse(json));
}

/* Writes recs and frees them; res gets the results. */
static int sink_write(sink *s, ik_record **recs, size_t n, ik_result *res)
{
    memset(res, 0, n * sizeof *res);
    int rc = ik_sb_sink_plugin.write(s->fh.state, s->ws, recs, n, res);
    for (size_t i = 0; i < n; i++)
        fh_record_free(recs[i]);
    return rc;
}

#define OPTS(...)                                                                                  \
    (const char *const[])                                                                          \
    {                                                                                              \
        __VA_ARGS__, NULL                                                                          \
    }

/* ---- tests -------------------------------------------------------------- */

static void test_messages(void)
{
    emu e = {0};
    CU_ASSERT_EQUAL_FATAL(emu_start(&e, "{ name = \"q\"; }", NULL, 0), 0);
    sink s;
    sink_open(&s, OPTS("connection_string", e.conn, "queue", "q", "ttl", "1h"));
    ik_record *r[3] = {rec("m-1", "{\"subject\":\"hi\",\"body\":\"caf\\u00e9\"}"),
                       rec("m-2", "{\"n\":2}"), rec("m-3", "[1,2]")};
    s.fh.host.record_set_meta(r[0], "batch_id", "b-7");
    s.fh.host.record_set_meta(r[0], "priority", "7");
    s.fh.host.record_set_priority(r[1], 3);
    ik_result res[3];
    CU_ASSERT_EQUAL(sink_write(&s, r, 3, res), 0);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(res[i].status, IK_OK);
    reader rd;
    CU_ASSERT_EQUAL_FATAL(receive(&e, "q", NULL, 3, 5000, &rd), 3);
    char body[256];
    CU_ASSERT_STRING_EQUAL(message_id(rd.got[0]), "m-1");
    CU_ASSERT_STRING_EQUAL(body_text(rd.got[0], body, sizeof body),
                           "{\"subject\":\"hi\",\"body\":\"café\"}");
    CU_ASSERT_STRING_EQUAL(pn_message_get_content_type(rd.got[0]), "application/json");
    CU_ASSERT_EQUAL(pn_message_get_ttl(rd.got[0]), 3600000);
    CU_ASSERT_STRING_EQUAL(app_prop(rd.got[0], "batch_id"), "b-7");
    CU_ASSERT_STRING_EQUAL(app_prop(rd.got[0], "priority"), "7");
    CU_ASSERT_STRING_EQUAL(app_prop(rd.got[0], "email_count"), "1");
    CU_ASSERT_STRING_EQUAL(message_id(rd.got[1]), "m-2");
    CU_ASSERT_STRING_EQUAL(app_prop(rd.got[1], "priority"), "3");
    CU_ASSERT_STRING_EQUAL(app_prop(rd.got[1], "batch_id"), "");
    CU_ASSERT_STRING_EQUAL(body_text(rd.got[2], body, sizeof body), "[1,2]");
    reader_free(&rd);
    CU_ASSERT_EQUAL(fh_metric_value(&s.fh, "messages_sent_total"), 3);
    sink_close(&s);
    emu_stop(&e);
}

static void test_duplicate_detection(void)
{
    emu e = {0};
    CU_ASSERT_EQUAL_FATAL(emu_start(&e, "{ name = \"q\"; duplicate_detection = true; }", NULL, 0),
                          0);
    sink s;
    sink_open(&s, OPTS("connection_string", e.conn, "queue", "q"));
    ik_result res[2];
    for (int round = 0; round < 2; round++) {
        ik_record *r[2] = {rec("dup-1", "{\"a\":1}"), rec("dup-2", "{\"a\":2}")};
        CU_ASSERT_EQUAL(sink_write(&s, r, 2, res), 0);
        CU_ASSERT_EQUAL(res[0].status, IK_OK);
        CU_ASSERT_EQUAL(res[1].status, IK_OK);
    }
    long active = -1, sched = -1;
    CU_ASSERT_EQUAL(emu_counts(&e, "q", &active, &sched), 0);
    CU_ASSERT_EQUAL(active, 2); /* the resends were duplicates */
    sink_close(&s);
    emu_stop(&e);
}

static void test_scheduled(void)
{
    emu e = {0};
    CU_ASSERT_EQUAL_FATAL(emu_start(&e, "{ name = \"q\"; }", NULL, 0), 0);
    sink s;
    sink_open(&s, OPTS("connection_string", e.conn, "queue", "q", "scheduled_from", "send_at"));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t at = ts.tv_sec + 2;
    struct tm tm;
    gmtime_r(&at, &tm);
    char json[128];
    strftime(json, sizeof json, "{\"send_at\":\"%Y-%m-%dT%H:%M:%SZ\"}", &tm);
    ik_record *r[2] = {rec("s-1", json), rec("s-2", "{\"send_at\":\"next tuesday\"}")};
    ik_result res[2];
    CU_ASSERT_EQUAL(sink_write(&s, r, 2, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_OK);
    CU_ASSERT_EQUAL(res[1].status, IK_FAIL);
    CU_ASSERT_PTR_NOT_NULL(strstr(res[1].reason, "'send_at'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(res[1].reason, "next tuesday"));
    long active = -1, sched = -1;
    CU_ASSERT_EQUAL(emu_counts(&e, "q", &active, &sched), 0);
    CU_ASSERT_EQUAL(active, 0);
    CU_ASSERT_EQUAL(sched, 1);
    for (int i = 0; i < 150 && active != 1; i++) {
        usleep(100000);
        emu_counts(&e, "q", &active, &sched);
    }
    CU_ASSERT_EQUAL(active, 1);
    CU_ASSERT_EQUAL(sched, 0);
    sink_close(&s);
    emu_stop(&e);
}

static void test_sessions(void)
{
    emu e = {0};
    CU_ASSERT_EQUAL_FATAL(emu_start(&e, "{ name = \"sq\"; requires_session = true; }", NULL, 0), 0);
    sink s;
    sink_open(&s, OPTS("connection_string", e.conn, "queue", "sq", "session_id_from", "thread"));
    ik_record *r[3] = {rec("a", "{\"thread\":\"t-1\"}"), rec("b", "{\"x\":1}"), rec("c", "{}")};
    s.fh.host.record_set_meta(r[2], "thread", "t-2");
    ik_result res[3];
    CU_ASSERT_EQUAL(sink_write(&s, r, 3, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_OK);
    CU_ASSERT_EQUAL(res[1].status, IK_FAIL); /* no session id: the queue refuses it */
    CU_ASSERT_PTR_NOT_NULL(strstr(res[1].reason, "amqp:not-allowed"));
    CU_ASSERT_PTR_NOT_NULL(strstr(res[1].reason, "Session ID is null"));
    CU_ASSERT_EQUAL(res[2].status, IK_OK);
    reader rd;
    CU_ASSERT_EQUAL_FATAL(receive(&e, "sq", "t-2", 1, 5000, &rd), 1);
    CU_ASSERT_STRING_EQUAL(message_id(rd.got[0]), "c");
    CU_ASSERT_STRING_EQUAL(pn_message_get_group_id(rd.got[0]), "t-2");
    reader_free(&rd);
    CU_ASSERT_EQUAL(fh_metric_value(&s.fh, "messages_failed_total"), 1);
    sink_close(&s);
    emu_stop(&e);
}

/* A 64-character string JSON field repeated into a payload of about n bytes. */
static char *big_json(size_t n)
{
    char *j = malloc(n + 32);
    size_t l = (size_t)sprintf(j, "{\"body\":\"");
    while (l < n)
        j[l++] = 'x';
    strcpy(j + l, "\"}");
    return j;
}

static void test_too_large_and_quota(void)
{
    emu e = {0};
    CU_ASSERT_EQUAL_FATAL(
        emu_start(&e, "{ name = \"q\"; max_size_mb = 1; }", "max_message_size = 8192;", 0), 0);
    sink s;
    sink_open(&s, OPTS("connection_string", e.conn, "queue", "q"));
    char *big = big_json(20000), *mid = big_json(6000);
    ik_record *r[2] = {rec("big", big), rec("small", "{}")};
    ik_result res[400];
    CU_ASSERT_EQUAL(sink_write(&s, r, 2, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_FAIL);
    CU_ASSERT_PTR_NOT_NULL(strstr(res[0].reason, "8192 bytes"));
    CU_ASSERT_PTR_NOT_NULL(strstr(res[0].reason, "of 200"));
    CU_ASSERT_EQUAL(res[1].status, IK_OK);
    /* 1 MB queue, 6 KB messages, pipelined: the broker refuses the tail */
    ik_record *many[400];
    for (int i = 0; i < 400; i++) {
        char id[16];
        snprintf(id, sizeof id, "m%d", i);
        many[i] = rec(id, mid);
    }
    CU_ASSERT_EQUAL(sink_write(&s, many, 400, res), 0);
    int ok = 0, full = 0;
    for (int i = 0; i < 400; i++) {
        ok += res[i].status == IK_OK;
        full += res[i].status == IK_FAIL && strstr(res[i].reason, "resource-limit-exceeded");
    }
    CU_ASSERT(ok > 100);
    CU_ASSERT(full > 100);
    CU_ASSERT_EQUAL(ok + full, 400);
    long active = -1, sched = -1;
    CU_ASSERT_EQUAL(emu_counts(&e, "q", &active, &sched), 0);
    CU_ASSERT_EQUAL(active, ok + 1);
    free(big);
    free(mid);
    sink_close(&s);
    emu_stop(&e);
}

static void test_envelope(void)
{
    emu e = {0};
    CU_ASSERT_EQUAL_FATAL(emu_start(&e, "{ name = \"q\"; duplicate_detection = true; }", NULL, 0),
                          0);
    sink s;
    sink_open(&s, OPTS("connection_string", e.conn, "queue", "q", "envelope", "batch",
                       "max_batch_size", "3"));
    ik_result res[8];
    for (int round = 0; round < 2; round++) {
        ik_record *r[8];
        for (int i = 0; i < 8; i++) {
            char id[16], json[64];
            snprintf(id, sizeof id, "e%d", i);
            snprintf(json, sizeof json, "{\"subject\":\"s%d\"}", i);
            r[i] = rec(id, json);
            s.fh.host.record_set_meta(r[i], "priority", i == 7 ? "5" : "1");
        }
        CU_ASSERT_EQUAL(sink_write(&s, r, 8, res), 0);
        for (int i = 0; i < 8; i++)
            CU_ASSERT_EQUAL(res[i].status, IK_OK);
    }
    reader rd; /* 3 + 3 + 1 of priority 1, 1 of priority 5; the resend was a duplicate */
    CU_ASSERT_EQUAL_FATAL(receive(&e, "q", NULL, 5, 1500, &rd), 4);
    char body[1024];
    json_object *env = json_tokener_parse(body_text(rd.got[0], body, sizeof body));
    CU_ASSERT_PTR_NOT_NULL_FATAL(env);
    json_object *v;
    CU_ASSERT(json_object_object_get_ex(env, "emails", &v) && json_object_array_length(v) == 3);
    CU_ASSERT_STRING_EQUAL(json_object_get_string(json_object_array_get_idx(v, 0)),
                           "{ \"subject\": \"s0\" }");
    CU_ASSERT(json_object_object_get_ex(env, "batch_id", &v));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), message_id(rd.got[0]));
    CU_ASSERT_STRING_EQUAL(app_prop(rd.got[0], "batch_id"), message_id(rd.got[0]));
    CU_ASSERT(json_object_object_get_ex(env, "email_count", &v) && json_object_get_int(v) == 3);
    CU_ASSERT(json_object_object_get_ex(env, "retry_count", &v) && json_object_get_int(v) == 0);
    CU_ASSERT(json_object_object_get_ex(env, "priority", &v) && json_object_get_int(v) == 1);
    CU_ASSERT(json_object_object_get_ex(env, "created_at", &v));
    CU_ASSERT_STRING_EQUAL(app_prop(rd.got[0], "email_count"), "3");
    json_object_put(env);
    CU_ASSERT_STRING_EQUAL(app_prop(rd.got[2], "email_count"), "1");
    CU_ASSERT_STRING_EQUAL(app_prop(rd.got[3], "priority"), "5");
    char first[200];
    snprintf(first, sizeof first, "%s", message_id(rd.got[0]));
    CU_ASSERT_STRING_NOT_EQUAL(first, message_id(rd.got[1]));
    reader_free(&rd);
    sink_close(&s);
    emu_stop(&e);
}

static void test_envelope_size(void)
{
    emu e = {0};
    CU_ASSERT_EQUAL_FATAL(emu_start(&e, "{ name = \"q\"; }", NULL, 0), 0);
    sink s;
    sink_open(&s, OPTS("connection_string", e.conn, "queue", "q", "envelope", "batch",
                       "max_message_size", "5K"));
    char *mid = big_json(1500), *big = big_json(6000);
    ik_record *r[6] = {rec("a", mid), rec("b", mid), rec("c", mid),
                       rec("d", big), rec("e", mid), rec("f", mid)};
    ik_result res[6];
    CU_ASSERT_EQUAL(sink_write(&s, r, 6, res), 0);
    for (int i = 0; i < 6; i++)
        CU_ASSERT_EQUAL(res[i].status, i == 3 ? IK_FAIL : IK_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(res[3].reason, "limit of 5120 bytes (the max_message_size"));
    reader rd;
    CU_ASSERT_EQUAL_FATAL(receive(&e, "q", NULL, 5, 1500, &rd), 3); /* a b | c | e f: d failed */
    for (int i = 0; i < rd.n; i++)
        CU_ASSERT_EQUAL(atoi(app_prop(rd.got[i], "email_count")), i == 1 ? 1 : 2);
    reader_free(&rd);
    free(mid);
    free(big);
    sink_close(&s);
    emu_stop(&e);
}

static void test_connection_loss(void)
{
    emu e = {0};
    CU_ASSERT_EQUAL_FATAL(emu_start(&e, "{ name = \"q\"; }", NULL, 0), 0);
    sink s;
    sink_open(&s, OPTS("connection_string", e.conn, "queue", "q", "timeout", "2s"));
    ik_result res[1];
    ik_record *r[1] = {rec("before", "{}")};
    CU_ASSERT_EQUAL(sink_write(&s, r, 1, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_OK);
    int port = e.port;
    emu_kill(&e, SIGKILL);
    r[0] = rec("lost", "{}");
    CU_ASSERT_EQUAL(sink_write(&s, r, 1, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_RETRY);
    CU_ASSERT_PTR_NOT_NULL(strstr(res[0].reason, "lost the connection"));
    r[0] = rec("down", "{}");
    CU_ASSERT_EQUAL(sink_write(&s, r, 1, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_DOWN);
    CU_ASSERT_PTR_NOT_NULL(strstr(res[0].reason, "cannot reach"));
    char why[256] = "";
    CU_ASSERT_NOT_EQUAL(ik_sb_sink_plugin.probe(s.fh.state, s.ws, why, sizeof why), 0);
    CU_ASSERT(why[0] != '\0');
    CU_ASSERT_EQUAL_FATAL(emu_start(&e, NULL, NULL, port), 0);
    CU_ASSERT_EQUAL(ik_sb_sink_plugin.probe(s.fh.state, s.ws, why, sizeof why), 0);
    r[0] = rec("after", "{}");
    CU_ASSERT_EQUAL(sink_write(&s, r, 1, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_OK);
    reader rd;
    CU_ASSERT_EQUAL_FATAL(receive(&e, "q", NULL, 1, 5000, &rd), 1);
    CU_ASSERT_STRING_EQUAL(message_id(rd.got[0]), "after");
    reader_free(&rd);
    CU_ASSERT(fh_metric_value(&s.fh, "messages_retried_total") >= 1);
    sink_close(&s);
    emu_stop(&e);
}

static void test_silent_broker(void)
{
    emu e = {0};
    CU_ASSERT_EQUAL_FATAL(emu_start(&e, "{ name = \"q\"; }", NULL, 0), 0);
    sink s;
    sink_open(&s, OPTS("connection_string", e.conn, "queue", "q", "timeout", "500ms"));
    ik_result res[1];
    ik_record *r[1] = {rec("x", "{}")};
    CU_ASSERT_EQUAL(sink_write(&s, r, 1, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_OK);
    emu_kill(&e, SIGSTOP);
    r[0] = rec("y", "{}");
    CU_ASSERT_EQUAL(sink_write(&s, r, 1, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_RETRY);
    CU_ASSERT_PTR_NOT_NULL(strstr(res[0].reason, "no outcome"));
    emu_kill(&e, SIGCONT);
    r[0] = rec("z", "{}");
    CU_ASSERT_EQUAL(sink_write(&s, r, 1, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_OK);
    sink_close(&s);
    emu_stop(&e);
}

static void test_secret_never_shown(void)
{
    emu e = {0};
    CU_ASSERT_EQUAL_FATAL(emu_start(&e, "{ name = \"q\"; }", NULL, 0), 0);
    char conn[256];
    snprintf(conn, sizeof conn,
             "Endpoint=sb://127.0.0.1:%d;SharedAccessKeyName=RootManageSharedAccessKey;"
             "SharedAccessKey=Wr0ngS3cretK3y;UseDevelopmentEmulator=true",
             e.port);
    sink s;
    sink_open(&s, OPTS("connection_string", conn, "queue", "q", "timeout", "2s"));
    ik_result res[1];
    ik_record *r[1] = {rec("x", "{}")};
    CU_ASSERT_EQUAL(sink_write(&s, r, 1, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_DOWN);
    CU_ASSERT(res[0].reason[0] != '\0');
    CU_ASSERT_PTR_NULL(strstr(res[0].reason, "Wr0ngS3cretK3y"));
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&s.fh), "cannot send to"));
    CU_ASSERT_PTR_NULL(strstr(fh_log(&s.fh), "Wr0ngS3cretK3y"));
    sink_close(&s);
    emu_stop(&e);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    atexit(kill_all);
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("sb_sink", NULL, NULL);
    CU_add_test(s, "messages", test_messages);
    CU_add_test(s, "duplicate detection", test_duplicate_detection);
    CU_add_test(s, "scheduled", test_scheduled);
    CU_add_test(s, "sessions", test_sessions);
    CU_add_test(s, "too large and quota", test_too_large_and_quota);
    CU_add_test(s, "envelope", test_envelope);
    CU_add_test(s, "envelope size", test_envelope_size);
    CU_add_test(s, "connection loss", test_connection_loss);
    CU_add_test(s, "silent broker", test_silent_broker);
    CU_add_test(s, "secret never shown", test_secret_never_shown);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
