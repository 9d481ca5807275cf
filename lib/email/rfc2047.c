/*
 * rfc2047.c: RFC 2047 encoded words ("=?charset?B|Q?text?=") in header
 * values, decoded the way Python's email package does:
 *
 *   - an encoded word is found anywhere, even inside a word or a quoted
 *     string; an RFC 2231 language ("UTF-8*en") is ignored;
 *   - each word is decoded on its own: Q ('_' is a space, "=XX" a byte, a
 *     bad escape stays as written), B (characters outside the alphabet
 *     skipped, missing padding supplied, a word ends at its padding; one
 *     character too many leaves the word as written);
 *   - whitespace between two encoded words goes, text between them stays;
 *   - the bytes of adjacent words in one charset (compared without case)
 *     are joined before they are converted, so a character split across
 *     words comes out whole;
 *   - conversion as everywhere in the library (em_to_utf8): unknown
 *     charsets read as UTF-8 when valid, else windows-1252; bad bytes
 *     become U+FFFD.
 *
 * GMime merges adjacent words of one charset too, but decodes their base64
 * as one stream, which ends at the first word's padding ("=?UTF-8?B?w4l0w6k=?=
 * =?UTF-8?B?IGxvbmc=?=" gave "Été" for "Été long"). So unstructured text is
 * decoded here, and structured values (addresses, parameters) go to GMime's
 * parsers with each run of adjacent words already decoded and written again
 * as one word.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "common/buf.h"
#include "email.h"

/* One encoded word: its span, charset (language cut off), encoding, text. */
typedef struct ew {
    const char *end; /* just past "?=" */
    const char *charset;
    size_t charset_len;
    char enc; /* 'B' or 'Q' */
    const char *text;
    size_t text_len;
} ew;

/* Where no encoded word can end any more: once "?=" is missing after some
 * point it is missing after every later one, so it is looked for once. */
typedef struct scan {
    const char *no_end_from; /* NULL: not known yet */
    size_t *nuls;            /* NUL characters replaced, or NULL */
} scan;

/* Reads the encoded word at p into w; 0 when there is none. */
static int ew_read(scan *sc, const char *p, ew *w)
{
    if (p[0] != '=' || p[1] != '?')
        return 0;
    const char *cs = p + 2;
    const char *q = strchr(cs, '?');
    if (!q || !q[1] || !strchr("BbQq", q[1]) || q[2] != '?')
        return 0;
    const char *text = q + 3;
    if (sc->no_end_from && text >= sc->no_end_from)
        return 0;
    const char *e = strstr(text, "?=");
    if (!e) {
        sc->no_end_from = text;
        return 0;
    }
    const char *star = memchr(cs, '*', (size_t)(q - cs));
    w->charset = cs;
    w->charset_len = (size_t)((star ? star : q) - cs);
    w->enc = (char)g_ascii_toupper(q[1]);
    w->text = text;
    w->text_len = (size_t)(e - text);
    w->end = e + 2;
    return 1;
}

/* Q: '_' is a space, "=XX" (either case) a byte, anything else as written. */
static void decode_q(const char *s, size_t n, ik_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_') {
            ik_buf_addc(out, ' ');
        } else if (s[i] == '=' && i + 2 < n && g_ascii_isxdigit(s[i + 1]) &&
                   g_ascii_isxdigit(s[i + 2])) {
            ik_buf_addc(
                out, (char)(g_ascii_xdigit_value(s[i + 1]) * 16 + g_ascii_xdigit_value(s[i + 2])));
            i += 2;
        } else {
            ik_buf_addc(out, s[i]);
        }
    }
}

/*
 * B, leniently, as Python's binascii reads it: characters outside the
 * alphabet are skipped; a '=' counts as padding only after two or three
 * characters of a quartet, and the word ends once the quartet and its
 * padding make four; a missing pad is supplied. A quartet left with one
 * character cannot be decoded: the word is kept as written then.
 */
static void decode_b(const char *s, size_t n, ik_buf *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t start = out->len;
    unsigned acc = 0;
    int quad = 0, pads = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=') {
            if (quad >= 2 && quad + ++pads >= 4)
                break;
            continue;
        }
        const char *v = s[i] ? strchr(alphabet, s[i]) : NULL;
        if (!v)
            continue;
        acc = (acc << 6) | (unsigned)(v - alphabet);
        if (quad > 0)
            ik_buf_addc(out, (char)(acc >> (2 * (3 - quad)) & 0xff));
        quad = (quad + 1) % 4;
    }
    if (quad == 1) {
        out->len = start;
        ik_buf_add(out, s, n);
    }
}

