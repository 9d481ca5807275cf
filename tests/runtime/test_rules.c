/*
 * test_rules.c: unit tests of the rules extractor, field by field (labels,
 * phrases, subject and sender rules), of grounding (no value that is not in
 * the email), and of the `rules` processor against the fake host.
 */
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "fake_host.h"
#include "rules/extract.h"

const ik_plugin *rules_descriptor(void);

/* Extraction of an email given as subject, sender name, sender email, body. */
static json_object *extract(const char *subject, const char *name, const char *mail,
                            const char *body)
{
    json_object *e = json_object_new_object();
    json_object_object_add(e, "subject", json_object_new_string(subject));
    if (name)
        json_object_object_add(e, "sender_name", json_object_new_string(name));
    json_object_object_add(e, "sender_email", json_object_new_string(mail));
    json_object_object_add(e, "body", json_object_new_string(body));
    json_object *x = rx_extract(e);
    json_object_put(e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    return x;
}

static const char *get(json_object *x, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(x, key, &v) || !v)
        return NULL;
    return json_object_get_string(v);
}

static double conf(json_object *x, const char *key)
{
    json_object *c, *v;
    json_object_object_get_ex(x, "confidence", &c);
    json_object_object_get_ex(c, key, &v);
    return json_object_get_double(v);
}

static void assert_str(json_object *x, const char *key, const char *want)
{
    const char *got = get(x, key);
    if (!want) {
        if (got)
            fprintf(stderr, "%s: want null, got \"%s\"\n", key, got);
        CU_ASSERT_PTR_NULL(got);
        CU_ASSERT_EQUAL(conf(x, key), 0);
        return;
    }
    if (!got || strcmp(got, want) != 0)
        fprintf(stderr, "%s: want \"%s\", got \"%s\"\n", key, want, got ? got : "(null)");
    CU_ASSERT_TRUE(got && strcmp(got, want) == 0);
    CU_ASSERT_TRUE(conf(x, key) > 0 && conf(x, key) <= 1);
}

static void test_labels(void)
{
    json_object *x =
        extract("New applicant", "Job Board", "noreply@jobs.example",
                "A new candidate applied.\nName: Sam Rivera\nTitle: Client Service "
                "Associate\nLocation: Phoenix, AZ\nCurrent employer: Fidelity "
                "Investments\nPhone: 602-555-0188\nEmail: sam.rivera@example.com\n"
                "Website: https://samrivera.example.com\nIndustry: Financial Services\n");
    assert_str(x, "candidate_name", "Sam Rivera");
    assert_str(x, "job_title", "Client Service Associate");
    assert_str(x, "company_name", "Fidelity Investments");
    assert_str(x, "phone", "602-555-0188");
    assert_str(x, "email", "sam.rivera@example.com");
    assert_str(x, "website", "https://samrivera.example.com");
    assert_str(x, "industry", "Financial Services");
    assert_str(x, "referrer_name", NULL);
    assert_str(x, "linkedin_url", NULL);
    json_object *loc;
    CU_ASSERT_TRUE(json_object_object_get_ex(x, "location", &loc));
    CU_ASSERT_STRING_EQUAL(get(loc, "city"), "Phoenix");
    CU_ASSERT_STRING_EQUAL(get(loc, "state"), "AZ");
    CU_ASSERT_TRUE(conf(x, "candidate_name") >= 0.9);
    json_object_put(x);
}

