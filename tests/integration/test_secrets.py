"""A value from an option marked secret never appears in logs, errors or
metrics, even when a plugin logs it carelessly, in text and JSON logs."""
import json
import unittest

from harness import IntakeTest, free_port

TOKEN = "sk-test-7f3a9c2e41b8d6a0"


class SecretsTest(IntakeTest):
    def body(self, extra=""):
        return """
pipelines = ( {
  name = "s";
  source = { plugin = "test_gen"; count = 3; api_token = "${TEST_TOKEN}"; %s };
  sinks = ( { plugin = "stdout"; path = "%s/out.jsonl"; } );
} );
""" % (extra, self.dir)

    def test_redacted_in_text_and_json_logs(self):
        conf = self.config(self.body())
        for fmt in ("text", "json"):
            r = self.run_intake("run", "--log-format", fmt, conf, env={"TEST_TOKEN": TOKEN}, check=0)
            self.assertNotIn(TOKEN, r.stderr)
            self.assertNotIn(TOKEN[3:15], r.stderr)
            self.assertIn("[REDACTED]", r.stderr)
            if fmt == "json":
                for line in r.stderr.splitlines():
                    json.loads(line)

    def test_not_in_errors(self):
        # an option error in the same stage must not echo the secret
        conf = self.config(self.body().replace("count = 3;", 'count = "x";'))
        r = self.run_intake("validate", conf, env={"TEST_TOKEN": TOKEN}, check=3)
        self.assertIn("count", r.stderr)
        self.assertNotIn(TOKEN, r.stderr + r.stdout)

    def test_not_in_metrics_or_health(self):
        port = free_port()
        conf = self.config('admin = { listen = "127.0.0.1:%d"; };\n' % port + self.body()
                           .replace("count = 3;", "count = 100000; emit_delay = \"5ms\";"),
                           admin=True)
        p = self.start_intake("run", conf, env={"TEST_TOKEN": TOKEN})
        self.wait_for(lambda: self._get(port), what="admin")
        for path in ("/metrics", "/health"):
            self.assertNotIn(TOKEN, self.http_get(port, path)[2])
        p.terminate()
        _, err = p.communicate(timeout=30)
        self.assertNotIn(TOKEN, err)

    def _get(self, port):
        try:
            return self.http_get(port, "/health")[0] == 200
        except OSError:
            return False


if __name__ == "__main__":
    unittest.main()
