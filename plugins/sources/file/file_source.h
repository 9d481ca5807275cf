/*
 * file_source.h: internals of the `file` source shared with its unit tests:
 * the descriptor (also returned by the plugin's entry point) and the helpers
 * that are worth testing on their own.
 */
#ifndef INTAKE_FILE_SOURCE_H
#define INTAKE_FILE_SOURCE_H

#include <stddef.h>

#include <intake/plugin.h>

/* The `file` source's descriptor (static storage). */
const ik_plugin *fs_descriptor(void);

/*
 * Writes a file-name-safe form of a record id into out (size >= 2): letters,
 * digits and "._-+@" are kept, anything else becomes '_', a leading '.'
 * becomes '_', and the result is cut to at most 180 bytes.
 */
void fs_sanitize_id(const char *id, char *out, size_t size);

#endif
