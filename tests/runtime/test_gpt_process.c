/*
 * test_gpt_process.c: the gpt_batch processor's process(), cost() and
 * health() against the fake host and the mock OpenAI server (started here on
 * 127.0.0.1 on a free port and stopped after each test): mapping by email_id
 * (missing, duplicate, unknown, invalid), split on overflow / truncation /
 * filter / refusal, 429 waits, quota and auth blocks answering IK_DOWN, 5xx and
 * timeouts, Chat Completions and the Azure URL forms, concurrent calls; a
 * lone email's truncated answer handed back for the engine's retry (with a
 * higher output cap next time), and timeouts answered by smaller requests;
 * short per-request email ids, and an allocation failing at each point of
 * mapping an answer back (json-c's constructors are interposed below).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <arpa/inet.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "fake_host.h"
#include "gpt_batch/processor.h"
#include "tokenizer/tokenizer.h"

const ik_plugin *ik_plugin_entry(void);

static char g_src[1024], g_build[1024], g_ranks[1200]; /* test-only paths */

/* ---- allocation failure injection ----
 * The plugin's object files are linked into this test, so these
 * definitions stand in for json-c's: with g_fail_at = N > 0 the Nth call
 * (counted in g_calls) fails as json-c fails on out of memory; otherwise
 * each passes through to json-c (dlsym RTLD_NEXT). Test-only state. */
static long g_calls, g_fail_at;

static int inject_failure(void)
{
    return ++g_calls == g_fail_at;
}

/* The json-c function `name` this file stands in for. */
static void *real(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

typedef json_object *(*new_object_fn)(void);
typedef json_object *(*new_double_s_fn)(double, const char *);
typedef int (*object_add_fn)(json_object *, const char *, json_object *);
typedef int (*deep_copy_fn)(json_object *, json_object **, json_c_shallow_copy_fn *);
typedef const char *(*to_string_fn)(json_object *, int);

json_object *json_object_new_object(void)
{
    static new_object_fn f;
    if (!f)
        f = (new_object_fn)real("json_object_new_object");
    return inject_failure() ? NULL : f();
}

json_object *json_object_new_double_s(double d, const char *ds)
{
    static new_double_s_fn f;
    if (!f)
        f = (new_double_s_fn)real("json_object_new_double_s");
    return inject_failure() ? NULL : f(d, ds);
}

int json_object_object_add(json_object *o, const char *key, json_object *val)
{
    static object_add_fn f;
    if (!f)
        f = (object_add_fn)real("json_object_object_add");
    return inject_failure() ? -1 : f(o, key, val); /* val is not taken on failure */
}

int json_object_deep_copy(json_object *src, json_object **dst, json_c_shallow_copy_fn *fn)
{
    static deep_copy_fn f;
    if (!f)
        f = (deep_copy_fn)real("json_object_deep_copy");
    return inject_failure() ? -1 : f(src, dst, fn);
}

const char *json_object_to_json_string_ext(json_object *o, int flags)
{
    static to_string_fn f;
    if (!f)
        f = (to_string_fn)real("json_object_to_json_string_ext");
    return inject_failure() ? NULL : f(o, flags);
}

typedef struct mock {
    pid_t pid;
    int port;
    char url[128];
} mock;

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &l) != 0) {
        if (s >= 0)
            close(s);
        return -1;
    }
    close(s);
    return ntohs(a.sin_port);
}

