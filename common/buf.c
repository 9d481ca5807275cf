/*
 * buf.c: the growable byte buffer (see buf.h). One copy for the email
 * library, the gpt_batch processor and whoever else builds text piece by
 * piece.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void ik_buf_add(ik_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void ik_buf_adds(ik_buf *b, const char *s)
{
    ik_buf_add(b, s, strlen(s));
}

void ik_buf_addc(ik_buf *b, char c)
{
    ik_buf_add(b, &c, 1);
}

char *ik_buf_take(ik_buf *b)
{
    if (b->oom) {
        ik_buf_free(b);
        return NULL;
    }
    if (!b->p) {
        b->p = calloc(1, 1);
        if (!b->p)
            return NULL;
    }
    char *p = b->p;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void ik_buf_free(ik_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}
