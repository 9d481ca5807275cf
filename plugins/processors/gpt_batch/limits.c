/*
 * limits.c: retry hints from response headers (retry-after-ms, retry-after,
 * x-should-retry, x-ratelimit-*) and from a 429's error (which limit was hit,
 * "Please try again in 1.5s"), the bounds the API puts on request fields
 * that options set (checked at start-up), and the client-side limiter: requests and
 * tokens per minute as token buckets corrected from those headers, a pause
 * a 429 asks for, and an AIMD gate on the number of requests in flight.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/utf8.h"
#include "gpt_internal.h"

double gpt_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Strict decimal number at *p (digits, optional fraction); advances *p. */
static int number(const char **p, double *out)
{
    const char *s = *p;
    double v = 0;
    int digits = 0;
    while (isdigit((unsigned char)*s)) {
        v = v * 10 + (*s++ - '0');
        digits++;
    }
    if (*s == '.') {
        s++;
        double f = 0.1;
        while (isdigit((unsigned char)*s)) {
            v += (*s++ - '0') * f;
            f /= 10;
            digits++;
        }
    }
    if (!digits || digits > 30)
        return -1;
    *p = s;
    *out = v;
    return 0;
}

int gpt_parse_duration_ms(const char *s, double *ms)
{
    if (!s)
        return IK_E_PARSE;
    while (*s == ' ')
        s++;
    double total = 0;
    int parts = 0;
    while (*s && *s != ' ' && *s != '\r' && *s != '\n') {
        double v;
        if (number(&s, &v) != 0)
            return IK_E_PARSE;
        double unit;
        if (strncmp(s, "ms", 2) == 0) {
            unit = 1;
            s += 2;
        } else if (strncmp(s, "us", 2) == 0 || strncmp(s, "\xc2\xb5s", 3) == 0) {
            unit = 0.001;
            s += s[0] == 'u' ? 2 : 3;
        } else if (strncmp(s, "ns", 2) == 0) {
            unit = 1e-6;
            s += 2;
        } else if (*s == 'h') {
            unit = 3600e3;
            s++;
        } else if (*s == 'm') {
            unit = 60e3;
            s++;
        } else if (*s == 's') {
            unit = 1e3;
            s++;
        } else {
            return IK_E_PARSE;
        }
        total += v * unit;
        parts++;
    }
    while (*s == ' ' || *s == '\r' || *s == '\n')
        s++;
    if (!parts || *s)
        return IK_E_PARSE;
    *ms = total;
    return 0;
}

int gpt_parse_retry_after_ms(const char *s, time_t now, double *ms)
{
    if (!s)
        return IK_E_PARSE;
    while (*s == ' ')
        s++;
    const char *p = s;
    double v;
    if (number(&p, &v) == 0) {
        while (*p == ' ' || *p == '\r' || *p == '\n')
            p++;
        if (*p)
            return IK_E_PARSE;
        *ms = v * 1000;
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end)
        return IK_E_PARSE;
    while (*end == ' ' || *end == '\r' || *end == '\n')
        end++;
    if (*end)
        return IK_E_PARSE;
    time_t at = timegm(&tm);
    *ms = at > now ? (double)(at - now) * 1000 : 0;
    return 0;
}

void gpt_hints_init(gpt_hints *h)
{
    memset(h, 0, sizeof *h);
    h->retry_after_ms = -1;
    h->should_retry = -1;
    h->limit_req = h->limit_tok = h->rem_req = h->rem_tok = -1;
    h->reset_req_ms = h->reset_tok_ms = -1;
}

static int parse_long(const char *v, long *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    while (*end == ' ')
        end++;
    if (end == v || *end || x < -1)
        return -1;
    *out = x;
    return 0;
}

