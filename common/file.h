/*
 * file.h: reading a whole file into memory (static library intake_common),
 * for the small files plugins load at start-up: prompts, rank files.
 */
#ifndef INTAKE_COMMON_FILE_H
#define INTAKE_COMMON_FILE_H

#include <stddef.h>

/* Reads path whole into *out: malloc'ed and NUL-terminated (caller frees),
 * its length in *len when len is not NULL. Returns 0, or an errno value
 * (ENOENT when the file does not exist, ENOMEM, or what open or read said)
 * with "PATH: what went wrong" in err and *out NULL. */
int ik_read_file(const char *path, char **out, size_t *len, char *err, size_t errlen);

#endif
