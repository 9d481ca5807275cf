/*
 * settle.c: from records' outcomes to the broker's disposition of their
 * message. settle() (engine threads) tallies each record of a message; when
 * the last one is told, the message goes on the ready list and the run
 * thread is woken. There the message's outcome is chosen:
 *
 *   a record dead-lettered and not stored by the pipeline -> dead-letter the
 *       message on the broker, with the reason (nothing is dropped);
 *   else a record released (shutdown)                     -> abandon
 *       (RabbitMQ and other brokers: released);
 *   else (every record delivered, or stored as a dead letter) -> complete.
 *
 * With Service Bus peek-lock (rcv-settle-mode second) the broker answers each
 * disposition with its own settle, which says whether it took effect (a
 * lost lock makes it fail); only then is the message forgotten. A message
 * whose connection died before its outcome was sent is not settled: its lock
 * died with the connection, and the broker delivers it again.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <proton/condition.h>
#include <proton/disposition.h>

#include "sb_source.h"

void sb_msg_link(sb_source *st, sb_msg *m)
{
    m->prev = NULL;
    m->next = st->live;
    if (st->live)
        st->live->prev = m;
    st->live = m;
    st->nlive++;
}

/* Takes m off the live list and frees it. */
void sb_msg_free(sb_source *st, sb_msg *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else if (st->live == m)
        st->live = m->next;
    if (m->next)
        m->next->prev = m->prev;
    st->nlive--;
    if (m->d)
        pn_delivery_set_context(m->d, NULL);
    free(m->message_id);
    free(m->dead_reason);
    free(m->dead_stage);
    free(m->raw);
    free(m);
}

/* Counts n records of m as released (never handed to the engine) and puts
 * m on the ready list when they were its last. Run thread. */
void sb_msg_give_back(sb_source *st, sb_msg *m, unsigned n)
{
    pthread_mutex_lock(&st->mu);
    m->records -= n;
    m->released += n;
    if (m->records == 0 && !m->ready) {
        m->ready = 1;
        m->ready_next = st->ready;
        st->ready = m;
    }
    pthread_mutex_unlock(&st->mu);
}

void sb_settle(void *state, ik_record *rec, ik_outcome outcome, const ik_failure *failure)
{
    sb_source *st = state;
    sb_msg *m = st->host->record_handle(rec);
    if (!m)
        return;
    /* delivered, or dead-lettered and stored by the pipeline: nothing to
     * count, the message is completed unless another record says otherwise */
    int not_stored = outcome == IK_DEAD_LETTERED && !(failure && failure->stored);
    /* a dead letter cannot be dead-lettered again: it stays where it is */
    int stays = not_stored && st->cfg->subqueue == 1;
    if (stays)
        st->host->settle_failed(st->self, rec,
                                "the dead_letter sink did not store it; the message stays in "
                                "the dead-letter queue");
    pthread_mutex_lock(&st->mu);
    switch (outcome) {
    case IK_DELIVERED:
        break;
    case IK_DEAD_LETTERED:
        if (stays) {
            m->released++;
        } else if (not_stored) {
            m->dead_unstored++;
            if (!m->dead_reason && failure && failure->reason)
                m->dead_reason = strdup(failure->reason);
            if (!m->dead_stage && failure && failure->stage)
                m->dead_stage = strdup(failure->stage);
        }
        break;
    default:
        m->released++;
        break;
    }
    int last = --m->records == 0 && !m->ready;
    /* one wake-up per batch of ready messages: the run thread takes the
     * whole list, so only the first message onto an empty list wakes it */
    int wake = last && !st->ready;
    if (last) {
        m->ready = 1;
        m->ready_next = st->ready;
        st->ready = m;
    }
    pthread_mutex_unlock(&st->mu);
    if (wake && st->client)
        ik_sb_client_interrupt(st->client);
}

/* Fills the local state of d for a dead-letter with the reason. */
static void dead_letter_state(sb_source *st, pn_delivery_t *d, const sb_msg *m)
{
    if (st->cfg->broker == IK_SB_BROKER_AMQP)
        return; /* a plain rejected: RabbitMQ dead-letters it through its policy */
    pn_condition_t *c = pn_disposition_condition(pn_delivery_local(d));
    pn_condition_set_name(c, "com.microsoft:dead-letter");
    pn_data_t *info = pn_condition_info(c);
    char reason[4096], desc[1024];
    snprintf(reason, sizeof reason, "%s", m->dead_reason ? m->dead_reason : "dead-lettered");
    snprintf(desc, sizeof desc, "intake: stage %s: %s", m->dead_stage ? m->dead_stage : "?",
             m->dead_reason ? m->dead_reason : "dead-lettered");
    pn_data_put_map(info);
    pn_data_enter(info);
    pn_data_put_symbol(info, pn_bytes(16, "DeadLetterReason"));
    pn_data_put_string(info, pn_bytes(strlen(reason), reason));
    pn_data_put_symbol(info, pn_bytes(26, "DeadLetterErrorDescription"));
    pn_data_put_string(info, pn_bytes(strlen(desc), desc));
    pn_data_exit(info);
}

/* Chooses m's outcome from its tally (mu not needed: every record is told). */
static ik_outcome decide(const sb_msg *m)
{
    if (m->dead_unstored)
        return IK_DEAD_LETTERED;
    if (m->released)
        return IK_RELEASED;
    return IK_DELIVERED;
}

