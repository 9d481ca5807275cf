"""The admin server: /health says why when data stops moving, /metrics is
Prometheus text with per-pipeline and per-stage series."""
import json
import re
import signal
import socket
import threading
import time
import unittest
import urllib.error
import urllib.request

from harness import IntakeTest, free_port

PIPELINE = """
admin = { listen = "127.0.0.1:%(port)d"; %(admin)s };
pipelines = ( {
  name = "h";
  health_window = "%(window)s";
  retry = { max_attempts = %(attempts)d; initial_backoff = "1ms"; max_backoff = "10ms"; };
  source = { plugin = "test_gen"; count = 1000000; emit_delay = "2ms"; };
  processors = ( { plugin = "%(proc)s"; %(procopts)s } );
  sinks = ( { plugin = "stdout"; path = "%(d)s/out.jsonl"; } );
} );
"""


class AdminServerTest(IntakeTest):
    """Runs PIPELINE with its admin server on a free port."""

    def start(self, proc, procopts="", attempts=1, window="1s", admin=""):
        # a short window makes the unhealthy cases quick; the healthy case
        # gets a long one, so a loaded machine's pauses are not a "stall"
        port = free_port()
        conf = self.config(PIPELINE % dict(port=port, proc=proc, procopts=procopts, d=self.dir,
                                           attempts=attempts, window=window, admin=admin),
                           admin=True)
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


