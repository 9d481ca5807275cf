/*
 * test_control.c: unit tests of control commands: the registry
 * (engine/control.c: names, lookups, status codes, the listing, shutdown)
 * and the checks of a request (engine/control_http.c: route, body, bearer
 * token, loopback).
 */
#include <CUnit/Basic.h>
#include <json-c/json.h>
#include <string.h>

#include "control.h"
#include "control_http.h"
#include "error.h"
#include "log.h"

/* A command whose behaviour the test sets through its arg. */
typedef struct fake_cmd {
    int rc;          /* what it returns */
    const char *why; /* reason on error */
    int leak_reply;  /* sets a reply even when failing (the registry frees it) */
    int null_reply;  /* succeeds without a reply */
    int calls;
    json_object *seen; /* args of the last call (a reference) */
} fake_cmd;

static int fake_fn(void *arg, json_object *args, json_object **reply, char *reason, size_t len)
{
    fake_cmd *f = arg;
    f->calls++;
    json_object_put(f->seen);
    f->seen = json_object_get(args);
    if (f->rc != 0) {
        if (f->why)
            snprintf(reason, len, "%s", f->why);
        if (f->leak_reply)
            *reply = json_object_new_string("ignored");
        return f->rc;
    }
    if (!f->null_reply) {
        *reply = json_object_new_object();
        json_object_object_add(*reply, "ok", json_object_new_boolean(1));
    }
    return 0;
}

static void test_names(void)
{
    CU_ASSERT_TRUE(ik_command_name_valid("rescan"));
    CU_ASSERT_TRUE(ik_command_name_valid("replay_dead-letters2"));
    CU_ASSERT_FALSE(ik_command_name_valid(""));
    CU_ASSERT_FALSE(ik_command_name_valid(NULL));
    CU_ASSERT_FALSE(ik_command_name_valid("Rescan"));
    CU_ASSERT_FALSE(ik_command_name_valid("re scan"));
    CU_ASSERT_FALSE(ik_command_name_valid("a/b"));
    char longname[IK_COMMAND_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CU_ASSERT_FALSE(ik_command_name_valid(longname));
    longname[IK_COMMAND_NAME_MAX] = '\0';
    CU_ASSERT_TRUE(ik_command_name_valid(longname));
}

static void test_add_and_find(void)
{
    ik_commands l = {0};
    fake_cmd f = {0};
    char why[256] = "";
    CU_ASSERT_EQUAL(ik_commands_add(&l, "one", "first", fake_fn, &f, why, sizeof why), 0);
    CU_ASSERT_EQUAL(ik_commands_add(&l, "two", NULL, fake_fn, &f, why, sizeof why), 0);
    CU_ASSERT_EQUAL(ik_commands_add(&l, "one", "again", fake_fn, &f, why, sizeof why), IK_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "already registered"));
    CU_ASSERT_EQUAL(ik_commands_add(&l, "Bad", "x", fake_fn, &f, why, sizeof why), IK_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "[a-z0-9_-]+"));
    CU_ASSERT_EQUAL(ik_commands_add(&l, "nofn", "x", NULL, &f, why, sizeof why), IK_E_INVAL);
    CU_ASSERT_EQUAL(l.n, 2);
    const ik_command *c = ik_commands_find(&l, "two");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->help, "");
    CU_ASSERT_PTR_NULL(ik_commands_find(&l, "three"));
    ik_commands_clear(&l);
    CU_ASSERT_EQUAL(l.n, 0);
}

/* The registry of one pipeline "p" with instances "src" (cmd "go") and
 * "sink" (no commands). */
typedef struct fixture {
    ik_commands src, sink;
    ik_control *c;
    fake_cmd f;
} fixture;

static void fixture_init(fixture *x)
{
    memset(x, 0, sizeof *x);
    char why[64];
    CU_ASSERT_EQUAL(ik_commands_add(&x->src, "go", "Go now.", fake_fn, &x->f, why, sizeof why), 0);
    x->c = ik_control_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(x->c);
    CU_ASSERT_EQUAL(ik_control_add(x->c, "p", "src", &x->src), 0);
    CU_ASSERT_EQUAL(ik_control_add(x->c, "p", "sink", &x->sink), 0);
}

