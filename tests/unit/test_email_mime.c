/*
 * test_email_mime.c: unit tests of the email library's parsers: RFC 2047
 * header decoding, charset conversion to UTF-8 (bad bytes replaced),
 * quoted-printable and base64 bodies, multipart/alternative preference, HTML
 * to text (and its fallback for HTML libxml2 cannot read), RFC 2047 against
 * Python's email package, nested multiparts, forwarded message/rfc822 parts, attachments
 * (names, size, SHA-256), malformed input refused with what and where, and
 * the seed JSON mapped onto the same record.
 */
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "email/email.h"
#include <intake/plugin.h>

static json_object *parse_ok(const char *msg)
{
    json_object *rec = NULL;
    char err[EM_ERROR_MAX];
    em_opts o = {0};
    int rc = em_parse_mime("t.eml", msg, strlen(msg), &o, &rec, err, sizeof err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0)
        fprintf(stderr, "unexpected error: %s\n", err);
    return rec;
}

static const char *field(json_object *o, const char *key)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static int parse_err(const char *msg, size_t len, char *err, size_t errlen)
{
    json_object *rec = NULL;
    int rc = em_parse_mime("bad.eml", msg, len, NULL, &rec, err, errlen);
    CU_ASSERT_PTR_NULL(rec);
    json_object_put(rec);
    return rc;
}

static void test_headers_rfc2047(void)
{
    json_object *r = parse_ok("From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <jm@example.de>\n"
                              "To: a@example.com, \"B, C\" <bc@example.com>\n"
                              "Cc: Team: x@example.com, y@example.com;\n"
                              "Reply-To: r@example.com\n"
                              "Subject: =?ISO-8859-1?Q?Caf=E9?= =?utf-8?q?_au_lait?=\n"
                              "Date: Tue, 1 Dec 2026 23:30:00 -0200\n"
                              "Message-ID: <abc@x>\n"
                              "In-Reply-To: <prev@x>\n"
                              "References: <a@x> <b@x>\n\nbody\n");
    CU_ASSERT_STRING_EQUAL(field(r, "sender_name"), "J\xc3\xbcrgen M\xc3\xbcller");
    CU_ASSERT_STRING_EQUAL(field(r, "sender_email"), "jm@example.de");
    CU_ASSERT_STRING_EQUAL(field(r, "subject"), "Caf\xc3\xa9 au lait");
    CU_ASSERT_STRING_EQUAL(field(r, "date"), "2026-12-02T01:30:00Z");
    CU_ASSERT_STRING_EQUAL(field(r, "message_id"), "abc@x");
    CU_ASSERT_STRING_EQUAL(field(r, "in_reply_to"), "prev@x");
    CU_ASSERT_STRING_EQUAL(field(r, "schema"), EM_SCHEMA);
    json_object *to, *cc, *refs;
    CU_ASSERT_TRUE(json_object_object_get_ex(r, "to", &to));
    CU_ASSERT_EQUAL(json_object_array_length(to), 2);
    CU_ASSERT_STRING_EQUAL(field(json_object_array_get_idx(to, 1), "name"), "B, C");
    CU_ASSERT_TRUE(json_object_object_get_ex(r, "cc", &cc));
    CU_ASSERT_EQUAL(json_object_array_length(cc), 2); /* group flattened */
    CU_ASSERT_TRUE(json_object_object_get_ex(r, "references", &refs));
    CU_ASSERT_EQUAL(json_object_array_length(refs), 2);
    CU_ASSERT_STRING_EQUAL(field(r, "body"), "body\n");
    json_object_put(r);
}

/*
 * RFC 2047, differential against Python 3.11's email package. The expected
 * strings came from Python: a subject from
 * str(make_header(decode_header(s))) (email.header), or where that raises or
 * puts in a space of its own (marked) from email.message_from_string(...,
 * policy=email.policy.default)["Subject"], which answered the same wherever
 * both answered; a sender from email.utils.parseaddr(header) and then
 * make_header(decode_header(name)), trimmed (GMime trims display names).
 */
