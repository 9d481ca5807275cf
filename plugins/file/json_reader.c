/*
 * json_reader.c: splits .json documents and .jsonl streams into JSON objects
 * with their position and size, and says what and where when input is bad.
 * See json_reader.h. Parsing is json-c's tokener in strict mode with UTF-8
 * validation; positions are byte based (1-based lines and columns).
 */
#include "json_reader.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"

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

/*
 * Parses text[0..len) as exactly one JSON value followed by nothing but
 * whitespace. Returns the value (caller owns it), or NULL with *err_off the
 * offset of the problem and `what` describing it.
 */
static json_object *parse_value(const char *text, size_t len, size_t *err_off, char *what,
                                size_t what_size)
{
    json_tokener *tok = json_tokener_new_ex(JR_DEPTH);
    if (!tok) {
        *err_off = 0;
        snprintf(what, what_size, "out of memory");
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
                                    JSON_TOKENER_VALIDATE_UTF8);
    json_object *obj = NULL;
    size_t pos = 0, end = 0;
    char ch[32];
    for (;;) {
        size_t chunk = len - pos > JR_CHUNK ? JR_CHUNK : len - pos;
        obj = json_tokener_parse_ex(tok, text + pos, (int)chunk);
        enum json_tokener_error e = json_tokener_get_error(tok);
        if (obj) {
            end = pos + json_tokener_get_parse_end(tok);
            break;
        }
        if (e != json_tokener_continue) {
            size_t off = pos + json_tokener_get_parse_end(tok);
            *err_off = off;
            if (off < len && text[off] == '\0') {
                snprintf(what, what_size, "unexpected NUL byte");
            } else {
                const char *desc = json_tokener_error_desc(e);
                describe_char(text, len, off, ch, sizeof ch);
                if (strncmp(desc, "unexpected", 10) == 0 || !ch[0])
                    snprintf(what, what_size, "%s%s", desc, ch);
                else
                    snprintf(what, what_size, "%s, found%s", desc, ch);
            }
            json_tokener_free(tok);
            return NULL;
        }
        pos += chunk;
        if (pos >= len) {
            /* A NUL ends a bare top-level number; anything else is cut short. */
            obj = json_tokener_parse_ex(tok, "", 1);
            if (obj) {
                end = len;
                break;
            }
            *err_off = len;
            snprintf(what, what_size, "unexpected end of input");
            json_tokener_free(tok);
            return NULL;
        }
    }
    json_tokener_free(tok);
    while (end < len && is_ws(text[end]))
        end++;
    if (end < len) {
        *err_off = end;
        describe_char(text, len, end, ch, sizeof ch);
        snprintf(what, what_size, "unexpected character%s after the end of the value", ch);
        json_object_put(obj);
        return NULL;
    }
    return obj;
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
    json_object *obj = parse_value(line + skip, len - skip, &err_off, what, sizeof what);
    if (!obj) {
        set_error(out, name, lineno, (unsigned long)(err_off + skip + 1), "%s", what);
        return 1;
    }
    if (!json_object_is_type(obj, json_type_object)) {
        set_error(out, name, lineno, (unsigned long)(i + 1), "line is not a JSON object (got %s)",
                  jr_type_name(obj));
        json_object_put(obj);
        return 1;
    }
    out->obj = obj;
    return 1;
}

/* Line and column of byte `off` in buf, counting from a known (pos, line, line_start). */
static void position(const char *buf, size_t off, size_t *pos, unsigned long *line,
                     size_t *line_start, unsigned long *out_line, unsigned long *out_col)
{
    while (*pos < off) {
        const char *nl = memchr(buf + *pos, '\n', off - *pos);
        if (!nl) {
            *pos = off;
            break;
        }
        (*line)++;
        *pos = (size_t)(nl - buf) + 1;
        *line_start = *pos;
    }
    *out_line = *line;
    *out_col = (unsigned long)(off - *line_start + 1);
}

/* Skips one JSON value starting at p; returns the offset just past it. The
 * input is already known to parse, so this only tracks strings and nesting. */
static size_t skip_value(const char *buf, size_t len, size_t p)
{
    int depth = 0;
    while (p < len) {
        char c = buf[p];
        if (c == '"' || c == '\'') {
            p++;
            while (p < len && buf[p] != c) {
                if (buf[p] == '\\')
                    p++;
                p++;
            }
            p++;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                break;
            depth--;
        } else if (c == ',' && depth == 0) {
            break;
        }
        p++;
    }
    if (p > len)
        p = len;
    while (p > 0 && is_ws(buf[p - 1]))
        p--;
    return p;
}

/* Finds the start and end of every element of the top-level array. Returns
 * the number found (which the caller compares with the parsed length). */
