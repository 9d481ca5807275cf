/* persist.h: optional snapshot of the store to a file (persist_file in the config), written
 * on shutdown and every persist_interval_ms, read at start-up so a restart keeps the messages. */
#ifndef SBEMU_PERSIST_H
#define SBEMU_PERSIST_H

#include <stddef.h>

#include "store.h"

/* Writes every queue and dead-letter queue to path (via path.tmp + rename). 0 or -1 + err. */
int sb_persist_save(sb_store *st, const char *path, char *err, size_t errlen);
/* Reads a snapshot: a missing file is fine (returns 0, *loaded 0). A corrupt one is refused
 * with -1 + err, before anything is added. Queues no longer configured are skipped (logged). */
int sb_persist_load(sb_store *st, const char *path, size_t *loaded, char *err, size_t errlen);

#endif
