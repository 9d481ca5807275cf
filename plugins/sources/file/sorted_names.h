/*
 * sorted_names.h: an array kept sorted by name, found by binary search: the
 * file source's set of names taken this run and skip_log's set of entries
 * already logged. Each element starts with its name, a char * the array
 * owns: the element is that pointer alone, or a struct whose first member it
 * is; `size` is the size of one element.
 *
 * Not thread-safe.
 */
#ifndef INTAKE_FILE_SORTED_NAMES_H
#define INTAKE_FILE_SORTED_NAMES_H

#include <stdlib.h>
#include <string.h>

typedef struct sn_array {
    void *v; /* n elements of `size` bytes, sorted by name (owned) */
    size_t n, cap;
} sn_array;

static inline void *sn_at(const sn_array *a, size_t size, size_t i)
{
    return (char *)a->v + i * size;
}

/* Index of name, or where it would go (*found 0). */
static inline size_t sn_find(const sn_array *a, size_t size, const char *name, int *found)
{
    size_t lo = 0, hi = a->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(*(char *const *)sn_at(a, size, mid), name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

/* Inserts at pos (where sn_find said name would go) an element holding a
 * copy of name, the rest of it zeroed. Returns the element, or NULL when out
 * of memory (the array unchanged). */
static inline void *sn_insert(sn_array *a, size_t size, size_t pos, const char *name)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        void *grown = realloc(a->v, cap * size);
        if (!grown)
            return NULL;
        a->v = grown;
        a->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return NULL;
    char *e = sn_at(a, size, pos);
    memmove(e + size, e, (a->n - pos) * size);
    memset(e, 0, size);
    *(char **)e = copy;
    a->n++;
    return e;
}

/* Frees every name and the array. */
static inline void sn_free(sn_array *a, size_t size)
{
    for (size_t i = 0; i < a->n; i++)
        free(*(char **)sn_at(a, size, i));
    free(a->v);
    memset(a, 0, sizeof *a);
}

#endif
