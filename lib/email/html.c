/*
 * html.c: HTML to readable text for the email library, with libxml2's
 * forgiving HTML parser (HTML_PARSE_RECOVER, no network, no error output).
 * Block elements become line breaks, list items keep a bullet, script, style
 * and head are dropped, entities come decoded from the parser, whitespace is
 * collapsed as a browser would (except inside <pre>), and a link whose target
 * is not its text is written "text <url>".
 *
 * libxml2 stops parsing at 256 nested elements (and a document may give it
 * nothing at all): then a plain tag-stripping pass reads the whole input
 * instead, keeping text and block breaks, dropping tags, comments and
 * script/style content, decoding entities the way the parser does. Neither
 * the DOM walk nor the fallback recurses, so no document depth can exhaust
 * the stack; the fallback is one linear pass.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <glib.h>
#include <libxml/HTMLparser.h>
#include <libxml/chvalid.h>
#include <libxml/tree.h>

#include "common/buf.h"
#include "email.h"

/* The text being written, shared by the DOM walk and the fallback. */
typedef struct h2t {
    ik_buf out;
    int pending_nl; /* line breaks owed before the next text (max 2) */
    int space;      /* a space is owed before the next text */
    int pre;        /* open <pre> elements */
    ik_buf lists;   /* stack of open lists, one int each: -1 <ul>, else <ol>'s count */
} h2t;

static int name_in(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (strcasecmp(name, *list) == 0)
            return 1;
    return 0;
}

static const char *const block_tags[] = {
    "p",      "div",     "h1",    "h2",    "h3",         "h4",   "h5",      "h6",      "ul",
    "ol",     "li",      "table", "tr",    "blockquote", "pre",  "section", "article", "header",
    "footer", "address", "dl",    "dt",    "dd",         "form", "center",  "nav",     "aside",
    "main",   "figure",  "tbody", "thead", "hr",         NULL};
static const char *const para_tags[] = {"p",     "h1",         "h2", "h3", "h4",  "h5", "h6",
                                        "table", "blockquote", "ul", "ol", "pre", NULL};
static const char *const drop_tags[] = {"script",   "style", "head",   "title", "noscript",
                                        "template", "svg",   "object", NULL};

static void want_break(h2t *h, int n)
{
    if (h->out.len == 0)
        return; /* no leading blank lines */
    if (h->pending_nl < n)
        h->pending_nl = n;
    h->space = 0;
}

static void flush_breaks(h2t *h)
{
    if (h->pending_nl > 0 && h->out.len > 0) {
        /* trim trailing spaces of the line being closed */
        while (h->out.len > 0 && h->out.p[h->out.len - 1] == ' ')
            h->out.p[--h->out.len] = '\0';
        for (int i = 0; i < h->pending_nl; i++)
            ik_buf_addc(&h->out, '\n');
    }
    h->pending_nl = 0;
}

static void add_text(h2t *h, const char *s)
{
    if (h->pre) {
        flush_breaks(h);
        ik_buf_adds(&h->out, s);
        return;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int ws = *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f';
        if (ws) {
            if (h->out.len > 0 && !h->pending_nl)
                h->space = 1;
            p++;
            continue;
        }
        /* U+00A0 no-break space counts as a space too */
        if (p[0] == 0xc2 && p[1] == 0xa0) {
            if (h->out.len > 0 && !h->pending_nl)
                h->space = 1;
            p += 2;
            continue;
        }
        flush_breaks(h);
        if (h->space && h->out.len > 0 && h->out.p[h->out.len - 1] != '\n')
            ik_buf_addc(&h->out, ' ');
        h->space = 0;
        ik_buf_addc(&h->out, (char)*p);
        p++;
    }
}

/* <br>: a line break now. */
static void line_break(h2t *h)
{
    flush_breaks(h);
    ik_buf_addc(&h->out, '\n');
    h->space = 0;
}

/* <hr>: a rule on a line of its own. */
static void rule(h2t *h)
{
    want_break(h, 1);
    flush_breaks(h);
    ik_buf_adds(&h->out, "---");
    want_break(h, 1);
}

/* <li>: a bullet, or the next number of the innermost <ol>. */
static void list_item(h2t *h)
{
    flush_breaks(h);
    int *top =
        h->lists.len >= sizeof(int) ? (int *)(h->lists.p + h->lists.len - sizeof(int)) : NULL;
    if (top && *top >= 0) {
        char num[24];
        snprintf(num, sizeof num, "%d. ", ++*top);
        ik_buf_adds(&h->out, num);
    } else {
        ik_buf_adds(&h->out, "- ");
    }
    h->space = 0;
}

static void list_open(h2t *h, int ordered)
{
    int v = ordered ? 0 : -1;
    ik_buf_add(&h->lists, (const char *)&v, sizeof v);
}

