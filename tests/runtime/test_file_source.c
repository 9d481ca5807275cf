/*
 * test_file_source.c: unit tests of the `file` source against the fake host:
 * what is emitted (ids, metadata, priority), how bad input is dead-lettered
 * with file:line:col, when files move to done, progress files across runs,
 * dead-letter files and their replay, follow mode and patterns.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "fake_host.h"
#include "file/file_source.h"
#include "file/input_open.h"
#include "file/progress.h"

/* ---- helpers ---------------------------------------------------------- */

static char *tmpdir(void)
{
    char tmpl[] = "/tmp/intake-fs-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static char *pathf(const char *dir, const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        return NULL;
    return p;
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char *p = pathf(dir, name);
    FILE *f = fopen(p, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
    free(p);
}

static int exists(const char *dir, const char *name)
{
    char *p = pathf(dir, name);
    int e = access(p, F_OK) == 0;
    free(p);
    return e;
}

static void rm_rf(const char *path)
{
    char *cmd = NULL;
    if (asprintf(&cmd, "rm -rf '%s'", path) > 0) {
        int rc = system(cmd);
        (void)rc;
    }
    free(cmd);
}

/* Sets up a fake host with the file source and the given options. */
static void start(fake_host *fh, const char *const *opts)
{
    fh_init(fh, fs_descriptor(), opts);
    CU_ASSERT_EQUAL_FATAL(fh_create(fh), 0);
}

static int run(fake_host *fh)
{
    return fh->plugin->run(fh->state);
}

static const char *id_of(fake_host *fh, size_t i)
{
    return i < fh->nemitted ? fh->emitted[i]->id : "(none)";
}

/* ---- tests ------------------------------------------------------------ */

static void test_object_file(void)
{
    char *dir = tmpdir();
    write_text(dir, "a.json", "{\"id\": \"x1\", \"subject\": \"Hello\"}\n");
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    start(&fh, opts);
    CU_ASSERT_EQUAL(run(&fh), 0);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 1);
    ik_record *r = fh.emitted[0];
    CU_ASSERT_STRING_EQUAL(r->id, "x1");
    CU_ASSERT_STRING_EQUAL(fh_meta_get(r, "source"), "file");
    char *full = pathf(dir, "a.json");
    CU_ASSERT_STRING_EQUAL(fh_meta_get(r, "file"), full);
    free(full);
    CU_ASSERT_STRING_EQUAL(fh_meta_get(r, "index"), "1");
    CU_ASSERT_STRING_EQUAL(fh_meta_get(r, "line"), "1");
    json_object *v;
    CU_ASSERT_TRUE(json_object_object_get_ex(r->payload, "subject", &v));
    CU_ASSERT_TRUE(exists(dir, "a.json"));
    fh_settle_all(&fh, IK_DELIVERED);
    CU_ASSERT_FALSE(exists(dir, "a.json"));
    CU_ASSERT_TRUE(exists(dir, "done/a.json"));
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&fh), "info: reading"));
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&fh), "1 records emitted"));
    fh_free(&fh);
    rm_rf(dir);
    free(dir);
}

static void test_array_file_and_order(void)
{
    char *dir = tmpdir();
    write_text(dir, "b.json", "[\n {\"n\": 1},\n {\"n\": 2},\n {\"n\": 3}\n]\n");
    write_text(dir, "a.jsonl", "{\"n\": 0}\n");
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    start(&fh, opts);
    CU_ASSERT_EQUAL(run(&fh), 0);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 4);
    /* Name order: a.jsonl before b.json. */
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 0), "a.jsonl:1");
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 1), "b.json:1");
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 3), "b.json:3");
    CU_ASSERT_STRING_EQUAL(fh_meta_get(fh.emitted[2], "line"), "3");
    CU_ASSERT_STRING_EQUAL(fh_meta_get(fh.emitted[2], "index"), "2");
    fh_free(&fh);
    rm_rf(dir);
    free(dir);
}

static void test_jsonl_blank_lines(void)
{
    char *dir = tmpdir();
    write_text(dir, "c.jsonl", "{\"id\":\"a\"}\n\n   \n{\"id\":\"b\"}\r\n\n{\"id\":\"c\"}");
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    start(&fh, opts);
    run(&fh);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 3);
    CU_ASSERT_EQUAL(fh.ndead, 0);
    CU_ASSERT_STRING_EQUAL(fh_meta_get(fh.emitted[1], "line"), "4");
    CU_ASSERT_STRING_EQUAL(fh_meta_get(fh.emitted[1], "index"), "2");
    CU_ASSERT_STRING_EQUAL(fh_meta_get(fh.emitted[2], "line"), "6");
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 2), "c");
    fh_free(&fh);
    rm_rf(dir);
    free(dir);
}

static void test_bad_line_dead_lettered(void)
{
    char *dir = tmpdir();
    write_text(dir, "d.jsonl", "{\"id\":\"a\"}\n{\"id\":\"b\",}\n{\"id\":\"c\"}\n");
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    start(&fh, opts);
    CU_ASSERT_EQUAL(run(&fh), 0);
    CU_ASSERT_EQUAL(fh.nemitted, 2);
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 0), "a");
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 1), "c");
    CU_ASSERT_EQUAL_FATAL(fh.ndead, 1);
    char *full = pathf(dir, "d.jsonl");
    char want[600];
    snprintf(want, sizeof want, "%s:2:11: unexpected character '}'", full);
    CU_ASSERT_STRING_EQUAL(fh.outcomes[0].reason, want);
    ik_record *bad = fh.dead[0];
    CU_ASSERT_STRING_EQUAL(bad->id, "d.jsonl:2");
    json_object *v;
    CU_ASSERT_TRUE(json_object_object_get_ex(bad->payload, "raw", &v));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "{\"id\":\"b\",}");
    CU_ASSERT_TRUE(json_object_object_get_ex(bad->payload, "line", &v));
    CU_ASSERT_EQUAL(json_object_get_int(v), 2);
    CU_ASSERT_TRUE(json_object_object_get_ex(bad->payload, "file", &v));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), full);
    /* Its dead letter is on disk, and holds the raw text and the reason. */
    CU_ASSERT_TRUE(exists(dir, "dead-letter/d.jsonl_2.json"));
    char *dl = pathf(dir, "dead-letter/d.jsonl_2.json");
    json_object *o = json_object_from_file(dl);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    json_object *env, *reason;
    CU_ASSERT_TRUE(json_object_object_get_ex(o, "intake_dead_letter", &env));
    CU_ASSERT_TRUE(json_object_object_get_ex(env, "reason", &reason));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(reason), want);
    json_object_put(o);
    free(dl);
    /* The bad line counts as settled: delivering the rest completes the file. */
    fh_settle_all(&fh, IK_DELIVERED);
    CU_ASSERT_TRUE(exists(dir, "done/d.jsonl"));
    free(full);
    fh_free(&fh);
    rm_rf(dir);
    free(dir);
}

