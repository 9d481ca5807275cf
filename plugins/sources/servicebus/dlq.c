/*
 * dlq.c: dead-letter queue mode (`subqueue = "deadletter"`), the original
 * service's dead-letter processing done without losing anything:
 *
 *   retry count under max_retries -> sent back to the main queue with the
 *       count raised (it survives: application property "retry_count", and
 *       the envelope's own "retry_count") and a capped exponential delay
 *       (scheduled enqueue); the dead letter is completed only once the
 *       broker has accepted the copy;
 *   otherwise (or unreadable)     -> one record settled as dead-lettered,
 *       which the pipeline's dead_letter sink archives; the dead letter is
 *       completed only once that sink has stored it (settle.c), else it
 *       stays in the dead-letter queue and the engine reports it not stored.
 *
 * The copy gets a new message id ("<id>-retry-<n>": the main queue's
 * duplicate detection would drop the old one) and keeps the first id in
 * "intake_original_message_id", from which record ids are made, so they
 * stay the same across retries. Run thread only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <proton/disposition.h>

#include "sb_source.h"
#include "servicebus/body.h"

/* The retry count of a dead letter: application property "retry_count",
 * else the envelope's, else 0. */
static int64_t retry_count_of(const ik_sb_message *msg, const ik_sb_emails *e)
{
    json_object *v;
    if (msg->app_properties && json_object_object_get_ex(msg->app_properties, "retry_count", &v)) {
        if (json_object_is_type(v, json_type_int))
            return json_object_get_int64(v);
        if (json_object_is_type(v, json_type_string))
            return strtoll(json_object_get_string(v), NULL, 10);
    }
    return e && e->is_envelope ? e->retry_count : 0;
}

/* The delay before retry n (0-based): retry_delay * 2^n, at most retry_delay_max. */
static uint64_t retry_delay(const sb_config *cfg, int64_t n)
{
    uint64_t d = cfg->retry_delay;
    for (int64_t i = 0; i < n && d < cfg->retry_delay_max; i++)
        d *= 2;
    return d < cfg->retry_delay_max ? d : cfg->retry_delay_max;
}

/* Puts a JSON value as the closest AMQP type. */
static void put_json(pn_data_t *d, json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_boolean:
        pn_data_put_bool(d, json_object_get_boolean(v));
        break;
    case json_type_int:
        pn_data_put_long(d, json_object_get_int64(v));
        break;
    case json_type_double:
        pn_data_put_double(d, json_object_get_double(v));
        break;
    case json_type_string:
        pn_data_put_string(
            d, pn_bytes((size_t)json_object_get_string_len(v), json_object_get_string(v)));
        break;
    case json_type_null:
        pn_data_put_null(d);
        break;
    default: {
        const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        pn_data_put_string(d, pn_bytes(strlen(s), s));
    }
    }
}

/* The application properties of the copy: the dead letter's, without the
 * broker's dead-letter reason (kept as last_dead_letter_reason), with the
 * raised retry count and the original message id. */
static void put_app_properties(pn_data_t *ap, const ik_sb_message *msg, int64_t next,
                               const char *original_id)
{
    pn_data_put_map(ap);
    pn_data_enter(ap);
    if (msg->app_properties) {
        json_object_object_foreach(msg->app_properties, k, v)
        {
            if (!strcmp(k, "retry_count") || !strcmp(k, "DeadLetterReason") ||
                !strcmp(k, "DeadLetterErrorDescription") ||
                !strcmp(k, "intake_original_message_id") || !strcmp(k, "last_dead_letter_reason"))
                continue;
            pn_data_put_string(ap, pn_bytes(strlen(k), k));
            put_json(ap, v);
        }
    }
    pn_data_put_string(ap, pn_bytes(11, "retry_count"));
    pn_data_put_long(ap, next);
    if (original_id) {
        pn_data_put_string(ap, pn_bytes(26, "intake_original_message_id"));
        pn_data_put_string(ap, pn_bytes(strlen(original_id), original_id));
    }
    if (msg->dead_letter_reason) {
        pn_data_put_string(ap, pn_bytes(23, "last_dead_letter_reason"));
        pn_data_put_string(ap, pn_bytes(strlen(msg->dead_letter_reason), msg->dead_letter_reason));
    }
    pn_data_exit(ap);
}

