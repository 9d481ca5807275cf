/*
 * message.c: the `servicebus` sink's records to AMQP messages. One message
 * per record (JSON body in a data section, message id from the record id),
 * or with envelope = "batch" the original service's batch envelope packing
 * consecutive records that share priority, session and scheduled time, up
 * to max_batch_size emails and the size limit. Messages are encoded here;
 * send.c only transfers the bytes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/sha256.h"
#include "sb_sink.h"

/* Room kept for everything of an envelope but its emails (properties,
 * annotations, the envelope's other keys), beyond the session id. */
#define ENVELOPE_RESERVE 1024

/* What must be equal for records to share an envelope, and their
 * per-message settings. */
typedef struct msg_key {
    int priority;
    char session[SBK_MAX_ID + 1]; /* "" when none */
    int has_sched;
    int64_t sched_ms;
    char error[IK_REASON_MAX]; /* set: the record cannot be sent */
} msg_key;

/* The text of a record's field `name`: a top-level string or integer of
 * the payload, else the metadata of that name. NULL when neither has it. */
static const char *field_text(const sbk_sink *s, const ik_record *rec, const char *name, char *buf,
                              size_t len)
{
    json_object *p = s->host->record_payload(rec);
    json_object *v = NULL;
    if (p && json_object_is_type(p, json_type_object) && json_object_object_get_ex(p, name, &v)) {
        if (json_object_is_type(v, json_type_string))
            return json_object_get_string(v); /* reading a string caches nothing */
        if (json_object_is_type(v, json_type_int)) {
            snprintf(buf, len, "%" PRId64, json_object_get_int64(v));
            return buf;
        }
    }
    return s->host->record_meta(rec, name);
}

/* Reads n digits at *p into *out. 0, or -1 when they are not digits. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return -1;
        v = v * 10 + (**p - '0');
    }
    *out = v;
    return 0;
}

/* A time as unix milliseconds (all digits) or ISO-8601 with a zone
 * ("2026-12-02T08:30:00Z", "...T08:30:00.250+01:00"). 0 or -1. */
static int parse_time(const char *s, int64_t *ms)
{
    char *end;
    if (s[0] >= '0' && s[0] <= '9' && strlen(s) <= 15 && strspn(s, "0123456789") == strlen(s)) {
        *ms = strtoll(s, &end, 10);
        return 0;
    }
    struct tm tm = {0};
    const char *p = s;
    int y, mo, d, h, mi, se, frac = 0;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' ') || !*p++ || digits(&p, 2, &h) ||
        *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &se))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return -1;
    if (*p == '.') {
        p++;
        int scale = 100, nd = 0;
        for (; *p >= '0' && *p <= '9'; p++, nd++) {
            frac += (*p - '0') * scale;
            scale /= 10;
        }
        if (nd == 0)
            return -1;
    }
    int off_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
            return -1;
        off_min = sign * (oh * 60 + om);
    } else {
        return -1; /* a time without a zone is ambiguous */
    }
    if (*p)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    *ms = ((int64_t)timegm(&tm) - (int64_t)off_min * 60) * 1000 + frac;
    return 0;
}

/* The record's priority: its `priority` metadata (what the servicebus
 * source sets from an envelope), else the engine's record priority. */
static int record_priority(const sbk_sink *s, const ik_record *rec)
{
    const char *m = s->host->record_meta(rec, "priority");
    char *end;
    long v = m ? strtol(m, &end, 10) : 0;
    if (m && end != m && !*end)
        return (int)v;
    return s->host->record_priority(rec);
}

/* Fills the key of rec; a bad session id or time sets k->error. */
static void make_key(const sbk_sink *s, const ik_record *rec, msg_key *k)
{
    char buf[32];
    memset(k, 0, sizeof *k);
    k->priority = record_priority(s, rec);
    const sbk_config *c = s->cfg;
    const char *v = c->session_from && c->session_from[0]
                        ? field_text(s, rec, c->session_from, buf, sizeof buf)
                        : NULL;
    if (v && v[0]) {
        if (strlen(v) > SBK_MAX_ID) {
            snprintf(k->error, sizeof k->error,
                     "session id from '%s' is %zu bytes long; Service Bus allows %d",
                     c->session_from, strlen(v), SBK_MAX_ID);
            return;
        }
        snprintf(k->session, sizeof k->session, "%s", v);
    }
    v = c->scheduled_from && c->scheduled_from[0]
            ? field_text(s, rec, c->scheduled_from, buf, sizeof buf)
            : NULL;
    if (v && v[0]) {
        if (parse_time(v, &k->sched_ms) != 0) {
            snprintf(k->error, sizeof k->error,
                     "scheduled enqueue time from '%s': '%.64s' is neither unix milliseconds "
                     "nor an ISO-8601 time with a zone (2026-12-02T08:30:00Z)",
                     c->scheduled_from, v);
            return;
        }
        k->has_sched = 1;
    }
}

