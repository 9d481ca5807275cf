"""Backpressure: the in-flight count never passes inflight_limit, a source
using try_emit is told the pipeline is busy, and one using emit simply waits;
either way every record is delivered once."""
import re
import signal
import unittest

from harness import IntakeTest, free_port

PIPELINE = """
admin = { listen = "127.0.0.1:%(port)d"; };
pipelines = ( {
  name = "bp";
  inflight_limit = 20;
  batch = { max_items = 5; max_wait = "5ms"; };
  source = { plugin = "test_gen"; count = 400; try_emit = %(try_emit)s;
             outcomes_path = "%(d)s/outcomes"; };
  processors = ( { plugin = "test_fault"; mode = "slow"; delay = "20ms"; } );
  sinks = ( { plugin = "stdout"; path = "%(d)s/out.jsonl"; } );
} );
"""


class BackpressureTest(IntakeTest):
    def sample(self, port, name):
        try:
            status, _, body = self.http_get(port, "/metrics")
        except OSError:
            return None
        m = re.search(r'^%s\{[^}]*\} ([0-9.e+]+)$' % re.escape(name), body, re.M)
        return float(m.group(1)) if m else None

    def run_and_watch(self, try_emit):
        port = free_port()
        conf = self.config(PIPELINE % dict(port=port, d=self.dir, try_emit=try_emit), admin=True)
        p = self.start_intake("run", conf)
        peak, busy, samples = 0, 0, 0
        while p.poll() is None:
            v = self.sample(port, "intake_records_inflight")
            if v is not None:
                samples += 1
                peak = max(peak, v)
            b = self.sample(port, "intake_plugin_test_gen_busy_total")
            busy = max(busy, b or 0)
        _, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err[-2000:])
        self.assertGreater(samples, 5, "the run was observed")
        self.assertLessEqual(peak, 20, "in-flight count passed the limit")
        self.assertGreater(peak, 10, "the pipeline did fill up")
        outcomes = self.outcomes(self.path("outcomes"))
        self.assert_exactly_once(outcomes, ["rec-%d" % i for i in range(1, 401)])
        self.assertTrue(all(o.outcome == "delivered" for o in outcomes))
        return busy

    def test_try_emit_reports_busy(self):
        self.assertGreater(self.run_and_watch("true"), 0)

    def test_emit_blocks(self):
        self.assertEqual(self.run_and_watch("false"), 0)

    def test_lone_record_leaves_after_max_wait(self):
        # Workers wake once per batch, not per record: a record alone in a
        # batch of 50, from a source that then waits an hour before its next,
        # must still leave when its max_wait ends, through both stages.
        conf = self.config("""
pipelines = ( {
  name = "lone";
  batch = { max_items = 50; max_wait = "20ms"; };
  source = { plugin = "test_gen"; count = 2; emit_delay = "1h";
             outcomes_path = "%(d)s/outcomes"; };
  processors = ( { plugin = "passthrough"; concurrency = 2; } );
  sinks = ( { plugin = "stdout"; path = "%(d)s/out.jsonl"; } );
} );
""" % dict(d=self.dir))
        p = self.start_intake("run", conf)
        self.wait_for(lambda: len(self.jsonl(self.path("out.jsonl"))) == 1,
                      what="the lone record delivered")
        self.assertEqual(self.outcomes(self.path("outcomes"))[0].outcome, "delivered")
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err[-2000:])
        s = self.summary(err)["lone"]
        self.assertEqual((s["in"], s["delivered"], s["inflight"]), (1, 1, 0))


if __name__ == "__main__":
    unittest.main()
