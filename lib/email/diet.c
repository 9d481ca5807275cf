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

int em_diet(const char *body, const em_diet_opts *opts, char **out, em_diet_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    *out = NULL;
    if (!body)
        body = "";
    stats->chars_in = em_utf8_chars(body);

    /* split into lines (\r\n, \r and \n) */
    size_t blen = strlen(body), cap = 64, n = 0;
    line *ls = malloc(cap * sizeof *ls);
    if (!ls)
        return IK_E_NOMEM;
    for (size_t i = 0; i <= blen;) {
        size_t j = i;
        while (j < blen && body[j] != '\n' && body[j] != '\r')
            j++;
        if (n == cap) {
            line *g = realloc(ls, cap * 2 * sizeof *ls);
            if (!g) {
                free(ls);
                return IK_E_NOMEM;
            }
            ls = g;
            cap *= 2;
        }
        ls[n].p = body + i;
        ls[n].len = j - i;
        n++;
        if (j >= blen)
            break;
        i = j + (body[j] == '\r' && j + 1 < blen && body[j + 1] == '\n' ? 2 : 1);
    }
    char *keep = calloc(n ? n : 1, 1); /* 1: line kept */
    if (!keep) {
        free(ls);
        return IK_E_NOMEM;
    }
    memset(keep, 1, n);

    /* 1. quoted history */
    if (opts->quotes) {
        size_t content = 0; /* non-blank chars kept above */
        for (size_t i = 0; i < n; i++) {
            if (!keep[i])
                continue;
            const char *p = skip_ws(ls[i].p, ls[i].p + ls[i].len);
            if (p < ls[i].p + ls[i].len && *p == '>') {
                keep[i] = 0;
                stats->quote_chars += chars_n(ls[i].p, ls[i].len) + 1;
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
                        if (keep[k]) {
                            keep[k] = 0;
                            stats->quote_chars += chars_n(ls[k].p, ls[k].len) + 1;
                        }
                    break;
                }
                /* a forward: drop the marker / header lines, keep the text */
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
                for (size_t k = i; k < i + drop && k < n; k++) {
                    keep[k] = 0;
                    stats->quote_chars += chars_n(ls[k].p, ls[k].len) + 1;
                }
                i += drop - 1;
                continue;
            }
            for (const char *q = ls[i].p; q < ls[i].p + ls[i].len; q++)
                content += !isspace((unsigned char)*q);
        }
    }

    /* 2. disclaimers, paragraph by paragraph */
    if (opts->disclaimers) {
        for (size_t i = 0; i < n;) {
            while (i < n && (!keep[i] || is_blank(&ls[i])))
                i++;
            size_t j = i;
            while (j < n && keep[j] && !is_blank(&ls[j]))
                j++;
            if (j > i) {
                const char *p = ls[i].p;
                size_t len = (size_t)(ls[j - 1].p + ls[j - 1].len - p);
                if (disclaimer_paragraph(p, len))
                    for (size_t k = i; k < j; k++) {
                        keep[k] = 0;
                        stats->disclaimer_chars += chars_n(ls[k].p, ls[k].len) + 1;
                    }
            }
            i = j > i ? j : i + 1;
        }
    }

    /* 3. whitespace, while copying the kept lines */
    ik_buf b = {0};
    int blank_run = 0;
    for (size_t i = 0; i < n; i++) {
        if (!keep[i])
            continue;
        ik_buf lb = {0};
        const char *p = ls[i].p, *end = ls[i].p + ls[i].len;
        int space = 0;
        while (p < end) {
            /* a run of non-blank bytes goes in one append */
            const char *q = p;
            while (q < end && *q != ' ' && *q != '\t' && *q != '\f' && *q != '\v' &&
                   !((unsigned char)*q == 0xc2 && q + 1 < end && (unsigned char)q[1] == 0xa0))
                q++;
            if (q > p) {
                if (space)
                    ik_buf_addc(&lb, ' ');
                ik_buf_add(&lb, p, (size_t)(q - p));
                space = 0;
                p = q;
                continue;
            }
            space = lb.len > 0;
            p += (unsigned char)*p == 0xc2 ? 2 : 1;
        }
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
    free(keep);
    free(ls);
    char *text = ik_buf_take(&b);
    if (!text)
        return IK_E_NOMEM;
    size_t after_ws = em_utf8_chars(text);
    size_t removed = stats->quote_chars + stats->disclaimer_chars;
    /* the line-ending counts above are estimates: whitespace is the rest */
    stats->whitespace_chars =
        stats->chars_in > after_ws + removed ? stats->chars_in - after_ws - removed : 0;
    if (stats->chars_in < after_ws + removed) {
        size_t over = after_ws + removed - stats->chars_in;
        size_t take = over < stats->quote_chars ? over : stats->quote_chars;
        stats->quote_chars -= take;
        over -= take;
        stats->disclaimer_chars -= over < stats->disclaimer_chars ? over : stats->disclaimer_chars;
    }

    /* 4. the cap */
    if (opts->max_chars > 0 && after_ws > opts->max_chars) {
        size_t i = 0, c = 0, len = strlen(text);
        while (i < len && c < opts->max_chars) {
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
    stats->chars_out = em_utf8_chars(text);
    stats->cut_chars = after_ws - stats->chars_out;
    *out = text;
    return 0;
}