static int same_key(const msg_key *a, const msg_key *b)
{
    return a->priority == b->priority && strcmp(a->session, b->session) == 0 &&
           a->has_sched == b->has_sched && (!a->has_sched || a->sched_ms == b->sched_ms);
}

/* The message id for a record id: itself, or "sha256:<hex>" of it when it
 * is longer than Service Bus allows (stable either way, so a resend of the
 * record is caught by duplicate detection). */
static void message_id(const char *id, char out[SBK_MAX_ID + 1])
{
    if (strlen(id) <= SBK_MAX_ID) {
        snprintf(out, SBK_MAX_ID + 1, "%s", id);
        return;
    }
    char hex[65];
    ik_sha256_hex(id, strlen(id), hex);
    snprintf(out, SBK_MAX_ID + 1, "sha256:%s", hex);
}

/* An envelope's batch id, from its records' ids: the same records give the
 * same id (a resend is a duplicate), different ones another. */
static int batch_id(const sbk_sink *s, ik_record *const *recs, size_t n, char out[40])
{
    ik_buf ids = {0};
    for (size_t i = 0; i < n; i++) {
        const char *id = s->host->record_id(recs[i]);
        ik_buf_add(&ids, id, strlen(id) + 1); /* with the NUL as separator */
    }
    if (ids.oom) {
        free(ids.p);
        return IK_E_NOMEM;
    }
    char hex[65];
    int rc = ik_sha256_hex(ids.p, ids.len, hex);
    free(ids.p);
    if (rc != 0)
        return IK_E_NOMEM;
    snprintf(out, 40, "batch_%.32s", hex);
    return 0;
}

static void put_prop_string(pn_data_t *d, const char *key, const char *value)
{
    pn_data_put_string(d, pn_bytes(strlen(key), key));
    pn_data_put_string(d, pn_bytes(strlen(value), value));
}

static void put_prop_int(pn_data_t *d, const char *key, int32_t value)
{
    pn_data_put_string(d, pn_bytes(strlen(key), key));
    pn_data_put_int(d, value);
}

/* Fills w->msg (id, properties, annotations, body = w->body) and encodes
 * it into w->wire at o->off. 0 or IK_E_NOMEM. */
static int encode(sbk_worker *w, sbk_out *o, const char *id, const char *batch, int email_count,
                  const msg_key *k)
{
    const sbk_sink *s = w->sink;
    pn_message_t *m = w->msg;
    pn_message_clear(m);
    pn_msgid_t mid = {.type = PN_STRING};
    mid.u.as_bytes = pn_bytes(strlen(id), id);
    pn_message_set_id(m, mid);
    pn_message_set_content_type(m, "application/json");
    if (k->session[0])
        pn_message_set_group_id(m, k->session);
    if (s->cfg->ttl)
        pn_message_set_ttl(m, (pn_millis_t)s->cfg->ttl);
    if (k->has_sched) {
        pn_data_t *a = pn_message_annotations(m);
        pn_data_put_map(a);
        pn_data_enter(a);
        static const char key[] = "x-opt-scheduled-enqueue-time";
        pn_data_put_symbol(a, pn_bytes(sizeof key - 1, key));
        pn_data_put_timestamp(a, k->sched_ms);
        pn_data_exit(a);
    }
    pn_data_t *p = pn_message_properties(m);
    pn_data_put_map(p);
    pn_data_enter(p);
    if (batch)
        put_prop_string(p, "batch_id", batch);
    put_prop_int(p, "email_count", email_count);
    put_prop_int(p, "priority", k->priority);
    pn_data_exit(p);
    pn_message_set_inferred(m, true); /* binary body: a data section */
    pn_data_put_binary(pn_message_body(m), pn_bytes(w->body.len, w->body.p));
    /* every message of the call goes into one buffer (no malloc per message) */
    size_t cap = w->body.len + 1024 + strlen(id) + (batch ? strlen(batch) : 0);
    for (;;) {
        w->wire.oom = 0;
        if (ik_buf_reserve(&w->wire, cap) != 0)
            return IK_E_NOMEM;
        size_t size = cap;
        int rc = pn_message_encode(m, w->wire.p + w->wire.len, &size);
        if (rc == 0) {
            o->off = w->wire.len;
            o->len = size;
            o->encoded = 1;
            w->wire.len += size;
            return 0;
        }
        if (rc != PN_OVERFLOW)
            return IK_E_NOMEM;
        cap *= 2;
    }
}

static sbk_out *new_out(sbk_worker *w, size_t first, size_t count)
{
    if (w->nouts == w->cap_outs) {
        size_t cap = w->cap_outs ? w->cap_outs * 2 : 16;
        sbk_out *o = realloc(w->outs, cap * sizeof *o);
        if (!o)
            return NULL;
        w->outs = o;
        w->cap_outs = cap;
    }
    sbk_out *o = &w->outs[w->nouts++];
    memset(o, 0, sizeof *o);
    o->first = first;
    o->count = count;
    return o;
}

