/* broker.c: the AMQP side of the emulator, on one qpid-proton proactor thread: accepts
 * connections (SASL ANONYMOUS/PLAIN, optional TLS), answers CBS put-token with real SAS checks,
 * stores what senders transfer (single messages and the SDK's batch envelope), delivers to
 * receivers (peek-lock and receive-and-delete, credit and drain), settles like the service and
 * routes $management requests to mgmt.c. */
#include "broker.h"

#include <errno.h>
#include <netinet/in.h>
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/listener.h>
#include <proton/netaddr.h>
#include <proton/sasl.h>
#include <proton/session.h>
#include <proton/ssl.h>
#include <proton/terminus.h>
#include <proton/transport.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "log.h"
#include "mgmt.h"
#include "persist.h"
#include "sas.h"
#include "saslplain.h"

#define TICK_MS        50
#define CREDIT_WINDOW  1000
#define MAX_BATCH      4096
#define CLOSE_GRACE_MS 1000 /* to answer our close before the socket is dropped */
/* Descriptors kept for everything but connections: stdio, proactor, listeners, HTTP (at most
 * SB_HTTP_MAX_CONNS per daemon), snapshots. Proton accepts up to the backlog ahead of us. */
#define FD_RESERVE  64
#define MAX_BACKLOG 64

enum link_kind { LK_CBS_IN, LK_CBS_OUT, LK_MGMT_IN, LK_MGMT_OUT, LK_SEND_IN, LK_RECV_OUT };
static const char *const kind_names[] = {"cbs-request",      "cbs-reply", "management-request",
                                         "management-reply", "sender",    "receiver"};

typedef struct sb_auth {
    char scope[SB_NAME_MAX + 40];
    int64_t expires_s;
    struct sb_auth *next;
} sb_auth;

typedef struct sb_link {
    enum link_kind kind;
    pn_link_t *pl;
    struct sb_conn *conn;
    sb_queue *q;
    int peek_lock;
    sb_session *session;
    struct sb_link *cnext; /* in the queue's consumer list */
    struct sb_link *lnext; /* in the connection's link list */
    uint64_t tag_seq;
} sb_link;

typedef struct sb_conn {
    pn_connection_t *pc;
    unsigned id;
    char peer[80];
    char host[256]; /* the host the client reached: its open frame's hostname, else our address */
    int port;       /* the local port it connected to */
    sb_auth *auth;
    int ns_auth; /* SASL PLAIN with a valid key: the whole namespace */
    sb_link *links;
    int wake_pending;
    int auth_check;      /* a token expired: re-check the links on the next wake */
    int64_t deadline_ms; /* handshake deadline (see conn_expire); 0 once authorised */
    int closing;         /* closed by us at the deadline: the socket goes at deadline_ms */
    int expire;          /* the deadline passed: act on the next wake */
    struct sb_conn *next;
} sb_conn;

static sb_conn *g_cur; /* the connection whose events are being handled, or NULL */
static pn_ssl_domain_t *g_ssl_server;

/* ---- helpers ---- */

static const char *link_addr(pn_link_t *l)
{
    const char *a = pn_link_is_sender(l) ? pn_terminus_get_address(pn_link_remote_source(l))
                                         : pn_terminus_get_address(pn_link_remote_target(l));
    return a ? a : "";
}

static int encode_message(sb_buf *buf, pn_message_t *m)
{
    if (buf->cap < 4096 && sb_buf_reserve(buf, 4096) < 0)
        return -1;
    for (;;) {
        size_t size = buf->cap;
        int rc = pn_message_encode(m, (char *)buf->data, &size);
        if (rc == 0) {
            buf->len = size;
            return 0;
        }
        if (rc != PN_OVERFLOW)
            return -1;
        buf->len = 0;
        if (sb_buf_reserve(buf, buf->cap * 2) < 0)
            return -1;
    }
}

/* Strip the host part of a path-like address ("sb://h:1/q1" -> "q1"). */
static void entity_path(const char *addr, char *out, size_t outlen)
{
    if (sb_sas_uri_path(addr, out, outlen) < 0)
        out[0] = 0;
}

static int conn_authorized(sb_conn *c, const char *path, int64_t now_s)
{
    if (c->ns_auth)
        return 1;
    for (sb_auth *a = c->auth; a; a = a->next)
        if (a->expires_s > now_s && sb_sas_covers(a->scope, path))
            return 1;
    return 0;
}

static void conn_wake(sb_conn *c)
{
    if (!c->wake_pending) {
        c->wake_pending = 1;
        pn_connection_wake(c->pc);
    }
}

/* ---- delivering to receivers ---- */

static void consumer_add(sb_link *l)
{
    l->cnext = l->q->consumers;
    l->q->consumers = l;
}

static void consumer_remove(sb_link *l)
{
    if (!l->q || l->kind != LK_RECV_OUT)
        return;
    sb_link **pp = (sb_link **)&l->q->consumers;
    while (*pp && *pp != l)
        pp = &(*pp)->cnext;
    if (*pp)
        *pp = l->cnext;
    if (l->session && l->session->owner == l)
        l->session->owner = NULL;
    l->session = NULL;
}

static void deliver(sb_broker *b, sb_link *l, sb_msg *m, int64_t now)
{
    sb_queue *q = l->q;
    uint8_t tag[16];
    if (l->peek_lock) {
        sb_queue_lock(q, m, now);
        sb_token_to_tag(m->lock_token, tag);
    } else {
        l->tag_seq++;
        memset(tag, 0, sizeof tag);
        memcpy(tag, &l->tag_seq, sizeof l->tag_seq);
    }
    if (sb_queue_encode(q, m, l->peek_lock, &b->buf) < 0) {
        SB_ERR("deliver: %s: out of memory encoding message %llu", q->name,
               (unsigned long long)m->seq);
        return;
    }
    pn_delivery_t *d = pn_delivery(l->pl, pn_dtag((const char *)tag, sizeof tag));
    pn_link_send(l->pl, (const char *)b->buf.data, b->buf.len);
    pn_link_advance(l->pl);
    if (!l->peek_lock) {
        pn_delivery_settle(d);
        sb_queue_remove(q, m);
    }
}

static void pump_link(sb_broker *b, sb_link *l)
{
    if (l->kind != LK_RECV_OUT || !l->q || !l->pl)
        return;
    if (pn_link_state(l->pl) & (PN_LOCAL_CLOSED | PN_REMOTE_CLOSED))
        return;
    int64_t now = sb_now_ms();
    int need_session = l->q->cfg->requires_session && !l->q->is_dlq;
    while (pn_link_credit(l->pl) > 0) {
        if (need_session && !l->session)
            break;
        sb_msg *m = sb_queue_next(l->q, l->session, now);
        if (!m)
            break;
        deliver(b, l, m, now);
    }
    if (pn_link_get_drain(l->pl) && pn_link_credit(l->pl) > 0)
        pn_link_drained(l->pl);
}

