/*
 * tokcount.c: `ik-tokcount`, the C o200k_base tokenizer from the command line,
 * for the differential test and the tokenizer benchmark.
 *
 *   ik-tokcount RANKFILE < texts.jsonl     one JSON string per line in, one
 *                                           token count per line out
 *   ik-tokcount --encode RANKFILE < texts.jsonl   token ids as a JSON array per line
 *   ik-tokcount --bench N RANKFILE < texts.jsonl  counts every text N times and
 *                                           prints "tokens T bytes B seconds S"
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer/tokenizer.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int encode = 0;
    long bench = 0;
    int a = 1;
    if (a < argc && strcmp(argv[a], "--encode") == 0) {
        encode = 1;
        a++;
    } else if (a + 1 < argc && strcmp(argv[a], "--bench") == 0) {
        bench = atol(argv[a + 1]);
        a += 2;
    }
    if (a >= argc) {
        fprintf(stderr, "usage: ik-tokcount [--encode | --bench N] RANKFILE < texts.jsonl\n");
        return 2;
    }
    char err[512];
    ik_tok *tok = NULL;
    int rc = ik_tok_load_file(argv[a], IK_TOK_O200K_SHA256, &tok, err, sizeof err);
    if (rc) {
        fprintf(stderr, "ik-tokcount: %s\n", err);
        return 1;
    }
    size_t cap = 0, n = 0;
    char **texts = NULL;
    size_t *lens = NULL;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t ll;
    long lineno = 0;
    int status = 0;
    while ((ll = getline(&line, &lcap, stdin)) > 0) {
        lineno++;
        json_object *j = json_tokener_parse(line);
        if (!j || !json_object_is_type(j, json_type_string)) {
            fprintf(stderr, "ik-tokcount: stdin:%ld: not a JSON string\n", lineno);
            json_object_put(j);
            status = 1;
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            texts = realloc(texts, cap * sizeof *texts);
            lens = realloc(lens, cap * sizeof *lens);
            if (!texts || !lens)
                return 1;
        }
        lens[n] = (size_t)json_object_get_string_len(j);
        texts[n] = malloc(lens[n] + 1);
        memcpy(texts[n], json_object_get_string(j), lens[n] + 1);
        n++;
        json_object_put(j);
    }
    free(line);
    if (!status && bench > 0) {
        size_t tokens = 0, bytes = 0;
        double t0 = now_s();
        for (long r = 0; r < bench; r++)
            for (size_t i = 0; i < n; i++) {
                tokens += ik_tok_count(tok, texts[i], lens[i]);
                bytes += lens[i];
            }
        printf("tokens %zu bytes %zu seconds %.6f\n", tokens, bytes, now_s() - t0);
    } else if (!status) {
        for (size_t i = 0; i < n; i++) {
            if (encode) {
                uint32_t *ids;
                size_t k;
                if (ik_tok_encode(tok, texts[i], lens[i], 0, &ids, &k) != 0)
                    return 1;
                putchar('[');
                for (size_t x = 0; x < k; x++)
                    printf(x ? ", %u" : "%u", ids[x]);
                puts("]");
                free(ids);
            } else {
                printf("%zu\n", ik_tok_count(tok, texts[i], lens[i]));
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    free(lens);
    ik_tok_free(tok);
    return status;
}
