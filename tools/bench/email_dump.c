/*
 * email_dump.c: a small driver of the email library for the corpus tooling
 * (tools/bench/email). For each file named in LIST (one path a line) it
 * parses the message with em_parse_mime and applies the token diet.
 *   email_dump LIST          one JSON line per file: file, subject, from,
 *                            date, text (the body), error (when refused)
 *   email_dump --bench LIST  {messages, bytes, seconds, diet_seconds, parsed,
 *                            refused, chars_before, chars_after}: seconds
 *                            counts only MIME parsing of buffers already in
 *                            memory (what mailparser does), diet_seconds the
 *                            normalisation and token diet after it
 * Exit code 0, or 1 when the list or a file cannot be read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "email/email.h"

typedef struct item {
    char *path;
    char *buf;
    size_t len;
} item;

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 65536, n = 0, r;
    char *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *g = realloc(buf, cap * 2);
            if (!g) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = g;
            cap *= 2;
        }
    }
    fclose(f);
    *len = n;
    return buf;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *sget(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : NULL;
}

int main(int argc, char **argv)
{
    int bench = argc == 3 && strcmp(argv[1], "--bench") == 0;
    if (argc != 2 && !bench) {
        fprintf(stderr, "usage: email_dump [--bench] LIST\n");
        return 2;
    }
    size_t llen;
    char *list = slurp(argv[bench ? 2 : 1], &llen);
    if (!list) {
        fprintf(stderr, "email_dump: cannot read %s\n", argv[bench ? 2 : 1]);
        return 1;
    }
    list = realloc(list, llen + 1);
    list[llen] = '\0';
    item *items = NULL;
    size_t n = 0, cap = 0, bytes = 0;
    for (char *save = NULL, *line = strtok_r(list, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            items = realloc(items, cap * sizeof *items);
            if (!items)
                return 1;
        }
        items[n].path = line;
        items[n].buf = slurp(line, &items[n].len);
        if (!items[n].buf) {
            fprintf(stderr, "email_dump: cannot read %s\n", line);
            return 1;
        }
        bytes += items[n].len;
        n++;
    }
    em_init();
    em_diet_opts diet = {.quotes = 1, .disclaimers = 1, .max_chars = 6000};
    size_t parsed = 0, refused = 0, before = 0, after = 0;
    double t_parse = 0, t_diet = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *rec = NULL, *norm = NULL;
        char err[EM_ERROR_MAX];
        double t0 = now();
        int rc =
            em_parse_mime(items[i].path, items[i].buf, items[i].len, NULL, &rec, err, sizeof err);
        t_parse += now() - t0;
        if (rc != 0) {
            refused++;
            if (!bench) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "file", json_object_new_string(items[i].path));
                json_object_object_add(o, "error", json_object_new_string(err));
                puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
                json_object_put(o);
            }
            continue;
        }
        parsed++;
        t0 = now();
        rc = em_normalize(rec, NULL, &diet, &norm, err, sizeof err);
        t_diet += now() - t0;
        if (rc == 0) {
            json_object *d, *v;
            if (json_object_object_get_ex(norm, "diet", &d)) {
                if (json_object_object_get_ex(d, "chars_before", &v))
                    before += (size_t)json_object_get_int64(v);
                if (json_object_object_get_ex(d, "chars_after", &v))
                    after += (size_t)json_object_get_int64(v);
            }
        }
        if (!bench) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "file", json_object_new_string(items[i].path));
            const char *keys[][2] = {{"subject", "subject"},
                                     {"sender_email", "from"},
                                     {"date", "date"},
                                     {"body", "text"}};
            for (size_t k = 0; k < 4; k++) {
                const char *s = sget(rec, keys[k][0]);
                json_object_object_add(o, keys[k][1], s ? json_object_new_string(s) : NULL);
            }
            puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
            json_object_put(o);
        }
        json_object_put(norm);
        json_object_put(rec);
    }
    if (bench)
        printf("{\"messages\":%zu,\"bytes\":%zu,\"seconds\":%.6f,\"diet_seconds\":%.6f,"
               "\"parsed\":%zu,\"refused\":%zu,\"chars_before\":%zu,\"chars_after\":%zu}\n",
               n, bytes, t_parse, t_diet, parsed, refused, before, after);
    for (size_t i = 0; i < n; i++)
        free(items[i].buf);
    free(items);
    free(list);
    return 0;
}