static void test_oversize_and_non_object(void)
{
    char *dir = tmpdir();
    char big[400];
    snprintf(big, sizeof big, "{\"id\":\"big\",\"body\":\"%0200d\"}\n", 0);
    char text[1200];
    snprintf(text, sizeof text, "{\"id\":\"small\"}\n%s[1,2]\n\"str\"\n", big);
    write_text(dir, "e.jsonl", text);
    write_text(dir, "f.json", "[{\"id\":\"ok\"}, 5, null]");
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    fh_init(&fh, fs_descriptor(), opts);
    fh.max_record_size = 100;
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    run(&fh);
    CU_ASSERT_EQUAL(fh.nemitted, 2);
    CU_ASSERT_EQUAL_FATAL(fh.ndead, 5);
    CU_ASSERT_PTR_NOT_NULL(strstr(fh.outcomes[0].reason, "e.jsonl:2:1: record is 222 bytes, "
                                                         "larger than max_record_size 100"));
    CU_ASSERT_PTR_NOT_NULL(strstr(fh.outcomes[1].reason, "e.jsonl:3:1: line is not a JSON "
                                                         "object (got array)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(fh.outcomes[2].reason, "(got string)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(fh.outcomes[3].reason, "f.json:1:15: element 2 is not a JSON "
                                                         "object (got number)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(fh.outcomes[4].reason, "element 3 is not a JSON object (got "
                                                         "null)"));
    /* The raw text of the oversize line is kept (it is under 4 KiB). */
    json_object *v;
    CU_ASSERT_TRUE(json_object_object_get_ex(fh.dead[0]->payload, "raw", &v));
    CU_ASSERT_EQUAL(json_object_get_string_len(v), 222);
    fh_free(&fh);
    rm_rf(dir);
    free(dir);
}

/* A syntax error ends a .json document: the elements before it are emitted,
 * the rest of the file is one dead letter whose reason says where. */
static void test_unparsable_json_file(void)
{
    char *dir = tmpdir();
    write_text(dir, "g.json", "[{\"id\":\"a\"},\n {\"id\" \"b\"}, {\"id\":\"c\"}]");
    write_text(dir, "h.json", "{\"id\" \"x\"}");
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    start(&fh, opts);
    run(&fh);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 1);
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 0), "a");
    CU_ASSERT_EQUAL_FATAL(fh.ndead, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(fh.outcomes[0].reason, "g.json:2:8: "));
    CU_ASSERT_STRING_EQUAL(fh.dead[0]->id, "g.json:2");
    json_object *v;
    CU_ASSERT_TRUE(json_object_object_get_ex(fh.dead[0]->payload, "raw", &v));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "{\"id\" \"b\"}, {\"id\":\"c\"}]");
    /* A single object that does not parse is one dead letter. */
    CU_ASSERT_PTR_NOT_NULL(strstr(fh.outcomes[1].reason, "h.json:1:7: "));
    CU_ASSERT_TRUE(exists(dir, "done/h.json"));
    CU_ASSERT_TRUE(exists(dir, "dead-letter/h.json_1.json"));
    CU_ASSERT_TRUE(exists(dir, "dead-letter/g.json_2.json"));
    /* Every record is settled once the good element is: the file is done. */
    CU_ASSERT_FALSE(exists(dir, "done/g.json"));
    fh_settle_all(&fh, IK_DELIVERED);
    CU_ASSERT_TRUE(exists(dir, "done/g.json"));
    fh_free(&fh);
    rm_rf(dir);
    free(dir);
}

static void test_id_field(void)
{
    char *dir = tmpdir();
    write_text(dir, "h.jsonl",
               "{\"msg_id\":\"m-1\"}\n{\"msg_id\":42}\n{\"id\":\"not-this\"}\n{\"msg_id\":\"\"}\n");
    const char *opts[] = {"path", dir, "id_field", "msg_id", NULL};
    fake_host fh;
    start(&fh, opts);
    run(&fh);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 4);
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 0), "m-1");
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 1), "h.jsonl:2");
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 2), "h.jsonl:3");
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 3), "h.jsonl:4");
    fh_free(&fh);
    rm_rf(dir);
    free(dir);
}

static void test_priority_mapping(void)
{
    char *dir = tmpdir();
    write_text(dir, "p.jsonl",
               "{\"priority\":5}\n{\"priority\":\"HIGH\"}\n{\"priority\":\"low\"}\n"
               "{\"priority\":\"Normal\"}\n{\"priority\":\"urgent\"}\n{\"priority\":1.5}\n{}\n"
               "{\"priority\":-3}\n{\"priority\":99999999999}\n");
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    start(&fh, opts);
    run(&fh);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 9);
    int want[] = {5, 10, -10, 0, 0, 0, 0, -3, 2147483647};
    for (size_t i = 0; i < 9; i++) {
        if (fh.emitted[i]->priority != want[i])
            fprintf(stderr, "record %zu: priority %d, want %d\n", i, fh.emitted[i]->priority,
                    want[i]);
        CU_ASSERT_EQUAL(fh.emitted[i]->priority, want[i]);
    }
    /* Mirrored in metadata for sinks; absent when the payload had none that counts. */
    CU_ASSERT_STRING_EQUAL(fh_meta_get(fh.emitted[1], "priority"), "10");
    CU_ASSERT_STRING_EQUAL(fh_meta_get(fh.emitted[2], "priority"), "-10");
    CU_ASSERT_STRING_EQUAL(fh_meta_get(fh.emitted[0], "priority"), "5");
    CU_ASSERT_STRING_EQUAL(fh_meta_get(fh.emitted[7], "priority"), "-3");
    CU_ASSERT_STRING_EQUAL(fh_meta_get(fh.emitted[8], "priority"), "2147483647");
    CU_ASSERT_PTR_NULL(fh_meta_get(fh.emitted[4], "priority"));
    CU_ASSERT_PTR_NULL(fh_meta_get(fh.emitted[6], "priority"));
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&fh), "debug: record 'p.jsonl:5': priority \"urgent\" "
                                               "ignored"));
    fh_free(&fh);
    rm_rf(dir);
    free(dir);
}

