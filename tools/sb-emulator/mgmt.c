/* mgmt.c: the $management node of a queue (see mgmt.h). Requests and answers are AMQP maps
 * with string keys; status goes in the statusCode/statusDescription/errorCondition
 * application properties as the service does. */
#include "mgmt.h"

#include <proton/codec.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define MAX_ITEMS 4096

int sb_props_get_str(pn_data_t *props, const char *key, char *out, size_t outlen)
{
    size_t kl = strlen(key);
    out[0] = 0;
    pn_data_rewind(props);
    if (!pn_data_next(props) || pn_data_type(props) != PN_MAP)
        return -1;
    pn_data_enter(props);
    while (pn_data_next(props)) {
        pn_bytes_t k = {0, NULL};
        if (pn_data_type(props) == PN_STRING)
            k = pn_data_get_string(props);
        else if (pn_data_type(props) == PN_SYMBOL)
            k = pn_data_get_symbol(props);
        if (!pn_data_next(props))
            break;
        if (k.size == kl && memcmp(k.start, key, kl) == 0) {
            pn_bytes_t v;
            if (pn_data_type(props) == PN_STRING)
                v = pn_data_get_string(props);
            else if (pn_data_type(props) == PN_SYMBOL)
                v = pn_data_get_symbol(props);
            else
                return -1;
            if (v.size >= outlen)
                return -1;
            memcpy(out, v.start, v.size);
            out[v.size] = 0;
            return 0;
        }
    }
    return -1;
}

/* Positions body at the value for key in the top-level map. */
static int body_find(pn_data_t *body, const char *key)
{
    size_t kl = strlen(key);
    pn_data_rewind(body);
    if (!pn_data_next(body) || pn_data_type(body) != PN_MAP)
        return 0;
    pn_data_enter(body);
    while (pn_data_next(body)) {
        pn_bytes_t k = {0, NULL};
        if (pn_data_type(body) == PN_STRING)
            k = pn_data_get_string(body);
        else if (pn_data_type(body) == PN_SYMBOL)
            k = pn_data_get_symbol(body);
        if (!pn_data_next(body))
            return 0;
        if (k.size == kl && memcmp(k.start, key, kl) == 0)
            return 1;
    }
    return 0;
}

static int body_long(pn_data_t *body, const char *key, int64_t *v)
{
    if (!body_find(body, key))
        return 0;
    switch (pn_data_type(body)) {
    case PN_LONG:
        *v = pn_data_get_long(body);
        return 1;
    case PN_INT:
        *v = pn_data_get_int(body);
        return 1;
    case PN_UINT:
        *v = pn_data_get_uint(body);
        return 1;
    case PN_ULONG:
        *v = (int64_t)pn_data_get_ulong(body);
        return 1;
    case PN_UBYTE:
        *v = pn_data_get_ubyte(body);
        return 1;
    case PN_SHORT:
        *v = pn_data_get_short(body);
        return 1;
    case PN_USHORT:
        *v = pn_data_get_ushort(body);
        return 1;
    case PN_BYTE:
        *v = pn_data_get_byte(body);
        return 1;
    default:
        return -1;
    }
}

static int body_str(pn_data_t *body, const char *key, char *out, size_t outlen)
{
    out[0] = 0;
    if (!body_find(body, key))
        return 0;
    if (pn_data_type(body) != PN_STRING && pn_data_type(body) != PN_SYMBOL)
        return pn_data_type(body) == PN_NULL ? 0 : -1;
    pn_bytes_t v =
        pn_data_type(body) == PN_STRING ? pn_data_get_string(body) : pn_data_get_symbol(body);
    if (v.size >= outlen)
        return -1;
    memcpy(out, v.start, v.size);
    out[v.size] = 0;
    return 1;
}

/* Reads an array (or list) of longs. Returns the count or -1. */
static int body_longs(pn_data_t *body, const char *key, int64_t *out, int max)
{
    if (!body_find(body, key))
        return -1;
    int t = pn_data_type(body);
    if (t == PN_LONG) {
        out[0] = pn_data_get_long(body);
        return 1;
    }
    size_t n;
    if (t == PN_ARRAY)
        n = pn_data_get_array(body);
    else if (t == PN_LIST)
        n = pn_data_get_list(body);
    else
        return -1;
    if (n > (size_t)max)
        return -1;
    pn_data_enter(body);
    for (size_t i = 0; i < n; i++) {
        if (!pn_data_next(body))
            return -1;
        if (pn_data_type(body) == PN_LONG)
            out[i] = pn_data_get_long(body);
        else if (pn_data_type(body) == PN_ULONG)
            out[i] = (int64_t)pn_data_get_ulong(body);
        else if (pn_data_type(body) == PN_BINARY && pn_data_get_binary(body).size == 8) {
            const unsigned char *p = (const unsigned char *)pn_data_get_binary(body).start;
            uint64_t x = 0;
            for (int k = 0; k < 8; k++)
                x = (x << 8) | p[k];
            out[i] = (int64_t)x;
        } else
            return -1;
    }
    pn_data_exit(body);
    return (int)n;
}