/* Starts the mock with extra args (NULL-terminated) and waits for its banner. */
static int mock_start(mock *m, const char *const *extra)
{
    char bin[1200], port[16];
    snprintf(bin, sizeof bin, "%s/tools/mock-openai/mock-openai", g_build);
    m->port = free_port();
    snprintf(port, sizeof port, "%d", m->port);
    snprintf(m->url, sizeof m->url, "http://127.0.0.1:%d/v1", m->port);
    const char *argv[40] = {bin, "--port", port, "--key", "sk-test", "--rank-file", g_ranks};
    size_t n = 7;
    for (; extra && *extra && n < 38; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    int pfd[2];
    if (pipe(pfd) != 0)
        return -1;
    m->pid = fork();
    if (m->pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    char buf[128];
    ssize_t r = read(pfd[0], buf, sizeof buf - 1);
    close(pfd[0]);
    return r > 0 && strncmp(buf, "listening", 9) == 0 ? 0 : -1;
}

static void mock_stop(mock *m)
{
    if (m->pid > 0) {
        kill(m->pid, SIGTERM);
        waitpid(m->pid, NULL, 0);
        m->pid = 0;
    }
}

static size_t collect(char *p, size_t sz, size_t n, void *arg)
{
    char *buf = arg;
    size_t have = strlen(buf), k = sz * n;
    if (have + k < 2048) {
        memcpy(buf + have, p, k);
        buf[have + k] = 0;
    }
    return k;
}

/* POST (body non-NULL) or GET a mock control path; answer into out[2048]. */
static int mock_http(mock *m, const char *path, const char *body, char *out)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", m->port, path);
    out[0] = 0;
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? 0 : -1;
}

static void mock_fault(mock *m, const char *name, int count)
{
    char body[128], out[2048];
    snprintf(body, sizeof body, "{\"fault\":\"%s\",\"count\":%d}", name, count);
    CU_ASSERT_EQUAL(mock_http(m, "/mock/faults", body, out), 0);
}

static long mock_stat(mock *m, const char *key)
{
    char out[2048], pat[64];
    if (mock_http(m, "/mock/stats", NULL, out) != 0)
        return -1;
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(out, pat);
    return p ? atol(p + strlen(pat)) : -1;
}

/* Options: the common ones, then extra name/value pairs. */
typedef struct optset {
    const char *v[80];
    char paths[3][1200];
} optset;

static const char *const *opts_for(optset *o, mock *m, const char *const *extra)
{
    snprintf(o->paths[0], sizeof o->paths[0], "%s/etc/models.conf", g_src);
    snprintf(o->paths[1], sizeof o->paths[1], "%s/etc/extraction.schema.json", g_src);
    snprintf(o->paths[2], sizeof o->paths[2], "%s/etc/prompts/extraction.txt", g_src);
    size_t n = 0;
    /* extras first: the fake host takes the first match */
    for (; extra && extra[0]; extra += 2) {
        o->v[n++] = extra[0];
        o->v[n++] = extra[1];
    }
    const char *common[] = {
        "catalog",        o->paths[0], "schema_file",   o->paths[1], "instructions_file",
        o->paths[2],      "base_url",  m->url,          "api_key",   "sk-test",
        "tokenizer_file", g_ranks,     "quota_recheck", "1h",        NULL};
    for (size_t i = 0; common[i]; i++)
        o->v[n++] = common[i];
    o->v[n] = NULL;
    return o->v;
}

/* The payload of email(i, marker). */
static json_object *email_payload(int i, const char *marker)
{
    char body[512], buf[1024];
    snprintf(
        body, sizeof body,
        "Hello,\n\nCandidate: Person %d Jones\nTitle: Planner %d\nEmail: p%d@example.com\n%s\n", i,
        i, i, marker ? marker : "");
    json_object *p = json_object_new_object();
    snprintf(buf, sizeof buf, "Candidate %d", i);
    json_object_object_add(p, "subject", json_object_new_string(buf));
    json_object_object_add(p, "sender_name", json_object_new_string("Recruiter"));
    json_object_object_add(p, "sender_email", json_object_new_string("rec@agency.com"));
    json_object_object_add(p, "body", json_object_new_string(body));
    return p;
}

/* Record "mail-i": candidate "Person i Jones", marker in the body. */
static ik_record *email(int i, const char *marker)
{
    char buf[64];
    snprintf(buf, sizeof buf, "mail-%d", i);
    return fh_record(buf, email_payload(i, marker));
}

/* 1 when rec got its own extraction (candidate "Person i Jones"). */
static int own_answer(ik_record *rec, int i)
{
    json_object *ext, *name;
    if (!json_object_object_get_ex(rec->payload, "extraction", &ext) ||
        !json_object_object_get_ex(ext, "candidate_name", &name))
        return 0;
    char want[64];
    snprintf(want, sizeof want, "Person %d Jones", i);
    return strcmp(json_object_get_string(name), want) == 0;
}

typedef struct run {
    fake_host fh;
    optset o;
    ik_record *recs[64];
    ik_result res[64];
    size_t n;
} run;

static int run_setup(run *r, mock *m, const char *const *extra)
{
    memset(r, 0, sizeof *r);
    fh_init(&r->fh, ik_plugin_entry(), opts_for(&r->o, m, extra));
    return fh_create(&r->fh);
}

static void run_process(run *r, size_t n, const char *const *markers)
{
    for (size_t i = 0; i < r->n; i++)
        fh_record_free(r->recs[i]);
    r->n = n;
    for (size_t i = 0; i < n; i++)
        r->recs[i] = email((int)i, markers ? markers[i] : NULL);
    memset(r->res, 0, sizeof r->res);
    CU_ASSERT_EQUAL(r->fh.plugin->process(r->fh.state, NULL, r->recs, n, r->res), 0);
}

/* The engine's retry: the same records (payloads and metadata kept) again. */
static void run_again(run *r)
{
    memset(r->res, 0, sizeof r->res);
    CU_ASSERT_EQUAL(r->fh.plugin->process(r->fh.state, NULL, r->recs, r->n, r->res), 0);
}

static void run_free(run *r)
{
    for (size_t i = 0; i < r->n; i++)
        fh_record_free(r->recs[i]);
    fh_free(&r->fh);
}

/* 1 when rec's metadata key is set to want. */
static int meta_is(const ik_record *rec, const char *key, const char *want)
{
    const char *v = fh_meta_get(rec, key);
    if (!v || strcmp(v, want) != 0) {
        fprintf(stderr, "%s: metadata %s is %s, not %s\n", rec->id, key, v ? v : "unset", want);
        return 0;
    }
    return 1;
}

static int reason_has(run *r, size_t i, const char *s)
{
    if (!strstr(r->res[i].reason, s)) {
        fprintf(stderr, "record %zu: reason \"%s\" lacks \"%s\"\n", i, r->res[i].reason, s);
        return 0;
    }
    return 1;
}

/* ---- tests ---- */

static void test_mapping_and_usage(void)
{
    mock m;
    CU_ASSERT_EQUAL_FATAL(mock_start(&m, NULL), 0);
    run r;
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, NULL), 0);
    run_process(&r, 12, NULL);
    for (size_t i = 0; i < 12; i++) {
        CU_ASSERT_EQUAL(r.res[i].status, IK_OK);
        CU_ASSERT(own_answer(r.recs[i], (int)i));
        CU_ASSERT_PTR_NOT_NULL(fh_meta_get(r.recs[i], "gpt_cost_usd"));
        CU_ASSERT_STRING_EQUAL(fh_meta_get(r.recs[i], "gpt_batch_emails"), "12");
        CU_ASSERT(atol(fh_meta_get(r.recs[i], "gpt_input_tokens")) > 0);
        CU_ASSERT(atol(fh_meta_get(r.recs[i], "gpt_output_tokens")) > 0);
    }
    CU_ASSERT_DOUBLE_EQUAL(fh_metric_value(&r.fh, "requests_total"), 1, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(fh_metric_value(&r.fh, "emails_extracted_total"), 12, 1e-9);
    CU_ASSERT(fh_metric_value(&r.fh, "cost_usd_total") > 0);
    CU_ASSERT_DOUBLE_EQUAL(fh_metric_value(&r.fh, "input_tokens_total"),
                           (double)mock_stat(&m, "tokens_in"), 0.5);
    CU_ASSERT_EQUAL(mock_stat(&m, "stored"), 0); /* store:false on every request */
    CU_ASSERT_EQUAL(mock_stat(&m, "responses"), 1);
    /* cost() is the email's token count as rendered */
    uint64_t c = r.fh.plugin->cost(r.fh.state, r.recs[0]);
    CU_ASSERT(c > 20 && c < 200);
    ik_health h;
    CU_ASSERT_EQUAL(r.fh.plugin->health(r.fh.state, &h), 0);
    CU_ASSERT_EQUAL(h.ok, 1);
    CU_ASSERT_PTR_NULL(strstr(fh_log(&r.fh), "sk-test"));
    run_free(&r);
    mock_stop(&m);
}

static void test_missing_invalid_duplicate_unknown(void)
{
    mock m;
    CU_ASSERT_EQUAL_FATAL(mock_start(&m, NULL), 0);
    run r;
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, NULL), 0);
    const char *markers[8] = {NULL,
                              "MOCK_OMIT",
                              NULL,
                              "MOCK_OMIT_IN_BATCH",
                              "MOCK_INVALID",
                              NULL,
                              "MOCK_INVALID_IN_BATCH",
                              NULL};
    run_process(&r, 8, markers);
    CU_ASSERT_EQUAL(r.res[1].status, IK_FAIL);
    CU_ASSERT(reason_has(&r, 1, "model omitted this email"));
    CU_ASSERT_EQUAL(r.res[3].status, IK_OK); /* answered in a smaller request */
    CU_ASSERT(own_answer(r.recs[3], 3));
    CU_ASSERT_EQUAL(r.res[4].status, IK_FAIL);
    /* the mock breaks a value's type (no confidence is asked by default) */
    CU_ASSERT(reason_has(&r, 4, "invalid result from the model: $.candidate_name: expected"));
    CU_ASSERT_EQUAL(r.res[6].status, IK_OK); /* retried alone */
    CU_ASSERT(own_answer(r.recs[6], 6));
    for (size_t i = 0; i < 8; i += (i == 0 ? 2 : i == 2 ? 3 : 2))
        CU_ASSERT(own_answer(r.recs[i], (int)i));
    CU_ASSERT(fh_metric_value(&r.fh, "omitted_total") >= 2);
    CU_ASSERT(fh_metric_value(&r.fh, "invalid_results_total") >= 2);
    /* a duplicate and an unknown id are dropped and counted */
    const char *faults[] = {"duplicate", "unknown"};
    for (size_t f = 0; f < 2; f++) {
        mock_fault(&m, faults[f], 1);
        run_process(&r, 5, NULL);
        for (size_t i = 0; i < 5; i++) {
            CU_ASSERT_EQUAL(r.res[i].status, IK_OK);
            CU_ASSERT(own_answer(r.recs[i], (int)i));
        }
    }
    CU_ASSERT_DOUBLE_EQUAL(fh_metric_value(&r.fh, "duplicate_results_total"), 1, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(fh_metric_value(&r.fh, "unknown_results_total"), 1, 1e-9);
    run_free(&r);
    mock_stop(&m);
}

