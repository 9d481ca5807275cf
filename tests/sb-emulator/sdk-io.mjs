// sdk-io.mjs: what sdk-send.mjs and sdk-receive.mjs share: reading the JSON request on stdin,
// turning a received message into plain JSON, and reporting a failure on stderr with exit 1.
import { ServiceBusClient } from "@azure/service-bus";

// Reads all of stdin and parses it as one JSON object; throws with what was wrong.
export async function readRequest() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  const text = Buffer.concat(chunks).toString("utf8");
  let req;
  try {
    req = JSON.parse(text);
  } catch (e) {
    throw new Error(`stdin is not JSON: ${e.message}`);
  }
  if (typeof req !== "object" || req === null) throw new Error("stdin: expected a JSON object");
  for (const k of ["connectionString", "queue"])
    if (typeof req[k] !== "string" || !req[k]) throw new Error(`stdin: "${k}" must be a non-empty string`);
  return req;
}

// A client that gives up quickly: a peer that is down should fail the test, not hang it.
export function makeClient(req) {
  return new ServiceBusClient(req.connectionString, {
    retryOptions: { maxRetries: 1, timeoutInMs: req.timeoutMs ?? 10000, retryDelayInMs: 200 },
  });
}

// JSON for a value the SDK decoded: Buffers as {"base64": ...}, Dates as ISO strings,
// Long (sequence numbers) and bigint as numbers.
export function plain(v) {
  if (v === null || v === undefined) return v ?? null;
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return { base64: Buffer.from(v).toString("base64") };
  if (v instanceof Date) return v.toISOString();
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "object" && typeof v.toNumber === "function" && "low" in v && "high" in v)
    return v.toNumber();
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === "object") {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = plain(x);
    return o;
  }
  return v;
}

// The fields of a received or peeked message that the tests look at.
export function messageJson(m) {
  return plain({
    body: m.body,
    messageId: m.messageId ?? null,
    applicationProperties: m.applicationProperties ?? {},
    sessionId: m.sessionId ?? null,
    contentType: m.contentType ?? null,
    correlationId: m.correlationId ?? null,
    subject: m.subject ?? null,
    timeToLive: m.timeToLive ?? null,
    deliveryCount: m.deliveryCount ?? null,
    sequenceNumber: m.sequenceNumber ?? null,
    enqueuedTimeUtc: m.enqueuedTimeUtc ?? null,
    scheduledEnqueueTimeUtc: m.scheduledEnqueueTimeUtc ?? null,
    deadLetterReason: m.deadLetterReason ?? null,
    deadLetterErrorDescription: m.deadLetterErrorDescription ?? null,
    state: m.state ?? null,
  });
}

// Runs main(); any error goes to stderr (name, code, message) and the exit status is 1.
export async function run(main) {
  try {
    await main();
  } catch (e) {
    process.stderr.write(`${e.name || "Error"}${e.code ? ` (${e.code})` : ""}: ${e.message}\n`);
    process.exitCode = 1;
  }
}
