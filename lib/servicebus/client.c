/*
 * client.c: one AMQP 1.0 connection on a qpid-proton proactor owned by the
 * calling thread: connect (TLS, SASL), links, CBS tokens, request/response.
 * See client.h for the threading and lifetime rules.
 */
#include "client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/event.h>
#include <proton/proactor.h>
#include <proton/sasl.h>
#include <proton/session.h>
#include <proton/ssl.h>
#include <proton/terminus.h>
#include <proton/transport.h>

#include <intake/plugin.h>

#include "sas.h"

#define DEFAULT_TTL_MS     3600000u
#define DEFAULT_OP_MS      30000u
#define DEFAULT_IDLE_MS    60000u
#define SESSION_FILTER_KEY "com.microsoft:session-filter"

/* A token put for one audience, put again at 3/4 of its lifetime. */
typedef struct token {
    char *audience;
    uint64_t renew_at; /* monotonic ms; 0 while a renewal is in flight */
    struct ik_sb_client *client;
    struct token *next;
} token;

/* One request waiting for its reply. */
typedef struct pending {
    char id[48];
    uint64_t deadline;
    ik_sb_reply_fn cb;
    void *arg;
    pn_message_t **keep; /* non-NULL: the reply is handed over here, not freed */
    struct pending *next;
} pending;

/* The request/response link pair of one address ($cbs, q/$management). */
typedef struct rr_pair {
    char *address;
    char *reply_to;
    pn_link_t *snd, *rcv;
    struct rr_pair *next;
} rr_pair;

/* What the client keeps of a link it attached for its owner. */
typedef struct user_link {
    pn_link_t *link;
    ik_sb_link_ops ops;
    void *arg;
    int remote_open;
    int gone; /* detached or refused: the condition is in the client's error */
    struct user_link *next;
} user_link;

struct ik_sb_client {
    ik_sb_client_config cfg; /* strings below are the client's copies */
    char *host, *ca_file, *user, *secret, *audience_base, *container;
    pn_proactor_t *pro;
    pn_connection_t *conn;
    pn_session_t *ssn;
    int open; /* remote open seen, not lost since */
    int lost; /* the transport closed */
    int closing;
    int dirty; /* changed outside an event batch: the proactor must be woken to write */
    unsigned long counter;
    int saved_interrupt; /* an interrupt seen inside a synchronous call */
    int inactive;        /* the proactor has no connection left (freed) */
    char error[512];
    char remote_container[128];
    token *tokens;
    pending *pendings;
    rr_pair *pairs;
    user_link *links;
};

/* Link contexts say which kind of link an event is for. */
enum { CTX_USER = 1, CTX_RR_SND = 2, CTX_RR_RCV = 3 };
typedef struct link_ctx {
    int kind;
    void *ptr; /* user_link or rr_pair */
} link_ctx;