static const struct {
    const char *header, *want;
} subjects[] = {
    {"=?UTF-8?B?w4l0w6k=?= =?UTF-8?B?IGxvbmc=?=", "\xc3\x89t\xc3\xa9 long"},
    {"=?UTF-8?B?w4l0w6k?= =?UTF-8?B?IGxvbmc?=", "\xc3\x89t\xc3\xa9 long"},
    {"=?UTF-8?B?w4k=?= =?UTF-8?B?dA==?= =?UTF-8?B?w6k=?=", "\xc3\x89t\xc3\xa9"},
    {"=?UTF-8?B?w4l0w6k=?==?UTF-8?B?IGxvbmc=?=", "\xc3\x89t\xc3\xa9 long"},
    {"=?UTF-8?Q?caf=C3=A9_au_lait?=", "caf\xc3\xa9 au lait"},
    {"=?utf-8?q?a=3d=ZZb=3?=", "a==ZZb=3"},
    {"=?ISO-8859-1?Q?Caf=E9?= =?UTF-8?Q?_au_lait?=", "Caf\xc3\xa9 au lait"},
    {"=?UTF-8?B?4oKs?= =?ISO-8859-1?Q?=E9?= x", "\xe2\x82\xac\xc3\xa9 x"},
    {"=?UTF-8?Q?=C3?= =?UTF-8?Q?=A9t=C3=A9?=", "\xc3\xa9t\xc3\xa9"},
    {"=?utf-8?B?w4?= =?UTF-8?B?kw==?=", "\xc3\x93"},
    {"=?UTF-8?Q?=E2=82?= =?UTF-8?Q?=AC?= 5", "\xe2\x82\xac 5"},
    {"=?UTF-8?B?4oI=?= =?UTF-8?Q?=AC?=", "\xe2\x82\xac"},
    {"=?UTF-8?Q?a?=   \t =?UTF-8?Q?b?=", "ab"},
    {"=?UTF-8?Q?a?=\n =?UTF-8?Q?b?=", "ab"},
    {"=?UTF-8?Q?a?= and =?UTF-8?Q?b?=", "a and b"},
    {"Re: =?UTF-8?Q?caf=C3=A9?= today", "Re: caf\xc3\xa9 today"},
    {"=?UTF-8?B?w4l0w6k=?= text =?UTF-8?B?IGxvbmc=?=", "\xc3\x89t\xc3\xa9 text  long"},
    {"=?utf-8?b?w6k*?=", "\xc3\xa9"}, /* policy; email.header raises */
    {"=?utf-8?b?@@@@?=", ""},
    {"=?utf-8?b?a?=", "a"}, /* policy; email.header raises */
    {"=?utf-8?b?w6k=x?=", "\xc3\xa9"},
    {"=?utf-8?b?w6=k?=", "\xc3\xa9"},         /* policy; email.header raises */
    {"=?utf-8?b?w6==kw==?=", "\xef\xbf\xbd"}, /* policy; email.header raises */
    {"=?x-unknown?Q?abc?=", "abc"},           /* policy; email.header raises */
    {"=?UTF-8*en?Q?hello?=", "hello"},        /* policy; email.header raises */
    {"=?utf-8?x?abc?=", "=?utf-8?x?abc?="},
    {"=?utf-8?q?not closed", "=?utf-8?q?not closed"},
    {"a =?utf-8?q?\?= b", "a  b"}, /* "?\?" keeps C from reading a trigraph */
    {"=?windows-1252?q?=93q=94?=", "\xe2\x80\x9cq\xe2\x80\x9d"},
    {"=?iso-8859-15?q?=A4?=", "\xe2\x82\xac"},
    {"=?UTF-8?Q?a?=b", "ab"},            /* policy; email.header gives 'a b' */
    {"a=?UTF-8?Q?b?=", "ab"},            /* policy; email.header gives 'a b' */
    {"=?utf-8?q?=E9?=", "\xef\xbf\xbd"}, /* policy; email.header raises */
    {"=?utf-8?q?a b?=", "a b"},
};
static const struct {
    const char *header, *name, *email;
} senders[] = {
    {"\"=?UTF-8?B?w4l0w6k=?= =?UTF-8?B?IGxvbmc=?=\" <a@b.c>", "\xc3\x89t\xc3\xa9 long", "a@b.c"},
    {"=?UTF-8?B?w4l0w6k=?= =?UTF-8?B?IGxvbmc=?= <a@b.c>", "\xc3\x89t\xc3\xa9 long", "a@b.c"},
    {"=?UTF-8?Q?Doe=2C_John?= <j@x.y>", "Doe, John", "j@x.y"},
    {"=?ISO-8859-1?Q?Jos=E9?= =?ISO-8859-1?Q?_Mart=EDnez?= <j@m.es>", "Jos\xc3\xa9 Mart\xc3\xadnez",
     "j@m.es"},
    {"\"=?UTF-8?Q?Ren=C3=A9?= Smith\" <r@s.t>", "Ren\xc3\xa9 Smith", "r@s.t"},
    {"\"=?UTF-8?B?SsO8cmdlbg==?= =?UTF-8?B?IE3DvGxsZXI=?=\" <jm@example.de>",
     "J\xc3\xbcrgen M\xc3\xbcller", "jm@example.de"},
    {"=?windows-1252?B?0w?= <o@p.q>", "\xc3\x93", "o@p.q"},
    {"=?UTF-8?B?w4l0w6k=?= Smith <a@b.c>", "\xc3\x89t\xc3\xa9 Smith", "a@b.c"},
    {"a@b.c (=?UTF-8?Q?Ren=C3=A9?=)", "Ren\xc3\xa9", "a@b.c"},
    {"=?UTF-8?B?w6k=?=@example.com", NULL, "=?UTF-8?B?w6k=?=@example.com"},
};

/* subject, or sender name and email, of a message made around one header */
static json_object *parse_with(const char *fmt, const char *header)
{
    char msg[1024];
    snprintf(msg, sizeof msg, fmt, header);
    return parse_ok(msg);
}

