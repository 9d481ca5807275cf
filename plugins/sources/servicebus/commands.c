/*
 * commands.c: the `servicebus` source's control commands (`intake ctl` or
 * POST /api/v1/control/<pipeline>/<instance>/<command>). They run on the
 * admin server's thread and must return at once, so each only changes
 * state under the source's lock and wakes the run thread; what needs the
 * broker is done there and read back by the next call:
 *
 *   receive {"max_messages": N}  on_demand: take up to N messages now (the
 *       original service's /batch/queue/process?max_batches=N); without an
 *       argument it reports that job: received, completed, abandoned,
 *       dead-lettered, and "done" once every message of it is settled (or
 *       the queue had no more);
 *   status                       what the source holds, the connection, the
 *       receive job, the last peek's summary, and the queue's counts from
 *       the management API (queue_counts.c);
 *   peek {"count": N}            looks at the first N messages of the queue
 *       without locking them (broker's peek-message): the first call asks,
 *       later calls return the result ("state": "done") with a priority
 *       distribution.
 *
 * pause and resume are the engine's own commands on every source: emit
 * waits, the pending queue fills and the source stops giving credit.
 */
#include "commands.h"
#include "queue_counts.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "servicebus/body.h"
#include "servicebus/message.h"

#define PEEK_MAX 250

/* Reads {"<key>": N} with 1 <= N <= max into *n; no argument leaves *n 0. */
static int read_count(json_object *args, const char *key, int64_t max, int64_t *n, char *reason,
                      size_t len)
{
    *n = 0;
    if (!args ||
        (json_object_is_type(args, json_type_object) && json_object_object_length(args) == 0))
        return 0;
    if (!json_object_is_type(args, json_type_object)) {
        snprintf(reason, len, "the argument must be an object like {\"%s\": 10}", key);
        return IK_E_INVAL;
    }
    json_object_object_foreach(args, k, v)
    {
        if (strcmp(k, key) != 0) {
            snprintf(reason, len, "unknown key \"%.64s\" (allowed: %s)", k, key);
            return IK_E_INVAL;
        }
        int64_t x = json_object_get_int64(v);
        if (!json_object_is_type(v, json_type_int) || x < 1 || x > max) {
            snprintf(reason, len, "\"%s\" must be an integer from 1 to %" PRId64, key, max);
            return IK_E_INVAL;
        }
        *n = x;
    }
    return 0;
}

/* The receive job as JSON (mu held). */
static json_object *job_json(const sb_job *j)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    json_object_object_add(o, "requested", json_object_new_int64((int64_t)j->requested));
    json_object_object_add(o, "received", json_object_new_int64((int64_t)j->received));
    json_object_object_add(o, "completed", json_object_new_int64((int64_t)j->completed));
    json_object_object_add(o, "abandoned", json_object_new_int64((int64_t)j->abandoned));
    json_object_object_add(o, "dead_lettered", json_object_new_int64((int64_t)j->dead));
    json_object_object_add(o, "queue_empty", json_object_new_boolean(j->exhausted));
    json_object_object_add(o, "done", json_object_new_boolean(sb_job_done(j)));
    return o;
}

int sb_job_done(const sb_job *j)
{
    uint64_t settled = j->completed + j->abandoned + j->dead + j->lost;
    return j->started && (j->exhausted || j->received >= j->requested) && settled >= j->received;
}

static int cmd_receive(void *arg, json_object *args, json_object **reply, char *reason, size_t len)
{
    sb_source *st = arg;
    int64_t n;
    int rc = read_count(args, "max_messages", 100000, &n, reason, len);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&st->mu);
    if (n > 0) {
        if (!st->cfg->on_demand) {
            pthread_mutex_unlock(&st->mu);
            snprintf(reason, len, "on_demand = false: the source receives all the time");
            return IK_E_STATE;
        }
        if (st->job.started && !sb_job_done(&st->job)) {
            pthread_mutex_unlock(&st->mu);
            snprintf(reason, len, "a receive of %" PRIu64 " message(s) is still running",
                     st->job.requested);
            return IK_E_STATE;
        }
        memset(&st->job, 0, sizeof st->job);
        st->job.started = 1;
        st->job.requested = (uint64_t)n;
        st->demand = (uint64_t)n;
    } else if (!st->job.started) {
        pthread_mutex_unlock(&st->mu);
        snprintf(reason, len, "no receive yet: send {\"max_messages\": N}");
        return IK_E_STATE;
    }
    json_object *o = job_json(&st->job);
    pthread_mutex_unlock(&st->mu);
    if (n > 0 && st->client)
        ik_sb_client_interrupt(st->client);
    if (!o)
        return IK_E_NOMEM;
    *reply = o;
    return 0;
}