/* The copy's body: an envelope gets its retry_count raised, anything else
 * is sent back byte for byte. Malloc'd text in *out. 0 or IK_E_NOMEM. */
static int copy_body(const ik_sb_message *msg, ik_sb_emails *e, int64_t next, char **out,
                     size_t *len)
{
    if (!e->is_envelope || !e->envelope) {
        *out = malloc(msg->data.len ? msg->data.len : 1);
        if (!*out)
            return IK_E_NOMEM;
        memcpy(*out, msg->data.p ? msg->data.p : "", msg->data.len);
        *len = msg->data.len;
        return 0;
    }
    json_object *env = e->envelope;
    json_object *emails = json_object_new_array_ext((int)e->n);
    for (size_t i = 0; emails && i < e->n; i++)
        json_object_array_add(emails, json_object_get(e->emails[i]));
    json_object_object_add(env, "emails", emails);
    json_object_object_add(env, "retry_count", json_object_new_int64(next));
    const char *s = json_object_to_json_string_ext(env, JSON_C_TO_STRING_PLAIN |
                                                            JSON_C_TO_STRING_NOSLASHESCAPE);
    *out = strdup(s);
    *len = strlen(s);
    json_object_object_del(env, "emails");
    return *out ? 0 : IK_E_NOMEM;
}

/* Encodes the copy of a dead letter into m->raw. 0 or IK_E_NOMEM. */
static int make_copy(sb_source *st, sb_msg *m, const ik_sb_message *msg, ik_sb_emails *e,
                     int64_t count)
{
    char *body = NULL;
    size_t blen = 0;
    if (copy_body(msg, e, count + 1, &body, &blen) != 0)
        return IK_E_NOMEM;
    const char *orig = msg->message_id;
    json_object *v;
    if (msg->app_properties &&
        json_object_object_get_ex(msg->app_properties, "intake_original_message_id", &v) &&
        json_object_is_type(v, json_type_string))
        orig = json_object_get_string(v);
    char id[400];
    snprintf(id, sizeof id, "%s-retry-%" PRId64, orig ? orig : "message", count + 1);
    pn_message_t *pm = pn_message();
    if (!pm) {
        free(body);
        return IK_E_NOMEM;
    }
    pn_message_set_id(pm, (pn_msgid_t){.type = PN_STRING, .u.as_bytes = {strlen(id), id}});
    pn_message_set_durable(pm, true);
    pn_message_set_content_type(pm, msg->content_type ? msg->content_type : "application/json");
    if (msg->session_id)
        pn_message_set_group_id(pm, msg->session_id);
    put_app_properties(pn_message_properties(pm), msg, count + 1, orig);
    pn_data_t *ann = pn_message_annotations(pm);
    pn_data_put_map(ann);
    pn_data_enter(ann);
    pn_data_put_symbol(ann, pn_bytes(28, "x-opt-scheduled-enqueue-time"));
    pn_data_put_timestamp(ann, sb_unix_ms() + (int64_t)retry_delay(st->cfg, count));
    pn_data_exit(ann);
    pn_data_put_binary(pn_message_body(pm), pn_bytes(blen, body));
    pn_message_set_inferred(pm, true);
    pn_rwbytes_t buf = {0, NULL};
    ssize_t n = pn_message_encode2(pm, &buf);
    pn_message_free(pm);
    free(body);
    if (n < 0) {
        free(buf.start);
        return IK_E_NOMEM;
    }
    free(m->raw);
    m->raw = buf.start;
    m->raw_len = (size_t)n;
    return 0;
}

