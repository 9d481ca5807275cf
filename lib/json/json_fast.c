/*
 * json_fast.c: the JSON fast path (see json_fast.h). json-c's tokener is a
 * state machine that handles input a character at a time (and switches the
 * locale on every call); records are mostly long strings, so here a string
 * is scanned a 64-bit word at a time (two words a step) for the bytes that
 * end a plain run ('"', '\\' and control characters) and its plain runs are
 * copied whole.
 *
 * The contract, which tests/unit/test_json_fast.c and
 * tests/fuzz/fuzz_json_fast.c check against json-c: accepting a text implies
 * that json-c 0.16's tokener in strict mode accepts it with an identical
 * tree. So every rule here is json-c's or stricter: the same whitespace (space,
 * tab, CR, LF), the same \u decoding (surrogate pairs to four UTF-8 bytes),
 * json_object_object_add for every member as the tokener does it (a
 * duplicate key keeps its first place and takes the last value), the same
 * depth rule; and whatever json-c treats in a way of its own (doubles, which
 * keep their text; integers near or past the int64 range; leading zeros;
 * lone surrogates; \u0000; raw control characters) is declined, not
 * imitated.
 */
#include "json/json_fast.h"

#include <stdint.h>
#include <string.h>

#include "common/buf.h"

/* Texts this large are left to json-c (whose lengths are ints). */
#define JF_MAX_LEN ((size_t)1 << 30)
/* More digits than this may not fit an int64: left to json-c. */
#define JF_MAX_DIGITS 18

/*
 * One parse. `keys` holds, bottom up, the keys of the members being parsed
 * (NUL-terminated, one per open object level) and, on top and only while it
 * is built, the decoded text of a string with escapes.
 */
typedef struct jf {
    const char *p, *end;
    int max_depth;
    ik_buf keys;
} jf;

static int parse_value(jf *f, int depth, json_object **out);

static void skip_ws(jf *f)
{
    while (f->p < f->end && (*f->p == ' ' || *f->p == '\n' || *f->p == '\r' || *f->p == '\t'))
        f->p++;
}

/* 1 when the next byte is c (consumed), else 0. */
static int eat(jf *f, char c)
{
    if (f->p < f->end && *f->p == c) {
        f->p++;
        return 1;
    }
    return 0;
}

#define JF_ONES  0x0101010101010101ull
#define JF_HIGHS 0x8080808080808080ull

/*
 * Non-zero when one of the 8 bytes of w is '"', '\\' or below 0x20 (exact
 * about whether, not about where). It is the has-zero-byte test
 * (x - 0x01..) & ~x & 0x80.. for x = w ^ '"', w ^ '\\' and the has-less
 * test for 0x20, with one ~w & 0x80.. for all three: xor with a byte below
 * 0x80 leaves the high bits as they are.
 */
static inline uint64_t special_in(uint64_t w)
{
    uint64_t q = (w ^ (JF_ONES * '"')) - JF_ONES, b = (w ^ (JF_ONES * '\\')) - JF_ONES;
    return (q | b | (w - JF_ONES * 0x20)) & ~w & JF_HIGHS;
}

/* The first byte at or after p (before end) that is '"', '\\' or a control
 * character, or end: where a plain run of string text stops. Email bodies
 * are runs of thousands of bytes: 16 at a time, then 8, then byte by byte. */
static const char *plain_run(const char *p, const char *end)
{
    uint64_t w[2];
    while (end - p >= 16) {
        memcpy(w, p, 16);
        if (special_in(w[0]) | special_in(w[1]))
            break;
        p += 16;
    }
    if (end - p >= 8) {
        memcpy(w, p, 8);
        if (!special_in(w[0]))
            p += 8;
    }
    while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
        p++;
    return p;
}

