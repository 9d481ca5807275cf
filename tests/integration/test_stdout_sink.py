"""test_stdout_sink.py: the stdout sink's output file survives a crash of
`intake run` in the middle of a write.

- A file that ends mid-record (what kill -9 during a write leaves) is ended
  with a newline before the next run appends: the torn line stays alone, the
  new records are on lines of their own, and the log names the file and the
  torn line's byte offset.
- The same when standard output is that file, opened for append (`>>`).
- kill -9 while a large stream is being written, then a second run appending
  to the same file: every line but at most the torn one parses, and no line
  holds two records. (Whether this kill tears a line depends on timing; the
  first test makes the tear deterministic.)
"""
import json
import os
import signal
import unittest

from harness import IntakeTest

PIPELINE = """
pipelines = ( {
  name = "out";
  inflight_limit = %(inflight)d;
  batch = { max_items = %(items)d; max_wait = "20ms"; };
  source = { plugin = "test_gen"; prefix = "%(prefix)s"; count = %(count)d;
             body_bytes = %(body)d; };
  processors = ( { plugin = "passthrough"; } );
  sinks = ( { plugin = "stdout"; path = "%(out)s"; concurrency = 2; } );
} );
"""


class StdoutSinkCrashTest(IntakeTest):
    def conf(self, prefix, count, body=200, items=50, inflight=1000, out=None):
        return self.config(PIPELINE % dict(out=out or self.path("out.jsonl"), prefix=prefix,
                                           count=count, body=body, items=items,
                                           inflight=inflight))

    def read_lines(self):
        """The output's lines as (text, parsed or None); a last line without
        a newline counts too."""
        with open(self.path("out.jsonl"), "rb") as f:
            data = f.read()
        parts = data.split(b"\n")
        if parts[-1] == b"":
            parts.pop()
        out = []
        for raw in parts:
            text = raw.decode("utf-8", "replace")
            try:
                out.append((text, json.loads(text)))
            except ValueError:
                out.append((text, None))
        return out

    def assert_one_record_per_line(self, lines, allowed_torn):
        """Every line parses as one record, except at most allowed_torn lines,
        none of which carries a second record (each record has one
        "payload" key)."""
        torn = [t for t, o in lines if o is None]
        self.assertLessEqual(len(torn), allowed_torn, [t[:120] for t in torn])
        for t in torn:
            self.assertLessEqual(t.count('"payload":'), 1, "records glued on one line: %s" % t[:200])
        for t, o in lines:
            if o is not None:
                self.assertIsInstance(o, dict)
                self.assertEqual(t.count('"payload":'), 1, "two records on one line: %s" % t[:200])
        return torn

    def test_pretorn_file_gets_its_line_ended(self):
        whole = json.dumps({"id": "old-1", "meta": {}, "payload": {}}) + "\n"
        torn = '{"id":"old-2","meta":{"source":"test_gen"},"payload":{"id":"old-2","bo'
        with open(self.path("out.jsonl"), "w") as f:
            f.write(whole + torn)
        r = self.run_intake("run", self.conf("new", 50), check=0)
        self.assertEqual(self.summary(r.stderr)["out"]["delivered"], 50)
        lines = self.read_lines()
        self.assertEqual(len(lines), 52)
        self.assertEqual(lines[0][1]["id"], "old-1")
        self.assertEqual(lines[1], (torn, None))  # alone on its line, nothing glued on
        self.assertEqual(sorted(o["id"] for _, o in lines[2:]),
                         sorted("new-%d" % i for i in range(1, 51)))
        self.assertIn("%s: the line at byte offset %d (%d bytes) was torn"
                      % (self.path("out.jsonl"), len(whole), len(torn)), r.stderr)
        # the next run finds a clean end and says nothing
        r = self.run_intake("run", self.conf("more", 5), check=0)
        self.assertNotIn("torn", r.stderr)
        self.assert_one_record_per_line(self.read_lines(), 1)

    def test_stdout_redirected_for_append(self):
        # `intake run ... >> out.jsonl`: standard output is the torn file
        with open(self.path("out.jsonl"), "w") as f:
            f.write('{"id":"old-1"}\n{"id":"old-2","pay')
        conf = self.conf("std", 3, out="-")
        with open(self.path("out.jsonl"), "a") as out:
            p = self.start_intake("run", conf, stdout=out)
            _, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err[-2000:])
        self.assertIn("standard output: the line at byte offset 15 (18 bytes) was torn", err)
        lines = self.read_lines()
        self.assertEqual([o and o["id"] for _, o in lines],
                         ["old-1", None, "std-1", "std-2", "std-3"])

    def test_kill_9_mid_stream_then_append(self):
        # large batches of large records: each write(2) is megabytes, so the
        # kill often lands inside one
        p = self.start_intake("run", self.conf("a", 1000000, body=4000, items=1000,
                                               inflight=4000))
        out = self.path("out.jsonl")
        self.wait_for(lambda: os.path.exists(out) and os.path.getsize(out) > 24 << 20,
                      timeout=120, what="24 MB written")
        p.send_signal(signal.SIGKILL)
        p.wait()
        with open(out, "rb") as f:
            f.seek(-1, os.SEEK_END)
            torn_by_kill = f.read(1) != b"\n"
        first = self.read_lines()
        self.assert_one_record_per_line(first, 1 if torn_by_kill else 0)

        r = self.run_intake("run", self.conf("b", 200), check=0)
        self.assertEqual(self.summary(r.stderr)["out"]["delivered"], 200)
        self.assertEqual("was torn by an interrupted write" in r.stderr, torn_by_kill,
                         r.stderr[-2000:])
        lines = self.read_lines()
        self.assertEqual(len(lines), len(first) + 200)
        self.assert_one_record_per_line(lines, 1 if torn_by_kill else 0)
        self.assertEqual(sorted(o["id"] for _, o in lines if o and o["id"].startswith("b-")),
                         sorted("b-%d" % i for i in range(1, 201)))
        print("kill -9 after %d lines: %s" % (len(first), "torn" if torn_by_kill else "not torn"))


if __name__ == "__main__":
    unittest.main()
