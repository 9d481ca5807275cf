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
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include <intake/plugin.h>

#include "common/buf.h"
#include "common/sha256.h"
#include "email.h"

typedef struct walk_ctx {
    const em_opts *opts;
    GMimeParserOptions *po; /* the parse's options, for headers read again */
    ik_buf body;
    json_object *attachments;
    int html_used;     /* some body text came from HTML */
    int html_fallback; /* HTML parts libxml2 could not read, stripped of tags instead */
    size_t nuls;       /* NUL characters in text made U+FFFD */
    int text_parts;    /* text parts taken into the body */
    int oom;
    int64_t crit_off; /* offset of the first critical parser issue, -1 none */
    int crit_code;
    char crit_item[120];
    int warnings;
} walk_ctx;

static json_object *jstr(const char *s)
{
    if (!s)
        return json_object_new_null();
    size_t n = strlen(s);
    if (em_utf8_valid(s, n))
        return json_object_new_string_len(s, (int)n);
    char *fixed = em_to_utf8(s, n, "utf-8", NULL, NULL);
    json_object *o = fixed ? json_object_new_string(fixed) : NULL;
    free(fixed);
    return o;
}

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

/* Address list -> [{name, email}] (groups flattened). */
static void add_addresses(json_object *arr, InternetAddressList *list, int depth)
{
    if (!list || depth > 4)
        return;
    int n = internet_address_list_length(list);
    for (int i = 0; i < n && i < 500; i++) {
        InternetAddress *ia = internet_address_list_get_address(list, i);
        if (INTERNET_ADDRESS_IS_GROUP(ia)) {
            add_addresses(arr, internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)),
                          depth + 1);
            continue;
        }
        if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
            continue;
        json_object *o = json_object_new_object();
        if (!o)
            continue;
        const char *name = internet_address_get_name(ia);
        json_object_object_add(o, "name", name && name[0] ? jstr(name) : json_object_new_null());
        json_object_object_add(
            o, "email", jstr(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia))));
        json_object_array_add(arr, o);
    }
}

static json_object *address_array(InternetAddressList *list)
{
    json_object *arr = json_object_new_array();
    if (arr)
        add_addresses(arr, list, 0);
    return arr;
}

/* Raw (folded) value of the last header called name in o's own header list,
 * which is the one GMime's message getters read; NULL when there is none. */
static const char *raw_header(GMimeObject *o, const char *name)
{
    GMimeHeaderList *hl = g_mime_object_get_header_list(o);
    for (int i = hl ? g_mime_header_list_get_count(hl) - 1 : -1; i >= 0; i--) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        if (g_ascii_strcasecmp(g_mime_header_get_name(h), name) == 0)
            return g_mime_header_get_raw_value(h);
    }
    return NULL;
}

/* Subject with its encoded words decoded whole (rfc2047.c); NULL when the
 * message has none or on no memory. Caller frees. */
static char *message_subject(GMimeMessage *m, size_t *nuls)
{
    const char *raw = raw_header(GMIME_OBJECT(m), "Subject");
    char *unfolded = raw ? g_mime_utils_header_unfold(raw) : NULL;
    char *s = unfolded ? em_header_decode(unfolded, nuls) : NULL;
    g_free(unfolded);
    return s;
}

/*
 * A message's address list of one type. GMime's own when the header has no
 * encoded word; else the header parsed again once each run of adjacent
 * encoded words is one word (em_header_merge_words), which GMime decodes
 * whole. Returns a new reference (g_object_unref) or NULL.
 */
static InternetAddressList *message_addresses(GMimeMessage *m, GMimeParserOptions *po,
                                              GMimeAddressType type, size_t *nuls)
{
    static const char *const names[] = {[GMIME_ADDRESS_TYPE_SENDER] = "Sender",
                                        [GMIME_ADDRESS_TYPE_FROM] = "From",
                                        [GMIME_ADDRESS_TYPE_REPLY_TO] = "Reply-To",
                                        [GMIME_ADDRESS_TYPE_TO] = "To",
                                        [GMIME_ADDRESS_TYPE_CC] = "Cc",
                                        [GMIME_ADDRESS_TYPE_BCC] = "Bcc"};
    InternetAddressList *list = g_mime_message_get_addresses(m, type);
    const char *raw = raw_header(GMIME_OBJECT(m), names[type]);
    if (!raw || !strstr(raw, "=?"))
        return list ? g_object_ref(list) : NULL;
    char *unfolded = g_mime_utils_header_unfold(raw);
    char *merged = unfolded ? em_header_merge_words(unfolded, nuls) : NULL;
    InternetAddressList *parsed = merged ? internet_address_list_parse(po, merged) : NULL;
    g_free(unfolded);
    free(merged);
    return parsed ? parsed : list ? g_object_ref(list) : NULL;
}

