/*
 * state_cli.c: `intake state [--config FILE | --state-dir DIR] COMMAND`:
 *   list                 every namespace with its live keys and ledger entries
 *   list NAMESPACE       the live keys of one namespace (version, size, expiry)
 *                        and its ledgers (entries, first and last number)
 *   get NAMESPACE KEY    the value, as stored, on stdout
 *   delete NAMESPACE KEY
 * It opens only a store that exists (never creates one) and works beside a
 * running engine: SQLite's locks and busy timeout order their writes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "state.h"
#include "state_cli.h"

static const char state_usage[] =
    "usage: intake state [--config FILE | --state-dir DIR] COMMAND\n"
    "  list                    namespaces (<pipeline>/<instance>) with their keys and ledger "
    "entries\n"
    "  list NAMESPACE          keys of one namespace (version, size, expiry, last write)\n"
    "                          and its ledgers (entries, first and last number)\n"
    "  get NAMESPACE KEY       the value on stdout, as stored\n"
    "  delete NAMESPACE KEY    deletes the key\n";

static int cli_usage(const char *msg)
{
    fprintf(stderr, "intake state: %s\n%s", msg, state_usage);
    return 2;
}

static void print_ns(void *arg, const ik_state_ns_info *ns)
{
    (void)arg;
    printf("%-40s %8llu keys %8llu ledger entries\n", ns->ns, (unsigned long long)ns->keys,
           (unsigned long long)ns->entries);
}

/* "2026-01-02T03:04:05Z" of a wall-clock ms time, "-" for 0. */
static const char *iso(uint64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000u);
    struct tm tm;
    if (!ms || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, len, "-");
    return buf;
}

static void print_key(void *arg, const ik_state_key_info *k)
{
    int *n = arg;
    char exp[32], upd[32];
    printf("%-40s version %-20llu %8zu bytes  expires %-20s  written %s\n", k->key,
           (unsigned long long)k->version, k->size, iso(k->expires_at_ms, exp, sizeof exp),
           iso(k->updated_at_ms, upd, sizeof upd));
    (*n)++;
}

static void print_ledger(void *arg, const ik_state_ledger_info *l)
{
    int *n = arg;
    printf("ledger %-33s %llu entries (%llu..%llu)\n", l->name, (unsigned long long)l->entries,
           (unsigned long long)l->first, (unsigned long long)l->last);
    (*n)++;
}

/* The state dir from the options: --state-dir as given, or the config's. */
static int state_dir(const char *config, const char *dir, ik_config **cfg, const char **out)
{
    if (dir) {
        *out = dir;
        return 0;
    }
    ik_err err = {0};
    if (ik_config_load(config, cfg, &err) != 0) {
        ik_logf(IK_LOG_ERROR, NULL, NULL, "%s", err.msg);
        return 3;
    }
    *out = (*cfg)->state_dir;
    return 0;
}

/* Runs one command on the open store; returns the exit code. */
static int run_command(ik_state *st, int argc, char **argv)
{
    const char *cmd = argv[0];
    int rc;
    if (!strcmp(cmd, "list") && argc == 1) {
        rc = ik_state_list_ns(st, print_ns, NULL);
    } else if (!strcmp(cmd, "list") && argc == 2) {
        int n = 0;
        rc = ik_state_list_keys(st, argv[1], print_key, &n);
        if (rc == 0)
            rc = ik_state_list_ledgers(st, argv[1], print_ledger, &n);
        if (rc == 0 && n == 0)
            fprintf(stderr, "intake state: nothing in namespace '%s'\n", argv[1]);
    } else if (!strcmp(cmd, "get") && argc == 3) {
        ik_buf v = {0};
        rc = ik_state_get(st, NULL, argv[1], argv[2], &v, NULL);
        if (rc == 0) {
            fwrite(v.p, 1, v.len, stdout);
            if (isatty(STDOUT_FILENO))
                fputc('\n', stdout);
        }
        free(v.p);
    } else if (!strcmp(cmd, "delete") && argc == 3) {
        rc = ik_state_delete(st, NULL, argv[1], argv[2], 0);
        if (rc == 0)
            fprintf(stderr, "intake state: deleted '%s' from namespace '%s'\n", argv[2], argv[1]);
    } else {
        return cli_usage("unknown command or wrong number of arguments");
    }
    if (rc != 0) {
        fprintf(stderr, "intake state: %s\n", ik_state_last_error());
        return 1;
    }
    return 0;
}

int ik_state_cli(int argc, char **argv)
{
    const char *config = NULL, *dir = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(state_usage, stdout);
            return 0;
        }
        if ((strcmp(argv[i], "--config") && strcmp(argv[i], "--state-dir")) || i + 1 >= argc)
            return cli_usage("unknown option, or an option without its value");
        if (!strcmp(argv[i], "--config"))
            config = argv[++i];
        else
            dir = argv[++i];
    }
    if (!config == !dir)
        return cli_usage("give exactly one of --config FILE and --state-dir DIR");
    if (i >= argc)
        return cli_usage("no command");
    ik_config *cfg = NULL;
    const char *where = NULL;
    int rc = state_dir(config, dir, &cfg, &where);
    if (rc != 0)
        return rc;
    ik_state_opts so = {.dir = where,
                        .read_only_existing = 1,
                        .durability =
                            cfg && cfg->state_durability ? IK_STATE_FULL : IK_STATE_NORMAL};
    ik_state *st = NULL;
    ik_err err = {0};
    if (ik_state_open(&so, &st, &err) != 0) {
        fprintf(stderr, "intake state: %s\n", err.msg);
        ik_config_free(cfg);
        return 1;
    }
    rc = run_command(st, argc - i, argv + i);
    ik_state_close(st);
    ik_config_free(cfg);
    return rc;
}
