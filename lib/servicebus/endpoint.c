/*
 * endpoint.c: from the servicebus plugins' options to a client
 * configuration (see endpoint.h).
 */
#include "endpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <intake/plugin.h>

const char *const ik_sb_broker_choices[] = {"servicebus", "amqp", NULL};
const char *const ik_sb_auth_choices[] = {"auto", "cbs", "plain", "none", NULL};
const char *const ik_sb_tls_choices[] = {"auto", "on", "off", NULL};

static int choose_auth(ik_sb_endpoint *ep, const ik_sb_endpoint_opts *o, char *err, size_t errlen)
{
    const ik_sb_connstr *cs = &ep->cs;
    int a = o->auth;
    if (a == IK_SB_AUTH_OPT_AUTO) {
        if (o->broker == IK_SB_BROKER_SERVICEBUS)
            a = IK_SB_AUTH_OPT_CBS;
        else
            a = cs->key_name && cs->key ? IK_SB_AUTH_OPT_PLAIN : IK_SB_AUTH_OPT_NONE;
    }
    ep->client.user = cs->key_name;
    switch (a) {
    case IK_SB_AUTH_OPT_CBS:
        if (cs->sas) {
            ep->client.auth = IK_SB_AUTH_SAS;
            ep->client.secret = cs->sas;
        } else if (cs->key_name && cs->key) {
            ep->client.auth = IK_SB_AUTH_CBS;
            ep->client.secret = cs->key;
        } else {
            snprintf(err, errlen,
                     "CBS authentication needs SharedAccessKeyName and "
                     "SharedAccessKey, or SharedAccessSignature, in the "
                     "connection string");
            return IK_E_CONFIG;
        }
        break;
    case IK_SB_AUTH_OPT_PLAIN:
        if (!cs->key_name || !cs->key) {
            snprintf(err, errlen,
                     "auth = \"plain\" needs SharedAccessKeyName (the user) and "
                     "SharedAccessKey (the password) in the connection string");
            return IK_E_CONFIG;
        }
        ep->client.auth = IK_SB_AUTH_PLAIN;
        ep->client.secret = cs->key;
        break;
    default:
        ep->client.auth = IK_SB_AUTH_NONE;
        ep->client.user = NULL;
        break;
    }
    return 0;
}

int ik_sb_endpoint_init(ik_sb_endpoint *ep, const ik_sb_endpoint_opts *o, char *err, size_t errlen)
{
    memset(ep, 0, sizeof *ep);
    char why[400];
    int rc = ik_sb_connstr_parse(o->connection_string ? o->connection_string : "", &ep->cs, why,
                                 sizeof why);
    if (rc == IK_E_NOMEM)
        return rc;
    if (rc != 0) {
        snprintf(err, errlen, "connection_string: %s", why);
        return IK_E_CONFIG;
    }
    const char *q = o->queue && o->queue[0] ? o->queue : ep->cs.entity_path;
    if (!q || !q[0]) {
        snprintf(err, errlen,
                 "no queue: set `queue` (SERVICE_BUS_QUEUE_NAME) or EntityPath in "
                 "the connection string");
        return IK_E_CONFIG;
    }
    ep->entity = strdup(q);
    int n = ep->cs.port ? asprintf(&ep->audience_base, "sb://%s:%d", ep->cs.host, ep->cs.port)
                        : asprintf(&ep->audience_base, "sb://%s", ep->cs.host);
    if (!ep->entity || n < 0) {
        ep->audience_base = NULL;
        return IK_E_NOMEM;
    }
    if ((rc = choose_auth(ep, o, err, errlen)) != 0)
        return rc;
    ik_sb_client_config *c = &ep->client;
    c->host = ep->cs.host;
    c->port = ep->cs.port;
    if (o->tls == IK_SB_TLS_OPT_AUTO)
        c->tls = !(ep->cs.use_emulator || o->broker == IK_SB_BROKER_AMQP);
    else
        c->tls = o->tls == IK_SB_TLS_OPT_ON;
    c->ca_file = o->ca_file && o->ca_file[0] ? o->ca_file : NULL;
    c->no_verify = !o->tls_verify;
    c->audience_base = ep->audience_base;
    c->container_id = o->container_id;
    c->token_ttl_ms = o->token_ttl_ms;
    c->op_timeout_ms = o->op_timeout_ms;
    return 0;
}

int ik_sb_endpoint_check(const ik_sb_endpoint_opts *o, char *err, size_t errlen)
{
    ik_sb_endpoint ep;
    int rc = ik_sb_endpoint_init(&ep, o, err, errlen);
    ik_sb_endpoint_clear(&ep);
    if (rc == IK_E_NOMEM)
        snprintf(err, errlen, "out of memory");
    return rc ? IK_E_CONFIG : 0;
}

void ik_sb_endpoint_clear(ik_sb_endpoint *ep)
{
    ik_sb_connstr_free(&ep->cs);
    free(ep->entity);
    free(ep->audience_base);
    memset(ep, 0, sizeof *ep);
}

void ik_sb_endpoint_describe(const ik_sb_endpoint *ep, char *buf, size_t len)
{
    snprintf(buf, len, "queue %s at %s:%d (%s%s)", ep->entity ? ep->entity : "?",
             ep->cs.host ? ep->cs.host : "?",
             ep->client.port ? ep->client.port : (ep->client.tls ? 5671 : 5672),
             ep->client.tls ? "amqps" : "amqp",
             ep->client.auth == IK_SB_AUTH_CBS     ? ", CBS"
             : ep->client.auth == IK_SB_AUTH_SAS   ? ", shared access signature"
             : ep->client.auth == IK_SB_AUTH_PLAIN ? ", SASL PLAIN"
                                                   : ", anonymous");
}
