/*
 * mime.c: one RFC 5322 message -> email record, with GMime 3. Headers come
 * decoded (RFC 2047, RFC 2231 file names) and repaired to valid UTF-8; bodies
 * are decoded (quoted-printable, base64, uuencode) and converted from their
 * charset; multipart/alternative prefers text/plain and falls back to HTML
 * turned into text; nested multiparts are walked up to EM_MAX_DEPTH and a
 * forwarded message/rfc822 part adds its headers and body after a
 * "Forwarded message" line. Every other part is an attachment with its size
 * and SHA-256 (and its content only when asked).
 *
 * A message is refused (IK_E_PARSE, with what and where) when GMime cannot
 * build it, when it has no header block (none of From, To, Subject, Date,
 * Message-ID), or when the parser reports a critical problem (a header name
 * that is not one, a multipart without boundary, a nesting attack).
 *
 * This file drives the parse: the parser's warnings, the checks before
 * GMime sees the input, em_parse_mime(). The steps are in mime_headers.c,
 * mime_body.c and mime_nul.c (see mime_internal.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include <intake/plugin.h>

#include "mime_internal.h"

static const char *warning_name(int code)
{
    switch (code) {
    case GMIME_CRIT_INVALID_HEADER_NAME:
        return "invalid header name";
    case GMIME_CRIT_CONFLICTING_HEADER:
        return "conflicting header";
    case GMIME_CRIT_CONFLICTING_PARAMETER:
        return "conflicting header parameter";
    case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
        return "multipart without boundary";
    case GMIME_CRIT_NESTING_OVERFLOW:
        return "MIME nesting too deep";
    case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
        return "MIME part without headers or content";
    default:
        return "parser warning";
    }
}

static void on_warning(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer data)
{
    walk_ctx *c = data;
    c->warnings++;
    int critical = code == GMIME_CRIT_NESTING_OVERFLOW ||
                   code == GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT ||
                   code == GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY;
    if (critical && c->crit_off < 0) {
        c->crit_off = offset;
        c->crit_code = (int)code;
        snprintf(c->crit_item, sizeof c->crit_item, "%s", item ? item : "");
    }
}

void mime_set_err(char *err, size_t errlen, const char *name, const char *fmt, const char *what,
                  long long off)
{
    char msg[300];
    snprintf(msg, sizeof msg, fmt, what, off);
    snprintf(err, errlen, "%s%s%s", name && name[0] ? name : "", name && name[0] ? ": " : "", msg);
}

/* Skips leading blank lines and an mbox "From " line; returns the offset. */
static size_t header_start(const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len && (buf[i] == '\r' || buf[i] == '\n'))
        i++;
    if (len - i >= 5 && memcmp(buf + i, "From ", 5) == 0) {
        const char *nl = memchr(buf + i, '\n', len - i);
        i = nl ? (size_t)(nl - buf) + 1 : len;
    }
    return i;
}

/* 1 when the first line looks like "Name: value" (a header). */
static int looks_like_header(const char *p, size_t len)
{
    size_t i = 0;
    while (i < len && i < 80 && p[i] > ' ' && p[i] < 127 && p[i] != ':')
        i++;
    return i > 0 && i < len && p[i] == ':';
}

/* GMime's message from len bytes (warnings go to po's callback); NULL when
 * GMime finds none, or on no memory. */
static GMimeMessage *construct(const char *buf, size_t len, GMimeParserOptions *po)
{
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(buf, len);
    GMimeParser *parser = stream ? g_mime_parser_new_with_stream(stream) : NULL;
    GMimeMessage *m = NULL;
    if (parser) {
        g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
        m = g_mime_parser_construct_message(parser, po);
        g_object_unref(parser);
    }
    if (stream)
        g_object_unref(stream);
    return m;
}

/* Refuses input that is not a message before GMime sees it: empty, or a
 * first line that is not a header. Returns 0 with *start the header block's
 * offset, or IK_E_PARSE with err. */
static int precheck(const char *name, const char *buf, size_t len, size_t *start, char *err,
                    size_t errlen)
{
    *start = header_start(buf, len);
    if (*start >= len) {
        mime_set_err(err, errlen, name, "%s (offset %lld)", "empty message, no header block",
                     (long long)len);
        return IK_E_PARSE;
    }
    if (!looks_like_header(buf + *start, len - *start)) {
        mime_set_err(err, errlen, name, "%s (offset %lld)",
                     "not a MIME message: the first line is not a header (\"Name: value\")",
                     (long long)*start);
        return IK_E_PARSE;
    }
    return 0;
}

/* IK_E_PARSE with err when the parser reported a critical problem. */
static int critical(const walk_ctx *c, const char *name, size_t start, char *err, size_t errlen)
{
    if (c->crit_off < 0)
        return 0;
    char what[200];
    snprintf(what, sizeof what, "malformed MIME: %s%s%s%s", warning_name(c->crit_code),
             c->crit_item[0] ? " \"" : "", c->crit_item, c->crit_item[0] ? "\"" : "");
    mime_set_err(err, errlen, name, "%s at byte offset %lld", what,
                 (long long)(c->crit_off + (long long)start));
    return IK_E_PARSE;
}

int em_parse_mime(const char *name, const char *buf, size_t len, const em_opts *opts,
                  json_object **out, char *err, size_t errlen)
{
    em_init();
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    size_t start;
    int rc = precheck(name, buf, len, &start, err, errlen);
    if (rc != 0)
        return rc;
    walk_ctx c = {.opts = opts, .crit_off = -1};
    GMimeParserOptions *po = g_mime_parser_options_new();
    GMimeMessage *m = NULL;
    json_object *rec = NULL;
    rc = IK_E_NOMEM;
    if (!po)
        goto done;
    c.po = po;
    g_mime_parser_options_set_warning_callback(po, on_warning, &c);
    /* undeclared 8-bit header text: UTF-8 when valid, else windows-1252 */
    static const char *fallback[] = {"UTF-8", "windows-1252", NULL};
    g_mime_parser_options_set_fallback_charsets(po, fallback);
    m = construct(buf + start, len - start, po);
    if (!m) {
        mime_set_err(err, errlen, name, "%s (offset %lld)",
                     "not a MIME message: GMime found no message header block", (long long)start);
        rc = IK_E_PARSE;
        goto done;
    }
    if ((rc = critical(&c, name, start, err, errlen)) != 0 ||
        (rc = mime_nul_headers(name, buf, len, start, m, err, errlen)) != 0)
        goto done;
    rc = IK_E_NOMEM;
    if (!(rec = json_object_new_object()))
        goto done;
    if ((rc = mime_add_headers(rec, m, &c, name, start, err, errlen)) != 0 ||
        (rc = mime_add_body(rec, &c, m)) != 0)
        goto done;
    *out = rec;
    rec = NULL;
done:
    if (rc == IK_E_NOMEM && err && errlen && !err[0])
        mime_set_err(err, errlen, name, "%s (after %lld bytes)", "out of memory", (long long)len);
    json_object_put(rec);
    ik_buf_free(&c.body);
    if (m)
        g_object_unref(m);
    if (po)
        g_mime_parser_options_free(po);
    return rc;
}
