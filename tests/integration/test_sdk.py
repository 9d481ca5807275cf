"""A third party builds a plugin from the installed SDK alone (cc + pkg-config,
no engine sources), and the engine loads and runs it; the installed engine
finds the installed plugins by itself (relative to its own binary), never
the build's, and warns when a plugin name is in two folders."""
import glob
import json
import os
import shutil
import subprocess
import unittest

from harness import IntakeTest, BUILD, SRC


class OutOfTreePluginTest(IntakeTest):
    def test_template_builds_from_installed_sdk_and_runs(self):
        prefix = self.path("prefix")
        subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix], check=True,
                       capture_output=True)
        pcs = glob.glob(os.path.join(prefix, "**", "intake-sdk.pc"), recursive=True)
        self.assertEqual(len(pcs), 1, "intake-sdk.pc installed once")
        # everything lands under the prefix, plugins included
        self.assertTrue(glob.glob(os.path.join(prefix, "**", "intake", "plugins", "intake-file.so"),
                                  recursive=True))
        self.assertTrue(glob.glob(os.path.join(prefix, "**", "IntakeSDKConfig.cmake"),
                                  recursive=True))
        # build outside the source tree, from a copy of the template
        work = self.path("thirdparty")
        shutil.copytree(os.path.join(SRC, "sdk", "template"), work)
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]))
        cflags = subprocess.run(["pkg-config", "--cflags", "intake-sdk"], env=env, check=True,
                                capture_output=True, text=True).stdout.split()
        self.assertFalse(any(SRC in f for f in cflags), "SDK flags must not point into the source tree")
        plugdir = self.path("myplugins")
        os.makedirs(plugdir)
        so = os.path.join(plugdir, "intake-my.so")
        r = subprocess.run(["cc", "-shared", "-fPIC", *cflags, "my_plugin.c", "-o", so],
                           cwd=work, env=env, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)

        conf = self.config("""
pipelines = ( {
  name = "oot";
  source = { plugin = "test_gen"; count = 10; outcomes_path = "%(d)s/outcomes"; };
  processors = ( { plugin = "my"; } );
  sinks = ( { plugin = "stdout"; path = "%(d)s/out.jsonl"; format = "record"; meta_keys = "subject_length"; } );
} );
""" % dict(d=self.dir), plugin_dirs=[plugdir])
        r = self.run_intake("run", conf, check=0)
        out = self.jsonl(self.path("out.jsonl"))
        self.assertEqual(len(out), 10)
        for rec in out:
            self.assertEqual(rec["meta"]["subject_length"], str(len(rec["payload"]["subject"])))
        r = self.run_intake("plugins", "--config", conf, check=0)
        self.assertIn("my (processor", r.stdout)


    def install(self):
        """Installs the build into a fresh prefix; returns (prefix, intake
        binary, PKG_CONFIG_PATH environment)."""
        prefix = self.path("prefix")
        subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix], check=True,
                       capture_output=True)
        pcs = glob.glob(os.path.join(prefix, "**", "intake-sdk.pc"), recursive=True)
        self.assertEqual(len(pcs), 1, "intake-sdk.pc installed once")
        env = {k: v for k, v in os.environ.items() if k != "INTAKE_PLUGIN_PATH"}
        env["PKG_CONFIG_PATH"] = os.path.dirname(pcs[0])
        return prefix, os.path.join(prefix, "bin", "intake"), env

    def run_installed(self, binary, *args, env, cwd):
        return subprocess.run([binary, *args], env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=120)

    def test_installed_binary_loads_installed_plugins(self):
        prefix, binary, env = self.install()
        real_prefix = os.path.realpath(prefix)
        pc = lambda *a: subprocess.run(["pkg-config", *a, "intake-sdk"], env=env, check=True,
                                       capture_output=True, text=True).stdout.strip()
        plugindir = pc("--variable=plugindir")
        self.assertEqual(os.path.realpath(plugindir),
                         os.path.join(real_prefix, "lib", "intake", "plugins"),
                         "plugindir follows the prefix the SDK was installed to")
        self.assertTrue(os.path.isdir(os.path.join(BUILD, "plugins")),
                        "the build's plugin folder exists, and must not be used")
        # run from the prefix, no INTAKE_PLUGIN_PATH, no plugin_path: the
        # engine's own folder is the prefix's, not the build's
        r = self.run_installed(binary, "plugins", "--json", env=env, cwd=prefix)
        self.assertEqual(r.returncode, 0, r.stderr)
        listed = {p["name"]: p["path"] for p in json.loads(r.stdout)}
        self.assertIn("file", listed)
        self.assertIn("stdout", listed)
        for name, path in listed.items():
            self.assertTrue(os.path.realpath(path).startswith(real_prefix + os.sep),
                            "%s loaded from %s, outside the prefix" % (name, path))

        # the template, built with the documented pkg-config line, installed
        # into plugindir, loads from the prefix alone
        work = self.path("thirdparty")
        shutil.copytree(os.path.join(SRC, "sdk", "template"), work)
        r = subprocess.run("cc -shared -fPIC my_plugin.c -o intake-my.so "
                           "$(pkg-config --cflags --libs intake-sdk)",
                           shell=True, cwd=work, env=env, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        os.replace(os.path.join(work, "intake-my.so"), os.path.join(plugindir, "intake-my.so"))
        inbox = self.path("inbox")
        os.makedirs(inbox)
        conf = self.write("installed.conf", """
admin = { enabled = false; };
pipelines = ( {
  name = "inst";
  source = { plugin = "file"; path = "%(d)s/inbox"; };
  processors = ( { plugin = "my"; } );
  sinks = ( { plugin = "stdout"; path = "%(d)s/out.jsonl"; } );
} );
""" % dict(d=self.dir))
        r = self.run_installed(binary, "plugins", "--json", env=env, cwd=prefix)
        mine = [p for p in json.loads(r.stdout) if p.get("name") == "my"]
        self.assertEqual(len(mine), 1, r.stdout[-2000:])
        self.assertEqual(os.path.realpath(mine[0]["path"]),
                         os.path.realpath(os.path.join(plugindir, "intake-my.so")))
        r = self.run_installed(binary, "validate", conf, env=env, cwd=prefix)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("two folders", r.stderr)

        # the same name in a folder earlier on the search path: that one
        # wins, and a warning names both files
        other = self.path("other")
        os.makedirs(other)
        shutil.copy(os.path.join(plugindir, "intake-my.so"), other)
        env2 = dict(env, INTAKE_PLUGIN_PATH=other)
        r = self.run_installed(binary, "validate", conf, env=env2, cwd=prefix)
        self.assertEqual(r.returncode, 0, r.stderr)
        warn = [l for l in r.stderr.splitlines() if "WARN" in l and "'my'" in l]
        self.assertEqual(len(warn), 1, r.stderr)
        used, _, shadowed = warn[0].split("using ", 1)[1].partition(", not ")
        self.assertEqual(os.path.realpath(used), os.path.realpath(os.path.join(other, "intake-my.so")))
        self.assertEqual(os.path.realpath(shadowed.strip()),
                         os.path.realpath(os.path.join(plugindir, "intake-my.so")))

if __name__ == "__main__":
    unittest.main()
