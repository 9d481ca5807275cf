/*
 * date.c: RFC 5322 dates (obsolete forms included) to ISO 8601 UTC
 * (em_parse_date, see email.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "email.h"

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

/* "[Day,] D Mon Y": the date part, 2- and 3-digit years made 4-digit.
 * Advances *pp; -1 when it is not one. */
static int read_date(const char **pp, int *day, int *mon, int *year)
{
    static const char *const months[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                         "jul", "aug", "sep", "oct", "nov", "dec"};
    const char *p = *pp;
    skip_cfws(&p);
    if (isalpha((unsigned char)p[0])) { /* day of week */
        while (isalpha((unsigned char)*p))
            p++;
        if (*p == ',')
            p++;
        skip_cfws(&p);
    }
    if (!read_num(&p, 2, day) || *day < 1 || *day > 31)
        return -1;
    skip_cfws(&p);
    *mon = -1;
    for (int i = 0; i < 12; i++)
        if (g_ascii_strncasecmp(p, months[i], 3) == 0)
            *mon = i + 1;
    if (*mon < 0)
        return -1;
    p += 3;
    skip_cfws(&p);
    int ydigits = read_num(&p, 4, year);
    if (ydigits < 2)
        return -1;
    if (ydigits == 2)
        *year += *year < 50 ? 2000 : 1900;
    else if (ydigits == 3)
        *year += 1900;
    *pp = p;
    return 0;
}

/* "H:M[:S]", with an "AM"/"PM" after it (not RFC 5322, but common).
 * Advances *pp; -1 when it is not a time of day. */
static int read_time(const char **pp, int *hour, int *min, int *sec)
{
    const char *p = *pp;
    *sec = 0;
    skip_cfws(&p);
    if (!read_num(&p, 2, hour) || *p != ':')
        return -1;
    p++;
    if (read_num(&p, 2, min) != 2)
        return -1;
    if (*p == ':') {
        p++;
        if (read_num(&p, 2, sec) != 2)
            return -1;
    }
    skip_cfws(&p);
    /* "10:05:15 PM" */
    if ((p[0] == 'A' || p[0] == 'P' || p[0] == 'a' || p[0] == 'p') &&
        (p[1] == 'M' || p[1] == 'm') && !isalpha((unsigned char)p[2])) {
        if (*hour < 1 || *hour > 12)
            return -1;
        *hour = *hour % 12 + (p[0] == 'P' || p[0] == 'p' ? 12 : 0);
        p += 2;
        skip_cfws(&p);
    }
    if (*hour > 23 || *min > 59 || *sec > 60)
        return -1;
    *pp = p;
    return 0;
}

/* The zone: "+hhmm"/"-hhmm", a named zone (UT, GMT, Z, the US zones), "GMT+1",
 * or none (UTC); then nothing but a comment such as "(EDT)". *offset is in
 * minutes east of UTC. -1 when it is none of these. */
static int read_zone(const char *p, int *offset)
{
    static const struct {
        const char *name;
        int minutes;
    } zones[] = {{"UTC", 0},       {"UT", 0},        {"GMT", 0},       {"Z", 0},
                 {"EDT", -4 * 60}, {"EST", -5 * 60}, {"CDT", -5 * 60}, {"CST", -6 * 60},
                 {"MDT", -6 * 60}, {"MST", -7 * 60}, {"PDT", -7 * 60}, {"PST", -8 * 60}};
    *offset = 0;
    if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, hhmm;
        p++;
        if (read_num(&p, 4, &hhmm) != 4 || hhmm % 100 > 59)
            return -1;
        *offset = sign * (hhmm / 100 * 60 + hhmm % 100);
    } else if (isalpha((unsigned char)*p)) {
        size_t n = 0;
        while (isalpha((unsigned char)p[n]))
            n++;
        int found = 0;
        for (size_t i = 0; i < sizeof zones / sizeof *zones && !found; i++)
            if (strlen(zones[i].name) == n && g_ascii_strncasecmp(p, zones[i].name, n) == 0) {
                *offset = zones[i].minutes;
                found = 1;
            }
        if (!found)
            return -1;
        p += n;
        if (*offset == 0 && (*p == '+' || *p == '-') && isdigit((unsigned char)p[1])) {
            /* "GMT+1", "GMT-05" */
            int sign = *p == '-' ? -1 : 1, h;
            p++;
            if (read_num(&p, 2, &h) == 0 || h > 14)
                return -1;
            *offset = sign * h * 60;
        }
    }
    /* anything left must be a comment such as "(EDT)" */
    skip_cfws(&p);
    return *p && *p != '(' ? -1 : 0;
}

int em_parse_date(const char *s, char out[32])
{
    const char *p = s;
    int day, mon, year, hour, min, sec, offset;
    if (read_date(&p, &day, &mon, &year) != 0 || read_time(&p, &hour, &min, &sec) != 0 ||
        read_zone(p, &offset) != 0)
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
