"""test_sb_source_commands.py: the `servicebus` source's control commands through `intake
ctl`: receive (on demand), peek, status (with the queue's counts), pause and resume.
"""
import base64
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest
import urllib.parse

import harness
import sbpeers
from sbsource import SLOW, SourceBase


class SourceCommandsTest(SourceBase):
    """receive (on demand), peek and status through `intake ctl`."""

    def start_admin(self, emu, source_extra, queue="q1"):
        port = harness.free_port()
        conf = self.pipeline(emu, queue=queue, source_extra=source_extra, admin=True,
                             extra='admin = { listen = "127.0.0.1:%d"; };\n' % port)
        p = self.start_intake("run", conf)

        def up():
            try:
                return self.http_get(port, "/health")[0] == 200
            except OSError:
                return False
        self.wait_for(up, timeout=30 * SLOW, what="the admin server")
        return p, port

    def ctl(self, port, command, arg=None):
        args = [harness.BIN, "ctl", "--admin", "127.0.0.1:%d" % port, "sb", "servicebus",
                command] + ([json.dumps(arg)] if arg is not None else [])
        r = __import__("subprocess").run(args, capture_output=True, text=True, timeout=30)
        return r.returncode, (json.loads(r.stdout) if r.stdout.strip().startswith("{") else
                              r.stdout), r.stderr

    def test_on_demand_receives_only_what_is_asked(self):
        emu = self.start_emulator(queues=["q1"])
        sbpeers.sdk_send(emu.connection_string, "q1", [
            {"body": {"id": "e%d" % i}, "messageId": "m%d" % i} for i in range(5)])
        p, port = self.start_admin(emu, "on_demand = true;")
        time.sleep(1.0 * SLOW)
        self.assertEqual(self.lines(), [], "nothing before the command")
        code, out, err = self.ctl(port, "receive", {"max_messages": 3})
        self.assertEqual(code, 0, err)
        self.assertEqual(out["requested"], 3)

        def done():
            c, o, _ = self.ctl(port, "receive")
            return o if c == 0 and o["done"] else None
        report = self.wait_for(done, timeout=30 * SLOW, what="the receive job to finish")
        self.assertEqual((report["received"], report["completed"]), (3, 3), report)
        self.assertFalse(report["queue_empty"])
        self.assertEqual(len(self.lines()), 3)
        self.assertEqual(emu.counts("q1")["active"], 2)
        # the rest, asking for more than there is: the job ends when the queue is empty
        code, out, err = self.ctl(port, "receive", {"max_messages": 10})
        self.assertEqual(code, 0, err)
        report = self.wait_for(done, timeout=30 * SLOW, what="the second job to finish")
        self.assertEqual((report["received"], report["completed"]), (2, 2), report)
        self.assertTrue(report["queue_empty"])
        self.assertEqual(sorted(r["id"] for r in self.lines()), ["e%d" % i for i in range(5)])
        code, out, err = self.ctl(port, "receive", {"max_messages": 0})
        self.assertEqual(code, 8, "a bad count is refused")
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60 * SLOW)

    def test_pause_holds_at_most_prefetch_and_resume_goes_on(self):
        emu = self.start_emulator(queues=["q1"])
        p, port = self.start_admin(emu, "prefetch = 5;")
        code, out, err = self.ctl(port, "pause")
        self.assertEqual(code, 0, err)
        sbpeers.sdk_send(emu.connection_string, "q1", [
            {"body": {"id": "e%02d" % i}, "messageId": "m%02d" % i} for i in range(40)],
            batch=True)
        time.sleep(2.0 * SLOW)
        self.assertEqual(self.lines(), [], "nothing enters the pipeline while paused")
        code, st, err = self.ctl(port, "status")
        self.assertEqual(code, 0, err)
        self.assertLessEqual(st["messages_held"], 5, st)
        self.assertTrue(st["paused_by_pipeline"], st)
        code, out, err = self.ctl(port, "resume")
        self.assertEqual(code, 0, err)
        self.wait_for(lambda: len(self.lines()) >= 40, timeout=30 * SLOW, what="all 40")
        self.assertEqual(sorted(r["id"] for r in self.lines()), ["e%02d" % i for i in range(40)])
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60 * SLOW)

    def test_receive_refused_without_on_demand(self):
        emu = self.start_emulator(queues=["q1"])
        p, port = self.start_admin(emu, "")
        code, out, err = self.ctl(port, "receive", {"max_messages": 1})
        self.assertEqual(code, 8)
        self.assertIn("on_demand = false", out if isinstance(out, str) else json.dumps(out)
                      + err)
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60 * SLOW)

    def test_peek_and_status(self):
        emu = self.start_emulator(queues=["q1"])
        sbpeers.sdk_send(emu.connection_string, "q1", [
            {"body": {"batch_id": "b%d" % i, "priority": i % 2, "emails": [{"id": "x"}] * 2},
             "messageId": "m%d" % i} for i in range(3)])
        p, port = self.start_admin(emu, "on_demand = true;")
        code, out, err = self.ctl(port, "peek", {"count": 5})
        self.assertEqual(code, 0, err)

        def peeked():
            c, o, _ = self.ctl(port, "peek", {"count": 5})
            return o if c == 0 and o.get("state") == "done" else None
        res = self.wait_for(peeked, timeout=30 * SLOW, what="the peek result")
        self.assertEqual([m["message_id"] for m in res["messages"]], ["m0", "m1", "m2"])
        self.assertEqual([m["emails"] for m in res["messages"]], [2, 2, 2])
        self.assertEqual(res["priority_distribution"], {"0": 2, "1": 1})
        self.assertEqual(emu.counts("q1")["active"], 3, "peek takes nothing")
        code, st, err = self.ctl(port, "status")
        self.assertEqual(code, 0, err)
        self.assertTrue(st["connected"])
        self.assertEqual(st["messages_held"], 0)
        self.assertEqual(st["last_peek"]["priority_distribution"], {"0": 2, "1": 1})
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60 * SLOW)

    def start_counts(self, emu, conn=None, queue="q1", endpoint=None, extra="", shutdown="10s"):
        """intake with the admin server and management_endpoint on the emulator's HTTP port;
        waits for the admin server only (the source may be down). Returns (proc, port)."""
        port = harness.free_port()
        me = endpoint if endpoint is not None else "http://127.0.0.1:%d" % emu.http_port
        conf = self.pipeline(emu, queue=queue, conn=conn, admin=True, shutdown=shutdown,
                             source_extra='on_demand = true; management_endpoint = "%s"; %s'
                             % (me, extra),
                             extra='admin = { listen = "127.0.0.1:%d"; };\n' % port)
        p = self.start_intake("run", conf)

        def up():
            try:
                return self.http_get(port, "/health")[0] in (200, 503)
            except OSError:
                return False
        self.wait_for(up, timeout=30 * SLOW, what="the admin server")
        return p, port

    def status_until(self, port, key):
        """Calls status until its reply has `key` with an answer in it; returns the reply."""
        def answered():
            c, o, _ = self.ctl(port, "status")
            if c != 0:
                return None
            v = o.get(key)
            return o if v and (not isinstance(v, dict) or "active" in v) else None
        return self.wait_for(answered, timeout=30 * SLOW, what="status with " + key)

    def test_status_counts_match_the_broker(self):
        emu = self.start_emulator(queues=["q1"])
        conn = emu.connection_string
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        sbpeers.sdk_send(conn, "q1", [{"body": {"id": "e%d" % i}, "messageId": "m%d" % i}
                                      for i in range(4)])
        sbpeers.sdk_send(conn, "q1", [{"body": {"id": "s"}, "messageId": "s",
                                       "scheduledEnqueueTimeUtc": later}])
        sbpeers.sdk_receive(conn, "q1", 1, settle="deadletter")
        ref = emu.counts("q1")
        self.assertEqual(ref, {"active": 3, "dead_letter": 1, "scheduled": 1})
        p, port = self.start_counts(emu)
        code, first, err = self.ctl(port, "status")
        self.assertEqual(code, 0, err)
        self.assertTrue(first.get("counts", {}).get("refreshing") or "counts_error" in first,
                        first)
        st = self.status_until(port, "counts")
        c = st["counts"]
        self.assertEqual({k: c[k] for k in ref}, ref, st)
        self.assertEqual(c["total"], 5)
        self.assertGreaterEqual(c["age_ms"], 0)
        self.assertGreater(c["as_of_ms"], 0)
        self.assertTrue(c["refreshing"], "each status asks for fresh counts")
        # a message taken off the queue shows in later counts
        sbpeers.sdk_receive(conn, "q1", 1, settle="complete")
        self.wait_for(lambda: self.ctl(port, "status")[1]["counts"].get("active") == 2,
                      timeout=30 * SLOW, what="the active count to drop")
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60 * SLOW)
        self.assertEqual(p.returncode, 0, err[-3000:])

    def test_counts_errors_say_why_without_the_key(self):
        emu = self.start_emulator(queues=["q1"])
        secret = "Wr0ngKeyDoNotPrintMe"
        p, port = self.start_counts(emu, conn=emu.connection_string_for(sbpeers.KEY_NAME, secret))
        st = self.status_until(port, "counts_error")
        self.assertIn("refused the key (HTTP 401)", st["counts_error"])
        self.assertNotIn(secret, json.dumps(st))
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60 * SLOW)
        self.assertNotIn(secret, err)
        # a queue the broker does not have
        p, port = self.start_counts(emu, queue="nope")
        st = self.status_until(port, "counts_error")
        self.assertIn("no such queue 'nope'", st["counts_error"])
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60 * SLOW)

    def test_counts_over_https_check_the_certificate(self):
        emu = self.start_emulator(queues=["q1"])
        # the same emulator again with HTTPS on a throw-away certificate for 127.0.0.1
        emu.stop()
        cert, key = self.path("cert.pem"), self.path("key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                        "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        with open(emu.config_path, "a") as f:
            f.write('tls_cert = "%s";\ntls_key = "%s";\nhttps_port = 0;\n' % (cert, key))
        emu.restart()
        https = int(re.search(r"https=(\d+)", sbpeers.tail(emu.out_path)).group(1))
        sbpeers.sdk_send(emu.connection_string, "q1", [{"body": {"id": "a"}, "messageId": "a"}])
        endpoint = "https://127.0.0.1:%d" % https
        p, port = self.start_counts(emu, endpoint=endpoint)
        st = self.status_until(port, "counts_error")
        self.assertIn("GET %s/q1?api-version=2021-05 failed: " % endpoint, st["counts_error"])
        self.assertIn("certificate", st["counts_error"])
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60 * SLOW)
        p, port = self.start_counts(emu, endpoint=endpoint, extra='ca_file = "%s";' % cert)
        st = self.status_until(port, "counts")
        self.assertEqual(st["counts"]["active"], 1, st)
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60 * SLOW)

    def test_a_silent_management_endpoint_does_not_hold_up_the_stop(self):
        emu = self.start_emulator(queues=["q1"])
        silent = socket.socket()
        self.addCleanup(silent.close)
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # accepts (in the backlog), never answers
        p, port = self.start_counts(emu, endpoint="http://127.0.0.1:%d" % silent.getsockname()[1],
                                    extra='timeout = "1h";', shutdown="1s")
        code, st, err = self.ctl(port, "status")
        self.assertEqual(code, 0, err)
        self.assertEqual(st["counts"], {"state": "pending", "refreshing": True})
        code, st, err = self.ctl(port, "status")
        self.assertTrue(st["counts"]["refreshing"], st)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60 * SLOW)
        self.assertEqual(p.returncode, 0, "the GET in progress is given up: " + err[-3000:])

    def test_counts_of_a_bad_answer_say_what_and_where(self):
        """A stand-in management endpoint: it records the request and answers what the test
        says (a status and a body)."""
        emu = self.start_emulator(queues=["q1"])
        seen, answer = [], {"status": 403, "body": b"<Error/>"}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append((self.path, self.headers.get("Authorization", "")))
                self.send_response(answer["status"])
                self.send_header("Content-Length", str(len(answer["body"])))
                self.end_headers()
                self.wfile.write(answer["body"])

            def log_message(self, *a):
                pass
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        base = "http://127.0.0.1:%d" % server.server_address[1]
        p, port = self.start_counts(emu, endpoint=base)
        st = self.status_until(port, "counts_error")
        self.assertIn("needs the Manage right", st["counts_error"])
        path, auth = seen[0]
        self.assertEqual(path, "/q1?api-version=2021-05")
        sr = urllib.parse.quote((base + path).lower(), safe="-_.!~*'()").lower()
        self.assertTrue(auth.startswith("SharedAccessSignature sr=%s&sig=" % sr), auth)
        self.assertIn("&skn=%s" % sbpeers.KEY_NAME, auth)
        answer.update(status=200, body=b'<entry xmlns="http://www.w3.org/2005/Atom">\n<title/>'
                      b'\n<content type="application/xml"><QueueDescription/></content></entry>')

        def second_error():
            c, o, _ = self.ctl(port, "status")
            return o if c == 0 and "QueueDescription" in o.get("counts_error", "") else None
        st = self.wait_for(second_error, timeout=30 * SLOW, what="the second answer")
        self.assertEqual(st["counts_error"], "the answer to GET %s/q1?api-version=2021-05: line 3: "
                         "<content> holds no <QueueDescription> (not a queue?)" % base)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60 * SLOW)
        self.assertNotIn(sbpeers.KEY, err)

    def test_counts_off_and_a_bad_management_endpoint(self):
        emu = self.start_emulator(queues=["q1"])
        p, port = self.start_counts(emu, endpoint="none")
        code, st, err = self.ctl(port, "status")
        self.assertEqual(code, 0, err)
        self.assertNotIn("counts", st)
        self.assertNotIn("counts_error", st)
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60 * SLOW)
        conf = self.pipeline(emu, source_extra='management_endpoint = "sb://127.0.0.1";')
        r = self.run_intake("validate", conf)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("management_endpoint 'sb://127.0.0.1' must be an http:// or https:// URL",
                      r.stderr)

if __name__ == "__main__":
    unittest.main()
