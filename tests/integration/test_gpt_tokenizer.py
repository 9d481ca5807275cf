"""test_gpt_tokenizer.py: differential test of the C o200k_base tokenizer
(ik-tokcount) against gpt-tokenizer (node, tests/reference/tokenizer) on 12,000 varied
texts: the sample emails, synthetic recruiting emails, non-English scripts,
emoji, code, numbers, whitespace runs, contractions, special-token text,
long pieces and random Unicode. Token counts must be equal for every text.
"""
import glob
import json
import os
import random
import subprocess
import tempfile
import unittest

from harness import BUILD, SRC

TOKDIR = os.path.join(SRC, "tests", "reference", "tokenizer")
RANKS = os.path.join(TOKDIR, "node_modules", "gpt-tokenizer", "data", "o200k_base.tiktoken")
TOKCOUNT = os.path.join(BUILD, "tools", "mock-openai", "ik-tokcount")

WORDS = ("candidate referral senior advisor Austin TX phone email LinkedIn manages AUM Series "
         "years experience open call week Best regards Hi team I'd like to refer she's they're "
         "we've I'm you'll he'd DON'T CAN'T It'S OK's").split()
SCRIPTS = [
    "こんにちは、世界！お元気ですか？ 候補者は東京在住です。",
    "你好，世界！这位候选人在上海工作了十年。",
    "Привет, мир! Кандидат работает в Москве уже 5 лет.",
    "مرحبا بالعالم! المرشح يعمل في دبي.",
    "नमस्ते दुनिया! उम्मीदवार मुंबई में रहता है।",
    "안녕하세요, 세상! 후보자는 서울에 있습니다.",
    "Γειά σου Κόσμε! Ο υποψήφιος μένει στην Αθήνα.",
    "Hola, ¿cómo estás? El candidato vive en Málaga — ¡genial!",
    "Grüße aus München: Straße, Äpfel, Öl, Übermaß.",
    "Ça va? L'équipe est très intéressée par ce profil.",
    "שלום עולם! המועמד גר בתל אביב.",
    "ສະບາຍດີ ໂລກ ภาษาไทย สวัสดีครับ",
    "🇪🇸🇫🇷🇰🇷 👩‍💻👨‍👩‍👧 ✅❌ 🚀🔥💼",
]
PIECES = ["\n", "\r\n", "\n\n\n", "   ", "\t", " \n ", "1234567", "3.14159", "$180M", "(512) 555-0142",
          "https://www.linkedin.com/in/daniel-kim-cfp", "daniel.kim@example.com", "<|endoftext|>",
          "<|endofprompt|>", "{\"a\": [1, 2, 3]}", "if (x != y) { return -1; }", "...", "!!!???",
          "'s", "'S", "'ll", "'LL", "'Re", " 'd", "ABCdef", "camelCaseWord", "HTTPServer", "x²+y³",
          "½ ¾ ⅓", "ﬁ ﬂ", "e\u0301", "\u00a0\u2003\u3000", "\u200b\u200d", "…", "—", "«»", "、。"]


def random_unicode(rng, n):
    out = []
    ranges = [(0x20, 0x7e), (0xa0, 0x24f), (0x370, 0x3ff), (0x400, 0x4ff), (0x590, 0x6ff),
              (0x900, 0x97f), (0xe00, 0xe7f), (0x1100, 0x11ff), (0x2000, 0x206f), (0x3040, 0x30ff),
              (0x4e00, 0x9fff), (0xac00, 0xd7a3), (0x1f300, 0x1faff), (0x10000, 0x1007f)]
    for _ in range(n):
        a, b = rng.choice(ranges)
        out.append(chr(rng.randint(a, b)))
    return "".join(out)


def sample_texts():
    texts = []
    for path in sorted(glob.glob(os.path.join(SRC, "etc", "samples", "**", "*"), recursive=True)):
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            raw = f.read().decode("utf-8", "replace")
        texts.append(raw)
        for line in raw.splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            for v in (obj if isinstance(obj, list) else [obj]):
                if isinstance(v, dict):
                    texts.extend(str(x) for x in v.values() if isinstance(x, str))
    return texts


def make_texts(n, seed=20261128):
    rng = random.Random(seed)
    texts = sample_texts()
    while len(texts) < n:
        kind = rng.randrange(8)
        if kind == 0:
            t = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 80)))
        elif kind == 1:
            t = rng.choice(SCRIPTS) * rng.randint(1, 3)
        elif kind == 2:
            t = "".join(rng.choice(PIECES + WORDS + SCRIPTS) for _ in range(rng.randint(1, 40)))
        elif kind == 3:
            t = random_unicode(rng, rng.randint(1, 200))
        elif kind == 4:  # long pieces: runs that become one pre-token
            t = rng.choice([" ", "\n", "-", "a", "ab", "9", "=", "!", "é"]) * rng.randint(60, 3000)
        elif kind == 5:
            t = "".join(chr(rng.randint(0x20, 0x7e)) for _ in range(rng.randint(1, 300)))
        elif kind == 6:
            t = ("Hi team,\n\nI'd like to refer %s for the %s role. Phone: (%03d) 555-%04d\n"
                 "Email: %s@example.com\nLinkedIn: https://www.linkedin.com/in/%s\n\nBest,\n%s"
                 % (rng.choice(WORDS).title(), rng.choice(WORDS), rng.randint(200, 999),
                    rng.randint(0, 9999), rng.choice(WORDS).lower(), rng.choice(WORDS).lower(),
                    rng.choice(SCRIPTS)))
        else:
            t = "".join(rng.choice(["\r\n", "\n", " ", "\t", "  \n", "x", "1", ".", "'s"])
                        for _ in range(rng.randint(1, 100)))
        texts.append(t)
    return texts


class TokenizerDifferential(unittest.TestCase):
    def test_counts_equal_gpt_tokenizer(self):
        self.assertTrue(os.path.exists(RANKS), "%s missing: run tools/deps (npm ci)" % RANKS)
        self.assertTrue(os.path.exists(TOKCOUNT), "ik-tokcount not built")
        texts = make_texts(12000)
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False,
                                         encoding="utf-8") as f:
            for t in texts:
                f.write(json.dumps(t, ensure_ascii=False) + "\n")
            name = f.name
        try:
            with open(name, "rb") as inp:
                ref = subprocess.run(["node", os.path.join(TOKDIR, "count.mjs")], stdin=inp,
                                     capture_output=True, timeout=240, cwd=TOKDIR)
            self.assertEqual(ref.returncode, 0, ref.stderr.decode()[-2000:])
            with open(name, "rb") as inp:
                got = subprocess.run([TOKCOUNT, RANKS], stdin=inp, capture_output=True,
                                     timeout=240)
            self.assertEqual(got.returncode, 0, got.stderr.decode()[-2000:])
        finally:
            os.unlink(name)
        want = [int(x) for x in ref.stdout.split()]
        have = [int(x) for x in got.stdout.split()]
        self.assertEqual(len(want), len(texts))
        self.assertEqual(len(have), len(texts))
        bad = [(t, w, h) for t, w, h in zip(texts, want, have) if w != h]
        self.assertEqual(bad[:5], [], "%d of %d texts differ" % (len(bad), len(texts)))
        self.assertGreater(sum(want), 100000)


if __name__ == "__main__":
    unittest.main()
