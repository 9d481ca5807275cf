/*
 * fault.h: the fault-injection core shared by the test-only `test_fault`
 * processor and `test_fault_sink` sink. Modes: ok, transient (IK_RETRY for
 * the first fail_times attempts of a matching record, then OK), permanent
 * (IK_FAIL), slow (sleeps `delay` per call), crash (raise(SIGKILL) at the
 * first matching record), release (IK_RELEASE), garbage (status 7, outside
 * ik_status, with a reason that fills all IK_REASON_MAX bytes and has no
 * NUL: the engine must read it with a bound), down (IK_DOWN for the
 * matching records of the first down_times calls, or of every call until
 * down_for has passed since the first; test_fault's probe() fails the first
 * probe_fails probes and, with down_for, until it has passed; test_fault_sink
 * has no probe(), so its next call is the probe). In mode down, log_batches
 * also gets a line "probe fail|ok", "overlap <id>" for a call that started
 * while a probe spell ran (the engine must not call a paused stage), and
 * "attempt <id> <n>" for a record seen with an attempt count other than 1.
 * Per-worker state (SDK 2.0): worker_init/worker_exit append "init <i>" /
 * "exit <i>" to `worker_log`; worker_init fails for worker `fail_worker`.
 * Crash safety (fault_fatal.c): at the first matching record, segv writes
 * to a page mapped without access, abort calls abort(), overflow recurses until the
 * thread's stack overflows, hang never returns; free_payload drops the
 * record's reference to its payload (a payload it only borrowed) and reads
 * it again, then answers OK.
 */
#ifndef INTAKE_TEST_FAULT_H
#define INTAKE_TEST_FAULT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <intake/plugin.h>

enum fault_mode {
    FAULT_OK,
    FAULT_TRANSIENT,
    FAULT_PERMANENT,
    FAULT_SLOW,
    FAULT_CRASH,
    FAULT_RELEASE,
    FAULT_GARBAGE,
    FAULT_DOWN,
    FAULT_SEGV,
    FAULT_ABORT,
    FAULT_OVERFLOW,
    FAULT_HANG,
    FAULT_FREE_PAYLOAD
};

/* The options, bound by the engine (plugin.h). */
typedef struct fault_config {
    int mode; /* enum fault_mode */
    const char *match;
    int64_t fail_times;
    uint64_t delay_ms;
    const char *cost_field;
    const char *log_batches;
    const char *worker_log;
    int64_t fail_worker;
    int64_t down_times;
    int64_t probe_fails;
    uint64_t down_for_ms;
} fault_config;

typedef struct fault_core {
    const ik_host *host;
    ik_instance *self;
    const char *kind; /* "test_fault" or "test_fault_sink", for reasons */
    enum fault_mode mode;
    const char *match; /* engine-owned; "" matches every record */
    int64_t fail_times;
    uint64_t delay_ms;
    const char *cost_field; /* engine-owned or NULL */
    int log_fd;             /* log_batches, or -1 */
    const char *worker_log; /* engine-owned or NULL */
    int64_t fail_worker;
    int64_t down_times, probe_fails;
    uint64_t down_for_ms;
    /* mode down, shared by the workers: */
    atomic_llong calls, probes;
    atomic_int probing;          /* from the first failing probe to a successful one */
    atomic_ullong first_call_ms; /* monotonic; 0 until the first call */
} fault_core;

/* The option table both plugins use. */
extern const ik_option fault_options[];

/* Reads the options into a new core. Returns 0 or IK_E_* (logged). */
int fault_create(const ik_host *host, ik_instance *self, const fault_config *cfg, const char *kind,
                 void **state);
void fault_destroy(void *state);
uint64_t fault_cost(void *state, const ik_record *rec);
/* process() and write(): applies the mode to each record. */
int fault_apply(void *state, void *worker_state, ik_record *const *recs, size_t n,
                ik_result *results);
/* worker_init/worker_exit: logged to worker_log (see above). */
int fault_worker_init(void *state, unsigned index, void **worker_state);
void fault_worker_exit(void *state, void *worker_state);
/* test_fault's probe(): see mode down above. */
int fault_probe(void *state, void *worker_state, char *reason, size_t len);
/* Modes segv, abort, overflow, hang, free_payload for a matching record
 * (fault_fatal.c); only free_payload returns. */
void fault_fatal(fault_core *fc, ik_record *rec);

#endif
