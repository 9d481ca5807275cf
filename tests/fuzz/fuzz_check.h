/*
 * fuzz_check.h: CHECK(cond) for fuzz targets: an invariant the callers of a
 * parser rely on. A broken one is printed with its file and line and traps,
 * which libFuzzer reports as a crash (and the corpus replay as a failure).
 */
#ifndef INTAKE_FUZZ_CHECK_H
#define INTAKE_FUZZ_CHECK_H

#include <stdio.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

#endif
