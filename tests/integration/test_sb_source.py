"""test_sb_source.py: the `servicebus` source against intake-sb-emulator (started per test on
free ports), with messages sent and checked by the official @azure/service-bus SDK.

What is asserted is what users count on: every email becomes a record with a stable id and
its message's metadata, nothing is lost (a message is completed only once its records are
delivered or stored as dead letters, and otherwise dead-lettered or given back on the
broker), locks are renewed while records are in the pipeline, and a broker that goes away
is reconnected to.
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

if __name__ == "__main__":
    unittest.main()
