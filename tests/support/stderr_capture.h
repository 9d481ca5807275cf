/*
 * stderr_capture.h: test helper that sends what the process writes to stderr
 * (the engine log) into a temporary file, to read it back. Not reentrant:
 * one capture at a time.
 */
#ifndef IK_TEST_STDERR_CAPTURE_H
#define IK_TEST_STDERR_CAPTURE_H

/* Starts capturing; 0, or -1 (stderr unchanged) when no file could be made. */
int stderr_capture_begin(void);

/* Restores stderr and returns what was written since stderr_capture_begin, as
 * a NUL-terminated string owned by the caller (NULL when out of memory). */
char *stderr_capture_end(void);

#endif
