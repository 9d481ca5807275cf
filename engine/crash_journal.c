/*
 * crash_journal.c: the poison-record journal (see crash_journal.h): the slot
 * file, what it says after a crash, and the crash counts in the state store.
 *
 * Slot file: a 16-byte header ("IKCJ", version 1, nslots, slot size, each
 * u32 in host order), then nslots slots. A slot is a u32 length (0: no call)
 * and that many bytes "stage\0plugin\0source\0id\0id\0...". The length is
 * stored last, so a slot is either empty or whole.
 */
#include "crash_journal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "instance.h"
#include "log.h"
#include "state.h"

#define CJ_MAGIC   "IKCJ"
#define CJ_VERSION 1u
#define CJ_HEADER  16u

typedef struct cj_count {
    char *key;    /* "stage/source/id", owned */
    size_t idlen; /* length of the "source/id" part after the stage */
    unsigned count;
} cj_count;

struct ik_cjournal {
    struct ik_state *st;
    char ns[320];
    char *path;
    const char *pipeline;
    int fd;
    unsigned char *map;
    size_t map_len, nslots;
    pthread_mutex_t mu;
    cj_count *counts; /* unsorted; few */
    size_t ncounts, cap;
    atomic_size_t live; /* counts above 0: the lookup's fast path */
};

static unsigned char *slot_at(ik_cjournal *j, size_t slot)
{
    return j->map + CJ_HEADER + slot * (size_t)IK_CJ_SLOT_SIZE;
}

/* ---------------------------------------------------------- counts */

static const char *source_of(const ik_record *rec)
{
    return rec->source && rec->source->spec ? rec->source->spec->name : "-";
}

/* The count entry whose key is exactly `key`, or NULL (j->mu held). */
static cj_count *count_find(ik_cjournal *j, const char *key)
{
    for (size_t i = 0; i < j->ncounts; i++)
        if (strcmp(j->counts[i].key, key) == 0)
            return &j->counts[i];
    return NULL;
}

/* Sets key's count in memory (adding the entry). 0 or IK_E_NOMEM. */
static int count_set(ik_cjournal *j, const char *key, unsigned count)
{
    cj_count *c = count_find(j, key);
    if (!c) {
        if (j->ncounts == j->cap) {
            size_t cap = j->cap ? j->cap * 2 : 16;
            cj_count *n = realloc(j->counts, cap * sizeof *n);
            if (!n)
                return IK_E_NOMEM;
            j->counts = n;
            j->cap = cap;
        }
        const char *slash = strchr(key, '/');
        char *k = strdup(key);
        if (!k || !slash)
            return free(k), IK_E_NOMEM;
        c = &j->counts[j->ncounts++];
        *c = (cj_count){.key = k, .idlen = strlen(slash + 1), .count = 0};
    }
    if (c->count == 0 && count)
        atomic_fetch_add(&j->live, 1);
    else if (c->count && count == 0)
        atomic_fetch_sub(&j->live, 1);
    c->count = count;
    return 0;
}

typedef struct load_ctx {
    ik_cjournal *j;
    char **keys;
    size_t n, cap;
} load_ctx;

static void load_key(void *arg, const ik_state_key_info *k)
{
    load_ctx *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **n = realloc(l->keys, cap * sizeof *n);
        if (!n)
            return;
        l->keys = n;
        l->cap = cap;
    }
    if ((l->keys[l->n] = strdup(k->key)))
        l->n++;
}

/* Reads key's count from the store (0 when absent or not a number). */
static unsigned store_count(ik_cjournal *j, const char *key)
{
    ik_buf v = {0};
    unsigned count = 0;
    if (ik_state_get(j->st, NULL, j->ns, key, &v, NULL) == 0 && v.p) {
        char *end;
        unsigned long c = strtoul(v.p, &end, 10);
        if (end != v.p && *end == '\0' && c < 1000000)
            count = (unsigned)c;
        else
            ik_logf(IK_LOG_WARN, j->pipeline, NULL,
                    "crash journal: state store key '%s' in namespace '%s' is not a count; "
                    "ignored",
                    key, j->ns);
    }
    free(v.p);
    return count;
}

/* Loads every count of the pipeline's namespace into memory. */
static int counts_load(ik_cjournal *j)
{
    load_ctx l = {.j = j};
    int rc = ik_state_list_keys(j->st, j->ns, load_key, &l);
    for (size_t i = 0; i < l.n; i++) {
        unsigned c = store_count(j, l.keys[i]);
        if (rc == 0 && c && strchr(l.keys[i], '/'))
            rc = count_set(j, l.keys[i], c);
        free(l.keys[i]);
    }
    free(l.keys);
    return rc;
}

