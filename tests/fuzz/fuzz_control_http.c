/*
 * fuzz_control_http.c: fuzz target for what the admin server parses of a
 * control request (engine/control_http.c). The input's first byte picks a
 * part: the route (the rest, NUL-terminated, as a decoded URL path), the
 * body (the rest as it came, NULs and all) or the Authorization header.
 * Invariants: a route's segments are non-empty, bounded names; a body
 * either parses or fails with a reason, and what it parsed prints as JSON json-c reads back the
 * same; the token check accepts exactly "Bearer <token>".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "control_http.h"
#include "error.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void route(const char *s)
{
    ik_control_route r;
    ik_control_route_kind k = ik_control_route_parse(s, &r);
    CHECK(k >= IK_ROUTE_OTHER && k <= IK_ROUTE_BAD);
    if (k == IK_ROUTE_OTHER)
        CHECK(strncmp(s, IK_CONTROL_PREFIX, strlen(IK_CONTROL_PREFIX)) != 0 ||
              s[strlen(IK_CONTROL_PREFIX)] != '\0');
    if (k != IK_ROUTE_COMMAND)
        return;
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(r.seg[i]);
        CHECK(n > 0 && n <= IK_CONTROL_SEGMENT_MAX);
        CHECK(strchr(r.seg[i], '/') == NULL);
    }
}

static void body(const char *p, size_t n)
{
    json_object *v = NULL;
    char why[256] = "";
    int rc = ik_control_body_parse(p, n, &v, why, sizeof why);
    if (rc != 0) {
        CHECK(v == NULL && why[0] != '\0');
        return;
    }
    if (v) { /* what it parsed prints as JSON that json-c reads back the same */
        char *text = strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
        json_object *ref = text ? json_tokener_parse(text) : NULL;
        CHECK(text == NULL || ref != NULL);
        if (ref)
            CHECK(strcmp(json_object_to_json_string_ext(ref, JSON_C_TO_STRING_PLAIN), text) == 0);
        json_object_put(ref);
        free(text);
    }
    json_object_put(v);
}

static void bearer(const char *h)
{
    static const char want[] = "tok3n";
    int ok = ik_control_bearer_ok(h, want);
    int expect = strncasecmp(h, "Bearer ", 7) == 0 && strcmp(h + 7, want) == 0;
    CHECK(ok == expect);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    char *s = malloc(size);
    if (!s)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    switch (data[0] % 3) {
    case 0:
        route(s);
        break;
    case 1:
        body(s, size - 1);
        break;
    default:
        bearer(s);
        break;
    }
    free(s);
    return 0;
}
