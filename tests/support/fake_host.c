/* fake_host.c: the fake ik_host of the plugin unit tests (see fake_host.h). */
#include "fake_host.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_write.h"
#include "optlimits.h"
#include "options.h"

static fake_host *FH(ik_instance *self)
{
    return (fake_host *)self;
}

ik_instance *fh_self(fake_host *fh)
{
    return (ik_instance *)fh;
}

static void fh_log_fn(ik_instance *self, ik_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fh_log_fn(ik_instance *self, ik_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug", "trace"};
    fake_host *fh = FH(self);
    char line[2048];
    int n = snprintf(line, sizeof line, "%s: ", names[level <= IK_LOG_TRACE ? level : 4]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    if (getenv("FH_VERBOSE"))
        fprintf(stderr, "[fake_host] %s\n", line);
    pthread_mutex_lock(&fh->mu);
    if (fh->loglen + len + 2 > fh->logcap) {
        size_t cap = fh->logcap ? fh->logcap : 4096;
        while (cap < fh->loglen + len + 2)
            cap *= 2;
        char *grown = realloc(fh->log, cap);
        if (grown) {
            fh->log = grown;
            fh->logcap = cap;
        }
    }
    if (fh->loglen + len + 2 <= fh->logcap) {
        memcpy(fh->log + fh->loglen, line, len);
        fh->loglen += len;
        fh->log[fh->loglen++] = '\n';
        fh->log[fh->loglen] = '\0';
    }
    pthread_mutex_unlock(&fh->mu);
}

static const char *fh_strerror(int code)
{
    switch (code) {
    case 0:
        return "ok";
    case IK_E_NOMEM:
        return "out of memory";
    case IK_E_INVAL:
        return "invalid argument";
    case IK_E_IO:
        return "I/O error";
    case IK_E_BUSY:
        return "busy";
    case IK_E_STOPPING:
        return "stopping";
    default:
        return "error";
    }
}

/* The test's value for an option, else the table's default. */
static const char *opt_text(fake_host *fh, const char *name, ik_opt_type *type)
{
    const ik_option *o = fh->plugin->options;
    const ik_option *found = NULL;
    for (; o && o->name; o++)
        if (strcmp(o->name, name) == 0)
            found = o;
    if (!found) {
        fh_log_fn(fh_self(fh), IK_LOG_ERROR, "fake_host: option '%s' is not in the table", name);
        return NULL;
    }
    *type = found->type;
    for (const char *const *p = fh->opts; p && p[0]; p += 2)
        if (strcmp(p[0], name) == 0)
            return p[1];
    return found->default_value;
}

/* Like the engine before create(): a value outside the option's range is a
 * config error, logged, and create() is not called. The engine's own parser
 * and check (optlimits.h) judge it. */
static int fh_check_limits(fake_host *fh)
{
    for (const ik_option *o = fh->plugin->options; o && o->name; o++) {
        ik_opt_type type;
        ik_num num;
        char range[160];
        if (!ik_limit_has(o))
            continue;
        const char *v = opt_text(fh, o->name, &type);
        if (!v || ik_num_parse(type, v, &num) != 0)
            continue;
        if (ik_limit_check(o, type, &num, range, sizeof range) != 0) {
            fh_log_fn(fh_self(fh), IK_LOG_ERROR, "option '%s' must be %s (got %s)", o->name, range,
                      v);
            return IK_E_CONFIG;
        }
    }
    return 0;
}

/* Like the engine: writes each option's value (the test's, else the
 * default) into a zeroed config struct at its offset. */
static int fh_bind_config(fake_host *fh)
{
    size_t size = fh->plugin->config_size;
    if (size == 0) {
        if (!fh->plugin->options || !fh->plugin->options[0].name)
            return 0; /* no options: no config struct */
        fh_log_fn(fh_self(fh), IK_LOG_ERROR,
                  "fake_host: plugin '%s' has options but no config struct (config_size 0)",
                  fh->plugin->name);
        return IK_E_INVAL;
    }
    if (!(fh->config = calloc(1, size)))
        return IK_E_NOMEM;
    for (const ik_option *o = fh->plugin->options; o && o->name; o++) {
        ik_opt_type type;
        const char *v = opt_text(fh, o->name, &type);
        if (v && ik_option_store_text(o, v, fh->config, size) != 0) {
            fh_log_fn(fh_self(fh), IK_LOG_ERROR, "option '%s': \"%s\" is not a valid %s", o->name,
                      v, ik_opt_type_name(o->type));
            return IK_E_CONFIG;
        }
    }
    return 0;
}

static int fh_opt_is_set(ik_instance *self, const char *name)
{
    for (const char *const *p = FH(self)->opts; p && p[0]; p += 2)
        if (strcmp(p[0], name) == 0)
            return 1;
    return 0;
}

ik_record *fh_record(const char *id, json_object *payload)
{
    ik_record *r = calloc(1, sizeof *r);
    if (!r) {
        json_object_put(payload);
        return NULL;
    }
    r->id = strdup(id ? id : "");
    r->payload = payload;
    r->attempts = 1;
    return r;
}

void fh_record_free(ik_record *rec)
{
    if (!rec)
        return;
    fh_meta *m = rec->meta;
    while (m) {
        fh_meta *next = m->next;
        free(m->key);
        free(m->value);
        free(m);
        m = next;
    }
    json_object_put(rec->payload);
    free(rec->id);
    free(rec);
}

static ik_record *fh_record_new(ik_instance *self, const char *id, json_object *payload)
{
    return fh_record(id, payload);
}

static const char *fh_record_id(const ik_record *rec)
{
    return rec->id;
}

static json_object *fh_record_payload(const ik_record *rec)
{
    return rec->payload;
}

static void fh_record_set_payload(ik_record *rec, json_object *payload)
{
    json_object_put(rec->payload);
    rec->payload = payload;
}

const char *fh_meta_get(const ik_record *rec, const char *key)
{
    for (fh_meta *m = rec->meta; m; m = m->next)
        if (strcmp(m->key, key) == 0)
            return m->value;
    return NULL;
}

static int fh_record_set_meta(ik_record *rec, const char *key, const char *value)
{
    for (fh_meta *m = rec->meta; m; m = m->next) {
        if (strcmp(m->key, key) == 0) {
            char *v = strdup(value);
            if (!v)
                return IK_E_NOMEM;
            free(m->value);
            m->value = v;
            return 0;
        }
    }
    fh_meta *m = calloc(1, sizeof *m);
    if (!m || !(m->key = strdup(key)) || !(m->value = strdup(value))) {
        if (m)
            free(m->key);
        free(m);
        return IK_E_NOMEM;
    }
    /* Appended at the end: the order of setting is kept. */
    fh_meta **pp = &rec->meta;
    while (*pp)
        pp = &(*pp)->next;
    *pp = m;
    return 0;
}

static int fh_record_priority(const ik_record *rec)
{
    return rec->priority;
}

static void fh_record_set_priority(ik_record *rec, int p)
{
    rec->priority = p;
}

static unsigned fh_record_attempts(const ik_record *rec)
{
    return rec->attempts;
}

static void *fh_record_handle(const ik_record *rec)
{
    return rec->handle;
}

static void fh_record_set_handle(ik_record *rec, void *h)
{
    rec->handle = h;
}

static int push(ik_record ***arr, size_t *n, size_t *cap, ik_record *rec)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        ik_record **grown = realloc(*arr, c * sizeof *grown);
        if (!grown)
            return IK_E_NOMEM;
        *arr = grown;
        *cap = c;
    }
    (*arr)[(*n)++] = rec;
    return 0;
}

