/*
 * test_admin_guard.c: unit tests of the admin server's connection guard
 * (engine/admin_guard.c), on a clock the tests drive. Connections are
 * socketpairs: the guard gets one end, and the test sees on the other whether
 * the guard shut it down. Log lines are read back from a temporary file that
 * stands in for stderr.
 */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin_guard.h"
#include "log.h"
#include "stderr_capture.h"

/* ---- helpers --------------------------------------------------------------- */

static struct sockaddr_in peer(const char *ip, uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    return sa;
}

/* A connection the guard tracks: `ours` is given to the guard, the test
 * watches `theirs`. */
typedef struct tconn {
    int ours, theirs;
    ik_admin_conn *slot;
} tconn;

static tconn open_conn(ik_admin_guard *g, const char *ip, uint64_t now)
{
    tconn t = {-1, -1, NULL};
    int sv[2];
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    t.ours = sv[0];
    t.theirs = sv[1];
    struct sockaddr_in sa = peer(ip, 40000);
    t.slot = ik_admin_guard_opened(g, t.ours, (struct sockaddr *)&sa, now);
    CU_ASSERT_PTR_NOT_NULL(t.slot);
    return t;
}

/* True when the guard has shut the connection down (the other end reads EOF). */
static int is_shut(const tconn *t)
{
    char c;
    return recv(t->theirs, &c, 1, MSG_DONTWAIT) == 0;
}

/* Tells the guard the connection closed, and closes both ends. */
static void close_conn(ik_admin_guard *g, tconn *t)
{
    ik_admin_guard_closed(g, t->slot);
    close(t->ours);
    close(t->theirs);
    t->slot = NULL;
}

static bool admit(ik_admin_guard *g, const char *ip, uint64_t now)
{
    struct sockaddr_in sa = peer(ip, 50000);
    return ik_admin_guard_admit(g, (struct sockaddr *)&sa, now);
}