static void fixture_free(fixture *x)
{
    ik_control_free(x->c);
    ik_commands_clear(&x->src);
    ik_commands_clear(&x->sink);
    json_object_put(x->f.seen);
}

/* Calls p/instance/command; returns the status, *error set to the reply's
 * "error" text (or "") in `err`. */
static int call(fixture *x, const char *inst, const char *cmd, json_object *args, char *err,
                size_t len)
{
    json_object *reply = NULL, *e = NULL;
    int status = ik_control_call(x->c, "p", inst, cmd, args, &reply);
    snprintf(err, len, "%s",
             reply && json_object_object_get_ex(reply, "error", &e) ? json_object_get_string(e)
                                                                    : "");
    CU_ASSERT_PTR_NOT_NULL(reply);
    json_object_put(reply);
    return status;
}

static void test_call_not_found(void)
{
    fixture x;
    fixture_init(&x);
    char err[512];
    json_object *reply = NULL;
    CU_ASSERT_EQUAL(ik_control_call(x.c, "q", "src", "go", NULL, &reply), 404);
    CU_ASSERT_PTR_NOT_NULL(strstr(json_object_to_json_string(reply), "no pipeline 'q'"));
    json_object_put(reply);
    CU_ASSERT_EQUAL(call(&x, "nope", "go", NULL, err, sizeof err), 404);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "has no instance 'nope'"));
    CU_ASSERT_EQUAL(call(&x, "sink", "go", NULL, err, sizeof err), 404);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "has no command 'go'"));
    CU_ASSERT_EQUAL(x.f.calls, 0);
    fixture_free(&x);
}

static void test_call_statuses(void)
{
    fixture x;
    fixture_init(&x);
    char err[512];
    json_object *args = json_tokener_parse("{\"n\":3}");
    json_object *reply = NULL;
    CU_ASSERT_EQUAL(ik_control_call(x.c, "p", "src", "go", args, &reply), 200);
    CU_ASSERT_STRING_EQUAL(json_object_to_json_string(reply), "{ \"ok\": true }");
    CU_ASSERT_PTR_EQUAL(x.f.seen, args); /* the argument reaches the command as is */
    json_object_put(reply);
    json_object_put(args);

    x.f.null_reply = 1; /* no reply object: {} */
    CU_ASSERT_EQUAL(ik_control_call(x.c, "p", "src", "go", NULL, &reply), 200);
    CU_ASSERT_STRING_EQUAL(json_object_to_json_string(reply), "{ }");
    CU_ASSERT_PTR_NULL(x.f.seen);
    json_object_put(reply);

    struct {
        int rc;
        int status;
    } map[] = {{IK_E_INVAL, 400}, {IK_E_STATE, 409}, {IK_E_IO, 500}, {IK_E_STOPPING, 503}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        x.f.rc = map[i].rc;
        x.f.why = "because of 'this'";
        x.f.leak_reply = 1; /* ignored on error, and freed (ASan would tell) */
        CU_ASSERT_EQUAL(call(&x, "src", "go", NULL, err, sizeof err), map[i].status);
        CU_ASSERT_STRING_EQUAL(err, "command 'go': because of 'this'");
    }
    ik_log_add_secret("hunter2-secret"); /* a secret option's value never leaves */
    x.f.why = "login hunter2-secret refused";
    x.f.rc = IK_E_INVAL;
    CU_ASSERT_EQUAL(call(&x, "src", "go", NULL, err, sizeof err), 400);
    CU_ASSERT_STRING_EQUAL(err, "command 'go': login [REDACTED] refused");
    x.f.why = NULL; /* no reason: the code's text */
    x.f.rc = IK_E_STATE;
    CU_ASSERT_EQUAL(call(&x, "src", "go", NULL, err, sizeof err), 409);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ik_strerror(IK_E_STATE)));
    fixture_free(&x);
}

