/*
 * file_source.c: the `file` source (intake-file.so). Reads emails from a
 * file or a folder: JSON (.json: one object or an array of objects; .jsonl:
 * one object per line, streamed), one MIME message per .eml file, mbox
 * archives (.mbox) and Maildir folders (cur/ and new/, the folder itself or a
 * sub-folder), parsed by the email library into the email record of
 * etc/email.schema.json. It emits one record per object or message, turns
 * bad input (malformed JSON or MIME, too large) into dead letters with the
 * reason without stopping, and settles: dead letters go to a
 * dead-letter folder as replayable .json files, a file whose records are all
 * settled moves to the done folder, and a file left unfinished at shutdown
 * gets a progress file so its settled records are skipped next time.
 *
 * The inbox is outside input too: entries are opened through input_open.c
 * (no symbolic links unless `symlinks = "inside"`, nothing that is not a
 * regular file, never a blocking open), and what is skipped is logged once
 * per entry (skip_log.c) and left where it is.
 *
 * Threading: run() has its own thread; settle() comes from engine threads
 * concurrently. The per-file counters and ledgers are guarded by state->mu,
 * which is never held across a call into the host (emit/settle may call our
 * settle() synchronously).
 */
#include "file_source.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "common/buf.h"
#include "email/email.h"
#include "input_open.h"
#include "json_reader.h"
#include "progress.h"
#include "skip_log.h"
#include "sorted_names.h"

/* One input file being read or waiting for its records' outcomes. */
typedef struct fs_file {
    char *path;
    const char *base; /* points into path */
    char *rel;        /* path inside the input folder, for in_open() */
    dev_t dev;        /* identity when read: a dead letter re-reads only the same file */
    ino_t ino;
    uint64_t size;
    pg_ledger done;            /* settled indices: progress file + this run */
    unsigned long outstanding; /* handed to the engine, outcome not told yet */
    unsigned long emitted, bad, skipped, delivered, dead, released;
    int reading;      /* run() is still reading it */
    int read_done;    /* read to the end */
    int incomplete;   /* reading stopped early (shutdown or error) */
    int completed;    /* every record settled: finished by one thread */
    int had_progress; /* a progress file was loaded */
    int mime;         /* .eml / mbox / Maildir: no JSON re-read for dead letters */
    struct fs_file *next;
} fs_file;

/* Settlement handle of one record (owned by the source, freed in settle). */
typedef struct fs_rec {
    fs_file *file;
    unsigned long index, line;
    uint64_t offset; /* raw text in the file, to re-read the original for a dead letter */
    size_t size;
    int raw; /* payload is the {"raw": ...} wrapper of bad input */
} fs_rec;

typedef struct fs_state {
    const ik_host *host;
    ik_instance *self;
    char *path;   /* as configured */
    char *folder; /* path, or its dirname for a single file */
    char *real;   /* realpath of folder */
    in_folder in; /* how input is opened (points at folder and real) */
    int single;   /* path is a file */
    char **patterns;
    size_t npatterns, cappatterns;
    int follow;
    uint64_t poll_ms;
    int move;
    char *done_dir;
    char *dead_dir;
    char *progress_dir;
    char *id_field;
    size_t max_size;
    int maildir;   /* read Maildir folders */
    em_opts email; /* MIME parsing options */

    pthread_mutex_t mu;
    fs_file *files;       /* files with records not finished (guarded by mu) */
    sn_array taken;       /* names (char *) taken in this run (run thread only) */
    unsigned long seq;    /* temp-file sequence (atomic) */
    int folder_errno;     /* last scan error, for the log (run thread only) */
    sl_set skips;         /* skipped entries already logged (run thread only) */
    ik_metric *m_records; /* engine-owned metric handles (may be NULL) */
    ik_metric *m_bad;
    ik_metric *m_files;
    fs_ctl ctl; /* control commands: rescan, replay_dead_letters */
} fs_state;

/* The options, bound by the engine (plugin.h). */
typedef struct fs_config {
    const char *path;
    const char *pattern;
    int follow;
    uint64_t poll_interval_ms;
    int on_complete; /* FS_ON_COMPLETE_* */
    const char *done_dir;
    const char *dead_letter_dir;
    const char *id_field;
    int maildir;
    int attachment_content;
    int symlinks; /* FS_SYMLINKS_* */
} fs_config;

enum { FS_ON_COMPLETE_MOVE = 0, FS_ON_COMPLETE_NONE = 1 };
static const char *const fs_on_complete[] = {"move", "none", NULL};
enum { FS_SYMLINKS_SKIP = 0, FS_SYMLINKS_INSIDE = 1 };
static const char *const fs_symlinks[] = {"skip", "inside", NULL};

static const ik_option fs_options[] = {
    {"path", IK_OPT_STRING, NULL, IK_OPT_REQUIRED,
     "A file or a folder to read. A folder is read in name order, one file after another.",
     IK_OPT_AT(fs_config, path)},
    {"pattern", IK_OPT_STRING, "*.json,*.jsonl,*.eml,*.mbox", 0,
     "Comma-separated fnmatch globs selecting the files of a folder. Names ending in .jsonl or "
     ".ndjson are read one object per line; .eml as one MIME message; .mbox as an mbox archive; "
     "other names as one JSON document (an object or an array of objects).",
     IK_OPT_AT(fs_config, pattern)},
    {"follow", IK_OPT_BOOL, "false", 0,
     "false: read the files there are and finish. true: keep polling the folder for new files "
     "until the engine stops.",
     IK_OPT_AT(fs_config, follow)},
    {"poll_interval", IK_OPT_DURATION, "1s", 0, "How often follow mode looks for new files.",
     IK_OPT_AT(fs_config, poll_interval_ms), .min = "1ms"},
    {"on_complete", IK_OPT_CHOICE, "move", 0,
     "What to do with a file once every record in it is delivered or dead-lettered: \"move\" it "
     "into done_dir, or \"none\" (leave it; it is read again on the next run).",
     IK_OPT_AT(fs_config, on_complete), .choices = fs_on_complete},
    {"done_dir", IK_OPT_STRING, NULL, 0,
     "Where finished files go (default <folder>/done, where folder is path, or the folder of a "
     "single file). Progress files of unfinished files live in <done_dir>/.progress.",
     IK_OPT_AT(fs_config, done_dir)},
    {"dead_letter_dir", IK_OPT_STRING, NULL, 0,
     "Where dead letters are written, one <id>.json each: the original object plus an "
     "\"intake_dead_letter\" key with reason, stage, attempts, file, index, id and time. The "
     "folder is valid input for a replay (default <folder>/dead-letter).",
     IK_OPT_AT(fs_config, dead_letter_dir)},
    {"id_field", IK_OPT_STRING, "id", 0,
     "Payload field holding the record id; when it is not a string the id is "
     "<file name>:<index> (1-based).",
     IK_OPT_AT(fs_config, id_field)},
    {"maildir", IK_OPT_BOOL, "true", 0,
     "Read Maildir folders: when the folder, or a sub-folder of it, has cur/ and new/, every "
     "message file in them is read as one MIME message (patterns do not apply).",
     IK_OPT_AT(fs_config, maildir)},
    {"attachment_content", IK_OPT_BOOL, "false", 0,
     "Put each MIME attachment's content in the record (content_base64); otherwise only its "
     "filename, content_type, size and sha256.",
     IK_OPT_AT(fs_config, attachment_content)},
    {"symlinks", IK_OPT_CHOICE, "skip", 0,
     "Symbolic links among the input files: \"skip\" leaves them where they are, unread, with a "
     "warning; \"inside\" reads a link whose target, fully resolved, is a regular file inside the "
     "input folder (links that lead out of it, to /proc or to a device are still skipped). "
     "Linked folders are never followed.",
     IK_OPT_AT(fs_config, symlinks), .choices = fs_symlinks},
    {0},
};

