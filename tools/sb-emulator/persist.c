/* persist.c: store snapshots (see persist.h). Format, all integers big-endian:
 *   "SBEMUST1"  then per queue: u32 name length, name, u64 next sequence number, u32 session
 *   count { u32 id length, id, u32 state length or 0xffffffff, state }, u64 message count,
 *   messages { u64 seq, i64 enqueued, i64 expires, i64 scheduled, u32 delivery count, u8 state,
 *   u8 deferred, u8 durable, u8 has_priority, u8 priority, u8 has_ttl, u32 ttl, u32 session id
 *   length or 0xffffffff, id, u32 annotation items, u32 length, annotations, u32 length, rest }
 *   and finally "END!". Duplicate-detection history and locks are not kept. */
#include "persist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char MAGIC[8] = {'S', 'B', 'E', 'M', 'U', 'S', 'T', '1'};
#define NONE 0xffffffffu

static int put_bytes32(sb_buf *b, const void *p, size_t n)
{
    return sb_buf_u32be(b, (uint32_t)n) | sb_buf_put(b, p, n);
}

static int save_queue(sb_buf *b, sb_queue *q)
{
    int rc = put_bytes32(b, q->name, strlen(q->name)) | sb_buf_u64be(b, q->next_seq);
    uint32_t ns = 0;
    for (sb_session *s = q->sessions; s; s = s->next)
        ns++;
    rc |= sb_buf_u32be(b, ns);
    for (sb_session *s = q->sessions; s; s = s->next) {
        rc |= put_bytes32(b, s->id, strlen(s->id));
        if (s->state)
            rc |= put_bytes32(b, s->state, s->state_len);
        else
            rc |= sb_buf_u32be(b, NONE);
    }
    rc |= sb_buf_u64be(b, q->count);
    for (sb_msg *m = q->all_head; m && rc == 0; m = m->all_next) {
        uint8_t f[6] = {m->state,        m->deferred, m->durable,
                        m->has_priority, m->priority, m->has_ttl};
        rc |= sb_buf_u64be(b, m->seq) | sb_buf_u64be(b, (uint64_t)m->enqueued_ms) |
              sb_buf_u64be(b, (uint64_t)m->expires_ms) |
              sb_buf_u64be(b, (uint64_t)m->scheduled_ms) | sb_buf_u32be(b, m->delivery_count) |
              sb_buf_put(b, f, sizeof f) | sb_buf_u32be(b, m->ttl);
        if (m->session)
            rc |= put_bytes32(b, m->session->id, strlen(m->session->id));
        else
            rc |= sb_buf_u32be(b, NONE);
        rc |= sb_buf_u32be(b, m->ann_count) | put_bytes32(b, m->ann, m->ann_len) |
              put_bytes32(b, m->rest, m->rest_len);
    }
    return rc;
}

int sb_persist_save(sb_store *st, const char *path, char *err, size_t errlen)
{
    sb_buf b = {0};
    int rc = sb_buf_put(&b, MAGIC, sizeof MAGIC);
    for (size_t i = 0; i < st->nqueues && rc == 0; i++)
        rc = save_queue(&b, st->queues[i]) | save_queue(&b, st->queues[i]->dlq);
    rc |= sb_buf_put(&b, "END!", 4);
    if (rc) {
        snprintf(err, errlen, "%s: out of memory building the snapshot", path);
        sb_buf_free(&b);
        return -1;
    }
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        snprintf(err, errlen, "%s: path too long", path);
        sb_buf_free(&b);
        return -1;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        sb_buf_free(&b);
        return -1;
    }
    size_t w = fwrite(b.data, 1, b.len, f);
    int cerr = fclose(f);
    if (w != b.len || cerr != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        remove(tmp);
        sb_buf_free(&b);
        return -1;
    }
    sb_buf_free(&b);
    return 0;
}

typedef struct rd {
    const uint8_t *p;
    size_t n, pos;
    int bad;
} rd;

static uint64_t r_u64(rd *r)
{
    if (r->bad || r->n - r->pos < 8) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | r->p[r->pos + (size_t)i];
    r->pos += 8;
    return v;
}

static uint32_t r_u32(rd *r)
{
    if (r->bad || r->n - r->pos < 4) {
        r->bad = 1;
        return 0;
    }
    uint32_t v = ((uint32_t)r->p[r->pos] << 24) | ((uint32_t)r->p[r->pos + 1] << 16) |
                 ((uint32_t)r->p[r->pos + 2] << 8) | r->p[r->pos + 3];
    r->pos += 4;
    return v;
}

/* A length-prefixed field: pointer into the buffer, or NULL for NONE (*len = NONE). */
static const uint8_t *r_bytes(rd *r, uint32_t *len)
{
    *len = r_u32(r);
    if (r->bad || *len == NONE)
        return NULL;
    if (r->n - r->pos < *len) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->pos;
    r->pos += *len;
    return p;
}

