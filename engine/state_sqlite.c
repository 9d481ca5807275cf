/*
 * state_sqlite.c: the state store's SQLite backend (ik_state_backend in
 * state.h): one database file, WAL journal, a busy timeout for other
 * processes on the same file (a second engine, `intake state`), and one
 * connection per store guarded by a mutex. One connection rather than one per
 * thread: SQLite lets one writer in at a time whatever the connections, the
 * store's records are small. tools/bench/state measured both (2 shared
 * cores, 4 threads, WAL): one connection per thread read 2 to 2.6 times as
 * fast and, with durability normal, wrote up to 1.7 times as fast; with
 * durability full its writers queued on SQLite's busy handler, wrote slower
 * than the mutex and some gave up after the busy timeout (a failed write),
 * while the mutex queues them without failing. A mutex also makes
 * transactions (state_txn) simple: the thread that began one holds the lock
 * until it ends. Should reads become hot, a
 * read-only connection per thread beside this one is the way on.
 *
 * Tables: kv (ns, key) -> value, version, expires_at, updated_at; ledger
 * (ns, name, seq) -> entry; ledger_head (ns, name) -> last seq handed out, so
 * a trim never lets a number come back.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/buf.h"
#include "state.h"

#define BUSY_TIMEOUT_MS 5000

enum stmt_id {
    S_GET,
    S_PUT,
    S_CREATE,
    S_UPDATE,
    S_DELETE,
    S_HEAD,
    S_APPEND,
    S_READ,
    S_TRIM,
    S_PURGE,
    S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_GET] = "SELECT value, version FROM kv WHERE ns=?1 AND key=?2 AND (expires_at=0 OR "
              "expires_at>?3)",
    [S_PUT] =
        "INSERT INTO kv(ns,key,value,version,expires_at,updated_at) VALUES(?1,?2,?3,?6,?4,?5) "
        "ON CONFLICT(ns,key) DO UPDATE SET value=excluded.value, version=kv.version+1, "
        "expires_at=excluded.expires_at, updated_at=excluded.updated_at RETURNING version",
    /* cas over "absent": only an expired row may be overwritten */
    [S_CREATE] = "INSERT INTO kv(ns,key,value,version,expires_at,updated_at) "
                 "VALUES(?1,?2,?3,?6,?4,?5) ON CONFLICT(ns,key) DO UPDATE SET "
                 "value=excluded.value, version=kv.version+1, expires_at=excluded.expires_at, "
                 "updated_at=excluded.updated_at WHERE kv.expires_at>0 AND kv.expires_at<=?5 "
                 "RETURNING version",
    [S_UPDATE] = "UPDATE kv SET value=?3, version=version+1, expires_at=?4, updated_at=?5 WHERE "
                 "ns=?1 AND key=?2 AND version=?6 AND (expires_at=0 OR expires_at>?5) RETURNING "
                 "version",
    [S_DELETE] = "DELETE FROM kv WHERE ns=?1 AND key=?2 AND (expires_at=0 OR expires_at>?3) AND "
                 "(?4=0 OR version=?4)",
    [S_HEAD] = "INSERT INTO ledger_head(ns,name,last) VALUES(?1,?2,1) ON CONFLICT(ns,name) DO "
               "UPDATE SET last=last+1 RETURNING last",
    [S_APPEND] = "INSERT INTO ledger(ns,name,seq,entry,at) VALUES(?1,?2,?3,?4,?5)",
    [S_READ] = "SELECT seq, entry FROM ledger WHERE ns=?1 AND name=?2 AND seq>?3 ORDER BY seq "
               "LIMIT ?4",
    [S_TRIM] = "DELETE FROM ledger WHERE ns=?1 AND name=?2 AND seq<=?3",
    [S_PURGE] = "DELETE FROM kv WHERE (ns,key) IN (SELECT ns,key FROM kv WHERE expires_at>0 AND "
                "expires_at<=?1 LIMIT ?2)",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS kv(ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, "
    "version INTEGER NOT NULL, expires_at INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT "
    "NULL, PRIMARY KEY(ns,key)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS kv_expiry ON kv(expires_at) WHERE expires_at>0;"
    "CREATE TABLE IF NOT EXISTS ledger(ns TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT "
    "NULL, entry BLOB NOT NULL, at INTEGER NOT NULL, PRIMARY KEY(ns,name,seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS ledger_head(ns TEXT NOT NULL, name TEXT NOT NULL, last INTEGER "
    "NOT NULL, PRIMARY KEY(ns,name)) WITHOUT ROWID;";

typedef struct sq {
    sqlite3 *db;
    char *path;
    pthread_mutex_t mu;
    sqlite3_stmt *stmt[S_COUNT];
    uint64_t last_new_version; /* mu held */
} sq;

/* ------------------------------------------------------------ errors */

/* Maps a SQLite result onto an IK_E_* code. */
static int code_of(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return IK_E_NOMEM;
    case SQLITE_TOOBIG:
        return IK_E_TOOBIG;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return IK_E_TIMEOUT;
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
        return IK_E_INVAL;
    default:
        return IK_E_IO;
    }
}