static void test_moved_only_when_all_settled(void)
{
    char *dir = tmpdir();
    write_text(dir, "m.jsonl", "{\"id\":\"1\"}\n{\"id\":\"2\"}\n");
    write_text(dir, "n.jsonl", "{\"id\":\"3\"}\n");
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    start(&fh, opts);
    run(&fh);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 3);
    fh_settle(&fh, 0, IK_DELIVERED, NULL, 0);
    CU_ASSERT_TRUE(exists(dir, "m.jsonl"));
    fh_settle(&fh, 1, IK_DEAD_LETTERED, "sink said no", 1); /* stored: no file of ours */
    CU_ASSERT_FALSE(exists(dir, "m.jsonl"));
    CU_ASSERT_TRUE(exists(dir, "done/m.jsonl"));
    CU_ASSERT_FALSE(exists(dir, "dead-letter/2.json"));
    CU_ASSERT_TRUE(exists(dir, "n.jsonl"));
    fh_settle(&fh, 2, IK_DELIVERED, NULL, 0);
    CU_ASSERT_TRUE(exists(dir, "done/n.jsonl"));
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&fh), "1 delivered, 1 dead-lettered; moved"));
    fh_free(&fh);

    /* on_complete = none leaves the file where it is. */
    write_text(dir, "o.jsonl", "{\"id\":\"4\"}\n");
    const char *opts2[] = {"path", dir, "on_complete", "none", NULL};
    start(&fh, opts2);
    run(&fh);
    fh_settle_all(&fh, IK_DELIVERED);
    CU_ASSERT_TRUE(exists(dir, "o.jsonl"));
    CU_ASSERT_FALSE(exists(dir, "done/o.jsonl"));
    fh_free(&fh);
    rm_rf(dir);
    free(dir);
}

static void test_released_progress_resume(void)
{
    char *dir = tmpdir();
    write_text(dir, "r.jsonl", "{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"id\":\"3\"}\n{\"id\":\"4\"}\n");
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    start(&fh, opts);
    run(&fh);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 4);
    fh_settle(&fh, 0, IK_DELIVERED, NULL, 0);
    fh_settle(&fh, 1, IK_RELEASED, NULL, 0);
    fh_settle(&fh, 2, IK_DEAD_LETTERED, "bad", 0);
    fh_settle(&fh, 3, IK_DELIVERED, NULL, 0);
    CU_ASSERT_TRUE(exists(dir, "r.jsonl"));
    fh_free(&fh); /* destroy writes the progress file */
    CU_ASSERT_TRUE(exists(dir, "r.jsonl"));
    CU_ASSERT_TRUE_FATAL(exists(dir, "done/.progress/r.jsonl.json"));
    char *pp = pathf(dir, "done/.progress/r.jsonl.json");
    json_object *o = json_object_from_file(pp);
    json_object *v;
    CU_ASSERT_TRUE(json_object_object_get_ex(o, "settled", &v));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "1,3-4");
    json_object_put(o);

    /* Next run: only the released record comes again; then the file completes. */
    start(&fh, opts);
    run(&fh);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 1);
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 0), "2");
    CU_ASSERT_STRING_EQUAL(fh_meta_get(fh.emitted[0], "index"), "2");
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&fh), "3 skipped"));
    fh_settle_all(&fh, IK_DELIVERED);
    CU_ASSERT_TRUE(exists(dir, "done/r.jsonl"));
    CU_ASSERT_FALSE(exists(dir, "done/.progress/r.jsonl.json"));
    fh_free(&fh);
    free(pp);
    rm_rf(dir);
    free(dir);
}

static void test_stop_mid_file(void)
{
    char *dir = tmpdir();
    write_text(dir, "s.json", "[{\"id\":\"1\"},{\"id\":\"2\"},{\"id\":\"3\"},{\"id\":\"4\"}]");
    write_text(dir, "t.json", "{\"id\":\"5\"}");
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    fh_init(&fh, fs_descriptor(), opts);
    fh.stop_after_emits = 2;
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    CU_ASSERT_EQUAL(run(&fh), 0);
    CU_ASSERT_EQUAL(fh.nemitted, 2);
    fh_settle_all(&fh, IK_DELIVERED);
    CU_ASSERT_TRUE(exists(dir, "s.json"));
    fh_free(&fh);
    CU_ASSERT_TRUE(exists(dir, "done/.progress/s.json.json"));
    CU_ASSERT_FALSE(exists(dir, "done/.progress/t.json.json"));

    start(&fh, opts);
    run(&fh);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 3);
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 0), "3");
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 2), "5");
    fh_settle_all(&fh, IK_DELIVERED);
    CU_ASSERT_TRUE(exists(dir, "done/s.json"));
    CU_ASSERT_TRUE(exists(dir, "done/t.json"));
    fh_free(&fh);
    rm_rf(dir);
    free(dir);
}

