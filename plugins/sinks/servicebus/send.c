/*
 * send.c: a `servicebus` sink worker's connection and transfers. Messages
 * go out pipelined as far as the link credit allows (each a plain transfer:
 * qpid-proton 0.37 always writes message-format 0, so the SDK's batch
 * format 0x80013700 cannot be sent, see the README); then the worker pumps
 * until each has its outcome from the broker, the time limit passes or the
 * connection is lost. Delivery tags carry the write's generation and the
 * message's index, so an outcome arriving after its write gave up is only
 * settled, never counted.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <proton/condition.h>
#include <proton/disposition.h>

#include "sb_sink.h"

/* ---- link callbacks ----------------------------------------------------- */

static void tag_of(uint32_t gen, uint32_t idx, char tag[8])
{
    memcpy(tag, &gen, 4);
    memcpy(tag + 4, &idx, 4);
}

/* The broker's outcome for one message, as the record's status. */
static void outcome(sbk_out *o, pn_delivery_t *d)
{
    uint64_t state = pn_delivery_remote_state(d);
    if (state == PN_ACCEPTED) {
        o->status = IK_OK;
    } else if (state == PN_REJECTED) {
        char why[400];
        ik_sb_condition_text(pn_disposition_condition(pn_delivery_remote(d)), why, sizeof why);
        o->status = IK_FAIL;
        snprintf(o->reason, sizeof o->reason, "the broker rejected the message: %s",
                 why[0] ? why : "no condition");
    } else if (state == PN_RELEASED || state == PN_MODIFIED) {
        o->status = IK_RETRY;
        snprintf(o->reason, sizeof o->reason, "the broker %s the message",
                 state == PN_RELEASED ? "released" : "did not take (modified)");
    } else {
        o->status = IK_RETRY;
        snprintf(o->reason, sizeof o->reason, "the broker settled the message without an outcome");
    }
    o->done = 1;
}

static void on_delivery(void *arg, pn_link_t *link, pn_delivery_t *d)
{
    sbk_worker *w = arg;
    (void)link;
    uint64_t state = pn_delivery_remote_state(d);
    if (state == PN_RECEIVED || (!state && !pn_delivery_settled(d)))
        return; /* no terminal outcome yet */
    pn_delivery_tag_t tag = pn_delivery_tag(d);
    uint32_t gen = 0, idx = UINT32_MAX;
    if (tag.size == 8) {
        memcpy(&gen, tag.start, 4);
        memcpy(&idx, tag.start + 4, 4);
    }
    if (gen == w->gen && idx < w->nouts && !w->outs[idx].done) {
        sbk_out *o = &w->outs[idx];
        outcome(o, d);
        if (w->sink->m_latency)
            w->sink->host->metric_observe(w->sink->m_latency,
                                          (double)(ik_sb_now_ms() - o->sent_ms) / 1000.0);
    }
    pn_delivery_settle(d);
}

static void on_detached(void *arg, pn_link_t *link, const char *why)
{
    sbk_worker *w = arg;
    (void)link;
    w->link = NULL;
    snprintf(w->link_lost, sizeof w->link_lost, "%s", why && why[0] ? why : "link detached");
}

const ik_sb_link_ops sbk_sender_ops = {
    .delivery = on_delivery,
    .detached = on_detached,
};

/* ---- connection --------------------------------------------------------- */

void sbk_disconnect(sbk_worker *w)
{
    if (w->link && ik_sb_client_connected(w->client))
        ik_sb_client_detach(w->client, w->link);
    w->link = NULL;
    ik_sb_client_close(w->client, 0);
}