static int body_uuids(pn_data_t *body, const char *key, uint8_t (*out)[16], int max)
{
    if (!body_find(body, key))
        return -1;
    int t = pn_data_type(body);
    if (t == PN_UUID) {
        memcpy(out[0], pn_data_get_uuid(body).bytes, 16);
        return 1;
    }
    size_t n;
    if (t == PN_ARRAY)
        n = pn_data_get_array(body);
    else if (t == PN_LIST)
        n = pn_data_get_list(body);
    else
        return -1;
    if (n > (size_t)max)
        return -1;
    pn_data_enter(body);
    for (size_t i = 0; i < n; i++) {
        if (!pn_data_next(body) || pn_data_type(body) != PN_UUID)
            return -1;
        memcpy(out[i], pn_data_get_uuid(body).bytes, 16);
    }
    pn_data_exit(body);
    return (int)n;
}

static void status(pn_message_t *resp, int code, const char *desc, const char *cond)
{
    pn_data_t *p = pn_message_properties(resp);
    pn_data_clear(p);
    pn_data_put_map(p);
    pn_data_enter(p);
    pn_data_put_string(p, pn_bytes(10, "statusCode"));
    pn_data_put_int(p, code);
    pn_data_put_string(p, pn_bytes(17, "statusDescription"));
    pn_data_put_string(p, pn_bytes(strlen(desc), desc));
    if (cond) {
        pn_data_put_string(p, pn_bytes(14, "errorCondition"));
        pn_data_put_symbol(p, pn_bytes(strlen(cond), cond));
    }
    pn_data_exit(p);
}

static pn_data_t *body_map(pn_message_t *resp)
{
    pn_message_set_inferred(resp, false);
    pn_data_t *b = pn_message_body(resp);
    pn_data_clear(b);
    pn_data_put_map(b);
    pn_data_enter(b);
    return b;
}

static void put_key(pn_data_t *d, const char *k)
{
    pn_data_put_string(d, pn_bytes(strlen(k), k));
}

static int encode_entries(pn_data_t *src, sb_buf *out, uint32_t *count)
{
    /* src is positioned on a map value: copy it out, encode, strip the map header */
    *count = 0;
    out->len = 0;
    if (pn_data_type(src) != PN_MAP)
        return 0;
    pn_data_t *tmp = pn_data(0);
    if (!tmp)
        return -1;
    pn_data_appendn(tmp, src, 1);
    char buf[16384];
    ssize_t n = pn_data_encode(tmp, buf, sizeof buf);
    pn_data_free(tmp);
    if (n < 0)
        return -1;
    size_t pos = 0, end;
    if (amqp_compound((const uint8_t *)buf, (size_t)n, &pos, count, &end) < 0)
        return -1;
    return sb_buf_put(out, buf + pos, end - pos);
}

static void op_renew_lock(sb_queue *q, pn_data_t *body, pn_message_t *resp, int64_t now)
{
    static uint8_t tokens[MAX_ITEMS][16];
    int n = body_uuids(body, "lock-tokens", tokens, MAX_ITEMS);
    if (n < 0) {
        status(resp, 400, "lock-tokens must be an array of uuid", "amqp:invalid-field");
        return;
    }
    static int64_t exp[MAX_ITEMS];
    for (int i = 0; i < n; i++) {
        sb_msg *m = sb_queue_find_lock(q, tokens[i], now);
        if (!m) {
            status(resp, 410,
                   "The lock supplied is invalid. Either the lock expired, or the message has "
                   "already been removed from the queue.",
                   "com.microsoft:message-lock-lost");
            return;
        }
        exp[i] = sb_queue_renew(q, m, now);
    }
    status(resp, 200, "OK", NULL);
    pn_data_t *b = body_map(resp);
    put_key(b, "expirations");
    pn_data_put_array(b, false, PN_TIMESTAMP);
    pn_data_enter(b);
    for (int i = 0; i < n; i++)
        pn_data_put_timestamp(b, exp[i]);
    pn_data_exit(b);
    pn_data_exit(b);
}

