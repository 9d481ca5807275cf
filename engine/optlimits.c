/*
 * optlimits.c: parsing, comparing and describing the ranges of numeric
 * plugin options (see optlimits.h). Bounds are text in the option's own
 * syntax, parsed with the same parsers as config values (units.h), so a
 * bound means exactly what the same text in a config would.
 */
#include "optlimits.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "options.h"
#include "units.h"

int ik_limit_type_ok(ik_opt_type type)
{
    return type == IK_OPT_INT || type == IK_OPT_DOUBLE || type == IK_OPT_DURATION ||
           type == IK_OPT_SIZE;
}

int ik_num_parse(ik_opt_type type, const char *text, ik_num *out)
{
    memset(out, 0, sizeof *out);
    switch (type) {
    case IK_OPT_INT:
        return ik_parse_int(text, &out->i);
    case IK_OPT_DOUBLE:
        return ik_parse_double(text, &out->d);
    case IK_OPT_DURATION:
        return ik_parse_duration_ms(text, &out->u);
    case IK_OPT_SIZE:
        return ik_parse_size(text, &out->u);
    default:
        return IK_E_INVAL;
    }
}

/* -1, 0 or 1 as a is below, equal to or above b. */
static int num_cmp(ik_opt_type type, const ik_num *a, const ik_num *b)
{
    switch (type) {
    case IK_OPT_INT:
        return (a->i > b->i) - (a->i < b->i);
    case IK_OPT_DOUBLE:
        return (a->d > b->d) - (a->d < b->d);
    default:
        return (a->u > b->u) - (a->u < b->u);
    }
}

int ik_limit_has(const ik_option *o)
{
    return o && ik_limit_type_ok(o->type) && (o->min || o->max);
}

void ik_limit_describe(const ik_option *l, char *buf, size_t len)
{
    if (l->min && l->max)
        snprintf(buf, len, "%s to %s", l->min, l->max);
    else if (l->min)
        snprintf(buf, len, "at least %s", l->min);
    else if (l->max)
        snprintf(buf, len, "at most %s", l->max);
    else
        snprintf(buf, len, "any");
}

int ik_limit_check(const ik_option *l, ik_opt_type type, const ik_num *v, char *range, size_t len)
{
    ik_num bound;
    if (!ik_limit_has(l))
        return 0;
    int below = l->min && ik_num_parse(type, l->min, &bound) == 0 && num_cmp(type, v, &bound) < 0;
    int above = l->max && ik_num_parse(type, l->max, &bound) == 0 && num_cmp(type, v, &bound) > 0;
    if (!below && !above)
        return 0;
    if (l->min && l->max)
        snprintf(range, len, "between %s and %s", l->min, l->max);
    else
        ik_limit_describe(l, range, len);
    return IK_E_CONFIG;
}

void ik_num_format(ik_opt_type type, const ik_num *v, char *buf, size_t len)
{
    switch (type) {
    case IK_OPT_INT:
        snprintf(buf, len, "%" PRId64, v->i);
        break;
    case IK_OPT_DOUBLE:
        snprintf(buf, len, "%g", v->d);
        break;
    case IK_OPT_DURATION:
        snprintf(buf, len, "%" PRIu64 "ms", v->u);
        break;
    default:
        snprintf(buf, len, "%" PRIu64 " bytes", v->u);
        break;
    }
}

/*
 * Checks the bounds of one option of a plugin's table (at load): only
 * numeric options have them; they parse as the option's type, min <= max,
 * and a default without ${VAR} lies within.
 */
int ik_limits_validate(const ik_option *o, const char *where, const char *plugin, ik_err *err)
{
    if (!o->min && !o->max)
        return 0;
    if (!ik_limit_type_ok(o->type))
        return ik_err_set(err, IK_E_INVAL,
                          "%s: plugin '%s' declares a range for option '%s', which is not "
                          "numeric (ranges apply to int, double, duration and size options)",
                          where, plugin, o->name);
    ik_num lo, hi;
    const char *bad = o->min && ik_num_parse(o->type, o->min, &lo) != 0   ? o->min
                      : o->max && ik_num_parse(o->type, o->max, &hi) != 0 ? o->max
                                                                          : NULL;
    if (bad)
        return ik_err_set(err, IK_E_INVAL,
                          "%s: plugin '%s': the limit \"%s\" of option '%s' is not a valid %s",
                          where, plugin, bad, o->name, ik_opt_type_name(o->type));
    if (o->min && o->max && num_cmp(o->type, &lo, &hi) > 0)
        return ik_err_set(err, IK_E_INVAL,
                          "%s: plugin '%s': option '%s' has a minimum %s above its maximum %s",
                          where, plugin, o->name, o->min, o->max);
    ik_num def;
    char range[160];
    if (o->default_value && !strstr(o->default_value, "${") &&
        ik_num_parse(o->type, o->default_value, &def) == 0 &&
        ik_limit_check(o, o->type, &def, range, sizeof range) != 0)
        return ik_err_set(err, IK_E_INVAL,
                          "%s: plugin '%s': the default \"%s\" of option '%s' is outside its own "
                          "limit (%s)",
                          where, plugin, o->default_value, o->name, range);
    return 0;
}
