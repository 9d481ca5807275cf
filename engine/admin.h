/*
 * admin.h: the admin HTTP server (libmicrohttpd), serving
 *   GET /health   JSON from the health callback; 200 when healthy, 503 when not
 *   GET /metrics  the registry in Prometheus text format (text/plain; version=0.0.4)
 * Anything else answers 404 (unknown path) or 405 (other method), with a JSON
 * error body. It runs its own thread; callbacks are called on it.
 */
#ifndef IK_ADMIN_H
#define IK_ADMIN_H

#include <stdint.h>

#include <json-c/json.h>

#include "error.h"
#include "metrics.h"

/* Builds the health document. Returns a new json object owned by the caller
 * and sets *healthy to 1 or 0. */
typedef json_object *(*ik_health_fn)(void *arg, int *healthy);

typedef struct ik_admin ik_admin;

/* Parses `listen` as "HOST:PORT" (IPv4 literal or "localhost"; port 0 picks a
 * free one) and starts serving. Returns NULL with err filled when the address
 * is malformed or cannot be bound (e.g. "admin.listen 127.0.0.1:2020: address
 * already in use"). */
ik_admin *ik_admin_start(const char *listen, ik_metrics *metrics, ik_health_fn health, void *arg,
                         ik_err *err);

/* The bound port (useful with port 0). */
uint16_t ik_admin_port(const ik_admin *admin);

/* Stops the server and frees it. Accepts NULL. */
void ik_admin_stop(ik_admin *admin);

#endif
