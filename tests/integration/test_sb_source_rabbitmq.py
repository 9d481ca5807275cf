"""test_sb_source_rabbitmq.py: the `servicebus` source with broker = "amqp" against a real
AMQP 1.0 broker, RabbitMQ (its own node on free loopback ports, started once for this class):
SASL PLAIN, records completed (accepted), records given back at shutdown (released, which
RabbitMQ requeues; it ends the session on `modified`), and reconnection after the broker
restarts.
"""
import json
import signal
import time
import unittest

import harness
import sbpeers

SLOW = sbpeers.SLOW


class RabbitSourceTest(harness.IntakeTest):

    @classmethod
    def setUpClass(cls):
        cls.rmq = sbpeers.RabbitMQ("rabbit-src")
        try:
            cls.rmq.start()
        except Exception:
            cls.rmq.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.rmq.cleanup()

    def tearDown(self):
        if sbpeers._test_failed(self):
            self.rmq.print_log("test failed")
        super().tearDown()

    def conf(self, queue, processors="", shutdown="10s"):
        conn = ("Endpoint=amqp://127.0.0.1:%d;SharedAccessKeyName=guest;SharedAccessKey=guest"
                % self.rmq.amqp_port)
        return self.config("""
shutdown_timeout = "%s";
pipelines = ( {
  name = "rmq";
  source = { plugin = "servicebus"; broker = "amqp"; connection_string = "%s"; queue = "%s";
             reconnect_initial = "200ms"; reconnect_max = "1s"; };
  processors = ( %s );
  sinks = ( { plugin = "stdout"; path = "%s"; format = "record"; } );
} );
""" % (shutdown, conn, queue, processors, self.path("out.jsonl")))

    def lines(self):
        return self.jsonl(self.path("out.jsonl"))

    def send(self, queue, ids):
        r = sbpeers.amqp_send(self.rmq.amqp_port, queue, [
            {"data": json.dumps({"id": i, "body": "x"}), "messageId": "m-" + i,
             "contentType": "application/json"} for i in ids], durable_target=True)
        self.assertEqual(r["accepted"], len(ids), r)

    def stop(self, p):
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60 * SLOW)
        return p.returncode, err

    def test_plain_auth_records_and_completion(self):
        self.send("/queue/rq-done", ["a", "b", "c"])
        p = self.start_intake("run", self.conf("/amq/queue/rq-done"))
        self.wait_for(lambda: len(self.lines()) >= 3, timeout=30 * SLOW, what="three records")
        rc, err = self.stop(p)
        self.assertEqual(rc, 0, err[-3000:])
        self.assertIn("SASL PLAIN", err)
        self.assertEqual(sorted(r["id"] for r in self.lines()), ["a", "b", "c"])
        self.assertEqual(self.rmq.queue_counts().get("rq-done"), 0)

    def test_released_records_are_requeued(self):
        self.send("/queue/rq-rel", ["r1", "r2"])
        p = self.start_intake("run", self.conf("/amq/queue/rq-rel", shutdown="1s",
                                               processors='{ plugin = "test_fault"; '
                                                          'mode = "slow"; delay = "20s"; }'))
        time.sleep(2.0 * SLOW)
        rc, err = self.stop(p)
        self.assertEqual(self.summary(err)["rmq"]["released"], 2, err[-3000:])
        self.assertNotIn("invalid-field", err)
        self.assertEqual(self.rmq.queue_counts().get("rq-rel"), 2, "both back in the queue")
        p = self.start_intake("run", self.conf("/amq/queue/rq-rel"))
        self.wait_for(lambda: len(self.lines()) >= 2, timeout=30 * SLOW, what="both again")
        rc, err = self.stop(p)
        self.assertEqual(rc, 0, err[-3000:])
        self.assertEqual(sorted(r["id"] for r in self.lines()), ["r1", "r2"])

    def test_reconnects_after_the_broker_restarts(self):
        self.send("/queue/rq-restart", ["before"])
        p = self.start_intake("run", self.conf("/amq/queue/rq-restart"))
        self.wait_for(lambda: self.lines(), timeout=30 * SLOW, what="the first record")
        self.rmq.restart()
        self.send("/queue/rq-restart", ["after"])
        self.wait_for(lambda: len(self.lines()) >= 2, timeout=60 * SLOW,
                      what="the record sent after the restart")
        rc, err = self.stop(p)
        self.assertEqual(rc, 0, err[-3000:])
        self.assertIn("lost the broker", err)
        self.assertEqual([r["id"] for r in self.lines()], ["before", "after"])


if __name__ == "__main__":
    unittest.main()
