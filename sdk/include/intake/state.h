/*
 * intake/state.h: the state store, an engine service in the host table
 * (SDK 2.1): small records a plugin keeps across restarts.
 *
 * Namespaces. Every plugin instance has its own namespace, named
 * "<pipeline>/<instance>" after the config; the engine adds it to every call,
 * so a plugin never names it and cannot reach another instance's records.
 * Two engines running the same config on one store share the namespaces of
 * the same pipeline and instance names on purpose: compare-and-set then
 * arbitrates between them (leases, "who refreshes the token").
 *
 * Keys and ledger names are non-empty C strings of at most
 * IK_STATE_KEY_MAX bytes; they appear in error messages and in `intake state
 * list`, so never put a secret in one (values are never shown but by
 * `intake state get`). Values and ledger entries are bytes with a length
 * (strings need not carry their NUL; a value read back is always followed by
 * one), at most IK_STATE_VALUE_MAX bytes each: this is a store for tokens,
 * cursors, batch ids and leases, not for payloads.
 *
 * Versions. Every key has a version number that grows by at least 1 on each
 * write and never goes back, not even across a delete and re-create, so a
 * version seen once identifies one value for good (no ABA). Compare-and-set
 * is on the version (state_cas): read, decide, write only if nobody wrote in
 * between. A plugin that wants "set only if the value is still X" reads the
 * value and its version first.
 *
 * TTL. A put or cas may give a time to live in ms (0: none). An expired key
 * behaves as absent for every call; the engine deletes expired keys later
 * on its own. Expiry uses the wall clock, since it must hold across restarts.
 *
 * Ledgers. An append-only log per name: each entry gets the next sequence
 * number of that ledger (1, 2, 3, ...; never reused, even after a trim).
 * ledger_read() hands out the entries after a cursor (a sequence number the
 * plugin keeps, in memory or in a key of its own; 0 reads from the start) and
 * moves the cursor past what it handed out. ledger_trim() drops old entries.
 *
 * Transactions. state_txn(self, fn, arg) runs fn inside one transaction:
 * every call fn makes with the ik_state_txn it is given is committed together
 * when fn returns 0, and rolled back when it returns a negative code (which
 * state_txn returns). A callback rather than begin/commit handles because a
 * transaction then always ends, even when the plugin forgets or errs, and
 * because it holds the store's write lock while it runs: fn must be short,
 * must not wait for anything (no network, no wait_ms) and must not call
 * state_txn again. Outside fn, pass NULL as tx: each call is then a
 * transaction of its own. Inside fn, a call with tx NULL returns IK_E_STATE.
 *
 * Errors. Every function returns 0 or a negative IK_E_* code:
 *   IK_E_NOTFOUND  no such key (or it expired); for delete, nothing to delete
 *   IK_E_CONFLICT  cas or a conditional delete: the version did not match
 *   IK_E_INVAL     bad key or name (empty, too long), NULL where not allowed
 *   IK_E_TOOBIG    value or entry over IK_STATE_VALUE_MAX
 *   IK_E_IO        the store cannot read or write (unwritable file, disk
 *                  full, corrupt file); nothing of that call was stored
 *   IK_E_NOMEM     out of memory
 *   IK_E_STATE     a tx call outside its callback, or NULL tx inside one
 * After a failure state_error() gives the reason in words (which file, which
 * call, what the store said; never a value). An IK_E_IO failure also makes
 * the pipeline unhealthy in /health, with that reason, until a later write of
 * the pipeline succeeds. A plugin that cannot store what it must keeps or
 * releases the records that depend on it (IK_RETRY, IK_RELEASE or IK_DOWN):
 * never a silent loss.
 *
 * Threads: every function may be called from any plugin thread at once
 * (create() and later; not from check()).
 */
#ifndef INTAKE_STATE_H
#define INTAKE_STATE_H

#include <stddef.h>
#include <stdint.h>

#include <intake/buf.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IK_STATE_KEY_MAX   512u
#define IK_STATE_VALUE_MAX (1024u * 1024u)

/* The open transaction handed to a state_txn callback; valid only while the
 * callback runs. */
typedef struct ik_state_txn ik_state_txn;

/* A state_txn callback: 0 commits, a negative IK_E_* code rolls back. */
typedef int (*ik_state_txn_fn)(ik_state_txn *tx, void *arg);

/* One ledger entry handed to a ledger_read callback; `data` (len bytes,
 * NUL-terminated after them) is valid only during the callback. A callback
 * returns 0 to go on, anything else to stop after this entry (the cursor
 * then points at it). */
typedef int (*ik_state_ledger_fn)(uint64_t seq, const void *data, size_t len, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* INTAKE_STATE_H */