/* A word on what the failure means for a person, beside SQLite's text. */
static const char *hint_of(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_FULL:
        return "disk full";
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
        return "cannot write the file or its folder";
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return "corrupt file";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return "another process held the store's lock too long";
    case SQLITE_IOERR:
        return "I/O error";
    default:
        return "database error";
    }
}

/* Fills err for a failed `what` on ns/key; returns the IK_E_* code. */
static int fail(sq *s, int rc, ik_err *err, const char *what, const char *ns, const char *key)
{
    if (!ns)
        return ik_err_set(err, code_of(rc), "state store %s: %s failed: %s (%s)", s->path, what,
                          hint_of(rc), sqlite3_errmsg(s->db));
    return ik_err_set(err, code_of(rc), "state store %s: %s '%s' in namespace '%s' failed: %s (%s)",
                      s->path, what, key ? key : "", ns, hint_of(rc), sqlite3_errmsg(s->db));
}

/* ------------------------------------------------------------ statements */

/* The cached statement id, reset and with ns, key bound as ?1, ?2. NULL
 * with err set when it cannot be prepared (a corrupt schema, out of memory). */
static sqlite3_stmt *stmt(sq *s, enum stmt_id id, const char *ns, const char *key, ik_err *err)
{
    if (!s->stmt[id]) {
        int rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->stmt[id], NULL);
        if (rc != SQLITE_OK) {
            fail(s, rc, err, "preparing a statement for", ns, key);
            return NULL;
        }
    }
    sqlite3_stmt *st = s->stmt[id];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (ns)
        sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
    if (key)
        sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    return st;
}

/* Locks unless the caller is inside its own transaction (tx set). */
static void lock(sq *s, void *tx)
{
    if (!tx)
        pthread_mutex_lock(&s->mu);
}

static void unlock(sq *s, void *tx)
{
    if (!tx)
        pthread_mutex_unlock(&s->mu);
}

static int exec(sq *s, const char *sql, ik_err *err, const char *what)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : fail(s, rc, err, what, NULL, NULL);
}

/* ------------------------------------------------------------ key-value */

static int sq_get(void *b, void *tx, const char *ns, const char *key, uint64_t now, ik_buf *value,
                  uint64_t *version, ik_err *err)
{
    sq *s = b;
    lock(s, tx);
    int out = 0;
    sqlite3_stmt *st = stmt(s, S_GET, ns, key, err);
    if (!st) {
        out = err->code;
        goto done;
    }
    sqlite3_bind_int64(st, 3, (sqlite3_int64)now);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        out = ik_err_set(err, IK_E_NOTFOUND, "state store: no key '%s' in namespace '%s'", key, ns);
    } else if (rc != SQLITE_ROW) {
        out = fail(s, rc, err, "get", ns, key);
    } else {
        const void *p = sqlite3_column_blob(st, 0);
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        value->len = 0;
        ik_buf_add(value, p ? p : "", n);
        if (value->oom)
            out = ik_err_set(err, IK_E_NOMEM, "state store: out of memory reading key '%s'", key);
        if (version)
            *version = (uint64_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
done:
    unlock(s, tx);
    return out;
}

/* The version of a key created now: clock-based, so a key deleted and made
 * again does not repeat a version an old reader may still hold. mu held. */
static uint64_t new_version(sq *s, uint64_t now)
{
    uint64_t v = now * 1000u;
    if (v <= s->last_new_version)
        v = s->last_new_version + 1;
    s->last_new_version = v;
    return v;
}

static int sq_write(void *b, void *tx, const char *ns, const char *key, ik_state_write_mode mode,
                    uint64_t expected, const void *value, size_t len, uint64_t expires_at,
                    uint64_t now, uint64_t *version, ik_err *err)
{
    sq *s = b;
    enum stmt_id id = mode == IK_STATE_PUT ? S_PUT : expected == 0 ? S_CREATE : S_UPDATE;
    lock(s, tx);
    int out = 0;
    sqlite3_stmt *st = stmt(s, id, ns, key, err);
    if (!st) {
        out = err->code;
        goto done;
    }
    sqlite3_bind_blob(st, 3, len ? value : "", (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)expires_at);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)now);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)(id == S_UPDATE ? expected : new_version(s, now)));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (version)
            *version = (uint64_t)sqlite3_column_int64(st, 0);
        rc = sqlite3_step(st);
    } else if (rc == SQLITE_DONE) {
        out = ik_err_set(err, IK_E_CONFLICT,
                         "state store: key '%s' in namespace '%s' is not at version %llu "
                         "(compare-and-set refused)",
                         key, ns, (unsigned long long)expected);
    }
    if (out == 0 && rc != SQLITE_DONE)
        out = fail(s, rc, err, mode == IK_STATE_PUT ? "put" : "compare-and-set", ns, key);
    sqlite3_reset(st);