uint64_t ik_sb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void set_error(ik_sb_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(ik_sb_client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
}

const char *ik_sb_condition_text(pn_condition_t *cond, char *buf, size_t len)
{
    buf[0] = '\0';
    if (cond && pn_condition_is_set(cond)) {
        const char *n = pn_condition_get_name(cond), *d = pn_condition_get_description(cond);
        snprintf(buf, len, "%s%s%s", n ? n : "error", d && d[0] ? ": " : "", d ? d : "");
    }
    return buf;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

ik_sb_client *ik_sb_client_new(const ik_sb_client_config *cfg)
{
    ik_sb_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cfg = *cfg;
    c->host = dup_or_null(cfg->host);
    c->ca_file = dup_or_null(cfg->ca_file);
    c->user = dup_or_null(cfg->user);
    c->secret = dup_or_null(cfg->secret);
    c->audience_base = dup_or_null(cfg->audience_base);
    if (cfg->container_id)
        c->container = strdup(cfg->container_id);
    else if (asprintf(&c->container, "intake-%ld-%lx", (long)getpid(),
                      (unsigned long)ik_sb_now_ms()) < 0)
        c->container = NULL;
    c->pro = pn_proactor();
    if (!c->host || !c->container || !c->pro || (cfg->ca_file && !c->ca_file) ||
        (cfg->user && !c->user) || (cfg->secret && !c->secret) ||
        (cfg->audience_base && !c->audience_base)) {
        ik_sb_client_free(c);
        return NULL;
    }
    if (!c->cfg.token_ttl_ms)
        c->cfg.token_ttl_ms = DEFAULT_TTL_MS;
    if (!c->cfg.op_timeout_ms)
        c->cfg.op_timeout_ms = DEFAULT_OP_MS;
    if (!c->cfg.idle_timeout_ms)
        c->cfg.idle_timeout_ms = DEFAULT_IDLE_MS;
    if (!c->cfg.port)
        c->cfg.port = c->cfg.tls ? 5671 : 5672;
    return c;
}

/* ---- bookkeeping freed with the connection ----------------------------- */

static void free_link_ctx(pn_link_t *l)
{
    if (!l)
        return;
    free(pn_link_get_context(l));
    pn_link_set_context(l, NULL);
}

/* Runs every pending request's callback with `why` and forgets them. */
static void fail_pendings(ik_sb_client *c, const char *why)
{
    while (c->pendings) {
        pending *p = c->pendings;
        c->pendings = p->next;
        if (p->cb)
            p->cb(p->arg, NULL, why);
        free(p);
    }
}

/* Tells every user link it is gone and forgets the connection's links. */
static void drop_links(ik_sb_client *c, const char *why)
{
    while (c->links) {
        user_link *u = c->links;
        c->links = u->next;
        free_link_ctx(u->link);
        if (!u->gone && u->ops.detached)
            u->ops.detached(u->arg, u->link, why);
        free(u);
    }
    while (c->pairs) {
        rr_pair *r = c->pairs;
        c->pairs = r->next;
        free_link_ctx(r->snd);
        free_link_ctx(r->rcv);
        free(r->address);
        free(r->reply_to);
        free(r);
    }
    while (c->tokens) {
        token *t = c->tokens;
        c->tokens = t->next;
        free(t->audience);
        free(t);
    }
}

/* The connection is gone: everything hanging off it is told and dropped. */
static void connection_lost(ik_sb_client *c, const char *why)
{
    if (c->lost)
        return;
    c->lost = 1;
    c->open = 0;
    if (why && why[0] && !c->closing)
        set_error(c, "%s", why);
    else if (!c->error[0])
        set_error(c, "connection closed");
    char reason[sizeof c->error]; /* callbacks may set the error again */
    memcpy(reason, c->error, sizeof reason);
    fail_pendings(c, reason);
    drop_links(c, reason);
    memcpy(c->error, reason, sizeof reason);
    c->conn = NULL;
    c->ssn = NULL;
}

void ik_sb_client_free(ik_sb_client *c)
{
    if (!c)
        return;
    if (c->conn && !c->lost) {
        c->closing = 1;
        pn_connection_close(c->conn);
    }
    connection_lost(c, "client freed");
    if (c->pro)
        pn_proactor_free(c->pro); /* frees the connection, if any */
    free(c->host);
    free(c->ca_file);
    ik_sb_sas_free(c->secret);
    free(c->user);
    free(c->audience_base);
    free(c->container);
    free(c);
}

/* ---- events ------------------------------------------------------------- */

static void on_bound(ik_sb_client *c, pn_transport_t *t)
{
    pn_transport_set_idle_timeout(t, c->cfg.idle_timeout_ms);
    if (c->cfg.auth == IK_SB_AUTH_SAS)
        return; /* no SASL layer: the SDK does the same with a signature */
    pn_sasl_t *s = pn_sasl(t);
    if (c->cfg.auth == IK_SB_AUTH_PLAIN) {
        pn_sasl_allowed_mechs(s, "PLAIN");
        pn_sasl_set_allow_insecure_mechs(s, !c->cfg.tls);
    } else {
        pn_sasl_allowed_mechs(s, "ANONYMOUS");
    }
}

/* The peer detached or closed a link (or its session ended). */
static void on_link_end(ik_sb_client *c, pn_link_t *l, pn_condition_t *cond)
{
    link_ctx *ctx = pn_link_get_context(l);
    char why[400];
    ik_sb_condition_text(cond, why, sizeof why);
    if (!why[0])
        snprintf(why, sizeof why, "the peer detached link %s", pn_link_name(l));
    if (!ctx)
        return;
    if (ctx->kind == CTX_USER) {
        user_link *u = ctx->ptr;
        if (!u->gone) {
            u->gone = 1;
            set_error(c, "%s", why);
            if (u->remote_open && u->ops.detached)
                u->ops.detached(u->arg, l, why);
        }
    } else {
        rr_pair *r = ctx->ptr;
        set_error(c, "%s link for %s: %s", ctx->kind == CTX_RR_SND ? "request" : "reply",
                  r->address, why);
        if (r->snd == l)
            r->snd = NULL;
        if (r->rcv == l)
            r->rcv = NULL;
    }
    free_link_ctx(l);
    if (pn_link_state(l) & PN_LOCAL_ACTIVE)
        pn_link_close(l);
}

/* A reply on a request/response pair: hands it to the matching request. */
static void on_reply(ik_sb_client *c, pn_link_t *l, pn_delivery_t *d)
{
    if (!pn_delivery_readable(d) || pn_delivery_partial(d))
        return;
    size_t n = pn_delivery_pending(d);
    char *buf = malloc(n ? n : 1);
    ssize_t got = buf ? pn_link_recv(l, buf, n) : -1;
    pn_message_t *m = pn_message();
    int ok = buf && m && got >= 0 && pn_message_decode(m, buf, (size_t)got) == 0;
    free(buf);
    pn_delivery_update(d, PN_ACCEPTED);
    pn_delivery_settle(d);
    pn_link_advance(l);
    pn_link_flow(l, 1);
    if (ok) {
        pn_msgid_t cid = pn_message_get_correlation_id(m);
        char id[64] = "";
        if (cid.type == PN_STRING)
            snprintf(id, sizeof id, "%.*s", (int)cid.u.as_bytes.size, cid.u.as_bytes.start);
        for (pending **pp = &c->pendings; *pp; pp = &(*pp)->next) {
            if (strcmp((*pp)->id, id) == 0) {
                pending *p = *pp;
                *pp = p->next;
                p->cb(p->arg, m, NULL);
                if (p->keep) {
                    *p->keep = m;
                    m = NULL;
                }
                free(p);
                break;
            }
        }
    }
    if (m)
        pn_message_free(m);
}

static void on_delivery(ik_sb_client *c, pn_delivery_t *d)
{
    pn_link_t *l = pn_delivery_link(d);
    link_ctx *ctx = pn_link_get_context(l);
    if (!ctx) {
        if (pn_link_is_receiver(l) && pn_delivery_readable(d) && !pn_delivery_partial(d)) {
            pn_delivery_update(d, PN_RELEASED);
            pn_delivery_settle(d);
            pn_link_advance(l);
        }
        return;
    }
    if (ctx->kind == CTX_USER) {
        user_link *u = ctx->ptr;
        if (u->ops.delivery)
            u->ops.delivery(u->arg, l, d);
    } else if (ctx->kind == CTX_RR_RCV) {
        on_reply(c, l, d);
    } else if (pn_delivery_remote_state(d) || pn_delivery_settled(d)) {
        pn_delivery_settle(d); /* a request's own outcome; the reply tells the rest */
    }
}

static void on_link_remote_open(pn_link_t *l)
{
    link_ctx *ctx = pn_link_get_context(l);
    if (ctx && ctx->kind == CTX_USER)
        ((user_link *)ctx->ptr)->remote_open = 1;
}

/* Handles one event. Returns 1 for an interrupt. */
static int handle(ik_sb_client *c, pn_event_t *e)
{
    char why[400];
    switch (pn_event_type(e)) {
    case PN_CONNECTION_BOUND:
        on_bound(c, pn_event_transport(e));
        break;
    case PN_CONNECTION_REMOTE_OPEN: {
        const char *rc = pn_connection_remote_container(pn_event_connection(e));
        snprintf(c->remote_container, sizeof c->remote_container, "%s", rc ? rc : "");
        c->open = 1;
        break;
    }
    case PN_CONNECTION_REMOTE_CLOSE:
        ik_sb_condition_text(pn_connection_remote_condition(pn_event_connection(e)), why,
                             sizeof why);
        if (why[0] && !c->closing)
            set_error(c, "the broker closed the connection: %s", why);
        pn_connection_close(pn_event_connection(e));
        break;
    case PN_SESSION_REMOTE_CLOSE: {
        pn_session_t *s = pn_event_session(e);
        ik_sb_condition_text(pn_session_remote_condition(s), why, sizeof why);
        set_error(c, "the broker ended the session%s%s", why[0] ? ": " : "", why);
        pn_connection_close(pn_session_connection(s)); /* one session: start again */
        break;
    }
    case PN_LINK_REMOTE_OPEN:
        on_link_remote_open(pn_event_link(e));
        break;
    case PN_LINK_REMOTE_CLOSE:
    case PN_LINK_REMOTE_DETACH:
        on_link_end(c, pn_event_link(e), pn_link_remote_condition(pn_event_link(e)));
        break;
    case PN_LINK_FLOW: {
        link_ctx *ctx = pn_link_get_context(pn_event_link(e));
        if (ctx && ctx->kind == CTX_USER && ((user_link *)ctx->ptr)->ops.flow)
            ((user_link *)ctx->ptr)->ops.flow(((user_link *)ctx->ptr)->arg, pn_event_link(e));
        break;
    }
    case PN_DELIVERY:
        on_delivery(c, pn_event_delivery(e));
        break;
    case PN_TRANSPORT_CLOSED: {
        pn_transport_t *t = pn_event_transport(e);
        ik_sb_condition_text(pn_transport_condition(t), why, sizeof why);
        if (why[0])
            connection_lost(c, why);
        else
            connection_lost(c, c->error[0] ? NULL : "connection closed");
        break;
    }
    case PN_PROACTOR_INACTIVE:
        c->inactive = 1;
        break;
    case PN_PROACTOR_INTERRUPT:
        return 1;
    default:
        break;
    }
    return 0;
}

/* ---- tokens ------------------------------------------------------------- */

/* A put-token request for audience: the token made now (or the fixed
 * signature) in an amqp-value string. NULL when out of memory. */
static pn_message_t *put_token_message(ik_sb_client *c, const char *audience)
{
    char *tok;
    if (c->cfg.auth == IK_SB_AUTH_SAS)
        tok = strdup(c->secret ? c->secret : "");
    else
        tok = ik_sb_sas_token(audience, c->user ? c->user : "", c->secret ? c->secret : "",
                              (int64_t)time(NULL) + (int64_t)(c->cfg.token_ttl_ms / 1000u));
    pn_message_t *m = tok ? pn_message() : NULL;
    if (!m) {
        free(tok);
        return NULL;
    }
    pn_data_t *ap = pn_message_properties(m);
    pn_data_put_map(ap);
    pn_data_enter(ap);
    pn_data_put_string(ap, pn_bytes(9, "operation"));
    pn_data_put_string(ap, pn_bytes(9, "put-token"));
    pn_data_put_string(ap, pn_bytes(4, "type"));
    pn_data_put_string(ap, pn_bytes(31, "servicebus.windows.net:sastoken"));
    pn_data_put_string(ap, pn_bytes(4, "name"));
    pn_data_put_string(ap, pn_bytes(strlen(audience), audience));
    pn_data_exit(ap);
    pn_data_put_string(pn_message_body(m), pn_bytes(strlen(tok), tok));
    pn_message_set_inferred(m, false);
    ik_sb_sas_free(tok);
    return m;
}

/* The broker's answer to a put-token: 0 for 2xx, else IK_E_IO with why. */
static int put_token_status(ik_sb_client *c, const char *audience, pn_message_t *reply)
{
    long status = ik_sb_reply_status(reply, "status-code");
    if (status >= 200 && status <= 299)
        return 0;
    char desc[256];
    ik_sb_reply_text(reply, "status-description", desc, sizeof desc);
    set_error(c, "the broker refused the token for %s: %ld %s", audience, status, desc);
    return IK_E_IO;
}

/* The answer to a renewal. A refused one is tried again a minute later;
 * until then the links keep the old token, which the broker honours until
 * it expires (then it detaches them, and the owner sees why). */
static void renewal_reply(void *arg, pn_message_t *reply, const char *error)
{
    token *t = arg;
    ik_sb_client *c = t->client;
    if (!reply) {
        set_error(c, "renewing the token for %s: %s", t->audience, error ? error : "no reply");
        t->renew_at = ik_sb_now_ms() + 60000u;
    } else if (put_token_status(c, t->audience, reply) != 0) {
        t->renew_at = ik_sb_now_ms() + 60000u;
    } else {
        t->renew_at = ik_sb_now_ms() + c->cfg.token_ttl_ms * 3 / 4;
    }
}

typedef struct call_wait {
    int done;
    pn_message_t *reply; /* set by on_reply through pending.keep */
    char error[400];
} call_wait;

static void call_reply(void *arg, pn_message_t *reply, const char *error)
{
    call_wait *w = arg;
    w->done = 1;
    if (!reply)
        snprintf(w->error, sizeof w->error, "%s", error ? error : "no reply");
}

/* Puts a token for audience and waits for the broker's answer. 0, or an
 * error with the broker's status and description. */
static int put_token_sync(ik_sb_client *c, const char *audience)
{
    token *t = NULL;
    for (token *x = c->tokens; x; x = x->next)
        if (strcmp(x->audience, audience) == 0)
            t = x;
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t || !(t->audience = strdup(audience))) {
            free(t);
            return IK_E_NOMEM;
        }
        t->client = c;
        t->next = c->tokens;
        c->tokens = t;
    }
    pn_message_t *m = put_token_message(c, audience);
    if (!m)
        return IK_E_NOMEM;
    pn_message_t *reply = NULL;
    int rc = ik_sb_client_call(c, "$cbs", m, &reply);
    if (rc != 0)
        return rc;
    rc = put_token_status(c, audience, reply);
    pn_message_free(reply);
    if (rc != 0)
        return rc;
    t->renew_at = ik_sb_now_ms() + c->cfg.token_ttl_ms * 3 / 4;
    return 0;
}

