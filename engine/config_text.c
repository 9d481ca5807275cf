/*
 * config_text.c: reads a pipeline file and its @include files without
 * blocking, within the size and settings limits, into one text for libconfig
 * with a map back to file:line (see config_text.h).
 *
 * The scanner follows libconfig 1.5's lexer (lib/scanner.l) just far enough
 * to know where an @include can be: `^[ \t]*@include[ \t]+"` at the start of
 * a line outside strings and comments. Strings run to an unescaped '"' and
 * may span lines; comments are /+* ... *+/, # ... and // ... to the end of
 * the line. Anything else passes through untouched for libconfig to judge.
 */
#include "config_text.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/file.h"

/* One file on the include chain, to refuse cycles. */
typedef struct chain_link {
    dev_t dev;
    ino_t ino;
} chain_link;

/* State of one expansion. */
typedef struct expander {
    ik_config_text *t;
    ik_buf out;
    unsigned out_line; /* line of the next byte appended to out (1-based) */
    size_t total;      /* bytes read from every file so far */
    size_t settings;   /* '=' and ':' seen outside strings and comments */
    chain_link chain[IK_CONFIG_MAX_DEPTH + 1];
    int depth; /* entries in chain */
    ik_err *err;
} expander;

enum scan_state { S_CODE, S_STRING, S_BLOCK, S_LINE };

/* ------------------------------------------------------------ output */

/* Appends n bytes of file `file` starting at its line `line`, recording a
 * span so that libconfig's line numbers can be mapped back. */
static int push_piece(expander *x, size_t file, const char *s, size_t n, unsigned line)
{
    if (n == 0)
        return 0;
    ik_config_text *t = x->t;
    if (t->nspans == 0 || t->spans[t->nspans - 1].first != x->out_line) {
        ik_config_span *grown = realloc(t->spans, (t->nspans + 1) * sizeof *grown);
        if (!grown)
            return ik_err_set(x->err, IK_E_NOMEM, "out of memory reading the config");
        t->spans = grown;
        t->nspans++;
    }
    t->spans[t->nspans - 1] = (ik_config_span){x->out_line, file, line};
    ik_buf_add(&x->out, s, n);
    if (x->out.oom)
        return ik_err_set(x->err, IK_E_NOMEM, "out of memory reading the config");
    for (size_t i = 0; i < n; i++)
        x->out_line += s[i] == '\n';
    return 0;
}

static int add_file_name(expander *x, const char *name, size_t *index)
{
    ik_config_text *t = x->t;
    char **grown = realloc(t->files, (t->nfiles + 1) * sizeof *grown);
    if (!grown)
        return ik_err_set(x->err, IK_E_NOMEM, "out of memory reading the config");
    t->files = grown;
    if (!(t->files[t->nfiles] = strdup(name)))
        return ik_err_set(x->err, IK_E_NOMEM, "out of memory reading the config");
    *index = t->nfiles++;
    return 0;
}

/* ------------------------------------------------------------ reading */

/* "1 MiB (1048576 bytes)" */
#define LIMIT_TEXT "1 MiB (1048576 bytes)"
_Static_assert(IK_CONFIG_MAX_BYTES == 1048576u, "LIMIT_TEXT names the limit");

/* Refuses a file of `size` bytes that is over the limit on its own, or
 * brings the total over it. `where` and `who` as for read_regular. */
static int check_size(expander *x, const char *where, const char *who, unsigned long long size)
{
    if (size > IK_CONFIG_MAX_BYTES)
        return ik_err_set(x->err, IK_E_TOOBIG,
                          "%s%s is %llu bytes; a config file may have at most " LIMIT_TEXT
                          " (libconfig parses larger ones too slowly)",
                          where, who, size);
    if (x->total + size > IK_CONFIG_MAX_BYTES)
        return ik_err_set(
            x->err, IK_E_TOOBIG,
            "%s%s (%llu bytes) brings the config and its includes to more than " LIMIT_TEXT
            " in total (libconfig parses larger ones too slowly)",
            where, who, size);
    return 0;
}

static const char *file_kind(mode_t mode)
{
    return S_ISFIFO(mode)   ? "a FIFO"
           : S_ISSOCK(mode) ? "a socket"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
                            : "not a file";
}

/* Opens `path` without blocking and checks that it is a regular file within
 * the size limits; the open descriptor in *fd, its status in *st. */
