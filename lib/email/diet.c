/*
 * diet.c: the token diet. Works line by line on a UTF-8 body:
 *   1. quoted history: everything from an "On ... wrote:" line, an
 *      "-----Original Message-----" line or an Outlook "From:/Sent:" header
 *      block onwards is dropped, as are lines starting with ">". When the
 *      text above a separator or header block is short (under 40 visible
 *      characters: a forward with a one-line note) or the separator says
 *      "forward", only the marker and header lines go and the forwarded text
 *      stays.
 *   2. disclaimers: a paragraph that opens like a legal notice, or holds two
 *      or more of its stock phrases, is dropped.
 *   3. whitespace: runs of blanks become one space, trailing blanks go,
 *      at most one blank line in a row, no blank lines at either end.
 *   4. the cap: at most max_chars characters, cut at a line or word end
 *      when one is near.
 * Characters removed are counted per step.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <intake/plugin.h>

#include "common/buf.h"
#include "email.h"

typedef struct line {
    const char *p;
    size_t len;
} line;

/* Characters (code points) in p[0..n). */
static size_t chars_n(const char *p, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)p[i] & 0xc0) != 0x80)
            c++;
    return c;
}

static int starts_ci(const char *p, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && strncasecmp(p, prefix, n) == 0;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static int contains_ci(const char *p, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    int c0 = tolower((unsigned char)needle[0]);
    for (size_t i = 0; i + n <= len; i++)
        if (tolower((unsigned char)p[i]) == c0 && strncasecmp(p + i + 1, needle + 1, n - 1) == 0)
            return 1;
    return 0;
}

static int is_blank(const line *l)
{
    for (size_t i = 0; i < l->len; i++)
        if (!isspace((unsigned char)l->p[i]))
            return 0;
    return 1;
}

/* "On <date>, <name> wrote:" on one line or spread over two. Returns how
 * many lines the marker spans (0: not a marker). */
static int wrote_marker(const line *ls, size_t n, size_t i)
{
    const char *p = skip_ws(ls[i].p, ls[i].p + ls[i].len);
    size_t len = (size_t)(ls[i].p + ls[i].len - p);
    if (!starts_ci(p, len, "On ") || len > 300)
        return 0;
    while (len > 0 && isspace((unsigned char)p[len - 1]))
        len--;
    if (len >= 6 && strncasecmp(p + len - 6, "wrote:", 6) == 0)
        return 1;
    if (i + 1 < n) {
        const char *q = skip_ws(ls[i + 1].p, ls[i + 1].p + ls[i + 1].len);
        size_t ql = (size_t)(ls[i + 1].p + ls[i + 1].len - q);
        while (ql > 0 && isspace((unsigned char)q[ql - 1]))
            ql--;
        if (ql >= 6 && ql < 120 && strncasecmp(q + ql - 6, "wrote:", 6) == 0)
            return 2;
    }
    return 0;
}

static int header_line(const line *l, const char *name)
{
    const char *p = skip_ws(l->p, l->p + l->len);
    size_t len = (size_t)(l->p + l->len - p);
    /* Outlook may bold the names: "*From:*" */
    if (len > 0 && *p == '*') {
        p++;
        len--;
    }
    return starts_ci(p, len, name);
}

/* An Outlook reply block: "From:" then within 4 lines "Sent:" (or "Date:")
 * and "To:" or "Subject:". Returns the number of header lines, 0 if none. */
static size_t outlook_block(const line *ls, size_t n, size_t i)
{
    if (!header_line(&ls[i], "From:"))
        return 0;
    int sent = 0, to = 0;
    size_t j = i + 1;
    for (; j < n && j <= i + 5; j++) {
        if (header_line(&ls[j], "Sent:") || header_line(&ls[j], "Date:"))
            sent = 1;
        else if (header_line(&ls[j], "To:") || header_line(&ls[j], "Subject:") ||
                 header_line(&ls[j], "Cc:"))
            to = 1;
        else
            break;
    }
    return sent && to ? j - i : 0;
}

static int separator_line(const line *l)
{
    const char *p = skip_ws(l->p, l->p + l->len);
    size_t len = (size_t)(l->p + l->len - p);
    return contains_ci(p, len, "-----Original Message-----") ||
           contains_ci(p, len, "----- Original Message -----") ||
           contains_ci(p, len, "Forwarded message") ||
           contains_ci(p, len, "Begin forwarded message") || (len >= 10 && strspn(p, "_") >= 10);
}

static const char *const disclaimer_phrases[] = {"confidential",
                                                 "intended recipient",
                                                 "intended solely",
                                                 "privileged",
                                                 "disclaimer",
                                                 "if you have received this",
                                                 "received this e-mail in error",
                                                 "received this email in error",
                                                 "prohibited",
                                                 "unauthorized",
                                                 "notify the sender",
                                                 "do not read, copy",
                                                 "legally",
                                                 "not an offer",
                                                 "virus",
                                                 NULL};

static int disclaimer_paragraph(const char *p, size_t len)
{
    const char *q = skip_ws(p, p + len);
    size_t ql = (size_t)(p + len - q);
    if (starts_ci(q, ql, "CONFIDENTIALITY NOTICE") || starts_ci(q, ql, "DISCLAIMER") ||
        starts_ci(q, ql, "This e-mail and any") || starts_ci(q, ql, "This email and any") ||
        starts_ci(q, ql, "This message and any") || starts_ci(q, ql, "NOTICE:") ||
        starts_ci(q, ql, "IMPORTANT NOTICE") || starts_ci(q, ql, "The information contained in"))
        return ql > 60;
    int hits = 0;
    for (const char *const *ph = disclaimer_phrases; *ph; ph++)
        hits += contains_ci(q, ql, *ph);
    return hits >= 2 && ql > 120;
}

/* The body's lines and which of them the steps so far kept. */
typedef struct diet_lines {
    line *ls;
    size_t n;
    char *keep; /* 1: line kept */
} diet_lines;

/* Splits body into lines (\r\n, \r and \n end one) pointing into body; a
 * body always has at least one line. Returns 0 with d filled (free with
 * free_lines), or IK_E_NOMEM. */
static int split_lines(const char *body, diet_lines *d)
{
    size_t blen = strlen(body), cap = 0, n = 0;
    line *ls = NULL;
    for (size_t i = 0; i <= blen;) {
        size_t j = i;
        while (j < blen && body[j] != '\n' && body[j] != '\r')
            j++;
        line *g = ik_array_grow(ls, &cap, n + 1, sizeof *g);
        if (!g) {
            free(ls);
            return IK_E_NOMEM;
        }
        ls = g;
        ls[n].p = body + i;
        ls[n].len = j - i;
        n++;
        if (j >= blen)
            break;
        i = j + (body[j] == '\r' && j + 1 < blen && body[j + 1] == '\n' ? 2 : 1);
    }
    char *keep = calloc(n ? n : 1, 1);
    if (!keep) {
        free(ls);
        return IK_E_NOMEM;
    }
    memset(keep, 1, n);
    d->ls = ls;
    d->n = n;
    d->keep = keep;
    return 0;
}

static void free_lines(diet_lines *d)
{
    free(d->keep);
    free(d->ls);
}

/* Drops line k, adding its characters and line end to *counter. */
static void drop_line(diet_lines *d, size_t k, size_t *counter)
{
    d->keep[k] = 0;
    *counter += chars_n(d->ls[k].p, d->ls[k].len) + 1;
}

/* How many lines a forward's marker at line i takes with it: the marker
 * itself (span lines of "wrote:", ob lines of an Outlook block, or the
 * separator line) and, after a separator, the forwarded message's header
 * lines (an Outlook block, or Gmail's From/Date/Subject/To lines). */
static size_t forward_marker_lines(const diet_lines *d, size_t i, size_t span, size_t ob, int sep)
{
    const line *ls = d->ls;
    size_t n = d->n;
    size_t drop = span ? span : ob ? ob : 1;
    if (sep && i + 1 < n) {
        size_t ob2 = outlook_block(ls, n, i + 1);
        drop += ob2;
        if (!ob2) /* Gmail forwards: From/Date/Subject/To lines */
            for (size_t k = i + 1; k < n && k < i + 7; k++) {
                if (header_line(&ls[k], "From:") || header_line(&ls[k], "Date:") ||
                    header_line(&ls[k], "Subject:") || header_line(&ls[k], "To:") ||
                    header_line(&ls[k], "Cc:") || header_line(&ls[k], "Sent:"))
                    drop++;
                else
                    break;
            }
    }
    return drop;
}

/* Step 1: quoted history ("> " lines, and everything from a reply marker on;
 * a forward loses only its marker and header lines). */
static void drop_quotes(diet_lines *d, em_diet_stats *stats)
{
    const line *ls = d->ls;
    size_t n = d->n;
    size_t content = 0; /* non-blank chars kept above */
    for (size_t i = 0; i < n; i++) {
        if (!d->keep[i])
            continue;
        const char *p = skip_ws(ls[i].p, ls[i].p + ls[i].len);
        if (p < ls[i].p + ls[i].len && *p == '>') {
            drop_line(d, i, &stats->quote_chars);
            continue;
        }
        size_t span = (size_t)wrote_marker(ls, n, i);
        size_t ob = span ? 0 : outlook_block(ls, n, i);
        int sep = !span && !ob && separator_line(&ls[i]);
        if (span || ob || sep) {
            /* "wrote:" always starts a quote; a separator or an Outlook
             * block does when a real answer stands above it */
            if (span || (content >= 40 && !contains_ci(ls[i].p, ls[i].len, "forward"))) {
                /* a reply: the rest is history */
                for (size_t k = i; k < n; k++)
                    if (d->keep[k])
                        drop_line(d, k, &stats->quote_chars);
                return;
            }
            /* a forward: drop the marker / header lines, keep the text */
            size_t drop = forward_marker_lines(d, i, span, ob, sep);
            for (size_t k = i; k < i + drop && k < n; k++)
                drop_line(d, k, &stats->quote_chars);
            i += drop - 1;
            continue;
        }
        for (const char *q = ls[i].p; q < ls[i].p + ls[i].len; q++)
            content += !isspace((unsigned char)*q);
    }
}

/* Step 2: disclaimers, paragraph by paragraph (kept non-blank lines). */
static void drop_disclaimers(diet_lines *d, em_diet_stats *stats)
{
    const line *ls = d->ls;
    size_t n = d->n;
    for (size_t i = 0; i < n;) {
        while (i < n && (!d->keep[i] || is_blank(&ls[i])))
            i++;
        size_t j = i;
        while (j < n && d->keep[j] && !is_blank(&ls[j]))
            j++;
        if (j > i) {
            const char *p = ls[i].p;
            size_t len = (size_t)(ls[j - 1].p + ls[j - 1].len - p);
            if (disclaimer_paragraph(p, len))
                for (size_t k = i; k < j; k++)
                    drop_line(d, k, &stats->disclaimer_chars);
        }
        i = j > i ? j : i + 1;
    }
}

/* One line with its runs of blanks (space, tab, form feed, vertical tab,
 * no-break space) made one space and none at either end, appended to lb. */
static void squeeze_line(const line *l, ik_buf *lb)
{
    const char *p = l->p, *end = l->p + l->len;
    int space = 0;
    while (p < end) {
        /* a run of non-blank bytes goes in one append */
        const char *q = p;
        while (q < end && *q != ' ' && *q != '\t' && *q != '\f' && *q != '\v' &&
               !((unsigned char)*q == 0xc2 && q + 1 < end && (unsigned char)q[1] == 0xa0))
            q++;
        if (q > p) {
            if (space)
                ik_buf_addc(lb, ' ');
            ik_buf_add(lb, p, (size_t)(q - p));
            space = 0;
            p = q;
            continue;
        }
        space = lb->len > 0;
        p += (unsigned char)*p == 0xc2 ? 2 : 1;
    }
}

/* Step 3: the kept lines, blanks squeezed, at most one blank line in a row
 * and none at either end. Returns a new string (caller frees) or NULL when
 * out of memory. */
static char *join_kept_lines(const diet_lines *d)
{
    ik_buf b = {0};
    int blank_run = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (!d->keep[i])
            continue;
        ik_buf lb = {0};
        squeeze_line(&d->ls[i], &lb);
        if (lb.len == 0) {
            blank_run++;
        } else {
            if (b.len > 0)
                ik_buf_adds(&b, blank_run ? "\n\n" : "\n");
            ik_buf_add(&b, lb.p, lb.len);
            blank_run = 0;
        }
        if (lb.oom)
            b.oom = 1;
        ik_buf_free(&lb);
    }
    return ik_buf_take(&b);
}

