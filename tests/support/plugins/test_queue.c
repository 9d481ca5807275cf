/*
 * test_queue.c: the `test_queue` source, test-only (build/tests/plugins): a
 * queue that redelivers like Service Bus peek-lock. Its `count` messages
 * ("<prefix>-<n>", n from 1) stay in the queue until settled; every run
 * delivers each one not yet settled, with its delivery count (1 the first
 * time) in the metadata "delivery_count". The queue lives in folder `dir`:
 *   deliveries  one line "<id>" per delivery (so a crash mid-run still counts it)
 *   settled     one line "<id> <delivered|dead_lettered>" per settled message
 *   outcomes    one line per settle() call: "<id> <outcome> <delivery count> <reason>"
 * A released record is not settled: the next run delivers it again, as a
 * lock that expired would. Appends are one write(2) each, so what a killed
 * run wrote is there for the next one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <intake/plugin.h>

typedef struct tq_config {
    int64_t count;
    const char *prefix;
    const char *dir;
} tq_config;

static const ik_option tq_options[] = {
    {"count", IK_OPT_INT, "100", 0, "How many messages the queue holds.",
     IK_OPT_AT(tq_config, count), .min = "0", .max = "10000000"},
    {"prefix", IK_OPT_STRING, "msg", 0, "Message ids are <prefix>-<n>, n from 1.",
     IK_OPT_AT(tq_config, prefix)},
    {"dir", IK_OPT_STRING, NULL, IK_OPT_REQUIRED, "Folder holding the queue's files.",
     IK_OPT_AT(tq_config, dir)},
    {0},
};

typedef struct tq_state {
    const ik_host *host;
    ik_instance *self;
    int64_t count;
    const char *prefix;
    unsigned *deliveries;   /* per n, from earlier runs and this one */
    unsigned char *settled; /* per n */
    int fd_deliveries, fd_settled, fd_outcomes;
} tq_state;

/* The n of "<prefix>-<n>", or 0 when id is not one of ours. */
static int64_t tq_number(const tq_state *st, const char *id)
{
    size_t pl = strlen(st->prefix);
    if (strncmp(id, st->prefix, pl) != 0 || id[pl] != '-')
        return 0;
    char *end;
    long long n = strtoll(id + pl + 1, &end, 10);
    return (*end == '\0' || *end == ' ') && n >= 1 && n <= st->count ? (int64_t)n : 0;
}

/* Reads one of the queue's files line by line into the counters. */
static void tq_load(tq_state *st, const char *dir, const char *name, int settled)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        int64_t n = tq_number(st, line);
        if (n && settled)
            st->settled[n] = 1;
        else if (n)
            st->deliveries[n]++;
    }
    fclose(f);
}

static int tq_open(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

static void tq_destroy(void *state)
{
    tq_state *st = state;
    if (!st)
        return;
    for (int *fd = &st->fd_deliveries; fd <= &st->fd_outcomes; fd++)
        if (*fd >= 0)
            close(*fd);
    free(st->deliveries);
    free(st->settled);
    free(st);
}

static int tq_create(const ik_host *host, ik_instance *self, const void *config, void **state)
{
    const tq_config *cfg = config;
    tq_state *st = calloc(1, sizeof *st);
    if (!st)
        return IK_E_NOMEM;
    st->host = host;
    st->self = self;
    st->count = cfg->count;
    st->prefix = cfg->prefix ? cfg->prefix : "msg";
    st->fd_deliveries = st->fd_settled = st->fd_outcomes = -1;
    st->deliveries = calloc((size_t)st->count + 1, sizeof *st->deliveries);
    st->settled = calloc((size_t)st->count + 1, 1);
    if (!st->deliveries || !st->settled) {
        tq_destroy(st);
        return IK_E_NOMEM;
    }
    tq_load(st, cfg->dir, "deliveries", 0);
    tq_load(st, cfg->dir, "settled", 1);
    st->fd_deliveries = tq_open(cfg->dir, "deliveries");
    st->fd_settled = tq_open(cfg->dir, "settled");
    st->fd_outcomes = tq_open(cfg->dir, "outcomes");
    if (st->fd_deliveries < 0 || st->fd_settled < 0 || st->fd_outcomes < 0) {
        host->log(self, IK_LOG_ERROR, "cannot open the queue's files in %s: %s", cfg->dir,
                  strerror(errno));
        tq_destroy(st);
        return IK_E_IO;
    }
    *state = st;
    return 0;
}

static void tq_append(int fd, const char *line)
{
    ssize_t w = write(fd, line, strlen(line));
    (void)w;
}

/* Delivers every message not settled yet, counting the delivery first. */
static int tq_run(void *state)
{
    tq_state *st = state;
    const ik_host *host = st->host;
    for (int64_t n = 1; n <= st->count && !host->stopping(st->self); n++) {
        if (st->settled[n])
            continue;
        char id[256], line[300], dc[16];
        snprintf(id, sizeof id, "%s-%lld", st->prefix, (long long)n);
        snprintf(line, sizeof line, "%s\n", id);
        tq_append(st->fd_deliveries, line);
        snprintf(dc, sizeof dc, "%u", ++st->deliveries[n]);
        json_object *p = json_object_new_object();
        if (!p)
            return IK_E_NOMEM;
        json_object_object_add(p, "id", json_object_new_string(id));
        json_object_object_add(p, "subject", json_object_new_string("Queued message"));
        json_object_object_add(p, "body", json_object_new_string("hello"));
        ik_record *rec = host->record_new(st->self, id, p);
        if (!rec)
            return IK_E_NOMEM;
        host->record_set_meta(rec, "delivery_count", dc);
        int rc = host->emit(st->self, rec);
        if (rc != 0) {
            host->record_free(rec);
            return rc == IK_E_STOPPING ? 0 : rc;
        }
    }
    return 0;
}

/* Settles the message: delivered and dead-lettered leave the queue. */
static void tq_settle(void *state, ik_record *rec, ik_outcome outcome, const ik_failure *failure)
{
    tq_state *st = state;
    const char *id = st->host->record_id(rec);
    const char *what = outcome == IK_DELIVERED       ? "delivered"
                       : outcome == IK_DEAD_LETTERED ? "dead_lettered"
                                                     : "released";
    const char *dc = st->host->record_meta(rec, "delivery_count");
    const char *reason = failure && failure->reason && failure->reason[0] ? failure->reason : "-";
    char line[1024];
    snprintf(line, sizeof line, "%s %s %s %s\n", id, what, dc ? dc : "?", reason);
    tq_append(st->fd_outcomes, line);
    if (outcome != IK_RELEASED) {
        snprintf(line, sizeof line, "%s %s\n", id, what);
        tq_append(st->fd_settled, line);
    }
}

static const ik_plugin tq_plugin = {
    IK_PLUGIN_HEAD,
    .name = "test_queue",
    .version = "1.0.0",
    .description = "Test source: a queue that redelivers unsettled messages with a delivery count.",
    .kind = IK_KIND_SOURCE,
    .options = tq_options,
    .config_size = sizeof(tq_config),
    .create = tq_create,
    .destroy = tq_destroy,
    .run = tq_run,
    .settle = tq_settle,
};

IK_PLUGIN_EXPORT(tq_plugin)