void sb_broker_pump_queue(sb_broker *b, sb_queue *q)
{
    for (sb_link *l = q->consumers; l; l = l->cnext) {
        if (l->conn == g_cur)
            pump_link(b, l);
        else
            conn_wake(l->conn);
    }
}

static void pump_conn(sb_broker *b, sb_conn *c)
{
    for (sb_link *l = c->links; l; l = l->lnext)
        if (l->kind == LK_RECV_OUT)
            pump_link(b, l);
}

/* ---- request/response links ---- */

static sb_link *find_reply_link(sb_conn *c, enum link_kind kind, const char *reply_to)
{
    sb_link *byname = NULL;
    for (sb_link *l = c->links; l; l = l->lnext) {
        if (l->kind != kind || !l->pl)
            continue;
        const char *t = pn_terminus_get_address(pn_link_remote_target(l->pl));
        if (t && strcmp(t, reply_to) == 0)
            return l;
        if (!byname && strcmp(pn_link_name(l->pl), reply_to) == 0)
            byname = l;
    }
    return byname;
}

static void send_reply(sb_broker *b, sb_conn *c, enum link_kind kind, pn_message_t *req,
                       pn_message_t *resp)
{
    const char *reply_to = pn_message_get_reply_to(req);
    if (!reply_to) {
        SB_WARN("conn %u: %s request without reply-to; no answer sent", c->id,
                kind == LK_CBS_OUT ? "CBS" : "management");
        return;
    }
    sb_link *l = find_reply_link(c, kind, reply_to);
    if (!l) {
        SB_WARN("conn %u: no reply link for reply-to '%s'", c->id, reply_to);
        return;
    }
    pn_message_set_correlation_id(resp, pn_message_get_id(req));
    pn_message_set_address(resp, reply_to);
    if (encode_message(&b->buf, resp) < 0) {
        SB_ERR("conn %u: cannot encode a reply", c->id);
        return;
    }
    l->tag_seq++;
    pn_delivery_t *d = pn_delivery(l->pl, pn_dtag((const char *)&l->tag_seq, sizeof l->tag_seq));
    pn_link_send(l->pl, (const char *)b->buf.data, b->buf.len);
    pn_link_advance(l->pl);
    pn_delivery_settle(d);
}

static void put_status(pn_message_t *resp, const char *code_key, int code, const char *desc_key,
                       const char *desc)
{
    pn_data_t *p = pn_message_properties(resp);
    pn_data_clear(p);
    pn_data_put_map(p);
    pn_data_enter(p);
    pn_data_put_string(p, pn_bytes(strlen(code_key), code_key));
    pn_data_put_int(p, code);
    pn_data_put_string(p, pn_bytes(strlen(desc_key), desc_key));
    pn_data_put_string(p, pn_bytes(strlen(desc), desc));
    pn_data_exit(p);
}

/* The connection is authorised (SASL PLAIN, or a put-token accepted): no handshake deadline. */
static void conn_handshake_done(sb_conn *c)
{
    if (!c->closing)
        c->deadline_ms = 0;
}

static void handle_cbs(sb_broker *b, sb_conn *c, pn_message_t *req)
{
    pn_message_t *resp = b->resp;
    pn_message_clear(resp);
    char op[64] = "", name[1024] = "";
    pn_data_t *props = pn_message_properties(req);
    sb_props_get_str(props, "operation", op, sizeof op);
    sb_props_get_str(props, "name", name, sizeof name);
    if (strcmp(op, "put-token") != 0) {
        SB_WARN("conn %u: CBS operation '%.60s' not supported", c->id, op);
        put_status(resp, "status-code", 400, "status-description", "unsupported operation");
        send_reply(b, c, LK_CBS_OUT, req, resp);
        return;
    }
    pn_data_t *body = pn_message_body(req);
    pn_data_rewind(body);
    char token[SB_SAS_MAX_TOKEN + 1];
    token[0] = 0;
    if (pn_data_next(body) && pn_data_type(body) == PN_STRING) {
        pn_bytes_t t = pn_data_get_string(body);
        if (t.size < sizeof token) {
            memcpy(token, t.start, t.size);
            token[t.size] = 0;
        }
    }
    char err[256] = "";
    sb_sas_token t;
    int64_t now_s = sb_now_ms() / 1000;
    int rc = sb_sas_validate(b->cfg, token, now_s, &t, err, sizeof err);
    char scope[SB_NAME_MAX + 40], aud[SB_NAME_MAX + 40];
    if (rc == 0 &&
        (!sb_sas_names_endpoint(t.sr, c->host, c->port, err, sizeof err) ||
         (strstr(name, "://") && !sb_sas_names_endpoint(name, c->host, c->port, err, sizeof err))))
        rc = SB_SAS_BAD_SIGNATURE;
    if (rc == 0) {
        entity_path(t.sr, scope, sizeof scope);
        entity_path(name, aud, sizeof aud);
        if (!sb_sas_covers(scope, aud)) {
            snprintf(err, sizeof err, "token scope '%.100s' does not cover audience '%.100s'",
                     scope, aud);
            rc = SB_SAS_BAD_SIGNATURE;
        }
    }
    if (rc != 0) {
        SB_WARN("conn %u: CBS put-token for '%.200s' refused (401): %s", c->id, name, err);
        put_status(resp, "status-code", 401, "status-description", err);
        memset(token, 0, sizeof token);
        send_reply(b, c, LK_CBS_OUT, req, resp);
        return;
    }
    memset(token, 0, sizeof token);
    sb_auth *a = NULL;
    for (sb_auth *x = c->auth; x; x = x->next)
        if (strcasecmp(x->scope, scope) == 0)
            a = x;
    if (!a) {
        a = calloc(1, sizeof *a);
        if (!a) {
            put_status(resp, "status-code", 500, "status-description", "out of memory");
            send_reply(b, c, LK_CBS_OUT, req, resp);
            return;
        }
        snprintf(a->scope, sizeof a->scope, "%s", scope);
        a->next = c->auth;
        c->auth = a;
    }
    if (t.se > a->expires_s)
        a->expires_s = t.se;
    conn_handshake_done(c);
    SB_INFO("conn %u: CBS put-token accepted for '%.200s' (key '%.64s')", c->id, name, t.skn);
    put_status(resp, "status-code", 200, "status-description", "OK");
    send_reply(b, c, LK_CBS_OUT, req, resp);
}

static void handle_mgmt(sb_broker *b, sb_conn *c, sb_link *l, pn_message_t *req)
{
    pn_message_t *resp = b->resp;
    pn_message_clear(resp);
    sb_mgmt_handle(b, l->q, req, resp);
    send_reply(b, c, LK_MGMT_OUT, req, resp);
}

/* ---- incoming transfers ---- */

static void reject(pn_delivery_t *d, const char *cond, const char *desc)
{
    pn_condition_t *c = pn_disposition_condition(pn_delivery_local(d));
    pn_condition_set_name(c, cond);
    pn_condition_set_description(c, desc);
    pn_delivery_update(d, PN_REJECTED);
    pn_delivery_settle(d);
}

