/*
 * test_gen.c: the `test_gen` source, test-only (build/tests/plugins). Emits
 * `count` synthetic email records with ids "<prefix>-<n>" (n from 1), then
 * returns; appends every outcome it is told to `outcomes_path` so a test can
 * check that each record was settled exactly once:
 *   "<id> <delivered|dead_lettered|released> <stage> <attempts> <stored> <reason>"
 * ("-" for an empty stage or reason; newlines in reasons become spaces).
 * `abort_on_settle` names a record whose settle() calls abort(), for the
 * crash line of a source call.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <intake/plugin.h>

typedef struct tg_state {
    const ik_host *host;
    ik_instance *self;
    int64_t count;
    const char *prefix;
    char *body;
    size_t body_len;
    int *prios;
    size_t nprios;
    int out_fd;
    uint64_t delay_ms;
    int use_try;
    ik_metric *busy;
    const char *abort_on_settle; /* engine-owned or NULL */
} tg_state;

/* The options, bound by the engine (plugin.h). */
typedef struct tg_config {
    int64_t count;
    const char *prefix;
    uint64_t body_bytes;
    const char *priorities;
    const char *outcomes_path;
    uint64_t emit_delay_ms;
    int try_emit;
    const char *api_token;
    const char *abort_on_settle;
} tg_config;

/* One range of each kind the engine checks (int, size, duration). */
static const ik_option tg_options[] = {
    {"count", IK_OPT_INT, "100", 0, "How many records to emit.", IK_OPT_AT(tg_config, count),
     .min = "0"},
    {"prefix", IK_OPT_STRING, "rec", 0, "Record ids are <prefix>-<n>, n from 1.",
     IK_OPT_AT(tg_config, prefix)},
    {"body_bytes", IK_OPT_SIZE, "256", 0, "Size of each record's body text.",
     IK_OPT_AT(tg_config, body_bytes), .min = "0", .max = "16M"},
    {"priorities", IK_OPT_STRING, "0", 0,
     "Comma-separated integer priorities, assigned to records in turn.",
     IK_OPT_AT(tg_config, priorities)},
    {"outcomes_path", IK_OPT_STRING, NULL, 0,
     "File to append one line per settled record: <id> <outcome> <stage> <attempts> <stored> "
     "<reason>.",
     IK_OPT_AT(tg_config, outcomes_path)},
    {"emit_delay", IK_OPT_DURATION, "0", 0, "Pause between two records.",
     IK_OPT_AT(tg_config, emit_delay_ms), .max = "1h"},
    {"try_emit", IK_OPT_BOOL, "false", 0,
     "Use try_emit, counting IK_E_BUSY in busy_total and retrying after 1ms.",
     IK_OPT_AT(tg_config, try_emit)},
    {"api_token", IK_OPT_STRING, NULL, IK_OPT_SECRET,
     "A pretend credential that this plugin logs carelessly, to prove the engine redacts it.",
     IK_OPT_AT(tg_config, api_token)},
    {"abort_on_settle", IK_OPT_STRING, NULL, 0, "Id of a record whose settle() calls abort().",
     IK_OPT_AT(tg_config, abort_on_settle)},
    {0},
};

static void tg_destroy(void *state)
{
    tg_state *st = state;
    if (!st)
        return;
    if (st->out_fd >= 0)
        close(st->out_fd);
    free(st->body);
    free(st->prios);
    free(st);
}

static int tg_create(const ik_host *host, ik_instance *self, const void *config, void **state)
{
    const tg_config *cfg = config;
    tg_state *st = calloc(1, sizeof *st);
    if (!st)
        return IK_E_NOMEM;
    st->host = host;
    st->self = self;
    st->out_fd = -1;
    st->count = cfg->count;
    st->prefix = cfg->prefix ? cfg->prefix : "rec";
    st->body_len = (size_t)cfg->body_bytes;
    st->delay_ms = cfg->emit_delay_ms;
    st->use_try = cfg->try_emit;
    st->abort_on_settle =
        cfg->abort_on_settle && cfg->abort_on_settle[0] ? cfg->abort_on_settle : NULL;
    st->body = malloc(st->body_len + 1);
    if (!st->body)
        goto nomem;
    static const char words[] = "Hello, we would like a quote for 40 units of the blue model. ";
    for (size_t i = 0; i < st->body_len; i++)
        st->body[i] = words[i % (sizeof words - 1)];
    st->body[st->body_len] = '\0';
    const char *pr = cfg->priorities;
    for (const char *p = pr && pr[0] ? pr : "0"; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',')) {
            host->log(self, IK_LOG_ERROR, "option 'priorities': not a list of integers at \"%s\"",
                      p);
            tg_destroy(st);
            return IK_E_CONFIG;
        }
        int *grown = realloc(st->prios, (st->nprios + 1) * sizeof *grown);
        if (!grown)
            goto nomem;
        st->prios = grown;
        st->prios[st->nprios++] = (int)v;
        p = *end ? end + 1 : end;
    }
    const char *out = cfg->outcomes_path;
    if (out && out[0]) {
        st->out_fd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (st->out_fd < 0) {
            host->log(self, IK_LOG_ERROR, "cannot open outcomes_path %s: %s", out, strerror(errno));
            tg_destroy(st);
            return IK_E_IO;
        }
    }
    if (st->use_try)
        st->busy = host->counter(self, "busy_total", "try_emit calls answered IK_E_BUSY");
    const char *token = cfg->api_token;
    if (token) /* deliberately careless: the engine must redact this */
        host->log(self, IK_LOG_WARN, "connecting with token %s (Bearer %s)", token, token);
    *state = st;
    return 0;