/* ---- small helpers ---------------------------------------------------- */

static char *join_path(const char *dir, const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s%s%s", dir, dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/", name) < 0)
        return NULL;
    return p;
}

void fs_sanitize_id(const char *id, char *out, size_t size)
{
    size_t max = size - 1 < 180 ? size - 1 : 180, o = 0;
    for (const char *p = id; *p && o < max; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-' || c == '+' || c == '@';
        out[o++] = ok ? c : '_';
    }
    if (o == 0)
        out[o++] = '_';
    out[o] = '\0';
    if (out[0] == '.')
        out[0] = '_';
}

static int has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    return n >= k && strcasecmp(name + n - k, suffix) == 0;
}

static int is_stream_name(const char *name)
{
    size_t n = strlen(name);
    return (n >= 6 && strcmp(name + n - 6, ".jsonl") == 0) ||
           (n >= 7 && strcmp(name + n - 7, ".ndjson") == 0);
}

static int matches(const fs_state *st, const char *name)
{
    for (size_t i = 0; i < st->npatterns; i++)
        if (fnmatch(st->patterns[i], name, 0) == 0)
            return 1;
    return 0;
}

/* fs_ctl's view of the pattern (patterns are fixed after create()). */
static int reads_name(const void *source, const char *name)
{
    return matches(source, name);
}

static void free_patterns(fs_state *st)
{
    for (size_t i = 0; i < st->npatterns; i++)
        free(st->patterns[i]);
    free(st->patterns);
    st->patterns = NULL;
    st->npatterns = st->cappatterns = 0;
}

