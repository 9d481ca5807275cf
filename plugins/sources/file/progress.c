/*
 * progress.c: the settled-index ledger of one input file and its progress
 * file, plus the small filesystem helpers (mkdir -p, atomic write) the file
 * source shares. See progress.h.
 */
#include "progress.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/buf.h"
#include "common/file.h"

int pg_set(pg_ledger *l, unsigned long index)
{
    if (index == 0 || index > PG_MAX_INDEX)
        return -1;
    size_t w = (index - 1) / 64;
    if (w >= l->words) {
        size_t words = l->words;
        uint64_t *grown = ik_array_grow(l->bits, &words, w + 1, sizeof *grown);
        if (!grown)
            return -1;
        memset(grown + l->words, 0, (words - l->words) * sizeof *grown);
        l->bits = grown;
        l->words = words;
    }
    uint64_t bit = 1ull << ((index - 1) % 64);
    if (!(l->bits[w] & bit)) {
        l->bits[w] |= bit;
        l->count++;
    }
    return 0;
}

int pg_test(const pg_ledger *l, unsigned long index)
{
    if (index == 0)
        return 0;
    size_t w = (index - 1) / 64;
    if (w >= l->words)
        return 0;
    return (l->bits[w] >> ((index - 1) % 64)) & 1u;
}

void pg_free(pg_ledger *l)
{
    free(l->bits);
    memset(l, 0, sizeof *l);
}

char *pg_ranges(const pg_ledger *l)
{
    ik_buf s = {0};
    ik_buf_add(&s, "", 0); /* no ranges: the empty string */
    unsigned long max = (unsigned long)l->words * 64;
    unsigned long i = 1;
    while (i <= max) {
        if (!pg_test(l, i)) {
            i++;
            continue;
        }
        unsigned long j = i;
        while (j + 1 <= max && pg_test(l, j + 1))
            j++;
        char part[48];
        int n = (i == j) ? snprintf(part, sizeof part, "%s%lu", s.len ? "," : "", i)
                         : snprintf(part, sizeof part, "%s%lu-%lu", s.len ? "," : "", i, j);
        ik_buf_add(&s, part, (size_t)n);
        i = j + 1;
    }
    return ik_buf_take(&s); /* NULL when out of memory */
}

static int parse_num(const char *s, size_t *p, unsigned long *v)
{
    if (s[*p] < '0' || s[*p] > '9')
        return -1;
    unsigned long x = 0;
    while (s[*p] >= '0' && s[*p] <= '9') {
        x = x * 10 + (unsigned long)(s[*p] - '0');
        if (x > PG_MAX_INDEX)
            return -1;
        (*p)++;
    }
    *v = x;
    return 0;
}

int pg_parse_ranges(pg_ledger *l, const char *ranges, char *err, size_t errsize)
{
    size_t p = 0;
    if (!ranges[0])
        return 0;
    for (;;) {
        unsigned long a, b;
        if (parse_num(ranges, &p, &a) != 0 || a == 0) {
            snprintf(err, errsize, "at %zu: expected an index from 1 to %lu", p + 1, PG_MAX_INDEX);
            return -1;
        }
        b = a;
        if (ranges[p] == '-') {
            p++;
            if (parse_num(ranges, &p, &b) != 0 || b < a) {
                snprintf(err, errsize, "at %zu: expected the end of the range %lu-", p + 1, a);
                return -1;
            }
        }
        for (unsigned long i = a; i <= b; i++) {
            if (pg_set(l, i) != 0) {
                snprintf(err, errsize, "out of memory");
                return -1;
            }
        }
        if (ranges[p] == '\0')
            return 0;
        if (ranges[p] != ',') {
            snprintf(err, errsize, "at %zu: expected ',' or '-'", p + 1);
            return -1;
        }
        p++;
    }
}

int pg_mkdirs(const char *path)
{
    char *tmp = strdup(path);
    if (!tmp)
        return -ENOMEM;
    int rc = 0;
    for (char *p = tmp + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
                rc = -errno;
                break;
            }
            *p = c;
            if (c == '\0')
                break;
        }
    }
    if (rc == 0) {
        struct stat st;
        if (stat(path, &st) != 0)
            rc = -errno;
        else if (!S_ISDIR(st.st_mode))
            rc = -ENOTDIR;
    }
    free(tmp);
    return rc;
}

