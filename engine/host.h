/*
 * host.h: the host function table (host.c), the SDK's ik_host that every
 * plugin gets in create(), and the calling thread's stage that
 * record_attempts() reads.
 */
#ifndef IK_HOST_H
#define IK_HOST_H

#include <intake/plugin.h>

struct ik_stage;

/* The host function table handed to every plugin; static storage. */
const ik_host *ik_host_table(void);

/* The stage the calling worker thread is running (NULL outside workers);
 * record_attempts() reads the attempt count of that stage. Thread-local:
 * each worker sets its own once at start. */
struct ik_stage *ik_current_stage(void);
void ik_set_current_stage(struct ik_stage *stage);

#endif
