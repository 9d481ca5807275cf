/*
 * servicebus_source.c: the `servicebus` source (intake-servicebus.so, with
 * the sink of the same name in another object): reads an Azure Service Bus
 * queue (or its dead-letter queue, or a queue of another AMQP 1.0 broker such
 * as RabbitMQ) in peek-lock mode and turns each message into records: one
 * per email of a batch envelope, one for a single email.
 *
 * This file holds the options, create/destroy, health and the run loop:
 * connect (with capped, jittered backoff on failure), attach, then pump the
 * connection, emit what waits, grant credit, tell the broker the outcomes
 * the engine settled and renew locks. The rest is in receive.c (messages to
 * records, credit), settle.c (outcomes to dispositions), lock_renewal.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "queue_counts.h"
#include "sb_source.h"

static const char *const subqueue_choices[] = {"none", "deadletter", NULL};

static const ik_option sb_options[] = {
    IK_SB_ENDPOINT_OPTIONS(sb_config),
    {"subqueue", IK_OPT_CHOICE, "none", 0,
     "none, or deadletter: read <queue>/$DeadLetterQueue and send messages back for another "
     "try (see max_retries) or archive them in the pipeline's dead_letter sink.",
     IK_OPT_AT(sb_config, subqueue), .choices = subqueue_choices},
    {"session_id", IK_OPT_STRING, NULL, 0,
     "Read only this session of a session queue (messages in order).",
     IK_OPT_AT(sb_config, session_id)},
    {"next_session", IK_OPT_BOOL, "false", 0,
     "Lock the next available session of a session queue and read it in order.",
     IK_OPT_AT(sb_config, next_session)},
    {"prefetch", IK_OPT_INT, "256", 0,
     "At most this many messages held unsettled (credit given to the broker); fewer while "
     "the pipeline is full.",
     IK_OPT_AT(sb_config, prefetch), .min = "1", .max = "100000"},
    {"lock_renewal", IK_OPT_BOOL, "true", 0,
     "Renew the lock of messages still in the pipeline at half their lock duration.",
     IK_OPT_AT(sb_config, lock_renewal)},
    {"max_lock_renewal", IK_OPT_DURATION, "1h", 0,
     "Stop renewing a message's lock after this long.", IK_OPT_AT(sb_config, max_lock_renewal),
     .min = "1s"},
    {"lock_duration", IK_OPT_DURATION, "60s", 0,
     "The queue's lock duration, used when the broker does not say when a lock ends.",
     IK_OPT_AT(sb_config, lock_duration), .min = "1s", .max = "5m"},
    {"reconnect_initial", IK_OPT_DURATION, "1s", 0,
     "First wait before connecting again after the broker was lost; doubles each failure.",
     IK_OPT_AT(sb_config, reconnect_initial), .min = "10ms"},
    {"reconnect_max", IK_OPT_DURATION, "60s", 0, "Longest wait between connection attempts.",
     IK_OPT_AT(sb_config, reconnect_max), .min = "10ms"},
    {"timeout", IK_OPT_DURATION, "30s", 0,
     "Time limit for connecting, attaching and each broker request.",
     IK_OPT_AT(sb_config, op_timeout), .min = "100ms"},
    {"id_field", IK_OPT_STRING, "id", 0,
     "The email field that holds its id (then internet_message_id, message_id); without "
     "one, the message id and the email's index.",
     IK_OPT_AT(sb_config, id_field)},
    {"max_emails", IK_OPT_INT, "1000", 0, "Most emails one message may carry.",
     IK_OPT_AT(sb_config, max_emails), .min = "1"},
    {"on_demand", IK_OPT_BOOL, "false", 0,
     "Take no messages until the `receive` command asks for some.",
     IK_OPT_AT(sb_config, on_demand)},
    {"max_retries", IK_OPT_INT, "3", 0,
     "subqueue = deadletter: messages tried fewer times go back to the queue.",
     IK_OPT_AT(sb_config, max_retries), .min = "0"},
    {"retry_delay", IK_OPT_DURATION, "30s", 0,
     "subqueue = deadletter: delay before the first retry; doubles with each retry.",
     IK_OPT_AT(sb_config, retry_delay)},
    {"retry_delay_max", IK_OPT_DURATION, "1h", 0, "subqueue = deadletter: the longest retry delay.",
     IK_OPT_AT(sb_config, retry_delay_max)},
    {"management_endpoint", IK_OPT_STRING, NULL, 0,
     "Where the status command reads the queue's counts (the management REST API); unset: "
     "https://<host of the connection string>; \"none\" or empty: no counts.",
     IK_OPT_AT(sb_config, management_endpoint)},
    {0},
};

/* ---- health ------------------------------------------------------------- */

