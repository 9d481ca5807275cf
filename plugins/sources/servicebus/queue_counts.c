/*
 * queue_counts.c: the `status` command's queue counts (see queue_counts.h).
 * The first status call starts a thread that waits on a condition variable
 * (under the source's mutex) for a request, does the GET without the lock,
 * and stores the result under it; status returns at once with whatever
 * the last GET gave, its age, and whether a newer one is on its way, as
 * the peek does. destroy() raises `stop`, which also makes libcurl give up
 * a GET in progress, and joins the thread.
 */
#include "queue_counts.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "servicebus/runtime.h"

struct sb_queue_counts {
    int off;        /* counts are off: nothing to report, no thread */
    char *base_url; /* management endpoint, without the queue */
    int started;    /* the thread runs (join it) */
    pthread_t thread;
    pthread_cond_t cv; /* with st->mu: a request or stop */
    atomic_int stop;
    /* st->mu */
    int want, busy;
    int have; /* counts hold the last GET's answer */
    ik_sb_counts counts;
    int64_t as_of_ms;
    char error[600]; /* the last GET failed: why (no secrets) */
};

/* 1 when the option turns counts off. */
static int option_off(const char *me)
{
    return me && (me[0] == '\0' || strcmp(me, "none") == 0);
}

int sb_queue_counts_check(const sb_config *cfg, char *err, size_t errlen)
{
    const char *me = cfg->management_endpoint;
    if (!me || option_off(me) || strncmp(me, "http://", 7) == 0 || strncmp(me, "https://", 8) == 0)
        return 0;
    snprintf(err, errlen,
             "management_endpoint '%.200s' must be an http:// or https:// URL, or \"none\"", me);
    return IK_E_CONFIG;
}

/* The thread: one GET per request until stop. */
static void *counts_thread(void *arg)
{
    sb_source *st = arg;
    sb_queue_counts *qc = st->counts;
    const ik_sb_connstr *cs = &st->ep.cs;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        while (!qc->want && !atomic_load(&qc->stop))
            pthread_cond_wait(&qc->cv, &st->mu);
        if (atomic_load(&qc->stop))
            break;
        qc->want = 0;
        qc->busy = 1;
        pthread_mutex_unlock(&st->mu);
        ik_sb_counts c;
        char err[sizeof qc->error];
        int rc = ik_sb_runtime_counts_cancellable(
            qc->base_url, st->ep.entity, cs->key_name, cs->key ? cs->key : cs->sas,
            (long)st->cfg->op_timeout, st->cfg->ca_file, st->cfg->tls_verify, &qc->stop, &c, err,
            sizeof err);
        pthread_mutex_lock(&st->mu);
        qc->busy = 0;
        qc->have = rc == 0;
        qc->as_of_ms = sb_unix_ms();
        if (rc == 0) {
            qc->counts = c;
            qc->error[0] = '\0';
        } else {
            snprintf(qc->error, sizeof qc->error, "%s", err[0] ? err : "out of memory");
        }
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* Makes st->counts on the first call (st->mu held): off, or with the
 * thread started. NULL when out of memory. */
static sb_queue_counts *lazy_start(sb_source *st)
{
    if (st->counts)
        return st->counts;
    sb_queue_counts *qc = calloc(1, sizeof *qc);
    if (!qc)
        return NULL;
    const char *me = st->cfg->management_endpoint;
    qc->off = st->cfg->broker != IK_SB_BROKER_SERVICEBUS || option_off(me);
    if (!qc->off) {
        int n = me ? asprintf(&qc->base_url, "%s", me)
                   : asprintf(&qc->base_url, "https://%s", st->ep.cs.host);
        if (n < 0) {
            free(qc);
            return NULL;
        }
        pthread_cond_init(&qc->cv, NULL);
        st->counts = qc; /* the thread reads it once it gets st->mu */
        qc->started = pthread_create(&qc->thread, NULL, counts_thread, st) == 0;
        if (!qc->started)
            snprintf(qc->error, sizeof qc->error, "cannot start the thread that fetches counts");
    }
    st->counts = qc;
    return qc;
}

/* The last counts as JSON (st->mu held). */
static json_object *counts_json(const sb_queue_counts *qc, int refreshing)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    if (!qc->have) {
        json_object_object_add(o, "state", json_object_new_string("pending"));
    } else {
        const ik_sb_counts *c = &qc->counts;
        json_object_object_add(o, "active", json_object_new_int64(c->active));
        json_object_object_add(o, "dead_letter", json_object_new_int64(c->dead_letter));
        json_object_object_add(o, "scheduled", json_object_new_int64(c->scheduled));
        json_object_object_add(o, "transfer", json_object_new_int64(c->transfer));
        json_object_object_add(o, "transfer_dead_letter",
                               json_object_new_int64(c->transfer_dead_letter));
        json_object_object_add(o, "total", json_object_new_int64(c->total));
        json_object_object_add(o, "size_bytes", json_object_new_int64(c->size_bytes));
        json_object_object_add(o, "as_of_ms", json_object_new_int64(qc->as_of_ms));
        json_object_object_add(o, "age_ms", json_object_new_int64(sb_unix_ms() - qc->as_of_ms));
    }
    json_object_object_add(o, "refreshing", json_object_new_boolean(refreshing));
    return o;
}

void sb_queue_counts_report(sb_source *st, json_object *o)
{
    pthread_mutex_lock(&st->mu);
    sb_queue_counts *qc = lazy_start(st);
    if (!qc) {
        pthread_mutex_unlock(&st->mu);
        json_object_object_add(o, "counts_error", json_object_new_string("out of memory"));
        return;
    }
    if (qc->off) {
        pthread_mutex_unlock(&st->mu);
        return;
    }
    if (qc->started && !qc->busy) {
        qc->want = 1;
        pthread_cond_signal(&qc->cv);
    }
    int refreshing = qc->started;
    if (qc->error[0] && !qc->have) {
        json_object_object_add(o, "counts_error", json_object_new_string(qc->error));
        json_object_object_add(o, "counts_refreshing", json_object_new_boolean(refreshing));
    } else {
        json_object_object_add(o, "counts", counts_json(qc, refreshing));
    }
    pthread_mutex_unlock(&st->mu);
}

void sb_queue_counts_free(sb_source *st)
{
    sb_queue_counts *qc = st->counts;
    if (!qc)
        return;
    if (qc->started) {
        pthread_mutex_lock(&st->mu);
        atomic_store(&qc->stop, 1);
        pthread_cond_signal(&qc->cv);
        pthread_mutex_unlock(&st->mu);
        pthread_join(qc->thread, NULL);
    }
    if (!qc->off)
        pthread_cond_destroy(&qc->cv);
    free(qc->base_url);
    free(qc);
    st->counts = NULL;
}
