/*
 * retry.h: the retry schedule: capped exponential backoff with full jitter.
 *
 * Attempt n (1-based, the attempt that just failed) waits a uniformly random
 * time in [0, min(max_backoff, initial_backoff * 2^(n-1))]. Full jitter
 * spreads retries of a batch that failed together (say, on a 429), so they do
 * not come back together. A record is retried while attempts < max_attempts.
 */
#ifndef IK_RETRY_H
#define IK_RETRY_H

#include <stdint.h>

#include "config.h"

/* The cap of the jitter window after `attempt` failed attempts (attempt >= 1). */
uint64_t ik_retry_cap_ms(const ik_retry_spec *spec, unsigned attempt);

/* The wait before the next attempt, drawing from *rng (xorshift state, any
 * non-zero seed; updated). */
uint64_t ik_retry_backoff_ms(const ik_retry_spec *spec, unsigned attempt, uint64_t *rng);

/* 1 when a record that has made `attempts` attempts may try again. */
int ik_retry_allowed(const ik_retry_spec *spec, unsigned attempts);

/* Next value of a xorshift64* generator; *state must be non-zero. */
uint64_t ik_rand_next(uint64_t *state);

#endif
