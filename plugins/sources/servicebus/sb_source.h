/*
 * sb_source.h: the state the `servicebus` source's files share. One AMQP
 * connection per instance, owned by run()'s thread; settle() comes from
 * engine threads and only touches the message tallies (under `mu`) and the
 * ready list, then wakes the run thread, which tells the broker.
 */
#ifndef INTAKE_SB_SOURCE_H
#define INTAKE_SB_SOURCE_H

#include <pthread.h>
#include <stdint.h>

#include <intake/plugin.h>

#include "servicebus/client.h"
#include "servicebus/endpoint.h"

/* Option values (the engine fills this struct from the option table). */
typedef struct sb_config {
    const char *connection_string;
    const char *queue;
    int broker;
    int auth;
    int tls;
    const char *ca_file;
    int tls_verify;
    int subqueue; /* 0 none, 1 deadletter */
    const char *session_id;
    int next_session;
    int64_t prefetch;
    int lock_renewal;
    uint64_t max_lock_renewal;
    uint64_t lock_duration;
    uint64_t reconnect_initial;
    uint64_t reconnect_max;
    uint64_t token_ttl;
    uint64_t op_timeout;
    const char *id_field;
    int64_t max_emails;
    int on_demand;
    int64_t max_retries;
    uint64_t retry_delay;
    uint64_t retry_delay_max;
    const char *management_endpoint; /* queue_counts.c */
} sb_config;

/* One broker message and the tally of its records' outcomes. */
typedef struct sb_msg {
    pn_delivery_t *d;             /* NULL once its connection is gone (run thread only) */
    unsigned char lock_token[16]; /* RFC byte order, for $management */
    int has_lock_token;
    char *message_id;
    int64_t sequence_number;
    uint32_t delivery_count;
    int64_t retry_count;  /* DLQ mode: the envelope's retry_count */
    uint64_t received_ms; /* monotonic */
    uint64_t renew_at;    /* monotonic; 0: no renewal */
    uint64_t renew_until; /* monotonic: stop renewing after this */
    int renewing;         /* a renew-lock for it is in flight */
    int in_job;           /* received for the on-demand receive job */
    /* guarded by state.mu */
    unsigned records;       /* records whose outcome is not told yet */
    unsigned dead_unstored; /* dead-lettered and stored nowhere: dead-letter it */
    unsigned released;      /* given back: abandon it (unless dead_unstored) */
    char *dead_reason;      /* the first not-stored dead letter's reason */
    char *dead_stage;
    int ready; /* every record told: on the ready list */
    /* run thread */
    int disposed; /* the outcome went to the broker; waiting for its settle */
    ik_outcome decided;
    struct sb_msg *ready_next;
    struct sb_msg *prev, *next; /* the live list */
    void *raw;                  /* DLQ mode: the copy to send back to the queue */
    size_t raw_len;
    int resend;                 /* DLQ mode: 1 waiting to be sent back, 2 sent */
    struct sb_msg *resend_next; /* the resend list */
} sb_msg;

/* The on-demand receive job the `receive` command started (state.mu). */
typedef struct sb_job {
    int started;
    uint64_t requested, received;
    uint64_t completed, abandoned, dead, lost;
    int exhausted; /* the broker had no more messages */
} sb_job;

/* 1 once every message of the job is settled and no more will come. */
int sb_job_done(const sb_job *j);

/* A record waiting for room in the pipeline. */
typedef struct sb_pending {
    ik_record **recs;
    size_t head, n, cap;
} sb_pending;

