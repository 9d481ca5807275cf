// interop.test.mjs: the official @azure/service-bus SDK (pinned in package.json) against
// intake-sb-emulator. Each test starts its own emulator on free 127.0.0.1 ports.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  ServiceBusClient,
  ServiceBusAdministrationClient,
  isServiceBusError,
} from "@azure/service-bus";
import rhea from "rhea";
import { startEmulator, sleep, waitForLog, KEY_NAME, KEY } from "./helpers.mjs";

// Runs fn with a client on a fresh emulator, and always cleans up.
async function withEmu(opts, fn) {
  const emu = await startEmulator(opts);
  const client = new ServiceBusClient(emu.connStr());
  try {
    await fn(client, emu);
  } catch (e) {
    console.error(emu.log());
    throw e;
  } finally {
    await client.close();
    const r = await emu.stop();
    assert.equal(r.code, 0, "emulator exit status");
  }
}

async function receiveAll(receiver, n, wait = 3000) {
  const out = [];
  const deadline = Date.now() + wait;
  while (out.length < n && Date.now() < deadline) {
    const got = await receiver.receiveMessages(n - out.length, { maxWaitTimeInMs: 500 });
    out.push(...got);
  }
  return out;
}

test("send one and a batch; peek-lock receive and complete", async () => {
  await withEmu({}, async (client) => {
    const sender = client.createSender("q1");
    await sender.sendMessages({ body: "single", messageId: "m-1", applicationProperties: { k: "v" } });
    const batch = await sender.createMessageBatch();
    for (let i = 0; i < 5; i++) assert.ok(batch.tryAddMessage({ body: { i } }));
    await sender.sendMessages(batch);
    await sender.sendMessages([{ body: "a1" }, { body: "a2" }]);
    const receiver = client.createReceiver("q1");
    const msgs = await receiveAll(receiver, 8);
    assert.equal(msgs.length, 8);
    assert.equal(msgs[0].body, "single");
    assert.equal(msgs[0].messageId, "m-1");
    assert.equal(msgs[0].applicationProperties.k, "v");
    assert.deepEqual(msgs.slice(1, 6).map((m) => m.body.i), [0, 1, 2, 3, 4]);
    assert.deepEqual(msgs.slice(6).map((m) => m.body), ["a1", "a2"]);
    const seqs = msgs.map((m) => Number(m.sequenceNumber));
    assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6, 7, 8]);
    for (const m of msgs) {
      assert.equal(m.deliveryCount, 0);
      assert.ok(m.enqueuedTimeUtc instanceof Date);
      assert.ok(m.lockedUntilUtc.getTime() > Date.now() + 30000);
      assert.match(m.lockToken, /^[0-9a-f-]{36}$/);
      await receiver.completeMessage(m);
    }
    const rest = await receiver.receiveMessages(1, { maxWaitTimeInMs: 500 });
    assert.equal(rest.length, 0, "queue empty after complete");
  });
});

test("abandon raises the delivery count", async () => {
  await withEmu({}, async (client) => {
    await client.createSender("q1").sendMessages({ body: "again" });
    const receiver = client.createReceiver("q1");
    let [m] = await receiveAll(receiver, 1);
    assert.equal(m.deliveryCount, 0);
    await receiver.abandonMessage(m, { reason: "try-again" });
    [m] = await receiveAll(receiver, 1);
    assert.equal(m.deliveryCount, 1);
    assert.equal(m.applicationProperties.reason, "try-again", "propertiesToModify merged");
    await receiver.abandonMessage(m);
    [m] = await receiveAll(receiver, 1);
    assert.equal(m.deliveryCount, 2);
    await receiver.completeMessage(m);
  });
});

