/*
 * file.c: opening a regular file without waiting, and reading a whole file
 * (see file.h). The gpt_batch processor's prompt and the tokenizer's rank
 * file come in through ik_read_file; the config, the env file and the file
 * source's input open through ik_open_regular_at.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "buf.h"
#include "file.h"

int ik_open_regular_at(int dirfd, const char *path, int extra_flags, struct stat *st)
{
    int fd = openat(dirfd, path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY | extra_flags);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (fstat(fd, st) != 0) {
        rc = -errno;
    } else if (!S_ISREG(st->st_mode)) {
        rc = -IK_ENOTREG;
    } else {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0)
            rc = -errno;
    }
    if (rc != 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int ik_read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    *out = NULL;
    struct stat st;
    int fd = ik_open_regular_at(AT_FDCWD, path, 0, &st);
    if (fd == -IK_ENOTREG) {
        snprintf(err, errlen, "%s: not a regular file", path);
        return EINVAL;
    }
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (!f) {
        int e = fd < 0 ? -fd : errno;
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
        return e;
    }
    ik_buf b = {0};
    char chunk[65536];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0)
        ik_buf_add(&b, chunk, r);
    int ioerr = ferror(f);
    fclose(f);
    if (ioerr) {
        ik_buf_free(&b);
        snprintf(err, errlen, "%s: read error", path);
        return EIO;
    }
    size_t n = b.len;
    if (!(*out = ik_buf_take(&b))) {
        snprintf(err, errlen, "%s: out of memory", path);
        return ENOMEM;
    }
    if (len)
        *len = n;
    return 0;
}