static void test_dead_letter_file_and_replay(void)
{
    char *dir = tmpdir();
    write_text(dir, "u.jsonl",
               "{\"id\":\"msg/1\",\"subject\":\"Hi\",\"priority\":\"high\"}\n{\"id\":\"msg2\"}\n");
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    start(&fh, opts);
    run(&fh);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 2);
    /* A processor replaced the payload: the dead letter still holds the original. */
    json_object *changed = json_object_new_object();
    json_object_object_add(changed, "extracted", json_object_new_boolean(1));
    fh.host.record_set_payload(fh.emitted[0], changed);
    fh_settle(&fh, 0, IK_DEAD_LETTERED, "zoho: 400 INVALID_DATA", 0);
    fh_settle(&fh, 1, IK_DELIVERED, NULL, 0);
    CU_ASSERT_TRUE(exists(dir, "done/u.jsonl"));
    CU_ASSERT_TRUE_FATAL(exists(dir, "dead-letter/msg_1.json"));
    char *dl = pathf(dir, "dead-letter/msg_1.json");
    json_object *o = json_object_from_file(dl);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    json_object *v, *env;
    CU_ASSERT_TRUE(json_object_object_get_ex(o, "subject", &v));
    CU_ASSERT_FALSE(json_object_object_get_ex(o, "extracted", &v));
    CU_ASSERT_TRUE_FATAL(json_object_object_get_ex(o, "intake_dead_letter", &env));
    CU_ASSERT_TRUE(json_object_object_get_ex(env, "reason", &v));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "zoho: 400 INVALID_DATA");
    CU_ASSERT_TRUE(json_object_object_get_ex(env, "stage", &v));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "sink");
    CU_ASSERT_TRUE(json_object_object_get_ex(env, "attempts", &v));
    CU_ASSERT_EQUAL(json_object_get_int(v), 3);
    CU_ASSERT_TRUE(json_object_object_get_ex(env, "index", &v));
    CU_ASSERT_EQUAL(json_object_get_int(v), 1);
    CU_ASSERT_TRUE(json_object_object_get_ex(env, "file", &v));
    CU_ASSERT_PTR_NOT_NULL(strstr(json_object_get_string(v), "u.jsonl"));
    CU_ASSERT_TRUE(json_object_object_get_ex(env, "time", &v));
    const char *t = json_object_get_string(v);
    CU_ASSERT_EQUAL(strlen(t), 20);
    CU_ASSERT_EQUAL(t[10], 'T');
    CU_ASSERT_EQUAL(t[19], 'Z');
    json_object_put(o);
    fh_free(&fh);

    /* Replay: the dead-letter folder is itself valid input. */
    char *dldir = pathf(dir, "dead-letter");
    const char *ropts[] = {"path", dldir, NULL};
    start(&fh, ropts);
    run(&fh);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 1);
    ik_record *r = fh.emitted[0];
    CU_ASSERT_STRING_EQUAL(r->id, "msg/1");
    CU_ASSERT_FALSE(json_object_object_get_ex(r->payload, "intake_dead_letter", &v));
    CU_ASSERT_TRUE(json_object_object_get_ex(r->payload, "subject", &v));
    CU_ASSERT_STRING_EQUAL(fh_meta_get(r, "replay_of"), "zoho: 400 INVALID_DATA");
    CU_ASSERT_EQUAL(r->priority, 10);
    /* Failing again writes a fresh envelope into the replay's own dead-letter folder. */
    fh_settle(&fh, 0, IK_DEAD_LETTERED, "still bad", 0);
    CU_ASSERT_TRUE(exists(dldir, "done/msg_1.json"));
    char *again = pathf(dldir, "dead-letter/msg_1.json");
    o = json_object_from_file(again);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_TRUE(json_object_object_get_ex(o, "intake_dead_letter", &env));
    CU_ASSERT_TRUE(json_object_object_get_ex(env, "reason", &v));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "still bad");
    json_object_put(o);
    fh_free(&fh);
    free(again);
    free(dldir);
    free(dl);
    rm_rf(dir);
    free(dir);
}

static void test_dead_letter_names_do_not_clash(void)
{
    char *dir = tmpdir();
    write_text(dir, "v.jsonl", "{\"id\":\"same\"}\n{\"id\":\"same\"}\n");
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    start(&fh, opts);
    run(&fh);
    fh_settle_all(&fh, IK_DEAD_LETTERED);
    CU_ASSERT_TRUE(exists(dir, "dead-letter/same.json"));
    CU_ASSERT_TRUE(exists(dir, "dead-letter/same-2.json"));
    fh_free(&fh);
    rm_rf(dir);
    free(dir);
}

typedef struct settle_arg {
    fake_host *fh;
    size_t from, to;
} settle_arg;

/* Settles records [from, to): even indices dead-lettered, odd delivered. */
static void *settle_thread(void *p)
{
    settle_arg *a = p;
    for (size_t i = a->from; i < a->to; i++)
        fh_settle(a->fh, i, i % 2 ? IK_DELIVERED : IK_DEAD_LETTERED, "bad", 0);
    return NULL;
}

static size_t count_files(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    if (d)
        closedir(d);
    return n;
}

/* settle() from four threads at once: every dead letter gets its own file
 * (same ids too), and the file is moved exactly once. */
static void test_concurrent_settle(void)
{
    char *dir = tmpdir();
    char *text = malloc(400 * 24);
    size_t len = 0;
    for (int i = 0; i < 400; i++)
        len += (size_t)sprintf(text + len, "{\"id\":\"%s\"}\n", i % 4 ? "same" : "other");
    write_text(dir, "w.jsonl", text);
    free(text);
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    start(&fh, opts);
    run(&fh);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 400);
    pthread_t th[4];
    settle_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i].fh = &fh;
        args[i].from = (size_t)i * 100;
        args[i].to = (size_t)(i + 1) * 100;
        pthread_create(&th[i], NULL, settle_thread, &args[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CU_ASSERT_TRUE(exists(dir, "done/w.jsonl"));
    char *dl = pathf(dir, "dead-letter");
    CU_ASSERT_EQUAL(count_files(dl), 200);
    CU_ASSERT_TRUE(exists(dir, "dead-letter/same-100.json"));
    free(dl);
    fh_free(&fh);
    rm_rf(dir);
    free(dir);
}

static void *run_thread(void *arg)
{
    fake_host *fh = arg;
    static int rc;
    rc = fh->plugin->run(fh->state);
    return &rc;
}

static void test_follow_mode(void)
{
    char *dir = tmpdir();
    write_text(dir, "1.jsonl", "{\"id\":\"first\"}\n");
    const char *opts[] = {"path", dir, "follow", "true", "poll_interval", "20ms", NULL};
    fake_host fh;
    start(&fh, opts);
    pthread_t th;
    pthread_create(&th, NULL, run_thread, &fh);
    CU_ASSERT_EQUAL(fh_wait_emitted(&fh, 1, 5000), 0);
    /* Written elsewhere and renamed in, as producers should. */
    write_text(dir, ".2.jsonl.tmp", "{\"id\":\"second\"}\n");
    char *a = pathf(dir, ".2.jsonl.tmp"), *b = pathf(dir, "2.jsonl");
    CU_ASSERT_EQUAL(rename(a, b), 0);
    CU_ASSERT_EQUAL(fh_wait_emitted(&fh, 2, 5000), 0);
    /* Picked up once: with on_complete=none it stays but is not read again. */
    usleep(100 * 1000);
    fh_set_stopping(&fh);
    void *ret;
    pthread_join(th, &ret);
    CU_ASSERT_EQUAL(*(int *)ret, 0);
    CU_ASSERT_EQUAL(fh.nemitted, 2);
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 1), "second");
    fh_settle_all(&fh, IK_DELIVERED);
    CU_ASSERT_TRUE(exists(dir, "done/2.jsonl"));
    fh_free(&fh);

    const char *opts2[] = {"path", dir,           "follow", "true", "poll_interval",
                           "10ms", "on_complete", "none",   NULL};
    write_text(dir, "3.jsonl", "{\"id\":\"third\"}\n");
    start(&fh, opts2);
    pthread_create(&th, NULL, run_thread, &fh);
    CU_ASSERT_EQUAL(fh_wait_emitted(&fh, 1, 5000), 0);
    fh_settle_all(&fh, IK_DELIVERED);
    usleep(100 * 1000); /* ten more polls */
    fh_set_stopping(&fh);
    pthread_join(th, &ret);
    CU_ASSERT_EQUAL(fh.nemitted, 1);
    CU_ASSERT_TRUE(exists(dir, "3.jsonl"));
    fh_free(&fh);
    free(a);
    free(b);
    rm_rf(dir);
    free(dir);
}

