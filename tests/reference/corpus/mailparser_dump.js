#!/usr/bin/env node
// mailparser_dump.js: the reference side of the differential test and the
// parse benchmark. Parses each file named in LIST (one path a line) with
// mailparser's simpleParser and writes one JSON line per file to stdout:
// {file, subject, from, date (ISO 8601 UTC, no milliseconds), text, error}.
// With --bench it prints only {messages, bytes, seconds}: the time spent
// parsing buffers already in memory, like tools/bench/email does for Intake.
'use strict';
const fs = require('fs');
const { simpleParser } = require('mailparser');

async function main() {
  const args = process.argv.slice(2);
  const bench = args[0] === '--bench';
  const list = fs.readFileSync(bench ? args[1] : args[0], 'utf8').split('\n').filter(Boolean);
  const bufs = list.map((f) => fs.readFileSync(f));
  const out = [];
  const t0 = process.hrtime.bigint();
  let bytes = 0;
  for (let i = 0; i < list.length; i++) {
    bytes += bufs[i].length;
    const rec = { file: list[i] };
    try {
      const m = await simpleParser(bufs[i], { skipImageLinks: true });
      if (!bench) {
        rec.subject = m.subject === undefined ? null : m.subject;
        const from = m.from && m.from.value && m.from.value[0];
        rec.from = from && from.address ? from.address : null;
        rec.date = m.date instanceof Date && !isNaN(m.date) ?
          m.date.toISOString().replace(/\.\d{3}Z$/, 'Z') : null;
        rec.text = m.text === undefined ? null : m.text;
      }
    } catch (e) {
      rec.error = String(e && e.message ? e.message : e);
    }
    if (!bench) out.push(JSON.stringify(rec));
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (bench) {
    process.stdout.write(JSON.stringify({ messages: list.length, bytes, seconds: secs }) + '\n');
  } else {
    process.stdout.write(out.join('\n') + '\n');
  }
}

main().catch((e) => {
  process.stderr.write('mailparser_dump: ' + (e && e.stack ? e.stack : e) + '\n');
  process.exit(1);
});