static void test_rfc2047_differential(void)
{
    for (size_t i = 0; i < sizeof subjects / sizeof *subjects; i++) {
        json_object *r = parse_with("From: a@b.c\nSubject: %s\n\nx\n", subjects[i].header);
        const char *got = field(r, "subject");
        if (!got || strcmp(got, subjects[i].want) != 0)
            fprintf(stderr, "subject %zu \"%s\": got \"%s\"\n", i, subjects[i].header,
                    got ? got : "(null)");
        CU_ASSERT_TRUE(got && strcmp(got, subjects[i].want) == 0);
        json_object_put(r);
    }
    for (size_t i = 0; i < sizeof senders / sizeof *senders; i++) {
        json_object *r = parse_with("From: %s\nSubject: s\n\nx\n", senders[i].header);
        const char *name = field(r, "sender_name"), *email = field(r, "sender_email");
        int ok = email && strcmp(email, senders[i].email) == 0 &&
                 (senders[i].name ? name && strcmp(name, senders[i].name) == 0 : !name);
        if (!ok)
            fprintf(stderr, "sender %zu \"%s\": got \"%s\" <%s>\n", i, senders[i].header,
                    name ? name : "(null)", email ? email : "(null)");
        CU_ASSERT_TRUE(ok);
        json_object_put(r);
    }
}

/* The same decoding in every address list, in a forwarded message's header
 * lines and in attachment names; RFC 2231 names as before. */
static void test_rfc2047_elsewhere(void)
{
    const char *msg =
        "From: a@b.c\nSubject: s\n"
        "To: =?UTF-8?Q?J=C3=BCrgen?= =?UTF-8?Q?_M=C3=BCller?= <jm@example.de>, Bob <b@c.d>\n"
        "Cc: \"=?UTF-8?B?w4l0w6k=?= =?UTF-8?B?IGxvbmc=?=\" <e@f.g>\n"
        "Content-Type: multipart/mixed; boundary=X\n\n"
        "--X\nContent-Type: message/rfc822\n\n"
        "From: =?UTF-8?B?w4l0w6k=?= =?UTF-8?B?IGxvbmc=?= <o@p.q>\n"
        "Subject: =?UTF-8?B?w4l0w6k=?= =?UTF-8?B?IGxvbmc=?=\n\ninner\n"
        "--X\nContent-Type: application/pdf\n"
        "Content-Disposition: attachment; filename=\"=?UTF-8?B?w4l0w6k=?= "
        "=?UTF-8?B?IGxvbmcucGRm?=\"\n"
        "\nxx\n"
        "--X\nContent-Type: application/pdf; name=\"=?UTF-8?B?w4k=?= =?UTF-8?B?dA==?=.pdf\"\n\nyy\n"
        "--X\nContent-Type: application/pdf\n"
        "Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\n\nzz\n"
        "--X--\n";
    json_object *r = parse_ok(msg), *to, *cc, *atts;
    CU_ASSERT_TRUE_FATAL(json_object_object_get_ex(r, "to", &to));
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(to), 2);
    CU_ASSERT_STRING_EQUAL(field(json_object_array_get_idx(to, 0), "name"),
                           "J\xc3\xbcrgen M\xc3\xbcller");
    CU_ASSERT_STRING_EQUAL(field(json_object_array_get_idx(to, 1), "email"), "b@c.d");
    CU_ASSERT_TRUE_FATAL(json_object_object_get_ex(r, "cc", &cc));
    CU_ASSERT_STRING_EQUAL(field(json_object_array_get_idx(cc, 0), "name"),
                           "\xc3\x89t\xc3\xa9 long");
    const char *body = field(r, "body");
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "From: \xc3\x89t\xc3\xa9 long <o@p.q>\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "Subject: \xc3\x89t\xc3\xa9 long\n"));
    CU_ASSERT_TRUE_FATAL(json_object_object_get_ex(r, "attachments", &atts));
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(atts), 3);
    CU_ASSERT_STRING_EQUAL(field(json_object_array_get_idx(atts, 0), "filename"),
                           "\xc3\x89t\xc3\xa9 long.pdf");
    CU_ASSERT_STRING_EQUAL(field(json_object_array_get_idx(atts, 1), "filename"), "\xc3\x89t.pdf");
    CU_ASSERT_STRING_EQUAL(field(json_object_array_get_idx(atts, 2), "filename"),
                           "r\xc3\xa9sum\xc3\xa9.pdf");
    json_object_put(r);
}

