/*
 * fault_fatal.c: the fault modes that a crash-safe engine must survive or
 * report (see fault.h): a write to a page without access, abort(), a stack overflow, a call that
 * never returns, and freeing a borrowed payload.
 */
#include <limits.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "fault.h"

/* Recurses with a 4 KiB frame until the thread's stack runs out; the frame
 * is volatile and used after the call, so it is neither optimised away nor
 * a tail call. */
static int overflow(volatile char *prev, unsigned long depth)
{
    volatile char frame[4096];
    frame[0] = (char)depth;
    frame[sizeof frame - 1] = prev ? prev[0] : 0;
    if (depth == ULONG_MAX)
        return frame[0];
    return overflow(frame, depth + 1) + frame[sizeof frame - 1];
}

void fault_fatal(fault_core *fc, ik_record *rec)
{
    const ik_host *host = fc->host;
    const char *id = host->record_id(rec);
    static const char *const names[] = {[FAULT_SEGV] = "segv",
                                        [FAULT_ABORT] = "abort",
                                        [FAULT_OVERFLOW] = "overflow",
                                        [FAULT_HANG] = "hang",
                                        [FAULT_FREE_PAYLOAD] = "free_payload"};
    host->log(fc->self, IK_LOG_WARN, "%s mode=%s at record %s", fc->kind, names[fc->mode], id);
    if (fc->mode == FAULT_SEGV) {
        /* A write to a page without access: a real SIGSEGV (a NULL write would
         * be caught by UBSan first, or turned into a trap by the compiler). */
        volatile int *where = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (where != MAP_FAILED)
            *where = 1;
    } else if (fc->mode == FAULT_ABORT) {
        abort();
    } else if (fc->mode == FAULT_OVERFLOW) {
        overflow(NULL, 0);
    } else if (fc->mode == FAULT_HANG) {
        for (;;) {
            struct timespec ts = {1, 0};
            nanosleep(&ts, NULL);
        }
    } else if (fc->mode == FAULT_FREE_PAYLOAD) {
        json_object *payload = host->record_payload(rec);
        json_object_put(payload); /* the bug: the record's reference, not ours */
        (void)json_object_get_type(payload);
    }
}
