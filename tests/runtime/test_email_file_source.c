/*
 * test_email_file_source.c: the `file` source reading real email against the
 * fake host: .eml files, Maildir folders (the folder itself and a
 * sub-folder, cur/ and new/), mbox archives (separators, ">From " escapes,
 * an unescaped "From " body line), malformed and oversize messages
 * dead-lettered with what and where, mbox progress across runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "fake_host.h"
#include "file/file_source.h"

static char *tmpdir(void)
{
    char tmpl[] = "/tmp/intake-efs-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static void write_at(const char *dir, const char *name, const char *text)
{
    char *p = NULL;
    CU_ASSERT_FATAL(asprintf(&p, "%s/%s", dir, name) > 0);
    FILE *f = fopen(p, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
    free(p);
}

static void mkdir_at(const char *dir, const char *name)
{
    char *p = NULL;
    CU_ASSERT_FATAL(asprintf(&p, "%s/%s", dir, name) > 0);
    mkdir(p, 0700);
    free(p);
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

static const char *subject_of(ik_record *r)
{
    json_object *v;
    return json_object_object_get_ex(r->payload, "subject", &v) ? json_object_get_string(v) : "";
}

#define MSG(subj, id)                                                                              \
    "From: A Person <a@example.com>\nTo: b@example.com\nSubject: " subj "\nMessage-ID: <" id       \
    "@t>\n\nHello\n"

static void test_eml_and_maildir(void)
{
    char *dir = tmpdir();
    write_at(dir, "a.eml", MSG("eml", "e1"));
    write_at(dir, "bad.eml", "just text, not a message\n");
    write_at(dir, "notes.txt", MSG("ignored", "x"));
    mkdir_at(dir, "box");
    mkdir_at(dir, "box/cur");
    mkdir_at(dir, "box/new");
    write_at(dir, "box/new/1.host", MSG("new", "m1"));
    write_at(dir, "box/cur/2.host:2,S", MSG("cur", "m2"));
    write_at(dir, "box/cur/.hidden", MSG("hidden", "m3"));
    mkdir_at(dir, "plain");
    write_at(dir, "plain/x.eml", MSG("not a maildir", "x"));
    const char *opts[] = {"path", dir, "on_complete", "none", NULL};
    fake_host fh;
    fh_init(&fh, fs_descriptor(), opts);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    CU_ASSERT_EQUAL(fh.plugin->run(fh.state), 0);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 3);
    /* name order: a.eml, box/cur/..., box/new/... */
    CU_ASSERT_STRING_EQUAL(fh.emitted[0]->id, "e1@t");
    CU_ASSERT_STRING_EQUAL(subject_of(fh.emitted[1]), "cur");
    CU_ASSERT_STRING_EQUAL(subject_of(fh.emitted[2]), "new");
    CU_ASSERT_PTR_NOT_NULL(strstr(fh_meta_get(fh.emitted[2], "file"), "/box/new/1.host"));
    CU_ASSERT_EQUAL_FATAL(fh.ndead, 1);
    CU_ASSERT_EQUAL_FATAL(fh.noutcomes, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(fh.outcomes[0].reason, "bad.eml: not a MIME message"));
    fh_settle_all(&fh, IK_DELIVERED);
    fh_free(&fh);

    /* the folder itself as a Maildir, moved to done when delivered */
    char *box = NULL;
    CU_ASSERT_FATAL(asprintf(&box, "%s/box", dir) > 0);
    const char *opts2[] = {"path", box, NULL};
    fh_init(&fh, fs_descriptor(), opts2);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    CU_ASSERT_EQUAL(fh.plugin->run(fh.state), 0);
    CU_ASSERT_EQUAL(fh.nemitted, 2);
    fh_settle_all(&fh, IK_DELIVERED);
    char *moved = NULL;
    CU_ASSERT_FATAL(asprintf(&moved, "%s/done/1.host", box) > 0);
    CU_ASSERT_EQUAL(access(moved, F_OK), 0);
    free(moved);
    fh_free(&fh);
    /* maildir = false: sub-folders are not read */
    const char *opts3[] = {"path", dir, "maildir", "false", "on_complete", "none", NULL};
    fh_init(&fh, fs_descriptor(), opts3);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    CU_ASSERT_EQUAL(fh.plugin->run(fh.state), 0);
    CU_ASSERT_EQUAL(fh.nemitted, 1);
    fh_settle_all(&fh, IK_DELIVERED);
    fh_free(&fh);
    free(box);
    rm_rf(dir);
    free(dir);
}

