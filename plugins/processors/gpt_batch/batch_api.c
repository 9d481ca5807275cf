/*
 * batch_api.c: the gpt_batch processor's Batch API mode (mode = "batch"):
 * the packed requests of one process() call are written as one JSONL file
 * (a line per request, custom_id "r<round>-<n>"), uploaded to /files,
 * turned into a batch (/batches, completion window 24h), polled until it
 * ends, and its output and error files are mapped back: custom_id to the
 * packed request, then email_id to the email (request.c), exactly as a
 * synchronous answer is. Output order is not trusted.
 *
 * What needs another request (halves of an overflowing request, emails the
 * model omitted, invalid results) is collected by gpt_job_submit and sent in
 * the next round, a new batch, so the whole call stays at batch prices.
 *
 * Failures: a failed batch (validation, enqueued-token limit) or one that
 * ended without an answer for a request hands those emails back as
 * IK_RETRY with the reason; expired requests likewise; quota/auth errors
 * block the processor and answer IK_DOWN, as in the synchronous mode.
 * On shutdown a running batch is cancelled and its emails released: the
 * state of a batch is not kept across restarts, so the next run sends them
 * again (what the cancelled batch had finished is billed but unused).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "processor.h"

/* Rounds of follow-up batches: enough for a 50-email request to be halved
 * down to one email and then retried alone. */
#define MAX_ROUNDS 10
/* The API takes files of up to 200 MB; keep a margin. */
#define MAX_FILE_BYTES (190u << 20)

/* base/files, base/batches/ID/cancel, ... plus ?api-version= in the Azure
 * dated form. */
static void api_url(gb_state *st, char *out, size_t n, const char *path)
{
    if (st->api_qs[0])
        snprintf(out, n, "%s/%s?api-version=%s", st->api_base, path, st->api_qs);
    else
        snprintf(out, n, "%s/%s", st->api_base, path);
}

/* Sleeps ms, waking every 100 ms to see whether the engine is stopping.
 * Returns 1 when it is. */
