/*
 * receive.c: the receiver link of the `servicebus` source. Each message that
 * arrives becomes records (one per email of a batch envelope, or one for a
 * single email) waiting in the pending queue until the pipeline has room;
 * credit follows that room, so a full pipeline stops the broker sending
 * rather than filling memory. A body that cannot be read becomes one record
 * settled as dead-lettered at once, with the reason.
 *
 * Runs on the source's run thread only (inside the client's pump).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sb_source.h"
#include "servicebus/body.h"
#include "servicebus/message.h"

#include <openssl/evp.h>

#include "common/buf.h"
#include "common/utf8.h"

/* ---- the pending queue -------------------------------------------------- */

static int pending_push(sb_pending *q, ik_record *rec)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        ik_record **r = malloc(cap * sizeof *r);
        if (!r)
            return IK_E_NOMEM;
        for (size_t i = 0; i < q->n; i++)
            r[i] = q->recs[(q->head + i) % q->cap];
        free(q->recs);
        q->recs = r;
        q->cap = cap;
        q->head = 0;
    }
    q->recs[(q->head + q->n) % q->cap] = rec;
    q->n++;
    return 0;
}

static ik_record *pending_pop(sb_pending *q)
{
    if (!q->n)
        return NULL;
    ik_record *r = q->recs[q->head];
    q->head = (q->head + 1) % q->cap;
    q->n--;
    return r;
}

int sb_receive_emit_pending(sb_source *st)
{
    const ik_host *h = st->host;
    while (st->pending.n) {
        ik_record *rec = st->pending.recs[st->pending.head];
        sb_msg *m = h->record_handle(rec);
        int rc = h->try_emit(st->self, rec);
        if (rc == IK_E_BUSY)
            return 1;
        pending_pop(&st->pending);
        if (rc == 0)
            continue;
        if (rc == IK_E_STOPPING) {
            /* not handed over: it goes back to the broker with its message */
            h->record_free(rec);
            sb_msg_give_back(st, m, 1);
            continue;
        }
        h->settle(st->self, rec, IK_DEAD_LETTERED, h->strerror(rc));
    }
    return 0;
}

void sb_receive_drop_pending(sb_source *st)
{
    ik_record *rec;
    while ((rec = pending_pop(&st->pending))) {
        sb_msg *m = st->host->record_handle(rec);
        st->host->record_free(rec);
        sb_msg_give_back(st, m, 1);
    }
}

void sb_receive_flow(sb_source *st)
{
    if (!st->link || st->stopping || st->pending.n)
        return;
    pthread_mutex_lock(&st->mu);
    int paused = st->paused;
    uint64_t demand = st->demand;
    pthread_mutex_unlock(&st->mu);
    if (paused)
        return;
    int64_t window = st->cfg->prefetch;
    int64_t credit = pn_link_credit(st->link);
    int64_t want = window - (int64_t)st->nlive - credit;
    if (st->cfg->on_demand) {
        /* only what the receive command asked for */
        if ((int64_t)demand - credit < want)
            want = (int64_t)demand - credit;
    } else if (want < window / 4 && st->nlive + credit > 0) {
        return; /* top up in chunks, not one flow frame per message */
    }
    if (want <= 0)
        return;
    if (st->cfg->on_demand) {
        /* drain: the broker gives back what it cannot use, so an empty
         * queue ends the receive job instead of leaving it waiting */
        pn_link_drain(st->link, (int)want);
        st->drain_asked = 1;
    } else {
        pn_link_flow(st->link, (int)want);
    }
    ik_sb_client_changed(st->client);
}

/* PN_LINK_FLOW: after an on-demand drain, credit 0 means the queue had no more. */
static void receiver_flow(void *arg, pn_link_t *l)
{
    sb_source *st = arg;
    if (!st->cfg->on_demand || !st->drain_asked || pn_link_credit(l) > 0)
        return;
    st->drain_asked = 0;
    pthread_mutex_lock(&st->mu);
    if (st->job.started && st->job.received < st->job.requested) {
        st->job.exhausted = 1;
        st->demand = 0;
    }
    pthread_mutex_unlock(&st->mu);
}

