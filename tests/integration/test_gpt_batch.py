"""test_gpt_batch.py: the gpt_batch processor in the real `intake` binary
against the mock OpenAI server (tools/mock-openai), each started on 127.0.0.1
on a free port and stopped afterwards.

- 5,000 emails with every injected failure: each email ends delivered with
  its own extraction or dead-lettered with the expected reason; none lost.
- insufficient_quota: the stage is paused (nothing released, nothing sent
  while blocked), /health 503 with the reason; SIGTERM releases the emails.
- a rejected key (401) or insufficient_quota for 1.5 s in a finite run of
  1,000 emails: the stage pauses and resumes, the run ends with all 1,000
  delivered and none released.
- per-minute limits learned from the x-ratelimit headers: no 429 storm.
- Chat Completions and the Azure URL form; the key never printed.
- A lone email whose answer was truncated is retried by the engine, not
  dead-lettered at once; out of attempts, the dead letter says why.
- A request timeout shorter than a large request's latency: requests are
  split until they finish in time; every email delivered, none
  dead-lettered.
- A schema the API refuses (400 invalid_json_schema) fails the emails
  without splitting requests; a prompt_cache_key over 64 characters stops
  the start with a clear error; 429s in OpenAI's shape (the wait in the
  message) and Azure's (retry-after, retry-after-ms) are both waited out.
- The model's confidence, confidence from grounding (the default) and
  compact keys deliver the same extractions but for the confidence, with
  shorter answers.
"""
import glob
import json
import os
import signal
import subprocess
import time
import unittest

from harness import BUILD, SRC, IntakeTest, free_port

MOCK = os.path.join(BUILD, "tools", "mock-openai", "mock-openai")
RANKS = os.path.join(SRC, "tests", "reference", "tokenizer", "node_modules", "gpt-tokenizer", "data",
                     "o200k_base.tiktoken")
KEY = "sk-it-0123456789abcdef"

PIPELINE = """
pipelines = ( {
  name = "gpt";
  inflight_limit = 2000;
  batch = { max_items = %(max_items)d; max_wait = "50ms"; };
  retry = { max_attempts = 6; initial_backoff = "50ms"; max_backoff = "500ms"; };
  source = { plugin = "file"; path = "%(dir)s/in"; on_complete = "none"; follow = %(follow)s;
             poll_interval = "100ms";
             done_dir = "%(dir)s/done"; dead_letter_dir = "%(dir)s/dead"; };
  processors = ( { plugin = "gpt_batch"; concurrency = %(concurrency)d;
      catalog = "%(src)s/etc/models.conf";
      schema_file = "%(schema)s";
      instructions_file = "%(src)s/etc/prompts/extraction.txt";
      base_url = "%(base)s"; api_key = "%(key)s"; tokenizer_file = "%(ranks)s";
      timeout = "%(timeout)s"; quota_recheck = "%(recheck)s"; %(extra)s } );
  sinks = ( { plugin = "stdout"; path = "%(dir)s/out.jsonl"; format = "record";
              meta_keys = "gpt_cost_usd,gpt_input_tokens,gpt_output_tokens,gpt_batch_emails,gpt_ungrounded"; } );
} );
"""


def email(i, marker=""):
    body = ("Hello team,\n\nPlease consider this candidate.\nCandidate: Person %d Walker\n"
            "Title: Wealth Advisor %d\nCompany: Firm %d\nLocation: Austin, TX\n"
            "Phone: (512) 555-%04d\nEmail: person%d@example.com\n%s\nThanks" %
            (i, i, i, i % 10000, i, marker))
    return {"id": "m%05d" % i, "sender_email": "rec%d@agency.com" % i,
            "sender_name": "Recruiter %d" % i, "subject": "Candidate %d" % i, "body": body,
            "attachments": []}