static int nap(gb_state *st, uint64_t ms)
{
    while (ms > 0) {
        if (gpt_stopping(st))
            return 1;
        uint64_t step = ms < 100 ? ms : 100;
        struct timespec ts = {(time_t)(step / 1000), (long)(step % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return gpt_stopping(st);
}

/* What a failed control call (upload, create, poll) means for the emails:
 * quota and auth problems block the processor and answer IK_DOWN (the
 * engine pauses the stage and keeps them), anything
 * else (including a 200 whose body could not be read: cerr says why) is
 * retried later. Fills reason. */
static ik_status control_failure(gb_state *st, const char *what, int rc, const gpt_resp *r,
                                 const char *cerr, char *reason, size_t rlen)
{
    if (rc == 0 && r->status == 200) {
        snprintf(reason, rlen, "batch API %s: unreadable answer: %.300s", what, cerr);
        return IK_RETRY;
    }
    if (rc != 0) {
        snprintf(reason, rlen, "batch API %s: %s: %.300s", what,
                 rc == IK_E_TIMEOUT ? "timed out" : "connection failed", cerr);
        return IK_RETRY;
    }
    gpt_api_error ae;
    gpt_parse_error(r->body, r->len, &ae);
    snprintf(reason, rlen, "batch API %s: HTTP %ld%s%.60s: %.300s", what, r->status,
             ae.code[0] ? " " : "", ae.code, ae.message);
    if (r->status == 401 || r->status == 403) {
        char b[IK_REASON_MAX];
        snprintf(b, sizeof b, "HTTP %ld: the API key was rejected (%s)", r->status,
                 ae.code[0] ? ae.code : "no code");
        gpt_block(st, b);
        return IK_DOWN;
    }
    if (r->status == 429 && (strcmp(ae.code, "insufficient_quota") == 0 ||
                             strcmp(ae.type, "insufficient_quota") == 0)) {
        gpt_block(st, "429 insufficient_quota: the account has no credit or hit its spend cap");
        return IK_DOWN;
    }
    return IK_RETRY;
}

static void settle_groups(job *j, const gpt_group *g, size_t ng, const int *answered, ik_status s,
                          const char *reason)
{
    for (size_t i = 0; i < ng; i++)
        if (!answered || !answered[i])
            gpt_set_all(j, g[i].idx, g[i].k, s, reason);
}

static void delete_file(gb_state *st, const char *id)
{
    if (!id[0] || st->batch_keep_files)
        return;
    char url[2300], path[200], err[300];
    snprintf(path, sizeof path, "files/%s", id);
    api_url(st, url, sizeof url, path);
    gpt_resp r;
    int rc = gpt_http_send(st->http, "DELETE", url, NULL, NULL, &r, err, sizeof err);
    if (rc != 0 || r.status != 200)
        st->host->log(st->self, IK_LOG_WARN, "could not delete batch file %s: %s", id,
                      rc ? err : "HTTP error");
    gpt_resp_free(&r);
}

/* Maps one result file onto the groups; answered[i] is set for each group a
 * line settled. Lines that cannot be read are logged and skipped: their
 * groups stay unanswered and are retried. */
static void map_file(job *j, const char *body, size_t len, const char *prefix, gpt_group *g,
                     size_t ng, const long *max_out, int *answered)
{
    gb_state *st = j->st;
    size_t plen = strlen(prefix);
    size_t lineno = 0;
    for (size_t off = 0; off < len;) {
        const char *nl = memchr(body + off, '\n', len - off);
        size_t end = nl ? (size_t)(nl - body) : len;
        const char *line = body + off;
        size_t ll = end - off;
        off = end + 1;
        lineno++;
        while (ll && (line[ll - 1] == '\r' || line[ll - 1] == ' '))
            ll--;
        if (ll == 0)
            continue;
        gpt_batch_line bl;
        char err[400];
        if (gpt_parse_batch_line(line, ll, &bl, err, sizeof err) != 0) {
            st->host->log(st->self, IK_LOG_WARN, "batch result file line %zu: %s", lineno, err);
            continue;
        }
        char *endp = NULL;
        unsigned long n = 0;
        int ours = strncmp(bl.custom_id, prefix, plen) == 0;
        if (ours)
            n = strtoul(bl.custom_id + plen, &endp, 10);
        if (!ours || !endp || *endp || n >= ng || answered[n]) {
            gpt_metric_add(st, M_UNKNOWN, 1);
            st->host->log(st->self, IK_LOG_WARN,
                          "batch result file line %zu: custom_id \"%.80s\" is not a request of "
                          "this batch, or answered twice: ignored",
                          lineno, bl.custom_id);
            gpt_batch_line_free(&bl);
            continue;
        }
        answered[n] = 1;
        if (bl.status) {
            gpt_hints h;
            gpt_hints_init(&h);
            snprintf(h.request_id, sizeof h.request_id, "%s", bl.request_id);
            gpt_usage usage;
            gpt_job_answer(j, g[n].idx, g[n].k, g[n].depth, bl.status, bl.body, bl.body_len, &h, 0,
                           max_out[n], &usage);
        } else {
            char reason[IK_REASON_MAX];
            if (strcmp(bl.err_code, "batch_expired") == 0)
                snprintf(reason, sizeof reason,
                         "the batch expired before this request ran (batch_expired)");
            else
                snprintf(reason, sizeof reason, "batch request failed: %.60s: %.300s", bl.err_code,
                         bl.err_message);
            gpt_set_all(j, g[n].idx, g[n].k, IK_RETRY, reason);
        }
        gpt_batch_line_free(&bl);
    }
}

static int download(gb_state *st, const char *fid, gpt_resp *r, char *err, size_t errlen)
{
    char url[2300], path[200];
    snprintf(path, sizeof path, "files/%s/content", fid);
    api_url(st, url, sizeof url, path);
    int rc = gpt_http_send(st->http, "GET", url, NULL, NULL, r, err, errlen);
    if (rc == 0 && r->status != 200) {
        snprintf(err, errlen, "HTTP %ld", r->status);
        rc = IK_E_IO;
    }
    return rc;
}

/* One batch of round `round` while it runs: the groups g[0..ng) it carries,
 * each group's line (custom_id prefix + index) and output cap, which groups
 * a result line settled, and the server-side ids to delete at the end. */
typedef struct batch_run {
    job *j;
    gpt_group *g;
    size_t ng;
    int round;
    char prefix[32];
    long *max_out;
    int *answered;
    char file_id[128], batch_id[128], out_id[128], err_id[128];
} batch_run;

/* Settles every group of the batch not answered yet with s and reason. */
static void settle_rest(batch_run *b, ik_status s, const char *reason)
{
    settle_groups(b->j, b->g, b->ng, b->answered, s, reason);
}

/* The JSONL input file: one line per group, custom_id prefix + index. 0, or
 * IK_E_NOMEM with every email settled IK_RETRY. */
static int write_file(batch_run *b, ik_buf *file)
{
    gb_state *st = b->j->st;
    for (size_t i = 0; i < b->ng; i++) {
        b->max_out[i] = gpt_max_out_group(st, b->j, b->g[i].idx, b->g[i].k);
        char *body = gpt_build_request(st, b->j, b->g[i].idx, b->g[i].k, b->max_out[i]);
        char head[256];
        int hl = snprintf(head, sizeof head,
                          "{\"custom_id\":\"%s%zu\",\"method\":\"POST\",\"url\":\"%s\",\"body\":",
                          b->prefix, i, st->batch_endpoint);
        if (body) {
            ik_buf_add(file, head, (size_t)hl);
            ik_buf_adds(file, body);
            ik_buf_add(file, "}\n", 2);
        }
        free(body);
        if (!body || file->oom) {
            settle_rest(b, IK_RETRY, "out of memory building the batch file");
            return IK_E_NOMEM;
        }
    }
    return 0;
}

/* Uploads the input file (file_id set). 0, or -1 with every email settled
 * as control_failure says. */
static int upload(batch_run *b, const ik_buf *file)
{
    gb_state *st = b->j->st;
    char reason[IK_REASON_MAX], err[600], url[2300], fname[64];
    snprintf(fname, sizeof fname, "intake-%ld-r%d.jsonl", (long)time(NULL), b->round);
    gpt_upload up = {"batch", fname, file->p, file->len};
    api_url(st, url, sizeof url, "files");
    gpt_resp r;
    int rc = gpt_http_send(st->http, "POST", url, NULL, &up, &r, err, sizeof err);
    if (rc != 0 || r.status != 200 ||
        gpt_parse_file_object(r.body, r.len, b->file_id, sizeof b->file_id, err, sizeof err) != 0) {
        ik_status s = control_failure(st, "upload", rc, &r, err, reason, sizeof reason);
        gpt_resp_free(&r);
        b->file_id[0] = 0;
        settle_rest(b, s, reason);
        return -1;
    }
    gpt_resp_free(&r);
    gpt_unblock(st); /* the key and the account work again */
    return 0;
}

/* Creates the batch from the uploaded file (batch_id and *bi set). 0, or
 * -1 with every email settled as control_failure says. */
static int create_batch(batch_run *b, gpt_batch_info *bi)
{
    gb_state *st = b->j->st;
    char reason[IK_REASON_MAX], err[600], url[2300], req[1024];
    snprintf(req, sizeof req,
             "{\"input_file_id\":\"%s\",\"endpoint\":\"%s\",\"completion_window\":\"24h\","
             "\"metadata\":{\"created_by\":\"intake\"}}",
             b->file_id, st->batch_endpoint);
    api_url(st, url, sizeof url, "batches");
    gpt_resp r;
    int rc = gpt_http_send(st->http, "POST", url, req, NULL, &r, err, sizeof err);
    if (rc != 0 || r.status != 200 ||
        gpt_parse_batch_object(r.body, r.len, bi, err, sizeof err) != 0) {
        ik_status s = control_failure(st, "create", rc, &r, err, reason, sizeof reason);
        gpt_resp_free(&r);
        settle_rest(b, s, reason);
        return -1;
    }
    gpt_resp_free(&r);
    snprintf(b->batch_id, sizeof b->batch_id, "%s", bi->id);
    gpt_metric_add(st, M_BATCHES, 1);
    size_t nemails = 0;
    for (size_t i = 0; i < b->ng; i++)
        nemails += b->g[i].k;
    st->host->log(st->self, IK_LOG_INFO, "batch %s created: %zu requests, %zu emails (round %d)",
                  b->batch_id, b->ng, nemails, b->round);
    return 0;
}

/* Cancels the batch (shutting down, or batch_max_wait passed) and settles
 * its emails: released when stopping (sent again on the next run), else
 * IK_RETRY. */
static void cancel_batch(batch_run *b, int stopping)
{
    gb_state *st = b->j->st;
    char reason[IK_REASON_MAX], err[600], url[2300], path[320];
    snprintf(path, sizeof path, "batches/%s/cancel", b->batch_id);
    api_url(st, url, sizeof url, path);
    gpt_resp r;
    gpt_http_send(st->http, "POST", url, NULL, NULL, &r, err, sizeof err);
    gpt_resp_free(&r);
    st->host->log(st->self, IK_LOG_WARN, "batch %s cancelled: %s", b->batch_id,
                  stopping ? "shutting down" : "not finished within batch_max_wait");
    snprintf(reason, sizeof reason, "batch %s cancelled: %s", b->batch_id,
             stopping ? "shutting down; sent again on the next run"
                      : "not finished within batch_max_wait");
    settle_rest(b, stopping ? IK_RELEASE : IK_RETRY, reason);
}

/* Polls the batch every batch_poll_interval until it ends (*bi updated). 0,
 * or -1 with every email settled: cancelled (stopping, too late) or the
 * key, account or batch gone (401, 403, 404). A passing failure to read
 * the status is logged once and asked again. */
static int poll_batch(batch_run *b, gpt_batch_info *bi)
{
    gb_state *st = b->j->st;
    char reason[IK_REASON_MAX], err[600], url[2300], path[300];
    double t0 = gpt_now_s();
    snprintf(path, sizeof path, "batches/%s", b->batch_id);
    int warned = 0;
    while (!bi->terminal) {
        int stop = nap(st, st->batch_poll_ms);
        if (stop || (gpt_now_s() - t0) * 1000 > (double)st->batch_max_wait_ms) {
            cancel_batch(b, stop);
            return -1;
        }
        if (IK_HOST_HAS(st->host, progress))
            st->host->progress(st->self); /* waiting is not a stall */
        api_url(st, url, sizeof url, path);
        gpt_resp r;
        int rc = gpt_http_send(st->http, "GET", url, NULL, NULL, &r, err, sizeof err);
        gpt_batch_info now;
        if (rc == 0 && r.status == 200 &&
            gpt_parse_batch_object(r.body, r.len, &now, err, sizeof err) == 0) {
            *bi = now;
        } else if (rc == 0 && (r.status == 401 || r.status == 403 || r.status == 404)) {
            ik_status s = control_failure(st, "status", rc, &r, err, reason, sizeof reason);
            gpt_resp_free(&r);
            settle_rest(b, s, reason);
            return -1;
        } else if (!warned++) {
            /* a passing failure: the batch runs on; ask again next time */
            st->host->log(st->self, IK_LOG_WARN, "batch %s: status unavailable: %s", b->batch_id,
                          rc                ? err
                          : r.status == 200 ? err
                                            : "HTTP error");
        }
        gpt_resp_free(&r);
    }
    return 0;
}

/* The batch ended: a failed batch hands its emails back; otherwise its
 * output and error files are mapped back and whatever they did not answer
 * is handed back with the reason. */
static void collect(batch_run *b, const gpt_batch_info *bi)
{
    gb_state *st = b->j->st;
    char reason[IK_REASON_MAX], err[600];
    st->host->log(st->self, IK_LOG_INFO, "batch %s %s: %ld completed, %ld failed of %ld",
                  b->batch_id, bi->status, bi->completed, bi->failed, bi->total);
    if (strcmp(bi->status, "failed") == 0) {
        snprintf(reason, sizeof reason, "batch %.100s failed: %.60s: %.300s%s", b->batch_id,
                 bi->err_code[0] ? bi->err_code : "no code", bi->err_message,
                 bi->err_line ? " (in a line of the batch file)" : "");
        st->host->log(st->self, IK_LOG_WARN, "%s; its emails will be retried", reason);
        settle_rest(b, IK_RETRY, reason);
        return;
    }
    snprintf(b->out_id, sizeof b->out_id, "%s", bi->output_file_id);
    snprintf(b->err_id, sizeof b->err_id, "%s", bi->error_file_id);
    const char *ids[2] = {b->out_id, b->err_id};
    for (int f = 0; f < 2; f++) {
        if (!ids[f][0])
            continue;
        gpt_resp r;
        if (download(st, ids[f], &r, err, sizeof err) != 0)
            st->host->log(st->self, IK_LOG_WARN, "batch %s: cannot download %s file %s: %s",
                          b->batch_id, f ? "error" : "output", ids[f], err);
        else
            map_file(b->j, r.body, r.len, b->prefix, b->g, b->ng, b->max_out, b->answered);
        gpt_resp_free(&r);
    }
    snprintf(reason, sizeof reason, "batch %s (%s) returned no result for this request",
             b->batch_id, bi->status);
    settle_rest(b, IK_RETRY, reason);
}

/* One batch: the groups g[0..ng) of round `round`, written, uploaded,
 * created, polled and collected. Every email of them is settled or
 * submitted for the next round when this returns; the server's files are
 * deleted (unless batch_keep_files). */
static void run_batch(job *j, gpt_group *g, size_t ng, int round)
{
    batch_run b = {.j = j, .g = g, .ng = ng, .round = round};
    snprintf(b.prefix, sizeof b.prefix, "r%d-", round);
    b.max_out = calloc(ng, sizeof *b.max_out);
    b.answered = calloc(ng, sizeof *b.answered);
    ik_buf file = {0};
    gpt_batch_info bi;
    if (!b.max_out || !b.answered)
        settle_groups(j, g, ng, NULL, IK_RETRY, "out of memory building the batch");
    else if (write_file(&b, &file) == 0 && upload(&b, &file) == 0) {
        ik_buf_free(&file); /* the server has it */
        if (create_batch(&b, &bi) == 0 && poll_batch(&b, &bi) == 0)
            collect(&b, &bi);
    }
    delete_file(j->st, b.file_id);
    delete_file(j->st, b.out_id);
    delete_file(j->st, b.err_id);
    ik_buf_free(&file);
    free(b.max_out);
    free(b.answered);
}

int gpt_batch_run(job *j, gpt_group *groups, size_t ngroups)
{
    gb_state *st = j->st;
    gpt_group *cur = groups;
    size_t ncur = ngroups;
    int owned = 0; /* round 0's groups belong to the caller */
    int round = 0;
    for (; ncur > 0 && round < MAX_ROUNDS; round++) {
        char reason[IK_REASON_MAX];
        if (gpt_blocked(st, reason, sizeof reason)) {
            settle_groups(j, cur, ncur, NULL, IK_DOWN, reason);
        } else if (gpt_stopping(st)) {
            settle_groups(j, cur, ncur, NULL, IK_RELEASE,
                          "shutting down before the batch was sent");
        } else {
            /* batches of at most batch_max_requests requests and a file
             * size the API takes */
            size_t s = 0;
            while (s < ncur) {
                size_t e = s;
                double bytes = 0;
                while (e < ncur && (long)(e - s) < st->batch_max_requests) {
                    double b = (double)(st->fixed_tokens * 4 + 1024);
                    for (size_t x = 0; x < cur[e].k; x++)
                        b += (double)strlen(j->text[cur[e].idx[x]]) * 1.2;
                    if (e > s && bytes + b > (double)MAX_FILE_BYTES)
                        break;
                    bytes += b;
                    e++;
                }
                run_batch(j, cur + s, e - s, round);
                s = e;
            }
        }
        if (owned) {
            for (size_t i = 0; i < ncur; i++)
                free(cur[i].idx);
            free(cur);
        }
        /* the follow-ups gathered in this round are the next round */
        cur = j->next;
        ncur = j->nnext;
        j->next = NULL;
        j->nnext = j->capnext = 0;
        owned = 1;
    }
    if (ncur > 0) {
        char reason[IK_REASON_MAX];
        snprintf(reason, sizeof reason, "still unanswered after %d batch rounds", round);
        settle_groups(j, cur, ncur, NULL, IK_RETRY, reason);
    }
    if (owned) {
        for (size_t i = 0; i < ncur; i++)
            free(cur[i].idx);
        free(cur);
    }
    return 0;
}
