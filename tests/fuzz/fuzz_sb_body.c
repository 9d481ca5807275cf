/*
 * fuzz_sb_body.c: the Service Bus message reader and body step
 * (lib/servicebus/message.c, body.c) on arbitrary bytes, as the source runs
 * them on a transfer: ik_sb_message_decode, then ik_sb_body_emails. Beyond
 * "no crash, no leak": every refusal says what (and the reader where), a
 * decoded body respects max_body, and the emails handed over are objects.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "servicebus/body.h"
#include "servicebus/message.h"
#include <intake/plugin.h>

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The emails step on a decoded message, and what its callers rely on. */
static void check_body(const ik_sb_message *m)
{
    ik_sb_emails e;
    char err[256];
    int rc = ik_sb_body_emails(m, 50, &e, err, sizeof err);
    CHECK(rc == 0 || rc == IK_E_PARSE || rc == IK_E_NOMEM);
    if (rc == IK_E_PARSE)
        CHECK(err[0] != '\0');
    if (rc == 0) {
        CHECK(e.n >= 1 && e.n <= 50);
        for (size_t i = 0; i < e.n; i++)
            CHECK(json_object_is_type(e.emails[i], json_type_object));
        CHECK(!e.is_envelope == !e.envelope);
        CHECK(e.retry_count >= 0);
    }
    ik_sb_emails_clear(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so reading past the end is caught by ASan. */
    char *bytes = malloc(size ? size : 1);
    if (!bytes)
        return 0;
    memcpy(bytes, data, size);
    size_t max_body = 4096;
    ik_sb_message m;
    char err[256];
    int rc = ik_sb_message_decode(bytes, size, max_body, &m, err, sizeof err);
    CHECK(rc == 0 || rc == IK_E_PARSE || rc == IK_E_TOOBIG || rc == IK_E_NOMEM);
    if (rc == IK_E_PARSE || rc == IK_E_TOOBIG)
        CHECK(strncmp(err, "at byte ", 8) == 0);
    if (rc == 0) {
        CHECK(m.data.len <= max_body);
        CHECK(m.body_kind != IK_SB_BODY_SEQUENCE || json_object_is_type(m.value, json_type_array));
        check_body(&m);
    }
    ik_sb_message_clear(&m);
    free(bytes);
    return 0;
}
