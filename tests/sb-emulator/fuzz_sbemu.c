/* fuzz_sbemu.c: libFuzzer target for the emulator's parsers of outside input: AMQP message
 * bytes (sections, batch envelope, application-property merge, store + re-encode), SAS token
 * strings, resource-URI hosts and HTTP paths. Built with -DINTAKE_FUZZ=ON (clang). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "amqpraw.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "sas.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sb_config cfg;
    static sb_key_cfg key;
    static sb_queue_cfg qc;
    static sb_store st;
    static int init;
    if (!init) {
        sb_log_set_level(-1);
        strcpy(key.name, "k");
        key.key = "v";
        cfg.keys = &key;
        cfg.nkeys = 1;
        strcpy(qc.name, "q");
        qc.lock_duration_ms = 1000;
        qc.max_delivery_count = 2;
        qc.max_size_bytes = 1 << 24;
        qc.duplicate_detection = 1;
        qc.duplicate_window_ms = 1000;
        qc.dead_lettering_on_expiration = 1;
        cfg.queues = &qc;
        cfg.nqueues = 1;
        if (sb_store_init(&st, &cfg) < 0)
            abort();
        init = 1;
    }
    char err[256];
    sb_msg_parts p;
    if (amqp_parse_message(data, size, &p, err, sizeof err) == 0) {
        sb_buf out = {0};
        uint8_t mods[] = {0xa3, 1, 'k', 0xa1, 1, 'v'};
        if (amqp_merge_app_props(p.rest.data, p.rest.len, mods, sizeof mods, 2, &out) == 0) {
            sb_msg_parts p2;
            if (amqp_parse_message(out.data, out.len, &p2, err, sizeof err) != 0)
                abort(); /* what we write must parse */
            sb_msg_parts_free(&p2);
        }
        sb_buf_free(&out);
    }
    sb_msg_parts_free(&p);
    const uint8_t *starts[16];
    size_t lens[16];
    (void)amqp_batch_split(data, size, starts, lens, 16);

    sb_queue *q = st.queues[0];
    int64_t now = 1000000;
    uint64_t seq;
    if (sb_queue_enqueue(q, data, size, now, 0, &seq, err, sizeof err) == SB_ENQ_OK) {
        sb_msg *m = sb_queue_next(q, NULL, now);
        if (m) {
            sb_queue_lock(q, m, now);
            sb_buf enc = {0};
            if (sb_queue_encode(q, m, 1, &enc) == 0 &&
                amqp_parse_message(enc.data, enc.len, &p, err, sizeof err) != 0)
                abort(); /* what we deliver must parse */
            sb_msg_parts_free(&p);
            sb_buf_free(&enc);
            sb_queue_deadletter(q, m, now, "r", "d", NULL, 0, 0);
        }
        sb_msg *d;
        while ((d = sb_queue_next(q->dlq, NULL, now)))
            sb_queue_remove(q->dlq, d);
        while ((d = sb_queue_next(q, NULL, now)))
            sb_queue_remove(q, d);
    }

    char host[64];
    int port;
    (void)sb_host_parse((const char *)data, size, host, sizeof host, &port);

    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    sb_sas_token t;
    (void)sb_sas_validate(&cfg, s, 0, &t, err, sizeof err);
    char name[SB_NAME_MAX], path[300];
    (void)sb_http_parse_path(s, name, sizeof name);
    (void)sb_sas_uri_path(s, path, sizeof path);
    (void)sb_sas_names_endpoint(s, "127.0.0.1", 5672, err, sizeof err);
    char dec[64];
    (void)sb_url_decode(s, size, dec, sizeof dec, 1);
    free(s);
    return 0;
}
