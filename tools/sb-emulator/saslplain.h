/* saslplain.h: server-side SASL for the emulator: ANONYMOUS (then CBS) and PLAIN
 * (user = shared access key name, password = key; authorises the whole namespace). */
#ifndef SBEMU_SASLPLAIN_H
#define SBEMU_SASLPLAIN_H

#include <proton/transport.h>

#include "config.h"

int sb_sasl_init(const sb_config *cfg);
void sb_sasl_fini(void);
/* Installs the mechanisms on a server transport. */
void sb_sasl_setup(pn_transport_t *t, const sb_config *cfg);
/* 1 if the transport authenticated with PLAIN and a valid key. */
int sb_sasl_plain_ok(pn_transport_t *t);

#endif
