// sdk-receive.mjs: receives (peek-lock) or peeks messages with the official @azure/service-bus
// SDK, for the Python tests (tests/integration/sbpeers.py, sdk_receive and sdk_peek). Reads one
// JSON object on stdin:
//   { "connectionString": "...", "queue": "q1", "count": 10, "maxWaitMs": 5000,
//     "sessionId": "s1" | "nextSessionId": true, "subQueue": "deadLetter",
//     "settle": "complete" | "abandon" | "none", "peek": false }
// Receives until "count" messages came or "maxWaitMs" passed (fewer is not an error), settles
// each as "settle" says (default complete; "none" leaves the lock to expire), and prints one
// JSON line per message (see sdk-io.mjs messageJson; a Buffer body is {"base64": ...}).
// "peek": true looks at up to "count" messages without locking or settling them.
// Run with the current folder tests/sb-emulator (node_modules).
import { readRequest, makeClient, messageJson, run } from "./sdk-io.mjs";

const SETTLE = ["complete", "abandon", "none"];

// A receiver for the queue, its dead-letter sub-queue, or one session of it.
async function openReceiver(client, req) {
  const opts = { receiveMode: "peekLock" };
  if (req.subQueue) opts.subQueueType = req.subQueue;
  if (req.sessionId) return client.acceptSession(req.queue, req.sessionId, opts);
  if (req.nextSessionId) return client.acceptNextSession(req.queue, opts);
  return client.createReceiver(req.queue, opts);
}

// Receives up to count messages within maxWaitMs, settling each before asking for more.
async function receive(receiver, count, maxWaitMs, settle) {
  const out = [];
  const deadline = Date.now() + maxWaitMs;
  while (out.length < count && Date.now() < deadline) {
    const wait = Math.max(50, Math.min(1000, deadline - Date.now()));
    const got = await receiver.receiveMessages(count - out.length, { maxWaitTimeInMs: wait });
    for (const m of got) {
      if (settle === "complete") await receiver.completeMessage(m);
      else if (settle === "abandon") await receiver.abandonMessage(m);
      out.push(m);
    }
  }
  return out;
}

await run(async () => {
  const req = await readRequest();
  const count = req.count ?? 1;
  if (!Number.isInteger(count) || count < 1) throw new Error('stdin: "count" must be a positive integer');
  const settle = req.settle ?? "complete";
  if (!SETTLE.includes(settle)) throw new Error(`stdin: "settle" must be one of ${SETTLE.join(", ")}`);
  const client = makeClient(req);
  try {
    const receiver = await openReceiver(client, req);
    const msgs = req.peek
      ? await receiver.peekMessages(count)
      : await receive(receiver, count, req.maxWaitMs ?? 5000, settle);
    for (const m of msgs) process.stdout.write(JSON.stringify(messageJson(m)) + "\n");
    await receiver.close();
  } finally {
    await client.close();
  }
});
