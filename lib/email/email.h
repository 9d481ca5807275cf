/*
 * email.h: the shared email library of Intake (static, linked into the file
 * source and the email_normalize and rules processors). It turns outside
 * input into the email record of etc/email.schema.json:
 *
 *   - em_parse_mime(): one RFC 5322 message (GMime 3) -> email record;
 *   - em_from_seed(): the seed's JSON email -> the same record;
 *   - em_html_to_text(): HTML (libxml2's HTML parser) -> readable text;
 *   - em_header_decode(): RFC 2047 header text -> UTF-8;
 *   - em_to_utf8(): any charset -> valid UTF-8 (bad bytes become U+FFFD);
 *   - em_diet(): the token diet (whitespace, quoted replies, Outlook blocks,
 *     disclaimers, cap) with the characters removed per step.
 *
 * Every function is pure apart from em_init() (a once-only library
 * initialisation of GMime and libxml2, safe from any thread) and safe to call
 * from many threads on distinct inputs. Returned strings and json objects
 * belong to the caller.
 */
#ifndef INTAKE_EMAIL_H
#define INTAKE_EMAIL_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/* Value of the record's "schema" key: marks a payload already in this shape. */
#define EM_SCHEMA "intake.email/1"
/* Longest error text (what was wrong, and where). */
#define EM_ERROR_MAX 400
/* Deepest MIME nesting followed (multiparts and forwarded messages). */
#define EM_MAX_DEPTH 32

/* Initialises GMime and libxml2 once per process; any thread, any number of
 * times. */
void em_init(void);

typedef struct em_opts {
    int keep_content; /* 1: attachments carry content_base64 */
} em_opts;

/*
 * Parses one message of len bytes (need not be NUL-terminated). On success
 * returns 0 and *out holds a new email record (caller puts it). Input that is
 * not a message gives IK_E_PARSE and err says what was wrong and where (byte
 * offset); IK_E_NOMEM when out of memory. `name` (file name, may be "") is
 * used in err.
 */
int em_parse_mime(const char *name, const char *buf, size_t len, const em_opts *opts,
                  json_object **out, char *err, size_t errlen);

/*
 * Maps a payload onto the email record. A payload that already has
 * "schema": EM_SCHEMA is deep-copied; otherwise it is read as the seed's JSON
 * email (sender_email, sender_name, subject, body, attachments[{filename,
 * content_type, content_base64}], priority, id; unknown keys are kept under
 * "extra"). Returns 0 with *out new, IK_E_PARSE with err (which field, why)
 * when the input cannot be an email, IK_E_NOMEM.
 */
int em_from_seed(json_object *in, const em_opts *opts, json_object **out, char *err, size_t errlen);

/*
 * HTML (UTF-8, len bytes) to text: block elements become line breaks, list
 * items keep a bullet ("- " or "1. "), script/style/head are dropped,
 * entities decoded, links kept as "text <url>" when the url is not the text.
 * When libxml2 cannot read the document through (nesting past its limit of
 * 256 elements) or finds no text in it, a plain tag-stripping pass makes the
 * text instead and *fallback (when not NULL) is set to 1, else 0. Any depth
 * and size is read in linear time without recursion. Returns a new
 * NUL-terminated string or NULL when out of memory.
 */
char *em_html_to_text(const char *html, size_t len, int *fallback);

/*
 * RFC 2047 encoded words in an unfolded header value, decoded as Python's
 * email package does (see rfc2047.c): whitespace between adjacent words
 * dropped, text between them kept, the bytes of adjacent words in one
 * charset joined before conversion, every word decoded on its own (so a
 * padded base64 word does not end the next one). em_header_decode() gives
 * unstructured text (Subject) as UTF-8; em_header_merge_words() gives a
 * structured value (addresses, parameters) back with each run of adjacent
 * words decoded so and written again as one UTF-8 word (everything else, and
 * a word inside an address, as it was), for GMime's parsers to read. A NUL
 * a word decodes to becomes U+FFFD, counted in *nuls (added to, when not
 * NULL). Both return a new string, NULL on no memory.
 */
char *em_header_decode(const char *value, size_t *nuls);
char *em_header_merge_words(const char *value, size_t *nuls);

/*
 * Converts len bytes in `charset` (NULL or unknown: UTF-8, falling back to
 * windows-1252 when the bytes are not UTF-8) to UTF-8. Invalid sequences
 * become U+FFFD (one for each maximal subpart, as Unicode recommends) and so
 * do NUL characters, which are counted in *nuls (added to, when not NULL):
 * the result is always valid UTF-8 without NUL. Returns a new string (its
 * length in *outlen when not NULL), NULL on no memory.
 */
char *em_to_utf8(const char *buf, size_t len, const char *charset, size_t *outlen, size_t *nuls);

/* 1 when s[0..len) is valid UTF-8 without NUL bytes. */
int em_utf8_valid(const char *s, size_t len);
/* Number of code points of a valid UTF-8 string. */
size_t em_utf8_chars(const char *s);

/*
 * Parses an RFC 5322 date ("[Day,] D Mon Y H:M[:S] zone", obsolete forms
 * included: 2- and 3-digit years, named US zones, "GMT+1", no zone = UTC)
 * into ISO 8601 UTC "YYYY-MM-DDTHH:MM:SSZ" in out. Returns 0, or -1 when
 * the text is not such a date.
 */
int em_parse_date(const char *s, char out[32]);

/* Token diet. */
typedef struct em_diet_opts {
    int quotes;       /* drop quoted replies ("On ... wrote:", ">", Outlook blocks) */
    int disclaimers;  /* drop legal disclaimer paragraphs */
    size_t max_chars; /* cap in characters (0: no cap) */
} em_diet_opts;

typedef struct em_diet_stats {
    size_t chars_in, chars_out;
    size_t quote_chars, disclaimer_chars, whitespace_chars, cut_chars;
} em_diet_stats;

/*
 * Applies the diet to a UTF-8 body. Returns 0 with *out a new string and
 * *stats filled (chars_in - chars_out = the other fields' sum), or IK_E_NOMEM.
 */
int em_diet(const char *body, const em_diet_opts *opts, char **out, em_diet_stats *stats);

/*
 * em_from_seed() and then, when diet is not NULL, the token diet: "body"
 * stays untouched, "text" is the dieted body (the body itself without a
 * diet) and "diet" reports chars_before, chars_after, chars_removed and the
 * characters each step removed. Returns like em_from_seed().
 */
int em_normalize(json_object *in, const em_opts *opts, const em_diet_opts *diet, json_object **out,
                 char *err, size_t errlen);

/*
 * Sets the record's "source" object from the engine metadata of `rec`
 * (source, file, index, line, priority, and the queue's message_id,
 * delivery_count, enqueued_time when set). Declared with opaque types so the
 * library needs only <intake/plugin.h>.
 */
struct ik_host;
struct ik_record;
void em_set_source(json_object *email, const struct ik_host *host, const struct ik_record *rec);

#endif
