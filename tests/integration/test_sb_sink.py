"""test_sb_sink.py: the `servicebus` sink in the real engine (intake-servicebus.so, both
kinds in one file) against intake-sb-emulator, read back with the official
@azure/service-bus SDK (sbpeers.sdk_receive).

- Records sent one per message arrive with their JSON body, message id (the record id),
  content type and application properties; session ids taken from a record field reach a
  session queue's session.
- envelope = "batch": the SDK reads the original service's envelope, batch_id equal to the
  message id; a second run of the same records is caught by duplicate detection.
- The emulator stopped mid-run (its connections dropped, its messages kept in its persist
  file) and started again: every record is delivered in the end (retried, or held while the
  stage is down), none dead-lettered, and the queue holds every record (duplicates only from
  sends whose answer was lost). A kill -9 would lose what the emulator accepted after its last
  snapshot, which is the broker's loss, not the sink's, so the stop is a clean one.
- RabbitMQ (broker = "amqp", SASL PLAIN): the messages arrive with body and message id.
- A broker that refuses the key: the stage is down (no record lost, none dead-lettered) and
  neither the log nor /health shows the key.
"""
import base64
import json
import unittest

import harness
from sbpeers import PeersMixin, sdk_receive, amqp_receive

PIPELINE = """
pipelines = ( {
  name = "send";
  batch = { max_items = %(items)d; max_wait = "20ms"; };
  source = { plugin = "test_gen"; prefix = "%(prefix)s"; count = %(count)d; body_bytes = 40; };
  sinks = ( { plugin = "servicebus"; connection_string = "%(conn)s"; queue = "%(queue)s";
              %(extra)s } );
} );
"""