static int list_length(InternetAddressList *l)
{
    return l ? internet_address_list_length(l) : 0;
}

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
    const char *cd = raw_header(GMIME_OBJECT(part), "Content-Disposition");
    const char *ct = raw_header(GMIME_OBJECT(part), "Content-Type");
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
        json_object_object_add(a, "filename", fname ? jstr(fname) : json_object_new_null());
        json_object_object_add(a, "content_type", jstr(mime ? mime : "application/octet-stream"));
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
    InternetAddressList *from = message_addresses(m, c->po, GMIME_ADDRESS_TYPE_FROM, &c->nuls);
    gchar *f = from ? internet_address_list_to_string(from, NULL, FALSE) : NULL;
    char *subject = message_subject(m, &c->nuls);
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

/* ---- dates ------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static void civil_from_days(long long z, long long *y, unsigned *m, unsigned *d)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (long long)yoe + era * 400 + (*m <= 2);
}

static int read_num(const char **p, int maxdigits, int *out)
{
    int n = 0, v = 0;
    while (n < maxdigits && **p >= '0' && **p <= '9') {
        v = v * 10 + (**p - '0');
        (*p)++;
        n++;
    }
    *out = v;
    return n;
}

static void skip_cfws(const char **p)
{
    while (**p == ' ' || **p == '\t' || **p == '\r' || **p == '\n')
        (*p)++;
}

int em_parse_date(const char *s, char out[32])
{
    static const char *const months[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                         "jul", "aug", "sep", "oct", "nov", "dec"};
    static const struct {
        const char *name;
        int minutes;
    } zones[] = {{"UTC", 0},       {"UT", 0},        {"GMT", 0},       {"Z", 0},
                 {"EDT", -4 * 60}, {"EST", -5 * 60}, {"CDT", -5 * 60}, {"CST", -6 * 60},
                 {"MDT", -6 * 60}, {"MST", -7 * 60}, {"PDT", -7 * 60}, {"PST", -8 * 60}};
    const char *p = s;
    int day, year, hour, min, sec = 0, mon = -1;
    skip_cfws(&p);
    if (isalpha((unsigned char)p[0])) { /* day of week */
        while (isalpha((unsigned char)*p))
            p++;
        if (*p == ',')
            p++;
        skip_cfws(&p);
    }
    if (!read_num(&p, 2, &day) || day < 1 || day > 31)
        return -1;
    skip_cfws(&p);
    for (int i = 0; i < 12; i++)
        if (g_ascii_strncasecmp(p, months[i], 3) == 0)
            mon = i + 1;
    if (mon < 0)
        return -1;
    p += 3;
    skip_cfws(&p);
    int ydigits = read_num(&p, 4, &year);
    if (ydigits < 2)
        return -1;
    if (ydigits == 2)
        year += year < 50 ? 2000 : 1900;
    else if (ydigits == 3)
        year += 1900;
    skip_cfws(&p);
    if (!read_num(&p, 2, &hour) || *p != ':')
        return -1;
    p++;
    if (read_num(&p, 2, &min) != 2)
        return -1;
    if (*p == ':') {
        p++;
        if (read_num(&p, 2, &sec) != 2)
            return -1;
    }
    skip_cfws(&p);
    /* "10:05:15 PM" (not RFC 5322, but common) */
    if ((p[0] == 'A' || p[0] == 'P' || p[0] == 'a' || p[0] == 'p') &&
        (p[1] == 'M' || p[1] == 'm') && !isalpha((unsigned char)p[2])) {
        if (hour < 1 || hour > 12)
            return -1;
        hour = hour % 12 + (p[0] == 'P' || p[0] == 'p' ? 12 : 0);
        p += 2;
        skip_cfws(&p);
    }
    if (hour > 23 || min > 59 || sec > 60)
        return -1;
    int offset = 0; /* minutes east of UTC */
    if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, hhmm;
        p++;
        if (read_num(&p, 4, &hhmm) != 4 || hhmm % 100 > 59)
            return -1;
        offset = sign * (hhmm / 100 * 60 + hhmm % 100);
    } else if (isalpha((unsigned char)*p)) {
        size_t n = 0;
        while (isalpha((unsigned char)p[n]))
            n++;
        int found = 0;
        for (size_t i = 0; i < sizeof zones / sizeof *zones && !found; i++)
            if (strlen(zones[i].name) == n && g_ascii_strncasecmp(p, zones[i].name, n) == 0) {
                offset = zones[i].minutes;
                found = 1;
            }
        if (!found)
            return -1;
        p += n;
        if (offset == 0 && (*p == '+' || *p == '-') && isdigit((unsigned char)p[1])) {
            /* "GMT+1", "GMT-05" */
            int sign = *p == '-' ? -1 : 1, h;
            p++;
            if (read_num(&p, 2, &h) == 0 || h > 14)
                return -1;
            offset = sign * h * 60;
        }
    }
    /* anything left must be a comment such as "(EDT)" */
    skip_cfws(&p);
    if (*p && *p != '(')
        return -1;
    long long days = days_from_civil(year, (unsigned)mon, (unsigned)day);
    long long t = days * 86400 + hour * 3600 + min * 60 + (sec == 60 ? 59 : sec) - offset * 60;
    long long dd = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    long long rem = t - dd * 86400;
    long long y;
    unsigned m, d;
    civil_from_days(dd, &y, &m, &d);
    if (y < 1 || y > 9999)
        return -1;
    int hh = (int)(rem / 3600), mm = (int)(rem / 60 % 60), ss = (int)(rem % 60);
    snprintf(out, 32, "%04d-%02u-%02uT%02d:%02d:%02dZ", (int)y, m % 13, d % 32, hh % 24, mm % 60,
             ss % 60);
    return 0;
}