static void test_split_on_overflow(void)
{
    /* the server takes ~3 emails per request: 10 must be split down */
    /* the prefix (instructions + schema) as the plugin counts it, from its log */
    mock m = {0};
    snprintf(m.url, sizeof m.url, "http://127.0.0.1:9/v1");
    run r;
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, NULL), 0);
    const char *pp = strstr(fh_log(&r.fh), "prompt prefix ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(pp);
    long prefix = atol(pp + 14);
    CU_ASSERT(prefix > 500);
    fh_free(&r.fh);
    char maxin[32];
    snprintf(maxin, sizeof maxin, "%ld", prefix + 170); /* about 3 emails */
    const char *args[] = {"--max-input", maxin, NULL};
    CU_ASSERT_EQUAL_FATAL(mock_start(&m, args), 0);
    /* one request in flight at most: the halves must not wait for their parent */
    const char *one[] = {"concurrency_max", "1", NULL};
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, one), 0);
    run_process(&r, 10, NULL);
    for (size_t i = 0; i < 10; i++) {
        CU_ASSERT_EQUAL(r.res[i].status, IK_OK);
        CU_ASSERT(own_answer(r.recs[i], (int)i));
    }
    CU_ASSERT(fh_metric_value(&r.fh, "splits_total") >= 2);
    run_free(&r);
    mock_stop(&m);
    /* when one email alone is too large it fails with the reason */
    const char *tiny[] = {"--max-input", "200", NULL};
    CU_ASSERT_EQUAL_FATAL(mock_start(&m, tiny), 0);
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, NULL), 0);
    run_process(&r, 2, NULL);
    for (size_t i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(r.res[i].status, IK_FAIL);
        CU_ASSERT(reason_has(&r, i, "context_length_exceeded"));
    }
    run_free(&r);
    mock_stop(&m);
}

static void test_truncation_filter_refusal(void)
{
    mock m;
    CU_ASSERT_EQUAL_FATAL(mock_start(&m, NULL), 0);
    run r;
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, NULL), 0);
    /* reasoning used the whole budget, then cut JSON: split, no email lost */
    mock_fault(&m, "incomplete", 1);
    mock_fault(&m, "truncated", 1);
    run_process(&r, 6, NULL);
    for (size_t i = 0; i < 6; i++) {
        CU_ASSERT_EQUAL(r.res[i].status, IK_OK);
        CU_ASSERT(own_answer(r.recs[i], (int)i));
    }
    CU_ASSERT(fh_metric_value(&r.fh, "splits_total") >= 2);
    /* the content filter and a refusal are isolated to their email */
    const char *markers[7] = {NULL, NULL, "MOCK_CONTENT_FILTER", NULL, NULL, "MOCK_REFUSE", NULL};
    run_process(&r, 7, markers);
    for (size_t i = 0; i < 7; i++) {
        if (i == 2) {
            CU_ASSERT_EQUAL(r.res[i].status, IK_FAIL);
            CU_ASSERT(reason_has(&r, i, "content filter"));
        } else if (i == 5) {
            CU_ASSERT_EQUAL(r.res[i].status, IK_FAIL);
            CU_ASSERT(reason_has(&r, i, "model refused: I'm sorry"));
        } else {
            CU_ASSERT_EQUAL(r.res[i].status, IK_OK);
            CU_ASSERT(own_answer(r.recs[i], (int)i));
        }
    }
    /* output cap too small for even one email: split down to one, which is
     * handed back for the engine's retry with the reason; the cap cannot
     * grow past the configured one, and the reason says so */
    run_free(&r);
    const char *cap[] = {
        "max_output_tokens", "40", "reasoning_reserve", "0", "output_tokens_per_email", "1", NULL};
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, cap), 0);
    run_process(&r, 2, NULL);
    for (int again = 0; again < 2; again++) {
        for (size_t i = 0; i < 2; i++) {
            CU_ASSERT_EQUAL(r.res[i].status, IK_RETRY);
            CU_ASSERT(reason_has(&r, i, "output truncated at max_output_tokens=40"));
            CU_ASSERT(reason_has(&r, i, "highest cap allowed"));
            CU_ASSERT(meta_is(r.recs[i], "gpt_truncated_at", "40"));
        }
        run_again(&r);
    }
    run_free(&r);
    mock_stop(&m);
}

/* A lone email whose answer was cut off is not dead-lettered at once: it
 * is IK_RETRY with the reason (the engine retries it and, its attempts
 * spent, dead-letters it with that reason), and the next attempt asks for
 * twice the output cap it was cut at. */
static void test_lone_truncation_is_retried(void)
{
    mock m;
    const char *think[] = {"--reasoning", "300", NULL}; /* ~300 tokens of reasoning per email */
    CU_ASSERT_EQUAL_FATAL(mock_start(&m, think), 0);
    run r;
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, NULL), 0);
    /* status incomplete (max_output_tokens), then a complete answer */
    mock_fault(&m, "incomplete", 1);
    run_process(&r, 1, NULL);
    CU_ASSERT_EQUAL(r.res[0].status, IK_RETRY);
    CU_ASSERT(reason_has(&r, 0, "output truncated at max_output_tokens="));
    CU_ASSERT_PTR_NOT_NULL(fh_meta_get(r.recs[0], "gpt_truncated_at"));
    run_again(&r);
    CU_ASSERT_EQUAL(r.res[0].status, IK_OK);
    CU_ASSERT(own_answer(r.recs[0], 0));
    /* JSON cut short in a "completed" answer: retried too (no cap noted) */
    mock_fault(&m, "truncated", 1);
    run_process(&r, 1, NULL);
    CU_ASSERT_EQUAL(r.res[0].status, IK_RETRY);
    CU_ASSERT(reason_has(&r, 0, "unusable model output"));
    CU_ASSERT_PTR_NULL(fh_meta_get(r.recs[0], "gpt_truncated_at"));
    run_again(&r);
    CU_ASSERT_EQUAL(r.res[0].status, IK_OK);
    run_free(&r);
    /* the cap the plugin asks for (2 * 1 + 256, nothing learned) is below
     * what the model writes for one email: cut off at 258; the retry goes
     * alone with 516, which is enough */
    const char *small[] = {
        "reasoning_reserve", "0", "output_tokens_per_email", "1", "learn_estimates", "false", NULL};
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, small), 0);
    run_process(&r, 1, NULL);
    CU_ASSERT_EQUAL(r.res[0].status, IK_RETRY);
    CU_ASSERT(reason_has(&r, 0, "output truncated at max_output_tokens=258 "));
    CU_ASSERT(meta_is(r.recs[0], "gpt_truncated_at", "258"));
    /* packed with a fresh email, the cut-off one still goes alone */
    r.recs[1] = email(1, NULL);
    r.n = 2;
    long before = mock_stat(&m, "requests");
    run_again(&r);
    CU_ASSERT_EQUAL(r.res[0].status, IK_OK);
    CU_ASSERT(own_answer(r.recs[0], 0));
    CU_ASSERT_EQUAL(r.res[1].status, IK_RETRY); /* alone at 258: cut off */
    CU_ASSERT_EQUAL(mock_stat(&m, "requests") - before, 2);
    /* a cut-off cap in metadata past what doubles in a long (the metadata
     * may come from outside): the highest cap, no overflow (UBSan) */
    r.fh.host.record_set_meta(r.recs[1], "gpt_truncated_at", "9223372036854775807");
    run_again(&r);
    CU_ASSERT_EQUAL(r.res[1].status, IK_OK);
    CU_ASSERT(own_answer(r.recs[1], 1));
    run_free(&r);
    mock_stop(&m);
}

