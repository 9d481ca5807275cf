/*
 * client.h: one AMQP 1.0 connection to Azure Service Bus (or another AMQP
 * 1.0 broker such as RabbitMQ), on qpid-proton's proactor, driven entirely
 * by the thread that calls it. It does what every Service Bus link needs
 * before the plugin's own work: TLS with certificate verification, SASL
 * (ANONYMOUS followed by CBS put-token, PLAIN, or none for a
 * SharedAccessSignature string), SAS tokens put for each link's audience and
 * put again at three quarters of their lifetime, and request/response
 * links ($cbs, <entity>/$management) matched by correlation id.
 *
 * Threading: every function but ik_sb_client_interrupt must be called from
 * one thread, the owner's. Link callbacks run inside ik_sb_client_pump (and
 * inside the synchronous calls, which pump): they must not call the
 * synchronous functions (connect, attach, call) themselves; they note what
 * to do and the owner does it after the pump returns.
 *
 * Lifetimes: pn_link_t and pn_delivery_t pointers handed out belong to the
 * connection. When it is lost, every attached link's `detached` callback
 * runs (with the reason), every pending request's callback runs with an
 * error, and from then on those pointers must not be used: the proactor
 * frees the connection.
 *
 * Secrets: the key, the signature and tokens never appear in an error text.
 */
#ifndef INTAKE_SB_CLIENT_H
#define INTAKE_SB_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <proton/condition.h>
#include <proton/delivery.h>
#include <proton/link.h>
#include <proton/message.h>

typedef struct ik_sb_client ik_sb_client;

typedef enum ik_sb_auth {
    IK_SB_AUTH_CBS = 0,   /* SASL ANONYMOUS, then a SAS token per link (Service Bus) */
    IK_SB_AUTH_SAS = 1,   /* no SASL; the given SharedAccessSignature put per link */
    IK_SB_AUTH_PLAIN = 2, /* SASL PLAIN user/password, no CBS (RabbitMQ, Service Bus keys) */
    IK_SB_AUTH_NONE = 3,  /* SASL ANONYMOUS, no CBS (a broker without authentication) */
} ik_sb_auth;

typedef struct ik_sb_client_config {
    const char *host;    /* required */
    int port;            /* 0: 5671 with TLS, 5672 without */
    int tls;             /* 1: amqps */
    const char *ca_file; /* TLS: trusted CAs (file or folder); NULL: the system's */
    int no_verify;       /* TLS: 1 skips certificate and host name checks */
    ik_sb_auth auth;
    const char *user;          /* CBS: the key name; PLAIN: the user name */
    const char *secret;        /* CBS: the key; PLAIN: the password; SAS: the signature */
    const char *audience_base; /* CBS/SAS: "sb://host[:port]" audiences start with */
    const char *container_id;  /* NULL: one is made up */
    uint64_t token_ttl_ms;     /* CBS: lifetime of each token put; 0: one hour */
    uint64_t op_timeout_ms;    /* connect, attach and requests; 0: 30 s */
    uint32_t idle_timeout_ms;  /* AMQP idle time-out announced; 0: 60 s */
} ik_sb_client_config;

/* Callbacks of one link, run on the owner's thread inside a pump. */
typedef struct ik_sb_link_ops {
    /* PN_DELIVERY on the link: a transfer arrived or its state changed. */
    void (*delivery)(void *arg, pn_link_t *link, pn_delivery_t *d);
    /* PN_LINK_FLOW: credit changed (senders: room to send). Optional. */
    void (*flow)(void *arg, pn_link_t *link);
    /* The link ended: the peer detached or closed it (why: its condition),
     * or the connection was lost. The link must not be used afterwards. */
    void (*detached)(void *arg, pn_link_t *link, const char *why);
} ik_sb_link_ops;

typedef struct ik_sb_link_opts {
    const char *address;    /* the entity path, "/queue/x", "q/$DeadLetterQueue" ... */
    int receiver;           /* 1: a receiver, 0: a sender */
    int peek_lock;          /* receivers: unsettled deliveries, rcv-settle-mode second */
    int settle_first;       /* receivers: unsettled, rcv-settle-mode first (generic brokers) */
    const char *session_id; /* receivers: lock this Service Bus session */
    int next_session;       /* receivers: lock the next available session */
    const ik_sb_link_ops *ops;
    void *arg;
} ik_sb_link_opts;