static void list_close(h2t *h)
{
    if (h->lists.len >= sizeof(int))
        h->lists.len -= sizeof(int);
}

/*
 * What an opening tag does to the text, shared by both paths: breaks, bullets,
 * <pre>, lists. Returns 1 when the element has content to read (and a
 * matching tag_close() must follow), 0 when it is done (br, hr).
 */
static int tag_open(h2t *h, const char *name)
{
    if (strcasecmp(name, "br") == 0) {
        line_break(h);
        return 0;
    }
    if (strcasecmp(name, "hr") == 0) {
        rule(h);
        return 0;
    }
    if (name_in(name, block_tags))
        want_break(h, name_in(name, para_tags) ? 2 : 1);
    if (strcasecmp(name, "td") == 0 || strcasecmp(name, "th") == 0)
        h->space = h->out.len > 0;
    if (strcasecmp(name, "li") == 0)
        list_item(h);
    else if (strcasecmp(name, "pre") == 0)
        h->pre++;
    else if (strcasecmp(name, "ul") == 0 || strcasecmp(name, "ol") == 0)
        list_open(h, strcasecmp(name, "ol") == 0);
    return 1;
}

static void tag_close(h2t *h, const char *name)
{
    if (strcasecmp(name, "pre") == 0 && h->pre > 0)
        h->pre--;
    else if (strcasecmp(name, "ul") == 0 || strcasecmp(name, "ol") == 0)
        list_close(h);
    if (name_in(name, block_tags))
        want_break(h, name_in(name, para_tags) ? 2 : 1);
}

/* ---- the DOM walk ---- */

/* Next node after n in document order below top, not entering n's children. */
static xmlNode *next_skipping(xmlNode *n, xmlNode *top)
{
    while (n && n != top && !n->next)
        n = n->parent;
    return n && n != top ? n->next : NULL;
}

/* Text of the subtree below top, at most `max` bytes of it (for comparing a
 * link with its text). */
static void subtree_text(xmlNode *top, ik_buf *b, size_t max)
{
    for (xmlNode *n = top->children; n && b->len < max;) {
        if (n->type == XML_TEXT_NODE && n->content)
            ik_buf_adds(b, (const char *)n->content);
        if (n->type == XML_ELEMENT_NODE && n->children)
            n = n->children;
        else
            n = next_skipping(n, top);
    }
}

/* After an <a>'s content: " <url>" when the link's text does not show it. */
static void link_target(h2t *h, xmlNode *a)
{
    xmlChar *href = xmlGetProp(a, (const xmlChar *)"href");
    if (href && (strncasecmp((const char *)href, "http", 4) == 0 ||
                 strncasecmp((const char *)href, "www.", 4) == 0)) {
        ik_buf t = {0};
        subtree_text(a, &t, 4096 + strlen((const char *)href));
        const char *txt = t.p ? t.p : "";
        while (*txt == ' ' || *txt == '\n' || *txt == '\t')
            txt++;
        if (!strstr(txt, (const char *)href) &&
            !strstr((const char *)href, txt[0] ? txt : "\x01")) {
            add_text(h, " <");
            h->space = 0;
            add_text(h, (const char *)href);
            add_text(h, ">");
        }
        ik_buf_free(&t);
    }
    xmlFree(href);
}

/* Opens element n; 1 when its children are to be read (and dom_leave must
 * follow), 0 when it is skipped whole. */
static int dom_enter(h2t *h, xmlNode *n)
{
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
        if (n->content)
            add_text(h, (const char *)n->content);
        return 0;
    }
    if (n->type != XML_ELEMENT_NODE || !n->name || name_in((const char *)n->name, drop_tags))
        return 0;
    return tag_open(h, (const char *)n->name);
}

static void dom_leave(h2t *h, xmlNode *n)
{
    tag_close(h, (const char *)n->name);
    if (strcasecmp((const char *)n->name, "a") == 0)
        link_target(h, n);
}

/* Walks the document in order with the tree's own links (no recursion). */
static void dom_walk(h2t *h, xmlDoc *doc)
{
    xmlNode *top = (xmlNode *)doc;
    xmlNode *n = doc->children;
    while (n) {
        int open = dom_enter(h, n);
        if (open && n->children) {
            n = n->children;
            continue;
        }
        if (open)
            dom_leave(h, n);
        while (n && n != top && !n->next) {
            n = n->parent;
            if (n && n != top)
                dom_leave(h, n);
        }
        n = n && n != top ? n->next : NULL;
    }
}

/*
 * Parses with libxml2 and walks the tree. Returns 1 when the text stands, 0
 * when the parser could not read the document through (no document, or it
 * stopped early: libxml2 halts at its depth limit and keeps only what came
 * before) and the fallback must read it instead.
 */
