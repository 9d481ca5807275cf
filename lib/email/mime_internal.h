/*
 * mime_internal.h: what the parts of the MIME parser share, private to the
 * email library: mime.c drives the parse, mime_headers.c writes the record's
 * header fields, mime_body.c its body and attachments, mime_nul.c refuses
 * NUL bytes in headers.
 */
#ifndef INTAKE_EMAIL_MIME_INTERNAL_H
#define INTAKE_EMAIL_MIME_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <gmime/gmime.h>
#include <json-c/json.h>

#include "common/buf.h"
#include "email.h"

/* One parse: its options, what the body walk gathers, what the parser's
 * warnings said. */
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

/* s as a JSON string, repaired to valid UTF-8; JSON null for NULL. NULL on
 * no memory. */
json_object *mime_jstr(const char *s);

/* Raw (folded) value of the last header called name in o's own header list
 * (the one GMime's message getters read); NULL when there is none. The
 * string belongs to o. */
const char *mime_raw_header(GMimeObject *o, const char *name);

/* Subject with its encoded words decoded whole; NULL when the message has
 * none or on no memory. Caller frees. */
char *mime_message_subject(GMimeMessage *m, size_t *nuls);

/* A message's address list of one type, encoded words decoded whole.
 * Returns a new reference (g_object_unref) or NULL. */
InternetAddressList *mime_message_addresses(GMimeMessage *m, GMimeParserOptions *po,
                                            GMimeAddressType type, size_t *nuls);

/* err = "NAME: " (when name is not empty) and fmt formatted with what and
 * off. */
void mime_set_err(char *err, size_t errlen, const char *name, const char *fmt, const char *what,
                  long long off);

/* The record's header fields (schema, message_id, sender, recipients, date,
 * subject, references). IK_E_PARSE (err set) when the header block has none
 * of From, To, Subject, Date, Message-ID; IK_E_NOMEM. */
int mime_add_headers(json_object *rec, GMimeMessage *m, walk_ctx *c, const char *name, size_t start,
                     char *err, size_t errlen);

/* The record's body, body_format, attachments and the parser's notes, from
 * a walk of m's parts. 0 or IK_E_NOMEM. */
int mime_add_body(json_object *rec, walk_ctx *c, GMimeMessage *m);

/* IK_E_PARSE with err when a header of the message (at buf + start) or of
 * any part or forwarded message holds a NUL byte; else 0. */
int mime_nul_headers(const char *name, const char *buf, size_t len, size_t start, GMimeMessage *m,
                     char *err, size_t errlen);

#endif