/* Converts the bytes of one charset run to UTF-8 onto out and empties raw. */
static void flush_run(scan *sc, ik_buf *raw, const char *charset, size_t charset_len, ik_buf *out)
{
    char cs[64];
    snprintf(cs, sizeof cs, "%.*s", (int)charset_len, charset);
    if (charset_len >= sizeof cs)
        snprintf(cs, sizeof cs, "x-unknown"); /* no charset is that long */
    size_t n = 0;
    char *u = em_to_utf8(raw->p ? raw->p : "", raw->len, cs, &n, sc->nuls);
    if (u)
        ik_buf_add(out, u, n);
    else
        out->oom = 1;
    free(u);
    out->oom |= raw->oom;
    ik_buf_free(raw);
}

static int same_charset(const ew *a, const ew *b)
{
    return a->charset_len == b->charset_len &&
           g_ascii_strncasecmp(a->charset, b->charset, a->charset_len) == 0;
}

/*
 * Decodes the run of encoded words starting with w (read at its start):
 * words separated by whitespace alone belong to it and the whitespace goes.
 * Appends the run's UTF-8 text to out; returns where the run ends.
 */
static const char *decode_run(scan *sc, ew w, ik_buf *out)
{
    ik_buf raw = {0};
    for (;;) {
        if (w.enc == 'Q')
            decode_q(w.text, w.text_len, &raw);
        else
            decode_b(w.text, w.text_len, &raw);
        const char *q = w.end;
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
            q++;
        ew next;
        if (!ew_read(sc, q, &next))
            break;
        if (!same_charset(&w, &next))
            flush_run(sc, &raw, w.charset, w.charset_len, out);
        w = next;
    }
    flush_run(sc, &raw, w.charset, w.charset_len, out);
    return w.end;
}

/* Text outside encoded words: as it is (verbatim), or converted like
 * undeclared 8-bit text: UTF-8 when valid, else windows-1252. */
static void add_plain(scan *sc, const char *s, size_t n, int verbatim, ik_buf *out)
{
    if (n == 0)
        return;
    if (verbatim) {
        ik_buf_add(out, s, n);
        return;
    }
    size_t len = 0;
    char *u = em_to_utf8(s, n, NULL, &len, sc->nuls);
    if (u)
        ik_buf_add(out, u, len);
    else
        out->oom = 1;
    free(u);
}

/* A run's text as one Q-encoded UTF-8 word: only letters and digits stay as
 * they are, so the word is an atom wherever it stands, and Q (unlike base64
 * with its padding) still decodes right should GMime join it with another. */
static void add_q_word(const char *s, size_t n, ik_buf *out)
{
    if (n == 0)
        return;
    ik_buf_adds(out, "=?UTF-8?Q?");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (g_ascii_isalnum(c)) {
            ik_buf_addc(out, (char)c);
        } else {
            char hex[4];
            snprintf(hex, sizeof hex, "=%02X", c);
            ik_buf_adds(out, hex);
        }
    }
    ik_buf_adds(out, "?=");
}

/*
 * Both entry points: each run of encoded words decoded; merge 0 writes its
 * text and converts the rest, merge 1 writes it as one Q word and keeps the
 * rest as it is, except a run touching an '@': a word inside an address
 * itself (not allowed there) stays as written.
 */
static char *rewrite(const char *value, int merge, size_t *nuls)
{
    ik_buf out = {0};
    scan sc = {.nuls = nuls};
    const char *plain = value, *p = value;
    while ((p = strstr(p, "=?"))) {
        ew w;
        if (!ew_read(&sc, p, &w)) {
            p++;
            continue;
        }
        ik_buf text = {0};
        const char *run_end = decode_run(&sc, w, &text);
        if (!merge || (!(p > value && p[-1] == '@') && *run_end != '@')) {
            add_plain(&sc, plain, (size_t)(p - plain), merge, &out);
            if (merge)
                add_q_word(text.p ? text.p : "", text.len, &out);
            else
                ik_buf_add(&out, text.p ? text.p : "", text.len);
            plain = run_end;
        }
        p = run_end;
        out.oom |= text.oom;
        ik_buf_free(&text);
    }
    add_plain(&sc, plain, strlen(plain), merge, &out);
    return ik_buf_take(&out);
}

char *em_header_decode(const char *value, size_t *nuls)
{
    return rewrite(value, 0, nuls);
}

char *em_header_merge_words(const char *value, size_t *nuls)
{
    return rewrite(value, 1, nuls);
}
