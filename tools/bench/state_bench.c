/*
 * state_bench.c: the state store's puts/s and gets/s (tools/bench/state runs
 * it), single thread and several, through the engine's service
 * (engine/state.c on the SQLite backend: one connection behind a mutex) and,
 * as baselines on the same schema and machine, raw sqlite3 calls with one
 * shared connection behind a mutex and with one connection per thread.
 *
 *   bench_state [--ops N] [--threads T] [--durability normal|full] [--dir DIR]
 *
 * Each case starts from an empty store in DIR (default: a folder in /tmp),
 * puts N keys of 100 bytes (split over the threads, each put its own
 * transaction), then gets N random ones of them.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "state.h"

#define VALUE_LEN 100

typedef enum variant { V_SERVICE, V_RAW_SHARED, V_RAW_PER_THREAD } variant;

static const char *const variant_name[] = {"intake state store", "raw sqlite3, shared connection",
                                           "raw sqlite3, connection per thread"};

/* A raw connection with its two statements prepared once, as the
 * backend caches its own. */
typedef struct conn {
    sqlite3 *db;
    sqlite3_stmt *put, *get;
} conn;

typedef struct bench {
    variant v;
    const char *dir;
    int full;
    long ops;
    int threads;
    ik_state *st;
    conn shared;
    pthread_mutex_t mu;
    int failures;
} bench;