/* Renews tokens that reached 3/4 of their lifetime (async; a refused
 * renewal is tried again a minute later). A fixed signature is not renewed. */
static void renew_tokens(ik_sb_client *c)
{
    if (c->cfg.auth != IK_SB_AUTH_CBS || !c->open)
        return;
    uint64_t now = ik_sb_now_ms();
    for (token *t = c->tokens; t; t = t->next) {
        if (t->renew_at && now >= t->renew_at) {
            pn_message_t *m = put_token_message(c, t->audience);
            t->renew_at = 0; /* until the answer */
            if (!m || ik_sb_client_request(c, "$cbs", m, renewal_reply, t) != 0)
                t->renew_at = now + 60000u;
        }
    }
}

/* Fails requests whose time ran out. */
static void expire_requests(ik_sb_client *c)
{
    uint64_t now = ik_sb_now_ms();
    for (pending **pp = &c->pendings; *pp;) {
        pending *p = *pp;
        if (now >= p->deadline) {
            *pp = p->next;
            p->cb(p->arg, NULL, "no reply within the time limit");
            free(p);
        } else {
            pp = &p->next;
        }
    }
}

/* ---- pumping ------------------------------------------------------------ */

void ik_sb_client_changed(ik_sb_client *c)
{
    c->dirty = 1;
}

