"""test_email_samples.py: real email through the real binary.

Runs etc/demo.conf (file source -> email_normalize -> rules -> stdout) over
etc/samples and checks every sample's record: the email record fields, the
token diet, and the extraction against etc/samples/expected/extractions.json,
every extracted value grounded in the email. Then a folder made here with a
Maildir, an mbox holding a malformed message and .eml files checks that bad
messages are dead-lettered with their reason while the rest go through.
"""
import glob
import json
import os
import unittest

from harness import IntakeTest, SRC

SAMPLES = os.path.join(SRC, "etc", "samples")


def reasons_in(folder):
    out = []
    for d in glob.glob(os.path.join(folder, "*.json")):
        with open(d) as f:
            out.append(json.load(f)["intake_dead_letter"]["reason"])
    return out


def grounded(hay, value):
    return " ".join(value.split()) in " ".join(hay.split())


class EmailSamples(IntakeTest):
    def run_demo(self):
        env = {"INTAKE_STATE_DIR": self.path("state")}
        r = self.run_intake("run", "--admin", "off", os.path.join(SRC, "etc", "demo.conf"),
                            env=env, check=0)
        return [json.loads(l) for l in r.stdout.splitlines() if l.strip()], r.stderr

    def test_demo_records_match_expected(self):
        with open(os.path.join(SAMPLES, "expected", "extractions.json")) as f:
            expected = json.load(f)
        self.assertGreaterEqual(len(expected), 20)
        records, stderr = self.run_demo()
        got = {r["id"]: r for r in records}
        s = self.summary(stderr)["demo"]
        self.assertEqual(s["delivered"], len(expected), stderr[-3000:])
        self.assertEqual(s["dead_lettered"], 2)  # the cut JSON line and the non-message .eml
        self.assertEqual(set(got), set(expected))
        with open(os.path.join(SRC, "etc", "email.schema.json")) as f:
            required = json.load(f)["required"]
        for rid, want in expected.items():
            p = got[rid]["payload"]
            self.assertEqual(p["schema"], "intake.email/1")
            for key in required:
                self.assertIn(key, p, "%s lacks %s" % (rid, key))
            ex = dict(p["extraction"])
            conf = ex.pop("confidence")
            for field, value in want.items():
                self.assertEqual(ex[field], value, "%s: %s" % (rid, field))
            hay = "\n".join([p["subject"], p.get("sender_name") or "", p.get("sender_email") or "",
                             p["body"]])
            for field, value in ex.items():
                if value is None:
                    self.assertEqual(conf[field], 0, "%s: %s" % (rid, field))
                    continue
                self.assertGreater(conf[field], 0)
                self.assertLessEqual(conf[field], 1)
                values = value.values() if isinstance(value, dict) else [value]
                for v in values:
                    if v is not None:
                        self.assertTrue(grounded(hay, v), "%s: %s %r not in the email"
                                        % (rid, field, v))
            self.assertEqual(p["diet"]["chars_before"] - p["diet"]["chars_after"],
                             p["diet"]["chars_removed"])

    def test_mime_details(self):
        records, _ = self.run_demo()
        got = {r["id"]: r["payload"] for r in records}
        qp = got["sample-09@intake.example"]
        self.assertEqual(qp["sender_name"], "Jos\u00e9 Mart\u00ednez")  # RFC 2047, ISO-8859-1
        self.assertIn("Financial Analyst opening", qp["body"])  # soft line breaks joined
        self.assertEqual(qp["date"], "2026-11-24T16:40:12Z")  # to UTC
        html = got["sample-08@intake.example"]
        self.assertEqual(html["body_format"], "html")
        self.assertIn("- 8 years in retail banking", html["body"])
        self.assertIn("Series 6 & 63", html["body"])
        self.assertNotIn("tracking", html["body"])
        att = got["sample-12@intake.example"]["attachments"]
        self.assertEqual(att[0]["filename"], "Wei Chen R\u00e9sum\u00e9.pdf")
        self.assertEqual(att[0]["size"], 72)
        self.assertEqual(len(att[0]["sha256"]), 64)
        self.assertNotIn("content_base64", att[0])
        fwd = got["sample-11@intake.example"]
        self.assertIn("Marcus Webb", fwd["body"])
        self.assertIn("Forwarded message", fwd["body"])
        reply = got["sample-13@intake.example"]
        self.assertIn("CONFIDENTIALITY NOTICE", reply["body"])  # untouched body kept
        self.assertNotIn("CONFIDENTIALITY", reply["text"])
        self.assertNotIn("800-555-0100", reply["text"])
        self.assertGreater(reply["diet"]["quoted"], 100)
        self.assertEqual(reply["in_reply_to"], "req-9913@brightpath-advisors.com")
        self.assertEqual(len(reply["references"]), 2)
        cp = got["sample-15@intake.example"]
        self.assertEqual(cp["sender_name"], "Hannah O\u2019Neil")  # windows-1252 header
        self.assertIn("Client Service Associate \u2013 application", cp["subject"])
        mb = got["sample-20@intake.example"]
        self.assertIn("\nFrom my experience", mb["body"])  # mboxrd unescaped
        self.assertIn("ready to relocate", got["sample-19@intake.example"]["body"])
        seed = got["sample-23"]
        self.assertEqual(seed["attachments"][0]["size"], 15)  # "%PDF-1.4\n%%EOF\n"
        reasons = reasons_in(self.path("state", "dead-letter"))
        self.assertTrue(any("16-not-a-message.eml" in r and "not a MIME message" in r
                            for r in reasons), reasons)

    def test_maildir_mbox_malformed(self):
        inbox = self.path("inbox")
        msg = ("From: A Person <a@example.com>\nTo: b@example.com\nSubject: {s}\n"
               "Message-ID: <{i}@t>\nDate: Sat, 28 Nov 2026 10:00:00 +0000\n\nHello {s}\n")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(inbox, "box", sub))
        self.write("inbox/box/new/1.a", msg.format(s="one", i="m1"))
        self.write("inbox/box/cur/2.b:2,S", msg.format(s="two", i="m2"))
        self.write("inbox/a.eml", msg.format(s="three", i="m3"))
        self.write("inbox/b.eml", "")
        bad = ("Content-Type: multipart/mixed\n" * 1) + "From: x@example.com\n\nno boundary\n"
        self.write("inbox/c.mbox",
                   "From x@example.com Sat Nov 28 10:00:00 2026\n" + msg.format(s="four", i="m4") +
                   "\nFrom y@example.com Sat Nov 28 10:01:00 2026\n" + bad +
                   "\nFrom z@example.com Sat Nov 28 10:02:00 2026\n" + msg.format(s="five", i="m5"))
        conf = self.config("""
pipelines = ({ name = "p";
  source = { plugin = "file"; path = "%s"; };
  processors = ({ plugin = "email_normalize"; });
  sinks = ({ plugin = "stdout"; format = "payload"; path = "%s"; }); });
""" % (inbox, self.path("out.jsonl")))
        r = self.run_intake("run", conf, check=0)
        out = self.jsonl(self.path("out.jsonl"))
        self.assertEqual(sorted(p["subject"] for p in out), ["five", "four", "one", "three", "two"])
        self.assertTrue(all(p["text"].startswith("Hello") for p in out))
        s = self.summary(r.stderr)["p"]
        self.assertEqual((s["delivered"], s["dead_lettered"]), (5, 2), r.stderr[-3000:])
        reasons = reasons_in(os.path.join(inbox, "dead-letter"))
        self.assertEqual(len(reasons), 2)
        self.assertTrue(any("b.eml" in x and "empty" in x for x in reasons), reasons)
        self.assertTrue(any("c.mbox:" in x and "boundary" in x for x in reasons), reasons)
        # finished files and Maildir messages moved to done/
        self.assertTrue(os.path.exists(os.path.join(inbox, "done", "a.eml")))
        self.assertTrue(os.path.exists(os.path.join(inbox, "done", "2.b:2,S")))


if __name__ == "__main__":
    unittest.main()
