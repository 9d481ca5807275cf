/*
 * endpoint.h: what the servicebus source and sink share between their
 * options and a connection: the connection string parsed, the entity path
 * chosen, and the client configuration (authentication, TLS) that follows
 * from the broker kind and the options.
 */
#ifndef INTAKE_SB_ENDPOINT_H
#define INTAKE_SB_ENDPOINT_H

#include <stddef.h>
#include <stdint.h>

#include <intake/plugin.h>

#include "client.h"
#include "connstr.h"

typedef enum ik_sb_broker {
    IK_SB_BROKER_SERVICEBUS = 0, /* Azure Service Bus or its emulator */
    IK_SB_BROKER_AMQP = 1,       /* another AMQP 1.0 broker (RabbitMQ): no CBS, no $management */
} ik_sb_broker;

/* The choices of the `auth` and `tls` options, in option-table order. */
enum { IK_SB_AUTH_OPT_AUTO, IK_SB_AUTH_OPT_CBS, IK_SB_AUTH_OPT_PLAIN, IK_SB_AUTH_OPT_NONE };
enum { IK_SB_TLS_OPT_AUTO, IK_SB_TLS_OPT_ON, IK_SB_TLS_OPT_OFF };

/* The values of the broker, auth and tls options (option-table order). */
extern const char *const ik_sb_broker_choices[];
extern const char *const ik_sb_auth_choices[];
extern const char *const ik_sb_tls_choices[];

/*
 * The connection options the servicebus source and sink share, as entries of
 * an option table whose config struct T has the members connection_string,
 * queue, broker, auth, tls, ca_file, tls_verify and token_ttl (of the C types
 * ik_opt_type gives). One definition, so the two plugins cannot drift apart.
 */
#define IK_SB_ENDPOINT_OPTIONS(T)                                                                  \
    {"connection_string",                                                                          \
     IK_OPT_STRING,                                                                                \
     "${SERVICE_BUS_CONNECTION_STRING}",                                                           \
     IK_OPT_SECRET,                                                                                \
     "Azure connection string: Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=... "     \
     "(or SharedAccessSignature=...); EntityPath and UseDevelopmentEmulator=true are read too.",   \
     IK_OPT_AT(T, connection_string)},                                                             \
        {"queue",                                                                                  \
         IK_OPT_STRING,                                                                            \
         "${SERVICE_BUS_QUEUE_NAME:-}",                                                            \
         0,                                                                                        \
         "The queue; empty: the connection string's EntityPath. On RabbitMQ an address such as "   \
         "/amq/queue/NAME.",                                                                       \
         IK_OPT_AT(T, queue)},                                                                     \
        {"broker",                                                                                 \
         IK_OPT_CHOICE,                                                                            \
         "servicebus",                                                                             \
         0,                                                                                        \
         "servicebus (Azure Service Bus or its emulator) or amqp (another AMQP 1.0 broker such "   \
         "as RabbitMQ: no CBS, no $management).",                                                  \
         IK_OPT_AT(T, broker),                                                                     \
         .choices = ik_sb_broker_choices},                                                         \
        {"auth",                                                                                   \
         IK_OPT_CHOICE,                                                                            \
         "auto",                                                                                   \
         0,                                                                                        \
         "auto: CBS with a SAS token per link on Service Bus, SASL PLAIN (key name and key as "    \
         "user and password) elsewhere; or cbs, plain, none.",                                     \
         IK_OPT_AT(T, auth),                                                                       \
         .choices = ik_sb_auth_choices},                                                           \
        {"tls",                                                                                    \
         IK_OPT_CHOICE,                                                                            \
         "auto",                                                                                   \
         0,                                                                                        \
         "auto: amqps (port 5671) unless UseDevelopmentEmulator=true or broker = amqp; on; off.",  \
         IK_OPT_AT(T, tls),                                                                        \
         .choices = ik_sb_tls_choices},                                                            \
        {"ca_file",                                                                                \
         IK_OPT_STRING,                                                                            \
         NULL,                                                                                     \
         0,                                                                                        \
         "A PEM file (or folder) of CAs to trust instead of the system's.",                        \
         IK_OPT_AT(T, ca_file)},                                                                   \
        {"tls_verify",                                                                             \
         IK_OPT_BOOL,                                                                              \
         "true",                                                                                   \
         0,                                                                                        \
         "Check the broker's certificate and host name. Turning it off is logged at start.",       \
         IK_OPT_AT(T, tls_verify)},                                                                \
    {                                                                                              \
        "token_ttl", IK_OPT_DURATION, "1h", 0,                                                     \
            "Lifetime of each SAS token put; renewed at three quarters of it.",                    \
            IK_OPT_AT(T, token_ttl), .min = "4s", .max = "168h"                                    \
    }

