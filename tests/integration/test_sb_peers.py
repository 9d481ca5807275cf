"""test_sb_peers.py: the peers of the Service Bus plugin tests (sbpeers.py) do what they
promise: the emulator with its settings, the official SDK's sends and receives through it,
its counts, persistence across a kill -9; a private RabbitMQ node speaking AMQP 1.0 with SASL
PLAIN, released and rejected outcomes, a dead-letter policy, and a restart."""
import base64
import contextlib
import datetime
import io
import os
import signal
import subprocess
import sys
import unittest

import harness
from sbpeers import PeersMixin, PeerError, Emulator, KEY_NAME, KEY, sdk_send, sdk_receive, \
    sdk_peek, amqp_send, amqp_receive


class EmulatorPeerTest(PeersMixin, harness.IntakeTest):
    def test_sdk_sends_object_buffer_and_batch_and_receives_them_intact(self):
        emu = self.start_emulator(queues=["q1"])
        conn = emu.connection_string
        self.assertIn("127.0.0.1:%d;" % emu.amqp_port, conn)
        raw = bytes([0, 1, 2, 255, 10])
        r = sdk_send(conn, "q1", [
            {"body": {"batch_id": "b-1", "emails": [{"subject": "Héllo"}]}, "messageId": "m-obj",
             "applicationProperties": {"batch_id": "b-1", "email_count": 1},
             "contentType": "application/json"},
            {"bodyBase64": base64.b64encode(raw).decode(), "messageId": "m-buf"},
        ])
        self.assertEqual(r, {"sent": 2, "batches": 0})
        r = sdk_send(conn, "q1", [{"body": {"i": i}, "messageId": "m-b%d" % i} for i in range(3)],
                     batch=True)
        self.assertEqual(r, {"sent": 3, "batches": 1})
        self.assertEqual(emu.counts("q1"), {"active": 5, "dead_letter": 0, "scheduled": 0})

        peeked = sdk_peek(conn, "q1", 10)
        self.assertEqual([m["messageId"] for m in peeked], ["m-obj", "m-buf", "m-b0", "m-b1", "m-b2"])
        self.assertEqual(emu.counts("q1")["active"], 5, "peek takes nothing")

        got = sdk_receive(conn, "q1", 5)
        self.assertEqual([m["sequenceNumber"] for m in got], [1, 2, 3, 4, 5])
        obj, buf = got[0], got[1]
        self.assertEqual(obj["body"], {"batch_id": "b-1", "emails": [{"subject": "Héllo"}]})
        self.assertEqual(obj["applicationProperties"], {"batch_id": "b-1", "email_count": 1})
        self.assertEqual(obj["contentType"], "application/json")
        self.assertEqual(obj["deliveryCount"], 0)
        self.assertEqual(base64.b64decode(buf["body"]["base64"]), raw)
        self.assertEqual([m["body"] for m in got[2:]], [{"i": 0}, {"i": 1}, {"i": 2}])
        self.assertEqual(emu.counts("q1"), {"active": 0, "dead_letter": 0, "scheduled": 0})

        # rhea with SASL PLAIN (key name and key): a JSON data section reaches the SDK parsed
        r = amqp_send(emu.amqp_port, "q1", [{"data": '{"a": 1}', "messageId": "m-rhea",
                                              "contentType": "application/json"}],
                      user=KEY_NAME, password=KEY)
        self.assertEqual(r["accepted"], 1)
        [m] = sdk_receive(conn, "q1", 1)
        self.assertEqual((m["body"], m["messageId"], m["contentType"]),
                         ({"a": 1}, "m-rhea", "application/json"))
        with self.assertRaisesRegex(PeerError, "unauthorized-access"):
            amqp_send(emu.amqp_port, "q1", [{"body": "x"}], user=KEY_NAME, password="wrong")
        self.assertEqual(emu.stop(), 0)

    def test_queue_settings_reach_the_emulator_and_counts_show_dead_letters_and_scheduled(self):
        emu = self.start_emulator(queues=[{"name": "once", "max_delivery_count": 1},
                                          {"name": "sess", "requires_session": True},
                                          {"name": "dedup", "duplicate_detection": True}])
        conn = emu.connection_string
        later = (datetime.datetime.now(datetime.timezone.utc)
                 + datetime.timedelta(minutes=10)).isoformat()
        sdk_send(conn, "once", [{"body": "give up", "messageId": "m-dl"}, {"body": "stay 1"},
                                {"body": "stay 2"}]
                 + [{"body": "later", "scheduledEnqueueTimeUtc": later}] * 3)
        [m] = sdk_receive(conn, "once", 1, settle="abandon")
        self.assertEqual(m["messageId"], "m-dl")
        self.wait_for(lambda: emu.counts("once")["dead_letter"] == 1, 10, "the dead letter")
        self.assertEqual(emu.counts("once"), {"active": 2, "dead_letter": 1, "scheduled": 3})
        [d] = sdk_peek(conn, "once", 1, sub_queue="deadLetter")
        self.assertEqual((d["messageId"], d["deadLetterReason"]), ("m-dl", "MaxDeliveryCountExceeded"))

        with self.assertRaises(PeerError):  # a session queue refuses a message without one
            sdk_send(conn, "sess", [{"body": "no session"}])
        sdk_send(conn, "sess", [{"body": "a", "sessionId": "s-a"}, {"body": "b", "sessionId": "s-b"}])
        got = sdk_receive(conn, "sess", 2, session_id="s-b", max_wait_ms=1000)
        self.assertEqual([(m["body"], m["sessionId"]) for m in got], [("b", "s-b")])

        sdk_send(conn, "dedup", [{"body": 1, "messageId": "same"}, {"body": 2, "messageId": "same"}])
        self.assertEqual(emu.counts("dedup")["active"], 1)
        self.assertEqual(emu.stop(), 0)

    def test_kill9_and_restart_with_persist_file_keep_unreceived_messages(self):
        state = self.path("sbemu.state")
        emu = self.start_emulator(queues=["q1"], persist_file=state, persist_interval_ms=100)
        conn, port = emu.connection_string, emu.amqp_port
        sdk_send(conn, "q1", [{"body": {"n": n}, "messageId": "m%d" % n} for n in range(3)])
        self.assertEqual([m["body"] for m in sdk_receive(conn, "q1", 1)], [{"n": 0}])
        emu.wait_snapshot()
        emu.kill9()
        self.assertEqual(emu.proc.returncode, -9)
        emu.restart()
        self.assertEqual(emu.amqp_port, port)
        self.assertEqual(emu.connection_string, conn)
        self.assertEqual(emu.counts("q1")["active"], 2)
        got = sdk_receive(conn, "q1", 3, max_wait_ms=1000)
        self.assertEqual([(m["messageId"], m["body"]) for m in got], [("m1", {"n": 1}), ("m2", {"n": 2})])
        self.assertEqual(emu.stop(), 0)

    def test_an_unknown_queue_setting_is_refused_before_starting(self):
        emu = Emulator(self.dir)
        with self.assertRaisesRegex(ValueError, "queue q: unknown setting 'lock_duration'"):
            emu.start(queues=[{"name": "q", "lock_duration": 5}])
        with self.assertRaisesRegex(ValueError, "requires_session must be bool"):
            emu.start(queues=[{"name": "q", "requires_session": 1}])
        self.assertIsNone(emu.proc)

    def test_the_emulator_does_not_outlive_a_killed_test_process(self):
        script = self.write("child.py", "import sys, time\n"
                            "sys.path.insert(0, %r)\n"
                            "import sbpeers\n"
                            "emu = sbpeers.Emulator(%r).start()\n"
                            "print(emu.proc.pid, flush=True)\n"
                            "time.sleep(600)\n" % (os.path.dirname(os.path.abspath(__file__)), self.dir))
        child = subprocess.Popen([sys.executable, script], stdout=subprocess.PIPE, text=True)
        self.procs.append(child)
        pid = int(child.stdout.readline())
        child.kill()  # what a CTest timeout does: no tearDown runs
        child.wait()

        def gone():
            try:
                with open("/proc/%d/stat" % pid) as f:
                    return f.read().split()[2] == "Z"
            except FileNotFoundError:
                return True
        self.addCleanup(lambda: gone() or os.kill(pid, signal.SIGKILL))  # when this test fails
        self.wait_for(gone, 10, "the emulator to exit with its test process")

    def fake_emulator(self, status):
        """A stand-in that logs a line, prints READY and exits `status` on SIGTERM."""
        fake = self.write("fake-emulator", "#!/bin/sh\n"
                          "echo 'fake emulator log line' >&2\n"
                          "trap 'echo leaked 1 object >&2; exit %d' TERM\n"
                          "echo 'READY amqp=1 amqps=-1 http=2 https=-1'\n"
                          "while :; do sleep 0.05; done\n" % status)
        os.chmod(fake, 0o755)
        return fake

    def test_stop_fails_with_the_log_when_the_emulator_exits_non_zero(self):
        emu = Emulator(self.dir, "fake", binary=self.fake_emulator(23)).start()
        self.assertEqual((emu.amqp_port, emu.http_port), (1, 2))
        with self.assertRaisesRegex(PeerError, "(?s)fake exited with 23:.*leaked 1 object"):
            emu.stop()

    def test_the_log_is_printed_when_a_test_fails_and_only_then(self):
        fake = self.fake_emulator(0)

        class Inner(PeersMixin, harness.IntakeTest):
            def test_fails(inner):
                inner.start_emulator(binary=fake)
                inner.fail("on purpose")

            def test_passes(inner):
                inner.start_emulator(binary=fake)

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            r = unittest.TextTestRunner(stream=io.StringIO()).run(
                unittest.defaultTestLoader.loadTestsFromTestCase(Inner))
        self.assertEqual((r.testsRun, len(r.failures), len(r.errors)), (2, 1, 0))
        self.assertEqual(err.getvalue().count("fake emulator log line"), 1, err.getvalue())
        self.assertIn("sbemu log (test failed)", err.getvalue())


