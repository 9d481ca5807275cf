/* amqpraw.c: bounds-checked AMQP 1.0 byte reader/writer (see amqpraw.h). */
#include "amqpraw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sb_buf_reserve(sb_buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (!d)
        return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

int sb_buf_put(sb_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (sb_buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int sb_buf_u8(sb_buf *b, uint8_t v)
{
    return sb_buf_put(b, &v, 1);
}

int sb_buf_u32be(sb_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return sb_buf_put(b, x, 4);
}

int sb_buf_u64be(sb_buf *b, uint64_t v)
{
    return sb_buf_u32be(b, (uint32_t)(v >> 32)) | sb_buf_u32be(b, (uint32_t)v);
}

static int put_var(sb_buf *b, uint8_t c8, uint8_t c32, const void *s, size_t n)
{
    int rc;
    if (n < 256)
        rc = sb_buf_u8(b, c8) | sb_buf_u8(b, (uint8_t)n);
    else
        rc = sb_buf_u8(b, c32) | sb_buf_u32be(b, (uint32_t)n);
    return rc | sb_buf_put(b, s, n);
}

int sb_buf_sym(sb_buf *b, const char *s)
{
    return put_var(b, 0xa3, 0xb3, s, strlen(s));
}

int sb_buf_str(sb_buf *b, const char *s, size_t n)
{
    return put_var(b, 0xa1, 0xb1, s, n);
}

void sb_buf_free(sb_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t be64(const uint8_t *p)
{
    return ((uint64_t)be32(p) << 32) | be32(p + 4);
}

int amqp_skip(const uint8_t *b, size_t n, size_t *pos)
{
    for (int depth = 0; depth < 8; depth++) {
        if (*pos >= n)
            return -1;
        uint8_t c = b[(*pos)++];
        if (c == 0x00) { /* described: skip the descriptor, then the value */
            if (amqp_skip(b, n, pos) < 0)
                return -1;
            continue;
        }
        size_t fixed, left = n - *pos;
        switch (c >> 4) {
        case 0x4:
            fixed = 0;
            break;
        case 0x5:
            fixed = 1;
            break;
        case 0x6:
            fixed = 2;
            break;
        case 0x7:
            fixed = 4;
            break;
        case 0x8:
            fixed = 8;
            break;
        case 0x9:
            fixed = 16;
            break;
        case 0xa:
        case 0xc:
        case 0xe:
            if (left < 1)
                return -1;
            fixed = 1 + (size_t)b[*pos];
            break;
        case 0xb:
        case 0xd:
        case 0xf:
            if (left < 4)
                return -1;
            fixed = 4 + (size_t)be32(b + *pos);
            if (fixed < 4)
                return -1;
            break;
        default:
            return -1;
        }
        if (fixed > left)
            return -1;
        *pos += fixed;
        return 0;
    }
    return -1;
}

int amqp_section(const uint8_t *b, size_t n, size_t *pos, uint64_t *code, size_t *vstart)
{
    size_t p = *pos;
    if (p + 2 > n || b[p] != 0x00)
        return -1;
    p++;
    if (b[p] == 0x53) {
        if (p + 2 > n)
            return -1;
        *code = b[p + 1];
        p += 2;
    } else if (b[p] == 0x80) {
        if (p + 9 > n)
            return -1;
        *code = be64(b + p + 1);
        p += 9;
    } else {
        return -1;
    }
    *vstart = p;
    if (amqp_skip(b, n, &p) < 0)
        return -1;
    *pos = p;
    return 0;
}

int amqp_compound(const uint8_t *b, size_t n, size_t *pos, uint32_t *count, size_t *end)
{
    size_t p = *pos;
    if (p >= n)
        return -1;
    uint8_t c = b[p++];
    if (c == 0x40 || c == 0x45) {
        *count = 0;
        *end = p;
        *pos = p;
        return 0;
    }
    size_t size;
    if (c == 0xc0 || c == 0xc1) {
        if (p + 2 > n)
            return -1;
        size = b[p];
        *count = b[p + 1];
        p += 2;
        if (size < 1)
            return -1;
        size -= 1;
    } else if (c == 0xd0 || c == 0xd1) {
        if (p + 8 > n)
            return -1;
        size = be32(b + p);
        *count = be32(b + p + 4);
        p += 8;
        if (size < 4)
            return -1;
        size -= 4;
    } else {
        return -1;
    }
    if (size > n - p)
        return -1;
    *end = p + size;
    *pos = p;
    return 0;
}

int amqp_read_u64(const uint8_t *b, size_t n, size_t *pos, uint64_t *v)
{
    size_t p = *pos;
    if (p >= n)
        return -1;
    uint8_t c = b[p++];
    size_t w;
    switch (c) {
    case 0x40:
        *pos = p;
        return 0;
    case 0x43:
    case 0x44:
        *v = 0;
        *pos = p;
        return 1;
    case 0x50:
    case 0x52:
    case 0x53:
        w = 1;
        break;
    case 0x60:
        w = 2;
        break;
    case 0x70:
        w = 4;
        break;
    case 0x80:
        w = 8;
        break;
    default:
        return -1;
    }
    if (p + w > n)
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < w; i++)
        x = (x << 8) | b[p + i];
    *v = x;
    *pos = p + w;
    return 1;
}

int amqp_read_i64(const uint8_t *b, size_t n, size_t *pos, int64_t *v)
{
    size_t p = *pos;
    if (p >= n)
        return -1;
    uint8_t c = b[p];
    if (c == 0x81 || c == 0x83) { /* long, timestamp */
        if (p + 9 > n)
            return -1;
        *v = (int64_t)be64(b + p + 1);
        *pos = p + 9;
        return 1;
    }
    if (c == 0x55) {
        if (p + 2 > n)
            return -1;
        *v = (int8_t)b[p + 1];
        *pos = p + 2;
        return 1;
    }
    if (c == 0x71) {
        if (p + 5 > n)
            return -1;
        *v = (int32_t)be32(b + p + 1);
        *pos = p + 5;
        return 1;
    }
    uint64_t u;
    int rc = amqp_read_u64(b, n, pos, &u);
    if (rc == 1) {
        if (u > INT64_MAX)
            return -1;
        *v = (int64_t)u;
    }
    return rc;
}

int amqp_read_bool(const uint8_t *b, size_t n, size_t *pos, int *v)
{
    size_t p = *pos;
    if (p >= n)
        return -1;
    uint8_t c = b[p];
    if (c == 0x40) {
        *pos = p + 1;
        return 0;
    }
    if (c == 0x41 || c == 0x42) {
        *v = c == 0x41;
        *pos = p + 1;
        return 1;
    }
    if (c == 0x56 && p + 2 <= n) {
        *v = b[p + 1] != 0;
        *pos = p + 2;
        return 1;
    }
    return -1;
}

int amqp_read_bytes(const uint8_t *b, size_t n, size_t *pos, const uint8_t **out, size_t *len,
                    uint8_t *type)
{
    size_t p = *pos;
    if (p >= n)
        return -1;
    uint8_t c = b[p++];
    if (c == 0x40) {
        *pos = p;
        return 0;
    }
    size_t l;
    if (c == 0xa0 || c == 0xa1 || c == 0xa3) {
        if (p + 1 > n)
            return -1;
        l = b[p];
        p += 1;
    } else if (c == 0xb0 || c == 0xb1 || c == 0xb3) {
        if (p + 4 > n)
            return -1;
        l = be32(b + p);
        p += 4;
    } else {
        return -1;
    }
    if (l > n - p)
        return -1;
    *out = b + p;
    *len = l;
    *type = c;
    *pos = p + l;
    return 1;
}

void sb_msg_parts_free(sb_msg_parts *parts)
{
    sb_buf_free(&parts->ann);
    sb_buf_free(&parts->rest);
}

/* Broker-owned annotation keys: never taken from a sender. */
static int broker_key(const uint8_t *k, size_t kl)
{
    static const char *const keys[] = {
        "x-opt-sequence-number",   "x-opt-enqueued-time", "x-opt-locked-until",
        "x-opt-message-state",     "x-opt-lock-token",    "x-opt-enqueue-sequence-number",
        "x-opt-deadletter-source", "x-opt-offset",        NULL};
    for (const char *const *p = keys; *p; p++)
        if (strlen(*p) == kl && memcmp(*p, k, kl) == 0)
            return 1;
    return 0;
}

static int parse_header(const uint8_t *b, size_t n, size_t v, sb_msg_parts *m)
{
    uint32_t count;
    size_t end;
    if (amqp_compound(b, n, &v, &count, &end) < 0)
        return -1;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t u;
        int bv, rc = 0;
        switch (i) {
        case 0:
            rc = amqp_read_bool(b, end, &v, &bv);
            if (rc == 1)
                m->durable = bv;
            break;
        case 1:
            rc = amqp_read_u64(b, end, &v, &u);
            if (rc == 1) {
                m->has_priority = 1;
                m->priority = (uint8_t)(u > 255 ? 255 : u);
            }
            break;
        case 2:
            rc = amqp_read_u64(b, end, &v, &u);
            if (rc == 1) {
                m->has_ttl = 1;
                m->ttl = (uint32_t)(u > UINT32_MAX ? UINT32_MAX : u);
            }
            break;
        default:
            rc = amqp_skip(b, end, &v);
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int parse_annotations(const uint8_t *b, size_t n, size_t v, sb_msg_parts *m)
{
    uint32_t count;
    size_t end;
    if (amqp_compound(b, n, &v, &count, &end) < 0 || count % 2)
        return -1;
    for (uint32_t i = 0; i < count; i += 2) {
        size_t kstart = v;
        const uint8_t *k;
        size_t kl;
        uint8_t kt;
        if (amqp_read_bytes(b, end, &v, &k, &kl, &kt) != 1)
            return -1;
        size_t vstart = v;
        if (amqp_skip(b, end, &v) < 0)
            return -1;
        if (broker_key(k, kl))
            continue;
        static const char sched[] = "x-opt-scheduled-enqueue-time";
        if (kl == sizeof sched - 1 && memcmp(k, sched, kl) == 0) {
            size_t p = vstart;
            int64_t t;
            if (amqp_read_i64(b, end, &p, &t) == 1 && t > 0)
                m->scheduled_ms = t;
        }
        if (sb_buf_put(&m->ann, b + kstart, v - kstart) < 0)
            return -1;
        m->ann_count += 2;
    }
    return 0;
}

static int parse_properties(const uint8_t *b, size_t n, size_t v, sb_msg_parts *m)
{
    uint32_t count;
    size_t end;
    if (amqp_compound(b, n, &v, &count, &end) < 0)
        return -1;
    for (uint32_t i = 0; i < count; i++) {
        size_t start = v;
        if (amqp_skip(b, end, &v) < 0)
            return -1;
        if (i == 0 && b[start] != 0x40) { /* message-id: keep type + bytes */
            size_t l = v - start;
            if (l > sizeof m->msgid)
                l = sizeof m->msgid;
            memcpy(m->msgid, b + start, l);
            m->msgid_len = l;
        } else if (i == 10 && b[start] != 0x40) { /* group-id = session id */
            size_t p = start;
            const uint8_t *s;
            size_t sl;
            uint8_t t;
            if (amqp_read_bytes(b, end, &p, &s, &sl, &t) != 1 || sl >= sizeof m->group_id)
                return -1;
            memcpy(m->group_id, s, sl);
            m->group_id[sl] = 0;
            m->has_group_id = 1;
        }
    }
    return 0;
}

int amqp_parse_message(const uint8_t *b, size_t n, sb_msg_parts *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    size_t pos = 0;
    int body = 0;
    while (pos < n) {
        size_t start = pos, v;
        uint64_t code;
        if (amqp_section(b, n, &pos, &code, &v) < 0) {
            snprintf(err, errlen, "malformed message section at byte %zu", start);
            return -1;
        }
        int rc = 0;
        switch (code) {
        case AMQP_SEC_HEADER:
            rc = parse_header(b, pos, v, m);
            break;
        case AMQP_SEC_DELIVERY_ANN:
            break;
        case AMQP_SEC_MESSAGE_ANN:
            rc = parse_annotations(b, pos, v, m);
            break;
        case AMQP_SEC_PROPERTIES:
            rc = parse_properties(b, pos, v, m);
            if (rc == 0)
                rc = sb_buf_put(&m->rest, b + start, pos - start);
            break;
        case AMQP_SEC_APP_PROPS:
        case AMQP_SEC_FOOTER:
            rc = sb_buf_put(&m->rest, b + start, pos - start);
            break;
        case AMQP_SEC_DATA:
        case AMQP_SEC_SEQUENCE:
        case AMQP_SEC_VALUE:
            body = 1;
            rc = sb_buf_put(&m->rest, b + start, pos - start);
            break;
        default:
            snprintf(err, errlen, "unknown message section 0x%llx at byte %zu",
                     (unsigned long long)code, start);
            return -1;
        }
        if (rc < 0) {
            snprintf(err, errlen, "malformed message section 0x%llx at byte %zu",
                     (unsigned long long)code, start);
            return -1;
        }
    }
    (void)body; /* a message without a body is legal */
    return 0;
}

int amqp_set_message_id(sb_msg_parts *m, const char *id)
{
    sb_buf out = {0};
    size_t idl = strlen(id);
    const uint8_t *r = m->rest.data;
    size_t n = m->rest.len, pos = 0, v = 0, after = 0;
    uint64_t code = 0;
    uint32_t count = 0;
    size_t fields = 0, end = 0;
    int have = n > 0 && amqp_section(r, n, &pos, &code, &v) == 0 && code == AMQP_SEC_PROPERTIES;
    if (have) {
        after = pos;
        if (amqp_compound(r, after, &v, &count, &end) < 0)
            return -1;
        fields = v;
        if (count > 0 && amqp_skip(r, end, &fields) < 0) /* skip the old (null) message-id */
            return -1;
    }
    sb_buf body = {0};
    if (sb_buf_str(&body, id, idl) < 0 || (have && sb_buf_put(&body, r + fields, end - fields) < 0))
        goto fail;
    uint32_t newcount = have && count > 0 ? count : 1;
    uint8_t h[4] = {0x00, 0x53, 0x73, 0xd0};
    if (sb_buf_put(&out, h, 4) < 0 || sb_buf_u32be(&out, (uint32_t)(body.len + 4)) < 0 ||
        sb_buf_u32be(&out, newcount) < 0 || sb_buf_put(&out, body.data, body.len) < 0 ||
        (n > after && sb_buf_put(&out, r + after, n - after) < 0))
        goto fail;
    sb_buf_free(&body);
    sb_buf_free(&m->rest);
    m->rest = out;
    m->msgid[0] = 0xa1;
    memcpy(m->msgid + 1, id, idl < sizeof m->msgid - 1 ? idl : sizeof m->msgid - 1);
    m->msgid_len = 1 + (idl < sizeof m->msgid - 1 ? idl : sizeof m->msgid - 1);
    return 0;
fail:
    sb_buf_free(&body);
    sb_buf_free(&out);
    return -1;
}

int amqp_batch_split(const uint8_t *b, size_t n, const uint8_t **starts, size_t *lens, int max)
{
    size_t pos = 0;
    int count = 0, inner = 0, other_body = 0;
    while (pos < n) {
        size_t v;
        uint64_t code;
        if (amqp_section(b, n, &pos, &code, &v) < 0)
            return -1;
        if (code == AMQP_SEC_DATA) {
            const uint8_t *d;
            size_t dl;
            uint8_t t;
            size_t p = v;
            if (amqp_read_bytes(b, pos, &p, &d, &dl, &t) != 1)
                return -1;
            if (dl >= 3 && d[0] == 0x00 && d[1] == 0x53 && d[2] >= 0x70 && d[2] <= 0x78)
                inner++;
            if (count < max) {
                starts[count] = d;
                lens[count] = dl;
            }
            count++;
        } else if (code == AMQP_SEC_SEQUENCE || code == AMQP_SEC_VALUE) {
            other_body = 1;
        }
    }
    if (other_body || count == 0 || inner != count)
        return 0;
    return count;
}

int amqp_put_header(sb_buf *out, int durable, int has_priority, uint8_t priority, int has_ttl,
                    uint32_t ttl, uint32_t delivery_count)
{
    uint8_t f[32];
    size_t k = 0;
    f[k++] = durable ? 0x41 : 0x42;
    if (has_priority) {
        f[k++] = 0x50;
        f[k++] = priority;
    } else {
        f[k++] = 0x40;
    }
    if (has_ttl) {
        f[k++] = 0x70;
        f[k++] = (uint8_t)(ttl >> 24);
        f[k++] = (uint8_t)(ttl >> 16);
        f[k++] = (uint8_t)(ttl >> 8);
        f[k++] = (uint8_t)ttl;
    } else {
        f[k++] = 0x40;
    }
    f[k++] = delivery_count == 0 ? 0x41 : 0x42;
    f[k++] = 0x70;
    f[k++] = (uint8_t)(delivery_count >> 24);
    f[k++] = (uint8_t)(delivery_count >> 16);
    f[k++] = (uint8_t)(delivery_count >> 8);
    f[k++] = (uint8_t)delivery_count;
    uint8_t h[5] = {0x00, 0x53, 0x70, 0xc0, (uint8_t)(k + 1)};
    return sb_buf_put(out, h, 5) | sb_buf_u8(out, 5) | sb_buf_put(out, f, k);
}

static int key_eq(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    return al == bl && memcmp(a, b, al) == 0;
}

/* 1 if key (raw string/symbol contents) is among the mods' keys. */
static int in_mods(const uint8_t *k, size_t kl, const uint8_t *mods, size_t mods_len,
                   uint32_t mods_count)
{
    size_t p = 0;
    for (uint32_t i = 0; i < mods_count; i += 2) {
        const uint8_t *mk;
        size_t ml;
        uint8_t t;
        if (amqp_read_bytes(mods, mods_len, &p, &mk, &ml, &t) != 1 || amqp_skip(mods, mods_len, &p))
            return 0;
        if (key_eq(k, kl, mk, ml))
            return 1;
    }
    return 0;
}

int amqp_merge_app_props(const uint8_t *rest, size_t rest_len, const uint8_t *mods, size_t mods_len,
                         uint32_t mods_count, sb_buf *out)
{
    sb_buf map = {0};
    uint32_t items = 0;
    size_t pos = 0, insert_at = 0, app_start = 0, app_end = 0;
    int have_app = 0;
    /* find the application-properties section, or where it belongs */
    while (pos < rest_len) {
        size_t start = pos, v;
        uint64_t code;
        if (amqp_section(rest, rest_len, &pos, &code, &v) < 0)
            goto fail;
        if (code == AMQP_SEC_PROPERTIES)
            insert_at = pos;
        if (code == AMQP_SEC_APP_PROPS) {
            have_app = 1;
            app_start = start;
            app_end = pos;
            uint32_t count;
            size_t end;
            if (amqp_compound(rest, pos, &v, &count, &end) < 0 || count % 2)
                goto fail;
            for (uint32_t i = 0; i < count; i += 2) {
                size_t ks = v;
                const uint8_t *k;
                size_t kl;
                uint8_t t;
                if (amqp_read_bytes(rest, end, &v, &k, &kl, &t) != 1 || amqp_skip(rest, end, &v))
                    goto fail;
                if (in_mods(k, kl, mods, mods_len, mods_count))
                    continue;
                if (sb_buf_put(&map, rest + ks, v - ks) < 0)
                    goto fail;
                items += 2;
            }
        }
    }
    /* the modifications, with string keys */
    size_t p = 0;
    for (uint32_t i = 0; i < mods_count; i += 2) {
        const uint8_t *k;
        size_t kl;
        uint8_t t;
        if (amqp_read_bytes(mods, mods_len, &p, &k, &kl, &t) != 1)
            goto fail;
        size_t vs = p;
        if (amqp_skip(mods, mods_len, &p) < 0)
            goto fail;
        if (sb_buf_str(&map, (const char *)k, kl) < 0 || sb_buf_put(&map, mods + vs, p - vs) < 0)
            goto fail;
        items += 2;
    }
    size_t cut_start = have_app ? app_start : insert_at;
    size_t cut_end = have_app ? app_end : insert_at;
    uint8_t h[4] = {0x00, 0x53, 0x74, 0xd1};
    if (sb_buf_put(out, rest, cut_start) < 0 || sb_buf_put(out, h, 4) < 0 ||
        sb_buf_u32be(out, (uint32_t)(map.len + 4)) < 0 || sb_buf_u32be(out, items) < 0 ||
        sb_buf_put(out, map.data, map.len) < 0 ||
        (rest_len > cut_end && sb_buf_put(out, rest + cut_end, rest_len - cut_end) < 0))
        goto fail;
    sb_buf_free(&map);
    return 0;
fail:
    sb_buf_free(&map);
    return -1;
}
