/* json_write.c: read-only JSON serializer matching json-c's plain output (see json_write.h). */
#include "json_write.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JO_MAX_DEPTH 1000

/* 1 for bytes json-c escapes: control characters, '"' and '\\'. */
static const unsigned char needs_escape[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
};

/* The end of the run of plain bytes (nothing json-c escapes) from s[i], at
 * most n: 8 bytes at a time while a word holds no byte below 0x20, no '"'
 * and no '\\' (the has-less-than and has-zero-byte word tricks), then byte
 * by byte to the exact place. */
static size_t plain_run_end(const unsigned char *s, size_t i, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
        if ((((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs)
            break;
        i += 8;
    }
    while (i < n && !needs_escape[s[i]])
        i++;
    return i;
}

/* Escapes one chunk into reserved space (6 bytes per input byte at most):
 * runs of plain bytes are copied in bulk. */
static char *escape_chunk(char *o, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;
    while (i < n) {
        size_t j = plain_run_end(s, i, n);
        memcpy(o, s + i, j - i);
        o += j - i;
        if (j == n)
            break;
        unsigned char c = s[j];
        i = j + 1;
        *o++ = '\\';
        switch (c) {
        case '\b':
            *o++ = 'b';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        case '\f':
            *o++ = 'f';
            break;
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 0xf];
            break;
        }
    }
    return o;
}

void jo_string(ik_buf *b, const char *s, size_t n)
{
    enum { CHUNK = 64 * 1024 };
    ik_buf_addc(b, '"');
    const unsigned char *p = (const unsigned char *)s;
    while (n > 0) {
        size_t k = n < CHUNK ? n : CHUNK;
        if (ik_buf_reserve(b, k * 6) != 0)
            return;
        char *end = escape_chunk(b->p + b->len, p, k);
        b->len = (size_t)(end - b->p);
        p += k;
        n -= k;
    }
    ik_buf_addc(b, '"');
}

static void jo_double(ik_buf *b, json_object *obj)
{
    /* A parsed double keeps its original text as userdata; json-c prints that. */
    const char *orig = json_object_get_userdata(obj);
    if (orig) {
        ik_buf_add(b, orig, strlen(orig));
        return;
    }
    double d = json_object_get_double(obj);
    char buf[64];
    if (isnan(d)) {
        ik_buf_add(b, "NaN", 3);
        return;
    }
    if (isinf(d)) {
        if (d > 0)
            ik_buf_add(b, "Infinity", 8);
        else
            ik_buf_add(b, "-Infinity", 9);
        return;
    }
    int n = snprintf(buf, sizeof buf, "%.17g", d);
    if (n < 0)
        return;
    char *comma = strchr(buf, ',');
    if (comma)
        *comma = '.';
    if (!strchr(buf, '.') && !strchr(buf, 'e') && (size_t)n + 2 < sizeof buf) {
        buf[n++] = '.';
        buf[n++] = '0';
    }
    ik_buf_add(b, buf, (size_t)n);
}

static void jo_value_depth(ik_buf *b, json_object *obj, int depth)
{
    char num[32];
    int n;
    if (!obj || depth > JO_MAX_DEPTH) {
        ik_buf_add(b, "null", 4);
        return;
    }
    switch (json_object_get_type(obj)) {
    case json_type_null:
        ik_buf_add(b, "null", 4);
        return;
    case json_type_boolean:
        if (json_object_get_boolean(obj))
            ik_buf_add(b, "true", 4);
        else
            ik_buf_add(b, "false", 5);
        return;
    case json_type_int: {
        int64_t v = json_object_get_int64(obj);
        if (v == INT64_MAX)
            n = snprintf(num, sizeof num, "%" PRIu64, json_object_get_uint64(obj));
        else
            n = snprintf(num, sizeof num, "%" PRId64, v);
        if (n > 0)
            ik_buf_add(b, num, (size_t)n);
        return;
    }
    case json_type_double:
        jo_double(b, obj);
        return;
    case json_type_string:
        jo_string(b, json_object_get_string(obj), (size_t)json_object_get_string_len(obj));
        return;
    case json_type_array: {
        size_t len = json_object_array_length(obj);
        ik_buf_addc(b, '[');
        for (size_t i = 0; i < len; i++) {
            if (i)
                ik_buf_addc(b, ',');
            jo_value_depth(b, json_object_array_get_idx(obj, i), depth + 1);
        }
        ik_buf_addc(b, ']');
        return;
    }
    case json_type_object: {
        int first = 1;
        ik_buf_addc(b, '{');
        json_object_object_foreach(obj, key, val)
        {
            if (!first)
                ik_buf_addc(b, ',');
            first = 0;
            jo_string(b, key, strlen(key));
            ik_buf_addc(b, ':');
            jo_value_depth(b, val, depth + 1);
        }
        ik_buf_addc(b, '}');
        return;
    }
    }
    ik_buf_add(b, "null", 4);
}

void jo_value(ik_buf *b, json_object *obj)
{
    jo_value_depth(b, obj, 0);
}

/* Runs one append into the plugin's buffer; on failure puts len back. */
static int into_plugin_buf(ik_buf *buf, const json_object *obj, const char *s, size_t n)
{
    if (buf->oom)
        return IK_E_NOMEM;
    size_t len = buf->len;
    if (s)
        jo_string(buf, s, n);
    else
        jo_value(buf, (json_object *)obj); /* read-only: only json_object_get_* and iteration */
    if (!buf->oom)
        return 0;
    buf->len = len;
    if (buf->p) /* the earlier contents stay a string */
        buf->p[len] = '\0';
    return IK_E_NOMEM;
}

int ik_json_write(const json_object *obj, ik_buf *buf)
{
    return into_plugin_buf(buf, obj, NULL, 0);
}

int ik_json_write_string(const char *s, size_t n, ik_buf *buf)
{
    return into_plugin_buf(buf, NULL, s ? s : "", s ? n : 0);
}