test("dead-letter with a reason, read back from the dead-letter queue", async () => {
  await withEmu({}, async (client) => {
    await client.createSender("q1").sendMessages({ body: "poison", messageId: "p1" });
    const receiver = client.createReceiver("q1");
    const [m] = await receiveAll(receiver, 1);
    await receiver.deadLetterMessage(m, {
      deadLetterReason: "BadInput",
      deadLetterErrorDescription: "field x missing",
    });
    const dlq = client.createReceiver("q1", { subQueueType: "deadLetter" });
    const [d] = await receiveAll(dlq, 1);
    assert.ok(d, "message in DLQ");
    assert.equal(d.body, "poison");
    assert.equal(d.messageId, "p1");
    assert.equal(d.deadLetterReason, "BadInput");
    assert.equal(d.deadLetterErrorDescription, "field x missing");
    await dlq.completeMessage(d);
    assert.equal((await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).length, 0);
  });
});

test("exceeding max delivery count dead-letters with MaxDeliveryCountExceeded", async () => {
  await withEmu({ queues: [{ name: "q1", maxDeliveryCount: 3 }] }, async (client) => {
    await client.createSender("q1").sendMessages({ body: "flaky" });
    const receiver = client.createReceiver("q1");
    for (let i = 0; i < 3; i++) {
      const [m] = await receiveAll(receiver, 1);
      assert.ok(m, `delivery ${i + 1}`);
      assert.equal(m.deliveryCount, i);
      await receiver.abandonMessage(m);
    }
    assert.equal((await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).length, 0);
    const dlq = client.createReceiver("q1", { subQueueType: "deadLetter" });
    const [d] = await receiveAll(dlq, 1);
    assert.equal(d.body, "flaky");
    assert.equal(d.deadLetterReason, "MaxDeliveryCountExceeded");
    assert.match(d.deadLetterErrorDescription, /3 delivery attempts/);
    await dlq.completeMessage(d);
  });
});

test("TTL expiry moves the message to the dead-letter queue", async () => {
  const queues = [{ name: "q1", deadLetteringOnExpiration: true }];
  await withEmu({ queues }, async (client) => {
    await client.createSender("q1").sendMessages({ body: "short-lived", timeToLive: 300 });
    await sleep(800);
    const receiver = client.createReceiver("q1");
    assert.equal((await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).length, 0);
    const dlq = client.createReceiver("q1", { subQueueType: "deadLetter" });
    const [d] = await receiveAll(dlq, 1);
    assert.equal(d.body, "short-lived");
    assert.equal(d.deadLetterReason, "TTLExpiredException");
    await dlq.completeMessage(d);
  });
});

test("TTL expiry without dead-lettering drops the message", async () => {
  await withEmu({ queues: [{ name: "q1", defaultTtlMs: 300 }] }, async (client) => {
    await client.createSender("q1").sendMessages({ body: "gone" });
    await sleep(700);
    const receiver = client.createReceiver("q1");
    assert.equal((await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).length, 0);
    const dlq = client.createReceiver("q1", { subQueueType: "deadLetter" });
    assert.equal((await dlq.receiveMessages(1, { maxWaitTimeInMs: 300 })).length, 0);
  });
});

test("renew-lock moves locked-until", async () => {
  await withEmu({ queues: [{ name: "q1", lockDurationMs: 5000 }] }, async (client) => {
    await client.createSender("q1").sendMessages({ body: "keep" });
    const receiver = client.createReceiver("q1", { maxAutoLockRenewalDurationInMs: 0 });
    const [m] = await receiveAll(receiver, 1);
    const before = m.lockedUntilUtc.getTime();
    await sleep(1100);
    const after = (await receiver.renewMessageLock(m)).getTime();
    assert.ok(after >= before + 1000, `locked-until moved (${before} -> ${after})`);
    assert.equal(m.lockedUntilUtc.getTime(), after);
    await receiver.completeMessage(m);
  });
});

test("an expired lock redelivers, and settling with it fails with MessageLockLost", async () => {
  await withEmu({ queues: [{ name: "q1", lockDurationMs: 1000 }] }, async (client) => {
    await client.createSender("q1").sendMessages({ body: "slow" });
    const receiver = client.createReceiver("q1", { maxAutoLockRenewalDurationInMs: 0 });
    const [m] = await receiveAll(receiver, 1);
    assert.equal(m.deliveryCount, 0);
    await sleep(1500);
    const [again] = await receiveAll(receiver, 1);
    assert.ok(again, "redelivered");
    assert.equal(again.body, "slow");
    assert.equal(again.deliveryCount, 1);
    await assert.rejects(receiver.completeMessage(m), (e) => {
      assert.ok(isServiceBusError(e));
      assert.equal(e.code, "MessageLockLost");
      return true;
    });
    await receiver.completeMessage(again);
  });
});

