/*
 * buf.h: a growable byte buffer (static library intake_common). Appends
 * never fail loudly: on out of memory the buffer sets `oom` and ignores
 * further appends, and the caller checks once at the end.
 */
#ifndef INTAKE_COMMON_BUF_H
#define INTAKE_COMMON_BUF_H

#include <stddef.h>

typedef struct ik_buf {
    char *p; /* NUL-terminated when len > 0 or after ik_buf_take */
    size_t len, cap;
    int oom;
} ik_buf;

/* Appends n bytes. Even n = 0 leaves a string behind: ik_buf_add(b, "", 0)
 * after b->len = 0 makes p the empty string (allocated if need be). */
void ik_buf_add(ik_buf *b, const char *s, size_t n);
void ik_buf_adds(ik_buf *b, const char *s);
void ik_buf_addc(ik_buf *b, char c);
/* Hands the string over (never NULL unless oom: then frees and returns NULL). */
char *ik_buf_take(ik_buf *b);
void ik_buf_free(ik_buf *b);

#endif
