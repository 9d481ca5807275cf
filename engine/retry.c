/* retry.c: backoff schedule (see retry.h). */
#include "retry.h"

uint64_t ik_rand_next(uint64_t *state)
{
    uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

uint64_t ik_retry_cap_ms(const ik_retry_spec *spec, unsigned attempt)
{
    uint64_t cap = spec->initial_backoff_ms;
    for (unsigned i = 1; i < attempt && cap < spec->max_backoff_ms; i++)
        cap = cap > UINT64_MAX / 2 ? UINT64_MAX : cap * 2;
    return cap < spec->max_backoff_ms ? cap : spec->max_backoff_ms;
}

uint64_t ik_retry_backoff_ms(const ik_retry_spec *spec, unsigned attempt, uint64_t *rng)
{
    uint64_t cap = ik_retry_cap_ms(spec, attempt);
    if (cap == 0)
        return 0;
    return ik_rand_next(rng) % (cap + 1);
}

int ik_retry_allowed(const ik_retry_spec *spec, unsigned attempts)
{
    return attempts < spec->max_attempts;
}
