/*
 * html.c: HTML to readable text for the email library, with libxml2's
 * forgiving HTML parser (HTML_PARSE_RECOVER, no network, no error output).
 * Block elements become line breaks, list items keep a bullet, script, style
 * and head are dropped, entities come decoded from the parser, whitespace is
 * collapsed as a browser would (except inside <pre>), and a link whose target
 * is not its text is written "text <url>".
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>

#include "common/buf.h"
#include "email.h"

typedef struct h2t {
    ik_buf out;
    int pending_nl; /* line breaks owed before the next text (max 2) */
    int space;      /* a space is owed before the next text */
    int pre;        /* inside <pre> */
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

/* Text of a subtree (for comparing a link with its text). */
static void subtree_text(xmlNode *n, ik_buf *b, int depth)
{
    for (; n && depth < 200; n = n->next) {
        if (n->type == XML_TEXT_NODE && n->content)
            ik_buf_adds(b, (const char *)n->content);
        else if (n->type == XML_ELEMENT_NODE)
            subtree_text(n->children, b, depth + 1);
    }
}

static void walk(h2t *h, xmlNode *n, int depth, int list_kind, int *list_no)
{
    for (; n; n = n->next) {
        if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
            if (n->content)
                add_text(h, (const char *)n->content);
            continue;
        }
        if (n->type != XML_ELEMENT_NODE || !n->name)
            continue;
        const char *name = (const char *)n->name;
        if (name_in(name, drop_tags))
            continue;
        if (depth > 256) /* libxml2 caps nesting itself; this keeps our stack small */
            continue;
        if (strcasecmp(name, "br") == 0) {
            flush_breaks(h);
            ik_buf_addc(&h->out, '\n');
            h->space = 0;
            continue;
        }
        int block = name_in(name, block_tags);
        int para = name_in(name, para_tags);
        if (block)
            want_break(h, para ? 2 : 1);
        if (strcasecmp(name, "td") == 0 || strcasecmp(name, "th") == 0)
            h->space = h->out.len > 0;
        if (strcasecmp(name, "hr") == 0) {
            flush_breaks(h);
            ik_buf_adds(&h->out, "---");
            want_break(h, 1);
            continue;
        }
        if (strcasecmp(name, "li") == 0) {
            flush_breaks(h);
            if (list_kind == 2) {
                char num[24];
                snprintf(num, sizeof num, "%d. ", ++*list_no);
                ik_buf_adds(&h->out, num);
            } else {
                ik_buf_adds(&h->out, "- ");
            }
            h->space = 0;
        }
        int was_pre = h->pre;
        if (strcasecmp(name, "pre") == 0)
            h->pre = 1;
        int kind = list_kind, no = 0;
        if (strcasecmp(name, "ul") == 0)
            kind = 1;
        else if (strcasecmp(name, "ol") == 0)
            kind = 2;
        walk(h, n->children, depth + 1, kind, kind != list_kind ? &no : list_no);
        h->pre = was_pre;
        if (strcasecmp(name, "a") == 0) {
            xmlChar *href = xmlGetProp(n, (const xmlChar *)"href");
            if (href && (strncasecmp((const char *)href, "http", 4) == 0 ||
                         strncasecmp((const char *)href, "www.", 4) == 0)) {
                ik_buf t = {0};
                subtree_text(n->children, &t, 0);
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
        if (block)
            want_break(h, para ? 2 : 1);
    }
}

char *em_html_to_text(const char *html, size_t len)
{
    em_init();
    h2t h = {0};
    if (len > 0 && len <= (size_t)0x7fffffff) {
        htmlDocPtr doc =
            htmlReadMemory(html, (int)len, NULL, "UTF-8",
                           HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                               HTML_PARSE_NONET | HTML_PARSE_NOIMPLIED);
        if (doc) {
            walk(&h, xmlDocGetRootElement(doc) ? doc->children : NULL, 0, 0, NULL);
            xmlFreeDoc(doc);
        }
    }
    /* trim trailing whitespace */
    while (h.out.len > 0 && (h.out.p[h.out.len - 1] == ' ' || h.out.p[h.out.len - 1] == '\n'))
        h.out.p[--h.out.len] = '\0';
    char *s = ik_buf_take(&h.out);
    if (!s)
        return NULL;
    /* libxml2 may pass bad bytes through in recovery: never hand them on */
    size_t n = strlen(s);
    if (!em_utf8_valid(s, n)) {
        char *fixed = em_to_utf8(s, n, "utf-8", NULL);
        free(s);
        s = fixed;
    }
    return s;
}
