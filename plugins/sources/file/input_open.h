/*
 * input_open.h: how the file source opens its input without being tricked by
 * what else can sit in an inbox. Whoever can drop a file in the input folder
 * can also drop a symbolic link to /proc/self/environ, a FIFO that blocks its
 * reader for ever, a socket or a device. So input is opened without following
 * symbolic links (unless the `symlinks` option allows links that resolve to a
 * regular file inside the folder), without waiting (O_NONBLOCK, cleared once
 * the descriptor is known to be a regular file), and accepted only when the
 * open descriptor is a regular file. Anything else is skipped with a reason
 * the source logs.
 *
 * Thread-safe: nothing here is shared (settle threads re-open files too).
 */
#ifndef INTAKE_FILE_INPUT_OPEN_H
#define INTAKE_FILE_INPUT_OPEN_H

#include <stddef.h>
#include <sys/stat.h>

/* Longest reason text of a skipped entry. */
#define IN_WHY_MAX 512

typedef struct in_folder {
    const char *path; /* the input folder as configured (trusted: may itself be a link) */
    const char *real; /* its resolved path (realpath) */
    int links_inside; /* follow links that resolve to a regular file inside `real` */
} in_folder;

/*
 * Decides from an entry's lstat() whether it may be input: 0 when it is a
 * regular file (or a symbolic link that in_open will check, when links_inside),
 * else 1 with `why` saying what it is ("FIFO (named pipe)", ...).
 */
int in_check(const in_folder *in, const struct stat *lsb, char *why, size_t size);

/*
 * Opens <in->path>/<rel> for reading; rel is "name" or "sub/cur/name" (no
 * "." or ".." parts) and no part of it may be a symbolic link, but for the
 * last with links_inside. Returns 0 with *fd (blocking, close-on-exec; the
 * caller closes it) and *sb its fstat(); 1 when the entry is skipped, with
 * `why` saying why and *sb what was found (zeroed when nothing could be
 * stat'ed) so the caller can tell the entry again; or a negative errno
 * (-ENOENT: gone since the folder was listed).
 */
int in_open(const in_folder *in, const char *rel, int *fd, struct stat *sb, char *why, size_t size);

#endif
