"""test_gpt_batch_api.py: the gpt_batch processor's Batch API mode
(mode = "batch") in the real `intake` binary against the mock OpenAI server's
/files and /batches endpoints, both on 127.0.0.1 on free ports.

- every email ends delivered with its own extraction, at batch prices, or
  dead-lettered with its reason; follow-up rounds (halves, omitted, invalid)
  go out as new batches, never as synchronous requests;
- a failed batch and an expired one: their emails are retried, none lost;
- shutdown while a batch runs: the batch is cancelled, every email released;
- a rejected key: the stage pauses (no batch created), /health says why,
  SIGTERM releases the emails; the Azure dated URL form.
"""
import json
import os
import signal
import time
import unittest
import urllib.request

from harness import IntakeTest, free_port
from test_gpt_batch import KEY, MockOpenAIMixin

BATCH = ('mode = "batch"; batch_poll_interval = "100ms"; emails_per_request = 20; ')
PRICE_IN, PRICE_CACHED, PRICE_OUT = 0.125, 0.0125, 1.00  # gpt-5-mini batch, USD per 1M


class GptBatchApiTest(MockOpenAIMixin, IntakeTest):
    def batch_conf(self, extra="", **kw):
        return self.conf(max_items=kw.pop("max_items", 400), extra=BATCH + extra, **kw)

    def server_files(self):
        """The ids of the files the mock still holds."""
        req = urllib.request.Request("http://127.0.0.1:%d/v1/files" % self.mport,
                                     headers={"Authorization": "Bearer " + KEY})
        with urllib.request.urlopen(req, timeout=5) as r:
            return [f["id"] for f in json.loads(r.read().decode())["data"]]

    def assert_batch_prices(self, out):
        for rec in out:
            m = rec["meta"]
            tin, tout = int(m["gpt_input_tokens"]), int(m["gpt_output_tokens"])
            cost = float(m["gpt_cost_usd"])
            hi = (tin * PRICE_IN + tout * PRICE_OUT) / 1e6
            lo = (tin * PRICE_CACHED + tout * PRICE_OUT) / 1e6
            # rounding of the per-email shares: a few tokens either way
            self.assertLessEqual(cost, hi * 1.01 + 1e-8, rec["id"])
            self.assertGreaterEqual(cost, lo * 0.99 - 1e-8, rec["id"])

    def test_every_email_gets_its_own_answer_at_batch_prices(self):
        n = 600
        markers, expect_dead = {}, {}
        for i in (13, 404):
            markers[i] = "MOCK_OMIT"
            expect_dead[i] = "model omitted this email"
        for i in (77, 512):
            markers[i] = "MOCK_CONTENT_FILTER"
            expect_dead[i] = "content filter"
        markers[250] = "MOCK_REFUSE"
        expect_dead[250] = "model refused"
        for i in (5, 321):
            markers[i] = "MOCK_OMIT_IN_BATCH"  # recovered in a smaller request
        for i in (99, 444):
            markers[i] = "MOCK_INVALID_IN_BATCH"  # recovered when sent alone
        self.write_emails(n, markers)
        self.start_mock("--batch-delay-ms", "200")
        self.fault("context_length", 1, min_emails=2)  # one line split in half
        self.fault("server_error", 1, min_emails=2)    # one line retried later
        r = self.run_intake("run", self.batch_conf(), timeout=240, check=0)
        s = self.summary(r.stderr)["gpt"]
        self.assertEqual(s["in"], n)
        self.assertEqual(s["released"], 0)
        self.assertEqual(s["delivered"] + s["dead_lettered"], n)
        out = self.jsonl(self.path("out.jsonl"))
        ids = [rec["id"] for rec in out]
        self.assertEqual(len(ids), len(set(ids)), "an email delivered twice")
        self.check_delivered(out)
        self.assert_batch_prices(out)
        dead = self.dead_letters()
        self.assertEqual(set(ids) | set(dead), {"m%05d" % i for i in range(n)})
        self.assertEqual({int(k[1:]) for k in dead}, set(expect_dead))
        for i, why in expect_dead.items():
            self.assertIn(why, dead["m%05d" % i])
        stats = self.mock_call("/mock/stats")
        self.assertEqual(stats["pending_faults"], 0, "not every fault was exercised")
        self.assertEqual(stats["responses"] + stats["chat"], 0, "a synchronous request was sent")
        # the first batches, then follow-up rounds for splits, omissions,
        # invalid results and the retried 5xx line
        self.assertGreaterEqual(stats["batches_created"], 3)
        self.assertEqual(stats["batches_completed"], stats["batches_created"])
        # input files and result files are deleted once read
        self.assertGreater(stats["files_deleted"], stats["files_uploaded"])
        self.assertEqual(self.server_files(), [])
        self.assertGreater(s["retries"], 0)  # the 5xx line
        self.assertNotIn(KEY, r.stderr + r.stdout)

    def test_failed_and_expired_batches_are_retried(self):
        n = 120
        self.write_emails(n, {})
        self.start_mock("--batch-delay-ms", "100")
        self.fault("batch_failed", 1)
        self.fault("batch_expired", 1)
        r = self.run_intake("run", self.batch_conf(max_items=60), timeout=120, check=0)
        s = self.summary(r.stderr)["gpt"]
        self.assertEqual(s["delivered"], n)
        self.assertEqual(s["dead_lettered"], 0)
        self.assertGreater(s["retries"], 0)
        out = self.jsonl(self.path("out.jsonl"))
        self.assertEqual(len({rec["id"] for rec in out}), n)
        self.check_delivered(out)
        stats = self.mock_call("/mock/stats")
        self.assertEqual(stats["batches_failed"], 1)
        self.assertEqual(stats["batches_expired"], 1)
        self.assertIn("injected batch failure", r.stderr)

    def test_shutdown_cancels_the_running_batch_and_releases(self):
        n = 50
        self.write_emails(n, {})
        self.start_mock("--batch-delay-ms", "100")
        self.fault("batch_never", 1)
        p = self.start_intake("run", self.batch_conf(follow="true"))
        self.wait_for(lambda: self.mock_call("/mock/stats")["batches_created"] >= 1, timeout=30,
                      what="the batch to be created")
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        s = self.summary(err)["gpt"]
        self.assertEqual(s["released"], n)
        self.assertEqual(s["delivered"] + s["dead_lettered"], 0)
        stats = self.mock_call("/mock/stats")
        self.assertEqual(stats["batches_cancelled"], 1)
        self.assertIn("cancelled", err)

    def test_a_waiting_batch_is_not_a_stall(self):
        # health_window 3 s, a batch that never ends: the polls (every
        # 100 ms) say the call is alive, so /health stays 200 for twice the
        # window (without them it turns 503 after 3 s)
        self.write_emails(20, {})
        self.start_mock("--batch-delay-ms", "100")
        self.fault("batch_never", 1)
        admin = free_port()
        conf = self.batch_conf(follow="true", admin=admin)
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(text.replace('name = "gpt";', 'name = "gpt"; health_window = "3s";'))
        p = self.start_intake("run", conf)
        self.wait_for(lambda: self.mock_call("/mock/stats")["batches_created"] >= 1, timeout=30,
                      what="the batch to be created")
        statuses = []
        for _ in range(24):
            time.sleep(0.25)
            statuses.append(self.http_get(admin, "/health")[0])
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        self.assertEqual(statuses, [200] * 24, err[-2000:])
        self.assertEqual(self.summary(err)["gpt"]["released"], 20)

    def test_rejected_key_pauses_and_reports(self):
        self.write_emails(30, {})
        self.start_mock("--batch-delay-ms", "100")
        admin = free_port()
        conf = self.batch_conf(follow="true", admin=admin)
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(text.replace(KEY, "sk-wrong-key-000000"))
        p = self.start_intake("run", conf)
        # the plugin's reason shows as soon as the 401 comes back, the
        # engine's "down since" once the call has returned: wait for both
        status, body = self.wait_for(
            lambda: (lambda h: h if h and "stage 'gpt_batch' down since" in h[1] else None)(
                self.unhealthy(admin, "rejected")), timeout=30, what="/health to report the key")
        self.assertEqual(status, 503)
        self.assertIn("stage 'gpt_batch' down since", body)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        s = self.summary(err)["gpt"]
        self.assertEqual(s["released"], 30)
        self.assertEqual(s["dead_lettered"], 0)
        self.assertEqual(self.mock_call("/mock/stats")["batches_created"], 0)
        self.assertNotIn("sk-wrong-key-000000", err)

    def test_azure_dated_form(self):
        self.write_emails(40, {})
        self.start_mock("--batch-delay-ms", "100")
        base = "http://127.0.0.1:%d" % self.mport
        extra = ('api = "chat"; provider = "azure"; azure_deployment = "gpt5mini-batch"; '
                 'azure_api_version = "2025-04-01-preview";')
        r = self.run_intake("run", self.batch_conf(base=base, extra=extra), timeout=60, check=0)
        self.assertEqual(self.summary(r.stderr)["gpt"]["delivered"], 40, r.stderr[-2000:])
        self.check_delivered(self.jsonl(self.path("out.jsonl")))
        self.assertEqual(self.mock_call("/mock/stats")["batches_completed"], 1)


if __name__ == "__main__":
    unittest.main()
