/*
 * intake/buf.h: the growable byte buffer shared by the engine, its plugins
 * and the SDK (host->json_write() and host->json_write_string() append to
 * one). Only the layout is public; an in-tree plugin links intake_common for
 * the append functions (common/buf.h).
 *
 * Start it zeroed. p grows with realloc and belongs to whoever holds the
 * buffer: free(p) when done. After a successful append p is NUL-terminated at
 * len; set len to 0 to reuse the buffer. oom is set when an append ran out of
 * memory: later appends are then refused, so a chain of appends can be
 * checked once at the end; clear oom (and len) to start over.
 */
#ifndef INTAKE_BUF_H
#define INTAKE_BUF_H

#include <stddef.h>

typedef struct ik_buf {
    char *p; /* owned; NUL-terminated at len after a successful append */
    size_t len, cap;
    int oom;
} ik_buf;

#endif
