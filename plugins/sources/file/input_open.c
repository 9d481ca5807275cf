/*
 * input_open.c: opens the file source's input safely (see input_open.h).
 * Every part of a relative path is opened from the folder's descriptor with
 * O_NOFOLLOW, so no link anywhere in it leads out of the folder; the one
 * exception, a final link allowed by `symlinks = "inside"`, is resolved with
 * realpath(), checked to lie inside the folder, and checked again on the
 * descriptor once open (through /proc/self/fd) in case it changed between.
 */
#include "input_open.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/file.h"

#define LINK_SKIPPED "symbolic link (not followed; see option 'symlinks')"

/* What a non-regular file type is, for the log. */
static const char *kind_of(mode_t mode)
{
    if (S_ISFIFO(mode))
        return "FIFO (named pipe)";
    if (S_ISSOCK(mode))
        return "socket";
    if (S_ISCHR(mode))
        return "character device";
    if (S_ISBLK(mode))
        return "block device";
    if (S_ISDIR(mode))
        return "directory named like an input file";
    if (S_ISLNK(mode))
        return LINK_SKIPPED;
    return "not a regular file";
}

int in_check(const in_folder *in, const struct stat *lsb, char *why, size_t size)
{
    if (S_ISREG(lsb->st_mode) || (S_ISLNK(lsb->st_mode) && in->links_inside))
        return 0;
    snprintf(why, size, "%s", kind_of(lsb->st_mode));
    return 1;
}

/* 1 when the resolved path p is `root` or lies below it. */
static int is_inside(const char *p, const char *root)
{
    size_t n = strlen(root);
    if (n > 0 && root[n - 1] == '/')
        n--;
    return strncmp(p, root, n) == 0 && (p[n] == '/' || p[n] == '\0');
}

/* The reason for an open() that failed with e on an entry whose lstat() is
 * *lsb: 1 (skip) with `why`, or -e for errors that are not about the entry. */
static int open_failed(int e, const struct stat *lsb, char *why, size_t size)
{
    if (e == EACCES || e == EPERM) {
        snprintf(why, size, "permission denied (mode %04o, owner uid %u; intake runs as uid %u)",
                 (unsigned)(lsb->st_mode & 07777), (unsigned)lsb->st_uid, (unsigned)geteuid());
        return 1;
    }
    if (e == ELOOP) {
        snprintf(why, size, "%s", LINK_SKIPPED);
        return 1;
    }
    if (e == ENXIO || e == ENODEV || e == ETXTBSY || e == EISDIR) {
        snprintf(why, size, "%s", kind_of(lsb->st_mode));
        return 1;
    }
    return -e;
}

/*
 * Opens the symbolic link <in->path>/<rel> (links_inside): only when it
 * resolves to a file inside the folder, checked again on the descriptor.
 */
static int open_link_inside(const in_folder *in, const char *rel, int *fd, struct stat *sb,
                            char *why, size_t size)
{
    char *full = NULL, *real = NULL;
    if (asprintf(&full, "%s/%s", in->path, rel) < 0)
        return -ENOMEM;
    real = realpath(full, NULL);
    free(full);
    if (!real) {
        int e = errno;
        if (e == ENOMEM)
            return -ENOMEM;
        snprintf(why, size, "symbolic link that does not resolve (%s)", strerror(e));
        return 1;
    }
    if (!is_inside(real, in->real)) {
        snprintf(why, size, "symbolic link to %s, outside the input folder (not followed)", real);
        free(real);
        return 1;
    }
    int f = ik_open_regular_at(AT_FDCWD, real, O_NOFOLLOW, sb);
    if (f == -IK_ENOTREG) {
        free(real);
        snprintf(why, size, "%s", kind_of(sb->st_mode));
        return 1;
    }
    if (f < 0) {
        struct stat lsb;
        if (lstat(real, &lsb) != 0)
            memset(&lsb, 0, sizeof lsb);
        free(real);
        return open_failed(-f, &lsb, why, size);
    }
    free(real);
    /* The link, or a folder on its way, may have changed since realpath():
     * the descriptor says where the file really is. */
    char proc[64], now[4096];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", f);
    ssize_t n = readlink(proc, now, sizeof now - 1);
    if (n > 0) {
        now[n] = '\0';
        if (!is_inside(now, in->real)) {
            snprintf(why, size, "symbolic link that led outside the input folder when opened");
            close(f);
            return 1;
        }
    }
    *fd = f;
    return 0;
}

/* Opens each folder of rel's path in turn from dfd (taken) with O_NOFOLLOW;
 * returns the last folder's descriptor and sets *last to rel's last part, or
 * a negative errno (1 and `why` when a part is a link or not a folder). */
static int open_parents(int dfd, const char *rel, const char **last, char *why, size_t size)
{
    const char *p = rel, *slash;
    while ((slash = strchr(p, '/'))) {
        char part[256];
        size_t n = (size_t)(slash - p);
        if (n == 0 || n >= sizeof part) {
            close(dfd);
            return -EINVAL;
        }
        memcpy(part, p, n);
        part[n] = '\0';
        int nd = openat(dfd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        close(dfd);
        if (nd < 0) {
            if (e == ELOOP || e == ENOTDIR) {
                snprintf(why, size, "'%s' on its path is not a folder but a symbolic link or file",
                         part);
                return -ELOOP;
            }
            return -e;
        }
        dfd = nd;
        p = slash + 1;
    }
    *last = p;
    return dfd;
}

int in_open(const in_folder *in, const char *rel, int *fd, struct stat *sb, char *why, size_t size)
{
    *fd = -1;
    memset(sb, 0, sizeof *sb);
    why[0] = '\0';
    int dfd = open(in->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    const char *name = rel;
    dfd = open_parents(dfd, rel, &name, why, size);
    if (dfd < 0)
        return dfd == -ELOOP && why[0] ? 1 : dfd;
    int f = ik_open_regular_at(dfd, name, O_NOFOLLOW, sb);
    if (f == -IK_ENOTREG) {
        close(dfd);
        snprintf(why, size, "%s", kind_of(sb->st_mode));
        return 1;
    }
    if (f < 0) {
        int e = -f;
        struct stat lsb;
        if (fstatat(dfd, name, &lsb, AT_SYMLINK_NOFOLLOW) != 0)
            memset(&lsb, 0, sizeof lsb);
        close(dfd);
        *sb = lsb;
        if (e == ELOOP && in->links_inside)
            return open_link_inside(in, rel, fd, sb, why, size);
        return open_failed(e, &lsb, why, size);
    }
    close(dfd);
    *fd = f;
    return 0;
}