static void put_message(sb_broker *br, pn_data_t *b, sb_queue *q, sb_msg *m, int with_lock)
{
    if (sb_queue_encode(q, m, with_lock, &br->buf) < 0)
        br->buf.len = 0;
    put_key(b, "message");
    pn_data_put_binary(b, pn_bytes(br->buf.len, (const char *)br->buf.data));
}

static void op_peek(sb_broker *br, sb_queue *q, pn_data_t *body, pn_message_t *resp)
{
    int64_t from = 1, count = 1;
    char sid[129] = "";
    if (body_long(body, "from-sequence-number", &from) < 0 ||
        body_long(body, "message-count", &count) < 0 ||
        body_str(body, "session-id", sid, sizeof sid) < 0) {
        status(resp, 400, "bad peek-message request", "amqp:invalid-field");
        return;
    }
    if (count < 1)
        count = 1;
    if (count > MAX_ITEMS)
        count = MAX_ITEMS;
    int found = 0;
    pn_data_t *b = NULL;
    for (sb_msg *m = sb_queue_first_from(q, from < 0 ? 0 : (uint64_t)from); m && found < count;
         m = m->all_next) {
        if (sid[0] && (!m->session || strcmp(m->session->id, sid) != 0))
            continue;
        if (!b) {
            b = body_map(resp);
            put_key(b, "messages");
            pn_data_put_list(b);
            pn_data_enter(b);
        }
        pn_data_put_map(b);
        pn_data_enter(b);
        put_message(br, b, q, m, 0);
        pn_data_exit(b);
        found++;
    }
    if (!found) {
        status(resp, 204, "No messages", NULL);
        return;
    }
    pn_data_exit(b);
    pn_data_exit(b);
    status(resp, 200, "OK", NULL);
}

static void op_schedule(sb_broker *br, sb_queue *q, pn_data_t *body, pn_message_t *resp,
                        int64_t now)
{
    if (!body_find(body, "messages") || pn_data_type(body) != PN_LIST) {
        status(resp, 400, "messages must be a list", "amqp:invalid-field");
        return;
    }
    size_t n = pn_data_get_list(body);
    if (n > MAX_ITEMS) {
        status(resp, 400, "too many messages", "amqp:invalid-field");
        return;
    }
    static int64_t seqs[MAX_ITEMS];
    pn_data_enter(body);
    for (size_t i = 0; i < n; i++) {
        if (!pn_data_next(body) || pn_data_type(body) != PN_MAP) {
            status(resp, 400, "each message must be a map", "amqp:invalid-field");
            return;
        }
        pn_data_enter(body);
        pn_bytes_t bin = {0, NULL};
        while (pn_data_next(body)) {
            pn_bytes_t k =
                pn_data_type(body) == PN_STRING ? pn_data_get_string(body) : pn_bytes(0, NULL);
            if (!pn_data_next(body))
                break;
            if (k.size == 7 && memcmp(k.start, "message", 7) == 0 &&
                pn_data_type(body) == PN_BINARY)
                bin = pn_data_get_binary(body);
        }
        pn_data_exit(body);
        if (!bin.start) {
            status(resp, 400, "a scheduled message lacks 'message'", "amqp:invalid-field");
            return;
        }
        char err[256] = "";
        uint64_t seq = 0;
        int rc = sb_queue_enqueue(q, (const uint8_t *)bin.start, bin.size, now, 1, &seq, err,
                                  sizeof err);
        if (rc < 0) {
            SB_WARN("management: %s: schedule-message refused: %s", q->name, err);
            status(resp, rc == SB_ENQ_FULL ? 507 : 400, err,
                   rc == SB_ENQ_FULL ? "amqp:resource-limit-exceeded" : "amqp:invalid-field");
            return;
        }
        seqs[i] = (int64_t)seq; /* a duplicate keeps 0, as nothing was stored */
    }
    pn_data_exit(body);
    (void)br;
    status(resp, 200, "OK", NULL);
    pn_data_t *b = body_map(resp);
    put_key(b, "sequence-numbers");
    pn_data_put_array(b, false, PN_LONG);
    pn_data_enter(b);
    for (size_t i = 0; i < n; i++)
        pn_data_put_long(b, seqs[i]);
    pn_data_exit(b);
    pn_data_exit(b);
}

