"""test_sb_source_more.py: the `servicebus` source against intake-sb-emulator: amqps and
certificates, token renewal, the broker's delivery limit, metrics, next session, and what
people who try to break it do (kill -9 of the engine, a broker that never answers, too many
emails in one message).
"""
import base64
import json
import os
import signal
import time
import unittest

import harness
import sbpeers
from sbsource import SLOW, SourceBase


class SourceMoreTest(SourceBase):
    """TLS, token renewal, the broker's delivery limit, metrics, pause, next session."""

    def make_cert(self):
        cert, key = self.path("cert.pem"), self.path("key.pem")
        r = __import__("subprocess").run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-keyout", key, "-out", cert], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return cert, key

    def tls_conn(self, emu):
        return ("Endpoint=sb://127.0.0.1:%d;SharedAccessKeyName=%s;SharedAccessKey=%s"
                % (emu.amqps_port, sbpeers.KEY_NAME, sbpeers.KEY))

    def test_amqps_with_the_broker_certificate_trusted(self):
        cert, key = self.make_cert()
        emu = self.start_emulator(queues=["q1"], tls=(cert, key))
        sbpeers.sdk_send(emu.connection_string, "q1", [{"body": {"id": "e1"}, "messageId": "m"}])
        conf = self.pipeline(emu, conn=self.tls_conn(emu), source_extra='ca_file = "%s";' % cert)
        rc, err = self.run_until(conf, lambda: self.lines(), "the record over TLS")
        self.assertEqual(rc, 0, err[-3000:])
        self.assertIn("(amqps, CBS)", err)
        self.assertEqual([r["id"] for r in self.lines()], ["e1"])

    def test_amqps_refuses_an_unknown_certificate_unless_told_not_to_check(self):
        cert, key = self.make_cert()
        emu = self.start_emulator(queues=["q1"], tls=(cert, key))
        sbpeers.sdk_send(emu.connection_string, "q1", [{"body": {"id": "e1"}, "messageId": "m"}])
        conf = self.pipeline(emu, conn=self.tls_conn(emu))
        p = self.start_intake("run", conf)
        time.sleep(2.0 * SLOW)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60 * SLOW)
        self.assertEqual(self.lines(), [])
        self.assertRegex(err, r"cannot receive from .*amqps.*(certificate|verify|SSL|TLS)")
        self.assertNotIn(sbpeers.KEY, err)
        conf = self.pipeline(emu, conn=self.tls_conn(emu), source_extra="tls_verify = false;")
        rc, err = self.run_until(conf, lambda: self.lines(), "the record without verification")
        self.assertEqual(rc, 0, err[-3000:])
        self.assertIn("tls_verify = false: the broker's certificate is not checked", err)

    def test_a_shared_access_signature_connection_string(self):
        emu = self.start_emulator(queues=["q1"])
        sbpeers.sdk_send(emu.connection_string, "q1", [{"body": {"id": "e1"}, "messageId": "m"}])
        sas = sbpeers.sas_token("sb://127.0.0.1:%d/" % emu.amqp_port, ttl=600)
        conn = ("Endpoint=sb://127.0.0.1:%d;SharedAccessSignature=%s;UseDevelopmentEmulator=true"
                % (emu.amqp_port, sas))
        rc, err = self.run_until(self.pipeline(emu, conn=conn), lambda: self.lines(),
                                 "the record with a signature and no key")
        self.assertEqual(rc, 0, err[-3000:])
        self.assertIn("shared access signature", err)
        self.assertNotIn(sas.split("sig=")[1].split("&")[0], err)
        self.assertEqual([r["id"] for r in self.lines()], ["e1"])

    def test_tokens_are_renewed_before_they_expire(self):
        emu = self.start_emulator(queues=["q1"])
        conf = self.pipeline(emu, source_extra='token_ttl = "4s";')
        p = self.start_intake("run", conf)
        time.sleep(7.0)
        sbpeers.sdk_send(emu.connection_string, "q1", [{"body": {"id": "late"},
                                                          "messageId": "m"}])
        self.wait_for(lambda: self.lines(), timeout=30 * SLOW, what="the record after 7 s")
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60 * SLOW)
        self.assertEqual(p.returncode, 0, err[-3000:])
        self.assertNotIn("lost the broker", err)
        self.assertNotIn("detached", err)
        self.assertNotIn("expired", emu.log())

    def test_the_broker_dead_letters_after_its_delivery_limit(self):
        emu = self.start_emulator(queues=[{"name": "q1", "max_delivery_count": 2}])
        sbpeers.sdk_send(emu.connection_string, "q1", [{"body": {"id": "e1"}, "messageId": "m"}])
        conf = self.pipeline(emu, processors='{ plugin = "test_fault"; mode = "release"; }')
        rc, err = self.run_until(conf, lambda: emu.counts("q1")["dead_letter"] == 1,
                                 "the broker to dead-letter the message")
        self.assertEqual(rc, 0, err[-3000:])
        dl = sbpeers.sdk_receive(emu.connection_string, "q1", 1, sub_queue="deadLetter")
        self.assertEqual(dl[0]["deadLetterReason"], "MaxDeliveryCountExceeded")
        self.assertEqual(self.lines(), [])

    def test_metrics_count_messages_and_outcomes(self):
        emu = self.start_emulator(queues=["q1"])
        sbpeers.sdk_send(emu.connection_string, "q1", [
            {"body": {"id": "e%d" % i}, "messageId": "m%d" % i} for i in range(3)] + [
            {"bodyBase64": base64.b64encode(b"{bad").decode(), "messageId": "bad"}])
        port = harness.free_port()
        conf = self.pipeline(emu, admin=True, dead_letter=False,
                             extra='admin = { listen = "127.0.0.1:%d"; };\n' % port)
        p = self.start_intake("run", conf)
        self.wait_for(lambda: len(self.lines()) == 3 and emu.counts("q1")["dead_letter"] == 1,
                      timeout=30 * SLOW, what="three records and a dead letter")

        def metric(name):
            body = self.http_get(port, "/metrics")[2]
            for line in body.splitlines():
                if line.startswith("intake_plugin_servicebus_" + name + "{") and 'instance="servicebus"' in line:
                    return float(line.rsplit(" ", 1)[1])
            return None
        self.wait_for(lambda: metric("messages_completed_total") == 3, timeout=10 * SLOW,
                      what="completed = 3 in /metrics")
        self.assertEqual(metric("messages_received_total"), 4)
        self.assertEqual(metric("messages_dead_lettered_total"), 1)
        self.assertEqual(metric("messages_unreadable_total"), 1)
        self.assertEqual(metric("lock_lost_total"), 0)
        self.assertEqual(metric("receive_to_settle_seconds_count"), 4)
        self.assertNotIn(sbpeers.KEY, self.http_get(port, "/metrics")[2])
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60 * SLOW)

    def test_next_session_reads_one_whole_session_in_order(self):
        emu = self.start_emulator(queues=[{"name": "qs", "requires_session": True}])
        msgs = [{"body": {"id": "%s-%d" % (s, i)}, "messageId": "%s%d" % (s, i), "sessionId": s}
                for i in range(4) for s in ("alpha", "beta")]
        sbpeers.sdk_send(emu.connection_string, "qs", msgs)
        conf = self.pipeline(emu, queue="qs", source_extra="next_session = true;")
        rc, err = self.run_until(conf, lambda: len(self.lines()) >= 4, "one session's four")
        self.assertEqual(rc, 0, err[-3000:])
        ids = [r["id"] for r in self.lines()]
        session = ids[0].split("-")[0]
        self.assertEqual(ids, ["%s-%d" % (session, i) for i in range(4)])
        self.assertEqual(emu.counts("qs")["active"], 4, "the other session is untouched")