static uint8_t *dup_bytes(const uint8_t *p, uint32_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

/* Reads (and, when apply, restores) every queue. Two passes: check, then apply. */
static int read_all(sb_store *st, rd *r, int apply, size_t *loaded, char *err, size_t errlen)
{
    int64_t now = sb_now_ms();
    while (!r->bad && r->n - r->pos >= 4 && memcmp(r->p + r->pos, "END!", 4) != 0) {
        uint32_t nl, sl, al, rl;
        const uint8_t *name = r_bytes(r, &nl);
        char qname[SB_NAME_MAX + 40];
        if (!name || nl >= sizeof qname) {
            r->bad = 1;
            break;
        }
        memcpy(qname, name, nl);
        qname[nl] = 0;
        sb_queue *q = sb_store_find(st, qname);
        if (apply && !q)
            SB_WARN("persist: queue '%s' is no longer configured; its messages are dropped", qname);
        uint64_t next_seq = r_u64(r);
        uint32_t ns = r_u32(r);
        for (uint32_t i = 0; i < ns && !r->bad; i++) {
            const uint8_t *id = r_bytes(r, &sl);
            char sid[129];
            if (!id || sl >= sizeof sid) {
                r->bad = 1;
                break;
            }
            memcpy(sid, id, sl);
            sid[sl] = 0;
            const uint8_t *state = r_bytes(r, &al);
            if (apply && q && q->cfg->requires_session && !q->is_dlq) {
                sb_session *s = sb_queue_session(q, sid, 1);
                if (s && state) {
                    free(s->state);
                    s->state = dup_bytes(state, al);
                    s->state_len = s->state ? al : 0;
                }
            }
        }
        uint64_t count = r_u64(r);
        for (uint64_t i = 0; i < count && !r->bad; i++) {
            sb_msg tmp = {0};
            tmp.seq = r_u64(r);
            tmp.enqueued_ms = (int64_t)r_u64(r);
            tmp.expires_ms = (int64_t)r_u64(r);
            tmp.scheduled_ms = (int64_t)r_u64(r);
            tmp.delivery_count = r_u32(r);
            if (r->bad || r->n - r->pos < 6) {
                r->bad = 1;
                break;
            }
            const uint8_t *f = r->p + r->pos;
            r->pos += 6;
            tmp.state = f[0];
            tmp.deferred = f[1];
            tmp.durable = f[2];
            tmp.has_priority = f[3];
            tmp.priority = f[4];
            tmp.has_ttl = f[5];
            tmp.ttl = r_u32(r);
            const uint8_t *sid = r_bytes(r, &sl);
            tmp.ann_count = r_u32(r);
            const uint8_t *ann = r_bytes(r, &al);
            const uint8_t *rest = r_bytes(r, &rl);
            if (r->bad || (sid == NULL && sl != NONE) || !ann || !rest || (sid && sl > 128) ||
                tmp.state > SB_MS_SCHEDULED || tmp.seq == 0) {
                r->bad = 1;
                break;
            }
            if (!apply || !q)
                continue;
            char sidbuf[129];
            if (sid) {
                memcpy(sidbuf, sid, sl);
                sidbuf[sl] = 0;
            }
            sb_msg *m = malloc(sizeof *m);
            if (!m) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            *m = tmp;
            m->ann = dup_bytes(ann, al);
            m->ann_len = al;
            m->rest = dup_bytes(rest, rl);
            m->rest_len = rl;
            if (!m->ann || !m->rest || sb_queue_restore(q, m, sid ? sidbuf : NULL, now) < 0) {
                SB_WARN("persist: %s: message %llu could not be restored", qname,
                        (unsigned long long)tmp.seq);
                free(m->ann);
                free(m->rest);
                free(m);
                continue;
            }
            (*loaded)++;
        }
        if (apply && q && next_seq > q->next_seq)
            q->next_seq = next_seq;
    }
    if (r->bad || r->n - r->pos != 4 || memcmp(r->p + r->pos, "END!", 4) != 0) {
        snprintf(err, errlen, "corrupt or truncated snapshot (at byte %zu)", r->pos);
        return -1;
    }
    return 0;
}

int sb_persist_load(sb_store *st, const char *path, size_t *loaded, char *err, size_t errlen)
{
    *loaded = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    sb_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (sb_buf_put(&b, chunk, n) < 0) {
            fclose(f);
            sb_buf_free(&b);
            snprintf(err, errlen, "%s: out of memory", path);
            return -1;
        }
    fclose(f);
    if (b.len < sizeof MAGIC || memcmp(b.data, MAGIC, sizeof MAGIC) != 0) {
        sb_buf_free(&b);
        snprintf(err, errlen, "%s: not an intake-sb-emulator snapshot", path);
        return -1;
    }
    char e2[200] = "";
    rd r = {b.data, b.len, sizeof MAGIC, 0};
    int rc = read_all(st, &r, 0, loaded, e2, sizeof e2);
    if (rc == 0) {
        rd r2 = {b.data, b.len, sizeof MAGIC, 0};
        rc = read_all(st, &r2, 1, loaded, e2, sizeof e2);
    }
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", path, e2);
    sb_buf_free(&b);
    return rc;
}
