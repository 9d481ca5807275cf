/* log.h: one-line log messages to stderr, with a UTC timestamp and a level.
 * Never pass secrets (SAS keys, tokens, signatures) to these functions. */
#ifndef SBEMU_LOG_H
#define SBEMU_LOG_H

#include <stdint.h>

enum sb_log_level { SB_LOG_ERROR = 0, SB_LOG_WARN = 1, SB_LOG_INFO = 2, SB_LOG_DEBUG = 3 };

void sb_log_set_level(int level);
int sb_log_enabled(int level);
void sb_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Milliseconds since the Unix epoch (wall clock). */
int64_t sb_now_ms(void);

#define SB_ERR(...)  sb_log(SB_LOG_ERROR, __VA_ARGS__)
#define SB_WARN(...) sb_log(SB_LOG_WARN, __VA_ARGS__)
#define SB_INFO(...) sb_log(SB_LOG_INFO, __VA_ARGS__)
#define SB_DBG(...)                                                                                \
    do {                                                                                           \
        if (sb_log_enabled(SB_LOG_DEBUG))                                                          \
            sb_log(SB_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#endif
