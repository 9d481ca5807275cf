/*
 * log.c: the engine's leveled logger (see log.h).
 *
 * Process-wide state: the output format and threshold (atomics, read on every
 * call without a lock) and the list of secrets (guarded by a rwlock: loggers
 * take it shared while redacting, ik_log_add_secret takes it exclusive, so a
 * secret added on one thread is redacted from every line formatted after the
 * add returns, on any thread).
 *
 * A line is built whole in memory (message formatted, then redacted, then
 * escaped) and handed to write(2) once; the loop around write only continues
 * a short write (a pipe that is momentarily full) or EINTR.
 *
 * Text line:  2026-11-28T10:36:05.123Z INFO  [pipeline/instance] message
 *   The level is padded to 5 columns. The bracket is "[p/i]" with both names,
 *   "[p]" or "[i]" with only one, and left out (with its space) with none.
 *   Control characters in names and message are escaped (\n, \r, \t, \xHH) so
 *   one call is always one line; other bytes pass through.
 * JSON line:  {"ts":"...","level":"info","pipeline":"p","instance":"i","msg":"..."}
 *   "pipeline" and "instance" are left out when NULL. Strings are escaped per
 *   RFC 8259; bytes that are not valid UTF-8 become \ufffd.
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/utf8.h"

#define REDACTED       "[REDACTED]"
#define SECRET_MIN_LEN 4

static atomic_int g_format = IK_LOG_TEXT;
static atomic_int g_level = IK_LOG_INFO;

static pthread_rwlock_t g_secret_lock = PTHREAD_RWLOCK_INITIALIZER;
static char **g_secrets;     /* owned copies; guarded by g_secret_lock */
static size_t *g_secret_len; /* strlen of each secret */
static size_t g_nsecrets;
static size_t g_secret_cap, g_secret_len_cap; /* each array grows on its own */

/* ---- configuration -------------------------------------------------------- */

void ik_log_configure(ik_log_format format, ik_log_level level)
{
    if (format != IK_LOG_JSON)
        format = IK_LOG_TEXT;
    if ((int)level < IK_LOG_ERROR)
        level = IK_LOG_ERROR;
    if (level > IK_LOG_TRACE)
        level = IK_LOG_TRACE;
    atomic_store(&g_format, (int)format);
    atomic_store(&g_level, (int)level);
}

ik_log_level ik_log_level_get(void)
{
    return (ik_log_level)atomic_load(&g_level);
}

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};
static const char *const level_text[] = {"ERROR", "WARN ", "INFO ", "DEBUG", "TRACE"};

int ik_log_level_parse(const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i <= IK_LOG_TRACE; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return IK_LOG_WARN;
    return -1;
}

int ik_log_format_parse(const char *s)
{
    if (!s)
        return -1;
    if (strcasecmp(s, "text") == 0)
        return IK_LOG_TEXT;
    if (strcasecmp(s, "json") == 0)
        return IK_LOG_JSON;
    return -1;
}

const char *ik_log_level_name(ik_log_level level)
{
    if ((int)level < IK_LOG_ERROR || level > IK_LOG_TRACE)
        return "unknown";
    return level_names[level];
}

/* ---- secrets and redaction ------------------------------------------------ */

int ik_log_add_secret(const char *secret)
{
    if (!secret)
        return 0;
    size_t len = strlen(secret);
    if (len < SECRET_MIN_LEN)
        return 0;
    int rc = 0;
    pthread_rwlock_wrlock(&g_secret_lock);
    for (size_t i = 0; i < g_nsecrets; i++)
        if (g_secret_len[i] == len && memcmp(g_secrets[i], secret, len) == 0)
            goto out; /* already known */
    char **s = ik_array_grow(g_secrets, &g_secret_cap, g_nsecrets + 1, sizeof *s);
    if (!s) {
        rc = IK_E_NOMEM;
        goto out;
    }
    g_secrets = s;
    size_t *l = ik_array_grow(g_secret_len, &g_secret_len_cap, g_nsecrets + 1, sizeof *l);
    if (!l) {
        rc = IK_E_NOMEM;
        goto out;
    }
    g_secret_len = l;
    char *copy = strdup(secret);
    if (!copy) {
        rc = IK_E_NOMEM;
        goto out;
    }
    g_secrets[g_nsecrets] = copy;
    g_secret_len[g_nsecrets] = len;
    g_nsecrets++;
out:
    pthread_rwlock_unlock(&g_secret_lock);
    return rc;
}

