"""Without an API key, gpt_batch extracts with the offline rules extractor and
says so once in the log (fallback = "rules", the default); with
fallback = "none" the pipeline refuses to start. No network either way."""
import json
import unittest

from harness import SRC, IntakeTest

PIPELINE = """
pipelines = ( {
  name = "nokey";
  source = { plugin = "file"; path = "%(src)s/etc/samples/01-referral.json"; on_complete = "none";
             dead_letter_dir = "%(dir)s/dead"; };
  processors = ( { plugin = "gpt_batch";
      catalog = "%(src)s/etc/models.conf";
      schema_file = "%(src)s/etc/extraction.schema.json";
      instructions_file = "%(src)s/etc/prompts/extraction.txt";
      api_key_env = "INTAKE_TEST_NO_SUCH_KEY"; %(extra)s } );
  sinks = ( { plugin = "stdout"; path = "%(dir)s/out.jsonl"; format = "record";
              meta_keys = "extracted_by"; } );
} );
"""


class GptFallbackTest(IntakeTest):
    def conf(self, extra=""):
        return self.config(PIPELINE % dict(src=SRC, dir=self.dir, extra=extra))

    def test_no_key_falls_back_to_rules(self):
        r = self.run_intake("run", self.conf(), check=0)
        self.assertEqual(r.stderr.count("extracting with the offline rules extractor"), 1)
        out = self.jsonl(self.path("out.jsonl"))
        self.assertEqual(len(out), 1)
        self.assertEqual(out[0]["meta"]["extracted_by"], "rules")
        ext = out[0]["payload"]["extraction"]
        self.assertEqual(ext["candidate_name"], "Daniel Kim")
        self.assertEqual(ext["location"], {"city": "Austin", "state": "TX"})

    def test_fallback_none_refuses_to_start(self):
        r = self.run_intake("run", self.conf('fallback = "none";'), check=3)
        self.assertIn("no API key", r.stderr)
        self.assertIn("INTAKE_TEST_NO_SUCH_KEY", r.stderr)


if __name__ == "__main__":
    unittest.main()
