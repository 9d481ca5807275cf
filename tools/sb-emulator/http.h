/* http.h: the runtime-properties endpoint (ATOM, as ServiceBusAdministrationClient expects)
 * over HTTP and HTTPS with libmicrohttpd: GET /<queue>?api-version=... and GET /$Resources/Queues
 * (the list, with $skip/$top), with SAS authorisation. */
#ifndef SBEMU_HTTP_H
#define SBEMU_HTTP_H

#include "config.h"
#include "store.h"

typedef struct sb_http sb_http;

/* Concurrent HTTP connections per daemon: bounded so that HTTP cannot use up the descriptors the
 * AMQP side counts on (broker.c's FD_RESERVE). */
#define SB_HTTP_MAX_CONNS 16

/* Starts the configured daemons (none when both ports are -1). Returns 0, or -1 (logged).
 * *out stays NULL when nothing was configured. Actual ports go to http_port and https_port. */
int sb_http_start(sb_http **out, const sb_config *cfg, sb_store *store, int *http_port,
                  int *https_port);
void sb_http_stop(sb_http *h);

/* Builds the ATOM entry for q (exposed for tests). Returns a malloc'd string or NULL. */
char *sb_http_queue_entry(const sb_queue *q, const char *self_url, int prolog);
/* Checks a request path "/name": returns 0 and the name, or -1. */
int sb_http_parse_path(const char *url, char *name, size_t namelen);

#endif
