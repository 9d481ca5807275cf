/* error.c: error codes and the ik_err message buffer (see error.h). */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ik_err_set(ik_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void ik_err_prefix(ik_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    char head[IK_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    size_t hlen = strlen(head), mlen = strlen(err->msg);
    if (hlen >= sizeof err->msg)
        hlen = sizeof err->msg - 1;
    if (hlen + mlen >= sizeof err->msg)
        mlen = sizeof err->msg - 1 - hlen;
    memmove(err->msg + hlen, err->msg, mlen);
    memcpy(err->msg, head, hlen);
    err->msg[hlen + mlen] = '\0';
}

void ik_err_clear(ik_err *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

const char *ik_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case IK_E_NOMEM:
        return "out of memory";
    case IK_E_INVAL:
        return "invalid argument";
    case IK_E_IO:
        return "input/output error";
    case IK_E_BUSY:
        return "pipeline full (in-flight limit reached)";
    case IK_E_STOPPING:
        return "pipeline is shutting down";
    case IK_E_NOTFOUND:
        return "not found";
    case IK_E_CONFIG:
        return "configuration error";
    case IK_E_NOTPLUGIN:
        return "not an Intake plugin";
    case IK_E_MAGIC:
        return "wrong plugin magic number";
    case IK_E_ABI:
        return "plugin ABI mismatch";
    case IK_E_UNSUPPORTED:
        return "operation not supported";
    case IK_E_PARSE:
        return "malformed input";
    case IK_E_TIMEOUT:
        return "timed out";
    case IK_E_TOOBIG:
        return "input larger than its limit";
    case IK_E_STATE:
        return "not allowed in the current state";
    case IK_E_CONFLICT:
        return "changed meanwhile (compare-and-set found another version)";
    default:
        return "unknown error";
    }
}
