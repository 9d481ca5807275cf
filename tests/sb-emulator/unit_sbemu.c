/* unit_sbemu.c: CUnit tests of the emulator's SAS validation, AMQP byte parser and queue store. */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amqpraw.h"
#include "config.h"
#include "log.h"
#include "persist.h"
#include "sas.h"
#include "store.h"

static sb_config g_cfg;
static sb_key_cfg g_keys[1];
static sb_queue_cfg g_queues[2];

static void setup_cfg(void)
{
    memset(&g_cfg, 0, sizeof g_cfg);
    strcpy(g_keys[0].name, "RootManageSharedAccessKey");
    g_keys[0].key = "SAS_KEY_VALUE";
    g_cfg.keys = g_keys;
    g_cfg.nkeys = 1;
    memset(g_queues, 0, sizeof g_queues);
    strcpy(g_queues[0].name, "q1");
    g_queues[0].lock_duration_ms = 1000;
    g_queues[0].max_delivery_count = 3;
    g_queues[0].duplicate_window_ms = 60000;
    g_queues[0].max_size_bytes = 1 << 20;
    g_queues[0].dead_lettering_on_expiration = 1;
    g_queues[0].duplicate_detection = 1;
    g_queues[1] = g_queues[0];
    strcpy(g_queues[1].name, "qs");
    g_queues[1].requires_session = 1;
    g_cfg.queues = g_queues;
    g_cfg.nqueues = 2;
}

/* ---- SAS ---- */

static void test_sas_vectors(void)
{
    char sig[64];
    CU_ASSERT_EQUAL(sb_sas_sign("SAS_KEY_VALUE", "sb%3A%2F%2F127.0.0.1%3A5673%2Fq1", 1795863558,
                                sig, sizeof sig),
                    0);
    CU_ASSERT_STRING_EQUAL(sig, "RKxhACiiBtX6mvnj2OJnJDZa+2+P1GPNxMN8kRer/vo=");
    CU_ASSERT_EQUAL(sb_sas_sign("SAS_KEY_VALUE",
                                "https%3a%2f%2f127.0.0.1%3a8443%2fq1%3fapi-version%3d2021-05",
                                1795860558, sig, sizeof sig),
                    0);
    CU_ASSERT_STRING_EQUAL(sig, "k27FuSVP/S1OPmo+v4L7abYSgmPEfPd5jqGOCejorws=");
}

static void test_sas_validate(void)
{
    setup_cfg();
    const char *good = "SharedAccessSignature sr=sb%3A%2F%2F127.0.0.1%3A5673%2Fq1&sig="
                       "RKxhACiiBtX6mvnj2OJnJDZa%2B2%2BP1GPNxMN8kRer%2Fvo%3D&se=1795863558&skn="
                       "RootManageSharedAccessKey";
    char err[256];
    sb_sas_token t;
    CU_ASSERT_EQUAL(sb_sas_validate(&g_cfg, good, 1795863000, &t, err, sizeof err), SB_SAS_OK);
    CU_ASSERT_STRING_EQUAL(t.sr, "sb://127.0.0.1:5673/q1");
    CU_ASSERT_EQUAL(sb_sas_validate(&g_cfg, good, 1795863558, &t, err, sizeof err), SB_SAS_EXPIRED);
    const char *badsig = "SharedAccessSignature sr=sb%3A%2F%2F127.0.0.1%3A5673%2Fq1&sig="
                         "AKxhACiiBtX6mvnj2OJnJDZa%2B2%2BP1GPNxMN8kRer%2Fvo%3D&se=1795863558&skn="
                         "RootManageSharedAccessKey";
    CU_ASSERT_EQUAL(sb_sas_validate(&g_cfg, badsig, 1795863000, &t, err, sizeof err),
                    SB_SAS_BAD_SIGNATURE);
    CU_ASSERT_PTR_NULL(strstr(err, "AKxh"));
    const char *otherq = "SharedAccessSignature sr=sb%3A%2F%2F127.0.0.1%3A5673%2Fq2&sig="
                         "RKxhACiiBtX6mvnj2OJnJDZa%2B2%2BP1GPNxMN8kRer%2Fvo%3D&se=1795863558&skn="
                         "RootManageSharedAccessKey";
    CU_ASSERT_EQUAL(sb_sas_validate(&g_cfg, otherq, 1795863000, &t, err, sizeof err),
                    SB_SAS_BAD_SIGNATURE);
    const char *unknown = "SharedAccessSignature sr=x&sig=y&se=1&skn=Nobody";
    CU_ASSERT_EQUAL(sb_sas_validate(&g_cfg, unknown, 0, &t, err, sizeof err), SB_SAS_UNKNOWN_KEY);
    const char *malformed[] = {
        "",
        "Bearer abc",
        "SharedAccessSignature ",
        "SharedAccessSignature sr=a&sig=b&skn=c",          /* no se */
        "SharedAccessSignature sr=a&sig=b&se=12x&skn=c",   /* se not a number */
        "SharedAccessSignature sr=%zz&sig=b&se=1&skn=c",   /* bad escape */
        "SharedAccessSignature sr=a%&sig=b&se=1&skn=c",    /* truncated escape */
        "SharedAccessSignature sr=a%00b&sig=b&se=1&skn=c", /* embedded NUL */
        "SharedAccessSignature junk",
        NULL,
    };
    for (int i = 0; malformed[i]; i++)
        CU_ASSERT_EQUAL(sb_sas_validate(&g_cfg, malformed[i], 0, &t, err, sizeof err),
                        SB_SAS_MALFORMED);
    CU_ASSERT_EQUAL(sb_sas_validate(&g_cfg, NULL, 0, &t, err, sizeof err), SB_SAS_MALFORMED);
}

