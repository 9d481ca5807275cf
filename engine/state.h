/*
 * state.h: the engine's state store service (state.c) and the interface a
 * storage backend implements (state_sqlite.c today; a server database such as
 * PostgreSQL can be added as another ik_state_backend without the SDK or any
 * plugin changing).
 *
 * The service owns one backend, checks keys and sizes, keeps the calling
 * thread's last error text, attributes IK_E_IO failures to the pipeline whose
 * namespace failed (for /health), and purges expired keys now and then. The
 * host table (host.c) turns an instance into its namespace
 * "<pipeline>/<instance>" and calls the ik_state_* functions below; the
 * `intake state` CLI (state_cli.c) calls them with a namespace it was given.
 */
#ifndef IK_STATE_H
#define IK_STATE_H

#include <stddef.h>
#include <stdint.h>

#include <intake/plugin.h>

#include "error.h"

/* state.durability: what a commit waits for (see the README). */
typedef enum ik_state_durability {
    IK_STATE_NORMAL = 0, /* a process crash loses nothing committed; a power cut the last commits */
    IK_STATE_FULL = 1,   /* every commit is on disk before the call returns */
} ik_state_durability;

/* The file name of the SQLite store inside state.dir. */
#define IK_STATE_FILE "state.db"

/* How put/cas write: unconditionally, or only over version `expected`. */
typedef enum ik_state_write_mode { IK_STATE_PUT = 0, IK_STATE_CAS = 1 } ik_state_write_mode;

/* One key as the CLI lists it. */
typedef struct ik_state_key_info {
    const char *key;
    uint64_t version;
    size_t size;
    uint64_t expires_at_ms; /* wall clock, 0: never */
    uint64_t updated_at_ms;
} ik_state_key_info;

/* One ledger as the CLI lists it. */
typedef struct ik_state_ledger_info {
    const char *name;
    uint64_t entries;
    uint64_t first, last; /* sequence numbers kept (0 when none) */
} ik_state_ledger_info;

/* One namespace as the CLI lists it. */
typedef struct ik_state_ns_info {
    const char *ns;
    uint64_t keys;    /* live keys */
    uint64_t entries; /* ledger entries, all ledgers */
} ik_state_ns_info;

/*
 * A storage backend. Every op may be called from many threads at once; `tx`
 * is NULL (the op is its own transaction) or what begin() returned, and then
 * only the thread that called begin() uses it until end(). Times are wall
 * clock ms given by the service (so tests can move the clock): `now` decides
 * what has expired, `expires_at` is 0 for never. Every op returns 0 or a
 * negative IK_E_* code with err filled (IK_E_NOTFOUND and IK_E_CONFLICT
 * included, so the message can say which key).
 */
typedef struct ik_state_backend {
    const char *name;
    int (*get)(void *b, void *tx, const char *ns, const char *key, uint64_t now, ik_buf *value,
               uint64_t *version, ik_err *err);
    int (*write)(void *b, void *tx, const char *ns, const char *key, ik_state_write_mode mode,
                 uint64_t expected, const void *value, size_t len, uint64_t expires_at,
                 uint64_t now, uint64_t *version, ik_err *err);
    int (*del)(void *b, void *tx, const char *ns, const char *key, uint64_t expected, uint64_t now,
               ik_err *err);
    int (*append)(void *b, void *tx, const char *ns, const char *name, const void *entry,
                  size_t len, uint64_t now, uint64_t *seq, ik_err *err);
    int (*read)(void *b, void *tx, const char *ns, const char *name, uint64_t *cursor, size_t max,
                ik_state_ledger_fn fn, void *arg, size_t *nread, ik_err *err);
    int (*trim)(void *b, void *tx, const char *ns, const char *name, uint64_t upto, ik_err *err);
    /* A transaction: begin() takes the store's write lock and returns the
     * handle; end() commits (commit 1) or rolls back, and releases it. */
    int (*begin)(void *b, void **tx, ik_err *err);
    int (*end)(void *b, void *tx, int commit, ik_err *err);
    /* Deletes up to `max` keys expired at `now`; *purged gets how many. */
    int (*purge)(void *b, uint64_t now, size_t max, size_t *purged, ik_err *err);
    /* For the CLI: every namespace, and the live keys of one. */
    int (*list_ns)(void *b, uint64_t now, void (*fn)(void *arg, const ik_state_ns_info *ns),
                   void *arg, ik_err *err);
    int (*list_keys)(void *b, const char *ns, uint64_t now,
                     void (*fn)(void *arg, const ik_state_key_info *k), void *arg, ik_err *err);
    int (*list_ledgers)(void *b, const char *ns,
                        void (*fn)(void *arg, const ik_state_ledger_info *l), void *arg,
                        ik_err *err);
    void (*close)(void *b);
} ik_state_backend;

