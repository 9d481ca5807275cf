/* store.c: the in-memory queue store (see store.h). */
#include "store.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

/* ---- heap of (key, seq), min by key then seq ---- */

static int ent_less(const sb_heap_ent *a, const sb_heap_ent *b)
{
    return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static int heap_push(sb_heap *h, int64_t key, uint64_t seq)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        sb_heap_ent *e = realloc(h->e, cap * sizeof *e);
        if (!e)
            return -1;
        h->e = e;
        h->cap = cap;
    }
    size_t i = h->n++;
    h->e[i] = (sb_heap_ent){key, seq};
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ent_less(&h->e[i], &h->e[p]))
            break;
        sb_heap_ent t = h->e[i];
        h->e[i] = h->e[p];
        h->e[p] = t;
        i = p;
    }
    return 0;
}

static void heap_pop(sb_heap *h)
{
    if (h->n == 0)
        return;
    h->e[0] = h->e[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && ent_less(&h->e[l], &h->e[m]))
            m = l;
        if (r < h->n && ent_less(&h->e[r], &h->e[m]))
            m = r;
        if (m == i)
            break;
        sb_heap_ent t = h->e[i];
        h->e[i] = h->e[m];
        h->e[m] = t;
        i = m;
    }
}

static void heap_free(sb_heap *h)
{
    free(h->e);
    h->e = NULL;
    h->n = h->cap = 0;
}

/* ---- duplicate detection: message-id -> time first seen ---- */

typedef struct dd_ent {
    struct dd_ent *hnext, *fnext;
    int64_t seen_ms;
    size_t len;
    uint8_t id[];
} dd_ent;

struct sb_dedup {
    dd_ent **b;
    size_t nb;
    dd_ent *head, *tail; /* FIFO by time seen */
};

static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static void dedup_prune(sb_dedup *d, int64_t now, int64_t window)
{
    while (d->head && d->head->seen_ms + window <= now) {
        dd_ent *e = d->head;
        dd_ent **pp = &d->b[fnv(e->id, e->len) & (d->nb - 1)];
        while (*pp && *pp != e)
            pp = &(*pp)->hnext;
        if (*pp)
            *pp = e->hnext;
        d->head = e->fnext;
        if (!d->head)
            d->tail = NULL;
        free(e);
    }
}

/* 1 if id was seen within the window, else records it and returns 0; -1 on no memory. */
static int dedup_check(sb_dedup *d, const uint8_t *id, size_t len, int64_t now, int64_t window)
{
    dedup_prune(d, now, window);
    size_t h = fnv(id, len) & (d->nb - 1);
    for (dd_ent *e = d->b[h]; e; e = e->hnext)
        if (e->len == len && memcmp(e->id, id, len) == 0)
            return 1;
    dd_ent *e = malloc(sizeof *e + len);
    if (!e)
        return -1;
    e->seen_ms = now;
    e->len = len;
    memcpy(e->id, id, len);
    e->hnext = d->b[h];
    d->b[h] = e;
    e->fnext = NULL;
    if (d->tail)
        d->tail->fnext = e;
    else
        d->head = e;
    d->tail = e;
    return 0;
}

static void dedup_free(sb_dedup *d)
{
    if (!d)
        return;
    dd_ent *e = d->head;
    while (e) {
        dd_ent *n = e->fnext;
        free(e);
        e = n;
    }
    free(d->b);
    free(d);
}

/* ---- messages ---- */

