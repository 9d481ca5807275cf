/*
 * fuzz_mime.c: feeds arbitrary bytes to the MIME path of the email library
 * (em_parse_mime), then the token diet and the rules extractor over what it
 * produced, and the HTML-to-text converter over the raw bytes. Checks the
 * invariants callers rely on: a message is either a record or an error text
 * (never both, never neither), every string in the record is valid UTF-8
 * without NUL, the diet's counts add up and carry the parser's notes, and
 * every extracted value is grounded. The bytes are also read as a header
 * value by the RFC 2047 decoder and merger: valid UTF-8 out, no NUL.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "email/email.h"
#include "rules/extract.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every string anywhere in the value is valid UTF-8. */
static void check_utf8(json_object *o, int depth)
{
    CHECK(depth < 64);
    if (json_object_is_type(o, json_type_string)) {
        CHECK(em_utf8_valid(json_object_get_string(o), (size_t)json_object_get_string_len(o)));
    } else if (json_object_is_type(o, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(o); i++)
            check_utf8(json_object_array_get_idx(o, i), depth + 1);
    } else if (json_object_is_type(o, json_type_object)) {
        json_object_object_foreach(o, k, v)
        {
            CHECK(em_utf8_valid(k, strlen(k)));
            if (v)
                check_utf8(v, depth + 1);
        }
    }
}

/* The bytes (up to a NUL) as a header value: decoded, and merged for GMime. */
static void check_header(const char *buf, size_t size)
{
    char *value = strndup(buf, size);
    if (!value)
        return;
    size_t nuls = 0;
    char *dec = em_header_decode(value, &nuls);
    CHECK(dec != NULL);
    CHECK(em_utf8_valid(dec, strlen(dec)));
    char *merged = em_header_merge_words(value, &nuls);
    CHECK(merged != NULL);
    free(merged);
    free(dec);
    free(value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20)
        return 0;
    em_init();
    /* an exact-size copy, so reading past the end is caught by ASan */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    json_object *rec = NULL;
    char err[EM_ERROR_MAX];
    err[0] = '\0';
    int rc = em_parse_mime("fuzz.eml", buf, size, NULL, &rec, err, sizeof err);
    CHECK((rc == 0) == (rec != NULL));
    if (rc != 0) {
        CHECK(err[0] != '\0');
        CHECK(strncmp(err, "fuzz.eml: ", 10) == 0);
    } else {
        check_utf8(rec, 0);
        em_diet_opts d = {.quotes = 1, .disclaimers = 1, .max_chars = 2000};
        json_object *norm = NULL;
        CHECK(em_normalize(rec, NULL, &d, &norm, err, sizeof err) == 0);
        check_utf8(norm, 0);
        json_object *diet, *v;
        CHECK(json_object_object_get_ex(norm, "diet", &diet));
        CHECK(json_object_object_get_ex(diet, "html_fallback", &v) &&
              json_object_get_int64(v) >= 0);
        CHECK(json_object_object_get_ex(diet, "nul_replaced", &v) && json_object_get_int64(v) >= 0);
        json_object *ex = rx_extract(norm);
        CHECK(ex != NULL);
        check_utf8(ex, 0);
        json_object_put(ex);
        json_object_put(norm);
        json_object_put(rec);
    }
    int fallback = -1;
    char *text = em_html_to_text(buf, size, &fallback);
    CHECK(text != NULL);
    CHECK(fallback == 0 || fallback == 1);
    CHECK(em_utf8_valid(text, strlen(text)));
    check_header(buf, size);
    em_diet_stats st;
    char *dieted = NULL;
    em_diet_opts d = {.quotes = 1, .disclaimers = 1, .max_chars = 100};
    CHECK(em_diet(text, &d, &dieted, &st) == 0);
    CHECK(st.chars_in - st.chars_out ==
          st.quote_chars + st.disclaimer_chars + st.whitespace_chars + st.cut_chars);
    CHECK(st.chars_out <= 100);
    free(dieted);
    free(text);
    free(buf);
    return 0;
}
