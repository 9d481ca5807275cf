/*
 * admin.h: the admin HTTP server (libmicrohttpd), serving
 *   GET /health   JSON from the health callback; 200 when healthy, 503 when not
 *   GET /metrics  the registry in Prometheus text format (text/plain; version=0.0.4)
 * and, with a control registry (ik_admin_start_control):
 *   GET  /api/v1/control                    every command with its help
 *   POST /api/v1/control/PIPELINE/INSTANCE/COMMAND   runs one (JSON in and out)
 * Anything else answers 404 (unknown path) or 405 (other method), with a JSON
 * error body. It runs its own thread; callbacks (health and control
 * commands) are called on it.
 *
 * Slow or idle clients cannot take it offline: a connection has
 * request_timeout from its accept to send a complete request and take the
 * whole answer, whatever it trickles meanwhile (each answer ends its
 * connection); at most max_connections are kept, and when all are taken a
 * new connection closes the one that has waited longest for a request, so a
 * probe always gets in; one address other than loopback holds at most
 * max_per_peer. What it refuses or closes is logged once, then summarised
 * every log_interval (see admin_guard.h).
 */
#ifndef IK_ADMIN_H
#define IK_ADMIN_H

#include <stdint.h>

#include <json-c/json.h>

#include "error.h"
#include "metrics.h"

#define IK_ADMIN_REQUEST_TIMEOUT_MS 10000u
#define IK_ADMIN_MAX_CONNECTIONS    128u
#define IK_ADMIN_MAX_PER_PEER       16u
#define IK_ADMIN_LOG_INTERVAL_MS    60000u

/* The admin server's limits; a zero field takes the IK_ADMIN_* default. */
typedef struct ik_admin_limits {
    uint64_t request_timeout_ms; /* to send a request and take its answer */
    unsigned max_connections;    /* connections kept at once */
    unsigned max_per_peer;       /* connections of one non-loopback address */
    uint64_t log_interval_ms;    /* how often repeated warnings are summarised */
} ik_admin_limits;

/* Builds the health document. Returns a new json object owned by the caller
 * and sets *healthy to 1 or 0. */
typedef json_object *(*ik_health_fn)(void *arg, int *healthy);

typedef struct ik_admin ik_admin;

/* Parses `listen` as "HOST:PORT" (IPv4 literal or "localhost"; port 0 picks a
 * free one) and starts serving with `limits` (NULL: all defaults; copied).
 * Returns NULL with err filled when the address is malformed or cannot be
 * bound (e.g. "admin.listen 127.0.0.1:2020: address already in use"). */
ik_admin *ik_admin_start(const char *listen, const ik_admin_limits *limits, ik_metrics *metrics,
                         ik_health_fn health, void *arg, ik_err *err);

struct ik_control;

/* Like ik_admin_start, with the control routes of `control` (borrowed; it
 * must outlive the server). With a token (copied; NULL or "" for none) the
 * control routes require "Authorization: Bearer <token>"; without one they
 * are open, which is refused (NULL, err filled) unless `listen` is
 * loopback. */
ik_admin *ik_admin_start_control(const char *listen, const ik_admin_limits *limits,
                                 ik_metrics *metrics, ik_health_fn health, void *arg,
                                 struct ik_control *control, const char *token, ik_err *err);

/* 0 when control on `listen` may run with `token` (NULL or "" for none):
 * loopback, or a token set; else IK_E_CONFIG with err saying so. */
int ik_admin_check_exposure(const char *listen, const char *token, ik_err *err);

/* The bound port (useful with port 0). */
uint16_t ik_admin_port(const ik_admin *admin);

/* Stops the server, logs the summary of warnings still held back, and frees
 * it. Accepts NULL. */
void ik_admin_stop(ik_admin *admin);

#endif
