"""Every record is accounted for: in = delivered + dead-lettered, each told to
its source exactly once, with the reason, stage and attempts of a failure, and
the sink holding each delivered record exactly once."""
import unittest

from harness import IntakeTest

PIPELINE = """
pipelines = ( {
  name = "acct";
  inflight_limit = %(inflight)d;
  retry = { max_attempts = 4; initial_backoff = "1ms"; max_backoff = "5ms"; };
  batch = { max_items = 25; max_wait = "20ms"; };
  source = { plugin = "test_gen"; count = %(count)d; prefix = "rec";
             outcomes_path = "%(dir)s/outcomes"; priorities = "0,5,-5"; };
  processors = (
    { plugin = "test_fault"; name = "flaky"; mode = "transient"; match = "7"; fail_times = 2; },
    { plugin = "test_fault"; name = "strict"; mode = "permanent"; match = "rec-13"; }
  );
  sinks = ( { plugin = "stdout"; path = "%(dir)s/out.jsonl"; format = "record"; } );
  %(dead_letter)s
} );
"""


class AccountingTest(IntakeTest):
    def run_pipeline(self, count, dead_letter="", inflight=100):
        conf = self.config(PIPELINE % dict(count=count, dir=self.dir, dead_letter=dead_letter,
                                           inflight=inflight))
        r = self.run_intake("run", conf, check=0)
        return r, self.outcomes(self.path("outcomes")), self.jsonl(self.path("out.jsonl"))

    def test_every_record_accounted(self):
        n = 2000
        r, outcomes, out = self.run_pipeline(n)
        ids = ["rec-%d" % i for i in range(1, n + 1)]
        seen = self.assert_exactly_once(outcomes, ids)
        failing = {i for i in ids if i.startswith("rec-13")}
        for o in outcomes:
            if o.id in failing:
                self.assertEqual(o.outcome, "dead_lettered", o.id)
                self.assertEqual(o.stage, "strict")
                self.assertEqual(o.attempts, 1)
                self.assertEqual(o.stored, 0)
                self.assertIn("permanent", o.reason)
            else:
                self.assertEqual(o.outcome, "delivered", o.id)
        delivered = [o["id"] for o in out]
        self.assertEqual(len(delivered), len(set(delivered)), "duplicates in the sink")
        self.assertEqual(set(delivered), {i for i in ids if seen[i] == "delivered"})
        s = self.summary(r.stderr)["acct"]
        self.assertEqual(s["in"], n)
        self.assertEqual(s["delivered"] + s["dead_lettered"], n)
        self.assertEqual(s["dead_lettered"], len(failing))
        # every id containing a 7 failed twice at "flaky" before succeeding
        self.assertEqual(s["retries"], 2 * sum(1 for i in ids if "7" in i and i not in failing)
                         + 2 * sum(1 for i in failing if "7" in i))
        self.assertEqual(s["inflight"], 0)

    def test_dead_letter_sink_stores(self):
        dl = 'dead_letter = { plugin = "stdout"; path = "%s/dead.jsonl"; };' % self.dir
        r, outcomes, out = self.run_pipeline(300, dead_letter=dl)
        dead = [o for o in outcomes if o.outcome == "dead_lettered"]
        self.assertTrue(dead)
        for o in dead:
            self.assertEqual(o.stored, 1, "the dead_letter sink held it, the source is told so")
        stored = self.jsonl(self.path("dead.jsonl"))
        self.assertEqual(sorted(x["id"] for x in stored), sorted(o.id for o in dead))

    def test_small_inflight_limit_still_drains(self):
        # in-flight limit below max_items: partial batches must flush, not deadlock
        r, outcomes, out = self.run_pipeline(200, inflight=3)
        self.assertEqual(len(outcomes), 200)
        self.assertEqual(self.summary(r.stderr)["acct"]["in"], 200)


