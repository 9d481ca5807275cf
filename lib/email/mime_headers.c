/*
 * mime_headers.c: the email record's header fields from a GMime message:
 * sender, recipients (groups flattened), date, subject, message ids, with
 * encoded words decoded whole (rfc2047.c) and every string valid UTF-8.
 */
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include <intake/plugin.h>

#include "mime_internal.h"

json_object *mime_jstr(const char *s)
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
        json_object_object_add(o, "name",
                               name && name[0] ? mime_jstr(name) : json_object_new_null());
        json_object_object_add(
            o, "email", mime_jstr(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia))));
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
const char *mime_raw_header(GMimeObject *o, const char *name)
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
char *mime_message_subject(GMimeMessage *m, size_t *nuls)
{
    const char *raw = mime_raw_header(GMIME_OBJECT(m), "Subject");
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
InternetAddressList *mime_message_addresses(GMimeMessage *m, GMimeParserOptions *po,
                                            GMimeAddressType type, size_t *nuls)
{
    static const char *const names[] = {[GMIME_ADDRESS_TYPE_SENDER] = "Sender",
                                        [GMIME_ADDRESS_TYPE_FROM] = "From",
                                        [GMIME_ADDRESS_TYPE_REPLY_TO] = "Reply-To",
                                        [GMIME_ADDRESS_TYPE_TO] = "To",
                                        [GMIME_ADDRESS_TYPE_CC] = "Cc",
                                        [GMIME_ADDRESS_TYPE_BCC] = "Bcc"};
    InternetAddressList *list = g_mime_message_get_addresses(m, type);
    const char *raw = mime_raw_header(GMIME_OBJECT(m), names[type]);
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

/* ---- the record's header fields ---------------------------------------- */

/* sender_email and sender_name: the first From mailbox, else Sender's. */
static void add_sender(json_object *rec, GMimeMessage *m, walk_ctx *c, InternetAddressList *from)
{
    InternetAddressList *sender =
        list_length(from) ? NULL
                          : mime_message_addresses(m, c->po, GMIME_ADDRESS_TYPE_SENDER, &c->nuls);
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
    json_object_object_add(rec, "sender_email", mime_jstr(email));
    json_object_object_add(rec, "sender_name",
                           name && name[0] ? mime_jstr(name) : json_object_new_null());
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
        InternetAddressList *l = mime_message_addresses(m, c->po, lists[i].type, &c->nuls);
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
        json_object_object_add(rec, "date", mime_jstr(iso));
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
                               ? mime_jstr(g_mime_references_get_message_id(refs, 0))
                               : json_object_new_null());
    if (refs)
        g_mime_references_free(refs);
    json_object *ra = json_object_new_array();
    const char *rh = g_mime_object_get_header(mo, "References");
    refs = rh ? g_mime_references_parse(po, rh) : NULL;
    for (int i = 0; ra && refs && i < g_mime_references_length(refs) && i < 200; i++)
        json_object_array_add(ra, mime_jstr(g_mime_references_get_message_id(refs, i)));
    if (refs)
        g_mime_references_free(refs);
    json_object_object_add(rec, "references", ra);
}

/*
 * The record's header fields. IK_E_PARSE (err set) when the header block has
 * none of From, To, Subject, Date, Message-ID; IK_E_NOMEM.
 */
int mime_add_headers(json_object *rec, GMimeMessage *m, walk_ctx *c, const char *name, size_t start,
                     char *err, size_t errlen)
{
    const char *msgid = g_mime_message_get_message_id(m);
    char *subject = mime_message_subject(m, &c->nuls);
    InternetAddressList *from = mime_message_addresses(m, c->po, GMIME_ADDRESS_TYPE_FROM, &c->nuls);
    InternetAddressList *to = g_mime_message_get_to(m);
    int rc = 0;
    if (!msgid && !subject && !g_mime_message_get_date(m) && !list_length(from) &&
        !list_length(to)) {
        mime_set_err(
            err, errlen, name, "%s (offset %lld)",
            "not an email: none of From, To, Subject, Date, Message-ID in the header block",
            (long long)start);
        rc = IK_E_PARSE;
    } else {
        json_object_object_add(rec, "schema", json_object_new_string(EM_SCHEMA));
        json_object_object_add(rec, "message_id", mime_jstr(msgid));
        add_sender(rec, m, c, from);
        add_recipients(rec, m, c);
        add_date(rec, m);
        json_object_object_add(rec, "subject", mime_jstr(subject ? subject : ""));
        add_references(rec, m, c->po);
    }
    free(subject);
    if (from)
        g_object_unref(from);
    return rc;
}
