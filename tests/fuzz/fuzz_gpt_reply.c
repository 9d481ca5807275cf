/*
 * fuzz_gpt_reply.c: feeds arbitrary bytes to the gpt_batch parsers of API
 * answers (plugins/processors/gpt_batch/reply.c): a Responses body, a Chat Completions
 * body, an error body, the model's output text, and the Batch API's result
 * lines, batch objects and file objects. Checks what callers rely
 * on: a failure always comes with a message, a success with a known finish
 * and non-negative usage, and nothing leaks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt_batch/gpt_internal.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    for (int chat = 0; chat < 2; chat++) {
        gpt_reply r;
        char err[300] = "";
        int rc = gpt_parse_reply(chat, body, size, &r, err, sizeof err);
        if (rc != 0) {
            CHECK(rc == IK_E_PARSE || rc == IK_E_NOMEM);
            CHECK(err[0] != '\0');
            CHECK(r.text == NULL && r.refusal == NULL);
        } else {
            CHECK(r.finish >= GPT_FIN_OK && r.finish <= GPT_FIN_FAILED);
            CHECK(r.usage.input >= 0 && r.usage.output >= 0 && r.usage.cached >= 0 &&
                  r.usage.reasoning >= 0);
            CHECK(r.finish != GPT_FIN_OK || r.text != NULL);
            CHECK(r.finish != GPT_FIN_REFUSAL || r.refusal != NULL);
            gpt_reply_free(&r);
        }
    }
    gpt_api_error e;
    gpt_parse_error(body, size, &e);
    CHECK(strlen(e.message) < sizeof e.message);
    gpt_batch_line bl;
    char berr[300] = "";
    int brc = gpt_parse_batch_line(body, size, &bl, berr, sizeof berr);
    if (brc == 0) {
        CHECK(bl.custom_id[0] != '\0' || bl.status || bl.err_code[0] || bl.err_message[0]);
        CHECK((bl.status == 0) == (bl.body == NULL));
        CHECK(bl.status == 0 || (bl.status >= 100 && bl.status <= 599));
        gpt_batch_line_free(&bl);
    } else {
        CHECK(berr[0] != '\0' && bl.body == NULL);
    }
    gpt_batch_info bi;
    berr[0] = 0;
    if (gpt_parse_batch_object(body, size, &bi, berr, sizeof berr) == 0)
        CHECK(bi.id[0] && bi.status[0] && bi.total >= 0 && bi.completed >= 0 && bi.failed >= 0);
    else
        CHECK(berr[0] != '\0');
    char fid[64];
    berr[0] = 0;
    if (gpt_parse_file_object(body, size, fid, sizeof fid, berr, sizeof berr) == 0)
        CHECK(fid[0] != '\0');
    else
        CHECK(berr[0] != '\0');
    /* the output text parser takes a NUL-terminated string */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    json_object *res = NULL;
    char err[300] = "";
    int rc = gpt_parse_results(text, &res, err, sizeof err);
    if (rc == 0)
        CHECK(res && json_object_is_type(res, json_type_array));
    else
        CHECK(res == NULL && err[0]);
    json_object_put(res);
    free(text);
    return 0;
}