class SourceHostileTest(SourceBase):
    """What people who try to break it do: kill -9 the engine, a broker that never answers,
    a message with too many emails."""

    def test_the_engine_killed_mid_run_loses_nothing(self):
        emu = self.start_emulator(queues=[{"name": "q1", "lock_duration_ms": 2000}])
        n = 20
        sbpeers.sdk_send(emu.connection_string, "q1", [
            {"body": {"id": "e%02d" % i}, "messageId": "m%02d" % i} for i in range(n)],
            batch=True)
        slow = '{ plugin = "test_fault"; mode = "slow"; delay = "300ms"; }'
        conf = self.pipeline(emu, processors=slow, source_extra="prefetch = 4;")
        p = self.start_intake("run", conf)
        self.wait_for(lambda: len(self.lines()) >= 3, timeout=30 * SLOW, what="a few records")
        p.kill()
        p.wait()
        conf = self.pipeline(emu, processors="", source_extra="prefetch = 4;")
        rc, err = self.run_until(conf, lambda: {r["id"] for r in self.lines()} >=
                                 {"e%02d" % i for i in range(n)}, "every record after the kill",
                                 timeout=60)
        self.assertEqual(rc, 0, err[-3000:])
        self.assertEqual(emu.counts("q1"), {"active": 0, "dead_letter": 0, "scheduled": 0})

    def test_a_broker_that_accepts_and_never_answers(self):
        import socket
        import threading
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        held = []
        stop = threading.Event()

        def accept():
            srv.settimeout(0.2)
            while not stop.is_set():
                try:
                    c, _ = srv.accept()
                    held.append(c)  # read nothing, answer nothing
                except OSError:
                    pass
        t = threading.Thread(target=accept, daemon=True)
        t.start()
        try:
            emu = self.start_emulator(queues=["q1"])
            conn = ("Endpoint=sb://127.0.0.1:%d;SharedAccessKeyName=k;SharedAccessKey=Secr3tKey;"
                    "UseDevelopmentEmulator=true" % srv.getsockname()[1])
            port = harness.free_port()
            conf = self.pipeline(emu, conn=conn, admin=True, source_extra='timeout = "1s";',
                                 extra='admin = { listen = "127.0.0.1:%d"; };\n' % port)
            p = self.start_intake("run", conf)
            self.wait_for(lambda: "broker unreachable since" in
                          self.http_get(port, "/health")[2] if self._admin_up(port) else False,
                          timeout=30 * SLOW, what="/health to report the silent broker")
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=60 * SLOW)
            self.assertEqual(p.returncode, 0, err[-3000:])
            self.assertIn("no answer within 1000 ms", err)
            self.assertNotIn("Secr3tKey", err)
        finally:
            stop.set()
            t.join()
            for c in held:
                c.close()
            srv.close()

    def _admin_up(self, port):
        try:
            self.http_get(port, "/health")
            return True
        except OSError:
            return False

    def test_a_message_with_too_many_emails_is_dead_lettered(self):
        emu = self.start_emulator(queues=["q1"])
        env = {"batch_id": "big", "emails": [{"id": "x%d" % i} for i in range(30)]}
        sbpeers.sdk_send(emu.connection_string, "q1", [{"body": env, "messageId": "big"}])
        conf = self.pipeline(emu, dead_letter=False, source_extra="max_emails = 20;")
        rc, err = self.run_until(conf, lambda: emu.counts("q1")["dead_letter"] == 1,
                                 "the message dead-lettered")
        self.assertEqual(rc, 0, err[-3000:])
        self.assertEqual(self.lines(), [])
        dl = sbpeers.sdk_receive(emu.connection_string, "q1", 1, sub_queue="deadLetter")
        self.assertIn("20", dl[0]["deadLetterReason"])

if __name__ == "__main__":
    unittest.main()