static void test_charsets(void)
{
    size_t n;
    char *s = em_to_utf8("caf\xe9", 4, "iso-8859-1", &n, NULL);
    CU_ASSERT_STRING_EQUAL(s, "caf\xc3\xa9");
    CU_ASSERT_EQUAL(n, 5);
    free(s);
    s = em_to_utf8("\x93q\x94", 3, "windows-1252", NULL, NULL);
    CU_ASSERT_STRING_EQUAL(s, "\xe2\x80\x9cq\xe2\x80\x9d");
    free(s);
    /* declared UTF-8 with a bad byte and a NUL: both U+FFFD, the NUL counted
     * (it used to vanish without a trace) */
    size_t nuls = 0;
    s = em_to_utf8("a\xff"
                   "b\0c",
                   5, "utf-8", &n, &nuls);
    CU_ASSERT_STRING_EQUAL(s, "a\xef\xbf\xbd"
                              "b\xef\xbf\xbd"
                              "c");
    CU_ASSERT_EQUAL(n, 9);
    CU_ASSERT_EQUAL(nuls, 1);
    free(s);
    /* unlabelled UTF-8 holding a NUL is still read as UTF-8 */
    s = em_to_utf8("caf\xc3\xa9\0", 6, NULL, NULL, &nuls);
    CU_ASSERT_STRING_EQUAL(s, "caf\xc3\xa9\xef\xbf\xbd");
    CU_ASSERT_EQUAL(nuls, 2);
    free(s);
    /* a character cut short is one U+FFFD (maximal subpart), as in Python */
    s = em_to_utf8("\xe2\x82x\xf0\x9f\x98", 6, "utf-8", NULL, NULL);
    CU_ASSERT_STRING_EQUAL(s, "\xef\xbf\xbdx\xef\xbf\xbd");
    free(s);
    /* unknown charset: UTF-8 when valid, else windows-1252 */
    s = em_to_utf8("\xc3\xa9", 2, "x-no-such-charset", NULL, NULL);
    CU_ASSERT_STRING_EQUAL(s, "\xc3\xa9");
    free(s);
    s = em_to_utf8("\xe9t\xe9", 3, "x-no-such-charset", NULL, NULL);
    CU_ASSERT_STRING_EQUAL(s, "\xc3\xa9t\xc3\xa9");
    free(s);
    /* a truncated multibyte sequence in a stateful charset */
    s = em_to_utf8("ab\xa4", 3, "euc-jp", NULL, NULL);
    CU_ASSERT_TRUE(em_utf8_valid(s, strlen(s)));
    CU_ASSERT_EQUAL(strncmp(s, "ab", 2), 0);
    free(s);
    CU_ASSERT_FALSE(em_utf8_valid("\xed\xa0\x80", 3)); /* surrogate */
    CU_ASSERT_FALSE(em_utf8_valid("\xc0\xaf", 2));     /* overlong */
    CU_ASSERT_TRUE(em_utf8_valid("\xf0\x9f\x98\x80", 4));
    /* a body in KOI8-R, quoted-printable */
    json_object *r =
        parse_ok("From: a@b.c\nSubject: x\nContent-Type: text/plain; charset=koi8-r\n"
                 "Content-Transfer-Encoding: quoted-printable\n\n=F0=D2=C9=D7=C5=D4\n");
    CU_ASSERT_STRING_EQUAL(field(r, "body"), "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82\n");
    json_object_put(r);
    /* an undeclared 8-bit header */
    r = parse_ok("From: \"Ren\xe9\" <r@b.c>\nSubject: na\xefve\n\nx\n");
    CU_ASSERT_STRING_EQUAL(field(r, "sender_name"), "Ren\xc3\xa9");
    CU_ASSERT_STRING_EQUAL(field(r, "subject"), "na\xc3\xafve");
    json_object_put(r);
}

static void test_transfer_encodings(void)
{
    json_object *r =
        parse_ok("From: a@b.c\nSubject: qp\nContent-Transfer-Encoding: quoted-printable\n"
                 "Content-Type: text/plain; charset=utf-8\n\n"
                 "soft=\nbreak and =C3=A9 and =3D\n");
    CU_ASSERT_STRING_EQUAL(field(r, "body"), "softbreak and \xc3\xa9 and =\n");
    json_object_put(r);
    r = parse_ok("From: a@b.c\nSubject: b64\nContent-Transfer-Encoding: base64\n\n"
                 "SGVsbG8sIHdvcmxkIQ==\n");
    CU_ASSERT_STRING_EQUAL(field(r, "body"), "Hello, world!");
    json_object_put(r);
}

static const char *alternative = "From: a@b.c\nSubject: alt\nMIME-Version: 1.0\n"
                                 "Content-Type: multipart/alternative; boundary=XX\n\n"
                                 "--XX\nContent-Type: text/html\n\n<p>html <b>version</b></p>\n"
                                 "--XX\nContent-Type: text/plain\n\nplain version\n"
                                 "--XX--\n";

static void test_alternative_prefers_plain(void)
{
    json_object *r = parse_ok(alternative);
    CU_ASSERT_STRING_EQUAL(field(r, "body"), "plain version");
    CU_ASSERT_STRING_EQUAL(field(r, "body_format"), "plain");
    json_object_put(r);
    /* an empty plain part falls back to the html */
    r = parse_ok("From: a@b.c\nSubject: alt\nContent-Type: multipart/alternative; boundary=XX\n\n"
                 "--XX\nContent-Type: text/plain\n\n \n"
                 "--XX\nContent-Type: text/html\n\n<p>only&nbsp;html &amp; more</p>\n--XX--\n");
    CU_ASSERT_STRING_EQUAL(field(r, "body"), "only html & more");
    CU_ASSERT_STRING_EQUAL(field(r, "body_format"), "html");
    json_object_put(r);
}

static void test_html_to_text(void)
{
    const char *html = "<html><head><title>T</title><style>p{}</style></head><body>"
                       "<h1>Title</h1><p>First   para\ngraph.</p><script>alert(1)</script>"
                       "<ul><li>one</li><li>two</li></ul><ol><li>a</li><li>b</li></ol>"
                       "<div>line<br>break</div><p>x &lt; y &eacute; &#8364;</p>"
                       "<p><a href=\"https://ex.com/p\">profile</a> <a href=\"https://ex.com\">"
                       "https://ex.com</a></p><table><tr><td>c1</td><td>c2</td></tr></table>"
                       "<pre>  keep   this</pre></body></html>";
    char *t = em_html_to_text(html, strlen(html), NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_STRING_EQUAL(t, "Title\n\nFirst para graph.\n\n- one\n- two\n\n1. a\n2. b\n\nline\n"
                              "break\n\nx < y \xc3\xa9 \xe2\x82\xac\n\nprofile <https://ex.com/p> "
                              "https://ex.com\n\nc1 c2\n\n  keep   this");
    free(t);
    /* broken markup is recovered, never crashes */
    t = em_html_to_text("<p>unclosed <b>bold <i>x</p></div>tail", 38, NULL);
    CU_ASSERT_PTR_NOT_NULL(t);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "tail"));
    free(t);
    t = em_html_to_text("", 0, NULL);
    CU_ASSERT_STRING_EQUAL(t, "");
    free(t);
}