/* The value of the 4 hex digits at p (end - p >= 4), or -1. */
static long hex4(const char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* Appends code point u (not a surrogate, not 0, at most 0x10FFFF) as
 * UTF-8, as json-c writes it. */
static void add_utf8(ik_buf *b, unsigned long u)
{
    char s[4];
    size_t n;
    if (u < 0x80) {
        s[0] = (char)u;
        n = 1;
    } else if (u < 0x800) {
        s[0] = (char)(0xc0 | u >> 6);
        s[1] = (char)(0x80 | (u & 0x3f));
        n = 2;
    } else if (u < 0x10000) {
        s[0] = (char)(0xe0 | u >> 12);
        s[1] = (char)(0x80 | (u >> 6 & 0x3f));
        s[2] = (char)(0x80 | (u & 0x3f));
        n = 3;
    } else {
        s[0] = (char)(0xf0 | u >> 18);
        s[1] = (char)(0x80 | (u >> 12 & 0x3f));
        s[2] = (char)(0x80 | (u >> 6 & 0x3f));
        s[3] = (char)(0x80 | (u & 0x3f));
        n = 4;
    }
    ik_buf_add(b, s, n);
}

/*
 * The \uXXXX escape at f->p (just past "\u"), with its low surrogate when it
 * is a high one, appended as UTF-8. Declines (0) \u0000 and any surrogate
 * that is not half of a high-then-low pair: json-c writes U+FFFD for those,
 * in ways not worth imitating.
 */
static int unicode_escape(jf *f)
{
    if (f->end - f->p < 4)
        return 0;
    long u = hex4(f->p);
    f->p += 4;
    if (u <= 0 || (u >= 0xDC00 && u <= 0xDFFF))
        return 0;
    if (u >= 0xD800 && u <= 0xDBFF) {
        if (f->end - f->p < 6 || f->p[0] != '\\' || f->p[1] != 'u')
            return 0;
        long lo = hex4(f->p + 2);
        if (lo < 0xDC00 || lo > 0xDFFF)
            return 0;
        f->p += 6;
        u = ((u & 0x3FF) << 10) + (lo & 0x3FF) + 0x10000;
    }
    add_utf8(&f->keys, (unsigned long)u);
    return 1;
}

/* The escape at f->p (just past its backslash), decoded onto f->keys. */
static int escape(jf *f)
{
    if (f->p >= f->end)
        return 0;
    char c = *f->p++;
    switch (c) {
    case '"':
    case '\\':
    case '/':
        break;
    case 'b':
        c = '\b';
        break;
    case 'f':
        c = '\f';
        break;
    case 'n':
        c = '\n';
        break;
    case 'r':
        c = '\r';
        break;
    case 't':
        c = '\t';
        break;
    case 'u':
        return unicode_escape(f);
    default:
        return 0;
    }
    ik_buf_addc(&f->keys, c);
    return 1;
}

/*
 * Decodes the rest of a string onto the top of f->keys: the plain run
 * [f->p, q) (q from plain_run), then escapes and runs up to the closing
 * quote; f->p ends past that quote. Returns 1, or 0 to decline (malformed,
 * a control character, an escape left to json-c, out of memory).
 */
static int string_tail(jf *f, const char *q)
{
    for (;;) {
        ik_buf_add(&f->keys, f->p, (size_t)(q - f->p));
        f->p = q;
        if (q == f->end || (unsigned char)*q < 0x20)
            return 0;
        f->p++;
        if (*q == '"')
            return !f->keys.oom;
        if (!escape(f))
            return 0;
        q = plain_run(f->p, f->end);
    }
}

/* The string value at f->p (past the opening quote). A string without
 * escapes (the common case) is made from the input itself. */
static int string_value(jf *f, json_object **out)
{
    const char *q = plain_run(f->p, f->end);
    const char *s = f->p;
    size_t n = (size_t)(q - f->p), base = f->keys.len;
    if (q < f->end && *q == '"') {
        f->p = q + 1;
    } else {
        if (!string_tail(f, q)) {
            f->keys.len = base;
            return 0;
        }
        s = f->keys.p + base;
        n = f->keys.len - base;
    }
    *out = json_object_new_string_len(s, (int)n);
    f->keys.len = base;
    return *out != NULL;
}

/*
 * An integer at f->p that plainly fits int64: '-'? then "0" or up to 18
 * digits without a leading zero, not followed by a fraction or exponent
 * (json-c keeps a double's text; left to it). "-0" is json-c's int 0.
 */
static int number_value(jf *f, json_object **out)
{
    int neg = eat(f, '-');
    const char *d = f->p;
    uint64_t v = 0;
    while (f->p < f->end && *f->p >= '0' && *f->p <= '9')
        v = v * 10 + (uint64_t)(*f->p++ - '0');
    size_t n = (size_t)(f->p - d);
    if (n == 0 || n > JF_MAX_DIGITS || (n > 1 && *d == '0'))
        return 0;
    if (f->p < f->end && (*f->p == '.' || *f->p == 'e' || *f->p == 'E'))
        return 0;
    *out = json_object_new_int64(neg ? -(int64_t)v : (int64_t)v);
    return *out != NULL;
}

/* The literal `word` (n bytes) at f->p, consumed. */
static int literal(jf *f, const char *word, size_t n)
{
    if ((size_t)(f->end - f->p) < n || memcmp(f->p, word, n) != 0)
        return 0;
    f->p += n;
    return 1;
}

/* The members of the object at f->p (past '{' and whitespace) added to obj
 * in order; f->p past the closing brace. */
static int object_members(jf *f, int depth, json_object *obj)
{
    if (eat(f, '}'))
        return 1;
    for (;;) {
        size_t key = f->keys.len;
        if (!eat(f, '"') || !string_tail(f, plain_run(f->p, f->end)))
            return 0;
        ik_buf_addc(&f->keys, '\0');
        skip_ws(f);
        if (f->keys.oom || !eat(f, ':'))
            return 0;
        skip_ws(f);
        json_object *val;
        if (!parse_value(f, depth + 1, &val))
            return 0;
        if (json_object_object_add(obj, f->keys.p + key, val) != 0) {
            json_object_put(val);
            return 0;
        }
        f->keys.len = key;
        skip_ws(f);
        if (eat(f, '}'))
            return 1;
        if (!eat(f, ','))
            return 0;
        skip_ws(f);
    }
}

/* At an array's ']': its spare room freed, as json-c's tokener does there
 * (a failure leaves the array as it was). */
static int array_close(json_object *arr)
{
    json_object_array_shrink(arr, 0);
    return 1;
}

/* The elements of the array at f->p (past '[' and whitespace) added to arr
 * in order; f->p past the closing bracket. */
static int array_elements(jf *f, int depth, json_object *arr)
{
    if (eat(f, ']'))
        return array_close(arr);
    for (;;) {
        json_object *val;
        if (!parse_value(f, depth + 1, &val))
            return 0;
        if (json_object_array_add(arr, val) != 0) {
            json_object_put(val);
            return 0;
        }
        skip_ws(f);
        if (eat(f, ']'))
            return array_close(arr);
        if (!eat(f, ','))
            return 0;
        skip_ws(f);
    }
}

/* An object or array at f->p (past its opening byte): c (made by the
 * caller; NULL when out of memory) filled by `fill`, or freed again. */
static int container(jf *f, int depth, json_object *c, int (*fill)(jf *, int, json_object *),
                     json_object **out)
{
    if (!c)
        return 0;
    skip_ws(f);
    if (!fill(f, depth, c)) {
        json_object_put(c);
        return 0;
    }
    *out = c;
    return 1;
}

/*
 * The value at f->p (no whitespace before it) at nesting depth `depth` (the
 * top value 0). json-c refuses a value at depth max_depth or deeper, empty
 * containers aside (they have no value inside). Returns 1 with *out (NULL
 * for null) or 0 with nothing allocated.
 */
static int parse_value(jf *f, int depth, json_object **out)
{
    *out = NULL;
    if (depth >= f->max_depth || f->p == f->end)
        return 0;
    switch (*f->p) {
    case '{':
        f->p++;
        return container(f, depth, json_object_new_object(), object_members, out);
    case '[':
        f->p++;
        return container(f, depth, json_object_new_array(), array_elements, out);
    case '"':
        f->p++;
        return string_value(f, out);
    case 't':
        return literal(f, "true", 4) && (*out = json_object_new_boolean(1)) != NULL;
    case 'f':
        return literal(f, "false", 5) && (*out = json_object_new_boolean(0)) != NULL;
    case 'n':
        return literal(f, "null", 4);
    default:
        return number_value(f, out);
    }
}

int ik_json_fast_parse(const char *text, size_t len, int max_depth, json_object **out)
{
    *out = NULL;
    if (!text || len > JF_MAX_LEN || max_depth < 1 || max_depth > IK_JSON_FAST_MAX_DEPTH)
        return 0;
    jf f = {.p = text, .end = text + len, .max_depth = max_depth};
    json_object *v;
    skip_ws(&f);
    int ok = parse_value(&f, 0, &v);
    if (ok) {
        skip_ws(&f);
        if (f.p != f.end) {
            json_object_put(v);
            ok = 0;
        }
    }
    ik_buf_free(&f.keys);
    if (ok)
        *out = v;
    return ok;
}