static void op_cancel(sb_queue *q, pn_data_t *body, pn_message_t *resp)
{
    static int64_t seqs[MAX_ITEMS];
    int n = body_longs(body, "sequence-numbers", seqs, MAX_ITEMS);
    if (n < 0) {
        status(resp, 400, "sequence-numbers must be an array of long", "amqp:invalid-field");
        return;
    }
    int missing = 0;
    for (int i = 0; i < n; i++)
        if (sb_queue_cancel_scheduled(q, (uint64_t)seqs[i]) < 0)
            missing++;
    if (missing) {
        status(resp, 404, "scheduled message not found", "com.microsoft:message-not-found");
        return;
    }
    status(resp, 200, "OK", NULL);
}

static void uuid_str(const uint8_t *u, char *out)
{
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
             u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
             u[14], u[15]);
}

static void op_receive_by_seq(sb_broker *br, sb_queue *q, pn_data_t *body, pn_message_t *resp,
                              int64_t now)
{
    static int64_t seqs[MAX_ITEMS];
    int64_t mode = 1;
    char sid[129] = "";
    int n = body_longs(body, "sequence-numbers", seqs, MAX_ITEMS);
    if (n < 0 || body_long(body, "receiver-settle-mode", &mode) < 0 ||
        body_str(body, "session-id", sid, sizeof sid) < 0) {
        status(resp, 400, "bad receive-by-sequence-number request", "amqp:invalid-field");
        return;
    }
    for (int i = 0; i < n; i++) {
        sb_msg *m = sb_queue_get(q, (uint64_t)seqs[i]);
        if (!m || m->state != SB_MS_DEFERRED ||
            (sid[0] && (!m->session || strcmp(m->session->id, sid) != 0))) {
            char d[128];
            snprintf(d, sizeof d, "Failed to lock one or more specified messages: %lld",
                     (long long)seqs[i]);
            status(resp, 404, d, "com.microsoft:message-not-found");
            return;
        }
    }
    pn_data_t *b = body_map(resp);
    put_key(b, "messages");
    pn_data_put_list(b);
    pn_data_enter(b);
    for (int i = 0; i < n; i++) {
        sb_msg *m = sb_queue_get(q, (uint64_t)seqs[i]);
        if (!m)
            continue;
        pn_data_put_map(b);
        pn_data_enter(b);
        if (mode != 0) {
            sb_queue_lock(q, m, now);
            put_key(b, "lock-token");
            pn_uuid_t u;
            memcpy(u.bytes, m->lock_token, 16);
            pn_data_put_uuid(b, u);
            put_message(br, b, q, m, 1);
        } else {
            put_message(br, b, q, m, 0);
            sb_queue_remove(q, m);
        }
        pn_data_exit(b);
    }
    pn_data_exit(b);
    pn_data_exit(b);
    status(resp, 200, "OK", NULL);
}

static void op_update_disposition(sb_broker *br, sb_queue *q, pn_data_t *body, pn_message_t *resp,
                                  int64_t now)
{
    static uint8_t tokens[MAX_ITEMS][16];
    char disp[32], reason[4097], desc[4097];
    int n = body_uuids(body, "lock-tokens", tokens, MAX_ITEMS);
    if (n < 0 || body_str(body, "disposition-status", disp, sizeof disp) <= 0 ||
        body_str(body, "deadletter-reason", reason, sizeof reason) < 0 ||
        body_str(body, "deadletter-description", desc, sizeof desc) < 0) {
        status(resp, 400, "bad update-disposition request", "amqp:invalid-field");
        return;
    }
    sb_buf mods = {0};
    uint32_t nmods = 0;
    if (body_find(body, "properties-to-modify") && encode_entries(body, &mods, &nmods) < 0) {
        status(resp, 400, "bad properties-to-modify", "amqp:invalid-field");
        return;
    }
    for (int i = 0; i < n; i++) {
        sb_msg *m = sb_queue_find_lock(q, tokens[i], now);
        if (!m) {
            char u[37];
            uuid_str(tokens[i], u);
            SB_INFO("management: %s: update-disposition: lock %s lost", q->name, u);
            status(resp, 410,
                   "The lock supplied is invalid. Either the lock expired, or the message has "
                   "already been removed from the queue.",
                   "com.microsoft:message-lock-lost");
            sb_buf_free(&mods);
            return;
        }
        if (strcmp(disp, "completed") == 0)
            sb_queue_remove(q, m);
        else if (strcmp(disp, "abandoned") == 0)
            sb_queue_abandon(q, m, now, mods.data, mods.len, nmods);
        else if (strcmp(disp, "defered") == 0 || strcmp(disp, "deferred") == 0)
            sb_queue_defer(q, m, mods.data, mods.len, nmods);
        else if (strcmp(disp, "suspended") == 0) {
            if (q->is_dlq ||
                sb_queue_deadletter(q, m, now, reason[0] ? reason : NULL, desc[0] ? desc : NULL,
                                    mods.data, mods.len, nmods) < 0) {
                status(resp, 400, "cannot dead-letter this message", "amqp:not-allowed");
                sb_buf_free(&mods);
                return;
            }
        } else {
            status(resp, 400, "unknown disposition-status", "amqp:invalid-field");
            sb_buf_free(&mods);
            return;
        }
    }
    sb_buf_free(&mods);
    status(resp, 200, "OK", NULL);
    sb_broker_pump_queue(br, q);
    if (q->dlq)
        sb_broker_pump_queue(br, q->dlq);
}

