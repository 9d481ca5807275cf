/* json_write.c: read-only JSON serializer matching json-c's plain output (see json_write.h). */
#include "json_write.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JO_MAX_DEPTH 1000

void jo_free(jo_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static int jo_reserve(jo_buf *b, size_t n)
{
    if (b->len + n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
        cap *= 2;
    char *grown = realloc(b->data, cap);
    if (!grown) {
        b->oom = 1;
        return -1;
    }
    b->data = grown;
    b->cap = cap;
    return 0;
}

void jo_put(jo_buf *b, const char *s, size_t n)
{
    if (jo_reserve(b, n) != 0)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

void jo_putc(jo_buf *b, char c)
{
    if (jo_reserve(b, 1) != 0)
        return;
    b->data[b->len++] = c;
}

/* 1 for bytes json-c escapes: control characters, '"' and '\\'. */
static const unsigned char needs_escape[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
};

/* Escapes one chunk into reserved space (6 bytes per input byte at most):
 * runs of plain bytes are copied in bulk. */
static char *escape_chunk(char *o, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && !needs_escape[s[j]])
            j++;
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

void jo_string(jo_buf *b, const char *s, size_t n)
{
    enum { CHUNK = 64 * 1024 };
    jo_putc(b, '"');
    const unsigned char *p = (const unsigned char *)s;
    while (n > 0) {
        size_t k = n < CHUNK ? n : CHUNK;
        if (jo_reserve(b, k * 6) != 0)
            return;
        char *end = escape_chunk(b->data + b->len, p, k);
        b->len = (size_t)(end - b->data);
        p += k;
        n -= k;
    }
    jo_putc(b, '"');
}

static void jo_double(jo_buf *b, json_object *obj)
{
    /* A parsed double keeps its original text as userdata; json-c prints that. */
    const char *orig = json_object_get_userdata(obj);
    if (orig) {
        jo_put(b, orig, strlen(orig));
        return;
    }
    double d = json_object_get_double(obj);
    char buf[64];
    if (isnan(d)) {
        jo_put(b, "NaN", 3);
        return;
    }
    if (isinf(d)) {
        if (d > 0)
            jo_put(b, "Infinity", 8);
        else
            jo_put(b, "-Infinity", 9);
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
    jo_put(b, buf, (size_t)n);
}

static void jo_value_depth(jo_buf *b, json_object *obj, int depth)
{
    char num[32];
    int n;
    if (!obj || depth > JO_MAX_DEPTH) {
        jo_put(b, "null", 4);
        return;
    }
    switch (json_object_get_type(obj)) {
    case json_type_null:
        jo_put(b, "null", 4);
        return;
    case json_type_boolean:
        if (json_object_get_boolean(obj))
            jo_put(b, "true", 4);
        else
            jo_put(b, "false", 5);
        return;
    case json_type_int: {
        int64_t v = json_object_get_int64(obj);
        if (v == INT64_MAX)
            n = snprintf(num, sizeof num, "%" PRIu64, json_object_get_uint64(obj));
        else
            n = snprintf(num, sizeof num, "%" PRId64, v);
        if (n > 0)
            jo_put(b, num, (size_t)n);
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
        jo_putc(b, '[');
        for (size_t i = 0; i < len; i++) {
            if (i)
                jo_putc(b, ',');
            jo_value_depth(b, json_object_array_get_idx(obj, i), depth + 1);
        }
        jo_putc(b, ']');
        return;
    }
    case json_type_object: {
        int first = 1;
        jo_putc(b, '{');
        json_object_object_foreach(obj, key, val)
        {
            if (!first)
                jo_putc(b, ',');
            first = 0;
            jo_string(b, key, strlen(key));
            jo_putc(b, ':');
            jo_value_depth(b, val, depth + 1);
        }
        jo_putc(b, '}');
        return;
    }
    }
    jo_put(b, "null", 4);
}

void jo_value(jo_buf *b, json_object *obj)
{
    jo_value_depth(b, obj, 0);
}

/* Runs one append into the plugin's buffer through a jo_buf view of it. */
static int into_plugin_buf(ik_json_buf *buf, const json_object *obj, const char *s, size_t n)
{
    jo_buf b = {.data = buf->data, .len = buf->len, .cap = buf->cap};
    if (s)
        jo_string(&b, s, n);
    else
        jo_value(&b, (json_object *)obj); /* read-only: only json_object_get_* and iteration */
    buf->data = b.data;
    buf->cap = b.cap;
    if (b.oom)
        return IK_E_NOMEM; /* buf->len unchanged */
    buf->len = b.len;
    return 0;
}

int ik_json_write(const json_object *obj, ik_json_buf *buf)
{
    return into_plugin_buf(buf, obj, NULL, 0);
}

int ik_json_write_string(const char *s, size_t n, ik_json_buf *buf)
{
    return into_plugin_buf(buf, NULL, s ? s : "", s ? n : 0);
}