nomem:
    host->log(self, IK_LOG_ERROR, "out of memory");
    tg_destroy(st);
    return IK_E_NOMEM;
}

static int tg_run(void *state)
{
    tg_state *st = state;
    const ik_host *host = st->host;
    for (int64_t n = 1; n <= st->count; n++) {
        if (host->stopping(st->self))
            break;
        char id[256];
        snprintf(id, sizeof id, "%s-%lld", st->prefix, (long long)n);
        json_object *p = json_object_new_object();
        if (!p)
            return IK_E_NOMEM;
        char email[64], subject[64];
        snprintf(email, sizeof email, "sender%lld@example.com", (long long)n);
        snprintf(subject, sizeof subject, "Quote request %lld", (long long)n);
        json_object_object_add(p, "id", json_object_new_string(id));
        json_object_object_add(p, "sender_email", json_object_new_string(email));
        json_object_object_add(p, "subject", json_object_new_string(subject));
        json_object_object_add(p, "body", json_object_new_string_len(st->body, (int)st->body_len));
        ik_record *rec = host->record_new(st->self, id, p);
        if (!rec)
            return IK_E_NOMEM;
        host->record_set_priority(rec, st->prios[(size_t)(n - 1) % st->nprios]);
        host->record_set_meta(rec, "source", "test_gen");
        int rc;
        if (st->use_try) {
            while ((rc = host->try_emit(st->self, rec)) == IK_E_BUSY) {
                if (st->busy)
                    host->metric_add(st->busy, 1);
                if (host->wait_ms(st->self, 1)) {
                    rc = IK_E_STOPPING;
                    break;
                }
            }
        } else {
            rc = host->emit(st->self, rec);
        }
        if (rc != 0) {
            host->record_free(rec);
            if (rc == IK_E_STOPPING)
                break;
            host->log(st->self, IK_LOG_ERROR, "emit %s: %s", id, host->strerror(rc));
            return rc;
        }
        if (st->delay_ms && n < st->count && host->wait_ms(st->self, st->delay_ms))
            break;
    }
    return 0;
}

/* One write(2) per line on an O_APPEND descriptor: lines never interleave. */
static void tg_settle(void *state, ik_record *rec, ik_outcome outcome, const ik_failure *failure)
{
    tg_state *st = state;
    if (st->abort_on_settle && !strcmp(st->host->record_id(rec), st->abort_on_settle))
        abort();
    if (st->out_fd < 0)
        return;
    const char *what = outcome == IK_DELIVERED       ? "delivered"
                       : outcome == IK_DEAD_LETTERED ? "dead_lettered"
                                                     : "released";
    const char *stage = failure && failure->stage && failure->stage[0] ? failure->stage : "-";
    const char *reason = failure && failure->reason && failure->reason[0] ? failure->reason : "-";
    char line[1024];
    int n = snprintf(line, sizeof line, "%s %s %s %u %d %s", st->host->record_id(rec), what, stage,
                     failure ? failure->attempts : 0, failure ? failure->stored : 0, reason);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    ssize_t w = write(st->out_fd, line, len);
    (void)w;
}

static const ik_plugin tg_plugin = {
    IK_PLUGIN_HEAD,
    .name = "test_gen",
    .version = "1.0.0",
    .description = "Test source: emits synthetic emails and logs every outcome.",
    .kind = IK_KIND_SOURCE,
    .options = tg_options,
    .config_size = sizeof(tg_config),
    .create = tg_create,
    .destroy = tg_destroy,
    .run = tg_run,
    .settle = tg_settle,
};

IK_PLUGIN_EXPORT(tg_plugin)
