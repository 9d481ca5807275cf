/*
 * append.h: the stdout sink's output file, appended to in whole lines.
 *
 * A crash (kill -9, power loss) in the middle of a write(2) can leave the
 * file ending in part of a line; whoever appends next would glue its first
 * record onto it, and a line-by-line reader would reject both. So before
 * each append the end of the file is looked at and a torn last line is
 * ended with "\n" first (its record was never confirmed to the source, so
 * it is delivered again). Each append is one write(2) of whole lines on an
 * O_APPEND descriptor, repeated for the rest only after a short write or
 * EINTR; the check and the write hold an exclusive flock(2) that every
 * Intake writer of the file takes, so writers never interleave inside a
 * line.
 *
 * Standard output gets the same care when it is a regular file opened for
 * append (`>> out.jsonl`); a pipe or a terminal is written as it is.
 * Not thread-safe: the sink serializes calls with its own mutex.
 */
#ifndef INTAKE_STDOUT_APPEND_H
#define INTAKE_STDOUT_APPEND_H

#include <stddef.h>

typedef struct ap_file {
    int fd;            /* written to; -1 when closed */
    int own_fd;        /* opened here, closed by ap_close */
    int rfd;           /* read-only view of the same file for the tail check; -1: none */
    int rerr;          /* why there is no rfd for a regular file (errno), 0 otherwise */
    int appending;     /* a regular file in append mode: tail check and lock apply */
    int partial;       /* our own failed append left the output inside a line */
    long long part_at; /* where that line starts; -1: unknown (not a file) */
} ap_file;

/* A torn line that an append ended with "\n" before writing. */
typedef struct ap_torn {
    int found;        /* 1: a torn line was ended */
    long long offset; /* byte offset where it starts; -1: unknown */
    long long len;    /* its length in bytes (when offset is known) */
} ap_torn;

/* Opens path for append (created 0644 if missing); NULL, "" or "-" is
 * standard output (not closed by ap_close). 0, or an errno value with
 * "cannot open PATH for append: why" in err. */
int ap_open(ap_file *f, const char *path, char *err, size_t errlen);

/* Appends data[0..n) (whole lines; n may be 0 to only repair the end) after
 * ending a torn last line, which *torn then describes. 0, or the errno of
 * the write that failed (part of data may be in the file: the next append
 * ends that partial line first). */
int ap_append(ap_file *f, const char *data, size_t n, ap_torn *torn);

void ap_close(ap_file *f);

#endif
