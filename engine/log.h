/*
 * log.h: the engine's leveled logger, writing to stderr as text or JSON lines.
 *
 * One logger per process (the engine is the process; plugins log through the
 * host table, which lands here with their pipeline and instance names). Every
 * message passes the redactor: any value registered with ik_log_add_secret()
 * is replaced by "[REDACTED]" wherever it appears, so an option marked secret
 * cannot leak through a plugin's careless format string.
 *
 * Text line:  2026-11-28T10:36:05.123Z INFO  [pipeline/instance] message
 * JSON line:  {"ts":"...","level":"info","pipeline":"p","instance":"i","msg":"..."}
 * Thread-safe; each line is written with one write(2).
 */
#ifndef IK_LOG_H
#define IK_LOG_H

#include <stdarg.h>
#include <stddef.h>

#include <intake/plugin.h>

typedef enum ik_log_format {
    IK_LOG_TEXT = 0,
    IK_LOG_JSON = 1,
} ik_log_format;

/* Sets format and threshold (messages above `level` are dropped). Defaults:
 * text, info. May be called again at any time. */
void ik_log_configure(ik_log_format format, ik_log_level level);
ik_log_level ik_log_level_get(void);

/* Parses "error|warn|info|debug|trace" and "text|json"; -1 when unknown. */
int ik_log_level_parse(const char *s);
int ik_log_format_parse(const char *s);
const char *ik_log_level_name(ik_log_level level);

/* Registers a secret to redact from every later line. The string is copied.
 * Values shorter than 4 bytes are ignored (they would redact ordinary text).
 * Returns 0 or IK_E_NOMEM. */
int ik_log_add_secret(const char *secret);

/* Copies `in` to `out` (NUL-terminated, truncated to outlen) with every
 * registered secret replaced by "[REDACTED]". For error messages and metrics
 * labels that do not go through ik_logf. */
void ik_log_redact(const char *in, char *out, size_t outlen);

/* Logs one line. pipeline and instance may be NULL (engine-level message). */
void ik_logf(ik_log_level level, const char *pipeline, const char *instance, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void ik_vlogf(ik_log_level level, const char *pipeline, const char *instance, const char *fmt,
              va_list ap);

/* Frees the secret list (end of main; for leak checkers). */
void ik_log_shutdown(void);

#endif
