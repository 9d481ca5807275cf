/*
 * runtime.c: fetching a queue's runtime counts from the management REST
 * API with libcurl (see runtime.h): the URL, the SAS token with its
 * lower-case rule, the GET, and what each HTTP status means. The answer is
 * read by runtime_parse.c. The key and the token stay out of every error:
 * libcurl's own messages never see the headers, and the server's answer
 * body is not quoted.
 */
#include "runtime.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>

#include <intake/plugin.h>

#include "servicebus/sas.h"

/* How long a request's token is valid (the SDK uses 300 s too). */
#define TOKEN_TTL_S 300

/* Lower-cases s in place. */
static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

char *ik_sb_runtime_token(const char *url, const char *key_name, const char *key,
                          int64_t expiry_unix)
{
    if (!url || !key_name || !key)
        return NULL;
    char *low = strdup(url);
    if (!low)
        return NULL;
    lower(low);
    char *sr = ik_sb_url_encode(low);
    free(low);
    if (!sr)
        return NULL;
    lower(sr); /* the SDK's admin client signs "%3a%2f", not "%3A%2F" */
    char *token = ik_sb_sas_token_sr(sr, key_name, key, expiry_unix);
    free(sr);
    return token;
}

/* "<base>/<queue>?api-version=..." (malloc'd) with the queue's path
 * characters other than letters, digits, "-._~/" percent-encoded; NULL
 * with err when base is not http(s):// or out of memory (err empty). */
static char *request_url(const char *base, const char *queue, char *err, size_t errlen)
{
    if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) {
        snprintf(err, errlen, "the management endpoint '%.200s' is not an http:// or https:// URL",
                 base);
        return NULL;
    }
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    size_t qlen = strlen(queue);
    char *url = malloc(blen + 1 + 3 * qlen + sizeof "?api-version=" IK_SB_RUNTIME_API);
    if (!url)
        return NULL;
    memcpy(url, base, blen);
    char *o = url + blen;
    *o++ = '/';
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)queue; *p; p++) {
        if (isalnum(*p) || strchr("-._~/", *p)) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    strcpy(o, "?api-version=" IK_SB_RUNTIME_API);
    return url;
}

/* The answer being read, capped at IK_SB_RUNTIME_MAX_ANSWER. */
typedef struct answer {
    char *data;
    size_t len, cap;
    int too_big;
} answer;

static size_t on_data(char *p, size_t size, size_t nmemb, void *arg)
{
    answer *a = arg;
    size_t n = size * nmemb;
    if (a->len + n > IK_SB_RUNTIME_MAX_ANSWER) {
        a->too_big = 1;
        return 0;
    }
    if (a->len + n + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 4096;
        while (cap < a->len + n + 1)
            cap *= 2;
        char *d = realloc(a->data, cap);
        if (!d)
            return 0;
        a->data = d;
        a->cap = cap;
    }
    memcpy(a->data + a->len, p, n);
    a->len += n;
    a->data[a->len] = '\0';
    return n;
}

/* libcurl's progress callback: non-zero aborts the transfer. */
static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    const atomic_int *cancel = arg;
    return cancel && atomic_load(cancel);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* What an HTTP status other than 200 means for the caller. */
static int status_error(long status, const char *url, char *err, size_t errlen)
{
    switch (status) {
    case 401:
        snprintf(err, errlen,
                 "the management endpoint refused the key (HTTP 401): check "
                 "SharedAccessKeyName and SharedAccessKey (GET %.300s)",
                 url);
        return IK_E_CONFIG;
    case 403:
        snprintf(err, errlen,
                 "the key may not read queue properties (HTTP 403): it needs the Manage "
                 "right (GET %.300s)",
                 url);
        return IK_E_CONFIG;
    case 404:
        snprintf(err, errlen, "no such queue or path (HTTP 404): GET %.300s", url);
        return IK_E_NOTFOUND;
    default:
        snprintf(err, errlen, "the management endpoint answered HTTP %ld to GET %.300s", status,
                 url);
        return IK_E_IO;
    }
}

