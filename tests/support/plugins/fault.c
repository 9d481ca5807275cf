/* fault.c: the fault-injection core of test_fault and test_fault_sink (see fault.h). */
#include "fault.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const mode_names[] = {"ok",       "transient", "permanent",    "slow", "crash",
                                         "release",  "garbage",   "down",         "segv", "abort",
                                         "overflow", "hang",      "free_payload", NULL};

const ik_option fault_options[] = {
    {"mode", IK_OPT_CHOICE, "ok", 0, "What to do with matching records.",
     IK_OPT_AT(fault_config, mode), .choices = mode_names},
    {"match", IK_OPT_STRING, "", 0,
     "Substring of the record id selecting the records to fault; empty: every record.",
     IK_OPT_AT(fault_config, match)},
    {"fail_times", IK_OPT_INT, "2", 0,
     "transient: fail a matching record with IK_RETRY on this many attempts, then OK.",
     IK_OPT_AT(fault_config, fail_times)},
    {"delay", IK_OPT_DURATION, "0", 0, "slow: sleep this long per call.",
     IK_OPT_AT(fault_config, delay_ms)},
    {"cost_field", IK_OPT_STRING, NULL, 0,
     "Payload field giving the record's cost (integer, or string length); unset: 1.",
     IK_OPT_AT(fault_config, cost_field)},
    {"log_batches", IK_OPT_STRING, NULL, 0, "File to append one line per call: <n> <id1>,<id2>,...",
     IK_OPT_AT(fault_config, log_batches)},
    {"worker_log", IK_OPT_STRING, NULL, 0,
     "File to append \"init <worker>\" and \"exit <worker>\" lines to from worker_init and "
     "worker_exit.",
     IK_OPT_AT(fault_config, worker_log)},
    {"fail_worker", IK_OPT_INT, "-1", 0, "worker_init fails for this worker index (-1: none).",
     IK_OPT_AT(fault_config, fail_worker)},
    {"down_times", IK_OPT_INT, "1", 0, "down: answer IK_DOWN in this many calls, then OK.",
     IK_OPT_AT(fault_config, down_times)},
    {"probe_fails", IK_OPT_INT, "0", 0, "down: probe() says still down this many times.",
     IK_OPT_AT(fault_config, probe_fails)},
    {"down_for", IK_OPT_DURATION, "0", 0,
     "down: answer IK_DOWN (and fail probes) until this long after the first call; 0: off.",
     IK_OPT_AT(fault_config, down_for_ms)},
    {0},
};

void fault_destroy(void *state)
{
    fault_core *fc = state;
    if (!fc)
        return;
    if (fc->log_fd >= 0)
        close(fc->log_fd);
    free(fc);
}

int fault_create(const ik_host *host, ik_instance *self, const fault_config *cfg, const char *kind,
                 void **state)
{
    fault_core *fc = calloc(1, sizeof *fc);
    if (!fc)
        return IK_E_NOMEM;
    fc->host = host;
    fc->self = self;
    fc->kind = kind;
    fc->log_fd = -1;
    fc->mode = (enum fault_mode)cfg->mode;
    fc->match = cfg->match ? cfg->match : "";
    fc->fail_times = cfg->fail_times;
    fc->delay_ms = cfg->delay_ms;
    fc->cost_field = cfg->cost_field && cfg->cost_field[0] ? cfg->cost_field : NULL;
    fc->worker_log = cfg->worker_log && cfg->worker_log[0] ? cfg->worker_log : NULL;
    fc->fail_worker = cfg->fail_worker;
    fc->down_times = cfg->down_times;
    fc->probe_fails = cfg->probe_fails;
    fc->down_for_ms = cfg->down_for_ms;
    const char *lb = cfg->log_batches;
    if (lb && lb[0]) {
        fc->log_fd = open(lb, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fc->log_fd < 0) {
            host->log(self, IK_LOG_ERROR, "cannot open log_batches %s: %s", lb, strerror(errno));
            fault_destroy(fc);
            return IK_E_IO;
        }
    }
    *state = fc;
    return 0;
}