static const char *enq_condition(int rc)
{
    switch (rc) {
    case SB_ENQ_FULL:
        return "amqp:resource-limit-exceeded";
    case SB_ENQ_NOT_ALLOWED:
    case SB_ENQ_NO_SESSION:
        return "amqp:not-allowed";
    case SB_ENQ_NOMEM:
        return "amqp:internal-error";
    default:
        return "amqp:decode-error";
    }
}

/* A batch is all or nothing: checks the queue's size limit and, on a session queue, that every
 * message has a session id, before anything is stored. */
static int precheck_batch(sb_queue *q, const uint8_t **starts, const size_t *lens, int nb,
                          char *err, size_t errlen)
{
    size_t total = 0;
    for (int i = 0; i < nb; i++)
        total += lens[i];
    if (atomic_load_explicit(&q->n_bytes, memory_order_relaxed) + (long)total >
        q->cfg->max_size_bytes) {
        snprintf(err, errlen, "queue %.200s is full (max %lld bytes)", q->name,
                 (long long)q->cfg->max_size_bytes);
        return SB_ENQ_FULL;
    }
    if (!q->cfg->requires_session)
        return 0;
    for (int i = 0; i < nb; i++) {
        sb_msg_parts p;
        int rc = amqp_parse_message(starts[i], lens[i], &p, err, errlen);
        int has = p.has_group_id;
        sb_msg_parts_free(&p);
        if (rc < 0)
            return SB_ENQ_BAD;
        if (!has) {
            snprintf(err, errlen, "Session ID is null: queue %.200s requires sessions", q->name);
            return SB_ENQ_NO_SESSION;
        }
    }
    return 0;
}

static void on_transfer(sb_broker *b, sb_conn *c, sb_link *l, pn_delivery_t *d)
{
    pn_link_t *pl = l->pl;
    if (pn_delivery_aborted(d)) {
        pn_delivery_settle(d);
        return;
    }
    if (!pn_delivery_readable(d) || pn_delivery_partial(d))
        return;
    size_t n = pn_delivery_pending(d);
    sb_buf *in = &b->buf;
    in->len = 0;
    if (sb_buf_reserve(in, n + 1) < 0) {
        pn_link_advance(pl);
        reject(d, "amqp:internal-error", "out of memory");
        return;
    }
    ssize_t got = pn_link_recv(pl, (char *)in->data, n);
    pn_link_advance(pl);
    if (got < 0)
        got = 0;
    in->len = (size_t)got;
    if (l->kind == LK_CBS_IN || l->kind == LK_MGMT_IN) {
        int rc = pn_message_decode(b->req, (const char *)in->data, in->len);
        if (rc != 0) {
            SB_WARN("conn %u: undecodable %s request: %s", c->id, kind_names[l->kind], pn_code(rc));
            reject(d, "amqp:decode-error", "cannot decode the request message");
            return;
        }
        pn_delivery_update(d, PN_ACCEPTED);
        pn_delivery_settle(d);
        if (l->kind == LK_CBS_IN)
            handle_cbs(b, c, b->req);
        else
            handle_mgmt(b, c, l, b->req);
    } else if (l->kind == LK_SEND_IN) {
        if ((int64_t)in->len > b->cfg->max_message_size) {
            reject(d, "amqp:link:message-size-exceeded", "message larger than max-message-size");
        } else {
            /* the batch's data sections point into in->data (b->buf): enqueue copies them,
             * and nothing reuses b->buf until the pump below */
            const uint8_t *starts_s[MAX_BATCH], **starts = starts_s;
            size_t lens_s[MAX_BATCH], *lens = lens_s;
            int nb = amqp_batch_split(in->data, in->len, starts, lens, MAX_BATCH);
            if (nb > MAX_BATCH) { /* a big batch of small messages */
                starts = malloc((size_t)nb * sizeof *starts);
                lens = malloc((size_t)nb * sizeof *lens);
                if (!starts || !lens || amqp_batch_split(in->data, in->len, starts, lens, nb) != nb)
                    nb = -2;
            }
            int64_t now = sb_now_ms();
            char err[256] = "";
            int rc = 0;
            if (nb == -2) {
                rc = SB_ENQ_NOMEM;
                snprintf(err, sizeof err, "out of memory splitting a batch");
            } else if (nb < 0) {
                rc = SB_ENQ_BAD;
                snprintf(err, sizeof err, "malformed transfer");
            } else if (nb == 0) {
                rc = sb_queue_enqueue(l->q, in->data, in->len, now, 0, NULL, err, sizeof err);
            } else if ((rc = precheck_batch(l->q, starts, lens, nb, err, sizeof err)) < 0) {
                /* refused as a whole, like the service */
            } else {
                for (int i = 0; i < nb && rc >= 0; i++)
                    rc = sb_queue_enqueue(l->q, starts[i], lens[i], now, 0, NULL, err, sizeof err);
            }
            if (starts != starts_s)
                free((void *)starts);
            if (lens != lens_s)
                free(lens);
            if (rc < 0) {
                SB_WARN("conn %u: send to %s refused: %s", c->id, l->q->name, err);
                if (!pn_delivery_settled(d))
                    reject(d, enq_condition(rc), err);
                else
                    pn_delivery_settle(d);
            } else {
                pn_delivery_update(d, PN_ACCEPTED);
                pn_delivery_settle(d);
            }
            sb_broker_pump_queue(b, l->q);
        }
    } else {
        pn_delivery_settle(d);
    }
    int credit = pn_link_credit(pl);
    if (credit < CREDIT_WINDOW / 2)
        pn_link_flow(pl, CREDIT_WINDOW - credit);
}

/* ---- settlement of our deliveries ---- */

/* Encodes a pn_data map's entries into raw (without the map header). */
static int map_entries(pn_data_t *d, sb_buf *out, uint32_t *count)
{
    *count = 0;
    out->len = 0;
    if (!d)
        return 0;
    pn_data_rewind(d);
    if (!pn_data_next(d) || pn_data_type(d) != PN_MAP)
        return 0;
    char tmp[16384];
    ssize_t n = pn_data_encode(d, tmp, sizeof tmp);
    if (n < 0)
        return -1;
    size_t pos = 0, end;
    if (amqp_compound((const uint8_t *)tmp, (size_t)n, &pos, count, &end) < 0)
        return -1;
    return sb_buf_put(out, tmp + pos, end - pos);
}

static void settle_reply(pn_delivery_t *d, int ok, const char *cond, const char *desc)
{
    if (ok) {
        pn_delivery_update(d, PN_ACCEPTED);
    } else {
        pn_condition_t *c = pn_disposition_condition(pn_delivery_local(d));
        pn_condition_set_name(c, cond);
        pn_condition_set_description(c, desc);
        pn_delivery_update(d, PN_REJECTED);
    }
    pn_delivery_settle(d);
}

