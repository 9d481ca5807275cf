/*
 * env.c: .env files (KEY=VALUE lines loaded into the environment) and ${VAR}
 * substitution in configuration strings. See env.h for the syntax.
 */
#include "env.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/file.h"

/* An env file larger than this is refused: it is a handful of settings, and
 * the limit keeps a mistaken path (a log, a device) from eating memory. */
#define ENV_FILE_MAX (1024 * 1024)
/* Deepest ${A:-${B:-...}} nesting accepted. */
#define EXPAND_DEPTH_MAX 32

static int is_name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

/* ---------------------------------------------------------------- env files */

/* Keys this load has set, so that a later line of the same file overrides an
 * earlier one while the real environment still wins over the file. */
typedef struct keyset {
    char **keys;
    size_t n, cap;
} keyset;

static int keyset_has(const keyset *ks, const char *k)
{
    for (size_t i = 0; i < ks->n; i++)
        if (strcmp(ks->keys[i], k) == 0)
            return 1;
    return 0;
}

static int keyset_add(keyset *ks, const char *k)
{
    char **q = ik_array_grow(ks->keys, &ks->cap, ks->n + 1, sizeof *q);
    if (!q)
        return IK_E_NOMEM;
    ks->keys = q;
    char *d = strdup(k);
    if (!d)
        return IK_E_NOMEM;
    ks->keys[ks->n++] = d;
    return 0;
}

static void keyset_free(keyset *ks)
{
    for (size_t i = 0; i < ks->n; i++)
        free(ks->keys[i]);
    free(ks->keys);
}

