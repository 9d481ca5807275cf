/*
 * multipart.h: a strict multipart/form-data parser (RFC 7578 over RFC 2046)
 * for mock-openai's file upload. The body is outside input, so every
 * malformation is reported with a message saying what is wrong instead of
 * being guessed around.
 */
#ifndef MOCK_MULTIPART_H
#define MOCK_MULTIPART_H

#include <stddef.h>

typedef struct mp_part {
    char *name;       /* owned: the form field name */
    char *filename;   /* owned; NULL when the part is not a file */
    const char *data; /* the part's content, inside the parsed body */
    size_t len;
} mp_part;

typedef struct mp_form {
    mp_part *parts;
    size_t n;
} mp_form;

/* Parses body as the multipart/form-data that content_type (the request's
 * Content-Type header, boundary included) announces. 0 on success (free
 * with mp_free); -1 with a message in err otherwise (nothing to free). */
int mp_parse(const char *content_type, const char *body, size_t len, mp_form *out, char *err,
             size_t errn);
void mp_free(mp_form *f);

#endif