/* ---- one message -------------------------------------------------------- */

int64_t sb_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The delivery tag (a .NET Guid's bytes) as an RFC-order uuid. */
static int lock_token_of(pn_delivery_t *d, unsigned char out[16])
{
    pn_delivery_tag_t tag = pn_delivery_tag(d);
    if (tag.size != 16)
        return 0;
    static const int order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    for (int i = 0; i < 16; i++)
        out[i] = (unsigned char)tag.start[order[i]];
    return 1;
}

/* "2026-12-02T08:00:00.123Z" */
static void iso_time(int64_t ms, char *buf, size_t len)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03dZ", (int)(ms % 1000));
}

/* The metadata every record of a message carries. 0 or IK_E_NOMEM. */
static int set_message_meta(sb_source *st, ik_record *rec, const ik_sb_message *msg)
{
    const ik_host *h = st->host;
    char num[32], t[40];
    int rc = h->record_set_meta(rec, "source", "servicebus");
    rc = rc ? rc : h->record_set_meta(rec, "queue", st->address);
    if (!rc && msg->message_id)
        rc = h->record_set_meta(rec, "message_id", msg->message_id);
    if (!rc && msg->has_sequence_number) {
        snprintf(num, sizeof num, "%" PRId64, msg->sequence_number);
        rc = h->record_set_meta(rec, "sequence_number", num);
    }
    if (!rc && msg->has_enqueued_time) {
        iso_time(msg->enqueued_time_ms, t, sizeof t);
        rc = h->record_set_meta(rec, "enqueued_time", t);
    }
    if (!rc) {
        snprintf(num, sizeof num, "%" PRIu32, msg->delivery_count);
        rc = h->record_set_meta(rec, "delivery_count", num);
    }
    if (!rc && msg->session_id)
        rc = h->record_set_meta(rec, "session_id", msg->session_id);
    if (!rc && msg->content_type)
        rc = h->record_set_meta(rec, "content_type", msg->content_type);
    if (!rc && msg->dead_letter_reason)
        rc = h->record_set_meta(rec, "dead_letter_reason", msg->dead_letter_reason);
    if (!rc && msg->app_properties) {
        json_object_object_foreach(msg->app_properties, k, v)
        {
            char key[200];
            snprintf(key, sizeof key, "app.%s", k);
            const char *val = json_object_is_type(v, json_type_string)
                                  ? json_object_get_string(v)
                                  : json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
            if ((rc = h->record_set_meta(rec, key, val ? val : "")) != 0)
                break;
        }
    }
    return rc;
}

/* The record id of email i: its own id field, internet_message_id or
 * message_id, else "<message id or sequence number>:<i>", stable across
 * redeliveries of the message. */
static void record_id(sb_source *st, json_object *email, const ik_sb_message *msg, size_t i,
                      char *buf, size_t len)
{
    const char *fields[] = {st->cfg->id_field, "internet_message_id", "message_id"};
    for (size_t f = 0; f < 3; f++) {
        json_object *v;
        if (fields[f] && fields[f][0] && json_object_object_get_ex(email, fields[f], &v) &&
            json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0) {
            snprintf(buf, len, "%s", json_object_get_string(v));
            return;
        }
    }
    if (msg->message_id)
        snprintf(buf, len, "%s:%zu", msg->message_id, i);
    else
        snprintf(buf, len, "seq-%" PRId64 ":%zu", msg->sequence_number, i);
}

/* Sets a record's priority (and metadata "priority", which sinks see). */
static void set_priority(sb_source *st, ik_record *rec, int p)
{
    char num[16];
    snprintf(num, sizeof num, "%d", p);
    st->host->record_set_priority(rec, p);
    st->host->record_set_meta(rec, "priority", num);
}

