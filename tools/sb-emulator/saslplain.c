/* saslplain.c: a qpid-proton SASL implementation (sasl_plugin.h) offering PLAIN and ANONYMOUS
 * on server transports. PLAIN checks the user/password against the configured shared access
 * keys in constant time; a failure is logged without the password. */
#include "saslplain.h"

#include <openssl/crypto.h>
#include <proton/sasl.h>
#include <proton/sasl_plugin.h>
#include <string.h>

#include "log.h"

static const sb_config *g_cfg;
static int g_plain_ok_marker;

static void s_free(pn_transport_t *t)
{
    (void)t;
}

static const char *s_list(pn_transport_t *t)
{
    (void)t;
    return "MSSBCBS PLAIN ANONYMOUS";
}

static bool s_init_server(pn_transport_t *t)
{
    pnx_sasl_set_desired_state(t, SASL_POSTED_MECHANISMS);
    return true;
}

static bool s_init_client(pn_transport_t *t)
{
    (void)t;
    return false;
}

static void s_prepare_write(pn_transport_t *t)
{
    (void)t;
}

/* Checks a PLAIN response against the configured keys. On success returns the
 * matching key, whose name outlives the connection; `user` receives the name
 * as sent either way, for the log. */
static const sb_key_cfg *check_plain(const pn_bytes_t *recv, char *user, size_t ulen)
{
    /* [authzid] NUL authcid NUL passwd */
    if (!recv || !recv->start || recv->size < 2 || recv->size > 8192)
        return NULL;
    const char *p = recv->start, *end = p + recv->size;
    const char *n1 = memchr(p, 0, recv->size);
    if (!n1)
        return NULL;
    const char *u = n1 + 1;
    const char *n2 = memchr(u, 0, (size_t)(end - u));
    if (!n2)
        return NULL;
    size_t ul = (size_t)(n2 - u);
    const char *pw = n2 + 1;
    size_t pl = (size_t)(end - pw);
    if (ul == 0 || ul >= ulen)
        return NULL;
    memcpy(user, u, ul);
    user[ul] = 0;
    const sb_key_cfg *k = sb_config_find_key(g_cfg, user);
    if (!k)
        return NULL;
    size_t kl = strlen(k->key);
    return kl == pl && CRYPTO_memcmp(k->key, pw, pl) == 0 ? k : NULL;
}

static void s_process_init(pn_transport_t *t, const char *mech, const pn_bytes_t *recv)
{
    if (strcmp(mech, "ANONYMOUS") == 0 || strcmp(mech, "MSSBCBS") == 0) {
        pnx_sasl_set_succeeded(t, "anonymous", NULL);
        pnx_sasl_set_desired_state(t, SASL_POSTED_OUTCOME);
        return;
    }
    if (strcmp(mech, "PLAIN") == 0) {
        char user[SB_NAME_MAX];
        user[0] = 0;
        const sb_key_cfg *k = check_plain(recv, user, sizeof user);
        if (k) {
            pnx_sasl_set_context(t, &g_plain_ok_marker);
            /* proton keeps this pointer (it does not copy): pass the
             * config's name, never the stack buffer. */
            pnx_sasl_set_succeeded(t, k->name, NULL);
        } else {
            SB_WARN("sasl: PLAIN authentication failed for user '%.64s'", user);
            pnx_sasl_set_failed(t);
        }
        pnx_sasl_set_desired_state(t, SASL_POSTED_OUTCOME);
        return;
    }
    SB_WARN("sasl: mechanism '%.40s' not supported", mech);
    pnx_sasl_set_failed(t);
    pnx_sasl_set_desired_state(t, SASL_POSTED_OUTCOME);
}

static void s_process_response(pn_transport_t *t, const pn_bytes_t *recv)
{
    (void)recv;
    pnx_sasl_set_failed(t);
    pnx_sasl_set_desired_state(t, SASL_POSTED_OUTCOME);
}

static bool s_process_mechanisms(pn_transport_t *t, const char *mechs)
{
    (void)t;
    (void)mechs;
    return false;
}

static void s_process_challenge(pn_transport_t *t, const pn_bytes_t *recv)
{
    (void)t;
    (void)recv;
}

static void s_process_outcome(pn_transport_t *t, const pn_bytes_t *recv)
{
    (void)t;
    (void)recv;
}

static bool s_can_encrypt(pn_transport_t *t)
{
    (void)t;
    return false;
}

static ssize_t s_max_encrypt(pn_transport_t *t)
{
    (void)t;
    return 0;
}

static ssize_t s_encode(pn_transport_t *t, pn_bytes_t in, pn_bytes_t *out)
{
    (void)t;
    *out = in;
    return (ssize_t)in.size;
}

static const pnx_sasl_implementation g_impl = {
    s_free,
    s_list,
    s_init_server,
    s_init_client,
    s_prepare_write,
    s_process_init,
    s_process_response,
    s_process_mechanisms,
    s_process_challenge,
    s_process_outcome,
    s_can_encrypt,
    s_max_encrypt,
    s_encode,
    s_encode,
};

int sb_sasl_init(const sb_config *cfg)
{
    g_cfg = cfg;
    return 0;
}

void sb_sasl_fini(void)
{
    g_cfg = NULL;
}

void sb_sasl_setup(pn_transport_t *t, const sb_config *cfg)
{
    (void)cfg;
    pn_sasl_t *s = pn_sasl(t);
    pn_sasl_set_allow_insecure_mechs(s, true);
    pnx_sasl_set_implementation(t, &g_impl, NULL);
}

int sb_sasl_plain_ok(pn_transport_t *t)
{
    return pnx_sasl_get_context(t) == &g_plain_ok_marker;
}
