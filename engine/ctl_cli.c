/*
 * ctl_cli.c: `intake ctl [--admin HOST:PORT] PIPELINE INSTANCE COMMAND [JSON]`
 * and `intake ctl [--admin HOST:PORT] list`: one HTTP request to the admin
 * server's control routes with libcurl, the token from INTAKE_ADMIN_TOKEN
 * as a bearer header. The reply's JSON goes to stdout as received; on an
 * error status a line on stderr says which, and the exit code tells 4xx,
 * 5xx and no answer apart (ctl_cli.h).
 */
#include "ctl_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/buf.h"
#include "control_http.h"
#include "engine.h"

#define CTL_DEFAULT_ADMIN "127.0.0.1:2020"
#define CTL_REPLY_MAX     (16u * 1024u * 1024u) /* a reply larger than this is cut off */

static const char ctl_usage[] =
    "usage: intake ctl [--admin HOST:PORT] PIPELINE INSTANCE COMMAND [JSON]\n"
    "       intake ctl [--admin HOST:PORT] list\n"
    "Runs a control command on a running engine (default admin " CTL_DEFAULT_ADMIN "),\n"
    "or lists every command with its help. The token, when the engine needs one,\n"
    "comes from $" IK_ADMIN_TOKEN_ENV ". Prints the JSON reply.\n"
    "exit codes: 0 done, 2 bad command line, 7 no answer from the admin server,\n"
    "            8 refused (4xx: unknown target, bad argument, not now, token),\n"
    "            9 engine error (5xx, or shutting down)\n";

typedef struct ctl_args {
    const char *admin;
    const char *seg[3]; /* pipeline, instance, command; all NULL for list */
    const char *json;   /* NULL: no body */
} ctl_args;

static int ctl_usage_error(const char *what)
{
    fprintf(stderr, "intake ctl: %s\n%s", what, ctl_usage);
    return IK_EXIT_USAGE;
}

/* Fills a from argv; 0 or the usage exit code (after printing why). */
static int parse_args(int argc, char **argv, ctl_args *a)
{
    const char *pos[4];
    int npos = 0;
    a->admin = CTL_DEFAULT_ADMIN;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--admin")) {
            if (++i >= argc)
                return ctl_usage_error("--admin needs HOST:PORT");
            a->admin = argv[i];
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(ctl_usage, stdout);
            return -1;
        } else if (npos == 4) {
            return ctl_usage_error("too many arguments");
        } else {
            pos[npos++] = argv[i];
        }
    }
    if (npos == 1 && !strcmp(pos[0], "list"))
        return 0;
    if (npos < 3)
        return ctl_usage_error("expected PIPELINE INSTANCE COMMAND [JSON], or list");
    for (int k = 0; k < 3; k++)
        a->seg[k] = pos[k];
    a->json = npos == 4 ? pos[3] : NULL;
    return 0;
}

/* libcurl's write callback: appends to the ik_buf, up to CTL_REPLY_MAX. */
static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    ik_buf *b = arg;
    size_t len = size * n;
    if (b->len + len > CTL_REPLY_MAX)
        return 0; /* curl reports a write error */
    ik_buf_add(b, p, len);
    return b->oom ? 0 : len;
}

/* http://ADMIN/api/v1/control[/P/I/C] with each segment escaped; NULL when
 * out of memory. Owned by the caller. */
static char *build_url(CURL *c, const ctl_args *a)
{
    ik_buf u = {0};
    ik_buf_adds(&u, "http://");
    ik_buf_adds(&u, a->admin);
    ik_buf_adds(&u, IK_CONTROL_PREFIX);
    for (int k = 0; a->seg[0] && k < 3; k++) {
        char *e = curl_easy_escape(c, a->seg[k], 0);
        if (!e) {
            ik_buf_free(&u);
            return NULL;
        }
        ik_buf_addc(&u, '/');
        ik_buf_adds(&u, e);
        curl_free(e);
    }
    return ik_buf_take(&u);
}

/* Adds the headers: JSON body, and the bearer token when one is set. */
static struct curl_slist *build_headers(int body)
{
    struct curl_slist *h = NULL, *t;
    if (body && (t = curl_slist_append(h, "Content-Type: application/json")))
        h = t;
    const char *token = getenv(IK_ADMIN_TOKEN_ENV);
    if (token && *token) {
        ik_buf line = {0};
        ik_buf_adds(&line, "Authorization: Bearer ");
        ik_buf_adds(&line, token);
        if (!line.oom && (t = curl_slist_append(h, line.p)))
            h = t;
        if (line.p)
            memset(line.p, 0, line.len);
        ik_buf_free(&line);
    }
    return h;
}

/* Sends the request; 0 with *status and reply filled, or the connect exit
 * code after printing why. */
static int send_request(const ctl_args *a, long *status, ik_buf *reply)
{
    CURL *c = curl_easy_init();
    if (!c) {
        fprintf(stderr, "intake ctl: cannot start libcurl\n");
        return IK_CTL_EXIT_CONNECT;
    }
    char *url = build_url(c, a);
    struct curl_slist *h = build_headers(a->seg[0] != NULL);
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, reply);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
    if (a->seg[0]) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, a->json ? a->json : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(a->json ? strlen(a->json) : 0));
    }
    CURLcode rc = url ? curl_easy_perform(c) : CURLE_OUT_OF_MEMORY;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    else
        fprintf(stderr, "intake ctl: no answer from the admin server at %s: %s\n", a->admin,
                errbuf[0] ? errbuf : curl_easy_strerror(rc));
    curl_slist_free_all(h);
    free(url);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? 0 : IK_CTL_EXIT_CONNECT;
}

int ik_ctl_main(int argc, char **argv)
{
    ctl_args a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? IK_EXIT_OK : rc;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "intake ctl: cannot start libcurl\n");
        return IK_CTL_EXIT_CONNECT;
    }
    long status = 0;
    ik_buf reply = {0};
    rc = send_request(&a, &status, &reply);
    curl_global_cleanup();
    if (rc != 0) {
        ik_buf_free(&reply);
        return rc;
    }
    if (reply.len)
        printf("%.*s\n", (int)reply.len, reply.p);
    ik_buf_free(&reply);
    if (status >= 200 && status < 300)
        return IK_EXIT_OK;
    fprintf(stderr, "intake ctl: the admin server answered HTTP %ld\n", status);
    return status >= 400 && status < 500 ? IK_CTL_EXIT_CLIENT : IK_CTL_EXIT_SERVER;
}