static void set_down(sb_source *st, const char *why)
{
    pthread_mutex_lock(&st->mu);
    if (!st->down) {
        st->down = 1;
        st->down_since_unix = (uint64_t)time(NULL);
    }
    snprintf(st->down_reason, sizeof st->down_reason, "%s", why);
    pthread_mutex_unlock(&st->mu);
}

static void set_up(sb_source *st)
{
    pthread_mutex_lock(&st->mu);
    st->down = 0;
    pthread_mutex_unlock(&st->mu);
}

static int sb_health(void *state, ik_health *out)
{
    sb_source *st = state;
    pthread_mutex_lock(&st->mu);
    out->ok = !st->down;
    if (st->down) {
        char t[32];
        time_t s = (time_t)st->down_since_unix;
        struct tm tm;
        gmtime_r(&s, &tm);
        strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%SZ", &tm);
        snprintf(out->reason, sizeof out->reason, "broker unreachable since %s: %s", t,
                 st->down_reason);
    } else {
        snprintf(out->reason, sizeof out->reason, "%" PRId64 " message(s) held", st->held);
    }
    pthread_mutex_unlock(&st->mu);
    return 0;
}

/* ---- connecting --------------------------------------------------------- */

/* Connects and attaches the receiver. 0, or a negative code with the
 * client's error saying why. */
static int open_receiver(sb_source *st)
{
    int rc = ik_sb_client_connect(st->client);
    if (rc != 0)
        return rc;
    ik_sb_link_opts o = {
        .address = st->address,
        .receiver = 1,
        .peek_lock = st->settle_second,
        .settle_first = !st->settle_second,
        .session_id = st->cfg->session_id,
        .next_session = st->cfg->next_session,
        .ops = &sb_receiver_ops,
        .arg = st,
    };
    st->link = ik_sb_client_attach(st->client, &o);
    if (!st->link) {
        ik_sb_client_close(st->client, 1000);
        return IK_E_IO;
    }
    return 0;
}

/* Waits before the next attempt: capped exponential backoff with jitter
 * (half to all of the step). Returns 1 when stopping. */
static int backoff_wait(sb_source *st, uint64_t *step)
{
    uint64_t wait = *step / 2 + (uint64_t)rand() % (*step / 2 + 1);
    *step = *step * 2 > st->cfg->reconnect_max ? st->cfg->reconnect_max : *step * 2;
    return st->host->wait_ms(st->self, wait);
}

/* Connects until it works or the engine stops. 0 when connected. */
static int connect_with_backoff(sb_source *st)
{
    uint64_t step = st->cfg->reconnect_initial;
    int attempt = 0;
    while (!st->host->stopping(st->self) && !st->stopping) {
        if (open_receiver(st) == 0) {
            if (attempt > 0 && st->m_reconnects)
                st->host->metric_add(st->m_reconnects, 1);
            set_up(st);
            st->host->log(st->self, IK_LOG_INFO, "receiving from %s", st->where);
            return 0;
        }
        const char *why = ik_sb_client_error(st->client);
        set_down(st, why);
        st->host->log(st->self, attempt == 0 ? IK_LOG_ERROR : IK_LOG_WARN,
                      "cannot receive from %s: %s", st->where, why);
        attempt++;
        if (backoff_wait(st, &step))
            break;
    }
    return IK_E_STOPPING;
}

/* ---- the loop ----------------------------------------------------------- */

/* One turn: events, outcomes, emitting, credit, renewals. Returns IK_E_IO
 * when the connection is lost. */
static int turn(sb_source *st)
{
    int waiting = st->pending.n > 0;
    int rc = ik_sb_client_pump(st->client, waiting ? 10 : 200);
    if (rc == IK_E_IO)
        return rc;
    sb_settle_ready(st);
    sb_receive_emit_pending(st);
    sb_receive_flow(st);
    sb_renew_locks(st);
    sb_dlq_send(st);
    sb_commands_work(st);
    pthread_mutex_lock(&st->mu);
    st->held = st->nlive;
    st->pipeline_full = st->pending.n > 0;
    st->seen_up = 1;
    pthread_mutex_unlock(&st->mu);
    if (!st->link) {
        /* the broker detached the receiver: start over on a new connection */
        ik_sb_client_close(st->client, 1000);
        return IK_E_IO;
    }
    return 0;
}

