/*
 * file.h: opening a file for reading without ever waiting on it, and
 * reading a whole file into memory (static library intake_common), for the
 * files the engine and plugins load (config, env file, prompts, rank files)
 * and the file source's input.
 */
#ifndef INTAKE_COMMON_FILE_H
#define INTAKE_COMMON_FILE_H

#include <stddef.h>
#include <sys/stat.h>

/* ik_open_regular_at() found something other than a regular file (negated). */
#define IK_ENOTREG 4096

/*
 * Opens path (relative to dirfd; AT_FDCWD for the working folder) for
 * reading without waiting on it: a FIFO without a writer, or a device,
 * would block open() or the first read for good, so the open is O_NONBLOCK,
 * the type is checked on the descriptor, and only a regular file is kept,
 * made blocking again. extra_flags are added to the open (O_NOFOLLOW, say).
 * Returns the descriptor (the caller closes it) with its status in *st;
 * -errno when open, fstat or fcntl failed; -IK_ENOTREG when it is not a
 * regular file, *st then saying what it is.
 */
int ik_open_regular_at(int dirfd, const char *path, int extra_flags, struct stat *st);

/* Reads the regular file path whole into *out: malloc'ed and NUL-terminated
 * (caller frees), its length in *len when len is not NULL. Returns 0, or an
 * errno value (ENOENT when the file does not exist, EINVAL when it is not a
 * regular file, ENOMEM, or what open or read said) with "PATH: what went
 * wrong" in err and *out NULL. Never waits on a FIFO or a device. */
int ik_read_file(const char *path, char **out, size_t *len, char *err, size_t errlen);

#endif
