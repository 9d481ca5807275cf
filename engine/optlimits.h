/*
 * optlimits.h: the ranges of numeric plugin options (ik_option.min/max):
 * checked when a plugin loads, and against each value when options are bound
 * (options.c), so that `intake validate` rejects what create() would have.
 */
#ifndef IK_OPTLIMITS_H
#define IK_OPTLIMITS_H

#include <stddef.h>
#include <stdint.h>

#include <intake/plugin.h>

#include "error.h"

/* A numeric option value: `i` for INT, `d` for DOUBLE, `u` for DURATION
 * (ms) and SIZE (bytes); the other fields are unused. */
typedef struct ik_num {
    int64_t i;
    double d;
    uint64_t u;
} ik_num;

/* 1 for the types a limit may apply to. */
int ik_limit_type_ok(ik_opt_type type);

/* Parses a bound or a value written in the option's syntax: 0 or IK_E_INVAL. */
int ik_num_parse(ik_opt_type type, const char *text, ik_num *out);

/* 1 when o is numeric and has a min or a max. */
int ik_limit_has(const ik_option *o);

/*
 * 0 when v lies within l's min/max (which the loader has checked; none: 0). Otherwise
 * IK_E_CONFIG with the allowed range in `range`: "between 0 and 100", "at
 * least 0", "at most 1h".
 */
int ik_limit_check(const ik_option *l, ik_opt_type type, const ik_num *v, char *range, size_t len);

/* The range for people: "0 to 100", "at least 0", "at most 1h". */
void ik_limit_describe(const ik_option *l, char *buf, size_t len);

/* v as a person would write it: "-1", "0.5", "1500ms", "4096 bytes". */
void ik_num_format(ik_opt_type type, const ik_num *v, char *buf, size_t len);

/*
 * Checks one option's bounds at load: only on a numeric option; they parse
 * and min <= max; a default without ${VAR} lies within. IK_E_INVAL with a
 * message starting with `where` (the plugin's file) otherwise.
 */
int ik_limits_validate(const ik_option *o, const char *where, const char *plugin, ik_err *err);

#endif
