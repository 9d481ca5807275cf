/*
 * buf.h: a growable byte buffer (static library intake_common). Appends
 * never fail loudly: on out of memory the buffer sets `oom` and ignores
 * further appends, and the caller checks once at the end. ik_array_grow()
 * gives arrays of other types the same doubling growth. p is
 * NUL-terminated when len > 0 or after ik_buf_take.
 */
#ifndef INTAKE_COMMON_BUF_H
#define INTAKE_COMMON_BUF_H

#include <stddef.h>

#include <intake/buf.h> /* the struct: one layout for the engine, plugins and the SDK */

/* Makes room for n more bytes (and the NUL) without appending. Returns 0,
 * or -1 when out of memory (then oom is set). */
int ik_buf_reserve(ik_buf *b, size_t n);
/* Appends n bytes. Even n = 0 leaves a string behind: ik_buf_add(b, "", 0)
 * after b->len = 0 makes p the empty string (allocated if need be). */
void ik_buf_add(ik_buf *b, const char *s, size_t n);
void ik_buf_adds(ik_buf *b, const char *s);
/* One byte: inline, as serializers add punctuation a byte at a time. */
static inline void ik_buf_addc(ik_buf *b, char c)
{
    if (!b->oom && b->cap - b->len >= 2) { /* the byte and the NUL fit */
        b->p[b->len++] = c;
        b->p[b->len] = '\0';
        return;
    }
    ik_buf_add(b, &c, 1);
}
/* Hands the string over (never NULL unless oom: then frees and returns NULL). */
char *ik_buf_take(ik_buf *b);
void ik_buf_free(ik_buf *b);

/*
 * The same growth for an array of items of `size` bytes: returns items
 * grown (realloc) to hold at least `need` items, *cap updated (doubled, at
 * least 16 items), or items itself when *cap already holds need. NULL when
 * out of memory or when need * size overflows: items is then still valid and
 * *cap unchanged. Typical use:
 *   T *g = ik_array_grow(a->items, &a->cap, a->n + 1, sizeof *g);
 *   if (!g) return IK_E_NOMEM;
 *   a->items = g;
 */
void *ik_array_grow(void *items, size_t *cap, size_t need, size_t size);

#endif