class AdminTest(AdminServerTest):
    def test_healthy_and_metrics(self):
        p, port = self.start("passthrough", window="60s")
        # the sink writes a batch before its records count as delivered:
        # wait for /health to count them, not for the file
        def delivering():
            r = self.http_get(port, "/health")
            return r if json.loads(r[2])["pipelines"][0]["delivered"] > 0 else None
        status, ctype, body = self.wait_for(delivering, what="deliveries counted by /health")
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

    def test_down_stage_in_health_and_metrics(self):
        # the destination is down for the first 3 s: /health names the
        # stage, since when and why, /metrics says intake_stage_down 1;
        # then the stage resumes and the pipeline is healthy again
        p, port = self.start("test_fault", 'mode = "down"; down_for = "3s";', window="60s")
        reasons = self.wait_unhealthy(port, "stage 'test_fault' down since")
        self.assertRegex(reasons, r"mode=down|probe \d+: still down")  # the last word on it
        self.assertIn("none released", reasons)
        pl = json.loads(self.http_get(port, "/health")[2])["pipelines"][0]
        down = pl["down"]
        self.assertEqual(len(down), 1, pl)
        self.assertEqual(down[0]["stage"], "test_fault")
        self.assertRegex(down[0]["since"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        metrics = self.http_get(port, "/metrics")[2]
        self.assertRegex(metrics, r'intake_stage_down\{pipeline="h",instance="test_fault"\} 1\b')

        def healthy():
            r = self.http_get(port, "/health")
            pl = json.loads(r[2])["pipelines"][0]
            return r if r[0] == 200 and pl["delivered"] > 0 else None
        status, _, body = self.wait_for(healthy, what="the stage back up and delivering")
        pl = json.loads(body)["pipelines"][0]
        self.assertEqual(pl["down"], [])
        self.assertEqual(pl["dead_lettered"], 0)
        self.assertEqual(pl["released"], 0)
        metrics = self.http_get(port, "/metrics")[2]
        self.assertRegex(metrics, r'intake_stage_down\{pipeline="h",instance="test_fault"\} 0\b')
        m = re.search(r'intake_stage_probes_total\{pipeline="h",instance="test_fault"\} (\d+)',
                      metrics)
        self.assertTrue(m, metrics[:3000])
        self.assertGreater(int(m.group(1)), 0)
        err = self.stop(p)
        self.assertIn("destination down: test_fault mode=down", err)
        self.assertIn("destination up again after", err)


class SlowClients:
    """`n` connections to 127.0.0.1:port, each sending one more byte of a
    request header that never ends every `every` seconds (a slowloris), from a
    background thread. A connection the server closes is counted in `closed`
    and, with `reconnect`, opened again at once."""

    HEADER = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100000

    def __init__(self, port, n, every=1.0, reconnect=True):
        self.port, self.n, self.every, self.reconnect = port, n, every, reconnect
        self.closed = 0
        self.socks = {}  # socket -> bytes of HEADER sent so far
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        for _ in range(self.n):
            self._open()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        for s in self.socks:
            s.close()

    def _open(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.setblocking(False)
        self.socks[s] = 0

    def _server_closed(self, s):
        try:
            return s.recv(4096) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _run(self):
        while not self._stop.wait(self.every):
            for s in list(self.socks):
                if self._server_closed(s):
                    del self.socks[s]
                    s.close()
                    self.closed += 1
                    if self.reconnect:
                        self._open()
                    continue
                try:
                    self.socks[s] += s.send(self.HEADER[self.socks[s]:self.socks[s] + 1])
                except (BlockingIOError, OSError):
                    pass


class SlowClientTest(AdminServerTest):
    """Slow clients cannot take the admin server offline."""

    def start(self, admin=""):
        return super().start("passthrough", window="60s", admin=admin)

    def answers(self, port, path, timeout=30):
        """The status of GET path, or None when no answer came within
        `timeout` seconds (generous: a loaded machine is slow, a blocked
        server never answers)."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                        timeout=timeout) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def admin_warnings(self, err):
        return [l for l in err.splitlines() if "WARN" in l and "[admin]" in l]

    def test_probes_answer_during_a_slow_client_flood(self):
        # more slow clients than the old 64 slots, and than the 128 the admin
        # server now keeps: the newest close the oldest, which come back
        p, port = self.start()
        started = time.time()
        with SlowClients(port, 150, every=1.0) as slow:
            for _ in range(3):
                time.sleep(1.0)  # let the trickle go on between probes
                self.assertEqual(self.answers(port, "/health"), 200)
                self.assertEqual(self.answers(port, "/metrics"), 200)
        self.assertGreater(slow.closed, 0)
        err = self.stop(p)
        self.assert_warnings_bounded(err, slow.closed, time.time() - started)

    def assert_warnings_bounded(self, err, closed, secs):
        """However many connections were closed: per 60 s window one line in
        full and one summary, for connections and for the HTTP server's own
        messages; the final summary counts what the clients saw closed."""
        warnings = self.admin_warnings(err)
        self.assertLessEqual(len(warnings), 4 * (1 + int(secs // 60)), "\n".join(warnings))
        held = sum(int(m.group(1)) for m in
                   re.finditer(r"(\d+) more connections? refused or closed in the last", err))
        self.assertGreaterEqual(1 + held, closed, "\n".join(warnings))

    def test_trickling_client_closed_at_request_timeout(self):
        p, port = self.start('request_timeout = "1s";')
        started = time.time()
        # a byte every 0.2 s: never idle, never a complete request
        with SlowClients(port, 1, every=0.2, reconnect=False) as slow:
            self.wait_for(lambda: slow.closed == 1, timeout=30, what="server closing the client")
            # fewer than the 128 kept: each closed at its deadline, then back
            with SlowClients(port, 100, every=0.2) as flood:
                self.wait_for(lambda: flood.closed >= 200, timeout=60,
                              what="server closing the flood's connections")
                self.assertEqual(self.answers(port, "/health"), 200)
        err = self.stop(p)
        self.assertRegex(err, r"closed the connection from 127\.0\.0\.1:\d+: it did not complete "
                              r"a request within 1 s \(admin\.request_timeout\)")
        self.assert_warnings_bounded(err, 1 + flood.closed, time.time() - started)

    def test_request_timeout_is_checked(self):
        for value, msg in (('"0s"', "admin.request_timeout must be more than 0"),
                           ('"soon"', "admin.request_timeout must be a duration")):
            conf = self.config('admin = { request_timeout = %s; };\n'
                               'pipelines = ( { name = "p"; source = { plugin = "test_gen"; };\n'
                               '  sinks = ( { plugin = "stdout"; } ); } );\n' % value,
                               admin=True)
            r = self.run_intake("validate", conf, check=3)
            self.assertIn(msg, r.stderr)
            self.assertIn("pipeline.conf:2:", r.stderr)  # after the plugin_path line


if __name__ == "__main__":
    unittest.main()
