/*
 * json_reader.h: the file source's parser of outside input. It splits a .json
 * document (one object, or an array of objects) or a .jsonl stream (one object
 * per line) into items: a json_object with the line, column, byte offset and
 * byte size of its raw text, or an error that says what went wrong and where
 * ("emails.jsonl:17:42: unexpected character '}'").
 *
 * Nothing here touches the engine: the functions are pure (apart from reading
 * the FILE* handed to the document and line readers) so they can be
 * unit-tested and fuzzed.
 *
 * A record is refused, with the line and column, when it holds a NUL
 * character: a raw NUL byte (never valid JSON) or a \u0000 escape in any
 * string, key or value (json-c would keep it, but the engine and the plugins
 * handle strings as NUL-terminated C strings and would cut it silently).
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
 * (and obj NULL), as does an object holding a \u0000 escape. Returns 1 when
 * *out holds an item, 0 for a blank line
 * (nothing to do; *out cleared). `name` is used in error texts.
 */
int jr_parse_line(const char *name, const char *line, size_t len, size_t full_len,
                  unsigned long lineno, unsigned long index, uint64_t offset, size_t max_size,
                  jr_item *out);
/* The same with a tokener kept across lines (from jr_tokener_new, freed with
 * json_tokener_free): a line reader's loop then allocates no tokener per
 * line. */
int jr_parse_line_tok(json_tokener *tok, const char *name, const char *line, size_t len,
                      size_t full_len, unsigned long lineno, unsigned long index, uint64_t offset,
                      size_t max_size, jr_item *out);
/* A tokener set up as the reader parses (strict, UTF-8 checked); NULL when
 * out of memory. */
json_tokener *jr_tokener_new(void);

/*
 * A .json document read from a FILE* and split into items as it is read, so
 * memory stays bounded by the largest element (max_size) plus one read chunk,
 * whatever the size of the file.
 *
 * - One object: one item. An array: one item per element, in order, each
 *   parsed alone; an element that is not an object, that holds a NUL
 *   character (\u0000) or that is larger than max_size is an error item, and
 *   the elements after it are read as usual.
 * - A syntax error ends the document: the elements before it were already
 *   returned, and one last error item covers the rest of the file, from the
 *   start of the element (or the character) where it went wrong, with the
 *   error's line and column in the text. A document that is not an object or
 *   an array, or has text after its single object, is one error item.
 * - Items are numbered 1, 2, ... in file order (the index the progress ledger
 *   keeps), the last error item included.
 */
typedef struct jr_doc {
    const char *name;
    FILE *f;
    size_t max_size;
    size_t chunk; /* bytes per read; may be changed before the first jr_doc_next */
    char *win;    /* window on the file: bytes [wbase, wbase + wlen) (owned) */
    size_t wcap, wlen;
    uint64_t wbase;      /* file offset of win[0] */
    uint64_t pos;        /* file offset of the next byte to look at */
    uint64_t keep;       /* bytes from here on stay in the window */
    uint64_t cpos, cls;  /* line counting: counted up to cpos; cls starts its line */
    unsigned long cline; /* line number at cpos */
    char *raw;           /* raw text of an item no longer in the window (owned) */
    json_tokener *tok;   /* reused for every element (owned) */
    size_t raw_len;
    unsigned long index; /* items returned so far */
    int state;           /* where in the document the next call goes on */
    int eof;             /* fread reached the end of the file */
    int error;           /* errno of a read error, or ENOMEM */
} jr_doc;

/*
 * Starts reading a .json document from f (borrowed until jr_doc_close; read
 * from its current position). `name` (borrowed) is used in error texts. Every
 * element larger than max_size bytes is an error item. Returns 0, or -1 when
 * out of memory (nothing to close then).
 */
int jr_doc_open(jr_doc *doc, const char *name, FILE *f, size_t max_size);
/*
 * Next item: 1 with *out filled (clear it with jr_item_clear; its text is
 * valid until the next call), 0 at the end, -1 when the file cannot be read
 * or memory ran out (doc->error holds the errno value; items returned so far
 * stand).
 */
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