static const char *msg_name(const sb_msg *m, char *buf, size_t len)
{
    if (m->message_id)
        snprintf(buf, len, "%s", m->message_id);
    else
        snprintf(buf, len, "sequence number %" PRId64, m->sequence_number);
    return buf;
}

/* Counts m's outcome in its receive job (lost: its lock was). */
static void count_job(sb_source *st, const sb_msg *m, ik_outcome o, int lost)
{
    if (!m->in_job)
        return;
    pthread_mutex_lock(&st->mu);
    if (lost)
        st->job.lost++;
    else if (o == IK_DELIVERED)
        st->job.completed++;
    else if (o == IK_DEAD_LETTERED)
        st->job.dead++;
    else
        st->job.abandoned++;
    pthread_mutex_unlock(&st->mu);
}

/* Counts the outcome sent for m. */
static void count_outcome(sb_source *st, const sb_msg *m, ik_outcome o)
{
    count_job(st, m, o, 0);
    ik_metric *mt = o == IK_DELIVERED       ? st->m_completed
                    : o == IK_DEAD_LETTERED ? st->m_dead
                                            : st->m_abandoned;
    if (mt)
        st->host->metric_add(mt, 1);
}

/* Sends m's outcome, as its records decided, to the broker. */
static void dispose(sb_source *st, sb_msg *m)
{
    sb_dispose(st, m, decide(m));
}

void sb_dispose(sb_source *st, sb_msg *m, ik_outcome o)
{
    char name[300];
    if (!m->d) {
        st->host->log(st->self, IK_LOG_INFO,
                      "message %s: its lock was lost with the connection; not settled, the "
                      "broker delivers it again",
                      msg_name(m, name, sizeof name));
        if (st->m_lock_lost)
            st->host->metric_add(st->m_lock_lost, 1);
        count_job(st, m, o, 1);
        sb_msg_free(st, m);
        return;
    }
    m->decided = o;
    uint64_t state;
    if (o == IK_DEAD_LETTERED) {
        dead_letter_state(st, m->d, m);
        state = PN_REJECTED;
        st->host->log(st->self, IK_LOG_WARN, "message %s: dead-lettered on the broker: %s",
                      msg_name(m, name, sizeof name), m->dead_reason ? m->dead_reason : "?");
    } else if (o == IK_RELEASED) {
        state = st->cfg->broker == IK_SB_BROKER_AMQP ? PN_RELEASED : PN_MODIFIED;
    } else {
        state = PN_ACCEPTED;
    }
    pn_delivery_update(m->d, state);
    ik_sb_client_changed(st->client);
    if (st->m_latency)
        st->host->metric_observe(st->m_latency, (double)(ik_sb_now_ms() - m->received_ms) / 1000.0);
    if (st->settle_second) {
        m->disposed = 1;
        return; /* the broker's settle finishes it (sb_settle_remote) */
    }
    pn_delivery_settle(m->d);
    m->d = NULL;
    count_outcome(st, m, o);
    sb_msg_free(st, m);
}

void sb_settle_ready(sb_source *st)
{
    pthread_mutex_lock(&st->mu);
    sb_msg *list = st->ready;
    st->ready = NULL;
    pthread_mutex_unlock(&st->mu);
    while (list) {
        sb_msg *m = list;
        list = m->ready_next;
        dispose(st, m);
    }
}

void sb_settle_remote(sb_source *st, pn_delivery_t *d)
{
    sb_msg *m = pn_delivery_get_context(d);
    if (!m || !pn_delivery_settled(d))
        return;
    char name[300], why[600] = "";
    uint64_t rs = pn_delivery_remote_state(d);
    ik_sb_condition_text(pn_disposition_condition(pn_delivery_remote(d)), why, sizeof why);
    pn_delivery_settle(d);
    m->d = NULL;
    if (!m->disposed) {
        /* the broker let go of it before we answered (a lock it gave up) */
        st->host->log(st->self, IK_LOG_WARN, "message %s: the broker settled it first%s%s",
                      msg_name(m, name, sizeof name), why[0] ? ": " : "", why);
        return; /* forgotten when its records are told (dispose sees d == NULL) */
    }
    if (rs == PN_REJECTED && why[0]) {
        st->host->log(st->self, IK_LOG_WARN,
                      "message %s: the broker refused the %s: %s; it will be delivered again",
                      msg_name(m, name, sizeof name),
                      m->decided == IK_DELIVERED       ? "completion"
                      : m->decided == IK_DEAD_LETTERED ? "dead-lettering"
                                                       : "abandon",
                      why);
        if (st->m_lock_lost)
            st->host->metric_add(st->m_lock_lost, 1);
        count_job(st, m, m->decided, 1);
    } else {
        count_outcome(st, m, m->decided);
    }
    sb_msg_free(st, m);
}

void sb_settle_connection_lost(sb_source *st)
{
    sb_receive_drop_pending(st);
    for (sb_msg *m = st->live, *next; m; m = next) {
        next = m->next;
        m->d = NULL; /* freed with the connection */
        if (m->resend) {
            /* its copy was not (known to be) accepted: it stays a dead letter */
            sb_msg_free(st, m);
            continue;
        }
        if (m->disposed) {
            /* sent, but the broker's answer never came: its lock is gone
             * either way, so it may come again */
            if (st->m_lock_lost)
                st->host->metric_add(st->m_lock_lost, 1);
            count_job(st, m, m->decided, 1);
            sb_msg_free(st, m);
        }
        /* the others are freed once their records are told (dispose) */
    }
    st->link = NULL;
    st->resend = NULL;
    st->resend_link = NULL;
}
