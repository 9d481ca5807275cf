/*
 * mime_body.c: the email record's body and attachments from a GMime
 * message. The walk follows nested multiparts up to EM_MAX_DEPTH: text parts
 * are decoded (quoted-printable, base64, uuencode, format=flowed) and
 * converted from their charset into the body; multipart/alternative prefers
 * text/plain and falls back to HTML turned into text; a forwarded
 * message/rfc822 part adds its headers and body after a "Forwarded message"
 * line. Every other part is an attachment with its size and SHA-256 (and its
 * content only when asked).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include <intake/plugin.h>

#include "common/sha256.h"
#include "mime_internal.h"

/* Decoded content of a leaf part (transfer encoding undone). Caller frees
 * the GByteArray with g_byte_array_unref; NULL when there is none. */
static GByteArray *part_bytes(GMimePart *part)
{
    GMimeDataWrapper *dw = g_mime_part_get_content(part);
    if (!dw)
        return NULL;
    GMimeStream *mem = g_mime_stream_mem_new();
    if (!mem)
        return NULL;
    g_mime_data_wrapper_write_to_stream(dw, mem);
    GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    /* the array is ours now: the stream must not free it */
    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
    g_object_unref(mem);
    return ba;
}

/*
 * RFC 3676 format=flowed: a line ending in a space continues on the next line
 * of the same quote depth; space-stuffing is undone; with DelSp=yes the
 * trailing space goes too. Quote markers are kept once per joined line.
 * Returns a new string or NULL on no memory.
 */
static char *unflow(const char *t, int delsp)
{
    ik_buf b = {0};
    int open_depth = -1; /* depth of a line left open (soft break), -1 none */
    const char *p = t;
    while (*p) {
        const char *le = strchr(p, '\n');
        if (!le)
            le = p + strlen(p);
        const char *q = p;
        int depth = 0;
        while (q < le && *q == '>') {
            depth++;
            q++;
        }
        if (q < le && *q == ' ') /* space-stuffing, or the space after quote markers */
            q++;
        const char *e = le;
        if (e > q && e[-1] == '\r')
            e--;
        int sig = e - q == 3 && strncmp(q, "-- ", 3) == 0;
        int soft = !sig && e > q && e[-1] == ' ';
        if (open_depth >= 0 && open_depth != depth) {
            ik_buf_addc(&b, '\n'); /* quote depth changed: the paragraph ends */
            open_depth = -1;
        }
        if (open_depth < 0)
            for (int i = 0; i < depth; i++)
                ik_buf_adds(&b, i + 1 < depth ? ">" : "> ");
        ik_buf_add(&b, q, (size_t)(e - q - (soft && delsp ? 1 : 0)));
        if (soft) {
            open_depth = depth;
        } else {
            open_depth = -1;
            if (*le)
                ik_buf_addc(&b, '\n');
        }
        p = *le ? le + 1 : le;
    }
    return ik_buf_take(&b);
}

/* Text of a text/ part in UTF-8 (HTML turned into text; *fallback 1 when
 * the tag-stripping fallback made it; NULs made U+FFFD added to *nuls).
 * NULL on no memory. */
static char *part_text(GMimePart *part, int *is_html, int *fallback, size_t *nuls)
{
    GMimeContentType *ct = g_mime_object_get_content_type(GMIME_OBJECT(part));
    const char *charset = ct ? g_mime_content_type_get_parameter(ct, "charset") : NULL;
    GByteArray *ba = part_bytes(part);
    size_t len = ba ? ba->len : 0;
    char *text = em_to_utf8(ba ? (const char *)ba->data : "", len, charset, &len, nuls);
    if (ba)
        g_byte_array_unref(ba);
    *is_html = ct && g_mime_content_type_is_type(ct, "text", "html");
    const char *fmt = ct ? g_mime_content_type_get_parameter(ct, "format") : NULL;
    if (text && !*is_html && fmt && g_ascii_strcasecmp(fmt, "flowed") == 0) {
        const char *delsp = g_mime_content_type_get_parameter(ct, "delsp");
        char *u = unflow(text, delsp && g_ascii_strcasecmp(delsp, "yes") == 0);
        free(text);
        text = u;
    }
    if (text && *is_html) {
        char *plain = em_html_to_text(text, len, fallback);
        free(text);
        text = plain;
    }
    return text;
}

/* The filename (Content-Disposition, disposition 1) or name (Content-Type)
 * parameter of a raw header value, read again once its encoded words are
 * merged. NULL when there is none; caller g_frees. */