class ServiceBusSinkTest(PeersMixin, harness.IntakeTest):
    def send(self, emu, queue, count, prefix="r", items=10, extra="", conn=None, check=0,
             timeout=120):
        conf = self.config(PIPELINE % dict(conn=conn or emu.connection_string, queue=queue,
                                           count=count, prefix=prefix, items=items, extra=extra))
        return self.run_intake("run", conf, check=check, timeout=timeout)

    def health(self, port):
        try:
            return self.http_get(port, "/health")[2]
        except OSError:  # not listening yet
            return ""

    def test_sdk_receives_body_id_properties_and_session(self):
        emu = self.start_emulator(queues=["q", {"name": "sq", "requires_session": True}])
        r = self.send(emu, "q", 25)
        self.assertEqual(self.summary(r.stderr)["send"]["delivered"], 25)
        got = sdk_receive(emu.connection_string, "q", 25)
        self.assertEqual(sorted(m["messageId"] for m in got),
                         sorted("r-%d" % i for i in range(1, 26)))
        one = [m for m in got if m["messageId"] == "r-3"][0]
        self.assertEqual(one["body"]["id"], "r-3")
        self.assertIn("subject", one["body"])
        self.assertEqual(one["contentType"], "application/json")
        self.assertEqual(one["applicationProperties"], {"email_count": 1, "priority": 0})

        r = self.send(emu, "sq", 3, prefix="s", extra='session_id_from = "id";')
        self.assertEqual(self.summary(r.stderr)["send"]["delivered"], 3)
        got = sdk_receive(emu.connection_string, "sq", 3, session_id="s-2")
        self.assertEqual([(m["messageId"], m["sessionId"]) for m in got], [("s-2", "s-2")])

    def test_envelope_read_by_the_sdk_and_resend_is_a_duplicate(self):
        emu = self.start_emulator(queues=[{"name": "q", "duplicate_detection": True}])
        extra = 'envelope = "batch"; max_batch_size = 4;'
        for _ in range(2):
            r = self.send(emu, "q", 8, prefix="e", items=8, extra=extra)
            self.assertEqual(self.summary(r.stderr)["send"]["delivered"], 8)
        self.assertEqual(emu.counts("q")["active"], 2, "the second run's envelopes were duplicates")
        got = sdk_receive(emu.connection_string, "q", 5, max_wait_ms=2000)
        self.assertEqual(len(got), 2)
        for m in got:
            env = m["body"]
            self.assertEqual(env["batch_id"], m["messageId"])
            self.assertEqual(m["applicationProperties"]["batch_id"], m["messageId"])
            self.assertEqual(env["email_count"], 4)
            self.assertEqual(len(env["emails"]), 4)
            self.assertEqual(env["retry_count"], 0)
        ids = sorted(e["id"] for m in got for e in m["body"]["emails"])
        self.assertEqual(ids, sorted("e-%d" % i for i in range(1, 9)))

    def test_refused_key_pauses_the_stage_and_is_never_shown(self):
        emu = self.start_emulator(queues=["q"])
        conn = emu.connection_string.replace("SAS_KEY_VALUE", "N0tTheR1ghtKey")
        port = harness.free_port()
        conf = self.config(PIPELINE % dict(conn=conn, queue="q", count=3, prefix="k", items=3,
                                           extra=""), admin=True,
                           extra='admin = { enabled = true; listen = "127.0.0.1:%d"; };\n' % port)
        p = self.start_intake("run", conf)
        self.wait_for(lambda: "cannot send to" in self.health(port),
                      what="/health naming the refusal")
        body = self.health(port)
        self.assertNotIn("N0tTheR1ghtKey", body)
        p.terminate()
        _, err = p.communicate(timeout=60)
        self.assertNotIn("N0tTheR1ghtKey", err)
        s = self.summary(err)["send"]
        self.assertEqual(s["dead_lettered"], 0)
        self.assertEqual(s["delivered"], 0)


    def test_emulator_restarted_mid_run(self):
        emu = self.start_emulator(queues=["q"], persist_file=self.path("emu.state"))
        n = 3000
        conf = self.config(PIPELINE % dict(conn=emu.connection_string, queue="q", count=n,
                                           prefix="k", items=20, extra='timeout = "2s";'),
                           extra="")
        with open(conf) as f:
            conf_text = f.read()
        conf_text = conf_text.replace(
            'name = "send";', 'name = "send"; inflight_limit = 200; '
            'retry = { max_attempts = 50; initial_backoff = "100ms"; max_backoff = "500ms"; };')
        with open(conf, "w") as f:
            f.write(conf_text)
        p = self.start_intake("run", conf)
        self.wait_for(lambda: emu.counts("q")["active"] > 300, timeout=60,
                      what="some messages sent")
        emu.restart()
        _, err = p.communicate(timeout=240)
        self.assertEqual(p.returncode, 0, err[-3000:])
        s = self.summary(err)["send"]
        self.assertEqual((s["delivered"], s["dead_lettered"]), (n, 0), err[-3000:])
        self.assertGreaterEqual(emu.counts("q")["active"], n)

    def test_rabbitmq_with_sasl_plain(self):
        rmq = self.start_rabbitmq()
        conn = ("Endpoint=amqp://127.0.0.1:%d;SharedAccessKeyName=guest;SharedAccessKey=guest"
                % rmq.amqp_port)
        r = self.send(None, "/queue/jobs", 5, prefix="j", conn=conn, extra='broker = "amqp";')
        self.assertEqual(self.summary(r.stderr)["send"]["delivered"], 5, r.stderr[-3000:])
        self.assertIn("SASL PLAIN", r.stderr)
        got = amqp_receive(rmq.amqp_port, "/queue/jobs", 5)
        self.assertEqual(sorted(m["messageId"] for m in got), ["j-%d" % i for i in range(1, 6)])
        for m in got:
            self.assertEqual(m["bodyType"], "data")
            body = json.loads(base64.b64decode(m["body"]["base64"]))
            self.assertEqual(body["id"], m["messageId"])
            self.assertEqual(m["contentType"], "application/json")


if __name__ == "__main__":
    unittest.main()