static void test_pattern_and_single_file(void)
{
    char *dir = tmpdir();
    write_text(dir, "a.json", "{\"id\":\"a\"}");
    write_text(dir, "b.txt", "{\"id\":\"b\"}");
    write_text(dir, "c.jsonl", "{\"id\":\"c\"}\n");
    write_text(dir, "d.csv", "id\nd\n");
    write_text(dir, ".hidden.json", "{\"id\":\"h\"}");
    const char *opts[] = {"path", dir, "pattern", " *.json , *.txt", NULL};
    fake_host fh;
    start(&fh, opts);
    run(&fh);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 2);
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 0), "a");
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 1), "b");
    fh_free(&fh);

    /* A single file: done_dir defaults to its folder's done/. */
    char *single = pathf(dir, "c.jsonl");
    const char *opts2[] = {"path", single, NULL};
    start(&fh, opts2);
    run(&fh);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 1);
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 0), "c");
    fh_settle_all(&fh, IK_DELIVERED);
    CU_ASSERT_TRUE(exists(dir, "done/c.jsonl"));
    fh_free(&fh);
    free(single);
    rm_rf(dir);
    free(dir);
}

static void test_create_errors_and_health(void)
{
    fake_host fh;
    const char *opts[] = {"path", "/nonexistent/intake/in", NULL};
    fh_init(&fh, fs_descriptor(), opts);
    CU_ASSERT_EQUAL(fh_create(&fh), IK_E_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&fh), "/nonexistent/intake/in: No such file"));
    fh_free(&fh);

    char *dir = tmpdir();
    const char *opts2[] = {"path", dir, "on_complete", "delete", NULL};
    fh_init(&fh, fs_descriptor(), opts2);
    CU_ASSERT_EQUAL(fh_create(&fh), IK_E_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&fh), "on_complete"));
    fh_free(&fh);

    const char *opts3[] = {"path", dir, NULL};
    start(&fh, opts3);
    ik_health h;
    memset(&h, 0, sizeof h);
    CU_ASSERT_EQUAL(fh.plugin->health(fh.state, &h), 0);
    CU_ASSERT_EQUAL(h.ok, 1);
    rm_rf(dir);
    CU_ASSERT_EQUAL(fh.plugin->health(fh.state, &h), 0);
    CU_ASSERT_EQUAL(h.ok, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(h.reason, dir));
    CU_ASSERT_PTR_NOT_NULL(strstr(h.reason, "No such file or directory"));
    /* Finite mode with an unreadable folder is a source error. */
    CU_ASSERT_EQUAL(run(&fh), IK_E_IO);
    fh_free(&fh);
    free(dir);
}

/* ---- a hostile inbox ---------------------------------------------------- */

static size_t count_in(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* Writes a file elsewhere in the folder and renames it in, as producers
 * should, so a polling source never sees it half written. */
static void write_renamed(const char *dir, const char *name, const char *text)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, ".%s.tmp", name);
    write_text(dir, tmp, text);
    char *a = pathf(dir, tmp), *b = pathf(dir, name);
    CU_ASSERT_EQUAL(rename(a, b), 0);
    free(a);
    free(b);
}

static void link_at(const char *dir, const char *name, const char *target)
{
    char *p = pathf(dir, name);
    CU_ASSERT_EQUAL_FATAL(symlink(target, p), 0);
    free(p);
}

static void fifo_at(const char *dir, const char *name)
{
    char *p = pathf(dir, name);
    CU_ASSERT_EQUAL_FATAL(mkfifo(p, 0600), 0);
    free(p);
}

/* A listening Unix socket bound at dir/name; returns its descriptor. */
static int socket_at(const char *dir, const char *name)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", dir, name);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    listen(fd, 1);
    return fd;
}

static int is_link(const char *dir, const char *name)
{
    char *p = pathf(dir, name);
    struct stat sb;
    int yes = lstat(p, &sb) == 0 && S_ISLNK(sb.st_mode);
    free(p);
    return yes;
}

/* A link to a file outside the inbox (here a secret, and the engine's own
 * environment) is not read, not dead-lettered and not moved: it is logged
 * once and left where it is. */
static void test_symlink_not_followed(void)
{
    char *dir = tmpdir(), *outside = tmpdir();
    write_text(outside, "secret.env", "OPENAI_API_KEY=sk-test-very-secret\n");
    char *secret = pathf(outside, "secret.env");
    link_at(dir, "environ.jsonl", "/proc/self/environ");
    link_at(dir, "secret.json", secret);
    write_text(dir, "ok.jsonl", "{\"id\":\"ok\"}\n");
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    start(&fh, opts);
    CU_ASSERT_EQUAL(run(&fh), 0);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 1);
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 0), "ok");
    CU_ASSERT_EQUAL(fh.ndead, 0);
    fh_settle_all(&fh, IK_DELIVERED);
    CU_ASSERT_FALSE(exists(dir, "dead-letter"));
    CU_ASSERT_TRUE(is_link(dir, "environ.jsonl"));
    CU_ASSERT_TRUE(is_link(dir, "secret.json"));
    CU_ASSERT_FALSE(exists(dir, "done/environ.jsonl"));
    CU_ASSERT_FALSE(exists(dir, "done/secret.json"));
    const char *log = fh_log(&fh);
    char want[600];
    snprintf(want, sizeof want,
             "warn: skipped %s/environ.jsonl: symbolic link (not followed; see option "
             "'symlinks'); left where it is, not read",
             dir);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, want));
    CU_ASSERT_EQUAL(count_in(log, "/secret.json: symbolic link"), 1);
    CU_ASSERT_PTR_NULL(strstr(log, "sk-test-very-secret"));
    CU_ASSERT_PTR_NULL(strstr(log, "reading " /* never opened */ "/proc"));
    fh_free(&fh);
    free(secret);
    rm_rf(dir);
    rm_rf(outside);
    free(dir);
    free(outside);
}

/* symlinks = "inside" reads a link to a regular file inside the folder, and
 * still refuses links that resolve outside it, to /proc, to folders or to
 * nothing. */