test("schedule and cancel", async () => {
  await withEmu({}, async (client) => {
    const sender = client.createSender("q1");
    const at = new Date(Date.now() + 2500);
    const [keep] = await sender.scheduleMessages({ body: "later" }, at);
    const [drop] = await sender.scheduleMessages({ body: "never" }, at);
    assert.ok(Number(keep) > 0 && Number(drop) > Number(keep));
    const receiver = client.createReceiver("q1");
    const peeked = await receiver.peekMessages(10);
    assert.equal(peeked.length, 2, "scheduled messages are peekable");
    assert.equal(peeked[0].state, "scheduled");
    await sender.cancelScheduledMessages(drop);
    assert.equal((await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).length, 0,
      "not visible before its time");
    await sleep(Math.max(0, at.getTime() - Date.now()) + 200);
    const msgs = await receiveAll(receiver, 2, 1500);
    assert.deepEqual(msgs.map((m) => m.body), ["later"]);
    assert.equal(Number(msgs[0].sequenceNumber), Number(keep));
    assert.ok(msgs[0].enqueuedTimeUtc.getTime() >= at.getTime() - 1);
    await receiver.completeMessage(msgs[0]);
  });
});

test("peek does not lock and continues from the last peeked", async () => {
  await withEmu({}, async (client) => {
    await client.createSender("q1").sendMessages([1, 2, 3, 4].map((i) => ({ body: i })));
    const receiver = client.createReceiver("q1");
    const a = await receiver.peekMessages(2);
    const b = await receiver.peekMessages(5);
    assert.deepEqual(a.map((m) => m.body), [1, 2]);
    assert.deepEqual(b.map((m) => m.body), [3, 4]);
    assert.equal(a[0].lockToken, undefined);
    const c = await receiver.peekMessages(5);
    assert.equal(c.length, 0);
    const d = await receiver.peekMessages(1, { fromSequenceNumber: a[1].sequenceNumber });
    assert.equal(d[0].body, 2);
    const got = await receiveAll(receiver, 4);
    assert.equal(got.length, 4, "peeked messages still receivable");
    for (const m of got) await receiver.completeMessage(m);
  });
});

test("defer, then receive by sequence number and complete", async () => {
  await withEmu({}, async (client) => {
    await client.createSender("q1").sendMessages([{ body: "deferred" }, { body: "next" }]);
    const receiver = client.createReceiver("q1");
    const [m] = await receiveAll(receiver, 1);
    const seq = m.sequenceNumber;
    await receiver.deferMessage(m);
    const [n] = await receiveAll(receiver, 1);
    assert.equal(n.body, "next", "deferred message is skipped");
    await receiver.completeMessage(n);
    assert.equal((await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).length, 0);
    const [d] = await receiver.receiveDeferredMessages(seq);
    assert.equal(d.body, "deferred");
    assert.equal(d.state, "deferred");
    assert.match(d.lockToken, /^[0-9a-f-]{36}$/);
    await receiver.completeMessage(d);
    await assert.rejects(receiver.receiveDeferredMessages(seq));
  });
});

test("receive-and-delete", async () => {
  await withEmu({}, async (client) => {
    await client.createSender("q1").sendMessages([{ body: "x" }, { body: "y" }]);
    const receiver = client.createReceiver("q1", { receiveMode: "receiveAndDelete" });
    const msgs = await receiveAll(receiver, 2);
    assert.deepEqual(msgs.map((m) => m.body), ["x", "y"]);
    assert.equal(msgs[0].lockToken, undefined);
    await receiver.close();
    const again = client.createReceiver("q1");
    assert.equal((await again.receiveMessages(1, { maxWaitTimeInMs: 500 })).length, 0);
  });
});