done:
    unlock(s, tx);
    return out;
}

/* Nothing was deleted: absent, or (with expected) another version? */
static int delete_missed(sq *s, void *tx, const char *ns, const char *key, uint64_t expected,
                         uint64_t now, ik_err *err)
{
    if (expected == 0)
        return ik_err_set(err, IK_E_NOTFOUND, "state store: no key '%s' in namespace '%s'", key,
                          ns);
    ik_buf tmp = {0};
    uint64_t v = 0;
    int rc = sq_get(s, tx ? tx : s, ns, key, now, &tmp, &v, err);
    free(tmp.p);
    if (rc != 0)
        return rc;
    return ik_err_set(err, IK_E_CONFLICT,
                      "state store: key '%s' in namespace '%s' is at version %llu, not %llu "
                      "(delete refused)",
                      key, ns, (unsigned long long)v, (unsigned long long)expected);
}

static int sq_del(void *b, void *tx, const char *ns, const char *key, uint64_t expected,
                  uint64_t now, ik_err *err)
{
    sq *s = b;
    lock(s, tx);
    int out = 0;
    sqlite3_stmt *st = stmt(s, S_DELETE, ns, key, err);
    if (!st) {
        out = err->code;
        goto done;
    }
    sqlite3_bind_int64(st, 3, (sqlite3_int64)now);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)expected);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        out = fail(s, rc, err, "delete", ns, key);
    else if (sqlite3_changes(s->db) == 0)
        out = delete_missed(s, tx, ns, key, expected, now, err);
done:
    unlock(s, tx);
    return out;
}

/* ------------------------------------------------------------ ledgers */

/* The two statements of an append (mu held, inside a transaction). */
static int append_steps(sq *s, const char *ns, const char *name, const void *entry, size_t len,
                        uint64_t now, uint64_t *seq, ik_err *err)
{
    sqlite3_stmt *st = stmt(s, S_HEAD, ns, name, err);
    if (!st)
        return err->code;
    int rc = sqlite3_step(st);
    sqlite3_int64 n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (rc == SQLITE_ROW)
        rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return fail(s, rc, err, "append to ledger", ns, name);
    if (!(st = stmt(s, S_APPEND, ns, name, err)))
        return err->code;
    sqlite3_bind_int64(st, 3, n);
    sqlite3_bind_blob(st, 4, len ? entry : "", (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)now);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return fail(s, rc, err, "append to ledger", ns, name);
    if (seq)
        *seq = (uint64_t)n;
    return 0;
}

