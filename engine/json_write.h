/*
 * json_write.h: a read-only JSON serializer into a growable byte buffer,
 * behind host->json_write() and host->json_write_string() (plugin.h).
 *
 * Output is byte-for-byte what json_object_to_json_string_ext(obj,
 * JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) prints, but it never
 * writes to the object: json-c caches its output inside the top-level object,
 * so two sinks serializing one payload on two threads would race. This walks
 * the tree with read-only accessors instead, and appends straight into the
 * caller's buffer (no allocation per record).
 */
#ifndef IK_JSON_WRITE_H
#define IK_JSON_WRITE_H

#include <stddef.h>

#include <intake/plugin.h>
#include <json-c/json.h>

#include "common/buf.h"

/* Appends s (n bytes) as a quoted, escaped JSON string. */
void jo_string(ik_buf *b, const char *s, size_t n);
/* Appends obj (NULL prints null). Nesting deeper than 1000 prints null there. */
void jo_value(ik_buf *b, json_object *obj);

/* host->json_write and host->json_write_string: append to a plugin's buffer
 * (grown with realloc, owned by the plugin). 0, or IK_E_NOMEM with buf->len
 * back where it was and buf->oom set (refused at once when oom is set). */
int ik_json_write(const json_object *obj, ik_buf *buf);
int ik_json_write_string(const char *s, size_t n, ik_buf *buf);

#endif
