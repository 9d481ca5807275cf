/*
 * fuzz_sb_runtime.c: the management API's ATOM answer -> queue counts
 * (lib/servicebus/runtime_parse.c) on arbitrary bytes. Beyond "no crash,
 * no leak": the only answers are counts, not found or a refusal that says
 * what, and counts read are never negative.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "servicebus/runtime.h"
#include <intake/plugin.h>

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so reading past the end is caught by ASan. */
    char *bytes = malloc(size ? size : 1);
    if (!bytes)
        return 0;
    memcpy(bytes, data, size);
    ik_sb_counts c;
    char err[300];
    int rc = ik_sb_runtime_parse(bytes, size, &c, err, sizeof err);
    CHECK(rc == 0 || rc == IK_E_PARSE || rc == IK_E_NOTFOUND || rc == IK_E_NOMEM);
    if (rc == IK_E_PARSE || rc == IK_E_NOTFOUND)
        CHECK(err[0] != '\0');
    if (rc == 0)
        CHECK(c.active >= 0 && c.dead_letter >= 0 && c.scheduled >= 0 && c.transfer >= 0 &&
              c.transfer_dead_letter >= 0 && c.total >= 0 && c.size_bytes >= 0);
    else
        CHECK(c.active == 0 && c.total == 0);
    free(bytes);
    return 0;
}
