/* skip_log.c: the set of skipped entries already reported (see skip_log.h). */
#include "skip_log.h"

#include <stdlib.h>
#include <string.h>

/* Index of name in the sorted set, or where it would go (*found 0). */
static size_t find(const sl_set *s, const char *name, int *found)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(s->v[mid].name, name);
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

static int same(const sl_entry *e, const struct stat *sb)
{
    return e->dev == sb->st_dev && e->ino == sb->st_ino && e->type == (sb->st_mode & S_IFMT) &&
           e->mtime.tv_sec == sb->st_mtim.tv_sec && e->mtime.tv_nsec == sb->st_mtim.tv_nsec;
}

static void set_identity(sl_entry *e, const struct stat *sb)
{
    e->dev = sb->st_dev;
    e->ino = sb->st_ino;
    e->type = sb->st_mode & S_IFMT;
    e->mtime = sb->st_mtim;
    e->seen = 1;
}

int sl_note(sl_set *s, const char *name, const struct stat *sb)
{
    int found;
    size_t pos = find(s, name, &found);
    if (found) {
        sl_entry *e = &s->v[pos];
        int again = !same(e, sb);
        set_identity(e, sb);
        return again;
    }
    if (s->n >= SL_MAX) {
        if (s->full_told)
            return 0;
        s->full_told = 1;
        return 2;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        sl_entry *grown = realloc(s->v, cap * sizeof *grown);
        if (!grown)
            return -1;
        s->v = grown;
        s->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return -1;
    memmove(s->v + pos + 1, s->v + pos, (s->n - pos) * sizeof *s->v);
    s->v[pos].name = copy;
    set_identity(&s->v[pos], sb);
    s->n++;
    return 1;
}

void sl_sweep(sl_set *s)
{
    size_t o = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (!s->v[i].seen) {
            free(s->v[i].name);
            continue;
        }
        s->v[i].seen = 0;
        s->v[o++] = s->v[i];
    }
    s->n = o;
    if (s->n < SL_MAX)
        s->full_told = 0;
}

void sl_free(sl_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].name);
    free(s->v);
    memset(s, 0, sizeof *s);
}