static int open_regular(expander *x, const char *path, const char *where, const char *who, int *fd,
                        struct stat *st)
{
    *fd = ik_open_regular_at(AT_FDCWD, path, 0, st);
    if (*fd == -IK_ENOTREG) {
        *fd = -1;
        if (S_ISDIR(st->st_mode))
            return ik_err_set(x->err, IK_E_IO,
                              "%s%s is a directory, not a config file (name the file)", where, who);
        return ik_err_set(x->err, IK_E_IO,
                          "%s%s is not a regular file (%s); config files and includes must be "
                          "regular files",
                          where, who, file_kind(st->st_mode));
    }
    if (*fd < 0) {
        int e = -*fd;
        *fd = -1;
        return ik_err_set(x->err, e == ENOENT ? IK_E_NOTFOUND : IK_E_IO,
                          "%scannot read %s: %s (check the path and its permissions)", where, who,
                          strerror(e));
    }
    int rc = check_size(x, where, who, (unsigned long long)st->st_size);
    if (rc != 0) {
        close(*fd);
        *fd = -1;
    }
    return rc;
}

/*
 * Reads the regular file `path` whole into *out (malloc'd, NUL-terminated,
 * *len bytes), never blocking: a FIFO, a device or a folder is refused
 * before any read. Messages start with `where` ("" or "a.conf:3: @include
 * \"b\": ") and name the file as `who` ("config file 'x'" or "'dir/b'").
 * *link gets its identity for the cycle check.
 */
