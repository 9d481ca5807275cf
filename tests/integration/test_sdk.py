"""A third party builds a plugin from the installed SDK alone (cc + pkg-config,
no engine sources), and the engine loads and runs it."""
import glob
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


if __name__ == "__main__":
    unittest.main()
