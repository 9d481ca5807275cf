"""test_sb_source.py: the `servicebus` source against intake-sb-emulator (started per test on
free ports), with messages sent and checked by the official @azure/service-bus SDK.

What is asserted is what users count on: every email becomes a record with a stable id and
its message's metadata, nothing is lost (a message is completed only once its records are
delivered or stored as dead letters, and otherwise dead-lettered or given back on the
broker), locks are renewed while records are in the pipeline, and a broker that goes away
is reconnected to.
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

SLOW = sbpeers.SLOW


class SourceBase(sbpeers.PeersMixin, harness.IntakeTest):
    """Pipelines reading the emulator, and running them until a condition holds."""

    def pipeline(self, emu, queue="q1", source_extra="", processors="", dead_letter=True,
                 out="out.jsonl", extra="", admin=False, conn=None, inflight=1000,
                 shutdown="10s"):
        dl = ('dead_letter = { plugin = "stdout"; path = "%s"; };' % self.path("dead.jsonl")
              if dead_letter else "")
        body = """
shutdown_timeout = "%s";
pipelines = ( {
  name = "sb";
  inflight_limit = %d;
  batch = { max_items = 10; max_wait = "50ms"; };
  retry = { max_attempts = 2; initial_backoff = "50ms"; max_backoff = "100ms"; };
  source = { plugin = "servicebus"; connection_string = "%s"; queue = "%s";
             reconnect_initial = "100ms"; reconnect_max = "500ms"; %s };
  processors = ( %s );
  sinks = ( { plugin = "stdout"; path = "%s"; format = "record"; meta_keys = "%s"; } );
  %s
} );
""" % (shutdown, inflight, conn or emu.connection_string, queue, source_extra, processors, self.path(out),
       "message_id,sequence_number,enqueued_time,delivery_count,batch_id,batch_index,"
       "retry_count,session_id,queue,app.source,app.n", dl)
        return self.config(body, admin=admin, extra=extra)

    def run_until(self, conf, pred, what, timeout=30, env=None):
        """Starts intake on conf, waits for pred(), then SIGINT; returns (rc, stderr)."""
        p = self.start_intake("run", conf, env=env)
        try:
            self.wait_for(pred, timeout=timeout * SLOW, what=what)
        except AssertionError:
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=60)
            self.fail("timed out waiting for %s; intake said:\n%s" % (what, err[-4000:]))
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60 * SLOW)
        return p.returncode, err

    def lines(self, name="out.jsonl"):
        return self.jsonl(self.path(name))


class SourceTest(SourceBase):

    def test_envelopes_single_emails_and_sdk_bodies_become_records(self):
        emu = self.start_emulator(queues=["q1"])
        conn = emu.connection_string
        email = {"sender_email": "a@x.com", "subject": "Hello", "body": "cv attached"}
        envelope = {"batch_id": "batch_20250101_120000_3", "priority": 5, "retry_count": 0,
                    "emails": [{"sender_email": "b@x.com", "subject": "s1", "body": "b1"},
                               {"id": "own-id", "sender_email": "c@x.com", "subject": "s2",
                                "body": "b2"},
                               {"internet_message_id": "<m@x>", "sender_email": "d@x.com",
                                "subject": "s3", "body": "b3"}]}
        sbpeers.sdk_send(conn, "q1", [
            {"body": email, "messageId": "m-1", "applicationProperties": {"source": "t", "n": 3}},
            {"body": envelope, "messageId": "m-2"},
            {"bodyBase64": base64.b64encode(json.dumps(email).encode()).decode(),
             "messageId": "m-3"},
        ])
        sbpeers.sdk_send(conn, "q1", [{"body": dict(email, subject="in a batch %d" % i),
                                       "messageId": "mb-%d" % i} for i in range(2)], batch=True)
        conf = self.pipeline(emu)
        rc, err = self.run_until(conf, lambda: len(self.lines()) >= 7, "7 records")
        self.assertEqual(rc, 0, err[-3000:])
        recs = {r["id"]: r for r in self.lines()}
        self.assertEqual(set(recs), {"m-1:0", "m-2:0", "own-id", "<m@x>", "m-3:0", "mb-0:0",
                                     "mb-1:0"})
        self.assertEqual(len(self.lines()), 7, "each email once")
        self.assertEqual(recs["m-1:0"]["payload"], email)
        self.assertEqual(recs["m-1:0"]["meta"]["app.source"], "t")
        self.assertEqual(recs["m-1:0"]["meta"]["app.n"], "3")
        self.assertEqual(recs["m-1:0"]["meta"]["message_id"], "m-1")
        self.assertEqual(recs["m-1:0"]["meta"]["delivery_count"], "0")
        self.assertRegex(recs["m-1:0"]["meta"]["enqueued_time"], r"^\d{4}-\d\d-\d\dT.*Z$")
        self.assertTrue(recs["m-1:0"]["meta"]["sequence_number"].isdigit())
        self.assertEqual(recs["m-3:0"]["payload"], email, "a Buffer body holding JSON")
        self.assertEqual(recs["mb-1:0"]["payload"]["subject"], "in a batch 1")
        for rid, idx in (("m-2:0", "0"), ("own-id", "1"), ("<m@x>", "2")):
            m = recs[rid]["meta"]
            self.assertEqual(m["batch_id"], "batch_20250101_120000_3")
            self.assertEqual(m["batch_index"], idx)
            self.assertEqual(m["priority"], "5")
            self.assertEqual(m["message_id"], "m-2")
        self.assertEqual(recs["own-id"]["payload"], envelope["emails"][1])
        self.assertEqual(self.summary(err)["sb"]["delivered"], 7)
        self.assertEqual(emu.counts("q1"), {"active": 0, "dead_letter": 0, "scheduled": 0})

    def test_amqp_value_bodies_string_and_map(self):
        emu = self.start_emulator(queues=["q1"])
        email = {"sender_email": "v@x.com", "subject": "value", "body": "b"}
        r = sbpeers.amqp_send(emu.amqp_port, "q1", [
            {"body": json.dumps(email), "messageId": "as-string"},
            {"body": email, "messageId": "as-map"}], user=sbpeers.KEY_NAME,
            password=sbpeers.KEY)
        self.assertEqual(r["accepted"], 2, r)
        rc, err = self.run_until(self.pipeline(emu), lambda: len(self.lines()) >= 2,
                                 "both records")
        self.assertEqual(rc, 0, err[-3000:])
        recs = {r["id"]: r["payload"] for r in self.lines()}
        self.assertEqual(recs, {"as-string:0": email, "as-map:0": email})

    def test_unreadable_body_is_dead_lettered_on_the_broker_with_the_reason(self):
        emu = self.start_emulator(queues=["q1"])
        sbpeers.sdk_send(emu.connection_string, "q1", [
            {"bodyBase64": base64.b64encode(b"not json {").decode(), "messageId": "bad-1"},
            {"body": ["a list", "of strings"], "messageId": "bad-2"},
            {"body": {"sender_email": "ok@x.com", "subject": "s", "body": "b"},
             "messageId": "good"}])
        conf = self.pipeline(emu, dead_letter=False)
        rc, err = self.run_until(conf, lambda: emu.counts("q1")["dead_letter"] == 2,
                                 "two dead letters on the broker")
        self.assertEqual(rc, 0, err[-3000:])
        self.assertEqual([r["id"] for r in self.lines()], ["good:0"])
        dl = sbpeers.sdk_receive(emu.connection_string, "q1", 2, sub_queue="deadLetter")
        reasons = {m["messageId"]: m.get("deadLetterReason") or "" for m in dl}
        self.assertIn("not JSON", reasons["bad-1"])
        self.assertIn("at byte", reasons["bad-1"])
        self.assertIn("bad-2", reasons)
        self.assertEqual(dl[0]["body"] if dl[0]["messageId"] == "bad-2" else dl[1]["body"],
                         ["a list", "of strings"], "the dead letter keeps its body")
        self.assertEqual(self.summary(err)["sb"]["dead_lettered"], 2)

    def test_a_failed_record_stored_by_the_dead_letter_sink_completes_its_message(self):
        emu = self.start_emulator(queues=["q1"])
        env = {"batch_id": "b", "emails": [{"id": "e-ok", "body": "x"}, {"id": "e-bad",
                                                                           "body": "y"}]}
        sbpeers.sdk_send(emu.connection_string, "q1", [{"body": env, "messageId": "m"}])
        conf = self.pipeline(emu, processors='{ plugin = "test_fault"; mode = "permanent"; '
                                             'match = "bad"; }')
        rc, err = self.run_until(conf, lambda: self.lines() and self.lines("dead.jsonl"),
                                 "one delivered and one stored dead letter")
        self.assertEqual(rc, 0, err[-3000:])
        self.assertEqual([r["id"] for r in self.lines()], ["e-ok"])
        self.assertEqual([r["id"] for r in self.lines("dead.jsonl")], ["e-bad"])
        self.assertEqual(emu.counts("q1"), {"active": 0, "dead_letter": 0, "scheduled": 0})

    def test_a_failed_record_not_stored_anywhere_dead_letters_its_message(self):
        emu = self.start_emulator(queues=["q1"])
        env = {"batch_id": "b", "emails": [{"id": "e-ok", "body": "x"}, {"id": "e-bad",
                                                                           "body": "y"}]}
        sbpeers.sdk_send(emu.connection_string, "q1", [{"body": env, "messageId": "m"}])
        conf = self.pipeline(emu, dead_letter=False,
                             processors='{ plugin = "test_fault"; mode = "permanent"; '
                                        'match = "bad"; }')
        rc, err = self.run_until(conf, lambda: emu.counts("q1")["dead_letter"] == 1,
                                 "the message dead-lettered on the broker")
        self.assertEqual(rc, 0, err[-3000:])
        dl = sbpeers.sdk_receive(emu.connection_string, "q1", 1, sub_queue="deadLetter")
        self.assertEqual(dl[0]["messageId"], "m")
        self.assertIn("permanent", dl[0]["deadLetterReason"])
        self.assertEqual(dl[0]["body"], env)

    def test_records_released_at_shutdown_go_back_to_the_queue(self):
        emu = self.start_emulator(queues=["q1"])
        sbpeers.sdk_send(emu.connection_string, "q1", [
            {"body": {"id": "slow-%d" % i, "body": "x"}, "messageId": "m%d" % i}
            for i in range(3)])
        calls = self.path("calls")
        conf = self.pipeline(emu, processors='{ plugin = "test_fault"; mode = "slow"; '
                                             'delay = "30s"; log_batches = "%s"; }' % calls,
                             shutdown="1s")
        p = self.start_intake("run", conf)
        self.wait_for(lambda: os.path.exists(calls) and open(calls).read().count("slow-") == 3,
                      timeout=30 * SLOW, what="all three in the slow processor")
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60 * SLOW)
        self.assertEqual(self.lines(), [])
        self.assertEqual(self.summary(err)["sb"]["released"], 3, err[-3000:])
        c = emu.counts("q1")
        self.assertEqual(c["active"] + c["dead_letter"], 3, "every message is still there")
        got = sbpeers.sdk_receive(emu.connection_string, "q1", 3)
        self.assertEqual(sorted(m["messageId"] for m in got), ["m0", "m1", "m2"])
        self.assertTrue(all(m["deliveryCount"] >= 1 for m in got), got)

    def test_lock_renewal_keeps_a_slow_message_locked(self):
        emu = self.start_emulator(queues=[{"name": "q1", "lock_duration_ms": 2000}])
        sbpeers.sdk_send(emu.connection_string, "q1", [{"body": {"id": "e1"},
                                                          "messageId": "m1"}])
        conf = self.pipeline(emu, processors='{ plugin = "test_fault"; mode = "slow"; '
                                             'delay = "5s"; }',
                             source_extra='lock_duration = "2s";')
        rc, err = self.run_until(conf, lambda: self.lines(), "the record", timeout=40)
        self.assertEqual(rc, 0, err[-3000:])
        self.assertEqual([r["id"] for r in self.lines()], ["e1"])
        self.assertEqual(self.lines()[0]["meta"]["delivery_count"], "0")
        self.assertNotIn("lock", err.lower().replace("lock_duration", ""), err[-3000:])
        self.assertEqual(emu.counts("q1"), {"active": 0, "dead_letter": 0, "scheduled": 0})

    def test_without_renewal_a_slow_message_is_delivered_again(self):
        emu = self.start_emulator(queues=[{"name": "q1", "lock_duration_ms": 1500}])
        sbpeers.sdk_send(emu.connection_string, "q1", [{"body": {"id": "e1"},
                                                          "messageId": "m1"}])
        conf = self.pipeline(emu, processors='{ plugin = "test_fault"; mode = "slow"; '
                                             'delay = "4s"; }',
                             source_extra="lock_renewal = false;")
        rc, err = self.run_until(conf, lambda: len(self.lines()) >= 2,
                                 "the record twice (redelivered after its lock expired)",
                                 timeout=40)
        self.assertEqual(rc, 0, err[-3000:])
        recs = self.lines()
        self.assertEqual({r["id"] for r in recs}, {"e1"}, "the same id on redelivery")
        self.assertEqual(recs[1]["meta"]["delivery_count"], "1")
        self.assertIn("message m1: the broker refused the completion", err)
        self.assertIn("lock-lost", err)

    def test_the_broker_killed_and_restarted_loses_nothing(self):
        state = self.path("emu.state")
        emu = self.start_emulator(queues=["q1"], persist_file=state, persist_interval_ms=100)
        n = 60
        sbpeers.sdk_send(emu.connection_string, "q1", [
            {"body": {"id": "e%03d" % i}, "messageId": "m%03d" % i} for i in range(n)],
            batch=True)
        emu.wait_snapshot()
        conf = self.pipeline(emu, processors='{ plugin = "test_fault"; mode = "slow"; '
                                             'delay = "100ms"; }',
                             source_extra='prefetch = 5;', admin=True,
                             extra='admin = { listen = "127.0.0.1:%d"; };\n'
                                   % harness.free_port())
        port = int(open(conf).read().split('listen = "127.0.0.1:')[1].split('"')[0])
        p = self.start_intake("run", conf)
        self.wait_for(lambda: len(self.lines()) >= 5, timeout=30 * SLOW, what="some records")
        emu.kill9()
        self.wait_for(lambda: "broker unreachable since" in self.http_get(port, "/health")[2],
                      timeout=30 * SLOW, what="/health to say the broker is unreachable")
        emu.restart()
        self.wait_for(lambda: len({r["id"] for r in self.lines()}) >= n, timeout=90 * SLOW,
                      what="every record after the restart")
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60 * SLOW)
        self.assertEqual(p.returncode, 0, err[-3000:])
        ids = [r["id"] for r in self.lines()]
        self.assertEqual(set(ids), {"e%03d" % i for i in range(n)})
        dups = len(ids) - len(set(ids))
        self.assertLessEqual(dups, 5 + 5, "duplicates only from messages held at the kill")
        self.assertIn("lost the broker", err)
        self.assertEqual(emu.counts("q1"), {"active": 0, "dead_letter": 0, "scheduled": 0})

    def test_credit_follows_the_pipeline(self):
        emu = self.start_emulator(queues=["q1"])
        n = 300
        sbpeers.sdk_send(emu.connection_string, "q1", [
            {"body": {"id": "e%03d" % i}, "messageId": "m%03d" % i} for i in range(n)],
            batch=True)
        conf = self.pipeline(emu, processors='{ plugin = "test_fault"; mode = "slow"; '
                                             'delay = "200ms"; }',
                             source_extra="prefetch = 20;", inflight=10)
        p = self.start_intake("run", conf)
        self.wait_for(lambda: len(self.lines()) >= 20, timeout=30 * SLOW, what="20 records")
        c = emu.counts("q1")
        # The broker still holds all but what the source may hold: prefetch (20) plus the
        # records that went through.
        self.assertGreaterEqual(c["active"], n - len(self.lines()) - 20 - 10, c)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60 * SLOW)
        self.assertEqual(p.returncode, 0, err[-3000:])
        c = emu.counts("q1")
        self.assertEqual(c["active"], n - len({r["id"] for r in self.lines()}),
                         "what was not delivered went back")

    def test_dead_letter_queue_mode_retries_then_archives(self):
        emu = self.start_emulator(queues=["q1"])
        conn = emu.connection_string
        env = {"batch_id": "b1", "retry_count": 0, "emails": [{"id": "e1", "body": "x"}]}
        sbpeers.sdk_send(conn, "q1", [
            {"body": env, "messageId": "young"},
            {"body": {"id": "old-email"}, "messageId": "old",
             "applicationProperties": {"retry_count": 3}}])
        # dead-letter both through the SDK
        got = sbpeers.sdk_receive(conn, "q1", 2, settle="deadletter")
        self.assertEqual(len(got), 2)
        self.assertEqual(emu.counts("q1")["dead_letter"], 2)
        conf = self.pipeline(emu, source_extra='subqueue = "deadletter"; max_retries = 3; '
                                               'retry_delay = "1s";')
        rc, err = self.run_until(conf, lambda: emu.counts("q1")["dead_letter"] == 0,
                                 "the dead-letter queue emptied")
        self.assertEqual(rc, 0, err[-3000:])
        archived = self.lines("dead.jsonl")
        self.assertEqual([r["id"] for r in archived], ["old"])
        self.assertEqual(archived[0]["payload"], {"id": "old-email"})
        c = emu.counts("q1")
        self.assertEqual(c["scheduled"] + c["active"], 1, c)
        time.sleep(1.5)
        back = sbpeers.sdk_receive(conn, "q1", 1)
        self.assertEqual(len(back), 1)
        self.assertEqual(back[0]["body"]["retry_count"], 1, "the count survives and goes up")
        self.assertEqual(back[0]["applicationProperties"]["retry_count"], 1)
        self.assertEqual(back[0]["applicationProperties"]["intake_original_message_id"], "young")
        self.assertEqual(back[0]["body"]["emails"], env["emails"])

    def test_a_dead_letter_not_archived_stays_in_the_dead_letter_queue(self):
        emu = self.start_emulator(queues=["q1"])
        conn = emu.connection_string
        sbpeers.sdk_send(conn, "q1", [{"body": {"id": "x"}, "messageId": "old",
                                       "applicationProperties": {"retry_count": 9}}])
        sbpeers.sdk_receive(conn, "q1", 1, settle="deadletter")
        conf = self.pipeline(emu, dead_letter=False, source_extra='subqueue = "deadletter";')
        p = self.start_intake("run", conf)
        time.sleep(2.0 * SLOW)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60 * SLOW)
        self.assertNotEqual(p.returncode, 0, "a record not stored is not a clean run")
        self.assertIn("stays in the dead-letter queue", err)
        self.assertEqual(emu.counts("q1")["dead_letter"], 1)

    def test_a_wrong_key_is_refused_without_showing_it(self):
        emu = self.start_emulator(queues=["q1"])
        conn = emu.connection_string_for(sbpeers.KEY_NAME, "Wr0ngKeyDoNotPrintMe")
        conf = self.pipeline(emu, conn=conn)
        p = self.start_intake("run", conf)
        time.sleep(2.0 * SLOW)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60 * SLOW)
        self.assertIn("refused the token", err)
        self.assertNotIn("Wr0ngKeyDoNotPrintMe", err)

    def test_sessions_are_read_in_order(self):
        emu = self.start_emulator(queues=[{"name": "qs", "requires_session": True}])
        msgs = [{"body": {"id": "%s-%d" % (s, i)}, "messageId": "%s%d" % (s, i), "sessionId": s}
                for i in range(5) for s in ("alpha", "beta")]
        sbpeers.sdk_send(emu.connection_string, "qs", msgs)
        conf = self.pipeline(emu, queue="qs", source_extra='session_id = "beta";')
        rc, err = self.run_until(conf, lambda: len(self.lines()) >= 5, "beta's five")
        self.assertEqual(rc, 0, err[-3000:])
        self.assertEqual([r["id"] for r in self.lines()], ["beta-%d" % i for i in range(5)])
        self.assertTrue(all(r["meta"]["session_id"] == "beta" for r in self.lines()))
        self.assertEqual(emu.counts("qs")["active"], 5, "alpha's are untouched")


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
