/*
 * json_fast.h: a fast path for parsing the JSON that records are made of
 * (objects, arrays, strings, int64 integers, true/false/null) straight into
 * a json-c tree, for callers that would otherwise run json-c 0.16's tokener
 * in strict mode (JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS)
 * and then allow nothing but whitespace after the value.
 *
 * The contract: whenever ik_json_fast_parse accepts a text, that tokener
 * (with the same depth limit) accepts it too and builds an identical tree:
 * the same types, byte-identical strings, the same keys in the same order,
 * the same outcome for duplicate keys. Anything else is declined, malformed
 * input and forms the fast path leaves to json-c alike (numbers with a
 * fraction or exponent, integers of 19 digits or more, leading zeros, lone
 * surrogates, \u0000, control characters in strings), and the caller runs
 * the tokener as before, which accepts or reports the error with its
 * message and position.
 */
#ifndef INTAKE_JSON_FAST_H
#define INTAKE_JSON_FAST_H

#include <stddef.h>

#include <json-c/json.h>

/* The largest max_depth ik_json_fast_parse takes (it recurses once a level). */
#define IK_JSON_FAST_MAX_DEPTH 1000

/*
 * Parses text[0..len) as exactly one JSON value with nothing but JSON
 * whitespace (space, tab, CR, LF) around it. Returns 1 with *out the value
 * (the caller owns it; NULL for the literal null), or 0 when it declines
 * (*out NULL; nothing is left allocated): the text is malformed, holds a
 * form listed above, nests values deeper than json-c's depth limit
 * max_depth (json_tokener_new_ex's argument; the top value is at depth 0),
 * or memory ran out. max_depth outside 1..IK_JSON_FAST_MAX_DEPTH declines
 * everything.
 *
 * The text should be valid UTF-8: the contract is stated for the tokener
 * without JSON_TOKENER_VALIDATE_UTF8 (bytes of 0x80 and above are copied into
 * strings as they are, as that tokener does), so a caller that validates
 * with json-c must check UTF-8 itself first. Thread-safe: no state is kept
 * between calls.
 */
int ik_json_fast_parse(const char *text, size_t len, int max_depth, json_object **out);

#endif
