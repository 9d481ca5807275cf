/*
 * lock_renewal.c: keeps the peek-locks of messages whose records are still
 * in the pipeline (an LLM batch easily outlasts a 60 s lock). At half of a
 * lock's remaining time the source sends `com.microsoft:renew-lock` to the
 * queue's $management node, for up to 32 messages in one request, and moves
 * the next renewal to half of the new expiry. A lock the broker says is lost
 * is logged and counted; the message is then not renewed again, its
 * settlement will be refused, and the broker delivers it again.
 *
 * Run thread only. The reply may come after a message is gone, so requests
 * carry lock tokens, not message pointers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_source.h"

#define RENEW_MAX 32

typedef struct renewal {
    sb_source *st;
    size_t n;
    unsigned char tokens[RENEW_MAX][16];
} renewal;

static sb_msg *find_by_token(sb_source *st, const unsigned char token[16])
{
    for (sb_msg *m = st->live; m; m = m->next)
        if (m->has_lock_token && memcmp(m->lock_token, token, 16) == 0)
            return m;
    return NULL;
}

/* Reads the "expirations" array of a renew-lock reply into exp (unix ms). */
static size_t read_expirations(pn_message_t *reply, int64_t *exp, size_t max)
{
    pn_data_t *b = pn_message_body(reply);
    size_t got = 0;
    if (!ik_sb_data_find(b, "expirations") || pn_data_type(b) != PN_ARRAY)
        return 0;
    size_t n = pn_data_get_array(b);
    pn_data_enter(b);
    for (size_t j = 0; j < n && got < max; j++) {
        pn_data_next(b);
        if (pn_data_type(b) == PN_TIMESTAMP)
            exp[got++] = pn_data_get_timestamp(b);
    }
    return got;
}

/* The renew-lock answer: new renewal times, or the locks are lost. */
static void renewal_reply(void *arg, pn_message_t *reply, const char *error)
{
    renewal *r = arg;
    sb_source *st = r->st;
    long status = reply ? ik_sb_reply_status(reply, "statusCode") : -1;
    int64_t exp[RENEW_MAX];
    size_t nexp = status == 200 ? read_expirations(reply, exp, RENEW_MAX) : 0;
    char desc[300] = "";
    if (reply)
        ik_sb_reply_text(reply, "statusDescription", desc, sizeof desc);
    uint64_t now = ik_sb_now_ms();
    int64_t unix_now = sb_unix_ms();
    for (size_t i = 0; i < r->n; i++) {
        sb_msg *m = find_by_token(st, r->tokens[i]);
        if (!m)
            continue; /* settled meanwhile */
        m->renewing = 0;
        if (i < nexp && exp[i] > unix_now) {
            m->renew_at = now + (uint64_t)(exp[i] - unix_now) / 2;
            sb_renew_note(st, m->renew_at);
            if (st->m_renewals)
                st->host->metric_add(st->m_renewals, 1);
            continue;
        }
        if (!reply && error && strstr(error, "time limit")) {
            m->renew_at = now + 1000; /* try again soon */
            sb_renew_note(st, m->renew_at);
            continue;
        }
        m->renew_at = 0;
        if (!m->d)
            continue;
        st->host->log(st->self, IK_LOG_WARN,
                      "message %s: its lock could not be renewed (%ld %s); the broker will "
                      "deliver it again",
                      m->message_id ? m->message_id : "?", status,
                      desc[0] ? desc : (error ? error : ""));
        if (st->m_lock_lost)
            st->host->metric_add(st->m_lock_lost, 1);
    }
    free(r);
}

/* Builds the renew-lock request for the tokens of r. NULL when out of memory. */
static pn_message_t *renew_request(sb_source *st, const renewal *r)
{
    pn_message_t *req = pn_message();
    if (!req)
        return NULL;
    pn_data_t *ap = pn_message_properties(req);
    pn_data_put_map(ap);
    pn_data_enter(ap);
    pn_data_put_string(ap, pn_bytes(9, "operation"));
    pn_data_put_string(ap, pn_bytes(24, "com.microsoft:renew-lock"));
    if (st->link) {
        const char *ln = pn_link_name(st->link);
        pn_data_put_string(ap, pn_bytes(20, "associated-link-name"));
        pn_data_put_string(ap, pn_bytes(strlen(ln), ln));
    }
    pn_data_exit(ap);
    pn_data_t *b = pn_message_body(req);
    pn_data_put_map(b);
    pn_data_enter(b);
    pn_data_put_string(b, pn_bytes(11, "lock-tokens"));
    pn_data_put_array(b, false, PN_UUID);
    pn_data_enter(b);
    for (size_t i = 0; i < r->n; i++) {
        pn_uuid_t u;
        memcpy(u.bytes, r->tokens[i], 16);
        pn_data_put_uuid(b, u);
    }
    pn_data_exit(b);
    pn_data_exit(b);
    pn_message_set_inferred(req, false);
    return req;
}

void sb_renew_note(sb_source *st, uint64_t at)
{
    if (at && at < st->next_renew)
        st->next_renew = at;
}

void sb_renew_locks(sb_source *st)
{
    if (!st->cfg->lock_renewal || !st->settle_second || !st->link)
        return;
    uint64_t now = ik_sb_now_ms();
    if (now < st->next_renew)
        return; /* nothing due: no walk over every message held */
    st->next_renew = UINT64_MAX;
    renewal *r = NULL;
    for (sb_msg *m = st->live; m; m = m->next) {
        if (!m->renew_at || m->renewing || !m->d || m->disposed)
            continue;
        if (now < m->renew_at || (r && r->n == RENEW_MAX)) {
            sb_renew_note(st, m->renew_at);
            continue;
        }
        if (now >= m->renew_until) {
            st->host->log(st->self, IK_LOG_WARN,
                          "message %s: still in the pipeline after max_lock_renewal; its lock "
                          "is no longer renewed",
                          m->message_id ? m->message_id : "?");
            m->renew_at = 0;
            continue;
        }
        if (!r && !(r = calloc(1, sizeof *r))) {
            sb_renew_note(st, now + 1000); /* out of memory: look again soon */
            return;
        }
        r->st = st;
        memcpy(r->tokens[r->n++], m->lock_token, 16);
        m->renewing = 1;
    }
    if (!r)
        return;
    pn_message_t *req = renew_request(st, r);
    if (!req || ik_sb_client_request(st->client, st->mgmt_address, req, renewal_reply, r) != 0) {
        st->host->log(st->self, IK_LOG_WARN, "cannot send a renew-lock request: %s",
                      req ? ik_sb_client_error(st->client) : "out of memory");
        for (size_t i = 0; i < r->n; i++) {
            sb_msg *m = find_by_token(st, r->tokens[i]);
            if (m) {
                m->renewing = 0;
                m->renew_at = now + 1000;
                sb_renew_note(st, m->renew_at);
            }
        }
        free(r);
    }
}