static int count(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_defaults(void)
{
    ik_admin_guard *g = ik_admin_guard_new(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    const ik_admin_limits *l = ik_admin_guard_limits(g);
    CU_ASSERT_EQUAL(l->request_timeout_ms, IK_ADMIN_REQUEST_TIMEOUT_MS);
    CU_ASSERT_EQUAL(l->max_connections, IK_ADMIN_MAX_CONNECTIONS);
    CU_ASSERT_EQUAL(l->max_per_peer, IK_ADMIN_MAX_PER_PEER);
    CU_ASSERT_EQUAL(l->log_interval_ms, IK_ADMIN_LOG_INTERVAL_MS);
    /* room beyond max_connections for connections being closed */
    CU_ASSERT_TRUE(ik_admin_guard_capacity(g) > IK_ADMIN_MAX_CONNECTIONS);
    CU_ASSERT_EQUAL(ik_admin_guard_sweep(g, 5), UINT64_MAX);
    ik_admin_guard_free(g, 5);
    ik_admin_guard_free(NULL, 0);

    /* a deadline past the end of the clock does not wrap around */
    ik_admin_limits forever = {.request_timeout_ms = UINT64_MAX - 5};
    g = ik_admin_guard_new(&forever);
    tconn t = open_conn(g, "127.0.0.1", 10);
    CU_ASSERT_EQUAL(ik_admin_guard_sweep(g, 20), UINT64_MAX - 1);
    CU_ASSERT_FALSE(is_shut(&t));
    close_conn(g, &t);
    ik_admin_guard_free(g, 20);

    ik_admin_limits mine = {.request_timeout_ms = 250, .max_connections = 3};
    g = ik_admin_guard_new(&mine);
    CU_ASSERT_EQUAL(ik_admin_guard_limits(g)->request_timeout_ms, 250);
    CU_ASSERT_EQUAL(ik_admin_guard_limits(g)->max_connections, 3);
    CU_ASSERT_EQUAL(ik_admin_guard_limits(g)->max_per_peer, IK_ADMIN_MAX_PER_PEER);
    ik_admin_guard_free(g, 0);
}

/* The deadline counts from the accept, whatever arrives meanwhile (the guard
 * never hears of bytes), and is the sweep's next wake-up. */
static void test_deadline(void)
{
    ik_admin_limits lim = {.request_timeout_ms = 1000};
    ik_admin_guard *g = ik_admin_guard_new(&lim);
    tconn a = open_conn(g, "127.0.0.1", 5000);
    tconn b = open_conn(g, "127.0.0.1", 5400);
    CU_ASSERT_EQUAL(ik_admin_guard_sweep(g, 5999), 6000);
    CU_ASSERT_FALSE(is_shut(&a));
    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    CU_ASSERT_EQUAL(ik_admin_guard_sweep(g, 6000), 6400);
    CU_ASSERT_TRUE(is_shut(&a));
    CU_ASSERT_FALSE(is_shut(&b));
    close_conn(g, &a);
    ik_admin_guard_sweep(g, 6400);
    CU_ASSERT_TRUE(is_shut(&b));
    close_conn(g, &b);
    ik_admin_guard_free(g, 7000);
    char *log = stderr_capture_end();
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "closed the connection from 127.0.0.1:40000: it did not "
                                       "complete a request within 1 s (admin.request_timeout)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "1 more connection refused or closed in the last 1.0 s (1 "
                                       "past request_timeout"));
    free(log);
}

/* An answer restarts the clock for the next request on a kept-alive
 * connection; while the answer is under way the deadline still holds. */
static void test_answer_restarts_clock(void)
{
    ik_admin_limits lim = {.request_timeout_ms = 1000};
    ik_admin_guard *g = ik_admin_guard_new(&lim);
    tconn a = open_conn(g, "127.0.0.1", 0);
    ik_admin_guard_answering(a.slot);
    ik_admin_guard_answered(a.slot, 800);
    CU_ASSERT_EQUAL(ik_admin_guard_sweep(g, 1500), 1800);
    CU_ASSERT_FALSE(is_shut(&a));
    ik_admin_guard_answering(a.slot);
    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    ik_admin_guard_sweep(g, 1800);
    free(stderr_capture_end());
    CU_ASSERT_TRUE(is_shut(&a));
    close_conn(g, &a);
    /* NULL slots (untracked connections) are accepted */
    ik_admin_guard_answering(NULL);
    ik_admin_guard_answered(NULL, 0);
    ik_admin_guard_closed(g, NULL);
    ik_admin_guard_free(g, 2000);
}

/* A full table makes room by closing the connection that has waited longest
 * for a request; one being answered is kept; none to close: refused. */
static void test_room_for_new_connections(void)
{
    ik_admin_limits lim = {.max_connections = 3};
    ik_admin_guard *g = ik_admin_guard_new(&lim);
    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    CU_ASSERT_TRUE(admit(g, "127.0.0.1", 0));
    tconn a = open_conn(g, "127.0.0.1", 0);
    tconn b = open_conn(g, "127.0.0.1", 10);
    tconn c = open_conn(g, "127.0.0.1", 10); /* same time as b, arrived later */
    ik_admin_guard_answering(a.slot);
    CU_ASSERT_TRUE(admit(g, "127.0.0.1", 20));
    CU_ASSERT_FALSE(is_shut(&a));
    CU_ASSERT_TRUE(is_shut(&b));
    CU_ASSERT_FALSE(is_shut(&c));
    tconn d = open_conn(g, "127.0.0.1", 20);
    /* b is still being closed by MHD: it does not count, and is not picked */
    CU_ASSERT_TRUE(admit(g, "127.0.0.1", 30));
    CU_ASSERT_TRUE(is_shut(&c));
    CU_ASSERT_FALSE(is_shut(&d));
    tconn e = open_conn(g, "127.0.0.1", 30);
    ik_admin_guard_answering(d.slot);
    ik_admin_guard_answering(e.slot);
    CU_ASSERT_FALSE(admit(g, "127.0.0.1", 40));
    CU_ASSERT_FALSE(is_shut(&a) || is_shut(&d) || is_shut(&e));
    tconn *all[] = {&a, &b, &c, &d, &e};
    for (size_t i = 0; i < 5; i++)
        close_conn(g, all[i]);
    ik_admin_guard_free(g, 50);
    char *log = stderr_capture_end();
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "closed the connection from 127.0.0.1:40000, which had "
                                       "waited longest for a request, to make room for "
                                       "127.0.0.1:50000 (all 3 connections in use)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "2 more connections refused or closed in the last 0.0 s (0 "
                                       "past request_timeout, 1 closed to make room, 1 refused)"));
    free(log);
}

/* An address other than loopback holds at most max_per_peer connections;
 * loopback clients are not limited per address. */