/* One round of events (waiting up to timeout_ms; 0: only what is ready) and
 * the client's timers. Returns 1 when an interrupt arrived, 0 otherwise,
 * IK_E_IO when the connection is lost. */
static int pump_once(ik_sb_client *c, uint64_t timeout_ms)
{
    int interrupted = 0;
    if (c->dirty && c->conn && !c->lost)
        pn_connection_wake(c->conn); /* frames made outside a batch are written then */
    c->dirty = 0;
    pn_event_batch_t *b;
    if (timeout_ms == 0) {
        b = pn_proactor_get(c->pro);
    } else {
        pn_proactor_set_timeout(c->pro, timeout_ms);
        b = pn_proactor_wait(c->pro);
    }
    if (b) {
        pn_event_t *e;
        while ((e = pn_event_batch_next(b)))
            if (handle(c, e))
                interrupted = 1;
        pn_proactor_done(c->pro, b);
    }
    if (!c->lost) {
        renew_tokens(c);
        expire_requests(c);
    }
    return c->lost ? IK_E_IO : interrupted;
}

int ik_sb_client_pump(ik_sb_client *c, uint64_t timeout_ms)
{
    /* an interrupt a synchronous call swallowed is the owner's */
    int saved = c->saved_interrupt;
    c->saved_interrupt = 0;
    int rc = pump_once(c, saved ? 0 : timeout_ms);
    return rc == 0 && saved ? 1 : rc;
}