uint64_t fault_cost(void *state, const ik_record *rec)
{
    fault_core *fc = state;
    if (!fc->cost_field)
        return 1;
    json_object *v;
    if (!json_object_object_get_ex(fc->host->record_payload(rec), fc->cost_field, &v))
        return 1;
    if (json_object_is_type(v, json_type_int)) {
        int64_t c = json_object_get_int64(v);
        return c > 0 ? (uint64_t)c : 0;
    }
    if (json_object_is_type(v, json_type_string))
        return (uint64_t)json_object_get_string_len(v);
    return 1;
}

/* Appends "<n> <id1>,<id2>,..." with one write(2). */
static void log_batch(fault_core *fc, ik_record *const *recs, size_t n)
{
    size_t cap = 32 + n * 16, len = 0;
    char *line = malloc(cap);
    if (!line)
        return;
    len = (size_t)snprintf(line, cap, "%zu ", n);
    for (size_t i = 0; i < n; i++) {
        const char *id = fc->host->record_id(recs[i]);
        size_t k = strlen(id);
        if (len + k + 3 > cap) {
            cap = (len + k + 3) * 2;
            char *grown = realloc(line, cap);
            if (!grown) {
                free(line);
                return;
            }
            line = grown;
        }
        if (i)
            line[len++] = ',';
        memcpy(line + len, id, k);
        len += k;
    }
    line[len++] = '\n';
    ssize_t w = write(fc->log_fd, line, len);
    (void)w;
    free(line);
}

static void sleep_ms(uint64_t ms)
{
    /* Slices of 10ms, checking nothing else: a slow call really is slow. */
    while (ms > 0) {
        uint64_t slice = ms < 10 ? ms : 10;
        struct timespec ts = {0, (long)slice * 1000000L};
        nanosleep(&ts, NULL);
        ms -= slice;
    }
}