class RabbitMQPeerTest(PeersMixin, harness.IntakeTest):
    """One node for every step: a start costs 5-10 s (more on a loaded machine)."""

    def test_amqp10_sasl_plain_outcomes_dead_letter_policy_and_restart(self):
        rmq = self.start_rabbitmq()
        print("rabbitmq: node up in %.1f s" % rmq.start_seconds)
        self.send_receive_and_release(rmq.amqp_port)
        self.a_wrong_password_is_refused(rmq.amqp_port)
        self.rejected_goes_to_the_dead_letter_queue(rmq)
        self.restart_keeps_durable_queues_only(rmq)
        self.assertEqual(rmq.stop(), 0)

    def send_receive_and_release(self, port):
        r = amqp_send(port, "/queue/jobs", [
            {"data": '{"batch_id":"b-1"}', "contentType": "application/json", "messageId": "j1",
             "applicationProperties": {"priority": "high"}},
            {"body": "second", "messageId": "j2"}])
        self.assertEqual((r["sent"], r["accepted"]), (2, 2))
        [first] = amqp_receive(port, "/queue/jobs", 1)
        self.assertEqual(first["bodyType"], "data")
        self.assertEqual(base64.b64decode(first["body"]["base64"]), b'{"batch_id":"b-1"}')
        self.assertEqual((first["messageId"], first["contentType"], first["applicationProperties"]),
                         ("j1", "application/json", {"priority": "high"}))
        [second] = amqp_receive(port, "/queue/jobs", 1, outcome="release")
        self.assertEqual((second["body"], second["firstAcquirer"]), ("second", True))
        [again] = amqp_receive(port, "/queue/jobs", 1)
        self.assertEqual((again["messageId"], again["firstAcquirer"]), ("j2", False))
        self.assertEqual(amqp_receive(port, "/queue/jobs", 1, max_wait_ms=300), [])

    def a_wrong_password_is_refused(self, port):
        with self.assertRaisesRegex(PeerError, "amqp-client.mjs exited"):
            amqp_send(port, "/queue/jobs", [{"body": "x"}], password="wrong")

    def rejected_goes_to_the_dead_letter_queue(self, rmq):
        dlq = rmq.declare_queue_with_dlq("work")
        amqp_send(rmq.amqp_port, "/amq/queue/work", [{"body": "bad", "messageId": "w1"}])
        amqp_receive(rmq.amqp_port, "/amq/queue/work", 1, outcome="reject")
        [dead] = amqp_receive(rmq.amqp_port, "/amq/queue/" + dlq, 1)
        self.assertEqual((dead["messageId"], dead["body"]), ("w1", "bad"))

    def restart_keeps_durable_queues_only(self, rmq):
        port = rmq.amqp_port
        amqp_send(port, "/queue/keep", [{"body": "m%d" % i, "durable": True} for i in range(3)],
                  durable_target=True)
        amqp_receive(port, "/amq/queue/keep", 1)  # /queue/keep would ask for a non-durable one
        amqp_send(port, "/queue/lost", [{"body": "x", "durable": True}])
        rmq.restart()
        print("rabbitmq: restarted in %.1f s" % rmq.start_seconds)
        self.assertEqual(rmq.amqp_port, port)
        counts = rmq.queue_counts()
        self.assertEqual(counts.get("keep"), 2)
        self.assertNotIn("lost", counts, "an auto-declared queue without a durable target is gone")
        got = amqp_receive(port, "/amq/queue/keep", 3, max_wait_ms=1000)
        self.assertEqual([m["body"] for m in got], ["m1", "m2"])


if __name__ == "__main__":
    unittest.main()
