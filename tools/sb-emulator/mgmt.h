/* mgmt.h: the $management request/response node: renew-lock, peek, schedule, cancel,
 * receive-by-sequence-number, update-disposition, session lock and state. */
#ifndef SBEMU_MGMT_H
#define SBEMU_MGMT_H

#include <proton/message.h>

#include "broker.h"
#include "store.h"

/* Handles one request for queue q (already decoded into req) and fills resp's application
 * properties and body (the caller sets correlation-id and sends it). Event thread only. */
void sb_mgmt_handle(sb_broker *b, sb_queue *q, pn_message_t *req, pn_message_t *resp);

/* Helpers shared with the broker: application-property lookup in a request. */
int sb_props_get_str(pn_data_t *props, const char *key, char *out, size_t outlen);

#endif