int gpt_hints_header(gpt_hints *h, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    if (!colon)
        return 0; /* status line or blank line */
    size_t nl = (size_t)(colon - line);
    char name[64], val[128];
    if (nl >= sizeof name)
        return 0;
    memcpy(name, line, nl);
    name[nl] = 0;
    const char *v = colon + 1;
    size_t vl = len - nl - 1;
    while (vl && (*v == ' ' || *v == '\t')) {
        v++;
        vl--;
    }
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    if (vl >= sizeof val) {
        if (strncasecmp(name, "x-ratelimit-", 12) == 0 || strncasecmp(name, "retry-after", 11) == 0)
            goto bad;
        return 0;
    }
    memcpy(val, v, vl);
    val[vl] = 0;
    double d;
    if (strcasecmp(name, "retry-after-ms") == 0) {
        const char *p = val;
        if (number(&p, &d) != 0 || *p)
            goto bad;
        h->retry_after_ms = d;
    } else if (strcasecmp(name, "retry-after") == 0) {
        if (gpt_parse_retry_after_ms(val, time(NULL), &d) != 0)
            goto bad;
        if (h->retry_after_ms < 0)
            h->retry_after_ms = d;
    } else if (strcasecmp(name, "x-should-retry") == 0) {
        if (strcasecmp(val, "true") == 0)
            h->should_retry = 1;
        else if (strcasecmp(val, "false") == 0)
            h->should_retry = 0;
        else
            goto bad;
    } else if (strcasecmp(name, "x-ratelimit-limit-requests") == 0) {
        if (parse_long(val, &h->limit_req))
            goto bad;
    } else if (strcasecmp(name, "x-ratelimit-limit-tokens") == 0) {
        if (parse_long(val, &h->limit_tok))
            goto bad;
    } else if (strcasecmp(name, "x-ratelimit-remaining-requests") == 0) {
        if (parse_long(val, &h->rem_req))
            goto bad;
    } else if (strcasecmp(name, "x-ratelimit-remaining-tokens") == 0) {
        if (parse_long(val, &h->rem_tok))
            goto bad;
    } else if (strcasecmp(name, "x-ratelimit-reset-requests") == 0) {
        if (gpt_parse_duration_ms(val, &h->reset_req_ms))
            goto bad;
    } else if (strcasecmp(name, "x-ratelimit-reset-tokens") == 0) {
        if (gpt_parse_duration_ms(val, &h->reset_tok_ms))
            goto bad;
    } else if (strcasecmp(name, "x-request-id") == 0 || strcasecmp(name, "apim-request-id") == 0) {
        snprintf(h->request_id, sizeof h->request_id, "%.95s", val);
    }
    return 0;
bad:
    if (!h->bad[0])
        snprintf(h->bad, sizeof h->bad, "%s: %.*s", name, (int)(vl < 100 ? vl : 100), v);
    return IK_E_PARSE;
}

/* The token after "try again in " in msg (up to a space, one final '.'
 * dropped) as a Go duration; -1 when msg has none, IK_E_PARSE when the token
 * is no duration. */
static int try_again_in(const char *msg, double *ms)
{
    static const char key[] = "try again in ";
    const char *p = strcasestr(msg, key);
    if (!p)
        return -1;
    p += sizeof key - 1;
    size_t n = strcspn(p, " \t\r\n");
    char tok[64];
    if (n == 0 || n >= sizeof tok)
        return IK_E_PARSE;
    memcpy(tok, p, n);
    if (tok[n - 1] == '.')
        n--;
    tok[n] = 0;
    return gpt_parse_duration_ms(tok, ms) == 0 ? 0 : IK_E_PARSE;
}

int gpt_parse_rate_limit(const char *type, const char *message, gpt_rate_limit *out)
{
    out->kind = GPT_LIMIT_UNKNOWN;
    out->per_day = 0;
    out->try_again_ms = -1;
    if (type && strncmp(type, "requests", 8) == 0)
        out->kind = GPT_LIMIT_REQUESTS;
    else if (type && strncmp(type, "tokens", 6) == 0)
        out->kind = GPT_LIMIT_TOKENS;
    if (!message)
        return 0;
    /* "... in organization org-x on tokens per min (TPM): Limit ..." */
    const char *on = strstr(message, " on requests per ");
    if (on)
        out->kind = GPT_LIMIT_REQUESTS;
    else if ((on = strstr(message, " on tokens per ")))
        out->kind = GPT_LIMIT_TOKENS;
    if (on)
        out->per_day = strncmp(strstr(on, " per ") + 5, "day", 3) == 0;
    double ms;
    int rc = try_again_in(message, &ms);
    if (rc == IK_E_PARSE)
        return IK_E_PARSE;
    if (rc == 0)
        out->try_again_ms = ms;
    return 0;
}

double gpt_hints_wait_ms(const gpt_hints *h, const gpt_rate_limit *hit, double fallback_ms)
{
    if (h->retry_after_ms >= 0)
        return h->retry_after_ms;
    if (hit && hit->try_again_ms >= 0)
        return hit->try_again_ms;
    /* the reset of the limit that was hit, not of the other one */
    if (hit && hit->kind == GPT_LIMIT_REQUESTS && h->reset_req_ms >= 0)
        return h->reset_req_ms;
    if (hit && hit->kind == GPT_LIMIT_TOKENS && h->reset_tok_ms >= 0)
        return h->reset_tok_ms;
    double w = -1;
    if (h->rem_req == 0 && h->reset_req_ms >= 0)
        w = h->reset_req_ms;
    if (h->rem_tok == 0 && h->reset_tok_ms > w)
        w = h->reset_tok_ms;
    return w >= 0 ? w : fallback_ms;
}

/* ---- bounds of request fields set by options ---- */

