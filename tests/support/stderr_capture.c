/* stderr_capture.c: stderr into a temporary file and back (see stderr_capture.h). */
#include "stderr_capture.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int saved_fd = -1;
static FILE *file;

int stderr_capture_begin(void)
{
    fflush(stderr);
    if (!(file = tmpfile()))
        return -1;
    saved_fd = dup(2);
    if (saved_fd < 0 || dup2(fileno(file), 2) < 0) {
        if (saved_fd >= 0)
            close(saved_fd);
        fclose(file);
        file = NULL;
        return -1;
    }
    return 0;
}

char *stderr_capture_end(void)
{
    if (!file)
        return NULL;
    fflush(stderr);
    dup2(saved_fd, 2);
    close(saved_fd);
    long n = ftell(file);
    char *text = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
    rewind(file);
    if (text && n > 0 && fread(text, 1, (size_t)n, file) != (size_t)n)
        text[0] = '\0';
    fclose(file);
    file = NULL;
    return text;
}
