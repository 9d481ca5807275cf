/* sbemu_bench.c: a small qpid-proton C client that measures the emulator: sends N messages
 * (unsettled, counting the broker's accepted outcomes), then receives them in peek-lock
 * (rcv-settle-mode second) and completes each one, waiting for the broker's settled reply.
 * Authenticates with SASL PLAIN (key name / key), so no CBS round trip is needed. */
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/delivery.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/message.h>
#include <proton/proactor.h>
#include <proton/sasl.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <proton/transport.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct bench {
    const char *addr, *queue, *user, *password;
    long n, window, body;
    int do_send, do_recv;
    long sent, accepted, received, completed;
    double t_send0, t_send1, t_recv0, t_recv1;
    pn_link_t *snd, *rcv;
    pn_session_t *ssn;
    char *payload;
    size_t payload_len;
    int failed;
} bench;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int encode_payload(bench *b)
{
    pn_message_t *m = pn_message();
    if (!m)
        return -1;
    char *body = malloc((size_t)b->body + 3);
    if (!body) {
        pn_message_free(m);
        return -1;
    }
    body[0] = '"';
    memset(body + 1, 'x', (size_t)b->body);
    body[b->body + 1] = '"';
    pn_data_put_binary(pn_message_body(m), pn_bytes((size_t)b->body + 2, body));
    pn_message_set_inferred(m, true);
    pn_message_set_durable(m, true);
    size_t cap = (size_t)b->body + 256;
    b->payload = malloc(cap);
    int rc = b->payload ? pn_message_encode(m, b->payload, &cap) : -1;
    b->payload_len = cap;
    free(body);
    pn_message_free(m);
    return rc;
}

static void start_recv(bench *b)
{
    b->rcv = pn_receiver(b->ssn, "bench-receiver");
    pn_terminus_set_address(pn_link_source(b->rcv), b->queue);
    pn_link_set_snd_settle_mode(b->rcv, PN_SND_UNSETTLED);
    pn_link_set_rcv_settle_mode(b->rcv, PN_RCV_SECOND);
    pn_link_open(b->rcv);
    pn_link_flow(b->rcv, (int)b->window);
    b->t_recv0 = now_s();
}

static int handle(bench *b, pn_event_t *e)
{
    switch (pn_event_type(e)) {
    case PN_CONNECTION_INIT: {
        pn_connection_t *c = pn_event_connection(e);
        pn_connection_set_container(c, "sbemu-bench");
        pn_connection_set_user(c, b->user);
        pn_connection_set_password(c, b->password);
        pn_connection_open(c);
        b->ssn = pn_session(c);
        pn_session_open(b->ssn);
        if (b->do_send) {
            b->snd = pn_sender(b->ssn, "bench-sender");
            pn_terminus_set_address(pn_link_target(b->snd), b->queue);
            pn_link_open(b->snd);
            b->t_send0 = now_s();
        } else {
            start_recv(b);
        }
        break;
    }
    case PN_CONNECTION_BOUND: {
        pn_sasl_t *s = pn_sasl(pn_event_transport(e));
        pn_sasl_allowed_mechs(s, "PLAIN");
        pn_sasl_set_allow_insecure_mechs(s, true);
        break;
    }
    case PN_LINK_FLOW: {
        pn_link_t *l = pn_event_link(e);
        if (l == b->snd) {
            while (pn_link_credit(l) > 0 && b->sent < b->n) {
                char tag[16];
                int tl = snprintf(tag, sizeof tag, "%ld", b->sent);
                pn_delivery(l, pn_dtag(tag, (size_t)tl));
                pn_link_send(l, b->payload, b->payload_len);
                pn_link_advance(l);
                b->sent++;
            }
        }
        break;
    }
    case PN_DELIVERY: {
        pn_delivery_t *d = pn_event_delivery(e);
        pn_link_t *l = pn_delivery_link(d);
        if (l == b->snd) {
            if (pn_delivery_updated(d)) {
                if (pn_delivery_remote_state(d) != PN_ACCEPTED) {
                    fprintf(stderr, "sbemu-bench: send not accepted\n");
                    b->failed = 1;
                }
                pn_delivery_settle(d);
                if (++b->accepted == b->n) {
                    b->t_send1 = now_s();
                    pn_link_close(b->snd);
                    if (b->do_recv)
                        start_recv(b);
                    else
                        pn_connection_close(pn_event_connection(e));
                }
            }
        } else if (l == b->rcv) {
            if (pn_delivery_readable(d) && !pn_delivery_partial(d) && !pn_delivery_updated(d)) {
                char buf[65536];
                size_t pend = pn_delivery_pending(d);
                while (pend > 0) {
                    ssize_t r = pn_link_recv(l, buf, pend < sizeof buf ? pend : sizeof buf);
                    if (r <= 0)
                        break;
                    pend -= (size_t)r;
                }
                pn_link_advance(l);
                b->received++;
                pn_delivery_update(d, PN_ACCEPTED); /* complete; wait for the settled reply */
            } else if (pn_delivery_updated(d) && pn_delivery_settled(d)) {
                if (pn_delivery_remote_state(d) != PN_ACCEPTED) {
                    fprintf(stderr, "sbemu-bench: complete refused\n");
                    b->failed = 1;
                }
                pn_delivery_settle(d);
                b->completed++;
                if (pn_link_credit(l) < b->window / 2 && b->received < b->n)
                    pn_link_flow(l, (int)(b->window - pn_link_credit(l)));
                if (b->completed == b->n) {
                    b->t_recv1 = now_s();
                    pn_link_close(l);
                    pn_connection_close(pn_event_connection(e));
                }
            }
        }
        break;
    }
    case PN_TRANSPORT_CLOSED: {
        pn_condition_t *c = pn_transport_condition(pn_event_transport(e));
        if (pn_condition_is_set(c)) {
            fprintf(stderr, "sbemu-bench: %s: %s\n", pn_condition_get_name(c),
                    pn_condition_get_description(c));
            b->failed = 1;
        }
        return 1;
    }
    case PN_LINK_REMOTE_CLOSE: {
        pn_condition_t *c = pn_link_remote_condition(pn_event_link(e));
        if (pn_condition_is_set(c)) {
            fprintf(stderr, "sbemu-bench: link: %s: %s\n", pn_condition_get_name(c),
                    pn_condition_get_description(c));
            b->failed = 1;
            pn_connection_close(pn_event_connection(e));
        }
        break;
    }
    default:
        break;
    }
    return 0;
}