/* depth <div>s around some text, with text, script, a comment before and a
 * list after; *len gets its length. Caller frees. */
static char *deep_html(size_t depth, size_t *len)
{
    const char *head = "<p>Dear Ann,</p><script>var x = '<p>no</p>';</script><!-- <p>no</p> -->";
    const char *mid = "deep text &eacute; &#8364;<br>line";
    const char *tail = "<p>after</p><ul><li>one<li>two</ul>";
    char *h = malloc(strlen(head) + strlen(mid) + strlen(tail) + depth * 11 + 1);
    if (!h)
        return NULL;
    char *p = h + sprintf(h, "%s", head);
    for (size_t i = 0; i < depth; i++)
        p += sprintf(p, "<div>");
    p += sprintf(p, "%s", mid);
    for (size_t i = 0; i < depth; i++)
        p += sprintf(p, "</div>");
    p += sprintf(p, "%s", tail);
    *len = (size_t)(p - h);
    return h;
}

/* Past libxml2's 256 nested elements its parser stops and used to leave an
 * empty text: the fallback reads the whole document, at any depth (100000
 * also shows nothing recurses per level: that would overflow the stack). */
static void test_html_deep(void)
{
    const size_t depths[] = {10, 300, 1000, 100000};
    for (size_t i = 0; i < sizeof depths / sizeof *depths; i++) {
        size_t len;
        char *h = deep_html(depths[i], &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(h);
        int fallback = -1;
        char *t = em_html_to_text(h, len, &fallback);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        if (depths[i] > 256) {
            CU_ASSERT_EQUAL(fallback, 1);
            CU_ASSERT_STRING_EQUAL(t, "Dear Ann,\n\ndeep text \xc3\xa9 \xe2\x82\xac\nline\n\n"
                                      "after\n\n- one\n- two");
        } else {
            CU_ASSERT_EQUAL(fallback, 0); /* libxml2's tree, as always */
            CU_ASSERT_PTR_NOT_NULL(strstr(t, "deep text \xc3\xa9 \xe2\x82\xac\nline"));
        }
        CU_ASSERT_PTR_NULL(strstr(t, "no"));
        free(t);
        free(h);
    }
    /* parsed, but the text is swallowed by an element whose content is
     * dropped and that never closes: the fallback finds it */
    const char *swallowed = "<noscript><p>Dear Ann,</p><p>the offer &amp; the plan</p>";
    int fallback = -1;
    char *t = em_html_to_text(swallowed, strlen(swallowed), &fallback);
    CU_ASSERT_STRING_EQUAL(t, "Dear Ann,\n\nthe offer & the plan");
    CU_ASSERT_EQUAL(fallback, 1);
    free(t);
    /* character references the parser refuses (NUL, a control, a surrogate,
     * past U+10FFFF) go in the fallback too; the others are decoded alike */
    const char *refs = "<p>a&#0;b&#1;c&#x41;d&#xd800;e&#x110000;f&#233;g</p>";
    char *parsed = em_html_to_text(refs, strlen(refs), &fallback);
    CU_ASSERT_EQUAL(fallback, 0);
    char *swallowed_refs = malloc(strlen(refs) + 12);
    CU_ASSERT_PTR_NOT_NULL_FATAL(swallowed_refs);
    sprintf(swallowed_refs, "<noscript>%s", refs);
    t = em_html_to_text(swallowed_refs, strlen(swallowed_refs), &fallback);
    CU_ASSERT_EQUAL(fallback, 1);
    CU_ASSERT_STRING_EQUAL(parsed, "abcAdef\xc3\xa9g");
    CU_ASSERT_STRING_EQUAL(t, parsed);
    free(t);
    free(parsed);
    free(swallowed_refs);
    /* nothing to read is not a fallback */
    t = em_html_to_text("<p> </p><!-- x -->", 18, &fallback);
    CU_ASSERT_STRING_EQUAL(t, "");
    CU_ASSERT_EQUAL(fallback, 0);
    free(t);
}

/* A message whose only body is such HTML: the text is the body, and the
 * record says the fallback made it (diet.html_fallback). */
static void test_html_deep_message(void)
{
    size_t len;
    char *h = deep_html(1000, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    const char *hdr = "From: a@b.c\nSubject: deep\nContent-Type: text/html; charset=utf-8\n\n";
    char *msg = malloc(strlen(hdr) + len + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(msg);
    sprintf(msg, "%s%s", hdr, h);
    json_object *r = parse_ok(msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(field(r, "body"), "Dear Ann,\n\ndeep text"));
    CU_ASSERT_PTR_NOT_NULL(strstr(field(r, "body"), "- two"));
    CU_ASSERT_STRING_EQUAL(field(r, "body_format"), "html");
    json_object *diet, *v;
    CU_ASSERT_TRUE_FATAL(json_object_object_get_ex(r, "diet", &diet));
    CU_ASSERT_TRUE(json_object_object_get_ex(diet, "html_fallback", &v));
    CU_ASSERT_EQUAL(json_object_get_int(v), 1);
    json_object_put(r);
    /* a message the parser reads has no such note */
    r = parse_ok(alternative);
    CU_ASSERT_FALSE(json_object_object_get_ex(r, "diet", &diet));
    json_object_put(r);
    free(msg);
    free(h);
}

static void test_nested_forward_attachments(void)
{
    const char *msg =
        "From: Fwd Er <f@b.c>\nSubject: Fwd: hi\nContent-Type: multipart/mixed; boundary=A\n\n"
        "--A\nContent-Type: multipart/alternative; boundary=B\n\n"
        "--B\nContent-Type: text/plain\n\nsee below\n--B\nContent-Type: text/html\n\n<p>x</p>\n"
        "--B--\n"
        "--A\nContent-Type: message/rfc822\n\n"
        "From: Orig Sender <o@b.c>\nSubject: original\nDate: Mon, 30 Nov 2026 10:00:00 +0000\n"
        "Content-Type: multipart/mixed; boundary=C\n\n"
        "--C\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\n"
        "inner caf\xe9\n"
        "--C\nContent-Type: application/octet-stream\n"
        "Content-Disposition: attachment; filename=\"=?UTF-8?Q?r=C3=A9sum=C3=A9.txt?=\"\n"
        "Content-Transfer-Encoding: base64\n\naGVsbG8=\n--C--\n"
        "--A\nContent-Type: text/plain\nContent-Disposition: attachment; filename=notes.txt\n\n"
        "attached text\n--A--\n";
    json_object *r = parse_ok(msg);
    const char *body = field(r, "body");
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "see below"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(body, "---------- Forwarded message ----------\nFrom: Orig Sender"));
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "Subject: original"));
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "inner caf\xc3\xa9"));
    CU_ASSERT_PTR_NULL(strstr(body, "attached text"));
    json_object *atts;
    CU_ASSERT_TRUE_FATAL(json_object_object_get_ex(r, "attachments", &atts));
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(atts), 2);
    json_object *a0 = json_object_array_get_idx(atts, 0);
    CU_ASSERT_STRING_EQUAL(field(a0, "filename"), "r\xc3\xa9sum\xc3\xa9.txt");
    CU_ASSERT_STRING_EQUAL(field(a0, "sha256"),
                           "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    json_object *size;
    CU_ASSERT_TRUE(json_object_object_get_ex(a0, "size", &size));
    CU_ASSERT_EQUAL(json_object_get_int(size), 5);
    CU_ASSERT_STRING_EQUAL(field(json_object_array_get_idx(atts, 1), "filename"), "notes.txt");
    CU_ASSERT_PTR_NULL(field(a0, "content_base64"));
    json_object_put(r);
    /* content only on request */
    em_opts keep = {.keep_content = 1};
    char err[EM_ERROR_MAX];
    CU_ASSERT_EQUAL(em_parse_mime("", msg, strlen(msg), &keep, &r, err, sizeof err), 0);
    json_object_object_get_ex(r, "attachments", &atts);
    CU_ASSERT_STRING_EQUAL(field(json_object_array_get_idx(atts, 0), "content_base64"), "aGVsbG8=");
    json_object_put(r);
}