void ik_sb_client_interrupt(ik_sb_client *c)
{
    pn_proactor_interrupt(c->pro); /* thread-safe; queued until the next wait */
}

/* Pumps until *flag is set, the connection is lost or the op time limit
 * passes. 0, IK_E_IO or IK_E_TIMEOUT (error set). */
static int pump_until(ik_sb_client *c, const int *flag, const char *what)
{
    uint64_t deadline = ik_sb_now_ms() + c->cfg.op_timeout_ms;
    while (!*flag) {
        uint64_t now = ik_sb_now_ms();
        if (now >= deadline) {
            set_error(c, "%s: no answer within %llu ms", what,
                      (unsigned long long)c->cfg.op_timeout_ms);
            return IK_E_TIMEOUT;
        }
        int rc = pump_once(c, deadline - now < 200 ? deadline - now : 200);
        if (rc == IK_E_IO && !*flag)
            return IK_E_IO;
        if (rc > 0)
            c->saved_interrupt = 1; /* returned by the owner's next pump */
    }
    return 0;
}

/* Pumps until the connection is gone and the proactor has freed it (its
 * PN_PROACTOR_INACTIVE), so nothing of it outlives the call. */
static void wait_inactive(ik_sb_client *c)
{
    uint64_t until = ik_sb_now_ms() + 5000;
    while ((!c->lost || !c->inactive) && ik_sb_now_ms() < until)
        if (pump_once(c, 50) > 0)
            c->saved_interrupt = 1;
}

/* ---- connecting --------------------------------------------------------- */

static int setup_tls(ik_sb_client *c, pn_transport_t *t)
{
    pn_ssl_domain_t *dom = pn_ssl_domain(PN_SSL_MODE_CLIENT);
    if (!dom) {
        set_error(c, "TLS is not available in this qpid-proton");
        return IK_E_UNSUPPORTED;
    }
    int rc = 0;
    if (c->ca_file && pn_ssl_domain_set_trusted_ca_db(dom, c->ca_file) != 0) {
        set_error(c, "cannot read the CA file %s", c->ca_file);
        rc = IK_E_CONFIG;
    }
    if (!rc && c->cfg.no_verify)
        pn_ssl_domain_set_peer_authentication(dom, PN_SSL_ANONYMOUS_PEER, NULL);
    else if (!rc)
        pn_ssl_domain_set_peer_authentication(dom, PN_SSL_VERIFY_PEER_NAME, NULL);
    if (!rc && pn_ssl_init(pn_ssl(t), dom, NULL) != 0) {
        set_error(c, "cannot set up TLS");
        rc = IK_E_IO;
    }
    if (!rc)
        pn_ssl_set_peer_hostname(pn_ssl(t), c->host);
    pn_ssl_domain_free(dom);
    return rc;
}

