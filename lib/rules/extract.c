/*
 * extract.c: the rules extractor (see extract.h). The text it reads is the
 * email's dieted "text" (or its body), so quoted history and disclaimers do
 * not leak in. Rules, strongest first for each field:
 *
 *   labels     "Name:", "Title:", "Location:", "Current employer:", "Phone:",
 *              "Email:", "LinkedIn:", "Website:", "Industry:" at a line start;
 *   phrases    "<Title> at <Company>", "as a <title>", "years with <Company>",
 *              "in <City>, <ST>", "refer <Name>", "<Name> was referred by
 *              <Name>", "introducing <Name>", "my name is <Name>", "I'm
 *              <Name>,", "for the <Title> role/opening/position", "experience
 *              in <industry>";
 *   subject    "Referral: <Name>, <Title>", "New applicant: <Name> - <Title>";
 *   sender     a first-person email is about its sender (or, for a forward,
 *              the forwarded message's sender).
 *
 * Values are copied from the text as written. Confidence: about 0.95 for a
 * label, 0.85 for a phrase, 0.6-0.7 for subject and sender guesses.
 */
#include "extract.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const rx_fields[] = {"candidate_name", "job_title", "location", "company_name",
                                 "referrer_name",  "phone",     "email",    "website",
                                 "linkedin_url",   "industry",  NULL};

enum { F_NAME, F_TITLE, F_LOC, F_COMPANY, F_REFERRER, F_PHONE, F_EMAIL, F_WEB, F_LINKEDIN, F_IND };

typedef struct span {
    const char *p;
    size_t n;
} span;

typedef struct ctx {
    const char *text, *end; /* what the rules read */
    const char *subject;
    const char *sender_name, *sender_email;
    span fwd_name, fwd_email; /* sender of a forwarded message, if any */
    json_object *to_cc;       /* borrowed arrays of the record */
    json_object *cc;
    char *val[RX_NFIELDS];
    double conf[RX_NFIELDS];
    char *city, *state;
} ctx;

/* ---- character classes and spans ------------------------------------- */

static int is_up(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    return (p[0] >= 'A' && p[0] <= 'Z') || (p[0] == 0xc3 && p[1] >= 0x80 && p[1] <= 0x9e);
}

static int is_wordc(unsigned char c)
{
    return isalnum(c) || c >= 0x80 || c == '\'' || c == '-';
}

static int hspace(char c)
{
    return c == ' ' || c == '\t';
}

/* Case-insensitive search of needle in [p, end). */
static const char *ci_find(const char *p, const char *end, const char *needle)
{
    size_t n = strlen(needle);
    int c0 = tolower((unsigned char)needle[0]);
    for (; p + n <= end; p++)
        if (tolower((unsigned char)*p) == c0 && strncasecmp(p + 1, needle + 1, n - 1) == 0)
            return p;
    return NULL;
}

static const char *line_start(const char *base, const char *p)
{
    while (p > base && p[-1] != '\n')
        p--;
    return p;
}

static const char *line_end(const char *p, const char *end)
{
    while (p < end && *p != '\n')
        p++;
    return p;
}

static void set_field(ctx *c, int f, const char *p, size_t n, double conf)
{
    if (c->val[f] || n == 0)
        return;
    c->val[f] = strndup(p, n);
    c->conf[f] = conf;
}

static void set_str(ctx *c, int f, const char *s, double conf)
{
    if (s && s[0])
        set_field(c, f, s, strlen(s), conf);
}

/* ---- words ------------------------------------------------------------ */

static const char *const connectors[] = {"of",  "and", "&",  "de",  "da",
                                         "van", "der", "la", "von", NULL};
static const char *const not_names[] = {
    "I",     "He",    "She", "The",     "Hi",   "Hello",     "Dear",     "Thanks",   "Thank",
    "My",    "Our",   "We",  "Team",    "Best", "Regards",   "Please",   "This",     "Name",
    "Phone", "Email", "A",   "An",      "Mr",   "Ms",        "Mrs",      "Dr",       "Senior",
    "New",   "Re",    "Fwd", "FW",      "RE",   "Candidate", "Referral", "Hey",      "Good",
    "Sent",  "From",  "To",  "Subject", "Cell", "Mobile",    "Tel",      "LinkedIn", NULL};

static int in_list(const char *p, size_t n, const char *const *list)
{
    for (; *list; list++)
        if (strlen(*list) == n && strncmp(p, *list, n) == 0)
            return 1;
    return 0;
}

/* Length of the word at p (letters, digits, UTF-8, inner ' and -). */
static size_t word_len(const char *p, const char *end)
{
    size_t n = 0;
    while (p + n < end && is_wordc((unsigned char)p[n]))
        n++;
    while (n > 0 && (p[n - 1] == '\'' || p[n - 1] == '-'))
        n--;
    return n;
}

/*
 * Capitalised words from p rightwards on one line, single spaces between
 * them, at most max words; connectors ("of", "&") only between capitalised
 * words. Returns the span (n = 0 when none).
 */
static span cap_right(const char *p, const char *end, int max, int connect)
{
    span s = {p, 0};
    while (p < end && hspace(*p))
        p++;
    s.p = p;
    const char *last = p;
    int words = 0;
    while (p < end && words < max) {
        size_t w = word_len(p, end);
        if (*p == '&')
            w = 1;
        if (w == 0)
            break;
        int cap = is_up(p);
        int con = connect && in_list(p, w, connectors);
        if (!cap && !con)
            break;
        if (con) {
            /* a connector needs a capitalised word after it */
            const char *q = p + w;
            if (q >= end || *q != ' ' || !is_up(q + 1))
                break;
        } else {
            last = p + w;
            words++;
        }
        p += w;
        if (p < end && *p == ' ' && p + 1 < end && (is_up(p + 1) || (connect && p[1] != ' ')))
            p++;
        else
            break;
    }
    s.n = words ? (size_t)(last - s.p) : 0;
    return s;
}

