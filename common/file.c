/*
 * file.c: reading a whole file (see file.h). The gpt_batch processor's
 * prompt and the tokenizer's rank file both come in this way.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "file.h"

int ik_read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
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