typedef struct sb_source {
    const ik_host *host;
    ik_instance *self;
    const sb_config *cfg;
    ik_sb_endpoint ep;
    char where[300]; /* the endpoint described, for logs */
    char *address;   /* the entity links attach to (with /$DeadLetterQueue) */
    char *mgmt_address;
    ik_sb_client *client;
    pn_link_t *link;
    int settle_second; /* Service Bus peek-lock: wait for the broker's settle */
    uint64_t lock_ms;  /* lock duration when the broker says none */

    pthread_mutex_t mu;
    sb_msg *ready;   /* every record told, broker not told yet (mu) */
    int stopping;    /* stop() was called */
    int paused;      /* the pause command (mu) */
    uint64_t demand; /* on-demand mode: messages still asked for (mu) */
    sb_job job;      /* (mu) */
    int drain_asked; /* run thread: on-demand credit was given with drain */
    /* what commands read (mu), mirrored by the run thread each turn */
    int64_t held;
    int pipeline_full;
    int seen_up;
    /* peek (mu) */
    int64_t peek_wanted, peek_count;
    int peek_inflight;
    json_object *peek_result;
    struct sb_queue_counts *counts; /* queue_counts.c; the first status call makes it (mu) */
    /* health (mu) */
    int down;
    uint64_t down_since_unix;
    char down_reason[400];

    /* run thread */
    sb_msg *live; /* received, not finished with the broker */
    unsigned nlive;
    sb_pending pending;
    ik_buf rbuf;            /* the delivery being read */
    uint64_t next_renew;    /* no lock is due for renewal before this (UINT64_MAX: none) */
    sb_msg *resend;         /* DLQ mode: copies to send back, in order */
    pn_link_t *resend_link; /* DLQ mode: sender to the main queue */
    unsigned long resend_tag;

    /* metrics */
    ik_metric *m_received, *m_completed, *m_abandoned, *m_dead, *m_renewals, *m_lock_lost,
        *m_reconnects, *m_latency, *m_unreadable, *m_resent;
} sb_source;

/* receive.c: the receiver link's callbacks and the pending queue. */
extern const ik_sb_link_ops sb_receiver_ops;
/* Grants credit up to the window, unless the pipeline is full or paused. */
void sb_receive_flow(sb_source *st);
/* Emits pending records while the pipeline has room. 1 when some remain. */
int sb_receive_emit_pending(sb_source *st);
/* Drops pending records (their messages count them as released). */
void sb_receive_drop_pending(sb_source *st);

/* settle.c */
void sb_settle(void *state, ik_record *rec, ik_outcome outcome, const ik_failure *failure);
/* Sends `outcome` for m to the broker now (complete, abandon or
 * dead-letter); m is forgotten when the broker settles. */
void sb_dispose(sb_source *st, sb_msg *m, ik_outcome outcome);
/* Tells the broker the outcome of every message on the ready list. */
void sb_settle_ready(sb_source *st);
/* The delivery callback for deliveries we have disposed of. */
void sb_settle_remote(sb_source *st, pn_delivery_t *d);
/* The connection is gone: messages lose their delivery; finished ones are freed. */
void sb_settle_connection_lost(sb_source *st);
/* Frees a message (run thread, nothing refers to it any more). */
void sb_msg_free(sb_source *st, sb_msg *m);
/* Counts n of m's records as released without the engine (never emitted). */
void sb_msg_give_back(sb_source *st, sb_msg *m, unsigned n);
/* Adds m to the live list. */
void sb_msg_link(sb_source *st, sb_msg *m);

/* dlq.c: dead-letter queue mode. sb_dlq_message decides for a decoded
 * dead letter: 1 when it goes back to the queue (on the resend list, no
 * records), 0 when it is to be archived as a record (why says why). sb_dlq_send sends the
 * resend list (attaching the sender on first use). */
struct ik_sb_message;
int sb_dlq_message(sb_source *st, sb_msg *m, const struct ik_sb_message *msg, char *why,
                   size_t whylen);
void sb_dlq_send(sb_source *st);
/* At shutdown: dead letters not yet sent back are abandoned (they stay). */
void sb_dlq_give_back(sb_source *st);

/* lock_renewal.c: renews the locks of live messages at half their duration. */
void sb_renew_locks(sb_source *st);
/* Says a message's lock is due for renewal at `at` (monotonic ms). */
void sb_renew_note(sb_source *st, uint64_t at);

/* The run thread's wall clock in unix ms. */
int64_t sb_unix_ms(void);

#endif