typedef struct ik_sb_endpoint_opts {
    const char *connection_string; /* secret */
    const char *queue;             /* NULL or "": the connection string's EntityPath */
    int broker;                    /* ik_sb_broker */
    int auth;                      /* IK_SB_AUTH_OPT_* */
    int tls;                       /* IK_SB_TLS_OPT_* */
    const char *ca_file;
    int tls_verify;
    uint64_t token_ttl_ms;
    uint64_t op_timeout_ms;
    const char *container_id; /* NULL: made up */
} ik_sb_endpoint_opts;

typedef struct ik_sb_endpoint {
    ik_sb_connstr cs;
    char *entity;               /* the queue path links attach to */
    char *audience_base;        /* "sb://host[:port]" */
    ik_sb_client_config client; /* its strings point into cs and audience_base */
} ik_sb_endpoint;

/*
 * Fills *ep from o (zeroed first; ik_sb_endpoint_clear it after, also on
 * failure). 0, IK_E_NOMEM, or IK_E_CONFIG with err saying what is wrong
 * (never quoting the key or signature): a connection string that does not
 * parse, no queue, PLAIN without a key name and key, CBS without a key or
 * signature.
 *
 * auto authentication: Service Bus uses CBS (a SAS token per link, or the
 * signature itself when the string has SharedAccessSignature); another
 * broker uses PLAIN with the key name and key as user and password when the
 * string has them, else ANONYMOUS. auto TLS: off for the emulator
 * (UseDevelopmentEmulator=true), an amqp:// Endpoint or another broker, on
 * otherwise.
 */
/* The endpoint options of a config struct laid out for
 * IK_SB_ENDPOINT_OPTIONS (plus op_timeout), as an ik_sb_endpoint_opts value. */
#define IK_SB_ENDPOINT_OPTS_OF(c)                                                                  \
    ((ik_sb_endpoint_opts){.connection_string = (c)->connection_string,                            \
                           .queue = (c)->queue,                                                    \
                           .broker = (c)->broker,                                                  \
                           .auth = (c)->auth,                                                      \
                           .tls = (c)->tls,                                                        \
                           .ca_file = (c)->ca_file,                                                \
                           .tls_verify = (c)->tls_verify,                                          \
                           .token_ttl_ms = (c)->token_ttl,                                         \
                           .op_timeout_ms = (c)->op_timeout})

/* For a plugin's check(): 0 when o makes an endpoint, else IK_E_CONFIG
 * with err saying why (as ik_sb_endpoint_init says it). */
int ik_sb_endpoint_check(const ik_sb_endpoint_opts *o, char *err, size_t errlen);

int ik_sb_endpoint_init(ik_sb_endpoint *ep, const ik_sb_endpoint_opts *o, char *err, size_t errlen);
void ik_sb_endpoint_clear(ik_sb_endpoint *ep);

/* "Service Bus queue q at host:port" style text for logs: no secrets. */
void ik_sb_endpoint_describe(const ik_sb_endpoint *ep, char *buf, size_t len);

#endif
