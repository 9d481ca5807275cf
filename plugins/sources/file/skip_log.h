/*
 * skip_log.h: remembers which skipped entries of the input folder were
 * already reported, so each is logged once and not on every poll of follow
 * mode. An entry is known by its name and identity (device, inode, type and
 * modification time): replaced or changed, it is reported again. Memory is
 * bounded: entries gone from the folder are forgotten at the end of each
 * full scan, and at most SL_MAX are remembered at once.
 *
 * Not thread-safe: used by the source's run() thread only.
 */
#ifndef INTAKE_FILE_SKIP_LOG_H
#define INTAKE_FILE_SKIP_LOG_H

#include <stddef.h>
#include <sys/stat.h>

#include "sorted_names.h"

#define SL_MAX 4096

typedef struct sl_entry {
    char *name; /* first member: the key of sorted_names.h */
    dev_t dev;
    ino_t ino;
    mode_t type;
    struct timespec mtime;
    int seen; /* noted since the last sl_sweep */
} sl_entry;

typedef struct sl_set {
    sn_array e;    /* of sl_entry */
    int full_told; /* the "too many" notice was given */
} sl_set;

/*
 * Notes that entry `name` (as *sb describes it) is skipped. Returns 1 when
 * it was not reported yet (the caller logs it), 0 when it was, 2 when it is
 * new but the set is full (the caller says once that further entries are not
 * logged one by one; it returns 0 for them afterwards), -1 when out of memory.
 */
int sl_note(sl_set *s, const char *name, const struct stat *sb);
/* Forgets the entries not noted since the previous sweep (call after a full scan). */
void sl_sweep(sl_set *s);
void sl_free(sl_set *s);

#endif