int sb_dlq_message(sb_source *st, sb_msg *m, const ik_sb_message *msg, char *why, size_t whylen)
{
    ik_sb_emails e;
    char err[400];
    size_t max = st->cfg->max_emails > 0 ? (size_t)st->cfg->max_emails : 0;
    int readable = ik_sb_body_emails(msg, max, &e, err, sizeof err) == 0;
    int64_t count = retry_count_of(msg, readable ? &e : NULL);
    int resend = readable && count < st->cfg->max_retries;
    const char *dl = msg->dead_letter_reason ? msg->dead_letter_reason : "no reason given";
    if (!readable)
        snprintf(why, whylen,
                 "dead letter with an unreadable body (%s), archived; it was "
                 "dead-lettered for: %s",
                 err, dl);
    else if (!resend)
        snprintf(why, whylen,
                 "retries exhausted (%" PRId64 " of %" PRId64 "); it was "
                 "dead-lettered for: %s%s%s",
                 count, st->cfg->max_retries, dl, msg->dead_letter_description ? ": " : "",
                 msg->dead_letter_description ? msg->dead_letter_description : "");
    if (resend && make_copy(st, m, msg, &e, count) != 0) {
        snprintf(why, whylen, "out of memory making its retry copy; archived instead");
        resend = 0;
    }
    ik_sb_emails_clear(&e);
    if (!resend)
        return 0; /* archived: the caller makes the record */
    m->retry_count = count;
    m->resend = 1;
    m->resend_next = NULL;
    sb_msg **tail = &st->resend;
    while (*tail)
        tail = &(*tail)->resend_next;
    *tail = m;
    return 1;
}

/* The sender link's news: the copy's outcome decides the dead letter's. */
static void sender_delivery(void *arg, pn_link_t *l, pn_delivery_t *d)
{
    sb_source *st = arg;
    (void)l;
    if (!pn_delivery_remote_state(d) && !pn_delivery_settled(d))
        return;
    sb_msg *m = pn_delivery_get_context(d);
    uint64_t rs = pn_delivery_remote_state(d);
    pn_condition_t *c = pn_disposition_condition(pn_delivery_remote(d));
    pn_delivery_settle(d);
    if (!m || !m->d)
        return; /* the dead letter's own lock went with a lost connection */
    if (rs == PN_ACCEPTED) {
        if (st->m_resent)
            st->host->metric_add(st->m_resent, 1);
        sb_dispose(st, m, IK_DELIVERED);
        return;
    }
    char why[400];
    ik_sb_condition_text(c, why, sizeof why);
    st->host->log(st->self, IK_LOG_ERROR,
                  "message %s: the queue refused the retry copy (%s); it stays in the "
                  "dead-letter queue",
                  m->message_id ? m->message_id : "?", why[0] ? why : "not accepted");
    sb_dispose(st, m, IK_RELEASED);
}

static void sender_detached(void *arg, pn_link_t *l, const char *why)
{
    sb_source *st = arg;
    (void)l;
    if (!st->stopping)
        st->host->log(st->self, IK_LOG_WARN, "the retry sender on %s was detached: %s",
                      st->ep.entity, why);
    st->resend_link = NULL;
}

static const ik_sb_link_ops sender_ops = {
    .delivery = sender_delivery,
    .detached = sender_detached,
};

void sb_dlq_send(sb_source *st)
{
    if (!st->resend)
        return;
    if (!st->resend_link) {
        ik_sb_link_opts o = {.address = st->ep.entity, .ops = &sender_ops, .arg = st};
        st->resend_link = ik_sb_client_attach(st->client, &o);
        if (!st->resend_link) {
            st->host->log(st->self, IK_LOG_WARN, "cannot attach the retry sender to %s: %s",
                          st->ep.entity, ik_sb_client_error(st->client));
            return; /* tried again next turn */
        }
    }
    while (st->resend && pn_link_credit(st->resend_link) > 0) {
        sb_msg *m = st->resend;
        st->resend = m->resend_next;
        char tag[32];
        int tl = snprintf(tag, sizeof tag, "r%lu", ++st->resend_tag);
        pn_delivery_t *d = pn_delivery(st->resend_link, pn_dtag(tag, (size_t)tl));
        pn_delivery_set_context(d, m);
        m->resend = 2;
        pn_link_send(st->resend_link, m->raw, m->raw_len);
        pn_link_advance(st->resend_link);
        ik_sb_client_changed(st->client);
        st->host->log(st->self, IK_LOG_INFO,
                      "message %s: sent back to %s for retry %" PRId64 " of %" PRId64,
                      m->message_id ? m->message_id : "?", st->ep.entity, m->retry_count + 1,
                      st->cfg->max_retries);
    }
}

void sb_dlq_give_back(sb_source *st)
{
    while (st->resend) {
        sb_msg *m = st->resend;
        st->resend = m->resend_next;
        m->resend = 0;
        sb_dispose(st, m, IK_RELEASED); /* back in the dead-letter queue */
    }
}
