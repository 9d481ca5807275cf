/*
 * test_state.c: the `test_state` source, test-only (build/tests/plugins). It
 * emits no records; it uses the state store through the host table, so the
 * integration tests can prove the SDK interface end to end:
 *   mode = "selftest"  get/put/cas/delete, a TTL, a ledger with a cursor and
 *                      both ends of a transaction, then keeps `mark` (the
 *                      instance name) under key "whoami"; logs "state selftest
 *                      ok" or the step that failed (and fails its run).
 *   mode = "writer"    `count` (0: until stopped) transactions, each putting
 *                      key "k<n>" (value_size bytes, starting "v<n>:") and
 *                      appending "e<n>" to ledger "log"; after each commit it
 *                      appends "<n>\n" to `progress`. A failed write is
 *                      logged with host->state_error(), waited on (`interval`)
 *                      and tried again: nothing is skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <intake/plugin.h>

typedef struct ts_config {
    int mode; /* 0 selftest, 1 writer */
    int64_t count;
    const char *progress;
    uint64_t interval_ms;
    uint64_t value_size;
} ts_config;

typedef struct ts_state {
    const ik_host *host;
    ik_instance *self;
    ts_config cfg;
    int progress_fd;
    char *value;
} ts_state;

static const char *const ts_modes[] = {"selftest", "writer", NULL};

static const ik_option ts_options[] = {
    {"mode", IK_OPT_CHOICE, "selftest", 0, "What to do with the store.", IK_OPT_AT(ts_config, mode),
     .choices = ts_modes},
    {"count", IK_OPT_INT, "100", 0, "Writer: transactions to commit (0: until stopped).",
     IK_OPT_AT(ts_config, count), .min = "0"},
    {"progress", IK_OPT_STRING, NULL, 0, "Writer: file to append each committed number to.",
     IK_OPT_AT(ts_config, progress)},
    {"interval", IK_OPT_DURATION, "0", 0, "Writer: pause between writes and after a failure.",
     IK_OPT_AT(ts_config, interval_ms)},
    {"value_size", IK_OPT_SIZE, "64", 0, "Writer: bytes per value.",
     IK_OPT_AT(ts_config, value_size), .min = "16", .max = "1M"},
    {0},
};

static void ts_destroy(void *state)
{
    ts_state *st = state;
    if (!st)
        return;
    if (st->progress_fd >= 0)
        close(st->progress_fd);
    free(st->value);
    free(st);
}

static int ts_create(const ik_host *host, ik_instance *self, const void *config, void **state)
{
    ts_state *st = calloc(1, sizeof *st);
    if (!st)
        return IK_E_NOMEM;
    st->host = host;
    st->self = self;
    st->cfg = *(const ts_config *)config;
    st->progress_fd = -1;
    st->value = malloc(st->cfg.value_size + 1);
    if (!st->value) {
        ts_destroy(st);
        return IK_E_NOMEM;
    }
    memset(st->value, 'x', st->cfg.value_size);
    if (st->cfg.progress) {
        st->progress_fd = open(st->cfg.progress, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (st->progress_fd < 0) {
            host->log(self, IK_LOG_ERROR, "cannot open %s: %s", st->cfg.progress, strerror(errno));
            ts_destroy(st);
            return IK_E_IO;
        }
    }
    *state = st;
    return 0;
}

/* ------------------------------------------------------------ selftest */

#define CHECK(cond, step)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            host->log(self, IK_LOG_ERROR, "state selftest failed at %s: %s", step,                 \
                      host->state_error(self));                                                    \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

static int count_entry(uint64_t seq, const void *data, size_t len, void *arg)
{
    (void)seq;
    (void)data;
    (void)len;
    (*(int *)arg)++;
    return 0;
}

/* A transaction that puts "t1" and then rolls back. */
static int txn_rollback(ik_state_txn *tx, void *arg)
{
    ts_state *st = arg;
    st->host->state_put(st->self, tx, "t1", "no", 2, 0, NULL);
    return IK_E_INVAL;
}

/* A transaction that puts "t2" and appends to ledger "tx", then commits. */
static int txn_commit(ik_state_txn *tx, void *arg)
{
    ts_state *st = arg;
    int rc = st->host->state_put(st->self, tx, "t2", "yes", 3, 0, NULL);
    if (rc == 0)
        rc = st->host->ledger_append(st->self, tx, "tx", "a", 1, NULL);
    return rc;
}