/* Splits "a, b,c" into trimmed, non-empty globs. */
static int parse_patterns(fs_state *st, const char *spec)
{
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (b > a) {
            char **grown =
                ik_array_grow(st->patterns, &st->cappatterns, st->npatterns + 1, sizeof *grown);
            if (!grown)
                return IK_E_NOMEM;
            st->patterns = grown;
            st->patterns[st->npatterns] = strndup(a, (size_t)(b - a));
            if (!st->patterns[st->npatterns])
                return IK_E_NOMEM;
            st->npatterns++;
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* 1 when name was taken in this run. */
static int is_taken(const fs_state *st, const char *name)
{
    int found;
    sn_find(&st->taken, sizeof(char *), name, &found);
    return found;
}

static int taken_add(fs_state *st, const char *name)
{
    int found;
    size_t pos = sn_find(&st->taken, sizeof(char *), name, &found);
    return found || sn_insert(&st->taken, sizeof(char *), pos, name) ? 0 : IK_E_NOMEM;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* 1 for a folder that is not reached through a symbolic link at its end. */
static int is_dir(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* 1 when dir/rel (rel may be "") holds cur/ and new/ folders. */
static int is_maildir(const char *dir, const char *rel)
{
    char *cur = NULL, *nw = NULL;
    int yes = 0;
    if (asprintf(&cur, "%s/%s%scur", dir, rel, rel[0] ? "/" : "") >= 0 &&
        asprintf(&nw, "%s/%s%snew", dir, rel, rel[0] ? "/" : "") >= 0)
        yes = is_dir(cur) && is_dir(nw);
    free(cur);
    free(nw);
    return yes;
}

static int push_name(char ***names, size_t *n, size_t *cap, const char *name)
{
    char **grown = ik_array_grow(*names, cap, *n + 1, sizeof *grown);
    if (!grown)
        return -ENOMEM;
    *names = grown;
    if (!((*names)[*n] = strdup(name)))
        return -ENOMEM;
    (*n)++;
    return 0;
}

/*
 * Logs that the entry rel (its path inside the folder) is skipped, once per
 * entry and identity however many polls see it. Run thread only.
 */
static void report_skip(fs_state *st, const char *rel, const struct stat *sb, const char *why)
{
    int r = sl_note(&st->skips, rel, sb);
    if (r == 1 || r < 0)
        st->host->log(st->self, IK_LOG_WARN, "skipped %s/%s: %s; left where it is, not read",
                      st->folder, rel, why);
    else if (r == 2)
        st->host->log(st->self, IK_LOG_WARN,
                      "more than %d entries of %s are skipped; further ones are not logged one "
                      "by one",
                      SL_MAX, st->folder);
}

/*
 * Adds rel (a name read from the folder open as dirfd) to names when it is
 * not taken yet and its lstat() says it may be input; reports it skipped
 * otherwise. 0 or -ENOMEM.
 */
static int consider(fs_state *st, int dirfd, const char *name, const char *rel, char ***names,
                    size_t *n, size_t *cap)
{
    struct stat sb;
    char why[IN_WHY_MAX];
    if (is_taken(st, rel) || fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
        return 0;
    if (in_check(&st->in, &sb, why, sizeof why)) {
        report_skip(st, rel, &sb, why);
        return 0;
    }
    return push_name(names, n, cap, rel);
}

/* Adds "<rel>/new/<file>" and "<rel>/cur/<file>" (rel "" for the folder
 * itself) for every message of a Maildir not taken yet. 0 or -ENOMEM. */
static int scan_maildir(fs_state *st, const char *rel, char ***names, size_t *n, size_t *cap)
{
    static const char *const subs[] = {"new", "cur"};
    int rc = 0;
    for (size_t s = 0; s < 2 && rc == 0; s++) {
        char *dir = NULL;
        if (asprintf(&dir, "%s/%s%s%s", st->folder, rel, rel[0] ? "/" : "", subs[s]) < 0)
            return -ENOMEM;
        DIR *d = opendir(dir);
        struct dirent *e;
        while (d && rc == 0 && (e = readdir(d))) {
            char *name = NULL;
            if (e->d_name[0] == '.')
                continue;
            if (asprintf(&name, "%s%s%s/%s", rel, rel[0] ? "/" : "", subs[s], e->d_name) < 0) {
                rc = -ENOMEM;
                break;
            }
            rc = consider(st, dirfd(d), e->d_name, name, names, n, cap);
            free(name);
        }
        if (d)
            closedir(d);
        free(dir);
    }
    return rc;
}

/*
 * An entry of the folder (open as dirfd) that no pattern matches: a Maildir
 * sub-folder is scanned; a link to one is reported (linked folders are not
 * followed); anything else is not input. 0 or -ENOMEM.
 */
static int consider_other(fs_state *st, int dirfd, const char *name, char ***names, size_t *n,
                          size_t *cap)
{
    struct stat sb;
    if (!st->maildir || strcmp(name, "cur") == 0 || strcmp(name, "new") == 0 ||
        fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
        !(S_ISDIR(sb.st_mode) || S_ISLNK(sb.st_mode)))
        return 0;
    char *sub = join_path(st->folder, name);
    if (!sub)
        return -ENOMEM;
    int rc = 0;
    int excluded = strcmp(sub, st->done_dir) == 0 || strcmp(sub, st->dead_dir) == 0;
    if (!excluded && is_maildir(st->folder, name)) {
        if (S_ISDIR(sb.st_mode))
            rc = scan_maildir(st, name, names, n, cap);
        else
            report_skip(st, name, &sb, "symbolic link to a Maildir folder (not followed)");
    }
    free(sub);
    return rc;
}

/*
 * Lists the files of the folder that match the patterns, may be input (see
 * consider) and were not taken yet, and the messages of Maildir folders (the
 * folder itself or its sub-folders, as "sub/cur/name"), sorted by name.
 * Returns 0 or -errno (opendir failed).
 */
static int scan_folder(fs_state *st, char ***out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    DIR *d = opendir(st->folder);
    if (!d)
        return -errno;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        const char *name = e->d_name;
        if (name[0] == '.')
            continue;
        if (!matches(st, name)) {
            rc = consider_other(st, dirfd(d), name, &names, &n, &cap);
            continue;
        }
        char *full = join_path(st->folder, name);
        if (!full) {
            rc = -ENOMEM;
            break;
        }
        int excluded = strcmp(full, st->done_dir) == 0 || strcmp(full, st->dead_dir) == 0;
        free(full);
        if (!excluded)
            rc = consider(st, dirfd(d), name, name, &names, &n, &cap);
    }
    closedir(d);
    if (rc == 0 && st->maildir && is_maildir(st->folder, ""))
        rc = scan_maildir(st, "", &names, &n, &cap);
    if (rc != 0) {
        free_names(names, n);
        return rc;
    }
    if (n > 1)
        qsort(names, n, sizeof *names, cmp_names);
    *out = names;
    *nout = n;
    return 0;
}

static void iso_time(char *out, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static char *progress_path(const fs_state *st, const fs_file *f)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s.json", st->progress_dir, f->base) < 0)
        return NULL;
    return p;
}

static void file_free(fs_file *f)
{
    if (!f)
        return;
    pg_free(&f->done);
    free(f->path);
    free(f->rel);
    free(f);
}

/* ---- dead letters ----------------------------------------------------- */

/* Re-reads the record's original object from its file (a processor may have
 * replaced the payload since), opened as safely as when it was read. NULL
 * when the file was replaced or cannot be read. */
static json_object *reread_original(const fs_state *st, const fs_rec *h)
{
    if (h->raw || h->file->mime || h->size == 0 || h->size > st->max_size)
        return NULL;
    int fd;
    struct stat sb;
    char why[IN_WHY_MAX];
    if (in_open(&st->in, h->file->rel, &fd, &sb, why, sizeof why) != 0)
        return NULL;
    if (sb.st_dev != h->file->dev || sb.st_ino != h->file->ino) {
        close(fd);
        return NULL;
    }
    char *buf = malloc(h->size);
    json_object *obj = NULL;
    if (buf) {
        ssize_t n = pread(fd, buf, h->size, (off_t)h->offset);
        if (n == (ssize_t)h->size) {
            jr_item item;
            if (jr_parse_line("", buf, h->size, h->size, h->offset == 0 ? 1 : 2, h->index,
                              h->offset, st->max_size, &item) == 1 &&
                item.obj) {
                obj = item.obj;
                item.obj = NULL;
            }
            jr_item_clear(&item);
        }
        free(buf);
    }
    close(fd);
    return obj;
}

/*
 * Writes <dead_letter_dir>/<sanitised id>.json: the original object plus
 * "intake_dead_letter". Called from settle() without the mutex. Returns 0, or
 * a negative code with what went wrong in `why` (for settle_failed(), which
 * logs it).
 */
static int write_dead_letter(fs_state *st, ik_record *rec, const fs_rec *h,
                             const ik_failure *failure, char *why, size_t whylen)
{
    const ik_host *host = st->host;
    const char *id = host->record_id(rec);
    json_object *obj = reread_original(st, h);
    if (!obj) {
        json_object *cur = host->record_payload(rec);
        if (!cur || json_object_deep_copy(cur, &obj, NULL) != 0 || !obj) {
            json_object_put(obj);
            obj = json_object_new_object();
        }
        if (!json_object_is_type(obj, json_type_object)) {
            json_object *wrap = json_object_new_object();
            if (wrap)
                json_object_object_add(wrap, "payload", obj);
            else
                json_object_put(obj);
            obj = wrap;
        }
    }
    if (!obj) {
        snprintf(why, whylen, "out of memory writing its dead letter");
        return IK_E_NOMEM;
    }
    json_object_object_del(obj, "intake_dead_letter");
    json_object *dl = json_object_new_object();
    char when[32];
    iso_time(when, sizeof when);
    if (!dl) {
        json_object_put(obj);
        snprintf(why, whylen, "out of memory writing its dead letter");
        return IK_E_NOMEM;
    }
    json_object_object_add(
        dl, "reason",
        json_object_new_string(failure && failure->reason ? failure->reason : "dead-lettered"));
    json_object_object_add(dl, "stage",
                           json_object_new_string(failure && failure->stage ? failure->stage : ""));
    json_object_object_add(dl, "attempts",
                           json_object_new_int64(failure ? (int64_t)failure->attempts : 0));
    json_object_object_add(dl, "file", json_object_new_string(h->file->path));
    json_object_object_add(dl, "index", json_object_new_int64((int64_t)h->index));
    json_object_object_add(dl, "id", json_object_new_string(id ? id : ""));
    json_object_object_add(dl, "time", json_object_new_string(when));
    json_object_object_add(obj, "intake_dead_letter", dl);

    char safe[200];
    fs_sanitize_id(id ? id : "", safe, sizeof safe);
    int rc = pg_mkdirs(st->dead_dir);
    char *path = NULL;
    if (rc == 0) {
        const char *text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
        char *doc = NULL;
        int n = asprintf(&doc, "%s\n", text);
        if (n < 0) {
            rc = -ENOMEM;
        } else {
            /* Never overwrites another dead letter: same id gives <id>-2.json... */
            unsigned long seq = __atomic_fetch_add(&st->seq, 1, __ATOMIC_RELAXED);
            rc = pg_write_unique(st->dead_dir, safe, doc, (size_t)n, seq, &path);
            free(doc);
        }
    }
    if (rc != 0)
        snprintf(why, whylen, "cannot write its dead letter to %s: %s", path ? path : st->dead_dir,
                 strerror(-rc));
    else
        host->log(st->self, IK_LOG_DEBUG, "record '%s' dead-lettered to %s", id ? id : "", path);
    free(path);
    json_object_put(obj);
    return rc == 0 ? 0 : IK_E_IO;
}

/* ---- completion ------------------------------------------------------- */

/* With st->mu held: 1 when this caller must finish the file (exactly once). */
static int claim_completion(fs_file *f)
{
    if (f->completed || f->reading || !f->read_done || f->incomplete || f->outstanding > 0)
        return 0;
    f->completed = 1;
    return 1;
}

static void unlink_file_locked(fs_state *st, fs_file *f)
{
    for (fs_file **pp = &st->files; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            return;
        }
    }
}

/*
 * Every record of f is settled: move it to done_dir (unless some were
 * released: then its progress file is written at destroy) and forget it.
 * Called by the one thread that claimed completion, without the mutex.
 */
static void finish_file(fs_state *st, fs_file *f)
{
    const ik_host *host = st->host;
    if (f->released > 0) {
        host->log(st->self, IK_LOG_INFO,
                  "finished %s: %lu delivered, %lu dead-lettered, %lu released; kept with a "
                  "progress file for the next run",
                  f->path, f->delivered, f->dead, f->released);
        return;
    }
    char *pp = progress_path(st, f);
    if (pp) {
        if (unlink(pp) != 0 && errno != ENOENT)
            host->log(st->self, IK_LOG_WARN, "cannot remove progress file %s: %s", pp,
                      strerror(errno));
        free(pp);
    }
    const char *where = "left in place";
    char *dest = NULL;
    if (st->move) {
        int rc = pg_mkdirs(st->done_dir);
        dest = join_path(st->done_dir, f->base);
        if (rc == 0 && !dest)
            rc = -ENOMEM;
        if (rc == 0 && rename(f->path, dest) != 0)
            rc = -errno;
        if (rc != 0) {
            host->log(st->self, IK_LOG_ERROR,
                      "cannot move %s to %s: %s; it will be read again on the next run", f->path,
                      dest ? dest : st->done_dir, strerror(-rc));
            where = "not moved";
        } else {
            where = "moved to done_dir";
        }
    }
    if (st->m_files)
        host->metric_add(st->m_files, 1);
    host->log(st->self, IK_LOG_INFO, "finished %s: %lu delivered, %lu dead-lettered; %s%s%s",
              f->path, f->delivered, f->dead, where, dest ? " " : "", dest ? dest : "");
    free(dest);
    pthread_mutex_lock(&st->mu);
    unlink_file_locked(st, f);
    pthread_mutex_unlock(&st->mu);
    file_free(f);
}

/* ---- reading ---------------------------------------------------------- */

/* Writes u in decimal, with a '-' when negative, ending at end (NUL there)
 * in a buffer of at least 22 bytes; returns where the text starts. Numbers
 * are set on every record, so not snprintf (a format parse per number). */
static const char *num_text(char *end, unsigned long long u, int negative)
{
    char *p = end;
    *p = '\0';
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (negative)
        *--p = '-';
    return p;
}

/* Sets the record's priority and mirrors it in metadata "priority" (sinks
 * only see metadata). */
static void set_priority(fs_state *st, ik_record *rec, int priority)
{
    char buf[24];
    st->host->record_set_priority(rec, priority);
    unsigned long long u = priority < 0 ? 0ull - (unsigned long long)(long long)priority
                                        : (unsigned long long)priority;
    st->host->record_set_meta(rec, "priority", num_text(buf + sizeof buf - 1, u, priority < 0));
}

/* Applies the payload's "priority": an integer, or high/normal/low. */
static void apply_priority(fs_state *st, ik_record *rec, json_object *payload, const char *id)
{
    json_object *p;
    if (!json_object_object_get_ex(payload, "priority", &p) || !p)
        return;
    if (json_object_is_type(p, json_type_int)) {
        int64_t v = json_object_get_int64(p);
        if (v > INT_MAX)
            v = INT_MAX;
        if (v < INT_MIN)
            v = INT_MIN;
        set_priority(st, rec, (int)v);
        return;
    }
    if (json_object_is_type(p, json_type_string)) {
        const char *s = json_object_get_string(p);
        if (strcasecmp(s, "high") == 0) {
            set_priority(st, rec, 10);
            return;
        }
        if (strcasecmp(s, "normal") == 0) {
            set_priority(st, rec, 0);
            return;
        }
        if (strcasecmp(s, "low") == 0) {
            set_priority(st, rec, -10);
            return;
        }
    }
    st->host->log(st->self, IK_LOG_DEBUG,
                  "record '%s': priority %s ignored (want an integer or high/normal/low)", id,
                  json_object_to_json_string_ext(p, JSON_C_TO_STRING_PLAIN));
}

static int set_meta_num(const ik_host *host, ik_record *rec, const char *key, unsigned long v)
{
    char buf[24];
    return host->record_set_meta(rec, key, num_text(buf + sizeof buf - 1, v, 0));
}

/* Takes back what handle_item counted for a record it did not hand over. */
static void uncount(fs_state *st, fs_file *f, int bad)
{
    pthread_mutex_lock(&st->mu);
    f->outstanding--;
    if (bad)
        f->bad--;
    else
        f->emitted--;
    pthread_mutex_unlock(&st->mu);
}

/* The payload of a bad item: {"raw", "file", "line"}. NULL when out of memory. */
static json_object *bad_payload(fs_file *f, jr_item *item)
{
    char *raw = jr_raw_text(item->text ? item->text : "", item->text_len, JR_RAW_MAX);
    json_object *payload = json_object_new_object();
    if (!raw || !payload) {
        free(raw);
        json_object_put(payload);
        return NULL;
    }
    json_object_object_add(payload, "raw", json_object_new_string(raw));
    json_object_object_add(payload, "file", json_object_new_string(f->path));
    json_object_object_add(payload, "line", json_object_new_int64((int64_t)item->line));
    free(raw);
    return payload;
}

/*
 * Makes the record of one item (taking item->obj), with its priority and
 * metadata; *replay_of is set (owned) for a replayed dead letter. The id is
 * the id_field, else a replayed dead letter's id, else "<file>:<index>".
 * NULL when out of memory.
 */
static ik_record *make_record(fs_state *st, fs_file *f, jr_item *item, char **replay_of)
{
    const ik_host *host = st->host;
    char fallback[64 + NAME_MAX]; /* written only when used */
    if (item->error[0]) {
        snprintf(fallback, sizeof fallback, "%s:%lu", f->base, item->index);
        json_object *payload = bad_payload(f, item);
        return payload ? host->record_new(st->self, fallback, payload) : NULL;
    }
    json_object *obj = item->obj;
    item->obj = NULL;
    json_object *dl, *v;
    const char *id;
    char *orig_id = NULL;
    if (json_object_object_get_ex(obj, "intake_dead_letter", &dl) &&
        json_object_is_type(dl, json_type_object)) {
        /* A replayed dead letter: strip the envelope, remember why it failed. */
        *replay_of = strdup(json_object_object_get_ex(dl, "reason", &v) &&
                                    json_object_is_type(v, json_type_string)
                                ? json_object_get_string(v)
                                : "unknown reason");
        if (json_object_object_get_ex(dl, "id", &v) && json_object_is_type(v, json_type_string))
            orig_id = strdup(json_object_get_string(v));
        json_object_object_del(obj, "intake_dead_letter");
    }
    if (json_object_object_get_ex(obj, st->id_field, &v) &&
        json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0)
        id = json_object_get_string(v);
    else if (orig_id && orig_id[0])
        id = orig_id;
    else {
        snprintf(fallback, sizeof fallback, "%s:%lu", f->base, item->index);
        id = fallback;
    }
    ik_record *rec = host->record_new(st->self, id, obj);
    if (rec)
        apply_priority(st, rec, host->record_payload(rec), host->record_id(rec));
    free(orig_id);
    return rec;
}

/* Sets the metadata every record of the file source carries. 0 or IK_E_NOMEM. */
static int set_item_meta(fs_state *st, fs_file *f, jr_item *item, ik_record *rec,
                         const char *replay_of)
{
    const ik_host *host = st->host;
    int rc = host->record_set_meta(rec, "source", "file");
    rc = rc ? rc : host->record_set_meta(rec, "file", f->path);
    rc = rc ? rc : set_meta_num(host, rec, "index", item->index);
    rc = rc ? rc : set_meta_num(host, rec, "line", item->line);
    if (!rc && replay_of)
        rc = host->record_set_meta(rec, "replay_of", replay_of);
    return rc;
}

/* Hands a bad item's record over as dead-lettered, with a warning. */
static void reject_item(fs_state *st, jr_item *item, ik_record *rec)
{
    const ik_host *host = st->host;
    if (st->m_bad)
        host->metric_add(st->m_bad, 1);
    host->log(st->self, IK_LOG_WARN, "%s", item->error);
    int rc = host->settle(st->self, rec, IK_DEAD_LETTERED, item->error);
    if (rc != 0)
        host->log(st->self, IK_LOG_ERROR, "cannot dead-letter %s: %s", item->error,
                  host->strerror(rc));
}

/*
 * Turns one item into a record and hands it over: emit() for an object,
 * host->settle(IK_DEAD_LETTERED) for bad input. Returns 0 to go on,
 * IK_E_STOPPING to stop reading, another negative code on a fatal error.
 * The file's lock is taken once per record: the progress check and the
 * counts go together, counted before the hand-over (settle() may run before
 * emit returns) and taken back by uncount() when it does not happen.
 */
static int handle_item(fs_state *st, fs_file *f, jr_item *item)
{
    const ik_host *host = st->host;
    int bad = item->error[0] != '\0';
    pthread_mutex_lock(&st->mu);
    int skip = pg_test(&f->done, item->index);
    if (skip) {
        f->skipped++;
    } else {
        f->outstanding++;
        if (bad)
            f->bad++;
        else
            f->emitted++;
    }
    pthread_mutex_unlock(&st->mu);
    if (skip)
        return 0;
    if (host->stopping(st->self)) {
        uncount(st, f, bad);
        return IK_E_STOPPING;
    }
    fs_rec *h = calloc(1, sizeof *h);
    char *replay_of = NULL;
    ik_record *rec = h ? make_record(st, f, item, &replay_of) : NULL;
    if (!rec) {
        host->log(st->self, IK_LOG_ERROR, "cannot create a record for %s:%lu: out of memory",
                  f->path, item->line);
        free(replay_of);
        free(h);
        uncount(st, f, bad);
        return IK_E_NOMEM;
    }
    *h = (fs_rec){.file = f,
                  .index = item->index,
                  .line = item->line,
                  .offset = item->offset,
                  .size = item->size,
                  .raw = bad};
    int rc = set_item_meta(st, f, item, rec, replay_of);
    free(replay_of);
    if (rc != 0) {
        host->record_free(rec);
        free(h);
        uncount(st, f, bad);
        return rc;
    }
    host->record_set_handle(rec, h);
    if (bad) {
        reject_item(st, item, rec);
        return 0;
    }
    rc = host->emit(st->self, rec);
    if (rc != 0) {
        uncount(st, f, bad);
        host->record_free(rec);
        free(h);
        if (rc != IK_E_STOPPING)
            host->log(st->self, IK_LOG_ERROR, "cannot emit %s:%lu: %s", f->path, item->line,
                      host->strerror(rc));
        return rc;
    }
    if (st->m_records)
        host->metric_add(st->m_records, 1);
    return 0;
}

/* Reads a .jsonl file line by line. Returns like handle_item, or IK_E_IO. */
static int read_stream(fs_state *st, fs_file *f, FILE *in)
{
    jr_lines lr;
    size_t keep = st->max_size + 2 < JR_RAW_MAX ? JR_RAW_MAX : st->max_size + 2;
    json_tokener *tok = jr_tokener_new();
    if (!tok || jr_lines_init(&lr, in, keep) != 0) {
        if (tok)
            json_tokener_free(tok);
        return IK_E_NOMEM;
    }
    unsigned long index = 0;
    int rc = 0;
    for (;;) {
        const char *line;
        size_t len, full;
        uint64_t off;
        int n = jr_lines_next(&lr, &line, &len, &full, &off);
        if (n == 0)
            break;
        if (n < 0) {
            st->host->log(st->self, IK_LOG_ERROR, "cannot read %s after line %lu: %s", f->path,
                          lr.lineno, strerror(lr.error));
            rc = IK_E_IO;
            break;
        }
        jr_item item;
        if (jr_parse_line_tok(tok, f->path, line, len, full, lr.lineno, index + 1, off,
                              st->max_size, &item) == 0)
            continue;
        index++;
        rc = handle_item(st, f, &item);
        jr_item_clear(&item);
        if (rc != 0)
            break;
    }
    jr_lines_free(&lr);
    json_tokener_free(tok);
    return rc;
}

/* Reads a .json document element by element: memory stays bounded by
 * max_record_size however large the array (emit() pauses the reading). */
static int read_document(fs_state *st, fs_file *f, FILE *in)
{
    jr_doc doc;
    if (jr_doc_open(&doc, f->path, in, st->max_size) != 0)
        return IK_E_NOMEM;
    int rc = 0, n;
    jr_item item;
    while ((n = jr_doc_next(&doc, &item)) == 1) {
        rc = handle_item(st, f, &item);
        jr_item_clear(&item);
        if (rc != 0)
            break;
    }
    if (n < 0) {
        st->host->log(st->self, IK_LOG_ERROR, "cannot read %s after element %lu: %s", f->path,
                      doc.index, strerror(doc.error));
        rc = doc.error == ENOMEM ? IK_E_NOMEM : IK_E_IO;
    }
    jr_doc_close(&doc);
    return rc;
}

/* ---- MIME: .eml, Maildir messages, mbox -------------------------------- */

/*
 * Parses one message (len bytes at buf, full_len its real size: more when it
 * was cut because it is larger than max_record_size) into *item: the email
 * record, with "id" set from the Message-ID when there is one, or an error
 * saying what was wrong and where.
 */
static void mime_item(fs_state *st, fs_file *f, const char *buf, size_t len, size_t full_len,
                      unsigned long index, unsigned long line, uint64_t offset, jr_item *item)
{
    memset(item, 0, sizeof *item);
    item->text = buf;
    item->text_len = len;
    item->size = full_len;
    item->offset = offset;
    item->index = index;
    item->line = line;
    item->col = 1;
    if (full_len > st->max_size) {
        snprintf(item->error, sizeof item->error,
                 "%s:%lu: message of %zu bytes is larger than max_record_size (%zu bytes)", f->path,
                 line, full_len, st->max_size);
        return;
    }
    char name[JR_ERROR_MAX / 2];
    if (line > 1)
        snprintf(name, sizeof name, "%s:%lu", f->path, line);
    else
        snprintf(name, sizeof name, "%s", f->path);
    char err[EM_ERROR_MAX];
    json_object *rec = NULL;
    if (em_parse_mime(name, buf, len, &st->email, &rec, err, sizeof err) != 0) {
        snprintf(item->error, sizeof item->error, "%s", err);
        return;
    }
    json_object *mid;
    if (json_object_object_get_ex(rec, "message_id", &mid) &&
        json_object_is_type(mid, json_type_string) && json_object_get_string_len(mid) > 0)
        json_object_object_add(rec, "id", json_object_new_string(json_object_get_string(mid)));
    item->obj = rec;
}

/* Reads a file holding one message (.eml or a Maildir message). */
static int read_message_file(fs_state *st, fs_file *f, FILE *in)
{
    size_t want = f->size > st->max_size ? JR_RAW_MAX : (size_t)f->size;
    char *buf = malloc(want + 1);
    if (!buf)
        return IK_E_NOMEM;
    size_t len = fread(buf, 1, want, in);
    if (ferror(in)) {
        st->host->log(st->self, IK_LOG_ERROR, "cannot read %s: %s", f->path, strerror(errno));
        free(buf);
        return IK_E_IO;
    }
    jr_item item;
    mime_item(st, f, buf, len, f->size > st->max_size ? (size_t)f->size : len, 1, 1, 0, &item);
    int rc = handle_item(st, f, &item);
    jr_item_clear(&item);
    free(buf);
    return rc;
}

/* 1 for an mbox separator line: "From <sender> <date>", the date holding a
 * time "hh:mm". A body line such as "From the candidate: ..." that a writer
 * forgot to escape is not one. */
static int mbox_from(const char *line, size_t len)
{
    if (len < 5 || memcmp(line, "From ", 5) != 0)
        return 0;
    size_t i = 5;
    while (i < len && line[i] != ' ')
        i++; /* the sender */
    for (; i + 4 < len; i++)
        if (line[i] >= '0' && line[i] <= '9' && line[i + 1] >= '0' && line[i + 1] <= '9' &&
            line[i + 2] == ':' && line[i + 3] >= '0' && line[i + 3] <= '9' && line[i + 4] >= '0' &&
            line[i + 4] <= '9')
            return 1;
    return 0;
}

/* 1 for a body line that an mboxrd writer escaped: ">From ", ">>From "... */
static int mbox_escaped(const char *line, size_t len)
{
    size_t k = 0;
    while (k < len && line[k] == '>')
        k++;
    return k > 0 && len - k >= 5 && memcmp(line + k, "From ", 5) == 0;
}

/*
 * Reads an mbox archive message by message: a "From " line at the start of
 * the file or after a blank line starts a message; ">From " lines are
 * unescaped (mboxrd). Memory stays below max_record_size per message: a
 * larger message is dead-lettered as too large. Text before the first
 * separator is dead-lettered as not being mbox.
 */
static int read_mbox(fs_state *st, fs_file *f, FILE *in)
{
    jr_lines lr;
    size_t keep = st->max_size + 2 < JR_RAW_MAX ? JR_RAW_MAX : st->max_size + 2;
    if (jr_lines_init(&lr, in, keep) != 0)
        return IK_E_NOMEM;
    char *msg = NULL;
    size_t len = 0, cap = 0, full = 0;
    unsigned long index = 0, start_line = 1;
    uint64_t start_off = 0;
    int have = 0, prev_blank = 1, junk = 0, rc = 0;
    for (;;) {
        const char *line;
        size_t llen, lfull;
        uint64_t off;
        int r = jr_lines_next(&lr, &line, &llen, &lfull, &off);
        if (r < 0) {
            st->host->log(st->self, IK_LOG_ERROR, "cannot read %s after line %lu: %s", f->path,
                          lr.lineno, strerror(lr.error));
            rc = IK_E_IO;
            break;
        }
        int sep = r > 0 && prev_blank && mbox_from(line, llen);
        if (r == 0 || sep) {
            if (have || (junk && full > 0)) {
                jr_item item;
                index++;
                if (!have) {
                    memset(&item, 0, sizeof item);
                    item.text = msg ? msg : "";
                    item.text_len = len;
                    item.size = full;
                    item.index = index;
                    item.line = 1;
                    item.col = 1;
                    snprintf(item.error, sizeof item.error,
                             "%s:1: not an mbox archive: text before the first \"From \" "
                             "separator line",
                             f->path);
                } else {
                    mime_item(st, f, msg ? msg : "", len, full, index, start_line, start_off,
                              &item);
                }
                rc = handle_item(st, f, &item);
                jr_item_clear(&item);
                if (rc != 0)
                    break;
            }
            if (r == 0)
                break;
            have = 1;
            junk = 0;
            len = full = 0;
            start_line = lr.lineno;
            start_off = off;
            prev_blank = 0;
            continue;
        }
        prev_blank = llen == 0 || (llen == 1 && line[0] == '\r');
        if (!have) {
            if (prev_blank)
                continue;
            junk = 1;
        }
        /* mboxrd: ">From ", ">>From "... lose one '>' */
        if (mbox_escaped(line, llen)) {
            line++;
            llen--;
            lfull--;
        }
        full += lfull + 1;
        if (full <= st->max_size) {
            char *g = ik_array_grow(msg, &cap, len + llen + 2, 1);
            if (!g) {
                rc = IK_E_NOMEM;
                break;
            }
            msg = g;
            memcpy(msg + len, line, llen);
            len += llen;
            msg[len++] = '\n';
        }
    }
    free(msg);
    jr_lines_free(&lr);
    return rc;
}

/* Loads the file's progress ledger, if any, and logs that reading starts. */
static void load_progress(fs_state *st, fs_file *f)
{
    const ik_host *host = st->host;
    char *pp = progress_path(st, f);
    if (pp) {
        char err[512];
        int lr = pg_load(&f->done, pp, f->size, err, sizeof err);
        if (lr < 0) {
            host->log(st->self, IK_LOG_WARN, "ignoring progress file: %s", err);
            pg_free(&f->done);
        }
        f->had_progress = lr > 0;
        free(pp);
    }
    if (f->had_progress)
        host->log(st->self, IK_LOG_INFO, "reading %s (resuming: %lu records already settled)",
                  f->path, f->done.count);
    else
        host->log(st->self, IK_LOG_INFO, "reading %s", f->path);
}

/*
 * Reads one file, open as fd (taken; *sb its fstat), from start to end (or
 * until stopping). rel is its path inside the folder. Returns 0,
 * IK_E_STOPPING, or a negative code for a fatal error.
 */
static int read_file(fs_state *st, const char *rel, int fd, const struct stat *sb,
                     int maildir_message)
{
    const ik_host *host = st->host;
    fs_file *f = calloc(1, sizeof *f);
    FILE *in = NULL;
    if (!f || !(f->path = join_path(st->folder, rel)) || !(f->rel = strdup(rel)) ||
        !(in = fdopen(fd, "rb"))) {
        file_free(f);
        close(fd);
        return IK_E_NOMEM;
    }
    const char *slash = strrchr(f->path, '/');
    f->base = slash ? slash + 1 : f->path;
    f->mime = maildir_message || has_suffix(f->base, ".eml") ? 1
              : has_suffix(f->base, ".mbox")                 ? 2
                                                             : 0;
    f->reading = 1;
    f->size = (uint64_t)sb->st_size;
    f->dev = sb->st_dev;
    f->ino = sb->st_ino;
    load_progress(st, f);

    pthread_mutex_lock(&st->mu);
    f->next = st->files;
    st->files = f;
    pthread_mutex_unlock(&st->mu);

    int rc;
    if (f->mime == 1)
        rc = read_message_file(st, f, in);
    else if (f->mime == 2)
        rc = read_mbox(st, f, in);
    else if (is_stream_name(f->base))
        rc = read_stream(st, f, in);
    else
        rc = read_document(st, f, in);
    fclose(in);

    pthread_mutex_lock(&st->mu);
    f->reading = 0;
    f->read_done = 1;
    f->incomplete = rc != 0;
    unsigned long emitted = f->emitted, bad = f->bad, skipped = f->skipped;
    int finish = claim_completion(f);
    pthread_mutex_unlock(&st->mu);
    host->log(st->self, IK_LOG_INFO, "read %s%s: %lu records emitted, %lu bad, %lu skipped",
              f->path,
              rc == IK_E_STOPPING ? " up to shutdown"
              : rc != 0           ? " partly (error)"
                                  : "",
              emitted, bad, skipped);
    if (finish)
        finish_file(st, f);
    /* A file that cannot be read is logged and left for the next run; the
     * folder goes on. */
    return rc == IK_E_IO ? 0 : rc;
}

/*
 * Opens the entry rel of the folder and reads it, taking its name so it is
 * not read again this run. An entry that is not a regular file (or an
 * allowed link to one) is reported once and left alone, not taken: a later
 * poll looks again. Returns like read_file.
 */
static int take_entry(fs_state *st, const char *rel, int maildir_message)
{
    int fd;
    struct stat sb;
    char why[IN_WHY_MAX];
    int r = in_open(&st->in, rel, &fd, &sb, why, sizeof why);
    if (r == 1) {
        report_skip(st, rel, &sb, why);
        return 0;
    }
    if (r == -ENOENT) /* gone since the scan (another engine took it?) */
        return 0;
    if (r < 0) {
        snprintf(why, sizeof why, "cannot open: %s", strerror(-r));
        report_skip(st, rel, &sb, why);
        return 0;
    }
    int rc = taken_add(st, rel);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    return read_file(st, rel, fd, &sb, maildir_message);
}

/* One pass over the folder: reads every new matching file in name order. */
static int read_folder_once(fs_state *st, int *found)
{
    char **names;
    size_t n;
    *found = 0;
    int rc = scan_folder(st, &names, &n);
    if (rc != 0) {
        if (-rc != st->folder_errno) /* log each new problem once */
            st->host->log(st->self, IK_LOG_ERROR, "cannot read folder %s: %s", st->folder,
                          strerror(-rc));
        st->folder_errno = -rc;
        return IK_E_IO;
    }
    st->folder_errno = 0;
    size_t before = st->taken.n;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (st->host->stopping(st->self)) {
            rc = IK_E_STOPPING;
            break;
        }
        rc = take_entry(st, names[i], strchr(names[i], '/') != NULL);
    }
    *found = st->taken.n > before;
    if (rc == 0) /* a full pass: forget skipped entries that are gone */
        sl_sweep(&st->skips);
    free_names(names, n);
    return rc;
}

/* Reads the input until it is exhausted (follow = false) or the engine
 * stops; a rescan command cuts the wait between polls short. */
static int fs_read_all(fs_state *st)
{
    int rc = 0;
    if (st->single) {
        const char *slash = strrchr(st->path, '/');
        rc = take_entry(st, slash ? slash + 1 : st->path, 0);
        if (rc == 0 && st->follow)
            while (!st->host->wait_ms(st->self, st->poll_ms))
                ;
        return rc == IK_E_STOPPING ? 0 : rc;
    }
    for (;;) {
        int found = 0;
        rc = read_folder_once(st, &found);
        if (rc == IK_E_STOPPING)
            return 0;
        if (rc != 0 && (rc != IK_E_IO || !st->follow))
            return rc;
        if (!st->follow || st->host->stopping(st->self))
            return 0;
        if (!found && fs_ctl_wait(&st->ctl, st->poll_ms))
            return 0;
    }
}

static int fs_run(void *state)
{
    fs_state *st = state;
    int rc = fs_read_all(st);
    atomic_store(&st->ctl.run_done, 1);
    return rc;
}

static void fs_settle(void *state, ik_record *rec, ik_outcome outcome, const ik_failure *failure)
{
    fs_state *st = state;
    const ik_host *host = st->host;
    fs_rec *h = host->record_handle(rec);
    if (!h) {
        host->log(st->self, IK_LOG_WARN, "settle: record '%s' has no file handle; ignored",
                  host->record_id(rec));
        return;
    }
    int written = 1;
    char why[IK_REASON_MAX];
    if (outcome == IK_DEAD_LETTERED && !(failure && failure->stored))
        written = write_dead_letter(st, rec, h, failure, why, sizeof why) == 0;
    if (!written) {
        /* Kept: the file stays with a progress file and the record is read
         * again next run. The engine counts it so (not as dead-lettered). */
        if (IK_HOST_HAS(host, settle_failed) && host->settle_failed)
            host->settle_failed(st->self, rec, why);
        else
            host->log(st->self, IK_LOG_ERROR,
                      "record '%s' %s; it stays unsettled and is read again next run",
                      host->record_id(rec), why);
    }
    fs_file *f = h->file;
    pthread_mutex_lock(&st->mu);
    switch (outcome) {
    case IK_DELIVERED:
        pg_set(&f->done, h->index);
        f->delivered++;
        break;
    case IK_DEAD_LETTERED:
        if (written) {
            pg_set(&f->done, h->index);
            f->dead++;
        } else {
            f->released++;
        }
        break;
    default:
        f->released++;
        break;
    }
    if (f->outstanding > 0)
        f->outstanding--;
    int finish = claim_completion(f);
    pthread_mutex_unlock(&st->mu);
    host->record_set_handle(rec, NULL);
    free(h);
    if (finish)
        finish_file(st, f);
}

static int fs_health(void *state, ik_health *out)
{
    fs_state *st = state;
    DIR *d = opendir(st->folder);
    if (!d) {
        out->ok = 0;
        snprintf(out->reason, sizeof out->reason, "cannot read folder %s: %s", st->folder,
                 strerror(errno));
        return 0;
    }
    closedir(d);
    if (st->single && access(st->path, R_OK) != 0 && errno != ENOENT) {
        out->ok = 0;
        snprintf(out->reason, sizeof out->reason, "cannot read %s: %s", st->path, strerror(errno));
        return 0;
    }
    out->ok = 1;
    snprintf(out->reason, sizeof out->reason, "reading %s", st->path);
    return 0;
}

/* Writes the progress files of files left unfinished, then frees everything.
 * Runs on the main thread once run() has returned and records are settled. */
static void fs_destroy(void *state)
{
    fs_state *st = state;
    if (!st)
        return;
    fs_file *f = st->files;
    while (f) {
        fs_file *next = f->next;
        if (f->outstanding > 0)
            st->host->log(st->self, IK_LOG_WARN,
                          "%s: %lu records still had no outcome at shutdown; they are read "
                          "again next run",
                          f->path, f->outstanding);
        if (f->done.count > 0) {
            char *pp = progress_path(st, f);
            char err[512];
            if (!pp)
                st->host->log(st->self, IK_LOG_ERROR, "cannot save progress of %s: out of memory",
                              f->path);
            else if (pg_save(&f->done, pp, f->path, f->size, err, sizeof err) != 0)
                st->host->log(st->self, IK_LOG_ERROR, "cannot save progress of %s: %s", f->path,
                              err);
            else
                st->host->log(st->self, IK_LOG_INFO,
                              "saved progress of %s: %lu records settled, the rest is read next "
                              "run",
                              f->path, f->done.count);
            free(pp);
        }
        file_free(f);
        f = next;
    }
    sn_free(&st->taken, sizeof(char *));
    free_patterns(st);
    sl_free(&st->skips);
    pthread_mutex_destroy(&st->mu);
    free(st->path);
    free(st->folder);
    free(st->real);
    free(st->done_dir);
    free(st->dead_dir);
    free(st->progress_dir);
    free(st->id_field);
    free(st);
}

/* Checks that `path` names a folder or a regular file (stat into sb): 0, or
 * the error, logged. Used by check() (validate) and again by create(). */
static int fs_check_path(const ik_host *host, ik_instance *self, const char *path, struct stat *sb)
{
    if (!path || !path[0]) {
        host->log(self, IK_LOG_ERROR, "option 'path' must name a file or a folder");
        return IK_E_CONFIG;
    }
    if (stat(path, sb) != 0) {
        host->log(self, IK_LOG_ERROR, "path %s: %s", path, strerror(errno));
        return IK_E_NOTFOUND;
    }
    if (!S_ISDIR(sb->st_mode) && !S_ISREG(sb->st_mode)) {
        host->log(self, IK_LOG_ERROR, "path %s is neither a file nor a folder", path);
        return IK_E_CONFIG;
    }
    return 0;
}

/* 1 when a comma-separated pattern list holds at least one glob. */
static int has_glob(const char *pattern)
{
    return pattern && pattern[strspn(pattern, ", \t")] != '\0';
}

/* check(): what create() would refuse about the input, found by `intake
 * validate` too: the path exists and is a folder or a regular file, and the
 * pattern has a glob. */
static int fs_check(const ik_host *host, ik_instance *self, const void *config)
{
    const fs_config *cfg = config;
    struct stat sb;
    int rc = fs_check_path(host, self, cfg->path, &sb);
    if (rc == 0 && !has_glob(cfg->pattern)) {
        host->log(self, IK_LOG_ERROR, "option 'pattern' has no glob: \"%s\"",
                  cfg->pattern ? cfg->pattern : "");
        rc = IK_E_CONFIG;
    }
    return rc;
}

static int fs_create(const ik_host *host, ik_instance *self, const void *config, void **state)
{
    const fs_config *cfg = config;
    fs_state *st = calloc(1, sizeof *st);
    if (!st)
        return IK_E_NOMEM;
    st->host = host;
    st->self = self;
    pthread_mutex_init(&st->mu, NULL);
    int rc = IK_E_NOMEM;
    const char *path = cfg->path;
    const char *pattern = cfg->pattern;
    const char *id_field = cfg->id_field;
    struct stat sb;
    if ((rc = fs_check_path(host, self, path, &sb)) != 0) /* again: it may have changed */
        goto fail;
    rc = IK_E_NOMEM;
    st->path = strdup(path);
    if (!st->path)
        goto fail;
    while (strlen(st->path) > 1 && st->path[strlen(st->path) - 1] == '/')
        st->path[strlen(st->path) - 1] = '\0';
    if (S_ISDIR(sb.st_mode)) {
        st->folder = strdup(st->path);
    } else {
        st->single = 1;
        const char *slash = strrchr(st->path, '/');
        st->folder = slash ? strndup(st->path, slash == st->path ? 1 : (size_t)(slash - st->path))
                           : strdup(".");
    }
    if (!st->folder)
        goto fail;
    /* The configured folder is trusted, links and all: input must stay inside
     * where it really is. */
    st->real = realpath(st->folder, NULL);
    if (!st->real) {
        host->log(self, IK_LOG_ERROR, "path %s: %s", st->folder, strerror(errno));
        rc = errno == ENOMEM ? IK_E_NOMEM : IK_E_NOTFOUND;
        goto fail;
    }
    st->in.path = st->folder;
    st->in.real = st->real;
    st->in.links_inside = cfg->symlinks == FS_SYMLINKS_INSIDE;
    const char *done = cfg->done_dir;
    const char *dead = cfg->dead_letter_dir;
    st->done_dir = done && done[0] ? strdup(done) : join_path(st->folder, "done");
    st->dead_dir = dead && dead[0] ? strdup(dead) : join_path(st->folder, "dead-letter");
    st->id_field = strdup(id_field && id_field[0] ? id_field : "id");
    if (!st->done_dir || !st->dead_dir || !st->id_field)
        goto fail;
    st->progress_dir = join_path(st->done_dir, ".progress");
    if (!st->progress_dir)
        goto fail;
    if (parse_patterns(st, pattern ? pattern : "*.json,*.jsonl,*.eml,*.mbox") != 0)
        goto fail;
    if (st->npatterns == 0) {
        host->log(self, IK_LOG_ERROR, "option 'pattern' has no glob: \"%s\"", pattern);
        rc = IK_E_CONFIG;
        goto fail;
    }
    st->follow = cfg->follow;
    st->poll_ms = cfg->poll_interval_ms;
    st->move = cfg->on_complete == FS_ON_COMPLETE_MOVE;
    st->m_records = host->counter(self, "records_total", "Objects read and emitted");
    st->m_bad = host->counter(self, "bad_records_total",
                              "Lines or elements that were not valid JSON objects or too large");
    st->m_files = host->counter(self, "files_done_total",
                                "Files whose records were all delivered or dead-lettered");
    st->maildir = cfg->maildir;
    st->email.keep_content = cfg->attachment_content;
    em_init();
    st->max_size = host->max_record_size(self);
    if (st->max_size == 0)
        st->max_size = 256 * 1024;
    st->ctl = (fs_ctl){.host = host,
                       .self = self,
                       .folder = st->folder,
                       .dead_dir = st->dead_dir,
                       .single = st->single,
                       .follow = st->follow,
                       .reads_name = reads_name,
                       .source = st};
    if ((rc = fs_ctl_register(&st->ctl)) != 0)
        goto fail;
    *state = st;
    return 0;
fail:
    if (rc == IK_E_NOMEM)
        host->log(self, IK_LOG_ERROR, "out of memory");
    fs_destroy(st);
    return rc;
}

static const ik_plugin fs_plugin = {
    IK_PLUGIN_HEAD,
    .name = "file",
    .version = "1.0.0",
    .description = "Reads emails from a file or a folder (.json documents, .jsonl streams, .eml "
                   "messages, .mbox archives, Maildir folders); moves finished files to done_dir "
                   "and dead letters to dead_letter_dir.",
    .kind = IK_KIND_SOURCE,
    .options = fs_options,
    .config_size = sizeof(fs_config),
    .check = fs_check,
    .create = fs_create,
    .destroy = fs_destroy,
    .health = fs_health,
    .run = fs_run,
    .settle = fs_settle,
};

const ik_plugin *fs_descriptor(void)
{
    return &fs_plugin;
}

IK_PLUGIN_EXPORT(fs_plugin)