static int fh_emit(ik_instance *self, ik_record *rec)
{
    fake_host *fh = FH(self);
    pthread_mutex_lock(&fh->mu);
    if (fh->stopping ||
        (fh->stop_after_emits >= 0 && fh->nemitted >= (size_t)fh->stop_after_emits)) {
        pthread_mutex_unlock(&fh->mu);
        return IK_E_STOPPING;
    }
    int rc = push(&fh->emitted, &fh->nemitted, &fh->cap_emitted, rec);
    pthread_cond_broadcast(&fh->cv);
    pthread_mutex_unlock(&fh->mu);
    return rc;
}

static int fh_try_emit(ik_instance *self, ik_record *rec)
{
    fake_host *fh = FH(self);
    pthread_mutex_lock(&fh->mu);
    unsigned long n = ++fh->try_calls;
    pthread_mutex_unlock(&fh->mu);
    if (fh->busy_every > 0 && n % (unsigned long)fh->busy_every == 0)
        return IK_E_BUSY;
    return fh_emit(self, rec);
}

static void add_outcome(fake_host *fh, const char *id, ik_outcome outcome, const char *reason)
{
    pthread_mutex_lock(&fh->mu);
    if (fh->noutcomes == fh->cap_outcomes) {
        size_t c = fh->cap_outcomes ? fh->cap_outcomes * 2 : 64;
        fh_outcome *grown = realloc(fh->outcomes, c * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&fh->mu);
            return;
        }
        fh->outcomes = grown;
        fh->cap_outcomes = c;
    }
    fh_outcome *o = &fh->outcomes[fh->noutcomes++];
    o->id = strdup(id);
    o->outcome = outcome;
    o->reason = reason ? strdup(reason) : NULL;
    pthread_mutex_unlock(&fh->mu);
}