/* After stop: gives back what waits, then waits (bounded) until every
 * message still held is settled with the broker. */
static void finish(sb_source *st)
{
    sb_receive_drop_pending(st);
    sb_dlq_give_back(st);
    if (st->link) {
        pn_link_drain(st->link, 0);
        ik_sb_client_changed(st->client);
    }
    uint64_t last_change = ik_sb_now_ms();
    unsigned before = st->nlive;
    while (st->nlive > 0 && ik_sb_client_connected(st->client)) {
        if (ik_sb_client_pump(st->client, 100) == IK_E_IO)
            break;
        sb_settle_ready(st);
        sb_renew_locks(st);
        if (st->nlive != before) {
            before = st->nlive;
            last_change = ik_sb_now_ms();
        }
        /* records in the pipeline are settled by the engine, which waits
         * for them; only a silent broker makes this give up */
        int all_told = 1;
        pthread_mutex_lock(&st->mu);
        for (sb_msg *m = st->live; m && all_told; m = m->next)
            all_told = m->records == 0;
        pthread_mutex_unlock(&st->mu);
        if (all_told && ik_sb_now_ms() - last_change > st->cfg->op_timeout)
            break;
    }
    ik_sb_client_close(st->client, 2000);
    sb_settle_connection_lost(st);
}

static int sb_run(void *state)
{
    sb_source *st = state;
    srand((unsigned)(ik_sb_now_ms() ^ (uintptr_t)st));
    while (!st->host->stopping(st->self) && !st->stopping) {
        if (!ik_sb_client_connected(st->client) && connect_with_backoff(st) != 0)
            break;
        if (turn(st) == IK_E_IO) {
            const char *why = ik_sb_client_error(st->client);
            st->host->log(st->self, IK_LOG_WARN, "lost the broker (%s): %s; connecting again",
                          st->where, why[0] ? why : "connection closed");
            set_down(st, why[0] ? why : "connection lost");
            sb_settle_connection_lost(st);
            uint64_t step = st->cfg->reconnect_initial;
            if (backoff_wait(st, &step))
                break;
        }
    }
    finish(st);
    return 0;
}

static void sb_stop(void *state)
{
    sb_source *st = state;
    st->stopping = 1;
    if (st->client)
        ik_sb_client_interrupt(st->client);
}

/* ---- create / destroy --------------------------------------------------- */

static void make_metrics(sb_source *st)
{
    const ik_host *h = st->host;
    static const double bounds[] = {0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 1800};
    st->m_received = h->counter(st->self, "messages_received_total", "Messages received.");
    st->m_completed = h->counter(st->self, "messages_completed_total", "Messages completed.");
    st->m_abandoned = h->counter(st->self, "messages_abandoned_total",
                                 "Messages given back to the broker (abandon or release).");
    st->m_dead = h->counter(st->self, "messages_dead_lettered_total",
                            "Messages dead-lettered on the broker.");
    st->m_renewals = h->counter(st->self, "lock_renewals_total", "Message locks renewed.");
    st->m_lock_lost = h->counter(st->self, "lock_lost_total",
                                 "Messages whose lock was lost before they were settled.");
    st->m_reconnects = h->counter(st->self, "reconnects_total", "Connections made again.");
    st->m_unreadable = h->counter(st->self, "messages_unreadable_total",
                                  "Messages whose body could not be read (dead-lettered).");
    if (st->cfg->subqueue == 1)
        st->m_resent = h->counter(st->self, "dead_letters_resent_total",
                                  "Dead letters sent back to the queue for another try.");
    st->m_latency = h->histogram(st->self, "receive_to_settle_seconds",
                                 "Time from receiving a message to sending its outcome.", bounds,
                                 sizeof bounds / sizeof *bounds);
}

static void sb_destroy(void *state);

