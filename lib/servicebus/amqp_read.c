/*
 * amqp_read.c: AMQP 1.0 encoded values -> json-c values (see amqp_read.h).
 * Written for hostile input: every length is checked against what is left
 * before it is used, a compound's item count may not exceed its byte size
 * (so a few bytes cannot ask for billions of items), a compound must end
 * exactly where its size says, and nesting is limited to SB_MAX_DEPTH.
 */
#include "amqp_read.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"
#include <intake/plugin.h>

int sb_fail(sb_reader *r, size_t at, const char *fmt, ...)
{
    if (r->err && r->errlen) {
        int k = snprintf(r->err, r->errlen, "at byte %zu: ", at);
        if (k >= 0 && (size_t)k < r->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(r->err + k, r->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return IK_E_PARSE;
}

const char *sb_json_type_name(const json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        return "null";
    case json_type_boolean:
        return "a boolean";
    case json_type_double:
        return "a floating-point number";
    case json_type_int:
        return "an integer";
    case json_type_object:
        return "a map";
    case json_type_array:
        return "a list";
    case json_type_string:
        return "a string";
    }
    return "a value";
}

static uint64_t be(const unsigned char *p, size_t w)
{
    uint64_t x = 0;
    for (size_t i = 0; i < w; i++)
        x = (x << 8) | p[i];
    return x;
}

/* Checks that k more bytes at r->pos are readable; `what` names them. */
static int need(sb_reader *r, size_t k, const char *what)
{
    if (r->n - r->pos < k)
        return sb_fail(r, r->pos, "%s needs %zu bytes, only %zu left", what, k, r->n - r->pos);
    return 0;
}

/* Lower-case hex of p[0..len) as a JSON string (NULL when out of memory). */
static json_object *hex_string(const unsigned char *p, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    char *s = malloc(len * 2 + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 15];
    }
    s[len * 2] = '\0';
    json_object *o = json_object_new_string_len(s, (int)(len * 2));
    free(s);
    return o;
}

static json_object *uuid_string(const unsigned char *p)
{
    char s[37];
    snprintf(s, sizeof s, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13],
             p[14], p[15]);
    return json_object_new_string(s);
}

