/*
 * stdout_sink.c: the `stdout` sink (intake-stdout.so). Writes one JSON line
 * per record to standard output or to a file opened for append, either the
 * whole record ({"id", "meta", "payload"}) or the payload alone.
 *
 * Speed: each write() call serializes its batch into one buffer (read-only
 * serializer, host->json_write) and appends it with one write(2) per
 * SO_FLUSH_AT bytes of whole lines (append.h), flushed once per batch. A
 * failed write makes every record of that call IK_RETRY with the errno text
 * (some may have been written: delivery is at-least-once).
 * Crash safety: a line torn by a crash, ours or another writer's, is ended
 * with a newline before the next append (append.h), with a warning naming
 * the file and the torn line's offset.
 * Threading: write() may run on several workers at once; a mutex keeps lines
 * whole and in batch order.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <intake/plugin.h>

#include "append.h"
#include "common/buf.h"

#define SO_FLUSH_AT (1024u * 1024u) /* write(2) when the buffer holds this much */

/* Metadata keys printed by the "record" format when set, before meta_keys. */
static const char *const so_default_meta[] = {"source",   "file",     "index",    "line",
                                              "priority", "batch_id", "attempts", "replay_of"};

typedef struct so_state {
    const ik_host *host;
    ik_instance *self;
    ap_file out; /* guarded by mu */
    char *path;
    int record_format; /* 1: {"id","meta","payload"}, 0: payload only */
    char **keys;       /* metadata keys to print (owned) */
    size_t nkeys, keys_cap;
    pthread_mutex_t mu;
    ik_buf buf; /* guarded by mu; buf.oom: an append failed */
    ik_metric *lines;
} so_state;

/* The options, bound by the engine (plugin.h). */
typedef struct so_config {
    const char *path;
    int format; /* index into so_formats */
    const char *meta_keys;
} so_config;

enum { SO_FORMAT_RECORD = 0, SO_FORMAT_PAYLOAD = 1 };
static const char *const so_formats[] = {"record", "payload", NULL};

static const ik_option so_options[] = {
    {"path", IK_OPT_STRING, "-", 0,
     "Where to write: \"-\" for standard output, otherwise a file opened for append.",
     IK_OPT_AT(so_config, path)},
    {"format", IK_OPT_CHOICE, "record", 0,
     "\"record\": one {\"id\", \"meta\", \"payload\"} object per line, meta holding source, file, "
     "index, line, priority, batch_id, attempts, replay_of and meta_keys when set; "
     "\"payload\": the payload alone.",
     IK_OPT_AT(so_config, format), .choices = so_formats},
    {"meta_keys", IK_OPT_STRING, "", 0,
     "Extra comma-separated metadata keys the \"record\" format prints when set.",
     IK_OPT_AT(so_config, meta_keys)},
    {0},
};

static int add_key(so_state *st, const char *k, size_t n)
{
    for (size_t i = 0; i < st->nkeys; i++)
        if (strlen(st->keys[i]) == n && memcmp(st->keys[i], k, n) == 0)
            return 0;
    char **grown = ik_array_grow(st->keys, &st->keys_cap, st->nkeys + 1, sizeof *grown);
    if (!grown)
        return IK_E_NOMEM;
    st->keys = grown;
    if (!(st->keys[st->nkeys] = strndup(k, n)))
        return IK_E_NOMEM;
    st->nkeys++;
    return 0;
}