static int dom_to_text(h2t *h, const char *html, size_t len)
{
    htmlParserCtxtPtr ctxt = htmlNewParserCtxt();
    if (!ctxt)
        return 0;
    htmlDocPtr doc =
        htmlCtxtReadMemory(ctxt, html, (int)len, NULL, "UTF-8",
                           HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                               HTML_PARSE_NONET | HTML_PARSE_NOIMPLIED);
    int whole = doc && !ctxt->disableSAX;
    if (whole)
        dom_walk(h, doc);
    xmlFreeDoc(doc);
    htmlFreeParserCtxt(ctxt);
    return whole;
}

/* ---- the fallback: a plain tag-stripping pass ---- */

/* Appends code point cp as UTF-8 when libxml2 would keep it (its own XML
 * Char test, the one its character references pass): NUL, controls,
 * surrogates and values past U+10FFFF are dropped as it does. */
static void add_codepoint(ik_buf *b, unsigned long cp)
{
    if (!xmlIsCharQ(cp))
        return;
    char u[8];
    ik_buf_add(b, u, (size_t)g_unichar_to_utf8((gunichar)cp, u));
}

/* A character reference at s ("&#65;", "&#x41", the ';' optional) into b.
 * Returns the bytes it took, 0 when s is not one. */
static size_t char_ref(const char *s, const char *end, ik_buf *b)
{
    const char *p = s + 2;
    int hex = p < end && (*p == 'x' || *p == 'X');
    p += hex;
    unsigned long cp = 0;
    const char *digits = p;
    for (; p < end && (hex ? g_ascii_isxdigit(*p) : g_ascii_isdigit(*p)); p++)
        if (cp <= 0x10ffff)
            cp = cp * (hex ? 16 : 10) + (unsigned long)g_ascii_xdigit_value(*p);
    if (p == digits)
        return 0;
    if (p < end && *p == ';')
        p++;
    add_codepoint(b, cp);
    return (size_t)(p - s);
}

/* A named entity at s ("&eacute;", ';' required, names as libxml2 knows
 * them) into b. Returns the bytes it took, 0 when s is not one. */
static size_t named_ref(const char *s, const char *end, ik_buf *b)
{
    char name[16];
    size_t n = 0;
    const char *p = s + 1;
    while (p < end && n < sizeof name - 1 && g_ascii_isalnum(*p))
        name[n++] = *p++;
    name[n] = '\0';
    if (n == 0 || p >= end || *p != ';')
        return 0;
    const htmlEntityDesc *e = htmlEntityLookup((const xmlChar *)name);
    if (!e)
        return 0;
    add_codepoint(b, e->value);
    return (size_t)(p + 1 - s);
}

/* Text between tags, entities decoded, into the output. */
static void strip_text(h2t *h, const char *s, size_t n)
{
    ik_buf t = {0};
    const char *end = s + n;
    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *stop = amp ? amp : end;
        ik_buf_add(&t, s, (size_t)(stop - s));
        s = stop;
        if (!amp)
            break;
        size_t used = s + 1 < end && s[1] == '#' ? char_ref(s, end, &t) : named_ref(s, end, &t);
        if (used == 0) {
            ik_buf_addc(&t, '&');
            used = 1;
        }
        s += used;
    }
    if (t.p)
        add_text(h, t.p);
    h->out.oom |= t.oom;
    ik_buf_free(&t);
}

/* Case-insensitive search for needle in [p, end); NULL when absent. */
static const char *find_ci(const char *p, const char *end, const char *needle)
{
    size_t n = strlen(needle);
    for (; (size_t)(end - p) >= n; p++)
        if (g_ascii_strncasecmp(p, needle, n) == 0)
            return p;
    return NULL;
}

/* End of the tag opening at s ('>' outside quoted attribute values), or the
 * first '>' when a quote never closes; end when there is none. */
static const char *tag_end(const char *s, const char *end)
{
    char quote = 0;
    for (const char *p = s; p < end; p++) {
        if (quote) {
            quote = *p == quote ? 0 : quote;
        } else if (*p == '"' || *p == '\'') {
            quote = *p;
        } else if (*p == '>') {
            return p + 1;
        }
    }
    const char *gt = memchr(s, '>', (size_t)(end - s));
    return gt ? gt + 1 : end;
}

/*
 * Skips the content of a dropped element that opened before p: up to and
 * past "</name...>". script and style are raw text and run to the end when
 * never closed; the others keep their content then (only the tag goes).
 * *last_close is where name's last closing tag is (NULL: none), found once
 * per name, so an element never closed costs no scan and the pass stays
 * linear.
 */
static const char *skip_dropped(const char *p, const char *end, const char *name,
                                const char *last_close)
{
    int raw = strcmp(name, "script") == 0 || strcmp(name, "style") == 0;
    if (!last_close || last_close < p)
        return raw ? end : p;
    char close[24];
    snprintf(close, sizeof close, "</%s", name);
    const char *c = find_ci(p, end, close); /* found: at last_close at the latest */
    return tag_end(c ? c : last_close, end);
}