int ik_sb_client_connect(ik_sb_client *c)
{
    if (c->open)
        return 0;
    if (c->conn) { /* a previous connection still winding down */
        set_error(c, "the previous connection is still open");
        return IK_E_STATE;
    }
    c->error[0] = '\0';
    c->lost = 0;
    c->inactive = 0;
    c->closing = 0;
    pn_connection_t *conn = pn_connection();
    pn_transport_t *t = pn_transport();
    if (!conn || !t) {
        if (conn)
            pn_connection_free(conn);
        if (t)
            pn_transport_free(t);
        set_error(c, "out of memory");
        return IK_E_NOMEM;
    }
    pn_connection_set_container(conn, c->container);
    pn_connection_set_hostname(conn, c->host);
    if (c->cfg.auth == IK_SB_AUTH_PLAIN) {
        pn_connection_set_user(conn, c->user ? c->user : "");
        pn_connection_set_password(conn, c->secret ? c->secret : "");
    }
    int rc = c->cfg.tls ? setup_tls(c, t) : 0;
    if (rc) {
        pn_connection_free(conn);
        pn_transport_free(t);
        return rc;
    }
    pn_connection_open(conn);
    c->ssn = pn_session(conn);
    pn_session_open(c->ssn);
    c->conn = conn;
    char addr[300];
    snprintf(addr, sizeof addr, "%s:%d", c->host, c->cfg.port);
    pn_proactor_connect2(c->pro, conn, t, addr);
    rc = pump_until(c, &c->open, "connecting");
    if (rc == IK_E_IO && c->error[0] == '\0')
        set_error(c, "cannot connect to %s", addr);
    if (rc != 0 && !c->lost) {
        c->closing = 1;
        pn_connection_close(c->conn);
        pn_proactor_disconnect(c->pro, NULL);
        wait_inactive(c);
    }
    if (rc == 0)
        c->lost = 0;
    return rc;
}

int ik_sb_client_connected(const ik_sb_client *c)
{
    return c->open && !c->lost;
}

const char *ik_sb_client_error(const ik_sb_client *c)
{
    return c->error;
}

const char *ik_sb_client_remote_container(const ik_sb_client *c)
{
    return c->remote_container;
}

void ik_sb_client_close(ik_sb_client *c, uint64_t timeout_ms)
{
    if (!c->conn || c->lost)
        return;
    c->closing = 1;
    pn_connection_close(c->conn);
    c->dirty = 1;
    uint64_t deadline = ik_sb_now_ms() + timeout_ms;
    while (!c->lost && ik_sb_now_ms() < deadline)
        if (pump_once(c, 50) > 0)
            c->saved_interrupt = 1;
    if (!c->lost) {
        pn_proactor_disconnect(c->pro, NULL);
        wait_inactive(c);
    }
}

/* ---- links -------------------------------------------------------------- */

static int set_ctx(pn_link_t *l, int kind, void *ptr)
{
    link_ctx *x = malloc(sizeof *x);
    if (!x)
        return IK_E_NOMEM;
    x->kind = kind;
    x->ptr = ptr;
    pn_link_set_context(l, x);
    return 0;
}

/* The audience of an address: "<audience_base>/<address>". */
static char *audience_of(ik_sb_client *c, const char *address)
{
    char *a = NULL;
    if (asprintf(&a, "%s/%s", c->audience_base ? c->audience_base : "", address) < 0)
        return NULL;
    return a;
}

static int authorise(ik_sb_client *c, const char *address)
{
    if (c->cfg.auth != IK_SB_AUTH_CBS && c->cfg.auth != IK_SB_AUTH_SAS)
        return 0;
    char *aud = audience_of(c, address);
    if (!aud)
        return IK_E_NOMEM;
    int rc = put_token_sync(c, aud);
    free(aud);
    return rc;
}

/* Sets the Service Bus session filter on a receiver's source. */
static void set_session_filter(pn_link_t *l, const char *session_id)
{
    pn_data_t *f = pn_terminus_filter(pn_link_source(l));
    pn_data_put_map(f);
    pn_data_enter(f);
    pn_data_put_symbol(f, pn_bytes(strlen(SESSION_FILTER_KEY), SESSION_FILTER_KEY));
    if (session_id)
        pn_data_put_string(f, pn_bytes(strlen(session_id), session_id));
    else
        pn_data_put_null(f);
    pn_data_exit(f);
}