test("subscribe() streams and completes", async () => {
  await withEmu({}, async (client) => {
    await client.createSender("q1").sendMessages([1, 2, 3, 4, 5].map((i) => ({ body: i })));
    const receiver = client.createReceiver("q1");
    const seen = [];
    await new Promise((resolve, reject) => {
      const sub = receiver.subscribe({
        async processMessage(m) {
          seen.push(m.body);
          if (seen.length === 5) sub.close().then(resolve, reject);
        },
        async processError(args) {
          reject(args.error);
        },
      }, { maxConcurrentCalls: 2 });
    });
    assert.deepEqual(seen.sort(), [1, 2, 3, 4, 5]);
    assert.equal((await receiver.receiveMessages(1, { maxWaitTimeInMs: 300 })).length, 0);
  });
});

test("session receiver gets only its session's messages", async () => {
  await withEmu({ queues: [{ name: "qs", requiresSession: true }] }, async (client) => {
    const sender = client.createSender("qs");
    await sender.sendMessages([
      { body: "a1", sessionId: "A" },
      { body: "b1", sessionId: "B" },
      { body: "a2", sessionId: "A" },
    ]);
    await assert.rejects(sender.sendMessages({ body: "no session" }));
    // a batch is all or nothing: one message without a session id refuses the batch
    await assert.rejects(sender.sendMessages([{ body: "c1", sessionId: "C" }, { body: "none" }]));
    assert.deepEqual((await client.createReceiver("qs").peekMessages(10)).map((m) => m.body),
      ["a1", "b1", "a2"]);
    const ra = await client.acceptSession("qs", "A");
    assert.equal(ra.sessionId, "A");
    assert.ok(ra.sessionLockedUntilUtc.getTime() > Date.now());
    await assert.rejects(client.acceptSession("qs", "A"), (e) => {
      assert.equal(e.code, "SessionCannotBeLocked", "A is locked by ra");
      return true;
    });
    const ma = await receiveAll(ra, 2);
    assert.deepEqual(ma.map((m) => m.body), ["a1", "a2"]);
    assert.ok(ma.every((m) => m.sessionId === "A"));
    for (const m of ma) await ra.completeMessage(m);
    await ra.setSessionState("state-A");
    assert.equal((await ra.getSessionState()).toString(), "state-A");
    await ra.renewSessionLock();
    await ra.close();
    const rn = await client.acceptNextSession("qs");
    assert.equal(rn.sessionId, "B");
    const [mb] = await receiveAll(rn, 1);
    assert.equal(mb.body, "b1");
    await rn.completeMessage(mb);
    await rn.close();
  });
});

test("duplicate detection drops a repeated message id", async () => {
  const queues = [{ name: "q1", duplicateDetection: true, duplicateWindowMs: 60000 }];
  await withEmu({ queues }, async (client) => {
    const sender = client.createSender("q1");
    await sender.sendMessages({ body: "first", messageId: "dup-1" });
    await sender.sendMessages({ body: "second", messageId: "dup-1" });
    await sender.sendMessages({ body: "third", messageId: "dup-2" });
    const receiver = client.createReceiver("q1", { receiveMode: "receiveAndDelete" });
    const msgs = await receiveAll(receiver, 3, 1500);
    assert.deepEqual(msgs.map((m) => m.body), ["first", "third"]);
  });
});

test("a wrong key is refused", async () => {
  const emu = await startEmulator({});
  const bad = new ServiceBusClient(emu.connStr(KEY_NAME, "WRONG"), {
    retryOptions: { maxRetries: 0, timeoutInMs: 5000 },
  });
  const unknown = new ServiceBusClient(emu.connStr("NoSuchKey", KEY), {
    retryOptions: { maxRetries: 0, timeoutInMs: 5000 },
  });
  try {
    for (const c of [bad, unknown]) {
      await assert.rejects(c.createSender("q1").sendMessages({ body: "x" }), (e) => {
        assert.equal(e.code, "UnauthorizedAccess", `code ${e.code}: ${e.message}`);
        return true;
      });
    }
    assert.match(await waitForLog(emu, /NoSuchKey/), /refused \(401\): bad signature/);
    assert.match(emu.log(), /refused \(401\): unknown shared access key name 'NoSuchKey'/);
    assert.doesNotMatch(emu.log(), /SAS_KEY_VALUE|WRONG|sig=/, "no secrets in the log");
  } finally {
    await bad.close();
    await unknown.close();
    assert.equal((await emu.stop()).code, 0, "emulator exit status");
  }
});

