// sdk-send.mjs: sends messages with the official @azure/service-bus SDK, for the Python tests
// (tests/integration/sbpeers.py, sdk_send). Reads one JSON object on stdin:
//   { "connectionString": "...", "queue": "q1", "batch": false,
//     "messages": [ { "body": <any JSON> | "bodyBase64": "<bytes as base64>",
//                     "messageId", "applicationProperties": {...}, "sessionId", "contentType",
//                     "correlationId", "subject", "timeToLive" (ms),
//                     "scheduledEnqueueTimeUtc": "<ISO time>" }, ... ] }
// "batch": true sends them through createMessageBatch (more than one batch when they do not fit
// in one); otherwise one sendMessages call per message. Prints {"sent": N, "batches": B}.
// Run with the current folder tests/sb-emulator (node_modules).
import { readRequest, makeClient, run } from "./sdk-io.mjs";

const FIELDS = ["messageId", "applicationProperties", "sessionId", "contentType", "correlationId",
  "subject", "timeToLive"];

// One request message → a ServiceBusMessage; throws naming the message index on bad input.
function toMessage(d, i) {
  if (typeof d !== "object" || d === null) throw new Error(`messages[${i}]: expected an object`);
  const hasBody = "body" in d;
  const hasB64 = "bodyBase64" in d;
  if (hasBody === hasB64) throw new Error(`messages[${i}]: give exactly one of "body" and "bodyBase64"`);
  const m = { body: hasB64 ? Buffer.from(String(d.bodyBase64), "base64") : d.body };
  for (const k of FIELDS) if (d[k] !== undefined && d[k] !== null) m[k] = d[k];
  if (d.scheduledEnqueueTimeUtc) {
    const t = new Date(d.scheduledEnqueueTimeUtc);
    if (Number.isNaN(t.getTime())) throw new Error(`messages[${i}]: bad scheduledEnqueueTimeUtc`);
    m.scheduledEnqueueTimeUtc = t;
  }
  return m;
}

// Sends msgs in as few batches as fit; returns how many batches went out.
async function sendBatched(sender, msgs) {
  let batches = 0;
  let i = 0;
  while (i < msgs.length) {
    const batch = await sender.createMessageBatch();
    while (i < msgs.length && batch.tryAddMessage(msgs[i])) i++;
    if (batch.count === 0) throw new Error(`messages[${i}] does not fit in an empty batch`);
    await sender.sendMessages(batch);
    batches++;
  }
  return batches;
}

await run(async () => {
  const req = await readRequest();
  if (!Array.isArray(req.messages)) throw new Error('stdin: "messages" must be an array');
  const msgs = req.messages.map(toMessage);
  const client = makeClient(req);
  try {
    const sender = client.createSender(req.queue);
    let batches = 0;
    if (req.batch) batches = await sendBatched(sender, msgs);
    else for (const m of msgs) await sender.sendMessages(m);
    await sender.close();
    process.stdout.write(JSON.stringify({ sent: msgs.length, batches }) + "\n");
  } finally {
    await client.close();
  }
});