/* Makes the record of email i (taking e->emails[i]). NULL when out of memory. */
static ik_record *email_record(sb_source *st, const ik_sb_message *msg, ik_sb_emails *e, size_t i)
{
    const ik_host *h = st->host;
    char id[512], num[32];
    record_id(st, e->emails[i], msg, i, id, sizeof id);
    ik_record *rec = h->record_new(st->self, id, e->emails[i]);
    e->emails[i] = NULL;
    if (!rec)
        return NULL;
    int rc = set_message_meta(st, rec, msg);
    if (!rc && e->is_envelope) {
        snprintf(num, sizeof num, "%zu", i);
        rc = h->record_set_meta(rec, "batch_index", num);
        if (!rc && e->batch_id)
            rc = h->record_set_meta(rec, "batch_id", e->batch_id);
        snprintf(num, sizeof num, "%" PRId64, e->retry_count);
        if (!rc)
            rc = h->record_set_meta(rec, "retry_count", num);
    }
    if (!rc && e->has_priority)
        set_priority(st, rec, e->priority);
    if (rc) {
        h->record_free(rec);
        return NULL;
    }
    return rec;
}

/* The payload of an unreadable message: what was wrong and the body (text
 * when it is UTF-8, else base64) so the dead letter can be looked at. */
static json_object *unreadable_payload(const ik_sb_message *msg, const char *bytes, size_t len,
                                       const char *why)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    json_object_object_add(o, "error", json_object_new_string(why));
    const char *b = msg->data.p ? msg->data.p : bytes;
    size_t n = msg->data.p ? msg->data.len : len;
    if (ik_utf8_valid(b, n)) {
        json_object_object_add(o, "body", json_object_new_string_len(b, (int)n));
    } else {
        size_t cap = 4 * ((n + 2) / 3) + 1;
        char *enc = malloc(cap);
        if (enc) {
            EVP_EncodeBlock((unsigned char *)enc, (const unsigned char *)b, (int)n);
            json_object_object_add(o, "body_base64", json_object_new_string(enc));
            free(enc);
        }
    }
    if (msg->message_id)
        json_object_object_add(o, "message_id", json_object_new_string(msg->message_id));
    return o;
}

/* Settles an unreadable message's one record as dead-lettered now. */
static void reject_unreadable(sb_source *st, sb_msg *m, const ik_sb_message *msg, const char *bytes,
                              size_t len, const char *why)
{
    const ik_host *h = st->host;
    char id[300], reason[600];
    if (msg->message_id)
        snprintf(id, sizeof id, "%s:0", msg->message_id);
    else
        snprintf(id, sizeof id, "seq-%" PRId64 ":0", msg->sequence_number);
    snprintf(reason, sizeof reason, "message %s: %s", msg->message_id ? msg->message_id : id, why);
    h->log(st->self, IK_LOG_WARN, "%s", reason);
    if (st->m_unreadable)
        h->metric_add(st->m_unreadable, 1);
    json_object *payload = unreadable_payload(msg, bytes, len, why);
    ik_record *rec = payload ? h->record_new(st->self, id, payload) : NULL;
    if (rec && set_message_meta(st, rec, msg) != 0) {
        h->record_free(rec);
        rec = NULL;
    }
    m->records = 1;
    if (!rec) {
        /* no record to tell the engine: dead-letter on the broker directly */
        pthread_mutex_lock(&st->mu);
        m->records = 0;
        m->dead_unstored = 1;
        m->dead_reason = strdup(why);
        m->ready = 1;
        m->ready_next = st->ready;
        st->ready = m;
        pthread_mutex_unlock(&st->mu);
        return;
    }
    h->record_set_handle(rec, m);
    h->settle(st->self, rec, IK_DEAD_LETTERED, reason);
}

