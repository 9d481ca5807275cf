/*
 * runtime_parse.c: the ATOM answer of the management REST API -> queue
 * counts (see runtime.h). libxml2 rather than a hand scanner: the counts
 * sit under namespaces whose prefixes the server chooses (d2p1 today), and
 * libxml2 resolves them and checks well-formedness with line numbers. It
 * runs with no network, no DTD loading and no entity expansion, and a
 * document carrying a DOCTYPE is refused outright (nothing legitimate in
 * this answer needs one).
 */
#include "runtime.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <intake/plugin.h>

#define NS_ATOM    "http://www.w3.org/2005/Atom"
#define NS_CONNECT "http://schemas.microsoft.com/netservices/2010/10/servicebus/connect"
#define NS_COUNTS  "http://schemas.microsoft.com/netservices/2011/06/servicebus"

/* 1 when n is an element named `name` in namespace `ns`. */
static int is_el(const xmlNode *n, const char *ns, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
           strcmp((const char *)n->ns->href, ns) == 0 && strcmp((const char *)n->name, name) == 0;
}

/* The first child element of parent named ns:name, or NULL. */
static xmlNode *child(xmlNode *parent, const char *ns, const char *name)
{
    for (xmlNode *c = parent->children; c; c = c->next)
        if (is_el(c, ns, name))
            return c;
    return NULL;
}

/* Copies up to 40 bytes of s into out for an error message, control and
 * non-ASCII bytes as '?'. */
static void quote(const char *s, char *out, size_t outlen)
{
    size_t i = 0;
    for (; s[i] && i < 40 && i + 1 < outlen; i++)
        out[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
    out[i] = '\0';
    if (s[i] && i + 4 < outlen)
        strcpy(out + i, "...");
}

/* Reads element n's text as a non-negative decimal (surrounding white
 * space allowed) into *v. 0 or IK_E_PARSE/IK_E_NOMEM with err. */
static int read_count(xmlNode *n, int64_t *v, char *err, size_t errlen)
{
    xmlChar *text = xmlNodeGetContent(n);
    if (!text)
        return IK_E_NOMEM;
    const char *p = (const char *)text;
    while (isspace((unsigned char)*p))
        p++;
    const char *d = p;
    int64_t x = 0;
    int ok = 1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (x > (INT64_MAX - (*p - '0')) / 10) {
            ok = 0;
            break;
        }
        x = x * 10 + (*p - '0');
    }
    while (ok && isspace((unsigned char)*p))
        p++;
    if (!ok || p == d || *p) {
        char q[48];
        quote((const char *)text, q, sizeof q);
        snprintf(err, errlen, "line %ld: <%s> is '%s', not a count from 0 to %lld", xmlGetLineNo(n),
                 (const char *)n->name, q, (long long)INT64_MAX);
        xmlFree(text);
        return IK_E_PARSE;
    }
    xmlFree(text);
    *v = x;
    return 0;
}

/* One count field: its element name, the namespace it lives in, where it goes. */
typedef struct field {
    const char *ns, *name;
    size_t off;
} field;

static const field count_fields[] = {
    {NS_COUNTS, "ActiveMessageCount", offsetof(ik_sb_counts, active)},
    {NS_COUNTS, "DeadLetterMessageCount", offsetof(ik_sb_counts, dead_letter)},
    {NS_COUNTS, "ScheduledMessageCount", offsetof(ik_sb_counts, scheduled)},
    {NS_COUNTS, "TransferMessageCount", offsetof(ik_sb_counts, transfer)},
    {NS_COUNTS, "TransferDeadLetterMessageCount", offsetof(ik_sb_counts, transfer_dead_letter)},
};
static const field queue_fields[] = {
    {NS_CONNECT, "MessageCount", offsetof(ik_sb_counts, total)},
    {NS_CONNECT, "SizeInBytes", offsetof(ik_sb_counts, size_bytes)},
};

/* Reads every field of fields[] from the children of parent, each exactly
 * once. 0 or an error code with err. */