static void test_rate_limit_waits(void)
{
    const char *args[] = {"--retry-header", "ms", NULL};
    mock m;
    CU_ASSERT_EQUAL_FATAL(mock_start(&m, args), 0);
    run r;
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, NULL), 0);
    mock_fault(&m, "rate_limit", 2);
    run_process(&r, 4, NULL);
    for (size_t i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(r.res[i].status, IK_OK);
    CU_ASSERT_DOUBLE_EQUAL(fh_metric_value(&r.fh, "rate_limited_total"), 2, 1e-9);
    CU_ASSERT_EQUAL(mock_stat(&m, "requests"), 3);
    run_free(&r);
    /* out of waits: handed back as RETRY with the API's message */
    const char *few[] = {"rate_limit_retries", "1", NULL};
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, few), 0);
    mock_fault(&m, "rate_limit", 2);
    run_process(&r, 2, NULL);
    for (size_t i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(r.res[i].status, IK_RETRY);
        CU_ASSERT(reason_has(&r, i, "rate_limit_exceeded"));
    }
    /* "Request too large" is not retried: split down, then failed */
    mock_fault(&m, "too_large", 3);
    run_process(&r, 2, NULL);
    for (size_t i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(r.res[i].status, IK_FAIL);
        CU_ASSERT(reason_has(&r, i, "Request too large"));
    }
    run_free(&r);
    mock_stop(&m);
}

static void test_quota_and_auth_down(void)
{
    mock m;
    CU_ASSERT_EQUAL_FATAL(mock_start(&m, NULL), 0);
    run r;
    const char *recheck[] = {"quota_recheck", "200ms", NULL};
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, recheck), 0);
    mock_fault(&m, "insufficient_quota", 1);
    run_process(&r, 3, NULL);
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(r.res[i].status, IK_DOWN);
        CU_ASSERT(reason_has(&r, i, "insufficient_quota"));
    }
    ik_health h;
    r.fh.plugin->health(r.fh.state, &h);
    CU_ASSERT_EQUAL(h.ok, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(h.reason, "insufficient_quota"));
    /* while blocked nothing is sent: the engine's probe calls answer down */
    long before = mock_stat(&m, "requests");
    run_process(&r, 2, NULL);
    CU_ASSERT_EQUAL(r.res[0].status, IK_DOWN);
    CU_ASSERT_EQUAL(r.res[1].status, IK_DOWN);
    CU_ASSERT_EQUAL(mock_stat(&m, "requests"), before);
    /* after quota_recheck one request probes; it succeeds and sending resumes */
    usleep(300000);
    run_process(&r, 2, NULL);
    CU_ASSERT_EQUAL(r.res[0].status, IK_OK);
    CU_ASSERT_EQUAL(r.res[1].status, IK_OK);
    r.fh.plugin->health(r.fh.state, &h);
    CU_ASSERT_EQUAL(h.ok, 1);
    run_free(&r);
    /* a rejected key: down, unhealthy, and the key never logged */
    const char *wrong[] = {"api_key", "sk-wrong-secret", NULL};
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, wrong), 0);
    run_process(&r, 2, NULL);
    CU_ASSERT_EQUAL(r.res[0].status, IK_DOWN);
    CU_ASSERT_EQUAL(r.res[1].status, IK_DOWN);
    CU_ASSERT(reason_has(&r, 0, "HTTP 401"));
    r.fh.plugin->health(r.fh.state, &h);
    CU_ASSERT_EQUAL(h.ok, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(h.reason, "401"));
    CU_ASSERT_PTR_NULL(strstr(fh_log(&r.fh), "sk-wrong-secret"));
    CU_ASSERT_PTR_NULL(strstr(r.res[0].reason, "sk-wrong-secret"));
    run_free(&r);
    mock_stop(&m);
}

static void test_server_errors_and_timeouts(void)
{
    const char *args[] = {"--timeout-sleep-ms", "1500", NULL};
    mock m;
    CU_ASSERT_EQUAL_FATAL(mock_start(&m, args), 0);
    run r;
    const char *fast[] = {"timeout", "300ms", NULL};
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, fast), 0);
    mock_fault(&m, "server_error", 1);
    run_process(&r, 2, NULL);
    CU_ASSERT_EQUAL(r.res[0].status, IK_RETRY);
    CU_ASSERT(reason_has(&r, 0, "HTTP 500"));
    mock_fault(&m, "overloaded", 1);
    run_process(&r, 2, NULL);
    CU_ASSERT_EQUAL(r.res[1].status, IK_RETRY);
    CU_ASSERT(reason_has(&r, 1, "HTTP 503"));
    /* a timeout splits the request: each half is answered */
    mock_fault(&m, "timeout", 1);
    run_process(&r, 2, NULL);
    for (size_t i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(r.res[i].status, IK_OK);
        CU_ASSERT(own_answer(r.recs[i], (int)i));
    }
    CU_ASSERT_DOUBLE_EQUAL(fh_metric_value(&r.fh, "splits_total"), 1, 1e-9);
    /* a lone email that times out is handed back */
    mock_fault(&m, "timeout", 1);
    run_process(&r, 1, NULL);
    CU_ASSERT_EQUAL(r.res[0].status, IK_RETRY);
    CU_ASSERT(reason_has(&r, 0, "request timed out"));
    run_free(&r);
    mock_stop(&m);
    /* nothing listening: connection error, RETRY */
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, NULL), 0);
    run_process(&r, 1, NULL);
    CU_ASSERT_EQUAL(r.res[0].status, IK_RETRY);
    CU_ASSERT(reason_has(&r, 0, "connection failed"));
    run_free(&r);
}

/* The decision after a timeout: split while the request holds several
 * emails and no lone email of the call timed out, else hand back. */
static void test_timeout_decision(void)
{
    CU_ASSERT_EQUAL(gpt_after_timeout(50, 0), GPT_TIMEOUT_SPLIT);
    CU_ASSERT_EQUAL(gpt_after_timeout(2, 0), GPT_TIMEOUT_SPLIT);
    CU_ASSERT_EQUAL(gpt_after_timeout(1, 0), GPT_TIMEOUT_RETRY);
    CU_ASSERT_EQUAL(gpt_after_timeout(1, 1), GPT_TIMEOUT_RETRY);
    CU_ASSERT_EQUAL(gpt_after_timeout(50, 1), GPT_TIMEOUT_RETRY);
}

/* The API is slower than the request timeout for a large request but not
 * for a small one (the mock's latency grows with the output): the request
 * is split until the pieces finish in time, and every email is answered
 * in this one call. */
static void test_timeouts_shrink_requests(void)
{
    /* the mock writes ~150 output tokens per email with the model's
     * confidence; at 500 tokens/s a request of 8 takes ~2.4 s and one of 4
     * ~1.2 s, past the 1 s timeout (the mock sleeps that long), while one
     * of 2 takes ~0.65 s */
    const char *args[] = {"--tps", "500", "--ttft-ms", "50", NULL};
    mock m;
    CU_ASSERT_EQUAL_FATAL(mock_start(&m, args), 0);
    run r;
    const char *tmo[] = {"timeout", "1s", "model_confidence", "true", NULL};
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, tmo), 0);
    run_process(&r, 8, NULL);
    for (size_t i = 0; i < 8; i++) {
        CU_ASSERT_EQUAL(r.res[i].status, IK_OK);
        CU_ASSERT(own_answer(r.recs[i], (int)i));
    }
    /* the 8 and both 4s timed out and were split; the 2s were answered */
    CU_ASSERT(fh_metric_value(&r.fh, "splits_total") >= 3);
    CU_ASSERT(mock_stat(&m, "requests") >= 7);
    CU_ASSERT(mock_stat(&m, "tokens_out") / mock_stat(&m, "emails") >= 125); /* as assumed */
    run_free(&r);
    mock_stop(&m);
}

