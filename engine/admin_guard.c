/*
 * admin_guard.c: the admin server's connection guard (see admin_guard.h).
 *
 * The connections live in a fixed table of capacity() slots, allocated once,
 * so tracking a connection never fails for memory; every decision scans it
 * (a few hundred slots at most, against one accept or one loop turn).
 */
#include "admin_guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Slots beyond max_connections for connections shut down and not yet closed
 * by libmicrohttpd (it accepts at most 10 per run before closing them). */
#define SLACK 16u

struct ik_admin_conn {
    bool used;
    bool answering; /* request complete, answer under way */
    bool closing;   /* shut down here; libmicrohttpd has yet to close it */
    int fd;
    uint64_t since_ms; /* accept, or the end of the previous answer */
    uint64_t seq;      /* order of arrival: breaks ties of since_ms */
    bool inet;         /* peer is IPv4: addr and port are set */
    struct in_addr addr;
    uint16_t port; /* host order */
};

/* What the guard logs, in the order of the summary's breakdown. */
enum { EV_TIMEOUT, EV_ROOM, EV_REFUSED, EV_DIAG, EV_KINDS };

/* One rate-limited stream of warnings: the first is logged in full and opens a
 * window of log_interval in which further ones are only counted; a window
 * that ends with counts logs their summary and opens the next, a quiet one
 * closes. */
typedef struct ratelog {
    bool open;
    uint64_t since_ms; /* start of the current window */
    unsigned held[EV_KINDS];
} ratelog;

struct ik_admin_guard {
    ik_admin_limits lim;
    unsigned cap;
    ik_admin_conn *conns; /* cap slots */
    uint64_t next_seq;
    ratelog conn_log; /* EV_TIMEOUT, EV_ROOM, EV_REFUSED */
    ratelog diag_log; /* EV_DIAG */
};

/* ---- rate-limited log ------------------------------------------------------ */

/* True when the event is to be logged in full; otherwise it is counted. */
static bool ratelog_hit(ratelog *r, int kind, uint64_t now)
{
    if (!r->open) {
        r->open = true;
        r->since_ms = now;
        return true;
    }
    r->held[kind]++;
    return false;
}

static unsigned ratelog_total(const ratelog *r)
{
    unsigned n = 0;
    for (int k = 0; k < EV_KINDS; k++)
        n += r->held[k];
    return n;
}

/* Logs the summary of r's window (if anything was held back) and starts the
 * next window; a window without events closes, so the next event is logged in
 * full again. `force` ends the window early (at shutdown) and closes it. */
static void ratelog_flush(ratelog *r, uint64_t now, bool force, uint64_t interval_ms)
{
    if (!r->open || (!force && now - r->since_ms < interval_ms))
        return;
    unsigned n = ratelog_total(r);
    double secs = (double)(now - r->since_ms) / 1000.0;
    const char *s = n == 1 ? "" : "s";
    if (n > 0 && r->held[EV_DIAG] == n)
        ik_logf(IK_LOG_WARN, NULL, "admin",
                "%u more message%s from the HTTP server in the last %.1f s", n, s, secs);
    else if (n > 0)
        ik_logf(IK_LOG_WARN, NULL, "admin",
                "%u more connection%s refused or closed in the last %.1f s (%u past "
                "request_timeout, %u closed to make room, %u refused)",
                n, s, secs, r->held[EV_TIMEOUT], r->held[EV_ROOM], r->held[EV_REFUSED]);
    memset(r->held, 0, sizeof r->held);
    r->since_ms = now;
    r->open = n > 0 && !force;
}

