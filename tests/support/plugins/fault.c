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

const ik_option fault_options[] = {
    {"mode", IK_OPT_STRING, "ok", 0,
     "ok | transient | permanent | slow | crash | release: what to do with matching records."},
    {"match", IK_OPT_STRING, "", 0,
     "Substring of the record id selecting the records to fault; empty: every record."},
    {"fail_times", IK_OPT_INT, "2", 0,
     "transient: fail a matching record with IK_RETRY on this many attempts, then OK."},
    {"delay", IK_OPT_DURATION, "0", 0, "slow: sleep this long per call."},
    {"cost_field", IK_OPT_STRING, NULL, 0,
     "Payload field giving the record's cost (integer, or string length); unset: 1."},
    {"log_batches", IK_OPT_STRING, NULL, 0,
     "File to append one line per call: <n> <id1>,<id2>,..."},
    {0},
};

static const char *const mode_names[] = {"ok",   "transient", "permanent",
                                         "slow", "crash",     "release"};

void fault_destroy(void *state)
{
    fault_core *fc = state;
    if (!fc)
        return;
    if (fc->log_fd >= 0)
        close(fc->log_fd);
    free(fc);
}

int fault_create(const ik_host *host, ik_instance *self, const char *kind, void **state)
{
    fault_core *fc = calloc(1, sizeof *fc);
    if (!fc)
        return IK_E_NOMEM;
    fc->host = host;
    fc->self = self;
    fc->kind = kind;
    fc->log_fd = -1;
    const char *mode = host->opt_string(self, "mode");
    size_t m;
    for (m = 0; m < sizeof mode_names / sizeof *mode_names; m++)
        if (mode && strcmp(mode, mode_names[m]) == 0)
            break;
    if (m == sizeof mode_names / sizeof *mode_names) {
        host->log(self, IK_LOG_ERROR,
                  "option 'mode' must be ok, transient, permanent, slow, crash or release; got "
                  "\"%s\"",
                  mode ? mode : "");
        fault_destroy(fc);
        return IK_E_CONFIG;
    }
    fc->mode = (enum fault_mode)m;
    fc->match = host->opt_string(self, "match");
    if (!fc->match)
        fc->match = "";
    fc->fail_times = host->opt_int(self, "fail_times");
    fc->delay_ms = host->opt_duration_ms(self, "delay");
    const char *cf = host->opt_string(self, "cost_field");
    fc->cost_field = cf && cf[0] ? cf : NULL;
    const char *lb = host->opt_string(self, "log_batches");
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

int fault_apply(void *state, ik_record *const *recs, size_t n, ik_result *results)
{
    fault_core *fc = state;
    const ik_host *host = fc->host;
    if (fc->log_fd >= 0)
        log_batch(fc, recs, n);
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