/* A server that answers nothing in time: the split goes down to one email
 * (log2(n) + 1 requests), and once that lone email timed out the rest of
 * the call is handed back unsent instead of waiting out more timeouts. */
static void test_timeouts_when_nothing_answers(void)
{
    const char *args[] = {"--timeout-sleep-ms", "1500", NULL};
    mock m;
    CU_ASSERT_EQUAL_FATAL(mock_start(&m, args), 0);
    run r;
    const char *tmo[] = {"timeout", "250ms", NULL};
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, tmo), 0);
    mock_fault(&m, "timeout", 100);
    run_process(&r, 8, NULL);
    for (size_t i = 0; i < 8; i++) {
        CU_ASSERT_EQUAL(r.res[i].status, IK_RETRY);
        CU_ASSERT(reason_has(&r, i, "request timed out"));
    }
    CU_ASSERT(reason_has(&r, 0, "request timed out")); /* the lone one */
    CU_ASSERT(reason_has(&r, 7, "not sent: a request of one email timed out"));
    CU_ASSERT_EQUAL(mock_stat(&m, "requests"), 4); /* 8, 4, 2, 1 */
    run_free(&r);
    mock_stop(&m);
}

/* A gateway that gives up waiting answers 504: the same as a timeout of
 * our own (the mock's timeout fault answers 504 when the client waits). */
static void test_gateway_timeout_splits(void)
{
    const char *args[] = {"--timeout-sleep-ms", "20", NULL};
    mock m;
    CU_ASSERT_EQUAL_FATAL(mock_start(&m, args), 0);
    run r;
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, NULL), 0);
    mock_fault(&m, "timeout", 1);
    run_process(&r, 4, NULL);
    for (size_t i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(r.res[i].status, IK_OK);
        CU_ASSERT(own_answer(r.recs[i], (int)i));
    }
    CU_ASSERT_DOUBLE_EQUAL(fh_metric_value(&r.fh, "splits_total"), 1, 1e-9);
    CU_ASSERT_EQUAL(mock_stat(&m, "requests"), 3);
    mock_fault(&m, "timeout", 2);
    run_process(&r, 3, NULL); /* 3 -> 1 (504, handed back), and 2 not sent */
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(r.res[i].status, IK_RETRY);
        CU_ASSERT(reason_has(&r, i, "HTTP 504"));
    }
    CU_ASSERT_EQUAL(mock_stat(&m, "requests"), 5);
    run_free(&r);
    mock_stop(&m);
}

static void test_chat_and_azure(void)
{
    mock m;
    CU_ASSERT_EQUAL_FATAL(mock_start(&m, NULL), 0);
    char base[128];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", m.port);
    const char *chat[] = {"api", "chat", NULL};
    const char *az_dated[] = {
        "provider",   "azure", "base_url", base, "azure_deployment", "dep1", "azure_api_version",
        "2024-10-21", "api",   "chat",     NULL};
    const char *az_resp[] = {"provider",
                             "azure",
                             "base_url",
                             base,
                             "azure_deployment",
                             "dep1",
                             "azure_api_version",
                             "2025-04-01-preview",
                             NULL};
    const char *az_v1[] = {"provider", "azure", "base_url", base, "azure_deployment", "dep1", NULL};
    const char *const *cases[] = {chat, az_dated, az_resp, az_v1};
    for (size_t c = 0; c < 4; c++) {
        run r;
        CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, cases[c]), 0);
        run_process(&r, 3, NULL);
        for (size_t i = 0; i < 3; i++) {
            CU_ASSERT_EQUAL(r.res[i].status, IK_OK);
            CU_ASSERT(own_answer(r.recs[i], (int)i));
        }
        if (c == 1 || c == 3)
            CU_ASSERT_STRING_EQUAL(fh_meta_get(r.recs[0], "gpt_model"), "dep1");
        run_free(&r);
    }
    CU_ASSERT_EQUAL(mock_stat(&m, "chat"), 2);
    CU_ASSERT_EQUAL(mock_stat(&m, "responses"), 2);
    mock_stop(&m);
}

typedef struct worker {
    run *r;
    size_t from, n;
    ik_result res[16];
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    w->r->fh.plugin->process(w->r->fh.state, NULL, w->r->recs + w->from, w->n, w->res);
    return NULL;
}

static void test_concurrent_calls(void)
{
    const char *args[] = {"--ttft-ms", "50", NULL};
    mock m;
    CU_ASSERT_EQUAL_FATAL(mock_start(&m, args), 0);
    run r;
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, NULL), 0);
    r.n = 40;
    for (size_t i = 0; i < r.n; i++)
        r.recs[i] = email((int)i, NULL);
    pthread_t t[4];
    worker w[4];
    for (int k = 0; k < 4; k++) {
        memset(&w[k], 0, sizeof w[k]);
        w[k].r = &r;
        w[k].from = (size_t)k * 10;
        w[k].n = 10;
        pthread_create(&t[k], NULL, work, &w[k]);
    }
    for (int k = 0; k < 4; k++)
        pthread_join(t[k], NULL);
    for (int k = 0; k < 4; k++)
        for (size_t i = 0; i < 10; i++) {
            CU_ASSERT_EQUAL(w[k].res[i].status, IK_OK);
            CU_ASSERT(own_answer(r.recs[w[k].from + i], (int)(w[k].from + i)));
        }
    CU_ASSERT(mock_stat(&m, "max_inflight") >= 2);
    run_free(&r);
    mock_stop(&m);
}

static void test_create_rejects(void)
{
    mock m = {0};
    snprintf(m.url, sizeof m.url, "http://127.0.0.1:9/v1");
    run r;
    const char *effort[] = {"reasoning_effort", "xhigh", NULL};
    CU_ASSERT_EQUAL(run_setup(&r, &m, effort), IK_E_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&r.fh), "not accepted by model gpt-5-mini"));
    fh_free(&r.fh);
    const char *nokey[] = {"api_key",  "",     "api_key_env", "IKGPT_TEST_UNSET_KEY",
                           "fallback", "none", NULL};
    unsetenv("IKGPT_TEST_UNSET_KEY");
    CU_ASSERT_EQUAL(run_setup(&r, &m, nokey), IK_E_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&r.fh), "no API key"));
    fh_free(&r.fh);
    const char *badfallback[] = {"fallback", "maybe", NULL};
    CU_ASSERT_EQUAL(run_setup(&r, &m, badfallback), IK_E_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&r.fh), "option 'fallback'"));
    fh_free(&r.fh);
    const char *badsum[] = {"tokenizer_sha256", "abcd", NULL};
    CU_ASSERT_EQUAL(run_setup(&r, &m, badsum), IK_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&r.fh), "SHA-256"));
    fh_free(&r.fh);
    /* without a rank file: estimates, said once at create */
    const char *notok[] = {"tokenizer_file", "", NULL};
    unsetenv("INTAKE_O200K_FILE");
    CU_ASSERT_EQUAL(run_setup(&r, &m, notok), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&r.fh), "estimates (bytes/3"));
    ik_record *rec = email(1, NULL);
    CU_ASSERT(r.fh.plugin->cost(r.fh.state, rec) > 0);
    fh_record_free(rec);
    fh_free(&r.fh);
}

/* ---- confidence from grounding, compact wire keys ---- */

/* rec's extraction without its confidence, as JSON text (caller frees). */
static char *ext_without_confidence(ik_record *rec)
{
    json_object *ext = NULL, *copy = NULL;
    if (!json_object_object_get_ex(rec->payload, "extraction", &ext) ||
        json_object_deep_copy(ext, &copy, NULL) != 0)
        return strdup("(none)");
    json_object_object_del(copy, "confidence");
    char *s = strdup(json_object_to_json_string_ext(copy, JSON_C_TO_STRING_PLAIN));
    json_object_put(copy);
    return s;
}