static void on_disposition(sb_broker *b, sb_conn *c, sb_link *l, pn_delivery_t *d)
{
    if (!pn_delivery_updated(d) && !pn_delivery_settled(d))
        return;
    uint64_t state = pn_delivery_remote_state(d);
    if (!l->peek_lock || !l->q) {
        pn_delivery_settle(d);
        return;
    }
    if (state == 0 && !pn_delivery_settled(d))
        return;
    pn_delivery_tag_t tag = pn_delivery_tag(d);
    sb_queue *q = l->q;
    int64_t now = sb_now_ms();
    sb_msg *m = NULL;
    if (tag.size == 16) {
        uint8_t token[16];
        sb_token_to_tag((const uint8_t *)tag.start, token);
        m = sb_queue_find_lock(q, token, now);
    }
    if (!m) {
        SB_INFO("conn %u: settlement on %s: lock lost (expired or unknown)", c->id, q->name);
        settle_reply(d, 0, "com.microsoft:message-lock-lost",
                     "The lock supplied is invalid. Either the lock expired, or the message has "
                     "already been removed from the queue.");
        return;
    }
    sb_buf mods = {0};
    uint32_t nmods = 0;
    pn_disposition_t *rd = pn_delivery_remote(d);
    switch (state) {
    case PN_ACCEPTED:
        sb_queue_remove(q, m);
        settle_reply(d, 1, NULL, NULL);
        break;
    case PN_MODIFIED:
        if (map_entries(pn_disposition_annotations(rd), &mods, &nmods) < 0)
            nmods = 0;
        if (pn_disposition_is_undeliverable(rd))
            sb_queue_defer(q, m, mods.data, mods.len, nmods);
        else
            sb_queue_abandon(q, m, now, mods.data, mods.len, nmods);
        settle_reply(d, 1, NULL, NULL);
        break;
    case PN_REJECTED: {
        if (q->is_dlq) {
            settle_reply(d, 0, "amqp:not-allowed",
                         "cannot dead-letter a message that is in a dead-letter queue");
            break;
        }
        pn_condition_t *cond = pn_disposition_condition(rd);
        if (map_entries(pn_condition_info(cond), &mods, &nmods) < 0)
            nmods = 0;
        if (sb_queue_deadletter(q, m, now, NULL, NULL, mods.data, mods.len, nmods) < 0) {
            settle_reply(d, 0, "amqp:internal-error", "cannot dead-letter the message");
            break;
        }
        settle_reply(d, 1, NULL, NULL);
        sb_broker_pump_queue(b, q->dlq);
        break;
    }
    case PN_RELEASED:
    default:
        sb_queue_abandon(q, m, now, NULL, 0, 0);
        settle_reply(d, 1, NULL, NULL);
        break;
    }
    sb_buf_free(&mods);
    sb_broker_pump_queue(b, q);
    if (q->dlq)
        sb_broker_pump_queue(b, q->dlq);
}

/* ---- links ---- */

static void link_fail(pn_link_t *pl, const char *cond, const char *desc)
{
    pn_link_open(pl);
    pn_condition_t *c = pn_link_condition(pl);
    pn_condition_set_name(c, cond);
    pn_condition_set_description(c, desc);
    pn_link_close(pl);
}

static int64_t dotnet_ticks(int64_t ms)
{
    return ms * 10000 + 621355968000000000LL;
}

/* Reads the session filter: 1 with id set (maybe ""), 2 for "next available", 0 none. */
static int session_filter(pn_link_t *pl, char *id, size_t idlen)
{
    pn_data_t *f = pn_terminus_filter(pn_link_remote_source(pl));
    pn_data_rewind(f);
    if (!pn_data_next(f) || pn_data_type(f) != PN_MAP)
        return 0;
    pn_data_enter(f);
    int found = 0;
    while (pn_data_next(f)) {
        pn_bytes_t k = {0, NULL};
        if (pn_data_type(f) == PN_SYMBOL)
            k = pn_data_get_symbol(f);
        else if (pn_data_type(f) == PN_STRING)
            k = pn_data_get_string(f);
        if (!pn_data_next(f))
            break;
        if (k.size == 28 && memcmp(k.start, "com.microsoft:session-filter", 28) == 0) {
            if (pn_data_type(f) == PN_DESCRIBED) {
                pn_data_enter(f);
                pn_data_next(f);
                pn_data_next(f);
            }
            if (pn_data_type(f) == PN_STRING) {
                pn_bytes_t v = pn_data_get_string(f);
                if (v.size >= idlen)
                    return -1;
                memcpy(id, v.start, v.size);
                id[v.size] = 0;
                found = 1;
            } else {
                found = 2;
            }
            break;
        }
    }
    return found;
}

/* Refusal of a link to an entity: not found, no token on $cbs for it, or
 * (send_dlq) a sender to a dead-letter queue. NULL when allowed. */
static const char *entity_refusal(sb_conn *c, sb_queue *q, const char *ent, const char *path,
                                  int send_dlq, int64_t now, char *err, size_t errlen)
{
    if (!q) {
        snprintf(err, errlen, "The messaging entity '%.200s' could not be found.", ent);
        return "amqp:not-found";
    }
    if (!conn_authorized(c, path, now / 1000)) {
        snprintf(err, errlen, "Unauthorized access to '%.200s': put a token on $cbs first", path);
        return "amqp:unauthorized-access";
    }
    if (send_dlq) {
        snprintf(err, errlen, "cannot send to the dead-letter queue '%.200s'", path);
        return "amqp:not-allowed";
    }
    return NULL;
}

/* Sets l->kind and l->q from the link's address path ($cbs, an entity's
 * $management, or the entity itself). The AMQP error condition (err filled)
 * when the link must be refused, else NULL. */
static const char *link_classify(sb_broker *b, sb_conn *c, sb_link *l, const char *path,
                                 int is_sender, int64_t now, char *err, size_t errlen)
{
    size_t plen = strlen(path);
    static const char mg[] = "$management";
    int is_mgmt = plen >= sizeof mg - 1 && strcasecmp(path + plen - (sizeof mg - 1), mg) == 0 &&
                  (plen == sizeof mg - 1 || path[plen - sizeof mg] == '/');
    if (strcmp(path, "$cbs") == 0) {
        l->kind = is_sender ? LK_CBS_OUT : LK_CBS_IN;
        return NULL;
    }
    if (is_mgmt) {
        l->kind = is_sender ? LK_MGMT_OUT : LK_MGMT_IN;
        char ent[SB_NAME_MAX + 40];
        snprintf(ent, sizeof ent, "%.*s", (int)(plen > sizeof mg ? plen - sizeof mg : 0), path);
        l->q = sb_store_find(b->store, ent);
        return entity_refusal(c, l->q, ent, path, 0, now, err, errlen);
    }
    l->kind = is_sender ? LK_RECV_OUT : LK_SEND_IN;
    l->q = sb_store_find(b->store, path);
    return entity_refusal(c, l->q, path, path, l->q && l->kind == LK_SEND_IN && l->q->is_dlq, now,
                          err, errlen);
}

