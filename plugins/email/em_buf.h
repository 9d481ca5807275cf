/*
 * em_buf.h: a growable byte buffer used inside the email library (not part of
 * its interface). Appends never fail loudly: on out of memory the buffer sets
 * `oom` and ignores further appends, and the caller checks once at the end.
 */
#ifndef INTAKE_EMAIL_BUF_H
#define INTAKE_EMAIL_BUF_H

#include <stddef.h>

typedef struct em_buf {
    char *p; /* NUL-terminated when len > 0 or after em_buf_take */
    size_t len, cap;
    int oom;
} em_buf;

void em_buf_add(em_buf *b, const char *s, size_t n);
void em_buf_adds(em_buf *b, const char *s);
void em_buf_addc(em_buf *b, char c);
/* Hands the string over (never NULL unless oom: then frees and returns NULL). */
char *em_buf_take(em_buf *b);
void em_buf_free(em_buf *b);

#endif
