/*
 * mime_nul.c: refuses a message with a NUL byte in a header, of the message
 * or of any part or forwarded message, saying which header and where.
 */
#include <stdio.h>
#include <string.h>

#include <gmime/gmime.h>

#include <intake/plugin.h>

#include "mime_internal.h"

/* End of the header (with its folded lines) that starts at p: just past the
 * newline of its last line, or end. */
static const char *header_end(const char *p, const char *end)
{
    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl || nl + 1 >= end || (nl[1] != ' ' && nl[1] != '\t'))
            return nl ? nl + 1 : end;
        p = nl + 1;
    }
}

/* IK_E_PARSE with "NUL byte in header 'Name' at byte offset N" in err; the
 * header starts at hdr, the NUL is at nul (both in buf). */
static int nul_error(const char *name, const char *buf, const char *hdr, const char *nul, char *err,
                     size_t errlen)
{
    char field[48];
    size_t n = 0;
    for (const char *p = hdr; p < nul && *p != ':' && n < sizeof field - 1; p++)
        field[n++] = *p > ' ' && *p < 127 ? *p : '?';
    field[n] = '\0';
    char what[160];
    snprintf(what, sizeof what, "NUL byte in header '%s' (header text cannot hold one)", field);
    mime_set_err(err, errlen, name, "%s at byte offset %lld", what, (long long)(nul - buf));
    return IK_E_PARSE;
}

/* The top-level header block [start, its blank line): a NUL in it, or NULL,
 * and the start of the header holding it in *hdr. */
static const char *nul_in_block(const char *buf, size_t len, size_t start, const char **hdr)
{
    const char *end = buf + len;
    for (const char *p = buf + start; p < end && *p != '\n' && *p != '\r';) {
        const char *e = header_end(p, end);
        const char *nul = memchr(p, '\0', (size_t)(e - p));
        if (nul) {
            *hdr = p;
            return nul;
        }
        p = e;
    }
    return NULL;
}

/*
 * The headers of every part and forwarded message below o, found by GMime's
 * offsets (relative to base): a NUL in one, or NULL, with the start of that
 * header in *hdr. A header whose offset does not point at its name (a part
 * GMime parsed from decoded content) is skipped.
 */
static const char *nul_in_parts(GMimeObject *o, const char *base, const char *end, int depth,
                                const char **hdr)
{
    if (!o || depth > EM_MAX_DEPTH)
        return NULL;
    GMimeHeaderList *hl = g_mime_object_get_header_list(o);
    for (int i = 0; hl && i < g_mime_header_list_get_count(hl); i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        gint64 off = g_mime_header_get_offset(h);
        const char *hn = g_mime_header_get_name(h);
        size_t n = hn ? strlen(hn) : 0;
        if (off < 0 || off >= end - base || (size_t)(end - base - off) < n ||
            g_ascii_strncasecmp(base + off, hn ? hn : "", n) != 0)
            continue;
        const char *e = header_end(base + off, end);
        const char *nul = memchr(base + off, '\0', (size_t)(e - (base + off)));
        if (nul) {
            *hdr = base + off;
            return nul;
        }
    }
    const char *nul = NULL;
    if (GMIME_IS_MESSAGE(o))
        nul =
            nul_in_parts(g_mime_message_get_mime_part(GMIME_MESSAGE(o)), base, end, depth + 1, hdr);
    else if (GMIME_IS_MESSAGE_PART(o))
        nul = nul_in_parts((GMimeObject *)g_mime_message_part_get_message(GMIME_MESSAGE_PART(o)),
                           base, end, depth + 1, hdr);
    else if (GMIME_IS_MULTIPART(o))
        for (int i = 0; !nul && i < g_mime_multipart_get_count(GMIME_MULTIPART(o)); i++)
            nul = nul_in_parts(g_mime_multipart_get_part(GMIME_MULTIPART(o), i), base, end,
                               depth + 1, hdr);
    return nul;
}

/*
 * Refuses a message with a NUL byte in any header (GMime keeps header
 * values as C strings, so the text after it would vanish: "A\0B <a@b.c>"
 * was read as the address "A"). A NUL in a body is no reason: text parts
 * turn it into U+FFFD, counted. Costs one memchr for a message without NUL.
 */
int mime_nul_headers(const char *name, const char *buf, size_t len, size_t start, GMimeMessage *m,
                     char *err, size_t errlen)
{
    if (!memchr(buf, '\0', len))
        return 0;
    const char *hdr = NULL;
    const char *nul = nul_in_block(buf, len, start, &hdr);
    if (!nul && m)
        nul = nul_in_parts(GMIME_OBJECT(m), buf + start, buf + len, 0, &hdr);
    return nul ? nul_error(name, buf, hdr, nul, err, errlen) : 0;
}
