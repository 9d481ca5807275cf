/*
 * timer.h: periodic timers for plugins, run on one engine thread.
 *
 * Callbacks run one at a time on the timer thread and must be quick (queue
 * work elsewhere). ik_timer_cancel() waits for a running callback to return,
 * so after it the callback's argument may be freed; never call it from inside
 * a timer callback of the same timer.
 */
#ifndef IK_TIMER_H
#define IK_TIMER_H

#include <stdint.h>

#include <intake/plugin.h>

typedef struct ik_timers ik_timers;

/* Starts the timer thread. NULL on failure. */
ik_timers *ik_timers_new(void);
/* Cancels every timer and joins the thread. Accepts NULL. */
void ik_timers_free(ik_timers *t);

/* First call after interval_ms, then every interval_ms (>= 1). NULL on
 * allocation failure. The handle is owned by the timers until cancelled. */
ik_timer *ik_timer_add(ik_timers *t, uint64_t interval_ms, void (*cb)(void *arg), void *arg);
void ik_timer_cancel(ik_timer *timer);

/* Monotonic clock in milliseconds. */
uint64_t ik_now_ms(void);

#endif