static void so_destroy(void *state)
{
    so_state *st = state;
    if (!st)
        return;
    ap_close(&st->out);
    for (size_t i = 0; i < st->nkeys; i++)
        free(st->keys[i]);
    free(st->keys);
    free(st->path);
    ik_buf_free(&st->buf);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* Says in the log that a torn last line was ended (see append.h). */
static void warn_torn(so_state *st, const ap_torn *t)
{
    if (t->offset >= 0)
        st->host->log(st->self, IK_LOG_WARN,
                      "%s: the line at byte offset %lld (%lld bytes) was torn by an interrupted "
                      "write: ended it with a newline so the next record starts on its own line; "
                      "its record was not confirmed and is delivered again",
                      st->path, t->offset, t->len);
    else
        st->host->log(st->self, IK_LOG_WARN,
                      "%s: the last line was torn by an interrupted write: ended it with a "
                      "newline so the next record starts on its own line",
                      st->path);
}

/* Opens the output and ends a line a crash left torn at its end. */
static int open_output(so_state *st, const char *path)
{
    const ik_host *host = st->host;
    char err[512];
    int e = ap_open(&st->out, path, err, sizeof err);
    if (e) {
        host->log(st->self, IK_LOG_ERROR, "%s", err);
        return IK_E_IO;
    }
    st->path = st->out.own_fd ? strdup(path) : strdup("standard output");
    if (!st->path)
        return IK_E_NOMEM;
    if (st->out.appending && st->out.rfd < 0)
        host->log(st->self, IK_LOG_WARN,
                  "cannot read %s to look at its last line (%s): a line torn by another "
                  "process's crash would not be ended before the next record",
                  st->path, strerror(st->out.rerr));
    ap_torn torn;
    e = ap_append(&st->out, NULL, 0, &torn);
    if (e) {
        host->log(st->self, IK_LOG_ERROR, "cannot end the torn last line of %s: %s", st->path,
                  strerror(e));
        return IK_E_IO;
    }
    if (torn.found)
        warn_torn(st, &torn);
    return 0;
}

static int so_create(const ik_host *host, ik_instance *self, const void *config, void **state)
{
    const so_config *cfg = config;
    so_state *st = calloc(1, sizeof *st);
    if (!st)
        return IK_E_NOMEM;
    st->host = host;
    st->self = self;
    st->out = (ap_file){.fd = -1, .rfd = -1};
    pthread_mutex_init(&st->mu, NULL);
    const char *path = cfg->path;
    const char *extra = cfg->meta_keys;
    int rc = 0;
    st->record_format = cfg->format == SO_FORMAT_RECORD;
    for (size_t i = 0; i < sizeof so_default_meta / sizeof *so_default_meta && !rc; i++)
        rc = add_key(st, so_default_meta[i], strlen(so_default_meta[i]));
    for (const char *p = extra ? extra : ""; *p && !rc;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (b > a)
            rc = add_key(st, a, (size_t)(b - a));
        p = *end ? end + 1 : end;
    }
    if (rc)
        goto fail;
    rc = open_output(st, path);
    if (rc)
        goto fail;
    st->lines = host->counter(self, "lines_total", "JSON lines written");
    *state = st;
    return 0;
fail:
    so_destroy(st);
    return rc;
}

/* Appends the buffer (whole lines) to the output; returns 0 or errno.
 * Called with mu held. */
static int so_flush(so_state *st)
{
    ap_torn torn;
    int err = ap_append(&st->out, st->buf.p, st->buf.len, &torn);
    if (torn.found)
        warn_torn(st, &torn);
    st->buf.len = 0;
    return err;
}

/* Appends n raw bytes to the batch buffer; a failure is remembered in buf.oom. */
static void so_put(so_state *st, const char *s, size_t n)
{
    ik_buf_add(&st->buf, s, n);
}

/* Appends s as a JSON string, or a payload as JSON, with the host's read-only serializer. */
static void so_string(so_state *st, const char *s)
{
    st->host->json_write_string(s, strlen(s), &st->buf); /* failure: buf.oom */
}

static void so_value(so_state *st, const json_object *obj)
{
    st->host->json_write(obj, &st->buf); /* failure: buf.oom */
}

static void so_record(so_state *st, const ik_record *rec)
{
    const ik_host *host = st->host;
    if (!st->record_format) {
        so_value(st, host->record_payload(rec));
        so_put(st, "\n", 1);
        return;
    }
    const char *id = host->record_id(rec);
    so_put(st, "{\"id\":", 6);
    so_string(st, id ? id : "");
    so_put(st, ",\"meta\":{", 9);
    int first = 1;
    for (size_t i = 0; i < st->nkeys; i++) {
        const char *v = host->record_meta(rec, st->keys[i]);
        if (!v)
            continue;
        if (!first)
            so_put(st, ",", 1);
        first = 0;
        so_string(st, st->keys[i]);
        so_put(st, ":", 1);
        so_string(st, v);
    }
    so_put(st, "},\"payload\":", 12);
    so_value(st, host->record_payload(rec));
    so_put(st, "}\n", 2);
}

static int so_write(void *state, void *worker_state, ik_record *const *recs, size_t n,
                    ik_result *results)
{
    (void)worker_state;
    so_state *st = state;
    int err = 0;
    pthread_mutex_lock(&st->mu);
    st->buf.len = 0;
    for (size_t i = 0; i < n && !err; i++) {
        so_record(st, recs[i]);
        if (st->buf.oom) {
            st->buf.oom = 0;
            err = ENOMEM;
            break;
        }
        if (st->buf.len >= SO_FLUSH_AT)
            err = so_flush(st);
    }
    if (!err)
        err = so_flush(st);
    st->buf.len = 0;
    pthread_mutex_unlock(&st->mu);
    if (err) {
        for (size_t i = 0; i < n; i++) {
            ik_result_setf(&results[i], IK_RETRY, "cannot write to %s: %s", st->path,
                           strerror(err));
        }
        return 0;
    }
    if (st->lines)
        st->host->metric_add(st->lines, (double)n);
    return 0;
}

static const ik_plugin so_plugin = {
    IK_PLUGIN_HEAD,
    .name = "stdout",
    .version = "1.0.0",
    .description = "Writes one JSON line per record to standard output or a file.",
    .kind = IK_KIND_SINK,
    .options = so_options,
    .config_size = sizeof(so_config),
    .create = so_create,
    .destroy = so_destroy,
    .write = so_write,
};

IK_PLUGIN_EXPORT(so_plugin)