void sb_token_to_tag(const uint8_t t[16], uint8_t g[16])
{
    static const int map[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    for (int i = 0; i < 16; i++)
        g[i] = t[map[i]];
}

static void msg_free(sb_msg *m)
{
    free(m->ann);
    free(m->rest);
    free(m);
}

static int hash_grow(sb_queue *q)
{
    size_t nb = q->nbuckets ? q->nbuckets * 2 : 1024;
    sb_msg **b = calloc(nb, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i < q->nbuckets; i++) {
        sb_msg *m = q->buckets[i];
        while (m) {
            sb_msg *n = m->hnext;
            size_t h = m->seq & (nb - 1);
            m->hnext = b[h];
            b[h] = m;
            m = n;
        }
    }
    free(q->buckets);
    q->buckets = b;
    q->nbuckets = nb;
    return 0;
}

sb_msg *sb_queue_get(sb_queue *q, uint64_t seq)
{
    if (!q->nbuckets)
        return NULL;
    for (sb_msg *m = q->buckets[seq & (q->nbuckets - 1)]; m; m = m->hnext)
        if (m->seq == seq)
            return m;
    return NULL;
}

static void count_state(sb_queue *q, int state, long d)
{
    if (state == SB_MS_SCHEDULED)
        atomic_fetch_add_explicit(&q->n_scheduled, d, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&q->n_active, d, memory_order_relaxed);
    if (state == SB_MS_DEFERRED)
        atomic_fetch_add_explicit(&q->n_deferred, d, memory_order_relaxed);
}

static void set_state(sb_queue *q, sb_msg *m, int state)
{
    count_state(q, m->state, -1);
    m->state = (uint8_t)state;
    count_state(q, state, 1);
}

static void lock_unlink(sb_queue *q, sb_msg *m)
{
    if (m->lock_prev)
        m->lock_prev->lock_next = m->lock_next;
    else if (q->lock_head == m)
        q->lock_head = m->lock_next;
    if (m->lock_next)
        m->lock_next->lock_prev = m->lock_prev;
    else if (q->lock_tail == m)
        q->lock_tail = m->lock_prev;
    m->lock_prev = m->lock_next = NULL;
}

static void lock_append(sb_queue *q, sb_msg *m)
{
    m->lock_next = NULL;
    m->lock_prev = q->lock_tail;
    if (q->lock_tail)
        q->lock_tail->lock_next = m;
    else
        q->lock_head = m;
    q->lock_tail = m;
}

static int insert(sb_queue *q, sb_msg *m)
{
    if (q->count + 1 > q->nbuckets && hash_grow(q) < 0)
        return -1;
    size_t h = m->seq & (q->nbuckets - 1);
    m->hnext = q->buckets[h];
    q->buckets[h] = m;
    q->count++;
    /* sequence order: appended (sequence numbers only grow) */
    m->all_next = NULL;
    m->all_prev = q->all_tail;
    if (q->all_tail)
        q->all_tail->all_next = m;
    else
        q->all_head = m;
    q->all_tail = m;
    count_state(q, m->state, 1);
    atomic_fetch_add_explicit(&q->n_bytes, (long)(m->ann_len + m->rest_len), memory_order_relaxed);
    if (m->session)
        m->session->count++;
    return 0;
}

void sb_queue_remove(sb_queue *q, sb_msg *m)
{
    sb_msg **pp = &q->buckets[m->seq & (q->nbuckets - 1)];
    while (*pp && *pp != m)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = m->hnext;
    q->count--;
    if (m->all_prev)
        m->all_prev->all_next = m->all_next;
    else
        q->all_head = m->all_next;
    if (m->all_next)
        m->all_next->all_prev = m->all_prev;
    else
        q->all_tail = m->all_prev;
    if (m->state == SB_MS_LOCKED)
        lock_unlink(q, m);
    count_state(q, m->state, -1);
    atomic_fetch_add_explicit(&q->n_bytes, -(long)(m->ann_len + m->rest_len), memory_order_relaxed);
    if (m->session)
        m->session->count--;
    msg_free(m);
}

sb_session *sb_queue_session(sb_queue *q, const char *id, int create)
{
    for (sb_session *s = q->sessions; s; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    if (!create || strlen(id) >= sizeof((sb_session *)0)->id)
        return NULL;
    sb_session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    strcpy(s->id, id);
    s->next = q->sessions;
    q->sessions = s;
    return s;
}

sb_session *sb_queue_free_session(sb_queue *q, int64_t now)
{
    for (sb_session *s = q->sessions; s; s = s->next) {
        if (s->owner)
            continue;
        /* drop stale heap heads so an empty session is not handed out */
        while (s->avail.n) {
            sb_msg *m = sb_queue_get(q, s->avail.e[0].seq);
            if (m && m->state == SB_MS_AVAILABLE)
                break;
            heap_pop(&s->avail);
        }
        if (s->avail.n)
            return s;
    }
    (void)now;
    return NULL;
}

static sb_heap *avail_heap(sb_queue *q, sb_msg *m)
{
    return m->session ? &m->session->avail : &q->avail;
}

/* Makes m deliverable (AVAILABLE), or expires it when its time is up. */
static void expire(sb_queue *q, sb_msg *m, int64_t now);

static void make_available(sb_queue *q, sb_msg *m, int64_t now)
{
    if (m->expires_ms && now >= m->expires_ms) {
        expire(q, m, now);
        return;
    }
    set_state(q, m, SB_MS_AVAILABLE);
    if (heap_push(avail_heap(q, m), (int64_t)m->seq, m->seq) < 0)
        SB_ERR("store: %s: out of memory queueing message %llu", q->name,
               (unsigned long long)m->seq);
    if (m->expires_ms && heap_push(&q->ttl, m->expires_ms, m->seq) < 0)
        SB_ERR("store: %s: out of memory tracking TTL", q->name);
}

static sb_msg *msg_new(void)
{
    return calloc(1, sizeof(sb_msg));
}

static int64_t compute_expiry(sb_queue *q, sb_msg *m, int64_t from)
{
    if (q->is_dlq)
        return 0;
    int64_t ttl = q->cfg->default_ttl_ms;
    if (m->has_ttl && m->ttl > 0 && (ttl == 0 || (int64_t)m->ttl < ttl))
        ttl = m->ttl;
    return ttl > 0 ? from + ttl : 0;
}

int sb_queue_enqueue(sb_queue *q, const uint8_t *b, size_t len, int64_t now, int force_schedule,
                     uint64_t *seq_out, char *err, size_t errlen)
{
    sb_msg_parts p;
    if (amqp_parse_message(b, len, &p, err, errlen) < 0) {
        sb_msg_parts_free(&p);
        return SB_ENQ_BAD;
    }
    int rc = SB_ENQ_OK;
    sb_msg *m = NULL;
    if (q->is_dlq) {
        snprintf(err, errlen, "cannot send to a dead-letter queue");
        rc = SB_ENQ_NOT_ALLOWED;
        goto out;
    }
    if (atomic_load_explicit(&q->n_bytes, memory_order_relaxed) + (long)len >
        q->cfg->max_size_bytes) {
        snprintf(err, errlen, "queue %s is full (max %lld bytes)", q->name,
                 (long long)q->cfg->max_size_bytes);
        rc = SB_ENQ_FULL;
        goto out;
    }
    if (q->cfg->requires_session && !p.has_group_id) {
        snprintf(err, errlen, "Session ID is null: queue %s requires sessions", q->name);
        rc = SB_ENQ_NO_SESSION;
        goto out;
    }
    if (!p.msgid_len) { /* the service stamps a message-id on messages without one */
        uint8_t r[16];
        char id[33];
        RAND_bytes(r, sizeof r);
        for (int i = 0; i < 16; i++)
            snprintf(id + 2 * i, 3, "%02x", r[i]);
        if (amqp_set_message_id(&p, id) < 0) {
            snprintf(err, errlen, "malformed properties section");
            rc = SB_ENQ_BAD;
            goto out;
        }
    }
    if (q->cfg->duplicate_detection && p.msgid_len) {
        int d = dedup_check(q->dedup, p.msgid, p.msgid_len, now, q->cfg->duplicate_window_ms);
        if (d != 0) {
            rc = d > 0 ? SB_ENQ_DUPLICATE : SB_ENQ_NOMEM;
            if (d < 0)
                snprintf(err, errlen, "out of memory");
            goto out;
        }
    }
    m = msg_new();
    if (!m) {
        snprintf(err, errlen, "out of memory");
        rc = SB_ENQ_NOMEM;
        goto out;
    }
    m->seq = q->next_seq++;
    m->enqueued_ms = now;
    m->durable = (uint8_t)p.durable;
    m->has_priority = (uint8_t)p.has_priority;
    m->priority = p.priority;
    m->has_ttl = (uint8_t)p.has_ttl;
    m->ttl = p.ttl;
    m->ann = p.ann.data;
    m->ann_len = p.ann.len;
    m->ann_count = p.ann_count;
    m->rest = p.rest.data;
    m->rest_len = p.rest.len;
    p.ann.data = p.rest.data = NULL;
    if (q->cfg->requires_session) {
        m->session = sb_queue_session(q, p.group_id, 1);
        if (!m->session) {
            snprintf(err, errlen, "out of memory");
            msg_free(m);
            rc = SB_ENQ_NOMEM;
            goto out;
        }
    }
    int scheduled = p.scheduled_ms > now || (force_schedule && p.scheduled_ms > 0);
    m->state = scheduled ? SB_MS_SCHEDULED : SB_MS_AVAILABLE;
    if (insert(q, m) < 0) {
        snprintf(err, errlen, "out of memory");
        msg_free(m);
        rc = SB_ENQ_NOMEM;
        goto out;
    }
    if (scheduled) {
        m->scheduled_ms = p.scheduled_ms;
        if (heap_push(&q->sched, p.scheduled_ms, m->seq) < 0)
            SB_ERR("store: %s: out of memory scheduling", q->name);
    } else {
        m->expires_ms = compute_expiry(q, m, now);
        if (heap_push(avail_heap(q, m), (int64_t)m->seq, m->seq) < 0 ||
            (m->expires_ms && heap_push(&q->ttl, m->expires_ms, m->seq) < 0))
            SB_ERR("store: %s: out of memory queueing", q->name);
    }
    if (seq_out)
        *seq_out = m->seq;
    q->updated_ms = now;
out:
    sb_msg_parts_free(&p);
    return rc;
}

int sb_queue_restore(sb_queue *q, sb_msg *m, const char *session_id, int64_t now)
{
    if (sb_queue_get(q, m->seq))
        return -1;
    if (session_id && !q->is_dlq && q->cfg->requires_session) {
        m->session = sb_queue_session(q, session_id, 1);
        if (!m->session)
            return -1;
    } else {
        m->session = NULL;
    }
    if (m->state == SB_MS_LOCKED)
        m->state = m->deferred ? SB_MS_DEFERRED : SB_MS_AVAILABLE;
    if (m->state > SB_MS_SCHEDULED)
        return -1;
    m->all_prev = m->all_next = m->lock_prev = m->lock_next = m->hnext = NULL;
    /* keep the sequence order of the all-list: insert() appends, so restore in order */
    if (q->all_tail && q->all_tail->seq > m->seq)
        return -1;
    if (insert(q, m) < 0)
        return -1;
    if (m->seq >= q->next_seq)
        q->next_seq = m->seq + 1;
    if (m->state == SB_MS_SCHEDULED)
        heap_push(&q->sched, m->scheduled_ms, m->seq);
    else if (m->state == SB_MS_AVAILABLE) {
        heap_push(avail_heap(q, m), (int64_t)m->seq, m->seq);
        if (m->expires_ms)
            heap_push(&q->ttl, m->expires_ms, m->seq);
    }
    q->updated_ms = now;
    return 0;
}

static void expire(sb_queue *q, sb_msg *m, int64_t now)
{
    if (q->cfg->dead_lettering_on_expiration && q->dlq) {
        if (sb_queue_deadletter(q, m, now, "TTLExpiredException",
                                "The message expired and was dead lettered.", NULL, 0, 0) == 0)
            return;
    }
    sb_queue_remove(q, m);
}

sb_msg *sb_queue_next(sb_queue *q, sb_session *s, int64_t now)
{
    sb_heap *h = s ? &s->avail : &q->avail;
    while (h->n) {
        uint64_t seq = h->e[0].seq;
        heap_pop(h);
        sb_msg *m = sb_queue_get(q, seq);
        if (!m || m->state != SB_MS_AVAILABLE)
            continue;
        if (m->expires_ms && now >= m->expires_ms) {
            expire(q, m, now);
            continue;
        }
        q->accessed_ms = now;
        return m;
    }
    return NULL;
}

void sb_queue_lock(sb_queue *q, sb_msg *m, int64_t now)
{
    if (m->state == SB_MS_LOCKED)
        lock_unlink(q, m);
    set_state(q, m, SB_MS_LOCKED);
    RAND_bytes(m->lock_token, 8);
    for (int i = 0; i < 8; i++)
        m->lock_token[8 + i] = (uint8_t)(m->seq >> (56 - 8 * i));
    m->lock_token[6] = (uint8_t)((m->lock_token[6] & 0x0f) | 0x40); /* uuid v4 look */
    m->locked_until_ms = now + q->cfg->lock_duration_ms;
    lock_append(q, m);
}

sb_msg *sb_queue_find_lock(sb_queue *q, const uint8_t token[16], int64_t now)
{
    uint64_t seq = 0;
    for (int i = 0; i < 8; i++)
        seq = (seq << 8) | token[8 + i];
    sb_msg *m = sb_queue_get(q, seq);
    if (!m || m->state != SB_MS_LOCKED || memcmp(m->lock_token, token, 16) != 0)
        return NULL;
    if (now >= m->locked_until_ms)
        return NULL;
    return m;
}

static void apply_mods(sb_queue *q, sb_msg *m, const uint8_t *mods, size_t mods_len,
                       uint32_t mods_count)
{
    if (!mods || !mods_count)
        return;
    sb_buf out = {0};
    if (amqp_merge_app_props(m->rest, m->rest_len, mods, mods_len, mods_count, &out) < 0) {
        SB_WARN("store: %s: cannot merge properties into message %llu; left unchanged", q->name,
                (unsigned long long)m->seq);
        sb_buf_free(&out);
        return;
    }
    atomic_fetch_add_explicit(&q->n_bytes, (long)out.len - (long)m->rest_len, memory_order_relaxed);
    free(m->rest);
    m->rest = out.data;
    m->rest_len = out.len;
}

/* A failed delivery attempt: count it; dead-letter at max delivery count. */
static void failed_attempt(sb_queue *q, sb_msg *m, int64_t now)
{
    m->delivery_count++;
    if (!q->is_dlq && m->delivery_count >= q->cfg->max_delivery_count) {
        char desc[128];
        snprintf(desc, sizeof desc, "Message could not be consumed after %u delivery attempts.",
                 m->delivery_count);
        if (sb_queue_deadletter(q, m, now, "MaxDeliveryCountExceeded", desc, NULL, 0, 0) == 0)
            return;
    }
    if (m->deferred) {
        set_state(q, m, SB_MS_DEFERRED);
        return;
    }
    make_available(q, m, now);
}

void sb_queue_abandon(sb_queue *q, sb_msg *m, int64_t now, const uint8_t *mods, size_t mods_len,
                      uint32_t mods_count)
{
    lock_unlink(q, m);
    apply_mods(q, m, mods, mods_len, mods_count);
    failed_attempt(q, m, now);
}

void sb_queue_defer(sb_queue *q, sb_msg *m, const uint8_t *mods, size_t mods_len,
                    uint32_t mods_count)
{
    lock_unlink(q, m);
    apply_mods(q, m, mods, mods_len, mods_count);
    m->deferred = 1;
    set_state(q, m, SB_MS_DEFERRED);
}

int sb_queue_deadletter(sb_queue *q, sb_msg *m, int64_t now, const char *reason, const char *desc,
                        const uint8_t *mods, size_t mods_len, uint32_t mods_count)
{
    if (q->is_dlq || !q->dlq)
        return -1;
    sb_queue *d = q->dlq;
    sb_buf props = {0}, rest = {0};
    uint32_t n = 0;
    int rc = -1;
    if (reason) {
        size_t rl = strlen(reason);
        if (rl > 4096)
            rl = 4096;
        if (sb_buf_sym(&props, "DeadLetterReason") < 0 || sb_buf_str(&props, reason, rl) < 0)
            goto out;
        n += 2;
    }
    if (desc) {
        size_t dl = strlen(desc);
        if (dl > 4096)
            dl = 4096;
        if (sb_buf_sym(&props, "DeadLetterErrorDescription") < 0 ||
            sb_buf_str(&props, desc, dl) < 0)
            goto out;
        n += 2;
    }
    if (mods && mods_count) {
        if (sb_buf_put(&props, mods, mods_len) < 0)
            goto out;
        n += mods_count;
    }
    if (n && amqp_merge_app_props(m->rest, m->rest_len, props.data, props.len, n, &rest) < 0)
        goto out;
    sb_msg *x = msg_new();
    if (!x)
        goto out;
    *x = (sb_msg){0};
    x->seq = d->next_seq++;
    x->enqueued_ms = now;
    x->durable = m->durable;
    x->has_priority = m->has_priority;
    x->priority = m->priority;
    x->has_ttl = m->has_ttl;
    x->ttl = m->ttl;
    x->ann = m->ann;
    x->ann_len = m->ann_len;
    x->ann_count = m->ann_count;
    m->ann = NULL;
    m->ann_len = 0;
    if (n) {
        x->rest = rest.data;
        x->rest_len = rest.len;
        rest.data = NULL;
    } else {
        x->rest = m->rest;
        x->rest_len = m->rest_len;
        m->rest = NULL;
        m->rest_len = 0;
    }
    x->state = SB_MS_AVAILABLE;
    if (insert(d, x) < 0) {
        msg_free(x);
        goto out;
    }
    heap_push(&d->avail, (int64_t)x->seq, x->seq);
    d->updated_ms = now;
    SB_DBG("store: %s: message %llu dead-lettered as %llu (%s)", q->name,
           (unsigned long long)m->seq, (unsigned long long)x->seq, reason ? reason : "-");
    sb_queue_remove(q, m);
    rc = 0;
out:
    sb_buf_free(&props);
    sb_buf_free(&rest);
    return rc;
}

int64_t sb_queue_renew(sb_queue *q, sb_msg *m, int64_t now)
{
    lock_unlink(q, m);
    m->locked_until_ms = now + q->cfg->lock_duration_ms;
    lock_append(q, m);
    return m->locked_until_ms;
}

int sb_queue_cancel_scheduled(sb_queue *q, uint64_t seq)
{
    sb_msg *m = sb_queue_get(q, seq);
    if (!m || m->state != SB_MS_SCHEDULED)
        return -1;
    sb_queue_remove(q, m);
    return 0;
}

int sb_queue_tick(sb_queue *q, int64_t now)
{
    int avail = 0;
    while (q->lock_head && q->lock_head->locked_until_ms <= now) {
        sb_msg *m = q->lock_head;
        lock_unlink(q, m);
        SB_DBG("store: %s: lock on message %llu expired", q->name, (unsigned long long)m->seq);
        failed_attempt(q, m, now);
        avail = 1;
    }
    while (q->sched.n && q->sched.e[0].key <= now) {
        uint64_t seq = q->sched.e[0].seq;
        heap_pop(&q->sched);
        sb_msg *m = sb_queue_get(q, seq);
        if (!m || m->state != SB_MS_SCHEDULED)
            continue;
        m->enqueued_ms = m->scheduled_ms;
        m->expires_ms = compute_expiry(q, m, now);
        make_available(q, m, now);
        avail = 1;
    }
    while (q->ttl.n && q->ttl.e[0].key <= now) {
        uint64_t seq = q->ttl.e[0].seq;
        heap_pop(&q->ttl);
        sb_msg *m = sb_queue_get(q, seq);
        /* locked messages expire when their lock ends; deferred ones stay */
        if (m && m->state == SB_MS_AVAILABLE && m->expires_ms && m->expires_ms <= now)
            expire(q, m, now);
    }
    if (q->dlq && avail == 0 && q->dlq->count)
        avail = 0;
    return avail;
}

int64_t sb_queue_next_deadline(sb_queue *q)
{
    int64_t t = 0;
    if (q->lock_head)
        t = q->lock_head->locked_until_ms;
    if (q->sched.n && (!t || q->sched.e[0].key < t))
        t = q->sched.e[0].key;
    if (q->ttl.n && (!t || q->ttl.e[0].key < t))
        t = q->ttl.e[0].key;
    return t;
}

static int put_ann_long(sb_buf *o, const char *k, uint8_t code, int64_t v)
{
    return sb_buf_sym(o, k) | sb_buf_u8(o, code) | sb_buf_u64be(o, (uint64_t)v);
}

int sb_queue_encode(sb_queue *q, sb_msg *m, int with_lock, sb_buf *out)
{
    (void)q;
    out->len = 0;
    if (amqp_put_header(out, m->durable, m->has_priority, m->priority, m->has_ttl, m->ttl,
                        m->delivery_count) < 0)
        return -1;
    size_t hdr = out->len;
    uint8_t h[4] = {0x00, 0x53, 0x72, 0xd1};
    if (sb_buf_put(out, h, 4) < 0 || sb_buf_u32be(out, 0) < 0 || sb_buf_u32be(out, 0) < 0)
        return -1;
    size_t body = out->len;
    uint32_t items = m->ann_count;
    int rc = put_ann_long(out, "x-opt-sequence-number", 0x81, (int64_t)m->seq) |
             put_ann_long(out, "x-opt-enqueued-time", 0x83, m->enqueued_ms);
    items += 4;
    if (with_lock) {
        rc |= put_ann_long(out, "x-opt-locked-until", 0x83, m->locked_until_ms);
        items += 2;
    }
    int state = m->state == SB_MS_SCHEDULED ? 2 : (m->deferred ? 1 : 0);
    rc |= sb_buf_sym(out, "x-opt-message-state") | sb_buf_u8(out, 0x71) |
          sb_buf_u32be(out, (uint32_t)state);
    items += 2;
    rc |= sb_buf_put(out, m->ann, m->ann_len);
    if (rc < 0)
        return -1;
    uint32_t size = (uint32_t)(out->len - body + 4);
    uint8_t *p = out->data + hdr + 4;
    p[0] = (uint8_t)(size >> 24);
    p[1] = (uint8_t)(size >> 16);
    p[2] = (uint8_t)(size >> 8);
    p[3] = (uint8_t)size;
    p[4] = (uint8_t)(items >> 24);
    p[5] = (uint8_t)(items >> 16);
    p[6] = (uint8_t)(items >> 8);
    p[7] = (uint8_t)items;
    return sb_buf_put(out, m->rest, m->rest_len);
}

sb_msg *sb_queue_first_from(sb_queue *q, uint64_t from)
{
    sb_msg *m = q->all_head;
    while (m && m->seq < from)
        m = m->all_next;
    return m;
}

/* ---- store ---- */

static sb_queue *queue_new(const sb_queue_cfg *cfg, const char *name, int is_dlq, int64_t now)
{
    sb_queue *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    snprintf(q->name, sizeof q->name, "%s", name);
    q->cfg = cfg;
    q->is_dlq = is_dlq;
    q->next_seq = 1;
    q->created_ms = now;
    atomic_store(&q->updated_ms, now);
    atomic_store(&q->accessed_ms, now);
    q->dedup = calloc(1, sizeof *q->dedup);
    if (!q->dedup || hash_grow(q) < 0) {
        free(q->dedup);
        free(q);
        return NULL;
    }
    q->dedup->nb = 4096;
    q->dedup->b = calloc(q->dedup->nb, sizeof *q->dedup->b);
    if (!q->dedup->b) {
        free(q->buckets);
        free(q->dedup);
        free(q);
        return NULL;
    }
    return q;
}

static void queue_free(sb_queue *q)
{
    if (!q)
        return;
    sb_msg *m = q->all_head;
    while (m) {
        sb_msg *n = m->all_next;
        msg_free(m);
        m = n;
    }
    free(q->buckets);
    heap_free(&q->avail);
    heap_free(&q->ttl);
    heap_free(&q->sched);
    sb_session *s = q->sessions;
    while (s) {
        sb_session *n = s->next;
        heap_free(&s->avail);
        free(s->state);
        free(s);
        s = n;
    }
    dedup_free(q->dedup);
    free(q);
}

int sb_store_init(sb_store *st, const sb_config *cfg)
{
    memset(st, 0, sizeof *st);
    st->queues = calloc(cfg->nqueues ? cfg->nqueues : 1, sizeof *st->queues);
    if (!st->queues)
        return -1;
    int64_t now = sb_now_ms();
    for (size_t i = 0; i < cfg->nqueues; i++) {
        char dname[SB_NAME_MAX + 20];
        snprintf(dname, sizeof dname, "%s/$DeadLetterQueue", cfg->queues[i].name);
        sb_queue *q = queue_new(&cfg->queues[i], cfg->queues[i].name, 0, now);
        sb_queue *d = q ? queue_new(&cfg->queues[i], dname, 1, now) : NULL;
        if (!q || !d) {
            queue_free(q);
            sb_store_free(st);
            return -1;
        }
        q->dlq = d;
        d->parent = q;
        st->queues[st->nqueues++] = q;
    }
    return 0;
}

void sb_store_free(sb_store *st)
{
    for (size_t i = 0; i < st->nqueues; i++) {
        queue_free(st->queues[i]->dlq);
        queue_free(st->queues[i]);
    }
    free(st->queues);
    st->queues = NULL;
    st->nqueues = 0;
}

sb_queue *sb_store_find(sb_store *st, const char *path)
{
    const char *slash = strchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : strlen(path);
    for (size_t i = 0; i < st->nqueues; i++) {
        sb_queue *q = st->queues[i];
        if (strlen(q->name) != n || strncasecmp(q->name, path, n) != 0)
            continue;
        if (!slash)
            return q;
        if (strcasecmp(slash, "/$DeadLetterQueue") == 0)
            return q->dlq;
        return NULL;
    }
    return NULL;
}