static void test_symlinks_inside(void)
{
    char *dir = tmpdir(), *outside = tmpdir();
    write_text(outside, "secret.json", "{\"id\":\"stolen\"}");
    char *secret = pathf(outside, "secret.json");
    char *data = pathf(dir, "data");
    mkdir(data, 0755);
    write_text(data, "a.txt", "{\"id\":\"linked\"}");
    link_at(dir, "a.json", "data/a.txt");
    link_at(dir, "b.json", secret);
    link_at(dir, "c.json", "/proc/self/environ");
    link_at(dir, "d.json", outside);
    link_at(dir, "e.json", "data/missing.json");
    link_at(dir, "f.json", "b.json"); /* a link to a link that leads out */
    link_at(data, "up.txt", secret);
    link_at(dir, "g.json", "data/up.txt"); /* inside, then out */

    /* Default: no link is read. */
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    start(&fh, opts);
    run(&fh);
    CU_ASSERT_EQUAL(fh.nemitted, 0);
    CU_ASSERT_EQUAL(count_in(fh_log(&fh), "symbolic link (not followed; see option 'symlinks')"),
                    7);
    fh_free(&fh);

    const char *opts2[] = {"path", dir, "symlinks", "inside", NULL};
    start(&fh, opts2);
    run(&fh);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 1);
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 0), "linked");
    CU_ASSERT_EQUAL(fh.ndead, 0);
    const char *log = fh_log(&fh);
    CU_ASSERT_EQUAL(count_in(log, ", outside the input folder (not followed)"), 5);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "/c.json: symbolic link to /proc/"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "/e.json: symbolic link that does not resolve"));
    CU_ASSERT_PTR_NULL(strstr(log, "stolen"));
    fh_settle_all(&fh, IK_DELIVERED);
    /* The link is what moves to done/; its target stays. */
    CU_ASSERT_TRUE(is_link(dir, "done/a.json"));
    CU_ASSERT_TRUE(exists(dir, "data/a.txt"));
    CU_ASSERT_TRUE(is_link(dir, "b.json"));
    fh_free(&fh);

    const char *bad[] = {"path", dir, "symlinks", "all", NULL};
    fh_init(&fh, fs_descriptor(), bad);
    CU_ASSERT_EQUAL(fh_create(&fh), IK_E_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&fh), "option 'symlinks': \"all\" is not a valid choice"));
    fh_free(&fh);
    free(secret);
    free(data);
    rm_rf(dir);
    rm_rf(outside);
    free(dir);
    free(outside);
}

/* FIFOs, sockets and folders named like input are skipped with a reason,
 * and the run finishes (a FIFO is never opened for a blocking read). */
static void test_special_entries_skipped(void)
{
    char *dir = tmpdir();
    fifo_at(dir, "x.jsonl");
    int sock = socket_at(dir, "s.jsonl");
    char *sub = pathf(dir, "d.json");
    mkdir(sub, 0755);
    write_text(dir, "ok.json", "{\"id\":\"ok\"}");
    /* A Maildir with a FIFO among its messages, and a link to a Maildir. */
    char *md = pathf(dir, "box"), *cur = pathf(dir, "box/cur"), *nw = pathf(dir, "box/new");
    mkdir(md, 0755);
    mkdir(cur, 0755);
    mkdir(nw, 0755);
    fifo_at(dir, "box/new/1700000000.fifo");
    link_at(dir, "linked-box", md);
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    start(&fh, opts);
    CU_ASSERT_EQUAL(run(&fh), 0);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 1);
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 0), "ok");
    const char *log = fh_log(&fh);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "/x.jsonl: FIFO (named pipe); left where it is"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "/s.jsonl: socket; left where it is"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "/d.json: directory named like an input file"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "/box/new/1700000000.fifo: FIFO (named pipe)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "/linked-box: symbolic link to a Maildir folder"));
    fh_settle_all(&fh, IK_DELIVERED);
    CU_ASSERT_TRUE(exists(dir, "x.jsonl"));
    CU_ASSERT_TRUE(exists(dir, "s.jsonl"));
    CU_ASSERT_FALSE(exists(dir, "done/x.jsonl"));
    fh_free(&fh);
    close(sock);
    free(sub);
    free(md);
    free(cur);
    free(nw);
    rm_rf(dir);
    free(dir);
}

/* Swaps files of the inbox while the source reads the first one, that is
 * after it listed the folder and before it opens the next file. */
static int (*real_emit)(ik_instance *, ik_record *);
static const char *swap_dir;

static int swapping_emit(ik_instance *self, ik_record *rec)
{
    if (swap_dir) {
        char *b = pathf(swap_dir, "b.jsonl"), *c = pathf(swap_dir, "c.jsonl");
        unlink(b);
        mkfifo(b, 0600);
        unlink(c);
        symlink("/proc/self/environ", c);
        free(b);
        free(c);
        swap_dir = NULL;
    }
    return real_emit(self, rec);
}

/* A regular file when the folder was listed, a FIFO (or a link) when
 * opened: skipped without blocking, logged, left in place. */
static void test_swapped_after_scan(void)
{
    char *dir = tmpdir();
    write_text(dir, "a.jsonl", "{\"id\":\"a\"}\n");
    write_text(dir, "b.jsonl", "{\"id\":\"b\"}\n");
    write_text(dir, "c.jsonl", "{\"id\":\"c\"}\n");
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    fh_init(&fh, fs_descriptor(), opts);
    real_emit = fh.host.emit;
    fh.host.emit = swapping_emit;
    swap_dir = dir;
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    CU_ASSERT_EQUAL(run(&fh), 0);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 1);
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 0), "a");
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&fh), "/b.jsonl: FIFO (named pipe); left where it is"));
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_log(&fh), "/c.jsonl: symbolic link (not followed"));
    CU_ASSERT_TRUE(is_link(dir, "c.jsonl"));
    fh_free(&fh);
    rm_rf(dir);
    free(dir);
}

static void *run_thread(void *arg);

/* In follow mode a skipped entry is logged once, not on every poll; a new
 * entry in its place is logged again; one that became a file is read. */
