/* config.h: the emulator's libconfig file: listeners, shared access keys, queues. */
#ifndef SBEMU_CONFIG_H
#define SBEMU_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define SB_NAME_MAX 260

typedef struct sb_key_cfg {
    char name[SB_NAME_MAX];
    char *key; /* secret: never logged */
} sb_key_cfg;

typedef struct sb_queue_cfg {
    char name[SB_NAME_MAX];
    int64_t lock_duration_ms;    /* default 60000, max 300000 */
    uint32_t max_delivery_count; /* default 10 */
    int64_t default_ttl_ms;      /* 0 = never expires */
    int dead_lettering_on_expiration;
    int duplicate_detection;
    int64_t duplicate_window_ms; /* default 600000 */
    int requires_session;
    int64_t max_size_bytes; /* default 1 GiB */
} sb_queue_cfg;

typedef struct sb_config {
    char address[64];   /* AMQP listen address, default 127.0.0.1 */
    int port;           /* default 5672; 0 = any free port */
    int amqps_port;     /* -1 = off */
    char tls_cert[512]; /* PEM files for amqps and https */
    char tls_key[512];
    int http_port;  /* -1 = off; 0 = any free port */
    int https_port; /* -1 = off; needs tls_cert/tls_key */
    int64_t max_message_size;
    int log_level;
    char persist_file[512];       /* "" = memory only */
    int64_t persist_interval_ms;  /* snapshot period when persist_file is set (default 5000) */
    int64_t handshake_timeout_ms; /* SASL + open + put-token (or PLAIN) after connect; 20000 */
    sb_key_cfg *keys;
    size_t nkeys;
    sb_queue_cfg *queues;
    size_t nqueues;
} sb_config;

/* Loads path into cfg (zeroed first). Returns 0, or -1 with a message naming file and line
 * written to err. */
int sb_config_load(sb_config *cfg, const char *path, char *err, size_t errlen);
void sb_config_free(sb_config *cfg);
/* Checks a queue name: 1..260 chars of [A-Za-z0-9._-], not starting or ending with '.'/'-'. */
int sb_config_valid_queue_name(const char *name);
const sb_key_cfg *sb_config_find_key(const sb_config *cfg, const char *name);

#endif
