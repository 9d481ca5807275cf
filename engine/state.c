/*
 * state.c: the state store service (state.h): opens the backend (at once
 * when the file exists, so a corrupt one stops the start; otherwise on the
 * first write), checks what plugins pass, runs transactions, keeps each
 * thread's last error text, purges expired keys now and then, and remembers
 * which pipelines' writes fail for /health.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "log.h"
#include "state.h"

#define PURGE_EVERY_MS 60000u
#define PURGE_BATCH    1000u

/* A pipeline whose last state write failed, for /health. */
typedef struct failing {
    char *pipeline;
    char reason[IK_REASON_MAX];
    time_t since;
    uint64_t count;
} failing;

struct ik_state {
    const ik_state_backend *be;
    _Atomic(void *) b; /* NULL until opened */
    pthread_mutex_t open_mu;
    char *dir, *path;
    ik_state_durability durability;
    uint64_t (*clock)(void *arg);
    void *clock_arg;
    int read_only_existing;
    atomic_uint_fast64_t last_purge;

    pthread_mutex_t health_mu;
    failing *fails;
    size_t nfails, cap;
    atomic_size_t nfailing; /* nfails, for a look without the lock */
};

struct ik_state_txn {
    ik_state *st;
    void *btx;
    const char *ns;
};

static _Thread_local char last_error[IK_ERR_MAX];
static _Thread_local ik_state_txn *open_txn; /* the calling thread's running state_txn */

const char *ik_state_last_error(void)
{
    return last_error;
}

static uint64_t wall_ms(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t now_of(ik_state *st)
{
    return st->clock(st->clock_arg);
}

/* Records err's text as the thread's last error; returns its code. */
static int note(const ik_err *err)
{
    snprintf(last_error, sizeof last_error, "%s", err->msg);
    return err->code;
}

/* ------------------------------------------------------------ health */

/* The pipeline part of "<pipeline>/<instance>", into buf. */
static const char *pipeline_of(const char *ns, char *buf, size_t len)
{
    size_t n = strcspn(ns, "/");
    snprintf(buf, len, "%.*s", (int)n, ns);
    return buf;
}

static failing *find_failing(ik_state *st, const char *pipeline)
{
    for (size_t i = 0; i < st->nfails; i++)
        if (st->fails[i].pipeline && strcmp(st->fails[i].pipeline, pipeline) == 0)
            return &st->fails[i];
    return NULL;
}

/* A write of ns failed in the store itself (I/O, disk full, lock timeout):
 * logged when the pipeline's writes start failing, then counted. */
static void mark_failing(ik_state *st, const char *ns, const char *msg)
{
    char pl[256];
    pipeline_of(ns, pl, sizeof pl);
    pthread_mutex_lock(&st->health_mu);
    failing *f = find_failing(st, pl);
    int first = f == NULL;
    if (!f) {
        failing *g = ik_array_grow(st->fails, &st->cap, st->nfails + 1, sizeof *g);
        char *name = strdup(pl);
        if (!g || !name) {
            free(name);
            if (g)
                st->fails = g;
            pthread_mutex_unlock(&st->health_mu);
            return;
        }
        st->fails = g;
        f = &st->fails[st->nfails++];
        atomic_store(&st->nfailing, st->nfails);
        *f = (failing){.pipeline = name, .since = time(NULL)};
    }
    f->count++;
    snprintf(f->reason, sizeof f->reason, "%.*s", (int)sizeof f->reason - 1, msg);
    pthread_mutex_unlock(&st->health_mu);
    if (first)
        ik_logf(IK_LOG_ERROR, pl, NULL, "%s (the pipeline is unhealthy until a write succeeds)",
                msg);
}

/* A write of ns succeeded: the pipeline's store is healthy again. */
static void mark_ok(ik_state *st, const char *ns)
{
    char pl[256];
    pipeline_of(ns, pl, sizeof pl);
    pthread_mutex_lock(&st->health_mu);
    failing *f = st->nfails ? find_failing(st, pl) : NULL;
    uint64_t count = 0;
    if (f) {
        count = f->count;
        free(f->pipeline);
        *f = st->fails[--st->nfails];
        atomic_store(&st->nfailing, st->nfails);
    }
    pthread_mutex_unlock(&st->health_mu);
    if (f)
        ik_logf(IK_LOG_INFO, pl, NULL, "state store writes succeed again (after %llu failure(s))",
                (unsigned long long)count);
}

int ik_state_health(ik_state *st, const char *pipeline, json_object *reasons)
{
    if (!st)
        return 0;
    pthread_mutex_lock(&st->health_mu);
    failing *f = st->nfails ? find_failing(st, pipeline) : NULL;
    if (f) {
        char since[32] = "?", msg[2 * IK_REASON_MAX];
        struct tm tm;
        if (gmtime_r(&f->since, &tm))
            strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", &tm);
        snprintf(msg, sizeof msg, "state store writes failing since %s (%llu failure(s)): %s",
                 since, (unsigned long long)f->count, f->reason);
        json_object_array_add(reasons, json_object_new_string(msg));
    }
    pthread_mutex_unlock(&st->health_mu);
    return f != NULL;
}

/* Files a write's result: store failures make the pipeline unhealthy, a
 * success makes it healthy again; the caller's own mistakes (a conflict, a
 * bad key) say nothing about the store. Returns rc. */
static int after_write(ik_state *st, const ik_state_txn *tx, const char *ns, int rc,
                       const ik_err *err)
{
    if (rc == IK_E_IO || rc == IK_E_TIMEOUT || rc == IK_E_NOMEM)
        mark_failing(st, ns, err->msg);
    else if (rc == 0 && !tx && atomic_load(&st->nfailing)) /* in a transaction: only its commit */
        mark_ok(st, ns);
    return rc;
}

/* ------------------------------------------------------------ open */

/* mkdir -p for the store's folder (0700: it may hold tokens). */
static int make_dir(const char *dir, ik_err *err)
{
    char *p = strdup(dir);
    if (!p)
        return ik_err_set(err, IK_E_NOMEM, "out of memory");
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char saved = *c;
        *c = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            ik_err_set(err, IK_E_IO, "state store: cannot create folder %s: %s", p, strerror(e));
            free(p);
            return IK_E_IO;
        }
        *c = saved;
        if (!saved)
            break;
    }
    free(p);
    return 0;
}