/* DLQ mode, a dead letter past its retries: one record with the body as
 * payload (the envelope or email as JSON, or the text), settled as
 * dead-lettered so the pipeline's dead_letter sink archives it. */
static void archive_dead_letter(sb_source *st, sb_msg *m, const ik_sb_message *msg,
                                const char *bytes, size_t len, const char *reason)
{
    const ik_host *h = st->host;
    char id[300];
    json_object *payload = NULL;
    if (msg->data.p)
        payload = json_tokener_parse(msg->data.p);
    if (!payload || !json_object_is_type(payload, json_type_object)) {
        json_object_put(payload);
        payload = unreadable_payload(msg, bytes, len, "archived dead letter");
    }
    if (msg->message_id)
        snprintf(id, sizeof id, "%s", msg->message_id);
    else
        snprintf(id, sizeof id, "seq-%" PRId64, msg->sequence_number);
    ik_record *rec = payload ? h->record_new(st->self, id, payload) : NULL;
    if (!rec || set_message_meta(st, rec, msg) != 0) {
        if (rec)
            h->record_free(rec);
        /* nothing to archive with: leave it in the dead-letter queue */
        m->records = 1;
        sb_msg_give_back(st, m, 1);
        return;
    }
    m->records = 1;
    h->record_set_handle(rec, m);
    h->settle(st->self, rec, IK_DEAD_LETTERED, reason);
}

/* Turns a decoded message into records on the pending queue. */
static void queue_records(sb_source *st, sb_msg *m, ik_sb_message *msg, const char *bytes,
                          size_t len)
{
    char err[400];
    ik_sb_emails e;
    size_t max = st->cfg->max_emails > 0 ? (size_t)st->cfg->max_emails : 0;
    int rc = ik_sb_body_emails(msg, max, &e, err, sizeof err);
    if (rc == 0 && e.n == 0) {
        snprintf(err, sizeof err, "the message carries no emails");
        rc = IK_E_PARSE;
    }
    if (rc != 0) {
        if (rc == IK_E_NOMEM)
            snprintf(err, sizeof err, "out of memory reading the body");
        ik_sb_emails_clear(&e);
        reject_unreadable(st, m, msg, bytes, len, err);
        return;
    }
    m->retry_count = e.retry_count;
    ik_record **recs = calloc(e.n, sizeof *recs);
    size_t made = 0;
    for (; recs && made < e.n; made++)
        if (!(recs[made] = email_record(st, msg, &e, made)))
            break;
    if (!recs || made < e.n) {
        for (size_t i = 0; recs && i < made; i++)
            st->host->record_free(recs[i]);
        free(recs);
        ik_sb_emails_clear(&e);
        reject_unreadable(st, m, msg, bytes, len, "out of memory making its records");
        return;
    }
    m->records = (unsigned)e.n;
    for (size_t i = 0; i < e.n; i++) {
        st->host->record_set_handle(recs[i], m);
        if (pending_push(&st->pending, recs[i]) != 0) {
            /* cannot queue the rest: they go back to the broker with the message */
            for (size_t j = i; j < e.n; j++)
                st->host->record_free(recs[j]);
            sb_msg_give_back(st, m, (unsigned)(e.n - i));
            break;
        }
    }
    free(recs);
    ik_sb_emails_clear(&e);
}