/* Logs a connection event in full, or counts it (see ratelog). */
static void conn_event(ik_admin_guard *g, int kind, uint64_t now, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void conn_event(ik_admin_guard *g, int kind, uint64_t now, const char *fmt, ...)
{
    if (!ratelog_hit(&g->conn_log, kind, now))
        return;
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ik_logf(IK_LOG_WARN, NULL, "admin",
            "%s; further refusals and closures are summarised every %g s", msg,
            (double)g->lim.log_interval_ms / 1000.0);
}

void ik_admin_guard_diag(ik_admin_guard *g, const char *msg, uint64_t now)
{
    if (ratelog_hit(&g->diag_log, EV_DIAG, now))
        ik_logf(IK_LOG_WARN, NULL, "admin",
                "http server: %s (further messages are summarised every %g s)", msg,
                (double)g->lim.log_interval_ms / 1000.0);
}

/* ---- the table ------------------------------------------------------------- */

ik_admin_guard *ik_admin_guard_new(const ik_admin_limits *limits)
{
    ik_admin_guard *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    if (limits)
        g->lim = *limits;
    if (!g->lim.request_timeout_ms)
        g->lim.request_timeout_ms = IK_ADMIN_REQUEST_TIMEOUT_MS;
    if (!g->lim.max_connections)
        g->lim.max_connections = IK_ADMIN_MAX_CONNECTIONS;
    if (!g->lim.max_per_peer)
        g->lim.max_per_peer = IK_ADMIN_MAX_PER_PEER;
    if (!g->lim.log_interval_ms)
        g->lim.log_interval_ms = IK_ADMIN_LOG_INTERVAL_MS;
    g->cap = g->lim.max_connections + SLACK;
    g->conns = calloc(g->cap, sizeof *g->conns);
    if (!g->conns) {
        free(g);
        return NULL;
    }
    return g;
}

void ik_admin_guard_free(ik_admin_guard *g, uint64_t now)
{
    if (!g)
        return;
    ratelog_flush(&g->conn_log, now, true, g->lim.log_interval_ms);
    ratelog_flush(&g->diag_log, now, true, g->lim.log_interval_ms);
    free(g->conns);
    free(g);
}

const ik_admin_limits *ik_admin_guard_limits(const ik_admin_guard *g)
{
    return &g->lim;
}

unsigned ik_admin_guard_capacity(const ik_admin_guard *g)
{
    return g->cap;
}

/* "1.2.3.4:5678" of a connection, for the log. */
static const char *conn_name(const ik_admin_conn *c, char *buf, size_t len)
{
    char ip[INET_ADDRSTRLEN] = "?";
    if (c->inet)
        inet_ntop(AF_INET, &c->addr, ip, sizeof ip);
    snprintf(buf, len, "%s:%u", ip, (unsigned)c->port);
    return buf;
}

/* Fills the peer fields of c from an accepted connection's address. */
static void set_peer(ik_admin_conn *c, const struct sockaddr *peer)
{
    c->inet = peer && peer->sa_family == AF_INET;
    if (c->inet) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)peer;
        c->addr = in->sin_addr;
        c->port = ntohs(in->sin_port);
    }
}

static bool is_loopback(const ik_admin_conn *c)
{
    return !c->inet || (ntohl(c->addr.s_addr) >> 24) == 127;
}

/* Connections not yet shut down; with `peer`, only those from its address. */
static unsigned count_live(const ik_admin_guard *g, const ik_admin_conn *peer)
{
    unsigned n = 0;
    for (unsigned i = 0; i < g->cap; i++) {
        const ik_admin_conn *c = &g->conns[i];
        if (c->used && !c->closing && (!peer || (c->inet && c->addr.s_addr == peer->addr.s_addr)))
            n++;
    }
    return n;
}

/* The live connection that has waited longest for a request, or NULL. */
static ik_admin_conn *longest_waiting(ik_admin_guard *g)
{
    ik_admin_conn *best = NULL;
    for (unsigned i = 0; i < g->cap; i++) {
        ik_admin_conn *c = &g->conns[i];
        if (c->used && !c->closing && !c->answering &&
            (!best || c->since_ms < best->since_ms ||
             (c->since_ms == best->since_ms && c->seq < best->seq)))
            best = c;
    }
    return best;
}

