/*
 * servicebus_sink.c: the `servicebus` sink (in intake-servicebus.so, with
 * the source of the same name): sends records to an Azure Service Bus queue
 * (or a queue of another AMQP 1.0 broker such as RabbitMQ) as JSON messages,
 * one per record or packed into the original service's batch envelope.
 *
 * This file holds the options, create/destroy, the workers, write() and
 * probe(). message.c builds and encodes the messages, send.c owns the
 * connection and the transfers.
 *
 * Outcomes: accepted -> IK_OK; rejected -> IK_FAIL with the broker's
 * condition; released, modified, no outcome in time, connection lost ->
 * IK_RETRY; a broker that cannot be reached (or refuses the link) at the
 * start of a call -> IK_DOWN for the whole call, and probe() connects again.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_sink.h"

/* After this long without a call, events waiting on the connection (the
 * broker closed it while idle) are handled before sending. */
#define IDLE_CHECK_MS 5000

static const char *const envelope_choices[] = {"none", "batch", NULL};

static const ik_option sbk_options[] = {
    IK_SB_ENDPOINT_OPTIONS(sbk_config),
    {"timeout", IK_OPT_DURATION, "30s", 0,
     "Time limit for connecting, attaching, and for the broker's outcomes of one call's "
     "messages (then they are retried).",
     IK_OPT_AT(sbk_config, op_timeout), .min = "100ms"},
    {"envelope", IK_OPT_CHOICE, "none", 0,
     "none: one message per record; batch: records packed into the batch envelope "
     "{\"batch_id\", \"emails\": [...], \"priority\", ...} the original service sent.",
     IK_OPT_AT(sbk_config, envelope), .choices = envelope_choices},
    {"max_batch_size", IK_OPT_INT, "${MAX_BATCH_SIZE:-50}", 0,
     "envelope = batch: most emails in one message.", IK_OPT_AT(sbk_config, max_batch_size),
     .min = "1", .max = "100000"},
    {"max_message_size", IK_OPT_SIZE, "${MAX_MESSAGE_SIZE_KB:-256}K", 0,
     "Largest message sent (encoded); the broker's own limit, announced on the link, applies "
     "too. A record larger alone is dead-lettered.",
     IK_OPT_AT(sbk_config, max_message_size), .min = "1K"},
    {"ttl", IK_OPT_DURATION, "0", 0, "Time to live of each message; 0: the queue's default.",
     IK_OPT_AT(sbk_config, ttl)},
    {"session_id_from", IK_OPT_STRING, NULL, 0,
     "The record field (top-level string or integer of the payload) or, failing that, the "
     "metadata that holds each message's session id.",
     IK_OPT_AT(sbk_config, session_from)},
    {"scheduled_from", IK_OPT_STRING, NULL, 0,
     "The record field or metadata that holds when the message becomes visible (unix "
     "milliseconds or ISO-8601 with a zone); scheduled enqueue.",
     IK_OPT_AT(sbk_config, scheduled_from)},
    {0},
};

/* ---- write / probe ------------------------------------------------------ */

/* The largest message the current link takes. */
static uint64_t size_limit(const sbk_worker *w)
{
    uint64_t limit = w->sink->cfg->max_message_size;
    if (w->max_size && w->max_size < limit)
        limit = w->max_size;
    return limit;
}

/* Copies each message's status to its records and counts them. */
static void report(sbk_worker *w, ik_result *results)
{
    const sbk_sink *s = w->sink;
    for (size_t i = 0; i < w->nouts; i++) {
        const sbk_out *o = &w->outs[i];
        ik_metric *m = o->status == IK_OK     ? s->m_sent
                       : o->status == IK_FAIL ? s->m_failed
                                              : s->m_retried;
        s->host->metric_add(m, 1);
        for (size_t r = o->first; r < o->first + o->count; r++) {
            results[r].status = o->status;
            snprintf(results[r].reason, sizeof results[r].reason, "%s", o->reason);
        }
    }
}

static int sbk_write(void *state, void *worker_state, ik_record *const *recs, size_t n,
                     ik_result *results)
{
    sbk_worker *w = worker_state;
    (void)state;
    if (!w)
        return IK_E_STATE;
    char why[IK_REASON_MAX];
    if (w->link && ik_sb_now_ms() - w->last_used_ms > IDLE_CHECK_MS &&
        ik_sb_client_pump(w->client, 0) == IK_E_IO)
        w->link = NULL; /* lost while idle: connect again below */
    if (sbk_connect(w, why, sizeof why) != 0) {
        for (size_t i = 0; i < n; i++)
            ik_result_setf(&results[i], IK_DOWN, "%s", why);
        return 0;
    }
    int rc = sbk_build(w, recs, n, size_limit(w));
    if (rc != 0)
        return rc; /* out of memory: the engine retries the call */
    sbk_send_all(w);
    report(w, results);
    return 0;
}

