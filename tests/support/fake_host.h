/*
 * fake_host.h: a fake ik_host for plugin unit tests. It needs nothing from
 * the engine (no intake_core): records are a small struct, emit() appends to
 * an array, host->settle() records the outcome and calls the plugin's
 * settle() like the engine does, options come from a name/value table given
 * by the test (falling back to the plugin's defaults), and log lines are
 * captured in a buffer.
 *
 * Threading: emit/settle/log/wait_ms are safe from a plugin's run() thread
 * while the test thread polls with fh_wait_emitted().
 */
#ifndef INTAKE_TEST_FAKE_HOST_H
#define INTAKE_TEST_FAKE_HOST_H

#include <pthread.h>
#include <stddef.h>

#include <intake/plugin.h>

typedef struct fh_meta {
    char *key;
    char *value;
    struct fh_meta *next;
} fh_meta;

/* The fake engine's record. */
struct ik_record {
    char *id;
    json_object *payload;
    fh_meta *meta;
    int priority;
    unsigned attempts;
    void *handle;
    int settled; /* the plugin was told its outcome */
};

/* One outcome told to the plugin's settle() (by fh_settle or host->settle). */
typedef struct fh_outcome {
    char *id;
    ik_outcome outcome;
    char *reason;
} fh_outcome;

typedef struct fh_metric {
    char name[64];
    double value;
    pthread_mutex_t mu; /* plugins update metrics from many threads */
} fh_metric;

typedef struct fake_host {
    ik_host host;
    const ik_plugin *plugin;
    void *state;             /* set by fh_create */
    void *config;            /* the plugin's config struct, bound by fh_create (owned) */
    const char *const *opts; /* name, value, name, value, ..., NULL */
    size_t max_record_size;
    long stop_after_emits; /* >= 0: emit() answers IK_E_STOPPING after this many */
    int stopping;
    int busy_every; /* try_emit: every Nth call answers IK_E_BUSY (0: never) */
    unsigned long try_calls;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    ik_record **emitted; /* owned */
    size_t nemitted, cap_emitted;
    ik_record **dead; /* records given to host->settle (owned) */
    size_t ndead, cap_dead;
    fh_outcome *outcomes; /* every outcome told to the plugin */
    size_t noutcomes, cap_outcomes;
    fh_metric metrics[16];
    size_t nmetrics;
    size_t nsettle_failed;          /* host->settle_failed() calls */
    char settle_failed_reason[512]; /* the last one's reason */
    char *log;
    size_t loglen, logcap;
} fake_host;

/* Sets up fh for plugin with the given options (name/value pairs, NULL-ended). */
void fh_init(fake_host *fh, const ik_plugin *plugin, const char *const *opts);
/* Binds the options into the plugin's config struct (config_size bytes) as
 * the engine does: the test's text or the table's default, parsed by the
 * engine's parsers; a value that does not parse, is out of range or not
 * among the choices is IK_E_CONFIG, logged. Then calls plugin->check (if
 * any) and plugin->create; returns the first failing code. */
int fh_create(fake_host *fh);
/* Like the engine at shutdown: tells the plugin IK_RELEASED for every emitted
 * record not settled yet, then calls plugin->destroy (if created) and frees
 * everything. */
void fh_free(fake_host *fh);
ik_instance *fh_self(fake_host *fh);

/* Tells the plugin the outcome of emitted record i (failure fields filled in
 * for IK_DEAD_LETTERED: stage "sink", attempts 3, stored as given). */
void fh_settle(fake_host *fh, size_t i, ik_outcome outcome, const char *reason, int stored);
void fh_settle_all(fake_host *fh, ik_outcome outcome);
/* Waits until at least n records were emitted; 0, or -1 after timeout_ms. */
int fh_wait_emitted(fake_host *fh, size_t n, int timeout_ms);
void fh_set_stopping(fake_host *fh);
/* Metadata of a record, NULL when unset. */
const char *fh_meta_get(const ik_record *rec, const char *key);
/* The captured log (NUL-terminated). */
const char *fh_log(fake_host *fh);
double fh_metric_value(fake_host *fh, const char *name);
/* A record made by the test (for sinks and processors); owned by the caller,
 * freed with fh_record_free. Takes the payload. */
ik_record *fh_record(const char *id, json_object *payload);
void fh_record_free(ik_record *rec);

#endif
