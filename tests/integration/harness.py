"""harness.py: shared helpers for the integration tests.

Runs the real `intake` binary (INTAKE_BIN, set by CTest) on pipeline files
written into a fresh temporary folder, with the build's plugins and the
test-only plugins on the plugin path. Every peer a test starts listens on
127.0.0.1 on a port the OS picked.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request
import urllib.error

BIN = os.environ.get("INTAKE_BIN", "")
BUILD = os.environ.get("INTAKE_BUILD", "")
SRC = os.environ.get("INTAKE_SRC", "")
SANITIZED = os.environ.get("INTAKE_SANITIZE", "OFF").upper() in ("ON", "1", "TRUE")
PLUGINS = os.path.join(BUILD, "plugins")
TEST_PLUGINS = os.path.join(BUILD, "tests", "plugins")
BAD_PLUGINS = os.path.join(BUILD, "tests", "plugins-bad")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Outcome:
    """One line of test_gen's outcomes file."""

    def __init__(self, line):
        parts = line.rstrip("\n").split(" ", 5)
        self.id, self.outcome, self.stage = parts[0], parts[1], parts[2]
        self.attempts, self.stored = int(parts[3]), int(parts[4])
        self.reason = parts[5] if len(parts) > 5 else ""


class IntakeTest(unittest.TestCase):
    """A test case with a temporary folder and helpers to run intake in it."""

    def setUp(self):
        self.assertTrue(BIN and os.path.exists(BIN), "INTAKE_BIN not set: run through ctest")
        self.dir = tempfile.mkdtemp(prefix="intake-it-")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def write(self, name, text):
        p = self.path(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        return p

    def config(self, body, name="pipeline.conf", admin=False, extra="", plugin_dirs=()):
        """Writes a config whose plugin_path covers real and test plugins
        (after plugin_dirs), in two header lines before `body`."""
        dirs = list(plugin_dirs) + [PLUGINS, TEST_PLUGINS]
        head = "plugin_path = [%s];\n" % ", ".join('"%s"' % d for d in dirs)
        if not admin:
            head += "admin = { enabled = false; };\n"
        return self.write(name, head + extra + body)

    def run_intake(self, *args, timeout=120, env=None, check=None):
        e = dict(os.environ)
        e.update(env or {})
        r = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout, env=e)
        if check is not None:
            self.assertEqual(r.returncode, check, "exit %d\nstdout:\n%s\nstderr:\n%s"
                             % (r.returncode, r.stdout[-4000:], r.stderr[-4000:]))
        return r

    def start_intake(self, *args, env=None, stdout=subprocess.PIPE):
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.Popen([BIN, *args], stdout=stdout, stderr=subprocess.PIPE, text=True, env=e)
        self.procs.append(p)
        return p

    def outcomes(self, path):
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [Outcome(l) for l in f if l.strip()]

    def jsonl(self, path):
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]

    def summary(self, stderr):
        """Parses the engine's summary line(s): {pipeline: {in, delivered, ...}}."""
        out = {}
        for m in re.finditer(r"summary: pipeline '([^']+)': (\d+) in, (\d+) delivered, (\d+) "
                             r"dead-lettered, (\d+) released, (\d+) retries, (\d+) in flight",
                             stderr):
            out[m.group(1)] = dict(zip(("in", "delivered", "dead_lettered", "released",
                                        "retries", "inflight"), map(int, m.groups()[1:])))
        return out

    def wait_for(self, pred, timeout=30, what="condition"):
        end = time.time() + timeout
        while time.time() < end:
            v = pred()
            if v:
                return v
            time.sleep(0.05)
        self.fail("timed out waiting for " + what)

    def http_get(self, port, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
                return r.status, r.headers.get("Content-Type", ""), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type", ""), e.read().decode()

    def assert_exactly_once(self, outcomes, ids):
        """Every id has exactly one outcome, and nothing else does."""
        seen = {}
        for o in outcomes:
            self.assertNotIn(o.id, seen, "record %s settled twice: %s and %s"
                             % (o.id, seen.get(o.id), o.outcome))
            seen[o.id] = o.outcome
        self.assertEqual(set(seen), set(ids))
        return seen