static void test_skip_logged_once_in_follow(void)
{
    char *dir = tmpdir();
    fifo_at(dir, "x.jsonl");
    link_at(dir, "y.json", "/etc/passwd");
    write_text(dir, "1.jsonl", "{\"id\":\"first\"}\n");
    const char *opts[] = {"path", dir, "follow", "true", "poll_interval", "5ms", NULL};
    fake_host fh;
    start(&fh, opts);
    pthread_t th;
    pthread_create(&th, NULL, run_thread, &fh);
    CU_ASSERT_EQUAL(fh_wait_emitted(&fh, 1, 5000), 0);
    /* Each new file takes another pass over the folder. */
    for (int i = 2; i <= 4; i++) {
        char name[32], text[64];
        snprintf(name, sizeof name, "%d.jsonl", i);
        snprintf(text, sizeof text, "{\"id\":\"n%d\"}\n", i);
        write_renamed(dir, name, text);
        CU_ASSERT_EQUAL(fh_wait_emitted(&fh, (size_t)i, 5000), 0);
    }
    CU_ASSERT_EQUAL(count_in(fh_log(&fh), "/x.jsonl: FIFO"), 1);
    CU_ASSERT_EQUAL(count_in(fh_log(&fh), "/y.json: symbolic link"), 1);
    /* Replaced by another FIFO: a new entry, told again. */
    char *x = pathf(dir, "x.jsonl");
    unlink(x);
    fifo_at(dir, "x.jsonl");
    write_renamed(dir, "5.jsonl", "{\"id\":\"n5\"}\n");
    CU_ASSERT_EQUAL(fh_wait_emitted(&fh, 5, 5000), 0);
    CU_ASSERT_EQUAL(count_in(fh_log(&fh), "/x.jsonl: FIFO"), 2);
    /* Replaced by a regular file: read. */
    unlink(x);
    write_renamed(dir, "x.jsonl", "{\"id\":\"x-now-a-file\"}\n");
    CU_ASSERT_EQUAL(fh_wait_emitted(&fh, 6, 5000), 0);
    fh_set_stopping(&fh);
    pthread_join(th, NULL);
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 5), "x-now-a-file");
    CU_ASSERT_EQUAL(count_in(fh_log(&fh), "/x.jsonl: FIFO"), 2);
    CU_ASSERT_EQUAL(count_in(fh_log(&fh), "/y.json: symbolic link"), 1);
    fh_free(&fh);
    free(x);
    rm_rf(dir);
    free(dir);
}

/* in_open itself: a FIFO does not block, the descriptor of a file is
 * blocking, no part of the path may be a link, unreadable files say so. */
static void test_in_open(void)
{
    char *dir = tmpdir();
    chmod(dir, 0755);
    in_folder in = {dir, dir, 0};
    fifo_at(dir, "p.jsonl");
    write_text(dir, "f.json", "{}");
    char *sub = pathf(dir, "sub");
    mkdir(sub, 0755);
    link_at(dir, "box", sub);
    write_text(sub, "m.eml", "Subject: x\n\nbody\n");
    int fd;
    struct stat sb;
    char why[IN_WHY_MAX];
    CU_ASSERT_EQUAL(in_open(&in, "p.jsonl", &fd, &sb, why, sizeof why), 1);
    CU_ASSERT_STRING_EQUAL(why, "FIFO (named pipe)");
    CU_ASSERT_TRUE(S_ISFIFO(sb.st_mode));
    CU_ASSERT_EQUAL(fd, -1);
    CU_ASSERT_EQUAL_FATAL(in_open(&in, "f.json", &fd, &sb, why, sizeof why), 0);
    CU_ASSERT_EQUAL(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    CU_ASSERT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);
    CU_ASSERT_EQUAL(in_open(&in, "sub/m.eml", &fd, &sb, why, sizeof why), 0);
    close(fd);
    CU_ASSERT_EQUAL(in_open(&in, "box/m.eml", &fd, &sb, why, sizeof why), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "'box' on its path is not a folder"));
    CU_ASSERT_EQUAL(in_open(&in, "gone.json", &fd, &sb, why, sizeof why), -ENOENT);

    /* Unreadable: as a user the permissions apply to (root reads anything). */
    write_text(dir, "locked.json", "{}");
    char *locked = pathf(dir, "locked.json");
    chmod(locked, 0200);
    pid_t pid = fork();
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(2);
        int r = in_open(&in, "locked.json", &fd, &sb, why, sizeof why);
        _exit(r == 1 && strncmp(why, "permission denied (mode 0200, owner uid ", 40) == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    free(locked);
    free(sub);
    rm_rf(dir);
    free(dir);
}

/* A dead letter re-reads the original from its file: a file replaced by a
 * FIFO since must not block settle(), and is not read. */
static void test_dead_letter_reread_safe(void)
{
    char *dir = tmpdir();
    write_text(dir, "u.jsonl", "{\"id\":\"m1\",\"subject\":\"Hi\"}\n");
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    start(&fh, opts);
    run(&fh);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 1);
    char *u = pathf(dir, "u.jsonl");
    unlink(u);
    fifo_at(dir, "u.jsonl");
    json_object *changed = json_object_new_object();
    json_object_object_add(changed, "from_payload", json_object_new_boolean(1));
    fh.host.record_set_payload(fh.emitted[0], changed);
    fh_settle(&fh, 0, IK_DEAD_LETTERED, "rejected", 0);
    char *dl = pathf(dir, "dead-letter/m1.json");
    json_object *o = json_object_from_file(dl);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    json_object *v;
    CU_ASSERT_TRUE(json_object_object_get_ex(o, "from_payload", &v));
    json_object_put(o);
    fh_free(&fh);
    free(dl);
    free(u);
    rm_rf(dir);
    free(dir);
}

/* A NUL character in a record (\u0000 or a raw NUL byte) would cut ids,
 * senders and bodies as C strings: such records are dead-lettered with
 * where, in .json and .jsonl alike, and their neighbours go on. */