/* Tells the client which session it locked and until when: the source's
 * session filter and the link's locked-until property, as the service does. */
static void session_terminus(pn_link_t *pl, const sb_session *s)
{
    pn_data_t *f = pn_terminus_filter(pn_link_source(pl));
    pn_data_clear(f);
    pn_data_put_map(f);
    pn_data_enter(f);
    pn_data_put_symbol(f, pn_bytes(28, "com.microsoft:session-filter"));
    pn_data_put_string(f, pn_bytes(strlen(s->id), s->id));
    pn_data_exit(f);
    pn_data_t *p = pn_link_properties(pl);
    pn_data_clear(p);
    pn_data_put_map(p);
    pn_data_enter(p);
    pn_data_put_symbol(p, pn_bytes(30, "com.microsoft:locked-until-utc"));
    pn_data_put_long(p, dotnet_ticks(s->locked_until_ms));
    pn_data_exit(p);
}

/* A receiver on a queue: its settle mode, and on a sessionful queue the
 * session it asked for (or the next free one) locked to it. The AMQP error
 * condition (err filled) when refused, else NULL. */
static const char *receiver_bind(sb_link *l, pn_link_t *pl, const char *path, int64_t now,
                                 char *err, size_t errlen)
{
    l->peek_lock = pn_link_remote_snd_settle_mode(pl) != PN_SND_SETTLED;
    char sid[129];
    int sf = session_filter(pl, sid, sizeof sid);
    int needs = l->q->cfg->requires_session && !l->q->is_dlq;
    if (sf < 0) {
        snprintf(err, errlen, "session id too long");
        return "amqp:invalid-field";
    }
    if (needs && sf == 0) {
        snprintf(err, errlen,
                 "It is not possible for an entity that requires sessions to create a "
                 "non-sessionful message receiver (%.200s)",
                 path);
        return "amqp:not-allowed";
    }
    if (!needs && sf) {
        snprintf(err, errlen, "the entity '%.200s' does not require sessions", path);
        return "amqp:not-allowed";
    }
    if (!needs)
        return NULL;
    sb_session *s = sf == 1 ? sb_queue_session(l->q, sid, 1) : sb_queue_free_session(l->q, now);
    if (sf == 2 && !s) {
        snprintf(err, errlen, "no unlocked session with messages in '%.200s'", path);
        return "com.microsoft:timeout";
    }
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return "amqp:internal-error";
    }
    if (s->owner) {
        snprintf(err, errlen, "the session '%.128s' is locked by another receiver", s->id);
        return "com.microsoft:session-cannot-be-locked";
    }
    s->owner = l;
    s->locked_until_ms = now + l->q->cfg->lock_duration_ms;
    l->session = s;
    session_terminus(pl, s);
    return NULL;
}

static void link_open(sb_broker *b, sb_conn *c, pn_link_t *pl)
{
    const char *addr = link_addr(pl);
    char path[SB_NAME_MAX + 40];
    entity_path(addr, path, sizeof path);
    pn_terminus_copy(pn_link_source(pl), pn_link_remote_source(pl));
    pn_terminus_copy(pn_link_target(pl), pn_link_remote_target(pl));
    pn_link_set_snd_settle_mode(pl, pn_link_remote_snd_settle_mode(pl));
    pn_link_set_rcv_settle_mode(pl, pn_link_remote_rcv_settle_mode(pl));

    sb_link *l = calloc(1, sizeof *l);
    if (!l) {
        link_fail(pl, "amqp:internal-error", "out of memory");
        return;
    }
    l->pl = pl;
    l->conn = c;
    int is_sender = pn_link_is_sender(pl); /* we send: the client receives */
    int64_t now = sb_now_ms();
    char err[512] = "";
    const char *err_cond = link_classify(b, c, l, path, is_sender, now, err, sizeof err);
    if (!err_cond && l->kind == LK_RECV_OUT)
        err_cond = receiver_bind(l, pl, path, now, err, sizeof err);
    if (err_cond) {
        SB_WARN("conn %u: attach %s '%.200s' (link '%.100s') refused: %s: %s", c->id,
                kind_names[l->kind], addr, pn_link_name(pl), err_cond, err);
        /* like the service: attach with a null terminus, then detach with the error */
        pn_terminus_set_type(is_sender ? pn_link_source(pl) : pn_link_target(pl), PN_UNSPECIFIED);
        link_fail(pl, err_cond, err);
        free(l);
        return;
    }
    l->lnext = c->links;
    c->links = l;
    pn_link_set_context(pl, l);
    if (!is_sender)
        pn_link_set_max_message_size(pl, (uint64_t)b->cfg->max_message_size);
    pn_link_open(pl);
    if (!is_sender)
        pn_link_flow(pl, l->kind == LK_SEND_IN ? CREDIT_WINDOW : 100);
    SB_INFO("conn %u: attach %s '%s' (link '%.100s'%s%s%s)", c->id, kind_names[l->kind], addr,
            pn_link_name(pl),
            l->kind == LK_RECV_OUT ? (l->peek_lock ? ", peek-lock" : ", receive-and-delete") : "",
            l->session ? ", session " : "", l->session ? l->session->id : "");
    if (l->kind == LK_RECV_OUT)
        consumer_add(l);
}

static void link_release(sb_conn *c, sb_link *l, const char *why)
{
    sb_link **pp = &c->links;
    while (*pp && *pp != l)
        pp = &(*pp)->lnext;
    if (*pp)
        *pp = l->lnext;
    consumer_remove(l);
    if (l->pl) {
        SB_INFO("conn %u: detach %s '%s' (link '%.100s')%s", c->id, kind_names[l->kind],
                link_addr(l->pl), pn_link_name(l->pl), why);
        pn_link_set_context(l->pl, NULL);
    }
    free(l);
}

/* ---- connections ---- */

static void conn_free(sb_broker *b, sb_conn *c)
{
    while (c->links)
        link_release(c, c->links, " (connection closed)");
    sb_auth *a = c->auth;
    while (a) {
        sb_auth *n = a->next;
        free(a);
        a = n;
    }
    sb_conn **pp = &b->conns;
    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = c->next;
        b->nconns--;
    }
    if (c->pc)
        pn_connection_set_context(c->pc, NULL);
    if (g_cur == c)
        g_cur = NULL;
    free(c);
}

static void accept_conn(sb_broker *b, pn_listener_t *ls)
{
    sb_conn *c = calloc(1, sizeof *c);
    pn_connection_t *pc = pn_connection();
    pn_transport_t *t = pn_transport();
    if (!c || !pc || !t) {
        SB_ERR("accept: out of memory");
        free(c);
        if (t)
            pn_transport_free(t);
        if (pc)
            pn_connection_free(pc);
        pn_listener_accept2(ls, NULL, NULL);
        return;
    }
    c->pc = pc;
    c->id = ++b->next_conn_id;
    c->deadline_ms = sb_now_ms() + b->cfg->handshake_timeout_ms;
    pn_connection_set_context(pc, c);
    pn_transport_set_server(t);
    pn_transport_require_auth(t, false);
    if (pn_listener_get_context(ls) == (void *)1 && g_ssl_server)
        pn_ssl_init(pn_ssl(t), g_ssl_server, NULL);
    sb_sasl_setup(t, b->cfg);
    c->next = b->conns;
    b->conns = c;
    b->nconns++;
    pn_listener_accept2(ls, pc, t);
}