/* Shuts c's socket down both ways: the client sees the connection end and
 * libmicrohttpd, reading EOF, closes it and reports it closed. */
static void shut(ik_admin_conn *c)
{
    shutdown(c->fd, SHUT_RDWR);
    c->closing = true;
}

bool ik_admin_guard_admit(ik_admin_guard *g, const struct sockaddr *peer, uint64_t now)
{
    ik_admin_conn new_conn = {0};
    char who[64], victim[64];
    set_peer(&new_conn, peer);
    conn_name(&new_conn, who, sizeof who);
    if (!is_loopback(&new_conn) && count_live(g, &new_conn) >= g->lim.max_per_peer) {
        conn_event(g, EV_REFUSED, now,
                   "refused a connection from %s: that address already holds %u connections", who,
                   g->lim.max_per_peer);
        return false;
    }
    if (count_live(g, NULL) < g->lim.max_connections)
        return true;
    ik_admin_conn *c = longest_waiting(g);
    if (!c) {
        conn_event(g, EV_REFUSED, now,
                   "refused a connection from %s: all %u connections are being answered", who,
                   g->lim.max_connections);
        return false;
    }
    shut(c);
    conn_event(g, EV_ROOM, now,
               "closed the connection from %s, which had waited longest for a request, to make "
               "room for %s (all %u connections in use)",
               conn_name(c, victim, sizeof victim), who, g->lim.max_connections);
    return true;
}

ik_admin_conn *ik_admin_guard_opened(ik_admin_guard *g, int fd, const struct sockaddr *peer,
                                     uint64_t now)
{
    for (unsigned i = 0; i < g->cap; i++) {
        ik_admin_conn *c = &g->conns[i];
        if (!c->used) {
            memset(c, 0, sizeof *c);
            c->used = true;
            c->fd = fd;
            c->since_ms = now;
            c->seq = g->next_seq++;
            set_peer(c, peer);
            return c;
        }
    }
    return NULL;
}

void ik_admin_guard_answering(ik_admin_conn *c)
{
    if (c)
        c->answering = true;
}

void ik_admin_guard_answered(ik_admin_conn *c, uint64_t now)
{
    if (!c)
        return;
    c->answering = false;
    c->since_ms = now;
}

void ik_admin_guard_closed(ik_admin_guard *g, ik_admin_conn *c)
{
    (void)g;
    if (c)
        memset(c, 0, sizeof *c);
}

/* The earlier of a and the end of r's open window. */
static uint64_t ratelog_due(const ratelog *r, uint64_t interval_ms, uint64_t a)
{
    return r->open && r->since_ms + interval_ms < a ? r->since_ms + interval_ms : a;
}

uint64_t ik_admin_guard_sweep(ik_admin_guard *g, uint64_t now)
{
    const uint64_t timeout = g->lim.request_timeout_ms;
    uint64_t next = UINT64_MAX;
    for (unsigned i = 0; i < g->cap; i++) {
        ik_admin_conn *c = &g->conns[i];
        if (!c->used || c->closing)
            continue;
        uint64_t deadline = c->since_ms + timeout;
        if (deadline < c->since_ms) /* a timeout of centuries */
            deadline = UINT64_MAX - 1;
        if (now < deadline) {
            if (deadline < next)
                next = deadline;
            continue;
        }
        char who[64];
        shut(c);
        conn_event(g, EV_TIMEOUT, now,
                   "closed the connection from %s: it did not complete a request within %g s "
                   "(admin.request_timeout)",
                   conn_name(c, who, sizeof who), (double)timeout / 1000.0);
    }
    ratelog_flush(&g->conn_log, now, false, g->lim.log_interval_ms);
    ratelog_flush(&g->diag_log, now, false, g->lim.log_interval_ms);
    next = ratelog_due(&g->conn_log, g->lim.log_interval_ms, next);
    return ratelog_due(&g->diag_log, g->lim.log_interval_ms, next);
}
