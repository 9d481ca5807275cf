// amqp-client.mjs: a tiny AMQP 1.0 client (rhea) for the Python tests against RabbitMQ and the
// emulator (tests/integration/sbpeers.py, amqp_send and amqp_receive). Reads one JSON object on
// stdin, either
//   { "port": 5672, "host": "127.0.0.1", "user": "guest", "password": "guest",
//     "address": "/queue/q", "action": "send", "durableTarget": false,
//     "messages": [ { "body": <JSON, sent as amqp-value> | "data": "<text, one data section>" |
//                     "bodyBase64": "<bytes, one data section>", "messageId", "contentType",
//                     "applicationProperties": {...}, "durable": true, "ttl": ms } ] }
// or
//   { ..., "action": "receive", "count": 3, "maxWaitMs": 5000,
//     "outcome": "accept" | "release" | "reject" }
// send prints {"sent", "accepted", "rejected", "released", "modified"} once the peer settled
// every delivery. "durableTarget" asks for a durable target terminus, which makes RabbitMQ
// auto-declare /queue/NAME as a durable queue (without it the queue is not durable and a restart
// loses it; an existing durable queue then refuses the link).
// receive grants exactly "count" credit, settles each message as "outcome" says and prints one
// JSON line per message: {"body", "bodyType": "value" | "data" | "sequence", "messageId",
// "contentType", "applicationProperties", "durable", "deliveryCount", "firstAcquirer"} (a data
// body is {"base64": ...}). Fewer than "count" after maxWaitMs is not an error.
// Without "user" the client offers SASL ANONYMOUS. A connection or link error exits 1.
import rhea from "rhea";

// Reads stdin as one JSON object, checking the fields every action needs.
async function readRequest() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  const req = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  if (!Number.isInteger(req.port)) throw new Error('stdin: "port" must be an integer');
  if (typeof req.address !== "string") throw new Error('stdin: "address" must be a string');
  if (!["send", "receive"].includes(req.action)) throw new Error('stdin: "action" must be send or receive');
  return req;
}

// One request message → a rhea message; throws naming the index on bad input.
function toMessage(d, i) {
  const m = {};
  if ("bodyBase64" in d) m.body = rhea.message.data_section(Buffer.from(d.bodyBase64, "base64"));
  else if ("data" in d) m.body = rhea.message.data_section(Buffer.from(String(d.data), "utf8"));
  else if ("body" in d) m.body = d.body;
  else throw new Error(`messages[${i}]: give one of body, data, bodyBase64`);
  if (d.messageId !== undefined) m.message_id = d.messageId;
  if (d.contentType !== undefined) m.content_type = d.contentType;
  if (d.applicationProperties) m.application_properties = d.applicationProperties;
  if (d.durable !== undefined) m.durable = !!d.durable;
  if (d.ttl !== undefined) m.ttl = d.ttl;
  return m;
}

// A received rhea message as plain JSON.
function messageJson(m, delivery) {
  let body = m.body;
  let bodyType = "value";
  if (body && body.constructor && body.constructor.name === "Section") {
    bodyType = body.typecode === 0x75 ? "data" : "sequence";
    body = body.content;
  }
  const plain = (v) => (Buffer.isBuffer(v) ? { base64: v.toString("base64") } : v);
  body = Array.isArray(body) && bodyType === "data" ? body.map(plain) : plain(body);
  return {
    body, bodyType,
    messageId: m.message_id ?? null,
    contentType: m.content_type ?? null,
    applicationProperties: m.application_properties ?? {},
    durable: !!m.durable,
    deliveryCount: m.delivery_count ?? 0,
    firstAcquirer: !!m.first_acquirer,
    tagBytes: delivery.tag ? delivery.tag.length : 0,
  };
}

// Sends every message and resolves with the count of each outcome once all are settled.
function send(conn, req, done) {
  const msgs = (req.messages || []).map(toMessage);
  const tally = { sent: msgs.length, accepted: 0, rejected: 0, released: 0, modified: 0 };
  let pending = msgs.length;
  let next = 0;
  const target = { address: req.address };
  if (req.durableTarget) target.durable = 2; // RabbitMQ: auto-declare /queue/NAME as durable
  const sender = conn.open_sender({ target });
  const settled = (kind) => () => {
    tally[kind]++;
    if (--pending === 0) done(tally);
  };
  sender.on("accepted", settled("accepted"));
  sender.on("rejected", settled("rejected"));
  sender.on("released", settled("released"));
  sender.on("modified", settled("modified"));
  sender.on("sendable", () => {
    while (next < msgs.length && sender.sendable()) sender.send(msgs[next++]);
  });
  if (msgs.length === 0) done(tally);
}

// Receives up to count messages (credit exactly count), settling each as req.outcome says.
function receive(conn, req, done) {
  const count = req.count ?? 1;
  const outcome = req.outcome ?? "accept";
  if (!["accept", "release", "reject"].includes(outcome)) throw new Error(`bad outcome ${outcome}`);
  const out = [];
  const receiver = conn.open_receiver({ source: { address: req.address }, autoaccept: false,
    credit_window: 0 });
  receiver.add_credit(count);
  receiver.on("message", (ctx) => {
    out.push(messageJson(ctx.message, ctx.delivery));
    ctx.delivery[outcome]();
    if (out.length === count) done(out);
  });
  setTimeout(() => done(out), req.maxWaitMs ?? 5000);
}

let req;
try {
  req = await readRequest();
} catch (e) {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
}
const container = rhea.create_container();
const opts = { host: req.host || "127.0.0.1", port: req.port, reconnect: false,
  idle_time_out: 0, container_id: "intake-test" };
if (req.user) {
  opts.username = req.user;
  opts.password = req.password ?? "";
}
const conn = container.connect(opts);
let finished = false;
// An error description as text: rhea shows the binaries in RabbitMQ's crash reports as byte lists.
function text(d) {
  let t = Buffer.isBuffer(d) ? d.toString("utf8") : String(d ?? "");
  t = t.replace(/(?:0x[0-9a-f]{2},)+0x[0-9a-f]{2}/g,
    (run) => Buffer.from(run.split(",").map((x) => parseInt(x, 16))).toString("utf8"));
  return t.length > 600 ? t.slice(0, 600) + "..." : t;
}
const fail = (what) => (ctx) => {
  if (finished) return;
  finished = true;
  const err = ctx.error || (ctx.connection && ctx.connection.error) || {};
  process.stderr.write(`${what}: ${err.condition || ""} ${text(err.description || err.message)}\n`);
  process.exitCode = 1;
  conn.close();
  setTimeout(() => process.exit(1), 200);
};
conn.on("connection_error", fail("connection error"));
conn.on("disconnected", fail("disconnected"));
conn.on("session_error", fail("session error"));
conn.on("sender_error", fail("sender error"));
conn.on("receiver_error", fail("receiver error"));
const done = (result) => {
  if (finished) return;
  finished = true;
  if (Array.isArray(result)) for (const m of result) process.stdout.write(JSON.stringify(m) + "\n");
  else process.stdout.write(JSON.stringify(result) + "\n");
  conn.close();
  setTimeout(() => process.exit(0), 100);
};
try {
  if (req.action === "send") send(conn, req, done);
  else receive(conn, req, done);
} catch (e) {
  fail("request")({ error: e });
}
