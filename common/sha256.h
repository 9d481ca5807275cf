/*
 * sha256.h: SHA-256 as lower-case hex (static library intake_sha256, which
 * links OpenSSL's libcrypto; kept out of intake_common so that the engine
 * does not depend on libcrypto). Used for attachment digests (lib/email)
 * and the rank file check (lib/tokenizer).
 */
#ifndef INTAKE_COMMON_SHA256_H
#define INTAKE_COMMON_SHA256_H

#include <stddef.h>

/* SHA-256 of data[0..len) as 64 lower-case hex digits plus NUL into hex.
 * data may be NULL when len is 0. Returns 0, or -1 when OpenSSL failed (out
 * of memory): hex is then the empty string. */
int ik_sha256_hex(const void *data, size_t len, char hex[65]);

#endif