static void test_per_peer_limit(void)
{
    ik_admin_limits lim = {.max_connections = 20, .max_per_peer = 2};
    ik_admin_guard *g = ik_admin_guard_new(&lim);
    tconn c[8];
    int n = 0;
    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_TRUE(admit(g, "10.1.2.3", 0));
        c[n++] = open_conn(g, "10.1.2.3", 0);
    }
    CU_ASSERT_FALSE(admit(g, "10.1.2.3", 1));
    CU_ASSERT_TRUE(admit(g, "10.1.2.4", 1));
    for (int i = 0; i < 5; i++) {
        CU_ASSERT_TRUE(admit(g, "127.0.0.1", 2));
        c[n++] = open_conn(g, "127.0.0.1", 2);
    }
    CU_ASSERT_TRUE(admit(g, "127.0.0.5", 2));
    /* a connection the guard shut down no longer counts */
    ik_admin_guard_sweep(g, IK_ADMIN_REQUEST_TIMEOUT_MS);
    CU_ASSERT_TRUE(is_shut(&c[0]) && is_shut(&c[1]));
    CU_ASSERT_TRUE(admit(g, "10.1.2.3", IK_ADMIN_REQUEST_TIMEOUT_MS));
    for (int i = 0; i < n; i++)
        close_conn(g, &c[i]);
    ik_admin_guard_free(g, IK_ADMIN_REQUEST_TIMEOUT_MS);
    char *log = stderr_capture_end();
    CU_ASSERT_PTR_NOT_NULL(
        strstr(log, "refused a connection from 10.1.2.3:50000: that address already holds 2 "
                    "connections"));
    free(log);
}

/* A flood of closures logs one line, then one summary per interval; a quiet
 * interval closes the window, so the next closure is logged in full again;
 * the summary still held back is logged when the guard is freed. */
static void test_log_is_rate_limited(void)
{
    enum { N = 50 };
    ik_admin_limits lim = {.request_timeout_ms = 100, .log_interval_ms = 1000};
    ik_admin_guard *g = ik_admin_guard_new(&lim);
    tconn c[N];
    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    for (int i = 0; i < N; i++)
        c[i] = open_conn(g, "127.0.0.1", 0);
    CU_ASSERT_EQUAL(ik_admin_guard_sweep(g, 100), 1100); /* all 50 time out */
    ik_admin_guard_sweep(g, 1099);
    for (int i = 0; i < N; i++)
        close_conn(g, &c[i]);
    for (int i = 0; i < 10; i++)
        ik_admin_guard_diag(g, "Connection was closed by remote side", 200);
    CU_ASSERT_EQUAL(ik_admin_guard_sweep(g, 1100), 1200);
    char *log = stderr_capture_end();
    CU_ASSERT_EQUAL(count(log, "\n"), 3);
    CU_ASSERT_EQUAL(count(log, "it did not complete a request within 0.1 s"), 1);
    CU_ASSERT_EQUAL(count(log, "further refusals and closures are summarised every 1 s"), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "49 more connections refused or closed in the last 1.0 s "
                                       "(49 past request_timeout, 0 closed to make room, 0 "
                                       "refused)"));
    CU_ASSERT_EQUAL(count(log, "http server: Connection was closed by remote side (further"), 1);
    free(log);

    /* the connection window's next interval is quiet: it closes, so the next
     * timeout is logged in full; the diag window's summary is due */
    CU_ASSERT_EQUAL_FATAL(stderr_capture_begin(), 0);
    CU_ASSERT_EQUAL(ik_admin_guard_sweep(g, 2100), 3100);
    tconn d = open_conn(g, "127.0.0.1", 2100);
    ik_admin_guard_sweep(g, 2200);
    close_conn(g, &d);
    ik_admin_guard_diag(g, "another", 2200);
    /* freeing logs what is still held back */
    ik_admin_guard_free(g, 2500);
    log = stderr_capture_end();
    CU_ASSERT_EQUAL(count(log, "\n"), 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "9 more messages from the HTTP server in the last 1.9 s"));
    CU_ASSERT_EQUAL(count(log, "it did not complete a request within 0.1 s"), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "1 more message from the HTTP server in the last 0.4 s"));
    free(log);
}

int main(void)
{
    ik_log_configure(IK_LOG_TEXT, IK_LOG_WARN);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("admin_guard", NULL, NULL);
    if (!s) {
        CU_cleanup_registry();
        return 1;
    }
    CU_add_test(s, "defaults and limits", test_defaults);
    CU_add_test(s, "deadline from accept", test_deadline);
    CU_add_test(s, "an answer restarts the clock", test_answer_restarts_clock);
    CU_add_test(s, "room for new connections", test_room_for_new_connections);
    CU_add_test(s, "per-address limit, loopback exempt", test_per_peer_limit);
    CU_add_test(s, "warnings are rate-limited", test_log_is_rate_limited);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failures = CU_get_number_of_failures();
    CU_cleanup_registry();
    ik_log_shutdown();
    return failures > 0 ? 1 : 0;
}