/*
 * Appends `in` to `out` with every occurrence of every secret replaced.
 * Occurrences are marked byte by byte first, so overlapping or nested secrets
 * ("abcdef" and "defghi" in "abcdefghi") are hidden entirely; each maximal run
 * of marked bytes becomes one "[REDACTED]". Caller holds g_secret_lock shared.
 * Returns false when the mask cannot be allocated: the caller must then not
 * print `in` at all.
 */
static bool redact_locked(const char *in, ik_buf *out)
{
    size_t n = strlen(in);
    if (g_nsecrets == 0 || n < SECRET_MIN_LEN) {
        ik_buf_add(out, in, n);
        return true;
    }
    unsigned char *mask = NULL;
    for (size_t s = 0; s < g_nsecrets; s++) {
        const char *hit = in;
        while ((hit = strstr(hit, g_secrets[s])) != NULL) {
            if (!mask) {
                mask = calloc(n, 1);
                if (!mask)
                    return false;
            }
            memset(mask + (hit - in), 1, g_secret_len[s]);
            hit++; /* also find occurrences overlapping this one */
        }
    }
    if (!mask) {
        ik_buf_add(out, in, n);
        return true;
    }
    size_t i = 0;
    while (i < n) {
        if (mask[i]) {
            ik_buf_adds(out, REDACTED);
            while (i < n && mask[i])
                i++;
        } else {
            size_t j = i;
            while (j < n && !mask[j])
                j++;
            ik_buf_add(out, in + i, j - i);
            i = j;
        }
    }
    free(mask);
    return true;
}

/* Redacts `in` into a new ik_buf. On allocation failure the result is a fixed
 * placeholder (never the unredacted text). */
static void redact_to(const char *in, ik_buf *out)
{
    pthread_rwlock_rdlock(&g_secret_lock);
    bool ok = redact_locked(in, out);
    pthread_rwlock_unlock(&g_secret_lock);
    if (!ok || out->oom) {
        free(out->p);
        *out = (ik_buf){0};
        ik_buf_adds(out, "[unprintable: out of memory]");
    }
}

void ik_log_redact(const char *in, char *out, size_t outlen)
{
    if (!out || outlen == 0)
        return;
    out[0] = '\0';
    if (!in)
        return;
    ik_buf b = {0};
    redact_to(in, &b);
    if (b.p) {
        size_t n = b.len < outlen - 1 ? b.len : outlen - 1;
        memcpy(out, b.p, n);
        out[n] = '\0';
    }
    free(b.p);
}

void ik_log_shutdown(void)
{
    pthread_rwlock_wrlock(&g_secret_lock);
    for (size_t i = 0; i < g_nsecrets; i++)
        free(g_secrets[i]);
    free(g_secrets);
    free(g_secret_len);
    g_secrets = NULL;
    g_secret_len = NULL;
    g_nsecrets = g_secret_cap = g_secret_len_cap = 0;
    pthread_rwlock_unlock(&g_secret_lock);
}

/* ---- escaping ------------------------------------------------------------- */

/* Appends s as the inside of a JSON string. */
static void json_escape(ik_buf *b, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        char tmp[8];
        switch (c) {
        case '"':
            ik_buf_adds(b, "\\\"");
            i++;
            continue;
        case '\\':
            ik_buf_adds(b, "\\\\");
            i++;
            continue;
        case '\n':
            ik_buf_adds(b, "\\n");
            i++;
            continue;
        case '\r':
            ik_buf_adds(b, "\\r");
            i++;
            continue;
        case '\t':
            ik_buf_adds(b, "\\t");
            i++;
            continue;
        case '\b':
            ik_buf_adds(b, "\\b");
            i++;
            continue;
        case '\f':
            ik_buf_adds(b, "\\f");
            i++;
            continue;
        default:
            break;
        }
        if (c < 0x20 || c == 0x7F) {
            snprintf(tmp, sizeof tmp, "\\u%04x", c);
            ik_buf_adds(b, tmp);
            i++;
            continue;
        }
        size_t len = ik_utf8_seq(s + i, n - i);
        if (len == 0) {
            ik_buf_adds(b, "\\ufffd");
            i++;
        } else {
            ik_buf_add(b, str + i, len);
            i += len;
        }
    }
}

