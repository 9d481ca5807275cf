/* timer.c: the timer thread (see timer.h). A list is enough: plugins register a few timers. */
#include "timer.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct ik_timer {
    ik_timers *owner;
    uint64_t interval_ms, due_ms;
    void (*cb)(void *arg);
    void *arg;
    int cancelled;
    ik_timer *next;
};

struct ik_timers {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    ik_timer *list;
    ik_timer *running; /* callback in progress, run without the lock */
    int quit;
};

uint64_t ik_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void abs_deadline(uint64_t due_ms, struct timespec *ts)
{
    /* The condvar runs on CLOCK_MONOTONIC (set in ik_timers_new). */
    ts->tv_sec = (time_t)(due_ms / 1000u);
    ts->tv_nsec = (long)(due_ms % 1000u) * 1000000L;
}

static void *timer_main(void *arg)
{
    ik_timers *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->quit) {
        uint64_t now = ik_now_ms(), next = UINT64_MAX;
        ik_timer *due = NULL;
        for (ik_timer *tm = t->list; tm; tm = tm->next) {
            if (tm->due_ms <= now) {
                due = tm;
                break;
            }
            if (tm->due_ms < next)
                next = tm->due_ms;
        }
        if (due) {
            due->due_ms = now + due->interval_ms;
            t->running = due;
            pthread_mutex_unlock(&t->mu);
            due->cb(due->arg);
            pthread_mutex_lock(&t->mu);
            t->running = NULL;
            pthread_cond_broadcast(&t->cv);
            continue;
        }
        if (next == UINT64_MAX) {
            pthread_cond_wait(&t->cv, &t->mu);
        } else {
            struct timespec ts;
            abs_deadline(next, &ts);
            pthread_cond_timedwait(&t->cv, &t->mu, &ts);
        }
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

ik_timers *ik_timers_new(void)
{
    ik_timers *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&t->thread, NULL, timer_main, t) != 0) {
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return NULL;
    }
    return t;
}

void ik_timers_free(ik_timers *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->quit = 1;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    while (t->list) {
        ik_timer *next = t->list->next;
        free(t->list);
        t->list = next;
    }
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

ik_timer *ik_timer_add(ik_timers *t, uint64_t interval_ms, void (*cb)(void *arg), void *arg)
{
    if (!t || !cb)
        return NULL;
    ik_timer *tm = calloc(1, sizeof *tm);
    if (!tm)
        return NULL;
    tm->owner = t;
    tm->interval_ms = interval_ms ? interval_ms : 1;
    tm->cb = cb;
    tm->arg = arg;
    pthread_mutex_lock(&t->mu);
    tm->due_ms = ik_now_ms() + tm->interval_ms;
    tm->next = t->list;
    t->list = tm;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return tm;
}

void ik_timer_cancel(ik_timer *tm)
{
    if (!tm)
        return;
    ik_timers *t = tm->owner;
    pthread_mutex_lock(&t->mu);
    for (ik_timer **pp = &t->list; *pp; pp = &(*pp)->next)
        if (*pp == tm) {
            *pp = tm->next;
            break;
        }
    while (t->running == tm)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    free(tm);
}