typedef struct worker {
    bench *b;
    int index;
    int gets;
    conn own;
} worker;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A raw connection set up as the backend sets up its own; 0 or -1. */
static int raw_open(const bench *b, conn *c)
{
    static const char put_sql[] =
        "INSERT INTO kv(ns,key,value,version) VALUES('b/b',?1,?2,1) ON CONFLICT(ns,key) DO "
        "UPDATE SET value=excluded.value, version=kv.version+1";
    static const char get_sql[] = "SELECT value, version FROM kv WHERE ns='b/b' AND key=?1";
    char path[512];
    snprintf(path, sizeof path, "%s/raw.db", b->dir);
    if (sqlite3_open_v2(path, &c->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        return -1;
    sqlite3_busy_timeout(c->db, 5000);
    sqlite3_exec(c->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
    sqlite3_exec(c->db, b->full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", NULL,
                 NULL, NULL);
    sqlite3_exec(c->db,
                 "CREATE TABLE IF NOT EXISTS kv(ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB "
                 "NOT NULL, version INTEGER NOT NULL, PRIMARY KEY(ns,key)) WITHOUT ROWID",
                 NULL, NULL, NULL);
    if (sqlite3_prepare_v3(c->db, put_sql, -1, SQLITE_PREPARE_PERSISTENT, &c->put, NULL) ||
        sqlite3_prepare_v3(c->db, get_sql, -1, SQLITE_PREPARE_PERSISTENT, &c->get, NULL))
        return -1;
    return 0;
}

static void raw_close(conn *c)
{
    sqlite3_finalize(c->put);
    sqlite3_finalize(c->get);
    sqlite3_close(c->db);
    *c = (conn){0};
}

/* One raw put or get on c (the caller serialises a shared one). */
static int raw_op(conn *c, int get, const char *key, const char *value)
{
    sqlite3_stmt *st = get ? c->get : c->put;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (!get)
        sqlite3_bind_blob(st, 2, value, VALUE_LEN, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static int one_op(worker *w, int get, const char *key, const char *value)
{
    bench *b = w->b;
    if (b->v == V_SERVICE) {
        if (get) {
            ik_buf buf = {0};
            int rc = ik_state_get(b->st, NULL, "b/b", key, &buf, NULL);
            free(buf.p);
            return rc;
        }
        return ik_state_write(b->st, NULL, "b/b", key, IK_STATE_PUT, 0, value, VALUE_LEN, 0, NULL);
    }
    if (b->v == V_RAW_PER_THREAD)
        return raw_op(&w->own, get, key, value);
    pthread_mutex_lock(&b->mu);
    int rc = raw_op(&b->shared, get, key, value);
    pthread_mutex_unlock(&b->mu);
    return rc;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    bench *b = w->b;
    long per = b->ops / b->threads;
    char key[32], value[VALUE_LEN];
    memset(value, 'v', sizeof value);
    unsigned seed = (unsigned)w->index * 7919u + 1u;
    for (long i = 0; i < per; i++) {
        long k = w->gets ? (long)(rand_r(&seed) % (unsigned)per) : i;
        snprintf(key, sizeof key, "k%d-%ld", w->index, k);
        if (one_op(w, w->gets, key, value) != 0)
            __atomic_add_fetch(&b->failures, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

/* Runs one phase (puts or gets) over the threads; returns ops/s. */
static double phase(bench *b, worker *ws, int gets)
{
    pthread_t t[64];
    double t0 = now_s();
    for (int i = 0; i < b->threads; i++) {
        ws[i].gets = gets;
        pthread_create(&t[i], NULL, worker_main, &ws[i]);
    }
    for (int i = 0; i < b->threads; i++)
        pthread_join(t[i], NULL);
    return (double)(b->ops / b->threads * b->threads) / (now_s() - t0);
}

static void clean(const char *dir)
{
    static const char *const names[] = {
        "state.db", "state.db-wal", "state.db-shm", "raw.db", "raw.db-wal", "raw.db-shm", NULL};
    char p[600];
    for (int i = 0; names[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
}

/* Sets up one variant, runs puts then gets, prints a line. */
static int run_case(bench *b)
{
    clean(b->dir);
    worker ws[64] = {0};
    ik_err err = {0};
    if (b->v == V_SERVICE) {
        ik_state_opts o = {.dir = b->dir,
                           .durability = b->full ? IK_STATE_FULL : IK_STATE_NORMAL,
                           .create_now = 1};
        if (ik_state_open(&o, &b->st, &err) != 0) {
            fprintf(stderr, "bench_state: %s\n", err.msg);
            return 1;
        }
    } else if (b->v == V_RAW_SHARED && raw_open(b, &b->shared) != 0) {
        fprintf(stderr, "bench_state: cannot open %s/raw.db\n", b->dir);
        return 1;
    }
    for (int i = 0; i < b->threads; i++) {
        ws[i] = (worker){.b = b, .index = i};
        if (b->v == V_RAW_PER_THREAD && raw_open(b, &ws[i].own) != 0)
            return 1;
    }
    b->failures = 0;
    double puts = phase(b, ws, 0);
    int put_failures = b->failures;
    double gets = phase(b, ws, 1);
    char failed[96] = "";
    if (b->failures)
        snprintf(failed, sizeof failed, "  (%d puts and %d gets failed)", put_failures,
                 b->failures - put_failures);
    printf("  %-36s %2d thread(s)  %9.0f puts/s  %9.0f gets/s%s\n", variant_name[b->v], b->threads,
           puts, gets, failed);
    fflush(stdout);
    for (int i = 0; i < b->threads; i++)
        raw_close(&ws[i].own);
    raw_close(&b->shared);
    ik_state_close(b->st);
    b->st = NULL;
    clean(b->dir);
    return b->failures != 0;
}

int main(int argc, char **argv)
{
    bench b = {.ops = 20000, .threads = 4};
    const char *dir = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ops"))
            b.ops = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            b.threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--durability"))
            b.full = !strcmp(argv[i + 1], "full");
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else {
            fprintf(stderr, "usage: bench_state [--ops N] [--threads T] [--durability "
                            "normal|full] [--dir DIR]\n");
            return 2;
        }
    }
    if (b.ops < 1 || b.threads < 1 || b.threads > 64) {
        fprintf(stderr, "bench_state: --ops >= 1, --threads 1..64\n");
        return 2;
    }
    char tmp[] = "/tmp/intake-bench-state-XXXXXX";
    if (!dir && !(dir = mkdtemp(tmp))) {
        perror("mkdtemp");
        return 1;
    }
    b.dir = dir;
    pthread_mutex_init(&b.mu, NULL);
    printf("state store: %ld puts then %ld gets of 100-byte values, durability %s, SQLite %s, %s\n",
           b.ops, b.ops, b.full ? "full" : "normal", sqlite3_libversion(), dir);
    int failed = 0;
    int counts[2] = {1, b.threads};
    for (int c = 0; c < (b.threads > 1 ? 2 : 1); c++) {
        for (int v = V_SERVICE; v <= V_RAW_PER_THREAD; v++) {
            if (v == V_RAW_PER_THREAD && counts[c] == 1)
                continue; /* the same as shared with one thread */
            bench run = b;
            run.v = (variant)v;
            run.threads = counts[c];
            failed |= run_case(&run);
        }
    }
    if (dir == tmp)
        rmdir(dir);
    return failed;
}