const char *ik_state_dir(const ik_state *st)
{
    return st->dir;
}

int ik_state_make_dir(ik_state *st, ik_err *err)
{
    return make_dir(st->dir, err);
}

/* Opens the backend (open_mu held); create 0 fails on a missing file. */
static int open_backend(ik_state *st, int create, ik_err *err)
{
    if (create) {
        int rc = make_dir(st->dir, err);
        if (rc != 0)
            return rc;
        /* Created here first so it is 0600, not whatever the umask gives. */
        int fd = open(st->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            return ik_err_set(err, IK_E_IO, "state store %s cannot be created: %s", st->path,
                              strerror(errno));
        close(fd);
    }
    void *b = NULL;
    int rc = ik_state_sqlite_open(st->path, st->durability, create, &b, err);
    if (rc == 0)
        atomic_store(&st->b, b);
    return rc;
}

/* The backend, opened (created when missing) on first use. */
static int ready(ik_state *st, ik_err *err)
{
    if (atomic_load(&st->b))
        return 0;
    pthread_mutex_lock(&st->open_mu);
    int rc = 0;
    if (!st->b) {
        if (st->read_only_existing)
            rc = ik_err_set(err, IK_E_NOTFOUND, "no state store at %s", st->path);
        else
            rc = open_backend(st, 1, err);
    }
    pthread_mutex_unlock(&st->open_mu);
    return rc;
}

int ik_state_open(const ik_state_opts *opts, ik_state **out, ik_err *err)
{
    ik_state *st = calloc(1, sizeof *st);
    if (!st)
        return ik_err_set(err, IK_E_NOMEM, "out of memory");
    pthread_mutex_init(&st->open_mu, NULL);
    pthread_mutex_init(&st->health_mu, NULL);
    st->be = &ik_state_sqlite_backend;
    st->durability = opts->durability;
    st->clock = opts->clock ? opts->clock : wall_ms;
    st->clock_arg = opts->clock_arg;
    st->read_only_existing = opts->read_only_existing;
    st->dir = strdup(opts->dir);
    if (!st->dir || asprintf(&st->path, "%s/%s", opts->dir, IK_STATE_FILE) < 0) {
        st->path = NULL;
        ik_state_close(st);
        return ik_err_set(err, IK_E_NOMEM, "out of memory");
    }
    struct stat sb;
    int exists = stat(st->path, &sb) == 0;
    int rc = 0;
    if (exists || (opts->create_now && !opts->read_only_existing))
        rc = open_backend(st, !exists, err);
    else if (opts->read_only_existing)
        rc = ik_err_set(err, IK_E_NOTFOUND, "no state store at %s", st->path);
    if (rc != 0) {
        ik_state_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

void ik_state_close(ik_state *st)
{
    if (!st)
        return;
    if (st->b)
        st->be->close(st->b);
    for (size_t i = 0; i < st->nfails; i++)
        free(st->fails[i].pipeline);
    free(st->fails);
    pthread_mutex_destroy(&st->open_mu);
    pthread_mutex_destroy(&st->health_mu);
    free(st->dir);
    free(st->path);
    free(st);
}

const char *ik_state_path(const ik_state *st)
{
    return st->path;
}

/* ------------------------------------------------------------ checks */

/* Checks a key or ledger name and the transaction rules; 0 or a code with
 * the thread's message set. */
static int check_call(ik_state *st, ik_state_txn *tx, const char *ns, const char *key,
                      const char *what)
{
    ik_err err = {0};
    if (!st || !ns)
        return note(&(ik_err){IK_E_STATE, "state store: not available here"});
    if (!key || !*key)
        ik_err_set(&err, IK_E_INVAL, "state store: %s is empty or NULL", what);
    else if (strlen(key) > IK_STATE_KEY_MAX)
        ik_err_set(&err, IK_E_INVAL, "state store: %s '%.40s...' is longer than %u bytes", what,
                   key, IK_STATE_KEY_MAX);
    else if (tx && (tx != open_txn || tx->st != st || strcmp(tx->ns, ns) != 0))
        ik_err_set(&err, IK_E_STATE,
                   "state store: a transaction handle used outside its state_txn callback");
    else if (!tx && open_txn)
        ik_err_set(&err, IK_E_STATE,
                   "state store: call with a NULL transaction inside a state_txn callback "
                   "(pass the callback's tx)");
    return err.code ? note(&err) : 0;
}

static int check_size(size_t len, const char *key)
{
    if (len <= IK_STATE_VALUE_MAX)
        return 0;
    ik_err err = {0};
    ik_err_set(&err, IK_E_TOOBIG, "state store: value for '%s' has %zu bytes, more than %u", key,
               len, IK_STATE_VALUE_MAX);
    return note(&err);
}

/* Deletes expired keys at most once per PURGE_EVERY_MS, on a write outside
 * a transaction (so no thread of its own is needed). */
static void maybe_purge(ik_state *st, uint64_t now)
{
    uint_fast64_t last = atomic_load(&st->last_purge);
    if (now - last < PURGE_EVERY_MS && last != 0)
        return;
    if (!atomic_compare_exchange_strong(&st->last_purge, &last, now))
        return;
    ik_err err = {0};
    size_t n = 0;
    if (st->be->purge(st->b, now, PURGE_BATCH, &n, &err) != 0)
        ik_logf(IK_LOG_WARN, NULL, NULL, "%s", err.msg);
}

/* ------------------------------------------------------------ operations */

int ik_state_get(ik_state *st, ik_state_txn *tx, const char *ns, const char *key, ik_buf *value,
                 uint64_t *version)
{
    int rc = check_call(st, tx, ns, key, "key");
    if (rc != 0)
        return rc;
    if (!value)
        return note(&(ik_err){IK_E_INVAL, "state store: get without a buffer"});
    ik_err err = {0};
    if ((rc = ready(st, &err)) == 0)
        rc = st->be->get(st->b, tx ? tx->btx : NULL, ns, key, now_of(st), value, version, &err);
    return rc ? note(&err) : 0;
}

int ik_state_write(ik_state *st, ik_state_txn *tx, const char *ns, const char *key,
                   ik_state_write_mode mode, uint64_t expected, const void *value, size_t len,
                   uint64_t ttl_ms, uint64_t *version)
{
    int rc = check_call(st, tx, ns, key, "key");
    if (rc == 0)
        rc = check_size(len, key);
    if (rc == 0 && !value && len)
        rc = note(&(ik_err){IK_E_INVAL, "state store: NULL value with a length"});
    if (rc != 0)
        return rc;
    ik_err err = {0};
    uint64_t now = now_of(st);
    uint64_t expires = ttl_ms ? (now + ttl_ms < now ? UINT64_MAX / 2 : now + ttl_ms) : 0;
    if ((rc = ready(st, &err)) == 0)
        rc = st->be->write(st->b, tx ? tx->btx : NULL, ns, key, mode, expected, value, len, expires,
                           now, version, &err);
    after_write(st, tx, ns, rc, &err);
    if (rc == 0 && !tx)
        maybe_purge(st, now);
    return rc ? note(&err) : 0;
}

int ik_state_delete(ik_state *st, ik_state_txn *tx, const char *ns, const char *key,
                    uint64_t expected)
{
    int rc = check_call(st, tx, ns, key, "key");
    if (rc != 0)
        return rc;
    ik_err err = {0};
    if ((rc = ready(st, &err)) == 0)
        rc = st->be->del(st->b, tx ? tx->btx : NULL, ns, key, expected, now_of(st), &err);
    after_write(st, tx, ns, rc, &err);
    return rc ? note(&err) : 0;
}

int ik_state_append(ik_state *st, ik_state_txn *tx, const char *ns, const char *name,
                    const void *entry, size_t len, uint64_t *seq)
{
    int rc = check_call(st, tx, ns, name, "ledger name");
    if (rc == 0)
        rc = check_size(len, name);
    if (rc == 0 && !entry && len)
        rc = note(&(ik_err){IK_E_INVAL, "state store: NULL entry with a length"});
    if (rc != 0)
        return rc;
    ik_err err = {0};
    if ((rc = ready(st, &err)) == 0)
        rc =
            st->be->append(st->b, tx ? tx->btx : NULL, ns, name, entry, len, now_of(st), seq, &err);
    after_write(st, tx, ns, rc, &err);
    return rc ? note(&err) : 0;
}

int ik_state_read(ik_state *st, ik_state_txn *tx, const char *ns, const char *name,
                  uint64_t *cursor, size_t max, ik_state_ledger_fn fn, void *arg, size_t *nread)
{
    if (nread)
        *nread = 0;
    int rc = check_call(st, tx, ns, name, "ledger name");
    if (rc != 0)
        return rc;
    if (!cursor || !fn)
        return note(
            &(ik_err){IK_E_INVAL, "state store: ledger_read needs a cursor and a callback"});
    if (max == 0)
        return 0;
    ik_err err = {0};
    if ((rc = ready(st, &err)) == 0)
        rc = st->be->read(st->b, tx ? tx->btx : NULL, ns, name, cursor, max, fn, arg, nread, &err);
    return rc ? note(&err) : 0;
}

int ik_state_trim(ik_state *st, ik_state_txn *tx, const char *ns, const char *name, uint64_t upto)
{
    int rc = check_call(st, tx, ns, name, "ledger name");
    if (rc != 0)
        return rc;
    ik_err err = {0};
    if ((rc = ready(st, &err)) == 0)
        rc = st->be->trim(st->b, tx ? tx->btx : NULL, ns, name, upto, &err);
    after_write(st, tx, ns, rc, &err);
    return rc ? note(&err) : 0;
}

/* Runs fn inside one backend transaction on ns; see <intake/state.h>. */
int ik_state_txn_run(ik_state *st, const char *ns, ik_state_txn_fn fn, void *arg)
{
    if (!st || !ns || !fn)
        return note(&(ik_err){IK_E_INVAL, "state store: state_txn needs a callback"});
    if (open_txn)
        return note(&(ik_err){IK_E_STATE, "state store: state_txn called inside a state_txn "
                                          "callback (transactions do not nest)"});
    ik_err err = {0};
    int rc = ready(st, &err);
    ik_state_txn tx = {.st = st, .ns = ns};
    if (rc == 0)
        rc = st->be->begin(st->b, &tx.btx, &err);
    if (rc != 0) {
        after_write(st, NULL, ns, rc, &err);
        return note(&err);
    }
    open_txn = &tx;
    int frc = fn(&tx, arg);
    open_txn = NULL;
    /* fn's own message (from the call that failed inside it) stays. */
    char keep[IK_ERR_MAX];
    snprintf(keep, sizeof keep, "%s", last_error);
    rc = st->be->end(st->b, tx.btx, frc == 0, &err);
    if (rc != 0)
        ik_err_prefix(&err, "namespace '%s': ", ns);
    if (frc != 0) {
        snprintf(last_error, sizeof last_error, "%s", keep[0] ? keep : "transaction rolled back");
        return frc < 0 ? frc : IK_E_INVAL;
    }
    after_write(st, NULL, ns, rc, &err);
    return rc ? note(&err) : 0;
}

int ik_state_list_ns(ik_state *st, void (*fn)(void *arg, const ik_state_ns_info *ns), void *arg)
{
    ik_err err = {0};
    int rc = ready(st, &err);
    if (rc == 0)
        rc = st->be->list_ns(st->b, now_of(st), fn, arg, &err);
    return rc ? note(&err) : 0;
}

int ik_state_list_keys(ik_state *st, const char *ns,
                       void (*fn)(void *arg, const ik_state_key_info *k), void *arg)
{
    ik_err err = {0};
    int rc = ready(st, &err);
    if (rc == 0)
        rc = st->be->list_keys(st->b, ns, now_of(st), fn, arg, &err);
    return rc ? note(&err) : 0;
}

int ik_state_list_ledgers(ik_state *st, const char *ns,
                          void (*fn)(void *arg, const ik_state_ledger_info *l), void *arg)
{
    ik_err err = {0};
    int rc = ready(st, &err);
    if (rc == 0)
        rc = st->be->list_ledgers(st->b, ns, fn, arg, &err);
    return rc ? note(&err) : 0;
}

int ik_state_purge(ik_state *st)
{
    ik_err err = {0};
    int rc = ready(st, &err);
    size_t n = PURGE_BATCH;
    while (rc == 0 && n == PURGE_BATCH)
        rc = st->be->purge(st->b, now_of(st), PURGE_BATCH, &n, &err);
    return rc ? note(&err) : 0;
}