int sbk_connect(sbk_worker *w, char *why, size_t whylen)
{
    sbk_sink *s = w->sink;
    if (w->link && ik_sb_client_connected(w->client))
        return 0;
    if (ik_sb_client_connected(w->client))
        sbk_disconnect(w); /* the link ended but not the connection: start clean */
    int rc = ik_sb_client_connect(w->client);
    if (rc == 0) {
        w->link_lost[0] = '\0';
        ik_sb_link_opts o = {.address = s->ep.entity, .ops = &sbk_sender_ops, .arg = w};
        w->link = ik_sb_client_attach(w->client, &o);
        if (!w->link) {
            rc = IK_E_IO;
            snprintf(why, whylen, "cannot send to %.200s: %.250s", s->where,
                     ik_sb_client_error(w->client));
            ik_sb_client_close(w->client, 1000);
        }
    } else {
        snprintf(why, whylen, "cannot reach %.200s: %.250s", s->where,
                 ik_sb_client_error(w->client));
    }
    if (rc != 0) {
        if (!w->down_logged)
            s->host->log(s->self, IK_LOG_ERROR, "%s", why);
        w->down_logged = 1;
        return rc;
    }
    w->max_size = ik_sb_client_max_message_size(w->link);
    if (w->down_logged)
        s->host->log(s->self, IK_LOG_INFO, "sending to %s again", s->where);
    else
        s->host->log(s->self, IK_LOG_INFO, "sending to %s", s->where);
    w->down_logged = 0;
    return 0;
}

/* ---- sending ------------------------------------------------------------ */

/* Transfers the next messages while the link has credit; *next is the
 * first not sent yet. */
static void send_ready(sbk_worker *w, size_t *next)
{
    while (*next < w->nouts && w->link && pn_link_credit(w->link) > 0) {
        sbk_out *o = &w->outs[*next];
        if (!o->done && o->encoded) {
            char tag[8];
            tag_of(w->gen, (uint32_t)*next, tag);
            pn_delivery(w->link, pn_dtag(tag, sizeof tag));
            pn_link_send(w->link, w->wire.p + o->off, o->len);
            pn_link_advance(w->link);
            o->sent = 1;
            o->sent_ms = ik_sb_now_ms();
        }
        o->encoded = 0; /* proton keeps its own copy */
        (*next)++;
    }
    ik_sb_client_changed(w->client); /* the transfers are written on the next pump */
}

/* Every message without an outcome gets `status` and `why`. */
static void give_up(sbk_worker *w, ik_status status, const char *why)
{
    for (size_t i = 0; i < w->nouts; i++) {
        sbk_out *o = &w->outs[i];
        if (o->done)
            continue;
        o->status = status;
        snprintf(o->reason, sizeof o->reason, "%.490s%s", why, o->sent ? "" : " (not sent)");
        o->done = 1;
        o->encoded = 0;
    }
}

/* Shutdown: what was not sent yet goes back (released by the engine). */
static void give_up_unsent(sbk_worker *w, size_t *next)
{
    for (; *next < w->nouts; (*next)++) {
        sbk_out *o = &w->outs[*next];
        if (!o->done) {
            o->status = IK_RETRY;
            snprintf(o->reason, sizeof o->reason, "the engine is stopping (not sent)");
            o->done = 1;
        }
        o->encoded = 0;
    }
}

static size_t open_count(const sbk_worker *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->nouts; i++)
        n += !w->outs[i].done;
    return n;
}

void sbk_send_all(sbk_worker *w)
{
    sbk_sink *s = w->sink;
    w->gen++;
    size_t next = 0;
    uint64_t deadline = ik_sb_now_ms() + s->cfg->op_timeout;
    char why[600];
    while (open_count(w) > 0) {
        if (!s->host->stopping(s->self))
            send_ready(w, &next);
        else if (next < w->nouts)
            give_up_unsent(w, &next);
        if (open_count(w) == 0)
            break;
        uint64_t now = ik_sb_now_ms();
        if (now >= deadline) {
            snprintf(why, sizeof why, "no outcome from %.200s within %" PRIu64 " ms", s->where,
                     s->cfg->op_timeout);
            give_up(w, IK_RETRY, why);
            sbk_disconnect(w); /* a silent broker: the next call connects again */
            break;
        }
        int rc = ik_sb_client_pump(w->client, deadline - now < 100 ? deadline - now : 100);
        if (rc == IK_E_IO || !w->link) {
            const char *e = w->link_lost[0] ? w->link_lost : ik_sb_client_error(w->client);
            snprintf(why, sizeof why, "lost the connection to %.200s: %.300s", s->where,
                     e[0] ? e : "connection closed");
            give_up(w, IK_RETRY, why);
            sbk_disconnect(w);
            break;
        }
    }
    w->last_used_ms = ik_sb_now_ms();
}