int main(int argc, char **argv)
{
    bench b = {.addr = "127.0.0.1:5672",
               .queue = "q1",
               .user = "RootManageSharedAccessKey",
               .password = NULL,
               .n = 100000,
               .window = 2000,
               .body = 100,
               .do_send = 1,
               .do_recv = 1};
    int opt;
    while ((opt = getopt(argc, argv, "a:q:u:p:n:w:b:m:h")) != -1) {
        switch (opt) {
        case 'a':
            b.addr = optarg;
            break;
        case 'q':
            b.queue = optarg;
            break;
        case 'u':
            b.user = optarg;
            break;
        case 'p':
            b.password = optarg;
            break;
        case 'n':
            b.n = atol(optarg);
            break;
        case 'w':
            b.window = atol(optarg);
            break;
        case 'b':
            b.body = atol(optarg);
            break;
        case 'm':
            b.do_send = strcmp(optarg, "recv") != 0;
            b.do_recv = strcmp(optarg, "send") != 0;
            break;
        default:
            fprintf(stderr, "usage: sbemu-bench -p KEY [-a HOST:PORT] [-q QUEUE] [-u KEYNAME] "
                            "[-n COUNT] [-w CREDIT] [-b BODYBYTES] [-m send|recv|both]\n"
                            "  the key may also come from $SBEMU_KEY\n");
            return 2;
        }
    }
    if (!b.password)
        b.password = getenv("SBEMU_KEY");
    if (!b.password || b.n <= 0 || b.window <= 0 || b.body < 0 || b.body > 60000) {
        fprintf(stderr, "sbemu-bench: need -p KEY (or $SBEMU_KEY), n > 0, window > 0, body <= "
                        "60000\n");
        return 2;
    }
    if (encode_payload(&b) != 0) {
        fprintf(stderr, "sbemu-bench: cannot encode the message\n");
        return 1;
    }
    pn_proactor_t *p = pn_proactor();
    pn_proactor_connect2(p, NULL, NULL, b.addr);
    int done = 0;
    while (!done) {
        pn_event_batch_t *batch = pn_proactor_wait(p);
        pn_event_t *e;
        while ((e = pn_event_batch_next(batch)))
            if (handle(&b, e))
                done = 1;
        pn_proactor_done(p, batch);
    }
    pn_proactor_free(p);
    free(b.payload);
    if (b.do_send && b.accepted == b.n)
        printf("send: %ld messages of %ld bytes in %.3f s = %.0f msg/s\n", b.n, b.body,
               b.t_send1 - b.t_send0, (double)b.n / (b.t_send1 - b.t_send0));
    if (b.do_recv && b.completed == b.n)
        printf("receive+complete (peek-lock): %ld messages in %.3f s = %.0f msg/s\n", b.n,
               b.t_recv1 - b.t_recv0, (double)b.n / (b.t_recv1 - b.t_recv0));
    return b.failed || (b.do_send && b.accepted != b.n) || (b.do_recv && b.completed != b.n);
}