static void test_stopping_answers_503(void)
{
    fixture x;
    fixture_init(&x);
    char err[512];
    ik_control_set_stopping(x.c);
    CU_ASSERT_EQUAL(call(&x, "src", "go", NULL, err, sizeof err), 503);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "shutting down"));
    CU_ASSERT_EQUAL(call(&x, "nope", "go", NULL, err, sizeof err), 503);
    CU_ASSERT_EQUAL(x.f.calls, 0); /* never called during shutdown */
    fixture_free(&x);
}

static void test_list(void)
{
    fixture x;
    fixture_init(&x);
    json_object *doc = ik_control_list(x.c);
    CU_ASSERT_STRING_EQUAL(
        json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN),
        "{\"commands\":[{\"pipeline\":\"p\",\"instance\":\"src\",\"command\":\"go\","
        "\"help\":\"Go now.\"}]}");
    json_object_put(doc);
    fixture_free(&x);
}

static void test_route(void)
{
    ik_control_route r;
    CU_ASSERT_EQUAL(ik_control_route_parse("/health", &r), IK_ROUTE_OTHER);
    CU_ASSERT_EQUAL(ik_control_route_parse("/api/v1/controls", &r), IK_ROUTE_OTHER);
    CU_ASSERT_EQUAL(ik_control_route_parse("/api/v1/control", &r), IK_ROUTE_LIST);
    CU_ASSERT_EQUAL(ik_control_route_parse("/api/v1/control/", &r), IK_ROUTE_LIST);
    CU_ASSERT_EQUAL(ik_control_route_parse("/api/v1/control/p/i/c", &r), IK_ROUTE_COMMAND);
    CU_ASSERT_STRING_EQUAL(r.seg[0], "p");
    CU_ASSERT_STRING_EQUAL(r.seg[1], "i");
    CU_ASSERT_STRING_EQUAL(r.seg[2], "c");
    CU_ASSERT_EQUAL(ik_control_route_parse("/api/v1/control/Mail.in/file-1/re_scan", &r),
                    IK_ROUTE_COMMAND);
    CU_ASSERT_STRING_EQUAL(r.seg[0], "Mail.in");
    const char *bad[] = {
        "/api/v1/control/p",      "/api/v1/control/p/i",     "/api/v1/control/p/i/",
        "/api/v1/control/p/i/c/", "/api/v1/control/p//c",    "/api/v1/control/p/i/c/d",
        "/api/v1/control//i/c",   "/api/v1/control/p q/i/c", "/api/v1/control/p/i/%"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CU_ASSERT_EQUAL(ik_control_route_parse(bad[i], &r), IK_ROUTE_BAD);
    /* names only, never paths: ".." is looked up like any name */
    CU_ASSERT_EQUAL(ik_control_route_parse("/api/v1/control/p/../c", &r), IK_ROUTE_COMMAND);
    char longp[300] = "/api/v1/control/";
    memset(longp + 16, 'a', IK_CONTROL_SEGMENT_MAX + 1);
    strcpy(longp + 16 + IK_CONTROL_SEGMENT_MAX + 1, "/i/c");
    CU_ASSERT_EQUAL(ik_control_route_parse(longp, &r), IK_ROUTE_BAD);
}

/* Parses text as a body; returns the code, why in `why`. */
static int body(const char *text, json_object **out, char *why, size_t len)
{
    why[0] = '\0';
    return ik_control_body_parse(text, strlen(text), out, why, len);
}

static void test_body(void)
{
    json_object *v = NULL;
    char why[256];
    CU_ASSERT_EQUAL(body("", &v, why, sizeof why), 0);
    CU_ASSERT_PTR_NULL(v);
    CU_ASSERT_EQUAL(body(" \r\n\t", &v, why, sizeof why), 0);
    CU_ASSERT_PTR_NULL(v);
    CU_ASSERT_EQUAL(body(" {\"limit\": 3}\n", &v, why, sizeof why), 0);
    CU_ASSERT_TRUE(json_object_is_type(v, json_type_object));
    json_object_put(v);
    CU_ASSERT_EQUAL(body("[1, 2", &v, why, sizeof why), IK_E_PARSE);
    CU_ASSERT_STRING_EQUAL(why, "invalid JSON at byte 5: the body ends inside a value");
    CU_ASSERT_EQUAL(body("{\"a\": x}", &v, why, sizeof why), IK_E_PARSE);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "invalid JSON at byte 6: "));
    CU_ASSERT_EQUAL(body("{} {}", &v, why, sizeof why), IK_E_PARSE);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "invalid JSON at byte 3: "));
    CU_ASSERT_EQUAL(body("[1,]", &v, why, sizeof why), IK_E_PARSE); /* strict */
    CU_ASSERT_PTR_NULL(v);
    char deep[200] = "";
    for (int i = 0; i < IK_CONTROL_JSON_DEPTH + 1; i++)
        strcat(deep, "[");
    CU_ASSERT_EQUAL(body(deep, &v, why, sizeof why), IK_E_PARSE);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "invalid JSON at byte"));
    const char nul[] = "{\"a\":\"x\0y\"}";
    CU_ASSERT_EQUAL(ik_control_body_parse(nul, sizeof nul - 1, &v, why, sizeof why), IK_E_PARSE);
}