/* The API refuses a longer prompt_cache_key (400 string_above_max_length)
 * and a Responses max_output_tokens below 16 (integer_below_min_value). */
#define MAX_CACHE_KEY_CHARS  64
#define MIN_RESPONSES_OUTPUT 16

int gpt_check_request_options(const char *cache_key, long max_output_tokens, int chat, char *err,
                              size_t errlen)
{
    size_t len = cache_key ? strlen(cache_key) : 0, chars = 0;
    for (size_t i = 0; i < len; chars++) {
        size_t n = ik_utf8_seq((const unsigned char *)cache_key + i, len - i);
        if (n == 0) {
            snprintf(err, errlen, "option prompt_cache_key: not valid UTF-8 at byte %zu", i);
            return IK_E_CONFIG;
        }
        i += n;
    }
    if (chars > MAX_CACHE_KEY_CHARS) {
        snprintf(err, errlen,
                 "option prompt_cache_key: %zu characters; the API takes at most %d (every "
                 "request would be refused)",
                 chars, MAX_CACHE_KEY_CHARS);
        return IK_E_CONFIG;
    }
    if (!chat && max_output_tokens > 0 && max_output_tokens < MIN_RESPONSES_OUTPUT) {
        snprintf(err, errlen,
                 "option max_output_tokens: %ld; the Responses API takes at least %d (0: the "
                 "model's maximum)",
                 max_output_tokens, MIN_RESPONSES_OUTPUT);
        return IK_E_CONFIG;
    }
    return 0;
}

/* ---- limiter ---- */

/* While neither limit is configured and no answer has come back, requests
 * start at most this often: a 429 (which comes back at once) then teaches
 * the limits before the whole first wave has been sent into it. */
#define PROBE_SPACING_S 0.1

int gpt_limiter_init(gpt_limiter *l, double rpm, double tpm, double conc_min, double conc_max,
                     double utilization)
{
    memset(l, 0, sizeof *l);
    if (pthread_mutex_init(&l->mu, NULL) != 0)
        return IK_E_NOMEM;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        pthread_mutex_destroy(&l->mu);
        return IK_E_NOMEM;
    }
    l->utilization = utilization > 0 && utilization <= 1 ? utilization : 1;
    l->rpm = rpm * l->utilization;
    l->tpm = tpm * l->utilization;
    l->cfg_rpm = rpm > 0;
    l->cfg_tpm = tpm > 0;
    l->req = l->rpm;
    l->tok = l->tpm;
    l->last = gpt_now_s();
    l->conc_min = conc_min >= 1 ? conc_min : 1;
    l->conc_max = conc_max >= l->conc_min ? conc_max : l->conc_min;
    l->conc = l->conc_max;
    l->probing = !l->cfg_rpm && !l->cfg_tpm;
    return 0;
}

void gpt_limiter_destroy(gpt_limiter *l)
{
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
}

static void refill_locked(gpt_limiter *l, double now)
{
    double dt = now - l->last;
    if (dt <= 0)
        return;
    l->last = now;
    if (l->rpm > 0) {
        l->req += dt * l->rpm / 60;
        if (l->req > l->rpm)
            l->req = l->rpm;
    }
    if (l->tpm > 0) {
        l->tok += dt * l->tpm / 60;
        if (l->tok > l->tpm)
            l->tok = l->tpm;
    }
}

int gpt_limiter_acquire(gpt_limiter *l, double tokens, int (*stop)(void *), void *arg)
{
    pthread_mutex_lock(&l->mu);
    for (;;) {
        double now = gpt_now_s();
        refill_locked(l, now);
        double wait = 0;
        if (now < l->paused_until)
            wait = l->paused_until - now;
        else if ((double)l->inflight + 1 > floor(l->conc) && l->inflight > 0)
            wait = 0.1; /* woken by release */
        else if (l->probing && now - l->last_start < PROBE_SPACING_S)
            wait = l->last_start + PROBE_SPACING_S - now;
        else {
            double need_tok = l->tpm > 0 && tokens > l->tpm ? l->tpm : tokens;
            double wr = l->rpm > 0 && l->req < 1 ? (1 - l->req) * 60 / l->rpm : 0;
            double wt = l->tpm > 0 && l->tok < need_tok ? (need_tok - l->tok) * 60 / l->tpm : 0;
            wait = wr > wt ? wr : wt;
            if (wait <= 0) {
                if (l->rpm > 0)
                    l->req -= 1;
                if (l->tpm > 0)
                    l->tok -= tokens;
                l->inflight++;
                l->last_start = now;
                pthread_mutex_unlock(&l->mu);
                return 0;
            }
        }
        if (stop && stop(arg)) {
            pthread_mutex_unlock(&l->mu);
            return IK_E_STOPPING;
        }
        if (wait > 0.1)
            wait = 0.1;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long ns = ts.tv_nsec + (long)(wait * 1e9);
        ts.tv_sec += ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    }
}

