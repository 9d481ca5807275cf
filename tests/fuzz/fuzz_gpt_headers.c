/*
 * fuzz_gpt_headers.c: feeds arbitrary bytes, split into lines, to the
 * gpt_batch retry-hint parsers (plugins/processors/gpt_batch/limits.c): header lines,
 * Go-style durations, Retry-After values and 429 messages ("on tokens per
 * min (TPM) ... Please try again in 1.5s"). Checks that a rejected known
 * header is named, that parsed waits are non-negative and not NaN, that a
 * malformed wait in a message is refused whole, and that the wait chosen for
 * a 429 is never negative.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt_batch/gpt_internal.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gpt_hints h;
    gpt_hints_init(&h);
    gpt_rate_limit hit = {GPT_LIMIT_UNKNOWN, 0, -1};
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        int rc = gpt_hints_header(&h, p, len);
        CHECK(rc == 0 || (rc == IK_E_PARSE && h.bad[0]));
        /* the same bytes as a lone value */
        char v[256];
        size_t vl = len < sizeof v - 1 ? len : sizeof v - 1;
        memcpy(v, p, vl);
        v[vl] = 0;
        double ms;
        if (gpt_parse_duration_ms(v, &ms) == 0)
            CHECK(ms >= 0 && !isnan(ms));
        if (gpt_parse_retry_after_ms(v, 1764331200, &ms) == 0)
            CHECK(ms >= 0 && !isnan(ms));
        /* the same bytes as a 429 message: a wait is read whole or not at all */
        gpt_rate_limit r;
        int mrc = gpt_parse_rate_limit(v, v, &r);
        CHECK(mrc == 0 || mrc == IK_E_PARSE);
        CHECK(mrc == 0 || r.try_again_ms < 0);
        CHECK(r.try_again_ms < 0 || !isnan(r.try_again_ms));
        CHECK(r.kind >= GPT_LIMIT_UNKNOWN && r.kind <= GPT_LIMIT_TOKENS);
        if (mrc == 0 && (r.kind != GPT_LIMIT_UNKNOWN || r.try_again_ms >= 0))
            hit = r;
        p += len;
    }
    double w = gpt_hints_wait_ms(&h, NULL, 1000);
    CHECK(w >= 0 || h.retry_after_ms < 0);
    CHECK(!isnan(w));
    w = gpt_hints_wait_ms(&h, &hit, 1000);
    CHECK(w >= 0 && !isnan(w));
    return 0;
}