/* The line-ending counts of steps 1 and 2 are estimates: whitespace is what
 * the three steps removed beyond them, and when the estimates overshoot
 * they give back the difference (quotes first). */
static void settle_whitespace(em_diet_stats *stats, size_t after_ws)
{
    size_t removed = stats->quote_chars + stats->disclaimer_chars;
    stats->whitespace_chars =
        stats->chars_in > after_ws + removed ? stats->chars_in - after_ws - removed : 0;
    if (stats->chars_in < after_ws + removed) {
        size_t over = after_ws + removed - stats->chars_in;
        size_t take = over < stats->quote_chars ? over : stats->quote_chars;
        stats->quote_chars -= take;
        over -= take;
        stats->disclaimer_chars -= over < stats->disclaimer_chars ? over : stats->disclaimer_chars;
    }
}

/* Step 4: cuts text (of chars characters) in place to at most max_chars
 * characters, at a line or word end within the last 10% when there is one,
 * without trailing blanks. */
static void apply_cap(char *text, size_t chars, size_t max_chars)
{
    if (max_chars == 0 || chars <= max_chars)
        return;
    size_t i = 0, c = 0, len = strlen(text);
    while (i < len && c < max_chars) {
        i++;
        while (i < len && ((unsigned char)text[i] & 0xc0) == 0x80)
            i++;
        c++;
    }
    /* back up to a line or word end within the last 10% */
    size_t cut = i, min = i - i / 10;
    while (cut > min && text[cut] != '\n' && text[cut] != ' ')
        cut--;
    if (cut == min)
        cut = i;
    while (cut > 0 && (text[cut - 1] == ' ' || text[cut - 1] == '\n'))
        cut--;
    text[cut] = '\0';
}

int em_diet(const char *body, const em_diet_opts *opts, char **out, em_diet_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    *out = NULL;
    if (!body)
        body = "";
    stats->chars_in = em_utf8_chars(body);
    diet_lines d;
    if (split_lines(body, &d) != 0)
        return IK_E_NOMEM;
    if (opts->quotes)
        drop_quotes(&d, stats);
    if (opts->disclaimers)
        drop_disclaimers(&d, stats);
    char *text = join_kept_lines(&d);
    free_lines(&d);
    if (!text)
        return IK_E_NOMEM;
    size_t after_ws = em_utf8_chars(text);
    settle_whitespace(stats, after_ws);
    apply_cap(text, after_ws, opts->max_chars);
    stats->chars_out = em_utf8_chars(text);
    stats->cut_chars = after_ws - stats->chars_out;
    *out = text;
    return 0;
}