pn_link_t *ik_sb_client_attach(ik_sb_client *c, const ik_sb_link_opts *o)
{
    if (!ik_sb_client_connected(c)) {
        set_error(c, "not connected");
        return NULL;
    }
    if (authorise(c, o->address) != 0)
        return NULL;
    user_link *u = calloc(1, sizeof *u);
    char name[300];
    snprintf(name, sizeof name, "%s-%s-%lu", o->address, c->container, ++c->counter);
    pn_link_t *l = u ? (o->receiver ? pn_receiver(c->ssn, name) : pn_sender(c->ssn, name)) : NULL;
    if (!l || set_ctx(l, CTX_USER, u) != 0) {
        free(u);
        set_error(c, "out of memory");
        return NULL;
    }
    u->link = l;
    u->ops = *o->ops;
    u->arg = o->arg;
    u->next = c->links;
    c->links = u;
    if (o->receiver) {
        pn_terminus_set_address(pn_link_source(l), o->address);
        pn_terminus_set_address(pn_link_target(l), name);
        if (o->peek_lock || o->settle_first) {
            pn_link_set_snd_settle_mode(l, PN_SND_UNSETTLED);
            pn_link_set_rcv_settle_mode(l, o->peek_lock ? PN_RCV_SECOND : PN_RCV_FIRST);
        } else {
            pn_link_set_snd_settle_mode(l, PN_SND_SETTLED);
            pn_link_set_rcv_settle_mode(l, PN_RCV_FIRST);
        }
        if (o->session_id || o->next_session)
            set_session_filter(l, o->session_id);
    } else {
        pn_terminus_set_address(pn_link_target(l), o->address);
        pn_terminus_set_address(pn_link_source(l), name);
        pn_link_set_snd_settle_mode(l, PN_SND_UNSETTLED);
    }
    pn_link_open(l);
    c->dirty = 1;
    int rc = pump_until(c, &u->remote_open, "attaching a link");
    if (rc == 0 && !u->gone && !(pn_link_state(l) & PN_REMOTE_ACTIVE) &&
        pn_condition_is_set(pn_link_remote_condition(l)))
        u->gone = 1;
    if (rc != 0 || u->gone) {
        char why[400];
        if (u->gone && !c->error[0])
            set_error(c, "the broker refused the link to %s%s", o->address,
                      ik_sb_condition_text(pn_link_remote_condition(l), why, sizeof why));
        if (!c->lost)
            ik_sb_client_detach(c, l);
        return NULL;
    }
    /* Service Bus answers a refused attach with an attach that has no
     * terminus, then a detach carrying the reason: wait briefly for it. */
    if (!pn_terminus_get_address(pn_link_remote_source(l)) &&
        !pn_terminus_get_address(pn_link_remote_target(l))) {
        uint64_t until = ik_sb_now_ms() + 500;
        while (!u->gone && !c->lost && ik_sb_now_ms() < until)
            if (pump_once(c, 50) > 0)
                c->saved_interrupt = 1;
        if (u->gone || c->lost) {
            if (!c->lost)
                ik_sb_client_detach(c, l);
            return NULL;
        }
    }
    return l;
}

void ik_sb_client_detach(ik_sb_client *c, pn_link_t *link)
{
    for (user_link **pp = &c->links; *pp; pp = &(*pp)->next) {
        if ((*pp)->link == link) {
            user_link *u = *pp;
            *pp = u->next;
            free(u);
            break;
        }
    }
    if (c->lost)
        return;
    free_link_ctx(link);
    if (pn_link_state(link) & PN_LOCAL_ACTIVE)
        pn_link_close(link);
    c->dirty = 1;
}

uint64_t ik_sb_client_max_message_size(pn_link_t *link)
{
    return pn_link_remote_max_message_size(link);
}

/* ---- request / response ------------------------------------------------- */

static rr_pair *find_pair(ik_sb_client *c, const char *address)
{
    for (rr_pair *r = c->pairs; r; r = r->next)
        if (strcmp(r->address, address) == 0)
            return r;
    return NULL;
}

/* Attaches the pair for address (with a token first, except for $cbs). */
static rr_pair *open_pair(ik_sb_client *c, const char *address)
{
    rr_pair *r = find_pair(c, address);
    if (r && r->snd && r->rcv)
        return r;
    if (r) { /* half gone: start over */
        for (rr_pair **pp = &c->pairs; *pp; pp = &(*pp)->next)
            if (*pp == r) {
                *pp = r->next;
                break;
            }
        if (r->snd)
            ik_sb_client_detach(c, r->snd), free_link_ctx(r->snd);
        if (r->rcv)
            free_link_ctx(r->rcv), pn_link_close(r->rcv);
        free(r->address);
        free(r->reply_to);
        free(r);
    }
    if (strcmp(address, "$cbs") != 0 && authorise(c, address) != 0)
        return NULL;
    r = calloc(1, sizeof *r);
    if (!r || !(r->address = strdup(address)) ||
        asprintf(&r->reply_to, "%s-reply-%s-%lu", address, c->container, ++c->counter) < 0) {
        if (r)
            free(r->address);
        free(r);
        set_error(c, "out of memory");
        return NULL;
    }
    char name[300];
    snprintf(name, sizeof name, "%s-request-%s-%lu", address, c->container, ++c->counter);
    r->snd = pn_sender(c->ssn, name);
    r->rcv = pn_receiver(c->ssn, r->reply_to);
    if (set_ctx(r->snd, CTX_RR_SND, r) != 0 || set_ctx(r->rcv, CTX_RR_RCV, r) != 0) {
        set_error(c, "out of memory");
        return NULL; /* the links are closed with the connection */
    }
    pn_terminus_set_address(pn_link_target(r->snd), address);
    pn_terminus_set_address(pn_link_source(r->snd), name);
    pn_terminus_set_address(pn_link_source(r->rcv), address);
    pn_terminus_set_address(pn_link_target(r->rcv), r->reply_to);
    pn_link_open(r->snd);
    pn_link_open(r->rcv);
    pn_link_flow(r->rcv, 50);
    c->dirty = 1;
    r->next = c->pairs;
    c->pairs = r;
    return r;
}