static int selftest(ts_state *st)
{
    const ik_host *host = st->host;
    ik_instance *self = st->self;
    ik_buf b = {0};
    uint64_t v1 = 0, v2 = 0, seq = 0, cursor = 0;
    size_t n = 0;
    int seen = 0;
    CHECK(host->state_put(self, NULL, "a", "one", 3, 0, &v1) == 0, "put");
    CHECK(host->state_get(self, NULL, "a", &b, &v2) == 0 && b.len == 3 && !strcmp(b.p, "one") &&
              v1 == v2,
          "get");
    CHECK(host->state_cas(self, NULL, "a", v1 + 1000, "two", 3, 0, NULL) == IK_E_CONFLICT,
          "cas with a stale version");
    CHECK(host->state_cas(self, NULL, "a", v1, "two", 3, 0, &v2) == 0 && v2 > v1, "cas");
    CHECK(host->state_cas(self, NULL, "new", 0, "n", 1, 0, NULL) == 0, "cas create");
    CHECK(host->state_cas(self, NULL, "new", 0, "n", 1, 0, NULL) == IK_E_CONFLICT,
          "cas create twice");
    CHECK(host->state_delete(self, NULL, "new", 0) == 0, "delete");
    CHECK(host->state_get(self, NULL, "new", &b, NULL) == IK_E_NOTFOUND, "get deleted");
    CHECK(host->ledger_append(self, NULL, "log", "x", 1, &seq) == 0 && seq >= 1, "append");
    CHECK(host->ledger_append(self, NULL, "log", "y", 1, &seq) == 0, "append");
    CHECK(host->ledger_read(self, NULL, "log", &cursor, 10, count_entry, &seen, &n) == 0 &&
              n >= 2 && cursor == seq,
          "ledger read");
    CHECK(host->state_txn(self, txn_rollback, st) == IK_E_INVAL, "rollback");
    CHECK(host->state_get(self, NULL, "t1", &b, NULL) == IK_E_NOTFOUND, "rolled back");
    CHECK(host->state_txn(self, txn_commit, st) == 0, "commit");
    CHECK(host->state_get(self, NULL, "t2", &b, NULL) == 0, "committed");
    const char *me = host->instance_name(self);
    CHECK(host->state_put(self, NULL, "whoami", me, strlen(me), 0, NULL) == 0, "whoami");
    host->log(self, IK_LOG_INFO, "state selftest ok");
    free(b.p);
    return 0;
fail:
    free(b.p);
    return IK_E_IO;
}

/* ------------------------------------------------------------ writer */

typedef struct one_write {
    ts_state *st;
    int64_t n;
} one_write;

static int write_one(ik_state_txn *tx, void *arg)
{
    one_write *w = arg;
    ts_state *st = w->st;
    char key[32], entry[32];
    snprintf(key, sizeof key, "k%lld", (long long)w->n);
    int len = snprintf(entry, sizeof entry, "e%lld", (long long)w->n);
    int head = snprintf(st->value, st->cfg.value_size, "v%lld:", (long long)w->n);
    st->value[head] = 'x'; /* keep the length; the NUL snprintf wrote goes */
    int rc = st->host->state_put(st->self, tx, key, st->value, st->cfg.value_size, 0, NULL);
    if (rc == 0)
        rc = st->host->ledger_append(st->self, tx, "log", entry, (size_t)len, NULL);
    return rc;
}

static int writer(ts_state *st)
{
    const ik_host *host = st->host;
    for (int64_t n = 1; st->cfg.count == 0 || n <= st->cfg.count;) {
        if (host->stopping(st->self))
            return 0;
        one_write w = {st, n};
        int rc = host->state_txn(st->self, write_one, &w);
        if (rc != 0) {
            host->log(st->self, IK_LOG_WARN, "write %lld failed (%s): %s; trying again",
                      (long long)n, host->strerror(rc), host->state_error(st->self));
            host->wait_ms(st->self, st->cfg.interval_ms ? st->cfg.interval_ms : 50);
            continue;
        }
        if (st->progress_fd >= 0) {
            char line[32];
            int len = snprintf(line, sizeof line, "%lld\n", (long long)n);
            if (write(st->progress_fd, line, (size_t)len) != len)
                host->log(st->self, IK_LOG_WARN, "progress file: %s", strerror(errno));
        }
        n++;
        if (st->cfg.interval_ms)
            host->wait_ms(st->self, st->cfg.interval_ms);
    }
    return 0;
}

static int ts_run(void *state)
{
    ts_state *st = state;
    return st->cfg.mode == 0 ? selftest(st) : writer(st);
}

static void ts_settle(void *state, ik_record *rec, ik_outcome outcome, const ik_failure *failure)
{
    (void)state;
    (void)rec;
    (void)outcome;
    (void)failure;
}

static const ik_plugin ts_plugin = {
    IK_PLUGIN_HEAD,
    .name = "test_state",
    .version = "1.0",
    .description = "Test source that uses the state store through the host table.",
    .kind = IK_KIND_SOURCE,
    .options = ts_options,
    .config_size = sizeof(ts_config),
    .create = ts_create,
    .destroy = ts_destroy,
    .run = ts_run,
    .settle = ts_settle,
};

IK_PLUGIN_EXPORT(ts_plugin)