static void op_session(sb_queue *q, const char *op, pn_data_t *body, pn_message_t *resp,
                       int64_t now)
{
    char sid[129];
    if (body_str(body, "session-id", sid, sizeof sid) <= 0) {
        status(resp, 400, "session-id missing", "amqp:invalid-field");
        return;
    }
    sb_session *s = sb_queue_session(q, sid, 0);
    if (!s || !s->owner) {
        status(resp, 410, "The session lock has expired or the session is not locked.",
               "com.microsoft:session-lock-lost");
        return;
    }
    if (strcmp(op, "com.microsoft:renew-session-lock") == 0) {
        s->locked_until_ms = now + q->cfg->lock_duration_ms;
        status(resp, 200, "OK", NULL);
        pn_data_t *b = body_map(resp);
        put_key(b, "expiration");
        pn_data_put_timestamp(b, s->locked_until_ms);
        pn_data_exit(b);
    } else if (strcmp(op, "com.microsoft:get-session-state") == 0) {
        status(resp, 200, "OK", NULL);
        pn_data_t *b = body_map(resp);
        put_key(b, "session-state");
        if (s->state)
            pn_data_put_binary(b, pn_bytes(s->state_len, (const char *)s->state));
        else
            pn_data_put_null(b);
        pn_data_exit(b);
    } else {
        uint8_t *st = NULL;
        size_t sl = 0;
        if (body_find(body, "session-state") && pn_data_type(body) == PN_BINARY) {
            pn_bytes_t v = pn_data_get_binary(body);
            st = malloc(v.size ? v.size : 1);
            if (!st) {
                status(resp, 500, "out of memory", "amqp:internal-error");
                return;
            }
            memcpy(st, v.start, v.size);
            sl = v.size;
        }
        free(s->state);
        s->state = st;
        s->state_len = sl;
        status(resp, 200, "OK", NULL);
    }
}

void sb_mgmt_handle(sb_broker *br, sb_queue *q, pn_message_t *req, pn_message_t *resp)
{
    char op[80];
    int64_t now = sb_now_ms();
    if (sb_props_get_str(pn_message_properties(req), "operation", op, sizeof op) < 0) {
        status(resp, 400, "the request has no 'operation' application property",
               "amqp:invalid-field");
        return;
    }
    pn_data_t *body = pn_message_body(req);
    SB_DBG("management: %s: %s", q->name, op);
    if (strcmp(op, "com.microsoft:renew-lock") == 0)
        op_renew_lock(q, body, resp, now);
    else if (strcmp(op, "com.microsoft:peek-message") == 0)
        op_peek(br, q, body, resp);
    else if (strcmp(op, "com.microsoft:schedule-message") == 0)
        op_schedule(br, q, body, resp, now);
    else if (strcmp(op, "com.microsoft:cancel-scheduled-message") == 0)
        op_cancel(q, body, resp);
    else if (strcmp(op, "com.microsoft:receive-by-sequence-number") == 0)
        op_receive_by_seq(br, q, body, resp, now);
    else if (strcmp(op, "com.microsoft:update-disposition") == 0)
        op_update_disposition(br, q, body, resp, now);
    else if (strcmp(op, "com.microsoft:renew-session-lock") == 0 ||
             strcmp(op, "com.microsoft:get-session-state") == 0 ||
             strcmp(op, "com.microsoft:set-session-state") == 0)
        op_session(q, op, body, resp, now);
    else {
        SB_WARN("management: %s: operation '%s' not implemented", q->name, op);
        status(resp, 501, "operation not implemented by intake-sb-emulator",
               "amqp:not-implemented");
    }
}