static void set_err(char *err, size_t errlen, const char *name, const char *fmt, const char *what,
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

/* ---- the record's header fields ---------------------------------------- */

/* sender_email and sender_name: the first From mailbox, else Sender's. */
static void add_sender(json_object *rec, GMimeMessage *m, walk_ctx *c, InternetAddressList *from)
{
    InternetAddressList *sender =
        list_length(from) ? NULL : message_addresses(m, c->po, GMIME_ADDRESS_TYPE_SENDER, &c->nuls);
    InternetAddressList *sl = list_length(from) ? from : sender;
    const char *email = NULL, *name = NULL;
    for (int i = 0; i < list_length(sl); i++) {
        InternetAddress *ia = internet_address_list_get_address(sl, i);
        if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
            email = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
            name = internet_address_get_name(ia);
            break;
        }
    }
    json_object_object_add(rec, "sender_email", jstr(email));
    json_object_object_add(rec, "sender_name",
                           name && name[0] ? jstr(name) : json_object_new_null());
    if (sender)
        g_object_unref(sender);
}

/* to, cc, reply_to: [{name, email}]. */
static void add_recipients(json_object *rec, GMimeMessage *m, walk_ctx *c)
{
    static const struct {
        const char *key;
        GMimeAddressType type;
    } lists[] = {{"to", GMIME_ADDRESS_TYPE_TO},
                 {"cc", GMIME_ADDRESS_TYPE_CC},
                 {"reply_to", GMIME_ADDRESS_TYPE_REPLY_TO}};
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        InternetAddressList *l = message_addresses(m, c->po, lists[i].type, &c->nuls);
        json_object_object_add(rec, lists[i].key, address_array(l));
        if (l)
            g_object_unref(l);
    }
}

/* date: ISO 8601 UTC by our parser, else GMime's reading, else null. */
static void add_date(json_object *rec, GMimeMessage *m)
{
    const char *date_hdr = g_mime_object_get_header(GMIME_OBJECT(m), "Date");
    GDateTime *date = g_mime_message_get_date(m);
    char iso_date[32];
    if (date_hdr && em_parse_date(date_hdr, iso_date) == 0) {
        json_object_object_add(rec, "date", json_object_new_string(iso_date));
    } else if (date) {
        /* forms our parser does not read, GMime may */
        GDateTime *utc = g_date_time_to_utc(date);
        gchar *iso = utc ? g_date_time_format(utc, "%Y-%m-%dT%H:%M:%SZ") : NULL;
        json_object_object_add(rec, "date", jstr(iso));
        g_free(iso);
        if (utc)
            g_date_time_unref(utc);
    } else {
        json_object_object_add(rec, "date", json_object_new_null());
    }
}

