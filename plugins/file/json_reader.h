/*
 * json_reader.h: the file source's parser of outside input. It splits a .json
 * document (one object, or an array of objects) or a .jsonl stream (one object
 * per line) into items: a json_object with the line, column, byte offset and
 * byte size of its raw text, or an error that says what went wrong and where
 * ("emails.jsonl:17:42: unexpected character '}'").
 *
 * Nothing here touches the engine: the functions are pure (apart from reading
 * the FILE* handed to the line reader) so they can be unit-tested and fuzzed.
 * Not thread-safe per object; distinct objects are independent.
 */
#ifndef INTAKE_FILE_JSON_READER_H
#define INTAKE_FILE_JSON_READER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

/* Longest error text of an item (name:line:col: what). */
#define JR_ERROR_MAX 512
/* Raw text kept for a dead letter: at most this many bytes. */
#define JR_RAW_MAX 4096

typedef struct jr_item {
    json_object *obj;         /* the object, owned by the item; NULL when error[0] */
    const char *text;         /* raw text (borrowed from the reader, valid until the next call) */
    size_t text_len;          /* bytes available at text (may be less than size) */
    size_t size;              /* raw size of the line or element, in bytes */
    uint64_t offset;          /* byte offset of the raw text in the file */
    unsigned long index;      /* 1-based position among the file's records */
    unsigned long line;       /* 1-based line where the record starts */
    unsigned long col;        /* 1-based column (bytes) where it starts */
    char error[JR_ERROR_MAX]; /* "" or "name:line:col: what" */
} jr_item;

/* Releases what an item owns (its object) and zeroes it. */
void jr_item_clear(jr_item *item);

/*
 * Parses one .jsonl line (without its newline; a trailing '\r' is ignored).
 * `len` bytes are at `line`; `full_len` is the line's real length, larger than
 * len when the line reader cut an oversize line. A line larger than max_size
 * bytes, or that is not one complete JSON object, gives an item with error set
 * (and obj NULL). Returns 1 when *out holds an item, 0 for a blank line
 * (nothing to do; *out cleared). `name` is used in error texts.
 */
int jr_parse_line(const char *name, const char *line, size_t len, size_t full_len,
                  unsigned long lineno, unsigned long index, uint64_t offset, size_t max_size,
                  jr_item *out);

/* A whole .json document being split into items. */
typedef struct jr_doc {
    const char *name;
    const char *buf;
    size_t len;
    size_t max_size;
    json_object *root; /* parsed document (owned), NULL on a parse error */
    size_t count;      /* items the document yields */
    size_t next;       /* next item to return (0-based) */
    size_t *starts;    /* per array element: start offset (owned) */
    size_t *ends;      /* per array element: end offset, exclusive (owned) */
    int is_array;
    size_t cpos, cls;         /* line counting cursor: offset and its line's start */
    unsigned long cline;      /* line number at cpos */
    char error[JR_ERROR_MAX]; /* whole-document parse error, or "" */
} jr_doc;

/*
 * Parses `buf` (len bytes, need not be NUL-terminated; borrowed until
 * jr_doc_close) as one JSON document. A document that does not parse yields
 * one error item covering the whole buffer. Returns 0, or -1 when out of
 * memory (nothing to close then).
 */
int jr_doc_open(jr_doc *doc, const char *name, const char *buf, size_t len, size_t max_size);
/* Next item: 1 with *out filled (clear it with jr_item_clear), 0 at the end. */
int jr_doc_next(jr_doc *doc, jr_item *out);
void jr_doc_close(jr_doc *doc);

/*
 * Bounded line reader over a FILE*: memory stays below `keep` plus a fixed
 * read buffer, whatever the length of a line. A line longer than `keep` bytes
 * is returned cut to `keep` bytes with its real length in *full_len.
 */
typedef struct jr_lines {
    FILE *f;
    char *rbuf; /* read buffer */
    size_t rcap, rpos, rend;
    char *line; /* assembled line when it spans reads */
    size_t lcap;
    size_t keep;
    uint64_t offset; /* file offset of the next line */
    unsigned long lineno;
    int eof;
    int error; /* errno of a read error */
} jr_lines;

int jr_lines_init(jr_lines *lr, FILE *f, size_t keep);
/*
 * Reads the next line. Returns 1 with *line and *len (borrowed until the next
 * call), *full_len, *offset (file offset of the line) and lr->lineno set; 0 at
 * end of file; -1 on a read error (lr->error holds errno) or out of memory.
 */
int jr_lines_next(jr_lines *lr, const char **line, size_t *len, size_t *full_len, uint64_t *offset);
void jr_lines_free(jr_lines *lr);

/*
 * Copies at most `max` bytes of `text` into a new NUL-terminated string that
 * is valid UTF-8 (invalid bytes become U+FFFD, a sequence cut at the end is
 * dropped, NUL bytes become U+FFFD). The caller frees it; NULL on no memory.
 */
char *jr_raw_text(const char *text, size_t len, size_t max);

/* Name of a JSON type for messages ("string", "array", ...). */
const char *jr_type_name(json_object *obj);

#endif