static void test_phrases_and_referrer(void)
{
    json_object *x = extract(
        "Referral", "Maria Lopez", "maria@brightpath.example",
        "Hi team,\n\nI'd like to refer my colleague Daniel Kim for the Senior Financial Advisor "
        "opening. Daniel has 11 years with Edward Jones in Austin, TX.\n\nPhone: (512) 555-0142\n"
        "LinkedIn: https://www.linkedin.com/in/daniel-kim-cfp\n\nBest,\nMaria Lopez");
    assert_str(x, "candidate_name", "Daniel Kim");
    assert_str(x, "referrer_name", "Maria Lopez");
    assert_str(x, "job_title", "Senior Financial Advisor");
    assert_str(x, "company_name", "Edward Jones");
    assert_str(x, "phone", "(512) 555-0142");
    assert_str(x, "linkedin_url", "https://www.linkedin.com/in/daniel-kim-cfp");
    assert_str(x, "email", NULL); /* the sender is the referrer, not the candidate */
    json_object_put(x);

    x = extract("Candidate for Tax Associate", "Nina Patel", "nina@firm.example",
                "Laura Kim was referred by David Ross. She is a Tax Associate at KPMG in Denver, "
                "CO and works in accounting.\nlaura.kim@example.com");
    assert_str(x, "candidate_name", "Laura Kim");
    assert_str(x, "referrer_name", "David Ross");
    assert_str(x, "job_title", "Tax Associate");
    assert_str(x, "company_name", "KPMG");
    assert_str(x, "industry", "accounting");
    assert_str(x, "email", "laura.kim@example.com");
    json_object_put(x);

    /* an introduction is not a referral */
    x = extract("Candidate intro: Tom Becker, Branch Manager", "Harborstone Recruiting",
                "recruiting@harborstone.example",
                "Team - introducing Tom Becker, currently Branch Manager at Raymond James in "
                "Denver, CO. tom.becker@example.net / 720-555-0107.");
    assert_str(x, "candidate_name", "Tom Becker");
    assert_str(x, "referrer_name", NULL);
    assert_str(x, "job_title", "Branch Manager");
    assert_str(x, "company_name", "Raymond James");
    assert_str(x, "email", "tom.becker@example.net");
    assert_str(x, "phone", "720-555-0107");
    json_object_put(x);
}

static void test_first_person_sender(void)
{
    json_object *x = extract("Resume - Operations Manager", "Chen, Wei", "wei.chen@example.com",
                             "Please find my resume attached. I am an Operations Supervisor at "
                             "Charles Schwab in San Francisco, CA.\n\nBest,\nWei Chen");
    assert_str(x, "candidate_name", "Wei Chen");
    assert_str(x, "email", "wei.chen@example.com");
    assert_str(x, "job_title", "Operations Supervisor");
    json_object *loc;
    json_object_object_get_ex(x, "location", &loc);
    CU_ASSERT_STRING_EQUAL(get(loc, "city"), "San Francisco");
    CU_ASSERT_STRING_EQUAL(get(loc, "state"), "CA");
    CU_ASSERT_TRUE(conf(x, "email") < 0.9); /* a guess from the sender, not stated */
    json_object_put(x);
    /* a recruiting mailbox is never the candidate */
    x = extract("Opening", "Recruiting Team", "jobs@example.com", "I am applying for nothing.");
    assert_str(x, "candidate_name", NULL);
    assert_str(x, "email", NULL);
    json_object_put(x);
    /* current title as lower-case words */
    x = extract("Application", "Priya Raman", "priya@example.org",
                "I currently work at Northern Trust as a client service associate.");
    assert_str(x, "job_title", "client service associate");
    assert_str(x, "company_name", "Northern Trust");
    json_object_put(x);
}

static void test_formats(void)
{
    json_object *x = extract("x", "A B", "a@b.example",
                             "Name: Ahmed Hassan\nCall +1 305-555-0163 or 704.555.0131. Zip 78701, "
                             "year 2026, linkedin.com/in/ahmed-hassan-pm.");
    assert_str(x, "phone", "+1 305-555-0163");
    assert_str(x, "linkedin_url", "linkedin.com/in/ahmed-hassan-pm");
    json_object_put(x);
    /* too few digits, or digits glued to letters: not phones */
    x = extract("x", "A B", "a@b.example",
                "Name: Ahmed Hassan\nRef 555-0100, order A1234567890, id 12-34.");
    assert_str(x, "phone", NULL);
    assert_str(x, "website", NULL);
    json_object_put(x);
    x = extract("x", NULL, "a@b.example", "");
    for (int f = 0; f < RX_NFIELDS; f++) {
        json_object *v;
        CU_ASSERT_TRUE(json_object_object_get_ex(x, rx_fields[f], &v));
        CU_ASSERT_PTR_NULL(v);
    }
    json_object_put(x);
}

/* An email about no candidate gives nothing, even with a phone and a place. */
static void test_not_about_a_candidate(void)
{
    json_object *x =
        extract("Question about your services", "Smith & Partners", "office@smithlaw.example",
                "Hello, we are a law firm in Denver, CO and would like to know more "
                "about your services. Please call 303-555-0150.\nwww.smithlaw.example");
    for (int f = 0; f < RX_NFIELDS; f++) {
        json_object *v;
        CU_ASSERT_TRUE(json_object_object_get_ex(x, rx_fields[f], &v));
        CU_ASSERT_PTR_NULL(v);
    }
    json_object_put(x);
    /* a signature's web address is the candidate's website when nothing says otherwise */
    x = extract("Resume attached", "Tom Brennan", "tb@example.com",
                "I'm a Compliance Associate at Fidelity Investments.\n\nThanks,\nTom Brennan\n"
                "www.tombrennan.example");
    assert_str(x, "website", "www.tombrennan.example");
    CU_ASSERT_TRUE(conf(x, "website") < 0.7);
    json_object_put(x);
}