static int sq_append(void *b, void *tx, const char *ns, const char *name, const void *entry,
                     size_t len, uint64_t now, uint64_t *seq, ik_err *err)
{
    sq *s = b;
    lock(s, tx);
    int out = tx ? 0 : exec(s, "BEGIN IMMEDIATE", err, "begin an append to ledger");
    if (out == 0)
        out = append_steps(s, ns, name, entry, len, now, seq, err);
    if (!tx && out == 0)
        out = exec(s, "COMMIT", err, "commit an append to ledger");
    if (!tx && out != 0 && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    unlock(s, tx);
    return out;
}

static int sq_read(void *b, void *tx, const char *ns, const char *name, uint64_t *cursor,
                   size_t max, ik_state_ledger_fn fn, void *arg, size_t *nread, ik_err *err)
{
    sq *s = b;
    size_t n = 0;
    lock(s, tx);
    int out = 0;
    sqlite3_stmt *st = stmt(s, S_READ, ns, name, err);
    if (!st) {
        out = err->code;
        goto done;
    }
    sqlite3_bind_int64(st, 3, (sqlite3_int64)*cursor);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)(max > INT64_MAX ? INT64_MAX : max));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);
        /* column_text, not _blob: only text is NUL-terminated by SQLite,
         * and the SDK promises a NUL after each entry */
        const void *p = sqlite3_column_text(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        *cursor = seq;
        n++;
        if (fn(seq, p ? p : "", len, arg) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE)
        out = fail(s, rc, err, "read ledger", ns, name);
    sqlite3_reset(st);
done:
    unlock(s, tx);
    if (nread)
        *nread = n;
    return out;
}

static int sq_trim(void *b, void *tx, const char *ns, const char *name, uint64_t upto, ik_err *err)
{
    sq *s = b;
    lock(s, tx);
    int out = 0;
    sqlite3_stmt *st = stmt(s, S_TRIM, ns, name, err);
    if (!st) {
        out = err->code;
        goto done;
    }
    sqlite3_bind_int64(st, 3, (sqlite3_int64)upto);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        out = fail(s, rc, err, "trim ledger", ns, name);
done:
    unlock(s, tx);
    return out;
}

/* ------------------------------------------------------------ transactions */

static int sq_begin(void *b, void **tx, ik_err *err)
{
    sq *s = b;
    pthread_mutex_lock(&s->mu);
    int rc = exec(s, "BEGIN IMMEDIATE", err, "begin a transaction");
    if (rc != 0) {
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    *tx = s;
    return 0;
}

static int sq_end(void *b, void *tx, int commit, ik_err *err)
{
    sq *s = b;
    (void)tx;
    int rc = commit ? exec(s, "COMMIT", err, "commit a transaction") : 0;
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ------------------------------------------------------------ upkeep, CLI */

static int sq_purge(void *b, uint64_t now, size_t max, size_t *purged, ik_err *err)
{
    sq *s = b;
    lock(s, NULL);
    int out = 0;
    sqlite3_stmt *st = stmt(s, S_PURGE, NULL, NULL, err);
    if (!st) {
        out = err->code;
        goto done;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)(max > INT64_MAX ? INT64_MAX : max));
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        out = fail(s, rc, err, "purge expired keys", NULL, NULL);
    else if (purged)
        *purged = (size_t)sqlite3_changes(s->db);
done:
    unlock(s, NULL);
    return out;
}

static int sq_list_ns(void *b, uint64_t now, void (*fn)(void *arg, const ik_state_ns_info *ns),
                      void *arg, ik_err *err)
{
    sq *s = b;
    static const char sql[] =
        "SELECT ns, SUM(k), SUM(e) FROM (SELECT ns, COUNT(*) AS k, 0 AS e FROM kv WHERE "
        "expires_at=0 OR expires_at>?1 GROUP BY ns UNION ALL SELECT ns, 0, COUNT(*) FROM ledger "
        "GROUP BY ns) GROUP BY ns ORDER BY ns";
    sqlite3_stmt *st = NULL;
    lock(s, NULL);
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            ik_state_ns_info info = {.ns = (const char *)sqlite3_column_text(st, 0),
                                     .keys = (uint64_t)sqlite3_column_int64(st, 1),
                                     .entries = (uint64_t)sqlite3_column_int64(st, 2)};
            fn(arg, &info);
        }
    }
    int out = rc == SQLITE_DONE ? 0 : fail(s, rc, err, "list namespaces", NULL, NULL);
    sqlite3_finalize(st);
    unlock(s, NULL);
    return out;
}

static int sq_list_keys(void *b, const char *ns, uint64_t now,
                        void (*fn)(void *arg, const ik_state_key_info *k), void *arg, ik_err *err)
{
    sq *s = b;
    static const char sql[] =
        "SELECT key, version, length(value), expires_at, updated_at FROM kv WHERE ns=?1 AND "
        "(expires_at=0 OR expires_at>?2) ORDER BY key";
    sqlite3_stmt *st = NULL;
    lock(s, NULL);
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            ik_state_key_info k = {.key = (const char *)sqlite3_column_text(st, 0),
                                   .version = (uint64_t)sqlite3_column_int64(st, 1),
                                   .size = (size_t)sqlite3_column_int64(st, 2),
                                   .expires_at_ms = (uint64_t)sqlite3_column_int64(st, 3),
                                   .updated_at_ms = (uint64_t)sqlite3_column_int64(st, 4)};
            fn(arg, &k);
        }
    }
    int out = rc == SQLITE_DONE ? 0 : fail(s, rc, err, "list keys", ns, NULL);
    sqlite3_finalize(st);
    unlock(s, NULL);
    return out;
}