class RetryExhaustionTest(IntakeTest):
    def test_gives_up_after_max_attempts(self):
        conf = self.config("""
pipelines = ( {
  name = "r";
  retry = { max_attempts = 3; initial_backoff = "1ms"; max_backoff = "2ms"; };
  source = { plugin = "test_gen"; count = 20; outcomes_path = "%(d)s/outcomes"; };
  processors = ( { plugin = "test_fault"; name = "always"; mode = "transient"; fail_times = 100; } );
  sinks = ( { plugin = "stdout"; path = "%(d)s/out.jsonl"; } );
} );
""" % dict(d=self.dir))
        r = self.run_intake("run", conf, check=0)
        outcomes = self.outcomes(self.path("outcomes"))
        self.assertEqual(len(outcomes), 20)
        for o in outcomes:
            self.assertEqual(o.outcome, "dead_lettered")
            self.assertEqual(o.attempts, 3)
            self.assertEqual(o.stage, "always")
            self.assertIn("gave up after 3 attempts", o.reason)
        self.assertEqual(self.summary(r.stderr)["r"]["retries"], 40)


class SinkFailureTest(IntakeTest):
    def test_failing_sink_dead_letters_after_all_sinks_answer(self):
        conf = self.config("""
pipelines = ( {
  name = "s";
  retry = { max_attempts = 2; initial_backoff = "1ms"; max_backoff = "1ms"; };
  source = { plugin = "test_gen"; count = 50; outcomes_path = "%(d)s/outcomes"; };
  sinks = ( { plugin = "stdout"; path = "%(d)s/a.jsonl"; },
            { plugin = "test_fault_sink"; name = "picky"; mode = "permanent"; match = "rec-2"; } );
} );
""" % dict(d=self.dir))
        self.run_intake("run", conf, check=0)
        outcomes = {o.id: o for o in self.outcomes(self.path("outcomes"))}
        self.assertEqual(len(outcomes), 50)
        for i in range(1, 51):
            o = outcomes["rec-%d" % i]
            if str(i).startswith("2"):
                self.assertEqual(o.outcome, "dead_lettered")
                self.assertEqual(o.stage, "picky")
            else:
                self.assertEqual(o.outcome, "delivered")
        # the healthy sink still got every record once
        ids = [x["id"] for x in self.jsonl(self.path("a.jsonl"))]
        self.assertEqual(sorted(ids), sorted(outcomes))

    def test_release_status_goes_back_to_source(self):
        conf = self.config("""
pipelines = ( {
  name = "rel";
  source = { plugin = "test_gen"; count = 30; outcomes_path = "%(d)s/outcomes"; };
  processors = ( { plugin = "test_fault"; mode = "release"; match = "rec-1"; } );
  sinks = ( { plugin = "stdout"; path = "%(d)s/out.jsonl"; } );
} );
""" % dict(d=self.dir))
        r = self.run_intake("run", conf, check=0)
        for o in self.outcomes(self.path("outcomes")):
            want = "released" if o.id.startswith("rec-1") else "delivered"
            self.assertEqual(o.outcome, want, o.id)
        s = self.summary(r.stderr)["rel"]
        self.assertEqual(s["released"], 11)  # rec-1, rec-10..rec-19


class SideBySideTest(IntakeTest):
    def test_two_pipelines_in_one_file(self):
        conf = self.config("""
pipelines = (
  { name = "one";
    source = { plugin = "test_gen"; count = 300; prefix = "a"; outcomes_path = "%(d)s/o1"; };
    processors = ( { plugin = "test_fault"; mode = "slow"; delay = "5ms"; } );
    sinks = ( { plugin = "stdout"; path = "%(d)s/one.jsonl"; } ); },
  { name = "two";
    source = { plugin = "test_gen"; count = 500; prefix = "b"; outcomes_path = "%(d)s/o2"; };
    sinks = ( { plugin = "stdout"; path = "%(d)s/two.jsonl"; } ); }
);
""" % dict(d=self.dir))
        r = self.run_intake("run", conf, check=0)
        s = self.summary(r.stderr)
        self.assertEqual((s["one"]["delivered"], s["two"]["delivered"]), (300, 500))
        self.assertEqual({x["id"][0] for x in self.jsonl(self.path("one.jsonl"))}, {"a"})
        self.assertEqual(len(self.jsonl(self.path("two.jsonl"))), 500)
        self.assertEqual(len(self.outcomes(self.path("o1"))), 300)
        self.assertEqual(len(self.outcomes(self.path("o2"))), 500)


if __name__ == "__main__":
    unittest.main()
