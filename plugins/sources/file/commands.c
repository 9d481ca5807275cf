/*
 * commands.c: the `file` source's control commands (see commands.h). They
 * run on the engine's admin thread, concurrently with run() and settle():
 * rescan only sets a flag run() reads between polls; replay_dead_letters
 * works on the dead-letter folder, which settle() only adds complete files
 * to (each written under a temporary dot-name, then linked), and puts each
 * file into the input folder whole (link(2), which never overwrites), under
 * a name no file of this run had: "replay-<unix time>-<n>-<dead letter>".
 */
#include "commands.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sorted_names.h"

#define REPLAY_DEFAULT_LIMIT 1000
#define REPLAY_MAX_LIMIT     100000
#define WAIT_SLICE_MS        100
#define REPLAY_NAME_TRIES    100 /* names tried per dead letter before giving up */

int fs_ctl_wait(fs_ctl *c, uint64_t ms)
{
    uint64_t left = ms;
    while (left > 0) {
        if (atomic_exchange(&c->rescan, 0))
            return 0;
        uint64_t slice = left < WAIT_SLICE_MS ? left : WAIT_SLICE_MS;
        if (c->host->wait_ms(c->self, slice))
            return 1;
        left -= slice;
    }
    return c->host->stopping(c->self);
}

/* Only {} or no argument. */
static int check_no_args(json_object *args, char *reason, size_t len)
{
    if (!args ||
        (json_object_is_type(args, json_type_object) && json_object_object_length(args) == 0))
        return 0;
    snprintf(reason, len, "rescan takes no argument (send no body or {})");
    return IK_E_INVAL;
}

static int cmd_rescan(void *arg, json_object *args, json_object **reply, char *reason, size_t len)
{
    fs_ctl *c = arg;
    int rc = check_no_args(args, reason, len);
    if (rc != 0)
        return rc;
    if (c->single || !c->follow || atomic_load(&c->run_done)) {
        snprintf(reason, len, "%s",
                 c->single    ? "the source reads a single file, not a folder"
                 : !c->follow ? "follow = false: the folder is read once per run, not polled"
                              : "the source has stopped reading");
        return IK_E_STATE;
    }
    atomic_store(&c->rescan, 1);
    json_object *o = json_object_new_object();
    if (!o || json_object_object_add(o, "rescan", json_object_new_string("requested")) ||
        json_object_object_add(o, "folder", json_object_new_string(c->folder))) {
        json_object_put(o);
        return IK_E_NOMEM;
    }
    *reply = o;
    return 0;
}

/* The "limit" argument of replay_dead_letters: 0 or IK_E_INVAL with why. */
static int replay_limit(json_object *args, long *limit, char *reason, size_t len)
{
    *limit = REPLAY_DEFAULT_LIMIT;
    if (!args)
        return 0;
    if (!json_object_is_type(args, json_type_object)) {
        snprintf(reason, len, "the argument must be an object like {\"limit\": 100}");
        return IK_E_INVAL;
    }
    json_object_object_foreach(args, key, val)
    {
        if (strcmp(key, "limit") != 0) {
            snprintf(reason, len, "unknown key \"%.64s\" (allowed: limit)", key);
            return IK_E_INVAL;
        }
        int64_t v = json_object_get_int64(val);
        if (!json_object_is_type(val, json_type_int) || v < 1 || v > REPLAY_MAX_LIMIT) {
            snprintf(reason, len, "\"limit\" must be an integer from 1 to %d", REPLAY_MAX_LIMIT);
            return IK_E_INVAL;
        }
        *limit = (long)v;
    }
    return 0;
}

/* 1 for a complete dead letter: a regular file "*.json" not hidden (a
 * dot-name is one still being written). */
static int is_dead_letter(int dirfd, const char *name)
{
    size_t n = strlen(name);
    struct stat sb;
    return name[0] != '.' && n > 5 && strcmp(name + n - 5, ".json") == 0 &&
           fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode);
}

/* The dead letters' names, sorted; 0, or -errno (ENOENT: none yet). */
static int list_dead_letters(const char *dir, sn_array *names)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (!is_dead_letter(dirfd(d), e->d_name))
            continue;
        int found;
        size_t pos = sn_find(names, sizeof(char *), e->d_name, &found);
        if (!found && !sn_insert(names, sizeof(char *), pos, e->d_name))
            rc = -ENOMEM;
    }
    closedir(d);
    return rc;
}

/* Puts src into the input folder as `to`, never over an existing file: 0,
 * -EEXIST (that name is taken; nothing moved) or another -errno. */
static int move_as(const fs_ctl *c, const char *src, const char *to)
{
    char *dst = NULL;
    if (asprintf(&dst, "%s/%s", c->folder, to) < 0)
        return -ENOMEM;
    int rc = 0;
    if (link(src, dst) == 0) {
        if (unlink(src) != 0) {
            rc = -errno; /* both exist: take the copy back, so it is not read twice */
            unlink(dst);
        }
    } else if (errno == EEXIST) {
        rc = -EEXIST;
    } else if (access(dst, F_OK) == 0) {
        rc = -EEXIST; /* no hard links here: rename, never over a file */
    } else if (rename(src, dst) != 0) {
        rc = -errno;
    }
    free(dst);
    return rc;
}

/* Moves dead letter `name` into the input folder as *to (owned), taking the
 * next number while a name is taken; 0, or -errno with nothing moved (the
 * dead letter stays). */
