/*
 * fault.h: the fault-injection core shared by the test-only `test_fault`
 * processor and `test_fault_sink` sink. Modes: ok, transient (IK_RETRY for
 * the first fail_times attempts of a matching record, then OK), permanent
 * (IK_FAIL), slow (sleeps `delay` per call), crash (raise(SIGKILL) at the
 * first matching record), release (IK_RELEASE).
 */
#ifndef INTAKE_TEST_FAULT_H
#define INTAKE_TEST_FAULT_H

#include <stddef.h>
#include <stdint.h>

#include <intake/plugin.h>

enum fault_mode {
    FAULT_OK,
    FAULT_TRANSIENT,
    FAULT_PERMANENT,
    FAULT_SLOW,
    FAULT_CRASH,
    FAULT_RELEASE
};

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
} fault_core;

/* The option table both plugins use. */
extern const ik_option fault_options[];

/* Reads the options into a new core. Returns 0 or IK_E_* (logged). */
int fault_create(const ik_host *host, ik_instance *self, const char *kind, void **state);
void fault_destroy(void *state);
uint64_t fault_cost(void *state, const ik_record *rec);
/* process() and write(): applies the mode to each record. */
int fault_apply(void *state, ik_record *const *recs, size_t n, ik_result *results);

#endif
