/*
 * env.h: environment files and ${VAR} substitution for configuration strings.
 *
 * An env file holds KEY=VALUE lines: blank lines and lines starting with '#'
 * are skipped, an optional leading "export " is allowed, values may be wrapped
 * in single quotes (taken literally) or double quotes (with \n, \t, \\, \"
 * escapes), and an unquoted value ends at " #". Keys are [A-Za-z_][A-Za-z0-9_]*.
 * Loading sets each variable with setenv(key, value, 0): the real environment
 * wins over the file. Call it before any thread starts.
 */
#ifndef IK_ENV_H
#define IK_ENV_H

#include "error.h"

/* Loads `path`. A missing file is IK_E_NOTFOUND; a malformed line is
 * IK_E_PARSE with "path:line: ..." in err. */
int ik_env_load_file(const char *path, ik_err *err);

/*
 * Expands ${VAR} and ${VAR:-default} in `in` (default text may itself contain
 * ${...}); "$$" is a literal '$'; a '$' not followed by '{' or '$' is kept.
 * An unset (or, for ${VAR}, also empty-is-fine) variable without a default is
 * IK_E_CONFIG: "variable OPENAI_API_KEY is not set (write ${OPENAI_API_KEY:-}
 * to allow it empty)". An unterminated "${" is IK_E_PARSE. On success *out is
 * malloc'd and owned by the caller.
 */
int ik_env_expand(const char *in, char **out, ik_err *err);

#endif