/* A built message over the limit fails (it would fail alone, too). */
static void check_size(const sbk_worker *w, sbk_out *o, uint64_t limit)
{
    if (o->len <= limit)
        return;
    uint64_t opt = w->sink->cfg->max_message_size;
    o->status = IK_FAIL;
    snprintf(o->reason, sizeof o->reason,
             "message of %zu bytes is larger than the limit of %" PRIu64 " bytes (%s)", o->len,
             limit, limit < opt ? "the broker's max-message-size" : "the max_message_size option");
    o->done = 1;
    o->encoded = 0;
}

static void fail_out(sbk_out *o, const char *why)
{
    o->status = IK_FAIL;
    snprintf(o->reason, sizeof o->reason, "%s", why);
    o->done = 1;
}

/* One message per record. */
static int build_singles(sbk_worker *w, ik_record *const *recs, size_t n, uint64_t limit)
{
    const sbk_sink *s = w->sink;
    for (size_t i = 0; i < n; i++) {
        sbk_out *o = new_out(w, i, 1);
        if (!o)
            return IK_E_NOMEM;
        msg_key k;
        make_key(s, recs[i], &k);
        if (k.error[0]) {
            fail_out(o, k.error);
            continue;
        }
        w->body.len = 0;
        w->body.oom = 0;
        if (s->host->json_write(s->host->record_payload(recs[i]), &w->body) != 0)
            return IK_E_NOMEM;
        char id[SBK_MAX_ID + 1];
        message_id(s->host->record_id(recs[i]), id);
        if (encode(w, o, id, s->host->record_meta(recs[i], "batch_id"), 1, &k) != 0)
            return IK_E_NOMEM;
        check_size(w, o, limit);
    }
    return 0;
}

/* The envelope's keys after its emails (w->body holds `{"emails":[...`). */
static int envelope_tail(sbk_worker *w, const char *batch, size_t count, const msg_key *k)
{
    char created[40];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t l = strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(created + l, sizeof created - l, ".%03ldZ", ts.tv_nsec / 1000000);
    char tail[256];
    int len = snprintf(tail, sizeof tail,
                       "],\"batch_id\":\"%s\",\"total_count\":%zu,\"email_count\":%zu,"
                       "\"priority\":%d,\"retry_count\":0,\"created_at\":\"%s\"}",
                       batch, count, count, k->priority, created);
    ik_buf_add(&w->body, tail, (size_t)len);
    return w->body.oom ? IK_E_NOMEM : 0;
}

/* Packs records from *i on into one envelope of records sharing k. */
static int build_envelope(sbk_worker *w, ik_record *const *recs, size_t n, size_t *i,
                          const msg_key *k, uint64_t limit)
{
    const sbk_sink *s = w->sink;
    size_t first = *i, count = 0;
    uint64_t room = limit > ENVELOPE_RESERVE + strlen(k->session)
                        ? limit - ENVELOPE_RESERVE - strlen(k->session)
                        : 0;
    w->body.len = 0;
    w->body.oom = 0;
    ik_buf_add(&w->body, "{\"emails\":[", 11);
    while (*i < n && count < (size_t)s->cfg->max_batch_size) {
        if (count > 0) {
            msg_key next;
            make_key(s, recs[*i], &next);
            if (next.error[0] || !same_key(k, &next))
                break;
        }
        size_t mark = w->body.len;
        if (count > 0)
            ik_buf_addc(&w->body, ',');
        if (w->body.oom || s->host->json_write(s->host->record_payload(recs[*i]), &w->body) != 0)
            return IK_E_NOMEM;
        if (count > 0 && w->body.len > room) {
            w->body.len = mark; /* this email starts the next envelope */
            break;
        }
        count++;
        (*i)++;
    }
    char batch[40];
    sbk_out *o = new_out(w, first, count);
    if (!o || batch_id(s, recs + first, count, batch) != 0 ||
        envelope_tail(w, batch, count, k) != 0 || encode(w, o, batch, batch, (int)count, k) != 0)
        return IK_E_NOMEM;
    check_size(w, o, limit);
    return 0;
}

static int build_envelopes(sbk_worker *w, ik_record *const *recs, size_t n, uint64_t limit)
{
    size_t i = 0;
    while (i < n) {
        msg_key k;
        make_key(w->sink, recs[i], &k);
        if (k.error[0]) {
            sbk_out *o = new_out(w, i, 1);
            if (!o)
                return IK_E_NOMEM;
            fail_out(o, k.error);
            i++;
            continue;
        }
        int rc = build_envelope(w, recs, n, &i, &k, limit);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int sbk_build(sbk_worker *w, ik_record *const *recs, size_t n, uint64_t limit)
{
    w->nouts = 0;
    w->wire.len = 0;
    if (w->sink->cfg->envelope == SBK_ENVELOPE_BATCH)
        return build_envelopes(w, recs, n, limit);
    return build_singles(w, recs, n, limit);
}