static int fh_host_settle(ik_instance *self, ik_record *rec, ik_outcome outcome, const char *reason)
{
    fake_host *fh = FH(self);
    if (outcome != IK_DEAD_LETTERED) {
        fh_record_free(rec);
        return IK_E_INVAL;
    }
    pthread_mutex_lock(&fh->mu);
    int rc = push(&fh->dead, &fh->ndead, &fh->cap_dead, rec);
    pthread_mutex_unlock(&fh->mu);
    if (rc != 0) {
        fh_record_free(rec);
        return rc;
    }
    rec->settled = 1;
    add_outcome(fh, rec->id, outcome, reason);
    ik_failure f = {reason, "source", 0, 0};
    if (fh->plugin->settle)
        fh->plugin->settle(fh->state, rec, outcome, &f);
    return 0;
}

static int fh_stopping(ik_instance *self)
{
    fake_host *fh = FH(self);
    pthread_mutex_lock(&fh->mu);
    int s = fh->stopping;
    pthread_mutex_unlock(&fh->mu);
    return s;
}

static int fh_wait_ms(ik_instance *self, uint64_t ms)
{
    fake_host *fh = FH(self);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&fh->mu);
    while (!fh->stopping) {
        if (pthread_cond_timedwait(&fh->cv, &fh->mu, &ts) == ETIMEDOUT)
            break;
    }
    int s = fh->stopping;
    pthread_mutex_unlock(&fh->mu);
    return s;
}

/* host->settle_failed(): counted and kept for the test to read. */
static void fh_settle_failed(ik_instance *self, ik_record *rec, const char *reason)
{
    fake_host *fh = FH(self);
    pthread_mutex_lock(&fh->mu);
    fh->nsettle_failed++;
    snprintf(fh->settle_failed_reason, sizeof fh->settle_failed_reason, "%s: %s",
             rec ? rec->id : "(null)", reason ? reason : "");
    pthread_mutex_unlock(&fh->mu);
}

static size_t fh_max_record_size(ik_instance *self)
{
    return FH(self)->max_record_size;
}

static ik_metric *fh_counter(ik_instance *self, const char *name, const char *help)
{
    fake_host *fh = FH(self);
    if (fh->nmetrics == sizeof fh->metrics / sizeof *fh->metrics)
        return NULL;
    fh_metric *m = &fh->metrics[fh->nmetrics++];
    snprintf(m->name, sizeof m->name, "%s", name);
    m->value = 0;
    pthread_mutex_init(&m->mu, NULL);
    return (ik_metric *)m;
}

static ik_metric *fh_histogram(ik_instance *self, const char *name, const char *help,
                               const double *bounds, size_t nbounds)
{
    return fh_counter(self, name, help);
}

static void fh_metric_add(ik_metric *m, double delta)
{
    fh_metric *fm = (fh_metric *)m;
    pthread_mutex_lock(&fm->mu);
    fm->value += delta;
    pthread_mutex_unlock(&fm->mu);
}

static void fh_metric_set(ik_metric *m, double value)
{
    fh_metric *fm = (fh_metric *)m;
    pthread_mutex_lock(&fm->mu);
    fm->value = value;
    pthread_mutex_unlock(&fm->mu);
}

static const char *fh_instance_name(ik_instance *self)
{
    return "test";
}

double fh_metric_value(fake_host *fh, const char *name)
{
    for (size_t i = 0; i < fh->nmetrics; i++) {
        if (strcmp(fh->metrics[i].name, name) == 0) {
            pthread_mutex_lock(&fh->metrics[i].mu);
            double v = fh->metrics[i].value;
            pthread_mutex_unlock(&fh->metrics[i].mu);
            return v;
        }
    }
    return -1;
}