static int sb_create(const ik_host *host, ik_instance *self, const void *config, void **state)
{
    const sb_config *cfg = config;
    sb_source *st = calloc(1, sizeof *st);
    if (!st)
        return IK_E_NOMEM;
    st->host = host;
    st->self = self;
    st->cfg = cfg;
    pthread_mutex_init(&st->mu, NULL);
    char err[400];
    ik_sb_endpoint_opts eo = IK_SB_ENDPOINT_OPTS_OF(cfg);
    int rc = ik_sb_endpoint_init(&st->ep, &eo, err, sizeof err);
    if (rc != 0) {
        host->log(self, IK_LOG_ERROR, "%s", rc == IK_E_NOMEM ? "out of memory" : err);
        sb_destroy(st);
        return rc == IK_E_NOMEM ? rc : IK_E_CONFIG;
    }
    const char *entity = st->ep.entity;
    int n = cfg->subqueue == 1 ? asprintf(&st->address, "%s/$DeadLetterQueue", entity)
                               : asprintf(&st->address, "%s", entity);
    if (n < 0 || asprintf(&st->mgmt_address, "%s/$management", st->address) < 0) {
        sb_destroy(st);
        return IK_E_NOMEM;
    }
    st->settle_second = cfg->broker == IK_SB_BROKER_SERVICEBUS;
    st->next_renew = UINT64_MAX;
    st->lock_ms = cfg->lock_duration;
    ik_sb_endpoint_describe(&st->ep, st->where, sizeof st->where);
    if (st->ep.client.tls && !cfg->tls_verify)
        host->log(self, IK_LOG_WARN,
                  "tls_verify = false: the broker's certificate is not checked (%s)", st->where);
    st->client = ik_sb_client_new(&st->ep.client);
    if (!st->client) {
        sb_destroy(st);
        return IK_E_NOMEM;
    }
    make_metrics(st);
    if ((rc = sb_commands_register(st)) != 0) {
        host->log(self, IK_LOG_ERROR, "cannot register the control commands: %s",
                  host->strerror(rc));
        sb_destroy(st);
        return rc;
    }
    *state = st;
    return 0;
}

static void sb_destroy(void *state)
{
    sb_source *st = state;
    if (!st)
        return;
    sb_queue_counts_free(st);
    ik_sb_client_free(st->client);
    while (st->live)
        sb_msg_free(st, st->live);
    free(st->pending.recs);
    free(st->rbuf.p);
    ik_sb_endpoint_clear(&st->ep);
    free(st->address);
    free(st->mgmt_address);
    json_object_put(st->peek_result);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* Checks what the option table cannot: the connection string and queue. */
static int sb_check(const ik_host *host, ik_instance *self, const void *config)
{
    const sb_config *cfg = config;
    char err[400];
    ik_sb_endpoint_opts eo = IK_SB_ENDPOINT_OPTS_OF(cfg);
    if (ik_sb_endpoint_check(&eo, err, sizeof err) != 0) {
        host->log(self, IK_LOG_ERROR, "%s", err);
        return IK_E_CONFIG;
    }
    if (sb_queue_counts_check(cfg, err, sizeof err) != 0) {
        host->log(self, IK_LOG_ERROR, "%s", err);
        return IK_E_CONFIG;
    }
    if (cfg->session_id && cfg->next_session) {
        host->log(self, IK_LOG_ERROR, "session_id and next_session exclude each other");
        return IK_E_CONFIG;
    }
    if (cfg->broker == IK_SB_BROKER_AMQP &&
        (cfg->subqueue || cfg->session_id || cfg->next_session)) {
        host->log(self, IK_LOG_ERROR,
                  "subqueue, session_id and next_session need broker = \"servicebus\"");
        return IK_E_CONFIG;
    }
    return 0;
}

const ik_plugin ik_sb_source_plugin = {
    IK_PLUGIN_HEAD,
    .name = "servicebus",
    .version = "1.0.0",
    .description = "Reads emails from an Azure Service Bus queue (peek-lock; also its "
                   "dead-letter queue, or another AMQP 1.0 broker)",
    .kind = IK_KIND_SOURCE,
    .options = sb_options,
    .config_size = sizeof(sb_config),
    .check = sb_check,
    .create = sb_create,
    .destroy = sb_destroy,
    .health = sb_health,
    .run = sb_run,
    .stop = sb_stop,
    .settle = sb_settle,
};

IK_PLUGIN_EXPORT(ik_sb_source_plugin)
