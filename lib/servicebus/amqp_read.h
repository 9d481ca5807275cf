/*
 * amqp_read.h: a bounds-checked reader of AMQP 1.0 encoded values that
 * turns them into json-c values (the library's own; message.c builds on
 * it). Every read stays inside [pos, n): a compound narrows n to its own end
 * while its items are read, so an item cannot run past its container.
 */
#ifndef INTAKE_SB_AMQP_READ_H
#define INTAKE_SB_AMQP_READ_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#define SB_MAX_DEPTH 64 /* compound and described values nest at most this deep */

typedef struct sb_reader {
    const unsigned char *b;
    size_t n;   /* bytes that may be read: b[0..n) */
    size_t pos; /* the next byte; offsets in errors are from b */
    char *err;  /* where errors go ("at byte 12: ..."); may be NULL */
    size_t errlen;
} sb_reader;

/* Records "at byte <at>: <what>" in r->err and returns IK_E_PARSE. */
int sb_fail(sb_reader *r, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Reads one value at r->pos (described values give their value, the
 * descriptor checked and dropped) at nesting level `depth` (0 for a
 * section's value). With out NULL the value is only checked for structure;
 * otherwise *out is the converted value, owned by the caller (NULL for an
 * AMQP null or a float that is not finite): booleans, integers (a ulong
 * above INT64_MAX as uint64), doubles, timestamps as unix ms integers,
 * strings and symbols as strings (UTF-8 checked), uuids in RFC text form,
 * binary and decimals as lower-case hex, a char as a one-character string,
 * lists and arrays as arrays, maps as objects (keys: strings, symbols or
 * integers as decimal text). 0, IK_E_PARSE (r->err set) or IK_E_NOMEM.
 */
int sb_read_value(sb_reader *r, int depth, json_object **out);

/*
 * Reads a binary, string or symbol value at r->pos without converting it:
 * *type is its constructor (0xa0/0xb0 binary, 0xa1/0xb1 string, 0xa3/0xb3
 * symbol), *p and *len the bytes inside r->b. 0, or IK_E_PARSE when the
 * value is of another type (`what` names it in the error) or runs past
 * the end.
 */
int sb_read_bytes(sb_reader *r, const char *what, unsigned char *type, const unsigned char **p,
                  size_t *len);

/* A name for a JSON value's type in errors: "a string", "an integer", ... */
const char *sb_json_type_name(const json_object *v);

#endif
