/* store.h: the in-memory queue store: messages, sequence numbers, locks, deferral, scheduling,
 * TTL, dead-letter sub-queues, sessions, duplicate detection. Not thread-safe: only the AMQP
 * event thread calls it; the counters read by the HTTP endpoint are atomics. */
#ifndef SBEMU_STORE_H
#define SBEMU_STORE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "amqpraw.h"
#include "config.h"

enum sb_msg_state { SB_MS_AVAILABLE, SB_MS_LOCKED, SB_MS_DEFERRED, SB_MS_SCHEDULED };

struct sb_session;

typedef struct sb_msg {
    uint64_t seq;
    int64_t enqueued_ms, expires_ms, scheduled_ms, locked_until_ms;
    uint32_t delivery_count;
    uint8_t state, deferred, durable, has_priority, priority, has_ttl;
    uint32_t ttl;
    uint8_t lock_token[16]; /* RFC byte order; the delivery tag is the .NET Guid order */
    struct sb_session *session;
    uint8_t *ann; /* sender's message-annotation entries (raw), broker keys removed */
    size_t ann_len;
    uint32_t ann_count;
    uint8_t *rest; /* properties .. footer (raw) */
    size_t rest_len;
    struct sb_msg *all_prev, *all_next;   /* every message, by sequence number */
    struct sb_msg *lock_prev, *lock_next; /* locked messages, by locked-until */
    struct sb_msg *hnext;                 /* sequence-number hash chain */
} sb_msg;

typedef struct sb_heap_ent {
    int64_t key;
    uint64_t seq;
} sb_heap_ent;

typedef struct sb_heap {
    sb_heap_ent *e;
    size_t n, cap;
} sb_heap;

typedef struct sb_session {
    char id[129];
    sb_heap avail;
    void *owner; /* the receiver link holding the session lock, or NULL */
    int64_t locked_until_ms;
    uint8_t *state;
    size_t state_len;
    size_t count;
    struct sb_session *next;
} sb_session;

typedef struct sb_dedup sb_dedup;

typedef struct sb_queue {
    char name[SB_NAME_MAX + 20]; /* "q1" or "q1/$DeadLetterQueue" */
    const sb_queue_cfg *cfg;
    int is_dlq;
    struct sb_queue *dlq, *parent;
    uint64_t next_seq;
    sb_msg **buckets;
    size_t nbuckets, count;
    sb_msg *all_head, *all_tail;
    sb_msg *lock_head, *lock_tail;
    sb_heap avail, ttl, sched;
    sb_session *sessions;
    sb_dedup *dedup;
    atomic_long n_active, n_scheduled, n_deferred, n_bytes;
    int64_t created_ms;
    atomic_llong updated_ms, accessed_ms; /* read by the HTTP thread */
    void *consumers;                      /* owned by the AMQP layer */
} sb_queue;

typedef struct sb_store {
    sb_queue **queues; /* main queues; each has ->dlq */
    size_t nqueues;
} sb_store;

enum {
    SB_ENQ_OK = 0,
    SB_ENQ_DUPLICATE = 1,
    SB_ENQ_BAD = -1,
    SB_ENQ_FULL = -2,
    SB_ENQ_NO_SESSION = -3,
    SB_ENQ_NOMEM = -4,
    SB_ENQ_NOT_ALLOWED = -5,
};

int sb_store_init(sb_store *st, const sb_config *cfg);
void sb_store_free(sb_store *st);
/* "q1", "q1/$DeadLetterQueue" (any case). NULL if unknown. */
sb_queue *sb_store_find(sb_store *st, const char *path);

/* Stores one encoded message. schedule_ms > 0 forces scheduling (schedule-message); a
 * x-opt-scheduled-enqueue-time in the future also schedules. Returns SB_ENQ_*. */
int sb_queue_enqueue(sb_queue *q, const uint8_t *msg, size_t len, int64_t now, int force_schedule,
                     uint64_t *seq_out, char *err, size_t errlen);
/* The next deliverable message for a receiver (session s, or NULL for a session-less queue);
 * expired ones on the way are expired. NULL if none. The message stays AVAILABLE: the caller
 * calls sb_queue_lock or sb_queue_remove at once. */
sb_msg *sb_queue_next(sb_queue *q, sb_session *s, int64_t now);
void sb_queue_lock(sb_queue *q, sb_msg *m, int64_t now);
sb_msg *sb_queue_get(sb_queue *q, uint64_t seq);
/* The locked message holding token (RFC order); NULL if unknown or expired (*expired set). */
sb_msg *sb_queue_find_lock(sb_queue *q, const uint8_t token[16], int64_t now);
void sb_queue_remove(sb_queue *q, sb_msg *m);
/* Settlement. mods: raw map entries merged into application properties (may be NULL). */
void sb_queue_abandon(sb_queue *q, sb_msg *m, int64_t now, const uint8_t *mods, size_t mods_len,
                      uint32_t mods_count);
void sb_queue_defer(sb_queue *q, sb_msg *m, const uint8_t *mods, size_t mods_len,
                    uint32_t mods_count);
int sb_queue_deadletter(sb_queue *q, sb_msg *m, int64_t now, const char *reason, const char *desc,
                        const uint8_t *mods, size_t mods_len, uint32_t mods_count);
int64_t sb_queue_renew(sb_queue *q, sb_msg *m, int64_t now);
int sb_queue_cancel_scheduled(sb_queue *q, uint64_t seq);
/* Lock expiry, TTL and schedule. Returns 1 if messages became available, else 0. */
int sb_queue_tick(sb_queue *q, int64_t now);
/* Earliest time tick has work (0 = none). */
int64_t sb_queue_next_deadline(sb_queue *q);
/* Encodes m as delivered: header with delivery count, broker annotations, the rest. */
int sb_queue_encode(sb_queue *q, sb_msg *m, int with_lock, sb_buf *out);
/* First message with seq >= from (in sequence order), or NULL. */
sb_msg *sb_queue_first_from(sb_queue *q, uint64_t from);

/* Puts back a message read from a snapshot (persist.c): m is heap-allocated and filled
 * (seq, times, counts, header fields, ann, rest, state); session_id may be NULL. Locked
 * messages come back unlocked. Takes ownership of m on success. Returns 0 or -1. */
int sb_queue_restore(sb_queue *q, sb_msg *m, const char *session_id, int64_t now);

sb_session *sb_queue_session(sb_queue *q, const char *id, int create);
/* A session with available messages and no owner, or NULL. */
sb_session *sb_queue_free_session(sb_queue *q, int64_t now);

/* The delivery tag for a lock token and back (swap of the first three groups). */
void sb_token_to_tag(const uint8_t token[16], uint8_t tag[16]);

#endif
