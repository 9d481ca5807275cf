/*
 * host.c: the host function table (ik_host) that plugins call. Each function
 * is a thin, checked adapter from the SDK's contract onto engine modules;
 * nothing here keeps state of its own beyond the calling thread's stage.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "host.h"
#include "instance.h"
#include "json_write.h"
#include "log.h"
#include "metrics.h"
#include "options.h"
#include "record.h"
#include "state.h"
#include "timer.h"

static _Thread_local struct ik_stage *current_stage;

struct ik_stage *ik_current_stage(void)
{
    return current_stage;
}

void ik_set_current_stage(struct ik_stage *stage)
{
    current_stage = stage;
}

static void host_log(ik_instance *self, ik_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ik_vlogf(level, ik_instance_pipeline_name(self), self->spec->name, fmt, ap);
    va_end(ap);
}

static int host_opt_is_set(ik_instance *self, const char *name)
{
    return ik_optvals_is_set(self->opts, name);
}

static ik_record *host_record_new(ik_instance *self, const char *id, json_object *payload)
{
    ik_record *rec = ik_record_new(id, payload);
    if (rec)
        rec->source = self;
    return rec;
}

static void host_record_free(ik_record *rec)
{
    ik_record_free(rec);
}

static const char *host_record_id(const ik_record *rec)
{
    return rec->id;
}

static json_object *host_record_payload(const ik_record *rec)
{
    return rec->payload;
}

static void host_record_set_payload(ik_record *rec, json_object *payload)
{
    if (rec->payload != payload)
        json_object_put(rec->payload);
    rec->payload = payload;
}

static const char *host_record_meta(const ik_record *rec, const char *key)
{
    return ik_record_meta(rec, key);
}

static int host_record_set_meta(ik_record *rec, const char *key, const char *value)
{
    return ik_record_set_meta(rec, key, value);
}

static int host_record_priority(const ik_record *rec)
{
    return rec->priority;
}

static void host_record_set_priority(ik_record *rec, int priority)
{
    rec->priority = priority;
}

/* The attempts of the stage the calling worker runs (1 on the first call). */
static unsigned host_record_attempts(const ik_record *rec)
{
    return ik_stage_record_attempts(current_stage, rec);
}

static void *host_record_handle(const ik_record *rec)
{
    return rec->handle;
}

static void host_record_set_handle(ik_record *rec, void *handle)
{
    rec->handle = handle;
}

static int host_emit(ik_instance *self, ik_record *rec)
{
    return ik_pipeline_emit(self, rec, 1);
}

static int host_try_emit(ik_instance *self, ik_record *rec)
{
    return ik_pipeline_emit(self, rec, 0);
}

static int host_settle(ik_instance *self, ik_record *rec, ik_outcome outcome, const char *reason)
{
    if (outcome != IK_DEAD_LETTERED) {
        ik_logf(IK_LOG_ERROR, ik_instance_pipeline_name(self), self->spec->name,
                "settle() accepts only IK_DEAD_LETTERED for records a source did not emit; "
                "dead-lettering record %s",
                rec ? rec->id : "(null)");
    }
    return ik_pipeline_reject(self, rec, reason);
}

static int host_stopping(ik_instance *self)
{
    return ik_pipeline_stopping(self);
}

static int host_wait_ms(ik_instance *self, uint64_t ms)
{
    return ik_pipeline_wait_ms(self, ms);
}

static void host_progress(ik_instance *self)
{
    ik_pipeline_progress(self);
}

static void host_settle_failed(ik_instance *self, ik_record *rec, const char *reason)
{
    ik_pipeline_settle_failed(self, rec, reason);
}

static size_t host_max_record_size(ik_instance *self)
{
    return ik_pipeline_max_record_size(self);
}

static ik_timer *host_timer_add(ik_instance *self, uint64_t interval_ms, void (*cb)(void *arg),
                                void *arg)
{
    return ik_timer_add(ik_pipeline_timers(self), interval_ms, cb, arg);
}

