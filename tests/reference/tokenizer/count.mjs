// count.mjs: the reference side of the differential tokenizer test and of the
// tokenizer benchmark. Reads one JSON string per line on stdin and prints
// gpt-tokenizer's o200k_base token count for each (special-token text is
// ordinary text, as the API counts email content).
//   node count.mjs < texts.jsonl            one count per line
//   node count.mjs --bench N < texts.jsonl  "tokens T bytes B seconds S"
import { readFileSync } from 'node:fs';
import { encode } from 'gpt-tokenizer/encoding/o200k_base';

const args = process.argv.slice(2);
const bench = args[0] === '--bench' ? Number(args[1]) : 0;
const texts = readFileSync(0, 'utf8').split('\n').filter((l) => l.length).map((l) => JSON.parse(l));
const opts = { disallowedSpecial: new Set() };
if (bench > 0) {
  let tokens = 0, bytes = 0;
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < bench; r++)
    for (const t of texts) {
      tokens += encode(t, opts).length;
      bytes += Buffer.byteLength(t);
    }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`tokens ${tokens} bytes ${bytes} seconds ${s.toFixed(6)}`);
} else {
  const out = texts.map((t) => encode(t, opts).length);
  process.stdout.write(out.join('\n') + '\n');
}
