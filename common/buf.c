/*
 * buf.c: the growable byte buffer (see buf.h). One copy for the email
 * library, the gpt_batch processor and whoever else builds text piece by
 * piece.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void *ik_array_grow(void *items, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return items;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c = c > SIZE_MAX / 2 ? need : c * 2;
    if (size && c > SIZE_MAX / size)
        return NULL;
    void *grown = realloc(items, c * size);
    if (!grown)
        return NULL;
    *cap = c;
    return grown;
}

int ik_buf_reserve(ik_buf *b, size_t n)
{
    if (b->oom)
        return -1;
    if (n > SIZE_MAX - b->len - 1) {
        b->oom = 1;
        return -1;
    }
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return 0;
    if (!b->cap && need < 256) /* text grows piece by piece: start with room */
        need = 256;
    char *p = ik_array_grow(b->p, &b->cap, need, 1);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    return 0;
}

void ik_buf_add(ik_buf *b, const char *s, size_t n)
{
    if (ik_buf_reserve(b, n) != 0)
        return;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void ik_buf_adds(ik_buf *b, const char *s)
{
    ik_buf_add(b, s, strlen(s));
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