static void test_nul_records_dead_lettered(void)
{
    char *dir = tmpdir();
    write_text(dir, "a.jsonl",
               "{\"id\":\"a\\u0000b\",\"body\":\"x\"}\n"
               "{\"id\":\"ok1\",\"sender_email\":\"x\\u0000@evil.example\"}\n"
               "{\"id\":\"ok2\",\"body\":\"Hi\"}\n"
               "{\"id\":\"m4\",\"body\":\"kept \\u0000 cut\"}\n");
    write_text(dir, "b.json",
               "[{\"id\":\"j1\",\"body\":\"Hi\"},\n {\"id\":\"j2\",\"body\":\"x\\u0000y\"},\n"
               " {\"id\":\"j3\"}]");
    char *c = pathf(dir, "c.jsonl");
    FILE *f = fopen(c, "w");
    static const char raw[] = "{\"id\":\"raw\",\"body\":\"a\0b\"}\n{\"id\":\"after\"}\n";
    fwrite(raw, 1, sizeof raw - 1, f);
    fclose(f);
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    start(&fh, opts);
    run(&fh);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 4);
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 0), "ok2");
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 1), "j1");
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 2), "j3");
    CU_ASSERT_STRING_EQUAL(id_of(&fh, 3), "after");
    CU_ASSERT_EQUAL_FATAL(fh.ndead, 5);
    const char *want[] = {
        "a.jsonl:1:9: string contains a NUL character (\\u0000)",
        "a.jsonl:2:30: string contains a NUL character (\\u0000)",
        "a.jsonl:4:25: string contains a NUL character (\\u0000)",
        "b.json:2:22: string contains a NUL character (\\u0000)",
        "c.jsonl:1:22: NUL byte (not allowed in JSON text)",
    };
    for (size_t i = 0; i < 5; i++) {
        if (!strstr(fh.outcomes[i].reason, want[i]))
            fprintf(stderr, "dead letter %zu: %s\n", i, fh.outcomes[i].reason);
        CU_ASSERT_PTR_NOT_NULL(strstr(fh.outcomes[i].reason, want[i]));
    }
    CU_ASSERT_STRING_EQUAL(fh.dead[0]->id, "a.jsonl:1");
    CU_ASSERT_STRING_EQUAL(fh.dead[3]->id, "b.json:2");
    /* The dead letter keeps the whole text, \u0000 included. */
    json_object *v;
    CU_ASSERT_TRUE(json_object_object_get_ex(fh.dead[2]->payload, "raw", &v));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v),
                           "{\"id\":\"m4\",\"body\":\"kept \\u0000 cut\"}");
    CU_ASSERT_TRUE(exists(dir, "dead-letter/a.jsonl_1.json"));
    CU_ASSERT_EQUAL(count_in(fh_log(&fh), "warn: "), 5);
    fh_free(&fh);
    free(c);
    rm_rf(dir);
    free(dir);
}

static void test_sanitize_id(void)
{
    char out[200];
    fs_sanitize_id("msg/1 <a@b.c>", out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "msg_1__a@b.c_");
    fs_sanitize_id("../../etc/passwd", out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "_._.._etc_passwd");
    fs_sanitize_id("", out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "_");
    char long_id[400];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    fs_sanitize_id(long_id, out, sizeof out);
    CU_ASSERT_EQUAL(strlen(out), 180);
}

static void test_descriptor(void)
{
    const ik_plugin *p = fs_descriptor();
    CU_ASSERT_EQUAL(p->magic, IK_PLUGIN_MAGIC);
    CU_ASSERT_EQUAL(p->kind, IK_KIND_SOURCE);
    CU_ASSERT_STRING_EQUAL(p->name, "file");
    const char *names[] = {
        "path",     "pattern",         "follow",   "poll_interval", "on_complete",
        "done_dir", "dead_letter_dir", "id_field", "maildir",       "attachment_content",
        "symlinks"};
    size_t n = 0;
    for (const ik_option *o = p->options; o->name; o++, n++) {
        CU_ASSERT_TRUE(n < 11 && strcmp(o->name, names[n]) == 0);
        CU_ASSERT_PTR_NOT_NULL(o->help);
    }
    CU_ASSERT_EQUAL(n, 11);
    CU_ASSERT_EQUAL(p->options[0].flags & IK_OPT_REQUIRED, IK_OPT_REQUIRED);
}

/* A progress file replaced by a FIFO is refused with a reason, not waited
 * on (json_object_from_file() opened it blocking). */
static void test_progress_fifo(void)
{
    char *dir = tmpdir();
    char *path = NULL, err[512] = "";
    CU_ASSERT_FATAL(asprintf(&path, "%s/p.progress", dir) > 0);
    CU_ASSERT_EQUAL_FATAL(mkfifo(path, 0600), 0);
    alarm(60);
    pg_ledger l = {0};
    CU_ASSERT_EQUAL(pg_load(&l, path, 10, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a regular file"));
    alarm(0);
    pg_free(&l);
    free(path);
    rm_rf(dir);
    free(dir);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("file_source", NULL, NULL);
    CU_add_test(s, "descriptor and option table", test_descriptor);
    CU_add_test(s, "progress file that is a FIFO", test_progress_fifo);
    CU_add_test(s, "object file, metadata, moved to done", test_object_file);
    CU_add_test(s, "array file, name order", test_array_file_and_order);
    CU_add_test(s, "jsonl with blank lines", test_jsonl_blank_lines);
    CU_add_test(s, "bad line dead-lettered, neighbours emitted", test_bad_line_dead_lettered);
    CU_add_test(s, "oversize and non-object records", test_oversize_and_non_object);
    CU_add_test(s, "unparsable .json file", test_unparsable_json_file);
    CU_add_test(s, "id_field", test_id_field);
    CU_add_test(s, "priority mapping", test_priority_mapping);
    CU_add_test(s, "moved only when all settled; on_complete none",
                test_moved_only_when_all_settled);
    CU_add_test(s, "released: progress file written and honoured", test_released_progress_resume);
    CU_add_test(s, "stopped mid-file resumes", test_stop_mid_file);
    CU_add_test(s, "dead-letter file content and replay", test_dead_letter_file_and_replay);
    CU_add_test(s, "dead-letter names do not clash", test_dead_letter_names_do_not_clash);
    CU_add_test(s, "concurrent settle", test_concurrent_settle);
    CU_add_test(s, "follow mode picks up later files once", test_follow_mode);
    CU_add_test(s, "pattern filtering, single file", test_pattern_and_single_file);
    CU_add_test(s, "create errors and health", test_create_errors_and_health);
    CU_add_test(s, "sanitised ids", test_sanitize_id);
    CU_add_test(s, "symbolic links are not followed", test_symlink_not_followed);
    CU_add_test(s, "symlinks = inside: only links inside the folder", test_symlinks_inside);
    CU_add_test(s, "FIFOs, sockets, folders named like input: skipped, logged",
                test_special_entries_skipped);
    CU_add_test(s, "follow mode logs a skipped entry once", test_skip_logged_once_in_follow);
    CU_add_test(s, "in_open: FIFO, blocking fd, links on the path, permissions", test_in_open);
    CU_add_test(s, "NUL characters: dead-lettered with where", test_nul_records_dead_lettered);
    CU_add_test(s, "swapped for a FIFO or a link after the scan", test_swapped_after_scan);
    CU_add_test(s, "dead-letter re-read does not open a FIFO", test_dead_letter_reread_safe);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