static int cmd_status(void *arg, json_object *args, json_object **reply, char *reason, size_t len)
{
    sb_source *st = arg;
    int64_t n;
    int rc = read_count(args, "none", 1, &n, reason, len);
    if (rc != 0)
        return rc;
    json_object *o = json_object_new_object();
    if (!o)
        return IK_E_NOMEM;
    pthread_mutex_lock(&st->mu);
    json_object_object_add(o, "queue", json_object_new_string(st->address));
    json_object_object_add(o, "connected", json_object_new_boolean(!st->down && st->seen_up));
    if (st->down)
        json_object_object_add(o, "down_reason", json_object_new_string(st->down_reason));
    json_object_object_add(o, "messages_held", json_object_new_int64(st->held));
    json_object_object_add(o, "paused_by_pipeline", json_object_new_boolean(st->pipeline_full));
    json_object_object_add(o, "on_demand", json_object_new_boolean(st->cfg->on_demand));
    if (st->job.started)
        json_object_object_add(o, "receive", job_json(&st->job));
    if (st->peek_result)
        json_object_object_add(o, "last_peek", json_object_get(st->peek_result));
    pthread_mutex_unlock(&st->mu);
    sb_queue_counts_report(st, o);
    *reply = o;
    return 0;
}

static int cmd_peek(void *arg, json_object *args, json_object **reply, char *reason, size_t len)
{
    sb_source *st = arg;
    int64_t n;
    int rc = read_count(args, "count", PEEK_MAX, &n, reason, len);
    if (rc != 0)
        return rc;
    if (st->cfg->broker != IK_SB_BROKER_SERVICEBUS) {
        snprintf(reason, len, "peek needs broker = \"servicebus\" (a $management node)");
        return IK_E_STATE;
    }
    json_object *o = NULL;
    pthread_mutex_lock(&st->mu);
    if (n == 0)
        n = st->peek_count ? st->peek_count : 10;
    if (st->peek_result && st->peek_count == n && !st->peek_wanted) {
        o = json_object_get(st->peek_result);
        st->peek_wanted = n; /* the next call sees a fresh one */
    } else {
        st->peek_wanted = n;
        o = json_object_new_object();
        if (o)
            json_object_object_add(o, "state", json_object_new_string("pending"));
    }
    pthread_mutex_unlock(&st->mu);
    if (st->client)
        ik_sb_client_interrupt(st->client);
    if (!o)
        return IK_E_NOMEM;
    *reply = o;
    return 0;
}

/* ---- the peek itself, on the run thread --------------------------------- */

/* A summary of one peeked message, counted into prio. NULL when out of memory. */
static json_object *peeked_summary(const char *bytes, size_t len, json_object *prio)
{
    ik_sb_message msg;
    char err[300];
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    if (ik_sb_message_decode(bytes, len, 0, &msg, err, sizeof err) != 0) {
        json_object_object_add(o, "error", json_object_new_string(err));
        ik_sb_message_clear(&msg);
        return o;
    }
    if (msg.message_id)
        json_object_object_add(o, "message_id", json_object_new_string(msg.message_id));
    if (msg.has_sequence_number)
        json_object_object_add(o, "sequence_number", json_object_new_int64(msg.sequence_number));
    if (msg.has_enqueued_time)
        json_object_object_add(o, "enqueued_time_ms", json_object_new_int64(msg.enqueued_time_ms));
    json_object_object_add(o, "delivery_count", json_object_new_int64(msg.delivery_count));
    if (msg.session_id)
        json_object_object_add(o, "session_id", json_object_new_string(msg.session_id));
    json_object_object_add(o, "size", json_object_new_int64((int64_t)len));
    ik_sb_emails e;
    if (ik_sb_body_emails(&msg, 0, &e, err, sizeof err) == 0) {
        json_object_object_add(o, "emails", json_object_new_int64((int64_t)e.n));
        if (e.batch_id)
            json_object_object_add(o, "batch_id", json_object_new_string(e.batch_id));
        char key[16];
        snprintf(key, sizeof key, "%d", e.has_priority ? e.priority : 0);
        json_object *c;
        int64_t was = json_object_object_get_ex(prio, key, &c) ? json_object_get_int64(c) : 0;
        json_object_object_add(prio, key, json_object_new_int64(was + 1));
        json_object_object_add(o, "priority", json_object_new_int(e.has_priority ? e.priority : 0));
    } else {
        json_object_object_add(o, "error", json_object_new_string(err));
    }
    ik_sb_emails_clear(&e);
    ik_sb_message_clear(&msg);
    return o;
}

