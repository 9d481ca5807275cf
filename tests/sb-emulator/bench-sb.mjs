// bench-sb.mjs: the official @azure/service-bus SDK as the baseline of tools/bench/servicebus.
// usage (run with the current folder tests/sb-emulator, for node_modules):
//   node bench-sb.mjs send <amqp-port> <queue> <bodies.jsonl>
//       sends each line of the file as one message (a data section, content type
//       application/json, message id "bench-<line>", and for a batch envelope the application
//       properties batch_id, email_count and priority, as the original service set them),
//       packed into as few SDK batches as fit (createMessageBatch / tryAddMessage);
//   node bench-sb.mjs receive <amqp-port> <queue> <count> [receivers] [max-per-call]
//       peek-lock receives <count> messages with <receivers> clients (default 1; at most
//       <max-per-call> a receiveMessages call, default 500), the body
//       JSON-parsed (the SDK does it for a data section), complete; counts the emails (an
//       envelope's "emails", else 1).
// Prints one JSON line: {"messages", "emails", "seconds"}. The clock starts once the clients
// are connected (a connection and its CBS authorisation are not timed, as for the other
// contenders) and stops when the last message is settled. The key comes from $SBEMU_KEY.
import { readFileSync } from "node:fs";
import { ServiceBusClient } from "@azure/service-bus";

const [mode, port, queue, arg, receiversArg, perCallArg] = process.argv.slice(2);
const key = process.env.SBEMU_KEY || "SAS_KEY_VALUE";
const keyName = process.env.SBEMU_KEY_NAME || "RootManageSharedAccessKey";
const cs = `Endpoint=sb://127.0.0.1:${port};SharedAccessKeyName=${keyName};` +
  `SharedAccessKey=${key};UseDevelopmentEmulator=true`;

// The file's lines as SDK messages; throws naming the line that is not JSON.
function readMessages(path) {
  const lines = readFileSync(path, "utf8").split("\n").filter((l) => l.length > 0);
  return lines.map((line, i) => {
    let v;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Error(`${path}:${i + 1}: not JSON: ${e.message}`);
    }
    const m = { body: Buffer.from(line), contentType: "application/json", messageId: `bench-${i}` };
    if (Array.isArray(v.emails))
      m.applicationProperties = { batch_id: v.batch_id, email_count: v.emails.length,
        priority: v.priority ?? 0 };
    return m;
  });
}

async function send() {
  const msgs = readMessages(arg);
  const client = new ServiceBusClient(cs);
  try {
    const sender = client.createSender(queue);
    await sender.createMessageBatch(); // opens the link: not timed
    const t0 = process.hrtime.bigint();
    let i = 0;
    while (i < msgs.length) {
      const batch = await sender.createMessageBatch();
      while (i < msgs.length && batch.tryAddMessage(msgs[i])) i++;
      if (batch.count === 0) throw new Error(`line ${i + 1} does not fit in an empty batch`);
      await sender.sendMessages(batch);
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    await sender.close();
    return { messages: msgs.length, emails: null, seconds };
  } finally {
    await client.close();
  }
}

async function receive() {
  const want = Number(arg);
  const receivers = Number(receiversArg || 1);
  const perCall = Number(perCallArg || 500);
  if (!(want > 0 && receivers > 0 && perCall > 0)) throw new Error("count, receivers and max-per-call must be > 0");
  const clients = Array.from({ length: receivers }, () => new ServiceBusClient(cs));
  try {
    const rs = clients.map((c) => c.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 }));
    await Promise.all(rs.map((r) => r.peekMessages(1))); // connects and authorises: not timed
    let done = 0;
    let emails = 0;
    let t1 = null;
    const t0 = process.hrtime.bigint();
    await Promise.all(rs.map(async (r) => {
      while (done < want) {
        const msgs = await r.receiveMessages(Math.min(perCall, want - done), { maxWaitTimeInMs: 200 });
        await Promise.all(msgs.map(async (m) => {
          // the SDK JSON-decodes a data section itself when it can; a Buffer is what it could not
          const v = Buffer.isBuffer(m.body) ? JSON.parse(m.body.toString("utf8")) : m.body;
          emails += Array.isArray(v.emails) ? v.emails.length : 1;
          await r.completeMessage(m);
          if (++done === want) t1 = process.hrtime.bigint();
        }));
      }
    }));
    return { messages: done, emails, seconds: Number(t1 - t0) / 1e9 };
  } finally {
    for (const c of clients) await c.close();
  }
}

try {
  let out;
  if (mode === "send" && arg) out = await send();
  else if (mode === "receive" && arg) out = await receive();
  else throw new Error("usage: bench-sb.mjs send PORT QUEUE FILE | receive PORT QUEUE COUNT [RECEIVERS] [PER-CALL]");
  process.stdout.write(JSON.stringify(out) + "\n");
} catch (e) {
  process.stderr.write(`bench-sb.mjs: ${e.message}\n`);
  process.exit(1);
}