static void test_malformed(void)
{
    char err[EM_ERROR_MAX];
    CU_ASSERT_EQUAL(parse_err("", 0, err, sizeof err), IK_E_PARSE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "bad.eml: empty message"));
    CU_ASSERT_EQUAL(parse_err("\n\n\n", 3, err, sizeof err), IK_E_PARSE);
    const char *notes = "just some text\nthat is not mail\n";
    CU_ASSERT_EQUAL(parse_err(notes, strlen(notes), err, sizeof err), IK_E_PARSE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a MIME message"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "offset 0"));
    const char *nohdr = "X-Foo: bar\nX-Bar: baz\n\nbody\n";
    CU_ASSERT_EQUAL(parse_err(nohdr, strlen(nohdr), err, sizeof err), IK_E_PARSE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "none of From, To, Subject, Date, Message-ID"));
    const char *nob = "From: a@b.c\nSubject: x\nContent-Type: multipart/mixed\n\n--x\n\nbody\n";
    CU_ASSERT_EQUAL(parse_err(nob, strlen(nob), err, sizeof err), IK_E_PARSE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "multipart without boundary"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "byte offset"));
    /* binary garbage after a header-looking first line: parsed, valid UTF-8 */
    const char bin[] = "Subject: \xff\xfe\x00\x01\n\n\xff\x00\xfe";
    json_object *r = NULL;
    int rc = em_parse_mime("", bin, sizeof bin - 1, NULL, &r, err, sizeof err);
    if (rc == 0) {
        const char *b = field(r, "body");
        CU_ASSERT_TRUE(b && em_utf8_valid(b, strlen(b)));
        const char *s = field(r, "subject");
        CU_ASSERT_TRUE(s && em_utf8_valid(s, strlen(s)));
    }
    json_object_put(r);
    /* an mbox "From " line before the headers is skipped */
    r = parse_ok("From a@b.c Sat Nov 28 10:00:00 2026\nSubject: mbox\n\nx\n");
    CU_ASSERT_STRING_EQUAL(field(r, "subject"), "mbox");
    json_object_put(r);
}

