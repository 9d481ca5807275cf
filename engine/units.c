/*
 * units.c: strict parsers for the value syntaxes of settings and options
 * (durations, sizes, integers, doubles, booleans). See units.h. Every parser
 * takes the whole string or fails with IK_E_INVAL; no whitespace, no trailing
 * garbage, no silent overflow.
 */
#include "units.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <intake/plugin.h>

/* Fractional digits beyond this many are checked but ignored (they are far
 * below a millisecond or a byte for every unit we know). */
#define FRAC_DIGITS_MAX 9

/*
 * Parses "<digits>[.<digits>]" at the start of s into an integer part and a
 * fraction (frac / 10^fdigits). At least one digit overall. *end is set to the
 * first character after the number. Returns 0 or IK_E_INVAL (no digits or the
 * integer part overflows uint64).
 */
static int parse_decimal(const char *s, uint64_t *ipart, uint64_t *frac, unsigned *fdigits,
                         const char **end)
{
    const char *p = s;
    uint64_t v = 0;
    int ndig = 0;
    while (*p >= '0' && *p <= '9') {
        if (__builtin_mul_overflow(v, 10u, &v) ||
            __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
            return IK_E_INVAL;
        p++;
        ndig++;
    }
    uint64_t f = 0;
    unsigned fd = 0;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (fd < FRAC_DIGITS_MAX) {
                f = f * 10 + (uint64_t)(*p - '0');
                fd++;
            }
            p++;
            ndig++;
        }
    }
    if (ndig == 0)
        return IK_E_INVAL;
    *ipart = v;
    *frac = f;
    *fdigits = fd;
    *end = p;
    return 0;
}

/* ipart.frac * mult, rounded to the nearest integer; IK_E_INVAL on overflow. */
static int scale(uint64_t ipart, uint64_t frac, unsigned fdigits, uint64_t mult, uint64_t *out)
{
    uint64_t whole;
    if (__builtin_mul_overflow(ipart, mult, &whole))
        return IK_E_INVAL;
    uint64_t pow10 = 1;
    for (unsigned i = 0; i < fdigits; i++)
        pow10 *= 10;
    /* frac * mult / pow10 without overflow: with mult = q * pow10 + r,
     * frac < pow10 <= 10^9 keeps frac * q <= mult and frac * r < 10^18. */
    uint64_t q = mult / pow10, r = mult % pow10;
    uint64_t part = frac * q + (frac * r + pow10 / 2) / pow10;
    if (__builtin_add_overflow(whole, part, out))
        return IK_E_INVAL;
    return 0;
}

int ik_parse_duration_ms(const char *s, uint64_t *ms)
{
    if (!s || !ms)
        return IK_E_INVAL;
    uint64_t ip, fr;
    unsigned fd;
    const char *u;
    if (parse_decimal(s, &ip, &fr, &fd, &u) != 0)
        return IK_E_INVAL;
    uint64_t mult;
    if (*u == '\0' || strcasecmp(u, "s") == 0)
        mult = 1000;
    else if (strcasecmp(u, "ms") == 0)
        mult = 1;
    else if (strcasecmp(u, "m") == 0)
        mult = 60u * 1000u;
    else if (strcasecmp(u, "h") == 0)
        mult = 3600u * 1000u;
    else
        return IK_E_INVAL;
    uint64_t v;
    if (scale(ip, fr, fd, mult, &v) != 0)
        return IK_E_INVAL;
    *ms = v;
    return 0;
}

int ik_parse_size(const char *s, uint64_t *bytes)
{
    if (!s || !bytes)
        return IK_E_INVAL;
    uint64_t ip, fr;
    unsigned fd;
    const char *u;
    if (parse_decimal(s, &ip, &fr, &fd, &u) != 0)
        return IK_E_INVAL;
    uint64_t mult = 1;
    if (*u != '\0') {
        int shift;
        switch (tolower((unsigned char)*u)) {
        case 'b':
            shift = 0;
            break;
        case 'k':
            shift = 10;
            break;
        case 'm':
            shift = 20;
            break;
        case 'g':
            shift = 30;
            break;
        case 't':
            shift = 40;
            break;
        default:
            return IK_E_INVAL;
        }
        const char *rest = u + 1;
        /* "B" alone; "K", "KB", "KiB" for the multiples. */
        if (shift == 0) {
            if (*rest != '\0')
                return IK_E_INVAL;
        } else if (!(*rest == '\0' || strcasecmp(rest, "b") == 0 || strcasecmp(rest, "ib") == 0)) {
            return IK_E_INVAL;
        }
        mult = (uint64_t)1 << shift;
    }
    uint64_t v;
    if (scale(ip, fr, fd, mult, &v) != 0)
        return IK_E_INVAL;
    *bytes = v;
    return 0;
}

int ik_parse_int(const char *s, int64_t *v)
{
    if (!s || !v)
        return IK_E_INVAL;
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (*p < '0' || *p > '9') /* also rejects leading spaces strtoll would skip */
        return IK_E_INVAL;
    errno = 0;
    char *end;
    long long r = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return IK_E_INVAL;
    *v = (int64_t)r;
    return 0;
}

int ik_parse_double(const char *s, double *v)
{
    if (!s || !v)
        return IK_E_INVAL;
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    /* A digit or '.' must come first: no spaces, no "inf"/"nan". */
    if (!((*p >= '0' && *p <= '9') || *p == '.'))
        return IK_E_INVAL;
    char *end;
    errno = 0;
    double r = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(r))
        return IK_E_INVAL;
    *v = r;
    return 0;
}

int ik_parse_bool(const char *s, int *v)
{
    if (!s || !v)
        return IK_E_INVAL;
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *v = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *v = 0;
            return 0;
        }
    }
    return IK_E_INVAL;
}
