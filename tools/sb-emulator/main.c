/* main.c: intake-sb-emulator: command line, signals, start-up and shutdown. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "persist.h"
#include "store.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: intake-sb-emulator -c FILE [-l ADDRESS] [-p PORT] [-v]\n"
               "  -c FILE     entities file (libconfig): keys, queues, ports\n"
               "  -l ADDRESS  listen address (default from the file, else 127.0.0.1)\n"
               "  -p PORT     AMQP port (default from the file, else 5672; 0 = any free port)\n"
               "  -v          debug logging\n"
               "Prints 'READY amqp=P amqps=P http=P https=P' on stdout once listening\n"
               "(-1 = off). SIGINT/SIGTERM stop it. State is kept in memory, and in\n"
               "persist_file when the config names one (saved on exit and periodically).\n");
}

typedef struct ready_ctx {
    sb_broker *b;
    int http_port, https_port;
} ready_ctx;

static void on_ready(sb_broker *b, void *arg)
{
    ready_ctx *r = arg;
    printf("READY amqp=%d amqps=%d http=%d https=%d\n", b->amqp_port,
           b->cfg->amqps_port >= 0 ? b->amqps_port : -1, r->http_port, r->https_port);
    fflush(stdout);
}

static void *signal_thread(void *arg)
{
    sb_broker *b = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    if (sigwait(&set, &sig) == 0) {
        SB_INFO("signal %d: shutting down", sig);
        sb_broker_stop(b);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *cfg_path = NULL, *addr = NULL;
    int port = -1, verbose = 0, opt;
    while ((opt = getopt(argc, argv, "c:l:p:vh")) != -1) {
        switch (opt) {
        case 'c':
            cfg_path = optarg;
            break;
        case 'l':
            addr = optarg;
            break;
        case 'p': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 0 || v > 65535) {
                fprintf(stderr, "intake-sb-emulator: -p: '%s' is not a port\n", optarg);
                return 2;
            }
            port = (int)v;
            break;
        }
        case 'v':
            verbose = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!cfg_path || optind != argc) {
        usage(stderr);
        return 2;
    }
    sb_config cfg;
    char err[512];
    if (sb_config_load(&cfg, cfg_path, err, sizeof err) < 0) {
        fprintf(stderr, "intake-sb-emulator: %s\n", err);
        return 1;
    }
    if (addr) {
        if (strlen(addr) >= sizeof cfg.address) {
            fprintf(stderr, "intake-sb-emulator: -l: address too long\n");
            sb_config_free(&cfg);
            return 2;
        }
        strcpy(cfg.address, addr);
    }
    if (port >= 0)
        cfg.port = port;
    sb_log_set_level(verbose ? SB_LOG_DEBUG : cfg.log_level);

    /* signals go to the signal thread only */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    sb_store store;
    sb_broker broker;
    sb_http *http = NULL;
    ready_ctx ready = {&broker, -1, -1};
    int store_ok = 0, broker_ok = 0;
    if (sb_store_init(&store, &cfg) < 0) {
        SB_ERR("out of memory creating the queues");
        goto out;
    }
    store_ok = 1;
    if (cfg.persist_file[0]) {
        size_t loaded = 0;
        if (sb_persist_load(&store, cfg.persist_file, &loaded, err, sizeof err) < 0) {
            SB_ERR("persist: %s", err);
            goto out;
        }
        SB_INFO("persist: %zu message(s) restored from %s", loaded, cfg.persist_file);
    }
    if (sb_http_start(&http, &cfg, &store, &ready.http_port, &ready.https_port) < 0)
        goto out;
    if (sb_broker_init(&broker, &cfg, &store) < 0)
        goto out;
    broker_ok = 1;
    broker.on_ready = on_ready;
    broker.on_ready_arg = &ready;
    pthread_t st;
    if (pthread_create(&st, NULL, signal_thread, &broker) != 0) {
        SB_ERR("cannot start the signal thread");
        goto out;
    }
    pthread_detach(st);
    SB_INFO("intake-sb-emulator: %zu queue(s), %zu key(s); state %s%s", cfg.nqueues, cfg.nkeys,
            cfg.persist_file[0] ? "persisted to " : "in memory only",
            cfg.persist_file[0] ? cfg.persist_file : "");
    rc = sb_broker_run(&broker) < 0 ? 1 : 0;
    if (cfg.persist_file[0]) {
        if (sb_persist_save(&store, cfg.persist_file, err, sizeof err) < 0) {
            SB_ERR("persist: %s", err);
            rc = 1;
        } else {
            SB_INFO("persist: state saved to %s", cfg.persist_file);
        }
    }
out:
    sb_http_stop(http);
    if (broker_ok)
        sb_broker_free(&broker);
    if (store_ok)
        sb_store_free(&store);
    sb_config_free(&cfg);
    return rc;
}
