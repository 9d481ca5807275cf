/*
 * text.c: text helpers of the email library: UTF-8 validation and repair, charset conversion to
 * UTF-8 (GMime's iconv wrapper, which knows the charset aliases mail uses), and the once-only
 * library initialisation.
 */
#include <dlfcn.h>
#include <errno.h>
#include <iconv.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>
#include <libxml/parser.h>

#include "common/buf.h"
#include "email.h"
#include "common/utf8.h"

static pthread_once_t em_once = PTHREAD_ONCE_INIT;

/*
 * GMime and libxml2 keep process-wide state from their one-time set-up. The
 * engine unloads plugins at exit, which would unload the libraries with that
 * state still allocated (a leak to LeakSanitizer) and make a plugin loaded
 * again run on a torn-down library: they are pinned (RTLD_NODELETE) and never
 * shut down. The handles are deliberately kept.
 */
static void em_init_once(void)
{
    (void)dlopen("libgmime-3.0.so.0", RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    (void)dlopen("libxml2.so.2", RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    g_mime_init();
    xmlInitParser();
}

void em_init(void)
{
    pthread_once(&em_once, em_init_once);
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 when invalid or
 * NUL (which a record's text never carries). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    return s[0] ? ik_utf8_seq(s, n) : 0;
}

int em_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t k = utf8_seq(p + i, len - i);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}

size_t em_utf8_chars(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xc0) != 0x80)
            n++;
    return n;
}

/*
 * Bytes at s (n >= 1, not a valid sequence) that one U+FFFD replaces: the
 * longest start of a valid sequence there, at least one byte. This is
 * Unicode's "maximal subpart" practice, which WHATWG decoders and Python
 * follow too: a character cut short is one U+FFFD, not one per byte.
 */
static size_t bad_run(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    size_t need;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        lo = c == 0xe0 ? 0xa0 : lo; /* no overlong forms */
        hi = c == 0xed ? 0x9f : hi; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        lo = c == 0xf0 ? 0x90 : lo;
        hi = c == 0xf4 ? 0x8f : hi; /* nothing past U+10FFFF */
    } else {
        return 1;
    }
    size_t k = 1;
    while (k <= need && k < n && s[k] >= lo && s[k] <= hi) {
        k++;
        lo = 0x80;
        hi = 0xbf;
    }
    return k;
}

/* Copies s as UTF-8 (valid runs in one go): bad bytes -> U+FFFD, and NUL,
 * which a record's text never carries, -> U+FFFD too, counted in *nuls
 * (when not NULL), so nothing is lost without a trace. */
static void utf8_repair(ik_buf *b, const char *s, size_t len, size_t *nuls)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < len) {
        size_t k = p[i] == 0 ? 0 : p[i] < 0x80 ? 1 : utf8_seq(p + i, len - i);
        if (k > 0) {
            i += k;
            continue;
        }
        ik_buf_add(b, s + run, i - run);
        ik_buf_add(b, "\xef\xbf\xbd", 3);
        if (p[i] == 0 && nuls)
            ++*nuls;
        i += p[i] != 0 ? bad_run(p + i, len - i) : 1;
        run = i;
    }
    ik_buf_add(b, s + run, i - run);
}

/* Runs iconv over the whole input; an invalid or incomplete sequence gives
 * U+FFFD and the converter skips one byte. Returns 0, or -1 when the charset
 * is unknown. */
static int convert(ik_buf *b, const char *buf, size_t len, const char *charset, size_t *nuls)
{
    iconv_t cd = g_mime_iconv_open("UTF-8", charset);
    if (cd == (iconv_t)-1)
        return -1;
    char *in = (char *)buf;
    size_t inleft = len;
    char out[4096];
    ik_buf raw = {0};
    while (inleft > 0) {
        char *o = out;
        size_t oleft = sizeof out;
        size_t r = iconv(cd, &in, &inleft, &o, &oleft);
        ik_buf_add(&raw, out, (size_t)(o - out));
        if (r == (size_t)-1) {
            if (errno == E2BIG)
                continue;
            /* EILSEQ / EINVAL: one bad byte */
            ik_buf_add(&raw, "\xef\xbf\xbd", 3);
            in++;
            inleft--;
            iconv(cd, NULL, NULL, NULL, NULL);
        }
    }
    char *o = out;
    size_t oleft = sizeof out;
    iconv(cd, NULL, NULL, &o, &oleft);
    ik_buf_add(&raw, out, (size_t)(o - out));
    g_mime_iconv_close(cd);
    /* iconv's output is UTF-8 already; repair anyway (NULs, odd converters). */
    if (raw.oom)
        b->oom = 1;
    else
        utf8_repair(b, raw.p ? raw.p : "", raw.len, nuls);
    ik_buf_free(&raw);
    return 0;
}

char *em_to_utf8(const char *buf, size_t len, const char *charset, size_t *outlen, size_t *nuls)
{
    ik_buf b = {0};
    if (!buf) /* an empty GByteArray's data (an empty part) is NULL: no pointer sums on it */
        buf = "";
    int utf8 = charset && (strcasecmp(charset, "utf-8") == 0 || strcasecmp(charset, "utf8") == 0);
    int ascii = !charset || !charset[0] || strcasecmp(charset, "us-ascii") == 0 ||
                strcasecmp(charset, "ascii") == 0;
    /* As browsers do (WHATWG Encoding): mail labelled Latin-1 is written in
     * windows-1252, whose 0x80-0x9F are quotes and dashes, not C1 controls. */
    if (charset &&
        (strcasecmp(charset, "iso-8859-1") == 0 || strcasecmp(charset, "latin1") == 0 ||
         strcasecmp(charset, "iso8859-1") == 0 || strcasecmp(charset, "iso_8859-1") == 0 ||
         strcasecmp(charset, "latin-1") == 0 || strcasecmp(charset, "l1") == 0))
        charset = "windows-1252";
    if (utf8) {
        utf8_repair(&b, buf, len, nuls); /* declared UTF-8: bad bytes become U+FFFD */
    } else if (ascii || convert(&b, buf, len, charset, nuls) != 0) {
        /* No, ASCII or an unknown charset: keep valid UTF-8 (a NUL in it does
         * not make it windows-1252), else read the bytes as windows-1252 (what
         * unlabelled 8-bit mail almost always is). */
        ik_buf_free(&b);
        if (ik_utf8_valid(buf, len) || convert(&b, buf, len, "windows-1252", nuls) != 0) {
            ik_buf_free(&b);
            utf8_repair(&b, buf, len, nuls);
        }
    }
    if (outlen)
        *outlen = b.len;
    return ik_buf_take(&b);
}
