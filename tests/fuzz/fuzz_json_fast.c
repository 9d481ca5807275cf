/*
 * fuzz_json_fast.c: the JSON fast path (lib/json/json_fast.c) against
 * json-c on arbitrary bytes. Whenever the fast path accepts, json-c's
 * tokener run as the file source runs it accepts too, with the same tree
 * (types, string bytes and lengths, key order) and the same serialized
 * text; a decline leaves nothing behind. Each input is tried at the file
 * source's depth limit and at a small one its first byte picks, so the
 * depth rule is reached too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json/json_fast.h"

#include "../support/json_fast_ref.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_depth(const char *text, size_t size, int depth)
{
    json_object *fast = (json_object *)&fast;
    int f = ik_json_fast_parse(text, size, depth, &fast);
    CHECK(f == 0 || f == 1);
    if (f == 0) {
        CHECK(fast == NULL);
        return;
    }
    json_object *ref = NULL;
    int r = jf_ref_parse(text, size, depth, &ref);
    if (r < 0) { /* out of memory in the reference: nothing to compare */
        json_object_put(fast);
        return;
    }
    CHECK(r == 1);
    CHECK(jf_same_tree(fast, ref));
    CHECK(strcmp(jf_plain(fast), jf_plain(ref)) == 0);
    json_object_put(fast);
    json_object_put(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so reading past the end is caught by ASan. */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    check_depth(text, size, 64);
    check_depth(text, size, size ? 1 + data[0] % 6 : 1);
    free(text);
    return 0;
}
