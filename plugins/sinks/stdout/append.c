/*
 * append.c: appending whole lines to the stdout sink's output, repairing a
 * line torn by a crash before anything is glued onto it (see append.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "append.h"

#define AP_SCAN_CHUNK 16384 /* bytes read per step when looking back for a line start */

/* A read-only descriptor on the file behind fd (opened by path when there
 * is one, checked to be the same file; else through /proc), for looking at
 * its end: the write descriptor is usually write-only. -1 with errno set. */
static int open_view(int fd, const char *path)
{
    struct stat w, r;
    char proc[64];
    if (!path) {
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        path = proc;
    }
    int rfd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (rfd < 0)
        return -1;
    if (fstat(fd, &w) != 0 || fstat(rfd, &r) != 0 || w.st_dev != r.st_dev || w.st_ino != r.st_ino) {
        close(rfd);
        errno = ESTALE; /* renamed or replaced between the two opens */
        return -1;
    }
    return rfd;
}

/* Sets up the tail check when fd is a regular file written in append mode. */
static void setup_view(ap_file *f, const char *path)
{
    struct stat sb;
    int fl = fcntl(f->fd, F_GETFL);
    if (fl < 0 || !(fl & O_APPEND) || fstat(f->fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        return;
    f->appending = 1;
    f->rfd = open_view(f->fd, path);
    if (f->rfd < 0)
        f->rerr = errno;
}

int ap_open(ap_file *f, const char *path, char *err, size_t errlen)
{
    *f = (ap_file){.fd = -1, .rfd = -1, .part_at = -1};
    if (!path || !path[0] || strcmp(path, "-") == 0) {
        f->fd = STDOUT_FILENO;
        setup_view(f, NULL);
        return 0;
    }
    f->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0644);
    if (f->fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open %s for append: %s", path, strerror(e));
        return e;
    }
    f->own_fd = 1;
    setup_view(f, path);
    return 0;
}

void ap_close(ap_file *f)
{
    if (f->rfd >= 0)
        close(f->rfd);
    if (f->own_fd && f->fd >= 0)
        close(f->fd);
    f->fd = f->rfd = -1;
}

/* Where the line ending at byte `end` (exclusive) of rfd starts: just after
 * the last '\n' before it, or 0. -1 when the file cannot be read. */
static long long line_start(int rfd, long long end)
{
    char buf[AP_SCAN_CHUNK];
    long long pos = end;
    while (pos > 0) {
        size_t want = pos < (long long)sizeof buf ? (size_t)pos : sizeof buf;
        ssize_t got = pread(rfd, buf, want, (off_t)(pos - (long long)want));
        if (got < 0 && errno == EINTR)
            continue;
        if (got != (ssize_t)want)
            return -1;
        const char *nl = memrchr(buf, '\n', want);
        if (nl)
            return pos - (long long)want + (long long)(nl - buf) + 1;
        pos -= (long long)want;
    }
    return 0;
}

/* Finds a torn last line: through the read view when there is one (it also
 * sees what another writer left), else from our own failed append. */
static int find_torn(ap_file *f, ap_torn *torn)
{
    if (f->rfd < 0) {
        if (f->partial) {
            off_t end = f->part_at >= 0 ? lseek(f->fd, 0, SEEK_END) : -1;
            torn->found = 1;
            torn->offset = end >= 0 ? f->part_at : -1;
            torn->len = end >= 0 ? (long long)end - f->part_at : 0;
        }
        return 0;
    }
    struct stat sb;
    if (fstat(f->rfd, &sb) != 0)
        return errno;
    if (sb.st_size == 0)
        return 0;
    char last;
    ssize_t got;
    do
        got = pread(f->rfd, &last, 1, sb.st_size - 1);
    while (got < 0 && errno == EINTR);
    if (got < 0)
        return errno;
    if (got == 1 && last != '\n') {
        torn->found = 1;
        torn->offset = line_start(f->rfd, (long long)sb.st_size);
        torn->len = torn->offset >= 0 ? (long long)sb.st_size - torn->offset : 0;
    }
    return 0;
}

/* write(2)s data[0..n) until all of it is out; 0 or errno. *done gets how
 * much went out. */
static int write_all(int fd, const char *data, size_t n, size_t *done)
{
    size_t off = 0;
    int err = 0;
    while (off < n) {
        ssize_t w = write(fd, data + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            err = w < 0 ? errno : EIO;
            break;
        }
        off += (size_t)w;
    }
    *done = off;
    return err;
}

/* After a failed append that wrote `done` bytes of data: when the output
 * now ends inside a line, remembers it and, in a file, where it starts. */
static void note_partial(ap_file *f, const char *data, size_t done)
{
    if (done == 0 || data[done - 1] == '\n')
        return;
    const char *nl = memrchr(data, '\n', done);
    size_t tail = nl ? done - (size_t)(nl + 1 - data) : done;
    off_t end = lseek(f->fd, 0, SEEK_CUR); /* O_APPEND: just after our bytes */
    f->partial = 1;
    f->part_at = end >= 0 ? (long long)end - (long long)tail : -1;
}

static void lock(ap_file *f, int op)
{
    if (!f->appending)
        return;
    /* a filesystem without locks still gets single whole-line writes */
    while (flock(f->fd, op) != 0 && errno == EINTR)
        ;
}

int ap_append(ap_file *f, const char *data, size_t n, ap_torn *torn)
{
    *torn = (ap_torn){.found = 0, .offset = -1, .len = 0};
    lock(f, LOCK_EX);
    size_t done = 0;
    int err = find_torn(f, torn);
    if (!err && torn->found)
        err = write_all(f->fd, "\n", 1, &done);
    if (!err)
        f->partial = 0;
    if (!err && n > 0) {
        err = write_all(f->fd, data, n, &done);
        if (err)
            note_partial(f, data, done);
    }
    lock(f, LOCK_UN);
    return err;
}