class MockOpenAIMixin:
    """Starts the mock OpenAI server per test and writes pipelines for it;
    mixed into IntakeTest classes here and in test_gpt_batch_api.py."""

    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.exists(MOCK), "mock-openai not built")
        self.assertTrue(os.path.exists(RANKS), "%s missing: run tools/deps" % RANKS)
        self.mock = None

    def tearDown(self):
        if self.mock and self.mock.poll() is None:
            self.mock.send_signal(signal.SIGTERM)
            self.mock.wait(10)
        if self.mock:
            self.mock.stdout.close()
        super().tearDown()

    def start_mock(self, *args):
        self.mport = free_port()
        self.mock = subprocess.Popen([MOCK, "--port", str(self.mport), "--key", KEY,
                                      "--rank-file", RANKS, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.mock.stdout.readline()
        self.assertIn("listening", line)

    def mock_call(self, path, body=None):
        import urllib.request
        data = json.dumps(body).encode() if body is not None else None
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.mport, path), data=data,
                                    timeout=5) as r:
            return json.loads(r.read().decode())

    def fault(self, name, count=1, min_emails=1):
        self.mock_call("/mock/faults", {"fault": name, "count": count, "min_emails": min_emails})

    def write_emails(self, n, markers):
        os.makedirs(self.path("in"), exist_ok=True)
        with open(self.path("in", "emails.jsonl"), "w") as f:
            for i in range(n):
                f.write(json.dumps(email(i, markers.get(i, ""))) + "\n")

    def conf(self, max_items=50, concurrency=4, extra="", follow="false", base=None, admin=None,
             timeout="1s", schema=None, recheck="1h"):
        schema = schema or os.path.join(SRC, "etc", "extraction.schema.json")
        body = PIPELINE % dict(dir=self.dir, src=SRC, ranks=RANKS, key=KEY, extra=extra,
                               schema=schema,
                               base=base or "http://127.0.0.1:%d/v1" % self.mport,
                               max_items=max_items, concurrency=concurrency, follow=follow,
                               timeout=timeout, recheck=recheck)
        head = ""
        if admin:
            head = 'admin = { enabled = true; listen = "127.0.0.1:%d"; };\n' % admin
        return self.config(body, admin=bool(admin), extra=head)

    def dead_letters(self):
        """{id: reason} from the file source's dead-letter folder."""
        out = {}
        for p in glob.glob(self.path("dead", "**", "*"), recursive=True):
            if not os.path.isfile(p):
                continue
            with open(p) as f:
                text = f.read()
            docs = []
            try:
                docs = [json.loads(text)]
            except ValueError:
                docs = [json.loads(l) for l in text.splitlines() if l.strip()]
            for d in docs:
                for o in (d if isinstance(d, list) else [d]):
                    dl = o.get("intake_dead_letter") if isinstance(o, dict) else None
                    if dl:
                        out[o.get("id") or dl.get("id")] = dl.get("reason", "")
        return out

    def check_delivered(self, out):
        for rec in out:
            i = int(rec["id"][1:])
            ext = rec["payload"]["extraction"]
            self.assertEqual(ext["candidate_name"], "Person %d Walker" % i, rec["id"])
            self.assertEqual(ext["email"], "person%d@example.com" % i, rec["id"])
            self.assertGreater(float(rec["meta"]["gpt_cost_usd"]), 0)

    def unhealthy(self, port, what="insufficient_quota"):
        try:
            status, _, body = self.http_get(port, "/health")
        except OSError:
            return None
        return (status, body) if status == 503 and what in body else None


