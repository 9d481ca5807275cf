"""test_state.py: the state store through the real binary: the SDK host
interface end to end (the test_state plugin), the `intake state` CLI, kill -9
in the middle of writes, a full disk turning the pipeline unhealthy, and a
corrupt store refused at start."""
import json
import os
import signal
import sqlite3
import subprocess
import time
import unittest

from harness import BIN, IntakeTest, free_port


def store_rows(db, sql, *args):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


class StateStoreTest(IntakeTest):

    def pipelines(self, *sources, state="", admin=False):
        body = state + "pipelines = (\n" + ",\n".join(
            '{ name = "%s"; source = { plugin = "test_state"; %s }; '
            'sinks = ( { plugin = "stdout"; path = "/dev/null"; } ); }' % (name, opts)
            for name, opts in sources) + ");\n"
        return self.config(body, admin=admin)

    def cli(self, conf, *args, check=0):
        return self.run_intake("state", "--config", conf, *args, check=check)

    def test_sdk_end_to_end_and_namespaces(self):
        conf = self.pipelines(("p1", 'name = "alpha";'), ("p2", 'name = "beta";'))
        r = self.run_intake("run", conf, check=0)
        self.assertEqual(r.stderr.count("state selftest ok"), 2, r.stderr)
        self.assertTrue(os.path.exists(self.path("state", "state.db")))
        out = self.cli(conf, "list").stdout
        self.assertRegex(out, r"p1/alpha\s+3 keys\s+3 ledger entries")
        self.assertRegex(out, r"p2/beta\s+3 keys\s+3 ledger entries")
        # each instance kept its own name under the same key
        self.assertEqual(self.cli(conf, "get", "p1/alpha", "whoami").stdout, "alpha")
        self.assertEqual(self.cli(conf, "get", "p2/beta", "whoami").stdout, "beta")
        # a second run reads and writes the same namespaces again
        r = self.run_intake("run", conf, check=0)
        self.assertEqual(r.stderr.count("state selftest ok"), 2, r.stderr)

    def test_cli(self):
        conf = self.pipelines(("p", 'name = "w"; mode = "writer"; count = 3;'))
        # nothing written yet: no store, and the CLI does not make one
        r = self.cli(conf, "list", check=1)
        self.assertIn("no state store at %s" % self.path("state", "state.db"), r.stderr)
        self.assertFalse(os.path.exists(self.path("state")))
        self.run_intake("run", conf, check=0)
        self.assertRegex(self.cli(conf, "list").stdout, r"p/w\s+3 keys\s+3 ledger entries")
        keys = self.cli(conf, "list", "p/w").stdout.splitlines()
        self.assertEqual([k.split()[0] for k in keys], ["k1", "k2", "k3", "ledger"])
        self.assertRegex(keys[3], r"^ledger log\s+3 entries \(1\.\.3\)$")
        self.assertRegex(keys[0], r"^k1\s+version \d+\s+64 bytes\s+expires -\s+written \d{4}-")
        self.assertTrue(self.cli(conf, "get", "p/w", "k2").stdout.startswith("v2:xxx"))
        # --state-dir reads the same store
        r = self.run_intake("state", "--state-dir", self.path("state"), "get", "p/w", "k1", check=0)
        self.assertTrue(r.stdout.startswith("v1:"))
        r = self.cli(conf, "delete", "p/w", "k2")
        self.assertIn("deleted 'k2' from namespace 'p/w'", r.stderr)
        r = self.cli(conf, "get", "p/w", "k2", check=1)
        self.assertIn("no key 'k2' in namespace 'p/w'", r.stderr)
        r = self.cli(conf, "delete", "p/w", "k2", check=1)
        self.assertIn("no key 'k2'", r.stderr)
        self.assertEqual(self.cli(conf, "list", "p/other", check=0).stderr.strip(),
                         "intake state: nothing in namespace 'p/other'")
        # bad command lines
        self.assertIn("exactly one of --config",
                      self.run_intake("state", "list", check=2).stderr)
        self.assertIn("unknown command", self.cli(conf, "frob", check=2).stderr)
        self.assertIn("unknown command", self.cli(conf, "get", "p/w", check=2).stderr)
        self.assertIn("state [--config FILE | --state-dir DIR] list [NAMESPACE]",
                      self.run_intake("--help", check=0).stdout)

    def test_config_checked(self):
        self.write("afile", "x")
        conf = self.pipelines(("p", ""), state='state = { dir = "afile"; };\n')
        r = self.run_intake("validate", conf, check=3)
        self.assertIn("%s:3: state.dir %s is not a folder" % (conf, self.path("afile")), r.stderr)
        conf = self.pipelines(("p", ""), state='state = { durability = "sometimes"; };\n')
        r = self.run_intake("validate", conf, check=3)
        self.assertIn("state.durability must be normal or full; got the string \"sometimes\"",
                      r.stderr)
        conf = self.pipelines(("p", ""), state='state = { dir = "s"; fsync = true; };\n')
        r = self.run_intake("validate", conf, check=3)
        self.assertIn("unknown setting 'fsync' in state; allowed: dir, durability", r.stderr)

    def test_corrupt_store_refused_at_start(self):
        os.makedirs(self.path("st"))
        with open(self.path("st", "state.db"), "wb") as f:
            f.write(b"this is not a database, it is a shopping list\n" * 200)
        conf = self.pipelines(("p", ""), state='state = { dir = "st"; };\n')
        r = self.run_intake("run", conf, check=4)
        self.assertIn("state store %s" % self.path("st", "state.db"), r.stderr)
        self.assertIn("refusing to start", r.stderr)
        self.assertNotIn("state selftest ok", r.stderr)

    # ------------------------------------------------------------ kill -9

    def kill_during_writes(self, durability, after):
        """Runs the writer until `after` commits are reported, kills it with
        SIGKILL, then checks every reported commit against the file."""
        sdir = self.path("st-%s-%d" % (durability, after))
        progress = self.path("progress-%s-%d" % (durability, after))
        conf = self.pipelines(
            ("p", 'name = "w"; mode = "writer"; count = 0; progress = "%s";' % progress),
            state='state = { dir = "%s"; durability = "%s"; };\n' % (sdir, durability))
        with open(self.path("stderr-%d" % after), "w") as err:
            p = subprocess.Popen([BIN, "run", conf], stdout=subprocess.DEVNULL, stderr=err)
            self.procs.append(p)

            def committed():
                if not os.path.exists(progress):
                    return 0
                with open(progress) as f:
                    return f.read().count("\n")

            self.wait_for(lambda: committed() >= after, timeout=60, what="%d commits" % after)
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
        with open(progress) as f:
            done = [int(x) for x in f.read().split()]
        db = os.path.join(sdir, "state.db")
        self.assertEqual(store_rows(db, "PRAGMA integrity_check"), [("ok",)])
        keys = {k for (k,) in store_rows(db, "SELECT key FROM kv WHERE ns='p/w'")}
        entries = {e.decode() for (e,) in store_rows(db, "SELECT entry FROM ledger "
                                                         "WHERE ns='p/w' AND name='log'")}
        missing = [n for n in done if "k%d" % n not in keys or "e%d" % n not in entries]
        self.assertEqual(missing, [], "%d commits reported, these are not in the store" % len(done))
        # the transaction holds: no key without its ledger entry, or the reverse
        self.assertEqual({k[1:] for k in keys}, {e[1:] for e in entries})
        # and the engine starts on it again
        r = self.cli(conf, "list")
        self.assertIn("p/w", r.stdout)
        return len(done)

    def test_kill_9_during_writes(self):
        for after in (50, 400):
            self.kill_during_writes("normal", after)
        self.kill_during_writes("full", 30)

    # ------------------------------------------------------------ unwritable

    def test_read_only_store_refused(self):
        """A store on a file system that became read-only (a tmpfs this test
        mounts and remounts read-only in namespaces of its own) is refused
        by validate and run, naming the folder and why."""
        sdir = self.path("ro")
        os.makedirs(sdir)
        conf = self.pipelines(("p", 'name = "w"; mode = "writer"; count = 3;'),
                              state='state = { dir = "%s"; };\n' % sdir)
        out = self.path("out")
        script = ("mount -t tmpfs -o size=1m tmpfs {d} && {b} run {c} 2>/dev/null && "
                  "mount -o remount,ro {d} && {b} validate {c} > {o}.validate 2>&1; "
                  "echo $? >> {o}.validate; {b} run {c} > {o}.run 2>&1; echo $? >> {o}.run"
                  ).format(d=sdir, b=BIN, c=conf, o=out)
        r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            script], capture_output=True, text=True, timeout=120)
        if not os.path.exists(out + ".validate"):
            self.skipTest("cannot mount a tmpfs in a user namespace here: %s" % r.stderr)
        for what in ("validate", "run"):
            with open(out + "." + what) as f:
                text = f.read()
            self.assertIn("%s:3: state.dir %s is not writable: Read-only file system" % (conf, sdir),
                          text)
            self.assertEqual(text.split()[-1], "3", text)

    # ------------------------------------------------------------ disk full

    def test_disk_full_makes_pipeline_unhealthy(self):
        """The store sits on a 1 MiB tmpfs that this test mounts in a user and
        mount namespace of its own (unshare); the writer fills it. Where
        unshare is not allowed, RLIMIT_FSIZE (SIGXFSZ ignored) fails the
        writes the same way, with EFBIG instead of ENOSPC."""
        port = free_port()
        sdir = self.path("small")
        os.makedirs(sdir)
        progress = self.path("progress")
        conf = self.pipelines(
            ("p", 'name = "w"; mode = "writer"; count = 0; interval = "20ms"; '
                  'value_size = "64K"; progress = "%s";' % progress),
            state='state = { dir = "%s"; };\nadmin = { listen = "127.0.0.1:%d"; };\n'
                  % (sdir, port), admin=True)
        checker = self.path("check.py")
        with open(checker, "w") as f:
            f.write("import sqlite3, sys\n"
                    "con = sqlite3.connect(sys.argv[1])\n"
                    "print(con.execute('PRAGMA integrity_check').fetchone()[0])\n"
                    "print(' '.join(k for (k,) in con.execute(\"SELECT key FROM kv\")))\n")
        report = self.path("report")
        script = ("mount -t tmpfs -o size=1m tmpfs %s && %s run %s; "
                  "python3 %s %s/state.db > %s" % (sdir, BIN, conf, checker, sdir, report))
        how = "tmpfs"
        probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                                "mount -t tmpfs -o size=64k tmpfs %s" % sdir],
                               capture_output=True)
        errf = open(self.path("stderr"), "w")
        if probe.returncode == 0:
            p = subprocess.Popen(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                                  script], stdout=subprocess.DEVNULL, stderr=errf)
        else:
            import resource
            how = "RLIMIT_FSIZE"

            def limit():
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
            p = subprocess.Popen([BIN, "run", conf], stdout=subprocess.DEVNULL, stderr=errf,
                                 preexec_fn=limit)
        self.procs.append(p)

        def unhealthy():
            try:
                code, _, body = self.http_get(port, "/health")
            except OSError:
                return None
            doc = json.loads(body)
            return doc if code == 503 else None

        doc = self.wait_for(unhealthy, timeout=90, what="/health 503 (%s)" % how)
        reasons = doc["pipelines"][0]["reasons"]
        self.assertTrue(any("state store writes failing since" in r and
                            os.path.join(sdir, "state.db") in r for r in reasons), reasons)
        if how == "tmpfs":
            self.assertTrue(any("disk full" in r for r in reasons), reasons)
        # stop the engine (the shell then checks the file inside the namespace)
        if how == "tmpfs":  # p is the shell (unshare execs it); intake is its child
            with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
                for child in f.read().split():
                    os.kill(int(child), signal.SIGTERM)
        else:
            p.terminate()
        p.wait(timeout=60)
        errf.close()
        with open(self.path("stderr")) as f:
            log = f.read()
        self.assertIn("the pipeline is unhealthy until a write succeeds", log)
        self.assertIn("trying again", log)
        # writes inside a transaction whose commit then fails prove nothing:
        # the pipeline does not flap back to healthy while the disk is full
        self.assertNotIn("succeed again", log)
        with open(progress) as f:
            done = [int(x) for x in f.read().split()]
        self.assertGreater(len(done), 0)
        if how == "tmpfs":
            with open(report) as f:
                integrity, keys = f.read().split("\n")[:2]
            self.assertEqual(integrity, "ok")
            keys = set(keys.split())
        else:
            self.assertEqual(store_rows(os.path.join(sdir, "state.db"), "PRAGMA integrity_check"),
                             [("ok",)])
            keys = {k for (k,) in store_rows(os.path.join(sdir, "state.db"),
                                             "SELECT key FROM kv")}
        self.assertEqual([n for n in done if "k%d" % n not in keys], [])


if __name__ == "__main__":
    unittest.main()
