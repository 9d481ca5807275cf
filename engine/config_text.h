/*
 * config_text.h: the text of a pipeline file with every @include expanded,
 * read without ever blocking, and the map from its lines back to file:line.
 *
 * libconfig 1.5 would open @include files itself: it joins every name, an
 * absolute one too, to a single include folder, blocks for good on a FIFO,
 * reads files of any size, and parses the members of one group in quadratic
 * time. So the engine reads the files itself and hands libconfig one string
 * in which no @include is left; settings and libconfig's errors are then put
 * back on their own file and line through ik_config_text_locate().
 *
 * The rules (README, "Writing a pipeline"):
 *   - `@include "name"` stands on a line of its own (a # or // comment may
 *     follow); a relative name is relative to the folder of the file that
 *     includes it, an absolute one is taken as it is.
 *   - the config file and every include are regular files (not a FIFO, a
 *     device or a folder), opened without blocking;
 *   - each file, and the config with everything it includes, is at most
 *     IK_CONFIG_MAX_BYTES; it holds at most IK_CONFIG_MAX_SETTINGS named
 *     settings in all;
 *   - includes nest at most IK_CONFIG_MAX_DEPTH deep and never in a cycle;
 *     an included file closes every string and comment it opens.
 */
#ifndef IK_CONFIG_TEXT_H
#define IK_CONFIG_TEXT_H

#include <stddef.h>

#include "error.h"

#define IK_CONFIG_MAX_BYTES    (1024u * 1024u) /* 1 MiB */
#define IK_CONFIG_MAX_SETTINGS 10000u
#define IK_CONFIG_MAX_DEPTH    10

/* Lines first.. of the expanded text come from file `file` (an index into
 * ik_config_text.files), starting at its line file_line. */
typedef struct ik_config_span {
    unsigned first;
    size_t file;
    unsigned file_line;
} ik_config_span;

typedef struct ik_config_text {
    char *text;   /* the expanded text, NUL-terminated; NULL once released */
    char **files; /* every file read: [0] the name the config was given by,
                     then each include as opened (absolute when [0]'s folder is) */
    size_t nfiles;
    ik_config_span *spans; /* sorted by `first` */
    size_t nspans;
} ik_config_text;

/*
 * Reads the config `path` (or, when `text` is not NULL, takes `text` as its
 * content, `path` being only its name) and expands its includes, resolving
 * relative names of the main file against `dir`. Fills *out (zeroed first;
 * free it with ik_config_text_free, also after an error). Errors name the
 * file, and for an include the including file:line:
 *   IK_E_NOTFOUND / IK_E_IO  a file cannot be opened or read
 *   IK_E_CONFIG              not a regular file, too large, too many
 *                            settings, a bad @include line, a cycle
 *   IK_E_NOMEM
 */
int ik_config_text_load(const char *path, const char *dir, const char *text, ik_config_text *out,
                        ik_err *err);

/* The file and line that line `line` of the expanded text came from. Line 0
 * (libconfig's root setting) is the main file's line 0. */
void ik_config_text_locate(const ik_config_text *t, unsigned line, const char **file,
                           unsigned *file_line);

/* Frees the expanded text only, keeping the file names and the map. */
void ik_config_text_release(ik_config_text *t);
void ik_config_text_free(ik_config_text *t);

#endif