/* The address and port the client connected to: the endpoint its tokens must name until its open
 * frame says which host name it used. */
static void conn_local_endpoint(sb_conn *c, pn_transport_t *t)
{
    const pn_netaddr_t *la = pn_transport_local_addr(t);
    char host[INET6_ADDRSTRLEN + 2], port[16];
    int p;
    if (la && pn_netaddr_host_port(la, host, sizeof host, port, sizeof port) == 0) {
        if (sb_host_parse(host, strlen(host), c->host, sizeof c->host, &p) < 0)
            snprintf(c->host, sizeof c->host, "%s", host);
        c->port = atoi(port);
    }
}

/* The open frame's hostname names the namespace the client means, as on the service: tokens
 * must name that host from now on. A hostname that is not a host name keeps the local address. */
static void conn_remote_host(sb_conn *c, const char *hostname)
{
    char host[sizeof c->host];
    int port;
    if (!hostname || !hostname[0])
        return;
    if (sb_host_parse(hostname, strlen(hostname), host, sizeof host, &port) < 0) {
        SB_WARN("conn %u: open hostname '%.100s' is not a host name; tokens must name '%s'", c->id,
                hostname, c->host);
        return;
    }
    memcpy(c->host, host, sizeof host);
}

/* Closes both directions of t at once, discarding unsent output; proton then frees the
 * connection (PN_TRANSPORT_CLOSED). why becomes the transport's condition, unless it has one. */
static void drop_transport(pn_transport_t *t, const char *why)
{
    if (!t)
        return;
    pn_condition_t *cond = pn_transport_condition(t);
    if (!pn_condition_is_set(cond)) {
        pn_condition_set_name(cond, "amqp:connection:forced");
        pn_condition_set_description(cond, why);
    }
    if (!pn_transport_tail_closed(t))
        pn_transport_close_tail(t);
    pn_transport_close_head(t);
}

/* The handshake deadline passed (handshake_timeout_ms after connecting, as the service's 20 s to
 * put a token): a client that opened AMQP gets a close with amqp:unauthorized-access and
 * CLOSE_GRACE_MS to answer it; one that did not get as far, or did not answer, loses its socket. */
static void conn_expire(sb_broker *b, sb_conn *c)
{
    c->expire = 0;
    pn_connection_t *pc = c->pc;
    long long ms = (long long)b->cfg->handshake_timeout_ms;
    char why[160];
    if (!c->closing && (pn_connection_state(pc) & PN_REMOTE_ACTIVE)) {
        snprintf(why, sizeof why, "no put-token accepted within %lld ms of connecting", ms);
        SB_WARN("conn %u: %s; closing it", c->id, why);
        pn_condition_t *cond = pn_connection_condition(pc);
        pn_condition_set_name(cond, "amqp:unauthorized-access");
        pn_condition_set_description(cond, why);
        pn_connection_close(pc);
        c->closing = 1;
        c->deadline_ms = sb_now_ms() + CLOSE_GRACE_MS;
        return;
    }
    if (c->closing)
        snprintf(why, sizeof why, "no answer to the close within %d ms", CLOSE_GRACE_MS);
    else
        snprintf(why, sizeof why, "no SASL and AMQP open within %lld ms of connecting", ms);
    SB_WARN("conn %u: %s; dropping it", c->id, why);
    c->deadline_ms = 0;
    drop_transport(pn_connection_transport(pc), why);
}

/* The peer closed its side of the socket. After its AMQP close that is the normal end. Before
 * it (a half-sent frame, or a client that gave up) proton 0.37 keeps waiting for the rest of
 * the frame and never closes the socket, which would stay in CLOSE-WAIT: close it here. */
static void conn_tail_closed(sb_conn *c, pn_transport_t *t)
{
    if (pn_connection_state(c->pc) & PN_REMOTE_CLOSED)
        return;
    if (!pn_condition_is_set(pn_transport_condition(t)))
        SB_INFO("conn %u: the peer closed the socket without an AMQP close", c->id);
    drop_transport(t, "the peer closed the socket without an AMQP close");
}

static sb_conn *ctx_conn(pn_event_t *e)
{
    pn_connection_t *pc = pn_event_connection(e);
    return pc ? pn_connection_get_context(pc) : NULL;
}

/* Drops the links whose every covering token has expired, as the service does, and forgets
 * the expired tokens. Runs in the connection's own batch. */
static void conn_check_auth(sb_conn *c)
{
    int64_t now_s = sb_now_ms() / 1000;
    c->auth_check = 0;
    sb_link *l = c->links;
    while (l) {
        sb_link *n = l->lnext;
        if (l->q && l->pl) {
            char path[SB_NAME_MAX + 40];
            entity_path(link_addr(l->pl), path, sizeof path);
            if (!conn_authorized(c, path, now_s)) {
                pn_link_t *pl = l->pl;
                link_release(c, l, " (token expired)");
                pn_condition_t *cond = pn_link_condition(pl);
                pn_condition_set_name(cond, "amqp:unauthorized-access");
                pn_condition_set_description(cond, "The token for this entity has expired.");
                pn_link_close(pl);
            }
        }
        l = n;
    }
    sb_auth **pp = &c->auth;
    while (*pp) {
        if ((*pp)->expires_s <= now_s) {
            sb_auth *x = *pp;
            *pp = x->next;
            free(x);
        } else {
            pp = &(*pp)->next;
        }
    }
}

static void tick(sb_broker *b)
{
    int64_t now = sb_now_ms();
    static int64_t last_auth_ms, last_save_ms;
    if (b->cfg->persist_file[0] && b->cfg->persist_interval_ms > 0 &&
        now - last_save_ms >= b->cfg->persist_interval_ms) {
        char err[300];
        if (last_save_ms && sb_persist_save(b->store, b->cfg->persist_file, err, sizeof err) < 0)
            SB_ERR("persist: %s", err);
        last_save_ms = now;
    }
    for (sb_conn *c = b->conns; c; c = c->next)
        if (c->deadline_ms && now >= c->deadline_ms && !c->expire) {
            c->expire = 1;
            conn_wake(c);
        }
    if (now - last_auth_ms >= 1000) {
        last_auth_ms = now;
        for (sb_conn *c = b->conns; c; c = c->next)
            for (sb_auth *a = c->auth; a; a = a->next)
                if (a->expires_s <= now / 1000) {
                    c->auth_check = 1;
                    conn_wake(c);
                    break;
                }
    }
    for (size_t i = 0; i < b->store->nqueues; i++) {
        sb_queue *q = b->store->queues[i];
        uint64_t dlq_before = q->dlq->next_seq;
        if (sb_queue_tick(q, now))
            sb_broker_pump_queue(b, q);
        if (sb_queue_tick(q->dlq, now) || q->dlq->next_seq != dlq_before)
            sb_broker_pump_queue(b, q->dlq);
    }
}