static int read_fields(xmlNode *parent, const field *fields, size_t nfields, ik_sb_counts *out,
                       char *err, size_t errlen)
{
    for (size_t i = 0; i < nfields; i++) {
        xmlNode *n = child(parent, fields[i].ns, fields[i].name);
        if (!n) {
            snprintf(err, errlen, "line %ld: <%s> has no <%s>", xmlGetLineNo(parent),
                     (const char *)parent->name, fields[i].name);
            return IK_E_PARSE;
        }
        for (xmlNode *m = n->next; m; m = m->next)
            if (is_el(m, fields[i].ns, fields[i].name)) {
                snprintf(err, errlen, "line %ld: <%s> appears a second time", xmlGetLineNo(m),
                         fields[i].name);
                return IK_E_PARSE;
            }
        int rc = read_count(n, (int64_t *)(void *)((char *)out + fields[i].off), err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The counts from the root element of a well-formed document. */
static int read_root(xmlNode *root, ik_sb_counts *out, char *err, size_t errlen)
{
    if (is_el(root, NS_ATOM, "feed")) {
        size_t entries = 0;
        for (xmlNode *c = root->children; c; c = c->next)
            entries += is_el(c, NS_ATOM, "entry");
        if (entries == 0) {
            snprintf(err, errlen, "no such queue (the answer is an empty feed)");
            return IK_E_NOTFOUND;
        }
        snprintf(err, errlen, "line %ld: a feed of %zu entries, not one queue's entry",
                 xmlGetLineNo(root), entries);
        return IK_E_PARSE;
    }
    if (!is_el(root, NS_ATOM, "entry")) {
        snprintf(err, errlen, "line %ld: the root element is <%.64s>, not an ATOM <entry>",
                 xmlGetLineNo(root), (const char *)root->name);
        return IK_E_PARSE;
    }
    xmlNode *content = child(root, NS_ATOM, "content");
    if (!content) {
        snprintf(err, errlen, "line %ld: <entry> has no <content>", xmlGetLineNo(root));
        return IK_E_PARSE;
    }
    xmlNode *qd = child(content, NS_CONNECT, "QueueDescription");
    if (!qd) {
        snprintf(err, errlen, "line %ld: <content> holds no <QueueDescription> (not a queue?)",
                 xmlGetLineNo(content));
        return IK_E_PARSE;
    }
    int rc =
        read_fields(qd, queue_fields, sizeof queue_fields / sizeof *queue_fields, out, err, errlen);
    if (rc != 0)
        return rc;
    xmlNode *cd = child(qd, NS_CONNECT, "CountDetails");
    if (!cd) {
        snprintf(err, errlen, "line %ld: <QueueDescription> has no <CountDetails>",
                 xmlGetLineNo(qd));
        return IK_E_PARSE;
    }
    return read_fields(cd, count_fields, sizeof count_fields / sizeof *count_fields, out, err,
                       errlen);
}

/* err <- "line L, column C: not well-formed XML: <libxml2's message>". */
static void xml_error(xmlParserCtxtPtr ctxt, char *err, size_t errlen)
{
    const xmlError *e = xmlCtxtGetLastError(ctxt);
    if (!e || !e->message) {
        snprintf(err, errlen, "not well-formed XML");
        return;
    }
    char msg[200];
    snprintf(msg, sizeof msg, "%s", e->message);
    size_t n = strlen(msg);
    while (n > 0 && isspace((unsigned char)msg[n - 1]))
        msg[--n] = '\0';
    snprintf(err, errlen, "line %d, column %d: not well-formed XML: %s", e->line, e->int2, msg);
}

int ik_sb_runtime_parse(const char *xml, size_t len, ik_sb_counts *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (errlen)
        err[0] = '\0';
    if (len > IK_SB_RUNTIME_MAX_ANSWER) {
        snprintf(err, errlen, "the answer is %zu bytes, more than the %d allowed", len,
                 IK_SB_RUNTIME_MAX_ANSWER);
        return IK_E_PARSE;
    }
    if (len == 0) {
        snprintf(err, errlen, "the answer is empty, not an ATOM document");
        return IK_E_PARSE;
    }
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (!ctxt)
        return IK_E_NOMEM;
    xmlDocPtr doc = xmlCtxtReadMemory(ctxt, xml, (int)len, "answer", NULL,
                                      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    int rc;
    if (!doc) {
        xml_error(ctxt, err, errlen);
        rc = IK_E_PARSE;
    } else if (doc->intSubset || doc->extSubset) {
        snprintf(err, errlen, "line %ld: a DOCTYPE is not allowed in the answer",
                 doc->intSubset ? xmlGetLineNo((xmlNode *)doc->intSubset) : 1L);
        rc = IK_E_PARSE;
    } else {
        xmlNode *root = xmlDocGetRootElement(doc);
        if (root) {
            rc = read_root(root, out, err, errlen);
        } else {
            snprintf(err, errlen, "the answer has no root element");
            rc = IK_E_PARSE;
        }
    }
    if (rc != 0)
        memset(out, 0, sizeof *out);
    xmlFreeDoc(doc);
    xmlFreeParserCtxt(ctxt);
    return rc;
}
