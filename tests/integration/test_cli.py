"""The command line: validate, plugins, --version, --help, exit codes, and
config errors that name their file and line."""
import json
import os
import re
import time
import unittest

from harness import IntakeTest, BAD_PLUGINS, SRC

GOOD = """
pipelines = ( {
  name = "p";
  source = { plugin = "test_gen"; count = 3; };
  processors = ( { plugin = "passthrough"; } );
  sinks = ( { plugin = "stdout"; } );
} );
"""


class CliTest(IntakeTest):
    def test_version_and_help(self):
        r = self.run_intake("--version", check=0)
        self.assertRegex(r.stdout, r"^intake \d+\.\d+\.\d+ \(plugin ABI \d+\.\d+\)")
        r = self.run_intake("--help", check=0)
        for word in ("run", "validate", "plugins", "exit codes"):
            self.assertIn(word, r.stdout)
        self.run_intake(check=2)
        r = self.run_intake("frobnicate", check=2)
        self.assertIn("unknown command 'frobnicate'", r.stderr)
        self.run_intake("run", check=2)
        self.run_intake("run", "--log-level", "loud", "x.conf", check=2)

    def test_validate_ok_starts_nothing(self):
        conf = self.config(GOOD)
        r = self.run_intake("validate", conf, check=0)
        self.assertIn("OK", r.stdout)
        self.assertIn("test_gen -> passthrough -> stdout", r.stdout)
        self.assertNotIn("started", r.stderr)

    def expect_config_error(self, body, line, *needles, code=3):
        conf = self.config(body)
        r = self.run_intake("validate", conf, check=code)
        self.assertIn("%s:%d:" % (conf, line), r.stderr)
        for n in needles:
            self.assertIn(n, r.stderr)
        return r

    # The config written by self.config() has two header lines before the body.
    def test_unknown_option(self):
        self.expect_config_error('pipelines = ( { name = "p";\n'
                                 'source = { plugin = "test_gen"; cuont = 3; };\n'
                                 'sinks = ( { plugin = "stdout"; } ); } );\n',
                                 4, "unknown option 'cuont'", "count")

    def test_wrong_option_type(self):
        self.expect_config_error('pipelines = ( { name = "p";\n'
                                 'source = { plugin = "test_gen"; count = "many"; };\n'
                                 'sinks = ( { plugin = "stdout"; } ); } );\n',
                                 4, "count")

    def test_missing_required_option(self):
        self.expect_config_error('pipelines = ( { name = "p";\n'
                                 'source = { plugin = "file"; };\n'
                                 'sinks = ( { plugin = "stdout"; } ); } );\n',
                                 4, "requires option 'path'")

    def test_option_range_checked_by_validate(self):
        # issue 9: validate passed what only run refused
        r = self.expect_config_error('pipelines = ( { name = "p";\n'
                                     'source = { plugin = "test_gen"; count = 3; };\n'
                                     'processors = ( { plugin = "email_normalize"; max_chars = -1; } );\n'
                                     'sinks = ( { plugin = "stdout"; } ); } );\n',
                                     5, "option 'max_chars' of plugin 'email_normalize'",
                                     "must be at least 0 (got -1)")
        conf = self.path("pipeline.conf")
        r = self.run_intake("run", conf, check=3)
        self.assertIn("must be at least 0 (got -1)", r.stderr)
        self.assertNotIn("started", r.stderr)
        # a size and a duration out of range, with their units
        self.expect_config_error('pipelines = ( { name = "p";\n'
                                 'source = { plugin = "test_gen"; body_bytes = "32M"; };\n'
                                 'sinks = ( { plugin = "stdout"; } ); } );\n',
                                 4, "option 'body_bytes'", "between 0 and 16M (got 33554432 bytes)")
        self.expect_config_error('pipelines = ( { name = "p";\n'
                                 'source = { plugin = "test_gen"; emit_delay = "2h"; };\n'
                                 'sinks = ( { plugin = "stdout"; } ); } );\n',
                                 4, "option 'emit_delay'", "at most 1h (got 7200000ms)")

    def test_syntax_error(self):
        self.expect_config_error('pipelines = ( { name = "p"\n source = ; } );\n', 4)

    def test_unknown_plugin_lists_search_path(self):
        r = self.expect_config_error('pipelines = ( { name = "p";\n'
                                     'source = { plugin = "test_gen"; };\n'
                                     'sinks = ( { plugin = "nope"; } ); } );\n',
                                     5, "intake-nope.so")
        self.assertIn("tests/plugins", r.stderr)

    def test_abi_mismatch_refused(self):
        conf = self.write("abi.conf", 'plugin_path = ["%s"];\nadmin = { enabled = false; };\n'
                          'pipelines = ( { name = "p";\n'
                          'source = { plugin = "bad_abi"; };\n'
                          'sinks = ( { plugin = "bad_abi"; } ); } );\n' % BAD_PLUGINS)
        r = self.run_intake("run", conf, check=3)
        self.assertIn("%s:4:" % conf, r.stderr)
        self.assertRegex(r.stderr, r"built for Intake plugin ABI \d+\.\d+, this engine speaks ABI")
        self.assertIn("intake-bad_abi.so", r.stderr)
        # an SDK 1.x plugin: rebuild it against SDK 2.2
        conf = self.config('pipelines = ( { name = "p";\n'
                           'source = { plugin = "test_gen"; };\n'
                           'processors = ( { plugin = "test_abi10"; } );\n'
                           'sinks = ( { plugin = "stdout"; } ); } );\n')
        r = self.run_intake("validate", conf, check=3)
        self.assertIn("%s:5:" % conf, r.stderr)
        self.assertRegex(r.stderr, r"built for Intake plugin ABI 1\.0, this engine speaks ABI "
                         r"2\.(\d+); rebuild the plugin against SDK 2\.\1")

    def test_env_substitution_and_env_file(self):
        self.write(".env.local", "GEN_COUNT=7\nexport OUT_NAME='from-env-file'\n")
        conf = self.config('env_file = ".env.local";\npipelines = ( { name = "p";\n'
                           'source = { plugin = "test_gen"; count = "${GEN_COUNT}"; };\n'
                           'sinks = ( { plugin = "stdout"; path = "%s/${OUT_NAME}-${MISSING:-x}.jsonl"; } ); } );\n'
                           % self.dir)
        self.run_intake("run", conf, check=0)
        self.assertEqual(len(self.jsonl(self.path("from-env-file-x.jsonl"))), 7)
        # the real environment wins over the file
        self.run_intake("run", conf, check=0, env={"OUT_NAME": "real"})
        self.assertEqual(len(self.jsonl(self.path("real-x.jsonl"))), 7)

    def test_unset_variable_is_an_error(self):
        r = self.expect_config_error('pipelines = ( { name = "p";\n'
                                     'source = { plugin = "test_gen"; };\n'
                                     'sinks = ( { plugin = "stdout"; path = "${INTAKE_TEST_UNSET_VAR}"; } ); } );\n',
                                     5, "INTAKE_TEST_UNSET_VAR")

    def test_plugin_start_failure_exits_4(self):
        # test_gen cannot open its outcomes file: create() fails, nothing hangs
        conf = self.config('pipelines = ( { name = "p";\n'
                           'source = { plugin = "test_gen"; outcomes_path = "/nonexistent/dir/o"; };\n'
                           'sinks = ( { plugin = "stdout"; } ); } );\n')
        began = time.monotonic()
        r = self.run_intake("run", conf, check=4, timeout=30)
        lived = time.monotonic() - began
        self.assertIn("failed to start", r.stderr)
        self.assertIn("/nonexistent/dir/o", r.stderr)
        # The summary's elapsed time is this run's, not the machine's uptime:
        # it cannot exceed how long the process lived (plus the rounding of
        # its two decimals).
        m = re.search(r"summary: pipeline 'p': .* in flight, (?:.*, )?([0-9.]+) s", r.stderr)
        self.assertTrue(m, r.stderr)
        self.assertLessEqual(float(m.group(1)), lived + 0.005, r.stderr)

    def test_include_absolute_path(self):
        part = self.write("parts/pipeline.conf", GOOD)
        conf = self.config('@include "%s"\n' % part)
        r = self.run_intake("validate", conf, check=0)
        self.assertIn("test_gen -> passthrough -> stdout", r.stdout)
        # a missing one names the file it looked for and the including line
        conf = self.config('@include "parts/nope.conf"\n', name="missing.conf")
        r = self.run_intake("validate", conf, check=3)
        self.assertIn("%s:3: @include" % conf, r.stderr)
        self.assertIn(self.path("parts", "nope.conf"), r.stderr)

    def test_include_fifo_refused_without_blocking(self):
        fifo = self.path("fifo.conf")
        os.mkfifo(fifo)
        conf = self.config('@include "fifo.conf"\n' + GOOD)
        for cmd in ("validate", "run"):
            r = self.run_intake(cmd, conf, check=3, timeout=60)
            self.assertIn("%s:3: @include" % conf, r.stderr)
            self.assertIn("not a regular file (a FIFO)", r.stderr)

    def test_config_size_limit(self):
        conf = self.config(GOOD + ("#" * 99 + "\n") * 10500)
        r = self.run_intake("validate", conf, check=3, timeout=60)
        self.assertIn(conf, r.stderr)
        self.assertIn("at most 1 MiB", r.stderr)

    def test_plugins_listing(self):
        r = self.run_intake("plugins", "--json", check=0)
        plugins = {p["name"]: p for p in json.loads(r.stdout) if "name" in p}
        self.assertEqual(plugins["file"]["kind"], "source")
        self.assertEqual(plugins["stdout"]["kind"], "sink")
        self.assertEqual(plugins["passthrough"]["kind"], "processor")
        path_opt = [o for o in plugins["file"]["options"] if o["name"] == "path"][0]
        self.assertTrue(path_opt["required"])
        self.assertEqual(path_opt["type"], "string")
        self.assertTrue(path_opt["help"])
        # option ranges, as the plugin wrote them; null for an open side
        mc = [o for o in plugins["email_normalize"]["options"] if o["name"] == "max_chars"][0]
        self.assertEqual((mc["min"], mc["max"]), ("0", None))
        bm = [o for o in plugins["gpt_batch"]["options"] if o["name"] == "batch_max_requests"][0]
        self.assertEqual((bm["min"], bm["max"]), ("1", "50000"))
        self.assertEqual((path_opt["min"], path_opt["max"]), (None, None))
        r = self.run_intake("plugins", check=0)
        self.assertIn("file (source", r.stdout)
        self.assertIn("options:", r.stdout)
        self.assertRegex(r.stdout, r"max_chars .*\(range: at least 0\)")
        self.assertRegex(r.stdout, r"batch_max_requests .*\(range: 1 to 50000\)")


    def test_two_kind_plugin(self):
        # SDK 2.2: one file, test_twokind, is both the source and the sink
        out = self.path("ids.txt")
        conf = self.config('pipelines = ( { name = "p";\n'
                           'source = { plugin = "test_twokind"; count = 4; prefix = "two"; };\n'
                           'sinks = ( { plugin = "test_twokind"; path = "%s"; } );\n'
                           'dead_letter = { plugin = "test_twokind"; path = "%s.dead"; }; } );\n'
                           % (out, out))
        r = self.run_intake("validate", conf, check=0)
        self.assertIn("test_twokind -> test_twokind", r.stdout)
        r = self.run_intake("run", conf, check=0)
        self.assertEqual(self.summary(r.stderr)["p"]["delivered"], 4)
        with open(out) as f:
            self.assertEqual(sorted(f.read().split()), ["two-1", "two-2", "two-3", "two-4"])
        # a kind the file lacks: file:line, and what it provides
        self.expect_config_error('pipelines = ( { name = "p";\n'
                                 'source = { plugin = "test_gen"; };\n'
                                 'processors = ( { plugin = "test_twokind"; } );\n'
                                 'sinks = ( { plugin = "stdout"; } ); } );\n',
                                 5, "plugin 'test_twokind' has no processor "
                                 "(it provides: source, sink)")
        # the listing shows each kind of the file, with its own options
        r = self.run_intake("plugins", "--json", "--config", conf, check=0)
        kinds = {p["kind"]: p for p in json.loads(r.stdout) if p.get("name") == "test_twokind"}
        self.assertEqual(sorted(kinds), ["sink", "source"])
        self.assertEqual(kinds["source"]["path"], kinds["sink"]["path"])
        self.assertEqual([o["name"] for o in kinds["source"]["options"]], ["count", "prefix"])
        self.assertEqual([o["name"] for o in kinds["sink"]["options"]], ["path"])
        r = self.run_intake("plugins", "--config", conf, check=0)
        self.assertIn("test_twokind (source, version 1.0.0, ABI 2.2)", r.stdout)
        self.assertIn("test_twokind (sink, version 1.0.0, ABI 2.1)", r.stdout)

    def test_choice_options(self):
        # shown by `intake plugins`, text and --json
        r = self.run_intake("plugins", "--json", check=0)
        plugins = {p["name"]: p for p in json.loads(r.stdout) if "name" in p}
        oc = [o for o in plugins["file"]["options"] if o["name"] == "on_complete"][0]
        self.assertEqual(oc["type"], "choice")
        self.assertEqual(oc["choices"], ["move", "none"])
        self.assertEqual(oc["default"], "move")
        fmt = [o for o in plugins["stdout"]["options"] if o["name"] == "format"][0]
        self.assertEqual(fmt["choices"], ["record", "payload"])
        path_opt = [o for o in plugins["file"]["options"] if o["name"] == "path"][0]
        self.assertIsNone(path_opt["choices"])
        r = self.run_intake("plugins", check=0)
        self.assertRegex(r.stdout, r"on_complete +choice .*\(one of: move none\)")
        # a value not among them is a config error found by validate, naming
        # file:line, the option and the allowed values
        self.expect_config_error('pipelines = ( { name = "p";\n'
                                 'source = { plugin = "file"; path = "%s"; on_complete = "keep"; };\n'
                                 'sinks = ( { plugin = "stdout"; } ); } );\n' % self.dir,
                                 4, "option 'on_complete' of plugin 'file' (instance 'file') must "
                                 "be one of: move, none; got the string \"keep\"")
        self.expect_config_error('pipelines = ( { name = "p";\n'
                                 'source = { plugin = "test_gen"; };\n'
                                 'sinks = ( { plugin = "stdout"; format = "xml"; } ); } );\n',
                                 5, "must be one of: record, payload")

    def test_validate_runs_the_plugins_check(self):
        # the file source's check(): validate used to pass an input path that
        # does not exist, or is neither a file nor a folder; only run refused it
        missing = self.path("no-such-inbox")
        r = self.expect_config_error('pipelines = ( { name = "p";\n'
                                     'source = { plugin = "file"; path = "%s"; };\n'
                                     'sinks = ( { plugin = "stdout"; } ); } );\n' % missing,
                                     4, "plugin 'file' (instance 'file')",
                                     "path %s: No such file or directory" % missing)
        r = self.run_intake("run", self.path("pipeline.conf"), check=3)
        self.assertIn("path %s: No such file or directory" % missing, r.stderr)
        self.assertNotIn("started", r.stderr)
        self.expect_config_error('pipelines = ( { name = "p";\n'
                                 'source = { plugin = "file"; path = "/dev/null"; };\n'
                                 'sinks = ( { plugin = "stdout"; } ); } );\n',
                                 4, "path /dev/null is neither a file nor a folder")
        self.expect_config_error('pipelines = ( { name = "p";\n'
                                 'source = { plugin = "file"; path = "%s"; pattern = " , "; };\n'
                                 'sinks = ( { plugin = "stdout"; } ); } );\n' % self.dir,
                                 4, "option 'pattern' has no glob")

    def gpt_stage(self, **opts):
        """A pipeline whose gpt_batch stage group (on line 5 of the file)
        has the repository's catalog, schema and prompt, a key in
        INTAKE_TEST_KEY and a local base_url, unless `opts` say otherwise."""
        o = {"catalog": SRC + "/etc/models.conf",
             "schema_file": SRC + "/etc/extraction.schema.json",
             "instructions_file": SRC + "/etc/prompts/extraction.txt",
             "api_key_env": "INTAKE_TEST_KEY", "base_url": "http://127.0.0.1:9/v1"}
        o.update(opts)
        stage = " ".join('%s = "%s";' % kv for kv in o.items())
        return ('pipelines = ( { name = "p";\n'
                'source = { plugin = "test_gen"; count = 1; };\n'
                'processors = ( { plugin = "gpt_batch"; %s } );\n'
                'sinks = ( { plugin = "stdout"; } ); } );\n' % stage)

    def test_validate_runs_gpt_batch_check(self):
        # gpt_batch's check(): validate used to pass what only run's
        # create() refused (an unknown reasoning effort, a prompt_cache_key
        # the API refuses, an incomplete azure setup, unreadable files, ...)
        env = {"INTAKE_TEST_KEY": "sk-test-not-a-secret-1234"}
        r = self.run_intake("validate", self.config(self.gpt_stage()), env=env, check=0)
        self.assertIn("OK", r.stdout)
        cases = [
            (dict(reasoning_effort="xhigh"),
             'option reasoning_effort: "xhigh" is not accepted by model'),
            (dict(prompt_cache_key="k" * 70),
             "option prompt_cache_key: 70 characters; the API takes at most 64"),
            (dict(api="chat", max_output_tokens="8"), None),  # chat takes any cap
            (dict(max_output_tokens="8"), "option max_output_tokens: 8; the Responses API takes"),
            (dict(provider="azure"), 'provider "azure" needs azure_deployment'),
            (dict(provider="azure", azure_deployment="dep"), None),
            (dict(base_url="ftp://example.com"),
             'option base_url: "ftp://example.com" must start with http:// or https://'),
            (dict(base_url="http://"), 'option base_url: "http://"'),
            (dict(model="gpt-0"), "option catalog: %s/etc/models.conf: model `gpt-0` is not in "
             "the catalog" % SRC),
            (dict(grounded_fields="email,shoe_size"),
             'option grounded_fields: "shoe_size" is not a property of the extraction schema'),
            (dict(api_key_env="INTAKE_TEST_UNSET_KEY", fallback="none"),
             "no API key: set api_key or the variable INTAKE_TEST_UNSET_KEY"),
            (dict(api_key_env="INTAKE_TEST_UNSET_KEY"), None),  # fallback rules: fine
        ]
        for opts, needle in cases:
            with self.subTest(opts=opts):
                conf = self.config(self.gpt_stage(**opts))
                r = self.run_intake("validate", conf, env=env, check=3 if needle else 0)
                if needle:
                    self.assertIn(needle, r.stderr)
                    self.assertIn("%s:5: pipeline 'p': plugin 'gpt_batch'" % conf, r.stderr)
        # the files: each problem named with its option, all of them at once
        missing = self.path("missing")
        conf = self.config(self.gpt_stage(schema_file=missing + ".json",
                                          instructions_file=missing + ".txt"))
        r = self.run_intake("validate", conf, env=env, check=3)
        self.assertIn("option schema_file: %s.json" % missing, r.stderr)
        self.assertIn("option instructions_file: %s.txt" % missing, r.stderr)
        # a value not among a choice option's values: the engine names the
        # file, line, option and what is allowed
        r = self.expect_config_error(self.gpt_stage(api="soap"), 5,
                                     "option 'api' of plugin 'gpt_batch' (instance 'gpt_batch') "
                                     "must be one of: responses, chat; got the string \"soap\"")
        for opt, allowed in (("provider", "openai, azure"), ("azure_auth", "api-key, bearer"),
                             ("verbosity", "low, medium, high"), ("mode", "sync, batch"),
                             ("fallback", "rules, none")):
            self.expect_config_error(self.gpt_stage(**{opt: "x"}), 5,
                                     "option '%s' of plugin 'gpt_batch'" % opt,
                                     "must be one of: %s;" % allowed)

if __name__ == "__main__":
    unittest.main()