/* in_reply_to (its first id) and references (at most 200 ids). */
static void add_references(json_object *rec, GMimeMessage *m, GMimeParserOptions *po)
{
    GMimeObject *mo = GMIME_OBJECT(m);
    const char *irt = g_mime_object_get_header(mo, "In-Reply-To");
    GMimeReferences *refs = irt ? g_mime_references_parse(po, irt) : NULL;
    json_object_object_add(rec, "in_reply_to",
                           refs && g_mime_references_length(refs) > 0
                               ? jstr(g_mime_references_get_message_id(refs, 0))
                               : json_object_new_null());
    if (refs)
        g_mime_references_free(refs);
    json_object *ra = json_object_new_array();
    const char *rh = g_mime_object_get_header(mo, "References");
    refs = rh ? g_mime_references_parse(po, rh) : NULL;
    for (int i = 0; ra && refs && i < g_mime_references_length(refs) && i < 200; i++)
        json_object_array_add(ra, jstr(g_mime_references_get_message_id(refs, i)));
    if (refs)
        g_mime_references_free(refs);
    json_object_object_add(rec, "references", ra);
}

/*
 * The record's header fields. IK_E_PARSE (err set) when the header block has
 * none of From, To, Subject, Date, Message-ID; IK_E_NOMEM.
 */
static int add_headers(json_object *rec, GMimeMessage *m, walk_ctx *c, const char *name,
                       size_t start, char *err, size_t errlen)
{
    const char *msgid = g_mime_message_get_message_id(m);
    char *subject = message_subject(m, &c->nuls);
    InternetAddressList *from = message_addresses(m, c->po, GMIME_ADDRESS_TYPE_FROM, &c->nuls);
    InternetAddressList *to = g_mime_message_get_to(m);
    int rc = 0;
    if (!msgid && !subject && !g_mime_message_get_date(m) && !list_length(from) &&
        !list_length(to)) {
        set_err(err, errlen, name, "%s (offset %lld)",
                "not an email: none of From, To, Subject, Date, Message-ID in the header block",
                (long long)start);
        rc = IK_E_PARSE;
    } else {
        json_object_object_add(rec, "schema", json_object_new_string(EM_SCHEMA));
        json_object_object_add(rec, "message_id", jstr(msgid));
        add_sender(rec, m, c, from);
        add_recipients(rec, m, c);
        add_date(rec, m);
        json_object_object_add(rec, "subject", jstr(subject ? subject : ""));
        add_references(rec, m, c->po);
    }
    free(subject);
    if (from)
        g_object_unref(from);
    return rc;
}

/* ---- the message ------------------------------------------------------- */

/* body, body_format, attachments and the parser's notes. IK_E_NOMEM. */
static int add_body(json_object *rec, walk_ctx *c, GMimeMessage *m)
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
        set_err(err, errlen, name, "%s (offset %lld)", "empty message, no header block",
                (long long)len);
        return IK_E_PARSE;
    }
    if (!looks_like_header(buf + *start, len - *start)) {
        set_err(err, errlen, name, "%s (offset %lld)",
                "not a MIME message: the first line is not a header (\"Name: value\")",
                (long long)*start);
        return IK_E_PARSE;
    }
    return 0;
}

/* ---- NUL bytes in headers ----------------------------------------------- */

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
    set_err(err, errlen, name, "%s at byte offset %lld", what, (long long)(nul - buf));
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
static int nul_headers(const char *name, const char *buf, size_t len, size_t start, GMimeMessage *m,
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

/* IK_E_PARSE with err when the parser reported a critical problem. */
static int critical(const walk_ctx *c, const char *name, size_t start, char *err, size_t errlen)
{
    if (c->crit_off < 0)
        return 0;
    char what[200];
    snprintf(what, sizeof what, "malformed MIME: %s%s%s%s", warning_name(c->crit_code),
             c->crit_item[0] ? " \"" : "", c->crit_item, c->crit_item[0] ? "\"" : "");
    set_err(err, errlen, name, "%s at byte offset %lld", what,
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
        set_err(err, errlen, name, "%s (offset %lld)",
                "not a MIME message: GMime found no message header block", (long long)start);
        rc = IK_E_PARSE;
        goto done;
    }
    if ((rc = critical(&c, name, start, err, errlen)) != 0 ||
        (rc = nul_headers(name, buf, len, start, m, err, errlen)) != 0)
        goto done;
    rc = IK_E_NOMEM;
    if (!(rec = json_object_new_object()))
        goto done;
    if ((rc = add_headers(rec, m, &c, name, start, err, errlen)) != 0 ||
        (rc = add_body(rec, &c, m)) != 0)
        goto done;
    *out = rec;
    rec = NULL;
done:
    if (rc == IK_E_NOMEM && err && errlen && !err[0])
        set_err(err, errlen, name, "%s (after %lld bytes)", "out of memory", (long long)len);
    json_object_put(rec);
    ik_buf_free(&c.body);
    if (m)
        g_object_unref(m);
    if (po)
        g_mime_parser_options_free(po);
    return rc;
}