/* Opens the SQLite backend on `path`: WAL, the durability given, a busy
 * timeout, schema created when `create` (else a missing file is
 * IK_E_NOTFOUND), and PRAGMA quick_check run: a corrupt file or one that is
 * not a database is IK_E_IO with a message naming the file. *out is passed to
 * the ops of ik_state_sqlite_backend and freed by its close(). */
int ik_state_sqlite_open(const char *path, ik_state_durability durability, int create, void **out,
                         ik_err *err);
extern const ik_state_backend ik_state_sqlite_backend;

/* ------------------------------------------------------------ service */

typedef struct ik_state ik_state;

typedef struct ik_state_opts {
    const char *dir; /* folder of the store; created on first write when missing */
    ik_state_durability durability;
    /* Wall clock for TTLs (NULL: the real one); tests move it. */
    uint64_t (*clock)(void *arg);
    void *clock_arg;
    /* Open at once (1): an existing file is checked now, a missing one created
     * now. 0: an existing file is checked now, a missing one is created by the
     * first write (so configs whose plugins keep no state leave no file). */
    int create_now;
    /* 1: never create the folder or the file (the CLI reads what exists). */
    int read_only_existing;
} ik_state_opts;

/* Opens the store (see ik_state_opts). Fails with a message naming the file
 * when an existing file is corrupt or unreadable. *out: ik_state_close. */
int ik_state_open(const ik_state_opts *opts, ik_state **out, ik_err *err);
void ik_state_close(ik_state *st);
/* The database file's path, and its folder (static for the life of st). */
const char *ik_state_path(const ik_state *st);
const char *ik_state_dir(const ik_state *st);
/* Creates the store's folder (mkdir -p, 0700) when missing, for files the
 * engine keeps beside the store (the crash journal). 0 or err filled. */
int ik_state_make_dir(ik_state *st, ik_err *err);

/* The operations of <intake/state.h> on namespace `ns`; see the host table
 * for each one's contract. On failure the calling thread's message
 * (ik_state_last_error) says why. */
int ik_state_get(ik_state *st, ik_state_txn *tx, const char *ns, const char *key, ik_buf *value,
                 uint64_t *version);
int ik_state_write(ik_state *st, ik_state_txn *tx, const char *ns, const char *key,
                   ik_state_write_mode mode, uint64_t expected, const void *value, size_t len,
                   uint64_t ttl_ms, uint64_t *version);
int ik_state_delete(ik_state *st, ik_state_txn *tx, const char *ns, const char *key,
                    uint64_t expected);
int ik_state_append(ik_state *st, ik_state_txn *tx, const char *ns, const char *name,
                    const void *entry, size_t len, uint64_t *seq);
int ik_state_read(ik_state *st, ik_state_txn *tx, const char *ns, const char *name,
                  uint64_t *cursor, size_t max, ik_state_ledger_fn fn, void *arg, size_t *nread);
int ik_state_trim(ik_state *st, ik_state_txn *tx, const char *ns, const char *name, uint64_t upto);
int ik_state_txn_run(ik_state *st, const char *ns, ik_state_txn_fn fn, void *arg);
int ik_state_list_ns(ik_state *st, void (*fn)(void *arg, const ik_state_ns_info *ns), void *arg);
int ik_state_list_keys(ik_state *st, const char *ns,
                       void (*fn)(void *arg, const ik_state_key_info *k), void *arg);
int ik_state_list_ledgers(ik_state *st, const char *ns,
                          void (*fn)(void *arg, const ik_state_ledger_info *l), void *arg);
/* Deletes keys expired now, all of them (the service also does it on its
 * own, at most once a minute, on a write). */
int ik_state_purge(ik_state *st);

/* The calling thread's last failure ("" when none); thread-local storage. */
const char *ik_state_last_error(void);

/* /health: when the last write of `pipeline` failed with IK_E_IO, appends the
 * reason to `reasons` (a JSON array) and returns 1; else 0. A later write of
 * that pipeline that succeeds clears it. st may be NULL (returns 0). */
int ik_state_health(ik_state *st, const char *pipeline, json_object *reasons);

#endif
