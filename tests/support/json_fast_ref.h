/*
 * json_fast_ref.h: the reference the JSON fast path (lib/json) is checked
 * against, shared by tests/unit/test_json_fast.c and
 * tests/fuzz/fuzz_json_fast.c: json-c's tokener run as the file source runs
 * it on UTF-8 text, and a comparison of two trees that also sees key order.
 * Header-only (static inline) so the fuzz target needs no test kit.
 */
#ifndef INTAKE_TEST_JSON_FAST_REF_H
#define INTAKE_TEST_JSON_FAST_REF_H

#include <stddef.h>
#include <string.h>

#include <json-c/json.h>

/*
 * json-c as plugins/sources/file/json_reader.c's parse_with runs it on
 * UTF-8 text (strict, trailing characters allowed, depth limit `depth`):
 * one call over the text, a NUL to end a bare top-level value when the
 * tokener wants more, then only whitespace may follow. Returns 1 with *out
 * (owned; NULL for null), 0 when json-c refuses the text, -1 out of memory.
 */
static inline int jf_ref_parse(const char *text, size_t len, int depth, json_object **out)
{
    *out = NULL;
    json_tokener *tok = json_tokener_new_ex(depth);
    if (!tok)
        return -1;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
    json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    int ok = obj || e == json_tokener_success;
    if (!ok && e == json_tokener_continue) {
        obj = json_tokener_parse_ex(tok, "", 1);
        ok = obj || json_tokener_get_error(tok) == json_tokener_success;
        end = len;
    }
    json_tokener_free(tok);
    while (ok && end < len && text[end] && strchr(" \t\r\n", text[end]))
        end++;
    if (!ok || end < len) {
        json_object_put(obj);
        return 0;
    }
    *out = obj;
    return 1;
}

/* 1 when a and b are the same tree: types, values (json_object_equal),
 * string bytes and lengths, keys in the same order, elements in order. */
static inline int jf_same_tree(json_object *a, json_object *b)
{
    if (!a || !b)
        return a == b;
    if (json_object_get_type(a) != json_object_get_type(b) || !json_object_equal(a, b))
        return 0;
    switch (json_object_get_type(a)) {
    case json_type_string:
        return json_object_get_string_len(a) == json_object_get_string_len(b) &&
               memcmp(json_object_get_string(a), json_object_get_string(b),
                      (size_t)json_object_get_string_len(a)) == 0;
    case json_type_array:
        if (json_object_array_length(a) != json_object_array_length(b))
            return 0;
        for (size_t i = 0; i < json_object_array_length(a); i++)
            if (!jf_same_tree(json_object_array_get_idx(a, i), json_object_array_get_idx(b, i)))
                return 0;
        return 1;
    case json_type_object: {
        struct json_object_iterator ia = json_object_iter_begin(a), ea = json_object_iter_end(a);
        struct json_object_iterator ib = json_object_iter_begin(b), eb = json_object_iter_end(b);
        for (; !json_object_iter_equal(&ia, &ea); json_object_iter_next(&ia)) {
            if (json_object_iter_equal(&ib, &eb) ||
                strcmp(json_object_iter_peek_name(&ia), json_object_iter_peek_name(&ib)) != 0 ||
                !jf_same_tree(json_object_iter_peek_value(&ia), json_object_iter_peek_value(&ib)))
                return 0;
            json_object_iter_next(&ib);
        }
        return json_object_iter_equal(&ib, &eb);
    }
    default:
        return 1;
    }
}

/* The tree serialized as the stdout sink and the bench baseline write it
 * (owned by o). */
static inline const char *jf_plain(json_object *o)
{
    return json_object_to_json_string_ext(o,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

#endif