/* Where name's last closing tag in [s, end) starts, NULL when none. */
static const char *last_closing(const char *s, const char *end, const char *name)
{
    char close[24];
    snprintf(close, sizeof close, "</%s", name);
    size_t n = strlen(close);
    for (const char *p = end; p - s >= (ptrdiff_t)n; p--)
        if (g_ascii_strncasecmp(p - n, close, n) == 0)
            return p - n;
    return NULL;
}

/*
 * The tag, comment or declaration at s ('<'): its effect on the text, and
 * where reading goes on. A '<' that opens none of them is text.
 */
static const char *strip_tag(h2t *h, const char *s, const char *end, const char **closes,
                             int *scanned)
{
    if (end - s >= 4 && memcmp(s, "<!--", 4) == 0) {
        const char *c = g_strstr_len(s + 4, end - s - 4, "-->");
        return c ? c + 3 : end;
    }
    if (s + 1 < end && (s[1] == '!' || s[1] == '?'))
        return tag_end(s, end);
    int closing = s + 1 < end && s[1] == '/';
    const char *p = s + 1 + closing;
    char name[16];
    size_t n = 0;
    while (p < end && (g_ascii_isalnum(*p) || *p == '-' || *p == ':') && n < sizeof name - 1)
        name[n++] = g_ascii_tolower(*p++);
    name[n] = '\0';
    if (n == 0 || !g_ascii_isalpha(name[0])) {
        strip_text(h, "<", 1);
        return s + 1;
    }
    const char *after = tag_end(p, end);
    if (closing) {
        if (!name_in(name, drop_tags))
            tag_close(h, name);
        return after;
    }
    for (size_t i = 0; drop_tags[i]; i++)
        if (strcmp(name, drop_tags[i]) == 0) {
            if (!(*scanned & (1 << i))) {
                closes[i] = last_closing(after, end, name);
                *scanned |= 1 << i;
            }
            return skip_dropped(after, end, name, closes[i]);
        }
    if (tag_open(h, name) && after[-1] == '>' && after[-2] == '/')
        tag_close(h, name); /* <div/> */
    return after;
}

/* The fallback: one pass over the input, text kept, tags interpreted. */
static void strip_to_text(h2t *h, const char *html, size_t len)
{
    const char *s = html, *end = html + len;
    const char *closes[sizeof drop_tags / sizeof *drop_tags] = {0};
    int scanned = 0;
    while (s < end && !h->out.oom) {
        const char *lt = memchr(s, '<', (size_t)(end - s));
        const char *stop = lt ? lt : end;
        if (stop > s)
            strip_text(h, s, (size_t)(stop - s));
        s = lt ? strip_tag(h, lt, end, closes, &scanned) : end;
    }
}

/* Resets the writer for another attempt at the same input. */
static void h2t_reset(h2t *h)
{
    ik_buf_free(&h->out);
    ik_buf_free(&h->lists);
    memset(h, 0, sizeof *h);
}

/* 1 when s[0..len) has something other than whitespace. */
static int has_content(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!g_ascii_isspace(s[i]))
            return 1;
    return 0;
}

/*
 * Text of the document into h: libxml2's tree when it read the document
 * through, else the fallback. Returns 1 when the fallback's text was taken.
 */
static int to_text(h2t *h, const char *html, size_t len)
{
    if (!has_content(html, len))
        return 0;
    if (len > (size_t)0x7fffffff || !dom_to_text(h, html, len)) {
        h2t_reset(h);
        strip_to_text(h, html, len);
        return 1; /* whatever it found, the parser could not read this */
    }
    if (h->out.len > 0 || h->out.oom)
        return 0;
    /* the parser found no text in something that is not blank: look again */
    h2t_reset(h);
    strip_to_text(h, html, len);
    return h->out.len > 0;
}

char *em_html_to_text(const char *html, size_t len, int *fallback)
{
    em_init();
    h2t h = {0};
    int used = to_text(&h, html, len);
    if (fallback)
        *fallback = used;
    /* trim trailing whitespace */
    while (h.out.len > 0 && (h.out.p[h.out.len - 1] == ' ' || h.out.p[h.out.len - 1] == '\n'))
        h.out.p[--h.out.len] = '\0';
    ik_buf_free(&h.lists);
    char *s = ik_buf_take(&h.out);
    if (!s)
        return NULL;
    /* libxml2 may pass bad bytes through in recovery: never hand them on */
    size_t n = strlen(s);
    if (!em_utf8_valid(s, n)) {
        char *fixed = em_to_utf8(s, n, "utf-8", NULL, NULL);
        free(s);
        s = fixed;
    }
    return s;
}