void gpt_limiter_correct(gpt_limiter *l, double tokens_delta)
{
    pthread_mutex_lock(&l->mu);
    if (l->tpm > 0) {
        l->tok -= tokens_delta;
        if (l->tok > l->tpm)
            l->tok = l->tpm;
    }
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

void gpt_limiter_done(gpt_limiter *l)
{
    pthread_mutex_lock(&l->mu);
    if (l->inflight > 0)
        l->inflight--;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

void gpt_limiter_feedback(gpt_limiter *l, int overloaded, double latency_s)
{
    pthread_mutex_lock(&l->mu);
    double now = gpt_now_s();
    if (latency_s > 0)
        l->lat_ewma = l->lat_ewma > 0 ? 0.8 * l->lat_ewma + 0.2 * latency_s : latency_s;
    if (overloaded) {
        /* one decrease per round trip: the requests that were already in
         * flight when the first 429 came back say nothing new */
        if (now - l->last_decrease >= l->lat_ewma) {
            l->conc /= 2;
            if (l->conc < l->conc_min)
                l->conc = l->conc_min;
            l->last_decrease = now;
        }
    } else {
        l->conc += 1;
        if (l->conc > l->conc_max)
            l->conc = l->conc_max;
    }
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

void gpt_limiter_release(gpt_limiter *l, int overloaded, double latency_s)
{
    gpt_limiter_done(l);
    gpt_limiter_feedback(l, overloaded, latency_s);
}

/* Output tokens below which a request's latency is mostly time to first
 * token and says little about the server's speed. */
#define SLOW_MIN_OUTPUT 256

int gpt_limiter_slow(gpt_limiter *l, double latency_s, double output_tokens, double target_s,
                     double factor)
{
    if (target_s > 0 && latency_s > target_s)
        return 1;
    if (factor <= 0 || output_tokens < SLOW_MIN_OUTPUT || latency_s <= 0)
        return 0;
    double per_token = latency_s / output_tokens;
    pthread_mutex_lock(&l->mu);
    int slow = 0;
    if (l->speed_samples >= 5 && per_token > factor * l->speed_base)
        slow = 1;
    /* a decaying minimum: the fastest recent speed, drifting up 1% a sample
     * so that a server that has become slower for good is the new normal
     * after about a hundred answers rather than forever "slow" */
    if (l->speed_samples == 0 || per_token < l->speed_base)
        l->speed_base = per_token;
    else
        l->speed_base *= 1.01;
    l->speed_samples++;
    pthread_mutex_unlock(&l->mu);
    return slow;
}

void gpt_limiter_update(gpt_limiter *l, const gpt_hints *h)
{
    pthread_mutex_lock(&l->mu);
    l->probing = 0; /* an answer came: the limits are known, or never will be */
    refill_locked(l, gpt_now_s());
    if (h->limit_req > 0) {
        double lim = (double)h->limit_req * l->utilization;
        if (!l->cfg_rpm || lim < l->rpm) {
            if (l->rpm <= 0)
                l->req = lim;
            l->rpm = lim;
        }
    }
    if (h->limit_tok > 0) {
        double lim = (double)h->limit_tok * l->utilization;
        if (!l->cfg_tpm || lim < l->tpm) {
            if (l->tpm <= 0)
                l->tok = lim;
            l->tpm = lim;
        }
    }
    /* the server's remaining already counts this request; keep what is left of
     * our share (limit * utilization), never more than the server says */
    if (h->rem_req >= 0 && l->rpm > 0) {
        double slack = (double)h->limit_req > 0 ? (double)h->limit_req - l->rpm : 0;
        double r = (double)h->rem_req - slack;
        if (r < l->req)
            l->req = r;
    }
    if (h->rem_tok >= 0 && l->tpm > 0) {
        double slack = (double)h->limit_tok > 0 ? (double)h->limit_tok - l->tpm : 0;
        double r = (double)h->rem_tok - slack;
        if (r < l->tok)
            l->tok = r;
    }
    pthread_mutex_unlock(&l->mu);
}

void gpt_limiter_pause(gpt_limiter *l, double ms)
{
    pthread_mutex_lock(&l->mu);
    double until = gpt_now_s() + ms / 1000;
    if (until > l->paused_until)
        l->paused_until = until;
    pthread_mutex_unlock(&l->mu);
}

double gpt_limiter_concurrency(gpt_limiter *l)
{
    pthread_mutex_lock(&l->mu);
    double c = l->conc;
    pthread_mutex_unlock(&l->mu);
    return c;
}
