"""sbsource.py: what the `servicebus` source's integration tests share: a pipeline reading
the emulator (with a stdout sink and a dead_letter sink in the test's folder) and running
intake until a condition holds.
"""
import signal

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
