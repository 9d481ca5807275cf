/*
 * instance.h: one configured plugin instance (the `ik_instance` plugins see as
 * `self`), shared by the pipeline runtime and the host function table.
 */
#ifndef IK_INSTANCE_H
#define IK_INSTANCE_H

#include <intake/plugin.h>

#include "config.h"
#include "control.h"
#include "loader.h"
#include "options.h"
#include "record.h"

struct ik_pipeline;
struct ik_stage;
struct ik_worker_gate;

struct ik_instance {
    struct ik_pipeline *pipeline;
    const ik_stage_spec *spec;
    const ik_loaded_plugin *plugin; /* owned by the loader */
    ik_optvals *opts;               /* owned */
    void *state;                    /* the plugin's, from create() */
    int created;
    struct ik_stage *stage;      /* NULL for the source */
    struct ik_worker_gate *gate; /* workers' start-up reports (stage_calls.c), owned */
    /* Control commands (pipeline_control.c): registered while `registering`
     * (its create() runs), read-only afterwards. */
    ik_commands commands;
    int registering;
};

/* Runtime entry points behind the host table, implemented in
 * pipeline_source.c. Only host.c calls them. */
int ik_pipeline_emit(ik_instance *self, ik_record *rec, int block);
int ik_pipeline_reject(ik_instance *self, ik_record *rec, const char *reason);
int ik_pipeline_stopping(ik_instance *self);
int ik_pipeline_wait_ms(ik_instance *self, uint64_t ms);
size_t ik_pipeline_max_record_size(ik_instance *self);
void ik_pipeline_progress(ik_instance *self);
void ik_pipeline_settle_failed(ik_instance *self, ik_record *rec, const char *reason);
struct ik_metrics *ik_pipeline_metrics(ik_instance *self);
struct ik_timers *ik_pipeline_timers(ik_instance *self);
const char *ik_instance_pipeline_name(ik_instance *self);
/* The engine's state store (pipeline.c); NULL when none was opened. */
struct ik_state *ik_pipeline_state(ik_instance *self);
/* Attempts of rec at `stage` (the calling worker's), 0 outside a stage. */
unsigned ik_stage_record_attempts(const struct ik_stage *stage, const ik_record *rec);
/* host->command_register, in pipeline_control.c. */
int ik_instance_command_register(ik_instance *self, const char *name, const char *help,
                                 ik_command_fn fn, void *arg);

#endif
