/*
 * progress.h: the file source's completion ledger. One ledger per input file
 * records which record indices (1-based) are settled, as a bitmap (one bit
 * per record, so a million-record file costs 128 KiB). When a run ends with
 * some records released, the ledger is saved as a progress file
 * <done_dir>/.progress/<basename>.json of compact ranges, and read back next
 * time so settled records are not emitted again.
 *
 * Not thread-safe: the file source guards each ledger with its mutex.
 */
#ifndef INTAKE_FILE_PROGRESS_H
#define INTAKE_FILE_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

/* Highest index a progress file may name (guards against absurd input). */
#define PG_MAX_INDEX (1ul << 31)

typedef struct pg_ledger {
    uint64_t *bits;
    size_t words;
    unsigned long count; /* indices set */
} pg_ledger;

/* Marks index (>= 1). Returns 0, or -1 (out of memory / out of range). */
int pg_set(pg_ledger *l, unsigned long index);
int pg_test(const pg_ledger *l, unsigned long index);
void pg_free(pg_ledger *l);

/*
 * The settled indices as compact ranges, e.g. "1-5,7,9-12". The caller frees
 * the string; NULL on out of memory.
 */
char *pg_ranges(const pg_ledger *l);
/*
 * Adds the indices of a ranges string to the ledger. Returns 0, or -1 with
 * `err` (size errsize) saying what and where ("at 7: expected a number").
 */
int pg_parse_ranges(pg_ledger *l, const char *ranges, char *err, size_t errsize);

/*
 * Writes {"file": file, "size": size, "settled": "<ranges>"} to `path`
 * atomically (temp file + rename; creates the parent directory). Returns 0 or
 * -errno, with `err` saying what failed.
 */
int pg_save(const pg_ledger *l, const char *path, const char *file, uint64_t size, char *err,
            size_t errsize);
/*
 * Loads a progress file into `l`. Returns 1 when loaded, 0 when there is no
 * such file, -1 when it is unreadable or malformed or was written for a file
 * of another size (err says which; the caller then ignores it).
 */
int pg_load(pg_ledger *l, const char *path, uint64_t size, char *err, size_t errsize);

/* mkdir -p with mode 0755. Returns 0 or -errno. */
int pg_mkdirs(const char *path);
/*
 * Writes len bytes to `path` atomically: a temp file ".<name>.tmp.<pid>.<seq>"
 * in the same folder, fsync'ed, then renamed over `path`. Returns 0 or -errno.
 */
int pg_write_atomic(const char *path, const char *data, size_t len, unsigned long seq);

/*
 * Writes len bytes to a new file <dir>/<stem>.json, or <stem>-2.json,
 * <stem>-3.json... if taken: never overwrites, even against a concurrent
 * writer (temp file, fsync, then link(2), which fails on an existing name).
 * On 0, *out_path (caller frees) names the file written. Returns 0 or -errno.
 */
int pg_write_unique(const char *dir, const char *stem, const char *data, size_t len,
                    unsigned long seq, char **out_path);

#endif