static const char *skip_blank(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/*
 * Parses one line (NUL-terminated, no newline). On success *has_kv is 0 when
 * the line is blank or a comment; otherwise key and value are written into
 * `kbuf` and `vbuf` (the caller's buffers, reused from line to line). Returns 0, IK_E_PARSE with
 * `why` set to a static explanation, or IK_E_NOMEM.
 */
static int parse_env_line(const char *line, ik_buf *kbuf, ik_buf *vbuf, int *has_kv,
                          const char **why)
{
    *has_kv = 0;
    kbuf->len = vbuf->len = 0;
    ik_buf_add(kbuf, "", 0);
    ik_buf_add(vbuf, "", 0);
    const char *p = skip_blank(line);
    if (*p == '\0' || *p == '#')
        return 0;
    if (strncmp(p, "export", 6) == 0 && (p[6] == ' ' || p[6] == '\t'))
        p = skip_blank(p + 6);
    if (!is_name_start(*p)) {
        *why = "expected KEY=VALUE with KEY made of letters, digits and '_' (not starting with a "
               "digit)";
        return IK_E_PARSE;
    }
    const char *k = p;
    while (is_name_char(*p))
        p++;
    ik_buf_add(kbuf, k, (size_t)(p - k));
    p = skip_blank(p);
    if (*p != '=') {
        *why = "expected '=' after the variable name (write KEY=VALUE)";
        return IK_E_PARSE;
    }
    p = skip_blank(p + 1);
    if (*p == '\'') {
        const char *e = strchr(p + 1, '\'');
        if (!e) {
            *why = "unterminated single-quoted value (close it with ')";
            return IK_E_PARSE;
        }
        ik_buf_add(vbuf, p + 1, (size_t)(e - p - 1));
        p = e + 1;
    } else if (*p == '"') {
        p++;
        for (;;) {
            if (*p == '\0') {
                *why = "unterminated double-quoted value (close it with \")";
                return IK_E_PARSE;
            }
            if (*p == '"')
                break;
            if (*p == '\\' && p[1] != '\0') {
                switch (p[1]) {
                case 'n':
                    ik_buf_addc(vbuf, '\n');
                    break;
                case 't':
                    ik_buf_addc(vbuf, '\t');
                    break;
                case '\\':
                    ik_buf_addc(vbuf, '\\');
                    break;
                case '"':
                    ik_buf_addc(vbuf, '"');
                    break;
                default: /* unknown escape: kept as written */
                    ik_buf_addc(vbuf, '\\');
                    ik_buf_addc(vbuf, p[1]);
                    break;
                }
                p += 2;
                continue;
            }
            ik_buf_addc(vbuf, *p++);
        }
        p++;
    } else {
        /* Unquoted: ends at " #" (or tab-#) or the end; trailing blanks go. */
        const char *s = p;
        const char *e = p;
        while (*e) {
            if (*e == '#' && e > s && (e[-1] == ' ' || e[-1] == '\t'))
                break;
            e++;
        }
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        ik_buf_add(vbuf, s, (size_t)(e - s));
        p = "";
    }
    p = skip_blank(p);
    if (*p != '\0' && *p != '#') {
        *why = "unexpected text after the quoted value (put comments after ' #')";
        return IK_E_PARSE;
    }
    if (kbuf->oom || vbuf->oom)
        return IK_E_NOMEM;
    *has_kv = 1;
    return 0;
}

int ik_env_load_file(const char *path, ik_err *err)
{
    if (!path)
        return ik_err_set(err, IK_E_INVAL, "env file: no path given");
    /* A FIFO named as the env file must not hang validate or run. */
    struct stat st;
    int fd = ik_open_regular_at(AT_FDCWD, path, 0, &st);
    if (fd == -IK_ENOTREG)
        return ik_err_set(err, IK_E_IO, "env file '%s' is not a regular file", path);
    if (fd == -ENOENT)
        return ik_err_set(err, IK_E_NOTFOUND, "env file '%s' not found (create it or fix the path)",
                          path);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!f) {
        int e = fd < 0 ? -fd : errno;
        if (fd >= 0)
            close(fd);
        return ik_err_set(err, IK_E_IO, "cannot open env file '%s': %s", path, strerror(e));
    }
    if (st.st_size > ENV_FILE_MAX) {
        fclose(f);
        return ik_err_set(err, IK_E_TOOBIG, "env file '%s' is larger than %d bytes", path,
                          ENV_FILE_MAX);
    }

    int rc = 0;
    keyset ks = {0};
    ik_buf kb = {0}, vb = {0};
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    int lineno = 0;
    size_t total = 0;
    while ((n = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        total += (size_t)n;
        if (total > ENV_FILE_MAX) {
            rc = ik_err_set(err, IK_E_TOOBIG, "%s:%d: env file is larger than %d bytes", path,
                            lineno, ENV_FILE_MAX);
            break;
        }
        if (strlen(line) != (size_t)n) {
            rc = ik_err_set(err, IK_E_PARSE, "%s:%d: NUL byte in env file line", path, lineno);
            break;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        const char *why = NULL;
        int has_kv = 0;
        rc = parse_env_line(line, &kb, &vb, &has_kv, &why);
        if (rc == IK_E_NOMEM) {
            ik_err_set(err, rc, "%s:%d: out of memory", path, lineno);
            break;
        }
        if (rc != 0) {
            ik_err_set(err, rc, "%s:%d: %s", path, lineno, why);
            break;
        }
        if (!has_kv)
            continue;
        int mine = keyset_has(&ks, kb.p);
        if (!mine && getenv(kb.p) != NULL)
            continue; /* the real environment wins */
        if (setenv(kb.p, vb.p, 1) != 0) {
            rc = ik_err_set(err, IK_E_NOMEM, "%s:%d: cannot set %s: %s", path, lineno, kb.p,
                            strerror(errno));
            break;
        }
        if (!mine && (rc = keyset_add(&ks, kb.p)) != 0) {
            ik_err_set(err, rc, "%s:%d: out of memory", path, lineno);
            break;
        }
    }
    if (rc == 0 && ferror(f))
        rc = ik_err_set(err, IK_E_IO, "error reading env file '%s'", path);
    free(line);
    free(kb.p);
    free(vb.p);
    keyset_free(&ks);
    fclose(f);
    return rc;
}

/* ---------------------------------------------------------------- expansion */

typedef struct expander {
    const char *start; /* whole input, for offsets in messages */
    ik_err *err;
} expander;

/*
 * Expands text starting at *pp until the end of the string (top level) or an
 * unmatched '}' (inside a default, in_default != 0), which is consumed. When
 * `emit` is 0 the text is only checked for syntax (an unused default: its
 * variables may be unset). Output goes to `out`. Returns 0 or an IK_E_* code
 * with ex->err set.
 */
static int expand_into(expander *ex, const char **pp, int in_default, int emit, int depth,
                       ik_buf *out)
{
    const char *p = *pp;
    for (;;) {
        char c = *p;
        if (c == '\0') {
            if (in_default)
                return ik_err_set(ex->err, IK_E_PARSE,
                                  "unterminated \"${\" (a ${VAR:-default} is missing its '}')");
            break;
        }
        if (c == '}' && in_default) {
            p++;
            break;
        }
        if (c != '$') {
            if (emit)
                ik_buf_addc(out, c);
            p++;
            continue;
        }
        if (p[1] == '$') {
            if (emit)
                ik_buf_addc(out, '$');
            p += 2;
            continue;
        }
        if (p[1] != '{') {
            if (emit)
                ik_buf_addc(out, '$');
            p++;
            continue;
        }
        /* ${NAME} or ${NAME:-default} */
        const char *open = p;
        p += 2;
        if (!is_name_start(*p)) {
            if (strchr(open, '}') == NULL)
                return ik_err_set(ex->err, IK_E_PARSE,
                                  "unterminated \"${\" at offset %zu (close it with '}', or "
                                  "write $$ for a literal '$')",
                                  (size_t)(open - ex->start));
            return ik_err_set(ex->err, IK_E_PARSE,
                              "invalid variable reference at offset %zu (names are letters, "
                              "digits and '_', not starting with a digit; write $$ for a "
                              "literal '$')",
                              (size_t)(open - ex->start));
        }
        const char *name = p;
        while (is_name_char(*p))
            p++;
        size_t nlen = (size_t)(p - name);
        char *var = strndup(name, nlen);
        if (!var)
            return ik_err_set(ex->err, IK_E_NOMEM, "out of memory expanding variables");
        const char *val = getenv(var);
        int rc = 0;
        if (*p == '}') {
            p++;
            if (emit) {
                if (!val)
                    rc = ik_err_set(ex->err, IK_E_CONFIG,
                                    "variable %s is not set (write ${%s:-} to allow it empty)", var,
                                    var);
                else
                    ik_buf_add(out, val, strlen(val));
            }
        } else if (p[0] == ':' && p[1] == '-') {
            p += 2;
            if (depth + 1 > EXPAND_DEPTH_MAX) {
                rc = ik_err_set(ex->err, IK_E_PARSE,
                                "variable defaults nested more than %d deep at offset %zu",
                                EXPAND_DEPTH_MAX, (size_t)(open - ex->start));
            } else {
                /* ":-" uses the default when the variable is unset or empty. */
                int use_default = emit && (!val || !*val);
                if (emit && !use_default)
                    ik_buf_add(out, val, strlen(val));
                rc = expand_into(ex, &p, 1, use_default, depth + 1, out);
            }
        } else if (*p == '\0') {
            rc = ik_err_set(ex->err, IK_E_PARSE,
                            "unterminated \"${\" at offset %zu (close it with '}', or write $$ "
                            "for a literal '$')",
                            (size_t)(open - ex->start));
        } else {
            rc = ik_err_set(ex->err, IK_E_PARSE,
                            "unexpected character after ${%s at offset %zu (write ${%s} or "
                            "${%s:-default})",
                            var, (size_t)(p - ex->start), var, var);
        }
        free(var);
        if (rc != 0)
            return rc;
    }
    *pp = p;
    if (out->oom)
        return ik_err_set(ex->err, IK_E_NOMEM, "out of memory expanding variables");
    return 0;
}

int ik_env_expand(const char *in, char **out, ik_err *err)
{
    if (!in || !out)
        return ik_err_set(err, IK_E_INVAL, "ik_env_expand: NULL argument");
    expander ex = {.start = in, .err = err};
    ik_buf b = {0};
    ik_buf_add(&b, "", 0);
    const char *p = in;
    int rc = expand_into(&ex, &p, 0, 1, 0, &b);
    if (rc == 0 && b.oom)
        rc = ik_err_set(err, IK_E_NOMEM, "out of memory expanding variables");
    if (rc != 0) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    return 0;
}
