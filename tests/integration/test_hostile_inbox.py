"""What someone who can drop files in the inbox can try against the `file`
source, run against the real binary: symbolic links to secrets outside the
folder, FIFOs, sockets and folders named like input, NUL characters in
records, and a .json array too large to hold in memory. Nothing outside the
inbox is read, nothing blocks, every skipped entry is logged once, bad
records are dead-lettered with where, and a big array stays in bounded
memory."""
import json
import os
import signal
import socket
import subprocess
import time
import unittest

from harness import SANITIZED, IntakeTest

SECRET = "sk-hostile-5d1e7a90c3"
ENV_SECRET = "sk-environ-82b64f17aa"

PIPELINE = """
pipelines = ( {
  name = "mail";
  inflight_limit = %(inflight)d;
  batch = { max_items = 50; max_wait = "20ms"; };
  source = { plugin = "file"; path = "%(d)s/in"; poll_interval = "50ms"; %(source)s };
  processors = ( { plugin = "passthrough"; } );
  sinks = ( { plugin = "stdout"; path = "%(out)s"; format = "payload"; } );
} );
"""


class HostileInboxTest(IntakeTest):
    def conf(self, source="", inflight=100, out=None):
        return self.config(PIPELINE % dict(d=self.dir, source=source, inflight=inflight,
                                           out=out or self.path("out.jsonl")))

    def everything_written(self):
        """The text of every file the run could have written: output,
        dead letters and whatever moved to done/ (links read through)."""
        texts = []
        for root in (self.path("in", "dead-letter"), self.path("in", "done")):
            for base, _, files in os.walk(root):
                for name in files:
                    try:
                        with open(os.path.join(base, name), errors="replace") as f:
                            texts.append(f.read())
                    except OSError:
                        pass
        if os.path.exists(self.path("out.jsonl")):
            with open(self.path("out.jsonl")) as f:
                texts.append(f.read())
        return "\n".join(texts)

    def ids(self):
        return [r["id"] for r in self.jsonl(self.path("out.jsonl"))]

    def test_symlink_to_a_secret_outside_is_not_read(self):
        self.write("outside/secret.env", "OPENAI_API_KEY=%s\n" % SECRET)
        self.write("in/ok.jsonl", '{"id": "ok"}\n')
        os.symlink(self.path("outside", "secret.env"), self.path("in", "leak.jsonl"))
        os.symlink("/proc/self/environ", self.path("in", "environ.jsonl"))
        r = self.run_intake("run", self.conf(), env={"EXTRA_KEY": ENV_SECRET}, check=0)
        self.assertEqual(self.ids(), ["ok"])
        self.assertEqual(self.summary(r.stderr)["mail"]["dead_lettered"], 0)
        written = self.everything_written() + r.stderr
        for secret in (SECRET, ENV_SECRET, "OPENAI_API_KEY"):
            self.assertNotIn(secret, written)
        self.assertFalse(os.path.exists(self.path("in", "dead-letter")))
        for name in ("leak.jsonl", "environ.jsonl"):
            self.assertTrue(os.path.islink(self.path("in", name)), name + " stays where it is")
            self.assertFalse(os.path.lexists(self.path("in", "done", name)))
            self.assertIn("skipped %s: symbolic link (not followed; see option 'symlinks')"
                          % self.path("in", name), r.stderr)

    def test_links_inside_only_with_the_option(self):
        self.write("in/data/a.txt", '{"id": "linked"}')
        self.write("outside/b.json", '{"id": "%s"}' % SECRET)
        os.symlink("data/a.txt", self.path("in", "a.json"))
        os.symlink(self.path("outside", "b.json"), self.path("in", "b.json"))
        os.symlink("/proc/self/environ", self.path("in", "c.json"))
        os.symlink(self.path("outside"), self.path("in", "d.json"))
        r = self.run_intake("run", self.conf(), check=0)
        self.assertEqual(self.ids(), [])
        self.assertEqual(r.stderr.count("symbolic link (not followed"), 4)

        r = self.run_intake("run", self.conf('symlinks = "inside";'), check=0)
        self.assertEqual(self.ids(), ["linked"])
        self.assertIn("/b.json: symbolic link to %s, outside the input folder"
                      % os.path.realpath(self.path("outside", "b.json")), r.stderr)
        self.assertIn("/c.json: symbolic link to /proc/", r.stderr)
        self.assertIn("/d.json: symbolic link to %s, outside" % os.path.realpath(
            self.path("outside")), r.stderr)
        self.assertNotIn(SECRET, self.everything_written() + r.stderr)
        self.assertTrue(os.path.islink(self.path("in", "done", "a.json")))

        r = self.run_intake("run", self.conf('symlinks = "yes";'))
        self.assertEqual(r.returncode, 3)  # a config error, found before anything starts
        self.assertIn("option 'symlinks' of plugin 'file' (instance 'file') must be one of: "
                      "skip, inside; got the string \"yes\"", r.stderr)

    def test_fifo_does_not_block_a_finite_run(self):
        os.makedirs(self.path("in"))
        os.mkfifo(self.path("in", "x.jsonl"))
        self.write("in/ok.jsonl", '{"id": "ok"}\n')
        r = self.run_intake("run", self.conf(), timeout=60, check=0)
        self.assertEqual(self.ids(), ["ok"])
        self.assertIn("skipped %s: FIFO (named pipe); left where it is, not read"
                      % self.path("in", "x.jsonl"), r.stderr)
        self.assertTrue(os.path.exists(self.path("in", "x.jsonl")))

    def write_renamed(self, name, text):
        tmp = self.write("in/." + name + ".tmp", text)
        os.rename(tmp, self.path("in", name))

    def test_follow_mode_logs_each_skipped_entry_once_and_stops_on_sigterm(self):
        os.makedirs(self.path("in"))
        os.mkfifo(self.path("in", "x.jsonl"))
        os.mkdir(self.path("in", "d.json"))
        os.symlink("/etc/passwd", self.path("in", "p.json"))
        self.write("in/1.jsonl", '{"id": "n1"}\n')
        p = self.start_intake("run", self.conf("follow = true;"))
        self.wait_for(lambda: self.ids() == ["n1"], what="the first file")
        for i in (2, 3, 4):  # every new file is another pass over the folder
            self.write_renamed("%d.jsonl" % i, '{"id": "n%d"}\n' % i)
            self.wait_for(lambda: len(self.ids()) == i, what="file %d" % i)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 0, err[-3000:])
        self.assertEqual(err.count("/x.jsonl: FIFO (named pipe)"), 1)
        self.assertEqual(err.count("/d.json: directory named like an input file"), 1)
        self.assertEqual(err.count("/p.json: symbolic link (not followed"), 1)
        self.assertNotIn("root:", self.everything_written())

    def test_socket_and_folder_named_like_input(self):
        os.makedirs(self.path("in", "mail.json"))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.bind(self.path("in", "s.jsonl"))
        s.listen(1)
        self.write("in/ok.json", '{"id": "ok"}')
        r = self.run_intake("run", self.conf(), timeout=60, check=0)
        self.assertEqual(self.ids(), ["ok"])
        self.assertIn("/mail.json: directory named like an input file", r.stderr)
        self.assertIn("/s.jsonl: socket; left where it is", r.stderr)

    def dead_letters(self):
        out = {}
        folder = self.path("in", "dead-letter")
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            with open(os.path.join(folder, name)) as f:
                doc = json.load(f)
            out[doc["intake_dead_letter"]["id"]] = doc
        return out

    def test_nul_characters_are_dead_lettered_with_where(self):
        lines = ['{"id": "a\\u0000b", "body": "x"}',
                 '{"id": "m2", "sender_email": "boss@example.com\\u0000@evil.example"}',
                 '{"id": "m3", "body": "fine"}',
                 '{"id": "m4", "body": "visible\\u0000hidden"}']
        self.write("in/a.jsonl", "\n".join(lines) + "\n")
        self.write("in/b.json", '[{"id": "j1"},\n {"id": "j2", "body": "x\\u0000y"}]')
        with open(self.path("in", "c.jsonl"), "wb") as f:
            f.write(b'{"id": "raw", "body": "a\x00b"}\n{"id": "c2"}\n')
        r = self.run_intake("run", self.conf(), check=0)
        self.assertEqual(sorted(self.ids()), ["c2", "j1", "m3"])
        dead = self.dead_letters()
        reasons = {k: v["intake_dead_letter"]["reason"] for k, v in dead.items()}
        a, b, c = (self.path("in", n) for n in ("a.jsonl", "b.json", "c.jsonl"))
        nul = "string contains a NUL character (\\u0000)"

        def col(text):  # 1-based byte column of the \u0000 escape
            return text.index("\\u0000") + 1
        self.assertEqual(reasons, {
            "a.jsonl:1": "%s:1:%d: %s" % (a, col(lines[0]), nul),
            "a.jsonl:2": "%s:2:%d: %s" % (a, col(lines[1]), nul),
            "a.jsonl:4": "%s:4:%d: %s" % (a, col(lines[3]), nul),
            "b.json:2": "%s:2:%d: %s" % (b, col(' {"id": "j2", "body": "x\\u0000y"}'), nul),
            "c.jsonl:1": "%s:1:%d: NUL byte (not allowed in JSON text)" % (c, 1 + len(
                '{"id": "raw", "body": "a')),
        })
        # the dead letter keeps the record's whole text for a fixed replay
        self.assertEqual(dead["a.jsonl:4"]["raw"], lines[3])
        self.assertEqual(self.summary(r.stderr)["mail"]["dead_lettered"], 5)

    def peak_rss_of(self, p):
        """Waits for p, reading its peak RSS (VmHWM) meanwhile, in bytes. (The
        rusage of a child also counts the parent's memory from before exec.)"""
        peak = 0
        while p.poll() is None:
            try:
                with open("/proc/%d/status" % p.pid) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]) * 1024)
            except OSError:
                pass
            time.sleep(0.02)
        return peak

    def test_big_json_array_stays_in_bounded_memory(self):
        n = 160000
        body = "candidate advisor portfolio client experience " * 5
        path = self.path("in", "big.json")
        os.makedirs(self.path("in"))
        with open(path, "w") as f:
            f.write("[\n")
            for i in range(n):
                f.write('%s{"id": "m-%d", "sender_email": "p%d@example.com", '
                        '"subject": "Candidate %d", "body": "%s %d"}\n'
                        % ("," if i else "", i, i, i, body, i))
            f.write("]\n")
        size = os.path.getsize(path)
        self.assertGreater(size, 50 * 1024 * 1024)
        with open(self.path("stderr.txt"), "w+") as errf:
            p = subprocess.Popen([os.environ["INTAKE_BIN"], "run",
                                  self.conf(inflight=1000, out="/dev/null")],
                                 stdout=subprocess.DEVNULL, stderr=errf)
            self.procs.append(p)
            peak = self.peak_rss_of(p)
            errf.seek(0)
            err = errf.read()
        self.assertEqual(p.returncode, 0, err[-3000:])
        self.assertEqual(self.summary(err)["mail"]["delivered"], n)
        self.assertTrue(os.path.exists(self.path("in", "done", "big.json")))
        if SANITIZED:
            self.skipTest("peak memory is not measured under ASan")
        # parsed whole, the array took several times the file's size
        self.assertGreater(peak, 0)
        self.assertLess(peak, size / 2, "peak RSS %d MB for a %d MB file"
                        % (peak >> 20, size >> 20))

if __name__ == "__main__":
    unittest.main()
