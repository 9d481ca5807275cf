/*
 * control_http.h: what the admin server checks of a control request, as
 * pure functions (fuzzed by tests/fuzz/fuzz_control_http.c): the route
 * /api/v1/control[/PIPELINE/INSTANCE/COMMAND], the JSON body, the bearer
 * token (compared in constant time) and whether a listen address is
 * loopback.
 */
#ifndef IK_CONTROL_HTTP_H
#define IK_CONTROL_HTTP_H

#include <stddef.h>

#include <json-c/json.h>

#define IK_CONTROL_PREFIX      "/api/v1/control"
#define IK_CONTROL_SEGMENT_MAX 128         /* bytes of a pipeline, instance or command name */
#define IK_CONTROL_BODY_MAX    (64 * 1024) /* bytes of a request body */
#define IK_CONTROL_JSON_DEPTH  32          /* nesting of a request body */
#define IK_ADMIN_TOKEN_ENV     "INTAKE_ADMIN_TOKEN"

typedef enum ik_control_route_kind {
    IK_ROUTE_OTHER = 0,   /* not under /api/v1/control */
    IK_ROUTE_LIST = 1,    /* /api/v1/control (or with a trailing slash) */
    IK_ROUTE_COMMAND = 2, /* /api/v1/control/P/I/C: seg[] filled */
    IK_ROUTE_BAD = 3,     /* under the prefix, but not one of those */
} ik_control_route_kind;

typedef struct ik_control_route {
    char seg[3][IK_CONTROL_SEGMENT_MAX + 1]; /* pipeline, instance, command */
} ik_control_route;

/* Classifies a decoded URL path (NUL-terminated); fills r for
 * IK_ROUTE_COMMAND. A segment is 1..IK_CONTROL_SEGMENT_MAX bytes of
 * [A-Za-z0-9_.#-] (what pipeline and instance names may hold). */
ik_control_route_kind ik_control_route_parse(const char *url, ik_control_route *r);

/*
 * Parses a request body of len bytes (not NUL-terminated) as one JSON value
 * in json-c's JSON_TOKENER_STRICT mode (no comma before a closing bracket;
 * json-c still reads NaN and 'single quotes' there), surrounded by
 * whitespace only, nested at most IK_CONTROL_JSON_DEPTH deep.
 * Returns 0 with *out the value (owned by the caller; NULL for an empty or
 * all-whitespace body), or IK_E_PARSE with why saying what and at which
 * byte (e.g. "invalid JSON at byte 7: unexpected character").
 */
int ik_control_body_parse(const char *body, size_t len, json_object **out, char *why,
                          size_t whylen);

/* 1 when the token of an "Authorization: Bearer <token>" header value
 * equals want. The time taken depends only on strlen(want), never on where
 * the two differ. NULL header: 0. */
int ik_control_bearer_ok(const char *header, const char *want);

/* 1 when a "HOST:PORT" listen address names loopback (127.x.x.x or
 * localhost), 0 for anything else (0.0.0.0 included). */
int ik_admin_listen_is_loopback(const char *listen);

#endif
