/*
 * tokenizer.c: the o200k_base tokenizer (see tokenizer.h): rank-file parser
 * with SHA-256 check, pre-tokenizer (a hand-written matcher for ASCII text
 * that gives PCRE2's splits, PCRE2 for the rest), BPE merge loop, special
 * tokens.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "tokenizer.h"

#include <errno.h>
#include <limits.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <intake/plugin.h>

#include "common/file.h"
#include "common/sha256.h"
#include "common/buf.h"

/* The o200k_base pre-tokenizer pattern (tiktoken_ext/openai_public.py). */
static const char O200K_PATTERN[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*"
    "|\\s*[\\r\\n]+"
    "|\\s+(?!\\S)"
    "|\\s+";

static const struct {
    const char *text;
    uint32_t id;
} SPECIALS[] = {{"<|endoftext|>", IK_TOK_ENDOFTEXT}, {"<|endofprompt|>", IK_TOK_ENDOFPROMPT}};

#define TOK_MAX_LEN 1024 /* longest token accepted from a rank file, in bytes */

/* One slot of the rank table. Tokens of up to 8 bytes (nearly every piece of
 * ordinary text) keep their bytes in the slot, so a lookup touches one cache
 * line; longer ones point into ik_tok.bytes. */
typedef struct tok_slot {
    uint64_t key; /* len <= 8: short_key() of the bytes; else offset into bytes */
    uint32_t rank;
    uint16_t len; /* 0: empty slot */
    uint16_t tag; /* len > 8: 16 more bits of the hash, most mismatches end here */
} tok_slot;

struct ik_tok {
    unsigned char *bytes; /* every token's bytes, back to back */
    size_t nbytes;
    tok_slot *slots; /* open addressing, power of two */
    size_t mask;
    unsigned shift; /* 64 - log2(table size): slot index = top bits of the hash */
    size_t count;
    pcre2_code *re;
    int jit; /* the pattern is JIT-compiled: pcre2_jit_match's fast path */
};

/* ---- rank table ---- */

/* Little-endian word reads: the values (and so the keys and the table
 * layout) do not depend on the host's byte order. */
static inline uint64_t rd64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint32_t rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

/* KEY_MASK[n]: the low n bytes of a word. */
static const uint64_t KEY_MASK[9] = {0,
                                     0xffull,
                                     0xffffull,
                                     0xffffffull,
                                     0xffffffffull,
                                     0xffffffffffull,
                                     0xffffffffffffull,
                                     0xffffffffffffffull,
                                     0xffffffffffffffffull};

/* The bytes p[0..n), 1 <= n <= 8, as the zero-padded little-endian word,
 * without reading outside them (pieces may end at the end of the caller's
 * buffer): for n >= 4 two overlapping 4-byte reads (the overlap holds the
 * same bytes in both), else first, middle and last byte. The word and n
 * together determine the bytes; lookups compare both. When 8 bytes from p
 * are readable, rd64(p) & KEY_MASK[n] is the same word. */
static inline uint64_t short_key(const unsigned char *p, size_t n)
{
    if (n >= 4)
        return (uint64_t)rd32(p) | (uint64_t)rd32(p + n - 4) << (8 * (n - 4));
    return ((uint64_t)p[0] | (uint64_t)p[n >> 1] << 8 | (uint64_t)p[n - 1] << 16) & KEY_MASK[n];
}

/* Avalanche (the finalizer of MurmurHash3): every input bit reaches the high
 * bits (slot index) and the low bits (tag). */
static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* Hash of a short key (n <= 8): one multiply (Fibonacci hashing). Only its
 * top bits are used, and those depend on every bit of the key; a lookup is
 * one multiply away from its slot, which is most of what counting costs. */
static inline uint64_t hash_short(uint64_t key, size_t n)
{
    return (key ^ (uint64_t)n << 59) * 0x9e3779b97f4a7c15ull;
}

/* Hash of p[0..n). Pieces are short, so rather than a loop per byte: the
 * short key for up to 8 bytes; else the first and last 8 bytes (overlapping
 * unless n is a multiple of 8) with the middle words folded in. */
static uint64_t hash_bytes(const unsigned char *p, size_t n)
{
    if (n <= 8)
        return hash_short(n ? short_key(p, n) : 0, n);
    uint64_t a = rd64(p), b = rd64(p + n - 8);
    for (size_t i = 8; i + 8 < n; i += 8) {
        a = (a ^ rd64(p + i)) * 0x9e3779b97f4a7c15ull;
        a ^= a >> 31;
    }
    return mix64(a * 0xbf58476d1ce4e5b9ull ^ (b + (uint64_t)n) * 0x94d049bb133111ebull);
}

/* The slot index is the top bits of the hash, the tag 16 of the low ones. */
static uint16_t tag_of(uint64_t h)
{
    return (uint16_t)h;
}

/* Rank of the short token whose short_key is key and length n (1..8), or
 * UINT32_MAX: one compare per slot, no second memory access. */
static inline uint32_t rank_short(const ik_tok *t, uint64_t key, size_t n)
{
    size_t i = (size_t)(hash_short(key, n) >> t->shift);
    for (;;) {
        const tok_slot *s = &t->slots[i];
        if (s->len == n && s->key == key)
            return s->rank;
        if (s->len == 0)
            return UINT32_MAX;
        i = (i + 1) & t->mask;
    }
}

/* Rank of the byte string p[0..n), or UINT32_MAX when it is not a token. */
static uint32_t rank_of(const ik_tok *t, const unsigned char *p, size_t n)
{
    if (n - 1 < 8)
        return rank_short(t, short_key(p, n), n);
    if (n - 1 >= TOK_MAX_LEN) /* n == 0 or n > TOK_MAX_LEN: no such token */
        return UINT32_MAX;
    uint64_t h = hash_bytes(p, n);
    uint16_t tag = tag_of(h);
    size_t i = (size_t)(h >> t->shift);
    for (;;) {
        const tok_slot *s = &t->slots[i];
        if (s->len == 0)
            return UINT32_MAX;
        if (s->tag == tag && s->len == n && memcmp(t->bytes + s->key, p, n) == 0)
            return s->rank;
        i = (i + 1) & t->mask;
    }
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes standard padded base64 p[0..n) into out (room for 3n/4 bytes).
 * Returns the decoded length, or -1 when the text is not valid base64. */
static long b64decode(const unsigned char *p, size_t n, unsigned char *out)
{
    if (n == 0 || n % 4 != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++) {
            if (p[i + k] == '=' && i + 4 == n && k >= 2) {
                v[k] = -2;
                continue;
            }
            v[k] = b64val(p[i + k]);
            if (v[k] < 0)
                return -1;
        }
        if (v[2] == -2 && v[3] != -2)
            return -1;
        out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
        if (v[2] >= 0)
            out[o++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
        if (v[3] >= 0)
            out[o++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
    }
    return (long)o;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void ik_tok_free(ik_tok *tok)
{
    if (!tok)
        return;
    free(tok->bytes);
    free(tok->slots);
    if (tok->re)
        pcre2_code_free(tok->re);
    free(tok);
}

size_t ik_tok_vocab(const ik_tok *tok)
{
    return tok ? tok->count : 0;
}

static int compile_pattern(ik_tok *t, char *err, size_t errlen)
{
    int ec;
    PCRE2_SIZE eo;
    t->re = pcre2_compile((PCRE2_SPTR)O200K_PATTERN, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        seterr(err, errlen, "tokenizer: pre-tokenizer pattern does not compile at offset %zu: %s",
               (size_t)eo, (const char *)msg);
        return IK_E_INVAL;
    }
    /* optional: the interpreter also works */
    t->jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;
    return 0;
}

/* An empty table sized for a rank file of len bytes (two slots per line,
 * so probe runs stay short) with room for every decoded token. */
static ik_tok *tok_table_new(const unsigned char *data, size_t len)
{
    ik_tok *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += data[i] == '\n';
    lines++;
    size_t cap = 1024;
    while (cap < lines * 2) /* load factor at most 1/2: short probe runs */
        cap <<= 1;
    t->slots = calloc(cap, sizeof *t->slots);
    t->bytes = malloc(len ? len : 1); /* decoded tokens are shorter than their lines */
    if (!t->slots || !t->bytes) {
        ik_tok_free(t);
        return NULL;
    }
    t->mask = cap - 1;
    t->shift = 64;
    for (size_t c = cap; c > 1; c >>= 1)
        t->shift--;
    return t;
}

/* Adds the token of dl bytes just decoded at t->bytes + t->nbytes. */
static void tok_insert(ik_tok *t, const unsigned char *dst, size_t dl, uint32_t rank)
{
    uint64_t h = hash_bytes(dst, dl);
    size_t i = (size_t)(h >> t->shift);
    while (t->slots[i].len)
        i = (i + 1) & t->mask;
    t->slots[i].key = dl <= 8 ? short_key(dst, dl) : (uint64_t)t->nbytes;
    t->slots[i].len = (uint16_t)dl;
    t->slots[i].tag = dl <= 8 ? 0 : tag_of(h);
    t->slots[i].rank = rank;
    t->nbytes += dl;
    t->count++;
}

/* Reads the decimal rank in [r, rend). 0, or IK_E_PARSE naming the column. */
static int read_rank(const unsigned char *line, const unsigned char *r, const unsigned char *rend,
                     uint64_t *rank, const char *name, size_t lineno, char *err, size_t errlen)
{
    *rank = 0;
    for (; r < rend; r++) {
        if (*r < '0' || *r > '9' || *rank > 100000000u) {
            seterr(err, errlen, "%s:%zu:%zu: rank is not a decimal number below 100000000", name,
                   lineno, (size_t)(r - line) + 1);
            return IK_E_PARSE;
        }
        *rank = *rank * 10 + (uint64_t)(*r - '0');
    }
    return 0;
}

/* One line "<base64> <rank>" (ll bytes, no newline) into t. 0, or
 * IK_E_PARSE with err naming name:line[:column]. */
static int tok_add_line(ik_tok *t, const unsigned char *line, size_t ll, const char *name,
                        size_t lineno, char *err, size_t errlen)
{
    if (ll == 0) {
        seterr(err, errlen, "%s:%zu: empty line; expected \"<base64> <rank>\"", name, lineno);
        return IK_E_PARSE;
    }
    const unsigned char *sp = memchr(line, ' ', ll);
    if (!sp) {
        seterr(err, errlen, "%s:%zu: no space between token and rank", name, lineno);
        return IK_E_PARSE;
    }
    size_t b64len = (size_t)(sp - line);
    if (b64len / 4 * 3 > TOK_MAX_LEN) {
        seterr(err, errlen, "%s:%zu: token longer than %d bytes", name, lineno, TOK_MAX_LEN);
        return IK_E_PARSE;
    }
    unsigned char *dst = t->bytes + t->nbytes;
    long dl = b64decode(line, b64len, dst);
    if (dl <= 0) {
        seterr(err, errlen, "%s:%zu:1: token is not valid base64", name, lineno);
        return IK_E_PARSE;
    }
    const unsigned char *r = sp + 1, *rend = line + ll;
    if (r == rend) {
        seterr(err, errlen, "%s:%zu:%zu: missing rank", name, lineno, b64len + 2);
        return IK_E_PARSE;
    }
    uint64_t rank;
    int rc = read_rank(line, r, rend, &rank, name, lineno, err, errlen);
    if (rc)
        return rc;
    if (t->count + 1 > (t->mask + 1) / 2) {
        seterr(err, errlen, "%s:%zu: too many entries", name, lineno);
        return IK_E_PARSE;
    }
    if (rank_of(t, dst, (size_t)dl) != UINT32_MAX) {
        seterr(err, errlen, "%s:%zu: duplicate token", name, lineno);
        return IK_E_PARSE;
    }
    tok_insert(t, dst, (size_t)dl, (uint32_t)rank);
    return 0;
}

/* A usable table has entries and a rank for every single byte (BPE starts
 * from bytes). */
static int tok_check_complete(const ik_tok *t, const char *name, char *err, size_t errlen)
{
    if (t->count == 0) {
        seterr(err, errlen, "%s: no entries", name);
        return IK_E_PARSE;
    }
    for (int b = 0; b < 256; b++) {
        unsigned char c = (unsigned char)b;
        if (rank_of(t, &c, 1) == UINT32_MAX) {
            seterr(err, errlen, "%s: no rank for the single byte 0x%02x; BPE needs all 256", name,
                   b);
            return IK_E_PARSE;
        }
    }
    return 0;
}

int ik_tok_load_mem(const char *name, const unsigned char *data, size_t len, ik_tok **out,
                    char *err, size_t errlen)
{
    *out = NULL;
    if (!name)
        name = "rank file";
    ik_tok *t = tok_table_new(data, len);
    if (!t)
        return IK_E_NOMEM;
    size_t pos = 0, lineno = 0;
    int rc = 0;
    while (rc == 0 && pos < len) {
        lineno++;
        const unsigned char *line = data + pos;
        const unsigned char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - line) : len - pos;
        pos += ll + (nl ? 1 : 0);
        if (ll > 0 && line[ll - 1] == '\r')
            ll--;
        rc = tok_add_line(t, line, ll, name, lineno, err, errlen);
    }
    if (!rc)
        rc = tok_check_complete(t, name, err, errlen);
    if (!rc)
        rc = compile_pattern(t, err, errlen);
    if (rc) {
        ik_tok_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int ik_tok_load_file(const char *path, const char *sha256_hex, ik_tok **out, char *err,
                     size_t errlen)
{
    *out = NULL;
    char *text;
    size_t len;
    int e = ik_read_file(path, &text, &len, err, errlen);
    if (e)
        return e == ENOENT ? IK_E_NOTFOUND : e == ENOMEM ? IK_E_NOMEM : IK_E_IO;
    unsigned char *buf = (unsigned char *)text;
    if (sha256_hex && sha256_hex[0]) {
        char hex[65];
        if (ik_sha256_hex(buf, len, hex) != 0) {
            free(buf);
            seterr(err, errlen, "%s: out of memory computing its SHA-256", path);
            return IK_E_NOMEM;
        }
        if (strcasecmp(hex, sha256_hex) != 0) {
            free(buf);
            seterr(err, errlen,
                   "%s: SHA-256 is %s, expected %s (wrong or corrupted rank file; fetch it "
                   "again with tools/deps)",
                   path, hex, sha256_hex);
            return IK_E_INVAL;
        }
    }
    int rc = ik_tok_load_mem(path, buf, len, out, err, errlen);
    free(buf);
    return rc;
}

/* ---- encoding ---- */

typedef struct u32vec {
    uint32_t *v;
    size_t n, cap;
    int oom;
} u32vec;

static inline void vpush(u32vec *v, uint32_t x)
{
    if (!v)
        return;
    if (v->n == v->cap) {
        uint32_t *g = ik_array_grow(v->v, &v->cap, v->n + 1, sizeof *g);
        if (!g) {
            v->oom = 1;
            return;
        }
        v->v = g;
    }
    v->v[v->n++] = x;
}

typedef struct hent {
    uint32_t rank, pos, ver;
} hent;

static int hless(const hent *a, const hent *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void hpush(hent *h, size_t *n, hent e)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!hless(&e, &h[parent]))
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = e;
}

static hent hpop(hent *h, size_t *n)
{
    hent top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && hless(&h[c + 1], &h[c]))
            c++;
        if (!hless(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = last;
    return top;
}

/* Byte-pair merges of a long piece in O(n log n): parts form a linked list
 * keyed by start offset; a heap holds (rank of the part and its successor,
 * start) with lazy invalidation by a per-part version. Popping the smallest
 * (rank, start) is tiktoken's "lowest rank, leftmost on ties". */
static size_t bpe_long(const ik_tok *t, const unsigned char *p, size_t len, u32vec *v)
{
    uint32_t *nxt = malloc((len + 1) * sizeof *nxt), *prv = malloc((len + 1) * sizeof *prv),
             *ver = calloc(len + 1, sizeof *ver);
    hent *heap = malloc(3 * (len + 1) * sizeof *heap);
    if (!nxt || !prv || !ver || !heap) {
        free(nxt);
        free(prv);
        free(ver);
        free(heap);
        if (v)
            v->oom = 1;
        return ik_tok_estimate((const char *)p, len);
    }
    size_t hn = 0, parts = len;
    for (size_t i = 0; i <= len; i++) {
        nxt[i] = (uint32_t)(i < len ? i + 1 : len);
        prv[i] = (uint32_t)(i ? i - 1 : 0);
    }
    for (size_t i = 0; i + 1 < len; i++) {
        uint32_t r = rank_of(t, p + i, 2);
        if (r != UINT32_MAX)
            hpush(heap, &hn, (hent){r, (uint32_t)i, 0});
    }
    while (hn) {
        hent e = hpop(heap, &hn);
        if (e.ver != ver[e.pos])
            continue; /* stale: the part changed since */
        uint32_t i = e.pos, j = nxt[i];
        /* merge j into i */
        nxt[i] = nxt[j];
        if (nxt[j] < len)
            prv[nxt[j]] = i;
        ver[j] = UINT32_MAX; /* dead */
        ver[i]++;
        parts--;
        if (nxt[i] < len) {
            uint32_t r = rank_of(t, p + i, nxt[nxt[i]] - i);
            if (r != UINT32_MAX)
                hpush(heap, &hn, (hent){r, i, ver[i]});
        }
        if (i > 0) {
            uint32_t q = prv[i];
            ver[q]++;
            uint32_t r = rank_of(t, p + q, nxt[i] - q);
            if (r != UINT32_MAX)
                hpush(heap, &hn, (hent){r, q, ver[q]});
        }
    }
    for (size_t i = 0; i < len; i = nxt[i])
        vpush(v, rank_of(t, p + i, nxt[i] - i));
    free(nxt);
    free(prv);
    free(ver);
    free(heap);
    return parts;
}

/* Byte-pair merges of a piece that is not a token as a whole (tiktoken's
 * _byte_pair_merge). Emits into v when non-NULL; returns the number of
 * tokens. Short pieces use the simple quadratic scan on the stack, long ones
 * bpe_long. */
static size_t bpe_merge(const ik_tok *t, const unsigned char *p, size_t len, u32vec *v)
{
    if (len + 1 > 64)
        return bpe_long(t, p, len, v);
    size_t start[64], rank[64];
    size_t n = len + 1; /* boundaries incl. the end */
    for (size_t i = 0; i < n; i++)
        start[i] = i;
    /* rank[i]: rank of bytes start[i]..start[i+2], for i + 2 < n */
    for (size_t i = 0; i + 2 < n; i++)
        rank[i] = rank_of(t, p + start[i], start[i + 2] - start[i]);
    for (;;) {
        size_t best = UINT32_MAX, bi = 0;
        for (size_t i = 0; i + 2 < n; i++) {
            if (rank[i] < best) {
                best = rank[i];
                bi = i;
            }
        }
        if (best == UINT32_MAX)
            break;
        /* merge boundary bi+1 away */
        memmove(&start[bi + 1], &start[bi + 2], (n - bi - 2) * sizeof *start);
        memmove(&rank[bi + 1], &rank[bi + 2], (n >= bi + 4 ? n - bi - 4 : 0) * sizeof *rank);
        n--;
        if (bi + 2 < n)
            rank[bi] = rank_of(t, p + start[bi], start[bi + 2] - start[bi]);
        else
            rank[bi] = UINT32_MAX;
        if (bi > 0)
            rank[bi - 1] = rank_of(t, p + start[bi - 1], start[bi + 1] - start[bi - 1]);
    }
    for (size_t i = 0; i + 1 < n; i++)
        vpush(v, rank_of(t, p + start[i], start[i + 1] - start[i]));
    return n - 1;
}

/* Tokens of one piece: the piece itself when it is a token (most pieces of
 * ordinary text are), else its merges. */
static size_t bpe_piece(const ik_tok *t, const unsigned char *p, size_t len, u32vec *v)
{
    uint32_t whole = rank_of(t, p, len);
    if (whole != UINT32_MAX) {
        vpush(v, whole);
        return 1;
    }
    return bpe_merge(t, p, len, v);
}

/* ---- pre-tokenizer ---- */

/* Classes of ASCII bytes as the pattern sees them under PCRE2_UCP: \p{Lu} and
 * \p{Ll} are A-Z and a-z (no ASCII character is Lt, Lm, Lo or M), \p{N} is
 * 0-9, \s is TAB LF VT FF CR and space (\p{Z}, \h and \v hold no other ASCII
 * character), and everything else is punctuation or a control character,
 * i.e. [^\s\p{L}\p{N}]. C_NA marks a byte >= 0x80: a non-ASCII character,
 * which only PCRE2 may classify. */
enum { C_NA, C_LO, C_UP, C_DIG, C_CRLF, C_SP, C_WS, C_OT };

static const unsigned char ASCII_CLASS[256] = {
    ['\t'] = C_WS, ['\n'] = C_CRLF, ['\v'] = C_WS, ['\f'] = C_WS, ['\r'] = C_CRLF, [' '] = C_SP,
    ['0'] = C_DIG, ['1'] = C_DIG,   ['2'] = C_DIG, ['3'] = C_DIG, ['4'] = C_DIG,   ['5'] = C_DIG,
    ['6'] = C_DIG, ['7'] = C_DIG,   ['8'] = C_DIG, ['9'] = C_DIG, ['A'] = C_UP,    ['B'] = C_UP,
    ['C'] = C_UP,  ['D'] = C_UP,    ['E'] = C_UP,  ['F'] = C_UP,  ['G'] = C_UP,    ['H'] = C_UP,
    ['I'] = C_UP,  ['J'] = C_UP,    ['K'] = C_UP,  ['L'] = C_UP,  ['M'] = C_UP,    ['N'] = C_UP,
    ['O'] = C_UP,  ['P'] = C_UP,    ['Q'] = C_UP,  ['R'] = C_UP,  ['S'] = C_UP,    ['T'] = C_UP,
    ['U'] = C_UP,  ['V'] = C_UP,    ['W'] = C_UP,  ['X'] = C_UP,  ['Y'] = C_UP,    ['Z'] = C_UP,
    ['a'] = C_LO,  ['b'] = C_LO,    ['c'] = C_LO,  ['d'] = C_LO,  ['e'] = C_LO,    ['f'] = C_LO,
    ['g'] = C_LO,  ['h'] = C_LO,    ['i'] = C_LO,  ['j'] = C_LO,  ['k'] = C_LO,    ['l'] = C_LO,
    ['m'] = C_LO,  ['n'] = C_LO,    ['o'] = C_LO,  ['p'] = C_LO,  ['q'] = C_LO,    ['r'] = C_LO,
    ['s'] = C_LO,  ['t'] = C_LO,    ['u'] = C_LO,  ['v'] = C_LO,  ['w'] = C_LO,    ['x'] = C_LO,
    ['y'] = C_LO,  ['z'] = C_LO,
    /* the rest of 0x00-0x7f: C_OT, filled in by ascii_class() */
};

/* Class of s[i]; the table above leaves C_OT bytes as 0, told apart from
 * C_NA by the byte's value. */
static int ascii_class(const unsigned char *s, size_t i)
{
    unsigned char c = s[i];
    int k = ASCII_CLASS[c];
    return k ? k : c < 0x80 ? C_OT : C_NA;
}

#define FAST_BAIL ((size_t)0) /* "ask PCRE2": matches are not empty, none ends at 0 */

/* The optional contraction (?i:'s|'t|'re|'ve|'m|'ll|'d)? after a letter run
 * ending at j; returns the end of the match. Any non-ASCII byte looked at
 * bails: under (?i) 's' also matches U+017F, so PCRE2 must decide. */
static size_t fast_contraction(const unsigned char *s, size_t j, size_t n)
{
    if (j >= n || s[j] != '\'' || j + 1 >= n)
        return j;
    unsigned char d = s[j + 1];
    if (d >= 0x80)
        return FAST_BAIL;
    d |= 0x20; /* ASCII case fold: of all bytes only 'S' and 's' give 's', etc. */
    if (d == 's' || d == 't' || d == 'm' || d == 'd')
        return j + 2;
    if (d != 'r' && d != 'v' && d != 'l')
        return j;
    if (j + 2 >= n)
        return j;
    unsigned char e = s[j + 2];
    if (e >= 0x80)
        return FAST_BAIL;
    e |= 0x20;
    return e == (d == 'l' ? 'l' : 'e') ? j + 3 : j;
}

/* Alternatives 1 and 2 of the pattern from the ASCII letter at s[i]
 * (the optional prefix, if any, is before i). With ASCII letters the upper
 * class [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] is A-Z and the lower class
 * [\p{Ll}\p{Lm}\p{Lo}\p{M}] is a-z, disjoint, so backtracking never helps:
 * alternative 1 is the upper run followed by a non-empty lower run, and when
 * no lower letter follows the upper run, alternative 2 is the upper run
 * alone. Either may end in a contraction. A run that stops at a non-ASCII
 * byte (which might be a letter or mark) bails. */
static size_t fast_letters(const unsigned char *s, size_t i, size_t n)
{
    size_t j = i;
    while (j < n && ASCII_CLASS[s[j]] == C_UP)
        j++;
    while (j < n && ASCII_CLASS[s[j]] == C_LO)
        j++;
    if (j < n && s[j] >= 0x80)
        return FAST_BAIL;
    return fast_contraction(s, j, n);
}

/* Alternatives 5-7 from the whitespace character s[i]. The whitespace run
 * is s[i..j). \s*[\r\n]+ backtracks to the last CR or LF of the run and ends
 * after it; failing that, \s+(?!\S) takes the whole run at the end of the
 * text or all but its last character when that leaves one; failing that,
 * \s+ takes the single character. A run that stops at a non-ASCII byte
 * (which might be whitespace, e.g. U+00A0) bails. */
static size_t fast_space(const unsigned char *s, size_t i, size_t n)
{
    size_t j = i, last_nl = 0;
    int k;
    while (j < n && ((k = ASCII_CLASS[s[j]]) == C_SP || k == C_WS || k == C_CRLF)) {
        if (k == C_CRLF)
            last_nl = j + 1;
        j++;
    }
    if (j < n && s[j] >= 0x80)
        return FAST_BAIL;
    if (last_nl)
        return last_nl;
    if (j == n)
        return j;
    return j - i >= 2 ? j - 1 : j;
}

/* The end of the pattern's match at s[i] (i < n), the leftmost-first
 * alternative exactly as PCRE2 picks it, when deciding it needs only ASCII
 * characters; FAST_BAIL when a non-ASCII byte would have to be classified.
 * The pattern has no lookbehind, so the text before i does not matter. */
static size_t fast_match(const unsigned char *s, size_t i, size_t n)
{
    int c = ascii_class(s, i);
    switch (c) {
    case C_LO:
    case C_UP:
        return fast_letters(s, i, n);
    case C_DIG: { /* \p{N}{1,3} */
        size_t j = i + 1;
        while (j < n && j < i + 3 && ASCII_CLASS[s[j]] == C_DIG)
            j++;
        if (j < n && j < i + 3 && s[j] >= 0x80)
            return FAST_BAIL; /* might be a non-ASCII \p{N} */
        return j;
    }
    case C_CRLF: /* not in [^\r\n\p{L}\p{N}] nor [^\s\p{L}\p{N}]: whitespace */
        return fast_space(s, i, n);
    case C_SP:
    case C_WS:
    case C_OT: {
        /* [^\r\n\p{L}\p{N}] as the prefix of alternatives 1 and 2; when
         * no letter follows, those fail and so does \p{N}{1,3} */
        int c1 = i + 1 < n ? ascii_class(s, i + 1) : -1;
        if (c1 == C_NA)
            return FAST_BAIL;
        if (c1 == C_LO || c1 == C_UP)
            return fast_letters(s, i + 1, n);
        /* alternative 4, " ?[^\s\p{L}\p{N}]+[\r\n/]*", from here or after a
         * leading space */
        size_t j;
        if (c == C_OT)
            j = i + 1;
        else if (c == C_SP && c1 == C_OT)
            j = i + 2;
        else
            return fast_space(s, i, n);
        while (j < n && ascii_class(s, j) == C_OT)
            j++;
        if (j < n && s[j] >= 0x80)
            return FAST_BAIL; /* might be more punctuation */
        while (j < n && (s[j] == '\r' || s[j] == '\n' || s[j] == '/'))
            j++;
        return j;
    }
    default:
        return FAST_BAIL;
    }
}

/* Splits text[0..len) with the pattern and merges each piece; returns the
 * token count. Pieces of ASCII text come from fast_match; PCRE2 (JIT when
 * available, the interpreter when the JIT stack runs out) decides every match
 * fast_match cannot, so the splits are PCRE2's either way. */
static size_t encode_ordinary(const ik_tok *t, const unsigned char *text, size_t len, u32vec *v)
{
    pcre2_match_data *md = NULL; /* made on the first non-ASCII match only */
    size_t count = 0, off = 0;
    while (off < len) {
        size_t e = fast_match(text, off, len);
        if (e != FAST_BAIL) {
            size_t n = e - off;
            if (n <= 8 && off + 8 <= len) {
                /* the common case inline: a short piece that is one token,
                 * its key read as one word */
                uint32_t r = rank_short(t, rd64(text + off) & KEY_MASK[n], n);
                if (r != UINT32_MAX) {
                    vpush(v, r);
                    count++;
                } else {
                    count += bpe_merge(t, text + off, n, v);
                }
            } else {
                count += bpe_piece(t, text + off, n, v);
            }
            off = e;
            continue;
        }
        if (!md) {
            md = pcre2_match_data_create_from_pattern(t->re, NULL);
            if (!md) {
                if (v)
                    v->oom = 1;
                return count + ik_tok_estimate((const char *)text + off, len - off);
            }
        }
        int rc = t->jit ? pcre2_jit_match(t->re, text, len, off, 0, md, NULL)
                        : pcre2_match(t->re, text, len, off, 0, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(t->re, text, len, off, PCRE2_NO_JIT, md, NULL);
        if (rc < 0) {
            /* No match (only possible on invalid UTF-8): one byte as a token. */
            count += bpe_piece(t, text + off, 1, v);
            off++;
            continue;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t s = ov[0];
        e = ov[1];
        if (s > off) /* skipped bytes (invalid UTF-8) are tokens of their own */
            for (size_t k = off; k < s; k++)
                count += bpe_piece(t, text + k, 1, v);
        if (e == s) { /* cannot happen with this pattern; guard anyway */
            count += bpe_piece(t, text + s, 1, v);
            off = s + 1;
            continue;
        }
        count += bpe_piece(t, text + s, e - s, v);
        off = e;
    }
    pcre2_match_data_free(md);
    return count;
}

size_t ik_tok_count(const ik_tok *tok, const char *text, size_t len)
{
    if (!tok)
        return ik_tok_estimate(text, len);
    return encode_ordinary(tok, (const unsigned char *)text, len, NULL);
}

int ik_tok_encode(const ik_tok *tok, const char *text, size_t len, int allow_special,
                  uint32_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!tok)
        return IK_E_INVAL;
    u32vec v = {0};
    const unsigned char *p = (const unsigned char *)text;
    size_t off = 0;
    while (off < len) {
        size_t next = len, which = 0;
        if (allow_special) {
            for (size_t k = 0; k < sizeof SPECIALS / sizeof *SPECIALS; k++) {
                const char *hit =
                    memmem(p + off, len - off, SPECIALS[k].text, strlen(SPECIALS[k].text));
                if (hit && (size_t)((const unsigned char *)hit - p) < next) {
                    next = (size_t)((const unsigned char *)hit - p);
                    which = k;
                }
            }
        }
        encode_ordinary(tok, p + off, next - off, &v);
        if (next == len)
            break;
        vpush(&v, SPECIALS[which].id);
        off = next + strlen(SPECIALS[which].text);
    }
    if (v.oom) {
        free(v.v);
        return IK_E_NOMEM;
    }
    *out = v.v;
    *n = v.n;
    return 0;
}

size_t ik_tok_estimate(const char *text, size_t len)
{
    (void)text;
    return (len + 2) / 3;
}