static size_t find_elements(jr_doc *doc, size_t first, size_t n)
{
    const char *b = doc->buf;
    size_t len = doc->len, p = first + 1, k = 0;
    for (;;) {
        while (p < len && is_ws(b[p]))
            p++;
        if (p >= len || b[p] == ']')
            break;
        if (k == n)
            return n + 1;
        size_t start = p;
        size_t end = skip_value(b, len, p);
        if (end <= start)
            return n + 1;
        doc->starts[k] = start;
        doc->ends[k] = end;
        k++;
        p = end;
        while (p < len && is_ws(b[p]))
            p++;
        if (p < len && b[p] == ',')
            p++;
        else
            break;
    }
    return k;
}

int jr_doc_open(jr_doc *doc, const char *name, const char *buf, size_t len, size_t max_size)
{
    memset(doc, 0, sizeof *doc);
    doc->name = name;
    doc->buf = buf;
    doc->len = len;
    doc->max_size = max_size;
    doc->cline = 1;
    size_t first = 0;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        first = 3;
    while (first < len && is_ws(buf[first]))
        first++;
    if (first == len) {
        snprintf(doc->error, sizeof doc->error, "%s:1:1: empty document", name);
        doc->count = 1;
        return 0;
    }
    char what[256];
    size_t err_off = 0;
    json_object *root = parse_value(buf + first, len - first, &err_off, what, sizeof what);
    if (!root) {
        size_t pos = 0, ls = 0;
        unsigned long line = 1, l, c;
        position(buf, first + err_off, &pos, &line, &ls, &l, &c);
        snprintf(doc->error, sizeof doc->error, "%s:%lu:%lu: %s", name, l, c, what);
        doc->count = 1;
        return 0;
    }
    doc->root = root;
    if (json_object_is_type(root, json_type_object)) {
        doc->count = 1;
        doc->starts = malloc(sizeof *doc->starts);
        doc->ends = malloc(sizeof *doc->ends);
        if (!doc->starts || !doc->ends) {
            jr_doc_close(doc);
            return -1;
        }
        doc->starts[0] = first;
        doc->ends[0] = skip_value(buf, len, first);
        return 0;
    }
    if (!json_object_is_type(root, json_type_array)) {
        size_t pos = 0, ls = 0;
        unsigned long line = 1, l, c;
        position(buf, first, &pos, &line, &ls, &l, &c);
        snprintf(doc->error, sizeof doc->error,
                 "%s:%lu:%lu: document is not an object or an array of objects (got %s)", name, l,
                 c, jr_type_name(root));
        json_object_put(root);
        doc->root = NULL;
        doc->count = 1;
        return 0;
    }
    doc->is_array = 1;
    size_t n = json_object_array_length(root);
    doc->count = n;
    if (n == 0)
        return 0;
    doc->starts = calloc(n, sizeof *doc->starts);
    doc->ends = calloc(n, sizeof *doc->ends);
    if (!doc->starts || !doc->ends) {
        jr_doc_close(doc);
        return -1;
    }
    if (find_elements(doc, first, n) != n) {
        /* Should not happen for input json-c accepted; fall back to the array. */
        for (size_t i = 0; i < n; i++) {
            doc->starts[i] = first;
            doc->ends[i] = first;
        }
    }
    return 0;
}

int jr_doc_next(jr_doc *doc, jr_item *out)
{
    memset(out, 0, sizeof *out);
    if (doc->next >= doc->count)
        return 0;
    size_t i = doc->next++;
    out->index = (unsigned long)(i + 1);
    if (doc->error[0] || !doc->root) {
        snprintf(out->error, sizeof out->error, "%s", doc->error);
        out->text = doc->buf;
        out->text_len = doc->len;
        out->size = doc->len;
        out->offset = 0;
        out->line = 1;
        out->col = 1;
        return 1;
    }
    size_t start = doc->starts[i], end = doc->ends[i];
    /* Elements come in order: resume the line count where the last one left it. */
    position(doc->buf, start, &doc->cpos, &doc->cline, &doc->cls, &out->line, &out->col);
    out->text = doc->buf + start;
    out->text_len = end - start;
    out->size = end - start;
    out->offset = start;
    json_object *elem = doc->is_array ? json_object_array_get_idx(doc->root, i) : doc->root;
    if (out->size > doc->max_size) {
        set_error(out, doc->name, out->line, out->col,
                  "record is %zu bytes, larger than max_record_size %zu", out->size, doc->max_size);
        return 1;
    }
    if (!json_object_is_type(elem, json_type_object)) {
        set_error(out, doc->name, out->line, out->col, "element %zu is not a JSON object (got %s)",
                  i + 1, jr_type_name(elem));
        return 1;
    }
    out->obj = json_object_get(elem);
    return 1;
}

void jr_doc_close(jr_doc *doc)
{
    if (doc->root)
        json_object_put(doc->root);
    free(doc->starts);
    free(doc->ends);
    memset(doc, 0, sizeof *doc);
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