/* Sends req as ik_sb_client_request does; keep (may be NULL) receives the
 * reply instead of the client freeing it. */
static int send_request(ik_sb_client *c, const char *address, pn_message_t *req, ik_sb_reply_fn cb,
                        void *arg, pn_message_t **keep)
{
    int rc = 0;
    rr_pair *r = NULL;
    pending *p = NULL;
    if (!ik_sb_client_connected(c)) {
        set_error(c, "not connected");
        rc = IK_E_IO;
    } else if (!(r = open_pair(c, address))) {
        rc = IK_E_IO;
    } else if (!(p = calloc(1, sizeof *p))) {
        set_error(c, "out of memory");
        rc = IK_E_NOMEM;
    }
    if (rc) {
        pn_message_free(req);
        return rc;
    }
    snprintf(p->id, sizeof p->id, "ik-%lu", ++c->counter);
    pn_message_set_id(req, (pn_msgid_t){.type = PN_STRING, .u.as_bytes = {strlen(p->id), p->id}});
    pn_message_set_reply_to(req, r->reply_to);
    pn_message_set_address(req, address);
    char tag[24];
    int tl = snprintf(tag, sizeof tag, "%lu", c->counter);
    pn_delivery(r->snd, pn_dtag(tag, (size_t)tl));
    pn_rwbytes_t buf = {0, NULL};
    ssize_t n = pn_message_send(req, r->snd, &buf);
    free(buf.start);
    pn_message_free(req);
    if (n < 0) {
        free(p);
        set_error(c, "cannot encode a request to %s", address);
        return IK_E_IO;
    }
    p->cb = cb;
    p->arg = arg;
    p->keep = keep;
    c->dirty = 1;
    p->deadline = ik_sb_now_ms() + c->cfg.op_timeout_ms;
    p->next = c->pendings;
    c->pendings = p;
    return 0;
}

int ik_sb_client_request(ik_sb_client *c, const char *address, pn_message_t *req, ik_sb_reply_fn cb,
                         void *arg)
{
    return send_request(c, address, req, cb, arg, NULL);
}

int ik_sb_client_call(ik_sb_client *c, const char *address, pn_message_t *req, pn_message_t **reply)
{
    call_wait w = {0};
    *reply = NULL;
    int rc = send_request(c, address, req, call_reply, &w, &w.reply);
    if (rc != 0)
        return rc;
    rc = pump_until(c, &w.done, address);
    if (rc != 0) {
        /* the request may still be answered: keep w's slot harmless */
        for (pending **pp = &c->pendings; *pp; pp = &(*pp)->next)
            if ((*pp)->arg == &w) {
                pending *p = *pp;
                *pp = p->next;
                free(p);
                break;
            }
        return rc;
    }
    if (!w.reply) {
        set_error(c, "%s: %s", address, w.error[0] ? w.error : "no reply");
        return IK_E_IO;
    }
    *reply = w.reply;
    return 0;
}

/* ---- reply helpers ------------------------------------------------------ */

int ik_sb_data_find(pn_data_t *d, const char *key)
{
    pn_data_rewind(d);
    if (!pn_data_next(d) || pn_data_type(d) != PN_MAP)
        return 0;
    size_t n = pn_data_get_map(d);
    pn_data_enter(d);
    for (size_t i = 0; i + 1 < n; i += 2) {
        pn_data_next(d);
        pn_bytes_t k = pn_data_type(d) == PN_STRING   ? pn_data_get_string(d)
                       : pn_data_type(d) == PN_SYMBOL ? pn_data_get_symbol(d)
                                                      : pn_bytes(0, NULL);
        pn_data_next(d);
        if (k.start && k.size == strlen(key) && memcmp(k.start, key, k.size) == 0)
            return 1;
    }
    return 0;
}

long ik_sb_reply_status(pn_message_t *reply, const char *key)
{
    pn_data_t *d = pn_message_properties(reply);
    if (!ik_sb_data_find(d, key))
        return -1;
    switch (pn_data_type(d)) {
    case PN_INT:
        return pn_data_get_int(d);
    case PN_LONG:
        return (long)pn_data_get_long(d);
    case PN_UINT:
        return (long)pn_data_get_uint(d);
    case PN_SHORT:
        return pn_data_get_short(d);
    case PN_ULONG:
        return (long)pn_data_get_ulong(d);
    default:
        return -1;
    }
}

void ik_sb_reply_text(pn_message_t *reply, const char *key, char *buf, size_t len)
{
    buf[0] = '\0';
    pn_data_t *d = pn_message_properties(reply);
    if (ik_sb_data_find(d, key) && pn_data_type(d) == PN_STRING) {
        pn_bytes_t b = pn_data_get_string(d);
        snprintf(buf, len, "%.*s", (int)b.size, b.start);
    }
}
