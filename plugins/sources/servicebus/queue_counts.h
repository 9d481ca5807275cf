/*
 * queue_counts.h: the queue's runtime counts (active, dead-letter,
 * scheduled, ...) for the `status` command, fetched from the management
 * REST API (lib/servicebus/runtime.h) by a small thread of the source's
 * own, so neither the command nor the AMQP run thread ever waits on HTTP.
 */
#ifndef INTAKE_SB_QUEUE_COUNTS_H
#define INTAKE_SB_QUEUE_COUNTS_H

#include <stddef.h>

#include "sb_source.h"

typedef struct sb_queue_counts sb_queue_counts;

/* check(): refuses a management_endpoint that is not empty, "none" or an
 * http(s):// URL. 0, or IK_E_CONFIG with err saying why. */
int sb_queue_counts_check(const sb_config *cfg, char *err, size_t errlen);

/*
 * cmd_status (admin thread, st->mu NOT held: it takes it): adds to `o`
 * "counts" (the last counts, "as_of_ms", "age_ms", "refreshing"; before
 * the first answer only {"state": "pending", "refreshing": true}) or
 * "counts_error", and asks the thread for fresh counts. The first call
 * starts the thread. Adds nothing when counts are off (broker = amqp,
 * management_endpoint empty or "none").
 */
void sb_queue_counts_report(sb_source *st, json_object *o);

/* destroy(): stops (a GET in progress is given up) and joins the thread,
 * frees st->counts. Before st->mu is destroyed. */
void sb_queue_counts_free(sb_source *st);

#endif
