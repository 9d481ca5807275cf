/*
 * utf8.h: UTF-8 validation shared by the engine and the plugins (static
 * library intake_common; plugins link it, they never resolve engine
 * symbols). One definition of "valid" everywhere: no overlong forms, no
 * surrogates, nothing above U+10FFFF, no truncated sequences.
 */
#ifndef INTAKE_COMMON_UTF8_H
#define INTAKE_COMMON_UTF8_H

#include <stddef.h>

/* Length (1 to 4) of the valid UTF-8 sequence at s, of which n >= 1 bytes
 * may be read, or 0 when the bytes there are not valid UTF-8. NUL is a
 * valid one-byte sequence; callers that refuse it check for it. */
size_t ik_utf8_seq(const unsigned char *s, size_t n);

/* The offset of the first byte at s that does not start a valid UTF-8
 * sequence, or len when all len bytes are valid (NUL included). Runs of
 * ASCII are skipped eight bytes at a time. */
size_t ik_utf8_invalid_at(const char *s, size_t len);

/* 1 when the len bytes at s are all valid UTF-8 (NUL included), else 0. */
int ik_utf8_valid(const char *s, size_t len);

#endif