static void test_seed_mapping(void)
{
    json_object *in = json_tokener_parse(
        "{\"id\":\"s1\",\"sender_email\":\"a@b.c\",\"sender_name\":\"A B\",\"subject\":\"S\","
        "\"body\":\"hello\",\"priority\":\"high\",\"custom\":1,"
        "\"attachments\":[{\"filename\":\"x.pdf\",\"content_type\":\"application/pdf\","
        "\"content_base64\":\"aGVsbG8=\"}]}");
    json_object *out = NULL;
    char err[EM_ERROR_MAX];
    CU_ASSERT_EQUAL_FATAL(em_from_seed(in, NULL, &out, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(field(out, "schema"), EM_SCHEMA);
    CU_ASSERT_STRING_EQUAL(field(out, "id"), "s1");
    CU_ASSERT_STRING_EQUAL(field(out, "sender_email"), "a@b.c");
    CU_ASSERT_STRING_EQUAL(field(out, "body"), "hello");
    json_object *atts, *extra, *v;
    CU_ASSERT_TRUE(json_object_object_get_ex(out, "attachments", &atts));
    json_object *a = json_object_array_get_idx(atts, 0);
    CU_ASSERT_STRING_EQUAL(field(a, "sha256"),
                           "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    CU_ASSERT_PTR_NULL(field(a, "content_base64"));
    CU_ASSERT_TRUE(json_object_object_get_ex(out, "extra", &extra));
    CU_ASSERT_TRUE(json_object_object_get_ex(extra, "custom", &v));
    CU_ASSERT_TRUE(json_object_object_get_ex(out, "to", &v) &&
                   json_object_is_type(v, json_type_array));
    /* an email record is kept as it is */
    json_object *again = NULL;
    CU_ASSERT_EQUAL(em_from_seed(out, NULL, &again, err, sizeof err), 0);
    CU_ASSERT_TRUE(json_object_equal(out, again));
    json_object_put(again);
    json_object_put(out);
    json_object_put(in);

    const char *bad[][2] = {
        {"[1]", "must be a JSON object"},
        {"{\"body\":5}", "\"body\" must be string"},
        {"{\"sender_email\":\"a@b.c\"}", "neither \"body\" nor \"subject\""},
        {"{\"body\":\"x\",\"attachments\":{}}", "\"attachments\" must be array"},
        {"{\"body\":\"x\",\"attachments\":[{\"content_base64\":\"a*b\"}]}",
         "attachments[0].content_base64: invalid base64 character at offset 1"},
        {"{\"body\":\"x\",\"attachments\":[7]}", "attachments[0] must be an object"},
        /* a NUL would have cut the string short there: refused, field and offset */
        {"{\"subject\":\"s\",\"body\":\"Dear Ann, I am \\u0000 writing\"}",
         "field 'body' contains a NUL character (\\u0000) at offset 15"},
        {"{\"subject\":\"a\\u0000b\",\"body\":\"x\"}",
         "field 'subject' contains a NUL character (\\u0000) at offset 1"},
        {"{\"sender_name\":\"\\u0000\",\"body\":\"x\"}", "field 'sender_name'"},
        {"{\"body\":\"x\",\"attachments\":[{\"filename\":\"a.pdf\\u0000.exe\"}]}",
         "field 'attachments[0].filename' contains a NUL character (\\u0000) at offset 5"},
        {"{\"schema\":\"intake.email/1\",\"body\":\"x\",\"to\":[{\"name\":\"B\\u0000\"}]}",
         "field 'to[0].name' contains a NUL character (\\u0000) at offset 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        in = json_tokener_parse(bad[i][0]);
        out = NULL;
        err[0] = '\0';
        CU_ASSERT_EQUAL(em_from_seed(in, NULL, &out, err, sizeof err), IK_E_PARSE);
        CU_ASSERT_PTR_NULL(out);
        if (!strstr(err, bad[i][1]))
            fprintf(stderr, "case %zu: got \"%s\"\n", i, err);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i][1]));
        json_object_put(in);
    }
    /* a key the mapping keeps as it is (under "extra") may hold one */
    in = json_tokener_parse("{\"body\":\"x\",\"custom\":\"a\\u0000b\"}");
    CU_ASSERT_EQUAL(em_from_seed(in, NULL, &out, err, sizeof err), 0);
    json_object *custom;
    CU_ASSERT_TRUE(json_object_object_get_ex(out, "extra", &extra) &&
                   json_object_object_get_ex(extra, "custom", &custom) &&
                   json_object_get_string_len(custom) == 3);
    json_object_put(out);
    json_object_put(in);
}

static size_t nul_count(json_object *r)
{
    json_object *diet, *v;
    if (!json_object_object_get_ex(r, "diet", &diet) ||
        !json_object_object_get_ex(diet, "nul_replaced", &v))
        return 0;
    return (size_t)json_object_get_int64(v);
}

/* Raw NUL bytes in a message. In a header GMime would cut the value there
 * ("A\0B <a@b.c>" was read as the address "A", the subject as "be"): the
 * message is refused, naming the header and the byte. In text they become
 * U+FFFD, counted in diet.nul_replaced (they used to vanish). */
static void test_nul_mime(void)
{
    static const struct {
        const char *msg;
        size_t len;
        const char *want;
    } refused[] = {
#define M(s) s, sizeof s - 1
        {M("From: A\0B <a@b.c>\nSubject: s\n\nx\n"),
         "header 'From' (header text cannot hold one) at byte offset 7"},
        {M("From: a@b.c\nSubject: be\0fore after\n\nx\n"),
         "header 'Subject' (header text cannot hold one) at byte offset 23"},
        {M("From: a@b.c\nSubject: s\nX-Long: a\n b\0c\n\nx\n"), "header 'X-Long'"},
        {M("From: a@b.c\nSubject: s\nContent-Type: multipart/mixed; boundary=X\n\n"
           "--X\nContent-Type: message/rfc822\n\nFrom: o@p.q\nSubject: in\0ner\n\nhi\n--X--\n"),
         "header 'Subject' (header text cannot hold one) at byte offset 123"},
        {M("From: a@b.c\nSubject: s\nContent-Type: multipart/mixed; boundary=X\n\n"
           "--X\nContent-Type: application/pdf\n"
           "Content-Disposition: attachment; filename=\"a.pdf\0.exe\"\n\nxx\n--X--\n"),
         "header 'Content-Disposition'"},
#undef M
    };
    char err[EM_ERROR_MAX];
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        err[0] = '\0';
        CU_ASSERT_EQUAL(parse_err(refused[i].msg, refused[i].len, err, sizeof err), IK_E_PARSE);
        if (!strstr(err, refused[i].want))
            fprintf(stderr, "case %zu: got \"%s\"\n", i, err);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "bad.eml: NUL byte in "));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, refused[i].want));
    }
    /* text: NUL -> U+FFFD, counted; an encoded NUL in the subject too */
    const char text[] = "From: a@b.c\nSubject: =?UTF-8?Q?a=00b?=\n\nbe\0fore after\n";
    json_object *r = NULL;
    CU_ASSERT_EQUAL_FATAL(em_parse_mime("", text, sizeof text - 1, NULL, &r, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(field(r, "body"), "be\xef\xbf\xbd"
                                             "fore after\n");
    CU_ASSERT_STRING_EQUAL(field(r, "subject"), "a\xef\xbf\xbd"
                                                "b");
    CU_ASSERT_EQUAL(nul_count(r), 2);
    json_object_put(r);
    const char html[] = "From: a@b.c\nSubject: s\nContent-Type: text/html\n\n<p>h\0i</p>\n";
    CU_ASSERT_EQUAL_FATAL(em_parse_mime("", html, sizeof html - 1, NULL, &r, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(field(r, "body"), "h\xef\xbf\xbd"
                                             "i");
    CU_ASSERT_EQUAL(nul_count(r), 1);
    json_object_put(r);
    /* not text: a binary attachment keeps its NULs; UTF-16 has no NUL character */
    const char bin[] = "From: a@b.c\nSubject: s\nContent-Type: multipart/mixed; boundary=X\n\n"
                       "--X\nContent-Type: text/plain; charset=utf-16le\n\nh\0i\0\n"
                       "--X\nContent-Type: application/octet-stream\n"
                       "Content-Transfer-Encoding: binary\n\n\0\0\1\n--X--\n";
    CU_ASSERT_EQUAL_FATAL(em_parse_mime("", bin, sizeof bin - 1, NULL, &r, err, sizeof err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(field(r, "body"), "hi"));
    json_object *atts, *size;
    CU_ASSERT_TRUE_FATAL(json_object_object_get_ex(r, "attachments", &atts));
    CU_ASSERT_TRUE(json_object_object_get_ex(json_object_array_get_idx(atts, 0), "size", &size));
    CU_ASSERT_EQUAL(json_object_get_int(size), 3);
    CU_ASSERT_EQUAL(nul_count(r), 0);
    json_object_put(r);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("email_mime", NULL, NULL);
    CU_add_test(s, "RFC 2047 headers, addresses, date to UTC", test_headers_rfc2047);
    CU_add_test(s, "RFC 2047 decoded as Python does (differential)", test_rfc2047_differential);
    CU_add_test(s, "RFC 2047 in address lists, forwards, file names", test_rfc2047_elsewhere);
    CU_add_test(s, "charsets to UTF-8, bad bytes replaced", test_charsets);
    CU_add_test(s, "quoted-printable and base64", test_transfer_encodings);
    CU_add_test(s, "multipart/alternative prefers text/plain", test_alternative_prefers_plain);
    CU_add_test(s, "HTML to text", test_html_to_text);
    CU_add_test(s, "HTML nested past libxml2's limit: the fallback", test_html_deep);
    CU_add_test(s, "deep HTML body: text kept, diet.html_fallback", test_html_deep_message);
    CU_add_test(s, "nested multiparts, forwards, attachments", test_nested_forward_attachments);
    CU_add_test(s, "malformed messages refused with what and where", test_malformed);
    CU_add_test(s, "seed JSON mapped onto the email record", test_seed_mapping);
    CU_add_test(s, "NUL: refused in headers, U+FFFD and counted in text", test_nul_mime);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
