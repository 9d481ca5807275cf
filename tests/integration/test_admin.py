"""The admin server: /health says why when data stops moving, /metrics is
Prometheus text with per-pipeline and per-stage series."""
import json
import re
import signal
import unittest

from harness import IntakeTest, free_port

PIPELINE = """
admin = { listen = "127.0.0.1:%(port)d"; };
pipelines = ( {
  name = "h";
  health_window = "%(window)s";
  retry = { max_attempts = %(attempts)d; initial_backoff = "1ms"; max_backoff = "10ms"; };
  source = { plugin = "test_gen"; count = 1000000; emit_delay = "2ms"; };
  processors = ( { plugin = "%(proc)s"; %(procopts)s } );
  sinks = ( { plugin = "stdout"; path = "%(d)s/out.jsonl"; } );
} );
"""


class AdminTest(IntakeTest):
    def start(self, proc, procopts="", attempts=1, window="1s"):
        # a short window makes the unhealthy cases quick; the healthy case
        # gets a long one, so a loaded machine's pauses are not a "stall"
        port = free_port()
        conf = self.config(PIPELINE % dict(port=port, proc=proc, procopts=procopts, d=self.dir,
                                           attempts=attempts, window=window), admin=True)
        p = self.start_intake("run", conf)
        self.wait_for(lambda: self._up(port), what="admin server")
        return p, port

    def _up(self, port):
        try:
            return self.http_get(port, "/health")[0] in (200, 503)
        except OSError:
            return False

    def stop(self, p):
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err[-2000:])
        return err

    def test_healthy_and_metrics(self):
        p, port = self.start("passthrough", window="60s")
        self.wait_for(lambda: len(self.jsonl(self.path("out.jsonl"))) > 20, what="deliveries")
        status, ctype, body = self.http_get(port, "/health")
        self.assertEqual(status, 200, body)
        self.assertIn("application/json", ctype)
        h = json.loads(body)
        self.assertEqual(h["status"], "ok")
        pl = h["pipelines"][0]
        self.assertEqual(pl["name"], "h")
        self.assertEqual({x["instance"] for x in pl["plugins"]}, {"test_gen", "passthrough", "stdout"})
        self.assertGreater(pl["delivered"], 0)

        status, ctype, body = self.http_get(port, "/metrics")
        self.assertEqual(status, 200)
        self.assertIn("text/plain; version=0.0.4", ctype)
        m = re.search(r'^intake_records_in_total\{pipeline="h"\} (\d+)', body, re.M)
        self.assertTrue(m, body[:2000])
        self.assertGreater(int(m.group(1)), 0)
        self.assertIn('# TYPE intake_batch_size histogram', body)
        self.assertRegex(body, r'intake_stage_records_total\{pipeline="h",instance="passthrough",status="ok"\} \d+')
        self.assertRegex(body, r'intake_stage_latency_seconds_bucket\{pipeline="h",instance="stdout",le="\+Inf"\} \d+')
        self.assertEqual(self.http_get(port, "/nope")[0], 404)
        self.stop(p)

    def wait_unhealthy(self, port, want):
        # waits for the reason the test provokes: on a loaded machine a
        # pause longer than the 1 s window may first show as "stalled"
        def failing():
            status, _, body = self.http_get(port, "/health")
            if status != 503:
                return None
            h = json.loads(body)
            return h if want in " ".join(h["pipelines"][0]["reasons"]) else None
        h = self.wait_for(failing, timeout=20, what="unhealthy /health saying " + want)
        self.assertEqual(h["status"], "unhealthy")
        return " ".join(h["pipelines"][0]["reasons"])

    def test_unhealthy_when_records_keep_failing(self):
        p, port = self.start("test_fault", 'mode = "permanent";')
        reasons = self.wait_unhealthy(port, "records are failing")
        self.assertIn("test_fault", reasons)
        self.stop(p)


    def test_unhealthy_when_records_only_retry(self):
        p, port = self.start("test_fault", 'mode = "transient"; fail_times = 100000;',
                             attempts=100000)
        reasons = self.wait_unhealthy(port, "records are failing")
        self.assertIn("retrying", reasons)
        self.stop(p)


if __name__ == "__main__":
    unittest.main()