static void test_mbox(void)
{
    char *dir = tmpdir();
    write_at(
        dir, "a.mbox",
        "From a@example.com Sat Nov 28 10:00:00 2026\n" MSG(
            "one", "b1") "\n"
                         "From the candidate: an unescaped body line\n"
                         ">From here on, escaped\n\n"
                         "From b@example.com Sat Nov 28 10:01:00 2026\n"
                         "Content-Type: multipart/mixed\nFrom: x@example.com\n\nno boundary\n\n"
                         "From c@example.com Sat Nov 28 10:02:00 2026\n" MSG("three", "b3"));
    write_at(dir, "junk.mbox",
             "not an mbox\n\nFrom d@example.com Sat Nov 28 10:03:00 2026\n" MSG("four", "b4"));
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    fh_init(&fh, fs_descriptor(), opts);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    CU_ASSERT_EQUAL(fh.plugin->run(fh.state), 0);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 3);
    CU_ASSERT_STRING_EQUAL(subject_of(fh.emitted[0]), "one");
    json_object *body;
    CU_ASSERT_TRUE(json_object_object_get_ex(fh.emitted[0]->payload, "body", &body));
    CU_ASSERT_PTR_NOT_NULL(strstr(json_object_get_string(body), "\nFrom the candidate"));
    CU_ASSERT_PTR_NOT_NULL(strstr(json_object_get_string(body), "\nFrom here on, escaped"));
    CU_ASSERT_STRING_EQUAL(fh_meta_get(fh.emitted[1], "index"), "3");
    CU_ASSERT_STRING_EQUAL(fh_meta_get(fh.emitted[1], "line"), "18");
    CU_ASSERT_EQUAL_FATAL(fh.noutcomes, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(fh.outcomes[0].reason, "a.mbox:12: malformed MIME"));
    CU_ASSERT_PTR_NOT_NULL(strstr(fh.outcomes[1].reason, "junk.mbox:1: not an mbox archive"));
    /* deliver the first only: the file stays, with progress, for the next run */
    fh_settle(&fh, 0, IK_DELIVERED, NULL, 0);
    fh_free(&fh);
    fh_init(&fh, fs_descriptor(), opts);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    CU_ASSERT_EQUAL(fh.plugin->run(fh.state), 0);
    CU_ASSERT_EQUAL_FATAL(fh.nemitted, 2);
    CU_ASSERT_STRING_EQUAL(subject_of(fh.emitted[0]), "three");
    fh_settle_all(&fh, IK_DELIVERED);
    fh_free(&fh);
    rm_rf(dir);
    free(dir);
}

static void test_oversize(void)
{
    char *dir = tmpdir();
    char *big = malloc(300 * 1024);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    strcpy(big, MSG("big", "g1"));
    size_t n = strlen(big);
    memset(big + n, 'x', 300 * 1024 - n - 1);
    big[300 * 1024 - 1] = '\0';
    write_at(dir, "big.eml", big);
    free(big);
    const char *opts[] = {"path", dir, NULL};
    fake_host fh;
    fh_init(&fh, fs_descriptor(), opts);
    fh.max_record_size = 256 * 1024;
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    CU_ASSERT_EQUAL(fh.plugin->run(fh.state), 0);
    CU_ASSERT_EQUAL(fh.nemitted, 0);
    CU_ASSERT_EQUAL_FATAL(fh.noutcomes, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(fh.outcomes[0].reason, "larger than max_record_size"));
    fh_free(&fh);
    rm_rf(dir);
    free(dir);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("email_file_source", NULL, NULL);
    CU_add_test(s, ".eml and Maildir", test_eml_and_maildir);
    CU_add_test(s, "mbox", test_mbox);
    CU_add_test(s, "oversize message", test_oversize);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
