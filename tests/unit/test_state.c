/*
 * test_state.c: CUnit tests of the state store service and its SQLite
 * backend (engine/state.c, engine/state_sqlite.c): get/put/delete, versions,
 * TTL on a clock the test moves, compare-and-set under threads, ledgers and
 * cursors, transactions, namespaces, error messages, /health reasons, and a
 * corrupt file refused at open.
 */
#include <CUnit/Basic.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "state.h"
#include "stderr_capture.h"

static char dir[64];
static uint64_t fake_now = 1700000000000ull;

static uint64_t test_clock(void *arg)
{
    (void)arg;
    return __atomic_load_n(&fake_now, __ATOMIC_SEQ_CST);
}

static void rm_store(const char *d)
{
    static const char *const files[] = {"state.db", "state.db-wal", "state.db-shm", NULL};
    char p[128];
    for (int i = 0; files[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", d, files[i]);
        unlink(p);
    }
    rmdir(d);
}

/* A fresh store in a new folder (created now) on the test clock. */
static ik_state *fresh(void)
{
    snprintf(dir, sizeof dir, "/tmp/ik-state-XXXXXX");
    if (!mkdtemp(dir))
        return NULL;
    ik_state_opts o = {.dir = dir, .clock = test_clock, .create_now = 1};
    ik_state *st = NULL;
    ik_err err = {0};
    CU_ASSERT_EQUAL_FATAL(ik_state_open(&o, &st, &err), 0);
    return st;
}

static void done(ik_state *st)
{
    ik_state_close(st);
    rm_store(dir);
}

static void test_put_get_delete(void)
{
    ik_state *st = fresh();
    ik_buf b = {0};
    uint64_t v1 = 0, v2 = 0, v3 = 0;
    CU_ASSERT_EQUAL(ik_state_get(st, NULL, "p/a", "k", &b, NULL), IK_E_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(ik_state_last_error(), "no key 'k' in namespace 'p/a'"));
    CU_ASSERT_EQUAL(ik_state_write(st, NULL, "p/a", "k", IK_STATE_PUT, 0, "a\0b", 3, 0, &v1), 0);
    CU_ASSERT_EQUAL(ik_state_get(st, NULL, "p/a", "k", &b, &v2), 0);
    CU_ASSERT_EQUAL(b.len, 3);
    CU_ASSERT_EQUAL(memcmp(b.p, "a\0b", 4), 0); /* NUL after the value */
    CU_ASSERT_EQUAL(v1, v2);
    CU_ASSERT_EQUAL(ik_state_write(st, NULL, "p/a", "k", IK_STATE_PUT, 0, "", 0, 0, &v2), 0);
    CU_ASSERT(v2 > v1);
    CU_ASSERT_EQUAL(ik_state_get(st, NULL, "p/a", "k", &b, NULL), 0);
    CU_ASSERT_EQUAL(b.len, 0);
    CU_ASSERT_STRING_EQUAL(b.p, "");
    /* a version refused, then the right one */
    CU_ASSERT_EQUAL(ik_state_delete(st, NULL, "p/a", "k", v1), IK_E_CONFLICT);
    CU_ASSERT_EQUAL(ik_state_delete(st, NULL, "p/a", "k", v2), 0);
    CU_ASSERT_EQUAL(ik_state_get(st, NULL, "p/a", "k", &b, NULL), IK_E_NOTFOUND);
    CU_ASSERT_EQUAL(ik_state_delete(st, NULL, "p/a", "k", 0), IK_E_NOTFOUND);
    /* made again at the same instant: a new version, never an old one */
    CU_ASSERT_EQUAL(ik_state_write(st, NULL, "p/a", "k", IK_STATE_PUT, 0, "x", 1, 0, &v3), 0);
    CU_ASSERT(v3 > v2);
    free(b.p);
    done(st);
}

static void test_namespaces_isolated(void)
{
    ik_state *st = fresh();
    ik_buf b = {0};
    CU_ASSERT_EQUAL(ik_state_write(st, NULL, "p/x", "k", IK_STATE_PUT, 0, "x", 1, 0, NULL), 0);
    CU_ASSERT_EQUAL(ik_state_write(st, NULL, "p/y", "k", IK_STATE_PUT, 0, "y", 1, 0, NULL), 0);
    CU_ASSERT_EQUAL(ik_state_append(st, NULL, "p/x", "l", "1", 1, NULL), 0);
    CU_ASSERT_EQUAL(ik_state_get(st, NULL, "p/x", "k", &b, NULL), 0);
    CU_ASSERT_STRING_EQUAL(b.p, "x");
    CU_ASSERT_EQUAL(ik_state_delete(st, NULL, "p/y", "k", 0), 0);
    CU_ASSERT_EQUAL(ik_state_get(st, NULL, "p/x", "k", &b, NULL), 0);
    CU_ASSERT_STRING_EQUAL(b.p, "x");
    uint64_t cursor = 0;
    size_t n = 9;
    CU_ASSERT_EQUAL(ik_state_read(st, NULL, "p/y", "l", &cursor, 10, NULL, NULL, &n), IK_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(ik_state_last_error(), "callback"));
    free(b.p);
    done(st);
}

static void test_ttl(void)
{
    ik_state *st = fresh();
    ik_buf b = {0};
    uint64_t v = 0;
    uint64_t t0 = fake_now;
    CU_ASSERT_EQUAL(ik_state_write(st, NULL, "p/a", "lease", IK_STATE_PUT, 0, "me", 2, 1000, &v),
                    0);
    CU_ASSERT_EQUAL(ik_state_write(st, NULL, "p/a", "keep", IK_STATE_PUT, 0, "k", 1, 0, NULL), 0);
    fake_now = t0 + 999;
    CU_ASSERT_EQUAL(ik_state_get(st, NULL, "p/a", "lease", &b, NULL), 0);
    /* cas over "absent" must not take a live lease */
    CU_ASSERT_EQUAL(ik_state_write(st, NULL, "p/a", "lease", IK_STATE_CAS, 0, "you", 3, 1000, NULL),
                    IK_E_CONFLICT);
    fake_now = t0 + 1000;
    CU_ASSERT_EQUAL(ik_state_get(st, NULL, "p/a", "lease", &b, NULL), IK_E_NOTFOUND);
    CU_ASSERT_EQUAL(ik_state_write(st, NULL, "p/a", "lease", IK_STATE_CAS, v, "me", 2, 0, NULL),
                    IK_E_CONFLICT); /* expired: the old holder's version no longer counts */
    CU_ASSERT_EQUAL(ik_state_delete(st, NULL, "p/a", "lease", 0), IK_E_NOTFOUND);
    /* expired rows are really deleted by the purge: back in time, still gone */
    CU_ASSERT_EQUAL(ik_state_purge(st), 0);
    fake_now = t0;
    CU_ASSERT_EQUAL(ik_state_get(st, NULL, "p/a", "lease", &b, NULL), IK_E_NOTFOUND);
    CU_ASSERT_EQUAL(ik_state_get(st, NULL, "p/a", "keep", &b, NULL), 0);
    /* an expired key can be taken over with cas 0 */
    CU_ASSERT_EQUAL(ik_state_write(st, NULL, "p/a", "l2", IK_STATE_PUT, 0, "a", 1, 10, NULL), 0);
    fake_now = t0 + 10;
    CU_ASSERT_EQUAL(ik_state_write(st, NULL, "p/a", "l2", IK_STATE_CAS, 0, "b", 1, 0, &v), 0);
    CU_ASSERT_EQUAL(ik_state_get(st, NULL, "p/a", "l2", &b, NULL), 0);
    CU_ASSERT_STRING_EQUAL(b.p, "b");
    fake_now = t0;
    free(b.p);
    done(st);
}

/* ---------------------------------------------------------- CAS threads */

#define THREADS    4
#define INCREMENTS 150

typedef struct hammer {
    ik_state *st;
    int won_lease;
    int errors;
} hammer;

/* Adds 1 to "counter" INCREMENTS times by read + compare-and-set, and
 * tries once to take "lease" (only one thread may). */
static void *hammer_main(void *arg)
{
    hammer *h = arg;
    ik_buf b = {0};
    if (ik_state_write(h->st, NULL, "p/a", "lease", IK_STATE_CAS, 0, "t", 1, 0, NULL) == 0)
        h->won_lease = 1;
    for (int i = 0; i < INCREMENTS;) {
        uint64_t v = 0;
        long n = 0;
        int rc = ik_state_get(h->st, NULL, "p/a", "counter", &b, &v);
        if (rc == 0)
            n = strtol(b.p, NULL, 10);
        else if (rc != IK_E_NOTFOUND) {
            h->errors++;
            continue;
        }
        char text[32];
        int len = snprintf(text, sizeof text, "%ld", n + 1);
        rc = ik_state_write(h->st, NULL, "p/a", "counter", IK_STATE_CAS, rc == 0 ? v : 0, text,
                            (size_t)len, 0, NULL);
        if (rc == 0)
            i++;
        else if (rc != IK_E_CONFLICT)
            h->errors++;
    }
    free(b.p);
    return NULL;
}

static void test_cas_threads(void)
{
    ik_state *st = fresh();
    pthread_t t[THREADS];
    hammer h[THREADS];
    for (int i = 0; i < THREADS; i++) {
        h[i] = (hammer){.st = st};
        pthread_create(&t[i], NULL, hammer_main, &h[i]);
    }
    int winners = 0, errors = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        winners += h[i].won_lease;
        errors += h[i].errors;
    }
    ik_buf b = {0};
    CU_ASSERT_EQUAL(ik_state_get(st, NULL, "p/a", "counter", &b, NULL), 0);
    CU_ASSERT_EQUAL(strtol(b.p, NULL, 10), THREADS * INCREMENTS);
    CU_ASSERT_EQUAL(winners, 1);
    CU_ASSERT_EQUAL(errors, 0);
    free(b.p);
    done(st);
}