static char *param_again(const char *raw, GMimeParserOptions *po, int disposition, size_t *nuls)
{
    char *unfolded = g_mime_utils_header_unfold(raw);
    char *merged = unfolded ? em_header_merge_words(unfolded, nuls) : NULL;
    char *v = NULL;
    if (merged && disposition) {
        GMimeContentDisposition *d = g_mime_content_disposition_parse(po, merged);
        v = d ? g_strdup(g_mime_content_disposition_get_parameter(d, "filename")) : NULL;
        if (d)
            g_object_unref(d);
    } else if (merged) {
        GMimeContentType *t = g_mime_content_type_parse(po, merged);
        v = t ? g_strdup(g_mime_content_type_get_parameter(t, "name")) : NULL;
        if (t)
            g_object_unref(t);
    }
    g_free(unfolded);
    free(merged);
    return v;
}

/* A part's file name as g_mime_part_get_filename() finds it (RFC 2231 too),
 * but with encoded words in it decoded whole. NULL when it has none; caller
 * g_frees. */
static char *part_filename(GMimePart *part, GMimeParserOptions *po, size_t *nuls)
{
    const char *cd = mime_raw_header(GMIME_OBJECT(part), "Content-Disposition");
    const char *ct = mime_raw_header(GMIME_OBJECT(part), "Content-Type");
    if (!(cd && strstr(cd, "=?")) && !(ct && strstr(ct, "=?")))
        return g_strdup(g_mime_part_get_filename(part));
    char *name = cd ? param_again(cd, po, 1, nuls) : NULL;
    return name ? name : ct ? param_again(ct, po, 0, nuls) : NULL;
}

static void add_attachment(walk_ctx *c, GMimePart *part)
{
    GMimeContentType *ct = g_mime_object_get_content_type(GMIME_OBJECT(part));
    char *mime = ct ? g_mime_content_type_get_mime_type(ct) : NULL;
    char *fname = part_filename(part, c->po, &c->nuls);
    GByteArray *ba = part_bytes(part);
    char hex[65];
    int sha_rc = ik_sha256_hex(ba ? ba->data : NULL, ba ? ba->len : 0, hex);
    json_object *a = sha_rc == 0 ? json_object_new_object() : NULL;
    if (!a) {
        c->oom = 1;
    } else {
        json_object_object_add(a, "filename", fname ? mime_jstr(fname) : json_object_new_null());
        json_object_object_add(a, "content_type",
                               mime_jstr(mime ? mime : "application/octet-stream"));
        json_object_object_add(a, "size", json_object_new_int64(ba ? (int64_t)ba->len : 0));
        json_object_object_add(a, "sha256", json_object_new_string(hex));
        if (c->opts && c->opts->keep_content) {
            gchar *b64 = g_base64_encode(ba ? ba->data : (const guint8 *)"", ba ? ba->len : 0);
            json_object_object_add(a, "content_base64", json_object_new_string(b64 ? b64 : ""));
            g_free(b64);
        }
        json_object_array_add(c->attachments, a);
    }
    if (ba)
        g_byte_array_unref(ba);
    g_free(mime);
    g_free(fname);
}

static void append_body(walk_ctx *c, const char *text)
{
    if (!text || !text[0])
        return;
    if (c->body.len > 0)
        ik_buf_adds(&c->body, "\n\n");
    ik_buf_adds(&c->body, text);
    c->text_parts++;
}

static void walk_message(walk_ctx *c, GMimeMessage *m, int depth, int forwarded);

/* Best alternative: text/plain with text, else text/html, else the last part. */
static GMimeObject *pick_alternative(GMimeMultipart *mp)
{
    int n = g_mime_multipart_get_count(mp);
    GMimeObject *html = NULL, *other = NULL;
    for (int i = 0; i < n; i++) {
        GMimeObject *p = g_mime_multipart_get_part(mp, i);
        GMimeContentType *ct = g_mime_object_get_content_type(p);
        if (GMIME_IS_PART(p) && ct && g_mime_content_type_is_type(ct, "text", "plain")) {
            GByteArray *ba = part_bytes(GMIME_PART(p));
            int has = 0;
            for (guint k = 0; ba && k < ba->len && !has; k++)
                has = ba->data[k] > ' ';
            if (ba)
                g_byte_array_unref(ba);
            if (has)
                return p;
        } else if (GMIME_IS_PART(p) && ct && g_mime_content_type_is_type(ct, "text", "html")) {
            html = p;
        } else {
            other = p; /* e.g. multipart/related holding the html */
        }
    }
    return html ? html : other;
}

