/*
 * json_reader.c: splits .json documents and .jsonl streams into JSON objects
 * with their position and size, and says what and where when input is bad.
 * See json_reader.h. Parsing is json-c's tokener in strict mode with UTF-8
 * validation (json-c's, or common/utf8's first: see text_is_utf8), after the
 * fast path of lib/json for UTF-8 text (same trees, and what it declines goes
 * to the tokener); positions are byte based (1-based lines and columns).
 */
#include "json_reader.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/utf8.h"
#include "json/json_fast.h"

#define JR_DEPTH      64
#define JR_CHUNK      (1u << 30) /* json-c takes an int length: feed big input in chunks */
#define JR_READ_CHUNK (64u * 1024u)

void jr_item_clear(jr_item *item)
{
    if (!item)
        return;
    if (item->obj)
        json_object_put(item->obj);
    memset(item, 0, sizeof *item);
}

const char *jr_type_name(json_object *obj)
{
    switch (json_object_get_type(obj)) {
    case json_type_null:
        return "null";
    case json_type_boolean:
        return "boolean";
    case json_type_double:
    case json_type_int:
        return "number";
    case json_type_object:
        return "object";
    case json_type_array:
        return "array";
    case json_type_string:
        return "string";
    }
    return "value";
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Describes the byte at text[off] for an error message: " '}'" or " (byte 0xff)". */
static void describe_char(const char *text, size_t len, size_t off, char *out, size_t size)
{
    if (off >= len) {
        out[0] = '\0';
        return;
    }
    unsigned char c = (unsigned char)text[off];
    if (c >= 0x20 && c < 0x7f)
        snprintf(out, size, " '%c'", c);
    else
        snprintf(out, size, " (byte 0x%02x)", c);
}

#define JR_NONE       ((size_t)-1)
#define JR_NUL_BYTE   "NUL byte (not allowed in JSON text)"
#define JR_NUL_ESCAPE "string contains a NUL character (\\u0000)"

/*
 * Offset of the first \u0000 escape in `t` (len bytes of JSON text that
 * parsed), or JR_NONE. json-c keeps such a string whole, but C strings would
 * end at the NUL: an id "a\u0000b" would become "a" without anyone noticing.
 * In text that parsed, every backslash is inside a string and starts an
 * escape, so going from backslash to backslash, stepping over the escaped
 * character, finds every escape and nothing else ("\\u0000" is an escaped
 * backslash, then text). Run on every record: memchr is vectorised (memmem
 * was 4% of the instructions of a file -> passthrough -> stdout run).
 */
static size_t nul_escape(const char *t, size_t len)
{
    const char *p = t, *end = t + len;
    while (end - p >= 6 && (p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
        if (end - p < 6)
            break;
        if (memcmp(p + 1, "u0000", 5) == 0)
            return (size_t)(p - t);
        p += 2; /* the escaped character, which may itself be a backslash */
    }
    return JR_NONE;
}

/* The error of a tokener that stopped at text[off]: *err_off and `what`. */
static void tokener_error(enum json_tokener_error e, const char *text, size_t len, size_t off,
                          size_t *err_off, char *what, size_t what_size)
{
    /* json-c stops one past a NUL byte and calls it the end of data. */
    const char *nul = memchr(text, '\0', off < len ? off + 1 : len);
    *err_off = nul ? (size_t)(nul - text) : off;
    if (nul) {
        snprintf(what, what_size, "%s", JR_NUL_BYTE);
        return;
    }
    char ch[32];
    const char *desc = json_tokener_error_desc(e);
    describe_char(text, len, off, ch, sizeof ch);
    if (strncmp(desc, "unexpected", 10) == 0 || !ch[0])
        snprintf(what, what_size, "%s%s", desc, ch);
    else
        snprintf(what, what_size, "%s, found%s", desc, ch);
}

#define JR_TOKENER_FLAGS (JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS)

json_tokener *jr_tokener_new(void)
{
    json_tokener *tok = json_tokener_new_ex(JR_DEPTH);
    if (tok)
        json_tokener_set_flags(tok, JR_TOKENER_FLAGS | JSON_TOKENER_VALIDATE_UTF8);
    return tok;
}

/*
 * 1 when the len bytes at s are valid UTF-8 (common/utf8's definition, which
 * every sequence json-c's own check accepts passes too), skipping ASCII 8
 * bytes at a time. json-c's check (JSON_TOKENER_VALIDATE_UTF8) is a call per
 * byte, the largest cost of a parse after the tokenizer itself: text that
 * passes here is parsed without it, anything else with it, so errors and
 * their offsets are json-c's as before.
 */
static int text_is_utf8(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint64_t w;
        while (i + 8 <= len && (memcpy(&w, p + i, 8), !(w & 0x8080808080808080ull)))
            i += 8;
        while (i < len && p[i] < 0x80)
            i++;
        if (i == len)
            break;
        size_t k = ik_utf8_seq(p + i, len - i);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}

static int parse_with(json_tokener *tok, const char *text, size_t len, json_object **out,
                      size_t *err_off, char *what, size_t what_size);

/*
 * Parses text[0..len) as exactly one JSON value followed by nothing but
 * whitespace. Returns 0 with *out the value (caller owns it; NULL for JSON
 * null), or -1 with *err_off the offset of the problem and `what` describing
 * it. `tok` (from jr_tokener_new) is reset and reused; NULL makes a tokener
 * for this one value (a tokener costs allocations a per-record loop avoids).
 */
static int parse_value(json_tokener *tok, const char *text, size_t len, json_object **out,
                       size_t *err_off, char *what, size_t what_size)
{
    *out = NULL;
    /* The fast path accepts only what the tokener below would accept, with
     * the same tree; whatever it declines goes to the tokener as before. */
    int utf8 = text_is_utf8(text, len);
    if (utf8 && ik_json_fast_parse(text, len, JR_DEPTH, out) == 1)
        return 0;
    json_tokener *own = tok ? NULL : jr_tokener_new();
    if (!tok && !own) {
        *err_off = 0;
        snprintf(what, what_size, "out of memory");
        return -1;
    }
    if (tok)
        json_tokener_reset(tok);
    json_tokener_set_flags(tok ? tok : own,
                           JR_TOKENER_FLAGS | (utf8 ? 0 : JSON_TOKENER_VALIDATE_UTF8));
    int rc = parse_with(tok ? tok : own, text, len, out, err_off, what, what_size);
    if (own)
        json_tokener_free(own);
    return rc;
}

/* parse_value with a fresh (or freshly reset) tokener. */
static int parse_with(json_tokener *tok, const char *text, size_t len, json_object **out,
                      size_t *err_off, char *what, size_t what_size)
{
    json_object *obj = NULL;
    size_t pos = 0, end = 0;
    for (;;) {
        size_t chunk = len - pos > JR_CHUNK ? JR_CHUNK : len - pos;
        obj = json_tokener_parse_ex(tok, text + pos, (int)chunk);
        enum json_tokener_error e = json_tokener_get_error(tok);
        if (obj || e == json_tokener_success) { /* success without an object: null */
            end = pos + json_tokener_get_parse_end(tok);
            break;
        }
        if (e != json_tokener_continue) {
            tokener_error(e, text, len, pos + json_tokener_get_parse_end(tok), err_off, what,
                          what_size);
            return -1;
        }
        pos += chunk;
        if (pos >= len) {
            /* A NUL ends a bare top-level number; anything else is cut short. */
            obj = json_tokener_parse_ex(tok, "", 1);
            if (obj || json_tokener_get_error(tok) == json_tokener_success) {
                end = len;
                break;
            }
            *err_off = len;
            snprintf(what, what_size, "unexpected end of input");
            return -1;
        }
    }
    while (end < len && is_ws(text[end]))
        end++;
    if (end < len) {
        char ch[32];
        *err_off = end;
        describe_char(text, len, end, ch, sizeof ch);
        if (text[end] == '\0')
            snprintf(what, what_size, "%s", JR_NUL_BYTE);
        else
            snprintf(what, what_size, "unexpected character%s after the end of the value", ch);
        json_object_put(obj);
        return -1;
    }
    *out = obj;
    return 0;
}

static void set_error(jr_item *out, const char *name, unsigned long line, unsigned long col,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void set_error(jr_item *out, const char *name, unsigned long line, unsigned long col,
                      const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(out->error, sizeof out->error, "%s:%lu:%lu: %s", name, line, col, what);
    if (out->obj) {
        json_object_put(out->obj);
        out->obj = NULL;
    }
}

int jr_parse_line(const char *name, const char *line, size_t len, size_t full_len,
                  unsigned long lineno, unsigned long index, uint64_t offset, size_t max_size,
                  jr_item *out)
{
    return jr_parse_line_tok(NULL, name, line, len, full_len, lineno, index, offset, max_size, out);
}

int jr_parse_line_tok(json_tokener *tok, const char *name, const char *line, size_t len,
                      size_t full_len, unsigned long lineno, unsigned long index, uint64_t offset,
                      size_t max_size, jr_item *out)
{
    memset(out, 0, sizeof *out);
    size_t skip = 0;
    if (lineno == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0)
        skip = 3; /* UTF-8 byte order mark */
    if (len == full_len && len > skip && line[len - 1] == '\r') {
        len--;
        full_len--;
    }
    size_t i = skip;
    while (i < len && is_ws(line[i]))
        i++;
    if (i == len && len == full_len)
        return 0; /* blank line */

    out->text = line;
    out->text_len = len;
    out->size = full_len;
    out->offset = offset;
    out->index = index;
    out->line = lineno;
    out->col = 1;
    if (full_len > max_size) {
        set_error(out, name, lineno, 1, "record is %zu bytes, larger than max_record_size %zu",
                  full_len, max_size);
        return 1;
    }
    char what[256];
    size_t err_off = 0;
    json_object *obj;
    if (parse_value(tok, line + skip, len - skip, &obj, &err_off, what, sizeof what) != 0) {
        set_error(out, name, lineno, (unsigned long)(err_off + skip + 1), "%s", what);
        return 1;
    }
    if (!json_object_is_type(obj, json_type_object)) {
        set_error(out, name, lineno, (unsigned long)(i + 1), "line is not a JSON object (got %s)",
                  jr_type_name(obj));
        json_object_put(obj);
        return 1;
    }
    size_t k = nul_escape(line, len);
    if (k != JR_NONE) {
        set_error(out, name, lineno, (unsigned long)(k + 1), "%s", JR_NUL_ESCAPE);
        json_object_put(obj);
        return 1;
    }
    out->obj = obj;
    return 1;
}

/* ---- .json documents, streamed ---------------------------------------- */

/* Where the next jr_doc_next call goes on. */
enum {
    DOC_START, /* nothing read yet */
    DOC_FIRST, /* after '[': an element or ']' */
    DOC_NEXT,  /* after ',': an element */
    DOC_AFTER, /* after an element: ',' or ']' */
    DOC_TRAIL, /* after the closing ']': whitespace only */
    DOC_END,
};

int jr_doc_open(jr_doc *doc, const char *name, FILE *f, size_t max_size)
{
    memset(doc, 0, sizeof *doc);
    doc->name = name;
    doc->f = f;
    doc->max_size = max_size;
    doc->chunk = JR_READ_CHUNK;
    doc->cline = 1;
    doc->raw = malloc(JR_RAW_MAX);
    doc->tok = jr_tokener_new();
    if (!doc->raw || !doc->tok) {
        jr_doc_close(doc);
        return -1;
    }
    return 0;
}

void jr_doc_close(jr_doc *doc)
{
    if (doc->tok)
        json_tokener_free(doc->tok);
    free(doc->win);
    free(doc->raw);
    memset(doc, 0, sizeof *doc);
}

/* Counts lines up to file offset `to`. The bytes [cpos, to) must be in the
 * window: counting only goes forward, before the window drops them. */
static void count_to(jr_doc *d, uint64_t to)
{
    while (d->cpos < to) {
        const char *p = d->win + (d->cpos - d->wbase);
        const char *nl = memchr(p, '\n', (size_t)(to - d->cpos));
        if (!nl) {
            d->cpos = to;
            break;
        }
        d->cline++;
        d->cpos = d->wbase + (uint64_t)(nl - d->win) + 1;
        d->cls = d->cpos;
    }
}

/* Line and column of file offset `at`, which must not lie before an offset
 * asked for earlier (positions are asked for in file order). */
static void where(jr_doc *d, uint64_t at, unsigned long *line, unsigned long *col)
{
    count_to(d, at);
    *line = d->cline;
    *col = (unsigned long)(at - d->cls + 1);
}

/*
 * Reads one more chunk into the window, first dropping the bytes before
 * d->keep (their lines counted). Returns 1 when bytes were added, 0 at the
 * end of the file, -1 on a read error or out of memory (d->error set).
 */
static int more(jr_doc *d)
{
    if (d->eof)
        return 0;
    if (d->keep > d->wbase) {
        count_to(d, d->keep);
        size_t drop = (size_t)(d->keep - d->wbase);
        memmove(d->win, d->win + drop, d->wlen - drop);
        d->wlen -= drop;
        d->wbase = d->keep;
    }
    char *grown = ik_array_grow(d->win, &d->wcap, d->wlen + d->chunk, 1);
    if (!grown) {
        d->error = ENOMEM;
        return -1;
    }
    d->win = grown;
    size_t n = fread(d->win + d->wlen, 1, d->chunk, d->f);
    if (n == 0) {
        if (ferror(d->f)) {
            d->error = errno ? errno : EIO;
            return -1;
        }
        d->eof = 1;
        return 0;
    }
    d->wlen += n;
    return 1;
}

/* The byte at file offset `at` (>= d->keep), reading as needed: 0..255, -1
 * at the end of the file, -2 on a read error. */
static int byte_at(jr_doc *d, uint64_t at)
{
    while (at >= d->wbase + d->wlen) {
        int r = more(d);
        if (r <= 0)
            return r == 0 ? -1 : -2;
    }
    return (unsigned char)d->win[at - d->wbase];
}

/* Moves d->pos past whitespace (the window may drop it). Returns the byte
 * there, -1 at the end of the file, -2 on a read error. */
static int skip_ws(jr_doc *d)
{
    for (;;) {
        d->keep = d->pos;
        int c = byte_at(d, d->pos);
        if (c < 0 || !is_ws((char)c))
            return c;
        d->pos++;
    }
}

/* Starts the next item at file offset `at` (>= every offset asked before). */
static void begin_item(jr_doc *d, jr_item *out, uint64_t at)
{
    memset(out, 0, sizeof *out);
    out->index = ++d->index;
    out->offset = at;
    where(d, at, &out->line, &out->col);
}

/* Copies the file's bytes from offset `from` (in the window) into d->raw,
 * JR_RAW_MAX of them or up to the end of the file, reading as needed (the
 * window may move). Returns 0, or -1 on a read error. */
static int keep_raw(jr_doc *d, uint64_t from)
{
    d->keep = from;
    if (byte_at(d, from + JR_RAW_MAX - 1) == -2)
        return -1;
    uint64_t avail = d->wbase + d->wlen - from;
    size_t n = avail < JR_RAW_MAX ? (size_t)avail : JR_RAW_MAX;
    memcpy(d->raw, d->win + (from - d->wbase), n);
    d->raw_len = n;
    return 0;
}

/* 1 for a byte that ends a bare value (number, true, false, null). */
static int ends_scalar(char c)
{
    return is_ws(c) || c == ',' || c == ']' || c == '}' || c == '[' || c == '{' || c == '"' ||
           c == ':';
}

/*
 * Finds the end of the value that starts at `start` (a byte that is not
 * whitespace) without parsing it: strings and nesting are tracked, the
 * parser checks the rest. The value stays in the window while it is at most
 * max(max_size, JR_RAW_MAX) bytes (plus one read chunk); past that it is
 * *oversize and only its first JR_RAW_MAX bytes are kept, in d->raw. Returns 0 with *end just
 * past the value, 1 when the file ends inside it (*end is the end of the
 * file), -1 on a read error.
 */
static int scan_value(jr_doc *d, uint64_t start, uint64_t *end, int *oversize)
{
    d->keep = start;
    *oversize = 0;
    int c0 = byte_at(d, start);
    if (c0 < 0)
        return -1;
    int kind = c0 == '{' || c0 == '[' ? 0 : c0 == '"' ? 1 : 2; /* container, string, bare */
    size_t depth = 0;
    int in_str = 0, esc = 0;
    uint64_t p = start;
    for (;;) {
        if (p >= d->wbase + d->wlen) {
            if (!*oversize && p - start > d->max_size && p - start > JR_RAW_MAX) {
                /* Its first JR_RAW_MAX bytes, in the window (nothing read). */
                if (keep_raw(d, start) != 0)
                    return -1;
                *oversize = 1;
            }
            if (*oversize)
                d->keep = p; /* the window drops what was scanned */
            int r = more(d);
            if (r < 0)
                return -1;
            if (r == 0) {
                *end = p;
                return kind == 2 ? 0 : 1;
            }
        }
        const char *w = d->win;
        size_t i = (size_t)(p - d->wbase), n = d->wlen;
        for (; i < n; i++) {
            char c = w[i];
            if (in_str) {
                if (esc)
                    esc = 0;
                else if (c == '\\')
                    esc = 1;
                else if (c == '"') {
                    in_str = 0;
                    if (kind == 1) {
                        *end = d->wbase + i + 1;
                        return 0;
                    }
                }
            } else if (kind == 2) {
                if (ends_scalar(c)) {
                    *end = d->wbase + i;
                    return 0;
                }
            } else if (c == '"') {
                in_str = 1;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if ((c == '}' || c == ']') && --depth == 0) {
                *end = d->wbase + i + 1;
                return 0;
            }
        }
        p = d->wbase + n;
    }
}

/*
 * Makes *out (begun with begin_item) the error item that covers the file
 * from out->offset to its end, saying `what` at offset `at`; reads the file
 * to its end and ends the document. Returns 1, or -1 on a read error.
 */
static int rest_error(jr_doc *d, jr_item *out, uint64_t at, const char *what)
{
    unsigned long line, col;
    where(d, at, &line, &col);
    uint64_t from = out->offset;
    /* Gone from the window, d->raw already holds its start. */
    if (from >= d->wbase && keep_raw(d, from) != 0)
        return -1;
    out->text = d->raw;
    out->text_len = d->raw_len;
    for (;;) {
        d->keep = d->wbase + d->wlen;
        int r = more(d);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
    }
    out->size = (size_t)(d->wbase + d->wlen - from);
    set_error(out, d->name, line, col, "%s", what);
    d->state = DOC_END;
    return 1;
}

/* rest_error for the unexpected byte c (>= 0) at d->pos, or for the end of
 * the file (c < 0): "<expected><the byte><after>", the byte described as
 * " 'x'" or " (byte 0xff)"; a NUL byte is named as such. *out is begun. */
static int unexpected(jr_doc *d, jr_item *out, int c, const char *expected, const char *after)
{
    char what[256], ch[32];
    if (c < 0) {
        snprintf(what, sizeof what, "unexpected end of input");
    } else if (c == 0) {
        snprintf(what, sizeof what, "%s", JR_NUL_BYTE);
    } else {
        describe_char(d->win, d->wlen, (size_t)(d->pos - d->wbase), ch, sizeof ch);
        snprintf(what, sizeof what, "%s%s%s", expected, ch, after);
    }
    return rest_error(d, out, d->pos, what);
}

/* unexpected() as a new item, starting at d->pos. */
static int rest_unexpected(jr_doc *d, jr_item *out, int c, const char *expected, const char *after)
{
    begin_item(d, out, d->pos);
    return unexpected(d, out, c, expected, after);
}

/*
 * Checks a parsed value (owned; taken) as the record of *out: an object
 * without any \u0000 in its text (at offset start in the file) becomes
 * out->obj, anything else an error. `top`: the document's single value.
 */
static void check_record(jr_doc *d, jr_item *out, json_object *obj, uint64_t start, int top)
{
    if (!json_object_is_type(obj, json_type_object)) {
        if (top)
            set_error(out, d->name, out->line, out->col,
                      "document is not an object or an array of objects (got %s)",
                      jr_type_name(obj));
        else
            set_error(out, d->name, out->line, out->col,
                      "element %lu is not a JSON object (got %s)", out->index, jr_type_name(obj));
        json_object_put(obj);
        return;
    }
    size_t k = nul_escape(out->text, out->text_len);
    if (k != JR_NONE) {
        unsigned long line, col;
        where(d, start + k, &line, &col);
        set_error(out, d->name, line, col, "%s", JR_NUL_ESCAPE);
        json_object_put(obj);
        return;
    }
    out->obj = obj;
}

/* After the document's single value: only whitespace may follow. */
static int single_end(jr_doc *d, jr_item *out)
{
    /* The trailing whitespace may push the value out of the window: keep the
     * file's first JR_RAW_MAX bytes from the value on, for a dead letter of
     * the whole document as well as of the value. */
    if (out->text != d->raw) {
        if (keep_raw(d, out->offset) != 0)
            return -1;
        out->text = d->raw;
        out->text_len = d->raw_len < out->size ? d->raw_len : out->size;
    }
    int c = skip_ws(d);
    if (c == -2)
        return -1;
    d->state = DOC_END;
    if (c == -1)
        return 1;
    return unexpected(d, out, c, "unexpected character", " after the end of the value");
}

/*
 * Reads the value at d->pos as the next item: an array element (top = 0) or
 * the document's single value (top = 1). Returns 1 (*out filled) or -1.
 */
static int read_value(jr_doc *d, jr_item *out, int top)
{
    uint64_t start = d->pos, end;
    int over;
    int c = byte_at(d, start);
    if (c == ',' || c == ']' || c == '}' || c == ':')
        return rest_unexpected(d, out, c,
                               top ? "unexpected character" : "expected an element, found", "");
    begin_item(d, out, start);
    int r = scan_value(d, start, &end, &over);
    if (r < 0)
        return -1;
    size_t size = (size_t)(end - start);
    out->size = size;
    if (over) {
        out->text = d->raw;
        out->text_len = d->raw_len;
    } else {
        out->text = d->win + (start - d->wbase);
        out->text_len = size;
    }
    if (!over && size <= d->max_size) {
        char what[256];
        size_t err_off = 0;
        json_object *obj;
        int bad = parse_value(d->tok, out->text, size, &obj, &err_off, what, sizeof what) != 0;
        if (bad || r == 1) {
            /* Parsed, but the file ended inside a string only the scanner saw:
             * json-c takes single-quoted keys ({'"':1}), the scanner knows '"'. */
            if (!bad) {
                json_object_put(obj);
                err_off = size;
                snprintf(what, sizeof what, "unexpected end of input");
            }
            return rest_error(d, out, start + err_off, what);
        }
        check_record(d, out, obj, start, top);
    } else if (r == 1) {
        return rest_error(d, out, end, "unexpected end of input");
    } else {
        if (out->text_len > JR_RAW_MAX) /* as much as when it went past the window */
            out->text_len = JR_RAW_MAX;
        set_error(out, d->name, out->line, out->col,
                  "record is %zu bytes, larger than max_record_size %zu", size, d->max_size);
    }
    d->pos = end;
    if (top)
        return single_end(d, out);
    d->state = DOC_AFTER;
    return 1;
}

/* The start of the document: a byte order mark, whitespace, then '[' or a
 * single value. Returns 1 (item), 2 (go on in the new state) or -1. */
static int doc_start(jr_doc *d, jr_item *out)
{
    if (byte_at(d, 0) == 0xEF && byte_at(d, 1) == 0xBB && byte_at(d, 2) == 0xBF)
        d->pos = 3;
    int c = skip_ws(d);
    if (c == -2)
        return -1;
    if (c == -1) {
        memset(out, 0, sizeof *out);
        out->index = ++d->index;
        out->size = (size_t)d->pos;
        out->text = "";
        set_error(out, d->name, 1, 1, "empty document");
        out->line = out->col = 1;
        d->state = DOC_END;
        return 1;
    }
    if (c == '[') {
        d->pos++;
        d->state = DOC_FIRST;
        return 2;
    }
    return read_value(d, out, 1);
}

/* Between the elements of the array. Returns 1 (item), 2 (go on), 0 (end) or -1. */
static int doc_array(jr_doc *d, jr_item *out)
{
    int c = skip_ws(d);
    if (c == -2)
        return -1;
    char expected[96];
    switch (d->state) {
    case DOC_FIRST:
    case DOC_NEXT:
        if (c == ']' && d->state == DOC_FIRST) {
            d->pos++;
            d->state = DOC_TRAIL;
            return 2;
        }
        if (c < 0)
            return rest_unexpected(d, out, c, "", "");
        return read_value(d, out, 0);
    case DOC_AFTER:
        if (c == ',' || c == ']') {
            d->pos++;
            d->state = c == ',' ? DOC_NEXT : DOC_TRAIL;
            return 2;
        }
        snprintf(expected, sizeof expected, "expected ',' or ']' after element %lu, found",
                 d->index);
        return rest_unexpected(d, out, c, expected, "");
    default: /* DOC_TRAIL */
        if (c < 0) {
            d->state = DOC_END;
            return 0;
        }
        return rest_unexpected(d, out, c, "unexpected character", " after the end of the value");
    }
}

int jr_doc_next(jr_doc *doc, jr_item *out)
{
    memset(out, 0, sizeof *out);
    for (;;) {
        if (doc->error)
            return -1;
        if (doc->state == DOC_END)
            return 0;
        int r = doc->state == DOC_START ? doc_start(doc, out) : doc_array(doc, out);
        if (r != 2) {
            if (r < 0)
                jr_item_clear(out);
            return r;
        }
    }
}

int jr_lines_init(jr_lines *lr, FILE *f, size_t keep)
{
    memset(lr, 0, sizeof *lr);
    lr->f = f;
    lr->keep = keep;
    lr->rcap = JR_READ_CHUNK;
    lr->rbuf = malloc(lr->rcap);
    return lr->rbuf ? 0 : -1;
}

/* Appends up to the keep limit; the line buffer grows geometrically. */
static int line_append(jr_lines *lr, size_t *llen, const char *src, size_t n)
{
    if (*llen + n > lr->keep)
        n = lr->keep > *llen ? lr->keep - *llen : 0;
    if (n == 0)
        return 0;
    if (*llen + n > lr->lcap) {
        size_t cap = lr->lcap ? lr->lcap : 4096;
        while (cap < *llen + n)
            cap *= 2;
        if (cap > lr->keep)
            cap = lr->keep;
        char *grown = realloc(lr->line, cap);
        if (!grown)
            return -1;
        lr->line = grown;
        lr->lcap = cap;
    }
    memcpy(lr->line + *llen, src, n);
    *llen += n;
    return 0;
}

int jr_lines_next(jr_lines *lr, const char **line, size_t *len, size_t *full_len, uint64_t *offset)
{
    size_t llen = 0, full = 0;
    int started = 0; /* some bytes of this line were seen */
    for (;;) {
        if (lr->rpos == lr->rend) {
            if (lr->eof)
                break;
            size_t n = fread(lr->rbuf, 1, lr->rcap, lr->f);
            if (n == 0) {
                if (ferror(lr->f)) {
                    lr->error = errno ? errno : EIO;
                    return -1;
                }
                lr->eof = 1;
                break;
            }
            lr->rpos = 0;
            lr->rend = n;
        }
        char *seg = lr->rbuf + lr->rpos;
        size_t avail = lr->rend - lr->rpos;
        char *nl = memchr(seg, '\n', avail);
        size_t seglen = nl ? (size_t)(nl - seg) : avail;
        if (nl && !started) {
            /* Whole line inside the read buffer: hand it out without copying. */
            lr->rpos += seglen + 1;
            *line = seg;
            *len = seglen > lr->keep ? lr->keep : seglen;
            *full_len = seglen;
            *offset = lr->offset;
            lr->offset += seglen + 1;
            lr->lineno++;
            return 1;
        }
        started = 1;
        if (line_append(lr, &llen, seg, seglen) != 0) {
            lr->error = ENOMEM;
            return -1;
        }
        full += seglen;
        lr->rpos += seglen;
        if (nl) {
            lr->rpos++;
            *line = lr->line ? lr->line : "";
            *len = llen;
            *full_len = full;
            *offset = lr->offset;
            lr->offset += full + 1;
            lr->lineno++;
            return 1;
        }
    }
    if (!started)
        return 0;
    /* Last line without a newline. */
    *line = lr->line ? lr->line : "";
    *len = llen;
    *full_len = full;
    *offset = lr->offset;
    lr->offset += full;
    lr->lineno++;
    return 1;
}

void jr_lines_free(jr_lines *lr)
{
    free(lr->rbuf);
    free(lr->line);
    memset(lr, 0, sizeof *lr);
}

/* Length of a valid UTF-8 sequence at s (n bytes available), 0 when invalid,
 * cut short or NUL (which JSON text must escape). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    return s[0] ? ik_utf8_seq(s, n) : 0;
}

char *jr_raw_text(const char *text, size_t len, size_t max)
{
    size_t limit = len < max ? len : max;
    /* Worst case every byte becomes the 3-byte replacement character. */
    char *out = malloc(limit * 3 + 1);
    if (!out)
        return NULL;
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, o = 0;
    while (i < limit) {
        size_t k = utf8_seq(s + i, limit - i);
        if (k > 0) {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
            continue;
        }
        if (limit < len && limit - i < 4 && utf8_seq(s + i, len - i) > 0)
            break; /* a valid sequence cut by the limit: drop it */
        memcpy(out + o, "\xEF\xBF\xBD", 3);
        o += 3;
        i++;
    }
    out[o] = '\0';
    return out;
}