/* Capitalised words leftwards ending just before `pos` (a space before pos
 * is skipped), on one line, commas allowed between words when `commas`. */
static span cap_left(const char *base, const char *pos, int max, int commas)
{
    const char *ls = line_start(base, pos);
    const char *p = pos;
    while (p > ls && hspace(p[-1]))
        p--;
    const char *right = p, *first = NULL;
    int words = 0;
    while (p > ls && words < max) {
        const char *we = p;
        if (commas && we > ls && we[-1] == ',' && first)
            we--;
        const char *ws = we;
        while (ws > ls && is_wordc((unsigned char)ws[-1]))
            ws--;
        if (ws == we && !(we > ls && we[-1] == '&'))
            break;
        if (ws == we)
            ws = we - 1;
        size_t w = (size_t)(we - ws);
        int cap = is_up(ws);
        int con = in_list(ws, w, connectors);
        if (!cap && !con)
            break;
        if (cap) {
            first = ws;
            words++;
        }
        p = ws;
        if (p > ls && p[-1] == ' ')
            p--;
        else
            break;
    }
    span s = {first ? first : right, first ? (size_t)(right - first) : 0};
    return s;
}

/* A person's name: 2 or 3 capitalised words, none a stop word. */
static span name_at(const char *p, const char *end)
{
    span s = cap_right(p, end, 3, 0);
    if (s.n == 0)
        return s;
    int words = 0;
    const char *q = s.p, *e = s.p + s.n;
    while (q < e) {
        size_t w = word_len(q, e);
        if (w == 0 || in_list(q, w, not_names)) {
            s.n = 0;
            return s;
        }
        words++;
        q += w;
        while (q < e && *q == ' ')
            q++;
    }
    if (words < 2)
        s.n = 0;
    return s;
}

/* ---- labels ----------------------------------------------------------- */

/* The value after "<label>:" at the start of a line (any of the labels),
 * trimmed; n = 0 when none. */
static span label_value(ctx *c, const char *const *labels)
{
    span none = {NULL, 0};
    for (const char *p = c->text; p < c->end;) {
        const char *le = line_end(p, c->end);
        const char *q = p;
        while (q < le && (hspace(*q) || *q == '-' || *q == '*'))
            q++;
        for (const char *const *l = labels; *l; l++) {
            size_t n = strlen(*l);
            if ((size_t)(le - q) > n && strncasecmp(q, *l, n) == 0 &&
                !isalpha((unsigned char)q[n])) {
                const char *v = q + n;
                /* up to two more words: "Phone number:", "Position applied for:" */
                for (int extra = 0; extra < 2 && v < le && hspace(*v); extra++) {
                    const char *w = v;
                    while (w < le && hspace(*w))
                        w++;
                    const char *we = w;
                    while (we < le && isalpha((unsigned char)*we))
                        we++;
                    const char *after = we;
                    while (after < le && hspace(*after))
                        after++;
                    if (we == w || (after < le && *after != ':' && extra == 1))
                        break;
                    v = we;
                    if (after < le && *after == ':')
                        break;
                }
                while (v < le && hspace(*v))
                    v++;
                if (v < le && *v == ':') {
                    v++;
                    while (v < le && hspace(*v))
                        v++;
                    const char *ve = le;
                    while (ve > v && (hspace(ve[-1]) || ve[-1] == '\r'))
                        ve--;
                    if (ve > v) {
                        span s = {v, (size_t)(ve - v)};
                        return s;
                    }
                }
            }
        }
        p = le < c->end ? le + 1 : le;
    }
    return none;
}

/* ---- phones, addresses, urls ------------------------------------------ */

/* A phone number starting at p: 10-15 digits with ( ) . - + and single
 * spaces. Returns its length or 0. */
static size_t phone_at(const char *base, const char *p, const char *end)
{
    if (p > base && (isalnum((unsigned char)p[-1]) || p[-1] == '-' || p[-1] == '.'))
        return 0;
    if (!(isdigit((unsigned char)*p) || *p == '+' || *p == '('))
        return 0;
    const char *q = p;
    int digits = 0, parens = 0;
    const char *last = p;
    while (q < end) {
        char ch = *q;
        if (isdigit((unsigned char)ch)) {
            digits++;
            last = q + 1;
        } else if (ch == '(') {
            parens++;
        } else if (ch == ')') {
            if (!parens)
                break;
            parens--;
            last = q + 1;
        } else if (ch == '-' || ch == '.') {
            if (q + 1 >= end || !(isdigit((unsigned char)q[1]) || q[1] == '('))
                break;
        } else if (ch == '+') {
            if (q != p)
                break;
        } else if (ch == ' ') {
            if (q + 1 >= end || !(isdigit((unsigned char)q[1]) || q[1] == '('))
                break;
        } else {
            break;
        }
        q++;
    }
    if (q < end && isalpha((unsigned char)*q))
        return 0;
    if (digits < 10 || digits > 15 || parens)
        return 0;
    return (size_t)(last - p);
}

static span find_phone(const char *p, const char *end)
{
    const char *base = p;
    for (; p < end; p++) {
        size_t n = phone_at(base, p, end);
        if (n) {
            span s = {p, n};
            return s;
        }
    }
    span none = {NULL, 0};
    return none;
}

