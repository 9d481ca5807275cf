// bench-sdk.mjs: messages/s through intake-sb-emulator driven by the official SDK.
// usage: node bench-sdk.mjs <amqp-port> [count] [receivers]   (run by tools/sb-emulator/bench/run-bench)
import { ServiceBusClient } from "@azure/service-bus";

const port = Number(process.argv[2]);
const total = Number(process.argv[3] || 20000);
const receivers = Number(process.argv[4] || 4);
const key = process.env.SBEMU_KEY || "SAS_KEY_VALUE";
const keyName = process.env.SBEMU_KEY_NAME || "RootManageSharedAccessKey";
const cs = `Endpoint=sb://127.0.0.1:${port};SharedAccessKeyName=${keyName};SharedAccessKey=${key};UseDevelopmentEmulator=true`;
const body = "x".repeat(100);

const sc = new ServiceBusClient(cs);
const sender = sc.createSender("q1");
await sender.sendMessages({ body: "warm-up" });
let t = Date.now();
let sent = 0;
while (sent < total) {
  const batch = await sender.createMessageBatch();
  while (sent < total && batch.tryAddMessage({ body })) sent++;
  await sender.sendMessages(batch);
}
const sendS = (Date.now() - t) / 1000;
console.log(`sdk send (batches): ${total} messages in ${sendS.toFixed(3)} s = ${Math.round(total / sendS)} msg/s`);

t = Date.now();
const single = Math.min(2000, total);
for (let i = 0; i < single; i++) await sender.sendMessages({ body });
const singleS = (Date.now() - t) / 1000;
console.log(`sdk send (one at a time, awaited): ${single} messages in ${singleS.toFixed(3)} s = ${Math.round(single / singleS)} msg/s`);
await sc.close();

const want = total + single + 1;
let done = 0;
const clients = [];
t = Date.now();
await Promise.all(Array.from({ length: receivers }, async () => {
  const c = new ServiceBusClient(cs);
  clients.push(c);
  const r = c.createReceiver("q1", { maxAutoLockRenewalDurationInMs: 0 });
  while (done < want) {
    const msgs = await r.receiveMessages(500, { maxWaitTimeInMs: 200 });
    await Promise.all(msgs.map((m) => r.completeMessage(m)));
    done += msgs.length;
  }
}));
const recvS = (Date.now() - t) / 1000;
console.log(`sdk receive+complete (peek-lock, ${receivers} receivers): ${done} messages in ${recvS.toFixed(3)} s = ${Math.round(done / recvS)} msg/s`);
for (const c of clients) await c.close();
