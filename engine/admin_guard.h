/*
 * admin_guard.h: which connections the admin server keeps, and for how long.
 *
 * The admin server (admin.c) tells the guard about every connection
 * libmicrohttpd accepts, answers and closes; the guard enforces the
 * ik_admin_limits (admin.h):
 *   - a connection has request_timeout from its accept, or from the end of its
 *     previous answer, to send a complete request and take the answer; bytes
 *     trickled meanwhile do not extend it. Past it the guard shuts the socket
 *     down, and libmicrohttpd closes the connection on its next run.
 *   - at most max_connections are kept. When all are taken, a new connection
 *     closes the one that has waited longest for a request (one whose answer
 *     is under way is never closed for room); when every one is being
 *     answered, the new one is refused.
 *   - an IPv4 address other than loopback (127/8) holds at most max_per_peer
 *     connections. Loopback is exempt: every local client, a probe included,
 *     shares it.
 * Each refusal or closure is logged at warn level, the first in full, then
 * counted and summarised once per log_interval ("N more connections refused
 * or closed in the last M s"); libmicrohttpd's own messages likewise.
 *
 * Every time is a caller-given ik_now_ms() reading, so tests can drive it.
 * Not thread-safe: one thread at a time calls it (the admin server's). It
 * never closes a socket, only shuts it down: libmicrohttpd owns the sockets.
 */
#ifndef IK_ADMIN_GUARD_H
#define IK_ADMIN_GUARD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "admin.h"

typedef struct ik_admin_guard ik_admin_guard;
typedef struct ik_admin_conn ik_admin_conn;

/* A guard for `limits` (NULL or zero fields: the IK_ADMIN_* defaults).
 * NULL when out of memory. */
ik_admin_guard *ik_admin_guard_new(const ik_admin_limits *limits);

/* Logs the summaries still held back and frees the guard. Accepts NULL. Every
 * connection must have been closed first (ik_admin_guard_closed). */
void ik_admin_guard_free(ik_admin_guard *g, uint64_t now);

/* The limits in force, defaults filled in. */
const ik_admin_limits *ik_admin_guard_limits(const ik_admin_guard *g);

/* How many connections libmicrohttpd may hold: max_connections plus room for
 * those the guard has shut down and libmicrohttpd has yet to close. */
unsigned ik_admin_guard_capacity(const ik_admin_guard *g);

/* Decides on a new connection from `peer` before it is set up: true to take
 * it (after shutting down the longest-waiting connection when all are taken),
 * false to refuse it. */
bool ik_admin_guard_admit(ik_admin_guard *g, const struct sockaddr *peer, uint64_t now);

/* Tracks a connection just taken: `fd` is its socket (libmicrohttpd's). Its
 * clock starts at `now`. Returns its slot, owned by the guard until
 * ik_admin_guard_closed(); NULL when every slot of the capacity is in use,
 * and then the caller must close the connection itself. */
ik_admin_conn *ik_admin_guard_opened(ik_admin_guard *g, int fd, const struct sockaddr *peer,
                                     uint64_t now);

/* The connection's request is complete and its answer under way: it is no
 * longer closed to make room (its deadline still holds). Accepts NULL. */
void ik_admin_guard_answering(ik_admin_conn *c);

/* The answer is done: a kept-alive connection's next request gets a fresh
 * request_timeout from `now`. Accepts NULL. */
void ik_admin_guard_answered(ik_admin_conn *c, uint64_t now);

/* libmicrohttpd closed the connection: forget it. Accepts NULL. */
void ik_admin_guard_closed(ik_admin_guard *g, ik_admin_conn *c);

/* Shuts down every connection past its deadline and logs the summaries that
 * are due. Returns when it next has something to do (a deadline or a summary,
 * on the ik_now_ms() clock), or UINT64_MAX when nothing is pending. */
uint64_t ik_admin_guard_sweep(ik_admin_guard *g, uint64_t now);

/* Logs a message of libmicrohttpd's (without its trailing newline), or counts
 * it toward the next summary when one was logged less than log_interval ago. */
void ik_admin_guard_diag(ik_admin_guard *g, const char *msg, uint64_t now);

#endif