/* Writes data to a new file at `path` and fsyncs it. Returns 0 or -errno. */
static int write_synced(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = 0;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        off += (size_t)n;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

int pg_write_unique(const char *dir, const char *stem, const char *data, size_t len,
                    unsigned long seq, char **out_path)
{
    char *tmp = NULL, *path = NULL;
    *out_path = NULL;
    if (asprintf(&tmp, "%s/.%s.tmp.%ld.%lu", dir, stem, (long)getpid(), seq) < 0)
        return -ENOMEM;
    int rc = write_synced(tmp, data, len);
    for (int k = 1; rc == 0 && k <= 10000; k++) {
        free(path);
        path = NULL;
        int n = k == 1 ? asprintf(&path, "%s/%s.json", dir, stem)
                       : asprintf(&path, "%s/%s-%d.json", dir, stem, k);
        if (n < 0) {
            path = NULL;
            rc = -ENOMEM;
            break;
        }
        if (link(tmp, path) == 0)
            break;
        if (errno == EEXIST) {
            if (k == 10000)
                rc = -EEXIST;
            continue;
        }
        /* No hard links here (some network filesystems): check, then rename. */
        if (access(path, F_OK) == 0)
            continue;
        if (rename(tmp, path) != 0)
            rc = -errno;
        break;
    }
    unlink(tmp); /* the name stays linked at path */
    free(tmp);
    if (rc == 0)
        *out_path = path;
    else
        free(path);
    return rc;
}

int pg_write_atomic(const char *path, const char *data, size_t len, unsigned long seq)
{
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
    const char *base = slash ? slash + 1 : path;
    size_t tlen = dirlen + strlen(base) + 64;
    char *tmp = malloc(tlen);
    if (!tmp)
        return -ENOMEM;
    snprintf(tmp, tlen, "%.*s.%s.tmp.%ld.%lu", (int)dirlen, path, base, (long)getpid(), seq);
    int rc = write_synced(tmp, data, len);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

int pg_save(const pg_ledger *l, const char *path, const char *file, uint64_t size, char *err,
            size_t errsize)
{
    char *ranges = pg_ranges(l);
    json_object *o = json_object_new_object();
    if (!ranges || !o) {
        free(ranges);
        json_object_put(o);
        snprintf(err, errsize, "out of memory");
        return -ENOMEM;
    }
    json_object_object_add(o, "file", json_object_new_string(file));
    json_object_object_add(o, "size", json_object_new_int64((int64_t)size));
    json_object_object_add(o, "settled", json_object_new_string(ranges));
    free(ranges);
    const char *text =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    char *dir = strdup(path);
    int rc = -ENOMEM;
    if (dir) {
        char *slash = strrchr(dir, '/');
        rc = 0;
        if (slash && slash != dir) {
            *slash = '\0';
            rc = pg_mkdirs(dir);
            if (rc != 0)
                snprintf(err, errsize, "cannot create %s: %s", dir, strerror(-rc));
        }
        if (rc == 0) {
            rc = pg_write_atomic(path, text, strlen(text), 0);
            if (rc != 0)
                snprintf(err, errsize, "cannot write %s: %s", path, strerror(-rc));
        }
        free(dir);
    } else {
        snprintf(err, errsize, "out of memory");
    }
    json_object_put(o);
    return rc;
}

int pg_load(pg_ledger *l, const char *path, uint64_t size, char *err, size_t errsize)
{
    /* The shared reader never waits on a FIFO someone left in its place. */
    char *text = NULL;
    int e = ik_read_file(path, &text, NULL, err, errsize);
    if (e == ENOENT)
        return 0;
    if (e != 0)
        return -1;
    enum json_tokener_error jerr = json_tokener_success;
    json_object *o = json_tokener_parse_verbose(text, &jerr);
    free(text);
    if (!o || !json_object_is_type(o, json_type_object)) {
        snprintf(err, errsize, "%s: not a progress file (%s)", path,
                 o || jerr == json_tokener_success ? "not a JSON object"
                                                   : json_tokener_error_desc(jerr));
        json_object_put(o);
        return -1;
    }
    json_object *js = NULL, *jr = NULL;
    int rc = -1;
    if (!json_object_object_get_ex(o, "size", &js) || !json_object_is_type(js, json_type_int) ||
        !json_object_object_get_ex(o, "settled", &jr) ||
        !json_object_is_type(jr, json_type_string)) {
        snprintf(err, errsize, "%s: needs an integer \"size\" and a string \"settled\"", path);
    } else if ((uint64_t)json_object_get_int64(js) != size) {
        snprintf(err, errsize, "%s: written for a file of %lld bytes, the file now has %llu", path,
                 (long long)json_object_get_int64(js), (unsigned long long)size);
    } else {
        char what[256];
        pg_ledger tmp = {0};
        if (pg_parse_ranges(&tmp, json_object_get_string(jr), what, sizeof what) != 0) {
            snprintf(err, errsize, "%s: \"settled\" %s", path, what);
        } else {
            rc = 1;
            for (size_t w = 0; w < tmp.words; w++) {
                for (unsigned b = 0; b < 64 && rc == 1; b++) {
                    if ((tmp.bits[w] >> b) & 1u) {
                        if (pg_set(l, (unsigned long)(w * 64 + b + 1)) != 0) {
                            snprintf(err, errsize, "out of memory");
                            rc = -1;
                        }
                    }
                }
            }
        }
        pg_free(&tmp);
    }
    json_object_put(o);
    return rc;
}
