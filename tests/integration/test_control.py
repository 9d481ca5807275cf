"""Control commands on the real binary: the built-in pause, resume and drain,
the file source's rescan and replay_dead_letters, each through HTTP
(POST /api/v1/control/...) and through `intake ctl`; every error status
(400, 404, 405, 409, 413, 401/403 with a token, 503 during shutdown); the
token check on loopback and the refusal to listen beyond loopback without
a token (by config validation: no test listens beyond loopback)."""
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from harness import BIN, free_port
from test_admin import AdminServerTest

TOKEN = "ctl-test-token-4f2a9c"


class ControlTest(AdminServerTest):
    """Its own pipelines; AdminServerTest gives the wait for the server."""

    def setUp(self):
        super().setUp()
        os.environ.pop("INTAKE_ADMIN_TOKEN", None)  # each test sets its own

    # ---- helpers ---------------------------------------------------------

    def start(self, body, env=None):
        port = free_port()
        conf = self.config('admin = { listen = "127.0.0.1:%d"; };\n' % port + body, admin=True)
        p = self.start_intake("run", conf, env=env)
        self.wait_for(lambda: self._up(port), what="admin server")
        return p, port

    def post(self, port, path, body=b"", headers=None):
        """POSTs body to path; returns (status, parsed JSON reply)."""
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=body,
                                     headers=headers or {}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode() or "null")

    def cmd(self, port, pipeline, instance, command, arg=None, headers=None):
        body = b"" if arg is None else (arg if isinstance(arg, bytes) else json.dumps(arg).encode())
        return self.post(port, "/api/v1/control/%s/%s/%s" % (pipeline, instance, command), body,
                         headers)

    def ctl(self, port, *args, token=None):
        """Runs `intake ctl --admin 127.0.0.1:PORT ARGS`; (exit code, stdout, stderr)."""
        env = dict(os.environ)
        env.pop("INTAKE_ADMIN_TOKEN", None)
        if token is not None:
            env["INTAKE_ADMIN_TOKEN"] = token
        r = subprocess.run([BIN, "ctl", "--admin", "127.0.0.1:%d" % port, *args],
                           capture_output=True, text=True, timeout=60, env=env)
        return r.returncode, r.stdout, r.stderr

    def health(self, port):
        return json.loads(self.http_get(port, "/health")[2])["pipelines"]

    def stop(self, p, code=0):
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, code, err[-3000:])
        return err

    def lines(self, name):
        return self.jsonl(self.path(name))

    # ---- built-in commands -------------------------------------------------

    def test_pause_drain_resume(self):
        p, port = self.start("""
pipelines = ( {
  name = "gen";
  inflight_limit = 50;
  source = { plugin = "test_gen"; count = 100000000; emit_delay = "1ms"; };
  processors = ( { plugin = "passthrough"; } );
  sinks = ( { plugin = "stdout"; path = "%s/out.jsonl"; } );
} );
""" % self.dir)
        self.wait_for(lambda: self.health(port)[0]["in"] > 0, what="records flowing")
        status, r = self.cmd(port, "gen", "test_gen", "pause")
        self.assertEqual(status, 200, r)
        self.assertEqual(r["paused"], True)
        self.assertEqual(r["was_paused"], False)
        self.assertEqual(self.health(port)[0]["paused"], True)
        # drain through the CLI: it answers at once; polling it reports
        # "drained" once everything that was in flight has settled
        code, out, err = self.ctl(port, "gen", "test_gen", "drain")
        self.assertEqual(code, 0, err)
        first = json.loads(out)
        self.assertIn(first["state"], ("draining", "drained"))
        inflight_at_start = first["inflight"] + sum(first["finished"].values())

        def drained():
            s, r = self.cmd(port, "gen", "test_gen", "drain")
            return r if s == 200 and r["state"] == "drained" else None
        last = self.wait_for(drained, what="drained")
        self.assertEqual(last["inflight"], 0)
        self.assertEqual(sum(last["finished"].values()), inflight_at_start, last)
        # paused: nothing new comes in
        taken = self.health(port)[0]["in"]
        time.sleep(0.3)
        self.assertEqual(self.health(port)[0]["in"], taken)
        self.assertEqual(self.health(port)[0]["inflight"], 0)
        # resume through the CLI: input flows again
        code, out, err = self.ctl(port, "gen", "test_gen", "resume")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["paused"], False)
        self.assertEqual(json.loads(out)["was_paused"], True)
        self.wait_for(lambda: self.health(port)[0]["in"] > taken, what="input after resume")
        self.assertEqual(self.health(port)[0]["paused"], False)
        # pause through the CLI and resume through HTTP
        code, out, err = self.ctl(port, "gen", "test_gen", "pause")
        self.assertEqual((code, json.loads(out)["paused"]), (0, True), err)
        status, r = self.cmd(port, "gen", "test_gen", "resume", {})
        self.assertEqual((status, r["paused"]), (200, False))
        err = self.stop(p)
        self.assertIn("paused by a control command", err)
        self.assertIn("draining by a control command", err)
        self.assertIn("resumed by a control command", err)

    def test_drain_lets_partial_batches_leave(self):
        # a batch that could wait an hour for more records leaves once the
        # source is paused: nothing more can come to fill it
        os.makedirs(self.path("in"))
        self.write("in/a.jsonl", "".join('{"id": "r%d"}\n' % i for i in range(3)))
        p, port = self.start("""
pipelines = ( { name = "mail";
  batch = { max_items = 100; max_wait = "1h"; };
  source = { plugin = "file"; path = "%(d)s/in"; follow = true; poll_interval = "1h"; };
  processors = ( { plugin = "passthrough"; } );
  sinks = ( { plugin = "stdout"; path = "%(d)s/out.jsonl"; } ); } );
""" % dict(d=self.dir))
        self.wait_for(lambda: self.health(port)[0]["in"] == 3, what="3 records in")
        self.assertEqual(self.health(port)[0]["delivered"], 0)
        code, out, err = self.ctl(port, "mail", "file", "drain")
        self.assertEqual(code, 0, err)

        def drained():
            s, r = self.cmd(port, "mail", "file", "drain")
            return r if r["state"] == "drained" else None
        r = self.wait_for(drained, what="drained")
        self.assertEqual(r["finished"], {"delivered": 3, "dead_lettered": 0, "released": 0})
        self.assertEqual(sorted(x["id"] for x in self.lines("out.jsonl")), ["r0", "r1", "r2"])
        self.stop(p)

    # ---- the file source's commands and the error statuses ----------------

    FILE_PIPELINES = """
pipelines = (
  { name = "mail";
    source = { plugin = "file"; path = "%(d)s/in"; follow = true; poll_interval = "1h"; };
    sinks = ( { plugin = "stdout"; path = "%(d)s/out.jsonl"; } ); },
  { name = "once";
    source = { plugin = "file"; path = "%(d)s/once"; };
    sinks = ( { plugin = "stdout"; path = "%(d)s/once.jsonl"; } ); }
);
"""

    def start_files(self):
        os.makedirs(self.path("in"))
        os.makedirs(self.path("once"))
        self.write("in/a.jsonl", '{"id": "a1", "subject": "first"}\n')
        p, port = self.start(self.FILE_PIPELINES % dict(d=self.dir))
        # the first poll has read a.jsonl: the next one is an hour away
        self.wait_for(lambda: len(self.lines("out.jsonl")) == 1, what="first file delivered")
        return p, port

    def dead_letter(self, name, rid):
        self.write("in/dead-letter/%s" % name, json.dumps(
            {"id": rid, "subject": "again", "intake_dead_letter": {"reason": "test"}}))

    def ids(self):
        return sorted(r["id"] for r in self.lines("out.jsonl"))

    def test_rescan_and_replay(self):
        p, port = self.start_files()
        # rescan through HTTP
        self.write("in/b.jsonl", '{"id": "b1", "subject": "second"}\n')
        status, r = self.cmd(port, "mail", "file", "rescan")
        self.assertEqual(status, 200, r)
        self.assertEqual(r["rescan"], "requested")
        self.wait_for(lambda: len(self.lines("out.jsonl")) == 2, what="rescan reads b.jsonl")
        # rescan through the CLI
        self.write("in/c.jsonl", '{"id": "c1", "subject": "third"}\n')
        code, out, err = self.ctl(port, "mail", "file", "rescan")
        self.assertEqual(code, 0, err)
        self.wait_for(lambda: len(self.lines("out.jsonl")) == 3, what="rescan reads c.jsonl")

        # replay: two dead letters, one at a time (CLI with a limit, then HTTP)
        self.dead_letter("d1.json", "d1")
        self.dead_letter("d2.json", "d2")
        self.write("in/dead-letter/.d3.json.tmp.1.1", "{")  # one still being written
        code, out, err = self.ctl(port, "mail", "file", "replay_dead_letters", '{"limit": 1}')
        self.assertEqual(code, 0, err)
        r = json.loads(out)
        self.assertEqual((r["moved"], r["left"], r["skipped"]), (1, 1, []))
        self.assertEqual(r["files"][0]["from"], "d1.json")
        self.assertRegex(r["files"][0]["to"], r"^replay-\d+-\d+-d1\.json$")
        self.assertTrue(os.path.exists(self.path("in", r["files"][0]["to"])))
        self.assertFalse(os.path.exists(self.path("in/dead-letter/d1.json")))
        status, r = self.cmd(port, "mail", "file", "replay_dead_letters")
        self.assertEqual(status, 200, r)
        self.assertEqual((r["moved"], r["left"]), (1, 0))
        self.assertEqual(r["files"][0]["from"], "d2.json")
        self.assertEqual(r["read"], "at the next poll")
        self.assertEqual(os.listdir(self.path("in/dead-letter")), [".d3.json.tmp.1.1"])
        self.assertEqual(self.cmd(port, "mail", "file", "rescan")[0], 200)
        self.wait_for(lambda: len(self.lines("out.jsonl")) == 5, what="replayed letters read")
        self.assertEqual(self.ids(), ["a1", "b1", "c1", "d1", "d2"])
        # nothing left: a replay moves nothing
        status, r = self.cmd(port, "mail", "file", "replay_dead_letters")
        self.assertEqual((status, r["moved"], r["files"]), (200, 0, []))
        self.stop(p)

    def test_replay_never_overwrites(self):
        p, port = self.start_files()
        self.dead_letter("d1.json", "d1")
        # the names the first replay of this run would take, for every second
        # around now, are taken already: it takes the next number instead
        now = int(time.time())
        taken = {"replay-%d-1-d1.json" % t: "taken %d" % t for t in range(now - 5, now + 60)}
        for name, text in taken.items():
            self.write("in/" + name, text)
        status, r = self.cmd(port, "mail", "file", "replay_dead_letters")
        self.assertEqual((status, r["moved"], r["skipped"]), (200, 1, []), r)
        self.assertRegex(r["files"][0]["to"], r"^replay-\d+-2-d1\.json$")
        for name, text in taken.items():
            with open(self.path("in", name)) as f:
                self.assertEqual(f.read(), text)
        with open(self.path("in", r["files"][0]["to"])) as f:
            self.assertEqual(json.load(f)["id"], "d1")
        self.assertEqual(os.listdir(self.path("in/dead-letter")), [])
        self.stop(p)

    def test_error_statuses(self):
        p, port = self.start_files()
        # 404: unknown pipeline, instance, command; a path that is no route
        for path, text in (("nope/file/rescan", "no pipeline 'nope'"),
                           ("mail/nope/rescan", "has no instance 'nope'"),
                           ("mail/file/nope", "has no command 'nope'"),
                           ("mail/file", "expected /api/v1/control/PIPELINE/INSTANCE/COMMAND")):
            status, r = self.post(port, "/api/v1/control/" + path)
            self.assertEqual(status, 404, path)
            self.assertIn(text, r["error"])
        code, out, err = self.ctl(port, "mail", "file", "nope")
        self.assertEqual(code, 8, err)
        self.assertIn("has no command 'nope'", json.loads(out)["error"])
        self.assertIn("HTTP 404", err)
        # 400: JSON that does not parse, with where; a bad argument, with why
        status, r = self.cmd(port, "mail", "file", "rescan", b'{"a": tru}')
        self.assertEqual(status, 400)
        self.assertIn("invalid JSON at byte 9: boolean expected", r["error"])
        code, out, err = self.ctl(port, "mail", "file", "pause", '{"a":')
        self.assertEqual(code, 8, err)
        self.assertIn("invalid JSON at byte 5", json.loads(out)["error"])
        status, r = self.cmd(port, "mail", "file", "replay_dead_letters", {"limit": 0})
        self.assertEqual(status, 400)
        self.assertIn('"limit" must be an integer from 1 to 100000', r["error"])
        status, r = self.cmd(port, "mail", "file", "replay_dead_letters", {"max": 3})
        self.assertEqual(status, 400)
        self.assertIn('unknown key "max"', r["error"])
        status, r = self.cmd(port, "mail", "file", "pause", [1])
        self.assertEqual(status, 400)
        self.assertIn("pause takes no argument", r["error"])
        # 409: a source that does not poll cannot rescan
        status, r = self.cmd(port, "once", "file", "rescan")
        self.assertEqual(status, 409, r)
        self.assertIn("follow = false", r["error"])
        code, out, err = self.ctl(port, "once", "file", "rescan")
        self.assertEqual(code, 8, err)
        self.assertIn("HTTP 409", err)
        # 413: a body past 64 KiB
        status, r = self.cmd(port, "mail", "file", "rescan", b" " * 70000)
        self.assertEqual(status, 413)
        self.assertIn("over the limit", r["error"])
        # 405: a command is POST only
        status, _, body = self.http_get(port, "/api/v1/control/mail/file/rescan")
        self.assertEqual(status, 405, body)
        # the listing, through HTTP and the CLI
        status, _, body = self.http_get(port, "/api/v1/control")
        self.assertEqual(status, 200)
        listed = {(c["pipeline"], c["instance"], c["command"]): c["help"]
                  for c in json.loads(body)["commands"]}
        for pl in ("mail", "once"):
            for c in ("pause", "resume", "drain", "rescan", "replay_dead_letters"):
                self.assertIn((pl, "file", c), listed)
                self.assertTrue(listed[(pl, "file", c)])
        code, out, err = self.ctl(port, "list")
        self.assertEqual(code, 0, err)
        self.assertEqual(len(json.loads(out)["commands"]), len(listed))
        # the CLI: nothing listening, bad command line
        code, out, err = self.ctl(free_port(), "list")
        self.assertEqual(code, 7, err)
        self.assertIn("no answer from the admin server", err)
        code, out, err = self.ctl(port, "mail", "file")
        self.assertEqual(code, 2, err)
        self.stop(p)

    # ---- the token -----------------------------------------------------------

    def test_token_on_loopback(self):
        p, port = self.start("""
pipelines = ( { name = "gen";
  source = { plugin = "test_gen"; count = 100000000; emit_delay = "5ms"; };
  sinks = ( { plugin = "stdout"; path = "%s/out.jsonl"; } ); } );
""" % self.dir, env={"INTAKE_ADMIN_TOKEN": TOKEN})
        status, r = self.cmd(port, "gen", "test_gen", "pause")
        self.assertEqual(status, 401)
        self.assertIn("Authorization: Bearer", r["error"])
        status, r = self.cmd(port, "gen", "test_gen", "pause",
                             headers={"Authorization": "Bearer " + TOKEN + "x"})
        self.assertEqual(status, 403)
        status, _, _ = self.http_get(port, "/api/v1/control")
        self.assertEqual(status, 401)
        status, r = self.cmd(port, "gen", "test_gen", "pause",
                             headers={"Authorization": "Bearer " + TOKEN})
        self.assertEqual((status, r["paused"]), (200, True))
        code, out, err = self.ctl(port, "gen", "test_gen", "resume", token=TOKEN)
        self.assertEqual(code, 0, err)
        code, out, err = self.ctl(port, "gen", "test_gen", "resume", token="wrong")
        self.assertEqual(code, 8, err)
        self.assertIn("HTTP 403", err)
        code, out, err = self.ctl(port, "list")
        self.assertEqual(code, 8, err)
        self.assertIn("HTTP 401", err)
        # /health and /metrics stay open, and never show the token
        for path in ("/health", "/metrics"):
            status, _, body = self.http_get(port, path)
            self.assertEqual(status, 200, path)
            self.assertNotIn(TOKEN, body)
        err = self.stop(p)
        self.assertIn("token required", err)
        self.assertNotIn(TOKEN, err)

    def test_beyond_loopback_needs_a_token(self):
        conf = self.config('admin = { listen = "0.0.0.0:0"; };\n'
                           'pipelines = ( { name = "p"; source = { plugin = "test_gen"; };\n'
                           '  sinks = ( { plugin = "stdout"; } ); } );\n', admin=True)
        r = self.run_intake("validate", conf, check=3)
        self.assertIn("%s:2:" % conf, r.stderr)
        self.assertIn("admin.listen 0.0.0.0:0 is reachable beyond loopback", r.stderr)
        self.assertIn("INTAKE_ADMIN_TOKEN", r.stderr)
        self.run_intake("validate", conf, check=0, env={"INTAKE_ADMIN_TOKEN": TOKEN})
        # the command line's --admin is checked too, before anything listens
        local = self.config('pipelines = ( { name = "p"; source = { plugin = "test_gen"; };\n'
                            '  sinks = ( { plugin = "stdout"; path = "%s/o"; } ); } );\n'
                            % self.dir, name="local.conf")
        r = self.run_intake("run", "--admin", "0.0.0.0:0", local, check=4)
        self.assertIn("INTAKE_ADMIN_TOKEN", r.stderr)

    # ---- shutdown ----------------------------------------------------------

    def test_command_during_shutdown(self):
        p, port = self.start("""
shutdown_timeout = "60s";
pipelines = ( { name = "stuck";
  batch = { max_items = 1; max_wait = "1ms"; };
  source = { plugin = "test_gen"; count = 1000; };
  processors = ( { plugin = "test_fault"; mode = "slow"; delay = "30s";
                    log_batches = "%s/calls"; } );
  sinks = ( { plugin = "stdout"; path = "%s/out.jsonl"; } ); } );
""" % (self.dir, self.dir))
        # the slow call must be running, or the engine has nothing to wait
        # for and is gone before the commands below reach it
        self.wait_for(lambda: os.path.exists(self.path("calls")) and
                      os.path.getsize(self.path("calls")) > 0, what="the slow call to start")
        status, r = self.cmd(port, "stuck", "test_gen", "pause")
        self.assertEqual(status, 200, r)
        p.send_signal(signal.SIGTERM)
        # the engine waits for the slow call; commands are refused meanwhile
        s = self.wait_for(lambda: (lambda x: x if x[0] == 503 else None)(
            self.cmd(port, "stuck", "test_gen", "resume")), what="503 during shutdown")
        self.assertIn("shutting down", s[1]["error"])
        code, out, err = self.ctl(port, "stuck", "test_gen", "drain")
        self.assertEqual(code, 9, err)
        self.assertIn("HTTP 503", err)
        self.assertEqual(self.http_get(port, "/health")[0] in (200, 503), True)
        self.assertIsNone(p.poll())
        self.stop(p, code=5)  # the second signal: at once