static void walk_object(walk_ctx *c, GMimeObject *obj, int depth)
{
    if (!obj || depth > EM_MAX_DEPTH)
        return;
    if (GMIME_IS_MULTIPART(obj)) {
        GMimeMultipart *mp = GMIME_MULTIPART(obj);
        GMimeContentType *ct = g_mime_object_get_content_type(obj);
        int n = g_mime_multipart_get_count(mp);
        if (ct && g_mime_content_type_is_type(ct, "multipart", "alternative")) {
            GMimeObject *best = pick_alternative(mp);
            walk_object(c, best, depth + 1);
            /* attachments hiding in the other alternatives are still attachments */
            for (int i = 0; i < n; i++) {
                GMimeObject *p = g_mime_multipart_get_part(mp, i);
                if (p != best && GMIME_IS_PART(p) && g_mime_part_is_attachment(GMIME_PART(p)))
                    add_attachment(c, GMIME_PART(p));
            }
            return;
        }
        for (int i = 0; i < n; i++)
            walk_object(c, g_mime_multipart_get_part(mp, i), depth + 1);
        return;
    }
    if (GMIME_IS_MESSAGE_PART(obj)) {
        GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
        if (inner)
            walk_message(c, inner, depth + 1, 1);
        return;
    }
    if (!GMIME_IS_PART(obj))
        return;
    GMimePart *part = GMIME_PART(obj);
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    int text = ct && (g_mime_content_type_is_type(ct, "text", "plain") ||
                      g_mime_content_type_is_type(ct, "text", "html"));
    if (text && !g_mime_part_is_attachment(part)) {
        int is_html = 0, fallback = 0;
        char *t = part_text(part, &is_html, &fallback, &c->nuls);
        if (!t) {
            c->oom = 1;
            return;
        }
        if (is_html)
            c->html_used = 1;
        c->html_fallback += fallback;
        append_body(c, t);
        free(t);
        return;
    }
    add_attachment(c, part);
}

/*
 * What the parse did that the text does not show goes under "diet" (kept and
 * completed by the token diet): HTML parts made by the fallback, NUL
 * characters made U+FFFD. Written only when there is something to say, so a
 * clean message's record is as before.
 */
static void add_notes(json_object *rec, const walk_ctx *c)
{
    if (c->html_fallback == 0 && c->nuls == 0)
        return;
    json_object *notes = json_object_new_object();
    if (!notes)
        return;
    json_object_object_add(notes, "html_fallback", json_object_new_int(c->html_fallback));
    json_object_object_add(notes, "nul_replaced", json_object_new_int64((int64_t)c->nuls));
    json_object_object_add(rec, "diet", notes);
}

static void forward_header(walk_ctx *c, GMimeMessage *m)
{
    ik_buf *b = &c->body;
    if (b->len > 0)
        ik_buf_adds(b, "\n\n");
    ik_buf_adds(b, "---------- Forwarded message ----------\n");
    InternetAddressList *from = mime_message_addresses(m, c->po, GMIME_ADDRESS_TYPE_FROM, &c->nuls);
    gchar *f = from ? internet_address_list_to_string(from, NULL, FALSE) : NULL;
    char *subject = mime_message_subject(m, &c->nuls);
    GDateTime *d = g_mime_message_get_date(m);
    gchar *ds = d ? g_date_time_format(d, "%a, %d %b %Y %H:%M:%S %z") : NULL;
    char *line = NULL;
    if (f && asprintf(&line, "From: %s\n", f) > 0)
        ik_buf_adds(b, line);
    free(line);
    line = NULL;
    if (ds && asprintf(&line, "Date: %s\n", ds) > 0)
        ik_buf_adds(b, line);
    free(line);
    line = NULL;
    if (subject && asprintf(&line, "Subject: %s\n", subject) > 0)
        ik_buf_adds(b, line);
    free(line);
    free(subject);
    if (from)
        g_object_unref(from);
    g_free(f);
    g_free(ds);
    /* the next append_body adds the blank line */
    while (b->len > 0 && b->p[b->len - 1] == '\n')
        b->p[--b->len] = '\0';
}

static void walk_message(walk_ctx *c, GMimeMessage *m, int depth, int forwarded)
{
    if (depth > EM_MAX_DEPTH)
        return;
    if (forwarded)
        forward_header(c, m);
    walk_object(c, g_mime_message_get_mime_part(m), depth + 1);
}

/* body, body_format, attachments and the parser's notes. IK_E_NOMEM. */
int mime_add_body(json_object *rec, walk_ctx *c, GMimeMessage *m)
{
    c->attachments = json_object_new_array();
    if (!c->attachments)
        return IK_E_NOMEM;
    walk_message(c, m, 0, 0);
    char *body = ik_buf_take(&c->body);
    if (!body || c->oom) {
        free(body);
        json_object_put(c->attachments);
        return IK_E_NOMEM;
    }
    json_object_object_add(rec, "body", json_object_new_string(body));
    free(body);
    json_object_object_add(rec, "body_format",
                           json_object_new_string(c->html_used ? "html" : "plain"));
    json_object_object_add(rec, "attachments", c->attachments);
    add_notes(rec, c);
    return 0;
}