/* Sets the request's options; 0 or IK_E_NOMEM. */
static int setup(CURL *c, const char *url, struct curl_slist *hdrs, long timeout_ms,
                 const char *ca_file, int verify, const atomic_int *cancel, answer *a,
                 char *curl_err)
{
    CURLcode rc = CURLE_OK;
    rc |= curl_easy_setopt(c, CURLOPT_URL, url);
    rc |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    rc |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    rc |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    rc |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    rc |= curl_easy_setopt(c, CURLOPT_USERAGENT, "intake-servicebus");
    rc |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    rc |= curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    rc |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    rc |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
    rc |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
    if (cancel) {
        rc |= curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        rc |= curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        rc |= curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)cancel);
    }
    if (ca_file) {
        struct stat sb;
        int dir = stat(ca_file, &sb) == 0 && S_ISDIR(sb.st_mode);
        rc |= curl_easy_setopt(c, dir ? CURLOPT_CAPATH : CURLOPT_CAINFO, ca_file);
    }
    return rc == CURLE_OK ? 0 : IK_E_NOMEM;
}

/* Performs the GET; 0 with *status, or an error code with err. */
static int perform(CURL *c, const char *url, const atomic_int *cancel, const answer *a,
                   const char *curl_err, long *status, char *err, size_t errlen)
{
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_ABORTED_BY_CALLBACK && cancel && atomic_load(cancel)) {
        snprintf(err, errlen, "given up: the source is stopping");
        return IK_E_STOPPING;
    }
    if (a->too_big) {
        snprintf(err, errlen, "the answer to GET %.300s is larger than %d bytes", url,
                 IK_SB_RUNTIME_MAX_ANSWER);
        return IK_E_PARSE;
    }
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "GET %.300s failed: %.300s", url,
                 curl_err[0] ? curl_err : curl_easy_strerror(rc));
        return rc == CURLE_OPERATION_TIMEDOUT ? IK_E_TIMEOUT
               : rc == CURLE_OUT_OF_MEMORY    ? IK_E_NOMEM
                                              : IK_E_IO;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    return 0;
}

/* The Authorization header line for url (malloc'd secret), or NULL. */
static char *auth_header(const char *url, const char *key_name, const char *key)
{
    static const char sas_prefix[] = "SharedAccessSignature ";
    char *token = NULL, *line = NULL;
    if (strncmp(key, sas_prefix, sizeof sas_prefix - 1) == 0)
        token = strdup(key);
    else if (key_name)
        token = ik_sb_runtime_token(url, key_name, key, (int64_t)time(NULL) + TOKEN_TTL_S);
    if (token && asprintf(&line, "Authorization: %s", token) < 0)
        line = NULL;
    ik_sb_sas_free(token);
    return line;
}

int ik_sb_runtime_counts_cancellable(const char *base_url, const char *queue, const char *key_name,
                                     const char *key, long timeout_ms, const char *ca_file,
                                     int verify, const atomic_int *cancel, ik_sb_counts *out,
                                     char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (errlen)
        err[0] = '\0';
    if (!base_url || !queue || !key) {
        snprintf(err, errlen, "no management endpoint, queue or key");
        return IK_E_INVAL;
    }
    char *url = request_url(base_url, queue, err, errlen);
    if (!url)
        return err[0] ? IK_E_INVAL : IK_E_NOMEM;
    pthread_once(&curl_once, curl_init);
    char *auth = auth_header(url, key_name, key);
    struct curl_slist *hdrs = auth ? curl_slist_append(NULL, auth) : NULL;
    CURL *c = hdrs ? curl_easy_init() : NULL;
    char curl_err[CURL_ERROR_SIZE] = "";
    answer a = {0};
    long status = 0;
    int rc =
        c ? setup(c, url, hdrs, timeout_ms, ca_file, verify, cancel, &a, curl_err) : IK_E_NOMEM;
    if (rc == 0)
        rc = perform(c, url, cancel, &a, curl_err, &status, err, errlen);
    if (rc == 0 && status != 200)
        rc = status_error(status, url, err, errlen);
    if (rc == 0) {
        char why[400];
        rc = ik_sb_runtime_parse(a.data ? a.data : "", a.len, out, why, sizeof why);
        if (rc == IK_E_NOTFOUND)
            snprintf(err, errlen, "no such queue '%.200s' at %.300s (the answer is an empty feed)",
                     queue, base_url);
        else if (rc != 0)
            snprintf(err, errlen, "the answer to GET %.300s: %s", url, why);
    }
    if (c)
        curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    ik_sb_sas_free(auth);
    free(a.data);
    free(url);
    return rc;
}

int ik_sb_runtime_counts(const char *base_url, const char *queue, const char *key_name,
                         const char *key, long timeout_ms, const char *ca_file, int verify,
                         ik_sb_counts *out, char *err, size_t errlen)
{
    return ik_sb_runtime_counts_cancellable(base_url, queue, key_name, key, timeout_ms, ca_file,
                                            verify, NULL, out, err, errlen);
}