static void test_grounding(void)
{
    CU_ASSERT_TRUE(rx_grounded("a  Relationship\nBanker at", "Relationship Banker"));
    CU_ASSERT_FALSE(rx_grounded("Relationship Banker", "relationship banker"));
    CU_ASSERT_FALSE(rx_grounded("abc", ""));
    CU_ASSERT_FALSE(rx_grounded("abc", "abcd"));
    /* every value of a busy extraction is in the email */
    const char *body = "My name is Ana Lima. I'm a Senior Analyst at Acme Capital in Austin, TX "
                       "with experience in asset management.\nMobile: 512-555-0111\n"
                       "Website: www.analima.example\nlinkedin.com/in/ana-lima";
    json_object *x = extract("Application: Senior Analyst", "Ana Lima", "ana@example.com", body);
    char hay[1024];
    snprintf(hay, sizeof hay, "Application: Senior Analyst\nAna Lima ana@example.com\n%s", body);
    int n = 0;
    json_object_object_foreach(x, key, val)
    {
        if (!val || strcmp(key, "confidence") == 0)
            continue;
        if (json_object_is_type(val, json_type_object)) {
            json_object_object_foreach(val, k2, v2)
            {
                (void)k2;
                CU_ASSERT_TRUE(!v2 || rx_grounded(hay, json_object_get_string(v2)));
            }
            continue;
        }
        CU_ASSERT_TRUE(rx_grounded(hay, json_object_get_string(val)));
        n++;
    }
    CU_ASSERT_TRUE(n >= 8);
    assert_str(x, "industry", "asset management");
    assert_str(x, "website", "www.analima.example");
    assert_str(x, "candidate_name", "Ana Lima");
    json_object_put(x);
}

static void test_processor(void)
{
    fake_host fh;
    fh_init(&fh, rules_descriptor(), NULL);
    CU_ASSERT_EQUAL_FATAL(fh_create(&fh), 0);
    ik_record *ok =
        fh_record("a", json_tokener_parse("{\"sender_email\":\"x@y.z\",\"subject\":\"s\",\"body\":"
                                          "\"Name: Jo Park\\n\\nOn Mon, Bob wrote:\\n> Phone: "
                                          "212-555-0100\"}"));
    ik_record *bad = fh_record("b", json_tokener_parse("{\"body\":42}"));
    ik_record *recs[] = {ok, bad};
    ik_result res[2];
    memset(res, 0, sizeof res);
    CU_ASSERT_EQUAL(fh.plugin->process(fh.state, NULL, recs, 2, res), 0);
    CU_ASSERT_EQUAL(res[0].status, IK_OK);
    CU_ASSERT_EQUAL(res[1].status, IK_FAIL);
    CU_ASSERT_PTR_NOT_NULL(strstr(res[1].reason, "\"body\" must be string"));
    json_object *ex;
    CU_ASSERT_TRUE_FATAL(json_object_object_get_ex(ok->payload, "extraction", &ex));
    assert_str(ex, "candidate_name", "Jo Park");
    assert_str(ex, "phone", NULL); /* only in the quoted reply, which the diet removed */
    CU_ASSERT_STRING_EQUAL(fh_meta_get(ok, "extracted_by"), "rules");
    CU_ASSERT_EQUAL(fh_metric_value(&fh, "extractions_total"), 1);
    fh_record_free(ok);
    fh_record_free(bad);
    fh_free(&fh);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("rules", NULL, NULL);
    CU_add_test(s, "labelled fields", test_labels);
    CU_add_test(s, "phrases, referrals, introductions", test_phrases_and_referrer);
    CU_add_test(s, "first-person emails are about the sender", test_first_person_sender);
    CU_add_test(s, "phones, urls, empty input", test_formats);
    CU_add_test(s, "not about a candidate", test_not_about_a_candidate);
    CU_add_test(s, "grounding", test_grounding);
    CU_add_test(s, "the processor", test_processor);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