static void on_ready_check(sb_broker *b)
{
    if (b->listeners_pending == 0 && b->on_ready)
        b->on_ready(b, b->on_ready_arg);
}

/* Starts an orderly stop: the listeners and every connection are closed by the proactor, and
 * sb_broker_run returns on PN_PROACTOR_INACTIVE, once all of them are freed, so pn_proactor_free
 * has nothing left to force (it asserts on a listener that hit the fd limit). */
static void begin_shutdown(sb_broker *b)
{
    if (b->stopping)
        return;
    b->stopping = 1;
    if (b->refused_unlogged)
        SB_WARN("refused %d more connection(s) at the connection limit", b->refused_unlogged);
    SB_INFO("closing the listeners and %d connection(s)", b->nconns);
    pn_proactor_cancel_timeout(b->proactor);
    pn_proactor_disconnect(b->proactor, NULL);
}

/* A connection refused at the connection limit. A flood would write a line
 * per connection: the first is logged, then at most one line every 10 s
 * counting the refusals since the last one. */
static void note_refused(sb_broker *b)
{
    int64_t now = sb_now_ms();
    b->refused_unlogged++;
    if (b->refused_logged_ms && now - b->refused_logged_ms < 10000)
        return;
    SB_WARN("%d connections open (the most this fd limit allows); refused %d connection(s) "
            "since the last such line (logged at most every 10 s)",
            b->nconns, b->refused_unlogged);
    b->refused_unlogged = 0;
    b->refused_logged_ms = now;
}

/* Listener and proactor events. Returns 1 when sb_broker_run must return. */
static int on_proactor_event(sb_broker *b, pn_event_t *e)
{
    pn_listener_t *ls = pn_event_listener(e);
    switch (pn_event_type(e)) {
    case PN_LISTENER_OPEN: {
        char host[64], port[16];
        if (pn_netaddr_host_port(pn_listener_addr(ls), host, sizeof host, port, sizeof port) == 0) {
            if (pn_listener_get_context(ls) == (void *)1)
                b->amqps_port = atoi(port);
            else
                b->amqp_port = atoi(port);
            SB_INFO("listening for %s on %s:%s (at most %d connections)",
                    pn_listener_get_context(ls) == (void *)1 ? "amqps" : "amqp", host, port,
                    b->max_conns);
        }
        b->listeners_pending--;
        on_ready_check(b);
        break;
    }
    case PN_LISTENER_ACCEPT:
        if (b->stopping || b->nconns >= b->max_conns) {
            if (!b->stopping)
                note_refused(b);
            pn_listener_accept2(ls, NULL, NULL); /* dropped once bound */
        } else {
            accept_conn(b, ls);
        }
        break;
    case PN_LISTENER_CLOSE: {
        pn_condition_t *cond = pn_listener_condition(ls);
        if (pn_condition_is_set(cond) && !b->stopping) {
            SB_ERR("listener: %s: %s", pn_condition_get_name(cond),
                   pn_condition_get_description(cond));
            b->failed = 1;
            begin_shutdown(b);
        }
        break;
    }
    case PN_PROACTOR_TIMEOUT:
        if (!b->stopping) {
            tick(b);
            pn_proactor_set_timeout(b->proactor, TICK_MS);
        }
        break;
    case PN_PROACTOR_INTERRUPT:
        begin_shutdown(b);
        break;
    case PN_PROACTOR_INACTIVE:
        return b->stopping;
    default:
        break;
    }
    return 0;
}

/* Connection and transport events of c: set-up, open, wakes, errors, the end. */
static void on_conn_event(sb_broker *b, sb_conn *c, pn_event_t *e)
{
    pn_connection_t *pc = pn_event_connection(e);
    pn_transport_t *t = pn_event_transport(e);
    switch (pn_event_type(e)) {
    case PN_CONNECTION_BOUND: {
        const pn_netaddr_t *na = pn_transport_remote_addr(t);
        if (na)
            pn_netaddr_str(na, c->peer, sizeof c->peer);
        conn_local_endpoint(c, t);
        SB_INFO("conn %u: accepted from %s", c->id, c->peer[0] ? c->peer : "?");
        break;
    }
    case PN_CONNECTION_REMOTE_OPEN: {
        pn_sasl_t *sasl = t ? pn_sasl(t) : NULL;
        const char *mech = sasl ? pn_sasl_get_mech(sasl) : NULL;
        const char *user = sasl ? pn_sasl_get_user(sasl) : NULL;
        if (mech && strcmp(mech, "PLAIN") == 0 && user && sb_sasl_plain_ok(t)) {
            c->ns_auth = 1;
            conn_handshake_done(c);
        }
        conn_remote_host(c, pn_connection_remote_hostname(pc));
        pn_connection_set_container(pc, "intake-sb-emulator");
        pn_connection_open(pc);
        SB_INFO("conn %u: open (container '%.100s', host '%.100s', sasl %s%s%s)", c->id,
                pn_connection_remote_container(pc) ? pn_connection_remote_container(pc) : "",
                pn_connection_remote_hostname(pc) ? pn_connection_remote_hostname(pc) : "",
                mech ? mech : "none", user ? " user " : "", user ? user : "");
        break;
    }
    case PN_CONNECTION_REMOTE_CLOSE:
        pn_connection_close(pc);
        break;
    case PN_CONNECTION_WAKE:
        c->wake_pending = 0;
        if (c->expire) {
            conn_expire(b, c);
            break;
        }
        if (c->auth_check)
            conn_check_auth(c);
        pump_conn(b, c);
        break;
    case PN_TRANSPORT_ERROR: {
        pn_condition_t *cond = pn_transport_condition(t);
        if (pn_condition_is_set(cond))
            SB_WARN("conn %u: transport error: %s: %s", c->id, pn_condition_get_name(cond),
                    pn_condition_get_description(cond) ? pn_condition_get_description(cond) : "");
        break;
    }
    case PN_TRANSPORT_TAIL_CLOSED:
        conn_tail_closed(c, t);
        break;
    case PN_TRANSPORT_CLOSED:
        SB_INFO("conn %u: closed%s", c->id, b->stopping ? " (emulator stopping)" : "");
        conn_free(b, c);
        break;
    default:
        break;
    }
}