static int read_regular(expander *x, const char *path, const char *where, const char *who,
                        char **out, size_t *len, chain_link *link)
{
    *out = NULL;
    int fd;
    struct stat st;
    int rc = open_regular(x, path, where, who, &fd, &st);
    if (rc != 0)
        return rc;
    link->dev = st.st_dev;
    link->ino = st.st_ino;
    /* The file may grow after fstat: read at most one byte past the limit. */
    size_t room = IK_CONFIG_MAX_BYTES - x->total + 1;
    size_t cap = (size_t)st.st_size + 1 < room ? (size_t)st.st_size + 1 : room;
    char *buf = malloc(cap + 1);
    size_t n = 0;
    if (!buf) {
        close(fd);
        return ik_err_set(x->err, IK_E_NOMEM, "out of memory reading %s", who);
    }
    for (;;) {
        if (n == cap) {
            if (cap == room)
                break;
            size_t more = cap * 2 < room ? cap * 2 : room;
            char *grown = realloc(buf, more + 1);
            if (!grown) {
                rc = ik_err_set(x->err, IK_E_NOMEM, "out of memory reading %s", who);
                break;
            }
            buf = grown;
            cap = more;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = ik_err_set(x->err, IK_E_IO, "%scannot read %s: %s", where, who, strerror(errno));
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (rc == 0)
        rc = check_size(x, where, who, n);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    x->total += n;
    *out = buf;
    *len = n;
    return 0;
}

/* ------------------------------------------------------------ @include */

static int scan_file(expander *x, size_t file, const char *text, size_t len, const char *dir);

/* Folder of an include's path (for its own relative includes); malloc'd. */
static char *folder_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    return strndup(path, slash == path ? 1 : (size_t)(slash - path));
}

/* `name` against `dir` unless absolute; malloc'd or NULL. */
static char *join_include(const char *dir, const char *name)
{
    char *p = NULL;
    if (name[0] == '/')
        return strdup(name);
    size_t dl = strlen(dir);
    if (asprintf(&p, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name) < 0)
        return NULL;
    return p;
}

/* Reads, checks and expands one include named at parent:line. */
static int include_one(expander *x, size_t parent, unsigned line, const char *name, const char *dir)
{
    const char *pname = x->t->files[parent];
    if (x->depth > IK_CONFIG_MAX_DEPTH)
        return ik_err_set(x->err, IK_E_CONFIG,
                          "%s:%u: @include \"%s\": includes nest deeper than %d levels", pname,
                          line, name, IK_CONFIG_MAX_DEPTH);
    char *path = join_include(dir, name);
    char *sub = path ? folder_of(path) : NULL;
    char where[2 * 4096 + 64], who[4096 + 8];
    char *text = NULL;
    size_t len = 0, index = 0;
    chain_link link;
    int rc = 0;
    if (!path || !sub) {
        rc = ik_err_set(x->err, IK_E_NOMEM, "out of memory reading the config");
        goto done;
    }
    snprintf(where, sizeof where, "%s:%u: @include \"%s\": ", pname, line, name);
    snprintf(who, sizeof who, "'%s'", path);
    if ((rc = read_regular(x, path, where, who, &text, &len, &link)) != 0)
        goto done;
    for (int i = 0; i < x->depth; i++) {
        if (x->chain[i].dev == link.dev && x->chain[i].ino == link.ino) {
            rc = ik_err_set(x->err, IK_E_CONFIG,
                            "%s%s is already being read: an include cycle (remove one of the "
                            "@include lines)",
                            where, who);
            goto done;
        }
    }
    if ((rc = add_file_name(x, path, &index)) != 0)
        goto done;
    x->chain[x->depth++] = link;
    rc = scan_file(x, index, text, len, sub);
    x->depth--;
    /* A file's last line ends where the file does, not in the next one's
     * (the newline belongs to the span already open). */
    if (rc == 0 && x->out.len > 0 && x->out.p[x->out.len - 1] != '\n') {
        ik_buf_addc(&x->out, '\n');
        x->out_line++;
        if (x->out.oom)
            rc = ik_err_set(x->err, IK_E_NOMEM, "out of memory reading the config");
    }
done:
    free(text);
    free(sub);
    free(path);
    return rc;
}

/*
 * At text[pos], the start of a line outside strings and comments: 1 when an
 * @include directive starts here (libconfig's `^[ \t]*@include[ \t]+"`),
 * with *name_at at the first byte of the name.
 */
static int is_directive(const char *text, size_t len, size_t pos, size_t *name_at)
{
    while (pos < len && (text[pos] == ' ' || text[pos] == '\t'))
        pos++;
    if (len - pos < 8 || memcmp(text + pos, "@include", 8) != 0)
        return 0;
    pos += 8;
    size_t blanks = pos;
    while (pos < len && (text[pos] == ' ' || text[pos] == '\t'))
        pos++;
    if (pos == blanks || pos >= len || text[pos] != '"')
        return 0;
    *name_at = pos + 1;
    return 1;
}

/*
 * Reads the quoted name of a directive starting at name_at (escapes \\ and
 * \" as libconfig reads them) into `name`, and checks that nothing but a
 * comment follows it on the line. *next is the start of the next line.
 */
static int parse_directive(expander *x, size_t file, unsigned line, const char *text, size_t len,
                           size_t name_at, char *name, size_t namecap, size_t *next)
{
    const char *fname = x->t->files[file];
    size_t pos = name_at, n = 0;
    for (;;) {
        if (pos >= len || text[pos] == '\n')
            return ik_err_set(x->err, IK_E_CONFIG,
                              "%s:%u: @include: the file name has no closing '\"' on its line",
                              fname, line);
        char c = text[pos];
        if (c == '"')
            break;
        if (c == '\\') {
            if (pos + 1 >= len || (text[pos + 1] != '\\' && text[pos + 1] != '"'))
                return ik_err_set(x->err, IK_E_CONFIG,
                                  "%s:%u: @include: a '\\' in the file name must be written "
                                  "\\\\ (and a quote \\\")",
                                  fname, line);
            c = text[++pos];
        }
        if (n + 1 >= namecap)
            return ik_err_set(x->err, IK_E_CONFIG, "%s:%u: @include: the file name is too long",
                              fname, line);
        name[n++] = c;
        pos++;
    }
    name[n] = '\0';
    if (n == 0)
        return ik_err_set(x->err, IK_E_CONFIG, "%s:%u: @include \"\": the file name is empty",
                          fname, line);
    pos++; /* the closing quote */
    while (pos < len && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\r'))
        pos++;
    int comment = pos < len &&
                  (text[pos] == '#' || (text[pos] == '/' && pos + 1 < len && text[pos + 1] == '/'));
    if (pos < len && text[pos] != '\n' && !comment)
        return ik_err_set(x->err, IK_E_CONFIG,
                          "%s:%u: @include \"%s\": only a # or // comment may follow it on its "
                          "line",
                          fname, line, name);
    while (pos < len && text[pos] != '\n')
        pos++;
    *next = pos < len ? pos + 1 : pos;
    return 0;
}

/* ------------------------------------------------------------ scanning */

static const char *state_name(enum scan_state s)
{
    return s == S_STRING ? "a string" : "a /* comment";
}

/* The character at text[pos] in CODE state: the state that follows it and
 * how many bytes it takes. Counts named settings by their '=' or ':'. */
static enum scan_state code_step(expander *x, const char *text, size_t len, size_t pos,
                                 size_t *width)
{
    char c = text[pos], next = pos + 1 < len ? text[pos + 1] : '\0';
    *width = 1;
    if (c == '"')
        return S_STRING;
    if (c == '#')
        return S_LINE;
    if (c == '/' && (next == '/' || next == '*')) {
        *width = 2;
        return next == '/' ? S_LINE : S_BLOCK;
    }
    if (c == '=' || c == ':')
        x->settings++;
    return S_CODE;
}

/*
 * Copies `text` (file number `file`, whose relative includes live in `dir`)
 * to the output, replacing each @include line with the expanded file it
 * names.
 */
static int scan_file(expander *x, size_t file, const char *text, size_t len, const char *dir)
{
    const char *fname = x->t->files[file];
    enum scan_state state = S_CODE;
    size_t pos = 0, piece = 0;
    unsigned line = 1, piece_line = 1, opened = 0;
    int rc = 0;
    while (pos < len && rc == 0) {
        char c = text[pos];
        size_t width = 1, name_at;
        if (c == '\0')
            return ik_err_set(x->err, IK_E_CONFIG,
                              "%s:%u: byte offset %zu is a NUL byte; a config file is text", fname,
                              line, pos);
        if (state == S_CODE && (pos == 0 || text[pos - 1] == '\n') &&
            is_directive(text, len, pos, &name_at)) {
            char name[4096];
            size_t next = len;
            if ((rc = parse_directive(x, file, line, text, len, name_at, name, sizeof name,
                                      &next)) != 0 ||
                (rc = push_piece(x, file, text + piece, pos - piece, piece_line)) != 0 ||
                (rc = include_one(x, file, line, name, dir)) != 0)
                return rc;
            line += next > 0 && text[next - 1] == '\n';
            pos = piece = next;
            piece_line = line;
            continue;
        }
        switch (state) {
        case S_CODE:
            state = code_step(x, text, len, pos, &width);
            if (state != S_CODE)
                opened = line;
            if (x->settings > IK_CONFIG_MAX_SETTINGS)
                return ik_err_set(x->err, IK_E_TOOBIG,
                                  "%s:%u: the config has more than %u settings (libconfig parses "
                                  "that many too slowly)",
                                  fname, line, IK_CONFIG_MAX_SETTINGS);
            break;
        case S_STRING:
            if (c == '\\' && pos + 1 < len)
                width = 2; /* an escaped quote or backslash does not end it */
            else if (c == '"')
                state = S_CODE;
            break;
        case S_BLOCK:
            if (c == '*' && pos + 1 < len && text[pos + 1] == '/') {
                width = 2;
                state = S_CODE;
            }
            break;
        case S_LINE:
            if (c == '\n')
                state = S_CODE;
            break;
        }
        for (size_t i = 0; i < width; i++)
            line += text[pos + i] == '\n';
        pos += width;
    }
    /* An include spliced into its parent must not swallow the parent's
     * next lines into a string or comment it left open. */
    if (file != 0 && (state == S_STRING || state == S_BLOCK))
        return ik_err_set(x->err, IK_E_CONFIG,
                          "%s:%u: %s opened here is not closed by the end of the file (an "
                          "included file must close its strings and comments)",
                          fname, opened, state_name(state));
    return push_piece(x, file, text + piece, len - piece, piece_line);
}

/* ------------------------------------------------------------ API */

int ik_config_text_load(const char *path, const char *dir, const char *text, ik_config_text *out,
                        ik_err *err)
{
    memset(out, 0, sizeof *out);
    expander x = {.t = out, .out_line = 1, .err = err};
    size_t index;
    int rc = add_file_name(&x, path, &index);
    if (rc != 0)
        return rc;
    char who[4096 + 32];
    snprintf(who, sizeof who, "config file '%s'", path);
    char *own = NULL;
    size_t len;
    /* The config is the chain's first link, so includes nest the same
     * depth below a string as below a file; a string's {0, 0} is no file. */
    x.depth = 1;
    if (text) {
        len = strlen(text);
        rc = check_size(&x, "", who, len);
        x.total = len;
    } else {
        rc = read_regular(&x, path, "", who, &own, &len, &x.chain[0]);
    }
    if (rc == 0)
        rc = scan_file(&x, index, text ? text : own, len, dir);
    free(own);
    if (rc == 0) {
        ik_buf_add(&x.out, "", 0);
        if (!(out->text = ik_buf_take(&x.out)))
            rc = ik_err_set(err, IK_E_NOMEM, "out of memory reading the config");
    }
    ik_buf_free(&x.out);
    return rc;
}

void ik_config_text_locate(const ik_config_text *t, unsigned line, const char **file,
                           unsigned *file_line)
{
    *file = t->nfiles ? t->files[0] : "<config>";
    *file_line = line;
    if (line == 0 || t->nspans == 0)
        return;
    size_t lo = 0, hi = t->nspans; /* the last span starting at or before line */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->spans[mid].first <= line)
            lo = mid;
        else
            hi = mid;
    }
    const ik_config_span *s = &t->spans[lo];
    if (s->first > line)
        return;
    *file = t->files[s->file];
    *file_line = s->file_line + (line - s->first);
}

void ik_config_text_release(ik_config_text *t)
{
    free(t->text);
    t->text = NULL;
}

void ik_config_text_free(ik_config_text *t)
{
    if (!t)
        return;
    ik_config_text_release(t);
    for (size_t i = 0; i < t->nfiles; i++)
        free(t->files[i]);
    free(t->files);
    free(t->spans);
    memset(t, 0, sizeof *t);
}
