/*
 * sb_sink.h: the state the `servicebus` sink's files share. The instance
 * holds the options and the endpoint; each worker (worker_init) has its own
 * AMQP client and sender link, used only on that worker's thread, so
 * nothing here needs a lock. Metric handles are the engine's, safe from any
 * thread.
 */
#ifndef INTAKE_SB_SINK_H
#define INTAKE_SB_SINK_H

#include <stdint.h>

#include <intake/plugin.h>

#include "servicebus/client.h"
#include "servicebus/endpoint.h"

/* Longest message id Service Bus takes; longer record ids are hashed. */
#define SBK_MAX_ID 128

enum { SBK_ENVELOPE_NONE = 0, SBK_ENVELOPE_BATCH = 1 };

/* Option values (the engine fills this struct from the option table). */
typedef struct sbk_config {
    const char *connection_string;
    const char *queue;
    int broker;
    int auth;
    int tls;
    const char *ca_file;
    int tls_verify;
    uint64_t token_ttl;
    uint64_t op_timeout;
    int envelope; /* SBK_ENVELOPE_* */
    int64_t max_batch_size;
    uint64_t max_message_size;
    uint64_t ttl;               /* 0: the queue's default */
    const char *session_from;   /* record field or metadata holding the session id */
    const char *scheduled_from; /* record field or metadata holding the enqueue time */
} sbk_config;

/* One sink instance. */
typedef struct sbk_sink {
    const ik_host *host;
    ik_instance *self;
    const sbk_config *cfg;
    ik_sb_endpoint ep;
    char where[300]; /* the endpoint described, for logs (no secrets) */
    ik_metric *m_sent, *m_failed, *m_retried, *m_latency;
} sbk_sink;

/* One outgoing message: records [first, first + count) of the call. */
typedef struct sbk_out {
    size_t first, count;
    size_t off, len; /* the encoded AMQP message: w->wire.p + off, len bytes */
    int encoded;     /* those bytes are there and not sent yet */
    int sent, done;
    uint64_t sent_ms;
    ik_status status;
    char reason[IK_REASON_MAX];
} sbk_out;

/* One worker's connection and the messages of its current write(). */
typedef struct sbk_worker {
    sbk_sink *sink;
    ik_sb_client *client;
    pn_link_t *link;       /* NULL until attached, and after it is lost */
    char link_lost[400];   /* why the link ended ("" while it lives) */
    uint64_t max_size;     /* what the broker announced on the attach (0: none) */
    uint64_t last_used_ms; /* monotonic: the end of the last write */
    int down_logged;       /* the connection failure was logged already */
    uint32_t gen;          /* write() counter, in delivery tags: stale outcomes are ignored */
    pn_message_t *msg;     /* reused for every message built */
    ik_buf body;           /* reused: JSON text of one message body */
    ik_buf wire;           /* reused: every encoded message of the current write() */
    sbk_out *outs;
    size_t nouts, cap_outs;
} sbk_worker;

/* message.c: the outgoing messages of recs[0..n) in w->outs (envelopes or
 * one per record), each encoded or already failed (too large, a bad
 * scheduled time). limit is the largest encoded message allowed. 0 or
 * IK_E_NOMEM. */
int sbk_build(sbk_worker *w, ik_record *const *recs, size_t n, uint64_t limit);

/* send.c: connects and attaches when needed; 0, or a negative code with
 * the reason (never a secret) in why. */
int sbk_connect(sbk_worker *w, char *why, size_t whylen);
/* Sends every encoded w->outs entry and waits for their outcomes (or the
 * time limit, a lost connection, shutdown), setting each entry's status. */
void sbk_send_all(sbk_worker *w);
/* Drops the connection (after a time-out or loss), so the next call
 * connects again. */
void sbk_disconnect(sbk_worker *w);

/* Link callbacks of a worker's sender (send.c). */
extern const ik_sb_link_ops sbk_sender_ops;

/* The sink's descriptor (servicebus_sink.c), exported by the plugin file
 * together with the source's. */
extern const ik_plugin ik_sb_sink_plugin;

#endif