/* A new message: its bookkeeping, then its records. */
static void on_message(sb_source *st, pn_delivery_t *d, const char *bytes, size_t len)
{
    sb_msg *m = calloc(1, sizeof *m);
    if (!m) {
        /* cannot track it: give it straight back */
        pn_delivery_update(d, st->cfg->broker == IK_SB_BROKER_AMQP ? PN_RELEASED : PN_MODIFIED);
        pn_delivery_settle(d);
        return;
    }
    m->d = d;
    pn_delivery_set_context(d, m);
    m->has_lock_token = lock_token_of(d, m->lock_token);
    m->received_ms = ik_sb_now_ms();
    sb_msg_link(st, m);
    if (st->cfg->on_demand) {
        pthread_mutex_lock(&st->mu);
        if (st->demand > 0)
            st->demand--;
        if (st->job.started && st->job.received < st->job.requested) {
            st->job.received++;
            m->in_job = 1;
        }
        pthread_mutex_unlock(&st->mu);
    }
    if (st->m_received)
        st->host->metric_add(st->m_received, 1);

    ik_sb_message msg;
    char err[1024];
    /* a message may carry max_emails records of max_record_size each */
    size_t limit = st->host->max_record_size(st->self) * (size_t)st->cfg->max_emails;
    int rc = ik_sb_message_decode(bytes, len, limit, &msg, err, sizeof err);
    m->message_id = msg.message_id ? strdup(msg.message_id) : NULL;
    m->sequence_number = msg.sequence_number;
    m->delivery_count = msg.delivery_count;
    int64_t lock_left = (int64_t)st->lock_ms;
    if (msg.has_locked_until)
        lock_left = msg.locked_until_ms - sb_unix_ms();
    if (st->cfg->lock_renewal && st->settle_second && m->has_lock_token && lock_left > 0) {
        m->renew_at = m->received_ms + (uint64_t)lock_left / 2;
        sb_renew_note(st, m->renew_at);
        m->renew_until = m->received_ms + st->cfg->max_lock_renewal;
    }
    if (rc == IK_E_NOMEM)
        snprintf(err, sizeof err, "out of memory decoding the message");
    if (rc != 0)
        reject_unreadable(st, m, &msg, bytes, len, err);
    else if (st->cfg->subqueue == 1 && !sb_dlq_message(st, m, &msg, err, sizeof err))
        archive_dead_letter(st, m, &msg, bytes, len, err);
    else if (st->cfg->subqueue != 1)
        queue_records(st, m, &msg, bytes, len);
    ik_sb_message_clear(&msg);
}

/* PN_DELIVERY on the receiver: a new transfer complete, or news about one
 * we already have. */
static void receiver_delivery(void *arg, pn_link_t *l, pn_delivery_t *d)
{
    sb_source *st = arg;
    if (pn_delivery_get_context(d)) {
        sb_settle_remote(st, d);
        return;
    }
    if (!pn_delivery_readable(d) || pn_delivery_partial(d))
        return;
    size_t n = pn_delivery_pending(d);
    /* one buffer for every delivery: the message reader copies what it keeps */
    st->rbuf.len = 0;
    st->rbuf.oom = 0;
    char *buf = ik_buf_reserve(&st->rbuf, n) == 0 ? st->rbuf.p : NULL;
    ssize_t got = buf ? pn_link_recv(l, buf, n) : -1;
    pn_link_advance(l);
    if (got < 0) {
        pn_delivery_update(d, st->cfg->broker == IK_SB_BROKER_AMQP ? PN_RELEASED : PN_MODIFIED);
        pn_delivery_settle(d);
        return;
    }
    if (st->stopping) {
        /* arrived after shutdown began: back to the broker untouched */
        pn_delivery_update(d, st->cfg->broker == IK_SB_BROKER_AMQP ? PN_RELEASED : PN_MODIFIED);
        pn_delivery_settle(d);
        return;
    }
    on_message(st, d, buf, (size_t)got);
}

static void receiver_detached(void *arg, pn_link_t *l, const char *why)
{
    sb_source *st = arg;
    (void)l;
    if (!st->stopping && !st->host->stopping(st->self))
        st->host->log(st->self, IK_LOG_WARN, "the broker detached the receiver on %s: %s",
                      st->address, why);
    st->link = NULL;
}

const ik_sb_link_ops sb_receiver_ops = {
    .delivery = receiver_delivery,
    .flow = receiver_flow,
    .detached = receiver_detached,
};