/* Appends s for a text line: control characters escaped, the rest verbatim. */
static void text_escape(ik_buf *b, const char *str)
{
    for (const unsigned char *s = (const unsigned char *)str; *s; s++) {
        char tmp[8];
        if (*s == '\n') {
            ik_buf_adds(b, "\\n");
        } else if (*s == '\r') {
            ik_buf_adds(b, "\\r");
        } else if (*s == '\t') {
            ik_buf_adds(b, "\\t");
        } else if (*s < 0x20 || *s == 0x7F) {
            snprintf(tmp, sizeof tmp, "\\x%02x", *s);
            ik_buf_adds(b, tmp);
        } else {
            ik_buf_addc(b, (char)*s);
        }
    }
}

/* ---- output --------------------------------------------------------------- */

static void timestamp(char *out, size_t outlen)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000));
}

/* Writes the whole line to stderr: one write(2) unless the kernel takes only
 * part of it. Errors are ignored (there is nowhere left to report them). */
static void write_line(const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        len -= (size_t)w;
    }
}

/* Formats the message into a malloc'd string; NULL on failure. */
static char *format_message(const char *fmt, va_list ap)
{
    char small[512];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    char *msg = malloc((size_t)n + 1);
    if (!msg)
        return NULL;
    if ((size_t)n < sizeof small) {
        memcpy(msg, small, (size_t)n + 1);
    } else {
        va_copy(ap2, ap);
        vsnprintf(msg, (size_t)n + 1, fmt, ap2);
        va_end(ap2);
    }
    return msg;
}

void ik_vlogf(ik_log_level level, const char *pipeline, const char *instance, const char *fmt,
              va_list ap)
{
    if ((int)level > atomic_load(&g_level) || !fmt)
        return;
    if ((int)level < IK_LOG_ERROR)
        level = IK_LOG_ERROR;
    int format = atomic_load(&g_format);

    char *raw = format_message(fmt, ap);
    ik_buf msg = {0}, pipe = {0}, inst = {0}, line = {0};
    redact_to(raw ? raw : "[unprintable: format failed]", &msg);
    free(raw);
    if (pipeline)
        redact_to(pipeline, &pipe);
    if (instance)
        redact_to(instance, &inst);

    char ts[96];
    timestamp(ts, sizeof ts);

    if (format == IK_LOG_JSON) {
        ik_buf_adds(&line, "{\"ts\":\"");
        ik_buf_adds(&line, ts);
        ik_buf_adds(&line, "\",\"level\":\"");
        ik_buf_adds(&line, ik_log_level_name(level));
        ik_buf_adds(&line, "\"");
        if (pipeline) {
            ik_buf_adds(&line, ",\"pipeline\":\"");
            json_escape(&line, pipe.p ? pipe.p : "");
            ik_buf_adds(&line, "\"");
        }
        if (instance) {
            ik_buf_adds(&line, ",\"instance\":\"");
            json_escape(&line, inst.p ? inst.p : "");
            ik_buf_adds(&line, "\"");
        }
        ik_buf_adds(&line, ",\"msg\":\"");
        json_escape(&line, msg.p ? msg.p : "");
        ik_buf_adds(&line, "\"}\n");
    } else {
        ik_buf_adds(&line, ts);
        ik_buf_addc(&line, ' ');
        ik_buf_adds(&line, level > IK_LOG_TRACE ? "TRACE" : level_text[level]);
        ik_buf_addc(&line, ' ');
        if (pipeline || instance) {
            ik_buf_addc(&line, '[');
            if (pipeline)
                text_escape(&line, pipe.p ? pipe.p : "");
            if (pipeline && instance)
                ik_buf_addc(&line, '/');
            if (instance)
                text_escape(&line, inst.p ? inst.p : "");
            ik_buf_adds(&line, "] ");
        }
        text_escape(&line, msg.p ? msg.p : "");
        ik_buf_addc(&line, '\n');
    }

    if (!line.oom && line.p) {
        write_line(line.p, line.len);
    } else {
        static const char oom[] = "intake: log line dropped (out of memory)\n";
        write_line(oom, sizeof oom - 1);
    }
    free(msg.p);
    free(pipe.p);
    free(inst.p);
    free(line.p);
}

void ik_logf(ik_log_level level, const char *pipeline, const char *instance, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ik_vlogf(level, pipeline, instance, fmt, ap);
    va_end(ap);
}