/* Called once per request with the reply (borrowed for the call), or with
 * reply NULL and `error` saying why there is none (timeout, connection
 * lost, link refused). */
typedef void (*ik_sb_reply_fn)(void *arg, pn_message_t *reply, const char *error);

/* A client for cfg (strings are copied). NULL when out of memory. */
ik_sb_client *ik_sb_client_new(const ik_sb_client_config *cfg);
/* Closes the connection if open (without waiting) and frees everything. */
void ik_sb_client_free(ik_sb_client *c);

/* Opens the connection and a session, waiting up to op_timeout_ms. 0, or
 * IK_E_IO / IK_E_TIMEOUT with the reason in ik_sb_client_error(). */
int ik_sb_client_connect(ik_sb_client *c);
/* 1 while the connection is open. */
int ik_sb_client_connected(const ik_sb_client *c);
/* Closes the connection, waiting up to timeout_ms for the peer's close. */
void ik_sb_client_close(ik_sb_client *c, uint64_t timeout_ms);
/* Why the last operation failed or the connection was lost ("" when none). */
const char *ik_sb_client_error(const ik_sb_client *c);
/* The connection's remote container id and hostname as the peer sent them
 * in its open frame ("" before connect). */
const char *ik_sb_client_remote_container(const ik_sb_client *c);

/* Thread-safe, callable from any thread: makes the owner's current or next
 * pump return soon. */
void ik_sb_client_interrupt(ik_sb_client *c);

/* Says the owner changed links or deliveries itself (pn_link_flow,
 * pn_delivery_update, ...) outside a callback: the next pump makes the
 * proactor write the frames. The client's own functions need no call. */
void ik_sb_client_changed(ik_sb_client *c);

/* Handles events for up to timeout_ms (0: only what is ready), dispatching
 * link callbacks, and runs the client's timers (token renewal, request time
 * limits). Returns 1 when an interrupt arrived, 0 otherwise, IK_E_IO when
 * the connection is (or was already) lost. */
int ik_sb_client_pump(ik_sb_client *c, uint64_t timeout_ms);

/* Attaches a link (after putting a token for its audience under CBS/SAS),
 * waiting for the peer's attach. The link's ops are called from then on.
 * NULL on failure, with the reason (the peer's condition) in
 * ik_sb_client_error(). */
pn_link_t *ik_sb_client_attach(ik_sb_client *c, const ik_sb_link_opts *o);
/* Closes a link (no callbacks for it afterwards). */
void ik_sb_client_detach(ik_sb_client *c, pn_link_t *link);
/* The max-message-size the peer announced on the link's attach (0: none). */
uint64_t ik_sb_client_max_message_size(pn_link_t *link);

/*
 * Sends req (taken in all cases) to `address` on the request/response link
 * pair of that address (attached on first use), setting its message id,
 * reply-to and to; cb runs once with the reply. 0, or a negative code (cb
 * then not called) with ik_sb_client_error() set.
 */
int ik_sb_client_request(ik_sb_client *c, const char *address, pn_message_t *req, ik_sb_reply_fn cb,
                         void *arg);
/* The same, waiting for the reply: *reply is the owner's (pn_message_free).
 * 0, or IK_E_TIMEOUT / IK_E_IO with the error set. */
int ik_sb_client_call(ik_sb_client *c, const char *address, pn_message_t *req,
                      pn_message_t **reply);

/* Rewinds d, whose first value is a map with string or symbol keys (a
 * reply's application properties or body), and positions it at the value
 * of `key` (inside the map: pn_data_exit leaves it). 1 when found, else 0. */
int ik_sb_data_find(pn_data_t *d, const char *key);

/* Reads an int-like application property of a reply (status-code,
 * statusCode); -1 when absent or not a number. */
long ik_sb_reply_status(pn_message_t *reply, const char *key);
/* Copies a string application property of a reply into buf ("" when absent). */
void ik_sb_reply_text(pn_message_t *reply, const char *key, char *buf, size_t len);

/* "name: description" of an AMQP error condition (a link's, a delivery's
 * remote disposition's) into buf; "" when cond is NULL or not set. */
const char *ik_sb_condition_text(pn_condition_t *cond, char *buf, size_t len);

/* Monotonic milliseconds. */
uint64_t ik_sb_now_ms(void);

#endif