static int sq_list_ledgers(void *b, const char *ns,
                           void (*fn)(void *arg, const ik_state_ledger_info *l), void *arg,
                           ik_err *err)
{
    sq *s = b;
    static const char sql[] = "SELECT name, COUNT(*), MIN(seq), MAX(seq) FROM ledger WHERE ns=?1 "
                              "GROUP BY name ORDER BY name";
    sqlite3_stmt *st = NULL;
    lock(s, NULL);
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            ik_state_ledger_info l = {.name = (const char *)sqlite3_column_text(st, 0),
                                      .entries = (uint64_t)sqlite3_column_int64(st, 1),
                                      .first = (uint64_t)sqlite3_column_int64(st, 2),
                                      .last = (uint64_t)sqlite3_column_int64(st, 3)};
            fn(arg, &l);
        }
    }
    int out = rc == SQLITE_DONE ? 0 : fail(s, rc, err, "list ledgers", ns, NULL);
    sqlite3_finalize(st);
    unlock(s, NULL);
    return out;
}

static void sq_close(void *b)
{
    sq *s = b;
    if (!s)
        return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s);
}

/* ------------------------------------------------------------ open */

/* PRAGMA quick_check: O(pages), catches torn or foreign pages and broken
 * b-trees; integrity_check also cross-checks every index against its table,
 * which grows with the data and delays every start for little more. */
static int quick_check(sq *s, ik_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (r && strcmp(r, "ok") == 0) {
            sqlite3_finalize(st);
            return 0;
        }
        ik_err_set(err, IK_E_IO,
                   "state store %s is corrupt (quick_check: %s); refusing to start: restore it "
                   "from a backup, or move it away to start with an empty store",
                   s->path, r ? r : "?");
        sqlite3_finalize(st);
        return IK_E_IO;
    }
    ik_err_set(err, IK_E_IO,
               "state store %s cannot be read: %s (%s); refusing to start: restore it from a "
               "backup, or move it away to start with an empty store",
               s->path, hint_of(rc), sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return IK_E_IO;
}

/* WAL, durability, schema: what every connection sets up after the check. */
static int setup(sq *s, ik_state_durability durability, ik_err *err)
{
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    int rc = quick_check(s, err);
    if (rc == 0)
        rc = exec(s, "PRAGMA journal_mode=WAL", err, "switch to WAL");
    if (rc == 0)
        rc = exec(s,
                  durability == IK_STATE_FULL ? "PRAGMA synchronous=FULL"
                                              : "PRAGMA synchronous=NORMAL",
                  err, "set durability");
    if (rc == 0)
        rc = exec(s, schema_sql, err, "create tables");
    return rc;
}

int ik_state_sqlite_open(const char *path, ik_state_durability durability, int create, void **out,
                         ik_err *err)
{
    sq *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return ik_err_set(err, IK_E_NOMEM, "out of memory");
    }
    pthread_mutex_init(&s->mu, NULL);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, &s->db, flags, NULL);
    if (rc != SQLITE_OK) {
        int code = (rc & 0xff) == SQLITE_CANTOPEN && !create ? IK_E_NOTFOUND : code_of(rc);
        ik_err_set(err, code, "state store %s cannot be opened: %s (%s)", path, hint_of(rc),
                   s->db ? sqlite3_errmsg(s->db) : "out of memory");
        sq_close(s);
        return code;
    }
    sqlite3_extended_result_codes(s->db, 0);
    if ((rc = setup(s, durability, err)) != 0) {
        sq_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

const ik_state_backend ik_state_sqlite_backend = {
    .name = "sqlite",
    .get = sq_get,
    .write = sq_write,
    .del = sq_del,
    .append = sq_append,
    .read = sq_read,
    .trim = sq_trim,
    .begin = sq_begin,
    .end = sq_end,
    .purge = sq_purge,
    .list_ns = sq_list_ns,
    .list_keys = sq_list_keys,
    .list_ledgers = sq_list_ledgers,
    .close = sq_close,
};