static int move_one(fs_ctl *c, const char *name, char **to)
{
    char *src = NULL;
    *to = NULL;
    if (asprintf(&src, "%s/%s", c->dead_dir, name) < 0)
        return -ENOMEM;
    int rc = -EEXIST;
    for (int tries = 0; rc == -EEXIST && tries < REPLAY_NAME_TRIES; tries++) {
        free(*to);
        unsigned long n = atomic_fetch_add(&c->seq, 1) + 1;
        if (asprintf(to, "replay-%lld-%lu-%s", (long long)time(NULL), n, name) < 0) {
            *to = NULL;
            rc = -ENOMEM;
            break;
        }
        rc = move_as(c, src, *to);
    }
    free(src);
    if (rc != 0) {
        free(*to);
        *to = NULL;
    }
    return rc;
}

/* Appends {"from","to"} or {"file","reason"} to arr; 0 or -1. */
static int add_pair(json_object *arr, const char *k1, const char *v1, const char *k2,
                    const char *v2)
{
    json_object *o = json_object_new_object();
    if (!o || json_object_object_add(o, k1, json_object_new_string(v1)) ||
        json_object_object_add(o, k2, json_object_new_string(v2)) ||
        json_object_array_add(arr, o)) {
        json_object_put(o);
        return -1;
    }
    return 0;
}

/* Moves up to limit dead letters, filling the reply's arrays. Returns how
 * many were moved, or -1 when out of memory. */
static long move_all(fs_ctl *c, sn_array *names, long limit, json_object *moved,
                     json_object *skipped)
{
    long count = 0;
    for (size_t i = 0; i < names->n && (long)i < limit; i++) {
        const char *name = *(char **)sn_at(names, sizeof(char *), i);
        char *to = NULL;
        int rc = move_one(c, name, &to);
        if (rc == -ENOMEM)
            return -1;
        int bad = rc == 0 ? add_pair(moved, "from", name, "to", to)
                          : add_pair(skipped, "file", name, "reason",
                                     rc == -EEXIST ? "every name tried is taken in the input folder"
                                                   : strerror(-rc));
        if (rc == 0) {
            count++;
            c->host->log(c->self, IK_LOG_INFO, "replaying dead letter %s/%s as %s/%s", c->dead_dir,
                         name, c->folder, to);
        }
        free(to);
        if (bad)
            return -1;
    }
    return count;
}

/* The reply of replay_dead_letters; NULL when out of memory. */
static json_object *replay_reply(fs_ctl *c, long count, size_t total, long limit,
                                 json_object *moved, json_object *skipped)
{
    json_object *o = json_object_new_object();
    size_t left = total > (size_t)limit ? total - (size_t)limit : 0;
    if (!o || json_object_object_add(o, "moved", json_object_new_int64(count)) ||
        json_object_object_add(o, "files", json_object_get(moved)) ||
        json_object_object_add(o, "skipped", json_object_get(skipped)) ||
        json_object_object_add(o, "left", json_object_new_int64((int64_t)left)) ||
        json_object_object_add(o, "dead_letter_dir", json_object_new_string(c->dead_dir)) ||
        json_object_object_add(o, "read",
                               json_object_new_string(c->follow && !atomic_load(&c->run_done)
                                                          ? "at the next poll"
                                                          : "on the next run"))) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static int cmd_replay(void *arg, json_object *args, json_object **reply, char *reason, size_t len)
{
    fs_ctl *c = arg;
    long limit;
    int rc = replay_limit(args, &limit, reason, len);
    if (rc != 0)
        return rc;
    if (c->single || !c->reads_name(c->source, "replay-1-1-x.json")) {
        snprintf(reason, len, "%s",
                 c->single ? "the source reads a single file: replayed files would not be read"
                           : "the source's pattern does not read replayed files "
                             "(replay-<time>-<n>-<name>.json)");
        return IK_E_STATE;
    }
    sn_array names = {0};
    rc = list_dead_letters(c->dead_dir, &names);
    if (rc != 0 && rc != -ENOENT) {
        sn_free(&names, sizeof(char *));
        snprintf(reason, len, "cannot read %s: %s", c->dead_dir, strerror(-rc));
        return rc == -ENOMEM ? IK_E_NOMEM : IK_E_IO;
    }
    json_object *moved = json_object_new_array(), *skipped = json_object_new_array();
    long count = moved && skipped ? move_all(c, &names, limit, moved, skipped) : -1;
    *reply = count < 0 ? NULL : replay_reply(c, count, names.n, limit, moved, skipped);
    json_object_put(moved);
    json_object_put(skipped);
    sn_free(&names, sizeof(char *));
    return *reply ? 0 : IK_E_NOMEM;
}

int fs_ctl_register(fs_ctl *c)
{
    const ik_host *h = c->host;
    if (!IK_HOST_HAS(h, command_register) || !h->command_register)
        return 0;
    int rc = h->command_register(c->self, "rescan",
                                 "Look at the input folder now instead of at the next poll "
                                 "(follow = true).",
                                 cmd_rescan, c);
    if (rc == 0)
        rc = h->command_register(
            c->self, "replay_dead_letters",
            "Move dead letters back into the input folder to be read again (as "
            "replay-<time>-<n>-<name>.json); {\"limit\": N} moves at most N (default 1000).",
            cmd_replay, c);
    return rc;
}