/* A UTF-32 char as a one-character string; IK_E_PARSE for a surrogate or past U+10FFFF. */
static int char_string(sb_reader *r, size_t at, uint32_t c, json_object **out)
{
    char s[4];
    int n;
    if ((c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
        return sb_fail(r, at, "char U+%" PRIX32 " is not a Unicode scalar value", c);
    if (c < 0x80) {
        s[0] = (char)c;
        n = 1;
    } else if (c < 0x800) {
        s[0] = (char)(0xc0 | (c >> 6));
        s[1] = (char)(0x80 | (c & 0x3f));
        n = 2;
    } else if (c < 0x10000) {
        s[0] = (char)(0xe0 | (c >> 12));
        s[1] = (char)(0x80 | ((c >> 6) & 0x3f));
        s[2] = (char)(0x80 | (c & 0x3f));
        n = 3;
    } else {
        s[0] = (char)(0xf0 | (c >> 18));
        s[1] = (char)(0x80 | ((c >> 12) & 0x3f));
        s[2] = (char)(0x80 | ((c >> 6) & 0x3f));
        s[3] = (char)(0x80 | (c & 0x3f));
        n = 4;
    }
    *out = json_object_new_string_len(s, n);
    return *out ? 0 : IK_E_NOMEM;
}

/* Bytes of the fixed-width encodings (0x40..0x98); -1 for any other code. */
static int fixed_width(unsigned char code)
{
    switch (code) {
    case 0x40: /* null */
    case 0x41: /* true */
    case 0x42: /* false */
    case 0x43: /* uint0 */
    case 0x44: /* ulong0 */
    case 0x45: /* list0 */
        return 0;
    case 0x50: /* ubyte */
    case 0x51: /* byte */
    case 0x52: /* smalluint */
    case 0x53: /* smallulong */
    case 0x54: /* smallint */
    case 0x55: /* smalllong */
    case 0x56: /* boolean */
        return 1;
    case 0x60: /* ushort */
    case 0x61: /* short */
        return 2;
    case 0x70: /* uint */
    case 0x71: /* int */
    case 0x72: /* float */
    case 0x73: /* char */
    case 0x74: /* decimal32 */
        return 4;
    case 0x80: /* ulong */
    case 0x81: /* long */
    case 0x82: /* double */
    case 0x83: /* timestamp */
    case 0x84: /* decimal64 */
        return 8;
    case 0x94: /* decimal128 */
    case 0x98: /* uuid */
        return 16;
    }
    return -1;
}

/* Converts a fixed-width value of `code` at p (width bytes, already checked). */
static int convert_fixed(sb_reader *r, size_t at, unsigned char code, const unsigned char *p,
                         int width, json_object **out)
{
    uint64_t u = be(p, (size_t)width);
    float f;
    double d;
    switch (code) {
    case 0x40:
    case 0x45:
        *out = code == 0x45 ? json_object_new_array() : NULL;
        return code == 0x45 && !*out ? IK_E_NOMEM : 0;
    case 0x41:
    case 0x42:
    case 0x56:
        *out = json_object_new_boolean(code == 0x41 || (code == 0x56 && u != 0));
        break;
    case 0x51:
        *out = json_object_new_int64((int8_t)u);
        break;
    case 0x61:
        *out = json_object_new_int64((int16_t)u);
        break;
    case 0x54:
    case 0x55:
        *out = json_object_new_int64((int8_t)u);
        break;
    case 0x71:
        *out = json_object_new_int64((int32_t)u);
        break;
    case 0x81:
    case 0x83:
        *out = json_object_new_int64((int64_t)u);
        break;
    case 0x72:
        memcpy(&f, &(uint32_t){(uint32_t)u}, sizeof f);
        *out = isfinite(f) ? json_object_new_double(f) : NULL;
        return isfinite(f) && !*out ? IK_E_NOMEM : 0;
    case 0x82:
        memcpy(&d, &u, sizeof d);
        *out = isfinite(d) ? json_object_new_double(d) : NULL;
        return isfinite(d) && !*out ? IK_E_NOMEM : 0;
    case 0x73:
        return char_string(r, at, (uint32_t)u, out);
    case 0x74:
    case 0x84:
    case 0x94:
        *out = hex_string(p, (size_t)width);
        break;
    case 0x98:
        *out = uuid_string(p);
        break;
    default: /* the unsigned integers */
        *out = u > INT64_MAX ? json_object_new_uint64(u) : json_object_new_int64((int64_t)u);
    }
    return *out ? 0 : IK_E_NOMEM;
}

/* Reads the length of a variable-width value (1 or 4 bytes) and checks that many bytes follow. */
static int var_length(sb_reader *r, unsigned char code, size_t *len)
{
    size_t w = (code & 0xf0) == 0xa0 ? 1 : 4, at = r->pos - 1; /* the constructor */
    int rc = need(r, w, "a length");
    if (rc)
        return rc;
    *len = (size_t)be(r->b + r->pos, w);
    r->pos += w;
    if (*len > r->n - r->pos)
        return sb_fail(r, at, "%s of %zu bytes runs past the end (%zu bytes left)",
                       code == 0xa0 || code == 0xb0   ? "binary"
                       : code == 0xa1 || code == 0xb1 ? "string"
                                                      : "symbol",
                       *len, r->n - r->pos);
    return 0;
}

/* Converts the binary, string or symbol of `code` at r->pos. */
static int convert_var(sb_reader *r, unsigned char code, json_object **out)
{
    size_t len, at = r->pos - 1; /* the constructor */
    int rc = var_length(r, code, &len);
    if (rc)
        return rc;
    const unsigned char *p = r->b + r->pos;
    r->pos += len;
    if (!out)
        return 0;
    if (len > INT32_MAX / 2) /* json-c lengths are ints; binary doubles in hex */
        return sb_fail(r, at, "value of %zu bytes is too large", len);
    if (code == 0xa0 || code == 0xb0) {
        *out = hex_string(p, len);
        return *out ? 0 : IK_E_NOMEM;
    }
    if (!ik_utf8_valid((const char *)p, len))
        return sb_fail(r, at, "%s is not valid UTF-8",
                       code == 0xa1 || code == 0xb1 ? "string" : "symbol");
    *out = json_object_new_string_len((const char *)p, (int)len);
    return *out ? 0 : IK_E_NOMEM;
}

static int read_typed(sb_reader *r, unsigned char code, size_t code_at, int depth,
                      json_object **out);

/* The text of a converted map key (a string, or an integer as decimal). */
static int key_text(sb_reader *r, size_t at, json_object *k, char *num, size_t numlen,
                    const char **text)
{
    if (json_object_is_type(k, json_type_string)) {
        *text = json_object_get_string(k);
        if (strlen(*text) != (size_t)json_object_get_string_len(k))
            return sb_fail(r, at, "map key contains a NUL byte");
        return 0;
    }
    if (json_object_is_type(k, json_type_int)) {
        if (json_object_get_int64(k) == INT64_MAX) /* maybe a uint64 above it */
            snprintf(num, numlen, "%" PRIu64, json_object_get_uint64(k));
        else
            snprintf(num, numlen, "%" PRId64, json_object_get_int64(k));
        *text = num;
        return 0;
    }
    return sb_fail(r, at, "map key is %s, want a string, symbol or integer", sb_json_type_name(k));
}

/* Reads count items (a map: count/2 pairs) of a list or map up to r->n. */
static int read_items(sb_reader *r, int is_map, uint32_t count, int depth, json_object *into)
{
    for (uint32_t i = 0; i < count; i++) {
        size_t at = r->pos;
        json_object *v = NULL;
        int rc = sb_read_value(r, depth, into ? &v : NULL);
        if (rc)
            return rc;
        if (!into)
            continue;
        if (!is_map) {
            if (json_object_array_add(into, v) != 0) {
                json_object_put(v);
                return IK_E_NOMEM;
            }
            continue;
        }
        json_object *val = NULL;
        char num[24];
        const char *key = NULL;
        rc = key_text(r, at, v, num, sizeof num, &key);
        rc = rc ? rc : sb_read_value(r, depth, &val);
        if (!rc && json_object_object_add(into, key, val) != 0)
            rc = IK_E_NOMEM;
        json_object_put(v);
        if (rc) {
            json_object_put(val);
            return rc;
        }
        i++;
    }
    return 0;
}

/*
 * Reads the size and count of a compound (list, map or array of `code`),
 * narrows r->n to its end and returns the old end in *outer. The count may
 * not exceed the bytes it has (every item takes at least one, but for
 * arrays of zero-width items, which are refused the same way).
 */
static int open_compound(sb_reader *r, unsigned char code, uint32_t *count, size_t *outer)
{
    size_t w = (code & 0xf0) == 0xc0 || code == 0xe0 ? 1 : 4, at = r->pos - 1; /* constructor */
    int rc = need(r, 2 * w, code >= 0xe0 ? "an array header" : "a list or map header");
    if (rc)
        return rc;
    size_t size = (size_t)be(r->b + r->pos, w);
    *count = (uint32_t)be(r->b + r->pos + w, w);
    r->pos += w;
    if (size < w || size > r->n - r->pos)
        return sb_fail(r, at, "%s of %zu bytes runs past the end (%zu bytes left)",
                       code >= 0xe0 ? "array" : "list or map", size, r->n - r->pos);
    r->pos += w;
    size -= w;
    if (*count > size)
        return sb_fail(r, at, "%" PRIu32 " items cannot fit in %zu bytes", *count, size);
    if ((code == 0xc1 || code == 0xd1) && *count % 2)
        return sb_fail(r, at, "map has an odd number of items (%" PRIu32 ")", *count);
    *outer = r->n;
    r->n = r->pos + size;
    return 0;
}

/* Restores r->n after a compound, which must have ended exactly at its size. */
static int close_compound(sb_reader *r, size_t at, size_t outer)
{
    size_t end = r->n;
    r->n = outer;
    if (r->pos != end)
        return sb_fail(r, at, "%zu bytes left over after the last item", end - r->pos);
    return 0;
}

/* An array: one constructor (maybe described), then count values of it. */
static int read_array_items(sb_reader *r, uint32_t count, int depth, json_object *into)
{
    size_t at = r->pos;
    int rc = need(r, 1, "an array's element type");
    if (rc)
        return rc;
    unsigned char code = r->b[r->pos++];
    if (code == 0x00) { /* described elements: one descriptor for all */
        rc = sb_read_value(r, depth, NULL);
        rc = rc ? rc : need(r, 1, "an array's element type");
        if (rc)
            return rc;
        at = r->pos;
        code = r->b[r->pos++];
    }
    if (code == 0x00)
        return sb_fail(r, at, "array element type is described twice");
    for (uint32_t i = 0; i < count; i++) {
        json_object *v = NULL;
        rc = read_typed(r, code, at, depth, into ? &v : NULL);
        if (rc)
            return rc;
        if (into && json_object_array_add(into, v) != 0) {
            json_object_put(v);
            return IK_E_NOMEM;
        }
    }
    return 0;
}

/* A list, map or array of `code` at r->pos (after its constructor byte). */
static int read_compound(sb_reader *r, unsigned char code, size_t code_at, int depth,
                         json_object **out)
{
    if (depth >= SB_MAX_DEPTH)
        return sb_fail(r, code_at, "values nested deeper than %d levels", SB_MAX_DEPTH);
    uint32_t count;
    size_t outer = r->n;
    int rc = open_compound(r, code, &count, &outer);
    if (rc)
        return rc;
    int is_map = code == 0xc1 || code == 0xd1;
    json_object *v = NULL;
    if (out && !(v = is_map ? json_object_new_object() : json_object_new_array())) {
        r->n = outer;
        return IK_E_NOMEM;
    }
    if (code == 0xe0 || code == 0xf0)
        rc = read_array_items(r, count, depth + 1, v);
    else
        rc = read_items(r, is_map, count, depth + 1, v);
    if (rc) {
        r->n = outer;
        json_object_put(v);
        return rc;
    }
    rc = close_compound(r, code_at, outer);
    if (rc) {
        json_object_put(v);
        return rc;
    }
    if (out)
        *out = v;
    return 0;
}

/* Reads a value whose constructor `code` (at code_at) has been read. */
static int read_typed(sb_reader *r, unsigned char code, size_t code_at, int depth,
                      json_object **out)
{
    int w = fixed_width(code);
    if (w >= 0) {
        int rc = need(r, (size_t)w, "a value");
        if (rc)
            return rc;
        const unsigned char *p = r->b + r->pos;
        r->pos += (size_t)w;
        return out ? convert_fixed(r, code_at, code, p, w, out) : 0;
    }
    switch (code) {
    case 0xa0:
    case 0xa1:
    case 0xa3:
    case 0xb0:
    case 0xb1:
    case 0xb3:
        return convert_var(r, code, out);
    case 0xc0:
    case 0xc1:
    case 0xd0:
    case 0xd1:
    case 0xe0:
    case 0xf0:
        return read_compound(r, code, code_at, depth, out);
    }
    return sb_fail(r, code_at, "unknown type code 0x%02x", code);
}

int sb_read_value(sb_reader *r, int depth, json_object **out)
{
    if (out)
        *out = NULL;
    size_t at = r->pos;
    int rc = need(r, 1, "a value");
    if (rc)
        return rc;
    unsigned char code = r->b[r->pos++];
    if (code != 0x00)
        return read_typed(r, code, at, depth, out);
    /* A described value: the descriptor is checked and dropped. */
    if (depth >= SB_MAX_DEPTH)
        return sb_fail(r, at, "values nested deeper than %d levels", SB_MAX_DEPTH);
    rc = sb_read_value(r, depth + 1, NULL);
    return rc ? rc : sb_read_value(r, depth + 1, out);
}

int sb_read_bytes(sb_reader *r, const char *what, unsigned char *type, const unsigned char **p,
                  size_t *len)
{
    size_t at = r->pos;
    int rc = need(r, 1, what);
    if (rc)
        return rc;
    unsigned char code = r->b[r->pos];
    if (code != 0xa0 && code != 0xa1 && code != 0xa3 && code != 0xb0 && code != 0xb1 &&
        code != 0xb3)
        return sb_fail(r, at, "%s holds type 0x%02x, not binary or a string", what, code);
    r->pos++;
    rc = var_length(r, code, len);
    if (rc)
        return rc;
    *type = code;
    *p = r->b + r->pos;
    r->pos += *len;
    return 0;
}