static void test_bearer(void)
{
    CU_ASSERT_TRUE(ik_control_bearer_ok("Bearer s3cret", "s3cret"));
    CU_ASSERT_TRUE(ik_control_bearer_ok("bearer s3cret", "s3cret"));
    CU_ASSERT_FALSE(ik_control_bearer_ok("Bearer s3cre", "s3cret"));
    CU_ASSERT_FALSE(ik_control_bearer_ok("Bearer s3crets", "s3cret"));
    CU_ASSERT_FALSE(ik_control_bearer_ok("Bearer S3cret", "s3cret"));
    CU_ASSERT_FALSE(ik_control_bearer_ok("Basic s3cret", "s3cret"));
    CU_ASSERT_FALSE(ik_control_bearer_ok("s3cret", "s3cret"));
    CU_ASSERT_FALSE(ik_control_bearer_ok("Bearer ", ""));
    CU_ASSERT_FALSE(ik_control_bearer_ok(NULL, "s3cret"));
}

static void test_loopback(void)
{
    CU_ASSERT_TRUE(ik_admin_listen_is_loopback("127.0.0.1:2020"));
    CU_ASSERT_TRUE(ik_admin_listen_is_loopback("127.8.9.10:0"));
    CU_ASSERT_TRUE(ik_admin_listen_is_loopback("localhost:2020"));
    CU_ASSERT_FALSE(ik_admin_listen_is_loopback("0.0.0.0:2020"));
    CU_ASSERT_FALSE(ik_admin_listen_is_loopback("10.0.0.5:2020"));
    CU_ASSERT_FALSE(ik_admin_listen_is_loopback("128.0.0.1:2020"));
    CU_ASSERT_FALSE(ik_admin_listen_is_loopback("myhost:2020"));
    CU_ASSERT_FALSE(ik_admin_listen_is_loopback(":2020"));
    CU_ASSERT_FALSE(ik_admin_listen_is_loopback(NULL));
}

int main(void)
{
    ik_log_configure(IK_LOG_TEXT, IK_LOG_ERROR);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("control", NULL, NULL);
    if (!s) {
        CU_cleanup_registry();
        return 1;
    }
    CU_add_test(s, "command names", test_names);
    CU_add_test(s, "add and find", test_add_and_find);
    CU_add_test(s, "unknown targets answer 404", test_call_not_found);
    CU_add_test(s, "return codes map to statuses", test_call_statuses);
    CU_add_test(s, "shutting down answers 503", test_stopping_answers_503);
    CU_add_test(s, "the listing", test_list);
    CU_add_test(s, "routes", test_route);
    CU_add_test(s, "request bodies", test_body);
    CU_add_test(s, "bearer token", test_bearer);
    CU_add_test(s, "loopback listen addresses", test_loopback);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failures = CU_get_number_of_failures();
    CU_cleanup_registry();
    ik_log_shutdown();
    return failures > 0 ? 1 : 0;
}
