/* skip_log.c: the set of skipped entries already reported (see skip_log.h). */
#include "skip_log.h"

#include <stdlib.h>
#include <string.h>

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
    size_t pos = sn_find(&s->e, sizeof(sl_entry), name, &found);
    if (found) {
        sl_entry *e = sn_at(&s->e, sizeof(sl_entry), pos);
        int again = !same(e, sb);
        set_identity(e, sb);
        return again;
    }
    if (s->e.n >= SL_MAX) {
        if (s->full_told)
            return 0;
        s->full_told = 1;
        return 2;
    }
    sl_entry *e = sn_insert(&s->e, sizeof(sl_entry), pos, name);
    if (!e)
        return -1;
    set_identity(e, sb);
    return 1;
}

void sl_sweep(sl_set *s)
{
    sl_entry *v = s->e.v;
    size_t o = 0;
    for (size_t i = 0; i < s->e.n; i++) {
        if (!v[i].seen) {
            free(v[i].name);
            continue;
        }
        v[i].seen = 0;
        v[o++] = v[i];
    }
    s->e.n = o;
    if (s->e.n < SL_MAX)
        s->full_told = 0;
}

void sl_free(sl_set *s)
{
    sn_free(&s->e, sizeof(sl_entry));
    memset(s, 0, sizeof *s);
}
