"""A dead letter the file source cannot write: the record stays in the source
(read again next run), and the run says so: the summary counts it released
and "not stored", /health turns unhealthy, /metrics counts it, and `intake
run` exits 6 instead of 0. Once the folder is fixed, the next run
dead-letters it for real."""
import json
import os
import re
import signal
import unittest

from harness import IntakeTest, free_port

PIPELINE = """
pipelines = ( {
  name = "ns";
  retry = { max_attempts = 1; };
  batch = { max_wait = "20ms"; };
  source = { plugin = "file"; path = "%(d)s/in"; done_dir = "%(d)s/done";
             dead_letter_dir = "%(d)s/dl"; follow = %(follow)s; poll_interval = "50ms"; };
  processors = ( { plugin = "test_fault"; mode = "permanent"; match = "bad"; } );
  sinks = ( { plugin = "stdout"; path = "%(d)s/out.jsonl"; } );
} );
"""

EXIT_NOT_STORED = 6


class NotStoredTest(IntakeTest):
    def setUp(self):
        super().setUp()
        self.write("in/mail.jsonl", "".join(json.dumps({"id": i, "subject": "s"}) + "\n"
                                            for i in ("good-1", "bad-1", "good-2")))
        # A regular file where the dead-letter folder should be: no one,
        # root included, can create dl/bad-1.json under it.
        self.write("dl", "not a folder\n")

    def not_stored(self, stderr):
        m = re.search(r"summary: pipeline 'ns': .* in flight, (\d+) not stored", stderr)
        return int(m.group(1)) if m else 0

    def test_summary_exit_code_and_next_run(self):
        conf = self.config(PIPELINE % dict(d=self.dir, follow="false"))
        r = self.run_intake("run", conf, check=EXIT_NOT_STORED)
        s = self.summary(r.stderr)["ns"]
        self.assertEqual((s["in"], s["delivered"], s["dead_lettered"], s["released"]),
                         (3, 2, 0, 1), r.stderr[-3000:])
        self.assertEqual(self.not_stored(r.stderr), 1, r.stderr[-3000:])
        self.assertRegex(r.stderr, r"record bad-1 was not dead-lettered: cannot write its dead "
                                   r"letter to [^ ]*/dl: ")
        self.assertEqual(r.stderr.count("record bad-1 was not dead-lettered"), 1)
        # the input stays for the next run; nothing was delivered twice
        self.assertTrue(os.path.exists(self.path("in", "mail.jsonl")))
        self.assertEqual(sorted(x["id"] for x in self.jsonl(self.path("out.jsonl"))),
                         ["good-1", "good-2"])

        # fixed: the next run reads only the unsettled record and dead-letters it
        os.unlink(self.path("dl"))
        r = self.run_intake("run", conf, check=0)
        s = self.summary(r.stderr)["ns"]
        self.assertEqual((s["in"], s["delivered"], s["dead_lettered"], s["released"]),
                         (1, 0, 1, 0), r.stderr[-3000:])
        self.assertEqual(self.not_stored(r.stderr), 0)
        with open(self.path("dl", "bad-1.json")) as f:
            self.assertIn("permanent", json.load(f)["intake_dead_letter"]["reason"])
        self.assertFalse(os.path.exists(self.path("in", "mail.jsonl")))
        self.assertTrue(os.path.exists(self.path("done", "mail.jsonl")))
        self.assertEqual(len(self.jsonl(self.path("out.jsonl"))), 2)

    def test_health_and_metrics(self):
        port = free_port()
        conf = self.config(PIPELINE % dict(d=self.dir, follow="true"), admin=True)
        p = self.start_intake("run", "--admin", "127.0.0.1:%d" % port, conf)

        def unhealthy():
            try:
                status, _, body = self.http_get(port, "/health")
            except OSError:
                return None
            h = json.loads(body)
            return h if status == 503 and h["pipelines"][0]["not_stored"] == 1 else None
        h = self.wait_for(unhealthy, what="/health reporting the record not stored")
        reasons = " ".join(h["pipelines"][0]["reasons"])
        self.assertIn("1 record(s) not stored", reasons)
        self.assertIn("record bad-1: cannot write its dead letter", reasons)
        _, _, metrics = self.http_get(port, "/metrics")
        self.assertRegex(metrics, r'(?m)^intake_records_settle_failed_total\{pipeline="ns"\} 1$')
        self.assertRegex(metrics, r'(?m)^intake_records_dead_lettered_total\{pipeline="ns"\} 0$')
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, EXIT_NOT_STORED, err[-3000:])
        self.assertEqual(self.not_stored(err), 1)


if __name__ == "__main__":
    unittest.main()
