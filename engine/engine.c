/* engine.c: pipelines, admin server and the signal-driven shutdown (see engine.h). */
#include "engine.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "control.h"
#include "control_http.h"
#include "crash.h"
#include "loader.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "state.h"
#include "timer.h"

struct ik_engine {
    const ik_config *cfg;
    ik_loader *loader;
    ik_pipeline **pipelines;
    size_t npipelines;
    ik_metrics *metrics;
    ik_timers *timers;
    ik_admin *admin;
    ik_state *state;     /* the state store, opened by start() */
    ik_control *control; /* every instance's control commands */
    uint64_t started_ms;
};

int ik_engine_new(const ik_config *cfg, ik_engine **out, ik_err *err)
{
    ik_engine *e = calloc(1, sizeof *e);
    if (!e)
        return ik_err_set(err, IK_E_NOMEM, "out of memory");
    e->cfg = cfg;
    e->loader = ik_loader_new(cfg->plugin_path, cfg->nplugin_path);
    e->pipelines = calloc(cfg->npipelines ? cfg->npipelines : 1, sizeof *e->pipelines);
    if (!e->loader || !e->pipelines) {
        ik_engine_free(e);
        return ik_err_set(err, IK_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < cfg->npipelines; i++) {
        int rc = ik_pipeline_new(&cfg->pipelines[i], e->loader, &e->pipelines[i], err);
        if (rc != 0) {
            ik_engine_free(e);
            return rc;
        }
        e->npipelines++;
    }
    *out = e;
    return 0;
}

void ik_engine_free(ik_engine *e)
{
    if (!e)
        return;
    ik_admin_stop(e->admin);
    ik_control_free(e->control);
    for (size_t i = 0; i < e->npipelines; i++)
        ik_pipeline_free(e->pipelines[i]);
    free(e->pipelines);
    ik_state_close(e->state); /* after the pipelines: their plugins use it until destroy() */
    ik_timers_free(e->timers);
    ik_metrics_free(e->metrics);
    ik_loader_free(e->loader); /* last: plugin code lives until here */
    free(e);
}

void ik_engine_describe(const ik_engine *e, void (*line)(void *arg, const char *text), void *arg)
{
    char buf[700];
    for (size_t i = 0; i < e->npipelines; i++) {
        snprintf(buf, sizeof buf, "pipeline '%s': %s", ik_pipeline_name(e->pipelines[i]),
                 ik_pipeline_describe(e->pipelines[i]));
        line(arg, buf);
    }
}

static json_object *engine_health(void *arg, int *healthy)
{
    ik_engine *e = arg;
    json_object *o = json_object_new_object();
    json_object *list = json_object_new_array();
    int ok = 1;
    for (size_t i = 0; i < e->npipelines; i++) {
        int pok = 1;
        json_object_array_add(list, ik_pipeline_health(e->pipelines[i], &pok));
        ok &= pok;
    }
    json_object_object_add(o, "status", json_object_new_string(ok ? "ok" : "unhealthy"));
    json_object_object_add(o, "version", json_object_new_string(INTAKE_VERSION));
    json_object_object_add(o, "uptime_seconds",
                           json_object_new_int64((int64_t)((ik_now_ms() - e->started_ms) / 1000)));
    json_object_object_add(o, "pipelines", list);
    *healthy = ok;
    return o;
}

static int all(ik_engine *e, int (*pred)(ik_pipeline *))
{
    for (size_t i = 0; i < e->npipelines; i++)
        if (!pred(e->pipelines[i]))
            return 0;
    return 1;
}

static void each(ik_engine *e, void (*fn)(ik_pipeline *))
{
    for (size_t i = 0; i < e->npipelines; i++)
        fn(e->pipelines[i]);
}

/* Waits up to ms for SIGINT/SIGTERM; returns the signal or 0. */
static int wait_signal(uint64_t ms)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    int sig = sigtimedwait(&set, NULL, &ts);
    return sig > 0 ? sig : 0;
}

/* One line per pipeline; "N not stored" appears only when a source could
 * not carry out some outcomes. Returns the records not stored, in all. */
static uint64_t summary(ik_engine *e)
{
    double secs = (double)(ik_now_ms() - e->started_ms) / 1000.0;
    uint64_t not_stored = 0;
    for (size_t i = 0; i < e->npipelines; i++) {
        ik_pipeline_stats s;
        ik_pipeline_stats_get(e->pipelines[i], &s);
        char extra[64] = "";
        if (s.settle_failed)
            snprintf(extra, sizeof extra, ", %llu not stored", (unsigned long long)s.settle_failed);
        ik_logf(s.settle_failed ? IK_LOG_ERROR : IK_LOG_INFO, NULL, NULL,
                "summary: pipeline '%s': %llu in, %llu delivered, %llu dead-lettered, %llu "
                "released, %llu retries, %llu in flight%s, %.2f s",
                ik_pipeline_name(e->pipelines[i]), (unsigned long long)s.in,
                (unsigned long long)s.delivered, (unsigned long long)s.dead_lettered,
                (unsigned long long)s.released, (unsigned long long)s.retries,
                (unsigned long long)s.inflight, extra, secs);
        not_stored += s.settle_failed;
    }
    return not_stored;
}

