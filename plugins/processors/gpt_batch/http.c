/*
 * http.c: HTTP for the gpt_batch processor: a pool of curl handles, so that
 * connections (and TLS sessions) are reused from one request to the next
 * instead of paying a handshake per packed request, and one call that sends
 * a JSON body, a multipart file upload or nothing (GET/DELETE) and collects
 * the status, the body (bounded) and the retry/rate-limit headers.
 *
 * The auth header line is a secret: it goes to curl only, never into a
 * message; curl's error buffer never contains request headers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt_internal.h"

#define MAX_BODY_BYTES (256u << 20) /* batch output files can be large */
#define POOL_MAX       128

struct gpt_http {
    pthread_mutex_t mu;
    CURL *idle[POOL_MAX]; /* handles with their live connections */
    int nidle;
    char *auth; /* owned; wiped on free */
    long timeout_ms, connect_timeout_ms;
};

int gpt_http_new(gpt_http **out, const char *auth_line, long timeout_ms, long connect_timeout_ms)
{
    *out = NULL;
    gpt_http *h = calloc(1, sizeof *h);
    if (!h)
        return IK_E_NOMEM;
    h->auth = strdup(auth_line);
    if (!h->auth || pthread_mutex_init(&h->mu, NULL) != 0) {
        free(h->auth);
        free(h);
        return IK_E_NOMEM;
    }
    h->timeout_ms = timeout_ms;
    h->connect_timeout_ms = connect_timeout_ms;
    *out = h;
    return 0;
}

void gpt_http_free(gpt_http *h)
{
    if (!h)
        return;
    for (int i = 0; i < h->nidle; i++)
        curl_easy_cleanup(h->idle[i]);
    memset(h->auth, 0, strlen(h->auth));
    free(h->auth);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

static CURL *take_handle(gpt_http *h)
{
    CURL *c = NULL;
    pthread_mutex_lock(&h->mu);
    if (h->nidle > 0)
        c = h->idle[--h->nidle];
    pthread_mutex_unlock(&h->mu);
    if (c) {
        curl_easy_reset(c); /* keeps the live connections, drops the options */
        return c;
    }
    return curl_easy_init();
}

static void give_handle(gpt_http *h, CURL *c)
{
    pthread_mutex_lock(&h->mu);
    if (h->nidle < POOL_MAX) {
        h->idle[h->nidle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&h->mu);
    if (c)
        curl_easy_cleanup(c);
}

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    gpt_resp *r = arg;
    size_t k = sz * n;
    if (r->raw.len + k + 1 > MAX_BODY_BYTES) {
        r->too_big = 1;
        return 0;
    }
    ik_buf_add(&r->raw, p, k);
    return r->raw.oom ? 0 : k; /* 0 ends the transfer with a write error */
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    gpt_resp *r = arg;
    if (gpt_hints_header(&r->hints, p, sz * n) != 0)
        r->bad_hints = 1;
    return sz * n;
}

int gpt_http_send(gpt_http *h, const char *method, const char *url, const char *json,
                  const gpt_upload *up, gpt_resp *resp, char *err, size_t errlen)
{
    memset(resp, 0, sizeof *resp);
    resp->body = "";
    gpt_hints_init(&resp->hints);
    if (errlen)
        err[0] = 0;
    CURL *c = take_handle(h);
    if (!c) {
        snprintf(err, errlen, "cannot create a curl handle");
        return IK_E_NOMEM;
    }
    struct curl_slist *hdr = NULL, *t;
    curl_mime *mime = NULL;
    int rc = IK_E_NOMEM;
    if (json && !(hdr = curl_slist_append(NULL, "Content-Type: application/json")))
        goto out;
    if (!(t = curl_slist_append(hdr, h->auth)))
        goto out;
    hdr = t;
    char ebuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    if (up) {
        mime = curl_mime_init(c);
        curl_mimepart *part = mime ? curl_mime_addpart(mime) : NULL;
        if (!part || curl_mime_name(part, "purpose") != CURLE_OK ||
            curl_mime_data(part, up->purpose, CURL_ZERO_TERMINATED) != CURLE_OK)
            goto out;
        part = curl_mime_addpart(mime);
        if (!part || curl_mime_name(part, "file") != CURLE_OK ||
            curl_mime_filename(part, up->filename) != CURLE_OK ||
            curl_mime_type(part, "application/jsonl") != CURLE_OK ||
            curl_mime_data(part, up->data, up->len) != CURLE_OK)
            goto out;
        curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    } else if (json) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(json));
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, h->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    CURLcode cc = curl_easy_perform(c);
    if (resp->raw.p && !resp->raw.oom) {
        resp->body = resp->raw.p;
        resp->len = resp->raw.len;
    }
    if (cc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
        rc = 0;
    } else if (resp->too_big) {
        snprintf(err, errlen, "response larger than %u bytes", MAX_BODY_BYTES);
        rc = IK_E_IO;
    } else {
        snprintf(err, errlen, "%s", ebuf[0] ? ebuf : curl_easy_strerror(cc));
        rc = cc == CURLE_OPERATION_TIMEDOUT ? IK_E_TIMEOUT : IK_E_IO;
    }
    /* the options point at hdr, mime and resp: clear them before the handle
     * waits in the pool */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_MIMEPOST, NULL);
out:
    if (rc == IK_E_NOMEM && !err[0])
        snprintf(err, errlen, "out of memory preparing the request");
    curl_mime_free(mime);
    curl_slist_free_all(hdr);
    give_handle(h, c);
    return rc;
}

void gpt_resp_free(gpt_resp *r)
{
    ik_buf_free(&r->raw);
    r->body = "";
    r->len = 0;
}