class GptBatchTest(MockOpenAIMixin, IntakeTest):
    def test_5000_emails_with_every_failure(self):
        n = 5000
        markers = {}
        expect_dead = {}
        for i in range(17, n, 997):
            markers[i] = "MOCK_OMIT"
            expect_dead[i] = "model omitted this email"
        for i in range(101, n, 1201):
            markers[i] = "MOCK_CONTENT_FILTER"
            expect_dead[i] = "content filter"
        for i in range(333, n, 1499):
            markers[i] = "MOCK_REFUSE"
            expect_dead[i] = "model refused"
        for i in range(555, n, 1777):
            markers[i] = "MOCK_INVALID"
            expect_dead[i] = "invalid result from the model"
        for i in range(777, n, 1333):
            markers[i] = "MOCK_OMIT_IN_BATCH"  # recovered in a smaller request
        for i in range(999, n, 1111):
            markers[i] = "MOCK_INVALID_IN_BATCH"  # recovered when retried alone
        self.write_emails(n, markers)
        self.start_mock("--timeout-sleep-ms", "2500")
        for name, count in (("rate_limit", 3), ("server_error", 2), ("overloaded", 1),
                            ("incomplete", 2), ("truncated", 2), ("duplicate", 2),
                            ("unknown", 2), ("context_length", 1), ("timeout", 1)):
            # Faults answered by splitting go to multi-email requests only: on a
            # lone email they would dead-letter it, and which email depends on
            # scheduling. Single-email failures come from the markers above.
            self.fault(name, count, min_emails=2)
        r = self.run_intake("run", self.conf(), timeout=280, check=0)
        s = self.summary(r.stderr)["gpt"]
        self.assertEqual(s["in"], n)
        self.assertEqual(s["released"], 0)
        self.assertEqual(s["inflight"], 0)
        self.assertEqual(s["delivered"] + s["dead_lettered"], n)
        out = self.jsonl(self.path("out.jsonl"))
        ids = [rec["id"] for rec in out]
        self.assertEqual(len(ids), len(set(ids)), "an email delivered twice")
        self.check_delivered(out)
        dead = self.dead_letters()
        self.assertEqual(set(ids) | set(dead), {"m%05d" % i for i in range(n)})
        self.assertEqual(set(ids) & set(dead), set())
        self.assertEqual({int(k[1:]) for k in dead}, set(expect_dead))
        for i, why in expect_dead.items():
            self.assertIn(why, dead["m%05d" % i])
        stats = self.mock_call("/mock/stats")
        self.assertEqual(stats["pending_faults"], 0, "not every fault was exercised")
        self.assertEqual(stats["stored"], 0)
        self.assertGreater(s["retries"], 0)  # the 5xx and the timeout were retried
        # batching: far fewer requests than emails. How full each batch gets
        # depends on scheduling (partial batches leave when waiting cannot
        # fill them), so the bound is structural, not a performance figure:
        # tools/bench/gpt measures that.
        self.assertLess(stats["requests"], n / 10)
        self.assertNotIn(KEY, r.stderr + r.stdout)

    def test_insufficient_quota_pauses_and_reports(self):
        self.write_emails(30, {})
        self.start_mock()
        # Every request meets the quota: on a loaded machine the 50 ms max_wait
        # may cut the 30 emails into more than one request, all in flight at once.
        self.fault("insufficient_quota", 1000)
        admin = free_port()
        p = self.start_intake("run", self.conf(follow="true", admin=admin))
        # the plugin's health reports the quota as soon as the 429 comes
        # back, the engine's "down since" once the call has returned: wait
        # for both
        status, body = self.wait_for(
            lambda: (lambda h: h if h and "stage 'gpt_batch' down since" in h[1] else None)(
                self.unhealthy(admin)), timeout=30, what="/health to report the quota")
        self.assertEqual(status, 503)
        self.assertIn("insufficient_quota", body)
        self.assertIn("stage 'gpt_batch' down since", body)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        s = self.summary(err)["gpt"]
        self.assertEqual(s["dead_lettered"], 0)
        self.assertEqual(s["delivered"], 0)
        self.assertEqual(s["released"], 30)
        # stopped sending: at most the one wave of `concurrency` (4) requests
        # already in flight when the block began, never a retry
        self.assertLessEqual(self.mock_call("/mock/stats")["requests"], 4)
        self.assertNotIn(KEY, err)

    def outage_finishes(self, fault):
        # the case: the API refuses every request for 1.5 s in a
        # finite run of 1,000 emails; the stage pauses instead of releasing
        # (formerly 980 released and exit 0 with them undone)
        n = 1000
        self.write_emails(n, {})
        self.start_mock()
        self.mock_call("/mock/faults", {"fault": fault, "for_ms": 1500})
        r = self.run_intake("run", self.conf(recheck="300ms"), timeout=240, check=0)
        s = self.summary(r.stderr)["gpt"]
        self.assertEqual(s["in"], n)
        self.assertEqual(s["delivered"], n, r.stderr[-3000:])
        self.assertEqual(s["released"], 0)
        self.assertEqual(s["dead_lettered"], 0)
        out = self.jsonl(self.path("out.jsonl"))
        self.assertEqual({rec["id"] for rec in out}, {"m%05d" % i for i in range(n)})
        self.check_delivered(out)
        # the stage goes down with the HTTP error, or, when another worker met
        # it first, with the batch not sent because of it
        self.assertRegex(r.stderr, r"destination down: (not sent: )?(HTTP )?4[0-9][0-9]")
        self.assertIn("destination up again after", r.stderr)
        self.assertGreater(self.mock_call("/mock/stats")["errors"], 0, "the outage was met")
        self.assertNotIn(KEY, r.stderr + r.stdout)

    def test_rejected_key_for_a_while_pauses_and_finishes(self):
        self.outage_finishes("unauthorized")

    def test_insufficient_quota_for_a_while_pauses_and_finishes(self):
        self.outage_finishes("insufficient_quota")

    def test_limits_from_headers_avoid_429_storm(self):
        n = 160
        self.write_emails(n, {})
        self.start_mock("--tpm", "40000", "--rpm", "1000")
        t0 = time.time()
        r = self.run_intake("run", self.conf(max_items=8, concurrency=4), timeout=200, check=0)
        s = self.summary(r.stderr)["gpt"]
        self.assertEqual(s["delivered"], n)
        stats = self.mock_call("/mock/stats")
        # the first requests go out before any header was seen; after that the
        # client-side limiter keeps the pipeline under the limit
        self.assertLessEqual(stats["rate_limited"], 4, stats)
        # connections are kept and reused: one per request in flight, not
        # one per request (20+ requests, 4 at a time)
        self.assertGreaterEqual(stats["requests"], 20)
        self.assertLessEqual(stats["connections"], 8, stats)
        self.assertGreater(stats["tokens_in"] + stats["tokens_out"], 40000)
        self.assertGreater(time.time() - t0, 0)

    def test_crossed_answers_are_sent_again_alone(self):
        n = 60
        self.write_emails(n, {7: "MOCK_UNGROUNDED"})
        self.start_mock()
        self.fault("crossed", 2, min_emails=2)
        r = self.run_intake("run", self.conf(max_items=20, concurrency=2), timeout=60, check=0)
        s = self.summary(r.stderr)["gpt"]
        self.assertEqual(s["delivered"], n)
        out = self.jsonl(self.path("out.jsonl"))
        # each email carries its own values, though two requests came back
        # with two answers traded
        self.check_delivered(out)
        self.assertEqual(self.mock_call("/mock/stats")["pending_faults"], 0)
        self.assertEqual(r.stderr.count("of another email of request"), 4, r.stderr[-3000:])
        # the log names the record, not the short id the request gave it
        self.assertRegex(r.stderr, r"the answer for m\d{5} carries ")
        # a value found nowhere is kept and flagged, not retried
        by_id = {rec["id"]: rec for rec in out}
        self.assertEqual(by_id["m00007"]["payload"]["extraction"]["phone"], "(999) 555-0199")
        self.assertEqual(by_id["m00007"]["meta"].get("gpt_ungrounded"), "phone")
        self.assertNotIn("gpt_ungrounded", by_id["m00008"]["meta"])

    def test_chat_and_azure_forms(self):
        self.write_emails(40, {})
        self.start_mock()
        base = "http://127.0.0.1:%d" % self.mport
        extra = 'api = "chat"; provider = "azure"; azure_deployment = "gpt5mini-prod";'
        r = self.run_intake("run", self.conf(base=base, extra=extra), timeout=60, check=0)
        self.assertEqual(self.summary(r.stderr)["gpt"]["delivered"], 40)
        out = self.jsonl(self.path("out.jsonl"))
        self.check_delivered(out)
        stats = self.mock_call("/mock/stats")
        self.assertEqual(stats["chat"], stats["requests"])
        self.assertNotIn(KEY, r.stderr + r.stdout)

    def test_long_azure_url_is_used_whole(self):
        # base_url may have 1,024 bytes and the deployment name has no bound
        # of its own: the request goes to the whole URL they make (cut at a
        # fixed buffer, it would lose its endpoint and get a 404).
        self.write_emails(5, {})
        self.start_mock()
        base = "http://127.0.0.1:%d/%s" % (self.mport, "proxy-segment/" * 70)
        extra = ('api = "chat"; provider = "azure"; azure_api_version = "2024-10-21"; '
                 'azure_deployment = "%s";' % ("d" * 1100))
        r = self.run_intake("run", self.conf(base=base.rstrip("/"), extra=extra), timeout=60,
                            check=0)
        self.assertEqual(self.summary(r.stderr)["gpt"]["delivered"], 5, r.stderr[-2000:])
        self.assertEqual(self.mock_call("/mock/stats")["chat"], 1)

    def test_lone_truncated_email_is_retried(self):
        self.write_emails(3, {})
        self.start_mock()
        self.fault("incomplete", 1)  # the first request, of one email
        r = self.run_intake("run", self.conf(max_items=1, concurrency=1), timeout=60, check=0)
        s = self.summary(r.stderr)["gpt"]
        self.assertEqual((s["delivered"], s["dead_lettered"]), (3, 0), r.stderr[-3000:])
        self.assertGreaterEqual(s["retries"], 1)
        self.check_delivered(self.jsonl(self.path("out.jsonl")))

    def test_truncated_email_out_of_attempts_says_why(self):
        self.write_emails(2, {})
        self.start_mock()
        # no answer fits in 40 output tokens: every attempt is cut off
        extra = "max_output_tokens = 40; reasoning_reserve = 0; output_tokens_per_email = 1;"
        r = self.run_intake("run", self.conf(max_items=1, concurrency=1, extra=extra),
                            timeout=60, check=0)
        s = self.summary(r.stderr)["gpt"]
        self.assertEqual(s["dead_lettered"], 2)
        self.assertEqual(self.mock_call("/mock/stats")["requests"], 12)  # 6 attempts each
        dead = self.dead_letters()
        for i in range(2):
            self.assertIn("gave up after 6 attempts: output truncated at max_output_tokens=40",
                          dead["m%05d" % i])

    def test_timeouts_shrink_requests(self):
        # ~150 output tokens per email at 3000 tokens/s: a request of 48
        # emails takes ~2.4 s and one of 12 ~0.6 s, past the 0.5 s timeout;
        # one of 6 takes ~0.32 s
        n = 96
        self.write_emails(n, {})
        self.start_mock("--tps", "3000", "--ttft-ms", "20")
        r = self.run_intake("run", self.conf(max_items=48, concurrency=2, timeout="500ms"),
                            timeout=200, check=0)
        s = self.summary(r.stderr)["gpt"]
        self.assertEqual((s["delivered"], s["dead_lettered"]), (n, 0), r.stderr[-3000:])
        self.check_delivered(self.jsonl(self.path("out.jsonl")))
        self.assertEqual(self.dead_letters(), {})
        stats = self.mock_call("/mock/stats")
        self.assertGreaterEqual(stats["requests"], 2 * 7)  # 48, 24, 24, 12 x 4 timed out
        self.assertNotIn(KEY, r.stderr)

    def test_schema_error_fails_without_splitting(self):
        # a format strict mode does not take: the API answers every request
        # with 400 invalid_json_schema, whose message says "In context=(...)";
        # splitting cannot mend a schema, so no request is split
        with open(os.path.join(SRC, "etc", "extraction.schema.json")) as f:
            schema = json.load(f)
        schema["properties"]["website"]["format"] = "uri"
        path = self.write("uri.schema.json", json.dumps(schema))
        n = 16
        self.write_emails(n, {})
        self.start_mock()
        r = self.run_intake("run", self.conf(max_items=n, concurrency=1, schema=path),
                            timeout=60, check=0)
        s = self.summary(r.stderr)["gpt"]
        self.assertEqual(s["dead_lettered"], n)
        dead = self.dead_letters()
        for i in range(n):
            self.assertIn("HTTP 400 invalid_json_schema: Invalid schema for response_format "
                          "'email_extractions': In context=(", dead["m%05d" % i])
        # one request per packed group; split down to single emails it was 2n - 1
        # (`responses` counts the HTTP requests, refused ones included)
        self.assertLess(self.mock_call("/mock/stats")["responses"], n)

    def test_prompt_cache_key_over_64_refused_at_start(self):
        self.write_emails(3, {})
        self.start_mock()
        extra = 'prompt_cache_key = "%s";' % ("k" * 70)
        r = self.run_intake("run", self.conf(extra=extra), timeout=60, check=3)
        self.assertIn("option prompt_cache_key: 70 characters; the API takes at most 64",
                      r.stderr)
        self.assertNotIn("k" * 70, r.stderr)
        self.assertEqual(self.mock_call("/mock/stats")["requests"], 0)
        # 64 is taken: every email delivered
        extra = 'prompt_cache_key = "%s";' % ("k" * 64)
        r = self.run_intake("run", self.conf(extra=extra), timeout=60, check=0)
        self.assertEqual(self.summary(r.stderr)["gpt"]["delivered"], 3)

    def rate_limited_run(self, *mock_args):
        self.write_emails(12, {})
        self.start_mock(*mock_args)
        self.fault("rate_limit", 3)
        r = self.run_intake("run", self.conf(max_items=4, concurrency=1), timeout=60, check=0)
        s = self.summary(r.stderr)["gpt"]
        self.assertEqual((s["delivered"], s["dead_lettered"]), (12, 0), r.stderr[-3000:])
        self.check_delivered(self.jsonl(self.path("out.jsonl")))
        stats = self.mock_call("/mock/stats")
        self.assertEqual(stats["rate_limited"], 3)
        self.assertEqual(stats["pending_faults"], 0)
        self.assertNotIn("malformed", r.stderr)

    def test_rate_limit_openai_style(self):
        # OpenAI's 429: no retry-after, the wait in the message
        self.rate_limited_run()

    def test_rate_limit_azure_style(self):
        # Azure's 429: retry-after and retry-after-ms
        self.rate_limited_run("--retry-header", "azure")

    def test_confidence_and_compact_keys_deliver_the_same_extraction(self):
        """The same emails with the model's confidence, with the default
        (confidence from grounding) and with compact keys: the delivered
        extractions are equal but for the confidence, compact keys change
        nothing, and each option shortens the answers (output tokens)."""
        n = 40
        self.write_emails(n, {5: "MOCK_UNGROUNDED"})
        runs = {}
        for name, extra in (("model", "model_confidence = true;"), ("grounding", ""),
                            ("compact", "compact_keys = true;")):
            self.start_mock()
            r = self.run_intake("run", self.conf(max_items=20, concurrency=2, extra=extra),
                                timeout=60, check=0)
            self.assertEqual(self.summary(r.stderr)["gpt"]["delivered"], n, r.stderr[-2000:])
            out = {rec["id"]: rec["payload"]["extraction"]
                   for rec in self.jsonl(self.path("out.jsonl"))}
            runs[name] = (out, self.mock_call("/mock/stats")["tokens_out"])
            os.remove(self.path("out.jsonl"))
            self.mock.send_signal(signal.SIGTERM)
            self.mock.wait(10)
            self.mock.stdout.close()
            self.mock = None

        def without(ext):
            return {k: v for k, v in ext.items() if k != "confidence"}
        model, grounding, compact = (runs[k][0] for k in ("model", "grounding", "compact"))
        self.assertEqual(len(model), n)
        for i in model:
            self.assertEqual(without(model[i]), without(grounding[i]), i)
            self.assertEqual(grounding[i], compact[i], i)
        # the model's confidence as the mock gives it; from grounding: the
        # name and address occur verbatim, the invented phone nowhere, a
        # null field is 0
        self.assertEqual(model["m00001"]["confidence"]["candidate_name"], 0.9)
        conf = grounding["m00001"]["confidence"]
        self.assertEqual((conf["candidate_name"], conf["email"], conf["location"],
                          conf["website"]), (0.9, 0.9, 0.9, 0))
        self.assertEqual(grounding["m00005"]["confidence"]["phone"], 0.2)
        out_model, out_grounding, out_compact = (runs[k][1] for k in ("model", "grounding",
                                                                      "compact"))
        self.assertLess(out_grounding, 0.75 * out_model)
        self.assertLess(out_compact, out_grounding)


if __name__ == "__main__":
    unittest.main()