/* Session, link and delivery events of c. */
static void on_link_event(sb_broker *b, sb_conn *c, pn_event_t *e)
{
    switch (pn_event_type(e)) {
    case PN_SESSION_REMOTE_OPEN:
        pn_session_open(pn_event_session(e));
        break;
    case PN_SESSION_REMOTE_CLOSE: {
        pn_session_t *s = pn_event_session(e);
        if (c) {
            sb_link *l = c->links;
            while (l) {
                sb_link *n = l->lnext;
                if (l->pl && pn_link_session(l->pl) == s)
                    link_release(c, l, " (session ended)");
                l = n;
            }
        }
        pn_session_close(s);
        break;
    }
    case PN_LINK_REMOTE_OPEN:
        if (c)
            link_open(b, c, pn_event_link(e));
        break;
    case PN_LINK_REMOTE_CLOSE:
    case PN_LINK_REMOTE_DETACH: {
        pn_link_t *pl = pn_event_link(e);
        sb_link *l = pn_link_get_context(pl);
        pn_condition_t *cond = pn_link_remote_condition(pl);
        if (l && c) {
            char why[300] = "";
            if (pn_condition_is_set(cond))
                snprintf(why, sizeof why, " with %s: %.200s", pn_condition_get_name(cond),
                         pn_condition_get_description(cond) ? pn_condition_get_description(cond)
                                                            : "");
            link_release(c, l, why);
        }
        if (pn_event_type(e) == PN_LINK_REMOTE_CLOSE)
            pn_link_close(pl);
        else
            pn_link_detach(pl);
        break;
    }
    case PN_LINK_FLOW: {
        sb_link *l = pn_link_get_context(pn_event_link(e));
        if (l && l->kind == LK_RECV_OUT)
            pump_link(b, l);
        break;
    }
    case PN_DELIVERY: {
        pn_delivery_t *d = pn_event_delivery(e);
        sb_link *l = pn_link_get_context(pn_event_link(e));
        if (!l || !c) {
            pn_delivery_settle(d);
            break;
        }
        if (pn_link_is_receiver(l->pl))
            on_transfer(b, c, l, d);
        else
            on_disposition(b, c, l, d);
        break;
    }
    default:
        break;
    }
}

/* Routes one event. Returns 1 when sb_broker_run must return. */
static int handle(sb_broker *b, pn_event_t *e)
{
    sb_conn *c = ctx_conn(e);
    int done = 0;
    g_cur = c;
    switch (pn_event_type(e)) {
    case PN_LISTENER_OPEN:
    case PN_LISTENER_ACCEPT:
    case PN_LISTENER_CLOSE:
    case PN_PROACTOR_TIMEOUT:
    case PN_PROACTOR_INTERRUPT:
    case PN_PROACTOR_INACTIVE:
        done = on_proactor_event(b, e);
        break;
    case PN_CONNECTION_BOUND:
    case PN_CONNECTION_REMOTE_OPEN:
    case PN_CONNECTION_REMOTE_CLOSE:
    case PN_CONNECTION_WAKE:
    case PN_TRANSPORT_ERROR:
    case PN_TRANSPORT_TAIL_CLOSED:
    case PN_TRANSPORT_CLOSED:
        if (c)
            on_conn_event(b, c, e);
        else if (pn_event_type(e) == PN_CONNECTION_BOUND) /* accepted without state */
            drop_transport(pn_event_transport(e), "the emulator cannot take this connection");
        break;
    default:
        on_link_event(b, c, e);
        break;
    }
    g_cur = NULL;
    return done;
}

/* Sizes the accept backlog and the connection limit from the fd limit. Proton 0.37 cannot close
 * or free a listener once accept() has failed with EMFILE (its overflow count never returns to 0,
 * so shutdown asserts in listener_done or listener_forced_shutdown). Connections beyond what the
 * limit leaves after FD_RESERVE and the sockets proton accepts ahead of us (the backlog) are
 * dropped instead, so accept() never runs out. */
static void size_for_fd_limit(sb_broker *b)
{
    struct rlimit rl;
    b->backlog = MAX_BACKLOG;
    b->max_conns = 1000000;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur > (rlim_t)b->max_conns)
        return;
    long avail = (long)rl.rlim_cur - FD_RESERVE;
    b->backlog = (int)(avail / 4 < 4 ? 4 : avail / 4 > MAX_BACKLOG ? MAX_BACKLOG : avail / 4);
    b->max_conns = (int)(avail - b->backlog);
    if (b->max_conns < 4) {
        SB_WARN("the fd limit (%ld) is too low: raise it to %d or more", (long)rl.rlim_cur,
                FD_RESERVE + 32);
        b->max_conns = 4;
    }
}

int sb_broker_init(sb_broker *b, const sb_config *cfg, sb_store *store)
{
    memset(b, 0, sizeof *b);
    b->cfg = cfg;
    b->store = store;
    size_for_fd_limit(b);
    b->proactor = pn_proactor();
    b->req = pn_message();
    b->resp = pn_message();
    if (!b->proactor || !b->req || !b->resp) {
        SB_ERR("broker: out of memory creating the proactor");
        sb_broker_free(b);
        return -1;
    }
    if (sb_sasl_init(cfg) < 0) {
        sb_broker_free(b);
        return -1;
    }
    char addr[128];
    pn_listener_t *l = pn_listener();
    snprintf(addr, sizeof addr, "%s:%d", cfg->address, cfg->port);
    pn_proactor_listen(b->proactor, l, addr, b->backlog);
    b->listeners_pending = 1;
    if (cfg->amqps_port >= 0) {
        g_ssl_server = pn_ssl_domain(PN_SSL_MODE_SERVER);
        if (!g_ssl_server ||
            pn_ssl_domain_set_credentials(g_ssl_server, cfg->tls_cert, cfg->tls_key, NULL) != 0) {
            SB_ERR("broker: cannot load TLS certificate '%s' / key '%s'", cfg->tls_cert,
                   cfg->tls_key);
            sb_broker_free(b);
            return -1;
        }
        pn_listener_t *ls = pn_listener();
        pn_listener_set_context(ls, (void *)1);
        snprintf(addr, sizeof addr, "%s:%d", cfg->address, cfg->amqps_port);
        pn_proactor_listen(b->proactor, ls, addr, b->backlog);
        b->listeners_pending++;
    }
    pn_proactor_set_timeout(b->proactor, TICK_MS);
    return 0;
}

int sb_broker_run(sb_broker *b)
{
    int done = 0;
    while (!done) {
        pn_event_batch_t *batch = pn_proactor_wait(b->proactor);
        pn_event_t *e;
        while ((e = pn_event_batch_next(batch)))
            if (handle(b, e))
                done = 1;
        pn_proactor_done(b->proactor, batch);
    }
    return b->failed ? -1 : 0;
}

void sb_broker_stop(sb_broker *b)
{
    pn_proactor_interrupt(b->proactor);
}

void sb_broker_free(sb_broker *b)
{
    while (b->conns)
        conn_free(b, b->conns);
    if (b->proactor)
        pn_proactor_free(b->proactor);
    if (b->req)
        pn_message_free(b->req);
    if (b->resp)
        pn_message_free(b->resp);
    if (g_ssl_server)
        pn_ssl_domain_free(g_ssl_server);
    g_ssl_server = NULL;
    sb_buf_free(&b->buf);
    sb_sasl_fini();
    memset(b, 0, sizeof *b);
}
