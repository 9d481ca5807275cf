/*
 * test_sb_runtime.c: queue runtime counts (lib/servicebus/runtime*.c): the
 * ATOM parser on the emulator's and Azure's answers (the documents are the
 * fuzz corpus in tests/fuzz/corpus/sb_runtime/) and on bad ones, each
 * refused with what and where; the management token's lower-case rule
 * (test vector 2 of servicebus.md §2); and the fetch's refusals that need
 * no peer (a bad endpoint URL, a closed port) never quoting the key.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "common/file.h"
#include "servicebus/runtime.h"
#include <intake/plugin.h>

/* A corpus document, whole (the caller frees it). */
static char *doc(const char *name, size_t *len)
{
    const char *src = getenv("INTAKE_TEST_SRC");
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/sb_runtime/%s", src ? src : ".", name);
    char *text = NULL;
    if (ik_read_file(path, &text, len, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    return text;
}

/* The emulator document with `from` replaced by `to` (the first one). */
static char *edited(const char *from, const char *to)
{
    size_t len;
    char *d = doc("emulator_entry.xml", &len);
    if (!d)
        return NULL;
    char *at = strstr(d, from);
    if (!at) {
        free(d);
        return NULL;
    }
    char *out = malloc(len + strlen(to) + 1);
    size_t pre = (size_t)(at - d);
    memcpy(out, d, pre);
    strcpy(out + pre, to);
    strcat(out, at + strlen(from));
    free(d);
    return out;
}

/* Parses text; returns the code with err and counts filled. */
static int parse(const char *text, ik_sb_counts *c, char *err, size_t errlen)
{
    return ik_sb_runtime_parse(text, strlen(text), c, err, errlen);
}

static void test_emulator_document(void)
{
    size_t len;
    char *d = doc("emulator_entry.xml", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    ik_sb_counts c;
    char err[300];
    CU_ASSERT_EQUAL_FATAL(ik_sb_runtime_parse(d, len, &c, err, sizeof err), 0);
    CU_ASSERT_EQUAL(c.active, 3);
    CU_ASSERT_EQUAL(c.dead_letter, 1);
    CU_ASSERT_EQUAL(c.scheduled, 2);
    CU_ASSERT_EQUAL(c.transfer, 0);
    CU_ASSERT_EQUAL(c.transfer_dead_letter, 0);
    CU_ASSERT_EQUAL(c.total, 6);
    CU_ASSERT_EQUAL(c.size_bytes, 4096);
    free(d);
}

static void test_azure_document(void)
{
    /* indented, no prolog, xml:base, another prefix for the counts */
    size_t len;
    char *d = doc("azure_entry.xml", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    ik_sb_counts c;
    char err[300];
    CU_ASSERT_EQUAL_FATAL(ik_sb_runtime_parse(d, len, &c, err, sizeof err), 0);
    CU_ASSERT_EQUAL(c.active, 1234567);
    CU_ASSERT_EQUAL(c.dead_letter, 7);
    CU_ASSERT_EQUAL(c.scheduled, 3);
    CU_ASSERT_EQUAL(c.total, 1234577);
    CU_ASSERT_EQUAL(c.size_bytes, 123456789);
    free(d);
    /* the largest count there is, with white space around it */
    char *e = edited(">3<", "> 9223372036854775807\n<");
    CU_ASSERT_EQUAL_FATAL(parse(e, &c, err, sizeof err), 0);
    CU_ASSERT_EQUAL(c.active, INT64_MAX);
    free(e);
}

static void test_empty_feed_is_not_found(void)
{
    size_t len;
    char *d = doc("empty_feed.xml", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    ik_sb_counts c;
    char err[300];
    CU_ASSERT_EQUAL(ik_sb_runtime_parse(d, len, &c, err, sizeof err), IK_E_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no such queue"));
    free(d);
}

/* Each bad document is refused as IK_E_PARSE with an error holding `want`. */
static void refused(char *text, const char *want)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    ik_sb_counts c;
    char err[300] = "";
    c.active = 99;
    int rc = parse(text, &c, err, sizeof err);
    CU_ASSERT_EQUAL(rc, IK_E_PARSE);
    CU_ASSERT_EQUAL(c.active, 0);
    if (!strstr(err, want))
        fprintf(stderr, "\nwanted '%s' in: %s\n", want, err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
    free(text);
}

static void test_bad_counts(void)
{
    refused(edited(">3<", ">x3<"), "line 1: <ActiveMessageCount> is 'x3', not a count");
    refused(edited(">3<", ">-3<"), "<ActiveMessageCount> is '-3'");
    refused(edited(">3<", "><"), "<ActiveMessageCount> is ''");
    refused(edited(">3<", ">9223372036854775808<"), "is '9223372036854775808', not a count");
    refused(edited(">3<", ">3 4<"), "is '3 4'");
    refused(edited(">4096<", ">4k<"), "<SizeInBytes> is '4k'");
    refused(edited("<d2p1:ScheduledMessageCount>2</d2p1:ScheduledMessageCount>", ""),
            "line 1: <CountDetails> has no <ScheduledMessageCount>");
    refused(edited("<MessageCount>6</MessageCount>", ""),
            "<QueueDescription> has no <MessageCount>");
    refused(edited("<d2p1:DeadLetterMessageCount>1</d2p1:DeadLetterMessageCount>",
                   "<d2p1:DeadLetterMessageCount>1</d2p1:DeadLetterMessageCount>"
                   "<d2p1:DeadLetterMessageCount>5</d2p1:DeadLetterMessageCount>"),
            "<DeadLetterMessageCount> appears a second time");
    /* the counts in another namespace are not the counts */
    refused(edited("2011/06/servicebus", "2011/07/servicebus"),
            "<CountDetails> has no <ActiveMessageCount>");
    refused(edited("<CountDetails", "<Other"), "");
}

static void test_bad_documents(void)
{
    refused(strdup("<html><body>Service Unavailable</body></html>"),
            "line 1: the root element is <html>, not an ATOM <entry>");
    refused(strdup("<entry>\n<content/></entry>"), "root element is <entry>, not an ATOM");
    refused(strdup("<entry xmlns=\"http://www.w3.org/2005/Atom\">\n<title/>\n</entry>"),
            "line 1: <entry> has no <content>");
    refused(strdup("<entry xmlns=\"http://www.w3.org/2005/Atom\">\n<content>\n<TopicDescription/>"
                   "</content></entry>"),
            "line 2: <content> holds no <QueueDescription>");
    refused(strdup("<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry/><entry/></feed>"),
            "a feed of 2 entries");
    refused(strdup("not xml at all"), "line 1, column 1: not well-formed XML: ");
    refused(strdup("<entry xmlns=\"http://www.w3.org/2005/Atom\">\n<content>\n</entry>"),
            "line 3, column ");
    size_t len;
    char *d = doc("emulator_entry.xml", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    d[700] = '\0';
    refused(d, "not well-formed XML");
    refused(strdup(""), "the answer is empty");
    /* entity tricks: a DOCTYPE is refused, nothing is expanded */
    refused(strdup("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [<!ENTITY lol \"lol\">"
                   "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">]>\n<entry "
                   "xmlns=\"http://www.w3.org/2005/Atom\">&lol2;</entry>"),
            "a DOCTYPE is not allowed");
    refused(strdup("<!DOCTYPE x SYSTEM \"http://127.0.0.1:1/evil.dtd\"><entry/>"),
            "a DOCTYPE is not allowed");
    /* larger than the limit: refused before parsing */
    ik_sb_counts c;
    char err[300];
    CU_ASSERT_EQUAL(ik_sb_runtime_parse("<", IK_SB_RUNTIME_MAX_ANSWER + 1, &c, err, sizeof err),
                    IK_E_PARSE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "more than the"));
}

static void test_token_lower_case_rule(void)
{
    /* servicebus.md §2, test vector 2: sr is the lower-cased encoding of
     * the lower-cased URL, query string included */
    const char *want = "SharedAccessSignature "
                       "sr=https%3a%2f%2f127.0.0.1%3a8443%2fq1%3fapi-version%3d2021-05"
                       "&sig=k27FuSVP%2FS1OPmo%2Bv4L7abYSgmPEfPd5jqGOCejorws%3D"
                       "&se=1795860558&skn=RootManageSharedAccessKey";
    char *t = ik_sb_runtime_token("https://127.0.0.1:8443/q1?api-version=2021-05",
                                  "RootManageSharedAccessKey", "SAS_KEY_VALUE", 1795860558);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_STRING_EQUAL(t, want);
    free(t);
    t = ik_sb_runtime_token("HTTPS://127.0.0.1:8443/Q1?API-VERSION=2021-05",
                            "RootManageSharedAccessKey", "SAS_KEY_VALUE", 1795860558);
    CU_ASSERT_STRING_EQUAL(t, want);
    free(t);
    CU_ASSERT_PTR_NULL(ik_sb_runtime_token("https://h/q", NULL, "k", 1));
}

/* A loopback port nothing listens on. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static void test_fetch_refusals_without_the_key(void)
{
    const char *key = "Sup3rS3cretKeyValue=";
    ik_sb_counts c;
    char err[600];
    int rc = ik_sb_runtime_counts("sb://127.0.0.1", "q1", "root", key, 2000, NULL, 1, &c, err,
                                  sizeof err);
    CU_ASSERT_EQUAL(rc, IK_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "'sb://127.0.0.1' is not an http:// or https:// URL"));
    int port = closed_port();
    CU_ASSERT_FATAL(port > 0);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/", port);
    rc = ik_sb_runtime_counts(base, "q 1", "root", key, 2000, NULL, 1, &c, err, sizeof err);
    CU_ASSERT_EQUAL(rc, IK_E_IO);
    char want[128];
    snprintf(want, sizeof want,
             "GET http://127.0.0.1:%d/q%%201?api-version=2021-05 failed: ", port);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
    CU_ASSERT_PTR_NULL(strstr(err, key));
    CU_ASSERT_PTR_NULL(strstr(err, "sig="));
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("sb_runtime", NULL, NULL);
    CU_add_test(s, "the emulator's answer", test_emulator_document);
    CU_add_test(s, "an answer as Azure writes it", test_azure_document);
    CU_add_test(s, "an empty feed: no such queue", test_empty_feed_is_not_found);
    CU_add_test(s, "bad counts refused with where", test_bad_counts);
    CU_add_test(s, "bad documents refused with where", test_bad_documents);
    CU_add_test(s, "the management token's lower-case rule", test_token_lower_case_rule);
    CU_add_test(s, "fetch refusals never quote the key", test_fetch_refusals_without_the_key);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