/* The confidence rec's extraction gives field, -1 when none. */
static double conf_of(ik_record *rec, const char *field)
{
    json_object *ext, *c, *v;
    if (!json_object_object_get_ex(rec->payload, "extraction", &ext) ||
        !json_object_object_get_ex(ext, "confidence", &c) ||
        !json_object_object_get_ex(c, field, &v))
        return -1;
    return json_object_get_double(v);
}

/* The same emails through the mock with the model's confidence, with the
 * default (confidence from grounding) and with compact keys: the
 * extractions are equal but for the confidence; compact keys change
 * nothing delivered; each option shortens the answer the mock writes. */
static void test_same_extraction_every_setting(void)
{
    const char *const settings[4][5] = {
        {"model_confidence", "true", NULL},
        {NULL},
        {"compact_keys", "true", NULL},
        {"model_confidence", "true", "compact_keys", "true", NULL},
    };
    const char *markers[6] = {NULL, NULL, "MOCK_UNGROUNDED", NULL, NULL, NULL};
    char *ext[4][6] = {{0}};
    double conf[4][6][3];
    long out[4];
    for (int k = 0; k < 4; k++) {
        mock m;
        CU_ASSERT_EQUAL_FATAL(mock_start(&m, NULL), 0);
        run r;
        CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, settings[k][0] ? settings[k] : NULL), 0);
        run_process(&r, 6, markers);
        for (size_t i = 0; i < 6; i++) {
            CU_ASSERT_EQUAL(r.res[i].status, IK_OK);
            if (r.res[i].status != IK_OK)
                fprintf(stderr, "setting %d, email %zu: status %d: %s\n%s\n", k, i,
                        (int)r.res[i].status, r.res[i].reason, i == 0 ? fh_log(&r.fh) : "");
            CU_ASSERT(own_answer(r.recs[i], (int)i));
            ext[k][i] = ext_without_confidence(r.recs[i]);
            conf[k][i][0] = conf_of(r.recs[i], "candidate_name");
            conf[k][i][1] = conf_of(r.recs[i], "phone");
            conf[k][i][2] = conf_of(r.recs[i], "industry");
        }
        out[k] = mock_stat(&m, "tokens_out");
        run_free(&r);
        mock_stop(&m);
    }
    for (size_t i = 0; i < 6; i++)
        for (int k = 1; k < 4; k++) {
            if (strcmp(ext[0][i], ext[k][i]) != 0)
                fprintf(stderr, "setting %d, email %zu:\n  %s\n  %s\n", k, i, ext[0][i], ext[k][i]);
            CU_ASSERT_STRING_EQUAL(ext[0][i], ext[k][i]);
        }
    /* the model's own confidence (the mock says 0.9 for a value, 0 for
     * null), unchanged by compact keys */
    CU_ASSERT_DOUBLE_EQUAL(conf[0][0][0], 0.9, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(conf[0][0][2], 0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(conf[3][0][0], 0.9, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(conf[3][0][2], 0, 1e-9);
    /* from grounding: the name is in the email verbatim, the invented
     * phone is not found, a null industry is 0 */
    for (int k = 1; k <= 2; k++) {
        CU_ASSERT_DOUBLE_EQUAL(conf[k][0][0], 0.9, 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(conf[k][2][1], 0.2, 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(conf[k][0][2], 0, 1e-9);
    }
    /* shorter answers: no confidence object, then short keys */
    CU_ASSERT(out[1] < out[0] * 3 / 4);
    CU_ASSERT(out[2] < out[1]);
    CU_ASSERT(out[3] < out[0]);
    for (int k = 0; k < 4; k++)
        for (size_t i = 0; i < 6; i++)
            free(ext[k][i]);
}

/* The wire schema: no confidence by default, short names with the schema
 * name first in each description, and answers mapped back by them. */
static void test_wire_schema(void)
{
    char path[1300], err[300];
    snprintf(path, sizeof path, "%s/etc/extraction.schema.json", g_src);
    json_object *ext = json_object_from_file(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ext);
    json_object *strict = gpt_strict_schema(ext, err, sizeof err), *back = NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(strict);
    json_object *w = gpt_wire_schema(strict, ext, 0, 0, &back, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_PTR_NULL(back);
    const char *js = json_object_to_json_string_ext(w, JSON_C_TO_STRING_PLAIN);
    CU_ASSERT_PTR_NULL(strstr(js, "confidence"));
    CU_ASSERT_PTR_NOT_NULL(strstr(js, "\"candidate_name\":{"));
    json_object_put(w);
    w = gpt_wire_schema(strict, ext, 0, 1, &back, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_PTR_NOT_NULL_FATAL(back);
    js = json_object_to_json_string_ext(w, JSON_C_TO_STRING_PLAIN);
    CU_ASSERT_PTR_NULL(strstr(js, "\"candidate_name\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(js, "\"cn\":{\"type\":[\"string\",\"null\"],\"description\":"
                                      "\"candidate_name: Full name"));
    CU_ASSERT_PTR_NOT_NULL(strstr(js, "\"required\":[\"ei\",\"cn\",\"jt\",\"l\",\"c\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(js, "\"description\":\"city: City name as written.\""));
    /* an answer in wire names comes back in the schema's */
    json_object *res = NULL;
    CU_ASSERT_EQUAL(gpt_parse_results_wire("{\"results\":[{\"ei\":\"a\",\"cn\":\"Ann Lee\","
                                           "\"l\":{\"c\":\"Austin\",\"s\":null},\"p\":null}]}",
                                           back, &res, err, sizeof err),
                    0);
    CU_ASSERT_STRING_EQUAL(
        json_object_to_json_string_ext(json_object_array_get_idx(res, 0), JSON_C_TO_STRING_PLAIN),
        "{\"email_id\":\"a\",\"candidate_name\":\"Ann Lee\",\"location\":{"
        "\"city\":\"Austin\",\"state\":null},\"phone\":null}");
    json_object_put(res);
    /* one field under two names: the output is unusable, and says where */
    CU_ASSERT_EQUAL(gpt_parse_results_wire(
                        "{\"results\":[{\"ei\":\"a\",\"cn\":\"A\",\"candidate_name\":\"B\"}]}",
                        back, &res, err, sizeof err),
                    IK_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "results[0].candidate_name: property candidate_name given "
                                       "twice"));
    CU_ASSERT_PTR_NULL(res);
    json_object_put(w);
    json_object_put(back);
    /* the model's confidence, compact: the confidence object's fields too */
    w = gpt_wire_schema(strict, ext, 1, 1, &back, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    js = json_object_to_json_string_ext(w, JSON_C_TO_STRING_PLAIN);
    CU_ASSERT_PTR_NOT_NULL(strstr(js, "\"co\":{\"type\":\"object\",\"description\":\"confidence:"));
    json_object_put(w);
    json_object_put(back);
    json_object_put(strict);
    /* a confidence that grounding cannot fill is refused at start-up */
    json_object *props = json_object_object_get(ext, "properties");
    json_object_object_add(
        json_object_object_get(json_object_object_get(props, "confidence"), "properties"),
        "industry", json_tokener_parse("{\"type\":\"string\"}"));
    strict = gpt_strict_schema(ext, err, sizeof err);
    CU_ASSERT_PTR_NULL(gpt_wire_schema(strict, ext, 0, 0, &back, err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "$.confidence.industry must be a number"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "model_confidence = true"));
    w = gpt_wire_schema(strict, ext, 1, 0, &back, err, sizeof err); /* the model fills it */
    CU_ASSERT_PTR_NOT_NULL(w);
    json_object_put(w);
    json_object_put(strict);
    json_object_put(ext);
}

static double conf_of_ext(json_object *ext, const char *field)
{
    json_object *c, *v;
    if (!json_object_object_get_ex(ext, "confidence", &c) ||
        !json_object_object_get_ex(c, field, &v))
        return -1;
    return json_object_get_double(v);
}

/* Confidence from grounding: verbatim, after normalisation, not found,
 * null; an object counts as its weakest value. */
static void test_fill_confidence(void)
{
    char path[1300];
    snprintf(path, sizeof path, "%s/etc/extraction.schema.json", g_src);
    json_object *schema = json_object_from_file(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(schema);
    const char *t = "From: Nat Burke <Nat.Burke@Example.com>\n\nNatalie  Burke, Austin, TX\n"
                    "Phone: (512) 555-0142\n";
    json_object *ext = json_tokener_parse(
        "{\"candidate_name\":\"Natalie Burke\",\"job_title\":null,\"location\":{\"city\":"
        "\"Austin\",\"state\":\"Texas\"},\"company_name\":\"\",\"referrer_name\":null,"
        "\"phone\":\"(512) 555-0142\",\"email\":\"nat.burke@example.com\",\"website\":null,"
        "\"linkedin_url\":\"https://linkedin.com/in/nb\",\"industry\":null}");
    CU_ASSERT_EQUAL_FATAL(gpt_fill_confidence(schema, ext, t, strlen(t)), 0);
    const char *want[][2] = {{"candidate_name", "0.6"}, /* whitespace differs */
                             {"job_title", "0"},        {"location", "0.2"}, /* Texas: not found */
                             {"company_name", "0"},     {"referrer_name", "0"},  {"phone", "0.9"},
                             {"email", "0.6"}, /* case differs */
                             {"website", "0"},          {"linkedin_url", "0.2"}, {"industry", "0"}};
    json_object *c = json_object_object_get(ext, "confidence");
    CU_ASSERT_EQUAL(json_object_object_length(c), 10);
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        json_object *v = json_object_object_get(c, want[i][0]);
        const char *got = v ? json_object_to_json_string(v) : "(missing)";
        if (strcmp(got, want[i][1]) != 0)
            fprintf(stderr, "%s: %s, want %s\n", want[i][0], got, want[i][1]);
        CU_ASSERT_STRING_EQUAL(got, want[i][1]);
    }
    char why[300];
    CU_ASSERT_EQUAL(gpt_validate(schema, ext, why, sizeof why), 0);
    /* a city alone, verbatim */
    json_object_object_add(ext, "location",
                           json_tokener_parse("{\"city\":\"Austin\",\"state\":null}"));
    CU_ASSERT_EQUAL(gpt_fill_confidence(schema, ext, t, strlen(t)), 0);
    CU_ASSERT_DOUBLE_EQUAL(conf_of_ext(ext, "location"), 0.9, 1e-9);
    json_object_put(ext);
    json_object_put(schema);
}

/* Message-IDs as the file source gives .eml input (angle brackets gone),
 * and one with every character the id attribute escapes. */
static const char *const long_ids[] = {
    "CAF=k3jd8Qx0vNn2Lr7Ys4Wt1Ze6Ub9Hc5Mg+pA@mail.gmail.com",
    "SN6PR04MB4925D1C2A6F1B3E8F4A7C9D2B8E0A@SN6PR04MB4925.namprd04.prod.outlook.com",
    "\"quoted\" & <odd>@example.org"};

/* process() of n records with the given ids and the payloads of email(i). */
static void run_process_ids(run *r, size_t n, const char *const *ids)
{
    for (size_t i = 0; i < r->n; i++)
        fh_record_free(r->recs[i]);
    r->n = n;
    for (size_t i = 0; i < n; i++)
        r->recs[i] = fh_record(ids[i], email_payload((int)i, NULL));
    memset(r->res, 0, sizeof r->res);
    CU_ASSERT_EQUAL(r->fh.plugin->process(r->fh.state, NULL, r->recs, n, r->res), 0);
}

/* A job over the records of r, blocks rendered as process() renders them;
 * free with job_free. */
static void job_init(job *j, run *r)
{
    memset(j, 0, sizeof *j);
    j->st = r->fh.state;
    j->recs = r->recs;
    j->res = r->res;
    j->text = calloc(r->n, sizeof *j->text);
    j->tok = calloc(r->n, sizeof *j->tok);
    j->done = calloc(r->n, sizeof *j->done);
    for (size_t i = 0; i < r->n; i++) {
        j->text[i] = gpt_render_email(GPT_BLOCK_ID, r->recs[i]->payload, NULL);
        j->tok[i] = 50;
    }
    memset(r->res, 0, sizeof r->res);
}

static void job_free(job *j, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(j->text[i]);
    free(j->text);
    free(j->tok);
    free(j->done);
}

/* Each email of a request carries its position there as its id, whatever
 * its record id: long Message-IDs cost no more tokens than short ids, in
 * and out, and answers still come back to their records. */
static void test_short_ids(void)
{
    mock m;
    CU_ASSERT_EQUAL_FATAL(mock_start(&m, NULL), 0);
    run r;
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, NULL), 0);
    const char *const short_ids[] = {"a", "b", "c"};
    long in0 = mock_stat(&m, "tokens_in"), out0 = mock_stat(&m, "tokens_out");
    run_process_ids(&r, 3, short_ids);
    long in1 = mock_stat(&m, "tokens_in"), out1 = mock_stat(&m, "tokens_out");
    run_process_ids(&r, 3, long_ids);
    long in2 = mock_stat(&m, "tokens_in"), out2 = mock_stat(&m, "tokens_out");
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(r.res[i].status, IK_OK);
        CU_ASSERT(own_answer(r.recs[i], (int)i));
    }
    CU_ASSERT(in1 > in0 && out1 > out0);
    CU_ASSERT_EQUAL(in2 - in1, in1 - in0);
    CU_ASSERT_EQUAL(out2 - out1, out1 - out0);
    /* the blocks of a request, as a split orders them: numbered anew */
    job j;
    job_init(&j, &r);
    size_t idx[2] = {2, 0};
    char *body = gpt_build_request(j.st, &j, idx, 2, 500);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    json_object *req = json_tokener_parse(body);
    const char *user = json_object_get_string(json_object_object_get(
        json_object_array_get_idx(json_object_object_get(req, "input"), 0), "content"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(user);
    CU_ASSERT_PTR_NOT_NULL(strstr(user, "<email id=\"1\">\nFrom: Recruiter <rec@agency.com>\n"
                                        "Subject: Candidate 2\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(user, "<email id=\"2\">\nFrom: Recruiter <rec@agency.com>\n"
                                        "Subject: Candidate 0\n"));
    CU_ASSERT_PTR_NULL(strstr(user, "<email id=\"3\""));
    CU_ASSERT_PTR_NULL(strstr(body, "gmail"));
    CU_ASSERT_PTR_NULL(strstr(body, "example.org"));
    json_object_put(req);
    free(body);
    job_free(&j, r.n);
    run_free(&r);
    mock_stop(&m);
}

/* An allocation failing anywhere while building a request gives no request
 * (the caller hands the emails back), never a crash, a leak or a request
 * with a part missing. */
static void test_oom_while_building(void)
{
    mock m = {0};
    snprintf(m.url, sizeof m.url, "http://127.0.0.1:9/v1"); /* nothing is sent */
    run r;
    const char *const chat[] = {"api", "chat", NULL};
    for (int api = 0; api < 2; api++) {
        CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, api ? chat : NULL), 0);
        for (size_t i = 0; i < 2; i++)
            r.recs[i] = email((int)i, NULL);
        r.n = 2;
        job j;
        job_init(&j, &r);
        size_t idx[2] = {0, 1};
        g_calls = 0;
        char *clean = gpt_build_request(j.st, &j, idx, 2, 500);
        long total = g_calls;
        CU_ASSERT_PTR_NOT_NULL_FATAL(clean);
        CU_ASSERT(total > 5);
        for (long f = 1; f <= total; f++) {
            g_calls = 0;
            g_fail_at = f;
            char *body = gpt_build_request(j.st, &j, idx, 2, 500);
            g_fail_at = 0;
            if (body)
                CU_ASSERT_STRING_EQUAL(body, clean);
            free(body);
        }
        free(clean);
        job_free(&j, r.n);
        run_free(&r);
    }
}

/* A Responses body answering emails idx[0..k) of email(i) correctly, under
 * their short ids. Caller frees. */
static char *answer_body(const size_t *idx, size_t k)
{
    char text[4096] = "{\"results\":[";
    for (size_t x = 0; x < k; x++) {
        size_t o = strlen(text);
        int i = (int)idx[x];
        snprintf(text + o, sizeof text - o,
                 "%s{\"email_id\":\"%zu\",\"candidate_name\":\"Person %d Jones\","
                 "\"job_title\":\"Planner %d\",\"location\":null,\"company_name\":null,"
                 "\"referrer_name\":null,\"phone\":null,\"email\":\"p%d@example.com\","
                 "\"website\":null,\"linkedin_url\":null,\"industry\":null}",
                 x ? "," : "", x + 1, i, i, i);
    }
    strcat(text, "]}");
    json_object *part = json_object_new_object(), *msg = json_object_new_object(),
                *resp = json_object_new_object(), *content = json_object_new_array(),
                *output = json_object_new_array();
    json_object_object_add(part, "type", json_object_new_string("output_text"));
    json_object_object_add(part, "text", json_object_new_string(text));
    json_object_array_add(content, part);
    json_object_object_add(msg, "type", json_object_new_string("message"));
    json_object_object_add(msg, "content", content);
    json_object_array_add(output, msg);
    json_object_object_add(resp, "id", json_object_new_string("resp_oom"));
    json_object_object_add(resp, "status", json_object_new_string("completed"));
    json_object_object_add(resp, "output", output);
    char *s = strdup(json_object_to_json_string_ext(resp, JSON_C_TO_STRING_PLAIN));
    json_object_put(resp);
    return s;
}

/* An allocation failing at any point of mapping an answer back leaves
 * every email of the request settled: its own extraction, or IK_RETRY with
 * a reason; never a crash, a leak (ASan) or an email left unsettled. The
 * answers come for a split's order (records 2, 0, 1) under ids 1, 2, 3. */
static void test_oom_while_mapping(void)
{
    mock m;
    CU_ASSERT_EQUAL_FATAL(mock_start(&m, NULL), 0); /* answers what a failure splits */
    run r;
    CU_ASSERT_EQUAL_FATAL(run_setup(&r, &m, NULL), 0);
    size_t idx[3] = {2, 0, 1};
    char *body = answer_body(idx, 3);
    gpt_hints h;
    gpt_hints_init(&h);
    long total = -1, oom_seen = 0;
    for (long f = 0; f <= total || total < 0; f++) {
        run_process(&r, 3, NULL); /* fresh records (their ids and payloads) */
        job j;
        job_init(&j, &r);
        gpt_usage u;
        g_calls = 0;
        g_fail_at = f;
        gpt_job_answer(&j, idx, 3, 0, 200, body, strlen(body), &h, 0, 2000, &u);
        g_fail_at = 0;
        if (f == 0)
            total = g_calls; /* a clean run: how many calls there are to fail */
        for (size_t i = 0; i < 3; i++) {
            CU_ASSERT_EQUAL(j.done[i], 1);
            if (r.res[i].status == IK_OK) {
                CU_ASSERT(own_answer(r.recs[i], (int)i));
            } else {
                CU_ASSERT_EQUAL(r.res[i].status, IK_RETRY);
                CU_ASSERT(r.res[i].reason[0] != 0);
                if (r.res[i].status != IK_RETRY)
                    fprintf(stderr, "call %ld failing: record %zu: %d %s\n", f, i, r.res[i].status,
                            r.res[i].reason);
                oom_seen += strstr(r.res[i].reason, "out of memory") != NULL;
            }
            if (f == 0)
                CU_ASSERT_EQUAL(r.res[i].status, IK_OK);
        }
        job_free(&j, r.n);
    }
    fprintf(stderr, "oom sweep: %ld calls, %ld out-of-memory results\n", total, oom_seen);
    CU_ASSERT(total > 5);
    CU_ASSERT(oom_seen >= 3);
    free(body);
    run_free(&r);
    mock_stop(&m);
}

int main(void)
{
    const char *src = getenv("INTAKE_TEST_SRC"), *build = getenv("INTAKE_TEST_BUILD");
    snprintf(g_src, sizeof g_src, "%s", src ? src : ".");
    snprintf(g_build, sizeof g_build, "%s", build ? build : "build");
    snprintf(g_ranks, sizeof g_ranks,
             "%s/tests/reference/tokenizer/node_modules/gpt-tokenizer/data/o200k_base.tiktoken",
             g_src);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("gpt_process", NULL, NULL);
    CU_add_test(s, "mapping by email_id, usage, cost, store:false", test_mapping_and_usage);
    CU_add_test(s, "missing, invalid, duplicate, unknown results",
                test_missing_invalid_duplicate_unknown);
    CU_add_test(s, "split on context overflow", test_split_on_overflow);
    CU_add_test(s, "truncation, content filter, refusal", test_truncation_filter_refusal);
    CU_add_test(s, "429 waits, too large", test_rate_limit_waits);
    CU_add_test(s, "quota and auth: IK_DOWN, unhealthy, recheck", test_quota_and_auth_down);
    CU_add_test(s, "5xx, timeouts, connection errors", test_server_errors_and_timeouts);
    CU_add_test(s, "a lone truncated email is retried, with a higher cap",
                test_lone_truncation_is_retried);
    CU_add_test(s, "the decision after a timeout", test_timeout_decision);
    CU_add_test(s, "timeouts shrink the request", test_timeouts_shrink_requests);
    CU_add_test(s, "timeouts when nothing answers", test_timeouts_when_nothing_answers);
    CU_add_test(s, "a gateway's 504 splits like a timeout", test_gateway_timeout_splits);
    CU_add_test(s, "chat completions and Azure URL forms", test_chat_and_azure);
    CU_add_test(s, "concurrent process() calls", test_concurrent_calls);
    CU_add_test(s, "create rejects bad settings", test_create_rejects);
    CU_add_test(s, "the same extraction with every confidence and key setting",
                test_same_extraction_every_setting);
    CU_add_test(s, "the wire schema and answers mapped back", test_wire_schema);
    CU_add_test(s, "confidence filled from grounding", test_fill_confidence);
    CU_add_test(s, "short email ids within a request", test_short_ids);
    CU_add_test(s, "an allocation failing while mapping an answer", test_oom_while_mapping);
    CU_add_test(s, "an allocation failing while building a request", test_oom_while_building);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    curl_global_cleanup();
    return failed ? 1 : 0;
}