/* A token names one endpoint: the host the client reached (loopback names equal) and its port. */
static void test_sas_endpoint(void)
{
    char err[512], h[64];
    int port;
    /* the token's own sr, decoded by sb_sas_parse: upper- and lower-case escapes alike */
    const char *encoded[] = {"sb%3A%2F%2F127.0.0.1%3A5673%2Fq1", "sb%3a%2f%2flocalhost%3a5673%2fq1",
                             "sb%3A%2F%2FLocalHost%3A5673%2F", NULL};
    for (int i = 0; encoded[i]; i++) {
        char tok[512];
        snprintf(tok, sizeof tok, "SharedAccessSignature sr=%s&sig=x&se=1&skn=k", encoded[i]);
        sb_sas_token t;
        CU_ASSERT_EQUAL_FATAL(sb_sas_parse(tok, &t, err, sizeof err), 0);
        CU_ASSERT_TRUE(sb_sas_names_endpoint(t.sr, "127.0.0.1", 5673, err, sizeof err));
        CU_ASSERT_FALSE(sb_sas_names_endpoint(t.sr, "127.0.0.1", 5672, err, sizeof err));
    }
    const char *ok[] = {
        "sb://127.0.0.1:5673/q1",
        "sb://127.0.0.1:5673/",   /* the namespace, trailing slash */
        "sb://127.0.0.1:5673",    /* the namespace, no slash */
        "sb://127.0.0.1/q1",      /* no port: only the host is checked */
        "sb://LOCALHOST:5673/q1", /* host case; localhost is 127.0.0.1 */
        "sb://[::1]:5673/q1",     /* and so is ::1 */
        "https://127.0.0.1:5673/q1?api-version=2021-05",
        NULL,
    };
    for (int i = 0; ok[i]; i++) {
        err[0] = 0;
        CU_ASSERT_TRUE(sb_sas_names_endpoint(ok[i], "127.0.0.1", 5673, err, sizeof err));
        if (err[0])
            fprintf(stderr, "\n%s: %s\n", ok[i], err);
    }
    CU_ASSERT_TRUE(sb_sas_names_endpoint("sb://MyNs.ServiceBus.Windows.NET:5673/q1",
                                         "myns.servicebus.windows.net", 5673, err, sizeof err));
    const char *refused[] = {
        "sb://another-host/emails", /* another namespace */
        "sb://another-host:5673/q1",
        "sb://127.0.0.1:5672/q1", /* another port */
        "sb://127.0.0.1:56730/q1",
        "sb://127.0.0.2:5673/q1",
        "sb://127.0.0.1.example.com:5673/q1",       /* not a prefix match */
        "sb://127.0.0.1:5673@another-host:5673/q1", /* userinfo does not name the host */
        "sb://another%2Dhost:5673/q1",              /* escapes are not decoded twice */
        "sb://:5673/q1",                            /* no host */
        "sb://127.0.0.1:/q1",                       /* empty port */
        "sb://127.0.0.1:99999/q1",
        "sb://127.0.0.1:5673x/q1",
        "sb://[::1/q1",
        "q1", /* no host at all */
        "/q1/sb://127.0.0.1:5673",
        "",
        NULL,
    };
    for (int i = 0; refused[i]; i++) {
        err[0] = 0;
        CU_ASSERT_FALSE(sb_sas_names_endpoint(refused[i], "127.0.0.1", 5673, err, sizeof err));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "resource URI"));
    }
    CU_ASSERT_FALSE(sb_sas_names_endpoint("sb://localhost:5673/q1", "myns", 5673, err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "'localhost'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "'myns'"));
    /* the host parser on its own: Host headers and AMQP open hostnames */
    CU_ASSERT_EQUAL(sb_host_parse("Example.org:8443", 16, h, sizeof h, &port), 0);
    CU_ASSERT_STRING_EQUAL(h, "example.org");
    CU_ASSERT_EQUAL(port, 8443);
    CU_ASSERT_EQUAL(sb_host_parse("::1", 3, h, sizeof h, &port), 0);
    CU_ASSERT_STRING_EQUAL(h, "::1");
    CU_ASSERT_EQUAL(port, -1);
    CU_ASSERT_EQUAL(sb_host_parse("[::1]:5", 7, h, sizeof h, &port), 0);
    CU_ASSERT_STRING_EQUAL(h, "::1");
    CU_ASSERT_EQUAL(port, 5);
    CU_ASSERT_EQUAL(sb_host_parse("[::1]x", 6, h, sizeof h, &port), -1);
    CU_ASSERT_EQUAL(sb_host_parse("", 0, h, sizeof h, &port), -1);
    CU_ASSERT_EQUAL(sb_host_parse("abcdefgh", 8, h, 8, &port), -1);
}

static void test_sas_scope(void)
{
    char p[128];
    CU_ASSERT_EQUAL(sb_sas_uri_path("sb://h:5672/q1/$management", p, sizeof p), 0);
    CU_ASSERT_STRING_EQUAL(p, "q1/$management");
    CU_ASSERT_EQUAL(sb_sas_uri_path("https://h/q1?api-version=2021-05", p, sizeof p), 0);
    CU_ASSERT_STRING_EQUAL(p, "q1");
    CU_ASSERT_EQUAL(sb_sas_uri_path("sb://ns.servicebus.windows.net/", p, sizeof p), 0);
    CU_ASSERT_STRING_EQUAL(p, "");
    CU_ASSERT_EQUAL(sb_sas_uri_path("sb://h/q1", p, 2), -1);
    CU_ASSERT_TRUE(sb_sas_covers("", "q1"));
    CU_ASSERT_TRUE(sb_sas_covers("q1", "Q1/$DeadLetterQueue"));
    CU_ASSERT_TRUE(sb_sas_covers("q1", "q1"));
    CU_ASSERT_FALSE(sb_sas_covers("q1", "q10"));
    CU_ASSERT_FALSE(sb_sas_covers("q1/$management", "q1"));
    char out[8];
    CU_ASSERT_EQUAL(sb_url_decode("a%2Fb", 5, out, sizeof out, 0), 3);
    CU_ASSERT_STRING_EQUAL(out, "a/b");
    CU_ASSERT_EQUAL(sb_url_decode("abcdefghij", 10, out, sizeof out, 0), -1);
}

/* ---- AMQP bytes ---- */

/* A message: properties(message-id "id-1", group-id at 10 when sid), data section "hello". */
static size_t make_msg(uint8_t *out, const char *id, const char *sid, uint32_t ttl)
{
    sb_buf b = {0};
    if (ttl) {
        amqp_put_header(&b, 1, 0, 0, 1, ttl, 0);
    }
    sb_buf props = {0};
    sb_buf_str(&props, id, strlen(id));
    uint32_t n = 1;
    if (sid) {
        for (int i = 1; i < 10; i++)
            sb_buf_u8(&props, 0x40);
        sb_buf_str(&props, sid, strlen(sid));
        n = 11;
    }
    uint8_t h[4] = {0x00, 0x53, 0x73, 0xd0};
    sb_buf_put(&b, h, 4);
    sb_buf_u32be(&b, (uint32_t)props.len + 4);
    sb_buf_u32be(&b, n);
    sb_buf_put(&b, props.data, props.len);
    uint8_t d[] = {0x00, 0x53, 0x75, 0xa0, 5, 'h', 'e', 'l', 'l', 'o'};
    sb_buf_put(&b, d, sizeof d);
    size_t len = b.len;
    memcpy(out, b.data, len);
    sb_buf_free(&b);
    sb_buf_free(&props);
    return len;
}

static void test_amqp_parse(void)
{
    uint8_t m[512];
    size_t n = make_msg(m, "id-1", "S1", 5000);
    sb_msg_parts p;
    char err[128];
    CU_ASSERT_EQUAL(amqp_parse_message(m, n, &p, err, sizeof err), 0);
    CU_ASSERT_TRUE(p.has_ttl);
    CU_ASSERT_EQUAL(p.ttl, 5000);
    CU_ASSERT_TRUE(p.durable);
    CU_ASSERT_TRUE(p.has_group_id);
    CU_ASSERT_STRING_EQUAL(p.group_id, "S1");
    CU_ASSERT_EQUAL(p.msgid_len, 6); /* a1 04 'id-1' */
    sb_msg_parts_free(&p);
    /* every truncation is rejected, never read past the end */
    for (size_t cut = 1; cut < n; cut++) {
        uint8_t *c = malloc(cut);
        memcpy(c, m, cut);
        int rc = amqp_parse_message(c, cut, &p, err, sizeof err);
        sb_msg_parts_free(&p);
        free(c);
        if (cut < n)
            CU_ASSERT_TRUE(rc == -1 || rc == 0);
    }
    uint8_t junk[] = {0x00, 0x53, 0x99, 0x40};
    CU_ASSERT_EQUAL(amqp_parse_message(junk, sizeof junk, &p, err, sizeof err), -1);
    sb_msg_parts_free(&p);
    uint8_t huge[] = {0x00, 0x53, 0x75, 0xb0, 0xff, 0xff, 0xff, 0xff, 1};
    CU_ASSERT_EQUAL(amqp_parse_message(huge, sizeof huge, &p, err, sizeof err), -1);
    sb_msg_parts_free(&p);
}

static void test_amqp_batch(void)
{
    uint8_t m1[256], m2[256];
    size_t n1 = make_msg(m1, "a", NULL, 0), n2 = make_msg(m2, "b", NULL, 0);
    sb_buf env = {0};
    uint8_t h[3] = {0x00, 0x53, 0x75};
    sb_buf_put(&env, h, 3);
    sb_buf_u8(&env, 0xb0);
    sb_buf_u32be(&env, (uint32_t)n1);
    sb_buf_put(&env, m1, n1);
    sb_buf_put(&env, h, 3);
    sb_buf_u8(&env, 0xb0);
    sb_buf_u32be(&env, (uint32_t)n2);
    sb_buf_put(&env, m2, n2);
    const uint8_t *starts[4];
    size_t lens[4];
    CU_ASSERT_EQUAL(amqp_batch_split(env.data, env.len, starts, lens, 4), 2);
    CU_ASSERT_EQUAL(lens[0], n1);
    CU_ASSERT_EQUAL(memcmp(starts[1], m2, n2), 0);
    CU_ASSERT_EQUAL(amqp_batch_split(m1, n1, starts, lens, 4), 0); /* plain message */
    sb_buf_free(&env);
}

static void test_amqp_merge(void)
{
    uint8_t m[256];
    size_t n = make_msg(m, "x", NULL, 0);
    sb_msg_parts p;
    char err[64];
    CU_ASSERT_EQUAL_FATAL(amqp_parse_message(m, n, &p, err, sizeof err), 0);
    sb_buf mods = {0}, out = {0};
    sb_buf_sym(&mods, "DeadLetterReason");
    sb_buf_str(&mods, "because", 7);
    CU_ASSERT_EQUAL(amqp_merge_app_props(p.rest.data, p.rest.len, mods.data, mods.len, 2, &out), 0);
    /* merging again replaces rather than duplicates */
    sb_buf out2 = {0};
    CU_ASSERT_EQUAL(amqp_merge_app_props(out.data, out.len, mods.data, mods.len, 2, &out2), 0);
    CU_ASSERT_EQUAL(out.len, out2.len);
    sb_msg_parts q;
    CU_ASSERT_EQUAL(amqp_parse_message(out2.data, out2.len, &q, err, sizeof err), 0);
    sb_msg_parts_free(&q);
    sb_buf_free(&mods);
    sb_buf_free(&out);
    sb_buf_free(&out2);
    sb_msg_parts_free(&p);
}

/* ---- store ---- */

static void test_store_lifecycle(void)
{
    setup_cfg();
    sb_store st;
    CU_ASSERT_EQUAL_FATAL(sb_store_init(&st, &g_cfg), 0);
    sb_queue *q = sb_store_find(&st, "Q1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    CU_ASSERT_PTR_EQUAL(sb_store_find(&st, "q1/$deadletterqueue"), q->dlq);
    CU_ASSERT_PTR_NULL(sb_store_find(&st, "q1/other"));
    uint8_t m[256];
    char err[128];
    uint64_t seq = 0;
    int64_t now = 1000000;
    size_t n = make_msg(m, "one", NULL, 0);
    CU_ASSERT_EQUAL(sb_queue_enqueue(q, m, n, now, 0, &seq, err, sizeof err), SB_ENQ_OK);
    CU_ASSERT_EQUAL(seq, 1);
    CU_ASSERT_EQUAL(sb_queue_enqueue(q, m, n, now, 0, &seq, err, sizeof err), SB_ENQ_DUPLICATE);
    n = make_msg(m, "two", NULL, 0);
    CU_ASSERT_EQUAL(sb_queue_enqueue(q, m, n, now, 0, &seq, err, sizeof err), SB_ENQ_OK);
    CU_ASSERT_EQUAL(atomic_load(&q->n_active), 2);

    /* lock, abandon three times -> dead-lettered (max delivery count 3) */
    for (int i = 0; i < 3; i++) {
        sb_msg *x = sb_queue_next(q, NULL, now);
        CU_ASSERT_PTR_NOT_NULL_FATAL(x);
        CU_ASSERT_EQUAL(x->seq, 1);
        CU_ASSERT_EQUAL(x->delivery_count, (uint32_t)i);
        sb_queue_lock(q, x, now);
        uint8_t tok[16];
        memcpy(tok, x->lock_token, 16);
        CU_ASSERT_PTR_EQUAL(sb_queue_find_lock(q, tok, now), x);
        sb_queue_abandon(q, x, now, NULL, 0, 0);
        CU_ASSERT_PTR_NULL(sb_queue_find_lock(q, tok, now));
    }
    CU_ASSERT_EQUAL(atomic_load(&q->n_active), 1);
    CU_ASSERT_EQUAL(atomic_load(&q->dlq->n_active), 1);
    sb_msg *d = sb_queue_next(q->dlq, NULL, now);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    sb_buf enc = {0};
    CU_ASSERT_EQUAL(sb_queue_encode(q->dlq, d, 0, &enc), 0);
    CU_ASSERT_PTR_NOT_NULL(memmem(enc.data, enc.len, "MaxDeliveryCountExceeded", 24));
    sb_msg_parts p;
    CU_ASSERT_EQUAL(amqp_parse_message(enc.data, enc.len, &p, err, sizeof err), 0);
    sb_msg_parts_free(&p);
    sb_buf_free(&enc);

    /* lock expiry redelivers with a higher delivery count */
    sb_msg *x = sb_queue_next(q, NULL, now);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    sb_queue_lock(q, x, now);
    CU_ASSERT_EQUAL(sb_queue_next_deadline(q), now + 1000);
    CU_ASSERT_EQUAL(sb_queue_tick(q, now + 999), 0);
    CU_ASSERT_EQUAL(sb_queue_tick(q, now + 1000), 1);
    x = sb_queue_next(q, NULL, now + 1000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    CU_ASSERT_EQUAL(x->delivery_count, 1);
    /* defer: not delivered, fetchable by sequence number */
    sb_queue_lock(q, x, now + 1000);
    sb_queue_defer(q, x, NULL, 0, 0);
    CU_ASSERT_PTR_NULL(sb_queue_next(q, NULL, now + 1000));
    CU_ASSERT_EQUAL(sb_queue_get(q, x->seq)->state, SB_MS_DEFERRED);
    sb_queue_remove(q, x);
    CU_ASSERT_EQUAL(atomic_load(&q->n_active), 0);
    sb_store_free(&st);
}

static void test_store_ttl_schedule_sessions(void)
{
    setup_cfg();
    sb_store st;
    CU_ASSERT_EQUAL_FATAL(sb_store_init(&st, &g_cfg), 0);
    sb_queue *q = sb_store_find(&st, "q1");
    uint8_t m[256];
    char err[128];
    int64_t now = 5000000;
    size_t n = make_msg(m, "ttl", NULL, 100);
    CU_ASSERT_EQUAL(sb_queue_enqueue(q, m, n, now, 0, NULL, err, sizeof err), SB_ENQ_OK);
    sb_queue_tick(q, now + 100);
    CU_ASSERT_EQUAL(atomic_load(&q->n_active), 0);
    CU_ASSERT_EQUAL(atomic_load(&q->dlq->n_active), 1);

    sb_queue *qs = sb_store_find(&st, "qs");
    n = make_msg(m, "s-none", NULL, 0);
    CU_ASSERT_EQUAL(sb_queue_enqueue(qs, m, n, now, 0, NULL, err, sizeof err), SB_ENQ_NO_SESSION);
    n = make_msg(m, "s-a", "A", 0);
    CU_ASSERT_EQUAL(sb_queue_enqueue(qs, m, n, now, 0, NULL, err, sizeof err), SB_ENQ_OK);
    n = make_msg(m, "s-b", "B", 0);
    CU_ASSERT_EQUAL(sb_queue_enqueue(qs, m, n, now, 0, NULL, err, sizeof err), SB_ENQ_OK);
    sb_session *b = sb_queue_session(qs, "B", 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    sb_msg *x = sb_queue_next(qs, b, now);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    CU_ASSERT_PTR_EQUAL(x->session, b);
    CU_ASSERT_PTR_NULL(sb_queue_next(qs, b, now));
    b->owner = b;
    sb_session *f = sb_queue_free_session(qs, now);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_STRING_EQUAL(f->id, "A");
    sb_queue_remove(qs, x);
    sb_store_free(&st);
}

static void test_persist_roundtrip(void)
{
    setup_cfg();
    sb_store st, st2;
    CU_ASSERT_EQUAL_FATAL(sb_store_init(&st, &g_cfg), 0);
    sb_queue *q = sb_store_find(&st, "q1"), *qs = sb_store_find(&st, "qs");
    uint8_t m[256];
    char err[256];
    int64_t now = sb_now_ms();
    size_t n = make_msg(m, "p1", NULL, 0);
    CU_ASSERT_EQUAL(sb_queue_enqueue(q, m, n, now, 0, NULL, err, sizeof err), SB_ENQ_OK);
    n = make_msg(m, "p2", NULL, 0);
    CU_ASSERT_EQUAL(sb_queue_enqueue(q, m, n, now, 0, NULL, err, sizeof err), SB_ENQ_OK);
    n = make_msg(m, "p3", "S", 0);
    CU_ASSERT_EQUAL(sb_queue_enqueue(qs, m, n, now, 0, NULL, err, sizeof err), SB_ENQ_OK);
    sb_msg *x = sb_queue_next(q, NULL, now);
    sb_queue_lock(q, x, now);
    sb_queue_deadletter(q, x, now, "why", "desc", NULL, 0, 0);
    char path[] = "/tmp/sbemu-persist-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    CU_ASSERT_EQUAL(sb_persist_save(&st, path, err, sizeof err), 0);
    CU_ASSERT_EQUAL_FATAL(sb_store_init(&st2, &g_cfg), 0);
    size_t loaded = 0;
    CU_ASSERT_EQUAL(sb_persist_load(&st2, path, &loaded, err, sizeof err), 0);
    CU_ASSERT_EQUAL(loaded, 3);
    sb_queue *q2 = sb_store_find(&st2, "q1");
    CU_ASSERT_EQUAL(atomic_load(&q2->n_active), 1);
    CU_ASSERT_EQUAL(atomic_load(&q2->dlq->n_active), 1);
    CU_ASSERT_EQUAL(q2->next_seq, q->next_seq);
    sb_session *s = sb_queue_session(sb_store_find(&st2, "qs"), "S", 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NOT_NULL(sb_queue_next(sb_store_find(&st2, "qs"), s, now));
    sb_store_free(&st2);
    /* every truncation of the file is refused before anything is loaded */
    FILE *f = fopen(path, "rb");
    static uint8_t data[65536];
    size_t len = fread(data, 1, sizeof data, f);
    fclose(f);
    for (size_t cut = 0; cut < len; cut += 7) {
        f = fopen(path, "wb");
        fwrite(data, 1, cut, f);
        fclose(f);
        CU_ASSERT_EQUAL_FATAL(sb_store_init(&st2, &g_cfg), 0);
        CU_ASSERT_EQUAL(sb_persist_load(&st2, path, &loaded, err, sizeof err), -1);
        CU_ASSERT_EQUAL(atomic_load(&sb_store_find(&st2, "q1")->n_active), 0);
        sb_store_free(&st2);
    }
    remove(path);
    CU_ASSERT_EQUAL_FATAL(sb_store_init(&st2, &g_cfg), 0);
    CU_ASSERT_EQUAL(sb_persist_load(&st2, path, &loaded, err, sizeof err), 0); /* missing: ok */
    CU_ASSERT_EQUAL(loaded, 0);
    sb_store_free(&st2);
    sb_store_free(&st);
}

static void test_config_errors(void)
{
    char path[] = "/tmp/sbemu-unit-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("keys = ( { name = \"k\"; key = \"v\"; } );\nqueues = ( { name = \"bad name\"; } );\n",
          f);
    fclose(f);
    sb_config c;
    char err[512];
    CU_ASSERT_EQUAL(sb_config_load(&c, path, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ":2:"));
    f = fopen(path, "w");
    fputs("keys = ( { name = \"k\"; key = \"v\"; } );\nqueues = ( { name = \"q\"; "
          "lock_duration_ms = 5; } );\n",
          f);
    fclose(f);
    CU_ASSERT_EQUAL(sb_config_load(&c, path, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "lock_duration_ms"));
    f = fopen(path, "w");
    fputs(
        "keys = ( { name = \"k\"; key = \"v\"; } );\nqueues = ( { name = \"q\"; } );\nbogus = 1;\n",
        f);
    fclose(f);
    CU_ASSERT_EQUAL(sb_config_load(&c, path, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "bogus"));
    f = fopen(path, "w");
    fputs("keys = ( { name = \"k\"; key = \"v\"; } );\nqueues = ( { name = \"q\"; } );\n"
          "handshake_timeout_ms = 0;\n",
          f);
    fclose(f);
    CU_ASSERT_EQUAL(sb_config_load(&c, path, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ":3: 'handshake_timeout_ms' = 0 is out of range"));
    f = fopen(path, "w");
    fputs(
        "port = 0;\nkeys = ( { name = \"k\"; key = \"v\"; } );\nqueues = ( { name = \"q\"; } );\n",
        f);
    fclose(f);
    CU_ASSERT_EQUAL(sb_config_load(&c, path, err, sizeof err), 0);
    CU_ASSERT_EQUAL(c.handshake_timeout_ms, 20000);
    CU_ASSERT_EQUAL(c.nqueues, 1);
    CU_ASSERT_EQUAL(c.queues[0].lock_duration_ms, 60000);
    CU_ASSERT_EQUAL(c.queues[0].max_delivery_count, 10);
    sb_config_free(&c);
    remove(path);
}

int main(void)
{
    sb_log_set_level(SB_LOG_ERROR);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("sb-emulator", NULL, NULL);
    CU_add_test(s, "sas vectors", test_sas_vectors);
    CU_add_test(s, "sas validate", test_sas_validate);
    CU_add_test(s, "sas endpoint", test_sas_endpoint);
    CU_add_test(s, "sas scope", test_sas_scope);
    CU_add_test(s, "amqp parse", test_amqp_parse);
    CU_add_test(s, "amqp batch", test_amqp_batch);
    CU_add_test(s, "amqp merge", test_amqp_merge);
    CU_add_test(s, "store lifecycle", test_store_lifecycle);
    CU_add_test(s, "store ttl/schedule/sessions", test_store_ttl_schedule_sessions);
    CU_add_test(s, "persist roundtrip", test_persist_roundtrip);
    CU_add_test(s, "config errors", test_config_errors);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