/* Walks the reply's {"messages": [{"message": binary}, ...]} into a result. */
static json_object *peek_result(pn_message_t *reply, long status)
{
    json_object *out = json_object_new_object(), *list = json_object_new_array(),
                *prio = json_object_new_object();
    if (!out || !list || !prio) {
        json_object_put(out);
        json_object_put(list);
        json_object_put(prio);
        return NULL;
    }
    pn_data_t *b = pn_message_body(reply);
    if (status == 200 && ik_sb_data_find(b, "messages") && pn_data_type(b) == PN_LIST) {
        size_t m = pn_data_get_list(b);
        pn_data_enter(b);
        for (size_t j = 0; j < m; j++) {
            if (!pn_data_next(b) || pn_data_type(b) != PN_MAP)
                continue;
            size_t mm = pn_data_get_map(b);
            pn_data_enter(b);
            for (size_t x = 0; x + 1 < mm; x += 2) {
                pn_data_next(b);
                pn_bytes_t k = pn_data_get_string(b);
                pn_data_next(b);
                if (k.size == 7 && memcmp(k.start, "message", 7) == 0 &&
                    pn_data_type(b) == PN_BINARY) {
                    pn_bytes_t bin = pn_data_get_binary(b);
                    json_object *s = peeked_summary(bin.start, bin.size, prio);
                    if (s)
                        json_object_array_add(list, s);
                }
            }
            pn_data_exit(b);
        }
    }
    json_object_object_add(out, "state", json_object_new_string("done"));
    json_object_object_add(out, "as_of_ms", json_object_new_int64(sb_unix_ms()));
    json_object_object_add(out, "messages", list);
    json_object_object_add(out, "priority_distribution", prio);
    return out;
}

static void peek_reply(void *arg, pn_message_t *reply, const char *error)
{
    sb_source *st = arg;
    long status = reply ? ik_sb_reply_status(reply, "statusCode") : -1;
    json_object *r = NULL;
    if (reply && (status == 200 || status == 204)) {
        r = peek_result(reply, status);
    } else {
        char desc[300] = "";
        if (reply)
            ik_sb_reply_text(reply, "statusDescription", desc, sizeof desc);
        r = json_object_new_object();
        if (r) {
            char why[400];
            snprintf(why, sizeof why, "peek failed: %ld %s", status,
                     desc[0] ? desc : (error ? error : ""));
            json_object_object_add(r, "state", json_object_new_string("failed"));
            json_object_object_add(r, "error", json_object_new_string(why));
        }
    }
    pthread_mutex_lock(&st->mu);
    json_object_put(st->peek_result);
    st->peek_result = r;
    st->peek_inflight = 0;
    pthread_mutex_unlock(&st->mu);
}

void sb_commands_work(sb_source *st)
{
    pthread_mutex_lock(&st->mu);
    int64_t want = st->peek_inflight ? 0 : st->peek_wanted;
    if (want) {
        st->peek_wanted = 0;
        st->peek_count = want;
        st->peek_inflight = 1;
    }
    pthread_mutex_unlock(&st->mu);
    if (!want)
        return;
    pn_message_t *req = pn_message();
    if (req) {
        pn_data_t *ap = pn_message_properties(req);
        pn_data_put_map(ap);
        pn_data_enter(ap);
        pn_data_put_string(ap, pn_bytes(9, "operation"));
        pn_data_put_string(ap, pn_bytes(26, "com.microsoft:peek-message"));
        pn_data_exit(ap);
        pn_data_t *b = pn_message_body(req);
        pn_data_put_map(b);
        pn_data_enter(b);
        pn_data_put_string(b, pn_bytes(20, "from-sequence-number"));
        pn_data_put_long(b, 0);
        pn_data_put_string(b, pn_bytes(13, "message-count"));
        pn_data_put_int(b, (int32_t)want);
        pn_data_exit(b);
        pn_message_set_inferred(req, false);
    }
    if (!req || ik_sb_client_request(st->client, st->mgmt_address, req, peek_reply, st) != 0)
        peek_reply(st, NULL, req ? ik_sb_client_error(st->client) : "out of memory");
}

int sb_commands_register(sb_source *st)
{
    const ik_host *h = st->host;
    if (!IK_HOST_HAS(h, command_register) || !h->command_register)
        return 0;
    int rc = h->command_register(st->self, "receive",
                                 "on_demand: take up to {\"max_messages\": N} messages now; "
                                 "without an argument, how that receive went",
                                 cmd_receive, st);
    if (rc == 0)
        rc = h->command_register(st->self, "status",
                                 "messages held, the connection, the receive job, the last peek, "
                                 "the queue's counts",
                                 cmd_status, st);
    if (rc == 0)
        rc = h->command_register(st->self, "peek",
                                 "look at the first {\"count\": N} messages without locking "
                                 "them; call again for the result",
                                 cmd_peek, st);
    return rc;
}
