/*
 * fuzz_env.c: fuzz target for ${VAR} / ${VAR:-default} / $$ expansion
 * (ik_env_expand) on arbitrary bytes, NUL-terminated. A few variables are set
 * so that both the set and the unset paths run.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        setenv("IKF_A", "alpha", 1);
        setenv("IKF_EMPTY", "", 1);
        setenv("IKF_DOLLAR", "${IKF_A}", 1); /* values are not expanded again */
        unsetenv("IKF_UNSET");
        init = 1;
    }
    char *in = malloc(size + 1);
    if (!in)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    char *out = NULL;
    ik_err err;
    ik_err_clear(&err);
    int rc = ik_env_expand(in, &out, &err);
    if (rc == 0) {
        if (!out)
            abort();
        free(out);
    } else if (out || err.code != rc || err.msg[0] == '\0') {
        abort();
    }
    free(in);
    return 0;
}