/* One more crash for key, in memory and in the store (TTL renewed). */
static void count_crash(ik_cjournal *j, const char *key)
{
    if (strlen(key) > IK_STATE_KEY_MAX) {
        ik_logf(IK_LOG_WARN, j->pipeline, NULL,
                "crash journal: record key '%.60s...' is longer than %u bytes; its crash is not "
                "counted",
                key, IK_STATE_KEY_MAX);
        return;
    }
    cj_count *c = count_find(j, key);
    unsigned n = (c ? c->count : 0) + 1;
    char text[16];
    int len = snprintf(text, sizeof text, "%u", n);
    if (ik_state_write(j->st, NULL, j->ns, key, IK_STATE_PUT, 0, text, (size_t)len, IK_CJ_TTL_MS,
                       NULL) != 0)
        ik_logf(IK_LOG_ERROR, j->pipeline, NULL, "crash journal: %s", ik_state_last_error());
    if (count_set(j, key, n) != 0)
        ik_logf(IK_LOG_ERROR, j->pipeline, NULL, "crash journal: out of memory");
}

unsigned ik_cjournal_crashes(ik_cjournal *j, const char *stage, const ik_record *rec)
{
    if (!j || atomic_load_explicit(&j->live, memory_order_relaxed) == 0 || !rec->id)
        return 0;
    const char *src = source_of(rec);
    size_t sl = strlen(stage), srl = strlen(src), il = strlen(rec->id);
    unsigned count = 0;
    pthread_mutex_lock(&j->mu);
    for (size_t i = 0; i < j->ncounts; i++) {
        const char *k = j->counts[i].key;
        if (j->counts[i].count && j->counts[i].idlen == srl + 1 + il &&
            strncmp(k, stage, sl) == 0 && k[sl] == '/' && strncmp(k + sl + 1, src, srl) == 0 &&
            k[sl + 1 + srl] == '/' && strcmp(k + sl + srl + 2, rec->id) == 0) {
            count = j->counts[i].count;
            break;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return count;
}

void ik_cjournal_forget(ik_cjournal *j, const ik_record *rec)
{
    if (!j || atomic_load_explicit(&j->live, memory_order_relaxed) == 0 || !rec->id)
        return;
    const char *src = source_of(rec);
    size_t srl = strlen(src), il = strlen(rec->id);
    pthread_mutex_lock(&j->mu);
    for (size_t i = 0; i < j->ncounts; i++) {
        cj_count *c = &j->counts[i];
        if (!c->count || c->idlen != srl + 1 + il)
            continue;
        const char *tail = c->key + strlen(c->key) - c->idlen;
        if (strncmp(tail, src, srl) != 0 || tail[srl] != '/' || strcmp(tail + srl + 1, rec->id))
            continue;
        if (ik_state_delete(j->st, NULL, j->ns, c->key, 0) != 0)
            ik_logf(IK_LOG_WARN, j->pipeline, NULL, "crash journal: %s", ik_state_last_error());
        count_set(j, c->key, 0);
    }
    pthread_mutex_unlock(&j->mu);
}

size_t ik_cjournal_size(ik_cjournal *j)
{
    return j ? atomic_load(&j->live) : 0;
}

/* ------------------------------------------------- the previous run's file */

/* Counts one crash for each id of a noted slot `s` (len bytes, checked
 * well-formed by the caller: ends with NUL). */
static void slot_count(ik_cjournal *j, const char *s, size_t len)
{
    const char *stage = s, *plugin = stage + strlen(stage) + 1;
    const char *source = plugin + strlen(plugin) + 1;
    const char *end = s + len;
    if (source >= end)
        return;
    char key[IK_STATE_KEY_MAX + 64];
    for (const char *id = source + strlen(source) + 1; id < end; id += strlen(id) + 1) {
        snprintf(key, sizeof key, "%s/%s/%s", stage, source, id);
        ik_logf(IK_LOG_WARN, j->pipeline, stage,
                "record %s was inside a call of plugin '%s' when the last run died; counting "
                "one crash",
                id, plugin);
        count_crash(j, key);
    }
}

/* Checks one slot of the old file; 0 with *len set (0: empty), or -1 after
 * logging what is wrong where. */
static int slot_check(ik_cjournal *j, const unsigned char *p, size_t slot_size, size_t index,
                      size_t off, uint32_t *len)
{
    memcpy(len, p, sizeof *len);
    const char *why = NULL;
    if (*len == 0)
        return 0;
    if (*len > slot_size - 4)
        why = "its length runs past the slot";
    else if (p[4 + *len - 1] != '\0')
        why = "its text does not end with NUL";
    else if (!memchr(p + 4, '\0', *len) || p[4] == '\0')
        why = "it names no stage";
    else {
        size_t fields = 0;
        for (uint32_t i = 0; i < *len; i++)
            fields += p[4 + i] == '\0';
        if (fields < 3)
            why = "it has fewer than 3 fields (stage, plugin, source)";
    }
    if (!why)
        return 0;
    ik_logf(IK_LOG_WARN, j->pipeline, NULL,
            "crash journal %s: slot %zu at byte %zu is damaged (%s); ignored", j->path, index, off,
            why);
    return -1;
}

/* Parses the previous run's file (size bytes at data) and counts its
 * crashes. A bad header makes the whole file ignored, with the reason. */
static void old_file_count(ik_cjournal *j, const unsigned char *data, size_t size)
{
    uint32_t ver = 0, n = 0, ss = 0;
    const char *why = NULL;
    if (size < CJ_HEADER || memcmp(data, CJ_MAGIC, 4) != 0)
        why = "it does not start with the journal's magic";
    else {
        memcpy(&ver, data + 4, 4);
        memcpy(&n, data + 8, 4);
        memcpy(&ss, data + 12, 4);
        if (ver != CJ_VERSION)
            why = "unknown version";
        else if (ss < 64 || ss > (1u << 24))
            why = "slot size out of range";
        else if ((size - CJ_HEADER) / ss < n)
            why = "shorter than its slots";
    }
    if (why) {
        ik_logf(IK_LOG_WARN, j->pipeline, NULL,
                "crash journal %s: %s (byte 0); ignored, no crash counted from it", j->path, why);
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        size_t off = CJ_HEADER + (size_t)i * ss;
        uint32_t len;
        if (slot_check(j, data + off, ss, i, off, &len) == 0 && len)
            slot_count(j, (const char *)data + off + 4, len);
    }
}

/* Reads the file left by the last run (if any) and counts its crashes. */
static void old_file_read(ik_cjournal *j)
{
    struct stat sb;
    if (fstat(j->fd, &sb) != 0 || sb.st_size == 0)
        return;
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, j->fd, 0);
    if (m == MAP_FAILED) {
        ik_logf(IK_LOG_WARN, j->pipeline, NULL, "crash journal %s: cannot read it: %s", j->path,
                strerror(errno));
        return;
    }
    old_file_count(j, m, (size_t)sb.st_size);
    munmap(m, (size_t)sb.st_size);
}

/* ------------------------------------------------------------ open */

/* Makes a fresh, zeroed file of nslots and maps it shared. */
static int new_file_map(ik_cjournal *j, ik_err *err)
{
    j->map_len = CJ_HEADER + j->nslots * (size_t)IK_CJ_SLOT_SIZE;
    if (ftruncate(j->fd, 0) != 0 || ftruncate(j->fd, (off_t)j->map_len) != 0)
        return ik_err_set(err, IK_E_IO, "crash journal %s: cannot size it: %s", j->path,
                          strerror(errno));
    void *m = mmap(NULL, j->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, j->fd, 0);
    if (m == MAP_FAILED)
        return ik_err_set(err, IK_E_IO, "crash journal %s: cannot map it: %s", j->path,
                          strerror(errno));
    j->map = m;
    uint32_t hdr[3] = {CJ_VERSION, (uint32_t)j->nslots, IK_CJ_SLOT_SIZE};
    memcpy(j->map, CJ_MAGIC, 4);
    memcpy(j->map + 4, hdr, sizeof hdr);
    return 0;
}

/* Opens (creating) file number k and takes its lock: 0 when it is ours,
 * 1 when another running engine holds it, or a negative code. */
static int file_try(ik_cjournal *j, const char *dir, unsigned k, ik_err *err)
{
    size_t len = strlen(dir) + strlen(j->pipeline) + 48;
    free(j->path);
    if (!(j->path = malloc(len)))
        return ik_err_set(err, IK_E_NOMEM, "out of memory");
    if (k == 0)
        snprintf(j->path, len, "%s/crash-journal-%s.slots", dir, j->pipeline);
    else
        snprintf(j->path, len, "%s/crash-journal-%s.%u.slots", dir, j->pipeline, k);
    j->fd = open(j->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (j->fd < 0)
        return ik_err_set(err, IK_E_IO, "crash journal %s: cannot open it: %s", j->path,
                          strerror(errno));
    if (flock(j->fd, LOCK_EX | LOCK_NB) == 0)
        return 0;
    close(j->fd);
    j->fd = -1;
    return 1;
}

/* Takes the first journal file of the pipeline that no running engine
 * holds: engines sharing a state folder and a config each have their own
 * (the next one to take a dead engine's file counts what it left). */
static int file_open(ik_cjournal *j, const char *dir, ik_err *err)
{
    for (unsigned k = 0; k < IK_CJ_FILES; k++) {
        int rc = file_try(j, dir, k, err);
        if (rc <= 0)
            return rc;
    }
    return ik_err_set(err, IK_E_IO,
                      "crash journal: %u engines running pipeline '%s' with the state folder %s "
                      "hold every journal file",
                      IK_CJ_FILES, j->pipeline, dir);
}

int ik_cjournal_open(struct ik_state *st, const char *dir, const char *pipeline, size_t nslots,
                     ik_cjournal **out, ik_err *err)
{
    *out = NULL;
    ik_cjournal *j = calloc(1, sizeof *j);
    if (!j)
        return ik_err_set(err, IK_E_NOMEM, "out of memory");
    j->st = st;
    j->fd = -1;
    j->pipeline = pipeline;
    j->nslots = nslots;
    pthread_mutex_init(&j->mu, NULL);
    snprintf(j->ns, sizeof j->ns, "intake/crash-journal/%s", pipeline);
    int rc = file_open(j, dir, err);
    if (rc == 0 && counts_load(j) != 0)
        rc = ik_err_set(err, IK_E_IO, "crash journal: %s", ik_state_last_error());
    if (rc == 0)
        old_file_read(j);
    if (rc == 0)
        rc = new_file_map(j, err);
    if (rc != 0) {
        ik_cjournal_close(j);
        return rc;
    }
    *out = j;
    return 0;
}

void ik_cjournal_close(ik_cjournal *j)
{
    if (!j)
        return;
    if (j->map) {
        /* A clean stop: no call is running, so nothing is left to count. */
        memset(j->map + CJ_HEADER, 0, j->map_len - CJ_HEADER);
        munmap(j->map, j->map_len);
    }
    if (j->fd >= 0)
        close(j->fd);
    for (size_t i = 0; i < j->ncounts; i++)
        free(j->counts[i].key);
    free(j->counts);
    free(j->path);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* ------------------------------------------------------------ per call */

/* Appends s with its NUL at *off when it fits below lim; 0 or -1. */
static int put_field(unsigned char *p, size_t *off, size_t lim, const char *s)
{
    size_t l = strlen(s) + 1;
    if (*off + l > lim)
        return -1;
    memcpy(p + *off, s, l);
    *off += l;
    return 0;
}

void ik_cjournal_note(ik_cjournal *j, size_t slot, const char *stage, const char *plugin,
                      ik_record *const *recs, size_t n)
{
    if (!j || slot >= j->nslots || n == 0)
        return;
    unsigned char *p = slot_at(j, slot);
    size_t off = 4, lim = IK_CJ_SLOT_SIZE;
    if (put_field(p, &off, lim, stage) || put_field(p, &off, lim, plugin) ||
        put_field(p, &off, lim, source_of(recs[0])))
        return;
    for (size_t i = 0; i < n; i++)
        if (recs[i]->id && put_field(p, &off, lim, recs[i]->id) != 0)
            break; /* the rest is not noted: see IK_CJ_SLOT_SIZE */
    atomic_store_explicit((_Atomic uint32_t *)(void *)p, (uint32_t)(off - 4), memory_order_release);
}

void ik_cjournal_clear(ik_cjournal *j)
{
    for (size_t i = 0; j && i < j->nslots; i++)
        ik_cjournal_done(j, i);
}

void ik_cjournal_done(ik_cjournal *j, size_t slot)
{
    if (!j || slot >= j->nslots)
        return;
    atomic_store_explicit((_Atomic uint32_t *)(void *)slot_at(j, slot), 0, memory_order_release);
}
