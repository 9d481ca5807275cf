/*
 * jsonc_loop.c: the baseline of the engine benchmark: the least a program can
 * do with a JSON-lines file using json-c: parse each line, print it back
 * compactly, free it. Usage: bench_jsonc_loop FILE > /dev/null
 */
#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bench_jsonc_loop FILE\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    static char outbuf[1 << 20];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long n = 0, bad = 0;
    json_tokener *tok = json_tokener_new();
    while ((len = getline(&line, &cap, f)) > 0) {
        json_tokener_reset(tok);
        json_object *o = json_tokener_parse_ex(tok, line, (int)len);
        if (!o) {
            bad++;
            continue;
        }
        fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                    JSON_C_TO_STRING_NOSLASHESCAPE),
              stdout);
        fputc('\n', stdout);
        json_object_put(o);
        n++;
    }
    json_tokener_free(tok);
    free(line);
    fclose(f);
    fprintf(stderr, "%ld records, %ld unparsable\n", n, bad);
    return 0;
}