static int email_c(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

/* Next e-mail address in [p, end): span, n = 0 when none. */
static span find_email(const char *p, const char *end)
{
    const char *base = p;
    span none = {NULL, 0};
    for (const char *at = memchr(p, '@', (size_t)(end - p)); at;
         at = at + 1 < end ? memchr(at + 1, '@', (size_t)(end - at - 1)) : NULL) {
        const char *s = at;
        while (s > base && email_c(s[-1]))
            s--;
        while (s < at && (*s == '.' || *s == '-'))
            s++;
        const char *e = at + 1;
        while (e < end && (isalnum((unsigned char)*e) || *e == '.' || *e == '-'))
            e++;
        while (e > at + 1 && (e[-1] == '.' || e[-1] == '-'))
            e--;
        const char *dot = memchr(at + 1, '.', (size_t)(e - at - 1));
        if (s < at && dot && dot + 2 <= e && isalpha((unsigned char)e[-1])) {
            span r = {s, (size_t)(e - s)};
            return r;
        }
    }
    return none;
}

static int url_c(char c)
{
    return c > ' ' && c != '<' && c != '>' && c != '"' && c != '|' && (unsigned char)c < 0x80;
}

/* The url that contains position `at` (its start found going left over
 * "https://", "www."), trimmed of trailing punctuation. */
static span url_around(const char *base, const char *at, const char *end)
{
    const char *s = at;
    while (s > base && url_c(s[-1]) && s[-1] != '(' && s[-1] != ':')
        s--;
    if (s - base >= 5 && strncasecmp(s - 5, "http:", 5) == 0)
        s -= 5;
    else if (s - base >= 6 && strncasecmp(s - 6, "https:", 6) == 0)
        s -= 6;
    const char *e = at;
    while (e < end && url_c(*e))
        e++;
    while (e > s && strchr(".,;:)!?'", e[-1]))
        e--;
    span r = {s, (size_t)(e - s)};
    return r;
}

static span find_url(const char *p, const char *end)
{
    span none = {NULL, 0};
    for (const char *q = p; q < end; q++) {
        if ((q == p || !url_c(q[-1]) || q[-1] == '(') &&
            (strncasecmp(q, "http://", 7) == 0 || strncasecmp(q, "https://", 8) == 0 ||
             strncasecmp(q, "www.", 4) == 0)) {
            span s = url_around(p, q, end);
            if (s.n > 8)
                return s;
        }
    }
    return none;
}

/* ---- the rules -------------------------------------------------------- */

static const char *const states[] = {"AL",
                                     "AK",
                                     "AZ",
                                     "AR",
                                     "CA",
                                     "CO",
                                     "CT",
                                     "DE",
                                     "FL",
                                     "GA",
                                     "HI",
                                     "ID",
                                     "IL",
                                     "IN",
                                     "IA",
                                     "KS",
                                     "KY",
                                     "LA",
                                     "ME",
                                     "MD",
                                     "MA",
                                     "MI",
                                     "MN",
                                     "MS",
                                     "MO",
                                     "MT",
                                     "NE",
                                     "NV",
                                     "NH",
                                     "NJ",
                                     "NM",
                                     "NY",
                                     "NC",
                                     "ND",
                                     "OH",
                                     "OK",
                                     "OR",
                                     "PA",
                                     "RI",
                                     "SC",
                                     "SD",
                                     "TN",
                                     "TX",
                                     "UT",
                                     "VT",
                                     "VA",
                                     "WA",
                                     "WV",
                                     "WI",
                                     "WY",
                                     "DC",
                                     "Alabama",
                                     "Alaska",
                                     "Arizona",
                                     "Arkansas",
                                     "California",
                                     "Colorado",
                                     "Connecticut",
                                     "Delaware",
                                     "Florida",
                                     "Georgia",
                                     "Hawaii",
                                     "Idaho",
                                     "Illinois",
                                     "Indiana",
                                     "Iowa",
                                     "Kansas",
                                     "Kentucky",
                                     "Louisiana",
                                     "Maine",
                                     "Maryland",
                                     "Massachusetts",
                                     "Michigan",
                                     "Minnesota",
                                     "Mississippi",
                                     "Missouri",
                                     "Montana",
                                     "Nebraska",
                                     "Nevada",
                                     "New Hampshire",
                                     "New Jersey",
                                     "New Mexico",
                                     "New York",
                                     "North Carolina",
                                     "North Dakota",
                                     "Ohio",
                                     "Oklahoma",
                                     "Oregon",
                                     "Pennsylvania",
                                     "Rhode Island",
                                     "South Carolina",
                                     "South Dakota",
                                     "Tennessee",
                                     "Texas",
                                     "Utah",
                                     "Vermont",
                                     "Virginia",
                                     "Washington",
                                     "West Virginia",
                                     "Wisconsin",
                                     "Wyoming",
                                     NULL};

/* Length of the state name or code at p, 0 when none. */
static size_t state_at(const char *p, const char *end)
{
    size_t best = 0;
    for (const char *const *s = states; *s; s++) {
        size_t n = strlen(*s);
        if ((size_t)(end - p) >= n && strncmp(p, *s, n) == 0 &&
            (p + n == end || !isalpha((unsigned char)p[n])) && n > best)
            best = n;
    }
    return best;
}

/* "City, ST" at a ", " found in [p, end): 1 with city/state set. `in_only`
 * wants "in ", "based in", "Location:" or "(" just before the city. */
static int location_in(ctx *c, const char *p, const char *end, int in_only, double conf)
{
    for (const char *q = p; q + 3 < end; q++) {
        if (q[0] != ',' || q[1] != ' ')
            continue;
        size_t sn = state_at(q + 2, end);
        if (!sn)
            continue;
        span city = cap_left(p, q, 3, 0);
        if (city.n == 0)
            continue;
        const char *before = city.p;
        int ok = !in_only;
        if (before - p >= 3 && strncmp(before - 3, "in ", 3) == 0)
            ok = 1;
        if (before - p >= 1 && before[-1] == '(')
            ok = 1;
        if (before - p >= 5 && strncmp(before - 5, "from ", 5) == 0)
            ok = 1;
        if (!ok)
            continue;
        if (in_list(city.p, city.n, not_names))
            continue;
        c->city = strndup(city.p, city.n);
        c->state = strndup(q + 2, sn);
        c->conf[F_LOC] = conf;
        return 1;
    }
    return 0;
}

static void rule_location(ctx *c)
{
    static const char *const labels[] = {"Location", "Based in", "City/State", "City", NULL};
    span v = label_value(c, labels);
    if (v.n && location_in(c, v.p, v.p + v.n, 0, 0.95))
        return;
    if (location_in(c, c->text, c->end, 1, 0.85))
        return;
    if (c->subject)
        location_in(c, c->subject, c->subject + strlen(c->subject), 1, 0.7);
}

static void rule_contacts(ctx *c)
{
    static const char *const phone_labels[] = {"Phone", "Tel",          "Telephone",    "Mobile",
                                               "Cell",  "Phone number", "Mobile phone", NULL};
    span v = label_value(c, phone_labels);
    span ph = v.n ? find_phone(v.p, v.p + v.n) : v;
    if (ph.n)
        set_field(c, F_PHONE, ph.p, ph.n, 0.95);
    ph = find_phone(c->text, c->end);
    if (ph.n)
        set_field(c, F_PHONE, ph.p, ph.n, 0.8);

    static const char *const li_labels[] = {"LinkedIn", NULL};
    const char *li = ci_find(c->text, c->end, "linkedin.com/in/");
    if (li) {
        span u = url_around(c->text, li, c->end);
        v = label_value(c, li_labels);
        set_field(c, F_LINKEDIN, u.p, u.n, v.n ? 0.95 : 0.9);
    }

    static const char *const web_labels[] = {"Website", "Web site", "Web",      "Portfolio",
                                             "Blog",    "Site",     "Homepage", NULL};
    v = label_value(c, web_labels);
    span u = v.n ? find_url(v.p, v.p + v.n) : v;
    if (u.n && !ci_find(u.p, u.p + u.n, "linkedin.com"))
        set_field(c, F_WEB, u.p, u.n, 0.9);

    /* an unlabelled web address in the signature (last 6 lines) */
    if (!c->val[F_WEB]) {
        const char *sig = c->end;
        for (int lines = 0; sig > c->text && lines < 6; lines++) {
            sig--;
            while (sig > c->text && sig[-1] != '\n')
                sig--;
        }
        for (const char *q = sig; q < c->end;) {
            span w = find_url(q, c->end);
            if (!w.n)
                break;
            if (!ci_find(w.p, w.p + w.n, "linkedin.com"))
                set_field(c, F_WEB, w.p, w.n, 0.6);
            q = w.p + w.n;
        }
    }

    static const char *const mail_labels[] = {"Email", "E-mail", "Mail", "Email address", NULL};
    v = label_value(c, mail_labels);
    span em = v.n ? find_email(v.p, v.p + v.n) : v;
    if (em.n)
        set_field(c, F_EMAIL, em.p, em.n, 0.95);
}

/* 1 when the address is the sender's or one of the recipients'. */
static int known_address(ctx *c, const char *p, size_t n)
{
    if (c->sender_email && strlen(c->sender_email) == n && strncasecmp(c->sender_email, p, n) == 0)
        return 1;
    json_object *lists[2] = {c->to_cc, c->cc};
    for (int l = 0; l < 2; l++) {
        if (!lists[l] || !json_object_is_type(lists[l], json_type_array))
            continue;
        for (size_t i = 0; i < json_object_array_length(lists[l]); i++) {
            json_object *a = json_object_array_get_idx(lists[l], i), *e;
            if (json_object_object_get_ex(a, "email", &e) &&
                json_object_is_type(e, json_type_string) &&
                (size_t)json_object_get_string_len(e) == n &&
                strncasecmp(json_object_get_string(e), p, n) == 0)
                return 1;
        }
    }
    return 0;
}

static void rule_other_email(ctx *c)
{
    for (const char *p = c->text; p < c->end;) {
        span e = find_email(p, c->end);
        if (!e.n)
            break;
        if (!known_address(c, e.p, e.n)) {
            set_field(c, F_EMAIL, e.p, e.n, 0.8);
            return;
        }
        p = e.p + e.n;
    }
}

static const char *const work_words[] = {"work", "works", "working", "worked", "employed", NULL};

/* "Title: …" and "Company: …" lines: the surest form, tried first. */
static void title_company_labels(ctx *c)
{
    static const char *const title_labels[] = {"Title", "Current title", "Job title", "Position",
                                               "Role",  "Current role",  NULL};
    static const char *const co_labels[] = {"Current employer", "Employer", "Company",
                                            "Current company", NULL};
    span v = label_value(c, title_labels);
    if (v.n)
        set_field(c, F_TITLE, v.p, v.n, 0.9);
    v = label_value(c, co_labels);
    if (v.n)
        set_field(c, F_COMPANY, v.p, v.n, 0.95);
}

/* "<Title> at <Company>", then "<Title> with <Company>"; without a title
 * before it, "I currently work at Northern Trust" still gives the company. */
static void title_at_company(ctx *c)
{
    static const char *const links[] = {" at ", " with ", NULL};
    for (const char *const *lk = links; *lk && !c->val[F_TITLE]; lk++) {
        size_t lkn = strlen(*lk);
        for (const char *p = c->text; p < c->end;) {
            const char *at = strstr(p, *lk);
            if (!at || at >= c->end)
                break;
            p = at + lkn;
            span co = cap_right(at + lkn, line_end(at + lkn, c->end), 5, 1);
            if (co.n == 0)
                continue;
            span title = cap_left(c->text, at, 6, 1);
            if (lkn == 6 && title.n == 0)
                continue;
            if (title.n > 0 && !in_list(title.p, title.n, not_names) &&
                !(c->val[F_NAME] && strncmp(title.p, c->val[F_NAME], title.n) == 0)) {
                set_field(c, F_TITLE, title.p, title.n, 0.85);
                set_field(c, F_COMPANY, co.p, co.n, 0.85);
                break;
            }
            /* "I currently work at Northern Trust" */
            const char *ws = at;
            while (ws > c->text && isalpha((unsigned char)ws[-1]))
                ws--;
            if (lkn == 4 && in_list(ws, (size_t)(at - ws), work_words))
                set_field(c, F_COMPANY, co.p, co.n, 0.8);
        }
    }
}

/* "as a client service associate" in a sentence about current work. */
static void title_as_a(ctx *c)
{
    for (const char *p = c->text; !c->val[F_TITLE] && p < c->end;) {
        const char *as = ci_find(p, c->end, " as a");
        if (!as)
            break;
        p = as + 5;
        const char *w = as + 5;
        if (w < c->end && *w == 'n')
            w++;
        if (w >= c->end || *w != ' ')
            continue;
        w++;
        const char *s = w, *e = w;
        int words = 0;
        while (e < c->end && words < 5) {
            size_t n = word_len(e, c->end);
            if (n == 0 ||
                (words > 0 &&
                 (in_list(e, n, connectors) || (n == 2 && strncmp(e, "at", 2) == 0) ||
                  (n == 3 && strncmp(e, "for", 3) == 0) || (n == 2 && strncmp(e, "in", 2) == 0) ||
                  (n == 4 && strncmp(e, "with", 4) == 0))))
                break;
            words++;
            const char *ne = e + n;
            if (ne < c->end && *ne == ' ') {
                e = ne + 1;
                continue;
            }
            e = ne;
            break;
        }
        while (e > s && e[-1] == ' ')
            e--;
        const char *sent = s;
        while (sent > c->text && sent[-1] != '.' && sent[-1] != '\n')
            sent--;
        if (words >= 1 && words <= 4 && (ci_find(sent, s, "currently") || ci_find(sent, s, "work")))
            set_field(c, F_TITLE, s, (size_t)(e - s), 0.75);
    }
}

/* "11 years with Edward Jones", "years at X", "employed by X". */
static void company_years_with(ctx *c)
{
    static const char *const with[] = {"years with ", "years at ", "employed by ", NULL};
    for (const char *const *t = with; *t && !c->val[F_COMPANY]; t++) {
        const char *w = ci_find(c->text, c->end, *t);
        if (w) {
            span co = cap_right(w + strlen(*t), line_end(w, c->end), 5, 1);
            if (co.n)
                set_field(c, F_COMPANY, co.p, co.n, 0.75);
        }
    }
}

/* "at a small RIA (Cascade Wealth Partners)". */
static void company_in_parens(ctx *c)
{
    if (c->val[F_COMPANY])
        return;
    const char *at = ci_find(c->text, c->end, " at a ");
    const char *le = at ? line_end(at, c->end) : NULL;
    const char *par = at ? memchr(at, '(', (size_t)(le - at)) : NULL;
    if (par && par - at < 60) {
        span co = cap_right(par + 1, le, 5, 1);
        if (co.n && co.p + co.n < le && co.p[co.n] == ')')
            set_field(c, F_COMPANY, co.p, co.n, 0.6);
    }
}

/* The candidate's title and employer, from the surest form to the loosest;
 * each step fills only what the ones before left empty. */
static void rule_title_company(ctx *c)
{
    title_company_labels(c);
    title_at_company(c);
    title_as_a(c);
    company_years_with(c);
    company_in_parens(c);
}

/* The role applied for: "for the X role", "the X position", "X opening". */
static void rule_role(ctx *c, const char *p, const char *end, double conf)
{
    static const char *const nouns[] = {" role", " opening", " position", " posting",
                                        " job",  " vacancy", NULL};
    for (const char *q = p; q < end && !c->val[F_TITLE]; q++) {
        for (const char *const *n = nouns; *n; n++) {
            size_t k = strlen(*n);
            if ((size_t)(end - q) >= k && strncmp(q, *n, k) == 0 &&
                (q + k == end || !isalpha((unsigned char)q[k]))) {
                span t = cap_left(p, q, 6, 0);
                if (t.n && !in_list(t.p, t.n, not_names)) {
                    set_field(c, F_TITLE, t.p, t.n, conf);
                    return;
                }
            }
        }
    }
}

static const char *const refer_words[] = {"refer ", "referring ", "recommend ", NULL};

/* Skips up to 4 lower-case words, spaces and commas ("a candidate, ",
 * "my brother-in-law, ") to where a name may start. */
static const char *skip_lower(const char *q, const char *end)
{
    for (int skip = 0; skip < 4 && q < end && !is_up(q); skip++) {
        size_t n = word_len(q, end);
        if (n == 0)
            break;
        q += n;
        while (q < end && (*q == ' ' || *q == ','))
            q++;
    }
    return q;
}

/* The first person's name (2-3 capitalised words) in [p, end). */
static span first_name_in(const char *p, const char *end)
{
    span none = {NULL, 0};
    for (const char *q = p; q < end; q++) {
        if ((q == p || !is_wordc((unsigned char)q[-1])) && is_up(q)) {
            span nm = name_at(q, end);
            if (nm.n)
                return nm;
        }
    }
    return none;
}

static void rule_people(ctx *c)
{
    static const char *const name_labels[] = {"Name",      "Candidate", "Candidate name",
                                              "Full name", "Applicant", NULL};
    span v = label_value(c, name_labels);
    if (v.n) {
        span nm = name_at(v.p, v.p + v.n);
        if (nm.n)
            set_field(c, F_NAME, nm.p, nm.n, 0.95);
    }
    /* "<Name> was referred by <Name>" */
    const char *r = ci_find(c->text, c->end, " was referred by ");
    if (r) {
        span cand = cap_left(c->text, r, 3, 0);
        span ref = name_at(r + 17, c->end);
        if (cand.n >= 3 && !in_list(cand.p, cand.n, not_names))
            set_field(c, F_NAME, cand.p, cand.n, 0.85);
        if (ref.n)
            set_field(c, F_REFERRER, ref.p, ref.n, 0.9);
    }
    r = ci_find(c->text, c->end, "referred by ");
    if (r) {
        span ref = name_at(r + 12, c->end);
        if (ref.n)
            set_field(c, F_REFERRER, ref.p, ref.n, 0.9);
    }
    /* "<Name> [in our office] [has] referred [a candidate,] <Name>" */
    r = strstr(c->text, " referred ");
    if (r && r < c->end && strncmp(r + 10, "by ", 3) != 0) {
        const char *sent = r;
        while (sent > c->text && sent[-1] != '.' && sent[-1] != '\n')
            sent--;
        span ref = first_name_in(sent, r);
        span cand = name_at(skip_lower(r + 10, c->end), line_end(r + 10, c->end));
        if (cand.n)
            set_field(c, F_NAME, cand.p, cand.n, 0.85);
        if (ref.n)
            set_field(c, F_REFERRER, ref.p, ref.n, 0.9);
    }
    /* "I'd like to refer [my former colleague] <Name>": the sender refers */
    for (const char *const *w = refer_words; *w; w++) {
        const char *q = ci_find(c->text, c->end, *w);
        if (!q)
            continue;
        q = skip_lower(q + strlen(*w), c->end);
        span nm = name_at(q, line_end(q, c->end));
        if (nm.n) {
            set_field(c, F_NAME, nm.p, nm.n, 0.85);
            if (c->sender_name && c->sender_name[0])
                set_str(c, F_REFERRER, c->sender_name, 0.8);
        }
        break;
    }
    static const char *const intro[] = {"introducing ", "introduce ", "my name is ", "I'm ",
                                        "I am ",        "intro: ",    "applicant: ", NULL};
    for (const char *const *w = intro; *w && !c->val[F_NAME]; w++) {
        for (const char *q = c->text; q < c->end;) {
            const char *hit = (*w)[0] == 'I' ? strstr(q, *w) : ci_find(q, c->end, *w);
            if (!hit || hit >= c->end)
                break;
            q = hit + strlen(*w);
            span nm = name_at(q, line_end(q, c->end));
            if (!nm.n)
                continue;
            const char *after = nm.p + nm.n;
            /* "I'm <Name>" needs the name to end the clause */
            if ((*w)[0] == 'I' && after < c->end && *after != ',' && *after != '.' &&
                *after != '\n')
                continue;
            set_field(c, F_NAME, nm.p, nm.n, 0.85);
            break;
        }
    }
}

/* Subject: "Referral: Daniel Kim, Senior Financial Advisor (Austin, TX)",
 * "New applicant: Sam Rivera - Client Service Associate". */
static void rule_subject(ctx *c)
{
    if (!c->subject)
        return;
    const char *s = c->subject, *end = s + strlen(s);
    const char *colon = strrchr(s, ':');
    const char *p = colon ? colon + 1 : s;
    while (p < end && *p == ' ')
        p++;
    span nm = name_at(p, end);
    int named = ci_find(s, end, "referral") || ci_find(s, end, "intro") ||
                ci_find(s, end, "applicant") || ci_find(s, end, "candidate");
    if (colon && named && nm.n) {
        set_field(c, F_NAME, nm.p, nm.n, 0.7);
        const char *q = nm.p + nm.n;
        if (q + 2 < end && (strncmp(q, ", ", 2) == 0 || strncmp(q, " - ", 3) == 0)) {
            q += q[0] == ',' ? 2 : 3;
            span t = cap_right(q, end, 6, 1);
            if (t.n)
                set_field(c, F_TITLE, t.p, t.n, 0.65);
        }
    }
    rule_role(c, s, end, 0.6);
    /* "Resume - Operations Manager", "Application: Client Relationship Manager" */
    static const char *const pre[] = {"Application: ", "Application - ", "Resume - ",
                                      "Application for ", NULL};
    for (const char *const *w = pre; *w; w++) {
        const char *q = ci_find(s, end, *w);
        if (q) {
            span t = cap_right(q + strlen(*w), end, 6, 1);
            if (t.n)
                set_field(c, F_TITLE, t.p, t.n, 0.65);
        }
    }
    /* "Senior Wealth Advisor - Mark Ellis": a title then the sender's name */
    const char *dash = strstr(s, " - ");
    if (dash && !colon) {
        span t = cap_left(s, dash, 6, 0);
        if (t.n == (size_t)(dash - s) && c->sender_name &&
            strncmp(dash + 3, c->sender_name, strlen(c->sender_name)) == 0)
            set_field(c, F_TITLE, t.p, t.n, 0.6);
    }
}

static const char *const first_person[] = {"i've been",
                                           "i have been",
                                           "my application",
                                           "i’ve been",
                                           "i am applying",
                                           "i'm applying",
                                           "apply for",
                                           "applying for",
                                           "my resume",
                                           "i am a",
                                           "i'm a",
                                           "i am currently",
                                           "i'm currently",
                                           "i currently",
                                           "i am interested",
                                           "i'm interested",
                                           "i'm reaching out",
                                           "i am reaching out",
                                           "my linkedin",
                                           "reach me",
                                           "my cell",
                                           "my number",
                                           "i saw the",
                                           "i am still interested",
                                           "i'm based",
                                           "i am based",
                                           "i have worked",
                                           "my name is",
                                           "i'd like to apply",
                                           "i would like to apply",
                                           "i’d like to apply",
                                           "i’m a",
                                           NULL};

static const char *const org_words[] = {"recruit", "talent",   "team", "job",    "board", "career",
                                        "noreply", "no-reply", "hr",   "hiring", "jobs",  NULL};

static int looks_like_org(const char *name, const char *mail)
{
    for (const char *const *w = org_words; *w; w++) {
        if (name && ci_find(name, name + strlen(name), *w) && strlen(*w) > 2)
            return 1;
        if (mail) {
            const char *at = strchr(mail, '@');
            if (at && ci_find(mail, at, *w))
                return 1;
        }
    }
    return 0;
}

/* A first-person email is about its (effective) sender. */
static void rule_sender(ctx *c)
{
    if (c->val[F_NAME] && c->val[F_EMAIL])
        return;
    int fp = 0;
    for (const char *const *w = first_person; *w && !fp; w++)
        fp = ci_find(c->text, c->end, *w) != NULL;
    if (!fp || ci_find(c->text, c->end, "refer"))
        return;
    char *name = c->fwd_name.n ? strndup(c->fwd_name.p, c->fwd_name.n)
                               : (c->sender_name ? strdup(c->sender_name) : NULL);
    char *mail = c->fwd_email.n ? strndup(c->fwd_email.p, c->fwd_email.n)
                                : (c->sender_email ? strdup(c->sender_email) : NULL);
    if (!looks_like_org(name, mail)) {
        if (name && name[0] && !c->val[F_NAME]) {
            /* "Chen, Wei" signs "Wei Chen" */
            char *comma = strchr(name, ',');
            if (comma) {
                char *flip = NULL;
                const char *first = comma + 1;
                while (*first == ' ')
                    first++;
                if (asprintf(&flip, "%s %.*s", first, (int)(comma - name), name) > 0 &&
                    strstr(c->text, flip))
                    set_str(c, F_NAME, flip, 0.75);
                free(flip);
            }
            set_str(c, F_NAME, name, strstr(c->text, name) ? 0.8 : 0.65);
        }
        if (mail && mail[0] && (!c->val[F_EMAIL]))
            set_str(c, F_EMAIL, mail, 0.7);
    }
    free(name);
    free(mail);
}

static const char *const industries[] = {"financial services",
                                         "wealth management",
                                         "asset management",
                                         "investment management",
                                         "investment banking",
                                         "retail banking",
                                         "private banking",
                                         "commercial banking",
                                         "banking",
                                         "insurance",
                                         "accounting",
                                         "healthcare",
                                         "health care",
                                         "real estate",
                                         "fintech",
                                         "software",
                                         "technology",
                                         "consulting",
                                         "mortgage lending",
                                         "mortgage",
                                         "tax",
                                         "education",
                                         "manufacturing",
                                         "retail",
                                         NULL};

static void rule_industry(ctx *c)
{
    static const char *const labels[] = {"Industry", "Sector", NULL};
    span v = label_value(c, labels);
    if (v.n)
        set_field(c, F_IND, v.p, v.n, 0.95);
    static const char *const trig[] = {"experience in ", "years in ", "worked in ",
                                       "working in ",    "works in ", "career in ",
                                       "background in ", "work in ",  NULL};
    for (const char *const *t = trig; *t && !c->val[F_IND]; t++) {
        for (const char *q = c->text; q < c->end;) {
            const char *hit = ci_find(q, c->end, *t);
            if (!hit)
                break;
            q = hit + strlen(*t);
            const char *w = q;
            if ((size_t)(c->end - w) > 4 && strncasecmp(w, "the ", 4) == 0)
                w += 4;
            /* "<industry>", or "<adjective> <industry>" ("commercial insurance") */
            const char *adj_end = w;
            while (adj_end < c->end && *adj_end >= 'a' && *adj_end <= 'z')
                adj_end++;
            const char *starts[2] = {w, adj_end < c->end && *adj_end == ' ' ? adj_end + 1 : NULL};
            for (int k = 0; k < 2 && !c->val[F_IND]; k++) {
                if (!starts[k])
                    continue;
                for (const char *const *ind = industries; *ind; ind++) {
                    size_t n = strlen(*ind);
                    const char *x = starts[k];
                    if ((size_t)(c->end - x) >= n && strncasecmp(x, *ind, n) == 0 &&
                        (x + n == c->end || !isalpha((unsigned char)x[n]))) {
                        set_field(c, F_IND, w, (size_t)(x + n - w), k ? 0.7 : 0.75);
                        break;
                    }
                }
            }
            if (c->val[F_IND])
                break;
        }
    }
}

/* For a forward: the forwarded message's "From: Name <addr>" line. */
static void find_forwarded_sender(ctx *c, const char *body)
{
    if (!body)
        return;
    const char *end = body + strlen(body);
    const char *m = ci_find(body, end, "Forwarded message");
    if (!m && c->subject &&
        (strncasecmp(c->subject, "Fwd:", 4) == 0 || strncasecmp(c->subject, "Fw:", 3) == 0))
        m = ci_find(body, end, "Original Message");
    if (!m)
        return; /* a reply's quoted "From:" is not the sender of this email */
    const char *f = ci_find(m, end, "\nFrom: ");
    if (!f || f - m > 200)
        return;
    f += 7;
    const char *le = line_end(f, end);
    const char *lt = memchr(f, '<', (size_t)(le - f));
    span nm = name_at(f, lt ? lt : le);
    span em = find_email(f, le);
    c->fwd_name = nm;
    c->fwd_email = em;
}

static const char *jget(json_object *o, const char *key)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

int rx_grounded(const char *hay, const char *value)
{
    if (!hay || !value || !value[0])
        return 0;
    for (const char *h = hay; *h; h++) {
        const char *a = h, *b = value;
        while (*a && *b) {
            if (isspace((unsigned char)*a) && isspace((unsigned char)*b)) {
                while (isspace((unsigned char)*a))
                    a++;
                while (isspace((unsigned char)*b))
                    b++;
                continue;
            }
            if (*a != *b)
                break;
            a++;
            b++;
        }
        if (!*b)
            return 1;
    }
    return 0;
}

json_object *rx_extract(json_object *email)
{
    ctx c;
    memset(&c, 0, sizeof c);
    const char *text = jget(email, "text");
    const char *body = jget(email, "body");
    if (!text)
        text = body ? body : "";
    c.text = text;
    c.end = text + strlen(text);
    c.subject = jget(email, "subject");
    c.sender_name = jget(email, "sender_name");
    c.sender_email = jget(email, "sender_email");
    json_object_object_get_ex(email, "to", &c.to_cc);
    json_object_object_get_ex(email, "cc", &c.cc);
    find_forwarded_sender(&c, body);

    rule_people(&c);
    rule_contacts(&c);
    rule_title_company(&c);
    rule_role(&c, c.text, c.end, 0.7);
    rule_subject(&c);
    rule_sender(&c);
    rule_other_email(&c);
    rule_location(&c);
    rule_industry(&c);
    /* No candidate and no role: the email is not about a candidate, and a
     * phone or a place in it belongs to someone else. */
    if (!c.val[F_NAME] && !c.val[F_TITLE]) {
        for (int f = 0; f < RX_NFIELDS; f++) {
            free(c.val[f]);
            c.val[f] = NULL;
        }
        free(c.city);
        free(c.state);
        c.city = c.state = NULL;
    }
    if (c.val[F_NAME] && c.val[F_REFERRER] && strcmp(c.val[F_NAME], c.val[F_REFERRER]) == 0) {
        free(c.val[F_REFERRER]);
        c.val[F_REFERRER] = NULL;
    }

    /* What grounding checks against: the whole email as text. */
    char *hay = NULL;
    if (asprintf(&hay, "%s\n%s <%s>\n%s\n%s", c.subject ? c.subject : "",
                 c.sender_name ? c.sender_name : "", c.sender_email ? c.sender_email : "",
                 body ? body : "", text) < 0)
        hay = NULL;
    json_object *out = json_object_new_object();
    json_object *conf = json_object_new_object();
    if (!out || !conf || !hay) {
        json_object_put(out);
        json_object_put(conf);
        out = NULL;
        goto done;
    }
    for (int f = 0; f < RX_NFIELDS; f++) {
        if (f == F_LOC) {
            int okc = c.city && rx_grounded(hay, c.city);
            int oks = c.state && rx_grounded(hay, c.state);
            if (okc || oks) {
                json_object *loc = json_object_new_object();
                json_object_object_add(
                    loc, "city", okc ? json_object_new_string(c.city) : json_object_new_null());
                json_object_object_add(
                    loc, "state", oks ? json_object_new_string(c.state) : json_object_new_null());
                json_object_object_add(out, rx_fields[f], loc);
                json_object_object_add(conf, rx_fields[f], json_object_new_double(c.conf[f]));
            } else {
                json_object_object_add(out, rx_fields[f], NULL);
                json_object_object_add(conf, rx_fields[f], json_object_new_double(0));
            }
            continue;
        }
        int ok = c.val[f] && rx_grounded(hay, c.val[f]);
        json_object_object_add(out, rx_fields[f], ok ? json_object_new_string(c.val[f]) : NULL);
        json_object_object_add(conf, rx_fields[f], json_object_new_double(ok ? c.conf[f] : 0));
    }
    json_object_object_add(out, "confidence", conf);
done:
    free(hay);
    for (int f = 0; f < RX_NFIELDS; f++)
        free(c.val[f]);
    free(c.city);
    free(c.state);
    return out;
}

int rx_extract_record(const ik_host *host, ik_record *rec, const em_diet_opts *dopts,
                      const char *field, ik_result *res, int *found)
{
    json_object *payload = host->record_payload(rec), *v;
    int normalised = json_object_object_get_ex(payload, "schema", &v) &&
                     json_object_is_type(v, json_type_string) &&
                     strcmp(json_object_get_string(v), EM_SCHEMA) == 0 &&
                     json_object_object_get_ex(payload, "text", &v);
    if (!normalised) {
        char err[EM_ERROR_MAX] = "";
        json_object *out = NULL;
        int rc = em_normalize(payload, &(em_opts){0}, dopts, &out, err, sizeof err);
        if (rc == IK_E_NOMEM)
            return IK_E_NOMEM;
        if (rc != 0) {
            res->status = IK_FAIL;
            snprintf(res->reason, sizeof res->reason, "not an email: %s", err);
            return IK_E_PARSE;
        }
        em_set_source(out, host, rec);
        host->record_set_payload(rec, out);
        payload = out;
    }
    json_object *ex = rx_extract(payload);
    if (!ex)
        return IK_E_NOMEM;
    *found = 0;
    for (int f = 0; f < RX_NFIELDS; f++)
        *found += json_object_object_get_ex(ex, rx_fields[f], &v) && v != NULL;
    json_object_object_add(payload, field, ex);
    return host->record_set_meta(rec, "extracted_by", "rules") == 0 ? 0 : IK_E_NOMEM;
}
