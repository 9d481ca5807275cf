// load.test.mjs: 10,000 messages sent in batches by the SDK, received in peek-lock by four
// concurrent receivers (each on its own connection) and completed: none lost, none delivered
// twice except the ones whose lock a receiver lets expire on purpose.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ServiceBusClient } from "@azure/service-bus";
import { startEmulator } from "./helpers.mjs";

const TOTAL = 10000;
const RECEIVERS = 4;
const ABANDONED_BY_EXPIRY = 10;

test(`load: ${TOTAL} messages, ${RECEIVERS} concurrent peek-lock receivers`, async () => {
  const emu = await startEmulator({ queues: [{ name: "q1", lockDurationMs: 5000 }] });
  const clients = [];
  try {
    const sendClient = new ServiceBusClient(emu.connStr());
    clients.push(sendClient);
    const sender = sendClient.createSender("q1");
    const t0 = Date.now();
    let next = 0;
    while (next < TOTAL) {
      const batch = await sender.createMessageBatch();
      while (next < TOTAL && batch.tryAddMessage({ body: { i: next }, messageId: `m-${next}` }))
        next++;
      await sender.sendMessages(batch);
    }
    const sendMs = Date.now() - t0;

    const completed = new Map(); // i -> times completed
    const deliveries = new Map(); // i -> times delivered
    const expiredOnPurpose = new Set();
    let dropped = 0;
    const t1 = Date.now();
    const work = [];
    for (let r = 0; r < RECEIVERS; r++) {
      const c = new ServiceBusClient(emu.connStr());
      clients.push(c);
      const receiver = c.createReceiver("q1", { maxAutoLockRenewalDurationInMs: 0 });
      work.push((async () => {
        const deadline = Date.now() + 120000;
        while (completed.size < TOTAL && Date.now() < deadline) {
          const msgs = await receiver.receiveMessages(200, { maxWaitTimeInMs: 500 });
          const settle = [];
          for (const m of msgs) {
            const i = m.body.i;
            deliveries.set(i, (deliveries.get(i) || 0) + 1);
            if (r === 0 && dropped < ABANDONED_BY_EXPIRY && m.deliveryCount === 0) {
              dropped++;
              expiredOnPurpose.add(i); // never settled: its lock expires, it comes back
              continue;
            }
            settle.push(receiver.completeMessage(m).then(() => {
              completed.set(i, (completed.get(i) || 0) + 1);
            }));
          }
          await Promise.all(settle);
        }
      })());
    }
    await Promise.all(work);
    const recvMs = Date.now() - t1;
    console.log(`sent ${TOTAL} in ${sendMs} ms (${Math.round(TOTAL / (sendMs / 1000))}/s); ` +
      `received+completed in ${recvMs} ms (incl. the 5 s lock expiry it waits for)`);

    // anything still arriving now would be a duplicate: look once more
    const late = new ServiceBusClient(emu.connStr());
    clients.push(late);
    const extra = await late.createReceiver("q1").receiveMessages(10, { maxWaitTimeInMs: 1000 });
    assert.equal(extra.length, 0, "nothing left in the queue");
    assert.equal(completed.size, TOTAL, "every message completed");
    for (const [i, n] of completed) assert.equal(n, 1, `message ${i} completed once`);
    assert.equal(expiredOnPurpose.size, ABANDONED_BY_EXPIRY);
    for (const [i, n] of deliveries) {
      if (expiredOnPurpose.has(i)) assert.equal(n, 2, `message ${i} redelivered once after expiry`);
      else assert.equal(n, 1, `message ${i} delivered once`);
    }
  } catch (e) {
    console.error(emu.log().slice(-5000));
    throw e;
  } finally {
    for (const c of clients) await c.close();
    const r = await emu.stop();
    assert.equal(r.code, 0);
  }
});
