/*
 * engine.h: one engine process: every pipeline of a config file, the metrics
 * registry, the timer thread, the admin HTTP server, and the shutdown
 * sequence driven by SIGINT/SIGTERM.
 */
#ifndef IK_ENGINE_H
#define IK_ENGINE_H

#include "config.h"
#include "error.h"

/* Exit codes of `intake`, documented in the README and `intake --help`. */
enum ik_exit {
    IK_EXIT_OK = 0,         /* finished or stopped cleanly */
    IK_EXIT_RUNTIME = 1,    /* a source failed while running */
    IK_EXIT_USAGE = 2,      /* bad command line */
    IK_EXIT_CONFIG = 3,     /* config, plugin or option error (nothing started) */
    IK_EXIT_START = 4,      /* a plugin or the admin server failed to start */
    IK_EXIT_FORCED = 5,     /* second signal: exited at once, releasing what it could */
    IK_EXIT_NOT_STORED = 6, /* finished, but a source could not carry out some outcomes */
    IK_EXIT_STUCK = 7,      /* a plugin call outlived shutdown_timeout + grace: records released */
};

typedef struct ik_engine ik_engine;

/* Loads every plugin of cfg and validates every option; starts nothing.
 * cfg must outlive the engine. */
int ik_engine_new(const ik_config *cfg, ik_engine **out, ik_err *err);

/* Creates the plugin instances, starts the admin server (unless
 * admin_listen_override is "off" or the config disables it) and the
 * pipelines, and runs until every source is drained or a signal stops it.
 * SIGINT and SIGTERM must already be blocked in every thread (main does it
 * before anything starts). Returns an ik_exit code; after IK_EXIT_FORCED or
 * IK_EXIT_STUCK the engine must not be freed (threads may still be inside
 * plugin calls). */
int ik_engine_run(ik_engine *e, const char *admin_listen_override);

void ik_engine_free(ik_engine *e);

/* One line per pipeline: "pipeline 'p': file -> passthrough -> stdout". */
void ik_engine_describe(const ik_engine *e, void (*line)(void *arg, const char *text), void *arg);

#endif
