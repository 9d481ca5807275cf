/* broker.h: the AMQP 1.0 side of the emulator: proactor loop, connections, SASL, CBS,
 * sender/receiver links, settlement, and routing of $management requests. */
#ifndef SBEMU_BROKER_H
#define SBEMU_BROKER_H

#include <proton/message.h>
#include <proton/proactor.h>

#include "amqpraw.h"
#include "config.h"
#include "store.h"

typedef struct sb_broker {
    const sb_config *cfg;
    sb_store *store;
    pn_proactor_t *proactor;
    pn_message_t *req, *resp; /* scratch messages, event thread only */
    sb_buf buf;               /* scratch encode buffer */
    struct sb_conn *conns;    /* every open connection */
    unsigned next_conn_id;
    int nconns, max_conns; /* open connections; the most the fd limit allows */
    int refused_unlogged;  /* connections refused at the limit since the last warning */
    int64_t refused_logged_ms;
    int backlog; /* accept backlog of each listener */
    int listeners_pending;
    int amqp_port, amqps_port; /* actual ports once listening */
    int failed;
    int stopping; /* closing everything: sb_broker_run returns once the proactor is inactive */
    void (*on_ready)(struct sb_broker *b, void *arg);
    void *on_ready_arg;
} sb_broker;

/* Creates the proactor and starts the listeners. Returns 0 or -1 (logged). */
int sb_broker_init(sb_broker *b, const sb_config *cfg, sb_store *store);
/* Runs until sb_broker_stop() (from any thread) or a listener fails, then closes the listeners
 * and every connection and returns once the proactor has freed them. Returns 0, or -1 if a
 * listener failed. */
int sb_broker_run(sb_broker *b);
void sb_broker_stop(sb_broker *b);
void sb_broker_free(sb_broker *b);

/* Delivers newly available messages of q to its receivers (event thread only). */
void sb_broker_pump_queue(sb_broker *b, sb_queue *q);

#endif