static int sbk_probe(void *state, void *worker_state, char *reason, size_t reason_len)
{
    (void)state;
    sbk_worker *w = worker_state;
    if (!w)
        return IK_E_STATE;
    return sbk_connect(w, reason, reason_len) == 0 ? 0 : IK_E_IO;
}

/* ---- workers ------------------------------------------------------------ */

static void sbk_worker_exit(void *state, void *worker_state)
{
    (void)state;
    sbk_worker *w = worker_state;
    if (!w)
        return;
    if (w->client)
        ik_sb_client_close(w->client, 2000);
    ik_sb_client_free(w->client);
    if (w->msg)
        pn_message_free(w->msg);
    free(w->outs);
    free(w->body.p);
    free(w->wire.p);
    free(w);
}

/* A worker's client; it connects on its first write(). */
static int sbk_worker_init(void *state, unsigned worker_index, void **worker_state)
{
    sbk_sink *s = state;
    (void)worker_index;
    sbk_worker *w = calloc(1, sizeof *w);
    if (!w)
        return IK_E_NOMEM;
    w->sink = s;
    w->client = ik_sb_client_new(&s->ep.client);
    w->msg = pn_message();
    if (!w->client || !w->msg) {
        sbk_worker_exit(s, w);
        return IK_E_NOMEM;
    }
    *worker_state = w;
    return 0;
}

/* ---- create / destroy --------------------------------------------------- */

static void sbk_destroy(void *state)
{
    sbk_sink *s = state;
    if (!s)
        return;
    ik_sb_endpoint_clear(&s->ep);
    free(s);
}

static int sbk_create(const ik_host *host, ik_instance *self, const void *config, void **state)
{
    const sbk_config *cfg = config;
    sbk_sink *s = calloc(1, sizeof *s);
    if (!s)
        return IK_E_NOMEM;
    s->host = host;
    s->self = self;
    s->cfg = cfg;
    ik_sb_endpoint_opts eo = IK_SB_ENDPOINT_OPTS_OF(cfg);
    char err[400];
    int rc = ik_sb_endpoint_init(&s->ep, &eo, err, sizeof err);
    if (rc != 0) {
        host->log(self, IK_LOG_ERROR, "%s", rc == IK_E_NOMEM ? "out of memory" : err);
        sbk_destroy(s);
        return rc == IK_E_NOMEM ? rc : IK_E_CONFIG;
    }
    ik_sb_endpoint_describe(&s->ep, s->where, sizeof s->where);
    if (s->ep.client.tls && !cfg->tls_verify)
        host->log(self, IK_LOG_WARN,
                  "tls_verify = false: the broker's certificate is not checked (%s)", s->where);
    static const double bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30};
    s->m_sent = host->counter(self, "messages_sent_total", "Messages the broker accepted.");
    s->m_failed = host->counter(self, "messages_failed_total",
                                "Messages refused (by the broker, or too large): dead-lettered.");
    s->m_retried =
        host->counter(self, "messages_retried_total",
                      "Messages to send again (released, no outcome in time, connection lost).");
    s->m_latency = host->histogram(self, "send_latency_seconds",
                                   "Time from a message's transfer to the broker's outcome.",
                                   bounds, sizeof bounds / sizeof *bounds);
    *state = s;
    return 0;
}

/* Checks what the option table cannot: the connection string and queue. */
static int sbk_check(const ik_host *host, ik_instance *self, const void *config)
{
    const sbk_config *cfg = config;
    ik_sb_endpoint_opts eo = IK_SB_ENDPOINT_OPTS_OF(cfg);
    char err[400];
    if (ik_sb_endpoint_check(&eo, err, sizeof err) != 0) {
        host->log(self, IK_LOG_ERROR, "%s", err);
        return IK_E_CONFIG;
    }
    if (cfg->broker == IK_SB_BROKER_AMQP && cfg->scheduled_from && cfg->scheduled_from[0]) {
        host->log(self, IK_LOG_ERROR, "scheduled_from needs broker = \"servicebus\"");
        return IK_E_CONFIG;
    }
    return 0;
}

const ik_plugin ik_sb_sink_plugin = {
    IK_PLUGIN_HEAD,
    .name = "servicebus",
    .version = "1.0.0",
    .description = "Sends records to an Azure Service Bus queue (or another AMQP 1.0 broker) as "
                   "JSON messages, one per record or in the batch envelope",
    .kind = IK_KIND_SINK,
    .options = sbk_options,
    .config_size = sizeof(sbk_config),
    .check = sbk_check,
    .create = sbk_create,
    .destroy = sbk_destroy,
    .worker_init = sbk_worker_init,
    .worker_exit = sbk_worker_exit,
    .write = sbk_write,
    .probe = sbk_probe,
};
