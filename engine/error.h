/*
 * error.h: one precise code and one message per failure.
 *
 * Engine functions that can fail take an ik_err* and, on failure, fill it with
 * an IK_E_* code and a message that says what failed, where (config file:line,
 * plugin instance, record id) and what to do about it. The caller decides
 * whether to print it. Messages are already redacted of secrets by whoever
 * formats them (they never contain option values marked secret).
 */
#ifndef IK_ERROR_H
#define IK_ERROR_H

#include <stddef.h>

#include <intake/plugin.h>

#define IK_ERR_MAX 2048

typedef struct ik_err {
    int code;             /* 0 or an IK_E_* code */
    char msg[IK_ERR_MAX]; /* empty when code == 0 */
} ik_err;

/* Sets err (if not NULL) and returns code, so callers can `return ik_err_set(...)`. */
int ik_err_set(ik_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with more context ("while loading X: ..."). */
void ik_err_prefix(ik_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void ik_err_clear(ik_err *err);

/* Static text for an IK_E_* code ("unknown error" for anything else). */
const char *ik_strerror(int code);

#endif