/* The control registry, then the admin server with it (unless off). 0, or
 * -1 with the error logged. */
static int start_admin(ik_engine *e, const char *admin_override)
{
    ik_err err = {0};
    const char *listen = admin_override ? admin_override : e->cfg->admin_listen;
    int enabled = admin_override ? strcmp(admin_override, "off") != 0 : e->cfg->admin_enabled;
    if (!enabled)
        return 0;
    if (!(e->control = ik_control_new())) {
        ik_logf(IK_LOG_ERROR, NULL, NULL, "admin server: out of memory");
        return -1;
    }
    for (size_t i = 0; i < e->npipelines; i++)
        if (ik_pipeline_control_add(e->pipelines[i], e->control) != 0) {
            ik_logf(IK_LOG_ERROR, NULL, NULL, "admin server: out of memory");
            return -1;
        }
    const char *token = getenv(IK_ADMIN_TOKEN_ENV);
    if (token && *token && ik_log_add_secret(token) != 0) { /* redacted should it ever show */
        ik_logf(IK_LOG_ERROR, NULL, NULL, "admin server: out of memory");
        return -1;
    }
    ik_admin_limits limits = {.request_timeout_ms = e->cfg->admin_request_timeout_ms};
    e->admin = ik_admin_start_control(listen, &limits, e->metrics, engine_health, e, e->control,
                                      token, &err);
    if (!e->admin) {
        ik_logf(IK_LOG_ERROR, NULL, NULL, "admin server: %s", err.msg);
        return -1;
    }
    ik_logf(IK_LOG_INFO, NULL, NULL,
            "admin server on http://%.*s:%u (/health, /metrics, /api/v1/control: %s)",
            (int)strcspn(listen, ":"), listen, (unsigned)ik_admin_port(e->admin),
            token && *token ? "token required" : "open on loopback, no token set");
    return 0;
}

static int start(ik_engine *e, const char *admin_override)
{
    ik_err err = {0};
    /* The run (and the summary's elapsed time) begins here, so that a start
     * that fails half-way still reports its own duration. */
    e->started_ms = ik_now_ms();
    e->metrics = ik_metrics_new();
    e->timers = ik_timers_new();
    if (!e->metrics || !e->timers) {
        ik_logf(IK_LOG_ERROR, NULL, NULL, "out of memory starting the engine");
        return IK_EXIT_START;
    }
    /* The state store: an existing file is checked now (a corrupt one stops
     * the start, named); a missing one is made by the first write. */
    ik_state_opts so = {.dir = e->cfg->state_dir,
                        .durability = e->cfg->state_durability ? IK_STATE_FULL : IK_STATE_NORMAL};
    if (ik_state_open(&so, &e->state, &err) != 0) {
        ik_logf(IK_LOG_ERROR, NULL, NULL, "%s", err.msg);
        return IK_EXIT_START;
    }
    for (size_t i = 0; i < e->npipelines; i++)
        ik_pipeline_set_state(e->pipelines[i], e->state);
    for (size_t i = 0; i < e->npipelines; i++) {
        if (ik_pipeline_create(e->pipelines[i], e->metrics, e->timers, &err) != 0) {
            ik_logf(IK_LOG_ERROR, NULL, NULL, "%s", err.msg);
            return IK_EXIT_START;
        }
    }
    if (start_admin(e, admin_override) != 0)
        return IK_EXIT_START;
    for (size_t i = 0; i < e->npipelines; i++) {
        if (ik_pipeline_start(e->pipelines[i], &err) != 0) {
            ik_logf(IK_LOG_ERROR, NULL, NULL, "%s", err.msg);
            return IK_EXIT_START;
        }
    }
    return IK_EXIT_OK;
}

static int source_failed(ik_engine *e)
{
    int failed = 0;
    for (size_t i = 0; i < e->npipelines; i++) {
        const char *why;
        if (ik_pipeline_source_failed(e->pipelines[i], &why)) {
            ik_logf(IK_LOG_ERROR, ik_pipeline_name(e->pipelines[i]), NULL, "%s", why);
            failed = 1;
        }
    }
    return failed;
}