void fh_init(fake_host *fh, const ik_plugin *plugin, const char *const *opts)
{
    memset(fh, 0, sizeof *fh);
    fh->plugin = plugin;
    fh->opts = opts;
    fh->max_record_size = 256 * 1024;
    fh->stop_after_emits = -1;
    pthread_mutex_init(&fh->mu, NULL);
    pthread_cond_init(&fh->cv, NULL);
    ik_host *h = &fh->host;
    h->struct_size = sizeof *h;
    h->abi_major = IK_ABI_MAJOR;
    h->abi_minor = IK_ABI_MINOR;
    h->log = fh_log_fn;
    h->strerror = fh_strerror;
    h->opt_is_set = fh_opt_is_set;
    h->record_new = fh_record_new;
    h->record_free = fh_record_free;
    h->record_id = fh_record_id;
    h->record_payload = fh_record_payload;
    h->record_set_payload = fh_record_set_payload;
    h->record_meta = fh_meta_get;
    h->record_set_meta = fh_record_set_meta;
    h->record_priority = fh_record_priority;
    h->record_set_priority = fh_record_set_priority;
    h->record_attempts = fh_record_attempts;
    h->record_handle = fh_record_handle;
    h->record_set_handle = fh_record_set_handle;
    h->emit = fh_emit;
    h->try_emit = fh_try_emit;
    h->settle = fh_host_settle;
    h->stopping = fh_stopping;
    h->wait_ms = fh_wait_ms;
    h->max_record_size = fh_max_record_size;
    h->settle_failed = fh_settle_failed;
    h->counter = fh_counter;
    h->gauge = fh_counter;
    h->histogram = fh_histogram;
    h->metric_add = fh_metric_add;
    h->metric_set = fh_metric_set;
    h->metric_observe = fh_metric_add;
    h->instance_name = fh_instance_name;
    h->pipeline_name = fh_instance_name;
    h->json_write = ik_json_write;
    h->json_write_string = ik_json_write_string;
}

int fh_create(fake_host *fh)
{
    int rc = fh_check_limits(fh);
    if (rc == 0)
        rc = fh_bind_config(fh);
    if (rc == 0 && fh->plugin->check)
        rc = fh->plugin->check(&fh->host, fh_self(fh), fh->config);
    return rc != 0 ? rc : fh->plugin->create(&fh->host, fh_self(fh), fh->config, &fh->state);
}

void fh_free(fake_host *fh)
{
    if (fh->state && fh->plugin->settle)
        for (size_t i = 0; i < fh->nemitted; i++)
            if (!fh->emitted[i]->settled)
                fh_settle(fh, i, IK_RELEASED, NULL, 0);
    if (fh->state && fh->plugin->destroy)
        fh->plugin->destroy(fh->state);
    fh->state = NULL;
    for (size_t i = 0; i < fh->nemitted; i++)
        fh_record_free(fh->emitted[i]);
    for (size_t i = 0; i < fh->ndead; i++)
        fh_record_free(fh->dead[i]);
    for (size_t i = 0; i < fh->noutcomes; i++) {
        free(fh->outcomes[i].id);
        free(fh->outcomes[i].reason);
    }
    free(fh->emitted);
    free(fh->dead);
    free(fh->outcomes);
    free(fh->log);
    free(fh->config);
    for (size_t i = 0; i < fh->nmetrics; i++)
        pthread_mutex_destroy(&fh->metrics[i].mu);
    pthread_mutex_destroy(&fh->mu);
    pthread_cond_destroy(&fh->cv);
    memset(fh, 0, sizeof *fh);
}

void fh_settle(fake_host *fh, size_t i, ik_outcome outcome, const char *reason, int stored)
{
    pthread_mutex_lock(&fh->mu);
    ik_record *rec = i < fh->nemitted ? fh->emitted[i] : NULL;
    pthread_mutex_unlock(&fh->mu);
    if (!rec || rec->settled)
        return;
    rec->settled = 1;
    add_outcome(fh, rec->id, outcome, reason);
    ik_failure f = {reason ? reason : "failed", "sink", 3, stored};
    fh->plugin->settle(fh->state, rec, outcome, outcome == IK_DEAD_LETTERED ? &f : NULL);
}

void fh_settle_all(fake_host *fh, ik_outcome outcome)
{
    for (size_t i = 0; i < fh->nemitted; i++)
        fh_settle(fh, i, outcome, "test failure", 0);
}

int fh_wait_emitted(fake_host *fh, size_t n, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 5) {
        pthread_mutex_lock(&fh->mu);
        size_t have = fh->nemitted;
        pthread_mutex_unlock(&fh->mu);
        if (have >= n)
            return 0;
        struct timespec ts = {0, 5000000L};
        nanosleep(&ts, NULL);
    }
    return -1;
}

void fh_set_stopping(fake_host *fh)
{
    pthread_mutex_lock(&fh->mu);
    fh->stopping = 1;
    pthread_cond_broadcast(&fh->cv);
    pthread_mutex_unlock(&fh->mu);
}

const char *fh_log(fake_host *fh)
{
    return fh->log ? fh->log : "";
}