/* Appends one "<what> <index>" line to worker_log with one write(2). */
static void log_worker(const fault_core *fc, const char *what, unsigned index)
{
    if (!fc->worker_log)
        return;
    int fd = open(fc->worker_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    char line[64];
    int len = snprintf(line, sizeof line, "%s %u\n", what, index);
    if (write(fd, line, (size_t)len) < 0)
        fc->host->log(fc->self, IK_LOG_WARN, "cannot write worker_log: %s", strerror(errno));
    close(fd);
}

/* The worker state is the index itself, boxed, so worker_exit can name it. */
int fault_worker_init(void *state, unsigned index, void **worker_state)
{
    fault_core *fc = state;
    if (fc->fail_worker >= 0 && (int64_t)index == fc->fail_worker) {
        log_worker(fc, "fail", index);
        fc->host->log(fc->self, IK_LOG_ERROR, "worker_init of worker %u fails (fail_worker)",
                      index);
        return IK_E_IO;
    }
    unsigned *box = malloc(sizeof *box);
    if (!box)
        return IK_E_NOMEM;
    *box = index;
    *worker_state = box;
    log_worker(fc, "init", index);
    return 0;
}

void fault_worker_exit(void *state, void *worker_state)
{
    unsigned *box = worker_state;
    log_worker(state, "exit", box ? *box : 9999u);
    free(box);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Appends one text line to log_batches with one write(2). */
static void log_line(fault_core *fc, const char *fmt, const char *id, long long n)
{
    if (fc->log_fd < 0)
        return;
    char line[256];
    int len = snprintf(line, sizeof line, fmt, id, n);
    if (len > 0 && write(fc->log_fd, line, (size_t)len) < 0)
        fc->host->log(fc->self, IK_LOG_WARN, "cannot write log_batches: %s", strerror(errno));
}

/* down_for: 1 while the destination is still "down" by the clock. */
static int down_by_clock(fault_core *fc)
{
    if (fc->down_for_ms == 0)
        return 0;
    unsigned long long zero = 0, now = mono_ms();
    atomic_compare_exchange_strong(&fc->first_call_ms, &zero, now);
    return now - atomic_load(&fc->first_call_ms) < fc->down_for_ms;
}

int fault_probe(void *state, void *worker_state, char *reason, size_t len)
{
    (void)worker_state;
    fault_core *fc = state;
    atomic_store(&fc->probing, 1);
    long long k = atomic_fetch_add(&fc->probes, 1) + 1;
    if (k <= fc->probe_fails || down_by_clock(fc)) {
        log_line(fc, "probe fail%s %lld\n", "", k);
        snprintf(reason, len, "%s probe %lld: still down", fc->kind, k);
        return IK_E_IO;
    }
    log_line(fc, "probe ok%s %lld\n", "", k);
    atomic_store(&fc->probing, 0);
    return 0;
}

/* Mode down: the matching records of this call answer IK_DOWN while the
 * call is one of the first down_times (or down_for runs). */
static void apply_down(fault_core *fc, ik_record *const *recs, size_t n, ik_result *results)
{
    long long call = atomic_fetch_add(&fc->calls, 1) + 1;
    int down = fc->down_for_ms ? down_by_clock(fc) : call <= fc->down_times;
    int probing = atomic_load(&fc->probing);
    for (size_t i = 0; i < n; i++) {
        const char *id = fc->host->record_id(recs[i]);
        if (probing)
            log_line(fc, "overlap %s %lld\n", id, call);
        unsigned attempt = fc->host->record_attempts(recs[i]);
        if (attempt != 1)
            log_line(fc, "attempt %s %lld\n", id, attempt);
        if (down && (!fc->match[0] || strstr(id, fc->match)))
            ik_result_setf(&results[i], IK_DOWN, "%s mode=down: call %lld: destination down",
                           fc->kind, call);
    }
}

int fault_apply(void *state, void *worker_state, ik_record *const *recs, size_t n,
                ik_result *results)
{
    (void)worker_state;
    fault_core *fc = state;
    const ik_host *host = fc->host;
    if (fc->log_fd >= 0)
        log_batch(fc, recs, n);
    if (fc->mode == FAULT_DOWN) {
        apply_down(fc, recs, n, results);
        return 0;
    }
    if (fc->mode == FAULT_SLOW)
        sleep_ms(fc->delay_ms);
    for (size_t i = 0; i < n; i++) {
        const char *id = host->record_id(recs[i]);
        if (fc->match[0] && !strstr(id, fc->match))
            continue;
        unsigned attempt = host->record_attempts(recs[i]);
        switch (fc->mode) {
        case FAULT_TRANSIENT:
            if ((int64_t)attempt <= fc->fail_times) {
                results[i].status = IK_RETRY;
                snprintf(results[i].reason, sizeof results[i].reason,
                         "%s mode=transient: attempt %u of %lld failing", fc->kind, attempt,
                         (long long)fc->fail_times);
            }
            break;
        case FAULT_PERMANENT:
            results[i].status = IK_FAIL;
            snprintf(results[i].reason, sizeof results[i].reason,
                     "%s mode=permanent: rejected on attempt %u", fc->kind, attempt);
            break;
        case FAULT_CRASH:
            host->log(fc->self, IK_LOG_WARN, "%s mode=crash: killing the process at record %s",
                      fc->kind, id);
            raise(SIGKILL);
            break;
        case FAULT_GARBAGE:
            results[i].status = (ik_status)7;
            memset(results[i].reason, 'x', sizeof results[i].reason); /* no NUL */
            break;
        case FAULT_SEGV:
        case FAULT_ABORT:
        case FAULT_OVERFLOW:
        case FAULT_HANG:
        case FAULT_FREE_PAYLOAD:
            fault_fatal(fc, recs[i]);
            break;
        case FAULT_RELEASE:
            results[i].status = IK_RELEASE;
            snprintf(results[i].reason, sizeof results[i].reason,
                     "%s mode=release: released on attempt %u", fc->kind, attempt);
            break;
        default:
            break;
        }
    }
    return 0;
}
