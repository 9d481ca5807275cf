/*
 * units.h: parsing of the value syntaxes shared by engine settings and plugin
 * options: durations, sizes, integers, booleans. Every parser accepts the whole
 * string or nothing (no trailing garbage, no overflow) and returns 0 or
 * IK_E_INVAL.
 */
#ifndef IK_UNITS_H
#define IK_UNITS_H

#include <stdint.h>

/* "250ms", "30s", "5m", "1h", "1.5s", or a bare number of seconds ("30", "0.5"). */
int ik_parse_duration_ms(const char *s, uint64_t *ms);
/* "512", "256K", "256KB", "4M", "1G" (binary multiples, case-insensitive). */
int ik_parse_size(const char *s, uint64_t *bytes);
/* Decimal int64, optional sign. */
int ik_parse_int(const char *s, int64_t *v);
/* Finite double. */
int ik_parse_double(const char *s, double *v);
/* true/false, yes/no, on/off, 1/0 (case-insensitive). */
int ik_parse_bool(const char *s, int *v);

#endif