// A SharedAccessSignature connection string whose token names sb://<srAuthority>/q1, for a client
// connecting to endpointHost.
function sasClient(emu, endpointHost, srAuthority) {
  const sr = encodeURIComponent(`sb://${srAuthority}/q1`);
  const se = Math.floor(Date.now() / 1000) + 300;
  const sig = createHmac("sha256", KEY).update(`${sr}\n${se}`).digest("base64");
  const token = `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}&skn=${KEY_NAME}`;
  return new ServiceBusClient(
    `Endpoint=sb://${endpointHost}:${emu.ports.amqp};SharedAccessSignature=${token};UseDevelopmentEmulator=true`,
    { retryOptions: { maxRetries: 0, timeoutInMs: 5000 } });
}

test("a token for another host or port is refused by put-token; localhost is 127.0.0.1", async () => {
  const emu = await startEmulator({});
  const port = emu.ports.amqp;
  const clients = [];
  const client = (...a) => { const c = sasClient(emu, ...a); clients.push(c); return c; };
  try {
    for (const [endpoint, sr] of [["127.0.0.1", `another-host:${port}`], ["127.0.0.1", "another-host"],
      ["127.0.0.1", `127.0.0.1:${port + 1}`], ["localhost", `another-host:${port}`]]) {
      await assert.rejects(client(endpoint, sr).createSender("q1").sendMessages({ body: "x" }), (e) => {
        assert.equal(e.code, "UnauthorizedAccess", `${endpoint} with sr ${sr}: ${e.code}: ${e.message}`);
        return true;
      });
    }
    assert.match(await waitForLog(emu, new RegExp(`is for port ${port + 1}`)),
      /refused \(401\): resource URI 'sb:\/\/another-host:\d+\/q1' is for host 'another-host', not this emulator's '127\.0\.0\.1'/);
    assert.match(emu.log(), /is for host 'another-host', not this emulator's 'localhost'/,
      "the open frame's hostname names the endpoint");
    // the same host under its other loopback name, with and without the port
    await client("127.0.0.1", `LOCALHOST:${port}`).createSender("q1").sendMessages({ body: "a" });
    await client("localhost", "127.0.0.1").createSender("q1").sendMessages({ body: "b" });
    // and the SDK with a key, connecting as localhost
    const byName = new ServiceBusClient(
      `Endpoint=sb://localhost:${port};SharedAccessKeyName=${KEY_NAME};SharedAccessKey=${KEY};UseDevelopmentEmulator=true`);
    clients.push(byName);
    const msgs = await byName.createReceiver("q1", { receiveMode: "receiveAndDelete" })
      .receiveMessages(3, { maxWaitTimeInMs: 1000 });
    assert.deepEqual(msgs.map((m) => m.body), ["a", "b"]);
  } catch (e) {
    console.error(emu.log());
    throw e;
  } finally {
    for (const c of clients) await c.close();
    assert.equal((await emu.stop()).code, 0, "emulator exit status");
  }
});

test("SASL PLAIN with a key authorises without CBS; a bad password, no token, refused", async () => {
  const emu = await startEmulator({ amqps: true });
  const attempt = (password, tls = false) =>
    new Promise((resolve) => {
      const c = rhea.create_container();
      const opts = { host: "127.0.0.1", port: tls ? emu.ports.amqps : emu.ports.amqp,
        reconnect: false };
      if (password !== undefined) Object.assign(opts, { username: KEY_NAME, password });
      if (tls) Object.assign(opts, { transport: "tls", rejectUnauthorized: false });
      const conn = c.connect(opts);
      conn.on("connection_error", () => resolve("refused"));
      conn.on("disconnected", () => resolve("refused"));
      conn.on("sendable", (ctx) => {
        ctx.sender.send({ body: "via plain" });
      });
      conn.on("accepted", () => {
        conn.close();
        resolve("accepted");
      });
      conn.on("sender_error", () => resolve("refused"));
      conn.open_sender("q1");
    });
  try {
    assert.equal(await attempt(KEY), "accepted");
    assert.equal(await attempt(KEY, true), "accepted", "PLAIN over amqps (TLS)");
    assert.equal(await attempt("wrong-password"), "refused");
    assert.equal(await attempt(undefined), "refused", "ANONYMOUS without put-token");
    assert.match(await waitForLog(emu, /refused: amqp:unauthorized-access/),
      /refused: amqp:unauthorized-access/);
    const client = new ServiceBusClient(emu.connStr());
    const msgs = await client.createReceiver("q1", { receiveMode: "receiveAndDelete" })
      .receiveMessages(2, { maxWaitTimeInMs: 2000 });
    assert.deepEqual(msgs.map((m) => m.body), ["via plain", "via plain"]);
    await client.close();
  } finally {
    assert.equal((await emu.stop()).code, 0, "emulator exit status");
  }
});

test("runtime properties (one queue, the list) and getQueue through ServiceBusAdministrationClient over HTTPS", async () => {
  const queues = [{ name: "q1" }, { name: "other" }];
  await withEmu({ queues, https: true, http: true }, async (client, emu) => {
    const sender = client.createSender("q1");
    await sender.sendMessages([{ body: 1 }, { body: 2 }, { body: 3 }]);
    await sender.scheduleMessages({ body: "s" }, new Date(Date.now() + 600000));
    const receiver = client.createReceiver("q1");
    const [m] = await receiveAll(receiver, 1);
    await receiver.deadLetterMessage(m, { deadLetterReason: "r" });
    const prev = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0"; // self-signed test certificate on 127.0.0.1
    try {
      const admin = new ServiceBusAdministrationClient(
        `Endpoint=sb://127.0.0.1:${emu.ports.https}/;SharedAccessKeyName=${KEY_NAME};SharedAccessKey=${KEY}`);
      const p = await admin.getQueueRuntimeProperties("q1");
      assert.equal(p.name, "q1");
      assert.equal(p.activeMessageCount, 2);
      assert.equal(p.deadLetterMessageCount, 1);
      assert.equal(p.scheduledMessageCount, 1);
      assert.equal(p.totalMessageCount, 4);
      assert.ok(p.accessedAt instanceof Date);
      const desc = await admin.getQueue("q1");
      assert.equal(desc.name, "q1");
      assert.equal(desc.lockDuration, "PT1M");
      assert.equal(desc.maxDeliveryCount, 10);
      assert.equal(desc.requiresSession, false);
      const names = [];
      for await (const page of admin.listQueuesRuntimeProperties().byPage({ maxPageSize: 1 }))
        names.push(...page.map((q) => `${q.name}:${q.activeMessageCount}`));
      assert.deepEqual(names, ["q1:2", "other:0"]);
      await assert.rejects(admin.getQueueRuntimeProperties("missing"), (e) => {
        assert.equal(e.code, "MessageEntityNotFoundError");
        return true;
      });
      const bad = new ServiceBusAdministrationClient(
        `Endpoint=sb://127.0.0.1:${emu.ports.https}/;SharedAccessKeyName=${KEY_NAME};SharedAccessKey=nope`);
      await assert.rejects(bad.getQueueRuntimeProperties("q1"), (e) => {
        assert.equal(e.statusCode, 401);
        return true;
      });
    } finally {
      if (prev === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
      else process.env.NODE_TLS_REJECT_UNAUTHORIZED = prev;
    }
    // the same document over plain HTTP, with a token made here
    const url = `http://127.0.0.1:${emu.ports.http}/q1?api-version=2021-05`;
    const sr = encodeURIComponent(url.toLowerCase()).toLowerCase();
    const se = Math.floor(Date.now() / 1000) + 300;
    const sig = createHmac("sha256", KEY).update(`${sr}\n${se}`).digest("base64");
    const auth = `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}&skn=${KEY_NAME}`;
    const res = await fetch(url, { headers: { authorization: auth } });
    assert.equal(res.status, 200);
    const xml = await res.text();
    assert.match(xml, /<d2p1:ActiveMessageCount>2<\/d2p1:ActiveMessageCount>/);
    assert.match(xml, /<d2p1:DeadLetterMessageCount>1<\/d2p1:DeadLetterMessageCount>/);
    const noauth = await fetch(url);
    assert.equal(noauth.status, 401);
    // a token signed with the right key for another host, or another port, is refused
    for (const other of [`http://another-host:${emu.ports.http}/q1?api-version=2021-05`,
      `http://127.0.0.1:${emu.ports.https}/q1?api-version=2021-05`]) {
      const osr = encodeURIComponent(other).toLowerCase();
      const osig = createHmac("sha256", KEY).update(`${osr}\n${se}`).digest("base64");
      const res2 = await fetch(url, { headers: { authorization:
        `SharedAccessSignature sr=${osr}&sig=${encodeURIComponent(osig)}&se=${se}&skn=${KEY_NAME}` } });
      assert.equal(res2.status, 401, other);
    }
    assert.match(await waitForLog(emu, /is for host 'another-host'/), /is for host 'another-host'/);
    const badpath = await fetch(`http://127.0.0.1:${emu.ports.http}/..%2f..?api-version=1`, {
      headers: { authorization: auth },
    });
    assert.equal(badpath.status, 400);
  });
});

test("a SharedAccessSignature connection string (no SASL); links drop when it expires", async () => {
  const emu = await startEmulator({});
  const sr = encodeURIComponent(`sb://127.0.0.1:${emu.ports.amqp}/q1`);
  const se = Math.floor(Date.now() / 1000) + 3;
  const sig = createHmac("sha256", KEY).update(`${sr}\n${se}`).digest("base64");
  const token = `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}&skn=${KEY_NAME}`;
  const client = new ServiceBusClient(
    `Endpoint=sb://127.0.0.1:${emu.ports.amqp};SharedAccessSignature=${token};UseDevelopmentEmulator=true`,
    { retryOptions: { maxRetries: 0, timeoutInMs: 5000 } });
  try {
    const sender = client.createSender("q1");
    await sender.sendMessages({ body: "before expiry" });
    assert.match(await waitForLog(emu, /sasl none/), /sasl none/, "the SDK skipped SASL");
    await sleep(4500);
    assert.match(await waitForLog(emu, /token expired/), /detach sender 'q1'.*\(token expired\)/);
    await assert.rejects(sender.sendMessages({ body: "after expiry" }));
    const other = new ServiceBusClient(emu.connStr());
    const msgs = await other.createReceiver("q1", { receiveMode: "receiveAndDelete" })
      .receiveMessages(5, { maxWaitTimeInMs: 1000 });
    assert.deepEqual(msgs.map((m) => m.body), ["before expiry"]);
    await other.close();
  } catch (e) {
    console.error(emu.log());
    throw e;
  } finally {
    await client.close();
    assert.equal((await emu.stop()).code, 0, "emulator exit status");
  }
});

test("dead-letter queue: peek through its own $management node; dead-letter a deferred message", async () => {
  await withEmu({}, async (client) => {
    await client.createSender("q1").sendMessages([{ body: "d1" }, { body: "d2" }]);
    const receiver = client.createReceiver("q1");
    const [a, b] = await receiveAll(receiver, 2);
    await receiver.deadLetterMessage(a, { deadLetterReason: "via-link" });
    await receiver.deferMessage(b);
    const [bd] = await receiver.receiveDeferredMessages(b.sequenceNumber);
    await receiver.deadLetterMessage(bd, { deadLetterReason: "via-management",
      deadLetterErrorDescription: "deferred then dead-lettered" });
    const dlq = client.createReceiver("q1", { subQueueType: "deadLetter" });
    const peeked = await dlq.peekMessages(10);
    assert.deepEqual(peeked.map((m) => [m.body, m.deadLetterReason]),
      [["d1", "via-link"], ["d2", "via-management"]]);
    assert.equal(peeked[1].deadLetterErrorDescription, "deferred then dead-lettered");
    const got = await receiveAll(dlq, 2);
    for (const m of got) await dlq.completeMessage(m);
    assert.equal((await dlq.peekMessages(10)).length, 0);
  });
});

test("a full queue refuses sends with QuotaExceeded; a batch that does not fit is refused whole", async () => {
  await withEmu({ queues: [{ name: "q1", maxSizeMb: 1 }] }, async (client) => {
    const sender = client.createSender("q1");
    const huge = "y".repeat(250 * 1024);
    const big = "z".repeat(200 * 1024);
    for (let i = 0; i < 4; i++) await sender.sendMessages({ body: huge }); // ~1000 KiB of 1024
    await assert.rejects(sender.sendMessages([{ body: "small-in-batch" }, { body: big }]), (e) => {
      assert.equal(e.code, "QuotaExceeded", `${e.code}: ${e.message}`);
      return true;
    });
    await sender.sendMessages({ body: "small" });
    await assert.rejects(sender.sendMessages({ body: big }), (e) => {
      assert.equal(e.code, "QuotaExceeded", `${e.code}: ${e.message}`);
      return true;
    });
    const peeked = await client.createReceiver("q1").peekMessages(10);
    assert.deepEqual(peeked.map((m) => m.body.length), [huge.length, huge.length, huge.length,
      huge.length, "small".length]);
  });
});

test("persist_file keeps messages across a restart; a corrupt file is refused", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "sbemu-persist-"));
  const file = path.join(dir, "state.bin");
  const queues = [{ name: "q1" }, { name: "qs", requiresSession: true }];
  try {
    let deferredSeq;
    await withEmu({ queues, persistFile: file }, async (client) => {
      const sender = client.createSender("q1");
      await sender.sendMessages([{ body: "kept", applicationProperties: { a: 1 } },
        { body: "deferred" }, { body: "dead" }]);
      await sender.scheduleMessages({ body: "scheduled" }, new Date(Date.now() + 3600000));
      await client.createSender("qs").sendMessages({ body: "in-session", sessionId: "S" });
      const r = client.createReceiver("q1");
      const [, d, x] = await receiveAll(r, 3);
      deferredSeq = d.sequenceNumber;
      await r.deferMessage(d);
      await r.deadLetterMessage(x, { deadLetterReason: "kept-reason" });
      // the first stays locked by this receiver: after a restart it is available again
    });
    await withEmu({ queues, persistFile: file }, async (client, emu) => {
      assert.match(await waitForLog(emu, /restored/), /persist: 5 message\(s\) restored/);
      const r = client.createReceiver("q1");
      const peeked = await r.peekMessages(10);
      assert.deepEqual(peeked.map((m) => [m.body, m.state]),
        [["kept", "active"], ["deferred", "deferred"], ["scheduled", "scheduled"]]);
      const [m] = await receiveAll(r, 1);
      assert.equal(m.body, "kept");
      assert.equal(m.applicationProperties.a, 1);
      assert.equal(Number(m.sequenceNumber), 1);
      await r.completeMessage(m);
      const [d] = await r.receiveDeferredMessages(deferredSeq);
      assert.equal(d.body, "deferred");
      await r.completeMessage(d);
      const [x] = await receiveAll(client.createReceiver("q1", { subQueueType: "deadLetter" }), 1);
      assert.equal(x.deadLetterReason, "kept-reason");
      const s = await client.acceptSession("qs", "S");
      const [sm] = await receiveAll(s, 1);
      assert.equal(sm.body, "in-session");
      await s.completeMessage(sm);
      const seq = await client.createSender("q1").sendMessages({ body: "new" });
      const [n] = await receiveAll(r, 1);
      assert.ok(Number(n.sequenceNumber) > 4, "sequence numbers continue");
      await r.completeMessage(n);
    });
    writeFileSync(file, "SBEMUST1garbage");
    await assert.rejects(startEmulator({ queues, persistFile: file }), /corrupt or truncated/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