/* ---------------------------------------------------------- ledgers */

typedef struct seen {
    uint64_t seqs[32];
    char text[32][8];
    size_t n;
    size_t stop_after; /* 0: never */
    int unterminated;  /* entries without the NUL the SDK promises after them */
} seen;

static int collect(uint64_t seq, const void *data, size_t len, void *arg)
{
    seen *s = arg;
    if (((const char *)data)[len] != '\0')
        s->unterminated++;
    s->seqs[s->n] = seq;
    snprintf(s->text[s->n], sizeof s->text[0], "%.*s", (int)len, (const char *)data);
    s->n++;
    return s->stop_after && s->n >= s->stop_after;
}

static void test_ledger(void)
{
    ik_state *st = fresh();
    for (int i = 1; i <= 7; i++) {
        char e[8];
        uint64_t seq = 0;
        int len = snprintf(e, sizeof e, "e%d", i);
        CU_ASSERT_EQUAL(ik_state_append(st, NULL, "p/a", "log", e, (size_t)len, &seq), 0);
        CU_ASSERT_EQUAL(seq, (uint64_t)i);
    }
    seen s = {0};
    uint64_t cursor = 0;
    size_t n = 0;
    CU_ASSERT_EQUAL(ik_state_read(st, NULL, "p/a", "log", &cursor, 3, collect, &s, &n), 0);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(cursor, 3);
    CU_ASSERT_STRING_EQUAL(s.text[2], "e3");
    CU_ASSERT_EQUAL(s.unterminated, 0);
    CU_ASSERT_EQUAL(ik_state_read(st, NULL, "p/a", "log", &cursor, 3, collect, &s, &n), 0);
    CU_ASSERT_EQUAL(cursor, 6);
    CU_ASSERT_EQUAL(s.seqs[3], 4);
    /* a callback that stops: the cursor is on the entry it stopped at */
    s.stop_after = s.n + 1;
    CU_ASSERT_EQUAL(ik_state_read(st, NULL, "p/a", "log", &cursor, 10, collect, &s, &n), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(cursor, 7);
    CU_ASSERT_EQUAL(ik_state_read(st, NULL, "p/a", "log", &cursor, 10, collect, &s, &n), 0);
    CU_ASSERT_EQUAL(n, 0);
    /* trim: old entries go, numbers never come back */
    CU_ASSERT_EQUAL(ik_state_trim(st, NULL, "p/a", "log", 7), 0);
    uint64_t seq = 0;
    CU_ASSERT_EQUAL(ik_state_append(st, NULL, "p/a", "log", "e8", 2, &seq), 0);
    CU_ASSERT_EQUAL(seq, 8);
    cursor = 0;
    s = (seen){0};
    CU_ASSERT_EQUAL(ik_state_read(st, NULL, "p/a", "log", &cursor, 10, collect, &s, &n), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(s.seqs[0], 8);
    /* another ledger counts on its own */
    CU_ASSERT_EQUAL(ik_state_append(st, NULL, "p/a", "other", "x", 1, &seq), 0);
    CU_ASSERT_EQUAL(seq, 1);
    /* and another namespace's ledger of the same name is its own */
    cursor = 0;
    CU_ASSERT_EQUAL(ik_state_read(st, NULL, "p/b", "log", &cursor, 10, collect, &s, &n), 0);
    CU_ASSERT_EQUAL(n, 0);
    done(st);
}

/* ---------------------------------------------------------- transactions */

typedef struct txn_arg {
    ik_state *st;
    int result;
    int inner_null, inner_nested;
} txn_arg;

static int nested(ik_state_txn *tx, void *arg)
{
    (void)tx;
    (void)arg;
    return 0;
}

static int txn_body(ik_state_txn *tx, void *arg)
{
    txn_arg *a = arg;
    ik_state_write(a->st, tx, "p/a", "x", IK_STATE_PUT, 0, "1", 1, 0, NULL);
    ik_state_append(a->st, tx, "p/a", "log", "1", 1, NULL);
    a->inner_null = ik_state_write(a->st, NULL, "p/a", "y", IK_STATE_PUT, 0, "1", 1, 0, NULL);
    a->inner_nested = ik_state_txn_run(a->st, "p/a", nested, NULL);
    return a->result;
}

static void test_transactions(void)
{
    ik_state *st = fresh();
    ik_buf b = {0};
    txn_arg a = {.st = st, .result = IK_E_INVAL};
    CU_ASSERT_EQUAL(ik_state_txn_run(st, "p/a", txn_body, &a), IK_E_INVAL);
    CU_ASSERT_EQUAL(a.inner_null, IK_E_STATE);
    CU_ASSERT_EQUAL(a.inner_nested, IK_E_STATE);
    CU_ASSERT_EQUAL(ik_state_get(st, NULL, "p/a", "x", &b, NULL), IK_E_NOTFOUND);
    uint64_t cursor = 0;
    size_t n = 0;
    seen s = {0};
    CU_ASSERT_EQUAL(ik_state_read(st, NULL, "p/a", "log", &cursor, 10, collect, &s, &n), 0);
    CU_ASSERT_EQUAL(n, 0);
    a.result = 0;
    CU_ASSERT_EQUAL(ik_state_txn_run(st, "p/a", txn_body, &a), 0);
    CU_ASSERT_EQUAL(ik_state_get(st, NULL, "p/a", "x", &b, NULL), 0);
    CU_ASSERT_EQUAL(ik_state_read(st, NULL, "p/a", "log", &cursor, 10, collect, &s, &n), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(ik_state_get(st, NULL, "p/a", "y", &b, NULL), IK_E_NOTFOUND);
    free(b.p);
    done(st);
}

/* ---------------------------------------------------------- errors */

static void test_bad_arguments(void)
{
    ik_state *st = fresh();
    ik_buf b = {0};
    CU_ASSERT_EQUAL(ik_state_get(st, NULL, "p/a", "", &b, NULL), IK_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(ik_state_last_error(), "key is empty"));
    char long_key[IK_STATE_KEY_MAX + 2];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    CU_ASSERT_EQUAL(ik_state_write(st, NULL, "p/a", long_key, IK_STATE_PUT, 0, "", 0, 0, NULL),
                    IK_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(ik_state_last_error(), "longer than 512 bytes"));
    char *big = calloc(1, IK_STATE_VALUE_MAX + 1);
    CU_ASSERT_EQUAL(ik_state_write(st, NULL, "p/a", "big", IK_STATE_PUT, 0, big,
                                   IK_STATE_VALUE_MAX + 1, 0, NULL),
                    IK_E_TOOBIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(ik_state_last_error(), "'big'"));
    free(big);
    CU_ASSERT_EQUAL(ik_state_write(st, NULL, "p/a", "c", IK_STATE_CAS, 42, "v", 1, 0, NULL),
                    IK_E_CONFLICT);
    CU_ASSERT_PTR_NOT_NULL(strstr(ik_state_last_error(), "key 'c' in namespace 'p/a'"));
    /* nothing of that is the store's fault: the pipeline stays healthy */
    json_object *reasons = json_object_new_array();
    CU_ASSERT_EQUAL(ik_state_health(st, "p", reasons), 0);
    json_object_put(reasons);
    done(st);
}

/* The folder cannot be made (a file stands where it should be): writes
 * fail with a message naming it, the pipeline is unhealthy with that reason
 * until a write succeeds again. */
static void test_store_failure_health(void)
{
    char base[64], where[96];
    snprintf(base, sizeof base, "/tmp/ik-state-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(base));
    snprintf(where, sizeof where, "%s/blocked", base);
    int fd = open(where, O_CREAT | O_WRONLY, 0600);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    ik_state_opts o = {.dir = where, .clock = test_clock};
    ik_state *st = NULL;
    ik_err err = {0};
    CU_ASSERT_EQUAL_FATAL(ik_state_open(&o, &st, &err), 0); /* nothing to check yet */
    stderr_capture_begin();
    int rc = ik_state_write(st, NULL, "emails/gpt", "k", IK_STATE_PUT, 0, "v", 1, 0, NULL);
    char *log = stderr_capture_end();
    CU_ASSERT_EQUAL(rc, IK_E_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(ik_state_last_error(), where));
    CU_ASSERT_PTR_NOT_NULL(log && strstr(log, "unhealthy"));
    free(log);
    json_object *reasons = json_object_new_array();
    CU_ASSERT_EQUAL(ik_state_health(st, "emails", reasons), 1);
    CU_ASSERT_EQUAL(ik_state_health(st, "other", reasons), 0);
    const char *r = json_object_get_string(json_object_array_get_idx(reasons, 0));
    CU_ASSERT_PTR_NOT_NULL(r && strstr(r, "state store writes failing since"));
    CU_ASSERT_PTR_NOT_NULL(r && strstr(r, where));
    json_object_put(reasons);
    /* the way is cleared: the next write works and health comes back */
    unlink(where);
    stderr_capture_begin();
    CU_ASSERT_EQUAL(ik_state_write(st, NULL, "emails/gpt", "k", IK_STATE_PUT, 0, "v", 1, 0, NULL),
                    0);
    free(stderr_capture_end());
    reasons = json_object_new_array();
    CU_ASSERT_EQUAL(ik_state_health(st, "emails", reasons), 0);
    json_object_put(reasons);
    ik_state_close(st);
    rm_store(where);
    rmdir(base);
}

/* Garbage where the store should be, and a real store with a page torn:
 * refused at open, the message naming the file. */
static void test_corrupt_refused(void)
{
    ik_state *st = fresh();
    char big[4000];
    memset(big, 'v', sizeof big);
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof k, "key%d", i);
        CU_ASSERT_EQUAL(
            ik_state_write(st, NULL, "p/a", k, IK_STATE_PUT, 0, big, sizeof big, 0, NULL), 0);
    }
    ik_state_close(st);
    char path[128];
    snprintf(path, sizeof path, "%s/state.db", dir);
    int fd = open(path, O_WRONLY);
    CU_ASSERT_FATAL(fd >= 0);
    char junk[4096];
    memset(junk, 0x5a, sizeof junk);
    CU_ASSERT_EQUAL(pwrite(fd, junk, sizeof junk, 4096 * 3), (ssize_t)sizeof junk);
    close(fd);
    ik_state_opts o = {.dir = dir, .clock = test_clock};
    ik_err err = {0};
    st = NULL;
    CU_ASSERT_EQUAL(ik_state_open(&o, &st, &err), IK_E_IO);
    CU_ASSERT_PTR_NULL(st);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "refusing to start"));
    /* not a database at all */
    fd = open(path, O_WRONLY | O_TRUNC);
    CU_ASSERT_EQUAL(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
    err = (ik_err){0};
    CU_ASSERT_EQUAL(ik_state_open(&o, &st, &err), IK_E_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    rm_store(dir);
}

/* A store that is not there is made by the first write, not at open. */
static void test_created_on_first_write(void)
{
    char base[64], where[96], path[128];
    snprintf(base, sizeof base, "/tmp/ik-state-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(base));
    snprintf(where, sizeof where, "%s/a/b", base);
    snprintf(path, sizeof path, "%s/state.db", where);
    ik_state_opts o = {.dir = where, .clock = test_clock};
    ik_state *st = NULL;
    ik_err err = {0};
    CU_ASSERT_EQUAL_FATAL(ik_state_open(&o, &st, &err), 0);
    struct stat sb;
    CU_ASSERT_NOT_EQUAL(stat(path, &sb), 0);
    CU_ASSERT_EQUAL(ik_state_write(st, NULL, "p/a", "k", IK_STATE_PUT, 0, "v", 1, 0, NULL), 0);
    CU_ASSERT_EQUAL(stat(path, &sb), 0);
    CU_ASSERT_EQUAL(sb.st_mode & 0777, 0600);
    ik_state_close(st);
    /* the CLI's way: only what exists */
    ik_state_opts ro = {.dir = base, .read_only_existing = 1};
    CU_ASSERT_EQUAL(ik_state_open(&ro, &st, &err), IK_E_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no state store at"));
    rm_store(where);
    snprintf(where, sizeof where, "%s/a", base);
    rmdir(where);
    rmdir(base);
}

/* ---------------------------------------------------------- config */

static ik_config *load(const char *state_group, ik_err *err)
{
    char text[512];
    snprintf(text, sizeof text,
             "%spipelines = ( { name = \"p\"; source = { plugin = \"x\"; }; sinks = ( { plugin = "
             "\"y\"; } ); } );\n",
             state_group);
    ik_config *cfg = NULL;
    ik_config_load_string(text, "/etc/intake/p.conf", &cfg, err);
    return cfg;
}

static void test_config_group(void)
{
    ik_err err = {0};
    ik_config *cfg = load("", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_STRING_EQUAL(cfg->state_dir, "/etc/intake/state"); /* beside the config */
    CU_ASSERT_EQUAL(cfg->state_durability, 0);
    ik_config_free(cfg);
    cfg = load("state = { dir = \"var/st\"; durability = \"full\"; };\n", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_STRING_EQUAL(cfg->state_dir, "/etc/intake/var/st");
    CU_ASSERT_EQUAL(cfg->state_durability, 1);
    ik_config_free(cfg);
    CU_ASSERT_PTR_NULL(load("state = { durability = \"off\"; };\n", &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/etc/intake/p.conf:1: state.durability must be normal "
                                           "or full; got the string \"off\""));
    CU_ASSERT_PTR_NULL(load("state = { dir = \"\"; };\n", &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "state.dir is empty"));
    CU_ASSERT_PTR_NULL(load("state = \"/var/lib/intake\";\n", &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "state must be a group"));
    CU_ASSERT_PTR_NULL(load("state = { dir = \"/dev/null\"; };\n", &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "state.dir /dev/null is not a folder"));
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("state", NULL, NULL);
    if (!s) {
        CU_cleanup_registry();
        return 1;
    }
    CU_add_test(s, "put, get, delete, versions", test_put_get_delete);
    CU_add_test(s, "namespaces isolated", test_namespaces_isolated);
    CU_add_test(s, "TTL on a moved clock, purge", test_ttl);
    CU_add_test(s, "compare-and-set under 4 threads", test_cas_threads);
    CU_add_test(s, "ledger with cursors and trim", test_ledger);
    CU_add_test(s, "transactions commit and roll back", test_transactions);
    CU_add_test(s, "bad arguments have messages", test_bad_arguments);
    CU_add_test(s, "store failure: message and health", test_store_failure_health);
    CU_add_test(s, "corrupt file refused at open", test_corrupt_refused);
    CU_add_test(s, "created on first write", test_created_on_first_write);
    CU_add_test(s, "config: the state group", test_config_group);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    unsigned errs = CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return fails || errs ? 1 : 0;
}