static int forced_exit(ik_engine *e, int sig)
{
    ik_logf(IK_LOG_WARN, NULL, NULL,
            "second signal (%s): exiting now; releasing every record still in flight",
            strsignal(sig));
    /* The operator chose to stop the calls running now: not the records' fault. */
    each(e, ik_pipeline_journal_clear);
    each(e, ik_pipeline_abandon);
    summary(e);
    return IK_EXIT_FORCED;
}

/* After shutdown_timeout (and the release of queued records), plugin calls
 * still running get this long to return before the engine gives up on them. */
#define STUCK_GRACE_MS 2000

static void log_stuck(void *arg, const char *text, uint64_t running_ms)
{
    (void)arg;
    ik_logf(IK_LOG_ERROR, NULL, NULL, "stuck plugin call: %s; running for %.1f s", text,
            (double)running_ms / 1000.0);
}

/* Plugin calls did not return within shutdown_timeout + STUCK_GRACE_MS:
 * names them, releases every record (those inside the calls too) and gives
 * up on them. */
static int stuck_exit(ik_engine *e)
{
    ik_logf(IK_LOG_ERROR, NULL, NULL,
            "shutdown timeout (%llu ms) and %d ms of grace are over with plugin calls still "
            "running; releasing every record and exiting with code %d",
            (unsigned long long)e->cfg->shutdown_timeout_ms, STUCK_GRACE_MS, IK_EXIT_STUCK);
    ik_crash_each_running(log_stuck, NULL);
    each(e, ik_pipeline_abandon);
    for (size_t i = 0; i < e->npipelines; i++)
        ik_pipeline_close_source(e->pipelines[i], STUCK_GRACE_MS);
    summary(e);
    return IK_EXIT_STUCK;
}

/*
 * The run loop's phases: running until every source is drained or a signal
 * comes; then draining in-flight work until shutdown_timeout; then releasing
 * what is still queued and waiting for running plugin calls, for at most
 * STUCK_GRACE_MS (then stuck_exit); then joining. A signal during any
 * shutdown phase forces the exit.
 */
int ik_engine_run(ik_engine *e, const char *admin_listen_override)
{
    int rc = start(e, admin_listen_override);
    int stopping = 0, releasing = 0;
    uint64_t deadline = 0, next_note = 0, stuck_at = 0;
    if (rc != IK_EXIT_OK) {
        /* Threads of pipelines that did start must stop before freeing. */
        ik_control_set_stopping(e->control);
        each(e, ik_pipeline_stop_input);
        each(e, ik_pipeline_release_queued);
        stopping = releasing = 1;
    }
    while (!all(e, ik_pipeline_finished)) {
        int sig = wait_signal(50);
        if (sig && stopping)
            return forced_exit(e, sig);
        if (sig) {
            stopping = 1;
            deadline = ik_now_ms() + e->cfg->shutdown_timeout_ms;
            stuck_at = deadline + STUCK_GRACE_MS;
            ik_logf(IK_LOG_INFO, NULL, NULL,
                    "%s: stopping input, finishing in-flight work (up to %llu ms; send it again "
                    "to exit at once)",
                    strsignal(sig), (unsigned long long)e->cfg->shutdown_timeout_ms);
            ik_control_set_stopping(e->control); /* commands answer 503 from now on */
            each(e, ik_pipeline_stop_input);
        }
        if (stopping && !releasing && ik_now_ms() >= deadline) {
            releasing = 1;
            each(e, ik_pipeline_release_queued);
        }
        if (releasing && ik_now_ms() >= next_note) {
            uint64_t busy = 0;
            for (size_t i = 0; i < e->npipelines; i++)
                busy += ik_pipeline_busy(e->pipelines[i]);
            if (busy)
                ik_logf(IK_LOG_WARN, NULL, NULL,
                        "waiting for %llu record(s) inside plugin calls; send the signal again "
                        "to exit at once",
                        (unsigned long long)busy);
            next_note = ik_now_ms() + 5000;
        }
        if (stuck_at && ik_now_ms() >= stuck_at && !all(e, ik_pipeline_finished))
            return stuck_exit(e);
    }
    each(e, ik_pipeline_quit);
    while (!all(e, ik_pipeline_threads_done)) {
        int sig = wait_signal(20);
        if (sig)
            return forced_exit(e, sig);
    }
    uint64_t not_stored = summary(e);
    if (rc != IK_EXIT_OK)
        return rc;
    if (source_failed(e))
        return IK_EXIT_RUNTIME;
    if (not_stored) {
        ik_logf(IK_LOG_ERROR, NULL, NULL,
                "%llu record(s) not stored: a source could not carry out their outcome (see "
                "above); they stay in it for the next run. Exit code %d.",
                (unsigned long long)not_stored, IK_EXIT_NOT_STORED);
        return IK_EXIT_NOT_STORED;
    }
    return IK_EXIT_OK;
}