static void host_timer_cancel(ik_timer *timer)
{
    ik_timer_cancel(timer);
}

/* intake_plugin_<plugin>_<name>{pipeline,instance}; NULL for a bad name. */
static ik_metric *plugin_metric(ik_instance *self, ik_metric_kind kind, const char *name,
                                const char *help, const double *bounds, size_t nbounds)
{
    for (const char *c = name; c && *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
            name = NULL;
    if (!name || !*name) {
        ik_logf(IK_LOG_ERROR, ik_instance_pipeline_name(self), self->spec->name,
                "metric names are [a-z0-9_]+; metric not registered");
        return NULL;
    }
    char full[256];
    snprintf(full, sizeof full, "intake_plugin_%s_%s", self->plugin->desc.name, name);
    const char *labels[] = {"pipeline", ik_instance_pipeline_name(self), "instance",
                            self->spec->name, NULL};
    ik_metrics *m = ik_pipeline_metrics(self);
    switch (kind) {
    case IK_METRIC_COUNTER:
        return ik_metrics_counter(m, full, help, labels);
    case IK_METRIC_GAUGE:
        return ik_metrics_gauge(m, full, help, labels);
    case IK_METRIC_HISTOGRAM:
        return ik_metrics_histogram(m, full, help, labels, bounds, nbounds);
    }
    return NULL;
}

static ik_metric *host_counter(ik_instance *self, const char *name, const char *help)
{
    return plugin_metric(self, IK_METRIC_COUNTER, name, help, NULL, 0);
}

static ik_metric *host_gauge(ik_instance *self, const char *name, const char *help)
{
    return plugin_metric(self, IK_METRIC_GAUGE, name, help, NULL, 0);
}

static ik_metric *host_histogram(ik_instance *self, const char *name, const char *help,
                                 const double *bounds, size_t nbounds)
{
    return plugin_metric(self, IK_METRIC_HISTOGRAM, name, help, bounds, nbounds);
}

static const char *host_instance_name(ik_instance *self)
{
    return self->spec->name;
}

static const char *host_pipeline_name(ik_instance *self)
{
    return ik_instance_pipeline_name(self);
}

/* ------------------------------------------------ state store (2.1) */

/* The instance's namespace "<pipeline>/<instance>" into buf (a config name
 * is short; an overlong one is cut, which still names one instance). */
static const char *state_ns(ik_instance *self, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", ik_instance_pipeline_name(self), self->spec->name);
    return buf;
}

static int host_state_get(ik_instance *self, ik_state_txn *tx, const char *key, ik_buf *value,
                          uint64_t *version)
{
    char ns[IK_STATE_KEY_MAX];
    return ik_state_get(ik_pipeline_state(self), tx, state_ns(self, ns, sizeof ns), key, value,
                        version);
}

static int host_state_put(ik_instance *self, ik_state_txn *tx, const char *key, const void *value,
                          size_t len, uint64_t ttl_ms, uint64_t *version)
{
    char ns[IK_STATE_KEY_MAX];
    return ik_state_write(ik_pipeline_state(self), tx, state_ns(self, ns, sizeof ns), key,
                          IK_STATE_PUT, 0, value, len, ttl_ms, version);
}

static int host_state_cas(ik_instance *self, ik_state_txn *tx, const char *key, uint64_t expected,
                          const void *value, size_t len, uint64_t ttl_ms, uint64_t *version)
{
    char ns[IK_STATE_KEY_MAX];
    return ik_state_write(ik_pipeline_state(self), tx, state_ns(self, ns, sizeof ns), key,
                          IK_STATE_CAS, expected, value, len, ttl_ms, version);
}

static int host_state_delete(ik_instance *self, ik_state_txn *tx, const char *key,
                             uint64_t expected)
{
    char ns[IK_STATE_KEY_MAX];
    return ik_state_delete(ik_pipeline_state(self), tx, state_ns(self, ns, sizeof ns), key,
                           expected);
}

static int host_ledger_append(ik_instance *self, ik_state_txn *tx, const char *name,
                              const void *entry, size_t len, uint64_t *seq)
{
    char ns[IK_STATE_KEY_MAX];
    return ik_state_append(ik_pipeline_state(self), tx, state_ns(self, ns, sizeof ns), name, entry,
                           len, seq);
}

static int host_ledger_read(ik_instance *self, ik_state_txn *tx, const char *name, uint64_t *cursor,
                            size_t max, ik_state_ledger_fn fn, void *arg, size_t *nread)
{
    char ns[IK_STATE_KEY_MAX];
    return ik_state_read(ik_pipeline_state(self), tx, state_ns(self, ns, sizeof ns), name, cursor,
                         max, fn, arg, nread);
}

static int host_ledger_trim(ik_instance *self, ik_state_txn *tx, const char *name, uint64_t upto)
{
    char ns[IK_STATE_KEY_MAX];
    return ik_state_trim(ik_pipeline_state(self), tx, state_ns(self, ns, sizeof ns), name, upto);
}

static int host_state_txn(ik_instance *self, ik_state_txn_fn fn, void *arg)
{
    char ns[IK_STATE_KEY_MAX];
    return ik_state_txn_run(ik_pipeline_state(self), state_ns(self, ns, sizeof ns), fn, arg);
}

static const char *host_state_error(ik_instance *self)
{
    (void)self;
    return ik_state_last_error();
}

/* ------------------------------------------- control commands (2.1) */

static int host_command_register(ik_instance *self, const char *name, const char *help,
                                 ik_command_fn fn, void *arg)
{
    return ik_instance_command_register(self, name, help, fn, arg);
}

static const ik_host host_table = {
    .struct_size = sizeof(ik_host),
    .abi_major = IK_ABI_MAJOR,
    .abi_minor = IK_ABI_MINOR,
    .log = host_log,
    .strerror = ik_strerror,
    .opt_is_set = host_opt_is_set,
    .record_new = host_record_new,
    .record_free = host_record_free,
    .record_id = host_record_id,
    .record_payload = host_record_payload,
    .record_set_payload = host_record_set_payload,
    .record_meta = host_record_meta,
    .record_set_meta = host_record_set_meta,
    .record_priority = host_record_priority,
    .record_set_priority = host_record_set_priority,
    .record_attempts = host_record_attempts,
    .record_handle = host_record_handle,
    .record_set_handle = host_record_set_handle,
    .emit = host_emit,
    .try_emit = host_try_emit,
    .settle = host_settle,
    .stopping = host_stopping,
    .wait_ms = host_wait_ms,
    .max_record_size = host_max_record_size,
    .timer_add = host_timer_add,
    .timer_cancel = host_timer_cancel,
    .counter = host_counter,
    .gauge = host_gauge,
    .histogram = host_histogram,
    .metric_add = ik_metric_add,
    .metric_set = ik_metric_set,
    .metric_observe = ik_metric_observe,
    .instance_name = host_instance_name,
    .pipeline_name = host_pipeline_name,
    .progress = host_progress,
    .settle_failed = host_settle_failed,
    .json_write = ik_json_write,
    .json_write_string = ik_json_write_string,
    /* State store (2.1) */
    .state_get = host_state_get,
    .state_put = host_state_put,
    .state_cas = host_state_cas,
    .state_delete = host_state_delete,
    .ledger_append = host_ledger_append,
    .ledger_read = host_ledger_read,
    .ledger_trim = host_ledger_trim,
    .state_txn = host_state_txn,
    .state_error = host_state_error,
    /* Control commands (2.1) */
    .command_register = host_command_register,
};

const ik_host *ik_host_table(void)
{
    return &host_table;
}
